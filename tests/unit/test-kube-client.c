/* kube_client: paths, Status decoding and errno classes, backoff and token-bucket math, and
 * the REST calls against an HTTP server on the same sd-event loop (common/http): headers
 * and bodies on the wire, pagination and the relist after an expired continue token,
 * retries (429 + Retry-After, 5xx only when idempotent, refused connections even for POST),
 * timeouts, the rate limit, the in-flight cap, token-file rotation, streams, cancellation
 * and the blocking kube_request_sync() against a forked server. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>

#include "cocoon/fsutil.h"
#include "cocoon/http.h"
#include "cocoon/kube.h"
#include "../../common/src/kube-client-internal.h"

#define MAX_SEEN 128

struct seen {
	char *method, *path, *query, *auth, *ctype, *accept, *ua, *body;
	uint64_t at;
};

/* What the server answers to request number n (0-based, counted over the test). */
typedef int (*respond_fn)(struct http_request *req, unsigned n);

static sd_event *event;
static struct http_server *server;
static unsigned port;
static char url[64];
static struct seen seen[MAX_SEEN];
static unsigned n_seen;
static respond_fn respond;
static struct http_request *held[MAX_SEEN];
static unsigned n_held;
static char tmpdir[] = "/tmp/test-kube-client-XXXXXX";

static uint64_t now_usec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static char *dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

static int on_request(struct http_request *req, void *userdata)
{
	struct seen *s;
	const char *body;
	size_t len;

	assert_true(n_seen < MAX_SEEN);
	s = &seen[n_seen];
	s->method = strdup(http_request_method(req));
	s->path = strdup(http_request_path(req));
	s->query = strdup(http_request_query(req));
	s->auth = dup_or_null(http_request_get_header(req, "Authorization", 0));
	s->ctype = dup_or_null(http_request_get_header(req, "Content-Type", 0));
	s->accept = dup_or_null(http_request_get_header(req, "Accept", 0));
	s->ua = dup_or_null(http_request_get_header(req, "User-Agent", 0));
	body = http_request_body(req, &len);
	s->body = len ? strndup(body, len) : NULL;
	s->at = now_usec();
	return respond(req, n_seen++);
}

static int reply(struct http_request *req, unsigned status, const char *json)
{
	return http_reply(req, status, "application/json", json, strlen(json));
}

static int hold(struct http_request *req)
{
	held[n_held++] = http_request_ref(req);
	return 0;
}

static int setup(void **state)
{
	int r;

	assert_non_null(mkdtemp(tmpdir));
	assert_int_equal(sd_event_new(&event), 0);
	assert_int_equal(http_server_new(event, NULL, &server), 0);
	r = http_server_listen_address(server, "127.0.0.1:0");
	assert_true(r > 0);
	port = (unsigned)r;
	snprintf(url, sizeof url, "http://127.0.0.1:%u", port);
	assert_int_equal(
	    http_server_add_route(server, NULL, "/", HTTP_ROUTE_PREFIX, on_request, NULL), 0);
	return 0;
}

static int teardown(void **state)
{
	char cmd[128];

	http_server_free(server);
	for (unsigned i = 0; i < n_held; i++)
		http_request_unref(held[i]);
	n_held = 0;
	for (unsigned i = 0; i < n_seen; i++) {
		struct seen *s = &seen[i];

		free(s->method), free(s->path), free(s->query), free(s->auth);
		free(s->ctype), free(s->accept), free(s->ua), free(s->body);
	}
	memset(seen, 0, sizeof seen);
	n_seen = 0;
	event = sd_event_unref(event);
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
	assert_int_equal(system(cmd), 0);
	memcpy(tmpdir + strlen(tmpdir) - 6, "XXXXXX", 6);
	return 0;
}

/* ---- results of calls ---- */

struct result {
	bool done;
	int error;
	json_t *obj;
	long code;
	char *reason, *message;
	uint64_t at;
};

static void on_done(struct kube_call *call, int error, json_t *obj,
		    const struct kube_status *status, void *userdata)
{
	struct result *res = userdata;

	assert_false(res->done);
	res->done = true;
	res->error = error;
	res->obj = json_incref(obj);
	res->code = status->code;
	res->reason = dup_or_null(status->reason);
	res->message = dup_or_null(status->message);
	res->at = now_usec();
}

static void result_clear(struct result *res)
{
	json_decref(res->obj);
	free(res->reason);
	free(res->message);
	*res = (struct result){ 0 };
}

static bool all_done(struct result *res, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!res[i].done)
			return false;
	return true;
}

/* Runs the loop until the n results are in, or fails the test after timeout_ms. */
static void wait_results(struct result *res, size_t n, unsigned timeout_ms)
{
	uint64_t deadline = now_usec() + timeout_ms * 1000ULL;

	while (!all_done(res, n)) {
		assert_true(now_usec() < deadline);
		assert_true(sd_event_run(event, 10000) >= 0);
	}
}

/* Runs the loop until the server has seen n requests (however slow the machine). */
static void wait_seen(unsigned n)
{
	uint64_t deadline = now_usec() + 5000000;

	while (n_seen < n) {
		assert_true(now_usec() < deadline);
		assert_true(sd_event_run(event, 10000) >= 0);
	}
}

static void run_for(unsigned ms)
{
	uint64_t deadline = now_usec() + ms * 1000ULL;

	while (now_usec() < deadline)
		assert_true(sd_event_run(event, 10000) >= 0);
}

static struct kube_config config = { .token = "secret-token" };

static struct kube_client *client_new(const struct kube_client_options *o)
{
	struct kube_client *c;

	config.server = url;
	assert_int_equal(kube_client_new(event, &config, o, &c), 0);
	return c;
}

/* ---- pure helpers ---- */

