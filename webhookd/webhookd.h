/* webhookd — the cocoon admission webhook.
 *
 * Table of contents:
 *   webhookd.c   main(): configuration → cluster → servers → loop (READY=1 once the
 *                caches are synced)
 *   config.c     the environment table (--help prints it)
 *   server.c     the HTTPS admission listener (socket activation or LISTEN_ADDR), TLS key
 *                pair rotation, /healthz and /readyz, the plain-HTTP /metrics listener,
 *                and the bounded drain on SIGTERM
 *   cluster.c    the Kubernetes client, the pod and node informers, readiness (caches
 *                synced, apiserver heard from recently)
 *   handlers.c   the admission routes: body → AdmissionReview → decision (fetching what it
 *                needs from the apiserver) → response, one metric sample per request
 *   reserve.c    /mutate's ConfigMap read-modify-write: resourceVersion preconditions,
 *                create on 404, bounded conflict retries, one writer per pool per process
 *   reaper.c     the periodic release of reservations whose pod is gone
 *   admission.c, fastjson.c, validate.c, workload.c, affinity.c: the pure decisions (below) */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "cocoon/conf.h"
#include "cocoon/loop.h"

#define WEBHOOKD_SUMMARY                                                                           \
	"webhookd: the cocoon admission webhook (HTTPS): /mutate (sticky VM names and nodes),\n"   \
	"/validate (scale-down guard), /validate-cocoonset, /validate-cocoonhibernation,\n"        \
	"/healthz and /readyz; /metrics on METRICS_ADDR."

/* How long SIGTERM waits for requests in flight (the original's 15 s shutdown timeout). */
#define WEBHOOKD_DRAIN_USEC (15 * 1000000ULL)

struct webhookd_config {
	int log_level;
	const char *tls_cert;
	const char *tls_key;
	const char *listen_addr;
	const char *metrics_addr;
	const char *kubeconfig; /* read by kube_config_load() itself; listed for --help */
	uint64_t reaper_interval_usec;
	uint64_t reaper_grace_usec;
};

/* config.c */
extern struct webhookd_config webhookd_config;
extern const struct conf_var webhookd_conf_vars[];
extern const size_t webhookd_conf_vars_len;

/* server.c */
struct webhookd;
int webhookd_new(struct loop *loop, const struct webhookd_config *cfg, struct webhookd **ret);
void webhookd_free(struct webhookd *w);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct webhookd *, webhookd_free);
/* "admission on …, metrics on …" for the READY status line. */
const char *webhookd_describe(const struct webhookd *w);

/* cluster.c */
struct kube_client;
struct cluster;
/* Loads the kubeconfig (KUBECONFIG, ~/.kube/config, in-cluster) and starts the pod and node
 * informers. on_synced (optional) runs once, when both caches first hold a full list.
 * Errors are logged. */
int cluster_new(sd_event *e, void (*on_synced)(void *userdata), void *userdata,
		struct cluster **ret);
void cluster_free(struct cluster *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct cluster *, cluster_free);
struct kube_client *cluster_client(const struct cluster *c);
/* true when both caches are synced and the apiserver answered within the last
 * CLUSTER_CONTACT_MAX_USEC; otherwise *ret_reason says which condition fails. */
bool cluster_ready(const struct cluster *c, const char **ret_reason);
bool cluster_pods_synced(const struct cluster *c);
/* Both caches hold a full list (what /mutate's decisions need). */
bool cluster_caches_synced(const struct cluster *c);
/* New arrays of the cached objects (shared, read-only); NULL on allocation failure. */
json_t *cluster_pods(const struct cluster *c);
json_t *cluster_nodes(const struct cluster *c);
/* Readiness tolerates this much silence; an idle webhook pings /version before it. */
#define CLUSTER_CONTACT_MAX_USEC (15 * 1000000ULL)

