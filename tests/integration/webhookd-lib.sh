# Helpers for the 07x-webhookd-* scenarios; source after lib.sh and lib_init.
#
#   wh_ca                         a CA in $TEST_TMP/ca.{crt,key}
#   wh_cert NAME                  a serving cert signed by it: $TEST_TMP/NAME.{crt,key}, for
#                                 cocoon-webhook.cocoon-system.svc and 127.0.0.1
#   wh_start NAME PORT MPORT      start webhookd (TLS $TEST_TMP/tls.*, KUBECONFIG) in the
#                                 background, log $TEST_TMP/NAME.log; wait until /readyz is 200
#   wh_register                   apply the namespace, deploy/crds and deploy/webhook's configurations with
#                                 the CA as caBundle (kubesim maps the Service with
#                                 --webhook-service)
#   wh_node NAME POOL             a Ready node labelled cocoonstack.io/pool=POOL
#   wh_metric MPORT PATTERN       the /metrics lines matching PATTERN (grep -F)

WH_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
WH_SVC=cocoon-webhook.cocoon-system.svc

wh_ca() {
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
		-keyout "$TEST_TMP/ca.key" -out "$TEST_TMP/ca.crt" -subj /CN=webhook-test-ca \
		2>/dev/null
}

wh_cert() {
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout "$TEST_TMP/$1.key" -out "$TEST_TMP/$1.csr" -subj "/CN=$WH_SVC" 2>/dev/null
	printf 'subjectAltName=DNS:%s,IP:127.0.0.1\n' "$WH_SVC" >"$TEST_TMP/$1.ext"
	openssl x509 -req -in "$TEST_TMP/$1.csr" -CA "$TEST_TMP/ca.crt" -CAkey "$TEST_TMP/ca.key" \
		-CAcreateserial -days 2 -extfile "$TEST_TMP/$1.ext" -out "$TEST_TMP/$1.crt" \
		2>/dev/null
}

wh_start() {
	local name=$1 port=$2 mport=$3
	shift 3
	env TLS_CERT="$TEST_TMP/tls.crt" TLS_KEY="$TEST_TMP/tls.key" \
		LISTEN_ADDR="127.0.0.1:$port" METRICS_ADDR="127.0.0.1:$mport" "$@" \
		"$BIN/webhookd" >"$TEST_TMP/$name.log" 2>&1 &
	WH_PID=$!
	lib_bg "$WH_PID"
	wait_up "$WH_PID" 20 "$name to be ready" \
		curl -sf --cacert "$TEST_TMP/ca.crt" --resolve "$WH_SVC:$port:127.0.0.1" \
		"https://$WH_SVC:$port/readyz"
}

wh_register() {
	kubectl apply -f "$WH_ROOT/deploy/webhook/namespace.yaml" >/dev/null
	kubectl apply -k "$WH_ROOT/deploy/crds" >/dev/null
	kubectl wait --for=condition=Established --timeout=10s \
		crd/cocoonsets.cocoonset.cocoonstack.io \
		crd/cocoonhibernations.cocoonset.cocoonstack.io >/dev/null
	python3 - "$WH_ROOT/deploy/webhook/configuration.yaml" "$TEST_TMP/ca.crt" \
		>"$TEST_TMP/webhooks.json" <<'PY'
import base64, json, subprocess, sys
out = subprocess.run(["kubectl", "create", "--dry-run=client", "-o", "json", "-f", sys.argv[1]],
                     check=True, capture_output=True, text=True).stdout
dec, pos, items = json.JSONDecoder(), 0, []
while out[pos:].strip():
    obj, end = dec.raw_decode(out[pos:].lstrip())
    pos += len(out[pos:]) - len(out[pos:].lstrip()) + end
    items.append(obj)
ca = base64.b64encode(open(sys.argv[2], "rb").read()).decode()
for item in items:
    for wh in item["webhooks"]:
        wh["clientConfig"]["caBundle"] = ca
print(json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
PY
	kubectl apply -f "$TEST_TMP/webhooks.json" >/dev/null
}

wh_node() {
	kcurl POST /api/v1/nodes "{\"apiVersion\":\"v1\",\"kind\":\"Node\",\"metadata\":{\"name\":\"$1\",\"labels\":{\"cocoonstack.io/pool\":\"$2\",\"kubernetes.io/hostname\":\"$1\"}},\"spec\":{\"taints\":[{\"key\":\"virtual-kubelet.io/provider\",\"value\":\"cocoon\",\"effect\":\"NoSchedule\"}]},\"status\":{\"conditions\":[{\"type\":\"Ready\",\"status\":\"True\"}]}}" |
		grep -q '"Ready"' || fail "cannot create node $1"
}

wh_metric() {
	curl -sS "http://127.0.0.1:$1/metrics" | grep -F "$2" || true
}
