#!/usr/bin/env bash
# webhookd behind kubesim's admission chain, driven by the real kubectl: the kustomize bases
# render; /readyz follows the caches and the apiserver; Deployments and StatefulSets cannot
# be scaled down (spec patch and /scale, exact message) but can be scaled up; pods get sticky
# VM names and nodes (generateName replicas spread over the pool's least-used nodes, StatefulSet
# and bare pods by name, dry runs write nothing); CocoonSets and CocoonHibernations are
# validated with the exact messages; a malformed AdmissionReview is a 400 with the reason;
# /metrics passes promtool with one admission sample per request.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
lib_init
. "$(dirname "$0")/webhookd-lib.sh"
: "${BIN:?set BIN to the build bin directory}"
export HOME=$TEST_TMP # kubectl's discovery cache

# --- the manifests render
kubectl kustomize "$WH_ROOT/deploy/webhook" >"$TEST_TMP/webhook.yaml" || fail "deploy/webhook does not render"
for want in "kind: MutatingWebhookConfiguration" "kind: ValidatingWebhookConfiguration" \
	"kind: Certificate" "kind: Issuer" "replicas: 2" "path: /readyz" "sideEffects: NoneOnDryRun" \
	"targetPort: webhook" "port: 9090"; do
	assert_contains "$(cat "$TEST_TMP/webhook.yaml")" "$want" "rendered deploy/webhook"
done
kubectl kustomize "$WH_ROOT/deploy/crds" >"$TEST_TMP/crds.yaml" || fail "deploy/crds does not render"
assert_contains "$(cat "$TEST_TMP/crds.yaml")" "name: cocoonsets.cocoonset.cocoonstack.io" "CRDs"

wh_ca
wh_cert tls
port=$(free_port)
mport=$(free_port)
kubesim_start ks --listen 127.0.0.1:0 --tls \
	--webhook-service "cocoon-system/cocoon-webhook=127.0.0.1:$port"
wh_node vk-a default
wh_node vk-b default
wh_node gpu-1 gpu
wh_start wh "$port" "$mport"
wh_register

# --- scale-down guard
cat >"$TEST_TMP/deploy.yaml" <<'Y'
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: default}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      tolerations: [{key: virtual-kubelet.io/provider, operator: Exists}]
      containers: [{name: c, image: busybox}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, namespace: default}
spec:
  replicas: 2
  serviceName: db
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      tolerations: [{key: virtual-kubelet.io/provider, operator: Exists}]
      containers: [{name: c, image: busybox}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: plain, namespace: default}
spec:
  replicas: 2
  selector: {matchLabels: {app: plain}}
  template:
    metadata: {labels: {app: plain}}
    spec: {containers: [{name: c, image: busybox}]}
Y
kubectl apply -f "$TEST_TMP/deploy.yaml" >/dev/null
rc=0
out=$(kubectl scale deployment/web --replicas=1 2>&1) || rc=$?
[ "$rc" -ne 0 ] || fail "scale-down of a cocoon Deployment was allowed"
assert_contains "$out" 'admission webhook "workloads.validate.cocoonstack.io" denied the request: cocoon-webhook: scale-down blocked for cocoon Scale default/web (3 -> 1). Use a CocoonHibernation CR to suspend individual agents.' "/scale deny"
rc=0
out=$(kubectl patch statefulset/db --type=merge -p '{"spec":{"replicas":0}}' 2>&1) || rc=$?
[ "$rc" -ne 0 ] || fail "scale-down of a cocoon StatefulSet was allowed"
assert_contains "$out" "cocoon-webhook: scale-down blocked for cocoon StatefulSet default/db (2 -> 0). Use a CocoonHibernation CR to suspend individual agents." "spec deny"
kubectl scale deployment/web --replicas=5 >/dev/null || fail "scale-up was denied"
assert_eq 5 "$(kubectl get deployment web -o jsonpath='{.spec.replicas}')" "replicas after scale-up"
kubectl scale deployment/plain --replicas=0 >/dev/null || fail "scale-down of a non-cocoon Deployment was denied"

