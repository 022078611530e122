/* netd's view of DHCP leases: the two lease file formats, the set of active leases, and the
 * diff that turns a re-read file into route and bus events.
 *
 * Formats (CONTRACT.md §5: both are read, the format is told by the first byte):
 *   dnsmasq   one lease per line, "<expiry> <mac> <ip> <hostname> <client-id>", expiry in
 *             seconds since the epoch (0: infinite), "*" for an empty hostname or client
 *             id; a "duid <hex>" line starts the DHCPv6 section, which netd does not route
 *             and skips.
 *   JSON      the Go cocoon-net daemon's file (net-epoch-runtime.md §1.8): `null` or an
 *             array of {"mac", "ip", "expiry": RFC 3339}.
 * A bad line (or array entry) is reported through a callback with its number and skipped:
 * one malformed lease must not cost the node its other routes. Only a file that is not
 * JSON at all when it claims to be is refused as a whole, so the caller keeps what it knew.
 *
 * Sets are kept sorted by MAC, so a diff is one merge walk. */
#include <arpa/inet.h>
#include <ctype.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cocoon/log.h"
#include "daemon.h"

/* Longest dnsmasq line we accept: a 255-byte hostname and a 255-byte client id written
 * as hex pairs (765 chars) fit with room to spare. */
#define LEASE_LINE_MAX 2048

int netd_mac_normalize(const char *s, char ret[static NETD_MAC_SIZE])
{
	char out[NETD_MAC_SIZE];

	if (!s || strlen(s) != NETD_MAC_SIZE - 1)
		return -EINVAL;
	for (size_t i = 0; i < NETD_MAC_SIZE - 1; i++) {
		if (i % 3 == 2) {
			if (s[i] != ':')
				return -EINVAL;
			out[i] = ':';
		} else {
			if (!isxdigit((unsigned char)s[i]))
				return -EINVAL;
			out[i] = (char)tolower((unsigned char)s[i]);
		}
	}
	out[NETD_MAC_SIZE - 1] = 0;
	memcpy(ret, out, NETD_MAC_SIZE);
	return 0;
}

/* Dotted quad only (inet_pton refuses leading zeros and short forms); written back in
 * canonical form so a lookup compares equal strings. */
static int lease_parse_ip(const char *s, struct netd_lease *l)
{
	struct in_addr a;

	if (inet_pton(AF_INET, s, &a) != 1)
		return -EINVAL;
	l->addr = ntohl(a.s_addr);
	if (!inet_ntop(AF_INET, &a, l->ip, sizeof l->ip))
		return -EINVAL;
	return 0;
}

static bool is_leap(int y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int parse_digits(const char **p, int n, int *ret)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		if (!isdigit((unsigned char)(*p)[i]))
			return -EINVAL;
		v = v * 10 + ((*p)[i] - '0');
	}
	*p += n;
	*ret = v;
	return 0;
}

static int expect_char(const char **p, char c)
{
	if (**p != c)
		return -EINVAL;
	(*p)++;
	return 0;
}

/* RFC 3339 date-time (§5.6), as Go's time.Time marshals it: "2026-04-15T10:00:00Z",
 * fractional seconds and a numeric offset allowed. Times before 1970 (Go's zero time among
 * them) come back as 1 µs: long expired, and never 0, which would mean "infinite". */
