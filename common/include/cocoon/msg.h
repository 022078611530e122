/* Every message between cocoon processes, in one table (MSG_TYPES below), and the codec for
 * their frames. bus.h carries the frames over nanomsg; this file knows nothing about sockets.
 *
 * Frame: a fixed 12-byte little-endian header, then one JSON object (UTF-8, no NUL):
 *
 *   offset  size  field
 *        0     1  magic 0xC0 ("cocoon"), so a stray non-cocoon peer is told apart from a
 *                 cocoon peer of another version
 *        1     1  version (MSG_VERSION)
 *        2     2  type (enum msg_type)
 *        4     4  body length in bytes
 *        8     4  request id: chosen by the requester, echoed by the reply; 0 in events
 *       12     n  body
 *
 * Adding a message: one X() line in MSG_TYPES with the next free number of its group, and one
 * MSG_FIELDS_<name> list. The C struct (struct msg_<name>), the descriptor the codec walks,
 * the type names and the union member of struct msg all follow from those two; then pin the
 * frame with a golden entry in tests/unit/test-msg.c. Numbers are append-only: never reuse
 * or renumber one, a peer built from an older tree still speaks it. Decoders ignore fields
 * they do not know, so an OPT field can be added to an existing message; a new REQ field
 * cannot (older senders do not send it): add a new message instead. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cocoon/buf.h"

#define MSG_MAGIC       0xC0
#define MSG_VERSION     1
#define MSG_HEADER_SIZE 12
/* Largest frame (header + body) encoded or accepted. bus.h sets NN_RCVMAXSIZE from it. */
#define MSG_FRAME_MAX (64 * 1024)

/* String caps, in bytes. */
#define MSG_KEY_MAX  317  /* pod key "<namespace>/<name>": DNS label 63 + "/" + subdomain 253 */
#define MSG_NAME_MAX 253  /* node names, OS names, SSH targets, platform names */
#define MSG_ADDR_MAX 64   /* IP and MAC addresses, CIDRs, interface names */
#define MSG_TEXT_MAX 1024 /* human-readable reasons and error messages */

/* X(NAME, number, name): every message type, grouped by the daemon that serves it; each
 * line says sender->receiver, pattern (REQ/REP or PUB/SUB) and the reply. */
/* clang-format off */
#define MSG_TYPES(X)                                                                               \
	/* generic replies */                                                                      \
	X(OK, 0x0001, ok)                             /* any REP -> its REQ: request done */       \
	X(ERROR, 0x0002, error)                       /* any REP -> its REQ: request failed */     \
	/* probed: vkd <-> probed */                                                               \
	X(PROBE_WATCH, 0x0101, probe_watch)           /* vkd->probed REQ -> OK: probe a pod */     \
	X(PROBE_FORGET, 0x0102, probe_forget)         /* vkd->probed REQ -> OK: stop probing */    \
	X(PROBE_LIST, 0x0103, probe_list)             /* vkd->probed REQ -> PROBE_STATE_ALL */     \
	X(PROBE_STATE_ALL, 0x0104, probe_state_all)   /* probed->vkd REP: all pods, as of seq */   \
	X(PROBE_TRANSITION, 0x0105, probe_transition) /* probed->vkd PUB: ready/live flipped */    \
	/* netd: vkd <-> netd, and CLI (cocoon-net) -> netd */                                     \
	X(LEASE_LOOKUP, 0x0201, lease_lookup)         /* vkd->netd REQ -> LEASE_INFO or ERROR */   \
	X(LEASE_INFO, 0x0202, lease_info)             /* netd->vkd REP: the lease of one MAC */    \
	X(LEASE_RELEASE, 0x0203, lease_release)       /* vkd->netd REQ -> OK: free a MAC's IP */   \
	X(LEASE_LIST, 0x0204, lease_list)             /* vkd->netd REQ -> LEASE_ALL */             \
	X(LEASE_ALL, 0x0205, lease_all)               /* netd->vkd REP: all leases, as of seq */   \
	X(LEASE_GRANTED, 0x0206, lease_granted)       /* netd->vkd PUB: lease granted/renewed */   \
	X(LEASE_EXPIRED, 0x0207, lease_expired)       /* netd->vkd PUB: a lease ended */           \
	X(NET_STATUS, 0x0208, net_status)             /* CLI->netd REQ -> NET_STATUS_REPLY */      \
	X(NET_STATUS_REPLY, 0x0209, net_status_reply) /* netd->CLI REP: pool, bridge, gateway */   \
	X(NET_RELOAD, 0x020a, net_reload)             /* CLI->netd REQ -> OK: re-read config */
/* clang-format on */

