/* One CocoonSet pass as the API would see it (operator-webhook.md §2.3–2.13): each test
 * builds the cluster state a user would have (the CocoonSet, its pods as the operator built
 * them and vk-cocoon updated them, hibernation CRs, registry facts) and asserts the writes
 * the pass makes and how it requeues. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "../../operatord/operatord.h"
#include "cocoon/kube.h"
#include "cocoon/meta.h"

#define NOW (UINT64_C(1767225600) * USEC_PER_SEC) /* 2026-01-01T00:00:00Z */

static json_t *cs_obj(const char *spec)
{
	json_error_t e;
	json_t *s = json_loads(spec, 0, &e), *o;

	assert_non_null(s);
	o = json_pack("{s:s, s:s, s:{s:s, s:s, s:s, s:s, s:I, s:[s]}, s:o}", "apiVersion",
		      META_API_VERSION, "kind", "CocoonSet", "metadata", "namespace", "ns", "name",
		      "demo", "uid", "uid-demo", "resourceVersion", "7", "generation", (json_int_t)3,
		      "finalizers", OPERATORD_FINALIZER, "spec", s);
	assert_non_null(o);
	return o;
}

static struct cs *parse(json_t *obj)
{
	struct cs *cs = NULL;
	char *err = NULL;

	assert_int_equal(cs_parse(obj, &cs, &err), 0);
	free(err);
	return cs;
}

static void set_ann(json_t *pod, const char *k, const char *v)
{
	json_t *m = json_object_get(pod, "metadata"), *a = json_object_get(m, "annotations");

	if (!a) {
		a = json_object();
		json_object_set_new(m, "annotations", a);
	}
	if (v)
		json_object_set_new(a, k, json_string(v));
	else
		json_object_del(a, k);
}

/* A pod as pod_build makes it, then as the cluster changes it: bound to a node, phase and
 * Ready condition set, VM id from vk-cocoon. */
static json_t *pod_for(const struct cs *cs, int slot, const char *tb, bool ready, const char *phase)
{
	struct pod_build_options o = { .slot = slot, .toolbox = tb ? cs_toolbox_find(cs, tb) : NULL };
	char vm[128];
	json_t *pod = NULL;

	snprintf(vm, sizeof(vm), "vk-ns-demo-0");
	if (slot > 0) {
		o.fork_from = vm;
		o.node_name = "node-a";
	}
	assert_int_equal(pod_build(cs, &o, &pod), 0);
	json_object_set_new(json_object_get(pod, "metadata"), "uid", json_string("pod-uid"));
	json_object_set_new(json_object_get(pod, "spec"), "nodeName", json_string("node-a"));
	json_object_set_new(pod, "status",
			    json_pack("{s:s, s:[{s:s, s:s}], s:[{s:s, s:{s:{}}}]}", "phase", phase,
				      "conditions", "type", "Ready", "status", ready ? "True" : "False",
				      "containerStatuses", "name", "agent", "state", "running"));
	set_ann(pod, META_ANN_VM_ID, "vmid-1");
	return pod;
}

struct run {
	struct plan plan;
	struct facts facts;
};

static void plan_of(struct run *r, const struct cs *cs, json_t *pods, json_t *hibs)
{
	struct cs_inputs in = { .cs = cs, .pods = pods, .hibernations = hibs, .facts = &r->facts,
				.now_usec = NOW };

	plan_done(&r->plan);
	assert_int_equal(cs_plan(&in, &r->plan), 0);
}

static void run_done(struct run *r)
{
	plan_done(&r->plan);
	facts_done(&r->facts);
}

static size_t count_kind(const struct plan *p, enum action_kind k)
{
	size_t n = 0;

	for (size_t i = 0; i < p->n_actions; i++)
		n += p->actions[i].kind == k;
	return n;
}

static const struct action *nth_kind(const struct plan *p, enum action_kind k, size_t nth)
{
	for (size_t i = 0; i < p->n_actions; i++)
		if (p->actions[i].kind == k && nth-- == 0)
			return &p->actions[i];
	fail_msg("no action of kind %d", k);
	return NULL;
}

static const char *body_str(const struct action *a, const char *path)
{
	const json_t *v = a->body;
	char buf[256], *save = NULL;

	snprintf(buf, sizeof(buf), "%s", path);
	for (char *t = strtok_r(buf, ".", &save); t; t = strtok_r(NULL, ".", &save))
		v = json_object_get(v, t);
	return json_string_value(v);
}

static const char *pod_ann(const json_t *pod, const char *k)
{
	return json_string_value(
		json_object_get(json_object_get(json_object_get(pod, "metadata"), "annotations"), k));
}

