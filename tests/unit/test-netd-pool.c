/* netd/pool.c: IPv4 and CIDR parsing, the gateway rules, the pool range (SubnetIPs) and its
 * size limits, contiguous runs, pool.json text, parsing errors, atomic save, paths. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cocoon/fsutil.h"
#include "../../netd/netd.h"

static uint32_t ip(const char *s)
{
	uint32_t a = 0;

	assert_int_equal(netd_ipv4_parse(s, &a), 0);
	return a;
}

static void test_ipv4_parse(void **state)
{
	char buf[NETD_IPV4_STRLEN];
	uint32_t a;

	assert_int_equal(ip("172.20.100.1"), 0xac146401);
	assert_string_equal(netd_ipv4_format(0xac146401, buf), "172.20.100.1");
	assert_string_equal(netd_ipv4_format(0xffffffff, buf), "255.255.255.255");
	for (const char *const *s = (const char *const[]){ "1.2.3", "256.0.0.1", "01.2.3.4",
							   "1.2.3.4 ", "", "::1", "a.b.c.d", NULL };
	     *s; s++)
		assert_int_equal(netd_ipv4_parse(*s, &a), -EINVAL);
	assert_int_equal(netd_ipv4_parse(NULL, &a), -EINVAL);
}

static void test_cidr_parse(void **state)
{
	char buf[NETD_CIDR_STRLEN];
	struct netd_cidr c, d;

	assert_int_equal(netd_cidr_parse("172.20.100.0/24", &c), 0);
	assert_int_equal(c.prefix, 24);
	assert_string_equal(netd_cidr_format(&c, buf), "172.20.100.0/24");
	assert_int_equal(netd_cidr_netmask(&c), 0xffffff00);
	assert_int_equal(netd_cidr_broadcast(&c), ip("172.20.100.255"));
	/* Host bits are cleared, as net.ParseCIDR does. */
	assert_int_equal(netd_cidr_parse("10.1.2.3/8", &c), 0);
	assert_string_equal(netd_cidr_format(&c, buf), "10.0.0.0/8");
	assert_int_equal(netd_cidr_parse("0.0.0.0/0", &c), 0);
	assert_int_equal(netd_cidr_netmask(&c), 0);
	assert_int_equal(netd_cidr_parse("1.2.3.4/32", &c), 0);
	assert_true(netd_cidr_contains(&c, ip("1.2.3.4")));
	assert_false(netd_cidr_contains(&c, ip("1.2.3.5")));
	for (const char *const *s =
		 (const char *const[]){ "10.0.0.0", "10.0.0.0/", "10.0.0.0/33", "10.0.0.0/08",
					"10.0.0.0/-1", "10.0.0.0/2x", "fd00::/64", "/24", NULL };
	     *s; s++)
		assert_int_equal(netd_cidr_parse(*s, &c), -EINVAL);
	assert_int_equal(netd_cidr_parse("10.0.0.0/8", &c), 0);
	assert_int_equal(netd_cidr_parse("10.20.0.0/16", &d), 0);
	assert_true(netd_cidr_covers(&c, &d));
	assert_false(netd_cidr_covers(&d, &c));
}

static void expect_gateway_error(const char *subnet, const char *gw, const char *want)
{
	char *why = NULL;
	struct netd_cidr c;
	uint32_t a;

	assert_int_equal(netd_cidr_parse(subnet, &c), 0);
	assert_int_equal(netd_gateway_resolve(&c, gw, &a, &why), -EINVAL);
	assert_non_null(why);
	assert_string_equal(why, want);
	free(why);
}

