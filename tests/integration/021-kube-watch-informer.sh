#!/usr/bin/env bash
# The Kubernetes client's watch and informer (common/src/kube_watch.c, kube_informer.c)
# against kubesim over TLS, driven by $TOOLS/kube-watch:
#   - a watch from an old resourceVersion replays every change after it, in order;
#   - a watch from an RV older than the history gets EXPIRED (200 + ERROR 410);
#   - BOOKMARK events arrive only when asked for;
#   - all of it over watch streams cut into random chunks (kubesim --watch-fragment);
#   - an informer under 1,000 random creates/updates/deletes, part of them while it is
#     stopped so that its watch falls out of the history and it must relist, ends with a
#     cache equal to the server's list (key and RV of every object), and its label index
#     answers like a label-selector list.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
lib_init

for tool in python3 openssl curl; do
	command -v "$tool" >/dev/null || skip "$tool is not installed"
done
KW=${TOOLS:?TOOLS must point at the built tests/tools}/kube-watch
[ -x "$KW" ] || fail "no $KW (build it with make tests-build)"

HISTORY=50
# --watch-fragment: kubesim cuts every watch stream into random chunks that split and join
# events, so everything below also exercises the stream splitter (kube-api.md §6 #20).
kubesim_start demo --tls --watch-history "$HISTORY" --watch-queue 20 --bookmark-interval 1 \
	--watch-fragment --log-level debug
CM=/api/v1/namespaces/default/configmaps

rv_of() { python3 -c 'import json,sys; print(json.load(sys.stdin)["metadata"]["resourceVersion"])'; }
kpatch() {
	curl -sS -k -X PATCH -H "Authorization: Bearer $KUBESIM_TOKEN" \
		-H "Content-Type: application/merge-patch+json" --data "$2" "$KUBESIM_URL$1"
}
create_cm() { kcurl POST "$CM" "{\"metadata\":{\"name\":\"$1\",\"labels\":{\"app\":\"$2\"}}}" | rv_of; }

echo "== watch replay from an old resourceVersion"
rv1=$(create_cm cm1 a)
rv2=$(create_cm cm2 a)
rv3=$(kpatch "$CM/cm1" '{"data":{"k":"v"}}' | rv_of)
kcurl DELETE "$CM/cm2" >/dev/null
timeout 3 "$KW" watch "$CM" --rv "$rv1" >"$TEST_TMP/replay.out" 2>"$TEST_TMP/replay.err" || true
replay=$(grep -v '^BOOKMARK' "$TEST_TMP/replay.out" | head -3 | cut -d' ' -f1,2 | tr '\n' ' ')
assert_eq "ADDED default/cm2 MODIFIED default/cm1 DELETED default/cm2 " "$replay" \
	"events replayed after RV $rv1"
grep -q "^ADDED default/cm2 $rv2\$" "$TEST_TMP/replay.out" || fail "cm2 without its RV $rv2"
grep -q "^MODIFIED default/cm1 $rv3\$" "$TEST_TMP/replay.out" || fail "cm1 without its RV $rv3"
assert_not_contains "$(cat "$TEST_TMP/replay.out")" "ADDED default/cm1" "replay starts after $rv1"

echo "== bookmarks only when asked for"
timeout 3 "$KW" watch "$CM" --bookmarks >"$TEST_TMP/bm.out" 2>&1 || true
grep -q '^BOOKMARK [0-9]' "$TEST_TMP/bm.out" || fail "no BOOKMARK with --bookmarks: $(cat "$TEST_TMP/bm.out")"
timeout 2.5 "$KW" watch "$CM" >"$TEST_TMP/nobm.out" 2>&1 || true
assert_not_contains "$(cat "$TEST_TMP/nobm.out")" "BOOKMARK" "watch without allowWatchBookmarks"

echo "== forced 410: a resourceVersion older than the history"
for i in $(seq 1 $((HISTORY + 5))); do
	kpatch "$CM/cm1" "{\"data\":{\"k\":\"v$i\"}}" >/dev/null
done
rc=0
timeout 10 "$KW" watch "$CM" --rv "$rv1" >"$TEST_TMP/expired.out" 2>&1 || rc=$?
assert_eq 0 "$rc" "kube-watch exit status after EXPIRED"
assert_eq "EXPIRED" "$(tail -1 "$TEST_TMP/expired.out")" "watch from RV $rv1"

echo "== informer under 1,000 random writes"
NS=burst
kcurl POST /api/v1/namespaces "{\"metadata\":{\"name\":\"$NS\"}}" >/dev/null
mkfifo "$TEST_TMP/cmd"
"$KW" informer "/api/v1/namespaces/$NS/configmaps" --index label:app --index namespace \
	<"$TEST_TMP/cmd" >"$TEST_TMP/inf.out" 2>"$TEST_TMP/inf.err" &
INF=$!
lib_bg "$INF"
exec 3>"$TEST_TMP/cmd"
wait_for 10 "the informer to sync" grep -q '^SYNCED ' "$TEST_TMP/inf.out"

