"""One scheduler for every release: when each one's next reconcile pass is due, and a single task that
runs the due passes with bounded concurrency.

The watch drives it (handlers.py): a release is registered when it is first seen, made due at once when
its generation changes or something wakes it (its Deployment changed, an MLflow webhook), and forgotten
when it is deleted. After a pass its next due time follows from the outcome (:func:`next_delay`):
the plan's ``requeue_after`` or the poll interval after success, the poll interval after a problem that
waiting will not fix (recorded in the status already), exponential backoff capped by the interval after
a transient failure. There is no task per release and no finalizer: deleting a release needs nothing
from the operator.

:class:`Agenda` is the pure part (due times in a heap with lazy deletion, no clock, no I/O);
:class:`Scheduler` is the asyncio shell around it.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import heapq
import itertools
import logging
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

logger = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)

MAX_BACKOFF_S = 60.0
"""Longest wait after repeated transient failures (the poll interval caps it too)."""
CONCURRENCY = 24
"""Passes running at once, across all releases. A pass mostly waits (for the API server, the registry),
so this bounds how many requests the operator has in flight rather than its CPU (bench/scale.py)."""


class Outcome(enum.Enum):
    OK = "ok"
    """The pass completed: next at the plan's requeue_after, else the poll interval."""
    PERMANENT = "permanent"
    """A problem waiting will not fix (a bad spec, a write the API server refused), already recorded:
    look again after the poll interval, not sooner."""
    TRANSIENT = "transient"
    """The registry or the API server failed for now (or a bug): back off."""
    GONE = "gone"
    """The release no longer exists: forget it."""


@dataclass(frozen=True)
class PassResult:
    outcome: Outcome
    requeue_after: float | None = None


def backoff(failures: int) -> float:
    """Seconds to wait after `failures` consecutive transient failures: 2, 4, 8, ... up to a minute."""
    return min(MAX_BACKOFF_S, 2.0 ** max(failures, 0))


def next_delay(result: PassResult, interval: float, failures: int) -> tuple[float, int]:
    """(seconds until the next pass, consecutive transient failures) after a pass with `result`."""
    if result.outcome is Outcome.TRANSIENT:
        failures += 1
        return min(interval, backoff(failures)), failures
    if result.outcome is Outcome.OK and result.requeue_after is not None:
        return min(interval, result.requeue_after), 0
    return interval, 0


@dataclass
class _Entry:
    interval: float
    generation: int
    due: float | None
    """When the next pass is due; None while one runs."""
    token: int = 0
    """Of the one heap item that is current; older items for this key are stale."""
    failures: int = 0
    rerun: bool = False
    """Woken while a pass ran: run again as soon as it ends."""
    forgotten: bool = False
    """Deleted while a pass ran: drop it when the pass ends."""


