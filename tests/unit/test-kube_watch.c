/* kube_watch against a scripted apiserver on the same loop: the request's query, events
 * split across and joined within chunks, resume from the last resourceVersion (bookmarks
 * included) after a clean end, 410 as an ERROR event and as an HTTP answer → on_expired
 * with no retry, other failures → on_error and a retry with growing backoff that the next
 * event resets, malformed events skipped, garbage and cut-off streams, and handlers that
 * restart or free their own watch. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "cocoon/kube.h"
#include "fake-apiserver.h"

#define PATH "/api/v1/namespaces/ns/configmaps"

struct rec {
	char lines[64][160];
	size_t n;
	unsigned expired, errors;
	char last_error[512];
	int last_errno;
	/* actions from handlers */
	size_t free_after;      /* free the watch after this many events (0: never) */
	const char *restart_rv; /* restart from on_event with this RV (once) */
	struct kube_watch **self;
};

static struct fake_server srv;
static struct rec rec;
static sd_event *event;
static struct kube_client *client;
/* What the server answers to request i: the script of the running test. */
static void (*script)(struct fake_conn *c, size_t i, const char *target);

static void respond(struct fake_server *s, struct fake_conn *c, size_t i, const char *target)
{
	script(c, i, target);
}

static int setup(void **state)
{
	memset(&rec, 0, sizeof(rec));
	assert_int_equal(sd_event_new(&event), 0);
	srv = (struct fake_server){ .respond = respond };
	fake_server_start(&srv, event);
	client = fake_client(&srv);
	return 0;
}

static int teardown(void **state)
{
	kube_client_free(client);
	fake_server_stop(&srv);
	sd_event_unref(event);
	return 0;
}

static void record(const char *fmt, ...) _printf_(1, 2);
static void record(const char *fmt, ...)
{
	va_list ap;

	assert_true(rec.n < ELEMENTSOF(rec.lines));
	va_start(ap, fmt);
	vsnprintf(rec.lines[rec.n++], sizeof(rec.lines[0]), fmt, ap);
	va_end(ap);
}

static void on_event(struct kube_watch *w, enum kube_event_type t, json_t *obj, void *u)
{
	static const char *names[] = { "ADDED", "MODIFIED", "DELETED", "BOOKMARK" };
	json_t *meta = json_object_get(obj, "metadata");
	const char *name = json_string_value(json_object_get(meta, "name"));

	record("%s %s %s", names[t], name ?: "-",
	       json_string_value(json_object_get(meta, "resourceVersion")));
	if (rec.restart_rv) {
		assert_int_equal(kube_watch_restart(w, rec.restart_rv), 0);
		rec.restart_rv = NULL;
	}
	if (rec.free_after && rec.n == rec.free_after) {
		kube_watch_free(w);
		*rec.self = NULL;
	}
}

static void on_expired(struct kube_watch *w, void *u)
{
	record("EXPIRED");
	rec.expired++;
}

static void on_error(struct kube_watch *w, int error, const char *message, void *u)
{
	record("ERROR %s", message);
	rec.errors++;
	rec.last_errno = error;
	snprintf(rec.last_error, sizeof(rec.last_error), "%s", message);
}

static const struct kube_watch_handlers handlers = { on_event, on_expired, on_error };

static char *ev(const char *type, const char *name, const char *rv)
{
	static char buf[8][256];
	static unsigned k;
	char *b = buf[k++ % 8];

	snprintf(b, sizeof(buf[0]),
		 "{\"type\":\"%s\",\"object\":{\"kind\":\"ConfigMap\",\"apiVersion\":\"v1\","
		 "\"metadata\":{\"name\":\"%s\",\"namespace\":\"ns\",\"resourceVersion\":\"%s\"},"
		 "\"data\":{\"k\":\"a } \\\" {\"}}}\n",
		 type, name, rv);
	return b;
}

static const char *bookmark(const char *rv)
{
	static char b[160];

	snprintf(b, sizeof(b),
		 "{\"type\":\"BOOKMARK\",\"object\":{\"kind\":\"ConfigMap\",\"apiVersion\":\"v1\","
		 "\"metadata\":{\"resourceVersion\":\"%s\"}}}\n",
		 rv);
	return b;
}

