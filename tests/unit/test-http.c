/* http: a real server on 127.0.0.1:<ephemeral> in the test's sd-event loop, and clients on
 * non-blocking sockets (plain or OpenSSL) driven from the same loop, so every exchange is
 * over real TCP and TLS. Covers routing, 404/405, keep-alive, pipelining, chunked bodies,
 * the limits (413, 431, 400, 505, 408), async replies and clients that leave before them,
 * TLS with certificates from `tls`, reload, client certificates, upgrades to byte streams,
 * socket activation, max connections, graceful shutdown, many connections ready at once (a
 * few loop passes serve them all, a busy one does not starve the rest) and the socket-free
 * entry point. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <systemd/sd-event.h>
#include <time.h>

#include <curl/curl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "cocoon/http.h"
#include "cocoon/tls.h"

#define WAIT_USEC (5 * 1000000ULL)
#define MS        1000ULL

struct client {
	int fd;
	SSL_CTX *ctx;
	SSL *ssl;
	struct buf in;
	bool eof, failed;
};

struct async_state {
	struct http_request *held;
	unsigned calls, cancels;
};

struct echo_state {
	struct http_stream *st;
	unsigned closes, drains, reads;
	int close_error;
	size_t big; /* > 0: write two blocks of this size after the upgrade */
	int second_write;
};

struct fixture {
	sd_event *e;
	struct http_server *s;
	int port;
	char dir[64];
	char cert[128], key[128], ca[128], ccert[128], ckey[128];
	struct async_state async;
	struct echo_state echo;
	bool drained;
};

static uint64_t now_usec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000ULL + (uint64_t)ts.tv_nsec / 1000;
}

/* ---- handlers ---- */

static int h_hello(struct http_request *req, void *u)
{
	return http_reply(req, 200, "text/plain", "hello", 5);
}

static int h_echo(struct http_request *req, void *u)
{
	const char *ct = http_request_get_header(req, "content-type", 0);
	size_t len;
	const char *body = http_request_body(req, &len);

	return http_reply(req, 200, ct ? ct : "application/octet-stream", body, len);
}

static int h_info(struct http_request *req, void *u)
{
	json_t *j = json_pack(
	    "{s:s, s:s, s:s, s:s*, s:s*, s:s*, s:s*, s:s*, s:s*, s:b, s:s*, s:b}", "method",
	    http_request_method(req), "path", http_request_path(req), "query",
	    http_request_query(req), "x", http_request_get_query(req, "x", 0), "p0",
	    http_request_get_query(req, "p", 0), "p1", http_request_get_query(req, "p", 1),
	    "proto0", http_request_get_header(req, "x-proto", 0), "proto1",
	    http_request_get_header(req, "X-PROTO", 1), "peer", http_request_peer(req), "tls",
	    http_request_is_tls(req), "subject", http_request_tls_subject(req), "verified",
	    http_request_tls_verified(req));
	int r;

	assert_non_null(j);
	/* Nothing a handler passes can split the response. */
	assert_int_equal(http_reply_add_header(req, "X-Bad", "a\r\nInjected: 1"), -EINVAL);
	assert_int_equal(http_reply_add_header(req, "Bad Name", "v"), -EINVAL);
	assert_int_equal(http_reply_add_header(req, "content-length", "1"), -EPERM);
	assert_int_equal(http_reply(req, 200, "text/plain\r\nInjected: 1", "", 0), -EINVAL);
	assert_int_equal(http_reply_add_header(req, "X-Handler", "info"), 0);
	r = http_reply_json(req, 200, j);
	json_decref(j);
	return r;
}

static int h_fail(struct http_request *req, void *u)
{
	return -EIO;
}

static int h_forget(struct http_request *req, void *u)
{
	return 0; /* neither replies nor keeps a reference */
}

static void on_cancel(struct http_request *req, void *u)
{
	struct async_state *a = u;

	a->cancels++;
}

static int h_async(struct http_request *req, void *u)
{
	struct async_state *a = u;

	a->calls++;
	a->held = http_request_ref(req);
	http_request_set_cancel(req, on_cancel, a);
	return 0;
}

static int echo_on_read(struct http_stream *st, const void *data, size_t len, void *u)
{
	struct echo_state *es = u;

	es->reads++;
	if (len == 0) {
		http_stream_close(st);
		return 0;
	}
	return http_stream_write(st, data, len);
}

static void echo_on_drain(struct http_stream *st, void *u)
{
	struct echo_state *es = u;
	char *block = malloc(es->big);

	es->drains++;
	memset(block, 'b', es->big);
	es->second_write = http_stream_write(st, block, es->big);
	free(block);
}

static void echo_on_close(struct http_stream *st, int error, void *u)
{
	struct echo_state *es = u;

	es->closes++;
	es->close_error = error;
	es->st = NULL;
}

static const struct http_stream_ops echo_ops = {
	.on_read = echo_on_read,
	.on_drain = echo_on_drain,
	.on_close = echo_on_close,
};

static int h_upgrade(struct http_request *req, void *u)
{
	struct echo_state *es = u;
	int r;

	assert_int_equal(http_reply_add_header(req, "Upgrade", "echo"), 0);
	r = http_request_upgrade(req, &echo_ops, es, &es->st);
	if (r < 0 || !es->big)
		return r;
	{
		char *block = malloc(es->big);

		memset(block, 'a', es->big);
		assert_int_equal(http_stream_write(es->st, block, es->big), 0);
		/* The queue holds less than two blocks: the second waits for on_drain. */
		assert_int_equal(http_stream_write(es->st, block, es->big), -ENOBUFS);
		free(block);
	}
	return 0;
}

static int h_not_upgrade(struct http_request *req, void *u)
{
	struct echo_state *es = u;
	struct http_stream *st = NULL;

	/* A route without HTTP_ROUTE_UPGRADE cannot take the connection over. */
	assert_int_equal(http_request_upgrade(req, &echo_ops, es, &st), -EPERM);
	assert_null(st);
	return http_reply_error(req, 400, "no upgrade here");
}

/* ---- fixture ---- */

static void fixture_start(struct fixture *f, const struct http_server_config *cfg)
{
	assert_int_equal(sd_event_new(&f->e), 0);
	assert_int_equal(http_server_new(f->e, cfg, &f->s), 0);
	f->port = http_server_listen_address(f->s, "127.0.0.1:0");
	assert_true(f->port > 0);
	assert_int_equal(http_server_add_route(f->s, "GET", "/hello", 0, h_hello, NULL), 0);
	assert_int_equal(http_server_add_route(f->s, "POST", "/echo", 0, h_echo, NULL), 0);
	assert_int_equal(
	    http_server_add_route(f->s, "GET", "/info/", HTTP_ROUTE_PREFIX, h_info, NULL), 0);
	assert_int_equal(http_server_add_route(f->s, "GET", "/info/special", 0, h_hello, NULL), 0);
	assert_int_equal(http_server_add_route(f->s, "GET", "/fail", 0, h_fail, NULL), 0);
	assert_int_equal(http_server_add_route(f->s, "GET", "/forget", 0, h_forget, NULL), 0);
	assert_int_equal(http_server_add_route(f->s, NULL, "/async", 0, h_async, &f->async), 0);
	assert_int_equal(
	    http_server_add_route(f->s, "GET", "/up", HTTP_ROUTE_UPGRADE, h_upgrade, &f->echo), 0);
	assert_int_equal(http_server_add_route(f->s, "GET", "/noup", 0, h_not_upgrade, &f->echo),
			 0);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof *f);

	if (!f)
		return -1;
	strcpy(f->dir, "/tmp/test-http-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->cert, sizeof f->cert, "%s/cert.pem", f->dir);
	snprintf(f->key, sizeof f->key, "%s/key.pem", f->dir);
	snprintf(f->ca, sizeof f->ca, "%s/ca.pem", f->dir);
	snprintf(f->ccert, sizeof f->ccert, "%s/client.pem", f->dir);
	snprintf(f->ckey, sizeof f->ckey, "%s/client-key.pem", f->dir);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	if (f->async.held)
		http_request_unref(f->async.held);
	http_server_free(f->s);
	sd_event_unref(f->e);
	unlink(f->cert);
	unlink(f->key);
	unlink(f->ca);
	unlink(f->ccert);
	unlink(f->ckey);
	rmdir(f->dir);
	free(f);
	return 0;
}