class Agenda(Generic[K]):
    """Every known key with its due time, in a heap with lazy deletion. Times are whatever clock the
    caller passes in; nothing here reads one."""

    def __init__(self) -> None:
        self._entries: dict[K, _Entry] = {}
        self._heap: list[tuple[float, int, K]] = []
        self._tokens = itertools.count()

    def __len__(self) -> int:
        return sum(not entry.forgotten for entry in self._entries.values())

    def observe(self, key: K, interval: float, generation: int, now: float) -> bool:
        """A watch event of `key`: register it (due at once), or take its interval and, when its
        generation changed, make it due at once. Returns whether it became due."""
        entry = self._entries.get(key)
        if entry is None:
            self._entries[key] = _Entry(interval=interval, generation=generation, due=None)
            self._schedule(key, now)
            return True
        entry.interval = interval
        if generation == entry.generation and not entry.forgotten:
            return False
        entry.generation, entry.forgotten = generation, False
        return self.wake(key, now)

    def wake(self, key: K, now: float, delay: float = 0.0) -> bool:
        """Make `key` due within `delay` seconds (after the pass in progress, if one is): wakes within that
        time coalesce into one pass. False for an unknown key."""
        entry = self._entries.get(key)
        if entry is None or entry.forgotten:
            return False
        if entry.due is None:
            entry.rerun = True
        elif entry.due > now + delay:
            self._schedule(key, now + delay)
        return True

    def forget(self, key: K) -> None:
        entry = self._entries.get(key)
        if entry is None:
            return
        if entry.due is None:  # a pass is running: finish() drops it
            entry.forgotten = True
        else:
            del self._entries[key]

    def next_due(self) -> float | None:
        """The earliest due time, or None when nothing is scheduled."""
        self._drop_stale()
        return self._heap[0][0] if self._heap else None

    def start(self, now: float) -> K | None:
        """Take the earliest key due by `now` and mark its pass running, or None if none is due."""
        self._drop_stale()
        if not self._heap or self._heap[0][0] > now:
            return None
        _due, _token, key = heapq.heappop(self._heap)
        self._entries[key].due = None
        return key

    def finish(self, key: K, result: PassResult, now: float) -> float | None:
        """Record the end of `key`'s pass; returns its next due time (None when it is dropped)."""
        entry = self._entries[key]
        if entry.forgotten or result.outcome is Outcome.GONE:
            del self._entries[key]
            return None
        delay, entry.failures = next_delay(result, entry.interval, entry.failures)
        due = now if entry.rerun else now + delay
        entry.rerun = False
        self._schedule(key, due)
        return due

    def _schedule(self, key: K, due: float) -> None:
        entry = self._entries[key]
        entry.due, entry.token = due, next(self._tokens)
        heapq.heappush(self._heap, (due, entry.token, key))
        if len(self._heap) > 2 * len(self._entries) + 64:  # wakes leave stale items behind: compact
            self._heap = [item for item in self._heap if self._current(item)]
            heapq.heapify(self._heap)

    def _current(self, item: tuple[float, int, K]) -> bool:
        entry = self._entries.get(item[2])
        return entry is not None and entry.due is not None and entry.token == item[1]

    def _drop_stale(self) -> None:
        while self._heap and not self._current(self._heap[0]):
            heapq.heappop(self._heap)


class Scheduler(Generic[K]):
    """Runs `run_pass(key)` for each due key, at most `concurrency` at a time and never two for one
    key. One task (:meth:`run`) for the whole operator; it sleeps until the earliest due time or a
    change to the agenda."""

    def __init__(
        self,
        run_pass: Callable[[K], Awaitable[PassResult]],
        concurrency: int = CONCURRENCY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.agenda: Agenda[K] = Agenda()
        self._run_pass = run_pass
        self._clock = clock
        self._slots = asyncio.Semaphore(concurrency)
        self._changed = asyncio.Event()
        self._passes: set[asyncio.Task[None]] = set()

    def observe(self, key: K, interval: float, generation: int) -> None:
        if self.agenda.observe(key, interval, generation, self._clock()):
            self._changed.set()

    def wake(self, key: K, delay: float = 0.0) -> bool:
        woken = self.agenda.wake(key, self._clock(), delay)
        if woken:
            self._changed.set()
        return woken

    def forget(self, key: K) -> None:
        self.agenda.forget(key)

    async def run(self) -> None:
        """Forever: take a free slot, wait for the next due key, start its pass."""
        while True:
            await self._slots.acquire()
            try:
                key = await self._next()
            except BaseException:
                self._slots.release()
                raise
            task = asyncio.create_task(self._pass(key), name=f"reconcile {key}")
            self._passes.add(task)
            task.add_done_callback(self._passes.discard)

    async def stop(self) -> None:
        """Cancel the passes in flight (the caller cancels the task running :meth:`run`)."""
        for task in list(self._passes):
            task.cancel()
        await asyncio.gather(*self._passes, return_exceptions=True)

    async def _next(self) -> K:
        while True:
            now = self._clock()
            key = self.agenda.start(now)
            if key is not None:
                return key
            self._changed.clear()
            due = self.agenda.next_due()
            # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancellation that arrives
            # as the event is set, and the scheduler would then outlive the operator's shutdown.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(None if due is None else due - now):
                    await self._changed.wait()

    async def _pass(self, key: K) -> None:
        try:
            result = await self._run_pass(key)
        except Exception:  # run_pass maps every failure; this is the last line against a bug
            logger.exception("reconcile pass of %s crashed", key)
            result = PassResult(Outcome.TRANSIENT)
        finally:
            self._slots.release()
        self.agenda.finish(key, result, self._clock())
        self._changed.set()