static void test_path(void **state)
{
	const struct kube_resource pods = { "", "v1", "pods", true };
	const struct kube_resource nodes = { NULL, "v1", "nodes", false };
	const struct kube_resource widgets = { "example.com", "v1", "widgets", true };
	const struct kube_resource leases = { "coordination.k8s.io", "v1", "leases", true };
	const struct {
		const struct kube_resource *r;
		const char *ns, *name, *sub, *want;
	} t[] = {
		{ &pods, "ns", "p1", "status", "/api/v1/namespaces/ns/pods/p1/status" },
		{ &pods, "ns", "p1", NULL, "/api/v1/namespaces/ns/pods/p1" },
		{ &pods, "ns", NULL, NULL, "/api/v1/namespaces/ns/pods" },
		{ &pods, NULL, NULL, NULL, "/api/v1/pods" },
		{ &nodes, NULL, "n1", "status", "/api/v1/nodes/n1/status" },
		{ &widgets, "d", "w", "scale",
		  "/apis/example.com/v1/namespaces/d/widgets/w/scale" },
		{ &widgets, NULL, NULL, NULL, "/apis/example.com/v1/widgets" },
		{ &leases, "kube-node-lease", "n1", NULL,
		  "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/n1" },
		/* refused: no namespace on a namespaced object, a namespace on a cluster-scoped
		 * resource, separators or dot segments in names, a subresource without a name */
		{ &pods, NULL, "p1", NULL, NULL },
		{ &nodes, "ns", "n1", NULL, NULL },
		{ &pods, "ns", "a/b", NULL, NULL },
		{ &pods, "ns", "..", NULL, NULL },
		{ &pods, "ns", "p?x=1", NULL, NULL },
		{ &pods, "", "p", NULL, NULL },
		{ &pods, "ns", NULL, "status", NULL },
	};

	for (size_t i = 0; i < ELEMENTSOF(t); i++) {
		char *p = kube_path(t[i].r, t[i].ns, t[i].name, t[i].sub);

		if (!t[i].want) {
			assert_null(p);
			continue;
		}
		assert_non_null(p);
		assert_string_equal(p, t[i].want);
		free(p);
	}
	assert_null(kube_path(NULL, NULL, NULL, NULL));
}

static void test_status_errno(void **state)
{
	const struct {
		long code;
		const char *reason;
		int want;
	} t[] = {
		{ 200, NULL, 0 },
		{ 201, "Created", 0 },
		{ 404, "NotFound", -ENOENT },
		{ 404, NULL, -ENOENT },
		{ 409, "AlreadyExists", -EEXIST },
		{ 409, "Conflict", -ESTALE },
		{ 409, NULL, -ESTALE },
		{ 422, "Invalid", -EINVAL },
		{ 400, "BadRequest", -EINVAL },
		{ 401, "Unauthorized", -EACCES },
		{ 403, "Forbidden", -EACCES },
		{ 410, "Expired", -ETIME },
		{ 410, "Gone", -ETIME },
		{ 504, "Timeout", -ETIMEDOUT },
		{ 500, "ServerTimeout", -ETIMEDOUT },
		{ 429, "TooManyRequests", -EAGAIN },
		{ 415, "UnsupportedMediaType", -EOPNOTSUPP },
		{ 405, NULL, -EOPNOTSUPP },
		{ 413, NULL, -E2BIG },
		{ 500, "InternalError", -EIO },
		{ 503, NULL, -EIO },
		{ 418, NULL, -EPROTO },
		/* a watch ERROR event: HTTP 200 stream, Status code 410 */
		{ 0, "Expired", -ETIME },
	};

	for (size_t i = 0; i < ELEMENTSOF(t); i++)
		assert_int_equal(kube_status_errno(t[i].code, t[i].reason), t[i].want);
}

static void test_status_from_json(void **state)
{
	struct kube_status s = { 0 };
	json_t *j;

	j = json_loads("{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"status\":\"Failure\","
		       "\"message\":\"pods \\\"p1\\\" not found\",\"reason\":\"NotFound\","
		       "\"details\":{\"name\":\"p1\",\"kind\":\"pods\"},\"code\":404}",
		       0, NULL);
	assert_int_equal(kube_status_from_json(j, 404, &s), 0);
	assert_int_equal(s.code, 404);
	assert_string_equal(s.reason, "NotFound");
	assert_string_equal(s.message, "pods \"p1\" not found");
	kube_status_clear(&s);
	json_decref(j);

	/* the body's code wins (a watch ERROR event arrives on a 200 stream) */
	j = json_loads("{\"kind\":\"Status\",\"code\":410,\"reason\":\"Expired\","
		       "\"message\":\"too old resource version: 5 (812)\"}",
		       0, NULL);
	assert_int_equal(kube_status_from_json(j, 200, &s), 0);
	assert_int_equal(s.code, 410);
	assert_int_equal(kube_status_errno(s.code, s.reason), -ETIME);
	kube_status_clear(&s);
	json_decref(j);

	/* not a Status: the code's generic reason, no message */
	j = json_loads("{\"kind\":\"Pod\",\"reason\":\"Evicted\"}", 0, NULL);
	assert_int_equal(kube_status_from_json(j, 409, &s), 0);
	assert_int_equal(s.code, 409);
	assert_string_equal(s.reason, "Conflict");
	assert_null(s.message);
	kube_status_clear(&s);
	json_decref(j);

	assert_int_equal(kube_status_from_json(NULL, 599, &s), 0);
	assert_int_equal(s.code, 599);
	assert_null(s.reason);
	kube_status_clear(&s);
	kube_status_clear(NULL);
}

static void test_backoff(void **state)
{
	const uint64_t base = 100000, max = 1600000;

	for (unsigned a = 0; a < 12; a++) {
		uint64_t d = MIN(base << MIN(a, 20U), max);

		for (int i = 0; i < 50; i++) {
			uint64_t v = kube_backoff_usec(a, base, max);

			assert_true(v >= d / 2);
			assert_true(v <= d);
		}
	}
	/* the jitter is real: 50 draws of a 1.6 s window are not all equal */
	uint64_t first = kube_backoff_usec(10, base, max);
	bool differs = false;
	for (int i = 0; i < 50 && !differs; i++)
		differs = kube_backoff_usec(10, base, max) != first;
	assert_true(differs);
	assert_int_equal(kube_backoff_usec(1000, base, max) <= max, 1);
}

