/* HTTP/1.1 server on sd-event: the admission webhook (:8443), the kubelet API (:10250, with
 * exec/attach/port-forward upgrades) and the plain /metrics and /healthz listeners.
 *
 * Single-threaded and non-blocking. Requests are parsed by http-parser with hard limits
 * (header bytes → 431, body bytes → 413, timeouts → 408, malformed → 400), routed by method
 * and exact path or path prefix (404, 405 with Allow), and answered by handlers that may
 * reply at once or later. Keep-alive and pipelining follow RFC 9112 §9; responses go out in
 * request order because the next request is only parsed once the previous answer is sent.
 *
 * Ownership: a handler borrows its request. To answer later it takes a reference
 * (http_request_ref()) and drops it after replying; if the client went away meanwhile the
 * reply returns -ENOTCONN and the optional cancel callback has already told it so. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "cocoon/buf.h"
#include "cocoon/macro.h"
#include "cocoon/tls.h"

#define HTTP_DEFAULT_MAX_HEADER_BYTES    (16 * 1024)
#define HTTP_DEFAULT_MAX_BODY_BYTES      (1024 * 1024)
#define HTTP_DEFAULT_MAX_CONNECTIONS     1024U
#define HTTP_DEFAULT_HEADER_TIMEOUT_USEC (10 * 1000000ULL)
#define HTTP_DEFAULT_BODY_TIMEOUT_USEC   (60 * 1000000ULL)
#define HTTP_DEFAULT_IDLE_TIMEOUT_USEC   (60 * 1000000ULL)
#define HTTP_DEFAULT_STREAM_QUEUE_BYTES  (1024 * 1024)

/* Zero fields take the defaults above. */
struct http_server_config {
	size_t max_header_bytes;  /* request line + header fields (and trailers), → 431 */
	size_t max_body_bytes;    /* by Content-Length before reading, or while reading, → 413 */
	unsigned max_connections; /* open connections and streams; more are refused */
	uint64_t header_timeout_usec; /* TLS handshake, request line and headers, → 408 */
	uint64_t body_timeout_usec;   /* the body after the headers, → 408 */
	uint64_t idle_timeout_usec;   /* keep-alive wait for the next request; a stalled write */
	size_t stream_queue_bytes;    /* outgoing queue of an upgraded stream */
};

struct http_server_stats {
	uint64_t connections_accepted;
	uint64_t connections_active;
	uint64_t connections_refused; /* over max_connections */
	uint64_t requests;            /* complete requests handed to routing */
	uint64_t responses[6];        /* by class: [2] = 2xx … [5] = 5xx; [1] = 101 upgrades */
	uint64_t bad_requests;        /* 400, 413, 417, 431 and 505 sent by the parser side */
	uint64_t timeouts;            /* 408 sent, or a connection closed for a stalled write */
	uint64_t client_aborts;       /* client gone while its request was with a handler */
	uint64_t tls_handshake_failures;
	uint64_t streams_active;
};

struct http_server;
struct http_request;
struct http_stream;

/* Route flags. */
enum {
	HTTP_ROUTE_PREFIX = 1 << 0,  /* path is a prefix ("/exec/"), not the whole path */
	HTTP_ROUTE_UPGRADE = 1 << 1, /* the handler may take the connection over */
};

/* A handler answers with one of the http_reply*() calls, now or later. Returning < 0
 * without having replied sends a 500. Returning >= 0 without having replied means "later":
 * the handler must hold a reference; if it holds none, a 500 is sent (a handler bug). */
typedef int (*http_handler_t)(struct http_request *req, void *userdata);

int http_server_new(sd_event *event, const struct http_server_config *cfg,
		    struct http_server **ret);
/* Closes every listener, connection and stream (streams get on_close(-ECANCELED)); requests
 * still held by handlers become disconnected. Must not be called from a handler. */
void http_server_free(struct http_server *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct http_server *, http_server_free);

/* Bind and listen on "host:port", "[v6]:port" or ":port" (all addresses, dual-stack). Only
 * numeric hosts and "localhost" (no DNS on the loop). Port 0 picks one. Returns the port. */
int http_server_listen_address(struct http_server *s, const char *address);
/* Serve a listening stream socket handed in (e.g. by systemd). On success the server owns
 * fd and closes it in http_server_free(); on failure the caller keeps it. */
int http_server_listen_fd(struct http_server *s, int fd);
/* Adopt the sockets of $LISTEN_FDS (sd_listen_fds(3)); with name, only those whose
 * $LISTEN_FDNAMES entry matches. The environment is left alone, so several servers can each
 * adopt their own names. Returns how many were adopted (0: none matched). */
int http_server_listen_systemd(struct http_server *s, const char *name);

/* Serve TLS on every listener of this server, for connections accepted from now on. ca_path
 * is the client-CA bundle (needed unless verify is TLS_VERIFY_NONE). On failure nothing
 * changes; tls_last_error() says what was wrong with which file. */
int http_server_set_tls(struct http_server *s, const char *cert_path, const char *key_path,
			const char *ca_path, enum tls_verify verify);
/* Re-read the files given to http_server_set_tls() (certificate rotation). New connections
 * get the new context, open ones keep theirs; on failure the old one stays in use and
 * tls_last_error() says why. -ENOKEY if TLS was never set up. */
