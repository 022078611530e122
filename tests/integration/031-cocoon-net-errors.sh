#!/usr/bin/env bash
# cocoon-net's error contract: usage errors exit 2 with the usage text, bad values exit 1
# with a message naming the flag and value, missing state says to run init, platform
# detection failures say what to pass — and none of them touches the node.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
lib_init
[ "$(id -u)" = 0 ] || skip "needs root for network namespaces"

NS=cnet-err-$$
ROOT=$TEST_TMP/root
cleanup_ns() { ip netns del "$NS" 2>/dev/null || true; lib_cleanup; }
trap cleanup_ns EXIT
ip netns add "$NS"
# Metadata URLs on a port nothing listens on: detection fails at once, offline.
DEAD=http://127.0.0.1:$(free_port)

# run WANT_RC EXPECTED_STDERR ARGS...: exit code and message.
run() {
	local want=$1 msg=$2 rc=0 err
	shift 2
	err=$(ip netns exec "$NS" env COCOON_NET_ROOT="$ROOT" COCOON_RUN_DIR="$TEST_TMP/run" \
		COCOON_NET_GKE_METADATA_URL=$DEAD COCOON_NET_VOLC_METADATA_URL=$DEAD \
		"$BIN/cocoon-net" "$@" 2>&1 >/dev/null) || rc=$?
	assert_eq "$want" "$rc" "exit code of cocoon-net $*"
	assert_contains "$err" "$msg" "stderr of cocoon-net $*"
}

A=(adopt --platform gke --node-name n)
# Usage errors: 2, with the command's usage.
run 2 "cocoon-net adopt: unknown flag --bogus" "${A[@]}" --subnet 10.0.0.0/24 --bogus
run 2 "Usage: cocoon-net adopt --node-name NAME --subnet CIDR [flags]" "${A[@]}" --subnet 10.0.0.0/24 --bogus
run 2 "cocoon-net adopt: missing required flag --subnet" "${A[@]}"
run 2 "cocoon-net init: missing required flag --node-name" init --subnet 10.0.0.0/24
run 2 "cocoon-net adopt: --pool-size ten: not an integer" "${A[@]}" --subnet 10.0.0.0/24 --pool-size ten
run 2 "cocoon-net adopt: flag --subnet needs a value" "${A[@]}" --subnet
run 2 "cocoon-net status: unexpected argument \"extra\"" status extra
run 2 "cocoon-net init: unknown flag --manage-iptables" init --node-name n --subnet 10.0.0.0/24 --manage-iptables
run 2 "cocoon-net: unknown command \"frobnicate\"" frobnicate
run 2 "Usage: cocoon-net <command> [flags]"
# Bad values: 1, naming flag and value.
run 1 "--subnet 10.0.0.0/33: not an IPv4 CIDR (a.b.c.d/n)" "${A[@]}" --subnet 10.0.0.0/33
run 1 "--subnet 10.0.0.0/31: too small, a pool needs at least a /30" "${A[@]}" --subnet 10.0.0.0/31
run 1 "--gateway 10.0.1.1: outside --subnet 10.0.0.0/24" "${A[@]}" --subnet 10.0.0.0/24 --gateway 10.0.1.1
run 1 "--gateway 10.0.0.255: is the broadcast address of 10.0.0.0/24" "${A[@]}" --subnet 10.0.0.0/24 --gateway 10.0.0.255
run 1 "--pool-size -5: must be between 0 and 65534" "${A[@]}" --subnet 10.0.0.0/24 --pool-size -5
run 1 "--pool-size 70000: must be between 0 and 65534" init --platform gke --node-name n --subnet 10.0.0.0/16 --pool-size 70000
run 1 "--drop-cidr fd00::/8: IPv6 is not supported" "${A[@]}" --subnet 10.0.0.0/24 --drop-cidr fd00::/8
run 1 "--dns 8.8.8.8,dns.google: \"dns.google\" is not an IPv4 address" "${A[@]}" --subnet 10.0.0.0/24 --dns 8.8.8.8,dns.google
run 1 "--primary-nic eth0/x: not an interface name" "${A[@]}" --subnet 10.0.0.0/24 --primary-nic eth0/x
run 1 "--platform aws: must be gke or volcengine" adopt --platform aws --node-name n --subnet 10.0.0.0/24
# Detection: neither metadata service answers.
run 1 "platform auto-detection failed: no metadata endpoint responded; pass --platform gke|volcengine" \
	adopt --node-name n --subnet 10.0.0.0/24
# Missing state.
run 1 "load pool state: $ROOT/var/lib/cocoon/net/pool.json does not exist (run 'cocoon-net init' first)" status
run 1 "(run 'cocoon-net init' first)" teardown
# Corrupt state names the file and the problem.
mkdir -p "$ROOT/var/lib/cocoon/net"
echo '{"platform": "gke", "nodeName": "n", "subnet": "10.0.0.0/24", "ips": ["10.0.0.2", 7]}' \
	>"$ROOT/var/lib/cocoon/net/pool.json"
run 1 "pool.json: field 'ips'[1] is not an IPv4 address" status
rm -r "$ROOT/var/lib/cocoon"

# None of it touched the node.
ip -n "$NS" link show cni0 >/dev/null 2>&1 && fail "an error path created cni0"
[ -z "$(find "$ROOT" -type f 2>/dev/null)" ] || fail "an error path wrote files: $(find "$ROOT" -type f)"
# Help and version exit 0.
out=$("$BIN/cocoon-net" --help)
assert_contains "$out" "COCOON_NET_ROOT" "--help lists the environment"
out=$("$BIN/cocoon-net" adopt --help)
assert_contains "$out" "--manage-iptables" "adopt --help lists its flags"
assert_contains "$out" "(default: 253)" "adopt --help shows its pool-size default"
"$BIN/cocoon-net" --version >/dev/null
echo "PASS: cocoon-net usage and value errors"