/* ---- Admission decisions (admission.c, fastjson.c, validate.c, workload.c, affinity.c) ----
 *
 *   admission.c  the AdmissionReview v1 decoder (strict; 400 texts of operator-webhook.md
 *                §3.2), the response envelopes (allow, deny, JSONPatch) and the verdict
 *                every handler returns
 *   fastjson.c   the decoder's JSON reader: text → json_t without json_loadb(), or a
 *                cursor that builds only what the envelope decoder keeps
 *   validate.c   /validate-cocoonset and /validate-cocoonhibernation (§3.5–3.6)
 *   workload.c   /validate: the scale-down guard for Deployments and StatefulSets (§3.4)
 *   affinity.c   /mutate's sticky reservations (§3.9 G2 design with CONTRACT.md §4 fixes):
 *                identity, slot and node choice, the cocoon-affinity-<pool> ConfigMap,
 *                the pod's JSONPatch and the reaper's decision
 *
 * All of it is pure: functions over decoded JSON that never call the apiserver. What a
 * decision needs from the cluster (the parent workload of a /scale request, the
 * CocoonHibernations of a namespace, pods, nodes, the ConfigMap) is a parameter; a call
 * that needs it and did not get it returns ADMISSION_NEED_FETCH so the handler can fetch
 * it asynchronously and call again. */
#include <stdbool.h>
#include <time.h>

#include "cocoon/buf.h"

/* The largest body an admission path reads (§3.2: 10 MiB). */
#define ADMISSION_BODY_MAX (10u << 20)
/* Returned (> 0) by a decision that needs cluster input it was not given. */
#define ADMISSION_NEED_FETCH 1

enum admission_operation {
	ADMISSION_CREATE,
	ADMISSION_UPDATE,
	ADMISSION_DELETE,
	ADMISSION_CONNECT,
};

/* One decoded AdmissionReview. The strings and objects live as long as the request (in
 * review or strings, whichever way it was decoded); absent strings are "" (never NULL),
 * absent objects NULL. */
struct admission_request {
	json_t *review;
	char *strings;
	const char *uid;
	const char *kind;         /* request.kind.kind: "Pod", "Deployment", "Scale", … */
	const char *resource;     /* request.resource.resource: "pods", "deployments", … */
	const char *sub_resource; /* "scale", "status", … or "" */
	enum admission_operation operation;
	const char *ns;   /* request.namespace; "" for cluster-scoped objects */
	const char *name; /* "" on CREATE with generateName */
	const char *username;
	const json_t *object;     /* NULL when absent or null (DELETE) */
	const json_t *old_object; /* NULL when absent or null (CREATE) */
	bool dry_run;
};

/* fastjson.c — reads text as json_loadb(text, len, JSON_REJECT_DUPLICATES) would, when it can
 * do so exactly: -EINVAL for anything else (bad JSON, duplicate keys, \u0000, numbers that
 * need jansson's range checks, deep nesting, no memory), which the caller hands to jansson
 * for its verdict and message. Never a different value from jansson's. */
int fastjson_load(const void *text, size_t len, json_t **ret);

/* The same reader as a cursor, for a decoder that walks a document and builds only what it
 * keeps. Every call returns -EINVAL (or NULL) for what only jansson may judge; the decoder
 * then starts over with jansson. Strings are unescaped: they point into the text, or into
 * the reader's scratch buffer (escaped ones) until the next string is read. */
struct fastjson_reader {
	const unsigned char *p, *end;
	struct buf scratch;
};
void fastjson_reader_init(struct fastjson_reader *r, const void *text, size_t len);
void fastjson_reader_done(struct fastjson_reader *r);
/* The type of the next value (any number is JSON_INTEGER), or -EINVAL. */
int fastjson_peek(struct fastjson_reader *r);
/* Walks an object: *first starts true (the '{' is read then). 1 with the next key (its ':'
 * read; the value is next), 0 after the closing '}'. Duplicates are the caller's to find. */
int fastjson_next_member(struct fastjson_reader *r, bool *first, const char **ret_key,
			 size_t *ret_len);