static void test_gateway(void **state)
{
	struct netd_cidr c;
	char *why = NULL;
	uint32_t a;

	assert_int_equal(netd_cidr_parse("172.20.0.0/24", &c), 0);
	assert_int_equal(netd_gateway_resolve(&c, NULL, &a, &why), 0);
	assert_int_equal(a, ip("172.20.0.1"));
	assert_int_equal(netd_gateway_resolve(&c, "", &a, &why), 0);
	assert_int_equal(a, ip("172.20.0.1"));
	assert_int_equal(netd_gateway_resolve(&c, "172.20.0.254", &a, &why), 0);
	assert_int_equal(a, ip("172.20.0.254"));
	expect_gateway_error("172.20.0.0/24", "172.21.0.1",
			     "--gateway 172.21.0.1: outside --subnet 172.20.0.0/24");
	expect_gateway_error("172.20.0.0/24", "172.20.0.0",
			     "--gateway 172.20.0.0: is the network address of 172.20.0.0/24");
	expect_gateway_error("172.20.0.0/24", "172.20.0.255",
			     "--gateway 172.20.0.255: is the broadcast address of 172.20.0.0/24");
	expect_gateway_error("172.20.0.0/24", "gw", "--gateway gw: not an IPv4 address");
	expect_gateway_error("172.20.0.0/31", NULL,
			     "--subnet 172.20.0.0/31: too small, a pool needs at least a /30");
}

static void range(const char *subnet, const char *gw, int64_t count, uint32_t **ret, size_t *ret_n)
{
	struct netd_cidr c;
	char *why = NULL;

	assert_int_equal(netd_cidr_parse(subnet, &c), 0);
	assert_int_equal(netd_pool_range(&c, ip(gw), count, ret, ret_n, &why), 0);
	assert_null(why);
}

static void test_pool_range(void **state)
{
	struct netd_cidr c;
	char *why = NULL;
	uint32_t *ips;
	size_t n;

	/* §1.6's example: /24, gateway .1, 300 requested → 253 IPs .2 … .254. */
	range("172.20.0.0/24", "172.20.0.1", 300, &ips, &n);
	assert_int_equal(n, 253);
	assert_int_equal(ips[0], ip("172.20.0.2"));
	assert_int_equal(ips[252], ip("172.20.0.254"));
	free(ips);
	/* Only the gateway is skipped, wherever it is: network+1 is a VM IP then. */
	range("172.20.0.0/24", "172.20.0.5", 5, &ips, &n);
	assert_int_equal(n, 5);
	assert_int_equal(ips[0], ip("172.20.0.1"));
	assert_int_equal(ips[3], ip("172.20.0.4"));
	assert_int_equal(ips[4], ip("172.20.0.6"));
	free(ips);
	range("10.0.0.0/30", "10.0.0.1", 140, &ips, &n);
	assert_int_equal(n, 1);
	assert_int_equal(ips[0], ip("10.0.0.2"));
	free(ips);
	range("10.0.0.0/24", "10.0.0.1", 0, &ips, &n);
	assert_int_equal(n, 0);
	assert_null(ips);
	/* Limits name the flag and the value. */
	assert_int_equal(netd_cidr_parse("10.0.0.0/8", &c), 0);
	assert_int_equal(netd_pool_range(&c, ip("10.0.0.1"), -1, &ips, &n, &why), -EINVAL);
	assert_string_equal(why, "--pool-size -1: must be between 0 and 65534");
	free(why);
	why = NULL;
	assert_int_equal(netd_pool_range(&c, ip("10.0.0.1"), 65535, &ips, &n, &why), -EINVAL);
	assert_string_equal(why, "--pool-size 65535: must be between 0 and 65534");
	free(why);
	range("10.0.0.0/8", "10.0.0.1", 65534, &ips, &n);
	assert_int_equal(n, 65534);
	assert_int_equal(ips[65533], ip("10.0.255.255"));
	free(ips);
}

static void test_ranges(void **state)
{
	uint32_t ips[] = { ip("10.0.0.5"), ip("10.0.0.1"),  ip("10.0.0.2"), ip("10.0.0.3"),
			   ip("10.0.1.9"), ip("10.0.1.10"), ip("10.0.0.3") };
	struct netd_range *r;
	size_t n;

	assert_int_equal(netd_ranges_from_ips(ips, ELEMENTSOF(ips), &r, &n), 0);
	assert_int_equal(n, 3);
	assert_int_equal(r[0].first, ip("10.0.0.1"));
	assert_int_equal(r[0].last, ip("10.0.0.3"));
	assert_int_equal(r[1].first, ip("10.0.0.5"));
	assert_int_equal(r[1].last, ip("10.0.0.5"));
	assert_int_equal(r[2].first, ip("10.0.1.9"));
	assert_int_equal(r[2].last, ip("10.0.1.10"));
	free(r);
	assert_int_equal(netd_ranges_from_ips(NULL, 0, &r, &n), 0);
	assert_int_equal(n, 0);
}

