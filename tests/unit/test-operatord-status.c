/* operatord status.c (operator-webhook.md §2.8, schemas §1.1 and §1.3): the phase table, the
 * counts (present at 0, sub-agents above replicas counted), the order and shape of agents[]
 * and toolboxes[], the connType table, conditions whose lastTransitionTime survives an
 * unchanged pass and moves on a flip, the legacy shape, and the /status merge patch: none
 * when nothing changed (also for a status read back with its keys in another order), nulls
 * for what went away. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "test-json.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../operatord/operatord.h"

#define V1_HEAD     "\"apiVersion\":\"cocoonset.cocoonstack.io/v1\",\"kind\":\"CocoonSet\""
#define LEGACY_HEAD "\"apiVersion\":\"cocoon.cis/v1alpha1\",\"kind\":\"CocoonSet\""
#define METADATA                                                                                   \
	"\"metadata\":{\"name\":\"demo\",\"namespace\":\"team-a\",\"uid\":\"u-1\","               \
	"\"resourceVersion\":\"41\",\"generation\":3}"

/* 2026-05-01T10:00:00Z, and an hour later */
#define T0     (UINT64_C(1777629600) * USEC_PER_SEC)
#define T0_STR "2026-05-01T10:00:00Z"
#define T1     (T0 + 3600 * USEC_PER_SEC)
#define T1_STR "2026-05-01T11:00:00Z"
#define OLD    "2026-01-01T00:00:00Z"


static void assert_json(const json_t *have, const char *want)
{
	json_auto_t *w = load(want);
	_cleanup_(freep) char *h = have ? json_dumps(have, JSON_COMPACT | JSON_SORT_KEYS) : NULL;

	if (!json_equal(have, w))
		fail_msg("want %s\nhave %s", want, h ? h : "NULL");
}

/* {head, metadata, "spec": spec[, "status": status]} */
static struct cs *parse(const char *head, const char *spec, const char *status)
{
	_cleanup_(freep) char *text = NULL, *error = NULL;
	json_auto_t *obj = NULL;
	struct cs *cs = NULL;

	assert_true(asprintf(&text, "{%s,%s,\"spec\":%s%s%s}", head, METADATA, spec,
			     status ? ",\"status\":" : "", status ?: "") > 0);
	obj = load(text);
	if (cs_parse(obj, &cs, &error) < 0)
		fail_msg("cs_parse(%s): %s", spec, error);
	return cs;
}

/* A pod this set controls. role "main", "sub-agent" or "toolbox"; slot the slot label;
 * phase NULL: no status.phase; annotations: a JSON object or NULL. */
static json_t *pod(const char *name, const char *role, const char *slot, const char *phase,
		   bool ready, const char *annotations)
{
	json_t *p = json_pack("{s:{s:s,s:s,s:{s:s,s:s,s:s},s:[{s:s,s:s,s:b}]},s:{s:[{s:s,s:s}]}}",
			      "metadata", "name", name, "uid", name, "labels",
			      "cocoonset.cocoonstack.io/name", "demo", "cocoonset.cocoonstack.io/role",
			      role, "cocoonset.cocoonstack.io/slot", slot, "ownerReferences", "kind",
			      "CocoonSet", "uid", "u-1", "controller", 1, "status", "conditions",
			      "type", "Ready", "status", ready ? "True" : "False");

	assert_non_null(p);
	if (phase)
		json_object_set_new(json_object_get(p, "status"), "phase", json_string(phase));
	if (annotations)
		json_object_set_new(json_object_get(p, "metadata"), "annotations",
				    load(annotations));
	return p;
}

/* Pods from a short form: "main:R" (Ready), "sub1:N" (not Ready), "tb-name:R". */
static json_t *pods_from(const char *spec)
{
	_cleanup_(freep) char *copy = strdup(spec);
	json_t *pods = json_array();
	char *save = NULL;

	for (char *t = strtok_r(copy, " ", &save); t; t = strtok_r(NULL, " ", &save)) {
		char *colon = strchr(t, ':'), name[64];
		bool ready = colon && colon[1] == 'R';

		assert_non_null(colon);
		*colon = 0;
		snprintf(name, sizeof name, "demo-%s", strncmp(t, "sub", 3) == 0 ? t + 3 : t);
		if (streq(t, "main"))
			json_array_append_new(pods, pod("demo-0", "main", "0", "Running", ready,
							NULL));
		else if (strncmp(t, "sub", 3) == 0)
			json_array_append_new(pods, pod(name, "sub-agent", t + 3, "Running", ready,
							NULL));
		else
			json_array_append_new(pods, pod(name, "toolbox", t + 3, "Running", ready,
							NULL));
	}
	return pods;
}

