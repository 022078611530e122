#!/usr/bin/env python3
"""Behaviour tests for kubesim, each one a place where a naive fake diverges from a real
kube-apiserver (kube-api.md §6; CHECKLIST.md maps items to tests). Every test talks to a
real kubesim process over HTTP(S), as the daemons will.

Run: python3 tests/kubesim/test_kubesim.py [-v] [TestClass.test_name]
"""

import base64
import http.client
import http.server
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.realpath(__file__))
KUBESIM = os.path.join(HERE, "kubesim")
TOKEN = "test-token"
_TMP = None
_CERT = None


def setUpModule():
    global _TMP, _CERT
    _TMP = tempfile.mkdtemp(prefix="kubesim-test-")
    key, crt = os.path.join(_TMP, "peer.key"), os.path.join(_TMP, "peer.crt")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj",
                    "/CN=peer", "-keyout", key, "-out", crt, "-addext",
                    "subjectAltName=IP:127.0.0.1,DNS:hook.webhooks.svc"],
                   check=True, capture_output=True)
    _CERT = (crt, key)


def tearDownModule():
    shutil.rmtree(_TMP, ignore_errors=True)


class Sim:
    """A running kubesim and a tiny HTTP client for it."""

    def __init__(self, *extra, tls=False):
        self.kubeconfig = os.path.join(_TMP, "kc-%d" % id(self))
        args = [sys.executable, KUBESIM, "--listen", "127.0.0.1:0", "--kubeconfig",
                self.kubeconfig, "--token", TOKEN] + list(extra)
        if tls:
            args.append("--tls")
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)
        line = self.proc.stdout.readline()
        if "serving" not in line:
            raise RuntimeError("kubesim did not start: %r %s" % (line, self.proc.stderr.read()))
        self.url = line.split()[2]
        self.port = int(self.url.rsplit(":", 1)[1])
        self.tls = tls

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()
        self.proc.stderr.close()

    def conn(self, timeout=10):
        if self.tls:
            ctx = ssl.create_default_context(cafile=None)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            return http.client.HTTPSConnection("127.0.0.1", self.port, context=ctx,
                                               timeout=timeout)
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def call(self, method, path, body=None, ctype="application/json", headers=None,
             token=TOKEN, raw=False):
        c = self.conn()
        h = {"Accept": "application/json"}
        if token:
            h["Authorization"] = "Bearer " + token
        if body is not None:
            h["Content-Type"] = ctype
            if not isinstance(body, (bytes, str)):
                body = json.dumps(body)
        h.update(headers or {})
        c.request(method, path, body=body, headers=h)
        r = c.getresponse()
        data = r.read()
        c.close()
        if raw:
            return r.status, data, r
        return r.status, (json.loads(data) if data else None)

    def ok(self, method, path, body=None, ctype="application/json", expect=(200, 201)):
        code, obj = self.call(method, path, body, ctype)
        if code not in expect:
            raise AssertionError("%s %s -> %d %s" % (method, path, code, obj))
        return obj

    def watch(self, path, timeout=10):
        c = self.conn(timeout)
        c.request("GET", path, headers={"Authorization": "Bearer " + TOKEN})
        r = c.getresponse()
        return Watch(c, r)


class Watch:
    def __init__(self, conn, resp):
        self.conn = conn
        self.resp = resp
        self.status = resp.status
        self.buf = b""

    def next(self):
        """The next event, parsed from the chunked stream regardless of chunk boundaries."""
        while b"\n" not in self.buf:
            data = self.resp.read1(65536)
            if not data:
                return None
            self.buf += data
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def events(self, n):
        out = []
        for _ in range(n):
            ev = self.next()
            if ev is None:
                break
            out.append(ev)
        return out

    def close(self):
        self.conn.close()


def cm(name, **data):
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name},
            "data": data}


def pod(name, node=None, labels=None, tolerate=False, **spec):
    p = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels or {}},
         "spec": dict({"containers": [{"name": "c1", "image": "busybox:1"}]}, **spec)}
    if node:
        p["spec"]["nodeName"] = node
    if tolerate:
        p["spec"]["tolerations"] = [{"key": "virtual-kubelet.io/provider",
                                     "operator": "Exists"}]
    return p


def node(name, ready=True, taint=True, port=10250, labels=None):
    n = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name,
                                                          "labels": labels or {}},
         "spec": {},
         "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
                    "addresses": [{"type": "Hostname", "address": name},
                                  {"type": "InternalIP", "address": "127.0.0.1"}],
                    "daemonEndpoints": {"kubeletEndpoint": {"Port": port}}}}
    if taint:
        n["spec"]["taints"] = [{"key": "virtual-kubelet.io/provider", "value": "cocoon",
                                "effect": "NoSchedule"}]
    return n


CRD = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.example.com"},
    "spec": {"group": "example.com", "scope": "Namespaced",
             "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
             "versions": [{"name": "v1", "served": True, "storage": True,
                           "subresources": {"status": {}, "scale": {
                               "specReplicasPath": ".spec.replicas",
                               "statusReplicasPath": ".status.replicas"}},
                           "schema": {"openAPIV3Schema": {
                               "type": "object",
                               "x-kubernetes-preserve-unknown-fields": True}}}]}}
WIDGETS = "/apis/example.com/v1/namespaces/default/widgets"
PODS = "/api/v1/namespaces/default/pods"
CMS = "/api/v1/namespaces/default/configmaps"


def rv(obj):
    return int(obj["metadata"]["resourceVersion"])


