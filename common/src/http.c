/* HTTP server core: the server object and its limits, listening sockets (bound here or
 * handed in by systemd), accepted connections and their lifecycle, the I/O pump that moves
 * bytes between a socket (plain or TLS) and the parser or an upgraded stream, per-state
 * deadlines, graceful shutdown and statistics.
 *
 * A connection is driven only by conn_pump(), from its socket becoming ready, its timer or
 * its defer source (used when something outside the pump, like a late reply, changed its
 * state), so user callbacks never run nested inside other user calls. Connections are
 * reference counted: closing releases the socket at once, the memory goes when the last
 * caller up the stack lets go.
 *
 * The sockets are not sd-event sources of their own: sd-event dispatches one source per
 * loop iteration, each after an epoll_wait() that reports (and re-polls) every ready socket
 * again, so with n busy connections each request paid for n. They sit in a private
 * level-triggered epoll set instead, which sd-event watches as one source; its dispatch
 * serves up to IO_BATCH ready connections, each for at most PUMP_ROUNDS rounds, and what is
 * left stays ready for the next dispatch, after the loop's other sources had their turn.
 *
 * System calls per request are kept to what the exchange needs: a read that leaves the
 * socket empty is the last one until epoll reports more (the set is level-triggered, so
 * nothing is missed), and a reply made inside the pump is sent by the pump's next round
 * rather than by another trip through the event loop. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <systemd/sd-daemon.h>
#include <time.h>

#include "cocoon/log.h"
#include "http-internal.h"

/* Connections accepted per listener wakeup, ready connections served per dispatch of the
 * epoll set, and pump rounds per connection wakeup, so one busy peer cannot starve the
 * others, nor the connections the rest of the loop. */
#define ACCEPT_BATCH 64
#define IO_BATCH     64
#define PUMP_ROUNDS  16
/* After accept() ran out of file descriptors or memory: pause before trying again. */
#define ACCEPT_RETRY_USEC (100 * 1000ULL)
/* Timer slack; deadlines are seconds, so a few ms of coalescing costs nothing. */
#define TIMER_ACCURACY_USEC (10 * 1000ULL)

static uint64_t now_usec(sd_event *e)
{
	struct timespec ts;
	uint64_t t;

	if (sd_event_now(e, CLOCK_MONOTONIC, &t) >= 0)
		return t;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * USEC_PER_SEC + (uint64_t)ts.tv_nsec / 1000;
}

uint64_t http_conn_now(const struct http_conn *c)
{
	return now_usec(c->server->event);
}

int http_server_new(sd_event *event, const struct http_server_config *cfg, struct http_server **ret)
{
	struct http_server *s;

	if (!event || !ret)
		return -EINVAL;
	s = calloc(1, sizeof *s);
	if (!s)
		return -ENOMEM;
	s->event = sd_event_ref(event);
	s->epfd = -EBADF;
	if (cfg)
		s->cfg = *cfg;
	if (!s->cfg.max_header_bytes)
		s->cfg.max_header_bytes = HTTP_DEFAULT_MAX_HEADER_BYTES;
	if (!s->cfg.max_body_bytes)
		s->cfg.max_body_bytes = HTTP_DEFAULT_MAX_BODY_BYTES;
	if (!s->cfg.max_connections)
		s->cfg.max_connections = HTTP_DEFAULT_MAX_CONNECTIONS;
	if (!s->cfg.header_timeout_usec)
		s->cfg.header_timeout_usec = HTTP_DEFAULT_HEADER_TIMEOUT_USEC;
	if (!s->cfg.body_timeout_usec)
		s->cfg.body_timeout_usec = HTTP_DEFAULT_BODY_TIMEOUT_USEC;
	if (!s->cfg.idle_timeout_usec)
		s->cfg.idle_timeout_usec = HTTP_DEFAULT_IDLE_TIMEOUT_USEC;
	if (!s->cfg.stream_queue_bytes)
		s->cfg.stream_queue_bytes = HTTP_DEFAULT_STREAM_QUEUE_BYTES;
	*ret = s;
	return 0;
}

static void listener_free(struct http_listener *l)
{
	sd_event_source_disable_unref(l->src);
	if (l->fd >= 0)
		close(l->fd);
	free(l);
}

