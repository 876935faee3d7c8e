"""The shared resolution cache (TTL, single-flight, invalidation), the per-version facts cache, the
HTTP retry policy and target handling: the registry backend's parts that need no server."""

from __future__ import annotations

import asyncio

import pytest

from modelrelease.registry.base import ModelVersion, RegistryError, RegistryTarget, RegistryUnavailable
from modelrelease.registry.cache import ResolutionCache, ResolutionKey, VersionFactsCache
from modelrelease.registry.mlflow import HttpPolicy, MlflowRegistry

TARGET = RegistryTarget("http://registry.test", password="secret")
OTHER_TARGET = RegistryTarget("http://other.test")


def key(model: str = "fraud", target: RegistryTarget = TARGET) -> ResolutionKey:
    return ResolutionKey(target, model, "alias", "champion")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Registry:
    """Answers version N on the Nth fetch; a fetch waits for ``gate`` when one is set."""

    def __init__(self) -> None:
        self.fetches = 0
        self.gate: asyncio.Event | None = None
        self.fail: Exception | None = None

    async def fetch(self) -> ModelVersion:
        self.fetches += 1
        number = self.fetches
        if self.gate is not None:
            await self.gate.wait()
        if self.fail is not None:
            raise self.fail
        return ModelVersion(name="fraud", version=str(number), status="READY", run_id=None, source="")


async def until(condition: object, what: str) -> None:
    """Let other tasks run until ``condition()`` holds (bounded by a number of loop turns)."""
    for _ in range(1000):
        if condition():  # type: ignore[operator]
            return
        await asyncio.sleep(0)
    raise AssertionError(f"never happened: {what}")


async def test_answers_are_shared_for_the_ttl() -> None:
    clock, registry = Clock(), Registry()
    cache = ResolutionCache(ttl=60, clock=clock)
    assert (await cache.get(key(), registry.fetch)).version == "1"
    clock.now += 59
    assert (await cache.get(key(), registry.fetch)).version == "1"
    clock.now += 1
    assert (await cache.get(key(), registry.fetch)).version == "2"
    assert cache.stats() == {"hits": 1, "misses": 2, "requests": 2}


async def test_each_caller_may_ask_for_a_fresher_answer() -> None:
    clock, registry = Clock(), Registry()
    cache = ResolutionCache(ttl=60, clock=clock)
    await cache.get(key(), registry.fetch)
    clock.now += 10
    assert (await cache.get(key(), registry.fetch, max_age=30)).version == "1"
    assert (await cache.get(key(), registry.fetch, max_age=5)).version == "2"


async def test_keys_are_distinct_per_target_model_and_reference() -> None:
    registry = Registry()
    cache = ResolutionCache()
    for k in (key(), key(target=OTHER_TARGET), key("other"), ResolutionKey(TARGET, "fraud", "version", "3")):
        await cache.get(k, registry.fetch)
    assert registry.fetches == 4


async def test_concurrent_misses_wait_for_one_fetch() -> None:
    registry = Registry()
    registry.gate = asyncio.Event()
    cache = ResolutionCache()
    waiters = [asyncio.create_task(cache.get(key(), registry.fetch)) for _ in range(10)]
    await until(lambda: cache.misses == 10, "all ten callers waiting")
    registry.gate.set()
    assert {mv.version for mv in await asyncio.gather(*waiters)} == {"1"}
    assert registry.fetches == 1
    assert cache.stats() == {"hits": 0, "misses": 10, "requests": 1}


async def test_errors_reach_every_waiter_and_are_not_cached() -> None:
    registry = Registry()
    registry.gate, registry.fail = asyncio.Event(), RegistryUnavailable("registry down")
    cache = ResolutionCache()
    waiters = [asyncio.create_task(cache.get(key(), registry.fetch)) for _ in range(3)]
    await until(lambda: cache.misses == 3, "three callers waiting")
    registry.gate.set()
    results = await asyncio.gather(*waiters, return_exceptions=True)
    assert all(isinstance(r, RegistryUnavailable) for r in results) and registry.fetches == 1
    registry.fail = None
    assert (await cache.get(key(), registry.fetch)).version == "2"


async def test_a_cancelled_caller_does_not_cancel_the_shared_fetch() -> None:
    registry = Registry()
    registry.gate = asyncio.Event()
    cache = ResolutionCache()
    leaving = asyncio.create_task(cache.get(key(), registry.fetch))
    staying = asyncio.create_task(cache.get(key(), registry.fetch))
    await until(lambda: cache.misses == 2, "both callers waiting")
    leaving.cancel()
    registry.gate.set()
    assert (await staying).version == "1"
    assert leaving.cancelled() and registry.fetches == 1