def wait_until(fn, timeout=5.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("timed out waiting for " + what)


class SimTest(unittest.TestCase):
    sim_args = ()
    tls = False

    @classmethod
    def setUpClass(cls):
        cls.sim = Sim(*cls.sim_args, tls=cls.tls)

    @classmethod
    def tearDownClass(cls):
        cls.sim.stop()

    def assertStatus(self, obj, code, reason):
        self.assertEqual(obj.get("kind"), "Status", obj)
        self.assertEqual(obj.get("apiVersion"), "v1")
        self.assertEqual(obj.get("status"), "Failure")
        self.assertEqual(obj.get("code"), code, obj)
        self.assertEqual(obj.get("reason"), reason, obj)


# ---------------------------------------------------------------------------------------

class ResourceVersionTest(SimTest):
    def test_one_counter_across_resources_seeded_from_time(self):
        a = self.sim.ok("POST", CMS, cm("rv-a"))
        b = self.sim.ok("POST", PODS, pod("rv-b"))
        c = self.sim.ok("POST", "/api/v1/namespaces", {"metadata": {"name": "rv-ns"}})
        d = self.sim.ok("PUT", CMS + "/rv-a", dict(cm("rv-a", k="v"),
                                                   metadata={"name": "rv-a",
                                                             "resourceVersion": str(rv(a))}))
        self.assertLess(rv(a), rv(b))
        self.assertLess(rv(b), rv(c))
        self.assertLess(rv(c), rv(d))
        self.assertGreater(rv(a), int(time.time() * 1000) - 600000)
        lst = self.sim.ok("GET", CMS)
        # the list carries the counter at list time, not the largest item RV
        self.assertGreaterEqual(int(lst["metadata"]["resourceVersion"]), rv(d))
        self.assertGreater(int(lst["metadata"]["resourceVersion"]),
                           max(rv(i) for i in lst["items"]) - 1)
        # items of built-in lists omit kind/apiVersion; the list says ConfigMapList
        self.assertEqual(lst["kind"], "ConfigMapList")
        self.assertNotIn("kind", lst["items"][0])

    def test_list_never_returns_null_items(self):
        lst = self.sim.ok("GET", "/api/v1/namespaces/default/secrets?labelSelector=none%3Dx")
        self.assertEqual(lst["items"], [])

    def test_too_large_rv_is_504_after_wait(self):
        cur = int(self.sim.ok("GET", CMS)["metadata"]["resourceVersion"])
        t0 = time.monotonic()
        code, obj = self.sim.call("GET", CMS + "?resourceVersion=%d" % (cur + 1000))
        self.assertEqual(code, 504)
        self.assertStatus(obj, 504, "Timeout")
        self.assertGreaterEqual(time.monotonic() - t0, 0.25)

    def test_exact_list_sees_the_past(self):
        a = self.sim.ok("POST", CMS, cm("ex-a"))
        self.sim.ok("POST", CMS, cm("ex-b"))
        lst = self.sim.ok("GET", CMS + "?resourceVersion=%d&resourceVersionMatch=Exact" % rv(a))
        names = [i["metadata"]["name"] for i in lst["items"]]
        self.assertIn("ex-a", names)
        self.assertNotIn("ex-b", names)
        code, obj = self.sim.call("GET", CMS + "?resourceVersionMatch=Exact")
        self.assertEqual(code, 400)

    def test_limit_and_continue_page_through_one_snapshot(self):
        for i in range(5):
            self.sim.ok("POST", "/api/v1/namespaces/kube-public/configmaps", cm("page-%d" % i))
        base = "/api/v1/namespaces/kube-public/configmaps?limit=2"
        first = self.sim.ok("GET", base)
        self.assertEqual(len(first["items"]), 2)
        token = first["metadata"]["continue"]
        self.sim.ok("POST", "/api/v1/namespaces/kube-public/configmaps", cm("page-9"))
        names = [i["metadata"]["name"] for i in first["items"]]
        while token:
            page = self.sim.ok("GET", base + "&continue=" + token)
            self.assertEqual(page["metadata"]["resourceVersion"],
                             first["metadata"]["resourceVersion"])
            names += [i["metadata"]["name"] for i in page["items"]]
            token = page["metadata"].get("continue")
        self.assertEqual(names, ["kube-root-ca.crt"] + ["page-%d" % i for i in range(5)])


class HistoryTest(SimTest):
    sim_args = ("--watch-history", "5", "--too-large-wait", "0.3")

    def test_too_old_watch_is_200_with_error_410_event(self):
        first = self.sim.ok("POST", CMS, cm("old-0"))
        for i in range(1, 8):
            self.sim.ok("POST", CMS, cm("old-%d" % i))
        w = self.sim.watch(CMS + "?watch=true&resourceVersion=%d" % rv(first))
        self.assertEqual(w.status, 200)
        ev = w.next()
        self.assertEqual(ev["type"], "ERROR")
        self.assertEqual(ev["object"]["code"], 410)
        self.assertEqual(ev["object"]["reason"], "Expired")
        self.assertIn("too old resource version: %d" % rv(first), ev["object"]["message"])
        self.assertIsNone(w.next(), "stream must end after the ERROR event")
        w.close()
        code, obj = self.sim.call("GET", CMS + "?resourceVersion=%d&resourceVersionMatch=Exact"
                                  % rv(first))
        self.assertEqual(code, 410)
        self.assertStatus(obj, 410, "Expired")

    def test_expired_continue_token_is_410(self):
        for i in range(3):
            self.sim.ok("POST", "/api/v1/namespaces/kube-system/configmaps", cm("ct-%d" % i))
        page = self.sim.ok("GET", "/api/v1/namespaces/kube-system/configmaps?limit=1")
        for i in range(8):
            self.sim.ok("POST", CMS, cm("churn-%d" % i))
        code, obj = self.sim.call("GET", "/api/v1/namespaces/kube-system/configmaps?limit=1"
                                  "&continue=" + page["metadata"]["continue"])
        self.assertEqual(code, 410)
        self.assertStatus(obj, 410, "Expired")


class WatchTest(SimTest):
    sim_args = ("--bookmark-interval", "0.3")

    def test_replay_from_rv_then_live(self):
        a = self.sim.ok("POST", CMS, cm("w-a"))
        self.sim.ok("POST", CMS, cm("w-b"))
        self.sim.ok("DELETE", CMS + "/w-a")
        w = self.sim.watch(CMS + "?watch=1&resourceVersion=%d" % rv(a))
        evs = w.events(2)
        self.assertEqual([(e["type"], e["object"]["metadata"]["name"]) for e in evs],
                         [("ADDED", "w-b"), ("DELETED", "w-a")])
        # a DELETED event carries the RV of the deletion, which is new
        self.assertGreater(rv(evs[1]["object"]), rv(evs[0]["object"]))
        self.sim.ok("POST", CMS, cm("w-c"))
        ev = w.next()
        self.assertEqual((ev["type"], ev["object"]["metadata"]["name"]), ("ADDED", "w-c"))
        self.assertGreater(rv(ev["object"]), rv(evs[1]["object"]))
        w.close()

    def test_rv_zero_starts_with_synthetic_added(self):
        self.sim.ok("POST", CMS, cm("syn-a", x="1"))
        w = self.sim.watch(CMS + "?watch=true&resourceVersion=0"
                           "&fieldSelector=metadata.name%3Dsyn-a")
        ev = w.next()
        self.assertEqual((ev["type"], ev["object"]["metadata"]["name"]), ("ADDED", "syn-a"))
        w.close()

    def test_label_selector_transitions(self):
        self.sim.ok("POST", CMS, dict(cm("sel"), metadata={"name": "sel",
                                                           "labels": {"app": "x"}}))
        w = self.sim.watch(CMS + "?watch=true&labelSelector=app%3Dx")
        self.assertEqual(w.next()["type"], "ADDED")
        self.sim.ok("PATCH", CMS + "/sel", {"metadata": {"labels": {"app": "y"}}},
                    "application/merge-patch+json")
        ev = w.next()
        self.assertEqual(ev["type"], "DELETED")
        self.assertEqual(ev["object"]["metadata"]["labels"]["app"], "y")
        self.sim.ok("PATCH", CMS + "/sel", {"metadata": {"labels": {"app": "x"}}},
                    "application/merge-patch+json")
        self.assertEqual(w.next()["type"], "ADDED")
        w.close()

    def test_binding_turns_into_added_for_node_watch(self):
        self.sim.ok("POST", "/api/v1/nodes", node("wn1"))
        w = self.sim.watch("/api/v1/pods?watch=true&fieldSelector=spec.nodeName%3Dwn1")
        self.sim.ok("POST", PODS, pod("bind-me", tolerate=True))
        ev = w.next()
        self.assertEqual((ev["type"], ev["object"]["metadata"]["name"]), ("ADDED", "bind-me"))
        self.assertEqual(ev["object"]["spec"]["nodeName"], "wn1")
        w.close()

    def test_bookmarks_only_when_allowed(self):
        w = self.sim.watch("/api/v1/namespaces/kube-public/secrets?watch=true"
                           "&allowWatchBookmarks=true")
        ev = w.next()
        self.assertEqual(ev["type"], "BOOKMARK")
        self.assertEqual(set(ev["object"]), {"kind", "apiVersion", "metadata"})
        self.assertEqual(ev["object"]["kind"], "Secret")
        self.assertEqual(set(ev["object"]["metadata"]), {"resourceVersion"})
        w.close()
        w = self.sim.watch("/api/v1/namespaces/kube-public/secrets?watch=true&timeoutSeconds=1")
        t0 = time.monotonic()
        self.assertIsNone(w.next(), "no bookmark without allowWatchBookmarks")
        self.assertLess(time.monotonic() - t0, 3, "timeoutSeconds must end the stream")
        w.close()

    def test_send_initial_events_ends_with_marked_bookmark(self):
        self.sim.ok("POST", CMS, cm("init-1"))
        w = self.sim.watch(CMS + "?watch=true&sendInitialEvents=true&allowWatchBookmarks=true"
                           "&resourceVersionMatch=NotOlderThan"
                           "&fieldSelector=metadata.name%3Dinit-1")
        evs = w.events(2)
        self.assertEqual(evs[0]["type"], "ADDED")
        self.assertEqual(evs[1]["type"], "BOOKMARK")
        self.assertEqual(evs[1]["object"]["metadata"]["annotations"],
                         {"k8s.io/initial-events-end": "true"})
        w.close()

    def test_many_watchers_do_not_block_writers(self):
        watches = [self.sim.watch(CMS + "?watch=true") for _ in range(20)]
        t0 = time.monotonic()
        for i in range(30):
            self.sim.ok("POST", CMS, cm("fan-%d" % i))
        self.assertLess(time.monotonic() - t0, 5)
        for w in watches[:3]:
            names = set()
            while "fan-29" not in names:
                names.add(w.next()["object"]["metadata"]["name"])
        for w in watches:
            w.close()


class FragmentedWatchTest(SimTest):
    sim_args = ("--watch-fragment",)

    def test_events_survive_arbitrary_chunking(self):
        w = self.sim.watch(CMS + "?watch=true")
        names = {w.next()["object"]["metadata"]["name"]}
        for i in range(20):
            self.sim.ok("POST", CMS, cm("frag-%d" % i, payload="x" * 300))
        while "frag-19" not in names:
            names.add(w.next()["object"]["metadata"]["name"])
        self.assertTrue({"frag-%d" % i for i in range(20)} <= names)
        w.close()
        c = self.sim.conn()
        c.request("GET", CMS + "?watch=true&timeoutSeconds=1")
        r = c.getresponse()
        raw = b""
        while not raw.endswith(b"\r\n0\r\n\r\n"):  # the raw chunk framing, to the end
            data = r.fp.read1(65536)
            self.assertTrue(data, "stream ended without the last chunk")
            raw += data
        c.close()
        sizes = []
        while raw:
            head, rest = raw.split(b"\r\n", 1)
            n = int(head, 16)
            sizes.append(n)
            raw = rest[n + 2:]
        self.assertGreater(len(sizes), 20, "events must arrive split over many chunks")
        self.assertLessEqual(max(sizes), 64)


class SelectorTest(SimTest):
    def test_field_selectors(self):
        self.sim.ok("POST", CMS, cm("fs-a"))
        self.sim.ok("POST", CMS, cm("fs-b"))
        lst = self.sim.ok("GET", CMS + "?fieldSelector=metadata.name%3Dfs-a")
        self.assertEqual([i["metadata"]["name"] for i in lst["items"]], ["fs-a"])
        lst = self.sim.ok("GET", CMS + "?fieldSelector=metadata.name!%3Dfs-a")
        self.assertNotIn("fs-a", [i["metadata"]["name"] for i in lst["items"]])
        code, obj = self.sim.call("GET", CMS + "?fieldSelector=spec.foo%3Dx")
        self.assertEqual(code, 400)
        self.assertEqual(obj["message"], "field label not supported: spec.foo")
        code, obj = self.sim.call("GET", PODS + "?fieldSelector=spec.nodeName%3D,"
                                  "status.phase%3DPending")
        self.assertEqual(code, 200)

    def test_label_selector_grammar(self):
        for name, labels in (("ls-1", {"tier": "a", "env": "prod"}), ("ls-2", {"tier": "b"}),
                             ("ls-3", {})):
            self.sim.ok("POST", "/api/v1/namespaces/kube-public/configmaps",
                        dict(cm(name), metadata={"name": name, "labels": labels}))
        base = "/api/v1/namespaces/kube-public/configmaps?labelSelector="

        def names(sel):
            lst = self.sim.ok("GET", base + sel)
            return sorted(i["metadata"]["name"] for i in lst["items"] if
                          i["metadata"]["name"].startswith("ls-"))
        self.assertEqual(names("tier%20in%20(a,b)"), ["ls-1", "ls-2"])
        self.assertEqual(names("tier!%3Da"), ["ls-2", "ls-3"])
        self.assertEqual(names("!tier"), ["ls-3"])
        self.assertEqual(names("tier,env%3D%3Dprod"), ["ls-1"])
        self.assertEqual(names("tier%20notin%20(a)"), ["ls-2", "ls-3"])
        code, obj = self.sim.call("GET", base + "tier%20in%20(a")
        self.assertEqual(code, 400)
        self.assertStatus(obj, 400, "BadRequest")


class WriteRulesTest(SimTest):
    def test_stale_update_is_409_conflict_with_exact_status(self):
        a = self.sim.ok("POST", CMS, cm("cf"))
        self.sim.ok("PUT", CMS + "/cf", dict(cm("cf", x="1"), metadata={
            "name": "cf", "resourceVersion": a["metadata"]["resourceVersion"]}))
        code, obj = self.sim.call("PUT", CMS + "/cf", dict(cm("cf", x="2"), metadata={
            "name": "cf", "resourceVersion": a["metadata"]["resourceVersion"]}))
        self.assertEqual(code, 409)
        self.assertEqual(obj, {
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": 'Operation cannot be fulfilled on configmaps "cf": the object has been '
                       "modified; please apply your changes to the latest version and try again",
            "reason": "Conflict", "details": {"name": "cf", "kind": "configmaps"}, "code": 409})

    def test_unconditional_update_rules(self):
        self.sim.ok("POST", CMS, cm("uc"))
        for rv0 in ("0", ""):
            self.sim.ok("PUT", CMS + "/uc", dict(cm("uc", y=rv0 or "e"), metadata={
                "name": "uc", "resourceVersion": rv0}))
        leases = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases"
        lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                 "metadata": {"name": "n1"},
                 "spec": {"holderIdentity": "n1", "leaseDurationSeconds": 40,
                          "renewTime": "2025-01-02T03:04:05.123456Z"}}
        code, created = self.sim.call("PUT", leases + "/n1", lease)
        self.assertEqual(code, 201, "leases allow create-on-update")
        self.assertEqual(created["spec"]["renewTime"], "2025-01-02T03:04:05.123456Z")
        code, obj = self.sim.call("PUT", leases + "/n1", dict(lease, metadata={
            "name": "n1", "resourceVersion": "0"}))
        self.assertEqual(code, 422)
        self.assertIn("metadata.resourceVersion: Invalid value: 0x0: must be specified for an "
                      "update", obj["message"])
        code, _ = self.sim.call("PUT", CMS + "/missing", cm("missing"))
        self.assertEqual(code, 404)

    def test_create_rules(self):
        code, obj = self.sim.call("POST", CMS, cm("dup"))
        self.assertEqual(code, 201)
        self.assertEqual(obj["metadata"]["namespace"], "default")
        self.assertRegex(obj["metadata"]["uid"], r"^[0-9a-f-]{36}$")
        self.assertRegex(obj["metadata"]["creationTimestamp"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
        code, obj = self.sim.call("POST", CMS, cm("dup"))
        self.assertEqual(code, 409)
        self.assertEqual(obj["reason"], "AlreadyExists")
        self.assertEqual(obj["message"], 'configmaps "dup" already exists')
        code, obj = self.sim.call("POST", CMS, {"metadata": {"generateName": "gen-"}})
        self.assertEqual(code, 201)
        self.assertRegex(obj["metadata"]["name"], r"^gen-[bcdfghjklmnpqrstvwxz2456789]{5}$")
        code, obj = self.sim.call("POST", "/api/v1/namespaces/nope/configmaps", cm("x"))
        self.assertEqual(code, 404)
        self.assertEqual(obj["message"], 'namespaces "nope" not found')
        code, obj = self.sim.call("POST", CMS, dict(cm("x"), metadata={"name": "x",
                                                                        "namespace": "other"}))
        self.assertEqual(code, 400)
        code, obj = self.sim.call("POST", CMS, cm("Bad_Name"))
        self.assertEqual(code, 422)
        self.assertEqual(obj["details"]["causes"][0]["field"], "metadata.name")
        code, obj = self.sim.call("POST", CMS, b"{not json")
        self.assertEqual(code, 400)
        self.assertStatus(obj, 400, "BadRequest")
        code, obj = self.sim.call("GET", CMS + "/nothere")
        self.assertEqual(obj["message"], 'configmaps "nothere" not found')
        code, obj = self.sim.call("GET", "/apis/apps/v1/namespaces/default/deployments/nothere")
        self.assertEqual(obj["message"], 'deployments.apps "nothere" not found')
        self.assertEqual(obj["details"], {"name": "nothere", "group": "apps",
                                          "kind": "deployments"})
        code, obj = self.sim.call("GET", "/api/v1/nonsense")
        self.assertEqual((code, obj["message"]),
                         (404, "the server could not find the requested resource"))

    def test_wrong_json_types_are_400_naming_the_field(self):
        bad = pod("types")
        bad["spec"]["containers"][0]["name"] = 5
        code, obj = self.sim.call("POST", PODS, bad)
        self.assertEqual(code, 400)
        self.assertStatus(obj, 400, "BadRequest")
        self.assertIn("cannot unmarshal number into Go struct field spec.containers[0].name "
                      "of type string", obj["message"])
        code, obj = self.sim.call("POST", CMS, {"metadata": {"name": "t", "labels": ["x"]}})
        self.assertEqual(code, 400)
        self.assertIn("metadata.labels", obj["message"])
        self.sim.ok("POST", CMS, cm("typed"))
        code, obj = self.sim.call("PATCH", CMS + "/typed", {"data": {"k": 1}},
                                  "application/merge-patch+json")
        self.assertEqual(code, 400)
        self.assertIn("data.k", obj["message"])
        code, obj = self.sim.call("DELETE", CMS + "/typed", {"gracePeriodSeconds": "x"})
        self.assertEqual(code, 400)
        self.assertIn("gracePeriodSeconds", obj["message"])

    def test_namespaces_get_the_metadata_name_label(self):
        ns = self.sim.ok("POST", "/api/v1/namespaces", {"metadata": {"name": "lbl",
                                                                     "labels": {"a": "b"}}})
        self.assertEqual(ns["metadata"]["labels"], {"a": "b",
                                                    "kubernetes.io/metadata.name": "lbl"})
        ns["metadata"]["labels"] = {}
        ns = self.sim.ok("PUT", "/api/v1/namespaces/lbl", ns)
        self.assertEqual(ns["metadata"]["labels"], {"kubernetes.io/metadata.name": "lbl"})
        sa = self.sim.ok("GET", "/api/v1/namespaces/lbl/serviceaccounts/default")
        self.assertEqual(sa["metadata"]["name"], "default")

    def test_auth(self):
        sim = Sim(tls=True)
        try:
            code, obj = sim.call("GET", CMS, token=None)
            self.assertEqual(code, 401)
            self.assertStatus(obj, 401, "Unauthorized")
            code, obj = sim.call("GET", CMS, token="wrong")
            self.assertEqual(code, 401)
            code, obj = sim.call("GET", "/version", token=None)
            self.assertEqual(code, 200)
            self.assertEqual(sim.call("GET", CMS)[0], 200)
        finally:
            sim.stop()
        # plain HTTP is the insecure port: kubectl sends no credentials there
        self.assertEqual(self.sim.call("GET", CMS, token=None)[0], 200)

    def test_protobuf_create_from_kubectl_generators(self):
        # `kubectl create configmap pb --from-literal=a=b --from-literal=c=d` (1.33), as sent
        body = bytes.fromhex(
            "6b3873000a0f0a0276311209436f6e6669674d617012240a120a02706212001a0022002a00320038"
            "00420012060a016112016212060a01631201641a002200")
        code, obj = self.sim.call("POST", CMS, body, "application/vnd.kubernetes.protobuf")
        self.assertEqual(code, 201, obj)
        self.assertEqual(obj["metadata"]["name"], "pb")
        self.assertEqual(obj["data"], {"a": "b", "c": "d"})
        self.assertNotIn("generation", obj["metadata"], "gogo zero values are dropped")
        code, obj = self.sim.call("POST", CMS, b"k8s\x00\x0a\xff",
                                  "application/vnd.kubernetes.protobuf")
        self.assertEqual(code, 400)
        self.assertIn("failed to decode the protobuf body", obj["message"])

    def test_openapi_v2_is_an_empty_protobuf(self):
        code, data, r = self.sim.call("GET", "/openapi/v2", raw=True)
        self.assertEqual((code, data), (200, b""))
        self.assertEqual(r.getheader("Content-Type"),
                         "application/com.github.proto-openapi.spec.v2.v1.0+protobuf")
        code, _ = self.sim.call("GET", "/openapi/v3")
        self.assertEqual(code, 404)


class PatchTest(SimTest):
    def test_json_patch(self):
        self.sim.ok("POST", CMS, cm("jp", a="1"))
        obj = self.sim.ok("PATCH", CMS + "/jp", [{"op": "add", "path": "/data/b", "value": "2"},
                                                 {"op": "test", "path": "/data/a", "value": "1"},
                                                 {"op": "remove", "path": "/data/a"}],
                          "application/json-patch+json")
        self.assertEqual(obj["data"], {"b": "2"})
        for bad in ([{"op": "remove", "path": "/data/zzz"}],
                    [{"op": "test", "path": "/data/b", "value": "nope"}],
                    [{"op": "replace", "path": "/nothing/here", "value": 1}]):
            code, err = self.sim.call("PATCH", CMS + "/jp", bad, "application/json-patch+json")
            self.assertEqual(code, 422, bad)
            self.assertStatus(err, 422, "Invalid")
        code, err = self.sim.call("PATCH", CMS + "/jp", {"op": "add"},
                                  "application/json-patch+json")
        self.assertEqual(code, 400)
        self.assertEqual(self.sim.ok("GET", CMS + "/jp")["data"], {"b": "2"})

    def test_merge_patch_replaces_arrays_and_null_deletes(self):
        self.sim.ok("POST", PODS, pod("mp", node="nowhere"))
        obj = self.sim.ok("PATCH", PODS + "/mp", {"metadata": {"finalizers": ["a/b"],
                                                               "labels": {"x": "1"}}},
                          "application/merge-patch+json")
        obj = self.sim.ok("PATCH", PODS + "/mp", {"metadata": {"finalizers": ["c/d"],
                                                               "labels": {"x": None}}},
                          "application/merge-patch+json")
        self.assertEqual(obj["metadata"]["finalizers"], ["c/d"])
        self.assertNotIn("x", obj["metadata"].get("labels") or {})
        self.sim.ok("PATCH", PODS + "/mp", {"metadata": {"finalizers": None}},
                    "application/merge-patch+json")

    def test_strategic_merge_patch(self):
        p = pod("smp", node="nowhere")
        p["spec"]["containers"].append({"name": "c2", "image": "x:1"})
        self.sim.ok("POST", PODS, p)
        patch = {"metadata": {"finalizers": ["f/one"]},
                 "spec": {"$setElementOrder/containers": [{"name": "c1"}, {"name": "c2"}],
                          "containers": [{"name": "c2", "image": "x:2"}]}}
        obj = self.sim.ok("PATCH", PODS + "/smp", patch, "application/strategic-merge-patch+json")
        cs = obj["spec"]["containers"]
        self.assertEqual([c["name"] for c in cs], ["c1", "c2"])
        self.assertEqual(cs[0]["image"], "busybox:1")
        self.assertEqual(cs[1]["image"], "x:2")
        self.assertNotIn("$setElementOrder/containers", json.dumps(obj))
        dep = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "smp"},
               "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {
                   "metadata": {"labels": {"a": "b"}},
                   "spec": {"containers": [{"name": "c", "image": "x:1",
                                            "env": [{"name": "A", "value": "1"}]}]}}}}
        base = "/apis/apps/v1/namespaces/default/deployments"
        self.sim.ok("POST", base, dep)
        d = self.sim.ok("PATCH", base + "/smp", {"spec": {"template": {"spec": {"containers": [
            {"name": "c", "env": [{"name": "B", "value": "2"}, {"name": "A", "value": "9"}]}]}}}},
            "application/strategic-merge-patch+json")
        env = d["spec"]["template"]["spec"]["containers"][0]["env"]
        self.assertEqual(env, [{"name": "A", "value": "9"}, {"name": "B", "value": "2"}])
        self.assertEqual(d["metadata"]["generation"], 2)
        obj = self.sim.ok("PATCH", PODS + "/smp", {"metadata": {"finalizers": ["f/two"]}},
                          "application/strategic-merge-patch+json")
        self.assertEqual(obj["metadata"]["finalizers"], ["f/one", "f/two"])
        obj = self.sim.ok("PATCH", PODS + "/smp/status", {"status": {"conditions": [
            {"type": "Ready", "status": "False"}, {"type": "Initialized", "status": "True"}]}},
            "application/strategic-merge-patch+json")
        obj = self.sim.ok("PATCH", PODS + "/smp/status", {"status": {"conditions": [
            {"type": "Ready", "status": "True"}]}}, "application/strategic-merge-patch+json")
        conds = {c["type"]: c["status"] for c in obj["status"]["conditions"]}
        self.assertEqual(conds, {"Ready": "True", "Initialized": "True"})
        obj = self.sim.ok("PATCH", PODS + "/smp", {"metadata": {
            "$deleteFromPrimitiveList/finalizers": ["f/one", "f/two"]}},
            "application/strategic-merge-patch+json")
        self.assertFalse(obj["metadata"].get("finalizers"))
        # tolerations have no merge key: replaced whole, and only additions are allowed
        tol = obj["spec"]["tolerations"] + [{"key": "k", "operator": "Exists"}]
        obj = self.sim.ok("PATCH", PODS + "/smp", {"spec": {"tolerations": tol}},
                          "application/strategic-merge-patch+json")
        self.assertEqual(obj["spec"]["tolerations"], tol)

    def test_strategic_merge_on_custom_resource_is_415(self):
        self.sim.ok("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", CRD)
        wait_until(lambda: self.sim.call("GET", WIDGETS)[0] == 200, what="CRD served")
        self.sim.ok("POST", WIDGETS, {"apiVersion": "example.com/v1", "kind": "Widget",
                                      "metadata": {"name": "sw"}, "spec": {"a": 1}})
        code, obj = self.sim.call("PATCH", WIDGETS + "/sw", {"spec": {"a": 2}},
                                  "application/strategic-merge-patch+json")
        self.assertEqual(code, 415)
        self.assertStatus(obj, 415, "UnsupportedMediaType")

    def test_pod_spec_is_immutable_except_image(self):
        self.sim.ok("POST", PODS, pod("imm", node="nowhere"))
        self.sim.ok("PATCH", PODS + "/imm", {"spec": {"containers": [
            {"name": "c1", "image": "busybox:2"}]}}, "application/strategic-merge-patch+json")
        code, obj = self.sim.call("PATCH", PODS + "/imm", {"spec": {"restartPolicy": "Never"}},
                                  "application/strategic-merge-patch+json")
        self.assertEqual(code, 422)
        self.assertIn("pod updates may not change fields other than", obj["message"])
        code, obj = self.sim.call("PATCH", PODS + "/imm", {"spec": {"nodeName": "other"}},
                                  "application/merge-patch+json")
        self.assertEqual(code, 422)


