"""In-memory object storage with a global resourceVersion counter, a bounded event history and watchers.

Stored dicts are never mutated in place: every write stores a new dict, so watch events can share them.
Callers get deep copies from `get` and `list`.
"""

from __future__ import annotations

import asyncio
import copy
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from .errors import gone

Obj = dict[str, Any]
StorageKey = tuple[str, str]  # (group, plural)
ObjKey = tuple[str, str]  # (namespace or "", name)


@dataclass(frozen=True)
class Event:
    rv: int
    key: StorageKey
    type: str  # ADDED | MODIFIED | DELETED
    obj: Obj
    prev: Obj | None  # the object before a MODIFIED, for selector transitions


@dataclass(eq=False)
class Watcher:
    key: StorageKey
    namespace: str | None
    predicate: Callable[[Obj], bool]
    queue: asyncio.Queue[tuple[str, Obj]] = field(default_factory=asyncio.Queue)

    def _visible(self, obj: Obj | None) -> bool:
        if obj is None:
            return False
        if self.namespace is not None and obj["metadata"].get("namespace", "") != self.namespace:
            return False
        return self.predicate(obj)

    def translate(self, event: Event) -> tuple[str, Obj] | None:
        """The event as this watcher sees it: leaving or entering its selector is DELETED/ADDED."""
        if event.key != self.key:
            return None
        now = self._visible(event.obj)
        if event.type != "MODIFIED":
            return (event.type, event.obj) if now else None
        before = self._visible(event.prev)
        if now and before:
            return ("MODIFIED", event.obj)
        if now:
            return ("ADDED", event.obj)
        if before:
            return ("DELETED", event.obj)
        return None


class Store:
    def __init__(self, history: int = 10000) -> None:
        self._rv = 0
        self._data: dict[StorageKey, dict[ObjKey, Obj]] = {}
        self._uids: dict[str, tuple[StorageKey, ObjKey]] = {}
        self._history: deque[Event] = deque()
        self._history_limit = history
        self._compacted = 0  # events up to this resourceVersion are no longer replayable
        self._watchers: set[Watcher] = set()

    @property
    def resource_version(self) -> int:
        return self._rv

    def get(self, key: StorageKey, namespace: str, name: str) -> Obj | None:
        obj = self._data.get(key, {}).get((namespace, name))
        return copy.deepcopy(obj) if obj is not None else None

    def list_objects(self, key: StorageKey, namespace: str | None = None) -> list[Obj]:
        items = self._data.get(key, {})
        return [
            copy.deepcopy(obj)
            for (ns, _), obj in sorted(items.items())
            if namespace is None or ns == namespace
        ]

    def iter_all(self) -> Iterator[tuple[StorageKey, Obj]]:
        """Every stored object (not copied: read only)."""
        for key, items in list(self._data.items()):
            for obj in list(items.values()):
                yield key, obj

    def by_uid(self, uid: str) -> tuple[StorageKey, Obj] | None:
        loc = self._uids.get(uid)
        if loc is None:
            return None
        return loc[0], self._data[loc[0]][loc[1]]

    def put(self, key: StorageKey, obj: Obj) -> Obj:
        """Store `obj` (ADDED or MODIFIED) with a new resourceVersion; returns a copy of what was stored."""
        self._rv += 1
        stored = copy.deepcopy(obj)
        meta = stored["metadata"]
        meta["resourceVersion"] = str(self._rv)
        okey = (meta.get("namespace", ""), meta["name"])
        bucket = self._data.setdefault(key, {})
        prev = bucket.get(okey)
        bucket[okey] = stored
        if meta.get("uid"):
            self._uids[meta["uid"]] = (key, okey)
        self._record(Event(self._rv, key, "ADDED" if prev is None else "MODIFIED", stored, prev))
        return copy.deepcopy(stored)

    def remove(self, key: StorageKey, namespace: str, name: str, last: Obj | None = None) -> Obj | None:
        """Remove an object; the DELETED event carries its last state (`last`, or the stored one) with a
        new resourceVersion."""
        prev = self._data.get(key, {}).pop((namespace, name), None)
        if prev is None:
            return None
        self._rv += 1
        base = copy.deepcopy(last) if last is not None else prev
        final = {**base, "metadata": {**base["metadata"], "resourceVersion": str(self._rv)}}
        self._uids.pop(prev["metadata"].get("uid", ""), None)
        self._record(Event(self._rv, key, "DELETED", final, prev))
        return copy.deepcopy(final)

    def _record(self, event: Event) -> None:
        self._history.append(event)
        while len(self._history) > self._history_limit:
            self._compacted = self._history.popleft().rv
        for watcher in list(self._watchers):
            seen = watcher.translate(event)
            if seen is not None:
                watcher.queue.put_nowait(seen)

    def watch(
        self,
        key: StorageKey,
        namespace: str | None,
        predicate: Callable[[Obj], bool],
        since: int | None,
    ) -> Watcher:
        """Start a watcher. `since=None` begins with ADDED events for the current state; a number
        replays every later event (410 Gone when those are no longer kept)."""
        watcher = Watcher(key, namespace, predicate)
        if since is None:
            for obj in self._data.get(key, {}).values():
                if watcher._visible(obj):
                    watcher.queue.put_nowait(("ADDED", obj))
        else:
            if since < self._compacted:
                raise gone(f"too old resource version: {since} ({self._compacted + 1})")
            for event in self._history:
                if event.rv > since:
                    seen = watcher.translate(event)
                    if seen is not None:
                        watcher.queue.put_nowait(seen)
        self._watchers.add(watcher)
        return watcher

    def unwatch(self, watcher: Watcher) -> None:
        self._watchers.discard(watcher)

    def close_watches(self) -> None:
        """Tell every watcher to end (the server is stopping): each gets a final ("CLOSED", {})."""
        for watcher in self._watchers:
            watcher.queue.put_nowait(("CLOSED", {}))
