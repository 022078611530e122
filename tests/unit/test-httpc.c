/* httpc: requests against a small HTTP/1.1 server forked by the test (plain and TLS, one
 * process per connection, keep-alive, chunked request bodies, Expect: 100-continue). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>

#include "cocoon/buf.h"
#include "cocoon/httpc.h"

/* ---- the test server (runs in forked children only) ---- */

struct conn {
	int fd;
	SSL *ssl;
	struct buf in;
};

static ssize_t conn_read_more(struct conn *c)
{
	char tmp[16384];
	ssize_t n;

	n = c->ssl ? SSL_read(c->ssl, tmp, sizeof tmp) : read(c->fd, tmp, sizeof tmp);
	if (n <= 0)
		return -1;
	if (buf_append(&c->in, tmp, (size_t)n) < 0)
		return -1;
	return n;
}

static int conn_write(struct conn *c, const void *p, size_t n)
{
	const char *s = p;

	while (n > 0) {
		ssize_t k = c->ssl ? SSL_write(c->ssl, s, (int)n) : send(c->fd, s, n, MSG_NOSIGNAL);
		if (k <= 0)
			return -1;
		s += k;
		n -= (size_t)k;
	}
	return 0;
}

_printf_(2, 3) static int conn_printf(struct conn *c, const char *fmt, ...)
{
	char *s;
	va_list ap;
	int n, r;

	va_start(ap, fmt);
	n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n < 0)
		return -1;
	r = conn_write(c, s, (size_t)n);
	free(s);
	return r;
}

/* Position just past the next "\r\n" in the input, reading more as needed; 0 on EOF. */
static size_t conn_line(struct conn *c)
{
	for (;;) {
		char *e = c->in.data ? memmem(c->in.data, c->in.len, "\r\n", 2) : NULL;
		if (e)
			return (size_t)(e - c->in.data) + 2;
		if (conn_read_more(c) < 0)
			return 0;
	}
}

static int conn_take(struct conn *c, size_t n, struct buf *out)
{
	while (c->in.len < n)
		if (conn_read_more(c) < 0)
			return -1;
	if (out && buf_append(out, c->in.data, n) < 0)
		return -1;
	buf_consume(&c->in, n);
	return 0;
}

static int read_chunked(struct conn *c, struct buf *body)
{
	for (;;) {
		size_t l = conn_line(c), size;

		if (l == 0)
			return -1;
		size = strtoul(c->in.data, NULL, 16);
		buf_consume(&c->in, l);
		if (size == 0) {
			while ((l = conn_line(c)) > 2) /* trailers */
				buf_consume(&c->in, l);
			return l == 2 ? conn_take(c, 2, NULL) : -1;
		}
		if (conn_take(c, size, body) < 0 || conn_take(c, 2, NULL) < 0)
			return -1;
	}
}

struct request {
	char method[16], path[2048], auth[512], ctype[256];
	bool chunked, expect, close;
	size_t length;
	struct buf body;
};

static int read_request(struct conn *c, struct request *q)
{
	size_t l = conn_line(c);

	memset(q, 0, sizeof *q);
	if (l == 0 || sscanf(c->in.data, "%15s %2047s", q->method, q->path) != 2)
		return -1;
	buf_consume(&c->in, l);
	while ((l = conn_line(c)) > 2) {
		char *h = c->in.data, *v = memchr(h, ':', l);

		if (v) {
			*v++ = 0;
			v += strspn(v, " ");
			v[strcspn(v, "\r")] = 0;
			if (strcasecmp(h, "Content-Length") == 0)
				q->length = strtoul(v, NULL, 10);
			else if (strcasecmp(h, "Transfer-Encoding") == 0)
				q->chunked = strcasecmp(v, "chunked") == 0;
			else if (strcasecmp(h, "Expect") == 0)
				q->expect = true;
			else if (strcasecmp(h, "Connection") == 0)
				q->close = strcasecmp(v, "close") == 0;
			else if (strcasecmp(h, "Authorization") == 0)
				snprintf(q->auth, sizeof q->auth, "%s", v);
			else if (strcasecmp(h, "Content-Type") == 0)
				snprintf(q->ctype, sizeof q->ctype, "%s", v);
		}
		buf_consume(&c->in, l);
	}
	if (l == 0)
		return -1;
	buf_consume(&c->in, 2);
	if (q->expect && conn_printf(c, "HTTP/1.1 100 Continue\r\n\r\n") < 0)
		return -1;
	if (q->chunked)
		return read_chunked(c, &q->body);
	return conn_take(c, q->length, &q->body);
}

static int respond(struct conn *c, const struct request *q, int status, const char *extra,
		   const void *body, size_t n)
{
	if (conn_printf(c, "HTTP/1.1 %d X\r\nContent-Length: %zu\r\n%s\r\n", status, n,
			extra ? extra : "") < 0)
		return -1;
	return streq(q->method, "HEAD") ? 0 : conn_write(c, body, n);
}

static uint8_t pattern(size_t i)
{
	return (uint8_t)(i % 251);
}

static int serve_big(struct conn *c, const struct request *q, size_t n)
{
	uint8_t block[16384];

	if (conn_printf(c, "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n", n) < 0)
		return -1;
	for (size_t off = 0; off < n;) {
		size_t k = MIN(sizeof block, n - off);
		for (size_t i = 0; i < k; i++)
			block[i] = pattern(off + i);
		if (conn_write(c, block, k) < 0)
			return -1;
		off += k;
	}
	return 0;
}

/* A chunked response trickling out like a watch stream: n events 20 ms apart. */
static int serve_stream(struct conn *c, unsigned n)
{
	if (conn_printf(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n") < 0)
		return -1;
	for (unsigned i = 0; i < n; i++) {
		char ev[32];
		int k = snprintf(ev, sizeof ev, "event %u\n", i);
		if (conn_printf(c, "%x\r\n%s\r\n", k, ev) < 0)
			return -1;
		usleep(20 * 1000);
	}
	return conn_printf(c, "0\r\n\r\n");
}

static int route(struct conn *c, struct request *q)
{
	const char *p = q->path;
	char extra[512];

	if (streq(p, "/hello"))
		return respond(c, q, 200,
			       "Content-Type: text/plain\r\nX-Multi: one\r\nX-Multi: two\r\n",
			       "hello, world\n", 13);
	if (streq(p, "/echo")) {
		snprintf(extra, sizeof extra, "X-Method: %s\r\nX-Chunked: %s\r\nX-Type: %s\r\n",
			 q->method, q->chunked ? "yes" : "no", q->ctype);
		return respond(c, q, 200, extra, q->body.data, q->body.len);
	}
	if (streq(p, "/auth"))
		return respond(c, q, 200, NULL, *q->auth ? q->auth : "none",
			       strlen(*q->auth ? q->auth : "none"));
	if (strncmp(p, "/big/", 5) == 0)
		return serve_big(c, q, strtoul(p + 5, NULL, 10));
	if (strncmp(p, "/stream/", 8) == 0)
		return serve_stream(c, (unsigned)strtoul(p + 8, NULL, 10));
	if (strncmp(p, "/delay/", 7) == 0) {
		usleep((useconds_t)strtoul(p + 7, NULL, 10) * 1000);
		return respond(c, q, 200, NULL, "done", 4);
	}
	if (streq(p, "/slow")) {
		sleep(30);
		return -1;
	}
	if (strncmp(p, "/status/", 8) == 0)
		return respond(c, q, atoi(p + 8), NULL, "status body", 11);
	if (strncmp(p, "/redirect?to=", 13) == 0) {
		snprintf(extra, sizeof extra, "Location: %s\r\n", p + 13);
		return respond(c, q, 302, extra, "moved", 5);
	}
	if (strncmp(p, "/headers/", 9) == 0) {
		unsigned n = (unsigned)strtoul(p + 9, NULL, 10);
		if (conn_printf(c, "HTTP/1.1 200 OK\r\n") < 0)
			return -1;
		for (unsigned i = 0; i < n; i++)
			if (conn_printf(c, "X-H-%u: %u\r\n", i, i) < 0)
				return -1;
		return conn_printf(c, "Content-Length: 2\r\n\r\nok");
	}
	if (streq(p, "/loop"))
		return respond(c, q, 302, "Location: /loop\r\n", "", 0);
	return respond(c, q, 404, NULL, "not found", 9);
}

static _Noreturn void serve_connection(int fd, SSL_CTX *ctx)
{
	struct conn c = { .fd = fd, .in = BUF_INIT(0) };
	struct request q;

	if (ctx) {
		c.ssl = SSL_new(ctx);
		SSL_set_fd(c.ssl, fd);
		if (SSL_accept(c.ssl) <= 0)
			_exit(0);
	}
	while (read_request(&c, &q) >= 0) {
		int r = route(&c, &q);
		buf_free(&q.body);
		if (r < 0 || q.close)
			break;
	}
	if (c.ssl)
		SSL_shutdown(c.ssl);
	_exit(0);
}

static SSL_CTX *server_tls(const char *dir, bool want_client_cert)
{
	char crt[512], key[512], ca[512];
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

	snprintf(crt, sizeof crt, "%s/server.crt", dir);
	snprintf(key, sizeof key, "%s/server.key", dir);
	snprintf(ca, sizeof ca, "%s/client.crt", dir);
	if (!ctx || SSL_CTX_use_certificate_file(ctx, crt, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1)
		_exit(2);
	if (want_client_cert) {
		if (SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1)
			_exit(2);
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
	}
	return ctx;
}

struct server {
	pid_t pid;
	int port;
};

/* tls_dir NULL: plain HTTP. The server and its per-connection children form one process
 * group, killed together by server_stop(). */
static void server_start(const char *tls_dir, bool want_client_cert, struct server *ret)
{
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t sl = sizeof sa;
	int pfd[2], port = 0;
	pid_t pid;

	assert_int_equal(pipe2(pfd, O_CLOEXEC), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		SSL_CTX *ctx = tls_dir ? server_tls(tls_dir, want_client_cert) : NULL;
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

		setpgid(0, 0);
		signal(SIGCHLD, SIG_IGN);
		signal(SIGPIPE, SIG_IGN);
		if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 ||
		    listen(fd, 64) < 0 || getsockname(fd, (struct sockaddr *)&sa, &sl) < 0)
			_exit(1);
		port = ntohs(sa.sin_port);
		if (write(pfd[1], &port, sizeof port) != sizeof port)
			_exit(1);
		for (;;) {
			int cfd = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
			if (cfd < 0)
				continue;
			if (fork() == 0) {
				close(fd);
				serve_connection(cfd, ctx);
			}
			close(cfd);
		}
	}
	setpgid(pid, pid);
	close(pfd[1]);
	assert_int_equal(read(pfd[0], &port, sizeof port), sizeof port);
	close(pfd[0]);
	ret->pid = pid;
	ret->port = port;
}

static void server_stop(struct server *s)
{
	if (s->pid <= 0)
		return;
	kill(-s->pid, SIGKILL);
	waitpid(s->pid, NULL, 0);
	s->pid = 0;
}

/* ---- client side helpers ---- */

static struct server srv;
static sd_event *event;
static struct httpc *client;

/* Everything one request's callbacks see (they share one userdata). */
struct result {
	bool done;
	int error;
	long status;
	char message[256];
	struct buf body;
	const char *want[4]; /* headers to keep from the final response */
	char *header[4];
	char *url;

	struct httpc_request *req;
	sd_event_source *resume;
	unsigned pauses_left;

	size_t up_total, up_sent; /* streamed upload */
	unsigned up_calls;
	size_t up_max_room; /* the most room curl offered the read callback */

	size_t down_bytes; /* streamed download */
	unsigned down_chunks;
	long down_status;
	char *down_length;
	bool down_bad;

	int data_error; /* returned by the data callback */
	bool cancel_self_in_data;
	bool cancel_self_in_done;
	struct httpc_request *cancel_other; /* cancelled from on_data or on_done */
	const char *chain_url; /* started from on_data or on_done, reporting to *chain */
	struct result *chain;
};

static void result_clear(struct result *r)
{
	buf_free(&r->body);
	for (size_t i = 0; i < ELEMENTSOF(r->header); i++)
		free(r->header[i]);
	free(r->url);
	free(r->down_length);
	sd_event_source_unref(r->resume);
	memset(r, 0, sizeof *r);
}

static struct httpc_request *start(struct httpc_params p, struct result *r);

static void start_chain(struct result *r)
{
	if (r->chain_url) {
		start((struct httpc_params){ .url = r->chain_url }, r->chain);
		r->chain_url = NULL;
	}
}

static void on_done(struct httpc_request *req, struct httpc_response *resp, void *userdata)
{
	struct result *r = userdata;
	size_t n;
	char *body;

	assert_false(r->done); /* exactly once */
	r->done = true;
	r->error = resp->error;
	r->status = resp->status;
	snprintf(r->message, sizeof r->message, "%s", resp->error_message);
	body = buf_steal(&resp->body, &n);
	assert_non_null(body);
	r->body = (struct buf){ .data = body, .len = n, .alloc = n + 1 };
	r->url = resp->url ? strdup(resp->url) : NULL;
	for (size_t i = 0; i < ELEMENTSOF(r->want) && r->want[i]; i++) {
		const char *v = httpc_response_header(resp, r->want[i], 0);
		r->header[i] = v ? strdup(v) : NULL;
	}
	if (r->cancel_other)
		httpc_request_cancel(r->cancel_other);
	if (r->cancel_self_in_done)
		httpc_request_cancel(req); /* a no-op: the request is completing */
	start_chain(r);
}

static uint64_t now_usec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/* Run the loop until *flag turns true; fail the test after max_usec. */
static void run_until(bool *flag, uint64_t max_usec)
{
	uint64_t end = now_usec() + max_usec;

	while (!*flag) {
		assert_true(now_usec() < end);
		assert_true(sd_event_run(event, 50 * 1000) >= 0);
	}
}

static void run_for(uint64_t usec)
{
	uint64_t end = now_usec() + usec, t;

	while ((t = now_usec()) < end)
		assert_true(sd_event_run(event, end - t) >= 0);
}

static const char *url_on(const char *host, const char *path)
{
	static char u[4][1024];
	static int i;

	i = (i + 1) % 4;
	snprintf(u[i], sizeof u[i], "http://%s:%d%s", host, srv.port, path);
	return u[i];
}

static const char *url(const char *path)
{
	return url_on("127.0.0.1", path);
}

static struct httpc_request *start(struct httpc_params p, struct result *r)
{
	struct httpc_request *req = NULL;

	p.on_done = on_done;
	p.userdata = r;
	assert_int_equal(httpc_request_start(client, &p, &req), 0);
	assert_non_null(req);
	return req;
}

static void fetch(struct httpc_params p, struct result *r)
{
	start(p, r);
	run_until(&r->done, 10 * 1000 * 1000);
}

static int on_resume(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct result *r = userdata;

	assert_int_equal(httpc_request_resume(r->req), 0);
	return 0;
}

/* Pause the transfer and resume it from the loop 20 ms later. */
static int pause_request(struct result *r, struct httpc_request *req)
{
	r->pauses_left--;
	r->req = req;
	sd_event_source_unref(r->resume);
	assert_int_equal(sd_event_add_time_relative(event, &r->resume, CLOCK_MONOTONIC, 20 * 1000,
						    0, on_resume, r),
			 0);
	return -EAGAIN;
}

static int free_port(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t sl = sizeof sa;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
	close(fd);
	return ntohs(sa.sin_port);
}

static void fill_pattern(uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = pattern(i);
}

/* ---- tests ---- */

static void test_get_body_and_headers(void **state)
{
	struct result r = { .want = { "content-TYPE", "Content-Length" } };

	fetch((struct httpc_params){ .url = url("/hello") }, &r);
	assert_int_equal(r.error, 0);
	assert_string_equal(r.message, "");
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body.data, "hello, world\n");
	assert_string_equal(r.header[0], "text/plain");
	assert_string_equal(r.header[1], "13");
	assert_string_equal(r.url, url("/hello"));
	result_clear(&r);

	/* HEAD: headers, no body */
	r = (struct result){ .want = { "Content-Length" } };
	fetch((struct httpc_params){ .method = HTTPC_HEAD, .url = url("/hello") }, &r);
	assert_int_equal(r.status, 200);
	assert_int_equal(r.body.len, 0);
	assert_string_equal(r.header[0], "13");
	result_clear(&r);

	/* an HTTP error status is not a transport error, and its body is kept */
	fetch((struct httpc_params){ .url = url("/status/503") }, &r);
	assert_int_equal(r.error, 0);
	assert_int_equal(r.status, 503);
	assert_string_equal(r.body.data, "status body");
	result_clear(&r);
}

static void multi_value_done(struct httpc_request *req, struct httpc_response *resp, void *userdata)
{
	bool *done = userdata;

	assert_string_equal(httpc_response_header(resp, "x-multi", 0), "one");
	assert_string_equal(httpc_response_header(resp, "X-MULTI", 1), "two");
	assert_null(httpc_response_header(resp, "x-multi", 2));
	assert_null(httpc_response_header(resp, "x-absent", 0));
	*done = true;
}

static void test_multi_value_headers(void **state)
{
	struct httpc_params p = { .url = url("/hello"), .on_done = multi_value_done };
	bool done = false;

	p.userdata = &done;
	assert_int_equal(httpc_request_start(client, &p, NULL), 0);
	run_until(&done, 5 * 1000 * 1000);
}

static void test_bodies_byte_exact(void **state)
{
	static const enum httpc_method methods[] = { HTTPC_POST, HTTPC_PUT, HTTPC_PATCH,
						     HTTPC_DELETE };
	size_t n = 200 * 1000;
	uint8_t *body = malloc(n);
	struct result r;

	assert_non_null(body);
	fill_pattern(body, n);
	body[10] = 0; /* NUL and CR LF inside the body must survive */
	memcpy(body + 20, "\r\n\r\n", 4);
	for (size_t i = 0; i < ELEMENTSOF(methods); i++) {
		r = (struct result){ .want = { "X-Method", "X-Type", "X-Chunked" } };
		fetch(
		    (struct httpc_params){
			.method = methods[i], .url = url("/echo"), .body = body, .body_size = n },
		    &r);
		assert_int_equal(r.error, 0);
		assert_int_equal(r.status, 200);
		assert_string_equal(r.header[0], httpc_method_to_string(methods[i]));
		assert_string_equal(r.header[1], "application/octet-stream");
		assert_string_equal(r.header[2], "no");
		assert_int_equal(r.body.len, n);
		assert_memory_equal(r.body.data, body, n);
		result_clear(&r);
	}
	free(body);

	/* the caller's Content-Type wins */
	r = (struct result){ .want = { "X-Method", "X-Type" } };
	fetch((struct httpc_params){ .method = HTTPC_PATCH,
				     .url = url("/echo"),
				     .headers =
					 (const char *const[]){
					     "Content-Type: application/merge-patch+json", NULL },
				     .body = "{\"a\":1}",
				     .body_size = 7 },
	      &r);
	assert_string_equal(r.header[0], "PATCH");
	assert_string_equal(r.header[1], "application/merge-patch+json");
	assert_string_equal(r.body.data, "{\"a\":1}");
	result_clear(&r);

	/* PUT without a body sends an empty one */
	r = (struct result){ .want = { "X-Method" } };
	fetch((struct httpc_params){ .method = HTTPC_PUT, .url = url("/echo") }, &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.header[0], "PUT");
	assert_int_equal(r.body.len, 0);
	result_clear(&r);
}

static ssize_t upload_read(struct httpc_request *req, void *p, size_t size, void *userdata)
{
	struct result *r = userdata;
	size_t k = MIN(MIN(size, r->up_total - r->up_sent), 1000 + r->up_calls * 37);

	r->up_calls++;
	r->up_max_room = MAX(r->up_max_room, size);
	if (r->pauses_left > 0 && r->up_sent > r->up_total / 2)
		return pause_request(r, req); /* no data "yet" */
	for (size_t i = 0; i < k; i++)
		((uint8_t *)p)[i] = pattern(r->up_sent + i);
	r->up_sent += k;
	return (ssize_t)k;
}

static void check_upload(int64_t declared, unsigned pauses, const char *chunked)
{
	struct result r = { .want = { "X-Chunked" },
			    .up_total = 300 * 1000,
			    .pauses_left = pauses };
	uint8_t *expect = malloc(r.up_total);

	assert_non_null(expect);
	fetch((struct httpc_params){ .method = HTTPC_POST,
				     .url = url("/echo"),
				     .read = upload_read,
				     .read_size = declared },
	      &r);
	assert_int_equal(r.error, 0);
	assert_string_equal(r.header[0], chunked);
	assert_int_equal(r.body.len, r.up_total);
	fill_pattern(expect, r.up_total);
	assert_memory_equal(r.body.data, expect, r.up_total);
	assert_int_equal(r.pauses_left, 0);
	free(expect);
	result_clear(&r);
}

static void test_streamed_upload(void **state)
{
	check_upload(0, 0, "yes");         /* unknown length: chunked */
	check_upload(300 * 1000, 0, "no"); /* known length: Content-Length */
	check_upload(-1, 1, "yes");        /* paused once, resumed from the loop */
}

static int download_data(struct httpc_request *req, const struct httpc_response *resp,
			 const void *p, size_t n, void *userdata)
{
	struct result *r = userdata;
	const uint8_t *b = p;

	if (r->down_chunks == 0) {
		const char *len = httpc_response_header(resp, "Content-Length", 0);
		r->down_status = resp->status;
		r->down_length = len ? strdup(len) : NULL;
	}
	if (r->data_error)
		return r->data_error;
	if (r->cancel_self_in_data) {
		r->down_chunks++;
		httpc_request_cancel(req);
		return 0;
	}
	if (r->cancel_other) {
		httpc_request_cancel(r->cancel_other);
		r->cancel_other = NULL;
	}
	start_chain(r);
	if (r->pauses_left > 0 && r->down_chunks == 2)
		return pause_request(r, req); /* this chunk is offered again */
	for (size_t i = 0; i < n; i++)
		if (b[i] != pattern(r->down_bytes + i))
			r->down_bad = true;
	r->down_chunks++;
	r->down_bytes += n;
	return 0;
}

static void test_streamed_download(void **state)
{
	size_t n = 1024 * 1024;

	for (unsigned pauses = 0; pauses <= 1; pauses++) {
		struct result r = { .pauses_left = pauses };

		fetch(
		    (struct httpc_params){ .url = url("/big/1048576"),
					   .on_data = download_data,
					   .max_body = 1000 /* streamed bodies are not capped */ },
		    &r);
		assert_int_equal(r.error, 0);
		assert_int_equal(r.status, 200);
		assert_int_equal(r.down_status, 200);
		assert_string_equal(r.down_length, "1048576");
		assert_true(r.down_chunks > 1);
		assert_int_equal(r.down_bytes, n);
		assert_false(r.down_bad);
		assert_int_equal(r.body.len, 0);
		assert_int_equal(r.pauses_left, 0);
		result_clear(&r);
	}

	/* an error status is buffered for on_done instead of streamed */
	struct result r = { 0 };
	fetch((struct httpc_params){ .url = url("/status/410"), .on_data = download_data }, &r);
	assert_int_equal(r.status, 410);
	assert_int_equal(r.down_chunks, 0);
	assert_string_equal(r.body.data, "status body");
	result_clear(&r);

	/* a data callback error aborts the transfer with that error */
	r = (struct result){ .data_error = -EBADMSG };
	fetch((struct httpc_params){ .url = url("/stream/5"), .on_data = download_data }, &r);
	assert_int_equal(r.error, -EBADMSG);
	assert_non_null(strstr(r.message, "data callback"));
	result_clear(&r);
}

/* buffer_size: curl's buffers for bulk bodies (its defaults are 64 KiB up, 16 KiB down).
 * The upload side shows in the room offered to the read callback; the download side only in
 * fewer recv calls (curl still hands the data callback 16 KiB at most), so it is checked
 * for delivering every byte intact, paused once. */
static void test_buffer_size(void **state)
{
	for (size_t size = 0; size <= 256 * 1024; size += 256 * 1024) {
		struct result r = { .up_total = 1000 * 1000 };

		fetch((struct httpc_params){ .method = HTTPC_PUT,
					     .url = url("/echo"),
					     .read = upload_read,
					     .read_size = 1000 * 1000,
					     .buffer_size = size },
		      &r);
		assert_int_equal(r.error, 0);
		assert_int_equal(r.body.len, r.up_total);
		assert_int_equal(r.up_max_room, size ? size : 64 * 1024);
		result_clear(&r);

		r = (struct result){ .pauses_left = 1 };
		fetch((struct httpc_params){ .url = url("/big/1048576"),
					     .on_data = download_data,
					     .buffer_size = size },
		      &r);
		assert_int_equal(r.error, 0);
		assert_int_equal(r.down_bytes, 1048576);
		assert_false(r.down_bad);
		result_clear(&r);
	}
}

static void test_body_cap(void **state)
{
	struct result r = { 0 };

	fetch((struct httpc_params){ .url = url("/big/100000"), .max_body = 1000 }, &r);
	assert_int_equal(r.error, -E2BIG);
	assert_non_null(strstr(r.message, "cap of 1000 bytes"));
	result_clear(&r);

	fetch((struct httpc_params){ .url = url("/big/1000"), .max_body = 1000 }, &r);
	assert_int_equal(r.error, 0);
	assert_int_equal(r.body.len, 1000);
	result_clear(&r);

	/* headers are capped too */
	r = (struct result){ .want = { "X-H-1022" } }; /* 1024 with Content-Length */
	fetch((struct httpc_params){ .url = url("/headers/1023") }, &r);
	assert_int_equal(r.error, 0);
	assert_string_equal(r.header[0], "1022");
	result_clear(&r);
	fetch((struct httpc_params){ .url = url("/headers/1024") }, &r);
	assert_int_equal(r.error, -E2BIG);
	assert_non_null(strstr(r.message, "headers"));
	result_clear(&r);

	/* the default cap */
	fetch((struct httpc_params){ .url = url("/big/16777217") }, &r);
	assert_int_equal(r.error, -E2BIG);
	result_clear(&r);
}

static void test_connection_refused(void **state)
{
	char u[64], port[16];
	struct result r = { 0 };
	int p = free_port();

	snprintf(u, sizeof u, "http://127.0.0.1:%d/", p);
	snprintf(port, sizeof port, "%d", p);
	fetch((struct httpc_params){ .url = u }, &r);
	assert_int_equal(r.error, -ECONNREFUSED);
	assert_int_equal(r.status, 0);
	assert_non_null(strstr(r.message, port)); /* names where it tried */
	result_clear(&r);
}

static void test_timeouts(void **state)
{
	struct result r = { 0 };
	uint64_t t = now_usec();

	fetch((struct httpc_params){ .url = url("/slow"), .timeout_usec = 300 * 1000 }, &r);
	assert_int_equal(r.error, -ETIMEDOUT);
	assert_non_null(strstr(r.message, "timed out"));
	assert_true(now_usec() - t >= 300 * 1000);
	assert_true(now_usec() - t < 3 * 1000 * 1000);
	result_clear(&r);

	/* a stream that goes quiet */
	t = now_usec();
	fetch(
	    (struct httpc_params){ .url = url("/slow"), .low_speed_bytes = 1, .low_speed_sec = 1 },
	    &r);
	assert_int_equal(r.error, -ETIMEDOUT);
	assert_non_null(strstr(r.message, "too slow"));
	assert_true(now_usec() - t < 4 * 1000 * 1000);
	result_clear(&r);
}

static int on_cancel_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
	httpc_request_cancel(userdata);
	return 0;
}

