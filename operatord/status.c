/* A CocoonSet's status (operator-webhook.md §2.8 buildStatus, the v1 schema of §1.1 and the
 * legacy cocoon.cis/v1alpha1 one of §1.3) and the merge patch that writes it to /status.
 *
 * The JSON is shaped like the Go types serialise: strings and observedGeneration are
 * omitempty, empty lists are left out, the four counts are always present. Conditions are
 * merged like apimachinery's meta.SetStatusCondition: the old list is kept, Ready and
 * Progressing are upserted by type, and lastTransitionTime moves only when the status
 * value flips, so an unchanged set produces an identical status and no write (§2.8: a
 * naive comparison would loop on our own status updates, §7.2). */
#include <errno.h>
#include <stdio.h>

#include "cocoon/jsonmerge.h"
#include "cocoon/kube.h"
#include "cocoon/meta.h"
#include "operatord.h"

#define CONDITION_READY       "Ready"
#define CONDITION_PROGRESSING "Progressing"

/* The counts both schemas carry. */
struct counts {
	int64_t ready, desired, tb_ready, tb_desired;
};

/* A pod annotation, canonical key first, then its cocoon.cis alias (CONTRACT.md §1);
 * "" counts as absent. */
static const char *pod_annotation(const struct cs_pod *pod, const char *key, const char *legacy)
{
	const json_t *anns = json_object_get(json_object_get(pod->obj, "metadata"), "annotations");
	const char *v = json_string_value(json_object_get(anns, key));

	if (isempty(v) && legacy)
		v = json_string_value(json_object_get(anns, legacy));
	return isempty(v) ? NULL : v;
}

/* The runtime VNC port (vkd's, or the spec's for static toolboxes); anything but a port
 * number reads as none. */
static int pod_vnc_port(const struct cs_pod *pod)
{
	const char *s = pod_annotation(pod, META_ANN_VNC_PORT, META_LEGACY_ANN_VNC_PORT);
	int v = 0;

	for (; s && *s; s++) {
		if (*s < '0' || *s > '9')
			return 0;
		v = v * 10 + (*s - '0');
		if (v > 65535)
			return 0;
	}
	return v;
}

static enum meta_os os_from_string(const char *os)
{
	if (streq_ptr(os, "windows"))
		return META_OS_WINDOWS;
	if (streq_ptr(os, "android"))
		return META_OS_ANDROID;
	return META_OS_LINUX;
}

/* omitempty */
static int set_string(json_t *o, const char *key, const char *value)
{
	if (isempty(value))
		return 0;
	return json_object_set_new(o, key, json_string(value)) < 0 ? -ENOMEM : 0;
}

static int set_int(json_t *o, const char *key, int64_t value)
{
	return json_object_set_new(o, key, json_integer(value)) < 0 ? -ENOMEM : 0;
}

/* The members every agent and toolbox entry shares. */
static int set_vm_members(json_t *e, const struct cs_pod *pod)
{
	int r;

	r = set_string(e, "podName", pod->name);
	if (r >= 0)
		r = set_string(e, "vmName",
			       pod_annotation(pod, META_ANN_VM_NAME, META_LEGACY_ANN_VM_NAME));
	if (r >= 0)
		r = set_string(e, "vmID",
			       pod_annotation(pod, META_ANN_VM_ID, META_LEGACY_ANN_VM_ID));
	if (r >= 0)
		r = set_string(e, "ip", pod_annotation(pod, META_ANN_IP, META_LEGACY_ANN_IP));
	if (r >= 0)
		r = set_string(e, "phase", pod->phase);
	return r;
}

static int append_agent(json_t *agents, const struct cs_pod *pod, const char *role,
			const char *forked_from)
{
	json_auto_t *e = json_object();
	int r;

	if (!e)
		return -ENOMEM;
	r = set_int(e, "slot", pod->slot);
	if (r >= 0)
		r = set_string(e, "role", role);
	if (r >= 0)
		r = set_vm_members(e, pod);
	if (r >= 0)
		r = set_string(e, "forkedFrom", forked_from);
	if (r < 0)
		return r;
	return json_array_append_new(agents, TAKE_PTR(e)) < 0 ? -ENOMEM : 0;
}

/* connType as the Go operator derives it from the pod's own VM spec: the conn-type
 * annotation (the spec's override, copied onto the pod), else vnc with a VNC port, else
 * by OS (meta_connection_type). */
