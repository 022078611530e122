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
 * in-cluster (KUBERNETES_SERVICE_HOST/PORT, /var/run/secrets/kubernetes.io/serviceaccount;
 * the root of that directory can be overridden with KUBE_SA_DIR for tests). context NULL:
 * current-context. On error *ret_error names the file and the field, e.g.
 * "/root/.kube/config: users[0].user.client-key-data: not valid base64". */
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
void kube_client_free(struct kube_client *c); /* cancels every call without callbacks */
DEFINE_TRIVIAL_CLEANUP_FUNC(struct kube_client *, kube_client_free);
const char *kube_client_namespace(const struct kube_client *c);
/* Monotonic time of the last response from the apiserver (any status), 0 if none: for
 * readiness checks ("apiserver answered recently"). */
uint64_t kube_client_last_contact(const struct kube_client *c);

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
 * *ret_obj is a new reference on success. */
int kube_request_sync(const struct kube_config *cfg, const char *method, const char *path,
		      json_t *body, json_t **ret_obj, struct kube_status *ret_status);
void kube_status_clear(struct kube_status *s);

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
int kube_watch_new(struct kube_client *c, const char *path, const struct kube_watch_options *o,
		   const struct kube_watch_handlers *h, void *userdata, struct kube_watch **ret);
int kube_watch_restart(struct kube_watch *w, const char *resource_version);
const char *kube_watch_resource_version(const struct kube_watch *w);
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
/* Built-in indexes: "namespace", "nodeName" (spec.nodeName), "owner" (ownerReferences uid),
 * "label:<key>" (value of that label). Custom ones by function. Add before start. */
int kube_informer_add_index(struct kube_informer *inf, const char *name, kube_index_fn fn,
			    void *userdata);
int kube_informer_start(struct kube_informer *inf);
bool kube_informer_synced(const struct kube_informer *inf);
/* Borrowed; valid until the next loop iteration. key is "ns/name" or "name". */
const json_t *kube_informer_get(const struct kube_informer *inf, const char *key);
/* A new json array of the (shared, read-only) objects under that index value. */
json_t *kube_informer_by_index(const struct kube_informer *inf, const char *index,
			       const char *value);
size_t kube_informer_size(const struct kube_informer *inf);
void kube_informer_free(struct kube_informer *inf);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct kube_informer *, kube_informer_free);

/* ---- leader election (kube_leader.c) ---- */

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
/* Gives the lease up (clears holderIdentity) and calls back when done: for drains. */
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
 * reason, message) within 10 min patch count/lastTimestamp instead of creating. */
int kube_record(struct kube_recorder *r, const json_t *involved, const char *type,
		const char *reason, const char *fmt, ...) _printf_(5, 6);
void kube_recorder_free(struct kube_recorder *r);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct kube_recorder *, kube_recorder_free);
