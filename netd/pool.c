/* The VM IP pool and where cocoon-net keeps its state: IPv4 and CIDR parsing, the gateway
 * and pool range rules of net-epoch-runtime.md §1.6 (SubnetIPs), runs of contiguous
 * addresses for dnsmasq (§1.14), pool.json (§1.7: field order, omitempty rules, atomic
 * save, RFC3339Nano updatedAt) and the --root-prefixed file paths. */
#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cocoon/fsutil.h"
#include "cocoon/errmsg.h"
#include "netd.h"

int netd_ipv4_parse(const char *s, uint32_t *ret)
{
	struct in_addr a;

	/* glibc's inet_pton takes exactly four decimal octets, no leading zeros. */
	if (isempty(s) || inet_pton(AF_INET, s, &a) != 1)
		return -EINVAL;
	*ret = ntohl(a.s_addr);
	return 0;
}

char *netd_ipv4_format(uint32_t a, char buf[static NETD_IPV4_STRLEN])
{
	snprintf(buf, NETD_IPV4_STRLEN, "%u.%u.%u.%u", a >> 24, (a >> 16) & 0xff, (a >> 8) & 0xff,
		 a & 0xff);
	return buf;
}

bool netd_ifname_valid(const char *s)
{
	size_t n = s ? strlen(s) : 0;

	if (n == 0 || n > 15 || streq(s, ".") || streq(s, ".."))
		return false;
	for (; *s; s++)
		if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-",
			    *s))
			return false;
	return true;
}

static uint32_t prefix_mask(unsigned prefix)
{
	return prefix == 0 ? 0 : ~(uint32_t)0 << (32 - prefix);
}

int netd_cidr_parse(const char *s, struct netd_cidr *ret)
{
	char addr[NETD_IPV4_STRLEN];
	const char *slash, *p;
	unsigned prefix = 0;
	uint32_t a;

	if (isempty(s))
		return -EINVAL;
	slash = strchr(s, '/');
	if (!slash || (size_t)(slash - s) >= sizeof addr || !slash[1])
		return -EINVAL;
	memcpy(addr, s, (size_t)(slash - s));
	addr[slash - s] = '\0';
	if (netd_ipv4_parse(addr, &a) < 0)
		return -EINVAL;
	if (slash[1] == '0' && slash[2])
		return -EINVAL; /* "/08" */
	for (p = slash + 1; *p; p++) {
		if (*p < '0' || *p > '9')
			return -EINVAL;
		prefix = prefix * 10 + (unsigned)(*p - '0');
		if (prefix > 32)
			return -EINVAL;
	}
	*ret = (struct netd_cidr){ .addr = a & prefix_mask(prefix), .prefix = prefix };
	return 0;
}

char *netd_cidr_format(const struct netd_cidr *c, char buf[static NETD_CIDR_STRLEN])
{
	char a[NETD_IPV4_STRLEN];

	snprintf(buf, NETD_CIDR_STRLEN, "%s/%u", netd_ipv4_format(c->addr, a), c->prefix);
	return buf;
}

uint32_t netd_cidr_netmask(const struct netd_cidr *c)
{
	return prefix_mask(c->prefix);
}

uint32_t netd_cidr_broadcast(const struct netd_cidr *c)
{
	return c->addr | ~prefix_mask(c->prefix);
}

bool netd_cidr_contains(const struct netd_cidr *c, uint32_t a)
{
	return (a & prefix_mask(c->prefix)) == c->addr;
}

bool netd_cidr_covers(const struct netd_cidr *outer, const struct netd_cidr *inner)
{
	return outer->prefix <= inner->prefix && netd_cidr_contains(outer, inner->addr);
}

int netd_gateway_resolve(const struct netd_cidr *subnet, const char *gateway_str, uint32_t *ret,
			 char **ret_error)
{
	char net[NETD_CIDR_STRLEN];
	uint32_t gw;

	netd_cidr_format(subnet, net);
	/* A /31 or /32 has no room for a gateway and a VM. */
	if (subnet->prefix > 30)
		return asprintf(ret_error, "--subnet %s: too small, a pool needs at least a /30",
				net) < 0
			   ? -ENOMEM
			   : -EINVAL;
	if (isempty(gateway_str)) {
		*ret = subnet->addr + 1;
		return 0;
	}
	if (netd_ipv4_parse(gateway_str, &gw) < 0)
		return asprintf(ret_error, "--gateway %s: not an IPv4 address", gateway_str) < 0
			   ? -ENOMEM
			   : -EINVAL;
	if (!netd_cidr_contains(subnet, gw))
		return asprintf(ret_error, "--gateway %s: outside --subnet %s", gateway_str, net) <
			       0
			   ? -ENOMEM
			   : -EINVAL;
	if (gw == subnet->addr || gw == netd_cidr_broadcast(subnet))
		return asprintf(ret_error, "--gateway %s: is the %s address of %s", gateway_str,
				gw == subnet->addr ? "network" : "broadcast", net) < 0
			   ? -ENOMEM
			   : -EINVAL;
	*ret = gw;
	return 0;
}

