/* operatord's Kubernetes side (operator-webhook.md §2.1–2.2): the informers, the two work
 * queues, the event filters, leader election, the per-VM lock table, and the passes that
 * tie a key to a plan and the plan to the executor.
 *
 * Informers: CocoonSets and CocoonHibernations (v1), the legacy cocoon.cis/v1alpha1
 * CocoonSets and Hibernations (optional: a cluster without the legacy CRDs works, their
 * caches just never sync), and pods labelled cocoonset.cocoonstack.io/name (the managed
 * ones; a hibernation pass GETs its pod fresh instead, so any pod can be hibernated).
 *
 * Filters (§2.2): CocoonSet updates only when metadata.generation changes (our status and
 * annotation writes do not loop back); pod events map to the controlling CocoonSet only
 * for creates, deletes, a new deletionTimestamp, a phase change, a Ready flip or a change
 * of labels or annotations; every pod event maps to the hibernation CRs that name it.
 *
 * Keys are "<kind>/<ns>/<name>", kind one of cs, lcs (legacy CocoonSet), ch, hib (legacy
 * Hibernation). A pass: cache lookup → decode → plan → (registry facts → plan again) →
 * exec → the outcome decides the requeue. Nothing is processed before the caches synced,
 * nor while another replica leads; losing the lead exits the process (in-flight writes
 * cannot be recalled, so the standby must not overlap with them). */
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cocoon/endpoints.h"
#include "cocoon/http.h"
#include "cocoon/kube.h"
#include "cocoon/log.h"
#include "cocoon/loop.h"
#include "cocoon/meta.h"
#include "cocoon/metrics.h"
#include "cocoon/workqueue.h"
#include "operatord.h"

#define FACT_ROUNDS_MAX 3
#define SYNC_WAIT_USEC  (500 * USEC_PER_MSEC)
#define LOCK_WAIT_USEC  (200 * USEC_PER_MSEC)
#define TRIM_AFTER_USEC (2 * USEC_PER_SEC)
#define INDEX_PODREF    "podref" /* "<ns>/<pod>" a hibernation CR names */

enum kind { KIND_CS, KIND_LCS, KIND_CH, KIND_HIB, _KIND_MAX };

static const struct kube_resource resources[_KIND_MAX] = {
	[KIND_CS] = { "cocoonset.cocoonstack.io", "v1", "cocoonsets", true },
	[KIND_LCS] = { "cocoon.cis", "v1alpha1", "cocoonsets", true },
	[KIND_CH] = { "cocoonset.cocoonstack.io", "v1", "cocoonhibernations", true },
	[KIND_HIB] = { "cocoon.cis", "v1alpha1", "hibernations", true },
};
static const char *const kind_key[_KIND_MAX] = { "cs", "lcs", "ch", "hib" };
static const char *const kind_name[_KIND_MAX] = { "CocoonSet", "CocoonSet", "CocoonHibernation",
						  "Hibernation" };
static const char *const kind_desc[_KIND_MAX] = { "CocoonSet", "legacy CocoonSet",
						  "CocoonHibernation", "legacy Hibernation" };
static const struct kube_resource pods_resource = { "", "v1", "pods", true };

struct controller {
	struct loop *loop;
	sd_event *event;
	struct kube_client *kube;
	struct registry *registry;
	struct kube_recorder *recorder;
	struct kube_leader *leader;
	struct metrics *metrics;
	struct operator_metrics *om;
	struct http_server *metrics_server, *probe_server;
	struct kube_informer *inf[_KIND_MAX], *pods;
	struct workqueue *cs_queue, *hib_queue;
	struct exec_ctx ctx;
	json_t *locks;     /* lock key → true, for hibernation passes */
	json_t *exit_seen; /* hibernation CR uid → Ready LTT whose exit metrics fired */
	bool leading;
	bool draining, releasing, drained;
	bool ready_sent;
	sd_event_source *resync;
	sd_event_source *trim; /* malloc_trim once idle */
	unsigned passes;       /* in flight */
	char describe[256];
};

struct pass {
	struct controller *c;
	struct workqueue *q;
	enum kind kind;
	char *key; /* the queue's key (borrowed from the queue until done) */
	char *ns, *name;
	json_t *obj;
	struct cs *cs;
	struct hib *hib;
	json_t *pods, *hibernations, *pod;
	struct facts facts;
	unsigned rounds;
	char *lock;
	uint64_t started;
};

static uint64_t now_mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * USEC_PER_SEC + (uint64_t)ts.tv_nsec / 1000;
}

/* ---- keys ---- */

static int enqueue(struct controller *c, enum kind k, const char *ns, const char *name)
{
	_cleanup_(freep) char *key = NULL;
	struct workqueue *q = k == KIND_CS || k == KIND_LCS ? c->cs_queue : c->hib_queue;
	int r;

	if (!ns || !name)
		return 0;
	if (asprintf(&key, "%s/%s/%s", kind_key[k], ns, name) < 0)
		return -ENOMEM;
	r = workqueue_add(q, key);
	if (r < 0 && r != -ESHUTDOWN)
		log_warning_errno(r, "cannot queue %s: %m", key);
	return r;
}

static const char *meta_str(const json_t *obj, const char *field)
{
	return json_string_value(json_object_get(json_object_get(obj, "metadata"), field));
}

static void enqueue_obj(struct controller *c, enum kind k, const json_t *obj)
{
	(void)enqueue(c, k, meta_str(obj, "namespace"), meta_str(obj, "name"));
}

static int parse_key(const char *key, enum kind *ret_kind, char **ret_ns, char **ret_name)
{
	const char *a = strchr(key, '/'), *b = a ? strchr(a + 1, '/') : NULL;

	if (!b)
		return -EINVAL;
	for (int k = 0; k < _KIND_MAX; k++)
		if ((size_t)(a - key) == strlen(kind_key[k]) &&
		    strncmp(key, kind_key[k], a - key) == 0) {
			*ret_kind = k;
			*ret_ns = strndup(a + 1, b - a - 1);
			*ret_name = strdup(b + 1);
			return *ret_ns && *ret_name ? 0 : -ENOMEM;
		}
	return -EINVAL;
}

/* ---- event filters ---- */

static int64_t generation_of(const json_t *obj)
{
	return json_integer_value(json_object_get(json_object_get(obj, "metadata"), "generation"));
}

static void cs_on_add(struct kube_informer *inf, const json_t *obj, void *u)
{
	struct controller *c = u;
	enqueue_obj(c, inf == c->inf[KIND_CS] ? KIND_CS : KIND_LCS, obj);
}

static void cs_on_update(struct kube_informer *inf, const json_t *old, const json_t *obj, void *u)
{
	if (generation_of(old) != generation_of(obj))
		cs_on_add(inf, obj, u);
}

static void hib_on_add(struct kube_informer *inf, const json_t *obj, void *u)
{
	struct controller *c = u;
	enqueue_obj(c, inf == c->inf[KIND_CH] ? KIND_CH : KIND_HIB, obj);
}

static void hib_on_update(struct kube_informer *inf, const json_t *old, const json_t *obj, void *u)
{
	hib_on_add(inf, obj, u); /* status writes too: a pass may end waiting for its own write */
}

static void hib_on_delete(struct kube_informer *inf, const json_t *obj, void *u)
{
	struct controller *c = u;
	const char *uid = meta_str(obj, "uid");

	if (uid)
		(void)json_object_del(c->exit_seen, uid);
	hib_on_add(inf, obj, u);
}

/* podRelevantChange (§2.2). */
static bool pod_relevant_change(const json_t *old, const json_t *obj)
{
	const json_t *om = json_object_get(old, "metadata"), *nm = json_object_get(obj, "metadata");

	if (!json_object_get(om, "deletionTimestamp") && json_object_get(nm, "deletionTimestamp"))
		return true;
	if (!json_equal(json_object_get(json_object_get(old, "status"), "phase"),
			json_object_get(json_object_get(obj, "status"), "phase")))
		return true;
	if (cs_pod_ready(old) != cs_pod_ready(obj))
		return true;
	return !json_equal(json_object_get(om, "labels"), json_object_get(nm, "labels")) ||
	       !json_equal(json_object_get(om, "annotations"), json_object_get(nm, "annotations"));
}

static void pod_to_owner(struct controller *c, const json_t *pod)
{
	size_t i;
	json_t *ref;

	json_array_foreach (json_object_get(json_object_get(pod, "metadata"), "ownerReferences"), i,
			    ref) {
		const char *api = json_string_value(json_object_get(ref, "apiVersion"));

		if (!json_is_true(json_object_get(ref, "controller")) ||
		    !streq_ptr(json_string_value(json_object_get(ref, "kind")), "CocoonSet"))
			continue;
		(void)enqueue(c, streq_ptr(api, META_LEGACY_API_VERSION) ? KIND_LCS : KIND_CS,
			      meta_str(pod, "namespace"),
			      json_string_value(json_object_get(ref, "name")));
		return;
	}
}