static const char *status_phase_of(const struct plan *p)
{
	const struct action *a = nth_kind(p, ACT_STATUS_PATCH, 0);
	return json_string_value(json_object_get(json_object_get(a->body, "status"), "phase"));
}

/* Applies the pass's status patch to the object, as the apiserver would. */
static void apply_status(json_t *obj, const struct plan *p)
{
	const struct action *a = nth_kind(p, ACT_STATUS_PATCH, 0);
	json_t *st = json_object_get(obj, "status");
	const char *k;
	json_t *v;

	if (!st) {
		st = json_object();
		json_object_set_new(obj, "status", st);
	}
	json_object_foreach(json_object_get(a->body, "status"), k, v) {
		if (json_is_null(v))
			json_object_del(st, k);
		else
			json_object_set(st, k, v);
	}
}

static void test_finalizer_first(void **state)
{
	json_t *obj = cs_obj("{\"agent\":{\"image\":\"ubuntu\"}}"), *pods = json_array();
	struct run r = {};
	struct cs *cs;

	json_object_del(json_object_get(obj, "metadata"), "finalizers");
	cs = parse(obj);
	plan_of(&r, cs, pods, NULL);
	assert_int_equal(r.plan.n_actions, 1);
	assert_int_equal(r.plan.actions[0].kind, ACT_OBJ_UPDATE);
	assert_string_equal(json_string_value(json_array_get(
				    json_object_get(json_object_get(r.plan.actions[0].body, "metadata"),
						    "finalizers"), 0)),
			    OPERATORD_FINALIZER);
	assert_int_equal(r.plan.outcome, PLAN_REQUEUE);
	run_done(&r);
	cs_free(cs);
	json_decref(pods);
	json_decref(obj);
}

/* A new set: the main first, nothing else until it is Ready. */
static void test_main_then_subs(void **state)
{
	json_t *obj = cs_obj("{\"agent\":{\"image\":\"ubuntu\",\"replicas\":2}}");
	struct cs *cs = parse(obj);
	json_t *pods = json_array();
	struct run r = {};
	const struct action *a;

	plan_of(&r, cs, pods, NULL);
	assert_int_equal(count_kind(&r.plan, ACT_POD_CREATE), 1);
	a = nth_kind(&r.plan, ACT_POD_CREATE, 0);
	assert_string_equal(body_str(a, "metadata.name"), "demo-0");
	assert_true(a->flags & ACT_EXISTS_REQUEUE);
	assert_int_equal(r.plan.outcome, PLAN_REQUEUE);

	json_array_append_new(pods, pod_for(cs, 0, NULL, false, "Pending"));
	plan_of(&r, cs, pods, NULL);
	assert_int_equal(count_kind(&r.plan, ACT_POD_CREATE), 0);
	assert_string_equal(status_phase_of(&r.plan), "Pending");
	assert_int_equal(r.plan.outcome, PLAN_REQUEUE_AFTER);
	assert_int_equal(r.plan.requeue_after_usec, OPERATORD_POLL_USEC);

	json_array_set_new(pods, 0, pod_for(cs, 0, NULL, true, "Running"));
	set_ann(json_array_get(pods, 0), META_ANN_VM_NAME, "vk-ns-demo-0");
	plan_of(&r, cs, pods, NULL);
	assert_int_equal(count_kind(&r.plan, ACT_POD_CREATE), 2);
	for (size_t i = 0; i < 2; i++) {
		a = nth_kind(&r.plan, ACT_POD_CREATE, i);
		assert_true(a->flags & ACT_PARALLEL);
		assert_true(a->flags & ACT_IGNORE_EXISTS);
		assert_string_equal(body_str(a, "spec.nodeName"), "node-a");
		assert_string_equal(pod_ann(a->body, META_ANN_FORK_FROM), "vk-ns-demo-0");
	}
	assert_string_equal(body_str(nth_kind(&r.plan, ACT_POD_CREATE, 1), "metadata.name"),
			    "demo-2");
	assert_int_equal(count_kind(&r.plan, ACT_STATUS_PATCH), 0); /* no status this pass */
	assert_int_equal(r.plan.outcome, PLAN_REQUEUE);
	run_done(&r);
	cs_free(cs);
	json_decref(pods);
	json_decref(obj);
}

