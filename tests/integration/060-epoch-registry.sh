#!/usr/bin/env bash
# epoch against a real OCI registry (Debian's docker-registry) behind the Epoch extras double
# (tests/doubles/epoch-extras.py): a 4 GiB sparse snapshot pushed and pulled back
# byte-identical with its holes (the export read twice: hashed, then streamed); a second push
# that uploads no blob bytes and reads the export once; the manifest's
# media types and annotations; ls/tag/rm with JSON output; tokens (writes refused without
# one, the Docker token flow); Epoch /dl/ (legacy multi-segment ones too) and /v2/ URLs as
# references; and a cloud image
# split in parts, reassembled in title order by `get` and `pull`.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/epoch-lib.sh"
lib_init
epoch_setup
D=$TEST_TMP
TOKEN=tok-$RANDOM$RANDOM
registry_start reg
extras_start extras
export EPOCH_URL=$EXTRAS_URL EPOCH_TOKEN=$TOKEN

# --- push a 4 GiB snapshot holding 8 MiB of data
"$SIM" mksnap vm1 --disk-size 4G --data-mib 8 --description "the first one" >/dev/null
exports() { cat "$COCOON_SIM_ROOT/export-count.json"; }
digest=$("$EPOCH" push vm1 2>"$D/push.err") || fail "push failed: $(cat "$D/push.err")"
assert_contains "$(cat "$D/push.err")" "pushed vm1:latest $digest (5 files" "push summary"
assert_not_contains "$(cat "$D/push.err")" "already there" "push summary: everything was new"
assert_eq 2 "$(exports)" "exports read by a push with blobs to upload"
sent=$(uploaded_bytes "$EXTRAS_LOG")
# the data plus a few small files: the 4 GiB of holes never travel
[ "$sent" -ge $((8 << 20)) ] && [ "$sent" -lt $((9 << 20)) ] ||
	fail "the first push uploaded $sent bytes, expected just over 8 MiB"

# --- the manifest as epoch writes it
"$EPOCH" inspect vm1 -o json >"$D/inspect.json"
python3 - "$D/inspect.json" "$digest" <<'EOF' || fail "inspect -o json: $(cat "$D/inspect.json")"
import json, sys
m = json.load(open(sys.argv[1]))
assert m["digest"] == sys.argv[2], m["digest"]
assert m["kind"] == "snapshot" and m["artifactType"] == "application/vnd.cocoonstack.snapshot.v1+json"
assert m["config"]["mediaType"] == "application/vnd.cocoonstack.snapshot.config.v1+json"
want = {"cocoon.json": "application/octet-stream",
        "config.json": "application/vnd.cocoonstack.vm.config+json",
        "cow.raw": "application/vnd.cocoonstack.disk.raw",
        "memory-ranges": "application/vnd.cocoonstack.vm.memory",
        "state.json": "application/vnd.cocoonstack.vm.state+json"}
assert {l["title"]: l["mediaType"] for l in m["layers"]} == want, m["layers"]
assert [l["title"] for l in m["layers"]] == sorted(want)
assert "org.opencontainers.image.created" in m["annotations"]
EOF

# --- pull it back under another name: the same bytes, the same holes, the same config
"$EPOCH" pull vm1 --name vm1-copy 2>"$D/pull.err" || fail "pull failed: $(cat "$D/pull.err")"
assert_contains "$(cat "$D/pull.err")" "pulled vm1:latest $digest (5 blobs" "pull summary"
src=$(snap_dir vm1)
dst=$(snap_dir vm1-copy)
same_files "$src" "$dst"
blocks=$(stat -c %b "$dst/cow.raw")
[ $((blocks * 512)) -lt $((16 << 20)) ] || fail "cow.raw lost its holes ($blocks blocks)"
copy=$("$EPOCH_COCOON_BINARY" snapshot inspect vm1-copy)
assert_contains "$copy" '"storage": 4294967296' "storage of the pulled snapshot"
assert_contains "$copy" '"description": "the first one"' "description of the pulled snapshot"

