/* The cocoon-net subcommands (net-epoch-runtime.md §1.4, §1.6, §1.9, §1.13), each as: check
 * the flags → work out the pool → plan a change set → print it (--dry-run) or apply it.
 *
 *   init      platform → seed pool.json (so teardown can act if the cloud fails half-way)
 *             → cloud change set → pool.json with the IPs → node setup
 *   adopt     platform → pool from the subnet → node setup (iptables only with
 *             --manage-iptables) → pool.json; no cloud calls
 *   teardown  pool.json → cloud change set (unless adopted) → host change set
 *   status    pool.json, live lease counts from netd (NET_STATUS over the bus), live cloud
 *             state; a table or -o json
 *
 * stdout carries the results (the change set, the "complete" line, the status); errors go
 * to stderr through log.h. When a run rewrites the dnsmasq config and netd is running, netd
 * is asked to reload (NET_RELOAD) so dnsmasq picks up the new ranges. */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cocoon/bus.h"
#include "cocoon/log.h"
#include "netd.h"

/* netd answers from memory; a daemon that does not answer within this is as good as gone. */
#define NETD_BUS_TIMEOUT_USEC (1000 * 1000ULL)

static int error_out(int r, char *why)
{
	if (why)
		log_error("%s", why);
	else
		log_error_errno(r, "%m");
	free(why);
	return r;
}

static int cli_paths(const struct netd_cli *cli, struct netd_paths **ret)
{
	int r = netd_paths_new(cli->root, cli->state_dir, ret);

	return r < 0 ? log_error_errno(r, "cannot work out the file paths: %m") : 0;
}

/* ---- talking to netd ---- */

struct bus_call {
	bool done;
	int error;
	struct msg_net_status_reply reply;
	bool have_reply;
};

static void bus_call_done(struct bus_client *c, int error, const struct msg *reply, void *userdata)
{
	struct bus_call *call = userdata;

	call->done = true;
	call->error = error;
	if (error == 0 && reply && reply->type == MSG_NET_STATUS_REPLY) {
		const struct msg_net_status_reply *s = &reply->net_status_reply;

		call->reply.pool_size = s->pool_size;
		call->reply.active_leases = s->active_leases;
		call->reply.bridge = strdup(s->bridge);
		call->have_reply = call->reply.bridge != NULL;
	}
}

/* One request to netd on a private loop. -ESRCH when netd is not running: its ipc socket
 * is missing (answered at once) or nobody answers within NETD_BUS_TIMEOUT_USEC. */
static int netd_call(enum msg_type type, struct bus_call *call)
{
	_cleanup_(sd_event_unrefp) sd_event *e = NULL;
	_cleanup_(bus_client_freep) struct bus_client *c = NULL;
	char endpoint[256];
	int r;

	r = bus_endpoint("netd", endpoint, sizeof endpoint);
	if (r < 0)
		return r;
	if (strncmp(endpoint, "ipc://", 6) == 0 && access(endpoint + 6, F_OK) < 0)
		return -ESRCH;
	r = sd_event_new(&e);
	if (r >= 0)
		r = bus_client_new(e, endpoint, &c);
	if (r >= 0)
		r = bus_client_call(c, type, NULL, NETD_BUS_TIMEOUT_USEC, bus_call_done, call);
	while (r >= 0 && !call->done)
		r = sd_event_run(e, UINT64_MAX);
	if (r < 0)
		return r;
	return call->error == -ETIMEDOUT ? -ESRCH : call->error;
}

static void netd_reload(void)
{
	struct bus_call call = {};
	int r = netd_call(MSG_NET_RELOAD, &call);

	if (r == -ESRCH)
		printf("netd: not running; it reads the new dnsmasq config when it starts\n");
	else if (r < 0)
		log_warning_errno(r, "cannot ask netd to reload, ignoring: %m");
	else
		printf("netd: reloaded\n");
}

static bool touches(const struct netd_changes *ch, size_t applied, const char *path)
{
	for (size_t i = 0; i < applied; i++)
		if (streq_ptr(ch->items[i].target, path))
			return true;
	return false;
}

