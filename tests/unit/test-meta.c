/* meta: the annotation contract as vkd/operatord/webhookd observe it — canonical vs legacy
 * precedence for every key, exact-"true" booleans, every validation message, defaults,
 * VM resources, runtime annotations (in place and as a merge patch, legacy dual-write),
 * and the naming, slot, role, pool, toleration and snapshot-policy rules. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "cocoon/macro.h"
#include "cocoon/meta.h"

/* {"metadata":{"annotations":{k1:v1,…}}} from NULL-terminated key/value pairs. */
static json_t *pod_with(const char *key, ...)
{
	json_t *anns = json_object();
	va_list ap;

	va_start(ap, key);
	for (const char *k = key; k; k = va_arg(ap, const char *))
		json_object_set_new(anns, k, json_string(va_arg(ap, const char *)));
	va_end(ap);
	return json_pack("{s:{s:o}}", "metadata", "annotations", anns);
}

static json_t *pod_from(const char *text)
{
	json_error_t err;
	json_t *pod = json_loads(text, 0, &err);

	if (!pod)
		fail_msg("bad test JSON: %s: %s", err.text, text);
	return pod;
}

/* The parsed value of one annotation key, rendered as text for table comparison. */
static void render(const struct meta_vm_spec *s, const char *key, char *out, size_t n)
{
	const char *v = NULL;

#define STR(k, member)                                                                             \
	if (streq(key, k))                                                                         \
		v = s->member ? s->member : "(null)";
#define BOOL(k, member)                                                                            \
	if (streq(key, k))                                                                         \
		v = s->member ? "true" : "false";
	STR(META_ANN_IMAGE, image)
	STR(META_ANN_STORAGE, storage)
	STR(META_ANN_VM_NAME, vm_name)
	STR(META_ANN_FORK_FROM, fork_from)
	STR(META_ANN_VM_ID, vm_id)
	STR(META_ANN_IP, ip)
	STR(META_ANN_NETWORK, network)
	STR(META_ANN_BACKEND, backend)
	STR(META_ANN_CONN_TYPE, conn_type)
	STR(META_ANN_LIFECYCLE_STATE, lifecycle_state)
	BOOL(META_ANN_HIBERNATE, hibernate)
	BOOL(META_ANN_MANAGED, managed)
	BOOL(META_ANN_FORCE_PULL, force_pull)
	BOOL(META_ANN_NO_DIRECT_IO, no_direct_io)
	BOOL(META_ANN_RESTORE_FROM_HIBERNATE, restore_from_hibernate)
	BOOL(META_ANN_KEEP_SNAPSHOT_ON_DELETE, keep_snapshot_on_delete)
#undef STR
#undef BOOL
	if (streq(key, META_ANN_MODE))
		v = s->mode ? meta_mode_to_string(s->mode) : "(unset)";
	if (streq(key, META_ANN_OS))
		v = s->os ? meta_os_to_string(s->os) : "(unset)";
	if (streq(key, META_ANN_SNAPSHOT_POLICY))
		v = s->snapshot_policy ? meta_snapshot_policy_to_string(s->snapshot_policy)
				       : "(unset)";
	if (v) {
		snprintf(out, n, "%s", v);
		return;
	}
	if (streq(key, META_ANN_VNC_PORT))
		snprintf(out, n, "%u", s->vnc_port);
	else if (streq(key, META_ANN_PROBE_PORT))
		snprintf(out, n, "%u", s->probe_port);
	else if (streq(key, META_ANN_GENERATION))
		snprintf(out, n, "%" PRId64, s->generation);
	else if (streq(key, META_ANN_LIFECYCLE_OBSERVED_GENERATION))
		snprintf(out, n, "%" PRId64, s->lifecycle_observed_generation);
	else
		fail_msg("no renderer for %s", key);
}

static void parse_ok(json_t *pod, struct meta_vm_spec *spec)
{
	char *error = NULL;
	int r = meta_vm_spec_from_pod(pod, spec, &error);

	if (r != 0)
		fail_msg("parse failed (%d): %s", r, error ? error : "");
	json_decref(pod);
}

static void expect_field(json_t *pod, const char *key, const char *want, bool legacy)
{
	struct meta_vm_spec spec;
	char got[64];

	parse_ok(pod, &spec);
	render(&spec, key, got, sizeof got);
	if (!streq(got, want))
		fail_msg("%s: got \"%s\", want \"%s\"", key, got, want);
	if (spec.legacy != legacy)
		fail_msg("%s: legacy flag %d, want %d", key, spec.legacy, legacy);
	meta_vm_spec_done(&spec);
}