/* Converged: the second pass after the status write makes no write at all. */
static void test_steady_state_writes_nothing(void **state)
{
	json_t *obj = cs_obj("{\"agent\":{\"image\":\"ubuntu\",\"replicas\":1}}");
	struct cs *cs = parse(obj), *cs2;
	json_t *pods = json_array();
	struct run r = {};

	json_array_append_new(pods, pod_for(cs, 0, NULL, true, "Running"));
	json_array_append_new(pods, pod_for(cs, 1, NULL, true, "Running"));
	plan_of(&r, cs, pods, NULL);
	assert_int_equal(r.plan.n_actions, 1);
	assert_string_equal(status_phase_of(&r.plan), "Running");
	assert_int_equal(r.plan.outcome, PLAN_DONE);
	apply_status(obj, &r.plan);
	cs2 = parse(obj);
	plan_of(&r, cs2, pods, NULL);
	assert_int_equal(r.plan.n_actions, 0);
	assert_int_equal(r.plan.outcome, PLAN_DONE);
	run_done(&r);
	cs_free(cs);
	cs_free(cs2);
	json_decref(pods);
	json_decref(obj);
}

static void test_scale_down_ascending(void **state)
{
	json_t *obj = cs_obj("{\"agent\":{\"image\":\"ubuntu\",\"replicas\":1}}");
	struct cs *cs = parse(obj);
	json_t *pods = json_array();
	struct run r = {};

	json_array_append_new(pods, pod_for(cs, 0, NULL, true, "Running"));
	for (int s = 3; s >= 1; s--)
		json_array_append_new(pods, pod_for(cs, s, NULL, true, "Running"));
	plan_of(&r, cs, pods, NULL);
	assert_int_equal(count_kind(&r.plan, ACT_POD_DELETE), 2);
	assert_string_equal(nth_kind(&r.plan, ACT_POD_DELETE, 0)->name, "demo-2");
	assert_string_equal(nth_kind(&r.plan, ACT_POD_DELETE, 1)->name, "demo-3");
	assert_int_equal(r.plan.outcome, PLAN_REQUEUE);
	run_done(&r);
	cs_free(cs);
	json_decref(pods);
	json_decref(obj);
}

/* A changed image recreates the main; the event says why. */
static void test_drift_recreates(void **state)
{
	json_t *obj = cs_obj("{\"agent\":{\"image\":\"ubuntu\"}}"), *obj2;
	struct cs *cs = parse(obj), *cs2;
	json_t *pods = json_array();
	struct run r = {};
	const struct action *ev;

	json_array_append_new(pods, pod_for(cs, 0, NULL, true, "Running"));
	obj2 = cs_obj("{\"agent\":{\"image\":\"debian\"}}");
	cs2 = parse(obj2);
	plan_of(&r, cs2, pods, NULL);
	assert_int_equal(count_kind(&r.plan, ACT_POD_DELETE), 1);
	assert_string_equal(nth_kind(&r.plan, ACT_POD_DELETE, 0)->name, "demo-0");
	ev = nth_kind(&r.plan, ACT_EVENT, 0);
	assert_non_null(strstr(ev->message, "debian"));
	assert_int_equal(r.plan.outcome, PLAN_REQUEUE);
	run_done(&r);
	cs_free(cs);
	cs_free(cs2);
	json_decref(pods);
	json_decref(obj);
	json_decref(obj2);
}

static json_t *history(const char *slot, int count, uint64_t when)
{
	char ts[KUBE_TIME_MAX], buf[256];

	kube_time_format(when, false, ts);
	snprintf(buf, sizeof(buf), "{\"%s\":{\"count\":%d,\"lastDeleted\":\"%s\"}}", slot, count, ts);
	return json_string(buf);
}

/* §2.6: a terminal sub-agent is rebuilt after its backoff, history written first; after
 * four rebuilds it stays, dead-lettered. */
