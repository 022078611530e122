/* netd's plain-HTTP listener (COCOON_NET_METRICS_ADDR, default :9092 as the original's
 * --metrics-addr; empty disables it): /metrics, /healthz, /readyz.
 *
 * Series: the original's two gauges keep their names (net-epoch-runtime.md §1.8:
 * cocoon_net_dhcp_lease_active, cocoon_net_dhcp_pool_available) so dashboards carry over;
 * the rest are netd's own. Gauges are read from the daemon at scrape time; counters are
 * bumped where the event happens. */
#include <string.h>

#include "cocoon/endpoints.h"
#include "cocoon/http.h"
#include "cocoon/log.h"
#include "cocoon/metrics.h"
#include "daemon.h"

/* Series set from the daemon's state at scrape time. */
enum {
	SCRAPED_POOL_SIZE,
	SCRAPED_ACTIVE,
	SCRAPED_AVAILABLE,
	SCRAPED_DNSMASQ_UP,
	SCRAPED_DNSMASQ_RESTARTS, /* a counter mirroring dhcp.c's count */
	_SCRAPED_MAX,
};

struct netd_metrics {
	struct netd *netd;
	struct http_server *server;
	struct metrics *registry;
	struct metric *counters[_NETD_COUNT_MAX];
	struct metric *scraped[_SCRAPED_MAX];
	int port;
	void (*on_stopped)(void *userdata);
	void *stopped_userdata;
};

static const struct {
	const char *name, *help, *label, *value;
} counter_desc[_NETD_COUNT_MAX] = {
	[NETD_COUNT_GRANTED] = { "cocoon_net_leases_granted_total",
				 "DHCP leases granted to a MAC (new, or a new address)." },
	[NETD_COUNT_RENEWED] = { "cocoon_net_leases_renewed_total",
				 "DHCP leases renewed (same MAC and address, new expiry)." },
	[NETD_COUNT_EXPIRED] = { "cocoon_net_leases_expired_total",
				 "DHCP leases that ended, by reason.", "reason", "expired" },
	[NETD_COUNT_RELEASED] = { "cocoon_net_leases_expired_total",
				  "DHCP leases that ended, by reason.", "reason", "released" },
	[NETD_COUNT_SETUP_ERROR] = { "cocoon_net_setup_errors_total",
				     "Node setup runs (start, reload, pool.json change) that "
				     "failed." },
	[NETD_COUNT_ROUTE_ERROR] = { "cocoon_net_route_errors_total",
				     "/32 host route additions or removals that failed." },
	[NETD_COUNT_BAD_LINE] = { "cocoon_net_lease_file_bad_lines_total",
				  "Malformed lease file lines (or JSON entries) skipped, each "
				  "counted once." },
	[NETD_COUNT_LEASE_FILE_ERROR] = { "cocoon_net_lease_file_errors_total",
					  "Lease file reads that failed or were refused whole." },
};

static const struct {
	enum metric_type type;
	const char *name, *help;
} scraped_desc[_SCRAPED_MAX] = {
	[SCRAPED_POOL_SIZE] = { METRIC_GAUGE, "cocoon_net_pool_size",
				"Addresses in the VM pool (pool.json)." },
	[SCRAPED_ACTIVE] = { METRIC_GAUGE, "cocoon_net_dhcp_lease_active",
			     "Active DHCP leases (each has a /32 route to cni0)." },
	[SCRAPED_AVAILABLE] = { METRIC_GAUGE, "cocoon_net_dhcp_pool_available",
				"Pool addresses not leased." },
	[SCRAPED_DNSMASQ_UP] = { METRIC_GAUGE, "cocoon_net_dnsmasq_up",
				 "1 while the supervised dnsmasq runs (always 1 with an external "
				 "dnsmasq)." },
	[SCRAPED_DNSMASQ_RESTARTS] = { METRIC_COUNTER, "cocoon_net_dnsmasq_restarts_total",
				       "Times the supervised dnsmasq was restarted (it died, or "
				       "its config changed)." },
};