/* a: canonical value, b: legacy value; rendered as want_a / want_b. */
static const struct {
	const char *key, *legacy, *a, *b, *want_a, *want_b;
} pairs[] = {
	{ META_ANN_MODE, META_LEGACY_ANN_MODE, "run", "static", "run", "static" },
	{ META_ANN_IMAGE, META_LEGACY_ANN_IMAGE, "img-a", "img-b:v2", "img-a", "img-b:v2" },
	{ META_ANN_OS, META_LEGACY_ANN_OS, "windows", "android", "windows", "android" },
	{ META_ANN_STORAGE, META_LEGACY_ANN_STORAGE, "20Gi", "10G", "20Gi", "10G" },
	{ META_ANN_HIBERNATE, META_LEGACY_ANN_HIBERNATE, "false", "true", "false", "true" },
	{ META_ANN_VM_NAME, META_LEGACY_ANN_VM_NAME, "vk-a-b-0", "legacy-vm", "vk-a-b-0",
	  "legacy-vm" },
	{ META_ANN_FORK_FROM, META_LEGACY_ANN_FORK_FROM, "src-a", "src-b", "src-a", "src-b" },
	{ META_ANN_SNAPSHOT_POLICY, META_LEGACY_ANN_SNAPSHOT_POLICY, "never", "main-only", "never",
	  "main-only" },
	{ META_ANN_MANAGED, META_LEGACY_ANN_MANAGED, "false", "true", "false", "true" },
	{ META_ANN_VM_ID, META_LEGACY_ANN_VM_ID, "id-a", "id-b", "id-a", "id-b" },
	{ META_ANN_IP, META_LEGACY_ANN_IP, "10.0.0.1", "10.0.0.2", "10.0.0.1", "10.0.0.2" },
	{ META_ANN_VNC_PORT, META_LEGACY_ANN_VNC_PORT, "5901", "5902", "5901", "5902" },
};

static void test_canonical_wins_over_legacy(void **state)
{
	for (size_t i = 0; i < ELEMENTSOF(pairs); i++) {
		const char *k = pairs[i].key, *l = pairs[i].legacy;

		expect_field(pod_with(k, pairs[i].a, l, pairs[i].b, NULL), k, pairs[i].want_a,
			     true);
		expect_field(pod_with(l, pairs[i].b, NULL), k, pairs[i].want_b, true);
		/* empty counts as absent, so the alias is used */
		expect_field(pod_with(k, "", l, pairs[i].b, NULL), k, pairs[i].want_b, true);
		expect_field(pod_with(k, pairs[i].a, NULL), k, pairs[i].want_a, false);
		/* an empty legacy key neither supplies a value nor marks the pod legacy */
		expect_field(pod_with(k, pairs[i].a, l, "", NULL), k, pairs[i].want_a, false);
	}
}

static void test_canonical_only_keys(void **state)
{
	static const struct {
		const char *key, *value, *want;
	} rows[] = {
		{ META_ANN_NETWORK, "cocoon-dhcp", "cocoon-dhcp" },
		{ META_ANN_BACKEND, "firecracker", "firecracker" },
		{ META_ANN_CONN_TYPE, "vnc", "vnc" },
		{ META_ANN_NO_DIRECT_IO, "true", "true" },
		{ META_ANN_FORCE_PULL, "true", "true" },
		{ META_ANN_PROBE_PORT, "8080", "8080" },
		{ META_ANN_PROBE_PORT, "65535", "65535" },
		{ META_ANN_PROBE_PORT, "1", "1" },
		{ META_ANN_RESTORE_FROM_HIBERNATE, "true", "true" },
		{ META_ANN_KEEP_SNAPSHOT_ON_DELETE, "true", "true" },
		{ META_ANN_LIFECYCLE_STATE, META_LIFECYCLE_HIBERNATED, "hibernated" },
		{ META_ANN_LIFECYCLE_OBSERVED_GENERATION, "7", "7" },
		{ META_ANN_LIFECYCLE_OBSERVED_GENERATION, "seven", "0" },
		{ META_ANN_LIFECYCLE_OBSERVED_GENERATION, "", "0" },
		{ META_ANN_GENERATION, "42", "42" },
		{ META_ANN_GENERATION, "+42", "42" },
		{ META_ANN_GENERATION, "4 2", "0" },
		{ META_ANN_GENERATION, "99999999999999999999", "0" },
		{ META_ANN_MODE, "adopt", "adopt" },
		{ META_ANN_MODE, "clone", "clone" },
		{ META_ANN_MODE, "", "(unset)" },
		{ META_ANN_OS, "linux", "linux" },
		{ META_ANN_SNAPSHOT_POLICY, "always", "always" },
	};

	for (size_t i = 0; i < ELEMENTSOF(rows); i++)
		expect_field(pod_with(rows[i].key, rows[i].value, NULL), rows[i].key, rows[i].want,
			     false);
}

