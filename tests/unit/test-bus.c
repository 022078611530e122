/* bus: request/reply over ipc:// in a temp dir (sync, deferred, out of order, errors),
 * start order, timeouts, malformed frames from a raw nanomsg peer, caps, pub/sub delivery,
 * gap and stale detection, endpoints, fds, and callbacks that free their own object. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <nanomsg/nn.h>
#include <nanomsg/pubsub.h>
#include <nanomsg/reqrep.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cocoon/bus.h"

static char dir[64];
static sd_event *e;

static int setup(void **state)
{
	snprintf(dir, sizeof dir, "/tmp/test-bus-XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	umask(022);
	unsetenv("COCOON_RUN_DIR");
	unsetenv("COCOON_NETD_BUS");
	return sd_event_new(&e) < 0 ? -1 : 0;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static int teardown(void **state)
{
	e = sd_event_unref(e);
	return nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static uint64_t now_usec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static const char *endpoint(const char *name)
{
	static char buf[4][128];
	static int i;

	i = (i + 1) % 4;
	snprintf(buf[i], sizeof buf[i], "ipc://%s/%s.sock", dir, name);
	return buf[i];
}

/* Run the loop until *counter reaches want or timeout_ms passes. */
static bool run_until(const int *counter, int want, int timeout_ms)
{
	uint64_t end = now_usec() + (uint64_t)timeout_ms * 1000;

	while (*counter < want && now_usec() < end)
		assert_true(sd_event_run(e, 10 * 1000) >= 0);
	return *counter >= want;
}

static void run_for(int ms)
{
	int never = 0;

	run_until(&never, 1, ms);
}

/* ---- a test server: LEASE_LOOKUP answered now, PROBE_FORGET deferred, rest refused ---- */

struct server_state {
	int handled;
	uint64_t deferred[8];
	int n_deferred;
	bool free_in_handler;
};

static int handler(struct bus_server *s, uint64_t id, const struct msg *m, void *userdata)
{
	struct server_state *st = userdata;
	struct msg_lease_info info = { .mac = "52:54:00:00:00:01",
				       .ip = "10.88.0.7",
				       .expires_usec = 1700000000000000ULL };

	st->handled++;
	if (st->free_in_handler) {
		bus_server_free(s);
		return -EIO;
	}
	switch (m->type) {
	case MSG_LEASE_LOOKUP:
		if (!streq(m->lease_lookup.mac, info.mac))
			return -ENOENT;
		assert_int_equal(bus_server_reply(s, id, MSG_LEASE_INFO, &info), 0);
		assert_int_equal(bus_server_reply(s, id, MSG_OK, NULL), -ENOENT); /* once only */
		return 0;
	case MSG_PROBE_FORGET:
		assert_true(st->n_deferred < 8);
		st->deferred[st->n_deferred++] = id;
		return 0;
	case MSG_NET_RELOAD:
		return bus_server_reply(s, id, MSG_OK, NULL);
	default:
		return -EOPNOTSUPP;
	}
}

struct reply {
	int done;
	int error;
	enum msg_type type;
	char text[128]; /* the IP of a LEASE_INFO, the message of an ERROR */
	bool free_client;
};

static void on_reply(struct bus_client *c, int error, const struct msg *m, void *userdata)
{
	struct reply *r = userdata;

	r->done++;
	r->error = error;
	r->type = m ? m->type : 0;
	r->text[0] = 0;
	if (m && m->type == MSG_LEASE_INFO)
		snprintf(r->text, sizeof r->text, "%s", m->lease_info.ip);
	if (m && m->type == MSG_ERROR)
		snprintf(r->text, sizeof r->text, "%s", m->error.message);
	if (r->free_client)
		bus_client_free(c);
}

static int lookup(struct bus_client *c, const char *mac, uint64_t timeout, struct reply *r)
{
	struct msg_lease_lookup q = { .mac = (char *)mac };

	return bus_client_call(c, MSG_LEASE_LOOKUP, &q, timeout, on_reply, r);
}

/* ---- tests ---- */

