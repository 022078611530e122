/* msg: golden frames for every message type (encode → exact bytes → decode → same struct),
 * every class of malformed frame with its error code and text, encoder refusals, events. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cocoon/msg.h"

/* ---- fixtures: one fixed body per type ---- */

static struct msg_error f_error = { .code = -ENOENT, .message = "no lease for 52:54:00:12:34:56" };
static struct msg_probe_watch f_watch = {
	.key = "default/web-0",
	.vm_ip = "10.88.0.7",
	.mac = "52:54:00:12:34:56",
	.os = "linux",
	.ssh_target = "root@10.88.0.7:22",
	/* readiness set up in setup(): it is a json_t */
};
static struct msg_probe_forget f_forget = { .key = "default/web-0" };
static struct msg_probe_pod f_pods[] = {
	{ .key = "default/web-0", .ready = true, .live = true, .reason = "tcp ok" },
	{ .key = "team-a/agent-1",
	  .ready = false,
	  .live = true,
	  .reason = "waiting for dhcp lease" },
};
static struct msg_probe_state_all f_state_all = { .seq = 41, .pods = f_pods, .n_pods = 2 };
static struct msg_probe_transition f_transition = {
	.seq = 42,
	.key = "default/web-0",
	.ready = false,
	.live = true,
	.reason = "tcp probe 22: connection refused",
	.ts_usec = 1700000000123456ULL,
};
static struct msg_lease_lookup f_lookup = { .mac = "52:54:00:12:34:56" };
static struct msg_lease_info f_info = { .mac = "52:54:00:12:34:56",
					.ip = "10.88.0.7",
					.expires_usec = 1700003600000000ULL };
static struct msg_lease_release f_release = { .mac = "52:54:00:12:34:56" };
static struct msg_lease f_leases[] = {
	{ .mac = "52:54:00:12:34:56", .ip = "10.88.0.7", .expires_usec = 1700003600000000ULL },
};
static struct msg_lease_all f_lease_all = { .seq = 7, .leases = f_leases, .n_leases = 1 };
static struct msg_lease_granted f_granted = {
	.seq = 8, .mac = "52:54:00:ab:cd:ef", .ip = "10.88.0.9", .expires_usec = 1700003700000000ULL
};
static struct msg_lease_expired f_expired = { .seq = 9,
					      .mac = "52:54:00:12:34:56",
					      .ip = "10.88.0.7" };
static struct msg_net_status_reply f_net_status = {
	.platform = "gke",
	.node = "node-1",
	.subnet = "10.88.0.0/24",
	.gateway = "10.88.0.1",
	.bridge = "cni0",
	.pool_size = 253,
	.active_leases = 2,
};

struct golden {
	enum msg_type type;
	uint32_t reqid;
	const void *body;
	const char *hex; /* the full frame; the comment above each shows its JSON body */
};

