/* Fuzz operatord's CocoonSet decoder and the pod model built on it: whatever the bytes,
 * cs_parse must neither crash nor leak, and a refusal must come with its message. For a set
 * that parses, every pod pod_build makes (main, a sub-agent, each toolbox) must decode and
 * must not drift from the set it was built from: a drift there would be an endless
 * delete-and-recreate loop. The input is also read as a pod, so pod decoding, drift and
 * classification see arbitrary annotations, resources and conditions too. */
#include <errno.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "../../operatord/operatord.h"

#define MAX_TOOLBOXES 8

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_built(const struct cs *cs, const struct pod_build_options *o, json_t *pods)
{
	json_t *pod = NULL;
	struct cs_pod p;
	char *reason = NULL;
	bool drifted = true;

	if (pod_build(cs, o, &pod) < 0)
		return;
	if (cs_pod_from_json(pod, &p) < 0)
		abort();
	if (pod_drifted(cs, &p, o->toolbox, &drifted, &reason) == 0 && drifted) {
		fprintf(stderr, "a freshly built pod drifted: %s\n", reason);
		abort();
	}
	free(reason);
	json_array_append_new(pods, pod);
}

/* The input as a pod of this set: decoding and drift must cope with anything. */
static void check_foreign(const struct cs *cs, const json_t *obj, json_t *pods)
{
	struct cs_pod p;
	struct cs_pods classified;
	char *reason = NULL;
	bool drifted;

	if (cs_pod_from_json(obj, &p) == 0) {
		const struct cs_toolbox *tb = p.toolbox ? cs_toolbox_find(cs, p.toolbox) : NULL;

		if (pod_drifted(cs, &p, tb, &drifted, &reason) == 0 && drifted && !reason)
			abort();
		free(reason);
	}
	json_array_append(pods, (json_t *)obj);
	if (cs_pods_classify(cs, pods, &classified) == 0) {
		if (classified.n_sub > classified.n_all ||
		    classified.n_toolboxes > classified.n_all)
			abort();
		for (size_t i = 1; i < classified.n_sub; i++)
			if (classified.sub[i - 1]->slot >= classified.sub[i]->slot)
				abort();
		cs_pods_done(&classified);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cs *cs = NULL;
	json_t *obj, *pods;
	char *error = NULL, *s;
	int r;

	obj = json_loadb((const char *)data, size, 0, NULL);
	if (!obj)
		return 0;
	r = cs_parse(obj, &cs, &error);
	if (r == -EINVAL && !error)
		abort();
	free(error);
	if (r < 0) {
		json_decref(obj);
		return 0;
	}
	pods = json_array();
	check_built(cs, &(struct pod_build_options){ .slot = 0, .preferred_node = "hint" }, pods);
	check_built(cs,
		    &(struct pod_build_options){ .slot = 1,
						 .fork_from = "vk-fuzz-0",
						 .node_name = "node-0",
						 .restore_from_hibernate = true },
		    pods);
	for (size_t i = 0; i < cs->n_toolboxes && i < MAX_TOOLBOXES; i++)
		check_built(cs, &(struct pod_build_options){ .toolbox = &cs->toolboxes[i] }, pods);
	check_foreign(cs, obj, pods);

	s = cs_agent_vm_name(cs, cs->agent.replicas);
	if (s && cs_vm_name_slot(cs, s) != cs->agent.replicas)
		abort();
	free(s);
	(void)cs_vm_name_slot(cs, json_string_value(json_object_get(obj, "kind")));
	json_decref(pods);
	cs_free(cs);
	json_decref(obj);
	return 0;
}
