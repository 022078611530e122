"""The resource registry: every served (group, version, resource) with the per-type rules
the generic handlers consult (scope, subresources, update and status rules, defaulting,
validation, selectable fields), the built-in types, and types made from CRDs.

Owns the Registry (guarded by the store lock) and the events.k8s.io <-> core/v1 Event
conversion, since both views share one storage as in the real server.
"""

import json
import re

import defaults
import selection
from apierrors import invalid

STD_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
_SUBDOMAIN_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


class ResourceType:
    """How one served resource behaves; attributes mirror the registry strategies."""

    def __init__(self, group, version, resource, kind, namespaced=True, **kw):
        self.group = group
        self.version = version
        self.resource = resource
        self.kind = kind
        self.namespaced = namespaced
        self.singular = kw.get("singular", kind.lower())
        self.short_names = kw.get("short_names", [])
        self.categories = kw.get("categories", [])
        self.verbs = kw.get("verbs", STD_VERBS)
        # subresource name -> verbs; "status" and "scale" also change write rules
        self.subresources = kw.get("subresources", {})
        self.storage = kw.get("storage", (group, resource))
        self.builtin = kw.get("builtin", True)
        self.generation = kw.get("generation", False)
        self.unconditional_update = kw.get("unconditional_update", True)
        self.create_on_update = kw.get("create_on_update", False)
        self.status_on_create = kw.get("status_on_create", "keep")  # keep | drop
        self.graceful = kw.get("graceful", False)
        self.delete_returns_object = kw.get("delete_returns_object", False)
        self.name_rule = kw.get("name_rule", "subdomain")
        self.fields = kw.get("fields", {})  # field label -> getter(obj) -> str
        self.scale = kw.get("scale")  # (specReplicasPath, statusReplicasPath, selectorPath)
        self.crd = kw.get("crd")
        self.printer_columns = kw.get("printer_columns")
        self.to_external = kw.get("to_external")
        self.to_internal = kw.get("to_internal")

    @property
    def api_version(self):
        return self.version if not self.group else "%s/%s" % (self.group, self.version)

    def has_status(self):
        return "status" in self.subresources

    def field_labels(self):
        labels = {"metadata.name"}
        if self.namespaced:
            labels.add("metadata.namespace")
        return labels | set(self.fields)

    def field_set(self, obj):
        meta = obj.get("metadata") or {}
        out = {"metadata.name": meta.get("name", "")}
        if self.namespaced:
            out["metadata.namespace"] = meta.get("namespace", "")
        for label, getter in self.fields.items():
            out[label] = getter(obj)
        return out


def _get(obj, *path):
    cur = obj
    for p in path:
        if not isinstance(cur, dict):
            return None
        cur = cur.get(p)
    return cur


def _str(obj, *path):
    v = _get(obj, *path)
    if isinstance(v, bool):
        return "true" if v else "false"
    return "" if v is None else str(v)


def _boolstr(obj, *path):
    return "true" if _get(obj, *path) is True else "false"


def _field(*path):
    return lambda o: _str(o, *path)


POD_FIELDS = {
    "spec.nodeName": _field("spec", "nodeName"),
    "spec.restartPolicy": _field("spec", "restartPolicy"),
    "spec.schedulerName": _field("spec", "schedulerName"),
    "spec.serviceAccountName": _field("spec", "serviceAccountName"),
    "spec.hostNetwork": lambda o: _boolstr(o, "spec", "hostNetwork"),
    "status.phase": _field("status", "phase"),
    "status.podIP": _field("status", "podIP"),
    "status.nominatedNodeName": _field("status", "nominatedNodeName"),
}
EVENT_FIELDS = {"involvedObject." + f: _field("involvedObject", f)
                for f in ("kind", "namespace", "name", "uid", "apiVersion", "resourceVersion",
                          "fieldPath")}
EVENT_FIELDS.update({
    "reason": _field("reason"),
    "reportingComponent": _field("reportingComponent"),
    "source": _field("source", "component"),
    "type": _field("type"),
})
EVENT_V1_FIELDS = {"regarding." + f: _field("involvedObject", f)
                   for f in ("kind", "namespace", "name", "uid", "apiVersion",
                             "resourceVersion", "fieldPath")}
