/* /validate, the scale-down guard (operator-webhook.md §3.4): direct workload updates gated on
 * the old object's tolerations, the scale subresource gated on the parent (fail closed), the
 * exact deny message, and every skip with its metric reason. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "test-json.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../../webhookd/webhookd.h"

#define TOLERATES                                                                                  \
	"\"template\":{\"spec\":{\"tolerations\":[{\"key\":\"virtual-kubelet.io/provider\","       \
	"\"operator\":\"Exists\"}]}}"
#define PLAIN "\"template\":{\"spec\":{\"tolerations\":[{\"key\":\"gpu\"}]}}"


struct row {
	const char *what;
	enum admission_operation op;
	const char *kind;
	const char *resource;
	const char *sub_resource;
	const char *old_object;
	const char *object;
	bool allowed;
	enum admission_result result;
	const char *reason;
	const char *message;
};

static const struct row rows[] = {
	{ "create is not a scale-down", ADMISSION_CREATE, "Deployment", "deployments", "", NULL,
	  "{\"spec\":{\"replicas\":1," TOLERATES "}}", true, ADMISSION_RESULT_SKIPPED,
	  "operation" },
	{ "cocoon deployment scaled down", ADMISSION_UPDATE, "Deployment", "deployments", "",
	  "{\"spec\":{\"replicas\":3," TOLERATES "}}", "{\"spec\":{\"replicas\":2," TOLERATES "}}",
	  false, ADMISSION_RESULT_DENY, "",
	  "cocoon-webhook: scale-down blocked for cocoon Deployment team-a/web (3 -> 2). Use a "
	  "CocoonHibernation CR to suspend individual agents." },
	{ "cocoon deployment scaled up", ADMISSION_UPDATE, "Deployment", "deployments", "",
	  "{\"spec\":{\"replicas\":2," TOLERATES "}}", "{\"spec\":{\"replicas\":3," TOLERATES "}}",
	  true, ADMISSION_RESULT_ALLOW, "" },
	{ "unchanged replicas", ADMISSION_UPDATE, "StatefulSet", "statefulsets", "",
	  "{\"spec\":{\"replicas\":2," TOLERATES "}}", "{\"spec\":{\"replicas\":2," TOLERATES "}}",
	  true, ADMISSION_RESULT_ALLOW, "" },
	{ "nil replicas count as 1", ADMISSION_UPDATE, "StatefulSet", "statefulsets", "",
	  "{\"spec\":{" TOLERATES "}}", "{\"spec\":{\"replicas\":0," TOLERATES "}}", false,
	  ADMISSION_RESULT_DENY, "",
	  "cocoon-webhook: scale-down blocked for cocoon StatefulSet team-a/web (1 -> 0). Use a "
	  "CocoonHibernation CR to suspend individual agents." },
	{ "dropping the toleration while scaling down is still blocked", ADMISSION_UPDATE,
	  "Deployment", "deployments", "", "{\"spec\":{\"replicas\":3," TOLERATES "}}",
	  "{\"spec\":{\"replicas\":1," PLAIN "}}", false, ADMISSION_RESULT_DENY, "",
	  "cocoon-webhook: scale-down blocked for cocoon Deployment team-a/web (3 -> 1). Use a "
	  "CocoonHibernation CR to suspend individual agents." },
	{ "the old object decides: it was not a cocoon workload", ADMISSION_UPDATE, "Deployment",
	  "deployments", "", "{\"spec\":{\"replicas\":3," PLAIN "}}",
	  "{\"spec\":{\"replicas\":1," TOLERATES "}}", true, ADMISSION_RESULT_SKIPPED,
	  "not_cocoon" },
	{ "other kinds", ADMISSION_UPDATE, "ReplicaSet", "replicasets", "",
	  "{\"spec\":{\"replicas\":3," TOLERATES "}}", "{\"spec\":{\"replicas\":1," TOLERATES "}}",
	  true, ADMISSION_RESULT_SKIPPED, "kind" },
	{ "replicas that do not decode", ADMISSION_UPDATE, "Deployment", "deployments", "",
	  "{\"spec\":{\"replicas\":\"3\"," TOLERATES "}}",
	  "{\"spec\":{\"replicas\":1," TOLERATES "}}", true, ADMISSION_RESULT_SKIPPED, "decode" },
	{ "tolerations that do not decode", ADMISSION_UPDATE, "Deployment", "deployments", "",
	  "{\"spec\":{\"replicas\":3," TOLERATES "}}",
	  "{\"spec\":{\"replicas\":1,\"template\":{\"spec\":{\"tolerations\":{}}}}}", true,
	  ADMISSION_RESULT_SKIPPED, "decode" },
	{ "no old object", ADMISSION_UPDATE, "Deployment", "deployments", "", NULL,
	  "{\"spec\":{\"replicas\":1," TOLERATES "}}", true, ADMISSION_RESULT_SKIPPED, "decode" },
	{ "a Scale that does not decode", ADMISSION_UPDATE, "Scale", "deployments", "scale",
	  "{\"spec\":{\"replicas\":3.5}}", "{\"spec\":{\"replicas\":1}}", true,
	  ADMISSION_RESULT_SKIPPED, "decode" },
	{ "the scale subresource of another resource", ADMISSION_UPDATE, "Scale", "replicasets",
	  "scale", "{\"spec\":{\"replicas\":3}}", "{\"spec\":{\"replicas\":1}}", true,
	  ADMISSION_RESULT_SKIPPED, "no_parent" },
};

static struct admission_request request(const struct row *t, json_t *old, json_t *obj)
{
	return (struct admission_request){ .uid = "u",
					   .kind = t->kind,
					   .resource = t->resource,
					   .sub_resource = t->sub_resource,
					   .operation = t->op,
					   .ns = "team-a",
					   .name = "web",
					   .username = "",
					   .object = obj,
					   .old_object = old };
}

static void test_rows(void **state)
{
	for (size_t i = 0; i < ELEMENTSOF(rows); i++) {
		const struct row *t = &rows[i];
		json_t *old = load(t->old_object), *obj = load(t->object);
		struct admission_request req = request(t, old, obj);
		struct admission_verdict v;

		print_message("%s\n", t->what);
		assert_int_equal(workload_validate(&req, NULL, &v), 0);
		assert_int_equal(v.allowed, t->allowed);
		assert_int_equal(v.result, t->result);
		assert_string_equal(v.reason, t->reason);
		if (t->message)
			assert_string_equal(v.message, t->message);
		else
			assert_null(v.message);
		admission_verdict_done(&v);
		json_decref(old);
		json_decref(obj);
	}
}

/* The scale subresource: the Scale objects give the replicas, the parent the gate. */
static void expect_scale(const char *new_scale, const struct workload_parent *parent, bool allowed,
			 enum admission_result result, const char *reason, const char *message)
{
	static const struct row t = { .op = ADMISSION_UPDATE,
				      .kind = "Scale",
				      .resource = "deployments",
				      .sub_resource = "scale" };
	json_t *old = load("{\"apiVersion\":\"autoscaling/v1\",\"kind\":\"Scale\",\"spec\":{"
			   "\"replicas\":3}}");
	json_t *obj = load(new_scale);
	struct admission_request req = request(&t, old, obj);
	struct admission_verdict v;

