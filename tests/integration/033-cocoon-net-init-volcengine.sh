#!/usr/bin/env bash
# cocoon-net init/status/teardown on Volcengine against a metadata double and a `ve` double
# on PATH (tests/doubles), in a network namespace whose eth1..eth7 stand in for the ENIs'
# NICs. Checks the exact ve argv sequence (net-epoch-runtime.md §1.11), credentials from
# ~/.volcengine/config.json, a create failing half-way (state kept, teardown removes the
# ENIs made so far), subnet reuse, the 140-IP pool, the NICs up with their FORWARD rules,
# the converged re-run, and platform auto-detection (volcengine only; both: ambiguous).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
lib_init
[ "$(id -u)" = 0 ] || skip "needs root for network namespaces"
command -v iptables >/dev/null || skip "iptables is not installed"

DOUBLES=$LIB_ROOT/tests/doubles
NS=cnet-volc-$$
ROOT=$TEST_TMP/root
cleanup_ns() { ip netns del "$NS" 2>/dev/null || true; lib_cleanup; }
trap cleanup_ns EXIT
ip netns add "$NS"
ip -n "$NS" link set lo up
for i in 0 1 2 3 4 5 6 7; do ip -n "$NS" link add eth$i type veth peer name peer$i; done

start_metadata() { # NAME ROUTES_JSON: sets MD to its URL
	echo "$2" >"$TEST_TMP/$1.json"
	ip netns exec "$NS" python3 "$DOUBLES/metadata-server" "$TEST_TMP/$1.json" \
		>"$TEST_TMP/$1.out" 2>&1 &
	lib_bg $!
	wait_for 10 "the metadata double $1" grep -q serving "$TEST_TMP/$1.out"
	MD=$(awk '/serving/ {print $2}' "$TEST_TMP/$1.out")
}
V=/latest/meta-data
start_metadata both "{\"$V/instance-id\": \"i-abc\", \"/computeMetadata/v1/instance/zone\": \"z\"}"
MD_BOTH=$MD
start_metadata volc "{\"$V/instance-id\": \"i-abc\", \"$V/vpc-id\": \"vpc-1\",
	\"$V/placement/availability-zone\": \"cn-hongkong-a\"}"

export VE_STATE=$TEST_TMP/ve.json VE_LOG=$TEST_TMP/ve.log
cat >"$VE_STATE" <<'JSON'
{"securityGroups": ["sg-1", "sg-2"], "next": 1,
 "subnets": [{"SubnetId": "subnet-other", "CidrBlock": "10.0.0.0/24"}],
 "enis": [{"NetworkInterfaceId": "eni-primary", "Type": "primary", "InstanceId": "i-abc",
           "PrimaryIpAddress": "10.0.0.5", "PrivateIpSet": []},
          {"NetworkInterfaceId": "eni-old", "Type": "secondary", "InstanceId": "i-abc",
           "Subnet": "172.20.8.0/24", "PrimaryIpAddress": "172.20.8.199",
           "PrivateIpSet": ["172.20.8.250", "172.20.8.251"]}]}
JSON
mkdir -p "$TEST_TMP/home/.volcengine"
echo '{"access_key_id": "AK1", "secret_access_key": "SK1", "region": "cn-hongkong"}' \
	>"$TEST_TMP/home/.volcengine/config.json"

