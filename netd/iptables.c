/* iptables for node setup (net-epoch-runtime.md §1.5 step 3): the rules a pool wants, the
 * live rules read back from `iptables -S`, and the diff between them as change-set items.
 *
 * Rules are compared by meaning (source, destination, interfaces, comment, target and the
 * remaining tokens), not by text, because `iptables -S` prints options in its own order.
 * Every rule cocoon-net adds carries a comment: "cocoon-net-drop" on the DROP rules (the
 * original's), "cocoon-net" on the ACCEPT and MASQUERADE rules. Reconcile deletes rules with
 * those comments that the pool no longer wants, and never touches an operator's rules. The
 * binary is run (not libiptc) so the nft and legacy backends both work. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cocoon/buf.h"
#include "cocoon/log.h"
#include "cocoon/errmsg.h"
#include "netd.h"

/* iptables -S of two chains on a busy host stays far below this. */
#define IPT_LINE_TOKENS_MAX 256

void netd_ipt_rule_done(struct netd_ipt_rule *r)
{
	free(r->table);
	free(r->chain);
	strv_free(r->args);
	free(r->src);
	free(r->dst);
	free(r->in);
	free(r->out);
	free(r->comment);
	free(r->jump);
	strv_free(r->rest);
	*r = (struct netd_ipt_rule){};
}

void netd_ipt_rules_clear(struct netd_ipt_rules *l)
{
	for (size_t i = 0; i < l->n; i++)
		netd_ipt_rule_done(&l->items[i]);
	free(l->items);
	*l = (struct netd_ipt_rules){};
}

static struct netd_ipt_rule *rules_push(struct netd_ipt_rules *l)
{
	if (l->n == l->alloc) {
		size_t na = l->alloc ? l->alloc * 2 : 16;
		struct netd_ipt_rule *ni = reallocarray(l->items, na, sizeof(*ni));

		if (!ni)
			return NULL;
		l->items = ni;
		l->alloc = na;
	}
	l->items[l->n] = (struct netd_ipt_rule){};
	return &l->items[l->n++];
}

/* Split one line as iptables-save quotes it: blanks separate tokens, "…" groups with \" and
 * \\ escapes inside. */
static int tokenize(const char *line, size_t len, char ***ret, char **ret_error)
{
	_cleanup_(strv_freep) char **l = calloc(1, sizeof(char *));
	struct buf tok = BUF_INIT(0);
	size_t i = 0, n = 0;
	int r = 0;

	if (!l)
		return -ENOMEM;
	while (i < len) {
		bool quoted = false;

		while (i < len && (line[i] == ' ' || line[i] == '\t'))
			i++;
		if (i >= len)
			break;
		if (++n > IPT_LINE_TOKENS_MAX) {
			r = errmsg_set(ret_error, EINVAL, "more than %d words", IPT_LINE_TOKENS_MAX);
			break;
		}
		buf_reset(&tok);
		r = buf_append(&tok, "", 0);
		while (r >= 0 && i < len && (quoted || (line[i] != ' ' && line[i] != '\t'))) {
			char c = line[i++];

			if (c == '"')
				quoted = !quoted;
			else if (quoted && c == '\\' && i < len &&
				 (line[i] == '"' || line[i] == '\\'))
				r = buf_append(&tok, &line[i++], 1);
			else if (c == '\0')
				r = errmsg_set(ret_error, EINVAL, "NUL byte");
			else
				r = buf_append(&tok, &c, 1);
		}
		if (r >= 0 && quoted)
			r = errmsg_set(ret_error, EINVAL, "unterminated quote");
		if (r >= 0)
			r = strv_push(&l, tok.data);
		if (r < 0)
			break;
	}
	buf_free(&tok);
	if (r < 0)
		return r;
	*ret = TAKE_PTR(l);
	return 0;
}

static int set_opt(char **field, const char *opt, bool neg, char *const *tok, size_t *i,
		   char **ret_error)
{
	const char *v = tok[*i + 1];

	if (!v)
		return errmsg_set(ret_error, EINVAL, "%s without a value", opt);
	if (*field)
		return errmsg_set(ret_error, EINVAL, "%s given twice", opt);
	if (asprintf(field, "%s%s", neg ? "!" : "", v) < 0)
		return -ENOMEM;
	*i += 1;
	return 0;
}

