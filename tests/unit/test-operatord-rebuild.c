/* operatord rebuild history (operator-webhook.md §2.6): the annotation written byte for byte
 * (slot order, RFC3339Nano with trailing zeros trimmed), read back, slots above replicas
 * dropped on write, damaged annotations read as empty or with the bad entries skipped, the
 * set/get/drop table, and the 0/1/5/30 s backoff schedule. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <errno.h>
#include <stdlib.h>

#include "../../operatord/operatord.h"

/* 2026-05-01T10:00:00Z */
#define T0 (UINT64_C(1777629600) * USEC_PER_SEC)

static void assert_format(const struct rebuild_history *h, int replicas, const char *want)
{
	_cleanup_(freep) char *got = NULL;

	assert_int_equal(rebuild_history_format(h, replicas, &got), 0);
	assert_string_equal(got, want);
}

static void test_format_exact(void **state)
{
	struct rebuild_history h = {};

	assert_format(&h, 3, "{}");
	/* Inserted out of order, written by ascending slot (numerically: 2 before 10). */
	assert_int_equal(rebuild_history_set(&h, 10, 1, T0), 0);
	assert_int_equal(rebuild_history_set(&h, 2, 3, T0 + 500000), 0);
	assert_int_equal(rebuild_history_set(&h, 1, 4, T0 + 123), 0);
	assert_format(&h, 10,
		      "{\"1\":{\"count\":4,\"lastDeleted\":\"2026-05-01T10:00:00.000123Z\"},"
		      "\"2\":{\"count\":3,\"lastDeleted\":\"2026-05-01T10:00:00.5Z\"},"
		      "\"10\":{\"count\":1,\"lastDeleted\":\"2026-05-01T10:00:00Z\"}}");
	rebuild_history_done(&h);
	assert_null(h.v);
	assert_int_equal(h.n, 0);
}

static void test_round_trip(void **state)
{
	struct rebuild_history h = {}, back = {};
	_cleanup_(freep) char *text = NULL;
	_cleanup_(freep) char *again = NULL;

	assert_int_equal(rebuild_history_set(&h, 1, 1, T0 + 999999), 0);
	assert_int_equal(rebuild_history_set(&h, 3, 2, T0 + 10), 0);
	assert_int_equal(rebuild_history_format(&h, 3, &text), 0);
	assert_int_equal(rebuild_history_parse(text, &back), 0);
	assert_int_equal(back.n, 2);
	assert_int_equal(rebuild_history_get(&back, 1)->count, 1);
	assert_int_equal(rebuild_history_get(&back, 1)->last_deleted_usec, T0 + 999999);
	assert_int_equal(rebuild_history_get(&back, 3)->count, 2);
	assert_int_equal(rebuild_history_get(&back, 3)->last_deleted_usec, T0 + 10);
	assert_int_equal(rebuild_history_format(&back, 3, &again), 0);
	assert_string_equal(again, text);
	rebuild_history_done(&h);
	rebuild_history_done(&back);
}

/* What the Go operator writes: nanoseconds (we keep microseconds) and a local offset. */
static void test_parse_go_written(void **state)
{
	struct rebuild_history h = {};

	assert_int_equal(
		rebuild_history_parse("{\"2\":{\"count\":2,\"lastDeleted\":"
				      "\"2026-05-01T12:00:00.123456789+02:00\"},"
				      "\"1\":{\"count\":1,\"lastDeleted\":\"2026-05-01T10:00:01Z\"}}",
				      &h),
		0);
	assert_int_equal(h.n, 2);
	assert_int_equal(h.v[0].slot, 1);
	assert_int_equal(h.v[0].last_deleted_usec, T0 + USEC_PER_SEC);
	assert_int_equal(h.v[1].slot, 2);
	assert_int_equal(h.v[1].count, 2);
	assert_int_equal(h.v[1].last_deleted_usec, T0 + 123456);
	rebuild_history_done(&h);
}

static void test_gc_high_slots(void **state)
{
	struct rebuild_history h = {};

	assert_int_equal(rebuild_history_set(&h, 1, 1, T0), 0);
	assert_int_equal(rebuild_history_set(&h, 2, 2, T0), 0);
	assert_int_equal(rebuild_history_set(&h, 5, 3, T0), 0);
	assert_format(&h, 2,
		      "{\"1\":{\"count\":1,\"lastDeleted\":\"2026-05-01T10:00:00Z\"},"
		      "\"2\":{\"count\":2,\"lastDeleted\":\"2026-05-01T10:00:00Z\"}}");
	assert_format(&h, 0, "{}");
	/* Formatting does not change the table. */
	assert_int_equal(h.n, 3);
	rebuild_history_done(&h);
}