# --- dedup: pushing the same snapshot again sends no blob bytes at all
: >"$EXTRAS_LOG"
rm "$COCOON_SIM_ROOT/export-count.json"
"$EPOCH" push vm1 -t v2 >/dev/null 2>"$D/push2.err" || fail "second push: $(cat "$D/push2.err")"
assert_eq 0 "$(uploaded_bytes "$EXTRAS_LOG")" "blob bytes uploaded by the second push"
assert_eq 1 "$(exports)" "exports read by a push with nothing to upload"
assert_contains "$(cat "$D/push2.err")" "0 B uploaded: the registry had every blob" \
	"second push summary"

# --- ls, tag, rm
assert_eq "vm1" "$("$EPOCH" ls)" "catalog"
assert_eq '{"name": "vm1", "tags": ["latest", "v2"]}' \
	"$("$EPOCH" ls vm1 -o json | python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin)))')" \
	"tags as JSON"
"$EPOCH" tag vm1:latest vm1:keep 2>/dev/null
assert_eq "$digest" "$("$EPOCH" inspect vm1:keep -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["digest"])')" \
	"a new tag names the same manifest"
"$EPOCH" rm vm1:v2 2>/dev/null
assert_eq "keep latest" "$("$EPOCH" ls vm1 | tr '\n' ' ' | sed 's/ $//')" "tags after rm"
"$EPOCH" rm vm1:v2 2>/dev/null || fail "deleting a tag that is gone must succeed (epoch answers 202)"
assert_contains "$("$EPOCH" rm --dry-run vm1:keep)" "would delete vm1:keep ($digest)" "rm --dry-run"
assert_eq "keep latest" "$("$EPOCH" ls vm1 | tr '\n' ' ' | sed 's/ $//')" "--dry-run changed nothing"
rc=0
"$EPOCH" tag vm1:latest other:x 2>/dev/null || rc=$?
assert_eq 2 "$rc" "tag across repositories is a usage error"
rc=0
out=$("$EPOCH" inspect vm1:nope 2>&1) || rc=$?
assert_eq 1 "$rc" "inspect of a missing tag"
assert_contains "$out" "404 MANIFEST_UNKNOWN" "missing tag message"

# --- auth: reads are anonymous, writes need the token
rc=0
out=$(env -u EPOCH_TOKEN "$EPOCH" push vm1 -t anon 2>&1) || rc=$?
assert_eq 1 "$rc" "push without a token"
assert_contains "$out" "401 UNAUTHORIZED: authentication required (set EPOCH_TOKEN" "push without a token"
rc=0
out=$(EPOCH_TOKEN=wrong "$EPOCH" rm vm1:keep 2>&1) || rc=$?
assert_eq 1 "$rc" "rm with a wrong token"
assert_contains "$out" "(the registry refused EPOCH_TOKEN)" "rm with a wrong token"
assert_eq "keep latest" "$(env -u EPOCH_TOKEN "$EPOCH" ls vm1 | tr '\n' ' ' | sed 's/ $//')" \
	"anonymous ls; nothing was deleted"
# a URL reference to another spelling of the server gets no token, and the error says why
other=${EPOCH_URL/127.0.0.1/localhost}
rc=0
out=$(EPOCH_URL=$other "$EPOCH" rm "$EXTRAS_URL/v2/vm1/manifests/keep" 2>&1) || rc=$?
assert_eq 1 "$rc" "rm through a URL on another origin"
assert_contains "$out" "401 UNAUTHORIZED: authentication required (EPOCH_TOKEN is sent only to EPOCH_URL, $other, not to $EXTRAS_URL)" \
	"why the token was not sent"

# --- the Docker token flow: this registry accepts only tokens its /v2/token issued
extras_start flow --token-exchange
EPOCH_URL=$EXTRAS_URL "$EPOCH" tag vm1:latest vm1:flow 2>"$D/flow.err" ||
	fail "tag through the token flow: $(cat "$D/flow.err")"
grep -q '"path": "/v2/token?service=epoch&scope=repository%3Avm1%3Apull%2Cpush", "status": 200' \
	"$EXTRAS_LOG" || fail "no token request in $(cat "$EXTRAS_LOG")"
rc=0
EPOCH_URL=$EXTRAS_URL EPOCH_TOKEN=wrong "$EPOCH" tag vm1:latest vm1:nope 2>/dev/null || rc=$?
assert_eq 1 "$rc" "the token flow with a wrong token"

