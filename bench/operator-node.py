#!/usr/bin/env python3
"""The node's half of bench/operator.sh, against kubesim over plain HTTP.

  operator-node.py URL TOKEN N operator   create N CocoonSets, mark every managed pod Ready
                                          as it appears (vk-cocoon's part), wait until all N
                                          report phase Running; print the seconds
  operator-node.py URL TOKEN N reference  the same API work done directly by this script,
                                          in the same order (create set, create its pod, mark
                                          it Ready, write the set's status): the API double's
                                          floor for what operatord has to do
"""
import http.client
import json
import sys
import threading
import time
import urllib.parse

URL, TOKEN, N, MODE = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
HOST = urllib.parse.urlparse(URL).netloc
NS = "bench"
CS = "/apis/cocoonset.cocoonstack.io/v1/namespaces/%s/cocoonsets" % NS


def conn():
    return http.client.HTTPConnection(HOST, timeout=60)


def call(c, method, path, body=None, ctype="application/json"):
    headers = {"Authorization": "Bearer " + TOKEN}
    data = None
    if body is not None:
        data = json.dumps(body)
        headers["Content-Type"] = ctype
    c.request(method, path, body=data, headers=headers)
    r = c.getresponse()
    out = r.read()
    if r.status >= 300 and r.status != 409:
        raise SystemExit("%s %s: %d %s" % (method, path, r.status, out[:200]))
    return json.loads(out) if out else None


READY = {"status": {"phase": "Running",
                    "conditions": [{"type": "Ready", "status": "True"},
                                   {"type": "PodScheduled", "status": "True"}],
                    "containerStatuses": [{"name": "agent", "ready": True,
                                           "state": {"running": {}}}]}}


def cocoonset(i):
    return {"apiVersion": "cocoonset.cocoonstack.io/v1", "kind": "CocoonSet",
            "metadata": {"name": "cs-%d" % i, "namespace": NS},
            "spec": {"agent": {"image": "ubuntu", "replicas": 0}}}


def mark_ready(c, name):
    call(c, "PATCH", "/api/v1/namespaces/%s/pods/%s/status" % (NS, name), READY,
         "application/merge-patch+json")


def node_player(stop):
    """Watches managed pods and marks each new one Ready, as vk-cocoon would."""
    c = conn()
    seen = set()
    rv = call(c, "GET", "/api/v1/namespaces/%s/pods" % NS)["metadata"]["resourceVersion"]
    w = conn()
    w.request("GET", "/api/v1/namespaces/%s/pods?watch=1&resourceVersion=%s" % (NS, rv),
              headers={"Authorization": "Bearer " + TOKEN})
    r = w.getresponse()
    while not stop.is_set():
        line = r.fp.readline()
        if not line:
            break
        line = line.strip()
        if not line or line in (b"0",) or all(ch in b"0123456789abcdefABCDEF" for ch in line):
            continue  # chunk-size lines of the chunked encoding
        ev = json.loads(line)
        pod = ev.get("object", {})
        name = pod.get("metadata", {}).get("name")
        if ev.get("type") == "ADDED" and name not in seen:
            seen.add(name)
            mark_ready(c, name)


def all_running(c):
    items = call(c, "GET", CS)["items"]
    return sum(1 for o in items if o.get("status", {}).get("phase") == "Running")


def operator_mode():
    c = conn()
    stop = threading.Event()
    t = threading.Thread(target=node_player, args=(stop,), daemon=True)
    t.start()
    time.sleep(0.2)
    start = time.monotonic()
    for i in range(N):
        call(c, "POST", CS, cocoonset(i))
    while all_running(c) < N:
        time.sleep(0.1)
    print("%.3f" % (time.monotonic() - start))
    stop.set()


def reference_mode():
    c = conn()
    start = time.monotonic()
    for i in range(N):
        cs = call(c, "POST", CS, cocoonset(i))
        pod = {"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": "cs-%d-0" % i, "namespace": NS,
                            "labels": {"cocoonset.cocoonstack.io/name": "cs-%d" % i}},
               "spec": {"containers": [{"name": "agent", "image": "x"}]}}
        call(c, "POST", "/api/v1/namespaces/%s/pods" % NS, pod)
        mark_ready(c, "cs-%d-0" % i)
        call(c, "PATCH", CS + "/cs-%d/status" % i,
             {"status": {"phase": "Running", "readyAgents": 1, "desiredAgents": 1}},
             "application/merge-patch+json")
        del cs
    print("%.3f" % (time.monotonic() - start))


operator_mode() if MODE == "operator" else reference_mode()