/* Apply ch, print what was done (or "no changes"), and poke netd if dnsmasq's config was
 * rewritten (setup; teardown removes the config and leaves netd alone). */
static int apply_and_report(const struct netd_changes *ch, const struct netd_paths *paths,
			    const char *what, bool reload)
{
	size_t applied = 0;
	int r;

	if (ch->n == 0) {
		printf("%s: no changes\n", what);
		return 0;
	}
	printf("%s: applying %zu change%s\n", what, ch->n, ch->n == 1 ? "" : "s");
	fflush(stdout);
	r = netd_changes_apply(ch, stdout, &applied);
	if (reload && touches(ch, applied, paths->dnsmasq_conf))
		netd_reload();
	return r;
}

/* ---- the pool from flags ---- */

static int parse_dns(const char *dns, char ***ret)
{
	_cleanup_(strv_freep) char **l = NULL;
	uint32_t a;
	int r;

	r = strv_split(dns ? dns : NETD_DNS_DEFAULT, ',', &l);
	if (r < 0)
		return log_oom_errno();
	for (size_t i = 0; l[i]; i++)
		if (netd_ipv4_parse(l[i], &a) < 0)
			return log_error_errno(EINVAL, "--dns %s: \"%s\" is not an IPv4 address",
					       dns, l[i]);
	*ret = TAKE_PTR(l);
	return 0;
}

static int resolve_platform(const struct netd_cli *cli, const char **ret)
{
	_cleanup_(freep) char *why = NULL;
	int r;

	if (!isempty(cli->platform)) {
		if (!netd_platform_valid(cli->platform))
			return log_error_errno(EINVAL, "--platform %s: must be gke or volcengine",
					       cli->platform);
		*ret = cli->platform;
		return 0;
	}
	r = netd_platform_detect(ret, &why);
	if (r < 0)
		return error_out(r, TAKE_PTR(why));
	log_info("detected platform %s", *ret);
	return 0;
}

/* Everything init and adopt derive from the flags; ips only when with_ips. */
static int pool_from_flags(const struct netd_cli *cli, const char *platform, int64_t pool_size,
			   bool with_ips, struct netd_pool **ret)
{
	_cleanup_(netd_pool_freep) struct netd_pool *p = NULL;
	_cleanup_(freep) char *why = NULL;
	const char *nic = cli->primary_nic ? cli->primary_nic : netd_platform_default_nic(platform);
	char buf[NETD_CIDR_STRLEN];
	struct netd_cidr subnet;
	struct netd_ipt_rules rules = {};
	uint32_t gw;
	int r;

	if (netd_cidr_parse(cli->subnet, &subnet) < 0)
		return log_error_errno(EINVAL, "--subnet %s: not an IPv4 CIDR (a.b.c.d/n)",
				       cli->subnet);
	r = netd_gateway_resolve(&subnet, cli->gateway, &gw, &why);
	if (r < 0)
		return error_out(r, TAKE_PTR(why));
	if (!netd_ifname_valid(nic))
		return log_error_errno(EINVAL, "--primary-nic %s: not an interface name", nic);
	if (netd_pool_new(&p) < 0 || !(p->platform = strdup(platform)) ||
	    !(p->node_name = strdup(cli->node_name)) ||
	    !(p->subnet = strdup(netd_cidr_format(&subnet, buf))) ||
	    !(p->gateway = strdup(netd_ipv4_format(gw, buf))) || !(p->primary_nic = strdup(nic)) ||
	    strv_copy(cli->drop_cidrs, &p->drop_cidrs) < 0)
		return log_oom_errno();
	r = parse_dns(cli->dns, &p->dns_servers);
	if (r < 0)
		return r;
	p->drop_internal_access = cli->drop_internal_access;
	if (streq(platform, NETD_PLATFORM_VOLC) &&
	    !(p->secondary_nics =
		  strv_new("eth1", "eth2", "eth3", "eth4", "eth5", "eth6", "eth7", NULL)))
		return log_oom_errno();
	/* A bad --drop-cidr is an error even when iptables is skipped: it is saved for netd. */
	r = netd_ipt_desired(p, &rules, &why);
	netd_ipt_rules_clear(&rules);
	if (r < 0)
		return error_out(r, TAKE_PTR(why));
	if (with_ips) {
		r = netd_pool_range(&subnet, gw, pool_size, &p->ips, &p->n_ips, &why);
		if (r < 0)
			return error_out(r, TAKE_PTR(why));
	}
	*ret = TAKE_PTR(p);
	return 0;
}

