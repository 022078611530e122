#!/usr/bin/env python3
"""A tiny kubelet-like HTTPS server for tests of the apiserver -> kubelet log path
(kube-api.md §3.1): GET /containerLogs/<ns>/<pod>/<container> answers
`log of <ns>/<pod>/<container>` plus one line per query option it received; any other
path is 404 `404 request not found`, as virtual-kubelet answers.

Usage: fake_kubelet.py --cert CRT --key KEY [--port N]; prints "port N" once listening
and runs until SIGTERM. Owns its listening socket only.
"""

import argparse
import http.server
import signal
import ssl
import sys
import threading
import urllib.parse


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        parts = url.path.strip("/").split("/")
        if len(parts) == 4 and parts[0] == "containerLogs":
            lines = ["log of %s/%s/%s" % tuple(parts[1:])]
            lines += ["%s=%s" % kv for kv in urllib.parse.parse_qsl(url.query)]
            code, body = 200, ("\n".join(lines) + "\n").encode()
        else:
            code, body = 404, b"404 request not found"
        self.send_response(code)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--port", type=int, default=0)
    args = p.parse_args()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.cert, args.key)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print("port %d" % server.server_address[1], flush=True)
    stop.wait()
    server.shutdown()
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