static void test_cancel(void **state)
{
	struct result target = { 0 }, hello = { 0 }, stream = { 0 };
	sd_event_source *timer = NULL;
	struct httpc_request *req;

	/* Each cancelled target would answer after 300 ms; the loop runs past that. */

	/* from the loop: the other request is not disturbed */
	req = start((struct httpc_params){ .url = url("/delay/300") }, &target);
	start((struct httpc_params){ .url = url("/hello") }, &hello);
	assert_int_equal(sd_event_add_time_relative(event, &timer, CLOCK_MONOTONIC, 100 * 1000, 0,
						    on_cancel_timer, req),
			 0);
	run_until(&hello.done, 5 * 1000 * 1000);
	run_for(400 * 1000);
	assert_false(target.done);
	assert_int_equal(hello.status, 200);
	timer = sd_event_source_unref(timer);
	result_clear(&hello);

	/* from inside its own data callback */
	stream.cancel_self_in_data = true;
	start((struct httpc_params){ .url = url("/stream/20"), .on_data = download_data }, &stream);
	run_for(200 * 1000);
	assert_int_equal(stream.down_chunks, 1);
	assert_false(stream.done);
	result_clear(&stream);

	/* another request, from a data callback (curl on the stack) */
	req = start((struct httpc_params){ .url = url("/delay/300") }, &target);
	stream.cancel_other = req;
	start((struct httpc_params){ .url = url("/stream/10"), .on_data = download_data }, &stream);
	run_until(&stream.done, 5 * 1000 * 1000);
	assert_int_equal(stream.error, 0);
	run_for(250 * 1000);
	assert_false(target.done);
	result_clear(&stream);

	/* another request from on_done, and itself from on_done (a no-op) */
	req = start((struct httpc_params){ .url = url("/delay/300") }, &target);
	hello.cancel_other = req;
	hello.cancel_self_in_done = true;
	start((struct httpc_params){ .url = url("/hello") }, &hello);
	run_until(&hello.done, 5 * 1000 * 1000);
	run_for(400 * 1000);
	assert_false(target.done);
	result_clear(&hello);

	/* freeing the client drops what is still running, without callbacks */
	struct httpc *c2 = NULL;
	struct httpc_params p = { .url = url("/delay/100"),
				  .on_done = on_done,
				  .userdata = &target };
	assert_int_equal(httpc_new(event, &c2), 0);
	assert_int_equal(httpc_request_start(c2, &p, NULL), 0);
	run_for(50 * 1000);
	httpc_free(c2);
	run_for(200 * 1000);
	assert_false(target.done);
}

