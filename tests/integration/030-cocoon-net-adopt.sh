#!/usr/bin/env bash
# cocoon-net adopt / status / teardown on a fresh network namespace with a temporary root:
# dry-run plans and changes nothing; adopt builds cni0, sysctls, iptables, dnsmasq config,
# conflist and pool.json (checked with ip -j, iptables -S, sysctl and the files); a second
# run says "no changes" and changes nothing; new flags are reconciled; with netd running,
# status shows its lease count and a new dnsmasq config makes adopt ask it to reload;
# teardown removes it all.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
lib_init
[ "$(id -u)" = 0 ] || skip "needs root for network namespaces"
command -v iptables >/dev/null || skip "iptables is not installed"

NS=cnet-adopt-$$
ROOT=$TEST_TMP/root
cleanup_ns() { ip netns del "$NS" 2>/dev/null || true; lib_cleanup; }
trap cleanup_ns EXIT
ip netns add "$NS"
ip -n "$NS" link set lo up
# The primary NIC, so its rp_filter is managed too.
ip -n "$NS" link add ens4 type veth peer name ens4-peer

in_ns() { ip netns exec "$NS" "$@"; }
cnet() { in_ns env COCOON_RUN_DIR="$TEST_TMP/run" "$BIN/cocoon-net" "$@"; }
ADOPT=(adopt --platform gke --node-name pool-a --subnet 172.20.5.0/24 --root "$ROOT"
	--manage-iptables --drop-internal-access --drop-cidr 10.1.2.3/8)

# Kernel and file state that adopt may change, in a comparable form. IPv4 only: cocoon-net
# manages no IPv6, and the kernel's own IPv6 link-local address of cni0 changes by itself
# (its "tentative" flag clears once duplicate address detection ends).
snapshot() {
	in_ns ip -j link show | python3 -c 'import json,sys; [print(l["ifname"], l.get("mtu"), l.get("master", "-"), l.get("address")) for l in json.load(sys.stdin)]'
	in_ns ip -4 -j addr show | python3 -c 'import json,sys; [print(l["ifname"], a["local"], a["prefixlen"]) for l in json.load(sys.stdin) for a in l.get("addr_info", [])]'
	in_ns ip -4 -j route show table all | python3 -c 'import json,sys; [print(r.get("table", "main"), r.get("type", "unicast"), r["dst"], r.get("dev"), r.get("protocol"), r.get("scope")) for r in json.load(sys.stdin)]'
	in_ns iptables-save | { grep -v '^#' || true; }
	in_ns sysctl -n net.ipv4.ip_forward net.ipv4.conf.all.rp_filter \
		net.ipv4.conf.default.rp_filter net.ipv4.conf.ens4.rp_filter
	in_ns sysctl -n net.ipv4.conf.cni0.rp_filter 2>/dev/null || echo "no cni0"
	if [ -d "$ROOT" ]; then
		(cd "$TEST_TMP" && find root -printf '%p %m %T@\n' | sort &&
			find root -type f -exec sha256sum {} + | sort)
	fi
}
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

# --- dry run: the whole change set, nothing touched.
in_ns sysctl -qw net.ipv4.conf.all.rp_filter=1
before=$(snapshot)
out=$(cnet "${ADOPT[@]}" --dry-run)
assert_contains "$out" "[dry-run] would adopt node with config:" "dry-run header"
assert_contains "$out" "  pool-size:       253 (first=172.20.5.2, last=172.20.5.254)" "dry-run pool"
assert_contains "$out" "  manage-iptables: true" "dry-run iptables flag"
assert_contains "$out" "  link     create bridge cni0" "dry-run bridge"
assert_contains "$out" "  address  add 172.20.5.1/24 to cni0" "dry-run address"
assert_contains "$out" "  sysctl   net.ipv4.conf.all.rp_filter = 0 (now 1)" "dry-run sysctl"
assert_contains "$out" "  rule     insert filter FORWARD -d 10.0.0.0/8 -i cni0 -m comment --comment cocoon-net-drop -j DROP" "dry-run drop rule"
assert_contains "$out" "      | dhcp-range=172.20.5.2,172.20.5.254,255.255.255.0,24h" "dry-run dnsmasq content"
assert_contains "$out" "would NOT touch: cloud alias IP range / ENIs (preserved as-is)" "dry-run cloud line"
assert_eq "$before" "$(snapshot)" "state after --dry-run"
[ ! -e "$ROOT" ] || fail "--dry-run created $ROOT"

