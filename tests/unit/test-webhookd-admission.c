/* webhookd's AdmissionReview codec: what a request decodes to, the exact 400 texts for every
 * kind of bad body, the response envelopes byte for byte, and Go-%q quoting. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../../webhookd/webhookd.h"

#define REVIEW_HEAD "{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\","
#define GOOD_REQUEST                                                                               \
	"\"uid\":\"u1\",\"kind\":{\"group\":\"\",\"version\":\"v1\",\"kind\":\"Pod\"},"            \
	"\"resource\":{\"group\":\"\",\"version\":\"v1\",\"resource\":\"pods\"},"                  \
	"\"operation\":\"CREATE\""

static void test_parse_full_request(void **state)
{
	static const char body[] = REVIEW_HEAD
	    "\"request\":{\"uid\":\"705ab4f5-6393-11e8-b7cc-42010a800002\","
	    "\"kind\":{\"group\":\"autoscaling\",\"version\":\"v1\",\"kind\":\"Scale\"},"
	    "\"resource\":{\"group\":\"apps\",\"version\":\"v1\",\"resource\":"
	    "\"deployments\"},\"subResource\":\"scale\","
	    "\"requestKind\":{\"group\":\"autoscaling\",\"version\":\"v1\",\"kind\":"
	    "\"Scale\"},\"requestSubResource\":\"scale\",\"name\":\"web\","
	    "\"namespace\":\"team-a\",\"operation\":\"UPDATE\",\"userInfo\":{"
	    "\"username\":\"admin\",\"uid\":\"1\",\"groups\":[\"system:masters\"],"
	    "\"extra\":{\"scopes\":[\"a\",\"b\"]}},\"object\":{\"spec\":{\"replicas\":1}},"
	    "\"oldObject\":{\"spec\":{\"replicas\":3}},\"dryRun\":true,\"options\":{"
	    "\"kind\":\"UpdateOptions\"},\"futureField\":[1,2]}}";
	_cleanup_(admission_request_freep) struct admission_request *req = NULL;
	char *error = NULL;

	assert_int_equal(admission_request_parse(body, strlen(body), &req, &error), 0);
	assert_null(error);
	assert_string_equal(req->uid, "705ab4f5-6393-11e8-b7cc-42010a800002");
	assert_string_equal(req->kind, "Scale");
	assert_string_equal(req->resource, "deployments");
	assert_string_equal(req->sub_resource, "scale");
	assert_int_equal(req->operation, ADMISSION_UPDATE);
	assert_string_equal(admission_operation_to_string(req->operation), "UPDATE");
	assert_string_equal(req->ns, "team-a");
	assert_string_equal(req->name, "web");
	assert_string_equal(req->username, "admin");
	assert_int_equal(
	    json_integer_value(json_object_get(json_object_get(req->object, "spec"), "replicas")),
	    1);
	assert_int_equal(json_integer_value(
			     json_object_get(json_object_get(req->old_object, "spec"), "replicas")),
			 3);
	assert_true(req->dry_run);
}

/* A CREATE with generateName: no name, no oldObject; absent strings read as "". */
static void test_parse_minimal_request(void **state)
{
	static const char body[] = REVIEW_HEAD "\"request\":{" GOOD_REQUEST ",\"object\":{"
					       "\"metadata\":{\"generateName\":\"web-\"}},"
					       "\"oldObject\":null,\"name\":null}}";
	_cleanup_(admission_request_freep) struct admission_request *req = NULL;

	assert_int_equal(admission_request_parse(body, strlen(body), &req, NULL), 0);
	assert_string_equal(req->name, "");
	assert_string_equal(req->ns, "");
	assert_string_equal(req->sub_resource, "");
	assert_string_equal(req->username, "");
	assert_non_null(req->object);
	assert_null(req->old_object);
	assert_false(req->dry_run);
	assert_int_equal(req->operation, ADMISSION_CREATE);
}

struct bad_body {
	const char *body;
	const char *message; /* exact, or a prefix when prefix is set */
	bool prefix;
};

