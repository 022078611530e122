/* /mutate's reservations, stored: the read-modify-write of ConfigMap
 * cocoon-system/cocoon-affinity-<pool> that makes a decision of affinity.c durable.
 *
 * One attempt is GET (404: no ConfigMap yet) → affinity_reserve() over that data, the pod
 * cache and the node cache → PUT with the resourceVersion that was read (or POST when there
 * was none). The apiserver refuses a PUT whose resourceVersion is stale (409 Conflict) and a
 * POST of a name that exists (409 AlreadyExists); a PUT of a ConfigMap deleted meanwhile is
 * a 404. Each of those means another writer won, so the attempt starts over from a fresh
 * read after a short jittered pause, at most RESERVE_ATTEMPTS times. Two webhook replicas
 * can therefore never both store a slot: only one of two writes based on the same read
 * lands, and the other re-decides seeing it (client-go's RetryOnConflict, as G2 did).
 *
 * Within one process the reserves of a pool are run one after the other: a burst of pods of
 * one Deployment would otherwise mostly conflict with itself. The queue is capped, and a
 * reserve that has not finished RESERVE_DEADLINE_USEC after it was queued (waiting for its
 * pool, slow calls, conflicts) gives up, so the pod is still answered within the webhook's
 * timeoutSeconds: past it the apiserver fails the pod CREATE (failurePolicy Fail) instead
 * of admitting it without a reservation. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cocoon/kube.h"
#include "cocoon/log.h"
#include "webhookd.h"

#define RESERVE_BACKOFF_BASE_USEC (10 * 1000ULL)
#define RESERVE_BACKOFF_MAX_USEC  (200 * 1000ULL)

struct reserver {
	struct cluster *cluster;
	struct reserve *head, *tail; /* FIFO; a reserve runs when none before it has its pool */
	size_t n;
	sd_event_source *kick; /* starts new reserves from the loop, never inside reserve_new() */
};

struct reserve {
	struct reserver *owner;
	struct reserve *prev, *next;
	struct affinity_pod pod;
	json_t *pod_obj;
	char *cm_name;
	bool dry_run, running;
	unsigned attempts;
	struct kube_call *call;
	sd_event_source *retry_timer, *deadline_timer;
	reserve_done_fn done;
	void *userdata;
	char *key;
	json_t *reservation;
};

static const struct kube_resource configmaps = { "", "v1", "configmaps", true };

static void reserve_fetch(struct reserve *r);
static void reserver_kick(struct reserver *rs);

static int reserver_on_kick(sd_event_source *s, void *userdata)
{
	reserver_kick(userdata);
	return 0;
}

int reserver_new(struct cluster *c, struct reserver **ret)
{
	_cleanup_(reserver_freep) struct reserver *rs = calloc(1, sizeof *rs);
	int r;

	if (!rs)
		return -ENOMEM;
	rs->cluster = c;
	r = sd_event_add_defer(kube_client_event(cluster_client(c)), &rs->kick, reserver_on_kick,
			       rs);
	if (r >= 0)
		r = sd_event_source_set_enabled(rs->kick, SD_EVENT_OFF);
	if (r < 0)
		return r;
	*ret = TAKE_PTR(rs);
	return 0;
}

void reserver_free(struct reserver *rs)
{
	if (!rs)
		return;
	while (rs->head)
		reserve_free(rs->head);
	sd_event_source_disable_unref(rs->kick);
	free(rs);
}

static bool reserve_pool_busy(const struct reserve *r)
{
	for (const struct reserve *o = r->owner->head; o && o != r; o = o->next)
		if (streq(o->pod.pool, r->pod.pool))
			return true;
	return false;
}

/* Starts the first waiting reserve of each pool that has none running. A start that fails
 * at once finishes (and may free) its reserve, so the scan begins again from the head. */
static void reserver_kick(struct reserver *rs)
{
	struct reserve *r;

again:
	for (r = rs->head; r; r = r->next)
		if (!r->running && !reserve_pool_busy(r)) {
			r->running = true;
			reserve_fetch(r);
			goto again;
		}
}

static void reserve_unlink(struct reserve *r)
{
	struct reserver *rs = r->owner;

	if (!rs)
		return;
	if (r->prev)
		r->prev->next = r->next;
	else
		rs->head = r->next;
	if (r->next)
		r->next->prev = r->prev;
	else
		rs->tail = r->prev;
	rs->n--;
	r->owner = NULL;
	r->prev = r->next = NULL;
}

void reserve_free(struct reserve *r)
{
	if (!r)
		return;
	reserve_unlink(r);
	kube_call_cancel(r->call);
	sd_event_source_disable_unref(r->retry_timer);
	sd_event_source_disable_unref(r->deadline_timer);
	affinity_pod_done(&r->pod);
	json_decref(r->pod_obj);
	json_decref(r->reservation);
	free(r->cm_name);
	free(r->key);
	free(r);
}

