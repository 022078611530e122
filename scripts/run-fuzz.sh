#!/usr/bin/env bash
# Run every fuzz harness in BUILD_DIR/tests/fuzz for SECONDS each, seeded from
# tests/fuzz/corpus/<name>/ (copied, so the repository's corpus is never modified).
#   run-fuzz.sh BUILD_DIR SECONDS
set -u
build=$1 secs=$2
out="$build/results/fuzz"
mkdir -p "$out"
passed=0 failed=0
for f in "$build"/tests/fuzz/fuzz-*; do
	[ -x "$f" ] || continue
	name=$(basename "$f")
	work="$out/$name.corpus"
	rm -rf "$work" && mkdir -p "$work"
	seeds="tests/fuzz/corpus/${name#fuzz-}"
	[ -d "$seeds" ] && cp -r "$seeds"/. "$work"/
	echo "--- fuzz: $name (${secs}s)"
	if "$f" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
		-artifact_prefix="$out/$name-" "$work" >"$out/$name.log" 2>&1; then
		passed=$((passed + 1))
		grep -E '^(stat::number_of_executed_units|#[0-9]+ +DONE)' "$out/$name.log" | tail -1
	else
		failed=$((failed + 1))
		tail -40 "$out/$name.log"
		echo "FAILED: fuzz: $name (crash input in $out/$name-*)"
	fi
done
echo "fuzz: $passed passed, $failed failed" | tee "$build/results/fuzz.summary"
[ "$failed" -eq 0 ]
