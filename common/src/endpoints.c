/* Standard daemon endpoints (/metrics, /healthz, /readyz) and TLS key-pair rotation glue.
 * See endpoints.h. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cocoon/endpoints.h"
#include "cocoon/log.h"
#include "cocoon/tls.h"
#include "cocoon/watch.h"

#define METRICS_RENDER_CAP (8 * 1024 * 1024)
/* A rotation replaces the certificate and the key within moments of each other (a secret
 * volume swaps both at once); the two watches' callbacks are folded into one reload. */
#define ROTATION_SETTLE_USEC (50 * 1000)

static int on_metrics(struct http_request *req, void *userdata)
{
	struct metrics *m = userdata;
	struct buf out = BUF_INIT(METRICS_RENDER_CAP);
	int r;

	r = metrics_render(m, &out);
	if (r >= 0)
		r = http_reply(req, 200, METRICS_CONTENT_TYPE, out.data, out.len);
	buf_free(&out);
	return r;
}

int endpoints_add_metrics(struct http_server *s, struct metrics *m)
{
	return http_server_add_route(s, "GET", "/metrics", 0, on_metrics, m);
}

struct health {
	endpoints_ready_fn ready;
	void *userdata;
};

static int on_healthz(struct http_request *req, void *userdata)
{
	return http_reply(req, 200, "text/plain; charset=utf-8", "ok\n", 3);
}

static int on_readyz(struct http_request *req, void *userdata)
{
	const struct health *h = userdata;
	const char *reason = "not ready";

	if (!h->ready || h->ready(h->userdata, &reason))
		return http_reply(req, 200, "text/plain; charset=utf-8", "ready\n", 6);
	return http_reply_error(req, 503, reason);
}

int endpoints_add_health(struct http_server *s, endpoints_ready_fn ready, void *userdata)
{
	/* One small allocation per server, alive as long as the process: servers have no
	 * route-destructor hook, and daemons create their servers once. */
	static struct health slots[4];
	static size_t used;
	int r;

	if (used >= ELEMENTSOF(slots))
		return -ENOSPC;
	slots[used] = (struct health){ ready, userdata };
	r = http_server_add_route(s, "GET", "/healthz", 0, on_healthz, NULL);
	if (r < 0)
		return r;
	r = http_server_add_route(s, "GET", "/readyz", 0, on_readyz, &slots[used]);
	if (r < 0)
		return r;
	used++;
	return 0;
}

struct tls_rotation {
	sd_event *event;
	sd_event_source *settle;
	struct http_server *server;
	struct watch *cert, *key;
	char *cert_path;
	struct metric *reloads, *fingerprint;
	char current[TLS_FINGERPRINT_SIZE];
	tls_rotation_fn on_reload;
	void *userdata;
};

static void rotation_publish_fingerprint(struct tls_rotation *r)
{
	char fp[TLS_FINGERPRINT_SIZE];

	if (!r->fingerprint || tls_file_fingerprint(r->cert_path, fp) < 0)
		return;
	if (r->current[0])
		metric_set(r->fingerprint, METRIC_LABELS(r->current), 0);
	memcpy(r->current, fp, sizeof fp);
	metric_set(r->fingerprint, METRIC_LABELS(r->current), 1);
}

static int rotation_on_settled(sd_event_source *src, uint64_t usec, void *userdata)
{
	struct tls_rotation *r = userdata;
	int res;

	res = http_server_reload_tls(r->server);
	if (r->reloads)
		metric_inc(r->reloads, METRIC_LABELS(res < 0 ? "failure" : "success"));
	if (res >= 0)
		rotation_publish_fingerprint(r);
	if (r->on_reload)
		r->on_reload(r, res, r->userdata);
	return 0;
}

static void rotation_on_change(struct watch *w, bool exists, void *userdata)
{
	struct tls_rotation *r = userdata;
	uint64_t now;

	/* A file that vanished is mid-rotation; the watch fires again when it is back. */
	if (!exists)
		return;
	if (sd_event_now(r->event, CLOCK_MONOTONIC, &now) < 0)
		return;
	if (r->settle) {
		(void)sd_event_source_set_time(r->settle, now + ROTATION_SETTLE_USEC);
		(void)sd_event_source_set_enabled(r->settle, SD_EVENT_ONESHOT);
		return;
	}
	if (sd_event_add_time(r->event, &r->settle, CLOCK_MONOTONIC, now + ROTATION_SETTLE_USEC, 0,
			      rotation_on_settled, r) < 0)
		(void)rotation_on_settled(NULL, 0, r); /* no timer: reload at once */
	else
		(void)sd_event_source_set_enabled(r->settle, SD_EVENT_ONESHOT);
}

static int rotation_add_metrics(struct tls_rotation *r, struct metrics *m)
{
	static const char *const result_label[] = { "result", NULL };
	static const char *const sha_label[] = { "sha256", NULL };
	static const struct metric_desc reloads = {
		.name = "cocoon_tls_reloads_total",
		.help = "TLS key pair reloads after the certificate or key file changed.",
		.labels = result_label,
	};
	static const struct metric_desc fingerprint = {
		.name = "cocoon_tls_certificate_fingerprint_info",
		.help = "1 for the SHA-256 fingerprint of the certificate served now.",
		.labels = sha_label,
		.max_series = 16,
	};
	int k;

	k = metrics_add(m, METRIC_COUNTER, &reloads, &r->reloads);
	if (k < 0)
		return k;
	/* both series exist from the start, so a failure shows as a change, not a new line */
	metric_add(r->reloads, METRIC_LABELS("success"), 0);
	metric_add(r->reloads, METRIC_LABELS("failure"), 0);
	return metrics_add(m, METRIC_GAUGE, &fingerprint, &r->fingerprint);
}

int tls_rotation_new(sd_event *e, struct http_server *s, const char *cert_path,
		     const char *key_path, struct metrics *m, tls_rotation_fn on_reload,
		     void *userdata, struct tls_rotation **ret)
{
	_cleanup_(tls_rotation_freep) struct tls_rotation *r = NULL;
	int k;

	r = calloc(1, sizeof *r);
	if (!r)
		return -ENOMEM;
	r->event = e;
	r->server = s;
	r->on_reload = on_reload;
	r->userdata = userdata;
	r->cert_path = strdup(cert_path);
	if (!r->cert_path)
		return -ENOMEM;
	if (m) {
		k = rotation_add_metrics(r, m);
		if (k < 0)
			return k;
		rotation_publish_fingerprint(r);
	}
	k = watch_new(e, cert_path, rotation_on_change, r, &r->cert);
	if (k < 0)
		return k;
	k = watch_new(e, key_path, rotation_on_change, r, &r->key);
	if (k < 0)
		return k;
	*ret = TAKE_PTR(r);
	return 0;
}

void tls_rotation_free(struct tls_rotation *r)
{
	if (!r)
		return;
	watch_free(r->cert);
	watch_free(r->key);
	sd_event_source_disable_unref(r->settle);
	free(r->cert_path);
	free(r);
}
