"""The HTTP/1.1 front end: a threaded server (one thread per connection, so watches never
block anything), optional TLS with the handshake on the connection's own thread, bearer
token authentication, request bodies, Status answers for every error, and one debug log
line per request.

Owns the listening socket and the per-connection threads.
"""

import hmac
import http.server
import json
import socket
import socketserver
import ssl
import time
import urllib.parse

import apierrors as E
from wire import Request, Response

MAX_BODY = 64 * 1024 * 1024
PUBLIC_PATHS = ("/version", "/healthz", "/livez", "/readyz")


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "kubesim"
    sys_version = ""

    def log_request(self, code="-", size="-"):
        """Requests are logged once, by _serve, with timing and media types."""

    def log_message(self, fmt, *args):
        self.server.log.debug("%s " + fmt, self.client_address[0], *args)

    def log_debug(self, fmt, *args):
        self.server.log.debug(fmt, *args)

    def do_GET(self):
        self._serve()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def _body(self):
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            out = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return bytes(out)
                if len(out) + size > MAX_BODY:
                    raise E.ApiError(413, "RequestEntityTooLarge", "request is too large")
                out += self.rfile.read(size)
                self.rfile.readline()
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            raise E.bad_request("invalid Content-Length") from None
        if length > MAX_BODY:
            raise E.ApiError(413, "RequestEntityTooLarge", "request is too large")
        return self.rfile.read(length) if length > 0 else b""

    def _auth(self, path):
        """Bearer tokens are checked on the TLS port only: kubectl never sends credentials
        over plain HTTP, which therefore behaves like the old insecure port."""
        if self.server.ssl_context is None:
            return
        header = self.headers.get("Authorization")
        if header is None and path in PUBLIC_PATHS:
            return
        scheme, _, token = (header or "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
                token.strip().encode(), self.server.token.encode()):
            raise E.unauthorized()

    def _serve(self):
        started = time.monotonic()
        url = urllib.parse.urlsplit(self.path)
        code = 500
        try:
            try:
                body = self._body()
                self._auth(url.path)
                req = Request(self.command, url.path,
                              urllib.parse.parse_qs(url.query, keep_blank_values=True),
                              self.headers, body)
                resp = self.server.api.handle(req)
                if resp.stream is not None:
                    code = 200
                    resp.stream(self)
                else:
                    code = resp.code
                    self._send(resp)
            except E.ApiError as e:
                code = e.code
                self._send(Response(e.code, e.status(), headers=e.headers))
            except (ConnectionError, BrokenPipeError):
                raise
            except Exception as e:  # noqa: BLE001 - any bug becomes a 500, not a dead thread
                self.server.log.exception("internal error serving %s %s", self.command, self.path)
                code = 500
                self._send(Response(500, E.internal(repr(e)).status()))
        except OSError:
            self.close_connection = True
        self.server.log.debug("%s %s -> %d (%.1f ms) accept=%r ctype=%r", self.command,
                              self.path, code, (time.monotonic() - started) * 1000,
                              self.headers.get("Accept"), self.headers.get("Content-Type"))

    def _send(self, resp):
        body = resp.body
        if isinstance(body, (dict, list)):
            body = json.dumps(body, separators=(",", ":")).encode()
        elif body is None:
            body = b""
        self.send_response(resp.code)
        self.send_header("Content-Type", resp.ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-cache, private")
        for key, value in resp.headers:
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, host, port, api, token, log, ssl_context=None):
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.api = api
        self.token = token
        self.log = log
        self.ssl_context = ssl_context
        super().__init__((host, port), Handler)

    def finish_request(self, request, client_address):
        if self.ssl_context is not None:
            try:
                request.settimeout(10)
                request = self.ssl_context.wrap_socket(request, server_side=True)
                request.settimeout(None)
            except (ssl.SSLError, OSError) as e:
                self.log.debug("TLS handshake with %s failed: %s", client_address[0], e)
                return
        try:
            self.RequestHandlerClass(request, client_address, self)
        finally:
            if self.ssl_context is not None:
                try:
                    request.close()
                except OSError:
                    pass

    def handle_error(self, request, client_address):
        self.log.debug("connection from %s ended with an error", client_address[0],
                       exc_info=True)


def server_context(cert_file, key_file):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert_file, key_file)
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx
