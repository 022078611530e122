#!/usr/bin/env bash
# operatord's hibernation reconciler (operator-webhook.md §2.14, §2.17) against kubesim, the
# real kubectl and Debian's docker-registry, the test playing vk-cocoon.
# CocoonHibernation v1 (the sample) on a CocoonSet's main pod: Hibernate annotates the pod and
# stays Hibernating until vk reports lifecycle hibernated AND the :hibernate tag is in the
# registry, then Hibernated with a Hibernated event and one duration sample; the CocoonSet
# leaves the annotation alone meanwhile; Wake removes the annotation and stays Waking until the
# VM runs again, then Active with the tag deleted; deleting the CR while Hibernated drops the
# tag (the last holder of the VM) and the finalizer.
# The legacy cocoon.cis Hibernation (the seed's quick start sample) on a plain pod: Pending
# until the pod exists, then the flat status (phase, message, vmName, lastTransitionTime,
# snapshotRef) through hibernate and wake. `kubectl get ch` and `kubectl get hib` columns.
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
CH=cocoonhibernations.cocoonset.cocoonstack.io
HIB=hibernations.cocoon.cis
VM=vk-default-demo-0
LVM=vk-default-demo-legacy-0

# row RESOURCE NAME [ARGS...]: the kubectl get line, blanks squeezed, without AGE
row() {
	local r=$1 n=$2
	shift 2
	k get "$r" "$n" --no-headers "$@" | awk '{ $1 = $1; $NF = ""; sub(/ $/, ""); print }'
}
header() { k get "$@" | awk 'NR == 1 { $1 = $1; print }'; }
ready() { jp "$CH" demo-0 '{.status.conditions[?(@.type=="Ready")].status}/{.status.conditions[?(@.type=="Ready")].reason}'; }
hib_count() { op_metric "$MPORT" "cocoon_operator_hibernate_phase_duration_seconds_count{result=\"$1\"}"; }
wake_count() { op_metric "$MPORT" "cocoon_operator_wake_phase_duration_seconds_count{result=\"$1\"}"; }
tag_state() { if has_tag "$1" hibernate; then echo present; else echo absent; fi; }

echo "== a CocoonSet main pod, Running"
k apply -f - >/dev/null <<'Y'
apiVersion: cocoonset.cocoonstack.io/v1
kind: CocoonSet
metadata: {name: demo, namespace: default}
spec:
  agent: {image: ubuntu-dev-base, replicas: 0}
Y
wait_eq 15 "demo-0" demo-0 pods demo
play_node_ready demo-0
wait_phase "$CS" demo Running

echo "== CocoonHibernation: Hibernate"
k apply -f "$LIB_ROOT/deploy/samples/cocoonhibernation-v1.yaml" >/dev/null
wait_phase "$CH" demo-0 Hibernating
assert_eq "cocoonhibernation.cocoonset.cocoonstack.io/finalizer" "$(jp "$CH" demo-0 '{.metadata.finalizers[*]}')" \
	"CocoonHibernation finalizer"
wait_eq 10 "demo-0's hibernate annotation" true pod_ann demo-0 vm.cocoonstack.io/hibernate
assert_eq "$VM" "$(jp "$CH" demo-0 '{.status.vmName}')" "status.vmName"
assert_eq "False/Pending" "$(ready)" "Ready condition while Hibernating"
assert_eq "NAME POD DESIRE PHASE AGE" "$(header ch)" "kubectl get ch header"
assert_eq "demo-0 demo-0 Hibernate Hibernating" "$(row ch demo-0)" "kubectl get ch"
# a tag alone proves nothing (it may be an old snapshot): vk must report hibernated
push_tag "$VM" hibernate
holds 15 "phase with the tag but no lifecycle report" Hibernating "$MPORT" hibernation \
	jp "$CH" demo-0 '{.status.phase}'
play_node_hibernated demo-0
wait_phase "$CH" demo-0 Hibernated
assert_eq "True/Done" "$(ready)" "Ready condition when Hibernated"
assert_eq "demo-0 demo-0 Hibernate Hibernated" "$(row ch demo-0)" "kubectl get ch"
assert_eq "Normal Hibernated snapshot $VM pushed to the registry" "$(events demo-0 Hibernated)" \
	"Hibernated event"
assert_eq 1 "$(hib_count ok)" "hibernate_phase_duration_seconds{result=ok} samples"
# the CocoonSet must not wake a pod a CR holds hibernated (§2.3 step 11)
wait_phase "$CS" demo Pending
holds 15 "the annotation while the CR holds the pod" true "$MPORT" cocoonset \
	pod_ann demo-0 vm.cocoonstack.io/hibernate
assert_eq 1 "$(hib_count ok)" "the exit is observed once"

echo "== CocoonHibernation: Wake"
k patch "$CH" demo-0 --type merge -p '{"spec":{"desire":"Wake"}}' >/dev/null
wait_phase "$CH" demo-0 Waking
wait_eq 10 "demo-0's hibernate annotation to go" "" pod_ann demo-0 vm.cocoonstack.io/hibernate
assert_eq present "$(tag_state "$VM")" "the tag while the VM is not running yet"
assert_eq "False/Pending" "$(ready)" "Ready condition while Waking"
play_node_ready demo-0
wait_phase "$CH" demo-0 Active
assert_eq "True/Done" "$(ready)" "Ready condition when Active"
wait_eq 10 "$VM:hibernate to be deleted" absent tag_state "$VM"
assert_eq "Normal WokenActive pod default/demo-0 is running" "$(events demo-0 WokenActive)" \
	"WokenActive event"
