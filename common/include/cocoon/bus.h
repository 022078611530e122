/* IPC between cocoon processes: msg.h frames over nanomsg sockets, driven by sd-event.
 *
 *   bus_server  REP, binds    requests in, one reply each (now, or later by id)
 *   bus_client  REQ, connects requests out, a callback per reply or timeout
 *   bus_pub     PUB, binds    events out, stamped with a per-publisher sequence number
 *   bus_sub     SUB, connects events in, with gap detection
 *
 * Endpoints are "ipc:///run/cocoon/<daemon>.sock" (bus_endpoint()). Connecting sides retry
 * on their own (nanomsg reconnects every 100 ms), so start order does not matter: a request
 * made before its server is up waits in the send queue until it connects or times out.
 *
 * PUB/SUB is lossy (a slow subscriber loses events), so events are hints: every stream has a
 * "current state" request whose reply carries the publisher's sequence number (PROBE_LIST →
 * PROBE_STATE_ALL.seq). A subscriber fetches it at start and whenever on_gap fires, and hands
 * its seq to bus_sub_set_seq(). Publishers start their sequence at the CLOCK_REALTIME µs of
 * their creation, so a restarted publisher continues above its predecessor.
 *
 * Malformed frames are counted, logged at debug with ", ignoring" and dropped; a server
 * answers a request it refuses with ERROR when the header names a request id. Every queue a
 * peer can grow is capped: at the cap, calls fail with -ENOBUFS.
 *
 * Callbacks may free the object that called them (the free takes effect when the callback
 * returns); nothing else is called on it afterwards. Freeing a client drops its pending
 * requests without calling their callbacks. */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "cocoon/msg.h"

#define BUS_QUEUE_MAX_DEFAULT    256 /* frames waiting for nanomsg to take them */
#define BUS_PENDING_MAX_DEFAULT  256 /* client: calls awaiting a reply; server: unanswered */
#define BUS_TIMEOUT_DEFAULT_USEC (5 * 1000000ULL)
/* A server forgets a request left unanswered this long (its client has given up). */
#define BUS_SERVER_PENDING_USEC_DEFAULT (60 * 1000000ULL)
/* A sequence number at most this far behind the last one is a late duplicate and dropped;
 * further behind means the publisher restarted with an older clock, treated as a gap. */
#define BUS_SEQ_STALE_WINDOW 65536

struct bus_stats {
	uint64_t received;           /* frames read from the socket */
	uint64_t sent;               /* frames handed to nanomsg */
	uint64_t dropped_malformed;  /* frames msg_decode() refused (events without seq too) */
	uint64_t dropped_queue_full; /* calls, replies or events refused at a cap */
	uint64_t dropped_unmatched;  /* client: replies to no pending call (late, after timeout) */
	uint64_t dropped_stale;      /* sub: events at or before the known sequence number */
	uint64_t gaps;               /* sub: times on_gap was called */
};

/* The endpoint of daemon ("netd", "probed", "cocoon-net": [a-z0-9-]+): $COCOON_<DAEMON>_BUS
 * (upper case, '-' → '_') when set, else "ipc://$COCOON_RUN_DIR/<daemon>.sock" with
 * COCOON_RUN_DIR defaulting to /run/cocoon. -EINVAL bad daemon name, -ENAMETOOLONG when it
 * does not fit n or an ipc:// path is too long for a Unix socket. */
int bus_endpoint(const char *daemon, char *buf, size_t n);

/* ---- server ---- */

struct bus_server;
/* A decoded request. Reply with bus_server_reply(s, id, …), from the handler or later. A
 * negative return with no reply sent answers ERROR {code, "<TYPE>: <strerror>"}; returning
 * >= 0 without replying defers the reply. m is valid only during the call. */
typedef int (*bus_request_handler_t)(struct bus_server *s, uint64_t id, const struct msg *m,
				     void *userdata);

/* Bind endpoint (creating an ipc:// socket's directory, mode 0755, when missing). */
int bus_server_new(sd_event *e, const char *endpoint, bus_request_handler_t handler, void *userdata,
		   struct bus_server **ret);
