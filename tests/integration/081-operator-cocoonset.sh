#!/usr/bin/env bash
# operatord reconciles a v1 CocoonSet (operator-webhook.md §2.3–2.9, §2.13) against kubesim,
# the real kubectl and Debian's docker-registry, the test playing vk-cocoon: the main agent
# comes first and the sub-agents only once it is Ready, bound to its node and forked from its
# VM, with the toolbox; `kubectl get` shows Running 3/3; scaling up adds demo-3, scaling down to
# one deletes demo-2 and demo-3; a new image recreates the main (new uid, PodDrifted event); at
# rest operatord writes nothing; suspend annotates every pod and stays Suspending until every
# VM reported hibernated for this generation AND its :hibernate tag is in the registry;
# unsuspend removes the annotations; deleting the CocoonSet deletes the pods, waits until they
# are gone, then drops the :hibernate tags (and :latest of the sub-agents under main-only),
# removes the finalizer and the object goes.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/epoch-lib.sh"
lib_init
. "$(dirname "$0")/operator-lib.sh"
op_init
op_cluster
op_start op LEADER_ELECT=false
OP=$OP_PID
MPORT=$OP_MPORT

writes() { op_metric "$MPORT" cocoon_operator_api_writes_total; }
phase() { jp "$CS" demo '{.status.phase}'; }
# tags: + or - for each of the three VMs' :hibernate tag
tags() {
	local p
	for p in demo-0 demo-1 demo-tools; do
		if has_tag "vk-default-$p" hibernate; then printf +; else printf -; fi
	done
}
# row: `kubectl get cs demo` as a user types it (deploy/crds gives the short name cs to the v1
# kind only), blanks squeezed, without AGE
row() { k get cs demo --no-headers | awk '{ $1 = $1; print $1, $2, $3, $4 }'; }

cat >"$TEST_TMP/cs.yaml" <<'Y'
apiVersion: cocoonset.cocoonstack.io/v1
kind: CocoonSet
metadata: {name: demo, namespace: default}
spec:
  snapshotPolicy: main-only
  agent:
    image: ubuntu-dev-base
    replicas: 2
    storage: 20Gi
    resources: {limits: {cpu: "2", memory: 4Gi}}
  toolboxes:
    - {name: tools, image: debian-tools, mode: run}
Y

echo "== the main agent first"
k apply -f "$TEST_TMP/cs.yaml" >/dev/null
wait_phase "$CS" demo Pending
assert_eq demo-0 "$(pods demo)" "pods while the main is not Ready"
assert_eq "cocoonset.cocoonstack.io/finalizer" "$(jp "$CS" demo '{.metadata.finalizers[*]}')" "finalizer"
assert_eq "main vk-default-demo-0 ubuntu-dev-base" \
	"$(jp pod demo-0 '{.metadata.labels.cocoonset\.cocoonstack\.io/role} {.metadata.annotations.vm\.cocoonstack\.io/name} {.metadata.annotations.cocoonset\.cocoonstack\.io/image}')" \
	"main pod"
assert_eq "CocoonSet demo true" \
	"$(jp pod demo-0 '{.metadata.ownerReferences[0].kind} {.metadata.ownerReferences[0].name} {.metadata.ownerReferences[0].controller}')" \
	"main pod's controller"
bound() { [ -n "$(jp pod "$1" '{.spec.nodeName}')" ]; }
wait_for 10 "demo-0 to be scheduled" bound demo-0
node=$(jp pod demo-0 '{.spec.nodeName}')
case $node in vk-a | vk-b) ;; *) fail "kubesim's scheduler did not bind demo-0 to a pool node: '$node'" ;; esac
holds 15 "no sub-agent or toolbox before the main is Ready" demo-0 "$MPORT" cocoonset pods demo

