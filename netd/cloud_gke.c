/* GKE provisioning through `gcloud` (net-epoch-runtime.md §1.10): the secondary range
 * "cocoon-pods" on the node's subnetwork and an alias IP range on nic0, then the guest agent
 * fix (its `local` route for the alias range would swallow the VMs' traffic). Credentials
 * are gcloud's own (ADC or the instance service account).
 *
 * Planning reads the metadata server and runs the two `describe` calls; the writes
 * (`subnets update`, `network-interfaces update`) become cloud items of the change set with
 * their exact command lines, so --dry-run shows them and a converged node plans none. */
#include <stdio.h>
#include <string.h>

#include "cocoon/log.h"
#include "netd.h"

#define GKE_RANGE_NAME "cocoon-pods"
#define GKE_NIC        "nic0"

struct gke {
	char *instance, *zone, *region, *project, *subnetwork;
};

static void gke_free(void *p)
{
	struct gke *g = p;

	if (!g)
		return;
	free(g->instance);
	free(g->zone);
	free(g->region);
	free(g->project);
	free(g->subnetwork);
	free(g);
}

static int last_segment(char *s, char **ret)
{
	const char *slash = strrchr(s, '/');

	*ret = strdup(slash ? slash + 1 : s);
	return *ret ? 0 : -ENOMEM;
}

/* Instance, zone, region, project and subnetwork from the metadata server. */
static int gke_metadata(struct netd_cloud_ctx *ctx, struct gke **ret, char **ret_error)
{
	_cleanup_(freep) char *zone = NULL, *subnet = NULL;
	struct gke *g;
	char *dash;
	int r;

	if (ctx->state) {
		*ret = ctx->state;
		return 0;
	}
	g = calloc(1, sizeof(*g));
	if (!g)
		return -ENOMEM;
	if ((r = netd_metadata_get(NETD_PLATFORM_GKE, "/instance/name", &g->instance, ret_error)) <
		0 ||
	    (r = netd_metadata_get(NETD_PLATFORM_GKE, "/instance/zone", &zone, ret_error)) < 0 ||
	    (r = netd_metadata_get(NETD_PLATFORM_GKE, "/project/project-id", &g->project,
				   ret_error)) < 0 ||
	    (r = netd_metadata_get(NETD_PLATFORM_GKE, "/instance/network-interfaces/0/subnetwork",
				   &subnet, ret_error)) < 0)
		goto fail;
	r = -ENOMEM;
	if (last_segment(zone, &g->zone) < 0 || last_segment(subnet, &g->subnetwork) < 0)
		goto fail;
	/* "us-central1-a" → "us-central1". */
	dash = strrchr(g->zone, '-');
	if (!dash) {
		r = asprintf(ret_error, "cannot derive the region from zone %s", g->zone) < 0
			? -ENOMEM
			: -EINVAL;
		goto fail;
	}
	g->region = strndup(g->zone, (size_t)(dash - g->zone));
	if (!g->region)
		goto fail;
	*ret = ctx->state = g;
	return 0;
fail:
	gke_free(g);
	return r;
}

static int plan_secondary_range(struct gke *g, const struct netd_cidr *subnet,
				struct netd_changes *ch, char **ret_error)
{
	_cleanup_(strv_freep) char **argv = NULL;
	_cleanup_(freep) char *add = NULL, *summary = NULL;
	char cidr[NETD_CIDR_STRLEN];
	json_t *o = NULL, *ranges, *e;
	size_t i;
	int r;

	netd_cidr_format(subnet, cidr);
	argv =
	    strv_new("gcloud", "compute", "networks", "subnets", "describe", g->subnetwork,
			  "--project", g->project, "--region", g->region, "--format", "json", NULL);
	if (!argv)
		return -ENOMEM;
	r = netd_cloud_run_json(argv, NULL, &o, ret_error);
	if (r < 0)
		return r;
	ranges = json_object_get(o, "secondaryIpRanges");
	json_array_foreach (ranges, i, e) {
		const char *range = netd_json_string(e, "ipCidrRange", NULL);
		struct netd_cidr have;

		if (!streq_ptr(netd_json_string(e, "rangeName", NULL), GKE_RANGE_NAME))
			continue;
		r = range && netd_cidr_parse(range, &have) >= 0 && netd_cidr_covers(&have, subnet)
			? 0
		    : asprintf(ret_error,
			       "secondary range \"%s\" on subnet %s is %s, which does not cover "
			       "--subnet %s; widen the range or pick a --subnet inside it",
			       GKE_RANGE_NAME, g->subnetwork, range ? range : "(none)", cidr) < 0
			? -ENOMEM
			: -EINVAL;
		json_decref(o);
		return r; /* reuse it */
	}
	json_decref(o);
	strv_free(TAKE_PTR(argv));
	if (asprintf(&add, "--add-secondary-ranges=%s=%s", GKE_RANGE_NAME, cidr) < 0 ||
	    asprintf(&summary, "add secondary range %s=%s to subnet %s", GKE_RANGE_NAME, cidr,
		     g->subnetwork) < 0)
		return -ENOMEM;
	argv = strv_new("gcloud", "compute", "networks", "subnets", "update", g->subnetwork,
			     "--project", g->project, "--region", g->region, add, NULL);
	if (!argv || !netd_plan_command(ch, NETD_CHANGE_CLOUD, argv, summary))
		return -ENOMEM;
	return 0;
}

