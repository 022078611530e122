/* bench-ipc: what a bus request costs. 10,000 REQ/REP round trips through bus_client →
 * bus_server over ipc:// between two processes (the child runs the server loop), against
 * the floor for the same exchange: a plain AF_UNIX SOCK_SEQPACKET ping-pong of the same
 * request and reply sizes between the same two processes. Prints p50/p99/mean in µs and
 * the ratio. Figures, not a test: it never fails on a number. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cocoon/bus.h"

#define ROUNDS 10000
#define WARMUP 200

/* The request is a typical control message: a probe watch with a readiness spec. */
static struct msg_probe_watch request = {
	.key = "default/web-0",
	.vm_ip = "10.88.0.7",
	.mac = "52:54:00:12:34:56",
	.os = "linux",
	.ssh_target = "root@10.88.0.7:22",
};

struct stats {
	double p50, p99, mean;
};

static uint64_t now_nsec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000 + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static struct stats summarize(uint64_t *ns, size_t n)
{
	double sum = 0;

	qsort(ns, n, sizeof *ns, cmp_u64);
	for (size_t i = 0; i < n; i++)
		sum += (double)ns[i];
	return (struct stats){
		.p50 = (double)ns[n / 2] / 1000,
		.p99 = (double)ns[n * 99 / 100] / 1000,
		.mean = sum / (double)n / 1000,
	};
}

/* ---- child: echo the baseline, then serve the bus until SIGTERM ---- */

static int on_request(struct bus_server *s, uint64_t id, const struct msg *m, void *userdata)
{
	return bus_server_reply(s, id, MSG_OK, NULL);
}

static int child_run(int fd, const char *endpoint, size_t reply_len)
{
	struct bus_server *s = NULL;
	char buf[MSG_FRAME_MAX], reply[256] = { 0 };
	sd_event *e = NULL;
	sigset_t mask;
	int r;

	for (int i = 0; i < WARMUP + ROUNDS; i++) {
		if (read(fd, buf, sizeof buf) <= 0 || write(fd, reply, reply_len) < 0)
			return 1;
	}
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	r = sd_event_new(&e);
	if (r >= 0)
		r = sd_event_add_signal(e, NULL, SIGTERM, NULL, NULL); /* NULL: exit the loop */
	if (r >= 0)
		r = bus_server_new(e, endpoint, on_request, NULL, &s);
	if (r >= 0)
		r = sd_event_loop(e);
	if (r < 0)
		fprintf(stderr, "bench-ipc: server: %s\n", strerror(-r));
	bus_server_free(s);
	sd_event_unref(e);
	return r < 0;
}

/* ---- parent: the baseline ping-pong ---- */

static int run_unix(int fd, size_t req_len, size_t reply_len, uint64_t *ns)
{
	char req[MSG_FRAME_MAX] = { 0 }, buf[256];

	for (int i = 0; i < WARMUP + ROUNDS; i++) {
		uint64_t t0 = now_nsec();

		if (write(fd, req, req_len) < 0 || read(fd, buf, sizeof buf) != (ssize_t)reply_len)
			return -EIO;
		if (i >= WARMUP)
			ns[i - WARMUP] = now_nsec() - t0;
	}
	return 0;
}

/* ---- parent: the same exchange through the bus, one call in flight at a time ---- */

struct bus_run {
	sd_event *event;
	uint64_t *ns;
	int done;
	uint64_t t0;
	int error;
};

static void on_reply(struct bus_client *c, int error, const struct msg *reply, void *userdata);

static void bus_next(struct bus_client *c, struct bus_run *b)
{
	int r;

	b->t0 = now_nsec();
	r = bus_client_call(c, MSG_PROBE_WATCH, &request, 0, on_reply, b);
	if (r < 0) {
		b->error = r;
		sd_event_exit(b->event, 0);
	}
}