int netd_parse_rfc3339(const char *s, uint64_t *ret_usec)
{
	static const int mdays[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	int y, mo, d, h, mi, sec, oh = 0, om = 0, sign = 0;
	uint64_t frac = 0, scale = USEC_PER_SEC;
	const char *p = s;
	struct tm tm;
	int64_t t;

	if (parse_digits(&p, 4, &y) < 0 || expect_char(&p, '-') < 0 ||
	    parse_digits(&p, 2, &mo) < 0 || expect_char(&p, '-') < 0 ||
	    parse_digits(&p, 2, &d) < 0 || (*p != 'T' && *p != 't'))
		return -EINVAL;
	p++;
	if (parse_digits(&p, 2, &h) < 0 || expect_char(&p, ':') < 0 ||
	    parse_digits(&p, 2, &mi) < 0 || expect_char(&p, ':') < 0 ||
	    parse_digits(&p, 2, &sec) < 0)
		return -EINVAL;
	if (*p == '.') {
		if (!isdigit((unsigned char)*++p))
			return -EINVAL;
		for (; isdigit((unsigned char)*p); p++)
			if (scale > 1) {
				scale /= 10;
				frac += (uint64_t)(*p - '0') * scale;
			}
	}
	if (*p == 'Z' || *p == 'z')
		p++;
	else if (*p == '+' || *p == '-') {
		sign = *p++ == '+' ? 1 : -1;
		if (parse_digits(&p, 2, &oh) < 0 || expect_char(&p, ':') < 0 ||
		    parse_digits(&p, 2, &om) < 0 || oh > 23 || om > 59)
			return -EINVAL;
	} else
		return -EINVAL;
	if (*p || mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] + (mo == 2 && is_leap(y)) ||
	    h > 23 || mi > 59 || sec > 60)
		return -EINVAL;
	tm = (struct tm){ .tm_year = y - 1900,
			  .tm_mon = mo - 1,
			  .tm_mday = d,
			  .tm_hour = h,
			  .tm_min = mi,
			  .tm_sec = MIN(sec, 59) };
	t = (int64_t)timegm(&tm) - sign * (oh * 3600 + om * 60);
	*ret_usec = t < 0 ? 1 : (uint64_t)t * USEC_PER_SEC + frac;
	return 0;
}

/* ---- sets ---- */

int netd_lease_set_new(struct netd_lease_set **ret)
{
	struct netd_lease_set *s = calloc(1, sizeof *s);

	if (!s)
		return -ENOMEM;
	*ret = s;
	return 0;
}

void netd_lease_set_free(struct netd_lease_set *s)
{
	if (!s)
		return;
	free(s->leases);
	free(s);
}

static int lease_cmp(const void *a, const void *b)
{
	return strcmp(((const struct netd_lease *)a)->mac, ((const struct netd_lease *)b)->mac);
}

const struct netd_lease *netd_lease_set_find(const struct netd_lease_set *s, const char *mac)
{
	struct netd_lease key = {};

	if (!s || s->n == 0 || netd_mac_normalize(mac, key.mac) < 0)
		return NULL;
	return bsearch(&key, s->leases, s->n, sizeof key, lease_cmp);
}

const struct netd_lease *netd_lease_set_find_ip(const struct netd_lease_set *s, uint32_t addr)
{
	for (size_t i = 0; s && i < s->n; i++)
		if (s->leases[i].addr == addr)
			return &s->leases[i];
	return NULL;
}

int netd_lease_set_remove(struct netd_lease_set *s, const char *mac, struct netd_lease *ret)
{
	const struct netd_lease *l = netd_lease_set_find(s, mac);
	size_t i;

	if (!l)
		return -ENOENT;
	i = (size_t)(l - s->leases);
	if (ret)
		*ret = *l;
	memmove(&s->leases[i], &s->leases[i + 1], (s->n - i - 1) * sizeof *l);
	s->n--;
	return 0;
}

static int lease_set_append(struct netd_lease_set *s, size_t *alloc, const struct netd_lease *l)
{
	if (s->n == *alloc) {
		size_t n = MAX(*alloc * 2, (size_t)16);
		struct netd_lease *p = reallocarray(s->leases, n, sizeof *p);

		if (!p)
			return -ENOMEM;
		s->leases = p;
		*alloc = n;
	}
	s->leases[s->n++] = *l;
	return 0;
}

bool netd_lease_active(const struct netd_lease *l, uint64_t now_usec)
{
	return l->expires_usec == 0 || l->expires_usec > now_usec;
}

/* ---- parsing ---- */