static void wait_lines(size_t n, unsigned ms)
{
	uint64_t deadline = fake_now_usec() + ms * 1000ULL;

	while (rec.n < n) {
		assert_true(fake_now_usec() < deadline);
		assert_true(sd_event_run(event, 10000) >= 0);
	}
}

/* ---- resume ---- */

static void script_resume(struct fake_conn *c, size_t i, const char *target)
{
	char joined[600], *e1;

	fake_stream_begin(c);
	if (i == 0) {
		/* One event in three pieces (cut inside a string and between '}'), then two
		 * joined in one piece with the start of a third, then a bookmark. */
		e1 = ev("ADDED", "a", "6");
		char p1[80], p2[80];
		snprintf(p1, sizeof(p1), "%.40s", e1);
		snprintf(p2, sizeof(p2), "%.30s", e1 + 40);
		fake_stream_piece(c, p1);
		fake_stream_piece(c, p2);
		fake_stream_piece(c, e1 + 70);
		snprintf(joined, sizeof(joined), "%s%s%.10s", ev("MODIFIED", "a", "7"),
			 ev("DELETED", "b", "8"), ev("ADDED", "c", "9"));
		fake_stream_piece(c, joined);
		fake_stream_piece(c, ev("ADDED", "c", "9") + 10);
		fake_stream_piece(c, bookmark("12"));
		fake_stream_end(c);
	} else {
		fake_stream_piece(c, ev("ADDED", "d", "13"));
	}
}

static void test_resume_from_last_rv(void **state)
{
	const struct kube_watch_options o = {
		.label_selector = "app=web,tier!=db",
		.resource_version = "5",
		.bookmarks = true,
		.timeout_seconds = 7,
	};
	_cleanup_(kube_watch_freep) struct kube_watch *w = NULL;

	script = script_resume;
	assert_int_equal(kube_watch_new(client, PATH, &o, &handlers, NULL, &w), 0);
	wait_lines(6, 5000);
	assert_string_equal(rec.lines[0], "ADDED a 6");
	assert_string_equal(rec.lines[1], "MODIFIED a 7");
	assert_string_equal(rec.lines[2], "DELETED b 8");
	assert_string_equal(rec.lines[3], "ADDED c 9");
	assert_string_equal(rec.lines[4], "BOOKMARK - 12");
	/* The stream ended cleanly: the next one starts after the bookmark's RV. */
	assert_string_equal(rec.lines[5], "ADDED d 13");
	assert_string_equal(kube_watch_resource_version(w), "13");
	assert_int_equal(srv.n_requests, 2);
	assert_string_equal(
	    srv.requests[0],
	    PATH "?watch=1&allowWatchBookmarks=true&labelSelector=app%3Dweb%2Ctier%21%3Ddb"
		 "&resourceVersion=5&timeoutSeconds=7");
	assert_string_equal(query_value(srv.requests[1], "resourceVersion"), "12");
	assert_string_equal(query_value(srv.requests[1], "labelSelector"),
			    "app%3Dweb%2Ctier%21%3Ddb");
	assert_int_equal(rec.errors, 0);
}

static void script_default_timeout(struct fake_conn *c, size_t i, const char *target)
{
	fake_stream_begin(c);
}

static void test_defaults(void **state)
{
	_cleanup_(kube_watch_freep) struct kube_watch *w = NULL;
	unsigned t;

	/* No options: from "now" (no resourceVersion), no bookmarks, a timeout in
	 * [300, 600) s like client-go's reflector. */
	script = script_default_timeout;
	assert_int_equal(kube_watch_new(client, PATH, NULL, &handlers, NULL, &w), 0);
	assert_true(fake_run_until(&srv, NULL, 1, 5000));
	assert_null(query_value(srv.requests[0], "resourceVersion"));
	assert_null(query_value(srv.requests[0], "allowWatchBookmarks"));
	assert_null(kube_watch_resource_version(w));
	t = (unsigned)atoi(query_value(srv.requests[0], "timeoutSeconds"));
	assert_true(t >= 300 && t < 600);

	assert_int_equal(kube_watch_new(client, PATH "?watch=1", NULL, &handlers, NULL,
					&(struct kube_watch *){ NULL }),
			 -EINVAL);
	assert_int_equal(kube_watch_new(client, "api/v1/pods", NULL, &handlers, NULL,
					&(struct kube_watch *){ NULL }),
			 -EINVAL);
}