/* Requests started from callbacks: from a data callback (curl on the stack, so httpc must
 * queue it) and from on_done. */
static void test_start_from_callbacks(void **state)
{
	struct result stream = { 0 }, from_data = { 0 }, from_done = { 0 };

	stream.chain_url = url("/hello");
	stream.chain = &from_data;
	from_data.chain_url = url("/echo");
	from_data.chain = &from_done;
	start((struct httpc_params){ .url = url("/stream/3"), .on_data = download_data }, &stream);
	run_until(&from_done.done, 5 * 1000 * 1000);
	run_until(&stream.done, 5 * 1000 * 1000);
	assert_int_equal(from_data.status, 200);
	assert_string_equal(from_data.body.data, "hello, world\n");
	assert_int_equal(from_done.status, 200);
	result_clear(&stream);
	result_clear(&from_data);
	result_clear(&from_done);
}

static void test_concurrent(void **state)
{
	struct result r[6] = { 0 };
	uint64_t t = now_usec();
	bool all = false;

	for (size_t i = 0; i < ELEMENTSOF(r); i++)
		start((struct httpc_params){ .url = url("/delay/400") }, &r[i]);
	while (!all) {
		assert_true(now_usec() - t < 5 * 1000 * 1000);
		assert_true(sd_event_run(event, 50 * 1000) >= 0);
		all = true;
		for (size_t i = 0; i < ELEMENTSOF(r); i++)
			all = all && r[i].done;
	}
	/* one after the other would take 2.4 s */
	assert_true(now_usec() - t < 1500 * 1000);
	for (size_t i = 0; i < ELEMENTSOF(r); i++) {
		assert_int_equal(r[i].status, 200);
		assert_string_equal(r[i].body.data, "done");
		result_clear(&r[i]);
	}
}