static const struct bad_body bad_bodies[] = {
	{ "", "decode admission review: line 1 column 0: ", true },
	{ "not json", "decode admission review: line 1 column ", true },
	{ "[]", "decode admission review: expected a JSON object, got an array" },
	{ REVIEW_HEAD "\"request\":{" GOOD_REQUEST "}} trailing",
	  "decode admission review: line 1 column ", true },
	{ "{\"kind\":\"AdmissionReview\",\"request\":{}}",
	  "decode admission review: AdmissionReview.apiVersion: missing" },
	{ "{\"apiVersion\":\"admission.k8s.io/v1beta1\",\"kind\":\"AdmissionReview\"}",
	  "decode admission review: got apiVersion \"admission.k8s.io/v1beta1\" kind "
	  "\"AdmissionReview\", expected admission.k8s.io/v1 AdmissionReview "
	  "(admissionReviewVersions must be [v1])" },
	{ REVIEW_HEAD "\"kind\":\"AdmissionReview\"}", "decode admission review: line 1 column",
	  true },
	{ REVIEW_HEAD "\"response\":{}}",
	  "admission review missing request: the AdmissionReview has no \"request\"" },
	{ REVIEW_HEAD "\"request\":null}",
	  "admission review missing request: \"request\" is null" },
	{ REVIEW_HEAD "\"request\":5}",
	  "decode admission review: request: expected an object, got a number" },
	{ REVIEW_HEAD "\"request\":{\"kind\":{\"kind\":\"Pod\"}}}",
	  "decode admission review: request.uid: missing" },
	{ REVIEW_HEAD "\"request\":{\"uid\":7}}",
	  "decode admission review: request.uid: expected a string, got a number" },
	{ REVIEW_HEAD "\"request\":{\"uid\":\"u\"}}",
	  "decode admission review: request.kind: missing" },
	{ REVIEW_HEAD "\"request\":{\"uid\":\"u\",\"kind\":[]}}",
	  "decode admission review: request.kind: expected an object, got an array" },
	{ REVIEW_HEAD "\"request\":{\"uid\":\"u\",\"kind\":{\"kind\":1}}}",
	  "decode admission review: request.kind.kind: expected a string, got a number" },
	{ REVIEW_HEAD "\"request\":{\"uid\":\"u\",\"kind\":{\"kind\":\"Pod\",\"group\":true}}}",
	  "decode admission review: request.kind.group: expected a string, got a boolean" },
	{ REVIEW_HEAD "\"request\":{\"uid\":\"u\",\"kind\":{\"kind\":\"Pod\"},\"resource\":{}}}",
	  "decode admission review: request.resource.resource: missing" },
	{ REVIEW_HEAD "\"request\":{" GOOD_REQUEST ",\"subResource\":[]}}",
	  "decode admission review: request.subResource: expected a string, got an array" },
	{ REVIEW_HEAD "\"request\":{" GOOD_REQUEST ",\"namespace\":{}}}",
	  "decode admission review: request.namespace: expected a string, got an object" },
	{ REVIEW_HEAD "\"request\":{\"uid\":\"u\",\"kind\":{\"kind\":\"Pod\"},\"resource\":{"
		      "\"resource\":\"pods\"},\"operation\":\"PATCH\"}}",
	  "decode admission review: request.operation: \"PATCH\" is not CREATE, UPDATE, DELETE or "
	  "CONNECT" },
	{ REVIEW_HEAD "\"request\":{\"uid\":\"u\",\"kind\":{\"kind\":\"Pod\"},\"resource\":{"
		      "\"resource\":\"pods\"}}}",
	  "decode admission review: request.operation: missing" },
	{ REVIEW_HEAD "\"request\":{" GOOD_REQUEST ",\"userInfo\":\"me\"}}",
	  "decode admission review: request.userInfo: expected an object, got a string" },
	{ REVIEW_HEAD "\"request\":{" GOOD_REQUEST ",\"userInfo\":{\"username\":1}}}",
	  "decode admission review: request.userInfo.username: expected a string, got a number" },
	{ REVIEW_HEAD "\"request\":{" GOOD_REQUEST ",\"userInfo\":{\"groups\":[\"a\",2]}}}",
	  "decode admission review: request.userInfo.groups[1]: expected a string, got a number" },
	{ REVIEW_HEAD "\"request\":{" GOOD_REQUEST ",\"userInfo\":{\"extra\":{\"k\":\"v\"}}}}",
	  "decode admission review: request.userInfo.extra[\"k\"]: expected an array, got a "
	  "string" },
	{ REVIEW_HEAD "\"request\":{" GOOD_REQUEST ",\"object\":[]}}",
	  "decode admission review: request.object: expected an object, got an array" },
	{ REVIEW_HEAD "\"request\":{" GOOD_REQUEST ",\"oldObject\":\"x\"}}",
	  "decode admission review: request.oldObject: expected an object, got a string" },
	{ REVIEW_HEAD "\"request\":{" GOOD_REQUEST ",\"dryRun\":\"yes\"}}",
	  "decode admission review: request.dryRun: expected a boolean, got a string" },
	{ REVIEW_HEAD "\"request\":{" GOOD_REQUEST ",\"options\":1}}",
	  "decode admission review: request.options: expected an object, got a number" },
};

