/* Internals of the HTTP server, shared by its topic files:
 *   http.c          server object, listeners, connections, the I/O pump and timers
 *   http_request.c  http-parser callbacks, limits, the request object, routing, responses
 *   http_stream.c   connections taken over by upgrade handlers
 *   http_tls.c      the OpenSSL transport and certificate reload */
#pragma once

#include <http_parser.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <time.h>

#include "cocoon/buf.h"
#include "cocoon/http.h"

/* Header fields per request; the byte cap bounds them too, this bounds the index. */
#define HTTP_MAX_HEADERS 256
/* Bytes read per recv(); also how far input may run ahead of a busy connection. */
#define HTTP_READ_CHUNK (16 * 1024)
/* A TLS connection idle this long between requests gives back OpenSSL's read and write
 * buffers (about 34 KiB); a busy one keeps them, so requests do not pay for them. */
#define HTTP_TLS_IDLE_RELEASE_USEC (1 * USEC_PER_SEC)
/* After an error answer: how long to keep reading (and dropping) the rest of the
 * request, so closing does not reset the connection before the client read the answer. */
#define HTTP_LINGER_USEC (2 * USEC_PER_SEC)
#define HTTP_PEER_MAX    64

struct http_route {
	char *method; /* NULL: any */
	char *path;
	unsigned flags;
	http_handler_t handler;
	void *userdata;
};

struct http_listener {
	struct http_server *server;
	int fd;
	sd_event_source *src;
	struct http_listener *next;
};

struct http_server {
	sd_event *event;
	struct http_server_config cfg;
	struct http_listener *listeners;
	struct http_conn *conns;
	unsigned n_conns;
	struct http_route *routes;
	size_t n_routes;
	sd_event_source *accept_retry; /* re-enables listeners after EMFILE and friends */
	/* The connections' sockets live in this private epoll set, which sd-event watches as
	 * one io source: one dispatch serves every connection that is ready (http.c). */
	int epfd;
	sd_event_source *epoll_src;

	SSL_CTX *tls_ctx; /* NULL: plain HTTP */
	BIO_METHOD *bio_method;
	char *tls_cert, *tls_key, *tls_ca;
	enum tls_verify tls_verify;

	/* The Date header of this second (RFC 9110 §6.6.1), formatted once per second. */
	time_t date_sec;
	char date[40];

	bool shutting_down;
	sd_event_source *drained_src;
	void (*on_drained)(struct http_server *s, void *userdata);
	void *drained_userdata;

	struct http_server_stats stats;
};

enum conn_state {
	CONN_READ,   /* waiting for or reading a request */
	CONN_HANDLE, /* a request is with its handler */
	CONN_DRAIN,  /* sending the last answer, then linger */
	CONN_LINGER, /* write side shut; dropping input until EOF or the linger deadline */
	CONN_STREAM, /* taken over by an upgrade handler */
};

struct http_conn {
	unsigned n_ref;
	struct http_server *server;
	struct http_conn *prev, *next;
	enum conn_state state;
	bool closed;
	bool peer_eof;
	/* The socket had no more input at the last read (EAGAIN, or a read shorter than asked
	 * with nothing left in OpenSSL): the next read waits for epoll to say there is some. */
	bool read_drained;
	bool recv_short; /* the last recv() returned less than asked for, or nothing */
	/* conn_pump() is running; a schedule request then means one more round, not a wakeup. */
	bool pumping, repump;

	int fd;           /* -EBADF for a memory connection */
	struct buf *sink; /* memory connection: where output goes */
	sd_event_source *timer, *defer;
	uint32_t io_events; /* what the socket waits for in the server's epoll set; 0: not in it */
	uint64_t timer_at; /* when the timer fires (0: off); never later than the deadline */
	char peer[HTTP_PEER_MAX];

	SSL *ssl;
	bool handshake_done;
	int tls_read_want;     /* SSL_ERROR_WANT_* that blocked the last read, 0 if none */
	int tls_write_want;    /* … the last write */
	bool tls_buffers_held; /* OpenSSL may hold its buffers (since the last release) */
	char *tls_subject;
	bool tls_verified;

	struct buf in;  /* received, not yet parsed (capped) */
	struct buf out; /* to send */

	http_parser parser;
	struct http_request *parsing; /* being read */
	struct http_request *req;     /* with its handler */
	unsigned fail_status;         /* set by a parser callback that refused the request */
	char fail_msg[160];
	unsigned n_requests;

	uint64_t accepted_at, begun_at, headers_at, idle_since, write_at, linger_at;
	struct http_stream *stream;
};

struct http_query_param {
	char *name, *value;
};

struct http_request {
	unsigned n_ref;
	struct http_conn *conn; /* NULL once answered or disconnected */
	bool replied, cancelled;

	/* "url\0name\0value\0name\0value\0…", filled by the parser callbacks */
	struct buf head;
	size_t url_len;
	size_t *fields; /* offsets into head: name, value, name, value, … */
	size_t n_fields, fields_alloc;
	bool in_value;
	size_t trailer_bytes;
	bool headers_done;

	char method[16];
	char *path, *query;
	struct http_query_param *params;
	size_t n_params;
	struct buf body;
	bool head_only, keep_alive, http10;
	unsigned route_flags;

	char peer[HTTP_PEER_MAX];
	bool tls, tls_verified;
	char *tls_subject;

	struct buf reply_headers; /* "Name: value\r\n"… */
	void (*cancel_cb)(struct http_request *req, void *userdata);
	void *cancel_userdata;
};

struct http_stream {
	struct http_conn *conn;
	const struct http_stream_ops *ops;
	void *userdata;
	bool closing, eof_delivered, read_paused, want_drain;
};

/* http.c */
void http_conn_ref(struct http_conn *c);
void http_conn_unref(struct http_conn *c);
void http_conn_close(struct http_conn *c, int error);
void http_conn_schedule(struct http_conn *c);
uint64_t http_conn_now(const struct http_conn *c);

/* http_request.c */
void http_conn_parser_reset(struct http_conn *c);
int http_conn_parse(struct http_conn *c);
void http_conn_fail(struct http_conn *c, unsigned status, const char *fmt, ...) _printf_(3, 4);
void http_request_disconnect(struct http_request *req);

/* http_stream.c */
int http_stream_process(struct http_conn *c);
void http_stream_flushed(struct http_conn *c);
void http_stream_closed(struct http_conn *c, int error);

/* http_tls.c */
int http_tls_conn_init(struct http_conn *c);
int http_tls_handshake(struct http_conn *c);
ssize_t http_tls_recv(struct http_conn *c, void *p, size_t n);
ssize_t http_tls_send(struct http_conn *c, const void *p, size_t n);
/* The last read emptied the socket and OpenSSL holds no further input. */
bool http_tls_drained(const struct http_conn *c);
bool http_tls_pending(const struct http_conn *c);
void http_tls_release_buffers(struct http_conn *c);
void http_tls_conn_done(struct http_conn *c, int error);
void http_tls_server_done(struct http_server *s);