cnet() {
	ip netns exec "$NS" env -u VOLCENGINE_ACCESS_KEY_ID HOME="$TEST_TMP/home" \
		PATH="$DOUBLES:$PATH" COCOON_NET_ROOT="$ROOT" COCOON_RUN_DIR="$TEST_TMP/run" \
		COCOON_NET_VOLC_METADATA_URL="${VOLC_MD:-$MD}$V" \
		COCOON_NET_GKE_METADATA_URL="${GKE_MD:-http://127.0.0.1:1}/computeMetadata/v1" \
		COCOON_NET_VOLC_CREATE_WAIT=0 COCOON_NET_VOLC_ATTACH_WAIT=0 "$BIN/cocoon-net" "$@"
}
# The argv of each ve call since the last look; " creds=no" stays on a call that did not
# get the credentials from ~/.volcengine/config.json, so the sequence checks cover them.
calls() { sed 's/ creds=yes$//' "$VE_LOG" 2>/dev/null; : >"$VE_LOG"; }
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
INIT=(init --node-name cocoon-pool --subnet 172.20.8.0/24)
POOL=$ROOT/var/lib/cocoon/net/pool.json
SG="vpc DescribeSecurityGroups --VpcId vpc-1 --PageSize 1"
SUBNETS="vpc DescribeSubnets --VpcId vpc-1 --PageSize 100"
ENIS="vpc DescribeNetworkInterfaces --InstanceId i-abc --PageSize 100"
eni() { # N ID: create + attach of the N-th ENI, which the double names ID
	echo "vpc CreateNetworkInterface --SubnetId $3 --SecurityGroupIds.1 sg-1 --NetworkInterfaceName cocoon-pool-eni-$1"
	echo "vpc AttachNetworkInterface --NetworkInterfaceId $2 --InstanceId i-abc"
}
assign() { echo "vpc AssignPrivateIpAddresses --NetworkInterfaceId $1 --SecondaryPrivateIpAddressCount $2"; }
gone() { echo "vpc DetachNetworkInterface --NetworkInterfaceId $1 --InstanceId i-abc"; echo "vpc DeleteNetworkInterface --NetworkInterfaceId $1"; }

# --- detection: both answer → ambiguous; volcengine only → detected.
rc=0
out=$(VOLC_MD=$MD_BOTH GKE_MD=$MD_BOTH cnet "${INIT[@]}" --dry-run 2>&1) || rc=$?
assert_eq 1 "$rc" "ambiguous detection"
assert_contains "$out" "platform auto-detection ambiguous: [gke volcengine] both responded; pass --platform to disambiguate" "ambiguous message"
out=$(cnet "${INIT[@]}" --dry-run 2>&1)
assert_contains "$out" "detected platform volcengine" "detection"
assert_contains "$out" "cloud    create subnet cocoon-pool-vms 172.20.8.0/24 in cn-hongkong-a" "dry-run subnet"
assert_contains "$out" "cloud    create ENI cocoon-pool-eni-7 in the new subnet and attach it to i-abc" "dry-run ENI"
assert_contains "$out" "cloud    assign 18 secondary IPs to ENI eni-old" "dry-run top-up"
assert_eq "$SG
$SUBNETS
$ENIS" "$(calls)" "ve calls of the dry run"
[ ! -e "$POOL" ] || fail "dry run wrote pool.json"

# --- the third ENI create fails: init stops, the seed stays, teardown removes the ENIs.
rc=0
out=$(VE_FAIL="CreateNetworkInterface#3" cnet "${INIT[@]}" 2>&1) || rc=$?
assert_eq 1 "$rc" "init with a failing ve"
assert_contains "$out" "ve vpc CreateNetworkInterface --SubnetId: exit status 1: Error: CreateNetworkInterface: InjectedFailure" "ve error passed on"
assert_contains "$out" "run 'cocoon-net teardown' to clean up" "half-way advice"
assert_eq "$SG
$SUBNETS
$ENIS
vpc CreateSubnet --VpcId vpc-1 --CidrBlock 172.20.8.0/24 --ZoneId cn-hongkong-a --SubnetName cocoon-pool-vms
$(eni 2 eni-2 subnet-1)
$(eni 3 eni-3 subnet-1)
vpc CreateNetworkInterface --SubnetId subnet-1 --SecurityGroupIds.1 sg-1 --NetworkInterfaceName cocoon-pool-eni-4" "$(calls)" "ve calls of the failed init"
assert_eq "volcengine None" "$(json '" ".join(map(str,[d["platform"],d["ips"]]))' <"$POOL")" "seed pool.json"
out=$(cnet teardown 2>&1)
assert_contains "$out" "cocoon-net teardown complete (volcengine)" "teardown after failure"
assert_eq "$ENIS
$(gone eni-old)
$(gone eni-2)
$(gone eni-3)" "$(calls)" "ve calls of teardown after the failure"
assert_eq "['eni-primary']" "$(json '[e["NetworkInterfaceId"] for e in d["enis"]]' <"$VE_STATE")" "ENIs left"