static const struct golden goldens[] = {
	/* {} */
	{ MSG_OK, 1, NULL, "c0010100 02000000 01000000 7b7d" },
	/* {"code":-2,"message":"no lease for 52:54:00:12:34:56"} */
	{ MSG_ERROR, 2, &f_error,
	  "c0010200 36000000 02000000"
	  "7b22636f6465223a2d322c226d657373616765223a226e6f206c656173652066"
	  "6f722035323a35343a30303a31323a33343a3536227d" },
	/* {"key":"default/web-0","vm_ip":"10.88.0.7","mac":"52:54:00:12:34:56","os":"linux",
	 *  "ssh_target":"root@10.88.0.7:22",
	 *  "readiness":{"tcpSocket":{"port":22},"periodSeconds":5}} */
	{ MSG_PROBE_WATCH, 3, &f_watch,
	  "c0010101 ab000000 03000000"
	  "7b226b6579223a2264656661756c742f7765622d30222c22766d5f6970223a22"
	  "31302e38382e302e37222c226d6163223a2235323a35343a30303a31323a3334"
	  "3a3536222c226f73223a226c696e7578222c227373685f746172676574223a22"
	  "726f6f744031302e38382e302e373a3232222c2272656164696e657373223a7b"
	  "22746370536f636b6574223a7b22706f7274223a32327d2c22706572696f6453"
	  "65636f6e6473223a357d7d" },
	/* {"key":"default/web-0"} */
	{ MSG_PROBE_FORGET, 4, &f_forget,
	  "c0010201 17000000 04000000"
	  "7b226b6579223a2264656661756c742f7765622d30227d" },
	/* {} */
	{ MSG_PROBE_LIST, 5, NULL, "c0010301 02000000 05000000 7b7d" },
	/* {"seq":41,"pods":[{"key":"default/web-0","ready":true,"live":true,"reason":"tcp ok"},
	 *  {"key":"team-a/agent-1","ready":false,"live":true,
	 *   "reason":"waiting for dhcp lease"}]} */
	{ MSG_PROBE_STATE_ALL, 5, &f_state_all,
	  "c0010401 ab000000 05000000"
	  "7b22736571223a34312c22706f6473223a5b7b226b6579223a2264656661756c"
	  "742f7765622d30222c227265616479223a747275652c226c697665223a747275"
	  "652c22726561736f6e223a22746370206f6b227d2c7b226b6579223a22746561"
	  "6d2d612f6167656e742d31222c227265616479223a66616c73652c226c697665"
	  "223a747275652c22726561736f6e223a2277616974696e6720666f7220646863"
	  "70206c65617365227d5d7d" },
	/* {"seq":42,"key":"default/web-0","ready":false,"live":true,
	 *  "reason":"tcp probe 22: connection refused","ts_usec":1700000000123456} */
	{ MSG_PROBE_TRANSITION, 0, &f_transition,
	  "c0010501 81000000 00000000"
	  "7b22736571223a34322c226b6579223a2264656661756c742f7765622d30222c"
	  "227265616479223a66616c73652c226c697665223a747275652c22726561736f"
	  "6e223a227463702070726f62652032323a20636f6e6e656374696f6e20726566"
	  "75736564222c2274735f75736563223a31373030303030303030313233343536"
	  "7d" },
	/* {"mac":"52:54:00:12:34:56"} */
	{ MSG_LEASE_LOOKUP, 6, &f_lookup,
	  "c0010102 1b000000 06000000"
	  "7b226d6163223a2235323a35343a30303a31323a33343a3536227d" },
	/* {"mac":"52:54:00:12:34:56","ip":"10.88.0.7","expires_usec":1700003600000000} */
	{ MSG_LEASE_INFO, 6, &f_info,
	  "c0010202 4c000000 06000000"
	  "7b226d6163223a2235323a35343a30303a31323a33343a3536222c226970223a"
	  "2231302e38382e302e37222c22657870697265735f75736563223a3137303030"
	  "30333630303030303030307d" },
	/* {"mac":"52:54:00:12:34:56"} */
	{ MSG_LEASE_RELEASE, 7, &f_release,
	  "c0010302 1b000000 07000000"
	  "7b226d6163223a2235323a35343a30303a31323a33343a3536227d" },
	/* {} */
	{ MSG_LEASE_LIST, 8, NULL, "c0010402 02000000 08000000 7b7d" },
	/* {"seq":7,"leases":[{"mac":"52:54:00:12:34:56","ip":"10.88.0.7",
	 *  "expires_usec":1700003600000000}]} */
	{ MSG_LEASE_ALL, 8, &f_lease_all,
	  "c0010502 61000000 08000000"
	  "7b22736571223a372c226c6561736573223a5b7b226d6163223a2235323a3534"
	  "3a30303a31323a33343a3536222c226970223a2231302e38382e302e37222c22"
	  "657870697265735f75736563223a313730303030333630303030303030307d5d"
	  "7d" },
	/* {"seq":8,"mac":"52:54:00:ab:cd:ef","ip":"10.88.0.9","expires_usec":1700003700000000} */
	{ MSG_LEASE_GRANTED, 0, &f_granted,
	  "c0010602 54000000 00000000"
	  "7b22736571223a382c226d6163223a2235323a35343a30303a61623a63643a65"
	  "66222c226970223a2231302e38382e302e39222c22657870697265735f757365"
	  "63223a313730303030333730303030303030307d" },
	/* {"seq":9,"mac":"52:54:00:12:34:56","ip":"10.88.0.7"} */
	{ MSG_LEASE_EXPIRED, 0, &f_expired,
	  "c0010702 34000000 00000000"
	  "7b22736571223a392c226d6163223a2235323a35343a30303a31323a33343a35"
	  "36222c226970223a2231302e38382e302e37227d" },
	/* {} */
	{ MSG_NET_STATUS, 9, NULL, "c0010802 02000000 09000000 7b7d" },
	/* {"platform":"gke","node":"node-1","subnet":"10.88.0.0/24","gateway":"10.88.0.1",
	 *  "bridge":"cni0","pool_size":253,"active_leases":2} */
	{ MSG_NET_STATUS_REPLY, 9, &f_net_status,
	  "c0010902 82000000 09000000"
	  "7b22706c6174666f726d223a22676b65222c226e6f6465223a226e6f64652d31"
	  "222c227375626e6574223a2231302e38382e302e302f3234222c226761746577"
	  "6179223a2231302e38382e302e31222c22627269646765223a22636e6930222c"
	  "22706f6f6c5f73697a65223a3235332c226163746976655f6c6561736573223a"
	  "327d" },
	/* {} */
	{ MSG_NET_RELOAD, 0xdeadbeef, NULL, "c0010a02 02000000 efbeadde 7b7d" },
};