/* Leaves the queue (so the pool's next reserve can run), then tells the caller, who may
 * free r. Only from a loop callback: the caller's done must not run inside reserve_new(). */
static void reserve_finish(struct reserve *r, int error, const char *fmt, ...) _printf_(3, 4);
static void reserve_finish(struct reserve *r, int error, const char *fmt, ...)
{
	struct reserver *rs = r->owner;
	_cleanup_(freep) char *message = NULL;
	va_list ap;

	if (fmt) {
		va_start(ap, fmt);
		if (vasprintf(&message, fmt, ap) < 0)
			message = NULL;
		va_end(ap);
	}
	reserve_unlink(r);
	/* the callback may keep r: its deadline must not finish it a second time */
	r->deadline_timer = sd_event_source_disable_unref(r->deadline_timer);
	r->done(r, error, message ? message : strerror(-error), r->userdata);
	reserver_kick(rs);
}

/* What the apiserver or the client says about the ConfigMap is never the pod's own fault:
 * -EINVAL (a 400 or 422, e.g. a policy webhook refusing the write), -ENAMETOOLONG and
 * -EEXIST would read as such (reserve_done_fn) and deny the pod, so they become -EIO. */
static int reserve_cluster_error(int error)
{
	return error == -EINVAL || error == -ENAMETOOLONG || error == -EEXIST ? -EIO : error;
}

static int reserve_on_retry(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct reserve *r = userdata;

	r->retry_timer = sd_event_source_disable_unref(r->retry_timer);
	reserve_fetch(r);
	return 0;
}

/* Another writer won: read again after a pause, or give up. */
static void reserve_retry(struct reserve *r, const char *why)
{
	sd_event *e = kube_client_event(cluster_client(r->owner->cluster));
	int k;

	if (r->attempts >= RESERVE_ATTEMPTS)
		return reserve_finish(r, -EBUSY,
				      "ConfigMap %s/%s: gave up after %u attempts, the last one "
				      "failed with: %s",
				      AFFINITY_NAMESPACE, r->cm_name, r->attempts, why);
	log_debug("ConfigMap %s/%s: %s, retrying", AFFINITY_NAMESPACE, r->cm_name, why);
	k = sd_event_add_time_relative(
	    e, &r->retry_timer, CLOCK_MONOTONIC,
	    kube_backoff_usec(r->attempts - 1, RESERVE_BACKOFF_BASE_USEC, RESERVE_BACKOFF_MAX_USEC),
	    0, reserve_on_retry, r);
	if (k < 0)
		reserve_finish(r, k, "cannot arm the retry timer: %s", strerror(-k));
}

static int reserve_on_deadline(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct reserve *r = userdata;

	kube_call_cancel(r->call);
	r->call = NULL;
	r->retry_timer = sd_event_source_disable_unref(r->retry_timer);
	/* 0 attempts: it was still waiting for the pool's writer */
	reserve_finish(r, -ETIMEDOUT,
		       "ConfigMap %s/%s: no reservation within %llu s of the request (%u "
		       "attempt(s) to read and write it)",
		       AFFINITY_NAMESPACE, r->cm_name, RESERVE_DEADLINE_USEC / USEC_PER_SEC,
		       r->attempts);
	return 0;
}

static void reserve_on_write(struct kube_call *call, int error, json_t *obj,
			     const struct kube_status *status, void *userdata)
{
	struct reserve *r = userdata;

	r->call = NULL;
	if (error == -ESTALE || error == -EEXIST || error == -ENOENT)
		return reserve_retry(r, status->message ? status->message : strerror(-error));
	if (error < 0)
		return reserve_finish(r, reserve_cluster_error(error),
				      "cannot write ConfigMap %s/%s: %s", AFFINITY_NAMESPACE,
				      r->cm_name,
				      status->message ? status->message : strerror(-error));
	reserve_finish(r, 0, NULL);
}

/* The decision over one read of the ConfigMap (NULL: it does not exist). */
static int reserve_decide(struct reserve *r, const json_t *cm, char **ret_error)
{
	struct cluster *c = r->owner->cluster;
	_cleanup_(json_decrefp) json_t *reservations = NULL, *pods = NULL, *live = NULL,
				       *nodes = NULL;
	struct affinity_view v = { .pool = r->pod.pool, .now = time(NULL) };
	int k;

	k = affinity_reservations_parse(cm, &reservations, ret_error);
	if (k < 0)
		return k;
	pods = cluster_pods(c);
	nodes = cluster_nodes(c);
	if (!pods || !nodes)
		return -ENOMEM;
	k = affinity_live_index(pods, &live);
	if (k < 0)
		return k;
	v.reservations = reservations;
	v.live = live;
	v.nodes = nodes;
	free(r->key);
	r->key = NULL;
	json_decref(r->reservation);
	r->reservation = NULL;
	return affinity_reserve(&v, &r->pod, &r->key, &r->reservation, ret_error);
}

