/* webhookd's environment variables: names and defaults of the original cocoon-webhook
 * (operator-webhook.md §3.1) plus the G2 reaper's REAPER_* (§3.9). POD_CREATORS is not
 * listed: it belongs to the newest /mutate, which only denies, and this one reserves. */
#include "webhookd.h"

struct webhookd_config webhookd_config;

const struct conf_var webhookd_conf_vars[] = {
	{ "WEBHOOK_LOG_LEVEL", NULL, "info", &conf_log_level, &webhookd_config.log_level, NULL,
	  "Log level." },
	{ "TLS_CERT", NULL, "/etc/cocoon/webhook/certs/tls.crt", &conf_string,
	  &webhookd_config.tls_cert, NULL,
	  "PEM certificate (chain) of the admission listener; reloaded when the file changes." },
	{ "TLS_KEY", NULL, "/etc/cocoon/webhook/certs/tls.key", &conf_string,
	  &webhookd_config.tls_key, NULL,
	  "PEM private key of the admission listener; reloaded when the file changes." },
	{ "LISTEN_ADDR", NULL, ":8443", &conf_listen, &webhookd_config.listen_addr, NULL,
	  "HTTPS admission listener, used when systemd passes no socket." },
	{ "METRICS_ADDR", NULL, ":9090", &conf_listen, &webhookd_config.metrics_addr, NULL,
	  "Plain-HTTP listener for /metrics (a systemd socket named \"metrics\" wins)." },
	{ "KUBECONFIG", NULL, NULL, &conf_string, &webhookd_config.kubeconfig, NULL,
	  "Kubeconfig file(s), colon-separated; unset: ~/.kube/config, else the in-cluster "
	  "service account." },
	{ "REAPER_INTERVAL", NULL, "5m", &conf_duration, &webhookd_config.reaper_interval_usec,
	  NULL, "How often the reaper sweeps the cocoon-affinity-<pool> ConfigMaps." },
	{ "REAPER_GRACE", NULL, "30m", &conf_duration, &webhookd_config.reaper_grace_usec, NULL,
	  "How long a reservation's pod must have been gone before the reaper releases it." },
};

const size_t webhookd_conf_vars_len = ELEMENTSOF(webhookd_conf_vars);