static void test_endpoint(void **state)
{
	char buf[256];

	assert_int_equal(bus_endpoint("netd", buf, sizeof buf), 0);
	assert_string_equal(buf, "ipc:///run/cocoon/netd.sock");
	setenv("COCOON_RUN_DIR", "/tmp/rt", 1);
	assert_int_equal(bus_endpoint("probed", buf, sizeof buf), 0);
	assert_string_equal(buf, "ipc:///tmp/rt/probed.sock");
	setenv("COCOON_NETD_BUS", "ipc:///elsewhere/n.sock", 1);
	assert_int_equal(bus_endpoint("netd", buf, sizeof buf), 0);
	assert_string_equal(buf, "ipc:///elsewhere/n.sock");
	setenv("COCOON_COCOON_NET_BUS", "tcp://127.0.0.1:5555", 1);
	assert_int_equal(bus_endpoint("cocoon-net", buf, sizeof buf), 0);
	assert_string_equal(buf, "tcp://127.0.0.1:5555");
	unsetenv("COCOON_COCOON_NET_BUS");
	unsetenv("COCOON_NETD_BUS");

	assert_int_equal(bus_endpoint("../etc", buf, sizeof buf), -EINVAL);
	assert_int_equal(bus_endpoint("NetD", buf, sizeof buf), -EINVAL);
	assert_int_equal(bus_endpoint("", buf, sizeof buf), -EINVAL);
	assert_int_equal(bus_endpoint("probed", buf, 20), -ENAMETOOLONG);
	/* a path longer than sun_path cannot be bound, so it is refused here */
	setenv("COCOON_RUN_DIR",
	       "/tmp/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	       "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
	       1);
	assert_int_equal(bus_endpoint("probed", buf, sizeof buf), -ENAMETOOLONG);
	unsetenv("COCOON_RUN_DIR");
}

static void test_request_reply(void **state)
{
	_cleanup_(bus_server_freep) struct bus_server *s = NULL;
	_cleanup_(bus_client_freep) struct bus_client *c = NULL;
	struct server_state st = {};
	struct reply r1 = {}, r2 = {}, r3 = {};
	char sub[128], ep[160];
	struct stat sb;

	/* the bind side creates the socket's directory */
	snprintf(sub, sizeof sub, "%s/run/cocoon", dir);
	snprintf(ep, sizeof ep, "ipc://%s/netd.sock", sub);
	assert_int_equal(bus_server_new(e, ep, handler, &st, &s), 0);
	assert_int_equal(stat(sub, &sb), 0);
	assert_int_equal(sb.st_mode & 07777, 0755);
	assert_int_equal(bus_client_new(e, ep, &c), 0);

	assert_true(lookup(c, "52:54:00:00:00:01", 0, &r1) > 0);
	assert_true(lookup(c, "52:54:00:00:00:99", 0, &r2) > 0);
	assert_true(bus_client_call(c, MSG_NET_STATUS, NULL, 0, on_reply, &r3) > 0);
	assert_true(run_until(&r3.done, 1, 2000));
	assert_true(run_until(&r1.done, 1, 2000) && run_until(&r2.done, 1, 2000));

	assert_int_equal(r1.error, 0);
	assert_int_equal(r1.type, MSG_LEASE_INFO);
	assert_string_equal(r1.text, "10.88.0.7");
	/* a handler's negative return becomes an ERROR reply naming the request */
	assert_int_equal(r2.error, -ENOENT);
	assert_int_equal(r2.type, MSG_ERROR);
	assert_string_equal(r2.text, "LEASE_LOOKUP: No such file or directory");
	assert_int_equal(r3.error, -EOPNOTSUPP);
	assert_string_equal(r3.text, "NET_STATUS: Operation not supported");

	assert_int_equal(st.handled, 3);
	assert_int_equal(bus_server_stats(s)->received, 3);
	assert_int_equal(bus_server_stats(s)->sent, 3);
	assert_int_equal(bus_client_stats(c)->sent, 3);
	assert_int_equal(bus_client_stats(c)->received, 3);
	assert_int_equal(bus_server_stats(s)->dropped_malformed, 0);
	/* every callback ran exactly once */
	run_for(50);
	assert_int_equal(r1.done + r2.done + r3.done, 3);
}

static void test_client_before_server(void **state)
{
	_cleanup_(bus_server_freep) struct bus_server *s = NULL;
	_cleanup_(bus_client_freep) struct bus_client *c = NULL;
	struct server_state st = {};
	struct reply r = {};

	assert_int_equal(bus_client_new(e, endpoint("late"), &c), 0);
	assert_true(lookup(c, "52:54:00:00:00:01", 5000000, &r) > 0);
	run_for(300);
	assert_int_equal(r.done, 0);
	assert_int_equal(bus_client_stats(c)->sent, 0); /* waiting in the queue */

	assert_int_equal(bus_server_new(e, endpoint("late"), handler, &st, &s), 0);
	assert_true(run_until(&r.done, 1, 3000));
	assert_int_equal(r.error, 0);
	assert_string_equal(r.text, "10.88.0.7");
	assert_int_equal(bus_client_stats(c)->sent, 1);
}