/* Field lists: F(R, kind, name, presence, arg), R passed through (the codec needs the record).
 *   kind      C member                               JSON
 *   STR       char *                                 string, at most arg bytes
 *   INT       int64_t                                integer
 *   U64       uint64_t                               integer in [0, INT64_MAX] (jansson's range)
 *   BOOL      bool                                   true / false
 *   ERRNO     int                                    integer in [-4095, -1]
 *   OBJ       json_t * (a reference the struct owns)  object, kept as is (probe specs)
 *   ARR       struct msg_<arg> *name; size_t n_name  array of objects of record <arg>
 *   presence  REQ (missing → error) or OPT (absent or null → NULL / 0; scalars always encoded)
 * A field named "seq" (U64) makes the message an event stream bus_pub can stamp. */

/* Records used only as array elements. */
#define MSG_RECORDS(X) X(probe_pod) X(lease)

#define MSG_FIELDS_probe_pod(F, R)                                                                 \
	F(R, STR, key, REQ, MSG_KEY_MAX)                                                           \
	F(R, BOOL, ready, REQ, 0)                                                                  \
	F(R, BOOL, live, REQ, 0)                                                                   \
	F(R, STR, reason, REQ, MSG_TEXT_MAX)
#define MSG_FIELDS_lease(F, R)                                                                     \
	F(R, STR, mac, REQ, MSG_ADDR_MAX)                                                          \
	F(R, STR, ip, REQ, MSG_ADDR_MAX)                                                           \
	F(R, U64, expires_usec, REQ, 0) /* CLOCK_REALTIME */

#define MSG_FIELDS_ok(F, R)
#define MSG_FIELDS_error(F, R)                                                                     \
	F(R, ERRNO, code, REQ, 0)                                                                  \
	F(R, STR, message, REQ, MSG_TEXT_MAX)

#define MSG_FIELDS_probe_watch(F, R)                                                               \
	F(R, STR, key, REQ, MSG_KEY_MAX)                                                           \
	F(R, STR, vm_ip, REQ, MSG_ADDR_MAX)                                                        \
	F(R, STR, mac, REQ, MSG_ADDR_MAX)                                                          \
	F(R, STR, os, REQ, MSG_NAME_MAX)                                                           \
	F(R, STR, ssh_target, OPT, MSG_NAME_MAX) /* "user@host:port" for exec probes */            \
	F(R, OBJ, readiness, OPT, 0)             /* core/v1 Probe, as in the pod spec */           \
	F(R, OBJ, liveness, OPT, 0)
#define MSG_FIELDS_probe_forget(F, R) F(R, STR, key, REQ, MSG_KEY_MAX)
#define MSG_FIELDS_probe_list(F, R)
#define MSG_FIELDS_probe_state_all(F, R)                                                           \
	F(R, U64, seq, REQ, 0) /* last PROBE_TRANSITION this state includes */                     \
	F(R, ARR, pods, REQ, probe_pod)
#define MSG_FIELDS_probe_transition(F, R)                                                          \
	F(R, U64, seq, REQ, 0)                                                                     \
	F(R, STR, key, REQ, MSG_KEY_MAX)                                                           \
	F(R, BOOL, ready, REQ, 0)                                                                  \
	F(R, BOOL, live, REQ, 0)                                                                   \
	F(R, STR, reason, REQ, MSG_TEXT_MAX)                                                       \
	F(R, U64, ts_usec, REQ, 0) /* CLOCK_REALTIME of the probe that flipped */

#define MSG_FIELDS_lease_lookup(F, R)  F(R, STR, mac, REQ, MSG_ADDR_MAX)
#define MSG_FIELDS_lease_info(F, R)    MSG_FIELDS_lease(F, R)
#define MSG_FIELDS_lease_release(F, R) F(R, STR, mac, REQ, MSG_ADDR_MAX)
#define MSG_FIELDS_lease_list(F, R)
#define MSG_FIELDS_lease_all(F, R)                                                                 \
	F(R, U64, seq, REQ, 0) /* last LEASE_GRANTED/EXPIRED this state includes */                \
	F(R, ARR, leases, REQ, lease)
#define MSG_FIELDS_lease_granted(F, R)                                                             \
	F(R, U64, seq, REQ, 0)                                                                     \
	MSG_FIELDS_lease(F, R)
#define MSG_FIELDS_lease_expired(F, R)                                                             \
	F(R, U64, seq, REQ, 0)                                                                     \
	F(R, STR, mac, REQ, MSG_ADDR_MAX)                                                          \
	F(R, STR, ip, REQ, MSG_ADDR_MAX)
#define MSG_FIELDS_net_status(F, R)
#define MSG_FIELDS_net_status_reply(F, R)                                                          \
	F(R, STR, platform, REQ, MSG_NAME_MAX)                                                     \
	F(R, STR, node, REQ, MSG_NAME_MAX)                                                         \
	F(R, STR, subnet, REQ, MSG_ADDR_MAX)                                                       \
	F(R, STR, gateway, REQ, MSG_ADDR_MAX)                                                      \
	F(R, STR, bridge, REQ, MSG_ADDR_MAX)                                                       \
	F(R, U64, pool_size, REQ, 0)                                                               \
	F(R, U64, active_leases, REQ, 0)