static int setup(void **state)
{
	f_watch.readiness = json_pack("{s:{s:i},s:i}", "tcpSocket", "port", 22, "periodSeconds", 5);
	return f_watch.readiness ? 0 : -1;
}

static int teardown(void **state)
{
	json_decref(f_watch.readiness);
	f_watch.readiness = NULL;
	return 0;
}

/* ---- helpers ---- */

static size_t hex_decode(const char *hex, uint8_t *out, size_t max)
{
	size_t n = 0;

	for (const char *p = hex; *p;) {
		unsigned v;

		if (*p == ' ') {
			p++;
			continue;
		}
		assert_int_equal(sscanf(p, "%2x", &v), 1);
		assert_true(n < max);
		out[n++] = (uint8_t)v;
		p += 2;
	}
	return n;
}

static char *hex_encode(const void *data, size_t n)
{
	char *s = malloc(2 * n + 1);
	const uint8_t *p = data;

	assert_non_null(s);
	for (size_t i = 0; i < n; i++)
		sprintf(s + 2 * i, "%02x", p[i]);
	s[2 * n] = 0;
	return s;
}

/* A frame with a hand-written header and body, for the malformed cases. */
static size_t frame(uint8_t *out, uint8_t magic, uint8_t version, uint16_t type, uint32_t len,
		    const char *body)
{
	size_t n = strlen(body);

	out[0] = magic;
	out[1] = version;
	out[2] = type & 0xff;
	out[3] = type >> 8;
	for (int i = 0; i < 4; i++) {
		out[4 + i] = (len >> (8 * i)) & 0xff;
		out[8 + i] = 0;
	}
	memcpy(out + MSG_HEADER_SIZE, body, n);
	return MSG_HEADER_SIZE + n;
}

static uint8_t fbuf[MSG_FRAME_MAX + 64];

/* Decode a frame made of `body` under a valid header of `type` and expect failure r with the
 * error text `text`. */
static void expect_body_error(enum msg_type type, const char *body, int r, const char *text)
{
	struct msg *m = NULL;
	char *err = NULL;
	size_t n = frame(fbuf, MSG_MAGIC, MSG_VERSION, type, strlen(body), body);

	assert_int_equal(msg_decode(fbuf, n, &m, &err), r);
	assert_null(m);
	assert_non_null(err);
	if (!strstr(err, text))
		fail_msg("error '%s' does not contain '%s'", err, text);
	free(err);
}

static struct msg *decode_body_ok(enum msg_type type, const char *body)
{
	struct msg *m = NULL;
	char *err = NULL;
	size_t n = frame(fbuf, MSG_MAGIC, MSG_VERSION, type, strlen(body), body);
	int r = msg_decode(fbuf, n, &m, &err);

	if (r < 0)
		fail_msg("decode failed (%d): %s", r, err);
	return m;
}

/* ---- golden frames ---- */

static void test_golden_encode(void **state)
{
	int bad = 0;

	for (size_t i = 0; i < ELEMENTSOF(goldens); i++) {
		const struct golden *g = &goldens[i];
		uint8_t want[1024];
		size_t n = hex_decode(g->hex, want, sizeof want);
		struct buf b = BUF_INIT(0);
		char *got;

		assert_int_equal(msg_encode(g->type, g->body, g->reqid, &b), 0);
		got = hex_encode(b.data, b.len);
		if (b.len != n || memcmp(b.data, want, n) != 0) {
			print_error("%s: encoded frame differs from golden\n got: %s\n",
				    msg_type_name(g->type), got);
			bad++;
		}
		free(got);
		buf_free(&b);
	}
	assert_int_equal(bad, 0);
}