/* Walks an array the same way: 1 when an element is next, 0 after the closing ']'. */
int fastjson_next_element(struct fastjson_reader *r, bool *first);
int fastjson_read_string(struct fastjson_reader *r, const char **ret, size_t *ret_len);
/* The next value as jansson would build it (NULL: -EINVAL). */
json_t *fastjson_read_value(struct fastjson_reader *r);
/* The next value checked as fastjson_load() would, built for nothing. */
int fastjson_skip_value(struct fastjson_reader *r);
/* Only whitespace is left. */
int fastjson_finish(struct fastjson_reader *r);
/* The keys of one object, compared as written, to find duplicates: -EINVAL for a duplicate,
 * an escaped key (it may equal one spelled differently) or more than 32 keys. */
struct fastjson_keys {
	const char *key[32];
	size_t len[32];
	size_t n;
};
int fastjson_keys_add(struct fastjson_keys *keys, const struct fastjson_reader *r, const char *key,
		      size_t len);

/* Decodes a request body. Every field read is type-checked; unknown fields are ignored.
 * On bad input returns -EBADMSG and a message that is the HTTP 400 body, starting with
 * the original's text: "decode admission review: <where and what>" or "admission review
 * missing request: <detail>". -ENOMEM. */
int admission_request_parse(const void *body, size_t len, struct admission_request **ret,
			    char **ret_error);
/* The same rules over a review already decoded as JSON (what admission_request_parse()
 * falls back to when its fast path cannot take a body). Takes its own reference. */
int admission_request_decode(json_t *review, struct admission_request **ret, char **ret_error);
void admission_request_free(struct admission_request *req);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct admission_request *, admission_request_free);
const char *admission_operation_to_string(enum admission_operation op);

/* The metric labels of §3.7: result and reason of cocoon_webhook_admission_total. */
enum admission_result {
	ADMISSION_RESULT_ALLOW,
	ADMISSION_RESULT_DENY,
	ADMISSION_RESULT_ERROR,
	ADMISSION_RESULT_SKIPPED,
};
const char *admission_result_to_string(enum admission_result r);

/* What a handler decided. reason is a static metric label ("" for a real allow or deny);
 * message (owned) is the deny text, NULL when allowed. */
struct admission_verdict {
	bool allowed;
	enum admission_result result;
	const char *reason;
	char *message;
};
int admission_verdict_allow(struct admission_verdict *ret, enum admission_result result,
			    const char *reason);
/* allowed=false with a printf-formatted message. -ENOMEM. */
int admission_verdict_deny(struct admission_verdict *ret, enum admission_result result,
			   const char *reason, const char *fmt, ...) _printf_(4, 5);
void admission_verdict_done(struct admission_verdict *v);

/* Response envelopes, appended to out as JSON text (compact, members in this order):
 * {"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{"uid":<uid>,
 * "allowed":…}}. A deny carries status {message, reason "Forbidden"} and no code (the
 * apiserver raises it to 400). A patch must be a JSON array (RFC 6902); it is sent
 * base64-encoded with patchType "JSONPatch". Written directly rather than through json_t
 * and json_dumps(), which cost more than the rest of a small admission. -EINVAL for a uid or
 * message that is not UTF-8 or a patch that is not an array; -ENOMEM. On failure nothing is
 * appended. */
int admission_response_allow(const char *uid, struct buf *out);
int admission_response_deny(const char *uid, const char *message, struct buf *out);
int admission_response_patch(const char *uid, const json_t *patch, struct buf *out);
/* The response for a verdict: allow (with the patch when one is given) or deny. */
int admission_response_verdict(const char *uid, const struct admission_verdict *v,
			       const json_t *patch, struct buf *out);

/* Appends s quoted like Go's %q ("a\"b", "\x01", "\u00a0"), so messages keep the
 * original's wording byte for byte and stay printable. */
int admission_append_quoted(struct buf *b, const char *s);
/* The same into a new string; NULL on allocation failure. */
char *admission_quote(const char *s);
/* s[0..n) has the form of an RFC 1123 label, [a-z0-9]([-a-z0-9]*[a-z0-9])? (the length,
 * at most 63, is the caller's check, as apimachinery reports it separately). */