static void test_timeout(void **state)
{
	_cleanup_(bus_server_freep) struct bus_server *s = NULL;
	_cleanup_(bus_client_freep) struct bus_client *c = NULL;
	struct msg_probe_forget forget = { .key = "default/web-0" };
	struct server_state st = {};
	struct reply r = {}, r2 = {};
	uint64_t t0;

	/* nobody listening */
	assert_int_equal(bus_client_new(e, endpoint("nobody"), &c), 0);
	t0 = now_usec();
	assert_true(lookup(c, "52:54:00:00:00:01", 100000, &r) > 0);
	assert_true(run_until(&r.done, 1, 2000));
	assert_int_equal(r.error, -ETIMEDOUT);
	assert_int_equal(r.type, 0);
	assert_true(now_usec() - t0 >= 100000);
	bus_client_free(c);
	c = NULL;

	/* a server that defers and answers too late: the late reply is dropped */
	assert_int_equal(bus_server_new(e, endpoint("slow"), handler, &st, &s), 0);
	assert_int_equal(bus_client_new(e, endpoint("slow"), &c), 0);
	assert_true(bus_client_call(c, MSG_PROBE_FORGET, &forget, 150000, on_reply, &r2) > 0);
	assert_true(run_until(&st.n_deferred, 1, 2000));
	assert_true(run_until(&r2.done, 1, 2000));
	assert_int_equal(r2.error, -ETIMEDOUT);
	assert_int_equal(bus_server_reply(s, st.deferred[0], MSG_OK, NULL), 0);
	run_for(200);
	assert_int_equal(r2.done, 1);
	assert_int_equal(bus_client_stats(c)->dropped_unmatched, 1);
}

static void test_deferred_out_of_order(void **state)
{
	_cleanup_(bus_server_freep) struct bus_server *s = NULL;
	_cleanup_(bus_client_freep) struct bus_client *c = NULL;
	static const char *keys[] = { "ns/a", "ns/b", "ns/c" };
	struct server_state st = {};
	struct reply r[3] = {};
	int total = 0;

	assert_int_equal(bus_server_new(e, endpoint("probed"), handler, &st, &s), 0);
	assert_int_equal(bus_client_new(e, endpoint("probed"), &c), 0);
	for (int i = 0; i < 3; i++) {
		struct msg_probe_forget f = { .key = (char *)keys[i] };

		assert_true(bus_client_call(c, MSG_PROBE_FORGET, &f, 0, on_reply, &r[i]) > 0);
	}
	/* all three are in flight at once, then answered last first */
	assert_true(run_until(&st.n_deferred, 3, 2000));
	for (int i = 2; i >= 0; i--)
		assert_int_equal(bus_server_reply_error(s, st.deferred[i], EIO, keys[i]), 0);
	assert_int_equal(bus_server_reply(s, st.deferred[0], MSG_OK, NULL), -ENOENT);
	for (int tries = 0; tries < 200 && total < 3; tries++) {
		run_for(10);
		total = r[0].done + r[1].done + r[2].done;
	}
	for (int i = 0; i < 3; i++) {
		assert_int_equal(r[i].done, 1);
		assert_int_equal(r[i].error, -EIO);
		assert_string_equal(r[i].text, keys[i]);
	}
}

static void test_server_busy(void **state)
{
	_cleanup_(bus_server_freep) struct bus_server *s = NULL;
	_cleanup_(bus_client_freep) struct bus_client *c = NULL;
	struct msg_probe_forget f = { .key = "ns/a" };
	struct server_state st = {};
	struct reply r1 = {}, r2 = {};

	assert_int_equal(bus_server_new(e, endpoint("busy"), handler, &st, &s), 0);
	bus_server_set_limits(s, 0, 1, 0);
	assert_int_equal(bus_client_new(e, endpoint("busy"), &c), 0);
	assert_true(bus_client_call(c, MSG_PROBE_FORGET, &f, 0, on_reply, &r1) > 0);
	assert_true(run_until(&st.n_deferred, 1, 2000));
	assert_true(bus_client_call(c, MSG_PROBE_FORGET, &f, 0, on_reply, &r2) > 0);
	assert_true(run_until(&r2.done, 1, 2000));
	assert_int_equal(r2.error, -EBUSY);
	assert_string_equal(r2.text, "server busy: too many requests pending");
	assert_int_equal(st.handled, 1);
	assert_int_equal(bus_server_stats(s)->dropped_queue_full, 1);
	assert_int_equal(r1.done, 0);
}

