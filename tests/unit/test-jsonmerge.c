/* jsonmerge: every example of RFC 7386 Appendix A applied, and the diff between its original
 * and result checked exactly; the RFC §3 example both ways; equality that ignores member
 * order but not integer vs real; null members; and a diff∘apply round trip on a
 * few hundred pseudo-random documents and their mutations. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "test-json.h"
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include "cocoon/jsonmerge.h"
#include "cocoon/macro.h"


static void assert_json(const json_t *got, const char *want_text)
{
	json_auto_t *want = load(want_text);

	if (!json_equal(got, want)) {
		char *g = json_dumps(got, JSON_COMPACT | JSON_ENCODE_ANY);

		fail_msg("got %s, want %s", g ? g : "(null)", want_text);
	}
}

struct rfc_row {
	const char *original, *patch, *result;
	const char *diff; /* json_merge_diff(original, result): the smallest patch */
	bool in_place;    /* both roots are objects, so apply works in place */
};

/* RFC 7386 Appendix A, in its order. */
static const struct rfc_row rfc_rows[] = {
	{ "{\"a\":\"b\"}", "{\"a\":\"c\"}", "{\"a\":\"c\"}", "{\"a\":\"c\"}", true },
	{ "{\"a\":\"b\"}", "{\"b\":\"c\"}", "{\"a\":\"b\",\"b\":\"c\"}", "{\"b\":\"c\"}", true },
	{ "{\"a\":\"b\"}", "{\"a\":null}", "{}", "{\"a\":null}", true },
	{ "{\"a\":\"b\",\"b\":\"c\"}", "{\"a\":null}", "{\"b\":\"c\"}", "{\"a\":null}", true },
	{ "{\"a\":[\"b\"]}", "{\"a\":\"c\"}", "{\"a\":\"c\"}", "{\"a\":\"c\"}", true },
	{ "{\"a\":\"c\"}", "{\"a\":[\"b\"]}", "{\"a\":[\"b\"]}", "{\"a\":[\"b\"]}", true },
	{ "{\"a\":{\"b\":\"c\"}}", "{\"a\":{\"b\":\"d\",\"c\":null}}", "{\"a\":{\"b\":\"d\"}}",
	  "{\"a\":{\"b\":\"d\"}}", true },
	{ "{\"a\":[{\"b\":\"c\"}]}", "{\"a\":[1]}", "{\"a\":[1]}", "{\"a\":[1]}", true },
	{ "[\"a\",\"b\"]", "[\"c\",\"d\"]", "[\"c\",\"d\"]", "[\"c\",\"d\"]", false },
	{ "{\"a\":\"b\"}", "[\"c\"]", "[\"c\"]", "[\"c\"]", false },
	{ "{\"a\":\"foo\"}", "null", "null", "null", false },
	{ "{\"a\":\"foo\"}", "\"bar\"", "\"bar\"", "\"bar\"", false },
	{ "{\"e\":null}", "{\"a\":1}", "{\"e\":null,\"a\":1}", "{\"a\":1}", true },
	{ "[1,2]", "{\"a\":\"b\",\"c\":null}", "{\"a\":\"b\"}", "{\"a\":\"b\"}", false },
	{ "{}", "{\"a\":{\"bb\":{\"ccc\":null}}}", "{\"a\":{\"bb\":{}}}", "{\"a\":{\"bb\":{}}}",
	  true },
};

static void test_rfc_appendix_a(void **state)
{
	for (size_t i = 0; i < ELEMENTSOF(rfc_rows); i++) {
		const struct rfc_row *row = &rfc_rows[i];
		json_auto_t *original = load(row->original);
		json_auto_t *patch = load(row->patch);
		json_auto_t *result = load(row->result);
		json_auto_t *diff = NULL;

		print_message("row %zu: %s + %s\n", i + 1, row->original, row->patch);
		if (row->in_place) {
			json_auto_t *target = json_deep_copy(original);

			assert_int_equal(json_merge_apply(target, patch), 0);
			assert_json(target, row->result);
		} else {
			assert_int_equal(json_merge_apply(original, patch), -EINVAL);
			assert_json(original, row->original);
		}
		assert_int_equal(json_merge_diff(original, result, &diff), 0);
		assert_non_null(diff);
		assert_json(diff, row->diff);
	}
}

