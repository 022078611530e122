/* The reaper: releases reservations whose pod has been gone for REAPER_GRACE, sweeping every
 * REAPER_INTERVAL (operator-webhook.md §3.9, G2) in every replica.
 *
 * A sweep LISTs the ConfigMaps in cocoon-system labelled managed-by=cocoon-webhook (the pool
 * is their cocoonstack.io/pool label), asks affinity_reap() which keys to drop given the
 * pod cache, and PUTs each changed ConfigMap with the resourceVersion it listed. A write
 * refused with 409 means a reserve or another replica's reaper changed the ConfigMap since
 * the LIST: nothing is retried, the next sweep decides again over the new data. So a
 * release can never remove a reservation it did not see. When a pod was first seen gone is
 * kept per ConfigMap between sweeps; a reservation's updatedAt also restarts the clock.
 * Nothing is swept before the pod cache is synced: an empty cache would call every pod
 * gone. ConfigMaps are written one at a time. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cocoon/kube.h"
#include "cocoon/log.h"
#include "cocoon/loop.h"
#include "cocoon/meta.h"
#include "cocoon/metrics.h"
#include "webhookd.h"

/* Until the pod cache is synced, look again this often. */
#define REAPER_WAIT_SYNC_USEC (1000000ULL)

struct reaper {
	struct cluster *cluster;
	uint64_t interval_usec;
	time_t grace;
	struct metric *releases;
	sd_event_source *timer;
	struct kube_call *call;
	json_t *gone_since; /* ConfigMap name → affinity_reap()'s gone_since map */
	json_t *pending;    /* this sweep's ConfigMaps still to look at */
	json_t *live;       /* this sweep's live index */
	char *pool;         /* of the write in flight */
	size_t n_release;
};

static const struct kube_resource configmaps = { "", "v1", "configmaps", true };

static void reaper_next(struct reaper *r);

static void reaper_sweep_done(struct reaper *r, uint64_t next_usec)
{
	int k;

	json_decref(r->pending);
	json_decref(r->live);
	r->pending = r->live = NULL;
	k = loop_timer_arm(r->timer, next_usec);
	if (k < 0)
		log_error_errno(k, "cannot re-arm the reaper timer, reservations are no longer "
				   "released: %m");
}

static void reaper_on_update(struct kube_call *call, int error, json_t *obj,
			     const struct kube_status *status, void *userdata)
{
	struct reaper *r = userdata;

	r->call = NULL;
	if (error == -ESTALE || error == -ENOENT)
		log_debug("reaper: ConfigMap %s%s changed meanwhile, the next sweep decides",
			  AFFINITY_CONFIGMAP_PREFIX, r->pool);
	else if (error < 0)
		log_warning("reaper: cannot update ConfigMap %s%s: %s, retrying next sweep",
			    AFFINITY_CONFIGMAP_PREFIX, r->pool,
			    status->message ? status->message : strerror(-error));
	else {
		log_info("reaper: released %zu reservation(s) of pool %s", r->n_release, r->pool);
		if (r->releases)
			(void)metric_add(r->releases, METRIC_LABELS(r->pool), (double)r->n_release);
	}
	reaper_next(r);
}

/* Decides one ConfigMap; > 0 when a write was started. */
static int reaper_one(struct reaper *r, const json_t *cm)
{
	const json_t *meta = json_object_get(cm, "metadata");
	const char *name = json_string_value(json_object_get(meta, "name"));
	const char *pool =
	    json_string_value(json_object_get(json_object_get(meta, "labels"), META_LABEL_POOL));
	_cleanup_(json_decrefp) json_t *res = NULL, *release = NULL, *next = NULL, *data = NULL,
				       *obj = NULL;
	_cleanup_(freep) char *err = NULL, *path = NULL;
	int k;

	if (!name || !pool)
		return 0;
	k = affinity_reservations_parse(cm, &res, &err);
	if (k < 0) {
		log_warning("reaper: ConfigMap %s/%s: %s, skipping it", AFFINITY_NAMESPACE, name,
			    err ? err : strerror(-k));
		return 0;
	}
	k = affinity_reap(res, r->live, json_object_get(r->gone_since, name), time(NULL), r->grace,
			  &release, &next);
	if (k >= 0)
		k = json_object_set(r->gone_since, name, next);
	if (k < 0 || json_array_size(release) == 0)
		return k < 0 ? -ENOMEM : 0;
	k = affinity_data_release(cm, release, &data);
	if (k >= 0)
		k = affinity_configmap_build(cm, pool, data, &obj);
	path = kube_path(&configmaps, AFFINITY_NAMESPACE, name, NULL);
	if (k < 0 || !path)
		return -ENOMEM;
	free(r->pool);
	r->pool = strdup(pool);
	if (!r->pool)
		return -ENOMEM;
	r->n_release = json_array_size(release);
	k = kube_update(cluster_client(r->cluster), path, obj, reaper_on_update, r, &r->call);
	return k < 0 ? k : 1;
}

