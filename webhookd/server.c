/* webhookd's listeners: HTTPS admission (the routes of handlers.c, /healthz, /readyz) and
 * plain-HTTP /metrics; and the assembly of the daemon: cluster, handlers, reaper.
 *
 * Listeners come from systemd socket activation when present (fd names "admission" and
 * "metrics"; an unnamed set goes to admission), else from LISTEN_ADDR / METRICS_ADDR. The
 * key pair is loaded at start (fatal when missing or invalid: there is no self-signed
 * fallback, as in the original) and reloaded whenever the files change; a failed reload
 * keeps the previous certificate. SIGTERM drains both servers for at most 15 s.
 * /readyz is cluster_ready(): caches synced and the apiserver heard from recently; READY=1
 * goes to systemd once both caches are synced.
 *
 * After a burst of admissions the heap keeps the pages its connections used (TLS handshakes
 * and buffers, mostly), free but scattered between live blocks, so the heap top cannot
 * shrink on its own: once a tick passes with no request answered, malloc_trim() hands the
 * free pages back to the kernel. */
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cocoon/endpoints.h"
#include "cocoon/http.h"
#include "cocoon/log.h"
#include "cocoon/loop.h"
#include "cocoon/metrics.h"
#include "cocoon/tls.h"
#include "webhookd.h"

struct webhookd {
	struct loop *loop;
	struct http_server *admission, *metrics_server;
	struct metrics *metrics;
	struct tls_rotation *rotation;
	struct cluster *cluster;
	struct handlers *handlers;
	struct reaper *reaper;
	sd_event_source *trim_timer;
	uint64_t trim_requests; /* admission requests counted at the last tick */
	bool trim_due;          /* some were answered since the last trim */
	unsigned draining;
	char description[256];
};

#define WEBHOOKD_TRIM_TICK_USEC (2 * USEC_PER_SEC)

static bool webhookd_ready(void *userdata, const char **ret_reason)
{
	struct webhookd *w = userdata;

	return cluster_ready(w->cluster, ret_reason);
}

/* READY=1 only now: before the caches are synced /mutate cannot reserve (systemd hands
 * connections in anyway) and units ordered after webhookd would start too early. */
static void webhookd_on_synced(void *userdata)
{
	struct webhookd *w = userdata;

	log_info("caches synced, serving %s", w->description);
	(void)loop_notify_ready(w->loop, "serving %s", w->description);
}

static void webhookd_on_tls_reload(struct tls_rotation *r, int result, void *userdata)
{
	if (result < 0)
		log_warning("TLS key pair reload failed, still serving the previous certificate: "
			    "%s",
			    tls_last_error());
	else
		log_notice("TLS key pair reloaded");
}

static int webhookd_on_trim_tick(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct webhookd *w = userdata;
	struct http_server_stats st;
	int r;

	http_server_get_stats(w->admission, &st);
	if (st.requests != w->trim_requests) {
		w->trim_requests = st.requests;
		w->trim_due = true;
	} else if (w->trim_due) {
		(void)malloc_trim(0);
		w->trim_due = false;
	}
	r = loop_timer_arm(s, WEBHOOKD_TRIM_TICK_USEC);
	if (r < 0)
		log_warning_errno(r, "cannot re-arm the memory trim timer: %m");
	return 0;
}

static void webhookd_on_server_stopped(struct http_server *s, void *userdata)
{
	struct webhookd *w = userdata;

	if (--w->draining == 0)
		loop_drain_done(w->loop);
}

static void webhookd_on_drain(struct loop *l, void *userdata)
{
	struct webhookd *w = userdata;

	log_info("stopping: finishing requests in flight");
	w->draining = 2;
	http_server_shutdown(w->admission, webhookd_on_server_stopped, w);
	http_server_shutdown(w->metrics_server, webhookd_on_server_stopped, w);
}