static void server_close_listeners(struct http_server *s)
{
	while (s->listeners) {
		struct http_listener *l = s->listeners;

		s->listeners = l->next;
		listener_free(l);
	}
}

void http_server_free(struct http_server *s)
{
	if (!s)
		return;
	server_close_listeners(s);
	while (s->conns)
		http_conn_close(s->conns, -ECANCELED);
	for (size_t i = 0; i < s->n_routes; i++) {
		free(s->routes[i].method);
		free(s->routes[i].path);
	}
	free(s->routes);
	sd_event_source_disable_unref(s->accept_retry);
	sd_event_source_disable_unref(s->drained_src);
	sd_event_source_disable_unref(s->epoll_src);
	if (s->epfd >= 0)
		close(s->epfd);
	http_tls_server_done(s);
	sd_event_unref(s->event);
	free(s);
}

void http_server_get_stats(const struct http_server *s, struct http_server_stats *ret)
{
	*ret = s->stats;
}

/* ---- connections ---- */

void http_conn_ref(struct http_conn *c)
{
	c->n_ref++;
}

void http_conn_unref(struct http_conn *c)
{
	if (!c || --c->n_ref > 0)
		return;
	free(c->tls_subject);
	free(c);
}

void http_conn_schedule(struct http_conn *c)
{
	if (c->pumping) {
		c->repump = true;
		return;
	}
	if (c->defer && !c->closed)
		(void)sd_event_source_set_enabled(c->defer, SD_EVENT_ONESHOT);
}

static int server_on_drained(sd_event_source *src, void *userdata)
{
	struct http_server *s = userdata;
	void (*cb)(struct http_server *, void *) = s->on_drained;

	s->on_drained = NULL;
	if (cb)
		cb(s, s->drained_userdata);
	return 0;
}

static void server_check_drained(struct http_server *s)
{
	if (!s->shutting_down || s->n_conns > 0 || !s->on_drained || s->drained_src)
		return;
	if (sd_event_add_defer(s->event, &s->drained_src, server_on_drained, s) >= 0)
		(void)sd_event_source_set_enabled(s->drained_src, SD_EVENT_ONESHOT);
}

void http_conn_close(struct http_conn *c, int error)
{
	struct http_server *s = c->server;

	if (c->closed)
		return;
	c->closed = true;
	if (c->prev)
		c->prev->next = c->next;
	else
		s->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	s->n_conns--;
	s->stats.connections_active--;
	if (error < 0 && error != -ECANCELED)
		log_debug_errno(error, "http: %s: closing connection: %m", c->peer);

	/* Out of the epoll set before the socket closes: a copy of it inherited by a child
	 * that has yet to exec would keep it there, reporting for a freed connection. */
	if (c->io_events != 0) {
		(void)epoll_ctl(s->epfd, EPOLL_CTL_DEL, c->fd, NULL);
		c->io_events = 0;
	}
	c->timer = sd_event_source_disable_unref(c->timer);
	c->defer = sd_event_source_disable_unref(c->defer);
	if (c->stream)
		http_stream_closed(c, error);
	if (c->req) {
		if (c->state == CONN_HANDLE && error != -ECANCELED)
			s->stats.client_aborts++;
		http_request_disconnect(TAKE_PTR(c->req));
	}
	http_request_unref(TAKE_PTR(c->parsing));
	http_tls_conn_done(c, error);
	if (c->fd >= 0)
		close(TAKE_FD(c->fd));
	buf_free(&c->in);
	buf_free(&c->out);
	server_check_drained(s);
	http_conn_unref(c);
}

static int conn_new(struct http_server *s, int fd, struct http_conn **ret)
{
	struct http_conn *c = calloc(1, sizeof *c);

	if (!c)
		return -ENOMEM;
	c->n_ref = 1;
	c->server = s;
	c->fd = fd;
	c->state = CONN_READ;
	c->handshake_done = true;
	/* Input may run ahead of a busy connection by this much (pipelining, stream data);
	 * a memory connection holds whatever it was given. */
	c->in = BUF_INIT(fd >= 0 ? 2 * HTTP_READ_CHUNK : 0);
	c->out = BUF_INIT(0);
	http_conn_parser_reset(c);
	c->accepted_at = c->idle_since = c->write_at = now_usec(s->event);
	c->next = s->conns;
	if (s->conns)
		s->conns->prev = c;
	s->conns = c;
	s->n_conns++;
	s->stats.connections_active++;
	*ret = c;
	return 0;
}

