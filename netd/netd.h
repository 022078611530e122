/* netd — host networking of a cocoon node: the `cocoon-net` CLI and the `netd` daemon,
 * siblings sharing this header (and libnetd.a: every .c here but the two mains).
 *
 * Table of contents (CLI half; the daemon's files are listed in daemon.h):
 *   cocoon-net.c  main(): the subcommand table, flag parsing, usage generated from the table
 *   commands.c    init, adopt, teardown, status: what each command does, in order
 *   pool.c        IPv4 and CIDR helpers, the pool range (SubnetIPs), pool.json, file paths
 *   changes.c     the change set: one list of items (file, link, address, route, rule,
 *                 sysctl, cloud call) that is either printed (--dry-run) or applied
 *   setup.c       node setup and host teardown, planned as a change set (bridge, sysctls,
 *                 iptables, dnsmasq config, CNI conflist)
 *   link.c        netlink (libnl-route-3): the bridge, its address, link state, routes
 *   render.c      the dnsmasq config and CNI conflist text
 *   iptables.c    `iptables -S` parsing, the rules node setup wants, and their diff
 *   platform.c    cloud platform detection (metadata probes in parallel), metadata reads,
 *                 running the cloud CLIs
 *   cloud_gke.c   GKE: secondary range + alias IPs through `gcloud`
 *   cloud_volc.c  Volcengine: subnet + ENIs + secondary IPs through `ve`
 *
 * Behaviour follows net-epoch-runtime.md §1 with the dnsmasq DHCP design of §1.14
 * (CONTRACT.md §5). Differences from the original are deliberate and documented where they
 * are made; the main ones: every command plans a change set first, so a converged node
 * reports "no changes"; iptables rules cocoon-net adds carry a `cocoon-net` comment so
 * reconcile and teardown touch only its own rules; teardown removes what setup created.
 *
 * --root DIR (COCOON_NET_ROOT) prefixes every FILE cocoon-net and netd own: the state
 * directory, the dnsmasq config and lease file, the CNI conflist and the GKE cron file.
 * Kernel state is never prefixed: /proc/sys is per network namespace, so tests isolate it
 * with `ip netns exec` instead. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "cocoon/macro.h"
#include "cocoon/strv.h"

#define NETD_BRIDGE             "cni0"
#define NETD_STATE_DIR_DEFAULT  "/var/lib/cocoon/net"
#define NETD_POOL_FILE          "pool.json"
#define NETD_LEASES_JSON_FILE   "leases.json"
#define NETD_DNSMASQ_CONF       "/etc/dnsmasq-cni.d/cni0.conf"
#define NETD_DNSMASQ_LEASE_FILE "/var/lib/misc/dnsmasq.leases"
#define NETD_CNI_CONFLIST       "/etc/cni/net.d/30-dnsmasq-dhcp.conflist"
#define NETD_CNI_NETWORK        "dnsmasq-dhcp"
#define NETD_GKE_CRON_FILE      "/etc/cron.d/cocoon-net-fix-alias"
#define NETD_DNS_DEFAULT        "8.8.8.8,1.1.1.1"
#define NETD_ENV_ROOT           "COCOON_NET_ROOT"
#define NETD_ENV_LOG_LEVEL      "COCOON_NET_LOG_LEVEL"

#define NETD_POOL_SIZE_INIT  140
#define NETD_POOL_SIZE_ADOPT 253
/* A /16 worth of addresses: pool.json lists every IP, so a /8 pool would be a 200 MB file. */
#define NETD_POOL_SIZE_MAX   65534
#define NETD_POOL_SIZE_UNSET INT64_MIN
/* pool.json is read with this cap (NETD_POOL_SIZE_MAX IPs fit with room to spare). */
#define NETD_POOL_FILE_MAX (4 * 1024 * 1024)

#define NETD_PLATFORM_GKE  "gke"
#define NETD_PLATFORM_VOLC "volcengine"

/* Comments on the iptables rules cocoon-net adds (quote-free, so `iptables -S` output
 * round-trips). "cocoon-net-drop" is the original's; "cocoon-net" marks the ACCEPT and
 * MASQUERADE rules so teardown can tell them from rules an operator wrote. */
#define NETD_IPT_COMMENT      "cocoon-net"
#define NETD_IPT_COMMENT_DROP "cocoon-net-drop"


/* ---- pool.c: addresses, the pool, pool.json, paths ---- */

#define NETD_IPV4_STRLEN 16 /* "255.255.255.255" + NUL */
#define NETD_CIDR_STRLEN 19 /* "255.255.255.255/32" + NUL */

