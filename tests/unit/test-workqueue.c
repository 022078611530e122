/* workqueue: dedup, per-key serialisation (dirty keys come back after done), the worker
 * limit, exponential backoff with its cap and forget, delayed adds in due order with the
 * earlier time winning, the key cap, bad keys, shutdown, and freeing the queue from inside
 * process(). Everything runs on a real sd_event loop with millisecond delays. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cocoon/workqueue.h"

#define MAX_CALLS 2048
#define MS        1000ULL

static sd_event *event;

struct rec {
	struct workqueue *q;
	bool auto_done;  /* call workqueue_done() from process() */
	bool free_queue; /* free the queue from process() */
	unsigned n;
	char keys[MAX_CALLS][16];
	uint64_t at[MAX_CALLS];
	size_t active_seen[MAX_CALLS];
};

static uint64_t now_usec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static void on_process(struct workqueue *q, const char *key, void *userdata)
{
	struct rec *r = userdata;

	assert_ptr_equal(q, r->q);
	assert_true(r->n < MAX_CALLS);
	snprintf(r->keys[r->n], sizeof r->keys[r->n], "%s", key);
	r->at[r->n] = now_usec();
	r->active_seen[r->n] = workqueue_active(q);
	r->n++;
	if (r->free_queue) {
		workqueue_free(q);
		r->q = NULL;
	} else if (r->auto_done)
		workqueue_done(q, key);
}

/* Runs the loop for ms milliseconds of wall time. */
static void run_for(unsigned ms)
{
	uint64_t end = now_usec() + ms * MS;

	while (now_usec() < end)
		assert_true(sd_event_run(event, end - now_usec()) >= 0);
}

/* Runs the loop until r has seen n calls (or fails after 2 s). */
static void run_until_calls(struct rec *r, unsigned n)
{
	uint64_t end = now_usec() + 2000 * MS;

	while (r->n < n) {
		assert_true(now_usec() < end);
		assert_true(sd_event_run(event, 10 * MS) >= 0);
	}
}

static struct workqueue *new_queue(struct rec *r, const struct workqueue_options *o)
{
	memset(r, 0, sizeof *r);
	assert_int_equal(workqueue_new(event, o, on_process, r, &r->q), 0);
	return r->q;
}

static int setup(void **state)
{
	assert_true(sd_event_new(&event) >= 0);
	return 0;
}

static int teardown(void **state)
{
	event = sd_event_unref(event);
	return 0;
}

static void test_dedup_and_fifo(void **state)
{
	struct rec r;
	struct workqueue *q = new_queue(&r, NULL);

	r.auto_done = true;
	assert_int_equal(workqueue_add(q, "a"), 0);
	assert_int_equal(workqueue_add(q, "b"), 0);
	assert_int_equal(workqueue_add(q, "a"), 0);
	assert_int_equal(workqueue_add(q, "c"), 0);
	assert_int_equal(workqueue_add(q, "b"), 0);
	assert_int_equal(workqueue_len(q), 3);
	assert_int_equal(r.n, 0); /* handed out from the loop, never from inside add */
	run_for(20);
	assert_int_equal(r.n, 3);
	assert_string_equal(r.keys[0], "a");
	assert_string_equal(r.keys[1], "b");
	assert_string_equal(r.keys[2], "c");
	assert_int_equal(workqueue_len(q), 0);
	assert_int_equal(workqueue_active(q), 0);
	workqueue_free(q);
}

static void test_in_progress_key_is_not_handed_out_twice(void **state)
{
	struct workqueue_options o = { .workers = 4 };
	struct rec r;
	struct workqueue *q = new_queue(&r, &o);

	assert_int_equal(workqueue_add(q, "a"), 0);
	run_until_calls(&r, 1);
	assert_int_equal(workqueue_active(q), 1);
	/* Added twice while in progress: marked dirty, not queued, not given to a 2nd worker. */
	assert_int_equal(workqueue_add(q, "a"), 0);
	assert_int_equal(workqueue_add(q, "a"), 0);
	assert_int_equal(workqueue_add(q, "b"), 0);
	run_for(20);
	assert_int_equal(r.n, 2);
	assert_string_equal(r.keys[1], "b");
	assert_int_equal(workqueue_len(q), 0);
	assert_int_equal(workqueue_active(q), 2);
	/* Done: the dirty key comes back exactly once. */
	workqueue_done(q, "a");
	assert_int_equal(workqueue_len(q), 1);
	run_for(20);
	assert_int_equal(r.n, 3);
	assert_string_equal(r.keys[2], "a");
	workqueue_done(q, "a");
	workqueue_done(q, "b");
	run_for(20);
	assert_int_equal(r.n, 3);
	assert_int_equal(workqueue_active(q), 0);
	/* done for a key not in progress is ignored. */
	workqueue_done(q, "a");
	workqueue_done(q, "never");
	assert_int_equal(workqueue_active(q), 0);
	workqueue_free(q);
}