static void test_booleans_exactly_true(void **state)
{
	static const char *const keys[] = {
		META_ANN_HIBERNATE,
		META_LEGACY_ANN_HIBERNATE,
		META_ANN_MANAGED,
		META_LEGACY_ANN_MANAGED,
		META_ANN_FORCE_PULL,
		META_ANN_NO_DIRECT_IO,
		META_ANN_RESTORE_FROM_HIBERNATE,
		META_ANN_KEEP_SNAPSHOT_ON_DELETE,
	};
	static const char *const falsy[] = { "True",  "TRUE",  "1",     "yes", "on",
					     " true", "true ", "false", "t" };

	for (size_t i = 0; i < ELEMENTSOF(keys); i++) {
		/* render() knows canonical keys; map a legacy key to its canonical one */
		const char *canon = keys[i];
		bool legacy = strncmp(keys[i], "cocoon.cis/", 11) == 0;

		if (streq(keys[i], META_LEGACY_ANN_HIBERNATE))
			canon = META_ANN_HIBERNATE;
		if (streq(keys[i], META_LEGACY_ANN_MANAGED))
			canon = META_ANN_MANAGED;
		expect_field(pod_with(keys[i], "true", NULL), canon, "true", legacy);
		for (size_t j = 0; j < ELEMENTSOF(falsy); j++)
			expect_field(pod_with(keys[i], falsy[j], NULL), canon, "false", legacy);
	}
}

static void expect_error(json_t *pod, const char *want)
{
	struct meta_vm_spec spec = { .vm_name = (char *)"sentinel" };
	char *error = NULL;

	assert_int_equal(meta_vm_spec_from_pod(pod, &spec, &error), -EINVAL);
	assert_non_null(error);
	if (!streq(error, want))
		fail_msg("got error \"%s\"\nwant      \"%s\"", error, want);
	assert_string_equal(spec.vm_name, "sentinel"); /* untouched */
	/* callers that pass no ret_error still get the code */
	assert_int_equal(meta_vm_spec_from_pod(pod, &spec, NULL), -EINVAL);
	free(error);
	json_decref(pod);
}

static void test_validation_errors(void **state)
{
	static const struct {
		const char *key, *value, *error;
	} rows[] = {
		{ META_ANN_MODE, "fork",
		  "invalid annotation cocoonset.cocoonstack.io/mode=\"fork\": expected clone, run, "
		  "adopt or static" },
		{ META_LEGACY_ANN_MODE, "Run",
		  "invalid annotation cocoon.cis/mode=\"Run\": expected clone, run, adopt or "
		  "static" },
		{ META_ANN_OS, "macos",
		  "invalid annotation cocoonset.cocoonstack.io/os=\"macos\": expected linux, "
		  "windows "
		  "or android" },
		{ META_LEGACY_ANN_OS, "Windows",
		  "invalid annotation cocoon.cis/os=\"Windows\": expected linux, windows or "
		  "android" },
		{ META_ANN_SNAPSHOT_POLICY, "sometimes",
		  "invalid annotation cocoonset.cocoonstack.io/snapshot-policy=\"sometimes\": "
		  "expected always, main-only or never" },
		{ META_LEGACY_ANN_SNAPSHOT_POLICY, "main_only",
		  "invalid annotation cocoon.cis/snapshot-policy=\"main_only\": expected always, "
		  "main-only or never" },
		{ META_ANN_STORAGE, "20 GB",
		  "invalid annotation cocoonset.cocoonstack.io/storage=\"20 GB\": expected a "
		  "positive quantity such as 20Gi or 100G" },
		{ META_ANN_STORAGE, "0",
		  "invalid annotation cocoonset.cocoonstack.io/storage=\"0\": expected a positive "
		  "quantity such as 20Gi or 100G" },
		{ META_LEGACY_ANN_STORAGE, "-1Gi",
		  "invalid annotation cocoon.cis/storage=\"-1Gi\": expected a positive quantity "
		  "such "
		  "as 20Gi or 100G" },
		{ META_ANN_PROBE_PORT, "0",
		  "invalid annotation vm.cocoonstack.io/probe-port=\"0\": expected a port number "
		  "from 1 to 65535" },
		{ META_ANN_PROBE_PORT, "65536",
		  "invalid annotation vm.cocoonstack.io/probe-port=\"65536\": expected a port "
		  "number from 1 to 65535" },
		{ META_ANN_PROBE_PORT, "http",
		  "invalid annotation vm.cocoonstack.io/probe-port=\"http\": expected a port "
		  "number "
		  "from 1 to 65535" },
		{ META_ANN_PROBE_PORT, "-1",
		  "invalid annotation vm.cocoonstack.io/probe-port=\"-1\": expected a port number "
		  "from 1 to 65535" },
		{ META_LEGACY_ANN_VNC_PORT, "59o1",
		  "invalid annotation cocoon.cis/vnc-port=\"59o1\": expected a port number from 1 "
		  "to 65535" },
		/* values are quoted with escapes, so a message is always one printable line */
		{ META_ANN_MODE, "a\"b\\c\n\xc3\xa9",
		  "invalid annotation "
		  "cocoonset.cocoonstack.io/mode=\"a\\\"b\\\\c\\x0a\\xc3\\xa9\": "
		  "expected clone, run, adopt or static" },
		{ META_ANN_MODE,
		  "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxyyyyyyyyyy",
		  "invalid annotation "
		  "cocoonset.cocoonstack.io/mode=\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
		  "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx...\": expected clone, run, adopt or static" },
	};

	for (size_t i = 0; i < ELEMENTSOF(rows); i++)
		expect_error(pod_with(rows[i].key, rows[i].value, NULL), rows[i].error);
	/* a bad canonical value is an error even when a good legacy one exists */
	expect_error(pod_with(META_ANN_MODE, "bogus", META_LEGACY_ANN_MODE, "run", NULL),
		     "invalid annotation cocoonset.cocoonstack.io/mode=\"bogus\": expected clone, "
		     "run, adopt or static");
	expect_error(pod_from("{\"metadata\":{\"annotations\":{\"vm.cocoonstack.io/probe-port\":"
			      "8080}}}"),
		     "invalid annotation vm.cocoonstack.io/probe-port: expected a string");
	expect_error(pod_from("{\"metadata\":{\"annotations\":[]}}"),
		     "invalid metadata.annotations: expected an object");
	expect_error(pod_from("{\"metadata\":\"x\"}"), "invalid metadata: expected an object");
	expect_error(pod_from("[]"), "invalid pod: expected a JSON object");
}

