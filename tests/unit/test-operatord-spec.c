/* operatord spec.c: a CocoonSet as the engine sees it. v1 defaults (operator-webhook.md
 * §1.1), the legacy cocoon.cis/v1alpha1 mapping (§1.3), canonical quantities, wrong JSON
 * types refused with the field's path, and the names and ExtractAgentSlot of §1.4. */
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
	"\"metadata\":{\"name\":\"demo\",\"namespace\":\"team-a\",\"uid\":\"u-1\","                \
	"\"resourceVersion\":\"41\",\"generation\":3}"


/* Parses {head, metadata, "spec": spec}; fails the test unless it parses. */
static struct cs *parse(const char *head, const char *spec)
{
	_cleanup_(freep) char *text = NULL, *error = NULL;
	json_auto_t *obj = NULL;
	struct cs *cs = NULL;

	assert_true(asprintf(&text, "{%s,%s,\"spec\":%s}", head, METADATA, spec) > 0);
	obj = load(text);
	if (cs_parse(obj, &cs, &error) < 0)
		fail_msg("cs_parse(%s): %s", spec, error);
	return cs;
}

static void assert_json(const json_t *have, const char *want)
{
	json_auto_t *w = load(want);
	_cleanup_(freep) char *h = have ? json_dumps(have, JSON_COMPACT | JSON_SORT_KEYS) : NULL;

	if (!json_equal((json_t *)have, w))
		fail_msg("want %s, have %s", want, h ? h : "NULL");
}

static void test_v1_defaults(void **state)
{
	_cleanup_(cs_freep) struct cs *cs =
	    parse(V1_HEAD, "{\"agent\":{\"image\":\"ubuntu\"},\"toolboxes\":[{\"name\":\"tb\"}]}");

	assert_int_equal(cs->api, CS_API_V1);
	assert_string_equal(cs_api_version(cs), "cocoonset.cocoonstack.io/v1");
	assert_string_equal(cs->ns, "team-a");
	assert_string_equal(cs->name, "demo");
	assert_string_equal(cs->uid, "u-1");
	assert_string_equal(cs->resource_version, "41");
	assert_int_equal(cs->generation, 3);
	assert_false(cs->deleting);
	assert_false(cs->has_finalizer);
	assert_false(cs->suspend);
	assert_string_equal(cs->snapshot_policy, "always");
	assert_string_equal(cs->hibernate_policy, "retain");
	assert_string_equal(cs->node_pool, "default");
	assert_null(cs->snapshot_class);
	assert_null(cs->node_name);
	assert_int_equal(cs->agent.replicas, 0);
	assert_string_equal(cs->agent.image, "ubuntu");
	assert_string_equal(cs->agent.mode, "clone");
	assert_null(cs->agent.service_account);
	assert_null(cs->agent.env_from);
	assert_string_equal(cs->agent.vm.os, "linux");
	assert_string_equal(cs->agent.vm.backend, "cloud-hypervisor");
	assert_null(cs->agent.vm.conn_type);
	assert_null(cs->agent.vm.network);
	assert_false(cs->agent.vm.force_pull);
	assert_false(cs->agent.vm.no_direct_io);
	assert_int_equal(cs->agent.vm.probe_port, 0);
	assert_string_equal(cs->agent.vm.storage, "");
	assert_null(cs->agent.vm.resources);
	assert_int_equal(cs->n_toolboxes, 1);
	assert_string_equal(cs->toolboxes[0].name, "tb");
	assert_string_equal(cs->toolboxes[0].mode, "run");
	assert_null(cs->toolboxes[0].image);
	assert_string_equal(cs->toolboxes[0].vm.os, "linux");
	assert_string_equal(cs->toolboxes[0].vm.backend, "cloud-hypervisor");
	assert_null(cs->status);
	assert_null(cs->annotations);
}