#define MSG_FIELDS_net_reload(F, R)

/* Generated: enum msg_type, one struct per record and per message, struct msg. */
enum msg_type {
#define MSG_ENUM_(NAME, number, name) MSG_##NAME = number,
	MSG_TYPES(MSG_ENUM_)
#undef MSG_ENUM_
};

#define MSG_MEMBER_STR_(name, arg)   char *name;
#define MSG_MEMBER_INT_(name, arg)   int64_t name;
#define MSG_MEMBER_U64_(name, arg)   uint64_t name;
#define MSG_MEMBER_BOOL_(name, arg)  bool name;
#define MSG_MEMBER_ERRNO_(name, arg) int name;
#define MSG_MEMBER_OBJ_(name, arg)   json_t *name;
#define MSG_MEMBER_ARR_(name, arg)                                                                 \
	struct msg_##arg *name;                                                                    \
	size_t n_##name;
#define MSG_MEMBER_(R, kind, name, presence, arg) MSG_MEMBER_##kind##_(name, arg)
#define MSG_STRUCT_(name)                                                                          \
	struct msg_##name {                                                                        \
		MSG_FIELDS_##name(MSG_MEMBER_, name)                                               \
	};
#define MSG_TYPE_STRUCT_(NAME, number, name) MSG_STRUCT_(name)
MSG_RECORDS(MSG_STRUCT_)
MSG_TYPES(MSG_TYPE_STRUCT_)
#undef MSG_TYPE_STRUCT_

/* A decoded frame. The body is the union member named after the type (m->probe_watch for
 * MSG_PROBE_WATCH); msg_body() points at it for the type-generic calls below. */
struct msg {
	enum msg_type type;
	uint32_t reqid;
	union {
#define MSG_UNION_(NAME, number, name) struct msg_##name name;
		MSG_TYPES(MSG_UNION_)
#undef MSG_UNION_
	};
};

static inline const void *msg_body(const struct msg *m)
{
	return &m->ok;
}

struct msg_header {
	uint8_t version;
	uint16_t type;
	uint32_t length;
	uint32_t reqid;
};

/* "PROBE_WATCH", or NULL for a number not in the table. */
const char *msg_type_name(int type);
/* The type named s (exact, upper case), or -EINVAL. */
int msg_type_from_name(const char *s);

/* Append one frame to out (out is unchanged on failure). body points at the struct of the
 * type (struct msg_probe_watch for MSG_PROBE_WATCH; NULL for messages without fields).
 * -ENOMSG unknown type, -EINVAL a REQ field left NULL or an OBJ field that is not an object,
 * -E2BIG a string over its cap, -ERANGE a U64 over INT64_MAX or an ERRNO not in [-4095, -1],
 * -EMSGSIZE frame over MSG_FRAME_MAX, -ENOMEM, or buf_append()'s -E2BIG at out's cap. */
int msg_encode(enum msg_type type, const void *body, uint32_t reqid, struct buf *out);
/* Same for an event: the body's "seq" field is written as seq, the request id as 0.
 * -EINVAL when the type has no seq field. */
int msg_encode_event(enum msg_type type, const void *body, uint64_t seq, struct buf *out);

/* Parse only the 12-byte header (magic, version, no body checks): lets a receiver answer a
 * request whose body it refuses. -EBADMSG short frame, -EPROTO bad magic. */
int msg_header_parse(const void *frame, size_t n, struct msg_header *ret);

/* Strictly decode one frame. Errors (*ret_error, when ret_error is not NULL, gets a malloc'd
 * text naming the message and field, e.g. "PROBE_WATCH: field 'key' missing"):
 *   -EMSGSIZE         frame or declared body over MSG_FRAME_MAX
 *   -EBADMSG          frame shorter than the header, or length field ≠ bytes that follow
 *   -EPROTO           bad magic (not a cocoon frame)
 *   -EPROTONOSUPPORT  version other than MSG_VERSION
 *   -ENOMSG           type not in MSG_TYPES
 *   -EILSEQ           body is not one JSON object (bad JSON or UTF-8, NUL, duplicate key,
 *                     trailing bytes, or another JSON type)
 *   -ENODATA          a REQ field is missing
 *   -EINVAL           a field has the wrong JSON type
 *   -ERANGE           an integer outside its field's range
 *   -E2BIG            a string over its cap
 *   -ENOMEM
 * Fields the table does not know are ignored (newer peers may add OPT fields). */
int msg_decode(const void *frame, size_t n, struct msg **ret, char **ret_error);
void msg_free(struct msg *m);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct msg *, msg_free)

/* The body's "seq" field. -EINVAL when the type has none. */
int msg_get_seq(const struct msg *m, uint64_t *ret);
/* Field-by-field equality of two bodies of the same type (strings by content, OBJ fields by
 * json_equal(), arrays element by element). */
bool msg_body_equal(enum msg_type type, const void *a, const void *b);