/* Builds the status of (spec, pods, phase) at now on top of the old status. */
static json_t *build(const char *head, const char *spec, const char *old_status,
		     const json_t *pods, const char *phase, uint64_t now)
{
	_cleanup_(cs_freep) struct cs *cs = parse(head, spec, old_status);
	_cleanup_(cs_pods_done) struct cs_pods p = {};
	json_t *st = NULL;

	assert_int_equal(cs_pods_classify(cs, pods, &p), 0);
	assert_int_equal(cs_status_build(cs, &p, phase, now, &st), 0);
	assert_non_null(st);
	return st;
}

static const char *condition_member(const json_t *st, const char *type, const char *key)
{
	const json_t *c;
	size_t i;

	json_array_foreach (json_object_get(st, "conditions"), i, c)
		if (streq(json_string_value(json_object_get(c, "type")), type))
			return json_string_value(json_object_get(c, key));
	fail_msg("no %s condition", type);
	return NULL;
}

struct phase_row {
	int replicas;
	const char *toolboxes; /* spec.toolboxes JSON */
	const char *pods;
	const char *phase; /* forced, or NULL */
	const char *want_phase;
	int ready, desired, tb_ready, tb_desired;
	bool ready_true;
};

static const struct phase_row phase_rows[] = {
	{ 0, "[]", "", NULL, "Pending", 0, 1, 0, 0, false },
	/* a sub-agent without its main is still Pending */
	{ 1, "[]", "sub1:R", NULL, "Pending", 1, 2, 0, 0, false },
	{ 0, "[]", "main:N", NULL, "Scaling", 0, 1, 0, 0, false },
	{ 0, "[]", "main:R", NULL, "Running", 1, 1, 0, 0, true },
	{ 2, "[]", "main:R sub1:R", NULL, "Scaling", 2, 3, 0, 0, false },
	{ 2, "[]", "main:R sub1:R sub2:N", NULL, "Scaling", 2, 3, 0, 0, false },
	{ 2, "[]", "main:R sub1:R sub2:R", NULL, "Running", 3, 3, 0, 0, true },
	{ 0, "[{\"name\":\"a\"}]", "main:R", NULL, "Scaling", 1, 1, 0, 1, false },
	{ 0, "[{\"name\":\"a\"}]", "main:R tb-a:N", NULL, "Scaling", 1, 1, 0, 1, false },
	{ 0, "[{\"name\":\"a\"}]", "main:R tb-a:R", NULL, "Running", 1, 1, 1, 1, true },
	/* sub-agents above replicas still count until they are gone */
	{ 1, "[]", "main:R sub1:R sub2:R", NULL, "Running", 3, 2, 0, 0, false },
	/* a toolbox no longer in the spec counts as ready, not as desired */
	{ 0, "[]", "main:R tb-old:R", NULL, "Running", 1, 1, 1, 0, false },
	{ 0, "[]", "", "Suspended", "Suspended", 0, 1, 0, 0, false },
	{ 0, "[]", "main:R", "Failed", "Failed", 1, 1, 0, 0, true },
	{ 0, "[]", "main:R", "", "Running", 1, 1, 0, 0, true },
};

