/* The netd daemon object: its environment table, start-up, the lease-file loop, reload and
 * the SIGTERM drain (net-epoch-runtime.md §1.8 with the dnsmasq design of §1.14).
 *
 * Start-up, in order: load pool.json; take the instance lock; bind the bus; converge node
 * setup (the CLI's setup.c: bridge, sysctls, iptables, dnsmasq config, conflist); read the
 * lease file and reconcile the /32 routes with it; start dnsmasq; watch the lease file and
 * pool.json (a change re-applies setup); serve /metrics. Any failure there is fatal (the
 * unit restarts us).
 *
 * Lease file changes: dnsmasq rewrites its file in place (truncate, then write), so a read
 * can catch it half written. Each change is therefore read twice: at once, taking only what
 * the file adds or renews (the latency vkd waits on), and again once the file has been quiet
 * for LEASE_SETTLE_USEC, taking removals too. dnsmasq does not rewrite the file when a lease
 * expires, so a timer at the earliest expiry ends leases on time.
 *
 * A lease that ends loses its route only when no other active lease holds its address. */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>

#include "cocoon/fsutil.h"
#include "cocoon/log.h"
#include "cocoon/loop.h"
#include "cocoon/watch.h"
#include "netd.h"

/* The first read comes on the loop iteration after the change (no debounce: a read that
 * catches the file half written costs little, since it only adds); the settle read comes
 * after the file has been quiet this long. */
#define LEASE_DEBOUNCE_USEC (0ULL)
#define LEASE_SETTLE_USEC   (300 * 1000ULL)
/* Distinct bad lines remembered (so each is logged once) and logged per read. */
#define BAD_SEEN_MAX     4096
#define BAD_LOG_PER_READ 20
/* Released leases remembered until the file drops them. */
#define RELEASED_MAX 1024

struct netd_daemon_config netd_daemon_config;

static const char *const dnsmasq_modes[] = { "managed", "external", NULL };

const struct conf_var netd_daemon_conf_vars[] = {
	{ NETD_ENV_LOG_LEVEL, NULL, "info", &conf_log_level, &netd_daemon_config.log_level, NULL,
	  "Log level (debug, info, warning, error)." },
	{ NETD_ENV_ROOT, NULL, NULL, &conf_string, &netd_daemon_config.root, NULL,
	  "Prefix for every file netd reads or writes (tests run in a temporary root)." },
	{ "COCOON_NET_STATE_DIR", NULL, NETD_STATE_DIR_DEFAULT, &conf_string,
	  &netd_daemon_config.state_dir, NULL, "Where cocoon-net keeps pool.json." },
	{ "COCOON_NET_LEASE_FILE", NULL, NULL, &conf_string, &netd_daemon_config.lease_file, NULL,
	  "Lease file to watch, dnsmasq or cocoon-net JSON format "
	  "(default: " NETD_DNSMASQ_LEASE_FILE ", where node setup points dnsmasq)." },
	{ "COCOON_NET_DNSMASQ", NULL, "managed", &conf_enum, &netd_daemon_config.dnsmasq_mode,
	  dnsmasq_modes,
	  "managed: netd runs dnsmasq for cni0 and restarts it if it dies; external: a host "
	  "unit (dnsmasq-cni.service) runs it." },
	{ "COCOON_NET_DNSMASQ_BIN", NULL, "dnsmasq", &conf_string, &netd_daemon_config.dnsmasq_bin,
	  NULL, "The dnsmasq binary (managed mode), looked up in PATH." },
	{ "COCOON_NET_METRICS_ADDR", NULL, ":9092", &conf_listen, &netd_daemon_config.metrics_addr,
	  NULL,
	  "Plain-HTTP listener for /metrics, /healthz and /readyz; set but empty disables it." },
	{ "COCOON_NET_SKIP_IPTABLES", NULL, "false", &conf_bool, &netd_daemon_config.skip_iptables,
	  NULL,
	  "Leave iptables alone when re-applying node setup (cocoon-net adopt without "
	  "--manage-iptables)." },
};