static void test_worker_limit(void **state)
{
	struct workqueue_options o = { .workers = 2 };
	struct rec r;
	struct workqueue *q = new_queue(&r, &o);
	char key[16];

	for (int i = 0; i < 5; i++) {
		snprintf(key, sizeof key, "k%d", i);
		assert_int_equal(workqueue_add(q, key), 0);
	}
	run_for(20);
	assert_int_equal(r.n, 2);
	assert_int_equal(workqueue_active(q), 2);
	assert_int_equal(workqueue_len(q), 3);
	workqueue_done(q, "k1");
	run_for(20);
	assert_int_equal(r.n, 3);
	assert_string_equal(r.keys[2], "k2");
	for (unsigned i = 0; i < r.n; i++)
		assert_true(r.active_seen[i] <= 2);
	workqueue_done(q, "k0");
	workqueue_done(q, "k2");
	run_for(20);
	assert_int_equal(r.n, 5);
	assert_int_equal(workqueue_len(q), 0);
	workqueue_free(q);
}

static void test_backoff(void **state)
{
	struct workqueue_options o = { .base_delay_usec = 2 * MS, .max_delay_usec = 10 * MS };
	struct rec r;
	struct workqueue *q = new_queue(&r, &o);
	const int64_t expect[] = { 2 * MS, 4 * MS, 8 * MS, 10 * MS, 10 * MS };
	uint64_t t0;

	r.auto_done = true;
	for (unsigned i = 0; i < ELEMENTSOF(expect); i++) {
		assert_int_equal(workqueue_failures(q, "a"), i);
		t0 = now_usec();
		assert_int_equal(workqueue_retry(q, "a"), expect[i]);
		assert_int_equal(workqueue_len(q), 0); /* waiting, not queued */
		run_until_calls(&r, i + 1);
		assert_true(r.at[i] - t0 >= (uint64_t)expect[i]);
		assert_true(r.at[i] - t0 < (uint64_t)expect[i] + 200 * MS);
	}
	assert_int_equal(workqueue_failures(q, "a"), 5);
	/* The count is per key. */
	assert_int_equal(workqueue_failures(q, "b"), 0);
	assert_int_equal(workqueue_retry(q, "b"), 2 * MS);
	workqueue_forget(q, "a");
	assert_int_equal(workqueue_failures(q, "a"), 0);
	assert_int_equal(workqueue_retry(q, "a"), 2 * MS);
	workqueue_free(q);
}

static void test_backoff_defaults_and_overflow(void **state)
{
	struct rec r;
	struct workqueue *q = new_queue(&r, NULL);

	assert_int_equal(workqueue_retry(q, "a"), 5 * MS);
	assert_int_equal(workqueue_retry(q, "a"), 10 * MS);
	for (int i = 0; i < 100; i++)
		assert_true(workqueue_retry(q, "a") <= (int64_t)(1000ULL * 1000 * MS));
	assert_int_equal(workqueue_retry(q, "a"), 1000ULL * 1000 * MS);
	assert_int_equal(workqueue_failures(q, "a"), 103);
	workqueue_free(q);
}

static void test_add_after_orders_by_due_time(void **state)
{
	struct rec r;
	struct workqueue *q = new_queue(&r, NULL);
	uint64_t t0 = now_usec();

	r.auto_done = true;
	assert_int_equal(workqueue_add_after(q, "late", 30 * MS), 0);
	assert_int_equal(workqueue_add_after(q, "early", 10 * MS), 0);
	assert_int_equal(workqueue_add_after(q, "mid", 20 * MS), 0);
	assert_int_equal(workqueue_add_after(q, "now", 0), 0);
	assert_int_equal(workqueue_len(q), 1);
	run_until_calls(&r, 4);
	assert_string_equal(r.keys[0], "now");
	assert_string_equal(r.keys[1], "early");
	assert_string_equal(r.keys[2], "mid");
	assert_string_equal(r.keys[3], "late");
	assert_true(r.at[1] - t0 >= 10 * MS);
	assert_true(r.at[2] - t0 >= 20 * MS);
	assert_true(r.at[3] - t0 >= 30 * MS);
	workqueue_free(q);
}

