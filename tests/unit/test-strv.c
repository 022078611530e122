/* strv: building, copying, comparing, splitting (the --dns rule) and joining lists. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdlib.h>

#include "cocoon/strv.h"

static void test_new_push_length(void **state)
{
	_cleanup_(strv_freep) char **l = strv_new("iptables", "-t", "nat", NULL);

	assert_non_null(l);
	assert_int_equal(strv_length(l), 3);
	assert_int_equal(strv_push(&l, "-S"), 0);
	assert_int_equal(strv_length(l), 4);
	assert_string_equal(l[3], "-S");
	assert_null(l[4]);
	assert_int_equal(strv_length(NULL), 0);
}

static void test_copy_equal_contains(void **state)
{
	_cleanup_(strv_freep) char **a = strv_new("a", "b", NULL);
	_cleanup_(strv_freep) char **b = NULL;
	_cleanup_(strv_freep) char **c = strv_new("a", NULL);

	assert_int_equal(strv_copy(a, &b), 0);
	assert_true(a != b && a[0] != b[0]);
	assert_true(strv_equal(a, b));
	assert_false(strv_equal(a, c));
	assert_true(strv_equal(NULL, NULL));
	assert_true(strv_contains(a, "b"));
	assert_false(strv_contains(a, "c"));
	assert_false(strv_contains(NULL, "a"));
}

static void test_split_trims_and_drops_empty(void **state)
{
	static const struct {
		const char *in;
		const char *joined;
		size_t n;
	} rows[] = {
		{ "8.8.8.8,1.1.1.1", "8.8.8.8|1.1.1.1", 2 },
		{ " 8.8.8.8 , ,1.1.1.1,", "8.8.8.8|1.1.1.1", 2 },
		{ "", "", 0 },
		{ ",,,", "", 0 },
		{ "\tone\t", "one", 1 },
	};

	for (size_t i = 0; i < ELEMENTSOF(rows); i++) {
		_cleanup_(strv_freep) char **l = NULL;
		_cleanup_(freep) char *j = NULL;

		assert_int_equal(strv_split(rows[i].in, ',', &l), 0);
		assert_int_equal(strv_length(l), rows[i].n);
		assert_int_equal(strv_join(l, "|", &j), 0);
		assert_string_equal(j, rows[i].joined);
	}
}

static void test_join_empty(void **state)
{
	_cleanup_(freep) char *j = NULL;

	assert_int_equal(strv_join(NULL, ",", &j), 0);
	assert_string_equal(j, "");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_new_push_length),
		cmocka_unit_test(test_copy_equal_contains),
		cmocka_unit_test(test_split_trims_and_drops_empty),
		cmocka_unit_test(test_join_empty),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
