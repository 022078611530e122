# Helpers for the 08x-operator-* scenarios; source after lib.sh, epoch-lib.sh and lib_init.
# The test plays vk-cocoon, the node's part: it marks pods Running and Ready, sets the VM's
# runtime annotations, reports lifecycle states, pushes and deletes snapshot tags, and finishes
# pod deletions the way a kubelet does.
#
#   op_init                      skip (77) without kubectl, docker-registry, curl or python3;
#                                HOME=$TEST_TMP for kubectl's cache; k = kubectl
#   op_cluster                   kubesim (--tls), deploy/crds, namespace cocoon-system, nodes
#                                vk-a and vk-b (Ready, pool default, the virtual-kubelet taint),
#                                and docker-registry (REG_URL)
#   op_start NAME [VAR=VALUE...] operatord against them, log $TEST_TMP/NAME.log; waits for
#                                /readyz; sets OP_PID, OP_MPORT (metrics), OP_LOG
#   op_stop PID LOG              SIGTERM; the exit status must be 0 and the log clean
#   op_logs_clean [LOG...]       no sanitizer report in LOG (default: every $TEST_TMP/op*.log)
#   op_kill9 PID                 SIGKILL, reaped
#   kill_on_create PID POD       in the background: SIGKILL PID the moment POD is stored
#                                (a watch); wait_killed PID waits for it and reaps PID
#   op_metric MPORT PATTERN      sum of the /metrics samples whose line contains PATTERN
#   op_passes MPORT CONTROLLER   cocoon_operator_reconcile_total of cocoonset or hibernation
#   holds SECONDS WHAT WANT MPORT CONTROLLER CMD...  CMD prints WANT, and keeps printing it
#                                until a pass of CONTROLLER that started after this call has
#                                ended (passes of one key never overlap: the second to end
#                                after now started after now); fails at once when it changes
#   op_leader                    the Lease holder's identity ("" when none)
#   node_make NAME [POOL]        a Ready node
#   play_node_ready POD...       VM id/ip annotations (not for static VMs); Running, Ready,
#                                container running
#   play_node_hibernated POD [GEN]  the VM snapshotted and stopped: container waiting
#                                (Hibernated), Ready False, lifecycle-state hibernated
#   play_lifecycle POD STATE [GEN]  lifecycle-state (+ observed generation: GEN, default the
#                                pod's cocoonset.cocoonstack.io/generation)
#   reap [POD...]                finish the deletion of terminating pods (all when none named)
#   push_tag VM TAG / drop_tag VM TAG / has_tag VM TAG   the registry's <VM>:<TAG>
#   jp RESOURCE NAME JSONPATH    one field, via kubectl
#   wait_eq SECONDS WHAT WANT CMD...   until CMD prints WANT (CMD runs again each time)
#   wait_jp SECONDS RESOURCE NAME JSONPATH WANT
#   wait_phase RESOURCE NAME PHASE [SECONDS]
#   pods CS                      names of CS's pods (terminating ones too), sorted, one line
#   live_pods CS                 the same without terminating pods
#   terminating CS               the terminating ones
#   pod_uid POD / pod_ann POD KEY
#   check_pods CS NAME...        the namespace's pods of CS (its name label, or unlabelled and
#                                named CS-*) are exactly NAME..., each once, each controlled
#                                by the CocoonSet CS (v1 or legacy; its current uid)
#   events OBJ REASON            "type reason message" lines of the events about OBJ
#   has_events OBJ REASON        true when there is at least one
CS=cocoonsets.cocoonset.cocoonstack.io
LCS=cocoonsets.cocoon.cis