static void loop_step(struct fixture *f)
{
	assert_true(sd_event_run(f->e, 10 * MS) >= 0);
}

/* Run the loop until cond holds (or fail after WAIT_USEC). */
#define LOOP_UNTIL(f, cond)                                                                        \
	do {                                                                                       \
		uint64_t _end = now_usec() + WAIT_USEC;                                            \
		while (!(cond)) {                                                                  \
			assert_true(now_usec() < _end);                                            \
			loop_step(f);                                                              \
		}                                                                                  \
	} while (0)

static struct http_server_stats stats(struct fixture *f)
{
	struct http_server_stats st;

	http_server_get_stats(f->s, &st);
	return st;
}

/* ---- clients ---- */

static void client_open(struct fixture *f, struct client *cl)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)f->port) };

	*cl = (struct client){ .in = BUF_INIT(0) };
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cl->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(cl->fd >= 0);
	assert_int_equal(connect(cl->fd, (struct sockaddr *)&sa, sizeof sa), 0);
	assert_int_equal(fcntl(cl->fd, F_SETFL, O_NONBLOCK), 0);
}

/* TLS client; with cert/key it presents a client certificate. Returns 0 once the
 * handshake completed from the client's side, -1 if it failed. */
static int client_open_tls(struct fixture *f, struct client *cl, const char *cert, const char *key)
{
	uint64_t end = now_usec() + WAIT_USEC;

	client_open(f, cl);
	cl->ctx = SSL_CTX_new(TLS_client_method());
	assert_non_null(cl->ctx);
	SSL_CTX_set_options(cl->ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
	if (cert) {
		assert_int_equal(SSL_CTX_use_certificate_file(cl->ctx, cert, SSL_FILETYPE_PEM), 1);
		assert_int_equal(SSL_CTX_use_PrivateKey_file(cl->ctx, key, SSL_FILETYPE_PEM), 1);
	}
	cl->ssl = SSL_new(cl->ctx);
	assert_int_equal(SSL_set_fd(cl->ssl, cl->fd), 1);
	SSL_set_connect_state(cl->ssl);
	for (;;) {
		int r = SSL_do_handshake(cl->ssl), e;

		if (r == 1)
			return 0;
		e = SSL_get_error(cl->ssl, r);
		if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
			ERR_clear_error();
			cl->failed = true;
			return -1;
		}
		assert_true(now_usec() < end);
		loop_step(f);
	}
}

static void client_close(struct client *cl)
{
	SSL_free(cl->ssl);
	SSL_CTX_free(cl->ctx);
	if (cl->fd >= 0)
		close(cl->fd);
	buf_free(&cl->in);
	cl->fd = -1;
	cl->ssl = NULL;
	cl->ctx = NULL;
}

static void client_send(struct fixture *f, struct client *cl, const void *data, size_t len)
{
	const char *p = data;
	uint64_t end = now_usec() + WAIT_USEC;

	while (len > 0) {
		ssize_t n;

		if (cl->ssl) {
			size_t w;

			if (SSL_write_ex(cl->ssl, p, len, &w) == 1) {
				n = (ssize_t)w;
			} else {
				int e = SSL_get_error(cl->ssl, 0);

				ERR_clear_error();
				if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
					cl->failed = true;
					return;
				}
				n = -1;
				errno = EAGAIN;
			}
		} else {
			n = send(cl->fd, p, len, MSG_NOSIGNAL);
		}
		if (n < 0) {
			if (errno != EAGAIN) {
				cl->failed = true;
				return;
			}
			assert_true(now_usec() < end);
			loop_step(f);
			continue;
		}
		p += n;
		len -= (size_t)n;
	}
}

static void client_send_str(struct fixture *f, struct client *cl, const char *s)
{
	client_send(f, cl, s, strlen(s));
}

static void client_poll(struct client *cl)
{
	char b[4096];

	while (!cl->eof) {
		ssize_t n;

		if (cl->ssl) {
			size_t got;

			if (SSL_read_ex(cl->ssl, b, sizeof b, &got) == 1) {
				n = (ssize_t)got;
			} else {
				int e = SSL_get_error(cl->ssl, 0);

				ERR_clear_error();
				if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
					return;
				cl->failed = e != SSL_ERROR_ZERO_RETURN;
				n = 0;
			}
		} else {
			n = recv(cl->fd, b, sizeof b, 0);
			if (n < 0 && errno == EAGAIN)
				return;
			if (n < 0) {
				cl->failed = true;
				n = 0;
			}
		}
		if (n == 0) {
			cl->eof = true;
			return;
		}
		assert_int_equal(buf_append(&cl->in, b, (size_t)n), 0);
	}
}

/* Complete responses in s (final ones: 100 Continue does not count, 101 does). */
static unsigned count_responses(const char *s)
{
	unsigned n = 0;

	while (s && *s) {
		const char *end = strstr(s, "\r\n\r\n"), *cl;
		size_t body = 0;

		if (!end)
			break;
		cl = strcasestr(s, "\r\nContent-Length: ");
		if (cl && cl < end)
			body = strtoul(cl + 18, NULL, 10);
		if (strlen(end + 4) < body)
			break;
		if (strncmp(s, "HTTP/1.1 1", 10) != 0 || strncmp(s, "HTTP/1.1 101", 12) == 0)
			n++;
		s = end + 4 + body;
	}
	return n;
}

static void client_wait_responses(struct fixture *f, struct client *cl, unsigned count)
{
	LOOP_UNTIL(f, (client_poll(cl), count_responses(cl->in.data) >= count || cl->eof));
	assert_int_equal(count_responses(cl->in.data), count);
}

static void client_wait_eof(struct fixture *f, struct client *cl)
{
	LOOP_UNTIL(f, (client_poll(cl), cl->eof));
}

static void client_wait_bytes(struct fixture *f, struct client *cl, size_t len)
{
	LOOP_UNTIL(f, (client_poll(cl), cl->in.len >= len || cl->eof));
}

/* The n-th response's body (1-based), for simple Content-Length responses. */
static const char *nth_body(const char *s, unsigned n)
{
	for (;;) {
		const char *end = strstr(s, "\r\n\r\n"),
			   *cl = strcasestr(s, "\r\nContent-Length: ");
		size_t body = cl && cl < end ? strtoul(cl + 18, NULL, 10) : 0;

		assert_non_null(end);
		if (strncmp(s, "HTTP/1.1 100", 12) != 0 && --n == 0)
			return end + 4;
		s = end + 4 + body;
	}
}

/* One request on a fresh plain connection that the server closes; returns the whole answer
 * (caller frees). */
static char *exchange(struct fixture *f, const char *request)
{
	struct client cl;
	char *r;

	client_open(f, &cl);
	client_send_str(f, &cl, request);
	client_wait_eof(f, &cl);
	r = strdup(cl.in.data ? cl.in.data : "");
	client_close(&cl);
	return r;
}

static void assert_prefix(const char *s, const char *prefix)
{
	if (strncmp(s, prefix, strlen(prefix)) != 0)
		fail_msg("expected prefix \"%s\" in \"%.200s\"", prefix, s);
}

/* ---- plain HTTP ---- */