static const char golden_pool[] = "{\n"
				  "  \"platform\": \"volcengine\",\n"
				  "  \"nodeName\": \"cocoon-pool\",\n"
				  "  \"subnet\": \"172.20.100.0/24\",\n"
				  "  \"gateway\": \"172.20.100.1\",\n"
				  "  \"primaryNIC\": \"eth0\",\n"
				  "  \"secondaryNICs\": [\n"
				  "    \"eth1\",\n"
				  "    \"eth2\"\n"
				  "  ],\n"
				  "  \"ips\": [\n"
				  "    \"172.20.100.2\",\n"
				  "    \"172.20.100.3\"\n"
				  "  ],\n"
				  "  \"dnsServers\": [\n"
				  "    \"8.8.8.8\"\n"
				  "  ],\n"
				  "  \"dropInternalAccess\": true,\n"
				  "  \"dropCIDRs\": [\n"
				  "    \"10.0.0.0/8\"\n"
				  "  ],\n"
				  "  \"updatedAt\": \"2026-04-04T06:00:00Z\"\n"
				  "}\n";

static void test_pool_format_parse(void **state)
{
	struct netd_pool *p = NULL, *q = NULL;
	char *text = NULL, *why = NULL;

	assert_int_equal(netd_pool_parse(golden_pool, strlen(golden_pool), &p, &why), 0);
	assert_string_equal(p->platform, "volcengine");
	assert_int_equal(p->n_ips, 2);
	assert_int_equal(p->ips[1], ip("172.20.100.3"));
	assert_true(p->drop_internal_access);
	assert_false(p->adopted);
	assert_null(p->alias_range_name);
	/* Field order, omitempty and indentation of §1.7 survive a round trip. */
	assert_int_equal(netd_pool_format(p, &text), 0);
	assert_string_equal(text, golden_pool);
	free(text);
	/* Equality ignores updatedAt only. */
	assert_int_equal(netd_pool_parse(golden_pool, strlen(golden_pool), &q, &why), 0);
	free(q->updated_at);
	q->updated_at = strdup("2030-01-01T00:00:00Z");
	assert_true(netd_pool_equal(p, q));
	q->drop_internal_access = false;
	assert_false(netd_pool_equal(p, q));
	q->drop_internal_access = true;
	q->ips[1]++;
	assert_false(netd_pool_equal(p, q));
	netd_pool_free(q);
	/* No IPs: "ips": null, as Go writes a nil slice; the seed has an empty gateway. */
	free(p->ips);
	p->ips = NULL;
	p->n_ips = 0;
	free(p->gateway);
	p->gateway = strdup("");
	p->adopted = true;
	assert_int_equal(netd_pool_format(p, &text), 0);
	assert_non_null(strstr(text, "  \"gateway\": \"\",\n"));
	assert_non_null(strstr(text, "  \"ips\": null,\n"));
	assert_non_null(strstr(text, "  \"adopted\": true,\n"));
	assert_int_equal(netd_pool_parse(text, strlen(text), &q, &why), 0);
	assert_true(netd_pool_equal(p, q));
	netd_pool_free(q);
	free(text);
	netd_pool_free(p);
}

/* What the original writes for an empty value (omitempty: nothing) and what an absent field
 * reads as agree, so every file formats back the same. */
