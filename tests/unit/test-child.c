/* child: exit codes, captured stdout/stderr, stdin feeding, the output cap, streaming with
 * pause/resume and abort, pipe capacity, timeouts with SIGKILL escalation, exec errors,
 * env/cwd, the clean signal state and fd table of the child, 20 children at once, and no
 * zombies left. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include "cocoon/child.h"

#define ARGV(...) ((const char *const[]){ __VA_ARGS__, NULL })

static uint64_t now_usec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/* Runs e until *flag or 10 s passed (then the test fails). */
static void run_until(sd_event *e, const bool *flag)
{
	uint64_t deadline = now_usec() + 10000000;

	while (!*flag) {
		assert_true(now_usec() < deadline);
		assert_true(sd_event_run(e, 100000) >= 0);
	}
}

static void assert_no_children(void)
{
	assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
	assert_int_equal(errno, ECHILD);
}

static void test_exit_code_and_output(void **state)
{
	struct child_result r;

	assert_int_equal(
	    child_run_sync(ARGV("sh", "-c", "echo out; echo err >&2; exit 7"), NULL, &r), 0);
	assert_int_equal(r.exit_code, 7);
	assert_int_equal(r.signal, 0);
	assert_false(r.timed_out);
	assert_int_equal(r.error, 0);
	assert_string_equal(r.out.data, "out\n");
	assert_string_equal(r.err.data, "err\n");
	assert_false(r.stdout_truncated);
	child_result_clear(&r);

	/* nothing written: still NUL-terminated strings */
	assert_int_equal(child_run_sync(ARGV("true"), NULL, &r), 0);
	assert_int_equal(r.exit_code, 0);
	assert_int_equal(r.out.len, 0);
	child_result_clear(&r);
	assert_no_children();
}

static void test_stdin_fed(void **state)
{
	size_t len = 300 * 1024; /* several pipe buffers: needs non-blocking writes */
	char *in = malloc(len);
	struct child_options o = {};
	struct child_result r;

	for (size_t i = 0; i < len; i++)
		in[i] = (char)('a' + i % 26);
	o.stdin_data = in;
	o.stdin_len = len;
	assert_int_equal(child_run_sync(ARGV("cat"), &o, &r), 0);
	assert_int_equal(r.exit_code, 0);
	assert_int_equal(r.out.len, len);
	assert_memory_equal(r.out.data, in, len);
	child_result_clear(&r);

	/* a child that closes stdin unread and lives on: our writes get EPIPE, which is
	 * neither an error nor a SIGPIPE that kills us */
	assert_int_equal(
	    child_run_sync(ARGV("sh", "-c", "exec 0<&-; sleep 0.2; echo alive"), &o, &r), 0);
	assert_int_equal(r.exit_code, 0);
	assert_int_equal(r.error, 0);
	assert_string_equal(r.out.data, "alive\n");
	child_result_clear(&r);
	free(in);
}

static void test_output_cap(void **state)
{
	struct child_options o = {};
	struct child_result r;
	uint64_t start = now_usec();

	/* 10 MiB against the default 1 MiB cap: truncated, and the child ran to the end */
	assert_int_equal(child_run_sync(ARGV("head", "-c", "10485760", "/dev/zero"), NULL, &r), 0);
	assert_int_equal(r.exit_code, 0);
	assert_int_equal(r.out.len, CHILD_OUTPUT_CAP_DEFAULT);
	assert_true(r.stdout_truncated);
	assert_false(r.stderr_truncated);
	child_result_clear(&r);
	assert_true(now_usec() - start < 5000000);

	o.output_cap = 1000;
	assert_int_equal(
	    child_run_sync(ARGV("sh", "-c", "head -c 5000 /dev/zero >&2; echo ok"), &o, &r), 0);
	assert_int_equal(r.err.len, 1000);
	assert_true(r.stderr_truncated);
	assert_false(r.stdout_truncated);
	assert_string_equal(r.out.data, "ok\n");
	child_result_clear(&r);
}