/* Empty strings and nulls are unset, so they get the defaults too (Go's decoder). */
static void test_v1_empty_and_null(void **state)
{
	_cleanup_(cs_freep) struct cs *cs =
	    parse(V1_HEAD, "{\"snapshotPolicy\":\"\",\"nodePool\":\"\",\"nodeName\":\"\","
			   "\"snapshotCompatibilityClass\":null,\"unknownField\":{\"x\":1},"
			   "\"agent\":{\"image\":\"i\",\"mode\":\"\",\"replicas\":null,\"os\":null,"
			   "\"storage\":\"\",\"network\":\"\",\"surprise\":true}}");

	assert_string_equal(cs->snapshot_policy, "always");
	assert_string_equal(cs->node_pool, "default");
	assert_null(cs->node_name);
	assert_null(cs->snapshot_class);
	assert_string_equal(cs->agent.mode, "clone");
	assert_int_equal(cs->agent.replicas, 0);
	assert_string_equal(cs->agent.vm.os, "linux");
	assert_string_equal(cs->agent.vm.storage, "");
	assert_null(cs->agent.vm.network);
}

static void test_v1_everything(void **state)
{
	_cleanup_(cs_freep) struct cs *cs = NULL;
	_cleanup_(freep) char *error = NULL;
	json_auto_t *obj = load(
	    "{" V1_HEAD ",\"metadata\":{\"name\":\"demo\",\"namespace\":\"team-a\",\"uid\":\"u\","
	    "\"generation\":9,\"deletionTimestamp\":\"2026-01-01T00:00:00Z\","
	    "\"finalizers\":[\"other\",\"cocoonset.cocoonstack.io/finalizer\"],"
	    "\"annotations\":{\"a\":\"b\"}},"
	    "\"spec\":{\"suspend\":true,\"snapshotPolicy\":\"main-only\","
	    "\"hibernatePolicy\":\"release\",\"nodePool\":\"gpu\","
	    "\"snapshotCompatibilityClass\":\"icelake\",\"nodeName\":\"node-7\","
	    "\"agent\":{\"image\":\"img\",\"mode\":\"run\",\"replicas\":4,\"os\":\"windows\","
	    "\"backend\":\"firecracker\",\"connType\":\"rdp\",\"network\":\"net1\","
	    "\"forcePull\":true,\"noDirectIO\":true,\"probePort\":22,\"storage\":\"20Gi\","
	    "\"resources\":{\"limits\":{\"cpu\":\"2000m\",\"memory\":\"4096Mi\"},"
	    "\"requests\":{\"cpu\":1.5,\"memory\":1073741824},\"claims\":[{\"name\":\"c\"}]},"
	    "\"envFrom\":[{\"configMapRef\":{\"name\":\"env\"}}],\"serviceAccountName\":\"sa\"},"
	    "\"toolboxes\":[{\"name\":\"win\",\"mode\":\"static\",\"staticIP\":\"10.0.0.5\","
	    "\"staticVMID\":\"vm-5\",\"vncPort\":5901,\"os\":\"windows\",\"storage\":30}]},"
	    "\"status\":{\"phase\":\"Running\"}}");

	assert_int_equal(cs_parse(obj, &cs, &error), 0);
	assert_true(cs->deleting);
	assert_true(cs->has_finalizer);
	assert_int_equal(cs->generation, 9);
	assert_true(cs->suspend);
	assert_string_equal(cs->snapshot_policy, "main-only");
	assert_string_equal(cs->hibernate_policy, "release");
	assert_string_equal(cs->node_pool, "gpu");
	assert_string_equal(cs->snapshot_class, "icelake");
	assert_string_equal(cs->node_name, "node-7");
	assert_int_equal(cs->agent.replicas, 4);
	assert_string_equal(cs->agent.mode, "run");
	assert_string_equal(cs->agent.service_account, "sa");
	assert_json(cs->agent.env_from, "[{\"configMapRef\":{\"name\":\"env\"}}]");
	assert_string_equal(cs->agent.vm.os, "windows");
	assert_string_equal(cs->agent.vm.backend, "firecracker");
	assert_string_equal(cs->agent.vm.conn_type, "rdp");
	assert_string_equal(cs->agent.vm.network, "net1");
	assert_true(cs->agent.vm.force_pull);
	assert_true(cs->agent.vm.no_direct_io);
	assert_int_equal(cs->agent.vm.probe_port, 22);
	assert_string_equal(cs->agent.vm.storage, "20Gi");
	/* canonical, as the apiserver stores them; other members kept */
	assert_json(cs->agent.vm.resources,
		    "{\"limits\":{\"cpu\":\"2\",\"memory\":\"4Gi\"},"
		    "\"requests\":{\"cpu\":\"1500m\",\"memory\":\"1073741824\"},"
		    "\"claims\":[{\"name\":\"c\"}]}");
	assert_int_equal(cs->n_toolboxes, 1);
	assert_string_equal(cs->toolboxes[0].mode, "static");
	assert_string_equal(cs->toolboxes[0].static_ip, "10.0.0.5");
	assert_string_equal(cs->toolboxes[0].static_vmid, "vm-5");
	assert_int_equal(cs->toolboxes[0].vnc_port, 5901);
	assert_string_equal(cs->toolboxes[0].vm.storage, "30");
	assert_string_equal(json_string_value(json_object_get(cs->annotations, "a")), "b");
	assert_string_equal(json_string_value(json_object_get(cs->status, "phase")), "Running");
	assert_ptr_equal(cs_toolbox_find(cs, "win"), &cs->toolboxes[0]);
	assert_null(cs_toolbox_find(cs, "linux"));
}

