"""The controllers a test cluster needs around the apiserver (kube-api.md §1.8, §5.1):
a mini-scheduler binding pending pods to Ready nodes whose taints they tolerate and whose
labels match nodeSelector / required node affinity; and a cleanup loop doing the work of
the namespace controller, the CRD finalizer and the garbage collector (background,
foreground and orphan propagation), all asynchronous like the real ones.

Owns one thread per controller; both write through writes.Writer with admission off.
"""

import threading
import time

import apierrors as E
from writes import CRD_CLEANUP, CRD_STORAGE, NS_STORAGE, Ctx, now

PODS = ("", "pods")
NODES = ("", "nodes")


def _tolerates(tolerations, taint):
    for t in tolerations or []:
        if t.get("effect") and t["effect"] != taint.get("effect"):
            continue
        if t.get("operator", "Equal") == "Exists":
            if not t.get("key") or t["key"] == taint.get("key"):
                return True
        elif t.get("key") == taint.get("key") and (t.get("value") or "") == \
                (taint.get("value") or ""):
            return True
    return False


def _expr_ok(expr, labels):
    key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
    have = labels.get(key)
    if op == "In":
        return have in values
    if op == "NotIn":
        return have not in values
    if op == "Exists":
        return key in labels
    if op == "DoesNotExist":
        return key not in labels
    if op in ("Gt", "Lt") and have is not None and values:
        try:
            return int(have) > int(values[0]) if op == "Gt" else int(have) < int(values[0])
        except ValueError:
            return False
    return False


def _affinity_ok(spec, node):
    labels = node["metadata"].get("labels") or {}
    if any(labels.get(k) != v for k, v in (spec.get("nodeSelector") or {}).items()):
        return False
    req = (((spec.get("affinity") or {}).get("nodeAffinity") or {})
           .get("requiredDuringSchedulingIgnoredDuringExecution") or {})
    terms = req.get("nodeSelectorTerms")
    if not terms:
        return True
    fields = {"metadata.name": node["metadata"]["name"]}
    for term in terms:
        if all(_expr_ok(e, labels) for e in term.get("matchExpressions") or []) and \
                all(_expr_ok(e, fields) for e in term.get("matchFields") or []):
            return True
    return False


def _ready(node):
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (node.get("status") or {}).get("conditions") or [])


def _unfit_reason(pod, node):
    """None if the pod may run on the node, else the scheduler's reason text."""
    spec = pod.get("spec") or {}
    if not _ready(node):
        return "node(s) were not ready"
    taints = list((node.get("spec") or {}).get("taints") or [])
    if (node.get("spec") or {}).get("unschedulable"):
        taints.append({"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"})
    for taint in taints:
        if taint.get("effect") in ("NoSchedule", "NoExecute") and \
                not _tolerates(spec.get("tolerations"), taint):
            return "node(s) had untolerated taint {%s: %s}" % (taint.get("key"),
                                                              taint.get("value", ""))
    if not _affinity_ok(spec, node):
        return "node(s) didn't match Pod's node affinity/selector"
    return None


class _Loop(threading.Thread):
    def __init__(self, api, interval):
        super().__init__(daemon=True)
        self.api = api
        self.store = api.store
        self.writer = api.writer
        self.registry = api.registry
        self.log = api.log
        self.interval = interval
        self.wake = threading.Event()
        self.store.wakers.append(self.wake)

    def run(self):
        while True:
            self.wake.wait(self.interval)
            self.wake.clear()
            time.sleep(0.02)  # let a burst of writes land before scanning
            try:
                self.step()
            except Exception:  # noqa: BLE001 - a controller must survive any one bad object
                self.log.exception("%s step failed, retrying", type(self).__name__)

    def event(self, obj, reason, message, etype="Normal", component="default-scheduler"):
        meta = obj["metadata"]
        stamp = now()
        body = {"metadata": {"name": "%s.%x" % (meta["name"], time.time_ns())},
                "involvedObject": {"kind": obj.get("kind", "Pod"), "namespace": meta.get(
                    "namespace", ""), "name": meta["name"], "uid": meta.get("uid"),
                    "apiVersion": "v1", "resourceVersion": meta.get("resourceVersion")},
                "reason": reason, "message": message, "type": etype,
                "source": {"component": component}, "firstTimestamp": stamp,
                "lastTimestamp": stamp, "count": 1, "reportingComponent": component,
                "reportingInstance": ""}
        try:
            self.writer.create(self.registry.lookup("", "v1", "events"),
                               meta.get("namespace") or "default", body, Ctx(admit=False))
        except E.ApiError as e:
            self.log.debug("event %s for %s not recorded: %s", reason, meta["name"], e)