static void test_add_after_earlier_time_wins(void **state)
{
	struct rec r;
	struct workqueue *q = new_queue(&r, NULL);
	uint64_t t0 = now_usec();

	r.auto_done = true;
	/* Later request for a waiting key: keeps the earlier time, fires once. */
	assert_int_equal(workqueue_add_after(q, "a", 10 * MS), 0);
	assert_int_equal(workqueue_add_after(q, "a", 60 * MS), 0);
	/* Earlier request: moves it forward. */
	assert_int_equal(workqueue_add_after(q, "b", 60 * MS), 0);
	assert_int_equal(workqueue_add_after(q, "b", 15 * MS), 0);
	run_for(100);
	assert_int_equal(r.n, 2);
	assert_string_equal(r.keys[0], "a");
	assert_string_equal(r.keys[1], "b");
	assert_true(r.at[0] - t0 < 50 * MS);
	assert_true(r.at[1] - t0 >= 15 * MS && r.at[1] - t0 < 50 * MS);
	workqueue_free(q);
}

/* A delay that fires while the key is in progress marks it dirty like add(). */
static void test_delayed_key_in_progress_becomes_dirty(void **state)
{
	struct rec r;
	struct workqueue *q = new_queue(&r, NULL);

	assert_int_equal(workqueue_add(q, "a"), 0);
	run_until_calls(&r, 1);
	assert_int_equal(workqueue_add_after(q, "a", 5 * MS), 0);
	run_for(30);
	assert_int_equal(r.n, 1);
	assert_int_equal(workqueue_len(q), 0);
	workqueue_done(q, "a");
	run_until_calls(&r, 2);
	assert_string_equal(r.keys[1], "a");
	workqueue_done(q, "a");
	workqueue_free(q);
}

/* Many delayed keys with scattered due times come out in due order (each due time is
 * bracketed by the clock before and after its add, as adds are slow under valgrind). */
static void test_many_delays_in_order(void **state)
{
	struct workqueue_options o = { .workers = 1 };
	struct rec r;
	struct workqueue *q = new_queue(&r, &o);
	uint64_t due_lo[300], due_hi[300], delay;
	char key[16];

	r.auto_done = true;
	srand(7);
	for (unsigned i = 0; i < ELEMENTSOF(due_lo); i++) {
		delay = (1 + (unsigned)rand() % 60) * MS;
		snprintf(key, sizeof key, "k%u", i);
		due_lo[i] = now_usec() + delay;
		assert_int_equal(workqueue_add_after(q, key, delay), 0);
		due_hi[i] = now_usec() + delay;
	}
	run_until_calls(&r, ELEMENTSOF(due_lo));
	for (unsigned i = 0; i < r.n; i++) {
		unsigned b = (unsigned)atoi(r.keys[i] + 1);

		assert_true(r.at[i] >= due_lo[b]);
		if (i > 0)
			assert_true(due_lo[atoi(r.keys[i - 1] + 1)] <= due_hi[b]);
	}
	workqueue_free(q);
}

static void test_key_cap(void **state)
{
	struct workqueue_options o = { .max_keys = 3 };
	struct rec r;
	struct workqueue *q = new_queue(&r, &o);

	assert_int_equal(workqueue_add(q, "a"), 0);
	assert_int_equal(workqueue_add(q, "b"), 0);
	assert_int_equal(workqueue_add_after(q, "c", 1000 * MS), 0);
	assert_int_equal(workqueue_add(q, "d"), -ENOBUFS);
	assert_int_equal(workqueue_add_after(q, "d", MS), -ENOBUFS);
	assert_int_equal(workqueue_retry(q, "d"), -ENOBUFS);
	assert_int_equal(workqueue_add(q, "a"), 0); /* known keys are still accepted */
	assert_int_equal(workqueue_failures(q, "d"), 0);
	/* Once a key is processed and done it no longer counts. */
	r.auto_done = true;
	run_for(20);
	assert_int_equal(r.n, 2);
	assert_int_equal(workqueue_add(q, "d"), 0);
	workqueue_free(q);
}

