/* One hibernation pass as a plan: the CocoonHibernation reconciler of operator-webhook.md
 * §2.14 step by step, with the events and metrics of §2.15. The legacy Hibernation
 * (§1.3, §2.17) runs through the same engine; only its status shape differs (a flat
 * phase/message/lastTransitionTime/snapshotRef instead of a Ready condition).
 *
 * The safety rules this file exists for (§7.5): a hibernate completes only when vk reports
 * lifecycle-state hibernated for the pod's current generation AND the :hibernate tag is in
 * the registry (a stale tag alone proves nothing); a reverse desire first finishes the
 * transition in flight; Pending never demotes Hibernated or Waking; the :hibernate tag is
 * dropped only once the VM runs again, or by the last CR holding the VM when it goes away.
 *
 * A registry fact the pass lacks makes it return at once with the probe and no actions;
 * the executor fetches the fact and plans again. Phase-exit metrics and events fire once
 * per Ready lastTransitionTime: the caller remembers the value in mark_exit_ltt_usec. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cocoon/kube.h"
#include "cocoon/meta.h"
#include "operatord.h"

#define PHASE_PENDING     "Pending"
#define PHASE_HIBERNATING "Hibernating"
#define PHASE_HIBERNATED  "Hibernated"
#define PHASE_WAKING      "Waking"
#define PHASE_ACTIVE      "Active"
#define PHASE_FAILED      "Failed"

/* As operator_metrics_apply() names them: without the cocoon_operator_ prefix. */
#define METRIC_HIBERNATE "hibernate_phase_duration_seconds"
#define METRIC_WAKE      "wake_phase_duration_seconds"

struct pass {
	const struct hib_inputs *in;
	const struct hib *h;
	struct plan plan;
	struct cs_pod pod; /* valid once the pod is known to exist */
};

/* ---- deletion and finalizer (§2.14 steps 2–3) ---- */

/* Another live CR of the namespace claims the same VM (by status or by pod), so the
 * :hibernate tag is still somebody's snapshot. Read loosely on purpose: a malformed other
 * CR that might hold the VM must not get its snapshot deleted. */
static bool vm_held_by_other(const struct pass *s)
{
	const json_t *o;
	size_t i;

	json_array_foreach (s->in->others, i, o) {
		const json_t *meta = json_object_get(o, "metadata");
		const json_t *spec = json_object_get(o, "spec");
		const char *uid = json_string_value(json_object_get(meta, "uid"));
		const char *vm =
		    json_string_value(json_object_get(json_object_get(o, "status"), "vmName"));
		const char *pod =
		    json_string_value(json_object_get(json_object_get(spec, "podRef"), "name"));
		const json_t *deletion = json_object_get(meta, "deletionTimestamp");

		if (!pod)
			pod = json_string_value(json_object_get(spec, "podName"));
		if (streq_ptr(uid, s->h->uid) || (deletion && !json_is_null(deletion)))
			continue;
		if (streq_ptr(vm, s->h->vm_name) ||
		    (!isempty(s->h->pod_name) && streq_ptr(pod, s->h->pod_name)))
			return true;
	}
	return false;
}

/* The object with our finalizer added or removed, for an Update that keeps
 * metadata.resourceVersion so a concurrent writer makes it fail with a conflict. */
static int update_finalizer(struct pass *s, bool add)
{
	json_t *obj = json_deep_copy(s->h->obj), *meta, *list;
	size_t i;

	if (!obj)
		return -ENOMEM;
	meta = json_object_get(obj, "metadata");
	if (!meta && json_object_set_new(obj, "metadata", meta = json_object()) < 0)
		goto oom;
	list = json_object_get(meta, "finalizers");
	if (add) {
		if (!json_is_array(list) &&
		    json_object_set_new(meta, "finalizers", list = json_array()) < 0)
			goto oom;
		if (json_array_append_new(list, json_string(OPERATORD_HIB_FINALIZER)) < 0)
			goto oom;
	} else {
		for (i = json_array_size(list); i-- > 0;)
			if (streq_ptr(json_string_value(json_array_get(list, i)),
				      OPERATORD_HIB_FINALIZER))
				json_array_remove(list, i);
		/* Go's omitempty: an emptied list is left out. */
		if (list && json_array_size(list) == 0)
			json_object_del(meta, "finalizers");
	}
	return plan_obj_update(&s->plan, obj);
oom:
	json_decref(obj);
	return -ENOMEM;
}