/* pool.json as a change: written unless it already says the same (updatedAt aside). */
static int plan_pool_file(struct netd_changes *ch, const struct netd_paths *paths,
			  struct netd_pool *pool)
{
	_cleanup_(netd_pool_freep) struct netd_pool *old = NULL;
	_cleanup_(freep) char *text = NULL, *why = NULL, *detail = NULL;
	char first[NETD_IPV4_STRLEN], last[NETD_IPV4_STRLEN];
	int r;

	if (netd_pool_load(paths->pool_file, &old, &why) >= 0 && netd_pool_equal(old, pool))
		return 0;
	/* The stamp is what netd_pool_save() would write now. */
	r = netd_pool_stamp(pool);
	if (r >= 0)
		r = netd_pool_format(pool, &text);
	if (r < 0)
		return log_oom_errno();
	if (pool->n_ips > 0)
		r = asprintf(&detail,
			     "platform %s, node %s, subnet %s, gateway %s, %zu IPs (%s-%s)",
			     pool->platform, pool->node_name, pool->subnet, pool->gateway,
			     pool->n_ips, netd_ipv4_format(pool->ips[0], first),
			     netd_ipv4_format(pool->ips[pool->n_ips - 1], last));
	else
		r = asprintf(&detail, "platform %s, node %s, subnet %s, no IPs", pool->platform,
			     pool->node_name, pool->subnet);
	if (r < 0)
		return log_oom_errno();
	r = netd_plan_file(ch, paths->pool_file, text, strlen(text), 0644, "pool state", detail);
	return r < 0 ? log_error_errno(r, "cannot plan %s: %m", paths->pool_file) : 0;
}

static int plan_setup(const struct netd_pool *pool, const struct netd_paths *paths, unsigned flags,
		      struct netd_changes *ch)
{
	_cleanup_(freep) char *why = NULL;
	int r = netd_setup_plan(pool, paths, flags, ch, &why);

	return r < 0 ? error_out(r, TAKE_PTR(why)) : 0;
}

/* ---- adopt ---- */

static void print_adopt_dry_run(const struct netd_cli *cli, const struct netd_pool *p,
				const struct netd_paths *paths, const struct netd_changes *ch)
{
	_cleanup_(freep) char *dns = NULL, *drops = NULL;
	char first[NETD_IPV4_STRLEN], last[NETD_IPV4_STRLEN];

	strv_join(p->dns_servers, ",", &dns);
	strv_join(p->drop_cidrs, ",", &drops);
	printf("[dry-run] would adopt node with config:\n");
	printf("  %-16s %s\n", "platform:", p->platform);
	printf("  %-16s %s\n", "node-name:", p->node_name);
	printf("  %-16s %s\n", "subnet:", p->subnet);
	printf("  %-16s %s\n", "gateway:", p->gateway);
	printf("  %-16s %s\n", "primary-nic:", p->primary_nic);
	if (p->n_ips > 0)
		printf("  %-16s %zu (first=%s, last=%s)\n", "pool-size:", p->n_ips,
		       netd_ipv4_format(p->ips[0], first),
		       netd_ipv4_format(p->ips[p->n_ips - 1], last));
	else
		printf("  %-16s 0\n", "pool-size:");
	printf("  %-16s %s\n", "dns:", dns ? dns : "");
	printf("  %-16s %s\n", "drop-internal:", p->drop_internal_access ? "true" : "false");
	printf("  %-16s %s\n", "drop-cidr:", drops ? drops : "");
	printf("  %-16s %s\n", "state-dir:", paths->state_dir);
	printf("  %-16s %s\n", "manage-iptables:", cli->manage_iptables ? "true" : "false");
	printf("\nwould change (%zu):\n", ch->n);
	netd_changes_print(ch, stdout, true);
	printf("would (re)apply: bridge %s, sysctl; iptables %s\n", NETD_BRIDGE,
	       cli->manage_iptables ? "(re)applied" : "skipped (preserve existing rules)");
	printf("routes and DHCP managed by 'netd'\n");
	printf("would NOT touch: cloud alias IP range / ENIs (preserved as-is)\n");
}

