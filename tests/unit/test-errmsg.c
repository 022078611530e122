/* errmsg: the message is formatted for the caller, the error comes back negative either way. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <errno.h>
#include <stdlib.h>

#include "cocoon/errmsg.h"

static void test_sets_message_and_returns_negative(void **state)
{
	char *err = NULL;

	assert_int_equal(errmsg_set(&err, EINVAL, "field %s: %d is out of range", "port", 70000),
			 -EINVAL);
	assert_string_equal(err, "field port: 70000 is out of range");
	free(err);
	err = NULL;
	/* negative errors are accepted as they are */
	assert_int_equal(errmsg_set(&err, -EBADMSG, "entry %u", 3u), -EBADMSG);
	assert_string_equal(err, "entry 3");
	free(err);
}

static void test_null_destination(void **state)
{
	assert_int_equal(errmsg_set(NULL, ENOENT, "not %s", "found"), -ENOENT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sets_message_and_returns_negative),
		cmocka_unit_test(test_null_destination),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