/* storage is written into an annotation that drift compares byte for byte: it must be the
 * apiserver's canonical form (operator-webhook.md §7.3). */
static void test_storage_canonical(void **state)
{
	static const struct {
		const char *json, *want;
	} rows[] = {
		{ "\"20Gi\"", "20Gi" },
		{ "\"1024Mi\"", "1Gi" },
		{ "\"20G\"", "20G" },
		{ "\"20000M\"", "20G" },
		{ "\"1.5Gi\"", "1536Mi" },
		{ "100", "100" },
		{ "1.5", "1500m" },
		{ "\"0\"", "" },
		{ "0", "" },
		{ "\"0Gi\"", "" },
		{ "\"\"", "" },
		{ "null", "" },
		{ "\"1e3\"", "1e3" },
		{ "\"+2Gi\"", "2Gi" },
	};

	for (size_t i = 0; i < ELEMENTSOF(rows); i++) {
		_cleanup_(freep) char *spec = NULL;
		_cleanup_(cs_freep) struct cs *cs = NULL;

		assert_true(asprintf(&spec, "{\"agent\":{\"image\":\"i\",\"storage\":%s}}",
				     rows[i].json) > 0);
		print_message("storage %s\n", rows[i].json);
		cs = parse(V1_HEAD, spec);
		assert_string_equal(cs->agent.vm.storage, rows[i].want);
	}
}

/* The seed's quick-start (deploy/samples/cocoonset-legacy.yaml) and every §1.3 field. */
static void test_legacy_mapping(void **state)
{
	_cleanup_(cs_freep) struct cs *cs = parse(
	    LEGACY_HEAD,
	    "{\"agent\":{\"image\":\"ubuntu-dev-base\",\"replicas\":1,\"os\":\"linux\","
	    "\"network\":\"n\",\"storage\":\"2048Mi\",\"serviceAccountName\":\"sa\","
	    "\"envFrom\":[{\"secretRef\":{\"name\":\"s\"}}],"
	    "\"resources\":{\"cpu\":\"2\",\"memory\":\"4Gi\"},"
	    "\"backend\":\"firecracker\",\"connType\":\"vnc\",\"probePort\":\"ignored\"},"
	    "\"snapshotPolicy\":\"never\",\"suspend\":true,"
	    "\"hibernatePolicy\":\"release\",\"nodePool\":\"ignored\","
	    "\"snapshotCompatibilityClass\":\"ignored\","
	    "\"toolboxes\":[{\"name\":\"windows\",\"os\":\"windows\","
	    "\"image\":\"windows-server-2022\",\"mode\":\"static\",\"staticIP\":\"10.88.0.50\","
	    "\"staticVMID\":\"win-01\",\"vncPort\":5901,\"resources\":{\"memory\":\"8Gi\"},"
	    "\"storage\":\"15G\"},{\"name\":\"tools\"}]}");

	assert_int_equal(cs->api, CS_API_LEGACY);
	assert_string_equal(cs_api_version(cs), "cocoon.cis/v1alpha1");
	assert_true(cs->suspend);
	assert_string_equal(cs->snapshot_policy, "never");
	/* not in the legacy schema: the v1 defaults */
	assert_string_equal(cs->hibernate_policy, "retain");
	assert_string_equal(cs->node_pool, "default");
	assert_null(cs->snapshot_class);
	assert_string_equal(cs->node_name, "cocoon-pool");
	assert_int_equal(cs->agent.replicas, 1);
	assert_string_equal(cs->agent.image, "ubuntu-dev-base");
	assert_string_equal(cs->agent.mode, "clone");
	assert_string_equal(cs->agent.service_account, "sa");
	assert_json(cs->agent.env_from, "[{\"secretRef\":{\"name\":\"s\"}}]");
	assert_string_equal(cs->agent.vm.network, "n");
	assert_string_equal(cs->agent.vm.storage, "2Gi");
	assert_string_equal(cs->agent.vm.backend, "cloud-hypervisor");
	assert_null(cs->agent.vm.conn_type);
	assert_int_equal(cs->agent.vm.probe_port, 0);
	assert_json(cs->agent.vm.resources, "{\"limits\":{\"cpu\":\"2\",\"memory\":\"4Gi\"}}");
	assert_int_equal(cs->n_toolboxes, 2);
	assert_string_equal(cs->toolboxes[0].mode, "static");
	assert_string_equal(cs->toolboxes[0].image, "windows-server-2022");
	assert_string_equal(cs->toolboxes[0].static_ip, "10.88.0.50");
	assert_string_equal(cs->toolboxes[0].static_vmid, "win-01");
	assert_int_equal(cs->toolboxes[0].vnc_port, 5901);
	assert_string_equal(cs->toolboxes[0].vm.os, "windows");
	assert_string_equal(cs->toolboxes[0].vm.storage, "15G");
	assert_json(cs->toolboxes[0].vm.resources, "{\"limits\":{\"memory\":\"8Gi\"}}");
	assert_string_equal(cs->toolboxes[1].mode, "run");
	assert_null(cs->toolboxes[1].vm.resources);
}

