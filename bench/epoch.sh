#!/usr/bin/env bash
# epoch push/pull throughput against Debian's docker-registry on loopback, beside curl moving
# the same blob through the same registry protocol in the same run, and peak RSS
# (/usr/bin/time -v: the largest of epoch and its cocoon child) at two snapshot sizes: it
# must not grow with the snapshot.
#
#   BIN=build/bin bench/epoch.sh        (SIZES_MIB="256 2048" by default)
#
# Snapshots are made by the cocoon double with dense data (no holes), so every byte travels.
# docker-registry has no monolithic blob PUT, so both sides use an upload session: POST, then
# one PUT ?digest= carrying the blob (epoch's default without EPOCH_CHUNK_SIZE).
#
# Push reads `cocoon snapshot export` and must hash each file before its upload can start
# (the digest names the upload and decides whether it is needed at all). It spools nothing:
# one export is only hashed, a second one (only when blobs are missing) streams into the
# uploads. So it is shown against curl uploading the file alone and against the least any
# digest-first client pays: sha256 of the file, then the curl upload; and split into its two
# passes (a second push of the same snapshot finds every blob: that is the reading pass
# alone). Pull is shown twice: `epoch get` into a file
# (the same work as curl -o, plus verification) and `epoch pull` into the double's
# `snapshot import`.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
EPOCH=${BIN:-$ROOT/build/bin}/epoch
SIM=$ROOT/tests/cocoon-sim/cocoon-sim
SIZES_MIB=${SIZES_MIB:-256 2048}
[ -x "$EPOCH" ] || { echo "build epoch first ($EPOCH)" >&2; exit 1; }
command -v docker-registry >/dev/null || { echo "docker-registry is not installed" >&2; exit 1; }

W=$(mktemp -d "${TMPDIR:-/var/tmp}/epoch-bench.XXXXXX")
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$W"
}
trap cleanup EXIT
export COCOON_SIM_ROOT=$W/sim EPOCH_COCOON_BINARY=$ROOT/tests/cocoon-sim/cocoon TMPDIR=$W/tmp
mkdir -p "$W/tmp"
unset EPOCH_TOKEN EPOCH_REGISTRY_TOKEN EPOCH_CHUNK_SIZE

# a timed step starts on a clean page cache: nothing left to write back from the last one
start() { sync; date +%s.%N; }
stop() { date +%s.%N; }
rate() { python3 -c "import sys; print(f'{int(sys.argv[1]) / (float(sys.argv[3]) - float(sys.argv[2])) / 2**20:.0f}')" "$@"; }
rss() { awk -F: '/Maximum resident set size/ {gsub(/ /, "", $2); print $2}' "$1"; }

# registry NAME: a fresh docker-registry; sets REG
registry() {
	local port dir=$W/$1
	port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
	mkdir -p "$dir/data"
	cat >"$dir/config.yml" <<EOF
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $dir/data
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
EOF
	docker-registry serve "$dir/config.yml" >"$dir/log" 2>&1 &
	PIDS+=($!)
	REG=http://127.0.0.1:$port
	for _ in $(seq 100); do curl -sf "$REG/v2/" >/dev/null && return; sleep 0.1; done
	echo "docker-registry did not start" >&2
	exit 1
}

# curl_push FILE DIGEST -> seconds
curl_push() {
	local loc t0 t1
	t0=$(start)
	loc=$(curl -sSf -D - -o /dev/null -X POST "$REG/v2/curl/blobs/uploads/" |
		awk 'tolower($1) == "location:" {print $2}' | tr -d '\r')
	curl -sSf -o /dev/null -X PUT -H 'Content-Type: application/octet-stream' \
		-H 'Expect:' -T "$1" "$loc&digest=$2"
	t1=$(stop)
	echo "$t0 $t1"
}

