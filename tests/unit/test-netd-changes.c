/* netd/changes.c: the change set — file and sysctl diffing (a converged state plans
 * nothing), applying in order and stopping at the first failure, the printed and JSON
 * forms, and the command runner's error format. Runs in a temporary directory, no root. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cocoon/fsutil.h"
#include "cocoon/log.h"
#include "../../netd/netd.h"

static char *dir;

static int setup(void **state)
{
	dir = strdup("/tmp/test-netd-changes.XXXXXX");
	assert_non_null(mkdtemp(dir));
	log_set_max_level(LOG_ERR);
	return 0;
}

static int teardown(void **state)
{
	char *cmd = NULL;

	assert_true(asprintf(&cmd, "rm -rf '%s'", dir) > 0);
	assert_int_equal(system(cmd), 0);
	free(cmd);
	free(dir);
	return 0;
}

static char *path(const char *name)
{
	char *p = NULL;

	assert_true(asprintf(&p, "%s/%s", dir, name) > 0);
	return p;
}

static char *read_file(const char *p)
{
	char *s = NULL;

	assert_int_equal(fs_read_file(p, 1 << 20, &s, NULL), 0);
	return s;
}

static void test_plan_file(void **state)
{
	char *p = path("etc/dnsmasq-cni.d/cni0.conf"), *s;
	struct netd_changes ch = {};
	size_t applied = 0;
	struct stat st;

	/* Missing: a create, with the content as its detail. */
	assert_int_equal(netd_plan_file(&ch, p, "a=1\nb=2\n", 8, 0644, "dnsmasq config", NULL), 0);
	assert_int_equal(ch.n, 1);
	assert_int_equal(ch.items[0].kind, NETD_CHANGE_FILE);
	assert_non_null(strstr(ch.items[0].summary, "create dnsmasq config "));
	assert_non_null(strstr(ch.items[0].summary, "(2 lines, 0644)"));
	assert_string_equal(ch.items[0].detail, "a=1\nb=2\n");
	/* Planning touched nothing. */
	assert_int_equal(access(p, F_OK), -1);
	assert_int_equal(netd_changes_apply(&ch, NULL, &applied), 0);
	assert_int_equal(applied, 1);
	netd_changes_clear(&ch);
	s = read_file(p);
	assert_string_equal(s, "a=1\nb=2\n");
	free(s);
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0644);
	/* Same bytes and mode: converged, nothing planned. */
	assert_int_equal(netd_plan_file(&ch, p, "a=1\nb=2\n", 8, 0644, "dnsmasq config", NULL), 0);
	assert_int_equal(ch.n, 0);
	/* Other bytes, or another mode: an update. */
	assert_int_equal(netd_plan_file(&ch, p, "a=1\n", 4, 0644, "dnsmasq config", "short"), 0);
	assert_int_equal(ch.n, 1);
	assert_non_null(strstr(ch.items[0].summary, "update dnsmasq config "));
	assert_string_equal(ch.items[0].detail, "short");
	netd_changes_clear(&ch);
	assert_int_equal(chmod(p, 0600), 0);
	assert_int_equal(netd_plan_file(&ch, p, "a=1\nb=2\n", 8, 0644, "dnsmasq config", NULL), 0);
	assert_int_equal(ch.n, 1);
	netd_changes_clear(&ch);
	/* Removal: planned only when the file is there. */
	assert_int_equal(netd_plan_remove(&ch, p, "dnsmasq config"), 0);
	assert_int_equal(ch.n, 1);
	assert_int_equal(netd_changes_apply(&ch, NULL, NULL), 0);
	assert_int_equal(access(p, F_OK), -1);
	netd_changes_clear(&ch);
	assert_int_equal(netd_plan_remove(&ch, p, "dnsmasq config"), 0);
	assert_int_equal(ch.n, 0);
	free(p);
}

static void test_plan_sysctl(void **state)
{
	char *sys = path("sys"), *fwd = path("sys/net/ipv4/ip_forward"), *s;
	struct netd_changes ch = {};

	assert_int_equal(fs_mkdir_p(sys, 0755), 0);
	assert_int_equal(fs_mkdir_p(fwd, 0755), 0);
	assert_int_equal(rmdir(fwd), 0);
	assert_int_equal(fs_write_atomic(fwd, "0\n", 2, 0644), 0);
	assert_int_equal(netd_plan_sysctl(&ch, sys, "net.ipv4.ip_forward", "1", false), 0);
	assert_int_equal(ch.n, 1);
	assert_int_equal(ch.items[0].kind, NETD_CHANGE_SYSCTL);
	assert_string_equal(ch.items[0].summary, "net.ipv4.ip_forward = 1 (now 0)");
	assert_int_equal(netd_changes_apply(&ch, NULL, NULL), 0);
	netd_changes_clear(&ch);
	s = read_file(fwd);
	assert_string_equal(s, "1");
	free(s);
	/* Converged. */
	assert_int_equal(netd_plan_sysctl(&ch, sys, "net.ipv4.ip_forward", "1", false), 0);
	assert_int_equal(ch.n, 0);
	/* A key of a link still to be created is planned; an optional one is skipped. */
	assert_int_equal(netd_plan_sysctl(&ch, sys, "net.ipv4.conf.cni0.rp_filter", "0", false), 0);
	assert_int_equal(ch.n, 1);
	assert_string_equal(ch.items[0].summary,
			    "net.ipv4.conf.cni0.rp_filter = 0 (not present yet)");
	assert_int_equal(netd_plan_sysctl(&ch, sys, "net.ipv4.conf.ens4.rp_filter", "0", true), 0);
	assert_int_equal(ch.n, 1);
	/* Applying a key that still does not exist fails, naming it. */
	assert_int_equal(netd_changes_apply(&ch, NULL, NULL), -ENOENT);
	netd_changes_clear(&ch);
	free(sys);
	free(fwd);
}

