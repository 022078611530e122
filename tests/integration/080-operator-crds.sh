#!/usr/bin/env bash
# The cocoon CRDs and the operator's manifests, with the real kubectl against kubesim (no
# operatord needed): deploy/crds installs all four CRDs (v1 and legacy cocoon.cis); every
# sample in deploy/samples applies; `kubectl get` prints each kind's printer columns (the
# legacy Hibernation's VM only with -o wide), finds the kinds by short name, by group-qualified
# short name and by the `cocoon` category; /status is a subresource (a status PATCH changes
# status but not spec, a main-resource PATCH cannot touch status). kubesim does not default,
# prune or validate custom resources (tests/kubesim/README.md), so the defaults, enums, CEL
# rules and list-map keys are checked in the schemas the server serves back, exactly as
# operator-webhook.md §1.1–1.3 lists them. deploy/operator renders with the RBAC, Deployment
# and environment of §4 and §2.1, and its namespace, ServiceAccount and Deployment apply.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
lib_init
# Manifests only: nothing here runs the suite's C code, so the sanitizer lane has nothing to add.
case "${BIN:-}" in */asan/*) skip "no C code under test (sanitizer lane)" ;; esac

KUBECTL=${KUBECTL:-$(command -v kubectl || true)}
if [ -z "$KUBECTL" ] || [ ! -x "$KUBECTL" ]; then
	skip "kubectl is missing (scripts/install-deps.sh; or set KUBECTL=/path/to/kubectl)"
fi
for tool in python3 openssl curl; do
	command -v "$tool" >/dev/null || skip "$tool is not installed"
done
export HOME=$TEST_TMP # kubectl's discovery cache
k() { "$KUBECTL" "$@"; }
ROOT=$LIB_ROOT
V1=cocoonset.cocoonstack.io
G1=cocoon.cis

# jp RESOURCE NAME JSONPATH [ARGS...]: one object's field
jp() {
	local resource=$1 name=$2 path=$3
	shift 3
	k get "$resource" "$name" -o "jsonpath=$path" "$@"
}
# names RESOURCE: the names of every object of RESOURCE in the default namespace
names() { k get "$1" -o 'jsonpath={.items[*].metadata.name}'; }
# header KUBECTL-GET-ARGS...: the first line of `kubectl get`, blanks squeezed
header() { k get "$@" | awk 'NR == 1 { $1 = $1; print }'; }
# row NAME KUBECTL-GET-ARGS...: the line of object NAME, blanks squeezed
row() {
	local name=$1
	shift
	k get "$@" | awk -v n="$name" '$1 == n { $1 = $1; print }'
}
# status_patch PATH JSON: a JSON merge patch to PATH/status, as operatord writes status
status_patch() {
	curl -sS -k -X PATCH -H "Authorization: Bearer $KUBESIM_TOKEN" \
		-H "Content-Type: application/merge-patch+json" --data "$2" "$KUBESIM_URL$1/status"
}
# to_json FILE: the YAML stream as JSON objects, offline (a no-op local patch)
to_json() { k patch --local -f "$1" --type merge -p '{}' -o json; }

kubesim_start ks --tls

echo "== deploy/crds installs four CRDs"
out=$(k apply -k "$ROOT/deploy/crds")
for crd in cocoonsets.$V1 cocoonhibernations.$V1 cocoonsets.$G1 hibernations.$G1; do
	assert_contains "$out" "customresourcedefinition.apiextensions.k8s.io/$crd created" \
		"kubectl apply -k deploy/crds"
done
k wait --for condition=established --timeout=10s crd/cocoonsets.$V1 crd/cocoonhibernations.$V1 \
	crd/cocoonsets.$G1 crd/hibernations.$G1 >/dev/null

echo "== every sample applies"
n=0
for f in "$ROOT"/deploy/samples/*.yaml; do
	out=$(k apply -f "$f" 2>&1) || fail "$(basename "$f") was refused: $out"
	assert_contains "$out" " created" "$(basename "$f")"
	n=$((n + 1))
done
[ "$n" -ge 6 ] || fail "expected at least 6 samples in deploy/samples, found $n"
assert_eq demo "$(names cocoonsets.$V1)" "v1 CocoonSet sample"
assert_eq demo-0 "$(names cocoonhibernations.$V1)" "CocoonHibernation sample"
assert_eq demo-legacy "$(names cocoonsets.$G1)" "legacy CocoonSet sample"
assert_eq hibernate-bot-1 "$(names hibernations.$G1)" "legacy Hibernation sample"
assert_eq '{"cpu":"2","memory":"4Gi"}' "$(jp cocoonsets.$G1 demo-legacy '{.spec.agent.resources}')" \
	"legacy agent.resources as plain strings"

echo "== printer columns, short names, category"
assert_eq "NAME PHASE READY DESIRED AGE" "$(header cocoonsets.$V1)" "kubectl get cocoonsets.$V1"
assert_eq "NAME PHASE READY DESIRED AGE" "$(header cocoonsets.$G1)" "kubectl get cocoonsets.$G1"
assert_eq "NAME POD DESIRE PHASE AGE" "$(header ch)" "kubectl get ch"
assert_eq "NAME POD ACTION PHASE AGE" "$(header hib)" "kubectl get hib"
assert_eq "NAME POD ACTION PHASE VM AGE" "$(header hib -o wide)" "kubectl get hib -o wide (VM has priority 1)"
assert_contains "$(row demo-0 ch)" "demo-0 demo-0 Hibernate " "CocoonHibernation row"
assert_contains "$(row hibernate-bot-1 hib)" "hibernate-bot-1 demo-legacy-0 hibernate " "Hibernation row"
# `cs` is the v1 CocoonSet's alone (the legacy CRD does not claim it; deploy/crds/README.md)
assert_contains "$(row demo cs)" "demo " "kubectl get cs"
assert_not_contains "$(kubectl get cs 2>&1)" "demo-legacy" "kubectl get cs lists only v1 CocoonSets"
assert_contains "$(row demo cs.$V1)" "demo " "kubectl get cs.$V1"
assert_contains "$(row demo-legacy cocoonsets.$G1)" "demo-legacy " "kubectl get cocoonsets.$G1"
assert_contains "$(row demo-0 cocoonhibernations)" "demo-0 demo-0" "the v1 short name cocoonhibernations"
out=$(k get cocoon)
for obj in cocoonset.$V1/demo cocoonhibernation.$V1/demo-0 cocoonset.$G1/demo-legacy \
	hibernation.$G1/hibernate-bot-1; do
	assert_contains "$out" "$obj" "kubectl get cocoon (category)"
done

echo "== /status is a subresource"
base=/apis/$V1/v1/namespaces/default
status_patch "$base/cocoonsets/demo" '{"spec":{"nodePool":"elsewhere"},"status":{"phase":"Running",
	"readyAgents":3,"desiredAgents":3,"agents":[{"slot":0,"role":"main","podName":"demo-0"}]}}' >/dev/null
assert_eq Running "$(jp cocoonsets.$V1 demo '{.status.phase}')" "status after a /status patch"
assert_eq default "$(jp cocoonsets.$V1 demo '{.spec.nodePool}')" "spec untouched by a /status patch"
assert_eq 1 "$(jp cocoonsets.$V1 demo '{.metadata.generation}')" "generation after a /status patch"
assert_eq "demo Running 3 3" "$(row demo cocoonsets.$V1 | cut -d' ' -f1-4)" \
	"CocoonSet columns show the status"
k patch cocoonsets.$V1 demo --type merge -p '{"status":{"phase":"Failed"}}' >/dev/null
assert_eq Running "$(jp cocoonsets.$V1 demo '{.status.phase}')" \
	"a patch of the main resource must not change status"

status_patch "$base/cocoonhibernations/demo-0" \
	'{"spec":{"desire":"Wake"},"status":{"phase":"Hibernated","vmName":"vk-default-demo-0"}}' >/dev/null
assert_eq "demo-0 demo-0 Hibernate Hibernated" "$(row demo-0 ch | cut -d' ' -f1-4)" \
	"CocoonHibernation after /status"

base=/apis/$G1/v1alpha1/namespaces/default
status_patch "$base/cocoonsets/demo-legacy" '{"spec":{"suspend":true},"status":{"phase":"Suspended",
	"readyAgents":0,"desiredAgents":2,"agents":[{"slot":0,"role":"main","vmName":"vk-default-demo-legacy-0",
	"snapshotRef":"registry.example/vk-default-demo-legacy-0:hibernate"}],
	"toolboxes":[{"name":"windows","connType":"vnc","vncPort":5901}]}}' >/dev/null
assert_eq "demo-legacy Suspended 0 2" "$(row demo-legacy cocoonsets.$G1 | cut -d' ' -f1-4)" \
	"legacy CocoonSet after /status"
assert_eq "" "$(jp cocoonsets.$G1 demo-legacy '{.spec.suspend}')" "legacy spec untouched by /status"
assert_eq registry.example/vk-default-demo-legacy-0:hibernate \
	"$(jp cocoonsets.$G1 demo-legacy '{.status.agents[0].snapshotRef}')" "legacy agents[].snapshotRef"

status_patch "$base/hibernations/hibernate-bot-1" '{"status":{"phase":"Hibernated",
	"vmName":"vk-default-demo-legacy-0","message":"VM suspended to epoch",
	"lastTransitionTime":"2026-04-02T10:00:00Z"}}' >/dev/null
assert_contains "$(row hibernate-bot-1 hib -o wide)" \
	"hibernate-bot-1 demo-legacy-0 hibernate Hibernated vk-default-demo-legacy-0 " "Hibernation -o wide shows the VM"
assert_not_contains "$(row hibernate-bot-1 hib)" "vk-default-demo-legacy-0" "the VM column is -o wide only"
k patch hib hibernate-bot-1 --type merge -p '{"spec":{"action":"wake"},"status":{"phase":"Failed"}}' >/dev/null
assert_eq "wake Hibernated" "$(jp hib hibernate-bot-1 '{.spec.action} {.status.phase}')" \
	"a main-resource patch changes spec, not status"

echo "== the served schemas: defaults, enums, CEL, list keys, legacy status (§1.1–1.3)"
for crd in cocoonsets.$V1 cocoonhibernations.$V1 cocoonsets.$G1 hibernations.$G1; do
	k get crd "$crd" -o json >"$TEST_TMP/$crd.json"
done
python3 - "$TEST_TMP" <<'PY' || fail "the served CRD schemas differ from operator-webhook.md §1.1–1.3"
import json, sys

d = sys.argv[1]
errors = []


def load(name):
    with open("%s/%s.json" % (d, name)) as f:
        return json.load(f)


def at(schema, path):
    """The schema node of a dotted path; [] steps into array items."""
    node = schema
    for part in path.split("."):
        if part == "[]":
            node = node.get("items", {})
        else:
            node = node.get("properties", {}).get(part)
            if node is None:
                return {}
    return node


def check(what, want, got):
    if want != got:
        errors.append("%s: want %r, got %r" % (what, want, got))


def crd(name, version, kind, short, columns, defaults, enums, required=()):
    c = load(name)
    spec = c["spec"]
    check(name + " kind", kind, spec["names"]["kind"])
    check(name + " shortNames", short, spec["names"].get("shortNames") or [])
    check(name + " categories", ["cocoon"], spec["names"].get("categories"))
    check(name + " scope", "Namespaced", spec["scope"])
    check(name + " versions", [version], [v["name"] for v in spec["versions"]])
    v = spec["versions"][0]
    check(name + " served/storage", (True, True), (v["served"], v["storage"]))
    check(name + " subresources", {"status": {}}, v.get("subresources"))
    cols = [(p["name"], p["type"], p["jsonPath"], p.get("priority", 0))
            for p in v.get("additionalPrinterColumns", [])]
    check(name + " printer columns", columns, cols)
    s = v["schema"]["openAPIV3Schema"]
    for path, want in defaults.items():
        check("%s %s default" % (name, path), want, at(s, path).get("default"))
    for path, want in enums.items():
        check("%s %s enum" % (name, path), want, at(s, path).get("enum"))
    for path, want in required:
        check("%s %s required" % (name, path), sorted(want),
              sorted(at(s, path).get("required", [])))
    return s


AGE = ("Age", "date", ".metadata.creationTimestamp", 0)
CS_COLS = [("Phase", "string", ".status.phase", 0), ("Ready", "integer", ".status.readyAgents", 0),
           ("Desired", "integer", ".status.desiredAgents", 0), AGE]
VM = {"os": ["linux", "windows", "android", "macos"], "backend": ["cloud-hypervisor", "firecracker"],
      "connType": ["ssh", "rdp", "vnc", "adb"]}
cs_enums = {"spec.snapshotPolicy": ["always", "main-only", "never"],
            "spec.hibernatePolicy": ["retain", "release"],
            "spec.agent.mode": ["clone", "run"], "spec.toolboxes.[].mode": ["run", "clone", "static"],
            "status.phase": ["Pending", "Running", "Scaling", "Suspending", "Suspended", "Waking",
                             "Migrating", "Failed"],
            "status.toolboxes.[].connType": VM["connType"]}
for where in ("spec.agent", "spec.toolboxes.[]"):
    for field, values in VM.items():
        cs_enums["%s.%s" % (where, field)] = values
s = crd("cocoonsets.cocoonset.cocoonstack.io", "v1", "CocoonSet", ["cs", "cocoonsets"], CS_COLS,
        {"spec.snapshotPolicy": "always", "spec.hibernatePolicy": "retain", "spec.nodePool": "default",
         "spec.agent.os": "linux", "spec.agent.backend": "cloud-hypervisor", "spec.agent.mode": "clone",
         "spec.agent.replicas": 0, "spec.toolboxes.[].mode": "run", "spec.toolboxes.[].os": "linux",
         "spec.toolboxes.[].backend": "cloud-hypervisor"},
        cs_enums,
        [("spec", ["agent"]), ("spec.agent", ["image"]), ("spec.toolboxes.[]", ["name"]),
         ("status.agents.[]", ["slot", "role"]), ("status.toolboxes.[]", ["name"])])
check("CocoonSet CEL", [
    "hibernatePolicy=release requires agent.replicas=0 and no toolboxes",
    "snapshotCompatibilityClass is immutable once set"],
    [r["message"] for r in at(s, "spec").get("x-kubernetes-validations", [])])
check("snapshotCompatibilityClass", (63, "^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"),
      (at(s, "spec.snapshotCompatibilityClass").get("maxLength"),
       at(s, "spec.snapshotCompatibilityClass").get("pattern")))
check("toolbox name pattern", "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
      at(s, "spec.toolboxes.[].name").get("pattern"))
check("agent.image minLength", 1, at(s, "spec.agent.image").get("minLength"))
check("agent.replicas minimum", 0, at(s, "spec.agent.replicas").get("minimum"))
check("agent.storage int-or-string", True, at(s, "spec.agent.storage").get("x-kubernetes-int-or-string"))
for path, key in (("status.agents", "slot"), ("status.toolboxes", "name"), ("status.conditions", "type")):
    node = at(s, path)
    check("CocoonSet %s list-map" % path, ("map", [key]),
          (node.get("x-kubernetes-list-type"), node.get("x-kubernetes-list-map-keys")))

s = crd("cocoonhibernations.cocoonset.cocoonstack.io", "v1", "CocoonHibernation",
        ["ch", "cocoonhibernations"],
        [("Pod", "string", ".spec.podRef.name", 0), ("Desire", "string", ".spec.desire", 0),
         ("Phase", "string", ".status.phase", 0), AGE],
        {}, {"spec.desire": ["Hibernate", "Wake"],
             "status.phase": ["Pending", "Hibernating", "Hibernated", "Waking", "Active", "Failed"]},
        [("spec", ["podRef", "desire"]), ("spec.podRef", ["name"])])
check("podRef CEL", [("self == oldSelf", "spec.podRef is immutable")],
      [(r["rule"], r["message"]) for r in at(s, "spec.podRef").get("x-kubernetes-validations", [])])
node = at(s, "status.conditions")
check("CocoonHibernation conditions list-map", ("map", ["type"]),
      (node.get("x-kubernetes-list-type"), node.get("x-kubernetes-list-map-keys")))

s = crd("cocoonsets.cocoon.cis", "v1alpha1", "CocoonSet", [], CS_COLS,
        {"spec.agent.mode": "clone"},
        {"spec.agent.mode": ["run", "clone"], "spec.agent.os": ["linux", "windows"],
         "spec.toolboxes.[].mode": ["run", "clone", "static"]},
        [("spec", ["agent"]), ("spec.agent", ["image"]), ("spec.toolboxes.[]", ["name"])])
for path in ("spec.agent.resources", "spec.toolboxes.[].resources"):
    check("legacy %s" % path, {"cpu": "string", "memory": "string"},
          {k: v.get("type") for k, v in at(s, path).get("properties", {}).items()})
check("legacy spec fields", sorted(["suspend", "nodeName", "snapshotPolicy", "agent", "toolboxes"]),
      sorted(at(s, "spec").get("properties", {})))
check("legacy status fields", sorted(["phase", "readyAgents", "desiredAgents", "agents", "toolboxes"]),
      sorted(at(s, "status").get("properties", {})))
check("legacy status.phase is free text", ("string", None),
      (at(s, "status.phase").get("type"), at(s, "status.phase").get("enum")))
check("legacy status.agents[]", sorted(["slot", "role", "podName", "vmName", "vmID", "ip", "phase",
                                         "forkedFrom", "snapshotRef"]),
      sorted(at(s, "status.agents.[]").get("properties", {})))
check("legacy status.toolboxes[]", sorted(["name", "podName", "vmName", "vmID", "ip", "phase",
                                            "connType", "vncPort"]),
      sorted(at(s, "status.toolboxes.[]").get("properties", {})))

s = crd("hibernations.cocoon.cis", "v1alpha1", "Hibernation", ["hib"],
        [("Pod", "string", ".spec.podName", 0), ("Action", "string", ".spec.action", 0),
         ("Phase", "string", ".status.phase", 0), ("VM", "string", ".status.vmName", 1), AGE],
        {"spec.action": "hibernate"}, {"spec.action": ["hibernate", "wake"]}, [("spec", ["podName"])])
check("legacy Hibernation status fields",
      sorted(["phase", "snapshotRef", "vmName", "message", "lastTransitionTime"]),
      sorted(at(s, "status").get("properties", {})))

for e in errors:
    print("FAIL: " + e, file=sys.stderr)
sys.exit(1 if errors else 0)
PY

echo "== deploy/operator renders (§4, flags and environment of §2.1)"
k kustomize "$ROOT/deploy/operator" >"$TEST_TMP/operator.yaml" ||
	fail "deploy/operator does not render (kubectl 1.21+ is needed: kustomize v4)"
to_json "$TEST_TMP/operator.yaml" >"$TEST_TMP/operator.json"
python3 - "$TEST_TMP/operator.json" "$TEST_TMP/apply.json" <<'PY' || fail "deploy/operator differs from §4"
import json, sys

text = open(sys.argv[1]).read()
dec, pos, objs = json.JSONDecoder(), 0, []
while text[pos:].strip():
    rest = text[pos:].lstrip()
    obj, end = dec.raw_decode(rest)
    pos += len(text[pos:]) - len(rest) + end
    objs.append(obj)
errors = []


def check(what, want, got):
    if want != got:
        errors.append("%s: want %r, got %r" % (what, want, got))


by = {(o["kind"], o["metadata"]["name"]): o for o in objs}
check("objects", sorted([
    ("Namespace", "cocoon-system"), ("ServiceAccount", "cocoon-operator"),
    ("ClusterRole", "cocoon-operator"), ("ClusterRoleBinding", "cocoon-operator"),
    ("Deployment", "cocoon-operator"),
    ("CustomResourceDefinition", "cocoonsets.cocoonset.cocoonstack.io"),
    ("CustomResourceDefinition", "cocoonhibernations.cocoonset.cocoonstack.io"),
    ("CustomResourceDefinition", "cocoonsets.cocoon.cis"),
    ("CustomResourceDefinition", "hibernations.cocoon.cis")]), sorted(by))
check("ServiceAccount namespace", "cocoon-system",
      by.get(("ServiceAccount", "cocoon-operator"), {}).get("metadata", {}).get("namespace"))

# every grant operatord needs (§4 plus the legacy cocoon.cis group)
granted = set()
for rule in by.get(("ClusterRole", "cocoon-operator"), {}).get("rules", []):
    for g in rule.get("apiGroups", []):
        for r in rule.get("resources", []):
            for v in rule.get("verbs", []):
                granted.add((g, r, v))
crud = ["get", "list", "watch", "create", "update", "patch", "delete"]
need = set()
for group, kinds in (("cocoonset.cocoonstack.io", ["cocoonsets", "cocoonhibernations"]),
                     ("cocoon.cis", ["cocoonsets", "hibernations"])):
    for r in kinds:
        need |= {(group, r, v) for v in crud}
        need |= {(group, r + "/status", v) for v in ("get", "update", "patch")}
        need.add((group, r + "/finalizers", "update"))
need |= {("", "pods", v) for v in crud} | {("", "pods/status", "get")}
need |= {("", "configmaps", v) for v in crud} | {("coordination.k8s.io", "leases", v) for v in crud}
need |= {("", "events", "create"), ("", "events", "patch")}
for g, r, v in sorted(need - granted):
    errors.append("ClusterRole cocoon-operator lacks %s %s/%s" % (v, g or "core", r))
b = by.get(("ClusterRoleBinding", "cocoon-operator"), {})
check("binding roleRef", {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                          "name": "cocoon-operator"}, b.get("roleRef"))
check("binding subjects", [{"kind": "ServiceAccount", "name": "cocoon-operator",
                            "namespace": "cocoon-system"}], b.get("subjects"))

dep = by.get(("Deployment", "cocoon-operator"), {})
labels = {"app.kubernetes.io/name": "cocoon-operator", "app.kubernetes.io/component": "controller"}
check("Deployment namespace", "cocoon-system", dep.get("metadata", {}).get("namespace"))
check("Deployment labels", labels, dep.get("metadata", {}).get("labels"))
spec = dep.get("spec", {})
check("replicas", 1, spec.get("replicas"))
check("selector", {"matchLabels": labels}, spec.get("selector"))
pod = spec.get("template", {}).get("spec", {})
check("serviceAccountName", "cocoon-operator", pod.get("serviceAccountName"))
c = (pod.get("containers") or [{}])[0]
check("containers", ["manager"], [x.get("name") for x in pod.get("containers", [])])
check("image", ("ghcr.io/cocoonstack/cocoon-operator:latest", "IfNotPresent"),
      (c.get("image"), c.get("imagePullPolicy")))
check("args", ["--metrics-bind-address=:8080", "--health-probe-bind-address=:8081",
               "--leader-elect=true"], c.get("args"))
# §4's environment, plus one deliberate addition: GnuTLS (pulled in by libcurl's own
# dependencies, unused) skips its load-time initialisation (docs/ARCHITECTURE.md)
check("env", [{"name": "OPERATOR_LOG_LEVEL", "value": "info"},
              {"name": "GNUTLS_NO_IMPLICIT_INIT", "value": "1"}, {"name": "OCI_REGISTRY", "value": ""},
              {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}],
      c.get("env"))
check("ports", [{"name": "metrics", "containerPort": 8080}, {"name": "probe", "containerPort": 8081}],
      c.get("ports"))
check("liveness", {"httpGet": {"path": "/healthz", "port": "probe"}, "initialDelaySeconds": 15,
                   "periodSeconds": 20}, c.get("livenessProbe"))
check("readiness", {"httpGet": {"path": "/readyz", "port": "probe"}, "initialDelaySeconds": 5,
                    "periodSeconds": 10}, c.get("readinessProbe"))
check("resources", {"requests": {"cpu": "100m", "memory": "128Mi"},
                    "limits": {"cpu": "1000m", "memory": "512Mi"}}, c.get("resources"))

# what kubesim can take (it serves no rbac.authorization.k8s.io)
keep = [o for o in objs if o["kind"] in ("Namespace", "ServiceAccount", "Deployment")]
json.dump({"apiVersion": "v1", "kind": "List", "items": keep}, open(sys.argv[2], "w"))
for e in errors:
    print("FAIL: " + e, file=sys.stderr)
sys.exit(1 if errors else 0)
PY
out=$(k apply -f "$TEST_TMP/apply.json" 2>&1) ||
	fail "the operator's namespace, ServiceAccount and Deployment were refused: $out"
assert_contains "$out" "deployment.apps/cocoon-operator created" "apply the rendered Deployment"
assert_eq cocoon-operator "$(jp deployment cocoon-operator '{.spec.template.spec.serviceAccountName}' \
	-n cocoon-system)" "stored Deployment"

kubesim_stop
echo "PASS: CRDs (v1 and legacy), samples, printer columns, /status, schemas and deploy/operator"