static void test_sync(void **state)
{
	_cleanup_(httpc_response_freep) struct httpc_response *resp = NULL;
	struct result up = { .up_total = 50 * 1000 };
	char u[64];

	assert_int_equal(httpc_perform_sync(&(struct httpc_params){ .url = url("/hello") }, &resp),
			 0);
	assert_int_equal(resp->error, 0);
	assert_int_equal(resp->status, 200);
	assert_string_equal(resp->body.data, "hello, world\n");
	assert_string_equal(httpc_response_header(resp, "x-multi", 1), "two");
	resp = httpc_response_free(resp);

	assert_int_equal(httpc_perform_sync(&(struct httpc_params){ .method = HTTPC_POST,
								    .url = url("/echo"),
								    .read = upload_read,
								    .read_size = -1,
								    .userdata = &up },
					    &resp),
			 0);
	assert_int_equal(resp->error, 0);
	assert_int_equal(resp->body.len, up.up_total);
	resp = httpc_response_free(resp);

	/* pausing cannot work without a loop */
	up = (struct result){ .up_total = 50 * 1000, .pauses_left = 1 };
	assert_int_equal(httpc_perform_sync(&(struct httpc_params){ .method = HTTPC_POST,
								    .url = url("/echo"),
								    .read = upload_read,
								    .read_size = -1,
								    .userdata = &up },
					    &resp),
			 0);
	assert_int_equal(resp->error, -EAGAIN);
	assert_non_null(strstr(resp->error_message, "blocking"));
	resp = httpc_response_free(resp);
	up.resume = sd_event_source_unref(up.resume);

	snprintf(u, sizeof u, "http://127.0.0.1:%d/", free_port());
	assert_int_equal(httpc_perform_sync(&(struct httpc_params){ .url = u }, &resp), 0);
	assert_int_equal(resp->error, -ECONNREFUSED);
	resp = httpc_response_free(resp);

	assert_int_equal(httpc_perform_sync(&(struct httpc_params){ .url = NULL }, &resp), -EINVAL);
	assert_null(resp);
}