class DeletionTest(SimTest):
    def _terminating(self):
        obj = self.sim.ok("POST", CMS, dict(cm("fin"), metadata={
            "name": "fin", "finalizers": ["example.com/hold"]}))
        return obj

    def test_finalizers_hold_the_object(self):
        self._terminating()
        w = self.sim.watch(CMS + "?watch=true&fieldSelector=metadata.name%3Dfin")
        self.assertEqual(w.next()["type"], "ADDED")
        obj = self.sim.ok("DELETE", CMS + "/fin")
        self.assertTrue(obj["metadata"]["deletionTimestamp"])
        self.assertEqual(obj["metadata"]["deletionGracePeriodSeconds"], 0)
        ev = w.next()
        self.assertEqual(ev["type"], "MODIFIED")
        got = self.sim.ok("GET", CMS + "/fin")
        code, err = self.sim.call("PATCH", CMS + "/fin", {"metadata": {"finalizers": [
            "example.com/hold", "example.com/new"]}}, "application/merge-patch+json")
        self.assertEqual(code, 422)
        self.assertIn("no new finalizers can be added if the object is being deleted",
                      err["message"])
        self.sim.ok("PATCH", CMS + "/fin", {"metadata": {"finalizers": None}},
                    "application/merge-patch+json")
        ev = w.next()
        while ev["type"] == "MODIFIED":
            ev = w.next()
        self.assertEqual(ev["type"], "DELETED")
        self.assertGreater(rv(ev["object"]), rv(got))
        code, _ = self.sim.call("GET", CMS + "/fin")
        self.assertEqual(code, 404)
        w.close()

    def test_generation_bumps_when_deletion_starts(self):
        self.sim.ok("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", CRD)
        wait_until(lambda: self.sim.call("GET", WIDGETS)[0] == 200, what="CRD served")
        w = self.sim.ok("POST", WIDGETS, {"apiVersion": "example.com/v1", "kind": "Widget",
                                          "metadata": {"name": "gd", "finalizers": ["x/y"]}})
        self.assertEqual(w["metadata"]["generation"], 1)
        w = self.sim.ok("DELETE", WIDGETS + "/gd")
        self.assertEqual(w["metadata"]["generation"], 2)
        self.sim.ok("PATCH", WIDGETS + "/gd", {"metadata": {"finalizers": []}},
                    "application/merge-patch+json")
        self.assertEqual(self.sim.call("GET", WIDGETS + "/gd")[0], 404)

    def test_bound_pod_waits_for_grace_zero_with_uid(self):
        created = self.sim.ok("POST", PODS, pod("gp", node="n1"))
        uid = created["metadata"]["uid"]
        obj = self.sim.ok("DELETE", PODS + "/gp", {"propagationPolicy": "Background"})
        self.assertEqual(obj["metadata"]["deletionGracePeriodSeconds"], 30)
        self.assertTrue(obj["metadata"]["deletionTimestamp"])
        self.assertEqual(self.sim.call("GET", PODS + "/gp")[0], 200)
        code, err = self.sim.call("DELETE", PODS + "/gp", {
            "gracePeriodSeconds": 0, "preconditions": {"uid": "wrong-uid"}})
        self.assertEqual(code, 409)
        self.assertEqual(err["message"], 'Operation cannot be fulfilled on pods "gp": '
                         "Precondition failed: UID in precondition: wrong-uid, UID in object "
                         "meta: %s" % uid)
        obj = self.sim.ok("DELETE", PODS + "/gp", {"gracePeriodSeconds": 0,
                                                   "preconditions": {"uid": uid}})
        self.assertEqual(self.sim.call("GET", PODS + "/gp")[0], 404)

    def test_shorter_grace_moves_deadline_earlier(self):
        self.sim.ok("POST", PODS, pod("gs", node="n1"))
        a = self.sim.ok("DELETE", PODS + "/gs", {"gracePeriodSeconds": 100})
        b = self.sim.ok("DELETE", PODS + "/gs", {"gracePeriodSeconds": 10})
        c = self.sim.ok("DELETE", PODS + "/gs", {"gracePeriodSeconds": 50})
        self.assertLess(b["metadata"]["deletionTimestamp"], a["metadata"]["deletionTimestamp"])
        self.assertEqual(c["metadata"]["deletionTimestamp"], b["metadata"]["deletionTimestamp"])
        self.assertEqual(b["metadata"]["deletionGracePeriodSeconds"], 10)

    def test_unbound_pod_goes_at_once(self):
        self.sim.ok("POST", PODS, pod("ub", schedulerName="nobody"))
        obj = self.sim.ok("DELETE", PODS + "/ub")
        self.assertEqual(obj["metadata"]["name"], "ub")
        self.assertEqual(self.sim.call("GET", PODS + "/ub")[0], 404)

    def test_configmap_delete_returns_status(self):
        self.sim.ok("POST", CMS, cm("del-st"))
        obj = self.sim.ok("DELETE", CMS + "/del-st")
        self.assertEqual((obj["kind"], obj["status"]), ("Status", "Success"))
        self.assertEqual(obj["details"]["name"], "del-st")

    def test_garbage_collection(self):
        owner = self.sim.ok("POST", CMS, cm("owner"))
        ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner",
               "uid": owner["metadata"]["uid"]}
        self.sim.ok("POST", CMS, dict(cm("dep"), metadata={"name": "dep",
                                                           "ownerReferences": [ref]}))
        self.sim.ok("DELETE", CMS + "/owner", {"propagationPolicy": "Background"})
        wait_until(lambda: self.sim.call("GET", CMS + "/dep")[0] == 404, what="dependent GC")
        owner = self.sim.ok("POST", CMS, cm("owner2"))
        ref["uid"], ref["name"] = owner["metadata"]["uid"], "owner2"
        self.sim.ok("POST", CMS, dict(cm("dep2"), metadata={"name": "dep2",
                                                            "ownerReferences": [ref]}))
        self.sim.ok("DELETE", CMS + "/owner2", {"propagationPolicy": "Orphan"})
        wait_until(lambda: self.sim.call("GET", CMS + "/owner2")[0] == 404, what="orphaning")
        dep = self.sim.ok("GET", CMS + "/dep2")
        self.assertNotIn("ownerReferences", dep["metadata"])

    def test_namespace_termination(self):
        self.sim.ok("POST", "/api/v1/namespaces", {"metadata": {"name": "doomed"}})
        self.sim.ok("POST", "/api/v1/namespaces/doomed/configmaps", cm("inside"))
        ns = self.sim.ok("DELETE", "/api/v1/namespaces/doomed")
        self.assertEqual(ns["status"]["phase"], "Terminating")
        code, obj = self.sim.call("POST", "/api/v1/namespaces/doomed/configmaps", cm("late"))
        if code != 404:  # the namespace may already be gone
            self.assertEqual(code, 403)
            self.assertIn("because it is being terminated", obj["message"])
        wait_until(lambda: self.sim.call("GET", "/api/v1/namespaces/doomed")[0] == 404,
                   what="namespace removal")
        code, obj = self.sim.call("DELETE", "/api/v1/namespaces/default")
        self.assertEqual(code, 403)


