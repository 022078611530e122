/* operatord — the CocoonSet and hibernation reconcilers (operator-webhook.md §2).
 *
 * Table of contents:
 *   operatord.c  main(): configuration → controller → endpoints → READY → loop
 *   config.c     the environment/flag table (--help prints it)
 *   controller.c the Kubernetes side: informers (CocoonSets, CocoonHibernations, legacy
 *                Hibernations, managed pods), two work queues, event filters, leader
 *                election, the per-VM lock table, /healthz, /readyz, /metrics
 *   exec.c       runs a plan: kube writes and registry calls in order (sub-agent creates
 *                in parallel, at most 8), then reports the pass's outcome to the queue
 *   registry.c   the snapshot facts a plan asks for (HEAD/DELETE of <vm>:hibernate) on
 *                libepoch
 *   metrics.c    the cocoon_operator_* metrics
 *
 * The pure part — no I/O, unit tested table by table:
 *   spec.c       a CocoonSet (v1, or legacy cocoon.cis/v1alpha1) decoded and defaulted
 *   pods.c       owned pods classified (main, sub-agents by slot, toolboxes by name)
 *   podbuild.c   the pod template of §2.4
 *   drift.c      the drift rules of §2.5 and their exceptions
 *   rebuild.c    the rebuild-history annotation and the backoff schedule of §2.6
 *   status.c     buildStatus and conditions (§2.8) and the status merge patch
 *   plan.c       the action list a reconcile pass produces
 *   csplan.c     one CocoonSet pass (§2.3, §2.6, §2.7, §2.9, §2.12, §2.13) → plan
 *   hib.c        a CocoonHibernation (or legacy Hibernation) decoded
 *   hibplan.c    one hibernation pass (§2.14) → plan
 *
 * Why plans: a pass reads only the informer caches and a few registry facts, so deciding
 * is a pure function of (object, pods, hibernations, facts, now). The function returns
 * either the registry facts it still needs (the executor fetches them and calls it again)
 * or the ordered writes to make and how to requeue. Every state machine of §2 is tested
 * without a server, and the executor is the one place that talks to the apiserver. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "cocoon/conf.h"
#include "cocoon/loop.h"
#include "cocoon/macro.h"
#include "cocoon/quantity.h"

#define OPERATORD_SUMMARY                                                                          \
	"operatord: the CocoonSet and CocoonHibernation reconcilers (and the legacy\n"             \
	"cocoon.cis/v1alpha1 CocoonSet and Hibernation), leader-elected; /metrics on\n"            \
	"METRICS_ADDR, /healthz and /readyz on PROBE_ADDR."

#define OPERATORD_FINALIZER     "cocoonset.cocoonstack.io/finalizer"
#define OPERATORD_HIB_FINALIZER "cocoonhibernation.cocoonset.cocoonstack.io/finalizer"
#define OPERATORD_LEASE_NAME    "cocoon-operator.cocoonset.cocoonstack.io"
#define OPERATORD_COMPONENT     "cocoon-operator"
#define OPERATORD_PLACEHOLDER_IMAGE "ghcr.io/cocoonstack/placeholder:latest"
#define OPERATORD_LEGACY_NODE   "cocoon-pool" /* legacy spec.nodeName default */

#define OPERATORD_POLL_USEC          (5 * USEC_PER_SEC) /* wait-for-main, suspend, hibernation */
#define OPERATORD_HIBERNATE_TIMEOUT  (3 * 60 * USEC_PER_SEC)
#define OPERATORD_WAKE_TIMEOUT       (5 * 60 * USEC_PER_SEC)
#define OPERATORD_RESYNC_USEC        (60 * USEC_PER_SEC) /* hibernation CRs re-checked */
#define OPERATORD_MAX_PARALLEL       8 /* sub-agent creates in flight per pass */
#define OPERATORD_REBUILD_BUDGET     4 /* rebuilds before dead-letter */

/* ---- config.c ---- */