int netd_pool_range(const struct netd_cidr *subnet, uint32_t gateway, int64_t count, uint32_t **ret,
		    size_t *ret_n, char **ret_error)
{
	uint32_t bcast = netd_cidr_broadcast(subnet), *ips = NULL;
	size_t n = 0;

	if (count < 0 || count > NETD_POOL_SIZE_MAX)
		return asprintf(ret_error, "--pool-size %lld: must be between 0 and %d",
				(long long)count, NETD_POOL_SIZE_MAX) < 0
			   ? -ENOMEM
			   : -EINVAL;
	if (count > 0) {
		ips = calloc((size_t)count, sizeof(uint32_t));
		if (!ips)
			return -ENOMEM;
	}
	/* a < bcast also stops the walk of a /32 or /31, which has no host addresses. */
	for (uint32_t a = subnet->addr + 1; a < bcast && n < (size_t)count; a++)
		if (a != gateway)
			ips[n++] = a;
	if (n == 0) {
		free(ips);
		ips = NULL;
	}
	*ret = ips;
	*ret_n = n;
	return 0;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

int netd_ranges_from_ips(const uint32_t *ips, size_t n, struct netd_range **ret, size_t *ret_n)
{
	_cleanup_(freep) uint32_t *s = NULL;
	_cleanup_(freep) struct netd_range *r = NULL;
	size_t nr = 0;

	if (n == 0) {
		*ret = NULL;
		*ret_n = 0;
		return 0;
	}
	s = malloc(n * sizeof(uint32_t));
	r = malloc(n * sizeof(struct netd_range));
	if (!s || !r)
		return -ENOMEM;
	memcpy(s, ips, n * sizeof(uint32_t));
	qsort(s, n, sizeof(uint32_t), cmp_u32);
	for (size_t i = 0; i < n; i++) {
		if (nr > 0 && s[i] == r[nr - 1].last)
			continue; /* duplicate */
		if (nr > 0 && s[i] == r[nr - 1].last + 1)
			r[nr - 1].last = s[i];
		else
			r[nr++] = (struct netd_range){ s[i], s[i] };
	}
	*ret = TAKE_PTR(r);
	*ret_n = nr;
	return 0;
}

/* ---- pool.json ---- */

int netd_pool_new(struct netd_pool **ret)
{
	struct netd_pool *p = calloc(1, sizeof(*p));

	if (!p)
		return -ENOMEM;
	*ret = p;
	return 0;
}

void netd_pool_free(struct netd_pool *p)
{
	if (!p)
		return;
	free(p->platform);
	free(p->node_name);
	free(p->subnet);
	free(p->gateway);
	free(p->primary_nic);
	strv_free(p->secondary_nics);
	free(p->ips);
	strv_free(p->eni_ids);
	free(p->subnet_id);
	free(p->alias_range_name);
	strv_free(p->dns_servers);
	strv_free(p->drop_cidrs);
	free(p->updated_at);
	free(p);
}

static int get_string(json_t *o, const char *key, bool required, char **ret, char **ret_error)
{
	json_t *v = json_object_get(o, key);

	if (!v || json_is_null(v)) {
		if (required)
			return errmsg_set(ret_error, EINVAL, "field '%s' is missing", key);
		return 0;
	}
	if (!json_is_string(v))
		return errmsg_set(ret_error, EINVAL, "field '%s' must be a string", key);
	/* The omitempty fields: "" is what absent means, and how it formats back. */
	if (!required && !streq(key, "gateway") && !streq(key, "updatedAt") &&
	    isempty(json_string_value(v)))
		return 0;
	*ret = strdup(json_string_value(v));
	return *ret ? 0 : -ENOMEM;
}

static int get_strv(json_t *o, const char *key, char ***ret, char **ret_error)
{
	json_t *v = json_object_get(o, key), *e;
	_cleanup_(strv_freep) char **l = NULL;
	size_t i;

	if (!v || json_is_null(v))
		return 0;
	if (!json_is_array(v))
		return errmsg_set(ret_error, EINVAL, "field '%s' must be an array of strings", key);
	l = calloc(1, sizeof(char *));
	if (!l)
		return -ENOMEM;
	json_array_foreach (v, i, e) {
		if (!json_is_string(e))
			return errmsg_set(ret_error, EINVAL, "field '%s'[%zu] must be a string", key, i);
		if (strv_push(&l, json_string_value(e)) < 0)
			return -ENOMEM;
	}
	*ret = TAKE_PTR(l);
	return 0;
}

static int get_ips(json_t *o, struct netd_pool *p, char **ret_error)
{
	json_t *v = json_object_get(o, "ips"), *e;
	size_t i;

	if (!v || json_is_null(v))
		return 0;
	if (!json_is_array(v))
		return errmsg_set(ret_error, EINVAL, "field 'ips' must be an array of strings");
	if (json_array_size(v) > NETD_POOL_SIZE_MAX)
		return errmsg_set(ret_error, EINVAL, "field 'ips' holds %zu addresses, at most %d",
			    json_array_size(v), NETD_POOL_SIZE_MAX);
	if (json_array_size(v) == 0)
		return 0;
	p->ips = calloc(json_array_size(v), sizeof(uint32_t));
	if (!p->ips)
		return -ENOMEM;
	json_array_foreach (v, i, e) {
		if (!json_is_string(e) || netd_ipv4_parse(json_string_value(e), &p->ips[i]) < 0)
			return errmsg_set(ret_error, EINVAL, "field 'ips'[%zu] is not an IPv4 address", i);
		p->n_ips++;
	}
	return 0;
}

static int get_bool(json_t *o, const char *key, bool *ret, char **ret_error)
{
	json_t *v = json_object_get(o, key);

	if (v && !json_is_null(v) && !json_is_boolean(v))
		return errmsg_set(ret_error, EINVAL, "field '%s' must be true or false", key);
	*ret = json_is_true(v);
	return 0;
}

static int pool_from_json(json_t *o, struct netd_pool *p, char **ret_error)
{
	struct netd_cidr c;
	int r;

	if (!json_is_object(o))
		return errmsg_set(ret_error, EINVAL, "not a JSON object");
	if ((r = get_string(o, "platform", true, &p->platform, ret_error)) < 0 ||
	    (r = get_string(o, "nodeName", true, &p->node_name, ret_error)) < 0 ||
	    (r = get_string(o, "subnet", true, &p->subnet, ret_error)) < 0 ||
	    (r = get_string(o, "gateway", false, &p->gateway, ret_error)) < 0 ||
	    (r = get_string(o, "primaryNIC", false, &p->primary_nic, ret_error)) < 0 ||
	    (r = get_strv(o, "secondaryNICs", &p->secondary_nics, ret_error)) < 0 ||
	    (r = get_ips(o, p, ret_error)) < 0 ||
	    (r = get_strv(o, "eniIDs", &p->eni_ids, ret_error)) < 0 ||
	    (r = get_string(o, "subnetID", false, &p->subnet_id, ret_error)) < 0 ||
	    (r = get_string(o, "aliasRangeName", false, &p->alias_range_name, ret_error)) < 0 ||
	    (r = get_strv(o, "dnsServers", &p->dns_servers, ret_error)) < 0 ||
	    (r = get_strv(o, "dropCIDRs", &p->drop_cidrs, ret_error)) < 0 ||
	    (r = get_string(o, "updatedAt", false, &p->updated_at, ret_error)) < 0)
		return r;
	if ((r = get_bool(o, "dropInternalAccess", &p->drop_internal_access, ret_error)) < 0 ||
	    (r = get_bool(o, "adopted", &p->adopted, ret_error)) < 0 ||
	    (r = get_bool(o, "skipIptables", &p->skip_iptables, ret_error)) < 0)
		return r;
	if (netd_cidr_parse(p->subnet, &c) < 0)
		return errmsg_set(ret_error, EINVAL, "field 'subnet' (\"%s\") is not an IPv4 CIDR", p->subnet);
	/* Absent means empty, so a pool read from a file always formats back the same. */
	if ((!p->gateway && !(p->gateway = strdup(""))) ||
	    (!p->updated_at && !(p->updated_at = strdup(""))))
		return -ENOMEM;
	return 0;
}

int netd_pool_parse(const char *text, size_t len, struct netd_pool **ret, char **ret_error)
{
	_cleanup_(netd_pool_freep) struct netd_pool *p = NULL;
	json_error_t jerr;
	json_t *o;
	int r;

	o = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!o)
		return errmsg_set(ret_error, EINVAL, "line %d column %d: %s", jerr.line, jerr.column, jerr.text);
	r = netd_pool_new(&p);
	if (r >= 0)
		r = pool_from_json(o, p, ret_error);
	json_decref(o);
	if (r < 0)
		return r;
	*ret = TAKE_PTR(p);
	return 0;
}

