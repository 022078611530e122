/* The hibernation reconciler (hib.c, hibplan.c; operator-webhook.md §2.14, §2.15, §2.17):
 * one row per situation, asserting the exact writes a user would see on the API (pod
 * patches, status merge patches, events, metrics, tag deletes, finalizer updates) and how
 * the pass is requeued. Times are fixed: NOW, and the Ready lastTransitionTime `ago`
 * seconds before it; "@NOW" and "@LTT" in expected bodies stand for those two. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../operatord/operatord.h"
#include "cocoon/kube.h"

#define NS       "team-a"
#define POD      "demo-0"
#define VM       "vk-team-a-demo-0"
#define NOW      (UINT64_C(1786000000) * USEC_PER_SEC)
#define REGISTRY "registry.example:5000/cocoon"
#define HIB_FIN  "cocoonhibernation.cocoonset.cocoonstack.io/finalizer"

#define M_HIB  "hibernate_phase_duration_seconds"
#define M_WAKE "wake_phase_duration_seconds"

/* ---- inputs ---- */

struct cr {
	bool legacy;
	const char *desire; /* spec.desire / spec.action; NULL: absent */
	bool no_pod_ref;
	const char *phase; /* NULL: no status */
	const char *ready; /* v1 Ready status; NULL: no condition */
	const char *message;
	unsigned ago;        /* Ready (legacy: status) lastTransitionTime = NOW - ago s */
	bool no_vm;          /* status without vmName */
	bool old_generation; /* observedGeneration 1 (metadata.generation is 2) */
	const char *snapshot_ref;
	bool no_finalizer, deleting;
};

struct pod {
	bool absent;
	bool no_vm;
	bool hibernate, legacy_hibernate;
	const char *lifecycle;
	const char *observed; /* lifecycle-observed-generation; NULL: "3" */
	bool running;         /* VM id set, container running */
};

static const char *ltt_string(unsigned ago, char buf[static KUBE_TIME_MAX])
{
	return kube_time_format(NOW - ago * USEC_PER_SEC, false, buf);
}

static json_t *cr_status(const struct cr *c)
{
	char buf[KUBE_TIME_MAX];
	json_t *st = json_pack("{s:s}", "phase", c->phase);

	if (!c->no_vm)
		json_object_set_new(st, "vmName", json_string(VM));
	if (c->legacy) {
		json_object_set_new(st, "message", json_string(c->message ? c->message : ""));
		json_object_set_new(st, "lastTransitionTime", json_string(ltt_string(c->ago, buf)));
		if (c->snapshot_ref)
			json_object_set_new(st, "snapshotRef", json_string(c->snapshot_ref));
		return st;
	}
	json_object_set_new(st, "observedGeneration", json_integer(c->old_generation ? 1 : 2));
	json_object_set_new(
	    st, "conditions",
	    json_pack("[{s:s, s:s}, {s:s, s:s, s:s, s:s, s:s, s:i}]", "type", "Other", "status",
		      "True", "type", "Ready", "status", c->ready ? c->ready : "False", "reason",
		      streq_ptr(c->ready, "True") ? "Done"
		      : streq(c->phase, "Failed") ? "Failed"
						  : "Pending",
		      "message", c->message ? c->message : c->phase, "lastTransitionTime",
		      ltt_string(c->ago, buf), "observedGeneration", 2));
	if (!c->ready)
		json_array_remove(json_object_get(st, "conditions"), 1);
	return st;
}

static json_t *cr_json(const struct cr *c)
{
	json_t *o, *meta, *spec;

	meta = json_pack("{s:s, s:s, s:s, s:i, s:s}", "name", POD, "namespace", NS, "uid", "uid-1",
			 "generation", 2, "resourceVersion", "41");
	json_object_set_new(meta, "finalizers",
			    c->no_finalizer ? json_pack("[s]", "example.com/keep")
					    : json_pack("[s, s]", "example.com/keep", HIB_FIN));
	if (c->deleting)
		json_object_set_new(meta, "deletionTimestamp", json_string("2026-08-06T00:00:00Z"));
	spec = json_object();
	if (c->legacy) {
		if (!c->no_pod_ref)
			json_object_set_new(spec, "podName", json_string(POD));
		if (c->desire)
			json_object_set_new(spec, "action", json_string(c->desire));
	} else {
		if (!c->no_pod_ref)
			json_object_set_new(spec, "podRef", json_pack("{s:s}", "name", POD));
		if (c->desire)
			json_object_set_new(spec, "desire", json_string(c->desire));
	}
	o = json_pack("{s:s, s:s, s:o, s:o}", "apiVersion",
		      c->legacy ? "cocoon.cis/v1alpha1" : "cocoonset.cocoonstack.io/v1", "kind",
		      c->legacy ? "Hibernation" : "CocoonHibernation", "metadata", meta, "spec",
		      spec);
	if (c->phase)
		json_object_set_new(o, "status", cr_status(c));
	assert_non_null(o);
	return o;
}

static json_t *pod_json(const struct pod *p)
{
	json_t *ann = json_pack("{s:s, s:s}", "cocoonset.cocoonstack.io/generation", "3",
				"vm.cocoonstack.io/lifecycle-observed-generation",
				p->observed ? p->observed : "3");

	if (!p->no_vm)
		json_object_set_new(ann, "vm.cocoonstack.io/name", json_string(VM));
	if (p->hibernate)
		json_object_set_new(ann, "vm.cocoonstack.io/hibernate", json_string("true"));
	if (p->legacy_hibernate)
		json_object_set_new(ann, "cocoon.cis/hibernate", json_string("true"));
	if (p->lifecycle)
		json_object_set_new(ann, "vm.cocoonstack.io/lifecycle-state",
				    json_string(p->lifecycle));
	if (p->running)
		json_object_set_new(ann, "vm.cocoonstack.io/id", json_string("0123abcd"));
	return json_pack(
	    "{s:{s:s, s:s, s:o}, s:{s:s, s:[{s:s, s:o}]}}", "metadata", "name", POD, "namespace",
	    NS, "annotations", ann, "status", "phase", "Running", "containerStatuses", "name",
	    "agent", "state",
	    p->running ? json_pack("{s:{s:s}}", "running", "startedAt", "2026-08-06T00:00:00Z")
		       : json_pack("{s:{s:s}}", "waiting", "reason", "Hibernated"));
}

