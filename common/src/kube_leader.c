/* Leader election on a coordination.k8s.io/v1 Lease (see kube.h), with client-go's
 * leaderelection rules (spec/kube-api.md §1.9 "Leases (leader election)"):
 *   - every retry period a candidate reads the Lease: absent → create it holding it;
 *     holderIdentity empty (released) or expired → take it over with an update that carries
 *     the resourceVersion it read, acquireTime = now and leaseTransitions + 1; held by us
 *     (e.g. after a restart) → renew it. Of several candidates racing for one Lease only
 *     one update succeeds: the others get 409 Conflict and retry next period;
 *   - the leader renews every retry period (an update with the resourceVersion of its own
 *     last write, so a 409 means someone else wrote it: read it again next period);
 *   - the leader stops leading when no renewal has succeeded for renew_deadline. That is
 *     shorter than the lease duration, so it has stopped acting before any candidate can
 *     see the Lease as expired. on_stopped_leading means "stop acting now": correctness
 *     depends on the daemon doing so (and a daemon that cannot should exit);
 *   - release writes holderIdentity "" and leaseDurationSeconds 1 so the next candidate
 *     takes over at its next read rather than after a lease duration.
 *
 * Expiry of another holder's Lease needs two things: its renewTime + leaseDurationSeconds
 * is in the past on our wall clock, and we have seen the same Lease (resourceVersion)
 * unchanged for leaseDurationSeconds on our monotonic clock. The second is client-go's
 * rule and is immune to clock skew between candidates; the first stops a candidate from
 * waiting a whole lease duration more than needed when it watched the holder die. Each
 * alone could be fooled (a skewed clock; a Lease that changed for other reasons), both
 * together are the safe side of each.
 *
 * One timer drives everything: after an attempt completes it fires after the retry period
 * (candidates add up to 20 % jitter so they do not retry in lockstep); while a request is
 * in flight it fires after renew_deadline and cancels it, so a hung apiserver connection
 * cannot stall the election. A second timer is the leader's renew deadline. */
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "cocoon/kube.h"
#include "cocoon/log.h"

#define LEADER_DEFAULT_LEASE_USEC (15ULL * 1000 * 1000)
#define LEADER_DEFAULT_RENEW_USEC (10ULL * 1000 * 1000)
#define LEADER_DEFAULT_RETRY_USEC (2ULL * 1000 * 1000)
#define LEADER_JITTER_PERCENT     20
#define LEADER_TIMER_ACCURACY     1000

static const struct kube_resource lease_resource = {
	.group = "coordination.k8s.io",
	.version = "v1",
	.plural = "leases",
	.namespaced = true,
};

enum leader_state {
	LEADER_CAMPAIGNING,
	LEADER_RELEASING,
	LEADER_RELEASED, /* inert: release finished or given up */
};

struct kube_leader {
	struct kube_client *client;
	sd_event *event;
	struct kube_leader_options o; /* strings point at the copies below */
	char *ns, *name, *identity;
	char *path, *collection;
	void *userdata;
	enum leader_state state;
	bool leading;
	bool fresh; /* lease holds our own last successful write: renew without reading */

	sd_event_source *tick_src, *deadline_src, *defer_src;
	struct kube_call *call;
	json_t *lease; /* last Lease read or written */

	char *observed_rv;    /* the Lease version we last saw … */
	uint64_t observed_at; /* … first seen at this CLOCK_MONOTONIC time */
	char *reported;       /* the holder last passed to on_new_leader */
	uint64_t rng;

	void (*release_done)(struct kube_leader *l, void *u);
	void *release_userdata;
	unsigned release_retries; /* re-reads after a Conflict on the release write */
};

static void leader_finish_release(struct kube_leader *l);

static uint64_t mono_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static uint64_t leader_jitter(struct kube_leader *l, uint64_t period)
{
	/* xorshift64: only spreads candidates apart, needs no strength. */
	l->rng ^= l->rng << 13;
	l->rng ^= l->rng >> 7;
	l->rng ^= l->rng << 17;
	return period / 100 * (l->rng % (LEADER_JITTER_PERCENT + 1));
}

static void leader_arm(struct kube_leader *l, sd_event_source *s, uint64_t delay)
{
	int r = sd_event_source_set_time(s, mono_now() + delay);

	if (r >= 0)
		r = sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
	if (r < 0)
		log_debug_errno(r, "Lease %s/%s: cannot arm a timer, ignoring: %m", l->ns, l->name);
}

/* The next attempt after the retry period. */
static void leader_schedule(struct kube_leader *l)
{
	uint64_t d = l->o.retry_period_usec;

	if (!l->leading)
		d += leader_jitter(l, d);
	leader_arm(l, l->tick_src, d);
}

