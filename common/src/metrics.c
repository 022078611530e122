/* Prometheus metrics registry and text exposition format 0.0.4. See metrics.h.
 *
 * This file owns the registry (metrics sorted by name), the per-metric series tables
 * (sorted by label values, capped), the rendering rules of the format (HELP/TYPE lines,
 * escaping, cumulative histogram buckets with +Inf, _sum and _count) and the process
 * collector that reads /proc/self like the Go client's, so dashboards built for other
 * exporters work unchanged. Format reference:
 * https://prometheus.io/docs/instrumenting/exposition_formats/ */
#include <dirent.h>
#include <fcntl.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "cocoon/log.h"
#include "cocoon/metrics.h"

#define DROPPED_NAME "cocoon_metrics_dropped_series_total"
#define MAX_BUCKETS  64

struct series {
	char **values;    /* one per label name */
	double value;     /* counter, gauge */
	uint64_t *counts; /* histogram: per bucket, not cumulative; the last is +Inf */
	double sum;
	uint64_t count;
};

struct metric {
	struct metrics *registry;
	enum metric_type type;
	char *name;
	char *help;
	char **labels;
	size_t n_labels;
	double *bounds; /* histogram upper bounds, +Inf not included */
	size_t n_bounds;
	struct series **series; /* sorted by label values */
	size_t n_series;
	size_t max_series;
};

enum {
	PROCESS_CPU,
	PROCESS_RSS,
	PROCESS_VSIZE,
	PROCESS_FDS,
	PROCESS_MAX_FDS,
	PROCESS_START,
	_PROCESS_METRIC_MAX,
};

struct collector {
	metrics_collect_fn fn;
	void *userdata;
};

struct metrics {
	struct metric **metrics; /* sorted by name */
	size_t n_metrics;
	struct collector *collectors;
	size_t n_collectors;
	struct metric *dropped;
	struct metric *process[_PROCESS_METRIC_MAX];
};

static const char *const type_names[_METRIC_TYPE_MAX] = {
	[METRIC_COUNTER] = "counter",
	[METRIC_GAUGE] = "gauge",
	[METRIC_HISTOGRAM] = "histogram",
};

/* Prometheus' DefBuckets: response times from 5 ms to 10 s. */
static const double default_buckets[] = { 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10 };

static void series_free(struct series *s, size_t n_labels)
{
	if (!s)
		return;
	for (size_t i = 0; s->values && i < n_labels; i++)
		free(s->values[i]);
	free(s->values);
	free(s->counts);
	free(s);
}

static void metric_free(struct metric *f)
{
	if (!f)
		return;
	for (size_t i = 0; i < f->n_series; i++)
		series_free(f->series[i], f->n_labels);
	free(f->series);
	for (size_t i = 0; i < f->n_labels; i++)
		free(f->labels[i]);
	free(f->labels);
	free(f->bounds);
	free(f->name);
	free(f->help);
	free(f);
}
DEFINE_TRIVIAL_CLEANUP_FUNC(struct metric *, metric_free)

struct metrics *metrics_free(struct metrics *m)
{
	if (!m)
		return NULL;
	for (size_t i = 0; i < m->n_metrics; i++)
		metric_free(m->metrics[i]);
	free(m->metrics);
	free(m->collectors);
	free(m);
	return NULL;
}

/* RFC 3629 UTF-8 (no overlong forms, surrogates or code points above U+10FFFF): the text
 * format requires it and Prometheus' parser rejects the whole scrape otherwise. */
