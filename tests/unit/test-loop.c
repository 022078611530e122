/* loop: SIGTERM/SIGINT → drain callbacks → exit code, the drain timeout, a second signal,
 * loop_exit(), and the sd_notify messages (READY=1, STATUS=, STOPPING=1, WATCHDOG=1) read
 * from a NOTIFY_SOCKET of our own. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>

#include "cocoon/loop.h"

static char notify_dir[] = "/tmp/test-loop-XXXXXX";
static char notify_path[128];
static int notify_fd = -1;

static int setup(void **state)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	assert_non_null(mkdtemp(notify_dir));
	snprintf(notify_path, sizeof notify_path, "%s/notify", notify_dir);
	strcpy(sa.sun_path, notify_path);
	notify_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	assert_true(notify_fd >= 0);
	assert_int_equal(bind(notify_fd, (struct sockaddr *)&sa, sizeof sa), 0);
	setenv("NOTIFY_SOCKET", notify_path, 1);
	return 0;
}

static int teardown(void **state)
{
	close(notify_fd);
	unlink(notify_path);
	rmdir(notify_dir);
	memcpy(notify_dir + strlen(notify_dir) - 6, "XXXXXX", 6);
	unsetenv("NOTIFY_SOCKET");
	unsetenv("WATCHDOG_USEC");
	unsetenv("WATCHDOG_PID");
	return 0;
}

/* Every queued notify message, joined with '|'. Caller frees. */
static char *read_notify(void)
{
	char *all = NULL, msg[4096];
	size_t len = 0;
	FILE *f = open_memstream(&all, &len);
	ssize_t n;
	bool first = true;

	while ((n = recv(notify_fd, msg, sizeof msg - 1, 0)) >= 0) {
		msg[n] = 0;
		fprintf(f, "%s%s", first ? "" : "|", msg);
		first = false;
	}
	assert_int_equal(errno, EAGAIN);
	fclose(f);
	return all;
}

static uint64_t now_usec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static int on_send_signal(sd_event_source *s, uint64_t usec, void *userdata)
{
	kill(getpid(), (int)(intptr_t)userdata);
	return 0;
}

static void signal_after(struct loop *l, int sig, uint64_t usec)
{
	assert_true(sd_event_add_time_relative(loop_event(l), NULL, CLOCK_MONOTONIC, usec, 1000,
					       on_send_signal, (void *)(intptr_t)sig) >= 0);
}

static int on_hung(sd_event_source *s, uint64_t usec, void *userdata)
{
	return loop_exit(userdata, 99);
}

/* Every test that runs the loop: a broken shutdown path fails with 99 instead of hanging. */
static struct loop *new_loop(void)
{
	struct loop *l = NULL;

	assert_int_equal(loop_new(&l), 0);
	assert_true(sd_event_add_time_relative(loop_event(l), NULL, CLOCK_MONOTONIC, 5000000, 1000,
					       on_hung, l) >= 0);
	return l;
}

static void test_notify_ready_and_status(void **state)
{
	struct loop *l = NULL;
	char *got;

	assert_int_equal(loop_new(&l), 0);
	assert_true(loop_notify_ready(l, "serving %d pods", 3) > 0);
	assert_true(loop_notify_status(l, "resyncing\nnode %s", "n1") > 0);
	assert_true(loop_notify_ready(l, NULL) > 0);
	got = read_notify();
	/* a newline in the status must not start a new notify field */
	assert_string_equal(got, "READY=1\nSTATUS=serving 3 pods|STATUS=resyncing node n1|READY=1");
	free(got);
	loop_free(l);
}

static void test_notify_without_socket(void **state)
{
	struct loop *l = NULL;

	unsetenv("NOTIFY_SOCKET");
	assert_int_equal(loop_new(&l), 0);
	assert_int_equal(loop_notify_ready(l, "up"), 0);
	assert_int_equal(loop_notify_status(l, "still up"), 0);
	loop_free(l);
}

struct drains {
	struct loop *l;
	int a_calls, b_calls, never_calls;
	unsigned b_done;
	int add_while_draining;
	uint64_t b_done_at;
};

static void drain_sync(struct loop *l, void *userdata)
{
	struct drains *d = userdata;

	d->a_calls++;
	assert_true(loop_is_draining(l));
	d->add_while_draining = loop_add_drain(l, drain_sync, d);
	loop_drain_done(l);
}

static int on_b_finished(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct drains *d = userdata;

	d->b_done++;
	d->b_done_at = now_usec();
	loop_drain_done(d->l);
	return 0;
}

static void drain_async(struct loop *l, void *userdata)
{
	struct drains *d = userdata;

	/* the second one registered takes longer: the loop must wait for both */
	d->b_calls++;
	assert_true(sd_event_add_time_relative(loop_event(l), NULL, CLOCK_MONOTONIC,
					       30000 * (uint64_t)d->b_calls, 1000, on_b_finished,
					       d) >= 0);
}

static void drain_never(struct loop *l, void *userdata)
{
	struct drains *d = userdata;

	d->never_calls++;
}

static void test_sigterm_drains_then_exits(void **state)
{
	struct drains d = {};
	struct loop *l = NULL;
	uint64_t start;
	char *got;

	l = new_loop();
	d.l = l;
	assert_int_equal(loop_add_drain(l, drain_async, &d), 0);
	assert_int_equal(loop_add_drain(l, drain_sync, &d), 0);
	assert_int_equal(loop_add_drain(l, drain_async, &d), 0);
	assert_false(loop_is_draining(l));
	signal_after(l, SIGTERM, 10000);
	start = now_usec();
	assert_int_equal(loop_run(l), 0);
	assert_int_equal(d.a_calls, 1);
	assert_int_equal(d.b_calls, 2);
	assert_int_equal(d.b_done, 2);
	assert_int_equal(d.add_while_draining, -ESHUTDOWN);
	/* the loop waited for the slowest drain */
	assert_true(d.b_done_at - start >= 60000);
	assert_true(now_usec() - start < 2000000);
	got = read_notify();
	assert_string_equal(got, "STOPPING=1");
	free(got);
	loop_free(l);
}

