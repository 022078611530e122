/* metrics: exact exposition text, escaping, histogram buckets, the series cap, name rules,
 * the process collector, and promtool's verdict on a registry with every kind. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#include "cocoon/metrics.h"

static const char *render(struct metrics *m, struct buf *out)
{
	buf_reset(out);
	assert_int_equal(metrics_render(m, out), 0);
	return out->data;
}

static void test_golden(void **state)
{
	_cleanup_(metrics_freep) struct metrics *m = NULL;
	struct metric *req, *temp, *lat;
	struct buf out = BUF_INIT(0);

	assert_int_equal(metrics_new(&m), 0);
	/* registered out of order: the output is sorted by name */
	assert_int_equal(metrics_add(m, METRIC_GAUGE,
				     &(struct metric_desc){ .name = "app_temperature_celsius",
							    .help = "Current temperature." },
				     &temp),
			 0);
	assert_int_equal(
	    metrics_add(m, METRIC_COUNTER,
			&(struct metric_desc){ .name = "app_requests_total",
					       .help = "Requests handled.",
					       .labels = METRIC_LABELS("method", "code") },
			&req),
	    0);
	assert_int_equal(metrics_add(m, METRIC_HISTOGRAM,
				     &(struct metric_desc){ .name = "app_latency_seconds",
							    .help = "Request latency.",
							    .labels = METRIC_LABELS("op"),
							    .buckets = (const double[]){ 0.1, 1 },
							    .n_buckets = 2 },
				     &lat),
			 0);
	assert_int_equal(metric_inc(req, METRIC_LABELS("POST", "201")), 0);
	assert_int_equal(metric_inc(req, METRIC_LABELS("GET", "200")), 0);
	assert_int_equal(metric_add(req, METRIC_LABELS("GET", "200"), 2), 0);
	assert_int_equal(metric_inc(req, METRIC_LABELS("GET", "404")), 0);
	assert_int_equal(metric_set(temp, NULL, -3.5), 0);
	assert_int_equal(metric_observe(lat, METRIC_LABELS("read"), 0.05), 0);
	assert_int_equal(metric_observe(lat, METRIC_LABELS("read"), 0.5), 0);
	assert_int_equal(metric_observe(lat, METRIC_LABELS("read"), 7), 0);

	assert_string_equal(
	    render(m, &out),
	    "# HELP app_latency_seconds Request latency.\n"
	    "# TYPE app_latency_seconds histogram\n"
	    "app_latency_seconds_bucket{op=\"read\",le=\"0.1\"} 1\n"
	    "app_latency_seconds_bucket{op=\"read\",le=\"1\"} 2\n"
	    "app_latency_seconds_bucket{op=\"read\",le=\"+Inf\"} 3\n"
	    "app_latency_seconds_sum{op=\"read\"} 7.55\n"
	    "app_latency_seconds_count{op=\"read\"} 3\n"
	    "# HELP app_requests_total Requests handled.\n"
	    "# TYPE app_requests_total counter\n"
	    "app_requests_total{method=\"GET\",code=\"200\"} 3\n"
	    "app_requests_total{method=\"GET\",code=\"404\"} 1\n"
	    "app_requests_total{method=\"POST\",code=\"201\"} 1\n"
	    "# HELP app_temperature_celsius Current temperature.\n"
	    "# TYPE app_temperature_celsius gauge\n"
	    "app_temperature_celsius -3.5\n"
	    "# HELP cocoon_metrics_dropped_series_total Updates dropped because the "
	    "metric had reached its cap on label value combinations.\n"
	    "# TYPE cocoon_metrics_dropped_series_total counter\n");
	buf_free(&out);
}