static void test_golden_decode(void **state)
{
	for (size_t i = 0; i < ELEMENTSOF(goldens); i++) {
		const struct golden *g = &goldens[i];
		uint8_t bytes[1024];
		size_t n = hex_decode(g->hex, bytes, sizeof bytes);
		struct msg *m = NULL;
		char *err = NULL;
		int r = msg_decode(bytes, n, &m, &err);

		if (r < 0)
			fail_msg("%s: golden frame refused (%d): %s", msg_type_name(g->type), r,
				 err);
		assert_int_equal(m->type, g->type);
		assert_int_equal(m->reqid, g->reqid);
		if (!msg_body_equal(g->type, g->body, msg_body(m)))
			fail_msg("%s: decoded body differs from the fixture",
				 msg_type_name(g->type));
		msg_free(m);
	}
}

/* msg_body_equal() is what the golden decode relies on, so check it field by field too. */
static void test_golden_decode_fields(void **state)
{
	uint8_t bytes[1024];
	struct msg *m = NULL;
	size_t n;

	n = hex_decode(goldens[2].hex, bytes, sizeof bytes);
	assert_int_equal(msg_decode(bytes, n, &m, NULL), 0);
	assert_int_equal(m->type, MSG_PROBE_WATCH);
	assert_string_equal(m->probe_watch.key, "default/web-0");
	assert_string_equal(m->probe_watch.ssh_target, "root@10.88.0.7:22");
	assert_int_equal(json_integer_value(json_object_get(
			     json_object_get(m->probe_watch.readiness, "tcpSocket"), "port")),
			 22);
	assert_null(m->probe_watch.liveness);
	msg_free(m);

	n = hex_decode(goldens[5].hex, bytes, sizeof bytes);
	assert_int_equal(msg_decode(bytes, n, &m, NULL), 0);
	assert_int_equal(m->probe_state_all.seq, 41);
	assert_int_equal(m->probe_state_all.n_pods, 2);
	assert_string_equal(m->probe_state_all.pods[1].key, "team-a/agent-1");
	assert_false(m->probe_state_all.pods[1].ready);
	assert_true(m->probe_state_all.pods[1].live);
	assert_string_equal(m->probe_state_all.pods[1].reason, "waiting for dhcp lease");
	msg_free(m);

	n = hex_decode(goldens[1].hex, bytes, sizeof bytes);
	assert_int_equal(msg_decode(bytes, n, &m, NULL), 0);
	assert_int_equal(m->error.code, -ENOENT);
	msg_free(m);
}

static void test_every_type_has_golden(void **state)
{
	for (int t = 0; t <= 0xffff; t++) {
		bool found = false;

		if (!msg_type_name(t))
			continue;
		for (size_t i = 0; i < ELEMENTSOF(goldens); i++)
			found = found || (int)goldens[i].type == t;
		if (!found)
			fail_msg("message type %s has no golden frame", msg_type_name(t));
	}
}

static void test_body_equal_detects_differences(void **state)
{
	struct msg_probe_watch w = f_watch;
	struct msg_probe_pod pods[2] = { f_pods[0], f_pods[1] };
	struct msg_probe_state_all s = { .seq = 41, .pods = pods, .n_pods = 2 };
	struct msg_error e = f_error;
	json_t *other = json_pack("{s:i}", "periodSeconds", 5);

	assert_true(msg_body_equal(MSG_PROBE_WATCH, &f_watch, &w));
	w.key = "default/web-1";
	assert_false(msg_body_equal(MSG_PROBE_WATCH, &f_watch, &w));
	w.key = f_watch.key;
	w.ssh_target = NULL;
	assert_false(msg_body_equal(MSG_PROBE_WATCH, &f_watch, &w));
	w.ssh_target = f_watch.ssh_target;
	w.readiness = other;
	assert_false(msg_body_equal(MSG_PROBE_WATCH, &f_watch, &w));
	json_decref(other);

	assert_true(msg_body_equal(MSG_PROBE_STATE_ALL, &f_state_all, &s));
	pods[1].ready = true;
	assert_false(msg_body_equal(MSG_PROBE_STATE_ALL, &f_state_all, &s));
	pods[1].ready = false;
	s.n_pods = 1;
	assert_false(msg_body_equal(MSG_PROBE_STATE_ALL, &f_state_all, &s));
	s.n_pods = 2;
	s.seq = 40;
	assert_false(msg_body_equal(MSG_PROBE_STATE_ALL, &f_state_all, &s));

	e.code = -EIO;
	assert_false(msg_body_equal(MSG_ERROR, &f_error, &e));
	assert_true(msg_body_equal(MSG_OK, NULL, NULL));
}

