"""Request routing and the read verbs (kube-api.md §1.1, §1.6, §2): URL parsing, verb
mapping, content negotiation (JSON, Table, PartialObjectMetadata), get, list with
selectors / resourceVersion semantics / limit+continue, discovery and OpenAPI endpoints,
and the pods/binding, pods/eviction and /scale subresources. Writes go to writes.Writer,
watches to watch.py, kubelet-bound subresources to kubelet_proxy.py.

Owns no state of its own.
"""

import base64
import json
import urllib.parse

import apierrors as E
import discovery
import kubelet_proxy
import tables
import typecheck
import watch
from selection import check_fields, match_fields, parse_fields, parse_labels
from store import HistoryExpired
from wire import TABLE_MEDIA, Response, meta_media, negotiate
from writes import Ctx, decode_body

_CONTINUE_TOO_OLD = (
    "The provided continue parameter is too old to display a consistent list result. You can "
    "start a new list without the continue parameter, or use the continue token in this "
    "response to retrieve the remainder of the results. Continuing with the provided token "
    "results in an inconsistent list - objects that were created, modified, or deleted between "
    "the time the first chunk was returned and now may show up in the list.")


class Api:
    def __init__(self, store, registry, writer, opts, log):
        self.store = store
        self.registry = registry
        self.writer = writer
        self.opts = opts
        self.log = log
        self.server_address = ""

    # -- routing --------------------------------------------------------------------------

    def handle(self, req):
        parts = [urllib.parse.unquote(p) for p in req.path.split("/") if p]
        if not parts:
            return Response(body={"paths": ["/api", "/api/v1", "/apis", "/healthz",
                                            "/openapi/v2", "/version"]})
        head = parts[0]
        if head in ("healthz", "livez", "readyz") and len(parts) == 1:
            return Response(body=b"ok", ctype="text/plain; charset=utf-8")
        if head == "version" and len(parts) == 1:
            return Response(body=discovery.version_info(self.opts.git_version))
        if head == "openapi":
            if parts[1:] == ["v2"]:
                return Response(body=b"", ctype=discovery.OPENAPI_V2_MEDIA)
            raise E.path_not_found()
        if head == "api":
            if len(parts) == 1:
                return self._discovery(req, True)
            if parts[1] != "v1":
                raise E.path_not_found()
            return self._group_version(req, "", "v1", parts[2:])
        if head == "apis":
            if len(parts) == 1:
                return self._discovery(req, False)
            if len(parts) == 2:
                with self.store.lock:
                    doc = discovery.api_group(self.registry, parts[1])
                if doc is None:
                    raise E.path_not_found()
                return Response(body=doc)
            return self._group_version(req, parts[1], parts[2], parts[3:])
        raise E.path_not_found()

    def _discovery(self, req, legacy):
        if req.method != "GET":
            raise E.method_not_allowed()
        with self.store.lock:
            if self.opts.aggregated_discovery and \
                    discovery.wants_aggregated(req.headers.get("Accept")):
                return Response(body=discovery.aggregated(self.registry, legacy),
                                ctype=discovery.V2_MEDIA)
            if legacy:
                return Response(body=discovery.api_versions(self.server_address))
            return Response(body=discovery.api_group_list(self.registry))

    def _group_version(self, req, group, version, rest):
        with self.store.lock:
            if not rest:
                doc = discovery.resource_list(self.registry, group, version)
                if doc is None:
                    raise E.path_not_found()
                return Response(body=doc)
            watching = False
            if rest[0] == "watch":
                watching, rest = True, rest[1:]
            ns, resource, name, sub = self._split(rest)
            rtype = self.registry.lookup(group, version, resource)
        if rtype is None or (ns is not None and not rtype.namespaced) or \
                (rtype.namespaced and ns is None and name is not None) or \
                (sub is not None and sub not in rtype.subresources):
            raise E.path_not_found()
        if watching:
            req.query["watch"] = ["true"]
        return self._dispatch(req, rtype, ns, name, sub)

    @staticmethod
    def _split(rest):
        """(namespace or None, resource, name or None, subresource or None)."""
        ns = None
        if rest[0] == "namespaces" and len(rest) >= 3 and not (
                len(rest) == 3 and rest[2] in ("status", "finalize")):
            ns, rest = rest[1], rest[2:]
        if len(rest) > 3 or not rest:
            raise E.path_not_found()
        rest = rest + [None] * (3 - len(rest))
        return ns, rest[0], rest[1], rest[2]

    def _dispatch(self, req, rtype, ns, name, sub):
        m = req.method
        if sub in ("log", "exec", "attach", "portforward"):
            if sub == "log" and m != "GET" or sub != "log" and m not in ("GET", "POST"):
                raise E.method_not_allowed()
            return kubelet_proxy.handle(self, req, rtype, ns, name, sub)
        if sub in ("binding", "eviction") or rtype.resource == "bindings":
            if m != "POST":
                raise E.method_not_allowed()
            return self._binding(req, rtype, ns, name, sub)
        if m == "GET":
            if name is None:
                if req.flag("watch"):
                    return watch.serve(self, req, rtype, ns)
                return self._list(req, rtype, ns)
            return self._get(req, rtype, ns, name, sub)
        ctx = Ctx(req.query)
        if m == "POST" and name is None:
            body = decode_body(req.body, req.headers.get("Content-Type"))
            code, obj = self.writer.create(rtype, ns, body, ctx)
        elif m == "PUT" and name is not None:
            body = decode_body(req.body, req.headers.get("Content-Type"))
            code, obj = self.writer.update(rtype, ns, name, body, ctx, sub)
        elif m == "PATCH" and name is not None:
            code, obj = self.writer.patch(rtype, ns, name, req.body,
                                          req.headers.get("Content-Type"), ctx, sub)
        elif m == "DELETE" and sub is None:
            opts = self._delete_options(req)
            ctx.dry_run = ctx.dry_run or opts.get("dryRun") == ["All"]
            if name is None:
                code, obj = self._delete_collection(req, rtype, ns, opts, ctx)
            else:
                code, obj = self.writer.delete(rtype, ns, name, opts, ctx)
        else:
            raise E.method_not_allowed()
        headers = [("Warning", '299 - "%s"' % w.replace('"', "'")) for w in ctx.warnings]
        return Response(code, obj, headers=headers)

    # -- reads ----------------------------------------------------------------------------

    def _get(self, req, rtype, ns, name, sub):
        mode = negotiate(req.headers.get("Accept"), False)
        obj = self.store.get(rtype.storage, ns if rtype.namespaced else "", name)
        if obj is None:
            raise E.not_found(rtype.group, rtype.resource, name)
        view = self.writer.view(rtype, sub, obj)
        if sub == "scale" or mode == "json":
            return Response(body=view)
        if mode == "meta":
            return Response(body=tables.partial_metadata(view), ctype=meta_media(False))
        return Response(body=tables.table(rtype, [(obj, view)], obj["metadata"]["resourceVersion"],
                                          self._include(req)), ctype=TABLE_MEDIA)

    @staticmethod
    def _include(req):
        inc = req.q("includeObject", "Metadata")
        if inc not in ("None", "Metadata", "Object"):
            raise E.bad_request('includeObject: Unsupported value: "%s"' % inc)
        return inc

    def selectors(self, req, rtype):
        labels = parse_labels(req.q("labelSelector"))
        fields = parse_fields(req.q("fieldSelector"))
        check_fields(fields, rtype.field_labels())
        return lambda o: labels.matches((o.get("metadata") or {}).get("labels")) and \
            match_fields(fields, rtype.field_set(o))

    def wait_for_rv(self, rv):
        if rv > self.store.current_rv() and not self.store.wait_for_rv(
                rv, self.opts.too_large_wait):
            raise E.timeout("Too large resource version: %d, current: %d"
                            % (rv, self.store.current_rv()), "ResourceVersionTooLarge")

    @staticmethod
    def parse_rv(text, what="resourceVersion"):
        try:
            value = int(text)
            if value < 0:
                raise ValueError
            return value
        except ValueError:
            raise E.bad_request('invalid %s: "%s"' % (what, text)) from None

    def _snapshot(self, req, rtype, ns_filter):
        """(objects, list RV, start key) for the list's rv / match / continue options."""
        rv, match, cont = req.q("resourceVersion"), req.q("resourceVersionMatch"), req.q("continue")
        if match and not rv:
            raise E.bad_request("resourceVersionMatch is forbidden unless resourceVersion is "
                                "provided")
        if match not in ("", "Exact", "NotOlderThan"):
            raise E.bad_request('resourceVersionMatch: Unsupported value: "%s"' % match)
        if match == "Exact" and rv == "0":
            raise E.bad_request("resourceVersionMatch \"exact\" is forbidden for "
                                "resourceVersion \"0\"")
        if cont:
            if rv and rv != "0":
                raise E.bad_request("specifying resource version is not allowed when using "
                                    "continue")
            try:
                token = json.loads(base64.urlsafe_b64decode(cont.encode()))
                at, start = int(token["rv"]), tuple(token["start"])
            except (ValueError, KeyError, TypeError):
                raise E.bad_request("continue key is not valid: %s" % cont) from None
            try:
                return self.store.list_at(rtype.storage, ns_filter, at), at, start
            except HistoryExpired:
                raise E.expired(_CONTINUE_TOO_OLD) from None
        if match == "Exact":
            at = self.parse_rv(rv)
            try:
                return self.store.list_at(rtype.storage, ns_filter, at), at, None
            except HistoryExpired as e:
                raise E.expired(str(e)) from None
        if rv not in ("", "0"):
            self.wait_for_rv(self.parse_rv(rv))
        objs, at = self.store.list(rtype.storage, ns_filter)
        return objs, at, None

    def _list(self, req, rtype, ns):
        mode = negotiate(req.headers.get("Accept"), True)
        match = self.selectors(req, rtype)
        ns_filter = ns if rtype.namespaced else None
        objs, at, start = self._snapshot(req, rtype, ns_filter)
        if start is not None:
            objs = [o for o in objs if (o["metadata"].get("namespace", ""),
                                        o["metadata"]["name"]) > start]
        objs = [o for o in objs if match(o)]
        limit = self.parse_rv(req.q("limit") or "0", "limit")
        meta = {"resourceVersion": str(at)}
        if limit > 0 and req.q("resourceVersion") != "0" and len(objs) > limit:
            last = objs[limit - 1]["metadata"]
            token = {"rv": at, "start": [last.get("namespace", ""), last["name"]]}
            meta["continue"] = base64.urlsafe_b64encode(json.dumps(token).encode()).decode()
            if not req.q("labelSelector") and not req.q("fieldSelector"):
                meta["remainingItemCount"] = len(objs) - limit
            objs = objs[:limit]
        views = [self.writer.view(rtype, None, o) for o in objs]
        if mode == "table":
            return Response(body=tables.table(rtype, list(zip(objs, views)), at,
                                              self._include(req),
                                              meta_extra={k: v for k, v in meta.items()
                                                          if k != "resourceVersion"}),
                            ctype=TABLE_MEDIA)
        if mode == "meta":
            return Response(body={"kind": "PartialObjectMetadataList",
                                  "apiVersion": "meta.k8s.io/v1", "metadata": meta,
                                  "items": [tables.partial_metadata(v) for v in views]},
                            ctype=meta_media(True))
        if rtype.builtin:
            views = [{k: v for k, v in o.items() if k not in ("kind", "apiVersion")}
                     for o in views]
        return Response(body={"kind": rtype.kind + "List", "apiVersion": rtype.api_version,
                              "metadata": meta, "items": views})

    # -- delete helpers -------------------------------------------------------------------

    def _delete_options(self, req):
        opts = {}
        if req.body and req.body.strip():
            opts = decode_body(req.body, req.headers.get("Content-Type"))
            if not isinstance(opts, dict):
                raise E.bad_request("DeleteOptions must be a JSON object")
            opts = typecheck.check_delete_options(opts)
        if req.q("gracePeriodSeconds"):
            opts["gracePeriodSeconds"] = self.parse_rv(req.q("gracePeriodSeconds"),
                                                       "gracePeriodSeconds")
        if req.q("propagationPolicy"):
            opts["propagationPolicy"] = req.q("propagationPolicy")
        policy = opts.get("propagationPolicy")
        if policy not in (None, "Background", "Foreground", "Orphan"):
            raise E.bad_request('propagationPolicy: Unsupported value: "%s": supported values: '
                                '"Foreground", "Background", "Orphan", "nil"' % policy)
        if req.q("dryRun") == "All":
            opts["dryRun"] = ["All"]
        return opts

    def _delete_collection(self, req, rtype, ns, opts, ctx):
        match = self.selectors(req, rtype)
        objs, at = self.store.list(rtype.storage, ns if rtype.namespaced else None)
        items = []
        for o in objs:
            if not match(o):
                continue
            try:
                _, out = self.writer.delete(rtype, o["metadata"].get("namespace", ""),
                                            o["metadata"]["name"], opts, ctx)
            except E.ApiError as e:
                if e.code == 404:
                    continue
                raise
            if out.get("kind") != "Status":
                items.append(out)
        body = {"kind": rtype.kind + "List", "apiVersion": rtype.api_version,
                "metadata": {"resourceVersion": str(self.store.current_rv())}, "items": items}
        return 200, body

    # -- binding and eviction -------------------------------------------------------------

    def _binding(self, req, rtype, ns, name, sub):
        ctx = Ctx(req.query)
        body = decode_body(req.body, req.headers.get("Content-Type"))
        body = typecheck.check_named("Eviction" if sub == "eviction" else "Binding",
                                     typecheck.EVICTION if sub == "eviction"
                                     else typecheck.BINDING, body)
        pods = self.registry.lookup("", "v1", "pods")
        if sub == "eviction":
            if (body.get("metadata") or {}).get("name", name) != name:
                raise E.bad_request("name in URL does not match name in Eviction object")
            opts = body.get("deleteOptions") or {}
            self.writer.delete(pods, ns, name, opts, ctx)
            return Response(201, {"kind": "Status", "apiVersion": "v1", "metadata": {},
                                  "status": "Success", "code": 201})
        pod_name = name if sub == "binding" else (body.get("metadata") or {}).get("name")
        if sub == "binding" and (body.get("metadata") or {}).get("name", name) != name:
            raise E.bad_request("name in URL does not match name in Binding object")
        target = body.get("target") or {}
        if not target.get("name") or target.get("kind", "Node") != "Node":
            raise E.invalid("", "Binding", pod_name or "", [
                ("target.name", "required", "")])
        self.writer.bind(pods, ns, pod_name, target["name"], ctx, body)
        return Response(201, {"kind": "Status", "apiVersion": "v1", "metadata": {},
                              "status": "Success", "code": 201})