printf '%-6s %-26s %12s %12s %8s %12s\n' size step epoch_MiB/s curl_MiB/s ratio epoch_RSS_KiB
for mib in $SIZES_MIB; do
	bytes=$((mib << 20))
	"$SIM" mksnap "s$mib" --disk-size "${mib}M" --data-mib "$mib" --segments 1 \
		--memory-kib 1024 >/dev/null
	cow=$(python3 - "$COCOON_SIM_ROOT" "s$mib" <<'EOF'
import json, sys
db = json.load(open(sys.argv[1] + "/snapshot/db/snapshots.json"))
print(sys.argv[1] + "/snapshot/localfile/" + db["names"][sys.argv[2]] + "/cow.raw")
EOF
	)
	digest=sha256:$(sha256sum "$cow" | cut -d' ' -f1)

	# what the cocoon double's export alone manages into a pipe: the ceiling of a push
	t0=$(start)
	"$EPOCH_COCOON_BINARY" snapshot export "s$mib" -o - | cat >/dev/null
	t1=$(stop)
	printf '%-6s %-26s %12s\n' "${mib}M" "export alone (cocoon-sim)" "$(rate "$bytes" "$t0" "$t1")"

	# push: curl into one registry, epoch into a fresh one
	registry "c$mib"
	read -r t0 t1 < <(curl_push "$cow" "$digest")
	curl_up=$(rate "$bytes" "$t0" "$t1")
	curl_t=$(python3 -c "print($t1 - $t0)")
	# the least a digest-first client pays: the file's sha256, then that upload
	h0=$(start)
	openssl dgst -sha256 "$cow" >/dev/null
	h1=$(stop)
	floor=$(rate "$bytes" "$t0" "$(python3 -c "print($t1 + $h1 - $h0)")")
	registry "e$mib"
	export EPOCH_URL=$REG
	t0=$(start)
	/usr/bin/time -v "$EPOCH" push "s$mib" >/dev/null 2>"$W/push.time"
	t1=$(stop)
	up=$(rate "$bytes" "$t0" "$t1")
	printf '%-6s %-26s %12s %12s %8s %12s\n' "${mib}M" "push (hash, then upload)" "$up" \
		"$curl_up" "$(python3 -c "print(f'{$up / $curl_up:.2f}')")" "$(rss "$W/push.time")"
	printf '%-6s %-26s %12s %12s %8s\n' "${mib}M" "push vs sha256, then curl" "$up" \
		"$floor" "$(python3 -c "print(f'{$up / $floor:.2f}')")"
	# the same push again: every blob is there, so this is the reading pass alone (export
	# and sha256, HEADs, manifest); the first push's time minus this is its upload pass
	t2=$(start)
	"$EPOCH" push "s$mib" >/dev/null 2>"$W/push2.err" || { cat "$W/push2.err" >&2; exit 1; }
	t3=$(stop)
	python3 -c "print(f'{\"${mib}M\":<6} push split: reading pass {$t3 - $t2:.2f} s, upload pass {($t1 - $t0) - ($t3 - $t2):.2f} s; curl upload {$curl_t:.2f} s')"

	# pull: curl -o, epoch get into a file, epoch pull into the importer
	t0=$(start)
	curl -sSf -o "$W/curl.out" "$REG/v2/s$mib/blobs/$digest"
	t1=$(stop)
	curl_down=$(rate "$bytes" "$t0" "$t1")
	rm -f "$W/curl.out"
	t0=$(start)
	/usr/bin/time -v "$EPOCH" get "s$mib" >"$W/get.out" 2>"$W/get.time"
	t1=$(stop)
	down=$(rate "$bytes" "$t0" "$t1")
	rm -f "$W/get.out"
	printf '%-6s %-26s %12s %12s %8s %12s\n' "${mib}M" "get (verified, to a file)" "$down" \
		"$curl_down" "$(python3 -c "print(f'{$down / $curl_down:.2f}')")" "$(rss "$W/get.time")"
	t0=$(start)
	/usr/bin/time -v "$EPOCH" pull "s$mib" --name "copy$mib" >/dev/null 2>"$W/pull.time"
	t1=$(stop)
	pull=$(rate "$bytes" "$t0" "$t1")
	printf '%-6s %-26s %12s %12s %8s %12s\n' "${mib}M" "pull (into cocoon-sim)" "$pull" \
		"$curl_down" "$(python3 -c "print(f'{$pull / $curl_down:.2f}')")" "$(rss "$W/pull.time")"
	"$EPOCH_COCOON_BINARY" snapshot rm "s$mib" "copy$mib" >/dev/null 2>&1
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	PIDS=()
	rm -rf "$W/c$mib" "$W/e$mib"
done
