"""Time from ``set_registered_model_alias`` to the Deployment's MODEL_URI being patched.

Through the real operator process against the sandbox, for two releases (each following its own
model): one re-resolving every 5 s (polling), one with pollInterval 10m that only the MLflow webhook
can move in time. The webhook is created in MLflow (SQLite backend) with the operator's secret, so
MLflow itself signs and delivers ``model_version_alias.created``; if MLflow cannot reach the receiver
(probed with MLflow's own webhook test), the benchmark posts a delivery signed the same way itself
and says so. Each sample moves the alias between two verified versions and waits for the rollout to
finish before the next; a polling sample starts at a random moment of the poll cycle.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable

from mlflow.exceptions import MlflowException

from bench.common import Env, ratio, table, unique
from integration.helpers import Cluster, Operator, eventually

SAMPLES = 5
POLL_S = 5.0
ALIAS = "champion"
WATCH_INTERVAL_S = 0.05
"""How often the Deployment is read while waiting: the resolution of each sample."""


def release_spec(model: str, poll: str) -> dict[str, object]:
    return {"model": {"name": model, "alias": ALIAS}, "registry": {"pollInterval": poll}}


def patched(cluster: Cluster, namespace: str, model: str, version: str) -> Callable[[], bool]:
    return lambda: cluster.model_uri(namespace, "bench") == f"models:/{model}/{version}"


def serving(cluster: Cluster, namespace: str, model: str, version: str) -> Callable[[], bool]:
    def ready() -> bool:
        status = cluster.status(namespace, "bench")
        return (
            patched(cluster, namespace, model, version)()
            and status.get("phase") == "Ready"
            and (status.get("current") or {}).get("version") == version
        )

    return ready


def samples(
    env: Env, poll: str, before_move: Callable[[], None], after_move: Callable[[str, str], None]
) -> list[float]:
    """Latencies of SAMPLES alias moves of a fresh release with this pollInterval."""
    cluster, models = env.cluster, env.models
    model = unique("latency")
    versions = [models.register(model), models.register(model)]
    models.move_alias(model, versions[0])
    namespace = cluster.namespace("bench-latency")
    cluster.apply_release(namespace, "bench", release_spec(model, poll))
    measured = []
    try:
        eventually("the first version Ready", serving(cluster, namespace, model, versions[0]), timeout=180)
        for index in range(SAMPLES):
            version = versions[(index + 1) % 2]
            before_move()
            moved = time.monotonic()
            models.move_alias(model, version, ALIAS)
            after_move(model, version)
            eventually(
                "MODEL_URI patched",
                patched(cluster, namespace, model, version),
                timeout=60,
                interval=WATCH_INTERVAL_S,
            )
            measured.append(time.monotonic() - moved)
            eventually("the rollout to finish", serving(cluster, namespace, model, version), timeout=120)
    finally:
        cluster.delete_releases(namespace)
    return measured


def mlflow_webhook(env: Env, operator: Operator) -> tuple[str | None, str | None]:
    """Create the MLflow webhook: (its id or None, why MLflow cannot deliver to the receiver or None).

    MLflow's own test delivery (signed with the secret) must reach the receiver and be accepted."""
    client = env.models.client
    try:
        webhook = client.create_webhook(
            name=unique("bench"),
            url=f"http://127.0.0.1:{operator.webhook_port}/webhooks/mlflow",
            events=["model_version_alias.created"],
            secret=operator.webhook_secret,
        )
    except MlflowException as exc:
        return None, f"MLflow refused the webhook: {exc.message}"
    probe = client.test_webhook(webhook.webhook_id)
    if probe.success:
        return webhook.webhook_id, None
    why = f"MLflow's test delivery failed: HTTP {probe.response_status} {probe.error_message or ''}".strip()
    return webhook.webhook_id, why


def signed_push(operator: Operator) -> Callable[[str, str], None]:
    """What MLflow would send after an alias move, signed with the operator's secret by MLflow's code."""

    def push(model: str, version: str) -> None:
        data = {"name": model, "alias": ALIAS, "version": version}
        operator.push_webhook({"entity": "model_version_alias", "action": "created", "data": data})

    return push


def nothing(*_: str) -> None:
    """No action before or after an alias move."""


def summary(mode: str, values: list[float]) -> list[object]:
    return [mode, len(values), *(f"{f(values):.2f}" for f in (statistics.median, min, max))]


def run(env: Env) -> None:
    operator = env.operator()
    phase = random.Random(3)
    polled = samples(env, f"{POLL_S:.0f}s", lambda: time.sleep(phase.uniform(0, POLL_S)), nothing)

    webhook_id, problem = mlflow_webhook(env, operator)
    after_move: Callable[[str, str], None] = nothing
    try:
        if problem is None:
            push_mode = "webhook (MLflow delivers)"
        else:
            print(f"{problem}; the benchmark posts HMAC-signed deliveries itself instead")
            push_mode, after_move = "webhook (benchmark delivers)", signed_push(operator)
        pushed = samples(env, "10m", nothing, after_move)
    finally:
        if webhook_id is not None:
            env.models.client.delete_webhook(webhook_id)

    rows = [
        summary(f"polling, pollInterval {POLL_S:.0f}s", polled),
        summary(f"{push_mode}, poll 10m", pushed),
    ]
    print(
        table(
            "alias move -> Deployment MODEL_URI patched (seconds)",
            ["mode", "samples", "median", "min", "max"],
            rows,
        )
    )
    print(
        f"polling/webhook: median {ratio(statistics.median(polled), statistics.median(pushed))}, "
        f"max {ratio(max(polled), max(pushed))}"
    )
