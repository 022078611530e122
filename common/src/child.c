/* Child processes on sd-event (see child.h): spawning with posix_spawn (no fork of a big
 * daemon, exec errors returned directly), pidfd-based exit watching via sd_event_add_child
 * (no zombies: the source owns the process, so freeing it kills and reaps), non-blocking
 * stdin feeding, capped or streamed output, and the SIGTERM → SIGKILL timeout.
 *
 * Output written before the child exited is never lost: at exit we note how many bytes the
 * pipe still holds and deliver exactly those, so a grandchild that inherited the pipe and
 * keeps it open cannot delay completion. */
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "cocoon/child.h"
#include "cocoon/log.h"

/* Bytes read from one pipe per loop iteration while the child runs, so a fast writer
 * cannot starve the other sources. */
#define CHILD_READ_BUDGET  (1024 * 1024)
#define CHILD_DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

/* Placeholders in the child's stdio table for streams that are not pipes. */
#define CHILD_FD_NULL    (-1)
#define CHILD_FD_INHERIT (-2)

enum {
	CHILD_PUMP_EOF,
	CHILD_PUMP_AGAIN, /* nothing to read now, or the budget is used up */
	CHILD_PUMP_PAUSED,
};

struct child_pipe {
	int fd; /* our end, non-blocking */
	sd_event_source *src;
	struct buf buf;
	bool truncated;
	size_t left; /* after exit: bytes the pipe held when the child exited */
};

struct child {
	sd_event *event;
	pid_t pid;
	sd_event_source *child_src, *timeout_src, *kill_src, *stdin_src;
	int stdin_fd;
	char *stdin_data;
	size_t stdin_len, stdin_off;
	struct child_pipe out, err;
	size_t cap;
	uint64_t kill_grace;
	child_stdout_fn on_stdout;
	child_exit_fn on_exit;
	void *userdata;
	bool paused, exited, done;
	struct child_result result;
};

extern char **environ;

static void close_stdio(int (*fds)[3])
{
	for (int i = 0; i < 3; i++) {
		closep(&(*fds)[i]);
		(*fds)[i] = -EBADF;
	}
}

static int child_prepare_signals(bool writes_stdin)
{
	struct sigaction sa;
	sigset_t mask;

	if (sigprocmask(SIG_SETMASK, NULL, &mask) < 0)
		return -errno;
	if (!sigismember(&mask, SIGCHLD)) {
		sigemptyset(&mask);
		sigaddset(&mask, SIGCHLD);
		if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
			return -errno;
	}
	if (!writes_stdin)
		return 0;
	if (sigaction(SIGPIPE, NULL, &sa) < 0)
		return -errno;
	if (sa.sa_handler == SIG_DFL && !(sa.sa_flags & SA_SIGINFO)) {
		sa = (struct sigaction){ .sa_handler = SIG_IGN };
		if (sigaction(SIGPIPE, &sa, NULL) < 0)
			return -errno;
	}
	return 0;
}

/* Relative paths are resolved against our working directory, not the child's. */
static int child_absolute_path(char *path, char **ret)
{
	_cleanup_(freep) char *cwd = NULL;

	if (path[0] == '/') {
		*ret = path;
		return 0;
	}
	cwd = get_current_dir_name();
	if (!cwd || asprintf(ret, "%s/%s", cwd, path) < 0) {
		free(path);
		return -ENOMEM;
	}
	free(path);
	return 0;
}

static bool child_is_executable(const char *path, int *error)
{
	struct stat st;

	if (access(path, X_OK) < 0) {
		*error = -errno;
		return false;
	}
	if (stat(path, &st) < 0) {
		*error = -errno;
		return false;
	}
	*error = S_ISREG(st.st_mode) ? 0 : -EACCES;
	return *error == 0;
}

