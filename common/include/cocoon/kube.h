/* Kubernetes client: configuration, REST calls, watches, informers, leader election and
 * Events, on sd-event + libcurl multi (httpc). Behaves like client-go where daemons depend
 * on it (spec/kube-api.md §1). Objects are jansson trees (json_t *); the client never
 * blocks the loop.
 *
 * Split by topic:
 *   kube_config.c   kubeconfig (libyaml) → ~/.kube/config → in-cluster service account
 *   kube_client.c   REST: paths, get/list/create/update/patch/delete, Status errors,
 *                   rate limit (QPS/burst), retries with backoff on 429/5xx/connection loss
 *   kube_stream.c   framing-agnostic JSON object splitter for watch streams
 *   kube_watch.c    watch with resume from the last resourceVersion, relist on 410,
 *                   bookmarks, jittered backoff
 *   kube_informer.c list+watch cache of trimmed objects, indexes, handlers, synced signal
 *   kube_leader.c   Lease-based leader election (coordination.k8s.io/v1)
 *   kube_event.c    core/v1 Event recording with dedup counting
 *   kube_time.c     RFC 3339 Time/MicroTime formatting and parsing
 * (the work queue is generic and lives in workqueue.h) */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "cocoon/macro.h"

/* ---- configuration (kube_config.c) ---- */

struct kube_config {
	char *server;     /* https://host:port (no trailing slash) */
	char *ca_file;    /* PEM bundle path, or NULL */
	char *ca_data;    /* PEM bundle (decoded certificate-authority-data), or NULL */
	char *cert_file, *key_file; /* client certificate, or NULL */
	char *cert_data, *key_data; /* decoded client-certificate-data / client-key-data */
	char *token;      /* bearer token, or NULL */
	char *token_file; /* re-read when it changes (service-account rotation), or NULL */
	bool insecure;    /* insecure-skip-tls-verify */
	char *namespace;  /* context namespace, or the in-cluster namespace file; NULL: "default" */
	char *source;     /* where it came from: a kubeconfig path or "in-cluster" (for logs) */
};

/* KUBECONFIG (colon-separated list, first file that defines current-context wins for the
 * context; users/clusters merged first-wins like client-go), else ~/.kube/config, else
 * in-cluster (KUBERNETES_SERVICE_HOST/PORT, token, ca.crt and namespace files in
 * /var/run/secrets/kubernetes.io/serviceaccount, or in $KUBE_SA_DIR for tests; $POD_NAMESPACE
 * wins over the namespace file). context NULL: current-context. Relative paths in a
 * kubeconfig are relative to its directory; exec plugins, auth providers and basic auth are
 * refused. On error *ret_error (malloc'd; written only then) names the file and the field,
 * e.g. "/root/.kube/config: users[0].user.client-key-data: not valid base64".
 * kube_config_load_file() and kube_config_load() also check that the files named exist;
 * kube_config_parse() does no I/O (origin: the path for messages and relative paths). */
int kube_config_load(const char *context, struct kube_config **ret, char **ret_error);
int kube_config_load_file(const char *path, const char *context, struct kube_config **ret,
			  char **ret_error);
int kube_config_parse(const char *yaml, size_t len, const char *origin, const char *context,
		      struct kube_config **ret, char **ret_error);
void kube_config_free(struct kube_config *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct kube_config *, kube_config_free);

/* ---- REST (kube_client.c) ---- */

struct kube_client;
struct kube_call;

struct kube_client_options {
	double qps;           /* 0: 50 */
	unsigned burst;       /* 0: 100 */
	unsigned max_retries; /* 429/5xx/connection loss; 0: 5 (use KUBE_NO_RETRY for none) */
	uint64_t timeout_usec; /* per request (not watches); 0: 30 s */
	const char *user_agent; /* NULL: "cocoon/<version>" */
};
#define KUBE_NO_RETRY ((unsigned)-1)

int kube_client_new(sd_event *e, const struct kube_config *cfg,
		    const struct kube_client_options *opts, struct kube_client **ret);