bool admission_is_dns1123_label_format(const char *s, size_t n);

/* validate.c — §3.5: CREATE and UPDATE; other operations are skipped/operation. Every
 * rule's message, in order, joined by "; " after "cocoon-webhook: invalid CocoonSet spec: ".
 * An UPDATE whose old spec is semantically equal to the new one is skipped/no_change. */
int validate_cocoonset(const struct admission_request *req, struct admission_verdict *ret);

/* The CocoonHibernations of the request's namespace, as the caller listed them: items is a
 * List object or an array of objects; error (non-NULL) says the LIST failed and why. */
struct validate_hibernation_list {
	const json_t *items;
	const char *error;
};
/* §3.6: CREATE only. Returns ADMISSION_NEED_FETCH, without touching *ret, when the
 * decision needs the namespace's CocoonHibernations and existing is NULL. */
int validate_cocoonhibernation(const struct admission_request *req,
			       const struct validate_hibernation_list *existing,
			       struct admission_verdict *ret);

/* workload.c — §3.4. For UPDATE of the scale subresource of deployments or statefulsets
 * the decision needs the parent object: GET <resource> <ns>/<name>. */
enum workload_parent_status {
	WORKLOAD_PARENT_FOUND,
	WORKLOAD_PARENT_NOT_FOUND,
	WORKLOAD_PARENT_ERROR, /* any API error other than NotFound: fail closed */
};
struct workload_parent {
	enum workload_parent_status status;
	const json_t *object; /* FOUND: the Deployment or StatefulSet */
	const char *error;    /* ERROR: what went wrong, quoted in the deny message */
};
/* Returns ADMISSION_NEED_FETCH, without touching *ret, when parent is needed and NULL. */
int workload_validate(const struct admission_request *req, const struct workload_parent *parent,
		      struct admission_verdict *ret);

/* affinity.c — sticky VM names and nodes for cocoon pods that no CocoonSet owns.
 *
 * Reservations live in ConfigMap cocoon-affinity-<pool> in cocoon-system, one data entry
 * per slot, the value a Reservation JSON. Keys are "<ns>.<workload>.<slot>" for replicas
 * of a Deployment or StatefulSet (and for unnamed pods of other owners, grouped by their
 * generateName) and "<ns>._pod.<pod>" for named bare pods: ConfigMap keys allow only
 * [-._a-zA-Z0-9] (the seed's "/" made every write fail), and no Kubernetes name starts
 * with "_", so a bare pod never collides with a workload. The format is the original's
 * G2 one, so its ConfigMaps still read. */
#define AFFINITY_NAMESPACE        "cocoon-system"
#define AFFINITY_CONFIGMAP_PREFIX "cocoon-affinity-"
#define AFFINITY_MANAGED_BY       "cocoon-webhook"
/* A reservation younger than this whose pod is not visible yet belongs to a pod still
 * being created, so its slot is not handed to another pod. */
#define AFFINITY_PENDING_SEC 60
/* ConfigMaps hold at most 1 MiB; data beyond this is refused rather than sent. */
#define AFFINITY_DATA_MAX            (1000u * 1000u)
#define AFFINITY_REAPER_INTERVAL_SEC (5 * 60)
#define AFFINITY_REAPER_GRACE_SEC    (30 * 60)

/* Who a pod is for the reservation table. */
struct affinity_pod {
	char *ns;
	char *pool;
	char *group;         /* slot space (workload name); NULL for a named bare pod */
	char *pod;           /* metadata.name (else the request name); NULL when unnamed */
	char *generate_name; /* NULL when not set */
	char *owner;         /* "<Kind>/<name>" of the controlling owner, NULL when none */
};