static void format_peer(const struct sockaddr_storage *ss, char *buf, size_t size)
{
	char ip[INET6_ADDRSTRLEN];

	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)ss;

		inet_ntop(AF_INET, &in->sin_addr, ip, sizeof ip);
		snprintf(buf, size, "%s:%u", ip, ntohs(in->sin_port));
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;

		/* Dual-stack listeners see IPv4 clients as ::ffff:a.b.c.d; show them as IPv4. */
		if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
			inet_ntop(AF_INET, &in6->sin6_addr.s6_addr[12], ip, sizeof ip);
			snprintf(buf, size, "%s:%u", ip, ntohs(in6->sin6_port));
		} else {
			inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof ip);
			snprintf(buf, size, "[%s]:%u", ip, ntohs(in6->sin6_port));
		}
	} else {
		snprintf(buf, size, "local");
	}
}

/* ---- the I/O pump ---- */

static bool conn_wants_read(const struct http_conn *c)
{
	if (c->peer_eof || c->in.len >= c->in.cap)
		return false;
	if (c->state == CONN_STREAM)
		return !c->stream->read_paused;
	return true;
}

static ssize_t conn_recv(struct http_conn *c, void *p, size_t n)
{
	ssize_t r;

	/* Lingering input is dropped unread, so it needs no decryption. */
	if (c->ssl && c->state != CONN_LINGER)
		return http_tls_recv(c, p, n);
	do
		r = recv(c->fd, p, n, 0);
	while (r < 0 && errno == EINTR);
	c->recv_short = r < (ssize_t)n;
	if (r < 0)
		return errno == EAGAIN ? -EAGAIN : -errno;
	return r;
}

/* After a successful read: is the socket (and OpenSSL's buffer) empty now? */
static bool conn_recv_drained(const struct http_conn *c)
{
	if (c->ssl && c->state != CONN_LINGER)
		return http_tls_drained(c);
	return c->recv_short;
}

static ssize_t conn_send(struct http_conn *c, const void *p, size_t n)
{
	ssize_t r;

	if (c->ssl)
		return http_tls_send(c, p, n);
	do
		r = send(c->fd, p, n, MSG_NOSIGNAL);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return errno == EAGAIN ? -EAGAIN : -errno;
	return r;
}

static void conn_start_linger(struct http_conn *c)
{
	c->state = CONN_LINGER;
	c->linger_at = http_conn_now(c);
	buf_reset(&c->in);
	if (c->fd < 0 || c->peer_eof) {
		http_conn_close(c, 0);
		return;
	}
	if (c->ssl && c->handshake_done)
		(void)SSL_shutdown(c->ssl); /* close_notify, best effort */
	(void)shutdown(c->fd, SHUT_WR);
}

/* Everything queued went out. */
static void conn_on_out_empty(struct http_conn *c)
{
	switch (c->state) {
	case CONN_READ:
		c->idle_since = http_conn_now(c);
		if (c->server->shutting_down && !c->parsing && c->in.len == 0)
			http_conn_close(c, 0);
		break;
	case CONN_DRAIN:
		conn_start_linger(c);
		break;
	case CONN_STREAM:
		http_stream_flushed(c);
		break;
	case CONN_HANDLE:
	case CONN_LINGER:
		break;
	}
}

/* Returns 1 if bytes went out, 0 if nothing could be sent, < 0 on a dead connection. */
static int conn_flush(struct http_conn *c)
{
	size_t total = 0;

	if (c->out.len == 0)
		return 0;
	if (c->fd < 0) {
		/* A full sink drops the rest, as a client that stops reading would. */
		(void)buf_append(c->sink, c->out.data, c->out.len);
		total = c->out.len;
		buf_reset(&c->out);
	}
	while (c->out.len > 0) {
		ssize_t n = conn_send(c, c->out.data, c->out.len);

		if (n == -EAGAIN)
			break;
		if (n < 0)
			return (int)n;
		buf_consume(&c->out, (size_t)n);
		total += (size_t)n;
	}
	if (total == 0)
		return 0;
	c->write_at = http_conn_now(c);
	if (c->out.len == 0)
		conn_on_out_empty(c);
	return 1;
}