/* Fill r's fields from the tokens after "-A <chain>". */
static int rule_fields(struct netd_ipt_rule *r, char *const *tok, char **ret_error)
{
	bool neg = false;
	int k = 0;

	for (size_t i = 0; tok[i]; i++) {
		const char *t = tok[i];

		if (streq(t, "!")) {
			if (neg)
				return errmsg_set(ret_error, EINVAL, "\"!\" given twice");
			neg = true;
			continue;
		}
		if (streq(t, "-s") || streq(t, "--source"))
			k = set_opt(&r->src, "-s", neg, tok, &i, ret_error);
		else if (streq(t, "-d") || streq(t, "--destination"))
			k = set_opt(&r->dst, "-d", neg, tok, &i, ret_error);
		else if (streq(t, "-i") || streq(t, "--in-interface"))
			k = set_opt(&r->in, "-i", neg, tok, &i, ret_error);
		else if (streq(t, "-o") || streq(t, "--out-interface"))
			k = set_opt(&r->out, "-o", neg, tok, &i, ret_error);
		else if ((streq(t, "-j") || streq(t, "--jump")) && !neg)
			k = set_opt(&r->jump, "-j", false, tok, &i, ret_error);
		else if (streq(t, "-m") && streq_ptr(tok[i + 1], "comment") &&
			 streq_ptr(tok[i + 2], "--comment") && !neg) {
			if (!tok[i + 3])
				return errmsg_set(ret_error, EINVAL, "--comment without a value");
			if (r->comment)
				return errmsg_set(ret_error, EINVAL, "two comments");
			r->comment = strdup(tok[i + 3]);
			if (!r->comment)
				return -ENOMEM;
			i += 3;
		} else {
			k = (neg ? strv_push(&r->rest, "!") : 0)
				?: strv_push(&r->rest, t);
		}
		if (k < 0)
			return k;
		neg = false;
	}
	if (neg)
		return errmsg_set(ret_error, EINVAL, "\"!\" at the end of the rule");
	return 0;
}

int netd_ipt_rule_parse(const char *table, char **tokens, struct netd_ipt_rule *r, char **ret_error)
{
	char **tok = tokens;
	int k;

	*r = (struct netd_ipt_rule){};
	if (tok[0] && streq(tok[0], "-A")) {
		if (!tok[1])
			return errmsg_set(ret_error, EINVAL, "-A without a chain");
		r->chain = strdup(tok[1]);
		if (!r->chain)
			return -ENOMEM;
		tok += 2;
	}
	r->table = strdup(table);
	r->rest = calloc(1, sizeof(char *));
	if (!r->table || !r->rest || strv_copy(tok, &r->args) < 0) {
		netd_ipt_rule_done(r);
		return -ENOMEM;
	}
	k = rule_fields(r, tok, ret_error);
	if (k < 0)
		netd_ipt_rule_done(r);
	return k;
}

static int parse_line(const char *table, const char *line, size_t len, struct netd_ipt_rules *l,
		      char **ret_error)
{
	_cleanup_(strv_freep) char **tok = NULL;
	struct netd_ipt_rule r;
	struct netd_ipt_rule *slot;
	int k;

	k = tokenize(line, len, &tok, ret_error);
	if (k < 0)
		return k;
	if (!tok[0] || streq(tok[0], "-P") || streq(tok[0], "-N"))
		return 0; /* policies and chain declarations are not rules */
	if (!streq(tok[0], "-A"))
		return errmsg_set(ret_error, EINVAL, "expected -P, -N or -A, got \"%s\"", tok[0]);
	k = netd_ipt_rule_parse(table, tok, &r, ret_error);
	if (k < 0)
		return k;
	slot = rules_push(l);
	if (!slot) {
		netd_ipt_rule_done(&r);
		return -ENOMEM;
	}
	*slot = r;
	return 0;
}

int netd_ipt_parse(const char *table, const char *text, size_t len, struct netd_ipt_rules *l,
		   char **ret_error)
{
	size_t lineno = 0;

	for (size_t i = 0; i < len;) {
		const char *nl = memchr(text + i, '\n', len - i);
		size_t n = nl ? (size_t)(nl - (text + i)) : len - i;
		_cleanup_(freep) char *why = NULL;
		int r;

		lineno++;
		r = parse_line(table, text + i, n, l, &why);
		if (r == -ENOMEM)
			return r;
		if (r < 0)
			return asprintf(ret_error, "line %zu: %s", lineno, why) < 0 ? -ENOMEM : r;
		i += n + 1;
	}
	return 0;
}

