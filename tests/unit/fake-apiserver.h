/* A scripted HTTP/1.1 apiserver for the watch and informer unit tests, on the same sd-event
 * loop as the client under test. Each request's target is recorded (with its arrival
 * time) and handed to the test's respond() callback, which answers with a whole response
 * or a chunked stream written piece by piece, one piece per millisecond, so that events
 * really arrive split and joined. Every response closes its connection; a stream that is
 * not ended stays open until the client goes away. Plain HTTP on 127.0.0.1. */
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <systemd/sd-event.h>
#include <time.h>

#include "cocoon/buf.h"
#include "cocoon/kube.h"

#define FAKE_MAX_REQUESTS 256
#define FAKE_MAX_PIECES   64

struct fake_server;

struct fake_conn {
	struct fake_server *server;
	int fd;
	sd_event_source *io, *timer;
	struct buf in;
	bool answered, closing;
	char *pieces[FAKE_MAX_PIECES];
	size_t piece_len[FAKE_MAX_PIECES];
	size_t n_pieces, next_piece;
	struct fake_conn *next;
};

struct fake_server {
	sd_event *event;
	int fd;
	sd_event_source *io;
	char url[64];
	char *requests[FAKE_MAX_REQUESTS]; /* "/path?query" */
	uint64_t request_usec[FAKE_MAX_REQUESTS];
	size_t n_requests;
	void (*respond)(struct fake_server *s, struct fake_conn *c, size_t index,
			const char *target);
	void *userdata;
	struct fake_conn *conns;
};

/* The value of a query parameter in a request target, or NULL (one static buffer). */
static inline const char *query_value(const char *target, const char *name)
{
	static char v[128];
	const char *p = strchr(target, '?');
	size_t n = strlen(name);

	for (; p; p = strchr(p + 1, '&')) {
		if (strncmp(p + 1, name, n) == 0 && p[1 + n] == '=') {
			snprintf(v, sizeof(v), "%.*s", (int)strcspn(p + 2 + n, "&"), p + 2 + n);
			return v;
		}
	}
	return NULL;
}

static inline uint64_t fake_now_usec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static inline void fake_conn_free(struct fake_conn *c)
{
	struct fake_conn **p;

	for (p = &c->server->conns; *p && *p != c; p = &(*p)->next)
		;
	if (*p)
		*p = c->next;
	sd_event_source_disable_unref(c->io);
	sd_event_source_disable_unref(c->timer);
	close(c->fd);
	buf_free(&c->in);
	for (size_t i = 0; i < c->n_pieces; i++)
		free(c->pieces[i]);
	free(c);
}

/* Queue raw bytes to be written as one piece (one write, one millisecond after the last). */
static inline void fake_queue_raw(struct fake_conn *c, const void *data, size_t len)
{
	assert_true(c->n_pieces < FAKE_MAX_PIECES);
	c->pieces[c->n_pieces] = malloc(len ? len : 1);
	assert_non_null(c->pieces[c->n_pieces]);
	memcpy(c->pieces[c->n_pieces], data, len);
	c->piece_len[c->n_pieces++] = len;
	c->answered = true;
	sd_event_source_set_enabled(c->timer, SD_EVENT_ON);
}

/* A whole response: status line, JSON body, Connection: close. */
static inline void fake_reply(struct fake_conn *c, unsigned status, const char *body)
{
	char *head;
	int n;

	n = asprintf(&head,
		     "HTTP/1.1 %u X\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
		     "Connection: close\r\n\r\n%s",
		     status, strlen(body), body);
	assert_true(n > 0);
	fake_queue_raw(c, head, (size_t)n);
	free(head);
	c->closing = true;
}

static inline void fake_stream_begin(struct fake_conn *c)
{
	static const char head[] = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
				   "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n";

	fake_queue_raw(c, head, strlen(head));
}

/* One HTTP chunk holding these bytes of the watch stream (part of an event, or several). */
static inline void fake_stream_piece(struct fake_conn *c, const char *data)
{
	char *chunk;
	int n;

	n = asprintf(&chunk, "%zx\r\n%s\r\n", strlen(data), data);
	assert_true(n > 0);
	fake_queue_raw(c, chunk, (size_t)n);
	free(chunk);
}

/* The terminating chunk: a clean end, as when timeoutSeconds expires. */
static inline void fake_stream_end(struct fake_conn *c)
{
	fake_queue_raw(c, "0\r\n\r\n", 5);
	c->closing = true;
}