static bool utf8_valid(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s, *end = p + n;

	while (p < end) {
		unsigned c = *p, len, cp;

		if (c < 0x80) {
			p++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf)
			len = 2, cp = c & 0x1f;
		else if (c >= 0xe0 && c <= 0xef)
			len = 3, cp = c & 0x0f;
		else if (c >= 0xf0 && c <= 0xf4)
			len = 4, cp = c & 0x07;
		else
			return false;
		if ((size_t)(end - p) < len)
			return false;
		for (unsigned i = 1; i < len; i++) {
			if ((p[i] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (p[i] & 0x3f);
		}
		if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		p += len;
	}
	return true;
}

static bool name_valid(const char *s, bool colons)
{
	if (isempty(s))
		return false;
	for (size_t i = 0; s[i]; i++) {
		char c = s[i];
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
			  (colons && c == ':') || (i > 0 && c >= '0' && c <= '9');
		if (!ok)
			return false;
	}
	return true;
}

static int labels_validate(const struct metric_desc *d, enum metric_type type, size_t *ret_n)
{
	size_t n = 0;

	for (; d->labels && d->labels[n]; n++) {
		const char *l = d->labels[n];

		if (n >= METRICS_MAX_LABELS)
			return log_debug_errno(EINVAL, "metric %s: more than %d labels", d->name,
					       METRICS_MAX_LABELS);
		if (!name_valid(l, false) || strncmp(l, "__", 2) == 0)
			return log_debug_errno(EINVAL, "metric %s: invalid label name \"%s\"",
					       d->name, l);
		if (type == METRIC_HISTOGRAM && streq(l, "le"))
			return log_debug_errno(
			    EINVAL, "histogram %s: label name \"le\" is reserved", d->name);
		for (size_t j = 0; j < n; j++)
			if (streq(d->labels[j], l))
				return log_debug_errno(
				    EINVAL, "metric %s: label \"%s\" given twice", d->name, l);
	}
	*ret_n = n;
	return 0;
}

static int buckets_validate(const struct metric_desc *d, size_t *ret_n)
{
	size_t n = d->n_buckets;

	if (n > MAX_BUCKETS)
		return log_debug_errno(EINVAL, "histogram %s: more than %d buckets", d->name,
				       MAX_BUCKETS);
	if (n > 0 && isinf(d->buckets[n - 1]) && d->buckets[n - 1] > 0)
		n--; /* +Inf is always there */
	for (size_t i = 0; i < n; i++) {
		if (!isfinite(d->buckets[i]))
			return log_debug_errno(EINVAL, "histogram %s: bucket %zu is not finite",
					       d->name, i);
		if (i > 0 && d->buckets[i] <= d->buckets[i - 1])
			return log_debug_errno(EINVAL,
					       "histogram %s: bucket %zu is not above bucket %zu",
					       d->name, i, i - 1);
	}
	*ret_n = n;
	return 0;
}

static bool has_suffix_of(const char *name, const char *base, const char *suffix)
{
	size_t n = strlen(base);

	return strncmp(name, base, n) == 0 && streq(name + n, suffix);
}

/* A histogram named h also exposes h_bucket, h_sum and h_count. */
static bool names_clash(const struct metric *f, const char *name, enum metric_type type)
{
	static const char *const suffixes[] = { "_bucket", "_sum", "_count" };

	if (streq(f->name, name))
		return true;
	for (size_t i = 0; i < ELEMENTSOF(suffixes); i++)
		if ((f->type == METRIC_HISTOGRAM && has_suffix_of(name, f->name, suffixes[i])) ||
		    (type == METRIC_HISTOGRAM && has_suffix_of(f->name, name, suffixes[i])))
			return true;
	return false;
}

static int metric_new(const struct metric_desc *d, enum metric_type type, size_t n_labels,
		      size_t n_bounds, struct metric **ret)
{
	_cleanup_(metric_freep) struct metric *f = calloc(1, sizeof *f);

	if (!f)
		return -ENOMEM;
	f->type = type;
	f->max_series = d->max_series ? d->max_series : METRICS_DEFAULT_MAX_SERIES;
	f->name = strdup(d->name);
	f->help = strdup(d->help);
	if (!f->name || !f->help)
		return -ENOMEM;
	if (n_labels) {
		f->labels = calloc(n_labels, sizeof *f->labels);
		if (!f->labels)
			return -ENOMEM;
		for (; f->n_labels < n_labels; f->n_labels++) {
			f->labels[f->n_labels] = strdup(d->labels[f->n_labels]);
			if (!f->labels[f->n_labels])
				return -ENOMEM;
		}
	}
	if (type == METRIC_HISTOGRAM) {
		const double *b = d->buckets ? d->buckets : default_buckets;

		f->bounds = calloc(n_bounds ? n_bounds : 1, sizeof *f->bounds);
		if (!f->bounds)
			return -ENOMEM;
		memcpy(f->bounds, b, n_bounds * sizeof *b);
		f->n_bounds = n_bounds;
	}
	*ret = TAKE_PTR(f);
	return 0;
}

static int series_get(struct metric *f, const char *const *values, bool create,
		      struct series **ret);

int metrics_add(struct metrics *m, enum metric_type type, const struct metric_desc *d,
		struct metric **ret)
{
	_cleanup_(metric_freep) struct metric *f = NULL;
	size_t n_labels = 0, n_bounds = 0, pos = 0;
	struct metric **a;
	struct series *s;
	int r;

	if (!m || !d || (unsigned)type >= _METRIC_TYPE_MAX)
		return -EINVAL;
	if (!name_valid(d->name, true))
		return log_debug_errno(EINVAL, "invalid metric name \"%s\"",
				       d->name ? d->name : "");
	if (isempty(d->help) || !utf8_valid(d->help, strlen(d->help)))
		return log_debug_errno(EINVAL, "metric %s: help text missing or not UTF-8",
				       d->name);
	r = labels_validate(d, type, &n_labels);
	if (r < 0)
		return r;
	if (type == METRIC_HISTOGRAM && d->buckets) {
		r = buckets_validate(d, &n_bounds);
		if (r < 0)
			return r;
	} else if (type == METRIC_HISTOGRAM) {
		n_bounds = ELEMENTSOF(default_buckets);
	}
	for (size_t i = 0; i < m->n_metrics; i++) {
		if (names_clash(m->metrics[i], d->name, type))
			return log_debug_errno(EEXIST, "metric %s clashes with metric %s", d->name,
					       m->metrics[i]->name);
		if (strcmp(m->metrics[i]->name, d->name) < 0)
			pos = i + 1;
	}

	r = metric_new(d, type, n_labels, n_bounds, &f);
	if (r < 0)
		return r;
	f->registry = m;
	/* an unlabelled metric is one series that exists from the start, reading 0 */
	if (n_labels == 0) {
		r = series_get(f, NULL, true, &s);
		if (r < 0)
			return r;
	}
	a = reallocarray(m->metrics, m->n_metrics + 1, sizeof *a);
	if (!a)
		return -ENOMEM;
	m->metrics = a;
	memmove(a + pos + 1, a + pos, (m->n_metrics - pos) * sizeof *a);
	a[pos] = f;
	m->n_metrics++;
	if (ret)
		*ret = f;
	TAKE_PTR(f);
	return 0;
}

int metrics_new(struct metrics **ret)
{
	_cleanup_(metrics_freep) struct metrics *m = calloc(1, sizeof *m);
	int r;

	if (!m)
		return -ENOMEM;
	/* Its series are bounded by the number of metrics, which code registers. */
	r = metrics_add(m, METRIC_COUNTER,
			&(struct metric_desc){
			    .name = DROPPED_NAME,
			    .help = "Updates dropped because the metric had reached its cap "
				    "on label value combinations.",
			    .labels = METRIC_LABELS("metric"),
			    .max_series = SIZE_MAX,
			},
			&m->dropped);
	if (r < 0)
		return r;
	*ret = TAKE_PTR(m);
	return 0;
}

int metrics_add_collector(struct metrics *m, metrics_collect_fn fn, void *userdata)
{
	struct collector *c;

	if (!m || !fn)
		return -EINVAL;
	c = reallocarray(m->collectors, m->n_collectors + 1, sizeof *c);
	if (!c)
		return -ENOMEM;
	m->collectors = c;
	c[m->n_collectors++] = (struct collector){ .fn = fn, .userdata = userdata };
	return 0;
}

static int values_compare(const struct metric *f, char *const *a, const char *const *b)
{
	for (size_t i = 0; i < f->n_labels; i++) {
		int c = strcmp(a[i], b[i]);
		if (c != 0)
			return c;
	}
	return 0;
}

static int values_validate(const struct metric *f, const char *const *values)
{
	size_t n = 0;

	for (; values && values[n]; n++) {
		size_t len = strlen(values[n]);

		if (n >= f->n_labels)
			break;
		if (len > METRICS_MAX_LABEL_VALUE)
			return log_debug_errno(EINVAL,
					       "metric %s: value of label %s is %zu bytes "
					       "long (max %d)",
					       f->name, f->labels[n], len, METRICS_MAX_LABEL_VALUE);
		if (!utf8_valid(values[n], len))
			return log_debug_errno(EINVAL, "metric %s: value of label %s is not UTF-8",
					       f->name, f->labels[n]);
	}
	if (n != f->n_labels || (values && values[n]))
		return log_debug_errno(EINVAL, "metric %s: got %s label values, want %zu", f->name,
				       n < f->n_labels ? "fewer" : "more", f->n_labels);
	return 0;
}

static int series_new(const struct metric *f, const char *const *values, struct series **ret)
{
	struct series *s = calloc(1, sizeof *s);
	bool ok = s;

	if (ok && f->n_labels) {
		s->values = calloc(f->n_labels, sizeof *s->values);
		ok = s->values;
		for (size_t i = 0; ok && i < f->n_labels; i++)
			ok = (s->values[i] = strdup(values[i]));
	}
	if (ok && f->type == METRIC_HISTOGRAM)
		ok = (s->counts = calloc(f->n_bounds + 1, sizeof *s->counts));
	if (!ok) {
		series_free(s, f->n_labels);
		return -ENOMEM;
	}
	*ret = s;
	return 0;
}

/* Find (binary search over the sorted table) or create the series for values. At the cap
 * a new series is refused and the drop counted. */
static int series_get(struct metric *f, const char *const *values, bool create, struct series **ret)
{
	size_t lo = 0, hi = f->n_series;
	struct series **a, *s;
	int r;

	r = values_validate(f, values);
	if (r < 0)
		return r;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = values_compare(f, f->series[mid]->values, values);

		if (c == 0) {
			*ret = f->series[mid];
			return 0;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (!create)
		return -ENOENT;
	if (f->n_series >= f->max_series) {
		if (f->registry && f->registry->dropped && f != f->registry->dropped)
			(void)metric_inc(f->registry->dropped, METRIC_LABELS(f->name));
		return -ENOSPC;
	}
	a = reallocarray(f->series, f->n_series + 1, sizeof *a);
	if (!a)
		return -ENOMEM;
	f->series = a;
	r = series_new(f, values, &s);
	if (r < 0)
		return r;
	memmove(a + lo + 1, a + lo, (f->n_series - lo) * sizeof *a);
	a[lo] = s;
	f->n_series++;
	*ret = s;
	return 0;
}

int metric_add(struct metric *f, const char *const *values, double v)
{
	struct series *s;
	int r;

	if (!f || f->type == METRIC_HISTOGRAM)
		return -EINVAL;
	if (f->type == METRIC_COUNTER && !(v >= 0))
		return log_debug_errno(EINVAL, "counter %s: cannot add %g", f->name, v);
	r = series_get(f, values, true, &s);
	if (r < 0)
		return r;
	s->value += v;
	return 0;
}

int metric_inc(struct metric *f, const char *const *values)
{
	return metric_add(f, values, 1);
}

int metric_set(struct metric *f, const char *const *values, double v)
{
	struct series *s;
	int r;

	if (!f || f->type == METRIC_HISTOGRAM)
		return -EINVAL;
	if (f->type == METRIC_COUNTER && !(v >= 0))
		return log_debug_errno(EINVAL, "counter %s: cannot be set to %g", f->name, v);
	r = series_get(f, values, true, &s);
	if (r < 0)
		return r;
	s->value = v;
	return 0;
}

int metric_observe(struct metric *f, const char *const *values, double v)
{
	struct series *s;
	size_t i = 0;
	int r;

	if (!f || f->type != METRIC_HISTOGRAM)
		return -EINVAL;
	r = series_get(f, values, true, &s);
	if (r < 0)
		return r;
	/* upper bounds are inclusive ("le"); NaN lands in +Inf only, like the Go client */
	while (i < f->n_bounds && !(v <= f->bounds[i]))
		i++;
	s->counts[i]++;
	s->count++;
	s->sum += v;
	return 0;
}

int metric_get(struct metric *f, const char *const *values, double *ret)
{
	struct series *s;
	int r;

	if (!f || f->type == METRIC_HISTOGRAM)
		return -EINVAL;
	r = series_get(f, values, false, &s);
	if (r < 0)
		return r;
	*ret = s->value;
	return 0;
}

/* Shortest text that reads back as the same double; the format's spellings of the
 * special values. */
static void format_double(char *out, size_t n, double v)
{
	if (isnan(v)) {
		snprintf(out, n, "NaN");
		return;
	}
	if (isinf(v)) {
		snprintf(out, n, v > 0 ? "+Inf" : "-Inf");
		return;
	}
	/* integers as such (byte counts, fds), which %g would turn into exponents */
	if (v == floor(v) && fabs(v) < 9007199254740992.0) {
		snprintf(out, n, "%.0f", v);
		return;
	}
	for (int prec = 1; prec <= 17; prec++) {
		snprintf(out, n, "%.*g", prec, v);
		if (strtod(out, NULL) == v)
			return;
	}
}

static int append_escaped(struct buf *out, const char *s, bool quote)
{
	const char *p = s;
	int r = 0;

	for (; *p && r >= 0; p++) {
		if (*p == '\\')
			r = buf_append(out, "\\\\", 2);
		else if (*p == '\n')
			r = buf_append(out, "\\n", 2);
		else if (quote && *p == '"')
			r = buf_append(out, "\\\"", 2);
		else
			r = buf_append(out, p, 1);
	}
	return r;
}

/* name{a="x",b="y"[,le="…"]} value */
static int render_sample(struct buf *out, const struct metric *f, const struct series *s,
			 const char *suffix, const char *le, double value)
{
	char num[32];
	int r;

	r = buf_printf(out, "%s%s", f->name, suffix);
	if (r >= 0 && (f->n_labels || le))
		r = buf_append(out, "{", 1);
	for (size_t i = 0; r >= 0 && i < f->n_labels; i++) {
		r = buf_printf(out, "%s%s=\"", i ? "," : "", f->labels[i]);
		if (r >= 0)
			r = append_escaped(out, s->values[i], true);
		if (r >= 0)
			r = buf_append(out, "\"", 1);
	}
	if (r >= 0 && le)
		r = buf_printf(out, "%sle=\"%s\"", f->n_labels ? "," : "", le);
	if (r >= 0 && (f->n_labels || le))
		r = buf_append(out, "}", 1);
	format_double(num, sizeof num, value);
	if (r >= 0)
		r = buf_printf(out, " %s\n", num);
	return r;
}

static int render_histogram(struct buf *out, const struct metric *f, const struct series *s)
{
	uint64_t cumulative = 0;
	char le[32];
	int r = 0;

	for (size_t i = 0; r >= 0 && i <= f->n_bounds; i++) {
		cumulative += s->counts[i];
		if (i < f->n_bounds)
			format_double(le, sizeof le, f->bounds[i]);
		else
			snprintf(le, sizeof le, "+Inf");
		r = render_sample(out, f, s, "_bucket", le, (double)cumulative);
	}
	if (r >= 0)
		r = render_sample(out, f, s, "_sum", NULL, s->sum);
	if (r >= 0)
		r = render_sample(out, f, s, "_count", NULL, (double)s->count);
	return r;
}

static int render_metric(struct buf *out, const struct metric *f)
{
	int r;

	r = buf_printf(out, "# HELP %s ", f->name);
	if (r >= 0)
		r = append_escaped(out, f->help, false);
	if (r >= 0)
		r = buf_printf(out, "\n# TYPE %s %s\n", f->name, type_names[f->type]);
	for (size_t i = 0; r >= 0 && i < f->n_series; i++)
		r = f->type == METRIC_HISTOGRAM
			? render_histogram(out, f, f->series[i])
			: render_sample(out, f, f->series[i], "", NULL, f->series[i]->value);
	return r;
}

int metrics_render(struct metrics *m, struct buf *out)
{
	size_t start;
	int r = 0;

	if (!m || !out)
		return -EINVAL;
	for (size_t i = 0; i < m->n_collectors; i++) {
		r = m->collectors[i].fn(m, m->collectors[i].userdata);
		if (r < 0)
			log_debug_errno(r, "metrics collector %zu failed, keeping old values: %m",
					i);
	}
	start = out->len;
	r = 0;
	for (size_t i = 0; i < m->n_metrics && r >= 0; i++)
		r = render_metric(out, m->metrics[i]);
	if (r < 0) {
		out->len = start;
		if (out->data)
			out->data[start] = 0;
		return r;
	}
	return 0;
}

/* ---- process collector: the Go client's process_* metrics, from /proc/self ---- */

DEFINE_TRIVIAL_CLEANUP_FUNC(FILE *, fclose)

struct proc_stat {
	unsigned long long utime, stime, starttime, vsize;
	long long rss;
};

static int proc_read_stat(struct proc_stat *ret)
{
	_cleanup_(fclosep) FILE *f = fopen("/proc/self/stat", "re");
	struct proc_stat st;
	char line[4096], *p;

	if (!f)
		return -errno;
	if (!fgets(line, sizeof line, f))
		return -EIO;
	/* the command name in parentheses may hold spaces and ')' itself */
	p = strrchr(line, ')');
	if (!p || sscanf(p + 1,
			 " %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %llu %llu %*s %*s %*s %*s"
			 " %*s %*s %llu %llu %lld",
			 &st.utime, &st.stime, &st.starttime, &st.vsize, &st.rss) != 5)
		return log_debug_errno(EBADMSG, "/proc/self/stat: unexpected format");
	*ret = st;
	return 0;
}

static int proc_read_btime(unsigned long long *ret)
{
	_cleanup_(fclosep) FILE *f = fopen("/proc/stat", "re");
	char line[256];

	if (!f)
		return -errno;
	while (fgets(line, sizeof line, f))
		if (sscanf(line, "btime %llu", ret) == 1)
			return 0;
	return log_debug_errno(EBADMSG, "/proc/stat: no btime line");
}

static int proc_count_fds(void)
{
	int fd = open("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct dirent *de;
	int n = 0;
	DIR *d;

	if (fd < 0)
		return -errno;
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -errno;
	}
	while ((de = readdir(d)))
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1; /* the directory's own fd */
}

static int process_collect(struct metrics *m, void *userdata)
{
	long ticks = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
	unsigned long long btime;
	struct proc_stat st;
	struct rlimit rl;
	int r, fds;

	r = proc_read_stat(&st);
	if (r < 0)
		return r;
	r = proc_read_btime(&btime);
	if (r < 0)
		return r;
	fds = proc_count_fds();
	if (fds < 0)
		return fds;
	if (ticks <= 0 || page <= 0)
		return -EINVAL;
	(void)metric_set(m->process[PROCESS_CPU], NULL, (double)(st.utime + st.stime) / ticks);
	(void)metric_set(m->process[PROCESS_RSS], NULL, (double)st.rss * page);
	(void)metric_set(m->process[PROCESS_VSIZE], NULL, (double)st.vsize);
	(void)metric_set(m->process[PROCESS_FDS], NULL, fds);
	(void)metric_set(m->process[PROCESS_START], NULL,
			 (double)btime + (double)st.starttime / ticks);
	if (getrlimit(RLIMIT_NOFILE, &rl) >= 0)
		(void)metric_set(m->process[PROCESS_MAX_FDS], NULL,
				 rl.rlim_cur == RLIM_INFINITY ? INFINITY : (double)rl.rlim_cur);
	return 0;
}

int metrics_add_process_collector(struct metrics *m)
{
	static const struct {
		enum metric_type type;
		const char *name, *help;
	} defs[_PROCESS_METRIC_MAX] = {
		[PROCESS_CPU] = { METRIC_COUNTER, "process_cpu_seconds_total",
				  "Total user and system CPU time spent in seconds." },
		[PROCESS_RSS] = { METRIC_GAUGE, "process_resident_memory_bytes",
				  "Resident memory size in bytes." },
		[PROCESS_VSIZE] = { METRIC_GAUGE, "process_virtual_memory_bytes",
				    "Virtual memory size in bytes." },
		[PROCESS_FDS] = { METRIC_GAUGE, "process_open_fds",
				  "Number of open file descriptors." },
		[PROCESS_MAX_FDS] = { METRIC_GAUGE, "process_max_fds",
				      "Maximum number of open file descriptors." },
		[PROCESS_START] = { METRIC_GAUGE, "process_start_time_seconds",
				    "Start time of the process since unix epoch in seconds." },
	};
	int r;

	if (!m)
		return -EINVAL;
	if (m->process[0])
		return -EEXIST;
	for (size_t i = 0; i < _PROCESS_METRIC_MAX; i++) {
		r = metrics_add(m, defs[i].type,
				&(struct metric_desc){ .name = defs[i].name, .help = defs[i].help },
				&m->process[i]);
		if (r < 0)
			return r;
	}
	return metrics_add_collector(m, process_collect, NULL);
}