static int hib_delete(struct pass *s)
{
	int r;

	/* Without our finalizer the cleanup already ran (or never had to). */
	if (!s->h->has_finalizer)
		return 0;
	if (s->h->vm_name && !vm_held_by_other(s)) {
		r = plan_tag_delete(&s->plan, s->h->vm_name, META_TAG_HIBERNATE, ACT_BEST_EFFORT);
		if (r < 0)
			return r;
	}
	return update_finalizer(s, false);
}

/* ---- status writes ---- */

static bool phase_is(const struct hib *h, const char *phase)
{
	return streq(h->phase, phase);
}

/* The legacy status message of each phase (§2.17); Pending and Failed say why. */
static const char *legacy_message(const char *phase, const char *why)
{
	if (streq(phase, PHASE_HIBERNATING))
		return "Waiting for vk-cocoon to snapshot VM";
	if (streq(phase, PHASE_HIBERNATED))
		return "VM suspended to epoch";
	if (streq(phase, PHASE_WAKING))
		return "Waiting for vk-cocoon to restore VM";
	if (streq(phase, PHASE_ACTIVE))
		return "VM restored and running";
	return why;
}

/* metav1.Condition Ready for a phase. Pending keeps its reason in the message too, since
 * the v1 status has no other place a user could read it. */
static void ready_condition(const char *phase, const char *why, const char **ret_status,
			    const char **ret_reason, const char **ret_message)
{
	if (streq(phase, PHASE_HIBERNATED) || streq(phase, PHASE_ACTIVE)) {
		*ret_status = "True";
		*ret_reason = "Done";
		*ret_message = phase;
	} else if (streq(phase, PHASE_FAILED)) {
		*ret_status = "False";
		*ret_reason = "Failed";
		*ret_message = why;
	} else {
		*ret_status = "False";
		*ret_reason = "Pending";
		*ret_message = streq(phase, PHASE_PENDING) ? why : phase;
	}
}

/* The old conditions with Ready upserted in place (merge patches replace lists whole).
 * Its lastTransitionTime moves only when the status value flips or force says so. */
static json_t *conditions_with_ready(const struct pass *s, const char *phase, const char *why,
				     bool force)
{
	const json_t *old = json_object_get(json_object_get(s->h->obj, "status"), "conditions");
	const char *status, *reason, *message;
	const json_t *old_ready = NULL, *c, *ltt;
	char buf[KUBE_TIME_MAX];
	json_t *list, *ready;
	size_t i;

	ready_condition(phase, why, &status, &reason, &message);
	json_array_foreach (old, i, c)
		if (streq_ptr(json_string_value(json_object_get(c, "type")), "Ready"))
			old_ready = c;
	ltt = json_object_get(old_ready, "lastTransitionTime");
	if (force || !json_is_string(ltt) ||
	    !streq_ptr(json_string_value(json_object_get(old_ready, "status")), status))
		ltt = NULL;
	ready =
	    json_pack("{s:s, s:s, s:I, s:s, s:s, s:s}", "type", "Ready", "status", status,
		      "observedGeneration", (json_int_t)s->h->generation, "lastTransitionTime",
		      ltt ? json_string_value(ltt) : kube_time_format(s->in->now_usec, false, buf),
		      "reason", reason, "message", message);
	list = json_array();
	if (!ready || !list)
		goto oom;
	json_array_foreach (old, i, c)
		if (json_array_append_new(list, c == old_ready ? json_incref(ready)
							       : json_deep_copy(c)) < 0)
			goto oom;
	if (!old_ready && json_array_append(list, ready) < 0)
		goto oom;
	json_decref(ready);
	return list;
oom:
	json_decref(ready);
	json_decref(list);
	return NULL;
}