/* ---- expiry ---- */

static void script_expired(struct fake_conn *c, size_t i, const char *target)
{
	if (i == 0) {
		fake_stream_begin(c);
		fake_stream_piece(c, ev("ADDED", "a", "101"));
		fake_stream_piece(c,
				  "{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\","
				  "\"apiVersion\":\"v1\",\"status\":\"Failure\",\"message\":"
				  "\"too old resource version: 101 (150)\",\"reason\":\"Expired\","
				  "\"code\":410}}\n");
		fake_stream_end(c);
	} else if (i == 1) {
		/* Some servers (and doubles) answer a plain HTTP 410. */
		fake_reply(c, 410,
			   "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"status\":\"Failure\","
			   "\"reason\":\"Gone\",\"code\":410,\"message\":\"gone\"}");
	} else {
		fake_stream_begin(c);
		fake_stream_piece(c, ev("ADDED", "z", "300"));
	}
}

static void test_expired(void **state)
{
	const struct kube_watch_options o = { .resource_version = "100", .timeout_seconds = 60 };
	_cleanup_(kube_watch_freep) struct kube_watch *w = NULL;

	script = script_expired;
	assert_int_equal(kube_watch_new(client, PATH, &o, &handlers, NULL, &w), 0);
	wait_lines(2, 5000);
	assert_string_equal(rec.lines[0], "ADDED a 101");
	assert_string_equal(rec.lines[1], "EXPIRED");
	/* No retry by itself: the caller must relist. */
	fake_run_for(&srv, 300);
	assert_int_equal(srv.n_requests, 1);
	assert_int_equal(rec.n, 2);
	assert_string_equal(kube_watch_resource_version(w), "101");

	assert_int_equal(kube_watch_restart(w, "200"), 0);
	wait_lines(3, 5000);
	assert_string_equal(rec.lines[2], "EXPIRED");
	assert_string_equal(query_value(srv.requests[1], "resourceVersion"), "200");
	fake_run_for(&srv, 300);
	assert_int_equal(srv.n_requests, 2);

	assert_int_equal(kube_watch_restart(w, "290"), 0);
	wait_lines(4, 5000);
	assert_string_equal(rec.lines[3], "ADDED z 300");
	assert_string_equal(query_value(srv.requests[2], "resourceVersion"), "290");
	assert_int_equal(rec.errors, 0);
}

/* ---- failures and backoff ---- */

static void script_failures(struct fake_conn *c, size_t i, const char *target)
{
	switch (i) {
	case 0:
		fake_reply(c, 500,
			   "{\"kind\":\"Status\",\"status\":\"Failure\",\"reason\":"
			   "\"InternalError\",\"code\":500,\"message\":\"etcd is sad\"}");
		break;
	case 1:
		fake_reply(c, 403,
			   "{\"kind\":\"Status\",\"status\":\"Failure\",\"reason\":"
			   "\"Forbidden\",\"code\":403,\"message\":\"configmaps is forbidden\"}");
		break;
	case 2:
		fake_stream_begin(c);
		fake_stream_piece(
		    c, "{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\",\"code\":500,"
		       "\"reason\":\"InternalError\",\"message\":\"watch chan error\"}}");
		break;
	case 3:
		fake_stream_begin(c); /* ends at once with nothing: a "very short watch" */
		fake_stream_end(c);
		break;
	case 4:
		/* One good event resets the backoff; then garbage. */
		fake_stream_begin(c);
		fake_stream_piece(c, ev("ADDED", "a", "20"));
		fake_stream_piece(c, "<html>proxy error</html>");
		break;
	case 5:
		fake_stream_begin(c);
		fake_stream_piece(c,
				  "{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":tru}}}");
		break;
	case 6:
		/* Well-formed but unusable events are skipped; the stream goes on. */
		fake_stream_begin(c);
		fake_stream_piece(
		    c, "{\"object\":{}}\n{\"type\":\"ADDED\",\"object\":[]}\n"
		       "{\"type\":\"RESYNC\",\"object\":{}}\n"
		       "{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"x\"}}}\n");
		fake_stream_piece(c, ev("ADDED", "b", "21"));
		fake_stream_piece(c, "{\"type\":\"MODIFIED\",\"object\":{\"metadata\":");
		fake_stream_end(c); /* cut inside an event */
		break;
	default:
		fake_stream_begin(c);
	}
}