struct operatord_config {
	int log_level;
	const char *metrics_addr;
	const char *probe_addr;
	bool leader_elect;
	int64_t cocoonset_concurrency;
	int64_t hibernation_concurrency;
	const char *oci_registry; /* host[:port][/prefix], https */
	const char *epoch_url;    /* http(s)://host[:port]: wins over OCI_REGISTRY */
	const char *epoch_token;
	const char *epoch_ca_cert;
	const char *pod_namespace;
	uint64_t lease_duration_usec;
	uint64_t renew_deadline_usec;
	uint64_t retry_period_usec;
	const char *kubeconfig; /* read by kube_config_load() itself; listed for --help */
};
extern struct operatord_config operatord_config;
extern const struct conf_var operatord_conf_vars[];
extern const size_t operatord_conf_vars_len;
/* Checks what the table cannot: a registry is configured. -EINVAL with a message. */
int operatord_config_check(const struct operatord_config *c, char **ret_error);

/* ---- spec.c: a CocoonSet, decoded and defaulted ---- */

enum cs_api {
	CS_API_V1,     /* cocoonset.cocoonstack.io/v1 */
	CS_API_LEGACY, /* cocoon.cis/v1alpha1 */
};

/* VMOptions (inlined into agent and toolbox). Strings borrow from the object (or from the
 * cs's own storage); defaults are applied: os linux, backend cloud-hypervisor. */
struct cs_vm {
	const char *os;
	const char *backend;
	const char *conn_type; /* NULL: unset */
	const char *network;   /* NULL: unset */
	bool force_pull;
	bool no_direct_io;
	int probe_port;                     /* 0: unset */
	char storage[QUANTITY_STRING_MAX];  /* canonical form; "" when unset or zero */
	const json_t *resources;            /* ResourceRequirements, NULL when unset */
};

struct cs_toolbox {
	const char *name;
	const char *image;     /* NULL: unset */
	const char *mode;      /* defaulted: run */
	const char *static_ip; /* NULL: unset */
	const char *static_vmid;
	int vnc_port;
	struct cs_vm vm;
};

struct cs {
	enum cs_api api;
	json_t *obj; /* reference held */
	const char *ns, *name, *uid, *resource_version;
	int64_t generation;
	bool deleting;
	bool has_finalizer;

	bool suspend;
	const char *snapshot_policy; /* defaulted: always */
	const char *hibernate_policy; /* defaulted: retain */
	const char *node_pool;       /* defaulted: default */
	const char *snapshot_class;  /* NULL: unset */
	const char *node_name;       /* NULL: unset (legacy: cocoon-pool unless set) */

	struct {
		int replicas;
		const char *image;
		const char *mode; /* defaulted: clone */
		const char *service_account; /* NULL: unset */
		const json_t *env_from;      /* NULL: unset */
		struct cs_vm vm;
	} agent;
	struct cs_toolbox *toolboxes;
	size_t n_toolboxes;

	const json_t *status;      /* NULL when the object has none */
	const json_t *annotations; /* metadata.annotations, NULL when none */
	json_t *owned;             /* what the cs synthesised (legacy resources), freed with it */
};

/* Decodes and defaults. A value the CRD schema would have refused (a string where an
 * integer belongs, a negative replica count) is -EINVAL with a message naming the field,
 * e.g. `spec.agent.replicas: expected an integer >= 0`. *ret only on success. */
int cs_parse(const json_t *obj, struct cs **ret, char **ret_error);
struct cs *cs_free(struct cs *cs);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct cs *, cs_free);
/* "vk-<ns>-<cs>-<slot>" */
char *cs_agent_vm_name(const struct cs *cs, int slot);
/* "<cs>-<slot>", "<cs>-<toolbox>" */
char *cs_pod_name(const struct cs *cs, const char *suffix);
const struct cs_toolbox *cs_toolbox_find(const struct cs *cs, const char *name);
/* The apiVersion owner references and events name. */
const char *cs_api_version(const struct cs *cs);
/* ExtractAgentSlot: the slot of "vk-<ns>-<cs>-<n>", -1 for anything else. */
int cs_vm_name_slot(const struct cs *cs, const char *vm_name);

/* ---- pods.c: owned pods, classified ---- */

enum cs_role { CS_ROLE_NONE, CS_ROLE_MAIN, CS_ROLE_SUB, CS_ROLE_TOOLBOX };

/* A pod's facts, borrowed from its JSON (valid while the array passed to cs_pods_classify
 * is alive). */