/* Returns 1 if anything arrived (or EOF), 0 if nothing, < 0 on a dead connection. */
static int conn_fill(struct http_conn *c)
{
	bool dropping = c->state == CONN_DRAIN || c->state == CONN_LINGER;
	size_t budget = c->in.cap;
	char chunk[HTTP_READ_CHUNK];
	int progress = 0;

	if (c->fd < 0)
		return 0;
	while (!c->read_drained && conn_wants_read(c) && budget > 0) {
		size_t want = MIN(sizeof chunk, dropping ? budget : c->in.cap - c->in.len);
		ssize_t n = conn_recv(c, chunk, want);

		if (n == -EAGAIN) {
			c->read_drained = true;
			break;
		}
		if (n < 0)
			return (int)n;
		progress = 1;
		if (n == 0) {
			c->peer_eof = true;
			break;
		}
		c->read_drained = conn_recv_drained(c);
		if (dropping) {
			budget -= MIN(budget, (size_t)n);
			continue;
		}
		if (buf_append(&c->in, chunk, (size_t)n) < 0)
			return -ENOMEM;
	}
	return progress;
}

/* Act on buffered input and on EOF. Returns 1 on progress. */
static int conn_process(struct http_conn *c)
{
	switch (c->state) {
	case CONN_READ:
		/* The next request waits until the previous answer is out: this keeps the
		 * output bounded and pipelined answers in order. */
		if (c->out.len > 0)
			return 0;
		if (c->in.len > 0)
			return http_conn_parse(c);
		if (c->peer_eof)
			http_conn_close(c, 0);
		return 0;
	case CONN_HANDLE:
		/* Like Go's net/http, EOF from the client while its request is with a handler
		 * means the client gave up. */
		if (c->peer_eof)
			http_conn_close(c, -ECONNRESET);
		return 0;
	case CONN_DRAIN:
		return 0;
	case CONN_LINGER:
		if (c->peer_eof)
			http_conn_close(c, 0);
		return 0;
	case CONN_STREAM:
		return http_stream_process(c);
	}
	return 0;
}

/* A connection waiting for its next request (nothing being read or sent). */
static bool conn_is_idle(const struct http_conn *c)
{
	return c->state == CONN_READ && !c->parsing && c->out.len == 0;
}

/* When an idle connection is closed. */
static uint64_t conn_idle_deadline(const struct http_conn *c)
{
	const struct http_server_config *cfg = &c->server->cfg;

	return c->n_requests == 0 ? c->accepted_at + cfg->header_timeout_usec
				  : c->idle_since + cfg->idle_timeout_usec;
}

/* When the connection must hear from us next, 0 for never. */
static uint64_t conn_deadline(const struct http_conn *c)
{
	const struct http_server_config *cfg = &c->server->cfg;

	switch (c->state) {
	case CONN_READ:
		if (c->out.len > 0 && !c->parsing)
			return c->write_at + cfg->idle_timeout_usec;
		if (!c->parsing && c->tls_buffers_held)
			return MIN(conn_idle_deadline(c),
				   (c->n_requests == 0 ? c->accepted_at : c->idle_since) +
				       HTTP_TLS_IDLE_RELEASE_USEC);
		if (!c->parsing)
			return conn_idle_deadline(c);
		if (!c->parsing->headers_done)
			return c->begun_at + cfg->header_timeout_usec;
		return c->headers_at + cfg->body_timeout_usec;
	case CONN_HANDLE:
		return 0;
	case CONN_DRAIN:
		return c->write_at + cfg->idle_timeout_usec;
	case CONN_LINGER:
		return c->linger_at + HTTP_LINGER_USEC;
	case CONN_STREAM:
		return c->stream->closing && c->out.len > 0 ? c->write_at + cfg->idle_timeout_usec
							    : 0;
	}
	return 0;
}

/* Watch the socket for events in the server's epoll set (level-triggered, like sd-event's
 * io sources). Nothing wanted takes it out of the set: epoll reports a hangup even with an
 * empty mask, which would wake us forever. */