static void pod_to_hibernations(struct controller *c, const json_t *pod)
{
	_cleanup_(freep) char *ref = NULL;

	if (asprintf(&ref, "%s/%s", meta_str(pod, "namespace") ?: "", meta_str(pod, "name") ?: "") <
	    0)
		return;
	for (int k = KIND_CH; k <= KIND_HIB; k++) {
		_cleanup_(json_decrefp) json_t *l =
		    kube_informer_by_index(c->inf[k], INDEX_PODREF, ref);
		size_t i;
		json_t *o;

		json_array_foreach (l, i, o)
			enqueue_obj(c, k, o);
	}
}

static void pod_on_add(struct kube_informer *inf, const json_t *obj, void *u)
{
	pod_to_owner(u, obj);
	pod_to_hibernations(u, obj);
}

static void pod_on_update(struct kube_informer *inf, const json_t *old, const json_t *obj, void *u)
{
	if (pod_relevant_change(old, obj))
		pod_to_owner(u, obj);
	pod_to_hibernations(u, obj);
}

static char **index_podref(const json_t *obj, void *u)
{
	const json_t *spec = json_object_get(obj, "spec");
	const char *pod =
	    json_string_value(json_object_get(json_object_get(spec, "podRef"), "name"));
	char *key = NULL, **l;

	if (!pod)
		pod = json_string_value(json_object_get(spec, "podName"));
	if (!pod || asprintf(&key, "%s/%s", meta_str(obj, "namespace") ?: "", pod) < 0)
		return NULL;
	l = calloc(2, sizeof(char *));
	if (!l) {
		free(key);
		return NULL;
	}
	l[0] = key;
	return l;
}

/* ---- passes ---- */

static bool caches_synced(const struct controller *c, bool hibernation)
{
	if (!kube_informer_synced(c->pods))
		return false;
	return hibernation
		   ? kube_informer_synced(c->inf[KIND_CH])
		   : kube_informer_synced(c->inf[KIND_CS]) && kube_informer_synced(c->inf[KIND_CH]);
}

static void pass_free(struct pass *p)
{
	if (!p)
		return;
	if (p->lock)
		json_object_del(p->c->locks, p->lock);
	free(p->lock);
	free(p->ns);
	free(p->name);
	json_decref(p->obj);
	cs_free(p->cs);
	hib_free(p->hib);
	json_decref(p->pods);
	json_decref(p->hibernations);
	json_decref(p->pod);
	facts_done(&p->facts);
	free(p);
}

static void controller_maybe_drained(struct controller *c);

/* Ends a pass: the outcome becomes the key's requeue. */
static void pass_end(struct pass *p, enum plan_outcome outcome, uint64_t after, const char *message,
		     unsigned writes)
{
	struct controller *c = p->c;
	const char *controller =
	    p->kind == KIND_CS || p->kind == KIND_LCS ? "cocoonset" : "hibernation";
	const char *result = "done";

	switch (outcome) {
	case PLAN_ERROR:
		result = "error";
		log_error("%s %s/%s: %s, retrying", kind_name[p->kind], p->ns, p->name,
			  message ? message : "failed");
		(void)workqueue_retry(p->q, p->key);
		break;
	case PLAN_REQUEUE:
		result = "requeue";
		(void)workqueue_retry(p->q, p->key);
		break;
	case PLAN_REQUEUE_AFTER:
		result = "requeue";
		workqueue_forget(p->q, p->key);
		(void)workqueue_add_after(p->q, p->key, after);
		break;
	default:
		workqueue_forget(p->q, p->key);
		break;
	}
	operator_metrics_reconciled(c->om, controller, result,
				    (double)(now_mono() - p->started) / USEC_PER_SEC, writes);
	workqueue_done(p->q, p->key);
	pass_free(p);
	c->passes--;
	/* A burst of passes leaves freed heap behind; give it back once things are quiet. */
	if (c->passes == 0 && c->trim)
		(void)loop_timer_arm(c->trim, TRIM_AFTER_USEC);
	controller_maybe_drained(c);
}

static int controller_on_trim(sd_event_source *s, uint64_t usec, void *u)
{
	struct controller *c = u;

	if (c->passes == 0)
		(void)malloc_trim(0);
	return 0;
}

static void pass_on_exec(const struct exec_result *res, void *userdata)
{
	struct pass *p = userdata;

	if (res->mark_exit_ltt_usec && p->hib)
		(void)json_object_set_new(p->c->exit_seen, p->hib->uid,
					  json_integer((json_int_t)res->mark_exit_ltt_usec));
	pass_end(p, res->outcome, res->requeue_after_usec, res->message, res->writes);
}

static void pass_plan(struct pass *p);