int netd_pool_load(const char *path, struct netd_pool **ret, char **ret_error)
{
	_cleanup_(freep) char *text = NULL, *why = NULL;
	size_t len;
	int r;

	r = fs_read_file(path, NETD_POOL_FILE_MAX, &text, &len);
	if (r == -ENOENT)
		return asprintf(ret_error,
				"load pool state: %s does not exist (run 'cocoon-net init' first)",
				path) < 0
			   ? -ENOMEM
			   : -ENOENT;
	if (r < 0)
		return asprintf(ret_error, "load pool state: %s: %s (run 'cocoon-net init' first)",
				path, strerror(-r)) < 0
			   ? -ENOMEM
			   : r;
	r = netd_pool_parse(text, len, ret, &why);
	if (r == -ENOMEM)
		return r;
	if (r < 0)
		return asprintf(ret_error, "load pool state: %s: %s (run 'cocoon-net init' first)",
				path, why) < 0
			   ? -ENOMEM
			   : r;
	return 0;
}

static int set_strv(json_t *o, const char *key, char *const *l, bool omitempty)
{
	json_t *a;

	if (omitempty && strv_length(l) == 0)
		return 0;
	a = json_array();
	if (!a)
		return -ENOMEM;
	for (size_t i = 0; l && l[i]; i++)
		if (json_array_append_new(a, json_string(l[i])) < 0) {
			json_decref(a);
			return -ENOMEM;
		}
	return json_object_set_new(o, key, a) < 0 ? -ENOMEM : 0;
}