static void test_routing(void **state)
{
	struct fixture *f = *state;
	struct client cl;
	json_t *j;

	fixture_start(f, NULL);
	client_open(f, &cl);
	client_send_str(f, &cl, "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n");
	client_wait_responses(f, &cl, 1);
	assert_prefix(cl.in.data, "HTTP/1.1 200 OK\r\nDate: ");
	assert_non_null(strstr(cl.in.data, "\r\nContent-Type: text/plain\r\n"));
	assert_non_null(strstr(cl.in.data, "\r\nContent-Length: 5\r\n"));
	assert_null(strstr(cl.in.data, "Connection:"));
	assert_string_equal(nth_body(cl.in.data, 1), "hello");
	buf_reset(&cl.in);

	client_send_str(f, &cl,
			"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Type: text/x-test\r\n"
			"Content-Length: 11\r\n\r\nhello world");
	client_wait_responses(f, &cl, 1);
	assert_prefix(cl.in.data, "HTTP/1.1 200 OK\r\n");
	assert_non_null(strstr(cl.in.data, "\r\nContent-Type: text/x-test\r\n"));
	assert_string_equal(nth_body(cl.in.data, 1), "hello world");
	buf_reset(&cl.in);

	/* Prefix route, decoded query parameters (repeated too), repeated header lines. */
	client_send_str(f, &cl,
			"GET /info/a/b?x=a%20b+c&p=1&p=%2F HTTP/1.1\r\nHost: t\r\n"
			"X-Proto: v4.channel.k8s.io  \r\nx-proto: v3.channel.k8s.io\r\n\r\n");
	client_wait_responses(f, &cl, 1);
	assert_non_null(strstr(cl.in.data, "\r\nX-Handler: info\r\n"));
	assert_null(strstr(cl.in.data, "Injected"));
	assert_non_null(strstr(cl.in.data, "\r\nContent-Type: application/json\r\n"));
	j = json_loads(nth_body(cl.in.data, 1), 0, NULL);
	assert_non_null(j);
	assert_string_equal(json_string_value(json_object_get(j, "method")), "GET");
	assert_string_equal(json_string_value(json_object_get(j, "path")), "/info/a/b");
	assert_string_equal(json_string_value(json_object_get(j, "query")), "x=a%20b+c&p=1&p=%2F");
	assert_string_equal(json_string_value(json_object_get(j, "x")), "a b c");
	assert_string_equal(json_string_value(json_object_get(j, "p0")), "1");
	assert_string_equal(json_string_value(json_object_get(j, "p1")), "/");
	assert_string_equal(json_string_value(json_object_get(j, "proto0")), "v4.channel.k8s.io");
	assert_string_equal(json_string_value(json_object_get(j, "proto1")), "v3.channel.k8s.io");
	assert_prefix(json_string_value(json_object_get(j, "peer")), "127.0.0.1:");
	assert_false(json_is_true(json_object_get(j, "tls")));
	assert_null(json_object_get(j, "subject"));
	json_decref(j);
	buf_reset(&cl.in);

	/* The exact route beats the prefix route. */
	client_send_str(f, &cl, "GET /info/special HTTP/1.1\r\nHost: t\r\n\r\n");
	client_wait_responses(f, &cl, 1);
	assert_string_equal(nth_body(cl.in.data, 1), "hello");
	client_close(&cl);
	assert_int_equal(stats(f).requests, 4);
	assert_int_equal(stats(f).responses[2], 4);
	assert_int_equal(stats(f).connections_accepted, 1);
}

