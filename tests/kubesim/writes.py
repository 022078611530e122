"""The write verbs (kube-api.md §1.2-§1.5): create, update, patch, delete and
deletecollection with the real server's order of defaulting, mutating admission, server
fields, validation, validating admission and storage; status / scale / finalize
subresource rules; finalizers; graceful pod deletion; CRD registration side effects.

Owns no state beyond the store and registry it is given; the scheduler and the cleanup
loops write through the same Writer (with admission off) so every rule holds for them too.
"""

import copy
import datetime
import json
import uuid

import apierrors as E
import protobuf
import resources
import typecheck
from admission import Attributes
from patching import json_patch, merge_patch, strategic_merge_patch
from selection import format_label_selector
from store import Exists, StaleWrite

NS_STORAGE = ("", "namespaces")
CRD_STORAGE = ("apiextensions.k8s.io", "customresourcedefinitions")
CRD_CLEANUP = "customresourcecleanup.apiextensions.k8s.io"
IMMORTAL_NAMESPACES = ("default", "kube-system", "kube-public")
SCALE_KIND = {"group": "autoscaling", "version": "v1", "kind": "Scale"}
RETRIES = 8
_SERVER_META = ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds",
                "generation", "selfLink")
_PATCH_TYPES = ["application/json-patch+json", "application/merge-patch+json",
                "application/strategic-merge-patch+json", "application/apply-patch+yaml"]


def now(offset=0):
    t = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=offset)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_ts(text):
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=datetime.timezone.utc)


class Ctx:
    """Per-request write options."""

    def __init__(self, query=None, admit=True):
        query = query or {}
        self.dry_run = "All" in query.get("dryRun", [])
        self.field_manager = (query.get("fieldManager") or [""])[0]
        self.admit = admit
        self.warnings = []


def _meta(obj):
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        meta = obj["metadata"] = {}
    return meta


def _path_get(obj, path):
    cur = obj
    for p in path.split("."):
        if not isinstance(cur, dict):
            return None
        cur = cur.get(p)
    return cur


def _path_set(obj, path, value):
    """Set a dotted path; False if something on the way is not a map."""
    parts = path.split(".")
    cur = obj
    for p in parts[:-1]:
        cur = cur.setdefault(p, {})
        if not isinstance(cur, dict):
            return False
    cur[parts[-1]] = value
    return True


def _restore(dst, src, key):
    """dst[key] = src[key], or no key at all when src has none."""
    if key in src:
        dst[key] = copy.deepcopy(src[key])
    else:
        dst.pop(key, None)


def _spec_part(rtype, obj):
    """What counts for generation: everything outside metadata (and outside status when
    the status subresource owns it)."""
    skip = {"metadata", "status"} if rtype.has_status() else {"metadata"}
    return {k: v for k, v in obj.items() if k not in skip and k not in ("apiVersion", "kind")}


def decode_body(raw, content_type=""):
    ctype = (content_type or "application/json").split(";")[0].strip().lower()
    if ctype == protobuf.MEDIA:
        return protobuf.decode(raw)
    if ctype not in ("application/json", "") and ctype not in _PATCH_TYPES:
        raise E.unsupported_media(ctype, ["application/json", "application/yaml",
                                          protobuf.MEDIA])
    try:
        return json.loads(raw or b"null")
    except ValueError as e:
        raise E.bad_request("couldn't get version/kind; json parse error: %s" % e) from None


