/* Upgraded connections (Connection: Upgrade → 101 Switching Protocols): after an upgrade
 * handler accepts, the connection becomes a plain byte stream for SPDY/3.1 or WebSocket
 * code (kubelet exec, attach, port-forward). It keeps the transport it had, TCP or TLS,
 * and the input that was already buffered (bytes the client sent right after the request,
 * and records OpenSSL already decrypted) is delivered first, so nothing is lost. The
 * outgoing queue is capped (stream_queue_bytes); a writer that hits the cap gets -ENOBUFS
 * and an on_drain call when there is room again. */
#include <string.h>

#include "cocoon/log.h"
#include "http-internal.h"

int http_request_upgrade(struct http_request *req, const struct http_stream_ops *ops,
			 void *userdata, struct http_stream **ret)
{
	struct http_stream *st;
	struct http_conn *c;
	int r;

	if (!req || !ops || !ops->on_read || !ops->on_close)
		return -EINVAL;
	if (req->replied)
		return -EALREADY;
	if (!(req->route_flags & HTTP_ROUTE_UPGRADE))
		return -EPERM;
	c = req->conn;
	if (!c)
		return -ENOTCONN;
	st = calloc(1, sizeof *st);
	if (!st)
		return -ENOMEM;
	/* Exactly the status line, Connection and the handler's headers: kubectl's SPDY
	 * client reads X-Stream-Protocol-Version from here (kube-api.md §3.3). */
	r = buf_append_str(&c->out, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n");
	if (r >= 0 && req->reply_headers.len)
		r = buf_append(&c->out, req->reply_headers.data, req->reply_headers.len);
	if (r >= 0)
		r = buf_append_str(&c->out, "\r\n");
	if (r < 0) {
		free(st);
		http_conn_close(c, r);
		return r;
	}
	st->conn = c;
	st->ops = ops;
	st->userdata = userdata;
	c->stream = st;
	c->server->stats.responses[1]++;
	c->server->stats.streams_active++;

	req->replied = true;
	req->conn = NULL;
	c->req = NULL;
	c->state = CONN_STREAM;
	c->write_at = http_conn_now(c);
	http_request_unref(req);
	http_conn_schedule(c);
	*ret = st;
	return 0;
}

/* Deliver buffered input, then EOF once. Returns 1 on progress. */
int http_stream_process(struct http_conn *c)
{
	struct http_stream *st = c->stream;
	int r, progress = 0;

	if (st->closing) {
		buf_reset(&c->in);
		if (c->out.len == 0)
			http_conn_close(c, 0);
		return 0;
	}
	if (st->read_paused)
		return 0;
	if (c->in.len > 0) {
		size_t n = c->in.len;

		r = st->ops->on_read(st, c->in.data, n, st->userdata);
		if (c->closed)
			return 0;
		buf_consume(&c->in, n);
		if (r < 0) {
			http_conn_close(c, r);
			return 0;
		}
		progress = 1;
	}
	if (c->peer_eof && c->in.len == 0 && !st->eof_delivered && !st->closing) {
		st->eof_delivered = true;
		r = st->ops->on_read(st, NULL, 0, st->userdata);
		if (!c->closed && r < 0)
			http_conn_close(c, r);
		progress = 1;
	}
	return progress;
}

void http_stream_flushed(struct http_conn *c)
{
	struct http_stream *st = c->stream;

	if (st->closing) {
		http_conn_close(c, 0);
		return;
	}
	if (st->want_drain) {
		st->want_drain = false;
		if (st->ops->on_drain)
			st->ops->on_drain(st, st->userdata);
	}
}

void http_stream_closed(struct http_conn *c, int error)
{
	struct http_stream *st = TAKE_PTR(c->stream);

	c->server->stats.streams_active--;
	st->conn = NULL;
	st->ops->on_close(st, error, st->userdata);
	free(st);
}

int http_stream_write(struct http_stream *st, const void *data, size_t len)
{
	struct http_conn *c;
	size_t cap;
	int r;

	if (!st || (!data && len))
		return -EINVAL;
	if (st->closing || !st->conn)
		return -EPIPE;
	c = st->conn;
	cap = c->server->cfg.stream_queue_bytes;
	if (len > cap || c->out.len > cap - len) {
		st->want_drain = true;
		return -ENOBUFS;
	}
	if (c->out.len == 0)
		c->write_at = http_conn_now(c);
	r = buf_append(&c->out, data, len);
	if (r < 0)
		return r;
	http_conn_schedule(c);
	return 0;
}

size_t http_stream_queued(const struct http_stream *st)
{
	return st && st->conn ? st->conn->out.len : 0;
}

void http_stream_set_read_paused(struct http_stream *st, bool paused)
{
	if (!st || !st->conn || st->read_paused == paused)
		return;
	st->read_paused = paused;
	http_conn_schedule(st->conn);
}

void http_stream_close(struct http_stream *st)
{
	if (!st || !st->conn || st->closing)
		return;
	st->closing = true;
	http_conn_schedule(st->conn);
}
