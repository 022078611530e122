"""The apiserver -> kubelet paths (kube-api.md §2.6-§2.8): pods/log proxied to
`https://<node address>:<kubelet port>/containerLogs/...` and streamed back; pods/exec,
attach and portforward SPDY upgrades forwarded with the query rewrite and then relayed
byte for byte. WebSocket upgrades are refused with 400 so kubectl 1.30+ falls back to
SPDY (§2.7 phase 1). The kubelet's certificate is not verified, as the real apiserver does
not verify it by default.

Owns the sockets of one proxied request, on that request's thread (plus one pump thread
per upgraded connection).
"""

import http.client
import socket
import ssl
import threading
import urllib.parse

import apierrors as E
from admission import Attributes
from wire import Response

ADDRESS_ORDER = ("InternalIP", "Hostname", "InternalDNS", "ExternalIP", "ExternalDNS")
_LOG_BOOLS = ("follow", "previous", "timestamps")
_LOG_INTS = ("sinceSeconds", "tailLines", "limitBytes")
_HOP_HEADERS = {"host", "authorization", "content-length", "transfer-encoding", "keep-alive"}
_REASONS = {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound",
            409: "Conflict", 500: "InternalError", 503: "ServiceUnavailable"}


def _tls_context():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def kubelet_location(api, node_name):
    """(host, port) the apiserver dials for a node, per §2.8 (InternalIP preferred)."""
    node = api.store.get(("", "nodes"), "", node_name)
    if node is None:
        raise E.not_found("", "nodes", node_name)
    status = node.get("status") or {}
    addrs = status.get("addresses") or []
    host = None
    for kind in ADDRESS_ORDER:
        host = next((a.get("address") for a in addrs if a.get("type") == kind and
                     a.get("address")), None)
        if host:
            break
    if not host:
        raise E.bad_request("no preferred addresses found; known addresses: []")
    port = ((status.get("daemonEndpoints") or {}).get("kubeletEndpoint") or {}).get("Port") or 0
    return host, port if port > 0 else 10250


def _container(pod, requested):
    names = [c.get("name") for c in (pod.get("spec") or {}).get("containers") or []]
    name = pod["metadata"]["name"]
    if requested:
        init = [c.get("name") for c in (pod.get("spec") or {}).get("initContainers") or []]
        if requested not in names + init:
            raise E.bad_request("container %s is not valid for pod %s" % (requested, name))
        return requested
    if len(names) == 1:
        return names[0]
    raise E.bad_request("a container name must be specified for pod %s, choose one of: [%s]"
                        % (name, " ".join(names)))


def _kubelet_error(code, body):
    return E.ApiError(code, _REASONS.get(code, ""), body.decode("utf-8", "replace").strip())


def _log_query(req):
    out = []
    for key in _LOG_BOOLS:
        if req.flag(key):
            out.append((key, "true"))
    for key in _LOG_INTS:
        if req.q(key):
            try:
                value = int(req.q(key))
            except ValueError:
                raise E.bad_request('%s: Invalid value: "%s"' % (key, req.q(key))) from None
            out.append((key, str(value)))
    if req.q("sinceTime"):
        out.append(("sinceTime", req.q("sinceTime")))
    return out


def _logs(api, req, pod, ns, name):
    container = _container(pod, req.q("container"))
    node = (pod.get("spec") or {}).get("nodeName")
    if not node:
        return Response(body=b"", ctype="text/plain")
    host, port = kubelet_location(api, node)
    path = "/containerLogs/%s/%s/%s" % tuple(urllib.parse.quote(p, safe="")
                                            for p in (ns, name, container))
    query = urllib.parse.urlencode(_log_query(req))
    url = "https://%s:%d%s%s" % (host, port, path, "?" + query if query else "")
    conn = http.client.HTTPSConnection(host, port, context=_tls_context(), timeout=30)
    try:
        conn.request("GET", path + ("?" + query if query else ""))
        resp = conn.getresponse()
    except OSError as e:
        conn.close()
        raise E.ApiError(500, "InternalError", 'Get "%s": dial tcp %s:%d: %s'
                         % (url, host, port, e.strerror or e)) from None
    if not 200 <= resp.status < 300:
        body = resp.read()
        conn.close()
        raise _kubelet_error(resp.status, body)

    def run(handler):
        handler.send_response(200)
        handler.send_header("Content-Type", "text/plain")
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        try:
            if conn.sock is not None:
                conn.sock.settimeout(None)
            while True:
                data = resp.read1(65536)
                if not data:
                    break
                handler.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                handler.wfile.flush()
            handler.wfile.write(b"0\r\n\r\n")
            handler.wfile.flush()
        except OSError:
            handler.close_connection = True
        finally:
            conn.close()
    return Response(stream=run)


