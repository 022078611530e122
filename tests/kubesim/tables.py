"""meta.k8s.io/v1 Table rendering (kube-api.md §2.5) so `kubectl get` prints the columns a
real cluster prints; custom resources use their CRD's additionalPrinterColumns.

Owns no state.
"""

import datetime
import json

from selection import format_label_selector


def parse_time(text):
    try:
        return datetime.datetime.strptime(text[:19], "%Y-%m-%dT%H:%M:%S").replace(
            tzinfo=datetime.timezone.utc)
    except (TypeError, ValueError):
        return None


def human_duration(seconds):
    """kubectl's short age format: 45s, 3m12s, 5h, 12d, 2y30d."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return "%ds" % s
    minutes = s // 60
    if minutes < 10:
        return "%dm%ds" % (minutes, s % 60) if s % 60 else "%dm" % minutes
    if minutes < 180:
        return "%dm" % minutes
    hours = s // 3600
    if hours < 8:
        return "%dh%dm" % (hours, minutes % 60) if minutes % 60 else "%dh" % hours
    if hours < 48:
        return "%dh" % hours
    if hours < 24 * 8:
        return "%dd%dh" % (hours // 24, hours % 24) if hours % 24 else "%dd" % (hours // 24)
    if hours < 24 * 365 * 2:
        return "%dd" % (hours // 24)
    if hours < 24 * 365 * 8:
        days = (hours // 24) % 365
        return "%dy%dd" % (hours // 24 // 365, days) if days else "%dy" % (hours // 24 // 365)
    return "%dy" % (hours // 24 // 365)


def age(ts):
    t = parse_time(ts)
    if t is None:
        return "<unknown>"
    return human_duration((datetime.datetime.now(datetime.timezone.utc) - t).total_seconds())


def _col(name, ctype="string", fmt="", priority=0, desc=""):
    return {"name": name, "type": ctype, "format": fmt, "description": desc, "priority": priority}


NAME = _col("Name", fmt="name", desc="Name must be unique within a namespace.")
AGE = _col("Age", desc="CreationTimestamp is a timestamp representing the server time when "
           "this object was created.")


def _meta(o):
    return o.get("metadata") or {}


def _age(o):
    return age(_meta(o).get("creationTimestamp"))


def _pod_status(pod):
    status = pod.get("status") or {}
    reason = status.get("reason") or status.get("phase") or "Unknown"
    for cs in status.get("containerStatuses") or []:
        state = cs.get("state") or {}
        if state.get("waiting", {}).get("reason"):
            reason = state["waiting"]["reason"]
        elif state.get("terminated"):
            t = state["terminated"]
            reason = t.get("reason") or ("Signal:%s" % t["signal"] if t.get("signal")
                                         else "ExitCode:%s" % t.get("exitCode"))
    if _meta(pod).get("deletionTimestamp"):
        reason = "Terminating"
    return reason


def _pod_row(pod):
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    statuses = status.get("containerStatuses") or []
    ready = sum(1 for c in statuses if c.get("ready"))
    restarts = sum(int(c.get("restartCount") or 0) for c in statuses)
    gates = spec.get("readinessGates") or []
    return [_meta(pod).get("name"), "%d/%d" % (ready, len(spec.get("containers") or [])),
            _pod_status(pod), restarts, _age(pod), status.get("podIP") or "<none>",
            spec.get("nodeName") or "<none>", status.get("nominatedNodeName") or "<none>",
            "%d/%d" % (0, len(gates)) if gates else "<none>"]


def _node_row(node):
    status = node.get("status") or {}
    ready = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), None)
    state = "Unknown" if ready is None else ("Ready" if ready.get("status") == "True"
                                             else "NotReady")
    if (node.get("spec") or {}).get("unschedulable"):
        state += ",SchedulingDisabled"
    labels = _meta(node).get("labels") or {}
    roles = sorted(k.split("/", 1)[1] for k in labels
                   if k.startswith("node-role.kubernetes.io/") and "/" in k)
    addrs = status.get("addresses") or []
    info = status.get("nodeInfo") or {}

    def addr(kind):
        return next((a.get("address") for a in addrs if a.get("type") == kind), "<none>")
    return [_meta(node).get("name"), state, ",".join(roles) or "<none>", _age(node),
            info.get("kubeletVersion", ""), addr("InternalIP"), addr("ExternalIP"),
            info.get("osImage") or "<unknown>", info.get("kernelVersion") or "<unknown>",
            info.get("containerRuntimeVersion") or "<unknown>"]


def _event_object(ev):
    io = ev.get("involvedObject") or {}
    return "%s/%s" % ((io.get("kind") or "").lower(), io.get("name", ""))


def _event_row(ev):
    last = ev.get("lastTimestamp") or ev.get("eventTime") or _meta(ev).get("creationTimestamp")
    first = ev.get("firstTimestamp") or ev.get("eventTime")
    src = ev.get("source") or {}
    return [age(last) if last else "<unknown>", ev.get("type", ""), ev.get("reason", ""),
            _event_object(ev), (ev.get("involvedObject") or {}).get("fieldPath", ""),
            src.get("component") or ev.get("reportingComponent", ""), ev.get("message", ""),
            age(first) if first else "<unknown>", ev.get("count") or 1, _meta(ev).get("name")]


def _containers_images(spec):
    cs = (spec.get("template") or {}).get("spec", {}).get("containers") or []
    return ",".join(c.get("name", "") for c in cs), ",".join(c.get("image", "") for c in cs)


def _workload_row(kind):
    def row(o):
        spec, status = o.get("spec") or {}, o.get("status") or {}
        names, images = _containers_images(spec)
        sel = format_label_selector(spec.get("selector") or {}) or "<none>"
        want = spec.get("replicas", 1)
        ready = status.get("readyReplicas", 0)
        if kind == "Deployment":
            return [_meta(o).get("name"), "%d/%d" % (ready, want), status.get("updatedReplicas", 0),
                    status.get("availableReplicas", 0), _age(o), names, images, sel]
        if kind == "StatefulSet":
            return [_meta(o).get("name"), "%d/%d" % (ready, want), _age(o), names, images]
        if kind == "ReplicaSet":
            return [_meta(o).get("name"), want, status.get("replicas", 0), ready, _age(o),
                    names, images, sel]
        return [_meta(o).get("name"), status.get("desiredNumberScheduled", 0),
                status.get("currentNumberScheduled", 0), status.get("numberReady", 0),
                status.get("updatedNumberScheduled", 0), status.get("numberAvailable", 0),
                ",".join("%s=%s" % kv for kv in sorted(((o.get("spec") or {}).get("template", {})
                         .get("spec", {}).get("nodeSelector") or {}).items())) or "<none>",
                _age(o), names, images, sel]
    return row


def _svc_row(svc):
    spec = svc.get("spec") or {}
    ports = ",".join("%s/%s" % (p.get("port"), p.get("protocol", "TCP"))
                     for p in spec.get("ports") or [])
    ext = ",".join(spec.get("externalIPs") or []) or "<none>"
    return [_meta(svc).get("name"), spec.get("type", "ClusterIP"), spec.get("clusterIP") or
            "<none>", ext, ports or "<none>", _age(svc),
            format_label_selector({"matchLabels": spec.get("selector") or {}}) or "<none>"]


_WORKLOAD_COLS = {
    "Deployment": [NAME, _col("Ready"), _col("Up-to-date", "integer"),
                   _col("Available", "integer"), AGE, _col("Containers", priority=1),
                   _col("Images", priority=1), _col("Selector", priority=1)],
    "StatefulSet": [NAME, _col("Ready"), AGE, _col("Containers", priority=1),
                    _col("Images", priority=1)],
    "ReplicaSet": [NAME, _col("Desired", "integer"), _col("Current", "integer"),
                   _col("Ready", "integer"), AGE, _col("Containers", priority=1),
                   _col("Images", priority=1), _col("Selector", priority=1)],
    "DaemonSet": [NAME, _col("Desired", "integer"), _col("Current", "integer"),
                  _col("Ready", "integer"), _col("Up-to-date", "integer"),
                  _col("Available", "integer"), _col("Node Selector"), AGE,
                  _col("Containers", priority=1), _col("Images", priority=1),
                  _col("Selector", priority=1)],
}

_BUILTIN = {
    "Pod": ([NAME, _col("Ready"), _col("Status"), _col("Restarts", "string"), AGE,
             _col("IP", priority=1), _col("Node", priority=1),
             _col("Nominated Node", priority=1), _col("Readiness Gates", priority=1)], _pod_row),
    "Node": ([NAME, _col("Status"), _col("Roles"), AGE, _col("Version"),
              _col("Internal-IP", priority=1), _col("External-IP", priority=1),
              _col("OS-Image", priority=1), _col("Kernel-Version", priority=1),
              _col("Container-Runtime", priority=1)], _node_row),
    "Namespace": ([NAME, _col("Status"), AGE],
                  lambda o: [_meta(o).get("name"), (o.get("status") or {}).get("phase", ""),
                             _age(o)]),
    "ConfigMap": ([NAME, _col("Data", "integer"), AGE],
                  lambda o: [_meta(o).get("name"), len(o.get("data") or {}) +
                             len(o.get("binaryData") or {}), _age(o)]),
    "Secret": ([NAME, _col("Type"), _col("Data", "integer"), AGE],
               lambda o: [_meta(o).get("name"), o.get("type", ""), len(o.get("data") or {}),
                          _age(o)]),
    "ServiceAccount": ([NAME, _col("Secrets", "integer"), AGE],
                       lambda o: [_meta(o).get("name"), len(o.get("secrets") or []), _age(o)]),
    "Event": ([_col("Last Seen"), _col("Type"), _col("Reason"), _col("Object"),
               _col("Subobject", priority=1), _col("Source", priority=1), _col("Message"),
               _col("First Seen", priority=1), _col("Count", "integer", priority=1),
               _col("Name", priority=1)], _event_row),
    "Service": ([NAME, _col("Type"), _col("Cluster-IP"), _col("External-IP"),
                 _col("Port(s)"), AGE, _col("Selector", priority=1)], _svc_row),
    "Lease": ([NAME, _col("Holder"), AGE],
              lambda o: [_meta(o).get("name"), (o.get("spec") or {}).get("holderIdentity", ""),
                         _age(o)]),
    "MutatingWebhookConfiguration": ([NAME, _col("Webhooks", "integer"), AGE],
                                     lambda o: [_meta(o).get("name"),
                                                len(o.get("webhooks") or []), _age(o)]),
}
_BUILTIN["ValidatingWebhookConfiguration"] = _BUILTIN["MutatingWebhookConfiguration"]
for _kind, _cols in _WORKLOAD_COLS.items():
    _BUILTIN[_kind] = (_cols, _workload_row(_kind))


def _json_path(obj, path):
    """Evaluate the simple JSONPath subset printer columns use: .a.b, .a[0].b,
    .a[?(@.type=="Ready")].status."""
    cur = [obj]
    path = path.strip()
    if path.startswith("{") and path.endswith("}"):
        path = path[1:-1]
    i = 0
    while i < len(path) and cur:
        if path[i] == ".":
            j = i + 1
            while j < len(path) and path[j] not in ".[":
                j += 1
            field = path[i + 1:j]
            cur = [c.get(field) for c in cur if isinstance(c, dict) and field in c]
            i = j
        elif path[i] == "[":
            j = path.index("]", i)
            inner = path[i + 1:j]
            nxt = []
            if inner.startswith("?(@.") and "==" in inner:
                fld, want = inner[4:-1].split("==", 1)
                want = want.strip().strip("'\"")
                for c in cur:
                    for item in c if isinstance(c, list) else []:
                        if isinstance(item, dict) and str(item.get(fld.strip())) == want:
                            nxt.append(item)
            elif inner == "*":
                for c in cur:
                    nxt.extend(c if isinstance(c, list) else [])
            else:
                for c in cur:
                    if isinstance(c, list) and inner.lstrip("-").isdigit() and \
                            -len(c) <= int(inner) < len(c):
                        nxt.append(c[int(inner)])
            cur = nxt
            i = j + 1
        else:
            break
    return cur


def _cell(value, ctype):
    if value is None:
        return None
    if ctype == "date":
        return age(value) if isinstance(value, str) else value
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"))
    return value


def _crd_columns(columns):
    cols = [NAME]
    for c in columns:
        cols.append(_col(c.get("name", ""), c.get("type", "string"), c.get("format", ""),
                         c.get("priority", 0), c.get("description", "")))

    def row(o):
        cells = [_meta(o).get("name")]
        for c in columns:
            found = _json_path(o, c.get("jsonPath", ""))
            value = found[0] if len(found) == 1 else (found or None)
            cells.append(_cell(value, c.get("type", "string")))
        return cells
    return cols, row


def columns_for(rtype):
    if rtype.printer_columns:
        return _crd_columns(rtype.printer_columns)
    if rtype.builtin and rtype.kind in _BUILTIN:
        return _BUILTIN[rtype.kind]
    if rtype.builtin:
        return ([NAME, _col("Created At", "date")],
                lambda o: [_meta(o).get("name"), _meta(o).get("creationTimestamp")])
    return [NAME, AGE], lambda o: [_meta(o).get("name"), _age(o)]


def partial_metadata(obj):
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
            "metadata": obj.get("metadata") or {}}


def table(rtype, pairs, rv, include="Metadata", headers=True, meta_extra=None):
    """pairs: (stored object, client view); cells come from the stored (internal) form,
    as the real printers run on internal types, row objects from the view."""
    cols, row = columns_for(rtype)
    rows = []
    for internal, view in pairs:
        r = {"cells": row(internal)}
        if include == "Object":
            r["object"] = view
        elif include != "None":
            r["object"] = partial_metadata(view)
        rows.append(r)
    meta = {"resourceVersion": str(rv)}
    meta.update(meta_extra or {})
    out = {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": meta,
           "columnDefinitions": cols if headers else [], "rows": rows}
    return out