/* ---- expectations ---- */

struct want {
	enum action_kind kind;
	const char *name; /* pod (patch), VM (tag delete) */
	const char *body; /* JSON; @NOW and @LTT expanded */
	const char *text; /* event "Type Reason message"; tag; metric name */
	double value;     /* observed seconds */
	unsigned flags;
};

struct row {
	const char *what;
	struct cr cr;
	struct pod pod;
	const char *fact; /* "present", "absent", "error"; NULL: not probed yet */
	bool exit_seen;   /* the exit of this LTT already fired */
	const char *others;
	enum plan_outcome outcome;
	const char *error;
	bool probe; /* PLAN_NEED_FACTS for VM */
	bool mark;  /* mark_exit_ltt_usec = the LTT */
	const struct want *actions;
	size_t n_actions;
};

#define ACTIONS(...)                                                                               \
	.actions = (const struct want[]){ __VA_ARGS__ },                                           \
	.n_actions = sizeof((const struct want[]){ __VA_ARGS__ }) / sizeof(struct want)

static char *expand(const char *text, unsigned ago)
{
	char now[KUBE_TIME_MAX], ltt[KUBE_TIME_MAX];
	size_t size = strlen(text) + 1;
	char *out = malloc(size * 6), *o = out;

	kube_time_format(NOW, false, now);
	ltt_string(ago, ltt);
	for (const char *s = text; *s;) {
		if (!strncmp(s, "@NOW", 4) || !strncmp(s, "@LTT", 4)) {
			o = stpcpy(o, s[1] == 'N' ? now : ltt);
			s += 4;
		} else
			*o++ = *s++;
	}
	*o = 0;
	return out;
}

static void assert_body(const json_t *got, const char *want_text, unsigned ago)
{
	char *text = expand(want_text, ago), *dump = json_dumps(got, JSON_SORT_KEYS);
	json_error_t e;
	json_t *want = json_loads(text, 0, &e);

	if (!want)
		fail_msg("bad expected JSON %s: %s", text, e.text);
	if (!json_equal(got, want))
		fail_msg("body\n  %s\nwant\n  %s", dump, text);
	free(text);
	free(dump);
	json_decref(want);
}

static void assert_action(const struct action *a, const struct want *w, unsigned ago)
{
	char text[512];

	assert_int_equal(a->kind, w->kind);
	assert_int_equal(a->flags, w->flags);
	if (w->name)
		assert_string_equal(a->name, w->name);
	switch (a->kind) {
	case ACT_EVENT:
		snprintf(text, sizeof(text), "%s %s %s", a->event_type, a->reason, a->message);
		assert_string_equal(text, w->text);
		break;
	case ACT_TAG_DELETE:
		assert_string_equal(a->tag, w->text);
		break;
	case ACT_OBSERVE:
		assert_string_equal(a->metric, w->text);
		assert_true(a->value > w->value - 0.001 && a->value < w->value + 0.001);
		assert_body(a->body, w->body, ago);
		break;
	case ACT_OBJ_UPDATE:
		/* The finalizer list, on the object as read (resourceVersion kept). */
		assert_string_equal(json_string_value(json_object_get(
					json_object_get(a->body, "metadata"), "resourceVersion")),
				    "41");
		assert_body(json_object_get(json_object_get(a->body, "metadata"), "finalizers"),
			    w->body, ago);
		break;
	default:
		assert_body(a->body, w->body, ago);
	}
}

static void run_row(const struct row *r)
{
	_cleanup_(hib_freep) struct hib *h = NULL;
	_cleanup_(facts_done) struct facts facts = { 0 };
	_cleanup_(plan_done) struct plan p = { 0 };
	_cleanup_(freep) char *error = NULL;
	json_t *obj = cr_json(&r->cr), *pod = r->pod.absent ? NULL : pod_json(&r->pod);
	json_t *others = json_loads(r->others ? r->others : "[]", 0, NULL);
	uint64_t ltt = NOW - r->cr.ago * USEC_PER_SEC;
	struct hib_inputs in;

	print_message("%s\n", r->what);
	assert_non_null(others);
	assert_int_equal(hib_parse(obj, &h, &error), 0);
	if (r->fact)
		facts_set(&facts, VM,
			  streq(r->fact, "present")  ? FACT_PRESENT
			  : streq(r->fact, "absent") ? FACT_ABSENT
						     : FACT_ERROR,
			  "HEAD: 503 Service Unavailable");
	in = (struct hib_inputs){ .hib = h,
				  .pod = pod,
				  .others = others,
				  .facts = &facts,
				  .now_usec = NOW,
				  .exit_seen_ltt_usec = r->exit_seen ? ltt : 0,
				  .registry = REGISTRY };
	assert_int_equal(hib_plan(&in, &p), 0);

	for (size_t i = 0; i < p.n_actions && i < r->n_actions; i++)
		assert_action(&p.actions[i], &r->actions[i], r->cr.ago);
	assert_int_equal(p.n_actions, r->n_actions);
	assert_int_equal(p.outcome, r->outcome);
	if (r->outcome == PLAN_REQUEUE_AFTER)
		assert_int_equal(p.requeue_after_usec, 5 * USEC_PER_SEC);
	if (r->error)
		assert_string_equal(p.error, r->error);
	assert_int_equal(p.n_probes, r->probe ? 1 : 0);
	if (r->probe)
		assert_string_equal(p.probes[0], VM);
	assert_int_equal(p.mark_exit_ltt_usec, r->mark ? ltt : 0);
	json_decref(obj);
	json_decref(pod);
	json_decref(others);
}

