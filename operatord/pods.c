/* A CocoonSet's pods as one pass sees them (operator-webhook.md §2.3 steps 4–5): only the
 * pods this set controls (an ownerReference with controller:true and its UID, so a pod that
 * merely carries the name label is never touched), terminating pods set aside (acting on
 * them made the original delete them in a loop), the rest classified by the role label.
 *
 * The facts a pass reads from a pod (readiness, terminal, lifecycle, VM liveness,
 * schedulability) are decoded once here, from the canonical keys of §1.4 that the
 * operator and vkd write; booleans are true only for the exact value "true". Everything is
 * borrowed from the pod JSON. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cocoon/meta.h"
#include "operatord.h"

static const char *str_member(const json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

/* An annotation or label value; "" counts as absent (meta.h's rule). */
static const char *nonempty(const json_t *o, const char *key)
{
	const char *s = str_member(o, key);

	return isempty(s) ? NULL : s;
}

/* A key that has a legacy cocoon.cis/ alias, by meta.h's rule: the canonical key wins, an
 * empty value counts as absent. So pods of the legacy generation (cocoon.cis/vm-name only)
 * are read as well as the pods operatord makes. */
static const char *aliased(const json_t *anns, const char *key, const char *legacy)
{
	return nonempty(anns, key) ?: nonempty(anns, legacy);
}

static bool is_true(const json_t *o, const char *key)
{
	return streq_ptr(str_member(o, key), "true");
}

/* strconv.ParseInt(s, 10, bits): optional sign, decimal digits only, in range. */
static int parse_int(const char *s, int64_t min, int64_t max, int64_t *ret)
{
	uint64_t v = 0, limit;
	bool neg = false;

	if (!s)
		return -EINVAL;
	if (*s == '+' || *s == '-')
		neg = *s++ == '-';
	if (!*s)
		return -EINVAL;
	limit = neg ? (uint64_t) - (min + 1) + 1 : (uint64_t)max;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -EINVAL;
		if (v > (limit - (uint64_t)(*s - '0')) / 10)
			return -ERANGE;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	*ret = neg ? (int64_t)(0 - v) : (int64_t)v;
	return 0;
}

/* Generation stamps: missing or unparsable count as 0 (§1.4). */
static int64_t parse_stamp(const char *s)
{
	int64_t v;

	return parse_int(s, INT64_MIN, INT64_MAX, &v) < 0 ? 0 : v;
}

static int parse_slot(const char *s)
{
	int64_t v;

	return parse_int(s, INT32_MIN, INT32_MAX, &v) < 0 ? -1 : (int)v;
}

static const json_t *condition(const json_t *pod, const char *type)
{
	const json_t *c;
	size_t i;

	json_array_foreach (json_object_get(json_object_get(pod, "status"), "conditions"), i, c)
		if (streq_ptr(str_member(c, "type"), type))
			return c;
	return NULL;
}

bool cs_pod_ready(const json_t *pod)
{
	return streq_ptr(str_member(condition(pod, "Ready"), "status"), "True");
}

static bool some_container_running(const json_t *pod)
{
	const json_t *c;
	size_t i;

	json_array_foreach (json_object_get(json_object_get(pod, "status"), "containerStatuses"), i,
			    c)
		if (json_is_object(json_object_get(json_object_get(c, "state"), "running")))
			return true;
	return false;
}

static enum cs_role role_from_label(const char *role)
{
	if (streq_ptr(role, META_ROLE_MAIN))
		return CS_ROLE_MAIN;
	if (streq_ptr(role, META_ROLE_SUB_AGENT))
		return CS_ROLE_SUB;
	if (streq_ptr(role, META_ROLE_TOOLBOX))
		return CS_ROLE_TOOLBOX;
	return CS_ROLE_NONE;
}

