/* /validate-cocoonset and /validate-cocoonhibernation: one row per rule of
 * operator-webhook.md §3.5–3.6 with its exact message, the order and "; " join, decode
 * errors, the operations that are skipped, and the unchanged-spec escape hatch. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "test-json.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../../webhookd/webhookd.h"

#define INVALID "cocoon-webhook: invalid CocoonSet spec: "
#define AGENT   "\"agent\":{\"image\":\"ubuntu:22.04\"}"
#define RFC1123_MESSAGE                                                                            \
	"a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "   \
	"and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', "   \
	"regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"


static struct admission_request request(enum admission_operation op, const char *kind,
					json_t *object, json_t *old_object)
{
	return (struct admission_request){ .uid = "u",
					   .kind = kind,
					   .resource = "x",
					   .sub_resource = "",
					   .operation = op,
					   .ns = "team-a",
					   .name = "n",
					   .username = "",
					   .object = object,
					   .old_object = old_object };
}

/* Runs /validate-cocoonset on a CREATE of {"spec": spec} and checks the verdict. */
static void expect_cocoonset(const char *spec, const char *message)
{
	_cleanup_(freep) char *text = NULL;
	struct admission_verdict v;
	struct admission_request req;
	json_t *obj;

	assert_true(asprintf(&text, "{\"metadata\":{\"name\":\"cs\"},\"spec\":%s}", spec) > 0);
	obj = load(text);
	req = request(ADMISSION_CREATE, "CocoonSet", obj, NULL);
	print_message("spec: %s\n", spec);
	assert_int_equal(validate_cocoonset(&req, &v), 0);
	if (message) {
		assert_false(v.allowed);
		assert_int_equal(v.result, ADMISSION_RESULT_DENY);
		assert_string_equal(v.reason, "");
		assert_string_equal(v.message, message);
	} else {
		assert_true(v.allowed);
		assert_int_equal(v.result, ADMISSION_RESULT_ALLOW);
		assert_null(v.message);
	}
	admission_verdict_done(&v);
	json_decref(obj);
}

struct rule_row {
	const char *spec;
	const char *message; /* NULL: allowed */
};

