#!/usr/bin/env bash
# Two operatord replicas with leader election (operator-webhook.md §2.1; fast timings:
# LEASE_DURATION=3s RENEW_DEADLINE=2s RETRY_PERIOD=500ms) against kubesim and the real kubectl:
# only the Lease holder reconciles and writes (the standby's api_writes_total stays 0); the
# leader is killed with SIGKILL in the middle of a scale-up, the standby takes the Lease once it
# expires and converges the CocoonSet: every pod name once, as many pods as desired, and every
# pod controlled by the CocoonSet (no duplicates, no orphans).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/epoch-lib.sh"
lib_init
. "$(dirname "$0")/operator-lib.sh"
op_init
op_cluster
TIMING=(LEASE_DURATION=3s RENEW_DEADLINE=2s RETRY_PERIOD=500ms)

writes() { op_metric "$1" cocoon_operator_api_writes_total; }
passes() { op_metric "$1" cocoon_operator_reconcile_total; }
row() { k get "$CS" demo --no-headers | awk '{ $1 = $1; print $1, $2, $3, $4 }'; }
holder_pid() { op_leader | sed -n 's/.*_\([0-9]*\)$/\1/p'; }
# seq_pods FIRST LAST: demo-FIRST … demo-LAST, sorted as pods() prints them
seq_pods() { for i in $(seq "$1" "$2"); do echo "demo-$i"; done | sort | xargs; }

echo "== two replicas, one leader"
op_start op-a "${TIMING[@]}"
A=$OP_PID A_M=$OP_MPORT
wait_eq 10 "op-a to hold the Lease" "$A" holder_pid
op_start op-b "${TIMING[@]}"
B=$OP_PID B_M=$OP_MPORT
wait_for 10 "op-b to see op-a's Lease" grep -q "is held by .*_$A\$" "$TEST_TMP/op-b.log"

k apply -f - >/dev/null <<'Y'
apiVersion: cocoonset.cocoonstack.io/v1
kind: CocoonSet
metadata: {name: demo, namespace: default}
spec:
  agent: {image: ubuntu-dev-base, replicas: 2}
Y
wait_eq 15 "demo-0" demo-0 pods demo
play_node_ready demo-0
wait_eq 15 "the sub-agents" "demo-0 demo-1 demo-2" pods demo
play_node_ready demo-1 demo-2
wait_eq 15 "Running 3/3" "demo Running 3 3" row
[ "$(writes "$A_M")" -gt 0 ] || fail "the leader op-a wrote nothing"
assert_eq 0 "$(writes "$B_M")" "the standby's cocoon_operator_api_writes_total"
assert_eq 0 "$(passes "$B_M")" "the standby's cocoon_operator_reconcile_total"
assert_eq "$A" "$(holder_pid)" "the Lease holder"

echo "== the leader dies in the middle of a scale-up"
# ten new sub-agents: more than the eight creates a pass keeps in flight; op-a dies the moment
# the first of them is stored
kill_on_create "$A" demo-3
k patch "$CS" demo --type merge -p '{"spec":{"agent":{"replicas":12}}}' >/dev/null
wait_killed "$A"
echo "   op-a killed with $(($(pods demo | wc -w) - 3)) of 10 new sub-agents created"
wait_eq 15 "op-b to take the Lease" "$B" holder_pid
assert_contains "$(cat "$TEST_TMP/op-b.log")" "leading: reconciling" "op-b's log"
wait_eq 20 "the sub-agents" "$(seq_pods 0 12)" pods demo
play_node_ready $(seq_pods 3 12)
wait_eq 15 "Running 13/13" "demo Running 13 13" row
check_pods demo $(seq_pods 0 12)
[ "$(writes "$B_M")" -gt 0 ] || fail "the new leader op-b wrote nothing"

echo "== the new leader scales down alone"
k patch "$CS" demo --type merge -p '{"spec":{"agent":{"replicas":4}}}' >/dev/null
wait_eq 15 "demo-5..12 to be deleted" "$(seq_pods 5 12)" terminating demo
reap
wait_eq 15 "Running 5/5" "demo Running 5 5" row
check_pods demo $(seq_pods 0 4)

op_stop "$B" "$TEST_TMP/op-b.log"
assert_eq "" "$(holder_pid)" "the Lease after the leader's SIGTERM (released)"
op_logs_clean
echo "PASS: one leader writes; SIGKILL mid scale-up; the standby takes over and converges"
