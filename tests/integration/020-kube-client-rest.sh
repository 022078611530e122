#!/usr/bin/env bash
# The Kubernetes client's configuration and REST calls (common/src/kube_config.c,
# kube_client.c) against kubesim over TLS, driven by $TOOLS/kube-rest:
#   - CRUD of a ConfigMap and of a custom resource (CRD registered on the fly), on the
#     event-loop path and through kube_request_sync (--sync);
#   - a list with --limit 2 over 7 objects returns all 7, fetched page by page;
#   - the Status errors and their errno classes: NotFound, AlreadyExists, a stale update
#     (Conflict), a failing JSON patch (422 Invalid), a wrong UID precondition on delete
#     (409), a strategic merge patch on a custom resource (415);
#   - a strategic merge patch of a pod's container list merges by name;
#   - TLS verified with the kubeconfig's CA data (a wrong CA is rejected), a tokenFile with
#     the wrong token gives Unauthorized and the right one works, relative paths in a
#     kubeconfig are relative to its directory, and a broken kubeconfig is named precisely;
#   - retries: a call started before the server listens succeeds once it is up.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
lib_init

for tool in python3 openssl curl jq; do
	command -v "$tool" >/dev/null || skip "$tool is not installed"
done
KR=${TOOLS:?TOOLS must point at the built tests/tools}/kube-rest
[ -x "$KR" ] || fail "no $KR (build it with make tests-build)"
D=$TEST_TMP

kubesim_start rest --tls --log-level debug
CM=/api/v1/namespaces/default/configmaps
W=/apis/example.com/v1/namespaces/default/widgets

# kr_err ARGS...: run kube-rest expecting failure; prints its stderr
kr_err() {
	local rc=0 err
	err=$("$KR" "$@" 2>&1 >/dev/null) || rc=$?
	[ "$rc" -eq 1 ] || fail "kube-rest $* exited $rc, expected 1 (stderr: $err)"
	printf '%s' "$err"
}
field() { jq -r "$1"; }

echo "== ConfigMap CRUD"
out=$("$KR" create "$CM" '{"metadata":{"name":"cm1"},"data":{"a":"1"}}')
assert_eq "1" "$(field .data.a <<<"$out")" "created data"
uid=$(field .metadata.uid <<<"$out")
rv=$(field .metadata.resourceVersion <<<"$out")
assert_eq "cm1" "$("$KR" get "$CM/cm1" | field .metadata.name)" "get"
assert_eq "$uid" "$("$KR" --sync get "$CM/cm1" | field .metadata.uid)" "get --sync"
out=$("$KR" update "$CM/cm1" "{\"metadata\":{\"name\":\"cm1\",\"resourceVersion\":\"$rv\"},\"data\":{\"a\":\"2\"}}")
assert_eq "2" "$(field .data.a <<<"$out")" "updated data"
out=$("$KR" patch-merge "$CM/cm1" '{"data":{"b":"3"}}')
assert_eq "2 3" "$(field '"\(.data.a) \(.data.b)"' <<<"$out")" "merge patch keeps a, adds b"

echo "== Status errors"
err=$(kr_err update "$CM/cm1" "{\"metadata\":{\"name\":\"cm1\",\"resourceVersion\":\"$rv\"},\"data\":{}}")
assert_contains "$err" 'error: ESTALE 409 Conflict: Operation cannot be fulfilled on configmaps "cm1"' "stale update"
err=$(kr_err create "$CM" '{"metadata":{"name":"cm1"}}')
assert_eq 'error: EEXIST 409 AlreadyExists: configmaps "cm1" already exists' "$err" "duplicate create"
err=$(kr_err patch-json "$CM/cm1" '[{"op":"test","path":"/data/a","value":"nope"}]')
assert_contains "$err" "error: EINVAL 422 Invalid: " "failing JSON patch"
err=$(kr_err delete --uid not-the-uid "$CM/cm1")
assert_contains "$err" "error: ESTALE 409 Conflict: " "wrong UID precondition"
assert_contains "$err" "Precondition failed: UID in precondition: not-the-uid" "precondition message"
out=$("$KR" delete --grace 0 --uid "$uid" "$CM/cm1")
assert_eq "Success $uid" "$(field '"\(.status) \(.details.uid)"' <<<"$out")" "delete with the right UID"
err=$(kr_err get "$CM/cm1")
assert_eq 'error: ENOENT 404 NotFound: configmaps "cm1" not found' "$err" "get after delete"
err=$(kr_err --sync get "$CM/cm1")
assert_eq 'error: ENOENT 404 NotFound: configmaps "cm1" not found' "$err" "get --sync after delete"
grep -q 'DELETE /api/v1/namespaces/default/configmaps/cm1 -> 200' "$KUBESIM_LOG" ||
	fail "kubesim did not log the delete"