static void test_phase_table(void **state)
{
	for (size_t i = 0; i < ELEMENTSOF(phase_rows); i++) {
		const struct phase_row *row = &phase_rows[i];
		_cleanup_(freep) char *spec = NULL;
		char message[128];
		json_auto_t *pods = pods_from(row->pods);
		json_auto_t *st = NULL;
		bool progressing = streq(row->want_phase, "Pending") ||
				   streq(row->want_phase, "Scaling");

		print_message("row %zu: replicas %d, pods \"%s\", phase %s\n", i, row->replicas,
			      row->pods, row->phase ?: "(derived)");
		assert_true(asprintf(&spec, "{\"agent\":{\"image\":\"i\",\"replicas\":%d},"
					    "\"toolboxes\":%s}",
				     row->replicas, row->toolboxes) > 0);
		st = build(V1_HEAD, spec, NULL, pods, row->phase, T0);
		assert_string_equal(json_string_value(json_object_get(st, "phase")),
				    row->want_phase);
		assert_int_equal(json_integer_value(json_object_get(st, "readyAgents")), row->ready);
		assert_int_equal(json_integer_value(json_object_get(st, "desiredAgents")),
				 row->desired);
		assert_int_equal(json_integer_value(json_object_get(st, "readyToolboxes")),
				 row->tb_ready);
		assert_int_equal(json_integer_value(json_object_get(st, "desiredToolboxes")),
				 row->tb_desired);
		assert_int_equal(json_integer_value(json_object_get(st, "observedGeneration")), 3);
		snprintf(message, sizeof message, "%d/%d agents ready, %d/%d toolboxes ready",
			 row->ready, row->desired, row->tb_ready, row->tb_desired);
		assert_string_equal(condition_member(st, "Ready", "status"),
				    row->ready_true ? "True" : "False");
		assert_string_equal(condition_member(st, "Ready", "reason"),
				    row->ready_true ? "AllAgentsReady" : "AgentsNotReady");
		assert_string_equal(condition_member(st, "Ready", "message"), message);
		assert_string_equal(condition_member(st, "Progressing", "status"),
				    progressing ? "True" : "False");
		assert_string_equal(condition_member(st, "Progressing", "reason"),
				    progressing ? "Reconciling" : "Stable");
		assert_string_equal(condition_member(st, "Progressing", "message"),
				    row->want_phase);
	}
}

/* The whole status of a set with nothing running: every count is there, at 0. */
static void test_counts_present_at_zero(void **state)
{
	json_auto_t *pods = json_array();
	json_auto_t *st = build(V1_HEAD, "{\"agent\":{\"image\":\"i\"}}", NULL, pods, NULL, T0);

	assert_json(st, "{\"observedGeneration\":3,\"phase\":\"Pending\",\"readyAgents\":0,"
			"\"desiredAgents\":1,\"readyToolboxes\":0,\"desiredToolboxes\":0,"
			"\"conditions\":["
			"{\"type\":\"Ready\",\"status\":\"False\",\"observedGeneration\":3,"
			"\"lastTransitionTime\":\"" T0_STR "\",\"reason\":\"AgentsNotReady\","
			"\"message\":\"0/1 agents ready, 0/0 toolboxes ready\"},"
			"{\"type\":\"Progressing\",\"status\":\"True\",\"observedGeneration\":3,"
			"\"lastTransitionTime\":\"" T0_STR "\",\"reason\":\"Reconciling\","
			"\"message\":\"Pending\"}]}");
}

#define OLD_CONDITIONS                                                                             \
	"{\"phase\":\"Scaling\",\"conditions\":["                                                  \
	"{\"type\":\"Custom\",\"status\":\"True\",\"lastTransitionTime\":\"" OLD "\","              \
	"\"reason\":\"Mine\",\"message\":\"kept\"},"                                               \
	"{\"type\":\"Progressing\",\"status\":\"True\",\"observedGeneration\":2,"                  \
	"\"lastTransitionTime\":\"" OLD "\",\"reason\":\"Reconciling\",\"message\":\"Scaling\"},"  \
	"{\"type\":\"Ready\",\"status\":\"False\",\"observedGeneration\":2,"                       \
	"\"lastTransitionTime\":\"" OLD "\",\"reason\":\"AgentsNotReady\","                        \
	"\"message\":\"0/2 agents ready, 0/0 toolboxes ready\"}]}"