bool netd_ipt_rule_equal(const struct netd_ipt_rule *a, const struct netd_ipt_rule *b)
{
	return streq_ptr(a->table, b->table) && streq_ptr(a->chain, b->chain) &&
	       streq_ptr(a->src, b->src) && streq_ptr(a->dst, b->dst) && streq_ptr(a->in, b->in) &&
	       streq_ptr(a->out, b->out) && streq_ptr(a->comment, b->comment) &&
	       streq_ptr(a->jump, b->jump) && strv_equal(a->rest, b->rest);
}

static bool is_ours(const struct netd_ipt_rule *r)
{
	return r->comment &&
	       (streq(r->comment, NETD_IPT_COMMENT) || streq(r->comment, NETD_IPT_COMMENT_DROP));
}

/* Append a desired rule given as the tokens `iptables -S` would print after "-A chain". */
static int want(struct netd_ipt_rules *l, const char *table, const char *chain, ...)
{
	_cleanup_(strv_freep) char **tok = calloc(1, sizeof(char *));
	_cleanup_(freep) char *why = NULL;
	struct netd_ipt_rule *r;
	const char *t;
	va_list ap;
	int k = 0;

	if (!tok || strv_push(&tok, "-A") < 0 || strv_push(&tok, chain) < 0)
		return -ENOMEM;
	va_start(ap, chain);
	while (k >= 0 && (t = va_arg(ap, const char *)))
		k = strv_push(&tok, t);
	va_end(ap);
	if (k < 0 || !(r = rules_push(l)))
		return -ENOMEM;
	k = netd_ipt_rule_parse(table, tok, r, &why);
	if (k < 0)
		l->n--;
	return k;
}

static int drop_targets(const struct netd_pool *pool, char ***ret, char **ret_error)
{
	_cleanup_(strv_freep) char **l = calloc(1, sizeof(char *));
	char buf[NETD_CIDR_STRLEN];
	struct netd_cidr c;

	if (!l)
		return -ENOMEM;
	if (pool->drop_internal_access) {
		if (netd_cidr_parse(pool->subnet, &c) < 0)
			return errmsg_set(ret_error, EINVAL, "--subnet %s: not an IPv4 CIDR", pool->subnet);
		if (strv_push(&l, netd_cidr_format(&c, buf)) < 0)
			return -ENOMEM;
	}
	for (size_t i = 0; pool->drop_cidrs && pool->drop_cidrs[i]; i++) {
		const char *d = pool->drop_cidrs[i];

		if (strchr(d, ':'))
			return errmsg_set(ret_error, EINVAL, "--drop-cidr %s: IPv6 is not supported", d);
		if (netd_cidr_parse(d, &c) < 0)
			return errmsg_set(ret_error, EINVAL, "--drop-cidr %s: not an IPv4 CIDR (a.b.c.d/n)", d);
		netd_cidr_format(&c, buf);
		if (!strv_contains(l, buf) && strv_push(&l, buf) < 0)
			return -ENOMEM;
	}
	*ret = TAKE_PTR(l);
	return 0;
}

int netd_ipt_desired(const struct netd_pool *pool, struct netd_ipt_rules *ret, char **ret_error)
{
	_cleanup_(strv_freep) char **drops = NULL;
	struct netd_ipt_rules l = {};
	struct netd_cidr subnet;
	char sub[NETD_CIDR_STRLEN];
	int r;

	/* Every drop target is checked before any rule is planned (§1.5). */
	r = drop_targets(pool, &drops, ret_error);
	if (r < 0)
		return r;
	if (netd_cidr_parse(pool->subnet, &subnet) < 0)
		return errmsg_set(ret_error, EINVAL, "--subnet %s: not an IPv4 CIDR", pool->subnet);
	netd_cidr_format(&subnet, sub);
	for (size_t i = 0; r >= 0 && pool->secondary_nics && pool->secondary_nics[i]; i++) {
		const char *x = pool->secondary_nics[i];

		r = want(&l, "filter", "FORWARD", "-i", x, "-o", NETD_BRIDGE, "-m", "comment",
			 "--comment", NETD_IPT_COMMENT, "-j", "ACCEPT", NULL);
		if (r >= 0)
			r = want(&l, "filter", "FORWARD", "-i", NETD_BRIDGE, "-o", x, "-m",
				 "comment", "--comment", NETD_IPT_COMMENT, "-j", "ACCEPT", NULL);
	}
	if (r >= 0)
		r = want(&l, "filter", "FORWARD", "-i", NETD_BRIDGE, "-o", NETD_BRIDGE, "-m",
			 "comment", "--comment", NETD_IPT_COMMENT, "-j", "ACCEPT", NULL);
	if (r >= 0)
		r = want(&l, "nat", "POSTROUTING", "-s", sub, "!", "-o", NETD_BRIDGE, "-m",
			 "comment", "--comment", NETD_IPT_COMMENT, "-j", "MASQUERADE", NULL);
	for (size_t i = 0; r >= 0 && drops[i]; i++)
		r = want(&l, "filter", "FORWARD", "-d", drops[i], "-i", NETD_BRIDGE, "-m",
			 "comment", "--comment", NETD_IPT_COMMENT_DROP, "-j", "DROP", NULL);
	if (r < 0) {
		netd_ipt_rules_clear(&l);
		return r;
	}
	*ret = l;
	return 0;
}

