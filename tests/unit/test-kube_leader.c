/* kube_leader against an in-process object store (fake-store.h) on a real sd-event loop:
 * creating the Lease, renewing it (acquireTime kept, renewTime moving, MicroTime format),
 * a standby that waits while the holder renews and takes over only after the lease
 * duration when the holder dies (leaseTransitions + 1), release handing over at once,
 * losing leadership at the renew deadline when the apiserver fails or hangs and winning it
 * back, a foreign write (409 on the leader's renewal, then the new holder seen), expiry
 * that needs both the local observation and renewTime, and option checks. Leases last 1 s
 * (the API counts whole seconds), retries every 100 ms. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "cocoon/kube.h"
#include "cocoon/log.h"
#include "fake-store.h"

#define MS         1000ULL
#define LEASES     "/apis/coordination.k8s.io/v1/namespaces/ns/leases"
#define LEASE_PATH LEASES "/lock"

static sd_event *event;
static struct store store;
static struct kube_client *client;

struct cand {
	struct kube_leader *l;
	const char *id;
	unsigned started, stopped, released;
	char leaders[16][32];
	unsigned n_leaders;
	uint64_t started_at, stopped_at;
	bool leading_in_stop; /* is_leader() as seen from on_stopped_leading */
};

static void on_started(struct kube_leader *l, void *u)
{
	struct cand *c = u;

	c->started++;
	c->started_at = store_now();
	assert_true(kube_leader_is_leader(l));
}

static void on_stopped(struct kube_leader *l, void *u)
{
	struct cand *c = u;

	c->stopped++;
	c->stopped_at = store_now();
	c->leading_in_stop = kube_leader_is_leader(l);
}

static void on_new_leader(struct kube_leader *l, const char *id, void *u)
{
	struct cand *c = u;

	assert_true(c->n_leaders < 16);
	snprintf(c->leaders[c->n_leaders++], sizeof c->leaders[0], "%s", id);
}

static void on_released(struct kube_leader *l, void *u)
{
	struct cand *c = u;

	c->released++;
	assert_false(kube_leader_is_leader(l));
}

static void cand_start(struct cand *c, const char *id)
{
	struct kube_leader_options o = {
		.namespace = "ns",
		.name = "lock",
		.identity = id,
		.lease_duration_usec = 1000 * MS,
		.renew_deadline_usec = 600 * MS,
		.retry_period_usec = 100 * MS,
		.on_started_leading = on_started,
		.on_stopped_leading = on_stopped,
		.on_new_leader = on_new_leader,
	};

	memset(c, 0, sizeof *c);
	c->id = id;
	assert_int_equal(kube_leader_new(client, &o, c, &c->l), 0);
}

static void run_for(unsigned ms)
{
	uint64_t end = store_now() + ms * MS;

	while (store_now() < end)
		assert_true(sd_event_run(event, end - store_now()) >= 0);
}

/* Runs until *flag is non-zero; fails after max_ms. Returns the elapsed time. */
static uint64_t run_until(const unsigned *flag, unsigned max_ms)
{
	uint64_t start = store_now(), end = start + max_ms * MS;

	while (!*flag) {
		if (store_now() >= end)
			fail_msg("condition not met within %u ms", max_ms);
		assert_true(sd_event_run(event, 10 * MS) >= 0);
	}
	return store_now() - start;
}

static const char *spec_str(const char *key)
{
	return json_string_value(
	    json_object_get(json_object_get(store_get(&store, LEASE_PATH), "spec"), key));
}

static json_int_t spec_int(const char *key)
{
	return json_integer_value(
	    json_object_get(json_object_get(store_get(&store, LEASE_PATH), "spec"), key));
}

static int setup(void **state)
{
	assert_true(sd_event_new(&event) >= 0);
	store_start(&store, event);
	client = store_client(&store);
	return 0;
}

static int teardown(void **state)
{
	kube_client_free(client);
	store_stop(&store);
	event = sd_event_unref(event);
	return 0;
}

static void assert_micro_time(const char *s)
{
	uint64_t t;

	assert_non_null(s);
	assert_int_equal(strlen(s), 27); /* 2006-01-02T15:04:05.000000Z */
	assert_int_equal(s[19], '.');
	assert_int_equal(kube_time_parse(s, &t), 0);
	assert_true(t <= kube_time_now() && t + 5000 * MS > kube_time_now());
}

