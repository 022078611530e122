#!/usr/bin/env bash
# kubesim, the API server double, driven by the REAL kubectl of several minors (the
# Google Cloud SDK dispatcher /usr/bin/kubectl picks kubectl.1.NN from the server's
# /version): CRD + CR apply, get / describe / -o yaml|json / get -w, patch (merge, json,
# strategic), scale, graceful deletion of a bound pod finished by a grace-0 UID-guarded
# DELETE, events, and logs through the kubelet proxy to a fake kubelet. Also runs
# kubesim's own behaviour tests (tests/kubesim/test_kubesim.py).
#   KUBESIM_KUBECTL_VERSIONS="27 30 33" picks the minors (default "all": 27-33, about 12 s
#   each, plus Debian's 1.20); SKIP_UNIT=1 skips the Python behaviour tests.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
lib_init
# Nothing here runs the suite's C code, so the sanitizer lane has nothing to add.
case "${BIN:-}" in */asan/*) skip "no C code under test (sanitizer lane)" ;; esac

SDK=/usr/lib/google-cloud-sdk/bin
KUBECTL=${KUBECTL:-/usr/bin/kubectl}
VERSIONS=${KUBESIM_KUBECTL_VERSIONS:-all}
[ "$VERSIONS" != all ] || VERSIONS="27 28 29 30 31 32 33"
for tool in python3 openssl curl; do
	command -v "$tool" >/dev/null || skip "$tool is not installed"
done
[ -x "$KUBECTL" ] || skip "no kubectl at $KUBECTL"

echo "== kubesim behaviour tests"
[ -n "${SKIP_UNIT:-}" ] || python3 "$LIB_ROOT/tests/kubesim/test_kubesim.py" || fail "tests/kubesim/test_kubesim.py"

echo "== fake kubelet"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
	-subj /CN=kubelet -keyout "$TEST_TMP/kubelet.key" -out "$TEST_TMP/kubelet.crt" \
	2>/dev/null
python3 "$LIB_ROOT/tests/kubesim/fake_kubelet.py" --cert "$TEST_TMP/kubelet.crt" \
	--key "$TEST_TMP/kubelet.key" >"$TEST_TMP/kubelet.out" &
lib_bg $!
wait_for 10 "the fake kubelet" grep -q port "$TEST_TMP/kubelet.out"
KUBELET_PORT=$(awk '{print $2}' "$TEST_TMP/kubelet.out")

M=$TEST_TMP/manifests
mkdir -p "$M"
cat >"$M/crd.yaml" <<'EOF'
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget, shortNames: [wdg], categories: [all]}
  versions:
  - name: v1
    served: true
    storage: true
    subresources:
      status: {}
      scale: {specReplicasPath: .spec.replicas, statusReplicasPath: .status.replicas}
    additionalPrinterColumns:
    - {name: Color, type: string, jsonPath: .spec.color}
    - {name: Replicas, type: integer, jsonPath: .spec.replicas}
    - {name: Age, type: date, jsonPath: .metadata.creationTimestamp}
    schema:
      openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
EOF
cat >"$M/widget.yaml" <<'EOF'
apiVersion: example.com/v1
kind: Widget
metadata: {name: w1}
spec: {color: red, replicas: 1}
EOF
cat >"$M/node.json" <<EOF
{"apiVersion": "v1", "kind": "Node", "metadata": {"name": "vk1", "labels": {"type": "virtual-kubelet"}},
 "spec": {"taints": [{"key": "virtual-kubelet.io/provider", "value": "cocoon", "effect": "NoSchedule"}]},
 "status": {"conditions": [{"type": "Ready", "status": "True"}],
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}, {"type": "Hostname", "address": "vk1"}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": $KUBELET_PORT}}}}
EOF
pod_yaml() {
	cat <<EOF
apiVersion: v1
kind: Pod
metadata: {name: $1}
spec:
  tolerations: [{key: virtual-kubelet.io/provider, operator: Exists}]
  containers: [{name: c1, image: busybox:1.36}]
EOF
}
pod_yaml p1 >"$M/p1.yaml"
pod_yaml p2 >"$M/p2.yaml"

k() { "$KUBECTL" "$@"; }
jp() { k get "$1" "$2" -o "jsonpath=$3"; }

run_version() {
	local minor=$1 discovery=$2 started=$SECONDS
	echo "== kubectl 1.$minor ($discovery discovery)"
	export HOME=$TEST_TMP/home-$minor
	mkdir -p "$HOME"
	local extra=()
	[ "$discovery" = aggregated ] || extra+=(--no-aggregated-discovery)
	kubesim_start "v$minor" --tls --git-version "v1.$minor.0" ${extra[@]+"${extra[@]}"}
	local out

	out=$(k version -o json)
	assert_eq "$minor" "$(python3 -c 'import json,sys; print(json.load(sys.stdin)["clientVersion"]["minor"].rstrip("+"))' <<<"$out")" \
		"kubectl minor the dispatcher picked"
	assert_contains "$out" "\"gitVersion\": \"v1.$minor.0\"" "server version"

	# CRD, then its CR (separate applies: same-file apply fails on a real server too)
	k apply -f "$M/crd.yaml" >/dev/null
	k wait --for condition=established --timeout=10s crd/widgets.example.com >/dev/null
	assert_contains "$(k apply -f "$M/widget.yaml")" "widget.example.com/w1 created" "CR apply"
	out=$(k get widgets)
	assert_contains "$out" "COLOR" "printer column header"
	assert_contains "$out" "red" "printer column value"
	assert_contains "$(k get wdg w1 -o yaml)" "color: red" "-o yaml"
	assert_eq red "$(k get widget w1 -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["spec"]["color"])')" "-o json"
	out=$(k describe widget w1)
	assert_contains "$out" "Kind:         Widget" "describe"
	grep -Eq 'Color: +red' <<<"$out" || fail "describe must show the spec: $out"

	# watch in the background; it must print the change
	k get widgets -w >"$TEST_TMP/watch-$minor.out" 2>&1 &
	local wpid=$!
	lib_bg "$wpid"
	wait_for 10 "the watch to list w1" grep -q w1 "$TEST_TMP/watch-$minor.out"
	k patch widget w1 --type merge -p '{"spec":{"color":"blue"}}' >/dev/null
	wait_for 10 "the watch to print the change" grep -q blue "$TEST_TMP/watch-$minor.out"
	kill "$wpid"
	wait "$wpid" 2>/dev/null || true
	lib_forget "$wpid"
	assert_eq 2 "$(jp widget w1 '{.metadata.generation}')" "generation bumped by a spec patch"

	k patch widget w1 --type json -p '[{"op":"replace","path":"/spec/replicas","value":2}]' >/dev/null
	assert_eq 2 "$(jp widget w1 '{.spec.replicas}')" "json patch"
	if out=$(k patch widget w1 --type json -p '[{"op":"remove","path":"/spec/nope"}]' 2>&1); then
		fail "a json patch removing a missing key must fail"
	fi
	assert_contains "$out" "invalid" "json patch failure is 422 Invalid"
	if out=$(k patch widget w1 --type strategic -p '{"spec":{"color":"x"}}' 2>&1); then
		fail "strategic merge on a custom resource must be refused"
	fi
	assert_contains "$out" "the body of the request was in an unknown format" "415 for strategic merge on a CR"
	k scale widget w1 --replicas=4 >/dev/null
	assert_eq 4 "$(jp widget w1 '{.spec.replicas}')" "scale a CR"

	# built-ins: deployment scale and strategic merge, configmap json/merge patches
	k create deployment d1 --image=nginx:1 >/dev/null
	k patch deployment d1 --type strategic \
		-p '{"spec":{"template":{"spec":{"containers":[{"name":"nginx","image":"nginx:2"}]}}}}' >/dev/null
	assert_eq "nginx:2" "$(jp deployment d1 '{.spec.template.spec.containers[*].image}')" \
		"strategic merge keeps one container, by name"
	assert_contains "$(k scale deployment d1 --replicas=3)" "scaled" "kubectl scale"
	assert_eq 3 "$(jp deployment d1 '{.spec.replicas}')" "deployment replicas"
	k create configmap c1 --from-literal=a=1 >/dev/null
	k patch configmap c1 --type merge -p '{"data":{"b":"2"}}' >/dev/null
	k patch configmap c1 --type json -p '[{"op":"remove","path":"/data/a"}]' >/dev/null
	assert_eq '{"b":"2"}' "$(jp configmap c1 '{.data}')" "configmap patches"
	# generator commands (kubectl 1.32+ sends these bodies as protobuf)
	k create namespace gen >/dev/null
	k create secret generic s1 --from-literal=a=b -n gen >/dev/null
	assert_eq "Yg==" "$(k get secret s1 -n gen -o 'jsonpath={.data.a}')" "secret from a generator"
	assert_contains "$(k get ns gen --show-labels)" "kubernetes.io/metadata.name=gen" \
		"namespace label set by the server"
	k label configmap c1 tier=x >/dev/null
	assert_contains "$(k get cm -l tier=x --show-labels)" "tier=x" "label selector + show-labels"

	# a node, pods the mini-scheduler binds to it, logs through the kubelet proxy
	k create -f "$M/node.json" >/dev/null
	k apply -f "$M/p1.yaml" -f "$M/p2.yaml" >/dev/null
	wait_for 10 "p1 to be scheduled" test "$(jp pod p1 '{.spec.nodeName}')" = vk1
	wait_for 10 "p2 to be scheduled" test "$(jp pod p2 '{.spec.nodeName}')" = vk1
	assert_contains "$(k get pods -o wide)" "vk1" "get pods -o wide shows the node"
	assert_contains "$(k logs p1)" "log of default/p1/c1" "logs through the kubelet proxy"
	assert_contains "$(k logs p1 --tail=3 --timestamps)" "tailLines=3" "log options forwarded"
	assert_contains "$(k get events)" "Scheduled" "get events"
	out=$(k describe pod p1)
	assert_contains "$out" "Successfully assigned default/p1 to vk1" "describe shows the pod's events"
	assert_not_contains "$out" "default/p2" "describe shows only the pod's own events"
	out=$(k get all)
	assert_contains "$out" "service/kubernetes" "get all: built-ins"
	assert_contains "$out" "widget.example.com/w1" "get all: CR in category all"

	# graceful deletion of bound pods: the node must confirm with grace 0 + UID
	k delete pod p1 --wait=false >/dev/null
	assert_contains "$(k get pod p1)" "Terminating" "a bound pod stays terminating"
	local uid
	uid=$(jp pod p1 '{.metadata.uid}')
	out=$(kcurl DELETE /api/v1/namespaces/default/pods/p1 '{"gracePeriodSeconds":0,"preconditions":{"uid":"wrong"}}')
	assert_contains "$out" "Precondition failed: UID in precondition: wrong" "UID precondition"
	kcurl DELETE /api/v1/namespaces/default/pods/p1 \
		"{\"gracePeriodSeconds\":0,\"preconditions\":{\"uid\":\"$uid\"}}" >/dev/null
	if out=$(k get pod p1 2>&1); then
		fail "p1 must be gone after the grace-0 delete: $out"
	fi
	assert_contains "$out" "NotFound" "p1 gone"
	k delete pod p2 >"$TEST_TMP/delete-$minor.out" 2>&1 &
	local dpid=$!
	lib_bg "$dpid"
	sleep 0.5
	kill -0 "$dpid" 2>/dev/null || fail "kubectl delete of a bound pod must wait for the node"
	uid=$(jp pod p2 '{.metadata.uid}')
	kcurl DELETE /api/v1/namespaces/default/pods/p2 \
		"{\"gracePeriodSeconds\":0,\"preconditions\":{\"uid\":\"$uid\"}}" >/dev/null
	wait "$dpid" || fail "kubectl delete p2 failed: $(cat "$TEST_TMP/delete-$minor.out")"
	lib_forget "$dpid"

	# cleanup through the API: CR, CRD (its kinds leave discovery), deployment
	k delete widget w1 >/dev/null
	k delete -f "$M/crd.yaml" >/dev/null
	wait_for 10 "widgets to leave discovery" bash -c "! '$KUBECTL' get widgets"
	k delete deployment d1 >/dev/null
	k delete namespace gen >/dev/null
	assert_contains "$(k get deployments 2>&1)" "No resources found" "deployment deleted"
	kubesim_stop
	echo "   kubectl 1.$minor passed in $((SECONDS - started)) s"
}

# Debian's kubernetes-client (1.20) is unpacked by scripts/install-deps.sh, because
# installing it would replace the Google Cloud SDK dispatcher at /usr/bin/kubectl.
KUBECTL_120=${KUBECTL_120:-/opt/cocoon-test/kubernetes-client/usr/bin/kubectl}
if [ -x "$KUBECTL_120" ] && [ "${KUBESIM_KUBECTL_120:-1}" = 1 ]; then
	KUBECTL=$KUBECTL_120 run_version 20 legacy
fi

n=0
for minor in $VERSIONS; do
	[ -x "$SDK/kubectl.1.$minor" ] || { echo "no kubectl.1.$minor, skipping it"; continue; }
	if [ $((n % 2)) -eq 0 ]; then
		run_version "$minor" aggregated
	else
		run_version "$minor" legacy
	fi
	n=$((n + 1))
done
[ "$n" -gt 0 ] || skip "no versioned kubectl binaries in $SDK"
echo "PASS: kubesim with kubectl minors: $VERSIONS"
