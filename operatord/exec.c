/* Runs a plan: the one place a reconcile pass writes. Actions go out in order, each after
 * the previous one succeeded; a run of ACT_PARALLEL actions (sub-agent creates) goes out
 * together, at most OPERATORD_MAX_PARALLEL in flight (operator-webhook.md §2.6). A failed
 * write ends the run unless its flags forgive it (NotFound on deletes, AlreadyExists on
 * creates, NotFound on pod patches, best-effort tag drops); the caller then retries the key
 * with backoff, and the next pass plans again from the caches. Events go to the recorder
 * (best effort by design) and metric updates to the registry, in plan order, so a counter
 * moves only when the writes before it landed.
 *
 * Also here: exec_probe(), which gathers the registry facts a plan asked for, all at once. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cocoon/kube.h"
#include "cocoon/log.h"
#include "cocoon/meta.h"
#include "operatord.h"

static const struct kube_resource pods_resource = { "", "v1", "pods", true };

struct exec {
	const struct exec_ctx *ctx;
	struct exec_target target;
	struct plan plan;
	size_t next;
	unsigned inflight;
	bool stop;
	bool exists_requeue;
	int error;
	char *message;
	unsigned writes;
	exec_done_fn done;
	void *userdata;
};

struct exec_op {
	struct exec *x;
	const struct action *a;
};

static void exec_pump(struct exec *x);

static void exec_fail(struct exec *x, int error, const struct action *a, const char *why)
{
	if (x->error == 0) {
		x->error = error;
		if (asprintf(&x->message, "%s %s%s%s: %s", exec_action_verb(a->kind),
			     a->name ? a->name : x->target.name, a->tag ? ":" : "",
			     a->tag ? a->tag : "", why) < 0)
			x->message = NULL;
	}
	x->stop = true;
}

/* Judges one action's result by its flags; an unforgiven failure stops the run. */
static void exec_judge(struct exec *x, const struct action *a, int error, const char *why)
{
	if (error == 0)
		return;
	if ((error == -ENOENT && (a->flags & ACT_IGNORE_NOT_FOUND)) ||
	    (error == -EEXIST && (a->flags & ACT_IGNORE_EXISTS)))
		return;
	if (error == -EEXIST && (a->flags & ACT_EXISTS_REQUEUE)) {
		x->exists_requeue = true;
		x->stop = true;
		return;
	}
	if (a->flags & ACT_BEST_EFFORT) {
		log_warning("%s/%s: %s %s%s%s failed, ignoring: %s", x->target.ns, x->target.name,
			    exec_action_verb(a->kind), a->name ? a->name : "", a->tag ? ":" : "",
			    a->tag ? a->tag : "", why);
		return;
	}
	exec_fail(x, error, a, why);
}

static void exec_on_kube(struct kube_call *call, int error, json_t *obj,
			 const struct kube_status *status, void *userdata)
{
	struct exec_op *op = userdata;
	struct exec *x = op->x;

	exec_judge(x, op->a, error, status && status->message ? status->message : strerror(-error));
	free(op);
	x->inflight--;
	exec_pump(x);
}

static void exec_on_registry(int error, bool present, const char *message, void *userdata)
{
	struct exec_op *op = userdata;
	struct exec *x = op->x;

	exec_judge(x, op->a, error, message ? message : "");
	free(op);
	x->inflight--;
	exec_pump(x);
}

static char *exec_path(struct exec *x, const struct action *a)
{
	switch (a->kind) {
	case ACT_POD_CREATE:
		return kube_path(&pods_resource, x->target.ns, NULL, NULL);
	case ACT_POD_DELETE:
	case ACT_POD_PATCH:
		return kube_path(&pods_resource, x->target.ns, a->name, NULL);
	case ACT_STATUS_PATCH:
		return kube_path(x->target.resource, x->target.ns, x->target.name, "status");
	default:
		return kube_path(x->target.resource, x->target.ns, x->target.name, NULL);
	}
}

/* Starts an asynchronous action; 0 when started (the callback pumps), < 0 on a failure to
 * start (judged at once). */
