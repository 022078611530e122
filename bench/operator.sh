#!/usr/bin/env bash
# Reconcile throughput of operatord against kubesim: N CocoonSets created at once, a node
# player (bench/operator-node.py) marking each pod Ready as vk-cocoon would, until every set
# reports Running; beside it, the same API work done directly by a script against a fresh
# kubesim (the API double's floor), ratio printed. Then, at N sets: operatord's API writes
# over 10 s of steady state (target 0) and its RSS (target < 16 MiB at 1,000 sets).
# Figures, not a test.    BIN=build/bin bench/operator.sh     (SIZES="100 1000", REF=0 skips
# the reference runs)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/tests/integration/lib.sh"
lib_init
: "${BIN:=$ROOT/build/bin}"
SIZES=${SIZES:-100 1000}
KUBECTL=${KUBECTL:-kubectl}
NODE="python3 $ROOT/bench/operator-node.py"

setup_cluster() {
	kubesim_start "$1" --listen 127.0.0.1:0 >/dev/null
	"$KUBECTL" apply -k "$ROOT/deploy/crds" >/dev/null
	kcurl POST /api/v1/namespaces '{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"bench"}}' >/dev/null
	kcurl POST /api/v1/nodes '{"apiVersion":"v1","kind":"Node","metadata":{"name":"node-a","labels":{"cocoonstack.io/pool":"default"}}}' >/dev/null
	kcurl PATCH /api/v1/nodes/node-a/status '{"status":{"conditions":[{"type":"Ready","status":"True"}]}}' >/dev/null 2>&1 ||
		curl -sS -X PATCH -H "Authorization: Bearer $KUBESIM_TOKEN" -H 'Content-Type: application/merge-patch+json' \
			--data '{"status":{"conditions":[{"type":"Ready","status":"True"}]}}' "$KUBESIM_URL/api/v1/nodes/node-a/status" >/dev/null
}

metric() { curl -s "127.0.0.1:$1/metrics" | awk -v m="$2" '$1 == m {print $2}'; }

for n in $SIZES; do
	if [ "${REF:-1}" = 1 ]; then
		setup_cluster "ref-$n"
		ref=$($NODE "$KUBESIM_URL" "$KUBESIM_TOKEN" "$n" reference)
		kubesim_stop
	else
		ref=0 # REF=0: no reference run (quicker, for memory work); the ratio is meaningless
	fi

	setup_cluster "op-$n"
	mport=$(free_port)
	pport=$(free_port)
	EPOCH_URL=http://127.0.0.1:1 LEADER_ELECT=false METRICS_ADDR=127.0.0.1:$mport \
		PROBE_ADDR=127.0.0.1:$pport OPERATOR_LOG_LEVEL=warning \
		"$BIN/operatord" >"$TEST_TMP/operatord-$n.log" 2>&1 &
	op=$!
	lib_bg "$op"
	wait_port 127.0.0.1 "$pport"
	took=$($NODE "$KUBESIM_URL" "$KUBESIM_TOKEN" "$n" operator)
	sleep 2 # let the last status writes land
	w0=$(metric "$mport" 'cocoon_operator_api_writes_total{controller="cocoonset"}')
	sleep 10
	w1=$(metric "$mport" 'cocoon_operator_api_writes_total{controller="cocoonset"}')
	rss=$(awk '/VmRSS/ {print $2}' "/proc/$op/status")
	kill -TERM "$op"
	wait "$op" || true
	lib_forget "$op"
	kubesim_stop
	awk -v n="$n" -v t="$took" -v r="$ref" -v w0="$w0" -v w1="$w1" -v rss="$rss" 'BEGIN {
		if (r > 0) printf "operator n=%-5d operatord %.2f s (%.0f sets/s); direct API floor %.2f s (%.0f sets/s); ratio %.2fx the floor\n", n, t, n / t, r, n / r, t / r
		else printf "operator n=%-5d operatord %.2f s (%.0f sets/s)\n", n, t, n / t
		printf "operator n=%-5d steady-state API writes in 10 s: %d (%.2f per set); RSS %.1f MiB\n", n, w1 - w0, (w1 - w0) / n, rss / 1024
	}'
done