class StatusRulesTest(SimTest):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.sim.ok("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", CRD)
        wait_until(lambda: cls.sim.call("GET", WIDGETS)[0] == 200, what="CRD served")

    def test_cr_status_rules(self):
        w = self.sim.ok("POST", WIDGETS, {"apiVersion": "example.com/v1", "kind": "Widget",
                                          "metadata": {"name": "st"}, "spec": {"size": 1},
                                          "status": {"ready": True}})
        self.assertNotIn("status", w, "status is dropped on create with /status enabled")
        w["status"] = {"ready": True}
        w["metadata"]["labels"] = {"a": "b"}
        w = self.sim.ok("PUT", WIDGETS + "/st", w)
        self.assertNotIn("status", w, "main update resets status")
        self.assertEqual(w["metadata"]["generation"], 1, "metadata change keeps generation")
        w["status"] = {"ready": True}
        w["metadata"]["labels"] = {"changed": "yes"}
        w["spec"] = {"size": 99}
        s = self.sim.ok("PUT", WIDGETS + "/st/status", w)
        self.assertEqual(s["status"], {"ready": True})
        self.assertEqual(s["metadata"]["labels"], {"a": "b"}, "/status keeps only status")
        self.assertEqual(s["spec"], {"size": 1})
        self.assertEqual(s["metadata"]["generation"], 1)
        s["spec"] = {"size": 2}
        s = self.sim.ok("PUT", WIDGETS + "/st", s)
        self.assertEqual(s["metadata"]["generation"], 2)
        self.assertEqual(s["status"], {"ready": True})
        code, obj = self.sim.call("PUT", WIDGETS + "/st", dict(s, metadata=dict(
            s["metadata"], resourceVersion="")))
        self.assertEqual(code, 422, "custom resources need an RV on update")

    def test_scale_subresource_answers_scale(self):
        self.sim.ok("POST", WIDGETS, {"apiVersion": "example.com/v1", "kind": "Widget",
                                      "metadata": {"name": "sc"}, "spec": {"replicas": 1}})
        sc = self.sim.ok("PATCH", WIDGETS + "/sc/scale", {"spec": {"replicas": 3}},
                         "application/merge-patch+json")
        self.assertEqual((sc["kind"], sc["apiVersion"]), ("Scale", "autoscaling/v1"))
        self.assertEqual(sc["spec"]["replicas"], 3)
        self.assertEqual(self.sim.ok("GET", WIDGETS + "/sc")["spec"]["replicas"], 3)
        dep = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
               "spec": {"selector": {"matchLabels": {"app": "d"}}, "template": {
                   "metadata": {"labels": {"app": "d"}},
                   "spec": {"containers": [{"name": "c", "image": "x:1"}]}}}}
        d = self.sim.ok("POST", "/apis/apps/v1/namespaces/default/deployments", dep)
        self.assertEqual(d["spec"]["replicas"], 1)
        sc = self.sim.ok("GET", "/apis/apps/v1/namespaces/default/deployments/d/scale")
        self.assertEqual(sc["status"]["selector"], "app=d")
        sc["spec"]["replicas"] = 5
        sc = self.sim.ok("PUT", "/apis/apps/v1/namespaces/default/deployments/d/scale", sc)
        self.assertEqual(sc["kind"], "Scale")
        d = self.sim.ok("GET", "/apis/apps/v1/namespaces/default/deployments/d")
        self.assertEqual((d["spec"]["replicas"], d["metadata"]["generation"]), (5, 2))

    def test_pod_status_and_defaults(self):
        p = pod("ps", node="nowhere")
        p["status"] = {"phase": "Running"}
        p["spec"]["containers"][0]["resources"] = {"limits": {"cpu": "1000m",
                                                              "memory": "1024Mi"}}
        obj = self.sim.ok("POST", PODS, p)
        self.assertEqual(obj["status"], {"phase": "Pending", "qosClass": "Guaranteed"})
        spec = obj["spec"]
        self.assertEqual(spec["restartPolicy"], "Always")
        self.assertEqual(spec["terminationGracePeriodSeconds"], 30)
        self.assertEqual(spec["schedulerName"], "default-scheduler")
        self.assertEqual(spec["serviceAccountName"], "default")
        self.assertEqual({t["key"] for t in spec["tolerations"]},
                         {"node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"})
        c = spec["containers"][0]
        self.assertEqual(c["resources"]["limits"], {"cpu": "1", "memory": "1Gi"})
        self.assertEqual(c["resources"]["requests"], {"cpu": "1", "memory": "1Gi"})
        self.assertEqual(c["imagePullPolicy"], "IfNotPresent")
        self.assertEqual(c["terminationMessagePath"], "/dev/termination-log")
        self.assertEqual(c["volumeMounts"][0]["mountPath"],
                         "/var/run/secrets/kubernetes.io/serviceaccount")
        obj["status"] = {"phase": "Running", "podIP": "10.0.0.9"}
        obj["metadata"]["labels"] = {"from": "status"}
        obj["spec"]["activeDeadlineSeconds"] = 5
        obj["metadata"]["resourceVersion"] = "0"
        st = self.sim.ok("PUT", PODS + "/ps/status", obj)
        self.assertEqual(st["status"]["phase"], "Running")
        self.assertEqual(st["status"]["qosClass"], "Guaranteed", "qosClass back-filled")
        self.assertEqual(st["metadata"]["labels"], {"from": "status"})
        self.assertNotIn("activeDeadlineSeconds", st["spec"], "pods/status resets spec")
        st["status"] = {"phase": "Failed"}
        main = self.sim.ok("PUT", PODS + "/ps", st)
        self.assertEqual(main["status"]["phase"], "Running", "main update resets status")