struct stream {
	sd_event *e;
	struct child *c;
	size_t bytes, bytes_while_paused;
	unsigned chunks;
	bool paused, resumed, done;
	uint64_t resumed_at, done_at;
	int abort_with;
	struct child_result result;
};

static int on_resume(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct stream *st = userdata;

	st->paused = false;
	st->resumed = true;
	st->resumed_at = now_usec();
	child_resume_stdout(st->c);
	return 0;
}

static void pause_for(struct stream *st, uint64_t usec)
{
	st->paused = true;
	child_pause_stdout(st->c);
	assert_true(sd_event_add_time_relative(st->e, NULL, CLOCK_MONOTONIC, usec, 1000, on_resume,
					       st) >= 0);
}

static int on_chunk(struct child *c, const void *data, size_t len, void *userdata)
{
	struct stream *st = userdata;

	if (st->paused)
		st->bytes_while_paused += len;
	st->bytes += len;
	st->chunks++;
	if (st->abort_with)
		return st->abort_with;
	if (st->chunks == 1)
		pause_for(st, 150000);
	return 0;
}

static void on_stream_exit(struct child *c, struct child_result *r, void *userdata)
{
	struct stream *st = userdata;

	st->done = true;
	st->done_at = now_usec();
	st->result = *r;
	r->out = r->err = BUF_INIT(0);
}

static void test_streaming_pause_resume(void **state)
{
	struct stream st = {};
	struct child_options o = { .on_stdout = on_chunk,
				   .on_exit = on_stream_exit,
				   .userdata = &st };

	assert_true(sd_event_new(&st.e) >= 0);
	/* 4 MiB cannot fit in the pipe: the child can only finish after the resume */
	assert_int_equal(child_new(st.e, ARGV("head", "-c", "4194304", "/dev/zero"), &o, &st.c), 0);
	run_until(st.e, &st.done);
	assert_true(st.resumed);
	assert_true(st.done_at >= st.resumed_at);
	assert_int_equal(st.bytes_while_paused, 0);
	assert_int_equal(st.bytes, 4194304);
	assert_int_equal(st.result.exit_code, 0);
	assert_int_equal(st.result.out.len, 0); /* streamed, not captured */
	child_result_clear(&st.result);
	child_free(st.c);
	sd_event_unref(st.e);
	assert_no_children();
}

static void test_streaming_paused_across_exit(void **state)
{
	struct stream st = {};
	struct child_options o = { .on_stdout = on_chunk,
				   .on_exit = on_stream_exit,
				   .userdata = &st };

	assert_true(sd_event_new(&st.e) >= 0);
	assert_int_equal(child_new(st.e, ARGV("echo", "hello"), &o, &st.c), 0);
	/* paused before anything was read: the child exits meanwhile, and completion
	 * waits until its output has been delivered after the resume */
	pause_for(&st, 150000);
	run_until(st.e, &st.done);
	assert_true(st.resumed);
	assert_int_equal(st.bytes, 6);
	assert_int_equal(st.bytes_while_paused, 0);
	assert_int_equal(st.result.exit_code, 0);
	child_result_clear(&st.result);
	child_free(st.c);
	sd_event_unref(st.e);
}

/* stdin_stream: the caller streams into the child's stdin itself and closes it for EOF. */
static void test_stdin_stream(void **state)
{
	struct stream st = {};
	struct child_options o = { .stdin_stream = true, .on_exit = on_stream_exit,
				   .userdata = &st };
	char chunk[4096];
	int fd, flags;

	assert_true(sd_event_new(&st.e) >= 0);
	memset(chunk, 'x', sizeof chunk);
	assert_int_equal(child_new(st.e, ARGV("wc", "-c"), &o, &st.c), 0);
	fd = child_take_stdin(st.c);
	assert_true(fd >= 0);
	assert_int_equal(child_take_stdin(st.c), -EBADF); /* handed out once */
	flags = fcntl(fd, F_GETFL);
	assert_true(flags & O_NONBLOCK);
	assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	/* wc writes only at EOF, so blocking writes of 1 MiB cannot deadlock here */
	assert_int_equal(fcntl(fd, F_SETFL, flags & ~O_NONBLOCK), 0);
	for (int i = 0; i < 256; i++)
		assert_int_equal(write(fd, chunk, sizeof chunk), (ssize_t)sizeof chunk);
	close(fd);
	run_until(st.e, &st.done);
	assert_int_equal(st.result.exit_code, 0);
	assert_int_equal(atoi(st.result.out.data), 1048576);
	child_result_clear(&st.result);
	child_free(st.c);

	/* a buffered stdin is ours to write: not handed out, and not both at once */
	o.stdin_data = "abc";
	o.stdin_len = 3;
	assert_int_equal(child_new(st.e, ARGV("cat"), &o, &st.c), -EINVAL);
	sd_event_unref(st.e);
	assert_no_children();
}

