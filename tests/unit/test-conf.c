/* conf: every parser's accept/reject table, aliases, defaults, error messages, --help. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "cocoon/conf.h"

static void test_duration(void **state)
{
	static const struct {
		const char *in;
		uint64_t usec;
	} ok[] = {
		{ "0", 0 },
		{ "30s", 30000000 },
		{ "5m", 300000000 },
		{ "1h30m", 5400000000ULL },
		{ "1.5h", 5400000000ULL },
		{ "300ms", 300000 },
		{ "10us", 10 },
		{ "2h45m10s", 9910000000ULL },
	};
	static const char *const bad[] = {
		"", "5", "m", "5 m", "5min", "-5s", "1d", "5s ", "1e400h"
	};
	uint64_t u;

	for (size_t i = 0; i < ELEMENTSOF(ok); i++) {
		assert_int_equal(conf_parse_duration(ok[i].in, &u), 0);
		assert_int_equal(u, ok[i].usec);
	}
	for (size_t i = 0; i < ELEMENTSOF(bad); i++)
		assert_true(conf_parse_duration(bad[i], &u) < 0);
}

static void test_listen(void **state)
{
	char *host = NULL;
	uint16_t port;

	assert_int_equal(conf_parse_listen(":8443", &host, &port), 0);
	assert_string_equal(host, "");
	assert_int_equal(port, 8443);
	free(host);
	assert_int_equal(conf_parse_listen("127.0.0.1:9090", &host, &port), 0);
	assert_string_equal(host, "127.0.0.1");
	free(host);
	assert_int_equal(conf_parse_listen("[::1]:10250", &host, &port), 0);
	assert_string_equal(host, "::1");
	assert_int_equal(port, 10250);
	free(host);
	assert_true(conf_parse_listen("8443", NULL, NULL) < 0);
	assert_int_equal(conf_parse_listen(":0", NULL, &port), 0);
	assert_int_equal(port, 0);
	assert_true(conf_parse_listen(":65536", NULL, NULL) < 0);
	assert_true(conf_parse_listen("::1:80", NULL, NULL) < 0);
	assert_true(conf_parse_listen("[]:80", NULL, NULL) < 0);
	assert_true(conf_parse_listen("host:", NULL, NULL) < 0);
	assert_true(conf_parse_listen("foo]:80", NULL, NULL) < 0);
	assert_true(conf_parse_listen("a b:80", NULL, NULL) < 0);
	assert_true(conf_parse_listen("[::1 ]:80", NULL, NULL) < 0);
	assert_true(conf_parse_listen("[%1]:80", NULL, NULL) < 0);
	{
		char longhost[300];
		memset(longhost, 'a', 254);
		strcpy(longhost + 254, ":80");
		assert_true(conf_parse_listen(longhost, NULL, NULL) < 0);
		strcpy(longhost + 253, ":80");
		assert_int_equal(conf_parse_listen(longhost + 1, NULL, NULL), 0);
	}
	assert_true(conf_parse_listen("[localhost]:80", NULL, NULL) < 0);
	assert_int_equal(conf_parse_listen("[fe80::1%eth0]:80", NULL, NULL), 0);
	assert_int_equal(conf_parse_listen("node-1.example.com:80", NULL, NULL), 0);
}

static const char *const modes[] = { "clone", "run", NULL };
static const struct conf_range ports = { 1, 65535 };
static const char *addr, *url, *mode;
static uint64_t grace;
static int64_t port;
static bool flag;
static int level;

static const struct conf_var vars[] = {
	{ "T_ADDR", NULL, ":8443", &conf_listen, &addr, NULL, "Admission listener.", "addr" },
	{ "T_GRACE", NULL, "30m", &conf_duration, &grace, NULL, "Grace period." },
	{ "T_PORT", NULL, "22", &conf_int, &port, &ports, "A port." },
	{ "T_FLAG", "T_OLD_FLAG", "false", &conf_bool, &flag, NULL, "A flag.", "flag" },
	{ "T_LEVEL", NULL, "info", &conf_log_level, &level, NULL, "Log level." },
	{ "T_URL", NULL, NULL, &conf_url, &url, NULL, "Registry." },
	{ "T_MODE", NULL, "clone", &conf_enum, &mode, modes, "Mode." },
};

static int reset(void **state)
{
	static const char *const names[] = { "T_ADDR",     "T_GRACE", "T_PORT", "T_FLAG",
					     "T_OLD_FLAG", "T_LEVEL", "T_URL",  "T_MODE" };
	for (size_t i = 0; i < ELEMENTSOF(names); i++)
		unsetenv(names[i]);
	addr = url = mode = NULL;
	return 0;
}

static void test_defaults(void **state)
{
	char *err = NULL;

	assert_int_equal(conf_load(vars, ELEMENTSOF(vars), &err), 0);
	assert_string_equal(addr, ":8443");
	assert_int_equal(grace, 1800000000ULL);
	assert_int_equal(port, 22);
	assert_false(flag);
	assert_int_equal(level, 6);
	assert_null(url);
	assert_string_equal(mode, "clone");
}

static void test_values_and_alias(void **state)
{
	char *err = NULL;

	setenv("T_OLD_FLAG", "yes", 1);
	setenv("T_URL", "https://epoch.example:8443/x", 1);
	setenv("T_MODE", "run", 1);
	setenv("T_GRACE", "", 1); /* empty counts as unset */
	assert_int_equal(conf_load(vars, ELEMENTSOF(vars), &err), 0);
	assert_true(flag);
	assert_string_equal(url, "https://epoch.example:8443/x");
	assert_string_equal(mode, "run");
	assert_int_equal(grace, 1800000000ULL);
	/* the current name wins over the alias */
	setenv("T_FLAG", "false", 1);
	assert_int_equal(conf_load(vars, ELEMENTSOF(vars), &err), 0);
	assert_false(flag);
}