# burst SEED COUNT PAD: COUNT random writes (create 45%, merge-patch 35%, delete 20%) with
# PAD bytes of data in each object, from 8 connections at once (kubesim answers each
# request in two writes, so one connection waits for delayed ACKs); each connection has its
# own pool of 20 names, so the writes of one name stay in order. Prints how many succeeded.
burst() {
	python3 - "$KUBESIM_URL" "$KUBESIM_TOKEN" "$NS" "$@" <<'EOF'
import http.client, json, random, ssl, sys, threading, urllib.parse
url, token, ns, seed, count, pad = sys.argv[1:7]
u = urllib.parse.urlparse(url)
base = f"/api/v1/namespaces/{ns}/configmaps"
WORKERS = 8
ok = [0] * WORKERS
bad = []

def work(t):
    rnd = random.Random(int(seed) * 100 + t)
    conn = http.client.HTTPSConnection(u.hostname, u.port,
                                       context=ssl._create_unverified_context())
    def call(method, path, body=None, ctype="application/json"):
        conn.request(method, path, body=json.dumps(body) if body is not None else None,
                     headers={"Authorization": "Bearer " + token, "Content-Type": ctype})
        r = conn.getresponse()
        r.read()
        return r.status
    for i in range(int(count) // WORKERS):
        name = f"c{t}-{rnd.randrange(20)}"
        op = rnd.random()
        data = {"v": str(i), "pad": "x" * int(pad)}
        labels = {"app": rnd.choice("abc")}
        if op < 0.45:
            st = call("POST", base, {"metadata": {"name": name, "labels": labels}, "data": data})
        elif op < 0.80:
            st = call("PATCH", f"{base}/{name}", {"metadata": {"labels": labels}, "data": data},
                      "application/merge-patch+json")
        else:
            st = call("DELETE", f"{base}/{name}")
        if st not in (200, 201, 404, 409):
            bad.append(f"worker {t} write {i}: HTTP {st}")
            return
        ok[t] += st in (200, 201)

threads = [threading.Thread(target=work, args=(t,)) for t in range(WORKERS)]
for th in threads:
    th.start()
for th in threads:
    th.join()
if bad:
    sys.exit("; ".join(bad))
print(sum(ok))
EOF
}

lists_before=$(grep -c "GET /api/v1/namespaces/$NS/configmaps?limit" "$KUBESIM_LOG" || true)
writes=$(burst 21 600 0)
# Stopped, the informer cannot read; bulky events fill the socket, kubesim drops the lagging
# watcher (--watch-queue), and the resume RV falls out of the history: it must relist.
kill -STOP "$INF"
more=$(burst 22 400 131072) || { kill -CONT "$INF"; fail "the second burst failed"; }
kill -CONT "$INF"
writes=$((writes + more))
echo "successful writes: $writes"
[ "$writes" -ge 300 ] || fail "only $writes writes succeeded"

server_digest() {
	kcurl GET "/api/v1/namespaces/$NS/configmaps$1" | python3 -c '
import json, sys
for o in json.load(sys.stdin)["items"]:
    m = o["metadata"]
    print(m["namespace"] + "/" + m["name"] + " " + m["resourceVersion"])' | LC_ALL=C sort
}

# informer_ask CMD FIELDS: send CMD, print the answer block (lines of FIELDS words) up to END.
informer_ask() {
	local mark
	mark=$(wc -l <"$TEST_TMP/inf.out")
	echo "$1" >&3
	wait_for 10 "an answer to '$1'" bash -c "tail -n +$((mark + 1)) '$TEST_TMP/inf.out' | grep -q '^END\$'"
	tail -n +$((mark + 1)) "$TEST_TMP/inf.out" |
		awk -v nf="$2" '$0 == "END" { exit } NF == nf && !/^(ADD|UPDATE|DELETE|SYNCED) /'
}

digests_equal() {
	local want got
	want=$(server_digest "")
	got=$(informer_ask dump 2)
	[ "$want" = "$got" ]
}
deadline=$((SECONDS + 30))
until digests_equal; do
	[ "$SECONDS" -lt "$deadline" ] || {
		diff <(server_digest "") <(informer_ask dump 2) | head -20 >&2
		fail "the informer's cache differs from the server's list"
	}
	sleep 0.5
done
n=$(server_digest "" | wc -l)
echo "informer cache equals the server's list ($n objects)"
[ "$n" -gt 10 ] || fail "suspiciously few objects: $n"

lists=$(grep -c "GET /api/v1/namespaces/$NS/configmaps?limit" "$KUBESIM_LOG" || true)
[ $((lists - lists_before)) -ge 1 ] || fail "the informer never relisted (lists: $lists)"
echo "relists during the burst: $((lists - lists_before))"
grep -q '^DELETE ' "$TEST_TMP/inf.out" || fail "no delete handler call"
grep -q '^UPDATE ' "$TEST_TMP/inf.out" || fail "no update handler call"

for app in a b c; do
	want=$(server_digest "?labelSelector=app%3D$app" | cut -d' ' -f1)
	got=$(informer_ask "index label:app $app" 1)
	assert_eq "$want" "$got" "index label:app=$app"
done
got=$(informer_ask "index namespace $NS" 1)
assert_eq "$(server_digest "" | cut -d' ' -f1)" "$got" "index namespace=$NS"
assert_eq "ERROR no index label:tier" "$(informer_ask 'index label:tier x' 4)" "unknown index"

# SIGUSR1 dumps the cache too.
mark=$(wc -l <"$TEST_TMP/inf.out")
kill -USR1 "$INF"
wait_for 10 "a dump on SIGUSR1" bash -c "tail -n +$((mark + 1)) '$TEST_TMP/inf.out' | grep -q '^END\$'"

exec 3>&-
kill -TERM "$INF"
rc=0
wait "$INF" || rc=$?
lib_forget "$INF"
assert_eq 0 "$rc" "kube-watch informer exit status after SIGTERM"
kubesim_stop
echo "PASS"
