/* The pod annotation and label contract shared by vkd, operatord and webhookd
 * (spec/CONTRACT.md §1; keys from vk-cocoon.md §1.1 and operator-webhook.md §1.4).
 *
 * Speak the current contract, accept the legacy one: every spec key is read under its
 * canonical name (cocoonset.cocoonstack.io/…, vm.cocoonstack.io/…) and under its legacy
 * cocoon.cis/… alias; the canonical key wins when both are present, and an empty value
 * counts as absent. Pods that carry legacy keys get their runtime annotations written
 * under both names so old tooling keeps working.
 *
 * Unlike the original, which took every value verbatim, enumerated values are validated:
 * a bad one is an error naming the annotation and the value, so the caller can refuse the
 * pod and say why. Pods are jansson trees of core/v1 Pod objects as the apiserver returns
 * them. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

/* API group of the CRDs, current and legacy. */
#define META_API_VERSION        "cocoonset.cocoonstack.io/v1"
#define META_LEGACY_API_VERSION "cocoon.cis/v1alpha1"
#define META_KIND_COCOONSET     "CocoonSet"

/* Pod labels (set by the operator). */
#define META_LABEL_COCOONSET          "cocoonset.cocoonstack.io/name"
#define META_LABEL_ROLE               "cocoonset.cocoonstack.io/role"
#define META_LABEL_SLOT               "cocoonset.cocoonstack.io/slot"
#define META_LABEL_POOL               "cocoonstack.io/pool" /* also a node label and nodeSelector */
#define META_LABEL_SNAPSHOT_CPU_CLASS "cocoonstack.io/snapshot-cpu-class"
#define META_LABEL_APP_NAME           "app.kubernetes.io/name"
#define META_LABEL_MANAGED_BY         "app.kubernetes.io/managed-by"
#define META_LEGACY_LABEL_COCOONSET   "cocoon.cis/cocoonset"
#define META_LEGACY_LABEL_ROLE        "cocoon.cis/role"
#define META_LEGACY_LABEL_SLOT        "cocoon.cis/slot"

/* Spec annotations written by the operator (cocoonset group). */
#define META_ANN_MODE            "cocoonset.cocoonstack.io/mode"
#define META_ANN_IMAGE           "cocoonset.cocoonstack.io/image"
#define META_ANN_STORAGE         "cocoonset.cocoonstack.io/storage"
#define META_ANN_OS              "cocoonset.cocoonstack.io/os"
#define META_ANN_SNAPSHOT_POLICY "cocoonset.cocoonstack.io/snapshot-policy"
#define META_ANN_NETWORK         "cocoonset.cocoonstack.io/network"
#define META_ANN_MANAGED         "cocoonset.cocoonstack.io/managed"
#define META_ANN_FORCE_PULL      "cocoonset.cocoonstack.io/force-pull"
#define META_ANN_GENERATION      "cocoonset.cocoonstack.io/generation"
#define META_ANN_DEAD_LETTER     "cocoonset.cocoonstack.io/dead-letter"
/* On the CocoonSet object, not on pods. */
#define META_ANN_HIBERNATED_ON_NODE "cocoonset.cocoonstack.io/hibernated-on-node"
#define META_ANN_REBUILD_HISTORY    "cocoonset.cocoonstack.io/rebuild-history"
#define META_ANN_DELETE_VM_NAMES    "cocoonset.cocoonstack.io/delete-vm-names"

/* VM annotations (vm group). */
#define META_ANN_VM_NAME                 "vm.cocoonstack.io/name"
#define META_ANN_FORK_FROM               "vm.cocoonstack.io/fork-from"
#define META_ANN_CONN_TYPE               "vm.cocoonstack.io/conn-type"
#define META_ANN_BACKEND                 "vm.cocoonstack.io/backend"
#define META_ANN_NO_DIRECT_IO            "vm.cocoonstack.io/no-direct-io"
#define META_ANN_PROBE_PORT              "vm.cocoonstack.io/probe-port"
#define META_ANN_VNC_PORT                "vm.cocoonstack.io/vnc-port"
#define META_ANN_HIBERNATE               "vm.cocoonstack.io/hibernate"
#define META_ANN_RESTORE_FROM_HIBERNATE  "vm.cocoonstack.io/restore-from-hibernate"
#define META_ANN_KEEP_SNAPSHOT_ON_DELETE "vm.cocoonstack.io/keep-snapshot-on-delete"
#define META_ANN_POST_CLONE_HINT         "vm.cocoonstack.io/post-clone-hint"
/* Written by vkd. */
#define META_ANN_VM_ID                         "vm.cocoonstack.io/id"
#define META_ANN_IP                            "vm.cocoonstack.io/ip"
#define META_ANN_LIFECYCLE_STATE               "vm.cocoonstack.io/lifecycle-state"
#define META_ANN_LIFECYCLE_OBSERVED_GENERATION "vm.cocoonstack.io/lifecycle-observed-generation"
#define META_ANN_LIFECYCLE_STATE_MESSAGE       "vm.cocoonstack.io/lifecycle-state-message"