static const struct rule_row cocoonset_rules[] = {
	/* a valid spec, and values that are valid though the messages do not list them */
	{ "{" AGENT "}", NULL },
	{ "{\"agent\":{\"image\":\"a\",\"os\":\"macos\",\"replicas\":2}}", NULL },
	{ "{\"agent\":{\"image\":\"team/base__x.y-z/img:v1.2_3\"}}", NULL },
	{ "{\"agent\":{\"image\":\"https://x/img.qcow2\",\"mode\":\"run\"}}", NULL },
	/* 1 */
	{ "{\"agent\":{}}", INVALID "spec.agent.image is required" },
	{ "{}", INVALID "spec.agent.image is required" },
	/* 2 */
	{ "{\"agent\":{\"image\":\"a\",\"replicas\":-1}}",
	  INVALID "spec.agent.replicas must be >= 0, got -1" },
	/* 3 */
	{ "{\"agent\":{\"image\":\"a\",\"mode\":\"fork\"}}",
	  INVALID "spec.agent.mode must be clone or run, got \"fork\"" },
	/* 4 VMOptions */
	{ "{\"agent\":{\"image\":\"a\",\"os\":\"beos\"}}",
	  INVALID "spec.agent.os must be linux, windows, or android, got \"beos\"" },
	{ "{\"agent\":{\"image\":\"a\",\"connType\":\"telnet\"}}",
	  INVALID "spec.agent.connType must be ssh, rdp, vnc, or adb, got \"telnet\"" },
	{ "{\"agent\":{\"image\":\"a\",\"backend\":\"qemu\"}}",
	  INVALID "spec.agent.backend must be cloud-hypervisor or firecracker, got \"qemu\"" },
	{ "{\"agent\":{\"image\":\"a\",\"mode\":\"run\",\"backend\":\"firecracker\",\"os\":"
	  "\"windows\"}}",
	  INVALID "spec.agent: firecracker does not support Windows guests" },
	{ "{\"agent\":{\"image\":\"https://x/img.qcow2\",\"mode\":\"run\",\"backend\":"
	  "\"firecracker\"}}",
	  INVALID "spec.agent: firecracker requires an OCI image, cloudimg URLs are not supported "
		  "(got \"https://x/img.qcow2\")" },
	/* 5: the agent's mode defaults to clone */
	{ "{\"agent\":{\"image\":\"a\",\"backend\":\"firecracker\"}}",
	  INVALID "spec.agent: firecracker does not support clone mode, use mode=run instead" },
	/* 6 */
	{ "{\"agent\":{\"image\":\"registry:5000/a\"}}",
	  INVALID "spec.agent.image \"registry:5000/a\" must be repo[:tag] when mode is clone (no "
		  "registry port or digest)" },
	{ "{\"agent\":{\"image\":\"a@sha256:00ff\"}}",
	  INVALID "spec.agent.image \"a@sha256:00ff\" must be repo[:tag] when mode is clone (no "
		  "registry port or digest)" },
	{ "{\"agent\":{\"image\":\"Ubuntu\"}}",
	  INVALID "spec.agent.image \"Ubuntu\" must be repo[:tag] when mode is clone (no registry "
		  "port or digest)" },
	{ "{\"agent\":{\"image\":\"a:\"}}",
	  INVALID "spec.agent.image \"a:\" must be repo[:tag] when mode is clone (no registry port "
		  "or digest)" },
	{ "{\"agent\":{\"image\":\"a___b\"}}",
	  INVALID "spec.agent.image \"a___b\" must be repo[:tag] when mode is clone (no registry "
		  "port or digest)" },
	/* 7 toolboxes */
	{ "{" AGENT ",\"toolboxes\":[{\"image\":\"x\"}]}",
	  INVALID "spec.toolboxes[0].name is required" },
	{ "{" AGENT ",\"toolboxes\":[{\"name\":\"Tool_1\",\"image\":\"x\"}]}",
	  INVALID "spec.toolboxes[0].name \"Tool_1\" must match RFC 1123 label: " RFC1123_MESSAGE },
	{ "{" AGENT ",\"toolboxes\":[{\"name\":\"a.b\",\"image\":\"x\"}]}", INVALID
	  "spec.toolboxes[0].name \"a.b\" must match RFC 1123 label: must not contain dots" },
	{ "{" AGENT
	  ",\"toolboxes\":[{\"name\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	  "aaaaaa\",\"image\":\"x\"}]}",
	  INVALID
	  "spec.toolboxes[0].name \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	  "aaaaaa\" must match RFC 1123 label: must be no more than 63 characters" },
	{ "{" AGENT ",\"toolboxes\":[{\"name\":\"42\",\"image\":\"x\"}]}",
	  INVALID "spec.toolboxes[0].name \"42\" must not be purely numeric (conflicts with agent "
		  "slot naming)" },
	{ "{" AGENT ",\"toolboxes\":[{\"name\":\"db\",\"image\":\"x\"},{\"name\":\"db\","
	  "\"image\":\"y\"}]}",
	  INVALID "spec.toolboxes[1].name \"db\" duplicates an earlier toolbox" },
	{ "{" AGENT ",\"toolboxes\":[{\"name\":\"db\",\"image\":\"x\",\"mode\":\"fork\"}]}",
	  INVALID "spec.toolboxes[0].mode must be run, clone, or static, got \"fork\"" },
	{ "{" AGENT ",\"toolboxes\":[{\"name\":\"win\",\"mode\":\"static\"}]}",
	  INVALID "spec.toolboxes[0].staticIP is required when mode=static; "
		  "spec.toolboxes[0].staticVMID is required when mode=static" },
	/* static toolboxes skip the VM checks but keep connType */
	{ "{" AGENT
	  ",\"toolboxes\":[{\"name\":\"win\",\"mode\":\"static\",\"staticIP\":\"10.0.0.9\","
	  "\"staticVMID\":\"vm1\",\"os\":\"beos\",\"backend\":\"x\",\"connType\":\"telnet\"}]}",
	  INVALID "spec.toolboxes[0].connType must be ssh, rdp, vnc, or adb, got \"telnet\"" },
	{ "{" AGENT ",\"toolboxes\":[{\"name\":\"db\"}]}",
	  INVALID "spec.toolboxes[0].image is required when mode is run or clone" },
	{ "{" AGENT ",\"toolboxes\":[{\"name\":\"db\",\"image\":\"x\",\"os\":\"beos\"}]}",
	  INVALID "spec.toolboxes[0].os must be linux, windows, or android, got \"beos\"" },
	{ "{" AGENT
	  ",\"toolboxes\":[{\"name\":\"db\",\"image\":\"x\",\"backend\":\"firecracker\"}]}",
	  INVALID "spec.toolboxes[0].backend \"firecracker\" must match spec.agent.backend "
		  "\"cloud-hypervisor\"" },
	{ "{\"agent\":{\"image\":\"a\",\"mode\":\"run\",\"backend\":\"firecracker\"},\"toolboxes\":"
	  "[{\"name\":\"db\",\"image\":\"x\",\"mode\":\"clone\",\"backend\":\"firecracker\"}]}",
	  INVALID "spec.toolboxes[0]: firecracker does not support clone mode, use mode=run "
		  "instead" },
	{ "{" AGENT
	  ",\"toolboxes\":[{\"name\":\"db\",\"image\":\"host:5000/x\",\"mode\":\"clone\"}]}",
	  INVALID
	  "spec.toolboxes[0].image \"host:5000/x\" must be repo[:tag] when mode is clone (no "
	  "registry port or digest)" },
	/* 8, 9 */
	{ "{" AGENT ",\"snapshotPolicy\":\"sometimes\"}",
	  INVALID "spec.snapshotPolicy must be always, main-only, or never, got \"sometimes\"" },
	{ "{" AGENT ",\"hibernatePolicy\":\"drop\"}",
	  INVALID "spec.hibernatePolicy must be retain or release, got \"drop\"" },
	/* every violation, in rule order, joined by "; " */
	{ "{\"agent\":{\"replicas\":-2,\"mode\":\"x\\n\"},\"toolboxes\":[{},{\"name\":\"7\"}],"
	  "\"snapshotPolicy\":\"p\",\"hibernatePolicy\":\"h\"}",
	  INVALID "spec.agent.image is required; spec.agent.replicas must be >= 0, got -2; "
		  "spec.agent.mode must be clone or run, got \"x\\n\"; spec.toolboxes[0].name is "
		  "required; spec.toolboxes[1].name \"7\" must not be purely numeric (conflicts "
		  "with agent slot naming); spec.toolboxes[1].image is required when mode is run "
		  "or clone; spec.snapshotPolicy must be always, main-only, or never, got \"p\"; "
		  "spec.hibernatePolicy must be retain or release, got \"h\"" },
};

