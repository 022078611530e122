/* bench-netd-lease: how long a new DHCP lease takes to reach a bus subscriber through netd.
 *
 * netd runs in a private network namespace (so it may create cni0 and its routes) with an
 * external dnsmasq, and this program plays dnsmasq: 200 times it adds a lease the way
 * dnsmasq records a DHCPACK (lease_update_file(): the file, held open, is truncated and
 * rewritten whole with the new lease first, then fsync'd) and times from the write to the
 * LEASE_GRANTED event at its own bus subscriber. The DHCP exchange itself is not included:
 * dnsmasq writes the file before it sends the ACK, so the figure is what netd adds to a
 * lease. The reference, from the same writes: the time until inotify reports the change to
 * a watch of our own — the floor for anything that watches the file. Prints p50/p99/mean
 * in µs. Figures, not a test: it never fails on a number; without root it says so and
 * exits 0. */
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include "cocoon/buf.h"
#include "cocoon/bus.h"
#include "cocoon/fsutil.h"

#define LEASES  200
#define WARMUP  10
#define SUBNET  "10.79.0" /* a /24: .2 … .254 */
#define TIMEOUT (2 * 1000000ULL)

extern char **environ;

enum {
	ACK_TO_EVENT,   /* file written and fsync'd (dnsmasq then sends the ACK) → event */
	WRITE_TO_EVENT, /* first byte of the rewrite → event */
	INOTIFY,        /* reference: write() → the inotify event is readable */
	FSYNC,          /* reference: the disk's share, fsync of the lease file */
	_SERIES_MAX,
};

