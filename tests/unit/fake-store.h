/* A tiny object-store apiserver for the leader election and Event recorder unit tests, on
 * the cocoon HTTP server and the same sd-event loop as the client under test (plain HTTP
 * on 127.0.0.1). It keeps the rules those clients rely on (spec/kube-api.md §1.3-1.4):
 * one resourceVersion counter; POST to a collection creates (409 AlreadyExists); PUT needs
 * the stored resourceVersion (409 Conflict, 422 without one); PATCH merges top-level
 * fields; 404 NotFound otherwise; errors are Status objects. Tests can make it fail the
 * next requests with a status, or hold every request unanswered (a hung apiserver), and
 * read what was asked of it. */
#pragma once

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cocoon/http.h"
#include "cocoon/kube.h"

#define STORE_MAX_HELD 64
#define STORE_MAX_LOG  512

struct store {
	sd_event *event;
	struct http_server *srv;
	char url[64];
	json_t *objects; /* path → object */
	unsigned long rv;
	unsigned fail_next, fail_status; /* answer the next fail_next requests with this */
	bool hold;                       /* keep requests unanswered */
	struct http_request *held[STORE_MAX_HELD];
	size_t n_held;
	char *log[STORE_MAX_LOG]; /* "METHOD /path" per request, in arrival order */
	size_t n_log;
};

static inline uint64_t store_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static inline void store_status(struct http_request *req, unsigned code, const char *reason,
				const char *message)
{
	json_t *st = json_pack("{s:s, s:s, s:{}, s:s, s:s, s:s, s:i}", "kind", "Status",
			       "apiVersion", "v1", "metadata", "status", "Failure", "message",
			       message, "reason", reason, "code", (int)code);
	char *body = json_dumps(st, JSON_COMPACT);

	http_reply(req, code, "application/json", body, strlen(body));
	free(body);
	json_decref(st);
}

static inline void store_json(struct http_request *req, unsigned code, const json_t *obj)
{
	char *body = json_dumps(obj, JSON_COMPACT);

	http_reply(req, code, "application/json", body, strlen(body));
	free(body);
}

/* Stores obj at path with the next resourceVersion (takes the reference). */
static inline void store_put(struct store *s, const char *path, json_t *obj)
{
	char rv[32];
	json_t *meta = json_object_get(obj, "metadata");

	if (!json_is_object(meta)) {
		meta = json_object();
		json_object_set_new(obj, "metadata", meta);
	}
	snprintf(rv, sizeof rv, "%lu", ++s->rv);
	json_object_set_new(meta, "resourceVersion", json_string(rv));
	json_object_set_new(s->objects, path, obj);
}

static inline json_t *store_get(struct store *s, const char *path)
{
	return json_object_get(s->objects, path);
}

/* How many requests "METHOD path-prefix" were logged. */
static inline unsigned store_count(const struct store *s, const char *method, const char *prefix)
{
	unsigned n = 0;
	size_t ml = strlen(method);

	for (size_t i = 0; i < s->n_log; i++)
		if (strncmp(s->log[i], method, ml) == 0 && s->log[i][ml] == ' ' &&
		    strncmp(s->log[i] + ml + 1, prefix, strlen(prefix)) == 0)
			n++;
	return n;
}

static inline void store_create(struct store *s, struct http_request *req, const char *path,
				json_t *body)
{
	const char *name =
	    json_string_value(json_object_get(json_object_get(body, "metadata"), "name"));
	char item[512];

	if (!name) {
		store_status(req, 422, "Invalid", "metadata.name: Required value");
		return;
	}
	snprintf(item, sizeof item, "%s/%s", path, name);
	if (store_get(s, item)) {
		store_status(req, 409, "AlreadyExists", "already exists");
		return;
	}
	store_put(s, item, json_incref(body));
	store_json(req, 201, store_get(s, item));
}

