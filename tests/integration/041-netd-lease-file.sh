#!/usr/bin/env bash
# netd with COCOON_NET_DNSMASQ=external and a lease file this test writes as dnsmasq would
# (rewritten in place), in a node network namespace set up by `cocoon-net adopt`:
#   - start-up reconcile: a route netd left for a lease that is gone is removed, a route for
#     a lease in the file is added, an administrator's static route is left alone;
#   - a lease whose expiry passes ends on time (dnsmasq does not rewrite the file then):
#     LEASE_EXPIRED and no route;
#   - a malformed line is logged once, with its line number, however often the file changes;
#   - the cocoon-net JSON lease format is read too;
#   - LEASE_RELEASE over the bus ends a lease, and it stays ended while the file (that no
#     dnsmasq rewrites here) still lists it; NET_RELOAD re-applies node setup;
#   - a second netd refuses to start; SIGTERM exits 0 and leaves the routes in place.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
lib_init
: "${BIN:?set BIN to the build bin directory}" "${TOOLS:?set TOOLS to the build tools directory}"
[ "$(id -u)" -eq 0 ] || skip "needs root to create network namespaces"
for b in "$BIN/netd" "$BIN/cocoon-net" "$TOOLS/netd-bus"; do
	[ -x "$b" ] || fail "$b was not built"
done

