/* Fuzz the `iptables -S` parser (netd/iptables.c). Properties, any violation aborts:
 *   - a parsed rule written back in iptables-save quoting parses to an equal rule with the
 *     same delete spec (what reconcile deletes is what it read);
 *   - diffing the rules against themselves plans no additions, and deletes only duplicate
 *     cocoon-net rules;
 *   - diffing against nothing (teardown) deletes exactly the rules with a cocoon-net
 *     comment. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cocoon/buf.h"
#include "../../netd/netd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* One token as iptables-save quotes it. */
static void quote(struct buf *b, const char *t)
{
	if (*t && !strpbrk(t, " \t\"\\")) {
		if (buf_append_str(b, t) < 0)
			abort();
		return;
	}
	if (buf_append_str(b, "\"") < 0)
		abort();
	for (; *t; t++) {
		if ((*t == '"' || *t == '\\') && buf_append_str(b, "\\") < 0)
			abort();
		if (buf_append(b, t, 1) < 0)
			abort();
	}
	if (buf_append_str(b, "\"") < 0)
		abort();
}

static bool ours(const struct netd_ipt_rule *r)
{
	return r->comment &&
	       (streq(r->comment, NETD_IPT_COMMENT) || streq(r->comment, NETD_IPT_COMMENT_DROP));
}

static void check_round_trip(const struct netd_ipt_rule *r)
{
	struct netd_ipt_rules again = {};
	struct buf b = BUF_INIT(0);
	char *why = NULL;

	if (buf_append_str(&b, "-A ") < 0)
		abort();
	quote(&b, r->chain);
	for (size_t i = 0; r->args[i]; i++) {
		if (buf_append_str(&b, " ") < 0)
			abort();
		quote(&b, r->args[i]);
	}
	if (netd_ipt_parse(r->table, b.data, b.len, &again, &why) < 0 || again.n != 1 ||
	    !netd_ipt_rule_equal(r, &again.items[0]) ||
	    !strv_equal(r->args, again.items[0].args))
		abort();
	free(why);
	netd_ipt_rules_clear(&again);
	buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct netd_ipt_rules l = {};
	struct netd_changes ch = {};
	size_t n_ours = 0;
	char *why = NULL;

	if (netd_ipt_parse("filter", (const char *)data, size, &l, &why) < 0) {
		if (!why)
			abort(); /* every refusal says why */
		free(why);
		netd_ipt_rules_clear(&l);
		return 0;
	}
	for (size_t i = 0; i < l.n; i++) {
		check_round_trip(&l.items[i]);
		n_ours += ours(&l.items[i]);
	}
	if (netd_ipt_diff(&l, &l, &ch) < 0)
		abort();
	for (size_t i = 0; i < ch.n; i++)
		if (strncmp(ch.items[i].summary, "delete ", 7) != 0)
			abort();
	netd_changes_clear(&ch);
	if (netd_ipt_diff(&l, NULL, &ch) < 0 || ch.n != n_ours)
		abort();
	netd_changes_clear(&ch);
	netd_ipt_rules_clear(&l);
	return 0;
}