/* ---- expected bodies ---- */

/* A v1 status patch: the unrelated condition kept, Ready upserted after it. */
#define V1(phase, ready, reason, message, ltt)                                                     \
	"{\"status\":{\"phase\":\"" phase "\",\"vmName\":\"" VM "\",\"observedGeneration\":2,"     \
	"\"conditions\":[{\"type\":\"Other\",\"status\":\"True\"},"                                \
	"{\"type\":\"Ready\",\"status\":\"" ready "\",\"observedGeneration\":2,"                   \
	"\"lastTransitionTime\":\"" ltt "\",\"reason\":\"" reason "\",\"message\":\"" message      \
	"\"}]}}"
#define V1_HIBERNATING V1("Hibernating", "False", "Pending", "Hibernating", "@NOW")
#define V1_WAKING      V1("Waking", "False", "Pending", "Waking", "@NOW")
#define V1_HIBERNATED  V1("Hibernated", "True", "Done", "Hibernated", "@NOW")
#define V1_ACTIVE      V1("Active", "True", "Done", "Active", "@NOW")

#define ANNOTATE(value)                                                                            \
	{                                                                                          \
		ACT_POD_PATCH, POD,                                                                \
		    "{\"metadata\":{\"annotations\":{\"vm.cocoonstack.io/hibernate\":" value "}}}" \
	}
#define STATUS(body)                                                                               \
	{                                                                                          \
		ACT_STATUS_PATCH, NULL, body                                                       \
	}
#define EVENT(text)                                                                                \
	{                                                                                          \
		ACT_EVENT, NULL, NULL, text                                                        \
	}
#define TAG_DELETE                                                                                 \
	{                                                                                          \
		ACT_TAG_DELETE, VM, NULL, "hibernate", 0, ACT_BEST_EFFORT                          \
	}
#define OBSERVE(m, r, s)                                                                           \
	{                                                                                          \
		ACT_OBSERVE, NULL, "{\"result\":\"" r "\"}", m, s                                  \
	}
#define FINALIZERS(list)                                                                           \
	{                                                                                          \
		ACT_OBJ_UPDATE, NULL, list                                                         \
	}

#define POD_ASLEEP                                                                                 \
	{                                                                                          \
		.hibernate = true, .lifecycle = "hibernated"                                       \
	}
#define POD_RUNNING                                                                                \
	{                                                                                          \
		.lifecycle = "ready", .running = true                                              \
	}

/* A CR in a transition phase for `secs`, with the given desire. */
#define HIBERNATING(want, secs)                                                                    \
	.desire = want, .phase = "Hibernating", .ready = "False", .ago = secs
#define WAKING(want, secs) .desire = want, .phase = "Waking", .ready = "False", .ago = secs

static const struct row finalizer_rows[] = {
	{ "a new CR gets the finalizer, then is requeued at once",
	  .cr = { .desire = "Hibernate", .no_finalizer = true }, .outcome = PLAN_REQUEUE,
	  ACTIONS(FINALIZERS("[\"example.com/keep\", \"" HIB_FIN "\"]")) },
	{ "deleting: the last holder drops the :hibernate tag, then its finalizer",
	  .cr = { HIBERNATING("Hibernate", 10), .deleting = true }, .outcome = PLAN_DONE,
	  ACTIONS(TAG_DELETE, FINALIZERS("[\"example.com/keep\"]")) },
	{ "deleting: another live CR holds the VM by status.vmName (a legacy one)",
	  .cr = { HIBERNATING("Hibernate", 10), .deleting = true },
	  .others = "[{\"apiVersion\":\"cocoon.cis/v1alpha1\",\"metadata\":{\"uid\":\"uid-2\"},"
		    "\"spec\":{\"podName\":\"elsewhere\"},\"status\":{\"vmName\":\"" VM "\"}}]",
	  .outcome = PLAN_DONE, ACTIONS(FINALIZERS("[\"example.com/keep\"]")) },
	{ "deleting: another live CR holds the VM by podRef.name",
	  .cr = { HIBERNATING("Hibernate", 10), .deleting = true },
	  .others =
	      "[{\"metadata\":{\"uid\":\"uid-2\"},\"spec\":{\"podRef\":{\"name\":\"" POD "\"}}}]",
	  .outcome = PLAN_DONE, ACTIONS(FINALIZERS("[\"example.com/keep\"]")) },
	{ "deleting: the CR itself and terminating CRs do not hold the VM",
	  .cr = { HIBERNATING("Hibernate", 10), .deleting = true },
	  .others =
	      "[{\"metadata\":{\"uid\":\"uid-1\"},\"status\":{\"vmName\":\"" VM "\"}},"
	      "{\"metadata\":{\"uid\":\"uid-3\",\"deletionTimestamp\":\"2026-08-06T00:00:00Z\"},"
	      "\"spec\":{\"podRef\":{\"name\":\"" POD "\"}}}]",
	  .outcome = PLAN_DONE, ACTIONS(TAG_DELETE, FINALIZERS("[\"example.com/keep\"]")) },
	{ "deleting without a VM name: only the finalizer goes",
	  .cr = { .desire = "Hibernate", .deleting = true }, .outcome = PLAN_DONE,
	  ACTIONS(FINALIZERS("[\"example.com/keep\"]")) },
	{ "deleting without our finalizer: the cleanup already ran",
	  .cr = { HIBERNATING("Hibernate", 10), .deleting = true, .no_finalizer = true },
	  .outcome = PLAN_DONE },
};