static void test_cocoonset_rules(void **state)
{
	for (size_t i = 0; i < ELEMENTSOF(cocoonset_rules); i++)
		expect_cocoonset(cocoonset_rules[i].spec, cocoonset_rules[i].message);
}

static const struct rule_row cocoonset_decode_errors[] = {
	{ "\"x\"", "decode CocoonSet: spec: expected an object, got string" },
	{ "{\"agent\":{\"replicas\":\"3\"}}",
	  "decode CocoonSet: spec.agent.replicas: expected an integer, got string" },
	{ "{\"agent\":{\"replicas\":1.5}}",
	  "decode CocoonSet: spec.agent.replicas: expected an integer, got number" },
	{ "{\"agent\":{\"replicas\":3000000000}}",
	  "decode CocoonSet: spec.agent.replicas: 3000000000 overflows int32" },
	{ "{\"agent\":{\"storage\":\"lots\"}}",
	  "decode CocoonSet: spec.agent.storage: invalid quantity \"lots\"" },
	{ "{\"agent\":{\"forcePull\":\"yes\"}}",
	  "decode CocoonSet: spec.agent.forcePull: expected a boolean, got string" },
	{ "{\"toolboxes\":{}}", "decode CocoonSet: spec.toolboxes: expected an array, got object" },
	{ "{\"toolboxes\":[{\"resources\":{\"limits\":{\"cpu\":\"x\"}}}]}",
	  "decode CocoonSet: spec.toolboxes[0].resources.limits[\"cpu\"]: invalid quantity \"x\"" },
	{ "{\"agent\":{\"envFrom\":[{\"configMapRef\":{\"name\":1}}]}}",
	  "decode CocoonSet: spec.agent.envFrom[0].configMapRef.name: expected a string, got "
	  "number" },
};

static void test_cocoonset_decode_errors(void **state)
{
	struct admission_verdict v;
	struct admission_request req;

	for (size_t i = 0; i < ELEMENTSOF(cocoonset_decode_errors); i++) {
		_cleanup_(freep) char *text = NULL;
		json_t *obj;

		assert_true(asprintf(&text, "{\"spec\":%s}", cocoonset_decode_errors[i].spec) > 0);
		obj = load(text);
		req = request(ADMISSION_CREATE, "CocoonSet", obj, NULL);
		assert_int_equal(validate_cocoonset(&req, &v), 0);
		assert_false(v.allowed);
		assert_int_equal(v.result, ADMISSION_RESULT_ERROR);
		assert_string_equal(v.reason, "decode");
		assert_string_equal(v.message, cocoonset_decode_errors[i].message);
		admission_verdict_done(&v);
		json_decref(obj);
	}
	req = request(ADMISSION_CREATE, "CocoonSet", NULL, NULL);
	assert_int_equal(validate_cocoonset(&req, &v), 0);
	assert_string_equal(v.message, "decode CocoonSet: no object in the request");
	admission_verdict_done(&v);
}