int netd_cmd_adopt(const struct netd_cli *cli)
{
	_cleanup_(netd_paths_freep) struct netd_paths *paths = NULL;
	_cleanup_(netd_pool_freep) struct netd_pool *pool = NULL;
	struct netd_changes ch = {};
	const char *platform;
	int r;

	r = cli_paths(cli, &paths);
	if (r >= 0)
		r = resolve_platform(cli, &platform);
	if (r >= 0)
		r = pool_from_flags(cli, platform,
				    cli->pool_size != NETD_POOL_SIZE_UNSET ? cli->pool_size
									   : NETD_POOL_SIZE_ADOPT,
				    true, &pool);
	if (r < 0)
		return r;
	pool->adopted = true;
	pool->skip_iptables = !cli->manage_iptables;
	/* §1.6: setup first, then pool.json. */
	r = plan_setup(pool, paths, cli->manage_iptables ? 0 : NETD_SETUP_SKIP_IPTABLES, &ch);
	if (r >= 0)
		r = plan_pool_file(&ch, paths, pool);
	if (r >= 0 && cli->dry_run)
		print_adopt_dry_run(cli, pool, paths, &ch);
	else if (r >= 0)
		r = apply_and_report(&ch, paths, "adopt", true);
	netd_changes_clear(&ch);
	if (r < 0 || cli->dry_run)
		return r;
	printf("cocoon-net adopt complete: %zu IPs registered on %s (%s, cloud preserved)\n",
	       pool->n_ips, pool->subnet, pool->platform);
	return 0;
}

/* ---- init ---- */

static void print_init_dry_run(const struct netd_pool *p, int64_t pool_size,
			       const struct netd_paths *paths, const struct netd_changes *cloud,
			       const struct netd_changes *host)
{
	_cleanup_(freep) char *dns = NULL, *drops = NULL;

	strv_join(p->dns_servers, ",", &dns);
	strv_join(p->drop_cidrs, ",", &drops);
	printf("[dry-run] would provision networking with config:\n");
	printf("  %-11s %s\n", "platform:", p->platform);
	printf("  %-11s %s\n", "node-name:", p->node_name);
	printf("  %-11s %s\n", "subnet:", p->subnet);
	printf("  %-11s %lld\n", "pool-size:", (long long)pool_size);
	printf("  %-11s %s\n", "dns:", dns ? dns : "");
	printf("  drop-internal: %s\n", p->drop_internal_access ? "true" : "false");
	printf("  %-11s %s\n", "drop-cidr:", drops ? drops : "");
	printf("  %-11s %s\n", "state-dir:", paths->state_dir);
	printf("\nwould change in the cloud (%zu):\n", cloud->n);
	netd_changes_print(cloud, stdout, true);
	printf("would change on the node (%zu):\n", host->n);
	netd_changes_print(host, stdout, true);
}

/* §1.4 step 3: a pool.json teardown can act on, written before the cloud is touched —
 * unless one for this platform, node and subnet is there already. */