static void test_values_and_numbers(void **state)
{
	_cleanup_(metrics_freep) struct metrics *m = NULL;
	struct metric *g, *c;
	struct buf out = BUF_INIT(0);
	double v;

	assert_int_equal(metrics_new(&m), 0);
	assert_int_equal(metrics_add(m, METRIC_GAUGE,
				     &(struct metric_desc){
					 .name = "g", .help = "h", .labels = METRIC_LABELS("k") },
				     &g),
			 0);
	assert_int_equal(metrics_add(m, METRIC_COUNTER,
				     &(struct metric_desc){ .name = "c_total", .help = "h" }, &c),
			 0);
	assert_int_equal(metric_set(g, METRIC_LABELS("a"), 0.1), 0);
	assert_int_equal(metric_set(g, METRIC_LABELS("b"), 1e21), 0);
	assert_int_equal(metric_set(g, METRIC_LABELS("c"), NAN), 0);
	assert_int_equal(metric_set(g, METRIC_LABELS("d"), -INFINITY), 0);
	assert_int_equal(metric_set(g, METRIC_LABELS("e"), 123456789), 0);
	assert_int_equal(metric_add(g, METRIC_LABELS("e"), -9), 0); /* gauges go down */
	assert_int_equal(metric_get(g, METRIC_LABELS("e"), &v), 0);
	assert_true(v == 123456780);
	assert_int_equal(metric_get(g, METRIC_LABELS("zz"), &v), -ENOENT);
	render(m, &out);
	assert_non_null(strstr(out.data, "\ng{k=\"a\"} 0.1\n"));
	assert_non_null(strstr(out.data, "\ng{k=\"b\"} 1e+21\n"));
	assert_non_null(strstr(out.data, "\ng{k=\"c\"} NaN\n"));
	assert_non_null(strstr(out.data, "\ng{k=\"d\"} -Inf\n"));
	assert_non_null(strstr(out.data, "\ng{k=\"e\"} 123456780\n"));
	/* an unlabelled metric is there from the start */
	assert_non_null(strstr(out.data, "\nc_total 0\n"));

	/* counters only go up */
	assert_int_equal(metric_add(c, NULL, -1), -EINVAL);
	assert_int_equal(metric_add(c, NULL, NAN), -EINVAL);
	assert_int_equal(metric_set(c, NULL, -1), -EINVAL);
	assert_int_equal(metric_add(c, NULL, 0.25), 0);
	assert_int_equal(metric_get(c, NULL, &v), 0);
	assert_true(v == 0.25);
	/* operations a type does not have */
	assert_int_equal(metric_observe(c, NULL, 1), -EINVAL);
	buf_free(&out);
}

static void test_escaping(void **state)
{
	_cleanup_(metrics_freep) struct metrics *m = NULL;
	struct metric *f;
	struct buf out = BUF_INIT(0);

	assert_int_equal(metrics_new(&m), 0);
	assert_int_equal(
	    metrics_add(m, METRIC_GAUGE,
			&(struct metric_desc){ .name = "esc",
					       .help = "Back\\slash and\nnewline, \"quotes\" kept.",
					       .labels = METRIC_LABELS("path") },
			&f),
	    0);
	assert_int_equal(metric_set(f, METRIC_LABELS("C:\\dir\n\"x\" é"), 1), 0);
	render(m, &out);
	assert_non_null(strstr(out.data,
			       "# HELP esc Back\\\\slash and\\nnewline, \"quotes\" kept.\n"
			       "# TYPE esc gauge\n"
			       "esc{path=\"C:\\\\dir\\n\\\"x\\\" é\"} 1\n"));
	buf_free(&out);
}