# --- adopt
out=$(cnet "${ADOPT[@]}")
assert_contains "$out" "cocoon-net adopt complete: 253 IPs registered on 172.20.5.0/24 (gke, cloud preserved)" "adopt result"
assert_contains "$out" "netd: not running" "adopt notes netd is absent"
link=$(in_ns ip -j -d link show cni0)
assert_eq bridge "$(echo "$link" | json 'd[0]["linkinfo"]["info_kind"]')" "cni0 kind"
assert_contains "$(echo "$link" | json 'd[0]["flags"]')" "UP" "cni0 is up"
addr=$(in_ns ip -j addr show dev cni0 | json '[a["local"]+"/"+str(a["prefixlen"]) for a in d[0]["addr_info"] if a["family"]=="inet"]')
assert_eq "['172.20.5.1/24']" "$addr" "cni0 address"
assert_eq "1" "$(in_ns sysctl -n net.ipv4.ip_forward)" "ip_forward"
for k in all default cni0 ens4; do
	assert_eq "0" "$(in_ns sysctl -n net.ipv4.conf.$k.rp_filter)" "rp_filter of $k"
done
fwd=$(in_ns iptables -S FORWARD)
assert_contains "$fwd" "-A FORWARD -d 10.0.0.0/8 -i cni0 -m comment --comment cocoon-net-drop -j DROP" "drop 10/8"
assert_contains "$fwd" "-A FORWARD -d 172.20.5.0/24 -i cni0 -m comment --comment cocoon-net-drop -j DROP" "drop internal"
assert_contains "$fwd" "-A FORWARD -i cni0 -o cni0 -m comment --comment cocoon-net -j ACCEPT" "bridge accept"
# The drops come before any ACCEPT (inserted at position 1).
first=$(echo "$fwd" | grep '^-A' | head -1)
assert_contains "$first" "-j DROP" "first FORWARD rule"
assert_contains "$(in_ns iptables -t nat -S POSTROUTING)" "-A POSTROUTING -s 172.20.5.0/24 ! -o cni0 -m comment --comment cocoon-net -j MASQUERADE" "masquerade"
conf=$(cat "$ROOT/etc/dnsmasq-cni.d/cni0.conf")
assert_contains "$conf" "interface=cni0" "dnsmasq interface"
assert_contains "$conf" "except-interface=ens4" "dnsmasq primary NIC"
assert_contains "$conf" "dhcp-range=172.20.5.2,172.20.5.254,255.255.255.0,24h" "dnsmasq range"
assert_contains "$conf" "dhcp-option=option:router,172.20.5.1" "dnsmasq router"
assert_contains "$conf" "dhcp-option=option:dns-server,8.8.8.8,1.1.1.1" "dnsmasq dns"
assert_contains "$conf" "dhcp-leasefile=$ROOT/var/lib/misc/dnsmasq.leases" "dnsmasq lease file"
[ -f "$ROOT/var/lib/misc/dnsmasq.leases" ] || fail "lease file not created"
assert_eq "750" "$(stat -c %a "$ROOT/etc/dnsmasq-cni.d")" "dnsmasq dir mode"
assert_eq "644" "$(stat -c %a "$ROOT/etc/dnsmasq-cni.d/cni0.conf")" "dnsmasq file mode"
assert_eq "dnsmasq-dhcp" "$(json 'd["name"]' <"$ROOT/etc/cni/net.d/30-dnsmasq-dhcp.conflist")" "conflist name"
assert_eq "{}" "$(json 'd["plugins"][0]["ipam"]' <"$ROOT/etc/cni/net.d/30-dnsmasq-dhcp.conflist")" "conflist ipam"
pool=$ROOT/var/lib/cocoon/net/pool.json
assert_eq "gke pool-a 172.20.5.0/24 172.20.5.1 ens4 253 172.20.5.2 True ['10.1.2.3/8'] True" \
	"$(json '" ".join(map(str,[d["platform"],d["nodeName"],d["subnet"],d["gateway"],d["primaryNIC"],len(d["ips"]),d["ips"][0],d["dropInternalAccess"],d["dropCIDRs"],d["adopted"]]))' <"$pool")" "pool.json"
[ ! -e "$ROOT/var/lib/cocoon/net/pool.json.tmp" ] || fail "temp file left behind"

# --- second run: converged, says so, touches nothing (not even pool.json's updatedAt).
before=$(snapshot)
out=$(cnet "${ADOPT[@]}")
assert_contains "$out" "adopt: no changes" "second adopt"
assert_eq "$before" "$(snapshot)" "state after the second adopt"
out=$(cnet "${ADOPT[@]}" --dry-run)
assert_contains "$out" "would change (0):
  no changes" "dry-run on a converged node"

# --- reconcile: another drop target replaces the old one; the operator's rule stays.
in_ns iptables -A FORWARD -i cni0 -d 10.0.0.0/8 -j DROP
out=$(cnet adopt --platform gke --node-name pool-a --subnet 172.20.5.0/24 --root "$ROOT" \
	--manage-iptables --drop-cidr 192.168.0.0/16)
