"""Discovery documents (kube-api.md §2.2, §2.3): /version, legacy /api and /apis, the
per-group-version APIResourceLists built from the live registry (so CRD kinds appear and
vanish at once), the aggregated v2 APIGroupDiscoveryList for clients that ask for it, and
the empty protobuf /openapi/v2 every kubectl accepts.

Owns no state beyond the version string it was given.
"""

V2_MEDIA = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
OPENAPI_V2_MEDIA = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"


def version_info(git_version):
    core = git_version.lstrip("v").split("-")[0].split("+")[0]
    parts = (core.split(".") + ["0", "0"])[:3]
    return {
        "major": parts[0], "minor": parts[1], "gitVersion": git_version,
        "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean",
        "buildDate": "2025-01-01T00:00:00Z", "goVersion": "go1.22.0", "compiler": "gc",
        "platform": "linux/amd64",
    }


def api_versions(server_address):
    return {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [
        {"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}]}


def _group(registry, group, versions):
    gvs = [{"groupVersion": "%s/%s" % (group, v), "version": v} for v in versions]
    return {"name": group, "versions": gvs, "preferredVersion": gvs[0]}


def api_group_list(registry):
    return {"kind": "APIGroupList", "apiVersion": "v1",
            "groups": [_group(registry, g, vs) for g, vs in registry.groups().items()]}


def api_group(registry, group):
    versions = registry.groups().get(group)
    if not versions:
        return None
    out = _group(registry, group, versions)
    out.update({"kind": "APIGroup", "apiVersion": "v1"})
    return out


def _entries(t):
    main = {"name": t.resource, "singularName": t.singular, "namespaced": t.namespaced,
            "kind": t.kind, "verbs": t.verbs}
    if t.short_names:
        main["shortNames"] = t.short_names
    if t.categories:
        main["categories"] = t.categories
    out = [main]
    for sub, verbs in sorted(t.subresources.items()):
        entry = {"name": "%s/%s" % (t.resource, sub), "singularName": "",
                 "namespaced": t.namespaced, "kind": t.kind, "verbs": verbs}
        if sub == "scale":
            entry.update({"group": "autoscaling", "version": "v1", "kind": "Scale"})
        elif sub in ("exec", "attach"):
            entry["kind"] = "PodExecOptions" if sub == "exec" else "PodAttachOptions"
        elif sub == "portforward":
            entry["kind"] = "PodPortForwardOptions"
        elif sub == "binding":
            entry["kind"] = "Binding"
        elif sub == "eviction":
            entry.update({"group": "policy", "version": "v1", "kind": "Eviction"})
        elif sub == "log":
            entry["kind"] = "Pod"
        out.append(entry)
    return out


def resource_list(registry, group, version):
    types = registry.in_group_version(group, version)
    if not types:
        return None
    gv = version if not group else "%s/%s" % (group, version)
    resources = [e for t in types for e in _entries(t)]
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv,
            "resources": resources}


def _v2_resource(t):
    scope = "Namespaced" if t.namespaced else "Cluster"
    res = {"resource": t.resource,
           "responseKind": {"group": t.group, "version": t.version, "kind": t.kind},
           "scope": scope, "singularResource": t.singular, "verbs": t.verbs}
    if t.short_names:
        res["shortNames"] = t.short_names
    if t.categories:
        res["categories"] = t.categories
    subs = []
    for entry in _entries(t)[1:]:
        sub = entry["name"].split("/", 1)[1]
        subs.append({"subresource": sub, "responseKind": {
            "group": entry.get("group", t.group), "version": entry.get("version", t.version),
            "kind": entry["kind"]}, "verbs": entry["verbs"]})
    if subs:
        res["subresources"] = subs
    return res


def aggregated(registry, legacy):
    """The apidiscovery.k8s.io/v2 document for /api (legacy=True) or /apis."""
    if legacy:
        groups = [("", ["v1"])]
    else:
        groups = list(registry.groups().items())
    items = []
    for group, versions in groups:
        vers = [{"version": v, "freshness": "Current",
                 "resources": [_v2_resource(t) for t in registry.in_group_version(group, v)]}
                for v in versions]
        items.append({"metadata": {"name": group, "creationTimestamp": None}, "versions": vers})
    return {"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2",
            "metadata": {}, "items": items}


def wants_aggregated(accept):
    """True when the Accept header lists the v2 discovery type (before plain JSON)."""
    for part in (accept or "").split(","):
        params = [p.strip() for p in part.split(";")]
        if params[0] == "application/json" and "g=apidiscovery.k8s.io" in params and \
                "v=v2" in params and "as=APIGroupDiscoveryList" in params:
            return True
        if params[0] in ("application/json", "*/*") and len(params) == 1:
            return False
    return False
