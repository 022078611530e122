#!/usr/bin/env bash
# cocoon-net init/status/teardown on GKE against a metadata double and a gcloud double on
# PATH (tests/doubles), in a network namespace with a temporary root. Checks the exact
# gcloud argv sequence (net-epoch-runtime.md §1.10: reads are planned first, then the
# writes run), the guest-agent route fix, a cloud call failing half-way (state kept,
# teardown cleans up), the converged re-run and teardown's read-modify-write of the aliases.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
lib_init
[ "$(id -u)" = 0 ] || skip "needs root for network namespaces"
command -v iptables >/dev/null || skip "iptables is not installed"

DOUBLES=$LIB_ROOT/tests/doubles
NS=cnet-gke-$$
ROOT=$TEST_TMP/root
cleanup_ns() { ip netns del "$NS" 2>/dev/null || true; lib_cleanup; }
trap cleanup_ns EXIT
ip netns add "$NS"
ip -n "$NS" link add ens4 type veth peer name ens4-peer
ip -n "$NS" link set ens4 up

M=/computeMetadata/v1
cat >"$TEST_TMP/routes.json" <<JSON
{"$M/instance/name": "node-1", "$M/instance/zone": "projects/123/zones/us-central1-a",
 "$M/project/project-id": "proj-x",
 "$M/instance/network-interfaces/0/subnetwork": "projects/123/regions/us-central1/subnetworks/sub-a"}
JSON
# The double listens on the namespace's loopback, where cocoon-net runs.
ip -n "$NS" link set lo up
ip netns exec "$NS" python3 "$DOUBLES/metadata-server" "$TEST_TMP/routes.json" \
	>"$TEST_TMP/md.out" 2>&1 &
lib_bg $!
wait_for 10 "the metadata double" grep -q serving "$TEST_TMP/md.out"
MD=$(awk '/serving/ {print $2}' "$TEST_TMP/md.out")

export GCLOUD_STATE=$TEST_TMP/gcloud.json GCLOUD_LOG=$TEST_TMP/gcloud.log
cat >"$GCLOUD_STATE" <<'JSON'
{"subnets": {"sub-a": {"name": "sub-a", "ipCidrRange": "10.128.0.0/20",
   "secondaryIpRanges": [{"rangeName": "gke-pods", "ipCidrRange": "10.8.0.0/14"}]}},
 "instances": {"node-1": {"name": "node-1", "networkInterfaces": [{"name": "nic0",
   "aliasIpRanges": [{"subnetworkRangeName": "gke-pods", "ipCidrRange": "10.8.1.0/24"},
                     {"ipCidrRange": "10.9.9.0/28"}]}]}}}
JSON

cnet() {
	ip netns exec "$NS" env PATH="$DOUBLES:$PATH" COCOON_NET_ROOT="$ROOT" \
		COCOON_RUN_DIR="$TEST_TMP/run" COCOON_NET_GKE_METADATA_URL="$MD$M" \
		COCOON_NET_VOLC_METADATA_URL="$MD/latest/meta-data" "$BIN/cocoon-net" "$@"
}
calls() { cat "$GCLOUD_LOG" 2>/dev/null; : >"$GCLOUD_LOG"; }
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
INIT=(init --node-name cocoon-pool --subnet 172.20.7.0/24 --pool-size 20)
POOL=$ROOT/var/lib/cocoon/net/pool.json
DESCRIBE_SUBNET="compute networks subnets describe sub-a --project proj-x --region us-central1 --format json"
DESCRIBE_INSTANCE="compute instances describe node-1 --project proj-x --zone us-central1-a --format json"
UPDATE_SUBNET="compute networks subnets update sub-a --project proj-x --region us-central1 --add-secondary-ranges=cocoon-pods=172.20.7.0/24"
UPDATE_ALIASES="compute instances network-interfaces update node-1 --project proj-x --zone us-central1-a --network-interface nic0 --aliases"

# --- dry run: platform detected, reads only, the planned writes printed.
out=$(cnet "${INIT[@]}" --dry-run 2>&1)
assert_contains "$out" "detected platform gke" "detection"
assert_contains "$out" "[dry-run] would provision networking with config:
  platform:   gke
  node-name:  cocoon-pool
  subnet:     172.20.7.0/24
  pool-size:  20
  dns:        8.8.8.8,1.1.1.1
  drop-internal: false
  drop-cidr:  
  state-dir:  $ROOT/var/lib/cocoon/net" "init dry-run block"
assert_contains "$out" "cloud    add secondary range cocoon-pods=172.20.7.0/24 to subnet sub-a" "dry-run range"
assert_contains "$out" "      | gcloud $UPDATE_SUBNET" "dry-run range command"
assert_contains "$out" "cloud    alias cocoon-pods:172.20.7.0/24 on nic0 of node-1" "dry-run alias"
assert_contains "$out" "link     create bridge cni0" "dry-run node changes"
assert_eq "$DESCRIBE_SUBNET
$DESCRIBE_INSTANCE" "$(calls)" "gcloud calls of the dry run"
[ ! -e "$POOL" ] || fail "dry run wrote pool.json"

