/* The admission routes: POST /mutate, /validate, /validate-cocoonset and
 * /validate-cocoonhibernation (any method is accepted, as in the original, §3.2).
 *
 * A request goes body → admission_request_parse() (400 with the decoder's message) →
 * the route's decision → AdmissionReview response (200). A decision that needs the cluster
 * (the parent of a /scale request, the namespace's CocoonHibernations, /mutate's
 * reservation) returns ADMISSION_NEED_FETCH; the handler then holds the request, makes the
 * call and decides again when it completes. Every request records exactly one sample of
 * cocoon_webhook_admission_total{handler,result,reason} (§3.7) and one latency
 * observation, including the 400s (error/decode).
 *
 * /mutate (operator-webhook.md §3.9 G2 with CONTRACT.md §4's fixes): pods that are not cocoon
 * pods, CocoonSet and DaemonSet pods and pods already placed or named are allowed untouched
 * (skipped); the others get a reservation and a JSONPatch. A pod that cannot be given a
 * valid VM name is denied with the reason. A reservation that cannot be stored (apiserver
 * errors, conflicts past RESERVE_ATTEMPTS, no answer within RESERVE_DEADLINE_USEC, caches
 * not synced yet) is allowed without a patch (error/affinity_failed), as in G2: the
 * webhook must not stop pods from being created when its own state store is unavailable.
 * Dry-run requests get the patch but write nothing (sideEffects NoneOnDryRun). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cocoon/http.h"
#include "cocoon/kube.h"
#include "cocoon/log.h"
#include "cocoon/metrics.h"
#include "webhookd.h"

struct handlers;
struct admission_ctx;

/* Returns 0 with ctx->verdict set, ADMISSION_NEED_FETCH when a call was started (it ends
 * in handlers_finish()), or < 0 (500). */
typedef int (*decide_fn)(struct admission_ctx *ctx);

struct route {
	const char *path;
	const char *metric; /* the handler label */
	decide_fn decide;
};

struct admission_ctx {
	struct handlers *h;
	struct admission_ctx *prev, *next;
	const struct route *route;
	struct http_request *req;
	struct admission_request *ar;
	uint64_t start_usec;
	struct kube_call *call;
	struct reserve *reserve;
	struct admission_verdict verdict;
	json_t *patch;
};

/* What a route's http handler gets: the table entry and the handlers it belongs to. */
struct binding {
	struct handlers *h;
	const struct route *route;
};

#define N_ROUTES 4

struct handlers {
	struct binding bindings[N_ROUTES];
	struct cluster *cluster;
	struct reserver *reserver;
	struct metric *admissions, *latency, *reservations, *releases;
	struct admission_ctx *pending; /* requests waiting for the apiserver */
	struct buf response;           /* each reply is written here, then copied out */
};

static const struct kube_resource cocoonhibernations = { "cocoonset.cocoonstack.io", "v1",
							 "cocoonhibernations", true };

static uint64_t now_usec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000ULL + (uint64_t)ts.tv_nsec / 1000;
}

static void ctx_free(struct admission_ctx *ctx)
{
	struct handlers *h;

	if (!ctx)
		return;
	h = ctx->h;
	if (ctx->prev)
		ctx->prev->next = ctx->next;
	else if (h->pending == ctx)
		h->pending = ctx->next;
	if (ctx->next)
		ctx->next->prev = ctx->prev;
	kube_call_cancel(ctx->call);
	reserve_free(ctx->reserve);
	admission_verdict_done(&ctx->verdict);
	json_decref(ctx->patch);
	admission_request_free(ctx->ar);
	http_request_unref(ctx->req);
	free(ctx);
}
DEFINE_TRIVIAL_CLEANUP_FUNC(struct admission_ctx *, ctx_free);

static void record(struct handlers *h, const char *handler, enum admission_result result,
		   const char *reason, uint64_t start_usec)
{
	(void)metric_inc(h->admissions,
			 METRIC_LABELS(handler, admission_result_to_string(result), reason));
	(void)metric_observe(h->latency, METRIC_LABELS(handler),
			     (double)(now_usec() - start_usec) / 1e6);
}