static void test_histogram_buckets(void **state)
{
	_cleanup_(metrics_freep) struct metrics *m = NULL;
	struct metric *h, *d;
	struct buf out = BUF_INIT(0);

	assert_int_equal(metrics_new(&m), 0);
	/* a trailing +Inf is accepted and not doubled */
	assert_int_equal(
	    metrics_add(m, METRIC_HISTOGRAM,
			&(struct metric_desc){ .name = "h",
					       .help = "h",
					       .buckets = (const double[]){ -1, 0, 2.5, INFINITY },
					       .n_buckets = 4 },
			&h),
	    0);
	/* bounds are inclusive */
	double obs[] = { -5, -1, 0, 0.1, 2.5, 2.6, 100 };
	for (size_t i = 0; i < ELEMENTSOF(obs); i++)
		assert_int_equal(metric_observe(h, NULL, obs[i]), 0);
	render(m, &out);
	assert_non_null(strstr(out.data, "# TYPE h histogram\n"
					 "h_bucket{le=\"-1\"} 2\n"
					 "h_bucket{le=\"0\"} 3\n"
					 "h_bucket{le=\"2.5\"} 5\n"
					 "h_bucket{le=\"+Inf\"} 7\n"
					 "h_sum 99.2\n"
					 "h_count 7\n"));

	/* the default buckets, and an unobserved histogram reads 0 everywhere */
	assert_int_equal(
	    metrics_add(m, METRIC_HISTOGRAM, &(struct metric_desc){ .name = "d", .help = "d" }, &d),
	    0);
	render(m, &out);
	assert_non_null(strstr(out.data, "d_bucket{le=\"0.005\"} 0\nd_bucket{le=\"0.01\"} 0\n"));
	assert_non_null(strstr(out.data, "d_bucket{le=\"10\"} 0\nd_bucket{le=\"+Inf\"} 0\n"
					 "d_sum 0\nd_count 0\n"));
	buf_free(&out);
}

static void test_series_cap(void **state)
{
	_cleanup_(metrics_freep) struct metrics *m = NULL;
	struct metric *f, *h;
	struct buf out = BUF_INIT(0);

	assert_int_equal(metrics_new(&m), 0);
	assert_int_equal(metrics_add(m, METRIC_COUNTER,
				     &(struct metric_desc){ .name = "pods_total",
							    .help = "h",
							    .labels = METRIC_LABELS("pod"),
							    .max_series = 2 },
				     &f),
			 0);
	assert_int_equal(metrics_add(m, METRIC_HISTOGRAM,
				     &(struct metric_desc){ .name = "lat",
							    .help = "h",
							    .labels = METRIC_LABELS("pod"),
							    .max_series = 1 },
				     &h),
			 0);
	assert_int_equal(metric_inc(f, METRIC_LABELS("a")), 0);
	assert_int_equal(metric_inc(f, METRIC_LABELS("b")), 0);
	for (int i = 0; i < 1000; i++) {
		char v[16];
		snprintf(v, sizeof v, "x%d", i);
		assert_int_equal(metric_inc(f, METRIC_LABELS(v)), -ENOSPC);
	}
	/* the existing series keep working */
	assert_int_equal(metric_inc(f, METRIC_LABELS("a")), 0);
	assert_int_equal(metric_observe(h, METRIC_LABELS("a"), 1), 0);
	assert_int_equal(metric_observe(h, METRIC_LABELS("b"), 1), -ENOSPC);

	render(m, &out);
	assert_non_null(strstr(out.data, "pods_total{pod=\"a\"} 2\npods_total{pod=\"b\"} 1\n"));
	assert_null(strstr(out.data, "x0"));
	assert_null(strstr(out.data, "lat_count{pod=\"b\"}"));
	assert_non_null(strstr(out.data,
			       "cocoon_metrics_dropped_series_total{metric=\"lat\"} 1\n"
			       "cocoon_metrics_dropped_series_total{metric=\"pods_total\"} "
			       "1000\n"));
	buf_free(&out);
}