static void test_empty_pods(void **state)
{
	static const char *const pods[] = {
		"{}",
		"{\"metadata\":null}",
		"{\"metadata\":{}}",
		"{\"metadata\":{\"annotations\":null}}",
		"{\"metadata\":{\"annotations\":{\"other\":\"x\",\"vm.cocoonstack.io/ip\":null}}}",
	};

	for (size_t i = 0; i < ELEMENTSOF(pods); i++) {
		struct meta_vm_spec spec;

		parse_ok(pod_from(pods[i]), &spec);
		assert_int_equal(spec.mode, META_MODE_UNSET);
		assert_null(spec.vm_name);
		assert_null(spec.ip);
		assert_false(spec.legacy);
		assert_false(spec.managed);
		meta_vm_spec_done(&spec);
	}
}

static void test_defaults(void **state)
{
	struct meta_vm_spec spec;

	parse_ok(pod_from("{}"), &spec);
	assert_int_equal(meta_vm_spec_apply_defaults(&spec), 0);
	assert_int_equal(spec.mode, META_MODE_CLONE);
	assert_int_equal(spec.os, META_OS_LINUX);
	assert_int_equal(spec.snapshot_policy, META_SNAPSHOT_ALWAYS);
	assert_string_equal(spec.storage, "100G");
	meta_vm_spec_done(&spec);

	parse_ok(pod_with(META_LEGACY_ANN_OS, "windows", NULL), &spec);
	assert_int_equal(meta_vm_spec_apply_defaults(&spec), 0);
	assert_string_equal(spec.storage, "15G");
	assert_int_equal(spec.os, META_OS_WINDOWS);
	meta_vm_spec_done(&spec);

	/* what the pod says is kept */
	parse_ok(pod_with(META_ANN_OS, "windows", META_ANN_STORAGE, "40Gi", META_ANN_MODE, "run",
			  META_ANN_SNAPSHOT_POLICY, "never", NULL),
		 &spec);
	assert_int_equal(meta_vm_spec_apply_defaults(&spec), 0);
	assert_string_equal(spec.storage, "40Gi");
	assert_int_equal(spec.mode, META_MODE_RUN);
	assert_int_equal(spec.snapshot_policy, META_SNAPSHOT_NEVER);
	meta_vm_spec_done(&spec);
	assert_null(spec.storage); /* done() leaves a zeroed struct */
}

