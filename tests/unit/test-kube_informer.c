/* kube_informer against a scripted apiserver: the first list fills the cache (trimmed,
 * keyed ns/name or name) and marks it synced after the add handlers; the watch starts from
 * the list's RV; watch events update cache, indexes and handlers (no update handler when
 * the RV did not change); a 410 relists and the diff against the cache comes out as
 * add/update/delete; a failed list is retried, with a warning; handlers may free the
 * informer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "cocoon/kube.h"
#include "cocoon/log.h"
#include "fake-apiserver.h"

#define PATH "/api/v1/pods"

static struct fake_server srv;
static sd_event *event;
static struct kube_client *client;
static void (*script)(struct fake_conn *c, size_t i, const char *target);

static struct {
	char lines[64][160];
	size_t n;
	bool synced_seen_full; /* the cache was complete when on_synced ran */
	bool flag;
	size_t free_after;
	struct kube_informer **self;
} rec;

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

static const char *rv_of(const json_t *o)
{
	return json_string_value(
	    json_object_get(json_object_get(o, "metadata"), "resourceVersion"));
}

/* What kube_informer_get returns for key, in a few words: "" when absent, else the RV, and
 * whether metadata.managedFields and spec are there. */
static const char *cached(struct kube_informer *inf, const char *key)
{
	static char out[128];
	_cleanup_(json_decrefp) json_t *o = kube_informer_get(inf, key);
	json_t *meta = json_object_get(o, "metadata");

	if (!o)
		return "";
	snprintf(out, sizeof(out), "%s%s%s", rv_of(o),
		 json_object_get(meta, "managedFields") ? " managedFields" : "",
		 json_object_get(o, "spec") ? " spec" : "");
	return out;
}

static const char *name_of(const json_t *o)
{
	return json_string_value(json_object_get(json_object_get(o, "metadata"), "name"));
}

static void record(struct kube_informer *inf, const char *fmt, ...) _printf_(2, 3);
static void record(struct kube_informer *inf, const char *fmt, ...)
{
	va_list ap;

	assert_true(rec.n < ELEMENTSOF(rec.lines));
	va_start(ap, fmt);
	vsnprintf(rec.lines[rec.n++], sizeof(rec.lines[0]), fmt, ap);
	va_end(ap);
	rec.flag = true;
	if (rec.free_after && rec.n == rec.free_after) {
		kube_informer_free(inf);
		*rec.self = NULL;
	}
}

static void on_add(struct kube_informer *inf, const json_t *obj, void *u)
{
	/* The cache already holds it, and managedFields are gone. */
	assert_null(json_object_get(json_object_get(obj, "metadata"), "managedFields"));
	record(inf, "ADD %s %s", name_of(obj), rv_of(obj));
}

static void on_update(struct kube_informer *inf, const json_t *old, const json_t *obj, void *u)
{
	record(inf, "UPDATE %s %s->%s", name_of(obj), rv_of(old), rv_of(obj));
}

static void on_delete(struct kube_informer *inf, const json_t *obj, void *u)
{
	record(inf, "DELETE %s %s", name_of(obj), rv_of(obj));
}

static void on_synced(struct kube_informer *inf, void *u)
{
	rec.synced_seen_full = kube_informer_size(inf) == 3 && kube_informer_synced(inf);
	record(inf, "SYNCED %zu", kube_informer_size(inf));
}

static const struct kube_informer_handlers handlers = { on_add, on_update, on_delete, on_synced };

/* A pod: namespace ns, name, rv, label app, node, owner uid. */
static char *pod(const char *ns, const char *name, const char *rv, const char *app,
		 const char *node, const char *owner)
{
	char *s;

	assert_true(
	    asprintf(&s,
		     "{\"metadata\":{\"name\":\"%s\",\"namespace\":\"%s\",\"resourceVersion\":"
		     "\"%s\",\"labels\":{\"app\":\"%s\"},\"ownerReferences\":[{\"uid\":\"%s\"}],"
		     "\"managedFields\":[{\"manager\":\"kubectl\"}]},"
		     "\"spec\":{\"nodeName\":\"%s\"}}",
		     name, ns, rv, app, owner, node) > 0);
	return s;
}