static void test_invalid_registration(void **state)
{
	_cleanup_(metrics_freep) struct metrics *m = NULL;
	static const char *const bad_names[] = { "", "1abc", "a-b", "a b", "ä", "a.b" };
	const char *const *const bad_labels[] = {
		METRIC_LABELS("__reserved"), METRIC_LABELS("1a"),     METRIC_LABELS("a-b"),
		METRIC_LABELS("a:b"),        METRIC_LABELS("x", "x"), METRIC_LABELS(""),
	};

	assert_int_equal(metrics_new(&m), 0);
	for (size_t i = 0; i < ELEMENTSOF(bad_names); i++)
		assert_int_equal(
		    metrics_add(m, METRIC_GAUGE,
				&(struct metric_desc){ .name = bad_names[i], .help = "h" }, NULL),
		    -EINVAL);
	for (size_t i = 0; i < ELEMENTSOF(bad_labels); i++)
		assert_int_equal(
		    metrics_add(
			m, METRIC_GAUGE,
			&(struct metric_desc){ .name = "ok", .help = "h", .labels = bad_labels[i] },
			NULL),
		    -EINVAL);
	assert_int_equal(metrics_add(m, METRIC_GAUGE, &(struct metric_desc){ .name = "ok" }, NULL),
			 -EINVAL); /* no help */
	assert_int_equal(metrics_add(m, METRIC_GAUGE,
				     &(struct metric_desc){ .name = "ok", .help = "bad \xff" },
				     NULL),
			 -EINVAL);
	assert_int_equal(metrics_add(m, METRIC_HISTOGRAM,
				     &(struct metric_desc){
					 .name = "ok", .help = "h", .labels = METRIC_LABELS("le") },
				     NULL),
			 -EINVAL);
	assert_int_equal(metrics_add(m, METRIC_HISTOGRAM,
				     &(struct metric_desc){ .name = "ok",
							    .help = "h",
							    .buckets = (const double[]){ 1, 1 },
							    .n_buckets = 2 },
				     NULL),
			 -EINVAL);
	assert_int_equal(metrics_add(m, METRIC_HISTOGRAM,
				     &(struct metric_desc){ .name = "ok",
							    .help = "h",
							    .buckets = (const double[]){ NAN },
							    .n_buckets = 1 },
				     NULL),
			 -EINVAL);
	assert_int_equal(
	    metrics_add(m, 7, &(struct metric_desc){ .name = "ok", .help = "h" }, NULL), -EINVAL);

	/* names in use, including a histogram's derived series */
	assert_int_equal(metrics_add(m, METRIC_HISTOGRAM,
				     &(struct metric_desc){ .name = "rpc:latency", .help = "h" },
				     NULL),
			 0);
	assert_int_equal(metrics_add(m, METRIC_GAUGE,
				     &(struct metric_desc){ .name = "rpc:latency", .help = "h" },
				     NULL),
			 -EEXIST);
	assert_int_equal(
	    metrics_add(m, METRIC_GAUGE,
			&(struct metric_desc){ .name = "rpc:latency_count", .help = "h" }, NULL),
	    -EEXIST);
	assert_int_equal(
	    metrics_add(
		m, METRIC_COUNTER,
		&(struct metric_desc){ .name = "cocoon_metrics_dropped_series_total", .help = "h" },
		NULL),
	    -EEXIST);
	assert_int_equal(metrics_add(m, METRIC_GAUGE,
				     &(struct metric_desc){ .name = "q_sum", .help = "h" }, NULL),
			 0);
	assert_int_equal(metrics_add(m, METRIC_HISTOGRAM,
				     &(struct metric_desc){ .name = "q", .help = "h" }, NULL),
			 -EEXIST);
}

static void test_invalid_values(void **state)
{
	_cleanup_(metrics_freep) struct metrics *m = NULL;
	char long_value[METRICS_MAX_LABEL_VALUE + 2];
	struct metric *f;

	assert_int_equal(metrics_new(&m), 0);
	assert_int_equal(metrics_add(m, METRIC_COUNTER,
				     &(struct metric_desc){ .name = "ok_total",
							    .help = "h",
							    .labels = METRIC_LABELS("a", "b") },
				     &f),
			 0);
	assert_int_equal(metric_inc(f, METRIC_LABELS("x")), -EINVAL);
	assert_int_equal(metric_inc(f, METRIC_LABELS("x", "y", "z")), -EINVAL);
	assert_int_equal(metric_inc(f, NULL), -EINVAL);
	assert_int_equal(metric_inc(f, METRIC_LABELS("x", "\xc3\x28")), -EINVAL);
	assert_int_equal(metric_inc(f, METRIC_LABELS("x", "\xed\xa0\x80")),
			 -EINVAL);                                                /* surrogate */
	assert_int_equal(metric_inc(f, METRIC_LABELS("x", "\xc0\xaf")), -EINVAL); /* overlong */
	memset(long_value, 'v', sizeof long_value - 1);
	long_value[sizeof long_value - 1] = 0;
	assert_int_equal(metric_inc(f, METRIC_LABELS("x", long_value)), -EINVAL);
	long_value[METRICS_MAX_LABEL_VALUE] = 0;
	assert_int_equal(metric_inc(f, METRIC_LABELS("x", long_value)), 0);
	assert_int_equal(metric_inc(f, METRIC_LABELS("x", "\xf0\x9f\x90\xb3")), 0); /* 🐳 */
}