echo "== main Ready: sub-agents on its node, forked from its VM, and the toolbox"
play_node_ready demo-0
wait_eq 15 "sub-agents and toolbox" "demo-0 demo-1 demo-2 demo-tools" pods demo
for p in demo-1 demo-2; do
	assert_eq "$node vk-default-demo-0 sub-agent" \
		"$(jp pod $p '{.spec.nodeName} {.metadata.annotations.vm\.cocoonstack\.io/fork-from} {.metadata.labels.cocoonset\.cocoonstack\.io/role}')" \
		"$p placement"
done
assert_eq "toolbox run debian-tools" \
	"$(jp pod demo-tools '{.metadata.labels.cocoonset\.cocoonstack\.io/role} {.metadata.annotations.cocoonset\.cocoonstack\.io/mode} {.metadata.annotations.cocoonset\.cocoonstack\.io/image}')" \
	"toolbox pod"
wait_phase "$CS" demo Scaling
play_node_ready demo-1 demo-2 demo-tools
wait_phase "$CS" demo Running
assert_eq "demo Running 3 3" "$(row)" "kubectl get cs"
assert_eq "NAME PHASE READY DESIRED AGE" "$(k get cs | awk 'NR == 1 { $1 = $1; print }')" "kubectl get cs header"
assert_eq "True AllAgentsReady" "$(jp "$CS" demo '{.status.conditions[?(@.type=="Ready")].status} {.status.conditions[?(@.type=="Ready")].reason}')" \
	"Ready condition"
assert_eq "demo-0 demo-1 demo-2" "$(jp "$CS" demo '{.status.agents[*].podName}')" "status.agents"
assert_eq "vm-demo-1" "$(jp "$CS" demo '{.status.agents[?(@.slot==1)].vmID}')" "status.agents[1].vmID"

echo "== scale up and down"
k patch "$CS" demo --type merge -p '{"spec":{"agent":{"replicas":3}}}' >/dev/null
wait_eq 15 "demo-3" "demo-0 demo-1 demo-2 demo-3 demo-tools" live_pods demo
assert_eq "$node" "$(jp pod demo-3 '{.spec.nodeName}')" "demo-3 on the main's node"
play_node_ready demo-3
wait_eq 15 "Running 4/4" "demo Running 4 4" row
k patch "$CS" demo --type merge -p '{"spec":{"agent":{"replicas":1}}}' >/dev/null
wait_eq 15 "demo-2 and demo-3 to be deleted" "demo-2 demo-3" terminating demo
assert_eq "demo-0 demo-1 demo-tools" "$(live_pods demo)" "pods kept on scale-down"
reap demo-2 demo-3
wait_eq 15 "Running 2/2" "demo Running 2 2" row
assert_eq "demo-0 demo-1 demo-tools" "$(pods demo)" "pods after scale-down"

echo "== a new image recreates the main"
uid=$(pod_uid demo-0)
k patch "$CS" demo --type merge -p '{"spec":{"agent":{"image":"ubuntu-dev-base-v2"}}}' >/dev/null
wait_eq 15 "demo-0 to be deleted" demo-0 terminating demo
wait_for 10 "a PodDrifted event" has_events demo PodDrifted
assert_contains "$(events demo PodDrifted)" "Normal PodDrifted pod demo-0: " "PodDrifted event"
reap demo-0
new_main() { local u; u=$(pod_uid demo-0 2>/dev/null) && [ -n "$u" ] && [ "$u" != "$uid" ]; }
wait_for 15 "a new demo-0" new_main
assert_eq ubuntu-dev-base-v2 "$(pod_ann demo-0 cocoonset.cocoonstack.io/image)" "new main's image"
play_node_ready demo-0
# the sub-agent's image drifted too: it is recreated once the new main is Ready
wait_eq 15 "demo-1 to be deleted" demo-1 terminating demo
reap demo-1
wait_eq 15 "a new demo-1" "demo-0 demo-1 demo-tools" live_pods demo
assert_eq ubuntu-dev-base-v2 "$(pod_ann demo-1 cocoonset.cocoonstack.io/image)" "new sub-agent's image"
play_node_ready demo-1
wait_eq 15 "Running 2/2" "demo Running 2 2" row