static void test_conditions_transition_time(void **state)
{
	const char *spec = "{\"agent\":{\"image\":\"i\",\"replicas\":1}}";
	json_auto_t *scaling = pods_from("main:R sub1:N");
	json_auto_t *running = pods_from("main:R sub1:R");
	json_auto_t *st = NULL;

	/* Same status values: the old times stay, messages and generations are refreshed,
	 * and a condition someone else owns keeps its place. */
	st = build(V1_HEAD, spec, OLD_CONDITIONS, scaling, NULL, T1);
	assert_json(json_object_get(st, "conditions"),
		    "[{\"type\":\"Custom\",\"status\":\"True\",\"lastTransitionTime\":\"" OLD "\","
		    "\"reason\":\"Mine\",\"message\":\"kept\"},"
		    "{\"type\":\"Progressing\",\"status\":\"True\",\"observedGeneration\":3,"
		    "\"lastTransitionTime\":\"" OLD "\",\"reason\":\"Reconciling\","
		    "\"message\":\"Scaling\"},"
		    "{\"type\":\"Ready\",\"status\":\"False\",\"observedGeneration\":3,"
		    "\"lastTransitionTime\":\"" OLD "\",\"reason\":\"AgentsNotReady\","
		    "\"message\":\"1/2 agents ready, 0/0 toolboxes ready\"}]");
	json_decref(st);

	/* Both flip: both move to now. */
	st = build(V1_HEAD, spec, OLD_CONDITIONS, running, NULL, T1);
	assert_json(json_object_get(st, "conditions"),
		    "[{\"type\":\"Custom\",\"status\":\"True\",\"lastTransitionTime\":\"" OLD "\","
		    "\"reason\":\"Mine\",\"message\":\"kept\"},"
		    "{\"type\":\"Progressing\",\"status\":\"False\",\"observedGeneration\":3,"
		    "\"lastTransitionTime\":\"" T1_STR "\",\"reason\":\"Stable\","
		    "\"message\":\"Running\"},"
		    "{\"type\":\"Ready\",\"status\":\"True\",\"observedGeneration\":3,"
		    "\"lastTransitionTime\":\"" T1_STR "\",\"reason\":\"AllAgentsReady\","
		    "\"message\":\"2/2 agents ready, 0/0 toolboxes ready\"}]");
}

static void test_agent_and_toolbox_order(void **state)
{
	const char *spec = "{\"agent\":{\"image\":\"i\",\"replicas\":2},"
			   "\"toolboxes\":[{\"name\":\"zeta\"},{\"name\":\"alpha\"}]}";
	json_auto_t *pods = json_array();
	json_auto_t *st = NULL;

	json_array_append_new(pods, pod("demo-10", "sub-agent", "10", "Running", true,
					"{\"vm.cocoonstack.io/name\":\"vk-team-a-demo-10\"}"));
	json_array_append_new(pods, pod("demo-zeta", "toolbox", "zeta", "Pending", false, NULL));
	json_array_append_new(pods, pod("demo-2", "sub-agent", "2", NULL, false,
					"{\"vm.cocoonstack.io/name\":\"\"}"));
	json_array_append_new(pods, pod("demo-0", "main", "0", "Running", true,
					"{\"vm.cocoonstack.io/name\":\"vk-team-a-demo-0\","
					"\"vm.cocoonstack.io/id\":\"abc\","
					"\"vm.cocoonstack.io/ip\":\"10.88.0.5\"}"));
	json_array_append_new(pods, pod("demo-alpha", "toolbox", "alpha", "Running", true,
					"{\"vm.cocoonstack.io/name\":\"vk-team-a-demo-alpha\","
					"\"vm.cocoonstack.io/id\":\"t1\","
					"\"vm.cocoonstack.io/ip\":\"10.88.0.9\"}"));
	json_array_append_new(pods, pod("demo-1", "sub-agent", "1", "Running", false,
					"{\"vm.cocoonstack.io/name\":\"vk-team-a-demo-1\","
					"\"vm.cocoonstack.io/id\":\"def\"}"));
	st = build(V1_HEAD, spec, NULL, pods, NULL, T0);
	assert_json(json_object_get(st, "agents"),
		    "[{\"slot\":0,\"role\":\"main\",\"podName\":\"demo-0\","
		    "\"vmName\":\"vk-team-a-demo-0\",\"vmID\":\"abc\",\"ip\":\"10.88.0.5\","
		    "\"phase\":\"Running\"},"
		    "{\"slot\":1,\"role\":\"sub-agent\",\"podName\":\"demo-1\","
		    "\"vmName\":\"vk-team-a-demo-1\",\"vmID\":\"def\",\"phase\":\"Running\","
		    "\"forkedFrom\":\"vk-team-a-demo-0\"},"
		    "{\"slot\":2,\"role\":\"sub-agent\",\"podName\":\"demo-2\","
		    "\"forkedFrom\":\"vk-team-a-demo-0\"},"
		    "{\"slot\":10,\"role\":\"sub-agent\",\"podName\":\"demo-10\","
		    "\"vmName\":\"vk-team-a-demo-10\",\"phase\":\"Running\","
		    "\"forkedFrom\":\"vk-team-a-demo-0\"}]");
	assert_json(json_object_get(st, "toolboxes"),
		    "[{\"name\":\"alpha\",\"podName\":\"demo-alpha\","
		    "\"vmName\":\"vk-team-a-demo-alpha\",\"vmID\":\"t1\",\"ip\":\"10.88.0.9\","
		    "\"phase\":\"Running\",\"connType\":\"ssh\"},"
		    "{\"name\":\"zeta\",\"podName\":\"demo-zeta\",\"phase\":\"Pending\","
		    "\"connType\":\"ssh\"}]");
	assert_int_equal(json_integer_value(json_object_get(st, "readyAgents")), 2);
	assert_int_equal(json_integer_value(json_object_get(st, "readyToolboxes")), 1);
}

