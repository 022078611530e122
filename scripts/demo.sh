#!/usr/bin/env bash
# make demo: run what is built of the suite locally on embedded defaults — the API server
# double (kubesim), the daemons built so far — apply the samples, and say what happened.
# It never claims a part works that is not built. Ctrl-C stops everything it started.
#   demo.sh BUILD_DIR
set -euo pipefail
BUILD=$(cd "${1:-build}" && pwd)
BIN=$BUILD/bin
ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/tests/integration/lib.sh"
lib_init
D=$TEST_TMP
trap 'echo; echo "demo: stopping everything it started"; exit 0' INT TERM

if [ -t 1 ]; then B=$'\e[1m' N=$'\e[0m'; else B="" N=""; fi
step() { printf '\n%s==> %s%s\n' "$B" "$*" "$N"; }
say() { printf '    %s\n' "$@"; }
show() { sed 's/^/    | /'; }

step "What this build contains"
declare -A what=(
	[webhookd]="admission webhook: sticky VM names and nodes (/mutate), scale-down guard, CocoonSet/CocoonHibernation validation, reaper, /readyz, /metrics"
	[vkd]="virtual-kubelet provider (pods ↔ VMs)"
	[probed]="probes against guests"
	[netd]="host networking daemon: supervised dnsmasq, lease watch, /32 routes, MAC→IP lookups on the bus"
	[cocoon-net]="host networking CLI: adopt/init/teardown/status with --dry-run"
	[operatord]="CocoonSet and hibernation reconcilers"
	[epoch]="snapshot registry client"
)
for b in webhookd vkd probed netd cocoon-net operatord epoch; do
	if [ -x "$BIN/$b" ]; then
		say "built      $b: ${what[$b]}"
	else
		say "not built  $b: ${what[$b]}"
	fi
done

step "Starting the Kubernetes API server double (tests/kubesim)"
. "$ROOT/tests/integration/webhookd-lib.sh"
port=$(free_port)
mport=$(free_port)
# kubesim calls admission webhooks like kube-apiserver; the webhook's Service resolves here.
kubesim_start demo --listen 127.0.0.1:0 --tls \
	--webhook-service "cocoon-system/cocoon-webhook=127.0.0.1:$port"
say "kubesim serves $KUBESIM_URL; its kubeconfig is $KUBECONFIG"
kubectl version 2>/dev/null | show || true
say "Two Node objects stand in for cocoon nodes of pool 'default' (vkd, which registers real"
say "ones, is not built yet):"
wh_node cocoon-node-a default
wh_node cocoon-node-b default
wh_node cocoon-pool default # where legacy cocoon.cis CocoonSets go unless spec.nodeName says
kubectl get nodes -L cocoonstack.io/pool 2>&1 | show || true

step "Starting webhookd the way systemd does (socket activation, TLS)"
wh_ca
wh_cert tls
export TLS_CERT=$D/tls.crt TLS_KEY=$D/tls.key METRICS_ADDR=127.0.0.1:$mport
systemd-socket-activate -l "127.0.0.1:$port" --fdname=admission \
	-E TLS_CERT -E TLS_KEY -E METRICS_ADDR -E KUBECONFIG "$BIN/webhookd" >"$D/webhookd.log" 2>&1 &
lib_bg $!
wait_port 127.0.0.1 "$port"
say "GET /healthz → $(curl -sS --cacert "$D/ca.crt" --resolve "$WH_SVC:$port:127.0.0.1" "https://$WH_SVC:$port/healthz")"
wait_for 20 "webhookd to be ready" curl -sf --cacert "$D/ca.crt" \
	--resolve "$WH_SVC:$port:127.0.0.1" "https://$WH_SVC:$port/readyz"
say "GET /readyz  → ready (its pod and node caches are synced and the API server answers)"
wh_register
say "CRDs (deploy/crds) and the webhook configurations (deploy/webhook) are applied; the"
say "API server now sends pod creations and workload updates to webhookd."
wait_port 127.0.0.1 "$mport"

step "Rotating the webhook's certificate under it (as cert-manager does)"
old=$(openssl x509 -noout -fingerprint -sha256 -in "$D/tls.crt" | cut -d= -f2)
wh_cert new
mv "$D/new.key" "$D/tls.key" && mv "$D/new.crt" "$D/tls.crt"
sleep 0.5
served=$(openssl s_client -connect "127.0.0.1:$port" </dev/null 2>/dev/null |
	openssl x509 -noout -fingerprint -sha256 | cut -d= -f2)
