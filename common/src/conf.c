/* Environment-variable configuration tables, their parsers and --help. See conf.h. */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "cocoon/buf.h"
#include "cocoon/conf.h"
#include "cocoon/log.h"

#ifndef COCOON_VERSION
#define COCOON_VERSION "unknown"
#endif

static int parse_string(const char *v, void *ret, const void *arg)
{
	*(const char **)ret = v;
	return 0;
}

static int parse_bool(const char *v, void *ret, const void *arg)
{
	static const char *const yes[] = { "true", "yes", "on", "1" };
	static const char *const no[] = { "false", "no", "off", "0" };

	for (size_t i = 0; i < ELEMENTSOF(yes); i++) {
		if (strcasecmp(v, yes[i]) == 0) {
			*(bool *)ret = true;
			return 0;
		}
		if (strcasecmp(v, no[i]) == 0) {
			*(bool *)ret = false;
			return 0;
		}
	}
	return -EINVAL;
}

static int parse_int(const char *v, void *ret, const void *arg)
{
	const struct conf_range *range = arg;
	char *end;
	long long n;

	errno = 0;
	n = strtoll(v, &end, 10);
	if (errno || end == v || *end || isspace((unsigned char)*v))
		return -EINVAL;
	if (range && (n < range->min || n > range->max))
		return -ERANGE;
	*(int64_t *)ret = n;
	return 0;
}

/* Go's time.ParseDuration: a sequence of decimal numbers with a unit each ("1h30m",
 * "1.5s"); "0" alone needs no unit. We keep microseconds, so anything finer rounds down. */
int conf_parse_duration(const char *s, uint64_t *ret_usec)
{
	static const struct {
		const char *unit;
		double usec;
	} units[] = { { "ns", 1e-3 }, { "us", 1 },   { "\xc2\xb5s", 1 }, { "ms", 1e3 },
		      { "s", 1e6 },   { "m", 60e6 }, { "h", 3600e6 } };
	double total = 0;
	const char *p = s;

	if (isempty(s))
		return -EINVAL;
	if (streq(s, "0")) {
		*ret_usec = 0;
		return 0;
	}
	while (*p) {
		char *end;
		double n;
		size_t best = 0, best_len = 0;

		if (!isdigit((unsigned char)*p) && *p != '.')
			return -EINVAL;
		errno = 0;
		n = strtod(p, &end);
		if (errno || end == p)
			return -EINVAL;
		p = end;
		/* longest unit that matches, so "ms" wins over "m" */
		for (size_t i = 0; i < ELEMENTSOF(units); i++) {
			size_t l = strlen(units[i].unit);
			if (strncmp(p, units[i].unit, l) == 0 && l > best_len)
				best = i, best_len = l;
		}
		if (!best_len)
			return -EINVAL;
		p += best_len;
		total += n * units[best].usec;
		if (!isfinite(total) || total > 1e18)
			return -ERANGE;
	}
	*ret_usec = (uint64_t)total;
	return 0;
}

static int parse_duration(const char *v, void *ret, const void *arg)
{
	return conf_parse_duration(v, ret);
}

static int parse_log_level(const char *v, void *ret, const void *arg)
{
	int l = log_level_from_string(v);

	if (l < 0)
		return l;
	*(int *)ret = l;
	return 0;
}

/* Host part of a listen address: a name or IPv4 address, or inside brackets an IPv6
 * address (optionally with a %zone). Empty means "all addresses". */
static bool listen_host_valid(const char *h, size_t n, bool bracketed)
{
	const char *extra = bracketed ? ":.%" : ".-_";

	if (n > 253) /* the longest DNS name */
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)h[i];
		if (!c || !(isalnum(c) || strchr(extra, c)))
			return false;
	}
	/* brackets are for IPv6 literals, which always contain a colon */
	return !bracketed || memchr(h, ':', n);
}

int conf_parse_listen(const char *s, char **ret_host, uint16_t *ret_port)
{
	const char *colon, *host = s;
	size_t host_len;
	int64_t port;
	struct conf_range r = { 0, 65535 }; /* 0: the kernel picks (tests) */

	if (isempty(s))
		return -EINVAL;
	if (s[0] == '[') {
		const char *close = strchr(s, ']');
		if (!close || close[1] != ':' || close == s + 1)
			return -EINVAL;
		host = s + 1;
		host_len = (size_t)(close - host);
		colon = close + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon || memchr(s, ':', (size_t)(colon - s)))
			return -EINVAL;
		host_len = (size_t)(colon - s);
	}
	if (!listen_host_valid(host, host_len, host != s))
		return -EINVAL;
	if (parse_int(colon + 1, &port, &r) < 0)
		return -EINVAL;
	if (ret_host) {
		char *h = strndup(host, host_len);
		if (!h)
			return -ENOMEM;
		*ret_host = h;
	}
	if (ret_port)
		*ret_port = (uint16_t)port;
	return 0;
}

static int parse_listen(const char *v, void *ret, const void *arg)
{
	int r = conf_parse_listen(v, NULL, NULL);

	if (r < 0)
		return r;
	*(const char **)ret = v;
	return 0;
}

static int parse_url(const char *v, void *ret, const void *arg)
{
	const char *rest;

	if (strncmp(v, "http://", 7) == 0)
		rest = v + 7;
	else if (strncmp(v, "https://", 8) == 0)
		rest = v + 8;
	else
		return -EINVAL;
	if (!*rest || *rest == '/' || strpbrk(v, " \t\r\n"))
		return -EINVAL;
	*(const char **)ret = v;
	return 0;
}