static void test_parse_errors(void **state)
{
	for (size_t i = 0; i < ELEMENTSOF(bad_bodies); i++) {
		const struct bad_body *t = &bad_bodies[i];
		struct admission_request *req = NULL;
		char *error = NULL;

		print_message("body: %s\n", t->body);
		assert_int_equal(admission_request_parse(t->body, strlen(t->body), &req, &error),
				 -EBADMSG);
		assert_null(req);
		assert_non_null(error);
		if (t->prefix)
			assert_memory_equal(error, t->message, strlen(t->message));
		else
			assert_string_equal(error, t->message);
		free(error);
	}
}

static void test_parse_duplicate_key(void **state)
{
	static const char body[] = REVIEW_HEAD "\"request\":{" GOOD_REQUEST ",\"uid\":\"u2\"}}";
	struct admission_request *req = NULL;
	char *error = NULL;

	assert_int_equal(admission_request_parse(body, strlen(body), &req, &error), -EBADMSG);
	assert_non_null(strstr(error, "duplicate"));
	assert_memory_equal(error, "decode admission review: ", 25);
	free(error);
}

/* What an apiserver sends: every envelope member, including the ones only type-checked. */
#define APISERVER_REQUEST                                                                          \
	"\"uid\":\"705ab4f5\",\"kind\":{\"group\":\"apps\",\"version\":\"v1\",\"kind\":"           \
	"\"Deployment\"},\"resource\":{\"group\":\"apps\",\"version\":\"v1\",\"resource\":"        \
	"\"deployments\"},\"requestKind\":{\"group\":\"apps\",\"version\":\"v1\",\"kind\":"        \
	"\"Deployment\"},\"requestResource\":{\"group\":\"apps\",\"version\":\"v1\","              \
	"\"resource\":\"deployments\"},\"requestSubResource\":\"\",\"name\":\"web\","              \
	"\"namespace\":\"team-a\",\"operation\":\"UPDATE\",\"userInfo\":{\"username\":"            \
	"\"system:serviceaccount:kube-system:deployment-controller\",\"uid\":\"6b1\","             \
	"\"groups\":[\"system:serviceaccounts\",\"system:authenticated\"],\"extra\":{"             \
	"\"authentication.kubernetes.io/pod-name\":[\"p\"],\"none\":null}},"                       \
	"\"object\":{\"metadata\":{\"name\":\"web\",\"labels\":{\"a\":\"\\u00e9\"}},"              \
	"\"spec\":{\"replicas\":3,\"ratio\":0.5}},\"oldObject\":{\"spec\":{\"replicas\":1}},"      \
	"\"dryRun\":false,\"options\":{\"kind\":\"UpdateOptions\",\"apiVersion\":"                 \
	"\"meta.k8s.io/v1\",\"fieldManager\":\"kube-controller-manager\"}"