static void pass_on_facts(int error, void *userdata)
{
	struct pass *p = userdata;

	if (error < 0) {
		pass_end(p, PLAN_ERROR, 0, strerror(-error), 0);
		return;
	}
	pass_plan(p);
}

static uint64_t exit_seen(const struct controller *c, const char *uid)
{
	return (uint64_t)json_integer_value(json_object_get(c->exit_seen, uid));
}

static void pass_plan(struct pass *p)
{
	_cleanup_(plan_done) struct plan plan = {};
	struct controller *c = p->c;
	struct exec_target t = { .resource = &resources[p->kind], .ns = p->ns, .name = p->name };
	int r;

	if (p->cs) {
		struct cs_inputs in = { .cs = p->cs,
					.pods = p->pods,
					.hibernations = p->hibernations,
					.facts = &p->facts,
					.now_usec = kube_time_now() };
		r = cs_plan(&in, &plan);
	} else {
		struct hib_inputs in = { .hib = p->hib,
					 .pod = p->pod,
					 .others = p->hibernations,
					 .facts = &p->facts,
					 .now_usec = kube_time_now(),
					 .exit_seen_ltt_usec = exit_seen(c, p->hib->uid),
					 .registry = registry_display(c->registry) };
		r = hib_plan(&in, &plan);
	}
	if (r < 0) {
		pass_end(p, PLAN_ERROR, 0, strerror(-r), 0);
		return;
	}
	if (plan.n_probes > 0) {
		if (++p->rounds > FACT_ROUNDS_MAX) {
			pass_end(p, PLAN_ERROR, 0, "registry facts did not settle", 0);
			return;
		}
		r = exec_probe(&c->ctx, plan.probes, plan.n_probes, &p->facts, pass_on_facts, p);
		if (r < 0)
			pass_end(p, PLAN_ERROR, 0, strerror(-r), 0);
		return;
	}
	t.involved = p->obj;
	r = exec_run(&c->ctx, &t, &plan, pass_on_exec, p);
	if (r < 0)
		pass_end(p, PLAN_ERROR, 0, strerror(-r), 0);
}

/* The namespace's hibernation CRs of both kinds, as one array. */
static json_t *namespace_hibernations(const struct controller *c, const char *ns)
{
	json_t *all = json_array();

	for (int k = KIND_CH; k <= KIND_HIB && all; k++) {
		_cleanup_(json_decrefp) json_t *l =
		    kube_informer_by_index(c->inf[k], "namespace", ns);

		if (l && json_array_extend(all, l) < 0)
			return json_decref(all), NULL;
	}
	return all;
}

static void pass_on_pod(struct kube_call *call, int error, json_t *obj,
			const struct kube_status *status, void *userdata)
{
	struct pass *p = userdata;

	if (error < 0 && error != -ENOENT) {
		pass_end(p, PLAN_ERROR, 0,
			 status && status->message ? status->message : strerror(-error), 0);
		return;
	}
	p->pod = error < 0 ? NULL : json_incref(obj);
	pass_plan(p);
}

/* An object we cannot decode: said in the log and on the object (kubectl describe). A
 * new generation brings it back. */
static void pass_invalid(struct pass *p, const char *why)
{
	log_error("%s %s/%s: %s; not reconciled until it is fixed", kind_name[p->kind], p->ns,
		  p->name, why);
	(void)kube_record(p->c->recorder, p->obj, "Warning", "InvalidSpec", "%s", why);
}

static int pass_start_cs(struct pass *p)
{
	_cleanup_(freep) char *err = NULL;
	struct controller *c = p->c;
	json_t *all;
	size_t i;
	json_t *pod;
	int r;

	r = cs_parse(p->obj, &p->cs, &err);
	if (r < 0) {
		pass_invalid(p, err ? err : strerror(-r));
		return 0;
	}
	all = kube_informer_by_index(c->pods, "label:" META_LABEL_COCOONSET, p->name);
	p->pods = json_array();
	if (!p->pods) {
		json_decref(all);
		return -ENOMEM;
	}
	json_array_foreach (all, i, pod)
		if (streq_ptr(meta_str(pod, "namespace"), p->ns))
			json_array_append(p->pods, pod);
	json_decref(all);
	p->hibernations = namespace_hibernations(c, p->ns);
	if (!p->hibernations)
		return -ENOMEM;
	pass_plan(p);
	return 1;
}

/* Returns 1 when the pass went on (it ends itself), 0 when there is nothing to do, 2 when
 * the VM is busy with another CR's pass (try again shortly), < 0 on error. */
