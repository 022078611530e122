#!/usr/bin/env python3
"""epoch-extras: what Epoch adds to a plain OCI registry, in front of the real one.

Tests run Debian's docker-registry for the /v2/ API and put this proxy in front of it to
get Epoch's own behaviour (net-epoch-runtime.md §2.2-2.3):

  * writes under /v2/ (PUT, POST, PATCH, DELETE) and GET /v2/ itself need
    `Authorization: Bearer <token>`; without one the answer is 401 with
    `WWW-Authenticate: Bearer realm="http://<host>/v2/token",service="epoch"`;
  * /v2/token: the candidate is the basic-auth password, else the `password` or
    `refresh_token` parameter; empty -> an anonymous token "", invalid -> 401, valid ->
    the same token echoed back (or, with --token-exchange, a fresh token that is then the
    only one writes accept, to exercise the Docker token flow end to end);
  * epoch's monolithic `PUT /v2/<name>/blobs/<digest>` (done upstream as an upload
    session), unless --session-only, which answers it 405 like docker-registry;
  * DELETE of a manifest by tag removes just that tag (epoch semantics; docker-registry
    only deletes by digest): the tag directory goes from --storage.

Everything else is forwarded unchanged, bodies streamed both ways. Each request is
appended to --log as a JSON line {"method","path","status","in"} where "in" counts the
request body bytes, so a test can add up what a client uploaded. --rate limits how fast
request bodies are read (bytes/s), so a test can interrupt a transfer in the middle.
"""

import argparse
import http.client
import http.server
import json
import os
import re
import secrets
import shutil
import socketserver
import sys
import threading
import time
import urllib.parse

CHUNK = 1 << 20
HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
       "proxy-authorization", "proxy-authenticate", "expect"}


