/* Prometheus metrics registry: counters, gauges and histograms with labels, rendered in the
 * text exposition format 0.0.4 (what `promtool check metrics` and every Prometheus server
 * read). The HTTP endpoint that serves it lives elsewhere; it calls metrics_render() and
 * answers with METRICS_CONTENT_TYPE.
 *
 * A metric (family) has a fixed list of label names; each distinct tuple of label values is
 * one series ("child"). Label values often come from outside (pod names, HTTP paths), so
 * every metric caps its number of series: once full, updates for a new tuple are dropped
 * and counted in cocoon_metrics_dropped_series_total{metric="<name>"}, which every
 * registry carries. Memory never grows without bound.
 *
 * Output is stable: metrics sorted by name, series by label values. */
#pragma once

#include <stddef.h>

#include "cocoon/buf.h"
#include "cocoon/macro.h"

#define METRICS_CONTENT_TYPE       "text/plain; version=0.0.4; charset=utf-8"
#define METRICS_DEFAULT_MAX_SERIES 1000
#define METRICS_MAX_LABELS         16
#define METRICS_MAX_LABEL_VALUE    1024 /* bytes; longer values are refused */

/* A NULL-terminated list of label names or values, e.g. METRIC_LABELS("GET", "200"). */
#define METRIC_LABELS(...) ((const char *const[]){ __VA_ARGS__, NULL })

struct metrics;
struct metric;

enum metric_type {
	METRIC_COUNTER,
	METRIC_GAUGE,
	METRIC_HISTOGRAM,
	_METRIC_TYPE_MAX,
};

struct metric_desc {
	const char *name;          /* [a-zA-Z_:][a-zA-Z0-9_:]*; counters should end in _total */
	const char *help;          /* required, UTF-8 */
	const char *const *labels; /* NULL-terminated names, [a-zA-Z_][a-zA-Z0-9_]*, no "__"
				    * prefix ("le" is reserved in histograms); NULL: none */
	const double *buckets;     /* histograms: strictly increasing upper bounds; +Inf is
				    * implied. NULL: Prometheus' defaults (0.005 … 10) */
	size_t n_buckets;
	size_t max_series; /* 0: METRICS_DEFAULT_MAX_SERIES */
};

/* Called by metrics_render() before it writes anything, to refresh values that are read
 * rather than counted (sizes of caches, /proc figures). An error is logged at debug and
 * the render goes on with the previous values. */
typedef int (*metrics_collect_fn)(struct metrics *m, void *userdata);

int metrics_new(struct metrics **ret);
struct metrics *metrics_free(struct metrics *m);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct metrics *, metrics_free)

/* Register a metric. -EINVAL for a bad name, label name, help text or bucket list,
 * -EEXIST when the name (or a histogram's _bucket/_sum/_count series) is taken. ret (may be
 * NULL) receives a handle owned by the registry. An unlabelled metric starts at 0. */
int metrics_add(struct metrics *m, enum metric_type type, const struct metric_desc *d,
		struct metric **ret);
int metrics_add_collector(struct metrics *m, metrics_collect_fn fn, void *userdata);
/* process_cpu_seconds_total, process_resident_memory_bytes, process_virtual_memory_bytes,
 * process_open_fds, process_max_fds and process_start_time_seconds, from /proc/self. */
int metrics_add_process_collector(struct metrics *m);

/* Updates. values: one per label name (NULL for an unlabelled metric), valid UTF-8 of at
 * most METRICS_MAX_LABEL_VALUE bytes. -EINVAL for a wrong count or bad value, a negative
 * counter increment or an operation the type does not have; -ENOSPC when the metric is at
 * its series cap (the update is dropped and counted). */
int metric_inc(struct metric *f, const char *const *values);           /* counter, gauge */
int metric_add(struct metric *f, const char *const *values, double v); /* counter, gauge */
/* gauge; counter only to mirror a monotonic count kept elsewhere (e.g. /proc) */
int metric_set(struct metric *f, const char *const *values, double v);
int metric_observe(struct metric *f, const char *const *values, double v); /* histogram */
/* The current value of a counter or gauge series (tests, collectors). */
int metric_get(struct metric *f, const char *const *values, double *ret);

/* Append the exposition text to out. When out's cap is hit: -E2BIG, out as it was. */
int metrics_render(struct metrics *m, struct buf *out);
