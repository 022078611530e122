#!/usr/bin/env bash
# Wall time of `cocoon-net adopt` on an already converged node (issue 7's target: < 50 ms),
# median of 20 runs, beside `ip link show cni0` in the same namespace as the reference (one
# process start and one netlink round trip). Runs in a network namespace it creates, with a
# temporary --root; needs root. Uses hyperfine when installed, else a bash loop.
#   BIN=build/bin bench/netd-adopt.sh
set -euo pipefail
BIN=${BIN:-$(cd "$(dirname "$0")/.." && pwd)/build/bin}
RUNS=20
[ "$(id -u)" = 0 ] || { echo "netd-adopt: needs root (network namespace), skipped"; exit 0; }
[ -x "$BIN/cocoon-net" ] || { echo "netd-adopt: $BIN/cocoon-net not built" >&2; exit 1; }

NS=cnet-bench-$$
TMP=$(mktemp -d /tmp/cocoon-bench.XXXXXX)
trap 'ip netns del "$NS" 2>/dev/null || true; rm -rf "$TMP"' EXIT
ip netns add "$NS"
ip -n "$NS" link add ens4 type veth peer name ens4-peer

ADOPT="ip netns exec $NS $BIN/cocoon-net adopt --platform gke --node-name bench --subnet 172.20.9.0/24 --root $TMP/root"
REF="ip netns exec $NS ip link show cni0"
$ADOPT --manage-iptables >/dev/null
$ADOPT --manage-iptables | grep -q "adopt: no changes" || { echo "netd-adopt: node did not converge" >&2; exit 1; }

# median_ms CMD: the median wall time of RUNS runs, in milliseconds with 2 decimals.
median_ms() {
	if command -v hyperfine >/dev/null; then
		hyperfine -N -w 3 -r "$RUNS" --export-json "$TMP/h.json" "$1" >/dev/null 2>&1
		python3 -c 'import json,sys; print("%.2f" % (json.load(open(sys.argv[1]))["results"][0]["median"] * 1000))' "$TMP/h.json"
		return
	fi
	local i t0 t1 times=()
	$1 >/dev/null 2>&1 # warm-up
	for ((i = 0; i < RUNS; i++)); do
		t0=$(date +%s%N)
		$1 >/dev/null 2>&1
		t1=$(date +%s%N)
		times+=($((t1 - t0)))
	done
	printf '%s\n' "${times[@]}" | sort -n |
		awk '{ a[NR] = $1 } END { m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2; printf "%.2f\n", m / 1e6 }'
}

tool=$(command -v hyperfine >/dev/null && echo hyperfine || echo "bash loop, date +%s%N")
ref=$(median_ms "$REF")
plain=$(median_ms "$ADOPT")
ipt=$(median_ms "$ADOPT --manage-iptables")
echo "cocoon-net adopt on a converged node, median of $RUNS runs ($tool):"
printf '  %-40s %8s ms\n' "ip link show cni0 (reference)" "$ref"
printf '  %-40s %8s ms  (%.1fx reference)\n' "cocoon-net adopt" "$plain" "$(awk -v a="$plain" -v b="$ref" "BEGIN { print a / b }")"
printf '  %-40s %8s ms  (%.1fx reference)\n' "cocoon-net adopt --manage-iptables" "$ipt" "$(awk -v a="$ipt" -v b="$ref" "BEGIN { print a / b }")"
echo "  target: < 50 ms"