static int pass_start_hib(struct pass *p)
{
	_cleanup_(freep) char *err = NULL, *path = NULL;
	struct controller *c = p->c;
	int r;

	r = hib_parse(p->obj, &p->hib, &err);
	if (r < 0) {
		pass_invalid(p, err ? err : strerror(-r));
		return 0;
	}
	/* One pass per VM at a time across CRs (§2.14's per-VM lock): two CRs on one pod take
	 * turns. */
	if (asprintf(&p->lock, "%s/%s", p->ns,
		     *p->hib->pod_name ? p->hib->pod_name
		     : p->hib->vm_name ? p->hib->vm_name
				       : p->name) < 0) {
		p->lock = NULL;
		return -ENOMEM;
	}
	if (json_object_get(c->locks, p->lock)) {
		free(TAKE_PTR(p->lock));
		return 2;
	}
	if (json_object_set_new(c->locks, p->lock, json_true()) < 0)
		return -ENOMEM;
	p->hibernations = namespace_hibernations(c, p->ns);
	if (!p->hibernations)
		return -ENOMEM;
	if (p->hib->deleting || !*p->hib->pod_name) {
		pass_plan(p);
		return 1;
	}
	path = kube_path(&pods_resource, p->ns, p->hib->pod_name, NULL);
	if (!path)
		return -ENOMEM;
	r = kube_get(c->kube, path, pass_on_pod, p, NULL);
	return r < 0 ? r : 1;
}

static void controller_process(struct workqueue *q, const char *key, void *userdata)
{
	struct controller *c = userdata;
	_cleanup_(freep) char *obj_key = NULL;
	char *ns = NULL, *name = NULL;
	enum kind kind;
	struct pass *p;
	_cleanup_(json_decrefp) json_t *obj = NULL;
	int r;

	if (c->draining || !c->leading) {
		workqueue_done(q, key); /* the leader's business; re-listed when we lead */
		return;
	}
	if (!caches_synced(c, q == c->hib_queue)) {
		(void)workqueue_add_after(q, key, SYNC_WAIT_USEC);
		workqueue_done(q, key);
		return;
	}
	r = parse_key(key, &kind, &ns, &name);
	p = r < 0 ? NULL : calloc(1, sizeof(*p));
	if (!p) {
		log_error("cannot start a pass for %s: %s", key, strerror(r < 0 ? -r : ENOMEM));
		free(ns);
		free(name);
		workqueue_done(q, key);
		return;
	}
	*p = (struct pass){ .c = c,
			    .q = q,
			    .key = (char *)key,
			    .kind = kind,
			    .ns = ns,
			    .name = name,
			    .started = now_mono() };
	c->passes++;
	if (asprintf(&obj_key, "%s/%s", p->ns, p->name) < 0) {
		obj_key = NULL;
		pass_end(p, PLAN_ERROR, 0, "out of memory", 0);
		return;
	}
	obj = kube_informer_get(c->inf[p->kind], obj_key);
	if (!obj) {
		pass_end(p, PLAN_DONE, 0, NULL, 0); /* gone: nothing to do */
		return;
	}
	p->obj = json_deep_copy(obj);
	if (!p->obj ||
	    json_object_set_new(p->obj, "apiVersion",
				json_string(p->kind == KIND_LCS || p->kind == KIND_HIB
						? META_LEGACY_API_VERSION
						: META_API_VERSION)) < 0 ||
	    json_object_set_new(p->obj, "kind", json_string(kind_name[p->kind])) < 0) {
		pass_end(p, PLAN_ERROR, 0, "out of memory", 0);
		return;
	}
	r = p->kind == KIND_CS || p->kind == KIND_LCS ? pass_start_cs(p) : pass_start_hib(p);
	if (r < 0)
		pass_end(p, PLAN_ERROR, 0, strerror(-r), 0);
	else if (r == 0)
		pass_end(p, PLAN_DONE, 0, NULL, 0);
	else if (r == 2)
		pass_end(p, PLAN_REQUEUE_AFTER, LOCK_WAIT_USEC, NULL, 0);
}

/* ---- leadership ---- */

static void enqueue_all(struct controller *c)
{
	for (int k = 0; k < _KIND_MAX; k++) {
		_cleanup_(json_decrefp) json_t *l = kube_informer_list(c->inf[k]);
		size_t i;
		json_t *o;

		json_array_foreach (l, i, o) {
			if (k == KIND_CS || k == KIND_LCS)
				cs_on_add(c->inf[k], o, c);
			else
				hib_on_add(c->inf[k], o, c);
		}
	}
}