void bus_server_free(struct bus_server *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct bus_server *, bus_server_free)
/* Answer request id. -ENOENT when it was answered already or forgotten; encoding errors and
 * -ENOBUFS leave it pending, so an ERROR can still be sent. */
int bus_server_reply(struct bus_server *s, uint64_t id, enum msg_type type, const void *body);
int bus_server_reply_error(struct bus_server *s, uint64_t id, int error, const char *message);
/* 0 keeps the current value. A request left unanswered for pending_usec is forgotten when
 * room is needed; beyond pending_max unanswered requests, new ones get ERROR -EBUSY. */
void bus_server_set_limits(struct bus_server *s, size_t queue_max, size_t pending_max,
			   uint64_t pending_usec);
const struct bus_stats *bus_server_stats(const struct bus_server *s);

/* ---- client ---- */

struct bus_client;
/* The reply, or why there is none. error: 0 with reply; a negative errno with reply of type
 * MSG_ERROR (reply->error.message says why); or a negative errno with reply NULL:
 * -ETIMEDOUT, or the decoder's error when the reply frame was malformed. */
typedef void (*bus_reply_handler_t)(struct bus_client *c, int error, const struct msg *reply,
				    void *userdata);

int bus_client_new(sd_event *e, const char *endpoint, struct bus_client **ret);
void bus_client_free(struct bus_client *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct bus_client *, bus_client_free)
/* Send a request; callback runs exactly once (unless the client is freed first).
 * timeout_usec 0 means BUS_TIMEOUT_DEFAULT_USEC. Returns the request id (> 0), or -ENOBUFS
 * at the pending or queue cap, or msg_encode()'s error. */
int bus_client_call(struct bus_client *c, enum msg_type type, const void *body,
		    uint64_t timeout_usec, bus_reply_handler_t callback, void *userdata);
void bus_client_set_limits(struct bus_client *c, size_t queue_max, size_t pending_max);
const struct bus_stats *bus_client_stats(const struct bus_client *c);

/* ---- publisher ---- */

struct bus_pub;
int bus_pub_new(sd_event *e, const char *endpoint, struct bus_pub **ret);
void bus_pub_free(struct bus_pub *p);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct bus_pub *, bus_pub_free)
/* Publish an event of a type with a "seq" field; the body's seq is ignored and the next
 * sequence number sent instead. A refused event (-ENOBUFS) still uses its number, so
 * subscribers see the loss as a gap. -EINVAL for a type without seq. */
int bus_pub_publish(struct bus_pub *p, enum msg_type type, const void *body);
/* The last sequence number used: what a "current state" reply reports as its seq. */
uint64_t bus_pub_seq(const struct bus_pub *p);
void bus_pub_set_queue_max(struct bus_pub *p, size_t queue_max);
const struct bus_stats *bus_pub_stats(const struct bus_pub *p);

/* ---- subscriber ---- */

struct bus_sub;
/* m is valid only during the call. */
typedef void (*bus_event_handler_t)(struct bus_sub *s, const struct msg *m, void *userdata);
/* Events were missed: fetch the current state. expected is 0 when no sequence number was
 * known yet (the first event after bus_sub_new()). Called before the event that revealed
 * the gap is delivered. */
typedef void (*bus_gap_handler_t)(struct bus_sub *s, uint64_t expected, uint64_t got,
				  void *userdata);

/* Subscribes to every event of the publisher: filtering by type would look like gaps. */
int bus_sub_new(sd_event *e, const char *endpoint, bus_event_handler_t on_event,
		bus_gap_handler_t on_gap, void *userdata, struct bus_sub **ret);
void bus_sub_free(struct bus_sub *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct bus_sub *, bus_sub_free)
/* The seq of a "current state" reply just applied: later events continue from it, earlier
 * ones still queued are dropped as stale. */
void bus_sub_set_seq(struct bus_sub *s, uint64_t seq);
const struct bus_stats *bus_sub_stats(const struct bus_sub *s);