static inline int fake_on_conn_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct fake_conn *c = userdata;

	if (c->next_piece < c->n_pieces) {
		size_t len = c->piece_len[c->next_piece];

		/* Small writes to a local socket: never blocks in these tests. */
		if (write(c->fd, c->pieces[c->next_piece++], len) != (ssize_t)len) {
			fake_conn_free(c);
			return 0;
		}
	}
	if (c->next_piece == c->n_pieces) {
		sd_event_source_set_enabled(c->timer, SD_EVENT_OFF);
		if (c->closing) {
			fake_conn_free(c);
			return 0;
		}
	}
	sd_event_source_set_time_relative(c->timer, 1000);
	return 0;
}

static inline int fake_on_conn_io(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	struct fake_conn *c = userdata;
	struct fake_server *srv = c->server;
	char tmp[4096], *end, *sp;
	ssize_t n;

	n = read(fd, tmp, sizeof(tmp));
	if (n <= 0) {
		fake_conn_free(c); /* the client went away (cancelled a stream) */
		return 0;
	}
	if (c->answered)
		return 0;
	assert_int_equal(buf_append(&c->in, tmp, (size_t)n), 0);
	end = strstr(c->in.data, "\r\n\r\n");
	if (!end)
		return 0;
	/* "GET /target HTTP/1.1" */
	sp = strchr(c->in.data, ' ');
	assert_non_null(sp);
	*strchr(sp + 1, ' ') = '\0';
	assert_true(srv->n_requests < FAKE_MAX_REQUESTS);
	srv->requests[srv->n_requests] = strdup(sp + 1);
	srv->request_usec[srv->n_requests] = fake_now_usec();
	srv->n_requests++;
	srv->respond(srv, c, srv->n_requests - 1, srv->requests[srv->n_requests - 1]);
	return 0;
}

static inline int fake_on_accept(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	struct fake_server *srv = userdata;
	struct fake_conn *c;
	int cfd;

	cfd = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
	if (cfd < 0)
		return 0;
	c = calloc(1, sizeof(*c));
	assert_non_null(c);
	c->server = srv;
	c->fd = cfd;
	c->in = BUF_INIT(64 * 1024);
	assert_int_equal(sd_event_add_io(srv->event, &c->io, cfd, EPOLLIN, fake_on_conn_io, c), 0);
	assert_int_equal(sd_event_add_time_relative(srv->event, &c->timer, CLOCK_MONOTONIC, 1000, 0,
						    fake_on_conn_timer, c),
			 0);
	sd_event_source_set_enabled(c->timer, SD_EVENT_OFF);
	c->next = srv->conns;
	srv->conns = c;
	return 0;
}

static inline void fake_server_start(struct fake_server *srv, sd_event *e)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t alen = sizeof(a);

	srv->event = e;
	srv->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	assert_true(srv->fd >= 0);
	assert_int_equal(bind(srv->fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(srv->fd, 16), 0);
	assert_int_equal(getsockname(srv->fd, (struct sockaddr *)&a, &alen), 0);
	snprintf(srv->url, sizeof(srv->url), "http://127.0.0.1:%u", ntohs(a.sin_port));
	assert_int_equal(sd_event_add_io(e, &srv->io, srv->fd, EPOLLIN, fake_on_accept, srv), 0);
}

static inline void fake_server_stop(struct fake_server *srv)
{
	while (srv->conns)
		fake_conn_free(srv->conns);
	sd_event_source_disable_unref(srv->io);
	close(srv->fd);
	for (size_t i = 0; i < srv->n_requests; i++)
		free(srv->requests[i]);
	srv->n_requests = 0;
}

/* Run the loop until *flag becomes true (or the server has seen n requests, when flag is
 * NULL), at most timeout_ms. Returns whether that happened. */
static inline bool fake_run_until(struct fake_server *srv, const bool *flag, size_t n,
				  unsigned timeout_ms)
{
	uint64_t deadline = fake_now_usec() + timeout_ms * 1000ULL;

	while (flag ? !*flag : srv->n_requests < n) {
		if (fake_now_usec() > deadline)
			return false;
		assert_true(sd_event_run(srv->event, 10000) >= 0);
	}
	return true;
}

/* Run the loop for ms milliseconds whatever happens. */
static inline void fake_run_for(struct fake_server *srv, unsigned ms)
{
	uint64_t deadline = fake_now_usec() + ms * 1000ULL;

	while (fake_now_usec() < deadline)
		assert_true(sd_event_run(srv->event, 5000) >= 0);
}

/* A client for srv with no client-side rate limit to speak of. */
static inline struct kube_client *fake_client(struct fake_server *srv)
{
	struct kube_config cfg = { .server = srv->url, .source = (char *)"unit" };
	const struct kube_client_options o = { .qps = 1000, .burst = 1000 };
	struct kube_client *c = NULL;

	assert_int_equal(kube_client_new(srv->event, &cfg, &o, &c), 0);
	return c;
}