static void controller_on_started_leading(struct kube_leader *l, void *u)
{
	struct controller *c = u;

	log_info("leading: reconciling");
	c->leading = true;
	enqueue_all(c);
}

static void controller_on_stopped_leading(struct kube_leader *l, void *u)
{
	struct controller *c = u;

	c->leading = false;
	if (c->draining)
		return;
	/* Writes in flight cannot be recalled; the new leader must not overlap with them. */
	log_error("lost the lease %s; exiting so that the new leader works alone",
		  OPERATORD_LEASE_NAME);
	(void)loop_exit(c->loop, EXIT_FAILURE);
}

static void controller_on_new_leader(struct kube_leader *l, const char *identity, void *u)
{
	log_info("the lease %s is held by %s", OPERATORD_LEASE_NAME, identity);
}

static const char *lease_namespace(const struct operatord_config *cfg, const struct kube_config *kc)
{
	if (cfg->pod_namespace)
		return cfg->pod_namespace;
	if (streq_ptr(kc->source, "in-cluster") && kc->namespace)
		return kc->namespace;
	return "cocoon-system";
}

static int controller_leader(struct controller *c, const struct operatord_config *cfg,
			     const struct kube_config *kc)
{
	char host[256] = "operatord", identity[300];
	struct kube_leader_options o = {
		.namespace = lease_namespace(cfg, kc),
		.name = OPERATORD_LEASE_NAME,
		.identity = identity,
		.lease_duration_usec = cfg->lease_duration_usec,
		.renew_deadline_usec = cfg->renew_deadline_usec,
		.retry_period_usec = cfg->retry_period_usec,
		.on_started_leading = controller_on_started_leading,
		.on_stopped_leading = controller_on_stopped_leading,
		.on_new_leader = controller_on_new_leader,
	};

	if (!cfg->leader_elect) {
		c->leading = true;
		return 0;
	}
	(void)gethostname(host, sizeof(host) - 1);
	snprintf(identity, sizeof(identity), "%s_%d", host, (int)getpid());
	log_info("campaigning for the lease %s/%s as %s", o.namespace, o.name, identity);
	return kube_leader_new(c->kube, &o, c, &c->leader);
}

/* ---- drain ---- */

static void controller_on_released(struct kube_leader *l, void *u)
{
	struct controller *c = u;

	kube_leader_free(c->leader);
	c->leader = NULL;
	controller_maybe_drained(c);
}

/* The Lease is given up only once no pass is in flight: a standby must not start while
 * our last writes are still going out. */
static void controller_maybe_drained(struct controller *c)
{
	if (!c->draining || c->drained || c->passes > 0)
		return;
	if (c->leader && !c->releasing) {
		c->releasing = true;
		if (kube_leader_release(c->leader, controller_on_released, c) >= 0)
			return;
		kube_leader_free(c->leader);
		c->leader = NULL;
	}
	if (c->leader)
		return; /* the release calls back */
	c->drained = true;
	loop_drain_done(c->loop);
}

static void controller_on_drain(struct loop *l, void *u)
{
	struct controller *c = u;

	log_info("draining: %u pass(es) in flight", c->passes);
	c->draining = true;
	workqueue_shutdown(c->cs_queue);
	workqueue_shutdown(c->hib_queue);
	controller_maybe_drained(c);
}

/* Hibernation CRs of pods outside the managed-pod cache (a Deployment's pod, a bare pod)
 * see no pod events: look at every CR once a minute, as the original's pod watch would
 * have woken them (a recreated pod must be put back to sleep). */
static int controller_on_resync(sd_event_source *s, uint64_t usec, void *u)
{
	struct controller *c = u;
	int r;

	if (c->leading && !c->draining)
		for (int k = KIND_CH; k <= KIND_HIB; k++) {
			_cleanup_(json_decrefp) json_t *l = kube_informer_list(c->inf[k]);
			size_t i;
			json_t *o;

			json_array_foreach (l, i, o)
				enqueue_obj(c, k, o);
		}
	r = loop_timer_arm(s, OPERATORD_RESYNC_USEC);
	if (r < 0)
		log_warning_errno(r, "cannot re-arm the hibernation resync timer: %m");
	return 0;
}

/* ---- set-up ---- */

static bool controller_ready(void *u, const char **ret_reason)
{
	struct controller *c = u;

	if (!caches_synced(c, false)) {
		*ret_reason = "the CocoonSet, CocoonHibernation and pod caches are not synced yet";
		return false;
	}
	return true; /* leading or standing by: both are healthy states */
}