static int save_seed(const struct netd_cli *cli, const struct netd_pool *planned,
		     const struct netd_paths *paths)
{
	_cleanup_(netd_pool_freep) struct netd_pool *old = NULL, *seed = NULL;
	_cleanup_(freep) char *why = NULL;
	int r;

	if (netd_pool_load(paths->pool_file, &old, &why) >= 0 &&
	    streq(old->platform, planned->platform) && streq(old->node_name, planned->node_name) &&
	    streq(old->subnet, planned->subnet) && !old->adopted)
		return 0;
	if (netd_pool_new(&seed) < 0 || !(seed->platform = strdup(planned->platform)) ||
	    !(seed->node_name = strdup(planned->node_name)) ||
	    !(seed->subnet = strdup(planned->subnet)) ||
	    !(seed->gateway = strdup(cli->gateway ? cli->gateway : "")) ||
	    strv_copy(planned->dns_servers, &seed->dns_servers) < 0 ||
	    strv_copy(planned->drop_cidrs, &seed->drop_cidrs) < 0)
		return log_oom_errno();
	seed->drop_internal_access = planned->drop_internal_access;
	r = netd_pool_save(seed, paths->pool_file);
	if (r < 0)
		return log_error_errno(r, "cannot save the pool state seed %s: %m",
				       paths->pool_file);
	printf("init: saved pool state seed %s\n", paths->pool_file);
	return 0;
}

static int init_cloud(const struct netd_cli *cli, struct netd_pool *pool, int64_t pool_size,
		      const struct netd_paths *paths, struct netd_changes *cloud,
		      struct netd_changes *host)
{
	const struct netd_cloud *provider = netd_cloud_get(pool->platform);
	struct netd_cloud_ctx ctx = { .pool = pool, .paths = paths, .pool_size = pool_size };
	_cleanup_(freep) char *why = NULL;
	int r;

	r = provider->plan_provision(&ctx, cloud, &why);
	if (r < 0) {
		error_out(r, TAKE_PTR(why));
		goto out;
	}
	if (cli->dry_run) {
		/* The pool as far as it is known before the cloud changes run. */
		if (provider->finish_provision(&ctx, pool, &why) < 0)
			log_info("pool IPs are known once the cloud changes ran: %s",
				 why ? why : "pending");
		r = plan_setup(pool, paths, 0, host);
		if (r >= 0)
			r = plan_pool_file(host, paths, pool);
		if (r >= 0)
			print_init_dry_run(pool, pool_size, paths, cloud, host);
		goto out;
	}
	r = save_seed(cli, pool, paths);
	if (r >= 0) {
		r = apply_and_report(cloud, paths, "init (cloud)", false);
		if (r < 0)
			log_error("cloud provisioning stopped half-way; the state in %s is kept, "
				  "run 'cocoon-net teardown' to clean up",
				  paths->pool_file);
	}
	if (r >= 0 && (r = provider->finish_provision(&ctx, pool, &why)) < 0)
		error_out(r, TAKE_PTR(why));
	/* §1.4: pool.json with the cloud's answer first, then node setup. */
	if (r >= 0)
		r = plan_pool_file(host, paths, pool);
	if (r >= 0)
		r = plan_setup(pool, paths, 0, host);
	if (r >= 0)
		r = apply_and_report(host, paths, "init (node)", true);
out:
	netd_cloud_ctx_done(provider, &ctx);
	return r;
}

int netd_cmd_init(const struct netd_cli *cli)
{
	_cleanup_(netd_paths_freep) struct netd_paths *paths = NULL;
	_cleanup_(netd_pool_freep) struct netd_pool *pool = NULL;
	struct netd_changes cloud = {}, host = {};
	int64_t pool_size =
	    cli->pool_size != NETD_POOL_SIZE_UNSET ? cli->pool_size : NETD_POOL_SIZE_INIT;
	const char *platform;
	int r;

	r = cli_paths(cli, &paths);
	if (r >= 0)
		r = resolve_platform(cli, &platform);
	/* The IPs come from the cloud; only the size is checked here. */
	if (r >= 0)
		r = pool_from_flags(cli, platform, pool_size, false, &pool);
	if (r >= 0 && (pool_size < 0 || pool_size > NETD_POOL_SIZE_MAX))
		r = log_error_errno(EINVAL, "--pool-size %lld: must be between 0 and %d",
				    (long long)pool_size, NETD_POOL_SIZE_MAX);
	if (r >= 0)
		r = init_cloud(cli, pool, pool_size, paths, &cloud, &host);
	netd_changes_clear(&cloud);
	netd_changes_clear(&host);
	if (r < 0 || cli->dry_run)
		return r;
	printf("cocoon-net init complete: %zu IPs provisioned on %s (%s)\n", pool->n_ips,
	       pool->subnet, pool->platform);
	return 0;
}