static inline void store_update(struct store *s, struct http_request *req, const char *path,
				json_t *body)
{
	json_t *cur = store_get(s, path);
	const char *rv = json_string_value(
	    json_object_get(json_object_get(body, "metadata"), "resourceVersion"));
	const char *cur_rv;

	if (!cur) {
		store_status(req, 404, "NotFound", "not found");
		return;
	}
	cur_rv =
	    json_string_value(json_object_get(json_object_get(cur, "metadata"), "resourceVersion"));
	if (!rv || !*rv) {
		store_status(
		    req, 422, "Invalid",
		    "metadata.resourceVersion: Invalid value: 0x0: must be specified for an "
		    "update");
		return;
	}
	if (!cur_rv || strcmp(rv, cur_rv) != 0) {
		store_status(req, 409, "Conflict",
			     "Operation cannot be fulfilled: the object has been modified; please "
			     "apply your changes to the latest version and try again");
		return;
	}
	store_put(s, path, json_incref(body));
	store_json(req, 200, store_get(s, path));
}

static inline void store_patch(struct store *s, struct http_request *req, const char *path,
			       json_t *body)
{
	json_t *cur = store_get(s, path), *copy;

	if (!cur) {
		store_status(req, 404, "NotFound", "not found");
		return;
	}
	copy = json_deep_copy(cur);
	json_object_update(copy, body);
	store_put(s, path, copy);
	store_json(req, 200, store_get(s, path));
}

static inline int store_on_request(struct http_request *req, void *userdata)
{
	struct store *s = userdata;
	const char *method = http_request_method(req), *path = http_request_path(req);
	const char *text;
	size_t len;
	json_t *body = NULL;

	if (s->n_log < STORE_MAX_LOG && asprintf(&s->log[s->n_log], "%s %s", method, path) >= 0)
		s->n_log++;
	if (s->hold && s->n_held < STORE_MAX_HELD) {
		s->held[s->n_held++] = http_request_ref(req);
		return 0;
	}
	if (s->fail_next > 0) {
		s->fail_next--;
		store_status(req, s->fail_status, "InternalError", "injected failure");
		return 0;
	}
	text = http_request_body(req, &len);
	if (len > 0) {
		body = json_loadb(text, len, 0, NULL);
		if (!json_is_object(body)) {
			json_decref(body);
			store_status(req, 400, "BadRequest", "body is not a JSON object");
			return 0;
		}
	}
	if (streq(method, "GET")) {
		if (store_get(s, path))
			store_json(req, 200, store_get(s, path));
		else
			store_status(req, 404, "NotFound", "not found");
	} else if (streq(method, "POST") && body)
		store_create(s, req, path, body);
	else if (streq(method, "PUT") && body)
		store_update(s, req, path, body);
	else if (streq(method, "PATCH") && body)
		store_patch(s, req, path, body);
	else
		store_status(req, 405, "MethodNotAllowed", "not allowed");
	json_decref(body);
	return 0;
}

/* Answers every held request with 503 and stops holding. */
static inline void store_release_held(struct store *s)
{
	s->hold = false;
	for (size_t i = 0; i < s->n_held; i++) {
		store_status(s->held[i], 503, "ServiceUnavailable", "was held");
		http_request_unref(s->held[i]);
	}
	s->n_held = 0;
}

static inline void store_start(struct store *s, sd_event *e)
{
	int port;

	memset(s, 0, sizeof *s);
	s->event = e;
	s->rv = 1000;
	s->objects = json_object();
	assert_int_equal(http_server_new(e, NULL, &s->srv), 0);
	assert_int_equal(
	    http_server_add_route(s->srv, NULL, "/", HTTP_ROUTE_PREFIX, store_on_request, s), 0);
	port = http_server_listen_address(s->srv, "127.0.0.1:0");
	assert_true(port > 0);
	snprintf(s->url, sizeof s->url, "http://127.0.0.1:%d", port);
}

static inline void store_stop(struct store *s)
{
	store_release_held(s);
	http_server_free(s->srv);
	json_decref(s->objects);
	for (size_t i = 0; i < s->n_log; i++)
		free(s->log[i]);
}

/* A client for the store: no client-side retries, so the tests see each failure. */
static inline struct kube_client *store_client(struct store *s)
{
	struct kube_config cfg = { .server = s->url };
	struct kube_client_options o = { .max_retries = KUBE_NO_RETRY, .qps = 1000, .burst = 1000 };
	struct kube_client *c = NULL;

	assert_int_equal(kube_client_new(s->event, &cfg, &o, &c), 0);
	return c;
}