const size_t netd_daemon_conf_vars_len = ELEMENTSOF(netd_daemon_conf_vars);

void netd_daemon_config_finish(struct netd_daemon_config *cfg)
{
	const char *v = getenv("COCOON_NET_METRICS_ADDR");

	/* conf_load() reads an empty variable as unset; the original's empty --metrics-addr
	 * turns metrics off, and an empty variable is how a unit file says that. */
	if (v && !*v)
		cfg->metrics_addr = NULL;
}

struct netd {
	struct loop *loop;
	sd_event *event;
	const struct netd_daemon_config *cfg;
	struct netd_paths *paths;
	char *lease_path, *lock_path;
	int lock_fd;
	struct netd_pool *pool;
	char gateway[NETD_IPV4_STRLEN];
	struct netd_lease_set *known;
	struct netd_routes *routes;
	struct netd_dhcp *dhcp;
	struct netd_ipc *ipc;
	struct netd_metrics *metrics;
	struct watch *lease_watch, *pool_watch;
	sd_event_source *expiry_timer, *settle_timer;
	uint64_t *bad_seen; /* hashes of the bad lines of the last read, sorted */
	size_t n_bad_seen;
	struct netd_lease *released; /* leases ended by LEASE_RELEASE the file still lists */
	size_t n_released;
	unsigned draining;
	char description[512];
};