/* An IPv4 network, host byte order, always canonical (host bits clear). */
struct netd_cidr {
	uint32_t addr;
	unsigned prefix;
};

/* Dotted quad only (no shorthand such as "10.1"). -EINVAL otherwise. */
int netd_ipv4_parse(const char *s, uint32_t *ret);
char *netd_ipv4_format(uint32_t a, char buf[static NETD_IPV4_STRLEN]);
/* A Linux interface name: 1-15 of [A-Za-z0-9_.-], not "." or "..". */
bool netd_ifname_valid(const char *s);
/* "a.b.c.d/n", n 0-32; host bits are cleared (10.1.2.3/8 → 10.0.0.0/8, as the original's
 * net.ParseCIDR). -EINVAL otherwise. */
int netd_cidr_parse(const char *s, struct netd_cidr *ret);
char *netd_cidr_format(const struct netd_cidr *c, char buf[static NETD_CIDR_STRLEN]);
uint32_t netd_cidr_netmask(const struct netd_cidr *c);
uint32_t netd_cidr_broadcast(const struct netd_cidr *c);
bool netd_cidr_contains(const struct netd_cidr *c, uint32_t a);
/* Whether outer covers every address of inner. */
bool netd_cidr_covers(const struct netd_cidr *outer, const struct netd_cidr *inner);

/* The gateway for subnet: gateway_str when not empty (it must be inside the subnet and not
 * its network or broadcast address), else the first host address. The subnet must have at
 * least two host addresses (prefix ≤ 30). Errors name the flag and value in *ret_error. */
int netd_gateway_resolve(const struct netd_cidr *subnet, const char *gateway_str, uint32_t *ret,
			 char **ret_error);
/* SubnetIPs (§1.6): walk up from network+1, skip the gateway and the broadcast address,
 * stop after count addresses or at the end of the subnet. count must be in
 * [0, NETD_POOL_SIZE_MAX]. The list is sorted; *ret is NULL when it is empty. */
int netd_pool_range(const struct netd_cidr *subnet, uint32_t gateway, int64_t count, uint32_t **ret,
		    size_t *ret_n, char **ret_error);

/* Runs of consecutive addresses in a pool, for dnsmasq's dhcp-range lines. */
struct netd_range {
	uint32_t first, last;
};
/* Sorts and de-duplicates a copy of ips, then cuts it into runs. */
int netd_ranges_from_ips(const uint32_t *ips, size_t n, struct netd_range **ret, size_t *ret_n);

/* pool.json (§1.7): what init/adopt decided, read by teardown, status and netd. */
struct netd_pool {
	char *platform; /* NETD_PLATFORM_GKE or NETD_PLATFORM_VOLC */
	char *node_name;
	char *subnet;          /* canonical CIDR */
	char *gateway;         /* "" in the seed init writes before the cloud is touched */
	char *primary_nic;     /* NULL: omitted */
	char **secondary_nics; /* NULL: omitted */
	uint32_t *ips;         /* in file order; written as null when there are none */
	size_t n_ips;
	char **eni_ids;
	char *subnet_id;
	char *alias_range_name;
	char **dns_servers;
	bool drop_internal_access;
	char **drop_cidrs;
	/* Written by adopt (ours; the original has no such field): cloud resources were not
	 * provisioned by cocoon-net, so teardown and status leave the cloud alone. */
	bool adopted;
	/* Written by adopt without --manage-iptables (ours too): the operator keeps iptables,
	 * so netd's re-applied setup leaves it alone as well. */
	bool skip_iptables;
	char *updated_at; /* RFC3339Nano UTC; netd_pool_save() sets it */
};

int netd_pool_new(struct netd_pool **ret);
void netd_pool_free(struct netd_pool *p);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct netd_pool *, netd_pool_free);
/* Parse pool.json text. Unknown fields are ignored; a field of the wrong type, an IP that
 * is not IPv4, or a missing platform/nodeName/subnet is -EINVAL with *ret_error naming it. */
int netd_pool_parse(const char *text, size_t len, struct netd_pool **ret, char **ret_error);
/* Load path. A missing file is -ENOENT and *ret_error says "… (run 'cocoon-net init'
 * first)"; every other failure says what was wrong with the file. */
int netd_pool_load(const char *path, struct netd_pool **ret, char **ret_error);
/* The file text: 2-space indented JSON in the field order of §1.7, plus a newline. */
int netd_pool_format(const struct netd_pool *p, char **ret);
/* Set updated_at to the current time. */
int netd_pool_stamp(struct netd_pool *p);
/* Stamp the pool and write path atomically (directory 0750, file 0644). */
int netd_pool_save(struct netd_pool *p, const char *path);
/* Every field but updated_at. */
bool netd_pool_equal(const struct netd_pool *a, const struct netd_pool *b);