static void test_vm_resources(void **state)
{
	static const struct {
		const char *resources;
		enum meta_os os;
		int64_t cpus, memory;
		const char *error;
	} rows[] = {
		{ "{\"limits\":{\"cpu\":\"1500m\",\"memory\":\"4Gi\"}}", META_OS_LINUX, 2,
		  4294967296, NULL },
		{ "{\"requests\":{\"cpu\":\"2\"},\"limits\":{\"cpu\":\"4\"}}", META_OS_LINUX, 2, 0,
		  NULL },
		{ "{\"requests\":{\"cpu\":\"0\"},\"limits\":{\"cpu\":\"3\"}}", META_OS_LINUX, 3, 0,
		  NULL },
		{ "{\"requests\":{\"memory\":\"512Mi\"},\"limits\":{\"memory\":\"1Gi\"}}",
		  META_OS_LINUX, 0, 536870912, NULL },
		{ "{\"limits\":{\"memory\":1073741824}}", META_OS_LINUX, 0, 1073741824, NULL },
		{ "{}", META_OS_LINUX, 0, 0, NULL },
		{ "{}", META_OS_UNSET, 0, 0, NULL },
		{ "{}", META_OS_WINDOWS, 2, 4294967296, NULL },
		{ "{\"limits\":{\"memory\":\"8Gi\"}}", META_OS_WINDOWS, 2, 8589934592, NULL },
		{ "{\"limits\":{\"cpu\":\"250m\"}}", META_OS_WINDOWS, 1, 4294967296, NULL },
		{ "{\"limits\":{\"memory\":\"4GB\"}}", META_OS_LINUX, 0, 0,
		  "invalid spec.containers[0].resources.limits.memory=\"4GB\": expected a quantity "
		  "such as 4Gi" },
		{ "{\"requests\":{\"cpu\":\"-1\"}}", META_OS_LINUX, 0, 0,
		  "invalid spec.containers[0].resources.requests.cpu=\"-1\": expected a quantity "
		  "such as 2 or 500m" },
		{ "{\"limits\":{\"cpu\":true}}", META_OS_LINUX, 0, 0,
		  "invalid spec.containers[0].resources.limits.cpu: expected a quantity such as 2 "
		  "or 500m" },
	};

	for (size_t i = 0; i < ELEMENTSOF(rows); i++) {
		struct meta_vm_resources res = { .cpus = -7 };
		json_t *pod, *resources = pod_from(rows[i].resources);
		char *error = NULL;
		int r;

		pod = json_pack("{s:{s:[{s:s,s:o}]}}", "spec", "containers", "name", "agent",
				"resources", resources);
		r = meta_pod_vm_resources(pod, rows[i].os, &res, &error);
		if (rows[i].error) {
			assert_int_equal(r, -EINVAL);
			assert_string_equal(error, rows[i].error);
			assert_true(res.cpus == -7);
		} else {
			if (r != 0)
				fail_msg("row %zu: %s", i, error);
			if (res.cpus != rows[i].cpus || res.memory != rows[i].memory)
				fail_msg("row %zu: cpus %" PRId64 " memory %" PRId64, i, res.cpus,
					 res.memory);
		}
		free(error);
		json_decref(pod);
	}
}

static char *dump(const json_t *j)
{
	return json_dumps(j, JSON_SORT_KEYS | JSON_COMPACT);
}

static void expect_json(const json_t *j, const char *want)
{
	char *s = dump(j);

	if (!streq(s, want))
		fail_msg("got  %s\nwant %s", s, want);
	free(s);
}

static void test_runtime_annotations(void **state)
{
	struct meta_vm_spec spec;
	json_t *pod = pod_from("{\"metadata\":{\"name\":\"p\"}}"), *patch;

	assert_int_equal(meta_pod_set_runtime(pod, "vm-1", "10.0.0.5", false), 0);
	expect_json(pod, "{\"metadata\":{\"annotations\":{\"vm.cocoonstack.io/id\":\"vm-1\","
			 "\"vm.cocoonstack.io/ip\":\"10.0.0.5\"},\"name\":\"p\"}}");
	json_decref(pod);

	/* a legacy pod is recognised, and its runtime keys are dual-written */
	pod = pod_with(META_LEGACY_ANN_MODE, "clone", "keep", "me", NULL);
	parse_ok(json_incref(pod), &spec);
	assert_true(spec.legacy);
	assert_int_equal(meta_pod_set_runtime(pod, "vm-2", "10.0.0.6", spec.legacy), 0);
	meta_vm_spec_done(&spec);
	expect_json(pod, "{\"metadata\":{\"annotations\":{\"cocoon.cis/ip\":\"10.0.0.6\","
			 "\"cocoon.cis/mode\":\"clone\",\"cocoon.cis/vm-id\":\"vm-2\",\"keep\":"
			 "\"me\",\"vm.cocoonstack.io/id\":\"vm-2\",\"vm.cocoonstack.io/ip\":"
			 "\"10.0.0.6\"}}}");
	/* what was written reads back */
	parse_ok(json_incref(pod), &spec);
	assert_string_equal(spec.vm_id, "vm-2");
	assert_string_equal(spec.ip, "10.0.0.6");
	meta_vm_spec_done(&spec);
	/* hibernation clears both names; other annotations stay */
	assert_int_equal(meta_pod_set_runtime(pod, NULL, "", true), 0);
	expect_json(pod, "{\"metadata\":{\"annotations\":{\"cocoon.cis/mode\":\"clone\","
			 "\"keep\":\"me\"}}}");
	json_decref(pod);

	pod = pod_from("{\"metadata\":{\"annotations\":[]}}");
	assert_int_equal(meta_pod_set_runtime(pod, "x", "y", false), -EINVAL);
	json_decref(pod);
	pod = json_array();
	assert_int_equal(meta_pod_set_runtime(pod, "x", "y", false), -EINVAL);
	json_decref(pod);

	assert_int_equal(meta_runtime_patch("vm-3", "10.0.0.7", false, &patch), 0);
	expect_json(patch, "{\"metadata\":{\"annotations\":{\"vm.cocoonstack.io/id\":\"vm-3\","
			   "\"vm.cocoonstack.io/ip\":\"10.0.0.7\"}}}");
	json_decref(patch);
	assert_int_equal(meta_runtime_patch("vm-4", NULL, true, &patch), 0);
	expect_json(patch, "{\"metadata\":{\"annotations\":{\"cocoon.cis/ip\":null,"
			   "\"cocoon.cis/vm-id\":\"vm-4\",\"vm.cocoonstack.io/id\":\"vm-4\","
			   "\"vm.cocoonstack.io/ip\":null}}}");
	json_decref(patch);
}