assert_contains "$out" "rule     delete filter FORWARD -d 10.0.0.0/8 -i cni0 -m comment --comment cocoon-net-drop -j DROP" "stale drop deleted"
assert_contains "$out" "rule     insert filter FORWARD -d 192.168.0.0/16" "new drop inserted"
fwd=$(in_ns iptables -S FORWARD)
assert_not_contains "$fwd" "172.20.5.0/24 -i cni0 -m comment --comment cocoon-net-drop" "internal drop removed"
assert_contains "$fwd" "-A FORWARD -d 10.0.0.0/8 -i cni0 -j DROP" "operator's rule kept"

# --- status
out=$(cnet status --root "$ROOT")
assert_contains "$out" "Platform:   gke" "status platform"
assert_contains "$out" "IPs:        253" "status IPs"
assert_contains "$out" "Cloud:      not managed (adopted)" "status cloud"
assert_contains "$out" "netd:       not running" "status netd"
out=$(cnet status --root "$ROOT" -o json)
assert_eq "pool-a 253 False" "$(echo "$out" | json '" ".join(map(str,[d["nodeName"],d["ips"],d["netd"]["running"]]))')" "status json"

# --- with netd running: status shows its live lease count, a new dnsmasq config makes
# adopt ask it to reload (NET_RELOAD). Needs the daemon half of netd/.
if [ -x "$BIN/netd" ]; then
	# Not through in_ns: a backgrounded function is a subshell, and $! must be netd itself
	# (ip netns exec and env exec into it).
	ip netns exec "$NS" env COCOON_NET_ROOT="$ROOT" COCOON_RUN_DIR="$TEST_TMP/run" \
		COCOON_NET_DNSMASQ=external COCOON_NET_METRICS_ADDR=127.0.0.1:0 \
		COCOON_NET_SKIP_IPTABLES=true "$BIN/netd" >"$TEST_TMP/netd.log" 2>&1 &
	NETD=$!
	lib_bg $NETD
	wait_up "$NETD" 10 "netd's bus socket" test -S "$TEST_TMP/run/netd.sock"
	out=$(cnet status --root "$ROOT")
	assert_contains "$out" "netd:       running, 0 active leases of 253 (bridge cni0)" "status with netd"
	out=$(cnet status --root "$ROOT" -o json)
	assert_eq "True 0 253" "$(echo "$out" | json '" ".join(map(str,[d["netd"]["running"],d["netd"]["activeLeases"],d["netd"]["poolSize"]]))')" "status json with netd"
	out=$(cnet adopt --platform gke --node-name pool-a --subnet 172.20.5.0/24 --root "$ROOT" \
		--manage-iptables --drop-cidr 192.168.0.0/16 --dns 9.9.9.9)
	assert_contains "$out" "file     update dnsmasq config" "new DNS rewrites the dnsmasq config"
	assert_contains "$out" "netd: reloaded" "adopt asks netd to reload"
	kill -TERM "$NETD"
	rc=0
	wait "$NETD" || rc=$?
	lib_forget "$NETD"
	assert_eq 0 "$rc" "netd's exit status after SIGTERM"
else
	echo "netd is not built: the status/reload checks against a running netd are skipped"
fi

# --- teardown: dry-run first, then for real.
before=$(snapshot)
out=$(cnet teardown --root "$ROOT" --dry-run)
assert_contains "$out" "[dry-run] would teardown gke networking for node pool-a (subnet 172.20.5.0/24)" "teardown dry-run header"
assert_contains "$out" "link     delete bridge cni0" "teardown dry-run bridge"
assert_eq "$before" "$(snapshot)" "state after teardown --dry-run"
out=$(cnet teardown --root "$ROOT")
assert_contains "$out" "cocoon-net teardown complete (gke)" "teardown result"
in_ns ip link show cni0 >/dev/null 2>&1 && fail "cni0 still exists"
all=$(in_ns iptables-save)
assert_not_contains "$all" "cocoon-net" "iptables after teardown"
assert_contains "$all" "-A FORWARD -d 10.0.0.0/8 -i cni0 -j DROP" "operator's rule after teardown"
for f in etc/dnsmasq-cni.d/cni0.conf etc/cni/net.d/30-dnsmasq-dhcp.conflist var/lib/cocoon/net/pool.json; do
	[ ! -e "$ROOT/$f" ] || fail "$f left after teardown"
done
rc=0
err=$(cnet teardown --root "$ROOT" 2>&1) || rc=$?
assert_eq 1 "$rc" "teardown without state"
assert_contains "$err" "(run 'cocoon-net init' first)" "teardown without state"
echo "PASS: cocoon-net adopt, converged re-run, reconcile, status, teardown"