static void reply_list(struct fake_conn *c, const char *rv, const char *items[], size_t n)
{
	struct buf b = BUF_INIT(0);

	assert_int_equal(buf_printf(&b,
				    "{\"kind\":\"PodList\",\"apiVersion\":\"v1\",\"metadata\":"
				    "{\"resourceVersion\":\"%s\"},\"items\":[",
				    rv),
			 0);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(buf_printf(&b, "%s%s", i ? "," : "", items[i]), 0);
	assert_int_equal(buf_append_str(&b, "]}"), 0);
	fake_reply(c, 200, b.data);
	buf_free(&b);
}

static void stream_event(struct fake_conn *c, const char *type, char *obj)
{
	char *e;

	assert_true(asprintf(&e, "{\"type\":\"%s\",\"object\":%s}\n", type, obj) > 0);
	fake_stream_piece(c, e);
	free(e);
	free(obj);
}

static bool is_watch(const char *target)
{
	return strstr(target, "watch=1") != NULL;
}

static void wait_lines(size_t n, unsigned ms)
{
	uint64_t deadline = fake_now_usec() + ms * 1000ULL;

	while (rec.n < n) {
		assert_true(fake_now_usec() < deadline);
		assert_true(sd_event_run(event, 10000) >= 0);
	}
}

/* Keys of an index lookup, sorted, space-separated. */
static char *lookup(struct kube_informer *inf, const char *index, const char *value)
{
	static char out[256];
	json_t *a = kube_informer_by_index(inf, index, value), *o;
	const char *names[16];
	size_t i, n = 0;

	if (!a)
		return NULL;
	json_array_foreach (a, i, o) {
		assert_true(n < 16);
		names[n++] = name_of(o);
	}
	for (size_t x = 0; x < n; x++)
		for (size_t y = x + 1; y < n; y++)
			if (strcmp(names[x], names[y]) > 0) {
				const char *t = names[x];
				names[x] = names[y];
				names[y] = t;
			}
	out[0] = 0;
	for (size_t x = 0; x < n; x++)
		snprintf(out + strlen(out), sizeof(out) - strlen(out), "%s%s", x ? " " : "",
			 names[x]);
	json_decref(a);
	return out;
}

static char **index_by_name_prefix(const json_t *obj, void *userdata)
{
	char **v = calloc(2, sizeof(char *));

	assert_non_null(v);
	v[0] = strndup(name_of(obj), 1);
	return v;
}

/* ---- list, watch, relist ---- */

static void script_main(struct fake_conn *c, size_t i, const char *target)
{
	switch (i) {
	case 0: { /* the first list */
		const char *items[] = { pod("ns", "a", "10", "web", "n1", "u1"),
					pod("ns", "b", "11", "web", "n2", "u1"),
					pod("kube-system", "c", "12", "db", "n1", "u2") };
		assert_false(is_watch(target));
		reply_list(c, "20", items, 3);
		for (size_t k = 0; k < 3; k++)
			free((char *)items[k]);
		break;
	}
	case 1: /* watch from the list's RV */
		assert_true(is_watch(target));
		fake_stream_begin(c);
		stream_event(c, "MODIFIED", pod("ns", "a", "21", "db", "n2", "u1"));
		stream_event(c, "MODIFIED", pod("ns", "a", "21", "db", "n2", "u1")); /* same RV */
		stream_event(c, "ADDED", pod("ns", "d", "22", "web", "n3", "u3"));
		stream_event(c, "DELETED", pod("ns", "b", "23", "web", "n2", "u1"));
		fake_stream_piece(c, "{\"type\":\"BOOKMARK\",\"object\":{\"metadata\":"
				     "{\"resourceVersion\":\"24\"}}}\n");
		fake_stream_piece(
		    c, "{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\","
		       "\"code\":410,\"reason\":\"Expired\",\"message\":\"too old\"}}\n");
		fake_stream_end(c);
		break;
	case 2: { /* the relist: c gone, a unchanged, d changed, e new */
		const char *items[] = { pod("ns", "a", "21", "db", "n2", "u1"),
					pod("ns", "d", "30", "db", "n3", "u3"),
					pod("ns", "e", "31", "web", "n1", "u2") };
		assert_false(is_watch(target));
		reply_list(c, "40", items, 3);
		for (size_t k = 0; k < 3; k++)
			free((char *)items[k]);
		break;
	}
	default:
		fake_stream_begin(c);
	}
}

