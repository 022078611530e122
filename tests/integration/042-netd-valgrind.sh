#!/usr/bin/env bash
# netd runs clean under valgrind memcheck: scenario 041 (start-up reconcile, leases granted,
# expired, dropped and released over the bus, a malformed line, NET_STATUS, NET_RELOAD, a
# refused second netd, SIGTERM) with every netd under memcheck; any error or leak fails.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
: "${BIN:?set BIN to the build bin directory}"
command -v valgrind >/dev/null || fail "valgrind is missing (package valgrind)"
case "$BIN" in */asan/*) skip "valgrind cannot run an ASan build" ;; esac
NETD_VALGRIND=1 exec bash "$(dirname "$0")/041-netd-lease-file.sh"
