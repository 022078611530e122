#!/usr/bin/env bash
# epoch when things go wrong, against the real docker-registry: a registry with upload
# sessions only (chunked PATCH, remembered after the first 405; tag deletes by digest), a
# blob corrupted or truncated in the registry's storage (the pull aborts and the importer
# records nothing), the registry killed in the middle of a push (a clear error, then a retry
# succeeds and the round trip is exact), an export that dies half way (in the first pass or
# the second), a snapshot that changes between the two passes of a push, TLS with a private
# CA (EPOCH_CA_CERT), usage errors that name the option, a missing cocoon binary, a name the
# importer refuses, and a registry that is not there.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/epoch-lib.sh"
lib_init
epoch_setup
D=$TEST_TMP
registry_start reg
export EPOCH_URL=$REG_URL

# --- docker-registry has no monolithic blob PUT: upload sessions, in 1 MiB PATCH chunks
"$SIM" mksnap vm2 --disk-size 2G --data-mib 4 --segments 2 >/dev/null
EPOCH_CHUNK_SIZE=1048576 "$EPOCH" push vm2 >/dev/null 2>"$D/push.err" ||
	fail "push to a session-only registry: $(cat "$D/push.err")"
log=$(cat "$REG_DIR/registry.log")
monolithic=$(grep -c '"PUT /v2/vm2/blobs/sha256:' <<<"$log" || true)
assert_eq 1 "$monolithic" "monolithic PUTs tried (once, then the registry is known)"
patches=$(grep -c '"PATCH /v2/vm2/blobs/uploads/' <<<"$log" || true)
# 4 MiB: three 1 MiB PATCHes, the last MiB rides on the closing PUT ?digest=
assert_eq 3 "$patches" "PATCH chunks for the 4 MiB cow.raw"
"$EPOCH" pull vm2 --name vm2-copy 2>/dev/null || fail "pull from the session-only registry"
same_files "$(snap_dir vm2)" "$(snap_dir vm2-copy)"

# --- tag deletes on a registry that deletes by digest only
"$EPOCH" tag vm2:latest vm2:twin 2>/dev/null
rc=0
out=$("$EPOCH" rm vm2:twin 2>&1) || rc=$?
assert_eq 1 "$rc" "rm of a tag that shares its manifest"
assert_contains "$out" "cannot delete vm2:twin alone" "rm refuses to delete more than asked"
assert_eq "latest twin" "$("$EPOCH" ls vm2 | tr '\n' ' ' | sed 's/ $//')" "both tags kept"
"$EPOCH" push vm2 -t solo >/dev/null 2>&1 # same blobs, but a manifest of its own (created)
sleep 1.1
"$EPOCH" push vm2 -t solo >/dev/null 2>&1
assert_contains "$("$EPOCH" rm vm2:solo 2>&1)" "deleted vm2:solo" "rm by digest"
assert_contains "$("$EPOCH" rm vm2:solo 2>&1)" "already absent: vm2:solo" "rm of a missing tag"