static void test_naming(void **state)
{
	static const struct {
		const char *name;
		int64_t slot;
		const char *main_name, *role;
	} rows[] = {
		{ "a-007", 7, "a-0", META_ROLE_SUB_AGENT },
		{ "a-+3", 3, "a-0", META_ROLE_SUB_AGENT },
		{ "demo", -1, "demo", META_ROLE_SUB_AGENT },
		{ "demo-x", -1, "demo-x", META_ROLE_SUB_AGENT },
		{ "vk-ns-cs-0", 0, "vk-ns-cs-0", META_ROLE_MAIN },
		{ "vk-ns-cs-12", 12, "vk-ns-cs-0", META_ROLE_SUB_AGENT },
		{ "vk-ns-cs-db-2", 2, "vk-ns-cs-db-0", META_ROLE_SUB_AGENT },
		{ "vk-ns-cs-+0", 0, "vk-ns-cs-0", META_ROLE_MAIN },
		{ "a-", -1, "a-", META_ROLE_SUB_AGENT },
		{ "a-+", -1, "a-+", META_ROLE_SUB_AGENT },
		{ "a-3 ", -1, "a-3 ", META_ROLE_SUB_AGENT },
		{ "a-9223372036854775807", INT64_MAX, "a-0", META_ROLE_SUB_AGENT },
		{ "a-9223372036854775808", -1, "a-9223372036854775808", META_ROLE_SUB_AGENT },
		{ "", -1, "", META_ROLE_SUB_AGENT },
	};
	char *s;

	for (size_t i = 0; i < ELEMENTSOF(rows); i++) {
		if (meta_vm_name_slot(rows[i].name) != rows[i].slot)
			fail_msg("slot(%s) = %" PRId64, rows[i].name,
				 meta_vm_name_slot(rows[i].name));
		assert_int_equal(meta_main_agent_vm_name(rows[i].name, &s), 0);
		if (!streq(s, rows[i].main_name))
			fail_msg("main(%s) = %s", rows[i].name, s);
		free(s);
		assert_string_equal(meta_role_from_vm_name(rows[i].name), rows[i].role);
	}
	assert_int_equal(meta_vm_name_slot(NULL), -1);

	assert_int_equal(meta_vm_name_for_deployment("prod", "agent", 3, &s), 0);
	assert_string_equal(s, "vk-prod-agent-3");
	free(s);
	assert_int_equal(meta_vm_name_for_pod("prod", "bot-1", &s), 0);
	assert_string_equal(s, "vk-prod-bot-1");
	free(s);
	assert_int_equal(meta_pod_key("prod", "bot-1", &s), 0);
	assert_string_equal(s, "prod/bot-1");
	free(s);
}

static void test_agent_slot(void **state)
{
	static const struct {
		const char *ns, *cs, *name;
		int64_t slot;
		const char *role;
	} rows[] = {
		{ "ns", "cs", "vk-ns-cs-0", 0, META_ROLE_MAIN },
		{ "ns", "cs", "vk-ns-cs-12", 12, META_ROLE_SUB_AGENT },
		{ "ns", "cs", "vk-ns-cs-007", 7, META_ROLE_SUB_AGENT },
		{ "ns", "cs", "vk-ns-cs-db-2", -1, META_ROLE_TOOLBOX },
		{ "ns", "cs", "vk-ns-cs-db", -1, META_ROLE_TOOLBOX },
		{ "ns", "cs", "vk-ns-other-1", -1, META_ROLE_TOOLBOX },
		{ "ns", "cs", "vk-ns-cs-", -1, META_ROLE_TOOLBOX },
		{ "ns", "cs", "vk-ns-cs", -1, META_ROLE_TOOLBOX },
		{ "ns", "cs", "ns-cs-1", -1, META_ROLE_TOOLBOX },
		{ "ns", "my-set", "vk-ns-my-set-3", 3, META_ROLE_SUB_AGENT },
		{ "a-b", "c", "vk-a-b-c-1", 1, META_ROLE_SUB_AGENT },
		{ "ns", "cs", "vk-ns-cs-+1", 1, META_ROLE_SUB_AGENT },
	};

	for (size_t i = 0; i < ELEMENTSOF(rows); i++) {
		int64_t slot = meta_agent_slot(rows[i].ns, rows[i].cs, rows[i].name);

		if (slot != rows[i].slot)
			fail_msg("agent_slot(%s) = %" PRId64, rows[i].name, slot);
		assert_string_equal(meta_role_from_agent_slot(slot), rows[i].role);
	}
	assert_int_equal(meta_agent_slot("ns", "cs", NULL), -1);
}