static void test_failures_and_backoff(void **state)
{
	const struct kube_watch_options o = { .resource_version = "10", .timeout_seconds = 60 };
	_cleanup_(kube_watch_freep) struct kube_watch *w = NULL;
	const uint64_t base = 100000; /* 100 ms, doubling */
	char expect[160];

	script = script_failures;
	assert_int_equal(kube_watch_new(client, PATH, &o, &handlers, NULL, &w), 0);
	kube_watch_set_backoff(w, base, 20 * base);
	assert_true(fake_run_until(&srv, NULL, 5, 10000));
	assert_string_equal(rec.lines[0], "ERROR 500 InternalError: etcd is sad");
	assert_string_equal(rec.lines[1], "ERROR 403 Forbidden: configmaps is forbidden");
	assert_string_equal(rec.lines[2], "ERROR ERROR event: 500 InternalError: watch chan error");
	assert_string_equal(rec.lines[3],
			    "ERROR watch stream closed within a second without events");
	/* Retries n = 1..4 waited at least half of base·2^(n-1) (jitter keeps [d/2, d]). */
	for (size_t n = 1; n <= 4; n++)
		assert_true(srv.request_usec[n] - srv.request_usec[n - 1] >= (base << (n - 1)) / 2);
	/* Every retry resumes from the same RV. */
	for (size_t n = 0; n < 5; n++)
		assert_string_equal(query_value(srv.requests[n], "resourceVersion"), "10");

	assert_true(fake_run_until(&srv, NULL, 7, 10000));
	assert_string_equal(rec.lines[4], "ADDED a 20");
	/* The garbage starts right after the event (its length is the byte offset). */
	snprintf(expect, sizeof(expect),
		 "ERROR watch stream: stream byte %zu: expected '{' to start an object, got '<'",
		 strlen(ev("ADDED", "a", "20")));
	assert_string_equal(rec.lines[5], expect);
	/* The event reset the backoff: the retry came after the first step again (at most
	 * base), far below the ≥ 8 × base that a fifth consecutive failure would wait; the
	 * margin between is for a loaded machine. */
	assert_true(srv.request_usec[5] - srv.request_usec[4] < 6 * base);
	assert_string_equal(query_value(srv.requests[5], "resourceVersion"), "20");
	assert_non_null(strstr(rec.lines[6], "ERROR watch event 1: invalid JSON: "));
	assert_int_equal(rec.last_errno, -EBADMSG);

	assert_true(fake_run_until(&srv, NULL, 8, 10000));
	wait_lines(13, 5000);
	assert_string_equal(rec.lines[7],
			    "ERROR watch event 1 of the stream: no \"type\" string; skipped");
	assert_string_equal(rec.lines[8],
			    "ERROR watch event 2 of the stream: no \"object\" object; skipped");
	assert_string_equal(rec.lines[9],
			    "ERROR watch event 3 of the stream: unknown \"type\"; skipped");
	assert_string_equal(
	    rec.lines[10],
	    "ERROR watch event 4 of the stream: no object.metadata.resourceVersion; skipped");
	assert_string_equal(rec.lines[11], "ADDED b 21");
	assert_string_equal(rec.lines[12], "ERROR watch stream ended inside an event (40 bytes)");
	assert_int_equal(rec.last_errno, -EPIPE);
	assert_int_equal(rec.expired, 0);
	assert_true(fake_run_until(&srv, NULL, 8, 10000));
	assert_string_equal(query_value(srv.requests[7], "resourceVersion"), "21");
}

static void script_refused(struct fake_server *s, struct fake_conn *c, size_t i, const char *target)
{
	fail();
}