# --- /mutate: generateName replicas of a ReplicaSet, StatefulSet pods, bare pods
pod_json() { # pod_json NAME_FIELD OWNER_JSON EXTRA_SPEC
	printf '{"apiVersion":"v1","kind":"Pod","metadata":{%s,"namespace":"default"%s},"spec":{"tolerations":[{"key":"virtual-kubelet.io/provider","operator":"Exists"}],"containers":[{"name":"c","image":"busybox"}]%s}}' "$1" "$2" "${3:-}"
}
rs_owner=',"ownerReferences":[{"apiVersion":"apps/v1","kind":"ReplicaSet","name":"web-7d9f8","uid":"u-rs","controller":true}]'
placed() { # placed FILE → "name vm node"
	python3 -c 'import json,sys; o=json.load(open(sys.argv[1])); print(o["metadata"]["name"], (o["metadata"].get("annotations") or {}).get("vm.cocoonstack.io/name",""), o["spec"].get("nodeName",""))' "$1"
}
for i in 1 2 3; do
	pod_json '"generateName":"web-7d9f8-"' "$rs_owner" >"$TEST_TMP/p.json"
	kubectl create -f "$TEST_TMP/p.json" -o json >"$TEST_TMP/web$i.json"
done
read -r w1 vm1 n1 < <(placed "$TEST_TMP/web1.json")
read -r w2 vm2 n2 < <(placed "$TEST_TMP/web2.json")
read -r w3 vm3 n3 < <(placed "$TEST_TMP/web3.json")
assert_eq "vk-default-web-0 vk-default-web-1 vk-default-web-2" "$vm1 $vm2 $vm3" "slots of generateName pods"
[ "$n1" != "$n2" ] || fail "two new replicas were put on one node ($n1) while another was empty"
case "$n3" in vk-a | vk-b) ;; *) fail "replica on node '$n3', not in pool default" ;; esac

# a replacement for a deleted replica inherits its VM name and node, once the pod is gone
kubectl delete pod "$w2" --grace-period=0 --force >/dev/null 2>&1
wait_for 10 "pod $w2 to be gone" bash -c "! kubectl get pod $w2 >/dev/null 2>&1"
sleep 0.5 # the informer sees the deletion
pod_json '"generateName":"web-7d9f8-"' "$rs_owner" >"$TEST_TMP/p.json"
kubectl create -f "$TEST_TMP/p.json" -o json >"$TEST_TMP/web4.json"
read -r _ vm4 n4 < <(placed "$TEST_TMP/web4.json")
# within AFFINITY_PENDING_SEC the old reservation counts as a pod still being created, so
# the replacement may get a new slot; either way its name must be unique
assert_not_contains "$vm1 $vm3" "$vm4" "replacement VM name collides"

# StatefulSet pods keep their slot by name
ss_owner=',"ownerReferences":[{"apiVersion":"apps/v1","kind":"StatefulSet","name":"db","uid":"u-ss","controller":true}]'
pod_json '"name":"db-0"' "$ss_owner" >"$TEST_TMP/p.json"
kubectl create -f "$TEST_TMP/p.json" -o json >"$TEST_TMP/db0.json"
read -r _ vmdb nodedb < <(placed "$TEST_TMP/db0.json")
kubectl delete pod db-0 --grace-period=0 --force >/dev/null 2>&1
wait_for 10 "db-0 to be gone" bash -c "! kubectl get pod db-0 >/dev/null 2>&1"
kubectl create -f "$TEST_TMP/p.json" -o json >"$TEST_TMP/db0b.json"
read -r _ vmdb2 nodedb2 < <(placed "$TEST_TMP/db0b.json")
assert_eq "$vmdb $nodedb" "$vmdb2 $nodedb2" "StatefulSet pod db-0 got its VM name and node back"