static void on_reply(struct bus_client *c, int error, const struct msg *reply, void *userdata)
{
	struct bus_run *b = userdata;
	uint64_t dt = now_nsec() - b->t0;

	if (error < 0) {
		b->error = error;
		sd_event_exit(b->event, 0);
		return;
	}
	if (b->done >= WARMUP)
		b->ns[b->done - WARMUP] = dt;
	if (++b->done == WARMUP + ROUNDS) {
		sd_event_exit(b->event, 0);
		return;
	}
	bus_next(c, b);
}

static int run_bus(const char *endpoint, uint64_t *ns)
{
	struct bus_client *c = NULL;
	struct bus_run b = { .ns = ns };
	int r;

	r = sd_event_new(&b.event);
	if (r < 0)
		return r;
	r = bus_client_new(b.event, endpoint, &c);
	if (r >= 0) {
		bus_next(c, &b); /* the first call waits for the child's server to come up */
		r = sd_event_loop(b.event);
	}
	bus_client_free(c);
	sd_event_unref(b.event);
	return r < 0 ? r : b.error;
}

static void print_row(const char *name, struct stats s)
{
	printf("  %-32s p50 %8.1f µs   p99 %8.1f µs   mean %8.1f µs\n", name, s.p50, s.p99, s.mean);
}

int main(void)
{
	char dir[] = "/tmp/bench-ipc-XXXXXX", endpoint[160], path[128];
	uint64_t *ns_bus = calloc(ROUNDS, sizeof(uint64_t));
	uint64_t *ns_unix = calloc(ROUNDS, sizeof(uint64_t));
	struct buf req = BUF_INIT(0), rep = BUF_INIT(0);
	struct stats sb, su;
	int sp[2], status, r;
	pid_t pid;

	request.readiness = json_pack("{s:{s:i},s:i,s:i}", "tcpSocket", "port", 22, "periodSeconds",
				      5, "failureThreshold", 3);
	if (!ns_bus || !ns_unix || !request.readiness || !mkdtemp(dir) ||
	    msg_encode(MSG_PROBE_WATCH, &request, 1, &req) < 0 ||
	    msg_encode(MSG_OK, NULL, 1, &rep) < 0 ||
	    socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0) {
		fprintf(stderr, "bench-ipc: setup failed\n");
		return 1;
	}
	snprintf(path, sizeof path, "%s/bench.sock", dir);
	snprintf(endpoint, sizeof endpoint, "ipc://%s", path);

	/* Fork before either side touches nanomsg or sd-event: neither survives a fork. */
	pid = fork();
	if (pid < 0) {
		perror("bench-ipc: fork");
		return 1;
	}
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		close(sp[0]);
		_exit(child_run(sp[1], endpoint, rep.len));
	}
	close(sp[1]);

	r = run_unix(sp[0], req.len, rep.len, ns_unix);
	if (r >= 0)
		r = run_bus(endpoint, ns_bus);
	kill(pid, SIGTERM);
	waitpid(pid, &status, 0);
	close(sp[0]);
	rmdir(dir);
	if (r < 0) {
		fprintf(stderr, "bench-ipc: %s\n", strerror(-r));
		return 1;
	}

	sb = summarize(ns_bus, ROUNDS);
	su = summarize(ns_unix, ROUNDS);
	printf(
	    "bench-ipc: %d round trips between two processes, request %zu bytes, reply %zu bytes\n",
	    ROUNDS, req.len, rep.len);
	print_row("bus REQ/REP (nanomsg ipc://)", sb);
	print_row("AF_UNIX SOCK_SEQPACKET", su);
	printf("  %-32s p50 %7.1fx     p99 %7.1fx     mean %7.1fx\n", "ratio bus / unix",
	       sb.p50 / su.p50, sb.p99 / su.p99, sb.mean / su.mean);

	json_decref(request.readiness);
	buf_free(&req);
	buf_free(&rep);
	free(ns_bus);
	free(ns_unix);
	return 0;
}
