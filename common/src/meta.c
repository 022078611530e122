/* The pod annotation/label contract: reading the VM spec from a pod's annotations
 * (canonical keys win over cocoon.cis aliases), validating enumerated values, defaults,
 * writing the runtime annotations (in place or as a merge patch), the CPU/memory a VM is
 * created with, and the naming/slot/pool helpers that vkd, operatord and webhookd must
 * agree on byte for byte. The rules are those of cocoon-common's meta package
 * (vk-cocoon.md §1, operator-webhook.md §1.4), with validation added. */
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "cocoon/buf.h"
#include "cocoon/macro.h"
#include "cocoon/meta.h"
#include "cocoon/quantity.h"

/* How much of a bad value an error message quotes. */
#define ERROR_VALUE_MAX 64

enum field_type {
	FIELD_STRING,
	FIELD_BOOL,
	FIELD_MODE,
	FIELD_OS,
	FIELD_SNAPSHOT_POLICY,
	FIELD_STORAGE,
	FIELD_PORT,
	FIELD_INT,
};

struct field {
	const char *key;
	const char *legacy; /* NULL: no alias */
	enum field_type type;
	size_t offset;
};

#define FIELD(k, l, t, member)                                                                     \
	{                                                                                          \
		k, l, t, offsetof(struct meta_vm_spec, member)                                     \
	}

static const struct field fields[] = {
	FIELD(META_ANN_MODE, META_LEGACY_ANN_MODE, FIELD_MODE, mode),
	FIELD(META_ANN_IMAGE, META_LEGACY_ANN_IMAGE, FIELD_STRING, image),
	FIELD(META_ANN_OS, META_LEGACY_ANN_OS, FIELD_OS, os),
	FIELD(META_ANN_STORAGE, META_LEGACY_ANN_STORAGE, FIELD_STORAGE, storage),
	FIELD(META_ANN_HIBERNATE, META_LEGACY_ANN_HIBERNATE, FIELD_BOOL, hibernate),
	FIELD(META_ANN_VM_NAME, META_LEGACY_ANN_VM_NAME, FIELD_STRING, vm_name),
	FIELD(META_ANN_FORK_FROM, META_LEGACY_ANN_FORK_FROM, FIELD_STRING, fork_from),
	FIELD(META_ANN_SNAPSHOT_POLICY, META_LEGACY_ANN_SNAPSHOT_POLICY, FIELD_SNAPSHOT_POLICY,
	      snapshot_policy),
	FIELD(META_ANN_MANAGED, META_LEGACY_ANN_MANAGED, FIELD_BOOL, managed),
	FIELD(META_ANN_VM_ID, META_LEGACY_ANN_VM_ID, FIELD_STRING, vm_id),
	FIELD(META_ANN_IP, META_LEGACY_ANN_IP, FIELD_STRING, ip),
	FIELD(META_ANN_VNC_PORT, META_LEGACY_ANN_VNC_PORT, FIELD_PORT, vnc_port),
	FIELD(META_ANN_NETWORK, NULL, FIELD_STRING, network),
	FIELD(META_ANN_BACKEND, NULL, FIELD_STRING, backend),
	FIELD(META_ANN_CONN_TYPE, NULL, FIELD_STRING, conn_type),
	FIELD(META_ANN_NO_DIRECT_IO, NULL, FIELD_BOOL, no_direct_io),
	FIELD(META_ANN_FORCE_PULL, NULL, FIELD_BOOL, force_pull),
	FIELD(META_ANN_PROBE_PORT, NULL, FIELD_PORT, probe_port),
	FIELD(META_ANN_RESTORE_FROM_HIBERNATE, NULL, FIELD_BOOL, restore_from_hibernate),
	FIELD(META_ANN_KEEP_SNAPSHOT_ON_DELETE, NULL, FIELD_BOOL, keep_snapshot_on_delete),
	FIELD(META_ANN_LIFECYCLE_STATE, NULL, FIELD_STRING, lifecycle_state),
	FIELD(META_ANN_LIFECYCLE_OBSERVED_GENERATION, NULL, FIELD_INT,
	      lifecycle_observed_generation),
	FIELD(META_ANN_GENERATION, NULL, FIELD_INT, generation),
};