static void test_legacy_node_name(void **state)
{
	static const struct {
		const char *spec, *want;
	} rows[] = {
		{ "{\"agent\":{\"image\":\"i\"}}", "cocoon-pool" },
		{ "{\"nodeName\":\"\",\"agent\":{\"image\":\"i\"}}", "cocoon-pool" },
		{ "{\"nodeName\":\"worker-3\",\"agent\":{\"image\":\"i\"}}", "worker-3" },
	};

	for (size_t i = 0; i < ELEMENTSOF(rows); i++) {
		_cleanup_(cs_freep) struct cs *cs = parse(LEGACY_HEAD, rows[i].spec);

		assert_string_equal(cs->node_name, rows[i].want);
	}
	/* resources with neither key: no limits at all */
	_cleanup_(cs_freep) struct cs *cs =
	    parse(LEGACY_HEAD, "{\"agent\":{\"image\":\"i\",\"resources\":{\"cpu\":\"\"}}}");
	assert_null(cs->agent.vm.resources);
}

struct error_row {
	const char *head, *spec, *message;
};

static const struct error_row error_rows[] = {
	{ V1_HEAD, "{\"agent\":{\"replicas\":\"3\"}}",
	  "spec.agent.replicas: expected an integer >= 0" },
	{ V1_HEAD, "{\"agent\":{\"replicas\":-1}}",
	  "spec.agent.replicas: expected an integer >= 0" },
	{ V1_HEAD, "{\"agent\":{\"replicas\":2.0}}",
	  "spec.agent.replicas: expected an integer >= 0" },
	{ V1_HEAD, "{\"agent\":{\"replicas\":3000000000}}",
	  "spec.agent.replicas: 3000000000 is out of range (at most 2147483647)" },
	{ V1_HEAD, "[]", "spec: expected an object" },
	{ V1_HEAD, "{\"agent\":[]}", "spec.agent: expected an object" },
	{ V1_HEAD, "{\"suspend\":\"true\"}", "spec.suspend: expected a boolean" },
	{ V1_HEAD, "{\"nodePool\":7}", "spec.nodePool: expected a string" },
	{ V1_HEAD, "{\"snapshotPolicy\":false}", "spec.snapshotPolicy: expected a string" },
	{ V1_HEAD, "{\"agent\":{\"image\":{}}}", "spec.agent.image: expected a string" },
	{ V1_HEAD, "{\"agent\":{\"forcePull\":1}}", "spec.agent.forcePull: expected a boolean" },
	{ V1_HEAD, "{\"agent\":{\"probePort\":70000}}",
	  "spec.agent.probePort: 70000 is out of range (at most 65535)" },
	{ V1_HEAD, "{\"agent\":{\"probePort\":\"22\"}}",
	  "spec.agent.probePort: expected an integer 0..65535" },
	{ V1_HEAD, "{\"agent\":{\"storage\":\"5Gb\"}}",
	  "spec.agent.storage: expected a quantity, got \"5Gb\"" },
	{ V1_HEAD, "{\"agent\":{\"storage\":true}}", "spec.agent.storage: expected a quantity" },
	{ V1_HEAD, "{\"agent\":{\"storage\":\"-1Gi\"}}",
	  "spec.agent.storage: expected a quantity >= 0, got \"-1Gi\"" },
	{ V1_HEAD, "{\"agent\":{\"storage\":\"1e30\"}}",
	  "spec.agent.storage: quantity \"1e30\" is out of range" },
	{ V1_HEAD, "{\"agent\":{\"envFrom\":{}}}", "spec.agent.envFrom: expected an array" },
	{ V1_HEAD, "{\"agent\":{\"resources\":[]}}", "spec.agent.resources: expected an object" },
	{ V1_HEAD, "{\"agent\":{\"resources\":{\"limits\":\"2\"}}}",
	  "spec.agent.resources.limits: expected an object" },
	{ V1_HEAD, "{\"agent\":{\"resources\":{\"requests\":{\"cpu\":\"two\"}}}}",
	  "spec.agent.resources.requests.cpu: expected a quantity, got \"two\"" },
	{ V1_HEAD, "{\"toolboxes\":{}}", "spec.toolboxes: expected an array" },
	{ V1_HEAD, "{\"toolboxes\":[{\"name\":\"a\"},7]}",
	  "spec.toolboxes[1]: expected an object" },
	{ V1_HEAD, "{\"toolboxes\":[{\"image\":\"x\"}]}",
	  "spec.toolboxes[0].name: expected a non-empty string" },
	{ V1_HEAD, "{\"toolboxes\":[{\"name\":\"a\",\"vncPort\":-5}]}",
	  "spec.toolboxes[0].vncPort: expected an integer 0..65535" },
	{ V1_HEAD, "{\"toolboxes\":[{\"name\":\"a\",\"resources\":{\"limits\":{\"memory\":[]}}}]}",
	  "spec.toolboxes[0].resources.limits.memory: expected a quantity" },
	{ LEGACY_HEAD, "{\"agent\":{\"resources\":{\"cpu\":\"lots\"}}}",
	  "spec.agent.resources.cpu: expected a quantity, got \"lots\"" },
	{ LEGACY_HEAD, "{\"nodeName\":[]}", "spec.nodeName: expected a string" },
	{ LEGACY_HEAD, "{\"toolboxes\":[{\"name\":\"t\",\"staticIP\":1}]}",
	  "spec.toolboxes[0].staticIP: expected a string" },
};