static void test_vm_name_validity(void **state)
{
	static const char *const valid[] = {
		"a",
		"0",
		"vk-prod-agent-0",
		"A.b_c-1",
		"abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijk", /* 63 */
	};
	static const char *const invalid[] = {
		"",
		"-a",
		".a",
		"_a",
		"a b",
		"a/b",
		"a:b",
		"\xc3\xa9",
		"abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijkl", /* 64 */
	};

	for (size_t i = 0; i < ELEMENTSOF(valid); i++)
		if (!meta_vm_name_is_valid(valid[i]))
			fail_msg("\"%s\" should be valid", valid[i]);
	for (size_t i = 0; i < ELEMENTSOF(invalid); i++)
		if (meta_vm_name_is_valid(invalid[i]))
			fail_msg("\"%s\" should be invalid", invalid[i]);
	assert_false(meta_vm_name_is_valid(NULL));
}

static void test_owner_deployment(void **state)
{
	static const struct {
		const char *refs, *want;
	} rows[] = {
		{ "[{\"kind\":\"ReplicaSet\",\"name\":\"web-7d9f8c6b5\"}]", "web" },
		{ "[{\"kind\":\"ReplicaSet\",\"name\":\"my-app-5c9b\"}]", "my-app" },
		{ "[{\"kind\":\"CocoonSet\",\"name\":\"cs-1\"},"
		  "{\"kind\":\"ReplicaSet\",\"name\":\"api-123\"}]",
		  "api" },
		{ "[{\"kind\":\"ReplicaSet\",\"name\":\"nodash\"},"
		  "{\"kind\":\"ReplicaSet\",\"name\":\"second-1\"}]",
		  "second" },
		{ "[{\"kind\":\"ReplicaSet\",\"name\":\"-abc\"}]", NULL },
		{ "[{\"kind\":\"StatefulSet\",\"name\":\"db-0\"}]", NULL },
		{ "[{\"kind\":\"ReplicaSet\"}]", NULL },
		{ "[]", NULL },
		{ "{}", NULL },
	};

	for (size_t i = 0; i < ELEMENTSOF(rows); i++) {
		json_t *pod =
		    json_pack("{s:{s:o}}", "metadata", "ownerReferences", pod_from(rows[i].refs));
		char *s = (char *)"untouched";
		int r = meta_pod_owner_deployment(pod, &s);

		if (rows[i].want) {
			assert_int_equal(r, 0);
			assert_string_equal(s, rows[i].want);
			free(s);
		} else {
			assert_int_equal(r, -ENOENT);
			assert_string_equal(s, "untouched");
		}
		json_decref(pod);
	}
}

static void test_connection_type(void **state)
{
	assert_string_equal(meta_connection_type(META_OS_LINUX, false, NULL), "ssh");
	assert_string_equal(meta_connection_type(META_OS_UNSET, false, ""), "ssh");
	assert_string_equal(meta_connection_type(META_OS_WINDOWS, false, NULL), "rdp");
	assert_string_equal(meta_connection_type(META_OS_ANDROID, false, NULL), "adb");
	assert_string_equal(meta_connection_type(META_OS_WINDOWS, true, NULL), "vnc");
	assert_string_equal(meta_connection_type(META_OS_WINDOWS, true, "ssh"), "ssh");
}

static void test_is_windows_variants(void **state)
{
	static const struct {
		const char *key, *value, *key2, *value2;
		bool nocase, exact;
	} rows[] = {
		{ META_ANN_OS, "windows", NULL, NULL, true, true },
		{ META_ANN_OS, "Windows", NULL, NULL, true, false },
		{ META_ANN_OS, "WINDOWS", NULL, NULL, true, false },
		{ META_LEGACY_ANN_OS, "windows", NULL, NULL, true, true },
		{ META_ANN_OS, "linux", META_LEGACY_ANN_OS, "windows", false, false },
		{ META_ANN_OS, "", META_LEGACY_ANN_OS, "Windows", true, false },
		{ META_ANN_OS, "win", NULL, NULL, false, false },
		{ "other", "windows", NULL, NULL, false, false },
	};

	for (size_t i = 0; i < ELEMENTSOF(rows); i++) {
		json_t *pod =
		    pod_with(rows[i].key, rows[i].value, rows[i].key2, rows[i].value2, NULL);

		assert_int_equal(meta_pod_is_windows_nocase(pod), rows[i].nocase);
		assert_int_equal(meta_pod_is_windows_exact(pod), rows[i].exact);
		json_decref(pod);
	}
}

