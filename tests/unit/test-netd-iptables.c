/* netd/iptables.c: `iptables -S` parsing (quotes, negation, comments, malformed lines with
 * their line numbers), the rules a pool wants, and the diff that reconciles them — adding
 * what is missing, deleting only cocoon-net's own stale rules. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "cocoon/buf.h"
#include "../../netd/netd.h"

static void parse(const char *table, const char *text, struct netd_ipt_rules *l)
{
	char *why = NULL;

	assert_int_equal(netd_ipt_parse(table, text, strlen(text), l, &why), 0);
	assert_null(why);
}

static void test_parse(void **state)
{
	struct netd_ipt_rules l = {};
	const struct netd_ipt_rule *r;

	parse("filter",
	      "-P FORWARD DROP\n"
	      "-N DOCKER\n"
	      "-A FORWARD -d 10.0.0.0/8 -i cni0 -m comment --comment cocoon-net-drop -j DROP\n"
	      "\n"
	      "-A FORWARD ! -s 192.168.0.0/16 -o eth1 -p tcp -m tcp --dport 22 -j ACCEPT\n"
	      "-A FORWARD -m comment --comment \"an \\\"operator\\\" rule\" -j DOCKER\n",
	      &l);
	assert_int_equal(l.n, 3);
	r = &l.items[0];
	assert_string_equal(r->table, "filter");
	assert_string_equal(r->chain, "FORWARD");
	assert_string_equal(r->dst, "10.0.0.0/8");
	assert_string_equal(r->in, "cni0");
	assert_null(r->src);
	assert_string_equal(r->comment, "cocoon-net-drop");
	assert_string_equal(r->jump, "DROP");
	assert_int_equal(strv_length(r->rest), 0);
	/* The delete spec is the tokens after "-A FORWARD", unchanged. */
	assert_int_equal(strv_length(r->args), 10);
	assert_string_equal(r->args[0], "-d");
	r = &l.items[1];
	assert_string_equal(r->src, "!192.168.0.0/16");
	assert_string_equal(r->out, "eth1");
	assert_null(r->comment);
	assert_int_equal(strv_length(r->rest), 6);
	assert_string_equal(r->rest[0], "-p");
	assert_string_equal(r->rest[5], "22");
	r = &l.items[2];
	assert_string_equal(r->comment, "an \"operator\" rule");
	assert_string_equal(r->args[3], "an \"operator\" rule");
	netd_ipt_rules_clear(&l);
}

static void expect_error(const char *text, const char *want)
{
	struct netd_ipt_rules l = {};
	char *why = NULL;

	assert_int_equal(netd_ipt_parse("filter", text, strlen(text), &l, &why), -EINVAL);
	assert_non_null(why);
	assert_string_equal(why, want);
	free(why);
	netd_ipt_rules_clear(&l);
}

static void test_parse_errors(void **state)
{
	expect_error("-P FORWARD ACCEPT\n-A FORWARD -j ACCEPT\n-A FORWARD -m comment --comment "
		     "\"open\n",
		     "line 3: unterminated quote");
	expect_error("-X FORWARD\n", "line 1: expected -P, -N or -A, got \"-X\"");
	expect_error("-A\n", "line 1: -A without a chain");
	expect_error("-A FORWARD -s\n", "line 1: -s without a value");
	expect_error("-A FORWARD -i a -i b\n", "line 1: -i given twice");
	expect_error("-A FORWARD -j ACCEPT !\n", "line 1: \"!\" at the end of the rule");
	expect_error("-A FORWARD -m comment --comment\n", "line 1: --comment without a value");
}