static void test_type_names(void **state)
{
	assert_string_equal(msg_type_name(MSG_PROBE_WATCH), "PROBE_WATCH");
	assert_string_equal(msg_type_name(MSG_NET_RELOAD), "NET_RELOAD");
	assert_int_equal(msg_type_from_name("LEASE_GRANTED"), MSG_LEASE_GRANTED);
	assert_int_equal(msg_type_from_name("ERROR"), MSG_ERROR);
	assert_null(msg_type_name(0));
	assert_null(msg_type_name(0x7777));
	assert_int_equal(msg_type_from_name("lease_granted"), -EINVAL);
	assert_int_equal(msg_type_from_name("NOPE"), -EINVAL);
	assert_int_equal(msg_type_from_name(NULL), -EINVAL);
}

/* ---- malformed frames ---- */

static void expect_frame_error(const void *f, size_t n, int r, const char *text)
{
	struct msg *m = NULL;
	char *err = NULL;

	assert_int_equal(msg_decode(f, n, &m, &err), r);
	assert_null(m);
	assert_non_null(err);
	if (!strstr(err, text))
		fail_msg("error '%s' does not contain '%s'", err, text);
	free(err);
}

static void test_malformed_header(void **state)
{
	size_t n;

	memset(fbuf, ' ', sizeof fbuf);
	n = frame(fbuf, MSG_MAGIC, MSG_VERSION, MSG_OK, MSG_FRAME_MAX - MSG_HEADER_SIZE + 1, "{}");
	expect_frame_error(fbuf, MSG_FRAME_MAX + 1, -EMSGSIZE,
			   "frame of 65537 bytes exceeds the 65536-byte cap");
	expect_frame_error(fbuf, 11, -EBADMSG,
			   "frame of 11 bytes is shorter than the 12-byte header");
	expect_frame_error(fbuf, 0, -EBADMSG, "shorter than the 12-byte header");

	n = frame(fbuf, 0x7b, MSG_VERSION, MSG_OK, 2, "{}");
	expect_frame_error(fbuf, n, -EPROTO, "bad magic 0x7b (expected 0xc0)");
	n = frame(fbuf, MSG_MAGIC, 2, MSG_OK, 2, "{}");
	expect_frame_error(fbuf, n, -EPROTONOSUPPORT, "frame version 2 not supported (expected 1)");
	n = frame(fbuf, MSG_MAGIC, MSG_VERSION, 0x7777, 2, "{}");
	expect_frame_error(fbuf, n, -ENOMSG, "unknown message type 30583");

	n = frame(fbuf, MSG_MAGIC, MSG_VERSION, MSG_PROBE_FORGET, 30, "{\"key\":\"a/b\"}");
	expect_frame_error(fbuf, n, -EBADMSG,
			   "PROBE_FORGET: header says 30 body bytes, frame has 13");
	n = frame(fbuf, MSG_MAGIC, MSG_VERSION, MSG_PROBE_FORGET, 5, "{\"key\":\"a/b\"}");
	expect_frame_error(fbuf, n, -EBADMSG, "header says 5 body bytes, frame has 13");
	n = frame(fbuf, MSG_MAGIC, MSG_VERSION, MSG_OK, 0xffffffff, "{}");
	expect_frame_error(fbuf, n, -EMSGSIZE,
			   "OK: body of 4294967295 bytes exceeds the 65524-byte cap");

	/* a body that fills the frame exactly is fine; one byte more is not */
	memset(fbuf, ' ', sizeof fbuf);
	n = frame(fbuf, MSG_MAGIC, MSG_VERSION, MSG_OK, MSG_FRAME_MAX - MSG_HEADER_SIZE, "{}");
	{
		struct msg *m = NULL;

		assert_int_equal(msg_decode(fbuf, MSG_FRAME_MAX, &m, NULL), 0);
		assert_int_equal(m->type, MSG_OK);
		msg_free(m);
	}
}