static void test_rebuild_backoff_and_dead_letter(void **state)
{
	json_t *obj = cs_obj("{\"agent\":{\"image\":\"ubuntu\",\"replicas\":1}}");
	json_t *meta = json_object_get(obj, "metadata"), *ann = json_object();
	json_t *pods = json_array();
	struct run r = {};
	struct cs *cs = parse(obj);

	json_array_append_new(pods, pod_for(cs, 0, NULL, true, "Running"));
	json_array_append_new(pods, pod_for(cs, 1, NULL, false, "Failed"));
	cs_free(cs);

	/* First failure: history {count 1} persisted, then the delete. */
	cs = parse(obj);
	plan_of(&r, cs, pods, NULL);
	assert_true(nth_kind(&r.plan, ACT_OBJ_PATCH, 0) < nth_kind(&r.plan, ACT_POD_DELETE, 0));
	assert_non_null(strstr(pod_ann(nth_kind(&r.plan, ACT_OBJ_PATCH, 0)->body, META_ANN_REBUILD_HISTORY),
			       "\"count\":1"));
	assert_string_equal(nth_kind(&r.plan, ACT_EVENT, 0)->reason, "SubAgentRebuilding");
	assert_string_equal(nth_kind(&r.plan, ACT_EVENT, 0)->message, "slot 1 attempt 1/4");
	cs_free(cs);

	/* Second failure 2 s after the first rebuild: backoff for count 1 is 1 s → rebuild;
	 * third failure 1 s after: backoff 5 s → wait the remaining 4 s. */
	json_object_set_new(meta, "annotations", ann);
	json_object_set_new(ann, META_ANN_REBUILD_HISTORY, history("1", 2, NOW - 1 * USEC_PER_SEC));
	cs = parse(obj);
	plan_of(&r, cs, pods, NULL);
	assert_int_equal(count_kind(&r.plan, ACT_POD_DELETE), 0);
	assert_int_equal(r.plan.outcome, PLAN_REQUEUE_AFTER);
	assert_int_equal(r.plan.requeue_after_usec, 4 * USEC_PER_SEC);
	cs_free(cs);

	json_object_set_new(ann, META_ANN_REBUILD_HISTORY, history("1", 4, NOW - 60 * USEC_PER_SEC));
	cs = parse(obj);
	plan_of(&r, cs, pods, NULL);
	assert_int_equal(count_kind(&r.plan, ACT_POD_DELETE), 0);
	assert_string_equal(nth_kind(&r.plan, ACT_POD_PATCH, 0)->name, "demo-1");
	assert_string_equal(pod_ann(nth_kind(&r.plan, ACT_POD_PATCH, 0)->body, META_ANN_DEAD_LETTER),
			    "true");
	assert_string_equal(nth_kind(&r.plan, ACT_EVENT, 0)->message,
			    "slot 1 exhausted 4 rebuilds; pod demo-1 left in dead-letter");
	run_done(&r);
	cs_free(cs);
	json_decref(pods);
	json_decref(obj);
}

static void set_lifecycle(json_t *pod, const char *state, const char *gen)
{
	set_ann(pod, META_ANN_LIFECYCLE_STATE, state);
	set_ann(pod, META_ANN_LIFECYCLE_OBSERVED_GENERATION, gen);
}

/* §2.9: annotate, then complete only on lifecycle hibernated + generation floor + tag. */
static void test_suspend_gate(void **state)
{
	json_t *obj = cs_obj("{\"suspend\":true,\"agent\":{\"image\":\"ubuntu\"}}");
	struct cs *cs = parse(obj);
	json_t *pods = json_array(), *main;
	struct run r = {};

	main = pod_for(cs, 0, NULL, true, "Running");
	set_ann(main, META_ANN_VM_NAME, "vk-ns-demo-0");
	json_array_append_new(pods, main);
	plan_of(&r, cs, pods, NULL);
	assert_string_equal(pod_ann(nth_kind(&r.plan, ACT_POD_PATCH, 0)->body, META_ANN_HIBERNATE),
			    "true");
	assert_string_equal(status_phase_of(&r.plan), "Suspending");
	assert_int_equal(r.plan.requeue_after_usec, OPERATORD_POLL_USEC);

	/* A stale tag with an old generation does not complete the suspend. */
	set_ann(main, META_ANN_HIBERNATE, "true");
	set_lifecycle(main, "hibernated", "2");
	facts_set(&r.facts, "vk-ns-demo-0", FACT_PRESENT, NULL);
	plan_of(&r, cs, pods, NULL);
	assert_string_equal(status_phase_of(&r.plan), "Suspending");

	set_lifecycle(main, "hibernated", "3");
	facts_done(&r.facts);
	plan_of(&r, cs, pods, NULL);
	assert_int_equal(r.plan.outcome, PLAN_NEED_FACTS);
	assert_int_equal(r.plan.n_probes, 1);
	assert_string_equal(r.plan.probes[0], "vk-ns-demo-0");

	facts_set(&r.facts, "vk-ns-demo-0", FACT_ABSENT, NULL);
	plan_of(&r, cs, pods, NULL);
	assert_string_equal(status_phase_of(&r.plan), "Suspending");

	facts_done(&r.facts);
	facts_set(&r.facts, "vk-ns-demo-0", FACT_ERROR, "connection refused");
	plan_of(&r, cs, pods, NULL);
	assert_int_equal(r.plan.outcome, PLAN_ERROR);
	assert_non_null(strstr(r.plan.error, "connection refused"));

	facts_done(&r.facts);
	facts_set(&r.facts, "vk-ns-demo-0", FACT_PRESENT, NULL);
	plan_of(&r, cs, pods, NULL);
	assert_string_equal(status_phase_of(&r.plan), "Suspended");
	assert_int_equal(r.plan.outcome, PLAN_DONE);
	run_done(&r);
	cs_free(cs);
	json_decref(pods);
	json_decref(obj);
}