op_init() {
	: "${BIN:?set BIN to the build bin directory}"
	[ -x "$BIN/operatord" ] || fail "$BIN/operatord is not built"
	KUBECTL=${KUBECTL:-$(command -v kubectl || true)}
	[ -n "$KUBECTL" ] && [ -x "$KUBECTL" ] ||
		skip "kubectl is missing (scripts/install-deps.sh; or set KUBECTL=/path/to/kubectl)"
	command -v docker-registry >/dev/null ||
		skip "docker-registry is not installed (Debian package docker-registry)"
	local tool
	for tool in python3 curl openssl sha256sum; do
		command -v "$tool" >/dev/null || skip "$tool is not installed"
	done
	export HOME=$TEST_TMP
}

k() { "$KUBECTL" "$@"; }

node_make() {
	kcurl POST /api/v1/nodes "{\"apiVersion\":\"v1\",\"kind\":\"Node\",\"metadata\":{\"name\":\"$1\",\"labels\":{\"cocoonstack.io/pool\":\"${2:-default}\",\"kubernetes.io/hostname\":\"$1\"}},\"spec\":{\"taints\":[{\"key\":\"virtual-kubelet.io/provider\",\"value\":\"cocoon\",\"effect\":\"NoSchedule\"}]},\"status\":{\"conditions\":[{\"type\":\"Ready\",\"status\":\"True\"}],\"addresses\":[{\"type\":\"InternalIP\",\"address\":\"127.0.0.1\"}]}}" |
		grep -q '"Ready"' || fail "cannot create node $1"
}

op_cluster() {
	kubesim_start ks --tls
	k apply -k "$LIB_ROOT/deploy/crds" >/dev/null
	k wait --for condition=established --timeout=10s crd/$CS crd/cocoonhibernations.cocoonset.cocoonstack.io \
		crd/$LCS crd/hibernations.cocoon.cis >/dev/null
	k create namespace cocoon-system >/dev/null
	node_make vk-a
	node_make vk-b
	registry_start reg
}

op_start() {
	local name=$1
	shift
	local pport
	OP_MPORT=$(free_port)
	pport=$(free_port)
	OP_LOG=$TEST_TMP/$name.log
	env KUBECONFIG="$KUBECONFIG" EPOCH_URL="$REG_URL" POD_NAMESPACE=cocoon-system \
		METRICS_ADDR="127.0.0.1:$OP_MPORT" PROBE_ADDR="127.0.0.1:$pport" "$@" \
		"$BIN/operatord" >"$OP_LOG" 2>&1 &
	OP_PID=$!
	lib_bg "$OP_PID"
	wait_up "$OP_PID" 20 "$name to be ready" curl -sf "http://127.0.0.1:$pport/readyz"
}

op_stop() {
	local rc=0
	kill -TERM "$1"
	wait "$1" || rc=$?
	lib_forget "$1"
	[ "$rc" -eq 0 ] || fail "operatord exited $rc after SIGTERM: $(tail -5 "$2")"
	op_logs_clean "$2"
}