static void leader_cancel_call(struct kube_leader *l)
{
	if (l->call)
		kube_call_cancel(TAKE_PTR(l->call));
}

/* ---- what a Lease says ---- */

static const char *lease_holder(const json_t *lease)
{
	const char *h =
	    json_string_value(json_object_get(json_object_get(lease, "spec"), "holderIdentity"));

	return h ? h : "";
}

static const char *lease_rv(const json_t *lease)
{
	return json_string_value(
	    json_object_get(json_object_get(lease, "metadata"), "resourceVersion"));
}

static json_int_t lease_transitions(const json_t *lease)
{
	json_int_t t =
	    json_integer_value(json_object_get(json_object_get(lease, "spec"), "leaseTransitions"));

	return t > 0 ? t : 0;
}

/* The holder's promise in microseconds; ours when absent or nonsense (never shorter than
 * what we would promise ourselves). */
static uint64_t lease_duration(const struct kube_leader *l, const json_t *lease)
{
	json_int_t s = json_integer_value(
	    json_object_get(json_object_get(lease, "spec"), "leaseDurationSeconds"));

	if (s <= 0 || s > 365 * 24 * 3600)
		return l->o.lease_duration_usec;
	return (uint64_t)s * 1000000;
}

/* Records when we first saw this version of the Lease (client-go's observedTime). */
static void leader_observe(struct kube_leader *l, const json_t *lease)
{
	const char *rv = lease_rv(lease);

	if (rv && streq_ptr(rv, l->observed_rv))
		return;
	free(l->observed_rv);
	l->observed_rv = rv ? strdup(rv) : NULL;
	l->observed_at = mono_now();
}

static bool leader_expired(const struct kube_leader *l, const json_t *lease)
{
	uint64_t dur = lease_duration(l, lease), renew;
	const char *s =
	    json_string_value(json_object_get(json_object_get(lease, "spec"), "renewTime"));

	if (mono_now() < l->observed_at + dur)
		return false;
	if (!s)
		return true;
	if (kube_time_parse(s, &renew) < 0) {
		log_debug("Lease %s/%s: spec.renewTime \"%s\" is not an RFC 3339 time, judging "
			  "expiry by observation alone",
			  l->ns, l->name, s);
		return true;
	}
	return renew + dur < kube_time_now();
}

static int lease_set_time(json_t *spec, const char *key, uint64_t usec)
{
	char buf[KUBE_TIME_MAX];

	return json_object_set_new(spec, key, json_string(kube_time_format(usec, true, buf)));
}

/* The Lease as we want it: holder, our duration, renewTime now; acquireTime now and one more
 * transition on a takeover, kept on a renewal. base NULL builds a new object. */
static json_t *leader_build(struct kube_leader *l, const json_t *base, bool takeover)
{
	json_t *lease = base ? json_deep_copy(base) : json_object(), *spec;
	uint64_t now = kube_time_now();
	json_int_t secs = (json_int_t)((l->o.lease_duration_usec + 999999) / 1000000);

	if (!lease)
		return NULL;
	if (!base &&
	    (json_object_set_new(lease, "apiVersion", json_string("coordination.k8s.io/v1")) < 0 ||
	     json_object_set_new(lease, "kind", json_string("Lease")) < 0 ||
	     json_object_set_new(lease, "metadata",
				 json_pack("{s:s, s:s}", "name", l->name, "namespace", l->ns)) < 0))
		goto fail;
	spec = json_object_get(lease, "spec");
	if (!json_is_object(spec)) {
		spec = json_object();
		if (json_object_set_new(lease, "spec", spec) < 0)
			goto fail;
	}
	if (json_object_set_new(spec, "holderIdentity", json_string(l->identity)) < 0 ||
	    json_object_set_new(spec, "leaseDurationSeconds", json_integer(secs)) < 0 ||
	    lease_set_time(spec, "renewTime", now) < 0)
		goto fail;
	if (!base || takeover || !json_is_string(json_object_get(spec, "acquireTime")))
		if (lease_set_time(spec, "acquireTime", now) < 0)
			goto fail;
	if (json_object_set_new(spec, "leaseTransitions",
				json_integer(lease_transitions(base) + (base && takeover))) < 0)
		goto fail;
	return lease;
fail:
	json_decref(lease);
	return NULL;
}

/* ---- state changes and callbacks ---- */

/* Reports a holder we have not reported yet (client-go's maybeReportTransition; a released
 * Lease is not a new leader). */