static void controller_on_synced(struct kube_informer *inf, void *u)
{
	struct controller *c = u;
	const char *what = "managed pod";

	for (int k = 0; k < _KIND_MAX; k++)
		if (inf == c->inf[k])
			what = kind_desc[k];
	log_info("%s cache synced: %zu objects", what, kube_informer_size(inf));
	if (!c->ready_sent && caches_synced(c, false)) {
		c->ready_sent = true;
		(void)loop_notify_ready(c->loop, "running: %s", c->describe);
		log_info("caches synced, %s", c->leading ? "reconciling" : "standing by");
	}
}

static void pod_trim(json_t *pod, void *u)
{
	cs_pod_trim(pod);
}

static int controller_informer(struct controller *c, const struct kube_resource *res,
			       const char *selector, const struct kube_informer_handlers *h,
			       bool podref, struct kube_informer **ret)
{
	_cleanup_(freep) char *path = kube_path(res, NULL, NULL, NULL);
	struct kube_list_options o = { .label_selector = selector };
	int r;

	if (!path)
		return -ENOMEM;
	r = kube_informer_new(c->kube, path, &o, h, c, ret);
	if (r >= 0 && podref)
		r = kube_informer_add_index(*ret, INDEX_PODREF, index_podref, NULL);
	if (r >= 0 && res == &pods_resource)
		r = kube_informer_add_index(*ret, "label:" META_LABEL_COCOONSET, NULL, NULL);
	if (r >= 0 && res == &pods_resource)
		r = kube_informer_set_transform(*ret, pod_trim, NULL);
	if (r >= 0 && res != &pods_resource)
		r = kube_informer_add_index(*ret, "namespace", NULL, NULL);
	/* CocoonSets and their pods are the bulk of the cache (two objects per set, thousands
	 * of sets) and each is read once per pass: kept as text they cost a tenth. Hibernation
	 * CRs are few and read by every pass in their namespace: kept decoded. */
	if (r >= 0 && !podref)
		r = kube_informer_set_compact(*ret, true);
	if (r >= 0)
		r = kube_informer_start(*ret);
	return r;
}

static int controller_informers(struct controller *c)
{
	static const struct kube_informer_handlers cs_h = { .on_add = cs_on_add,
							    .on_update = cs_on_update,
							    .on_delete = cs_on_add,
							    .on_synced = controller_on_synced };
	static const struct kube_informer_handlers hib_h = { .on_add = hib_on_add,
							     .on_update = hib_on_update,
							     .on_delete = hib_on_delete,
							     .on_synced = controller_on_synced };
	static const struct kube_informer_handlers pod_h = { .on_add = pod_on_add,
							     .on_update = pod_on_update,
							     .on_delete = pod_on_add,
							     .on_synced = controller_on_synced };
	int r = 0;

	for (int k = 0; k < _KIND_MAX && r >= 0; k++) {
		bool cs = k == KIND_CS || k == KIND_LCS;

		r = controller_informer(c, &resources[k], NULL, cs ? &cs_h : &hib_h, !cs,
					&c->inf[k]);
	}
	if (r >= 0)
		r = controller_informer(c, &pods_resource, META_LABEL_COCOONSET, &pod_h, false,
					&c->pods);
	return r;
}

static int controller_servers(struct controller *c, const struct operatord_config *cfg)
{
	int r, mport, pport;

	r = http_server_new(c->event, NULL, &c->metrics_server);
	if (r >= 0)
		r = http_server_new(c->event, NULL, &c->probe_server);
	if (r >= 0)
		r = endpoints_add_metrics(c->metrics_server, c->metrics);
	if (r >= 0)
		r = endpoints_add_health(c->probe_server, controller_ready, c);
	if (r < 0)
		return log_error_errno(r, "cannot set up the HTTP endpoints: %m");
	mport = http_server_listen_address(c->metrics_server, cfg->metrics_addr);
	if (mport < 0)
		return log_error_errno(mport, "cannot listen on METRICS_ADDR=%s: %m",
				       cfg->metrics_addr);
	pport = http_server_listen_address(c->probe_server, cfg->probe_addr);
	if (pport < 0)
		return log_error_errno(pport, "cannot listen on PROBE_ADDR=%s: %m",
				       cfg->probe_addr);
	snprintf(c->describe, sizeof(c->describe),
		 "metrics on %s (port %d), probes on %s (port %d), registry %s", cfg->metrics_addr,
		 mport, cfg->probe_addr, pport, registry_display(c->registry));
	return 0;
}