static void test_server_forgets_old_requests(void **state)
{
	_cleanup_(bus_server_freep) struct bus_server *s = NULL;
	_cleanup_(bus_client_freep) struct bus_client *c = NULL;
	struct msg_probe_forget f = { .key = "ns/a" };
	struct server_state st = {};
	struct reply r1 = {}, r2 = {};

	assert_int_equal(bus_server_new(e, endpoint("forget"), handler, &st, &s), 0);
	bus_server_set_limits(s, 0, 1, 100000);
	assert_int_equal(bus_client_new(e, endpoint("forget"), &c), 0);
	assert_true(bus_client_call(c, MSG_PROBE_FORGET, &f, 0, on_reply, &r1) > 0);
	assert_true(run_until(&st.n_deferred, 1, 2000));
	run_for(150);
	/* the first one is past its time: the second takes its place instead of EBUSY */
	assert_true(bus_client_call(c, MSG_PROBE_FORGET, &f, 0, on_reply, &r2) > 0);
	assert_true(run_until(&st.n_deferred, 2, 2000));
	assert_int_equal(bus_server_reply(s, st.deferred[0], MSG_OK, NULL), -ENOENT);
	assert_int_equal(bus_server_reply(s, st.deferred[1], MSG_OK, NULL), 0);
	assert_true(run_until(&r2.done, 1, 2000));
	assert_int_equal(r2.error, 0);
	assert_int_equal(r2.type, MSG_OK);
	assert_int_equal(r1.done, 0);
}

/* Poll a raw nanomsg socket without blocking the loop the server runs on. */
static int raw_recv(int sock, void *buf, size_t n, int timeout_ms)
{
	uint64_t end = now_usec() + (uint64_t)timeout_ms * 1000;

	while (now_usec() < end) {
		int k = nn_recv(sock, buf, n, NN_DONTWAIT);

		if (k >= 0)
			return k;
		assert_int_equal(nn_errno(), EAGAIN);
		assert_true(sd_event_run(e, 5000) >= 0);
	}
	return -ETIMEDOUT;
}

static void test_garbage_frames(void **state)
{
	_cleanup_(bus_server_freep) struct bus_server *s = NULL;
	_cleanup_(bus_client_freep) struct bus_client *c = NULL;
	static const char bad[] = "\xc0\x01\x02\x01\x02\x00\x00\x00\x2a\x00\x00\x00{}";
	struct server_state st = {};
	struct reply r = {};
	struct msg *m = NULL;
	char buf[512];
	int raw, k, dropped = 0;

	assert_int_equal(bus_server_new(e, endpoint("netd"), handler, &st, &s), 0);
	raw = nn_socket(AF_SP, NN_REQ);
	assert_true(raw >= 0);
	assert_true(nn_connect(raw, endpoint("netd")) >= 0);

	/* not a frame at all: counted, dropped, no reply, the handler never sees it */
	assert_int_equal(nn_send(raw, "garbage", 7, 0), 7);
	for (int i = 0; i < 200 && !dropped; i++) {
		run_for(10);
		dropped = (int)bus_server_stats(s)->dropped_malformed;
	}
	assert_int_equal(dropped, 1);
	assert_int_equal(raw_recv(raw, buf, sizeof buf, 200), -ETIMEDOUT);

	/* a good header with a bad body: dropped too, but answered with the decoder's error */
	assert_int_equal(nn_send(raw, bad, sizeof bad - 1, 0), (int)sizeof bad - 1);
	k = raw_recv(raw, buf, sizeof buf, 2000);
	assert_true(k > 0);
	assert_int_equal(msg_decode(buf, (size_t)k, &m, NULL), 0);
	assert_int_equal(m->type, MSG_ERROR);
	assert_int_equal(m->reqid, 42);
	assert_int_equal(m->error.code, -ENODATA);
	assert_string_equal(m->error.message, "PROBE_FORGET: field 'key' missing");
	msg_free(m);
	assert_int_equal(bus_server_stats(s)->dropped_malformed, 2);
	assert_int_equal(st.handled, 0);
	nn_close(raw);

	/* and the next valid request still works */
	assert_int_equal(bus_client_new(e, endpoint("netd"), &c), 0);
	assert_true(lookup(c, "52:54:00:00:00:01", 0, &r) > 0);
	assert_true(run_until(&r.done, 1, 2000));
	assert_int_equal(r.error, 0);
	assert_int_equal(st.handled, 1);
}