static int plan_rule(struct netd_changes *ch, const struct netd_ipt_rule *r, const char *op)
{
	_cleanup_(strv_freep) char **argv = NULL;
	_cleanup_(freep) char *spec = NULL, *summary = NULL;
	bool insert = streq(op, "-I");
	int k;

	k = netd_argv_to_string(r->args, &spec);
	if (k < 0)
		return k;
	if (asprintf(&summary, "%s %s %s %s",
		     streq(op, "-D") ? "delete"
		     : insert        ? "insert"
				     : "append",
		     r->table, r->chain, spec) < 0)
		return -ENOMEM;
	/* -w: wait for the xtables lock instead of failing when another tool holds it. */
	if (strv_push(&argv, "iptables") < 0 || strv_push(&argv, "-w") < 0 ||
	    strv_push(&argv, "-t") < 0 || strv_push(&argv, r->table) < 0 ||
	    strv_push(&argv, op) < 0 || strv_push(&argv, r->chain) < 0 ||
	    (insert && strv_push(&argv, "1") < 0))
		return -ENOMEM;
	for (size_t i = 0; r->args[i]; i++)
		if (strv_push(&argv, r->args[i]) < 0)
			return -ENOMEM;
	return netd_plan_command(ch, NETD_CHANGE_RULE, argv, summary) ? 0 : -ENOMEM;
}

int netd_ipt_diff(const struct netd_ipt_rules *existing, const struct netd_ipt_rules *desired,
		  struct netd_changes *ch)
{
	size_t nd = desired ? desired->n : 0;
	_cleanup_(freep) bool *have = calloc(nd + 1, sizeof(bool));
	int r;

	if (!have)
		return -ENOMEM;
	/* Ours and wanted: keep (once). Ours and unwanted, or a duplicate: delete. */
	for (size_t i = 0; i < existing->n; i++) {
		const struct netd_ipt_rule *e = &existing->items[i];
		bool keep = false;

		for (size_t j = 0; j < nd && !keep; j++)
			if (!have[j] && netd_ipt_rule_equal(e, &desired->items[j]))
				have[j] = keep = true;
		if (!keep && is_ours(e) && (r = plan_rule(ch, e, "-D")) < 0)
			return r;
	}
	/* Drops go first in FORWARD so no ACCEPT can let the traffic through (§1.5). */
	for (size_t j = 0; j < nd; j++) {
		const struct netd_ipt_rule *d = &desired->items[j];
		bool drop = streq_ptr(d->jump, "DROP");

		if (!have[j] && (r = plan_rule(ch, d, drop ? "-I" : "-A")) < 0)
			return r;
	}
	return 0;
}

static int read_chain(const char *table, const char *chain, struct netd_ipt_rules *l,
		      char **ret_error)
{
	char *argv[] = { "iptables", "-w", "-t", (char *)table, "-S", (char *)chain, NULL };
	_cleanup_(freep) char *out = NULL, *why = NULL;
	int r;

	r = netd_run(argv, NULL, &out, ret_error);
	if (r < 0)
		return r;
	r = netd_ipt_parse(table, out, strlen(out), l, &why);
	if (r < 0 && r != -ENOMEM)
		return asprintf(ret_error, "iptables -t %s -S %s: %s", table, chain, why) < 0
			   ? -ENOMEM
			   : r;
	return r;
}

int netd_ipt_read(struct netd_ipt_rules *ret, char **ret_error)
{
	struct netd_ipt_rules l = {};
	int r;

	r = read_chain("filter", "FORWARD", &l, ret_error);
	if (r >= 0)
		r = read_chain("nat", "POSTROUTING", &l, ret_error);
	if (r < 0) {
		netd_ipt_rules_clear(&l);
		return r;
	}
	*ret = l;
	return 0;
}
