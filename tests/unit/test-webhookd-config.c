/* webhookd's environment table: every default parses, and the documented defaults hold. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdlib.h>

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
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