static const struct row pending_rows[] = {
	{ "no pod name: Failed", .cr = { .desire = "Hibernate", .no_pod_ref = true },
	  .outcome = PLAN_DONE,
	  ACTIONS(
	      STATUS("{\"status\":{\"phase\":\"Failed\",\"observedGeneration\":2,"
		     "\"conditions\":[{\"type\":\"Ready\",\"status\":\"False\","
		     "\"observedGeneration\":2,\"lastTransitionTime\":\"@NOW\","
		     "\"reason\":\"Failed\",\"message\":\"spec.podRef.name is required\"}]}}")) },
	{ "no pod yet: Pending with the reason, polled", .cr = { .desire = "Hibernate" },
	  .pod = { .absent = true }, .outcome = PLAN_REQUEUE_AFTER,
	  ACTIONS(STATUS("{\"status\":{\"phase\":\"Pending\",\"observedGeneration\":2,"
			 "\"conditions\":[{\"type\":\"Ready\",\"status\":\"False\","
			 "\"observedGeneration\":2,\"lastTransitionTime\":\"@NOW\","
			 "\"reason\":\"Pending\",\"message\":\"pod team-a/demo-0 not yet "
			 "present\"}]}}")) },
	{ "Pending again with the same message and generation: no write",
	  .cr = { .desire = "Hibernate",
		  .phase = "Pending",
		  .ready = "False",
		  .message = "pod team-a/demo-0 not yet present",
		  .ago = 30 },
	  .pod = { .absent = true }, .outcome = PLAN_REQUEUE_AFTER },
	{ "Pending with a new message: rewritten, Ready's LTT kept (no status flip)",
	  .cr = { .desire = "Hibernate",
		  .phase = "Pending",
		  .ready = "False",
		  .message = "pod team-a/demo-0 not yet present",
		  .ago = 30 },
	  .pod = { .no_vm = true }, .outcome = PLAN_REQUEUE_AFTER,
	  ACTIONS(STATUS(V1("Pending", "False", "Pending",
			    "pod team-a/demo-0 has no vm.cocoonstack.io/name annotation yet",
			    "@LTT"))) },
	{ "Pending never demotes Hibernated",
	  .cr = { .desire = "Hibernate", .phase = "Hibernated", .ready = "True", .ago = 30 },
	  .pod = { .absent = true }, .outcome = PLAN_REQUEUE_AFTER },
	{ "Pending never demotes Waking", .cr = { WAKING("Wake", 30) }, .pod = { .no_vm = true },
	  .outcome = PLAN_REQUEUE_AFTER },
	{ "unknown desire: Failed naming it", .cr = { .desire = "Sleep" }, .pod = POD_RUNNING,
	  .outcome = PLAN_DONE,
	  ACTIONS(STATUS("{\"status\":{\"phase\":\"Failed\",\"vmName\":\"" VM "\","
			 "\"observedGeneration\":2,\"conditions\":[{\"type\":\"Ready\","
			 "\"status\":\"False\",\"observedGeneration\":2,"
			 "\"lastTransitionTime\":\"@NOW\",\"reason\":\"Failed\","
			 "\"message\":\"unknown desire \\\"Sleep\\\"\"}]}}")) },
};

static const struct row hibernate_rows[] = {
	{ "first pass: annotate the pod, enter Hibernating (deadline clock starts now)",
	  .cr = { .desire = "Hibernate", .phase = "Active", .ready = "True", .ago = 3600 },
	  .pod = POD_RUNNING, .outcome = PLAN_REQUEUE_AFTER,
	  ACTIONS(ANNOTATE("\"true\""), STATUS(V1_HIBERNATING)) },
	{ "Hibernating, vk still working: nothing to write, polled",
	  .cr = { HIBERNATING("Hibernate", 60) },
	  .pod = { .hibernate = true, .lifecycle = "hibernating", .running = true },
	  .outcome = PLAN_REQUEUE_AFTER },
	{ "vk reports hibernated: the registry must be asked first, nothing else yet",
	  .cr = { HIBERNATING("Hibernate", 60), .old_generation = true }, .pod = POD_ASLEEP,
	  .outcome = PLAN_NEED_FACTS, .probe = true },
	{ "tag present: exit metric ok, event, Hibernated", .cr = { HIBERNATING("Hibernate", 60) },
	  .pod = POD_ASLEEP, .fact = "present", .outcome = PLAN_DONE, .mark = true,
	  ACTIONS(OBSERVE(M_HIB, "ok", 60),
		  EVENT("Normal Hibernated snapshot " VM " pushed to the registry"),
		  STATUS(V1_HIBERNATED)) },
	{ "the same exit seen again through a stale cache: metric and event do not repeat",
	  .cr = { HIBERNATING("Hibernate", 60) }, .pod = POD_ASLEEP, .fact = "present",
	  .exit_seen = true, .outcome = PLAN_DONE, ACTIONS(STATUS(V1_HIBERNATED)) },
	{ "already Hibernated: nothing to write",
	  .cr = { .desire = "Hibernate", .phase = "Hibernated", .ready = "True", .ago = 600 },
	  .pod = POD_ASLEEP, .fact = "present", .outcome = PLAN_DONE },
	{ "tag absent yet: still Hibernating", .cr = { HIBERNATING("Hibernate", 60) },
	  .pod = POD_ASLEEP, .fact = "absent", .outcome = PLAN_REQUEUE_AFTER },
	{ "a stale tag without lifecycle hibernated completes nothing (not even probed)",
	  .cr = { HIBERNATING("Hibernate", 60) },
	  .pod = { .hibernate = true, .lifecycle = "ready", .running = true }, .fact = "present",
	  .outcome = PLAN_REQUEUE_AFTER },
	{ "generation floor: hibernated for an older generation does not count",
	  .cr = { HIBERNATING("Hibernate", 60) },
	  .pod = { .hibernate = true, .lifecycle = "hibernated", .observed = "2" },
	  .fact = "present", .outcome = PLAN_REQUEUE_AFTER },
	{ "registry error before the deadline: the pass fails and is retried",
	  .cr = { HIBERNATING("Hibernate", 179) }, .pod = POD_ASLEEP, .fact = "error",
	  .outcome = PLAN_ERROR,
	  .error = "checking " VM ":hibernate in the registry: HEAD: 503 Service Unavailable" },
	{ "registry error past the deadline: the timeout wins",
	  .cr = { HIBERNATING("Hibernate", 181) }, .pod = POD_ASLEEP, .fact = "error",
	  .outcome = PLAN_DONE, .mark = true,
	  ACTIONS(OBSERVE(M_HIB, "timeout", 181),
		  EVENT("Warning HibernateTimedOut snapshot " VM
			" not confirmed in the registry within 3m0s"),
		  STATUS(V1("Failed", "False", "Failed", "hibernate not confirmed within 3m0s",
			    "@LTT"))) },
	{ "deadline: exactly 3m is not past it", .cr = { HIBERNATING("Hibernate", 180) },
	  .pod = { .hibernate = true, .lifecycle = "hibernating" }, .outcome = PLAN_REQUEUE_AFTER },
	{ "deadline: 3m1s is", .cr = { HIBERNATING("Hibernate", 181) },
	  .pod = { .hibernate = true, .lifecycle = "hibernating" }, .outcome = PLAN_DONE,
	  .mark = true,
	  ACTIONS(OBSERVE(M_HIB, "timeout", 181),
		  EVENT("Warning HibernateTimedOut snapshot " VM
			" not confirmed in the registry within 3m0s"),
		  STATUS(V1("Failed", "False", "Failed", "hibernate not confirmed within 3m0s",
			    "@LTT"))) },
	{ "recovery from Failed: RetryRequested, Hibernating with the clock reset",
	  .cr = { .desire = "Hibernate",
		  .phase = "Failed",
		  .ready = "False",
		  .message = "hibernate not confirmed within 3m0s",
		  .ago = 3600 },
	  .pod = { .hibernate = true, .lifecycle = "hibernating" }, .outcome = PLAN_REQUEUE_AFTER,
	  ACTIONS(EVENT("Normal RetryRequested retrying Hibernate after prior failure"),
		  STATUS(V1_HIBERNATING)) },
	{ "a new generation is written even when the phase stays",
	  .cr = { HIBERNATING("Hibernate", 60), .old_generation = true },
	  .pod = { .hibernate = true, .lifecycle = "hibernating" }, .outcome = PLAN_REQUEUE_AFTER,
	  ACTIONS(STATUS(V1("Hibernating", "False", "Pending", "Hibernating", "@LTT"))) },
	{ "reverse desire: Wake while Hibernating finishes the hibernate first",
	  .cr = { HIBERNATING("Wake", 60) }, .pod = POD_ASLEEP, .fact = "present",
	  .outcome = PLAN_DONE, .mark = true,
	  ACTIONS(OBSERVE(M_HIB, "ok", 60),
		  EVENT("Normal Hibernated snapshot " VM " pushed to the registry"),
		  STATUS(V1_HIBERNATED)) },
	{ "reverse desire, hibernate not done: the annotation stays, still Hibernating",
	  .cr = { HIBERNATING("Wake", 60) },
	  .pod = { .hibernate = true, .lifecycle = "hibernating", .running = true },
	  .outcome = PLAN_REQUEUE_AFTER },
};