static void leader_report(struct kube_leader *l, const char *holder)
{
	if (isempty(holder) || streq_ptr(holder, l->reported))
		return;
	free(l->reported);
	l->reported = strdup(holder);
	if (l->o.on_new_leader)
		l->o.on_new_leader(l, holder, l->userdata);
}

static void leader_stop(struct kube_leader *l, const char *why)
{
	if (!l->leading)
		return;
	log_debug("Lease %s/%s: %s stopped leading: %s", l->ns, l->name, l->identity, why);
	l->leading = false;
	l->fresh = false;
	sd_event_source_set_enabled(l->deadline_src, SD_EVENT_OFF);
	if (l->o.on_stopped_leading)
		l->o.on_stopped_leading(l, l->userdata);
}

static int leader_on_deadline(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct kube_leader *l = userdata;

	/* Whatever is in flight can no longer make us a safe leader: start over as candidate. */
	leader_cancel_call(l);
	leader_schedule(l);
	leader_stop(l, "no renewal succeeded within the renew deadline");
	return 0;
}

static void leader_on_written(struct kube_leader *l, json_t *lease)
{
	bool started = !l->leading;

	json_decref(l->lease);
	l->lease = json_incref(lease);
	l->fresh = true;
	leader_observe(l, lease);
	l->leading = true;
	leader_arm(l, l->deadline_src, l->o.renew_deadline_usec);
	leader_schedule(l);
	if (started)
		log_debug("Lease %s/%s: %s started leading (transitions %lld)", l->ns, l->name,
			  l->identity, (long long)lease_transitions(lease));
	leader_report(l, l->identity);
	if (started && l->leading && l->state == LEADER_CAMPAIGNING && l->o.on_started_leading)
		l->o.on_started_leading(l, l->userdata);
}

static void leader_on_write_done(struct kube_call *call, int error, json_t *obj,
				 const struct kube_status *st, void *userdata)
{
	struct kube_leader *l = userdata;

	l->call = NULL;
	if (error >= 0 && json_is_object(obj)) {
		leader_on_written(l, obj);
		return;
	}
	/* 409 Conflict (someone else wrote it), AlreadyExists (someone created it first), or a
	 * failure: read it again next period. A leader keeps leading until its deadline. */
	log_debug_errno(error, "Lease %s/%s: write failed (%ld %s: %s), retrying: %m", l->ns,
			l->name, st ? st->code : 0, st && st->reason ? st->reason : "-",
			st && st->message ? st->message : "-");
	l->fresh = false;
	leader_schedule(l);
}

static void leader_write(struct kube_leader *l, json_t *lease, bool create)
{
	int r;

	if (!lease) {
		log_oom_errno();
		leader_schedule(l);
		return;
	}
	if (create)
		r = kube_create(l->client, l->collection, lease, leader_on_write_done, l, &l->call);
	else
		r = kube_update(l->client, l->path, lease, leader_on_write_done, l, &l->call);
	json_decref(lease);
	if (r < 0) {
		log_debug_errno(r, "Lease %s/%s: cannot send the update, retrying: %m", l->ns,
				l->name);
		leader_schedule(l);
		return;
	}
	leader_arm(l, l->tick_src, l->o.renew_deadline_usec);
}

/* A candidate (or a leader whose last write failed) decides on the Lease it just read. */
static void leader_decide(struct kube_leader *l, json_t *lease)
{
	const char *holder = lease_holder(lease);

	json_decref(l->lease);
	l->lease = json_incref(lease);
	leader_observe(l, lease);
	if (streq(holder, l->identity)) {
		leader_write(l, leader_build(l, lease, false), false);
		return;
	}
	if (!isempty(holder) && !leader_expired(l, lease)) {
		leader_schedule(l);
		leader_stop(l, "the lease has another holder");
		leader_report(l, holder);
		return;
	}
	log_debug("Lease %s/%s: %s, taking it over", l->ns, l->name,
		  isempty(holder) ? "released" : "expired");
	leader_write(l, leader_build(l, lease, true), false);
}

static void leader_on_read_done(struct kube_call *call, int error, json_t *obj,
				const struct kube_status *st, void *userdata)
{
	struct kube_leader *l = userdata;

	l->call = NULL;
	if (error == -ENOENT) {
		log_debug("Lease %s/%s not found, creating it", l->ns, l->name);
		leader_write(l, leader_build(l, NULL, false), true);
		return;
	}
	if (error < 0 || !json_is_object(obj)) {
		log_debug_errno(error < 0 ? error : -EBADMSG,
				"Lease %s/%s: cannot read it (%s), retrying: %m", l->ns, l->name,
				st && st->message ? st->message : "not an object");
		leader_schedule(l);
		return;
	}
	leader_decide(l, obj);
}