say "before: ${old:0:23}…" "served: ${served:0:23}… (new certificate, no restart)"
grep -E 'reloaded|failed' "$D/webhookd.log" | show || true

step "Host networking for VMs: cocoon-net + netd with real dnsmasq, in network namespaces"
if [ "$(id -u)" -ne 0 ]; then
	say "skipped: creating network namespaces needs root"
elif [ ! -x "$BIN/netd" ] || [ ! -x "$BUILD/tests/tools/netd-bus" ]; then
	say "skipped: netd or the netd-bus tool is not built"
else
	NODE=cocoon-demo-node-$$ GUEST=cocoon-demo-guest-$$ MAC=52:54:00:de:00:01
	NETROOT=$D/netroot
	export COCOON_RUN_DIR=$D/run
	mkdir -p "$NETROOT" "$COCOON_RUN_DIR"
	netns_cleanup() {
		for ns in "$GUEST" "$NODE"; do
			for p in $(ip netns pids "$ns" 2>/dev/null); do kill "$p" 2>/dev/null || true; done
			ip netns del "$ns" 2>/dev/null || true
		done
	}
	trap 'netns_cleanup; lib_cleanup' EXIT
	ip netns add "$NODE" && ip netns add "$GUEST" && ip -n "$NODE" link set lo up
	say "A 'node' namespace stands in for a cocoon host; files go under $NETROOT."
	say "cocoon-net adopt --dry-run (prints the change set, changes nothing):"
	ip netns exec "$NODE" "$BIN/cocoon-net" adopt --dry-run --root "$NETROOT" --platform gke \
		--node-name demo-node --subnet 10.77.0.0/24 --pool-size 20 2>&1 | head -12 | show
	ip netns exec "$NODE" "$BIN/cocoon-net" adopt --root "$NETROOT" --platform gke \
		--node-name demo-node --subnet 10.77.0.0/24 --pool-size 20 2>&1 | tail -3 | show
	say "A second run changes nothing:"
	ip netns exec "$NODE" "$BIN/cocoon-net" adopt --root "$NETROOT" --platform gke \
		--node-name demo-node --subnet 10.77.0.0/24 --pool-size 20 2>&1 | grep -v warning | show
	ip netns exec "$NODE" env COCOON_NET_ROOT="$NETROOT" COCOON_NET_METRICS_ADDR= \
		"$BIN/netd" >"$D/netd.log" 2>&1 &
	wait_for 10 "netd to serve (log: $D/netd.log)" grep -q "serving:" "$D/netd.log"
	say "netd runs dnsmasq for cni0. A 'guest' namespace (a VM's stand-in) asks for an address:"
	ip -n "$NODE" link add vdemo type veth peer name eth0 netns "$GUEST"
	ip -n "$NODE" link set vdemo master cni0 up
	ip -n "$GUEST" link set lo up
	ip -n "$GUEST" link set eth0 address "$MAC" up
	printf '%s\n' 'case "$1" in bound|renew) ip addr flush dev "$interface"; ip addr add "$ip/${mask:-24}" dev "$interface";; esac' >"$D/udhcpc.sh"
	chmod +x "$D/udhcpc.sh"
	ip netns exec "$GUEST" busybox udhcpc -i eth0 -f -B -t 10 -T 1 -s "$D/udhcpc.sh" \
		>"$D/udhcpc.log" 2>&1 &
	if wait_for 30 "a DHCP lease" bash -c "'$BUILD/tests/tools/netd-bus' lookup $MAC | grep -q LEASE_INFO"; then
		out=$("$BUILD/tests/tools/netd-bus" lookup "$MAC")
		say "netd, asked over the bus which IP $MAC has: $out"
		ip=$(sed -n 's/.* ip=\([0-9.]*\).*/\1/p' <<<"$out")
		say "the node's route to the guest: $(ip -n "$NODE" route show "$ip/32")"
	fi
fi