#define RFC_ORIGINAL                                                                               \
	"{\"title\":\"Goodbye!\",\"author\":{\"givenName\":\"John\",\"familyName\":\"Doe\"},"      \
	"\"tags\":[\"example\",\"sample\"],\"content\":\"This will be unchanged\"}"
#define RFC_PATCH                                                                                  \
	"{\"title\":\"Hello!\",\"phoneNumber\":\"+01-123-456-7890\","                              \
	"\"author\":{\"familyName\":null},\"tags\":[\"example\"]}"
#define RFC_RESULT                                                                                 \
	"{\"title\":\"Hello!\",\"author\":{\"givenName\":\"John\"},\"tags\":[\"example\"],"        \
	"\"content\":\"This will be unchanged\",\"phoneNumber\":\"+01-123-456-7890\"}"

/* RFC 7386 §3: the patch there is exactly the minimal one. */
static void test_rfc_section_3(void **state)
{
	json_auto_t *target = load(RFC_ORIGINAL);
	json_auto_t *patch = load(RFC_PATCH);
	json_auto_t *result = load(RFC_RESULT);
	json_auto_t *diff = NULL;

	assert_int_equal(json_merge_apply(target, patch), 0);
	assert_json(target, RFC_RESULT);
	json_decref(target);
	target = load(RFC_ORIGINAL);
	assert_int_equal(json_merge_diff(target, result, &diff), 0);
	assert_json(diff, RFC_PATCH);
}

static void test_equal_is_null(void **state)
{
	json_auto_t *a = load("{\"phase\":\"Running\",\"readyAgents\":2,\"agents\":[{\"slot\":0}],"
			      "\"x\":{\"y\":[1,null,{\"z\":true}]}}");
	json_auto_t *reordered =
	    load("{\"x\":{\"y\":[1,null,{\"z\":true}]},\"agents\":[{\"slot\":0}],"
		 "\"readyAgents\":2,\"phase\":\"Running\"}");
	json_auto_t *real =
	    load("{\"phase\":\"Running\",\"readyAgents\":2.0,\"agents\":[{\"slot\":0}],"
		 "\"x\":{\"y\":[1,null,{\"z\":true}]}}");
	json_auto_t *s1 = load("\"same\"");
	json_auto_t *s2 = load("\"same\"");
	json_t *diff = (json_t *)0x1;

	assert_int_equal(json_merge_diff(a, a, &diff), 0);
	assert_null(diff);
	/* A status read back from the server lists members in its own order. */
	diff = (json_t *)0x1;
	assert_int_equal(json_merge_diff(a, reordered, &diff), 0);
	assert_null(diff);
	diff = (json_t *)0x1;
	assert_int_equal(json_merge_diff(s1, s2, &diff), 0);
	assert_null(diff);
	/* 2 and 2.0 are different JSON values to jansson: the patch says which one to keep. */
	assert_int_equal(json_merge_diff(a, real, &diff), 0);
	assert_json(diff, "{\"readyAgents\":2.0}");
	json_decref(diff);
}

static void test_arrays_replaced_whole(void **state)
{
	json_auto_t *old = load("{\"agents\":[{\"slot\":0,\"ip\":\"10.0.0.2\"},{\"slot\":1}]}");
	json_auto_t *new = load("{\"agents\":[{\"slot\":0,\"ip\":\"10.0.0.3\"},{\"slot\":1}]}");
	json_auto_t *diff = NULL;

	assert_int_equal(json_merge_diff(old, new, &diff), 0);
	assert_json(diff, "{\"agents\":[{\"slot\":0,\"ip\":\"10.0.0.3\"},{\"slot\":1}]}");
}

static void test_nulls(void **state)
{
	json_auto_t *old = load("{\"keep\":null,\"gone\":{\"x\":1},\"same\":[null]}");
	json_auto_t *new = load("{\"keep\":null,\"n\":null,\"same\":[null]}");
	json_auto_t *diff = NULL;
	json_auto_t *target = NULL;

	assert_int_equal(json_merge_diff(old, new, &diff), 0);
	/* "n" is null in new: the patch can only say "absent", which it already is. */
	assert_json(diff, "{\"gone\":null,\"n\":null}");
	target = json_deep_copy(old);
	assert_int_equal(json_merge_apply(target, diff), 0);
	assert_json(target, "{\"keep\":null,\"same\":[null]}");
}