static void test_queue_caps(void **state)
{
	_cleanup_(bus_server_freep) struct bus_server *s = NULL;
	_cleanup_(bus_client_freep) struct bus_client *c = NULL, *c2 = NULL;
	struct server_state st = {};
	struct reply r[4] = {}, p[3] = {};

	/* no server yet: requests wait in the send queue, which holds two */
	assert_int_equal(bus_client_new(e, endpoint("capped"), &c), 0);
	bus_client_set_limits(c, 2, 8);
	assert_true(lookup(c, "52:54:00:00:00:01", 80000, &r[0]) > 0);
	assert_true(lookup(c, "52:54:00:00:00:01", 5000000, &r[1]) > 0);
	assert_int_equal(lookup(c, "52:54:00:00:00:01", 0, &r[2]), -ENOBUFS);
	assert_int_equal(bus_client_stats(c)->dropped_queue_full, 1);
	/* a queued request that times out leaves the queue, making room */
	assert_true(run_until(&r[0].done, 1, 2000));
	assert_int_equal(r[0].error, -ETIMEDOUT);
	assert_true(lookup(c, "52:54:00:00:00:01", 5000000, &r[3]) > 0);

	/* the pending cap counts calls awaiting a reply, sent or not */
	assert_int_equal(bus_client_new(e, endpoint("capped"), &c2), 0);
	bus_client_set_limits(c2, 10, 2);
	assert_true(lookup(c2, "52:54:00:00:00:01", 0, &p[0]) > 0);
	assert_true(lookup(c2, "52:54:00:00:00:01", 0, &p[1]) > 0);
	assert_int_equal(lookup(c2, "52:54:00:00:00:01", 0, &p[2]), -ENOBUFS);
	assert_int_equal(bus_client_stats(c2)->dropped_queue_full, 1);

	/* the server comes up: everything queued is delivered, and nothing else */
	assert_int_equal(bus_server_new(e, endpoint("capped"), handler, &st, &s), 0);
	assert_true(run_until(&st.handled, 4, 3000));
	assert_true(run_until(&r[3].done, 1, 2000));
	assert_true(run_until(&p[1].done, 1, 2000));
	assert_int_equal(r[1].done + r[3].done + p[0].done + p[1].done, 4);
	assert_int_equal(r[2].done + p[2].done, 0);
	assert_int_equal(r[1].error, 0);
	assert_int_equal(r[0].done, 1);
	run_for(50);
	assert_int_equal(st.handled, 4);
}

static void test_max_frame(void **state)
{
	_cleanup_(bus_server_freep) struct bus_server *s = NULL;
	_cleanup_(bus_client_freep) struct bus_client *c = NULL;
	struct msg_probe_forget f = { .key = "ns/a" };
	struct msg_probe_watch w = {
		.key = "ns/a", .vm_ip = "10.0.0.1", .mac = "m", .os = "linux"
	};
	struct buf b = BUF_INIT(0);
	struct server_state st = {};
	struct reply r = {};
	char *pad;
	size_t n;

	/* a frame of exactly MSG_FRAME_MAX crosses the bus (the SP header does not eat into it) */
	w.readiness = json_pack("{s:s}", "x", "");
	assert_int_equal(msg_encode(MSG_PROBE_WATCH, &w, 1, &b), 0);
	n = MSG_FRAME_MAX - b.len;
	pad = calloc(1, n + 1);
	memset(pad, 'p', n);
	json_object_set_new(w.readiness, "x", json_string(pad));
	buf_reset(&b);
	assert_int_equal(msg_encode(MSG_PROBE_WATCH, &w, 1, &b), 0);
	assert_int_equal(b.len, MSG_FRAME_MAX);

	assert_int_equal(bus_server_new(e, endpoint("big"), handler, &st, &s), 0);
	assert_int_equal(bus_client_new(e, endpoint("big"), &c), 0);
	assert_true(bus_client_call(c, MSG_PROBE_WATCH, &w, 0, on_reply, &r) > 0);
	assert_true(run_until(&r.done, 1, 3000));
	assert_int_equal(r.error, -EOPNOTSUPP); /* it arrived whole and was handled */
	assert_int_equal(st.handled, 1);
	/* one byte more does not even leave */
	pad[n - 1] = 0;
	json_object_set_new(w.readiness, "x", json_string(pad));
	free(pad);
	json_object_set_new(w.readiness, "y", json_string("")); /* +7 bytes */
	assert_int_equal(bus_client_call(c, MSG_PROBE_WATCH, &w, 0, on_reply, &r), -EMSGSIZE);
	assert_int_equal(bus_client_call(c, MSG_PROBE_FORGET, &f, 0, on_reply, &r) > 0, true);
	json_decref(w.readiness);
	buf_free(&b);
}