static void test_bearer_and_redirects(void **state)
{
	struct result r = { .want = { "Location" } };
	char to[700];

	fetch((struct httpc_params){ .url = url("/auth"), .bearer_token = "s3cret" }, &r);
	assert_string_equal(r.body.data, "Bearer s3cret");
	result_clear(&r);

	/* not followed unless asked */
	r = (struct result){ .want = { "Location" } };
	fetch((struct httpc_params){ .url = url("/redirect?to=/hello") }, &r);
	assert_int_equal(r.status, 302);
	assert_string_equal(r.header[0], "/hello");
	result_clear(&r);

	/* same host: the token follows; the headers are those of the final response */
	snprintf(to, sizeof to, "/redirect?to=%s", url("/auth"));
	r = (struct result){ .want = { "Location" } };
	fetch((struct httpc_params){ .url = url(to),
				     .bearer_token = "s3cret",
				     .follow_redirects = true },
	      &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body.data, "Bearer s3cret");
	assert_string_equal(r.url, url("/auth"));
	assert_null(r.header[0]);
	result_clear(&r);

	/* another host name for the same server: the token stays behind */
	snprintf(to, sizeof to, "/redirect?to=%s", url_on("localhost", "/auth"));
	fetch((struct httpc_params){ .url = url(to),
				     .bearer_token = "s3cret",
				     .follow_redirects = true },
	      &r);
	assert_int_equal(r.error, 0);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body.data, "none");
	assert_string_equal(r.url, url_on("localhost", "/auth"));
	result_clear(&r);

	/* the same for an Authorization header given by hand */
	fetch((struct httpc_params){ .url = url(to),
				     .headers =
					 (const char *const[]){ "Authorization: Basic eDp5", NULL },
				     .follow_redirects = true },
	      &r);
	assert_string_equal(r.body.data, "none");
	result_clear(&r);

	fetch((struct httpc_params){ .url = url("/loop"),
				     .follow_redirects = true,
				     .max_redirects = 3 },
	      &r);
	assert_int_equal(r.error, -ELOOP);
	result_clear(&r);

	/* only http and https, also as redirect targets */
	fetch((struct httpc_params){ .url = url("/redirect?to=file:///etc/passwd"),
				     .follow_redirects = true },
	      &r);
	assert_int_equal(r.error, -EINVAL);
	assert_int_equal(r.body.len, 0);
	result_clear(&r);
}