static void test_creates_and_renews(void **state)
{
	struct cand a;
	char acquired[64], renewed[64];

	cand_start(&a, "a");
	assert_false(kube_leader_is_leader(a.l));
	run_until(&a.started, 1000);
	assert_true(kube_leader_is_leader(a.l));
	assert_int_equal(store_count(&store, "POST", LEASES), 1);
	assert_string_equal(spec_str("holderIdentity"), "a");
	assert_int_equal(spec_int("leaseDurationSeconds"), 1);
	assert_int_equal(spec_int("leaseTransitions"), 0);
	assert_micro_time(spec_str("acquireTime"));
	assert_micro_time(spec_str("renewTime"));
	assert_int_equal(a.n_leaders, 1);
	assert_string_equal(a.leaders[0], "a");
	snprintf(acquired, sizeof acquired, "%s", spec_str("acquireTime"));
	snprintf(renewed, sizeof renewed, "%s", spec_str("renewTime"));

	run_for(450);
	/* Renewed about every 100 ms by update, acquireTime and transitions kept. */
	assert_true(store_count(&store, "PUT", LEASE_PATH) >= 3);
	/* The leader renews its own last write without reading it first (one GET, at start). */
	assert_int_equal(store_count(&store, "GET", LEASE_PATH), 1);
	assert_string_equal(spec_str("acquireTime"), acquired);
	assert_string_not_equal(spec_str("renewTime"), renewed);
	assert_int_equal(spec_int("leaseTransitions"), 0);
	assert_int_equal(a.started, 1);
	assert_int_equal(a.stopped, 0);
	assert_int_equal(a.n_leaders, 1);
	kube_leader_free(a.l);
}

static void test_standby_takes_over_after_lease_duration(void **state)
{
	struct cand a, b;
	uint64_t t;

	cand_start(&a, "a");
	run_until(&a.started, 1000);
	cand_start(&b, "b");
	run_for(1200); /* longer than the lease: a keeps renewing, so b must wait */
	assert_int_equal(b.started, 0);
	assert_int_equal(b.n_leaders, 1);
	assert_string_equal(b.leaders[0], "a");

	/* a dies without releasing: b takes over one lease duration after a's last renewal. */
	kube_leader_free(a.l);
	t = run_until(&b.started, 3000);
	assert_true(t >= 900 * MS);
	assert_true(t < 1000 * MS + 2 * 120 * MS + 300 * MS);
	assert_string_equal(spec_str("holderIdentity"), "b");
	assert_int_equal(spec_int("leaseTransitions"), 1);
	assert_int_equal(b.n_leaders, 2);
	assert_string_equal(b.leaders[1], "b");
	kube_leader_free(b.l);
}

static void test_release_hands_over_at_once(void **state)
{
	struct cand a, b;
	uint64_t t;

	cand_start(&a, "a");
	run_until(&a.started, 1000);
	cand_start(&b, "b");
	run_for(300);
	assert_int_equal(kube_leader_release(a.l, on_released, &a), 0);
	/* The daemon is told to stop before the Lease is given up. */
	assert_int_equal(a.stopped, 1);
	assert_false(a.leading_in_stop);
	assert_false(kube_leader_is_leader(a.l));
	assert_int_equal(kube_leader_release(a.l, on_released, &a), -EALREADY);
	run_until(&a.released, 1000);
	assert_string_equal(spec_str("holderIdentity"), "");
	assert_int_equal(spec_int("leaseDurationSeconds"), 1);
	t = run_until(&b.started, 1000);
	assert_true(t < 2 * 120 * MS + 50 * MS);
	assert_int_equal(spec_int("leaseTransitions"), 1);
	assert_int_equal(a.started, 1);
	/* The released candidate is inert. */
	run_for(300);
	assert_int_equal(a.started, 1);
	assert_true(kube_leader_is_leader(b.l));
	kube_leader_free(a.l);
	kube_leader_free(b.l);
}

/* A renew still in flight when the release starts is cancelled on our side only: the
 * server may apply it, so the release's resourceVersion is stale. The release must re-read
 * and give the Lease up anyway, or the standby waits a whole lease duration. */