struct cs_pod {
	const json_t *obj;
	const char *name, *uid, *node_name, *phase; /* node_name NULL, phase "" when unset */
	enum cs_role role;
	int slot;            /* agents: 0 main, >0 sub-agent; toolboxes: -1 */
	const char *toolbox; /* toolboxes: the slot label */
	const char *vm_name; /* vm.cocoonstack.io/name, NULL when absent */
	const char *vm_id;
	const char *lifecycle_state;   /* NULL when absent */
	const char *lifecycle_message; /* NULL when absent */
	int64_t generation_stamp;              /* cocoonset.cocoonstack.io/generation, 0 */
	int64_t lifecycle_observed_generation; /* missing or unparsable: 0 */
	bool ready;       /* PodReady condition True */
	bool terminal;    /* lifecycle-state failed or phase Failed */
	bool hibernate;   /* vm.cocoonstack.io/hibernate=true */
	bool managed;     /* cocoonset.cocoonstack.io/managed=true */
	bool dead_letter; /* cocoonset.cocoonstack.io/dead-letter=true */
	bool restore_from_hibernate;
	bool vm_live;     /* VM id set and some container Running */
	bool unschedulable; /* PodScheduled False, reason Unschedulable */
	const char *unschedulable_message;
};

struct cs_pods {
	struct cs_pod *all; /* every owned, non-deleting pod, sorted by name */
	size_t n_all;
	struct cs_pod *main;   /* NULL: none */
	struct cs_pod **sub;   /* sorted by slot; slots >= 1 only */
	size_t n_sub;
	struct cs_pod **toolboxes; /* sorted by name */
	size_t n_toolboxes;
	size_t n_deleting; /* owned pods skipped because they are terminating */
};

/* Keeps the pods whose controller ownerReference has the cs's UID; skips terminating
 * ones (counted); classifies by role label. pods: a JSON array (borrowed). */
int cs_pods_classify(const struct cs *cs, const json_t *pods, struct cs_pods *ret);
void cs_pods_done(struct cs_pods *p);
struct cs_pod *cs_pods_sub(const struct cs_pods *p, int slot);
struct cs_pod *cs_pods_toolbox(const struct cs_pods *p, const char *name);
struct cs_pod *cs_pods_by_name(const struct cs_pods *p, const char *name);
/* Drops what no pass reads (volumes, tolerations, timestamps, images, …) from a pod about
 * to be cached: the managed-pod cache is most of operatord's memory. Classification, drift,
 * status and the event filters give the same answers on the trimmed pod. */
void cs_pod_trim(json_t *pod);
/* The PodReady condition is True (what cs_pod.ready says, without decoding the rest). */
bool cs_pod_ready(const json_t *pod);
/* Decodes one pod (no ownership or role checks): for hibernation passes. */
int cs_pod_from_json(const json_t *pod, struct cs_pod *ret);

/* ---- podbuild.c: the pod template (§2.4) ---- */

struct pod_build_options {
	int slot;                       /* agents: 0.., toolboxes: ignored */
	const struct cs_toolbox *toolbox; /* NULL: an agent */
	const char *fork_from;          /* sub-agents: main's VM name */
	const char *node_name;          /* sub-agents: main's node (hard bind) */
	bool restore_from_hibernate;
	const char *preferred_node;     /* weight-100 preferred hostname affinity (wake hint) */
};
int pod_build(const struct cs *cs, const struct pod_build_options *o, json_t **ret);
/* The VMSpec annotations the pod for (slot | toolbox) must carry, as a JSON object of
 * strings: shared by pod_build and drift detection. vm_name and fork_from as given. */
int pod_vmspec_annotations(const struct cs *cs, const struct cs_toolbox *tb, const char *vm_name,
			   const char *fork_from, json_t **ret);

/* ---- drift.c (§2.5) ---- */

/* true when the pod must be deleted and recreated; *ret_reason (optional) says which field
 * differs and how, for the log line and the event: `annotation cocoonset.cocoonstack.io/image:
 * want "b", have "a"`. tb NULL: an agent (its slot from the pod). */
int pod_drifted(const struct cs *cs, const struct cs_pod *pod, const struct cs_toolbox *tb,
		bool *ret, char **ret_reason);
