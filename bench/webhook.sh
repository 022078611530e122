#!/usr/bin/env bash
# Admission throughput and latency of webhookd over TLS with keep-alive, side by side with
# nginx serving a static JSON reply of the same size over the same certificate, in the same
# run; then webhookd's resident memory. Figures, not a test: it never fails on a number.
#   BIN=build/bin bench/webhook.sh        (DURATION=10 seconds per run, CONNS=16)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/tests/integration/lib.sh"
lib_init
. "$ROOT/tests/integration/webhookd-lib.sh"
: "${BIN:=$ROOT/build/bin}"
DURATION=${DURATION:-10}
CONNS=${CONNS:-16}
for t in wrk nginx openssl; do command -v "$t" >/dev/null || { echo "bench-webhook: $t missing"; exit 1; }; done

D=$TEST_TMP
wh_ca
wh_cert tls
port=$(free_port)
mport=$(free_port)
nport=$(free_port)
kubesim_start bench --listen 127.0.0.1:0 --tls >/dev/null
wh_start wh "$port" "$mport"
pid=$WH_PID

review='{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u-1","kind":{"group":"cocoonset.cocoonstack.io","version":"v1","kind":"CocoonSet"},"resource":{"group":"cocoonset.cocoonstack.io","version":"v1","resource":"cocoonsets"},"operation":"CREATE","namespace":"default","name":"x","userInfo":{"username":"u"},"object":{"apiVersion":"cocoonset.cocoonstack.io/v1","kind":"CocoonSet","metadata":{"name":"x","namespace":"default"},"spec":{"agent":{"image":"ubuntu:24.04"}}}}}'
printf '%s' "$review" >"$D/review.json"
reply=$(curl -sS --cacert "$D/ca.crt" --resolve "$WH_SVC:$port:127.0.0.1" \
	-H 'Content-Type: application/json' --data-binary @"$D/review.json" \
	"https://$WH_SVC:$port/validate-cocoonset")
case $reply in *'"allowed":true'*) ;; *) echo "bench-webhook: unexpected reply: $reply"; exit 1 ;; esac
printf '%s' "$reply" >"$D/reply.json"

# nginx: same certificate, same TLS floor, a static reply of the same bytes
mkdir -p "$D/nginx"
cat >"$D/nginx.conf" <<NGX
daemon off;
worker_processes 1;
pid $D/nginx/nginx.pid;
error_log $D/nginx/error.log;
events { worker_connections 1024; }
http {
	access_log off;
	client_body_temp_path $D/nginx;
	proxy_temp_path $D/nginx;
	fastcgi_temp_path $D/nginx;
	uwsgi_temp_path $D/nginx;
	scgi_temp_path $D/nginx;
	server {
		listen 127.0.0.1:$nport ssl;
		ssl_certificate $D/tls.crt;
		ssl_certificate_key $D/tls.key;
		ssl_protocols TLSv1.2 TLSv1.3;
		keepalive_requests 1000000;
		location / {
			default_type application/json;
			client_body_buffer_size 16k;
			return 200 '$reply';
		}
	}
}
NGX
nginx -c "$D/nginx.conf" -e "$D/nginx/error.log" &
lib_bg $!
wait_port 127.0.0.1 "$nport"

cat >"$D/post.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = io.open("$D/review.json"):read("*a")
LUA

# run NAME URL CONNS → "rps p50_us p99_us"
run() {
	wrk -t1 -c"$3" -d"${DURATION}s" --latency -s "$D/post.lua" "$2" >"$D/$1.out" 2>&1
	python3 - "$D/$1.out" <<'PY'
import re, sys
t = open(sys.argv[1]).read()
def us(v, unit):
    return float(v) * {"us": 1, "ms": 1000, "s": 1e6}[unit]
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1))
lat = {m.group(1): us(m.group(2), m.group(3))
       for m in re.finditer(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", t, re.M)}
errs = re.search(r"Non-2xx or 3xx responses: (\d+)", t)
print(f"{rps:.0f} {lat['50']:.0f} {lat['99']:.0f} {errs.group(1) if errs else 0}")
PY
}

wh_url="https://127.0.0.1:$port/validate-cocoonset"
ng_url="https://127.0.0.1:$nport/validate-cocoonset"
echo "bench-webhook: POST /validate-cocoonset (${#review}-byte AdmissionReview, ${#reply}-byte reply), TLS, keep-alive, ${DURATION}s per run"
for conns in 1 "$CONNS"; do
	read -r w_rps w_p50 w_p99 w_err < <(run "wh-$conns" "$wh_url" "$conns")
	read -r n_rps n_p50 n_p99 n_err < <(run "ng-$conns" "$ng_url" "$conns")
	printf '  %2s conn  webhookd %8s req/s  p50 %6s µs  p99 %6s µs  (non-2xx %s)\n' \
		"$conns" "$w_rps" "$w_p50" "$w_p99" "$w_err"
	printf '  %2s conn  nginx    %8s req/s  p50 %6s µs  p99 %6s µs  (non-2xx %s)\n' \
		"$conns" "$n_rps" "$n_p50" "$n_p99" "$n_err"
	python3 -c "print(f'  {\"$conns\":>2} conn  throughput ratio webhookd/nginx: {$w_rps/$n_rps:.2f}')"
done
rss=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
hwm=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
echo "  webhookd RSS after the runs: $((rss / 1024)) MiB (peak $((hwm / 1024)) MiB)"