static json_t *hibernation(const char *pod, const char *desire, const char *phase)
{
	return json_pack("{s:s, s:s, s:{s:s, s:s, s:s}, s:{s:{s:s}, s:s}, s:{s:s}}", "apiVersion",
			 META_API_VERSION, "kind", "CocoonHibernation", "metadata", "namespace", "ns",
			 "name", pod, "uid", "uid-ch", "spec", "podRef", "name", pod, "desire", desire,
			 "status", "phase", phase);
}

/* Unsuspend wakes pods, except one a CocoonHibernation keeps asleep. */
static void test_unsuspend_respects_hibernations(void **state)
{
	json_t *obj = cs_obj("{\"agent\":{\"image\":\"ubuntu\",\"replicas\":1}}");
	struct cs *cs = parse(obj);
	json_t *pods = json_array(), *hibs = json_array();
	struct run r = {};

	json_array_append_new(pods, pod_for(cs, 0, NULL, true, "Running"));
	json_array_append_new(pods, pod_for(cs, 1, NULL, true, "Running"));
	set_ann(json_array_get(pods, 0), META_ANN_HIBERNATE, "true");
	set_ann(json_array_get(pods, 1), META_ANN_HIBERNATE, "true");
	json_array_append_new(hibs, hibernation("demo-1", "Hibernate", "Hibernated"));
	plan_of(&r, cs, pods, hibs);
	assert_int_equal(count_kind(&r.plan, ACT_POD_PATCH), 1);
	assert_string_equal(nth_kind(&r.plan, ACT_POD_PATCH, 0)->name, "demo-0");
	assert_true(json_is_null(json_object_get(
		json_object_get(json_object_get(nth_kind(&r.plan, ACT_POD_PATCH, 0)->body,
						"metadata"), "annotations"),
		META_ANN_HIBERNATE)));
	run_done(&r);
	cs_free(cs);
	json_decref(pods);
	json_decref(hibs);
	json_decref(obj);
}

/* §2.12: a main recreated while its CR says Hibernated restores from the tag. */
static void test_restore_intent(void **state)
{
	json_t *obj = cs_obj("{\"agent\":{\"image\":\"ubuntu\"}}");
	struct cs *cs = parse(obj);
	json_t *hibs = json_array(), *pods = json_array();
	struct run r = {};

	json_array_append_new(hibs, hibernation("demo-0", "Hibernate", "Hibernated"));
	plan_of(&r, cs, pods, hibs);
	assert_int_equal(r.plan.outcome, PLAN_NEED_FACTS);
	assert_string_equal(r.plan.probes[0], "vk-ns-demo-0");
	facts_set(&r.facts, "vk-ns-demo-0", FACT_PRESENT, NULL);
	plan_of(&r, cs, pods, hibs);
	assert_string_equal(pod_ann(nth_kind(&r.plan, ACT_POD_CREATE, 0)->body,
				    META_ANN_RESTORE_FROM_HIBERNATE),
			    "true");
	facts_done(&r.facts);
	facts_set(&r.facts, "vk-ns-demo-0", FACT_ERROR, "503");
	plan_of(&r, cs, pods, hibs);
	assert_int_equal(r.plan.outcome, PLAN_ERROR); /* fail closed: no fresh boot */
	assert_int_equal(count_kind(&r.plan, ACT_POD_CREATE), 0);
	run_done(&r);
	cs_free(cs);
	json_decref(pods);
	json_decref(hibs);
	json_decref(obj);
}