static int set_str(json_t *o, const char *key, const char *s, bool omitempty)
{
	if (omitempty && isempty(s))
		return 0;
	return json_object_set_new(o, key, json_string(s ? s : "")) < 0 ? -ENOMEM : 0;
}

/* omitempty: false is not written. */
static int set_bool(json_t *o, const char *key, bool b)
{
	if (!b)
		return 0;
	return json_object_set_new(o, key, json_true()) < 0 ? -ENOMEM : 0;
}

static int set_ips(json_t *o, const struct netd_pool *p)
{
	char buf[NETD_IPV4_STRLEN];
	json_t *a;

	/* Go marshals a nil slice as null: a pool without IPs (the init seed) says so. */
	if (p->n_ips == 0)
		return json_object_set_new(o, "ips", json_null()) < 0 ? -ENOMEM : 0;
	a = json_array();
	if (!a)
		return -ENOMEM;
	for (size_t i = 0; i < p->n_ips; i++)
		if (json_array_append_new(a, json_string(netd_ipv4_format(p->ips[i], buf))) < 0) {
			json_decref(a);
			return -ENOMEM;
		}
	return json_object_set_new(o, "ips", a) < 0 ? -ENOMEM : 0;
}

int netd_pool_format(const struct netd_pool *p, char **ret)
{
	json_t *o = json_object();
	char *s = NULL;
	int r;

	if (!o)
		return -ENOMEM;
	/* §1.7's field order; jansson keeps insertion order. */
	if ((r = set_str(o, "platform", p->platform, false)) < 0 ||
	    (r = set_str(o, "nodeName", p->node_name, false)) < 0 ||
	    (r = set_str(o, "subnet", p->subnet, false)) < 0 ||
	    (r = set_str(o, "gateway", p->gateway, false)) < 0 ||
	    (r = set_str(o, "primaryNIC", p->primary_nic, true)) < 0 ||
	    (r = set_strv(o, "secondaryNICs", p->secondary_nics, true)) < 0 ||
	    (r = set_ips(o, p)) < 0 || (r = set_strv(o, "eniIDs", p->eni_ids, true)) < 0 ||
	    (r = set_str(o, "subnetID", p->subnet_id, true)) < 0 ||
	    (r = set_str(o, "aliasRangeName", p->alias_range_name, true)) < 0 ||
	    (r = set_strv(o, "dnsServers", p->dns_servers, true)) < 0 ||
	    (r = set_bool(o, "dropInternalAccess", p->drop_internal_access)) < 0 ||
	    (r = set_strv(o, "dropCIDRs", p->drop_cidrs, true)) < 0 ||
	    (r = set_bool(o, "adopted", p->adopted)) < 0 ||
	    (r = set_bool(o, "skipIptables", p->skip_iptables)) < 0 ||
	    (r = set_str(o, "updatedAt", p->updated_at ? p->updated_at : "", false)) < 0) {
		json_decref(o);
		return r;
	}
	s = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	json_decref(o);
	if (!s)
		return -ENOMEM;
	r = asprintf(ret, "%s\n", s);
	free(s);
	return r < 0 ? -ENOMEM : 0;
}