/* The same story for both ways of keeping the cache: decoded objects, and compact text
 * (kube_informer_set_compact) decoded again on every read. */
static void test_list_watch_relist(void **state)
{
	const struct kube_list_options sel = { .label_selector = "tier=x",
					       .resource_version = "0" };
	_cleanup_(kube_informer_freep) struct kube_informer *inf = NULL;
	bool compact = *state != NULL;

	script = script_main;
	assert_int_equal(kube_informer_new(client, PATH, &sel, &handlers, NULL, &inf), 0);
	assert_int_equal(kube_informer_set_compact(inf, compact), 0);
	assert_int_equal(kube_informer_add_index(inf, "namespace", NULL, NULL), 0);
	assert_int_equal(kube_informer_add_index(inf, "nodeName", NULL, NULL), 0);
	assert_int_equal(kube_informer_add_index(inf, "owner", NULL, NULL), 0);
	assert_int_equal(kube_informer_add_index(inf, "label:app", NULL, NULL), 0);
	assert_int_equal(kube_informer_add_index(inf, "first", index_by_name_prefix, NULL), 0);
	assert_int_equal(kube_informer_add_index(inf, "owner", NULL, NULL), -EEXIST);
	assert_int_equal(kube_informer_add_index(inf, "colour", NULL, NULL), -EINVAL);
	assert_int_equal(kube_informer_add_index(inf, "label:", NULL, NULL), -EINVAL);
	assert_false(kube_informer_synced(inf));
	assert_int_equal(kube_informer_start(inf), 0);
	assert_int_equal(kube_informer_start(inf), -EALREADY);
	assert_int_equal(kube_informer_add_index(inf, "late", index_by_name_prefix, NULL), -EBUSY);

	wait_lines(4, 5000);
	assert_string_equal(rec.lines[0], "ADD a 10");
	assert_string_equal(rec.lines[1], "ADD b 11");
	assert_string_equal(rec.lines[2], "ADD c 12");
	assert_string_equal(rec.lines[3], "SYNCED 3");
	assert_true(rec.synced_seen_full);
	assert_true(kube_informer_synced(inf));
	/* The first list may come from the cache (RV "0") and carries the selector. */
	assert_string_equal(query_value(srv.requests[0], "resourceVersion"), "0");
	assert_string_equal(query_value(srv.requests[0], "labelSelector"), "tier%3Dx");
	assert_int_equal(kube_informer_set_compact(inf, !compact), -EBUSY);
	/* Keys; managedFields dropped from the cache. */
	assert_string_equal(cached(inf, "ns/a"), "10 spec");
	assert_string_equal(cached(inf, "kube-system/c"), "12 spec");
	assert_string_equal(cached(inf, "c"), "");
	{
		/* Decoded objects are shared with the cache; compact text is decoded afresh for
		 * every read. */
		_cleanup_(json_decrefp) json_t *x = kube_informer_get(inf, "ns/a");
		_cleanup_(json_decrefp) json_t *y = kube_informer_get(inf, "ns/a");

		assert_true(compact ? x != y : x == y);
		assert_true(json_equal(x, y));
		assert_int_equal(x->refcount, compact ? 1 : 3);
	}
	assert_string_equal(lookup(inf, "namespace", "ns"), "a b");
	assert_string_equal(lookup(inf, "label:app", "web"), "a b");
	assert_string_equal(lookup(inf, "nodeName", "n1"), "a c");
	assert_string_equal(lookup(inf, "owner", "u1"), "a b");
	assert_string_equal(lookup(inf, "first", "c"), "c");
	assert_string_equal(lookup(inf, "label:app", "none"), "");
	assert_null(lookup(inf, "label:tier", "x"));

	/* Watch events; the duplicate MODIFIED with the same RV calls nothing. */
	wait_lines(7, 5000);
	assert_string_equal(query_value(srv.requests[1], "resourceVersion"), "20");
	assert_string_equal(query_value(srv.requests[1], "allowWatchBookmarks"), "true");
	assert_string_equal(query_value(srv.requests[1], "labelSelector"), "tier%3Dx");
	assert_string_equal(rec.lines[4], "UPDATE a 10->21");
	assert_string_equal(rec.lines[5], "ADD d 22");
	assert_string_equal(rec.lines[6], "DELETE b 23");

	/* 410 → relist, diffed against the cache, then a watch from the new list's RV. */
	assert_true(fake_run_until(&srv, NULL, 4, 5000));
	wait_lines(10, 5000);
	assert_null(query_value(srv.requests[2], "resourceVersion"));
	assert_false(is_watch(srv.requests[2]));
	assert_string_equal(rec.lines[7], "DELETE c 12");
	assert_string_equal(rec.lines[8], "UPDATE d 22->30");
	assert_string_equal(rec.lines[9], "ADD e 31");
	assert_string_equal(query_value(srv.requests[3], "resourceVersion"), "40");
	fake_run_for(&srv, 50);
	assert_int_equal(rec.n, 10); /* a unchanged: no update; synced only once */

	/* Indexes follow every change. */
	assert_int_equal(kube_informer_size(inf), 3);
	assert_string_equal(lookup(inf, "label:app", "web"), "e");
	assert_string_equal(lookup(inf, "label:app", "db"), "a d");
	assert_string_equal(lookup(inf, "nodeName", "n2"), "a");
	assert_string_equal(lookup(inf, "nodeName", "n1"), "e");
	assert_string_equal(lookup(inf, "owner", "u1"), "a");
	assert_string_equal(lookup(inf, "owner", "u2"), "e");
	assert_string_equal(lookup(inf, "namespace", "kube-system"), "");
	assert_string_equal(lookup(inf, "first", "b"), "");
	assert_string_equal(cached(inf, "ns/d"), "30 spec");
	assert_string_equal(cached(inf, "ns/b"), "");
}

