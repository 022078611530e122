/* kube_stream: the watch stream splitter emits exactly the objects of a stream of
 * concatenated JSON, however the stream is cut into chunks (every split point, byte by
 * byte), with braces and quotes inside strings, escapes, the per-object cap and garbage. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "cocoon/kube.h"

#define MAX_OBJECTS 16

struct seen {
	char *obj[MAX_OBJECTS];
	size_t n;
	int fail_at; /* return -ECANCELED for the object with this index; -1: never */
};

static int collect(const char *json, size_t len, void *userdata)
{
	struct seen *s = userdata;

	assert_true(s->n < MAX_OBJECTS);
	if ((int)s->n == s->fail_at)
		return -ECANCELED;
	s->obj[s->n] = strndup(json, len);
	assert_non_null(s->obj[s->n]);
	s->n++;
	return 0;
}

static void seen_clear(struct seen *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->obj[i]);
	s->n = 0;
	s->fail_at = -1;
}

/* Event-shaped objects with every trap the splitter must see through. */
static const char *const objects[] = {
	"{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"a\",\"resourceVersion\":\"1\"}}}",
	"{\"s\":\"}}}{{{\"}",                             /* braces inside a string */
	"{\"s\":\"say \\\"}\\\" now\",\"t\":[{}]}",       /* escaped quotes around a brace */
	"{\"s\":\"back\\\\\",\"u\":\"\\u0022}\\u005c\"}", /* escaped backslash, \u escapes */
	"{\"a\":[[{\"b\":[]}],{}],\"n\":-1.5e3,\"z\":null}",
	"{}",
};

static char *joined(const char *sep)
{
	size_t n = 0;
	char *s, *p;

	for (size_t i = 0; i < ELEMENTSOF(objects); i++)
		n += strlen(objects[i]) + strlen(sep);
	s = p = malloc(n + 1);
	assert_non_null(s);
	for (size_t i = 0; i < ELEMENTSOF(objects); i++)
		p = stpcpy(stpcpy(p, objects[i]), sep);
	return s;
}

static void assert_all_objects(const struct seen *seen)
{
	assert_int_equal(seen->n, ELEMENTSOF(objects));
	for (size_t i = 0; i < ELEMENTSOF(objects); i++)
		assert_string_equal(seen->obj[i], objects[i]);
}

static void test_every_split_point(void **state)
{
	const char *seps[] = { "", "\n", " \r\n\t " };

	for (size_t k = 0; k < ELEMENTSOF(seps); k++) {
		_cleanup_(freep) char *stream = joined(seps[k]);
		size_t len = strlen(stream);

		for (size_t cut = 0; cut <= len; cut++) {
			struct seen seen = { .fail_at = -1 };
			_cleanup_(kube_splitter_freep) struct kube_splitter *s = NULL;

			assert_int_equal(kube_splitter_new(4096, collect, &seen, &s), 0);
			assert_int_equal(kube_splitter_feed(s, stream, cut), 0);
			assert_int_equal(kube_splitter_feed(s, stream + cut, len - cut), 0);
			assert_all_objects(&seen);
			assert_int_equal(kube_splitter_pending(s), 0);
			seen_clear(&seen);
		}
	}
}

static void test_byte_by_byte(void **state)
{
	_cleanup_(freep) char *stream = joined("\n");
	struct seen seen = { .fail_at = -1 };
	_cleanup_(kube_splitter_freep) struct kube_splitter *s = NULL;
	size_t len = strlen(stream);

	assert_int_equal(kube_splitter_new(4096, collect, &seen, &s), 0);
	for (size_t i = 0, lines = 0; i < len; i++) {
		assert_int_equal(kube_splitter_feed(s, stream + i, 1), 0);
		/* Each object comes out at its closing brace, not before and not later. */
		if (stream[i] == '\n')
			lines++;
		else if (stream[i + 1] == '\n')
			assert_int_equal(seen.n, lines + 1);
		else
			assert_int_equal(seen.n, lines);
	}
	assert_all_objects(&seen);
	seen_clear(&seen);
}

static void test_three_pieces(void **state)
{
	_cleanup_(freep) char *stream = joined("");
	size_t len = strlen(stream);

	/* Two cuts at every pair of positions 7 bytes apart or less: objects start and end in
	 * the middle chunk, and a chunk holding only the inside of a string. */
	for (size_t a = 0; a <= len; a++) {
		for (size_t b = a; b <= len && b <= a + 7; b++) {
			struct seen seen = { .fail_at = -1 };
			_cleanup_(kube_splitter_freep) struct kube_splitter *s = NULL;

			assert_int_equal(kube_splitter_new(4096, collect, &seen, &s), 0);
			assert_int_equal(kube_splitter_feed(s, stream, a), 0);
			assert_int_equal(kube_splitter_feed(s, stream + a, b - a), 0);
			assert_int_equal(kube_splitter_feed(s, stream + b, len - b), 0);
			assert_all_objects(&seen);
			seen_clear(&seen);
		}
	}
}