struct parsed {
	struct netd_lease lease;
	unsigned origin; /* line or entry number */
	const char *raw; /* the line, for the caller's "report once" key; NULL for JSON */
	size_t raw_len;
};

struct parse_ctx {
	struct parsed *items;
	size_t n, alloc;
	netd_lease_bad_fn on_bad;
	void *userdata;
	const char *unit; /* "line" or "entry" */
	bool full;
};

/* Always returns 0: a bad line is skipped, parsing goes on. */
_printf_(5, 6) static int report_bad(struct parse_ctx *c, unsigned n, const char *raw,
				     size_t raw_len, const char *fmt, ...)
{
	char msg[512];
	int k = snprintf(msg, sizeof msg, "%s %u: ", c->unit, n);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg + k, sizeof msg - (size_t)k, fmt, ap);
	va_end(ap);
	if (c->on_bad)
		c->on_bad(msg, raw, raw_len, c->userdata);
	return 0;
}

static int ctx_add(struct parse_ctx *c, unsigned n, const char *raw, size_t raw_len,
		   const struct netd_lease *l)
{
	if (c->n >= NETD_LEASES_MAX) {
		if (!c->full)
			report_bad(c, n, raw, raw_len, "more than %d leases, ignoring the rest",
				   NETD_LEASES_MAX);
		c->full = true;
		return 0;
	}
	if (c->n == c->alloc) {
		size_t a = MAX(c->alloc * 2, (size_t)16);
		struct parsed *p = reallocarray(c->items, a, sizeof *p);

		if (!p)
			return -ENOMEM;
		c->items = p;
		c->alloc = a;
	}
	c->items[c->n++] =
	    (struct parsed){ .lease = *l, .origin = n, .raw = raw, .raw_len = raw_len };
	return 0;
}

static int by_mac_latest_first(const void *a, const void *b)
{
	const struct parsed *x = a, *y = b;
	int r = strcmp(x->lease.mac, y->lease.mac);

	return r != 0 ? r : (x->origin < y->origin) - (x->origin > y->origin);
}

static int by_addr_earliest_first(const void *a, const void *b)
{
	const struct parsed *x = a, *y = b;

	if (x->lease.addr != y->lease.addr)
		return x->lease.addr < y->lease.addr ? -1 : 1;
	return (x->origin > y->origin) - (x->origin < y->origin);
}

static int by_mac(const void *a, const void *b)
{
	return strcmp(((const struct parsed *)a)->lease.mac, ((const struct parsed *)b)->lease.mac);
}

/* qsort() and bsearch() must not see the NULL array of an empty set. */
static void sort_items(struct parse_ctx *c, int (*cmp)(const void *, const void *))
{
	if (c->n > 1)
		qsort(c->items, c->n, sizeof *c->items, cmp);
}

/* A MAC listed twice keeps its later lease (a renewal appended by hand, or a JSON file
 * merged badly). An IP listed for two MACs keeps the earlier one and reports the other: a
 * DHCP server never hands one address to two clients, so the file is damaged, and routing
 * the address to either is a guess; the earlier one at least stays put. */
static int ctx_finish(struct parse_ctx *c, enum netd_lease_format format,
		      struct netd_lease_set **ret)
{
	_cleanup_(netd_lease_set_freep) struct netd_lease_set *s = NULL;
	size_t j = 0;

	sort_items(c, by_mac_latest_first);
	for (size_t i = 0; i < c->n; i++)
		if (j == 0 || !streq(c->items[j - 1].lease.mac, c->items[i].lease.mac))
			c->items[j++] = c->items[i];
	c->n = j;
	sort_items(c, by_addr_earliest_first);
	j = 0;
	for (size_t i = 0; i < c->n; i++) {
		const struct parsed *p = &c->items[i];

		if (j > 0 && c->items[j - 1].lease.addr == p->lease.addr) {
			report_bad(c, p->origin, p->raw, p->raw_len,
				   "IP %s is already leased to %s (%s %u), skipping this one",
				   p->lease.ip, c->items[j - 1].lease.mac, c->unit,
				   c->items[j - 1].origin);
			continue;
		}
		c->items[j++] = *p;
	}
	c->n = j;
	sort_items(c, by_mac);