static void test_type_errors(void **state)
{
	for (size_t i = 0; i < ELEMENTSOF(error_rows); i++) {
		_cleanup_(freep) char *text = NULL, *error = NULL;
		json_auto_t *obj = NULL;
		struct cs *cs = NULL;

		assert_true(asprintf(&text, "{%s,%s,\"spec\":%s}", error_rows[i].head, METADATA,
				     error_rows[i].spec) > 0);
		print_message("spec: %s\n", error_rows[i].spec);
		obj = load(text);
		assert_int_equal(cs_parse(obj, &cs, &error), -EINVAL);
		assert_null(cs);
		assert_non_null(error);
		assert_string_equal(error, error_rows[i].message);
	}
}

static void test_metadata_errors(void **state)
{
	static const struct {
		const char *text, *message;
	} rows[] = {
		{ "{" V1_HEAD ",\"metadata\":[]}", "metadata: expected an object" },
		{ "{" V1_HEAD ",\"metadata\":{\"name\":1}}", "metadata.name: expected a string" },
		{ "{" V1_HEAD ",\"metadata\":{\"generation\":\"3\"}}",
		  "metadata.generation: expected an integer" },
		{ "{" V1_HEAD ",\"metadata\":{\"finalizers\":\"x\"}}",
		  "metadata.finalizers: expected an array" },
		{ "{" V1_HEAD ",\"metadata\":{\"finalizers\":[1]}}",
		  "metadata.finalizers[0]: expected a string" },
		{ "{" V1_HEAD ",\"metadata\":{\"annotations\":[]}}",
		  "metadata.annotations: expected an object" },
		{ "{" V1_HEAD ",\"status\":\"Running\"}", "status: expected an object" },
		{ "{\"apiVersion\":\"cocoonset.cocoonstack.io/v1\",\"kind\":\"CocoonHibernation\"}",
		  "unsupported apiVersion \"cocoonset.cocoonstack.io/v1\" kind "
		  "\"CocoonHibernation\"" },
		{ "{\"apiVersion\":\"cocoonset.cocoonstack.io/v1alpha1\",\"kind\":\"CocoonSet\"}",
		  "unsupported apiVersion \"cocoonset.cocoonstack.io/v1alpha1\" kind "
		  "\"CocoonSet\"" },
		{ "{\"kind\":\"CocoonSet\"}", "unsupported apiVersion \"\" kind \"CocoonSet\"" },
		{ "[1]", "unsupported apiVersion \"\" kind \"\"" },
	};

	for (size_t i = 0; i < ELEMENTSOF(rows); i++) {
		_cleanup_(freep) char *error = NULL;
		json_auto_t *obj = load(rows[i].text);
		struct cs *cs = NULL;

		print_message("object: %s\n", rows[i].text);
		assert_int_equal(cs_parse(obj, &cs, &error), -EINVAL);
		assert_null(cs);
		assert_string_equal(error, rows[i].message);
	}
}