static int exec_start(struct exec *x, const struct action *a)
{
	_cleanup_(freep) struct exec_op *op = calloc(1, sizeof(*op));
	_cleanup_(freep) char *path = NULL;
	struct kube_delete_options del = { .grace_period_seconds = -1 };
	struct kube_client *k = x->ctx->kube;
	int r;

	if (!op)
		return -ENOMEM;
	*op = (struct exec_op){ .x = x, .a = a };
	if (a->kind == ACT_TAG_DELETE) {
		r = registry_delete(x->ctx->registry, a->name, a->tag, exec_on_registry, op);
	} else {
		path = exec_path(x, a);
		if (!path)
			return -ENOMEM;
		switch (a->kind) {
		case ACT_POD_CREATE:
			r = kube_create(k, path, a->body, exec_on_kube, op, NULL);
			break;
		case ACT_POD_DELETE:
			r = kube_delete(k, path, &del, exec_on_kube, op, NULL);
			break;
		case ACT_OBJ_UPDATE:
			r = kube_update(k, path, a->body, exec_on_kube, op, NULL);
			break;
		default: /* the three merge patches */
			r = kube_patch(k, path, KUBE_PATCH_MERGE, a->body, exec_on_kube, op, NULL);
			break;
		}
	}
	if (r < 0)
		return r;
	/* Creates, deletes, finalizer updates and phase changes are what an operator wants to
	 * see at 3 a.m.; annotation patches are routine. */
	if (a->kind == ACT_STATUS_PATCH) {
		const char *phase = json_string_value(
			json_object_get(json_object_get(a->body, "status"), "phase"));

		if (phase)
			log_info("%s/%s: phase %s", x->target.ns, x->target.name, phase);
	}
	log_full(a->kind == ACT_POD_PATCH || a->kind == ACT_OBJ_PATCH ||
				 a->kind == ACT_STATUS_PATCH ? LOG_DEBUG : LOG_INFO,
		 "%s/%s: %s %s%s%s", x->target.ns, x->target.name, exec_action_verb(a->kind),
		 a->kind == ACT_POD_CREATE ? json_string_value(json_object_get(
						     json_object_get(a->body, "metadata"), "name")) :
		 a->name ? a->name : x->target.name,
		 a->tag ? ":" : "", a->tag ? a->tag : "");
	TAKE_PTR(op);
	x->inflight++;
	x->writes++;
	return 0;
}

static void exec_instant(struct exec *x, const struct action *a)
{
	int r;

	if (a->kind == ACT_EVENT) {
		r = kube_record(x->ctx->recorder, x->target.involved, a->event_type, a->reason, "%s",
				a->message);
		if (r < 0)
			log_debug("%s/%s: event %s not recorded: %s", x->target.ns, x->target.name,
				  a->reason, strerror(-r));
		log_full(streq(a->event_type, "Warning") ? LOG_WARNING : LOG_INFO, "%s/%s: %s: %s",
			 x->target.ns, x->target.name, a->reason, a->message);
		return;
	}
	r = operator_metrics_apply(x->ctx->metrics, a);
	if (r < 0) /* a plan naming a metric that does not exist: a programming error */
		log_error("metric %s not updated: %s", a->metric, strerror(-r));
}

static void exec_finish(struct exec *x)
{
	struct exec_result res = { .writes = x->writes, .outcome = x->plan.outcome,
				   .requeue_after_usec = x->plan.requeue_after_usec,
				   .mark_exit_ltt_usec = x->plan.mark_exit_ltt_usec };

	if (x->error < 0) {
		res.outcome = PLAN_ERROR;
		res.message = x->message;
		res.mark_exit_ltt_usec = 0;
	} else if (x->exists_requeue) {
		res.outcome = PLAN_REQUEUE_AFTER;
		res.requeue_after_usec = OPERATORD_POLL_USEC;
	} else if (x->plan.outcome == PLAN_ERROR) {
		res.message = x->plan.error;
	}
	x->done(&res, x->userdata);
	exec_free(x);
}