static int controller_queues(struct controller *c, const struct operatord_config *cfg)
{
	struct workqueue_options cs = { .workers = (unsigned)cfg->cocoonset_concurrency };
	struct workqueue_options hib = { .workers = (unsigned)cfg->hibernation_concurrency };
	int r;

	r = workqueue_new(c->event, &cs, controller_process, c, &c->cs_queue);
	if (r >= 0)
		r = workqueue_new(c->event, &hib, controller_process, c, &c->hib_queue);
	return r;
}

static int controller_kube(struct controller *c, const struct operatord_config *cfg)
{
	_cleanup_(kube_config_freep) struct kube_config *kc = NULL;
	_cleanup_(freep) char *err = NULL;
	struct kube_client_options o = { .user_agent = OPERATORD_COMPONENT };
	int r;

	r = kube_config_load(NULL, &kc, &err);
	if (r < 0) {
		log_error("cannot load the Kubernetes configuration: %s", err ? err : strerror(-r));
		return r;
	}
	r = kube_client_new(c->event, kc, &o, &c->kube);
	if (r < 0)
		return log_error_errno(r, "cannot create the Kubernetes client (%s): %m",
				       kc->source);
	log_info("talking to %s (%s)", kc->server, kc->source);
	r = kube_recorder_new(c->kube, OPERATORD_COMPONENT, NULL, &c->recorder);
	if (r >= 0)
		r = controller_queues(c, cfg);
	if (r >= 0)
		r = controller_informers(c);
	if (r < 0)
		return log_error_errno(r, "cannot start the informers: %m");
	r = controller_leader(c, cfg, kc);
	if (r < 0)
		return log_error_errno(r, "cannot start leader election: %m");
	return 0;
}

int controller_new(struct loop *loop, const struct operatord_config *cfg, struct controller **ret)
{
	_cleanup_(controller_freep) struct controller *c = calloc(1, sizeof(*c));
	_cleanup_(freep) char *err = NULL;
	int r;

	if (!c)
		return log_oom_errno();
	c->loop = loop;
	c->event = sd_event_ref(loop_event(loop));
	c->locks = json_object();
	c->exit_seen = json_object();
	if (!c->locks || !c->exit_seen)
		return log_oom_errno();
	r = registry_new(c->event, cfg, &c->registry, &err);
	if (r < 0) {
		log_error("cannot use the registry: %s", err ? err : strerror(-r));
		return r;
	}
	r = metrics_new(&c->metrics);
	if (r >= 0)
		r = metrics_add_process_collector(c->metrics);
	if (r >= 0)
		r = operator_metrics_new(c->metrics, &c->om);
	if (r < 0)
		return log_error_errno(r, "cannot set up the metrics: %m");
	r = controller_servers(c, cfg);
	if (r >= 0)
		r = controller_kube(c, cfg);
	if (r < 0)
		return r;
	c->ctx = (struct exec_ctx){
		.kube = c->kube, .registry = c->registry, .recorder = c->recorder, .metrics = c->om
	};
	r = sd_event_add_time_relative(c->event, &c->resync, CLOCK_MONOTONIC, OPERATORD_RESYNC_USEC,
				       0, controller_on_resync, c);
	if (r < 0)
		return log_error_errno(r, "cannot arm the resync timer: %m");
	r = sd_event_add_time_relative(c->event, &c->trim, CLOCK_MONOTONIC, TRIM_AFTER_USEC, 0,
				       controller_on_trim, c);
	if (r >= 0)
		r = sd_event_source_set_enabled(c->trim, SD_EVENT_OFF);
	if (r < 0)
		return log_error_errno(r, "cannot create the idle timer: %m");
	r = loop_add_drain(loop, controller_on_drain, c);
	if (r < 0)
		return log_error_errno(r, "cannot register the drain: %m");
	*ret = TAKE_PTR(c);
	return 0;
}

void controller_free(struct controller *c)
{
	if (!c)
		return;
	sd_event_source_disable_unref(c->resync);
	sd_event_source_disable_unref(c->trim);
	workqueue_free(c->cs_queue);
	workqueue_free(c->hib_queue);
	kube_leader_free(c->leader);
	kube_recorder_free(c->recorder);
	for (int k = 0; k < _KIND_MAX; k++)
		kube_informer_free(c->inf[k]);
	kube_informer_free(c->pods);
	kube_client_free(c->kube);
	registry_free(c->registry);
	http_server_free(c->metrics_server);
	http_server_free(c->probe_server);
	operator_metrics_free(c->om);
	metrics_free(c->metrics);
	json_decref(c->locks);
	json_decref(c->exit_seen);
	sd_event_unref(c->event);
	free(c);
}

const char *controller_describe(const struct controller *c)
{
	return c->describe;
}