/* The $PATH search execvp() would do, done here so a missing binary is a clear -ENOENT. */
static int child_find_executable(const char *name, char **ret)
{
	const char *path = getenv("PATH");
	int r = -ENOENT, error;
	char *found;

	if (isempty(name))
		return -EINVAL;
	if (strchr(name, '/')) {
		if (!child_is_executable(name, &error))
			return error;
		found = strdup(name);
		return found ? child_absolute_path(found, ret) : -ENOMEM;
	}
	if (isempty(path))
		path = CHILD_DEFAULT_PATH;
	for (const char *p = path;; p++) {
		size_t n = strcspn(p, ":");

		/* An empty $PATH element means the current directory. */
		if (asprintf(&found, "%.*s/%s", (int)n, n ? p : ".", name) < 0)
			return -ENOMEM;
		if (child_is_executable(found, &error))
			return child_absolute_path(found, ret);
		if (error == -EACCES)
			r = -EACCES;
		free(found);
		p += n;
		if (!*p)
			break;
	}
	return r;
}

static bool env_same_name(const char *a, const char *b)
{
	while (*a && *a != '=' && *a == *b)
		a++, b++;
	return (*a == '=' || !*a) && (*b == '=' || !*b);
}

/* Our environment with `add` applied; the strings are borrowed, only the array is new. */
static int child_build_env(const char *const *add, char ***ret)
{
	size_t n_env = 0, n_add = 0, k = 0;
	char **v;

	while (environ && environ[n_env])
		n_env++;
	while (add[n_add])
		n_add++;
	v = calloc(n_env + n_add + 1, sizeof *v);
	if (!v)
		return -ENOMEM;
	for (size_t i = 0; i < n_env; i++) {
		bool replaced = false;

		for (size_t j = 0; j < n_add && !replaced; j++)
			replaced = env_same_name(environ[i], add[j]);
		if (!replaced)
			v[k++] = environ[i];
	}
	for (size_t j = 0; j < n_add; j++)
		if (strchr(add[j], '='))
			v[k++] = (char *)add[j];
	*ret = v;
	return 0;
}

/* A pipe whose ends are both above 2, so installing them as the child's 0-2 never
 * overwrites another one (a daemon started with closed stdio gets low fd numbers). */
static int child_pipe_new(int fds[2])
{
	if (pipe2(fds, O_CLOEXEC) < 0)
		return -errno;
	for (int i = 0; i < 2; i++) {
		int fd;

		if (fds[i] > STDERR_FILENO)
			continue;
		fd = fcntl(fds[i], F_DUPFD_CLOEXEC, STDERR_FILENO + 1);
		if (fd < 0) {
			int r = -errno;

			close(fds[0]);
			close(fds[1]);
			return r;
		}
		close(fds[i]);
		fds[i] = fd;
	}
	return 0;
}

static void child_pipe_size(int fd, size_t size)
{
	if (size > 0 && fcntl(fd, F_SETPIPE_SZ, (int)MIN(size, (size_t)INT_MAX)) < 0)
		(void)log_debug_errno(
		    errno, "Cannot resize a child's pipe to %zu bytes, ignoring: %m", size);
}

/* Creates the pipes: our ends go into c (non-blocking), the child's into theirs[]. */
static int child_setup_stdio(struct child *c, const struct child_options *o, int (*theirs)[3])
{
	const enum child_output modes[] = { o->stdout_mode, o->stderr_mode };
	struct child_pipe *pipes[] = { &c->out, &c->err };
	int fds[2], r;

	(*theirs)[0] = CHILD_FD_NULL;
	if ((o->stdin_data && o->stdin_len > 0) || o->stdin_stream) {
		r = child_pipe_new(fds);
		if (r < 0)
			return r;
		(*theirs)[0] = fds[0];
		c->stdin_fd = fds[1];
		child_pipe_size(c->stdin_fd, o->pipe_size);
		if (fcntl(c->stdin_fd, F_SETFL, O_NONBLOCK) < 0)
			return -errno;
	}
	for (int i = 0; i < 2; i++) {
		(*theirs)[i + 1] = modes[i] == CHILD_OUTPUT_NULL ? CHILD_FD_NULL : CHILD_FD_INHERIT;
		if (modes[i] != CHILD_OUTPUT_CAPTURE)
			continue;
		r = child_pipe_new(fds);
		if (r < 0)
			return r;
		(*theirs)[i + 1] = fds[1];
		pipes[i]->fd = fds[0];
		if (i == 0)
			child_pipe_size(fds[0], o->pipe_size);
		if (fcntl(fds[0], F_SETFL, O_NONBLOCK) < 0)
			return -errno;
	}
	return 0;
}