static const char *const mode_names[] = {
	[META_MODE_CLONE] = "clone",
	[META_MODE_RUN] = "run",
	[META_MODE_ADOPT] = "adopt",
	[META_MODE_STATIC] = "static",
};
static const char *const os_names[] = {
	[META_OS_LINUX] = "linux",
	[META_OS_WINDOWS] = "windows",
	[META_OS_ANDROID] = "android",
};
static const char *const snapshot_policy_names[] = {
	[META_SNAPSHOT_ALWAYS] = "always",
	[META_SNAPSHOT_MAIN_ONLY] = "main-only",
	[META_SNAPSHOT_NEVER] = "never",
};

static const char *enum_to_string(const char *const *names, size_t n, int v)
{
	return v > 0 && (size_t)v < n ? names[v] : NULL;
}

const char *meta_mode_to_string(enum meta_mode m)
{
	return enum_to_string(mode_names, ELEMENTSOF(mode_names), m);
}

const char *meta_os_to_string(enum meta_os os)
{
	return enum_to_string(os_names, ELEMENTSOF(os_names), os);
}

const char *meta_snapshot_policy_to_string(enum meta_snapshot_policy p)
{
	return enum_to_string(snapshot_policy_names, ELEMENTSOF(snapshot_policy_names), p);
}

/* "invalid <what>="<value>": expected <expected>". The value is quoted with \" \\ and
 * \xNN escapes (so the message is printable ASCII, safe in logs and in JSON) and cut
 * after ERROR_VALUE_MAX bytes. Always returns -EINVAL, or -ENOMEM. */
static int value_error(char **ret_error, const char *what, const char *value, const char *expected)
{
	struct buf b = BUF_INIT(0);
	size_t i;
	int r;

	if (!ret_error)
		return -EINVAL;
	r = buf_printf(&b, "invalid %s=\"", what);
	for (i = 0; r >= 0 && value[i] && i < ERROR_VALUE_MAX; i++) {
		unsigned char c = (unsigned char)value[i];

		if (c == '"' || c == '\\')
			r = buf_printf(&b, "\\%c", c);
		else if (c < 0x20 || c >= 0x7f)
			r = buf_printf(&b, "\\x%02x", c);
		else
			r = buf_append(&b, &c, 1);
	}
	if (r >= 0 && value[i])
		r = buf_append_str(&b, "...");
	if (r >= 0)
		r = buf_printf(&b, "\": expected %s", expected);
	if (r < 0) {
		buf_free(&b);
		return -ENOMEM;
	}
	*ret_error = buf_steal(&b, NULL);
	return *ret_error ? -EINVAL : -ENOMEM;
}

/* "invalid <what>: expected <expected>", for values that are not strings at all. */
static int shape_error(char **ret_error, const char *what, const char *expected)
{
	if (ret_error && asprintf(ret_error, "invalid %s: expected %s", what, expected) < 0) {
		*ret_error = NULL;
		return -ENOMEM;
	}
	return -EINVAL;
}

/* Go's strconv.Atoi on a 64-bit platform: optional sign, at least one digit, nothing
 * else, within int64. */
static int go_atoi(const char *s, int64_t *ret)
{
	uint64_t v = 0, limit;
	bool neg = false;

	if (*s == '+' || *s == '-')
		neg = *s++ == '-';
	if (!*s)
		return -EINVAL;
	limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -EINVAL;
		if (v > (limit - (uint64_t)(*s - '0')) / 10)
			return -ERANGE;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	if (neg)
		*ret = v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v;
	else
		*ret = (int64_t)v;
	return 0;
}

static const json_t *object_get(const json_t *obj, const char *key)
{
	return json_is_object(obj) ? json_object_get(obj, key) : NULL;
}

/* A string member that is present and non-empty, else NULL (other types too). */
static const char *object_get_str(const json_t *obj, const char *key)
{
	const char *s = json_string_value(object_get(obj, key));

	return isempty(s) ? NULL : s;
}

/* metadata.annotations of a pod, NULL when there are none. A pod that is not an object, or
 * whose metadata or annotations are not objects, is malformed. */
static int pod_annotations(const json_t *pod, const json_t **ret, char **ret_error)
{
	const json_t *md, *anns;

	if (!json_is_object(pod))
		return shape_error(ret_error, "pod", "a JSON object");
	md = json_object_get(pod, "metadata");
	if (md && !json_is_object(md) && !json_is_null(md))
		return shape_error(ret_error, "metadata", "an object");
	anns = object_get(md, "annotations");
	if (anns && !json_is_object(anns) && !json_is_null(anns))
		return shape_error(ret_error, "metadata.annotations", "an object");
	*ret = json_is_object(anns) ? anns : NULL;
	return 0;
}