/* pipe_size: the stdin and stdout pipes get that capacity, seen from both ends. */
static void test_pipe_size(void **state)
{
	struct stream st = {};
	struct child_options o = { .stdin_stream = true,
				   .pipe_size = 1 << 20,
				   .on_exit = on_stream_exit,
				   .userdata = &st };
	int fd, k;

	assert_true(sd_event_new(&st.e) >= 0);
	/* the child looks at its end of stdout */
	k = child_new(
	    st.e, ARGV("python3", "-c", "import fcntl; print(fcntl.fcntl(1, fcntl.F_GETPIPE_SZ))"),
	    &o, &st.c);
	if (k == -ENOENT) {
		sd_event_unref(st.e);
		skip();
	}
	assert_int_equal(k, 0);
	fd = child_take_stdin(st.c);
	assert_true(fd >= 0);
	assert_int_equal(fcntl(fd, F_GETPIPE_SZ), 1 << 20);
	close(fd);
	run_until(st.e, &st.done);
	assert_int_equal(st.result.exit_code, 0);
	assert_string_equal(st.result.out.data, "1048576\n");
	child_result_clear(&st.result);
	child_free(st.c);
	sd_event_unref(st.e);
	assert_no_children();
}

static void test_streaming_abort(void **state)
{
	struct stream st = { .abort_with = -ECANCELED };
	struct child_options o = { .on_stdout = on_chunk,
				   .on_exit = on_stream_exit,
				   .userdata = &st };

	assert_true(sd_event_new(&st.e) >= 0);
	assert_int_equal(child_new(st.e, ARGV("yes"), &o, &st.c), 0);
	run_until(st.e, &st.done);
	assert_int_equal(st.chunks, 1);
	assert_int_equal(st.result.error, -ECANCELED);
	assert_int_equal(st.result.signal, SIGKILL);
	assert_int_equal(st.result.exit_code, -1);
	child_result_clear(&st.result);
	child_free(st.c);
	sd_event_unref(st.e);
}

static void test_timeout(void **state)
{
	struct child_options o = { .timeout_usec = 100000 };
	struct child_result r;
	uint64_t start = now_usec();

	assert_int_equal(child_run_sync(ARGV("sleep", "100"), &o, &r), 0);
	assert_true(r.timed_out);
	assert_int_equal(r.signal, SIGTERM);
	assert_int_equal(r.exit_code, -1);
	assert_true(now_usec() - start < 2000000);
	child_result_clear(&r);

	/* SIGTERM ignored: SIGKILL after the grace period. The ignore survives the exec. */
	o.timeout_usec = 300000;
	o.kill_grace_usec = 100000;
	start = now_usec();
	assert_int_equal(child_run_sync(ARGV("sh", "-c", "trap '' TERM; exec sleep 100"), &o, &r),
			 0);
	assert_true(r.timed_out);
	assert_int_equal(r.signal, SIGKILL);
	assert_true(now_usec() - start >= 400000);
	assert_true(now_usec() - start < 3000000);
	child_result_clear(&r);
	assert_no_children();
}

