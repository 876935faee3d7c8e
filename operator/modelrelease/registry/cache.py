"""Shared registry answers: per-key TTL, single-flight on misses, bounded LRU of per-version facts."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Coroutine, Hashable
from dataclasses import dataclass
from functools import partial
from typing import Any, Generic, NamedTuple, TypeVar

from modelrelease.registry.base import ModelVersion

DEFAULT_TTL_S = 60.0
"""How long a resolution is shared when the caller gives no max_age (the default poll interval)."""
RESOLUTION_CACHE_SIZE = 4096
VERSION_FACTS_CACHE_SIZE = 512
"""Digests and input schemas kept per process (LRU, keyed by target + model + version)."""

K = TypeVar("K", bound=Hashable)
FactsKey = tuple[Hashable, str, str]
"""(backend target, model, version) of a per-version fact."""
V = TypeVar("V")


class SingleFlight(Generic[K, V]):
    """Concurrent callers with the same key share one running computation (and its outcome)."""

    def __init__(self) -> None:
        self._tasks: dict[K, asyncio.Task[V]] = {}

    async def run(self, key: K, compute: Callable[[], Coroutine[Any, Any, V]]) -> V:
        task = self._tasks.get(key)
        if task is None:
            task = asyncio.ensure_future(compute())
            self._tasks[key] = task
            task.add_done_callback(partial(self._finished, key))
        # shield: a cancelled caller must not cancel the computation the other callers wait for.
        return await asyncio.shield(task)

    def forget(self, matches: Callable[[K], bool]) -> None:
        """Later callers start afresh instead of joining these keys' computations."""
        for key in [k for k in self._tasks if matches(k)]:
            del self._tasks[key]

    def _finished(self, key: K, task: asyncio.Task[V]) -> None:
        if self._tasks.get(key) is task:
            del self._tasks[key]
        if not task.cancelled():
            task.exception()  # retrieved, so an error nobody awaited any more is not logged as lost


class ResolutionKey(NamedTuple):
    target: Hashable
    """The backend's target (MLflow ``RegistryTarget``, SageMaker ``SageMakerTarget``): each backend's own
    frozen dataclass, so keys of two backends never compare equal."""
    model: str
    kind: str
    """``version``, ``alias``, ``stage`` or ``latestApproved``."""
    value: str


@dataclass
class _Entry:
    value: ModelVersion
    fetched_at: float


class ResolutionCache:
    """Registry answers shared across releases: per key a TTL, and single-flight on misses.

    Counters (exported as Prometheus metrics by the operator): ``hits`` answered from a fresh entry,
    ``misses`` needed the registry (started or joined a fetch), ``requests`` fetches actually started.
    Errors are not cached. :meth:`invalidate` drops a model's answers (webhook pushes), including
    fetches in flight, whose answers are then not stored.
    """

    def __init__(
        self,
        ttl: float = DEFAULT_TTL_S,
        *,
        max_entries: int = RESOLUTION_CACHE_SIZE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl = ttl
        self.hits = 0
        self.misses = 0
        self.requests = 0
        self._max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[ResolutionKey, _Entry] = OrderedDict()
        self._generations: dict[str, int] = {}
        self._flights: SingleFlight[ResolutionKey, ModelVersion] = SingleFlight()

    async def get(
        self,
        key: ResolutionKey,
        fetch: Callable[[], Awaitable[ModelVersion]],
        max_age: float | None = None,
    ) -> ModelVersion:
        """The answer for ``key`` if fetched less than ``max_age`` (default: ttl) seconds ago, else fetch."""
        entry = self._entries.get(key)
        limit = self.ttl if max_age is None else max_age
        if entry is not None and self._clock() - entry.fetched_at < limit:
            self.hits += 1
            return entry.value
        self.misses += 1
        return await self._flights.run(key, partial(self._fetch, key, fetch))

    async def _fetch(self, key: ResolutionKey, fetch: Callable[[], Awaitable[ModelVersion]]) -> ModelVersion:
        generation = self._generations.get(key.model, 0)
        self.requests += 1
        value = await fetch()
        if self._generations.get(key.model, 0) == generation:
            self._entries[key] = _Entry(value, self._clock())
            self._entries.move_to_end(key)
            while len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)
        return value

    def invalidate(self, model: str, target: Hashable | None = None) -> int:
        """Forget every answer about ``model`` (on ``target`` only, when given); returns how many."""

        def matches(key: ResolutionKey) -> bool:
            return key.model == model and (target is None or key.target == target)

        self._generations[model] = self._generations.get(model, 0) + 1
        self._flights.forget(matches)
        stale = [key for key in self._entries if matches(key)]
        for key in stale:
            del self._entries[key]
        return len(stale)

    def stats(self) -> dict[str, int]:
        return {"hits": self.hits, "misses": self.misses, "requests": self.requests}


class VersionFactsCache(Generic[V]):
    """Bounded LRU of facts about a version (per-file digests, input schema), single-flight. Stored bytes
    can still change behind the registry's back, so a caller may ask for a fact no older than it trusts."""

    def __init__(
        self, max_entries: int = VERSION_FACTS_CACHE_SIZE, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._max_entries = max_entries
        self._clock = clock
        self._values: OrderedDict[FactsKey, tuple[V, float]] = OrderedDict()
        self._flights: SingleFlight[FactsKey, V] = SingleFlight()

    async def get(
        self,
        key: FactsKey,
        compute: Callable[[], Coroutine[Any, Any, V]],
        max_age: float | None = None,
    ) -> V:
        """The fact, computed anew when there is none or it was computed ``max_age`` seconds ago or more
        (None: any age will do)."""
        found = self._values.get(key)
        if found is not None and (max_age is None or self._clock() - found[1] < max_age):
            self._values.move_to_end(key)
            return found[0]
        return await self._flights.run(key, partial(self._compute, key, compute))

    def put(self, key: FactsKey, value: V) -> None:
        """Keep a fact learnt on the way to another (a version's MLmodel, read while hashing its files)."""
        self._values[key] = (value, self._clock())
        self._values.move_to_end(key)
        while len(self._values) > self._max_entries:
            self._values.popitem(last=False)

    async def _compute(self, key: FactsKey, compute: Callable[[], Coroutine[Any, Any, V]]) -> V:
        value = await compute()
        self.put(key, value)
        return value
