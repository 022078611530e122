#!/usr/bin/env bash
# The snapshot tar of net-epoch-runtime.md §2.6 between the cocoon double and libepoch's tar
# code: a 2 GiB sparse snapshot exports as a ~12 MiB tar whose entries and sparse maps the C
# reader lists exactly; C extraction and export → import through the double give
# byte-identical files with the holes kept; the C writer's archives import; GNU tar and
# Python's tarfile read ours (a > 8 GiB size included) and we read theirs; truncated and
# corrupted archives are refused with a clear message and leave no half-imported snapshot.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
lib_init
: "${TOOLS:?set TOOLS to the build tests/tools directory}"
ET=$TOOLS/epoch-tar
[ -x "$ET" ] || fail "$ET was not built"
command -v tar >/dev/null || fail "GNU tar is missing"
export PATH=$LIB_ROOT/tests/cocoon-sim:$PATH COCOON_SIM_ROOT=$TEST_TMP/root
cd "$TEST_TMP"

snap_dir() {
	local id
	id=$(cocoon snapshot inspect "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
	echo "$COCOON_SIM_ROOT/snapshot/localfile/$id"
}
kib_used() { du -k "$1" | cut -f1; }
# cmp for sparse files without reading GiBs of holes: equal sizes, and equal bytes over the
# union of both files' data segments (outside it both read as zeros).
same_sparse() {
	python3 - "$1" "$2" <<'EOF'
import os, sys
fds = [os.open(p, os.O_RDONLY) for p in sys.argv[1:]]
size = os.fstat(fds[0]).st_size
if size != os.fstat(fds[1]).st_size:
    sys.exit(f"sizes differ: {sys.argv[1:]}")
def segments(fd):
    pos = 0
    while pos < size:
        try:
            d = os.lseek(fd, pos, os.SEEK_DATA)
        except OSError:
            return
        pos = os.lseek(fd, d, os.SEEK_HOLE)
        yield d, pos
for fd in fds:
    for a, b in segments(fd):
        for off in range(a, b, 1 << 20):
            n = min(1 << 20, b - off)
            if os.pread(fds[0], n, off) != os.pread(fds[1], n, off):
                sys.exit(f"{sys.argv[1]} and {sys.argv[2]} differ near byte {off}")
EOF
}

# --- export: entries, order, sparse map ---
cocoon-sim mksnap vm1 --disk-size 2G --data-mib 12 --segments 4 >/dev/null
SRC=$(snap_dir vm1)
cocoon snapshot export vm1 -o - >vm1.tar
size=$(stat -c %s vm1.tar)
[ "$size" -lt $((13 * 1024 * 1024)) ] || fail "export of a 12 MiB-data snapshot is $size bytes"
"$ET" list vm1.tar >list.txt || fail "epoch-tar list failed: $(cat list.txt)"
assert_eq "snapshot.json cocoon.json config.json cow.raw memory-ranges state.json" \
	"$(cut -d' ' -f1 list.txt | tr '\n' ' ' | sed 's/ $//')" "entry order"
cow=$(grep '^cow.raw ' list.txt)
read -r _ type mode packed kw logical map <<<"$cow"
assert_eq "0 sparse 2147483648" "$type $kw $logical" "cow.raw type and logical size"
assert_eq $((12 * 1024 * 1024)) "$packed" "cow.raw packed size"
expected_map=$(python3 - "$SRC/cow.raw" <<'EOF'
import json, os, sys
fd, segs, pos = os.open(sys.argv[1], os.O_RDONLY), [], 0
size = os.fstat(fd).st_size
while pos < size:
    try:
        d = os.lseek(fd, pos, os.SEEK_DATA)
    except OSError:
        break
    h = os.lseek(fd, d, os.SEEK_HOLE)
    segs.append({"o": d, "l": h - d})
    pos = h
print(json.dumps(segs, separators=(",", ":")))
EOF
)
assert_eq "$expected_map" "$map" "cow.raw sparse map"
assert_eq 4 "$(python3 -c 'import json,sys; print(len(json.loads(sys.argv[1])))' "$map")" \
	"segments in the map"
grep -q '^memory-ranges 0 0644 65536$' list.txt || fail "memory-ranges line: $(cat list.txt)"

# --- the C reader extracts the export: identical files, holes kept ---
mkdir out
"$ET" extract out vm1.tar || fail "epoch-tar extract failed"
for f in cocoon.json config.json memory-ranges state.json; do
	cmp "$SRC/$f" "out/$f" || fail "extracted $f differs"
done
same_sparse "$SRC/cow.raw" out/cow.raw || fail "extracted cow.raw differs"
assert_eq 2147483648 "$(stat -c %s out/cow.raw)" "extracted cow.raw size"
[ "$(kib_used out/cow.raw)" -lt 20000 ] || fail "extracted cow.raw lost its holes: $(du -h out/cow.raw)"

# --- export → import through the double ---
cocoon snapshot export vm1 -o - | cocoon snapshot import --name vm1-copy --description restored \
	2>import.log || fail "import failed: $(cat import.log)"
assert_contains "$(cat import.log)" "snapshot imported: " "import log"
DST=$(snap_dir vm1-copy)
for f in cocoon.json config.json cow.raw memory-ranges state.json; do
	cmp "$SRC/$f" "$DST/$f" || fail "imported $f differs"
done
[ "$(kib_used "$DST/cow.raw")" -lt 20000 ] || fail "imported cow.raw lost its holes"
assert_eq restored "$(cocoon snapshot inspect vm1-copy | python3 -c 'import json,sys; print(json.load(sys.stdin)["description"])')" \
	"imported description"

# --- the C writer's archive imports into the double ---
mkdir csrc
printf '{"config":{"name":"from-c","cpu":1},"version":1}\n' >csrc/snapshot.json
ln "$SRC/cow.raw" csrc/cow.raw
head -c 1000 /dev/urandom >csrc/state.json
"$ET" create --sparse -C csrc snapshot.json cow.raw state.json >c.tar
[ "$(stat -c %s c.tar)" -lt $((13 * 1024 * 1024)) ] || fail "C writer did not pack the holes"
cocoon snapshot import <c.tar 2>/dev/null || fail "the double refused the C writer's archive"
FROMC=$(snap_dir from-c)
same_sparse csrc/cow.raw "$FROMC/cow.raw" || fail "cow.raw through the C writer differs"
cmp csrc/state.json "$FROMC/state.json" || fail "state.json through the C writer differs"

# --- other tools read ours ---
tar -tvf vm1.tar >gnu-list.txt 2>gnu-err.txt || fail "GNU tar cannot list the export"
assert_contains "$(cat gnu-list.txt)" "cow.raw" "GNU tar listing"
tar -tvf c.tar >/dev/null 2>&1 || fail "GNU tar cannot list the C writer's archive"
python3 - c.tar <<'EOF' || fail "Python tarfile disagrees about the C writer's archive"
import sys, tarfile
with tarfile.open(sys.argv[1]) as t:
    m = {x.name: x for x in t}
assert list(m) == ["snapshot.json", "cow.raw", "state.json"], list(m)
assert m["cow.raw"].pax_headers["COCOON.sparse.size"] == "2147483648"
assert m["cow.raw"].size == 12 * 1024 * 1024
EOF
# A 9 GiB member (PAX size record); its data is a hole in the archive file.
"$ET" header big.raw 9663676416 >big.tar
hdr=$(stat -c %s big.tar)
truncate -s $((hdr + 9663676416 + 1024)) big.tar
assert_contains "$(tar -tvf big.tar)" "9663676416" "GNU tar size of a 9 GiB member"
assert_eq 9663676416 "$(python3 -c 'import sys,tarfile; print(tarfile.open(sys.argv[1]).getmembers()[0].size)' big.tar)" \
	"Python size of a 9 GiB member"
# (the headers only: our list reads every byte, and 9 GiB of zeros take a while)
assert_eq "big.raw 0 0644 9663676416" "$(head -c "$hdr" big.tar | "$ET" list 2>/dev/null || true)" \
	"epoch-tar size of a 9 GiB member"

# --- we read theirs: GNU (gnu, posix) and Python (pax, gnu), long names, symlinks ---
mkdir -p theirs/d && cd theirs
long=$(printf 'n%.0s' {1..140})
echo data >"d/$long" && head -c 3000 /dev/urandom >r.bin && ln -s r.bin link
cd ..
for fmt in gnu posix; do
	tar --format=$fmt -C theirs -cf "gnu-$fmt.tar" d "d/$long" r.bin link
	assert_eq "$(tar -tf "gnu-$fmt.tar" | sed 's|/$||')" "$("$ET" list "gnu-$fmt.tar" | cut -d' ' -f1 | sed 's|/$||')" \
		"names of a GNU tar --format=$fmt archive"
done
python3 - <<'EOF'
import tarfile
for fmt, name in ((tarfile.PAX_FORMAT, "py-pax.tar"), (tarfile.GNU_FORMAT, "py-gnu.tar")):
    with tarfile.open(name, "w", format=fmt) as t:
        t.add("theirs", arcname="theirs")
EOF
for f in py-pax.tar py-gnu.tar; do
	"$ET" list "$f" >"$f.txt" || fail "epoch-tar cannot read $f: $(cat "$f.txt")"
	assert_contains "$(cat "$f.txt")" "theirs/d/$long 0 0644 5" "$f long name"
	assert_contains "$(cat "$f.txt")" "theirs/link 2 0777 0" "$f symlink"
done
mkdir py-out && "$ET" extract py-out <(python3 -c '
import io, sys, tarfile
b = io.BytesIO()
with tarfile.open(fileobj=b, mode="w", format=tarfile.PAX_FORMAT) as t:
    t.add("theirs/r.bin", arcname="r.bin")
sys.stdout.buffer.write(b.getvalue())') || fail "epoch-tar extract of a Python archive"
cmp theirs/r.bin py-out/r.bin || fail "file extracted from a Python archive differs"

# --- malformed and truncated archives are refused; nothing half-imported remains ---
before=$(ls "$COCOON_SIM_ROOT/snapshot/localfile" | sort)
check_refused() { # NAME WANT-IN-STDERR < archive
	local rc=0
	cocoon snapshot import --name "$1" 2>err.txt || rc=$?
	assert_eq 1 "$rc" "import of $1: exit status"
	assert_contains "$(cat err.txt)" "$2" "import of $1: message"
	assert_eq "$before" "$(ls -a "$COCOON_SIM_ROOT/snapshot/localfile" | grep -v '^\.\.\?$' | sort)" \
		"snapshot dirs after the failed import of $1"
	if cocoon snapshot inspect "$1" >/dev/null 2>&1; then fail "$1 was recorded"; fi
}
head -c 5000000 vm1.tar | check_refused cut-in-data 'entry 4 "cow.raw" (header at offset 4096): truncated'
head -c 2048 vm1.tar | check_refused cut-at-entry 'truncated'
head -c $((size - 10240)) vm1.tar | check_refused no-marker 'truncated'
python3 -c 'import sys; d = bytearray(open("vm1.tar", "rb").read()); d[1024 + 3] ^= 1; sys.stdout.buffer.write(d)' |
	check_refused bad-checksum 'header checksum mismatch'
{ COCOON_SIM_EXPORT_FAIL_AFTER=3000000 cocoon snapshot export vm1 -o - 2>/dev/null || true; } |
	check_refused export-died 'truncated'
rc=0
head -c 5000000 vm1.tar | "$ET" list >/dev/null 2>err.txt || rc=$?
assert_eq 1 "$rc" "epoch-tar list of a truncated archive: exit status"
assert_contains "$(cat err.txt)" 'entry 4 "cow.raw" (header at offset 4096): truncated:' \
	"epoch-tar list of a truncated archive"

# --- cloud images: parts concatenated in order, qcow2 sniffed, listed as §3.2 shows ---
printf 'QFI\373' >part1 && head -c 5000 /dev/urandom >>part1 && head -c 3000 /dev/urandom >part2
cat part1 part2 | cocoon image import win11 2>/dev/null || fail "image import from stdin"
cocoon image import win11-files part1 part2 2>/dev/null || fail "image import from files"
python3 - "$(cocoon image list --format json)" "$(cat part1 part2 | sha256sum | cut -c1-64)" <<'EOF' ||
import json, sys
imgs = {i["name"]: i for i in json.loads(sys.argv[1])}
assert set(imgs) == {"win11", "win11-files"}, imgs
assert all(i["size"] == 8004 and i["type"] == "cloudimg" for i in imgs.values()), imgs
EOF
	fail "image list: $(cocoon image list --format json)"
cmp <(cat part1 part2) "$COCOON_SIM_ROOT/cloudimg/blobs/$(cat part1 part2 | sha256sum | cut -c1-64).qcow2" ||
	fail "stored image differs"
echo "PASS: sparse snapshot export/import/extract, C reader and writer, GNU tar and Python interop"