int http_server_reload_tls(struct http_server *s);

/* method NULL matches any method; HEAD falls back to a GET route (the body is dropped). The
 * most specific route wins: exact before prefix, longer prefix before shorter. */
int http_server_add_route(struct http_server *s, const char *method, const char *path,
			  unsigned flags, http_handler_t handler, void *userdata);

/* Graceful stop: listeners close, idle connections close, requests in progress finish and
 * their connections close after the answer. on_done (optional) runs from the event loop once
 * no connection or stream is left. Call http_server_free() afterwards (or on a deadline). */
void http_server_shutdown(struct http_server *s, void (*on_done)(struct http_server *s, void *u),
			  void *userdata);
void http_server_get_stats(const struct http_server *s, struct http_server_stats *ret);

/* Run one connection's input through the same parser, limits, routing and handlers as a
 * socket connection, without a socket: everything the server would send is appended to out
 * (an out cap that is reached drops the rest). Handlers still busy at the end see a client
 * that went away. For fuzzing and tests. */
int http_server_process_buffer(struct http_server *s, const void *data, size_t len,
			       struct buf *out);

/* The request. Strings are valid while the request is referenced. */
struct http_request *http_request_ref(struct http_request *req);
void http_request_unref(struct http_request *req);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct http_request *, http_request_unref);

const char *http_request_method(const struct http_request *req); /* "GET" */
const char *http_request_path(const struct http_request *req);   /* "/a/b", as sent */
const char *http_request_query(const struct http_request *req);  /* "x=1&y=2", or "" */
/* The idx-th value of a query parameter, percent-decoded ('+' is a space); NULL if absent. */
const char *http_request_get_query(const struct http_request *req, const char *name, unsigned idx);
/* The idx-th field with this name (case-insensitive); NULL if absent. Repeated fields stay
 * separate (X-Stream-Protocol-Version is sent as several lines). */
const char *http_request_get_header(const struct http_request *req, const char *name, unsigned idx);
/* The body, NUL-terminated (not counted in ret_len). */
const char *http_request_body(const struct http_request *req, size_t *ret_len);
const char *http_request_peer(const struct http_request *req); /* "10.0.0.1:4711", "[::1]:80" */
bool http_request_is_tls(const struct http_request *req);
/* The client certificate's subject (RFC 2253) if one was presented, and whether it verified
 * against the server's client CA. */
const char *http_request_tls_subject(const struct http_request *req);
bool http_request_tls_verified(const struct http_request *req);
/* Called once if the client disconnects before the reply (so a handler can stop work). */
void http_request_set_cancel(struct http_request *req,
			     void (*cb)(struct http_request *req, void *userdata), void *userdata);

/* Add a response header for the coming reply. Framing fields (Content-Length,
 * Transfer-Encoding, Connection) are the server's and refused, as is CR/LF in either part. */
int http_reply_add_header(struct http_request *req, const char *name, const char *value);
/* Answer: -EALREADY if answered before, -ENOTCONN if the client is gone, -EINVAL for a
 * status outside 200..599. */
int http_reply(struct http_request *req, unsigned status, const char *content_type,
	       const void *body, size_t len);
int http_reply_json(struct http_request *req, unsigned status, const json_t *json);
/* text/plain: message and a newline. */
int http_reply_error(struct http_request *req, unsigned status, const char *message);

/* Upgraded connections: a byte stream over TCP or TLS after "101 Switching Protocols". */
struct http_stream_ops {
	/* Bytes from the peer; len 0 means the peer finished sending (the stream can still
	 * be written until closed). Return < 0 to abort the stream. */
	int (*on_read)(struct http_stream *st, const void *data, size_t len, void *userdata);
	/* The outgoing queue emptied after http_stream_write() returned -ENOBUFS. Optional. */
	void (*on_drain)(struct http_stream *st, void *userdata);
	/* The stream is gone: error 0 after http_stream_close() flushed, else -errno (I/O
	 * error, abort, -ECANCELED from http_server_free()). st is freed when this returns. */
	void (*on_close)(struct http_stream *st, int error, void *userdata);
};

/* From a HTTP_ROUTE_UPGRADE handler (now or later): send "101 Switching Protocols" with
 * Connection: Upgrade and the headers added with http_reply_add_header() (Upgrade, …) and
 * turn the connection into a stream. Bytes the client sent after the request are delivered
 * to on_read first. -EPERM from a route without HTTP_ROUTE_UPGRADE. */
int http_request_upgrade(struct http_request *req, const struct http_stream_ops *ops,
			 void *userdata, struct http_stream **ret);

/* Queue bytes for the peer, all or nothing: -ENOBUFS when the queue (stream_queue_bytes)
 * has no room (on_drain follows), -EPIPE once closing. */
int http_stream_write(struct http_stream *st, const void *data, size_t len);
size_t http_stream_queued(const struct http_stream *st);
/* Stop (or resume) delivering on_read, so a slow consumer pushes back on the peer. */
void http_stream_set_read_paused(struct http_stream *st, bool paused);
/* Flush what is queued, then close; on_close(0) follows from the event loop. */
void http_stream_close(struct http_stream *st);
