/* libFuzzer harness for the metrics exposition writer: the input, split at NUL bytes, gives
 * a HELP text, a metric name and label values; they go through registration, updates of
 * every kind (with a small series cap) and metrics_render(). Whatever was accepted must
 * render as text a Prometheus parser reads: valid UTF-8, one sample per line, label values
 * quoted with only \\, \" and \n escapes, numbers or NaN/±Inf. Aborts otherwise. */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cocoon/metrics.h"

#define check(x)                                                                                   \
	do {                                                                                       \
		if (!(x))                                                                          \
			abort();                                                                   \
	} while (0)

static bool utf8_ok(const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n;) {
		unsigned c = p[i], len = c < 0x80 ? 1 : c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;
		uint32_t cp = len == 1 ? c : c & (0x3f >> (len - 1));

		if ((c >= 0x80 && c < 0xc2) || c > 0xf4 || i + len > n)
			return false;
		for (unsigned k = 1; k < len; k++) {
			if ((p[i + k] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (p[i + k] & 0x3f);
		}
		if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += len;
	}
	return true;
}

static const char *name_end(const char *p, bool colons)
{
	const char *s = p;

	while ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '_' ||
	       (colons && *p == ':') || (p > s && *p >= '0' && *p <= '9'))
		p++;
	check(p > s);
	return p;
}

static void check_value(const char *p, const char *end)
{
	char *e;

	if ((end - p == 3 && memcmp(p, "NaN", 3) == 0) ||
	    (end - p == 4 && (memcmp(p, "+Inf", 4) == 0 || memcmp(p, "-Inf", 4) == 0)))
		return;
	check(end > p);
	(void)strtod(p, &e);
	check(e == end);
}

/* name{l="v",…} value */
static void check_sample(const char *p, const char *end)
{
	p = name_end(p, true);
	if (*p == '{') {
		p++;
		while (*p != '}') {
			p = name_end(p, false);
			check(p[0] == '=' && p[1] == '"');
			for (p += 2; *p != '"'; p++) {
				check(p < end && *p != '\n');
				if (*p == '\\') {
					p++;
					check(*p == '\\' || *p == '"' || *p == 'n');
				}
			}
			p++;
			check(*p == ',' || *p == '}');
			if (*p == ',')
				p++;
		}
		p++;
	}
	check(*p == ' ');
	check_value(p + 1, end);
}

static void check_comment(const char *p, const char *end)
{
	if (strncmp(p, "# TYPE ", 7) == 0) {
		p = name_end(p + 7, true);
		check(*p == ' ');
		p++;
		check((end - p == 7 && memcmp(p, "counter", 7) == 0) ||
		      (end - p == 5 && memcmp(p, "gauge", 5) == 0) ||
		      (end - p == 9 && memcmp(p, "histogram", 9) == 0));
		return;
	}
	check(strncmp(p, "# HELP ", 7) == 0);
	p = name_end(p + 7, true);
	check(*p == ' ');
	for (p++; p < end; p++)
		if (*p == '\\') {
			p++;
			check(p < end && (*p == '\\' || *p == 'n'));
		}
}

static void check_exposition(const struct buf *b)
{
	const char *p = b->data, *end = b->data + b->len;

	check(utf8_ok((const unsigned char *)p, b->len));
	check(b->len > 0 && end[-1] == '\n' && !memchr(p, 0, b->len));
	while (p < end) {
		const char *nl = memchr(p, '\n', end - p);

		check(nl);
		if (*p == '#')
			check_comment(p, nl);
		else
			check_sample(p, nl);
		p = nl + 1;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	_cleanup_(metrics_freep) struct metrics *m = NULL;
	_cleanup_(freep) char *copy = NULL;
	const char *tok[16];
	size_t n = 0;
	struct metric *c = NULL, *g = NULL, *h = NULL, *named = NULL;
	struct buf out = BUF_INIT(0);

	copy = malloc(size + 1);
	if (!copy || metrics_new(&m) < 0)
		return 0;
	memcpy(copy, data, size);
	copy[size] = 0;
	for (char *p = copy; n < ELEMENTSOF(tok) && p <= copy + size; p += strlen(p) + 1)
		tok[n++] = p;
	while (n < 3)
		tok[n++] = "";

	/* tok[0]: HELP text, tok[1]: a metric name, the rest: label values */
	if (metrics_add(m, METRIC_GAUGE, &(struct metric_desc){ .name = "g", .help = tok[0] }, &g) <
	    0)
		check(metrics_add(m, METRIC_GAUGE,
				  &(struct metric_desc){ .name = "g", .help = "g" }, &g) == 0);
	check(metrics_add(m, METRIC_COUNTER,
			  &(struct metric_desc){ .name = "c_total",
						 .help = "c",
						 .labels = METRIC_LABELS("a", "b"),
						 .max_series = 8 },
			  &c) == 0);
	check(metrics_add(m, METRIC_HISTOGRAM,
			  &(struct metric_desc){ .name = "h",
						 .help = "h",
						 .labels = METRIC_LABELS("x"),
						 .buckets = (const double[]){ 0, 1, 10 },
						 .n_buckets = 3,
						 .max_series = 4 },
			  &h) == 0);
	/* may clash with the names above: then it is refused, which is fine */
	(void)metrics_add(
	    m, METRIC_COUNTER,
	    &(struct metric_desc){ .name = tok[1], .help = tok[0], .labels = METRIC_LABELS("v") },
	    &named);
	for (size_t i = 2; i < n; i++) {
		size_t len = strlen(tok[i]);

		(void)metric_inc(c, METRIC_LABELS(tok[i], tok[i - 1]));
		(void)metric_observe(h, METRIC_LABELS(tok[i]),
				     len ? (double)(unsigned char)tok[i][0] - 64 : NAN);
		(void)metric_set(g, NULL, len ? (double)len / (tok[i][0] | 1) : INFINITY);
		if (named)
			(void)metric_add(named, METRIC_LABELS(tok[i]), (double)len / 3);
	}
	check(metrics_render(m, &out) == 0);
	check_exposition(&out);
	buf_free(&out);
	return 0;
}