/* Cancels every call without callbacks. Not from inside one of the client's callbacks. */
void kube_client_free(struct kube_client *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct kube_client *, kube_client_free);
const char *kube_client_namespace(const struct kube_client *c);
/* Monotonic time of the last response from the apiserver (any status), 0 if none: for
 * readiness checks ("apiserver answered recently"). */
uint64_t kube_client_last_contact(const struct kube_client *c);
/* The loop the client runs on (borrowed), for the timers of watches and informers built on
 * it (kube_watch.c: backoff and stream deadlines). */
sd_event *kube_client_event(const struct kube_client *c);

/* A resource: group "" for core. Paths are built by kube_path(). */
struct kube_resource {
	const char *group, *version, *plural;
	bool namespaced;
};
/* "/api/v1/namespaces/ns/pods/name/status"; ns NULL on a namespaced resource means all
 * namespaces (list/watch); name and sub may be NULL. Returns a malloc'd string or NULL. */
char *kube_path(const struct kube_resource *r, const char *ns, const char *name,
		const char *sub);

/* The decoded Status of a failed call (spec §1.3). */
struct kube_status {
	long code;         /* HTTP status, 0 for a transport error */
	char *reason;      /* "NotFound", "Conflict", "AlreadyExists", "Expired", … or NULL */
	char *message;     /* server's message, or a transport error description */
};

/* Completion: error is 0 on 2xx, else a negative errno that maps the class
 * (-ENOENT NotFound, -EEXIST AlreadyExists, -ESTALE Conflict, -EINVAL Invalid/BadRequest,
 * -EACCES Unauthorized/Forbidden, -ETIME Expired/Gone, -ETIMEDOUT timeout, -ECONNREFUSED
 * etc. for transport) with status filled in. obj is the response body (borrowed; take a
 * reference to keep it), NULL on error. The call is freed after the callback returns. */
typedef void (*kube_done_fn)(struct kube_call *call, int error, json_t *obj,
			     const struct kube_status *status, void *userdata);

struct kube_list_options {
	const char *label_selector, *field_selector;
	unsigned limit; /* page size; 0: 500. Pages are followed with `continue`. */
	const char *resource_version; /* NULL: most recent */
};

enum kube_patch_type {
	KUBE_PATCH_MERGE,     /* application/merge-patch+json */
	KUBE_PATCH_STRATEGIC, /* application/strategic-merge-patch+json */
	KUBE_PATCH_JSON,      /* application/json-patch+json */
};

struct kube_delete_options {
	int64_t grace_period_seconds; /* -1: server default */
	const char *precondition_uid; /* NULL: none */
	const char *precondition_resource_version;
	const char *propagation;      /* "Background", "Foreground", "Orphan" or NULL */
};

/* All return 0 and set *ret (optional) to a handle that can be cancelled until the
 * callback runs, or a negative errno without calling back. */
int kube_get(struct kube_client *c, const char *path, kube_done_fn done, void *userdata,
	     struct kube_call **ret);
/* Follows every page; obj is a List whose items are all pages' items and whose
 * metadata.resourceVersion is the first page's. */
int kube_list(struct kube_client *c, const char *path, const struct kube_list_options *o,
	      kube_done_fn done, void *userdata, struct kube_call **ret);
int kube_create(struct kube_client *c, const char *path, json_t *obj, kube_done_fn done,
		void *userdata, struct kube_call **ret);
int kube_update(struct kube_client *c, const char *path, json_t *obj, kube_done_fn done,
		void *userdata, struct kube_call **ret);
int kube_patch(struct kube_client *c, const char *path, enum kube_patch_type t, json_t *patch,
	       kube_done_fn done, void *userdata, struct kube_call **ret);
int kube_delete(struct kube_client *c, const char *path, const struct kube_delete_options *o,
		kube_done_fn done, void *userdata, struct kube_call **ret);
void kube_call_cancel(struct kube_call *call); /* no callback after this */

/* Streaming GET (the building block of kube_watch.c): on_data receives the body chunks of
 * a 2xx response as they arrive (return < 0 to abort); done runs once at the end with obj
 * NULL, or with the decoded Status on a non-2xx answer. Rate limited, never retried, no
 * per-request timeout (the caller sets timeoutSeconds in the query). path includes the
 * query string. */
