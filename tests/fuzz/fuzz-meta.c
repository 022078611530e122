/* Fuzz the annotation contract on arbitrary JSON: whatever the bytes, reading the spec,
 * defaults, VM resources, pool, owner deployment and the runtime writers must neither crash
 * nor leak, and a failed parse must come with its message. */
#include <errno.h>
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>

#include "cocoon/meta.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct meta_vm_spec spec;
	struct meta_vm_resources res;
	json_t *pod, *patch;
	char *error = NULL, *s = NULL;
	int r;

	pod = json_loadb((const char *)data, size, 0, NULL);
	if (!pod)
		return 0;
	r = meta_vm_spec_from_pod(pod, &spec, &error);
	if (r == -EINVAL && !error)
		abort();
	free(error);
	error = NULL;
	if (r == 0) {
		if (meta_vm_spec_apply_defaults(&spec) == 0 && (!spec.storage || !spec.mode))
			abort();
		if (meta_pod_vm_resources(pod, spec.os, &res, &error) == -EINVAL && !error)
			abort();
		free(error);
		(void)meta_should_snapshot(spec.snapshot_policy, spec.vm_name);
		(void)meta_connection_type(spec.os, spec.vnc_port, spec.conn_type);
		if (spec.vm_name && meta_main_agent_vm_name(spec.vm_name, &s) == 0)
			free(s);
		if (meta_runtime_patch(spec.vm_id, spec.ip, spec.legacy, &patch) == 0)
			json_decref(patch);
		(void)meta_pod_set_runtime(pod, spec.vm_id, spec.ip, spec.legacy);
		meta_vm_spec_done(&spec);
	}
	if (!meta_pod_pool(pod))
		abort();
	if (meta_pod_owner_deployment(pod, &s) == 0)
		free(s);
	(void)meta_pod_tolerates_cocoon(pod);
	(void)meta_pod_is_windows_nocase(pod);
	(void)meta_pod_is_windows_exact(pod);
	json_decref(pod);
	return 0;
}