/* RFC3339Nano as Go prints it: fraction without trailing zeros, none when whole. */
static int now_rfc3339nano(char **ret)
{
	struct timespec ts;
	char date[32], frac[24] = "";
	struct tm tm;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S", &tm);
	if (ts.tv_nsec > 0) {
		size_t n;

		snprintf(frac, sizeof frac, ".%09ld", ts.tv_nsec % 1000000000);
		n = strlen(frac);
		while (frac[n - 1] == '0')
			frac[--n] = '\0';
	}
	return asprintf(ret, "%s%sZ", date, frac) < 0 ? -ENOMEM : 0;
}

int netd_pool_stamp(struct netd_pool *p)
{
	char *stamp;
	int r;

	r = now_rfc3339nano(&stamp);
	if (r < 0)
		return r;
	free(p->updated_at);
	p->updated_at = stamp;
	return 0;
}

int netd_pool_save(struct netd_pool *p, const char *path)
{
	_cleanup_(freep) char *text = NULL, *dir = NULL;
	char *slash;
	int r;

	r = netd_pool_stamp(p);
	if (r < 0)
		return r;
	r = netd_pool_format(p, &text);
	if (r < 0)
		return r;
	dir = strdup(path);
	if (!dir)
		return -ENOMEM;
	slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = '\0';
		r = fs_mkdir_p(dir, 0750);
		if (r < 0)
			return r;
	}
	return fs_write_atomic(path, text, strlen(text), 0644);
}

bool netd_pool_equal(const struct netd_pool *a, const struct netd_pool *b)
{
	return streq_ptr(a->platform, b->platform) && streq_ptr(a->node_name, b->node_name) &&
	       streq_ptr(a->subnet, b->subnet) && streq_ptr(a->gateway, b->gateway) &&
	       streq_ptr(a->primary_nic, b->primary_nic) &&
	       strv_equal(a->secondary_nics, b->secondary_nics) && a->n_ips == b->n_ips &&
	       (a->n_ips == 0 || memcmp(a->ips, b->ips, a->n_ips * sizeof(uint32_t)) == 0) &&
	       strv_equal(a->eni_ids, b->eni_ids) && streq_ptr(a->subnet_id, b->subnet_id) &&
	       streq_ptr(a->alias_range_name, b->alias_range_name) &&
	       strv_equal(a->dns_servers, b->dns_servers) &&
	       a->drop_internal_access == b->drop_internal_access &&
	       strv_equal(a->drop_cidrs, b->drop_cidrs) && a->adopted == b->adopted &&
	       a->skip_iptables == b->skip_iptables;
}

/* ---- paths ---- */

int netd_paths_new(const char *root, const char *state_dir, struct netd_paths **ret)
{
	_cleanup_(netd_paths_freep) struct netd_paths *p = calloc(1, sizeof(*p));

	if (!p)
		return -ENOMEM;
	if (!isempty(root) && !streq(root, "/") && !(p->root = strdup(root)))
		return -ENOMEM;
	if (fs_path_join(p->root, state_dir ? state_dir : NETD_STATE_DIR_DEFAULT, &p->state_dir) <
		0 ||
	    asprintf(&p->pool_file, "%s/%s", p->state_dir, NETD_POOL_FILE) < 0 ||
	    asprintf(&p->leases_json, "%s/%s", p->state_dir, NETD_LEASES_JSON_FILE) < 0 ||
	    fs_path_join(p->root, NETD_DNSMASQ_CONF, &p->dnsmasq_conf) < 0 ||
	    fs_path_join(p->root, NETD_DNSMASQ_LEASE_FILE, &p->dnsmasq_lease_file) < 0 ||
	    fs_path_join(p->root, NETD_CNI_CONFLIST, &p->cni_conflist) < 0 ||
	    fs_path_join(p->root, NETD_GKE_CRON_FILE, &p->gke_cron_file) < 0)
		return -ENOMEM;
	*ret = TAKE_PTR(p);
	return 0;
}

void netd_paths_free(struct netd_paths *p)
{
	if (!p)
		return;
	free(p->root);
	free(p->state_dir);
	free(p->pool_file);
	free(p->leases_json);
	free(p->dnsmasq_conf);
	free(p->dnsmasq_lease_file);
	free(p->cni_conflist);
	free(p->gke_cron_file);
	free(p);
}