static int conn_set_io_events(struct http_conn *c, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = c };
	int op;

	if (events == c->io_events)
		return 0;
	op = events == 0 ? EPOLL_CTL_DEL : c->io_events == 0 ? EPOLL_CTL_ADD : EPOLL_CTL_MOD;
	if (epoll_ctl(c->server->epfd, op, c->fd, &ev) < 0)
		return -errno;
	c->io_events = events;
	return 0;
}

static void conn_update_sources(struct http_conn *c)
{
	uint32_t events = 0;
	uint64_t deadline;
	int r;

	if (c->fd < 0)
		return;
	if (!c->handshake_done) {
		events = c->tls_read_want == SSL_ERROR_WANT_WRITE ? EPOLLOUT : EPOLLIN;
	} else {
		if (conn_wants_read(c))
			events |= c->tls_read_want == SSL_ERROR_WANT_WRITE ? EPOLLOUT : EPOLLIN;
		if (c->out.len > 0)
			events |= c->tls_write_want == SSL_ERROR_WANT_READ ? EPOLLIN : EPOLLOUT;
		/* Input OpenSSL read ahead will not wake epoll. Once a read found the socket
		 * empty, what it holds is a partial record whose rest epoll will report. */
		if (conn_wants_read(c) && !c->read_drained && http_tls_pending(c))
			http_conn_schedule(c);
	}
	r = conn_set_io_events(c, events);
	if (r < 0) {
		/* Unwatched, the connection would hang until a timeout, if it has one. */
		http_conn_close(c, r);
		return;
	}

	/* Deadlines move later with every request; moving the timer each time would update
	 * the timerfd about once per request. It is only ever moved earlier: one that fires
	 * before the deadline it stands for re-arms itself (conn_on_timer()). */
	deadline = conn_deadline(c);
	if (deadline != 0 && (c->timer_at == 0 || deadline < c->timer_at) &&
	    sd_event_source_set_time(c->timer, deadline) >= 0 &&
	    sd_event_source_set_enabled(c->timer, SD_EVENT_ONESHOT) >= 0)
		c->timer_at = deadline;
}

static void conn_pump(struct http_conn *c)
{
	bool more = false;

	http_conn_ref(c);
	c->pumping = true;
	for (unsigned round = 0; !c->closed; round++) {
		int r, progress = 0;

		if (c->fd >= 0 && round >= PUMP_ROUNDS) {
			more = true;
			break;
		}
		c->repump = false;
		if (!c->handshake_done) {
			r = http_tls_handshake(c);
			if (r < 0) {
				c->server->stats.tls_handshake_failures++;
				http_conn_close(c, r);
				break;
			}
			if (r == 0)
				break;
		}
		r = conn_flush(c);
		if (r < 0) {
			http_conn_close(c, r);
			break;
		}
		progress |= r;
		if (c->closed)
			break;
		r = conn_fill(c);
		if (r < 0) {
			http_conn_close(c, r);
			break;
		}
		progress |= r;
		progress |= conn_process(c);
		/* Something asked for another look (a reply, a stream write). */
		progress |= c->repump;
		if (!progress)
			break;
	}
	c->pumping = c->repump = false;
	if (more)
		http_conn_schedule(c);
	if (!c->closed)
		conn_update_sources(c);
	http_conn_unref(c);
}

/* The epoll set has ready sockets: serve up to IO_BATCH of them. */
static int server_on_io(sd_event_source *src, int fd, uint32_t revents, void *userdata)
{
	struct http_server *s = userdata;
	struct epoll_event ev[IO_BATCH];
	int n;

	n = epoll_wait(s->epfd, ev, IO_BATCH, 0);
	if (n < 0) {
		/* Not with a timeout of 0 on our own set; an error returned would make sd-event
		 * switch this source, and every connection with it, off for good. */
		log_debug_errno(errno, "http: epoll_wait: %m");
		return 0;
	}
	/* Serving one connection can close another of this batch (a shutdown from a
	 * handler): the references keep each one's memory until its turn comes. */
	for (int i = 0; i < n; i++)
		http_conn_ref(ev[i].data.ptr);
	for (int i = 0; i < n; i++) {
		struct http_conn *c = ev[i].data.ptr;

		if (!c->closed) {
			c->read_drained = false;
			conn_pump(c);
		}
		http_conn_unref(c);
	}
	return 0;
}