/* Sends the verdict (and patch) and frees ctx. */
static void handlers_finish(struct admission_ctx *ctx)
{
	struct buf *response = &ctx->h->response;
	int r;

	buf_reset(response);
	r = admission_response_verdict(ctx->ar->uid, &ctx->verdict, ctx->patch, response);
	if (r < 0) {
		log_warning_errno(r, "%s: cannot encode the response for %s: %m", ctx->route->path,
				  ctx->ar->uid);
		(void)http_reply_error(ctx->req, 500, "encode response");
		record(ctx->h, ctx->route->metric, ADMISSION_RESULT_ERROR, "encode",
		       ctx->start_usec);
	} else {
		(void)http_reply(ctx->req, 200, "application/json", response->data, response->len);
		record(ctx->h, ctx->route->metric, ctx->verdict.result, ctx->verdict.reason,
		       ctx->start_usec);
	}
	ctx_free(ctx);
}

static const char *status_message(int error, const struct kube_status *status)
{
	return status && status->message ? status->message : strerror(-error);
}

static void handlers_on_parent(struct kube_call *call, int error, json_t *obj,
			       const struct kube_status *status, void *userdata)
{
	struct admission_ctx *ctx = userdata;
	struct workload_parent parent = { .object = obj };
	int r;

	ctx->call = NULL;
	if (error == -ENOENT)
		parent.status = WORKLOAD_PARENT_NOT_FOUND;
	else if (error < 0) {
		parent.status = WORKLOAD_PARENT_ERROR;
		parent.error = status_message(error, status);
	}
	r = workload_validate(ctx->ar, &parent, &ctx->verdict);
	if (r < 0)
		r = admission_verdict_deny(&ctx->verdict, ADMISSION_RESULT_ERROR, "parent_fetch",
					   "cocoon-webhook: cannot verify parent workload: %s",
					   strerror(-r));
	handlers_finish(ctx);
}

static int decide_validate(struct admission_ctx *ctx)
{
	struct kube_resource res = { "apps", "v1", ctx->ar->resource, true };
	_cleanup_(freep) char *path = NULL;
	int r;

	r = workload_validate(ctx->ar, NULL, &ctx->verdict);
	if (r != ADMISSION_NEED_FETCH)
		return r;
	path = kube_path(&res, ctx->ar->ns, ctx->ar->name, NULL);
	if (!path)
		return -ENOMEM;
	r = kube_get(cluster_client(ctx->h->cluster), path, handlers_on_parent, ctx, &ctx->call);
	return r < 0 ? r : ADMISSION_NEED_FETCH;
}

static int decide_cocoonset(struct admission_ctx *ctx)
{
	return validate_cocoonset(ctx->ar, &ctx->verdict);
}

static void handlers_on_hibernations(struct kube_call *call, int error, json_t *obj,
				     const struct kube_status *status, void *userdata)
{
	struct admission_ctx *ctx = userdata;
	struct validate_hibernation_list existing = { .items = obj };
	int r;

	ctx->call = NULL;
	if (error < 0)
		existing.error = status_message(error, status);
	r = validate_cocoonhibernation(ctx->ar, &existing, &ctx->verdict);
	if (r < 0)
		r = admission_verdict_deny(&ctx->verdict, ADMISSION_RESULT_ERROR, "list",
					   "cocoon-webhook: cannot verify podRef uniqueness: %s",
					   strerror(-r));
	handlers_finish(ctx);
}

static int decide_cocoonhibernation(struct admission_ctx *ctx)
{
	_cleanup_(freep) char *path = NULL;
	int r;

	r = validate_cocoonhibernation(ctx->ar, NULL, &ctx->verdict);
	if (r != ADMISSION_NEED_FETCH)
		return r;
	path = kube_path(&cocoonhibernations, ctx->ar->ns, NULL, NULL);
	if (!path)
		return -ENOMEM;
	r = kube_list(cluster_client(ctx->h->cluster), path, NULL, handlers_on_hibernations, ctx,
		      &ctx->call);
	return r < 0 ? r : ADMISSION_NEED_FETCH;
}

static bool reserve_error_is_the_pods(int error)
{
	return error == -EINVAL || error == -ENAMETOOLONG || error == -EEXIST;
}