/* Legacy aliases (G1, cocoon.cis). */
#define META_LEGACY_ANN_MODE            "cocoon.cis/mode"
#define META_LEGACY_ANN_IMAGE           "cocoon.cis/image"
#define META_LEGACY_ANN_OS              "cocoon.cis/os"
#define META_LEGACY_ANN_STORAGE         "cocoon.cis/storage"
#define META_LEGACY_ANN_HIBERNATE       "cocoon.cis/hibernate"
#define META_LEGACY_ANN_VM_NAME         "cocoon.cis/vm-name"
#define META_LEGACY_ANN_FORK_FROM       "cocoon.cis/fork-from"
#define META_LEGACY_ANN_SNAPSHOT_POLICY "cocoon.cis/snapshot-policy"
#define META_LEGACY_ANN_VM_ID           "cocoon.cis/vm-id"
#define META_LEGACY_ANN_IP              "cocoon.cis/ip"
#define META_LEGACY_ANN_VNC_PORT        "cocoon.cis/vnc-port"
#define META_LEGACY_ANN_MANAGED         "cocoon.cis/managed"

#define META_ROLE_MAIN      "main"
#define META_ROLE_SUB_AGENT "sub-agent"
#define META_ROLE_TOOLBOX   "toolbox"

/* Epoch tags: `latest` is pushed at delete time, `hibernate` by hibernation. */
#define META_TAG_LATEST    "latest"
#define META_TAG_HIBERNATE "hibernate"

#define META_DEFAULT_POOL "default"
/* A pod is a cocoon pod when it tolerates this key (operator, value, effect ignored). */
#define META_TOLERATION_KEY "virtual-kubelet.io/provider"

/* vm.cocoonstack.io/lifecycle-state values (lowercase on the wire). */
#define META_LIFECYCLE_CREATING    "creating"
#define META_LIFECYCLE_READY       "ready"
#define META_LIFECYCLE_HIBERNATING "hibernating"
#define META_LIFECYCLE_HIBERNATED  "hibernated"
#define META_LIFECYCLE_FAILED      "failed"

#define META_CONN_SSH "ssh"
#define META_CONN_RDP "rdp"
#define META_CONN_VNC "vnc"
#define META_CONN_ADB "adb"

#define META_DEFAULT_STORAGE_LINUX   "100G"
#define META_DEFAULT_STORAGE_WINDOWS "15G"
#define META_WINDOWS_DEFAULT_CPU     2
#define META_WINDOWS_DEFAULT_MEMORY  (INT64_C(4) << 30) /* 4Gi */

/* A cocoon VM name: ^[a-zA-Z0-9][a-zA-Z0-9._-]{0,62}$ */
#define META_VM_NAME_MAX 63

enum meta_mode {
	META_MODE_UNSET,
	META_MODE_CLONE,  /* ensure the snapshot is local (pull from Epoch), then clone */
	META_MODE_RUN,    /* boot from a cloud image */
	META_MODE_ADOPT,  /* attach to an existing cocoon VM named by the VM name */
	META_MODE_STATIC, /* track an external VM by its pre-assigned id and IP */
};

enum meta_os {
	META_OS_UNSET,
	META_OS_LINUX,
	META_OS_WINDOWS,
	META_OS_ANDROID,
};

enum meta_snapshot_policy {
	META_SNAPSHOT_UNSET,
	META_SNAPSHOT_ALWAYS,
	META_SNAPSHOT_MAIN_ONLY,
	META_SNAPSHOT_NEVER,
};

/* Everything the annotations say about a pod's VM (CONTRACT.md §1). Strings are owned and
 * NULL when absent; booleans are true only for the exact value "true". */
struct meta_vm_spec {
	enum meta_mode mode;
	enum meta_os os;
	enum meta_snapshot_policy snapshot_policy;
	char *image;
	char *storage; /* as written; a positive quantity */
	char *vm_name;
	char *fork_from;
	char *network;
	char *backend;
	char *conn_type;
	char *vm_id;
	char *ip;
	char *lifecycle_state;
	uint16_t probe_port; /* 0: ICMP reachability instead of TCP */
	uint16_t vnc_port;   /* 0: none */
	bool hibernate;
	bool managed;
	bool force_pull;
	bool no_direct_io;
	bool restore_from_hibernate;
	bool keep_snapshot_on_delete;
	int64_t generation;                    /* missing or unparsable: 0 */
	int64_t lifecycle_observed_generation; /* missing or unparsable: 0 */
	bool legacy; /* the pod carries at least one non-empty cocoon.cis/ annotation */
};

/* Reads the spec from a pod. A pod without metadata or annotations yields an empty spec.
 * On a bad value returns -EINVAL and, when ret_error is not NULL, an allocated message
 * such as:
 *   invalid annotation cocoonset.cocoonstack.io/mode="fork": expected clone, run, adopt or static
 * -ENOMEM on allocation failure. *ret is written only on success; release it with
 * meta_vm_spec_done(). */
int meta_vm_spec_from_pod(const json_t *pod, struct meta_vm_spec *ret, char **ret_error);
/* Fills what the consumer would otherwise assume: mode clone, os linux, snapshot policy
 * always, storage 100G (15G for Windows). -ENOMEM leaves the spec unchanged. */
