/* Drift (operator-webhook.md §2.5): whether a pod still matches its CocoonSet slot or
 * toolbox, or must be deleted and recreated. A false positive is a destroyed VM and an
 * endless recreate loop, so every field the apiserver rewrites is compared the way it was
 * rewritten: quantities numerically, requests defaulted from limits, the "default"
 * ServiceAccount, envFrom absent as empty. Affinity and nodeName are never compared (the
 * wake hint and main's node are placement, not spec), and a pod that predates the snapshot
 * class is adopted because nodeSelector is immutable.
 *
 * The expected VMSpec is pod_vmspec_annotations() with the pod's own VM name and, for
 * sub-agents, its own fork-from: those name where the VM came from, not what it runs. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cocoon/meta.h"
#include "operatord.h"

/* The VMSpec keys both sides are compared on; absent equals absent. */
static const char *const vmspec_keys[] = {
	META_ANN_VM_NAME,
	META_ANN_IMAGE,
	META_ANN_MODE,
	META_ANN_OS,
	META_ANN_STORAGE,
	META_ANN_NETWORK,
	META_ANN_SNAPSHOT_POLICY,
	META_ANN_FORK_FROM,
	META_ANN_MANAGED,
	META_ANN_FORCE_PULL,
	META_ANN_NO_DIRECT_IO,
	META_ANN_CONN_TYPE,
	META_ANN_BACKEND,
	META_ANN_PROBE_PORT,
};
/* Static toolboxes: the runtime keys the operator writes itself, from the spec. */
static const char *const static_keys[] = { META_ANN_VM_ID, META_ANN_IP, META_ANN_VNC_PORT };

static const char *const compared_resources[] = { "cpu", "memory" };

/* Formats "<field>: want <a>, have <b>" with each value quoted (or "(unset)"), so a value
 * with quotes or newlines still makes one log line. */
static int reason(char **ret_reason, const char *field, const char *want, const char *have)
{
	_cleanup_(freep) char *w = NULL, *h = NULL;
	json_auto_t *jw = want ? json_string(want) : NULL, *jh = have ? json_string(have) : NULL;
	char *s;

	if (!ret_reason)
		return 1;
	w = jw ? json_dumps(jw, JSON_ENCODE_ANY) : strdup("(unset)");
	h = jh ? json_dumps(jh, JSON_ENCODE_ANY) : strdup("(unset)");
	if (!w || !h || asprintf(&s, "%s: want %s, have %s", field, w, h) < 0)
		return -ENOMEM;
	*ret_reason = s;
	return 1;
}

/* "" is absent, as everywhere in the annotation contract. */
static const char *str_or_null(const json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	return isempty(s) ? NULL : s;
}

/* 1 (with the reason) when drifted, 0 when equal, < 0 on error. */
static int compare_keys(const json_t *want, const json_t *have, const char *const *keys, size_t n,
			char **ret_reason)
{
	char field[128];

	for (size_t i = 0; i < n; i++) {
		const char *w = str_or_null(want, keys[i]), *h = str_or_null(have, keys[i]);

		if (streq_ptr(w, h))
			continue;
		snprintf(field, sizeof(field), "annotation %s", keys[i]);
		return reason(ret_reason, field, w, h);
	}
	return 0;
}

static int compare_vmspec(const struct cs *cs, const struct cs_pod *pod,
			  const struct cs_toolbox *tb, char **ret_reason)
{
	const json_t *anns = json_object_get(json_object_get(pod->obj, "metadata"), "annotations");
	const char *fork_from = !tb && pod->slot > 0 ? str_or_null(anns, META_ANN_FORK_FROM) : NULL;
	json_auto_t *want = NULL;
	int r;

	r = pod_vmspec_annotations(cs, tb, pod->vm_name, fork_from, &want);
	if (r < 0)
		return r;
	r = compare_keys(want, anns, vmspec_keys, ELEMENTSOF(vmspec_keys), ret_reason);
	if (r == 0 && tb && streq_ptr(tb->mode, "static"))
		r = compare_keys(want, anns, static_keys, ELEMENTSOF(static_keys), ret_reason);
	return r;
}

/* Missing on both sides is equal, on one side is not; otherwise equal by value. An
 * unparsable pod value never equals anything. */
static bool quantity_same(const char *want, const char *have)
{
	if (!want || !have)
		return want == have;
	return quantity_equal_str(want, have) == 1;
}

static int compare_resource(const char *map, const char *name, const char *want, const char *have,
			    char **ret_reason)
{
	char field[64];

	if (quantity_same(want, have))
		return 0;
	snprintf(field, sizeof(field), "resources.%s.%s", map, name);
	return reason(ret_reason, field, want, have);
}