/* §2.13: stash VM names, delete pods, wait; then tags by policy and the finalizer. */
static void test_delete_flow(void **state)
{
	json_t *obj = cs_obj("{\"snapshotPolicy\":\"main-only\",\"agent\":{\"image\":\"ubuntu\","
			     "\"replicas\":1}}");
	json_t *pods = json_array();
	struct run r = {};
	struct cs *cs = parse(obj);
	const struct action *upd;

	json_array_append_new(pods, pod_for(cs, 0, NULL, true, "Running"));
	json_array_append_new(pods, pod_for(cs, 1, NULL, true, "Running"));
	set_ann(json_array_get(pods, 0), META_ANN_VM_NAME, "vk-ns-demo-0");
	set_ann(json_array_get(pods, 1), META_ANN_VM_NAME, "vk-ns-demo-1");
	cs_free(cs);
	json_object_set_new(json_object_get(obj, "metadata"), "deletionTimestamp",
			    json_string("2026-01-01T00:00:00Z"));
	cs = parse(obj);
	plan_of(&r, cs, pods, NULL);
	assert_string_equal(pod_ann(nth_kind(&r.plan, ACT_OBJ_PATCH, 0)->body, META_ANN_DELETE_VM_NAMES),
			    "vk-ns-demo-0,vk-ns-demo-1");
	assert_int_equal(count_kind(&r.plan, ACT_POD_DELETE), 2);
	assert_int_equal(count_kind(&r.plan, ACT_TAG_DELETE), 0);
	assert_int_equal(r.plan.requeue_after_usec, OPERATORD_POLL_USEC);
	cs_free(cs);

	set_ann(obj, META_ANN_DELETE_VM_NAMES, "vk-ns-demo-0,vk-ns-demo-1");
	cs = parse(obj);
	json_array_clear(pods);
	plan_of(&r, cs, pods, NULL);
	assert_int_equal(count_kind(&r.plan, ACT_TAG_DELETE), 3); /* hibernate ×2, latest of 1 */
	assert_string_equal(nth_kind(&r.plan, ACT_TAG_DELETE, 2)->name, "vk-ns-demo-1");
	assert_string_equal(nth_kind(&r.plan, ACT_TAG_DELETE, 2)->tag, "latest");
	upd = nth_kind(&r.plan, ACT_OBJ_UPDATE, 0);
	assert_int_equal(json_array_size(json_object_get(json_object_get(upd->body, "metadata"),
							 "finalizers")), 0);
	assert_int_equal(r.plan.outcome, PLAN_DONE);
	run_done(&r);
	cs_free(cs);
	json_decref(pods);
	json_decref(obj);
}

/* §2.3 step 7: a failed main is reported, not hidden. */
static void test_failed_main(void **state)
{
	json_t *obj = cs_obj("{\"agent\":{\"image\":\"ubuntu\"}}");
	struct cs *cs = parse(obj);
	json_t *pods = json_array();
	struct run r = {};

	json_array_append_new(pods, pod_for(cs, 0, NULL, false, "Running"));
	set_ann(json_array_get(pods, 0), META_ANN_LIFECYCLE_STATE, "failed");
	set_ann(json_array_get(pods, 0), META_ANN_LIFECYCLE_STATE_MESSAGE, "clone failed: no space");
	plan_of(&r, cs, pods, NULL);
	assert_string_equal(nth_kind(&r.plan, ACT_EVENT, 0)->reason, "PodLifecycleFailed");
	assert_string_equal(nth_kind(&r.plan, ACT_EVENT, 0)->message,
			    "main pod ns/demo-0: clone failed: no space");
	assert_string_equal(nth_kind(&r.plan, ACT_COUNT, 0)->metric,
			    "lifecycle_state_failed_observed_total");
	assert_string_equal(status_phase_of(&r.plan), "Failed");
	assert_int_equal(r.plan.outcome, PLAN_DONE);
	run_done(&r);
	cs_free(cs);
	json_decref(pods);
	json_decref(obj);
}

/* §2.7: toolboxes created, removed ones deleted, bad names refused. */
static void test_toolboxes(void **state)
{
	json_t *obj = cs_obj("{\"agent\":{\"image\":\"ubuntu\"},\"toolboxes\":[{\"name\":\"win\","
			     "\"os\":\"windows\",\"image\":\"win2022\"}]}");
	json_t *bad = cs_obj("{\"agent\":{\"image\":\"ubuntu\"},\"toolboxes\":[{\"name\":\"7\","
			     "\"image\":\"x\"}]}");
	json_t *old = cs_obj("{\"agent\":{\"image\":\"ubuntu\"},\"toolboxes\":[{\"name\":\"gone\","
			     "\"image\":\"x\"}]}");
	struct cs *cs = parse(obj), *csb = parse(bad), *cso = parse(old);
	json_t *pods = json_array();
	struct run r = {};

	json_array_append_new(pods, pod_for(cs, 0, NULL, true, "Running"));
	json_array_append_new(pods, pod_for(cso, -1, "gone", true, "Running"));
	plan_of(&r, cs, pods, NULL);
	assert_string_equal(body_str(nth_kind(&r.plan, ACT_POD_CREATE, 0), "metadata.name"),
			    "demo-win");
	assert_string_equal(nth_kind(&r.plan, ACT_POD_DELETE, 0)->name, "demo-gone");
	plan_of(&r, csb, pods, NULL);
	assert_int_equal(r.plan.outcome, PLAN_ERROR);
	assert_string_equal(r.plan.error, "toolbox name \"7\" must not be an integer: collides "
					  "with agent slot pod naming");
	run_done(&r);
	cs_free(cs);
	cs_free(csb);
	cs_free(cso);
	json_decref(pods);
	json_decref(obj);
	json_decref(bad);
	json_decref(old);
}