static void test_malformed_body(void **state)
{
	static const char nul_body[] = "{\"key\":\"a\0b\"}";
	struct msg *m = NULL;
	size_t n;

	expect_body_error(MSG_PROBE_FORGET, "{\"key\":", -EILSEQ,
			  "PROBE_FORGET: body is not valid JSON");
	expect_body_error(MSG_PROBE_FORGET, "", -EILSEQ, "PROBE_FORGET: body is not valid JSON");
	expect_body_error(MSG_PROBE_FORGET, "[\"a/b\"]", -EILSEQ,
			  "PROBE_FORGET: body must be a JSON object, got array");
	expect_body_error(MSG_PROBE_FORGET, "\"a/b\"", -EILSEQ,
			  "must be a JSON object, got string");
	expect_body_error(MSG_PROBE_FORGET, "{\"key\":\"a/b\"} {}", -EILSEQ, "not valid JSON");
	expect_body_error(MSG_PROBE_FORGET, "{\"key\":\"a/b\",\"key\":\"c/d\"}", -EILSEQ,
			  "duplicate object key");
	expect_body_error(MSG_PROBE_FORGET, "{\"key\":\"\xff\xfe\"}", -EILSEQ, "not valid JSON");
	expect_body_error(MSG_PROBE_FORGET, "{\"key\":\"a\\u0000b\"}", -EILSEQ, "not valid JSON");
	/* a raw NUL inside the body */
	n = MSG_HEADER_SIZE + sizeof nul_body - 1;
	frame(fbuf, MSG_MAGIC, MSG_VERSION, MSG_PROBE_FORGET, sizeof nul_body - 1, "");
	memcpy(fbuf + MSG_HEADER_SIZE, nul_body, sizeof nul_body - 1);
	assert_int_equal(msg_decode(fbuf, n, &m, NULL), -EILSEQ);
	assert_null(m);
}

static void test_malformed_fields(void **state)
{
	char big[MSG_KEY_MAX + 64];

	expect_body_error(MSG_PROBE_WATCH, "{\"vm_ip\":\"1.2.3.4\",\"mac\":\"m\",\"os\":\"linux\"}",
			  -ENODATA, "PROBE_WATCH: field 'key' missing");
	expect_body_error(MSG_PROBE_WATCH, "{\"key\":\"a/b\",\"vm_ip\":\"1.2.3.4\",\"mac\":\"m\"}",
			  -ENODATA, "PROBE_WATCH: field 'os' missing");
	expect_body_error(MSG_PROBE_STATE_ALL,
			  "{\"seq\":1,\"pods\":[{\"key\":\"a/b\",\"ready\":true,\"live\":true,"
			  "\"reason\":\"ok\"},{\"key\":\"a/c\",\"ready\":true,\"live\":true}]}",
			  -ENODATA, "PROBE_STATE_ALL: field 'pods[1].reason' missing");
	expect_body_error(MSG_PROBE_TRANSITION,
			  "{\"seq\":1,\"key\":\"a/b\",\"ready\":\"yes\",\"live\":true,"
			  "\"reason\":\"ok\",\"ts_usec\":1}",
			  -EINVAL, "PROBE_TRANSITION: field 'ready' must be a boolean, got string");
	expect_body_error(MSG_LEASE_ALL, "{\"seq\":1.5,\"leases\":[]}", -EINVAL,
			  "LEASE_ALL: field 'seq' must be an integer, got number");
	expect_body_error(MSG_LEASE_ALL, "{\"seq\":1,\"leases\":{}}", -EINVAL,
			  "LEASE_ALL: field 'leases' must be an array, got object");
	expect_body_error(MSG_LEASE_ALL, "{\"seq\":1,\"leases\":[7]}", -EINVAL,
			  "LEASE_ALL: element 'leases[0]' must be an object, got integer");
	expect_body_error(MSG_LEASE_ALL,
			  "{\"seq\":1,\"leases\":[{\"mac\":\"m\",\"ip\":5,\"expires_usec\":1}]}",
			  -EINVAL, "LEASE_ALL: field 'leases[0].ip' must be a string, got integer");
	expect_body_error(MSG_PROBE_WATCH,
			  "{\"key\":\"a/b\",\"vm_ip\":\"i\",\"mac\":\"m\",\"os\":\"o\","
			  "\"readiness\":[1]}",
			  -EINVAL, "PROBE_WATCH: field 'readiness' must be an object, got array");
	expect_body_error(MSG_PROBE_FORGET, "{\"key\":null}", -EINVAL,
			  "PROBE_FORGET: field 'key' must be a string, got null");
	expect_body_error(MSG_LEASE_EXPIRED, "{\"seq\":-1,\"mac\":\"m\",\"ip\":\"i\"}", -ERANGE,
			  "LEASE_EXPIRED: field 'seq' must not be negative");
	expect_body_error(MSG_ERROR, "{\"code\":5,\"message\":\"x\"}", -ERANGE,
			  "ERROR: field 'code' must be a negative errno, got 5");
	expect_body_error(MSG_ERROR, "{\"code\":-5000,\"message\":\"x\"}", -ERANGE,
			  "must be a negative errno, got -5000");
	expect_body_error(MSG_LEASE_EXPIRED,
			  "{\"seq\":99999999999999999999,\"mac\":\"m\",\"ip\":\"i\"}", -EILSEQ,
			  "LEASE_EXPIRED: body is not valid JSON");

	snprintf(big, sizeof big, "{\"key\":\"%0*d\"}", MSG_KEY_MAX + 1, 0);
	expect_body_error(MSG_PROBE_FORGET, big, -E2BIG,
			  "PROBE_FORGET: field 'key' is 318 bytes, cap 317");
}

