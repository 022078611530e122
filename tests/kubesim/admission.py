"""Admission webhooks called like kube-apiserver (kube-api.md §4): Mutating then Validating
WebhookConfigurations, rules / namespaceSelector / objectSelector matching, AdmissionReview
v1 over HTTPS verified with the caBundle, `?timeout=Ns`, failurePolicy, response
validation, JSONPatch responses and the 400 floor on denials.

Owns no state: configurations are read from the store on every request, so a created or
deleted configuration takes effect at once.
"""

import base64
import http.client
import json
import socket
import ssl
import threading
import urllib.parse
import uuid

from apierrors import ApiError, internal, bad_request
from patching import json_patch
from selection import selector_from_label_selector

MUTATING = ("admissionregistration.k8s.io", "mutatingwebhookconfigurations")
VALIDATING = ("admissionregistration.k8s.io", "validatingwebhookconfigurations")
USER = {"username": "kubernetes-admin", "groups": ["system:masters", "system:authenticated"]}


class Attributes:
    """What a webhook is told about one request."""

    def __init__(self, operation, rtype, sub, namespace, name, kind, old=None,
                 dry_run=False, options=None):
        self.operation = operation
        self.rtype = rtype
        self.sub = sub or ""
        self.namespace = namespace if rtype.namespaced else ""
        self.name = name
        self.kind = kind  # {group, version, kind} of the object as sent
        self.old = old
        self.dry_run = dry_run
        self.options = options


class _Failure(Exception):
    pass


class _SvcConnection(http.client.HTTPSConnection):
    """Dial a mapped address but verify TLS for `<svc>.<ns>.svc`, as the apiserver does."""

    def __init__(self, addr, server_name, context, timeout):
        host, port = addr.rsplit(":", 1)
        super().__init__(host, int(port), context=context, timeout=timeout)
        self.server_name = server_name
        self.ctx = context

    def connect(self):
        sock = socket.create_connection((self.host, self.port), self.timeout)
        self.sock = self.ctx.wrap_socket(sock, server_hostname=self.server_name)


def _matches_rule(rule, attrs):
    rt = attrs.rtype
    if not _listed(rule.get("operations"), attrs.operation):
        return False
    if not _listed(rule.get("apiGroups"), rt.group) or \
            not _listed(rule.get("apiVersions"), rt.version):
        return False
    scope = rule.get("scope", "*")
    if scope == "Namespaced" and not rt.namespaced or scope == "Cluster" and rt.namespaced:
        return False
    for entry in rule.get("resources") or []:
        res, _, sub = entry.partition("/")
        if res in ("*", rt.resource) and sub in ("*", attrs.sub):
            return True
    return False


def _listed(values, value):
    return bool(values) and ("*" in values or value in values)