/* The pool a pod is scheduled to: nodeSelector, then label, then annotation, else default. */
const char *pod_pool(const json_t *pod);

/* ---- rebuild.c (§2.6) ---- */

struct rebuild_entry {
	int slot;
	unsigned count;
	uint64_t last_deleted_usec; /* CLOCK_REALTIME */
};
struct rebuild_history {
	struct rebuild_entry *v;
	size_t n;
};
/* From the CocoonSet annotation; corrupt JSON or null reads as empty (never an error). */
int rebuild_history_parse(const char *annotation, struct rebuild_history *ret);
void rebuild_history_done(struct rebuild_history *h);
const struct rebuild_entry *rebuild_history_get(const struct rebuild_history *h, int slot);
int rebuild_history_set(struct rebuild_history *h, int slot, unsigned count, uint64_t when);
void rebuild_history_drop(struct rebuild_history *h, int slot);
/* The annotation value, entries with slot > replicas dropped. */
int rebuild_history_format(const struct rebuild_history *h, int replicas, char **ret);
/* 0→0 s, 1→1 s, 2→5 s, ≥3→30 s */
uint64_t rebuild_backoff_usec(unsigned prior_count);

/* ---- status.c (§2.8) ---- */

/* The status buildStatus computes (v1 shape, or the legacy schema's fields). phase NULL:
 * derived. now: for new conditions' lastTransitionTime. */
int cs_status_build(const struct cs *cs, const struct cs_pods *pods, const char *phase,
		    uint64_t now_usec, json_t **ret);
/* The JSON merge patch (RFC 7386) that turns cs->status into new_status, wrapped as
 * {"status": …}; *ret NULL when they are equal (no write). */
int cs_status_patch(const struct cs *cs, const json_t *new_status, json_t **ret);

/* ---- plan.c: what a pass decides ---- */

enum action_kind {
	ACT_POD_CREATE,   /* body: the pod */
	ACT_POD_DELETE,   /* name */
	ACT_POD_PATCH,    /* name, body: merge patch */
	ACT_OBJ_PATCH,    /* the reconciled object, body: merge patch (metadata) */
	ACT_OBJ_UPDATE,   /* the reconciled object, body: the whole object (finalizers; RV kept) */
	ACT_STATUS_PATCH, /* the reconciled object's /status, body: merge patch */
	ACT_EVENT,        /* event_type, reason, message: on the reconciled object */
	ACT_TAG_DELETE,   /* name: VM name, tag */
	ACT_COUNT,        /* metric, labels (body: object of label values), value */
	ACT_OBSERVE,      /* histogram metric, labels, value (seconds) */
};

/* How an action's failure is treated (bits). Without any, a failure ends the pass with a
 * rate-limited retry. */
enum {
	ACT_IGNORE_NOT_FOUND = 1 << 0,
	ACT_IGNORE_EXISTS = 1 << 1,      /* AlreadyExists is success */
	ACT_EXISTS_REQUEUE = 1 << 2,     /* AlreadyExists: requeue after the poll, stop */
	ACT_BEST_EFFORT = 1 << 3,        /* any failure: log and go on */
	ACT_PARALLEL = 1 << 4,           /* may run beside adjacent ACT_PARALLEL actions */
};

struct action {
	enum action_kind kind;
	unsigned flags;
	char *name;
	char *tag;
	json_t *body;
	const char *event_type; /* "Normal" / "Warning" (static) */
	const char *reason;     /* static */
	char *message;
	const char *metric; /* static */
	double value;
};

enum plan_outcome {
	PLAN_DONE,          /* no requeue */
	PLAN_REQUEUE,       /* rate-limited requeue at once */
	PLAN_REQUEUE_AFTER, /* after requeue_after_usec */
	PLAN_ERROR,         /* rate-limited retry; error says why */
	PLAN_NEED_FACTS,    /* fetch `probes`, then plan again */
};