class CrdTest(SimTest):
    def test_crd_registers_and_unregisters_at_once(self):
        crd = json.loads(json.dumps(CRD))
        crd["metadata"]["name"] = "gadgets.example.org"
        crd["spec"]["group"] = "example.org"
        crd["spec"]["names"] = {"plural": "gadgets", "kind": "Gadget", "shortNames": ["gd"],
                                "categories": ["all"]}
        obj = self.sim.ok("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
                          crd)
        conds = {c["type"]: c["status"] for c in obj["status"]["conditions"]}
        self.assertEqual(conds, {"NamesAccepted": "True", "Established": "True"})
        self.assertEqual(obj["status"]["storedVersions"], ["v1"])
        groups = self.sim.ok("GET", "/apis")
        self.assertIn("example.org", [g["name"] for g in groups["groups"]])
        res = self.sim.ok("GET", "/apis/example.org/v1")
        names = {r["name"]: r for r in res["resources"]}
        self.assertEqual(set(names), {"gadgets", "gadgets/status", "gadgets/scale"})
        self.assertEqual(names["gadgets"]["categories"], ["all"])
        self.assertEqual(names["gadgets/scale"]["kind"], "Scale")
        self.sim.ok("POST", "/apis/example.org/v1/namespaces/default/gadgets",
                    {"apiVersion": "example.org/v1", "kind": "Gadget",
                     "metadata": {"name": "g1"}})
        lst = self.sim.ok("GET", "/apis/example.org/v1/gadgets")
        self.assertEqual(lst["items"][0]["kind"], "Gadget", "CR list items carry kind")
        self.sim.ok("DELETE", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/"
                    "gadgets.example.org")
        wait_until(lambda: self.sim.call("GET", "/apis/example.org/v1")[0] == 404,
                   what="CRD kinds leaving discovery")
        groups = self.sim.ok("GET", "/apis")
        self.assertNotIn("example.org", [g["name"] for g in groups["groups"]])

    def test_bad_crd_is_422(self):
        crd = json.loads(json.dumps(CRD))
        crd["metadata"]["name"] = "wrong.example.com"
        code, obj = self.sim.call("POST", "/apis/apiextensions.k8s.io/v1/"
                                  "customresourcedefinitions", crd)
        self.assertEqual(code, 422)

    def test_discovery_has_subresources_and_categories(self):
        res = self.sim.ok("GET", "/api/v1")
        names = {r["name"]: r for r in res["resources"]}
        for sub in ("pods/log", "pods/exec", "pods/portforward", "pods/status", "pods/binding"):
            self.assertIn(sub, names)
        self.assertIn("all", names["pods"]["categories"])
        apps = {r["name"]: r for r in self.sim.ok("GET", "/apis/apps/v1")["resources"]}
        self.assertEqual((apps["deployments/scale"]["group"], apps["deployments/scale"]["kind"]),
                         ("autoscaling", "Scale"))

    def test_table_output(self):
        self.sim.ok("POST", PODS, pod("tbl", node="n9"))
        code, data, r = self.sim.call("GET", PODS, raw=True, headers={
            "Accept": "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"})
        self.assertEqual(r.getheader("Content-Type"),
                         "application/json;as=Table;v=v1;g=meta.k8s.io")
        t = json.loads(data)
        self.assertEqual([c["name"] for c in t["columnDefinitions"]][:5],
                         ["Name", "Ready", "Status", "Restarts", "Age"])
        row = next(r for r in t["rows"] if r["cells"][0] == "tbl")
        self.assertEqual(row["cells"][1:3], ["0/1", "Pending"])
        self.assertEqual(row["object"]["kind"], "PartialObjectMetadata")