/* Without a main pod, sub-agents have nothing to be forked from. */
static void test_no_main_no_forked_from(void **state)
{
	json_auto_t *pods = json_array();
	json_auto_t *st = NULL;

	json_array_append_new(pods, pod("demo-1", "sub-agent", "1", "Running", true, NULL));
	st = build(V1_HEAD, "{\"agent\":{\"image\":\"i\",\"replicas\":1}}", NULL, pods, NULL, T0);
	assert_json(json_object_get(st, "agents"),
		    "[{\"slot\":1,\"role\":\"sub-agent\",\"podName\":\"demo-1\","
		    "\"phase\":\"Running\"}]");
}

struct conn_row {
	const char *annotations;
	const char *conn_type;
	int vnc_port; /* 0: no vncPort member */
};

static const struct conn_row conn_rows[] = {
	{ "{}", "ssh", 0 },
	{ "{\"cocoonset.cocoonstack.io/os\":\"linux\"}", "ssh", 0 },
	{ "{\"cocoonset.cocoonstack.io/os\":\"windows\"}", "rdp", 0 },
	{ "{\"cocoonset.cocoonstack.io/os\":\"android\"}", "adb", 0 },
	{ "{\"cocoonset.cocoonstack.io/os\":\"macos\"}", "ssh", 0 },
	{ "{\"vm.cocoonstack.io/vnc-port\":\"5900\"}", "vnc", 5900 },
	{ "{\"vm.cocoonstack.io/vnc-port\":\"5900\",\"cocoonset.cocoonstack.io/os\":\"windows\"}",
	  "vnc", 5900 },
	{ "{\"vm.cocoonstack.io/vnc-port\":\"5900\",\"vm.cocoonstack.io/conn-type\":\"ssh\"}",
	  "ssh", 5900 },
	{ "{\"vm.cocoonstack.io/conn-type\":\"rdp\",\"cocoonset.cocoonstack.io/os\":\"android\"}",
	  "rdp", 0 },
	{ "{\"vm.cocoonstack.io/conn-type\":\"\",\"cocoonset.cocoonstack.io/os\":\"android\"}",
	  "adb", 0 },
	{ "{\"vm.cocoonstack.io/vnc-port\":\"0\"}", "ssh", 0 },
	{ "{\"vm.cocoonstack.io/vnc-port\":\"59x\"}", "ssh", 0 },
	{ "{\"vm.cocoonstack.io/vnc-port\":\"65536\"}", "ssh", 0 },
	{ "{\"vm.cocoonstack.io/vnc-port\":5900}", "ssh", 0 },
	/* cocoon.cis aliases, canonical first (CONTRACT.md §1) */
	{ "{\"cocoon.cis/vnc-port\":\"5901\"}", "vnc", 5901 },
	{ "{\"cocoon.cis/os\":\"windows\"}", "rdp", 0 },
	{ "{\"cocoon.cis/os\":\"windows\",\"cocoonset.cocoonstack.io/os\":\"android\"}", "adb", 0 },
};

