/* log: level parsing, filtering, journald prefixes, %m and the _errno return value. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cocoon/log.h"

static char *captured;
static size_t captured_len;
static FILE *capture;

static int setup(void **state)
{
	capture = open_memstream(&captured, &captured_len);
	log_set_stream(capture);
	log_set_program("unit");
	log_set_max_level(LOG_INFO);
	return 0;
}

static int teardown(void **state)
{
	log_set_stream(NULL);
	fclose(capture);
	free(captured);
	captured = NULL;
	log_set_target(LOG_TARGET_AUTO);
	unsetenv("JOURNAL_STREAM");
	unsetenv("TEST_LOG_LEVEL");
	return 0;
}

static const char *output(void)
{
	fflush(capture);
	return captured ? captured : "";
}

static void test_level_from_string(void **state)
{
	assert_int_equal(log_level_from_string("debug"), LOG_DEBUG);
	assert_int_equal(log_level_from_string("INFO"), LOG_INFO);
	assert_int_equal(log_level_from_string("warn"), LOG_WARNING);
	assert_int_equal(log_level_from_string("warning"), LOG_WARNING);
	assert_int_equal(log_level_from_string("error"), LOG_ERR);
	assert_int_equal(log_level_from_string("err"), LOG_ERR);
	assert_int_equal(log_level_from_string("3"), LOG_ERR);
	assert_int_equal(log_level_from_string("verbose"), -EINVAL);
	assert_int_equal(log_level_from_string(""), -EINVAL);
	assert_int_equal(log_level_from_string("8"), -EINVAL);
	assert_string_equal(log_level_to_string(LOG_WARNING), "warning");
	assert_null(log_level_to_string(9));
}

static void test_setup_from_env(void **state)
{
	setenv("TEST_LOG_LEVEL", "debug", 1);
	assert_int_equal(log_setup("TEST_LOG_LEVEL"), 0);
	assert_int_equal(log_get_max_level(), LOG_DEBUG);
	setenv("TEST_LOG_LEVEL", "chatty", 1);
	assert_int_equal(log_setup("TEST_LOG_LEVEL"), -EINVAL);
	assert_int_equal(log_get_max_level(), LOG_DEBUG); /* unchanged */
	unsetenv("TEST_LOG_LEVEL");
	assert_int_equal(log_setup("TEST_LOG_LEVEL"), 0);
}

static void test_filtering(void **state)
{
	log_set_target(LOG_TARGET_CONSOLE);
	log_debug("hidden %d", 1);
	assert_string_equal(output(), "");
	log_info("shown %d", 2);
	assert_non_null(strstr(output(), "info    unit: shown 2\n"));
}

static void test_journal_prefix(void **state)
{
	log_set_target(LOG_TARGET_JOURNAL);
	log_warning("disk %s", "full");
	assert_string_equal(output(), "<4>disk full\n");
}

static void test_journal_autodetect(void **state)
{
	struct stat st;
	char v[64];

	assert_int_equal(fstat(STDERR_FILENO, &st), 0);
	snprintf(v, sizeof v, "%llu:%llu", (unsigned long long)st.st_dev,
		 (unsigned long long)st.st_ino);
	setenv("JOURNAL_STREAM", v, 1);
	log_set_target(LOG_TARGET_AUTO);
	assert_int_equal(log_get_target(), LOG_TARGET_JOURNAL);
	setenv("JOURNAL_STREAM", "1:2", 1);
	log_set_target(LOG_TARGET_AUTO);
	assert_int_equal(log_get_target(), LOG_TARGET_CONSOLE);
}

static void test_errno_variant(void **state)
{
	int r;

	log_set_target(LOG_TARGET_JOURNAL);
	errno = 0;
	r = log_error_errno(ENOENT, "open %s: %m", "x");
	assert_int_equal(r, -ENOENT);
	assert_string_equal(output(), "<3>open x: No such file or directory\n");
	/* negative errors are accepted too, and filtered messages still return the error */
	r = log_debug_errno(-EIO, "nobody sees this");
	assert_int_equal(r, -EIO);
	assert_string_equal(output(), "<3>open x: No such file or directory\n");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_level_from_string, setup, teardown),
		cmocka_unit_test_setup_teardown(test_setup_from_env, setup, teardown),
		cmocka_unit_test_setup_teardown(test_filtering, setup, teardown),
		cmocka_unit_test_setup_teardown(test_journal_prefix, setup, teardown),
		cmocka_unit_test_setup_teardown(test_journal_autodetect, setup, teardown),
		cmocka_unit_test_setup_teardown(test_errno_variant, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