# bare pods: named after the pod; pool from the nodeSelector; no node in the pool → unpinned
pod_json '"name":"solo"' "" >"$TEST_TMP/p.json"
kubectl create -f "$TEST_TMP/p.json" -o json >"$TEST_TMP/solo.json"
read -r _ vmsolo _ < <(placed "$TEST_TMP/solo.json")
assert_eq "vk-default-solo" "$vmsolo" "bare pod VM name"
pod_json '"name":"trainer"' "" ',"nodeSelector":{"cocoonstack.io/pool":"gpu"}' >"$TEST_TMP/p.json"
kubectl create -f "$TEST_TMP/p.json" -o json >"$TEST_TMP/gpu.json"
read -r _ _ ngpu < <(placed "$TEST_TMP/gpu.json")
assert_eq "gpu-1" "$ngpu" "pod of pool gpu pinned to the gpu node"
pod_json '"name":"lost"' "" ',"nodeSelector":{"cocoonstack.io/pool":"empty"}' >"$TEST_TMP/p.json"
kubectl create -f "$TEST_TMP/p.json" -o json >"$TEST_TMP/lost.json"
read -r _ vmlost nlost < <(placed "$TEST_TMP/lost.json")
assert_eq "vk-default-lost " "$vmlost $nlost" "pod of a pool without nodes: named, not pinned"

# not a cocoon pod: untouched; a CocoonSet's pod: untouched
kubectl run plainpod --image=busybox -o json >"$TEST_TMP/plain.json"
read -r _ vmplain _ < <(placed "$TEST_TMP/plain.json")
assert_eq "" "$vmplain" "a pod without the cocoon toleration is not named"

# dry run: the patch is computed, nothing is stored
pod_json '"name":"dry"' "" >"$TEST_TMP/p.json"
kubectl create --dry-run=server -f "$TEST_TMP/p.json" -o json >"$TEST_TMP/dry.json"
read -r _ vmdry _ < <(placed "$TEST_TMP/dry.json")
assert_eq "vk-default-dry" "$vmdry" "dry-run pod is patched"
data=$(kubectl get configmap -n cocoon-system cocoon-affinity-default -o json)
assert_not_contains "$data" "default._pod.dry" "dry-run reservation"
assert_contains "$data" '"vmName\":\"vk-default-solo\"' "stored bare reservation"
assert_contains "$(kubectl get configmap -n cocoon-system cocoon-affinity-default -o jsonpath='{.metadata.labels}')" \
	'"cocoonstack.io/pool":"default"' "ConfigMap pool label"

# --- CocoonSets and CocoonHibernations
cat >"$TEST_TMP/cs.yaml" <<'Y'
apiVersion: cocoonset.cocoonstack.io/v1
kind: CocoonSet
metadata: {name: good, namespace: default}
spec:
  agent: {image: "ubuntu:24.04", replicas: 1}
Y
kubectl apply -f "$TEST_TMP/cs.yaml" >/dev/null || fail "a valid CocoonSet was refused"
cat >"$TEST_TMP/bad.yaml" <<'Y'
apiVersion: cocoonset.cocoonstack.io/v1
kind: CocoonSet
metadata: {name: bad, namespace: default}
spec:
  agent: {image: "ghcr.io:5000/x@sha256:abc", backend: firecracker, mode: clone}
  toolboxes: [{name: "7", image: "a"}]
Y
rc=0
out=$(kubectl apply -f "$TEST_TMP/bad.yaml" 2>&1) || rc=$?
[ "$rc" -ne 0 ] || fail "an invalid CocoonSet was accepted"
assert_contains "$out" 'admission webhook "cocoonsets.validate.cocoonstack.io" denied the request: cocoon-webhook: invalid CocoonSet spec: spec.agent: firecracker does not support clone mode, use mode=run instead; spec.agent.image "ghcr.io:5000/x@sha256:abc" must be repo[:tag] when mode is clone (no registry port or digest); spec.toolboxes[0].name "7" must not be purely numeric (conflicts with agent slot naming); spec.toolboxes[0].backend "cloud-hypervisor" must match spec.agent.backend "firecracker"' "CocoonSet deny"

