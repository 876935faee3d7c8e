"""The newest body seen of each watched object, so that a reconcile pass reads memory instead of the API
server: fed by the watch (kopf's event handlers) and by the answers to the operator's own writes.

Those two sources race: the answer to a write can arrive before the watch delivers events older than
it, and the watch can deliver a deletion before a late answer. A body replaces the one held only when its
resourceVersion is not older, compared as integers (etcd's revisions, which is what every kube-apiserver
serves); when either is not an integer nothing can be compared and the newer arrival wins. A deletion
leaves a tombstone with its resourceVersion, so a late, older body does not bring the object back.
Bodies are kept without ``metadata.managedFields``, which a pass never reads and which is often the
largest part of an object written with server-side apply.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable, Mapping
from typing import Any, Generic, TypeVar

K = TypeVar("K", bound=Hashable)

MAX_TOMBSTONES = 4096


def _revision(body: Mapping[str, Any] | None) -> int | None:
    try:
        return int((body or {}).get("metadata", {}).get("resourceVersion"))
    except (TypeError, ValueError):
        return None


def not_older(candidate: Mapping[str, Any], held: Mapping[str, Any] | None) -> bool:
    """Whether `candidate` may replace `held` (True when either revision is unknown)."""
    new, old = _revision(candidate), _revision(held)
    return new is None or old is None or new >= old


def slim(body: Mapping[str, Any]) -> dict[str, Any]:
    """A shallow copy of `body` whose metadata lacks managedFields (nested values are shared, not copied:
    nothing here or in a pass mutates them)."""
    metadata = {k: v for k, v in (body.get("metadata") or {}).items() if k != "managedFields"}
    return {**body, "metadata": metadata}


class Latest(Generic[K]):
    """Newest body per key, and tombstones of recent deletions."""

    def __init__(self) -> None:
        self._bodies: dict[K, dict[str, Any]] = {}
        self._tombstones: OrderedDict[K, dict[str, Any]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._bodies)

    def get(self, key: K) -> dict[str, Any] | None:
        return self._bodies.get(key)

    def seen(self, key: K, body: Mapping[str, Any]) -> bool:
        """Keep `body` unless what is held (or the tombstone) is newer; returns whether it was kept."""
        held = self._bodies.get(key) or self._tombstones.get(key)
        if held is not None and not not_older(body, held):
            return False
        self._tombstones.pop(key, None)
        self._bodies[key] = slim(body)
        return True

    def gone(self, key: K, body: Mapping[str, Any] | None = None) -> None:
        """The object was deleted (`body`: the deletion event's, for its resourceVersion); also when it is
        simply no longer of interest (no body: no tombstone)."""
        held = self._bodies.pop(key, None)
        if body is not None and (held is None or not_older(body, held)):
            self._tombstones[key] = {"metadata": {"resourceVersion": body["metadata"].get("resourceVersion")}}
            self._tombstones.move_to_end(key)
            while len(self._tombstones) > MAX_TOMBSTONES:
                self._tombstones.popitem(last=False)
