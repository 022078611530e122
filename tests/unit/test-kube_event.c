/* kube_event against an in-process object store (fake-store.h): the Event a record
 * creates (name, namespace, involvedObject, source, reporting fields, timestamps, count),
 * repeats counted into one Event by PATCH (coalesced while a write is in flight), a new
 * Event for a different reason, message or type, cluster-scoped objects in "default", an
 * Event deleted server-side re-created with its count, failures counted and never fatal,
 * bad arguments refused with a reason, long names and messages cut, the cache cap, and
 * flush. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "cocoon/kube.h"
#include "cocoon/log.h"
#include "fake-store.h"

#define MS     1000ULL
#define EVENTS "/api/v1/namespaces/ns/events"

static sd_event *event;
static struct store store;
static struct kube_client *client;
static struct kube_recorder *rec;
static json_t *pod;

static int setup(void **state)
{
	assert_true(sd_event_new(&event) >= 0);
	store_start(&store, event);
	client = store_client(&store);
	assert_int_equal(kube_recorder_new(client, "cocoon-operator", "node-1", &rec), 0);
	pod = json_pack("{s:s, s:s, s:{s:s, s:s, s:s, s:s}}", "apiVersion", "v1", "kind", "Pod",
			"metadata", "name", "web-0", "namespace", "ns", "uid", "u-1",
			"resourceVersion", "77");
	return 0;
}

static int teardown(void **state)
{
	kube_recorder_free(rec);
	kube_client_free(client);
	store_stop(&store);
	json_decref(pod);
	event = sd_event_unref(event);
	return 0;
}

static void run_for(unsigned ms)
{
	uint64_t end = store_now() + ms * MS;

	while (store_now() < end)
		assert_true(sd_event_run(event, end - store_now()) >= 0);
}

static unsigned flushed;

static void on_flushed(struct kube_recorder *r, void *u)
{
	flushed++;
}

/* Runs the loop until every write has been answered. */
static void flush(void)
{
	uint64_t end = store_now() + 2000 * MS;

	flushed = 0;
	assert_int_equal(kube_recorder_flush(rec, on_flushed, NULL), 0);
	while (!flushed) {
		assert_true(store_now() < end);
		assert_true(sd_event_run(event, 10 * MS) >= 0);
	}
}

/* The stored Events under a collection, in creation order (resourceVersion). */
static size_t events_in(const char *collection, json_t **ret, size_t max)
{
	const char *path;
	json_t *obj;
	size_t n = 0, len = strlen(collection);

	json_object_foreach (store.objects, path, obj)
		if (strncmp(path, collection, len) == 0 && path[len] == '/' && n < max)
			ret[n++] = obj;
	return n;
}

static const char *str_at(const json_t *o, const char *a, const char *b)
{
	return json_string_value(json_object_get(b ? json_object_get(o, a) : o, b ? b : a));
}

static void test_creates_event(void **state)
{
	json_t *ev[4];
	uint64_t t;

	assert_int_equal(
	    kube_record(rec, pod, "Warning", "BackOff", "restarting %s (%d)", "web", 3), 0);
	flush();
	assert_int_equal(events_in(EVENTS, ev, 4), 1);
	assert_int_equal(strncmp(str_at(ev[0], "metadata", "name"), "web-0.", 6), 0);
	assert_true(strlen(str_at(ev[0], "metadata", "name")) > 6 + 10);
	assert_string_equal(str_at(ev[0], "metadata", "namespace"), "ns");
	assert_string_equal(str_at(ev[0], "involvedObject", "kind"), "Pod");
	assert_string_equal(str_at(ev[0], "involvedObject", "name"), "web-0");
	assert_string_equal(str_at(ev[0], "involvedObject", "namespace"), "ns");
	assert_string_equal(str_at(ev[0], "involvedObject", "uid"), "u-1");
	assert_string_equal(str_at(ev[0], "involvedObject", "apiVersion"), "v1");
	assert_string_equal(str_at(ev[0], "involvedObject", "resourceVersion"), "77");
	assert_string_equal(str_at(ev[0], "reason", NULL), "BackOff");
	assert_string_equal(str_at(ev[0], "message", NULL), "restarting web (3)");
	assert_string_equal(str_at(ev[0], "type", NULL), "Warning");
	assert_string_equal(str_at(ev[0], "source", "component"), "cocoon-operator");
	assert_string_equal(str_at(ev[0], "source", "host"), "node-1");
	assert_string_equal(str_at(ev[0], "reportingComponent", NULL), "cocoon-operator");
	assert_string_equal(str_at(ev[0], "reportingInstance", NULL), "node-1");
	assert_int_equal(json_integer_value(json_object_get(ev[0], "count")), 1);
	/* metav1.Time: seconds, "Z". */
	assert_int_equal(strlen(str_at(ev[0], "firstTimestamp", NULL)), 20);
	assert_string_equal(str_at(ev[0], "firstTimestamp", NULL),
			    str_at(ev[0], "lastTimestamp", NULL));
	assert_int_equal(kube_time_parse(str_at(ev[0], "firstTimestamp", NULL), &t), 0);
	assert_true(t <= kube_time_now() && t + 5000 * MS > kube_time_now());
	assert_int_equal(kube_recorder_failures(rec), 0);
}

