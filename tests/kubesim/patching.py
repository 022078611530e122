"""The three PATCH formats (kube-api.md §1.4): RFC 7386 merge, RFC 6902 JSON patch and
strategic merge with per-kind merge keys and the $patch / $setElementOrder /
$deleteFromPrimitiveList / $retainKeys directives.

Owns no state: every function takes the stored object and returns a new one, never
modifying its input, so the store's copies stay immutable.
"""

import copy

from apierrors import bad_request, invalid_plain


# ---------------------------------------------------------------------------------------
# RFC 7386 merge patch
# ---------------------------------------------------------------------------------------

def merge_patch(target, patch):
    """Maps merge recursively, null deletes, everything else (arrays too) replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


# ---------------------------------------------------------------------------------------
# RFC 6902 JSON patch
# ---------------------------------------------------------------------------------------

class _PatchFailed(Exception):
    pass


def _pointer(path):
    if path == "":
        return []
    if not isinstance(path, str) or not path.startswith("/"):
        raise _PatchFailed("invalid JSON pointer %r: must start with '/'" % (path,))
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _index(container, token, allow_end):
    if token == "-" and allow_end:
        return len(container)
    if not token.isdigit() or (len(token) > 1 and token[0] == "0"):
        raise _PatchFailed("invalid array index %r" % token)
    idx = int(token)
    limit = len(container) + (1 if allow_end else 0)
    if idx >= limit:
        raise _PatchFailed("array index %d out of bounds (length %d)" % (idx, len(container)))
    return idx


def _parent(doc, tokens, path):
    cur = doc
    for tok in tokens[:-1]:
        if isinstance(cur, dict):
            if tok not in cur:
                raise _PatchFailed("doc is missing path: \"%s\"" % path)
            cur = cur[tok]
        elif isinstance(cur, list):
            cur = cur[_index(cur, tok, False)]
        else:
            raise _PatchFailed("doc is missing path: \"%s\"" % path)
    return cur


def _get(doc, path):
    tokens = _pointer(path)
    if not tokens:
        return doc
    parent = _parent(doc, tokens, path)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise _PatchFailed("doc is missing key: \"%s\"" % path)
        return parent[last]
    if isinstance(parent, list):
        return parent[_index(parent, last, False)]
    raise _PatchFailed("doc is missing path: \"%s\"" % path)


def _remove(doc, path):
    tokens = _pointer(path)
    if not tokens:
        raise _PatchFailed("cannot remove the whole document")
    parent = _parent(doc, tokens, path)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise _PatchFailed("unable to remove nonexistent key: %s: missing value" % last)
        return parent.pop(last)
    if isinstance(parent, list):
        return parent.pop(_index(parent, last, False))
    raise _PatchFailed("doc is missing path: \"%s\"" % path)


def _add(doc, path, value, replace=False):
    tokens = _pointer(path)
    if not tokens:
        return value
    parent = _parent(doc, tokens, path)
    last = tokens[-1]
    if isinstance(parent, dict):
        if replace and last not in parent:
            raise _PatchFailed("replace operation does not apply: doc is missing key: %s" % path)
        parent[last] = value
    elif isinstance(parent, list):
        if replace:
            parent[_index(parent, last, False)] = value
        else:
            parent.insert(_index(parent, last, True), value)
    else:
        raise _PatchFailed("doc is missing path: \"%s\"" % path)
    return doc


def _apply_op(doc, op):
    kind = op.get("op")
    path = op.get("path")
    if path is None:
        raise _PatchFailed("operation %r is missing the path field" % (kind,))
    if kind in ("add", "replace", "test") and "value" not in op:
        raise _PatchFailed("operation %r is missing the value field" % kind)
    if kind == "add":
        return _add(doc, path, copy.deepcopy(op["value"]))
    if kind == "remove":
        _remove(doc, path)
        return doc
    if kind == "replace":
        return _add(doc, path, copy.deepcopy(op["value"]), replace=True)
    if kind in ("move", "copy"):
        src = op.get("from")
        if src is None:
            raise _PatchFailed("operation %r is missing the from field" % kind)
        if kind == "move":
            if path.startswith(src + "/"):
                raise _PatchFailed("cannot move %s into its own child %s" % (src, path))
            value = _remove(doc, src)
        else:
            value = copy.deepcopy(_get(doc, src))
        return _add(doc, path, value)
    if kind == "test":
        if _get(doc, path) != op["value"]:
            raise _PatchFailed("testing value %s failed: test failed" % path)
        return doc
    raise _PatchFailed("unexpected kind: %r" % (kind,))


def json_patch(target, ops):
    """Apply an RFC 6902 patch. A body that is not an array of objects is 400; an
    operation that cannot apply (or a failed test) is 422, as the real server answers."""
    if not isinstance(ops, list) or not all(isinstance(o, dict) for o in ops):
        raise bad_request("json: cannot unmarshal object into Go value of type jsonpatch.Patch")
    doc = copy.deepcopy(target)
    for i, op in enumerate(ops):
        try:
            doc = _apply_op(doc, op)
        except _PatchFailed as e:
            raise invalid_plain("the server rejected our request due to an error in our "
                                "request: json patch operation %d (%s %s) failed: %s"
                                % (i, op.get("op"), op.get("path"), e)) from None
    return doc


# ---------------------------------------------------------------------------------------
# Strategic merge patch
# ---------------------------------------------------------------------------------------

# Patch strategies by field path (list indices omitted). ("merge", key) merges list
# elements by key; ("merge", None) is a set-merged list of primitives. Anything not
# listed is replaced whole, which is right for tolerations, taints, args, command...
_POD_SPEC = {
    "containers": ("merge", "name"),
    "initContainers": ("merge", "name"),
    "ephemeralContainers": ("merge", "name"),
    "volumes": ("merge", "name"),
    "imagePullSecrets": ("merge", "name"),
    "hostAliases": ("merge", "ip"),
    "schedulingGates": ("merge", "name"),
    "resourceClaims": ("merge", "name"),
}
_CONTAINER = {
    "env": ("merge", "name"),
    "ports": ("merge", "containerPort"),
    "volumeMounts": ("merge", "mountPath"),
    "volumeDevices": ("merge", "devicePath"),
}
_META = {
    "ownerReferences": ("merge", "uid"),
    "finalizers": ("merge", None),
}


def _prefixed(prefix, table):
    return {prefix + k: v for k, v in table.items()}


def _pod_spec_rules(prefix):
    rules = _prefixed(prefix, _POD_SPEC)
    for c in ("containers", "initContainers", "ephemeralContainers"):
        rules.update(_prefixed(prefix + c + ".", _CONTAINER))
    return rules


def _workload_rules():
    rules = _pod_spec_rules("spec.template.spec.")
    rules.update(_prefixed("spec.template.metadata.", _META))
    rules["status.conditions"] = ("merge", "type")
    return rules


_RULES = {
    "Pod": dict(_pod_spec_rules("spec."), **{
        "status.conditions": ("merge", "type"),
        "status.podIPs": ("merge", "ip"),
        "status.hostIPs": ("merge", "ip")}),
    "PodTemplate": dict(_pod_spec_rules("template.spec."),
                        **_prefixed("template.metadata.", _META)),
    "Node": {
        "status.conditions": ("merge", "type"),
        "status.addresses": ("merge", "type"),
        "spec.podCIDRs": ("merge", None),
    },
    "Service": {"spec.ports": ("merge", "port")},
    "Deployment": _workload_rules(),
    "StatefulSet": _workload_rules(),
    "ReplicaSet": _workload_rules(),
    "DaemonSet": _workload_rules(),
    "Namespace": {"status.conditions": ("merge", "type")},
    "MutatingWebhookConfiguration": {"webhooks": ("merge", "name")},
    "ValidatingWebhookConfiguration": {"webhooks": ("merge", "name")},
}


def _strategy(kind, path):
    if path.startswith("metadata."):
        return _META.get(path[len("metadata."):])
    return _RULES.get(kind, {}).get(path)


_ORDER = "$setElementOrder/"
_DELETE_PRIM = "$deleteFromPrimitiveList/"


class _Delete:
    """Marker returned when a map carries "$patch": "delete"."""


def _strip_directives(value):
    if isinstance(value, dict):
        return {k: _strip_directives(v) for k, v in value.items()
                if not k.startswith("$")}
    if isinstance(value, list):
        return [_strip_directives(v) for v in value
                if not (isinstance(v, dict) and v.get("$patch") == "delete")]
    return value


def _smp_map(kind, path, orig, patch):
    directive = patch.get("$patch")
    if directive == "delete":
        return _Delete
    if directive == "replace":
        return _strip_directives(patch)
    if directive not in (None, "merge"):
        raise bad_request('unknown patch type: "%s" in map: %s' % (directive, path or "<root>"))
    result = copy.deepcopy(orig) if isinstance(orig, dict) else {}
    for key, value in patch.items():
        if key.startswith("$"):
            continue
        sub = path + "." + key if path else key
        if value is None:
            result.pop(key, None)
            continue
        strat = _strategy(kind, sub)
        if isinstance(value, list) and strat is not None:
            result[key] = _smp_list(kind, sub, result.get(key), value, strat[1])
        elif isinstance(value, dict):
            merged = _smp_map(kind, sub, result.get(key), value)
            if merged is _Delete:
                result.pop(key, None)
            else:
                result[key] = merged
        else:
            result[key] = _strip_directives(value)
    for key, value in patch.items():
        if key.startswith(_DELETE_PRIM):
            field = key[len(_DELETE_PRIM):]
            if isinstance(result.get(field), list):
                result[field] = [v for v in result[field] if v not in (value or [])]
    for key, value in patch.items():
        if key.startswith(_ORDER):
            field = key[len(_ORDER):]
            strat = _strategy(kind, path + "." + field if path else field)
            if isinstance(result.get(field), list) and isinstance(value, list):
                result[field] = _reorder(result[field], value, strat[1] if strat else None)
    if "$retainKeys" in patch:
        keep = set(patch["$retainKeys"] or [])
        result = {k: v for k, v in result.items() if k in keep}
    return result


def _key_of(item, key):
    return item.get(key) if isinstance(item, dict) else item


def _smp_list(kind, path, orig, patch, key):
    orig = copy.deepcopy(orig) if isinstance(orig, list) else []
    if any(isinstance(p, dict) and p.get("$patch") == "replace" for p in patch):
        return [_strip_directives(p) for p in patch
                if not (isinstance(p, dict) and "$patch" in p)]
    if key is None:
        for item in patch:
            if item not in orig:
                orig.append(item)
        return orig
    for item in patch:
        if not isinstance(item, dict):
            raise bad_request("unable to find api field in struct for the list %s: element %r "
                              "is not an object" % (path, item))
        if key not in item:
            raise bad_request('map: %s does not contain declared merge key: %s' % (item, key))
        idx = next((i for i, o in enumerate(orig) if _key_of(o, key) == item[key]), None)
        if item.get("$patch") == "delete":
            if idx is not None:
                orig.pop(idx)
            continue
        merged = _smp_map(kind, path, orig[idx] if idx is not None else None, item)
        if idx is None:
            orig.append(merged)
        else:
            orig[idx] = merged
    return orig


def _reorder(items, order, key):
    """Honour $setElementOrder: listed elements first in the given order, the rest after
    in their existing relative order."""
    wanted = [_key_of(o, key) if key else o for o in order]
    rank = {}
    for i, w in enumerate(wanted):
        rank.setdefault(_freeze(w), i)
    listed = [it for it in items if _freeze(_key_of(it, key) if key else it) in rank]
    listed.sort(key=lambda it: rank[_freeze(_key_of(it, key) if key else it)])
    rest = [it for it in items if _freeze(_key_of(it, key) if key else it) not in rank]
    return listed + rest


def _freeze(value):
    return repr(value)


def strategic_merge_patch(kind, target, patch):
    if not isinstance(patch, dict):
        raise bad_request("strategic merge patch must be a JSON object")
    result = _smp_map(kind, "", target, patch)
    if result is _Delete:
        raise bad_request("a strategic merge patch may not delete the whole object")
    return result