/* Where the files live, each prefixed by the root (--root / COCOON_NET_ROOT). */
struct netd_paths {
	char *root; /* NULL: none */
	char *state_dir;
	char *pool_file;
	char *leases_json; /* <state-dir>/leases.json: teardown deletes it (§1.13) */
	char *dnsmasq_conf;
	char *dnsmasq_lease_file;
	char *cni_conflist;
	char *gke_cron_file;
};

/* root may be NULL or ""; state_dir NULL means NETD_STATE_DIR_DEFAULT. */
int netd_paths_new(const char *root, const char *state_dir, struct netd_paths **ret);
void netd_paths_free(struct netd_paths *p);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct netd_paths *, netd_paths_free);

/* ---- changes.c: the change set ---- */

enum netd_change_kind {
	NETD_CHANGE_FILE,
	NETD_CHANGE_LINK,
	NETD_CHANGE_ADDRESS,
	NETD_CHANGE_ROUTE,
	NETD_CHANGE_RULE,
	NETD_CHANGE_SYSCTL,
	NETD_CHANGE_CLOUD,
	_NETD_CHANGE_KIND_MAX,
};

struct netd_change;
/* Make the change. On failure return -errno and, when there is more to say than %m (a
 * command's output), a malloc'd *ret_error. */
typedef int (*netd_change_apply_fn)(const struct netd_change *c, char **ret_error);

struct netd_change {
	enum netd_change_kind kind;
	char *summary; /* one line: "create bridge cni0", "update dnsmasq config /etc/… (12 lines,
			* 0644)" */
	char *detail;  /* what it writes (file text, a command line); NULL when the summary says
			* it all */
	netd_change_apply_fn apply;
	/* Arguments of apply; which ones are used depends on it. */
	char *target; /* path, link or sysctl name */
	char *data;   /* bytes to write */
	size_t data_len;
	mode_t mode;
	char **argv; /* a command */
	uint32_t addr;
	unsigned prefix;
	void *ext; /* borrowed: state of the code that planned the change (a cloud provider) */
};

struct netd_changes {
	struct netd_change *items;
	size_t n, alloc;
};

void netd_changes_clear(struct netd_changes *ch);
/* Append a change; summary is printf-formatted. The new item is returned so the caller can
 * fill in apply's arguments; its strings are freed by netd_changes_clear(). */
struct netd_change *netd_changes_add(struct netd_changes *ch, enum netd_change_kind kind,
				     netd_change_apply_fn apply, const char *fmt, ...)
    _printf_(4, 5);
const char *netd_change_kind_to_string(enum netd_change_kind k);
/* One line per change ("  <kind>  <summary>"), "  no changes" when empty; with details,
 * each detail line follows indented by 6 and prefixed "| ". */
void netd_changes_print(const struct netd_changes *ch, FILE *f, bool details);
/* Apply in order, printing each change to progress (may be NULL) as it succeeds. Stops at
 * the first failure, which it logs naming the change; *ret_applied (may be NULL) counts
 * the changes made. */
int netd_changes_apply(const struct netd_changes *ch, FILE *progress, size_t *ret_applied);
/* The change set as a JSON array of {kind, summary, detail} (for -o json). */
json_t *netd_changes_to_json(const struct netd_changes *ch);

/* Plan helpers shared by setup and the cloud providers. Write path with data unless it already
 * holds exactly those bytes (its directory is created 0750 when missing). detail NULL shows the
 * data itself. */
int netd_plan_file(struct netd_changes *ch, const char *path, const char *data, size_t len,
		   mode_t mode, const char *what, const char *detail);
/* Remove path if it exists. */
int netd_plan_remove(struct netd_changes *ch, const char *path, const char *what);
/* Set /proc/sys key (dotted, "net.ipv4.ip_forward") under sysctl_dir (NULL: /proc/sys)
 * unless it already reads value. A key that does not exist (yet) is planned anyway —
 * cni0's keys appear once the bridge is created — unless optional, when it is skipped with
 * a warning (the rp_filter of a NIC the node does not have). */
int netd_plan_sysctl(struct netd_changes *ch, const char *sysctl_dir, const char *key,
		     const char *value, bool optional);
/* A command as a change (iptables, a cloud CLI); argv is copied. */
struct netd_change *netd_plan_command(struct netd_changes *ch, enum netd_change_kind kind,
				      char *const *argv, const char *summary);
