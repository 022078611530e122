#!/usr/bin/env bash
# netd with the real dnsmasq: a "node" network namespace set up by `cocoon-net adopt`, netd
# running in it, and a "guest" namespace plugged into cni0 by a veth that runs busybox
# udhcpc. The guest's lease shows up as a /32 route in the node and as LEASE_GRANTED with
# its MAC and IP at a bus subscriber; LEASE_LOOKUP by MAC answers the IP; NET_STATUS counts
# it; /metrics passes promtool. The guest releasing its lease (udhcpc SIGUSR2), and vkd
# releasing it over the bus (LEASE_RELEASE, passed on to dnsmasq as a DHCPRELEASE), each
# remove the route and publish LEASE_EXPIRED. A killed dnsmasq is restarted; SIGTERM stops
# netd and its dnsmasq with exit 0.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
lib_init
: "${BIN:?set BIN to the build bin directory}" "${TOOLS:?set TOOLS to the build tools directory}"
[ "$(id -u)" -eq 0 ] || skip "needs root to create network namespaces"
command -v dnsmasq >/dev/null || skip "dnsmasq is missing (package dnsmasq-base)"
command -v busybox >/dev/null || skip "busybox is missing (package busybox)"
command -v promtool >/dev/null || skip "promtool is missing (package prometheus)"
for b in "$BIN/netd" "$BIN/cocoon-net" "$TOOLS/netd-bus"; do
	[ -x "$b" ] || fail "$b was not built"
done

NODE=cocoon-it-node-$$ GUEST=cocoon-it-guest-$$ MAC=52:54:00:77:00:01
ROOT=$TEST_TMP/root LEASES=$TEST_TMP/root/var/lib/misc/dnsmasq.leases
export COCOON_RUN_DIR=$TEST_TMP/run
netns_cleanup() {
	local ns pid
	for ns in "$GUEST" "$NODE"; do
		# Whatever this test started in its namespaces (udhcpc, netd, dnsmasq) goes first.
		for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
		ip netns del "$ns" 2>/dev/null || true
	done
}
dump_logs() {
	local f
	for f in netd.log udhcpc.log events; do
		[ -e "$TEST_TMP/$f" ] || continue
		echo "--- $f (last 30 lines)"
		grep -v 'sent size' "$TEST_TMP/$f" | tail -30
	done
}
# has_events TYPE N: the subscriber got N events of TYPE for the guest's MAC.
has_events() {
	[ "$(grep -c "^$1 .*mac=$MAC" "$TEST_TMP/events")" -eq "$2" ]
}
has_lines() {
	[ "$(grep -c "$2" "$3")" -eq "$1" ]
}
trap 'rc=$?; [ $rc -eq 0 ] || dump_logs; { netns_cleanup; lib_cleanup; } 2>/dev/null' EXIT
mkdir -p "$ROOT" "$COCOON_RUN_DIR"

ip netns add "$NODE"
ip netns add "$GUEST"
ip -n "$NODE" link set lo up
ip netns exec "$NODE" "$BIN/cocoon-net" adopt --root "$ROOT" --platform gke --node-name node-1 \
	--subnet 10.77.0.0/24 --pool-size 20 >"$TEST_TMP/adopt.log" 2>&1 ||
	fail "cocoon-net adopt failed: $(cat "$TEST_TMP/adopt.log")"
ip -n "$NODE" link add vg$$ type veth peer name eth0 netns "$GUEST"
ip -n "$NODE" link set vg$$ master cni0 up
ip -n "$GUEST" link set lo up
ip -n "$GUEST" link set eth0 address "$MAC" up

ip netns exec "$NODE" env COCOON_NET_ROOT="$ROOT" COCOON_NET_METRICS_ADDR=127.0.0.1:9092 \
	COCOON_NET_LOG_LEVEL=debug "$BIN/netd" >"$TEST_TMP/netd.log" 2>&1 &
NETD=$!
lib_bg "$NETD"
wait_up "$NETD" 10 "netd to serve" grep -q "serving:" "$TEST_TMP/netd.log"
# adopt ran without --manage-iptables: netd's re-applied setup must leave iptables alone too
assert_not_contains "$(ip netns exec "$NODE" iptables -S; ip netns exec "$NODE" iptables -t nat -S)" \
	"cocoon-net" "iptables after netd started on a node adopted without --manage-iptables"

"$TOOLS/netd-bus" sub 0 60 >"$TEST_TMP/events" 2>&1 &
lib_bg $!
wait_for 5 "the subscriber" grep -q READY "$TEST_TMP/events"

# The guest's DHCP client configures the address it gets, so it can release it later.
cat >"$TEST_TMP/udhcpc.sh" <<'EOF'
#!/bin/sh
case "$1" in
bound | renew) ip addr flush dev "$interface" && ip addr add "$ip/${mask:-24}" dev "$interface" ;;
deconfig) ip addr flush dev "$interface" ;;
esac
exit 0
EOF
chmod +x "$TEST_TMP/udhcpc.sh"
# -B: the replies are broadcast, since a veth hands udhcpc's raw socket unicast replies
# with checksums it refuses.
ip netns exec "$GUEST" busybox udhcpc -i eth0 -f -B -t 10 -T 1 -s "$TEST_TMP/udhcpc.sh" \
	>"$TEST_TMP/udhcpc.log" 2>&1 &
UDHCPC=$!
lib_bg "$UDHCPC"

# ---- grant: event, route, lookup, status, metrics ----
wait_for 20 "LEASE_GRANTED for $MAC (udhcpc: $TEST_TMP/udhcpc.log)" \
	grep -q "^LEASE_GRANTED .*mac=$MAC" "$TEST_TMP/events"