class Admission:
    def __init__(self, store, log, service_map=None):
        self.store = store
        self.log = log
        self.service_map = service_map or {}

    # -- selection -----------------------------------------------------------------------

    def _configs(self, storage):
        objs, _ = self.store.list(storage)
        hooks = []
        for cfg in sorted(objs, key=lambda o: o["metadata"]["name"]):
            for wh in cfg.get("webhooks") or []:
                hooks.append(wh)
        return hooks

    def _ns_labels(self, attrs, obj):
        if attrs.rtype.group == "" and attrs.rtype.resource == "namespaces":
            src = obj or attrs.old or {}
            return (src.get("metadata") or {}).get("labels") or {}
        ns = self.store.get(("", "namespaces"), "", attrs.namespace)
        return ((ns or {}).get("metadata") or {}).get("labels") or {}

    def _applies(self, wh, attrs, obj):
        if not any(_matches_rule(r, attrs) for r in wh.get("rules") or []):
            return False
        rt = attrs.rtype
        is_ns = rt.group == "" and rt.resource == "namespaces"
        if rt.namespaced or is_ns:
            sel = selector_from_label_selector(wh.get("namespaceSelector") or {})
            if not sel.matches(self._ns_labels(attrs, obj)):
                return False
        sel = selector_from_label_selector(wh.get("objectSelector") or {})
        if not sel.empty():
            labels = [((o or {}).get("metadata") or {}).get("labels") or {}
                      for o in (obj, attrs.old) if o is not None]
            if not any(sel.matches(lb) for lb in labels):
                return False
        return True

    def _skip(self, attrs):
        rt = attrs.rtype
        return rt.group == "admissionregistration.k8s.io"

    # -- calls ---------------------------------------------------------------------------

    def _review(self, attrs, obj, uid):
        rt = attrs.rtype
        resource = {"group": rt.group, "version": rt.version, "resource": rt.resource}
        req = {
            "uid": uid, "kind": attrs.kind, "resource": resource,
            "requestKind": attrs.kind, "requestResource": resource,
            "name": attrs.name or "", "namespace": attrs.namespace or "",
            "operation": attrs.operation, "userInfo": USER,
            "object": obj, "oldObject": attrs.old, "dryRun": bool(attrs.dry_run),
            "options": attrs.options,
        }
        if attrs.sub:
            req["subResource"] = attrs.sub
            req["requestSubResource"] = attrs.sub
        if not req["name"]:
            del req["name"]
        if not req["namespace"]:
            del req["namespace"]
        return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": req}

    def _connection(self, wh, timeout):
        cc = wh.get("clientConfig") or {}
        ctx = ssl.create_default_context()
        if cc.get("caBundle"):
            try:
                pem = base64.b64decode(cc["caBundle"]).decode()
                ctx = ssl.create_default_context(cadata=pem)
            except (ValueError, ssl.SSLError) as e:
                raise _Failure("invalid caBundle: %s" % e) from None
        if cc.get("url"):
            url = cc["url"]
            u = urllib.parse.urlsplit(url)
            if u.scheme != "https" or not u.hostname:
                raise _Failure("webhook URL %r must be an https URL" % url)
            conn = http.client.HTTPSConnection(u.hostname, u.port or 443, context=ctx,
                                               timeout=timeout)
            return conn, url, u.path or "/"
        svc = cc.get("service") or {}
        key = "%s/%s" % (svc.get("namespace"), svc.get("name"))
        addr = self.service_map.get(key)
        port = svc.get("port", 443)
        path = svc.get("path") or "/"
        url = "https://%s.%s.svc:%d%s" % (svc.get("name"), svc.get("namespace"), port, path)
        if addr is None:
            raise _Failure('failed to call webhook: Post "%s": dial tcp: lookup %s.%s.svc: no '
                           'such host' % (url, svc.get("name"), svc.get("namespace")))
        server_name = "%s.%s.svc" % (svc.get("name"), svc.get("namespace"))
        return _SvcConnection(addr, server_name, ctx, timeout), url, path

    def _call(self, wh, attrs, obj):
        """POST the AdmissionReview; returns the validated response dict."""
        timeout = wh.get("timeoutSeconds", 10)
        uid = str(uuid.uuid4())
        body = json.dumps(self._review(attrs, obj, uid)).encode()
        conn, url, path = self._connection(wh, timeout)
        query = "timeout=%ds" % timeout
        full = "%s?%s" % (url, query)
        try:
            conn.request("POST", "%s?%s" % (path, query), body=body, headers={
                "Content-Type": "application/json", "Accept": "application/json, */*"})
            resp = conn.getresponse()
            data = resp.read()
        except (OSError, http.client.HTTPException) as e:
            raise _Failure('failed to call webhook: Post "%s": %s' % (full, e)) from None
        finally:
            conn.close()
        if resp.status != 200:
            raise _Failure("received invalid webhook response: expected status 200, got %d"
                           % resp.status)
        try:
            review = json.loads(data)
        except ValueError as e:
            raise _Failure("received invalid webhook response: %s" % e) from None
        if not isinstance(review, dict) or review.get("apiVersion") != "admission.k8s.io/v1" \
                or review.get("kind") != "AdmissionReview":
            raise _Failure('expected webhook response of admission.k8s.io/v1, Kind=AdmissionReview'
                           ', got %s, Kind=%s' % ((review or {}).get("apiVersion") if
                                                  isinstance(review, dict) else None,
                                                  (review or {}).get("kind") if
                                                  isinstance(review, dict) else None))
        out = review.get("response")
        if not isinstance(out, dict):
            raise _Failure("webhook response was absent")
        if out.get("uid") != uid:
            raise _Failure('expected response.uid="%s", got "%s"' % (uid, out.get("uid", "")))
        return out

    @staticmethod
    def _denial(name, status):
        status = status if isinstance(status, dict) else {}
        code = status.get("code") or 0
        code = code if code >= 400 else 400
        denied = 'admission webhook "%s" denied the request' % name
        if status.get("message"):
            msg = "%s: %s" % (denied, status["message"])
        elif status.get("reason"):
            msg = "%s: %s" % (denied, status["reason"])
        else:
            msg = denied + " without explanation"
        return ApiError(code, status.get("reason", ""), msg, status.get("details"))

    def _failed(self, wh, err):
        name = wh.get("name", "")
        if wh.get("failurePolicy", "Fail") == "Ignore":
            self.log.debug("webhook %s failed, ignoring under failurePolicy Ignore: %s",
                           name, err)
            return None
        return internal('failed calling webhook "%s": %s' % (name, err))

    def _dry_run_ok(self, wh, attrs):
        return not attrs.dry_run or wh.get("sideEffects") in ("None", "NoneOnDryRun")

    def mutate(self, attrs, obj, warnings):
        """Run matching mutating webhooks serially; returns the (patched) object."""
        if self._skip(attrs):
            return obj
        for wh in self._configs(MUTATING):
            if not self._applies(wh, attrs, obj):
                continue
            if not self._dry_run_ok(wh, attrs):
                raise bad_request('admission webhook "%s" does not support dry run'
                                  % wh.get("name"))
            try:
                resp = self._call(wh, attrs, obj)
                if ("patch" in resp) != ("patchType" in resp):
                    raise _Failure("webhook returned %s without %s" % (
                        ("patch", "patchType") if "patch" in resp else ("patchType", "patch")))
            except _Failure as e:
                err = self._failed(wh, e)
                if err:
                    raise err from None
                continue
            warnings.extend(resp.get("warnings") or [])
            if not resp.get("allowed"):
                raise self._denial(wh.get("name", ""), resp.get("status"))
            if "patch" in resp and obj is not None:
                try:
                    if resp["patchType"] != "JSONPatch":
                        raise _Failure('unsupported patch type "%s"' % resp["patchType"])
                    ops = json.loads(base64.b64decode(resp["patch"]))
                    obj = json_patch(obj, ops)
                except (_Failure, ValueError, ApiError) as e:
                    err = self._failed(wh, "JSON patch failed: %s" % e)
                    if err:
                        raise err from None
        return obj

    def validate(self, attrs, obj, warnings):
        """Run matching validating webhooks in parallel; raise the first rejection."""
        if self._skip(attrs):
            return
        hooks = [wh for wh in self._configs(VALIDATING) if self._applies(wh, attrs, obj)]
        for wh in hooks:
            if not self._dry_run_ok(wh, attrs):
                raise bad_request('admission webhook "%s" does not support dry run'
                                  % wh.get("name"))
        results = [None] * len(hooks)

        def run(i, wh):
            try:
                resp = self._call(wh, attrs, obj)
                if "patch" in resp or "patchType" in resp:
                    raise _Failure("validating webhook may not return a patch or patchType")
                results[i] = ("ok", resp)
            except _Failure as e:
                results[i] = ("fail", e)
        threads = [threading.Thread(target=run, args=(i, wh), daemon=True)
                   for i, wh in enumerate(hooks)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for wh, (kind, val) in zip(hooks, results):
            if kind == "fail":
                err = self._failed(wh, val)
                if err:
                    raise err
                continue
            warnings.extend(val.get("warnings") or [])
            if not val.get("allowed"):
                raise self._denial(wh.get("name", ""), val.get("status"))
