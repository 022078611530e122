# Shared helpers for integration tests; source it after `set -euo pipefail`.
#
#   lib_init                      make $TEST_TMP and install the cleanup trap (KEEP_TMP=1
#                                 keeps the directory, logs included, for a post-mortem)
#   lib_bg PID                    kill PID (and wait for it) when the test exits
#   lib_forget PID                PID was reaped by the test; do not kill it at exit
#   fail MSG / skip MSG           exit 1 / exit 77 with a clear message
#   assert_eq WANT GOT WHAT       assert_contains HAYSTACK NEEDLE WHAT
#   assert_not_contains HAYSTACK NEEDLE WHAT
#   wait_for SECONDS WHAT CMD...  retry CMD every 0.1 s until it succeeds
#   wait_up PID SECONDS WHAT CMD...
#                                 the same for a daemon just started as PID: fails at once,
#                                 with its exit status, if it dies first
#   wait_port HOST PORT [SECONDS]
#   kubesim_start NAME [ARGS...]  start tests/kubesim/kubesim; sets KUBESIM_URL,
#                                 KUBESIM_PID, KUBESIM_LOG, KUBECONFIG, KUBESIM_TOKEN
#   kubesim_stop                  SIGTERM it and check it exited 0
#   kcurl METHOD PATH [JSON]      curl the running kubesim with its token
#   free_port                     a free TCP port on 127.0.0.1

LIB_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
KUBESIM_BIN=$LIB_ROOT/tests/kubesim/kubesim
_LIB_PIDS=()

lib_cleanup() {
	local rc=$? pid
	for pid in "${_LIB_PIDS[@]}"; do
		kill "$pid" 2>/dev/null || true
	done
	for pid in "${_LIB_PIDS[@]}"; do
		wait "$pid" 2>/dev/null || true
	done
	# a failed scenario shows the ends of its logs: CI keeps only what the test printed
	if [ "$rc" -ne 0 ] && [ "$rc" -ne 77 ] && [ -n "${TEST_TMP:-}" ] && [ -d "$TEST_TMP" ]; then
		_lib_log_tails >&2
	fi
	if [ -n "${KEEP_TMP:-}" ]; then
		echo "kept $TEST_TMP (KEEP_TMP)" >&2
	elif [ -n "${TEST_TMP:-}" ] && [ -d "$TEST_TMP" ]; then
		rm -rf "$TEST_TMP"
	fi
}

_lib_log_tails() {
	local f
	find "$TEST_TMP" -type f \( -name '*.log' -o -name '*.err' \) -size +0 -print | sort |
		while IFS= read -r f; do
			echo "--- last lines of ${f#"$TEST_TMP"/}:"
			tail -n 15 "$f"
		done
}

lib_init() {
	TEST_TMP=$(mktemp -d "${TMPDIR:-/tmp}/cocoon-it.XXXXXX")
	export TEST_TMP
	trap lib_cleanup EXIT
}

lib_bg() {
	_LIB_PIDS+=("$1")
}

lib_forget() {
	local pid keep=()
	for pid in "${_LIB_PIDS[@]}"; do
		[ "$pid" = "$1" ] || keep+=("$pid")
	done
	_LIB_PIDS=("${keep[@]}")
}

fail() {
	echo "FAIL: $*" >&2
	exit 1
}

skip() {
	echo "SKIP: $*" >&2
	exit 77
}

assert_eq() {
	[ "$1" = "$2" ] || fail "$3: expected '$1', got '$2'"
}

assert_contains() {
	case "$1" in
	*"$2"*) ;;
	*) fail "$3: expected to find '$2' in: $1" ;;
	esac
}

assert_not_contains() {
	case "$1" in
	*"$2"*) fail "$3: did not expect '$2' in: $1" ;;
	*) ;;
	esac
}

wait_for() {
	wait_up "" "$@"
}

# wait_up with PID "" is wait_for: nothing to watch.
wait_up() {
	local pid=$1 seconds=$2 what=$3 rc=0
	shift 3
	local deadline=$((SECONDS + seconds))
	until "$@" >/dev/null 2>&1; do
		if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
			wait "$pid" || rc=$?
			lib_forget "$pid"
			fail "waiting for $what: the process exited with status $rc first"
		fi
		[ "$SECONDS" -lt "$deadline" ] || fail "timed out after ${seconds}s waiting for $what"
		sleep 0.1
	done
}

wait_port() {
	wait_for "${3:-10}" "port $1:$2" bash -c "exec 3<>/dev/tcp/$1/$2"
}

kubesim_start() {
	local name=$1
	shift
	local dir=$TEST_TMP/$name
	mkdir -p "$dir"
	KUBESIM_LOG=$dir/kubesim.log
	KUBECONFIG=$dir/kubeconfig
	KUBESIM_TOKEN=token-$name
	python3 "$KUBESIM_BIN" --kubeconfig "$KUBECONFIG" --token "$KUBESIM_TOKEN" "$@" \
		>"$dir/kubesim.out" 2>"$KUBESIM_LOG" &
	KUBESIM_PID=$!
	lib_bg "$KUBESIM_PID"
	wait_up "$KUBESIM_PID" 10 "kubesim to serve" grep -q serving "$dir/kubesim.out"
	KUBESIM_URL=$(awk '/serving/ {print $3; exit}' "$dir/kubesim.out")
	export KUBECONFIG KUBESIM_URL KUBESIM_PID KUBESIM_LOG KUBESIM_TOKEN
}

kubesim_stop() {
	kill -TERM "$KUBESIM_PID"
	local rc=0
	wait "$KUBESIM_PID" || rc=$?
	lib_forget "$KUBESIM_PID"
	assert_eq 0 "$rc" "kubesim exit status after SIGTERM"
}

kcurl() {
	local args=(-sS -k -X "$1" -H "Authorization: Bearer $KUBESIM_TOKEN")
	if [ $# -ge 3 ]; then
		args+=(-H "Content-Type: application/json" --data "$3")
	fi
	curl "${args[@]}" "$KUBESIM_URL$2"
}

# free_port: print a TCP port on 127.0.0.1 that nothing listens on right now, taken from
# below the kernel's ephemeral range (which bind(0) and every outgoing connection draw from,
# so a port from it could be gone by the time the daemon binds it) and never the same one
# twice in a scenario.
free_port() {
	python3 - "$TEST_TMP/.ports" <<'PY'
import random, socket, sys
lo = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
try:
    given = set(open(sys.argv[1]).read().split())
except FileNotFoundError:
    given = set()
def try_port(port):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
        return s.getsockname()[1]
    except OSError:
        return None
    finally:
        s.close()
for _ in range(1000):
    port = try_port(random.randrange(10000, lo) if lo > 11000 else 0)
    if port is not None and str(port) not in given:
        break
else:
    sys.exit("free_port: no free port below the ephemeral range")
with open(sys.argv[1], "a") as f:
    f.write("%d\n" % port)
print(port)
PY
}