ch() { printf 'apiVersion: cocoonset.cocoonstack.io/v1\nkind: CocoonHibernation\nmetadata: {name: %s, namespace: default}\nspec: {podRef: {name: %s}, desire: Hibernate}\n' "$1" "$2"; }
ch solo solo | kubectl create -f - >/dev/null || fail "a valid CocoonHibernation was refused"
rc=0
out=$(ch other solo | kubectl create -f - 2>&1) || rc=$?
[ "$rc" -ne 0 ] || fail "a misnamed CocoonHibernation was accepted"
assert_contains "$out" 'cocoon-webhook: metadata.name "other" must equal spec.podRef.name "solo" (one CocoonHibernation per pod, named after it)' "CocoonHibernation name rule"
assert_eq "good" "$(kubectl get cocoonsets.cocoonset.cocoonstack.io -o jsonpath='{.items[*].metadata.name}')" "CocoonSets stored"

# --- a malformed AdmissionReview is a 400 that says why
code=$(curl -sS -o "$TEST_TMP/400" -w '%{http_code}' --cacert "$TEST_TMP/ca.crt" \
	--resolve "$WH_SVC:$port:127.0.0.1" "https://$WH_SVC:$port/validate" -d '{"request":')
assert_eq 400 "$code" "malformed review status"
assert_contains "$(cat "$TEST_TMP/400")" "decode admission review" "400 body"

# --- metrics: promtool, one sample per request
curl -sS "http://127.0.0.1:$mport/metrics" >"$TEST_TMP/metrics"
promtool check metrics <"$TEST_TMP/metrics" || fail "promtool rejected /metrics"
m=$(cat "$TEST_TMP/metrics")
assert_contains "$m" 'cocoon_webhook_admission_total{handler="validate",result="deny",reason=""} 2' "validate denies"
assert_contains "$m" 'cocoon_webhook_admission_total{handler="validate",result="error",reason="decode"} 1' "the 400"
assert_contains "$m" 'cocoon_webhook_admission_total{handler="validate_cocoonset",result="deny",reason=""} 1' "cocoonset deny"
assert_contains "$m" 'cocoon_webhook_admission_total{handler="mutate",result="skipped",reason="not_cocoon"} 1' "plain pod"
assert_contains "$m" 'cocoon_webhook_affinity_reservations_total{pool="gpu"} 1' "gpu reservation"
assert_contains "$m" 'cocoon_webhook_admission_duration_seconds_count{handler="mutate"}' "latency histogram"
samples=$(awk '/^cocoon_webhook_admission_total/ {s += $2} END {print s}' "$TEST_TMP/metrics")
[ "$samples" -ge 20 ] || fail "only $samples admission samples recorded"

# --- /readyz says why once the apiserver is gone
kubesim_stop
wait_for 30 "/readyz to turn 503" bash -c "[ \"\$(curl -s -o /dev/null -w '%{http_code}' --cacert $TEST_TMP/ca.crt --resolve $WH_SVC:$port:127.0.0.1 https://$WH_SVC:$port/readyz)\" = 503 ]"
assert_contains "$(curl -s --cacert "$TEST_TMP/ca.crt" --resolve "$WH_SVC:$port:127.0.0.1" "https://$WH_SVC:$port/readyz")" \
	"the apiserver has not answered" "/readyz reason"
kill -TERM "$WH_PID"
rc=0
wait "$WH_PID" || rc=$?
lib_forget "$WH_PID"
assert_eq 0 "$rc" "webhookd exit status after SIGTERM"
echo "PASS: webhookd admits, mutates and validates through kubesim's webhook chain"