static int apply_fail(const struct netd_change *c, char **ret_error)
{
	*ret_error = strdup("it broke");
	return -EIO;
}

static void test_apply_stops_and_prints(void **state)
{
	char *a = path("a"), *b = path("b"), *out = NULL;
	struct netd_changes ch = {};
	size_t applied = 9, len = 0;
	FILE *f;

	assert_int_equal(netd_plan_file(&ch, a, "x\n", 2, 0644, "first", NULL), 0);
	assert_non_null(
	    netd_changes_add(&ch, NETD_CHANGE_LINK, apply_fail, "create bridge %s", "cni0"));
	assert_int_equal(netd_plan_file(&ch, b, "y\n", 2, 0644, "second", NULL), 0);
	f = open_memstream(&out, &len);
	netd_changes_print(&ch, f, true);
	fclose(f);
	assert_non_null(strstr(out, "  file     create first "));
	assert_non_null(strstr(out, "      | x\n  link     create bridge cni0\n  file     create "
				    "second "));
	free(out);
	/* In order; the failure stops it and is counted out. */
	f = open_memstream(&out, &len);
	assert_int_equal(netd_changes_apply(&ch, f, &applied), -EIO);
	fclose(f);
	assert_int_equal(applied, 1);
	assert_int_equal(access(a, F_OK), 0);
	assert_int_equal(access(b, F_OK), -1);
	assert_non_null(strstr(out, "create first"));
	assert_null(strstr(out, "bridge"));
	free(out);
	netd_changes_clear(&ch);
	f = open_memstream(&out, &len);
	netd_changes_print(&ch, f, true);
	fclose(f);
	assert_string_equal(out, "  no changes\n");
	free(out);
	free(a);
	free(b);
}

static void test_json(void **state)
{
	struct netd_changes ch = {};
	char *argv[] = { "iptables", "-w",   "-t", "nat",     "-A",        "POSTROUTING", "!",
			 "-o",       "cni0", "-m", "comment", "--comment", "a b",         NULL };
	json_t *j;
	char *s;

	assert_non_null(netd_plan_command(&ch, NETD_CHANGE_RULE, argv, "append it"));
	j = netd_changes_to_json(&ch);
	s = json_dumps(j, JSON_COMPACT);
	assert_string_equal(s, "[{\"kind\":\"rule\",\"summary\":\"append it\",\"detail\":"
			       "\"iptables -w -t nat -A POSTROUTING ! -o cni0 -m comment --comment "
			       "'a b'\"}]");
	free(s);
	json_decref(j);
	netd_changes_clear(&ch);
}

static void test_run(void **state)
{
	char *ok[] = { "sh", "-c", "echo out", NULL };
	char *bad[] = { "sh", "-c", "echo partial; echo denied >&2; exit 3", "x", NULL };
	char *missing[] = { "no-such-cloud-cli-xyz", NULL };
	char *env_argv[] = { "sh", "-c", "echo $CRED", NULL };
	char *env[] = { "CRED=secret", NULL };
	char *out = NULL, *why = NULL;

	assert_int_equal(netd_run(ok, NULL, &out, &why), 0);
	assert_string_equal(out, "out\n");
	free(out);
	assert_int_equal(netd_run(env_argv, env, &out, &why), 0);
	assert_string_equal(out, "secret\n");
	free(out);
	/* "<cli> <first 3 args>: <status>: <output>", as the original formats it. */
	assert_int_equal(netd_run(bad, NULL, NULL, &why), -EIO);
	assert_string_equal(why, "sh -c echo partial; echo denied >&2; exit 3 x: exit status 3: "
				 "denied\npartial");
	free(why);
	assert_int_equal(netd_run(missing, NULL, NULL, &why), -ENOENT);
	assert_string_equal(why, "no-such-cloud-cli-xyz: not found in $PATH");
	free(why);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plan_file),
		cmocka_unit_test(test_plan_sysctl),
		cmocka_unit_test(test_apply_stops_and_prints),
		cmocka_unit_test(test_json),
		cmocka_unit_test(test_run),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