static void test_connection_refused(void **state)
{
	_cleanup_(kube_watch_freep) struct kube_watch *w = NULL;
	struct fake_server other = { .respond = script_refused };
	struct kube_client *c;

	/* Nothing listens there any more: a transport error, retried. */
	fake_server_start(&other, event);
	c = fake_client(&other);
	fake_server_stop(&other);
	script = NULL;
	assert_int_equal(kube_watch_new(c, PATH, NULL, &handlers, NULL, &w), 0);
	kube_watch_set_backoff(w, 10000, 20000);
	wait_lines(3, 5000);
	assert_int_equal(rec.errors, 3);
	assert_true(rec.last_errno < 0);
	assert_int_equal(rec.expired, 0);
	kube_watch_free(TAKE_PTR(w));
	kube_client_free(c);
}

static void script_silent(struct fake_conn *c, size_t i, const char *target)
{
	fake_stream_begin(c);
	if (i == 0)
		fake_stream_piece(c, ev("ADDED", "a", "50"));
}

static void test_silent_server(void **state)
{
	const struct kube_watch_options o = { .timeout_seconds = 1 };
	_cleanup_(kube_watch_freep) struct kube_watch *w = NULL;

	/* The server never closes the stream it promised to end after 1 s: after the grace
	 * (1 s here) the watch gives up on it and resumes from the last RV. */
	script = script_silent;
	assert_int_equal(kube_watch_new(client, PATH, &o, &handlers, NULL, &w), 0);
	kube_watch_set_backoff(w, 1000, 1000);
	assert_true(fake_run_until(&srv, NULL, 2, 5000));
	assert_string_equal(rec.lines[0], "ADDED a 50");
	assert_string_equal(rec.lines[1],
			    "ERROR watch stream still open well after its timeoutSeconds");
	assert_int_equal(rec.last_errno, -ETIMEDOUT);
	assert_true(srv.request_usec[1] - srv.request_usec[0] >= 1900000);
	assert_string_equal(query_value(srv.requests[1], "resourceVersion"), "50");
}

/* ---- handlers that restart or free their watch ---- */

static void script_many(struct fake_conn *c, size_t i, const char *target)
{
	char all[1024];

	fake_stream_begin(c);
	snprintf(all, sizeof(all), "%s%s%s", ev("ADDED", "a", "31"), ev("ADDED", "b", "32"),
		 ev("ADDED", "c", "33"));
	fake_stream_piece(c, all);
}

static void test_free_from_handler(void **state)
{
	struct kube_watch *w = NULL;

	script = script_many;
	rec.free_after = 2;
	rec.self = &w;
	assert_int_equal(kube_watch_new(client, PATH, NULL, &handlers, NULL, &w), 0);
	wait_lines(2, 5000);
	assert_null(w);
	/* The third event of the same chunk is not delivered; nothing runs afterwards. */
	fake_run_for(&srv, 200);
	assert_int_equal(rec.n, 2);
	assert_int_equal(srv.n_requests, 1);
}

static void test_restart_from_handler(void **state)
{
	_cleanup_(kube_watch_freep) struct kube_watch *w = NULL;

	script = script_many;
	rec.restart_rv = "1000";
	assert_int_equal(kube_watch_new(client, PATH, NULL, &handlers, NULL, &w), 0);
	assert_true(fake_run_until(&srv, NULL, 2, 5000));
	/* The rest of the first stream is dropped; the new one starts from the given RV. */
	assert_string_equal(query_value(srv.requests[1], "resourceVersion"), "1000");
	wait_lines(4, 5000);
	assert_string_equal(rec.lines[0], "ADDED a 31");
	assert_string_equal(rec.lines[1], "ADDED a 31");
	assert_string_equal(rec.lines[2], "ADDED b 32");
	assert_string_equal(rec.lines[3], "ADDED c 33");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_resume_from_last_rv, setup, teardown),
		cmocka_unit_test_setup_teardown(test_defaults, setup, teardown),
		cmocka_unit_test_setup_teardown(test_expired, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failures_and_backoff, setup, teardown),
		cmocka_unit_test_setup_teardown(test_connection_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_silent_server, setup, teardown),
		cmocka_unit_test_setup_teardown(test_free_from_handler, setup, teardown),
		cmocka_unit_test_setup_teardown(test_restart_from_handler, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
