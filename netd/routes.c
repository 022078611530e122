/* /32 host routes to cni0, one per active lease (net-epoch-runtime.md §1.8: the guest's
 * address is routed to the bridge only while it is leased, instead of the legacy route per
 * pool address of §1.14), through rtnetlink with libnl-route-3.
 *
 * Our routes carry their own protocol number (NETD_ROUTE_PROTOCOL, `ip route` shows it as
 * "proto 200"), so the reconcile at start removes exactly the routes an earlier netd left
 * for leases that are gone, and never a static route an administrator added. Routes stay
 * when netd exits: guests keep their traffic while the daemon restarts.
 *
 * The netlink socket is used synchronously: the kernel handles a route request inside
 * sendmsg() and the ack is already queued when we read it, so a call costs microseconds
 * and does not wait on any peer. */
#include <arpa/inet.h>
#include <net/if.h>
#include <netlink/route/route.h>
#include <string.h>

#include "cocoon/log.h"
#include "daemon.h"

struct netd_routes {
	struct nl_sock *sock;
	char *bridge;
};

/* libnl reports its own NLE_* codes; callers speak errno. */
static int nl_to_errno(int nle)
{
	switch (-ABS(nle)) {
	case -NLE_EXIST:
		return -EEXIST;
	case -NLE_OBJ_NOTFOUND:
		return -ESRCH;
	case -NLE_NOMEM:
		return -ENOMEM;
	case -NLE_PERM:
		return -EPERM;
	case -NLE_NOACCESS:
		return -EACCES;
	case -NLE_NODEV:
		return -ENODEV;
	case -NLE_INVAL:
	case -NLE_RANGE:
		return -EINVAL;
	case -NLE_AGAIN:
	case -NLE_BUSY:
		return -EAGAIN;
	default:
		return -EIO;
	}
}

int netd_routes_new(const char *bridge, struct netd_routes **ret)
{
	_cleanup_(netd_routes_freep) struct netd_routes *r = NULL;
	int k;

	r = calloc(1, sizeof *r);
	if (!r)
		return -ENOMEM;
	r->bridge = strdup(bridge);
	r->sock = nl_socket_alloc();
	if (!r->bridge || !r->sock)
		return -ENOMEM;
	/* libnl ≥ 3.2.26 opens the socket with SOCK_CLOEXEC. */
	k = nl_connect(r->sock, NETLINK_ROUTE);
	if (k < 0)
		return log_debug_errno(nl_to_errno(k), "Cannot open an rtnetlink socket: %s",
				       nl_geterror(k));
	*ret = TAKE_PTR(r);
	return 0;
}

void netd_routes_free(struct netd_routes *r)
{
	if (!r)
		return;
	nl_socket_free(r->sock);
	free(r->bridge);
	free(r);
}

/* The route object for ip/32 via the bridge in the main table. */
static int route_build(struct netd_routes *r, uint32_t addr, struct rtnl_route **ret)
{
	struct rtnl_route *route = NULL;
	struct rtnl_nexthop *nh = NULL;
	struct nl_addr *dst = NULL;
	uint32_t be = htonl(addr);
	unsigned ifindex = if_nametoindex(r->bridge);

	if (ifindex == 0)
		return -errno;
	route = rtnl_route_alloc();
	nh = rtnl_route_nh_alloc();
	dst = nl_addr_build(AF_INET, &be, sizeof be);
	if (!route || !nh || !dst) {
		rtnl_route_put(route);
		rtnl_route_nh_free(nh);
		nl_addr_put(dst);
		return -ENOMEM;
	}
	nl_addr_set_prefixlen(dst, 32);
	rtnl_route_set_family(route, AF_INET);
	rtnl_route_set_dst(route, dst);
	nl_addr_put(dst);
	rtnl_route_set_table(route, RT_TABLE_MAIN);
	rtnl_route_set_type(route, RTN_UNICAST);
	rtnl_route_set_scope(route, RT_SCOPE_LINK);
	rtnl_route_set_protocol(route, NETD_ROUTE_PROTOCOL);
	rtnl_route_nh_set_ifindex(nh, (int)ifindex);
	rtnl_route_add_nexthop(route, nh);
	*ret = route;
	return 0;
}