typedef int (*kube_data_fn)(struct kube_call *call, const void *data, size_t len,
			    void *userdata);
int kube_stream(struct kube_client *c, const char *path, kube_data_fn on_data,
		kube_done_fn done, void *userdata, struct kube_call **ret);

/* Blocking variants for CLIs and tests (own private loop; never call from a daemon's loop).
 * method: "GET", "POST", "PUT", "PATCH" (a merge patch) or "DELETE" (body: DeleteOptions or
 * NULL). Returns 0 or the errno class; *ret_obj (optional) is a new reference on success
 * (NULL for an empty body); *ret_status (optional) is filled on failure. */
int kube_request_sync(const struct kube_config *cfg, const char *method, const char *path,
		      json_t *body, json_t **ret_obj, struct kube_status *ret_status);
void kube_status_clear(struct kube_status *s);

/* Status decoding, shared with the watch (an ERROR event's object is a Status). */
/* The errno class of an answer (the mapping above): by reason first, then by HTTP code;
 * 0 for 2xx. 429 TooManyRequests is -EAGAIN, 5xx -EIO (504 -ETIMEDOUT), 405/406/415
 * -EOPNOTSUPP, 413 -E2BIG. */
int kube_status_errno(long code, const char *reason);
/* Fill *ret from obj when it is a Status (code from obj, else http_code; reason and message
 * copied), else from http_code alone. A missing reason is derived from the code ("NotFound"
 * for 404, …), as client-go does for bodies that are not a Status. 0 or -ENOMEM. */
int kube_status_from_json(const json_t *obj, long http_code, struct kube_status *ret);
/* Delay before retry number attempt (0-based): base·2^attempt capped at max, with "equal
 * jitter" (uniform in [d/2, d]) so clients that failed together do not retry together. */
uint64_t kube_backoff_usec(unsigned attempt, uint64_t base_usec, uint64_t max_usec);

/* ---- watch stream splitting (kube_stream.c) ---- */

/* Feeds arbitrary chunks of a stream of concatenated JSON objects (optionally separated by
 * whitespace/newlines) and emits each complete object, however the chunks split or join
 * them. A single object larger than max_bytes, or bytes that cannot start an object, give
 * an error (the stream must be restarted). */
struct kube_splitter;
typedef int (*kube_object_fn)(const char *json, size_t len, void *userdata);
int kube_splitter_new(size_t max_bytes, kube_object_fn fn, void *userdata,
		      struct kube_splitter **ret);
int kube_splitter_feed(struct kube_splitter *s, const void *data, size_t len);
void kube_splitter_reset(struct kube_splitter *s);
void kube_splitter_free(struct kube_splitter *s);
/* Errors are sticky until kube_splitter_reset(): -EBADMSG (garbage), -E2BIG (cap), or what
 * fn returned. kube_splitter_error() says what and at which stream byte, e.g. "stream byte
 * 812: expected '{' to start an object, got 'x'"; NULL when there was none. fn gets the
 * object's bytes (not NUL-terminated); it must not reset or free the splitter, and a
 * negative return stops the feed with that error. */
const char *kube_splitter_error(const struct kube_splitter *s);
/* Bytes of an object whose end has not arrived yet (non-zero at the end of a stream means
 * it was cut off inside an object). */
size_t kube_splitter_pending(const struct kube_splitter *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct kube_splitter *, kube_splitter_free);

/* ---- watch (kube_watch.c) ---- */

enum kube_event_type { KUBE_ADDED, KUBE_MODIFIED, KUBE_DELETED, KUBE_BOOKMARK };

struct kube_watch;
struct kube_watch_handlers {
	/* obj borrowed. */
	void (*on_event)(struct kube_watch *w, enum kube_event_type t, json_t *obj, void *u);
	/* The watch could not resume (410 Expired / ERROR Expired): the caller must relist
	 * and restart with a fresh resourceVersion (kube_watch_restart). */
	void (*on_expired)(struct kube_watch *w, void *u);
	/* A transient failure; the watch retries with jittered backoff by itself. */
	void (*on_error)(struct kube_watch *w, int error, const char *message, void *u);
};
struct kube_watch_options {
	const char *label_selector, *field_selector;
	const char *resource_version; /* start after this RV */
	bool bookmarks;               /* allowWatchBookmarks=true */
	unsigned timeout_seconds;     /* server-side timeout per stream; 0: 300 ± jitter */
};
/* path: a collection, without a query. Handlers may call kube_watch_restart() or
 * kube_watch_free() on their own watch. */