static void test_repeats_are_counted(void **state)
{
	json_t *ev[4];
	char first[KUBE_TIME_MAX];

	for (int i = 0; i < 5; i++)
		assert_int_equal(kube_record(rec, pod, "Normal", "Pulled", "image pulled"), 0);
	flush();
	assert_int_equal(events_in(EVENTS, ev, 4), 1);
	assert_int_equal(json_integer_value(json_object_get(ev[0], "count")), 5);
	/* One create, and the four repeats made while it was in flight as one patch. */
	assert_int_equal(store_count(&store, "POST", EVENTS), 1);
	assert_int_equal(store_count(&store, "PATCH", EVENTS), 1);

	snprintf(first, sizeof first, "%s", str_at(ev[0], "firstTimestamp", NULL));
	run_for(1100); /* so lastTimestamp (whole seconds) moves */
	assert_int_equal(kube_record(rec, pod, "Normal", "Pulled", "image pulled"), 0);
	flush();
	assert_int_equal(events_in(EVENTS, ev, 4), 1);
	assert_int_equal(json_integer_value(json_object_get(ev[0], "count")), 6);
	assert_string_equal(str_at(ev[0], "firstTimestamp", NULL), first);
	assert_string_not_equal(str_at(ev[0], "lastTimestamp", NULL), first);
	assert_int_equal(store_count(&store, "PATCH", EVENTS), 2);
}

static void test_different_events_are_separate(void **state)
{
	json_t *ev[8];

	assert_int_equal(kube_record(rec, pod, "Normal", "Pulled", "image pulled"), 0);
	assert_int_equal(kube_record(rec, pod, "Normal", "Started", "image pulled"), 0);
	assert_int_equal(kube_record(rec, pod, "Normal", "Pulled", "image pulled again"), 0);
	assert_int_equal(kube_record(rec, pod, "Warning", "Pulled", "image pulled"), 0);
	assert_int_equal(kube_record(rec, pod, "Normal", "Pulled", "image pulled"), 0);
	flush();
	assert_int_equal(events_in(EVENTS, ev, 8), 4);
	assert_int_equal(store_count(&store, "POST", EVENTS), 4);
	assert_int_equal(store_count(&store, "PATCH", EVENTS), 1);
	/* Names are unique even when recorded within the same microsecond. */
	for (int i = 0; i < 4; i++)
		for (int j = i + 1; j < 4; j++)
			assert_string_not_equal(str_at(ev[i], "metadata", "name"),
						str_at(ev[j], "metadata", "name"));
}

static void test_cluster_scoped_object(void **state)
{
	json_t *node = json_pack("{s:s, s:s, s:{s:s}}", "apiVersion", "v1", "kind", "Node",
				 "metadata", "name", "vk-1");
	json_t *ev[2];

	assert_int_equal(kube_record(rec, node, "Normal", "Ready", "node is ready"), 0);
	flush();
	assert_int_equal(events_in("/api/v1/namespaces/default/events", ev, 2), 1);
	assert_null(json_object_get(json_object_get(ev[0], "involvedObject"), "namespace"));
	assert_string_equal(str_at(ev[0], "involvedObject", "name"), "vk-1");
	json_decref(node);
}