static void test_lenient_where_documented(void **state)
{
	char body[MSG_KEY_MAX + 64];
	struct msg *m;

	/* unknown fields are ignored: newer peers may add OPT fields */
	m = decode_body_ok(MSG_PROBE_FORGET, "{\"key\":\"a/b\",\"since\":\"v2\"}");
	assert_string_equal(m->probe_forget.key, "a/b");
	msg_free(m);
	/* null on an OPT field means absent */
	m = decode_body_ok(MSG_PROBE_WATCH, "{\"key\":\"a/b\",\"vm_ip\":\"i\",\"mac\":\"m\","
					    "\"os\":\"o\",\"ssh_target\":null,\"liveness\":null}");
	assert_null(m->probe_watch.ssh_target);
	assert_null(m->probe_watch.liveness);
	msg_free(m);
	/* a string exactly at its cap passes */
	snprintf(body, sizeof body, "{\"key\":\"%0*d\"}", MSG_KEY_MAX, 0);
	m = decode_body_ok(MSG_PROBE_FORGET, body);
	assert_int_equal(strlen(m->probe_forget.key), MSG_KEY_MAX);
	msg_free(m);
	/* empty arrays and whitespace are fine */
	m = decode_body_ok(MSG_LEASE_ALL, " { \"seq\" : 3 , \"leases\" : [ ] } ");
	assert_int_equal(m->lease_all.seq, 3);
	assert_int_equal(m->lease_all.n_leases, 0);
	assert_null(m->lease_all.leases);
	msg_free(m);
	/* ret_error is optional */
	frame(fbuf, MSG_MAGIC, 9, MSG_OK, 2, "{}");
	m = NULL;
	assert_int_equal(msg_decode(fbuf, MSG_HEADER_SIZE + 2, &m, NULL), -EPROTONOSUPPORT);
	assert_null(m);
}

/* ---- encoder refusals ---- */

static void test_encode_refusals(void **state)
{
	struct buf b = BUF_INIT(0), small = BUF_INIT(20);
	struct msg_probe_forget forget = { .key = NULL };
	struct msg_lease_info info = f_info;
	struct msg_error e = { .code = 0, .message = "x" };
	struct msg_probe_watch w = f_watch;
	struct msg_lease_all all = { .seq = 1, .leases = NULL, .n_leases = 3 };
	char key[MSG_KEY_MAX + 2], *s;
	json_t *arr = json_array(), *huge;
	struct buf big = BUF_INIT(0);
	size_t pad;

	assert_int_equal(buf_append_str(&b, "keep"), 0);
	assert_int_equal(msg_encode(MSG_PROBE_FORGET, &forget, 1, &b), -EINVAL);
	memset(key, 'k', sizeof key - 1);
	key[sizeof key - 1] = 0;
	forget.key = key;
	assert_int_equal(msg_encode(MSG_PROBE_FORGET, &forget, 1, &b), -E2BIG);
	key[MSG_KEY_MAX] = 0;
	assert_int_equal(msg_encode(MSG_PROBE_FORGET, &forget, 1, &big), 0);
	forget.key = "bad \xff utf-8";
	assert_int_equal(msg_encode(MSG_PROBE_FORGET, &forget, 1, &b), -EINVAL);
	info.expires_usec = (uint64_t)INT64_MAX + 1;
	assert_int_equal(msg_encode(MSG_LEASE_INFO, &info, 1, &b), -ERANGE);
	assert_int_equal(msg_encode(MSG_ERROR, &e, 1, &b), -ERANGE);
	w.readiness = arr;
	assert_int_equal(msg_encode(MSG_PROBE_WATCH, &w, 1, &b), -EINVAL);
	assert_int_equal(msg_encode(MSG_LEASE_ALL, &all, 1, &b), -EINVAL);
	assert_int_equal(msg_encode(0x7777, NULL, 1, &b), -ENOMSG);
	assert_int_equal(msg_encode(MSG_PROBE_FORGET, NULL, 1, &b), -EINVAL);

	/* a readiness object sized so the frame is exactly MSG_FRAME_MAX, then one byte more */
	huge = json_object();
	json_object_set_new(huge, "x", json_string(""));
	w.readiness = huge;
	buf_reset(&big);
	assert_int_equal(msg_encode(MSG_PROBE_WATCH, &w, 1, &big), 0);
	pad = MSG_FRAME_MAX - big.len;
	s = calloc(1, pad + 2);
	assert_non_null(s);
	memset(s, 'p', pad);
	json_object_set_new(huge, "x", json_string(s));
	buf_reset(&big);
	assert_int_equal(msg_encode(MSG_PROBE_WATCH, &w, 1, &big), 0);
	assert_int_equal(big.len, MSG_FRAME_MAX);
	s[pad] = 'p';
	json_object_set_new(huge, "x", json_string(s));
	assert_int_equal(msg_encode(MSG_PROBE_WATCH, &w, 1, &b), -EMSGSIZE);
	free(s);
	assert_string_equal(b.data, "keep"); /* unchanged by every failure */

	/* the caller's buffer cap is honoured and leaves it unchanged */
	assert_int_equal(msg_encode(MSG_PROBE_FORGET, &f_forget, 1, &small), -E2BIG);
	assert_int_equal(small.len, 0);

	json_decref(arr);
	json_decref(huge);
	buf_free(&b);
	buf_free(&small);
	buf_free(&big);
}

