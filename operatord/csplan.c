/* One CocoonSet reconcile pass as a plan (operator-webhook.md §2.3, in its order): the
 * delete flow and finalizer (§2.13), generation stamps, the failed-main gate, suspend with
 * the completion gate (§2.9), unsuspend, main drift and creation with restore intent
 * (§2.12), sub-agents with rebuild backoff and dead-letter (§2.6), toolboxes (§2.7) and
 * the status write (§2.8).
 *
 * Pure: reads the CocoonSet, its pods and the namespace's hibernation CRs from the caller
 * (the informer caches), and registry facts gathered by the executor. A fact it lacks is
 * requested with plan_need_probe(); the pass then goes on treating it as absent only to
 * collect every probe it needs, and the executor throws those actions away and plans again
 * once the facts are in.
 *
 * Not here (CONTRACT.md §3: later work): hibernatePolicy=release (suspend keeps the pods,
 * as retain does) and cross-node migration (spec.nodeName pins a new main; an existing main
 * is not moved). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cocoon/meta.h"
#include "cocoon/strv.h"
#include "operatord.h"

struct pass {
	const struct cs_inputs *in;
	const struct cs *cs;
	struct cs_pods pods;
	struct plan *p;
	char **restore_intent; /* podRef names whose CR is Hibernated or Waking */
	bool restore_intent_read;
};

static const char *json_str(const json_t *o, const char *k)
{
	const json_t *v = json_object_get(o, k);
	return json_is_string(v) ? json_string_value(v) : NULL;
}

/* ---- the namespace's hibernation CRs (both kinds) ---- */

/* Calls fn for each CR that decodes; a CR that does not is skipped (its own reconciler
 * reports it). */
static int each_hibernation(const struct pass *s, int (*fn)(const struct hib *h, void *u), void *u)
{
	size_t i;
	json_t *o;

	json_array_foreach(s->in->hibernations, i, o) {
		_cleanup_(hib_freep) struct hib *h = NULL;
		int r;

		if (hib_parse(o, &h, NULL) < 0)
			continue;
		r = fn(h, u);
		if (r != 0)
			return r;
	}
	return 0;
}

static int collect_restore_intent(const struct hib *h, void *u)
{
	char ***l = u;

	if (!streq_ptr(h->phase, "Hibernated") && !streq_ptr(h->phase, "Waking"))
		return 0;
	if (!h->pod_name || !*h->pod_name || strv_contains(*l, h->pod_name))
		return 0;
	return strv_push(l, h->pod_name);
}

/* §2.12, read at most once per pass. */
static int restore_intent(struct pass *s, const char *pod_name, bool *ret)
{
	int r;

	if (!s->restore_intent_read) {
		r = each_hibernation(s, collect_restore_intent, &s->restore_intent);
		if (r < 0)
			return r;
		s->restore_intent_read = true;
	}
	*ret = strv_contains(s->restore_intent, pod_name);
	return 0;
}

/* Whether the pod about to be created restores from <vm>:hibernate. intent: restore intent
 * holds. A probe error fails closed (the pass errors rather than fresh-booting over a
 * snapshot). Returns 1 when the pass must stop (error recorded), 0 otherwise. */
static int restore_flag(struct pass *s, const char *vm_name, bool intent, bool *ret)
{
	const char *error = NULL;

	*ret = false;
	if (!intent)
		return 0;
	switch (facts_get(s->in->facts, vm_name, &error)) {
	case FACT_UNKNOWN:
		return plan_need_probe(s->p, vm_name);
	case FACT_PRESENT:
		*ret = true;
		return 0;
	case FACT_ABSENT:
		return 0;
	case FACT_ERROR:
	default:
		plan_error(s->p, "probe %s:%s: %s", vm_name, META_TAG_HIBERNATE,
			   error ? error : "unknown error");
		return 1;
	}
}

/* ---- status ---- */

