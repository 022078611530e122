/* Child processes driven from sd-event: `cocoon`, `iptables`, `gcloud` as one-shot commands
 * with captured output and a timeout, `cocoon snapshot export -o -` streamed chunk by chunk
 * with back-pressure, and supervised daemons (dnsmasq) with only an exit callback.
 *
 * argv is executed directly (no shell); argv[0] without a '/' is looked up in our $PATH, so
 * a missing binary fails child_new() with -ENOENT (a non-executable one with -EACCES)
 * instead of surfacing as exit code 127. The child starts with an empty signal mask, every
 * signal at its default disposition, and only fds 0-2 open.
 *
 * sd-event can only watch children while SIGCHLD is blocked, so child_new() blocks it in the
 * calling thread if needed; when stdin data is given it also ignores SIGPIPE if it was at
 * its default, so a child that closes stdin early gives EPIPE instead of killing us. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <systemd/sd-event.h>

#include "cocoon/buf.h"
#include "cocoon/macro.h"

#define CHILD_OUTPUT_CAP_DEFAULT      (1024 * 1024)
#define CHILD_KILL_GRACE_DEFAULT_USEC (5ULL * 1000 * 1000)

struct child;

enum child_output {
	CHILD_OUTPUT_CAPTURE, /* into a capped buffer handed to on_exit (the default) */
	CHILD_OUTPUT_INHERIT, /* our own fd, e.g. the journal stream of a supervised daemon */
	CHILD_OUTPUT_NULL,    /* /dev/null */
};

struct child_result {
	int exit_code; /* exit status, or -1 when a signal ended the process */
	int signal;    /* the signal that ended it, 0 if it exited */
	bool timed_out;
	/* Output beyond output_cap was read and dropped; the child was never blocked. */
	bool stdout_truncated, stderr_truncated;
	/* 0, or the first -errno met while feeding or collecting I/O (a read error, -ENOMEM,
	 * the value on_stdout returned); the fields above are still accurate. */
	int error;
	struct buf out, err; /* captured output, NUL-terminated; the callback may buf_steal() */
};

/* Called once, after the process has exited and the output it wrote is collected. The
 * result belongs to the child; the callback may move buffers out and may child_free(c). */
typedef void (*child_exit_fn)(struct child *c, struct child_result *r, void *userdata);
/* Streaming stdout: one chunk per call. Return < 0 to abort (the child gets SIGKILL and the
 * value becomes result.error). May call child_pause_stdout(), not child_free(). */
typedef int (*child_stdout_fn)(struct child *c, const void *data, size_t len, void *userdata);

struct child_options {
	/* "NAME=value" added to (replacing) our environment; a bare "NAME" removes it. */
	const char *const *env;
	const char *cwd;
	/* Written to the child's stdin without blocking, then closed; copied. NULL or an
	 * empty buffer: stdin is /dev/null. */
	const void *stdin_data;
	size_t stdin_len;
	/* Instead: stdin is a pipe whose write end the caller takes with child_take_stdin()
	 * and streams into itself (e.g. a tar of GiBs into `cocoon snapshot import`). */
	bool stdin_stream;
	/* Capacity of the stdin and stdout pipes (F_SETPIPE_SZ, best effort: an unprivileged
	 * process gets at most /proc/sys/fs/pipe-max-size). GiB streams need fewer wakeups
	 * on both sides with 1 MiB than with the kernel's 64 KiB. 0: the kernel's. */
	size_t pipe_size;
	enum child_output stdout_mode, stderr_mode;
	size_t output_cap;         /* per captured stream; 0: CHILD_OUTPUT_CAP_DEFAULT */
	child_stdout_fn on_stdout; /* set: stdout is streamed here instead of captured */
	uint64_t timeout_usec;     /* 0: none (supervised daemons); then SIGTERM … */
	uint64_t kill_grace_usec;  /* … and SIGKILL this much later; 0: the default */
	child_exit_fn on_exit;
	void *userdata;
};

/* Starts the process. o may be NULL (capture both streams, no timeout, no callback). */
int child_new(sd_event *e, const char *const *argv, const struct child_options *o,
	      struct child **ret);
/* Kills a still-running child with SIGKILL and reaps it; no callback is called. */
void child_free(struct child *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct child *, child_free);

pid_t child_pid(struct child *c);
/* With stdin_stream: hands over the write end of the child's stdin (non-blocking,
 * close-on-exec); the caller closes it to signal EOF. -EBADF when not available (no
 * stdin_stream, or taken already). */
int child_take_stdin(struct child *c);
/* -ESRCH once the process has exited. */
int child_kill(struct child *c, int sig);
/* SIGTERM now, SIGKILL after the kill grace unless it exited; idempotent. */
int child_stop(struct child *c);
/* Back-pressure for streaming: while paused the pipe fills and the child blocks. */
void child_pause_stdout(struct child *c);
void child_resume_stdout(struct child *c);

/* For CLIs: run to completion on a private loop. Returns 0 when the process ran (whatever
 * its exit code) with *ret filled (free with child_result_clear()), or -errno when it could
 * not be started. o may be NULL; its on_exit and on_stdout must be unset. */
int child_run_sync(const char *const *argv, const struct child_options *o,
		   struct child_result *ret);
void child_result_clear(struct child_result *r);