static uint64_t now_realtime(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/* ---- applying lease changes ---- */

static void netd_arm_expiry(struct netd *n)
{
	uint64_t next = netd_leases_next_expiry(n->known);
	int r;

	if (next == 0) {
		(void)sd_event_source_set_enabled(n->expiry_timer, SD_EVENT_OFF);
		return;
	}
	r = sd_event_source_set_time(n->expiry_timer, next);
	if (r >= 0)
		r = sd_event_source_set_enabled(n->expiry_timer, SD_EVENT_ONESHOT);
	if (r < 0)
		log_warning_errno(r, "cannot arm the lease expiry timer, leases will end on the "
				     "next lease file change instead: %m");
}

static void netd_apply_change(struct netd *n, const struct netd_lease_change *c,
			      enum netd_counter ended)
{
	const struct netd_lease *l = &c->lease;
	int r = 0;

	if (c->kind == NETD_LEASE_EXPIRED) {
		log_info("lease %s: %s %s", ended == NETD_COUNT_RELEASED ? "released" : "ended",
			 l->mac, l->ip);
		/* Another MAC may hold the address now (the file moved it): keep its route. */
		if (!netd_lease_set_find_ip(n->known, l->addr))
			r = netd_routes_del(n->routes, l->addr);
		netd_metrics_count(n->metrics, ended);
	} else {
		if (c->kind == NETD_LEASE_GRANTED)
			log_info("lease granted: %s %s", l->mac, l->ip);
		else
			log_debug("lease renewed: %s %s", l->mac, l->ip);
		r = netd_routes_add(n->routes, l->addr);
		netd_metrics_count(n->metrics, c->kind == NETD_LEASE_GRANTED ? NETD_COUNT_GRANTED
									     : NETD_COUNT_RENEWED);
	}
	if (r < 0) {
		log_warning_errno(r, "cannot %s the route %s/32 dev %s, ignoring: %m",
				  c->kind == NETD_LEASE_EXPIRED ? "remove" : "add", l->ip,
				  NETD_BRIDGE);
		netd_metrics_count(n->metrics, NETD_COUNT_ROUTE_ERROR);
	}
	r = netd_ipc_publish(n->ipc, c);
	if (r < 0)
		log_warning_errno(r,
				  "cannot publish the %s event for %s, subscribers will see a "
				  "gap: %m",
				  netd_lease_event_to_string(c->kind), l->mac);
}

static void netd_apply_changes(struct netd *n, struct netd_lease_change *ch, size_t k,
			       enum netd_counter ended)
{
	for (size_t i = 0; i < k; i++)
		netd_apply_change(n, &ch[i], ended);
	free(ch);
	netd_arm_expiry(n);
}

/* ---- reading the lease file ---- */

struct read_ctx {
	struct netd *netd;
	uint64_t *seen; /* this read's bad lines */
	size_t n_seen, alloc;
	unsigned logged, unlogged;
};

static uint64_t fnv1a(const char *p, size_t n)
{
	uint64_t h = 1469598103934665603ULL;

	for (size_t i = 0; i < n; i++)
		h = (h ^ (uint8_t)p[i]) * 1099511628211ULL;
	return h;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

/* Logs a bad line unless the previous read had it too: a bad line stays in the file across
 * every rewrite, and its line number shifts, so it is known by its text. */
static void netd_on_bad_line(const char *message, const char *raw, size_t raw_len, void *userdata)
{
	struct read_ctx *c = userdata;
	struct netd *n = c->netd;
	uint64_t h = raw ? fnv1a(raw, raw_len) : fnv1a(message, strlen(message));

	if (c->n_seen < BAD_SEEN_MAX) {
		if (c->n_seen == c->alloc) {
			size_t a = MAX(c->alloc * 2, (size_t)16);
			uint64_t *v = reallocarray(c->seen, a, sizeof *v);

			if (v) {
				c->seen = v;
				c->alloc = a;
			}
		}
		if (c->n_seen < c->alloc)
			c->seen[c->n_seen++] = h;
	}
	if (n->n_bad_seen > 0 && bsearch(&h, n->bad_seen, n->n_bad_seen, sizeof h, cmp_u64))
		return;
	netd_metrics_count(n->metrics, NETD_COUNT_BAD_LINE);
	if (c->logged++ < BAD_LOG_PER_READ)
		log_warning("lease file %s: %s, skipping", n->lease_path, message);
	else
		c->unlogged++;
}

/* A full read replaces the remembered bad lines (one fixed or removed may be logged again
 * if it comes back); a read that may have caught the file half written only adds to them,
 * or the lines it missed would be logged anew by the next read. */
static void netd_remember_bad(struct netd *n, struct read_ctx *c, bool full)
{
	size_t total = c->n_seen + (full ? 0 : n->n_bad_seen), j = 0;
	uint64_t *v = NULL;

	if (total > 0) {
		v = calloc(total, sizeof *v);
		if (!v)
			return; /* keep the old set: at worst a line is logged twice */
		if (c->n_seen > 0)
			memcpy(v, c->seen, c->n_seen * sizeof *v);
		if (!full && n->n_bad_seen > 0)
			memcpy(v + c->n_seen, n->bad_seen, n->n_bad_seen * sizeof *v);
		qsort(v, total, sizeof *v, cmp_u64);
		for (size_t i = 0; i < total; i++)
			if (j == 0 || v[j - 1] != v[i])
				v[j++] = v[i];
	}
	free(n->bad_seen);
	n->bad_seen = v;
	n->n_bad_seen = MIN(j, (size_t)BAD_SEEN_MAX);
}

/* Parses the lease file; NULL *ret (and 0) when it should be left alone this time. */
static int netd_read_leases(struct netd *n, unsigned flags, struct netd_lease_set **ret)
{
	_cleanup_(freep) char *data = NULL, *error = NULL;
	struct read_ctx c = { .netd = n };
	size_t len = 0;
	int r;

	*ret = NULL;
	r = fs_read_file(n->lease_path, NETD_LEASE_FILE_MAX, &data, &len);
	if (r == -ENOENT) /* no file yet (dnsmasq creates it), or removed: no leases */
		return netd_lease_set_new(ret);
	if (r < 0) {
		netd_metrics_count(n->metrics, NETD_COUNT_LEASE_FILE_ERROR);
		log_warning_errno(r, "cannot read the lease file %s, keeping the leases known: %m",
				  n->lease_path);
		return 0;
	}
	r = netd_leases_parse(data, len, flags, netd_on_bad_line, &c, ret, &error);
	if (c.unlogged > 0)
		log_warning("lease file %s: %u more bad lines, skipping", n->lease_path,
			    c.unlogged);
	if (r == -EBADMSG) {
		netd_metrics_count(n->metrics, NETD_COUNT_LEASE_FILE_ERROR);
		log_warning("lease file %s refused, keeping the leases known: %s", n->lease_path,
			    error);
		r = 0;
	}
	if (r >= 0 && *ret)
		netd_remember_bad(n, &c, !(flags & NETD_LEASES_SKIP_PARTIAL));
	free(c.seen);
	return r;
}

/* A released lease stays in the file until dnsmasq handles our DHCPRELEASE (and for ever
 * with a file nobody rewrites, such as a JSON file of the Go daemon): the file's copy is
 * not news. The tombstone goes once the file drops the lease, or lists it with another
 * expiry or address (the client asked again: a real lease). */
static void netd_filter_released(struct netd *n, struct netd_lease_set *file, bool prune)
{
	size_t j = 0;

	for (size_t i = 0; i < n->n_released; i++) {
		const struct netd_lease *t = &n->released[i];
		const struct netd_lease *l = netd_lease_set_find(file, t->mac);

		if (l && l->addr == t->addr && l->expires_usec == t->expires_usec)
			(void)netd_lease_set_remove(file, t->mac, NULL);
		else if (l || prune)
			continue;
		n->released[j++] = *t;
	}
	n->n_released = j;
}

static void netd_remember_released(struct netd *n, const struct netd_lease *l)
{
	if (n->n_released == RELEASED_MAX) {
		/* The oldest tombstone goes: its lease is the likeliest to be gone already. */
		memmove(n->released, n->released + 1, (RELEASED_MAX - 1) * sizeof *l);
		n->n_released--;
	}
	if (!n->released) {
		n->released = calloc(RELEASED_MAX, sizeof *l);
		if (!n->released)
			return; /* the release stands; a rewrite may announce the lease again */
	}
	n->released[n->n_released++] = *l;
}

/* Read the lease file and act on what changed; removals only when the file has settled. */
static void netd_sync_leases(struct netd *n, bool removals)
{
	_cleanup_(netd_lease_set_freep) struct netd_lease_set *file = NULL;
	struct netd_lease_change *ch = NULL;
	size_t k = 0;
	int r;

	r = netd_read_leases(n, removals ? 0 : NETD_LEASES_SKIP_PARTIAL, &file);
	if (r >= 0 && file) {
		netd_filter_released(n, file, removals);
		r = netd_leases_update(n->known, file, now_realtime(), removals, &ch, &k);
	}
	if (r < 0) {
		log_warning_errno(r, "cannot process the lease file %s, ignoring this change: %m",
				  n->lease_path);
		return;
	}
	if (file)
		netd_apply_changes(n, ch, k, NETD_COUNT_EXPIRED);
}

static void netd_on_lease_file(struct watch *w, bool exists, void *userdata)
{
	struct netd *n = userdata;
	int r;

	netd_sync_leases(n, false);
	r = loop_timer_arm(n->settle_timer, LEASE_SETTLE_USEC);
	if (r < 0) /* no second look: take removals from this read */
		netd_sync_leases(n, true);
}

static int netd_on_settle(sd_event_source *s, uint64_t usec, void *userdata)
{
	netd_sync_leases(userdata, true);
	return 0;
}

static int netd_on_expiry(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct netd *n = userdata;
	struct netd_lease_change *ch = NULL;
	size_t k = 0;
	int r = netd_leases_expire(n->known, now_realtime(), &ch, &k);

	if (r < 0) {
		log_warning_errno(r, "cannot expire leases, retrying on the next change: %m");
		return 0;
	}
	netd_apply_changes(n, ch, k, NETD_COUNT_EXPIRED);
	return 0;
}

/* ---- pool and node setup ---- */

/* Loads pool.json into n (replacing the pool only on success). */
static int netd_load_pool(struct netd *n, char **ret_error)
{
	_cleanup_(netd_pool_freep) struct netd_pool *pool = NULL;
	struct netd_cidr subnet;
	uint32_t gw;
	int r;

	r = netd_pool_load(n->paths->pool_file, &pool, ret_error);
	if (r < 0)
		return r;
	r = netd_cidr_parse(pool->subnet, &subnet);
	if (r >= 0)
		r = netd_gateway_resolve(&subnet, pool->gateway, &gw, ret_error);
	if (r < 0) {
		if (!*ret_error && asprintf(ret_error, "%s: invalid subnet '%s'",
					    n->paths->pool_file, pool->subnet) < 0)
			*ret_error = NULL;
		return r;
	}
	if (pool->n_ips == 0)
		return asprintf(ret_error, "%s: no valid IPs in pool", n->paths->pool_file) < 0
			   ? -ENOMEM
			   : -EINVAL;
	netd_ipv4_format(gw, n->gateway);
	netd_pool_free(n->pool);
	n->pool = TAKE_PTR(pool);
	return 0;
}

static int netd_converge(struct netd *n, bool *ret_dnsmasq_changed)
{
	size_t applied = 0;
	int r;

	r = netd_setup_converge(n->pool, n->paths,
				n->cfg->skip_iptables || n->pool->skip_iptables ? NETD_SETUP_SKIP_IPTABLES
										: 0,
				&applied,
				ret_dnsmasq_changed);
	if (r < 0) {
		netd_metrics_count(n->metrics, NETD_COUNT_SETUP_ERROR);
		return r;
	}
	log_info("node setup: %s", applied ? "converged" : "no changes");
	return 0;
}

static void netd_reconcile_routes(struct netd *n)
{
	unsigned added = 0, removed = 0, failed = 0;
	int r = netd_routes_reconcile(n->routes, n->known, &added, &removed, &failed);

	if (r < 0) {
		log_warning_errno(r, "cannot reconcile the /32 routes, ignoring: %m");
		netd_metrics_count(n->metrics, NETD_COUNT_ROUTE_ERROR);
		return;
	}
	if (failed) {
		log_warning("routes: %u of %zu could not be set, ignoring", failed, n->known->n);
		netd_metrics_count(n->metrics, NETD_COUNT_ROUTE_ERROR);
	}
	log_info("routes: %zu active leases, %u routes added, %u stale routes removed", n->known->n,
		 added, removed);
}

int netd_daemon_reload(struct netd *n, char **ret_error)
{
	int r;

	*ret_error = NULL;
	r = netd_load_pool(n, ret_error);
	if (r < 0) {
		netd_metrics_count(n->metrics, NETD_COUNT_SETUP_ERROR);
		log_error("reload: %s", *ret_error ? *ret_error : strerror(-r));
		return r;
	}
	r = netd_converge(n, NULL);
	if (r < 0)
		return asprintf(ret_error, "node setup failed: %s (details in netd's log)",
				strerror(-r)) < 0
			   ? -ENOMEM
			   : r;
	/* dnsmasq compares its config bytes itself, so a hand edit counts too. */
	r = netd_dhcp_reload(n->dhcp);
	if (r < 0)
		return asprintf(ret_error, "cannot reload dnsmasq: %s", strerror(-r)) < 0 ? -ENOMEM
											  : r;
	netd_sync_leases(n, true);
	netd_reconcile_routes(n);
	return 0;
}

static void netd_on_pool_file(struct watch *w, bool exists, void *userdata)
{
	struct netd *n = userdata;
	_cleanup_(freep) char *error = NULL;

	if (!exists) {
		log_warning("%s was removed, keeping the node as it is", n->paths->pool_file);
		return;
	}
	log_info("%s changed, re-applying node setup", n->paths->pool_file);
	(void)netd_daemon_reload(n, &error);
}

/* ---- queries (ipc.c, metrics.c) ---- */

const struct netd_lease_set *netd_daemon_leases(const struct netd *n)
{
	return n->known;
}

void netd_daemon_get_status(const struct netd *n, struct netd_daemon_status *ret)
{
	*ret = (struct netd_daemon_status){
		.platform = n->pool->platform ? n->pool->platform : "",
		.node = n->pool->node_name ? n->pool->node_name : "",
		.subnet = n->pool->subnet ? n->pool->subnet : "",
		.gateway = n->gateway,
		.bridge = NETD_BRIDGE,
		.pool_size = n->pool->n_ips,
		.active_leases = n->known->n,
		.dnsmasq_restarts = netd_dhcp_restarts(n->dhcp),
		.dnsmasq_running = netd_dhcp_running(n->dhcp),
	};
}

bool netd_daemon_ready(const struct netd *n, const char **ret_reason)
{
	if (n->draining) {
		*ret_reason = "shutting down";
		return false;
	}
	if (!netd_dhcp_running(n->dhcp)) {
		*ret_reason = "dnsmasq is not running (restarting)";
		return false;
	}
	return true;
}

int netd_daemon_release(struct netd *n, const char *mac)
{
	char norm[NETD_MAC_SIZE];
	struct netd_lease_change c = { .kind = NETD_LEASE_EXPIRED };
	int r;

	if (netd_mac_normalize(mac, norm) < 0)
		return -EINVAL;
	r = netd_lease_set_remove(n->known, norm, &c.lease);
	if (r < 0)
		return r;
	netd_apply_change(n, &c, NETD_COUNT_RELEASED);
	netd_remember_released(n, &c.lease);
	netd_arm_expiry(n);
	/* Without this dnsmasq would keep the address for the rest of the lease (24 h). */
	r = netd_dhcp_release(n->dhcp, &c.lease, n->gateway);
	if (r < 0)
		log_warning_errno(r,
				  "cannot send dnsmasq a DHCPRELEASE for %s %s, the address "
				  "stays taken until the lease expires: %m",
				  c.lease.mac, c.lease.ip);
	return 0;
}

/* ---- start-up and shutdown ---- */

/* One netd per node: two would fight over dnsmasq, the routes and the bus sockets (nanomsg
 * takes over an ipc:// path silently). The original refused with its pid file (§1.8); an
 * flock()ed file gives the same answer and cannot go stale. */
static int netd_lock(struct netd *n)
{
	char pid[32];
	ssize_t k;
	int r;

	if (asprintf(&n->lock_path, "%s/netd.lock", n->paths->state_dir) < 0)
		return log_oom_errno();
	n->lock_fd = open(n->lock_path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (n->lock_fd < 0)
		return log_error_errno(errno, "cannot open %s: %m", n->lock_path);
	if (flock(n->lock_fd, LOCK_EX | LOCK_NB) < 0) {
		r = -errno;
		k = pread(n->lock_fd, pid, sizeof pid - 1, 0);
		pid[MAX(k, 0)] = 0;
		if (r == -EWOULDBLOCK)
			return log_error_errno(r, "another netd is running (pid %s, lock %s)",
					       pid[0] ? pid : "unknown", n->lock_path);
		return log_error_errno(r, "cannot lock %s: %m", n->lock_path);
	}
	k = snprintf(pid, sizeof pid, "%d", (int)getpid());
	if (ftruncate(n->lock_fd, 0) < 0 || pwrite(n->lock_fd, pid, (size_t)k, 0) != k)
		log_debug_errno(errno, "cannot write our pid to %s, ignoring: %m", n->lock_path);
	return 0;
}

static int netd_open_paths(struct netd *n)
{
	_cleanup_(freep) char *dir = NULL;
	char *slash;
	int r;

	r = netd_paths_new(n->cfg->root, n->cfg->state_dir, &n->paths);
	if (r < 0)
		return log_oom_errno();
	if (n->cfg->lease_file)
		r = fs_path_join(n->paths->root, n->cfg->lease_file, &n->lease_path);
	else
		r = (n->lease_path = strdup(n->paths->dnsmasq_lease_file)) ? 0 : -ENOMEM;
	if (r < 0)
		return log_error_errno(r, "invalid COCOON_NET_LEASE_FILE: %m");
	/* dnsmasq creates its lease file but not the directory, and the watch needs it. */
	dir = strdup(n->lease_path);
	if (!dir)
		return log_oom_errno();
	slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = 0;
		r = fs_mkdir_p(dir, 0755);
		if (r < 0)
			return log_error_errno(r, "cannot create %s: %m", dir);
	}
	return 0;
}

/* Node setup, then routes for the leases already in the file. */
static int netd_start_node(struct netd *n)
{
	_cleanup_(netd_lease_set_freep) struct netd_lease_set *file = NULL;
	struct netd_lease_change *ch = NULL;
	size_t k = 0;
	int r;

	r = netd_converge(n, NULL);
	if (r < 0)
		return log_error_errno(r, "node setup failed, giving up: %m");
	r = netd_routes_new(NETD_BRIDGE, &n->routes);
	if (r < 0)
		return log_error_errno(r, "cannot open rtnetlink: %m");
	r = netd_read_leases(n, 0, &file);
	if (r >= 0 && !file) /* refused whole: start with none, the next write will tell */
		r = netd_lease_set_new(&file);
	if (r >= 0)
		r = netd_leases_update(n->known, file, now_realtime(), true, &ch, &k);
	if (r < 0)
		return log_error_errno(r, "cannot read the lease file %s: %m", n->lease_path);
	/* Subscribers fetch LEASE_LIST when they start; these are not news. */
	free(ch);
	netd_reconcile_routes(n);
	return 0;
}

static int netd_start_watches(struct netd *n)
{
	int r;

	r = watch_new(n->event, n->lease_path, netd_on_lease_file, n, &n->lease_watch);
	if (r < 0)
		return log_error_errno(r, "cannot watch %s: %m", n->lease_path);
	watch_set_debounce(n->lease_watch, LEASE_DEBOUNCE_USEC);
	r = watch_new(n->event, n->paths->pool_file, netd_on_pool_file, n, &n->pool_watch);
	if (r < 0)
		return log_error_errno(r, "cannot watch %s: %m", n->paths->pool_file);
	r = sd_event_add_time(n->event, &n->settle_timer, CLOCK_MONOTONIC, 0, 1000, netd_on_settle,
			      n);
	if (r >= 0)
		r = sd_event_source_set_enabled(n->settle_timer, SD_EVENT_OFF);
	if (r >= 0)
		r = sd_event_add_time(n->event, &n->expiry_timer, CLOCK_REALTIME, 0, 100 * 1000,
				      netd_on_expiry, n);
	if (r >= 0)
		r = sd_event_source_set_enabled(n->expiry_timer, SD_EVENT_OFF);
	if (r < 0)
		return log_error_errno(r, "cannot set up the lease timers: %m");
	netd_arm_expiry(n);
	return 0;
}

static int netd_start_pool(struct netd *n)
{
	_cleanup_(freep) char *error = NULL;
	int r = netd_load_pool(n, &error);

	if (r < 0)
		return log_error_errno(r, "%s", error ? error : "cannot load pool.json: %m");
	return 0;
}

static void netd_on_part_stopped(void *userdata)
{
	struct netd *n = userdata;

	if (--n->draining == 0)
		loop_drain_done(n->loop);
}

static void netd_on_drain(struct loop *l, void *userdata)
{
	struct netd *n = userdata;

	log_info("stopping: dnsmasq and the metrics listener; routes stay for the guests");
	watch_free(n->lease_watch);
	watch_free(n->pool_watch);
	n->lease_watch = n->pool_watch = NULL;
	(void)sd_event_source_set_enabled(n->settle_timer, SD_EVENT_OFF);
	(void)sd_event_source_set_enabled(n->expiry_timer, SD_EVENT_OFF);
	n->draining = 2;
	netd_dhcp_stop(n->dhcp, netd_on_part_stopped, n);
	netd_metrics_shutdown(n->metrics, netd_on_part_stopped, n);
}

static int netd_start_dhcp(struct netd *n)
{
	struct netd_dhcp_options o = {
		.managed = streq(n->cfg->dnsmasq_mode, "managed"),
		.bin = n->cfg->dnsmasq_bin,
		.conf = n->paths->dnsmasq_conf,
		.bridge = NETD_BRIDGE,
	};
	int r = netd_dhcp_new(n->event, &o, &n->dhcp);

	if (r < 0)
		return log_error_errno(r, "cannot set up dnsmasq supervision: %m");
	return netd_dhcp_start(n->dhcp);
}

int netd_daemon_new(struct loop *loop, const struct netd_daemon_config *cfg, struct netd **ret)
{
	_cleanup_(netd_daemon_freep) struct netd *n = NULL;
	int r;

	n = calloc(1, sizeof *n);
	if (!n)
		return log_oom_errno();
	n->loop = loop;
	n->event = loop_event(loop);
	n->cfg = cfg;
	n->lock_fd = -EBADF;
	r = netd_lease_set_new(&n->known);
	if (r < 0)
		return log_oom_errno();
	if ((r = netd_open_paths(n)) < 0 || (r = netd_start_pool(n)) < 0 ||
	    (r = netd_lock(n)) < 0 || (r = netd_ipc_new(n->event, n, &n->ipc)) < 0 ||
	    (r = netd_start_node(n)) < 0 || (r = netd_start_dhcp(n)) < 0 ||
	    (r = netd_start_watches(n)) < 0)
		return r;
	if (cfg->metrics_addr) {
		r = netd_metrics_new(n->event, n, cfg->metrics_addr, &n->metrics);
		if (r < 0)
			return r;
	}
	r = loop_add_drain(loop, netd_on_drain, n);
	if (r < 0)
		return log_error_errno(r, "cannot register the shutdown drain: %m");
	*ret = TAKE_PTR(n);
	return 0;
}

void netd_daemon_free(struct netd *n)
{
	if (!n)
		return;
	watch_free(n->lease_watch);
	watch_free(n->pool_watch);
	sd_event_source_disable_unref(n->settle_timer);
	sd_event_source_disable_unref(n->expiry_timer);
	netd_metrics_free(n->metrics);
	netd_ipc_free(n->ipc);
	netd_dhcp_free(n->dhcp);
	netd_routes_free(n->routes);
	netd_lease_set_free(n->known);
	netd_pool_free(n->pool);
	netd_paths_free(n->paths);
	free(n->bad_seen);
	free(n->released);
	free(n->lease_path);
	free(n->lock_path);
	closep(&n->lock_fd);
	free(n);
}

const char *netd_daemon_describe(struct netd *n)
{
	int k;

	k = snprintf(n->description, sizeof n->description,
		     "%zu leases of a %zu-address pool on %s, dnsmasq %s, bus %s and %s",
		     n->known->n, n->pool->n_ips, n->pool->subnet,
		     netd_dhcp_managed(n->dhcp) ? "managed" : "external", netd_ipc_endpoint(n->ipc),
		     netd_ipc_events_endpoint(n->ipc));
	if (n->metrics && k > 0 && (size_t)k < sizeof n->description)
		snprintf(n->description + k, sizeof n->description - (size_t)k,
			 ", metrics on port %d", netd_metrics_port(n->metrics));
	return n->description;
}
