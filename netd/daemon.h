/* netd — the cocoon host-network daemon (CONTRACT.md §5, net-epoch-runtime.md §1.8, §1.14).
 *
 * Table of contents (the daemon half of netd/; netd.h, the CLI's header, includes this):
 *   netd.c     main(): configuration → daemon → READY → loop
 *   daemon.c   the environment table; start-up (pool.json, instance lock, bus, node
 *              setup, routes, dnsmasq, watches, metrics); the lease-file diff that drives
 *              routes and events; expiry timer; releases; reload; SIGTERM drain
 *   leases.c   the dnsmasq and cocoon-net JSON lease formats, lease sets and their diff
 *   routes.c   /32 host routes to cni0 for active leases (libnl-route-3), reconcile at start
 *   dhcp.c     dnsmasq for cni0 as a supervised child (restart with backoff) or an external
 *              dnsmasq-cni unit; DHCPRELEASE on behalf of a released guest
 *   ipc.c      the bus: LEASE_LOOKUP/RELEASE/LIST, NET_STATUS, NET_RELOAD served on
 *              bus_endpoint("netd"); LEASE_GRANTED/EXPIRED published on "netd-events"
 *   metrics.c  /metrics, /healthz, /readyz on a plain-HTTP listener
 *
 * Messages: common/include/cocoon/msg.h (netd group, 0x02xx). */
#pragma once

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "cocoon/conf.h"
#include "cocoon/loop.h"
#include "cocoon/macro.h"

#define NETD_SUMMARY                                                                               \
	"netd: the cocoon host-network daemon. Keeps the node set up from pool.json (bridge\n"     \
	"cni0, sysctls, iptables, dnsmasq config), runs dnsmasq for cni0, watches its lease\n"     \
	"file, keeps a /32 route per active lease, answers MAC->IP lookups on the bus\n"           \
	"(COCOON_NETD_BUS, default ipc://$COCOON_RUN_DIR/netd.sock) and publishes lease\n"         \
	"events (COCOON_NETD_EVENTS_BUS, default ipc://$COCOON_RUN_DIR/netd-events.sock;\n"        \
	"COCOON_RUN_DIR defaults to /run/cocoon)."

#define NETD_BUS_NAME        "netd"
#define NETD_EVENTS_BUS_NAME "netd-events"
/* How long SIGTERM waits for dnsmasq and in-flight HTTP requests. */
#define NETD_DRAIN_USEC (10 * 1000000ULL)

/* ---- daemon.c: configuration ---- */

struct netd_daemon_config {
	int log_level;
	const char *root;         /* NULL: "/"; prefixes every path below */
	const char *state_dir;    /* pool.json lives here */
	const char *lease_file;   /* NULL: the dnsmasq lease file under the root */
	const char *dnsmasq_mode; /* "managed" or "external" */
	const char *dnsmasq_bin;
	const char *metrics_addr; /* NULL: no metrics listener */
	bool skip_iptables;
};

extern struct netd_daemon_config netd_daemon_config;
extern const struct conf_var netd_daemon_conf_vars[];
extern const size_t netd_daemon_conf_vars_len;
/* After conf_load(): applies what the table cannot say (an empty COCOON_NET_METRICS_ADDR
 * disables the listener, as in the original). */
void netd_daemon_config_finish(struct netd_daemon_config *cfg);

/* ---- daemon.c: the daemon ---- */

struct netd;
struct netd_lease;
struct netd_lease_set;

int netd_daemon_new(struct loop *loop, const struct netd_daemon_config *cfg, struct netd **ret);
void netd_daemon_free(struct netd *n);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct netd *, netd_daemon_free);
/* "<N> leases of a <M>-address pool on <subnet>, dnsmasq managed, bus …" (READY status). */
const char *netd_daemon_describe(struct netd *n);

/* For ipc.c and metrics.c. */
const struct netd_lease_set *netd_daemon_leases(const struct netd *n);
bool netd_daemon_ready(const struct netd *n, const char **ret_reason);
/* Ends mac's lease now: route, event, and a DHCPRELEASE so dnsmasq frees the address; the
 * lease stays ended while the file still lists it unchanged. -EINVAL bad MAC, -ENOENT no
 * lease. */
int netd_daemon_release(struct netd *n, const char *mac);
/* Re-reads pool.json, re-applies node setup, restarts a managed dnsmasq whose config
 * changed, re-reads the lease file. On failure *ret_error says what failed. */
int netd_daemon_reload(struct netd *n, char **ret_error);
/* What NET_STATUS and the metrics report; strings owned by n, "" when unknown. */
struct netd_daemon_status {
	const char *platform, *node, *subnet, *gateway, *bridge;
	uint64_t pool_size, active_leases, dnsmasq_restarts;
	bool dnsmasq_running;
};
void netd_daemon_get_status(const struct netd *n, struct netd_daemon_status *ret);

