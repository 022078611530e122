# Helpers for the epoch scenarios (source after lib.sh and lib_init).
#
#   epoch_setup                 EPOCH ($BIN/epoch), SIM (cocoon-sim), the cocoon double as
#                               EPOCH_COCOON_BINARY, its state in $TEST_TMP/sim, TMPDIR
#   registry_start NAME         Debian's docker-registry on a free loopback port, storage in
#                               $TEST_TMP/NAME: sets REG_URL, REG_PID, REG_DIR, REG_CONF
#   registry_restart            stop and start it again on the same port and storage
#   extras_start NAME ARGS...   tests/doubles/epoch-extras.py in front of $REG_URL with token
#                               $TOKEN: sets EXTRAS_URL, EXTRAS_PID, EXTRAS_LOG
#   uploaded_bytes LOG          request-body bytes of blob PUT/PATCH/POST in an extras log
#   snap_dir NAME               the directory of a cocoon-sim snapshot
#   same_files DIR1 DIR2        every file byte-identical, with the same size, mode and holes
EPOCH_LIB_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

epoch_setup() {
	EPOCH=${BIN:?set BIN to the build bin directory}/epoch
	[ -x "$EPOCH" ] || fail "$EPOCH is not built"
	command -v docker-registry >/dev/null || skip "docker-registry is not installed"
	SIM=$EPOCH_LIB_ROOT/tests/cocoon-sim/cocoon-sim
	export EPOCH_COCOON_BINARY=$EPOCH_LIB_ROOT/tests/cocoon-sim/cocoon
	export COCOON_SIM_ROOT=$TEST_TMP/sim
	export TMPDIR=$TEST_TMP/tmp
	mkdir -p "$COCOON_SIM_ROOT" "$TMPDIR"
	unset EPOCH_TOKEN EPOCH_REGISTRY_TOKEN EPOCH_SERVER EPOCH_CA_CERT VK_COCOON_BIN
}

_registry_run() {
	docker-registry serve "$REG_CONF" >>"$REG_DIR/registry.log" 2>&1 &
	REG_PID=$!
	lib_bg "$REG_PID"
	wait_up "$REG_PID" 10 "docker-registry to listen" bash -c "exec 3<>/dev/tcp/127.0.0.1/$REG_PORT"
}

registry_start() {
	REG_DIR=$TEST_TMP/$1
	REG_PORT=$(free_port)
	REG_URL=http://127.0.0.1:$REG_PORT
	REG_CONF=$REG_DIR/config.yml
	mkdir -p "$REG_DIR/data"
	cat >"$REG_CONF" <<EOF
version: 0.1
log:
  level: info
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: $REG_DIR/data
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:$REG_PORT
EOF
	_registry_run
}

registry_restart() {
	kill "$REG_PID" 2>/dev/null || true
	wait "$REG_PID" 2>/dev/null || true
	lib_forget "$REG_PID"
	_registry_run
}

extras_start() {
	local name=$1
	shift
	EXTRAS_LOG=$TEST_TMP/$name.log
	python3 "$EPOCH_LIB_ROOT/tests/doubles/epoch-extras.py" --upstream "$REG_URL" \
		--token "$TOKEN" --storage "$REG_DIR/data" --log "$EXTRAS_LOG" "$@" \
		>"$TEST_TMP/$name.out" 2>"$TEST_TMP/$name.err" &
	EXTRAS_PID=$!
	lib_bg "$EXTRAS_PID"
	wait_up "$EXTRAS_PID" 10 "epoch-extras to serve" grep -q serving "$TEST_TMP/$name.out"
	EXTRAS_URL=$(awk '/serving/ {print $2; exit}' "$TEST_TMP/$name.out")
}

uploaded_bytes() {
	python3 - "$1" <<'EOF'
import json, sys
n = 0
for line in open(sys.argv[1]):
    r = json.loads(line)
    if r["method"] in ("PUT", "PATCH", "POST") and "/blobs/" in r["path"]:
        n += r["in"]
print(n)
EOF
}

snap_dir() {
	python3 - "$COCOON_SIM_ROOT" "$1" <<'EOF'
import json, sys
db = json.load(open(sys.argv[1] + "/snapshot/db/snapshots.json"))
print(sys.argv[1] + "/snapshot/localfile/" + db["names"][sys.argv[2]])
EOF
}

same_files() {
	# Byte-identical, read the fast way: outside the data segments (SEEK_DATA/SEEK_HOLE) of
	# either file both read as zeros, so comparing the bytes inside them compares it all
	# without reading GiBs of holes. Sizes, modes and the hole maps must match too.
	python3 - "$1" "$2" <<'EOF' || fail "the files of $1 and $2 differ"
import os, sys

def segments(fd, size):
    segs, pos = [], 0
    while pos < size:
        try:
            data = os.lseek(fd, pos, os.SEEK_DATA)
        except OSError:
            break
        hole = min(os.lseek(fd, data, os.SEEK_HOLE), size)
        segs.append((data, hole - data))
        pos = hole
    return segs

a, b = sys.argv[1], sys.argv[2]
if sorted(os.listdir(a)) != sorted(os.listdir(b)):
    sys.exit(f"file lists differ: {sorted(os.listdir(a))} vs {sorted(os.listdir(b))}")
for name in sorted(os.listdir(a)):
    fa, fb = os.open(f"{a}/{name}", os.O_RDONLY), os.open(f"{b}/{name}", os.O_RDONLY)
    sa, sb = os.fstat(fa), os.fstat(fb)
    if (sa.st_size, sa.st_mode & 0o7777) != (sb.st_size, sb.st_mode & 0o7777):
        sys.exit(f"{name}: size/mode {sa.st_size} {sa.st_mode:o} vs {sb.st_size} {sb.st_mode:o}")
    ma, mb = segments(fa, sa.st_size), segments(fb, sb.st_size)
    if ma != mb:
        sys.exit(f"{name}: hole maps differ: {ma[:4]} vs {mb[:4]}")
    for off, n in ma:
        while n:
            k = min(n, 1 << 20)
            if os.pread(fa, k, off) != os.pread(fb, k, off):
                sys.exit(f"{name}: bytes differ near offset {off}")
            off, n = off + k, n - k
EOF
}
