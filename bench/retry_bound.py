"""How long one failing registry call takes, measured, beside the documented bound.

The bound is ``HttpPolicy.worst_case_seconds`` (the README quotes it): every attempt may run into its
timeout, and every wait may be stretched to ``backoff_max`` by a server's ``Retry-After``. Three
loopback servers, each against the real ``MlflowRegistry`` with the default policy and real sleeps:

- **slow 503**: answers 503 with ``Retry-After: 120`` just before the request timeout: the worst case;
- **hung**: accepts the connection and never answers (every attempt times out, jittered backoff);
- **fast 503**: answers 503 with ``Retry-After: 120`` at once (only the capped waits).

Needs no sandbox: ``python -m bench.retry_bound`` (or ``python -m bench retry_bound``); about 80 s.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web

from bench.common import table
from modelrelease.api.models import ModelRef
from modelrelease.registry.base import RegistryTarget, RegistryUnavailable
from modelrelease.registry.mlflow import HttpPolicy, MlflowRegistries

MARGIN_S = 0.2
"""How long before the request timeout the slow server answers."""


@asynccontextmanager
async def answering(delay: float | None) -> AsyncIterator[str]:
    """A loopback server answering 503 with Retry-After after `delay` seconds (None: never)."""

    async def handle(_request: web.Request) -> web.Response:
        if delay is None:
            await asyncio.Event().wait()
        await asyncio.sleep(delay or 0.0)
        return web.Response(status=503, text="busy", headers={"Retry-After": "120"})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


async def failing_call(url: str, policy: HttpPolicy) -> float:
    """Seconds until the call gives up (it must: the server never answers usefully)."""
    async with MlflowRegistries(policy=policy) as registries:
        started = time.monotonic()
        try:
            await registries.get(RegistryTarget(url)).resolve(ModelRef(name="fraud", alias="champion"))
        except RegistryUnavailable:
            return time.monotonic() - started
    raise AssertionError("the call succeeded against a server that never answers usefully")


async def measure(policy: HttpPolicy) -> list[tuple[str, float]]:
    scenarios: dict[str, float | None] = {
        "slow 503, Retry-After 120": policy.request_timeout - MARGIN_S,
        "hung (never answers)": None,
        "fast 503, Retry-After 120": 0.0,
    }
    measured = []
    for name, delay in scenarios.items():
        async with answering(delay) as url:
            measured.append((name, await failing_call(url, policy)))
    return measured


def report(measured: list[tuple[str, float]], policy: HttpPolicy) -> str:
    bound = policy.worst_case_seconds
    rows = [(name, f"{seconds:.1f}", f"{bound:g}", f"{seconds / bound:.2f}") for name, seconds in measured]
    return table(
        f"one failing registry call ({policy.max_attempts} attempts, {policy.request_timeout:g} s timeout, "
        f"waits capped at {policy.backoff_max:g} s)",
        ["server", "measured s", "bound s", "measured/bound"],
        rows,
    )


def run() -> None:
    policy = HttpPolicy()
    measured = asyncio.run(measure(policy))
    print(report(measured, policy), flush=True)


if __name__ == "__main__":
    run()