	if (netd_lease_set_new(&s) < 0)
		return -ENOMEM;
	s->format = format;
	if (c->n > 0) {
		s->leases = calloc(c->n, sizeof *s->leases);
		if (!s->leases)
			return -ENOMEM;
	}
	for (size_t i = 0; i < c->n; i++)
		s->leases[i] = c->items[i].lease;
	s->n = c->n;
	*ret = TAKE_PTR(s);
	return 0;
}

/* "*" or hex bytes "01:aa:bb" (dnsmasq prints client ids that way). */
static bool valid_client_id(const char *s)
{
	if (streq(s, "*"))
		return true;
	for (size_t i = 0;; i += 3) {
		if (!isxdigit((unsigned char)s[i]) || !isxdigit((unsigned char)s[i + 1]))
			return false;
		if (s[i + 2] == 0)
			return true;
		if (s[i + 2] != ':')
			return false;
	}
}

static bool printable_token(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x21 || *s == 0x7f)
			return false;
	return true;
}

/* Seconds since the epoch, decimal digits only; 0 means an infinite lease. Anything past
 * year 9999 is refused rather than overflowing into the past. */
static int parse_expiry(const char *s, uint64_t *ret_usec)
{
	uint64_t v = 0;

	if (!*s || strlen(s) > 12)
		return -EINVAL;
	for (const char *p = s; *p; p++) {
		if (!isdigit((unsigned char)*p))
			return -EINVAL;
		v = v * 10 + (uint64_t)(*p - '0');
	}
	if (v > 253402300799ULL)
		return -ERANGE;
	*ret_usec = v * USEC_PER_SEC;
	return 0;
}

static int split_fields(char *line, char **f, int max)
{
	int n = 0;

	for (char *save, *tok = strtok_r(line, " \t", &save); tok;
	     tok = strtok_r(NULL, " \t", &save)) {
		if (n == max)
			return max + 1;
		f[n++] = tok;
	}
	return n;
}

/* One dnsmasq line; *v6 turns on at the "duid" line (lease_update_file() writes the DHCPv4
 * leases first, then the server DUID, then the DHCPv6 leases). */
static int parse_dnsmasq_line(struct parse_ctx *c, unsigned n, const char *raw, size_t len,
			      bool *v6)
{
	char line[LEASE_LINE_MAX + 1], *f[6];
	struct netd_lease l = {};
	int nf;

	if (len > LEASE_LINE_MAX)
		return report_bad(c, n, raw, len, "longer than %d bytes", LEASE_LINE_MAX);
	if (memchr(raw, 0, len))
		return report_bad(c, n, raw, len, "contains a NUL byte");
	memcpy(line, raw, len);
	line[len] = 0;
	nf = split_fields(line, f, 5);
	if (nf == 0)
		return 0; /* a blank line says nothing */
	if (streq(f[0], "duid")) {
		*v6 = true;
		return 0;
	}
	if (*v6)
		return 0; /* a DHCPv6 lease: netd routes IPv4 only */
	if (nf != 5)
		return report_bad(c, n, raw, len,
				  "expected 5 fields \"<expiry> <mac> <ip> <hostname> "
				  "<client-id>\", found %s%d",
				  nf > 5 ? "more than " : "", MIN(nf, 5));
	if (parse_expiry(f[0], &l.expires_usec) < 0)
		return report_bad(c, n, raw, len,
				  "expiry '%.32s' is not a number of seconds since 1970", f[0]);
	if (netd_mac_normalize(f[1], l.mac) < 0)
		return report_bad(c, n, raw, len,
				  "hardware address '%.64s' is not an Ethernet MAC "
				  "(aa:bb:cc:dd:ee:ff)",
				  f[1]);
	if (lease_parse_ip(f[2], &l) < 0)
		return report_bad(c, n, raw, len, "'%.64s' is not an IPv4 address", f[2]);
	if (!printable_token(f[3]))
		return report_bad(c, n, raw, len, "hostname contains control characters");
	if (!valid_client_id(f[4]))
		return report_bad(c, n, raw, len,
				  "client id '%.64s' is not '*' or colon-separated hex bytes",
				  f[4]);
	return ctx_add(c, n, raw, len, &l);
}