/* ---- pub/sub ---- */

struct sub_state {
	int events, gaps;
	uint64_t last_seq, gap_expected, gap_got;
	char last_key[64];
	bool free_sub;
};

static void on_event(struct bus_sub *s, const struct msg *m, void *userdata)
{
	struct sub_state *st = userdata;

	assert_int_equal(msg_get_seq(m, &st->last_seq), 0);
	if (m->type == MSG_PROBE_TRANSITION)
		snprintf(st->last_key, sizeof st->last_key, "%s", m->probe_transition.key);
	st->events++;
	if (st->free_sub)
		bus_sub_free(s);
}

static void on_gap(struct bus_sub *s, uint64_t expected, uint64_t got, void *userdata)
{
	struct sub_state *st = userdata;

	st->gaps++;
	st->gap_expected = expected;
	st->gap_got = got;
}

static void test_pub_sub(void **state)
{
	_cleanup_(bus_pub_freep) struct bus_pub *p = NULL;
	_cleanup_(bus_sub_freep) struct bus_sub *s = NULL;
	struct msg_probe_transition t = { .key = "ns/warmup", .reason = "r", .ts_usec = 1 };
	struct msg_probe_forget f = { .key = "ns/a" };
	struct sub_state st = {};
	uint64_t first;
	char key[32];
	int warm;

	assert_int_equal(bus_pub_new(e, endpoint("events"), &p), 0);
	assert_int_equal(bus_sub_new(e, endpoint("events"), on_event, on_gap, &st, &s), 0);
	/* events before the subscriber connects are lost: publish until one arrives */
	for (int i = 0; i < 200 && st.events == 0; i++) {
		assert_int_equal(bus_pub_publish(p, MSG_PROBE_TRANSITION, &t), 0);
		run_for(10);
	}
	/* under load two warm-up events can land in one window; later ones follow in order */
	warm = st.events;
	assert_true(warm >= 1);
	/* no baseline yet: the first event is reported as a gap so the caller fetches state */
	assert_int_equal(st.gaps, 1);
	assert_int_equal(st.gap_expected, 0);
	assert_true(st.gap_got <= st.last_seq && st.last_seq - st.gap_got == (uint64_t)(warm - 1));
	first = st.last_seq;
	assert_true(first > 1600000000000000ULL); /* seeded from the realtime clock */

	for (int i = 0; i < 5; i++) {
		snprintf(key, sizeof key, "ns/pod-%d", i);
		t.key = key;
		t.seq = 12345; /* ignored: the publisher numbers its events */
		assert_int_equal(bus_pub_publish(p, MSG_PROBE_TRANSITION, &t), 0);
	}
	assert_true(run_until(&st.events, warm + 5, 2000));
	assert_string_equal(st.last_key, "ns/pod-4");
	assert_int_equal(st.last_seq, bus_pub_seq(p));
	assert_int_equal(st.gaps, 1);
	assert_int_equal(bus_sub_stats(s)->gaps, 1);
	assert_int_equal(bus_pub_publish(p, MSG_PROBE_FORGET, &f), -EINVAL);
	assert_int_equal(bus_pub_seq(p), st.last_seq); /* a refused type uses no number */
}

/* A raw PUB socket sends exactly the sequence numbers a test wants. */
static void raw_publish(int sock, uint64_t seq)
{
	struct msg_lease_expired ev = { .mac = "52:54:00:00:00:01", .ip = "10.88.0.7" };
	struct buf b = BUF_INIT(0);

	assert_int_equal(msg_encode_event(MSG_LEASE_EXPIRED, &ev, seq, &b), 0);
	assert_int_equal(nn_send(sock, b.data, b.len, 0), (int)b.len);
	buf_free(&b);
}

static int seen(struct bus_sub *s, struct sub_state *st)
{
	const struct bus_stats *x = bus_sub_stats(s);

	return st->events + (int)(x->dropped_stale + x->dropped_malformed);
}

static void expect_after(int sock, struct bus_sub *s, struct sub_state *st, uint64_t seq)
{
	int want = seen(s, st) + 1;

	raw_publish(sock, seq);
	for (int i = 0; i < 200 && seen(s, st) < want; i++)
		run_for(5);
	assert_int_equal(seen(s, st), want);
}

