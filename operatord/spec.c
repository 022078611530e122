/* A CocoonSet decoded and defaulted: cocoonset.cocoonstack.io/v1 (operator-webhook.md §1.1)
 * or the legacy cocoon.cis/v1alpha1 schema (§1.3), mapped onto one struct so the rest of the
 * engine never asks which one it has. Names and ExtractAgentSlot follow §1.4.
 *
 * The apiserver normally applies the CRD defaults, but the CRD installed may be older than
 * this operator and legacy objects have none, so every default is applied again here.
 * Enumerated values are left to the CRD and the webhook; JSON types are checked, because a
 * string where an integer belongs would otherwise be read as zero and silently scale a set
 * down. Like Go's decoder, null reads as absent and unknown members are ignored.
 *
 * Quantities (storage, resources) are stored in their canonical form, the form the
 * apiserver writes back, so the pods we build compare equal to the pods we later read. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cocoon/errmsg.h"
#include "cocoon/meta.h"
#include "operatord.h"

#define PATH_MAX_LEN 48 /* "spec.toolboxes[18446744073709551615]." fits */

/* Null is absent, as for Go's encoding/json. */
static const json_t *member(const json_t *o, const char *key)
{
	const json_t *v = json_object_get(o, key);

	return json_is_null(v) ? NULL : v;
}

/* path is the parent's path with its trailing dot ("spec.agent."). "" reads as unset. */
static int read_string(const json_t *o, const char *path, const char *key, const char **ret,
		       char **ret_error)
{
	const json_t *v = member(o, key);

	if (v && !json_is_string(v))
		return errmsg_set(ret_error, EINVAL, "%s%s: expected a string", path, key);
	*ret = v && *json_string_value(v) ? json_string_value(v) : NULL;
	return 0;
}

static int read_bool(const json_t *o, const char *path, const char *key, bool *ret,
		     char **ret_error)
{
	const json_t *v = member(o, key);

	if (v && !json_is_boolean(v))
		return errmsg_set(ret_error, EINVAL, "%s%s: expected a boolean", path, key);
	*ret = json_is_true(v);
	return 0;
}

/* expect completes "expected …" for a wrong type or a value below min. */
static int read_int(const json_t *o, const char *path, const char *key, int64_t min, int64_t max,
		    const char *expect, int64_t *ret, char **ret_error)
{
	const json_t *v = member(o, key);
	json_int_t i;

	if (!v) {
		*ret = 0;
		return 0;
	}
	if (!json_is_integer(v) || json_integer_value(v) < min)
		return errmsg_set(ret_error, EINVAL, "%s%s: expected %s", path, key, expect);
	i = json_integer_value(v);
	if (i > max)
		return errmsg_set(ret_error, EINVAL, "%s%s: %lld is out of range (at most %lld)",
				  path, key, (long long)i, (long long)max);
	*ret = i;
	return 0;
}

/* A JSON number as the text it most likely was: Kubernetes' int-or-string quantities accept
 * bare numbers, and jansson kept only the double. The shortest text that reads back as the
 * same double is what the author wrote in every ordinary case. */
static void real_to_text(double d, char *buf, size_t n)
{
	for (int prec = 1; prec <= 17; prec++) {
		snprintf(buf, n, "%.*g", prec, d);
		if (strtod(buf, NULL) == d)
			return;
	}
}

/* An int-or-string quantity (a resource.Quantity in the CRD) in canonical form. */
static int read_quantity(const json_t *v, const char *path, const char *key, char *buf, size_t n,
			 struct quantity *ret, char **ret_error)
{
	char number[32];
	const char *text = number;
	struct quantity q;
	int r;