static int collect_calls;

static int collect(struct metrics *m, void *userdata)
{
	collect_calls++;
	return metric_set(userdata, NULL, collect_calls);
}

static int collect_fail(struct metrics *m, void *userdata)
{
	return -EIO;
}

static void test_collectors_and_cap(void **state)
{
	_cleanup_(metrics_freep) struct metrics *m = NULL;
	struct metric *g;
	struct buf out = BUF_INIT(0), small = BUF_INIT(64);

	assert_int_equal(metrics_new(&m), 0);
	assert_int_equal(metrics_add(m, METRIC_GAUGE,
				     &(struct metric_desc){ .name = "cache_entries", .help = "h" },
				     &g),
			 0);
	assert_int_equal(metrics_add_collector(m, collect_fail, NULL), 0);
	assert_int_equal(metrics_add_collector(m, collect, g), 0);
	assert_non_null(strstr(render(m, &out), "\ncache_entries 1\n"));
	assert_non_null(strstr(render(m, &out), "\ncache_entries 2\n"));

	/* a capped output buffer is left as it was */
	assert_int_equal(buf_append_str(&small, "keep"), 0);
	assert_int_equal(metrics_render(m, &small), -E2BIG);
	assert_string_equal(small.data, "keep");
	buf_free(&out);
	buf_free(&small);
}

/* The value of an unlabelled sample "name value" in rendered text. */
static double sample(const char *text, const char *name)
{
	char key[128];
	const char *p;

	snprintf(key, sizeof key, "\n%s ", name);
	p = strstr(text, key);
	assert_non_null(p);
	return strtod(p + strlen(key), NULL);
}

static void test_process_collector(void **state)
{
	_cleanup_(metrics_freep) struct metrics *m = NULL;
	struct buf out = BUF_INIT(0);
	double now = (double)time(NULL);
	volatile double spin = 0;
	clock_t c0 = clock();

	/* burn a little CPU so the counter is visibly non-zero */
	while (clock() - c0 < CLOCKS_PER_SEC / 20)
		spin += 1;
	assert_int_equal(metrics_new(&m), 0);
	assert_int_equal(metrics_add_process_collector(m), 0);
	assert_int_equal(metrics_add_process_collector(m), -EEXIST);
	render(m, &out);
	assert_non_null(strstr(out.data, "# TYPE process_cpu_seconds_total counter\n"));
	assert_true(sample(out.data, "process_cpu_seconds_total") > 0);
	assert_true(sample(out.data, "process_resident_memory_bytes") > 1024 * 1024);
	assert_true(sample(out.data, "process_virtual_memory_bytes") >=
		    sample(out.data, "process_resident_memory_bytes"));
	assert_true(sample(out.data, "process_max_fds") >= 64);
	assert_true(sample(out.data, "process_start_time_seconds") > now - 600);
	assert_true(sample(out.data, "process_start_time_seconds") <= now + 1);

	/* open fds are counted exactly: as /proc lists them, without the collector's own */
	int fd = dup(0), listed = 0;
	DIR *d;
	assert_true(fd >= 0);
	render(m, &out);
	d = opendir("/proc/self/fd");
	assert_non_null(d);
	for (struct dirent *de; (de = readdir(d));)
		listed += de->d_name[0] != '.';
	closedir(d);
	assert_true(sample(out.data, "process_open_fds") == listed - 1); /* our own dirfd */
	close(fd);
	render(m, &out);
	assert_true(sample(out.data, "process_open_fds") == listed - 2);
	buf_free(&out);
}