assert_eq 1 "$(wake_count ok)" "wake_phase_duration_seconds{result=ok} samples"
assert_eq "demo-0 demo-0 Wake Active" "$(row ch demo-0)" "kubectl get ch"

echo "== hibernate again, then delete the CR: the last holder drops the tag"
k patch "$CH" demo-0 --type merge -p '{"spec":{"desire":"Hibernate"}}' >/dev/null
wait_phase "$CH" demo-0 Hibernating
push_tag "$VM" hibernate
play_node_hibernated demo-0
wait_phase "$CH" demo-0 Hibernated
assert_eq 2 "$(hib_count ok)" "hibernate_phase_duration_seconds{result=ok} samples"
k delete "$CH" demo-0 --wait=false >/dev/null
gone() { ! k get "$@" >/dev/null 2>&1; }
wait_for 15 "the CocoonHibernation to go" gone "$CH" demo-0
assert_eq absent "$(tag_state "$VM")" "$VM:hibernate after its last CR went"

echo "== legacy Hibernation (the quick start sample) on a plain pod"
k apply -f "$LIB_ROOT/deploy/samples/hibernation-legacy.yaml" >/dev/null
wait_phase "$HIB" hibernate-bot-1 Pending
assert_eq "pod default/demo-legacy-0 not yet present" "$(jp "$HIB" hibernate-bot-1 '{.status.message}')" \
	"legacy Pending message"
assert_eq "NAME POD ACTION PHASE AGE" "$(header hib)" "kubectl get hib header"
assert_eq "hibernate-bot-1 demo-legacy-0 hibernate Pending" "$(row hib hibernate-bot-1)" "kubectl get hib"
# the pod as the webhook admits it: the cocoon toleration and a VM name
k apply -f - >/dev/null <<Y
apiVersion: v1
kind: Pod
metadata:
  name: demo-legacy-0
  namespace: default
  annotations: {vm.cocoonstack.io/name: $LVM, cocoonset.cocoonstack.io/mode: run}
spec:
  tolerations: [{key: virtual-kubelet.io/provider, operator: Exists, effect: NoSchedule}]
  containers: [{name: agent, image: ubuntu-24.04}]
Y
play_node_ready demo-legacy-0
wait_phase "$HIB" hibernate-bot-1 Hibernating
assert_eq "Waiting for vk-cocoon to snapshot VM|$LVM" \
	"$(jp "$HIB" hibernate-bot-1 '{.status.message}|{.status.vmName}')" "legacy Hibernating status"
ltt=$(jp "$HIB" hibernate-bot-1 '{.status.lastTransitionTime}')
[[ $ltt =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$ ]] ||
	fail "legacy lastTransitionTime '$ltt' is not RFC 3339 UTC"
wait_eq 10 "demo-legacy-0's hibernate annotation" true pod_ann demo-legacy-0 vm.cocoonstack.io/hibernate
push_tag "$LVM" hibernate
play_node_hibernated demo-legacy-0
wait_phase "$HIB" hibernate-bot-1 Hibernated
reg=${REG_URL#http://}
assert_eq "VM suspended to epoch|$LVM|$reg/$LVM:hibernate" \
	"$(jp "$HIB" hibernate-bot-1 '{.status.message}|{.status.vmName}|{.status.snapshotRef}')" \
	"legacy Hibernated status"
assert_eq "NAME POD ACTION PHASE VM AGE" "$(header hib -o wide)" "kubectl get hib -o wide header"
assert_eq "hibernate-bot-1 demo-legacy-0 hibernate Hibernated $LVM" "$(row hib hibernate-bot-1 -o wide)" \
	"kubectl get hib -o wide"

echo "== legacy Hibernation: wake"
k patch "$HIB" hibernate-bot-1 --type merge -p '{"spec":{"action":"wake"}}' >/dev/null
wait_phase "$HIB" hibernate-bot-1 Waking
assert_eq "Waiting for vk-cocoon to restore VM|" \
	"$(jp "$HIB" hibernate-bot-1 '{.status.message}|{.status.snapshotRef}')" "legacy Waking status"
wait_eq 10 "demo-legacy-0's hibernate annotation to go" "" pod_ann demo-legacy-0 vm.cocoonstack.io/hibernate
play_node_ready demo-legacy-0
wait_phase "$HIB" hibernate-bot-1 Active
assert_eq "VM restored and running|$LVM" "$(jp "$HIB" hibernate-bot-1 '{.status.message}|{.status.vmName}')" \
	"legacy Active status"
wait_eq 10 "$LVM:hibernate to be deleted" absent tag_state "$LVM"
k delete "$HIB" hibernate-bot-1 --wait=false >/dev/null
wait_for 15 "the legacy Hibernation to go" gone "$HIB" hibernate-bot-1

op_stop "$OP" "$TEST_TMP/op.log"
op_logs_clean
echo "PASS: CocoonHibernation and legacy Hibernation: hibernate, wake, delete, columns"
