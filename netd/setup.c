/* Node setup and host teardown, planned as change sets (net-epoch-runtime.md §1.5 with the
 * dnsmasq design of §1.14). Setup, in order: bridge cni0 (created, gateway address, up — it
 * must exist before its sysctl is written), sysctls, iptables (unless skipped), the dnsmasq
 * config and its lease file, the CNI conflist. Per-pool /32 routes are not planned: netd
 * keeps a /32 route per active lease instead (CONTRACT.md §5).
 *
 * Teardown removes what setup created — the cocoon-net iptables rules, the bridge (and the
 * routes on it with it), the dnsmasq config, the conflist, leases.json and pool.json — but
 * leaves the sysctls alone: ip_forward may be needed by other things on the host and the
 * values before setup are not known. The dnsmasq lease file stays too; it is dnsmasq's. */
#include <stdio.h>
#include <string.h>

#include "cocoon/log.h"
#include "netd.h"

static int plan_bridge(const struct netd_cidr *subnet, uint32_t gw, struct netd_changes *ch,
		       char **ret_error)
{
	char gws[NETD_IPV4_STRLEN];
	struct netd_link_state st;
	struct netd_change *c;
	bool has = false;
	int r;

	r = netd_link_get(NETD_BRIDGE, &st);
	if (r < 0)
		return asprintf(ret_error, "cannot read link %s: %s", NETD_BRIDGE, strerror(-r)) < 0
			   ? -ENOMEM
			   : r;
	if (st.exists && !streq(st.kind, "bridge"))
		return asprintf(ret_error, "%s exists but is a%s%s device, not a bridge",
				NETD_BRIDGE, st.kind[0] ? " " : " plain", st.kind) < 0
			   ? -ENOMEM
			   : -EEXIST;
	if (!st.exists) {
		c = netd_changes_add(ch, NETD_CHANGE_LINK, netd_link_apply_create_bridge,
				     "create bridge %s", NETD_BRIDGE);
		if (!c || !(c->target = strdup(NETD_BRIDGE)))
			return -ENOMEM;
	} else {
		r = netd_link_has_addr(st.ifindex, gw, subnet->prefix, &has);
		if (r < 0)
			return asprintf(ret_error, "cannot read the addresses of %s: %s",
					NETD_BRIDGE, strerror(-r)) < 0
				   ? -ENOMEM
				   : r;
	}
	if (!has) {
		c = netd_changes_add(ch, NETD_CHANGE_ADDRESS, netd_link_apply_addr,
				     "add %s/%u to %s", netd_ipv4_format(gw, gws), subnet->prefix,
				     NETD_BRIDGE);
		if (!c || !(c->target = strdup(NETD_BRIDGE)))
			return -ENOMEM;
		c->addr = gw;
		c->prefix = subnet->prefix;
	}
	if (!st.up) {
		c = netd_changes_add(ch, NETD_CHANGE_LINK, netd_link_apply_up, "set %s up",
				     NETD_BRIDGE);
		if (!c || !(c->target = strdup(NETD_BRIDGE)))
			return -ENOMEM;
	}
	return 0;
}

static int plan_sysctls(const struct netd_pool *pool, struct netd_changes *ch)
{
	const char *nic =
	    pool->primary_nic ? pool->primary_nic : netd_platform_default_nic(pool->platform);
	char key[64];
	int r;

	if ((r = netd_plan_sysctl(ch, NULL, "net.ipv4.ip_forward", "1", false)) < 0 ||
	    (r = netd_plan_sysctl(ch, NULL, "net.ipv4.conf.all.rp_filter", "0", false)) < 0 ||
	    (r = netd_plan_sysctl(ch, NULL, "net.ipv4.conf.default.rp_filter", "0", false)) < 0 ||
	    (r = netd_plan_sysctl(ch, NULL, "net.ipv4.conf." NETD_BRIDGE ".rp_filter", "0",
				  false)) < 0)
		return r;
	/* Best effort (§1.5): the NICs may be named differently on this host. */
	if (nic && netd_ifname_valid(nic)) {
		snprintf(key, sizeof key, "net.ipv4.conf.%s.rp_filter", nic);
		r = netd_plan_sysctl(ch, NULL, key, "0", true);
		if (r < 0)
			return r;
	}
	for (size_t i = 0; pool->secondary_nics && pool->secondary_nics[i]; i++) {
		if (!netd_ifname_valid(pool->secondary_nics[i]))
			continue;
		snprintf(key, sizeof key, "net.ipv4.conf.%s.rp_filter", pool->secondary_nics[i]);
		r = netd_plan_sysctl(ch, NULL, key, "0", true);
		if (r < 0)
			return r;
	}
	return 0;
}

static int plan_iptables(const struct netd_pool *pool, struct netd_changes *ch, char **ret_error)
{
	struct netd_ipt_rules want = {}, have = {};
	int r;

	/* The desired rules first: a bad drop target fails before iptables is even read. */
	r = netd_ipt_desired(pool, &want, ret_error);
	if (r >= 0)
		r = netd_ipt_read(&have, ret_error);
	if (r >= 0)
		r = netd_ipt_diff(&have, &want, ch);
	netd_ipt_rules_clear(&want);
	netd_ipt_rules_clear(&have);
	return r;
}