/* Bodies the envelope is read in place for (no json_t for it: review stays NULL), and bodies
 * that take the slow way (fast: false); either way the request is what the strict decoder
 * makes of the whole body. */
static const struct {
	const char *body;
	bool fast;
} equal_bodies[] = {
	{ REVIEW_HEAD "\"request\":{" APISERVER_REQUEST "}}", true },
	{ REVIEW_HEAD "\"request\":{" GOOD_REQUEST "}}", true },
	{ " {\"request\":{" GOOD_REQUEST ",\"object\":null,\"name\":null,\"userInfo\":null,"
	  "\"dryRun\":true,\"future\":{\"a\":[1,{\"b\":null}]}},\"kind\":\"AdmissionReview\","
	  "\"apiVersion\":\"admission.k8s.io/v1\",\"x\":1} ",
	  true },
	{ REVIEW_HEAD "\"request\":{\"\\u0075id\":\"esc\\\"aped\",\"kind\":{\"kind\":\"Pod\"},"
		      "\"resource\":{\"resource\":\"pods\"},\"operation\":\"DELETE\"}}",
	  true },
	/* An escaped unknown key could repeat another spelled differently: jansson judges. */
	{ REVIEW_HEAD "\"request\":{" GOOD_REQUEST ",\"\\u0078\":1}}", false },
	/* A number the fast reader leaves to jansson's range checks. */
	{ REVIEW_HEAD "\"request\":{" GOOD_REQUEST ",\"object\":{\"n\":1234567890123456789}}}",
	  false },
};

static void assert_same_request(const struct admission_request *a,
				const struct admission_request *b)
{
	assert_string_equal(a->uid, b->uid);
	assert_string_equal(a->kind, b->kind);
	assert_string_equal(a->resource, b->resource);
	assert_string_equal(a->sub_resource, b->sub_resource);
	assert_int_equal(a->operation, b->operation);
	assert_string_equal(a->ns, b->ns);
	assert_string_equal(a->name, b->name);
	assert_string_equal(a->username, b->username);
	assert_int_equal(a->dry_run, b->dry_run);
	assert_true(a->object ? json_equal(a->object, b->object) : !b->object);
	assert_true(a->old_object ? json_equal(a->old_object, b->old_object) : !b->old_object);
}

static void test_parse_fast_path(void **state)
{
	for (size_t i = 0; i < ELEMENTSOF(equal_bodies); i++) {
		const char *body = equal_bodies[i].body;
		struct admission_request *fast = NULL, *slow = NULL;
		json_t *review = json_loads(body, JSON_REJECT_DUPLICATES, NULL);

		print_message("body: %s\n", body);
		assert_non_null(review);
		assert_int_equal(admission_request_parse(body, strlen(body), &fast, NULL), 0);
		assert_int_equal(admission_request_decode(review, &slow, NULL), 0);
		json_decref(review);
		assert_same_request(fast, slow);
		assert_int_equal(fast->review == NULL, equal_bodies[i].fast);
		admission_request_free(fast);
		admission_request_free(slow);
	}
}

static void test_parse_fast_path_values(void **state)
{
	static const char body[] = REVIEW_HEAD "\"request\":{" APISERVER_REQUEST "}}";
	_cleanup_(admission_request_freep) struct admission_request *req = NULL;

	assert_int_equal(admission_request_parse(body, strlen(body), &req, NULL), 0);
	assert_null(req->review);
	assert_string_equal(req->uid, "705ab4f5");
	assert_string_equal(req->kind, "Deployment");
	assert_string_equal(req->resource, "deployments");
	assert_string_equal(req->sub_resource, "");
	assert_int_equal(req->operation, ADMISSION_UPDATE);
	assert_string_equal(req->ns, "team-a");
	assert_string_equal(req->name, "web");
	assert_string_equal(req->username,
			    "system:serviceaccount:kube-system:deployment-controller");
	assert_false(req->dry_run);
	assert_string_equal(
	    json_string_value(json_object_get(
		json_object_get(json_object_get(req->object, "metadata"), "labels"), "a")),
	    "\xc3\xa9");
	assert_int_equal(json_integer_value(
			     json_object_get(json_object_get(req->old_object, "spec"), "replicas")),
			 1);
}