class State:
    def __init__(self, a):
        self.a = a
        self.lock = threading.Lock()
        self.issued = set()
        self.log = open(a.log, "a", buffering=1) if a.log else None

    def valid(self, token):
        if self.a.token_exchange:
            return token in self.issued
        return bool(token) and token == self.a.token

    def record(self, method, path, status, nin):
        if self.log:
            with self.lock:
                self.log.write(json.dumps({"method": method, "path": path, "status": status,
                                           "in": nin}) + "\n")


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "epoch-extras"

    def log_message(self, fmt, *args):
        pass

    # ---- plumbing ----

    def body_chunks(self):
        """The request body in pieces (Content-Length or chunked), rate-limited."""
        st = self.server.state
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return
                left = size
                while left:
                    b = self.rfile.read(min(left, CHUNK))
                    if not b:
                        raise ConnectionError("client went away")
                    left -= len(b)
                    yield b
                self.rfile.readline()
        left = int(self.headers.get("Content-Length") or 0)
        while left:
            b = self.rfile.read(min(left, 64 * 1024 if st.a.rate else CHUNK))
            if not b:
                raise ConnectionError("client went away")
            left -= len(b)
            if st.a.rate:
                time.sleep(len(b) / st.a.rate)
            yield b

    def reply(self, status, body=b"", headers=None, nin=0):
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Docker-Distribution-API-Version", "registry/2.0")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.server.state.record(self.command, self.path, status, nin)

    def oci_error(self, status, code, message, headers=None):
        body = json.dumps({"errors": [{"code": code, "message": message}]}).encode()
        self.reply(status, body, dict(headers or {}, **{"Content-Type": "application/json"}))

    def upstream(self):
        u = urllib.parse.urlsplit(self.server.state.a.upstream)
        return http.client.HTTPConnection(u.hostname, u.port, timeout=600)

    def forward(self, method=None, path=None, chunks=None, length=None):
        """Send the request upstream (streaming the body) and stream the answer back."""
        method, path = method or self.command, path or self.path
        conn = self.upstream()
        nin = 0
        try:
            conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
            for k, v in self.headers.items():
                if k.lower() not in HOP and k.lower() != "content-length":
                    conn.putheader(k, v)
            if chunks is None:
                chunks = self.body_chunks()
                length = self.headers.get("Content-Length")
                if length is None and self.headers.get("Transfer-Encoding"):
                    length = None
            if length is not None:
                conn.putheader("Content-Length", str(length))
                conn.endheaders()
                for b in chunks:
                    nin += len(b)
                    conn.send(b)
            else:
                conn.putheader("Transfer-Encoding", "chunked")
                conn.endheaders()
                for b in chunks:
                    nin += len(b)
                    conn.send(b"%x\r\n%s\r\n" % (len(b), b))
                conn.send(b"0\r\n\r\n")
            resp = conn.getresponse()
        except (OSError, http.client.HTTPException) as e:
            conn.close()
            self.server.state.record(method, path, 502, nin)
            self.close_connection = True
            self.send_error(502, f"upstream: {e}")
            return
        self.send_response(resp.status)
        for k, v in resp.getheaders():
            if k.lower() not in HOP and k.lower() != "content-length":
                self.send_header(k, v)
        n = resp.getheader("Content-Length")
        if method == "HEAD" or resp.status in (204, 304):
            self.send_header("Content-Length", n or "0")
            self.end_headers()
        elif n is not None:
            self.send_header("Content-Length", n)
            self.end_headers()
            while True:
                b = resp.read(CHUNK)
                if not b:
                    break
                self.wfile.write(b)
        else:
            data = resp.read()
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        conn.close()
        self.server.state.record(method, path, resp.status, nin)

    # ---- auth ----

    def needs_auth(self):
        path = urllib.parse.urlsplit(self.path).path
        return path.startswith("/v2/") and path != "/v2/token" and (
            self.command in ("PUT", "POST", "PATCH", "DELETE") or path == "/v2/")

    def handle_expect_100(self):
        """Refuse an unauthorized upload before the client sends its body."""
        if self.needs_auth() and not self.server.state.valid(self.bearer()):
            self.close_connection = True
            self.oci_error(401, "UNAUTHORIZED", "authentication required", self.challenge())
            return False
        return super().handle_expect_100()

    def bearer(self):
        h = self.headers.get("Authorization", "")
        return h[7:].strip() if h.lower().startswith("bearer ") else ""

    def challenge(self):
        host = self.headers.get("Host", "127.0.0.1")
        return {"WWW-Authenticate": f'Bearer realm="http://{host}/v2/token",service="epoch"'}

    def authorized(self):
        if self.server.state.valid(self.bearer()):
            return True
        self.oci_error(401, "UNAUTHORIZED", "authentication required", self.challenge())
        return False

    def token(self):
        import base64
        st = self.server.state
        cand = ""
        h = self.headers.get("Authorization", "")
        if h.lower().startswith("basic "):
            try:
                cand = base64.b64decode(h[6:]).decode().split(":", 1)[1]
            except (ValueError, IndexError):
                cand = ""
        q = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
        cand = cand or (q.get("password") or q.get("refresh_token") or [""])[0]
        if not cand:
            tok = ""
        elif cand != st.a.token:
            return self.oci_error(401, "UNAUTHORIZED", "invalid token")
        elif st.a.token_exchange:
            tok = "issued-" + secrets.token_hex(16)
            with st.lock:
                st.issued.add(tok)
        else:
            tok = cand
        body = json.dumps({"token": tok, "access_token": tok, "expires_in": 3600,
                           "issued_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
        self.reply(200, body.encode(), {"Content-Type": "application/json"})

    # ---- the extras ----

    def monolithic_put(self, name, digest):
        if self.server.state.a.session_only:
            for _ in self.body_chunks():
                pass
            return self.reply(405, b"Method not allowed\n", {"Allow": "DELETE, GET, HEAD"})
        conn = self.upstream()
        hdrs = {"Host": self.headers.get("Host", ""), "Content-Length": "0"}
        if self.headers.get("Authorization"):
            hdrs["Authorization"] = self.headers["Authorization"]
        conn.request("POST", f"/v2/{name}/blobs/uploads/", headers=hdrs)
        r = conn.getresponse()
        r.read()
        conn.close()
        loc = r.getheader("Location")
        if r.status != 202 or not loc:
            return self.oci_error(502, "UNKNOWN", f"upstream upload session: {r.status}")
        u = urllib.parse.urlsplit(loc)
        sep = "&" if u.query else "?"
        # epoch stores the body whatever its type; docker-registry would parse a form body
        del self.headers["Content-Type"]
        self.headers["Content-Type"] = "application/octet-stream"
        path = f"{u.path}?{u.query}{sep}digest={urllib.parse.quote(digest)}"
        self.forward("PUT", path, self.body_chunks(), int(self.headers.get("Content-Length")
                                                         or 0))

    def delete_tag(self, name, tag):
        d = os.path.join(self.server.state.a.storage, "docker/registry/v2/repositories", name,
                         "_manifests/tags", tag)
        shutil.rmtree(d, ignore_errors=True)
        self.reply(202)

    # ---- dispatch ----

    def route(self):
        path = urllib.parse.urlsplit(self.path).path
        if path == "/v2/token":
            return self.token()
        if self.needs_auth() and not self.server.state.valid(self.bearer()):
            # read what the client sends, so it sees our answer rather than a reset
            for _ in self.body_chunks():
                pass
            return self.authorized()
        m = re.fullmatch(r"/v2/(.+)/blobs/(sha256:[0-9a-f]{64})", path)
        if m and self.command == "PUT":
            return self.monolithic_put(m.group(1), m.group(2))
        m = re.fullmatch(r"/v2/(.+)/manifests/([A-Za-z0-9_][A-Za-z0-9._-]{0,127})", path)
        if m and self.command == "DELETE" and self.server.state.a.storage:
            return self.delete_tag(m.group(1), m.group(2))
        return self.forward()

    do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = route


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--listen", default="127.0.0.1:0")
    p.add_argument("--upstream", required=True)
    p.add_argument("--token", required=True)
    p.add_argument("--token-exchange", action="store_true")
    p.add_argument("--session-only", action="store_true")
    p.add_argument("--storage", help="docker-registry's rootdirectory (for tag deletes)")
    p.add_argument("--log")
    p.add_argument("--rate", type=int, default=0, help="request body bytes per second")
    a = p.parse_args()
    host, port = a.listen.rsplit(":", 1)
    srv = Server((host, int(port)), Handler)
    srv.state = State(a)
    print(f"serving http://{host}:{srv.server_address[1]}", flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