/* One annotation value: NULL when absent, null or empty; an error for non-strings. */
static int annotation_get(const json_t *anns, const char *key, const char **ret, char **ret_error)
{
	const json_t *v = object_get(anns, key);
	char what[128];

	if (v && !json_is_string(v) && !json_is_null(v)) {
		snprintf(what, sizeof what, "annotation %s", key);
		return shape_error(ret_error, what, "a string");
	}
	*ret = isempty(json_string_value(v)) ? NULL : json_string_value(v);
	return 0;
}

static int parse_enum(const char *const *names, size_t n, const char *value, int *ret)
{
	for (size_t i = 1; i < n; i++)
		if (streq(value, names[i])) {
			*ret = (int)i;
			return 0;
		}
	return -EINVAL;
}

static int parse_port(const char *value, uint16_t *ret)
{
	unsigned v = 0;

	for (const char *p = value; *p; p++) {
		if (*p < '0' || *p > '9')
			return -EINVAL;
		v = v * 10 + (unsigned)(*p - '0');
		if (v > 65535)
			return -EINVAL;
	}
	if (v == 0)
		return -EINVAL;
	*ret = (uint16_t)v;
	return 0;
}

/* Stores one non-empty annotation value into its member. */
static int field_set(struct meta_vm_spec *spec, const struct field *f, const char *key,
		     const char *value, char **ret_error)
{
	void *member = (char *)spec + f->offset;
	struct quantity q;
	char what[128];
	int v;

	snprintf(what, sizeof what, "annotation %s", key);
	switch (f->type) {
	case FIELD_STRING:
		*(char **)member = strdup(value);
		return *(char **)member ? 0 : -ENOMEM;
	case FIELD_BOOL:
		/* Exactly "true", case-sensitive: "True", "1" and "yes" are false. */
		*(bool *)member = streq(value, "true");
		return 0;
	case FIELD_MODE:
		if (parse_enum(mode_names, ELEMENTSOF(mode_names), value, &v) < 0)
			return value_error(ret_error, what, value, "clone, run, adopt or static");
		*(enum meta_mode *)member = (enum meta_mode)v;
		return 0;
	case FIELD_OS:
		if (parse_enum(os_names, ELEMENTSOF(os_names), value, &v) < 0)
			return value_error(ret_error, what, value, "linux, windows or android");
		*(enum meta_os *)member = (enum meta_os)v;
		return 0;
	case FIELD_SNAPSHOT_POLICY:
		if (parse_enum(snapshot_policy_names, ELEMENTSOF(snapshot_policy_names), value,
			       &v) < 0)
			return value_error(ret_error, what, value, "always, main-only or never");
		*(enum meta_snapshot_policy *)member = (enum meta_snapshot_policy)v;
		return 0;
	case FIELD_STORAGE:
		if (quantity_parse(value, &q) < 0 || q.nano <= 0)
			return value_error(ret_error, what, value,
					   "a positive quantity such as 20Gi or 100G");
		*(char **)member = strdup(value);
		return *(char **)member ? 0 : -ENOMEM;
	case FIELD_PORT:
		if (parse_port(value, (uint16_t *)member) < 0)
			return value_error(ret_error, what, value, "a port number from 1 to 65535");
		return 0;
	case FIELD_INT:
		/* Generation stamps: missing or unparsable counts as 0 (operator-webhook.md
		 * §1.4), so a garbled stamp means "stale", never a refused pod. */
		if (go_atoi(value, (int64_t *)member) < 0)
			*(int64_t *)member = 0;
		return 0;
	}
	return -EINVAL;
}

