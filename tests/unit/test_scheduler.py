"""The one scheduler of reconcile passes: due times after each outcome (pure), the agenda's heap against a
plain model of it (hypothesis state machine), and the asyncio shell (bounded waits, never timed)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from hypothesis import given
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from modelrelease.scheduler import (
    MAX_BACKOFF_S,
    Agenda,
    Outcome,
    PassResult,
    Scheduler,
    backoff,
    next_delay,
)

OK, PERMANENT, TRANSIENT, GONE = (PassResult(o) for o in Outcome)
BOUND = 5.0
"""Longest any bounded wait below may take; a healthy run takes milliseconds."""

# ------------------------------------------------------------------------------------ due times


def test_backoff_doubles_from_two_seconds_up_to_a_minute() -> None:
    assert [backoff(n) for n in range(1, 8)] == [2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0]


def test_success_waits_for_requeue_after_capped_by_the_interval() -> None:
    assert next_delay(PassResult(Outcome.OK, 10.0), 60.0, 3) == (10.0, 0)
    assert next_delay(PassResult(Outcome.OK, 120.0), 60.0, 0) == (60.0, 0)
    assert next_delay(OK, 30.0, 5) == (30.0, 0)


def test_a_permanent_problem_waits_the_interval_without_backoff() -> None:
    assert next_delay(PERMANENT, 30.0, 4) == (30.0, 0)


results = st.sampled_from([OK, PERMANENT, TRANSIENT]) | st.builds(
    PassResult, st.just(Outcome.OK), st.floats(0.0, 1e5)
)


@given(interval=st.floats(5.0, 86400.0), outcomes=st.lists(results, max_size=30))
def test_delays_stay_within_the_interval_and_back_off_only_through_transient_streaks(
    interval: float, outcomes: list[PassResult]
) -> None:
    failures, streak = 0, 0
    for result in outcomes:
        delay, failures = next_delay(result, interval, failures)
        assert 0.0 <= delay <= interval
        streak = streak + 1 if result.outcome is Outcome.TRANSIENT else 0
        assert failures == streak
        if streak:
            assert delay == min(interval, 2.0**streak, MAX_BACKOFF_S)


# ------------------------------------------------------------------------------------ the agenda


class AgendaAgainstAModel(RuleBasedStateMachine):
    """The heap with lazy deletion behaves like a plain dict of due times."""

    keys = st.sampled_from("abcde")

    @initialize()
    def start_empty(self) -> None:
        self.agenda: Agenda[str] = Agenda()
        self.now = 0.0
        self.due: dict[str, float | None] = {}  # None: its pass runs
        self.generation: dict[str, int] = {}
        self.rerun: set[str] = set()
        self.forgotten: set[str] = set()

    def _known(self, key: str) -> bool:
        return key in self.due and key not in self.forgotten

    @rule(key=keys, generation=st.integers(1, 3), interval=st.sampled_from([5.0, 30.0]))
    def observe(self, key: str, generation: int, interval: float) -> None:
        changed = self.agenda.observe(key, interval, generation, self.now)
        if key not in self.due:
            assert changed
            self.due[key] = self.now
        elif self.generation[key] != generation or key in self.forgotten:
            assert changed
            self.forgotten.discard(key)
            self._wake(key)
        else:
            assert not changed
        self.generation[key] = generation

    def _wake(self, key: str) -> None:
        due = self.due[key]
        if due is None:
            self.rerun.add(key)
        else:
            self.due[key] = min(due, self.now)

    @rule(key=keys)
    def wake(self, key: str) -> None:
        assert self.agenda.wake(key, self.now) == self._known(key)
        if self._known(key):
            self._wake(key)

    @rule(key=keys)
    def forget(self, key: str) -> None:
        self.agenda.forget(key)
        if key not in self.due:
            return
        if self.due[key] is None:
            self.forgotten.add(key)
        else:
            self._drop(key)

    def _drop(self, key: str) -> None:
        del self.due[key], self.generation[key]
        self.rerun.discard(key)
        self.forgotten.discard(key)

    @rule(seconds=st.sampled_from([0.0, 1.0, 5.0, 40.0]))
    def advance(self, seconds: float) -> None:
        self.now += seconds

    @rule()
    def start(self) -> None:
        ready = {k: d for k, d in self.due.items() if d is not None and d <= self.now}
        key = self.agenda.start(self.now)
        if not ready:
            assert key is None
            return
        assert key is not None and ready[key] == min(ready.values())
        self.due[key] = None

    @precondition(lambda self: any(d is None for d in self.due.values()))
    @rule(data=st.data(), result=st.sampled_from([OK, PERMANENT, TRANSIENT, GONE]))
    def finish(self, data: st.DataObject, result: PassResult) -> None:
        key = data.draw(st.sampled_from(sorted(k for k, d in self.due.items() if d is None)))
        due = self.agenda.finish(key, result, self.now)
        if key in self.forgotten or result.outcome is Outcome.GONE:
            assert due is None
            self._drop(key)
            return
        assert due is not None and self.now <= due <= self.now + 30.0
        assert (due == self.now) or key not in self.rerun
        self.rerun.discard(key)
        self.due[key] = due

    @invariant()
    def same_keys_and_next_due(self) -> None:
        assert len(self.agenda) == sum(1 for k in self.due if k not in self.forgotten)
        waiting = [d for d in self.due.values() if d is not None]
        assert self.agenda.next_due() == (min(waiting) if waiting else None)


TestAgendaAgainstAModel = AgendaAgainstAModel.TestCase


def test_many_wakes_leave_the_heap_bounded() -> None:
    agenda: Agenda[int] = Agenda()
    for key in range(10):
        agenda.observe(key, 60.0, 1, now=0.0)
    for key in range(10):
        assert agenda.start(now=0.0) is not None
        agenda.finish(key, OK, now=0.0)  # due again at 60
    for tick in range(1, 1000):
        agenda.wake(tick % 10, now=float(tick) / 1000)  # each leaves the due-at-60 item stale
        started = agenda.start(now=float(tick) / 1000)
        assert started is not None
        agenda.finish(started, OK, now=float(tick) / 1000)
    assert len(agenda._heap) <= 2 * len(agenda) + 64


# ------------------------------------------------------------------------------- the async shell


class Passes:
    """A fake `run_pass`: records passes, tracks concurrency, can be held and can fail."""

    def __init__(self, result: Callable[[str], PassResult] = lambda _key: OK) -> None:
        self.result = result
        self.count: Counter[str] = Counter()
        self.running: Counter[str] = Counter()
        self.most_at_once = 0
        self.hold = asyncio.Event()
        self.hold.set()
        self.changed = asyncio.Condition()

    async def __call__(self, key: str) -> PassResult:
        self.running[key] += 1
        assert self.running[key] == 1, f"two passes of {key} at once"
        self.most_at_once = max(self.most_at_once, sum(self.running.values()))
        async with self.changed:
            self.changed.notify_all()
        try:
            await self.hold.wait()
            await asyncio.sleep(0)
            return self.result(key)
        finally:
            self.running[key] -= 1
            self.count[key] += 1
            async with self.changed:
                self.changed.notify_all()

    async def until(self, what: Callable[[], bool]) -> None:
        async with self.changed:
            await asyncio.wait_for(self.changed.wait_for(what), BOUND)


@asynccontextmanager
async def running(passes: Passes, concurrency: int = 4) -> AsyncIterator[Scheduler[str]]:
    """A scheduler with its run task, stopped afterwards."""
    scheduler = Scheduler(passes, concurrency=concurrency)
    task = asyncio.create_task(scheduler.run())
    try:
        yield scheduler
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await scheduler.stop()


async def test_a_new_release_runs_at_once_then_at_its_requeue() -> None:
    passes = Passes(lambda _key: PassResult(Outcome.OK, requeue_after=0.01))
    async with running(passes) as scheduler:
        scheduler.observe("a", 60.0, 1)
        await passes.until(lambda: passes.count["a"] >= 3)


async def test_a_generation_change_runs_at_once_and_a_status_only_event_does_not() -> None:
    passes = Passes()
    async with running(passes) as scheduler:
        scheduler.observe("a", 3600.0, 1)
        await passes.until(lambda: passes.count["a"] == 1)
        scheduler.observe("a", 3600.0, 1)  # our own status write comes back as an event
        scheduler.observe("b", 3600.0, 1)
        await passes.until(lambda: passes.count["b"] == 1)
        scheduler.observe("a", 3600.0, 2)
        await passes.until(lambda: passes.count["a"] == 2)
        scheduler.observe("b", 3600.0, 1)
        scheduler.wake("b")
        await passes.until(lambda: passes.count["b"] == 2)
        assert passes.count["a"] == 2


async def test_passes_are_bounded_and_never_two_for_one_release() -> None:
    passes = Passes()
    passes.hold.clear()
    async with running(passes, 3) as scheduler:
        keys = [f"r{i}" for i in range(20)]
        for key in keys:
            scheduler.observe(key, 3600.0, 1)
        await passes.until(lambda: sum(passes.running.values()) == 3)
        for key in keys:
            scheduler.wake(key)  # woken while running or waiting: one pass now, another right after
        passes.hold.set()
        await passes.until(lambda: all(passes.count[k] >= 1 for k in keys))
        assert passes.most_at_once == 3


async def test_woken_during_its_pass_it_runs_again_right_after() -> None:
    passes = Passes()
    passes.hold.clear()
    async with running(passes) as scheduler:
        scheduler.observe("a", 3600.0, 1)
        await passes.until(lambda: passes.running["a"] == 1)
        assert scheduler.wake("a")
        passes.hold.set()
        await passes.until(lambda: passes.count["a"] == 2)


async def test_a_crashing_pass_backs_off_and_the_scheduler_keeps_going() -> None:
    def crash(key: str) -> PassResult:
        if key == "bad":
            raise RuntimeError("a bug")
        return OK

    passes = Passes(crash)
    async with running(passes) as scheduler:
        scheduler.observe("bad", 3600.0, 1)
        await passes.until(lambda: passes.count["bad"] == 1)
        scheduler.observe("good", 3600.0, 1)
        await passes.until(lambda: passes.count["good"] == 1)
        due = scheduler.agenda.next_due()
        assert due is not None and due <= time.monotonic() + 2.0  # its first backoff, not the hour


async def test_a_forgotten_release_is_not_run_again() -> None:
    passes = Passes()
    async with running(passes) as scheduler:
        scheduler.observe("a", 0.01, 1)
        await passes.until(lambda: passes.count["a"] >= 1)
        scheduler.forget("a")
        assert not scheduler.wake("a") and len(scheduler.agenda) == 0
        runs = passes.count["a"]
        scheduler.observe("b", 3600.0, 1)
        await passes.until(lambda: passes.count["b"] == 1)
        assert passes.count["a"] <= runs + 1  # at most the pass already running when it was forgotten


async def test_a_release_gone_is_dropped() -> None:
    passes = Passes(lambda _key: GONE)
    async with running(passes) as scheduler:
        scheduler.observe("a", 0.01, 1)
        await passes.until(lambda: passes.count["a"] == 1)
        await asyncio.wait_for(_until_empty(scheduler), BOUND)


async def _until_empty(scheduler: Scheduler[str]) -> None:
    while len(scheduler.agenda):
        await asyncio.sleep(0.01)


def test_wakes_with_a_delay_coalesce_and_never_postpone() -> None:
    agenda: Agenda[str] = Agenda()
    agenda.observe("r", 30.0, 1, now=0.0)
    assert agenda.start(0.0) == "r"
    agenda.finish("r", PassResult(Outcome.OK), now=0.0)  # next poll at 30
    assert agenda.wake("r", 10.0, delay=1.0) and agenda.next_due() == 11.0
    assert agenda.wake("r", 10.5, delay=1.0) and agenda.next_due() == 11.0  # coalesced, not postponed
    assert agenda.wake("r", 10.6) and agenda.next_due() == 10.6  # an undelayed wake: at once
    assert agenda.start(10.9) == "r" and agenda.start(11.0) is None  # one pass for the three wakes