static int reserve_write(struct reserve *r, const json_t *cm, char **ret_error)
{
	struct kube_client *client = cluster_client(r->owner->cluster);
	_cleanup_(json_decrefp) json_t *data = NULL, *obj = NULL;
	_cleanup_(freep) char *path = NULL;
	int k;

	k = affinity_data_put(cm, r->key, r->reservation, &data, ret_error);
	if (k < 0)
		return k;
	k = affinity_configmap_build(cm, r->pod.pool, data, &obj);
	if (k < 0)
		return k;
	path = kube_path(&configmaps, AFFINITY_NAMESPACE, cm ? r->cm_name : NULL, NULL);
	if (!path)
		return -ENOMEM;
	if (cm)
		return kube_update(client, path, obj, reserve_on_write, r, &r->call);
	return kube_create(client, path, obj, reserve_on_write, r, &r->call);
}

static void reserve_on_get(struct kube_call *call, int error, json_t *obj,
			   const struct kube_status *status, void *userdata)
{
	struct reserve *r = userdata;
	_cleanup_(freep) char *err = NULL;
	int k;

	r->call = NULL;
	if (error < 0 && error != -ENOENT)
		return reserve_finish(r, reserve_cluster_error(error),
				      "cannot read ConfigMap %s/%s: %s", AFFINITY_NAMESPACE,
				      r->cm_name,
				      status->message ? status->message : strerror(-error));
	if (error == -ENOENT)
		obj = NULL;
	k = reserve_decide(r, obj, &err);
	if (k >= 0 && !r->dry_run)
		k = reserve_cluster_error(reserve_write(r, obj, &err));
	if (k < 0)
		return reserve_finish(r, k, "%s", err ? err : strerror(-k));
	if (r->dry_run)
		reserve_finish(r, 0, NULL);
}

static void reserve_fetch(struct reserve *r)
{
	_cleanup_(freep) char *path = NULL;
	int k;

	/* Before the first full list an empty cache calls every pod gone: a live replica's
	 * slot and VM name would be handed out again (systemd passes connections in before
	 * the caches are synced; Kubernetes only keeps traffic away while /readyz fails). */
	if (!cluster_caches_synced(r->owner->cluster))
		return reserve_finish(r, -EAGAIN,
				      "the pod and node caches are not synced yet, so the live "
				      "VM names and node loads are unknown");
	path = kube_path(&configmaps, AFFINITY_NAMESPACE, r->cm_name, NULL);
	r->attempts++;
	k = path ? kube_get(cluster_client(r->owner->cluster), path, reserve_on_get, r, &r->call)
		 : -ENOMEM;
	if (k < 0)
		reserve_finish(r, reserve_cluster_error(k), "cannot read ConfigMap %s/%s: %s",
			       AFFINITY_NAMESPACE, r->cm_name, strerror(-k));
}

int reserve_new(struct reserver *rs, const json_t *pod, const char *req_ns, const char *req_name,
		bool dry_run, reserve_done_fn done, void *userdata, struct reserve **ret,
		char **ret_error)
{
	_cleanup_(reserve_freep) struct reserve *r = NULL;
	int k;

	if (rs->n >= RESERVE_QUEUE_MAX)
		return -EBUSY;
	r = calloc(1, sizeof *r);
	if (!r)
		return -ENOMEM;
	k = affinity_pod_identify(pod, req_ns, req_name, &r->pod, ret_error);
	if (k < 0)
		return k;
	k = affinity_configmap_name(r->pod.pool, &r->cm_name, ret_error);
	if (k < 0)
		return k;
	k = sd_event_add_time_relative(kube_client_event(cluster_client(rs->cluster)),
				       &r->deadline_timer, CLOCK_MONOTONIC, RESERVE_DEADLINE_USEC,
				       0, reserve_on_deadline, r);
	if (k < 0)
		return k;
	k = sd_event_source_set_enabled(rs->kick, SD_EVENT_ONESHOT);
	if (k < 0)
		return k;
	r->pod_obj = json_incref((json_t *)pod);
	r->dry_run = dry_run;
	r->done = done;
	r->userdata = userdata;
	r->owner = rs;
	r->prev = rs->tail;
	if (rs->tail)
		rs->tail->next = r;
	else
		rs->head = r;
	rs->tail = r;
	rs->n++;
	*ret = TAKE_PTR(r);
	return 0;
}

const char *reserve_pool(const struct reserve *r)
{
	return r->pod.pool;
}

const json_t *reserve_result(const struct reserve *r, const char **ret_key)
{
	if (ret_key)
		*ret_key = r->key;
	return r->reservation;
}

unsigned reserve_attempts(const struct reserve *r)
{
	return r->attempts;
}
