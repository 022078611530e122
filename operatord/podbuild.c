/* The pod every CocoonSet slot and toolbox runs in (operator-webhook.md §2.4), field by
 * field, and the VMSpec annotations vkd reads from it (§1.4), which drift detection (§2.5)
 * rebuilds to compare. The container is a placeholder that is never pulled: vkd boots the
 * VM the annotations describe. Only the current keys are written, for legacy sets too
 * (CONTRACT.md §1); empty values and false booleans are left out, as the original did. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "cocoon/meta.h"
#include "operatord.h"

#define HOSTNAME_LABEL "kubernetes.io/hostname"

int pod_vmspec_annotations(const struct cs *cs, const struct cs_toolbox *tb, const char *vm_name,
			   const char *fork_from, json_t **ret)
{
	const struct cs_vm *vm = tb ? &tb->vm : &cs->agent.vm;
	/* static toolboxes are external VMs: vkd only tracks them, never manages them */
	bool is_static = tb && streq_ptr(tb->mode, "static");
	char probe_port[16], vnc_port[16];
	json_auto_t *a = json_object();

	snprintf(probe_port, sizeof(probe_port), "%d", vm->probe_port);
	snprintf(vnc_port, sizeof(vnc_port), "%d", tb ? tb->vnc_port : 0);
	const struct {
		const char *key, *value;
	} kv[] = {
		{ META_ANN_VM_NAME, vm_name },
		{ META_ANN_IMAGE, tb ? tb->image : cs->agent.image },
		{ META_ANN_MODE, tb ? tb->mode : cs->agent.mode },
		{ META_ANN_OS, vm->os },
		{ META_ANN_STORAGE, vm->storage },
		{ META_ANN_NETWORK, vm->network },
		{ META_ANN_SNAPSHOT_POLICY, cs->snapshot_policy },
		{ META_ANN_MANAGED, is_static ? NULL : "true" },
		{ META_ANN_FORCE_PULL, vm->force_pull ? "true" : NULL },
		{ META_ANN_BACKEND, vm->backend },
		{ META_ANN_CONN_TYPE, vm->conn_type },
		{ META_ANN_NO_DIRECT_IO, vm->no_direct_io ? "true" : NULL },
		{ META_ANN_PROBE_PORT, vm->probe_port > 0 ? probe_port : NULL },
		{ META_ANN_FORK_FROM, fork_from },
		{ META_ANN_VM_ID, is_static ? tb->static_vmid : NULL },
		{ META_ANN_IP, is_static ? tb->static_ip : NULL },
		{ META_ANN_VNC_PORT, is_static && tb->vnc_port > 0 ? vnc_port : NULL },
	};

	if (!a)
		return -ENOMEM;
	for (size_t i = 0; i < ELEMENTSOF(kv); i++) {
		if (isempty(kv[i].value))
			continue;
		if (json_object_set_new(a, kv[i].key, json_string(kv[i].value)) < 0)
			return -ENOMEM;
	}
	*ret = TAKE_PTR(a);
	return 0;
}

/* The spec's resources; storage goes into both requests and limits as ephemeral-storage, so
 * the apiserver's Guaranteed-QoS defaulting has nothing to add (a false drift in the
 * original, 5ef066d). */
static json_t *build_resources(const struct cs_vm *vm)
{
	static const char *const maps[] = { "requests", "limits" };
	json_auto_t *res = vm->resources ? json_deep_copy(vm->resources) : json_object();
	json_t *m;

	if (!res)
		return NULL;
	if (!vm->storage[0])
		return TAKE_PTR(res);
	for (size_t i = 0; i < ELEMENTSOF(maps); i++) {
		m = json_object_get(res, maps[i]);
		if (!m) {
			m = json_object();
			if (json_object_set_new(res, maps[i], m) < 0)
				return NULL;
		}
		if (json_object_set_new(m, "ephemeral-storage", json_string(vm->storage)) < 0)
			return NULL;
	}
	return TAKE_PTR(res);
}

static json_t *hostname_in(const char *node)
{
	return json_pack("{s:[{s:s, s:s, s:[s]}]}", "matchExpressions", "key", HOSTNAME_LABEL,
			 "operator", "In", "values", node);
}

/* Main only: spec.nodeName pins it (required, the migration target); otherwise a wake hint
 * is a preference with weight 100, so a full node never blocks the wake (§2.10). */
static int add_affinity(const struct cs *cs, const struct pod_build_options *o, json_t *spec)
{
	json_t *affinity;

	if (cs->node_name)
		affinity = json_pack("{s:{s:{s:[o]}}}", "nodeAffinity",
				     "requiredDuringSchedulingIgnoredDuringExecution",
				     "nodeSelectorTerms", hostname_in(cs->node_name));
	else if (!isempty(o->preferred_node))
		affinity = json_pack("{s:{s:[{s:i, s:o}]}}", "nodeAffinity",
				     "preferredDuringSchedulingIgnoredDuringExecution", "weight",
				     100, "preference", hostname_in(o->preferred_node));
	else
		return 0;
	return json_object_set_new(spec, "affinity", affinity) < 0 ? -ENOMEM : 0;
}

