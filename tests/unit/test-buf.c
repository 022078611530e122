/* buf: growth, the hard cap, consume and steal. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <string.h>

#include "cocoon/buf.h"

static void test_append_and_printf(void **state)
{
	struct buf b = BUF_INIT(0);

	assert_int_equal(buf_append_str(&b, "hello"), 0);
	assert_int_equal(buf_printf(&b, " %s %d", "world", 42), 0);
	assert_string_equal(b.data, "hello world 42");
	assert_int_equal(b.len, 14);
	for (int i = 0; i < 1000; i++)
		assert_int_equal(buf_append(&b, "x", 1), 0);
	assert_int_equal(b.len, 1014);
	buf_free(&b);
}

static void test_cap_refuses_without_change(void **state)
{
	struct buf b = BUF_INIT(8);

	assert_int_equal(buf_append_str(&b, "12345678"), 0);
	assert_int_equal(buf_append(&b, "9", 1), -E2BIG);
	assert_int_equal(buf_printf(&b, "%d", 9), -E2BIG);
	assert_string_equal(b.data, "12345678");
	assert_int_equal(b.len, 8);
	buf_free(&b);
}

static void test_consume(void **state)
{
	struct buf b = BUF_INIT(0);

	buf_append_str(&b, "abcdef");
	buf_consume(&b, 2);
	assert_string_equal(b.data, "cdef");
	buf_consume(&b, 100);
	assert_int_equal(b.len, 0);
	assert_string_equal(b.data, "");
	buf_free(&b);
}

static void test_steal(void **state)
{
	struct buf b = BUF_INIT(0);
	size_t n;
	char *s;

	s = buf_steal(&b, &n); /* empty buffer still yields a string */
	assert_non_null(s);
	assert_string_equal(s, "");
	free(s);
	buf_append_str(&b, "abc");
	s = buf_steal(&b, &n);
	assert_string_equal(s, "abc");
	assert_int_equal(n, 3);
	assert_null(b.data);
	free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_append_and_printf),
		cmocka_unit_test(test_cap_refuses_without_change),
		cmocka_unit_test(test_consume),
		cmocka_unit_test(test_steal),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
