#!/usr/bin/env bash
# Certificate rotation under load: while clients post AdmissionReviews to
# /validate-cocoonset over keep-alive connections, the key pair is replaced three times the
# way a Secret volume does it (rename over). Every request must succeed, new connections must
# see the new certificate, and webhookd must count the reloads.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
lib_init
. "$(dirname "$0")/webhookd-lib.sh"
: "${BIN:?set BIN to the build bin directory}"

wh_ca
wh_cert tls
port=$(free_port)
mport=$(free_port)
kubesim_start ks --listen 127.0.0.1:0 --tls
wh_start wh "$port" "$mport"

review='{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u-1","kind":{"group":"cocoonset.cocoonstack.io","version":"v1","kind":"CocoonSet"},"resource":{"group":"cocoonset.cocoonstack.io","version":"v1","resource":"cocoonsets"},"operation":"CREATE","namespace":"default","name":"x","userInfo":{"username":"u"},"object":{"apiVersion":"cocoonset.cocoonstack.io/v1","kind":"CocoonSet","metadata":{"name":"x","namespace":"default"},"spec":{"agent":{"image":"ubuntu:24.04"}}}}}'
url="https://$WH_SVC:$port/validate-cocoonset"
load() { # 30 requests per connection until the stop file appears
	local n=0 args=()
	for _ in $(seq 30); do args+=(--next --cacert "$TEST_TMP/ca.crt" --resolve "$WH_SVC:$port:127.0.0.1" -sS -o /dev/null -w '%{http_code}\n' -d "$review" "$url"); done
	while [ ! -e "$TEST_TMP/stop" ]; do
		curl "${args[@]:1}" >>"$TEST_TMP/codes.$1" 2>>"$TEST_TMP/errors.$1" || echo "curl exit $?" >>"$TEST_TMP/errors.$1"
		n=$((n + 1))
	done
}
load 1 &
l1=$!
load 2 &
l2=$!
lib_bg "$l1"
lib_bg "$l2"
fp() { openssl x509 -noout -fingerprint -sha256 -in "$1" | cut -d= -f2; }
served() { openssl s_client -connect "127.0.0.1:$port" -servername "$WH_SVC" </dev/null 2>/dev/null |
	openssl x509 -noout -fingerprint -sha256 | cut -d= -f2; }
for i in 1 2 3; do
	sleep 1
	wh_cert "new$i"
	want=$(fp "$TEST_TMP/new$i.crt")
	mv "$TEST_TMP/new$i.key" "$TEST_TMP/tls.key"
	mv "$TEST_TMP/new$i.crt" "$TEST_TMP/tls.crt"
	wait_for 10 "certificate $i to be served" bash -c "[ \"\$(openssl s_client -connect 127.0.0.1:$port -servername $WH_SVC </dev/null 2>/dev/null | openssl x509 -noout -fingerprint -sha256 | cut -d= -f2)\" = '$want' ]"
done
sleep 1
touch "$TEST_TMP/stop"
wait "$l1" "$l2"
lib_forget "$l1"
lib_forget "$l2"
total=$(cat "$TEST_TMP"/codes.* | wc -l)
ok=$(cat "$TEST_TMP"/codes.* | grep -c '^200$' || true)
[ "$total" -ge 100 ] || fail "only $total requests were made"
assert_eq "$total" "$ok" "requests answered 200 during rotation ($(sort "$TEST_TMP"/codes.* | uniq -c | tr '\n' ' ') $(cat "$TEST_TMP"/errors.* | head -3))"
assert_eq "" "$(cat "$TEST_TMP"/errors.*)" "client errors"
assert_contains "$(wh_metric "$mport" cocoon_tls_reloads_total)" 'cocoon_tls_reloads_total{result="success"} 3' "reloads"
assert_contains "$(wh_metric "$mport" cocoon_webhook_admission_total)" \
	"cocoon_webhook_admission_total{handler=\"validate_cocoonset\",result=\"allow\",reason=\"\"} $total" "one sample per request"
echo "PASS: $total requests across three certificate rotations, none failed"
