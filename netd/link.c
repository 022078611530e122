/* Netlink for node setup, through libnl-route-3: read the state of a link (exists, kind,
 * up), its IPv4 addresses and the local-table routes, and the apply functions of the
 * link/address/route change-set items — create the bridge, `ip addr replace`, set a link
 * up, delete a link, delete the GKE guest agent's `local` route (§1.10 step 3).
 *
 * Every call opens its own short-lived NETLINK_ROUTE socket: the CLI makes a handful of
 * calls per run and netd calls setup rarely, so a shared socket would only add state.
 * libnl returns its own error codes; they are mapped to errno values here, and its
 * message goes into *ret_error. */
#include <arpa/inet.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/route/route.h>
#include <stdio.h>
#include <string.h>

#include "netd.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(struct nl_sock *, nl_socket_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct rtnl_link *, rtnl_link_put);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct rtnl_addr *, rtnl_addr_put);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct rtnl_route *, rtnl_route_put);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct nl_cache *, nl_cache_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct nl_addr *, nl_addr_put);

static int nl_to_errno(int e)
{
	switch (ABS(e)) {
	case NLE_EXIST:
		return -EEXIST;
	case NLE_NOMEM:
		return -ENOMEM;
	case NLE_PERM:
		return -EPERM;
	case NLE_NODEV:
	case NLE_OBJ_NOTFOUND:
		return -ENODEV;
	case NLE_NOADDR:
		return -EADDRNOTAVAIL;
	case NLE_INVAL:
		return -EINVAL;
	case NLE_BUSY:
		return -EBUSY;
	case NLE_OPNOTSUPP:
		return -EOPNOTSUPP;
	default:
		return -EIO;
	}
}

static int nl_fail(int e, char **ret_error)
{
	if (ret_error && asprintf(ret_error, "netlink: %s", nl_geterror(e)) < 0)
		return -ENOMEM;
	return nl_to_errno(e);
}

static int nl_open(struct nl_sock **ret, char **ret_error)
{
	_cleanup_(nl_socket_freep) struct nl_sock *sk = nl_socket_alloc();
	int e;

	if (!sk)
		return -ENOMEM;
	e = nl_connect(sk, NETLINK_ROUTE);
	if (e < 0)
		return nl_fail(e, ret_error);
	*ret = TAKE_PTR(sk);
	return 0;
}

int netd_link_get(const char *name, struct netd_link_state *ret)
{
	_cleanup_(nl_socket_freep) struct nl_sock *sk = NULL;
	_cleanup_(rtnl_link_putp) struct rtnl_link *link = NULL;
	struct netd_link_state s = {};
	const char *kind;
	int e;

	e = nl_open(&sk, NULL);
	if (e < 0)
		return e;
	e = rtnl_link_get_kernel(sk, 0, name, &link);
	if (e == -NLE_NODEV || e == -NLE_OBJ_NOTFOUND) {
		*ret = s;
		return 0;
	}
	if (e < 0)
		return nl_to_errno(e);
	s.exists = true;
	s.up = rtnl_link_get_flags(link) & IFF_UP;
	s.ifindex = rtnl_link_get_ifindex(link);
	kind = rtnl_link_get_type(link);
	snprintf(s.kind, sizeof s.kind, "%s", kind ? kind : "");
	*ret = s;
	return 0;
}

static bool addr_is(struct nl_addr *a, uint32_t addr)
{
	uint32_t be = htonl(addr);

	return a && nl_addr_get_family(a) == AF_INET && nl_addr_get_len(a) == 4 &&
	       memcmp(nl_addr_get_binary_addr(a), &be, 4) == 0;
}

int netd_link_has_addr(int ifindex, uint32_t addr, unsigned prefix, bool *ret)
{
	_cleanup_(nl_socket_freep) struct nl_sock *sk = NULL;
	_cleanup_(nl_cache_freep) struct nl_cache *cache = NULL;
	bool found = false;
	int e;

	e = nl_open(&sk, NULL);
	if (e < 0)
		return e;
	e = rtnl_addr_alloc_cache(sk, &cache);
	if (e < 0)
		return nl_to_errno(e);
	for (struct nl_object *o = nl_cache_get_first(cache); o && !found;
	     o = nl_cache_get_next(o)) {
		struct rtnl_addr *a = (struct rtnl_addr *)o;

		found = rtnl_addr_get_ifindex(a) == ifindex && rtnl_addr_get_family(a) == AF_INET &&
			(unsigned)rtnl_addr_get_prefixlen(a) == prefix &&
			addr_is(rtnl_addr_get_local(a), addr);
	}
	*ret = found;
	return 0;
}

