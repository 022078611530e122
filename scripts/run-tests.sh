#!/usr/bin/env bash
# Run a list of tests and record a summary line.
#   run-tests.sh LABEL BUILD_DIR TEST...
# cmocka binaries (tests/unit) are counted per test case from cmocka's own output;
# integration scripts count one each (exit 0 pass, 77 skip, anything else fail).
# Every test's output goes to the terminal and to BUILD_DIR/results/LABEL/<name>.log.
# The last line is "LABEL: N passed, N failed[, N skipped]"; it is also written to
# BUILD_DIR/results/LABEL.summary for scripts/summary.sh.
set -u
label=$1 build=$2
shift 2
out="$build/results/$label"
mkdir -p "$out"
timeout_s=${TEST_TIMEOUT:-600}
passed=0 failed=0 skipped=0 failures=()

for t in "$@"; do
	name=$(basename "$t")
	log="$out/$name.log"
	echo "--- $label: $name"
	if [[ $t == *.sh ]]; then
		timeout --kill-after=10 "$timeout_s" bash "$t" >"$log" 2>&1
		rc=$?
		cat "$log"
		case $rc in
		0) passed=$((passed + 1)) ;;
		77) skipped=$((skipped + 1)); echo "SKIP $name" ;;
		*) failed=$((failed + 1)); failures+=("$name (exit $rc)") ;;
		esac
	else
		timeout --kill-after=10 "$timeout_s" "$t" >"$log" 2>&1
		rc=$?
		cat "$log"
		ok=$(grep -ac '^\[       OK \]' "$log")
		bad=$(grep -aE '^\[  FAILED  \] [A-Za-z_]' "$log" | sort -u | wc -l)
		if [ "$rc" -ne 0 ] && [ "$bad" -eq 0 ]; then
			bad=1 # crashed or timed out before cmocka could report
		fi
		passed=$((passed + ok)) failed=$((failed + bad))
		[ "$bad" -eq 0 ] || failures+=("$name (exit $rc)")
	fi
done

for f in "${failures[@]}"; do echo "FAILED: $label: $f"; done
line="$label: $passed passed, $failed failed"
[ "$skipped" -eq 0 ] || line="$line, $skipped skipped"
echo "$line" | tee "$build/results/$label.summary"
[ "$failed" -eq 0 ]