static int leader_on_tick(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct kube_leader *l = userdata;
	int r;

	if (l->state == LEADER_RELEASING) {
		leader_cancel_call(l);
		log_debug("Lease %s/%s: release timed out; it expires on its own", l->ns, l->name);
		leader_finish_release(l);
		return 0;
	}
	if (l->call) {
		log_debug("Lease %s/%s: request timed out, retrying", l->ns, l->name);
		leader_cancel_call(l);
		l->fresh = false;
	}
	if (l->leading && l->fresh) {
		/* client-go's fast path: our last write is the current version, renew it. */
		leader_write(l, leader_build(l, l->lease, false), false);
		return 0;
	}
	r = kube_get(l->client, l->path, leader_on_read_done, l, &l->call);
	if (r < 0) {
		log_debug_errno(r, "Lease %s/%s: cannot send the read, retrying: %m", l->ns,
				l->name);
		leader_schedule(l);
		return 0;
	}
	leader_arm(l, l->tick_src, l->o.renew_deadline_usec);
	return 0;
}

/* ---- release ---- */

static void leader_finish_release(struct kube_leader *l)
{
	void (*done)(struct kube_leader *, void *) = l->release_done;

	l->state = LEADER_RELEASED;
	sd_event_source_set_enabled(l->tick_src, SD_EVENT_OFF);
	sd_event_source_set_enabled(l->defer_src, SD_EVENT_OFF);
	l->release_done = NULL;
	if (done)
		done(l, l->release_userdata); /* last: the caller may free l here */
}

/* The release write: our last known Lease with an empty holder and a 1 s duration, guarded
 * by its resourceVersion so we never release a Lease somebody else has taken meanwhile. */
static int leader_send_release(struct kube_leader *l);

/* A renew that was in flight when the release started may have reached the server after
 * all (cancelling only stops us from hearing the answer), so the release can conflict with
 * our own write. Re-read: if we still hold the Lease, release the fresh version. */
static void leader_on_release_read(struct kube_call *call, int error, json_t *obj,
				   const struct kube_status *st, void *userdata)
{
	struct kube_leader *l = userdata;

	l->call = NULL;
	if (error >= 0 && streq_ptr(lease_holder(obj), l->identity)) {
		json_decref(l->lease);
		l->lease = json_incref(obj);
		if (leader_send_release(l) >= 0)
			return;
	}
	leader_finish_release(l);
}

static void leader_on_release_done(struct kube_call *call, int error, json_t *obj,
				   const struct kube_status *st, void *userdata)
{
	struct kube_leader *l = userdata;

	l->call = NULL;
	if (error == -ESTALE && l->release_retries++ < 3 &&
	    kube_get(l->client, l->path, leader_on_release_read, l, &l->call) >= 0)
		return;
	if (error < 0)
		log_debug_errno(error,
				"Lease %s/%s: release failed (%s); it expires on its own: %m",
				l->ns, l->name, st && st->message ? st->message : "-");
	else
		log_debug("Lease %s/%s released by %s", l->ns, l->name, l->identity);
	leader_finish_release(l);
}

static int leader_send_release(struct kube_leader *l)
{
	json_t *lease, *spec;
	int r;

	lease = leader_build(l, l->lease, false);
	spec = json_object_get(lease, "spec");
	if (!lease || json_object_set_new(spec, "holderIdentity", json_string("")) < 0 ||
	    json_object_set_new(spec, "leaseDurationSeconds", json_integer(1)) < 0 ||
	    lease_set_time(spec, "acquireTime", kube_time_now()) < 0) {
		json_decref(lease);
		return -ENOMEM;
	}
	r = kube_update(l->client, l->path, lease, leader_on_release_done, l, &l->call);
	json_decref(lease);
	if (r < 0)
		log_debug_errno(r, "Lease %s/%s: cannot send the release: %m", l->ns, l->name);
	return r;
}

static int leader_on_defer(sd_event_source *s, void *userdata)
{
	leader_finish_release(userdata);
	return 0;
}

int kube_leader_release(struct kube_leader *l, void (*done)(struct kube_leader *l, void *u),
			void *userdata)
{
	bool was_leading = l->leading;

	if (l->state != LEADER_CAMPAIGNING)
		return -EALREADY;
	l->state = LEADER_RELEASING;
	l->release_done = done;
	l->release_userdata = userdata;
	leader_cancel_call(l);
	sd_event_source_set_enabled(l->tick_src, SD_EVENT_OFF);
	/* The daemon stops acting before anyone else can take over. */
	leader_stop(l, "releasing the lease");
	if (!was_leading || !l->lease)
		return sd_event_source_set_enabled(l->defer_src, SD_EVENT_ONESHOT);

	l->release_retries = 0;
	if (leader_send_release(l) < 0)
		return sd_event_source_set_enabled(l->defer_src, SD_EVENT_ONESHOT);
	/* Bounded: a drain must not wait on a hung apiserver (leader_on_tick ends it). */
	leader_arm(l, l->tick_src, l->o.renew_deadline_usec);
	return 0;
}