static void test_parse_body_limit(void **state)
{
	size_t n = ADMISSION_BODY_MAX + 1;
	char *body = malloc(n);
	struct admission_request *req = NULL;
	char *error = NULL;

	assert_non_null(body);
	memset(body, ' ', n);
	assert_int_equal(admission_request_parse(body, n, &req, &error), -EBADMSG);
	assert_string_equal(error, "decode admission review: body of 10485761 bytes exceeds the "
				   "10485760 byte limit");
	free(error);
	free(body);
}

static void test_response_allow(void **state)
{
	struct buf b = BUF_INIT(0);

	assert_int_equal(admission_response_allow("u1", &b), 0);
	assert_string_equal(b.data,
			    "{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\","
			    "\"response\":{\"uid\":\"u1\",\"allowed\":true}}");
	/* Appended: the caller's bytes stay. */
	assert_int_equal(admission_response_allow("u1", &b), 0);
	assert_int_equal(b.len, 2 * strlen("{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":"
					   "\"AdmissionReview\",\"response\":{\"uid\":\"u1\","
					   "\"allowed\":true}}"));
	buf_reset(&b);
	assert_int_equal(admission_response_allow(NULL, &b), -EINVAL);
	assert_int_equal(b.len, 0);
	buf_free(&b);
}

static void test_response_deny(void **state)
{
	struct buf b = BUF_INIT(0);

	assert_int_equal(admission_response_deny("u2", "no \"way\"", &b), 0);
	assert_string_equal(b.data,
			    "{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\","
			    "\"response\":{\"uid\":\"u2\",\"allowed\":false,\"status\":{"
			    "\"message\":\"no \\\"way\\\"\",\"reason\":\"Forbidden\"}}}");
	buf_reset(&b);
	/* Not UTF-8: refused, and nothing half-written is left behind. */
	assert_int_equal(admission_response_deny("u2", "\xff", &b), -EINVAL);
	assert_int_equal(admission_response_deny("\xc0\x80", "m", &b), -EINVAL);
	assert_int_equal(b.len, 0);
	buf_free(&b);
}

/* The envelope text is what jansson's encoder made of the json_t envelope it replaced:
 * same escapes (uppercase \u00XX for controls, '/' and non-ASCII as is). */
static void test_response_escaping(void **state)
{
	static const char *const messages[] = {
		"plain",
		"quote \" backslash \\ slash /",
		"\b\f\n\r\t",
		"\x01\x1f\x7f",
		"caf\xc3\xa9 \xe2\x80\xa8 \xf0\x9f\x98\x80",
		"",
	};

	for (size_t i = 0; i < ELEMENTSOF(messages); i++) {
		json_t *want = json_pack("{s:s, s:s, s:{s:s, s:b, s:{s:s, s:s}}}", "apiVersion",
					 "admission.k8s.io/v1", "kind", "AdmissionReview",
					 "response", "uid", messages[i], "allowed", 0, "status",
					 "message", messages[i], "reason", "Forbidden");
		char *text = json_dumps(want, JSON_COMPACT);
		struct buf b = BUF_INIT(0);

		assert_int_equal(admission_response_deny(messages[i], messages[i], &b), 0);
		assert_string_equal(b.data, text);
		buf_free(&b);
		free(text);
		json_decref(want);
	}
}