static int append_toolbox(json_t *toolboxes, const struct cs_pod *pod)
{
	json_auto_t *e = json_object();
	int vnc_port = pod_vnc_port(pod);
	const char *conn;
	int r;

	if (!e)
		return -ENOMEM;
	conn = meta_connection_type(
	    os_from_string(pod_annotation(pod, META_ANN_OS, META_LEGACY_ANN_OS)), vnc_port > 0,
	    pod_annotation(pod, META_ANN_CONN_TYPE, NULL));
	r = set_string(e, "name", pod->toolbox);
	if (r >= 0)
		r = set_vm_members(e, pod);
	if (r >= 0)
		r = set_string(e, "connType", conn);
	if (r >= 0 && vnc_port > 0)
		r = set_int(e, "vncPort", vnc_port);
	if (r < 0)
		return r;
	return json_array_append_new(toolboxes, TAKE_PTR(e)) < 0 ? -ENOMEM : 0;
}

/* agents[]: main (slot 0), then sub-agents by slot, including those above replicas that are
 * not deleted yet; the counts of Ready pods on the way. */
static int build_agents(const struct cs_pods *pods, struct counts *c, json_t **ret)
{
	json_auto_t *agents = json_array();
	const char *main_vm = NULL;
	int r;

	if (!agents)
		return -ENOMEM;
	if (pods->main) {
		c->ready += pods->main->ready;
		main_vm = pod_annotation(pods->main, META_ANN_VM_NAME, META_LEGACY_ANN_VM_NAME);
		r = append_agent(agents, pods->main, META_ROLE_MAIN, NULL);
		if (r < 0)
			return r;
	}
	for (size_t i = 0; i < pods->n_sub; i++) {
		c->ready += pods->sub[i]->ready;
		r = append_agent(agents, pods->sub[i], META_ROLE_SUB_AGENT, main_vm);
		if (r < 0)
			return r;
	}
	*ret = TAKE_PTR(agents);
	return 0;
}

static int build_toolboxes(const struct cs_pods *pods, struct counts *c, json_t **ret)
{
	json_auto_t *toolboxes = json_array();
	int r;

	if (!toolboxes)
		return -ENOMEM;
	for (size_t i = 0; i < pods->n_toolboxes; i++) {
		c->tb_ready += pods->toolboxes[i]->ready;
		r = append_toolbox(toolboxes, pods->toolboxes[i]);
		if (r < 0)
			return r;
	}
	*ret = TAKE_PTR(toolboxes);
	return 0;
}

static const char *phase_derive(const struct cs_pods *pods, const struct counts *c)
{
	if (!pods->main)
		return "Pending";
	if (c->ready < c->desired || c->tb_ready < c->tb_desired)
		return "Scaling";
	return "Running";
}

/* A metav1.Condition; condition_upsert adds lastTransitionTime. */
static json_t *condition_new(const char *type, bool status, const char *reason, const char *message,
			     int64_t generation)
{
	json_auto_t *c = json_pack("{s:s,s:s,s:s,s:s}", "type", type, "status",
				   status ? "True" : "False", "reason", reason, "message", message);

	if (!c || (generation != 0 && set_int(c, "observedGeneration", generation) < 0))
		return NULL;
	return TAKE_PTR(c);
}

/* Upserts fresh into list by type (SetStatusCondition): an existing condition keeps its
 * lastTransitionTime unless the status value flips; a new one gets now. Takes fresh. */
static int condition_upsert(json_t *list, json_t *fresh, const char *now)
{
	json_auto_t *c = fresh;
	const char *type = json_string_value(json_object_get(c, "type"));
	const char *status = json_string_value(json_object_get(c, "status"));
	const char *ltt = now;
	size_t i;
	json_t *old;

	json_array_foreach (list, i, old) {
		if (!streq_ptr(json_string_value(json_object_get(old, "type")), type))
			continue;
		if (streq_ptr(json_string_value(json_object_get(old, "status")), status) &&
		    json_is_string(json_object_get(old, "lastTransitionTime")))
			ltt = json_string_value(json_object_get(old, "lastTransitionTime"));
		break;
	}
	if (json_object_set_new(c, "lastTransitionTime", json_string(ltt)) < 0)
		return -ENOMEM;
	if (i < json_array_size(list))
		return json_array_set_new(list, i, TAKE_PTR(c)) < 0 ? -ENOMEM : 0;
	return json_array_append_new(list, TAKE_PTR(c)) < 0 ? -ENOMEM : 0;
}

