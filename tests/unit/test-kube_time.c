/* kube_time: the two forms the API writes (Time, MicroTime), every RFC 3339 form we must
 * read (fractions of any length, offsets, lower-case separators), calendar checks (leap
 * years, month lengths), and clear refusals of everything else. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "cocoon/kube.h"

#define SEC 1000000ULL

static void test_format(void **state)
{
	char buf[KUBE_TIME_MAX];

	assert_string_equal(kube_time_format(0, false, buf), "1970-01-01T00:00:00Z");
	assert_string_equal(kube_time_format(0, true, buf), "1970-01-01T00:00:00.000000Z");
	/* 2025-01-02T03:04:05.123456Z */
	assert_string_equal(kube_time_format(1735787045 * SEC + 123456, true, buf),
			    "2025-01-02T03:04:05.123456Z");
	assert_string_equal(kube_time_format(1735787045 * SEC + 999999, false, buf),
			    "2025-01-02T03:04:05Z");
	assert_string_equal(kube_time_format(1735787045 * SEC + 7, true, buf),
			    "2025-01-02T03:04:05.000007Z");
	/* Leap day. */
	assert_string_equal(kube_time_format(951782400 * SEC, false, buf), "2000-02-29T00:00:00Z");
	/* Past year 9999 RFC 3339 has no form: clamped. */
	assert_string_equal(kube_time_format(UINT64_MAX, true, buf), "9999-12-31T23:59:59.999999Z");
}

static void test_parse(void **state)
{
	static const struct {
		const char *s;
		uint64_t usec;
	} good[] = {
		{ "1970-01-01T00:00:00Z", 0 },
		{ "2025-01-02T03:04:05Z", 1735787045 * SEC },
		{ "2025-01-02T03:04:05.123456Z", 1735787045 * SEC + 123456 },
		{ "2025-01-02T03:04:05.1Z", 1735787045 * SEC + 100000 },
		{ "2025-01-02T03:04:05.123456789Z", 1735787045 * SEC + 123456 },
		{ "2025-01-02t03:04:05z", 1735787045 * SEC },
		{ "2025-01-02T05:04:05+02:00", 1735787045 * SEC },
		{ "2025-01-01T22:34:05-04:30", 1735787045 * SEC },
		{ "2000-02-29T00:00:00Z", 951782400 * SEC },
		{ "2024-12-31T23:59:59Z", 1735689599 * SEC },
	};
	static const char *const bad[] = {
		"",
		"2025-01-02",
		"2025-01-02T03:04:05",   /* no zone */
		"2025-01-02 03:04:05Z",  /* space instead of T */
		"2025-01-02T03:04:05.Z", /* empty fraction */
		"2025-13-02T03:04:05Z",  /* month */
		"2025-00-02T03:04:05Z",
		"2025-02-29T03:04:05Z", /* not a leap year */
		"1900-02-29T00:00:00Z", /* century rule */
		"2025-04-31T03:04:05Z",
		"2025-01-02T24:00:00Z",
		"2025-01-02T03:60:05Z",
		"2025-01-02T03:04:60Z", /* leap second, refused like Go */
		"2025-01-02T03:04:05+2:00",
		"2025-01-02T03:04:05+02:60",
		"2025-01-02T03:04:05Z ", /* trailing garbage */
		"2025-1-02T03:04:05Z",
		"+025-01-02T03:04:05Z",
		"2025-01-02T03:04:05.12a4Z",
	};
	uint64_t t = 42;

	for (size_t i = 0; i < ELEMENTSOF(good); i++) {
		assert_int_equal(kube_time_parse(good[i].s, &t), 0);
		if (t != good[i].usec)
			fail_msg("%s: got %llu", good[i].s, (unsigned long long)t);
	}
	for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
		t = 42;
		if (kube_time_parse(bad[i], &t) != -EINVAL)
			fail_msg("accepted \"%s\"", bad[i]);
		assert_int_equal(t, 42); /* untouched on failure */
	}
	assert_int_equal(kube_time_parse("1969-12-31T23:59:59Z", &t), -ERANGE);
	assert_int_equal(kube_time_parse("1970-01-01T00:30:00+01:00", &t), -ERANGE);
	assert_int_equal(kube_time_parse(NULL, &t), -EINVAL);
}

static void test_round_trip_and_now(void **state)
{
	char buf[KUBE_TIME_MAX];
	uint64_t now = kube_time_now(), t;

	/* Sanity: after 2020, and MicroTime round-trips exactly, Time to the second. */
	assert_true(now > 1577836800 * SEC);
	assert_int_equal(kube_time_parse(kube_time_format(now, true, buf), &t), 0);
	assert_int_equal(t, now);
	assert_int_equal(kube_time_parse(kube_time_format(now, false, buf), &t), 0);
	assert_int_equal(t, now / SEC * SEC);
	assert_int_equal(strlen(kube_time_format(now, true, buf)), 27);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_format),
		cmocka_unit_test(test_parse),
		cmocka_unit_test(test_round_trip_and_now),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