static void test_conn_type_table(void **state)
{
	for (size_t i = 0; i < ELEMENTSOF(conn_rows); i++) {
		json_auto_t *pods = json_array();
		json_auto_t *st = NULL;
		const json_t *tb;

		print_message("annotations %s\n", conn_rows[i].annotations);
		json_array_append_new(pods, pod("demo-t", "toolbox", "t", "Running", true,
						conn_rows[i].annotations));
		st = build(V1_HEAD, "{\"agent\":{\"image\":\"i\"},\"toolboxes\":[{\"name\":\"t\"}]}",
			   NULL, pods, NULL, T0);
		tb = json_array_get(json_object_get(st, "toolboxes"), 0);
		assert_string_equal(json_string_value(json_object_get(tb, "connType")),
				    conn_rows[i].conn_type);
		if (conn_rows[i].vnc_port)
			assert_int_equal(json_integer_value(json_object_get(tb, "vncPort")),
					 conn_rows[i].vnc_port);
		else
			assert_null(json_object_get(tb, "vncPort"));
	}
}

/* cocoon.cis/v1alpha1 has phase, the two agent counts and the lists: nothing else, even
 * when the old status carried conditions. */
static void test_legacy_shape(void **state)
{
	json_auto_t *pods = json_array();
	json_auto_t *st = NULL;

	json_array_append_new(pods, pod("demo-0", "main", "0", "Running", true,
					"{\"cocoon.cis/vm-name\":\"vk-team-a-demo-0\","
					"\"cocoon.cis/vm-id\":\"abc\",\"cocoon.cis/ip\":\"10.0.0.2\"}"));
	json_array_append_new(pods, pod("demo-vnc", "toolbox", "vnc", "Running", true,
					"{\"vm.cocoonstack.io/vnc-port\":\"5900\"}"));
	st = build(LEGACY_HEAD,
		   "{\"agent\":{\"image\":\"i\"},\"toolboxes\":[{\"name\":\"vnc\",\"vncPort\":5900}]}",
		   OLD_CONDITIONS, pods, NULL, T0);
	assert_json(st, "{\"phase\":\"Running\",\"readyAgents\":1,\"desiredAgents\":1,"
			"\"agents\":[{\"slot\":0,\"role\":\"main\",\"podName\":\"demo-0\","
			"\"vmName\":\"vk-team-a-demo-0\",\"vmID\":\"abc\",\"ip\":\"10.0.0.2\","
			"\"phase\":\"Running\"}],"
			"\"toolboxes\":[{\"name\":\"vnc\",\"podName\":\"demo-vnc\","
			"\"phase\":\"Running\",\"connType\":\"vnc\",\"vncPort\":5900}]}");
}

/* The write-loop guard: a pass that changes nothing writes nothing, also when the status
 * comes back from the server with its keys in another order, and an hour later. */
static void test_patch_null_when_unchanged(void **state)
{
	const char *spec = "{\"agent\":{\"image\":\"i\",\"replicas\":1},"
			   "\"toolboxes\":[{\"name\":\"a\"}]}";
	json_auto_t *pods = pods_from("main:R sub1:N tb-a:R");
	json_auto_t *first = build(V1_HEAD, spec, NULL, pods, NULL, T0);
	_cleanup_(freep) char *stored = json_dumps(first, JSON_COMPACT | JSON_SORT_KEYS);
	_cleanup_(cs_freep) struct cs *cs = parse(V1_HEAD, spec, stored);
	_cleanup_(cs_pods_done) struct cs_pods p = {};
	json_auto_t *second = NULL;
	json_t *patch = (json_t *)0x1;

	assert_int_equal(cs_pods_classify(cs, pods, &p), 0);
	assert_int_equal(cs_status_build(cs, &p, NULL, T1, &second), 0);
	assert_int_equal(cs_status_patch(cs, second, &patch), 0);
	assert_null(patch);
	/* The same for a forced phase equal to the derived one. */
	json_decref(second);
	second = NULL;
	patch = (json_t *)0x1;
	assert_int_equal(cs_status_build(cs, &p, "Scaling", T1, &second), 0);
	assert_int_equal(cs_status_patch(cs, second, &patch), 0);
	assert_null(patch);
}