static int write_status(struct pass *s, const char *phase)
{
	_cleanup_(json_decrefp) json_t *st = NULL, *patch = NULL;
	int r;

	r = cs_status_build(s->cs, &s->pods, phase, s->in->now_usec, &st);
	if (r < 0)
		return r;
	r = cs_status_patch(s->cs, st, &patch);
	if (r < 0 || !patch)
		return r;
	return plan_status_patch(s->p, TAKE_PTR(patch));
}

static const char *status_phase(const struct cs *cs)
{
	const char *p = cs->status ? json_str(cs->status, "phase") : NULL;
	return p ? p : "";
}

/* ---- §2.13 deletion ---- */

static int stash_add(char ***l, const char *name)
{
	if (!name || !*name || strv_contains(*l, name))
		return 0;
	return strv_push(l, name);
}

static int stash_from_status(char ***l, const json_t *status, const char *list)
{
	size_t i;
	json_t *e;
	int r;

	json_array_foreach(json_object_get(status, list), i, e) {
		r = stash_add(l, json_str(e, "vmName"));
		if (r < 0)
			return r;
	}
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* *ret_patched: the annotation changed (the object's resourceVersion will move). */
static int stash_vm_names(struct pass *s, char ***ret, bool *ret_patched)
{
	_cleanup_(strv_freep) char **l = NULL, **old = NULL;
	_cleanup_(freep) char *joined = NULL;
	const char *prev = s->cs->annotations ?
		json_str(s->cs->annotations, META_ANN_DELETE_VM_NAMES) : NULL;
	int r;

	if (s->cs->status) {
		r = stash_from_status(&l, s->cs->status, "agents");
		if (r >= 0)
			r = stash_from_status(&l, s->cs->status, "toolboxes");
		if (r < 0)
			return r;
	}
	if (prev && *prev) {
		r = strv_split(prev, ',', &old);
		if (r < 0)
			return r;
		for (char **n = old; *n; n++)
			if ((r = stash_add(&l, *n)) < 0)
				return r;
	}
	for (size_t i = 0; i < s->pods.n_all; i++)
		if ((r = stash_add(&l, s->pods.all[i].vm_name)) < 0)
			return r;
	if (l)
		qsort(l, strv_length(l), sizeof(char *), cmp_str);
	r = strv_join(l, ",", &joined);
	if (r < 0)
		return r;
	*ret_patched = *joined && !streq_ptr(prev, joined);
	if (*ret_patched) {
		r = plan_obj_annotate(s->p, META_ANN_DELETE_VM_NAMES, joined);
		if (r < 0)
			return r;
	}
	*ret = TAKE_PTR(l);
	return 0;
}

/* Whether deleting the CocoonSet also drops <vm>:latest: only when the policy says no
 * :latest was pushed for it (never; main-only for everyone but the main). */
static bool drop_latest(const struct cs *cs, const char *vm_name)
{
	if (strcmp(cs->snapshot_policy, "never") == 0)
		return true;
	if (strcmp(cs->snapshot_policy, "main-only") == 0)
		return cs_vm_name_slot(cs, vm_name) != 0;
	return false;
}

static int remove_finalizer(struct pass *s, json_t *obj, const char *finalizer)
{
	_cleanup_(json_decrefp) json_t *copy = json_deep_copy(obj);
	json_t *fin, *kept;
	size_t i;
	json_t *f;

	if (!copy)
		return -ENOMEM;
	kept = json_array();
	if (!kept)
		return -ENOMEM;
	fin = json_object_get(json_object_get(copy, "metadata"), "finalizers");
	json_array_foreach(fin, i, f)
		if (!json_is_string(f) || strcmp(json_string_value(f), finalizer) != 0)
			json_array_append(kept, f);
	if (json_object_set_new(json_object_get(copy, "metadata"), "finalizers", kept) < 0)
		return -ENOMEM;
	return plan_obj_update(s->p, TAKE_PTR(copy));
}

static int plan_delete(struct pass *s)
{
	_cleanup_(strv_freep) char **names = NULL;
	bool patched = false;
	int r;

	if (!s->cs->has_finalizer)
		return 0; /* not ours to hold up */
	r = stash_vm_names(s, &names, &patched);
	if (r < 0)
		return r;
	for (size_t i = 0; i < s->pods.n_all; i++) {
		r = plan_pod_delete(s->p, s->pods.all[i].name, ACT_IGNORE_NOT_FOUND);
		if (r < 0)
			return r;
	}
	/* vk-cocoon may still be pushing snapshots while pods terminate (1 s grace): tags are
	 * dropped only once every pod is gone (§2.13 step 4). */
	if (s->pods.n_all > 0 || s->pods.n_deleting > 0)
		return plan_requeue_after(s->p, OPERATORD_POLL_USEC);
	/* The finalizer update is conditional on the resourceVersion we read, which the
	 * annotation patch moves: finish on the next pass. */
	if (patched)
		return plan_requeue_after(s->p, 0);
	for (char **n = names; n && *n; n++) {
		r = plan_tag_delete(s->p, *n, META_TAG_HIBERNATE, ACT_BEST_EFFORT);
		if (r >= 0 && drop_latest(s->cs, *n))
			r = plan_tag_delete(s->p, *n, META_TAG_LATEST, ACT_BEST_EFFORT);
		if (r < 0)
			return r;
	}
	return remove_finalizer(s, s->cs->obj, OPERATORD_FINALIZER);
}

/* ---- §2.3 step 6 and 7 ---- */

static int stamp_generations(struct pass *s)
{
	char gen[24];
	int r;

	snprintf(gen, sizeof(gen), "%lld", (long long)s->cs->generation);
	for (size_t i = 0; i < s->pods.n_all; i++) {
		const struct cs_pod *pod = &s->pods.all[i];

		if (pod->generation_stamp == s->cs->generation)
			continue;
		r = plan_pod_annotate(s->p, pod->name, META_ANN_GENERATION, gen, ACT_IGNORE_NOT_FOUND);
		if (r < 0)
			return r;
	}
	return 0;
}

static int delete_drifted(struct pass *s, const struct cs_pod *pod, const struct cs_toolbox *tb,
			  bool *ret)
{
	_cleanup_(freep) char *why = NULL;
	bool drifted = false;
	int r;

	r = pod_drifted(s->cs, pod, tb, &drifted, &why);
	if (r < 0)
		return r;
	*ret = drifted;
	if (!drifted)
		return 0;
	r = plan_event(s->p, "Normal", "PodDrifted", "pod %s: %s; recreating", pod->name,
		       why ? why : "spec changed");
	if (r < 0)
		return r;
	return plan_pod_delete(s->p, pod->name, ACT_IGNORE_NOT_FOUND);
}

/* Returns 1 when the pass ends here. */
static int failed_main(struct pass *s)
{
	const struct cs_pod *m = s->pods.main;
	const char *reason, *what;
	bool drifted;
	int r;

	if (!m)
		return 0;
	if (!(m->lifecycle_state && strcmp(m->lifecycle_state, META_LIFECYCLE_FAILED) == 0) &&
	    strcmp(m->phase, "Failed") != 0) {
		if (strcmp(status_phase(s->cs), "Failed") == 0 && m->ready) {
			r = plan_event(s->p, "Normal", "RecoveredFromFailure",
				       "main pod %s/%s is Ready again", s->cs->ns, m->name);
			if (r < 0)
				return r;
		}
		return 0;
	}
	r = delete_drifted(s, m, NULL, &drifted);
	if (r < 0)
		return r;
	if (drifted)
		return plan_requeue_after(s->p, 0) < 0 ? -ENOMEM : 1;

	if (m->lifecycle_state && strcmp(m->lifecycle_state, META_LIFECYCLE_FAILED) == 0) {
		reason = "PodLifecycleFailed";
		what = m->lifecycle_message && *m->lifecycle_message ? m->lifecycle_message :
								       m->phase;
		r = plan_count(s->p, "lifecycle_state_failed_observed_total", 1, "phase",
			       *status_phase(s->cs) ? status_phase(s->cs) : "Pending", NULL);
		if (r < 0)
			return r;
	} else {
		reason = "MainAgentFailed";
		what = m->phase;
	}
	r = plan_event(s->p, "Warning", reason, "main pod %s/%s: %s", s->cs->ns, m->name, what);
	if (r >= 0)
		r = write_status(s, "Failed");
	return r < 0 ? r : 1;
}

/* A pod of that name is still terminating (its node has not finished it): a create now
 * could only fail with AlreadyExists. True after noting the wait. */
static bool held_by_terminating(struct pass *s, const char *name)
{
	size_t i;
	json_t *pod;

	json_array_foreach(s->in->pods, i, pod) {
		const json_t *m = json_object_get(pod, "metadata");

		if (streq_ptr(json_string_value(json_object_get(m, "name")), name) &&
		    json_object_get(m, "deletionTimestamp")) {
			(void)plan_note(s->p, "waiting for the old pod %s to finish terminating", name);
			return true;
		}
	}
	return false;
}

/* ---- main creation (§2.3 step 13, §2.9 step 1) ---- */

static int create_main(struct pass *s, bool force_intent, unsigned flags)
{
	_cleanup_(freep) char *vm = cs_agent_vm_name(s->cs, 0), *name = cs_pod_name(s->cs, "0");
	_cleanup_(json_decrefp) json_t *pod = NULL;
	struct pod_build_options o = { .slot = 0 };
	bool intent = force_intent;
	int r;

	if (!vm || !name)
		return -ENOMEM;
	if (held_by_terminating(s, name))
		return plan_requeue_after(s->p, OPERATORD_POLL_USEC) < 0 ? -ENOMEM : 1;
	if (!intent) {
		r = restore_intent(s, name, &intent);
		if (r < 0)
			return r;
	}
	r = restore_flag(s, vm, intent, &o.restore_from_hibernate);
	if (r != 0)
		return r;
	r = pod_build(s->cs, &o, &pod);
	if (r < 0)
		return r;
	return plan_pod_create(s->p, TAKE_PTR(pod), flags);
}

/* ---- §2.9 suspend (retain) ---- */

/* The completion gate for one pod: 1 passed, 0 not yet (with a note saying why); a probe
 * error ends the pass. */
static int suspend_gate(struct pass *s, const struct cs_pod *pod, int *ret)
{
	const char *error = NULL;

	*ret = 0;
	if (!pod->managed || pod->terminal) {
		*ret = 1;
		return 0;
	}
	if (!pod->vm_name || !*pod->vm_name)
		return plan_note(s->p, "suspend waits for pod %s: no VM name yet", pod->name);
	if (!streq_ptr(pod->lifecycle_state, META_LIFECYCLE_HIBERNATED))
		return plan_note(s->p, "suspend waits for pod %s: lifecycle-state %s, want %s",
				 pod->name, pod->lifecycle_state ?: "(unset)",
				 META_LIFECYCLE_HIBERNATED);
	if (pod->lifecycle_observed_generation < s->cs->generation)
		return plan_note(s->p,
				 "suspend waits for pod %s: lifecycle observed generation %lld, "
				 "want >= %lld", pod->name,
				 (long long)pod->lifecycle_observed_generation,
				 (long long)s->cs->generation);
	switch (facts_get(s->in->facts, pod->vm_name, &error)) {
	case FACT_UNKNOWN:
		return plan_need_probe(s->p, pod->vm_name);
	case FACT_PRESENT:
		*ret = 1;
		return 0;
	case FACT_ABSENT:
		return plan_note(s->p, "suspend waits for pod %s: %s:%s not in the registry yet",
				 pod->name, pod->vm_name, META_TAG_HIBERNATE);
	case FACT_ERROR:
	default:
		return plan_error(s->p, "probe %s:%s: %s", pod->vm_name, META_TAG_HIBERNATE,
				  error ? error : "unknown error");
	}
}

static int plan_suspend(struct pass *s)
{
	bool done = true;
	int r;

	if (!s->pods.main) {
		/* In this path AlreadyExists is an error (§2.9 step 1). */
		r = create_main(s, true, 0);
		if (r < 0)
			return r;
		return r > 0 ? 0 : plan_requeue_after(s->p, 0);
	}
	for (size_t i = 0; i < s->pods.n_all; i++) {
		const struct cs_pod *pod = &s->pods.all[i];

		if (pod->hibernate)
			continue;
		r = plan_pod_annotate(s->p, pod->name, META_ANN_HIBERNATE, "true", ACT_IGNORE_NOT_FOUND);
		if (r < 0)
			return r;
	}
	for (size_t i = 0; i < s->pods.n_all; i++) {
		int passed;

		r = suspend_gate(s, &s->pods.all[i], &passed);
		if (r < 0)
			return r;
		if (s->p->outcome == PLAN_ERROR)
			return 0;
		if (!passed)
			done = false;
	}
	r = write_status(s, done ? "Suspended" : "Suspending");
	if (r < 0 || done)
		return r;
	return plan_requeue_after(s->p, OPERATORD_POLL_USEC);
}

/* ---- §2.3 step 11 unsuspend ---- */

struct held_ctx {
	const char *pod;
	bool held;
};

static int hibernation_holds(const struct hib *h, void *u)
{
	struct held_ctx *c = u;

	if (!streq_ptr(h->pod_name, c->pod) || h->deleting)
		return 0;
	if (h->desire == HIB_DESIRE_HIBERNATE || streq_ptr(h->phase, "Hibernating")) {
		c->held = true;
		return 1;
	}
	return 0;
}

static int plan_unsuspend(struct pass *s)
{
	int r;

	for (size_t i = 0; i < s->pods.n_all; i++) {
		const struct cs_pod *pod = &s->pods.all[i];
		struct held_ctx c = { .pod = pod->name };

		if (!pod->hibernate)
			continue;
		r = each_hibernation(s, hibernation_holds, &c);
		if (r < 0)
			return r;
		if (c.held)
			continue; /* a CocoonHibernation owns this pod's sleep */
		r = plan_pod_annotate(s->p, pod->name, META_ANN_HIBERNATE, NULL, ACT_IGNORE_NOT_FOUND);
		if (r < 0)
			return r;
	}
	return 0;
}

/* ---- §2.6 sub-agents ---- */

struct subs_ctx {
	struct rebuild_history history;
	bool history_changed;
	bool changed;              /* created or deleted something */
	uint64_t requeue_after;    /* smallest pending backoff; 0: none */
};

static void subs_wait(struct subs_ctx *c, uint64_t usec)
{
	if (c->requeue_after == 0 || usec < c->requeue_after)
		c->requeue_after = usec;
}

static int persist_history(struct pass *s, struct subs_ctx *c)
{
	_cleanup_(freep) char *v = NULL;
	int r;

	r = rebuild_history_format(&c->history, s->cs->agent.replicas, &v);
	if (r < 0)
		return r;
	return plan_obj_annotate(s->p, META_ANN_REBUILD_HISTORY, v);
}

static int rebuild_terminal(struct pass *s, struct subs_ctx *c, const struct cs_pod *pod)
{
	const struct rebuild_entry *e = rebuild_history_get(&c->history, pod->slot);
	unsigned count = e ? e->count : 0;
	uint64_t last = e ? e->last_deleted_usec : 0, wait, now = s->in->now_usec;
	int r;

	if (count >= OPERATORD_REBUILD_BUDGET) {
		r = plan_pod_annotate(s->p, pod->name, META_ANN_DEAD_LETTER, "true", ACT_IGNORE_NOT_FOUND);
		if (r >= 0)
			r = plan_count(s->p, "subagent_dead_letter_total", 1, "namespace", s->cs->ns,
				       "cocoonset", s->cs->name, NULL);
		if (r >= 0)
			r = plan_event(s->p, "Warning", "SubAgentDeadLetter",
				       "slot %d exhausted %d rebuilds; pod %s left in dead-letter",
				       pod->slot, OPERATORD_REBUILD_BUDGET, pod->name);
		return r;
	}
	wait = rebuild_backoff_usec(count);
	if (last + wait > now) {
		subs_wait(c, last + wait - now);
		return 0;
	}
	/* Persisted before the delete, so a crash between the two cannot grant a free retry. */
	r = rebuild_history_set(&c->history, pod->slot, count + 1, now);
	if (r >= 0)
		r = persist_history(s, c);
	if (r >= 0)
		r = plan_pod_delete(s->p, pod->name, ACT_IGNORE_NOT_FOUND);
	if (r >= 0)
		r = plan_count(s->p, "subagent_rebuild_total", 1, "namespace", s->cs->ns,
			       "cocoonset", s->cs->name, NULL);
	if (r >= 0)
		r = plan_event(s->p, "Normal", "SubAgentRebuilding", "slot %d attempt %u/%d",
			       pod->slot, count + 1, OPERATORD_REBUILD_BUDGET);
	c->changed = true;
	return r;
}

static int triage_sub(struct pass *s, struct subs_ctx *c, const struct cs_pod *pod)
{
	bool drifted = false;
	int r;

	if (pod->dead_letter) {
		r = pod_drifted(s->cs, pod, NULL, &drifted, NULL);
		if (r < 0 || !drifted)
			return r;
		/* The spec changed under a dead-lettered slot: a fresh budget for the new spec. */
		rebuild_history_drop(&c->history, pod->slot);
		r = persist_history(s, c);
		if (r >= 0)
			r = plan_pod_delete(s->p, pod->name, ACT_IGNORE_NOT_FOUND);
		c->changed = true;
		return r;
	}
	if (pod->terminal)
		return rebuild_terminal(s, c, pod);
	r = delete_drifted(s, pod, NULL, &drifted);
	if (drifted)
		c->changed = true;
	return r;
}

static int create_sub(struct pass *s, int slot)
{
	_cleanup_(freep) char *vm = cs_agent_vm_name(s->cs, slot), *name = NULL;
	_cleanup_(json_decrefp) json_t *pod = NULL;
	struct pod_build_options o = {
		.slot = slot,
		.fork_from = s->pods.main->vm_name,
		.node_name = s->pods.main->node_name,
	};
	char suffix[16];
	bool intent;
	int r;

	snprintf(suffix, sizeof(suffix), "%d", slot);
	name = cs_pod_name(s->cs, suffix);
	if (!vm || !name)
		return -ENOMEM;
	r = restore_intent(s, name, &intent);
	if (r < 0)
		return r;
	r = restore_flag(s, vm, intent, &o.restore_from_hibernate);
	if (r != 0)
		return r;
	r = pod_build(s->cs, &o, &pod);
	if (r < 0)
		return r;
	return plan_pod_create(s->p, TAKE_PTR(pod), ACT_IGNORE_EXISTS | ACT_PARALLEL);
}

static int ensure_subs(struct pass *s, struct subs_ctx *c)
{
	const char *hist = s->cs->annotations ?
		json_str(s->cs->annotations, META_ANN_REBUILD_HISTORY) : NULL;
	int r;

	r = rebuild_history_parse(hist, &c->history);
	if (r < 0)
		return r;
	for (int slot = 1; slot <= s->cs->agent.replicas; slot++) {
		const struct cs_pod *pod = cs_pods_sub(&s->pods, slot);

		r = pod ? triage_sub(s, c, pod) : 0;
		if (r != 0)
			return r;
	}
	for (int slot = 1; slot <= s->cs->agent.replicas; slot++) {
		char suffix[16];
		_cleanup_(freep) char *name = NULL;

		if (cs_pods_sub(&s->pods, slot))
			continue;
		snprintf(suffix, sizeof(suffix), "%d", slot);
		name = cs_pod_name(s->cs, suffix);
		if (!name)
			return -ENOMEM;
		if (held_by_terminating(s, name)) {
			subs_wait(c, OPERATORD_POLL_USEC);
			continue;
		}
		r = create_sub(s, slot);
		if (r != 0)
			return r;
		c->changed = true;
	}
	for (size_t i = 0; i < s->pods.n_sub; i++) { /* ascending slots */
		const struct cs_pod *pod = s->pods.sub[i];

		if (pod->slot <= s->cs->agent.replicas)
			continue;
		r = plan_pod_delete(s->p, pod->name, ACT_IGNORE_NOT_FOUND);
		if (r < 0)
			return r;
		c->changed = true;
	}
	return 0;
}

/* ---- §2.7 toolboxes ---- */

static bool all_digits(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (*s < '0' || *s > '9')
			return false;
	return true;
}

static int check_toolbox_names(struct pass *s)
{
	for (size_t i = 0; i < s->cs->n_toolboxes; i++) {
		const char *n = s->cs->toolboxes[i].name;

		for (size_t j = 0; j < i; j++)
			if (strcmp(s->cs->toolboxes[j].name, n) == 0)
				return plan_error(s->p, "duplicate toolbox name \"%s\" in spec", n) < 0 ?
					       -ENOMEM : 1;
		if (all_digits(n))
			return plan_error(s->p,
					  "toolbox name \"%s\" must not be an integer: collides with "
					  "agent slot pod naming", n) < 0 ? -ENOMEM : 1;
	}
	return 0;
}

static int ensure_toolbox(struct pass *s, const struct cs_toolbox *tb, struct subs_ctx *c)
{
	_cleanup_(freep) char *name = cs_pod_name(s->cs, tb->name);
	_cleanup_(json_decrefp) json_t *pod = NULL;
	struct pod_build_options o = { .slot = -1, .toolbox = tb };
	_cleanup_(freep) char *vm = NULL;
	const struct cs_pod *have;
	bool intent = false, drifted = false;
	int r;

	if (!name)
		return -ENOMEM;
	have = cs_pods_toolbox(&s->pods, tb->name);
	if (!have && cs_pods_by_name(&s->pods, name))
		return plan_error(s->p, "create toolbox %s: name collision with existing pod %s",
				  tb->name, name) < 0 ? -ENOMEM : 1;
	if (have) {
		if (have->terminal) {
			c->changed = true;
			return plan_pod_delete(s->p, have->name, ACT_IGNORE_NOT_FOUND);
		}
		r = delete_drifted(s, have, tb, &drifted);
		if (drifted)
			c->changed = true;
		return r;
	}
	if (held_by_terminating(s, name)) {
		subs_wait(c, OPERATORD_POLL_USEC);
		return 0;
	}
	r = meta_vm_name_for_pod(s->cs->ns, name, &vm); /* the name pod_build gives it */
	if (r < 0)
		return r;
	r = restore_intent(s, name, &intent);
	if (r < 0)
		return r;
	r = restore_flag(s, vm, intent, &o.restore_from_hibernate);
	if (r != 0)
		return r;
	r = pod_build(s->cs, &o, &pod);
	if (r < 0)
		return r;
	c->changed = true;
	/* AlreadyExists: the old pod is still terminating, or the cache has not caught up;
	 * look again after the poll (an owned pod of another role is refused above). */
	return plan_pod_create(s->p, TAKE_PTR(pod), ACT_EXISTS_REQUEUE);
}

static int ensure_toolboxes(struct pass *s, struct subs_ctx *c)
{
	int r;

	r = check_toolbox_names(s);
	if (r != 0)
		return r;
	for (size_t i = 0; i < s->cs->n_toolboxes; i++) {
		r = ensure_toolbox(s, &s->cs->toolboxes[i], c);
		if (r != 0)
			return r;
	}
	for (size_t i = 0; i < s->pods.n_toolboxes; i++) { /* sorted by name */
		const struct cs_pod *pod = s->pods.toolboxes[i];

		if (cs_toolbox_find(s->cs, pod->toolbox))
			continue;
		r = plan_pod_delete(s->p, pod->name, ACT_IGNORE_NOT_FOUND);
		if (r < 0)
			return r;
		c->changed = true;
	}
	return 0;
}

/* ---- the pass ---- */

static int plan_running(struct pass *s)
{
	struct subs_ctx c = {};
	bool drifted = false;
	int r;

	r = plan_unsuspend(s);
	if (r < 0)
		return r;
	if (s->pods.main) {
		r = delete_drifted(s, s->pods.main, NULL, &drifted);
		if (r < 0 || drifted)
			return r < 0 ? r : plan_requeue_after(s->p, 0);
	} else {
		/* Waking from a suspend: the main's snapshot is in the registry (§2.10's wake
		 * probes whatever the policy), so a main recreated now must restore from it. */
		const char *ph = status_phase(s->cs);
		bool waking = streq(ph, "Suspended") || streq(ph, "Suspending") || streq(ph, "Waking");

		r = create_main(s, waking, ACT_EXISTS_REQUEUE);
		if (r != 0)
			return r < 0 ? r : 0;
		return plan_requeue_after(s->p, 0);
	}
	if (!s->pods.main->ready) {
		r = write_status(s, "Pending");
		return r < 0 ? r : plan_requeue_after(s->p, OPERATORD_POLL_USEC);
	}
	r = ensure_subs(s, &c);
	if (r == 0)
		r = ensure_toolboxes(s, &c);
	rebuild_history_done(&c.history);
	if (r != 0)
		return r < 0 ? r : 0;
	if (c.changed)
		return plan_requeue_after(s->p, 0);
	r = write_status(s, NULL);
	if (r < 0 || c.requeue_after == 0)
		return r;
	return plan_requeue_after(s->p, c.requeue_after);
}

/* What CONTRACT.md §3 leaves for later is said out loud on the object, not silently
 * ignored: release suspends keep the pods (as retain), and a main is not migrated. */
static int warn_unsupported(struct pass *s)
{
	const struct cs_pod *m = s->pods.main;
	int r = 0;

	if (s->cs->suspend && streq(s->cs->hibernate_policy, "release"))
		r = plan_event(s->p, "Warning", "HibernatePolicyNotSupported",
			       "hibernatePolicy=release is not supported yet: suspending with "
			       "retain (pods are kept, VMs hibernate in place)");
	if (r >= 0 && m && s->cs->node_name && m->node_name &&
	    !streq(m->node_name, s->cs->node_name))
		r = plan_event(s->p, "Warning", "MigrationNotSupported",
			       "main pod %s runs on %s, spec.nodeName is %s: cross-node migration "
			       "is not supported yet; the main moves only when it is recreated",
			       m->name, m->node_name, s->cs->node_name);
	return r;
}

static int plan_pass(struct pass *s)
{
	_cleanup_(json_decrefp) json_t *copy = NULL;
	json_t *fin;
	int r;

	if (s->cs->deleting)
		return plan_delete(s);
	if (!s->cs->has_finalizer) {
		copy = json_deep_copy(s->cs->obj);
		fin = copy ? json_object_get(json_object_get(copy, "metadata"), "finalizers") : NULL;
		if (!copy)
			return -ENOMEM;
		if (!fin) {
			fin = json_array();
			if (json_object_set_new(json_object_get(copy, "metadata"), "finalizers", fin) <
			    0)
				return -ENOMEM;
		}
		if (json_array_append_new(fin, json_string(OPERATORD_FINALIZER)) < 0)
			return -ENOMEM;
		r = plan_obj_update(s->p, TAKE_PTR(copy));
		return r < 0 ? r : plan_requeue_after(s->p, 0);
	}
	r = stamp_generations(s);
	if (r >= 0)
		r = warn_unsupported(s);
	if (r < 0)
		return r;
	r = failed_main(s);
	if (r != 0)
		return r < 0 ? r : 0;
	if (s->cs->suspend)
		return plan_suspend(s);
	return plan_running(s);
}

int cs_plan(const struct cs_inputs *in, struct plan *ret)
{
	struct pass s = { .in = in, .cs = in->cs, .p = ret };
	int r;

	*ret = (struct plan){};
	r = cs_pods_classify(in->cs, in->pods, &s.pods);
	if (r < 0)
		return r;
	r = plan_pass(&s);
	cs_pods_done(&s.pods);
	strv_free(s.restore_intent);
	if (r < 0) {
		plan_done(ret);
		return r;
	}
	/* Facts first: whatever else was decided assumed the missing ones absent. */
	if (ret->n_probes > 0 && ret->outcome != PLAN_ERROR)
		ret->outcome = PLAN_NEED_FACTS;
	return 0;
}