static void exec_pump(struct exec *x)
{
	while (!x->stop && x->next < x->plan.n_actions) {
		const struct action *a = &x->plan.actions[x->next];
		bool parallel = a->flags & ACT_PARALLEL;
		int r;

		if (x->inflight > 0 && (!parallel || x->inflight >= OPERATORD_MAX_PARALLEL))
			return; /* the in-flight ones call back */
		x->next++;
		if (a->kind == ACT_EVENT || a->kind == ACT_COUNT || a->kind == ACT_OBSERVE) {
			exec_instant(x, a);
			continue;
		}
		r = exec_start(x, a);
		if (r < 0) {
			exec_judge(x, a, r, strerror(-r));
			continue;
		}
		if (!parallel)
			return;
	}
	if (x->inflight == 0)
		exec_finish(x);
}

const char *exec_action_verb(enum action_kind k)
{
	switch (k) {
	case ACT_POD_CREATE:
		return "create pod";
	case ACT_POD_DELETE:
		return "delete pod";
	case ACT_POD_PATCH:
		return "patch pod";
	case ACT_OBJ_PATCH:
		return "patch";
	case ACT_OBJ_UPDATE:
		return "update finalizers of";
	case ACT_STATUS_PATCH:
		return "patch status of";
	case ACT_EVENT:
		return "record event on";
	case ACT_TAG_DELETE:
		return "delete tag";
	default:
		return "update metric";
	}
}

int exec_run(const struct exec_ctx *ctx, const struct exec_target *t, struct plan *take_plan,
	     exec_done_fn done, void *userdata)
{
	struct exec *x = calloc(1, sizeof(*x));

	if (!x) {
		plan_done(take_plan);
		return -ENOMEM;
	}
	*x = (struct exec){ .ctx = ctx, .plan = *take_plan, .done = done, .userdata = userdata };
	*take_plan = (struct plan){};
	if (x->plan.note)
		log_info("%s/%s: %s", t->ns, t->name, x->plan.note);
	x->target.resource = t->resource;
	x->target.ns = strdup(t->ns);
	x->target.name = strdup(t->name);
	x->target.involved = json_incref(t->involved);
	if (!x->target.ns || !x->target.name) {
		exec_free(x);
		return -ENOMEM;
	}
	exec_pump(x);
	return 0;
}

void exec_free(struct exec *x)
{
	if (!x)
		return;
	plan_done(&x->plan);
	free((char *)x->target.ns);
	free((char *)x->target.name);
	json_decref(x->target.involved);
	free(x->message);
	free(x);
}

/* ---- registry facts ---- */

struct probe {
	struct facts *facts;
	size_t pending;
	int error;
	void (*done)(int error, void *userdata);
	void *userdata;
};

struct probe_one {
	struct probe *p;
	char *name;
};

static void probe_on_done(int error, bool present, const char *message, void *userdata)
{
	struct probe_one *o = userdata;
	struct probe *p = o->p;
	int r;

	r = facts_set(p->facts, o->name,
		      error < 0 ? FACT_ERROR : present ? FACT_PRESENT : FACT_ABSENT, message);
	if (r < 0 && p->error == 0)
		p->error = r;
	free(o->name);
	free(o);
	if (--p->pending == 0) {
		p->done(p->error, p->userdata);
		free(p);
	}
}

int exec_probe(const struct exec_ctx *ctx, char *const *names, size_t n, struct facts *facts,
	       void (*done)(int error, void *userdata), void *userdata)
{
	struct probe *p = calloc(1, sizeof(*p));
	int r = 0;

	if (!p)
		return -ENOMEM;
	*p = (struct probe){ .facts = facts, .done = done, .userdata = userdata, .pending = 1 };
	for (size_t i = 0; i < n; i++) {
		struct probe_one *o = calloc(1, sizeof(*o));

		if (!o || !(o->name = strdup(names[i]))) {
			free(o);
			r = -ENOMEM;
			break;
		}
		o->p = p;
		p->pending++;
		r = registry_has(ctx->registry, names[i], META_TAG_HIBERNATE, probe_on_done, o);
		if (r < 0) {
			p->pending--;
			free(o->name);
			free(o);
			break;
		}
	}
	if (r < 0)
		p->error = r;
	/* The guard reference: completes now if nothing started, else with the last probe. */
	if (--p->pending == 0) {
		if (r < 0) {
			free(p);
			return r;
		}
		p->done(p->error, p->userdata);
		free(p);
	}
	return 0;
}