static const char *resource(const json_t *resources, const char *map, const char *name)
{
	return json_string_value(json_object_get(json_object_get(resources, map), name));
}

/* CPU and memory only: ephemeral-storage is the storage annotation's business, and other
 * resources are the apiserver's or an admission plugin's. A request left out is the limit,
 * per resource and on both sides, as the apiserver defaults it (Guaranteed QoS). */
static int compare_resources(const struct cs_vm *vm, const struct cs_pod *pod, char **ret_reason)
{
	const json_t *want = vm->resources;
	const json_t *have = json_object_get(
	    json_array_get(json_object_get(json_object_get(pod->obj, "spec"), "containers"), 0),
	    "resources");
	int r;

	for (size_t i = 0; i < ELEMENTSOF(compared_resources); i++) {
		const char *name = compared_resources[i];
		const char *want_limit = resource(want, "limits", name);
		const char *have_limit = resource(have, "limits", name);

		r = compare_resource("limits", name, want_limit, have_limit, ret_reason);
		if (r == 0)
			r = compare_resource(
			    "requests", name, resource(want, "requests", name) ?: want_limit,
			    resource(have, "requests", name) ?: have_limit, ret_reason);
		if (r != 0)
			return r;
	}
	return 0;
}

/* Agents only: pod_build gives toolboxes neither. */
static int compare_identity(const struct cs *cs, const struct cs_pod *pod, char **ret_reason)
{
	const json_t *spec = json_object_get(pod->obj, "spec");
	const json_t *want_env = cs->agent.env_from;
	const json_t *have_env =
	    json_object_get(json_array_get(json_object_get(spec, "containers"), 0), "envFrom");
	_cleanup_(freep) char *w = NULL, *h = NULL;
	const char *sa = str_or_null(spec, "serviceAccountName");

	/* the apiserver fills in "default" (69453e3) */
	if (!streq(cs->agent.service_account ?: "default", sa ?: "default"))
		return reason(ret_reason, "serviceAccountName",
			      cs->agent.service_account ?: "default", sa ?: "default");
	if (json_array_size(want_env) == 0 && json_array_size(have_env) == 0)
		return 0;
	if (json_equal((json_t *)want_env, (json_t *)have_env))
		return 0;
	if (!ret_reason)
		return 1;
	w = want_env ? json_dumps(want_env, JSON_COMPACT) : strdup("[]");
	h = have_env ? json_dumps(have_env, JSON_COMPACT | JSON_ENCODE_ANY) : strdup("[]");
	if (!w || !h || asprintf(ret_reason, "envFrom: want %s, have %s", w, h) < 0)
		return -ENOMEM;
	return 1;
}

static int compare_scheduling(const struct cs *cs, const struct cs_pod *pod, char **ret_reason)
{
	const json_t *selector = json_object_get(json_object_get(pod->obj, "spec"), "nodeSelector");
	const char *pool = pod_pool(pod->obj);
	const char *class = str_or_null(selector, META_LABEL_SNAPSHOT_CPU_CLASS);

	if (!streq(pool, cs->node_pool))
		return reason(ret_reason, "nodeSelector " META_LABEL_POOL, cs->node_pool, pool);
	if (streq_ptr(class, cs->snapshot_class))
		return 0;
	/* nodeSelector is immutable: a running pod from before the class was set is adopted
	 * rather than destroyed; a terminal one is rebuilt with the class anyway (#30). */
	if (!class && !pod->terminal)
		return 0;
	return reason(ret_reason, "nodeSelector " META_LABEL_SNAPSHOT_CPU_CLASS, cs->snapshot_class,
		      class);
}

int pod_drifted(const struct cs *cs, const struct cs_pod *pod, const struct cs_toolbox *tb,
		bool *ret, char **ret_reason)
{
	_cleanup_(freep) char *why = NULL;
	char **r_why = ret_reason ? &why : NULL;
	int r;

	r = compare_vmspec(cs, pod, tb, r_why);
	if (r == 0)
		r = compare_resources(tb ? &tb->vm : &cs->agent.vm, pod, r_why);
	if (r == 0 && !tb)
		r = compare_identity(cs, pod, r_why);
	if (r == 0)
		r = compare_scheduling(cs, pod, r_why);
	if (r < 0)
		return r;
	*ret = r > 0;
	if (ret_reason)
		*ret_reason = TAKE_PTR(why);
	return 0;
}

const char *pod_pool(const json_t *pod)
{
	return meta_pod_pool(pod);
}