/* Run argv to completion: 0 when it exited 0; otherwise -EIO (or the spawn error) and
 * *ret_error "<argv0 first 3 args>: <status>: <output>" (the original's format). */
int netd_run(char *const *argv, char *const *env, char **ret_out, char **ret_error);
/* "a b 'c d'": a command line for humans, quoting what a shell would need quoted. */
int netd_argv_to_string(char *const *argv, char **ret);

/* ---- iptables.c ---- */

/* One rule of `iptables -S` output, split into the parts the diff compares. */
struct netd_ipt_rule {
	char *table;
	char *chain;
	char **args;                /* the tokens after "-A <chain>", unquoted: the delete spec */
	char *src, *dst, *in, *out; /* NULL when absent; "!x" when negated */
	char *comment;
	char *jump;
	char **rest; /* every other token, in order */
};

struct netd_ipt_rules {
	struct netd_ipt_rule *items;
	size_t n, alloc;
};

void netd_ipt_rules_clear(struct netd_ipt_rules *l);
/* Parse `iptables [-t table] -S [chain]` output: "-P"/"-N" lines are skipped, every "-A"
 * line becomes a rule; quotes ("a b", with \" and \\ escapes) are undone. A malformed line
 * is -EINVAL with *ret_error "line N: …". */
int netd_ipt_parse(const char *table, const char *text, size_t len, struct netd_ipt_rules *l,
		   char **ret_error);
/* Parse one rule spec ("-A FORWARD -i cni0 …" or the tokens after it) into r. */
int netd_ipt_rule_parse(const char *table, char **tokens, struct netd_ipt_rule *r,
			char **ret_error);
void netd_ipt_rule_done(struct netd_ipt_rule *r);
bool netd_ipt_rule_equal(const struct netd_ipt_rule *a, const struct netd_ipt_rule *b);
/* The rules node setup wants for pool (FORWARD ACCEPTs, MASQUERADE, drops). Drop targets
 * are validated first: an invalid or IPv6 one is -EINVAL naming it. */
int netd_ipt_desired(const struct netd_pool *pool, struct netd_ipt_rules *ret, char **ret_error);
/* Diff existing against desired: add what is missing (drops inserted at position 1, the
 * rest appended) and delete rules with a cocoon-net comment that are not desired. With
 * desired NULL every cocoon-net rule is deleted (teardown). */
int netd_ipt_diff(const struct netd_ipt_rules *existing, const struct netd_ipt_rules *desired,
		  struct netd_changes *ch);
/* Read the live rules of filter FORWARD and nat POSTROUTING via the iptables binary. */
int netd_ipt_read(struct netd_ipt_rules *ret, char **ret_error);

/* ---- render.c ---- */

/* /etc/dnsmasq-cni.d/cni0.conf for pool (§1.14): one option per line. */
int netd_render_dnsmasq_conf(const struct netd_pool *pool, const char *lease_file, char **ret,
			     char **ret_error);
/* The CNI conflist (bridge plugin on cni0, empty IPAM), 2-space indented, newline. */
int netd_render_conflist(char **ret);

/* ---- link.c: netlink ---- */

struct netd_link_state {
	bool exists;
	bool up;
	char kind[32]; /* "bridge", "dummy", … ("" for a plain device) */
	int ifindex;
};
int netd_link_get(const char *name, struct netd_link_state *ret);
/* Whether link ifindex carries the IPv4 address addr/prefix. */
int netd_link_has_addr(int ifindex, uint32_t addr, unsigned prefix, bool *ret);
int netd_link_apply_create_bridge(const struct netd_change *c, char **ret_error);
int netd_link_apply_up(const struct netd_change *c, char **ret_error);
int netd_link_apply_delete(const struct netd_change *c, char **ret_error);
int netd_link_apply_addr(const struct netd_change *c, char **ret_error);
/* A `local <addr/prefix> dev <target> table local` route (GKE guest-agent fix): whether it
 * exists, and deleting it. */
int netd_link_has_local_route(const char *dev, uint32_t addr, unsigned prefix, bool *ret);
int netd_link_apply_delete_local_route(const struct netd_change *c, char **ret_error);

/* ---- setup.c ---- */

enum {
	NETD_SETUP_SKIP_IPTABLES = 1 << 0,
};

/* Plan node setup for pool (§1.5 with §1.14's dnsmasq config): bridge cni0 with the gateway
 * address, up; sysctls; iptables unless skipped; dnsmasq config and lease file; conflist.
 * Reads kernel and file state only. */
int netd_setup_plan(const struct netd_pool *pool, const struct netd_paths *paths, unsigned flags,
		    struct netd_changes *ch, char **ret_error);