static void test_set_get_drop(void **state)
{
	struct rebuild_history h = {};

	assert_null(rebuild_history_get(&h, 1));
	assert_int_equal(rebuild_history_set(&h, 0, 1, T0), -EINVAL);
	assert_int_equal(rebuild_history_set(&h, -1, 1, T0), -EINVAL);
	assert_int_equal(rebuild_history_set(&h, 4, 1, T0), 0);
	assert_int_equal(rebuild_history_set(&h, 4, 2, T0 + 7), 0);
	assert_int_equal(h.n, 1);
	assert_int_equal(rebuild_history_get(&h, 4)->count, 2);
	assert_int_equal(rebuild_history_get(&h, 4)->last_deleted_usec, T0 + 7);
	assert_int_equal(rebuild_history_set(&h, 2, 1, T0), 0);
	rebuild_history_drop(&h, 3); /* absent: nothing happens */
	assert_int_equal(h.n, 2);
	rebuild_history_drop(&h, 2);
	assert_null(rebuild_history_get(&h, 2));
	assert_non_null(rebuild_history_get(&h, 4));
	rebuild_history_drop(&h, 4);
	assert_int_equal(h.n, 0);
	rebuild_history_done(&h);
}

struct corrupt_row {
	const char *annotation;
	const char *formatted; /* what is written back (replicas 10) */
};

static const struct corrupt_row corrupt_rows[] = {
	{ NULL, "{}" },
	{ "", "{}" },
	{ "null", "{}" },
	{ "{", "{}" },
	{ "[1,2]", "{}" },
	{ "\"x\"", "{}" },
	{ "42", "{}" },
	{ "{}", "{}" },
	/* Bad entries are skipped one by one; the good one survives. */
	{ "{\"x\":{\"count\":1},\"0\":{\"count\":1},\"-1\":{\"count\":1},\"1.5\":{\"count\":1},"
	  "\"99999999999\":{\"count\":1},\"2\":\"nope\",\"3\":{\"count\":-1},"
	  "\"4\":{\"count\":1.5},\"5\":{\"count\":\"2\"},\"6\":{\"lastDeleted\":\"yesterday\"},"
	  "\"7\":{\"lastDeleted\":5},\"8\":{\"count\":1,\"lastDeleted\":\"2026-05-01T10:00:00Z\"}}",
	  "{\"8\":{\"count\":1,\"lastDeleted\":\"2026-05-01T10:00:00Z\"}}" },
	/* Missing members are Go's zero values; Go's zero time (year 1) means long ago. */
	{ "{\"1\":{},\"2\":{\"count\":2,\"lastDeleted\":\"0001-01-01T00:00:00Z\"},"
	  "\"3\":{\"count\":null,\"lastDeleted\":null}}",
	  "{\"1\":{\"count\":0,\"lastDeleted\":\"1970-01-01T00:00:00Z\"},"
	  "\"2\":{\"count\":2,\"lastDeleted\":\"1970-01-01T00:00:00Z\"},"
	  "\"3\":{\"count\":0,\"lastDeleted\":\"1970-01-01T00:00:00Z\"}}" },
	/* A slot written twice ("01" is 1 for Go too): the later one wins. */
	{ "{\"1\":{\"count\":1},\"01\":{\"count\":3}}",
	  "{\"1\":{\"count\":3,\"lastDeleted\":\"1970-01-01T00:00:00Z\"}}" },
};

static void test_corrupt_input(void **state)
{
	for (size_t i = 0; i < ELEMENTSOF(corrupt_rows); i++) {
		struct rebuild_history h = { .v = NULL, .n = 99 };

		print_message("annotation: %s\n", corrupt_rows[i].annotation ?: "(none)");
		assert_int_equal(rebuild_history_parse(corrupt_rows[i].annotation, &h), 0);
		assert_format(&h, 10, corrupt_rows[i].formatted);
		rebuild_history_done(&h);
	}
}

static void test_backoff_schedule(void **state)
{
	static const struct {
		unsigned prior;
		uint64_t usec;
	} rows[] = {
		{ 0, 0 },
		{ 1, 1 * USEC_PER_SEC },
		{ 2, 5 * USEC_PER_SEC },
		{ 3, 30 * USEC_PER_SEC },
		{ 4, 30 * USEC_PER_SEC },
		{ 1000, 30 * USEC_PER_SEC },
	};

	for (size_t i = 0; i < ELEMENTSOF(rows); i++)
		assert_int_equal(rebuild_backoff_usec(rows[i].prior), rows[i].usec);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_format_exact),
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_parse_go_written),
		cmocka_unit_test(test_gc_high_slots),
		cmocka_unit_test(test_set_get_drop),
		cmocka_unit_test(test_corrupt_input),
		cmocka_unit_test(test_backoff_schedule),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
