/* netd/render.c: the dnsmasq config (contiguous dhcp-ranges, router, DNS, lease file) and the
 * CNI conflist, as golden text; values that would inject dnsmasq config lines are refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "../../netd/netd.h"

static struct netd_pool *pool(const char *platform, const char *nic, const char *dns,
			      const char *const *ips)
{
	struct netd_pool *p = NULL;

	assert_int_equal(netd_pool_new(&p), 0);
	p->platform = strdup(platform);
	p->node_name = strdup("node");
	p->subnet = strdup("172.20.100.0/24");
	p->gateway = strdup("172.20.100.1");
	p->primary_nic = nic ? strdup(nic) : NULL;
	assert_int_equal(strv_split(dns, ',', &p->dns_servers), 0);
	for (size_t i = 0; ips && ips[i]; i++) {
		p->ips = realloc(p->ips, (i + 1) * sizeof(uint32_t));
		assert_int_equal(netd_ipv4_parse(ips[i], &p->ips[i]), 0);
		p->n_ips = i + 1;
	}
	return p;
}

static void test_dnsmasq_conf(void **state)
{
	/* Volcengine pools are scattered: unsorted, with gaps and a duplicate. */
	static const char *const ips[] = { "172.20.100.7", "172.20.100.2",
					   "172.20.100.3", "172.20.100.4",
					   "172.20.100.9", "172.20.100.10",
					   "172.20.100.3", NULL };
	struct netd_pool *p = pool("volcengine", "eth0", "8.8.8.8, 1.1.1.1", ips);
	char *text = NULL, *why = NULL;

	assert_int_equal(netd_render_dnsmasq_conf(p, "/var/lib/misc/dnsmasq.leases", &text, &why),
			 0);
	assert_string_equal(text,
			    "# Written by cocoon-net for the VM pool on cni0; rewritten on every "
			    "setup.\n"
			    "interface=cni0\n"
			    "bind-interfaces\n"
			    "except-interface=lo\n"
			    "except-interface=eth0\n"
			    "dhcp-range=172.20.100.2,172.20.100.4,255.255.255.0,24h\n"
			    "dhcp-range=172.20.100.7,172.20.100.7,255.255.255.0,24h\n"
			    "dhcp-range=172.20.100.9,172.20.100.10,255.255.255.0,24h\n"
			    "dhcp-option=option:router,172.20.100.1\n"
			    "dhcp-option=option:dns-server,8.8.8.8,1.1.1.1\n"
			    "dhcp-leasefile=/var/lib/misc/dnsmasq.leases\n"
			    "dhcp-authoritative\n"
			    "port=0\n"
			    "log-dhcp\n");
	free(text);
	netd_pool_free(p);
}

static void test_dnsmasq_conf_defaults(void **state)
{
	/* No primary NIC in the pool: the platform's default; no DNS: no dns-server line; no
	 * IPs: no range (dnsmasq then hands out nothing). */
	struct netd_pool *p = pool("gke", NULL, "", NULL);
	char *text = NULL, *why = NULL;

	assert_int_equal(netd_render_dnsmasq_conf(p, "/r/leases", &text, &why), 0);
	assert_non_null(strstr(text, "except-interface=ens4\n"));
	assert_null(strstr(text, "dns-server"));
	assert_null(strstr(text, "dhcp-range"));
	assert_non_null(strstr(text, "dhcp-leasefile=/r/leases\n"));
	free(text);
	netd_pool_free(p);
}

static void expect_refused(struct netd_pool *p, const char *lease_file, const char *want)
{
	char *text = NULL, *why = NULL;

	assert_int_equal(netd_render_dnsmasq_conf(p, lease_file, &text, &why), -EINVAL);
	assert_null(text);
	assert_string_equal(why, want);
	free(why);
	netd_pool_free(p);
}

static void test_dnsmasq_conf_refuses_injection(void **state)
{
	struct netd_pool *p;

	p = pool("gke", NULL, "8.8.8.8", NULL);
	strv_free(p->dns_servers);
	p->dns_servers = strv_new("8.8.8.8\ndhcp-script=/tmp/x", NULL);
	expect_refused(p, "/l", "--dns 8.8.8.8\ndhcp-script=/tmp/x: not an IPv4 address");
	expect_refused(pool("gke", "eth0\nlog-queries", "8.8.8.8", NULL), "/l",
		       "--primary-nic eth0\nlog-queries: not an interface name");
	expect_refused(pool("gke", NULL, "8.8.8.8", NULL), "/l\nport=53",
		       "lease file path contains a newline");
	p = pool("gke", NULL, "8.8.8.8", NULL);
	free(p->gateway);
	p->gateway = strdup("");
	expect_refused(p, "/l", "--gateway : not an IPv4 address");
}

static void test_conflist(void **state)
{
	char *text = NULL;

	assert_int_equal(netd_render_conflist(&text), 0);
	assert_string_equal(text, "{\n"
				  "  \"cniVersion\": \"1.0.0\",\n"
				  "  \"name\": \"dnsmasq-dhcp\",\n"
				  "  \"plugins\": [\n"
				  "    {\n"
				  "      \"type\": \"bridge\",\n"
				  "      \"bridge\": \"cni0\",\n"
				  "      \"isGateway\": false,\n"
				  "      \"ipMasq\": false,\n"
				  "      \"ipam\": {}\n"
				  "    }\n"
				  "  ]\n"
				  "}\n");
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dnsmasq_conf),
		cmocka_unit_test(test_dnsmasq_conf_defaults),
		cmocka_unit_test(test_dnsmasq_conf_refuses_injection),
		cmocka_unit_test(test_conflist),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