NODE=cocoon-it-node-$$
ROOT=$TEST_TMP/root LEASES=$TEST_TMP/root/var/lib/misc/dnsmasq.leases
export COCOON_RUN_DIR=$TEST_TMP/run
netns_cleanup() {
	local pid
	for pid in $(ip netns pids "$NODE" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
	ip netns del "$NODE" 2>/dev/null || true
}
trap 'rc=$?; [ $rc -eq 0 ] || tail -30 "$TEST_TMP/netd.log"; { netns_cleanup; lib_cleanup; } 2>/dev/null' EXIT
mkdir -p "$ROOT" "$COCOON_RUN_DIR"
has_events() { # TYPE MAC N
	[ "$(grep -c "^$1 .*mac=$2" "$TEST_TMP/events")" -eq "$3" ]
}
no_route() {
	[ -z "$(ip -n "$NODE" route show "$1/32")" ]
}
# NETD_VALGRIND=1 (scenario 042): every netd runs under memcheck, and an error or a leak
# turns its exit status into 9, which the status checks below catch.
WRAP=()
[ -z "${NETD_VALGRIND:-}" ] || WRAP=(valgrind --quiet --leak-check=full
	--show-leak-kinds=definite,indirect,possible
	--errors-for-leak-kinds=definite,indirect,possible --error-exitcode=9)
NETD_CMD=(ip netns exec "$NODE" env COCOON_NET_ROOT="$ROOT" COCOON_NET_DNSMASQ=external
	COCOON_NET_METRICS_ADDR= COCOON_NET_SKIP_IPTABLES=yes "${WRAP[@]}" "$BIN/netd")

ip netns add "$NODE"
ip -n "$NODE" link set lo up
ip netns exec "$NODE" "$BIN/cocoon-net" adopt --root "$ROOT" --platform gke --node-name node-1 \
	--subnet 10.78.0.0/24 --pool-size 50 >"$TEST_TMP/adopt.log" 2>&1 ||
	fail "cocoon-net adopt failed: $(cat "$TEST_TMP/adopt.log")"

# State an earlier netd left: a route for a lease that has gone, and one an operator added.
ip -n "$NODE" route add 10.78.0.40/32 dev cni0 proto 200
ip -n "$NODE" route add 10.78.0.41/32 dev cni0 proto static
now=$(date +%s)
printf '%s 52:54:00:78:00:05 10.78.0.5 guest-5 *\n' $((now + 3600)) >"$LEASES"

"${NETD_CMD[@]}" >"$TEST_TMP/netd.log" 2>&1 &
NETD=$!
lib_bg "$NETD"
wait_up "$NETD" 30 "netd to serve" grep -q "serving:" "$TEST_TMP/netd.log"
assert_contains "$(cat "$TEST_TMP/netd.log")" "routes: 1 active leases, 1 routes added, 1 stale routes removed" \
	"start-up reconcile"
no_route 10.78.0.40 || fail "the stale proto 200 route survived the reconcile"
[ -n "$(ip -n "$NODE" route show 10.78.0.41/32 proto static)" ] || fail "the static route was removed"
assert_contains "$(ip -n "$NODE" -j route show 10.78.0.5/32)" '"protocol":"200"' "route of the lease in the file"

"$TOOLS/netd-bus" sub 0 60 >"$TEST_TMP/events" 2>&1 &
lib_bg $!
wait_for 5 "the subscriber" grep -q READY "$TEST_TMP/events"

# ---- a short lease, a bad line, and a renewal ----
now=$(date +%s)
printf '%s 52:54:00:78:00:06 10.78.0.6 * 01:52:54:00:78:00:06\n%s 52:54:00:78:00:05 10.78.0.5 guest-5 *\nnot a lease\n' \
	$((now + 2)) $((now + 7200)) >"$LEASES"
wait_for 5 "LEASE_GRANTED for the short lease" has_events LEASE_GRANTED 52:54:00:78:00:06 1
wait_for 5 "LEASE_GRANTED (renewal) for 10.78.0.5" has_events LEASE_GRANTED 52:54:00:78:00:05 1
[ -n "$(ip -n "$NODE" route show 10.78.0.6/32)" ] || fail "no route for the short lease"
wait_for 6 "LEASE_EXPIRED when the short lease runs out" has_events LEASE_EXPIRED 52:54:00:78:00:06 1
no_route 10.78.0.6 || fail "the route of the expired lease survived"
# The same bad line, now further down, after another rewrite: still one warning.
printf '%s 52:54:00:78:00:07 10.78.0.7 * *\n%s\n' $((now + 3600)) "$(cat "$LEASES")" >"$LEASES"
wait_for 5 "LEASE_GRANTED for 10.78.0.7" has_events LEASE_GRANTED 52:54:00:78:00:07 1
sleep 0.5 # the settle read
warnings=$(grep -c "line [0-9]*: expected 5 fields" "$TEST_TMP/netd.log" || true)
assert_eq 1 "$warnings" "warnings for one bad line"
assert_contains "$(cat "$TEST_TMP/netd.log")" "line 3: expected 5 fields" "bad line warning names its line"

# ---- the cocoon-net JSON format (renamed into place, as the Go daemon wrote it) ----
cat >"$TEST_TMP/leases.json" <<EOF
[
  {"mac": "52:54:00:78:00:05", "ip": "10.78.0.5", "expiry": "$(date -u -d @$((now + 7200)) +%Y-%m-%dT%H:%M:%SZ)"},
  {"mac": "52:54:00:78:00:08", "ip": "10.78.0.8", "expiry": "$(date -u -d @$((now + 600)) +%Y-%m-%dT%H:%M:%S.5+00:00)"}
]
EOF
mv "$TEST_TMP/leases.json" "$LEASES"
wait_for 5 "LEASE_GRANTED from the JSON file" has_events LEASE_GRANTED 52:54:00:78:00:08 1
wait_for 5 "LEASE_EXPIRED for the lease the JSON file dropped" has_events LEASE_EXPIRED 52:54:00:78:00:07 1
no_route 10.78.0.7 || fail "the route of the dropped lease survived"
has_events LEASE_GRANTED 52:54:00:78:00:05 1 || fail "an unchanged lease was announced again"

# ---- requests ----
assert_eq OK "$("$TOOLS/netd-bus" release 52:54:00:78:00:08)" "LEASE_RELEASE"
wait_for 5 "LEASE_EXPIRED after LEASE_RELEASE" has_events LEASE_EXPIRED 52:54:00:78:00:08 1
no_route 10.78.0.8 || fail "the route of the released lease survived"
assert_contains "$("$TOOLS/netd-bus" status)" "pool_size=50 active_leases=1" "NET_STATUS"
assert_eq OK "$("$TOOLS/netd-bus" reload)" "NET_RELOAD"
# Once at start, once for the reload: the node was converged both times.
assert_eq 2 "$(grep -c 'node setup: no changes' "$TEST_TMP/netd.log")" "node setup runs"
# The reload re-read the file, which still lists the released lease (no dnsmasq here took
# the DHCPRELEASE): it stays released.
assert_contains "$("$TOOLS/netd-bus" status)" "active_leases=1" "NET_STATUS after the reload"
has_events LEASE_GRANTED 52:54:00:78:00:08 1 || fail "the released lease was announced again"

# ---- one netd per node ----
rc=0
"${NETD_CMD[@]}" >"$TEST_TMP/second.log" 2>&1 || rc=$?
assert_eq 1 "$rc" "exit status of a second netd"
assert_contains "$(cat "$TEST_TMP/second.log")" "another netd is running (pid $NETD" "second netd"

# ---- SIGTERM: exit 0, routes stay for the guests ----
kill -TERM "$NETD"
rc=0
wait "$NETD" || rc=$?
lib_forget "$NETD"
assert_eq 0 "$rc" "netd exit status after SIGTERM"
[ -n "$(ip -n "$NODE" route show 10.78.0.5/32)" ] || fail "the route of an active lease went with netd"
echo "PASS: reconcile, timer expiry, bad line once, JSON format, release, reload, lock, SIGTERM"