static void test_404_405_head(void **state)
{
	struct fixture *f = *state;
	char *r;

	fixture_start(f, NULL);
	r = exchange(f, "GET /nope HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
	assert_prefix(r, "HTTP/1.1 404 Not Found\r\n");
	assert_non_null(strstr(r, "\r\nConnection: close\r\n"));
	assert_string_equal(nth_body(r, 1), "not found: /nope\n");
	free(r);

	r = exchange(f, "DELETE /hello HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
	assert_prefix(r, "HTTP/1.1 405 Method Not Allowed\r\n");
	assert_non_null(strstr(r, "\r\nAllow: GET, HEAD\r\n"));
	assert_string_equal(nth_body(r, 1), "method DELETE is not allowed for /hello\n");
	free(r);

	/* HEAD falls back to the GET route: same headers, no body. */
	r = exchange(f, "HEAD /hello HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
	assert_prefix(r, "HTTP/1.1 200 OK\r\n");
	assert_non_null(strstr(r, "\r\nContent-Length: 5\r\n"));
	assert_string_equal(strstr(r, "\r\n\r\n"), "\r\n\r\n");
	free(r);

	r = exchange(f, "GET /fail HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
	assert_prefix(r, "HTTP/1.1 500 Internal Server Error\r\n");
	assert_string_equal(nth_body(r, 1), "internal error\n");
	free(r);
	r = exchange(f, "GET /forget HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
	assert_prefix(r, "HTTP/1.1 500 Internal Server Error\r\n");
	assert_string_equal(nth_body(r, 1), "internal error: the handler did not reply\n");
	free(r);

	r = exchange(f, "GET /noup HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
	assert_prefix(r, "HTTP/1.1 400 Bad Request\r\n");
	free(r);
	assert_int_equal(stats(f).responses[4], 3);
	assert_int_equal(stats(f).responses[5], 2);
}

static void test_keepalive(void **state)
{
	struct fixture *f = *state;
	struct client cl;
	char *r;

	fixture_start(f, NULL);
	client_open(f, &cl);
	client_send_str(f, &cl, "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n");
	client_wait_responses(f, &cl, 1);
	client_send_str(f, &cl, "GET /hello HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
	client_wait_eof(f, &cl);
	assert_int_equal(count_responses(cl.in.data), 2);
	assert_non_null(strstr(nth_body(cl.in.data, 1), "HTTP/1.1 200 OK\r\n"));
	assert_non_null(strstr(nth_body(cl.in.data, 1), "Connection: close\r\n"));
	client_close(&cl);
	assert_int_equal(stats(f).connections_accepted, 1);

	/* HTTP/1.0 closes unless it asks for keep-alive. */
	r = exchange(f, "GET /hello HTTP/1.0\r\n\r\n");
	assert_prefix(r, "HTTP/1.1 200 OK\r\n");
	assert_non_null(strstr(r, "\r\nConnection: close\r\n"));
	free(r);
	client_open(f, &cl);
	client_send_str(f, &cl, "GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
	client_wait_responses(f, &cl, 1);
	assert_non_null(strstr(cl.in.data, "\r\nConnection: keep-alive\r\n"));
	assert_false(cl.eof);
	client_close(&cl);
}

static void test_pipelining(void **state)
{
	struct fixture *f = *state;
	struct client cl;

	fixture_start(f, NULL);
	client_open(f, &cl);
	/* Three requests in one write, the middle one answered later by a handler. */
	client_send_str(f, &cl,
			"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\none"
			"GET /async HTTP/1.1\r\nHost: t\r\n\r\n"
			"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nthree");
	LOOP_UNTIL(f, f->async.held);
	client_wait_responses(f, &cl, 1);
	/* The third waits behind the second. */
	for (int i = 0; i < 5; i++)
		loop_step(f);
	client_poll(&cl);
	assert_int_equal(count_responses(cl.in.data), 1);
	assert_int_equal(http_reply(f->async.held, 200, "text/plain", "two", 3), 0);
	assert_int_equal(http_reply(f->async.held, 200, "text/plain", "again", 5), -EALREADY);
	http_request_unref(TAKE_PTR(f->async.held));
	client_wait_responses(f, &cl, 3);
	assert_memory_equal(nth_body(cl.in.data, 1), "one", 3);
	assert_memory_equal(nth_body(cl.in.data, 2), "two", 3);
	assert_string_equal(nth_body(cl.in.data, 3), "three");
	client_close(&cl);
	assert_int_equal(f->async.cancels, 0);
}

static void test_chunked_body(void **state)
{
	struct fixture *f = *state;
	char trailer[HTTP_DEFAULT_MAX_HEADER_BYTES + 100];
	struct client cl;

	fixture_start(f, NULL);
	client_open(f, &cl);
	client_send_str(f, &cl,
			"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
			"\r\n5\r\nhello\r\n");
	loop_step(f);
	client_send_str(f, &cl, "1;ext=1\r\n \r\n");
	loop_step(f);
	client_send_str(f, &cl, "5\r\nworld\r\n0\r\nX-Trailer: t\r\n\r\n");
	client_wait_responses(f, &cl, 1);
	assert_prefix(cl.in.data, "HTTP/1.1 200 OK\r\n");
	assert_non_null(strstr(cl.in.data, "\r\nContent-Length: 11\r\n"));
	assert_string_equal(nth_body(cl.in.data, 1), "hello world");
	client_close(&cl);

	/* Trailers are dropped, but count against the header cap. */
	memset(trailer, 't', sizeof trailer - 1);
	trailer[sizeof trailer - 1] = 0;
	client_open(f, &cl);
	client_send_str(f, &cl,
			"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
			"\r\n0\r\nX-Trailer: ");
	client_send_str(f, &cl, trailer);
	client_send_str(f, &cl, "\r\n\r\n");
	client_wait_eof(f, &cl);
	assert_prefix(cl.in.data, "HTTP/1.1 431 Request Header Fields Too Large\r\n");
	assert_string_equal(nth_body(cl.in.data, 1), "trailer fields exceed 16384 bytes\n");
	client_close(&cl);
}

static void test_expect_continue(void **state)
{
	struct fixture *f = *state;
	struct client cl;

	fixture_start(f, NULL);
	client_open(f, &cl);
	client_send_str(f, &cl,
			"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n"
			"Expect: 100-continue\r\n\r\n");
	client_wait_bytes(f, &cl, 25);
	assert_string_equal(cl.in.data, "HTTP/1.1 100 Continue\r\n\r\n");
	client_send_str(f, &cl, "body");
	client_wait_responses(f, &cl, 1);
	assert_string_equal(nth_body(cl.in.data, 1), "body");
	client_close(&cl);
}

static void test_limits(void **state)
{
	struct fixture *f = *state;
	struct http_server_config cfg = { .max_body_bytes = 1024, .max_header_bytes = 2048 };
	struct client cl;
	char big[4096], *r;

	fixture_start(f, &cfg);

	/* 413 from Content-Length, before any of the body is read. */
	client_open(f, &cl);
	client_send_str(f, &cl, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 2000\r\n\r\n");
	client_wait_eof(f, &cl);
	assert_prefix(cl.in.data, "HTTP/1.1 413 Payload Too Large\r\n");
	assert_non_null(strstr(cl.in.data, "\r\nConnection: close\r\n"));
	assert_string_equal(nth_body(cl.in.data, 1),
			    "request body of 2000 bytes exceeds the limit of 1024 bytes\n");
	client_close(&cl);

	/* 413 while reading chunks: the announced chunk would pass the limit. */
	client_open(f, &cl);
	client_send_str(f, &cl,
			"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
			"\r\n200\r\n");
	memset(big, 'x', 512);
	client_send(f, &cl, big, 512);
	client_send_str(f, &cl, "\r\n300\r\n");
	client_send(f, &cl, big, 512);
	client_wait_eof(f, &cl);
	assert_prefix(cl.in.data, "HTTP/1.1 413 Payload Too Large\r\n");
	assert_string_equal(nth_body(cl.in.data, 1),
			    "chunked request body exceeds the limit of 1024 bytes\n");
	client_close(&cl);

	/* 431 for a header block over the cap. */
	memset(big, 'h', sizeof big - 1);
	big[sizeof big - 1] = 0;
	client_open(f, &cl);
	client_send_str(f, &cl, "GET /hello HTTP/1.1\r\nHost: t\r\nX-Big: ");
	client_send_str(f, &cl, big);
	client_send_str(f, &cl, "\r\n\r\n");
	client_wait_eof(f, &cl);
	assert_prefix(cl.in.data, "HTTP/1.1 431 Request Header Fields Too Large\r\n");
	assert_string_equal(nth_body(cl.in.data, 1),
			    "request line and headers exceed 2048 bytes\n");
	client_close(&cl);

	/* Garbage: 400 naming the problem, then close. */
	r = exchange(f, "GARBAGE\r\n\r\n");
	assert_prefix(r, "HTTP/1.1 400 Bad Request\r\n");
	assert_string_equal(nth_body(r, 1),
			    "malformed request: invalid HTTP method (HPE_INVALID_METHOD)\n");
	free(r);
	r = exchange(f, "GET /hello HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\n"
			"Transfer-Encoding: chunked\r\n\r\n");
	assert_prefix(r, "HTTP/1.1 400 Bad Request\r\n");
	free(r);
	r = exchange(f, "GET /info/x?x=%zz HTTP/1.1\r\nHost: t\r\n\r\n");
	assert_prefix(r, "HTTP/1.1 400 Bad Request\r\n");
	assert_string_equal(nth_body(r, 1),
			    "invalid query string: bad percent-escape in \"x=%zz\"\n");
	free(r);
	r = exchange(f, "GET /hello HTTP/2.0\r\nHost: t\r\n\r\n");
	assert_prefix(r, "HTTP/1.1 505 HTTP Version Not Supported\r\n");
	free(r);
	r = exchange(f, "POST /echo HTTP/1.1\r\nHost: t\r\nExpect: magic\r\nContent-Length: 1"
			"\r\n\r\nx");
	assert_prefix(r, "HTTP/1.1 417 Expectation Failed\r\n");
	free(r);
	assert_int_equal(stats(f).bad_requests, 8);
	assert_int_equal(stats(f).requests, 0);
}

static void test_timeouts(void **state)
{
	struct fixture *f = *state;
	struct http_server_config cfg = {
		.header_timeout_usec = 200 * MS,
		.body_timeout_usec = 200 * MS,
		.idle_timeout_usec = 200 * MS,
	};
	struct client cl;
	uint64_t start;

	fixture_start(f, &cfg);

	/* Stalled in the headers. */
	client_open(f, &cl);
	client_send_str(f, &cl, "GET /hello HTTP/1.1\r\nHost: t\r\n");
	start = now_usec();
	client_wait_eof(f, &cl);
	assert_true(now_usec() - start >= 150 * MS);
	assert_prefix(cl.in.data, "HTTP/1.1 408 Request Timeout\r\n");
	assert_string_equal(nth_body(cl.in.data, 1),
			    "request headers not received within 200 ms\n");
	client_close(&cl);

	/* Stalled in the body. */
	client_open(f, &cl);
	client_send_str(f, &cl, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc");
	client_wait_eof(f, &cl);
	assert_prefix(cl.in.data, "HTTP/1.1 408 Request Timeout\r\n");
	assert_string_equal(nth_body(cl.in.data, 1), "request body not received within 200 ms\n");
	client_close(&cl);

	/* Idle keep-alive: closed quietly after the idle timeout. */
	client_open(f, &cl);
	client_send_str(f, &cl, "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n");
	client_wait_responses(f, &cl, 1);
	buf_reset(&cl.in);
	client_wait_eof(f, &cl);
	assert_int_equal(cl.in.len, 0);
	client_close(&cl);
	assert_int_equal(stats(f).timeouts, 2);
	assert_int_equal(stats(f).connections_active, 0);
}

static int reply_later(sd_event_source *src, uint64_t usec, void *u)
{
	struct fixture *f = u;

	assert_int_equal(http_reply(f->async.held, 202, "text/plain", "later", 5), 0);
	http_request_unref(TAKE_PTR(f->async.held));
	return 0;
}

static void test_async_reply(void **state)
{
	struct fixture *f = *state;
	struct client cl;

	fixture_start(f, NULL);
	client_open(f, &cl);
	client_send_str(f, &cl, "POST /async HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nhi");
	LOOP_UNTIL(f, f->async.held);
	assert_string_equal(http_request_method(f->async.held), "POST");
	assert_string_equal(http_request_body(f->async.held, NULL), "hi");
	assert_int_equal(
	    sd_event_add_time_relative(f->e, NULL, CLOCK_MONOTONIC, 50 * MS, 0, reply_later, f), 0);
	client_wait_responses(f, &cl, 1);
	assert_prefix(cl.in.data, "HTTP/1.1 202 Accepted\r\n");
	assert_string_equal(nth_body(cl.in.data, 1), "later");
	/* The connection is still usable. */
	buf_reset(&cl.in);
	client_send_str(f, &cl, "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n");
	client_wait_responses(f, &cl, 1);
	client_close(&cl);
	assert_int_equal(f->async.cancels, 0);
}

static void test_async_disconnect(void **state)
{
	struct fixture *f = *state;
	struct client cl;

	fixture_start(f, NULL);
	client_open(f, &cl);
	client_send_str(f, &cl, "GET /async HTTP/1.1\r\nHost: t\r\n\r\n");
	LOOP_UNTIL(f, f->async.held);
	client_close(&cl);
	LOOP_UNTIL(f, f->async.cancels == 1);
	assert_int_equal(stats(f).client_aborts, 1);
	assert_int_equal(stats(f).connections_active, 0);
	/* The request outlives its connection; answering it is a clean error. */
	assert_string_equal(http_request_path(f->async.held), "/async");
	assert_int_equal(http_reply(f->async.held, 200, NULL, "x", 1), -ENOTCONN);
	http_request_unref(TAKE_PTR(f->async.held));
}

/* ---- TLS ---- */

static void write_keypair(const char *cn, const char *cert, const char *key)
{
	char *sans[] = { "localhost", "127.0.0.1", NULL };
	struct tls_keypair *kp = NULL;

	assert_int_equal(tls_keypair_new_self_signed(cn, sans, 1, &kp), 0);
	assert_int_equal(tls_keypair_write_pem(kp, cert, key), 0);
	tls_keypair_free(kp);
}

static void peer_fingerprint(struct client *cl, char fp[TLS_FINGERPRINT_SIZE])
{
	X509 *x = SSL_get1_peer_certificate(cl->ssl);

	assert_non_null(x);
	assert_int_equal(tls_cert_fingerprint(x, fp), 0);
	X509_free(x);
}

static void tls_get(struct fixture *f, struct client *cl, const char *path)
{
	char req[128];

	buf_reset(&cl->in);
	snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: t\r\n\r\n", path);
	client_send_str(f, cl, req);
	client_wait_responses(f, cl, 1);
	assert_prefix(cl->in.data, "HTTP/1.1 200 OK\r\n");
}

static void test_tls(void **state)
{
	struct fixture *f = *state;
	char want[TLS_FINGERPRINT_SIZE], got[TLS_FINGERPRINT_SIZE];
	struct client cl;
	json_t *j;

	fixture_start(f, NULL);
	write_keypair("server", f->cert, f->key);
	assert_int_equal(http_server_set_tls(f->s, f->cert, f->key, NULL, TLS_VERIFY_NONE), 0);
	assert_int_equal(client_open_tls(f, &cl, NULL, NULL), 0);
	tls_get(f, &cl, "/hello");
	assert_string_equal(nth_body(cl.in.data, 1), "hello");
	tls_get(f, &cl, "/info/tls");
	j = json_loads(nth_body(cl.in.data, 1), 0, NULL);
	assert_true(json_is_true(json_object_get(j, "tls")));
	assert_false(json_is_true(json_object_get(j, "verified")));
	json_decref(j);
	assert_int_equal(tls_file_fingerprint(f->cert, want), 0);
	peer_fingerprint(&cl, got);
	assert_string_equal(got, want);
	client_close(&cl);

	/* Plain HTTP against the TLS port is a failed handshake, not a crash. */
	client_open(f, &cl);
	client_send_str(f, &cl, "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n");
	client_wait_eof(f, &cl);
	assert_null(strstr(cl.in.data ? cl.in.data : "", "200 OK"));
	client_close(&cl);
	assert_int_equal(stats(f).tls_handshake_failures, 1);
}

/* Requests that arrive together are read together (OpenSSL reads ahead, one recv() for
 * all three records), so the later ones wait inside the TLS object, where epoll cannot see
 * them: each must be answered in turn without the client sending anything more. */
static void test_tls_pipelining(void **state)
{
	struct fixture *f = *state;
	struct client cl;

	fixture_start(f, NULL);
	write_keypair("server", f->cert, f->key);
	assert_int_equal(http_server_set_tls(f->s, f->cert, f->key, NULL, TLS_VERIFY_NONE), 0);
	assert_int_equal(client_open_tls(f, &cl, NULL, NULL), 0);
	/* Three records before the server reads any; the middle one is answered later. */
	client_send_str(f, &cl, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\none");
	client_send_str(f, &cl, "GET /async HTTP/1.1\r\nHost: t\r\n\r\n");
	client_send_str(f, &cl, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nthree");
	LOOP_UNTIL(f, f->async.held);
	client_wait_responses(f, &cl, 1);
	assert_int_equal(http_reply(f->async.held, 200, "text/plain", "two", 3), 0);
	http_request_unref(TAKE_PTR(f->async.held));
	client_wait_responses(f, &cl, 3);
	assert_memory_equal(nth_body(cl.in.data, 1), "one", 3);
	assert_memory_equal(nth_body(cl.in.data, 2), "two", 3);
	assert_string_equal(nth_body(cl.in.data, 3), "three");
	client_close(&cl);
	assert_int_equal(stats(f).connections_accepted, 1);
}

/* The Date field of the first response in s, as a time. */
static time_t response_date(const char *s)
{
	const char *d = strstr(s, "\r\nDate: ");
	struct tm tm = {};
	const char *end;

	assert_non_null(d);
	end = strptime(d + 8, "%a, %d %b %Y %H:%M:%S GMT", &tm);
	assert_non_null(end);
	assert_prefix(end, "\r\n");
	return timegm(&tm);
}

/* A keep-alive TLS connection that idles past a second gives back OpenSSL's buffers, and is
 * served as before when it speaks again. The timer that does it fires once, not in a loop
 * (an idle loop step sleeps 10 ms). Each answer carries the Date of its own second. */
static void test_tls_idle(void **state)
{
	struct fixture *f = *state;
	struct client cl;
	unsigned steps = 0;
	uint64_t end;
	time_t first;

	fixture_start(f, NULL);
	write_keypair("server", f->cert, f->key);
	assert_int_equal(http_server_set_tls(f->s, f->cert, f->key, NULL, TLS_VERIFY_NONE), 0);
	assert_int_equal(client_open_tls(f, &cl, NULL, NULL), 0);
	tls_get(f, &cl, "/hello");
	first = response_date(cl.in.data);
	assert_true(labs((long)(first - time(NULL))) <= 1);
	for (end = now_usec() + 1500 * MS; now_usec() < end; steps++)
		loop_step(f);
	assert_true(steps < 400);
	tls_get(f, &cl, "/hello");
	assert_string_equal(nth_body(cl.in.data, 1), "hello");
	assert_true(response_date(cl.in.data) > first);
	client_close(&cl);
	assert_int_equal(stats(f).connections_accepted, 1);
}

static void test_tls_reload(void **state)
{
	struct fixture *f = *state;
	char fp_old[TLS_FINGERPRINT_SIZE], fp_new[TLS_FINGERPRINT_SIZE], got[TLS_FINGERPRINT_SIZE];
	struct client a, b, c;
	char expected[256];

	fixture_start(f, NULL);
	assert_int_equal(http_server_reload_tls(f->s), -ENOKEY);
	write_keypair("first", f->cert, f->key);
	assert_int_equal(http_server_set_tls(f->s, f->cert, f->key, NULL, TLS_VERIFY_NONE), 0);
	assert_int_equal(tls_file_fingerprint(f->cert, fp_old), 0);
	assert_int_equal(client_open_tls(f, &a, NULL, NULL), 0);
	tls_get(f, &a, "/hello");

	write_keypair("second", f->cert, f->key);
	assert_int_equal(tls_file_fingerprint(f->cert, fp_new), 0);
	assert_string_not_equal(fp_old, fp_new);
	assert_int_equal(http_server_reload_tls(f->s), 0);

	/* The open keep-alive connection keeps working on its certificate. */
	tls_get(f, &a, "/hello");
	peer_fingerprint(&a, got);
	assert_string_equal(got, fp_old);
	/* A new connection sees the new certificate. */
	assert_int_equal(client_open_tls(f, &b, NULL, NULL), 0);
	tls_get(f, &b, "/hello");
	peer_fingerprint(&b, got);
	assert_string_equal(got, fp_new);

	/* A broken file: the reload fails, says why, and the last good certificate stays. */
	FILE *fp = fopen(f->cert, "we");
	assert_non_null(fp);
	fputs("garbage\n", fp);
	fclose(fp);
	assert_int_equal(http_server_reload_tls(f->s), -EBADMSG);
	snprintf(expected, sizeof expected,
		 "%s: not a PEM certificate file (no \"-----BEGIN CERTIFICATE-----\" block)",
		 f->cert);
	assert_string_equal(tls_last_error(), expected);
	assert_int_equal(client_open_tls(f, &c, NULL, NULL), 0);
	tls_get(f, &c, "/hello");
	peer_fingerprint(&c, got);
	assert_string_equal(got, fp_new);
	tls_get(f, &a, "/hello");
	client_close(&a);
	client_close(&b);
	client_close(&c);
}

static void test_tls_client_cert(void **state)
{
	struct fixture *f = *state;
	struct client cl;
	json_t *j;

	fixture_start(f, NULL);
	write_keypair("server", f->cert, f->key);
	write_keypair("kube-apiserver", f->ccert, f->ckey);
	/* The client CA bundle: the client's own self-signed certificate. */
	assert_int_equal(http_server_set_tls(f->s, f->cert, f->key, NULL, TLS_VERIFY_REQUIRE),
			 -EINVAL);
	assert_int_equal(http_server_set_tls(f->s, f->cert, f->key, f->ccert, TLS_VERIFY_REQUIRE),
			 0);

	/* Without a certificate: no answer (with TLS 1.3 the client only learns on reading). */
	client_open_tls(f, &cl, NULL, NULL);
	if (!cl.failed) {
		client_send_str(f, &cl, "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n");
		client_wait_eof(f, &cl);
	}
	assert_true(cl.failed);
	assert_null(strstr(cl.in.data ? cl.in.data : "", "HTTP/1.1"));
	client_close(&cl);
	LOOP_UNTIL(f, stats(f).tls_handshake_failures == 1);

	/* A certificate from another "CA" (the server's own): refused as well. */
	client_open_tls(f, &cl, f->cert, f->key);
	if (!cl.failed) {
		client_send_str(f, &cl, "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n");
		client_wait_eof(f, &cl);
	}
	assert_true(cl.failed);
	client_close(&cl);

	/* With the right one: accepted, and the handler sees who it is. */
	assert_int_equal(client_open_tls(f, &cl, f->ccert, f->ckey), 0);
	tls_get(f, &cl, "/info/who");
	j = json_loads(nth_body(cl.in.data, 1), 0, NULL);
	assert_string_equal(json_string_value(json_object_get(j, "subject")), "CN=kube-apiserver");
	assert_true(json_is_true(json_object_get(j, "verified")));
	json_decref(j);
	client_close(&cl);

	/* Optional: no certificate is fine too. */
	assert_int_equal(http_server_set_tls(f->s, f->cert, f->key, f->ccert, TLS_VERIFY_OPTIONAL),
			 0);
	assert_int_equal(client_open_tls(f, &cl, NULL, NULL), 0);
	tls_get(f, &cl, "/info/anon");
	j = json_loads(nth_body(cl.in.data, 1), 0, NULL);
	assert_null(json_object_get(j, "subject"));
	assert_false(json_is_true(json_object_get(j, "verified")));
	json_decref(j);
	client_close(&cl);
}

/* ---- a real client ---- */

struct upload {
	size_t sent, total;
};

static size_t curl_read(char *buf, size_t size, size_t n, void *u)
{
	struct upload *up = u;
	size_t len = MIN(size * n, MIN(up->total - up->sent, 700));

	for (size_t i = 0; i < len; i++)
		buf[i] = (char)('a' + (up->sent + i) % 26);
	up->sent += len;
	return len;
}

static size_t curl_write(char *data, size_t size, size_t n, void *u)
{
	return buf_append(u, data, size * n) < 0 ? 0 : size * n;
}

/* In a child: POST a chunked body over HTTPS, verifying the server against its
 * self-signed certificate and presenting a client certificate; offer h2 via ALPN. */
static _Noreturn void child_curl(struct fixture *f)
{
	struct upload up = { .total = 5000 };
	struct buf body = BUF_INIT(0);
	struct curl_slist *hdrs = NULL;
	uint64_t start = now_usec();
	long code = 0, version = 0;
	char url[64];
	CURL *curl;
	int ok;

	snprintf(url, sizeof url, "https://127.0.0.1:%d/echo", f->port);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	curl = curl_easy_init();
	hdrs = curl_slist_append(hdrs, "Transfer-Encoding: chunked");
	hdrs = curl_slist_append(hdrs, "Expect: 100-continue");
	curl_easy_setopt(curl, CURLOPT_URL, url);
	curl_easy_setopt(curl, CURLOPT_CAINFO, f->cert);
	curl_easy_setopt(curl, CURLOPT_SSLCERT, f->ccert);
	curl_easy_setopt(curl, CURLOPT_SSLKEY, f->ckey);
	curl_easy_setopt(curl, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
	curl_easy_setopt(curl, CURLOPT_POST, 1L);
	curl_easy_setopt(curl, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(curl, CURLOPT_READFUNCTION, curl_read);
	curl_easy_setopt(curl, CURLOPT_READDATA, &up);
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, curl_write);
	curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body);
	/* Without "100 Continue" curl would sit out this wait before sending the body. */
	curl_easy_setopt(curl, CURLOPT_EXPECT_100_TIMEOUT_MS, 4000L);
	curl_easy_setopt(curl, CURLOPT_TIMEOUT, 10L);
	ok = curl_easy_perform(curl) == CURLE_OK &&
	     curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &code) == CURLE_OK && code == 200 &&
	     curl_easy_getinfo(curl, CURLINFO_HTTP_VERSION, &version) == CURLE_OK &&
	     version == CURL_HTTP_VERSION_1_1 && now_usec() - start < 3000 * MS &&
	     body.len == up.total && body.data[0] == 'a' && body.data[4999] == 'a' + 4999 % 26;
	curl_slist_free_all(hdrs);
	curl_easy_cleanup(curl);
	buf_free(&body);
	_exit(ok ? 0 : 1);
}

static void test_curl_interop(void **state)
{
	struct fixture *f = *state;
	int status = 0;
	pid_t pid;

	fixture_start(f, NULL);
	write_keypair("server", f->cert, f->key);
	write_keypair("client", f->ccert, f->ckey);
	assert_int_equal(http_server_set_tls(f->s, f->cert, f->key, f->ccert, TLS_VERIFY_REQUIRE),
			 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		child_curl(f);
	LOOP_UNTIL(f, waitpid(pid, &status, WNOHANG) == pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_int_equal(stats(f).requests, 1);
}

/* ---- upgrades ---- */

static void upgrade_echo(struct fixture *f, bool tls)
{
	static const char head[] = "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
				   "Upgrade: echo\r\n\r\n";
	struct client cl;

	if (tls)
		assert_int_equal(client_open_tls(f, &cl, NULL, NULL), 0);
	else
		client_open(f, &cl);
	/* Bytes right behind the request belong to the stream and must not get lost. */
	client_send_str(f, &cl,
			"GET /up HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\n"
			"Upgrade: echo\r\n\r\nearly");
	client_wait_bytes(f, &cl, strlen(head) + 5);
	assert_string_equal(cl.in.data,
			    "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
			    "Upgrade: echo\r\n\r\nearly");
	assert_non_null(f->echo.st);
	buf_reset(&cl.in);
	client_send_str(f, &cl, "ping");
	client_wait_bytes(f, &cl, 4);
	assert_string_equal(cl.in.data, "ping");
	assert_int_equal(stats(f).streams_active, 1);
	/* The client finishes; the echo closes its side; the server closes. */
	if (tls)
		SSL_shutdown(cl.ssl);
	shutdown(cl.fd, SHUT_WR);
	client_wait_eof(f, &cl);
	LOOP_UNTIL(f, f->echo.closes == 1);
	assert_int_equal(f->echo.close_error, 0);
	assert_null(f->echo.st);
	assert_int_equal(stats(f).streams_active, 0);
	assert_int_equal(stats(f).responses[1], 1);
	client_close(&cl);
}

static void test_upgrade_plain(void **state)
{
	struct fixture *f = *state;

	fixture_start(f, NULL);
	upgrade_echo(f, false);
}

static void test_upgrade_tls(void **state)
{
	struct fixture *f = *state;

	fixture_start(f, NULL);
	write_keypair("server", f->cert, f->key);
	assert_int_equal(http_server_set_tls(f->s, f->cert, f->key, NULL, TLS_VERIFY_NONE), 0);
	upgrade_echo(f, true);
}

static void test_upgrade_backpressure(void **state)
{
	struct fixture *f = *state;
	struct http_server_config cfg = { .stream_queue_bytes = 100 * 1024 };
	struct client cl;
	size_t head;

	f->echo.big = 80 * 1024;
	fixture_start(f, &cfg);
	client_open(f, &cl);
	client_send_str(f, &cl,
			"GET /up HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\n"
			"Upgrade: echo\r\n\r\n");
	client_wait_bytes(f, &cl, 10);
	LOOP_UNTIL(f, (client_poll(&cl), f->echo.drains == 1));
	assert_int_equal(f->echo.second_write, 0);
	head = (size_t)(strstr(cl.in.data, "\r\n\r\n") + 4 - cl.in.data);
	client_wait_bytes(f, &cl, head + 2 * f->echo.big);
	assert_int_equal(cl.in.len, head + 2 * f->echo.big);
	assert_int_equal(cl.in.data[head], 'a');
	assert_int_equal(cl.in.data[head + f->echo.big], 'b');
	client_close(&cl);
	LOOP_UNTIL(f, f->echo.closes == 1);
}

/* ---- listeners, limits on connections, shutdown ---- */

static void test_listen_fd(void **state)
{
	struct fixture *f = *state;
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t len = sizeof sa;
	int fd, pipefd[2];
	char *r;

	fixture_start(f, NULL);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	/* Not listening yet: refused, and still ours. */
	assert_int_equal(http_server_listen_fd(f->s, fd), -ENOTSOCK);
	assert_int_equal(listen(fd, 8), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	assert_int_equal(http_server_listen_fd(f->s, fd), 0);
	assert_true(fcntl(fd, F_GETFL) & O_NONBLOCK);
	f->port = ntohs(sa.sin_port);
	r = exchange(f, "GET /hello HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
	assert_prefix(r, "HTTP/1.1 200 OK\r\n");
	free(r);
	assert_int_equal(pipe2(pipefd, O_CLOEXEC), 0);
	assert_int_equal(http_server_listen_fd(f->s, pipefd[0]), -ENOTSOCK);
	close(pipefd[0]);
	close(pipefd[1]);
}

static void test_listen_address(void **state)
{
	struct fixture *f = *state;
	static const char *const bad[] = { "8080",     "",        "127.0.0.1",     "[::1]8080",
					   "::1:80",   "host:80", "1.2.3.4:99999", "1.2.3.4:-1",
					   "1.2.3.4:", "[::1:80" };
	int port;

	fixture_start(f, NULL);
	for (size_t i = 0; i < ELEMENTSOF(bad); i++)
		assert_int_equal(http_server_listen_address(f->s, bad[i]), -EINVAL);
	port = http_server_listen_address(f->s, "localhost:0");
	assert_true(port > 0 && port != f->port);
	/* Taken. */
	{
		char addr[32];

		snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
		assert_int_equal(http_server_listen_address(f->s, addr), -EADDRINUSE);
	}
	port = http_server_listen_address(f->s, ":0");
	assert_true(port > 0);
	f->port = port; /* all addresses, so 127.0.0.1 too */
	{
		char *r =
		    exchange(f, "GET /hello HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");

		assert_prefix(r, "HTTP/1.1 200 OK\r\n");
		free(r);
	}
}

/* In a child (fd 3 must be the socket): adopt by name, serve one request, exit 0. */
static int child_on_hello(struct http_request *req, void *u)
{
	sd_event_exit(u, 0);
	return http_reply(req, 200, "text/plain", "activated", 9);
}

static int child_on_timeout(sd_event_source *src, uint64_t usec, void *u)
{
	return sd_event_exit(sd_event_source_get_event(src), 13);
}

static _Noreturn void child_serve(int lfd)
{
	struct http_server *s = NULL;
	sd_event *e = NULL;
	char pid[32];
	int code;

	if (dup2(lfd, 3) != 3)
		_exit(10);
	snprintf(pid, sizeof pid, "%d", (int)getpid());
	setenv("LISTEN_PID", pid, 1);
	setenv("LISTEN_FDS", "1", 1);
	setenv("LISTEN_FDNAMES", "web", 1);
	if (sd_event_new(&e) < 0 || http_server_new(e, NULL, &s) < 0)
		_exit(11);
	if (http_server_listen_systemd(s, "metrics") != 0)
		_exit(12);
	if (http_server_listen_systemd(s, "web") != 1)
		_exit(14);
	http_server_add_route(s, "GET", "/hello", 0, child_on_hello, e);
	sd_event_add_time_relative(e, NULL, CLOCK_MONOTONIC, WAIT_USEC, 0, child_on_timeout, NULL);
	/* The answer is written before the handler's exit request ends the loop. */
	code = sd_event_loop(e);
	http_server_free(s);
	sd_event_unref(e);
	_exit(code);
}

static void test_listen_systemd(void **state)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	struct timeval tv = { .tv_sec = 5 };
	socklen_t len = sizeof sa;
	char buf[1024] = "", req[] = "GET /hello HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
	size_t got = 0;
	int lfd, fd, status;
	pid_t pid;

	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof sa), 0);
	assert_int_equal(listen(lfd, 8), 0);
	assert_int_equal(getsockname(lfd, (struct sockaddr *)&sa, &len), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		child_serve(lfd);
	close(lfd);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	assert_int_equal(send(fd, req, strlen(req), 0), (ssize_t)strlen(req));
	for (;;) {
		ssize_t n = recv(fd, buf + got, sizeof buf - 1 - got, 0);

		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_prefix(buf, "HTTP/1.1 200 OK\r\n");
	assert_string_equal(nth_body(buf, 1), "activated");
}

static void test_max_connections(void **state)
{
	struct fixture *f = *state;
	struct http_server_config cfg = { .max_connections = 1 };
	struct client a, b;

	fixture_start(f, &cfg);
	client_open(f, &a);
	client_send_str(f, &a, "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n");
	client_wait_responses(f, &a, 1);
	client_open(f, &b);
	client_send_str(f, &b, "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n");
	client_wait_eof(f, &b);
	assert_int_equal(b.in.len, 0);
	assert_int_equal(stats(f).connections_refused, 1);
	client_close(&b);
	/* The first one is unaffected; once it is gone there is room again. */
	buf_reset(&a.in);
	client_send_str(f, &a, "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n");
	client_wait_responses(f, &a, 1);
	client_close(&a);
	LOOP_UNTIL(f, stats(f).connections_active == 0);
	client_open(f, &b);
	client_send_str(f, &b, "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n");
	client_wait_responses(f, &b, 1);
	client_close(&b);
}

static void on_drained(struct http_server *s, void *u)
{
	struct fixture *f = u;

	f->drained = true;
}

static void test_shutdown(void **state)
{
	struct fixture *f = *state;
	struct sockaddr_in sa = { .sin_family = AF_INET };
	struct client idle, busy;
	int fd;

	fixture_start(f, NULL);
	client_open(f, &idle);
	client_send_str(f, &idle, "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n");
	client_wait_responses(f, &idle, 1);
	client_open(f, &busy);
	client_send_str(f, &busy, "GET /async HTTP/1.1\r\nHost: t\r\n\r\n");
	LOOP_UNTIL(f, f->async.held);

	http_server_shutdown(f->s, on_drained, f);
	/* No new connections. */
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	sa.sin_port = htons((uint16_t)f->port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), -1);
	assert_int_equal(errno, ECONNREFUSED);
	close(fd);
	/* The idle one is closed at once; the busy one gets its answer, then closes. */
	client_wait_eof(f, &idle);
	for (int i = 0; i < 5; i++)
		loop_step(f);
	assert_false(f->drained);
	assert_int_equal(http_reply(f->async.held, 200, "text/plain", "bye", 3), 0);
	http_request_unref(TAKE_PTR(f->async.held));
	client_wait_eof(f, &busy);
	assert_prefix(busy.in.data, "HTTP/1.1 200 OK\r\n");
	assert_non_null(strstr(busy.in.data, "\r\nConnection: close\r\n"));
	assert_string_equal(nth_body(busy.in.data, 1), "bye");
	client_close(&idle);
	client_close(&busy);
	LOOP_UNTIL(f, f->drained);
	assert_int_equal(stats(f).connections_active, 0);
}

/* ---- many connections at once ---- */

#define MANY_CLIENTS 150

/* Loop iterations that dispatched something until every client has n responses. */
static unsigned dispatches_until_answered(struct fixture *f, struct client *cl, size_t n_cl,
					  unsigned n)
{
	uint64_t end = now_usec() + WAIT_USEC;
	unsigned dispatches = 0;

	for (;;) {
		size_t done = 0;
		int r;

		for (size_t i = 0; i < n_cl; i++) {
			client_poll(&cl[i]);
			done += count_responses(cl[i].in.data) >= n;
		}
		if (done == n_cl)
			return dispatches;
		assert_true(now_usec() < end);
		r = sd_event_run(f->e, 10 * MS);
		assert_true(r >= 0);
		dispatches += r > 0;
	}
}

static void test_many_ready(void **state)
{
	struct fixture *f = *state;
	struct client *cl = calloc(MANY_CLIENTS, sizeof *cl);

	assert_non_null(cl);
	fixture_start(f, NULL);
	for (size_t i = 0; i < MANY_CLIENTS; i++)
		client_open(f, &cl[i]);
	LOOP_UNTIL(f, stats(f).connections_accepted == MANY_CLIENTS);
	for (size_t i = 0; i < MANY_CLIENTS; i++)
		client_send_str(f, &cl[i], "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n");
	/* Every connection with a request waiting is served by a few passes of the loop, not
	 * one pass each. */
	assert_true(dispatches_until_answered(f, cl, MANY_CLIENTS, 1) <= 4);
	for (size_t i = 0; i < MANY_CLIENTS; i++) {
		assert_prefix(cl[i].in.data, "HTTP/1.1 200 OK\r\n");
		assert_string_equal(nth_body(cl[i].in.data, 1), "hello");
		client_close(&cl[i]);
	}
	assert_int_equal(stats(f).requests, MANY_CLIENTS);
	free(cl);
}

static void test_busy_does_not_starve(void **state)
{
	struct fixture *f = *state;
	static const char req[] = "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n";
	struct client cl[2];
	struct buf flood = BUF_INIT(0);

	fixture_start(f, NULL);
	client_open(f, &cl[0]);
	client_open(f, &cl[1]);
	LOOP_UNTIL(f, stats(f).connections_accepted == 2);
	/* One client pipelines 200 requests, then another sends one: the second is answered
	 * while the first still has most of its answers to come. */
	for (int i = 0; i < 200; i++)
		assert_int_equal(buf_append(&flood, req, sizeof req - 1), 0);
	client_send(f, &cl[0], flood.data, flood.len);
	client_send_str(f, &cl[1], req);
	dispatches_until_answered(f, &cl[1], 1, 1);
	client_poll(&cl[0]);
	assert_true(count_responses(cl[0].in.data) < 100);
	client_wait_responses(f, &cl[0], 200);
	client_close(&cl[0]);
	client_close(&cl[1]);
	buf_free(&flood);
}

static int h_stop(struct http_request *req, void *u)
{
	struct fixture *f = u;

	http_server_shutdown(f->s, on_drained, f);
	return http_reply(req, 200, "text/plain", "stopping", 8);
}

static void test_shutdown_in_batch(void **state)
{
	struct fixture *f = *state;
	struct client stop, idle;

	fixture_start(f, NULL);
	assert_int_equal(http_server_add_route(f->s, "GET", "/stop", 0, h_stop, f), 0);
	client_open(f, &stop);
	client_open(f, &idle);
	LOOP_UNTIL(f, stats(f).connections_accepted == 2);
	/* Both are ready in the same pass; the first one's handler shuts the server down,
	 * which closes the second (idle until its bytes are read) before its turn. */
	client_send_str(f, &stop, "GET /stop HTTP/1.1\r\nHost: t\r\n\r\n");
	client_send_str(f, &idle, "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n");
	client_wait_eof(f, &stop);
	client_wait_eof(f, &idle);
	assert_prefix(stop.in.data, "HTTP/1.1 200 OK\r\n");
	assert_non_null(strstr(stop.in.data, "\r\nConnection: close\r\n"));
	assert_int_equal(idle.in.len, 0);
	LOOP_UNTIL(f, f->drained);
	assert_int_equal(stats(f).requests, 1);
	client_close(&stop);
	client_close(&idle);
}

static void test_process_buffer(void **state)
{
	struct fixture *f = *state;
	struct buf out = BUF_INIT(0);
	static const char in1[] = "GET /hello HTTP/1.1\r\n\r\n"
				  "POST /echo HTTP/1.1\r\nContent-Length: 2\r\n\r\nok"
				  "BAD\r\n\r\n";
	static const char in2[] = "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n"
				  "GET /async HTTP/1.1\r\nHost: t\r\n\r\n";

	fixture_start(f, NULL);
	assert_int_equal(http_server_process_buffer(f->s, in1, sizeof in1 - 1, &out), 0);
	assert_int_equal(count_responses(out.data), 3);
	assert_prefix(out.data, "HTTP/1.1 200 OK\r\n");
	assert_memory_equal(nth_body(out.data, 2), "ok", 2);
	assert_prefix(nth_body(out.data, 2) + 2, "HTTP/1.1 400 Bad Request\r\n");
	buf_reset(&out);

	/* A handler still busy when the input ends sees its client go away. */
	assert_int_equal(http_server_process_buffer(f->s, in2, sizeof in2 - 1, &out), 0);
	assert_int_equal(count_responses(out.data), 1);
	assert_int_equal(f->async.calls, 1);
	assert_int_equal(f->async.cancels, 1);
	assert_int_equal(http_reply(f->async.held, 200, NULL, NULL, 0), -ENOTCONN);
	buf_free(&out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_routing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_404_405_head, setup, teardown),
		cmocka_unit_test_setup_teardown(test_keepalive, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pipelining, setup, teardown),
		cmocka_unit_test_setup_teardown(test_chunked_body, setup, teardown),
		cmocka_unit_test_setup_teardown(test_expect_continue, setup, teardown),
		cmocka_unit_test_setup_teardown(test_limits, setup, teardown),
		cmocka_unit_test_setup_teardown(test_timeouts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_async_reply, setup, teardown),
		cmocka_unit_test_setup_teardown(test_async_disconnect, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tls, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tls_pipelining, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tls_idle, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tls_reload, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tls_client_cert, setup, teardown),
		cmocka_unit_test_setup_teardown(test_curl_interop, setup, teardown),
		cmocka_unit_test_setup_teardown(test_upgrade_plain, setup, teardown),
		cmocka_unit_test_setup_teardown(test_upgrade_tls, setup, teardown),
		cmocka_unit_test_setup_teardown(test_upgrade_backpressure, setup, teardown),
		cmocka_unit_test_setup_teardown(test_listen_fd, setup, teardown),
		cmocka_unit_test_setup_teardown(test_listen_address, setup, teardown),
		cmocka_unit_test_setup_teardown(test_listen_systemd, setup, teardown),
		cmocka_unit_test_setup_teardown(test_max_connections, setup, teardown),
		cmocka_unit_test_setup_teardown(test_shutdown, setup, teardown),
		cmocka_unit_test_setup_teardown(test_many_ready, setup, teardown),
		cmocka_unit_test_setup_teardown(test_busy_does_not_starve, setup, teardown),
		cmocka_unit_test_setup_teardown(test_shutdown_in_batch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_process_buffer, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