static void test_pool_parse_absent(void **state)
{
	static const char text[] = "{\"platform\": \"gke\", \"nodeName\": \"n\", \"subnet\": "
				   "\"10.0.0.0/24\", \"primaryNIC\": \"\", \"dnsServers\": [], "
				   "\"aliasRangeName\": null, \"future\": {\"x\": 1}}";
	struct netd_pool *p = NULL;
	char *why = NULL, *out = NULL;

	assert_int_equal(netd_pool_parse(text, strlen(text), &p, &why), 0);
	assert_null(p->primary_nic);
	assert_null(p->alias_range_name);
	assert_string_equal(p->gateway, "");
	assert_string_equal(p->updated_at, "");
	assert_int_equal(netd_pool_format(p, &out), 0);
	assert_string_equal(out, "{\n"
				 "  \"platform\": \"gke\",\n"
				 "  \"nodeName\": \"n\",\n"
				 "  \"subnet\": \"10.0.0.0/24\",\n"
				 "  \"gateway\": \"\",\n"
				 "  \"ips\": null,\n"
				 "  \"updatedAt\": \"\"\n"
				 "}\n");
	free(out);
	netd_pool_free(p);
}

static void expect_parse_error(const char *text, const char *want)
{
	struct netd_pool *p = NULL;
	char *why = NULL;

	assert_int_equal(netd_pool_parse(text, strlen(text), &p, &why), -EINVAL);
	assert_null(p);
	assert_non_null(why);
	assert_string_equal(why, want);
	free(why);
}

static void test_pool_parse_errors(void **state)
{
	expect_parse_error("{\"nodeName\": \"n\", \"subnet\": \"10.0.0.0/24\"}",
			   "field 'platform' is missing");
	expect_parse_error("{\"platform\": 1, \"nodeName\": \"n\", \"subnet\": \"10.0.0.0/24\"}",
			   "field 'platform' must be a string");
	expect_parse_error("{\"platform\": \"gke\", \"nodeName\": \"n\", \"subnet\": \"x\"}",
			   "field 'subnet' (\"x\") is not an IPv4 CIDR");
	expect_parse_error("{\"platform\": \"gke\", \"nodeName\": \"n\", \"subnet\": "
			   "\"10.0.0.0/24\", \"ips\": [\"10.0.0.2\", \"10.0.0.300\"]}",
			   "field 'ips'[1] is not an IPv4 address");
	expect_parse_error("{\"platform\": \"gke\", \"nodeName\": \"n\", \"subnet\": "
			   "\"10.0.0.0/24\", \"dropInternalAccess\": \"yes\"}",
			   "field 'dropInternalAccess' must be true or false");
	expect_parse_error("{\"platform\": \"gke\", \"nodeName\": \"n\", \"subnet\": "
			   "\"10.0.0.0/24\", \"dnsServers\": [1]}",
			   "field 'dnsServers'[0] must be a string");
	expect_parse_error("[]", "not a JSON object");
	expect_parse_error("{\n  \"platform\": \"gke\",\n  oops\n}",
			   "line 3 column 6: string or '}' expected near 'oops'");
}

static char *tmpdir(void)
{
	char *d = strdup("/tmp/test-netd-pool.XXXXXX");

	assert_non_null(mkdtemp(d));
	return d;
}

static void rm_rf(const char *d)
{
	char *cmd = NULL;

	assert_true(asprintf(&cmd, "rm -rf '%s'", d) > 0);
	assert_int_equal(system(cmd), 0);
	free(cmd);
}

static void test_pool_save_load(void **state)
{
	char *d = tmpdir(), *path = NULL, *stale = NULL, *why = NULL;
	struct netd_pool *p = NULL, *q = NULL;
	regex_t re;
	struct stat st;

	assert_true(asprintf(&path, "%s/state/net/pool.json", d) > 0);
	assert_int_equal(netd_pool_load(path, &q, &why), -ENOENT);
	assert_non_null(strstr(why, "does not exist (run 'cocoon-net init' first)"));
	free(why);
	why = NULL;
	assert_int_equal(netd_pool_parse(golden_pool, strlen(golden_pool), &p, &why), 0);
	assert_int_equal(netd_pool_save(p, path), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0644);
	/* updatedAt is RFC3339Nano in UTC, stamped at save. */
	assert_int_equal(regcomp(&re,
				 "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}"
				 "(\\.[0-9]*[1-9])?Z$",
				 REG_EXTENDED | REG_NOSUB),
			 0);
	assert_int_equal(regexec(&re, p->updated_at, 0, NULL, 0), 0);
	regfree(&re);
	assert_string_not_equal(p->updated_at, "2026-04-04T06:00:00Z");
	/* A stale temp file from a crashed writer is not read. */
	assert_true(asprintf(&stale, "%s.tmp", path) > 0);
	assert_int_equal(fs_write_atomic(stale, "garbage", 7, 0644), 0);
	assert_int_equal(netd_pool_load(path, &q, &why), 0);
	assert_true(netd_pool_equal(p, q));
	assert_string_equal(q->updated_at, p->updated_at);
	netd_pool_free(q);
	/* A corrupt file names itself and what is wrong. */
	assert_int_equal(fs_write_atomic(path, "{\"platform\": \"gke\"}", 19, 0644), 0);
	assert_int_equal(netd_pool_load(path, &q, &why), -EINVAL);
	assert_non_null(strstr(why, "pool.json: field 'nodeName' is missing (run 'cocoon-net init' "
				    "first)"));
	free(why);
	netd_pool_free(p);
	rm_rf(d);
	free(stale);
	free(path);
	free(d);
}

