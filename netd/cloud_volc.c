/* Volcengine provisioning through the `ve` CLI (net-epoch-runtime.md §1.11): a subnet for
 * the VMs, 7 secondary ENIs on the instance, 20 secondary private IPs on each (140 VMs),
 * the ENIs' NICs eth1..eth7 up. Credentials come from VOLCENGINE_* in the environment or
 * ~/.volcengine/config.json, exported to every `ve` child.
 *
 * Planning reads metadata and the Describe* calls; each write is a cloud item of the change
 * set. Items that depend on an ID only known after an earlier item ran (a new subnet's ID
 * for its ENIs, a new ENI's ID for its IPs) look it up in the provider state when applied.
 * As in the original, a failed attach deletes that ENI and continues with fewer, and a
 * failed IP assignment only warns; zero IPs in the end is an error. The waits after create
 * (2 s) and attach (4 s) are overridable for tests: COCOON_NET_VOLC_CREATE_WAIT and
 * COCOON_NET_VOLC_ATTACH_WAIT (durations such as 0, 500ms, 2s). */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cocoon/conf.h"
#include "cocoon/fsutil.h"
#include "cocoon/log.h"
#include "netd.h"

#define VOLC_ENIS        7
#define VOLC_IPS_PER_ENI 20
#define VOLC_CONFIG_MAX  (64 * 1024)
#define VOLC_CREATE_WAIT (2 * 1000000ULL)
#define VOLC_ATTACH_WAIT (4 * 1000000ULL)

struct volc_eni {
	char *id; /* NULL: creating it failed (or it is not created yet) */
	char **ips;
};

struct volc {
	char **env;
	char *vpc, *sg, *subnet_id, *instance;
	const char *node;
	struct volc_eni enis[VOLC_ENIS];
	size_t n_enis;
	uint64_t create_wait, attach_wait;
};

static void volc_free(void *p)
{
	struct volc *v = p;

	if (!v)
		return;
	strv_free(v->env);
	free(v->vpc);
	free(v->sg);
	free(v->subnet_id);
	free(v->instance);
	for (size_t i = 0; i < VOLC_ENIS; i++) {
		free(v->enis[i].id);
		strv_free(v->enis[i].ips);
	}
	free(v);
}

