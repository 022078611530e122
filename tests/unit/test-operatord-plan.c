/* operatord plans (plan.c): the exact bodies the executor will send (annotation merge
 * patches with null removals, metric labels), ownership of bodies on every path, the
 * outcome precedence, probe deduplication and the registry facts table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../../operatord/operatord.h"

static void assert_json(const json_t *got, const char *want_text)
{
	json_t *want = json_loads(want_text, 0, NULL);
	char *dump = json_dumps(got, JSON_SORT_KEYS | JSON_COMPACT);

	assert_non_null(want);
	if (!json_equal(got, want))
		fail_msg("body %s, want %s", dump ? dump : "(null)", want_text);
	free(dump);
	json_decref(want);
}

static void test_annotate_bodies(void **state)
{
	_cleanup_(plan_done) struct plan p = { 0 };

	assert_int_equal(plan_pod_annotate(&p, "demo-0", "vm.cocoonstack.io/hibernate", "true",
					   ACT_IGNORE_NOT_FOUND),
			 0);
	assert_int_equal(plan_pod_annotate(&p, "demo-1", "vm.cocoonstack.io/hibernate", NULL, 0),
			 0);
	assert_int_equal(plan_obj_annotate(&p, "cocoonset.cocoonstack.io/rebuild-history", "{}"),
			 0);
	assert_int_equal(p.n_actions, 3);

	assert_int_equal(p.actions[0].kind, ACT_POD_PATCH);
	assert_string_equal(p.actions[0].name, "demo-0");
	assert_int_equal(p.actions[0].flags, ACT_IGNORE_NOT_FOUND);
	assert_json(p.actions[0].body,
		    "{\"metadata\":{\"annotations\":{\"vm.cocoonstack.io/hibernate\":\"true\"}}}");
	/* Removal is an explicit null in a merge patch (RFC 7386). */
	assert_json(p.actions[1].body,
		    "{\"metadata\":{\"annotations\":{\"vm.cocoonstack.io/hibernate\":null}}}");
	assert_int_equal(p.actions[2].kind, ACT_OBJ_PATCH);
	assert_null(p.actions[2].name);
	assert_json(p.actions[2].body, "{\"metadata\":{\"annotations\":"
				       "{\"cocoonset.cocoonstack.io/rebuild-history\":\"{}\"}}}");
}

static void test_other_actions(void **state)
{
	_cleanup_(plan_done) struct plan p = { 0 };

	assert_int_equal(plan_pod_create(&p, json_pack("{s:{s:s}}", "metadata", "name", "cs-1"),
					 ACT_IGNORE_EXISTS | ACT_PARALLEL),
			 0);
	assert_int_equal(plan_pod_delete(&p, "cs-2", ACT_IGNORE_NOT_FOUND), 0);
	assert_int_equal(plan_event(&p, "Warning", "WakeTimedOut", "pod %s/%s: %d", "ns", "p", 5),
			 0);
	assert_int_equal(plan_tag_delete(&p, "vk-ns-cs-0", "hibernate", ACT_BEST_EFFORT), 0);
	assert_int_equal(plan_count(&p, "cocoon_operator_subagent_rebuild_total", 1, "namespace",
				    "ns", "cocoonset", "cs", NULL),
			 0);
	assert_int_equal(plan_observe(&p, "cocoon_operator_wake_phase_duration_seconds", 12.5,
				      "result", "ok", NULL),
			 0);
	assert_int_equal(plan_status_patch(&p, json_pack("{s:{}}", "status")), 0);
	assert_int_equal(plan_obj_update(&p, json_pack("{s:{}}", "metadata")), 0);
	assert_int_equal(p.n_actions, 8);

	assert_int_equal(p.actions[0].kind, ACT_POD_CREATE);
	assert_string_equal(p.actions[0].name, "cs-1");
	assert_int_equal(p.actions[0].flags, ACT_IGNORE_EXISTS | ACT_PARALLEL);
	assert_int_equal(p.actions[1].kind, ACT_POD_DELETE);
	assert_string_equal(p.actions[1].name, "cs-2");
	assert_int_equal(p.actions[2].kind, ACT_EVENT);
	assert_string_equal(p.actions[2].event_type, "Warning");
	assert_string_equal(p.actions[2].reason, "WakeTimedOut");
	assert_string_equal(p.actions[2].message, "pod ns/p: 5");
	assert_int_equal(p.actions[3].kind, ACT_TAG_DELETE);
	assert_string_equal(p.actions[3].name, "vk-ns-cs-0");
	assert_string_equal(p.actions[3].tag, "hibernate");
	assert_int_equal(p.actions[3].flags, ACT_BEST_EFFORT);
	assert_int_equal(p.actions[4].kind, ACT_COUNT);
	assert_string_equal(p.actions[4].metric, "cocoon_operator_subagent_rebuild_total");
	assert_json(p.actions[4].body, "{\"namespace\":\"ns\",\"cocoonset\":\"cs\"}");
	assert_true(p.actions[4].value == 1);
	assert_int_equal(p.actions[5].kind, ACT_OBSERVE);
	assert_json(p.actions[5].body, "{\"result\":\"ok\"}");
	assert_true(p.actions[5].value == 12.5);
	assert_int_equal(p.actions[6].kind, ACT_STATUS_PATCH);
	assert_int_equal(p.actions[7].kind, ACT_OBJ_UPDATE);

	plan_done(&p);
	assert_null(p.actions);
	assert_int_equal(p.n_actions, 0);
	assert_int_equal(p.outcome, PLAN_DONE);
}

