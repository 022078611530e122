/* The cocoon_operator_* metrics (operator-webhook.md §2.15) plus reconcile counts and
 * latency per controller. Plans name a metric without its prefix and carry label values by
 * name (ACT_COUNT, ACT_OBSERVE); operator_metrics_apply() maps them onto the registry, so
 * the pure planners never touch it. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cocoon/metrics.h"
#include "operatord.h"

#define PREFIX "cocoon_operator_"

static const char *const ns_cs[] = { "namespace", "cocoonset", NULL };
static const char *const ns_cs_placement[] = { "namespace", "cocoonset", "placement", NULL };
static const char *const result_only[] = { "result", NULL };
static const char *const phase_only[] = { "phase", NULL };
static const char *const controller_result[] = { "controller", "result", NULL };
static const char *const controller_only[] = { "controller", NULL };
static const double phase_buckets[] = { 10, 30, 60, 180, 600, 1800 };
static const double reconcile_buckets[] = { 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30 };

struct metric_def {
	enum metric_type type;
	struct metric_desc desc;
};

static const struct metric_def defs[] = {
	{ METRIC_COUNTER, { PREFIX "subagent_rebuild_total",
			    "Terminal sub-agent pods deleted for a rebuild.", ns_cs } },
	{ METRIC_COUNTER, { PREFIX "subagent_dead_letter_total",
			    "Sub-agent slots left in dead-letter after exhausting their rebuilds.",
			    ns_cs } },
	{ METRIC_HISTOGRAM, { PREFIX "hibernate_phase_duration_seconds",
			      "Time CocoonHibernations spent Hibernating, by outcome.", result_only,
			      phase_buckets, ELEMENTSOF(phase_buckets) } },
	{ METRIC_HISTOGRAM, { PREFIX "wake_phase_duration_seconds",
			      "Time CocoonHibernations spent Waking, by outcome.", result_only,
			      phase_buckets, ELEMENTSOF(phase_buckets) } },
	{ METRIC_COUNTER, { PREFIX "lifecycle_state_failed_observed_total",
			    "Main pods seen with lifecycle-state failed, by the CocoonSet's phase.",
			    phase_only } },
	{ METRIC_COUNTER, { PREFIX "slot_release_pods_deleted_total",
			    "Pods deleted by hibernatePolicy=release suspends.", ns_cs } },
	{ METRIC_COUNTER, { PREFIX "slot_release_wake_total",
			    "Released seats woken, by where the main landed.", ns_cs_placement } },
	{ METRIC_COUNTER, { PREFIX "slot_release_wake_unschedulable_total",
			    "Released-seat wakes that found no capacity.", ns_cs } },
	{ METRIC_COUNTER, { PREFIX "reconcile_total",
			    "Reconcile passes, by controller and result (done, requeue, error).",
			    controller_result } },
	{ METRIC_HISTOGRAM, { PREFIX "reconcile_duration_seconds",
			      "Wall time of a reconcile pass including its API writes.",
			      controller_only, reconcile_buckets, ELEMENTSOF(reconcile_buckets) } },
	{ METRIC_COUNTER, { PREFIX "api_writes_total",
			    "Writes sent to the apiserver and the registry, by controller.",
			    controller_only } },
};

struct operator_metrics {
	struct metric *m[ELEMENTSOF(defs)];
};

int operator_metrics_new(struct metrics *reg, struct operator_metrics **ret)
{
	_cleanup_(freep) struct operator_metrics *om = calloc(1, sizeof(*om));
	int r;

	if (!om)
		return -ENOMEM;
	for (size_t i = 0; i < ELEMENTSOF(defs); i++) {
		r = metrics_add(reg, defs[i].type, &defs[i].desc, &om->m[i]);
		if (r < 0)
			return r;
	}
	*ret = TAKE_PTR(om);
	return 0;
}

void operator_metrics_free(struct operator_metrics *om)
{
	free(om);
}

static int find(const char *name)
{
	for (size_t i = 0; i < ELEMENTSOF(defs); i++)
		if (strcmp(defs[i].desc.name + strlen(PREFIX), name) == 0)
			return (int)i;
	return -1;
}

int operator_metrics_apply(struct operator_metrics *om, const struct action *a)
{
	const char *values[4] = {};
	int i = find(a->metric);
	size_t k = 0;

	if (i < 0)
		return -ENOENT;
	for (const char *const *l = defs[i].desc.labels; l && *l; l++, k++) {
		const json_t *v = json_object_get(a->body, *l);

		if (k >= ELEMENTSOF(values) - 1 || !json_is_string(v))
			return -EINVAL;
		values[k] = json_string_value(v);
	}
	if (a->kind == ACT_OBSERVE)
		return metric_observe(om->m[i], values, a->value);
	return metric_add(om->m[i], values, a->value);
}

void operator_metrics_reconciled(struct operator_metrics *om, const char *controller,
				 const char *result, double seconds, unsigned writes)
{
	const char *cr[] = { controller, result, NULL }, *c[] = { controller, NULL };

	(void)metric_inc(om->m[find("reconcile_total")], cr);
	(void)metric_observe(om->m[find("reconcile_duration_seconds")], c, seconds);
	if (writes)
		(void)metric_add(om->m[find("api_writes_total")], c, writes);
}