step "Starting operatord (CocoonSet and hibernation reconcilers) with a snapshot registry"
OPERATOR=""
if [ -x "$BIN/operatord" ] && command -v docker-registry >/dev/null; then
	. "$ROOT/tests/integration/epoch-lib.sh"
	. "$ROOT/tests/integration/operator-lib.sh"
	KUBECTL=$(command -v kubectl)
	registry_start registry
	oport=$(free_port)
	opport=$(free_port)
	EPOCH_URL=$REG_URL POD_NAMESPACE=cocoon-system METRICS_ADDR=127.0.0.1:$oport \
		PROBE_ADDR=127.0.0.1:$opport "$BIN/operatord" >"$D/operatord.log" 2>&1 &
	lib_bg $!
	wait_for 20 "operatord to be ready (log: $D/operatord.log)" curl -sf "http://127.0.0.1:$opport/readyz"
	OPERATOR=1
	say "Debian's docker-registry at $REG_URL stands in for Epoch (the :hibernate tags live there)."
	say "operatord holds the Lease $(kubectl -n cocoon-system get lease \
		cocoon-operator.cocoonset.cocoonstack.io -o jsonpath='{.spec.holderIdentity}' 2>/dev/null || echo '(campaigning)'); log: $D/operatord.log"
else
	say "skipped: operatord or docker-registry is missing"
fi