echo "== list pagination: --limit 2 over 7 objects"
for i in 1 2 3 4 5 6 7; do
	"$KR" --sync create "$CM" "{\"metadata\":{\"name\":\"page-$i\",\"labels\":{\"set\":\"paged\"}}}" >/dev/null
done
"$KR" create "$CM" '{"metadata":{"name":"other","labels":{"set":"else"}}}' >/dev/null
out=$("$KR" list --limit 2 --label-selector set=paged "$CM")
assert_eq "page-1 page-2 page-3 page-4 page-5 page-6 page-7" \
	"$(field '[.items[].metadata.name] | sort | join(" ")' <<<"$out")" "all 7 items, once each"
assert_eq "null" "$(field .metadata.continue <<<"$out")" "no continue token left in the merged list"
pages=$(grep -c 'GET /api/v1/namespaces/default/configmaps?labelSelector=set%3Dpaged&limit=2' "$KUBESIM_LOG")
assert_eq 4 "$pages" "page requests (2+2+2+1)"
assert_eq 3 "$(grep -c 'limit=2&continue=' "$KUBESIM_LOG")" "continued pages"

echo "== custom resource CRUD"
kcurl POST /apis/apiextensions.k8s.io/v1/customresourcedefinitions '{
  "apiVersion":"apiextensions.k8s.io/v1","kind":"CustomResourceDefinition",
  "metadata":{"name":"widgets.example.com"},
  "spec":{"group":"example.com","scope":"Namespaced",
    "names":{"plural":"widgets","singular":"widget","kind":"Widget"},
    "versions":[{"name":"v1","served":true,"storage":true,"subresources":{"status":{}},
      "schema":{"openAPIV3Schema":{"type":"object","x-kubernetes-preserve-unknown-fields":true}}}]}}' >/dev/null
wait_for 10 "the widgets resource to be served" "$KR" list "$W"
out=$("$KR" create "$W" '{"apiVersion":"example.com/v1","kind":"Widget","metadata":{"name":"w1"},"spec":{"size":1}}')
assert_eq "1" "$(field .metadata.generation <<<"$out")" "custom resource generation"
rv=$(field .metadata.resourceVersion <<<"$out")
out=$("$KR" update "$W/w1" "{\"apiVersion\":\"example.com/v1\",\"kind\":\"Widget\",\"metadata\":{\"name\":\"w1\",\"resourceVersion\":\"$rv\"},\"spec\":{\"size\":2}}")
assert_eq "2 2" "$(field '"\(.spec.size) \(.metadata.generation)"' <<<"$out")" "update bumps generation"
out=$("$KR" patch-merge "$W/w1/status" '{"status":{"ready":true}}')
assert_eq "true" "$(field .status.ready <<<"$out")" "status subresource"
err=$(kr_err patch-strategic "$W/w1" '{"spec":{"size":3}}')
assert_contains "$err" "error: EOPNOTSUPP 415 UnsupportedMediaType: " "strategic merge on a custom resource"
assert_eq "w1" "$("$KR" list "$W" | field '.items[].metadata.name')" "list widgets"
"$KR" delete "$W/w1" >/dev/null
err=$(kr_err get "$W/w1")
assert_contains "$err" 'error: ENOENT 404 NotFound: widgets.example.com "w1" not found' "widget gone"

echo "== strategic merge of a container list by name"
"$KR" create /api/v1/namespaces/default/pods '{"metadata":{"name":"p1"},"spec":{"containers":[
  {"name":"a","image":"busybox:1"},{"name":"b","image":"busybox:1"}]}}' >/dev/null
out=$("$KR" patch-strategic /api/v1/namespaces/default/pods/p1 '{"spec":{"containers":[{"name":"b","image":"busybox:2"}]}}')
assert_eq "a=busybox:1 b=busybox:2" \
	"$(field '[.spec.containers[] | "\(.name)=\(.image)"] | join(" ")' <<<"$out")" "containers merged by name"