static int parse_dnsmasq(struct parse_ctx *c, const char *data, size_t len, unsigned flags)
{
	const char *p = data, *end = data + len;
	unsigned n = 0;
	bool v6 = false;
	int r;

	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t l = nl ? (size_t)(nl - p) : (size_t)(end - p);

		n++;
		/* dnsmasq ends every line; a last line without its newline is still being
		 * written (it rewrites the file in place), so the caller reads it later. */
		if (!nl && (flags & NETD_LEASES_SKIP_PARTIAL))
			break;
		r = parse_dnsmasq_line(c, n, p, l, &v6);
		if (r < 0 || c->full)
			return r;
		p += l + 1;
	}
	return 0;
}

static const char *json_type_name(const json_t *j)
{
	static const char *const names[] = {
		[JSON_OBJECT] = "object",  [JSON_ARRAY] = "array", [JSON_STRING] = "string",
		[JSON_INTEGER] = "number", [JSON_REAL] = "number", [JSON_TRUE] = "boolean",
		[JSON_FALSE] = "boolean",  [JSON_NULL] = "null",
	};

	return names[json_typeof(j)];
}

/* The string field name of entry e, or NULL after reporting why not. */
static const char *json_field(struct parse_ctx *c, unsigned n, const json_t *e, const char *name)
{
	const json_t *v = json_object_get(e, name);

	if (!v)
		report_bad(c, n, NULL, 0, "field '%s' missing", name);
	else if (!json_is_string(v))
		report_bad(c, n, NULL, 0, "field '%s' is a %s, expected a string", name,
			   json_type_name(v));
	else
		return json_string_value(v);
	return NULL;
}

static int parse_json_entry(struct parse_ctx *c, unsigned n, const json_t *e)
{
	const char *mac, *ip, *expiry;
	struct netd_lease l = {};

	if (!json_is_object(e))
		return report_bad(c, n, NULL, 0, "is a %s, expected an object", json_type_name(e));
	if (!(mac = json_field(c, n, e, "mac")) || !(ip = json_field(c, n, e, "ip")) ||
	    !(expiry = json_field(c, n, e, "expiry")))
		return 0;
	if (netd_mac_normalize(mac, l.mac) < 0)
		return report_bad(c, n, NULL, 0,
				  "mac '%.64s' is not an Ethernet MAC (aa:bb:cc:dd:ee:ff)", mac);
	if (lease_parse_ip(ip, &l) < 0)
		return report_bad(c, n, NULL, 0, "ip '%.64s' is not an IPv4 address", ip);
	if (netd_parse_rfc3339(expiry, &l.expires_usec) < 0)
		return report_bad(c, n, NULL, 0, "expiry '%.64s' is not an RFC 3339 time", expiry);
	return ctx_add(c, n, NULL, 0, &l);
}