/* Plan the host half of teardown: every cocoon-net iptables rule, the bridge (and with it
 * the /32 routes on it), the dnsmasq config, the conflist, leases.json and pool.json. */
int netd_teardown_plan(const struct netd_pool *pool, const struct netd_paths *paths,
		       struct netd_changes *ch, char **ret_error);
/* For netd: plan and apply node setup, logging each change at info. Blocking (netlink round
 * trips, small files, and iptables runs unless skipped): call it at start-up or on reload.
 * ret_applied and ret_dnsmasq_changed (the dnsmasq config was rewritten: reload dnsmasq)
 * may be NULL. Errors are logged. */
int netd_setup_converge(const struct netd_pool *pool, const struct netd_paths *paths,
			unsigned flags, size_t *ret_applied, bool *ret_dnsmasq_changed);

/* ---- platform.c ---- */

/* Metadata base URLs, overridable for tests. */
#define NETD_ENV_GKE_METADATA_URL  "COCOON_NET_GKE_METADATA_URL"
#define NETD_ENV_VOLC_METADATA_URL "COCOON_NET_VOLC_METADATA_URL"
#define NETD_GKE_METADATA_URL      "http://metadata.google.internal/computeMetadata/v1"
#define NETD_VOLC_METADATA_URL     "http://100.96.0.96/latest/meta-data"

/* Probe both metadata services in parallel (2 s each, §1.3); exactly one must answer 200.
 * *ret is a static platform name. Errors are the original's texts, in *ret_error. */
int netd_platform_detect(const char **ret, char **ret_error);
bool netd_platform_valid(const char *name);
const char *netd_platform_default_nic(const char *platform);
/* GET <base><path> (GKE with Metadata-Flavor: Google, 5 s; Volcengine 2 s); the body,
 * trimmed. Non-200 or an empty body is an error. */
int netd_metadata_get(const char *platform, const char *path, char **ret, char **ret_error);
/* Run a cloud CLI (netd_run()) and parse its stdout as a JSON object. */
int netd_cloud_run_json(char *const *argv, char *const *env, json_t **ret, char **ret_error);
/* The string at a path of object keys (NULL-terminated), or NULL. */
const char *netd_json_string(json_t *o, ...);

/* ---- cloud providers (cloud_gke.c, cloud_volc.c) ---- */

/* What a provider needs for one command. */
struct netd_cloud_ctx {
	const struct netd_pool *pool; /* subnet, gateway, node name, primary NIC, alias name */
	const struct netd_paths *paths;
	int64_t pool_size;
	/* Filled by planning and applying (provider-owned): */
	void *state;
};

struct netd_cloud {
	const char *platform;
	/* Read cloud state and plan provisioning into ch. */
	int (*plan_provision)(struct netd_cloud_ctx *ctx, struct netd_changes *ch,
			      char **ret_error);
	/* After the changes applied: fill in the pool (IPs, NICs, alias range name). */
	int (*finish_provision)(struct netd_cloud_ctx *ctx, struct netd_pool *pool,
				char **ret_error);
	int (*plan_teardown)(struct netd_cloud_ctx *ctx, struct netd_changes *ch, char **ret_error);
	/* Live state for `status`, as a JSON object (GKE {"aliases": [...]}, Volcengine
	 * {"enis": [...], "ips": [...]}). */
	int (*status)(struct netd_cloud_ctx *ctx, json_t **ret, char **ret_error);
	void (*state_free)(void *state);
};

extern const struct netd_cloud netd_cloud_gke;
extern const struct netd_cloud netd_cloud_volc;
const struct netd_cloud *netd_cloud_get(const char *platform);
void netd_cloud_ctx_done(const struct netd_cloud *cloud, struct netd_cloud_ctx *ctx);

/* ---- commands.c ---- */

/* The parsed command line, shared by every subcommand (unset flags keep the defaults). */
struct netd_cli {
	const char *root;
	const char *state_dir;
	const char *platform;
	const char *node_name;
	const char *subnet;
	int64_t pool_size; /* NETD_POOL_SIZE_UNSET: the command's default */
	const char *gateway;
	const char *primary_nic;
	const char *dns;
	bool dry_run;
	bool drop_internal_access;
	char **drop_cidrs;
	bool manage_iptables;
	bool json;
};

int netd_cmd_init(const struct netd_cli *cli);
int netd_cmd_adopt(const struct netd_cli *cli);
int netd_cmd_teardown(const struct netd_cli *cli);
int netd_cmd_status(const struct netd_cli *cli);

#include "daemon.h"