static void handlers_on_reserved(struct reserve *res, int error, const char *message,
				 void *userdata)
{
	struct admission_ctx *ctx = userdata;
	const json_t *reservation;
	const char *key;
	int r;

	if (error < 0 && reserve_error_is_the_pods(error))
		r = admission_verdict_deny(&ctx->verdict, ADMISSION_RESULT_DENY, "",
					   "cocoon-webhook: %s", message);
	else if (error < 0) {
		log_warning("mutate: pod %s/%s admitted without a reservation: %s", ctx->ar->ns,
			    ctx->ar->name, message);
		r = admission_verdict_allow(&ctx->verdict, ADMISSION_RESULT_ERROR,
					    "affinity_failed");
	} else {
		reservation = reserve_result(res, &key);
		r = affinity_pod_patch(ctx->ar->object, reservation, &ctx->patch);
		if (r >= 0)
			r = admission_verdict_allow(&ctx->verdict, ADMISSION_RESULT_ALLOW, "");
		if (r >= 0 && !ctx->ar->dry_run)
			(void)metric_inc(ctx->h->reservations, METRIC_LABELS(reserve_pool(res)));
		log_debug("mutate: %s → %s (attempts %u)", key,
			  json_string_value(json_object_get(reservation, "vmName")),
			  reserve_attempts(res));
	}
	if (r < 0) {
		json_decref(ctx->patch);
		ctx->patch = NULL;
		(void)admission_verdict_allow(&ctx->verdict, ADMISSION_RESULT_ERROR,
					      "affinity_failed");
	}
	handlers_finish(ctx);
}

static int decide_mutate(struct admission_ctx *ctx)
{
	const struct admission_request *ar = ctx->ar;
	_cleanup_(freep) char *err = NULL;
	const char *skip;
	int r;

	if (!streq(ar->kind, "Pod"))
		return admission_verdict_allow(&ctx->verdict, ADMISSION_RESULT_SKIPPED, "kind");
	if (ar->operation != ADMISSION_CREATE)
		return admission_verdict_allow(&ctx->verdict, ADMISSION_RESULT_SKIPPED,
					       "operation");
	if (!json_is_object(ar->object))
		return admission_verdict_allow(&ctx->verdict, ADMISSION_RESULT_SKIPPED, "decode");
	skip = affinity_pod_skip_reason(ar->object);
	if (skip)
		return admission_verdict_allow(&ctx->verdict, ADMISSION_RESULT_SKIPPED, skip);
	r = reserve_new(ctx->h->reserver, ar->object, ar->ns, ar->name, ar->dry_run,
			handlers_on_reserved, ctx, &ctx->reserve, &err);
	if (r == -EBUSY) {
		log_warning("mutate: pod %s/%s admitted without a reservation: too many "
			    "reservations queued (%d)",
			    ar->ns, ar->name, RESERVE_QUEUE_MAX);
		return admission_verdict_allow(&ctx->verdict, ADMISSION_RESULT_ERROR,
					       "affinity_failed");
	}
	if (r < 0 && err)
		return admission_verdict_deny(&ctx->verdict, ADMISSION_RESULT_DENY, "",
					      "cocoon-webhook: %s", err);
	return r < 0 ? r : ADMISSION_NEED_FETCH;
}

static const struct route routes[] = {
	{ "/mutate", "mutate", decide_mutate },
	{ "/validate", "validate", decide_validate },
	{ "/validate-cocoonset", "validate_cocoonset", decide_cocoonset },
	{ "/validate-cocoonhibernation", "validate_cocoonhibernation", decide_cocoonhibernation },
};

_Static_assert(ELEMENTSOF(routes) == N_ROUTES, "one binding per route");