/* The seed's legacy CocoonSet goes through the same engine, owned by the legacy object. */
static void test_legacy_same_engine(void **state)
{
	json_t *obj = cs_obj("{\"agent\":{\"image\":\"ubuntu-dev-base\",\"replicas\":1,"
			     "\"resources\":{\"cpu\":\"2\",\"memory\":\"4Gi\"}}}");
	struct cs *cs;
	struct run r = {};
	json_t *pods = json_array();
	const struct action *a;

	json_object_set_new(obj, "apiVersion", json_string(META_LEGACY_API_VERSION));
	cs = parse(obj);
	plan_of(&r, cs, pods, NULL);
	a = nth_kind(&r.plan, ACT_POD_CREATE, 0);
	assert_string_equal(json_string_value(json_object_get(
				    json_array_get(json_object_get(json_object_get(a->body, "metadata"),
								   "ownerReferences"), 0),
				    "apiVersion")),
			    META_LEGACY_API_VERSION);
	assert_string_equal(pod_ann(a->body, META_ANN_IMAGE), "ubuntu-dev-base");
	run_done(&r);
	cs_free(cs);
	json_decref(pods);
	json_decref(obj);
}

/* A pod name held by a terminating pod is waited for, not created into AlreadyExists. */
static void test_terminating_name_waits(void **state)
{
	json_t *obj = cs_obj("{\"agent\":{\"image\":\"ubuntu\",\"replicas\":1}}");
	struct cs *cs = parse(obj);
	json_t *pods = json_array(), *old;
	struct run r = {};

	old = pod_for(cs, 0, NULL, false, "Running");
	json_object_set_new(json_object_get(old, "metadata"), "deletionTimestamp",
			    json_string("2026-01-01T00:00:00Z"));
	json_array_append_new(pods, old);
	plan_of(&r, cs, pods, NULL);
	assert_int_equal(count_kind(&r.plan, ACT_POD_CREATE), 0);
	assert_int_equal(r.plan.outcome, PLAN_REQUEUE_AFTER);
	assert_int_equal(r.plan.requeue_after_usec, OPERATORD_POLL_USEC);
	assert_string_equal(r.plan.note, "waiting for the old pod demo-0 to finish terminating");

	/* a sub-agent slot too: the main is Ready, slot 1's old pod still terminating */
	json_array_set_new(pods, 0, pod_for(cs, 0, NULL, true, "Running"));
	old = pod_for(cs, 1, NULL, false, "Failed");
	json_object_set_new(json_object_get(old, "metadata"), "deletionTimestamp",
			    json_string("2026-01-01T00:00:00Z"));
	json_array_append_new(pods, old);
	plan_of(&r, cs, pods, NULL);
	assert_int_equal(count_kind(&r.plan, ACT_POD_CREATE), 0);
	assert_int_equal(r.plan.requeue_after_usec, OPERATORD_POLL_USEC);
	run_done(&r);
	cs_free(cs);
	json_decref(pods);
	json_decref(obj);
}

