/* netd-bus: netd's bus from a shell script, for the integration tests and the benchmark.
 *
 *   netd-bus sub [COUNT [SECONDS]]   print netd's events (LEASE_GRANTED/LEASE_EXPIRED), one
 *                                    line each, until COUNT arrived (0: no limit), SECONDS
 *                                    passed (default 30) or SIGTERM; "READY" first, once
 *                                    subscribed
 *   netd-bus lookup MAC | release MAC | list | status | reload
 *                                    one request, the reply printed as one line (LEASE_ALL:
 *                                    one more line per lease); exit 0 on a reply, 1 on ERROR
 *                                    or timeout
 *
 * Lines are "TYPE key=value …"; an event line ends with recv_usec=<CLOCK_REALTIME µs when it
 * was received>, which the benchmark compares with the time it wrote the lease. Endpoints
 * come from bus_endpoint() (COCOON_NETD_BUS, COCOON_NETD_EVENTS_BUS, COCOON_RUN_DIR). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cocoon/bus.h"

static int exit_code = 1;
static unsigned remaining;

static uint64_t now_realtime(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static void print_msg(const struct msg *m)
{
	switch (m->type) {
	case MSG_LEASE_GRANTED:
		printf("LEASE_GRANTED seq=%llu mac=%s ip=%s expires_usec=%llu",
		       (unsigned long long)m->lease_granted.seq, m->lease_granted.mac,
		       m->lease_granted.ip, (unsigned long long)m->lease_granted.expires_usec);
		break;
	case MSG_LEASE_EXPIRED:
		printf("LEASE_EXPIRED seq=%llu mac=%s ip=%s",
		       (unsigned long long)m->lease_expired.seq, m->lease_expired.mac,
		       m->lease_expired.ip);
		break;
	case MSG_LEASE_INFO:
		printf("LEASE_INFO mac=%s ip=%s expires_usec=%llu\n", m->lease_info.mac,
		       m->lease_info.ip, (unsigned long long)m->lease_info.expires_usec);
		break;
	case MSG_LEASE_ALL:
		printf("LEASE_ALL seq=%llu n=%zu\n", (unsigned long long)m->lease_all.seq,
		       m->lease_all.n_leases);
		for (size_t i = 0; i < m->lease_all.n_leases; i++)
			printf("lease mac=%s ip=%s expires_usec=%llu\n", m->lease_all.leases[i].mac,
			       m->lease_all.leases[i].ip,
			       (unsigned long long)m->lease_all.leases[i].expires_usec);
		break;
	case MSG_NET_STATUS_REPLY:
		printf("NET_STATUS_REPLY platform=%s node=%s subnet=%s gateway=%s bridge=%s "
		       "pool_size=%llu active_leases=%llu\n",
		       m->net_status_reply.platform, m->net_status_reply.node,
		       m->net_status_reply.subnet, m->net_status_reply.gateway,
		       m->net_status_reply.bridge,
		       (unsigned long long)m->net_status_reply.pool_size,
		       (unsigned long long)m->net_status_reply.active_leases);
		break;
	case MSG_ERROR:
		printf("ERROR code=%d message=%s\n", m->error.code, m->error.message);
		break;
	default:
		printf("%s\n", msg_type_name(m->type));
	}
}

static void on_event(struct bus_sub *s, const struct msg *m, void *userdata)
{
	print_msg(m);
	printf(" recv_usec=%llu\n", (unsigned long long)now_realtime());
	fflush(stdout);
	if (remaining > 0 && --remaining == 0) {
		exit_code = 0;
		sd_event_exit(userdata, 0);
	}
}

static void on_reply(struct bus_client *c, int error, const struct msg *reply, void *userdata)
{
	if (reply)
		print_msg(reply);
	else
		printf("ERROR code=%d message=%s\n", error, strerror(-error));
	exit_code = error == 0 ? 0 : 1;
	sd_event_exit(userdata, 0);
}

static int on_timeout(sd_event_source *s, uint64_t usec, void *userdata)
{
	/* A subscriber without a count ends well at its deadline. */
	exit_code = remaining == 0 ? 0 : 1;
	return sd_event_exit(userdata, 0);
}

/* nanomsg gives no "subscribed" callback; a connect on a local ipc:// socket completes
 * within a few ms, so READY goes out after a short pause. */
static int on_ready(sd_event_source *s, uint64_t usec, void *userdata)
{
	printf("READY\n");
	fflush(stdout);
	return 0;
}

static int request(sd_event *e, const char *endpoint, int argc, char **argv)
{
	struct bus_client *c = NULL;
	struct msg_lease_lookup lookup = { .mac = argc > 2 ? argv[2] : NULL };
	struct msg_lease_release release = { .mac = lookup.mac };
	enum msg_type type;
	const void *body = NULL;
	int r;

	if (streq(argv[1], "lookup") && lookup.mac)
		type = MSG_LEASE_LOOKUP, body = &lookup;
	else if (streq(argv[1], "release") && lookup.mac)
		type = MSG_LEASE_RELEASE, body = &release;
	else if (streq(argv[1], "list"))
		type = MSG_LEASE_LIST;
	else if (streq(argv[1], "status"))
		type = MSG_NET_STATUS;
	else if (streq(argv[1], "reload"))
		type = MSG_NET_RELOAD;
	else
		return fprintf(stderr, "netd-bus: unknown request '%s'\n", argv[1]), 2;
	r = bus_client_new(e, endpoint, &c);
	if (r >= 0)
		r = bus_client_call(c, type, body, 5 * 1000000ULL, on_reply, e);
	if (r >= 0)
		r = sd_event_loop(e);
	bus_client_free(c);
	return r < 0 ? 1 : exit_code;
}

static int subscribe(sd_event *e, const char *endpoint, int argc, char **argv)
{
	struct bus_sub *s = NULL;
	unsigned seconds = argc > 3 ? (unsigned)atoi(argv[3]) : 30;
	int r;

	remaining = argc > 2 ? (unsigned)atoi(argv[2]) : 0;
	r = bus_sub_new(e, endpoint, on_event, NULL, e, &s);
	if (r >= 0)
		r = sd_event_add_time_relative(e, NULL, CLOCK_MONOTONIC, seconds * 1000000ULL, 0,
					       on_timeout, e);
	if (r >= 0)
		r = sd_event_add_time_relative(e, NULL, CLOCK_MONOTONIC, 200 * 1000ULL, 0, on_ready,
					       NULL);
	if (r >= 0)
		r = sd_event_loop(e);
	bus_sub_free(s);
	return r < 0 ? 1 : exit_code;
}

int main(int argc, char **argv)
{
	char endpoint[256];
	sd_event *e = NULL;
	sigset_t mask;
	int r;

	if (argc < 2)
		return fprintf(stderr, "usage: netd-bus sub [COUNT [SECONDS]] | lookup MAC | "
				       "release MAC | list | status | reload\n"),
		       2;
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	if (sd_event_default(&e) < 0)
		return 1;
	sd_event_add_signal(e, NULL, SIGTERM, NULL, NULL);
	sd_event_add_signal(e, NULL, SIGINT, NULL, NULL);
	if (streq(argv[1], "sub")) {
		exit_code = 0;
		r = bus_endpoint("netd-events", endpoint, sizeof endpoint);
		r = r < 0 ? 1 : subscribe(e, endpoint, argc, argv);
	} else {
		r = bus_endpoint("netd", endpoint, sizeof endpoint);
		r = r < 0 ? 1 : request(e, endpoint, argc, argv);
	}
	sd_event_unref(e);
	return r;
}