	if (json_is_string(v))
		text = json_string_value(v);
	else if (json_is_integer(v))
		snprintf(number, sizeof(number), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
	else if (json_is_real(v))
		real_to_text(json_real_value(v), number, sizeof(number));
	else
		return errmsg_set(ret_error, EINVAL, "%s%s: expected a quantity", path, key);
	r = quantity_parse(text, &q);
	if (r == -ENOMEM)
		return r;
	if (r == -ERANGE)
		return errmsg_set(ret_error, EINVAL, "%s%s: quantity \"%s\" is out of range", path,
				  key, text);
	if (r < 0)
		return errmsg_set(ret_error, EINVAL, "%s%s: expected a quantity, got \"%s\"", path,
				  key, text);
	r = quantity_format(&q, buf, n);
	if (r < 0)
		return r;
	*ret = q;
	return 0;
}

/* storage: "" when unset or zero (§2.4: ephemeral-storage only when non-zero). */
static int read_storage(const json_t *o, const char *path, char storage[QUANTITY_STRING_MAX],
			char **ret_error)
{
	const json_t *v = member(o, "storage");
	struct quantity q;
	int r;

	storage[0] = '\0';
	if (!v || (json_is_string(v) && !*json_string_value(v)))
		return 0;
	r = read_quantity(v, path, "storage", storage, QUANTITY_STRING_MAX, &q, ret_error);
	if (r < 0)
		return r;
	/* A negative size would be refused by the apiserver on every pod create. */
	if (q.nano < 0)
		return errmsg_set(ret_error, EINVAL,
				  "%sstorage: expected a quantity >= 0, got \"%s\"", path, storage);
	if (q.nano == 0)
		storage[0] = '\0';
	return 0;
}

/* Keeps what the cs synthesised alive as long as the cs; returns it borrowed. */
static const json_t *own(struct cs *cs, json_t *take)
{
	if (!take || json_array_append_new(cs->owned, take) < 0)
		return NULL;
	return take;
}

/* v1 ResourceRequirements: a copy with every limit and request canonicalised. */
static int read_resources(struct cs *cs, const json_t *o, const char *path, const json_t **ret,
			  char **ret_error)
{
	static const char *const maps[] = { "limits", "requests" };
	const json_t *v = member(o, "resources");
	json_auto_t *copy = NULL;
	char sub[PATH_MAX_LEN + 32], buf[QUANTITY_STRING_MAX];
	struct quantity q;
	const char *name;
	const json_t *m, *value;
	int r;

	*ret = NULL;
	if (!v)
		return 0;
	if (!json_is_object(v))
		return errmsg_set(ret_error, EINVAL, "%sresources: expected an object", path);
	copy = json_deep_copy(v);
	if (!copy)
		return -ENOMEM;
	for (size_t i = 0; i < ELEMENTSOF(maps); i++) {
		m = member(v, maps[i]);
		if (!m) {
			json_object_del(copy, maps[i]);
			continue;
		}
		if (!json_is_object(m))
			return errmsg_set(ret_error, EINVAL, "%sresources.%s: expected an object",
					  path, maps[i]);
		snprintf(sub, sizeof(sub), "%sresources.%s.", path, maps[i]);
		json_object_foreach ((json_t *)m, name, value) {
			r = read_quantity(value, sub, name, buf, sizeof(buf), &q, ret_error);
			if (r < 0)
				return r;
			if (json_object_set_new(json_object_get(copy, maps[i]), name,
						json_string(buf)) < 0)
				return -ENOMEM;
		}
	}
	*ret = own(cs, TAKE_PTR(copy));
	return *ret ? 0 : -ENOMEM;
}

/* Legacy resources{cpu,memory}: plain quantities that G1 put into limits (§2.17). */
static int read_legacy_resources(struct cs *cs, const json_t *o, const char *path,
				 const json_t **ret, char **ret_error)
{
	static const char *const keys[] = { "cpu", "memory" };
	const json_t *v = member(o, "resources"), *q_json;
	json_auto_t *limits = NULL;
	char sub[PATH_MAX_LEN + 16], buf[QUANTITY_STRING_MAX];
	struct quantity q;
	int r;

	*ret = NULL;
	if (!v)
		return 0;
	if (!json_is_object(v))
		return errmsg_set(ret_error, EINVAL, "%sresources: expected an object", path);
	limits = json_object();
	if (!limits)
		return -ENOMEM;
	snprintf(sub, sizeof(sub), "%sresources.", path);
	for (size_t i = 0; i < ELEMENTSOF(keys); i++) {
		q_json = member(v, keys[i]);
		if (!q_json || (json_is_string(q_json) && !*json_string_value(q_json)))
			continue;
		r = read_quantity(q_json, sub, keys[i], buf, sizeof(buf), &q, ret_error);
		if (r < 0)
			return r;
		if (json_object_set_new(limits, keys[i], json_string(buf)) < 0)
			return -ENOMEM;
	}
	if (json_object_size(limits) == 0)
		return 0;
	*ret = own(cs, json_pack("{s:o}", "limits", TAKE_PTR(limits)));
	return *ret ? 0 : -ENOMEM;
}

/* VMOptions (§1.1), or the subset the legacy schema has (§1.3). */
static int read_vm(struct cs *cs, const json_t *o, const char *path, struct cs_vm *vm,
		   char **ret_error)
{
	int64_t port = 0;
	int r;

	r = read_string(o, path, "os", &vm->os, ret_error);
	if (r >= 0)
		r = read_string(o, path, "network", &vm->network, ret_error);
	if (r >= 0)
		r = read_storage(o, path, vm->storage, ret_error);
	if (r < 0)
		return r;
	if (cs->api == CS_API_LEGACY) {
		r = read_legacy_resources(cs, o, path, &vm->resources, ret_error);
	} else {
		r = read_string(o, path, "backend", &vm->backend, ret_error);
		if (r >= 0)
			r = read_string(o, path, "connType", &vm->conn_type, ret_error);
		if (r >= 0)
			r = read_bool(o, path, "forcePull", &vm->force_pull, ret_error);
		if (r >= 0)
			r = read_bool(o, path, "noDirectIO", &vm->no_direct_io, ret_error);
		if (r >= 0)
			r = read_int(o, path, "probePort", 0, 65535, "an integer 0..65535", &port,
				     ret_error);
		if (r >= 0)
			r = read_resources(cs, o, path, &vm->resources, ret_error);
	}
	if (r < 0)
		return r;
	vm->probe_port = (int)port;
	vm->os = vm->os ?: "linux";
	vm->backend = vm->backend ?: "cloud-hypervisor";
	return 0;
}

static int read_toolbox(struct cs *cs, const json_t *o, size_t i, struct cs_toolbox *tb,
			char **ret_error)
{
	char path[PATH_MAX_LEN];
	int64_t vnc = 0;
	int r;

	snprintf(path, sizeof(path), "spec.toolboxes[%zu].", i);
	if (!json_is_object(o))
		return errmsg_set(ret_error, EINVAL, "spec.toolboxes[%zu]: expected an object", i);
	r = read_string(o, path, "name", &tb->name, ret_error);
	if (r < 0)
		return r;
	/* Required by both schemas; pod and VM names are made from it. */
	if (!tb->name)
		return errmsg_set(ret_error, EINVAL, "%sname: expected a non-empty string", path);
	r = read_string(o, path, "image", &tb->image, ret_error);
	if (r >= 0)
		r = read_string(o, path, "mode", &tb->mode, ret_error);
	if (r >= 0)
		r = read_string(o, path, "staticIP", &tb->static_ip, ret_error);
	if (r >= 0)
		r = read_string(o, path, "staticVMID", &tb->static_vmid, ret_error);
	if (r >= 0)
		r = read_int(o, path, "vncPort", 0, 65535, "an integer 0..65535", &vnc, ret_error);
	if (r >= 0)
		r = read_vm(cs, o, path, &tb->vm, ret_error);
	if (r < 0)
		return r;
	tb->vnc_port = (int)vnc;
	tb->mode = tb->mode ?: "run";
	return 0;
}

static int read_agent(struct cs *cs, const json_t *spec, char **ret_error)
{
	static const char path[] = "spec.agent.";
	const json_t *a = member(spec, "agent");
	int64_t replicas = 0;
	int r;

	if (a && !json_is_object(a))
		return errmsg_set(ret_error, EINVAL, "spec.agent: expected an object");
	r = read_int(a, path, "replicas", 0, INT32_MAX, "an integer >= 0", &replicas, ret_error);
	if (r >= 0)
		r = read_string(a, path, "image", &cs->agent.image, ret_error);
	if (r >= 0)
		r = read_string(a, path, "mode", &cs->agent.mode, ret_error);
	if (r >= 0)
		r = read_string(a, path, "serviceAccountName", &cs->agent.service_account,
				ret_error);
	if (r >= 0)
		r = read_vm(cs, a, path, &cs->agent.vm, ret_error);
	if (r < 0)
		return r;
	cs->agent.env_from = member(a, "envFrom");
	if (cs->agent.env_from && !json_is_array(cs->agent.env_from))
		return errmsg_set(ret_error, EINVAL, "spec.agent.envFrom: expected an array");
	cs->agent.replicas = (int)replicas;
	cs->agent.mode = cs->agent.mode ?: "clone";
	return 0;
}

static int read_toolboxes(struct cs *cs, const json_t *spec, char **ret_error)
{
	const json_t *list = member(spec, "toolboxes"), *o;
	size_t i;
	int r;

	if (!list)
		return 0;
	if (!json_is_array(list))
		return errmsg_set(ret_error, EINVAL, "spec.toolboxes: expected an array");
	if (json_array_size(list) == 0)
		return 0;
	cs->toolboxes = calloc(json_array_size(list), sizeof(*cs->toolboxes));
	if (!cs->toolboxes)
		return -ENOMEM;
	json_array_foreach (list, i, o) {
		r = read_toolbox(cs, o, i, &cs->toolboxes[i], ret_error);
		if (r < 0)
			return r;
		cs->n_toolboxes = i + 1;
	}
	return 0;
}

static int read_spec(struct cs *cs, char **ret_error)
{
	static const char path[] = "spec.";
	const json_t *spec = member(cs->obj, "spec");
	int r;

	if (spec && !json_is_object(spec))
		return errmsg_set(ret_error, EINVAL, "spec: expected an object");
	r = read_bool(spec, path, "suspend", &cs->suspend, ret_error);
	if (r >= 0)
		r = read_string(spec, path, "snapshotPolicy", &cs->snapshot_policy, ret_error);
	if (r >= 0)
		r = read_string(spec, path, "nodeName", &cs->node_name, ret_error);
	/* hibernatePolicy, nodePool and the class are v1 only: legacy gets the defaults. */
	if (r >= 0 && cs->api == CS_API_V1)
		r = read_string(spec, path, "hibernatePolicy", &cs->hibernate_policy, ret_error);
	if (r >= 0 && cs->api == CS_API_V1)
		r = read_string(spec, path, "nodePool", &cs->node_pool, ret_error);
	if (r >= 0 && cs->api == CS_API_V1)
		r = read_string(spec, path, "snapshotCompatibilityClass", &cs->snapshot_class,
				ret_error);
	if (r >= 0)
		r = read_agent(cs, spec, ret_error);
	if (r >= 0)
		r = read_toolboxes(cs, spec, ret_error);
	if (r < 0)
		return r;
	cs->snapshot_policy = cs->snapshot_policy ?: "always";
	cs->hibernate_policy = cs->hibernate_policy ?: "retain";
	cs->node_pool = cs->node_pool ?: META_DEFAULT_POOL;
	if (cs->api == CS_API_LEGACY)
		cs->node_name = cs->node_name ?: OPERATORD_LEGACY_NODE;
	return 0;
}

static int read_finalizers(struct cs *cs, const json_t *md, char **ret_error)
{
	const json_t *list = member(md, "finalizers"), *f;
	size_t i;

	if (list && !json_is_array(list))
		return errmsg_set(ret_error, EINVAL, "metadata.finalizers: expected an array");
	json_array_foreach (list, i, f) {
		if (!json_is_string(f))
			return errmsg_set(ret_error, EINVAL,
					  "metadata.finalizers[%zu]: expected a string", i);
		if (streq(json_string_value(f), OPERATORD_FINALIZER))
			cs->has_finalizer = true;
	}
	return 0;
}

static int read_metadata(struct cs *cs, char **ret_error)
{
	static const char path[] = "metadata.";
	const json_t *md = member(cs->obj, "metadata"), *v;
	const char *deletion = NULL;
	int r;

	if (md && !json_is_object(md))
		return errmsg_set(ret_error, EINVAL, "metadata: expected an object");
	r = read_string(md, path, "namespace", &cs->ns, ret_error);
	if (r >= 0)
		r = read_string(md, path, "name", &cs->name, ret_error);
	if (r >= 0)
		r = read_string(md, path, "uid", &cs->uid, ret_error);
	if (r >= 0)
		r = read_string(md, path, "resourceVersion", &cs->resource_version, ret_error);
	if (r >= 0)
		r = read_int(md, path, "generation", INT64_MIN, INT64_MAX, "an integer",
			     &cs->generation, ret_error);
	if (r >= 0)
		r = read_string(md, path, "deletionTimestamp", &deletion, ret_error);
	if (r >= 0)
		r = read_finalizers(cs, md, ret_error);
	if (r < 0)
		return r;
	v = member(md, "annotations");
	if (v && !json_is_object(v))
		return errmsg_set(ret_error, EINVAL, "metadata.annotations: expected an object");
	cs->annotations = v;
	v = member(cs->obj, "status");
	if (v && !json_is_object(v))
		return errmsg_set(ret_error, EINVAL, "status: expected an object");
	cs->status = v;
	cs->ns = cs->ns ?: "";
	cs->name = cs->name ?: "";
	cs->uid = cs->uid ?: "";
	cs->resource_version = cs->resource_version ?: "";
	cs->deleting = deletion != NULL;
	return 0;
}

int cs_parse(const json_t *obj, struct cs **ret, char **ret_error)
{
	_cleanup_(cs_freep) struct cs *cs = NULL;
	const char *api_version = json_string_value(json_object_get(obj, "apiVersion"));
	const char *kind = json_string_value(json_object_get(obj, "kind"));
	enum cs_api api;
	int r;

	if (streq_ptr(kind, META_KIND_COCOONSET) && streq_ptr(api_version, META_API_VERSION))
		api = CS_API_V1;
	else if (streq_ptr(kind, META_KIND_COCOONSET) &&
		 streq_ptr(api_version, META_LEGACY_API_VERSION))
		api = CS_API_LEGACY;
	else
		return errmsg_set(ret_error, EINVAL, "unsupported apiVersion \"%s\" kind \"%s\"",
				  api_version ?: "", kind ?: "");

	cs = calloc(1, sizeof(*cs));
	if (!cs)
		return -ENOMEM;
	cs->api = api;
	/* The strings below borrow from obj: hold it for the cs's lifetime. */
	cs->obj = json_incref((json_t *)obj);
	cs->owned = json_array();
	if (!cs->owned)
		return -ENOMEM;
	r = read_metadata(cs, ret_error);
	if (r >= 0)
		r = read_spec(cs, ret_error);
	if (r < 0)
		return r;
	*ret = TAKE_PTR(cs);
	return 0;
}

struct cs *cs_free(struct cs *cs)
{
	if (!cs)
		return NULL;
	free(cs->toolboxes);
	json_decref(cs->owned);
	json_decref(cs->obj);
	free(cs);
	return NULL;
}

char *cs_agent_vm_name(const struct cs *cs, int slot)
{
	char *s;

	return meta_vm_name_for_deployment(cs->ns, cs->name, slot, &s) < 0 ? NULL : s;
}

char *cs_pod_name(const struct cs *cs, const char *suffix)
{
	char *s;

	return asprintf(&s, "%s-%s", cs->name, suffix) < 0 ? NULL : s;
}

const struct cs_toolbox *cs_toolbox_find(const struct cs *cs, const char *name)
{
	for (size_t i = 0; i < cs->n_toolboxes; i++)
		if (streq_ptr(cs->toolboxes[i].name, name))
			return &cs->toolboxes[i];
	return NULL;
}

const char *cs_api_version(const struct cs *cs)
{
	return cs->api == CS_API_LEGACY ? META_LEGACY_API_VERSION : META_API_VERSION;
}

int cs_vm_name_slot(const struct cs *cs, const char *vm_name)
{
	int64_t slot = meta_agent_slot(cs->ns, cs->name, vm_name);

	return slot > INT32_MAX ? -1 : (int)slot;
}