int meta_vm_spec_from_pod(const json_t *pod, struct meta_vm_spec *ret, char **ret_error)
{
	_cleanup_(meta_vm_spec_done) struct meta_vm_spec spec = {};
	const json_t *anns;
	int r;

	r = pod_annotations(pod, &anns, ret_error);
	if (r < 0)
		return r;
	for (size_t i = 0; i < ELEMENTSOF(fields); i++) {
		const struct field *f = &fields[i];
		const char *value, *legacy_value = NULL;

		r = annotation_get(anns, f->key, &value, ret_error);
		if (r < 0)
			return r;
		if (f->legacy) {
			r = annotation_get(anns, f->legacy, &legacy_value, ret_error);
			if (r < 0)
				return r;
			spec.legacy = spec.legacy || legacy_value;
		}
		if (value)
			r = field_set(&spec, f, f->key, value, ret_error);
		else if (legacy_value)
			r = field_set(&spec, f, f->legacy, legacy_value, ret_error);
		if (r < 0)
			return r;
	}
	*ret = spec;
	spec = (struct meta_vm_spec){};
	return 0;
}

int meta_vm_spec_apply_defaults(struct meta_vm_spec *spec)
{
	enum meta_os os = spec->os ? spec->os : META_OS_LINUX;

	if (!spec->storage) {
		spec->storage = strdup(os == META_OS_WINDOWS ? META_DEFAULT_STORAGE_WINDOWS
							     : META_DEFAULT_STORAGE_LINUX);
		if (!spec->storage)
			return -ENOMEM;
	}
	spec->os = os;
	if (!spec->mode)
		spec->mode = META_MODE_CLONE;
	if (!spec->snapshot_policy)
		spec->snapshot_policy = META_SNAPSHOT_ALWAYS;
	return 0;
}

void meta_vm_spec_done(struct meta_vm_spec *spec)
{
	for (size_t i = 0; i < ELEMENTSOF(fields); i++)
		if (fields[i].type == FIELD_STRING || fields[i].type == FIELD_STORAGE)
			free(*(char **)((char *)spec + fields[i].offset));
	*spec = (struct meta_vm_spec){};
}

/* One resource of containers[0]: the request when present and non-zero, else the limit.
 * *ret stays 0 when neither is set. Quantities may be strings or JSON integers. */
static int container_resource(const json_t *resources, const char *name, const char *example,
			      struct quantity *ret, char **ret_error)
{
	static const char *const kinds[] = { "requests", "limits" };

	for (size_t i = 0; i < ELEMENTSOF(kinds); i++) {
		const json_t *v = object_get(object_get(resources, kinds[i]), name);
		char what[96], num[32], expected[64];
		const char *s = num;
		struct quantity q;

		if (!v || json_is_null(v))
			continue;
		snprintf(what, sizeof what, "spec.containers[0].resources.%s.%s", kinds[i], name);
		snprintf(expected, sizeof expected, "a quantity such as %s", example);
		if (json_is_string(v))
			s = json_string_value(v);
		else if (json_is_integer(v))
			snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		else
			return shape_error(ret_error, what, expected);
		if (quantity_parse(s, &q) < 0 || q.nano < 0)
			return value_error(ret_error, what, s, expected);
		if (q.nano != 0 || i == ELEMENTSOF(kinds) - 1) {
			*ret = q;
			return 0;
		}
	}
	return 0;
}

int meta_pod_vm_resources(const json_t *pod, enum meta_os os, struct meta_vm_resources *ret,
			  char **ret_error)
{
	const json_t *containers = object_get(object_get(pod, "spec"), "containers");
	const json_t *resources = object_get(json_array_get(containers, 0), "resources");
	struct quantity cpu = {}, memory = {};
	struct meta_vm_resources res;
	int r;

	r = container_resource(resources, "cpu", "2 or 500m", &cpu, ret_error);
	if (r < 0)
		return r;
	r = container_resource(resources, "memory", "4Gi", &memory, ret_error);
	if (r < 0)
		return r;
	/* ceil(MilliValue/1000) equals Value() for non-negative values, without its
	 * overflow for huge ones. */
	res.cpus = quantity_value(&cpu);
	res.memory = quantity_value(&memory);
	if (os == META_OS_WINDOWS) {
		if (res.cpus == 0)
			res.cpus = META_WINDOWS_DEFAULT_CPU;
		if (res.memory == 0)
			res.memory = META_WINDOWS_DEFAULT_MEMORY;
	}
	*ret = res;
	return 0;
}

/* value non-empty: set, else remove; or, for a merge patch (as_null), set null. */
static int annotation_put(json_t *anns, const char *key, const char *value, bool as_null)
{
	if (!isempty(value))
		return json_object_set_new(anns, key, json_string(value)) < 0 ? -ENOMEM : 0;
	if (as_null)
		return json_object_set_new(anns, key, json_null()) < 0 ? -ENOMEM : 0;
	json_object_del(anns, key);
	return 0;
}