static void test_release_after_unheard_renew(void **state)
{
	struct cand a;

	cand_start(&a, "a");
	run_until(&a.started, 1000);
	/* our renew landed at the server but we never heard: same holder, newer version */
	store_put(&store, LEASE_PATH, json_deep_copy(store_get(&store, LEASE_PATH)));
	assert_string_equal(spec_str("holderIdentity"), "a");
	assert_int_equal(kube_leader_release(a.l, on_released, &a), 0);
	run_until(&a.released, 1000);
	assert_string_equal(spec_str("holderIdentity"), "");
	assert_int_equal(spec_int("leaseDurationSeconds"), 1);
	kube_leader_free(a.l);
}

static void test_release_when_not_leading(void **state)
{
	struct cand a;

	store.hold = true; /* never gets to lead */
	cand_start(&a, "a");
	run_for(50);
	assert_int_equal(kube_leader_release(a.l, on_released, &a), 0);
	assert_int_equal(a.released, 0); /* called back from the loop, not from inside */
	run_until(&a.released, 500);
	assert_int_equal(a.stopped, 0);
	assert_int_equal(store_count(&store, "PUT", LEASE_PATH), 0);
	kube_leader_free(a.l);
}

static void lose_and_win_back(bool hang)
{
	struct cand a;
	uint64_t last_ok;

	cand_start(&a, "a");
	run_until(&a.started, 1000);
	run_for(200);
	last_ok = store_now();
	if (hang)
		store.hold = true;
	else
		store.fail_next = 1000, store.fail_status = 500;
	run_until(&a.stopped, 2000);
	/* Stopped after the renew deadline (600 ms from the last success, which was up to one
	 * retry period before last_ok), before the lease could expire for anyone. */
	assert_true(a.stopped_at - last_ok >= 450 * MS);
	assert_true(a.stopped_at - last_ok < 1000 * MS);
	assert_false(kube_leader_is_leader(a.l));
	/* The apiserver recovers: the Lease still names us, so we lead again at once. */
	if (hang)
		store_release_held(&store);
	else
		store.fail_next = 0;
	a.started = 0;
	run_until(&a.started, 1000);
	assert_int_equal(spec_int("leaseTransitions"), 0);
	assert_int_equal(a.stopped, 1);
	kube_leader_free(a.l);
}

static void test_renew_deadline_on_errors(void **state)
{
	lose_and_win_back(false);
}

static void test_renew_deadline_on_hung_apiserver(void **state)
{
	lose_and_win_back(true);
}

static void test_foreign_write_conflicts(void **state)
{
	struct cand a;
	json_t *lease;
	char now[KUBE_TIME_MAX];

	cand_start(&a, "a");
	run_until(&a.started, 1000);
	/* Somebody else writes the Lease: a's next renewal carries a stale resourceVersion. */
	lease = json_deep_copy(store_get(&store, LEASE_PATH));
	json_object_set_new(json_object_get(lease, "spec"), "holderIdentity", json_string("x"));
	json_object_set_new(json_object_get(lease, "spec"), "renewTime",
			    json_string(kube_time_format(kube_time_now(), true, now)));
	store_put(&store, LEASE_PATH, lease);
	run_until(&a.stopped, 1000);
	assert_false(kube_leader_is_leader(a.l));
	assert_string_equal(a.leaders[a.n_leaders - 1], "x");
	kube_leader_free(a.l);
}

/* An abandoned Lease: renewTime long ago, but we have only just seen it, so we wait one
 * lease duration of our own observation (clock skew safety) and then take it over. */
static void test_expired_lease_taken_over(void **state)
{
	struct cand a;
	char old[KUBE_TIME_MAX];
	uint64_t t;

	store_put(&store, LEASE_PATH,
		  json_pack("{s:s, s:s, s:{s:s, s:s}, s:{s:s, s:i, s:s, s:s, s:i}}", "apiVersion",
			    "coordination.k8s.io/v1", "kind", "Lease", "metadata", "name", "lock",
			    "namespace", "ns", "spec", "holderIdentity", "old",
			    "leaseDurationSeconds", 1, "renewTime",
			    kube_time_format(kube_time_now() - 3600 * 1000 * MS, true, old),
			    "acquireTime", old, "leaseTransitions", 4));
	cand_start(&a, "a");
	t = run_until(&a.started, 3000);
	assert_true(t >= 1000 * MS);
	assert_string_equal(spec_str("holderIdentity"), "a");
	assert_int_equal(spec_int("leaseTransitions"), 5);
	assert_string_not_equal(spec_str("acquireTime"), old);
	assert_string_equal(a.leaders[0], "old");
	kube_leader_free(a.l);
}