static void test_bad_keys(void **state)
{
	struct rec r;
	struct workqueue *q = new_queue(&r, NULL);
	char *longkey = malloc(WORKQUEUE_KEY_MAX + 2);

	assert_non_null(longkey);
	memset(longkey, 'x', WORKQUEUE_KEY_MAX + 1);
	longkey[WORKQUEUE_KEY_MAX + 1] = 0;
	assert_int_equal(workqueue_add(q, ""), -EINVAL);
	assert_int_equal(workqueue_add(q, NULL), -EINVAL);
	assert_int_equal(workqueue_add(q, longkey), -ENAMETOOLONG);
	assert_int_equal(workqueue_retry(q, longkey), -ENAMETOOLONG);
	longkey[WORKQUEUE_KEY_MAX] = 0;
	assert_int_equal(workqueue_add(q, longkey), 0);
	assert_int_equal(workqueue_len(q), 1);
	assert_int_equal(workqueue_new(NULL, NULL, on_process, NULL, &q), -EINVAL);
	free(longkey);
	workqueue_free(r.q);
	workqueue_free(NULL);
}

static void test_shutdown(void **state)
{
	struct rec r;
	struct workqueue *q = new_queue(&r, NULL);

	assert_int_equal(workqueue_add(q, "a"), 0);
	assert_int_equal(workqueue_add(q, "b"), 0);
	assert_int_equal(workqueue_add_after(q, "c", 5 * MS), 0);
	run_until_calls(&r, 1);
	workqueue_shutdown(q);
	assert_int_equal(workqueue_add(q, "x"), -ESHUTDOWN);
	assert_int_equal(workqueue_add_after(q, "x", MS), -ESHUTDOWN);
	assert_int_equal(workqueue_retry(q, "a"), -ESHUTDOWN);
	/* The worker in progress finishes; nothing else is handed out, delayed keys too. */
	workqueue_done(q, "a");
	run_for(30);
	assert_int_equal(r.n, 1);
	assert_int_equal(workqueue_active(q), 0);
	assert_int_equal(workqueue_len(q), 1);
	workqueue_free(q);
}

static void test_free_from_process(void **state)
{
	struct rec r;
	struct workqueue *q = new_queue(&r, NULL);

	r.free_queue = true;
	assert_int_equal(workqueue_add(q, "a"), 0);
	assert_int_equal(workqueue_add(q, "b"), 0);
	assert_int_equal(workqueue_add_after(q, "c", MS), 0);
	run_for(20);
	assert_int_equal(r.n, 1);
	assert_null(r.q);
}

/* Enough keys to grow the hash table several times; all come back exactly once. */
static void test_many_keys(void **state)
{
	struct workqueue_options o = { .workers = 8, .max_keys = 5000 };
	struct rec r;
	struct workqueue *q = new_queue(&r, &o);
	char key[16];

	for (int pass = 0; pass < 2; pass++)
		for (int i = 0; i < 1500; i++) {
			snprintf(key, sizeof key, "ns/%d", i);
			assert_int_equal(workqueue_add(q, key), 0);
		}
	assert_int_equal(workqueue_len(q), 1500);
	r.auto_done = true;
	run_until_calls(&r, 1500);
	run_for(10);
	assert_int_equal(r.n, 1500);
	assert_int_equal(workqueue_len(q), 0);
	workqueue_free(q);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_dedup_and_fifo, setup, teardown),
		cmocka_unit_test_setup_teardown(test_in_progress_key_is_not_handed_out_twice, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_worker_limit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_backoff, setup, teardown),
		cmocka_unit_test_setup_teardown(test_backoff_defaults_and_overflow, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_add_after_orders_by_due_time, setup, teardown),
		cmocka_unit_test_setup_teardown(test_add_after_earlier_time_wins, setup, teardown),
		cmocka_unit_test_setup_teardown(test_delayed_key_in_progress_becomes_dirty, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_many_delays_in_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_key_cap, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_keys, setup, teardown),
		cmocka_unit_test_setup_teardown(test_shutdown, setup, teardown),
		cmocka_unit_test_setup_teardown(test_free_from_process, setup, teardown),
		cmocka_unit_test_setup_teardown(test_many_keys, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