static void test_no_drains_exits_at_once(void **state)
{
	struct loop *l = NULL;

	l = new_loop();
	signal_after(l, SIGINT, 1000);
	assert_int_equal(loop_run(l), 0);
	loop_free(l);
}

static void test_synchronous_drains_exit_at_once(void **state)
{
	struct drains d = {};
	struct loop *l = NULL;
	uint64_t start = now_usec();

	l = new_loop();
	assert_int_equal(loop_add_drain(l, drain_sync, &d), 0);
	assert_int_equal(loop_add_drain(l, drain_sync, &d), 0);
	signal_after(l, SIGTERM, 1000);
	assert_int_equal(loop_run(l), 0);
	assert_int_equal(d.a_calls, 2);
	assert_true(now_usec() - start < 1000000);
	loop_free(l);
}

static void test_drain_timeout(void **state)
{
	struct drains d = {};
	struct loop *l = NULL;
	uint64_t start, elapsed;

	l = new_loop();
	assert_int_equal(loop_add_drain(l, drain_never, &d), 0);
	loop_set_drain_timeout(l, 80000);
	signal_after(l, SIGTERM, 1000);
	start = now_usec();
	assert_int_equal(loop_run(l), EXIT_FAILURE);
	elapsed = now_usec() - start;
	assert_int_equal(d.never_calls, 1);
	assert_true(elapsed >= 80000);
	assert_true(elapsed < 2000000);
	loop_free(l);
}

static void test_second_signal_exits_at_once(void **state)
{
	struct drains d = {};
	struct loop *l = NULL;
	uint64_t start;

	l = new_loop();
	assert_int_equal(loop_add_drain(l, drain_never, &d), 0);
	signal_after(l, SIGTERM, 1000);
	signal_after(l, SIGINT, 30000);
	start = now_usec();
	/* the default drain timeout is 10 s: returning well before proves the second signal */
	assert_int_equal(loop_run(l), EXIT_FAILURE);
	assert_true(now_usec() - start < 2000000);
	assert_int_equal(d.never_calls, 1);
	loop_free(l);
}

static int on_exit_code(sd_event_source *s, uint64_t usec, void *userdata)
{
	return loop_exit(userdata, 3);
}

static void test_loop_exit_code(void **state)
{
	struct loop *l = NULL;

	l = new_loop();
	assert_true(sd_event_add_time_relative(loop_event(l), NULL, CLOCK_MONOTONIC, 1000, 1000,
					       on_exit_code, l) >= 0);
	assert_int_equal(loop_run(l), 3);
	loop_free(l);
}

struct rearm {
	struct loop *l;
	unsigned fired;
};

/* A periodic job as the daemons write one: the callback re-arms its own timer. */
static int on_rearm(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct rearm *t = userdata;

	if (++t->fired == 3)
		return loop_exit(t->l, 0);
	assert_int_equal(loop_timer_arm(s, 1000), 0);
	return 0;
}

/* The timer fires again after every re-arm from its own callback (a move alone would leave
 * it off after the first time), and a disabled one comes back on. */
static void test_timer_arm(void **state)
{
	struct rearm t = { .l = new_loop() };
	sd_event_source *s = NULL;

	assert_true(sd_event_add_time_relative(loop_event(t.l), &s, CLOCK_MONOTONIC, 1000, 1000,
					       on_rearm, &t) >= 0);
	assert_int_equal(sd_event_source_set_enabled(s, SD_EVENT_OFF), 0);
	assert_int_equal(loop_timer_arm(s, 1000), 0);
	/* Without the re-arms the loop would idle: this ends it with 3 instead. */
	assert_true(sd_event_add_time_relative(loop_event(t.l), NULL, CLOCK_MONOTONIC, 5000000,
					       1000, on_exit_code, t.l) >= 0);
	assert_int_equal(loop_run(t.l), 0);
	assert_int_equal(t.fired, 3);
	sd_event_source_unref(s);
	loop_free(t.l);
}

static void test_watchdog_pings(void **state)
{
	struct loop *l = NULL;
	char pid[32], *got;

	snprintf(pid, sizeof pid, "%d", (int)getpid());
	setenv("WATCHDOG_USEC", "100000", 1);
	setenv("WATCHDOG_PID", pid, 1);
	l = new_loop();
	assert_true(sd_event_add_time_relative(loop_event(l), NULL, CLOCK_MONOTONIC, 300000, 1000,
					       on_exit_code, l) >= 0);
	assert_int_equal(loop_run(l), 3);
	got = read_notify();
	assert_non_null(strstr(got, "WATCHDOG=1"));
	free(got);
	loop_free(l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_notify_ready_and_status, setup, teardown),
		cmocka_unit_test_setup_teardown(test_notify_without_socket, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sigterm_drains_then_exits, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_drains_exits_at_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_synchronous_drains_exit_at_once, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_drain_timeout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_second_signal_exits_at_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_loop_exit_code, setup, teardown),
		cmocka_unit_test_setup_teardown(test_watchdog_pings, setup, teardown),
		cmocka_unit_test_setup_teardown(test_timer_arm, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