static void test_cap(void **state)
{
	const char *obj = "{\"k\":\"0123456789\"}"; /* 18 bytes */
	struct seen seen = { .fail_at = -1 };
	_cleanup_(kube_splitter_freep) struct kube_splitter *s = NULL;

	/* Exactly at the cap: fine, whole or split. */
	assert_int_equal(kube_splitter_new(18, collect, &seen, &s), 0);
	assert_int_equal(kube_splitter_feed(s, obj, 18), 0);
	assert_int_equal(kube_splitter_feed(s, obj, 5), 0);
	assert_int_equal(kube_splitter_feed(s, obj + 5, 13), 0);
	assert_int_equal(seen.n, 2);
	seen_clear(&seen);
	kube_splitter_free(s);
	s = NULL;

	/* One byte over: refused whole, and refused when it arrives in pieces, before its end
	 * (an endless object must not grow memory). */
	assert_int_equal(kube_splitter_new(17, collect, &seen, &s), 0);
	assert_int_equal(kube_splitter_feed(s, "\n", 1), 0);
	assert_int_equal(kube_splitter_feed(s, obj, 18), -E2BIG);
	assert_string_equal(kube_splitter_error(s),
			    "object starting at stream byte 1 is larger than 17 bytes");
	kube_splitter_reset(s);
	assert_null(kube_splitter_error(s));
	assert_int_equal(kube_splitter_feed(s, obj, 10), 0);
	assert_int_equal(kube_splitter_feed(s, obj + 10, 7), 0);
	assert_int_equal(kube_splitter_pending(s), 17);
	assert_int_equal(kube_splitter_feed(s, "\"\"", 2), -E2BIG);
	assert_int_equal(seen.n, 0);
}

static void test_garbage(void **state)
{
	struct seen seen = { .fail_at = -1 };
	_cleanup_(kube_splitter_freep) struct kube_splitter *s = NULL;

	assert_int_equal(kube_splitter_new(4096, collect, &seen, &s), 0);
	/* The objects before the garbage still come out; the error names the byte. */
	assert_int_equal(kube_splitter_feed(s, "{\"a\":1}\n{\"b\":2}\nHTTP/1.1 200", 28), -EBADMSG);
	assert_int_equal(seen.n, 2);
	assert_string_equal(seen.obj[1], "{\"b\":2}");
	assert_string_equal(kube_splitter_error(s),
			    "stream byte 16: expected '{' to start an object, got 'H'");
	/* Sticky: nothing more is accepted until a reset. */
	assert_int_equal(kube_splitter_feed(s, "{}", 2), -EBADMSG);
	assert_int_equal(seen.n, 2);
	seen_clear(&seen);

	kube_splitter_reset(s);
	assert_int_equal(kube_splitter_feed(s, "{}", 2), 0);
	assert_int_equal(kube_splitter_feed(s, "\x01", 1), -EBADMSG);
	assert_string_equal(kube_splitter_error(s),
			    "stream byte 2: expected '{' to start an object, got byte 0x01");
	seen_clear(&seen);

	/* Only objects are events: a top-level array, string or stray brace is garbage. */
	const char *bad[] = { "[{}]", "\"{}\"", "}", "]", "1", "null" };
	for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
		kube_splitter_reset(s);
		assert_int_equal(kube_splitter_feed(s, bad[i], strlen(bad[i])), -EBADMSG);
		assert_int_equal(seen.n, 0);
	}
}

static void test_consumer_error_and_end(void **state)
{
	struct seen seen = { .fail_at = 1 };
	_cleanup_(kube_splitter_freep) struct kube_splitter *s = NULL;

	assert_int_equal(kube_splitter_new(4096, collect, &seen, &s), 0);
	assert_int_equal(kube_splitter_feed(s, "{\"a\":1}{\"b\":2}{\"c\":3}", 21), -ECANCELED);
	assert_int_equal(seen.n, 1);
	assert_string_equal(kube_splitter_error(s),
			    "object at stream byte 7 refused by its consumer");
	seen_clear(&seen);

	/* A stream cut off inside an object leaves it pending and emits nothing. */
	kube_splitter_reset(s);
	assert_int_equal(kube_splitter_feed(s, "{\"a\":\"}", 7), 0);
	assert_int_equal(seen.n, 0);
	assert_int_equal(kube_splitter_pending(s), 7);
	kube_splitter_reset(s);
	assert_int_equal(kube_splitter_pending(s), 0);
	assert_int_equal(kube_splitter_feed(s, "  \n", 3), 0);
	assert_int_equal(kube_splitter_pending(s), 0);
	assert_int_equal(seen.n, 0);
}

static void test_bad_args(void **state)
{
	struct kube_splitter *s = NULL;

	assert_int_equal(kube_splitter_new(0, collect, NULL, &s), -EINVAL);
	assert_int_equal(kube_splitter_new(10, NULL, NULL, &s), -EINVAL);
	assert_null(s);
	kube_splitter_free(NULL);
	kube_splitter_reset(NULL);
	assert_null(kube_splitter_error(NULL));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_split_point),
		cmocka_unit_test(test_byte_by_byte),
		cmocka_unit_test(test_three_pieces),
		cmocka_unit_test(test_cap),
		cmocka_unit_test(test_garbage),
		cmocka_unit_test(test_consumer_error_and_end),
		cmocka_unit_test(test_bad_args),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