static json_t *build_spec(const struct cs *cs, const struct pod_build_options *o)
{
	const struct cs_vm *vm = o->toolbox ? &o->toolbox->vm : &cs->agent.vm;
	const json_t *env_from = o->toolbox ? NULL : cs->agent.env_from;
	json_auto_t *spec = NULL;
	json_t *container;

	container = json_pack("{s:s, s:s, s:o, s:o*}", "name", "agent", "image",
			      OPERATORD_PLACEHOLDER_IMAGE, "resources", build_resources(vm),
			      "envFrom", env_from ? json_deep_copy(env_from) : NULL);
	/* Tolerations without tolerationSeconds: a control-plane hiccup must not evict every
	 * VM on a node after the default 300 s (PR #21). */
	spec = json_pack(
	    "{s:i, s:[{s:s, s:s}, {s:s, s:s, s:s}, {s:s, s:s, s:s}], s:{s:s, s:s*},"
	    " s:[o]}",
	    "terminationGracePeriodSeconds", 1, "tolerations", "key", META_TOLERATION_KEY,
	    "operator", "Exists", "key", "node.kubernetes.io/not-ready", "operator", "Exists",
	    "effect", "NoExecute", "key", "node.kubernetes.io/unreachable", "operator", "Exists",
	    "effect", "NoExecute", "nodeSelector", META_LABEL_POOL, cs->node_pool,
	    META_LABEL_SNAPSHOT_CPU_CLASS, cs->snapshot_class, "containers", container);
	if (!spec)
		return NULL;
	if (o->toolbox)
		return TAKE_PTR(spec);
	if (cs->agent.service_account &&
	    json_object_set_new(spec, "serviceAccountName",
				json_string(cs->agent.service_account)) < 0)
		return NULL;
	/* sub-agents fork main's memory: a hard bind to main's node skips the scheduler */
	if (o->slot > 0 && !isempty(o->node_name) &&
	    json_object_set_new(spec, "nodeName", json_string(o->node_name)) < 0)
		return NULL;
	if (o->slot == 0 && add_affinity(cs, o, spec) < 0)
		return NULL;
	return TAKE_PTR(spec);
}

static json_t *build_metadata(const struct cs *cs, const struct pod_build_options *o,
			      const char *name, const char *slot, json_t *take_annotations)
{
	json_auto_t *annotations = take_annotations;
	const char *role = o->toolbox     ? META_ROLE_TOOLBOX
			   : o->slot == 0 ? META_ROLE_MAIN
					  : META_ROLE_SUB_AGENT;
	char generation[32];
	int r;

	snprintf(generation, sizeof(generation), "%" PRId64, cs->generation);
	r = json_object_set_new(annotations, META_ANN_GENERATION, json_string(generation));
	if (r >= 0 && o->restore_from_hibernate)
		r = json_object_set_new(annotations, META_ANN_RESTORE_FROM_HIBERNATE,
					json_string("true"));
	if (r < 0)
		return NULL;
	return json_pack("{s:s, s:s, s:{s:s, s:s, s:s, s:s}, s:o,"
			 " s:[{s:s, s:s, s:s, s:s, s:b, s:b}]}",
			 "name", name, "namespace", cs->ns, "labels", META_LABEL_COCOONSET,
			 cs->name, META_LABEL_ROLE, role, META_LABEL_SLOT, slot,
			 META_LABEL_APP_NAME, cs->name, "annotations", TAKE_PTR(annotations),
			 "ownerReferences", "apiVersion", cs_api_version(cs), "kind",
			 META_KIND_COCOONSET, "name", cs->name, "uid", cs->uid, "controller", 1,
			 "blockOwnerDeletion", 1);
}

int pod_build(const struct cs *cs, const struct pod_build_options *o, json_t **ret)
{
	_cleanup_(freep) char *name = NULL, *vm_name = NULL;
	json_t *annotations = NULL, *metadata, *pod;
	char slot[16];
	int r;

	if (!o || (!o->toolbox && o->slot < 0))
		return -EINVAL;
	snprintf(slot, sizeof(slot), "%d", o->slot);
	name = cs_pod_name(cs, o->toolbox ? o->toolbox->name : slot);
	if (!name)
		return -ENOMEM;
	/* toolboxes: "vk-<ns>-<pod>" = "vk-<ns>-<cs>-<toolbox>" (§1.4) */
	if (o->toolbox) {
		r = meta_vm_name_for_pod(cs->ns, name, &vm_name);
		if (r < 0)
			return r;
	} else {
		vm_name = cs_agent_vm_name(cs, o->slot);
		if (!vm_name)
			return -ENOMEM;
	}
	r = pod_vmspec_annotations(cs, o->toolbox, vm_name,
				   !o->toolbox && o->slot > 0 ? o->fork_from : NULL, &annotations);
	if (r < 0)
		return r;
	metadata = build_metadata(cs, o, name, o->toolbox ? o->toolbox->name : slot, annotations);
	if (!metadata)
		return -ENOMEM;
	pod = json_pack("{s:s, s:s, s:o, s:o}", "apiVersion", "v1", "kind", "Pod", "metadata",
			metadata, "spec", build_spec(cs, o));
	if (!pod)
		return -ENOMEM;
	*ret = pod;
	return 0;
}