/* A NULL body (a failed json_pack in the caller) is refused without adding an action. */
static void test_null_body(void **state)
{
	_cleanup_(plan_done) struct plan p = { 0 };

	assert_int_equal(plan_status_patch(&p, NULL), -ENOMEM);
	assert_int_equal(plan_pod_create(&p, NULL, 0), -ENOMEM);
	assert_int_equal(p.n_actions, 0);
}

static void test_outcomes(void **state)
{
	_cleanup_(plan_done) struct plan p = { 0 };

	assert_int_equal(p.outcome, PLAN_DONE);
	plan_requeue_after(&p, 30 * USEC_PER_SEC);
	plan_requeue_after(&p, 5 * USEC_PER_SEC);
	plan_requeue_after(&p, 60 * USEC_PER_SEC);
	assert_int_equal(p.outcome, PLAN_REQUEUE_AFTER);
	assert_int_equal(p.requeue_after_usec, 5 * USEC_PER_SEC); /* the sooner wins */
	plan_requeue_after(&p, 0);
	assert_int_equal(p.outcome, PLAN_REQUEUE);
	plan_requeue_after(&p, 5 * USEC_PER_SEC);
	assert_int_equal(p.outcome, PLAN_REQUEUE);

	assert_int_equal(plan_need_probe(&p, "vk-a"), 0);
	assert_int_equal(plan_need_probe(&p, "vk-b"), 0);
	assert_int_equal(plan_need_probe(&p, "vk-a"), 0);
	assert_int_equal(p.outcome, PLAN_NEED_FACTS);
	assert_int_equal(p.n_probes, 2);
	assert_string_equal(p.probes[0], "vk-a");
	assert_string_equal(p.probes[1], "vk-b");
	plan_requeue_after(&p, 0);
	assert_int_equal(p.outcome, PLAN_NEED_FACTS);

	assert_int_equal(plan_error(&p, "probe %s: %s", "vk-a", "503"), 0);
	assert_int_equal(p.outcome, PLAN_ERROR);
	assert_string_equal(p.error, "probe vk-a: 503");
	plan_need_probe(&p, "vk-c");
	plan_requeue_after(&p, 5);
	assert_int_equal(p.outcome, PLAN_ERROR);
}

static void test_facts(void **state)
{
	_cleanup_(facts_done) struct facts f = { 0 };
	const char *error = NULL;

	assert_int_equal(facts_get(&f, "vk-a", &error), FACT_UNKNOWN);
	assert_int_equal(facts_get(NULL, "vk-a", &error), FACT_UNKNOWN);
	assert_int_equal(facts_set(&f, "vk-a", FACT_ERROR, "HEAD: 503 Service Unavailable"), 0);
	assert_int_equal(facts_set(&f, "vk-b", FACT_ABSENT, NULL), 0);
	assert_int_equal(facts_get(&f, "vk-a", &error), FACT_ERROR);
	assert_string_equal(error, "HEAD: 503 Service Unavailable");
	assert_int_equal(facts_get(&f, "vk-b", NULL), FACT_ABSENT);
	/* A later answer replaces the earlier one. */
	assert_int_equal(facts_set(&f, "vk-a", FACT_PRESENT, NULL), 0);
	assert_int_equal(facts_get(&f, "vk-a", NULL), FACT_PRESENT);
	assert_int_equal(f.n, 2);
	facts_done(&f);
	assert_int_equal(f.n, 0);
	assert_int_equal(facts_get(&f, "vk-a", NULL), FACT_UNKNOWN);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_annotate_bodies), cmocka_unit_test(test_other_actions),
		cmocka_unit_test(test_null_body),       cmocka_unit_test(test_outcomes),
		cmocka_unit_test(test_facts),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