EVENT_V1_FIELDS.update({
    "reason": _field("reason"),
    "reportingController": _field("reportingComponent"),
    "type": _field("type"),
})

# events.k8s.io/v1 field <-> core/v1 field; both views share the core storage.
_EVENT_MAP = [
    ("regarding", "involvedObject"), ("note", "message"), ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"), ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"), ("reportingController", "reportingComponent"),
]
_EVENT_SAME = ["metadata", "reason", "type", "eventTime", "series", "related", "action",
               "reportingInstance"]


def event_to_v1(core):
    out = {"kind": "Event", "apiVersion": "events.k8s.io/v1"}
    for key in _EVENT_SAME:
        if key in core:
            out[key] = core[key]
    for new, old in _EVENT_MAP:
        if old in core:
            out[new] = core[old]
    return out


def event_from_v1(ext):
    out = {"kind": "Event", "apiVersion": "v1"}
    for key in _EVENT_SAME:
        if key in ext:
            out[key] = ext[key]
    for new, old in _EVENT_MAP:
        if new in ext:
            out[old] = ext[new]
    return out


def _core(resource, kind, **kw):
    return ResourceType("", "v1", resource, kind, **kw)


def _apps(resource, kind, **kw):
    kw.setdefault("generation", True)
    kw.setdefault("status_on_create", "drop")
    kw.setdefault("categories", ["all"])
    return ResourceType("apps", "v1", resource, kind, **kw)


_STATUS = {"status": ["get", "patch", "update"]}
_SCALE = {"scale": ["get", "patch", "update"]}
_WORKLOAD_SCALE = ("spec.replicas", "status.replicas", None)


def builtin_types():
    pods_sub = dict(_STATUS, **{
        "log": ["get"], "exec": ["create", "get"], "attach": ["create", "get"],
        "portforward": ["create", "get"], "binding": ["create"], "eviction": ["create"],
    })
    return [
        _core("namespaces", "Namespace", namespaced=False, short_names=["ns"],
              subresources=dict(_STATUS, finalize=["update"]), name_rule="label",
              delete_returns_object=True, fields={"status.phase": _field("status", "phase")},
              verbs=["create", "delete", "get", "list", "patch", "update", "watch"]),
        _core("nodes", "Node", namespaced=False, short_names=["no"], subresources=dict(_STATUS),
              delete_returns_object=True,
              fields={"spec.unschedulable": lambda o: _boolstr(o, "spec", "unschedulable")}),
        _core("pods", "Pod", short_names=["po"], categories=["all"], subresources=pods_sub,
              graceful=True, delete_returns_object=True, fields=POD_FIELDS),
        _core("bindings", "Binding", verbs=["create"]),
        _core("configmaps", "ConfigMap", short_names=["cm"]),
        _core("secrets", "Secret", fields={"type": _field("type")}),
        _core("serviceaccounts", "ServiceAccount", short_names=["sa"]),
        _core("events", "Event", short_names=["ev"], create_on_update=True, fields=EVENT_FIELDS),
        _core("services", "Service", short_names=["svc"], categories=["all"],
              subresources=dict(_STATUS), name_rule="label", delete_returns_object=True),
        _core("endpoints", "Endpoints", short_names=["ep"], create_on_update=True),
        _core("persistentvolumeclaims", "PersistentVolumeClaim", short_names=["pvc"],
              subresources=dict(_STATUS)),
        _core("persistentvolumes", "PersistentVolume", namespaced=False, short_names=["pv"],
              subresources=dict(_STATUS)),
        _apps("deployments", "Deployment", short_names=["deploy"],
              subresources=dict(_STATUS, **_SCALE), scale=_WORKLOAD_SCALE),
        _apps("statefulsets", "StatefulSet", short_names=["sts"],
              subresources=dict(_STATUS, **_SCALE), scale=_WORKLOAD_SCALE),
        _apps("replicasets", "ReplicaSet", short_names=["rs"],
              subresources=dict(_STATUS, **_SCALE), scale=_WORKLOAD_SCALE),
        _apps("daemonsets", "DaemonSet", short_names=["ds"], subresources=dict(_STATUS)),
        ResourceType("coordination.k8s.io", "v1", "leases", "Lease",
                     unconditional_update=False, create_on_update=True),
        ResourceType("events.k8s.io", "v1", "events", "Event", short_names=["ev"],
                     storage=("", "events"), create_on_update=True, fields=EVENT_V1_FIELDS,
                     to_external=event_to_v1, to_internal=event_from_v1),
        ResourceType("apiextensions.k8s.io", "v1", "customresourcedefinitions",
                     "CustomResourceDefinition", namespaced=False, short_names=["crd", "crds"],
                     subresources=dict(_STATUS), generation=True, unconditional_update=False,
                     delete_returns_object=True),
        ResourceType("admissionregistration.k8s.io", "v1", "mutatingwebhookconfigurations",
                     "MutatingWebhookConfiguration", namespaced=False, generation=True,
                     unconditional_update=False),
        ResourceType("admissionregistration.k8s.io", "v1", "validatingwebhookconfigurations",
                     "ValidatingWebhookConfiguration", namespaced=False, generation=True,
                     unconditional_update=False),
    ]