static void test_invalid_params(void **state)
{
	static const char *const bad_headers[][2] = {
		{ "X-Evil: a\r\nInjected: b", NULL },
		{ "Bad Name: x", NULL },
		{ "NoColon", NULL },
		{ ": empty name", NULL },
	};
	struct httpc_params p;
	struct result r = { 0 };
	struct httpc_request *req = NULL;

	for (size_t i = 0; i < ELEMENTSOF(bad_headers); i++) {
		p = (struct httpc_params){ .url = url("/hello"),
					   .headers = bad_headers[i],
					   .on_done = on_done };
		assert_int_equal(httpc_request_start(client, &p, &req), -EINVAL);
	}
	assert_null(req);
	p = (struct httpc_params){ .url = url("/"), .bearer_token = "tok\n", .on_done = on_done };
	assert_int_equal(httpc_request_start(client, &p, NULL), -EINVAL);
	p = (struct httpc_params){ .url = url("/"),
				   .bearer_token = "tok",
				   .headers = (const char *const[]){ "authorization: x", NULL },
				   .on_done = on_done };
	assert_int_equal(httpc_request_start(client, &p, NULL), -EINVAL);
	p = (struct httpc_params){ .url = url("/"), .on_done = NULL };
	assert_int_equal(httpc_request_start(client, &p, NULL), -EINVAL);
	p = (struct httpc_params){ .on_done = on_done };
	assert_int_equal(httpc_request_start(client, &p, NULL), -EINVAL);
	p = (struct httpc_params){ .url = url("/"), .method = 42, .on_done = on_done };
	assert_int_equal(httpc_request_start(client, &p, NULL), -EINVAL);
	p = (struct httpc_params){ .url = url("/"),
				   .body = "x",
				   .body_size = 1,
				   .read = upload_read,
				   .on_done = on_done };
	assert_int_equal(httpc_request_start(client, &p, NULL), -EINVAL);
	p = (struct httpc_params){ .url = url("/"), .body_size = 5, .on_done = on_done };
	assert_int_equal(httpc_request_start(client, &p, NULL), -EINVAL);
	p = (struct httpc_params){ .url = url("/"),
				   .method = HTTPC_HEAD,
				   .body = "x",
				   .body_size = 1,
				   .on_done = on_done };
	assert_int_equal(httpc_request_start(client, &p, NULL), -EINVAL);
	p = (struct httpc_params){ .url = url("/"),
				   .tls = { .ca_file = "/x", .ca_pem = "y" },
				   .on_done = on_done };
	assert_int_equal(httpc_request_start(client, &p, NULL), -EINVAL);
	p = (struct httpc_params){ .url = url("/"), .tls = { .key_pem = "y" }, .on_done = on_done };
	assert_int_equal(httpc_request_start(client, &p, NULL), -EINVAL);

	/* well-formed but unusable: reported through the response */
	fetch((struct httpc_params){ .url = "ftp://127.0.0.1/x" }, &r);
	assert_int_equal(r.error, -EINVAL);
	assert_non_null(strstr(r.message, "ftp"));
	result_clear(&r);
	fetch((struct httpc_params){ .url = "http://[::1" }, &r);
	assert_int_equal(r.error, -EINVAL);
	result_clear(&r);
}

/* ---- TLS ---- */

static char tls_dir[64];
static struct server tls, mtls; /* stopped by group_teardown() also when a test fails */

static char *read_file(const char *dir, const char *name)
{
	char path[256], *s = NULL;
	size_t n = 0;
	FILE *f;

	snprintf(path, sizeof path, "%s/%s", dir, name);
	f = fopen(path, "re");
	assert_non_null(f);
	assert_true(getdelim(&s, &n, 0, f) > 0);
	fclose(f);
	return s;
}

static void make_cert(const char *name, const char *san)
{
	char cmd[1024];

	snprintf(cmd, sizeof cmd,
		 "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
		 "-days 2 -subj /CN=%s %s%s -keyout %s/%s.key -out %s/%s.crt >/dev/null 2>&1",
		 name, san ? "-addext subjectAltName=" : "", san ? san : "", tls_dir, name, tls_dir,
		 name);
	assert_int_equal(system(cmd), 0);
}

static char *tls_url(const struct server *s, const char *host)
{
	static char u[128];

	snprintf(u, sizeof u, "https://%s:%d/hello", host, s->port);
	return u;
}

/* Certificates made with the openssl CLI, a TLS server and one that demands a client
 * certificate; shared by the TLS tests, torn down by group_teardown(). */
static struct tls_fixture {
	char ca[128], client_crt_file[128], client_key_file[128];
	char *ca_pem, *client_crt, *client_key;
} tlsf;