static void test_exec_errors(void **state)
{
	char script[] = "/tmp/test-child-XXXXXX";
	struct child_options o = {};
	struct child_result r = { .exit_code = 99 };
	sd_event *e = NULL;
	struct child *c = NULL;
	int fd;

	assert_int_equal(child_run_sync(ARGV("/nonexistent/cocoon"), NULL, &r), -ENOENT);
	assert_int_equal(child_run_sync(ARGV("no-such-binary-for-cocoon-tests"), NULL, &r),
			 -ENOENT);
	assert_int_equal(r.exit_code, 99); /* untouched on failure */

	fd = mkstemp(script);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "#!/bin/sh\n", 10), 10);
	close(fd);
	assert_int_equal(chmod(script, 0644), 0);
	assert_int_equal(child_run_sync(ARGV(script), NULL, &r), -EACCES);
	unlink(script);

	o.cwd = "/nonexistent-dir";
	assert_int_equal(child_run_sync(ARGV("true"), &o, &r), -ENOENT);

	assert_true(sd_event_new(&e) >= 0);
	o = (struct child_options){ .on_stdout = on_chunk, .stdout_mode = CHILD_OUTPUT_NULL };
	assert_int_equal(child_new(e, ARGV("true"), &o, &c), -EINVAL);
	assert_int_equal(child_new(e, ARGV(""), NULL, &c), -EINVAL);
	assert_int_equal(child_new(e, (const char *const[]){ NULL }, NULL, &c), -EINVAL);
	assert_null(c);
	sd_event_unref(e);
	assert_no_children();
}

static void test_env_and_cwd(void **state)
{
	struct child_options o = {
		.env = ARGV("COCOON_T=yes", "COCOON_GONE"),
		.cwd = "/tmp",
	};
	struct child_result r;

	setenv("COCOON_GONE", "still here", 1);
	setenv("COCOON_KEPT", "kept", 1);
	assert_int_equal(
	    child_run_sync(ARGV("sh", "-c", "echo \"$COCOON_T:$COCOON_GONE:$COCOON_KEPT:$(pwd)\""),
			   &o, &r),
	    0);
	assert_string_equal(r.out.data, "yes::kept:/tmp\n");
	child_result_clear(&r);
	unsetenv("COCOON_GONE");
	unsetenv("COCOON_KEPT");
}

static void test_child_starts_clean(void **state)
{
	unsigned long long blocked, ignored;
	sigset_t mask;
	struct child_result r;
	int leaked = open("/dev/null", O_RDONLY); /* deliberately without O_CLOEXEC */

	/* what a daemon has: SIGTERM blocked, SIGPIPE ignored */
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);
	assert_true(leaked >= 0);

	assert_int_equal(
	    child_run_sync(ARGV("grep", "-E", "^Sig(Blk|Ign)", "/proc/self/status"), NULL, &r), 0);
	assert_int_equal(sscanf(r.out.data, "SigBlk: %llx SigIgn: %llx", &blocked, &ignored), 2);
	assert_int_equal(blocked, 0);
	/* glibc's posix_spawn always leaves its two internal signals (32, 33) ignored; every
	 * other signal, SIGPIPE included, must be back at its default. */
	assert_int_equal(ignored & ~(3ULL << 31), 0);
	child_result_clear(&r);

	/* only 0-2 are inherited (3 is ls's own handle on the directory) */
	assert_int_equal(child_run_sync(ARGV("ls", "/proc/self/fd"), NULL, &r), 0);
	assert_string_equal(r.out.data, "0\n1\n2\n3\n");
	child_result_clear(&r);

	close(leaked);
	sigprocmask(SIG_UNBLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_DFL);
}

struct many {
	unsigned done;
	bool all_done;
	char out[20][16];
	int exit_codes[20];
};

static void on_many_exit(struct child *c, struct child_result *r, void *userdata)
{
	struct many *m = userdata;
	int i;

	assert_true(sscanf(r->out.data, "%d", &i) == 1);
	assert_true(i >= 0 && i < 20);
	snprintf(m->out[i], sizeof m->out[i], "%s", r->out.data);
	m->exit_codes[i] = r->exit_code;
	child_free(c); /* freeing from the callback is allowed */
	m->all_done = ++m->done == 20;
}