/* ---- leases.c ---- */

#define NETD_MAC_SIZE   18    /* "aa:bb:cc:dd:ee:ff" + NUL */
#define NETD_LEASES_MAX 65536 /* leases read from one file; a /16 pool fits */
/* Lease files larger than this are refused (65536 dnsmasq lines are ~5 MiB). */
#define NETD_LEASE_FILE_MAX (16 * 1024 * 1024)

enum netd_lease_format {
	NETD_LEASE_FORMAT_DNSMASQ,
	NETD_LEASE_FORMAT_JSON,
};

struct netd_lease {
	char mac[NETD_MAC_SIZE];  /* lower case */
	char ip[INET_ADDRSTRLEN]; /* canonical dotted quad */
	uint32_t addr;            /* the same, host byte order */
	uint64_t expires_usec;    /* CLOCK_REALTIME; 0: never (a dnsmasq infinite lease) */
};

struct netd_lease_set {
	struct netd_lease *leases; /* sorted by mac, one lease per mac and per ip */
	size_t n;
	enum netd_lease_format format;
};

int netd_lease_set_new(struct netd_lease_set **ret);
void netd_lease_set_free(struct netd_lease_set *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct netd_lease_set *, netd_lease_set_free);
/* mac in any case; NULL when absent or not a MAC. */
const struct netd_lease *netd_lease_set_find(const struct netd_lease_set *s, const char *mac);
const struct netd_lease *netd_lease_set_find_ip(const struct netd_lease_set *s, uint32_t addr);
/* Removes mac's lease, copying it to *ret (may be NULL). -ENOENT when absent. */
int netd_lease_set_remove(struct netd_lease_set *s, const char *mac, struct netd_lease *ret);
bool netd_lease_active(const struct netd_lease *l, uint64_t now_usec);

/* "AA:bb:CC:dd:ee:ff" → "aa:bb:cc:dd:ee:ff". -EINVAL for anything else. */
int netd_mac_normalize(const char *s, char ret[static NETD_MAC_SIZE]);
/* RFC 3339 → CLOCK_REALTIME µs; times before 1970 give 1 (expired, not "never"). */
int netd_parse_rfc3339(const char *s, uint64_t *ret_usec);

/* A skipped line (dnsmasq) or array entry (JSON): message is "line 3: …" / "entry 2: …";
 * raw is the line as read (NULL for JSON), for callers that report each bad line once. */
typedef void (*netd_lease_bad_fn)(const char *message, const char *raw, size_t raw_len,
				  void *userdata);

enum {
	/* Stop before a last line without its newline: dnsmasq rewrites the file in place,
	 * so such a line may be half written. */
	NETD_LEASES_SKIP_PARTIAL = 1 << 0,
};

/* Parses either format (told apart by the first non-blank byte). Bad lines are reported
 * and skipped. -EBADMSG when the file is not JSON though it looks like it, or JSON of the
 * wrong shape; *ret_error (when ret_error is not NULL) then says where. -ENOMEM. */
int netd_leases_parse(const char *data, size_t len, unsigned flags, netd_lease_bad_fn on_bad,
		      void *userdata, struct netd_lease_set **ret, char **ret_error);
const char *netd_lease_format_to_string(enum netd_lease_format f);

enum netd_lease_event {
	NETD_LEASE_GRANTED, /* a MAC got an address (or a new one) */
	NETD_LEASE_RENEWED, /* same MAC and address, new expiry */
	NETD_LEASE_EXPIRED, /* the lease ended: expired, released, or replaced */
};

struct netd_lease_change {
	enum netd_lease_event kind;
	struct netd_lease lease;
};

/* Brings known in line with the active leases of file, as of now. Without removals, leases
 * the file no longer lists are kept (the file may be mid-rewrite) unless they expired or
 * their IP now belongs to another MAC. The changes (a MAC moving to a new IP is EXPIRED of
 * the old lease, then GRANTED) are returned in an array the caller frees; known is only
 * modified on success. */
int netd_leases_update(struct netd_lease_set *known, const struct netd_lease_set *file,
		       uint64_t now, bool removals, struct netd_lease_change **ret, size_t *ret_n);
/* Removes the leases expired as of now, returning them as EXPIRED changes. */
int netd_leases_expire(struct netd_lease_set *known, uint64_t now, struct netd_lease_change **ret,
		       size_t *ret_n);
/* The earliest expiry of a lease in known; 0 when none expires. */
uint64_t netd_leases_next_expiry(const struct netd_lease_set *known);
const char *netd_lease_event_to_string(enum netd_lease_event e);