/* ---- lifetime ---- */

static int leader_check_options(const struct kube_leader_options *o)
{
	if (!o || isempty(o->namespace) || isempty(o->name) || isempty(o->identity))
		return log_debug_errno(EINVAL,
				       "Leader election needs namespace, name and identity");
	/* client-go's rule: the leader must give up before a candidate can take over, and
	 * retry at least once within the deadline. */
	if (o->lease_duration_usec <= o->renew_deadline_usec)
		return log_debug_errno(EINVAL, "Leader election: lease duration must be longer "
					       "than the renew deadline");
	if (o->renew_deadline_usec <= o->retry_period_usec + o->retry_period_usec / 5)
		return log_debug_errno(EINVAL, "Leader election: renew deadline must be longer "
					       "than 1.2 retry periods");
	return 0;
}

static int leader_add_sources(struct kube_leader *l)
{
	int r;

	r = sd_event_add_time(l->event, &l->tick_src, CLOCK_MONOTONIC, 0, LEADER_TIMER_ACCURACY,
			      leader_on_tick, l);
	if (r >= 0)
		r = sd_event_add_time(l->event, &l->deadline_src, CLOCK_MONOTONIC, 0,
				      LEADER_TIMER_ACCURACY, leader_on_deadline, l);
	if (r >= 0)
		r = sd_event_source_set_enabled(l->deadline_src, SD_EVENT_OFF);
	if (r >= 0)
		r = sd_event_add_defer(l->event, &l->defer_src, leader_on_defer, l);
	if (r >= 0)
		r = sd_event_source_set_enabled(l->defer_src, SD_EVENT_OFF);
	return r;
}

int kube_leader_new(struct kube_client *c, const struct kube_leader_options *o, void *userdata,
		    struct kube_leader **ret)
{
	_cleanup_(kube_leader_freep) struct kube_leader *l = NULL;
	struct kube_leader_options opts;
	int r;

	if (!c || !ret || !o)
		return -EINVAL;
	opts = *o;
	if (!opts.lease_duration_usec)
		opts.lease_duration_usec = LEADER_DEFAULT_LEASE_USEC;
	if (!opts.renew_deadline_usec)
		opts.renew_deadline_usec = LEADER_DEFAULT_RENEW_USEC;
	if (!opts.retry_period_usec)
		opts.retry_period_usec = LEADER_DEFAULT_RETRY_USEC;
	r = leader_check_options(&opts);
	if (r < 0)
		return r;
	l = calloc(1, sizeof *l);
	if (!l)
		return -ENOMEM;
	l->client = c;
	l->event = sd_event_ref(kube_client_event(c));
	l->userdata = userdata;
	l->ns = strdup(opts.namespace);
	l->name = strdup(opts.name);
	l->identity = strdup(opts.identity);
	l->path = kube_path(&lease_resource, opts.namespace, opts.name, NULL);
	l->collection = kube_path(&lease_resource, opts.namespace, NULL, NULL);
	if (!l->ns || !l->name || !l->identity || !l->path || !l->collection)
		return -ENOMEM;
	opts.namespace = l->ns, opts.name = l->name, opts.identity = l->identity;
	l->o = opts;
	if (getrandom(&l->rng, sizeof l->rng, GRND_NONBLOCK) != sizeof l->rng || !l->rng)
		l->rng = mono_now() | 1;
	r = leader_add_sources(l);
	if (r < 0)
		return log_debug_errno(r, "Lease %s/%s: cannot create timers: %m", l->ns, l->name);
	*ret = TAKE_PTR(l);
	return 0;
}

bool kube_leader_is_leader(const struct kube_leader *l)
{
	return l && l->leading;
}

void kube_leader_free(struct kube_leader *l)
{
	if (!l)
		return;
	leader_cancel_call(l);
	sd_event_source_disable_unref(l->tick_src);
	sd_event_source_disable_unref(l->deadline_src);
	sd_event_source_disable_unref(l->defer_src);
	sd_event_unref(l->event);
	json_decref(l->lease);
	free(l->observed_rv);
	free(l->reported);
	free(l->ns);
	free(l->name);
	free(l->identity);
	free(l->path);
	free(l->collection);
	free(l);
}