static int child_add_stdio(posix_spawn_file_actions_t *fa, int target, int fd)
{
	if (fd >= 0)
		return posix_spawn_file_actions_adddup2(fa, fd, target);
	if (fd == CHILD_FD_NULL)
		return posix_spawn_file_actions_addopen(fa, target, "/dev/null",
							target == 0 ? O_RDONLY : O_WRONLY, 0);
	return 0;
}

/* posix_spawn returns exec errors itself (glibc's child reports them before the parent
 * resumes), so no pipe trick is needed. Returns a positive errno like posix_spawn. */
static int child_spawn(const char *path, const char *const *argv, char **envp, int cwd_fd,
		       const int stdio[3], pid_t *ret_pid)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	sigset_t none, all;
	int r;

	sigemptyset(&none);
	sigfillset(&all);
	r = posix_spawn_file_actions_init(&fa);
	if (r)
		return r;
	r = posix_spawnattr_init(&attr);
	if (r) {
		posix_spawn_file_actions_destroy(&fa);
		return r;
	}
	/* Our blocked SIGTERM/SIGCHLD and ignored SIGPIPE must not leak into the child. */
	r = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
	if (!r)
		r = posix_spawnattr_setsigmask(&attr, &none);
	if (!r)
		r = posix_spawnattr_setsigdefault(&attr, &all);
	/* chdir first: cwd_fd may have a number that a dup2 below replaces. */
	if (!r && cwd_fd >= 0)
		r = posix_spawn_file_actions_addfchdir_np(&fa, cwd_fd);
	for (int i = 0; !r && i < 3; i++)
		r = child_add_stdio(&fa, i, stdio[i]);
	/* Everything of ours is O_CLOEXEC, but a library's fd might not be. */
	if (!r)
		r = posix_spawn_file_actions_addclosefrom_np(&fa, STDERR_FILENO + 1);
	if (!r)
		r = posix_spawn(ret_pid, path, &fa, &attr, (char *const *)argv, envp);
	posix_spawnattr_destroy(&attr);
	posix_spawn_file_actions_destroy(&fa);
	return r;
}

static void child_set_error(struct child *c, int error)
{
	if (c->result.error == 0)
		c->result.error = error;
}

static void child_pipe_close(struct child_pipe *p)
{
	p->src = sd_event_source_disable_unref(p->src);
	closep(&p->fd);
	p->fd = -EBADF;
}

static void child_stdin_close(struct child *c)
{
	c->stdin_src = sd_event_source_disable_unref(c->stdin_src);
	closep(&c->stdin_fd);
	c->stdin_fd = -EBADF;
	free(c->stdin_data);
	c->stdin_data = NULL;
}

static int child_pipe_deliver(struct child *c, struct child_pipe *p, const char *data, size_t n)
{
	size_t room = c->cap - p->buf.len;
	int r;

	if (p == &c->out && c->on_stdout)
		return c->on_stdout(c, data, n, c->userdata);
	if (n > room) {
		p->truncated = true;
		n = room;
	}
	if (n == 0)
		return 0;
	r = buf_append(&p->buf, data, n);
	if (r < 0) {
		/* Out of memory: keep draining so the child is not blocked. */
		p->truncated = true;
		child_set_error(c, r);
	}
	return 0;
}

/* Moves up to *budget bytes from the pipe to its consumer, decrementing *budget. Returns
 * CHILD_PUMP_* or -errno (a read error, or what on_stdout returned). */
static int child_pipe_pump(struct child *c, struct child_pipe *p, size_t *budget)
{
	char chunk[65536];

	while (*budget > 0) {
		ssize_t n;
		int r;

		if (p == &c->out && c->paused)
			return CHILD_PUMP_PAUSED;
		n = read(p->fd, chunk, MIN(sizeof chunk, *budget));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return errno == EAGAIN ? CHILD_PUMP_AGAIN : -errno;
		if (n == 0)
			return CHILD_PUMP_EOF;
		*budget -= (size_t)n;
		r = child_pipe_deliver(c, p, chunk, (size_t)n);
		if (r < 0)
			return r;
	}
	return CHILD_PUMP_AGAIN;
}