int netd_routes_add(struct netd_routes *r, uint32_t addr)
{
	struct rtnl_route *route = NULL;
	int k = route_build(r, addr, &route);

	if (k < 0)
		return k;
	/* Replace: the address may be routed elsewhere (a stale route of the legacy design,
	 * or one to a bridge that was re-created); the lease says where it is now. */
	k = rtnl_route_add(r->sock, route, NLM_F_REPLACE);
	rtnl_route_put(route);
	return k < 0 ? nl_to_errno(k) : 0;
}

int netd_routes_del(struct netd_routes *r, uint32_t addr)
{
	struct rtnl_route *route = NULL;
	int k = route_build(r, addr, &route);

	if (k == -ENODEV)
		return 0; /* no bridge, no route through it */
	if (k < 0)
		return k;
	k = rtnl_route_delete(r->sock, route, 0);
	rtnl_route_put(route);
	if (k < 0 && nl_to_errno(k) == -ESRCH)
		return 0; /* already gone: the goal is reached */
	return k < 0 ? nl_to_errno(k) : 0;
}

static bool route_is_ours(struct rtnl_route *route, uint32_t *ret_addr)
{
	struct nl_addr *dst = rtnl_route_get_dst(route);
	uint32_t be;

	if (rtnl_route_get_family(route) != AF_INET ||
	    rtnl_route_get_table(route) != RT_TABLE_MAIN ||
	    rtnl_route_get_protocol(route) != NETD_ROUTE_PROTOCOL || !dst ||
	    nl_addr_get_prefixlen(dst) != 32 || nl_addr_get_len(dst) != sizeof be)
		return false;
	memcpy(&be, nl_addr_get_binary_addr(dst), sizeof be);
	*ret_addr = ntohl(be);
	return true;
}

int netd_routes_reconcile(struct netd_routes *r, const struct netd_lease_set *want,
			  unsigned *ret_added, unsigned *ret_removed, unsigned *ret_failed)
{
	struct nl_cache *cache = NULL;
	unsigned added = 0, removed = 0, failed = 0;
	_cleanup_(freep) bool *present = NULL;
	int k;

	k = rtnl_route_alloc_cache(r->sock, AF_INET, 0, &cache);
	if (k < 0)
		return log_debug_errno(nl_to_errno(k), "Cannot list routes: %s", nl_geterror(k));
	present = calloc(MAX(want->n, (size_t)1), sizeof *present);
	if (!present) {
		nl_cache_free(cache);
		return -ENOMEM;
	}
	for (struct nl_object *o = nl_cache_get_first(cache); o; o = nl_cache_get_next(o)) {
		const struct netd_lease *l;
		uint32_t addr;

		if (!route_is_ours((struct rtnl_route *)o, &addr))
			continue;
		l = netd_lease_set_find_ip(want, addr);
		if (l) {
			present[l - want->leases] = true;
			continue;
		}
		k = rtnl_route_delete(r->sock, (struct rtnl_route *)o, 0);
		if (k < 0 && nl_to_errno(k) != -ESRCH)
			failed++;
		else
			removed++;
	}
	nl_cache_free(cache);
	/* Re-add even the present ones: a route to the right address may point at a bridge
	 * that has since been re-created, and replacing is idempotent. */
	for (size_t i = 0; i < want->n; i++) {
		if (netd_routes_add(r, want->leases[i].addr) < 0)
			failed++;
		else if (!present[i])
			added++;
	}
	*ret_added = added;
	*ret_removed = removed;
	*ret_failed = failed;
	return 0;
}