static int parse_enum(const char *v, void *ret, const void *arg)
{
	for (const char *const *e = arg; *e; e++)
		if (streq(v, *e)) {
			*(const char **)ret = *e;
			return 0;
		}
	return -EINVAL;
}

const struct conf_type conf_string = { "string", "a non-empty string", parse_string };
const struct conf_type conf_bool = { "bool", "true or false", parse_bool };
const struct conf_type conf_int = { "integer", "an integer", parse_int };
const struct conf_type conf_duration = { "duration", "a duration such as 30s, 5m or 1h30m",
					 parse_duration };
const struct conf_type conf_log_level = { "level",
					  "a log level (debug, info, notice, warning, error)",
					  parse_log_level };
const struct conf_type conf_listen = {
	"address", "a listen address such as :8443, 127.0.0.1:8443 or [::1]:8443", parse_listen
};
const struct conf_type conf_url = { "url", "an http:// or https:// URL", parse_url };
const struct conf_type conf_enum = { "enum", "one of", parse_enum };

/* "expected …" with the type's specifics (range, enum values). */
static void describe_expected(const struct conf_var *v, struct buf *b)
{
	buf_append_str(b, v->type->expected);
	if (v->type == &conf_enum) {
		for (const char *const *e = v->arg; *e; e++)
			buf_printf(b, "%s%s", e == v->arg ? " " : ", ", *e);
	} else if (v->type == &conf_int && v->arg) {
		const struct conf_range *r = v->arg;
		buf_printf(b, " from %" PRId64 " to %" PRId64, r->min, r->max);
	}
}

static const char *lookup(const struct conf_var *v, const char **ret_name)
{
	const char *val = getenv(v->name);

	*ret_name = v->name;
	if (isempty(val) && v->alias) {
		val = getenv(v->alias);
		*ret_name = v->alias;
	}
	if (isempty(val)) {
		*ret_name = v->name;
		return NULL;
	}
	return val;
}

int conf_load(const struct conf_var *vars, size_t n, char **ret_error)
{
	for (size_t i = 0; i < n; i++) {
		const struct conf_var *v = &vars[i];
		const char *name, *val = lookup(v, &name);
		bool from_default = !val;
		struct buf msg = BUF_INIT(0);

		if (from_default)
			val = v->def;
		if (!val)
			continue;
		if (v->type->parse(val, v->ret, v->arg) >= 0)
			continue;
		buf_printf(&msg, "invalid %s%s=\"%s\": expected ", from_default ? "default " : "",
			   name, val);
		describe_expected(v, &msg);
		if (ret_error)
			*ret_error = buf_steal(&msg, NULL);
		buf_free(&msg);
		return -EINVAL;
	}
	return 0;
}

void conf_print_help(FILE *f, const char *prog, const char *summary, const struct conf_var *vars,
		     size_t n)
{
	fprintf(f, "Usage: %s [--help] [--version]\n\n%s\n\nEnvironment variables:\n", prog,
		summary);
	for (size_t i = 0; i < n; i++) {
		const struct conf_var *v = &vars[i];
		struct buf exp = BUF_INIT(0);

		describe_expected(v, &exp);
		fprintf(f, "  %s (%s)\n", v->name, v->type->name);
		fprintf(f, "      %s\n", v->help);
		fprintf(f, "      default: %s; expected: %s\n", v->def ? v->def : "(unset)",
			exp.data);
		if (v->alias)
			fprintf(f, "      also read from %s (older name)\n", v->alias);
		if (v->flag)
			fprintf(f, "      flag: --%s=VALUE (wins over the environment)\n", v->flag);
		buf_free(&exp);
	}
	fprintf(f, "\nExit status: 0 clean stop, 1 failure, 2 usage or configuration error.\n");
}

/* The option table: --help, --version, then one entry per variable with a flag (val 256+i). */
static struct option *conf_options(const struct conf_var *vars, size_t n)
{
	struct option *o = calloc(n + 3, sizeof(*o));
	size_t k = 0;

	if (!o)
		return NULL;
	o[k++] = (struct option){ "help", no_argument, NULL, 'h' };
	o[k++] = (struct option){ "version", no_argument, NULL, 'V' };
	for (size_t i = 0; i < n; i++)
		if (vars[i].flag)
			o[k++] = (struct option){ vars[i].flag,
						  vars[i].type == &conf_bool ? optional_argument :
									       required_argument,
						  NULL, 256 + (int)i };
	return o;
}

int conf_handle_args(int argc, char **argv, const char *summary, const struct conf_var *vars,
		     size_t n)
{
	_cleanup_(freep) struct option *opts = conf_options(vars, n);
	int c;

	if (!opts)
		return -ENOMEM;
	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+:h", opts, NULL)) >= 0) {
		switch (c) {
		case 'h':
			conf_print_help(stdout, program_invocation_short_name, summary, vars, n);
			return 1;
		case 'V':
			printf("%s %s\n", program_invocation_short_name, COCOON_VERSION);
			return 1;
		case ':':
			fprintf(stderr, "%s: option '%s' needs a value (see --help)\n",
				program_invocation_short_name, argv[optind - 1]);
			return -EINVAL;
		default:
			if (c >= 256 && (size_t)(c - 256) < n) {
				if (setenv(vars[c - 256].name, optarg ? optarg : "true", 1) < 0)
					return -errno;
				break;
			}
			fprintf(stderr, "%s: unknown option '%s' (see --help)\n",
				program_invocation_short_name, argv[optind - 1]);
			return -EINVAL;
		}
	}
	if (optind < argc) {
		fprintf(stderr,
			"%s: unexpected argument '%s'; configuration comes from the "
			"environment (see --help)\n",
			program_invocation_short_name, argv[optind]);
		return -EINVAL;
	}
	return 0;
}