static void test_cocoonset_operations(void **state)
{
	static const enum admission_operation skipped[] = { ADMISSION_DELETE, ADMISSION_CONNECT };
	json_t *bad = load("{\"spec\":{}}");
	struct admission_verdict v;

	for (size_t i = 0; i < ELEMENTSOF(skipped); i++) {
		struct admission_request req = request(skipped[i], "CocoonSet", bad, bad);

		assert_int_equal(validate_cocoonset(&req, &v), 0);
		assert_true(v.allowed);
		assert_int_equal(v.result, ADMISSION_RESULT_SKIPPED);
		assert_string_equal(v.reason, "operation");
		admission_verdict_done(&v);
	}
	json_decref(bad);
}

/* An UPDATE that leaves the spec semantically unchanged passes even when the spec breaks a
 * rule; any change (or an old object we cannot decode) runs the rules. */
static void test_cocoonset_unchanged_update(void **state)
{
	json_t *old = load("{\"metadata\":{\"finalizers\":[]},\"spec\":{\"agent\":{\"storage\":"
			   "\"1Gi\",\"replicas\":0,\"future\":1,\"resources\":{\"limits\":{"
			   "\"cpu\":\"1000m\"}}},\"toolboxes\":[],\"suspend\":false}}");
	json_t *same = load("{\"metadata\":{\"finalizers\":[\"x\"]},\"spec\":{\"agent\":{"
			    "\"storage\":1073741824,\"resources\":{\"limits\":{\"cpu\":1}}},"
			    "\"nodeName\":\"\"}}");
	json_t *changed = load("{\"spec\":{\"agent\":{\"storage\":\"2Gi\"}}}");
	json_t *undecodable = load("{\"spec\":{\"agent\":{\"replicas\":\"x\"}}}");
	struct admission_request req = request(ADMISSION_UPDATE, "CocoonSet", same, old);
	struct admission_verdict v;

	assert_int_equal(validate_cocoonset(&req, &v), 0);
	assert_true(v.allowed);
	assert_int_equal(v.result, ADMISSION_RESULT_SKIPPED);
	assert_string_equal(v.reason, "no_change");
	admission_verdict_done(&v);

	req = request(ADMISSION_UPDATE, "CocoonSet", changed, old);
	assert_int_equal(validate_cocoonset(&req, &v), 0);
	assert_false(v.allowed);
	assert_string_equal(v.message, INVALID "spec.agent.image is required");
	admission_verdict_done(&v);

	req = request(ADMISSION_UPDATE, "CocoonSet", same, undecodable);
	assert_int_equal(validate_cocoonset(&req, &v), 0);
	assert_false(v.allowed);
	admission_verdict_done(&v);

	/* a CREATE never takes the shortcut */
	req = request(ADMISSION_CREATE, "CocoonSet", same, old);
	assert_int_equal(validate_cocoonset(&req, &v), 0);
	assert_false(v.allowed);
	admission_verdict_done(&v);

	json_decref(old);
	json_decref(same);
	json_decref(changed);
	json_decref(undecodable);
}

static void expect_hibernation(enum admission_operation op, const char *object,
			       const struct validate_hibernation_list *existing, bool allowed,
			       enum admission_result result, const char *reason,
			       const char *message)
{
	json_t *obj = object ? load(object) : NULL;
	struct admission_request req = request(op, "CocoonHibernation", obj, NULL);
	struct admission_verdict v;

	assert_int_equal(validate_cocoonhibernation(&req, existing, &v), 0);
	assert_int_equal(v.allowed, allowed);
	assert_int_equal(v.result, result);
	assert_string_equal(v.reason, reason);
	if (message)
		assert_string_equal(v.message, message);
	else
		assert_null(v.message);
	admission_verdict_done(&v);
	json_decref(obj);
}

#define HIB(name, pod)                                                                             \
	"{\"metadata\":{\"name\":\"" name "\"},\"spec\":{\"podRef\":{\"name\":\"" pod "\"},"       \
	"\"desire\":\"Hibernate\"}}"