/* A renewTime ahead of our clock (a skewed holder) keeps the Lease valid past our own
 * observation window: both rules must agree before we take over. */
static void test_expiry_needs_renew_time_too(void **state)
{
	struct cand a;
	char ahead[KUBE_TIME_MAX];
	uint64_t t;

	store_put(&store, LEASE_PATH,
		  json_pack("{s:{s:s, s:s}, s:{s:s, s:i, s:s}}", "metadata", "name", "lock",
			    "namespace", "ns", "spec", "holderIdentity", "skewed",
			    "leaseDurationSeconds", 1, "renewTime",
			    kube_time_format(kube_time_now() + 500 * MS, true, ahead)));
	cand_start(&a, "a");
	t = run_until(&a.started, 4000);
	assert_true(t >= 1450 * MS);
	assert_int_equal(spec_int("leaseTransitions"), 1);
	kube_leader_free(a.l);
}

/* A Lease with a garbage renewTime is judged by observation alone, never crashes us. */
static void test_garbage_lease_fields(void **state)
{
	struct cand a;

	store_put(&store, LEASE_PATH,
		  json_pack("{s:{s:s}, s:{s:s, s:s, s:s, s:s}}", "metadata", "name", "lock", "spec",
			    "holderIdentity", "junk", "leaseDurationSeconds", "soon", "renewTime",
			    "yesterday", "leaseTransitions", "many"));
	cand_start(&a, "a");
	run_for(500);
	assert_int_equal(a.started, 0); /* our own duration (1 s) applies */
	run_until(&a.started, 2000);
	assert_int_equal(spec_int("leaseTransitions"), 1);
	kube_leader_free(a.l);
}

static void test_options(void **state)
{
	struct kube_leader_options o = { .namespace = "ns", .name = "lock", .identity = "a" };
	struct kube_leader *l = NULL;

	assert_int_equal(kube_leader_new(client, &o, NULL, &l), 0); /* 15 s / 10 s / 2 s */
	kube_leader_free(l);
	o.identity = "";
	assert_int_equal(kube_leader_new(client, &o, NULL, &l), -EINVAL);
	o.identity = "a";
	o.lease_duration_usec = 10 * 1000 * MS;
	assert_int_equal(kube_leader_new(client, &o, NULL, &l), -EINVAL); /* lease <= deadline */
	o.lease_duration_usec = 0;
	o.renew_deadline_usec = 2400 * MS;
	/* deadline <= 1.2 retry periods */
	assert_int_equal(kube_leader_new(client, &o, NULL, &l), -EINVAL);
	o.renew_deadline_usec = 2500 * MS;
	assert_int_equal(kube_leader_new(client, &o, NULL, &l), 0);
	kube_leader_free(l);
	assert_int_equal(kube_leader_new(client, NULL, NULL, &l), -EINVAL);
	kube_leader_free(NULL);
	assert_false(kube_leader_is_leader(NULL));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_creates_and_renews, setup, teardown),
		cmocka_unit_test_setup_teardown(test_standby_takes_over_after_lease_duration, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_release_hands_over_at_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_release_after_unheard_renew, setup, teardown),
		cmocka_unit_test_setup_teardown(test_release_when_not_leading, setup, teardown),
		cmocka_unit_test_setup_teardown(test_renew_deadline_on_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_renew_deadline_on_hung_apiserver, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_foreign_write_conflicts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_expired_lease_taken_over, setup, teardown),
		cmocka_unit_test_setup_teardown(test_expiry_needs_renew_time_too, setup, teardown),
		cmocka_unit_test_setup_teardown(test_garbage_lease_fields, setup, teardown),
		cmocka_unit_test_setup_teardown(test_options, setup, teardown),
	};

	log_setup("TEST_LOG_LEVEL");
	return cmocka_run_group_tests(tests, NULL, NULL);
}
