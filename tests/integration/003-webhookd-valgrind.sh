#!/usr/bin/env bash
# webhookd runs clean under valgrind memcheck: requests (admission on every route, a
# reservation written to kubesim, malformed reviews, unknown path, garbage), a
# certificate rotation and a failed one, then SIGTERM; any error or leak fails the test.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
lib_init
: "${BIN:?set BIN to the build bin directory}"
command -v valgrind >/dev/null || fail "valgrind is missing (package valgrind)"
case "$BIN" in */asan/*) skip "valgrind cannot run an ASan build" ;; esac

D=$TEST_TMP
cert() {
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
		-keyout "$D/$1.key" -out "$D/$1.crt" -subj /CN=localhost \
		-addext subjectAltName=IP:127.0.0.1 2>/dev/null
}
cert tls
kubesim_start ks --listen 127.0.0.1:0 --tls
port=$(free_port)
mport=$(free_port)
TLS_CERT=$D/tls.crt TLS_KEY=$D/tls.key LISTEN_ADDR=127.0.0.1:$port \
	METRICS_ADDR=127.0.0.1:$mport valgrind --quiet --leak-check=full \
	--show-leak-kinds=definite,indirect,possible \
	--errors-for-leak-kinds=definite,indirect,possible --error-exitcode=9 \
	"$BIN/webhookd" >"$D/vg.log" 2>&1 &
pid=$!
lib_bg "$pid"
wait_port 127.0.0.1 "$port" 30
wait_port 127.0.0.1 "$mport" 30

wait_for 30 "/readyz" curl -sf --cacert "$D/tls.crt" "https://127.0.0.1:$port/readyz"
review='{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","kind":{"group":"","version":"v1","kind":"Pod"},"resource":{"group":"","version":"v1","resource":"pods"},"operation":"CREATE","namespace":"default","name":"p","userInfo":{"username":"u"},"object":{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","namespace":"default"},"spec":{"tolerations":[{"key":"virtual-kubelet.io/provider","operator":"Exists"}],"containers":[{"name":"c","image":"i"}]}}}}'
for path in mutate validate validate-cocoonset validate-cocoonhibernation; do
	curl -sS --cacert "$D/tls.crt" "https://127.0.0.1:$port/$path" -d "$review" >/dev/null
	curl -sS --cacert "$D/tls.crt" "https://127.0.0.1:$port/$path" -d '{"request":' >/dev/null
done
for _ in 1 2 3 4 5; do
	curl -sS --cacert "$D/tls.crt" "https://127.0.0.1:$port/healthz" >/dev/null
	curl -sS "http://127.0.0.1:$mport/metrics" >/dev/null
done
curl -s --cacert "$D/tls.crt" "https://127.0.0.1:$port/nope" -d payload >/dev/null || true
printf 'GARBAGE\r\n\r\n' | timeout 5 openssl s_client -quiet -connect "127.0.0.1:$port" \
	>/dev/null 2>&1 || true
printf 'not tls at all\r\n' | timeout 5 bash -c "cat >/dev/tcp/127.0.0.1/$port" || true

cert new
mv "$D/new.key" "$D/tls.key" && mv "$D/new.crt" "$D/tls.crt"
wait_for 20 "the reload" grep -q "TLS key pair reloaded" "$D/vg.log"
echo broken >"$D/tls.crt"
wait_for 20 "the failed reload" grep -q "reload failed" "$D/vg.log"

kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
lib_forget "$pid"
[ "$rc" -eq 0 ] || fail "webhookd under valgrind exited $rc: $(cat "$D/vg.log")"
if grep -q '==[0-9]*==' "$D/vg.log"; then
	fail "valgrind reported: $(grep '==[0-9]*==' "$D/vg.log" | head -40)"
fi
echo "PASS: webhookd is clean under valgrind"
