/* What every daemon serves besides its own API: GET /metrics, GET /healthz, GET /readyz,
 * and the glue that reloads a TLS listener's key pair when its files change (cert-manager
 * rotation, a Kubernetes secret volume's `..data` swap).
 *
 * The daemon decides what "ready" means and logs reload results; this module only wires
 * the routes and the watches. */
#pragma once

#include <stdbool.h>
#include <systemd/sd-event.h>

#include "cocoon/http.h"
#include "cocoon/metrics.h"

/* GET /metrics: the registry rendered in the Prometheus text format. */
int endpoints_add_metrics(struct http_server *s, struct metrics *m);

/* Returns true when ready; otherwise sets *ret_reason to a short sentence for the 503. */
typedef bool (*endpoints_ready_fn)(void *userdata, const char **ret_reason);

/* GET /healthz → 200 "ok" while the process serves at all; GET /readyz → 200 "ready", or
 * 503 with the reason from ready(). */
int endpoints_add_health(struct http_server *s, endpoints_ready_fn ready, void *userdata);

/* Watches cert_path and key_path and calls http_server_reload_tls() when either changes
 * (debounced). on_reload gets the result (0, or the error with tls_last_error() set). When
 * m is given, cocoon_tls_reloads_total{result="success|failure"} counts the attempts and
 * cocoon_tls_certificate_fingerprint_info{sha256} names the certificate in use. */
struct tls_rotation;
typedef void (*tls_rotation_fn)(struct tls_rotation *r, int result, void *userdata);
int tls_rotation_new(sd_event *e, struct http_server *s, const char *cert_path,
		     const char *key_path, struct metrics *m, tls_rotation_fn on_reload,
		     void *userdata, struct tls_rotation **ret);
void tls_rotation_free(struct tls_rotation *r);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct tls_rotation *, tls_rotation_free);