static void wait_usec(uint64_t usec)
{
	struct timespec ts = { .tv_sec = usec / 1000000, .tv_nsec = (usec % 1000000) * 1000 };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static int env_wait(const char *name, uint64_t def, uint64_t *ret, char **ret_error)
{
	const char *s = getenv(name);

	if (isempty(s)) {
		*ret = def;
		return 0;
	}
	if (conf_parse_duration(s, ret) < 0)
		return asprintf(ret_error, "invalid %s=\"%s\": expected a duration such as 2s",
				name, s) < 0
			   ? -ENOMEM
			   : -EINVAL;
	return 0;
}

static int push_env(char ***env, const char *name, json_t *o, const char *key)
{
	const char *v = netd_json_string(o, key, NULL);
	_cleanup_(freep) char *s = NULL;

	if (isempty(v))
		return 0;
	if (asprintf(&s, "%s=%s", name, v) < 0)
		return -ENOMEM;
	return strv_push(env, s);
}

/* §1.11: the environment wins; else ~/.volcengine/config.json (missing is fine). */
static int load_credentials(struct volc *v, char **ret_error)
{
	_cleanup_(freep) char *path = NULL, *text = NULL;
	const char *home = getenv("HOME");
	json_error_t jerr;
	json_t *o;
	int r;

	if (!isempty(getenv("VOLCENGINE_ACCESS_KEY_ID")) || isempty(home))
		return 0;
	if (asprintf(&path, "%s/.volcengine/config.json", home) < 0)
		return -ENOMEM;
	r = fs_read_file(path, VOLC_CONFIG_MAX, &text, NULL);
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return asprintf(ret_error, "%s: %s", path, strerror(-r)) < 0 ? -ENOMEM : r;
	o = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
	if (!json_is_object(o)) {
		json_decref(o);
		return asprintf(ret_error, "%s: not a JSON object%s%s", path, o ? "" : ": ",
				o ? "" : jerr.text) < 0
			   ? -ENOMEM
			   : -EINVAL;
	}
	v->env = calloc(1, sizeof(char *));
	r = v->env ? 0 : -ENOMEM;
	if (r >= 0)
		r = push_env(&v->env, "VOLCENGINE_ACCESS_KEY_ID", o, "access_key_id");
	if (r >= 0)
		r = push_env(&v->env, "VOLCENGINE_SECRET_ACCESS_KEY", o, "secret_access_key");
	if (r >= 0)
		r = push_env(&v->env, "VOLCENGINE_REGION", o, "region");
	json_decref(o);
	return r;
}

static int volc_state(struct netd_cloud_ctx *ctx, struct volc **ret, char **ret_error)
{
	struct volc *v;
	int r;

	if (ctx->state) {
		*ret = ctx->state;
		return 0;
	}
	v = calloc(1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	v->node = ctx->pool->node_name;
	r = load_credentials(v, ret_error);
	if (r >= 0)
		r = env_wait("COCOON_NET_VOLC_CREATE_WAIT", VOLC_CREATE_WAIT, &v->create_wait,
			     ret_error);
	if (r >= 0)
		r = env_wait("COCOON_NET_VOLC_ATTACH_WAIT", VOLC_ATTACH_WAIT, &v->attach_wait,
			     ret_error);
	if (r >= 0)
		r = netd_metadata_get(NETD_PLATFORM_VOLC, "/instance-id", &v->instance, ret_error);
	if (r < 0) {
		volc_free(v);
		return r;
	}
	*ret = ctx->state = v;
	return 0;
}

/* ve prints {"ResponseMetadata": …, "Result": {…}}. */
static int ve_json(struct volc *v, char **argv, json_t **ret_result, json_t **ret_root,
		   char **ret_error)
{
	json_t *o = NULL;
	int r;

	if (!argv)
		return -ENOMEM;
	r = netd_cloud_run_json(argv, v->env, &o, ret_error);
	strv_free(argv);
	if (r < 0)
		return r;
	*ret_result = json_object_get(o, "Result");
	*ret_root = o;
	return 0;
}

/* Attached non-primary ENIs and their non-primary IPs. */
static int describe_enis(struct volc *v, char **ret_error)
{
	json_t *root, *res, *sets, *eni;
	size_t i;
	int r;

	r = ve_json(v,
		    strv_new("ve", "vpc", "DescribeNetworkInterfaces", "--InstanceId",
				  v->instance, "--PageSize", "100", NULL),
		    &res, &root, ret_error);
	if (r < 0)
		return r;
	sets = json_object_get(res, "NetworkInterfaceSets");
	json_array_foreach (sets, i, eni) {
		const char *id = netd_json_string(eni, "NetworkInterfaceId", NULL);
		json_t *ips =
		    json_object_get(json_object_get(eni, "PrivateIpSets"), "PrivateIpSet");
		struct volc_eni *e;
		json_t *ip;
		size_t j;

		if (!id || streq_ptr(netd_json_string(eni, "Type", NULL), "primary") ||
		    v->n_enis >= VOLC_ENIS)
			continue;
		e = &v->enis[v->n_enis++];
		e->id = strdup(id);
		e->ips = calloc(1, sizeof(char *));
		if (!e->id || !e->ips)
			r = -ENOMEM;
		json_array_foreach (ips, j, ip) {
			const char *a = netd_json_string(ip, "PrivateIpAddress", NULL);

			if (r >= 0 && a && !json_is_true(json_object_get(ip, "Primary")))
				r = strv_push(&e->ips, a);
		}
	}
	json_decref(root);
	return r;
}

static int apply_create_subnet(const struct netd_change *c, char **ret_error)
{
	struct volc *v = c->ext;
	json_t *root, *res;
	const char *id;
	_cleanup_(strv_freep) char **argv = NULL;
	int r;

	if (strv_copy(c->argv, &argv) < 0)
		return -ENOMEM;
	r = ve_json(v, TAKE_PTR(argv), &res, &root, ret_error);
	if (r < 0)
		return r;
	id = netd_json_string(res, "SubnetId", NULL);
	v->subnet_id = id ? strdup(id) : NULL;
	json_decref(root);
	if (!v->subnet_id)
		return asprintf(ret_error,
				"ve vpc CreateSubnet: no Result.SubnetId in the answer") < 0
			   ? -ENOMEM
			   : -EBADMSG;
	return 0;
}

static int plan_subnet(struct volc *v, const struct netd_pool *pool, struct netd_changes *ch,
		       char **ret_error)
{
	_cleanup_(freep) char *zone = NULL, *name = NULL, *summary = NULL;
	_cleanup_(strv_freep) char **argv = NULL;
	json_t *root, *res, *subnets, *s;
	struct netd_change *c;
	size_t i;
	int r;

	r = ve_json(v,
		    strv_new("ve", "vpc", "DescribeSubnets", "--VpcId", v->vpc, "--PageSize",
				  "100", NULL),
		    &res, &root, ret_error);
	if (r < 0)
		return r;
	subnets = json_object_get(res, "Subnets");
	json_array_foreach (subnets, i, s)
		if (streq_ptr(netd_json_string(s, "CidrBlock", NULL), pool->subnet) &&
		    netd_json_string(s, "SubnetId", NULL) && !v->subnet_id)
			v->subnet_id = strdup(netd_json_string(s, "SubnetId", NULL));
	json_decref(root);
	if (v->subnet_id)
		return 0; /* reuse it */
	r = netd_metadata_get(NETD_PLATFORM_VOLC, "/placement/availability-zone", &zone, ret_error);
	if (r < 0)
		return r;
	if (asprintf(&name, "%s-vms", pool->node_name) < 0 ||
	    asprintf(&summary, "create subnet %s %s in %s", name, pool->subnet, zone) < 0)
		return -ENOMEM;
	argv = strv_new("ve", "vpc", "CreateSubnet", "--VpcId", v->vpc, "--CidrBlock",
			     pool->subnet, "--ZoneId", zone, "--SubnetName", name, NULL);
	if (!argv || !(c = netd_plan_command(ch, NETD_CHANGE_CLOUD, argv, summary)))
		return -ENOMEM;
	c->apply = apply_create_subnet;
	c->ext = v;
	return 0;
}

static int run_ve(struct volc *v, char **argv, char **ret_out, char **ret_error)
{
	int r;

	if (!argv)
		return -ENOMEM;
	r = netd_run(argv, v->env, ret_out, ret_error);
	strv_free(argv);
	return r;
}

/* Create slot c->prefix's ENI and attach it; a failed attach deletes it and moves on. */
static int apply_new_eni(const struct netd_change *c, char **ret_error)
{
	struct volc *v = c->ext;
	struct volc_eni *e = &v->enis[c->prefix];
	_cleanup_(freep) char *name = NULL, *why = NULL;
	json_t *root, *res;
	const char *id;
	int r;

	if (asprintf(&name, "%s-eni-%u", v->node, c->prefix + 1) < 0)
		return -ENOMEM;
	r = ve_json(v,
		    strv_new("ve", "vpc", "CreateNetworkInterface", "--SubnetId", v->subnet_id,
				  "--SecurityGroupIds.1", v->sg, "--NetworkInterfaceName", name,
				  NULL),
		    &res, &root, ret_error);
	if (r < 0)
		return r;
	id = netd_json_string(res, "NetworkInterfaceId", NULL);
	e->id = id ? strdup(id) : NULL;
	json_decref(root);
	if (!e->id)
		return asprintf(ret_error, "ve vpc CreateNetworkInterface: no "
					   "Result.NetworkInterfaceId in the answer") < 0
			   ? -ENOMEM
			   : -EBADMSG;
	wait_usec(v->create_wait);
	r = run_ve(v,
		   strv_new("ve", "vpc", "AttachNetworkInterface", "--NetworkInterfaceId",
				 e->id, "--InstanceId", v->instance, NULL),
		   NULL, &why);
	if (r < 0) {
		log_warning("%s, deleting ENI %s and continuing with fewer", why, e->id);
		free(why);
		why = NULL;
		if (run_ve(v,
			   strv_new("ve", "vpc", "DeleteNetworkInterface",
					 "--NetworkInterfaceId", e->id, NULL),
			   NULL, &why) < 0)
			log_warning("%s, leaving it", why);
		free(e->id);
		e->id = NULL;
		return 0;
	}
	wait_usec(v->attach_wait);
	return 0;
}

/* Assign c->addr IPs to slot c->prefix's ENI; a failure only warns (§1.11 step 6). */
static int apply_assign(const struct netd_change *c, char **ret_error)
{
	struct volc *v = c->ext;
	struct volc_eni *e = &v->enis[c->prefix];
	_cleanup_(freep) char *why = NULL;
	char count[16];
	json_t *root, *res, *set, *ip;
	size_t i;
	int r;

	if (!e->id)
		return 0; /* its creation failed and was reported */
	snprintf(count, sizeof count, "%u", (unsigned)c->addr);
	r = ve_json(v,
		    strv_new("ve", "vpc", "AssignPrivateIpAddresses", "--NetworkInterfaceId",
				  e->id, "--SecondaryPrivateIpAddressCount", count, NULL),
		    &res, &root, &why);
	if (r == -ENOMEM)
		return r;
	if (r < 0) {
		log_warning("%s, continuing", why);
		return 0;
	}
	set = json_object_get(res, "PrivateIpSet");
	json_array_foreach (set, i, ip)
		if (json_is_string(ip) && r >= 0)
			r = strv_push(&e->ips, json_string_value(ip));
	json_decref(root);
	return r;
}

static int plan_enis(struct volc *v, struct netd_changes *ch)
{
	size_t existing = v->n_enis;
	struct netd_change *c;

	for (size_t i = existing; i < VOLC_ENIS; i++) {
		c = netd_changes_add(ch, NETD_CHANGE_CLOUD, apply_new_eni,
				     "create ENI %s-eni-%zu in %s and attach it to %s", v->node,
				     i + 1, v->subnet_id ? v->subnet_id : "the new subnet",
				     v->instance);
		if (!c ||
		    asprintf(&c->detail,
			     "ve vpc CreateNetworkInterface --SubnetId %s --SecurityGroupIds.1 %s "
			     "--NetworkInterfaceName %s-eni-%zu\n"
			     "ve vpc AttachNetworkInterface --NetworkInterfaceId <new ENI> "
			     "--InstanceId %s",
			     v->subnet_id ? v->subnet_id : "<new subnet>", v->sg, v->node, i + 1,
			     v->instance) < 0)
			return -ENOMEM;
		c->ext = v;
		c->prefix = (unsigned)i;
		v->enis[i].ips = calloc(1, sizeof(char *));
		if (!v->enis[i].ips)
			return -ENOMEM;
	}
	v->n_enis = VOLC_ENIS;
	for (size_t i = 0; i < VOLC_ENIS; i++) {
		size_t have = strv_length(v->enis[i].ips);

		if (have >= VOLC_IPS_PER_ENI)
			continue;
		c = netd_changes_add(ch, NETD_CHANGE_CLOUD, apply_assign,
				     "assign %zu secondary IPs to ENI %s", VOLC_IPS_PER_ENI - have,
				     i < existing ? v->enis[i].id : "(new)");
		if (!c)
			return -ENOMEM;
		if (i >= existing &&
		    asprintf(&c->detail, "the ENI %s-eni-%zu created above", v->node, i + 1) < 0)
			return -ENOMEM;
		c->ext = v;
		c->prefix = (unsigned)i;
		c->addr = (uint32_t)(VOLC_IPS_PER_ENI - have);
	}
	return 0;
}

/* §1.11 step 7: every ENI's NIC up; a down NIC would leave dead IPs in the pool. */
static int plan_nics_up(struct netd_changes *ch)
{
	for (int i = 1; i <= VOLC_ENIS; i++) {
		struct netd_link_state st = {};
		struct netd_change *c;
		char name[16];
		int r;

		snprintf(name, sizeof name, "eth%d", i);
		r = netd_link_get(name, &st);
		if (r < 0)
			return r;
		if (st.up)
			continue;
		c = netd_changes_add(ch, NETD_CHANGE_LINK, netd_link_apply_up, "set %s up", name);
		if (!c || !(c->target = strdup(name)))
			return -ENOMEM;
	}
	return 0;
}

static int volc_plan_provision(struct netd_cloud_ctx *ctx, struct netd_changes *ch,
			       char **ret_error)
{
	json_t *root, *res;
	const char *sg;
	struct volc *v;
	int r;

	r = volc_state(ctx, &v, ret_error);
	if (r >= 0)
		r = netd_metadata_get(NETD_PLATFORM_VOLC, "/vpc-id", &v->vpc, ret_error);
	if (r >= 0)
		r = ve_json(v,
			    strv_new("ve", "vpc", "DescribeSecurityGroups", "--VpcId", v->vpc,
					  "--PageSize", "1", NULL),
			    &res, &root, ret_error);
	if (r < 0)
		return r;
	sg = netd_json_string(json_array_get(json_object_get(res, "SecurityGroups"), 0),
			      "SecurityGroupId", NULL);
	v->sg = sg ? strdup(sg) : NULL;
	json_decref(root);
	if (!v->sg)
		return asprintf(ret_error, "VPC %s has no security group", v->vpc) < 0 ? -ENOMEM
										       : -ENOENT;
	r = plan_subnet(v, ctx->pool, ch, ret_error);
	if (r >= 0)
		r = describe_enis(v, ret_error);
	if (r >= 0)
		r = plan_enis(v, ch);
	if (r >= 0)
		r = plan_nics_up(ch);
	return r;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

static int volc_finish_provision(struct netd_cloud_ctx *ctx, struct netd_pool *pool,
				 char **ret_error)
{
	struct volc *v = ctx->state;
	size_t n = 0, total = 0;
	uint32_t *ips;

	for (size_t i = 0; i < v->n_enis; i++)
		total += strv_length(v->enis[i].ips);
	if (total == 0)
		return asprintf(ret_error, "no secondary IPs were assigned to the ENIs") < 0
			   ? -ENOMEM
			   : -ENOSPC;
	ips = calloc(total, sizeof(uint32_t));
	if (!ips)
		return -ENOMEM;
	for (size_t i = 0; i < v->n_enis; i++)
		for (size_t j = 0; v->enis[i].ips && v->enis[i].ips[j]; j++)
			if (netd_ipv4_parse(v->enis[i].ips[j], &ips[n]) >= 0)
				n++;
	qsort(ips, n, sizeof(uint32_t), cmp_u32);
	free(pool->ips);
	pool->ips = ips;
	pool->n_ips = n;
	strv_free(pool->secondary_nics);
	pool->secondary_nics =
	    strv_new("eth1", "eth2", "eth3", "eth4", "eth5", "eth6", "eth7", NULL);
	return pool->secondary_nics ? 0 : -ENOMEM;
}

/* Detach, wait, delete; failures are logged and never stop teardown (§1.11). */
static int apply_remove_eni(const struct netd_change *c, char **ret_error)
{
	struct volc *v = c->ext;
	_cleanup_(freep) char *why = NULL;

	if (run_ve(v,
		   strv_new("ve", "vpc", "DetachNetworkInterface", "--NetworkInterfaceId",
				 c->target, "--InstanceId", v->instance, NULL),
		   NULL, &why) < 0) {
		log_warning("%s, not deleting ENI %s", why, c->target);
		return 0;
	}
	wait_usec(v->attach_wait);
	if (run_ve(v,
		   strv_new("ve", "vpc", "DeleteNetworkInterface", "--NetworkInterfaceId",
				 c->target, NULL),
		   NULL, &why) < 0)
		log_warning("%s, continuing", why);
	return 0;
}

static int volc_plan_teardown(struct netd_cloud_ctx *ctx, struct netd_changes *ch, char **ret_error)
{
	struct volc *v;
	int r;

	/* The persisted ENI list is ignored: what is attached now is what goes. */
	r = volc_state(ctx, &v, ret_error);
	if (r >= 0)
		r = describe_enis(v, ret_error);
	for (size_t i = 0; r >= 0 && i < v->n_enis; i++) {
		struct netd_change *c = netd_changes_add(ch, NETD_CHANGE_CLOUD, apply_remove_eni,
							 "detach and delete ENI %s from %s",
							 v->enis[i].id, v->instance);

		if (!c || !(c->target = strdup(v->enis[i].id)) ||
		    asprintf(
			&c->detail,
			"ve vpc DetachNetworkInterface --NetworkInterfaceId %s --InstanceId %s\n"
			"ve vpc DeleteNetworkInterface --NetworkInterfaceId %s",
			v->enis[i].id, v->instance, v->enis[i].id) < 0)
			return -ENOMEM;
		c->ext = v;
	}
	return r;
}

static int volc_status(struct netd_cloud_ctx *ctx, json_t **ret, char **ret_error)
{
	json_t *enis, *ips;
	struct volc *v;
	int r;

	r = volc_state(ctx, &v, ret_error);
	if (r >= 0)
		r = describe_enis(v, ret_error);
	if (r < 0)
		return r;
	enis = json_array();
	ips = json_array();
	for (size_t i = 0; enis && ips && i < v->n_enis; i++) {
		json_array_append_new(enis, json_string(v->enis[i].id));
		for (size_t j = 0; v->enis[i].ips[j]; j++)
			json_array_append_new(ips, json_string(v->enis[i].ips[j]));
	}
	*ret = json_pack("{s:o, s:o, s:s}", "enis", enis, "ips", ips, "subnetID", "");
	return *ret ? 0 : -ENOMEM;
}

const struct netd_cloud netd_cloud_volc = {
	.platform = NETD_PLATFORM_VOLC,
	.plan_provision = volc_plan_provision,
	.finish_provision = volc_finish_provision,
	.plan_teardown = volc_plan_teardown,
	.status = volc_status,
	.state_free = volc_free,
};