/* The object may go away after parsing: the cs keeps what it borrows alive. */
static void test_outlives_object(void **state)
{
	_cleanup_(cs_freep) struct cs *cs = NULL;
	json_t *obj = load("{" V1_HEAD "," METADATA ",\"spec\":{\"agent\":{\"image\":\"kept\"}}}");

	assert_int_equal(cs_parse(obj, &cs, NULL), 0);
	json_decref(obj);
	assert_string_equal(cs->agent.image, "kept");
	assert_string_equal(cs->name, "demo");
}

static void test_names(void **state)
{
	_cleanup_(cs_freep) struct cs *cs = parse(V1_HEAD, "{\"agent\":{\"image\":\"i\"}}");
	_cleanup_(freep) char *vm0 = cs_agent_vm_name(cs, 0), *vm12 = cs_agent_vm_name(cs, 12);
	_cleanup_(freep) char *pod = cs_pod_name(cs, "3"), *tb = cs_pod_name(cs, "win");
	static const struct {
		const char *vm_name;
		int slot;
	} slots[] = {
		{ "vk-team-a-demo-0", 0 },
		{ "vk-team-a-demo-7", 7 },
		{ "vk-team-a-demo-007", 7 },
		{ "vk-team-a-demo-win", -1 },
		{ "vk-team-a-demo-db-2", -1 },
		{ "vk-team-a-demo--1", -1 },
		{ "vk-team-a-demo-", -1 },
		{ "vk-team-a-other-1", -1 },
		{ "vk-team-b-demo-1", -1 },
		{ "team-a-demo-1", -1 },
		{ "vk-team-a-demo-99999999999", -1 },
	};

	assert_string_equal(vm0, "vk-team-a-demo-0");
	assert_string_equal(vm12, "vk-team-a-demo-12");
	assert_string_equal(pod, "demo-3");
	assert_string_equal(tb, "demo-win");
	for (size_t i = 0; i < ELEMENTSOF(slots); i++) {
		print_message("%s\n", slots[i].vm_name);
		assert_int_equal(cs_vm_name_slot(cs, slots[i].vm_name), slots[i].slot);
	}
	assert_int_equal(cs_vm_name_slot(cs, NULL), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_v1_defaults),     cmocka_unit_test(test_v1_empty_and_null),
		cmocka_unit_test(test_v1_everything),   cmocka_unit_test(test_storage_canonical),
		cmocka_unit_test(test_legacy_mapping),  cmocka_unit_test(test_legacy_node_name),
		cmocka_unit_test(test_type_errors),     cmocka_unit_test(test_metadata_errors),
		cmocka_unit_test(test_outlives_object), cmocka_unit_test(test_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