async def test_invalidate_drops_answers_of_that_model_only() -> None:
    registry = Registry()
    cache = ResolutionCache()
    for k in (key(), key(target=OTHER_TARGET), key("other")):
        await cache.get(k, registry.fetch)
    assert cache.invalidate("fraud", TARGET) == 1
    assert cache.invalidate("fraud") == 1  # the other target's answer
    await cache.get(key("other"), registry.fetch)
    assert registry.fetches == 3  # "other" was still shared
    await cache.get(key(), registry.fetch)
    assert registry.fetches == 4


async def test_an_answer_in_flight_during_invalidation_is_not_kept() -> None:
    """A webhook says the alias moved while an older request is in flight: later callers must not get,
    nor later find cached, the answer of that older request."""
    registry = Registry()
    registry.gate = asyncio.Event()
    cache = ResolutionCache()
    stale = asyncio.create_task(cache.get(key(), registry.fetch))
    await until(lambda: registry.fetches == 1, "first fetch started")
    cache.invalidate("fraud")
    fresh = asyncio.create_task(cache.get(key(), registry.fetch))
    await until(lambda: registry.fetches == 2, "a second fetch started instead of joining the stale one")
    registry.gate.set()
    assert ((await stale).version, (await fresh).version) == ("1", "2")
    assert (await cache.get(key(), registry.fetch)).version == "2"


async def test_resolution_cache_is_bounded() -> None:
    registry = Registry()
    cache = ResolutionCache(max_entries=2)
    for model in ("a", "b", "c"):
        await cache.get(key(model), registry.fetch)
    await cache.get(key("c"), registry.fetch)
    await cache.get(key("a"), registry.fetch)
    assert registry.fetches == 4  # "a" was evicted, "c" was not


async def test_version_facts_are_computed_once_and_bounded() -> None:
    computed: list[str] = []
    gate = asyncio.Event()

    async def digest_of(version: str) -> str:
        computed.append(version)
        await gate.wait()
        return f"sha256:{version}"

    facts: VersionFactsCache[str] = VersionFactsCache(max_entries=2)
    same = [asyncio.create_task(facts.get((TARGET, "fraud", "1"), lambda: digest_of("1"))) for _ in range(5)]
    await until(lambda: computed == ["1"], "one computation started")
    gate.set()
    assert set(await asyncio.gather(*same)) == {"sha256:1"} and computed == ["1"]
    for version in ("2", "3", "1"):
        await facts.get((TARGET, "fraud", version), lambda v=version: digest_of(v))  # type: ignore[misc]
    assert computed == ["1", "2", "3", "1"]  # "1" was evicted by "2" and "3"


async def test_a_version_fact_older_than_the_callers_max_age_is_computed_again() -> None:
    now = [100.0]
    computed: list[float] = []

    async def digest() -> str:
        computed.append(now[0])
        return f"sha256:{len(computed)}"

    facts: VersionFactsCache[str] = VersionFactsCache(clock=lambda: now[0])
    key = (TARGET, "fraud", "1")
    assert await facts.get(key, digest) == "sha256:1"
    now[0] += 29.9
    assert await facts.get(key, digest, max_age=30) == "sha256:1"  # young enough
    assert await facts.get(key, digest) == "sha256:1"  # no bound: any age
    now[0] += 0.1
    assert await facts.get(key, digest, max_age=30) == "sha256:2"  # 30 s old: read again
    assert await facts.get(key, digest, max_age=30) == "sha256:2" and computed == [100.0, 130.0]


def test_backoff_doubles_with_jitter_and_is_capped() -> None:
    policy = HttpPolicy(backoff_base=0.5, backoff_max=4.0)
    for attempt, ceiling in ((1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (9, 4.0)):
        waits = [policy.backoff(attempt) for _ in range(50)]
        assert all(ceiling / 2 <= w <= ceiling for w in waits)
    assert policy.backoff(1, retry_after=2.5) == 2.5
    assert policy.backoff(1, retry_after=600) == 4.0


def test_default_policy_bounds_a_call_by_every_timeout_and_every_capped_wait() -> None:
    # Retry-After may stretch each of the two waits to the 4 s cap.
    assert HttpPolicy().worst_case_seconds == 3 * 10.0 + 2 * 4.0


def test_target_repr_hides_secrets() -> None:
    target = RegistryTarget("http://registry.test", username="ml", password="pw-secret", token="tok-secret")
    assert "pw-secret" not in repr(target) and "tok-secret" not in repr(target)
    assert hash(target) == hash(RegistryTarget("http://registry.test", "ml", "pw-secret", "tok-secret"))


@pytest.mark.parametrize("uri", ["ftp://registry.test", "http:///no-host", "registry.test:5000"])
async def test_an_unusable_tracking_uri_fails_the_call_not_the_construction(uri: str) -> None:
    async with MlflowRegistry(RegistryTarget(uri)) as registry:
        with pytest.raises(RegistryError) as error:
            await registry.get_version("fraud", "1")
    assert error.value.reason == "UnsupportedTrackingUri"