static void test_paths(void **state)
{
	struct netd_paths *p = NULL;

	assert_int_equal(netd_paths_new("/srv/root/", NULL, &p), 0);
	assert_string_equal(p->state_dir, "/srv/root/var/lib/cocoon/net");
	assert_string_equal(p->pool_file, "/srv/root/var/lib/cocoon/net/pool.json");
	assert_string_equal(p->leases_json, "/srv/root/var/lib/cocoon/net/leases.json");
	assert_string_equal(p->dnsmasq_conf, "/srv/root/etc/dnsmasq-cni.d/cni0.conf");
	assert_string_equal(p->dnsmasq_lease_file, "/srv/root/var/lib/misc/dnsmasq.leases");
	assert_string_equal(p->cni_conflist, "/srv/root/etc/cni/net.d/30-dnsmasq-dhcp.conflist");
	assert_string_equal(p->gke_cron_file, "/srv/root/etc/cron.d/cocoon-net-fix-alias");
	netd_paths_free(p);
	assert_int_equal(netd_paths_new(NULL, "/state", &p), 0);
	assert_string_equal(p->pool_file, "/state/pool.json");
	assert_string_equal(p->cni_conflist, "/etc/cni/net.d/30-dnsmasq-dhcp.conflist");
	netd_paths_free(p);
	assert_int_equal(netd_paths_new("/", NULL, &p), 0);
	assert_null(p->root);
	assert_string_equal(p->dnsmasq_conf, "/etc/dnsmasq-cni.d/cni0.conf");
	netd_paths_free(p);
}

static void test_strv(void **state)
{
	char **l = NULL, *s = NULL;

	assert_int_equal(strv_split(" 8.8.8.8 , ,1.1.1.1,", ',', &l), 0);
	assert_int_equal(strv_length(l), 2);
	assert_string_equal(l[0], "8.8.8.8");
	assert_string_equal(l[1], "1.1.1.1");
	assert_int_equal(strv_join(l, ",", &s), 0);
	assert_string_equal(s, "8.8.8.8,1.1.1.1");
	free(s);
	strv_free(l);
	assert_int_equal(strv_split("", ',', &l), 0);
	assert_int_equal(strv_length(l), 0);
	strv_free(l);
	assert_true(netd_ifname_valid("eth0"));
	assert_true(netd_ifname_valid("enp0s31f6.100"));
	assert_false(netd_ifname_valid("a-name-too-long-x"));
	assert_false(netd_ifname_valid("eth0\nlog-queries"));
	assert_false(netd_ifname_valid(".."));
	assert_false(netd_ifname_valid(""));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ipv4_parse),
		cmocka_unit_test(test_cidr_parse),
		cmocka_unit_test(test_gateway),
		cmocka_unit_test(test_pool_range),
		cmocka_unit_test(test_ranges),
		cmocka_unit_test(test_pool_format_parse),
		cmocka_unit_test(test_pool_parse_absent),
		cmocka_unit_test(test_pool_parse_errors),
		cmocka_unit_test(test_pool_save_load),
		cmocka_unit_test(test_paths),
		cmocka_unit_test(test_strv),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