static void test_bucket(void **state)
{
	struct kube_bucket b;
	uint64_t t = 1000000;

	kube_bucket_init(&b, 10, 3, t);
	/* the burst is available at once */
	for (int i = 0; i < 3; i++)
		assert_int_equal(kube_bucket_take(&b, t), 0);
	/* then one token per 100 ms */
	uint64_t w = kube_bucket_take(&b, t);
	assert_in_range(w, 99000, 101000);
	assert_in_range(kube_bucket_take(&b, t + 50000), 49000, 51000);
	assert_int_equal(kube_bucket_take(&b, t + 100000), 0);
	assert_true(kube_bucket_take(&b, t + 100000) > 0);
	/* a long idle period refills only up to the burst */
	t += 3600 * 1000000ULL;
	for (int i = 0; i < 3; i++)
		assert_int_equal(kube_bucket_take(&b, t), 0);
	assert_true(kube_bucket_take(&b, t) > 0);
	/* fractional QPS: one token every 4 s */
	kube_bucket_init(&b, 0.25, 1, 0);
	assert_int_equal(kube_bucket_take(&b, 0), 0);
	assert_in_range(kube_bucket_take(&b, 0), 3999000, 4001000);
}

static void test_retry_after_parse(void **state)
{
	uint64_t u;

	assert_int_equal(kube_retry_after_parse("3", &u), 0);
	assert_int_equal(u, 3000000);
	assert_int_equal(kube_retry_after_parse("0", &u), 0);
	assert_int_equal(u, 0);
	assert_int_equal(kube_retry_after_parse("Fri, 31 Dec 1999 23:59:59 GMT", &u), -EINVAL);
	assert_int_equal(kube_retry_after_parse("-1", &u), -EINVAL);
	assert_int_equal(kube_retry_after_parse("", &u), -EINVAL);
	assert_int_equal(kube_retry_after_parse("99999999999999999999999", &u), 0);
	assert_true(u > 1000000 * 1000000ULL);
}

/* ---- calls on the loop ---- */

static int respond_pod(struct http_request *req, unsigned n)
{
	return reply(req, 200, "{\"kind\":\"Pod\",\"metadata\":{\"name\":\"p1\"}}");
}

static void test_get(void **state)
{
	struct kube_client_options o = { .user_agent = "unit-test/1" };
	struct kube_client *c;
	struct result res = { 0 };
	struct kube_call *call = NULL;

	respond = respond_pod;
	c = client_new(&o);
	assert_int_equal(kube_client_last_contact(c), 0);
	assert_string_equal(kube_client_namespace(c), "default");
	assert_ptr_equal(kube_client_event(c), event);
	assert_int_equal(kube_get(c, "/api/v1/namespaces/ns/pods/p1", on_done, &res, &call), 0);
	assert_non_null(call);
	assert_false(res.done); /* never from inside the call that started it */
	wait_results(&res, 1, 5000);
	assert_int_equal(res.error, 0);
	assert_int_equal(res.code, 200);
	assert_string_equal(
	    json_string_value(json_object_get(json_object_get(res.obj, "metadata"), "name")), "p1");
	assert_true(kube_client_last_contact(c) > 0);
	assert_int_equal(n_seen, 1);
	assert_string_equal(seen[0].method, "GET");
	assert_string_equal(seen[0].path, "/api/v1/namespaces/ns/pods/p1");
	assert_string_equal(seen[0].auth, "Bearer secret-token");
	assert_string_equal(seen[0].accept, "application/json");
	assert_string_equal(seen[0].ua, "unit-test/1");
	result_clear(&res);

	assert_int_equal(kube_get(c, "no-slash", on_done, &res, NULL), -EINVAL);
	assert_int_equal(kube_get(c, "/a b", on_done, &res, NULL), -EINVAL);
	assert_int_equal(kube_get(c, "/x", NULL, &res, NULL), -EINVAL);
	kube_client_free(c);
}

static int respond_errors(struct http_request *req, unsigned n)
{
	const char *p = http_request_path(req);

	if (strstr(p, "/missing"))
		return reply(
		    req, 404,
		    "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"status\":\"Failure\","
		    "\"message\":\"pods \\\"missing\\\" not found\",\"reason\":\"NotFound\","
		    "\"code\":404}");
	if (strstr(p, "/exists"))
		return reply(req, 409,
			     "{\"kind\":\"Status\",\"status\":\"Failure\",\"message\":\"pods "
			     "\\\"exists\\\" already exists\",\"reason\":\"AlreadyExists\","
			     "\"code\":409}");
	if (strstr(p, "/stale"))
		return reply(req, 409,
			     "{\"kind\":\"Status\",\"status\":\"Failure\",\"message\":\"Operation "
			     "cannot be fulfilled\",\"reason\":\"Conflict\",\"code\":409}");
	if (strstr(p, "/proxy"))
		return http_reply(req, 502, "text/html", "<h1>Bad\r\nGateway</h1>\n", 22);
	if (strstr(p, "/garbage"))
		return http_reply(req, 200, "application/json", "{\"kind\":", 8);
	return http_reply(req, 204, NULL, NULL, 0);
}