/* The epoll set, made with the first socket connection (memory connections need none). */
static int server_init_io(struct http_server *s)
{
	int fd, r;

	if (s->epfd >= 0)
		return 0;
	fd = epoll_create1(EPOLL_CLOEXEC);
	if (fd < 0)
		return -errno;
	r = sd_event_add_io(s->event, &s->epoll_src, fd, EPOLLIN, server_on_io, s);
	if (r < 0) {
		close(fd);
		return r;
	}
	(void)sd_event_source_set_description(s->epoll_src, "http-connections");
	s->epfd = fd;
	return 0;
}

static int conn_on_defer(sd_event_source *src, void *userdata)
{
	conn_pump(userdata);
	return 0;
}

static int conn_on_timer(sd_event_source *src, uint64_t usec, void *userdata)
{
	struct http_conn *c = userdata;
	struct http_server *s = c->server;
	uint64_t deadline = conn_deadline(c);

	c->timer_at = 0;
	/* Armed for a deadline that has moved on since (or no longer applies). */
	if (deadline == 0 || http_conn_now(c) < deadline) {
		conn_update_sources(c);
		return 0;
	}
	switch (c->state) {
	case CONN_READ:
		if (conn_is_idle(c) && c->tls_buffers_held &&
		    http_conn_now(c) < conn_idle_deadline(c)) {
			http_tls_release_buffers(c);
			conn_update_sources(c);
			return 0;
		}
		if (c->parsing) {
			bool body = c->parsing->headers_done;
			uint64_t ms =
			    (body ? s->cfg.body_timeout_usec : s->cfg.header_timeout_usec) / 1000;

			s->stats.timeouts++;
			http_conn_fail(c, 408, "request %s not received within %llu ms",
				       body ? "body" : "headers", (unsigned long long)ms);
			conn_pump(c);
			return 0;
		}
		if (c->out.len > 0)
			s->stats.timeouts++;
		/* An idle keep-alive connection, or a client that never sent a request. */
		http_conn_close(c, -ETIMEDOUT);
		return 0;
	case CONN_DRAIN:
	case CONN_STREAM:
		s->stats.timeouts++;
		http_conn_close(c, -ETIMEDOUT);
		return 0;
	case CONN_LINGER:
		http_conn_close(c, 0);
		return 0;
	case CONN_HANDLE:
		return 0;
	}
	return 0;
}

static int conn_new_socket(struct http_server *s, int fd, const struct sockaddr_storage *ss)
{
	static const int one = 1;
	struct http_conn *c;
	int r;

	r = server_init_io(s);
	if (r >= 0)
		r = conn_new(s, fd, &c);
	if (r < 0) {
		close(fd);
		return r;
	}
	format_peer(ss, c->peer, sizeof c->peer);
	/* Answers are written whole; do not hold back their last segment. */
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	r = sd_event_add_time(s->event, &c->timer, CLOCK_MONOTONIC, 0, TIMER_ACCURACY_USEC,
			      conn_on_timer, c);
	if (r >= 0)
		r = sd_event_source_set_enabled(c->timer, SD_EVENT_OFF);
	if (r >= 0)
		r = sd_event_add_defer(s->event, &c->defer, conn_on_defer, c);
	if (r >= 0)
		r = sd_event_source_set_enabled(c->defer, SD_EVENT_OFF);
	if (r >= 0 && s->tls_ctx)
		r = http_tls_conn_init(c);
	if (r < 0) {
		http_conn_close(c, r);
		return r;
	}
	conn_update_sources(c);
	return 0;
}

/* ---- listeners ---- */

static int server_on_accept_retry(sd_event_source *src, uint64_t usec, void *userdata)
{
	struct http_server *s = userdata;

	for (struct http_listener *l = s->listeners; l; l = l->next)
		(void)sd_event_source_set_enabled(l->src, SD_EVENT_ON);
	return 0;
}

/* Out of file descriptors or memory: a listening socket stays readable, so pause instead of
 * spinning, and try again shortly (connections closing meanwhile free resources). */