static const struct row wake_rows[] = {
	{ "first pass: remove the annotation, enter Waking",
	  .cr = { .desire = "Wake", .phase = "Hibernated", .ready = "True", .ago = 600 },
	  .pod = POD_ASLEEP, .outcome = PLAN_REQUEUE_AFTER,
	  ACTIONS(ANNOTATE("null"), STATUS(V1_WAKING)) },
	{ "fast path: running already, the annotation still goes first (PR #10)",
	  .cr = { .desire = "Wake", .phase = "Hibernated", .ready = "True", .ago = 600 },
	  .pod = { .hibernate = true, .lifecycle = "ready", .running = true }, .outcome = PLAN_DONE,
	  .mark = true,
	  ACTIONS(ANNOTATE("null"), TAG_DELETE,
		  EVENT("Normal WokenActive pod " NS "/" POD " is running"),
		  STATUS(V1("Active", "True", "Done", "Active", "@LTT"))) },
	{ "running: the tag is spent, exit metric ok, Active", .cr = { WAKING("Wake", 42) },
	  .pod = POD_RUNNING, .outcome = PLAN_DONE, .mark = true,
	  ACTIONS(TAG_DELETE, OBSERVE(M_WAKE, "ok", 42),
		  EVENT("Normal WokenActive pod " NS "/" POD " is running"), STATUS(V1_ACTIVE)) },
	{ "running, exit already reported: no second metric or event", .cr = { WAKING("Wake", 42) },
	  .pod = POD_RUNNING, .exit_seen = true, .outcome = PLAN_DONE,
	  ACTIONS(TAG_DELETE, STATUS(V1_ACTIVE)) },
	{ "Active and running: nothing to do",
	  .cr = { .desire = "Wake", .phase = "Active", .ready = "True", .ago = 60 },
	  .pod = POD_RUNNING, .outcome = PLAN_DONE },
	{ "Active for this generation: a later hibernate annotation (a suspend of the set) stays",
	  .cr = { .desire = "Wake", .phase = "Active", .ready = "True", .ago = 60 },
	  .pod = { .hibernate = true, .lifecycle = "hibernating", .running = true },
	  .outcome = PLAN_DONE },
	{ "deadline: exactly 5m is not past it", .cr = { WAKING("Wake", 300) },
	  .pod = { .lifecycle = "creating" }, .outcome = PLAN_REQUEUE_AFTER },
	{ "deadline: 5m1s is", .cr = { WAKING("Wake", 301) }, .pod = { .lifecycle = "creating" },
	  .outcome = PLAN_DONE, .mark = true,
	  ACTIONS(OBSERVE(M_WAKE, "timeout", 301),
		  EVENT("Warning WakeTimedOut vk-cocoon did not report the container running "
			"within 5m0s"),
		  STATUS(V1("Failed", "False", "Failed",
			    "wake timed out after 5m0s; vk-cocoon never reported the container "
			    "running",
			    "@LTT"))) },
	{ "recovery from Failed: RetryRequested, Waking with the clock reset",
	  .cr = { .desire = "Wake",
		  .phase = "Failed",
		  .ready = "False",
		  .message = "x",
		  .ago = 3600 },
	  .pod = { .lifecycle = "creating" }, .outcome = PLAN_REQUEUE_AFTER,
	  ACTIONS(EVENT("Normal RetryRequested retrying Wake after prior failure"),
		  STATUS(V1_WAKING)) },
	{ "reverse desire: Hibernate while Waking finishes the wake first",
	  .cr = { WAKING("Hibernate", 42) }, .pod = POD_RUNNING, .outcome = PLAN_DONE, .mark = true,
	  ACTIONS(TAG_DELETE, OBSERVE(M_WAKE, "ok", 42),
		  EVENT("Normal WokenActive pod " NS "/" POD " is running"), STATUS(V1_ACTIVE)) },
	{ "a legacy cocoon.cis/hibernate key is removed too", .cr = { WAKING("Wake", 42) },
	  .pod = { .legacy_hibernate = true, .lifecycle = "hibernated" },
	  .outcome = PLAN_REQUEUE_AFTER,
	  ACTIONS({ ACT_POD_PATCH, POD,
		    "{\"metadata\":{\"annotations\":{\"vm.cocoonstack.io/hibernate\":null,"
		    "\"cocoon.cis/hibernate\":null}}}" }) },
};