static void test_errors(void **state)
{
	struct kube_client_options o = { .max_retries = KUBE_NO_RETRY };
	struct kube_client *c;
	struct result res[6] = { 0 };

	respond = respond_errors;
	c = client_new(&o);
	assert_int_equal(kube_get(c, "/api/v1/namespaces/n/pods/missing", on_done, &res[0], NULL),
			 0);
	assert_int_equal(kube_get(c, "/api/v1/namespaces/n/pods/exists", on_done, &res[1], NULL),
			 0);
	assert_int_equal(kube_get(c, "/api/v1/namespaces/n/pods/stale", on_done, &res[2], NULL), 0);
	assert_int_equal(kube_get(c, "/proxy", on_done, &res[3], NULL), 0);
	assert_int_equal(kube_get(c, "/garbage", on_done, &res[4], NULL), 0);
	assert_int_equal(kube_get(c, "/empty", on_done, &res[5], NULL), 0);
	wait_results(res, 6, 5000);

	assert_int_equal(res[0].error, -ENOENT);
	assert_int_equal(res[0].code, 404);
	assert_string_equal(res[0].reason, "NotFound");
	assert_string_equal(res[0].message, "pods \"missing\" not found");
	assert_null(res[0].obj);
	assert_int_equal(res[1].error, -EEXIST);
	assert_string_equal(res[1].reason, "AlreadyExists");
	assert_int_equal(res[2].error, -ESTALE);
	assert_string_equal(res[2].reason, "Conflict");
	/* not a Status: the generic reason and the body's text, made printable */
	assert_int_equal(res[3].error, -EIO);
	assert_int_equal(res[3].code, 502);
	assert_null(res[3].reason);
	assert_string_equal(res[3].message, "HTTP 502: <h1>Bad  Gateway</h1>");
	assert_int_equal(res[4].error, -EBADMSG);
	assert_non_null(strstr(res[4].message, "GET /garbage: the 200 answer is not JSON"));
	assert_int_equal(res[5].error, 0);
	assert_int_equal(res[5].code, 204);
	assert_null(res[5].obj);
	for (int i = 0; i < 6; i++)
		result_clear(&res[i]);
	kube_client_free(c);
}

/* Seven items in pages of the requested size; the continue token is the next index. */
static int respond_pages(struct http_request *req, unsigned n)
{
	const char *lim = http_request_get_query(req, "limit", 0);
	const char *cont = http_request_get_query(req, "continue", 0);
	unsigned start = cont ? (unsigned)atoi(cont) : 0, limit = lim ? (unsigned)atoi(lim) : 100;
	json_t *items = json_array(), *list;
	char rv[16], next[16];
	int r;

	for (unsigned i = start; i < 7 && i < start + limit; i++)
		json_array_append_new(items, json_pack("{s:{s:i}}", "metadata", "name", i));
	snprintf(rv, sizeof rv, "%u", 100 + n);
	snprintf(next, sizeof next, "%u", start + limit);
	list = json_pack("{s:s, s:{s:s, s:s*}, s:o}", "kind", "ConfigMapList", "metadata",
			 "resourceVersion", rv, "continue", start + limit < 7 ? next : NULL,
			 "items", items);
	r = http_reply_json(req, 200, list);
	json_decref(list);
	return r;
}

static void assert_items(json_t *list, unsigned n)
{
	json_t *items = json_object_get(list, "items");

	assert_int_equal(json_array_size(items), n);
	for (unsigned i = 0; i < n; i++)
		assert_int_equal(
		    json_integer_value(json_object_get(
			json_object_get(json_array_get(items, i), "metadata"), "name")),
		    i);
}

static void test_list_pages(void **state)
{
	struct kube_list_options lo = {
		.label_selector = "app=x,tier in (a,b)",
		.limit = 3,
		.resource_version = "0",
	};
	struct kube_client *c;
	struct result res = { 0 };
	json_t *meta;

	respond = respond_pages;
	c = client_new(NULL);
	assert_int_equal(kube_list(c, "/api/v1/configmaps", &lo, on_done, &res, NULL), 0);
	wait_results(&res, 1, 5000);
	assert_int_equal(res.error, 0);
	assert_items(res.obj, 7);
	meta = json_object_get(res.obj, "metadata");
	/* the first page's resourceVersion, no continue token left over */
	assert_string_equal(json_string_value(json_object_get(meta, "resourceVersion")), "100");
	assert_null(json_object_get(meta, "continue"));
	assert_int_equal(n_seen, 3);
	assert_string_equal(
	    seen[0].query,
	    "labelSelector=app%3Dx%2Ctier%20in%20%28a%2Cb%29&limit=3&resourceVersion=0");
	assert_string_equal(seen[1].query,
			    "labelSelector=app%3Dx%2Ctier%20in%20%28a%2Cb%29&limit=3&continue=3");
	assert_string_equal(seen[2].query,
			    "labelSelector=app%3Dx%2Ctier%20in%20%28a%2Cb%29&limit=3&continue=6");
	result_clear(&res);

	/* default page size 500; a path with its own query keeps it */
	assert_int_equal(kube_list(c, "/api/v1/configmaps?x=1", NULL, on_done, &res, NULL), 0);
	wait_results(&res, 1, 5000);
	assert_items(res.obj, 7);
	assert_string_equal(seen[3].query, "x=1&limit=500");
	result_clear(&res);
	kube_client_free(c);
}

/* Page 2's continue token has expired: 410, then the full list without limit. */
static int respond_expired(struct http_request *req, unsigned n)
{
	if (http_request_get_query(req, "continue", 0))
		return reply(req, 410,
			     "{\"kind\":\"Status\",\"code\":410,\"reason\":\"Expired\",\"message\":"
			     "\"The provided continue parameter is too old\"}");
	return respond_pages(req, n);
}

static int respond_null_items(struct http_request *req, unsigned n)
{
	return reply(req, 200,
		     "{\"kind\":\"PodList\",\"metadata\":{\"resourceVersion\":\"9\"},"
		     "\"items\":null}");
}