static void server_pause_accept(struct http_server *s)
{
	uint64_t when = now_usec(s->event) + ACCEPT_RETRY_USEC;

	for (struct http_listener *l = s->listeners; l; l = l->next)
		(void)sd_event_source_set_enabled(l->src, SD_EVENT_OFF);
	if (!s->accept_retry) {
		if (sd_event_add_time(s->event, &s->accept_retry, CLOCK_MONOTONIC, when,
				      TIMER_ACCURACY_USEC, server_on_accept_retry, s) < 0)
			return;
	} else {
		(void)sd_event_source_set_time(s->accept_retry, when);
	}
	(void)sd_event_source_set_enabled(s->accept_retry, SD_EVENT_ONESHOT);
}

static int listener_on_accept(sd_event_source *src, int fd, uint32_t revents, void *userdata)
{
	struct http_listener *l = userdata;
	struct http_server *s = l->server;

	for (unsigned i = 0; i < ACCEPT_BATCH; i++) {
		struct sockaddr_storage ss = {};
		socklen_t len = sizeof ss;
		int cfd = accept4(fd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (cfd < 0) {
			if (errno == EAGAIN)
				break;
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
			    errno == ENOMEM) {
				log_debug_errno(errno, "http: accept: %m, pausing");
				server_pause_accept(s);
				break;
			}
			/* A connection that died in the backlog, or a signal: the next one. */
			continue;
		}
		if (s->n_conns >= s->cfg.max_connections) {
			s->stats.connections_refused++;
			close(cfd);
			continue;
		}
		s->stats.connections_accepted++;
		(void)conn_new_socket(s, cfd, &ss);
	}
	return 0;
}

static int listener_add(struct http_server *s, int fd)
{
	struct http_listener *l;
	int r;

	if (s->shutting_down)
		return -ESHUTDOWN;
	l = calloc(1, sizeof *l);
	if (!l)
		return -ENOMEM;
	l->server = s;
	l->fd = -EBADF;
	r = sd_event_add_io(s->event, &l->src, fd, EPOLLIN, listener_on_accept, l);
	if (r < 0) {
		free(l);
		return r;
	}
	l->fd = fd;
	l->next = s->listeners;
	s->listeners = l;
	return 0;
}

/* "host:port", "[v6]:port", ":port" → host (empty for all addresses) and port. */
static int parse_address(const char *address, char *host, size_t host_size, uint16_t *ret_port)
{
	const char *colon, *h = address;
	size_t hlen;
	char *end;
	unsigned long port;

	if (isempty(address))
		return -EINVAL;
	if (address[0] == '[') {
		const char *close = strchr(address, ']');

		if (!close || close[1] != ':')
			return -EINVAL;
		h = address + 1;
		hlen = (size_t)(close - h);
		colon = close + 1;
	} else {
		colon = strrchr(address, ':');
		if (!colon || memchr(address, ':', (size_t)(colon - address)))
			return -EINVAL; /* no port, or an IPv6 literal without brackets */
		hlen = (size_t)(colon - address);
	}
	if (hlen >= host_size)
		return -EINVAL;
	errno = 0;
	port = strtoul(colon + 1, &end, 10);
	if (colon[1] < '0' || colon[1] > '9' || *end || errno || port > 65535)
		return -EINVAL;
	memcpy(host, h, hlen);
	host[hlen] = 0;
	*ret_port = (uint16_t)port;
	return 0;
}