struct bench {
	sd_event *event;
	int lease_fd, inotify_fd;
	char expect_mac[18];
	uint64_t t_event;
	uint64_t ns[_SERIES_MAX][LEASES];
	size_t n;
	unsigned lost;
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000 + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

static void report(const char *what, uint64_t *ns, size_t n)
{
	double sum = 0;

	qsort(ns, n, sizeof *ns, cmp_u64);
	for (size_t i = 0; i < n; i++)
		sum += (double)ns[i];
	printf("  %-44s p50 %7.0f µs   p99 %7.0f µs   mean %7.0f µs\n", what,
	       (double)ns[n / 2] / 1000, (double)ns[n * 99 / 100] / 1000, sum / (double)n / 1000);
}

static void on_event(struct bus_sub *s, const struct msg *m, void *userdata)
{
	struct bench *b = userdata;

	if (m->type == MSG_LEASE_GRANTED && streq(m->lease_granted.mac, b->expect_mac) &&
	    !b->t_event)
		b->t_event = now_ns();
}

/* Waits for the inotify event of the write just made (the reference: what any watcher of
 * the file can know, and when). */
static int wait_inotify(struct bench *b)
{
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	struct pollfd p = { .fd = b->inotify_fd, .events = POLLIN };

	if (poll(&p, 1, 1000) <= 0)
		return -ETIMEDOUT;
	/* Drain: the truncate, the write and the fsync each may add an event. */
	while (read(b->inotify_fd, buf, sizeof buf) > 0)
		;
	return 0;
}

/* Rewrite the lease file as dnsmasq does, with leases 0..i (the newest first); times[] gets
 * the moments of the first byte, the inotify event, and the end of the fsync. */
static int write_leases(struct bench *b, unsigned i, uint64_t times[3])
{
	struct buf text = BUF_INIT(0);
	time_t expiry = time(NULL) + 86400;
	int r = 0;

	for (unsigned k = i + 1; k-- > 0;)
		buf_printf(&text,
			   "%lld 52:54:00:79:%02x:%02x " SUBNET ".%u * 01:52:54:00:79:%02x:%02x\n",
			   (long long)expiry, k >> 8, k & 0xff, 2 + k, k >> 8, k & 0xff);
	snprintf(b->expect_mac, sizeof b->expect_mac, "52:54:00:79:%02x:%02x", i >> 8, i & 0xff);
	b->t_event = 0;
	times[0] = now_ns();
	if (lseek(b->lease_fd, 0, SEEK_SET) < 0 || ftruncate(b->lease_fd, 0) < 0 ||
	    write(b->lease_fd, text.data, text.len) != (ssize_t)text.len)
		r = -errno;
	if (r >= 0)
		r = wait_inotify(b);
	times[1] = now_ns();
	if (r >= 0 && fsync(b->lease_fd) < 0)
		r = -errno;
	times[2] = now_ns();
	buf_free(&text);
	return r;
}

/* Adds leases 0..LEASES+WARMUP-1, timing each after the warm-up ones. */
static int run_leases(struct bench *b)
{
	unsigned warm = 0;

	for (unsigned i = 0; i < LEASES + WARMUP; i++) {
		uint64_t t[3];
		int r = write_leases(b, i, t);

		if (r < 0)
			return fprintf(stderr, "cannot write the lease file: %s\n", strerror(-r)),
			       r;
		while (!b->t_event && now_ns() - t[0] < TIMEOUT * 1000)
			if (sd_event_run(b->event, 100 * 1000) < 0)
				return -EIO;
		/* The subscription connects in the background: the first events may be
		 * published before it is up, which is what the warm-up leases absorb. */
		if (i < WARMUP) {
			warm += b->t_event != 0;
			if (i == WARMUP - 1 && warm == 0)
				return fprintf(stderr, "no LEASE_GRANTED for any warm-up lease\n"),
				       -ETIMEDOUT;
			continue;
		}
		if (!b->t_event) {
			b->lost++;
			continue;
		}
		b->ns[ACK_TO_EVENT][b->n] = b->t_event - t[2];
		b->ns[WRITE_TO_EVENT][b->n] = b->t_event - t[0];
		b->ns[INOTIFY][b->n] = t[1] - t[0];
		b->ns[FSYNC][b->n++] = t[2] - t[1];
	}
	return 0;
}

static int write_pool(const char *tmp)
{
	struct buf text = BUF_INIT(0);
	char path[PATH_MAX], dir[256];
	int r;

	buf_printf(&text, "{\n  \"platform\": \"gke\",\n  \"nodeName\": \"bench\",\n"
			  "  \"subnet\": \"" SUBNET ".0/24\",\n  \"gateway\": \"" SUBNET ".1\",\n"
			  "  \"ips\": [");
	for (unsigned k = 2; k <= 254; k++)
		buf_printf(&text, "%s\"" SUBNET ".%u\"", k == 2 ? "" : ", ", k);
	buf_printf(&text, "],\n  \"updatedAt\": \"2026-01-01T00:00:00Z\"\n}\n");
	snprintf(dir, sizeof dir, "%s/root/var/lib/cocoon/net", tmp);
	snprintf(path, sizeof path, "%s/pool.json", dir);
	r = fs_mkdir_p(dir, 0755);
	if (r >= 0)
		r = fs_write_atomic(path, text.data, text.len, 0644);
	buf_free(&text);
	return r;
}

static pid_t start_netd(const char *tmp)
{
	char exe[PATH_MAX - 32], netd[PATH_MAX], log[PATH_MAX], root[PATH_MAX], run[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	posix_spawn_file_actions_t fa;
	pid_t pid;
	char *argv[] = { netd, NULL };
	char *envp[] = { root,
			 run,
			 "COCOON_NET_DNSMASQ=external",
			 "COCOON_NET_METRICS_ADDR=",
			 "COCOON_NET_SKIP_IPTABLES=yes",
			 "COCOON_NET_LOG_LEVEL=warning",
			 "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
			 NULL };

	if (n < 0)
		return -1;
	exe[n] = 0;
	*strrchr(exe, '/') = 0;
	snprintf(netd, sizeof netd, "%s/../bin/netd", exe);
	snprintf(log, sizeof log, "%s/netd.log", tmp);
	snprintf(root, sizeof root, "COCOON_NET_ROOT=%s/root", tmp);
	snprintf(run, sizeof run, "COCOON_RUN_DIR=%s/run", tmp);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 1, log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	posix_spawn_file_actions_adddup2(&fa, 1, 2);
	if (posix_spawn(&pid, netd, &fa, NULL, argv, envp) != 0)
		pid = -1;
	posix_spawn_file_actions_destroy(&fa);
	if (pid < 0)
		fprintf(stderr, "cannot run %s (build it first)\n", netd);
	return pid;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path) < 0 ? -1 : 0;
}

static int bench_run(struct bench *b, const char *tmp)
{
	char lease_path[PATH_MAX], lease_dir[256], run[PATH_MAX], ep[256];
	struct bus_sub *sub = NULL;
	int r;

	snprintf(lease_dir, sizeof lease_dir, "%s/root/var/lib/misc", tmp);
	snprintf(lease_path, sizeof lease_path, "%s/dnsmasq.leases", lease_dir);
	snprintf(run, sizeof run, "%s/run", tmp);
	setenv("COCOON_RUN_DIR", run, 1);
	if (fs_mkdir_p(lease_dir, 0755) < 0 || bus_endpoint("netd-events", ep, sizeof ep) < 0)
		return -EIO;
	b->lease_fd = open(lease_path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	b->inotify_fd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
	if (b->lease_fd < 0 || b->inotify_fd < 0 ||
	    inotify_add_watch(b->inotify_fd, lease_path, IN_MODIFY) < 0)
		r = -errno;
	else
		r = bus_sub_new(b->event, ep, on_event, NULL, b, &sub);
	if (r >= 0)
		r = run_leases(b);
	bus_sub_free(sub);
	close(b->lease_fd);
	close(b->inotify_fd);
	return r;
}

int main(void)
{
	char tmp[] = "/tmp/bench-netd-lease.XXXXXX";
	struct bench b = { .lease_fd = -1, .inotify_fd = -1 };
	int status = 0, r;
	pid_t netd;

	if (geteuid() != 0 || unshare(CLONE_NEWNET) < 0) {
		printf("bench-netd-lease: skipped (needs root for a private network namespace)\n");
		return 0;
	}
	if (!mkdtemp(tmp) || sd_event_new(&b.event) < 0)
		return 1;
	r = write_pool(tmp);
	netd = r < 0 ? -1 : start_netd(tmp);
	/* netd is up once its subscriber socket exists; the warm-up leases cover the rest. */
	for (int i = 0; netd > 0 && i < 200; i++) {
		char sock[PATH_MAX + 32];

		snprintf(sock, sizeof sock, "%s/run/netd-events.sock", tmp);
		if (access(sock, F_OK) == 0)
			break;
		usleep(50 * 1000);
	}
	r = netd > 0 ? bench_run(&b, tmp) : -EIO;
	if (netd > 0) {
		kill(netd, SIGTERM);
		waitpid(netd, &status, 0);
	}
	if (r >= 0 && b.n == 0)
		r = -ETIMEDOUT;
	if (r >= 0) {
		printf(
		    "bench-netd-lease: %d leases added to a dnsmasq lease file as dnsmasq writes "
		    "it; netd in a private netns (dnsmasq external); %u lost; netd exit %d\n",
		    LEASES, b.lost, WIFEXITED(status) ? WEXITSTATUS(status) : -1);
		report("ACK (file written + fsync'd) -> LEASE_GRANTED", b.ns[ACK_TO_EVENT], b.n);
		report("first byte written -> LEASE_GRANTED", b.ns[WRITE_TO_EVENT], b.n);
		report("reference: write() -> inotify event", b.ns[INOTIFY], b.n);
		report("reference: fsync() of the lease file", b.ns[FSYNC], b.n);
	} else
		fprintf(stderr, "bench-netd-lease failed: %s (netd: %s %d, log in %s/netd.log)\n",
			strerror(-r), WIFSIGNALED(status) ? "signal" : "exit",
			WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status), tmp);
	sd_event_unref(b.event);
	if (r >= 0)
		nftw(tmp, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	return r < 0;
}