/* A failed pipe: record why and, if the consumer gave up on a running child, end it. The
 * SIGKILL goes first so the child is not killed by SIGPIPE from the closed pipe instead. */
static void child_pipe_fail(struct child *c, struct child_pipe *p, int error)
{
	log_debug_errno(error, "Child %d: giving up on its output: %m", (int)c->pid);
	child_set_error(c, error);
	if (!c->exited)
		(void)child_kill(c, SIGKILL);
	child_pipe_close(p);
}

/* After exit: deliver what the pipe held at that moment, unless stdout is paused. */
static void child_pipe_drain(struct child *c, struct child_pipe *p)
{
	int r;

	if (p->fd < 0)
		return;
	r = child_pipe_pump(c, p, &p->left);
	if (r == CHILD_PUMP_PAUSED) {
		(void)sd_event_source_set_enabled(p->src, SD_EVENT_OFF);
		return;
	}
	if (r < 0)
		child_pipe_fail(c, p, r);
	else
		child_pipe_close(p);
}

/* Completes once the process is gone and its output delivered. May free c (via on_exit). */
static void child_try_finish(struct child *c)
{
	struct child_result *r = &c->result;

	if (!c->exited || c->done || c->out.fd >= 0 || c->err.fd >= 0)
		return;
	c->done = true;
	r->stdout_truncated = c->out.truncated;
	r->stderr_truncated = c->err.truncated;
	r->out = c->out.buf;
	r->err = c->err.buf;
	c->out.buf = c->err.buf = BUF_INIT(c->cap);
	if (c->on_exit)
		c->on_exit(c, r, c->userdata);
}

static int child_on_output(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	struct child *c = userdata;
	struct child_pipe *p = fd == c->out.fd ? &c->out : &c->err;
	size_t budget = CHILD_READ_BUDGET;
	int r;

	if (c->exited) {
		/* Resumed after exit: finish delivering what the child left. */
		child_pipe_drain(c, p);
		child_try_finish(c);
		return 0;
	}
	r = child_pipe_pump(c, p, &budget);
	if (r < 0)
		child_pipe_fail(c, p, r);
	else if (r == CHILD_PUMP_EOF)
		child_pipe_close(p);
	return 0;
}

static int child_on_stdin(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	struct child *c = userdata;

	while (c->stdin_off < c->stdin_len) {
		ssize_t n = write(fd, c->stdin_data + c->stdin_off, c->stdin_len - c->stdin_off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return 0;
		if (n < 0) {
			/* EPIPE: the child closed stdin, it did not want the rest. */
			if (errno != EPIPE)
				child_set_error(c, -errno);
			break;
		}
		c->stdin_off += (size_t)n;
	}
	child_stdin_close(c);
	return 0;
}

static int child_on_exit(sd_event_source *s, const siginfo_t *si, void *userdata)
{
	struct child *c = userdata;
	struct child_pipe *pipes[] = { &c->out, &c->err };

	c->exited = true;
	if (si->si_code == CLD_EXITED) {
		c->result.exit_code = si->si_status;
	} else {
		c->result.exit_code = -1;
		c->result.signal = si->si_status;
	}
	c->timeout_src = sd_event_source_disable_unref(c->timeout_src);
	c->kill_src = sd_event_source_disable_unref(c->kill_src);
	child_stdin_close(c);
	for (size_t i = 0; i < ELEMENTSOF(pipes); i++) {
		int n;

		if (pipes[i]->fd < 0)
			continue;
		/* Without the count, read until the pipe is empty instead. */
		pipes[i]->left = ioctl(pipes[i]->fd, FIONREAD, &n) >= 0 ? (size_t)n : SIZE_MAX;
		child_pipe_drain(c, pipes[i]);
	}
	child_try_finish(c);
	return 0;
}

static int child_on_kill_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct child *c = userdata;

	log_debug("Child %d ignored SIGTERM, sending SIGKILL", (int)c->pid);
	(void)child_kill(c, SIGKILL);
	return 0;
}

