/* Fuzz the hibernation reconciler on arbitrary CR JSON (either kind): hib_parse must refuse
 * bad objects with a message, and every object it accepts must plan against a fixed pod in
 * each interesting state (absent, hibernated on vk's side, running) without crashing or
 * leaking, with the plan's invariants holding: a pass waiting for facts carries no writes,
 * an error carries its message, status writes are {"status":{…}} merge patches. The input
 * doubles as the namespace's other CRs, so the last-holder check sees hostile shapes too. */
#include <errno.h>
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>

#include "../../operatord/operatord.h"

#define VM "vk-default-demo-0"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const pods[] = {
	NULL,
	"{\"metadata\":{\"name\":\"demo-0\",\"annotations\":{\"vm.cocoonstack.io/name\":\"" VM "\","
	"\"vm.cocoonstack.io/hibernate\":\"true\",\"cocoon.cis/hibernate\":\"true\","
	"\"vm.cocoonstack.io/lifecycle-state\":\"hibernated\","
	"\"cocoonset.cocoonstack.io/generation\":\"2\","
	"\"vm.cocoonstack.io/lifecycle-observed-generation\":\"2\"}}}",
	"{\"metadata\":{\"name\":\"demo-0\",\"annotations\":{\"vm.cocoonstack.io/name\":\"" VM "\","
	"\"vm.cocoonstack.io/id\":\"abc\"}},"
	"\"status\":{\"containerStatuses\":[{\"state\":{\"running\":{}}}]}}",
	"{\"metadata\":{\"name\":\"demo-0\"}}",
};

static void check_plan(const struct plan *p)
{
	if (p->outcome == PLAN_NEED_FACTS && (p->n_actions > 0 || p->n_probes == 0))
		abort();
	if (p->outcome == PLAN_ERROR && !p->error)
		abort();
	for (size_t i = 0; i < p->n_actions; i++)
		if (p->actions[i].kind == ACT_STATUS_PATCH &&
		    !json_is_object(json_object_get(p->actions[i].body, "status")))
			abort();
}

static void plan_with(const struct hib *h, const json_t *pod, const json_t *others,
		      const struct facts *facts, uint64_t now)
{
	struct hib_inputs in = { .hib = h,
				 .pod = pod,
				 .others = others,
				 .facts = facts,
				 .now_usec = now,
				 .exit_seen_ltt_usec = h->ready_ltt_usec,
				 .registry = "registry.example/cocoon" };
	struct plan p = { 0 };

	if (hib_plan(&in, &p) < 0)
		return;
	check_plan(&p);
	plan_done(&p);
	in.exit_seen_ltt_usec = 0;
	if (hib_plan(&in, &p) < 0)
		return;
	check_plan(&p);
	plan_done(&p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct facts empty = { 0 }, known = { 0 };
	struct hib *h = NULL;
	char *error = NULL;
	json_t *obj, *others;
	int r;

	obj = json_loadb((const char *)data, size, 0, NULL);
	if (!obj)
		return 0;
	r = hib_parse(obj, &h, &error);
	if (r == -EINVAL && !error)
		abort();
	free(error);
	if (r < 0) {
		json_decref(obj);
		return 0;
	}
	others = json_pack("[O, {s:{s:s}, s:{s:s}}]", obj, "metadata", "uid", "other", "status",
			   "vmName", VM);
	facts_set(&known, VM, FACT_ERROR, "HEAD: 500");
	for (size_t i = 0; i < sizeof(pods) / sizeof(pods[0]); i++) {
		json_t *pod = pods[i] ? json_loads(pods[i], 0, NULL) : NULL;

		plan_with(h, pod, others, &empty, h->ready_ltt_usec + 60 * USEC_PER_SEC);
		plan_with(h, pod, others, &known, h->ready_ltt_usec + 600 * USEC_PER_SEC);
		plan_with(h, pod, others, &known, 0);
		json_decref(pod);
	}
	facts_done(&known);
	json_decref(others);
	hib_free(h);
	json_decref(obj);
	return 0;
}