class Scheduler(_Loop):
    def __init__(self, api):
        super().__init__(api, 1.0)
        self.reported = {}

    def step(self):
        pods, _ = self.store.list(PODS)
        live = {p["metadata"]["uid"] for p in pods}
        self.reported = {u: m for u, m in self.reported.items() if u in live}
        pending = [p for p in pods if self._wants_node(p)]
        if not pending:
            return
        nodes, _ = self.store.list(NODES)
        load = {}
        for p in pods:
            n = (p.get("spec") or {}).get("nodeName")
            if n:
                load[n] = load.get(n, 0) + 1
        for pod in pending:
            reasons = {}
            fit = []
            for node in nodes:
                why = _unfit_reason(pod, node)
                if why is None:
                    fit.append(node)
                else:
                    reasons[why] = reasons.get(why, 0) + 1
            if fit:
                node = min(fit, key=lambda n: (load.get(n["metadata"]["name"], 0),
                                               n["metadata"]["name"]))["metadata"]["name"]
                self._bind(pod, node)
                load[node] = load.get(node, 0) + 1
            else:
                self._unschedulable(pod, len(nodes), reasons)

    @staticmethod
    def _wants_node(pod):
        spec, meta = pod.get("spec") or {}, pod["metadata"]
        return not spec.get("nodeName") and not meta.get("deletionTimestamp") and \
            spec.get("schedulerName", "default-scheduler") == "default-scheduler" and \
            not spec.get("schedulingGates") and \
            (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed")

    def _bind(self, pod, node):
        meta = pod["metadata"]
        try:
            bound = self.writer.bind(self.registry.lookup("", "v1", "pods"), meta["namespace"],
                                     meta["name"], node, Ctx(admit=False))
        except E.ApiError as e:
            self.log.debug("binding %s/%s failed: %s", meta["namespace"], meta["name"], e)
            return
        self.reported.pop(meta["uid"], None)
        self.event(bound, "Scheduled", "Successfully assigned %s/%s to %s"
                   % (meta["namespace"], meta["name"], node))

    def _unschedulable(self, pod, total, reasons):
        detail = ", ".join("%d %s" % (n, why) for why, n in sorted(reasons.items()))
        msg = "0/%d nodes are available%s." % (total, ": " + detail if detail else "")
        meta = pod["metadata"]
        if self.reported.get(meta["uid"]) == msg:
            return
        self.reported[meta["uid"]] = msg

        def mark(obj):
            conds = obj.setdefault("status", {}).setdefault("conditions", [])
            conds[:] = [c for c in conds if c.get("type") != "PodScheduled"]
            conds.append({"type": "PodScheduled", "status": "False", "lastProbeTime": None,
                          "lastTransitionTime": now(), "reason": "Unschedulable",
                          "message": msg})
        self.writer.mutate(self.registry.lookup("", "v1", "pods"), meta["namespace"],
                           meta["name"], mark, sub="status")
        self.event(pod, "FailedScheduling", msg, "Warning")


class Cleanup(_Loop):
    """Namespace termination, CRD instance cleanup and garbage collection."""

    def __init__(self, api, gc=True):
        super().__init__(api, 2.0)
        self.gc = gc

    def _type_for(self, storage):
        types = [t for t in self.registry.by_storage(storage) if t.to_external is None]
        return types[0] if types else None

    def _delete(self, rtype, obj, policy="Background"):
        meta = obj["metadata"]
        try:
            self.writer.delete(rtype, meta.get("namespace", ""), meta["name"],
                               {"propagationPolicy": policy}, Ctx(admit=False))
        except E.ApiError as e:
            if e.code != 404:
                self.log.debug("cleanup delete of %s failed: %s", meta["name"], e)

    def _drop_finalizer(self, rtype, obj, finalizer):
        def edit(o):
            fins = o["metadata"].get("finalizers") or []
            if finalizer not in fins:
                return False
            o["metadata"]["finalizers"] = [f for f in fins if f != finalizer]
            return None
        self.writer.mutate(rtype, obj["metadata"].get("namespace", ""), obj["metadata"]["name"],
                           edit)

    def step(self):
        with self.store.lock:
            storages = list(self.store.data)
        for ns in self.store.list(NS_STORAGE)[0]:
            if ns["metadata"].get("deletionTimestamp"):
                self._finish_namespace(ns, storages)
        for crd in self.store.list(CRD_STORAGE)[0]:
            if crd["metadata"].get("deletionTimestamp"):
                self._finish_crd(crd)
        if self.gc:
            self._collect(storages)

    def _finish_namespace(self, ns, storages):
        name = ns["metadata"]["name"]
        left = 0
        for storage in storages:
            rtype = self._type_for(storage)
            if rtype is None or not rtype.namespaced:
                continue
            objs, _ = self.store.list(storage, name)
            left += len(objs)
            for obj in objs:
                if not obj["metadata"].get("deletionTimestamp"):
                    self._delete(rtype, obj)
        if left:
            return
        nstype = self.registry.lookup("", "v1", "namespaces")

        def finalize(o):
            fins = (o.get("spec") or {}).get("finalizers") or []
            if "kubernetes" not in fins:
                return False
            o["spec"]["finalizers"] = [f for f in fins if f != "kubernetes"]
            return None
        self.writer.mutate(nstype, "", name, finalize, sub="finalize")

    def _finish_crd(self, crd):
        spec = crd.get("spec") or {}
        storage = (spec.get("group"), (spec.get("names") or {}).get("plural"))
        objs, _ = self.store.list(storage)
        rtype = self._type_for(storage)
        for obj in objs:
            if rtype is not None and not obj["metadata"].get("deletionTimestamp"):
                self._delete(rtype, obj)
        if not objs:
            self._drop_finalizer(self.registry.lookup("apiextensions.k8s.io", "v1",
                                                      "customresourcedefinitions"),
                                 crd, CRD_CLEANUP)

    def _collect(self, storages):
        everything = []
        for storage in storages:
            rtype = self._type_for(storage)
            if rtype is not None:
                everything.extend((rtype, o) for o in self.store.list(storage)[0])
        dependents = {}
        for rtype, obj in everything:
            for ref in obj["metadata"].get("ownerReferences") or []:
                dependents.setdefault(ref.get("uid"), []).append((rtype, obj, ref))
        for rtype, obj in everything:
            meta = obj["metadata"]
            fins = meta.get("finalizers") or []
            if meta.get("deletionTimestamp") and "orphan" in fins:
                self._orphan(rtype, obj, dependents.get(meta.get("uid"), []))
            elif meta.get("deletionTimestamp") and "foregroundDeletion" in fins:
                self._foreground(rtype, obj, dependents.get(meta.get("uid"), []))
        for rtype, obj in everything:
            if not obj["metadata"].get("ownerReferences"):
                continue
            cur = self.store.get(rtype.storage, obj["metadata"].get("namespace", ""),
                                 obj["metadata"]["name"])
            refs = (cur or {}).get("metadata", {}).get("ownerReferences") or []
            if refs and not cur["metadata"].get("deletionTimestamp") and \
                    all(self.store.by_uid(r.get("uid")) is None for r in refs):
                self._delete(rtype, cur)

    def _orphan(self, rtype, owner, deps):
        uid = owner["metadata"]["uid"]
        for drtype, dep, _ in deps:
            def strip(o):
                refs = o["metadata"].get("ownerReferences") or []
                o["metadata"]["ownerReferences"] = [r for r in refs if r.get("uid") != uid]
                if not o["metadata"]["ownerReferences"]:
                    del o["metadata"]["ownerReferences"]
                return None
            self.writer.mutate(drtype, dep["metadata"].get("namespace", ""),
                               dep["metadata"]["name"], strip)
        self._drop_finalizer(rtype, owner, "orphan")

    def _foreground(self, rtype, owner, deps):
        blocking = 0
        for drtype, dep, ref in deps:
            if not dep["metadata"].get("deletionTimestamp"):
                self._delete(drtype, dep, "Foreground")
            if ref.get("blockOwnerDeletion"):
                blocking += 1
        if not blocking:
            self._drop_finalizer(rtype, owner, "foregroundDeletion")