/* NULL when a pod CREATE needs a reservation, else why not (a metric reason):
 * "not_cocoon" (no virtual-kubelet.io/provider toleration), "cocoonset" (the operator
 * names its own pods), "daemonset" (placed per node by its controller), "node_name"
 * (already placed), "vm_name" (already named). */
const char *affinity_pod_skip_reason(const json_t *pod);
/* req_ns and req_name are the request's namespace and name (the object may lack both).
 * -EINVAL with a message when the pod has no namespace or neither a name nor a
 * generateName. */
int affinity_pod_identify(const json_t *pod, const char *req_ns, const char *req_name,
			  struct affinity_pod *ret, char **ret_error);
void affinity_pod_done(struct affinity_pod *p);

/* "cocoon-affinity-<pool>"; -EINVAL with a message when pool cannot name a ConfigMap or
 * be a label value. */
int affinity_configmap_name(const char *pool, char **ret, char **ret_error);
/* ConfigMap (NULL: it does not exist) → {key: Reservation object, or null when the value
 * is not a valid Reservation}. -EINVAL with a message when data is not a string map. */
int affinity_reservations_parse(const json_t *configmap, json_t **ret, char **ret_error);
/* Pods (a PodList or an array; Succeeded and Failed pods are gone) → the live index
 * {"pods":{"<ns>/<name>":"<vm name or empty>"},"vms":{"<vm>":"<ns>/<name>"},
 *  "nodes":{"<node>":<pod count>}}. */
int affinity_live_index(const json_t *pods, json_t **ret);

/* The informers' transforms: a pod or node cut, in place, to the members the decisions
 * here read (name, namespace, the VM name annotations, spec.nodeName and status.phase; the
 * pool label, spec.unschedulable and the conditions' type and status), so that caching
 * every pod of a large cluster stays within the webhook's memory limit. */
void affinity_pod_trim(json_t *pod);
void affinity_node_trim(json_t *node);

/* What a reservation decision looks at. */
struct affinity_view {
	const char *pool;
	const json_t *reservations; /* affinity_reservations_parse() */
	const json_t *live;         /* affinity_live_index() */
	const json_t *nodes;        /* NodeList or array of Nodes; NULL: none known */
	time_t now;
};
/* The least-used schedulable Ready node of the pool: fewest live pods plus reservations
 * pinned to it whose pod is not live, ties by name. -ENOENT when the pool has none. */
int affinity_pick_node(const struct affinity_view *v, const char **ret);
/* The reservation for a pod: slot (this pod's, else a slot of its workload whose pod is
 * gone, else the smallest free one), VM name and node (the slot's pinned node while it is
 * in the pool, else affinity_pick_node(), else ""). Returns the data key and the new
 * Reservation. -ENAMETOOLONG when the VM name is not a valid cocoon name, -EEXIST when a
 * bare pod's VM name is carried or reserved by another pod, each with a message. Nothing
 * is written: on a dry-run request the caller must not store the result. */
int affinity_reserve(const struct affinity_view *v, const struct affinity_pod *pod, char **ret_key,
		     json_t **ret_reservation, char **ret_error);
/* The ConfigMap's data with key set to the reservation (other values byte for byte).
 * -E2BIG with a message past AFFINITY_DATA_MAX. */
int affinity_data_put(const json_t *configmap, const char *key, const json_t *reservation,
		      json_t **ret_data, char **ret_error);
/* The ConfigMap's data without the keys (an array of strings). */
int affinity_data_release(const json_t *configmap, const json_t *keys, json_t **ret_data);
/* The object to create (configmap NULL) or update (metadata, resourceVersion included,
 * kept for the precondition) with data and the managed-by and pool labels. */
int affinity_configmap_build(const json_t *configmap, const char *pool, const json_t *data,
			     json_t **ret);
/* The JSONPatch for the pod: annotations map when missing, vm.cocoonstack.io/name, and
 * spec.nodeName when the reservation pins a node. */
