"""Registry requests per poll for N releases following one model alias: shared answers vs none.

Counted by a reverse proxy in front of the sandbox's MLflow server (``RegistryProxy`` of the
integration tests), independently of the cache's own counters, which are printed beside it.

1. The real ``MlflowRegistry`` against the real server, one resolve per release per poll, as the
   operator's poller issues them. Shared: every release takes its registry from one
   ``MlflowRegistries`` (one ``ResolutionCache``), as the operator does; the releases of a poll resolve
   either concurrently (single-flight joins them) or one after another across the interval (the TTL
   answers them). Baseline: each release has its own registry and cache, so nothing is shared.
   The cache's clock is a manual one advanced by one poll interval per poll: no waiting.
2. The real operator process with N releases (pollInterval 5s), over a window of polls in real time.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter

from bench.common import Env, ratio, table, unique
from integration.helpers import Operator, RegistryProxy, eventually, registry_proxy
from modelrelease.api.models import ModelRef
from modelrelease.registry.base import RegistryTarget
from modelrelease.registry.cache import ResolutionCache
from modelrelease.registry.mlflow import MlflowRegistries

ALIAS_PATH = "/api/2.0/mlflow/registered-models/alias"
COUNTS = (1, 10, 50)
POLLS = 3
POLL_S = 60.0
"""The default pollInterval; only the manual clock sees it."""
MODES = {
    "baseline": "baseline: a cache per release",
    "concurrent": "shared, concurrent",
    "staggered": "shared, staggered",
}
OPERATOR_RELEASES = 10
"""One of COUNTS: its measured baseline is the operator's."""
OPERATOR_POLL_S = 5.0
OPERATOR_POLLS = 3


class ManualClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def alias_requests(proxy: RegistryProxy, before: Counter[str]) -> tuple[int, int]:
    """(alias lookups, all requests) the proxy saw since `before`."""
    delta = Counter(proxy.counts) - before
    return delta[ALIAS_PATH], sum(delta.values())


async def polls(proxy: RegistryProxy, ref: ModelRef, releases: int, mode: str) -> tuple[int, int, int]:
    """Alias lookups, all registry requests, and the cache's own fetch count over POLLS polls."""
    clock = ManualClock()
    target = RegistryTarget(proxy.url)
    if mode == "baseline":
        hubs = [MlflowRegistries(cache=ResolutionCache(clock=clock)) for _ in range(releases)]
    else:
        hubs = [MlflowRegistries(cache=ResolutionCache(clock=clock))] * releases
    before = Counter(proxy.counts)
    try:
        for _ in range(POLLS):
            if mode == "staggered":  # the releases' pollers fire at different moments of one interval
                for hub in hubs:
                    await hub.get(target).resolve(ref, max_age=POLL_S)
                    clock.now += POLL_S / releases
            else:
                await asyncio.gather(*(hub.get(target).resolve(ref, max_age=POLL_S) for hub in hubs))
                clock.now += POLL_S
    finally:
        for hub in set(hubs):
            await hub.close()
    lookups, total = alias_requests(proxy, before)
    fetches = sum(hub.cache.requests for hub in set(hubs))
    return lookups, total, fetches


def client_level(proxy: RegistryProxy, model: str) -> dict[int, float]:
    """Prints the table; returns the baseline's alias requests per poll for each release count."""
    ref = ModelRef(name=model, alias="champion")
    rows = []
    baselines = {}
    for releases in COUNTS:
        results = {mode: asyncio.run(polls(proxy, ref, releases, mode)) for mode in MODES}
        base = baselines[releases] = results["baseline"][0] / POLLS
        for mode, (lookups, total, fetches) in results.items():
            per_poll = lookups / POLLS
            rows.append(
                [
                    releases,
                    MODES[mode],
                    f"{per_poll:.2f}",
                    f"{total / POLLS:.2f}",
                    fetches,
                    ratio(base, per_poll),
                ]
            )
    headers = ["releases", "registry", "alias req/poll", "all req/poll", "cache fetches", "baseline/this"]
    print(table(f"registry requests per poll, real MlflowRegistry ({POLLS} polls each)", headers, rows))
    return baselines


def cache_counts(operator: Operator) -> tuple[float, float]:
    """The operator's own account of its resolutions: (cache hits, misses)."""
    prefix = "modelrelease_resolution_cache"
    return operator.metric(f"{prefix}_hits_total"), operator.metric(f"{prefix}_misses_total")


def operator_level(env: Env, proxy: RegistryProxy, baseline: float) -> None:
    """`baseline`: alias requests per poll for as many releases without sharing, measured above."""
    operator, cluster, models = env.operator(), env.cluster, env.models
    model = unique("shared")
    models.move_alias(model, models.register(model))
    namespace = cluster.namespace("bench-sharing")
    spec = {
        "model": {"name": model, "alias": "champion"},
        "registry": {"pollInterval": f"{OPERATOR_POLL_S:.0f}s", "trackingUri": proxy.url},
    }
    names = [f"r{index}" for index in range(OPERATOR_RELEASES)]
    for name in names:
        cluster.apply_release(namespace, name, spec)
    try:
        eventually(
            "every release Ready",
            lambda: all(cluster.status(namespace, name).get("phase") == "Ready" for name in names),
            timeout=180,
        )
        cache_before = cache_counts(operator)
        before = Counter(proxy.counts)
        window = OPERATOR_POLLS * OPERATOR_POLL_S
        time.sleep(window)  # a measurement window of real polls, not a synchronisation
        lookups, total = alias_requests(proxy, before)
        hits, misses = (after - was for after, was in zip(cache_counts(operator), cache_before, strict=True))
    finally:
        cluster.delete_releases(namespace)
    per_poll = lookups / OPERATOR_POLLS
    rows = [
        [
            OPERATOR_RELEASES,
            f"{window:.0f}s",
            f"{per_poll:.2f}",
            f"{total / OPERATOR_POLLS:.2f}",
            f"{hits + misses:.0f}",
            f"{hits:.0f}",
            ratio(baseline, per_poll),
        ]
    ]
    headers = [
        "releases",
        "window",
        "alias req/poll",
        "all req/poll",
        "resolves",
        "cache hits",
        "baseline/this",
    ]
    title = f"registry requests per poll, real operator process (pollInterval {OPERATOR_POLL_S:.0f}s)"
    print(table(title, headers, rows))
    print(f"(baseline: {baseline:.2f} alias req/poll, {OPERATOR_RELEASES} releases with a cache each, above)")


def run(env: Env) -> None:
    client = env.models.client
    model = unique("sharing")
    client.create_registered_model(model)
    # Resolution reads only the registry, so a version without artifacts is enough here.
    version = client.create_model_version(model, f"s3://{env.sandbox.bucket}/bench/{model}")
    client.set_registered_model_alias(model, "champion", version.version)
    with registry_proxy(env.sandbox.mlflow_url) as proxy:
        baselines = client_level(proxy, model)
        operator_level(env, proxy, baselines[OPERATOR_RELEASES])