static void test_list_expired_and_null(void **state)
{
	struct kube_list_options lo = { .limit = 2 };
	struct kube_client *c;
	struct result res = { 0 };

	respond = respond_expired;
	c = client_new(NULL);
	assert_int_equal(kube_list(c, "/api/v1/configmaps", &lo, on_done, &res, NULL), 0);
	wait_results(&res, 1, 5000);
	assert_int_equal(res.error, 0);
	assert_items(res.obj, 7);
	assert_int_equal(n_seen, 3);
	assert_string_equal(seen[2].query, "");
	result_clear(&res);

	respond = respond_null_items;
	assert_int_equal(kube_list(c, "/api/v1/pods", NULL, on_done, &res, NULL), 0);
	wait_results(&res, 1, 5000);
	assert_int_equal(res.error, 0);
	assert_true(json_is_array(json_object_get(res.obj, "items")));
	assert_int_equal(json_array_size(json_object_get(res.obj, "items")), 0);
	result_clear(&res);
	kube_client_free(c);
}

static int respond_echo(struct http_request *req, unsigned n)
{
	return reply(req, streq(http_request_method(req), "POST") ? 201 : 200, "{}");
}

static void test_bodies(void **state)
{
	const struct kube_delete_options del = {
		.grace_period_seconds = 0,
		.precondition_uid = "u-1",
		.precondition_resource_version = "42",
		.propagation = "Foreground",
	};
	const struct kube_delete_options del_default = { .grace_period_seconds = -1 };
	struct kube_client *c;
	struct result res[8] = { 0 };
	json_t *obj = json_pack("{s:s}", "kind", "ConfigMap");
	json_t *ops = json_pack("[{s:s, s:s, s:i}]", "op", "add", "path", "/x", "value", 1);
	const char *p = "/api/v1/namespaces/n/configmaps/c";

	respond = respond_echo;
	c = client_new(NULL);
	assert_int_equal(
	    kube_create(c, "/api/v1/namespaces/n/configmaps", obj, on_done, &res[0], NULL), 0);
	assert_int_equal(kube_update(c, p, obj, on_done, &res[1], NULL), 0);
	assert_int_equal(kube_patch(c, p, KUBE_PATCH_MERGE, obj, on_done, &res[2], NULL), 0);
	assert_int_equal(kube_patch(c, p, KUBE_PATCH_STRATEGIC, obj, on_done, &res[3], NULL), 0);
	assert_int_equal(kube_patch(c, p, KUBE_PATCH_JSON, ops, on_done, &res[4], NULL), 0);
	assert_int_equal(kube_delete(c, p, &del, on_done, &res[5], NULL), 0);
	assert_int_equal(kube_delete(c, p, &del_default, on_done, &res[6], NULL), 0);
	assert_int_equal(kube_delete(c, p, NULL, on_done, &res[7], NULL), 0);
	assert_int_equal(kube_patch(c, p, 7, obj, on_done, &res[0], NULL), -EINVAL);
	assert_int_equal(kube_create(c, p, NULL, on_done, &res[0], NULL), -EINVAL);
	wait_results(res, 8, 5000);
	for (int i = 0; i < 8; i++)
		assert_int_equal(res[i].error, 0);
	assert_int_equal(res[0].code, 201);
	assert_int_equal(n_seen, 8);

	/* the calls were started in order, and the rate limit's burst lets all run at once;
	 * match them by method and content type instead of arrival order */
	int creates = 0, puts = 0, merges = 0, strategics = 0, jsons = 0, deletes = 0;
	for (unsigned i = 0; i < n_seen; i++) {
		struct seen *s = &seen[i];

		if (streq(s->method, "POST")) {
			creates++;
			assert_string_equal(s->ctype, "application/json");
			assert_string_equal(s->body, "{\"kind\":\"ConfigMap\"}");
		} else if (streq(s->method, "PUT")) {
			puts++;
			assert_string_equal(s->ctype, "application/json");
			assert_string_equal(s->body, "{\"kind\":\"ConfigMap\"}");
		} else if (streq(s->method, "PATCH") &&
			   streq(s->ctype, "application/merge-patch+json")) {
			merges++;
		} else if (streq(s->method, "PATCH") &&
			   streq(s->ctype, "application/strategic-merge-patch+json")) {
			strategics++;
		} else if (streq(s->method, "PATCH")) {
			jsons++;
			assert_string_equal(s->ctype, "application/json-patch+json");
			assert_string_equal(s->body,
					    "[{\"op\":\"add\",\"path\":\"/x\",\"value\":1}]");
		} else {
			assert_string_equal(s->method, "DELETE");
			deletes++;
			if (!s->body)
				continue;
			json_t *b = json_loads(s->body, 0, NULL);
			assert_non_null(b);
			assert_string_equal(json_string_value(json_object_get(b, "kind")),
					    "DeleteOptions");
			if (json_object_get(b, "gracePeriodSeconds")) {
				assert_int_equal(
				    json_integer_value(json_object_get(b, "gracePeriodSeconds")),
				    0);
				json_t *pre = json_object_get(b, "preconditions");
				assert_string_equal(json_string_value(json_object_get(pre, "uid")),
						    "u-1");
				assert_string_equal(
				    json_string_value(json_object_get(pre, "resourceVersion")),
				    "42");
				assert_string_equal(
				    json_string_value(json_object_get(b, "propagationPolicy")),
				    "Foreground");
			} else {
				/* grace -1: the server's default, so no field and no preconditions
				 */
				assert_null(json_object_get(b, "preconditions"));
				assert_null(json_object_get(b, "propagationPolicy"));
			}
			json_decref(b);
		}
	}
	assert_int_equal(creates, 1);
	assert_int_equal(puts, 1);
	assert_int_equal(merges, 1);
	assert_int_equal(strategics, 1);
	assert_int_equal(jsons, 1);
	assert_int_equal(deletes, 3);
	for (int i = 0; i < 8; i++)
		result_clear(&res[i]);
	json_decref(obj);
	json_decref(ops);
	kube_client_free(c);
}