# --- Epoch URLs are references too
"$EPOCH" pull "$EPOCH_URL/dl/vm1" --name vm1-dl 2>/dev/null || fail "pull of a /dl/ URL"
same_files "$src" "$(snap_dir vm1-dl)"
assert_eq "$digest" "$("$EPOCH" inspect "$EPOCH_URL/v2/vm1/manifests/keep" -o json |
	python3 -c 'import json,sys; print(json.load(sys.stdin)["digest"])')" "inspect of a /v2/ URL"
rc=0
out=$("$EPOCH" pull "host:5000/vm1:latest" 2>&1) || rc=$?
assert_eq 2 "$rc" "a registry host in a reference"
assert_contains "$out" "a registry host belongs in EPOCH_URL" "a registry host in a reference"

# --- a cloud image in two parts (listed out of order) plus a note that is not a disk
printf 'QFI\373' >"$D/p1"
head -c $((3 << 20)) /dev/urandom >>"$D/p1"
head -c $((1 << 20)) /dev/urandom >"$D/p2"
echo "not a disk" >"$D/note"
echo '{}' >"$D/cfg"
put_blob() { # put_blob FILE REPO -> digest
	local d
	d=sha256:$(sha256sum "$1" | cut -d' ' -f1)
	curl -sSf -X PUT -H "Authorization: Bearer $TOKEN" --data-binary @"$1" \
		"$EPOCH_URL/v2/$2/blobs/$d" >/dev/null
	echo "$d"
}
layer() { # layer FILE MEDIA-TYPE TITLE REPO
	printf '{"mediaType":"%s","digest":"%s","size":%d,"annotations":{"org.opencontainers.image.title":"%s"}}' \
		"$2" "$(put_blob "$1" "$4")" "$(stat -c %s "$1")" "$3"
}
put_image() { # put_image REPO: the image as REPO:latest
	cat >"$D/img.json" <<EOF
{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
 "artifactType":"application/vnd.cocoonstack.os-image.v1+json",
 "config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"$(put_blob "$D/cfg" "$1")","size":3},
 "layers":[$(layer "$D/p2" application/vnd.cocoonstack.disk.qcow2.part disk.qcow2.002.qcow2.part "$1"),
           $(layer "$D/note" text/plain README "$1"),
           $(layer "$D/p1" application/vnd.cocoonstack.disk.qcow2.part disk.qcow2.001.qcow2.part "$1")]}
EOF
	curl -sSf -X PUT -H "Authorization: Bearer $TOKEN" \
		-H "Content-Type: application/vnd.oci.image.manifest.v1+json" \
		--data-binary @"$D/img.json" "$EPOCH_URL/v2/$1/manifests/latest" >/dev/null
}
put_image img
cat "$D/p1" "$D/p2" >"$D/want"
"$EPOCH" get img >"$D/got" 2>/dev/null || fail "get of a cloud image"
cmp "$D/want" "$D/got" || fail "get: the parts were not joined in title order"
"$EPOCH" pull img --name img-local 2>"$D/img.err" || fail "pull of a cloud image: $(cat "$D/img.err")"
assert_contains "$("$EPOCH_COCOON_BINARY" image inspect img-local)" "\"size\": $(stat -c %s "$D/want")" \
	"the imported image"
assert_contains "$("$EPOCH_COCOON_BINARY" image inspect img-local)" '"format": "qcow2"' \
	"the importer saw the qcow2 magic first"

# --- a legacy multi-segment /dl/ URL: newer epoch reads /dl/os/img as os:img and, finding
# nothing there, falls back to os/img:latest, what the URL meant before (§2.10)
put_image os/img
"$EPOCH" get "$EPOCH_URL/dl/os/img" >"$D/got-legacy" 2>"$D/legacy.err" ||
	fail "get of a legacy /dl/ URL: $(cat "$D/legacy.err")"
cmp "$D/want" "$D/got-legacy" || fail "get of a legacy /dl/ URL: wrong bytes"
assert_contains "$("$EPOCH" inspect "$EPOCH_URL/dl/os/img")" "name:       os/img:latest" \
	"inspect of a legacy /dl/ URL"
echo "PASS: epoch registry round trip, dedup, tags, auth, URLs (legacy /dl/ too), cloud image"
