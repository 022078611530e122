#!/usr/bin/env bash
# Every unit in systemd/ passes `systemd-analyze verify` once ExecStart points at the
# binary this build produced (the installed path does not exist on a build machine).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
lib_init
: "${BIN:?set BIN to the build bin directory}"
command -v systemd-analyze >/dev/null || fail "systemd-analyze is missing (package systemd)"

units=("$LIB_ROOT"/systemd/*.service "$LIB_ROOT"/systemd/*.socket)
[ -e "${units[0]}" ] || fail "no units in systemd/"
for u in "${units[@]}"; do
	sed "s|/usr/local/bin/|$BIN/|g" "$u" >"$TEST_TMP/$(basename "$u")"
done
for u in "$TEST_TMP"/*.service; do
	grep -q '^ExecStart=' "$u" || fail "$(basename "$u") has no ExecStart"
	bin=$(sed -n 's/^ExecStart=\([^ ]*\).*/\1/p' "$u")
	[ -x "$bin" ] || fail "$(basename "$u"): ExecStart binary $bin was not built"
done
out=$(cd "$TEST_TMP" && systemd-analyze verify ./*.service ./*.socket 2>&1) ||
	fail "systemd-analyze verify failed: $out"
[ -z "$out" ] || fail "systemd-analyze verify complained: $out"
echo "PASS: ${#units[@]} units verify"