static void test_hibernation_rules(void **state)
{
	json_t *items = load("[{\"metadata\":{\"name\":\"other\"},\"spec\":{\"podRef\":{\"name\":"
			     "\"other\"}}},{\"metadata\":{\"name\":\"weird\"},\"spec\":{\"podRef\":"
			     "{\"name\":5}}},{\"metadata\":{\"name\":\"old\"},\"spec\":{\"podRef\":"
			     "{\"name\":\"agent-0\"}}}]");
	json_t *terminating = load("{\"kind\":\"CocoonHibernationList\",\"items\":[{\"metadata\":{"
				   "\"name\":\"old\",\"deletionTimestamp\":\"2026-01-01T00:00:00Z\""
				   "},\"spec\":{\"podRef\":{\"name\":\"agent-0\"}}}]}");
	json_t *unrelated =
	    load("{\"items\":[{\"metadata\":{\"name\":\"other\"},\"spec\":{\"podRef\""
		 ":{\"name\":\"other\"}}}]}");
	struct validate_hibernation_list live = { .items = items };
	struct validate_hibernation_list gone = { .items = terminating };
	struct validate_hibernation_list none = { .items = unrelated };
	struct validate_hibernation_list failed = { .error = "connection refused" };

	expect_hibernation(ADMISSION_UPDATE, HIB("x", "y"), NULL, true, ADMISSION_RESULT_SKIPPED,
			   "operation", NULL);
	expect_hibernation(ADMISSION_DELETE, NULL, NULL, true, ADMISSION_RESULT_SKIPPED,
			   "operation", NULL);
	expect_hibernation(ADMISSION_CREATE, NULL, NULL, false, ADMISSION_RESULT_ERROR, "decode",
			   "decode CocoonHibernation: no object in the request");
	expect_hibernation(ADMISSION_CREATE, "{\"spec\":{\"podRef\":{\"name\":5}}}", NULL, false,
			   ADMISSION_RESULT_ERROR, "decode",
			   "decode CocoonHibernation: spec.podRef.name: expected a string, got "
			   "number");
	expect_hibernation(ADMISSION_CREATE, "{\"spec\":{\"podRef\":\"p\"}}", NULL, false,
			   ADMISSION_RESULT_ERROR, "decode",
			   "decode CocoonHibernation: spec.podRef: expected an object, got string");
	expect_hibernation(ADMISSION_CREATE, HIB("hib-1", "agent-0"), NULL, false,
			   ADMISSION_RESULT_DENY, "",
			   "cocoon-webhook: metadata.name \"hib-1\" must equal spec.podRef.name "
			   "\"agent-0\" (one CocoonHibernation per pod, named after it)");
	/* generateName: no name at admission */
	expect_hibernation(ADMISSION_CREATE,
			   "{\"metadata\":{\"generateName\":\"h-\"},\"spec\":{\"podRef\":{"
			   "\"name\":\"agent-0\"}}}",
			   NULL, false, ADMISSION_RESULT_DENY, "",
			   "cocoon-webhook: metadata.name \"\" must equal spec.podRef.name "
			   "\"agent-0\" (one CocoonHibernation per pod, named after it)");
	expect_hibernation(ADMISSION_CREATE, HIB("agent-0", "agent-0"), &failed, false,
			   ADMISSION_RESULT_ERROR, "list",
			   "cocoon-webhook: cannot verify podRef uniqueness: connection refused");
	expect_hibernation(ADMISSION_CREATE, HIB("agent-0", "agent-0"), &live, false,
			   ADMISSION_RESULT_DENY, "",
			   "cocoon-webhook: pod \"agent-0\" already has a live CocoonHibernation "
			   "\"old\"; flip its spec.desire instead of creating a second CR");
	expect_hibernation(ADMISSION_CREATE, HIB("agent-0", "agent-0"), &gone, false,
			   ADMISSION_RESULT_DENY, "",
			   "cocoon-webhook: pod \"agent-0\"'s CocoonHibernation \"old\" is still "
			   "terminating; retry after its cleanup finishes");
	expect_hibernation(ADMISSION_CREATE, HIB("agent-0", "agent-0"), &none, true,
			   ADMISSION_RESULT_ALLOW, "", NULL);
	json_decref(items);
	json_decref(terminating);
	json_decref(unrelated);
}

/* The LIST is only needed once the name rule passed; without it the call asks for it. */
static void test_hibernation_needs_list(void **state)
{
	json_t *obj = load(HIB("agent-0", "agent-0"));
	struct admission_request req = request(ADMISSION_CREATE, "CocoonHibernation", obj, NULL);
	struct admission_verdict v = { .reason = "untouched" };

	assert_int_equal(validate_cocoonhibernation(&req, NULL, &v), ADMISSION_NEED_FETCH);
	assert_string_equal(v.reason, "untouched");
	json_decref(obj);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cocoonset_rules),
		cmocka_unit_test(test_cocoonset_decode_errors),
		cmocka_unit_test(test_cocoonset_operations),
		cmocka_unit_test(test_cocoonset_unchanged_update),
		cmocka_unit_test(test_hibernation_rules),
		cmocka_unit_test(test_hibernation_needs_list),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