IP=$(sed -n "s/^LEASE_GRANTED .*mac=$MAC ip=\([0-9.]*\) .*/\1/p" "$TEST_TMP/events" | head -1)
wait_for 5 "the guest to configure its address" \
	bash -c "ip -n '$GUEST' -4 -o addr show eth0 | grep -q ' $IP/24 '"
assert_contains "$(cat "$LEASES")" "$MAC $IP" "dnsmasq lease file"
route=$(ip -n "$NODE" -j route show "$IP/32")
assert_contains "$route" '"dev":"cni0"' "route to the guest"
assert_contains "$route" '"protocol":"200"' "route protocol (netd's)"

out=$("$TOOLS/netd-bus" lookup "${MAC^^}")
assert_contains "$out" "LEASE_INFO mac=$MAC ip=$IP expires_usec=" "LEASE_LOOKUP by MAC"
out=$("$TOOLS/netd-bus" lookup 52:54:00:77:00:99) && fail "lookup of an unknown MAC answered: $out"
assert_contains "$out" "ERROR code=-2 message=LEASE_LOOKUP: no lease for 52:54:00:77:00:99" \
	"LEASE_LOOKUP of an unknown MAC"
out=$("$TOOLS/netd-bus" lookup not-a-mac) && fail "lookup of a bad MAC answered: $out"
assert_contains "$out" "ERROR code=-22 message=LEASE_LOOKUP: 'not-a-mac' is not a MAC address" \
	"LEASE_LOOKUP of a malformed MAC"
out=$("$TOOLS/netd-bus" status)
assert_contains "$out" "platform=gke node=node-1 subnet=10.77.0.0/24 gateway=10.77.0.1 bridge=cni0 pool_size=20 active_leases=1" \
	"NET_STATUS"
out=$("$TOOLS/netd-bus" list)
assert_contains "$out" "lease mac=$MAC ip=$IP " "LEASE_LIST"

ip netns exec "$NODE" curl -sf http://127.0.0.1:9092/metrics >"$TEST_TMP/metrics" ||
	fail "GET /metrics failed"
promtool check metrics <"$TEST_TMP/metrics" || fail "promtool rejects /metrics"
metrics=$(cat "$TEST_TMP/metrics")
assert_contains "$metrics" "cocoon_net_dhcp_lease_active 1" "active leases gauge"
assert_contains "$metrics" "cocoon_net_pool_size 20" "pool size gauge"
assert_contains "$metrics" "cocoon_net_leases_granted_total 1" "granted counter"
assert_eq ready "$(ip netns exec "$NODE" curl -sf http://127.0.0.1:9092/readyz)" "/readyz"

# ---- the guest releases its lease ----
kill -USR2 "$UDHCPC"
wait_for 5 "LEASE_EXPIRED after the guest's release" \
	grep -q "^LEASE_EXPIRED .*mac=$MAC ip=$IP" "$TEST_TMP/events"
[ -z "$(ip -n "$NODE" route show "$IP/32")" ] || fail "the route to $IP outlived its lease"

# ---- the guest leases again, then vkd releases it over the bus ----
kill -USR1 "$UDHCPC"
wait_for 20 "a second LEASE_GRANTED" has_events LEASE_GRANTED 2
IP=$(sed -n "s/^LEASE_GRANTED .*mac=$MAC ip=\([0-9.]*\) .*/\1/p" "$TEST_TMP/events" | tail -1)
[ -n "$(ip -n "$NODE" route show "$IP/32")" ] || fail "no route to $IP after the second lease"
assert_eq OK "$("$TOOLS/netd-bus" release "$MAC")" "LEASE_RELEASE"
wait_for 5 "a second LEASE_EXPIRED" has_events LEASE_EXPIRED 2
[ -z "$(ip -n "$NODE" route show "$IP/32")" ] || fail "the route to $IP outlived LEASE_RELEASE"
# dnsmasq took the DHCPRELEASE netd sent for the guest: the address is free again.
wait_for 5 "dnsmasq to drop the released lease" bash -c "! grep -q '$MAC' '$LEASES'"
out=$("$TOOLS/netd-bus" release "$MAC") && fail "a second release answered: $out"
assert_contains "$out" "ERROR code=-2 message=LEASE_RELEASE: no lease for $MAC" "release twice"
assert_contains "$(grep -c '^LEASE_' "$TEST_TMP/events")" 4 "events in all"

# ---- dnsmasq dies and comes back ----
DNSMASQ=$(pgrep -P "$NETD" dnsmasq) || fail "netd runs no dnsmasq"
kill -9 "$DNSMASQ"
wait_for 10 "dnsmasq to be restarted" has_lines 2 'dnsmasq started' "$TEST_TMP/netd.log"
assert_contains "$(cat "$TEST_TMP/netd.log")" "dnsmasq was killed by signal 9" "netd log"
NEW=$(pgrep -P "$NETD" dnsmasq) || fail "no dnsmasq after the restart"
[ "$NEW" != "$DNSMASQ" ] || fail "dnsmasq pid did not change"
assert_contains "$(ip netns exec "$NODE" curl -sf http://127.0.0.1:9092/metrics)" \
	"cocoon_net_dnsmasq_restarts_total 1" "restarts counter"

# ---- SIGTERM: netd stops its dnsmasq and exits 0 ----
kill -TERM "$NETD"
rc=0
wait "$NETD" || rc=$?
lib_forget "$NETD"
assert_eq 0 "$rc" "netd exit status after SIGTERM"
! kill -0 "$NEW" 2>/dev/null || fail "dnsmasq outlived netd"
echo "PASS: lease $IP for $MAC: route, events, lookup, status, metrics, releases, restart"