static int parse_json(struct parse_ctx *c, const char *data, size_t len, char **ret_error)
{
	json_t *root, *e;
	json_error_t jerr;
	size_t i;
	int r = 0;

	root = json_loadb(data, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
	if (!root) {
		if (ret_error &&
		    asprintf(ret_error, "not a JSON lease file: line %d, column %d: %s", jerr.line,
			     jerr.column, jerr.text) < 0)
			*ret_error = NULL;
		return -EBADMSG;
	}
	if (!json_is_array(root) && !json_is_null(root)) {
		if (ret_error && asprintf(ret_error,
					  "the JSON lease file holds a %s, expected an array of "
					  "leases or null",
					  json_type_name(root)) < 0)
			*ret_error = NULL;
		json_decref(root);
		return -EBADMSG;
	}
	json_array_foreach (root, i, e) {
		r = parse_json_entry(c, (unsigned)i + 1, e);
		if (r < 0 || c->full)
			break;
	}
	json_decref(root);
	return r;
}

/* dnsmasq lines start with a digit (the expiry) or "duid"; everything else is taken for
 * JSON, so a file of garbage is refused whole instead of read as zero leases. */
static enum netd_lease_format detect_format(const char *data, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (isspace((unsigned char)data[i]))
			continue;
		return isdigit((unsigned char)data[i]) || data[i] == 'd' ? NETD_LEASE_FORMAT_DNSMASQ
									 : NETD_LEASE_FORMAT_JSON;
	}
	return NETD_LEASE_FORMAT_DNSMASQ;
}

int netd_leases_parse(const char *data, size_t len, unsigned flags, netd_lease_bad_fn on_bad,
		      void *userdata, struct netd_lease_set **ret, char **ret_error)
{
	enum netd_lease_format format = detect_format(data, len);
	struct parse_ctx c = {
		.on_bad = on_bad,
		.userdata = userdata,
		.unit = format == NETD_LEASE_FORMAT_JSON ? "entry" : "line",
	};
	int r;

	if (ret_error)
		*ret_error = NULL;
	if (format == NETD_LEASE_FORMAT_JSON)
		r = parse_json(&c, data, len, ret_error);
	else
		r = parse_dnsmasq(&c, data, len, flags);
	if (r >= 0)
		r = ctx_finish(&c, format, ret);
	free(c.items);
	return r;
}

const char *netd_lease_format_to_string(enum netd_lease_format f)
{
	return f == NETD_LEASE_FORMAT_JSON ? "cocoon-net JSON" : "dnsmasq";
}

/* ---- diffing ---- */

struct changes {
	struct netd_lease_change *v;
	size_t n, alloc;
};

static int changes_add(struct changes *c, enum netd_lease_event kind, const struct netd_lease *l)
{
	if (c->n == c->alloc) {
		size_t a = MAX(c->alloc * 2, (size_t)8);
		struct netd_lease_change *p = reallocarray(c->v, a, sizeof *p);

		if (!p)
			return -ENOMEM;
		c->v = p;
		c->alloc = a;
	}
	c->v[c->n++] = (struct netd_lease_change){ .kind = kind, .lease = *l };
	return 0;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return (x > y) - (x < y);
}

/* A lease netd knows and the file no longer lists: without removals (the file may be
 * mid-rewrite) it is kept, unless it has expired anyway or the file gives its IP to
 * another MAC (then the file is right about that address, whatever else it lacks). */
static int carry(const struct netd_lease *k, const uint32_t *addrs, size_t n_addrs, uint64_t now,
		 bool removals, struct netd_lease_set *out, size_t *alloc, struct changes *ch)
{
	if (removals || !netd_lease_active(k, now) ||
	    (n_addrs > 0 && bsearch(&k->addr, addrs, n_addrs, sizeof *addrs, cmp_u32)))
		return changes_add(ch, NETD_LEASE_EXPIRED, k);
	return lease_set_append(out, alloc, k);
}

static int merge_one(const struct netd_lease *k, const struct netd_lease *f,
		     struct netd_lease_set *out, size_t *alloc, struct changes *ch)
{
	int r = 0;

	if (k->addr != f->addr) {
		r = changes_add(ch, NETD_LEASE_EXPIRED, k);
		if (r >= 0)
			r = changes_add(ch, NETD_LEASE_GRANTED, f);
	} else if (k->expires_usec != f->expires_usec)
		r = changes_add(ch, NETD_LEASE_RENEWED, f);
	if (r >= 0)
		r = lease_set_append(out, alloc, f);
	return r;
}