def _upgrade_target(req, pod, ns, name, sub):
    if sub == "portforward":
        query = [("port", p) for p in req.query.get("ports", [])]
        return "/portForward/%s/%s" % (ns, name), query
    container = _container(pod, req.q("container"))
    query = [("command", c) for c in req.query.get("command", [])] if sub == "exec" else []
    for src, dst in (("stdin", "input"), ("stdout", "output"), ("stderr", "error"),
                     ("tty", "tty")):
        if req.flag(src):
            query.append((dst, "1"))
    return "/%s/%s/%s/%s" % (sub, ns, name, container), query


def _connect_options(req, sub, name):
    kind = {"exec": "PodExecOptions", "attach": "PodAttachOptions",
            "portforward": "PodPortForwardOptions"}[sub]
    opts = {"kind": kind, "apiVersion": "v1"}
    if sub == "portforward":
        if req.query.get("ports"):
            opts["ports"] = [int(p) for p in req.query["ports"] if p.isdigit()]
        return opts
    for key in ("stdin", "stdout", "stderr", "tty"):
        if req.flag(key):
            opts[key] = True
    if req.q("container"):
        opts["container"] = req.q("container")
    if sub == "exec":
        opts["command"] = req.query.get("command", [])
    return opts


def _upgrade(api, req, rtype, pod, ns, name, sub):
    upgrade = (req.headers.get("Upgrade") or "").lower()
    connection = (req.headers.get("Connection") or "").lower()
    if "websocket" in upgrade:
        raise E.bad_request("WebSocket upgrades are not supported by kubesim; use SPDY/3.1")
    if "upgrade" not in connection or "spdy/3.1" not in upgrade:
        raise E.bad_request("Upgrade request required")
    opts = _connect_options(req, sub, name)
    attrs = Attributes("CONNECT", rtype, sub, ns, name,
                       {"group": "", "version": "v1", "kind": opts["kind"]})
    warnings = []
    api.writer.admission.mutate(attrs, opts, warnings)
    api.writer.admission.validate(attrs, opts, warnings)
    node = (pod.get("spec") or {}).get("nodeName")
    if not node:
        raise E.bad_request("pod %s does not have a host assigned" % name)
    path, query = _upgrade_target(req, pod, ns, name, sub)
    host, port = kubelet_location(api, node)
    target = path + ("?" + urllib.parse.urlencode(query) if query else "")
    try:
        raw = socket.create_connection((host, port), timeout=30)
        kube = _tls_context().wrap_socket(raw)
    except OSError as e:
        raise E.ApiError(500, "InternalError", 'error dialing backend: dial tcp %s:%d: %s'
                         % (host, port, e.strerror or e)) from None
    lines = ["%s %s HTTP/1.1" % (req.method, target), "Host: %s:%d" % (host, port)]
    for key, value in req.headers.items():
        if key.lower() not in _HOP_HEADERS:
            lines.append("%s: %s" % (key, value))
    kube.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    return Response(stream=lambda handler: _relay(handler, kube))


def _relay(handler, kube):
    """Copy the kubelet's answer head, then splice both directions until one side ends."""
    handler.close_connection = True
    client = handler.connection
    try:
        kube.settimeout(30)
        head = b""
        while b"\r\n\r\n" not in head:
            data = kube.recv(65536)
            if not data:
                raise OSError("kubelet closed the connection before answering")
            head += data
        kube.settimeout(None)
        handler.wfile.write(head)
        handler.wfile.flush()
    except OSError as e:
        handler.log_debug("kubelet upgrade failed: %s", e)
        kube.close()
        return
    done = threading.Event()

    def upstream():
        try:
            while not done.is_set():
                data = handler.rfile.read1(65536)
                if not data:
                    break
                kube.sendall(data)
        except (OSError, ValueError):
            pass
        done.set()
        _shutdown(kube)
        _shutdown(client)
    pump = threading.Thread(target=upstream, daemon=True)
    pump.start()
    try:
        while not done.is_set():
            data = kube.recv(65536)
            if not data:
                break
            client.sendall(data)
    except (OSError, ValueError):
        pass
    done.set()
    _shutdown(client)
    _shutdown(kube)
    pump.join(5)
    kube.close()


def _shutdown(sock):
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except (OSError, ValueError):
        pass


def handle(api, req, rtype, ns, name, sub):
    pod = api.store.get(rtype.storage, ns, name)
    if pod is None:
        raise E.not_found("", "pods", name)
    if sub == "log":
        return _logs(api, req, pod, ns, name)
    return _upgrade(api, req, rtype, pod, ns, name, sub)