static int handlers_on_request(struct http_request *req, void *userdata)
{
	const struct binding *b = userdata;
	const struct route *route = b->route;
	struct handlers *h = b->h;
	_cleanup_(ctx_freep) struct admission_ctx *ctx = NULL;
	_cleanup_(freep) char *err = NULL;
	const char *body;
	size_t len;
	int r;

	ctx = calloc(1, sizeof *ctx);
	if (!ctx)
		return -ENOMEM;
	ctx->h = h;
	ctx->route = route;
	ctx->start_usec = now_usec();
	ctx->req = http_request_ref(req);
	body = http_request_body(req, &len);
	r = admission_request_parse(body, len, &ctx->ar, &err);
	if (r < 0) {
		record(h, route->metric, ADMISSION_RESULT_ERROR, "decode", ctx->start_usec);
		return http_reply_error(req, 400, err ? err : "decode admission review");
	}
	r = route->decide(ctx);
	if (r < 0) {
		log_warning_errno(r, "%s: cannot decide on %s: %m", route->path, ctx->ar->uid);
		record(h, route->metric, ADMISSION_RESULT_ERROR, "internal", ctx->start_usec);
		return r;
	}
	if (r == ADMISSION_NEED_FETCH) {
		ctx->next = h->pending;
		if (h->pending)
			h->pending->prev = ctx;
		h->pending = TAKE_PTR(ctx);
		return 0;
	}
	handlers_finish(TAKE_PTR(ctx));
	return 0;
}

/* Admission latency: the webhook's budget is timeoutSeconds (5 s); most answers take well
 * under a millisecond, /mutate a few apiserver round trips. */
static const double latency_buckets[] = { 0.0001, 0.00025, 0.0005, 0.001, 0.0025,
					  0.005,  0.01,    0.025,  0.05,  0.1,
					  0.25,   0.5,     1,      2.5,   5 };

static int handlers_metrics(struct handlers *h, struct metrics *m)
{
	const struct metric_desc admissions = {
		.name = "cocoon_webhook_admission_total",
		.help = "Admission requests by handler, result (allow, deny, error, skipped) and "
			"reason.",
		.labels = METRIC_LABELS("handler", "result", "reason"),
	};
	const struct metric_desc latency = {
		.name = "cocoon_webhook_admission_duration_seconds",
		.help = "Time from a complete admission request to its answer.",
		.labels = METRIC_LABELS("handler"),
		.buckets = latency_buckets,
		.n_buckets = ELEMENTSOF(latency_buckets),
	};
	const struct metric_desc reservations = {
		.name = "cocoon_webhook_affinity_reservations_total",
		.help = "Reservations stored in cocoon-affinity-<pool> ConfigMaps, by pool.",
		.labels = METRIC_LABELS("pool"),
	};
	const struct metric_desc releases = {
		.name = "cocoon_webhook_affinity_releases_total",
		.help = "Reservations released by the reaper, by pool.",
		.labels = METRIC_LABELS("pool"),
	};
	int r;

	r = metrics_add(m, METRIC_COUNTER, &admissions, &h->admissions);
	if (r >= 0)
		r = metrics_add(m, METRIC_HISTOGRAM, &latency, &h->latency);
	if (r >= 0)
		r = metrics_add(m, METRIC_COUNTER, &reservations, &h->reservations);
	if (r >= 0)
		r = metrics_add(m, METRIC_COUNTER, &releases, &h->releases);
	return r;
}

int handlers_new(struct http_server *s, struct metrics *m, struct cluster *c, struct handlers **ret)
{
	_cleanup_(handlers_freep) struct handlers *h = calloc(1, sizeof *h);
	int r;

	if (!h)
		return -ENOMEM;
	h->cluster = c;
	h->response = BUF_INIT(0);
	r = reserver_new(c, &h->reserver);
	if (r >= 0)
		r = handlers_metrics(h, m);
	for (size_t i = 0; r >= 0 && i < ELEMENTSOF(routes); i++) {
		h->bindings[i] = (struct binding){ h, &routes[i] };
		r = http_server_add_route(s, NULL, routes[i].path, 0, handlers_on_request,
					  &h->bindings[i]);
	}
	if (r < 0)
		return r;
	*ret = TAKE_PTR(h);
	return 0;
}

void handlers_free(struct handlers *h)
{
	if (!h)
		return;
	while (h->pending)
		ctx_free(h->pending);
	reserver_free(h->reserver);
	buf_free(&h->response);
	free(h);
}

struct metric *handlers_releases_metric(const struct handlers *h)
{
	return h->releases;
}