static void test_twenty_concurrent(void **state)
{
	struct many m = {};
	struct child_options o = { .on_exit = on_many_exit, .userdata = &m };
	sd_event *e = NULL;
	uint64_t start = now_usec();

	assert_true(sd_event_new(&e) >= 0);
	for (int i = 0; i < 20; i++) {
		struct child *c;
		char arg[16];

		snprintf(arg, sizeof arg, "%d", i);
		assert_int_equal(
		    child_new(e, ARGV("sh", "-c", "sleep 0.2; echo $0; exit $0", arg), &o, &c), 0);
		assert_true(child_pid(c) > 0);
	}
	run_until(e, &m.all_done);
	/* they ran side by side, not one after the other */
	assert_true(now_usec() - start < 3000000);
	for (int i = 0; i < 20; i++) {
		char want[16];

		snprintf(want, sizeof want, "%d\n", i);
		assert_string_equal(m.out[i], want);
		assert_int_equal(m.exit_codes[i], i);
	}
	sd_event_unref(e);
	assert_no_children();
}

struct supervised {
	bool done;
	struct child_result result;
};

static void on_supervised_exit(struct child *c, struct child_result *r, void *userdata)
{
	struct supervised *s = userdata;

	s->done = true;
	s->result = *r;
	r->out = r->err = BUF_INIT(0);
}

static void test_supervised_stop_and_kill(void **state)
{
	struct supervised s = {};
	struct child_options o = { .stdout_mode = CHILD_OUTPUT_NULL,
				   .stderr_mode = CHILD_OUTPUT_NULL,
				   .on_exit = on_supervised_exit,
				   .userdata = &s };
	sd_event *e = NULL;
	struct child *c = NULL;

	assert_true(sd_event_new(&e) >= 0);
	assert_int_equal(child_new(e, ARGV("sh", "-c", "echo dropped; exec sleep 100"), &o, &c), 0);
	assert_int_equal(child_stop(c), 0);
	assert_int_equal(child_stop(c), 0); /* idempotent */
	run_until(e, &s.done);
	assert_int_equal(s.result.signal, SIGTERM);
	assert_false(s.result.timed_out);
	assert_int_equal(s.result.out.len, 0);
	assert_int_equal(child_kill(c, SIGTERM), -ESRCH);
	assert_int_equal(child_stop(c), -ESRCH);
	child_free(c);

	s = (struct supervised){};
	assert_int_equal(child_new(e, ARGV("sleep", "100"), &o, &c), 0);
	assert_int_equal(child_kill(c, SIGUSR1), 0);
	run_until(e, &s.done);
	assert_int_equal(s.result.signal, SIGUSR1);
	child_free(c);
	sd_event_unref(e);
	assert_no_children();
}

static void test_free_running_child_reaps(void **state)
{
	sd_event *e = NULL;
	struct child *c = NULL;
	pid_t pid;

	assert_true(sd_event_new(&e) >= 0);
	assert_int_equal(child_new(e, ARGV("sleep", "100"), NULL, &c), 0);
	pid = child_pid(c);
	assert_int_equal(kill(pid, 0), 0);
	child_free(c);
	/* killed and reaped: no process, no zombie */
	assert_int_equal(kill(pid, 0), -1);
	assert_int_equal(errno, ESRCH);
	assert_no_children();
	child_free(NULL);
	sd_event_unref(e);
}

int main(void)
{
	/* A broken timeout or completion path would hang (child_run_sync waits forever):
	 * fail loudly instead. Alarms are not inherited by the children. */
	alarm(60);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_exit_code_and_output),
		cmocka_unit_test(test_stdin_fed),
		cmocka_unit_test(test_stdin_stream),
		cmocka_unit_test(test_output_cap),
		cmocka_unit_test(test_streaming_pause_resume),
		cmocka_unit_test(test_streaming_paused_across_exit),
		cmocka_unit_test(test_pipe_size),
		cmocka_unit_test(test_streaming_abort),
		cmocka_unit_test(test_timeout),
		cmocka_unit_test(test_exec_errors),
		cmocka_unit_test(test_env_and_cwd),
		cmocka_unit_test(test_child_starts_clean),
		cmocka_unit_test(test_twenty_concurrent),
		cmocka_unit_test(test_supervised_stop_and_kill),
		cmocka_unit_test(test_free_running_child_reaps),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
