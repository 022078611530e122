#!/usr/bin/env bash
# Print every runner's summary line (the last lines of `make test`) and fail when any
# runner failed or did not run at all.
#   summary.sh RESULTS_DIR...
set -u
status=0
expected="unit integration asan-unit asan-integration fuzz"
echo "=== summary"
for want in $expected; do
	line=""
	for d in "$@"; do
		[ -f "$d/$want.summary" ] && line=$(cat "$d/$want.summary")
	done
	if [ -z "$line" ]; then
		echo "$want: did not run (build failed?)"
		status=1
		continue
	fi
	echo "$line"
	case $line in *" 0 failed"*) ;; *) status=1 ;; esac
done
exit $status