int netd_link_apply_create_bridge(const struct netd_change *c, char **ret_error)
{
	_cleanup_(nl_socket_freep) struct nl_sock *sk = NULL;
	_cleanup_(rtnl_link_putp) struct rtnl_link *link = rtnl_link_alloc();
	int e;

	if (!link)
		return -ENOMEM;
	e = nl_open(&sk, ret_error);
	if (e < 0)
		return e;
	rtnl_link_set_name(link, c->target);
	e = rtnl_link_set_type(link, "bridge");
	if (e >= 0)
		e = rtnl_link_add(sk, link, NLM_F_CREATE | NLM_F_EXCL);
	/* Someone else created it between plan and apply: what we wanted (§1.5: EEXIST is
	 * success). */
	if (e == -NLE_EXIST)
		return 0;
	return e < 0 ? nl_fail(e, ret_error) : 0;
}

/* Look up c->target for a change. */
static int get_link(struct nl_sock *sk, const char *name, struct rtnl_link **ret, char **ret_error)
{
	int e = rtnl_link_get_kernel(sk, 0, name, ret);

	if (e == -NLE_NODEV || e == -NLE_OBJ_NOTFOUND)
		return asprintf(ret_error, "no such interface %s", name) < 0 ? -ENOMEM : -ENODEV;
	return e < 0 ? nl_fail(e, ret_error) : 0;
}

int netd_link_apply_up(const struct netd_change *c, char **ret_error)
{
	_cleanup_(nl_socket_freep) struct nl_sock *sk = NULL;
	_cleanup_(rtnl_link_putp) struct rtnl_link *link = NULL;
	_cleanup_(rtnl_link_putp) struct rtnl_link *change = rtnl_link_alloc();
	int e;

	if (!change)
		return -ENOMEM;
	e = nl_open(&sk, ret_error);
	if (e >= 0)
		e = get_link(sk, c->target, &link, ret_error);
	if (e < 0)
		return e;
	rtnl_link_set_flags(change, IFF_UP);
	e = rtnl_link_change(sk, link, change, 0);
	return e < 0 ? nl_fail(e, ret_error) : 0;
}

int netd_link_apply_delete(const struct netd_change *c, char **ret_error)
{
	_cleanup_(nl_socket_freep) struct nl_sock *sk = NULL;
	_cleanup_(rtnl_link_putp) struct rtnl_link *link = NULL;
	int e;

	e = nl_open(&sk, ret_error);
	if (e < 0)
		return e;
	e = rtnl_link_get_kernel(sk, 0, c->target, &link);
	if (e == -NLE_NODEV || e == -NLE_OBJ_NOTFOUND)
		return 0; /* gone already */
	if (e >= 0)
		e = rtnl_link_delete(sk, link);
	return e < 0 ? nl_fail(e, ret_error) : 0;
}

static int ipv4_nl_addr(uint32_t addr, unsigned prefix, struct nl_addr **ret)
{
	uint32_t be = htonl(addr);
	struct nl_addr *a = nl_addr_build(AF_INET, &be, 4);

	if (!a)
		return -ENOMEM;
	nl_addr_set_prefixlen(a, (int)prefix);
	*ret = a;
	return 0;
}