static json_t *status_v1(const struct pass *s, const char *phase, const char *vm, const char *why,
			 bool force)
{
	json_t *conditions = conditions_with_ready(s, phase, why, force), *status;

	if (!conditions)
		return NULL;
	/* "o" hands the conditions over, on failure too. */
	status = json_pack("{s:s, s:I, s:o}", "phase", phase, "observedGeneration",
			   (json_int_t)s->h->generation, "conditions", conditions);
	if (status && vm && json_object_set_new(status, "vmName", json_string(vm)) < 0) {
		json_decref(status);
		return NULL;
	}
	return status;
}

static const char *old_snapshot_ref(const struct hib *h)
{
	return json_string_value(json_object_get(json_object_get(h->obj, "status"), "snapshotRef"));
}

/* Legacy status.snapshotRef, "<registry>/<vm>:hibernate", while Hibernated (*ret NULL in
 * every other phase). */
static int legacy_snapshot_ref(const struct pass *s, const char *phase, const char *vm, char **ret)
{
	const char *registry = s->in->registry ?: "";

	*ret = NULL;
	if (s->h->api != CS_API_LEGACY || !streq(phase, PHASE_HIBERNATED) || !vm)
		return 0;
	if (asprintf(ret, "%s%s%s:%s", registry, *registry ? "/" : "", vm, META_TAG_HIBERNATE) <
	    0) {
		*ret = NULL;
		return -ENOMEM;
	}
	return 0;
}

static json_t *status_legacy(const struct pass *s, const char *phase, const char *vm,
			     const char *why, const char *ref, bool force)
{
	const char *old_ref = old_snapshot_ref(s->h);
	char buf[KUBE_TIME_MAX];
	json_t *status =
	    json_pack("{s:s, s:s?}", "phase", phase, "message", legacy_message(phase, why));

	if (!status)
		return NULL;
	if ((vm && json_object_set_new(status, "vmName", json_string(vm)) < 0) ||
	    ((force || !phase_is(s->h, phase)) &&
	     json_object_set_new(status, "lastTransitionTime",
				 json_string(kube_time_format(s->in->now_usec, false, buf))) < 0) ||
	    (ref && json_object_set_new(status, "snapshotRef", json_string(ref)) < 0) ||
	    (!ref && old_ref && json_object_set_new(status, "snapshotRef", json_null()) < 0)) {
		json_decref(status);
		return NULL;
	}
	return status;
}

/* setPhase: writes phase, VM name, generation and the phase's message unless all are as
 * stored. Entering Hibernating or Waking from another phase (or with no clock yet) restarts
 * the deadline clock. why: the Pending or Failed message. */
static int set_phase(struct pass *s, const char *phase, const char *vm, const char *why)
{
	const struct hib *h = s->h;
	bool legacy = h->api == CS_API_LEGACY;
	bool force = (streq(phase, PHASE_HIBERNATING) || streq(phase, PHASE_WAKING)) &&
		     (!phase_is(h, phase) || h->ready_ltt_usec == 0);
	const char *status, *reason, *message;
	_cleanup_(freep) char *ref = NULL;
	json_t *st;
	int r;

	r = legacy_snapshot_ref(s, phase, vm, &ref);
	if (r < 0)
		return r;
	ready_condition(phase, why, &status, &reason, &message);
	if (legacy)
		message = legacy_message(phase, why);
	/* The legacy schema has no observedGeneration: the apiserver would prune it, and
	 * comparing against it would rewrite the status on every pass. */
	if (!force && phase_is(h, phase) && streq_ptr(h->vm_name, vm) &&
	    streq_ptr(h->message, message) &&
	    (legacy ? streq_ptr(old_snapshot_ref(h), ref)
		    : h->observed_generation == h->generation))
		return 0;
	st = legacy ? status_legacy(s, phase, vm, why, ref, force)
		    : status_v1(s, phase, vm, why, force);
	if (!st)
		return -ENOMEM;
	return plan_status_patch(&s->plan, json_pack("{s:o}", "status", st));
}