/* ---- failures ---- */

static void script_list_fails(struct fake_conn *c, size_t i, const char *target)
{
	if (i == 0) {
		fake_reply(c, 403,
			   "{\"kind\":\"Status\",\"code\":403,\"reason\":\"Forbidden\","
			   "\"message\":\"pods is forbidden\"}");
	} else if (i == 1) {
		/* Cluster-scoped objects are keyed by name; "items": null is an empty list. */
		fake_reply(c, 200,
			   "{\"kind\":\"NodeList\",\"metadata\":{\"resourceVersion\":\"5\"},"
			   "\"items\":null}");
	} else if (i == 2) {
		fake_stream_begin(c);
		stream_event(
		    c, "ADDED",
		    strdup("{\"metadata\":{\"name\":\"node1\",\"resourceVersion\":\"6\"}}"));
	} else {
		fake_stream_begin(c);
	}
}

static void test_list_retry_and_cluster_scope(void **state)
{
	_cleanup_(kube_informer_freep) struct kube_informer *inf = NULL;
	char *log_text = NULL;
	size_t log_len = 0;
	FILE *log_stream = open_memstream(&log_text, &log_len);

	assert_non_null(log_stream);
	log_set_stream(log_stream);
	script = script_list_fails;
	assert_int_equal(kube_informer_new(client, "/api/v1/nodes", NULL, &handlers, NULL, &inf),
			 0);
	assert_int_equal(kube_informer_start(inf), 0);
	fake_run_for(&srv, 200);
	/* Refused: not synced, nothing called, retried after the backoff (~1 s). */
	assert_false(kube_informer_synced(inf));
	assert_int_equal(rec.n, 0);
	wait_lines(2, 5000);
	assert_string_equal(rec.lines[0], "SYNCED 0");
	assert_string_equal(rec.lines[1], "ADD node1 6");
	assert_string_equal(cached(inf, "node1"), "6");
	assert_int_equal(srv.n_requests, 3);
	/* The operator sees why the cache is not filling, and when it recovered. */
	log_set_stream(NULL);
	assert_int_equal(fclose(log_stream), 0);
	assert_non_null(strstr(log_text, "cannot list /api/v1/nodes: pods is forbidden; "
					 "listing again in "));
	assert_non_null(strstr(log_text, "listed /api/v1/nodes after 1 failed attempt\n"));
	free(log_text);
}