int cs_pod_from_json(const json_t *pod, struct cs_pod *ret)
{
	const json_t *md = json_object_get(pod, "metadata"), *labels, *anns, *c;
	const char *slot_label;
	struct cs_pod p = { .obj = pod };

	if (!json_is_object(pod) || !json_is_object(md))
		return -EINVAL;
	labels = json_object_get(md, "labels");
	anns = json_object_get(md, "annotations");

	p.name = str_member(md, "name") ?: "";
	p.uid = str_member(md, "uid") ?: "";
	p.node_name = nonempty(json_object_get(pod, "spec"), "nodeName");
	p.phase = str_member(json_object_get(pod, "status"), "phase") ?: "";
	p.role = role_from_label(str_member(labels, META_LABEL_ROLE));
	slot_label = str_member(labels, META_LABEL_SLOT);
	p.slot = p.role == CS_ROLE_MAIN      ? 0
		 : p.role == CS_ROLE_TOOLBOX ? -1
					     : parse_slot(slot_label);
	p.toolbox = p.role == CS_ROLE_TOOLBOX ? slot_label ?: "" : NULL;

	p.vm_name = aliased(anns, META_ANN_VM_NAME, META_LEGACY_ANN_VM_NAME);
	p.vm_id = aliased(anns, META_ANN_VM_ID, META_LEGACY_ANN_VM_ID);
	p.lifecycle_state = nonempty(anns, META_ANN_LIFECYCLE_STATE);
	p.lifecycle_message = nonempty(anns, META_ANN_LIFECYCLE_STATE_MESSAGE);
	p.generation_stamp = parse_stamp(str_member(anns, META_ANN_GENERATION));
	p.lifecycle_observed_generation =
	    parse_stamp(str_member(anns, META_ANN_LIFECYCLE_OBSERVED_GENERATION));
	p.hibernate =
	    streq_ptr(aliased(anns, META_ANN_HIBERNATE, META_LEGACY_ANN_HIBERNATE), "true");
	p.managed = streq_ptr(aliased(anns, META_ANN_MANAGED, META_LEGACY_ANN_MANAGED), "true");
	p.dead_letter = is_true(anns, META_ANN_DEAD_LETTER);
	p.restore_from_hibernate = is_true(anns, META_ANN_RESTORE_FROM_HIBERNATE);

	p.ready = cs_pod_ready(pod);
	p.terminal =
	    streq_ptr(p.lifecycle_state, META_LIFECYCLE_FAILED) || streq(p.phase, "Failed");
	p.vm_live = p.vm_id && some_container_running(pod);
	c = condition(pod, "PodScheduled");
	p.unschedulable = streq_ptr(str_member(c, "status"), "False") &&
			  streq_ptr(str_member(c, "reason"), "Unschedulable");
	p.unschedulable_message = p.unschedulable ? str_member(c, "message") ?: "" : NULL;

	*ret = p;
	return 0;
}

/* §2.3 step 4: the controller reference, matched by UID (names can be reused). */
static bool controlled_by(const json_t *pod, const char *uid)
{
	const json_t *ref;
	size_t i;

	json_array_foreach (json_object_get(json_object_get(pod, "metadata"), "ownerReferences"), i,
			    ref)
		if (json_is_true(json_object_get(ref, "controller")) &&
		    streq_ptr(str_member(ref, "uid"), uid))
			return true;
	return false;
}

static bool terminating(const json_t *pod)
{
	const json_t *ts = json_object_get(json_object_get(pod, "metadata"), "deletionTimestamp");

	return ts && !json_is_null(ts);
}

static int cmp_pod_name(const void *a, const void *b)
{
	return strcmp(((const struct cs_pod *)a)->name, ((const struct cs_pod *)b)->name);
}

/* By slot, then by name: the first of a duplicated slot is the first by name. */
static int cmp_sub(const void *a, const void *b)
{
	const struct cs_pod *x = *(struct cs_pod *const *)a, *y = *(struct cs_pod *const *)b;

	if (x->slot != y->slot)
		return (x->slot > y->slot) - (x->slot < y->slot);
	return strcmp(x->name, y->name);
}

static int cmp_toolbox(const void *a, const void *b)
{
	const struct cs_pod *x = *(struct cs_pod *const *)a, *y = *(struct cs_pod *const *)b;
	int r = strcmp(x->toolbox, y->toolbox);

	return r ? r : strcmp(x->name, y->name);
}

static bool same_sub(const struct cs_pod *a, const struct cs_pod *b)
{
	return a->slot == b->slot;
}

static bool same_toolbox(const struct cs_pod *a, const struct cs_pod *b)
{
	return streq(a->toolbox, b->toolbox);
}

/* Sorts v and keeps the first of each run of equal keys. */
static size_t sort_unique(struct cs_pod **v, size_t n, int (*cmp)(const void *, const void *),
			  bool (*same)(const struct cs_pod *, const struct cs_pod *))
{
	size_t k = 0;

	if (n == 0)
		return 0;
	qsort(v, n, sizeof(*v), cmp);
	for (size_t i = 0; i < n; i++)
		if (k == 0 || !same(v[k - 1], v[i]))
			v[k++] = v[i];
	return k;
}