/* Same meaning, another option order: equal. */
static void test_rule_equal(void **state)
{
	struct netd_ipt_rules a = {}, b = {};

	parse("filter", "-A FORWARD -i cni0 -d 10.0.0.0/8 -m comment --comment x -j DROP\n", &a);
	parse("filter", "-A FORWARD -d 10.0.0.0/8 -m comment --comment x -i cni0 -j DROP\n", &b);
	assert_true(netd_ipt_rule_equal(&a.items[0], &b.items[0]));
	netd_ipt_rules_clear(&b);
	parse("filter", "-A FORWARD ! -d 10.0.0.0/8 -i cni0 -m comment --comment x -j DROP\n", &b);
	assert_false(netd_ipt_rule_equal(&a.items[0], &b.items[0]));
	netd_ipt_rules_clear(&b);
	parse("nat", "-A FORWARD -d 10.0.0.0/8 -i cni0 -m comment --comment x -j DROP\n", &b);
	assert_false(netd_ipt_rule_equal(&a.items[0], &b.items[0]));
	netd_ipt_rules_clear(&a);
	netd_ipt_rules_clear(&b);
}

static struct netd_pool *pool(bool drop_internal, const char *const *drops, bool volc)
{
	struct netd_pool *p = NULL;

	assert_int_equal(netd_pool_new(&p), 0);
	p->platform = strdup("gke");
	p->subnet = strdup("172.20.0.0/24");
	p->gateway = strdup("172.20.0.1");
	p->drop_internal_access = drop_internal;
	for (size_t i = 0; drops && drops[i]; i++)
		assert_int_equal(strv_push(&p->drop_cidrs, drops[i]), 0);
	if (volc)
		p->secondary_nics = strv_new("eth1", NULL);
	return p;
}

/* The rules, in `iptables -S` form as a table and chain, one per line. */
static char *show(const struct netd_ipt_rules *l)
{
	struct buf b = BUF_INIT(0);

	for (size_t i = 0; i < l->n; i++) {
		char *s = NULL;

		assert_int_equal(netd_argv_to_string(l->items[i].args, &s), 0);
		assert_int_equal(
		    buf_printf(&b, "%s %s %s\n", l->items[i].table, l->items[i].chain, s), 0);
		free(s);
	}
	return buf_steal(&b, NULL);
}

static void test_desired(void **state)
{
	struct netd_pool *p =
	    pool(true, (const char *const[]){ "10.1.2.3/8", "10.0.0.0/8", NULL }, true);
	struct netd_ipt_rules l = {};
	char *why = NULL, *s;

	assert_int_equal(netd_ipt_desired(p, &l, &why), 0);
	s = show(&l);
	/* Drop targets canonical and de-duplicated (§1.5). */
	assert_string_equal(
	    s, "filter FORWARD -i eth1 -o cni0 -m comment --comment cocoon-net -j ACCEPT\n"
	       "filter FORWARD -i cni0 -o eth1 -m comment --comment cocoon-net -j ACCEPT\n"
	       "filter FORWARD -i cni0 -o cni0 -m comment --comment cocoon-net -j ACCEPT\n"
	       "nat POSTROUTING -s 172.20.0.0/24 ! -o cni0 -m comment --comment cocoon-net -j "
	       "MASQUERADE\n"
	       "filter FORWARD -d 172.20.0.0/24 -i cni0 -m comment --comment cocoon-net-drop "
	       "-j DROP\n"
	       "filter FORWARD -d 10.0.0.0/8 -i cni0 -m comment --comment cocoon-net-drop -j "
	       "DROP\n");
	free(s);
	netd_ipt_rules_clear(&l);
	netd_pool_free(p);
	/* A bad target fails before anything, naming the flag and value. */
	p = pool(false, (const char *const[]){ "10.0.0.0/8", "fd00::/8", NULL }, false);
	assert_int_equal(netd_ipt_desired(p, &l, &why), -EINVAL);
	assert_string_equal(why, "--drop-cidr fd00::/8: IPv6 is not supported");
	free(why);
	why = NULL;
	netd_pool_free(p);
	p = pool(false, (const char *const[]){ "10.0.0.300/8", NULL }, false);
	assert_int_equal(netd_ipt_desired(p, &l, &why), -EINVAL);
	assert_string_equal(why, "--drop-cidr 10.0.0.300/8: not an IPv4 CIDR (a.b.c.d/n)");
	free(why);
	netd_pool_free(p);
}