static int child_on_timeout(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct child *c = userdata;

	log_debug("Child %d timed out, stopping it", (int)c->pid);
	c->result.timed_out = true;
	(void)child_stop(c);
	return 0;
}

static int child_watch(struct child *c, const struct child_options *o)
{
	struct child_pipe *pipes[] = { &c->out, &c->err };
	int r;

	r = sd_event_add_child(c->event, &c->child_src, c->pid, WEXITED, child_on_exit, c);
	if (r < 0) {
		(void)kill(c->pid, SIGKILL);
		(void)waitpid(c->pid, NULL, 0);
		return r;
	}
	/* Freeing the source then kills and reaps the process: no zombies, no orphans. */
	r = sd_event_source_set_child_process_own(c->child_src, true);
	if (r < 0)
		return r;
	if (c->stdin_fd >= 0 && c->stdin_data) {
		r = sd_event_add_io(c->event, &c->stdin_src, c->stdin_fd, EPOLLOUT, child_on_stdin,
				    c);
		if (r < 0)
			return r;
	}
	for (size_t i = 0; i < ELEMENTSOF(pipes); i++) {
		if (pipes[i]->fd < 0)
			continue;
		r = sd_event_add_io(c->event, &pipes[i]->src, pipes[i]->fd, EPOLLIN,
				    child_on_output, c);
		if (r < 0)
			return r;
	}
	if (o->timeout_usec > 0) {
		r = sd_event_add_time_relative(c->event, &c->timeout_src, CLOCK_MONOTONIC,
					       o->timeout_usec, 1000, child_on_timeout, c);
		if (r < 0)
			return r;
	}
	return 0;
}

static int child_alloc(sd_event *e, const struct child_options *o, struct child **ret)
{
	struct child *c = calloc(1, sizeof *c);

	if (!c)
		return -ENOMEM;
	c->event = sd_event_ref(e);
	c->stdin_fd = c->out.fd = c->err.fd = -EBADF;
	c->cap = o->output_cap ? o->output_cap : CHILD_OUTPUT_CAP_DEFAULT;
	c->out.buf = c->err.buf = BUF_INIT(c->cap);
	c->kill_grace = o->kill_grace_usec ? o->kill_grace_usec : CHILD_KILL_GRACE_DEFAULT_USEC;
	c->on_stdout = o->on_stdout;
	c->on_exit = o->on_exit;
	c->userdata = o->userdata;
	if (o->stdin_data && o->stdin_len > 0) {
		c->stdin_data = malloc(o->stdin_len);
		if (!c->stdin_data) {
			child_free(c);
			return -ENOMEM;
		}
		memcpy(c->stdin_data, o->stdin_data, o->stdin_len);
		c->stdin_len = o->stdin_len;
	}
	*ret = c;
	return 0;
}

int child_new(sd_event *e, const char *const *argv, const struct child_options *o,
	      struct child **ret)
{
	static const struct child_options defaults;
	_cleanup_(child_freep) struct child *c = NULL;
	_cleanup_(freep) char *path = NULL;
	_cleanup_(freep) char **envp = NULL;
	_cleanup_(closep) int cwd_fd = -EBADF;
	_cleanup_(close_stdio) int theirs[3] = { -EBADF, -EBADF, -EBADF };
	int r;