static int build_conditions(const struct cs *cs, const struct counts *c, const char *phase,
			    uint64_t now_usec, json_t **ret)
{
	const json_t *old = cs->status ? json_object_get(cs->status, "conditions") : NULL;
	json_auto_t *list = json_array();
	bool ready = c->ready == c->desired && c->desired > 0 && c->tb_ready == c->tb_desired;
	bool progressing = streq(phase, "Pending") || streq(phase, "Scaling");
	char now[KUBE_TIME_MAX], message[128];
	const json_t *e;
	size_t i;
	int r;

	if (!list)
		return -ENOMEM;
	/* Other writers' conditions stay; entries that are not objects cannot be conditions. */
	json_array_foreach (old, i, e)
		if (json_is_object(e) && json_array_append_new(list, json_deep_copy(e)) < 0)
			return -ENOMEM;
	kube_time_format(now_usec, false, now);
	snprintf(message, sizeof message, "%lld/%lld agents ready, %lld/%lld toolboxes ready",
		 (long long)c->ready, (long long)c->desired, (long long)c->tb_ready,
		 (long long)c->tb_desired);
	r = condition_upsert(list,
			     condition_new(CONDITION_READY, ready,
					   ready ? "AllAgentsReady" : "AgentsNotReady", message,
					   cs->generation),
			     now);
	if (r >= 0)
		r = condition_upsert(list,
				     condition_new(CONDITION_PROGRESSING, progressing,
						   progressing ? "Reconciling" : "Stable", phase,
						   cs->generation),
				     now);
	if (r < 0)
		return r;
	*ret = TAKE_PTR(list);
	return 0;
}

/* Lists are omitempty; takes v. */
static int set_list(json_t *o, const char *key, json_t *v)
{
	if (json_array_size(v) == 0) {
		json_decref(v);
		return 0;
	}
	return json_object_set_new(o, key, v) < 0 ? -ENOMEM : 0;
}

int cs_status_build(const struct cs *cs, const struct cs_pods *pods, const char *phase,
		    uint64_t now_usec, json_t **ret)
{
	json_auto_t *st = json_object(), *agents = NULL, *toolboxes = NULL, *conditions = NULL;
	bool v1 = cs->api != CS_API_LEGACY;
	struct counts c = { .desired = 1 + (int64_t)cs->agent.replicas,
			    .tb_desired = (int64_t)cs->n_toolboxes };
	int r;

	if (!st)
		return -ENOMEM;
	r = build_agents(pods, &c, &agents);
	if (r >= 0)
		r = build_toolboxes(pods, &c, &toolboxes);
	if (r < 0)
		return r;
	phase = isempty(phase) ? phase_derive(pods, &c) : phase;
	if (v1 && cs->generation != 0)
		r = set_int(st, "observedGeneration", cs->generation);
	if (r >= 0)
		r = set_string(st, "phase", phase);
	if (r >= 0)
		r = set_int(st, "readyAgents", c.ready);
	if (r >= 0)
		r = set_int(st, "desiredAgents", c.desired);
	if (r >= 0 && v1)
		r = set_int(st, "readyToolboxes", c.tb_ready);
	if (r >= 0 && v1)
		r = set_int(st, "desiredToolboxes", c.tb_desired);
	if (r >= 0)
		r = set_list(st, "agents", TAKE_PTR(agents));
	if (r >= 0)
		r = set_list(st, "toolboxes", TAKE_PTR(toolboxes));
	if (r >= 0 && v1) {
		r = build_conditions(cs, &c, phase, now_usec, &conditions);
		if (r >= 0)
			r = set_list(st, "conditions", TAKE_PTR(conditions));
	}
	if (r < 0)
		return r;
	*ret = TAKE_PTR(st);
	return 0;
}

int cs_status_patch(const struct cs *cs, const json_t *new_status, json_t **ret)
{
	json_auto_t *none = NULL, *patch = NULL;
	json_t *diff = NULL;
	const json_t *old = cs->status;
	int r;

	if (!json_is_object(new_status))
		return -EINVAL;
	if (!old) {
		old = none = json_object();
		if (!none)
			return -ENOMEM;
	}
	r = json_merge_diff(old, new_status, &diff);
	if (r < 0)
		return r;
	if (diff) {
		patch = json_object();
		/* set_new takes diff even when it fails */
		if (!patch) {
			json_decref(diff);
			return -ENOMEM;
		}
		if (json_object_set_new(patch, "status", diff) < 0)
			return -ENOMEM;
	}
	*ret = TAKE_PTR(patch);
	return 0;
}