def _json_path_getter(path):
    """A getter for a CRD selectableFields jsonPath such as `.spec.color`."""
    parts = [p for p in path.lstrip(".").split(".") if p]
    return lambda o: _str(o, *parts)


def types_for_crd(crd):
    """The ResourceTypes one CRD serves (one per served version)."""
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    out = []
    for ver in spec.get("versions") or []:
        if not ver.get("served", True):
            continue
        subs = ver.get("subresources") or {}
        sub = {}
        scale = None
        if "status" in subs:
            sub["status"] = ["get", "patch", "update"]
        if "scale" in subs:
            sub["scale"] = ["get", "patch", "update"]
            s = subs["scale"] or {}
            scale = (s.get("specReplicasPath", ".spec.replicas").lstrip("."),
                     s.get("statusReplicasPath", ".status.replicas").lstrip("."),
                     (s.get("labelSelectorPath") or "").lstrip(".") or None)
        fields = {f["jsonPath"].lstrip("."): _json_path_getter(f["jsonPath"])
                  for f in ver.get("selectableFields") or [] if f.get("jsonPath")}
        out.append(ResourceType(
            spec.get("group", ""), ver.get("name"), names.get("plural"), names.get("kind"),
            namespaced=spec.get("scope", "Namespaced") == "Namespaced",
            singular=names.get("singular") or names.get("kind", "").lower(),
            short_names=names.get("shortNames") or [], categories=names.get("categories") or [],
            subresources=sub, builtin=False, generation=True, unconditional_update=False,
            status_on_create="drop" if "status" in sub else "keep",
            delete_returns_object=True, fields=fields, scale=scale, crd=crd,
            printer_columns=ver.get("additionalPrinterColumns")))
    return out


class Registry:
    """Served types by (group, version, resource); CRD types come and go at runtime."""

    def __init__(self):
        self.types = {}
        for t in builtin_types():
            self.add(t)

    def add(self, rtype):
        self.types[(rtype.group, rtype.version, rtype.resource)] = rtype

    def remove_crd(self, crd_name):
        for key, t in list(self.types.items()):
            if t.crd is not None and t.crd["metadata"]["name"] == crd_name:
                del self.types[key]

    def on_event(self, ev):
        """Store hook: serve a CRD's kinds from the moment it is stored until it is gone."""
        if ev.storage != ("apiextensions.k8s.io", "customresourcedefinitions"):
            return
        self.remove_crd(ev.obj["metadata"]["name"])
        if ev.etype != "DELETED":
            for t in types_for_crd(ev.obj):
                self.add(t)

    def lookup(self, group, version, resource):
        return self.types.get((group, version, resource))

    def groups(self):
        """{group: [versions]} in a stable order, core excluded."""
        out = {}
        for (g, v, _r) in sorted(list(self.types)):
            if g and v not in out.setdefault(g, []):
                out[g].append(v)
        return out

    def in_group_version(self, group, version):
        return [t for (g, v, _r), t in sorted(list(self.types.items()), key=lambda kv: kv[0])
                if g == group and v == version]

    def by_storage(self, storage):
        return [t for t in list(self.types.values()) if t.storage == storage]