echo "== TLS and tokens from the kubeconfig"
ca_data=$(awk '/certificate-authority-data:/ {print $2}' "$KUBECONFIG")
[ -n "$ca_data" ] || fail "kubesim's kubeconfig has no certificate-authority-data"
mkdir -p "$D/kc/sub"
kubeconfig() { # kubeconfig FILE CLUSTER-EXTRA USER-BODY
	cat >"$1" <<EOF
apiVersion: v1
kind: Config
current-context: t
clusters:
- name: c
  cluster:
    server: $KUBESIM_URL
$2
users:
- name: u
  user:
$3
contexts:
- name: t
  context: {cluster: c, user: u, namespace: default}
EOF
}
printf 'wrong-token\n' >"$D/kc/sub/token"
kubeconfig "$D/kc/config" "    certificate-authority-data: $ca_data" "    tokenFile: sub/token"
err=$(kr_err --kubeconfig "$D/kc/config" get "$CM/other")
assert_contains "$err" "error: EACCES 401 Unauthorized: " "a wrong token from the token file"
printf '%s\n' "$KUBESIM_TOKEN" >"$D/kc/sub/token"
assert_eq "other" "$("$KR" --kubeconfig "$D/kc/config" get "$CM/other" | field .metadata.name)" \
	"the right token from the token file (relative to the kubeconfig)"

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
	-keyout "$D/kc/other.key" -out "$D/kc/other.crt" -subj "/CN=other-ca" 2>/dev/null
kubeconfig "$D/kc/wrong-ca" "    certificate-authority: other.crt" "    token: $KUBESIM_TOKEN"
err=$(kr_err --kubeconfig "$D/kc/wrong-ca" --retries 0 get "$CM/other")
assert_contains "$err" "error: EKEYREJECTED 0 -: " "a server certificate from another CA"
kubeconfig "$D/kc/insecure" "    insecure-skip-tls-verify: true" "    token: $KUBESIM_TOKEN"
assert_eq "other" "$("$KR" --kubeconfig "$D/kc/insecure" get "$CM/other" | field .metadata.name)" \
	"insecure-skip-tls-verify"

echo "== kubeconfig errors"
kubeconfig "$D/kc/broken" "" "    client-certificate-data: $ca_data
    client-key-data: '%%%not-base64'"
err=$(kr_err --kubeconfig "$D/kc/broken" get "$CM/other")
assert_eq "error: $D/kc/broken: users[0].user.client-key-data: not valid base64" "$err" "broken key data"
printf 'clusters:\n- name: c\n   cluster: {}\n' >"$D/kc/bad-yaml"
err=$(kr_err --kubeconfig "$D/kc/bad-yaml" get "$CM/other")
assert_eq "error: $D/kc/bad-yaml: line 3 column 11: mapping values are not allowed in this context" \
	"$err" "malformed YAML"
err=$(KUBECONFIG=$D/kc/config kr_err --context nope get "$CM/other")
assert_eq "error: $D/kc/config: contexts: context \"nope\" not found" "$err" "unknown context"
kubeconfig "$D/kc/exec" "" "    exec: {command: gke-gcloud-auth-plugin, apiVersion: client.authentication.k8s.io/v1beta1}"
err=$(kr_err --kubeconfig "$D/kc/exec" get "$CM/other")
assert_contains "$err" "users[0].user.exec: exec credential plugins are not supported (user \"u\")" "exec plugin"

echo "== retries: the server comes up after the call started"
port=$(free_port)
kubeconfig "$D/kc/late" "" "    token: unused-over-plain-http"
sed -i "s|server: .*|server: http://127.0.0.1:$port|" "$D/kc/late"
start=$SECONDS
KUBE_REST_LOG_LEVEL=debug "$KR" --kubeconfig "$D/kc/late" --retries 8 get /api/v1/namespaces/default \
	>"$D/late.out" 2>"$D/late.err" &
kr_pid=$!
lib_bg "$kr_pid"
sleep 1
python3 "$KUBESIM_BIN" --listen "127.0.0.1:$port" --kubeconfig "$D/late.kc" >"$D/late-sim.out" 2>&1 &
lib_bg $!
rc=0
wait "$kr_pid" || rc=$?
lib_forget "$kr_pid"
assert_eq 0 "$rc" "kube-rest exit status (stderr: $(cat "$D/late.err"))"
assert_eq "default" "$(field .metadata.name <"$D/late.out")" "namespace fetched after the retries"
assert_contains "$(cat "$D/late.err")" "retrying in" "the retries were logged"
[ $((SECONDS - start)) -lt 30 ] || fail "the retried call took $((SECONDS - start)) s"

kubesim_stop
echo "PASS"