/* Legacy Hibernation: same engine, flat status with the G1 messages and snapshotRef. */
static const struct row legacy_rows[] = {
	{ "hibernate (the default action): Hibernating with its message and a new LTT",
	  .cr = { .legacy = true }, .pod = POD_RUNNING, .outcome = PLAN_REQUEUE_AFTER,
	  ACTIONS(ANNOTATE("\"true\""),
		  STATUS("{\"status\":{\"phase\":\"Hibernating\",\"vmName\":\"" VM "\","
			 "\"message\":\"Waiting for vk-cocoon to snapshot VM\","
			 "\"lastTransitionTime\":\"@NOW\"}}")) },
	{ "Hibernating, unchanged: no write",
	  .cr = { .legacy = true,
		  .desire = "hibernate",
		  .phase = "Hibernating",
		  .message = "Waiting for vk-cocoon to snapshot VM",
		  .ago = 60 },
	  .pod = { .hibernate = true, .lifecycle = "hibernating" }, .outcome = PLAN_REQUEUE_AFTER },
	{ "hibernated: snapshotRef names the registry tag",
	  .cr = { .legacy = true,
		  .desire = "hibernate",
		  .phase = "Hibernating",
		  .message = "Waiting for vk-cocoon to snapshot VM",
		  .ago = 60 },
	  .pod = POD_ASLEEP, .fact = "present", .outcome = PLAN_DONE, .mark = true,
	  ACTIONS(OBSERVE(M_HIB, "ok", 60),
		  EVENT("Normal Hibernated snapshot " VM " pushed to the registry"),
		  STATUS("{\"status\":{\"phase\":\"Hibernated\",\"vmName\":\"" VM "\","
			 "\"message\":\"VM suspended to epoch\",\"lastTransitionTime\":\"@NOW\","
			 "\"snapshotRef\":\"" REGISTRY "/" VM ":hibernate\"}}")) },
	{ "timeout: Failed with the message",
	  .cr = { .legacy = true,
		  .desire = "hibernate",
		  .phase = "Hibernating",
		  .message = "Waiting for vk-cocoon to snapshot VM",
		  .ago = 181 },
	  .pod = { .hibernate = true, .lifecycle = "hibernating" }, .outcome = PLAN_DONE,
	  .mark = true,
	  ACTIONS(OBSERVE(M_HIB, "timeout", 181),
		  EVENT("Warning HibernateTimedOut snapshot " VM
			" not confirmed in the registry within 3m0s"),
		  STATUS("{\"status\":{\"phase\":\"Failed\",\"vmName\":\"" VM "\","
			 "\"message\":\"hibernate not confirmed within 3m0s\","
			 "\"lastTransitionTime\":\"@NOW\"}}")) },
	{ "wake: Waking, snapshotRef removed",
	  .cr = { .legacy = true,
		  .desire = "wake",
		  .phase = "Hibernated",
		  .message = "VM suspended to epoch",
		  .ago = 600,
		  .snapshot_ref = REGISTRY "/" VM ":hibernate" },
	  .pod = POD_ASLEEP, .outcome = PLAN_REQUEUE_AFTER,
	  ACTIONS(ANNOTATE("null"),
		  STATUS("{\"status\":{\"phase\":\"Waking\",\"vmName\":\"" VM "\","
			 "\"message\":\"Waiting for vk-cocoon to restore VM\","
			 "\"lastTransitionTime\":\"@NOW\",\"snapshotRef\":null}}")) },
	{ "woken: Active",
	  .cr = { .legacy = true,
		  .desire = "wake",
		  .phase = "Waking",
		  .message = "Waiting for vk-cocoon to restore VM",
		  .ago = 20 },
	  .pod = POD_RUNNING, .outcome = PLAN_DONE, .mark = true,
	  ACTIONS(TAG_DELETE, OBSERVE(M_WAKE, "ok", 20),
		  EVENT("Normal WokenActive pod " NS "/" POD " is running"),
		  STATUS("{\"status\":{\"phase\":\"Active\",\"vmName\":\"" VM "\","
			 "\"message\":\"VM restored and running\","
			 "\"lastTransitionTime\":\"@NOW\"}}")) },
	{ "no pod: Pending with the message, LTT kept when the phase stays",
	  .cr = { .legacy = true,
		  .desire = "hibernate",
		  .phase = "Pending",
		  .message = "old",
		  .ago = 20 },
	  .pod = { .absent = true }, .outcome = PLAN_REQUEUE_AFTER,
	  ACTIONS(STATUS("{\"status\":{\"phase\":\"Pending\",\"vmName\":\"" VM "\","
			 "\"message\":\"pod team-a/demo-0 not yet present\"}}")) },
	{ "no pod name: the legacy field is named", .cr = { .legacy = true, .no_pod_ref = true },
	  .outcome = PLAN_DONE,
	  ACTIONS(STATUS("{\"status\":{\"phase\":\"Failed\","
			 "\"message\":\"spec.podName is required\","
			 "\"lastTransitionTime\":\"@NOW\"}}")) },
};

