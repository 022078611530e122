/* operatord's configuration: the flags and environment variables of the original
 * cocoon-operator (operator-webhook.md §2.1; a flag wins over its variable, which wins over
 * the default), the registry of §2.16 (OCI_REGISTRY) or of Epoch (EPOCH_URL and its token,
 * CONTRACT.md §6), and POD_NAMESPACE for the leader-election Lease. */
#include <stdlib.h>
#include <string.h>

#include "cocoon/errmsg.h"
#include "operatord.h"

struct operatord_config operatord_config;

static const struct conf_range concurrency_range = { 1, 1024 };

const struct conf_var operatord_conf_vars[] = {
	{ "OPERATOR_LOG_LEVEL", NULL, "info", &conf_log_level, &operatord_config.log_level, NULL,
	  "Log level." },
	{ "METRICS_ADDR", NULL, ":8080", &conf_listen, &operatord_config.metrics_addr, NULL,
	  "Plain-HTTP listener for /metrics.", "metrics-bind-address" },
	{ "PROBE_ADDR", NULL, ":8081", &conf_listen, &operatord_config.probe_addr, NULL,
	  "Plain-HTTP listener for /healthz and /readyz.", "health-probe-bind-address" },
	{ "LEADER_ELECT", NULL, "true", &conf_bool, &operatord_config.leader_elect, NULL,
	  "Reconcile only while holding the Lease " OPERATORD_LEASE_NAME
	  " (false: always, for a single replica).",
	  "leader-elect" },
	{ "COCOONSET_CONCURRENCY", NULL, "4", &conf_int, &operatord_config.cocoonset_concurrency,
	  &concurrency_range, "CocoonSets reconciled at once (one key is never reconciled twice "
	  "at a time).", "cocoonset-concurrency" },
	{ "HIBERNATION_CONCURRENCY", NULL, "4", &conf_int,
	  &operatord_config.hibernation_concurrency, &concurrency_range,
	  "CocoonHibernations (and legacy Hibernations) reconciled at once.",
	  "hibernation-concurrency" },
	{ "OCI_REGISTRY", NULL, NULL, &conf_string, &operatord_config.oci_registry, NULL,
	  "Snapshot registry as host[:port][/prefix] (HTTPS); the :hibernate and :latest tags "
	  "of VM <name> live in <OCI_REGISTRY>/<name>. Required unless EPOCH_URL is set." },
	{ "EPOCH_URL", "EPOCH_SERVER", NULL, &conf_url, &operatord_config.epoch_url, NULL,
	  "Epoch (or any OCI registry) base URL, http:// or https://; wins over OCI_REGISTRY." },
	{ "EPOCH_TOKEN", "EPOCH_REGISTRY_TOKEN", NULL, &conf_string, &operatord_config.epoch_token,
	  NULL, "Bearer token for the registry (tag deletes need write access)." },
	{ "EPOCH_CA_CERT", NULL, NULL, &conf_string, &operatord_config.epoch_ca_cert, NULL,
	  "PEM CA trusted for the registry in addition to the system store." },
	{ "POD_NAMESPACE", NULL, NULL, &conf_string, &operatord_config.pod_namespace, NULL,
	  "Namespace of the leader-election Lease; unset: the in-cluster namespace, else "
	  "cocoon-system." },
	{ "LEASE_DURATION", NULL, "15s", &conf_duration, &operatord_config.lease_duration_usec,
	  NULL, "How long a standby waits after the leader's last renewal before taking over." },
	{ "RENEW_DEADLINE", NULL, "10s", &conf_duration, &operatord_config.renew_deadline_usec,
	  NULL, "How long the leader keeps trying to renew before it gives up (and exits)." },
	{ "RETRY_PERIOD", NULL, "2s", &conf_duration, &operatord_config.retry_period_usec, NULL,
	  "How often candidates try to acquire or renew the Lease." },
	{ "KUBECONFIG", NULL, NULL, &conf_string, &operatord_config.kubeconfig, NULL,
	  "Kubeconfig file(s), colon-separated; unset: ~/.kube/config, else the in-cluster "
	  "service account." },
};

const size_t operatord_conf_vars_len = ELEMENTSOF(operatord_conf_vars);

int operatord_config_check(const struct operatord_config *c, char **ret_error)
{
	if (!c->epoch_url && !c->oci_registry)
		return errmsg_set(ret_error, -EINVAL,
				  "OCI_REGISTRY must be set (or EPOCH_URL): suspend, wake and "
				  "deletion check and drop snapshot tags in the registry");
	if (c->oci_registry && !c->epoch_url && strstr(c->oci_registry, "://"))
		return errmsg_set(ret_error, -EINVAL,
				  "invalid OCI_REGISTRY=\"%s\": expected host[:port][/prefix] "
				  "without a scheme (use EPOCH_URL for a URL)", c->oci_registry);
	/* client-go's rule, which kube_leader_new() enforces: the renew deadline leaves room
	 * for at least one retry with jitter. */
	if (c->leader_elect && (c->retry_period_usec == 0 ||
				c->renew_deadline_usec * 10 <= c->retry_period_usec * 12 ||
				c->lease_duration_usec <= c->renew_deadline_usec))
		return errmsg_set(ret_error, -EINVAL,
				  "invalid leader election timing: need LEASE_DURATION > "
				  "RENEW_DEADLINE > 1.2 x RETRY_PERIOD > 0");
	return 0;
}