/* ---- events and the header ---- */

static void test_events(void **state)
{
	struct buf b = BUF_INIT(0);
	struct msg *m = NULL;
	uint64_t seq = 0;

	assert_int_equal(msg_encode_event(MSG_PROBE_TRANSITION, &f_transition, 1234567, &b), 0);
	assert_int_equal(msg_decode(b.data, b.len, &m, NULL), 0);
	assert_int_equal(m->reqid, 0);
	assert_int_equal(m->probe_transition.seq, 1234567);
	assert_string_equal(m->probe_transition.key, f_transition.key);
	assert_int_equal(msg_get_seq(m, &seq), 0);
	assert_int_equal(seq, 1234567);
	assert_int_equal(f_transition.seq, 42); /* the caller's struct is not touched */
	msg_free(m);
	buf_reset(&b);

	assert_int_equal(msg_encode_event(MSG_PROBE_FORGET, &f_forget, 1, &b), -EINVAL);
	assert_int_equal(msg_encode_event(0x7777, &f_forget, 1, &b), -ENOMSG);
	assert_int_equal(b.len, 0);
	assert_int_equal(msg_encode(MSG_PROBE_FORGET, &f_forget, 1, &b), 0);
	assert_int_equal(msg_decode(b.data, b.len, &m, NULL), 0);
	assert_int_equal(msg_get_seq(m, &seq), -EINVAL);
	msg_free(m);
	buf_free(&b);
}

static void test_header_parse(void **state)
{
	struct msg_header h;
	uint8_t f[32];
	size_t n = frame(f, MSG_MAGIC, 3, 0x0101, 99, "{}");

	f[8] = 0x78, f[9] = 0x56, f[10] = 0x34, f[11] = 0x12;
	/* the header parses even where the frame as a whole would not (version, length) */
	assert_int_equal(msg_header_parse(f, n, &h), 0);
	assert_int_equal(h.version, 3);
	assert_int_equal(h.type, 0x0101);
	assert_int_equal(h.length, 99);
	assert_int_equal(h.reqid, 0x12345678);
	assert_int_equal(msg_header_parse(f, 11, &h), -EBADMSG);
	f[0] = 0;
	assert_int_equal(msg_header_parse(f, n, &h), -EPROTO);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_golden_encode),
		cmocka_unit_test(test_golden_decode),
		cmocka_unit_test(test_golden_decode_fields),
		cmocka_unit_test(test_every_type_has_golden),
		cmocka_unit_test(test_body_equal_detects_differences),
		cmocka_unit_test(test_type_names),
		cmocka_unit_test(test_malformed_header),
		cmocka_unit_test(test_malformed_body),
		cmocka_unit_test(test_malformed_fields),
		cmocka_unit_test(test_lenient_where_documented),
		cmocka_unit_test(test_encode_refusals),
		cmocka_unit_test(test_events),
		cmocka_unit_test(test_header_parse),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