/* The alias entries of nic0, each "range:cidr" or a bare "cidr". */
static int describe_aliases(struct gke *g, char ***ret, char **ret_error)
{
	_cleanup_(strv_freep) char **argv = NULL, **l = calloc(1, sizeof(char *));
	json_t *o = NULL, *nics, *nic, *aliases = NULL, *e;
	size_t i;
	int r;

	argv = strv_new("gcloud", "compute", "instances", "describe", g->instance, "--project",
			     g->project, "--zone", g->zone, "--format", "json", NULL);
	if (!argv || !l)
		return -ENOMEM;
	r = netd_cloud_run_json(argv, NULL, &o, ret_error);
	if (r < 0)
		return r;
	nics = json_object_get(o, "networkInterfaces");
	json_array_foreach (nics, i, nic)
		if (streq_ptr(netd_json_string(nic, "name", NULL), GKE_NIC))
			aliases = json_object_get(nic, "aliasIpRanges");
	json_array_foreach (aliases, i, e) {
		const char *name = netd_json_string(e, "subnetworkRangeName", NULL);
		const char *cidr = netd_json_string(e, "ipCidrRange", NULL);
		_cleanup_(freep) char *entry = NULL;

		if (!cidr)
			continue;
		if (asprintf(&entry, "%s%s%s", name ? name : "", name ? ":" : "", cidr) < 0 ||
		    strv_push(&l, entry) < 0) {
			json_decref(o);
			return -ENOMEM;
		}
	}
	json_decref(o);
	*ret = TAKE_PTR(l);
	return 0;
}

/* `network-interfaces update … --aliases` replaces the whole list. */
static int plan_aliases_update(struct gke *g, char *const *aliases, const char *summary,
			       struct netd_changes *ch)
{
	_cleanup_(strv_freep) char **argv = NULL;
	_cleanup_(freep) char *joined = NULL;

	if (strv_join(aliases, ";", &joined) < 0)
		return -ENOMEM;
	argv = strv_new("gcloud", "compute", "instances", "network-interfaces", "update",
			     g->instance, "--project", g->project, "--zone", g->zone,
			     "--network-interface", GKE_NIC, "--aliases", joined, NULL);
	if (!argv || !netd_plan_command(ch, NETD_CHANGE_CLOUD, argv, summary))
		return -ENOMEM;
	return 0;
}

/* §1.10 step 3: a failure here only warns — the alias is bound and the cron file repairs
 * the route at the next boot. */
static int apply_route_fix(const struct netd_change *c, char **ret_error)
{
	_cleanup_(freep) char *why = NULL;
	int r = netd_link_apply_delete_local_route(c, &why);

	if (r < 0)
		log_warning("cannot delete the guest agent's local route (%s), continuing",
			    why ? why : strerror(-r));
	return 0;
}

static int plan_route_fix(const struct netd_pool *pool, const struct netd_cidr *subnet,
			  bool alias_new, const struct netd_paths *paths, struct netd_changes *ch)
{
	const char *nic =
	    pool->primary_nic ? pool->primary_nic : netd_platform_default_nic(NETD_PLATFORM_GKE);
	_cleanup_(freep) char *cron = NULL;
	char cidr[NETD_CIDR_STRLEN];
	struct netd_change *c;
	bool has = false;
	int r;

	netd_cidr_format(subnet, cidr);
	/* The agent adds the route after the alias is bound: plan its removal then too. */
	if (!alias_new && netd_link_has_local_route(nic, subnet->addr, subnet->prefix, &has) < 0)
		has = false;
	if (alias_new || has) {
		c = netd_changes_add(ch, NETD_CHANGE_ROUTE, apply_route_fix,
				     "delete local %s dev %s table local (GCE guest agent)", cidr,
				     nic);
		if (!c || !(c->target = strdup(nic)))
			return -ENOMEM;
		c->addr = subnet->addr;
		c->prefix = subnet->prefix;
	}
	if (asprintf(&cron,
		     "@reboot root ip route del local %s dev %s table local 2>/dev/null || true\n",
		     cidr, nic) < 0)
		return -ENOMEM;
	r = netd_plan_file(ch, paths->gke_cron_file, cron, strlen(cron), 0644, "cron job", NULL);
	return r;
}