# --- a corrupted blob: the pull stops and the importer keeps nothing
blob=$("$EPOCH" inspect vm2 -o json | python3 -c '
import json, sys
print(next(l["digest"] for l in json.load(sys.stdin)["layers"] if l["title"] == "cow.raw"))')
data=$REG_DIR/data/docker/registry/v2/blobs/sha256/${blob:7:2}/${blob:7}/data
[ -f "$data" ] || fail "no blob file at $data"
cp "$data" "$D/good"
python3 - "$data" <<'EOF'
import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(3 << 20)
    b = f.read(1)
    f.seek(3 << 20)
    f.write(bytes([b[0] ^ 0xFF]))
EOF
rc=0
out=$("$EPOCH" pull vm2 --name vm2-bad 2>&1) || rc=$?
assert_eq 1 "$rc" "pull of a corrupted blob"
assert_contains "$out" "blob $blob is corrupt: its bytes hash to sha256:" "corruption message"
rc=0
"$EPOCH_COCOON_BINARY" snapshot inspect vm2-bad >/dev/null 2>&1 || rc=$?
assert_eq 1 "$rc" "the importer recorded nothing"
rc=0
"$EPOCH" get vm2 >"$D/bad.tar" 2>/dev/null || rc=$?
assert_eq 1 "$rc" "get of a corrupted blob"
# the same blob one byte short: caught from the size the registry announces
head -c -1 "$D/good" >"$data"
rc=0
out=$("$EPOCH" pull vm2 --name vm2-short 2>&1) || rc=$?
assert_eq 1 "$rc" "pull of a truncated blob"
assert_contains "$out" "bytes for blob $blob, the manifest says" "truncation message"
"$EPOCH_COCOON_BINARY" snapshot inspect vm2-short >/dev/null 2>&1 && fail "vm2-short was imported"
cp "$D/good" "$data"
"$EPOCH" pull vm2 --name vm2-again 2>/dev/null || fail "pull after the repair"

# --- the registry dies in the middle of a push; a retry then succeeds
TOKEN=tok-$RANDOM
extras_start slow --rate $((8 << 20))
"$SIM" mksnap vm3 --disk-size 3G --data-mib 24 --segments 3 >/dev/null
EPOCH_URL=$EXTRAS_URL EPOCH_TOKEN=$TOKEN "$EPOCH" push vm3 >/dev/null 2>"$D/cut.err" &
push=$!
lib_bg "$push"
# the config blob, cocoon.json, config.json, then cow.raw: its session is the fourth one
wait_for 20 "the cow.raw upload to start" bash -c \
	"[ \$(grep -c '\"POST /v2/vm3/blobs/uploads/' '$REG_DIR/registry.log') -ge 4 ]"
sleep 0.5
kill -9 "$REG_PID"
rc=0
wait "$push" || rc=$?
lib_forget "$push"
assert_eq 1 "$rc" "push while the registry dies"
assert_contains "$(cat "$D/cut.err")" "uploading cow.raw: PUT $EXTRAS_URL/v2/vm3/blobs/sha256:" \
	"the error names the file and the request"
registry_restart
EPOCH_URL=$EXTRAS_URL EPOCH_TOKEN=$TOKEN "$EPOCH" push vm3 >/dev/null 2>"$D/retry.err" ||
	fail "the retry: $(cat "$D/retry.err")"
EPOCH_URL=$EXTRAS_URL "$EPOCH" pull vm3 --name vm3-copy 2>/dev/null || fail "pull after the retry"
same_files "$(snap_dir vm3)" "$(snap_dir vm3-copy)"

# --- an export that dies half way leaves no manifest behind
rc=0
out=$(COCOON_SIM_EXPORT_FAIL_AFTER=200000 "$EPOCH" push vm2 -t broken 2>&1) || rc=$?
assert_eq 1 "$rc" "push of a failing export"
assert_contains "$out" "snapshot export vm2 failed (exit 1): Error: simulated export failure" \
	"export failure message"
rc=0
"$EPOCH" inspect vm2:broken >/dev/null 2>&1 || rc=$?
assert_eq 1 "$rc" "no manifest for a failed push"

# --- the snapshot changes between the two passes: the push names the file and both
# digests, and neither the changed data nor a manifest reaches the registry
"$SIM" mksnap vm4 --disk-size 1G --data-mib 2 --segments 1 >/dev/null
cow_digest() { # the sha256 of cow.raw's data in an export
	"$@" snapshot export vm4 -o - | python3 -c '
import hashlib, sys, tarfile
with tarfile.open(fileobj=sys.stdin.buffer, mode="r|") as t:
    for m in t:
        if m.name == "cow.raw":
            print("sha256:" + hashlib.sha256(t.extractfile(m).read()).hexdigest())'
}
first=$(cow_digest "$EPOCH_COCOON_BINARY")
changed=$(cow_digest env COCOON_SIM_EXPORT_FLIP=cow.raw "$EPOCH_COCOON_BINARY")
rm -f "$COCOON_SIM_ROOT/export-count.json"
rc=0
out=$(COCOON_SIM_EXPORT_NTH=2 COCOON_SIM_EXPORT_FLIP=cow.raw "$EPOCH" push vm4 2>&1) || rc=$?
assert_eq 1 "$rc" "push of a snapshot that changes between the passes"
assert_contains "$out" \
	"snapshot vm4 changed while it was pushed: cow.raw now has $changed (first read: $first)" \
	"changed snapshot message"
assert_eq 2 "$(cat "$COCOON_SIM_ROOT/export-count.json")" "exports read by the push"
blobs=$REG_DIR/data/docker/registry/v2/blobs/sha256
[ ! -e "$blobs/${changed:7:2}/${changed:7}" ] || fail "the changed cow.raw reached the registry"
[ ! -e "$blobs/${first:7:2}/${first:7}" ] || fail "a cow.raw blob was completed"
rc=0
"$EPOCH" inspect vm4 >/dev/null 2>&1 || rc=$?
assert_eq 1 "$rc" "no manifest for a snapshot that changed"

# --- an export that fails in the second pass: the same message as in the first
rm -f "$COCOON_SIM_ROOT/export-count.json"
rc=0
out=$(COCOON_SIM_EXPORT_NTH=2 COCOON_SIM_EXPORT_FAIL_AFTER=200000 "$EPOCH" push vm4 2>&1) || rc=$?
assert_eq 1 "$rc" "push whose second export fails"
assert_eq 2 "$(cat "$COCOON_SIM_ROOT/export-count.json")" "exports read by the failed push"
assert_contains "$out" "snapshot export vm4 failed (exit 1): Error: simulated export failure" \
	"second-pass export failure message"
rc=0
"$EPOCH" inspect vm4 >/dev/null 2>&1 || rc=$?
assert_eq 1 "$rc" "no manifest for a failed second pass"
"$EPOCH" push vm4 >/dev/null 2>&1 || fail "push of vm4 once the export behaves"
"$EPOCH" pull vm4 --name vm4-copy 2>/dev/null || fail "pull of vm4"
same_files "$(snap_dir vm4)" "$(snap_dir vm4-copy)"

# --- TLS with a private CA: refused without EPOCH_CA_CERT, trusted with it
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
	-keyout "$D/tls.key" -out "$D/tls.crt" -subj "/CN=127.0.0.1" \
	-addext subjectAltName=IP:127.0.0.1 2>/dev/null
tport=$(free_port)
cat >"$D/tls.yml" <<EOF
version: 0.1
storage: {filesystem: {rootdirectory: $D/tlsdata}}
http: {addr: "127.0.0.1:$tport", tls: {certificate: $D/tls.crt, key: $D/tls.key}}
EOF
docker-registry serve "$D/tls.yml" >"$D/tls.log" 2>&1 &
lib_bg $!
wait_port 127.0.0.1 "$tport"
rc=0
out=$(EPOCH_URL=https://127.0.0.1:$tport "$EPOCH" ls 2>&1) || rc=$?
assert_eq 1 "$rc" "TLS registry without its CA"
assert_contains "$out" "SSL certificate problem" "TLS registry without its CA"
EPOCH_URL=https://127.0.0.1:$tport EPOCH_CA_CERT=$D/tls.crt "$EPOCH" push vm2 >/dev/null 2>&1 ||
	fail "push over TLS with EPOCH_CA_CERT"
assert_eq vm2 "$(EPOCH_URL=https://127.0.0.1:$tport EPOCH_CA_CERT=$D/tls.crt "$EPOCH" ls)" \
	"catalog over TLS"

# --- usage errors name what is wrong: an option the verb does not take, an empty --name
rc=0
out=$("$EPOCH" push vm2 --name x 2>&1) || rc=$?
assert_eq 2 "$rc" "push with a pull option"
assert_contains "$out" "--name is not accepted by push" "the option named"
rc=0
out=$("$EPOCH" pull vm2 --name "" 2>&1) || rc=$?
assert_eq 2 "$rc" "pull with an empty --name"
assert_contains "$out" "--name: empty" "an empty --name"

# --- no cocoon binary; a name the importer refuses; no registry
rc=0
out=$(EPOCH_COCOON_BINARY=/nonexistent/cocoon "$EPOCH" push vm2 2>&1) || rc=$?
assert_eq 1 "$rc" "push without a cocoon binary"
assert_contains "$out" "cannot run /nonexistent/cocoon" "missing cocoon (push)"
rc=0
out=$(EPOCH_COCOON_BINARY=/nonexistent/cocoon "$EPOCH" pull vm2 --name x 2>&1) || rc=$?
assert_eq 1 "$rc" "pull without a cocoon binary"
assert_contains "$out" "cannot run /nonexistent/cocoon" "missing cocoon (pull)"
rc=0
out=$("$EPOCH" pull vm2 --name vm2-copy 2>&1) || rc=$?
assert_eq 1 "$rc" "pull into a name that exists"
assert_contains "$out" "snapshot name 'vm2-copy' already exists" "the importer's own words"
rc=0
out=$(EPOCH_URL=http://127.0.0.1:$(free_port) "$EPOCH" ls 2>&1) || rc=$?
assert_eq 1 "$rc" "ls without a registry"
assert_contains "$out" "Connection refused" "no registry"
[ -z "$(ls -A "$TMPDIR")" ] || fail "temp files left behind: $(ls -A "$TMPDIR")"
echo "PASS: epoch sessions, deletes by digest, corruption, interruption, failures"
