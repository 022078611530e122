/* webhookd's view of the cluster: the Kubernetes client, the pod and node informers that
 * /mutate (least-used node, live VM names) and the reaper (gone pods) read, and readiness.
 *
 * Ready means both caches are synced and the apiserver answered within
 * CLUSTER_CONTACT_MAX_USEC (CONTRACT.md §4). A watch that sees no change sends nothing and
 * an idle webhook makes no calls, so silence alone would flip readiness; a timer GETs
 * /version whenever nothing was heard for CLUSTER_PING_AFTER_USEC, and readiness then
 * tracks reachability rather than traffic. Nodes are watched only when they carry the
 * cocoonstack.io/pool label: no other node can be picked. Every pod of the cluster is
 * cached, so both caches keep only what affinity.c reads (affinity_pod_trim()). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cocoon/kube.h"
#include "cocoon/log.h"
#include "cocoon/loop.h"
#include "cocoon/meta.h"
#include "webhookd.h"

#define CLUSTER_PING_AFTER_USEC (5 * 1000000ULL)
#define CLUSTER_PING_EVERY_USEC (2 * 1000000ULL)
/* Admission calls must fit the webhook's timeoutSeconds (5 s, §3.8): no long retry chains. */
#define CLUSTER_CALL_TIMEOUT_USEC (3 * 1000000ULL)
#define CLUSTER_CALL_RETRIES      2

struct cluster {
	sd_event *event;
	struct kube_client *client;
	struct kube_informer *pods, *nodes;
	sd_event_source *ping_timer;
	struct kube_call *ping;
	void (*on_synced)(void *userdata);
	void *userdata;
	bool synced_reported;
};

static const struct kube_resource pods_resource = { "", "v1", "pods", true };
static const struct kube_resource nodes_resource = { "", "v1", "nodes", false };

static uint64_t now_usec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000ULL + (uint64_t)ts.tv_nsec / 1000;
}

static void cluster_on_synced(struct kube_informer *inf, void *userdata)
{
	struct cluster *c = userdata;

	log_info("%s cache synced (%zu objects)", inf == c->pods ? "pod" : "node",
		 kube_informer_size(inf));
	if (!c->synced_reported && cluster_caches_synced(c)) {
		c->synced_reported = true;
		if (c->on_synced)
			c->on_synced(c->userdata);
	}
}

static void cluster_on_ping(struct kube_call *call, int error, json_t *obj,
			    const struct kube_status *status, void *userdata)
{
	struct cluster *c = userdata;

	c->ping = NULL;
	if (error < 0)
		log_debug("apiserver ping failed: %s", status->message ? status->message : "");
}

static int cluster_on_ping_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct cluster *c = userdata;
	uint64_t last = kube_client_last_contact(c->client);
	int r;

	if (!c->ping && (last == 0 || now_usec() - last >= CLUSTER_PING_AFTER_USEC)) {
		r = kube_get(c->client, "/version", cluster_on_ping, c, &c->ping);
		if (r < 0)
			log_debug("cannot ping the apiserver: %s", strerror(-r));
	}
	r = loop_timer_arm(s, CLUSTER_PING_EVERY_USEC);
	if (r < 0)
		log_warning_errno(r, "cannot re-arm the apiserver ping timer, readiness will lapse "
				     "when idle: %m");
	return 0;
}

static void cluster_pod_trim(json_t *pod, void *userdata)
{
	affinity_pod_trim(pod);
}

static void cluster_node_trim(json_t *node, void *userdata)
{
	affinity_node_trim(node);
}

static int cluster_informer(struct cluster *c, const struct kube_resource *res,
			    const char *label_selector, kube_transform_fn trim,
			    struct kube_informer **ret)
{
	static const struct kube_informer_handlers handlers = { .on_synced = cluster_on_synced };
	struct kube_list_options o = { .label_selector = label_selector };
	_cleanup_(freep) char *path = kube_path(res, NULL, NULL, NULL);
	int r;

