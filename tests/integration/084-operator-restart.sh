#!/usr/bin/env bash
# operatord restarted in the middle of every flow converges from what the apiserver and the
# registry hold (operator-webhook.md §2.2: no state but the caches; §2.3–2.14), against
# kubesim, the real kubectl and Debian's docker-registry, the test playing vk-cocoon:
# - scale-up: SIGKILL the moment the first new sub-agent is stored; the next instance creates
#   the rest, no pod twice, none without the CocoonSet as controller;
# - CR hibernate: stopped (SIGTERM, exit 0) while Hibernating, vk reports while it is down,
#   the next instance sees Hibernated; killed while Waking, the next one finishes the wake;
# - suspend: killed while Suspending, vk reports while it is down, the next one sees Suspended;
# - delete: killed once the pods are terminating, they finish while it is down, the next one
#   drops the tags and the finalizer;
# - the legacy cocoon.cis CocoonSet sample reconciles to Running like v1, and a restart
#   leaves it as it is.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/epoch-lib.sh"
lib_init
. "$(dirname "$0")/operator-lib.sh"
op_init
op_cluster
CH=cocoonhibernations.cocoonset.cocoonstack.io
N=0
# start: a new operatord instance (op-1, op-2, …)
start() {
	N=$((N + 1))
	op_start "op-$N" LEADER_ELECT=false
}
row() { k get "$1" "$2" --no-headers | awk '{ $1 = $1; print $1, $2, $3, $4 }'; }
seq_pods() { for i in $(seq "$2" "$3"); do echo "$1-$i"; done | sort | xargs; }
tag_state() { if has_tag "$1" hibernate; then echo present; else echo absent; fi; }

start
k apply -f - >/dev/null <<'Y'
apiVersion: cocoonset.cocoonstack.io/v1
kind: CocoonSet
metadata: {name: demo, namespace: default}
spec:
  agent: {image: ubuntu-dev-base, replicas: 1}
Y
wait_eq 15 "demo-0" demo-0 pods demo
play_node_ready demo-0
wait_eq 15 "demo-1" "demo-0 demo-1" pods demo
play_node_ready demo-1
wait_eq 15 "Running 2/2" "demo Running 2 2" row "$CS" demo

echo "== scale-up, SIGKILL at the first new pod"
kill_on_create "$OP_PID" demo-2
k patch "$CS" demo --type merge -p '{"spec":{"agent":{"replicas":5}}}' >/dev/null
wait_killed "$OP_PID"
echo "   killed with $(($(pods demo | wc -w) - 2)) of 4 new sub-agents created"
start
wait_eq 15 "the sub-agents" "$(seq_pods demo 0 5)" pods demo
play_node_ready $(seq_pods demo 2 5)
wait_eq 15 "Running 6/6" "demo Running 6 6" row "$CS" demo
check_pods demo $(seq_pods demo 0 5)

echo "== CocoonHibernation: stopped while Hibernating, killed while Waking"
k apply -f "$LIB_ROOT/deploy/samples/cocoonhibernation-v1.yaml" >/dev/null
wait_phase "$CH" demo-0 Hibernating
wait_eq 10 "demo-0's hibernate annotation" true pod_ann demo-0 vm.cocoonstack.io/hibernate
op_stop "$OP_PID" "$OP_LOG"
push_tag vk-default-demo-0 hibernate
play_node_hibernated demo-0
start
wait_phase "$CH" demo-0 Hibernated
assert_eq "Normal Hibernated snapshot vk-default-demo-0 pushed to the registry" \
	"$(events demo-0 Hibernated)" "one Hibernated event across the restart"
k patch "$CH" demo-0 --type merge -p '{"spec":{"desire":"Wake"}}' >/dev/null
wait_phase "$CH" demo-0 Waking
wait_eq 10 "demo-0's hibernate annotation to go" "" pod_ann demo-0 vm.cocoonstack.io/hibernate
op_kill9 "$OP_PID"
play_node_ready demo-0
assert_eq present "$(tag_state vk-default-demo-0)" "the tag while nobody reconciles"
start
wait_phase "$CH" demo-0 Active
wait_eq 10 "vk-default-demo-0:hibernate to be deleted" absent tag_state vk-default-demo-0
k delete "$CH" demo-0 >/dev/null
wait_eq 15 "Running 6/6" "demo Running 6 6" row "$CS" demo