/* ---- teardown ---- */

static int load_pool(const struct netd_paths *paths, struct netd_pool **ret)
{
	_cleanup_(freep) char *why = NULL;
	int r = netd_pool_load(paths->pool_file, ret, &why);

	if (r >= 0 && !netd_cloud_get((*ret)->platform)) {
		r = log_error_errno(EINVAL, "%s: unknown platform \"%s\"", paths->pool_file,
				    (*ret)->platform);
		netd_pool_free(*ret);
		*ret = NULL;
		return r;
	}
	return r < 0 ? error_out(r, TAKE_PTR(why)) : 0;
}

int netd_cmd_teardown(const struct netd_cli *cli)
{
	_cleanup_(netd_paths_freep) struct netd_paths *paths = NULL;
	_cleanup_(netd_pool_freep) struct netd_pool *pool = NULL;
	_cleanup_(freep) char *why = NULL;
	struct netd_changes cloud = {}, host = {};
	const struct netd_cloud *provider;
	struct netd_cloud_ctx ctx = {};
	int r;

	r = cli_paths(cli, &paths);
	if (r >= 0)
		r = load_pool(paths, &pool);
	if (r < 0)
		return r;
	provider = netd_cloud_get(pool->platform);
	ctx = (struct netd_cloud_ctx){ .pool = pool, .paths = paths };
	/* An adopted node's cloud resources are not ours to remove. */
	if (!pool->adopted && (r = provider->plan_teardown(&ctx, &cloud, &why)) < 0)
		error_out(r, TAKE_PTR(why));
	if (r >= 0 && cli->dry_run) {
		r = netd_teardown_plan(pool, paths, &host, &why);
		if (r < 0)
			error_out(r, TAKE_PTR(why));
		else {
			printf("[dry-run] would teardown %s networking for node %s (subnet %s)\n",
			       pool->platform, pool->node_name, pool->subnet);
			printf("\nwould change in the cloud (%zu):\n", cloud.n);
			netd_changes_print(&cloud, stdout, true);
			printf("would change on the node (%zu):\n", host.n);
			netd_changes_print(&host, stdout, true);
		}
	} else if (r >= 0) {
		/* §1.13: the cloud first; if it fails, the state stays so teardown can retry. */
		r = apply_and_report(&cloud, paths, "teardown (cloud)", false);
		if (r >= 0 && (r = netd_teardown_plan(pool, paths, &host, &why)) < 0)
			error_out(r, TAKE_PTR(why));
		if (r >= 0)
			r = apply_and_report(&host, paths, "teardown (node)", false);
		if (r >= 0)
			printf("cocoon-net teardown complete (%s)\n", pool->platform);
	}
	netd_cloud_ctx_done(provider, &ctx);
	netd_changes_clear(&cloud);
	netd_changes_clear(&host);
	return r;
}

/* ---- status ---- */

static json_t *status_json(const struct netd_pool *pool, const struct bus_call *netd, json_t *cloud)
{
	json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:I, s:s?, s:b}", "platform", pool->platform,
			      "nodeName", pool->node_name, "subnet", pool->subnet, "gateway",
			      pool->gateway, "ips", (json_int_t)pool->n_ips, "updatedAt",
			      pool->updated_at, "adopted", pool->adopted);

	if (!o)
		return NULL;
	if (netd->have_reply)
		json_object_set_new(o, "netd",
				    json_pack("{s:b, s:I, s:I, s:s}", "running", 1, "poolSize",
					      (json_int_t)netd->reply.pool_size, "activeLeases",
					      (json_int_t)netd->reply.active_leases, "bridge",
					      netd->reply.bridge));
	else
		json_object_set_new(o, "netd", json_pack("{s:b}", "running", 0));
	json_object_set(o, "cloud", cloud ? cloud : json_null());
	return o;
}