static void expect_error(const char *var, const char *val, const char *msg)
{
	char *err = NULL;

	reset(NULL);
	setenv(var, val, 1);
	assert_int_equal(conf_load(vars, ELEMENTSOF(vars), &err), -EINVAL);
	assert_non_null(err);
	assert_string_equal(err, msg);
	free(err);
}

static void test_errors_name_variable_value_and_expectation(void **state)
{
	expect_error(
	    "T_GRACE", "30 minutes",
	    "invalid T_GRACE=\"30 minutes\": expected a duration such as 30s, 5m or 1h30m");
	expect_error("T_PORT", "70000",
		     "invalid T_PORT=\"70000\": expected an integer from 1 to 65535");
	expect_error("T_OLD_FLAG", "maybe", "invalid T_OLD_FLAG=\"maybe\": expected true or false");
	expect_error("T_LEVEL", "chatty",
		     "invalid T_LEVEL=\"chatty\": expected a log level (debug, info, notice, "
		     "warning, error)");
	expect_error("T_URL", "ftp://x",
		     "invalid T_URL=\"ftp://x\": expected an http:// or "
		     "https:// URL");
	expect_error("T_MODE", "static", "invalid T_MODE=\"static\": expected one of clone, run");
	expect_error("T_ADDR", "8443",
		     "invalid T_ADDR=\"8443\": expected a listen address such as :8443, "
		     "127.0.0.1:8443 or [::1]:8443");
}

static void test_help_lists_every_variable(void **state)
{
	char *out = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);

	conf_print_help(f, "testd", "Does things.", vars, ELEMENTSOF(vars));
	fclose(f);
	for (size_t i = 0; i < ELEMENTSOF(vars); i++)
		assert_non_null(strstr(out, vars[i].name));
	assert_non_null(strstr(out, "default: 30m"));
	assert_non_null(strstr(out, "also read from T_OLD_FLAG"));
	assert_non_null(strstr(out, "Usage: testd"));
	free(out);
}

static void test_handle_args(void **state)
{
	char *help[] = { "testd", "--help", NULL };
	char *bad[] = { "testd", "--frobnicate", NULL };
	char *extra[] = { "testd", "positional", NULL };
	char *none[] = { "testd", NULL };
	FILE *saved = stdout;

	stdout = fopen("/dev/null", "w");
	assert_int_equal(conf_handle_args(2, help, "x", vars, ELEMENTSOF(vars)), 1);
	fclose(stdout);
	stdout = saved;
	assert_int_equal(conf_handle_args(2, bad, "x", vars, ELEMENTSOF(vars)), -EINVAL);
	assert_int_equal(conf_handle_args(2, extra, "x", vars, ELEMENTSOF(vars)), -EINVAL);
	assert_int_equal(conf_handle_args(1, none, "x", vars, ELEMENTSOF(vars)), 0);
}

/* Flags set their variable and win over the environment; a boolean flag alone is true; a
 * value-taking flag without a value is a usage error. */
static void test_flags(void **state)
{
	char *set[] = { "testd", "--addr=:9000", "--flag", NULL };
	char *split[] = { "testd", "--addr", "127.0.0.1:7000", "--flag=false", NULL };
	char *missing[] = { "testd", "--addr", NULL };
	char *err = NULL;

	setenv("T_ADDR", ":1234", 1);
	assert_int_equal(conf_handle_args(3, set, "x", vars, ELEMENTSOF(vars)), 0);
	assert_int_equal(conf_load(vars, ELEMENTSOF(vars), &err), 0);
	assert_string_equal(addr, ":9000");
	assert_true(flag);
	assert_int_equal(conf_handle_args(4, split, "x", vars, ELEMENTSOF(vars)), 0);
	assert_int_equal(conf_load(vars, ELEMENTSOF(vars), &err), 0);
	assert_string_equal(addr, "127.0.0.1:7000");
	assert_false(flag);
	assert_int_equal(conf_handle_args(2, missing, "x", vars, ELEMENTSOF(vars)), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_duration),
		cmocka_unit_test(test_listen),
		cmocka_unit_test_setup(test_defaults, reset),
		cmocka_unit_test_setup(test_values_and_alias, reset),
		cmocka_unit_test_setup(test_errors_name_variable_value_and_expectation, reset),
		cmocka_unit_test_setup(test_help_lists_every_variable, reset),
		cmocka_unit_test_setup(test_handle_args, reset),
		cmocka_unit_test_setup(test_flags, reset),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
