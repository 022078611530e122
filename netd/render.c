/* The two config files node setup writes for other programs (net-epoch-runtime.md §1.14
 * and the seed's README):
 *   /etc/dnsmasq-cni.d/cni0.conf            dnsmasq serving DHCP on cni0 only, one
 *                                           dhcp-range per run of contiguous pool IPs
 *   /etc/cni/net.d/30-dnsmasq-dhcp.conflist the CNI bridge plugin on cni0 with empty IPAM
 *                                           (guests get their IP from dnsmasq; "type: dhcp"
 *                                           would be a second DHCP client)
 * Both are rendered byte-for-byte deterministically, so setup can compare them with the
 * files on disk and skip the write (and netd the dnsmasq restart) when nothing changed.
 * Every value that goes into the dnsmasq file is validated first: a newline in a --dns or
 * --primary-nic value must not become a config line of its own. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cocoon/buf.h"
#include "cocoon/errmsg.h"
#include "netd.h"

static int render_ranges(struct buf *b, const struct netd_pool *pool, uint32_t mask)
{
	_cleanup_(freep) struct netd_range *ranges = NULL;
	char first[NETD_IPV4_STRLEN], last[NETD_IPV4_STRLEN], m[NETD_IPV4_STRLEN];
	size_t n;
	int r;

	r = netd_ranges_from_ips(pool->ips, pool->n_ips, &ranges, &n);
	if (r < 0)
		return r;
	netd_ipv4_format(mask, m);
	for (size_t i = 0; i < n && r >= 0; i++)
		r = buf_printf(b, "dhcp-range=%s,%s,%s,24h\n",
			       netd_ipv4_format(ranges[i].first, first),
			       netd_ipv4_format(ranges[i].last, last), m);
	return r;
}

static int render_dns(struct buf *b, const struct netd_pool *pool, char **ret_error)
{
	uint32_t a;
	int r;

	if (strv_length(pool->dns_servers) == 0)
		return 0;
	for (size_t i = 0; pool->dns_servers[i]; i++)
		if (netd_ipv4_parse(pool->dns_servers[i], &a) < 0)
			return errmsg_set(ret_error, EINVAL, "--dns %s: not an IPv4 address",
				    pool->dns_servers[i]);
	r = buf_append_str(b, "dhcp-option=option:dns-server");
	for (size_t i = 0; r >= 0 && pool->dns_servers[i]; i++)
		r = buf_printf(b, ",%s", pool->dns_servers[i]);
	return r < 0 ? r : buf_append_str(b, "\n");
}

int netd_render_dnsmasq_conf(const struct netd_pool *pool, const char *lease_file, char **ret,
			     char **ret_error)
{
	const char *nic =
	    pool->primary_nic ? pool->primary_nic : netd_platform_default_nic(pool->platform);
	_cleanup_(buf_free) struct buf b = BUF_INIT(0);
	struct netd_cidr subnet;
	uint32_t gw;
	int r;

	if (netd_cidr_parse(pool->subnet, &subnet) < 0)
		return errmsg_set(ret_error, EINVAL, "--subnet %s: not an IPv4 CIDR", pool->subnet);
	if (netd_ipv4_parse(pool->gateway, &gw) < 0)
		return errmsg_set(ret_error, EINVAL, "--gateway %s: not an IPv4 address", pool->gateway);
	if (nic && !netd_ifname_valid(nic))
		return errmsg_set(ret_error, EINVAL, "--primary-nic %s: not an interface name", nic);
	if (strchr(lease_file, '\n'))
		return errmsg_set(ret_error, EINVAL, "lease file path contains a newline");
	r = buf_append_str(&b, "# Written by cocoon-net for the VM pool on " NETD_BRIDGE
			       "; rewritten on every setup.\n"
			       "interface=" NETD_BRIDGE "\n"
			       "bind-interfaces\n"
			       "except-interface=lo\n");
	if (r >= 0 && nic)
		r = buf_printf(&b, "except-interface=%s\n", nic);
	if (r >= 0)
		r = render_ranges(&b, pool, netd_cidr_netmask(&subnet));
	if (r >= 0)
		r = buf_printf(&b, "dhcp-option=option:router,%s\n", pool->gateway);
	if (r >= 0)
		r = render_dns(&b, pool, ret_error);
	if (r >= 0)
		r = buf_printf(&b,
			       "dhcp-leasefile=%s\n"
			       "dhcp-authoritative\n"
			       "port=0\n"
			       "log-dhcp\n",
			       lease_file);
	if (r < 0)
		return r;
	*ret = buf_steal(&b, NULL);
	return *ret ? 0 : -ENOMEM;
}

int netd_render_conflist(char **ret)
{
	/* The seed's conflist, key order included. */
	*ret = strdup("{\n"
		      "  \"cniVersion\": \"1.0.0\",\n"
		      "  \"name\": \"" NETD_CNI_NETWORK "\",\n"
		      "  \"plugins\": [\n"
		      "    {\n"
		      "      \"type\": \"bridge\",\n"
		      "      \"bridge\": \"" NETD_BRIDGE "\",\n"
		      "      \"isGateway\": false,\n"
		      "      \"ipMasq\": false,\n"
		      "      \"ipam\": {}\n"
		      "    }\n"
		      "  ]\n"
		      "}\n");
	return *ret ? 0 : -ENOMEM;
}
