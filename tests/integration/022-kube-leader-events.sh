#!/usr/bin/env bash
# Leader election and Events (common/src/kube_leader.c, kube_event.c) against kubesim over
# TLS, driven by $TOOLS/kube-leader:
#   - two candidates, one leads; the standby keeps waiting while the leader renews, for
#     longer than the lease duration;
#   - kill -9 the leader: the standby leads within lease + retry + slack of the kill, and
#     not before the lease could have expired; leaseTransitions goes to 1;
#   - SIGTERM the new leader: it prints STOPPED then RELEASED, exits 0, the Lease shows no
#     holder, and a third candidate takes over within two retry periods of the release;
#     leaseTransitions goes to 2;
#   - the same Event recorded 5 times is one Event with count 5 (by the API and kubectl),
#     a different reason is a second Event.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
lib_init

for tool in python3 openssl curl; do
	command -v "$tool" >/dev/null || skip "$tool is not installed"
done
KL=${TOOLS:?TOOLS must point at the built tests/tools}/kube-leader
[ -x "$KL" ] || fail "no $KL (build it with make tests-build)"

LEASE_MS=3000 RENEW_MS=2000 RETRY_MS=500
kubesim_start leader --tls
LEASE=/apis/coordination.k8s.io/v1/namespaces/default/leases/lock

now() { date +%s.%N; }
# The timestamp of the first line "<time> WHAT" in a candidate's output.
stamp() { awk -v w="$2" '{ t = $1; $1 = ""; sub(/^ /, ""); if ($0 == w) { print t; exit } }' "$TEST_TMP/$1.out"; }
has() { [ -n "$(stamp "$1" "$2")" ]; }
ms_between() { python3 -c "print(int((float('$2') - float('$1')) * 1000))"; }
spec() { kcurl GET "$LEASE" | python3 -c "import json,sys; print(json.load(sys.stdin)['spec'].get('$1'))"; }
candidate() {
	"$KL" default lock "$1" --lease-ms $LEASE_MS --renew-ms $RENEW_MS --retry-ms $RETRY_MS \
		>"$TEST_TMP/$1.out" 2>"$TEST_TMP/$1.err" &
	eval "PID_$1=$!"
	lib_bg $!
}

echo "== one of two candidates leads"
candidate a
wait_for 10 "a to lead" has a LEADING
candidate b
wait_for 10 "b to see a as leader" has b "NEW LEADER a"
sleep $(((LEASE_MS + 1000) / 1000))
has b LEADING && fail "b took over a lease that a kept renewing: $(cat "$TEST_TMP/b.out")"
assert_eq a "$(spec holderIdentity)" "holder while a leads"
assert_eq 0 "$(spec leaseTransitions)" "leaseTransitions after the first acquisition"

echo "== kill -9 the leader: the standby takes over after the lease expires"
killed=$(now)
kill -9 "$PID_a"
wait "$PID_a" 2>/dev/null || true
lib_forget "$PID_a"
wait_for 15 "b to lead" has b LEADING
took=$(ms_between "$killed" "$(stamp b LEADING)")
echo "b led ${took} ms after the kill (lease ${LEASE_MS} ms, retry ${RETRY_MS} ms)"
[ "$took" -lt $((LEASE_MS + RETRY_MS + 1500)) ] || fail "takeover took ${took} ms"
[ "$took" -ge $((LEASE_MS - RETRY_MS - 300)) ] || fail "takeover after ${took} ms: before the lease expired"
assert_eq b "$(spec holderIdentity)" "holder after the takeover"
assert_eq 1 "$(spec leaseTransitions)" "leaseTransitions after the takeover"

echo "== SIGTERM releases the lease: the next standby takes over at once"
candidate c
wait_for 10 "c to see b as leader" has c "NEW LEADER b"
kill -TERM "$PID_b"
rc=0
wait "$PID_b" || rc=$?
lib_forget "$PID_b"
assert_eq 0 "$rc" "b's exit status after SIGTERM"
has b STOPPED || fail "b did not print STOPPED: $(cat "$TEST_TMP/b.out")"
has b RELEASED || fail "b did not print RELEASED: $(cat "$TEST_TMP/b.out")"
[ "$(ms_between "$(stamp b STOPPED)" "$(stamp b RELEASED)")" -ge 0 ] || fail "RELEASED before STOPPED"
wait_for 5 "c to lead" has c LEADING
took=$(ms_between "$(stamp b RELEASED)" "$(stamp c LEADING)")
echo "c led ${took} ms after the release (retry ${RETRY_MS} ms)"
[ "$took" -lt $((2 * RETRY_MS)) ] || fail "takeover after a release took ${took} ms"
assert_eq c "$(spec holderIdentity)" "holder after the release"
assert_eq 2 "$(spec leaseTransitions)" "leaseTransitions after the release"
kill -TERM "$PID_c"
wait "$PID_c" || fail "c exited $? after SIGTERM"
lib_forget "$PID_c"
assert_eq "" "$(spec holderIdentity)" "holder after the last release"

echo "== Events: repeats are counted into one Event"
"$KL" event default Pod web-0 BackOff "Back-off restarting failed container" --times 5 \
	--component cocoon-operator >"$TEST_TMP/ev1.out" 2>"$TEST_TMP/ev1.err" ||
	fail "recording failed: $(cat "$TEST_TMP/ev1.out" "$TEST_TMP/ev1.err")"
assert_contains "$(cat "$TEST_TMP/ev1.out")" "RECORDED 5 failures 0" "kube-leader event"
"$KL" event default Pod web-0 Pulled "Successfully pulled image" --component cocoon-operator \
	>/dev/null 2>"$TEST_TMP/ev2.err" || fail "recording failed: $(cat "$TEST_TMP/ev2.err")"
events=$(kcurl GET "/api/v1/namespaces/default/events?fieldSelector=involvedObject.name%3Dweb-0" |
	python3 -c '
import json, sys
for e in sorted(json.load(sys.stdin)["items"], key=lambda e: e["reason"]):
    print(e["reason"], e["count"], e["type"], e["involvedObject"]["kind"],
          e["source"]["component"], e["reportingComponent"],
          e["metadata"]["name"].startswith("web-0."), e["message"].replace(" ", "_"))')
echo "$events"
assert_eq 2 "$(wc -l <<<"$events")" "Events for web-0"
assert_eq "BackOff 5 Normal Pod cocoon-operator cocoon-operator True Back-off_restarting_failed_container" \
	"$(sed -n 1p <<<"$events")" "the repeated Event"
assert_eq "Pulled 1 Normal Pod cocoon-operator cocoon-operator True Successfully_pulled_image" \
	"$(sed -n 2p <<<"$events")" "the second Event"
if [ -x /usr/bin/kubectl ]; then
	out=$(HOME=$TEST_TMP kubectl get events -n default --field-selector involvedObject.name=web-0 \
		-o custom-columns=REASON:.reason,COUNT:.count --no-headers 2>&1) ||
		fail "kubectl get events: $out"
	assert_contains "$out" "BackOff" "kubectl get events"
	assert_eq "5" "$(awk '$1 == "BackOff" { print $2 }' <<<"$out")" "kubectl's count"
fi
kubesim_stop
echo "PASS"