	if (!e || !argv || !argv[0] || !ret)
		return -EINVAL;
	o = o ?: &defaults;
	if (o->on_stdout && o->stdout_mode != CHILD_OUTPUT_CAPTURE)
		return -EINVAL;
	if (o->stdin_stream && o->stdin_data)
		return -EINVAL;
	r = child_prepare_signals((o->stdin_data && o->stdin_len > 0) || o->stdin_stream);
	if (r < 0)
		return r;
	r = child_find_executable(argv[0], &path);
	if (r < 0)
		return log_debug_errno(r, "Cannot execute %s: %m", argv[0]);
	if (o->env) {
		r = child_build_env(o->env, &envp);
		if (r < 0)
			return r;
	}
	if (o->cwd) {
		cwd_fd = open(o->cwd, O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (cwd_fd < 0)
			return log_debug_errno(errno, "Working directory %s for %s: %m", o->cwd,
					       argv[0]);
	}
	r = child_alloc(e, o, &c);
	if (r < 0)
		return r;
	r = child_setup_stdio(c, o, &theirs);
	if (r < 0)
		return r;
	r = child_spawn(path, argv, envp ?: environ, cwd_fd, theirs, &c->pid);
	if (r)
		return log_debug_errno(r, "Cannot spawn %s: %m", path);
	close_stdio(&theirs);
	r = child_watch(c, o);
	if (r < 0)
		return log_debug_errno(r, "Cannot watch child %d (%s): %m", (int)c->pid, path);
	log_debug("Started %s as pid %d", path, (int)c->pid);
	*ret = TAKE_PTR(c);
	return 0;
}

void child_free(struct child *c)
{
	if (!c)
		return;
	child_stdin_close(c);
	child_pipe_close(&c->out);
	child_pipe_close(&c->err);
	sd_event_source_disable_unref(c->timeout_src);
	sd_event_source_disable_unref(c->kill_src);
	/* Owns the process: kills it if still running and reaps it. */
	sd_event_source_unref(c->child_src);
	buf_free(&c->out.buf);
	buf_free(&c->err.buf);
	child_result_clear(&c->result);
	sd_event_unref(c->event);
	free(c);
}

int child_take_stdin(struct child *c)
{
	/* Only a streamed stdin is handed out: a buffered one is written by us. */
	if (!c || c->stdin_data || c->stdin_src)
		return -EBADF;
	return c->stdin_fd >= 0 ? TAKE_FD(c->stdin_fd) : -EBADF;
}

pid_t child_pid(struct child *c)
{
	return c->pid;
}

int child_kill(struct child *c, int sig)
{
	if (c->exited || !c->child_src)
		return -ESRCH;
	return sd_event_source_send_child_signal(c->child_src, sig, NULL, 0);
}

int child_stop(struct child *c)
{
	int r;

	if (c->exited)
		return -ESRCH;
	if (c->kill_src)
		return 0;
	r = child_kill(c, SIGTERM);
	if (r < 0)
		return r;
	r = sd_event_add_time_relative(c->event, &c->kill_src, CLOCK_MONOTONIC, c->kill_grace, 1000,
				       child_on_kill_timer, c);
	if (r < 0)
		return child_kill(c, SIGKILL);
	return 0;
}

void child_pause_stdout(struct child *c)
{
	c->paused = true;
	if (c->out.src)
		(void)sd_event_source_set_enabled(c->out.src, SD_EVENT_OFF);
}

void child_resume_stdout(struct child *c)
{
	c->paused = false;
	/* Level-triggered: fires again at once if data is waiting, even after exit. */
	if (c->out.src)
		(void)sd_event_source_set_enabled(c->out.src, SD_EVENT_ON);
}

struct child_sync {
	bool done;
	struct child_result result;
};

static void child_sync_on_exit(struct child *c, struct child_result *r, void *userdata)
{
	struct child_sync *s = userdata;

	s->done = true;
	s->result = *r;
	r->out = r->err = BUF_INIT(0);
}

int child_run_sync(const char *const *argv, const struct child_options *o, struct child_result *ret)
{
	_cleanup_(sd_event_unrefp) sd_event *e = NULL;
	_cleanup_(child_freep) struct child *c = NULL;
	struct child_options opts = o ? *o : (struct child_options){};
	struct child_sync s = {};
	int r;

	if (opts.on_exit || opts.on_stdout || !ret)
		return -EINVAL;
	opts.on_exit = child_sync_on_exit;
	opts.userdata = &s;
	r = sd_event_new(&e);
	if (r < 0)
		return r;
	r = child_new(e, argv, &opts, &c);
	if (r < 0)
		return r;
	while (!s.done) {
		r = sd_event_run(e, UINT64_MAX);
		if (r < 0) {
			child_result_clear(&s.result);
			return r;
		}
	}
	*ret = s.result;
	return 0;
}

void child_result_clear(struct child_result *r)
{
	if (!r)
		return;
	buf_free(&r->out);
	buf_free(&r->err);
}
