/* webhookd's fast JSON reader: what it takes it decodes to exactly what jansson decodes
 * (values, member order, escapes, numbers), and everything it leaves to jansson (syntax
 * errors, duplicate keys, \u0000, numbers jansson range-checks, deep nesting, trailing
 * bytes, bad UTF-8) still gets jansson's verdict and message through the decoder. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../../webhookd/webhookd.h"

/* Taken: the fast reader's value dumps like jansson's, member order included. */
static const char *const taken[] = {
	"{}",
	"[]",
	" \t\r\n{\"a\" : [ 1 , -2 , 0 , -0 ] } \n",
	"{\"apiVersion\":\"admission.k8s.io/v1\",\"request\":{\"uid\":\"u\",\"object\":null,"
	"\"dryRun\":false,\"ok\":true}}",
	"{\"z\":1,\"a\":2,\"m\":{\"y\":[],\"b\":{}}}",
	"[\"\\\" \\\\ \\/ \\b \\f \\n \\r \\t\"]",
	"[\"\\u00e9\\u2028\\ud83d\\ude00\\u0041\"]",
	"[\"caf\xc3\xa9 \xe2\x80\xa8 \xf0\x9f\x98\x80 \x7f\"]",
	"{\"\\u006bey\":\"escaped key\",\"k2\":\"v\"}",
	"[123456789012345678,-123456789012345678]",
	"[1.5,-0.25,1e3,1E-3,2.5e+10,0.1,1e-400,-0.0]",
};

/* Left to jansson (its verdict may be a value or an error). */
static const char *const declined[] = {
	"",
	"   ",
	"\"a string\"",
	"42",
	"null",
	"{\"a\":1} x",
	"{\"a\":1,\"a\":2}",
	"{\"a\":{\"b\":1,\"b\":1}}",
	"[\"nul \\u0000 inside\"]",
	"{\"\\u0000\":1}",
	"[1234567890123456789]",
	"[1e400]",
	"[01]",
	"[1.]",
	"[.5]",
	"[-]",
	"[\"\\ud800\"]",
	"[\"\\udc00\\ud800\"]",
	"[\"\\x41\"]",
	"[\"\xc0\x80\"]",
	"[\"\xed\xa0\x80\"]",
	"[\"\xf4\x90\x80\x80\"]",
	"[\"tab\tinside\"]",
	"[\"unterminated]",
	"[tru]",
	"[1,]",
	"{\"a\" 1}",
	"{\"a\":1,}",
	"\xef\xbb\xbf{}",
};

static char *dump(const json_t *j)
{
	return json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
}

static void test_taken_like_jansson(void **state)
{
	for (size_t i = 0; i < ELEMENTSOF(taken); i++) {
		json_t *fast = NULL, *slow;
		char *a, *b;

		if (fastjson_load(taken[i], strlen(taken[i]), &fast) != 0)
			fail_msg("fast reader declined %s", taken[i]);
		slow = json_loadb(taken[i], strlen(taken[i]), JSON_REJECT_DUPLICATES, NULL);
		assert_non_null(slow);
		a = dump(fast);
		b = dump(slow);
		assert_string_equal(a, b);
		assert_true(json_equal(fast, slow));
		free(a);
		free(b);
		json_decref(fast);
		json_decref(slow);
	}
}

static void test_declined(void **state)
{
	for (size_t i = 0; i < ELEMENTSOF(declined); i++) {
		json_t *v = NULL;

		if (fastjson_load(declined[i], strlen(declined[i]), &v) != -EINVAL)
			fail_msg("fast reader took %s", declined[i]);
		assert_null(v);
	}
}