static int runtime_put(json_t *anns, const char *vm_id, const char *ip, bool legacy, bool as_null)
{
	int r;

	r = annotation_put(anns, META_ANN_VM_ID, vm_id, as_null);
	if (r >= 0)
		r = annotation_put(anns, META_ANN_IP, ip, as_null);
	if (r >= 0 && legacy)
		r = annotation_put(anns, META_LEGACY_ANN_VM_ID, vm_id, as_null);
	if (r >= 0 && legacy)
		r = annotation_put(anns, META_LEGACY_ANN_IP, ip, as_null);
	return r;
}

/* obj[key] as an object, created when missing or null. */
static int child_object(json_t *obj, const char *key, json_t **ret)
{
	json_t *child = json_object_get(obj, key);

	if (!child || json_is_null(child)) {
		child = json_object();
		if (!child || json_object_set_new(obj, key, child) < 0)
			return -ENOMEM;
	}
	if (!json_is_object(child))
		return -EINVAL;
	*ret = child;
	return 0;
}

int meta_pod_set_runtime(json_t *pod, const char *vm_id, const char *ip, bool legacy)
{
	json_t *md, *anns;
	int r;

	if (!json_is_object(pod))
		return -EINVAL;
	r = child_object(pod, "metadata", &md);
	if (r < 0)
		return r;
	r = child_object(md, "annotations", &anns);
	if (r < 0)
		return r;
	return runtime_put(anns, vm_id, ip, legacy, false);
}

int meta_runtime_patch(const char *vm_id, const char *ip, bool legacy, json_t **ret)
{
	json_t *patch = json_object(), *md, *anns;
	int r = patch ? 0 : -ENOMEM;

	if (r >= 0)
		r = child_object(patch, "metadata", &md);
	if (r >= 0)
		r = child_object(md, "annotations", &anns);
	if (r >= 0)
		r = runtime_put(anns, vm_id, ip, legacy, true);
	if (r < 0) {
		json_decref(patch);
		return r;
	}
	*ret = patch;
	return 0;
}

static int strdup_or_enomem(char *s, char **ret)
{
	if (!s)
		return -ENOMEM;
	*ret = s;
	return 0;
}

int meta_vm_name_for_deployment(const char *ns, const char *deployment, int64_t slot, char **ret)
{
	char *s;

	if (asprintf(&s, "vk-%s-%s-%" PRId64, ns, deployment, slot) < 0)
		return -ENOMEM;
	*ret = s;
	return 0;
}

int meta_vm_name_for_pod(const char *ns, const char *pod, char **ret)
{
	char *s;

	if (asprintf(&s, "vk-%s-%s", ns, pod) < 0)
		return -ENOMEM;
	*ret = s;
	return 0;
}

int64_t meta_vm_name_slot(const char *vm_name)
{
	const char *dash = vm_name ? strrchr(vm_name, '-') : NULL;
	int64_t slot;

	if (!dash || go_atoi(dash + 1, &slot) < 0)
		return -1;
	return slot;
}

/* s starts with prefix: returns what follows, else NULL. */
static const char *skip_prefix(const char *s, const char *prefix)
{
	size_t n = strlen(prefix);

	return strncmp(s, prefix, n) == 0 ? s + n : NULL;
}

int64_t meta_agent_slot(const char *ns, const char *cocoonset, const char *vm_name)
{
	const char *p = vm_name;
	int64_t slot;

	if (!ns || !cocoonset || !p)
		return -1;
	/* "vk-<ns>-<cocoonset>-", matched piecewise so nothing is allocated */
	p = skip_prefix(p, "vk-");
	p = p ? skip_prefix(p, ns) : NULL;
	p = p ? skip_prefix(p, "-") : NULL;
	p = p ? skip_prefix(p, cocoonset) : NULL;
	p = p ? skip_prefix(p, "-") : NULL;
	if (!p || strchr(p, '-') || go_atoi(p, &slot) < 0 || slot < 0)
		return -1;
	return slot;
}

int meta_main_agent_vm_name(const char *vm_name, char **ret)
{
	char *s;

	if (!vm_name)
		return -EINVAL;
	if (meta_vm_name_slot(vm_name) < 0)
		return strdup_or_enomem(strdup(vm_name), ret);
	if (asprintf(&s, "%.*s0", (int)(strrchr(vm_name, '-') - vm_name + 1), vm_name) < 0)
		return -ENOMEM;
	*ret = s;
	return 0;
}