/* The Event expired server-side: the patch gets 404 and the Event is created again under
 * its name with the whole count. */
static void test_recreated_after_404(void **state)
{
	json_t *ev[2];
	char path[512];

	assert_int_equal(kube_record(rec, pod, "Normal", "Synced", "ok"), 0);
	flush();
	assert_int_equal(events_in(EVENTS, ev, 2), 1);
	snprintf(path, sizeof path, EVENTS "/%s", str_at(ev[0], "metadata", "name"));
	json_object_del(store.objects, path);
	assert_int_equal(kube_record(rec, pod, "Normal", "Synced", "ok"), 0);
	flush();
	assert_int_equal(events_in(EVENTS, ev, 2), 1);
	assert_non_null(store_get(&store, path));
	assert_int_equal(json_integer_value(json_object_get(ev[0], "count")), 2);
	assert_int_equal(store_count(&store, "POST", EVENTS), 2);
	assert_int_equal(kube_recorder_failures(rec), 0);
}

static void test_failures_are_counted(void **state)
{
	json_t *ev[2];

	store.fail_next = 1, store.fail_status = 500;
	assert_int_equal(kube_record(rec, pod, "Normal", "Synced", "ok"), 0);
	flush();
	assert_int_equal(kube_recorder_failures(rec), 1);
	assert_int_equal(events_in(EVENTS, ev, 2), 0);
	/* Forgotten, so the next occurrence creates it. */
	assert_int_equal(kube_record(rec, pod, "Normal", "Synced", "ok"), 0);
	flush();
	assert_int_equal(events_in(EVENTS, ev, 2), 1);
	assert_int_equal(json_integer_value(json_object_get(ev[0], "count")), 1);
	/* A failed patch keeps the count: the next one carries every occurrence. */
	store.fail_next = 1;
	assert_int_equal(kube_record(rec, pod, "Normal", "Synced", "ok"), 0);
	flush();
	assert_int_equal(kube_recorder_failures(rec), 2);
	assert_int_equal(kube_record(rec, pod, "Normal", "Synced", "ok"), 0);
	flush();
	assert_int_equal(events_in(EVENTS, ev, 2), 1);
	assert_int_equal(json_integer_value(json_object_get(ev[0], "count")), 3);
}

static void test_bad_arguments(void **state)
{
	json_t *nokind = json_pack("{s:{s:s}}", "metadata", "name", "x");
	json_t *noname = json_pack("{s:s, s:{}}", "kind", "Pod", "metadata");
	char reason[200];

	assert_int_equal(kube_record(rec, nokind, "Normal", "R", "m"), -EINVAL);
	assert_int_equal(kube_record(rec, noname, "Normal", "R", "m"), -EINVAL);
	assert_int_equal(kube_record(rec, NULL, "Normal", "R", "m"), -EINVAL);
	assert_int_equal(kube_record(rec, pod, "Info", "R", "m"), -EINVAL);
	assert_int_equal(kube_record(rec, pod, NULL, "R", "m"), -EINVAL);
	assert_int_equal(kube_record(rec, pod, "Normal", "", "m"), -EINVAL);
	memset(reason, 'R', sizeof reason - 1);
	reason[sizeof reason - 1] = 0;
	assert_int_equal(kube_record(rec, pod, "Normal", reason, "m"), -EINVAL);
	assert_int_equal(kube_recorder_failures(rec), 7);
	assert_int_equal(kube_recorder_new(client, "", NULL, &rec), -EINVAL);
	assert_int_equal(kube_recorder_new(NULL, "c", NULL, &rec), -EINVAL);
	json_decref(nokind);
	json_decref(noname);
}