/* Failed with a message; the pass is over. */
static int fail(struct pass *s, const char *vm, const char *why)
{
	return set_phase(s, PHASE_FAILED, vm, why);
}

/* Pending with a message, polled; never over a Hibernated or Waking status, whose
 * progress a missing pod or annotation (a cache lag, a pod being recreated) must not
 * erase. */
static int pending(struct pass *s, const char *fmt, ...) _printf_(2, 3);
static int pending(struct pass *s, const char *fmt, ...)
{
	_cleanup_(freep) char *why = NULL;
	va_list ap;
	int r;

	if (!phase_is(s->h, PHASE_HIBERNATED) && !phase_is(s->h, PHASE_WAKING)) {
		va_start(ap, fmt);
		r = vasprintf(&why, fmt, ap);
		va_end(ap);
		if (r < 0) {
			why = NULL;
			return -ENOMEM;
		}
		r = set_phase(s, PHASE_PENDING, s->h->vm_name, why);
		if (r < 0)
			return r;
	}
	return plan_requeue_after(&s->plan, OPERATORD_POLL_USEC);
}

/* ---- phase exits (§2.15) ---- */

/* The exit of the current Ready lastTransitionTime has not been reported yet. */
static bool exit_unseen(const struct pass *s)
{
	return s->h->ready_ltt_usec == 0 || s->in->exit_seen_ltt_usec != s->h->ready_ltt_usec;
}

/* Observes the phase duration (only when the pass leaves the phase the histogram times)
 * and marks this Ready lastTransitionTime as reported. */
static int exit_observe(struct pass *s, const char *timed_phase, const char *metric,
			const char *result)
{
	uint64_t since = s->h->ready_ltt_usec;
	int r;

	if (phase_is(s->h, timed_phase)) {
		double seconds =
		    s->in->now_usec > since ? (double)(s->in->now_usec - since) / USEC_PER_SEC : 0;

		r = plan_observe(&s->plan, metric, seconds, "result", result, NULL);
		if (r < 0)
			return r;
	}
	s->plan.mark_exit_ltt_usec = since;
	return 0;
}

/* In the timed phase for longer than its deadline (measured from Ready's LTT, which
 * entering the phase reset). */
static bool overdue(const struct pass *s, const char *timed_phase, uint64_t timeout)
{
	uint64_t since = s->h->ready_ltt_usec;

	return phase_is(s->h, timed_phase) && since > 0 && s->in->now_usec > since &&
	       s->in->now_usec - since > timeout;
}

static int retry_after_failure(struct pass *s, const char *what)
{
	if (!phase_is(s->h, PHASE_FAILED))
		return 0;
	return plan_event(&s->plan, "Normal", "RetryRequested", "retrying %s after prior failure",
			  what);
}

/* ---- Hibernate ---- */

/* The completion gate: vk hibernated the VM for the pod's current generation (not an
 * older one whose snapshot the tag may hold), and the registry has the tag. */
static int hibernate_fact(struct pass *s, enum fact *ret)
{
	const struct cs_pod *pod = &s->pod;
	const char *error = NULL;
	enum fact f;

	*ret = FACT_ABSENT;
	if (!streq_ptr(pod->lifecycle_state, META_LIFECYCLE_HIBERNATED) ||
	    pod->lifecycle_observed_generation < pod->generation_stamp)
		return 0;
	f = facts_get(s->in->facts, pod->vm_name, &error);
	if (f == FACT_UNKNOWN)
		return plan_need_probe(&s->plan, pod->vm_name);
	/* Past the deadline an unreachable registry no longer holds the timeout back. */
	if (f == FACT_ERROR && !overdue(s, PHASE_HIBERNATING, OPERATORD_HIBERNATE_TIMEOUT))
		return plan_error(&s->plan, "checking %s:%s in the registry: %s", pod->vm_name,
				  META_TAG_HIBERNATE, error);
	*ret = f;
	return 0;
}