static int gke_plan_provision(struct netd_cloud_ctx *ctx, struct netd_changes *ch, char **ret_error)
{
	_cleanup_(strv_freep) char **aliases = NULL, **keep = NULL;
	_cleanup_(freep) char *mine = NULL, *summary = NULL;
	struct netd_cidr subnet;
	struct gke *g;
	int r;

	if (netd_cidr_parse(ctx->pool->subnet, &subnet) < 0)
		return -EINVAL;
	r = gke_metadata(ctx, &g, ret_error);
	if (r >= 0)
		r = plan_secondary_range(g, &subnet, ch, ret_error);
	if (r >= 0)
		r = describe_aliases(g, &aliases, ret_error);
	if (r < 0)
		return r;
	if (asprintf(&mine, "%s:%s", GKE_RANGE_NAME, ctx->pool->subnet) < 0)
		return -ENOMEM;
	if (!strv_contains(aliases, mine)) {
		/* Read-modify-write: stale cocoon-pods entries go, the others stay. */
		keep = calloc(1, sizeof(char *));
		if (!keep)
			return -ENOMEM;
		for (size_t i = 0; aliases[i]; i++)
			if (strncmp(aliases[i], GKE_RANGE_NAME ":", strlen(GKE_RANGE_NAME ":")) !=
				0 &&
			    strv_push(&keep, aliases[i]) < 0)
				return -ENOMEM;
		if (strv_push(&keep, mine) < 0 ||
		    asprintf(&summary, "alias %s on %s of %s", mine, GKE_NIC, g->instance) < 0)
			return -ENOMEM;
		r = plan_aliases_update(g, keep, summary, ch);
		if (r < 0)
			return r;
	}
	return plan_route_fix(ctx->pool, &subnet, !strv_contains(aliases, mine), ctx->paths,
			      ch);
}

static int gke_finish_provision(struct netd_cloud_ctx *ctx, struct netd_pool *pool,
				char **ret_error)
{
	struct netd_cidr subnet;
	uint32_t gw;
	int r;

	if (netd_cidr_parse(pool->subnet, &subnet) < 0 || netd_ipv4_parse(pool->gateway, &gw) < 0)
		return -EINVAL;
	free(pool->ips);
	pool->ips = NULL;
	r = netd_pool_range(&subnet, gw, ctx->pool_size, &pool->ips, &pool->n_ips, ret_error);
	if (r < 0)
		return r;
	free(pool->alias_range_name);
	pool->alias_range_name = strdup(GKE_RANGE_NAME);
	return pool->alias_range_name ? 0 : -ENOMEM;
}

static int gke_plan_teardown(struct netd_cloud_ctx *ctx, struct netd_changes *ch, char **ret_error)
{
	const char *name = ctx->pool->alias_range_name ?: GKE_RANGE_NAME;
	_cleanup_(strv_freep) char **aliases = NULL, **keep = calloc(1, sizeof(char *));
	_cleanup_(freep) char *mine = NULL, *summary = NULL;
	struct gke *g;
	int r;

	if (!keep || asprintf(&mine, "%s:%s", name, ctx->pool->subnet) < 0)
		return -ENOMEM;
	r = gke_metadata(ctx, &g, ret_error);
	if (r >= 0)
		r = describe_aliases(g, &aliases, ret_error);
	if (r < 0)
		return r;
	if (!strv_contains(aliases, mine))
		log_warning("alias %s is not on %s of %s, nothing to remove", mine, GKE_NIC,
			    g->instance);
	else {
		for (size_t i = 0; aliases[i]; i++)
			if (!streq(aliases[i], mine) && strv_push(&keep, aliases[i]) < 0)
				return -ENOMEM;
		if (asprintf(&summary, "remove alias %s from %s of %s", mine, GKE_NIC,
			     g->instance) < 0)
			return -ENOMEM;
		r = plan_aliases_update(g, keep, summary, ch);
		if (r < 0)
			return r;
	}
	/* The shared secondary range is never deleted: other nodes may use it. */
	return netd_plan_remove(ch, ctx->paths->gke_cron_file, "cron job");
}

static int gke_status(struct netd_cloud_ctx *ctx, json_t **ret, char **ret_error)
{
	_cleanup_(strv_freep) char **aliases = NULL;
	struct gke *g;
	json_t *a, *o;
	int r;

	r = gke_metadata(ctx, &g, ret_error);
	if (r >= 0)
		r = describe_aliases(g, &aliases, ret_error);
	if (r < 0)
		return r;
	a = json_array();
	for (size_t i = 0; a && aliases[i]; i++)
		json_array_append_new(a, json_string(aliases[i]));
	o = json_pack("{s:o}", "aliases", a);
	if (!o)
		return -ENOMEM;
	*ret = o;
	return 0;
}

const struct netd_cloud netd_cloud_gke = {
	.platform = NETD_PLATFORM_GKE,
	.plan_provision = gke_plan_provision,
	.finish_provision = gke_finish_provision,
	.plan_teardown = gke_plan_teardown,
	.status = gke_status,
	.state_free = gke_free,
};
