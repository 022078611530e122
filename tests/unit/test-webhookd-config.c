/* webhookd's environment table: every default parses, and the documented defaults hold. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../../webhookd/webhookd.h"

static void test_defaults_parse(void **state)
{
	char *err = NULL;

	for (size_t i = 0; i < webhookd_conf_vars_len; i++)
		unsetenv(webhookd_conf_vars[i].name);
	assert_int_equal(conf_load(webhookd_conf_vars, webhookd_conf_vars_len, &err), 0);
	assert_null(err);
	assert_string_equal(webhookd_config.listen_addr, ":8443");
	assert_string_equal(webhookd_config.metrics_addr, ":9090");
	assert_string_equal(webhookd_config.tls_cert, "/etc/cocoon/webhook/certs/tls.crt");
	assert_string_equal(webhookd_config.tls_key, "/etc/cocoon/webhook/certs/tls.key");
	assert_int_equal(webhookd_config.log_level, 6);
	assert_int_equal(webhookd_config.reaper_interval_usec, 5 * 60 * 1000000ULL);
	assert_int_equal(webhookd_config.reaper_grace_usec, 30 * 60 * 1000000ULL);
	assert_null(webhookd_config.kubeconfig);
}

static void test_reaper_durations(void **state)
{
	char *err = NULL;

	setenv("REAPER_INTERVAL", "1s", 1);
	setenv("REAPER_GRACE", "1h30m", 1);
	assert_int_equal(conf_load(webhookd_conf_vars, webhookd_conf_vars_len, &err), 0);
	assert_int_equal(webhookd_config.reaper_interval_usec, 1000000ULL);
	assert_int_equal(webhookd_config.reaper_grace_usec, 90 * 60 * 1000000ULL);
	setenv("REAPER_GRACE", "soon", 1);
	assert_int_equal(conf_load(webhookd_conf_vars, webhookd_conf_vars_len, &err), -EINVAL);
	assert_non_null(strstr(err, "REAPER_GRACE=\"soon\""));
	free(err);
	unsetenv("REAPER_INTERVAL");
	unsetenv("REAPER_GRACE");
}

static void test_every_variable_has_help(void **state)
{
	for (size_t i = 0; i < webhookd_conf_vars_len; i++) {
		assert_non_null(webhookd_conf_vars[i].help);
		assert_non_null(webhookd_conf_vars[i].type);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults_parse),
		cmocka_unit_test(test_every_variable_has_help),
		cmocka_unit_test(test_reaper_durations),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