static void test_sub_gaps(void **state)
{
	_cleanup_(bus_sub_freep) struct bus_sub *s = NULL;
	struct sub_state st = {};
	int raw;

	raw = nn_socket(AF_SP, NN_PUB);
	assert_true(raw >= 0);
	assert_true(nn_bind(raw, endpoint("rawpub")) >= 0);
	assert_int_equal(bus_sub_new(e, endpoint("rawpub"), on_event, on_gap, &st, &s), 0);
	for (int i = 0; i < 200 && st.events == 0; i++) {
		raw_publish(raw, 100);
		run_for(10);
	}
	assert_int_equal(st.events, 1);
	run_for(50); /* repeats of 100 still in flight are stale */
	st.gaps = 0;

	expect_after(raw, s, &st, 101);
	assert_int_equal(st.gaps, 0);
	assert_int_equal(st.last_seq, 101);
	expect_after(raw, s, &st, 103); /* 102 lost */
	assert_int_equal(st.gaps, 1);
	assert_int_equal(st.gap_expected, 102);
	assert_int_equal(st.gap_got, 103);
	assert_int_equal(st.last_seq, 103); /* the event is delivered after the gap */
	expect_after(raw, s, &st, 102);     /* late: dropped */
	assert_int_equal(st.last_seq, 103);

	/* after a state fetch as of 200, older events are stale and 201 follows on */
	bus_sub_set_seq(s, 200);
	expect_after(raw, s, &st, 150);
	expect_after(raw, s, &st, 200);
	assert_int_equal(st.last_seq, 103);
	expect_after(raw, s, &st, 201);
	assert_int_equal(st.last_seq, 201);
	assert_int_equal(st.gaps, 1);

	/* far behind: a publisher restarted with its clock set back → a gap, not silence */
	bus_sub_set_seq(s, 1000000);
	expect_after(raw, s, &st, 5);
	assert_int_equal(st.gaps, 2);
	assert_int_equal(st.gap_expected, 1000001);
	assert_int_equal(st.last_seq, 5);

	/* events without a seq, and garbage, are counted and dropped */
	{
		struct msg_probe_forget f = { .key = "ns/a" };
		struct buf b = BUF_INIT(0);
		int want = seen(s, &st) + 2;

		assert_int_equal(msg_encode(MSG_PROBE_FORGET, &f, 0, &b), 0);
		assert_int_equal(nn_send(raw, b.data, b.len, 0), (int)b.len);
		assert_int_equal(nn_send(raw, "junk", 4, 0), 4);
		for (int i = 0; i < 200 && seen(s, &st) < want; i++)
			run_for(5);
		buf_free(&b);
	}
	assert_int_equal(bus_sub_stats(s)->dropped_malformed, 2);
	assert_int_equal(bus_sub_stats(s)->dropped_stale >= 3, true);
	expect_after(raw, s, &st, 6);
	assert_int_equal(st.last_seq, 6);
	assert_int_equal(st.gaps, 2);
	nn_close(raw);
}

/* ---- object lifetime, fds ---- */

static void test_free_from_callbacks(void **state)
{
	struct bus_server *s = NULL, *s2 = NULL;
	struct bus_client *c = NULL, *c2 = NULL;
	struct bus_pub *p = NULL;
	struct bus_sub *sub = NULL;
	struct msg_probe_transition t = { .key = "ns/a", .reason = "r" };
	struct server_state st = {}, st2 = { .free_in_handler = true };
	struct reply r = { .free_client = true }, r2 = { .free_client = true }, r3 = {};
	struct sub_state ss = { .free_sub = true };

	/* a reply callback and a timeout callback free their client */
	assert_int_equal(bus_server_new(e, endpoint("f1"), handler, &st, &s), 0);
	assert_int_equal(bus_client_new(e, endpoint("f1"), &c), 0);
	assert_true(lookup(c, "52:54:00:00:00:01", 0, &r) > 0);
	assert_true(lookup(c, "52:54:00:00:00:01", 0, &r3) > 0); /* dropped with the client */
	assert_true(run_until(&r.done, 1, 2000));
	assert_int_equal(bus_client_new(e, endpoint("nobody"), &c2), 0);
	assert_true(lookup(c2, "52:54:00:00:00:01", 50000, &r2) > 0);
	assert_true(run_until(&r2.done, 1, 2000));
	run_for(50);
	assert_int_equal(r3.done, 0);
	bus_server_free(s);

	/* a handler frees its server */
	assert_int_equal(bus_server_new(e, endpoint("f2"), handler, &st2, &s2), 0);
	assert_int_equal(bus_client_new(e, endpoint("f2"), &c), 0);
	r = (struct reply){};
	assert_true(lookup(c, "52:54:00:00:00:01", 300000, &r) > 0);
	assert_true(run_until(&st2.handled, 1, 2000));
	assert_true(run_until(&r.done, 1, 2000));
	assert_int_equal(r.error, -ETIMEDOUT);
	bus_client_free(c);

	/* an event callback frees its subscriber */
	assert_int_equal(bus_pub_new(e, endpoint("f3"), &p), 0);
	assert_int_equal(bus_sub_new(e, endpoint("f3"), on_event, NULL, &ss, &sub), 0);
	for (int i = 0; i < 200 && ss.events == 0; i++) {
		assert_int_equal(bus_pub_publish(p, MSG_PROBE_TRANSITION, &t), 0);
		run_for(10);
	}
	assert_int_equal(ss.events, 1);
	assert_int_equal(bus_pub_publish(p, MSG_PROBE_TRANSITION, &t), 0);
	run_for(50);
	assert_int_equal(ss.events, 1);
	bus_pub_free(p);
}