static int plan_files(const struct netd_pool *pool, const struct netd_paths *paths,
		      struct netd_changes *ch, char **ret_error)
{
	_cleanup_(freep) char *conf = NULL, *conflist = NULL;
	int r;

	r = netd_render_dnsmasq_conf(pool, paths->dnsmasq_lease_file, &conf, ret_error);
	if (r < 0)
		return r;
	r = netd_plan_file(ch, paths->dnsmasq_conf, conf, strlen(conf), 0644, "dnsmasq config",
			   NULL);
	/* dnsmasq wants its lease file to exist; its content is dnsmasq's business. */
	if (r >= 0 && access(paths->dnsmasq_lease_file, F_OK) < 0)
		r = netd_plan_file(ch, paths->dnsmasq_lease_file, "", 0, 0644, "dnsmasq lease file",
				   NULL);
	if (r >= 0)
		r = netd_render_conflist(&conflist);
	if (r >= 0)
		r = netd_plan_file(ch, paths->cni_conflist, conflist, strlen(conflist), 0644,
				   "CNI conflist", NULL);
	return r;
}

int netd_setup_plan(const struct netd_pool *pool, const struct netd_paths *paths, unsigned flags,
		    struct netd_changes *ch, char **ret_error)
{
	struct netd_cidr subnet;
	uint32_t gw;
	int r;

	if (netd_cidr_parse(pool->subnet, &subnet) < 0)
		return asprintf(ret_error, "subnet %s: not an IPv4 CIDR", pool->subnet) < 0
			   ? -ENOMEM
			   : -EINVAL;
	if (netd_ipv4_parse(pool->gateway, &gw) < 0 || !netd_cidr_contains(&subnet, gw))
		return asprintf(ret_error, "gateway \"%s\": not an IPv4 address in %s",
				pool->gateway, pool->subnet) < 0
			   ? -ENOMEM
			   : -EINVAL;
	r = plan_bridge(&subnet, gw, ch, ret_error);
	if (r >= 0)
		r = plan_sysctls(pool, ch);
	if (r >= 0 && !(flags & NETD_SETUP_SKIP_IPTABLES))
		r = plan_iptables(pool, ch, ret_error);
	if (r >= 0)
		r = plan_files(pool, paths, ch, ret_error);
	return r;
}

int netd_teardown_plan(const struct netd_pool *pool, const struct netd_paths *paths,
		       struct netd_changes *ch, char **ret_error)
{
	_cleanup_(freep) char *why = NULL;
	struct netd_ipt_rules have = {};
	struct netd_link_state st;
	struct netd_change *c;
	int r;

	r = netd_ipt_read(&have, &why);
	if (r == -ENOMEM)
		return r;
	/* As the original's ClearDropRules: not being able to read the rules only warns. */
	if (r < 0)
		log_warning("cannot read iptables rules, leaving them: %s", why);
	else
		r = netd_ipt_diff(&have, NULL, ch);
	netd_ipt_rules_clear(&have);
	if (r == -ENOMEM)
		return r;
	r = netd_link_get(NETD_BRIDGE, &st);
	if (r < 0)
		return asprintf(ret_error, "cannot read link %s: %s", NETD_BRIDGE, strerror(-r)) < 0
			   ? -ENOMEM
			   : r;
	if (st.exists && streq(st.kind, "bridge")) {
		c = netd_changes_add(ch, NETD_CHANGE_LINK, netd_link_apply_delete,
				     "delete bridge %s (and the routes on it)", NETD_BRIDGE);
		if (!c || !(c->target = strdup(NETD_BRIDGE)))
			return -ENOMEM;
	}
	if ((r = netd_plan_remove(ch, paths->dnsmasq_conf, "dnsmasq config")) < 0 ||
	    (r = netd_plan_remove(ch, paths->cni_conflist, "CNI conflist")) < 0 ||
	    (r = netd_plan_remove(ch, paths->leases_json, "lease state")) < 0 ||
	    (r = netd_plan_remove(ch, paths->pool_file, "pool state")) < 0)
		return r;
	return 0;
}

int netd_setup_converge(const struct netd_pool *pool, const struct netd_paths *paths,
			unsigned flags, size_t *ret_applied, bool *ret_dnsmasq_changed)
{
	struct netd_changes ch = {};
	_cleanup_(freep) char *why = NULL;
	bool dnsmasq = false;
	size_t applied = 0;
	int r;

	r = netd_setup_plan(pool, paths, flags, &ch, &why);
	if (r < 0) {
		if (why)
			log_error("node setup: %s", why);
		else
			log_error_errno(r, "node setup: %m");
	} else
		r = netd_changes_apply(&ch, NULL, &applied);
	for (size_t i = 0; i < applied; i++) {
		const struct netd_change *c = &ch.items[i];

		log_info("node setup: %s %s", netd_change_kind_to_string(c->kind), c->summary);
		dnsmasq = dnsmasq || streq_ptr(c->target, paths->dnsmasq_conf);
	}
	netd_changes_clear(&ch);
	if (r < 0)
		return r;
	if (ret_applied)
		*ret_applied = applied;
	if (ret_dnsmasq_changed)
		*ret_dnsmasq_changed = dnsmasq;
	return 0;
}