static void reaper_next(struct reaper *r)
{
	int k;

	while (json_array_size(r->pending) > 0) {
		_cleanup_(json_decrefp) json_t *cm = json_incref(json_array_get(r->pending, 0));

		json_array_remove(r->pending, 0);
		k = reaper_one(r, cm);
		if (k > 0)
			return;
		if (k < 0)
			log_warning_errno(k, "reaper: cannot release reservations: %m, retrying "
					     "next sweep");
	}
	reaper_sweep_done(r, r->interval_usec);
}

/* Forget when pods of ConfigMaps that no longer exist were seen gone. */
static void reaper_prune(struct reaper *r, const json_t *items)
{
	const char *name;
	json_t *v, *keep = json_object();
	size_t i;
	const json_t *cm;

	if (!keep)
		return;
	json_array_foreach (items, i, cm) {
		name = json_string_value(json_object_get(json_object_get(cm, "metadata"), "name"));
		v = name ? json_object_get(r->gone_since, name) : NULL;
		if (v)
			json_object_set(keep, name, v);
	}
	json_decref(r->gone_since);
	r->gone_since = keep;
}

static void reaper_on_list(struct kube_call *call, int error, json_t *obj,
			   const struct kube_status *status, void *userdata)
{
	struct reaper *r = userdata;
	_cleanup_(json_decrefp) json_t *pods = NULL;
	json_t *items = json_object_get(obj, "items");

	r->call = NULL;
	if (error < 0 || !json_is_array(items)) {
		log_warning("reaper: cannot list the affinity ConfigMaps: %s, retrying next sweep",
			    error < 0 && status->message ? status->message : "not a list");
		return reaper_sweep_done(r, r->interval_usec);
	}
	pods = cluster_pods(r->cluster);
	if (!pods || affinity_live_index(pods, &r->live) < 0) {
		log_oom_errno();
		return reaper_sweep_done(r, r->interval_usec);
	}
	reaper_prune(r, items);
	r->pending = json_incref(items);
	reaper_next(r);
}

static int reaper_on_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct reaper *r = userdata;
	struct kube_list_options o = { .label_selector =
					   META_LABEL_MANAGED_BY "=" AFFINITY_MANAGED_BY };
	_cleanup_(freep) char *path = NULL;
	int k;

	if (!cluster_pods_synced(r->cluster)) {
		reaper_sweep_done(r, REAPER_WAIT_SYNC_USEC);
		return 0;
	}
	path = kube_path(&configmaps, AFFINITY_NAMESPACE, NULL, NULL);
	k = path ? kube_list(cluster_client(r->cluster), path, &o, reaper_on_list, r, &r->call)
		 : -ENOMEM;
	if (k < 0) {
		log_warning_errno(k, "reaper: cannot list the affinity ConfigMaps: %m, retrying "
				     "next sweep");
		reaper_sweep_done(r, r->interval_usec);
	}
	return 0;
}

int reaper_new(struct cluster *c, uint64_t interval_usec, uint64_t grace_usec,
	       struct metric *releases, struct reaper **ret)
{
	_cleanup_(reaper_freep) struct reaper *r = NULL;
	int k;

	if (interval_usec == 0)
		return -EINVAL;
	r = calloc(1, sizeof *r);
	if (!r)
		return -ENOMEM;
	r->cluster = c;
	r->interval_usec = interval_usec;
	r->grace = (time_t)(grace_usec / 1000000ULL);
	r->releases = releases;
	r->gone_since = json_object();
	if (!r->gone_since)
		return -ENOMEM;
	/* the first sweep runs as soon as the pod cache is synced (G2 swept at start) */
	k = sd_event_add_time_relative(kube_client_event(cluster_client(c)), &r->timer,
				       CLOCK_MONOTONIC, REAPER_WAIT_SYNC_USEC, 0, reaper_on_timer,
				       r);
	if (k < 0)
		return k;
	*ret = TAKE_PTR(r);
	return 0;
}

void reaper_free(struct reaper *r)
{
	if (!r)
		return;
	kube_call_cancel(r->call);
	sd_event_source_disable_unref(r->timer);
	json_decref(r->gone_since);
	json_decref(r->pending);
	json_decref(r->live);
	free(r->pool);
	free(r);
}