/* Returns the number of systemd sockets adopted, or a negative error. */
static int webhookd_listen(struct webhookd *w, const struct webhookd_config *cfg, char *where,
			   size_t n)
{
	int m, a, r;

	m = http_server_listen_systemd(w->metrics_server, "metrics");
	if (m < 0)
		return log_error_errno(m, "cannot adopt the systemd metrics socket: %m");
	a = http_server_listen_systemd(w->admission, "admission");
	if (a == 0 && m == 0)
		a = http_server_listen_systemd(w->admission, NULL);
	if (a < 0)
		return log_error_errno(a, "cannot adopt the systemd admission socket: %m");
	if (a == 0) {
		r = http_server_listen_address(w->admission, cfg->listen_addr);
		if (r < 0)
			return log_error_errno(r, "cannot listen on LISTEN_ADDR=%s: %m",
					       cfg->listen_addr);
		snprintf(where, n, "admission on %s (port %d)", cfg->listen_addr, r);
	} else {
		snprintf(where, n, "admission on %d systemd socket(s)", a);
	}
	if (m == 0) {
		r = http_server_listen_address(w->metrics_server, cfg->metrics_addr);
		if (r < 0)
			return log_error_errno(r, "cannot listen on METRICS_ADDR=%s: %m",
					       cfg->metrics_addr);
		snprintf(where + strlen(where), n - strlen(where), ", metrics on %s (port %d)",
			 cfg->metrics_addr, r);
	} else {
		snprintf(where + strlen(where), n - strlen(where), ", metrics on a systemd socket");
	}
	return a + m;
}

static int webhookd_setup_metrics(struct webhookd *w)
{
	int r = metrics_new(&w->metrics);

	if (r >= 0)
		r = metrics_add_process_collector(w->metrics);
	if (r >= 0)
		r = endpoints_add_metrics(w->metrics_server, w->metrics);
	return r;
}

int webhookd_new(struct loop *loop, const struct webhookd_config *cfg, struct webhookd **ret)
{
	_cleanup_(webhookd_freep) struct webhookd *w = NULL;
	const struct http_server_config admission_cfg = { .max_body_bytes = ADMISSION_BODY_MAX };
	sd_event *e = loop_event(loop);
	int r;

	w = calloc(1, sizeof *w);
	if (!w)
		return log_oom_errno();
	w->loop = loop;
	r = cluster_new(e, webhookd_on_synced, w, &w->cluster);
	if (r < 0)
		return r;
	r = http_server_new(e, &admission_cfg, &w->admission);
	if (r >= 0)
		r = http_server_new(e, NULL, &w->metrics_server);
	if (r >= 0)
		r = webhookd_setup_metrics(w);
	if (r >= 0)
		r = endpoints_add_health(w->admission, webhookd_ready, w);
	if (r >= 0)
		r = handlers_new(w->admission, w->metrics, w->cluster, &w->handlers);
	if (r < 0)
		return log_error_errno(r, "cannot set up the HTTP servers: %m");
	r = reaper_new(w->cluster, cfg->reaper_interval_usec, cfg->reaper_grace_usec,
		       handlers_releases_metric(w->handlers), &w->reaper);
	if (r < 0)
		return log_error_errno(r, "cannot start the reaper: %m");

	r = http_server_set_tls(w->admission, cfg->tls_cert, cfg->tls_key, NULL, TLS_VERIFY_NONE);
	if (r < 0)
		return log_error_errno(r,
				       "cannot load the TLS key pair (TLS_CERT=%s, TLS_KEY=%s): %s",
				       cfg->tls_cert, cfg->tls_key, tls_last_error());
	r = tls_rotation_new(e, w->admission, cfg->tls_cert, cfg->tls_key, w->metrics,
			     webhookd_on_tls_reload, w, &w->rotation);
	if (r < 0)
		return log_error_errno(r, "cannot watch the TLS key pair for rotation: %m");

	r = webhookd_listen(w, cfg, w->description, sizeof w->description);
	if (r < 0)
		return r;
	r = loop_add_drain(loop, webhookd_on_drain, w);
	if (r < 0)
		return log_error_errno(r, "cannot register the shutdown drain: %m");
	r = sd_event_add_time_relative(e, &w->trim_timer, CLOCK_MONOTONIC, WEBHOOKD_TRIM_TICK_USEC,
				       0, webhookd_on_trim_tick, w);
	if (r < 0)
		return log_error_errno(r, "cannot arm the memory trim timer: %m");
	*ret = TAKE_PTR(w);
	return 0;
}

void webhookd_free(struct webhookd *w)
{
	if (!w)
		return;
	sd_event_source_disable_unref(w->trim_timer);
	tls_rotation_free(w->rotation);
	http_server_free(w->admission);
	http_server_free(w->metrics_server);
	handlers_free(w->handlers);
	reaper_free(w->reaper);
	cluster_free(w->cluster);
	metrics_free(w->metrics);
	free(w);
}

const char *webhookd_describe(const struct webhookd *w)
{
	return w->description;
}