static int hib_hibernate(struct pass *s)
{
	const char *vm = s->pod.vm_name;
	enum fact f;
	int r;

	r = hibernate_fact(s, &f);
	if (r < 0 || s->plan.outcome == PLAN_NEED_FACTS || s->plan.outcome == PLAN_ERROR)
		return r;
	if ((r = retry_after_failure(s, "Hibernate")) < 0)
		return r;
	if (!s->pod.hibernate &&
	    (r = plan_pod_annotate(&s->plan, s->pod.name, META_ANN_HIBERNATE, "true", 0)) < 0)
		return r;
	if (f == FACT_PRESENT) {
		if (!phase_is(s->h, PHASE_HIBERNATED) && exit_unseen(s)) {
			if ((r = exit_observe(s, PHASE_HIBERNATING, METRIC_HIBERNATE, "ok")) < 0 ||
			    (r = plan_event(&s->plan, "Normal", "Hibernated",
					    "snapshot %s pushed to the registry", vm)) < 0)
				return r;
		}
		return set_phase(s, PHASE_HIBERNATED, vm, NULL);
	}
	if (overdue(s, PHASE_HIBERNATING, OPERATORD_HIBERNATE_TIMEOUT)) {
		if (exit_unseen(s) &&
		    ((r = exit_observe(s, PHASE_HIBERNATING, METRIC_HIBERNATE, "timeout")) < 0 ||
		     (r = plan_event(&s->plan, "Warning", "HibernateTimedOut",
				     "snapshot %s not confirmed in the registry within 3m0s", vm)) <
			 0))
			return r;
		return fail(s, vm, "hibernate not confirmed within 3m0s");
	}
	r = set_phase(s, PHASE_HIBERNATING, vm, NULL);
	return r < 0 ? r : plan_requeue_after(&s->plan, OPERATORD_POLL_USEC);
}

/* ---- Wake ---- */

/* Waking means removing the hibernate annotation (§1.4), under both names: vkd reads the
 * legacy cocoon.cis/hibernate when the canonical key is absent (CONTRACT.md §1). */
static int wake_unannotate(struct pass *s)
{
	const json_t *ann = json_object_get(json_object_get(s->in->pod, "metadata"), "annotations");
	const json_t *legacy = json_object_get(ann, META_LEGACY_ANN_HIBERNATE);
	json_t *patch;

	if (!s->pod.hibernate && !streq_ptr(json_string_value(legacy), "true"))
		return 0;
	patch = json_pack("{s:{s:{s:n}}}", "metadata", "annotations", META_ANN_HIBERNATE);
	if (patch && legacy &&
	    json_object_set_new(json_object_get(json_object_get(patch, "metadata"), "annotations"),
				META_LEGACY_ANN_HIBERNATE, json_null()) < 0) {
		json_decref(patch);
		return -ENOMEM;
	}
	return plan_pod_patch(&s->plan, s->pod.name, patch, 0);
}