static void test_bad_arguments(void **state)
{
	json_auto_t *obj = load("{}");
	json_t *diff = NULL;

	assert_int_equal(json_merge_diff(NULL, obj, &diff), -EINVAL);
	assert_int_equal(json_merge_diff(obj, NULL, &diff), -EINVAL);
	assert_int_equal(json_merge_diff(obj, obj, NULL), -EINVAL);
	assert_int_equal(json_merge_apply(NULL, obj), -EINVAL);
	assert_int_equal(json_merge_apply(obj, NULL), -EINVAL);
}

/* xorshift64: the same documents on every run. */
static uint64_t next(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static json_t *random_value(uint64_t *s, int depth);

/* Objects never hold null members: those cannot round-trip (jsonmerge.h). */
static json_t *random_object(uint64_t *s, int depth)
{
	static const char *const keys[] = { "a", "b", "c", "phase", "agents", "x", "" };
	json_t *o = json_object();
	unsigned n = (unsigned)(next(s) % 5);

	for (unsigned i = 0; i < n; i++) {
		json_t *v = random_value(s, depth + 1);

		if (json_is_null(v))
			v = json_true();
		json_object_set_new(o, keys[next(s) % ELEMENTSOF(keys)], v);
	}
	return o;
}

static json_t *random_value(uint64_t *s, int depth)
{
	json_t *a;

	switch (next(s) % (depth < 3 ? 7 : 5)) {
	case 0:
		return json_integer((json_int_t)(next(s) % 4));
	case 1:
		return json_string(next(s) % 2 ? "x" : "y");
	case 2:
		return json_boolean(next(s) % 2);
	case 3:
		return json_null();
	case 4:
		return json_real(0.5);
	case 5:
		a = json_array();
		for (unsigned n = (unsigned)(next(s) % 3); n > 0; n--)
			json_array_append_new(a, random_value(s, depth + 1));
		return a;
	default:
		return random_object(s, depth);
	}
}

/* Changes a few members of o in place, at every depth: replace, delete, add. */
static void mutate(uint64_t *s, json_t *o, int depth)
{
	const char *key;
	json_t *v, *tmp;

	json_object_foreach_safe(o, tmp, key, v)
	{
		switch (next(s) % 5) {
		case 0:
			json_object_del(o, key);
			break;
		case 1:
			json_object_set_new(o, key, random_object(s, depth + 1));
			break;
		case 2:
			if (json_is_object(v))
				mutate(s, v, depth + 1);
			break;
		default:
			break;
		}
	}
	if (next(s) % 3 == 0)
		json_object_set_new(o, "added", json_integer(depth));
}

static void test_round_trip(void **state)
{
	uint64_t s = 0x9e3779b97f4a7c15ULL;
	unsigned nonempty = 0;

	for (int i = 0; i < 500; i++) {
		json_auto_t *old = random_object(&s, 0);
		json_auto_t *new = json_deep_copy(old);
		json_auto_t *diff = NULL;
		json_auto_t *target = json_deep_copy(old);

		mutate(&s, new, 0);
		assert_int_equal(json_merge_diff(old, new, &diff), 0);
		assert_int_equal(diff == NULL, json_equal(old, new));
		if (!diff)
			continue;
		nonempty++;
		assert_int_equal(json_merge_apply(target, diff), 0);
		if (!json_equal(target, new)) {
			char *o = json_dumps(old, JSON_COMPACT), *n = json_dumps(new, JSON_COMPACT);

			fail_msg("round trip %d: old %s new %s", i, o, n);
		}
	}
	/* The generator must actually produce differences. */
	assert_true(nonempty > 250);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rfc_appendix_a),
		cmocka_unit_test(test_rfc_section_3),
		cmocka_unit_test(test_equal_is_null),
		cmocka_unit_test(test_arrays_replaced_whole),
		cmocka_unit_test(test_nulls),
		cmocka_unit_test(test_bad_arguments),
		cmocka_unit_test(test_round_trip),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