class SchedulerTest(SimTest):
    def test_taints_tolerations_and_node_selector(self):
        self.sim.ok("POST", "/api/v1/nodes", node("tainted", labels={"zone": "a"}))
        self.sim.ok("POST", "/api/v1/nodes", node("notready", ready=False, taint=False))
        self.sim.ok("POST", PODS, pod("tol", tolerate=True))
        self.sim.ok("POST", PODS, pod("notol"))
        self.sim.ok("POST", PODS, pod("sel", tolerate=True, nodeSelector={"zone": "b"}))
        wait_until(lambda: self.sim.ok("GET", PODS + "/tol")["spec"].get("nodeName"),
                   what="binding")
        self.assertEqual(self.sim.ok("GET", PODS + "/tol")["spec"]["nodeName"], "tainted")
        p = wait_until(lambda: (lambda o: o if o.get("status", {}).get("conditions") else None)(
            self.sim.ok("GET", PODS + "/notol")), what="unschedulable condition")
        self.assertNotIn("nodeName", p["spec"])
        cond = p["status"]["conditions"][0]
        self.assertEqual((cond["type"], cond["status"], cond["reason"]),
                         ("PodScheduled", "False", "Unschedulable"))
        self.assertIn("untolerated taint", cond["message"])
        self.assertNotIn("nodeName", self.sim.ok("GET", PODS + "/sel")["spec"])
        evs = self.sim.ok("GET", "/api/v1/namespaces/default/events?fieldSelector="
                          "involvedObject.name%3Dtol")
        self.assertEqual([e["reason"] for e in evs["items"]], ["Scheduled"])

    def test_binding_subresource(self):
        self.sim.ok("POST", PODS, pod("manual", schedulerName="custom"))
        code, _ = self.sim.call("POST", PODS + "/manual/binding", {
            "apiVersion": "v1", "kind": "Binding", "metadata": {"name": "manual"},
            "target": {"kind": "Node", "name": "x1"}})
        self.assertEqual(code, 201)
        self.assertEqual(self.sim.ok("GET", PODS + "/manual")["spec"]["nodeName"], "x1")
        code, obj = self.sim.call("POST", PODS + "/manual/binding", {
            "apiVersion": "v1", "kind": "Binding", "metadata": {"name": "manual"},
            "target": {"kind": "Node", "name": "x2"}})
        self.assertEqual(code, 409)


