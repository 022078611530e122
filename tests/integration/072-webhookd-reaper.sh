#!/usr/bin/env bash
# The reaper (REAPER_INTERVAL=1s, REAPER_GRACE=2s) releases the reservations of pods that are
# gone — a named bare pod and a generateName replica — keeps those of live pods, counts the
# releases per pool, and a new pod then gets the released slot back.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
lib_init
. "$(dirname "$0")/webhookd-lib.sh"
: "${BIN:?set BIN to the build bin directory}"
export HOME=$TEST_TMP

wh_ca
wh_cert tls
port=$(free_port)
mport=$(free_port)
kubesim_start ks --listen 127.0.0.1:0 --tls \
	--webhook-service "cocoon-system/cocoon-webhook=127.0.0.1:$port"
wh_node vk-1 default
wh_start wh "$port" "$mport" REAPER_INTERVAL=1s REAPER_GRACE=2s
wh_register

tol='"tolerations":[{"key":"virtual-kubelet.io/provider","operator":"Exists"}],"containers":[{"name":"c","image":"busybox"}]'
rs=',"ownerReferences":[{"apiVersion":"apps/v1","kind":"ReplicaSet","name":"job-6f7","uid":"u","controller":true}]'
mk() { kcurl POST /api/v1/namespaces/default/pods "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{$1},\"spec\":{$tol}}"; }
mk '"name":"keep"' >/dev/null
mk '"name":"gone"' >/dev/null
mk "\"generateName\":\"job-6f7-\"$rs" >/dev/null
w1=$(mk "\"generateName\":\"job-6f7-\"$rs" | python3 -c 'import json,sys; print(json.load(sys.stdin)["metadata"]["name"])')
keys() { kubectl get configmap -n cocoon-system cocoon-affinity-default -o json |
	python3 -c 'import json,sys; print(" ".join(sorted(json.load(sys.stdin).get("data", {}))))'; }
assert_eq "default._pod.gone default._pod.keep default.job.0 default.job.1" "$(keys)" "reservations"

kubectl delete pod gone "$w1" --grace-period=0 --force >/dev/null 2>&1
wait_for 20 "the reaper to release the reservations of the deleted pods" \
	bash -c "[ \"\$(kubectl get configmap -n cocoon-system cocoon-affinity-default -o jsonpath='{.data}' | python3 -c 'import json,sys; print(\" \".join(sorted(json.load(sys.stdin))))')\" = 'default._pod.keep default.job.0' ]"
assert_contains "$(wh_metric "$mport" 'cocoon_webhook_affinity_releases_total')" \
	'cocoon_webhook_affinity_releases_total{pool="default"} 2' "releases counted"
sleep 3 # more sweeps: live pods' reservations stay
assert_eq "default._pod.keep default.job.0" "$(keys)" "reservations of live pods after more sweeps"
# the two pods may leave the cache moments apart, so their releases can land in two sweeps
released=$(sed -n 's/.*reaper: released \([0-9]*\) reservation(s) of pool default.*/\1/p' \
	"$TEST_TMP/wh.log" | awk '{ n += $1 } END { print n + 0 }')
assert_eq 2 "$released" "releases reported in the log"

vm=$(mk "\"generateName\":\"job-6f7-\"$rs" | python3 -c 'import json,sys; print(json.load(sys.stdin)["metadata"]["annotations"]["vm.cocoonstack.io/name"])')
assert_eq "vk-default-job-1" "$vm" "a new replica reuses the released slot"
echo "PASS: the reaper releases reservations of gone pods only"