# --- init for real: the subnet made by the failed run is reused, 7 ENIs x 20 IPs.
out=$(cnet "${INIT[@]}" --platform volcengine 2>&1)
assert_contains "$out" "cocoon-net init complete: 140 IPs provisioned on 172.20.8.0/24 (volcengine)" "init result"
want="$SG
$SUBNETS
$ENIS"
for i in 1 2 3 4 5 6 7; do want+=$'\n'"$(eni $i eni-$((i + 3)) subnet-1)"; done
for i in 1 2 3 4 5 6 7; do want+=$'\n'"$(assign eni-$((i + 3)) 20)"; done
assert_eq "$want" "$(calls)" "ve calls of init"
assert_eq "140 172.20.8.10 172.20.8.149 eth1,eth2,eth3,eth4,eth5,eth6,eth7 eth0" \
	"$(json '" ".join(map(str,[len(d["ips"]),d["ips"][0],d["ips"][-1],",".join(d["secondaryNICs"]),d["primaryNIC"]]))' <"$POOL")" "pool.json"
for i in 1 2 3 4 5 6 7; do
	assert_contains "$(ip -n "$NS" -j link show eth$i)" '"UP"' "eth$i up"
	assert_contains "$(ip netns exec "$NS" iptables -S FORWARD)" "-A FORWARD -i eth$i -o cni0 -m comment --comment cocoon-net -j ACCEPT" "FORWARD from eth$i"
done
assert_contains "$(cat "$ROOT/etc/dnsmasq-cni.d/cni0.conf")" "dhcp-range=172.20.8.10,172.20.8.149,255.255.255.0,24h" "dnsmasq range"
assert_contains "$(cat "$ROOT/etc/dnsmasq-cni.d/cni0.conf")" "except-interface=eth0" "dnsmasq primary NIC"

# --- converged: reads only, no changes.
out=$(cnet "${INIT[@]}" 2>&1)
assert_contains "$out" "init (cloud): no changes" "second init, cloud"
assert_contains "$out" "init (node): no changes" "second init, node"
assert_eq "$SG
$SUBNETS
$ENIS" "$(calls)" "ve calls of the second init"

out=$(cnet status 2>&1)
assert_contains "$out" "ENIs:       7" "status ENIs"
assert_contains "$out" "SubnetID:   " "status subnet ID line"
out=$(cnet status -o json 2>&1)
assert_eq "7 140" "$(echo "$out" | json '" ".join(map(str,[len(d["cloud"]["enis"]),len(d["cloud"]["ips"])]))')" "status json"
calls >/dev/null

# --- teardown: every non-primary ENI detached and deleted, then the node.
out=$(cnet teardown 2>&1)
assert_contains "$out" "cocoon-net teardown complete (volcengine)" "teardown result"
want=$ENIS
for i in 4 5 6 7 8 9 10; do want+=$'\n'"$(gone eni-$i)"; done
assert_eq "$want" "$(calls)" "ve calls of teardown"
ip -n "$NS" link show cni0 >/dev/null 2>&1 && fail "cni0 left"
assert_not_contains "$(ip netns exec "$NS" iptables-save)" "cocoon-net" "iptables after teardown"
[ ! -e "$POOL" ] || fail "pool.json left"
echo "PASS: cocoon-net init/status/teardown on Volcengine"