	if (!path)
		return -ENOMEM;
	r = kube_informer_new(c->client, path, &o, &handlers, c, ret);
	if (r >= 0)
		r = kube_informer_set_transform(*ret, trim, NULL);
	if (r >= 0)
		r = kube_informer_start(*ret);
	return r;
}

static int cluster_start(struct cluster *c, const struct kube_config *cfg)
{
	struct kube_client_options o = {
		.max_retries = CLUSTER_CALL_RETRIES,
		.timeout_usec = CLUSTER_CALL_TIMEOUT_USEC,
		.user_agent = "cocoon-webhook",
	};
	int r;

	r = kube_client_new(c->event, cfg, &o, &c->client);
	if (r < 0)
		return log_error_errno(r, "cannot create the Kubernetes client (%s): %m",
				       cfg->source);
	r = cluster_informer(c, &pods_resource, NULL, cluster_pod_trim, &c->pods);
	if (r >= 0)
		r = cluster_informer(c, &nodes_resource, META_LABEL_POOL, cluster_node_trim,
				     &c->nodes);
	if (r < 0)
		return log_error_errno(r, "cannot start the pod and node informers: %m");
	r = sd_event_add_time_relative(c->event, &c->ping_timer, CLOCK_MONOTONIC,
				       CLUSTER_PING_EVERY_USEC, 0, cluster_on_ping_timer, c);
	if (r < 0)
		return log_error_errno(r, "cannot arm the apiserver ping timer: %m");
	return 0;
}

int cluster_new(sd_event *e, void (*on_synced)(void *userdata), void *userdata,
		struct cluster **ret)
{
	_cleanup_(cluster_freep) struct cluster *c = NULL;
	_cleanup_(kube_config_freep) struct kube_config *cfg = NULL;
	_cleanup_(freep) char *err = NULL;
	int r;

	r = kube_config_load(NULL, &cfg, &err);
	if (r < 0) {
		log_error("cannot load the Kubernetes configuration: %s", err ? err : strerror(-r));
		return r;
	}
	c = calloc(1, sizeof *c);
	if (!c)
		return log_oom_errno();
	c->event = sd_event_ref(e);
	c->on_synced = on_synced;
	c->userdata = userdata;
	r = cluster_start(c, cfg);
	if (r < 0)
		return r;
	log_info("talking to %s (%s)", cfg->server, cfg->source);
	*ret = TAKE_PTR(c);
	return 0;
}

void cluster_free(struct cluster *c)
{
	if (!c)
		return;
	sd_event_source_disable_unref(c->ping_timer);
	kube_informer_free(c->pods);
	kube_informer_free(c->nodes);
	kube_client_free(c->client);
	sd_event_unref(c->event);
	free(c);
}

struct kube_client *cluster_client(const struct cluster *c)
{
	return c->client;
}

bool cluster_pods_synced(const struct cluster *c)
{
	return kube_informer_synced(c->pods);
}

bool cluster_caches_synced(const struct cluster *c)
{
	return kube_informer_synced(c->pods) && kube_informer_synced(c->nodes);
}

bool cluster_ready(const struct cluster *c, const char **ret_reason)
{
	uint64_t last = kube_client_last_contact(c->client);

	if (!kube_informer_synced(c->pods))
		*ret_reason = "the pod cache is not synced yet";
	else if (!kube_informer_synced(c->nodes))
		*ret_reason = "the node cache is not synced yet";
	else if (last == 0 || now_usec() - last > CLUSTER_CONTACT_MAX_USEC)
		*ret_reason = "the apiserver has not answered for more than 15 s";
	else
		return true;
	return false;
}

json_t *cluster_pods(const struct cluster *c)
{
	return kube_informer_list(c->pods);
}

json_t *cluster_nodes(const struct cluster *c)
{
	return kube_informer_list(c->nodes);
}