static void test_pool_order(void **state)
{
	static const struct {
		const char *pod, *want;
	} rows[] = {
		{ "{\"spec\":{\"nodeSelector\":{\"cocoonstack.io/pool\":\"gpu\"}},\"metadata\":"
		  "{\"labels\":{\"cocoonstack.io/pool\":\"lbl\"},\"annotations\":"
		  "{\"cocoonstack.io/pool\":\"ann\"}}}",
		  "gpu" },
		{ "{\"spec\":{\"nodeSelector\":{\"cocoonstack.io/pool\":\"\"}},\"metadata\":"
		  "{\"labels\":{\"cocoonstack.io/pool\":\"lbl\"},\"annotations\":"
		  "{\"cocoonstack.io/pool\":\"ann\"}}}",
		  "lbl" },
		{ "{\"metadata\":{\"annotations\":{\"cocoonstack.io/pool\":\"ann\"}}}", "ann" },
		{ "{\"metadata\":{\"labels\":{\"cocoonstack.io/pool\":\"\"}}}", "default" },
		{ "{}", "default" },
		{ "[]", "default" },
	};

	for (size_t i = 0; i < ELEMENTSOF(rows); i++) {
		json_t *pod = pod_from(rows[i].pod);

		assert_string_equal(meta_pod_pool(pod), rows[i].want);
		json_decref(pod);
	}
}

static void test_tolerates_cocoon(void **state)
{
	static const struct {
		const char *pod;
		bool want;
	} rows[] = {
		{ "{\"spec\":{\"tolerations\":[{\"key\":\"virtual-kubelet.io/provider\","
		  "\"operator\":\"Exists\",\"effect\":\"NoSchedule\"}]}}",
		  true },
		{ "{\"spec\":{\"tolerations\":[{\"key\":\"node.kubernetes.io/not-ready\"},"
		  "{\"key\":\"virtual-kubelet.io/provider\",\"operator\":\"Equal\",\"value\":"
		  "\"other\"}]}}",
		  true },
		{ "{\"spec\":{\"tolerations\":[{\"key\":\"virtual-kubelet.io/Provider\"}]}}",
		  false },
		{ "{\"spec\":{\"tolerations\":[{\"operator\":\"Exists\"}]}}", false },
		{ "{\"spec\":{}}", false },
	};

	for (size_t i = 0; i < ELEMENTSOF(rows); i++) {
		json_t *pod = pod_from(rows[i].pod);

		assert_int_equal(meta_pod_tolerates_cocoon(pod), rows[i].want);
		json_decref(pod);
	}
}

static void test_should_snapshot(void **state)
{
	static const struct {
		enum meta_snapshot_policy policy;
		const char *vm_name;
		bool want;
	} rows[] = {
		{ META_SNAPSHOT_UNSET, "vk-ns-cs-1", true },
		{ META_SNAPSHOT_ALWAYS, "vk-ns-tb", true },
		{ META_SNAPSHOT_NEVER, "vk-ns-cs-0", false },
		{ META_SNAPSHOT_MAIN_ONLY, "vk-ns-cs-0", true },
		{ META_SNAPSHOT_MAIN_ONLY, "vk-ns-cs-1", false },
		{ META_SNAPSHOT_MAIN_ONLY, "vk-ns-tb", false },
		{ META_SNAPSHOT_MAIN_ONLY, NULL, false },
	};

	for (size_t i = 0; i < ELEMENTSOF(rows); i++)
		assert_int_equal(meta_should_snapshot(rows[i].policy, rows[i].vm_name),
				 rows[i].want);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_canonical_wins_over_legacy),
		cmocka_unit_test(test_canonical_only_keys),
		cmocka_unit_test(test_booleans_exactly_true),
		cmocka_unit_test(test_validation_errors),
		cmocka_unit_test(test_empty_pods),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_vm_resources),
		cmocka_unit_test(test_runtime_annotations),
		cmocka_unit_test(test_naming),
		cmocka_unit_test(test_agent_slot),
		cmocka_unit_test(test_vm_name_validity),
		cmocka_unit_test(test_owner_deployment),
		cmocka_unit_test(test_connection_type),
		cmocka_unit_test(test_is_windows_variants),
		cmocka_unit_test(test_pool_order),
		cmocka_unit_test(test_tolerates_cocoon),
		cmocka_unit_test(test_should_snapshot),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