static int metrics_collect(struct metrics *reg, void *userdata)
{
	struct netd_metrics *m = userdata;
	struct netd_daemon_status st;

	netd_daemon_get_status(m->netd, &st);
	(void)metric_set(m->scraped[SCRAPED_POOL_SIZE], NULL, (double)st.pool_size);
	(void)metric_set(m->scraped[SCRAPED_ACTIVE], NULL, (double)st.active_leases);
	(void)metric_set(m->scraped[SCRAPED_AVAILABLE], NULL,
			 st.pool_size > st.active_leases ? (double)(st.pool_size - st.active_leases)
							 : 0);
	(void)metric_set(m->scraped[SCRAPED_DNSMASQ_UP], NULL, st.dnsmasq_running);
	(void)metric_set(m->scraped[SCRAPED_DNSMASQ_RESTARTS], NULL, (double)st.dnsmasq_restarts);
	return 0;
}

static int metrics_register(struct netd_metrics *m)
{
	int r;

	for (size_t i = 0; i < _NETD_COUNT_MAX; i++) {
		const char *const *labels =
		    counter_desc[i].label ? METRIC_LABELS(counter_desc[i].label) : NULL;
		struct metric_desc d = { counter_desc[i].name, counter_desc[i].help, labels };

		/* Two counters share one family (expired/released are its reasons). */
		for (size_t j = 0; j < i; j++)
			if (streq(counter_desc[j].name, counter_desc[i].name))
				m->counters[i] = m->counters[j];
		if (!m->counters[i]) {
			r = metrics_add(m->registry, METRIC_COUNTER, &d, &m->counters[i]);
			if (r < 0)
				return r;
		}
	}
	for (size_t i = 0; i < _SCRAPED_MAX; i++) {
		struct metric_desc d = { scraped_desc[i].name, scraped_desc[i].help };

		r = metrics_add(m->registry, scraped_desc[i].type, &d, &m->scraped[i]);
		if (r < 0)
			return r;
	}
	/* Both reasons show from the start, so a rate() over them has a baseline. */
	(void)metric_add(m->counters[NETD_COUNT_EXPIRED], METRIC_LABELS("expired"), 0);
	(void)metric_add(m->counters[NETD_COUNT_RELEASED], METRIC_LABELS("released"), 0);
	r = metrics_add_collector(m->registry, metrics_collect, m);
	if (r >= 0)
		r = metrics_add_process_collector(m->registry);
	return r;
}

static bool metrics_ready(void *userdata, const char **ret_reason)
{
	struct netd_metrics *m = userdata;

	return netd_daemon_ready(m->netd, ret_reason);
}

int netd_metrics_new(sd_event *e, struct netd *n, const char *addr, struct netd_metrics **ret)
{
	_cleanup_(netd_metrics_freep) struct netd_metrics *m = NULL;
	int r;

	m = calloc(1, sizeof *m);
	if (!m)
		return log_oom_errno();
	m->netd = n;
	r = metrics_new(&m->registry);
	if (r >= 0)
		r = metrics_register(m);
	if (r >= 0)
		r = http_server_new(e, NULL, &m->server);
	if (r >= 0)
		r = endpoints_add_metrics(m->server, m->registry);
	if (r >= 0)
		r = endpoints_add_health(m->server, metrics_ready, m);
	if (r < 0)
		return log_error_errno(r, "cannot set up the metrics endpoint: %m");
	r = http_server_listen_address(m->server, addr);
	if (r < 0)
		return log_error_errno(r, "cannot listen on COCOON_NET_METRICS_ADDR=%s: %m", addr);
	m->port = r;
	*ret = TAKE_PTR(m);
	return 0;
}

void netd_metrics_free(struct netd_metrics *m)
{
	if (!m)
		return;
	http_server_free(m->server);
	metrics_free(m->registry);
	free(m);
}

void netd_metrics_count(struct netd_metrics *m, enum netd_counter c)
{
	if (!m || c >= _NETD_COUNT_MAX)
		return;
	(void)metric_inc(m->counters[c],
			 counter_desc[c].value ? METRIC_LABELS(counter_desc[c].value) : NULL);
}

int netd_metrics_port(const struct netd_metrics *m)
{
	return m ? m->port : 0;
}

static void metrics_on_stopped(struct http_server *s, void *userdata)
{
	struct netd_metrics *m = userdata;

	if (m->on_stopped)
		m->on_stopped(m->stopped_userdata);
}

void netd_metrics_shutdown(struct netd_metrics *m, void (*cb)(void *userdata), void *userdata)
{
	if (!m) {
		if (cb)
			cb(userdata);
		return;
	}
	m->on_stopped = cb;
	m->stopped_userdata = userdata;
	http_server_shutdown(m->server, metrics_on_stopped, m);
}