static void classify(struct cs_pods *p)
{
	for (size_t i = 0; i < p->n_all; i++) {
		struct cs_pod *pod = &p->all[i];

		/* all[] is sorted by name: the first main is the first by name */
		if (pod->role == CS_ROLE_MAIN && !p->main)
			p->main = pod;
		/* Slot 0 is main's and an unparsable label is -1: neither is a sub-agent
		 * (status lists agents keyed by slot, a second slot 0 would break it). */
		else if (pod->role == CS_ROLE_SUB && pod->slot > 0)
			p->sub[p->n_sub++] = pod;
		else if (pod->role == CS_ROLE_TOOLBOX)
			p->toolboxes[p->n_toolboxes++] = pod;
	}
	p->n_sub = sort_unique(p->sub, p->n_sub, cmp_sub, same_sub);
	p->n_toolboxes = sort_unique(p->toolboxes, p->n_toolboxes, cmp_toolbox, same_toolbox);
}

int cs_pods_classify(const struct cs *cs, const json_t *pods, struct cs_pods *ret)
{
	_cleanup_(cs_pods_done) struct cs_pods p = {};
	const json_t *pod;
	size_t i, n = json_array_size(pods);

	if (pods && !json_is_array(pods))
		return -EINVAL;
	if (n > 0) {
		p.all = calloc(n, sizeof(*p.all));
		p.sub = calloc(n, sizeof(*p.sub));
		p.toolboxes = calloc(n, sizeof(*p.toolboxes));
		if (!p.all || !p.sub || !p.toolboxes)
			return -ENOMEM;
	}
	json_array_foreach (pods, i, pod) {
		if (!controlled_by(pod, cs->uid))
			continue;
		if (terminating(pod)) {
			p.n_deleting++;
			continue;
		}
		if (cs_pod_from_json(pod, &p.all[p.n_all]) == 0)
			p.n_all++;
	}
	if (p.n_all > 0)
		qsort(p.all, p.n_all, sizeof(*p.all), cmp_pod_name);
	classify(&p);
	*ret = p;
	p = (struct cs_pods){};
	return 0;
}

void cs_pods_done(struct cs_pods *p)
{
	free(p->all);
	free(p->sub);
	free(p->toolboxes);
	*p = (struct cs_pods){};
}

struct cs_pod *cs_pods_sub(const struct cs_pods *p, int slot)
{
	for (size_t i = 0; i < p->n_sub; i++)
		if (p->sub[i]->slot == slot)
			return p->sub[i];
	return NULL;
}

struct cs_pod *cs_pods_toolbox(const struct cs_pods *p, const char *name)
{
	for (size_t i = 0; i < p->n_toolboxes; i++)
		if (streq_ptr(p->toolboxes[i]->toolbox, name))
			return p->toolboxes[i];
	return NULL;
}

struct cs_pod *cs_pods_by_name(const struct cs_pods *p, const char *name)
{
	struct cs_pod key = { .name = name };

	if (!name || p->n_all == 0)
		return NULL;
	return bsearch(&key, p->all, p->n_all, sizeof(*p->all), cmp_pod_name);
}

/* Keeps only the members of o named in keep (NULL-terminated). */
static void keep_only(json_t *o, const char *const *keep)
{
	const char *k;
	json_t *v;
	void *tmp;

	if (!json_is_object(o))
		return;
	json_object_foreach_safe(o, tmp, k, v)
	{
		bool wanted = false;

		for (const char *const *w = keep; *w && !wanted; w++)
			wanted = streq(*w, k);
		if (!wanted)
			json_object_del(o, k);
	}
}

static void keep_only_each(json_t *array, const char *const *keep)
{
	size_t i;
	json_t *e;

	json_array_foreach (array, i, e)
		keep_only(e, keep);
}

void cs_pod_trim(json_t *pod)
{
	static const char *const top[] = {
		"apiVersion", "kind", "metadata", "spec", "status", NULL
	};
	static const char *const meta[] = { "name",
					    "namespace",
					    "uid",
					    "resourceVersion",
					    "generation",
					    "labels",
					    "annotations",
					    "ownerReferences",
					    "deletionTimestamp",
					    NULL };
	static const char *const spec[] = { "nodeName", "nodeSelector", "serviceAccountName",
					    "containers", NULL };
	static const char *const container[] = { "name", "resources", "envFrom", NULL };
	static const char *const status[] = { "phase", "conditions", "containerStatuses", NULL };
	static const char *const condition[] = {
		"type", "status", "reason", "message", "lastTransitionTime", NULL
	};
	static const char *const container_status[] = { "name", "state", NULL };
	json_t *sp = json_object_get(pod, "spec"), *st = json_object_get(pod, "status");

	keep_only(pod, top);
	keep_only(json_object_get(pod, "metadata"), meta);
	keep_only(sp, spec);
	keep_only_each(json_object_get(sp, "containers"), container);
	keep_only(st, status);
	keep_only_each(json_object_get(st, "conditions"), condition);
	keep_only_each(json_object_get(st, "containerStatuses"), container_status);
}