static void run_rows(const struct row *rows, size_t n)
{
	for (size_t i = 0; i < n; i++)
		run_row(&rows[i]);
}

static void test_finalizer(void **state)
{
	run_rows(finalizer_rows, ELEMENTSOF(finalizer_rows));
}

static void test_pending(void **state)
{
	run_rows(pending_rows, ELEMENTSOF(pending_rows));
}

static void test_hibernate(void **state)
{
	run_rows(hibernate_rows, ELEMENTSOF(hibernate_rows));
}

static void test_wake(void **state)
{
	run_rows(wake_rows, ELEMENTSOF(wake_rows));
}

static void test_legacy(void **state)
{
	run_rows(legacy_rows, ELEMENTSOF(legacy_rows));
}

/* Go's omitempty: removing the only finalizer leaves the list out of the Update. */
static void test_finalizer_last(void **state)
{
	_cleanup_(hib_freep) struct hib *h = NULL;
	struct plan p = { 0 };
	json_t *obj =
	    json_pack("{s:s, s:{s:s, s:s, s:s, s:s, s:[s]}, s:{s:{s:s}, s:s}}", "apiVersion",
		      "cocoonset.cocoonstack.io/v1", "metadata", "name", POD, "namespace", NS,
		      "resourceVersion", "41", "deletionTimestamp", "2026-08-06T00:00:00Z",
		      "finalizers", HIB_FIN, "spec", "podRef", "name", POD, "desire", "Wake");
	json_t *others = json_array();
	struct hib_inputs in = { .others = others, .now_usec = NOW };

	assert_int_equal(hib_parse(obj, &h, NULL), 0);
	in.hib = h;
	assert_int_equal(hib_plan(&in, &p), 0);
	assert_int_equal(p.n_actions, 1);
	assert_int_equal(p.actions[0].kind, ACT_OBJ_UPDATE);
	assert_string_equal(json_string_value(json_object_get(
				json_object_get(p.actions[0].body, "metadata"), "resourceVersion")),
			    "41");
	assert_null(json_object_get(json_object_get(p.actions[0].body, "metadata"), "finalizers"));
	/* The cached object is not touched: the Update body is a copy. */
	assert_int_equal(
	    json_array_size(json_object_get(json_object_get(obj, "metadata"), "finalizers")), 1);
	plan_done(&p);
	json_decref(obj);
	json_decref(others);
}

/* ---- hib_parse ---- */

static void test_parse_shapes(void **state)
{
	struct cr v1 = { HIBERNATING("Hibernate", 60), .message = "Hibernating" };
	struct cr legacy = {
		.legacy = true, .desire = "wake", .phase = "Waking", .message = "m", .ago = 5
	};
	_cleanup_(hib_freep) struct hib *a = NULL, *b = NULL;
	json_t *o;

	o = cr_json(&v1);
	assert_int_equal(hib_parse(o, &a, NULL), 0);
	json_decref(o); /* the hib holds its own reference */
	assert_int_equal(a->api, CS_API_V1);
	assert_string_equal(a->ns, NS);
	assert_string_equal(a->name, POD);
	assert_string_equal(a->uid, "uid-1");
	assert_int_equal(a->generation, 2);
	assert_true(a->has_finalizer);
	assert_false(a->deleting);
	assert_string_equal(a->pod_name, POD);
	assert_int_equal(a->desire, HIB_DESIRE_HIBERNATE);
	assert_string_equal(a->phase, "Hibernating");
	assert_string_equal(a->vm_name, VM);
	assert_string_equal(a->message, "Hibernating");
	assert_int_equal(a->observed_generation, 2);
	assert_int_equal(a->ready_ltt_usec, NOW - 60 * USEC_PER_SEC);

	o = cr_json(&legacy);
	assert_int_equal(hib_parse(o, &b, NULL), 0);
	json_decref(o);
	assert_int_equal(b->api, CS_API_LEGACY);
	assert_int_equal(b->desire, HIB_DESIRE_WAKE);
	assert_string_equal(b->desire_raw, "wake");
	assert_string_equal(b->message, "m");
	assert_int_equal(b->ready_ltt_usec, NOW - 5 * USEC_PER_SEC);
}

static void test_parse_defaults(void **state)
{
	static const struct {
		const char *json;
		enum cs_api api;
		enum hib_desire desire;
	} rows[] = {
		{ "{\"apiVersion\":\"cocoon.cis/v1alpha1\",\"spec\":{\"podName\":\"p\"}}",
		  CS_API_LEGACY, HIB_DESIRE_HIBERNATE },
		{ "{\"apiVersion\":\"cocoon.cis/v1alpha1\",\"spec\":{\"action\":\"Wake\"}}",
		  CS_API_LEGACY, HIB_DESIRE_UNKNOWN },
		{ "{\"kind\":\"Hibernation\",\"spec\":{\"action\":\"wake\"}}", CS_API_LEGACY,
		  HIB_DESIRE_WAKE },
		{ "{\"spec\":{\"desire\":\"Wake\"}}", CS_API_V1, HIB_DESIRE_WAKE },
		{ "{\"apiVersion\":\"cocoonset.cocoonstack.io/v1\"}", CS_API_V1,
		  HIB_DESIRE_UNKNOWN },
	};

	for (size_t i = 0; i < ELEMENTSOF(rows); i++) {
		_cleanup_(hib_freep) struct hib *h = NULL;
		json_t *o = json_loads(rows[i].json, 0, NULL);

		print_message("%s\n", rows[i].json);
		assert_int_equal(hib_parse(o, &h, NULL), 0);
		assert_int_equal(h->api, rows[i].api);
		assert_int_equal(h->desire, rows[i].desire);
		assert_string_equal(h->pod_name, strstr(rows[i].json, "\"p\"") ? "p" : "");
		assert_string_equal(h->phase, "");
		assert_null(h->vm_name);
		assert_false(h->has_finalizer);
		assert_int_equal(h->ready_ltt_usec, 0);
		json_decref(o);
	}
}