static int update_walk(const struct netd_lease_set *known, const struct netd_lease_set *active,
		       const uint32_t *addrs, uint64_t now, bool removals,
		       struct netd_lease_set *out, struct changes *ch)
{
	size_t i = 0, j = 0, alloc = 0;
	int r = 0;

	while (r >= 0 && (i < known->n || j < active->n)) {
		int c = i == known->n    ? 1
			: j == active->n ? -1
					 : strcmp(known->leases[i].mac, active->leases[j].mac);

		if (c < 0)
			r = carry(&known->leases[i++], addrs, active->n, now, removals, out, &alloc,
				  ch);
		else if (c > 0) {
			r = changes_add(ch, NETD_LEASE_GRANTED, &active->leases[j]);
			if (r >= 0)
				r = lease_set_append(out, &alloc, &active->leases[j]);
			j++;
		} else
			r = merge_one(&known->leases[i++], &active->leases[j++], out, &alloc, ch);
	}
	return r;
}

int netd_leases_update(struct netd_lease_set *known, const struct netd_lease_set *file,
		       uint64_t now, bool removals, struct netd_lease_change **ret, size_t *ret_n)
{
	struct netd_lease_set active = {}, out = {};
	_cleanup_(freep) uint32_t *addrs = NULL;
	struct changes ch = {};
	int r = 0;

	if (file->n > 0) {
		active.leases = calloc(file->n, sizeof *active.leases);
		addrs = calloc(file->n, sizeof *addrs);
		if (!active.leases || !addrs) {
			free(active.leases);
			return -ENOMEM;
		}
	}
	for (size_t i = 0; i < file->n; i++)
		if (netd_lease_active(&file->leases[i], now)) {
			addrs[active.n] = file->leases[i].addr;
			active.leases[active.n++] = file->leases[i];
		}
	if (active.n > 1)
		qsort(addrs, active.n, sizeof *addrs, cmp_u32);
	r = update_walk(known, &active, addrs, now, removals, &out, &ch);
	free(active.leases);
	if (r < 0) {
		free(out.leases);
		free(ch.v);
		return r;
	}
	free(known->leases);
	known->leases = out.leases;
	known->n = out.n;
	known->format = file->format;
	*ret = ch.v;
	*ret_n = ch.n;
	return 0;
}

int netd_leases_expire(struct netd_lease_set *known, uint64_t now, struct netd_lease_change **ret,
		       size_t *ret_n)
{
	struct changes ch = {};
	size_t j = 0, n_expired = 0;

	/* Sized first, so nothing can fail once leases start leaving the set. */
	for (size_t i = 0; i < known->n; i++)
		n_expired += !netd_lease_active(&known->leases[i], now);
	if (n_expired > 0) {
		ch.v = calloc(n_expired, sizeof *ch.v);
		if (!ch.v)
			return -ENOMEM;
		ch.alloc = n_expired;
	}
	for (size_t i = 0; i < known->n; i++) {
		if (netd_lease_active(&known->leases[i], now))
			known->leases[j++] = known->leases[i];
		else
			(void)changes_add(&ch, NETD_LEASE_EXPIRED, &known->leases[i]);
	}
	known->n = j;
	*ret = ch.v;
	*ret_n = ch.n;
	return 0;
}

uint64_t netd_leases_next_expiry(const struct netd_lease_set *known)
{
	uint64_t next = 0;

	for (size_t i = 0; i < known->n; i++)
		if (known->leases[i].expires_usec != 0 &&
		    (next == 0 || known->leases[i].expires_usec < next))
			next = known->leases[i].expires_usec;
	return next;
}

const char *netd_lease_event_to_string(enum netd_lease_event e)
{
	static const char *const names[] = {
		[NETD_LEASE_GRANTED] = "granted",
		[NETD_LEASE_RENEWED] = "renewed",
		[NETD_LEASE_EXPIRED] = "expired",
	};

	return e < ELEMENTSOF(names) ? names[e] : NULL;
}