class Writer:
    def __init__(self, store, registry, admission, log):
        self.store = store
        self.registry = registry
        self.admission = admission
        self.log = log
        self.ca_pem = ""

    # -- views: what clients and webhooks see -------------------------------------------

    def view(self, rtype, sub, obj):
        if obj is None:
            return None
        if sub == "scale":
            return self.scale_of(rtype, obj)
        if rtype.to_external:
            return rtype.to_external(obj)
        out = {"apiVersion": rtype.api_version, "kind": rtype.kind}
        out.update((k, v) for k, v in obj.items() if k not in out)
        return out

    def scale_of(self, rtype, obj):
        spec_path, status_path, sel_path = rtype.scale
        meta = obj["metadata"]
        status = {"replicas": _path_get(obj, status_path) or 0}
        if sel_path:
            sel = _path_get(obj, sel_path)
            if sel:
                status["selector"] = sel
        elif isinstance(_path_get(obj, "spec.selector"), dict):
            status["selector"] = format_label_selector(obj["spec"]["selector"])
        return {"kind": "Scale", "apiVersion": "autoscaling/v1", "metadata": {
            k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion",
                                 "creationTimestamp") if k in meta},
            "spec": {"replicas": _path_get(obj, spec_path) or 0}, "status": status}

    def _from_view(self, rtype, sub, cur, view):
        """The stored form of what a client or webhook sent, type-checked."""
        if sub == "scale":
            view = typecheck.check_scale(view)
            new = copy.deepcopy(cur)
            replicas = (view.get("spec") or {}).get("replicas", 0)
            if replicas < 0:
                raise E.invalid("autoscaling", "Scale", cur["metadata"]["name"], [
                    ("spec.replicas", "invalid", "%d: must be greater than or equal to 0"
                     % replicas)])
            if not _path_set(new, rtype.scale[0], replicas):
                raise E.invalid(rtype.group, rtype.kind, cur["metadata"]["name"], [
                    (rtype.scale[0], "invalid", "the object has no map at this path")])
            rv = (view.get("metadata") or {}).get("resourceVersion")
            if rv:
                new["metadata"]["resourceVersion"] = rv
            return new
        if rtype.to_internal:
            view = rtype.to_internal(view)
        return typecheck.check_object(rtype, view)

    def _check_kind(self, rtype, sub, obj):
        """Check apiVersion/kind against the endpoint and field types; returns the
        checked object (built-in nulls dropped)."""
        if not isinstance(obj, dict):
            raise E.bad_request("the body of the request must be a JSON object")
        want_av, want_kind = (("autoscaling/v1", "Scale") if sub == "scale"
                              else (rtype.api_version, rtype.kind))
        av, kind = obj.get("apiVersion"), obj.get("kind")
        if av and av != want_av:
            raise E.bad_request("the API version in the data (%s) does not match the expected "
                                "API version (%s)" % (av, want_av))
        if kind and kind != want_kind:
            raise E.bad_request("the kind in the data (%s) does not match the expected kind "
                                "(%s)" % (kind, want_kind))
        obj = typecheck.check_scale(obj) if sub == "scale" else \
            typecheck.check_object(rtype, obj)
        obj["apiVersion"], obj["kind"] = want_av, want_kind
        return obj

    @staticmethod
    def _check_namespace(rtype, ns, obj):
        meta = _meta(obj)
        if rtype.namespaced:
            if meta.get("namespace") and meta["namespace"] != ns:
                raise E.bad_request("the namespace of the provided object does not match the "
                                    "namespace sent on the request")
            meta["namespace"] = ns
        else:
            meta.pop("namespace", None)

    def _admission_kind(self, rtype, sub):
        if sub == "scale":
            return dict(SCALE_KIND)
        return {"group": rtype.group, "version": rtype.version, "kind": rtype.kind}

    def _options(self, op, ctx):
        kind = {"CREATE": "CreateOptions", "UPDATE": "UpdateOptions"}[op]
        opts = {"kind": kind, "apiVersion": "meta.k8s.io/v1"}
        if ctx.field_manager:
            opts["fieldManager"] = ctx.field_manager
        if ctx.dry_run:
            opts["dryRun"] = ["All"]
        return opts

    # -- create ---------------------------------------------------------------------------

    def _namespace_ok(self, rtype, ns, name):
        if not rtype.namespaced:
            return
        nsobj = self.store.get(NS_STORAGE, "", ns)
        if nsobj is None:
            raise E.not_found("", "namespaces", ns)
        if nsobj["metadata"].get("deletionTimestamp"):
            raise E.forbidden(rtype.group, rtype.resource, name,
                              "unable to create new content in namespace %s because it is "
                              "being terminated" % ns, "NamespaceTerminating")

    def create(self, rtype, ns, body, ctx, sub=None):
        """POST: returns (201, stored object view)."""
        body = self._check_kind(rtype, sub, body)
        if rtype.to_internal:
            body = typecheck.check_object(rtype, rtype.to_internal(body))
        obj = copy.deepcopy(body)
        meta = _meta(obj)
        self._check_namespace(rtype, ns, obj)
        self._namespace_ok(rtype, ns, meta.get("name") or meta.get("generateName", ""))
        for key in _SERVER_META + ("resourceVersion", "managedFields"):
            meta.pop(key, None)
        if rtype.status_on_create == "drop":
            obj.pop("status", None)
        resources.apply_defaults(rtype, obj, creating=True)
        if ctx.admit:
            attrs = Attributes("CREATE", rtype, sub, ns, meta.get("name", ""),
                               self._admission_kind(rtype, sub), None, ctx.dry_run,
                               self._options("CREATE", ctx))
            obj = self._from_view(rtype, sub, None, self.admission.mutate(
                attrs, self.view(rtype, sub, obj), ctx.warnings))
            self._check_namespace(rtype, ns, obj)
            meta = _meta(obj)
            for key in _SERVER_META + ("resourceVersion",):
                meta.pop(key, None)
        for _ in range(RETRIES):
            cand = copy.deepcopy(obj)
            cmeta = cand["metadata"]
            if not cmeta.get("name") and cmeta.get("generateName"):
                cmeta["name"] = cmeta["generateName"] + resources.defaults.random_suffix()
            cmeta["uid"] = str(uuid.uuid4())
            cmeta["creationTimestamp"] = now()
            if rtype.generation:
                cmeta["generation"] = 1
            self._on_create(rtype, cand)
            resources.validate(rtype, cand)
            if ctx.admit:
                attrs.name = cmeta["name"]
                self.admission.validate(attrs, self.view(rtype, sub, cand), ctx.warnings)
            if ctx.dry_run:
                if self.store.get(rtype.storage, cmeta.get("namespace", ""), cmeta["name"]):
                    raise E.already_exists(rtype.group, rtype.resource, cmeta["name"])
                return 201, self.view(rtype, sub, cand)
            try:
                stored = self.store.commit(rtype.storage, cand, "ADDED")
            except Exists:
                if obj["metadata"].get("name"):
                    raise E.already_exists(rtype.group, rtype.resource,
                                           cmeta["name"]) from None
                continue
            self._after_create(rtype, stored)
            return 201, self.view(rtype, sub, stored)
        raise E.already_exists(rtype.group, rtype.resource, obj["metadata"].get("name", ""))

    def _on_create(self, rtype, obj):
        if rtype.storage == CRD_STORAGE:
            spec = obj.get("spec") or {}
            storage = [v.get("name") for v in spec.get("versions") or [] if v.get("storage")]
            stamp = now()
            obj["status"] = {
                "acceptedNames": spec.get("names") or {}, "storedVersions": storage,
                "conditions": [
                    {"type": "NamesAccepted", "status": "True", "lastTransitionTime": stamp,
                     "reason": "NoConflicts", "message": "no conflicts found"},
                    {"type": "Established", "status": "True", "lastTransitionTime": stamp,
                     "reason": "InitialNamesAccepted",
                     "message": "the initial names have been accepted"}]}

    def _after_create(self, rtype, obj):
        if rtype.storage != NS_STORAGE:
            return
        ns = obj["metadata"]["name"]
        ctx = Ctx(admit=False)
        for rt, body in (
                (self.registry.lookup("", "v1", "serviceaccounts"),
                 {"metadata": {"name": "default"}}),
                (self.registry.lookup("", "v1", "configmaps"),
                 {"metadata": {"name": "kube-root-ca.crt"},
                  "data": {"ca.crt": self.ca_pem}})):
            try:
                self.create(rt, ns, body, ctx)
            except E.ApiError as e:
                self.log.debug("namespace %s: default %s not created: %s", ns, rt.resource, e)

    # -- update ---------------------------------------------------------------------------

    def update(self, rtype, ns, name, body, ctx, sub=None):
        """PUT: returns (200 or 201, stored object view)."""
        body = self._check_kind(rtype, sub, body)
        bmeta = _meta(body)
        if bmeta.get("name") != name:
            raise E.bad_request("the name of the object (%s) does not match the name on the "
                                "URL (%s)" % (bmeta.get("name", ""), name))
        if sub != "scale":
            self._check_namespace(rtype, ns, body)
        cur = self.store.get(rtype.storage, ns if rtype.namespaced else "", name)
        if cur is None:
            if rtype.create_on_update and sub is None:
                return self.create(rtype, ns, body, ctx)
            raise E.not_found(rtype.group, rtype.resource, name)
        conditional = (bmeta.get("resourceVersion") or "") not in ("", "0")
        if not conditional and not rtype.unconditional_update:
            raise E.invalid(rtype.group, rtype.kind, name, [
                ("metadata.resourceVersion", "invalid", "0x0: must be specified for an update")])
        return self._update_loop(rtype, sub, ns, name, lambda c: copy.deepcopy(body), ctx,
                                 conditional)

    def _update_loop(self, rtype, sub, ns, name, make_view, ctx, conditional):
        """Read, build the new object from the current one, commit; retry when the object
        changed underneath unless the client asked for that exact version."""
        key_ns = ns if rtype.namespaced else ""
        for _ in range(RETRIES):
            cur = self.store.get(rtype.storage, key_ns, name)
            if cur is None:
                raise E.not_found(rtype.group, rtype.resource, name)
            view = make_view(cur)
            vrv = (view.get("metadata") or {}).get("resourceVersion") or ""
            if vrv not in ("", "0") and vrv != cur["metadata"]["resourceVersion"]:
                raise E.conflict(rtype.group, rtype.resource, name)
            try:
                return 200, self._write_update(rtype, sub, ns, cur, view, ctx)
            except StaleWrite:
                if conditional:
                    raise E.conflict(rtype.group, rtype.resource, name) from None
        raise E.conflict(rtype.group, rtype.resource, name)

    def _write_update(self, rtype, sub, ns, cur, view, ctx):
        name = cur["metadata"]["name"]
        new = self._from_view(rtype, sub, cur, view)
        if sub is None:
            resources.apply_defaults(rtype, new, creating=False)
        attrs = None
        if ctx.admit:
            attrs = Attributes("UPDATE", rtype, sub, ns, name, self._admission_kind(rtype, sub),
                               self.view(rtype, sub, cur), ctx.dry_run,
                               self._options("UPDATE", ctx))
            mutated = self.admission.mutate(attrs, self.view(rtype, sub, new), ctx.warnings)
            new = self._from_view(rtype, sub, cur, mutated)
        new = self._prepare_update(rtype, sub, cur, new)
        resources.validate(rtype, new)
        if attrs is not None:
            self.admission.validate(attrs, self.view(rtype, sub, new), ctx.warnings)
        if ctx.dry_run:
            return self.view(rtype, sub, new)
        expect = cur["metadata"]["resourceVersion"]
        new["metadata"]["resourceVersion"] = expect
        if new == cur:
            return self.view(rtype, sub, cur)
        stored = self.store.commit(rtype.storage, new, "MODIFIED", expect_rv=expect)
        stored = self._maybe_finish(rtype, stored)
        return self.view(rtype, sub, stored)

    def _prepare_update(self, rtype, sub, cur, new):
        """Apply the status / spec reset rules of §1.5 and keep server-owned fields."""
        cmeta = cur["metadata"]
        if sub == "status" and not rtype.builtin:
            out = copy.deepcopy(cur)
            _restore(out, new, "status")
            return out
        if sub == "finalize":
            out = copy.deepcopy(cur)
            out.setdefault("spec", {})["finalizers"] = (new.get("spec") or {}).get("finalizers")
            if out["spec"]["finalizers"] is None:
                del out["spec"]["finalizers"]
            return out
        new = copy.deepcopy(new)
        meta = _meta(new)
        for key in _SERVER_META + ("namespace", "name"):
            _restore(meta, cmeta, key)
        meta.pop("managedFields", None)
        if sub == "status":
            _restore(new, cur, "spec")
            if rtype.kind == "Pod":
                _restore(meta, cmeta, "ownerReferences")
                st = new.setdefault("status", {})
                if not st.get("qosClass"):
                    st["qosClass"] = (cur.get("status") or {}).get("qosClass", "")
        elif rtype.has_status() or sub == "scale":
            _restore(new, cur, "status")
        if rtype.builtin and rtype.kind == "Pod" and sub is None:
            self._check_pod_update(cur, new)
        if rtype.storage == NS_STORAGE:
            meta.setdefault("labels", {})["kubernetes.io/metadata.name"] = cmeta["name"]
        if cmeta.get("deletionTimestamp"):
            added = [f for f in meta.get("finalizers") or [] if f not in
                     (cmeta.get("finalizers") or [])]
            if added:
                raise E.invalid(rtype.group, rtype.kind, cmeta["name"], [
                    ("metadata.finalizers", "forbidden",
                     "no new finalizers can be added if the object is being deleted, found new "
                     "finalizers %s" % json.dumps(added))])
        if rtype.generation and _spec_part(rtype, new) != _spec_part(rtype, cur):
            meta["generation"] = int(cmeta.get("generation") or 0) + 1
        return new

    @staticmethod
    def _check_pod_update(cur, new):
        def mask(spec):
            s = copy.deepcopy(spec or {})
            for key in ("containers", "initContainers"):
                for c in s.get(key) or []:
                    if isinstance(c, dict):
                        c.pop("image", None)
            for key in ("activeDeadlineSeconds", "tolerations", "schedulingGates",
                        "terminationGracePeriodSeconds"):
                s.pop(key, None)
            return s
        old_spec, new_spec = cur.get("spec") or {}, new.get("spec") or {}
        name = cur["metadata"]["name"]
        ok = mask(old_spec) == mask(new_spec)
        ok = ok and all(t in (new_spec.get("tolerations") or [])
                        for t in old_spec.get("tolerations") or [])
        ok = ok and all(g in (old_spec.get("schedulingGates") or [])
                        for g in new_spec.get("schedulingGates") or [])
        old_grace = old_spec.get("terminationGracePeriodSeconds")
        new_grace = new_spec.get("terminationGracePeriodSeconds")
        ok = ok and (new_grace == old_grace or (old_grace is not None and old_grace < 0
                                                and new_grace == 1))
        if not ok:
            raise E.invalid("", "Pod", name, [(
                "spec", "forbidden", "pod updates may not change fields other than "
                "`spec.containers[*].image`,`spec.initContainers[*].image`,"
                "`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing "
                "tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if "
                "it was previously negative)")])

    def _maybe_finish(self, rtype, obj):
        """Remove an object whose deletion was only waiting for finalizers to go."""
        meta = obj["metadata"]
        if not meta.get("deletionTimestamp") or meta.get("finalizers"):
            return obj
        if meta.get("deletionGracePeriodSeconds", 0) != 0:
            return obj
        if rtype.storage == NS_STORAGE and (obj.get("spec") or {}).get("finalizers"):
            return obj
        try:
            return self.store.commit(rtype.storage, obj, "DELETED",
                                     expect_rv=meta["resourceVersion"])
        except StaleWrite:
            return obj

    # -- patch ----------------------------------------------------------------------------

    def patch(self, rtype, ns, name, raw, content_type, ctx, sub=None):
        """PATCH: returns (200, view), or (201, view) for an apply that creates."""
        ctype = (content_type or "").split(";")[0].strip().lower()
        if ctype not in _PATCH_TYPES:
            raise E.unsupported_media(ctype, _PATCH_TYPES)
        if ctype == "application/strategic-merge-patch+json" and not rtype.builtin and \
                sub != "scale":
            raise E.unsupported_media(ctype, [t for t in _PATCH_TYPES if "strategic" not in t])
        try:
            patch = json.loads(raw or b"null")
        except ValueError as e:
            if ctype == "application/apply-patch+yaml":
                raise E.unsupported_media(ctype + " (YAML bodies)", ["JSON bodies"]) from None
            raise E.bad_request("error decoding patch: %s" % e) from None
        if ctype == "application/apply-patch+yaml":
            if not ctx.field_manager:
                raise E.bad_request("PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: "
                                    "Required value: is required for apply patch")
            key_ns = ns if rtype.namespaced else ""
            if self.store.get(rtype.storage, key_ns, name) is None:
                if sub:
                    raise E.not_found(rtype.group, rtype.resource, name)
                body = copy.deepcopy(patch) if isinstance(patch, dict) else {}
                if _meta(body).get("name", name) != name:
                    raise E.bad_request("the name of the object (%s) does not match the name "
                                        "on the URL (%s)" % (body["metadata"]["name"], name))
                body["metadata"]["name"] = name
                return self.create(rtype, ns, body, ctx)

        def make_view(cur):
            base = self.view(rtype, sub, cur)
            if ctype == "application/json-patch+json":
                out = json_patch(base, patch)
            elif ctype == "application/merge-patch+json" or (
                    ctype == "application/apply-patch+yaml" and not rtype.builtin):
                if not isinstance(patch, dict):
                    raise E.bad_request("merge patch must be a JSON object")
                out = merge_patch(base, patch)
            else:
                kind = "Scale" if sub == "scale" else rtype.kind
                out = strategic_merge_patch(kind, base, patch)
            if not isinstance(out, dict):
                raise E.bad_request("the patched object is not a JSON object")
            out = self._check_kind(rtype, sub, out)
            meta = _meta(out)
            if meta.get("name") != name:
                raise E.bad_request("the name of the object (%s) does not match the name on "
                                    "the URL (%s)" % (meta.get("name", ""), name))
            return out
        return self._update_loop(rtype, sub, ns, name, make_view, ctx, conditional=False)

    def mutate(self, rtype, ns, name, fn, sub=None):
        """Internal read-modify-write for controllers (no admission). fn(copy) edits the
        object in place or returns False to skip. Returns the stored object or None."""
        ctx = Ctx(admit=False)

        def make_view(cur):
            obj = copy.deepcopy(self.view(rtype, sub, cur))
            if fn(obj) is False:
                raise _Skip()
            return obj
        try:
            return self._update_loop(rtype, sub, ns, name, make_view, ctx, False)[1]
        except (_Skip, E.ApiError) as e:
            if isinstance(e, E.ApiError):
                self.log.debug("internal update of %s %s/%s failed: %s", rtype.resource, ns,
                               name, e)
            return None

    def bind(self, pods, ns, name, node, ctx, binding=None):
        """pods/binding: set spec.nodeName once (409 if already bound) and mark the pod
        PodScheduled, the only way nodeName changes after create."""
        if ctx.admit and binding is not None:
            attrs = Attributes("CREATE", pods, "binding", ns, name,
                               {"group": "", "version": "v1", "kind": "Binding"}, None,
                               ctx.dry_run, self._options("CREATE", ctx))
            binding = self.admission.mutate(attrs, binding, ctx.warnings)
            self.admission.validate(attrs, binding, ctx.warnings)
        for _ in range(RETRIES):
            cur = self.store.get(pods.storage, ns, name)
            if cur is None:
                raise E.not_found("", "pods", name)
            if cur["metadata"].get("deletionTimestamp"):
                raise E.conflict("", "pods", name, "pod %s is being deleted, cannot be "
                                 "assigned to a host" % name)
            bound = (cur.get("spec") or {}).get("nodeName")
            if bound:
                raise E.conflict("", "pods", name, 'pod %s is already assigned to node "%s"'
                                 % (name, bound))
            new = copy.deepcopy(cur)
            new["spec"]["nodeName"] = node
            conds = new.setdefault("status", {}).setdefault("conditions", [])
            conds[:] = [c for c in conds if c.get("type") != "PodScheduled"]
            conds.append({"type": "PodScheduled", "status": "True", "lastProbeTime": None,
                          "lastTransitionTime": now()})
            if ctx.dry_run:
                return new
            try:
                return self.store.commit(pods.storage, new, "MODIFIED",
                                         expect_rv=cur["metadata"]["resourceVersion"])
            except StaleWrite:
                continue
        raise E.conflict("", "pods", name)

    # -- delete ---------------------------------------------------------------------------

    def delete(self, rtype, ns, name, options, ctx):
        """DELETE: returns (200, object view or Status)."""
        key_ns = ns if rtype.namespaced else ""
        for _ in range(RETRIES):
            cur = self.store.get(rtype.storage, key_ns, name)
            if cur is None:
                raise E.not_found(rtype.group, rtype.resource, name)
            try:
                return self._delete_once(rtype, ns, cur, options, ctx)
            except StaleWrite:
                continue
        raise E.conflict(rtype.group, rtype.resource, name)

    def _check_preconditions(self, rtype, cur, options):
        pre = options.get("preconditions") or {}
        meta = cur["metadata"]
        name = meta["name"]
        if pre.get("uid") and pre["uid"] != meta.get("uid"):
            raise E.conflict(rtype.group, rtype.resource, name,
                             "Precondition failed: UID in precondition: %s, UID in object "
                             "meta: %s" % (pre["uid"], meta.get("uid")))
        if pre.get("resourceVersion") and pre["resourceVersion"] != meta["resourceVersion"]:
            raise E.conflict(rtype.group, rtype.resource, name,
                             "Precondition failed: ResourceVersion in precondition: %s, "
                             "ResourceVersion in object meta: %s"
                             % (pre["resourceVersion"], meta["resourceVersion"]))

    def _grace(self, cur, options):
        spec, status = cur.get("spec") or {}, cur.get("status") or {}
        grace = options.get("gracePeriodSeconds")
        if grace is None:
            grace = spec.get("terminationGracePeriodSeconds", 30)
        if not spec.get("nodeName") or status.get("phase") in ("Succeeded", "Failed"):
            grace = 0
        if grace < 0:
            grace = 1
        return grace

    def _delete_once(self, rtype, ns, cur, options, ctx):
        name = cur["metadata"]["name"]
        self._check_preconditions(rtype, cur, options)
        if rtype.storage == NS_STORAGE and name in IMMORTAL_NAMESPACES:
            raise E.forbidden("", "namespaces", name, "this namespace may not be deleted")
        if ctx.admit:
            opts = {"kind": "DeleteOptions", "apiVersion": "meta.k8s.io/v1"}
            opts.update({k: v for k, v in options.items() if k not in ("kind", "apiVersion")})
            attrs = Attributes("DELETE", rtype, None, ns, name, self._admission_kind(rtype, None),
                               self.view(rtype, None, cur), ctx.dry_run, opts)
            self.admission.mutate(attrs, None, ctx.warnings)
            self.admission.validate(attrs, None, ctx.warnings)
        new = copy.deepcopy(cur)
        meta = new["metadata"]
        finalizers = list(meta.get("finalizers") or [])
        policy = options.get("propagationPolicy")
        if options.get("orphanDependents") is True:
            policy = "Orphan"
        want = {"Orphan": "orphan", "Foreground": "foregroundDeletion"}.get(policy)
        if want and want not in finalizers and not meta.get("deletionTimestamp"):
            finalizers.append(want)
        first = not meta.get("deletionTimestamp")
        if rtype.storage == NS_STORAGE:
            meta["finalizers"] = finalizers
            if not finalizers:
                meta.pop("finalizers")
            meta.setdefault("deletionTimestamp", now())
            meta["deletionGracePeriodSeconds"] = 0
            new.setdefault("status", {})["phase"] = "Terminating"
            return self._commit_terminating(rtype, cur, new, ctx)
        if rtype.storage == CRD_STORAGE:
            if CRD_CLEANUP not in finalizers:
                finalizers.append(CRD_CLEANUP)
            conds = new.setdefault("status", {}).setdefault("conditions", [])
            conds[:] = [c for c in conds if c.get("type") != "Terminating"]
            conds.append({"type": "Terminating", "status": "True", "lastTransitionTime": now(),
                          "reason": "InstanceDeletionPending",
                          "message": "CustomResourceDefinition marked for deletion; "
                                     "CustomResource deletion will begin soon"})
        if rtype.graceful:
            grace = self._grace(cur, options)
            if grace > 0:
                if first:
                    meta["deletionTimestamp"] = now(grace)
                    meta["deletionGracePeriodSeconds"] = grace
                else:
                    old_grace = meta.get("deletionGracePeriodSeconds", 0)
                    if grace >= old_grace:
                        return 200, self.view(rtype, None, cur)
                    start = parse_ts(meta["deletionTimestamp"]) - datetime.timedelta(
                        seconds=old_grace)
                    meta["deletionTimestamp"] = (start + datetime.timedelta(
                        seconds=grace)).strftime("%Y-%m-%dT%H:%M:%SZ")
                    meta["deletionGracePeriodSeconds"] = grace
                if finalizers:
                    meta["finalizers"] = finalizers
                if first and meta.get("generation", 0) > 0:
                    meta["generation"] += 1
                return self._commit_terminating(rtype, cur, new, ctx)
        if finalizers:
            meta["finalizers"] = finalizers
            meta.setdefault("deletionTimestamp", now())
            meta["deletionGracePeriodSeconds"] = 0
            if first and meta.get("generation", 0) > 0:
                meta["generation"] += 1
            return self._commit_terminating(rtype, cur, new, ctx)
        if ctx.dry_run:
            return 200, self._delete_answer(rtype, cur)
        gone = self.store.commit(rtype.storage, cur, "DELETED",
                                 expect_rv=cur["metadata"]["resourceVersion"])
        return 200, self._delete_answer(rtype, gone)

    def _commit_terminating(self, rtype, cur, new, ctx):
        if ctx.dry_run or new == cur:
            return 200, self.view(rtype, None, new)
        stored = self.store.commit(rtype.storage, new, "MODIFIED",
                                   expect_rv=cur["metadata"]["resourceVersion"])
        return 200, self.view(rtype, None, self._maybe_finish(rtype, stored))

    def _delete_answer(self, rtype, obj):
        if rtype.delete_returns_object:
            return self.view(rtype, None, obj)
        meta = obj["metadata"]
        return E.success_status(rtype.group, rtype.resource, meta["name"], meta.get("uid"))


class _Skip(Exception):
    pass