# --- a cloud call failing half-way: the state seed stays for teardown.
ip -n "$NS" route add local 172.20.7.0/24 dev ens4 table local
rc=0
out=$(GCLOUD_FAIL="network-interfaces update" cnet "${INIT[@]}" 2>&1) || rc=$?
assert_eq 1 "$rc" "init with a failing gcloud"
assert_contains "$out" "init: saved pool state seed $POOL" "seed saved first"
assert_contains "$out" "gcloud compute instances network-interfaces: exit status 1: ERROR: (gcloud.compute.instances.network-interfaces) injected failure" "gcloud error passed on"
assert_contains "$out" "the state in $POOL is kept, run 'cocoon-net teardown' to clean up" "half-way advice"
assert_eq "$DESCRIBE_SUBNET
$DESCRIBE_INSTANCE
$UPDATE_SUBNET
$UPDATE_ALIASES 'gke-pods:10.8.1.0/24;10.9.9.0/28;cocoon-pods:172.20.7.0/24'" "$(calls)" "gcloud calls of the failed init"
assert_eq "gke cocoon-pool 172.20.7.0/24 None" "$(json '" ".join(map(str,[d["platform"],d["nodeName"],d["subnet"],d["ips"]]))' <"$POOL")" "seed pool.json"
ip -n "$NS" link show cni0 >/dev/null 2>&1 && fail "node set up after a cloud failure"

# Teardown after the failure: the alias never landed, so no update; the seed goes.
out=$(cnet teardown 2>&1)
assert_contains "$out" "alias cocoon-pods:172.20.7.0/24 is not on nic0 of node-1, nothing to remove" "teardown warns"
assert_contains "$out" "cocoon-net teardown complete (gke)" "teardown after failure"
assert_eq "$DESCRIBE_INSTANCE" "$(calls)" "gcloud calls of teardown after the failure"
[ ! -e "$POOL" ] || fail "teardown left pool.json"

# --- init for real: the range exists now (the failed run added it), the alias is added.
out=$(cnet "${INIT[@]}" --platform gke 2>&1)
assert_contains "$out" "cocoon-net init complete: 20 IPs provisioned on 172.20.7.0/24 (gke)" "init result"
assert_contains "$out" "route    delete local 172.20.7.0/24 dev ens4 table local (GCE guest agent)" "route fix applied"
assert_eq "$DESCRIBE_SUBNET
$DESCRIBE_INSTANCE
$UPDATE_ALIASES 'gke-pods:10.8.1.0/24;10.9.9.0/28;cocoon-pods:172.20.7.0/24'" "$(calls)" "gcloud calls of init"
assert_eq "" "$(ip -n "$NS" route show table local 172.20.7.0/24)" "guest agent's local route"
assert_eq "@reboot root ip route del local 172.20.7.0/24 dev ens4 table local 2>/dev/null || true" \
	"$(cat "$ROOT/etc/cron.d/cocoon-net-fix-alias")" "cron file"
assert_eq "cocoon-pods 20 172.20.7.2 172.20.7.21 172.20.7.1" \
	"$(json '" ".join(map(str,[d["aliasRangeName"],len(d["ips"]),d["ips"][0],d["ips"][-1],d["gateway"]]))' <"$POOL")" "pool.json"
assert_contains "$(ip netns exec "$NS" iptables -t nat -S POSTROUTING)" "-s 172.20.7.0/24 ! -o cni0" "init manages iptables"
assert_contains "$(cat "$ROOT/etc/dnsmasq-cni.d/cni0.conf")" "dhcp-range=172.20.7.2,172.20.7.21,255.255.255.0,24h" "dnsmasq range"

# --- converged: reads only, no changes anywhere.
out=$(cnet "${INIT[@]}" 2>&1)
assert_contains "$out" "init (cloud): no changes" "second init, cloud"
assert_contains "$out" "init (node): no changes" "second init, node"
assert_eq "$DESCRIBE_SUBNET
$DESCRIBE_INSTANCE" "$(calls)" "gcloud calls of the second init"

# --- status shows the live aliases.
out=$(cnet status 2>&1)
assert_contains "$out" "Aliases:    gke-pods:10.8.1.0/24, 10.9.9.0/28, cocoon-pods:172.20.7.0/24" "status aliases"
assert_contains "$out" "IPs:        20" "status IPs"
calls >/dev/null

# --- teardown: the other aliases are kept, the shared range stays, the node is clean.
out=$(cnet teardown 2>&1)
assert_contains "$out" "cocoon-net teardown complete (gke)" "teardown result"
assert_eq "$DESCRIBE_INSTANCE
$UPDATE_ALIASES 'gke-pods:10.8.1.0/24;10.9.9.0/28'" "$(calls)" "gcloud calls of teardown"
assert_contains "$(cat "$GCLOUD_STATE")" '"rangeName": "cocoon-pods"' "secondary range kept"
[ ! -e "$ROOT/etc/cron.d/cocoon-net-fix-alias" ] || fail "cron file left"
ip -n "$NS" link show cni0 >/dev/null 2>&1 && fail "cni0 left"
assert_not_contains "$(ip netns exec "$NS" iptables-save)" "cocoon-net" "iptables after teardown"
echo "PASS: cocoon-net init/status/teardown on GKE"