struct plan {
	struct action *actions;
	size_t n_actions;
	enum plan_outcome outcome;
	uint64_t requeue_after_usec;
	char *error;   /* PLAN_ERROR: the message to log */
	char **probes; /* PLAN_NEED_FACTS: VM names whose :hibernate tag to HEAD */
	size_t n_probes;
	/* what the pass is waiting for, logged by the executor ("suspend waits for pod x:
	 * lifecycle-state ready, want hibernated"); NULL: nothing */
	char *note;
	/* hibernation passes: once the actions ran, remember that the phase-exit metrics and
	 * event for this Ready lastTransitionTime fired (0: nothing to remember). */
	uint64_t mark_exit_ltt_usec;
};

void plan_done(struct plan *p);
/* Appenders: each takes ownership of body (even on failure) and copies strings. */
int plan_pod_create(struct plan *p, json_t *take_pod, unsigned flags);
int plan_pod_delete(struct plan *p, const char *name, unsigned flags);
int plan_pod_patch(struct plan *p, const char *name, json_t *take_patch, unsigned flags);
/* {"metadata":{"annotations":{key:value}}}, value NULL removes the key. */
int plan_pod_annotate(struct plan *p, const char *name, const char *key, const char *value,
		      unsigned flags);
int plan_obj_patch(struct plan *p, json_t *take_patch);
int plan_obj_annotate(struct plan *p, const char *key, const char *value);
int plan_obj_update(struct plan *p, json_t *take_obj);
int plan_status_patch(struct plan *p, json_t *take_patch);
int plan_event(struct plan *p, const char *type, const char *reason, const char *fmt, ...)
	_printf_(4, 5);
int plan_tag_delete(struct plan *p, const char *vm_name, const char *tag, unsigned flags);
/* labels: NULL-terminated name, value, name, value, … */
int plan_count(struct plan *p, const char *metric, double value, ...) _sentinel_;
int plan_observe(struct plan *p, const char *metric, double seconds, ...) _sentinel_;
/* Outcomes (these return 0, or -ENOMEM). plan_requeue_after(p, 0) is PLAN_REQUEUE (a
 * rate-limited requeue at once). */
int plan_requeue_after(struct plan *p, uint64_t usec);
int plan_error(struct plan *p, const char *fmt, ...) _printf_(2, 3);
/* Records what the pass waits for (the first note wins). */
int plan_note(struct plan *p, const char *fmt, ...) _printf_(2, 3);
/* Records a probe this pass needs and sets PLAN_NEED_FACTS (deduplicated). */
int plan_need_probe(struct plan *p, const char *vm_name);

/* Registry facts about <vm>:hibernate, gathered by the executor between plan calls. */
enum fact { FACT_UNKNOWN, FACT_PRESENT, FACT_ABSENT, FACT_ERROR };
struct facts {
	char **names;
	enum fact *values;
	char **errors; /* FACT_ERROR: the message */
	size_t n;
};
enum fact facts_get(const struct facts *f, const char *vm_name, const char **ret_error);
int facts_set(struct facts *f, const char *vm_name, enum fact v, const char *error);
void facts_done(struct facts *f);

/* ---- csplan.c: one CocoonSet pass ---- */

struct cs_inputs {
	const struct cs *cs;
	const json_t *pods;         /* the namespace's pods labelled with the cs name (array) */
	const json_t *hibernations; /* the namespace's CocoonHibernations (array; may be NULL) */
	const struct facts *facts;
	uint64_t now_usec;          /* CLOCK_REALTIME */
};
int cs_plan(const struct cs_inputs *in, struct plan *ret);

/* ---- hib.c: a CocoonHibernation or legacy Hibernation ---- */

enum hib_desire { HIB_DESIRE_UNKNOWN, HIB_DESIRE_HIBERNATE, HIB_DESIRE_WAKE };

struct hib {
	enum cs_api api;
	json_t *obj; /* reference held */
	const char *ns, *name, *uid;
	int64_t generation;
	bool deleting;
	bool has_finalizer;
	const char *pod_name;   /* spec.podRef.name | spec.podName; "" when unset */
	enum hib_desire desire;
	const char *desire_raw; /* as written, for the unknown-desire message */
	/* status */
	const char *phase;   /* "" when unset */
	const char *vm_name; /* NULL when unset */
	const char *message;
	int64_t observed_generation;
	uint64_t ready_ltt_usec; /* v1: Ready's lastTransitionTime; legacy: lastTransitionTime */
};
int hib_parse(const json_t *obj, struct hib **ret, char **ret_error);
struct hib *hib_free(struct hib *h);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct hib *, hib_free);