op_logs_clean() {
	local log
	[ $# -gt 0 ] || set -- "$TEST_TMP"/op*.log
	for log in "$@"; do
		[ -e "$log" ] || continue
		if grep -qE "Sanitizer|runtime error:" "$log"; then
			fail "sanitizer report in $(basename "$log"): $(grep -E -A12 "Sanitizer|runtime error:" "$log" | head -30)"
		fi
	done
}

op_kill9() {
	kill -KILL "$1"
	wait "$1" 2>/dev/null || true
	lib_forget "$1"
}

kill_on_create() {
	local pid=$1 pod=$2 rv
	rv=$(kcurl GET /api/v1/namespaces/default/pods | python3 -c 'import json, sys
print(json.load(sys.stdin)["metadata"]["resourceVersion"])')
	rm -f "$TEST_TMP/killed.$pid"
	# Not a pipeline: a pipeline ends only when curl does, and curl notices grep has gone only
	# when it writes the next event, which may never come (the pod's ADDED can arrive in the
	# same read as the last event of the burst). The kill follows grep's match at once.
	# ($! after "cmd < <(…)" is still the parent's last job, so exec opens the watch.)
	(
		exec {watch}< <(curl -sSN -k -H "Authorization: Bearer $KUBESIM_TOKEN" \
			"$KUBESIM_URL/api/v1/namespaces/default/pods?watch=1&resourceVersion=$rv" 2>/dev/null)
		curl_pid=$!
		grep -m1 -qE "\"name\": ?\"$pod\"" <&"$watch" &&
			kill -KILL "$pid" && touch "$TEST_TMP/killed.$pid"
		kill "$curl_pid" 2>/dev/null || true
	) &
	lib_bg $!
}

# A bound, not a timing: on a loaded CI machine the pod can take more than 10 s to appear.
# On a timeout, say what the watch saw nothing of: is operatord alive, which pods exist.
wait_killed() {
	local deadline=$((SECONDS + 30)) alive=no
	until [ -e "$TEST_TMP/killed.$1" ]; do
		if [ "$SECONDS" -ge "$deadline" ]; then
			kill -0 "$1" 2>/dev/null && alive=yes
			fail "timed out after 30s waiting for the watch to kill $1 (alive: $alive;" \
				"pods: $(kcurl GET /api/v1/namespaces/default/pods | python3 -c 'import json, sys
print(" ".join(p["metadata"]["name"] for p in json.load(sys.stdin)["items"]))');" \
				"last log lines: $(tail -5 "${OP_LOG:-/dev/null}" | tr '\n' ' '))"
		fi
		sleep 0.1
	done
	wait "$1" 2>/dev/null || true
	lib_forget "$1"
}

op_metric() {
	curl -sS "http://127.0.0.1:$1/metrics" |
		awk -v p="$2" 'index($0, p) == 1 { s += $NF } END { printf "%d\n", s }'
}

op_passes() {
	op_metric "$1" "cocoon_operator_reconcile_total{controller=\"$2\""
}

holds() {
	local seconds=$1 what=$2 want=$3 mport=$4 ctl=$5 n got
	shift 5
	local deadline=$((SECONDS + seconds))
	n=$(op_passes "$mport" "$ctl")
	while :; do
		got=$("$@" 2>&1) || true
		[ "$got" = "$want" ] || fail "$what: expected '$want' to hold, got '$got'"
		[ "$(op_passes "$mport" "$ctl")" -lt $((n + 2)) ] || return 0
		[ "$SECONDS" -lt "$deadline" ] ||
			fail "timed out after ${seconds}s waiting for two $ctl passes (while $what held)"
		sleep 0.2
	done
}

op_leader() {
	k get lease -n cocoon-system cocoon-operator.cocoonset.cocoonstack.io \
		-o 'jsonpath={.spec.holderIdentity}' 2>/dev/null || true
}

play_node_ready() {
	local pod now ip
	now=$(date -u +%Y-%m-%dT%H:%M:%SZ)
	for pod in "$@"; do
		ip=10.88.0.$(($(printf '%s' "$pod" | cksum | cut -d' ' -f1) % 200 + 20))
		if [ "$(pod_ann "$pod" cocoonset.cocoonstack.io/mode)" = static ]; then
			# a static VM is tracked by the id and IP assigned in its spec: vk writes none
			k annotate pod "$pod" --overwrite vm.cocoonstack.io/lifecycle-state=ready >/dev/null
		else
			k annotate pod "$pod" --overwrite "vm.cocoonstack.io/id=vm-$pod" \
				"vm.cocoonstack.io/ip=$ip" vm.cocoonstack.io/lifecycle-state=ready >/dev/null
		fi
		k patch pod "$pod" --subresource=status --type=strategic -p "{\"status\":{\"phase\":\"Running\",
			\"conditions\":[{\"type\":\"Ready\",\"status\":\"True\",\"lastTransitionTime\":\"$now\"},
			{\"type\":\"ContainersReady\",\"status\":\"True\",\"lastTransitionTime\":\"$now\"}],
			\"containerStatuses\":[{\"name\":\"agent\",\"ready\":true,\"started\":true,\"restartCount\":0,
			\"image\":\"ghcr.io/cocoonstack/placeholder:latest\",\"imageID\":\"\",
			\"state\":{\"waiting\":null,\"running\":{\"startedAt\":\"$now\"}}}]}}" >/dev/null
	done
}

play_node_hibernated() {
	local now
	now=$(date -u +%Y-%m-%dT%H:%M:%SZ)
	k patch pod "$1" --subresource=status --type=strategic -p "{\"status\":{\"phase\":\"Running\",
		\"conditions\":[{\"type\":\"Ready\",\"status\":\"False\",\"lastTransitionTime\":\"$now\"},
		{\"type\":\"ContainersReady\",\"status\":\"False\",\"lastTransitionTime\":\"$now\"}],
		\"containerStatuses\":[{\"name\":\"agent\",\"ready\":false,\"started\":false,\"restartCount\":0,
		\"image\":\"ghcr.io/cocoonstack/placeholder:latest\",\"imageID\":\"\",
		\"state\":{\"running\":null,\"waiting\":{\"reason\":\"Hibernated\"}}}]}}" >/dev/null
	play_lifecycle "$1" hibernated ${2:+"$2"}
}

play_lifecycle() {
	local gen=${3:-$(pod_ann "$1" cocoonset.cocoonstack.io/generation)}
	k annotate pod "$1" --overwrite "vm.cocoonstack.io/lifecycle-state=$2" \
		"vm.cocoonstack.io/lifecycle-observed-generation=$gen" >/dev/null
}

reap() {
	local pods=("$@")
	if [ ${#pods[@]} -eq 0 ]; then
		read -ra pods <<<"$(k get pods -o \
			'jsonpath={range .items[?(@.metadata.deletionTimestamp)]}{.metadata.name} {end}')"
	fi
	[ ${#pods[@]} -eq 0 ] || k delete pod "${pods[@]}" --grace-period=0 --force \
		--ignore-not-found >/dev/null 2>&1
}

# A one-blob OCI image whose config names the VM and tag, so no two tags share a digest (the
# registry deletes by digest: a shared one would take the other tag with it).
push_tag() {
	local vm=$1 tag=$2 cfg digest loc manifest code
	cfg="{\"vm\":\"$vm\",\"tag\":\"$tag\",\"at\":\"$(date +%s%N)\"}"
	digest=sha256:$(printf '%s' "$cfg" | sha256sum | cut -d' ' -f1)
	loc=$(curl -sS -o /dev/null -D - -X POST "$REG_URL/v2/$vm/blobs/uploads/" |
		awk 'tolower($1) == "location:" { print $2 }' | tr -d '\r')
	[ -n "$loc" ] || fail "registry: no upload session for $vm"
	case $loc in /*) loc=$REG_URL$loc ;; esac
	case $loc in *\?*) loc="$loc&digest=$digest" ;; *) loc="$loc?digest=$digest" ;; esac
	code=$(curl -sS -o /dev/null -w '%{http_code}' -X PUT -H 'Content-Type: application/octet-stream' \
		--data-binary "$cfg" "$loc")
	[ "$code" = 201 ] || fail "registry: config blob PUT for $vm:$tag answered $code"
	manifest="{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\"$digest\",\"size\":${#cfg}},\"layers\":[]}"
	code=$(curl -sS -o /dev/null -w '%{http_code}' -X PUT \
		-H 'Content-Type: application/vnd.oci.image.manifest.v1+json' --data-binary "$manifest" \
		"$REG_URL/v2/$vm/manifests/$tag")
	[ "$code" = 201 ] || fail "registry: manifest PUT for $vm:$tag answered $code"
}

has_tag() {
	local code
	code=$(curl -sS -o /dev/null -w '%{http_code}' -I \
		-H 'Accept: application/vnd.oci.image.manifest.v1+json' "$REG_URL/v2/$1/manifests/$2")
	[ "$code" = 200 ]
}

drop_tag() {
	local digest
	digest=$(curl -sS -o /dev/null -D - -I -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
		"$REG_URL/v2/$1/manifests/$2" | awk 'tolower($1) == "docker-content-digest:" { print $2 }' |
		tr -d '\r')
	[ -z "$digest" ] || curl -sS -o /dev/null -X DELETE "$REG_URL/v2/$1/manifests/$digest"
}

jp() {
	k get "$1" "$2" -o "jsonpath=$3"
}

wait_eq() {
	local seconds=$1 what=$2 want=$3 got
	shift 3
	local deadline=$((SECONDS + seconds))
	while :; do
		got=$("$@" 2>&1) || true
		[ "$got" != "$want" ] || return 0
		[ "$SECONDS" -lt "$deadline" ] ||
			fail "timed out after ${seconds}s waiting for $what to be '$want' (last: '$got')"
		sleep 0.2
	done
}

wait_jp() {
	wait_eq "$1" "$2/$3 $4" "$5" jp "$2" "$3" "$4"
}

wait_phase() {
	wait_jp "${4:-20}" "$1" "$2" '{.status.phase}' "$3"
}

# _pods CS WHICH: all | live | terminating
_pods() {
	k get pods -l "cocoonset.cocoonstack.io/name=$1" -o json | python3 -c 'import json, sys
which = sys.argv[1]
names = [p["metadata"]["name"] for p in json.load(sys.stdin)["items"]
         if which == "all" or bool(p["metadata"].get("deletionTimestamp")) == (which == "terminating")]
print(" ".join(sorted(names)))' "$2"
}
pods() { _pods "$1" all; }
live_pods() { _pods "$1" live; }
terminating() { _pods "$1" terminating; }

pod_uid() { jp pod "$1" '{.metadata.uid}'; }

pod_ann() {
	k get pod "$1" -o json | python3 -c 'import json, sys
print((json.load(sys.stdin)["metadata"].get("annotations") or {}).get(sys.argv[1], ""))' "$2"
}

check_pods() {
	local cs=$1 uid
	shift
	uid=$(jp "$CS" "$cs" '{.metadata.uid}' 2>/dev/null || jp "$LCS" "$cs" '{.metadata.uid}')
	k get pods -o json | python3 -c '
import collections, json, sys
cs, uid, want = sys.argv[1], sys.argv[2], sorted(sys.argv[3:])
def mine(p):
    label = (p["metadata"].get("labels") or {}).get("cocoonset.cocoonstack.io/name")
    return label == cs or (label is None and p["metadata"]["name"].startswith(cs + "-"))
items = [p for p in json.load(sys.stdin)["items"] if mine(p)]
names = [p["metadata"]["name"] for p in items]
dups = [x for x, c in collections.Counter(names).items() if c > 1]
if dups:
    sys.exit("duplicate pods: %s" % dups)
if sorted(names) != want:
    sys.exit("pods %s, want %s" % (sorted(names), want))
for p in items:
    ctl = [r for r in p["metadata"].get("ownerReferences") or [] if r.get("controller")]
    if len(ctl) != 1 or ctl[0].get("kind") != "CocoonSet" or ctl[0].get("uid") != uid:
        sys.exit("pod %s is not controlled by CocoonSet %s (%s): %s"
                 % (p["metadata"]["name"], cs, uid, ctl))
' "$cs" "$uid" "$@" || fail "the pods of CocoonSet $cs"
}

events() {
	k get events --field-selector "involvedObject.name=$1,reason=$2" \
		-o 'jsonpath={range .items[*]}{.type} {.reason} {.message}{"\n"}{end}'
}

has_events() {
	[ -n "$(events "$1" "$2")" ]
}