/* 429 with Retry-After: 1 once, then success. */
static int respond_429_once(struct http_request *req, unsigned n)
{
	if (n > 0)
		return reply(req, 201, "{}");
	http_reply_add_header(req, "Retry-After", "1");
	return reply(req, 429, "{\"kind\":\"Status\",\"code\":429,\"reason\":\"TooManyRequests\"}");
}

static void test_retry_429(void **state)
{
	struct kube_client *c;
	struct result res = { 0 };
	json_t *obj = json_object();
	uint64_t start = now_usec();

	respond = respond_429_once;
	c = client_new(NULL);
	/* even a POST: the server said it did not process it */
	assert_int_equal(
	    kube_create(c, "/api/v1/namespaces/n/configmaps", obj, on_done, &res, NULL), 0);
	wait_results(&res, 1, 5000);
	assert_int_equal(res.error, 0);
	assert_int_equal(res.code, 201);
	assert_int_equal(n_seen, 2);
	/* Retry-After honoured (not the 125-250 ms first backoff step) */
	assert_true(seen[1].at - seen[0].at >= 990000);
	assert_true(res.at - start < 3000000);
	result_clear(&res);
	json_decref(obj);
	kube_client_free(c);
}

static int respond_503(struct http_request *req, unsigned n)
{
	return reply(req, 503,
		     "{\"kind\":\"Status\",\"code\":503,\"reason\":\"ServiceUnavailable\","
		     "\"message\":\"try later\"}");
}

static int respond_503_twice(struct http_request *req, unsigned n)
{
	return n < 2 ? respond_503(req, n) : respond_pod(req, n);
}

static void test_retry_5xx(void **state)
{
	struct kube_client_options o = { .max_retries = 2 };
	struct kube_client *c;
	struct result res = { 0 };
	json_t *obj = json_object();

	c = client_new(&o);
	/* GET is retried until it works */
	respond = respond_503_twice;
	assert_int_equal(kube_get(c, "/api/v1/nodes/n1", on_done, &res, NULL), 0);
	wait_results(&res, 1, 5000);
	assert_int_equal(res.error, 0);
	assert_int_equal(n_seen, 3);
	result_clear(&res);

	/* ... and gives up after max_retries with the last answer */
	respond = respond_503;
	assert_int_equal(kube_get(c, "/api/v1/nodes/n1", on_done, &res, NULL), 0);
	wait_results(&res, 1, 5000);
	assert_int_equal(res.error, -EIO);
	assert_int_equal(res.code, 503);
	assert_string_equal(res.message, "try later");
	assert_int_equal(n_seen, 6);
	result_clear(&res);

	/* a POST that the server may have processed is not repeated, nor is a JSON patch */
	assert_int_equal(
	    kube_create(c, "/api/v1/namespaces/n/configmaps", obj, on_done, &res, NULL), 0);
	wait_results(&res, 1, 5000);
	assert_int_equal(res.error, -EIO);
	assert_int_equal(n_seen, 7);
	result_clear(&res);
	json_t *ops = json_array();
	assert_int_equal(
	    kube_patch(c, "/api/v1/nodes/n1", KUBE_PATCH_JSON, ops, on_done, &res, NULL), 0);
	wait_results(&res, 1, 5000);
	assert_int_equal(res.error, -EIO);
	assert_int_equal(n_seen, 8);
	result_clear(&res);
	json_decref(ops);
	json_decref(obj);
	kube_client_free(c);
}

/* A port nobody listens on until start_server_later() binds it. */
static unsigned unused_port(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof a;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	close(fd);
	return ntohs(a.sin_port);
}

static int start_server_later(sd_event_source *s, uint64_t usec, void *userdata)
{
	char addr[32];

	snprintf(addr, sizeof addr, "127.0.0.1:%u", *(unsigned *)userdata);
	assert_true(http_server_listen_address(server, addr) > 0);
	return 0;
}

static void test_retry_connection_refused(void **state)
{
	struct kube_client_options none = { .max_retries = KUBE_NO_RETRY };
	struct kube_client *c;
	struct result res = { 0 };
	json_t *obj = json_object();
	unsigned p = unused_port();
	char server_url[64];
	sd_event_source *t = NULL;

	snprintf(server_url, sizeof server_url, "http://127.0.0.1:%u", p);
	config.server = server_url;
	respond = respond_echo;

	/* without retries: the transport error at once, code 0 */
	assert_int_equal(kube_client_new(event, &config, &none, &c), 0);
	assert_int_equal(
	    kube_create(c, "/api/v1/namespaces/n/configmaps", obj, on_done, &res, NULL), 0);
	wait_results(&res, 1, 5000);
	assert_int_equal(res.error, -ECONNREFUSED);
	assert_int_equal(res.code, 0);
	assert_non_null(res.message);
	assert_null(res.reason);
	assert_int_equal(kube_client_last_contact(c), 0);
	result_clear(&res);
	kube_client_free(c);

	/* with retries: a POST that never reached a server is sent once the server is up */
	assert_int_equal(kube_client_new(event, &config, NULL, &c), 0);
	assert_int_equal(sd_event_add_time_relative(event, &t, CLOCK_MONOTONIC, 300000, 1000,
						    start_server_later, &p),
			 0);
	assert_int_equal(
	    kube_create(c, "/api/v1/namespaces/n/configmaps", obj, on_done, &res, NULL), 0);
	wait_results(&res, 1, 8000);
	assert_int_equal(res.error, 0);
	assert_int_equal(res.code, 201);
	assert_int_equal(n_seen, 1);
	result_clear(&res);
	sd_event_source_unref(t);
	json_decref(obj);
	kube_client_free(c);
}

static int respond_hold(struct http_request *req, unsigned n)
{
	return hold(req);
}