int netd_link_apply_addr(const struct netd_change *c, char **ret_error)
{
	_cleanup_(nl_socket_freep) struct nl_sock *sk = NULL;
	_cleanup_(rtnl_link_putp) struct rtnl_link *link = NULL;
	_cleanup_(rtnl_addr_putp) struct rtnl_addr *addr = rtnl_addr_alloc();
	_cleanup_(nl_addr_putp) struct nl_addr *local = NULL;
	int e;

	if (!addr || ipv4_nl_addr(c->addr, c->prefix, &local) < 0)
		return -ENOMEM;
	e = nl_open(&sk, ret_error);
	if (e >= 0)
		e = get_link(sk, c->target, &link, ret_error);
	if (e < 0)
		return e;
	rtnl_addr_set_ifindex(addr, rtnl_link_get_ifindex(link));
	e = rtnl_addr_set_local(addr, local);
	/* `ip addr replace`: NLM_F_REPLACE updates an existing address in place. */
	if (e >= 0)
		e = rtnl_addr_add(sk, addr, NLM_F_REPLACE);
	return e < 0 ? nl_fail(e, ret_error) : 0;
}

static bool is_local_route(struct rtnl_route *rt, int ifindex, uint32_t addr, unsigned prefix)
{
	struct nl_addr *dst = rtnl_route_get_dst(rt);

	if (rtnl_route_get_table(rt) != RT_TABLE_LOCAL || rtnl_route_get_type(rt) != RTN_LOCAL ||
	    rtnl_route_get_family(rt) != AF_INET || !addr_is(dst, addr) ||
	    (unsigned)nl_addr_get_prefixlen(dst) != prefix)
		return false;
	for (int i = 0; i < rtnl_route_get_nnexthops(rt); i++)
		if (rtnl_route_nh_get_ifindex(rtnl_route_nexthop_n(rt, i)) == ifindex)
			return true;
	return false;
}

int netd_link_has_local_route(const char *dev, uint32_t addr, unsigned prefix, bool *ret)
{
	_cleanup_(nl_socket_freep) struct nl_sock *sk = NULL;
	_cleanup_(nl_cache_freep) struct nl_cache *cache = NULL;
	struct netd_link_state st;
	bool found = false;
	int e;

	e = netd_link_get(dev, &st);
	if (e < 0)
		return e;
	if (!st.exists) {
		*ret = false;
		return 0;
	}
	e = nl_open(&sk, NULL);
	if (e < 0)
		return e;
	e = rtnl_route_alloc_cache(sk, AF_INET, 0, &cache);
	if (e < 0)
		return nl_to_errno(e);
	for (struct nl_object *o = nl_cache_get_first(cache); o && !found; o = nl_cache_get_next(o))
		found = is_local_route((struct rtnl_route *)o, st.ifindex, addr, prefix);
	*ret = found;
	return 0;
}

int netd_link_apply_delete_local_route(const struct netd_change *c, char **ret_error)
{
	_cleanup_(nl_socket_freep) struct nl_sock *sk = NULL;
	_cleanup_(rtnl_link_putp) struct rtnl_link *link = NULL;
	_cleanup_(rtnl_route_putp) struct rtnl_route *rt = rtnl_route_alloc();
	_cleanup_(nl_addr_putp) struct nl_addr *dst = NULL;
	struct rtnl_nexthop *nh;
	int e;

	if (!rt || ipv4_nl_addr(c->addr, c->prefix, &dst) < 0)
		return -ENOMEM;
	e = nl_open(&sk, ret_error);
	if (e >= 0)
		e = get_link(sk, c->target, &link, ret_error);
	if (e < 0)
		return e;
	nh = rtnl_route_nh_alloc();
	if (!nh)
		return -ENOMEM;
	rtnl_route_nh_set_ifindex(nh, rtnl_link_get_ifindex(link));
	rtnl_route_add_nexthop(rt, nh);
	rtnl_route_set_family(rt, AF_INET);
	rtnl_route_set_table(rt, RT_TABLE_LOCAL);
	rtnl_route_set_type(rt, RTN_LOCAL);
	rtnl_route_set_scope(rt, RT_SCOPE_HOST);
	/* libnl defaults to RTPROT_STATIC, and the kernel only deletes a route whose protocol
	 * matches a non-zero one: the agent's route is RTPROT_BOOT. Unspecified matches any. */
	rtnl_route_set_protocol(rt, RTPROT_UNSPEC);
	e = rtnl_route_set_dst(rt, dst);
	if (e >= 0)
		e = rtnl_route_delete(sk, rt, 0);
	if (e == -NLE_OBJ_NOTFOUND)
		return 0; /* gone already */
	return e < 0 ? nl_fail(e, ret_error) : 0;
}