	assert_int_equal(workload_validate(&req, parent, &v), 0);
	assert_int_equal(v.allowed, allowed);
	assert_int_equal(v.result, result);
	assert_string_equal(v.reason, reason);
	if (message)
		assert_string_equal(v.message, message);
	else
		assert_null(v.message);
	admission_verdict_done(&v);
	json_decref(old);
	json_decref(obj);
}

static void test_scale_subresource(void **state)
{
	json_t *cocoon = load("{\"kind\":\"Deployment\",\"spec\":{\"replicas\":3," TOLERATES "}}");
	json_t *plain = load("{\"kind\":\"Deployment\",\"spec\":{\"replicas\":3," PLAIN "}}");
	json_t *broken = load("{\"kind\":\"Deployment\",\"spec\":{\"template\":[]}}");
	const struct workload_parent found = { WORKLOAD_PARENT_FOUND, cocoon, NULL };
	const struct workload_parent not_cocoon = { WORKLOAD_PARENT_FOUND, plain, NULL };
	const struct workload_parent unreadable = { WORKLOAD_PARENT_FOUND, broken, NULL };
	const struct workload_parent missing = { WORKLOAD_PARENT_NOT_FOUND, NULL, NULL };
	const struct workload_parent failed = {
		WORKLOAD_PARENT_ERROR, NULL,
		"deployments.apps \"web\" is forbidden: User cannot get resource"
	};

	expect_scale("{\"spec\":{\"replicas\":1}}", &found, false, ADMISSION_RESULT_DENY, "",
		     "cocoon-webhook: scale-down blocked for cocoon Scale team-a/web (3 -> 1). Use "
		     "a CocoonHibernation CR to suspend individual agents.");
	/* autoscaling/v1 omits replicas when 0 */
	expect_scale("{\"spec\":{}}", &found, false, ADMISSION_RESULT_DENY, "",
		     "cocoon-webhook: scale-down blocked for cocoon Scale team-a/web (3 -> 0). Use "
		     "a CocoonHibernation CR to suspend individual agents.");
	expect_scale("{\"spec\":{\"replicas\":5}}", &found, true, ADMISSION_RESULT_ALLOW, "", NULL);
	expect_scale("{\"spec\":{\"replicas\":1}}", &not_cocoon, true, ADMISSION_RESULT_SKIPPED,
		     "not_cocoon", NULL);
	expect_scale("{\"spec\":{\"replicas\":1}}", &missing, true, ADMISSION_RESULT_SKIPPED,
		     "no_parent", NULL);
	expect_scale("{\"spec\":{\"replicas\":1}}", &failed, false, ADMISSION_RESULT_ERROR,
		     "parent_fetch",
		     "cocoon-webhook: cannot verify parent workload: deployments.apps \"web\" is "
		     "forbidden: User cannot get resource");
	expect_scale("{\"spec\":{\"replicas\":1}}", &unreadable, false, ADMISSION_RESULT_ERROR,
		     "parent_fetch",
		     "cocoon-webhook: cannot verify parent workload: deployments team-a/web has no "
		     "decodable spec.template.spec.tolerations");
	json_decref(cocoon);
	json_decref(plain);
	json_decref(broken);
}

static void test_scale_needs_parent(void **state)
{
	static const struct row t = { .op = ADMISSION_UPDATE,
				      .kind = "Scale",
				      .resource = "statefulsets",
				      .sub_resource = "scale" };
	json_t *old = load("{\"spec\":{\"replicas\":3}}"),
	       *obj = load("{\"spec\":{\"replicas\":1}}");
	struct admission_request req = request(&t, old, obj);
	struct admission_verdict v = { .reason = "untouched" };

	assert_int_equal(workload_validate(&req, NULL, &v), ADMISSION_NEED_FETCH);
	assert_string_equal(v.reason, "untouched");
	json_decref(old);
	json_decref(obj);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rows),
		cmocka_unit_test(test_scale_subresource),
		cmocka_unit_test(test_scale_needs_parent),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