static int count_fds_without_cloexec(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	int n = 0;

	assert_non_null(d);
	while ((de = readdir(d))) {
		int fd = atoi(de->d_name);

		if (de->d_name[0] == '.' || fd == dirfd(d))
			continue;
		if (!(fcntl(fd, F_GETFD) & FD_CLOEXEC))
			n++;
	}
	closedir(d);
	return n;
}

static void test_fds_cloexec(void **state)
{
	_cleanup_(bus_server_freep) struct bus_server *s = NULL;
	_cleanup_(bus_client_freep) struct bus_client *c = NULL;
	_cleanup_(bus_pub_freep) struct bus_pub *p = NULL;
	_cleanup_(bus_sub_freep) struct bus_sub *sub = NULL;
	struct server_state st = {};
	struct sub_state ss = {};
	struct reply r = {};
	int before = count_fds_without_cloexec();

	assert_int_equal(bus_server_new(e, endpoint("fd"), handler, &st, &s), 0);
	assert_int_equal(bus_client_new(e, endpoint("fd"), &c), 0);
	assert_int_equal(bus_pub_new(e, endpoint("fdp"), &p), 0);
	assert_int_equal(bus_sub_new(e, endpoint("fdp"), on_event, on_gap, &ss, &sub), 0);
	assert_true(lookup(c, "52:54:00:00:00:01", 0, &r) > 0);
	assert_true(run_until(&r.done, 1, 2000)); /* connections established */
	assert_int_equal(count_fds_without_cloexec(), before);
}

static void test_bad_arguments(void **state)
{
	struct bus_server *s = NULL;
	struct bus_client *c = NULL;
	struct server_state st = {};
	char ep[160];

	assert_int_equal(bus_server_new(e, "bogus://x", handler, &st, &s), -EPROTONOSUPPORT);
	assert_null(s);
	assert_int_equal(bus_client_new(e, "no-scheme", &c), -EINVAL);
	assert_null(c);
	assert_int_equal(bus_server_new(NULL, endpoint("x"), handler, &st, &s), -EINVAL);
	/* two servers on one endpoint */
	assert_int_equal(bus_server_new(e, endpoint("twice"), handler, &st, &s), 0);
	{
		struct bus_server *s2 = NULL;

		assert_int_equal(bus_server_new(e, endpoint("twice"), handler, &st, &s2),
				 -EADDRINUSE);
		assert_null(s2);
	}
	bus_server_free(s);
	s = NULL;
	/* a directory that cannot be created */
	snprintf(ep, sizeof ep, "ipc:///proc/self/nope/x.sock");
	assert_true(bus_server_new(e, ep, handler, &st, &s) < 0);
	bus_server_free(NULL);
	bus_client_free(NULL);
	bus_pub_free(NULL);
	bus_sub_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_endpoint, setup, teardown),
		cmocka_unit_test_setup_teardown(test_request_reply, setup, teardown),
		cmocka_unit_test_setup_teardown(test_client_before_server, setup, teardown),
		cmocka_unit_test_setup_teardown(test_timeout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_deferred_out_of_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_server_busy, setup, teardown),
		cmocka_unit_test_setup_teardown(test_server_forgets_old_requests, setup, teardown),
		cmocka_unit_test_setup_teardown(test_garbage_frames, setup, teardown),
		cmocka_unit_test_setup_teardown(test_queue_caps, setup, teardown),
		cmocka_unit_test_setup_teardown(test_max_frame, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pub_sub, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sub_gaps, setup, teardown),
		cmocka_unit_test_setup_teardown(test_free_from_callbacks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fds_cloexec, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_arguments, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