step "Applying the samples in deploy/samples/"
for f in "$ROOT"/deploy/samples/*.yaml; do
	name=$(basename "$f")
	if out=$(kubectl apply -f "$f" 2>&1); then
		say "$name: $out"
	else
		case $out in
		*) say "$name: refused: $out" ;;
		esac
	fi
done
say "The bare pod got a stable VM name and a sticky node from webhookd (/mutate):"
kubectl get pod scratch-vm -o \
	jsonpath='{"    | vm name: "}{.metadata.annotations.vm\.cocoonstack\.io/name}{"\n    | node:    "}{.spec.nodeName}{"\n"}'
say "Its reservation, kept in a ConfigMap per pool so every webhook replica agrees:"
kubectl -n cocoon-system get configmap cocoon-affinity-default -o jsonpath='{.data}' | show
echo
say "Scaling the cocoon Deployment down is refused (agents are stateful VMs):"
kubectl scale deployment/sre-agent --replicas=1 2>&1 | show || true
say "A CocoonSet without an image is refused with the reason:"
printf '%s\n' 'apiVersion: cocoonset.cocoonstack.io/v1' 'kind: CocoonSet' 'metadata: {name: broken}' \
	'spec: {agent: {image: "", replicas: 1}}' | kubectl apply -f - 2>&1 | show || true
say "Pods now (bound to stand-in nodes: no vkd runs VMs yet; the Deployment's replicas do"
say "not appear because kubesim runs no workload controllers):"
kubectl get pods -o wide 2>&1 | show || true
say "webhookd's admission counters:"
curl -sS "http://127.0.0.1:$mport/metrics" | grep '^cocoon_webhook_admission_total' | show || true

if [ -n "$OPERATOR" ]; then
	step "operatord: CocoonSets, the demo playing vk-cocoon's part (vkd is not built)"
	wait_eq 20 "the main agents" "demo-0" live_pods demo
	say "operatord created each set's main agent first (v1 'demo' and legacy 'demo-legacy'):"
	kubectl get pods -l cocoonset.cocoonstack.io/name -o wide 2>&1 | show
	say "vk-cocoon would now boot the main VMs; the demo marks them Running and Ready:"
	play_node_ready demo-0 demo-legacy-0
	wait_eq 20 "the sub-agents" "demo-0 demo-1 demo-2 demo-windows" live_pods demo
	wait_eq 20 "the legacy sub-agent" "demo-legacy-0 demo-legacy-1 demo-legacy-windows" live_pods demo-legacy
	say "…and operatord forked the sub-agents from them, bound to the main's node:"
	kubectl get pods -l cocoonset.cocoonstack.io/name -o \
		custom-columns='POD:.metadata.name,NODE:.spec.nodeName,ROLE:.metadata.labels.cocoonset\.cocoonstack\.io/role,VM:.metadata.annotations.vm\.cocoonstack\.io/name,FORK-FROM:.metadata.annotations.vm\.cocoonstack\.io/fork-from' | show
	play_node_ready demo-1 demo-2 demo-windows demo-legacy-1 demo-legacy-windows
	wait_phase "$CS" demo Running 20
	say "kubectl get cs (the v1 set) and the legacy one:"
	kubectl get cs 2>&1 | show
	kubectl get cocoonsets.cocoon.cis 2>&1 | show

	step "operatord: hibernating one pod with a CocoonHibernation (the sample, desire Hibernate)"
	wait_phase cocoonhibernations.cocoonset.cocoonstack.io demo-0 Hibernating 20
	say "demo-0 now carries vm.cocoonstack.io/hibernate=$(pod_ann demo-0 vm.cocoonstack.io/hibernate):"
	kubectl get ch 2>&1 | show
	say "vk-cocoon would snapshot the VM and push vk-default-demo-0:hibernate; the demo does both:"
	play_node_hibernated demo-0
	push_tag vk-default-demo-0 hibernate
	wait_phase cocoonhibernations.cocoonset.cocoonstack.io demo-0 Hibernated 20
	kubectl get ch 2>&1 | show
	say "Flipping desire to Wake: the annotation goes, and once the VM runs again the tag is dropped:"
	kubectl patch ch demo-0 --type=merge -p '{"spec":{"desire":"Wake"}}' >/dev/null
	wait_eq 20 "the annotation removed" "" pod_ann demo-0 vm.cocoonstack.io/hibernate
	play_node_ready demo-0
	wait_phase cocoonhibernations.cocoonset.cocoonstack.io demo-0 Active 20
	kubectl get ch 2>&1 | show
	has_tag vk-default-demo-0 hibernate && say "(tag still there?)" || say "vk-default-demo-0:hibernate: gone"
	say "The legacy Hibernation sample (podName/action) works the same way:"
	wait_phase hibernations.cocoon.cis hibernate-bot-1 Hibernating 20
	play_node_hibernated demo-legacy-0
	push_tag vk-default-demo-legacy-0 hibernate
	wait_phase hibernations.cocoon.cis hibernate-bot-1 Hibernated 20
	kubectl get hib -o wide 2>&1 | show
	say "status: $(kubectl get hib hibernate-bot-1 -o jsonpath='{.status.message} (snapshotRef {.status.snapshotRef})')"

	step "operatord: suspending the whole CocoonSet (spec.suspend: true)"
	kubectl patch cs demo --type=merge -p '{"spec":{"suspend":true}}' >/dev/null
	wait_phase "$CS" demo Suspending 20
	say "Every pod is annotated; the phase stays Suspending until each VM says 'hibernated' for"
	say "this generation and its tag is in the registry. operatord's log says what it waits for:"
	grep 'suspend waits for' "$D/operatord.log" | tail -1 | sed 's/^.*operatord: //' | show
	for p in demo-0 demo-1 demo-2 demo-windows; do
		play_node_hibernated "$p"
		has_tag "vk-default-$p" hibernate || push_tag "vk-default-$p" hibernate
	done
	wait_phase "$CS" demo Suspended 20
	kubectl get cs demo 2>&1 | show
	kubectl patch cs demo --type=merge -p '{"spec":{"suspend":false}}' >/dev/null
	wait_eq 20 "the annotations removed" "" pod_ann demo-1 vm.cocoonstack.io/hibernate
	say "Resumed: the hibernate annotations are gone; vk-cocoon would restore the VMs."

	step "operatord: deleting the CocoonSet"
	kubectl delete cs demo --wait=false 2>&1 | show
	for _ in $(seq 50); do reap; [ -z "$(pods demo)" ] && break; sleep 0.3; done
	gone() { kubectl get cs demo >/dev/null 2>&1 && echo present || echo gone; }
	wait_eq 20 "the CocoonSet to go" gone gone
	say "Its pods were deleted first (the demo finished their termination, as a kubelet does),"
	say "then the VMs' :hibernate tags dropped and the finalizer removed:"
	for p in demo-0 demo-1 demo-2; do
		has_tag "vk-default-$p" hibernate && say "vk-default-$p:hibernate still there" ||
			say "vk-default-$p:hibernate: gone"
	done
	say "operatord's counters:"
	curl -sS "http://127.0.0.1:$oport/metrics" | grep -E '^cocoon_operator_(reconcile_total|api_writes_total)' | show
fi

step "The stack is running"
say "export KUBECONFIG=$KUBECONFIG" \
	"kubectl get pods,deployments" \
	"curl --cacert $D/ca.crt --resolve $WH_SVC:$port:127.0.0.1 https://$WH_SVC:$port/healthz" \
	"curl http://127.0.0.1:$mport/metrics"
if [ -t 0 ]; then
	say "Press Ctrl-C to stop everything the demo started."
	while :; do sleep 3600; done
fi
say "(stdin is not a terminal: stopping now)"