int kube_watch_new(struct kube_client *c, const char *path, const struct kube_watch_options *o,
		   const struct kube_watch_handlers *h, void *userdata, struct kube_watch **ret);
int kube_watch_restart(struct kube_watch *w, const char *resource_version);
const char *kube_watch_resource_version(const struct kube_watch *w);
/* Retry delays after failures (0: the defaults, 1 s doubling up to 30 s, jittered): for
 * tests that provoke failures. */
void kube_watch_set_backoff(struct kube_watch *w, uint64_t initial_usec, uint64_t max_usec);
void kube_watch_free(struct kube_watch *w);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct kube_watch *, kube_watch_free);

/* ---- informer (kube_informer.c) ---- */

struct kube_informer;
/* An index function returns the keys an object is filed under (NULL-terminated, malloc'd
 * array of malloc'd strings, or NULL for none). */
typedef char **(*kube_index_fn)(const json_t *obj, void *userdata);
struct kube_informer_handlers {
	void (*on_add)(struct kube_informer *inf, const json_t *obj, void *u);
	void (*on_update)(struct kube_informer *inf, const json_t *old, const json_t *obj, void *u);
	void (*on_delete)(struct kube_informer *inf, const json_t *obj, void *u);
	void (*on_synced)(struct kube_informer *inf, void *u); /* after the first full list */
};
int kube_informer_new(struct kube_client *c, const char *path,
		      const struct kube_list_options *selectors,
		      const struct kube_informer_handlers *h, void *userdata,
		      struct kube_informer **ret);
/* Built-in indexes (fn NULL): "namespace", "nodeName" (spec.nodeName), "owner"
 * (ownerReferences uid), "label:<key>" (value of that label). Custom ones by function. Add
 * before start (-EBUSY after). Handlers may call kube_informer_free(). */
int kube_informer_add_index(struct kube_informer *inf, const char *name, kube_index_fn fn,
			    void *userdata);
/* Trims every object before it is cached and handed to the handlers (after managedFields
 * are dropped): keep only what the daemon reads, for memory. Set before start (-EBUSY
 * after). The object is the informer's own copy; fn edits it in place. */
typedef void (*kube_transform_fn)(json_t *obj, void *userdata);
int kube_informer_set_transform(struct kube_informer *inf, kube_transform_fn fn, void *userdata);
/* Keep the cached objects as compact JSON text, decoded again on every read (get, by_index,
 * list, the old object of on_update/on_delete): about a tenth of the memory for a few
 * microseconds per read. For large caches read per reconcile, not per request. Set before
 * start (-EBUSY after). */
int kube_informer_set_compact(struct kube_informer *inf, bool compact);
int kube_informer_start(struct kube_informer *inf);
bool kube_informer_synced(const struct kube_informer *inf);
/* A new reference to the cached object (read-only: it may be shared with the cache), or
 * NULL when absent. key is "ns/name" or "name". */
json_t *kube_informer_get(const struct kube_informer *inf, const char *key);
/* A new json array of the (read-only, maybe shared) objects under that index value; NULL
 * for an index that was never added. */
json_t *kube_informer_by_index(const struct kube_informer *inf, const char *index,
			       const char *value);
size_t kube_informer_size(const struct kube_informer *inf);
/* A new json array of every cached (read-only, maybe shared) object: for periodic resyncs
 * and dumps. */
json_t *kube_informer_list(const struct kube_informer *inf);
void kube_informer_free(struct kube_informer *inf);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct kube_informer *, kube_informer_free);

/* ---- leader election (kube_leader.c) ---- */

