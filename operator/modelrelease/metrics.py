"""Prometheus metrics of the operator, served on MODELRELEASE_METRICS_PORT at /metrics."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import REGISTRY, Counter, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from modelrelease.registry.cache import ResolutionCache

RECONCILES = Counter(
    "modelrelease_reconciles_total", "Reconcile passes over a ModelRelease, by result.", ["result"]
)
RECONCILE_SECONDS = Histogram(
    "modelrelease_reconcile_duration_seconds",
    "Duration of one reconcile pass (registry, verification and API writes included).",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
REGISTRY_REQUEST_SECONDS = Histogram(
    "modelrelease_registry_request_duration_seconds",
    "Latency of each registry HTTP attempt, by operation and outcome (HTTP status, timeout, ...).",
    ["operation", "outcome"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
VERIFICATION_FAILURES = Counter(
    "modelrelease_verification_failures_total",
    "Candidate versions blocked by a verification check, by check and reason.",
    ["check", "reason"],
)
ROLLOUTS = Counter("modelrelease_rollouts_total", "Rollouts of a verified version, by outcome.", ["outcome"])
ROLLBACKS = Counter("modelrelease_rollbacks_total", "Automatic rollbacks after a failed rollout.")
SERVING_ARTIFACT_CHANGES = Counter(
    "modelrelease_serving_artifact_changes_total",
    "Serving versions found, on re-verification, to hash to other bytes than those verified.",
)


def observe_registry_request(operation: str, outcome: str, seconds: float) -> None:
    """The registry backend's request observer."""
    REGISTRY_REQUEST_SECONDS.labels(operation, outcome).observe(seconds)


class CacheCollector(Collector):
    """Exports the shared resolution cache's counters (hits, misses, registry requests started)."""

    def __init__(self, cache: ResolutionCache) -> None:
        self._cache = cache

    def collect(self) -> Iterator[CounterMetricFamily]:
        stats = self._cache.stats()
        for name, help_text in (
            ("hits", "Registry resolutions answered from the shared cache."),
            ("misses", "Registry resolutions that needed the registry (started or joined a request)."),
            ("requests", "Registry resolution requests actually sent."),
        ):
            yield CounterMetricFamily(f"modelrelease_resolution_cache_{name}", help_text, value=stats[name])


class MetricsServer:
    """The /metrics HTTP server (a daemon thread) with the cache collector registered."""

    def __init__(self, port: int, address: str, cache: ResolutionCache) -> None:
        self._collector = CacheCollector(cache)
        REGISTRY.register(self._collector)
        self._server, self._thread = start_http_server(port, addr=address)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        REGISTRY.unregister(self._collector)