static void test_timeout(void **state)
{
	struct kube_client_options o = { .timeout_usec = 200000 };
	struct kube_client *c;
	struct result res = { 0 };

	respond = respond_hold;
	c = client_new(&o);
	assert_int_equal(kube_get(c, "/api/v1/pods", on_done, &res, NULL), 0);
	wait_results(&res, 1, 5000);
	assert_int_equal(res.error, -ETIMEDOUT);
	assert_int_equal(res.code, 0);
	assert_int_equal(n_seen, 1); /* the timeout is the caller's budget: no retry */
	result_clear(&res);
	kube_client_free(c);
}

static void test_rate_limit(void **state)
{
	struct kube_client_options o = { .qps = 20, .burst = 1 };
	struct kube_client *c;
	struct result res[4] = { 0 };

	uint64_t before = now_usec();

	respond = respond_pod;
	c = client_new(&o);
	for (int i = 0; i < 4; i++)
		assert_int_equal(kube_get(c, "/api/v1/nodes", on_done, &res[i], NULL), 0);
	wait_results(res, 4, 5000);
	assert_int_equal(n_seen, 4);
	/* one at once, then one per 50 ms: the i-th arrival cannot precede the i-th token
	 * (1 ms of slack for clock granularity; a slow machine only arrives later) */
	for (int i = 1; i < 4; i++)
		assert_true(seen[i].at - before >= i * 50000ULL - 1000);
	for (int i = 0; i < 4; i++)
		result_clear(&res[i]);
	kube_client_free(c);
}

static void test_in_flight_cap(void **state)
{
	enum { N = KUBE_MAX_RUNNING + 6 };
	struct kube_client *c;
	static struct result res[N];
	static struct http_request *reqs[N];

	respond = respond_hold;
	c = client_new(NULL);
	for (int i = 0; i < N; i++)
		assert_int_equal(kube_get(c, "/api/v1/nodes", on_done, &res[i], NULL), 0);
	/* exactly the cap reaches the server, however long that takes; the rest wait */
	for (uint64_t deadline = now_usec() + 10000000; n_held < KUBE_MAX_RUNNING;)
		assert_true(now_usec() < deadline && sd_event_run(event, 10000) >= 0);
	run_for(300);
	assert_int_equal(n_held, KUBE_MAX_RUNNING);
	/* answering frees slots for the queued ones */
	memcpy(reqs, held, sizeof(reqs[0]) * n_held);
	unsigned answered = n_held;
	n_held = 0;
	respond = respond_pod;
	for (unsigned i = 0; i < answered; i++) {
		assert_int_equal(http_reply(reqs[i], 200, "application/json", "{}", 2), 0);
		http_request_unref(reqs[i]);
	}
	wait_results(res, N, 5000);
	assert_int_equal(n_seen, N);
	for (int i = 0; i < N; i++) {
		assert_int_equal(res[i].error, 0);
		result_clear(&res[i]);
	}
	kube_client_free(c);
}

static int respond_token(struct http_request *req, unsigned n)
{
	return reply(req, 200, "{}");
}

static void test_token_file(void **state)
{
	struct kube_config cfg = { 0 };
	struct kube_client *c;
	struct result res = { 0 };
	char path[128];

	snprintf(path, sizeof path, "%s/token", tmpdir);
	cfg.server = url;
	cfg.token = "ignored-when-a-file-is-set";
	cfg.token_file = path;
	cfg.namespace = "team-a";
	respond = respond_token;
	assert_int_equal(kube_client_new(event, &cfg, NULL, &c), 0);
	assert_string_equal(kube_client_namespace(c), "team-a");

	/* no file yet: the call fails and says which file */
	assert_int_equal(kube_get(c, "/api", on_done, &res, NULL), 0);
	wait_results(&res, 1, 5000);
	assert_int_equal(res.error, -ENOENT);
	assert_non_null(strstr(res.message, path));
	assert_int_equal(n_seen, 0);
	result_clear(&res);

	assert_int_equal(fs_write_atomic(path, "first\n", 6, 0600), 0);
	assert_int_equal(kube_get(c, "/api", on_done, &res, NULL), 0);
	wait_results(&res, 1, 5000);
	assert_string_equal(seen[0].auth, "Bearer first");
	result_clear(&res);

	/* rotation: the new file is used from the next request on */
	assert_int_equal(fs_write_atomic(path, "second-token", 12, 0600), 0);
	assert_int_equal(kube_get(c, "/api", on_done, &res, NULL), 0);
	wait_results(&res, 1, 5000);
	assert_string_equal(seen[1].auth, "Bearer second-token");
	result_clear(&res);

	/* briefly gone (mid-rotation): the last good token is kept */
	assert_int_equal(unlink(path), 0);
	assert_int_equal(kube_get(c, "/api", on_done, &res, NULL), 0);
	wait_results(&res, 1, 5000);
	assert_int_equal(res.error, 0);
	assert_string_equal(seen[2].auth, "Bearer second-token");
	result_clear(&res);
	kube_client_free(c);
}

struct stream_state {
	struct buf data;
	unsigned chunks;
	bool cancel;
	struct result res;
};

static int on_stream_data(struct kube_call *call, const void *data, size_t len, void *userdata)
{
	struct stream_state *s = userdata;

	s->chunks++;
	assert_int_equal(buf_append(&s->data, data, len), 0);
	if (s->cancel)
		kube_call_cancel(call); /* from inside its own callback */
	return 0;
}

static void on_stream_done(struct kube_call *call, int error, json_t *obj,
			   const struct kube_status *status, void *userdata)
{
	struct stream_state *s = userdata;

	on_done(call, error, obj, status, &s->res);
}

static int respond_stream(struct http_request *req, unsigned n)
{
	if (strstr(http_request_query(req), "resourceVersion=1"))
		return reply(req, 410,
			     "{\"kind\":\"Status\",\"code\":410,\"reason\":\"Expired\","
			     "\"message\":\"too old resource version: 1 (50)\"}");
	return reply(req, 200,
		     "{\"type\":\"ADDED\",\"object\":{}}\n{\"type\":\"DELETED\",\"object\":{}}\n");
}