/* promtool parses the text and lints names, help, types and suffixes. */
static void test_promtool(void **state)
{
	_cleanup_(metrics_freep) struct metrics *m = NULL;
	struct metric *c, *g, *h, *f;
	struct buf out = BUF_INIT(0);
	char path[] = "/tmp/test-metrics-XXXXXX", cmd[256], report[4096] = "";
	FILE *p;
	size_t n;
	int fd, status;

	assert_int_equal(access("/usr/bin/promtool", X_OK), 0);
	assert_int_equal(metrics_new(&m), 0);
	assert_int_equal(metrics_add_process_collector(m), 0);
	assert_int_equal(
	    metrics_add(m, METRIC_COUNTER,
			&(struct metric_desc){
			    .name = "cocoon_http_requests_total",
			    .help = "HTTP requests by \"method\" and code.\nSecond line.",
			    .labels = METRIC_LABELS("method", "code") },
			&c),
	    0);
	assert_int_equal(
	    metrics_add(m, METRIC_GAUGE,
			&(struct metric_desc){ .name = "cocoon_pods",
					       .help = "Pods by phase.",
					       .labels = METRIC_LABELS("phase", "node") },
			&g),
	    0);
	assert_int_equal(metrics_add(m, METRIC_HISTOGRAM,
				     &(struct metric_desc){ .name = "cocoon_sync_duration_seconds",
							    .help = "Sync duration.",
							    .labels = METRIC_LABELS("kind") },
				     &h),
			 0);
	assert_int_equal(metrics_add(m, METRIC_COUNTER,
				     &(struct metric_desc){ .name = "cocoon_capped_total",
							    .help = "Capped.",
							    .labels = METRIC_LABELS("k"),
							    .max_series = 1 },
				     &f),
			 0);
	assert_int_equal(metric_inc(c, METRIC_LABELS("GET", "200")), 0);
	assert_int_equal(metric_inc(c, METRIC_LABELS("P\"O\\ST\n", "500")), 0);
	assert_int_equal(metric_set(g, METRIC_LABELS("Running", "node-1"), 3), 0);
	assert_int_equal(metric_set(g, METRIC_LABELS("", "ü"), NAN), 0);
	assert_int_equal(metric_observe(h, METRIC_LABELS("pod"), 0.3), 0);
	assert_int_equal(metric_observe(h, METRIC_LABELS("pod"), 30), 0);
	assert_int_equal(metric_inc(f, METRIC_LABELS("a")), 0);
	assert_int_equal(metric_inc(f, METRIC_LABELS("b")), -ENOSPC);
	render(m, &out);

	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, out.data, out.len), (ssize_t)out.len);
	close(fd);
	snprintf(cmd, sizeof cmd, "/usr/bin/promtool check metrics < %s 2>&1", path);
	p = popen(cmd, "r");
	assert_non_null(p);
	n = fread(report, 1, sizeof report - 1, p);
	report[n] = 0;
	status = pclose(p);
	unlink(path);
	if (status != 0 || n != 0)
		fail_msg("promtool (status %d) on\n%s\nsaid: %s", status, out.data, report);
	buf_free(&out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_golden),
		cmocka_unit_test(test_values_and_numbers),
		cmocka_unit_test(test_escaping),
		cmocka_unit_test(test_histogram_buckets),
		cmocka_unit_test(test_series_cap),
		cmocka_unit_test(test_invalid_registration),
		cmocka_unit_test(test_invalid_values),
		cmocka_unit_test(test_collectors_and_cap),
		cmocka_unit_test(test_process_collector),
		cmocka_unit_test(test_promtool),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