echo "== suspend, SIGKILL while Suspending"
k patch "$CS" demo --type merge -p '{"spec":{"suspend":true}}' >/dev/null
wait_phase "$CS" demo Suspending
for p in $(seq_pods demo 0 5); do
	wait_eq 10 "$p to be annotated hibernate" true pod_ann "$p" vm.cocoonstack.io/hibernate
done
op_kill9 "$OP_PID"
for p in $(seq_pods demo 0 5); do
	push_tag "vk-default-$p" hibernate
	play_lifecycle "$p" hibernated
done
start
wait_phase "$CS" demo Suspended
k patch "$CS" demo --type merge -p '{"spec":{"suspend":false}}' >/dev/null
for p in $(seq_pods demo 0 5); do
	wait_eq 10 "$p's hibernate annotation to go" "" pod_ann "$p" vm.cocoonstack.io/hibernate
	play_lifecycle "$p" ready
done
wait_phase "$CS" demo Running
check_pods demo $(seq_pods demo 0 5)

echo "== the legacy CocoonSet sample, across a restart"
node_make cocoon-pool # the legacy set's default node (spec.nodeName, §2.17)
k apply -f "$LIB_ROOT/deploy/samples/cocoonset-legacy.yaml" >/dev/null
wait_phase "$LCS" demo-legacy Pending
wait_eq 10 "demo-legacy-0 on node cocoon-pool" cocoon-pool jp pod demo-legacy-0 '{.spec.nodeName}'
assert_eq "cocoon.cis/v1alpha1 CocoonSet vk-default-demo-legacy-0 ubuntu-dev-base" \
	"$(jp pod demo-legacy-0 '{.metadata.ownerReferences[0].apiVersion} {.metadata.ownerReferences[0].kind} {.metadata.annotations.vm\.cocoonstack\.io/name} {.metadata.annotations.cocoonset\.cocoonstack\.io/image}')" \
	"legacy main pod"
play_node_ready demo-legacy-0
wait_eq 15 "the legacy sub-agent and toolbox" "demo-legacy-0 demo-legacy-1 demo-legacy-windows" \
	pods demo-legacy
assert_eq "vk-default-demo-legacy-0 static" \
	"$(jp pod demo-legacy-1 '{.metadata.annotations.vm\.cocoonstack\.io/fork-from}') $(pod_ann demo-legacy-windows cocoonset.cocoonstack.io/mode)" \
	"legacy sub-agent fork and static toolbox"
play_node_ready demo-legacy-1 demo-legacy-windows
wait_eq 15 "legacy Running 2/2" "demo-legacy Running 2 2" row "$LCS" demo-legacy
uids=$(k get pods -o 'jsonpath={.items[*].metadata.uid}')
op_stop "$OP_PID" "$OP_LOG"
start
both_passed() { [ "$(op_metric "$OP_MPORT" 'cocoon_operator_reconcile_total{controller="cocoonset"')" -ge 2 ]; }
wait_for 15 "op-$N's passes over both CocoonSets" both_passed
assert_eq 0 "$(op_metric "$OP_MPORT" cocoon_operator_api_writes_total)" "op-$N's writes at rest"
op_stop "$OP_PID" "$OP_LOG"
assert_eq "$uids" "$(k get pods -o 'jsonpath={.items[*].metadata.uid}')" "pods after a restart at rest"
assert_eq "demo-legacy Running 2 2" "$(row "$LCS" demo-legacy)" "legacy CocoonSet after a restart"
start

echo "== delete, SIGKILL once the pods are terminating"
push_tag vk-default-demo-0 hibernate
k delete "$CS" demo --wait=false >/dev/null
wait_eq 15 "every pod to be terminating" "$(seq_pods demo 0 5)" terminating demo
op_kill9 "$OP_PID"
reap $(seq_pods demo 0 5)
assert_eq "cocoonset.cocoonstack.io/finalizer" "$(jp "$CS" demo '{.metadata.finalizers[*]}')" \
	"finalizer while nobody reconciles"
start
gone() { ! k get "$@" >/dev/null 2>&1; }
wait_for 15 "the CocoonSet to go" gone "$CS" demo
assert_eq absent "$(tag_state vk-default-demo-0)" "vk-default-demo-0:hibernate after the delete"
assert_eq "" "$(pods demo)" "pods of the deleted CocoonSet"
check_pods demo-legacy $(seq_pods demo-legacy 0 1) demo-legacy-windows

op_stop "$OP_PID" "$OP_LOG"
op_logs_clean
echo "PASS: restarts mid scale-up, hibernate, wake, suspend and delete converge; legacy CocoonSet"