static void test_stream(void **state)
{
	struct kube_client *c;
	struct stream_state s = { .data = BUF_INIT(0) };

	respond = respond_stream;
	c = client_new(NULL);
	assert_int_equal(
	    kube_stream(c, "/api/v1/pods?watch=true", on_stream_data, on_stream_done, &s, NULL), 0);
	wait_results(&s.res, 1, 5000);
	assert_int_equal(s.res.error, 0);
	assert_int_equal(s.res.code, 200);
	assert_null(s.res.obj);
	assert_string_equal(
	    s.data.data,
	    "{\"type\":\"ADDED\",\"object\":{}}\n{\"type\":\"DELETED\",\"object\":{}}\n");
	assert_null(seen[0].ctype);
	result_clear(&s.res);

	/* a non-2xx answer is decoded as a Status and never reaches on_data */
	buf_reset(&s.data);
	s.chunks = 0;
	assert_int_equal(kube_stream(c, "/api/v1/pods?watch=true&resourceVersion=1", on_stream_data,
				     on_stream_done, &s, NULL),
			 0);
	wait_results(&s.res, 1, 5000);
	assert_int_equal(s.res.error, -ETIME);
	assert_string_equal(s.res.reason, "Expired");
	assert_int_equal(s.chunks, 0);
	result_clear(&s.res);

	/* cancelled from on_data: no completion */
	s.cancel = true;
	assert_int_equal(
	    kube_stream(c, "/api/v1/pods?watch=true", on_stream_data, on_stream_done, &s, NULL), 0);
	for (uint64_t deadline = now_usec() + 5000000; s.chunks == 0;)
		assert_true(now_usec() < deadline && sd_event_run(event, 10000) >= 0);
	run_for(200);
	assert_int_equal(s.chunks, 1);
	assert_false(s.res.done);
	assert_int_equal(kube_stream(c, "/x", NULL, on_stream_done, &s, NULL), -EINVAL);
	buf_free(&s.data);
	kube_client_free(c);
}

static void test_cancel(void **state)
{
	struct kube_client_options o = { .qps = 2, .burst = 1 };
	struct kube_client *c;
	struct result res[3] = { 0 };
	struct kube_call *running, *waiting;

	respond = respond_hold;
	c = client_new(&o);
	assert_int_equal(kube_get(c, "/running", on_done, &res[0], &running), 0);
	assert_int_equal(kube_get(c, "/waiting", on_done, &res[1], &waiting), 0);
	wait_seen(1);
	kube_call_cancel(waiting);
	kube_call_cancel(running);
	kube_call_cancel(NULL);
	run_for(700);
	assert_false(res[0].done);
	assert_false(res[1].done);
	assert_int_equal(n_seen, 1); /* the waiting one never went out */

	/* calls still pending when the client is freed get no callback either */
	assert_int_equal(kube_get(c, "/pending", on_done, &res[2], NULL), 0);
	kube_client_free(c);
	run_for(100);
	assert_false(res[2].done);
}

/* kube_request_sync() runs its own loop, so the server lives in a child process. */
static void serve_in_child(int fd)
{
	sd_event *e = NULL;
	struct http_server *s = NULL;

	if (sd_event_new(&e) < 0 || http_server_new(e, NULL, &s) < 0 ||
	    http_server_listen_fd(s, fd) < 0 ||
	    http_server_add_route(s, NULL, "/", HTTP_ROUTE_PREFIX, on_request, NULL) < 0)
		_exit(1);
	respond = respond_errors;
	for (;;)
		if (sd_event_run(e, UINT64_MAX) < 0)
			_exit(1);
}

static void test_sync(void **state)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof a;
	struct kube_config cfg = { 0 };
	struct kube_status st = { 0 };
	char server_url[64];
	json_t *obj = NULL, *body = json_object();
	int fd, status;
	pid_t pid;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
	assert_int_equal(listen(fd, 16), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		serve_in_child(fd);
	close(fd);
	snprintf(server_url, sizeof server_url, "http://127.0.0.1:%u", ntohs(a.sin_port));
	cfg.server = server_url;

	assert_int_equal(
	    kube_request_sync(&cfg, "GET", "/api/v1/namespaces/n/pods/missing", NULL, &obj, &st),
	    -ENOENT);
	assert_null(obj);
	assert_int_equal(st.code, 404);
	assert_string_equal(st.reason, "NotFound");
	assert_string_equal(st.message, "pods \"missing\" not found");
	kube_status_clear(&st);
	assert_int_equal(
	    kube_request_sync(&cfg, "DELETE", "/api/v1/namespaces/n/pods/x", body, &obj, &st), 0);
	assert_null(obj); /* 204: no body */
	assert_int_equal(
	    kube_request_sync(&cfg, "PUT", "/api/v1/namespaces/n/pods/stale", body, NULL, NULL),
	    -ESTALE);
	assert_int_equal(kube_request_sync(&cfg, "BREW", "/x", NULL, NULL, NULL), -EINVAL);
	kill(pid, SIGKILL);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	json_decref(body);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_path),
		cmocka_unit_test(test_status_errno),
		cmocka_unit_test(test_status_from_json),
		cmocka_unit_test(test_backoff),
		cmocka_unit_test(test_bucket),
		cmocka_unit_test(test_retry_after_parse),
		cmocka_unit_test_setup_teardown(test_get, setup, teardown),
		cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_list_pages, setup, teardown),
		cmocka_unit_test_setup_teardown(test_list_expired_and_null, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bodies, setup, teardown),
		cmocka_unit_test_setup_teardown(test_retry_429, setup, teardown),
		cmocka_unit_test_setup_teardown(test_retry_5xx, setup, teardown),
		cmocka_unit_test_setup_teardown(test_retry_connection_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_timeout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rate_limit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_in_flight_cap, setup, teardown),
		cmocka_unit_test_setup_teardown(test_token_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stream, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sync, setup, teardown),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