class EventsTest(SimTest):
    def test_core_and_events_k8s_io_share_storage(self):
        ev = {"apiVersion": "v1", "kind": "Event", "metadata": {"name": "p.1"},
              "involvedObject": {"kind": "Pod", "name": "p", "namespace": "default", "uid": "u1"},
              "reason": "Started", "message": "hello", "type": "Normal",
              "source": {"component": "vk"}, "count": 1}
        self.sim.ok("POST", "/api/v1/namespaces/default/events", ev)
        v1 = self.sim.ok("GET", "/apis/events.k8s.io/v1/namespaces/default/events/p.1")
        self.assertEqual(v1["regarding"]["name"], "p")
        self.assertEqual(v1["note"], "hello")
        self.assertEqual(v1["deprecatedCount"], 1)
        patched = self.sim.ok("PATCH", "/api/v1/namespaces/default/events/p.1",
                              {"count": 2, "lastTimestamp": "2025-01-01T00:00:00Z"},
                              "application/strategic-merge-patch+json")
        self.assertEqual(patched["count"], 2)
        lst = self.sim.ok("GET", "/api/v1/namespaces/default/events?fieldSelector="
                          "involvedObject.name%3Dp,involvedObject.namespace%3Ddefault,"
                          "involvedObject.uid%3Du1")
        self.assertEqual(len(lst["items"]), 1)
        lst = self.sim.ok("GET", "/api/v1/namespaces/default/events?fieldSelector="
                          "involvedObject.uid%3Dother")
        self.assertEqual(lst["items"], [])


# --- peers: a fake kubelet and an admission webhook over TLS ---------------------------------

class _Peer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, handler):
        super().__init__(("127.0.0.1", 0), handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(*_CERT)
        self.socket = ctx.wrap_socket(self.socket, server_side=True)
        self.calls = []
        self.answer = None
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def port(self):
        return self.server_address[1]

    def stop(self):
        self.shutdown()
        self.server_close()


class _KubeletHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.server.calls.append(self.path)
        if self.path.endswith("/missing"):
            body = b"container not found (\"missing\")"
            self.send_response(404)
        else:
            body = b"line one\nline two\n"
            self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        self.server.calls.append((self.path, self.headers.get_all("X-Stream-Protocol-Version")))
        self.send_response(101)
        self.send_header("Connection", "Upgrade")
        self.send_header("Upgrade", "SPDY/3.1")
        self.send_header("X-Stream-Protocol-Version", "v4.channel.k8s.io")
        self.end_headers()
        self.wfile.flush()
        data = self.rfile.read(5)
        self.wfile.write(b"echo:" + data)
        self.wfile.flush()
        self.close_connection = True


class KubeletProxyTest(SimTest):
    def test_logs_are_proxied_to_the_node(self):
        kubelet = _Peer(_KubeletHandler)
        self.sim.ok("POST", "/api/v1/nodes", node("kn", port=kubelet.port, taint=False))
        self.sim.ok("POST", PODS, pod("lg", node="kn"))
        code, data, _ = self.sim.call("GET", PODS + "/lg/log?tailLines=5&follow=true", raw=True)
        self.assertEqual((code, data), (200, b"line one\nline two\n"))
        self.assertEqual(kubelet.calls[-1], "/containerLogs/default/lg/c1?follow=true&tailLines=5")
        code, obj = self.sim.call("GET", PODS + "/lg/log?container=nope")
        self.assertEqual(code, 400)
        self.assertEqual(obj["message"], "container nope is not valid for pod lg")
        p = pod("lg2", node="kn")
        p["spec"]["containers"].append({"name": "missing", "image": "x:1"})
        self.sim.ok("POST", PODS, p)
        code, obj = self.sim.call("GET", PODS + "/lg2/log")
        self.assertEqual(code, 400)
        self.assertIn("a container name must be specified for pod lg2, choose one of: "
                      "[c1 missing]", obj["message"])
        code, obj = self.sim.call("GET", PODS + "/lg2/log?container=missing")
        self.assertEqual(code, 404)
        self.assertEqual(obj["message"], 'container not found ("missing")')
        kubelet.stop()
        code, obj = self.sim.call("GET", PODS + "/lg/log")
        self.assertEqual(code, 500)
        self.assertIn("dial tcp", obj["message"])

    def test_exec_upgrade_is_relayed(self):
        kubelet = _Peer(_KubeletHandler)
        self.sim.ok("POST", "/api/v1/nodes", node("kx", port=kubelet.port, taint=False))
        self.sim.ok("POST", PODS, pod("ex", node="kx"))
        c = self.sim.conn()
        c.putrequest("POST", PODS + "/ex/exec?command=ls&command=-l&stdin=true&stdout=true")
        for k, v in (("Authorization", "Bearer " + TOKEN), ("Connection", "Upgrade"),
                     ("Upgrade", "SPDY/3.1"), ("X-Stream-Protocol-Version", "v4.channel.k8s.io"),
                     ("X-Stream-Protocol-Version", "v3.channel.k8s.io"),
                     ("Content-Length", "0")):
            c.putheader(k, v)
        c.endheaders()
        sock = c.sock
        head = b""
        while b"\r\n\r\n" not in head:
            head += sock.recv(4096)
        self.assertTrue(head.startswith(b"HTTP/1.1 101"), head)
        self.assertIn(b"X-Stream-Protocol-Version: v4.channel.k8s.io", head)
        sock.sendall(b"hello")
        got = head.split(b"\r\n\r\n", 1)[1]
        while len(got) < 10:
            data = sock.recv(100)
            if not data:
                break
            got += data
        self.assertEqual(got, b"echo:hello")
        c.close()
        path, versions = kubelet.calls[-1]
        self.assertEqual(path, "/exec/default/ex/c1?command=ls&command=-l&input=1&output=1")
        self.assertEqual(versions, ["v4.channel.k8s.io", "v3.channel.k8s.io"])
        code, obj = self.sim.call("GET", PODS + "/ex/exec?command=ls", headers={
            "Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
            "Sec-WebSocket-Protocol": "v5.channel.k8s.io"})
        self.assertEqual(code, 400, "WebSocket is refused so kubectl falls back to SPDY")
        kubelet.stop()


class _HookHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.calls.append((self.path, body))
        req = body["request"]
        resp = {"uid": req["uid"], "allowed": True}
        resp.update(self.server.answer(req) if self.server.answer else {})
        data = json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                           "response": resp}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def _b64(obj):
    return base64.b64encode(json.dumps(obj).encode()).decode()