static void print_cloud(const char *platform, json_t *cloud)
{
	json_t *e;
	size_t i;

	if (streq(platform, NETD_PLATFORM_VOLC)) {
		printf("%-12s%zu\n", "ENIs:", json_array_size(json_object_get(cloud, "enis")));
		printf("%-12s%s\n", "SubnetID:", netd_json_string(cloud, "subnetID", NULL) ?: "");
		return;
	}
	printf("%-12s", "Aliases:");
	if (json_array_size(json_object_get(cloud, "aliases")) == 0)
		printf("(none)");
	json_array_foreach (json_object_get(cloud, "aliases"), i, e)
		printf("%s%s", i > 0 ? ", " : "", json_string_value(e));
	printf("\n");
}

static void print_status(const struct netd_pool *pool, const struct bus_call *netd, json_t *cloud)
{
	/* Go's "2006-01-02T15:04:05Z": the stamp without its fraction. */
	const char *u = pool->updated_at ? pool->updated_at : "";
	int secs = (int)strcspn(u, ".Z");

	printf("%-12s%s\n", "Platform:", pool->platform);
	printf("%-12s%s\n", "Node:", pool->node_name);
	printf("%-12s%s\n", "Subnet:", pool->subnet);
	printf("%-12s%s\n", "Gateway:", pool->gateway);
	printf("%-12s%zu\n", "IPs:", pool->n_ips);
	printf("%-12s%.*s%s\n", "Updated:", secs, u, secs > 0 ? "Z" : "");
	if (pool->adopted)
		printf("%-12s%s\n", "Cloud:", "not managed (adopted)");
	else if (cloud)
		print_cloud(pool->platform, cloud);
	if (netd->have_reply)
		printf("%-12srunning, %llu active leases of %llu (bridge %s)\n",
		       "netd:", (unsigned long long)netd->reply.active_leases,
		       (unsigned long long)netd->reply.pool_size, netd->reply.bridge);
	else
		printf("%-12snot running\n", "netd:");
}

int netd_cmd_status(const struct netd_cli *cli)
{
	_cleanup_(netd_paths_freep) struct netd_paths *paths = NULL;
	_cleanup_(netd_pool_freep) struct netd_pool *pool = NULL;
	_cleanup_(freep) char *why = NULL;
	const struct netd_cloud *provider;
	struct netd_cloud_ctx ctx = {};
	struct bus_call call = {};
	json_t *cloud = NULL;
	int r;

	r = cli_paths(cli, &paths);
	if (r >= 0)
		r = load_pool(paths, &pool);
	if (r < 0)
		return r;
	r = netd_call(MSG_NET_STATUS, &call);
	if (r < 0 && r != -ESRCH)
		log_warning_errno(r, "cannot ask netd for its status, ignoring: %m");
	provider = netd_cloud_get(pool->platform);
	ctx = (struct netd_cloud_ctx){ .pool = pool, .paths = paths };
	/* §1.9: the live cloud state is best effort. */
	if (!pool->adopted && provider->status(&ctx, &cloud, &why) < 0)
		log_warning("cannot read the live %s state, ignoring: %s", pool->platform,
			    why ? why : "unknown error");
	netd_cloud_ctx_done(provider, &ctx);
	if (cli->json) {
		json_t *o = status_json(pool, &call, cloud);
		char *s = o ? json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;

		if (s)
			printf("%s\n", s);
		free(s);
		json_decref(o);
		r = s ? 0 : log_oom_errno();
	} else {
		print_status(pool, &call, cloud);
		r = 0;
	}
	json_decref(cloud);
	free(call.reply.bridge);
	return r;
}