static void test_values(void **state)
{
	static const char text[] = "{\"s\":\"a\\u00e9\\ud83d\\ude00\",\"i\":-42,\"r\":0.5,"
				   "\"b\":true,\"n\":null,\"a\":[{}]}";
	json_t *v = NULL;

	assert_int_equal(fastjson_load(text, strlen(text), &v), 0);
	assert_string_equal(json_string_value(json_object_get(v, "s")),
			    "a\xc3\xa9\xf0\x9f\x98\x80");
	assert_int_equal(json_integer_value(json_object_get(v, "i")), -42);
	assert_true(json_is_real(json_object_get(v, "r")));
	assert_true(json_real_value(json_object_get(v, "r")) == 0.5);
	assert_true(json_is_true(json_object_get(v, "b")));
	assert_true(json_is_null(json_object_get(v, "n")));
	assert_int_equal(json_array_size(json_object_get(v, "a")), 1);
	json_decref(v);
}

/* Strings are read a word at a time: a byte that ends the plain run (the closing quote, an
 * escape, a multibyte sequence, a control character, invalid UTF-8) is found at any offset
 * of any word, and the bytes just inside the plain range are taken. The fast reader takes
 * exactly the texts jansson accepts here, and decodes them the same. */
static void test_string_bytes_at_every_offset(void **state)
{
	static const char *const specials[] = {
		"\"",   "\\n",   "\\u00e9", "\xc3\xa9", "\xf0\x9f\x98\x80",
		"\x7f", " ",     "~",       "\x01",     "\x1f",
		"\xff", "\xc3(", "\\",      "\x80",     "\\\"",
	};

	for (size_t k = 0; k < ELEMENTSOF(specials); k++)
		for (size_t at = 0; at < 20; at++) {
			char text[64], *a, *b;
			json_t *fast = NULL, *slow;
			int r;

			snprintf(text, sizeof text, "[\"%.*s%s%.*s\",1]", (int)at,
				 "aaaaaaaaaaaaaaaaaaaa", specials[k], (int)(19 - at),
				 "bbbbbbbbbbbbbbbbbbb");
			r = fastjson_load(text, strlen(text), &fast);
			slow = json_loadb(text, strlen(text), JSON_REJECT_DUPLICATES, NULL);
			if (!slow) {
				if (r != -EINVAL)
					fail_msg("fast reader took %s", text);
				continue;
			}
			if (r != 0)
				fail_msg("fast reader declined %s", text);
			a = dump(fast);
			b = dump(slow);
			assert_string_equal(a, b);
			free(a);
			free(b);
			json_decref(fast);
			json_decref(slow);
		}
}

/* Nesting up to the reader's own depth is taken; deeper goes to jansson, which accepts it. */
static void test_depth(void **state)
{
	char text[2 * 200 + 1];
	json_t *v = NULL;

	for (size_t depth = 100; depth <= 200; depth += 100) {
		memset(text, '[', depth);
		memset(text + depth, ']', depth);
		text[2 * depth] = 0;
		assert_int_equal(fastjson_load(text, 2 * depth, &v), depth == 100 ? 0 : -EINVAL);
		json_decref(TAKE_PTR(v));
	}
}

/* Through the decoder, a body the fast reader declines still gets jansson's message. */
static void test_decoder_messages(void **state)
{
	for (size_t i = 0; i < ELEMENTSOF(declined); i++) {
		struct admission_request *req = NULL;
		char *error = NULL, *want = NULL;
		json_error_t e;
		json_t *j =
		    json_loadb(declined[i], strlen(declined[i]), JSON_REJECT_DUPLICATES, &e);

		if (j) {
			json_decref(j);
			continue;
		}
		assert_true(asprintf(&want, "decode admission review: line %d column %d: %s",
				     e.line, e.column, e.text) > 0);
		assert_int_equal(
		    admission_request_parse(declined[i], strlen(declined[i]), &req, &error),
		    -EBADMSG);
		assert_string_equal(error, want);
		free(error);
		free(want);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_taken_like_jansson),
		cmocka_unit_test(test_declined),
		cmocka_unit_test(test_values),
		cmocka_unit_test(test_string_bytes_at_every_offset),
		cmocka_unit_test(test_depth),
		cmocka_unit_test(test_decoder_messages),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