int meta_vm_spec_apply_defaults(struct meta_vm_spec *spec);
/* Frees the strings and zeroes the struct; for _cleanup_ locals too. */
void meta_vm_spec_done(struct meta_vm_spec *spec);

const char *meta_mode_to_string(enum meta_mode m);
const char *meta_os_to_string(enum meta_os os);
const char *meta_snapshot_policy_to_string(enum meta_snapshot_policy p);

/* CPU and memory the VM is created with, from containers[0] (per resource: requests when
 * present and non-zero, else limits). */
struct meta_vm_resources {
	int64_t cpus;   /* ceil(milliCPU / 1000); 0: the runtime's default */
	int64_t memory; /* bytes; 0: the runtime's default */
};

/* Windows guests get 2 vCPUs and 4Gi when the pod sets neither. A malformed or negative
 * quantity is -EINVAL with a message naming the field, e.g.
 *   invalid spec.containers[0].resources.limits.memory="4GB": expected a quantity such as 4Gi */
int meta_pod_vm_resources(const json_t *pod, enum meta_os os, struct meta_vm_resources *ret,
			  char **ret_error);

/* Sets the runtime annotations on a pod object in place: vm.cocoonstack.io/{id,ip}, and
 * cocoon.cis/{vm-id,ip} too when legacy is true. NULL or "" removes the key (a hibernated
 * pod has no VM). Creates metadata.annotations when missing. -EINVAL when the pod is not
 * an object or its metadata/annotations are not objects. */
int meta_pod_set_runtime(json_t *pod, const char *vm_id, const char *ip, bool legacy);
/* The same change as a JSON merge patch (RFC 7386) for PATCH
 * application/merge-patch+json: {"metadata":{"annotations":{…}}}, removals as null. */
int meta_runtime_patch(const char *vm_id, const char *ip, bool legacy, json_t **ret);

/* Naming (vk-cocoon.md §1.3): "vk-<ns>-<deployment>-<slot>" and "vk-<ns>-<pod>". */
int meta_vm_name_for_deployment(const char *ns, const char *deployment, int64_t slot, char **ret);
int meta_vm_name_for_pod(const char *ns, const char *pod, char **ret);
/* The integer after the last '-' by Go's strconv.Atoi rules, else -1:
 * "a-007" → 7, "a-+3" → 3, "demo" → -1, "demo-x" → -1. Misreads toolbox names that end in
 * a number ("vk-ns-cs-db-2" → 2); prefer meta_agent_slot() when the CocoonSet is known. */
int64_t meta_vm_name_slot(const char *vm_name);
/* ExtractAgentSlot: the slot when vm_name is "vk-<ns>-<cocoonset>-<n>" with n a
 * non-negative integer and no further '-', else -1 (a toolbox). */
int64_t meta_agent_slot(const char *ns, const char *cocoonset, const char *vm_name);
/* The slot-0 VM of the same group: the last segment replaced by "0"; a name without a
 * slot is returned unchanged. Always allocates. */
int meta_main_agent_vm_name(const char *vm_name, char **ret);
/* InferRoleFromVMName: slot 0 → "main", anything else (including no slot) → "sub-agent". */
const char *meta_role_from_vm_name(const char *vm_name);
/* InferRoleFromAgentSlot: < 0 → "toolbox", 0 → "main", else "sub-agent". */
const char *meta_role_from_agent_slot(int64_t slot);
/* True for ^[a-zA-Z0-9][a-zA-Z0-9._-]{0,62}$, what cocoon accepts. */
bool meta_vm_name_is_valid(const char *name);

/* The Deployment owning a pod: the first ownerReference of kind ReplicaSet whose name has a
 * '-' after its first character, cut at the last '-' (the pod-template hash).
 * -ENOENT when there is none. */
int meta_pod_owner_deployment(const json_t *pod, char **ret);
/* "ssh", "rdp", "vnc" or "adb": a non-empty override wins, then a VNC port, then the OS. */
const char *meta_connection_type(enum meta_os os, bool has_vnc_port, const char *override);
/* "<ns>/<name>", the key of every per-pod table. */
int meta_pod_key(const char *ns, const char *name, char **ret);
/* The OS annotation (canonical, else legacy) equals "windows" ignoring case: IsWindowsPod. */
bool meta_pod_is_windows_nocase(const json_t *pod);
/* The same annotation compared exactly, as vk's `spec.OS == "windows"` checks do. */
bool meta_pod_is_windows_exact(const json_t *pod);
/* spec.nodeSelector, then the label, then the annotation cocoonstack.io/pool, then
 * "default"; empty values are skipped. Borrowed from the pod or static. */
const char *meta_pod_pool(const json_t *pod);
/* Some spec.tolerations[] entry has key virtual-kubelet.io/provider. */
bool meta_pod_tolerates_cocoon(const json_t *pod);
/* ShouldSnapshotVM: never → false; main-only → only slot 0 (meta_vm_name_slot);
 * always or unset → true. */
bool meta_should_snapshot(enum meta_snapshot_policy policy, const char *vm_name);
