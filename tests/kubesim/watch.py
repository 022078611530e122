"""Watch streams (kube-api.md §1.7): chunked JSON events, replay from a resourceVersion,
the 200 + ERROR/410 Expired answer for a too-old RV, selector transitions turned into
ADDED / DELETED, bookmarks, sendInitialEvents, timeoutSeconds, Table event objects.

Owns nothing beyond the request thread it runs on: each watch has its own queue filled by
the store without blocking writers; a watcher that falls too far behind is closed.
"""

import json
import queue
import random
import select
import socket
import ssl
import time

import apierrors as E
import tables
from store import HistoryExpired
from wire import TABLE_MEDIA, Response, meta_media, negotiate

DEFAULT_TIMEOUT = 1800


def _classify(ev, match):
    """The event type this watcher sees, or None (selector transitions, §1.7)."""
    if ev.etype == "ADDED":
        return "ADDED" if match(ev.obj) else None
    if ev.etype == "DELETED":
        return "DELETED" if match(ev.old or ev.obj) else None
    was = ev.old is not None and match(ev.old)
    now = match(ev.obj)
    if was and now:
        return "MODIFIED"
    if now:
        return "ADDED"
    if was:
        return "DELETED"
    return None


class _Stream:
    def __init__(self, handler, api, req, rtype):
        self.handler = handler
        self.api = api
        self.rtype = rtype
        self.mode = negotiate(req.headers.get("Accept"), False)
        self.include = api._include(req) if self.mode == "table" else None
        self.fragment = api.opts.watch_fragment

    def encode(self, etype, obj):
        if etype in ("BOOKMARK", "ERROR"):
            payload = obj
        else:
            view = self.api.writer.view(self.rtype, None, obj)
            if self.mode == "table":
                payload = tables.table(self.rtype, [(obj, view)],
                                       obj["metadata"]["resourceVersion"], self.include)
            elif self.mode == "meta":
                payload = tables.partial_metadata(view)
            else:
                payload = view
        return json.dumps({"type": etype, "object": payload},
                          separators=(",", ":")).encode() + b"\n"

    def start(self, ctype):
        h = self.handler
        h.send_response(200)
        h.send_header("Content-Type", ctype)
        h.send_header("Cache-Control", "no-cache, private")
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()

    def chunk(self, data):
        w = self.handler.wfile
        w.write(b"%x\r\n%s\r\n" % (len(data), data))
        w.flush()

    def send(self, events):
        """One chunk per event, as the real server writes them; with --watch-fragment,
        the events at hand are joined and cut at random points instead, so clients
        prove they parse a stream of JSON values rather than chunks or lines."""
        events = [e for e in events if e]
        if not self.fragment:
            for e in events:
                self.chunk(e)
            return
        data = b"".join(events)
        while data:
            cut = random.randint(1, max(1, min(len(data), 64)))
            self.chunk(data[:cut])
            data = data[cut:]

    def end(self):
        try:
            self.handler.wfile.write(b"0\r\n\r\n")
            self.handler.wfile.flush()
        except OSError:
            self.handler.close_connection = True

    def peer_closed(self):
        """True once the client hung up; clients send nothing while a watch is open."""
        conn = self.handler.connection
        try:
            readable, _, _ = select.select([conn], [], [], 0)
            if not readable and not (isinstance(conn, ssl.SSLSocket) and conn.pending()):
                return False
            conn.settimeout(0.2)
            try:
                conn.recv(1)  # EOF, or bytes a watching client never sends: either way done
                return True
            finally:
                conn.settimeout(None)
        except (socket.timeout, ssl.SSLWantReadError):
            return False
        except (OSError, ValueError):
            return True


def _media(mode):
    return {"table": TABLE_MEDIA, "meta": meta_media(False)}.get(mode, "application/json")


def serve(api, req, rtype, ns):
    """Validate the watch request now (errors are plain Status answers) and return a
    Response whose stream does the rest."""
    match = api.selectors(req, rtype)
    rv = req.q("resourceVersion")
    timeout = DEFAULT_TIMEOUT
    if req.q("timeoutSeconds"):
        timeout = api.parse_rv(req.q("timeoutSeconds"), "timeoutSeconds")
    initial_end = False
    if req.flag("sendInitialEvents"):
        if req.q("resourceVersionMatch") != "NotOlderThan":
            raise E.invalid("meta.k8s.io", "ListOptions", "", [
                ("resourceVersionMatch", "forbidden", "sendInitialEvents requires setting "
                 "resourceVersionMatch to NotOlderThan")])
        if not req.flag("allowWatchBookmarks"):
            raise E.invalid("meta.k8s.io", "ListOptions", "", [
                ("allowWatchBookmarks", "forbidden", "sendInitialEvents requires "
                 "allowWatchBookmarks=true")])
        initial_end = True
    since = None
    if rv not in ("", "0") and not initial_end:
        since = api.parse_rv(rv)
        api.wait_for_rv(since)
    elif rv not in ("", "0"):
        api.wait_for_rv(api.parse_rv(rv))
    ns_filter = ns if rtype.namespaced else None
    bookmarks = req.flag("allowWatchBookmarks")

    def run(handler):
        s = _Stream(handler, api, req, rtype)
        try:
            watcher, initial = api.store.watch(rtype.storage, ns_filter, since)
        except HistoryExpired as e:
            s.start("application/json")
            status = E.expired(str(e)).status()
            s.chunk(s.encode("ERROR", status))
            s.end()
            return
        s.start(_media(s.mode))
        try:
            _pump(api, s, watcher, initial, match, timeout, bookmarks, initial_end)
        except OSError:
            handler.close_connection = True
        finally:
            api.store.unwatch(watcher)
    return Response(stream=run)


def _bookmark(rtype, rv, initial_end=False):
    meta = {"resourceVersion": str(rv)}
    if initial_end:
        meta["annotations"] = {"k8s.io/initial-events-end": "true"}
    return {"kind": rtype.kind, "apiVersion": rtype.api_version, "metadata": meta}


def _event_bytes(s, ev, match, bookmarks):
    if ev.etype == "BOOKMARK":
        return s.encode("BOOKMARK", _bookmark(s.rtype, ev.rv)) if bookmarks else b""
    etype = _classify(ev, match)
    return s.encode(etype, ev.obj) if etype else b""


def _pump(api, s, watcher, initial, match, timeout, bookmarks, initial_end):
    deadline = time.monotonic() + timeout
    interval = api.opts.bookmark_interval
    next_bookmark = time.monotonic() + interval
    last_rv = 0
    out = []
    for ev in initial:
        out.append(_event_bytes(s, ev, match, bookmarks))
        last_rv = max(last_rv, ev.rv)
    if initial_end:
        out.append(s.encode("BOOKMARK", _bookmark(s.rtype, max(last_rv, api.store.current_rv()),
                                                  True)))
    s.send(out)
    while not watcher.overflowed:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        if bookmarks and time.monotonic() >= next_bookmark:
            api.store.bookmark(watcher)
            next_bookmark = time.monotonic() + interval
        try:
            batch = [watcher.queue.get(timeout=min(left, 1.0))]
        except queue.Empty:
            if s.peer_closed():
                return
            continue
        while len(batch) < 100:
            try:
                batch.append(watcher.queue.get_nowait())
            except queue.Empty:
                break
        s.send([_event_bytes(s, ev, match, bookmarks) for ev in batch])
    s.end()