echo "== at rest, operatord writes nothing"
at_rest=$(writes)
sleep 3 # the observation window itself: nothing may happen in it
assert_eq "$at_rest" "$(writes)" "cocoon_operator_api_writes_total over 3 s at rest"

echo "== suspend"
gen=$(jp "$CS" demo '{.metadata.generation}')
k patch "$CS" demo --type merge -p '{"spec":{"suspend":true}}' >/dev/null
gen=$((gen + 1))
assert_eq "$gen" "$(jp "$CS" demo '{.metadata.generation}')" "generation after suspend"
for p in demo-0 demo-1 demo-tools; do
	wait_eq 15 "$p to be annotated hibernate" true pod_ann $p vm.cocoonstack.io/hibernate
done
wait_phase "$CS" demo Suspending
for p in demo-0 demo-1 demo-tools; do
	assert_eq "$gen" "$(pod_ann $p cocoonset.cocoonstack.io/generation)" "$p generation stamp"
done
# vk-cocoon reports hibernated, but for an older generation: not enough
for p in demo-0 demo-1 demo-tools; do play_lifecycle $p hibernated $((gen - 1)); done
for p in demo-0 demo-1 demo-tools; do push_tag "vk-default-$p" hibernate; done
holds 15 "phase with a stale lifecycle generation" Suspending "$MPORT" cocoonset phase
# this generation, but one tag is missing
drop_tag vk-default-demo-tools hibernate
for p in demo-0 demo-1 demo-tools; do play_lifecycle $p hibernated; done
holds 15 "phase with demo-tools' tag missing" Suspending "$MPORT" cocoonset phase
push_tag vk-default-demo-tools hibernate
wait_phase "$CS" demo Suspended 15
assert_eq "demo Suspended" "$(row | cut -d' ' -f1-2)" "kubectl get cs while suspended"

echo "== unsuspend"
k patch "$CS" demo --type merge -p '{"spec":{"suspend":false}}' >/dev/null
for p in demo-0 demo-1 demo-tools; do
	wait_eq 15 "$p's hibernate annotation to go" "" pod_ann $p vm.cocoonstack.io/hibernate
done
for p in demo-0 demo-1 demo-tools; do play_lifecycle $p ready; done
wait_phase "$CS" demo Running
assert_eq "demo-0 demo-1 demo-tools" "$(pods demo)" "the same pods after unsuspend"

echo "== delete"
push_tag vk-default-demo-0 latest
push_tag vk-default-demo-1 latest
k delete "$CS" demo --wait=false >/dev/null
wait_eq 15 "every pod to be deleted" "demo-0 demo-1 demo-tools" terminating demo
assert_eq "vk-default-demo-0,vk-default-demo-1,vk-default-demo-tools" \
	"$(jp "$CS" demo '{.metadata.annotations.cocoonset\.cocoonstack\.io/delete-vm-names}')" \
	"delete-vm-names stash"
# vk-cocoon may still be pushing while the pods terminate: the tags stay until they are gone
holds 15 "the :hibernate tags of demo-0, demo-1, demo-tools while the pods remain" +++ "$MPORT" \
	cocoonset tags
assert_eq "cocoonset.cocoonstack.io/finalizer" "$(jp "$CS" demo '{.metadata.finalizers[*]}')" \
	"finalizer while pods remain"
reap
gone() { ! k get "$CS" demo >/dev/null 2>&1; }
wait_for 15 "the CocoonSet to go" gone
for p in demo-0 demo-1 demo-tools; do
	if has_tag "vk-default-$p" hibernate; then fail "vk-default-$p:hibernate left in the registry"; fi
done
if has_tag vk-default-demo-1 latest; then fail "vk-default-demo-1:latest kept under snapshotPolicy main-only"; fi
has_tag vk-default-demo-0 latest || fail "vk-default-demo-0:latest deleted under snapshotPolicy main-only"
assert_eq "" "$(pods demo)" "pods after delete"

op_stop "$OP" "$TEST_TMP/op.log"
op_logs_clean
echo "PASS: CocoonSet create, scale, drift, rest, suspend, unsuspend and delete"