# ---------------------------------------------------------------------------------------
# Defaulting and validation hooks
# ---------------------------------------------------------------------------------------

def apply_defaults(rtype, obj, creating):
    if not rtype.builtin:
        return
    kind = rtype.kind
    if kind == "Pod":
        defaults.default_pod(obj, creating)
    elif kind in ("Deployment", "StatefulSet", "ReplicaSet", "DaemonSet"):
        defaults.default_workload(obj, kind)
    elif kind == "Service":
        defaults.default_service(obj)
    elif kind == "Namespace":
        meta = obj.setdefault("metadata", {})
        meta.setdefault("labels", {})["kubernetes.io/metadata.name"] = meta.get("name", "")
        obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
        if creating:
            obj["status"] = {"phase": "Active"}
    elif kind == "Secret":
        obj.setdefault("type", "Opaque")
    elif kind == "Node":
        status = obj.get("status")
        for key in ("capacity", "allocatable"):
            if isinstance(status, dict) and isinstance(status.get(key), dict):
                status[key] = {k: defaults.canonical_quantity(v) for k, v in status[key].items()}
    elif kind in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"):
        for wh in obj.get("webhooks") or []:
            if isinstance(wh, dict):
                wh.setdefault("failurePolicy", "Fail")
                wh.setdefault("timeoutSeconds", 10)
                wh.setdefault("matchPolicy", "Equivalent")
                wh.setdefault("namespaceSelector", {})
                wh.setdefault("objectSelector", {})
                if kind.startswith("Mutating"):
                    wh.setdefault("reinvocationPolicy", "Never")
                for rule in wh.get("rules") or []:
                    if isinstance(rule, dict):
                        rule.setdefault("scope", "*")


def _name_causes(rtype, name):
    if not name:
        return [("metadata.name", "required", "name or generateName is required")]
    if rtype.name_rule == "label":
        if len(name) > 63 or not _LABEL_RE.match(name):
            return [("metadata.name", "invalid",
                     '"%s": a lowercase RFC 1123 label must consist of lower case alphanumeric '
                     "characters or '-', and must start and end with an alphanumeric character"
                     % name)]
    elif len(name) > 253 or not _SUBDOMAIN_RE.match(name):
        return [("metadata.name", "invalid",
                 '"%s": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric '
                 "characters, '-' or '.', and must start and end with an alphanumeric character"
                 % name)]
    return []


def _pod_causes(pod):
    causes = []
    containers = _get(pod, "spec", "containers")
    if not containers:
        return [("spec.containers", "required", "")]
    seen = set()
    for i, c in enumerate(containers):
        c = c if isinstance(c, dict) else {}
        if not c.get("name"):
            causes.append(("spec.containers[%d].name" % i, "required", ""))
        elif c["name"] in seen:
            causes.append(("spec.containers[%d].name" % i, "duplicate", '"%s"' % c["name"]))
        seen.add(c.get("name"))
        if not c.get("image"):
            causes.append(("spec.containers[%d].image" % i, "required", ""))
    return causes