static int hib_wake(struct pass *s)
{
	const char *vm = s->pod.vm_name;
	int r;

	/* A wake completed for this generation is history: a hibernate annotation set since
	 * (a suspend of the whole CocoonSet) is a newer intent, not ours to undo. The original
	 * undid it on every pod event, and the suspend re-set it: two writers in a loop. */
	if (phase_is(s->h, PHASE_ACTIVE) && s->h->desire == HIB_DESIRE_WAKE &&
	    (s->h->api == CS_API_LEGACY || s->h->observed_generation == s->h->generation))
		return 0;
	if ((r = retry_after_failure(s, "Wake")) < 0)
		return r;
	/* Before the fast path, so a pod found running still loses the annotation (PR #10). */
	if ((r = wake_unannotate(s)) < 0)
		return r;
	if (s->pod.vm_live) {
		if (!phase_is(s->h, PHASE_ACTIVE)) {
			/* The VM runs again: its hibernation snapshot is spent. */
			r = plan_tag_delete(&s->plan, vm, META_TAG_HIBERNATE, ACT_BEST_EFFORT);
			if (r < 0)
				return r;
			if (exit_unseen(s) &&
			    ((r = exit_observe(s, PHASE_WAKING, METRIC_WAKE, "ok")) < 0 ||
			     (r = plan_event(&s->plan, "Normal", "WokenActive",
					     "pod %s/%s is running", s->h->ns, s->pod.name)) < 0))
				return r;
		}
		return set_phase(s, PHASE_ACTIVE, vm, NULL);
	}
	if (overdue(s, PHASE_WAKING, OPERATORD_WAKE_TIMEOUT)) {
		if (exit_unseen(s) &&
		    ((r = exit_observe(s, PHASE_WAKING, METRIC_WAKE, "timeout")) < 0 ||
		     (r = plan_event(
			  &s->plan, "Warning", "WakeTimedOut",
			  "vk-cocoon did not report the container running within 5m0s")) < 0))
			return r;
		return fail(
		    s, vm,
		    "wake timed out after 5m0s; vk-cocoon never reported the container running");
	}
	r = set_phase(s, PHASE_WAKING, vm, NULL);
	return r < 0 ? r : plan_requeue_after(&s->plan, OPERATORD_POLL_USEC);
}

/* ---- the pass ---- */

static int hib_pass(struct pass *s)
{
	const struct hib *h = s->h;
	_cleanup_(freep) char *why = NULL;
	int r;

	if (h->deleting)
		return hib_delete(s);
	if (!h->has_finalizer) {
		r = update_finalizer(s, true);
		return r < 0 ? r : plan_requeue_after(&s->plan, 0);
	}
	if (isempty(h->pod_name))
		return fail(s, h->vm_name,
			    h->api == CS_API_LEGACY ? "spec.podName is required"
						    : "spec.podRef.name is required");
	if (!s->in->pod)
		return pending(s, "pod %s/%s not yet present", h->ns, h->pod_name);
	if (cs_pod_from_json(s->in->pod, &s->pod) < 0)
		return plan_error(&s->plan, "pod %s/%s: not a pod object (no metadata)", h->ns,
				  h->pod_name);
	if (!s->pod.vm_name)
		return pending(s, "pod %s/%s has no " META_ANN_VM_NAME " annotation yet", h->ns,
			       h->pod_name);
	/* A reverse desire first finishes the transition in flight: completing the other
	 * one on a stale state is how a wake once "completed" on a VM still hibernating. */
	switch (h->desire) {
	case HIB_DESIRE_HIBERNATE:
		return phase_is(h, PHASE_WAKING) ? hib_wake(s) : hib_hibernate(s);
	case HIB_DESIRE_WAKE:
		return phase_is(h, PHASE_HIBERNATING) ? hib_hibernate(s) : hib_wake(s);
	case HIB_DESIRE_UNKNOWN:
	default:
		if (asprintf(&why, "unknown desire \"%s\"", h->desire_raw) < 0) {
			why = NULL;
			return -ENOMEM;
		}
		return fail(s, s->pod.vm_name, why);
	}
}

int hib_plan(const struct hib_inputs *in, struct plan *ret)
{
	struct pass s = { .in = in, .h = in->hib };
	int r;

	r = hib_pass(&s);
	if (r < 0) {
		plan_done(&s.plan);
		return r;
	}
	*ret = s.plan;
	return 0;
}
