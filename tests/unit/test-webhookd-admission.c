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

static char *dump(json_t *j)
{
	char *s = json_dumps(j, JSON_COMPACT);

	json_decref(j);
	return s;
}

static void test_response_allow(void **state)
{
	json_t *r = NULL;
	char *s;

	assert_int_equal(admission_response_allow("u1", &r), 0);
	s = dump(r);
	assert_string_equal(s,
			    "{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\","
			    "\"response\":{\"uid\":\"u1\",\"allowed\":true}}");
	free(s);
	assert_int_equal(admission_response_allow(NULL, &r), -EINVAL);
}

static void test_response_deny(void **state)
{
	json_t *r = NULL;
	char *s;

	assert_int_equal(admission_response_deny("u2", "no \"way\"", &r), 0);
	s = dump(r);
	assert_string_equal(s,
			    "{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\","
			    "\"response\":{\"uid\":\"u2\",\"allowed\":false,\"status\":{"
			    "\"message\":\"no \\\"way\\\"\",\"reason\":\"Forbidden\"}}}");
	free(s);
	assert_int_equal(admission_response_deny("u2", "\xff", &r), -EINVAL);
}

static void test_response_patch(void **state)
{
	json_t *patch = json_loads("[{\"op\":\"add\",\"path\":\"/metadata/annotations/"
				   "vm.cocoonstack.io~1name\",\"value\":\"vk-ns-web-0\"}]",
				   0, NULL);
	json_t *r = NULL, *obj = json_object();
	char *s;

	assert_int_equal(admission_response_patch("u3", patch, &r), 0);
	s = dump(r);
	assert_string_equal(
	    s, "{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\","
	       "\"response\":{\"uid\":\"u3\",\"allowed\":true,\"patchType\":\"JSONPatch\","
	       "\"patch\":\"W3sib3AiOiJhZGQiLCJwYXRoIjoiL21ldGFkYXRhL2Fubm90YXRpb25zL3ZtLmNvY29"
	       "vbnN0YWNrLmlvfjFuYW1lIiwidmFsdWUiOiJ2ay1ucy13ZWItMCJ9XQ==\"}}");
	free(s);
	/* RFC 6902 patches are arrays */
	assert_int_equal(admission_response_patch("u3", obj, &r), -EINVAL);
	json_decref(obj);
	json_decref(patch);
}

static void test_response_verdict(void **state)
{
	struct admission_verdict v;
	json_t *r = NULL, *patch = json_array();
	char *s;

	assert_int_equal(admission_verdict_deny(&v, ADMISSION_RESULT_ERROR, "decode", "bad %d", 7),
			 0);
	assert_false(v.allowed);
	assert_string_equal(admission_result_to_string(v.result), "error");
	assert_int_equal(admission_response_verdict("u4", &v, NULL, &r), 0);
	s = dump(r);
	assert_non_null(strstr(s, "\"allowed\":false,\"status\":{\"message\":\"bad 7\""));
	free(s);
	admission_verdict_done(&v);

	assert_int_equal(admission_verdict_allow(&v, ADMISSION_RESULT_SKIPPED, "kind"), 0);
	assert_int_equal(admission_response_verdict("u4", &v, patch, &r), 0);
	s = dump(r);
	assert_non_null(
	    strstr(s, "\"allowed\":true,\"patchType\":\"JSONPatch\",\"patch\":\"W10=\""));
	free(s);
	assert_int_equal(admission_response_verdict("u4", &v, NULL, &r), 0);
	s = dump(r);
	assert_null(strstr(s, "patch"));
	free(s);
	admission_verdict_done(&v);
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
		cmocka_unit_test(test_parse_body_limit),
		cmocka_unit_test(test_response_allow),
		cmocka_unit_test(test_response_deny),
		cmocka_unit_test(test_response_patch),
		cmocka_unit_test(test_response_verdict),
		cmocka_unit_test(test_quote),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