def _crd_causes(crd):
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    causes = []
    for f in ("plural", "kind"):
        if not names.get(f):
            causes.append(("spec.names." + f, "required", ""))
    if not spec.get("group"):
        causes.append(("spec.group", "required", ""))
    elif "." not in spec["group"]:
        causes.append(("spec.group", "invalid", '"%s": should be a domain with at least one dot'
                       % spec["group"]))
    if not spec.get("versions"):
        causes.append(("spec.versions", "required", "must have exactly one version marked "
                       "as storage version"))
    elif sum(1 for v in spec["versions"] if v.get("storage")) != 1:
        causes.append(("spec.versions", "invalid", "must have exactly one version marked "
                       "as storage version"))
    if spec.get("scope") not in ("Namespaced", "Cluster"):
        causes.append(("spec.scope", "unsupported", '"%s": supported values: "Cluster", '
                       '"Namespaced"' % spec.get("scope", "")))
    want = "%s.%s" % (names.get("plural"), spec.get("group"))
    name = _get(crd, "metadata", "name")
    if not causes and name != want:
        causes.append(("metadata.name", "invalid",
                       '"%s": must be spec.names.plural+"."+spec.group' % name))
    return causes


def _selector_causes(sel, field):
    causes = []
    for i, expr in enumerate(sel.get("matchExpressions") or []):
        op = expr.get("operator")
        where = "%s.matchExpressions[%d]" % (field, i)
        if not expr.get("key"):
            causes.append((where + ".key", "required", ""))
        has_values = bool(expr.get("values"))
        if op not in ("In", "NotIn", "Exists", "DoesNotExist"):
            causes.append((where + ".operator", "invalid", '"%s": not a valid selector '
                           "operator" % (op or "")))
        elif op in ("In", "NotIn") and not has_values:
            causes.append((where + ".values", "required", "must be specified when `operator` "
                           "is 'In' or 'NotIn'"))
        elif op in ("Exists", "DoesNotExist") and has_values:
            causes.append((where + ".values", "forbidden", "may not be specified when "
                           "`operator` is 'Exists' or 'DoesNotExist'"))
    return causes


def _workload_causes(obj):
    """The selector must be valid, non-empty and select the template's labels."""
    spec = obj.get("spec") or {}
    sel = spec.get("selector")
    if not sel or not (sel.get("matchLabels") or sel.get("matchExpressions")):
        return [("spec.selector", "required", "")]
    causes = _selector_causes(sel, "spec.selector")
    if causes:
        return causes
    labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    if not selection.selector_from_label_selector(sel).matches(labels):
        return [("spec.template.metadata.labels", "invalid", "%s: `selector` does not match "
                 "template `labels`" % json.dumps(labels, separators=(",", ":")))]
    return []


def _webhook_causes(obj):
    causes = []
    for i, wh in enumerate(obj.get("webhooks") or []):
        if not wh.get("name"):
            causes.append(("webhooks[%d].name" % i, "required", ""))
        for key in ("namespaceSelector", "objectSelector"):
            causes += _selector_causes(wh.get(key) or {}, "webhooks[%d].%s" % (i, key))
    return causes


def validate(rtype, obj):
    """Raise 422 Invalid for what the real server's validation would reject."""
    meta = obj.get("metadata") or {}
    causes = _name_causes(rtype, meta.get("name", ""))
    if rtype.kind == "Pod" and rtype.builtin:
        causes += _pod_causes(obj)
    elif rtype.kind == "CustomResourceDefinition":
        causes += _crd_causes(obj)
    elif rtype.builtin and rtype.kind in ("Deployment", "StatefulSet", "ReplicaSet",
                                          "DaemonSet"):
        causes += _workload_causes(obj)
    elif rtype.builtin and rtype.kind.endswith("WebhookConfiguration"):
        causes += _webhook_causes(obj)
    elif rtype.kind == "ConfigMap" and rtype.builtin:
        size = sum(len(k) + len(str(v)) for k, v in (obj.get("data") or {}).items())
        size += sum(len(k) + len(str(v)) for k, v in (obj.get("binaryData") or {}).items())
        if size > 1024 * 1024:
            causes.append(("", "toolong", "must have at most 1048576 bytes"))
    owners = [o for o in meta.get("ownerReferences") or [] if isinstance(o, dict)]
    if sum(1 for o in owners if o.get("controller")) > 1:
        causes.append(("metadata.ownerReferences", "invalid",
                       "Only one reference can have Controller set to true"))
    if causes:
        raise invalid(rtype.group, rtype.kind, meta.get("name", ""), causes)