static void script_free(struct fake_conn *c, size_t i, const char *target)
{
	const char *items[] = { pod("ns", "a", "1", "x", "n", "u"),
				pod("ns", "b", "2", "x", "n", "u"),
				pod("ns", "c", "3", "x", "n", "u") };

	if (i == 0)
		reply_list(c, "3", items, 3);
	else
		fake_stream_begin(c);
	for (size_t k = 0; k < 3; k++)
		free((char *)items[k]);
}

static void test_free_from_handler(void **state)
{
	struct kube_informer *inf = NULL;

	script = script_free;
	rec.free_after = 2;
	rec.self = &inf;
	assert_int_equal(kube_informer_new(client, PATH, NULL, &handlers, NULL, &inf), 0);
	assert_int_equal(kube_informer_start(inf), 0);
	wait_lines(2, 5000);
	assert_null(inf);
	fake_run_for(&srv, 100);
	/* Nothing after the free: no third add, no synced, no watch. */
	assert_int_equal(rec.n, 2);
	assert_int_equal(srv.n_requests, 1);
}

static void drop_spec(json_t *obj, void *u)
{
	json_object_del(obj, "spec");
	(*(int *)u)++;
}

/* A transform trims what is cached and what the handlers and indexes see. */
static void test_transform(void **state)
{
	_cleanup_(kube_informer_freep) struct kube_informer *inf = NULL;
	int calls = 0;

	script = script_free;
	assert_int_equal(kube_informer_new(client, PATH, NULL, &handlers, NULL, &inf), 0);
	assert_int_equal(kube_informer_add_index(inf, "nodeName", NULL, NULL), 0);
	assert_int_equal(kube_informer_set_transform(inf, drop_spec, &calls), 0);
	assert_int_equal(kube_informer_start(inf), 0);
	assert_int_equal(kube_informer_set_transform(inf, drop_spec, &calls), -EBUSY);
	wait_lines(4, 5000);
	assert_int_equal(calls, 3);
	assert_string_equal(cached(inf, "ns/a"), "1");
	assert_string_equal(lookup(inf, "nodeName", "n"), "");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_list_watch_relist, setup, teardown),
		{ "test_list_watch_relist_compact", test_list_watch_relist, setup, teardown,
		  (void *)"compact" },
		cmocka_unit_test_setup_teardown(test_list_retry_and_cluster_scope, setup, teardown),
		cmocka_unit_test_setup_teardown(test_free_from_handler, setup, teardown),
		cmocka_unit_test_setup_teardown(test_transform, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
