#!/usr/bin/env bash
# Two webhookd replicas behind one Service (a round-robin TCP proxy, so each admission call
# goes to the next replica) race for the slots of one Deployment: 20 pods created at once
# through kubesim must get 20 distinct VM names, in the ConfigMap and on the pods, and both
# replicas must have served and stored reservations (the conflicts between them were retried).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
lib_init
. "$(dirname "$0")/webhookd-lib.sh"
: "${BIN:?set BIN to the build bin directory}"
export HOME=$TEST_TMP
N=20

wh_ca
wh_cert tls
lb=$(free_port)
p1=$(free_port)
p2=$(free_port)
m1=$(free_port)
m2=$(free_port)
python3 - "$lb" "$p1" "$p2" >"$TEST_TMP/lb.log" 2>&1 <<'PY' &
import asyncio, itertools, sys
listen, backends = int(sys.argv[1]), itertools.cycle(int(p) for p in sys.argv[2:])
async def pipe(r, w):
    try:
        while data := await r.read(65536):
            w.write(data)
            await w.drain()
    finally:
        w.close()
async def serve(cr, cw):
    br, bw = await asyncio.open_connection("127.0.0.1", next(backends))
    await asyncio.gather(pipe(cr, bw), pipe(br, cw), return_exceptions=True)
async def main():
    srv = await asyncio.start_server(serve, "127.0.0.1", listen)
    async with srv:
        await srv.serve_forever()
asyncio.run(main())
PY
lib_bg $!
wait_port 127.0.0.1 "$lb"
kubesim_start ks --listen 127.0.0.1:0 --tls \
	--webhook-service "cocoon-system/cocoon-webhook=127.0.0.1:$lb"
for n in 1 2 3 4; do wh_node "vk-$n" default; done
wh_start wh1 "$p1" "$m1"
wh_start wh2 "$p2" "$m2"
wh_register

pod='{"apiVersion":"v1","kind":"Pod","metadata":{"generateName":"api-5c6d7-","namespace":"race","ownerReferences":[{"apiVersion":"apps/v1","kind":"ReplicaSet","name":"api-5c6d7","uid":"u-rs","controller":true}]},"spec":{"tolerations":[{"key":"virtual-kubelet.io/provider","operator":"Exists"}],"containers":[{"name":"c","image":"busybox"}]}}'
kubectl create namespace race >/dev/null
pids=()
for i in $(seq "$N"); do
	kcurl POST /api/v1/namespaces/race/pods "$pod" >"$TEST_TMP/pod$i.json" &
	pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done

vms=$(kubectl get pods -n race -o jsonpath='{range .items[*]}{.metadata.annotations.vm\.cocoonstack\.io/name}{"\n"}{end}' | sort)
assert_eq "$N" "$(grep -c . <<<"$vms")" "pods with a VM name (of $N): $(cat "$TEST_TMP"/pod1.json)"
dups=$(uniq -d <<<"$vms")
[ -z "$dups" ] || fail "VM names given to two pods: $dups"
assert_eq "$(seq 0 $((N - 1)) | sed 's/^/vk-race-api-/' | sort)" "$vms" "slots 0..$((N - 1)), none skipped"
cm=$(kubectl get configmap -n cocoon-system cocoon-affinity-default -o json)
stored=$(python3 -c 'import json,sys; d=json.loads(sys.argv[1])["data"]; v=[json.loads(x)["vmName"] for k,x in d.items() if k.startswith("race.")]; print(len(v), len(set(v)))' "$cm")
assert_eq "$N $N" "$stored" "reservations in the ConfigMap (count, distinct VM names)"
# the pool's nodes were shared out evenly: 20 pods over 4 nodes
spread=$(kubectl get pods -n race -o jsonpath='{range .items[*]}{.spec.nodeName}{"\n"}{end}' | sort | uniq -c | awk '{print $1}' | sort -u | tr '\n' ' ')
assert_eq "5 " "$spread" "pods per node"

r1=$(wh_metric "$m1" 'cocoon_webhook_affinity_reservations_total{pool="default"}' | awk '{print $2}')
r2=$(wh_metric "$m2" 'cocoon_webhook_affinity_reservations_total{pool="default"}' | awk '{print $2}')
[ -n "$r1" ] && [ -n "$r2" ] || fail "a replica stored nothing (wh1: '$r1', wh2: '$r2')"
assert_eq "$N" "$((r1 + r2))" "reservations stored by the two replicas"
echo "PASS: two replicas handed out $N distinct slots ($r1 + $r2)"
