"""The object store: every object of every resource, one global resourceVersion counter
(seeded from wall-clock time, like an etcd revision that survives restarts), a bounded
event history for watch replay and exact-RV lists, and the fan-out to watchers.

Owns the store lock. Stored objects are never modified after commit; readers may hold
references without copying, writers always commit fresh dicts.
"""

import collections
import copy
import queue
import threading
import time


class StaleWrite(Exception):
    """The object changed (or vanished) between read and commit."""


class Exists(Exception):
    """A create hit an existing key."""


class HistoryExpired(Exception):
    def __init__(self, requested, oldest):
        super().__init__("too old resource version: %d (%d)" % (requested, oldest))
        self.requested = requested
        self.oldest = oldest


Event = collections.namedtuple("Event", "rv storage etype obj old")


def key_of(obj):
    meta = obj["metadata"]
    return meta.get("namespace", ""), meta["name"]


class Watcher:
    """One watch's private queue; the store never blocks on it. A watcher that falls
    more than `capacity` events behind is closed, as the real server drops slow watchers."""

    def __init__(self, storage, namespace, capacity):
        self.storage = storage
        self.namespace = namespace
        self.queue = queue.Queue(maxsize=capacity)
        self.overflowed = False

    def offer(self, event):
        try:
            self.queue.put_nowait(event)
        except queue.Full:
            self.overflowed = True
            return False
        return True


class Store:
    def __init__(self, history_size=10000, watcher_capacity=10000):
        self.lock = threading.RLock()
        self.cond = threading.Condition(self.lock)
        self.rv = int(time.time() * 1000)
        self.floor = self.rv
        self.data = {}
        self.uids = {}
        self.history = collections.deque()
        self.history_size = history_size
        self.watcher_capacity = watcher_capacity
        self.watchers = set()
        self.wakers = []
        self.hooks = []

    # -- reads ---------------------------------------------------------------------------

    def get(self, storage, namespace, name):
        with self.lock:
            return self.data.get(storage, {}).get((namespace, name))

    def list(self, storage, namespace=None):
        """Current objects sorted by (namespace, name), like etcd key order."""
        with self.lock:
            items = self.data.get(storage, {})
            keys = sorted(k for k in items if namespace is None or k[0] == namespace)
            return [items[k] for k in keys], self.rv

    def by_uid(self, uid):
        with self.lock:
            loc = self.uids.get(uid)
            return None if loc is None else self.data[loc[0]].get((loc[1], loc[2]))

    def current_rv(self):
        with self.lock:
            return self.rv

    def list_at(self, storage, namespace, rv):
        """The objects as they were at resourceVersion rv, rebuilt by undoing later
        history; HistoryExpired when the history no longer reaches back that far."""
        with self.lock:
            if rv < self.floor:
                raise HistoryExpired(rv, self.floor + 1)
            state = dict(self.data.get(storage, {}))
            for ev in reversed(self.history):
                if ev.rv <= rv:
                    break
                if ev.storage != storage:
                    continue
                key = key_of(ev.obj)
                if ev.etype == "ADDED":
                    state.pop(key, None)
                else:
                    state[key] = ev.old
            keys = sorted(k for k in state if namespace is None or k[0] == namespace)
            return [state[k] for k in keys]

    def wait_for_rv(self, rv, timeout):
        with self.cond:
            return self.cond.wait_for(lambda: self.rv >= rv, timeout)

    # -- writes --------------------------------------------------------------------------

    def commit(self, storage, obj, etype, expect_rv=None):
        """Store obj (or remove it for DELETED), stamping the next resourceVersion.
        expect_rv: the RV the caller read; a different stored RV raises StaleWrite."""
        with self.cond:
            items = self.data.setdefault(storage, {})
            key = key_of(obj)
            cur = items.get(key)
            if etype == "ADDED":
                if cur is not None:
                    raise Exists()
            elif cur is None or (expect_rv is not None and
                                 cur["metadata"].get("resourceVersion") != expect_rv):
                raise StaleWrite()
            self.rv += 1
            obj = copy.deepcopy(obj)
            obj["metadata"]["resourceVersion"] = str(self.rv)
            uid = obj["metadata"].get("uid")
            if etype == "DELETED":
                del items[key]
                self.uids.pop(uid, None)
            else:
                items[key] = obj
                if uid:
                    self.uids[uid] = (storage, key[0], key[1])
            ev = Event(self.rv, storage, etype, obj, cur)
            self.history.append(ev)
            while len(self.history) > self.history_size:
                self.floor = self.history.popleft().rv
            for w in list(self.watchers):
                if w.storage == storage and w.namespace in (None, key[0]):
                    if not w.offer(ev):
                        self.watchers.discard(w)
            for hook in self.hooks:
                hook(ev)
            self.cond.notify_all()
            for waker in self.wakers:
                waker.set()
            return obj

    # -- watches -------------------------------------------------------------------------

    def watch(self, storage, namespace, since):
        """Register a watcher. since=None: synthetic ADDED events for the current state;
        since=N: the retained history after N (HistoryExpired if it is gone).
        Returns (watcher, initial events)."""
        with self.lock:
            if since is None:
                objs, _ = self.list(storage, namespace)
                initial = [Event(int(o["metadata"]["resourceVersion"]), storage, "ADDED", o, None)
                           for o in objs]
            else:
                if since < self.floor:
                    raise HistoryExpired(since, self.floor + 1)
                initial = [ev for ev in self.history
                           if ev.rv > since and ev.storage == storage and
                           namespace in (None, key_of(ev.obj)[0])]
            w = Watcher(storage, namespace, self.watcher_capacity)
            self.watchers.add(w)
            return w, initial

    def unwatch(self, watcher):
        with self.lock:
            self.watchers.discard(watcher)

    def bookmark(self, watcher):
        """Queue a BOOKMARK behind every event already queued, carrying the current RV."""
        with self.lock:
            if not watcher.offer(Event(self.rv, watcher.storage, "BOOKMARK", None, None)):
                self.watchers.discard(watcher)