/* The cache keeps trimmed pods (cs_pod_trim): every decision must come out the same. */
static void test_trimmed_pods_plan_the_same(void **state)
{
	json_t *obj = cs_obj("{\"agent\":{\"image\":\"ubuntu\",\"replicas\":2,\"resources\":"
			     "{\"limits\":{\"cpu\":\"2\",\"memory\":\"4Gi\"}}},\"toolboxes\":"
			     "[{\"name\":\"win\",\"os\":\"windows\",\"image\":\"w\"}]}");
	struct cs *cs = parse(obj);
	json_t *pods = json_array(), *trimmed;
	struct run full = {}, trim = {};

	json_array_append_new(pods, pod_for(cs, 0, NULL, true, "Running"));
	json_array_append_new(pods, pod_for(cs, 1, NULL, true, "Running"));
	json_array_append_new(pods, pod_for(cs, 2, NULL, false, "Failed"));
	json_array_append_new(pods, pod_for(cs, -1, "win", true, "Running"));
	set_ann(json_array_get(pods, 0), META_ANN_VM_NAME, "vk-ns-demo-0");
	/* what an apiserver adds */
	for (size_t i = 0; i < json_array_size(pods); i++) {
		json_t *p = json_array_get(pods, i);

		json_object_set_new(json_object_get(p, "spec"), "volumes",
				    json_pack("[{s:s}]", "name", "kube-api-access"));
		json_object_set_new(json_object_get(p, "spec"), "dnsPolicy", json_string("ClusterFirst"));
		json_object_set_new(json_object_get(p, "metadata"), "creationTimestamp",
				    json_string("2026-01-01T00:00:00Z"));
		json_object_set_new(json_object_get(p, "status"), "hostIP", json_string("10.0.0.1"));
	}
	trimmed = json_deep_copy(pods);
	for (size_t i = 0; i < json_array_size(trimmed); i++) {
		cs_pod_trim(json_array_get(trimmed, i));
		assert_null(json_object_get(json_object_get(json_array_get(trimmed, i), "spec"),
					    "volumes"));
	}
	plan_of(&full, cs, pods, NULL);
	plan_of(&trim, cs, trimmed, NULL);
	assert_int_equal(full.plan.n_actions, trim.plan.n_actions);
	assert_int_equal(full.plan.outcome, trim.plan.outcome);
	for (size_t i = 0; i < full.plan.n_actions; i++) {
		assert_int_equal(full.plan.actions[i].kind, trim.plan.actions[i].kind);
		assert_true(streq_ptr(full.plan.actions[i].name, trim.plan.actions[i].name));
		assert_true(json_equal(full.plan.actions[i].body, trim.plan.actions[i].body) ||
			    (!full.plan.actions[i].body && !trim.plan.actions[i].body));
	}
	assert_true(full.plan.n_actions > 0); /* the failed sub-agent is rebuilt */
	/* and with it Ready, the status write is the same too */
	json_array_set_new(pods, 2, pod_for(cs, 2, NULL, true, "Running"));
	json_array_set_new(trimmed, 2, json_deep_copy(json_array_get(pods, 2)));
	cs_pod_trim(json_array_get(trimmed, 2));
	plan_of(&full, cs, pods, NULL);
	plan_of(&trim, cs, trimmed, NULL);
	assert_true(json_equal(nth_kind(&full.plan, ACT_STATUS_PATCH, 0)->body,
			       nth_kind(&trim.plan, ACT_STATUS_PATCH, 0)->body));
	run_done(&full);
	run_done(&trim);
	cs_free(cs);
	json_decref(pods);
	json_decref(trimmed);
	json_decref(obj);
}

/* Later work (CONTRACT.md §3) is reported on the object, not silently ignored. */
static void test_unsupported_said_out_loud(void **state)
{
	json_t *obj = cs_obj("{\"suspend\":true,\"hibernatePolicy\":\"release\","
			     "\"nodeName\":\"node-b\",\"agent\":{\"image\":\"ubuntu\"}}");
	struct cs *cs = parse(obj);
	json_t *pods = json_array();
	struct run r = {};

	json_array_append_new(pods, pod_for(cs, 0, NULL, true, "Running"));
	plan_of(&r, cs, pods, NULL);
	assert_string_equal(nth_kind(&r.plan, ACT_EVENT, 0)->reason, "HibernatePolicyNotSupported");
	assert_string_equal(nth_kind(&r.plan, ACT_EVENT, 1)->reason, "MigrationNotSupported");
	assert_non_null(strstr(nth_kind(&r.plan, ACT_EVENT, 1)->message, "runs on node-a"));
	/* and the suspend still happens, as with retain */
	assert_string_equal(status_phase_of(&r.plan), "Suspending");
	run_done(&r);
	cs_free(cs);
	json_decref(pods);
	json_decref(obj);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_finalizer_first),
		cmocka_unit_test(test_main_then_subs),
		cmocka_unit_test(test_steady_state_writes_nothing),
		cmocka_unit_test(test_scale_down_ascending),
		cmocka_unit_test(test_drift_recreates),
		cmocka_unit_test(test_rebuild_backoff_and_dead_letter),
		cmocka_unit_test(test_suspend_gate),
		cmocka_unit_test(test_unsuspend_respects_hibernations),
		cmocka_unit_test(test_restore_intent),
		cmocka_unit_test(test_delete_flow),
		cmocka_unit_test(test_failed_main),
		cmocka_unit_test(test_toolboxes),
		cmocka_unit_test(test_legacy_same_engine),
		cmocka_unit_test(test_unsupported_said_out_loud),
		cmocka_unit_test(test_terminating_name_waits),
		cmocka_unit_test(test_trimmed_pods_plan_the_same),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