int http_server_listen_address(struct http_server *s, const char *address)
{
	static const int one = 1, zero = 0;
	union {
		struct sockaddr sa;
		struct sockaddr_in in;
		struct sockaddr_in6 in6;
		struct sockaddr_storage ss;
	} sa = {};
	_cleanup_(closep) int fd = -EBADF;
	char host[INET6_ADDRSTRLEN];
	socklen_t len;
	uint16_t port;
	int r;

	if (!s)
		return -EINVAL;
	r = parse_address(address, host, sizeof host, &port);
	if (r < 0)
		return log_debug_errno(r, "http: \"%s\" is not host:port, [v6]:port or :port",
				       address ? address : "");
	if (streq(host, "localhost"))
		strcpy(host, "127.0.0.1");
	if (!host[0]) {
		sa.in6.sin6_family = AF_INET6;
		sa.in6.sin6_addr = in6addr_any;
	} else if (inet_pton(AF_INET, host, &sa.in.sin_addr) == 1) {
		sa.in.sin_family = AF_INET;
	} else if (inet_pton(AF_INET6, host, &sa.in6.sin6_addr) == 1) {
		sa.in6.sin6_family = AF_INET6;
	} else {
		return log_debug_errno(-EINVAL, "http: \"%s\": host must be a numeric address",
				       address);
	}
	fd = socket(sa.sa.sa_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0 && !host[0] && errno == EAFNOSUPPORT) {
		/* No IPv6 on this host: all IPv4 addresses then. */
		sa.in = (struct sockaddr_in){ .sin_family = AF_INET };
		fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	}
	if (fd < 0)
		return -errno;
	if (sa.sa.sa_family == AF_INET6)
		sa.in6.sin6_port = htons(port);
	else
		sa.in.sin_port = htons(port);
	(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (!host[0] && sa.sa.sa_family == AF_INET6)
		(void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
	len = sa.sa.sa_family == AF_INET6 ? sizeof sa.in6 : sizeof sa.in;
	if (bind(fd, &sa.sa, len) < 0 || listen(fd, SOMAXCONN) < 0)
		return log_debug_errno(errno, "http: cannot listen on %s: %m", address);
	len = sizeof sa;
	if (getsockname(fd, &sa.sa, &len) < 0)
		return -errno;
	port = ntohs(sa.sa.sa_family == AF_INET6 ? sa.in6.sin6_port : sa.in.sin_port);
	r = listener_add(s, fd);
	if (r < 0)
		return r;
	TAKE_FD(fd);
	return port;
}

int http_server_listen_fd(struct http_server *s, int fd)
{
	int r, flags;

	if (!s || fd < 0)
		return -EINVAL;
	r = sd_is_socket(fd, AF_UNSPEC, SOCK_STREAM, 1);
	if (r < 0)
		return r;
	if (r == 0)
		return log_debug_errno(-ENOTSOCK, "http: fd %d is not a listening stream socket",
				       fd);
	flags = fcntl(fd, F_GETFL);
	if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0 ||
	    fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
		return -errno;
	return listener_add(s, fd);
}

int http_server_listen_systemd(struct http_server *s, const char *name)
{
	_cleanup_(strv_freep) char **names = NULL;
	int n, count = 0;

	if (!s)
		return -EINVAL;
	n = sd_listen_fds_with_names(0, &names);
	if (n < 0)
		return n;
	for (int i = 0; i < n; i++) {
		int r;

		if (name && !streq_ptr(names ? names[i] : NULL, name))
			continue;
		r = http_server_listen_fd(s, SD_LISTEN_FDS_START + i);
		if (r < 0)
			return r;
		count++;
	}
	return count;
}

/* ---- shutdown and memory connections ---- */

void http_server_shutdown(struct http_server *s, void (*on_done)(struct http_server *s, void *u),
			  void *userdata)
{
	struct http_conn *c, *next;

	s->shutting_down = true;
	s->on_drained = on_done;
	s->drained_userdata = userdata;
	server_close_listeners(s);
	for (c = s->conns; c; c = next) {
		next = c->next;
		if (c->state == CONN_READ && !c->parsing && c->out.len == 0 && c->in.len == 0)
			http_conn_close(c, 0);
		else
			http_conn_schedule(c);
	}
	server_check_drained(s);
}

int http_server_process_buffer(struct http_server *s, const void *data, size_t len, struct buf *out)
{
	struct http_conn *c;
	int r;

	if (!s || (!data && len) || !out)
		return -EINVAL;
	r = conn_new(s, -EBADF, &c);
	if (r < 0)
		return r;
	c->sink = out;
	snprintf(c->peer, sizeof c->peer, "memory");
	r = buf_append(&c->in, data, len);
	/* All input is there at once, then the client is done sending. */
	c->peer_eof = true;
	http_conn_ref(c);
	if (r >= 0)
		conn_pump(c);
	http_conn_close(c, r < 0 ? r : -ECONNRESET);
	http_conn_unref(c);
	return r < 0 ? r : 0;
}