class AdmissionTest(SimTest):
    @classmethod
    def setUpClass(cls):
        cls.hook = _Peer(_HookHandler)
        cls.sim_args = ("--webhook-service", "webhooks/hook=127.0.0.1:%d" % cls.hook.port)
        super().setUpClass()
        with open(_CERT[0], "rb") as f:
            cls.ca = base64.b64encode(f.read()).decode()
        cls.sim.ok("POST", "/api/v1/namespaces", {"metadata": {"name": "hooked"}})

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        cls.hook.stop()

    def tearDown(self):
        for kind in ("mutating", "validating"):
            base = "/apis/admissionregistration.k8s.io/v1/%swebhookconfigurations" % kind
            for item in self.sim.ok("GET", base)["items"]:
                self.sim.ok("DELETE", base + "/" + item["metadata"]["name"])
        self.hook.calls.clear()
        self.hook.answer = None

    def config(self, kind, name, rules, use_service=False, **extra):
        client = {"caBundle": self.ca}
        if use_service:
            client["service"] = {"namespace": "webhooks", "name": "hook", "path": "/" + name}
        else:
            client["url"] = "https://127.0.0.1:%d/%s" % (self.hook.port, name)
        wh = {"name": name + ".example.com", "clientConfig": client, "rules": rules,
              "sideEffects": "None", "admissionReviewVersions": ["v1"],
              "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "hooked"}}}
        wh.update(extra)
        self.sim.ok("POST", "/apis/admissionregistration.k8s.io/v1/%swebhookconfigurations"
                    % kind, {"metadata": {"name": name}, "webhooks": [wh]})

    def test_mutating_then_validating_with_patch_and_no_generated_name(self):
        rule = [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"],
                 "resources": ["configmaps"]}]
        self.config("mutating", "mut", rule, use_service=True, timeoutSeconds=7)
        self.config("validating", "val", rule)

        def answer(req):
            if req["object"]["metadata"].get("labels", {}).get("mutated"):
                return {}
            return {"patchType": "JSONPatch", "patch": _b64([
                {"op": "add", "path": "/metadata/labels", "value": {"mutated": "yes"}}]),
                "warnings": ["be careful"]}
        self.hook.answer = answer
        code, obj, r = self.sim.call("POST", "/api/v1/namespaces/hooked/configmaps",
                                     {"metadata": {"generateName": "g-"}}, raw=True)
        self.assertEqual(code, 201)
        obj = json.loads(obj)
        self.assertEqual(obj["metadata"]["labels"], {"mutated": "yes"})
        self.assertIn("be careful", r.getheader("Warning") or "")
        (mpath, mbody), (vpath, vbody) = self.hook.calls
        self.assertEqual((mpath, vpath), ("/mut?timeout=7s", "/val?timeout=10s"))
        mreq = mbody["request"]
        self.assertNotIn("name", mreq, "mutating sees no generated name on CREATE")
        self.assertNotIn("uid", mreq["object"]["metadata"])
        self.assertEqual(mreq["operation"], "CREATE")
        self.assertEqual(mreq["kind"], {"group": "", "version": "v1", "kind": "ConfigMap"})
        self.assertEqual(mreq["namespace"], "hooked")
        vreq = vbody["request"]
        self.assertEqual(vreq["object"]["metadata"]["labels"], {"mutated": "yes"})
        self.assertEqual(vreq["name"], obj["metadata"]["name"])
        self.hook.calls.clear()
        self.sim.ok("POST", CMS, cm("unhooked"))
        self.assertEqual(self.hook.calls, [], "namespaceSelector must exclude default")

    def test_denial_has_400_floor_and_message(self):
        rule = [{"operations": ["*"], "apiGroups": [""], "apiVersions": ["v1"],
                 "resources": ["configmaps"]}]
        self.config("validating", "deny", rule)
        self.hook.answer = lambda req: {"allowed": False, "status": {
            "reason": "Forbidden", "message": "not today"}}
        code, obj = self.sim.call("POST", "/api/v1/namespaces/hooked/configmaps", cm("no"))
        self.assertEqual(code, 400)
        self.assertEqual(obj["reason"], "Forbidden")
        self.assertEqual(obj["message"], 'admission webhook "deny.example.com" denied the '
                                         "request: not today")
        self.hook.answer = lambda req: {"allowed": False, "status": {"code": 403}}
        code, obj = self.sim.call("POST", "/api/v1/namespaces/hooked/configmaps", cm("no"))
        self.assertEqual(code, 403)
        self.assertEqual(obj["message"], 'admission webhook "deny.example.com" denied the '
                                         "request without explanation")

    def test_failure_policy(self):
        rule = [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"],
                 "resources": ["configmaps"]}]
        self.config("mutating", "bad", rule)
        self.hook.answer = lambda req: {"uid": "not-the-uid"}
        code, obj = self.sim.call("POST", "/api/v1/namespaces/hooked/configmaps", cm("f1"))
        self.assertEqual(code, 500)
        self.assertStatus(obj, 500, "InternalError")
        self.assertIn('failed calling webhook "bad.example.com": expected response.uid=',
                      obj["message"])
        self.hook.answer = lambda req: {"patch": _b64([])}
        code, obj = self.sim.call("POST", "/api/v1/namespaces/hooked/configmaps", cm("f2"))
        self.assertEqual(code, 500, "a patch without patchType is a webhook failure")
        self.tearDown()
        dead = {"url": "https://127.0.0.1:1/x", "caBundle": self.ca}
        self.config("mutating", "dead", rule, failurePolicy="Ignore", clientConfig=dead)
        code, _ = self.sim.call("POST", "/api/v1/namespaces/hooked/configmaps", cm("f3"))
        self.assertEqual(code, 201, "Ignore lets the request through")

    def test_scale_update_and_delete_reviews(self):
        self.config("validating", "scale", [
            {"operations": ["UPDATE", "DELETE"], "apiGroups": ["apps"], "apiVersions": ["v1"],
             "resources": ["deployments/scale", "deployments"]}])
        dep = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "sd"},
               "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {
                   "metadata": {"labels": {"a": "b"}},
                   "spec": {"containers": [{"name": "c", "image": "x:1"}]}}}}
        base = "/apis/apps/v1/namespaces/hooked/deployments"
        self.sim.ok("POST", base, dep)
        self.sim.ok("PATCH", base + "/sd/scale", {"spec": {"replicas": 4}},
                    "application/merge-patch+json")
        req = self.hook.calls[-1][1]["request"]
        self.assertEqual(req["kind"], {"group": "autoscaling", "version": "v1", "kind": "Scale"})
        self.assertEqual(req["resource"], {"group": "apps", "version": "v1",
                                           "resource": "deployments"})
        self.assertEqual(req["subResource"], "scale")
        self.assertEqual((req["object"]["kind"], req["oldObject"]["kind"]), ("Scale", "Scale"))
        self.assertEqual((req["object"]["spec"]["replicas"], req["oldObject"]["spec"]["replicas"]),
                         (4, 1))
        self.sim.ok("DELETE", base + "/sd")
        req = self.hook.calls[-1][1]["request"]
        self.assertEqual(req["operation"], "DELETE")
        self.assertIsNone(req["object"])
        self.assertEqual(req["oldObject"]["metadata"]["name"], "sd")
        self.assertEqual(req["options"]["kind"], "DeleteOptions")


class LifecycleTest(unittest.TestCase):
    def test_tls_kubeconfig_and_sigterm(self):
        t0 = time.monotonic()
        sim = Sim(tls=True)
        self.assertLess(time.monotonic() - t0, 3)
        with open(sim.kubeconfig) as f:
            text = f.read()
        self.assertIn("server: https://127.0.0.1:%d" % sim.port, text)
        self.assertIn("token: " + TOKEN, text)
        ca = base64.b64decode(text.split("certificate-authority-data: ")[1].split()[0])
        ctx = ssl.create_default_context(cadata=ca.decode())
        with socket.create_connection(("127.0.0.1", sim.port)) as raw:
            with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
                s.sendall(b"GET /version HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                self.assertTrue(s.recv(100).startswith(b"HTTP/1.1 200"))
        cm_ = sim.ok("GET", "/api/v1/namespaces/default/configmaps/kube-root-ca.crt")
        self.assertEqual(cm_["data"]["ca.crt"].encode(), ca)
        sim.proc.send_signal(signal.SIGTERM)
        self.assertEqual(sim.proc.wait(5), 0)
        sim.stop()

    def test_bad_arguments_are_reported(self):
        res = subprocess.run([sys.executable, KUBESIM, "--listen", "nope", "--kubeconfig",
                              os.path.join(_TMP, "x")], capture_output=True, text=True)
        self.assertEqual(res.returncode, 2)
        self.assertIn("--listen: expected HOST:PORT", res.stderr)


if __name__ == "__main__":
    unittest.main()