static void test_parse_errors(void **state)
{
	static const struct {
		const char *json, *error;
	} rows[] = {
		{ "[]", "hibernation: expected an object" },
		{ "{\"apiVersion\":\"v1\"}",
		  "apiVersion: expected cocoonset.cocoonstack.io/v1 or cocoon.cis/v1alpha1, got "
		  "\"v1\"" },
		{ "{\"metadata\":[]}", "metadata: expected an object" },
		{ "{\"metadata\":{\"generation\":\"2\"}}",
		  "metadata.generation: expected an integer >= 0" },
		{ "{\"metadata\":{\"finalizers\":[\"a\",1]}}",
		  "metadata.finalizers[1]: expected a string" },
		{ "{\"spec\":{\"podRef\":\"demo\"}}", "spec.podRef: expected an object" },
		{ "{\"spec\":{\"podRef\":{\"name\":5}}}", "spec.podRef.name: expected a string" },
		{ "{\"spec\":{\"desire\":true}}", "spec.desire: expected a string" },
		{ "{\"kind\":\"Hibernation\",\"spec\":{\"podName\":[]}}",
		  "spec.podName: expected a string" },
	};

	for (size_t i = 0; i < ELEMENTSOF(rows); i++) {
		struct hib *h = NULL;
		char *error = NULL;
		json_t *o = json_loads(rows[i].json, 0, NULL);

		print_message("%s\n", rows[i].json);
		assert_non_null(o);
		assert_int_equal(hib_parse(o, &h, &error), -EINVAL);
		assert_null(h);
		assert_string_equal(error, rows[i].error);
		free(error);
		json_decref(o);
	}
}

/* A malformed status is ours to rewrite: it reads as empty, so the object (and its
 * deletion) is never stuck behind it. */
static void test_bad_status_reads_empty(void **state)
{
	static const char *const rows[] = {
		"{\"metadata\":{\"name\":\"a\",\"namespace\":\"ns\",\"deletionTimestamp\":"
		"\"2026-01-01T00:00:00Z\"},\"spec\":{\"podRef\":{\"name\":\"a\"},\"desire\":"
		"\"Wake\"},\"status\":{\"phase\":\"Hibernated\",\"conditions\":{}}}",
		"{\"spec\":{\"podRef\":{\"name\":\"a\"}},\"status\":{\"vmName\":\"vk-x\","
		"\"conditions\":[{\"type\":\"Ready\",\"lastTransitionTime\":\"yesterday\"}]}}",
		"{\"spec\":{\"podRef\":{\"name\":\"a\"}},\"status\":{\"observedGeneration\":-1}}",
		"{\"kind\":\"Hibernation\",\"spec\":{\"podName\":\"a\"},\"status\":"
		"{\"phase\":\"Hibernated\",\"snapshotRef\":1}}",
		"{\"kind\":\"Hibernation\",\"spec\":{\"podName\":\"a\"},\"status\":"
		"{\"lastTransitionTime\":\"2026-13-01T00:00:00Z\"}}",
	};

	for (size_t i = 0; i < ELEMENTSOF(rows); i++) {
		struct hib *h = NULL;
		json_t *o = json_loads(rows[i], 0, NULL);

		print_message("%s\n", rows[i]);
		assert_non_null(o);
		assert_int_equal(hib_parse(o, &h, NULL), 0);
		assert_string_equal(h->pod_name, "a");
		assert_string_equal(h->phase, "");
		assert_null(h->vm_name);
		assert_int_equal(h->ready_ltt_usec, 0);
		hib_free(h);
		json_decref(o);
	}
}

/* The executor's loop over one pass: plan, fetch the probe, plan again. */
static void test_probe_round_trip(void **state)
{
	struct cr c = { HIBERNATING("Hibernate", 60) };
	struct pod pd = POD_ASLEEP;
	_cleanup_(hib_freep) struct hib *h = NULL;
	_cleanup_(facts_done) struct facts facts = { 0 };
	struct plan p = { 0 };
	json_t *obj = cr_json(&c), *pod = pod_json(&pd), *others = json_array();
	struct hib_inputs in = { .pod = pod, .others = others, .facts = &facts, .now_usec = NOW };

	assert_int_equal(hib_parse(obj, &h, NULL), 0);
	in.hib = h;
	assert_int_equal(hib_plan(&in, &p), 0);
	assert_int_equal(p.outcome, PLAN_NEED_FACTS);
	assert_int_equal(p.n_actions, 0);
	assert_int_equal(facts_set(&facts, p.probes[0], FACT_PRESENT, NULL), 0);
	plan_done(&p);
	assert_int_equal(hib_plan(&in, &p), 0);
	assert_int_equal(p.outcome, PLAN_DONE);
	assert_int_equal(p.n_actions, 3);
	assert_int_equal(p.actions[2].kind, ACT_STATUS_PATCH);
	assert_string_equal(json_string_value(json_object_get(
				json_object_get(p.actions[2].body, "status"), "phase")),
			    "Hibernated");
	plan_done(&p);
	json_decref(obj);
	json_decref(pod);
	json_decref(others);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_finalizer),    cmocka_unit_test(test_finalizer_last),
		cmocka_unit_test(test_pending),      cmocka_unit_test(test_hibernate),
		cmocka_unit_test(test_wake),         cmocka_unit_test(test_legacy),
		cmocka_unit_test(test_parse_shapes), cmocka_unit_test(test_parse_defaults),
		cmocka_unit_test(test_parse_errors),
		cmocka_unit_test(test_bad_status_reads_empty),
		cmocka_unit_test(test_probe_round_trip),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