/* The planned commands, one per line. */
static char *commands(const struct netd_changes *ch)
{
	struct buf b = BUF_INIT(0);

	for (size_t i = 0; i < ch->n; i++) {
		assert_int_equal(ch->items[i].kind, NETD_CHANGE_RULE);
		assert_int_equal(buf_printf(&b, "%s\n", ch->items[i].detail), 0);
	}
	return buf_steal(&b, NULL);
}

static void test_diff(void **state)
{
	struct netd_pool *p = pool(false, (const char *const[]){ "10.0.0.0/8", NULL }, false);
	struct netd_ipt_rules want = {}, have = {};
	struct netd_changes ch = {};
	char *why = NULL, *s;

	assert_int_equal(netd_ipt_desired(p, &want, &why), 0);
	/* A stale drop of ours, a duplicate of ours, an operator's look-alike without our
	 * comment, and one wanted rule already there. */
	parse("filter",
	      "-P FORWARD ACCEPT\n"
	      "-A FORWARD -d 192.168.0.0/16 -i cni0 -m comment --comment cocoon-net-drop -j DROP\n"
	      "-A FORWARD -i cni0 -o cni0 -m comment --comment cocoon-net -j ACCEPT\n"
	      "-A FORWARD -i cni0 -o cni0 -m comment --comment cocoon-net -j ACCEPT\n"
	      "-A FORWARD -i cni0 -o cni0 -j ACCEPT\n",
	      &have);
	parse("nat", "-P POSTROUTING ACCEPT\n-A POSTROUTING -o eth0 -j MASQUERADE\n", &have);
	assert_int_equal(netd_ipt_diff(&have, &want, &ch), 0);
	s = commands(&ch);
	assert_string_equal(s, "iptables -w -t filter -D FORWARD -d 192.168.0.0/16 -i cni0 -m "
			       "comment --comment cocoon-net-drop -j DROP\n"
			       "iptables -w -t filter -D FORWARD -i cni0 -o cni0 -m comment "
			       "--comment cocoon-net -j ACCEPT\n"
			       "iptables -w -t nat -A POSTROUTING -s 172.20.0.0/24 ! -o cni0 -m "
			       "comment --comment cocoon-net -j MASQUERADE\n"
			       "iptables -w -t filter -I FORWARD 1 -d 10.0.0.0/8 -i cni0 -m "
			       "comment --comment cocoon-net-drop -j DROP\n");
	free(s);
	assert_string_equal(ch.items[3].summary, "insert filter FORWARD -d 10.0.0.0/8 -i cni0 -m "
						 "comment --comment cocoon-net-drop -j DROP");
	netd_changes_clear(&ch);
	/* Converged: nothing to do. */
	netd_ipt_rules_clear(&have);
	parse("filter",
	      "-A FORWARD -d 10.0.0.0/8 -i cni0 -m comment --comment cocoon-net-drop -j DROP\n"
	      "-A FORWARD -i cni0 -o cni0 -m comment --comment cocoon-net -j ACCEPT\n"
	      "-A FORWARD -i cni0 -o cni0 -j ACCEPT\n",
	      &have);
	parse("nat",
	      "-A POSTROUTING -s 172.20.0.0/24 ! -o cni0 -m comment --comment cocoon-net -j "
	      "MASQUERADE\n",
	      &have);
	assert_int_equal(netd_ipt_diff(&have, &want, &ch), 0);
	assert_int_equal(ch.n, 0);
	/* Teardown (nothing desired): only our three rules go. */
	assert_int_equal(netd_ipt_diff(&have, NULL, &ch), 0);
	assert_int_equal(ch.n, 3);
	for (size_t i = 0; i < ch.n; i++) {
		assert_non_null(strstr(ch.items[i].detail, " -D "));
		assert_non_null(strstr(ch.items[i].detail, "--comment cocoon-net"));
	}
	netd_changes_clear(&ch);
	netd_ipt_rules_clear(&have);
	netd_ipt_rules_clear(&want);
	netd_pool_free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse),      cmocka_unit_test(test_parse_errors),
		cmocka_unit_test(test_rule_equal), cmocka_unit_test(test_desired),
		cmocka_unit_test(test_diff),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