/* ---- hibplan.c: one hibernation pass ---- */

struct hib_inputs {
	const struct hib *hib;
	const json_t *pod;     /* fresh GET; NULL: not found */
	const json_t *others;  /* the namespace's other hibernation CRs, both kinds (array) */
	const struct facts *facts;
	uint64_t now_usec;
	uint64_t exit_seen_ltt_usec; /* the Ready LTT whose exit metrics already fired (0) */
	const char *registry;        /* for legacy status.snapshotRef: "<registry>/<vm>:hibernate" */
};
int hib_plan(const struct hib_inputs *in, struct plan *ret);

/* ---- registry.c ---- */

struct registry;
int registry_new(sd_event *e, const struct operatord_config *cfg, struct registry **ret,
		 char **ret_error);
struct registry *registry_free(struct registry *r);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct registry *, registry_free);
/* "host[:port]/prefix" as shown in snapshotRef */
const char *registry_display(const struct registry *r);
typedef void (*registry_done_fn)(int error, bool present, const char *message, void *userdata);
/* HEAD <vm>:<tag>: present true/false, or error < 0 with a message. */
int registry_has(struct registry *r, const char *vm_name, const char *tag, registry_done_fn done,
		 void *userdata);
/* DELETE <vm>:<tag>; 404 is success. */
int registry_delete(struct registry *r, const char *vm_name, const char *tag,
		    registry_done_fn done, void *userdata);

/* ---- metrics.c ---- */

struct metrics;
struct operator_metrics;
int operator_metrics_new(struct metrics *reg, struct operator_metrics **ret);
void operator_metrics_free(struct operator_metrics *om);
/* An ACT_COUNT / ACT_OBSERVE action: its metric (without the cocoon_operator_ prefix) and
 * label values by name. -ENOENT for an unknown metric, -EINVAL for missing labels. */
int operator_metrics_apply(struct operator_metrics *om, const struct action *a);
void operator_metrics_reconciled(struct operator_metrics *om, const char *controller,
				 const char *result, double seconds, unsigned writes);

/* ---- exec.c ---- */

struct kube_client;
struct kube_recorder;
struct kube_resource;

struct exec_ctx {
	struct kube_client *kube;
	struct registry *registry;
	struct kube_recorder *recorder;
	struct operator_metrics *metrics;
};

/* The reconciled object: ACT_OBJ_* and ACT_STATUS_PATCH go to it, events name it. */
struct exec_target {
	const struct kube_resource *resource;
	const char *ns, *name;
	json_t *involved; /* with apiVersion and kind set */
};

struct exec_result {
	enum plan_outcome outcome; /* never PLAN_NEED_FACTS */
	uint64_t requeue_after_usec;
	const char *message; /* PLAN_ERROR: what failed (valid during the callback) */
	unsigned writes;     /* API and registry writes sent */
	uint64_t mark_exit_ltt_usec;
};
typedef void (*exec_done_fn)(const struct exec_result *res, void *userdata);

struct exec;
/* Takes the plan (even on failure). done is called exactly once — possibly before exec_run
 * returns, when the plan has no asynchronous action — unless exec_run fails. */
int exec_run(const struct exec_ctx *ctx, const struct exec_target *t, struct plan *take_plan,
	     exec_done_fn done, void *userdata);
void exec_free(struct exec *x);
const char *exec_action_verb(enum action_kind k);
/* HEADs <name>:hibernate for each name (n > 0) into facts; done once all answered (error
 * only for a local failure; a registry error is a FACT_ERROR). */
int exec_probe(const struct exec_ctx *ctx, char *const *names, size_t n, struct facts *facts,
	       void (*done)(int error, void *userdata), void *userdata);

/* ---- controller.c ---- */

struct controller;
int controller_new(struct loop *loop, const struct operatord_config *cfg, struct controller **ret);
void controller_free(struct controller *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct controller *, controller_free);
/* "metrics on …, probes on …" for the READY status line. */
const char *controller_describe(const struct controller *c);
