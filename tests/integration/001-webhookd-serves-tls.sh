#!/usr/bin/env bash
# webhookd plumbing: configuration errors, systemd socket activation over TLS, /healthz,
# /readyz (200 once the caches of kubesim's pods and nodes are synced), /metrics (checked
# by promtool), certificate rotation (good and bad files), READY=1 to systemd once the caches
# are synced, and a clean stop on SIGTERM.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
lib_init

WEBHOOKD=${BIN:?set BIN to the build bin directory}/webhookd
D=$TEST_TMP
new_cert() { # new_cert NAME CN → $D/NAME.crt, $D/NAME.key
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
		-keyout "$D/$1.key" -out "$D/$1.crt" -subj "/CN=$2" \
		-addext subjectAltName=IP:127.0.0.1,DNS:localhost 2>/dev/null
}
served_fingerprint() {
	openssl s_client -connect "127.0.0.1:$1" </dev/null 2>/dev/null |
		openssl x509 -noout -fingerprint -sha256 | cut -d= -f2
}
file_fingerprint() { openssl x509 -noout -fingerprint -sha256 -in "$1" | cut -d= -f2; }

# --- --help lists every variable; bad configuration exits 2 with a precise message
help=$("$WEBHOOKD" --help)
for v in WEBHOOK_LOG_LEVEL TLS_CERT TLS_KEY LISTEN_ADDR METRICS_ADDR KUBECONFIG REAPER_INTERVAL \
	REAPER_GRACE; do
	assert_contains "$help" "$v" "--help"
done
rc=0
out=$(LISTEN_ADDR=8443 "$WEBHOOKD" 2>&1) || rc=$?
assert_eq 2 "$rc" "exit status for a malformed LISTEN_ADDR"
assert_contains "$out" 'invalid LISTEN_ADDR="8443": expected a listen address' "error text"
rc=0
out=$("$WEBHOOKD" --bogus 2>&1) || rc=$?
assert_eq 2 "$rc" "exit status for an unknown option"

rc=0
out=$(REAPER_GRACE="30 minutes" "$WEBHOOKD" 2>&1) || rc=$?
assert_eq 2 "$rc" "exit status for a malformed REAPER_GRACE"
assert_contains "$out" 'invalid REAPER_GRACE="30 minutes"' "error text"

# --- without a reachable configuration it refuses to start and says why
rc=0
out=$(HOME=$D KUBECONFIG=$D/none.yaml LISTEN_ADDR=127.0.0.1:0 METRICS_ADDR=127.0.0.1:0 \
	"$WEBHOOKD" 2>&1) || rc=$?
assert_eq 1 "$rc" "exit status without a kubeconfig"
assert_contains "$out" "cannot load the Kubernetes configuration" "kubeconfig message"

kubesim_start ks --listen 127.0.0.1:0 --tls

# --- a missing key pair is fatal and names the file
rc=0
out=$(TLS_CERT=$D/nope.crt TLS_KEY=$D/nope.key LISTEN_ADDR=127.0.0.1:0 \
	METRICS_ADDR=127.0.0.1:0 "$WEBHOOKD" 2>&1) || rc=$?
assert_eq 1 "$rc" "exit status without a key pair"
assert_contains "$out" "$D/nope.crt: certificate file does not exist" "missing cert message"

# --- socket activation: systemd-socket-activate binds, webhookd adopts fd "admission"
new_cert tls localhost
port=$(free_port)
mport=$(free_port)
export TLS_CERT=$D/tls.crt TLS_KEY=$D/tls.key METRICS_ADDR=127.0.0.1:$mport
systemd-socket-activate -l "127.0.0.1:$port" --fdname=admission \
	-E TLS_CERT -E TLS_KEY -E METRICS_ADDR -E KUBECONFIG "$WEBHOOKD" >"$D/webhookd.log" 2>&1 &
pid=$!
lib_bg "$pid"
wait_port 127.0.0.1 "$port"

assert_eq "ok" "$(curl -sS --cacert "$D/tls.crt" "https://127.0.0.1:$port/healthz")" "/healthz"
wait_for 10 "/readyz to answer 200" curl -sf --cacert "$D/tls.crt" "https://127.0.0.1:$port/readyz"
assert_eq "ready" "$(curl -sS --cacert "$D/tls.crt" "https://127.0.0.1:$port/readyz")" "/readyz"
code=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$D/tls.crt" \
	"https://127.0.0.1:$port/nope" -d '{}')
assert_eq 404 "$code" "an unknown path"
if curl -sS -m 3 "http://127.0.0.1:$port/healthz" >/dev/null 2>&1; then
	fail "the admission port answered plain HTTP"
fi
assert_contains "$(cat "$D/webhookd.log")" "serving admission on 1 systemd socket(s)" "log"