static void test_response_patch(void **state)
{
	json_t *patch = json_loads("[{\"op\":\"add\",\"path\":\"/metadata/annotations/"
				   "vm.cocoonstack.io~1name\",\"value\":\"vk-ns-web-0\"}]",
				   0, NULL);
	json_t *obj = json_object();
	struct buf b = BUF_INIT(0);

	assert_int_equal(admission_response_patch("u3", patch, &b), 0);
	assert_string_equal(
	    b.data,
	    "{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\","
	    "\"response\":{\"uid\":\"u3\",\"allowed\":true,\"patchType\":\"JSONPatch\","
	    "\"patch\":\"W3sib3AiOiJhZGQiLCJwYXRoIjoiL21ldGFkYXRhL2Fubm90YXRpb25zL3ZtLmNvY29"
	    "vbnN0YWNrLmlvfjFuYW1lIiwidmFsdWUiOiJ2ay1ucy13ZWItMCJ9XQ==\"}}");
	buf_reset(&b);
	/* RFC 6902 patches are arrays */
	assert_int_equal(admission_response_patch("u3", obj, &b), -EINVAL);
	assert_int_equal(b.len, 0);
	buf_free(&b);
	json_decref(obj);
	json_decref(patch);
}

static void test_response_verdict(void **state)
{
	struct admission_verdict v;
	struct buf b = BUF_INIT(0);
	json_t *patch = json_array();

	assert_int_equal(admission_verdict_deny(&v, ADMISSION_RESULT_ERROR, "decode", "bad %d", 7),
			 0);
	assert_false(v.allowed);
	assert_string_equal(admission_result_to_string(v.result), "error");
	assert_int_equal(admission_response_verdict("u4", &v, NULL, &b), 0);
	assert_non_null(strstr(b.data, "\"allowed\":false,\"status\":{\"message\":\"bad 7\""));
	admission_verdict_done(&v);

	buf_reset(&b);
	assert_int_equal(admission_verdict_allow(&v, ADMISSION_RESULT_SKIPPED, "kind"), 0);
	assert_int_equal(admission_response_verdict("u4", &v, patch, &b), 0);
	assert_non_null(
	    strstr(b.data, "\"allowed\":true,\"patchType\":\"JSONPatch\",\"patch\":\"W10=\""));
	buf_reset(&b);
	assert_int_equal(admission_response_verdict("u4", &v, NULL, &b), 0);
	assert_null(strstr(b.data, "patch"));
	admission_verdict_done(&v);
	buf_free(&b);
	json_decref(patch);
}

static void test_quote(void **state)
{
	static const char *const rows[][2] = {
		{ "abc", "\"abc\"" },
		{ "", "\"\"" },
		{ "a\"b\\c", "\"a\\\"b\\\\c\"" },
		{ "\a\b\f\n\r\t\v", "\"\\a\\b\\f\\n\\r\\t\\v\"" },
		{ "\x01\x7f", "\"\\x01\\x7f\"" },
		{ "caf\xc3\xa9", "\"caf\xc3\xa9\"" },           /* é is printable */
		{ "\xc2\xa0", "\"\\u00a0\"" },                  /* no-break space */
		{ "\xe2\x80\xa8", "\"\\u2028\"" },              /* line separator */
		{ "\xf0\x9f\x98\x80", "\"\xf0\x9f\x98\x80\"" }, /* emoji */
		{ "\xff", "\"\\xff\"" },                        /* not UTF-8 */
		{ "\xc0\x80", "\"\\xc0\\x80\"" },               /* overlong */
	};

	for (size_t i = 0; i < ELEMENTSOF(rows); i++) {
		char *q = admission_quote(rows[i][0]);

		assert_string_equal(q, rows[i][1]);
		free(q);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_full_request),
		cmocka_unit_test(test_parse_minimal_request),
		cmocka_unit_test(test_parse_errors),
		cmocka_unit_test(test_parse_duplicate_key),
		cmocka_unit_test(test_parse_fast_path),
		cmocka_unit_test(test_parse_fast_path_values),
		cmocka_unit_test(test_parse_body_limit),
		cmocka_unit_test(test_response_allow),
		cmocka_unit_test(test_response_deny),
		cmocka_unit_test(test_response_escaping),
		cmocka_unit_test(test_response_patch),
		cmocka_unit_test(test_response_verdict),
		cmocka_unit_test(test_quote),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