int affinity_pod_patch(const json_t *pod, const json_t *reservation, json_t **ret);
/* The reaper's decision. gone_since maps keys to the time their pod was first seen gone
 * (the caller keeps it between sweeps). A reservation is released once its pod has been
 * gone for grace seconds, counted from the later of that time and its updatedAt. Returns
 * the keys to release and the gone_since map for the next sweep, which keeps the released
 * keys too (a release that is not written is retried by the next sweep, not after another
 * grace; keys no longer in the table drop out of the map there). */
int affinity_reap(const json_t *reservations, const json_t *live, const json_t *gone_since,
		  time_t now, time_t grace, json_t **ret_release, json_t **ret_gone_since);

/* ---- Wiring (reserve.c, reaper.c, handlers.c) ---------------------------------------------- */

/* reserve.c — a pod's reservation, stored. Reservations of one pool are written one at a time
 * per process (so this process never conflicts with itself); across processes the
 * ConfigMap's resourceVersion is the precondition and a conflict starts over from a fresh
 * read, at most RESERVE_ATTEMPTS times. */
#define RESERVE_ATTEMPTS 10
/* Pods waiting for their pool's writer, per process: past it a pod is refused. */
#define RESERVE_QUEUE_MAX 512
/* A reserve not finished this long after reserve_new() ends with -ETIMEDOUT, so that /mutate
 * answers inside the webhook's timeoutSeconds (5 s, deploy/webhook/configuration.yaml). */
#define RESERVE_DEADLINE_USEC (4 * USEC_PER_SEC)
struct reserver;
struct reserve;
/* error 0: reserve_result() has the reservation. Else message says what failed; a negative
 * -EINVAL, -ENAMETOOLONG or -EEXIST is about the pod itself (the caller denies it), anything
 * else about the cluster (-EAGAIN: the pod and node caches are not synced yet, so nothing
 * was read or written; -ETIMEDOUT: not done within RESERVE_DEADLINE_USEC). The reserve is
 * the caller's to free, also from this callback. */
typedef void (*reserve_done_fn)(struct reserve *r, int error, const char *message, void *userdata);
int reserver_new(struct cluster *c, struct reserver **ret);
/* Frees the reserves still pending too (their callbacks never run). */
void reserver_free(struct reserver *rs);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct reserver *, reserver_free);
/* Identifies the pod (affinity_pod_identify(); -EINVAL with a message) and queues its
 * reservation. On a dry run the decision is made but nothing is written. */
int reserve_new(struct reserver *rs, const json_t *pod, const char *req_ns, const char *req_name,
		bool dry_run, reserve_done_fn done, void *userdata, struct reserve **ret,
		char **ret_error);
void reserve_free(struct reserve *r);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct reserve *, reserve_free);
const char *reserve_pool(const struct reserve *r);
/* After success: the data key and the Reservation (borrowed). */
const json_t *reserve_result(const struct reserve *r, const char **ret_key);
/* How many writes the last completed reservation needed (1: no conflict). */
unsigned reserve_attempts(const struct reserve *r);

/* reaper.c — every interval (and once the pod cache is synced), release the reservations
 * whose pod has been gone for grace. Each release is an update conditional on the
 * ConfigMap's resourceVersion, so replicas sweeping together cannot undo a new reservation;
 * the loser of a race leaves the decision to its next sweep. */
struct reaper;
struct metric;
int reaper_new(struct cluster *c, uint64_t interval_usec, uint64_t grace_usec,
	       struct metric *releases, struct reaper **ret);
void reaper_free(struct reaper *r);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct reaper *, reaper_free);

/* handlers.c — the admission routes on s and their metrics in m. */
struct handlers;
struct http_server;
struct metrics;
int handlers_new(struct http_server *s, struct metrics *m, struct cluster *c,
		 struct handlers **ret);
/* Requests still waiting for the apiserver are dropped (their clients see the connection
 * close). Free before the cluster. */
void handlers_free(struct handlers *h);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct handlers *, handlers_free);
/* cocoon_webhook_affinity_releases_total{pool}, for the reaper. */
struct metric *handlers_releases_metric(const struct handlers *h);