wait_port 127.0.0.1 "$mport"
curl -sS "http://127.0.0.1:$mport/metrics" >"$D/metrics"
promtool check metrics <"$D/metrics" || fail "promtool rejected /metrics: $(cat "$D/metrics")"
assert_contains "$(cat "$D/metrics")" "process_resident_memory_bytes" "process metrics"
fp0=$(file_fingerprint "$D/tls.crt")
assert_contains "$(cat "$D/metrics")" "cocoon_tls_certificate_fingerprint_info{sha256=\"$fp0\"} 1" \
	"fingerprint of the served certificate"
assert_eq "$fp0" "$(served_fingerprint "$port")" "certificate served"

# --- rotation: replace both files the way a secret volume does (rename over)
new_cert rotated localhost
fp1=$(file_fingerprint "$D/rotated.crt")
mv "$D/rotated.key" "$D/tls.key"
mv "$D/rotated.crt" "$D/tls.crt"
wait_for 5 "the rotated certificate to be served" \
	bash -c "[ \"\$(openssl s_client -connect 127.0.0.1:$port </dev/null 2>/dev/null | openssl x509 -noout -fingerprint -sha256 | cut -d= -f2)\" = '$fp1' ]"
curl -sS "http://127.0.0.1:$mport/metrics" >"$D/metrics"
assert_contains "$(cat "$D/metrics")" 'cocoon_tls_reloads_total{result="success"} 1' "one reload"
assert_eq "ok" "$(curl -sS --cacert "$D/tls.crt" "https://127.0.0.1:$port/healthz")" \
	"/healthz with the rotated certificate"

# --- a broken file keeps the last good certificate and says why
echo "not a certificate" >"$D/tls.crt"
wait_for 5 "the failed reload to be counted" \
	bash -c "curl -sS http://127.0.0.1:$mport/metrics | grep -q 'cocoon_tls_reloads_total{result=\"failure\"} 1'"
assert_eq "$fp1" "$(served_fingerprint "$port")" "certificate after a broken rotation"
assert_contains "$(cat "$D/webhookd.log")" "still serving the previous certificate" "warning"

# --- SIGTERM: clean exit 0
kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
lib_forget "$pid"
assert_eq 0 "$rc" "exit status after SIGTERM"
assert_contains "$(cat "$D/webhookd.log")" "stopping" "drain message"

# --- LISTEN_ADDR without socket activation, and READY=1 on $NOTIFY_SOCKET
new_cert tls localhost
python3 - "$D/notify.sock" >"$D/notify.out" <<'PY' &
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
s.settimeout(20)
while True:
    msg = s.recv(4096).decode()
    print(msg.replace("\n", " "), flush=True)
    if "READY=1" in msg:
        break
PY
npid=$!
lib_bg "$npid"
wait_for 5 "the notify socket" test -S "$D/notify.sock"
NOTIFY_SOCKET=$D/notify.sock LISTEN_ADDR=127.0.0.1:0 METRICS_ADDR=127.0.0.1:0 \
	"$WEBHOOKD" >"$D/webhookd2.log" 2>&1 &
pid=$!
lib_bg "$pid"
wait "$npid" || fail "no READY=1 on NOTIFY_SOCKET: $(cat "$D/notify.out")"
lib_forget "$npid"
assert_contains "$(cat "$D/notify.out")" "STATUS=serving admission on 127.0.0.1:0" "notify status"
# READY=1 only once both caches are synced: before that /mutate cannot reserve
assert_contains "$(cat "$D/notify.out")" "STATUS=waiting for the pod and node caches" \
	"notify status before the caches are synced"
serving=$(grep -n -m1 'serving admission' "$D/webhookd2.log" | cut -d: -f1)
for cache in pod node; do
	synced=$(grep -n -m1 "$cache cache synced" "$D/webhookd2.log" | cut -d: -f1)
	[ -n "$synced" ] && [ -n "$serving" ] && [ "$synced" -lt "$serving" ] ||
		fail "READY before the $cache cache was synced: $(cat "$D/webhookd2.log")"
done
port=$(sed -n 's/.*admission on 127.0.0.1:0 (port \([0-9]*\)).*/\1/p' "$D/webhookd2.log" | head -1)
[ -n "$port" ] || fail "no port in the log: $(cat "$D/webhookd2.log")"
assert_eq "ok" "$(curl -sS --cacert "$D/tls.crt" "https://127.0.0.1:$port/healthz")" \
	"/healthz on LISTEN_ADDR"
kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
lib_forget "$pid"
assert_eq 0 "$rc" "exit status after SIGTERM (LISTEN_ADDR)"
echo "PASS: webhookd serves health, readiness and metrics over TLS, rotates, stops cleanly"
