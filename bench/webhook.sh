#!/usr/bin/env bash
# Admission throughput and latency of webhookd over TLS with keep-alive, side by side with
# nginx serving a static JSON reply of the same size over the same certificate, in the same
# run; then webhookd's resident memory. Figures, not a test: it never fails on a number.
#   BIN=build/bin bench/webhook.sh        (DURATION=10 seconds per run, CONNS=16, PIN=)
#
# Both servers run one thread (nginx: worker_processes 1) and wrk one thread. Each line also
# gives the server's CPU time per request (user+system, from /proc): on a machine shared with
# other work, requests per second move with the load, CPU per request much less.
# PIN=1 puts both servers on CPU 1 and wrk on CPU 0, so client and server never share a core
# (on two cores a one-connection run then pays a cross-CPU wakeup per request; unpinned, the
# scheduler may run them on one core in turn). Unpinned by default.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/tests/integration/lib.sh"
lib_init
. "$ROOT/tests/integration/webhookd-lib.sh"
: "${BIN:=$ROOT/build/bin}"
# as systemd/webhookd.service and deploy/webhook run it: GnuTLS (a dependency of libcurl's
# dependencies, unused) skips its load-time initialisation
export GNUTLS_NO_IMPLICIT_INIT=1
DURATION=${DURATION:-10}
CONNS=${CONNS:-16}
PIN=${PIN:-}
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
wait_for 10 "the nginx worker" bash -c "pgrep -P \$(cat '$D/nginx/nginx.pid')"
npid=$(pgrep -P "$(cat "$D/nginx/nginx.pid")" | head -1)
wrk_cpu=()
if [ -n "$PIN" ]; then
	taskset -pc 1 "$pid" >/dev/null
	taskset -apc 1 "$(cat "$D/nginx/nginx.pid")" >/dev/null
	taskset -apc 1 "$npid" >/dev/null
	wrk_cpu=(taskset -c 0)
fi

cat >"$D/post.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = io.open("$D/review.json"):read("*a")
LUA

# cpu_ticks PID → user+system clock ticks so far
cpu_ticks() {
	awk '{print $14 + $15}' "/proc/$1/stat"
}

# run NAME URL CONNS SERVER_PID → "rps p50_us p99_us non2xx cpu_us_per_request"
run() {
	local t0 t1
	t0=$(cpu_ticks "$4")
	"${wrk_cpu[@]}" wrk -t1 -c"$3" -d"${DURATION}s" --latency -s "$D/post.lua" "$2" \
		>"$D/$1.out" 2>&1
	t1=$(cpu_ticks "$4")
	python3 - "$D/$1.out" "$((t1 - t0))" "$(getconf CLK_TCK)" <<'PY'
import re, sys
t = open(sys.argv[1]).read()
def us(v, unit):
    return float(v) * {"us": 1, "ms": 1000, "s": 1e6}[unit]
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1))
n = int(re.search(r"(\d+) requests in", t).group(1))
lat = {m.group(1): us(m.group(2), m.group(3))
       for m in re.finditer(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", t, re.M)}
errs = re.search(r"Non-2xx or 3xx responses: (\d+)", t)
cpu = int(sys.argv[2]) / int(sys.argv[3]) * 1e6 / n
print(f"{rps:.0f} {lat['50']:.0f} {lat['99']:.0f} {errs.group(1) if errs else 0} {cpu:.1f}")
PY
}

# rss PID → "total anon file" in KiB
rss() {
	awk '/^VmRSS/ {t = $2} /^RssAnon/ {a = $2} /^RssFile/ {f = $2} END {print t, a, f}' \
		"/proc/$1/status"
}

wh_url="https://127.0.0.1:$port/validate-cocoonset"
ng_url="https://127.0.0.1:$nport/validate-cocoonset"
echo "bench-webhook: POST /validate-cocoonset (${#review}-byte AdmissionReview, ${#reply}-byte reply), TLS, keep-alive, ${DURATION}s per run${PIN:+, pinned (servers CPU 1, wrk CPU 0)}"
read -r idle_rss idle_anon idle_file < <(rss "$pid")
for conns in 1 "$CONNS"; do
	read -r w_rps w_p50 w_p99 w_err w_cpu < <(run "wh-$conns" "$wh_url" "$conns" "$pid")
	read -r n_rps n_p50 n_p99 n_err n_cpu < <(run "ng-$conns" "$ng_url" "$conns" "$npid")
	printf '  %2s conn  webhookd %8s req/s  p50 %6s µs  p99 %6s µs  cpu %5s µs/req  (non-2xx %s)\n' \
		"$conns" "$w_rps" "$w_p50" "$w_p99" "$w_cpu" "$w_err"
	printf '  %2s conn  nginx    %8s req/s  p50 %6s µs  p99 %6s µs  cpu %5s µs/req  (non-2xx %s)\n' \
		"$conns" "$n_rps" "$n_p50" "$n_p99" "$n_cpu" "$n_err"
	python3 -c "print(f'  {\"$conns\":>2} conn  throughput ratio webhookd/nginx: {$w_rps/$n_rps:.2f}')"
done
# Resident memory counts the shared libraries' pages too (libcrypto, libcurl and the ~30
# libraries it pulls in): "file" is that part, "anon" webhookd's own. After a quiet tick
# webhookd gives freed heap pages back (malloc_trim), so the figure is taken again then.
read -r run_rss run_anon run_file < <(rss "$pid")
hwm=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
sleep 5
read -r set_rss set_anon set_file < <(rss "$pid")
kib() { awk -v k="$1" 'BEGIN {printf "%.1f MiB", k / 1024}'; }
echo "  webhookd RSS idle before: $(kib "$idle_rss") (anon $(kib "$idle_anon"), file $(kib "$idle_file"))"
echo "  webhookd RSS after the runs: $(kib "$run_rss") (anon $(kib "$run_anon"), file $(kib "$run_file")), peak $(kib "$hwm")"
echo "  webhookd RSS 5 s later: $(kib "$set_rss") (anon $(kib "$set_anon"), file $(kib "$set_file"))"
# Where the resident pages are: the largest mappings by file, and the proportional share
# (PSS: a page shared with n processes counts 1/n) — what webhookd adds to a machine that
# already runs other programs on the same libraries.
python3 - "$pid" <<'PY'
import collections, sys
rss, n = collections.Counter(), 0
cur = None
with open(f"/proc/{sys.argv[1]}/smaps") as f:
    for line in f:
        w = line.split()
        if not w[0].endswith(":"):
            cur = w[5].rsplit("/", 1)[-1] if len(w) > 5 else "[anon]"
        elif w[0] == "Rss:":
            rss[cur] += int(w[1])
libs = [k for k in rss if ".so" in k]
top = ", ".join(f"{k.split('.so')[0]} {v / 1024:.1f}" for k, v in rss.most_common(8))
print(f"  webhookd RSS by mapping (MiB): {top}; {len(libs)} shared libraries in all")
with open(f"/proc/{sys.argv[1]}/smaps_rollup") as f:
    roll = {l.split()[0]: int(l.split()[1]) for l in f if l.split()[0].startswith("Pss")}
print(f"  webhookd PSS: {roll['Pss:'] / 1024:.1f} MiB (anon {roll.get('Pss_Anon:', 0) / 1024:.1f}, file {roll.get('Pss_File:', 0) / 1024:.1f})")
PY