/* Campaigning starts with the first loop iteration after kube_leader_new(). Callbacks run
 * from the loop: on_new_leader for every holder seen (ourselves included, a released Lease
 * excluded); on_started_leading when our write made us the holder; on_stopped_leading when
 * leadership is lost (no renewal within renew_deadline, or another holder seen) or given
 * up by kube_leader_release(). After on_stopped_leading the daemon MUST stop acting as
 * leader at once (a daemon that cannot should exit): another candidate may take over one
 * lease duration after our last renewal. A stopped leader keeps campaigning. Callbacks may
 * call kube_leader_release() but must not free the leader (the release's done may). Free
 * the leader (and a recorder) before its client. */
struct kube_leader;
struct kube_leader_options {
	const char *namespace, *name, *identity;
	uint64_t lease_duration_usec; /* 0: 15 s */
	uint64_t renew_deadline_usec; /* 0: 10 s */
	uint64_t retry_period_usec;   /* 0: 2 s */
	void (*on_started_leading)(struct kube_leader *l, void *u);
	void (*on_stopped_leading)(struct kube_leader *l, void *u);
	void (*on_new_leader)(struct kube_leader *l, const char *identity, void *u);
};
int kube_leader_new(struct kube_client *c, const struct kube_leader_options *o, void *userdata,
		    struct kube_leader **ret);
bool kube_leader_is_leader(const struct kube_leader *l);
/* Gives the lease up (clears holderIdentity) and calls back when done: for drains.
 * on_stopped_leading runs first (before the write) if we lead; the write is bounded by the
 * renew deadline; afterwards the leader is inert. -EALREADY on a second call. */
int kube_leader_release(struct kube_leader *l, void (*done)(struct kube_leader *l, void *u),
			void *userdata);
void kube_leader_free(struct kube_leader *l);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct kube_leader *, kube_leader_free);

/* ---- events (kube_event.c) ---- */

struct kube_recorder;
int kube_recorder_new(struct kube_client *c, const char *component, const char *host,
		      struct kube_recorder **ret);
/* type "Normal" or "Warning"; involved is the object (kind, namespace, name, uid,
 * apiVersion, resourceVersion are taken from it). Repeats of the same (object, type,
 * reason, message) within 10 min patch count/lastTimestamp instead of creating.
 * Returns 0 once the write is queued; -EINVAL (logged at debug, counted) when the object has
 * no kind or metadata.name (items of built-in lists carry no kind: set it), type is
 * another word or reason is empty or over 128 bytes; -ENOBUFS at the cache cap. Messages
 * are cut at 1024 bytes. */
int kube_record(struct kube_recorder *r, const json_t *involved, const char *type,
		const char *reason, const char *fmt, ...) _printf_(5, 6);
/* Occurrences that could not be written: refused by kube_record() (bad arguments, cache
 * full) or failed at the apiserver. Events are best-effort: failures are only logged at
 * debug level, and counted here. */
uint64_t kube_recorder_failures(const struct kube_recorder *r);
/* Calls done from the loop once no write is in flight (drains, CLIs); -EBUSY while an
 * earlier flush is pending. done may free the recorder. */
int kube_recorder_flush(struct kube_recorder *r, void (*done)(struct kube_recorder *r, void *u),
			void *userdata);
/* Cap on the dedup cache of recent distinct events (0: 4096). At the cap the least recently
 * used entry is forgotten; if every entry has a write in flight, kube_record() refuses with
 * -ENOBUFS. */
void kube_recorder_set_cache_max(struct kube_recorder *r, size_t max);
void kube_recorder_free(struct kube_recorder *r);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct kube_recorder *, kube_recorder_free);

/* ---- timestamps (kube_time.c) ---- */

/* metav1.Time "2006-01-02T15:04:05Z" (micro false) or metav1.MicroTime
 * "2006-01-02T15:04:05.000000Z" (Lease times, eventTime). usec: CLOCK_REALTIME µs. */
#define KUBE_TIME_MAX 32
char *kube_time_format(uint64_t usec, bool micro, char buf[static KUBE_TIME_MAX]);
/* Any RFC 3339 date-time (fraction of any length, "Z" or ±hh:mm): -EINVAL when it is not
 * one, -ERANGE before 1970. */
int kube_time_parse(const char *s, uint64_t *ret_usec);
uint64_t kube_time_now(void); /* CLOCK_REALTIME µs */