const char *meta_role_from_vm_name(const char *vm_name)
{
	return meta_vm_name_slot(vm_name) == 0 ? META_ROLE_MAIN : META_ROLE_SUB_AGENT;
}

const char *meta_role_from_agent_slot(int64_t slot)
{
	if (slot < 0)
		return META_ROLE_TOOLBOX;
	return slot == 0 ? META_ROLE_MAIN : META_ROLE_SUB_AGENT;
}

static bool is_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

bool meta_vm_name_is_valid(const char *name)
{
	size_t n;

	if (isempty(name) || !is_alnum(name[0]))
		return false;
	for (n = 1; name[n]; n++)
		if (n >= META_VM_NAME_MAX ||
		    !(is_alnum(name[n]) || name[n] == '.' || name[n] == '_' || name[n] == '-'))
			return false;
	return true;
}

int meta_pod_owner_deployment(const json_t *pod, char **ret)
{
	const json_t *refs = object_get(object_get(pod, "metadata"), "ownerReferences");
	const json_t *ref;
	size_t i;

	json_array_foreach (refs, i, ref) {
		const char *kind = object_get_str(ref, "kind"), *name = object_get_str(ref, "name");
		const char *dash;

		if (!kind || !streq(kind, "ReplicaSet") || !name)
			continue;
		/* "<deployment>-<pod-template-hash>"; a name with nothing before its last '-'
		 * names no deployment, so look at the next owner. */
		dash = strrchr(name, '-');
		if (dash && dash > name)
			return strdup_or_enomem(strndup(name, (size_t)(dash - name)), ret);
	}
	return -ENOENT;
}

const char *meta_connection_type(enum meta_os os, bool has_vnc_port, const char *override)
{
	if (!isempty(override))
		return override;
	if (has_vnc_port)
		return META_CONN_VNC;
	if (os == META_OS_ANDROID)
		return META_CONN_ADB;
	if (os == META_OS_WINDOWS)
		return META_CONN_RDP;
	return META_CONN_SSH;
}

int meta_pod_key(const char *ns, const char *name, char **ret)
{
	char *s;

	if (asprintf(&s, "%s/%s", ns, name) < 0)
		return -ENOMEM;
	*ret = s;
	return 0;
}

/* The raw OS annotation, canonical first, for the is-windows checks (which run on pods
 * whose spec was never validated). */
static const char *pod_os_annotation(const json_t *pod)
{
	const json_t *anns = object_get(object_get(pod, "metadata"), "annotations");
	const char *os = object_get_str(anns, META_ANN_OS);

	return os ? os : object_get_str(anns, META_LEGACY_ANN_OS);
}

bool meta_pod_is_windows_nocase(const json_t *pod)
{
	const char *os = pod_os_annotation(pod);

	return os && strcasecmp(os, "windows") == 0;
}

bool meta_pod_is_windows_exact(const json_t *pod)
{
	return streq_ptr(pod_os_annotation(pod), "windows");
}

const char *meta_pod_pool(const json_t *pod)
{
	const json_t *md = object_get(pod, "metadata");
	const char *pool;

	pool = object_get_str(object_get(object_get(pod, "spec"), "nodeSelector"), META_LABEL_POOL);
	if (!pool)
		pool = object_get_str(object_get(md, "labels"), META_LABEL_POOL);
	if (!pool)
		pool = object_get_str(object_get(md, "annotations"), META_LABEL_POOL);
	return pool ? pool : META_DEFAULT_POOL;
}

bool meta_pod_tolerates_cocoon(const json_t *pod)
{
	const json_t *tolerations = object_get(object_get(pod, "spec"), "tolerations");
	const json_t *t;
	size_t i;

	json_array_foreach (tolerations, i, t) {
		if (streq_ptr(json_string_value(object_get(t, "key")), META_TOLERATION_KEY))
			return true;
	}
	return false;
}

bool meta_should_snapshot(enum meta_snapshot_policy policy, const char *vm_name)
{
	switch (policy) {
	case META_SNAPSHOT_NEVER:
		return false;
	case META_SNAPSHOT_MAIN_ONLY:
		return meta_vm_name_slot(vm_name) == 0;
	default:
		return true;
	}
}