/* ---- routes.c ---- */

/* The rtnetlink protocol number of netd's routes ("proto 200" in `ip route`): unassigned
 * in iproute2's rt_protos, so a reconcile can tell our routes from everyone else's. */
#define NETD_ROUTE_PROTOCOL 200

struct netd_routes;
int netd_routes_new(const char *bridge, struct netd_routes **ret);
void netd_routes_free(struct netd_routes *r);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct netd_routes *, netd_routes_free);
/* addr (host byte order)/32 dev bridge, main table; replaces a route to the same prefix.
 * -ENODEV without the bridge. */
int netd_routes_add(struct netd_routes *r, uint32_t addr);
/* 0 when the route is gone, including when it was not there. */
int netd_routes_del(struct netd_routes *r, uint32_t addr);
/* Make our routes exactly want's addresses: delete ours for anything else, (re)add each. */
int netd_routes_reconcile(struct netd_routes *r, const struct netd_lease_set *want,
			  unsigned *ret_added, unsigned *ret_removed, unsigned *ret_failed);

/* ---- dhcp.c ---- */

struct netd_dhcp;
struct netd_dhcp_options {
	bool managed;       /* run dnsmasq ourselves; false: a host unit runs it */
	const char *bin;    /* dnsmasq, looked up in $PATH */
	const char *conf;   /* the config node setup renders */
	const char *bridge; /* for DHCPRELEASE */
};
typedef void (*netd_dhcp_stopped_fn)(void *userdata);

int netd_dhcp_new(sd_event *e, const struct netd_dhcp_options *o, struct netd_dhcp **ret);
void netd_dhcp_free(struct netd_dhcp *d);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct netd_dhcp *, netd_dhcp_free);
/* Managed: start dnsmasq (its config must exist). External: nothing. Errors are logged. */
int netd_dhcp_start(struct netd_dhcp *d);
/* Managed: restart dnsmasq if its config changed since it started; 1 when restarting. */
int netd_dhcp_reload(struct netd_dhcp *d);
/* Stop a managed dnsmasq (SIGTERM, then SIGKILL); cb runs once it is gone (maybe now). */
void netd_dhcp_stop(struct netd_dhcp *d, netd_dhcp_stopped_fn cb, void *userdata);
bool netd_dhcp_running(const struct netd_dhcp *d);
bool netd_dhcp_managed(const struct netd_dhcp *d);
uint64_t netd_dhcp_restarts(const struct netd_dhcp *d);
/* Send dnsmasq a DHCPRELEASE for l, as if from the client; server is the address dnsmasq
 * answers from on the bridge (the gateway). */
int netd_dhcp_release(struct netd_dhcp *d, const struct netd_lease *l, const char *server);

/* ---- ipc.c ---- */

struct netd_ipc;
/* Binds bus_endpoint("netd") (requests) and bus_endpoint("netd-events") (events). */
int netd_ipc_new(sd_event *e, struct netd *n, struct netd_ipc **ret);
void netd_ipc_free(struct netd_ipc *i);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct netd_ipc *, netd_ipc_free);
/* LEASE_GRANTED for GRANTED and RENEWED, LEASE_EXPIRED for EXPIRED. */
int netd_ipc_publish(struct netd_ipc *i, const struct netd_lease_change *c);
const char *netd_ipc_endpoint(const struct netd_ipc *i);
const char *netd_ipc_events_endpoint(const struct netd_ipc *i);

/* ---- metrics.c ---- */

enum netd_counter {
	NETD_COUNT_GRANTED,
	NETD_COUNT_RENEWED,
	NETD_COUNT_EXPIRED,  /* ended by expiry or by dnsmasq dropping it from the file */
	NETD_COUNT_RELEASED, /* ended by LEASE_RELEASE */
	NETD_COUNT_SETUP_ERROR,
	NETD_COUNT_ROUTE_ERROR,
	NETD_COUNT_BAD_LINE,
	NETD_COUNT_LEASE_FILE_ERROR, /* unreadable, or refused whole */
	_NETD_COUNT_MAX,
};

struct netd_metrics;
/* Serves /metrics, /healthz and /readyz on addr. */
int netd_metrics_new(sd_event *e, struct netd *n, const char *addr, struct netd_metrics **ret);
void netd_metrics_free(struct netd_metrics *m);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct netd_metrics *, netd_metrics_free);
/* m may be NULL (metrics disabled). */
void netd_metrics_count(struct netd_metrics *m, enum netd_counter c);
int netd_metrics_port(const struct netd_metrics *m);
/* Finish requests in flight, then cb (now when m is NULL). */
void netd_metrics_shutdown(struct netd_metrics *m, void (*cb)(void *userdata), void *userdata);