static void tls_setup(void)
{
	if (tls.pid > 0)
		return;
	snprintf(tls_dir, sizeof tls_dir, "/tmp/test-httpc-XXXXXX");
	assert_non_null(mkdtemp(tls_dir));
	make_cert("server", "IP:127.0.0.1,DNS:localhost");
	make_cert("client", NULL);
	snprintf(tlsf.ca, sizeof tlsf.ca, "%s/server.crt", tls_dir);
	snprintf(tlsf.client_crt_file, sizeof tlsf.client_crt_file, "%s/client.crt", tls_dir);
	snprintf(tlsf.client_key_file, sizeof tlsf.client_key_file, "%s/client.key", tls_dir);
	tlsf.ca_pem = read_file(tls_dir, "server.crt");
	tlsf.client_crt = read_file(tls_dir, "client.crt");
	tlsf.client_key = read_file(tls_dir, "client.key");
	server_start(tls_dir, false, &tls);
	server_start(tls_dir, true, &mtls);
}

static void test_tls_server_verification(void **state)
{
	struct result r = { 0 };

	tls_setup();
	fetch((struct httpc_params){ .url = tls_url(&tls, "127.0.0.1"),
				     .tls = { .ca_file = tlsf.ca } },
	      &r);
	assert_int_equal(r.error, 0);
	assert_string_equal(r.body.data, "hello, world\n");
	result_clear(&r);

	fetch((struct httpc_params){ .url = tls_url(&tls, "localhost"),
				     .tls = { .ca_pem = tlsf.ca_pem } },
	      &r);
	assert_int_equal(r.error, 0);
	assert_int_equal(r.status, 200);
	result_clear(&r);

	/* the system store does not know the self-signed certificate */
	fetch((struct httpc_params){ .url = tls_url(&tls, "127.0.0.1") }, &r);
	assert_int_equal(r.error, -EKEYREJECTED);
	assert_non_null(strstr(r.message, "certificate"));
	assert_int_equal(r.status, 0);
	result_clear(&r);

	/* a CA that did not sign the server's certificate does not help */
	fetch((struct httpc_params){ .url = tls_url(&tls, "127.0.0.1"),
				     .tls = { .ca_pem = tlsf.client_crt } },
	      &r);
	assert_int_equal(r.error, -EKEYREJECTED);
	result_clear(&r);

	fetch((struct httpc_params){ .url = tls_url(&tls, "127.0.0.1"),
				     .tls = { .insecure_skip_verify = true } },
	      &r);
	assert_int_equal(r.error, 0);
	result_clear(&r);
}

static void test_tls_client_certificates(void **state)
{
	struct result r = { 0 };

	tls_setup();
	fetch((struct httpc_params){ .url = tls_url(&mtls, "127.0.0.1"),
				     .tls = { .ca_pem = tlsf.ca_pem,
					      .cert_pem = tlsf.client_crt,
					      .key_pem = tlsf.client_key } },
	      &r);
	assert_int_equal(r.error, 0);
	assert_int_equal(r.status, 200);
	result_clear(&r);

	fetch((struct httpc_params){ .url = tls_url(&mtls, "127.0.0.1"),
				     .tls = { .ca_file = tlsf.ca,
					      .cert_file = tlsf.client_crt_file,
					      .key_file = tlsf.client_key_file } },
	      &r);
	assert_int_equal(r.error, 0);
	result_clear(&r);

	/* the server insists on a certificate */
	fetch((struct httpc_params){ .url = tls_url(&mtls, "127.0.0.1"),
				     .tls = { .ca_file = tlsf.ca } },
	      &r);
	assert_true(r.error < 0);
	assert_int_equal(r.status, 0);
	result_clear(&r);

	/* an unreadable key is a configuration error (on a new host name: curl would reuse
	 * the connection made with the same certificate and the good key) */
	fetch((struct httpc_params){ .url = tls_url(&mtls, "localhost"),
				     .tls = { .ca_file = tlsf.ca,
					      .cert_file = tlsf.client_crt_file,
					      .key_pem = "junk" } },
	      &r);
	assert_int_equal(r.error, -EINVAL);
	result_clear(&r);
}

static int group_setup(void **state)
{
	static const char *const proxies[] = { "http_proxy", "https_proxy", "HTTPS_PROXY",
					       "all_proxy", "ALL_PROXY" };

	for (size_t i = 0; i < ELEMENTSOF(proxies); i++)
		unsetenv(proxies[i]);
	server_start(NULL, false, &srv);
	if (sd_event_new(&event) < 0 || httpc_new(event, &client) < 0)
		return -1;
	return 0;
}

static int group_teardown(void **state)
{
	httpc_free(client);
	sd_event_unref(event);
	server_stop(&srv);
	server_stop(&tls);
	server_stop(&mtls);
	free(tlsf.ca_pem);
	free(tlsf.client_crt);
	free(tlsf.client_key);
	if (*tls_dir) {
		char cmd[128];
		snprintf(cmd, sizeof cmd, "rm -rf %s", tls_dir);
		(void)!system(cmd);
	}
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_get_body_and_headers),
		cmocka_unit_test(test_multi_value_headers),
		cmocka_unit_test(test_bodies_byte_exact),
		cmocka_unit_test(test_streamed_upload),
		cmocka_unit_test(test_streamed_download),
		cmocka_unit_test(test_buffer_size),
		cmocka_unit_test(test_body_cap),
		cmocka_unit_test(test_connection_refused),
		cmocka_unit_test(test_timeouts),
		cmocka_unit_test(test_cancel),
		cmocka_unit_test(test_start_from_callbacks),
		cmocka_unit_test(test_concurrent),
		cmocka_unit_test(test_sync),
		cmocka_unit_test(test_bearer_and_redirects),
		cmocka_unit_test(test_invalid_params),
		cmocka_unit_test(test_tls_server_verification),
		cmocka_unit_test(test_tls_client_certificates),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