static void test_patch_nulls_removed_fields(void **state)
{
	const char *spec = "{\"agent\":{\"image\":\"i\"}}";
	const char *old = "{\"observedGeneration\":3,\"phase\":\"Running\",\"readyAgents\":1,"
			  "\"desiredAgents\":1,\"readyToolboxes\":1,\"desiredToolboxes\":1,"
			  "\"agents\":[{\"slot\":0,\"role\":\"main\",\"podName\":\"demo-0\","
			  "\"ip\":\"10.0.0.2\",\"phase\":\"Running\"}],"
			  "\"toolboxes\":[{\"name\":\"a\",\"podName\":\"demo-a\",\"connType\":\"ssh\"}],"
			  "\"conditions\":[{\"type\":\"Ready\",\"status\":\"True\","
			  "\"observedGeneration\":3,\"lastTransitionTime\":\"" OLD "\","
			  "\"reason\":\"AllAgentsReady\","
			  "\"message\":\"1/1 agents ready, 1/1 toolboxes ready\"},"
			  "{\"type\":\"Progressing\",\"status\":\"False\",\"observedGeneration\":3,"
			  "\"lastTransitionTime\":\"" OLD "\",\"reason\":\"Stable\","
			  "\"message\":\"Running\"}]}";
	_cleanup_(cs_freep) struct cs *cs = parse(V1_HEAD, spec, old);
	_cleanup_(cs_pods_done) struct cs_pods p = {};
	json_auto_t *pods = json_array();
	json_auto_t *st = NULL;
	json_auto_t *patch = NULL;

	/* The toolbox left the spec and its pod is gone; main lost its IP. */
	json_array_append_new(pods, pod("demo-0", "main", "0", "Running", true, NULL));
	assert_int_equal(cs_pods_classify(cs, pods, &p), 0);
	assert_int_equal(cs_status_build(cs, &p, NULL, T1, &st), 0);
	assert_int_equal(cs_status_patch(cs, st, &patch), 0);
	assert_json(patch, "{\"status\":{\"readyToolboxes\":0,\"desiredToolboxes\":0,"
			   "\"agents\":[{\"slot\":0,\"role\":\"main\",\"podName\":\"demo-0\","
			   "\"phase\":\"Running\"}],"
			   "\"toolboxes\":null,"
			   "\"conditions\":[{\"type\":\"Ready\",\"status\":\"True\","
			   "\"observedGeneration\":3,\"lastTransitionTime\":\"" OLD "\","
			   "\"reason\":\"AllAgentsReady\","
			   "\"message\":\"1/1 agents ready, 0/0 toolboxes ready\"},"
			   "{\"type\":\"Progressing\",\"status\":\"False\",\"observedGeneration\":3,"
			   "\"lastTransitionTime\":\"" OLD "\",\"reason\":\"Stable\","
			   "\"message\":\"Running\"}]}}");
}

/* No status yet: the patch is the whole status. */
static void test_patch_first_write(void **state)
{
	_cleanup_(cs_freep) struct cs *cs = parse(V1_HEAD, "{\"agent\":{\"image\":\"i\"}}", NULL);
	json_auto_t *st = load("{\"phase\":\"Pending\",\"readyAgents\":0}");
	json_auto_t *patch = NULL;

	assert_int_equal(cs_status_patch(cs, st, &patch), 0);
	assert_json(patch, "{\"status\":{\"phase\":\"Pending\",\"readyAgents\":0}}");
	assert_int_equal(cs_status_patch(cs, NULL, &patch), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_phase_table),
		cmocka_unit_test(test_counts_present_at_zero),
		cmocka_unit_test(test_conditions_transition_time),
		cmocka_unit_test(test_agent_and_toolbox_order),
		cmocka_unit_test(test_no_main_no_forked_from),
		cmocka_unit_test(test_conn_type_table),
		cmocka_unit_test(test_legacy_shape),
		cmocka_unit_test(test_patch_null_when_unchanged),
		cmocka_unit_test(test_patch_nulls_removed_fields),
		cmocka_unit_test(test_patch_first_write),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