static void test_long_name_and_message(void **state)
{
	char name[254], msg[3000];
	json_t *obj, *ev[2];
	const char *m, *n, *dot;

	memset(name, 'a', sizeof name - 1);
	name[sizeof name - 1] = 0;
	/* 253 - ".<16 hex digits>" leaves 236 bytes: a cut ending in '-' is no DNS name. */
	name[235] = '-';
	obj = json_pack("{s:s, s:{s:s, s:s}}", "kind", "Widget", "metadata", "name", name,
			"namespace", "ns");
	/* "é" is two bytes: 1023 of them leave the cut in the middle of one. */
	msg[0] = 'x';
	for (size_t i = 1; i + 2 < sizeof msg; i += 2)
		msg[i] = (char)0xc3, msg[i + 1] = (char)0xa9;
	msg[sizeof msg - 1] = 0;
	if (strlen(msg) % 2 == 0)
		msg[sizeof msg - 2] = 0;
	assert_int_equal(kube_record(rec, obj, "Normal", "Big", "%s", msg), 0);
	flush();
	assert_int_equal(events_in(EVENTS, ev, 2), 1);
	n = str_at(ev[0], "metadata", "name");
	dot = strrchr(n, '.');
	assert_true(strlen(n) <= 253);
	assert_non_null(dot);
	assert_int_equal(dot - n, 235);
	assert_int_equal(strspn(n, "a"), 235);
	m = str_at(ev[0], "message", NULL);
	assert_true(strlen(m) <= 1024 && strlen(m) >= 1020);
	assert_int_equal(strlen(m) % 2, 1); /* "x" + whole "é"s */
	assert_int_equal(strncmp(m, msg, strlen(m)), 0);
	json_decref(obj);
}

static void test_cache_cap(void **state)
{
	json_t *ev[8];

	kube_recorder_set_cache_max(rec, 2);
	/* Both entries busy (the apiserver holds the writes): a third event is refused. */
	store.hold = true;
	assert_int_equal(kube_record(rec, pod, "Normal", "A", "a"), 0);
	assert_int_equal(kube_record(rec, pod, "Normal", "B", "b"), 0);
	assert_int_equal(kube_record(rec, pod, "Normal", "C", "c"), -ENOBUFS);
	assert_int_equal(kube_recorder_failures(rec), 1);
	run_for(50);
	store_release_held(&store);
	flush();
	assert_int_equal(kube_recorder_failures(rec), 3); /* the held writes got 503 */

	/* Idle entries make room: the least recently used one is forgotten. */
	assert_int_equal(kube_record(rec, pod, "Normal", "A", "a"), 0);
	assert_int_equal(kube_record(rec, pod, "Normal", "B", "b"), 0);
	flush();
	assert_int_equal(kube_record(rec, pod, "Normal", "C", "c"), 0); /* forgets A */
	assert_int_equal(kube_record(rec, pod, "Normal", "B", "b"), 0); /* still cached */
	flush();
	assert_int_equal(events_in(EVENTS, ev, 8), 3);
	assert_int_equal(store_count(&store, "PATCH", EVENTS), 1);
	assert_int_equal(kube_record(rec, pod, "Normal", "A", "a"), 0); /* created anew */
	flush();
	assert_int_equal(events_in(EVENTS, ev, 8), 4);
}

static void test_flush(void **state)
{
	assert_int_equal(kube_recorder_flush(rec, on_flushed, NULL), 0);
	assert_int_equal(kube_recorder_flush(rec, on_flushed, NULL), -EBUSY);
	flushed = 0;
	run_for(20);
	assert_int_equal(flushed, 1); /* nothing in flight: from the loop, at once */
	assert_int_equal(kube_record(rec, pod, "Normal", "A", "a"), 0);
	flush();
	assert_int_equal(store_count(&store, "POST", EVENTS), 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_creates_event, setup, teardown),
		cmocka_unit_test_setup_teardown(test_repeats_are_counted, setup, teardown),
		cmocka_unit_test_setup_teardown(test_different_events_are_separate, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_cluster_scoped_object, setup, teardown),
		cmocka_unit_test_setup_teardown(test_recreated_after_404, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failures_are_counted, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_arguments, setup, teardown),
		cmocka_unit_test_setup_teardown(test_long_name_and_message, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cache_cap, setup, teardown),
		cmocka_unit_test_setup_teardown(test_flush, setup, teardown),
	};

	log_setup("TEST_LOG_LEVEL");
	return cmocka_run_group_tests(tests, NULL, NULL);
}
