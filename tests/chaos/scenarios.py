"""Chaos scenarios against the real operator process, each returning its figures: faults injected, releases
converged, history entries lost or duplicated, unverified versions ever served. The short variants run in
`make test` (tests/chaos), the long ones in `python -m bench chaos`; both print the seed of their RNG.

Waits are bounded (`Watch.wait`, `eventually`); the random moments at which faults strike are the only
sleeps, and they come from the seeded RNG.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from chaos.kit import Watch, deployments, paused
from integration.helpers import Cluster, Models, Operator, RegistryProxy, eventually, model_name
from modelrelease.registry.mlflow import HttpPolicy
from modelrelease.sandbox.stack import SandboxInfo, restart

SEED = int(os.environ.get("CHAOS_SEED", "20261201"))
"""The seed of every scenario's RNG (the moments faults strike, which versions crash); printed."""
NAME = "chaos"
GATE = {"name": "f1", "min": 0.8}
GOOD_F1, GATE_FAILING_F1 = 0.95, 0.5
CONVERGE_S = 240.0
"""Bound on one release converging after a fault (a rollback waits for progressDeadlineSeconds first)."""
RETRY_BOUND_S = HttpPolicy().worst_case_seconds


@dataclass
class OwnStack:
    """A sandbox, its API, a registrar and an operator process of a test module's or benchmark's own."""

    sandbox: SandboxInfo
    cluster: Cluster
    models: Models
    operator: Operator


@dataclass
class Figures:
    scenario: str
    seed: int
    faults: int = 0
    releases: int = 0
    converged: int = 0
    history_lost: int = 0
    history_duplicated: int = 0
    unverified_served: int = 0
    notes: list[str] = field(default_factory=list)

    def line(self) -> str:
        extra = f"; {'; '.join(self.notes)}" if self.notes else ""
        return (
            f"{self.scenario} (seed {self.seed}): faults injected {self.faults}, releases converged "
            f"{self.converged}/{self.releases}, history entries lost {self.history_lost}, duplicated "
            f"{self.history_duplicated}, unverified versions ever served {self.unverified_served}{extra}"
        )


def spec(model: str, tracking_uri: str | None = None, poll: str = "5s") -> dict[str, Any]:
    """A release of `model`@champion with a metric gate; status-only pods, so no smoke test."""
    registry: dict[str, Any] = {"pollInterval": poll}
    if tracking_uri is not None:
        registry["trackingUri"] = tracking_uri
    return {
        "model": {"name": model, "alias": "champion"},
        "registry": registry,
        "verify": {"metrics": [GATE]},
        "serving": {"replicas": 1},
        "rollout": {"progressDeadlineSeconds": 10, "historyLimit": 100, "smokeTest": "Off"},
    }


def settled(cluster: Cluster, namespace: str, model: str, version: str, kind: str) -> Callable[[], bool]:
    """The release has finished with `version`: serving it (good), rolled back from it (crash), or
    blocked it (gate); and the Deployment carries what the status says serves."""

    def probe() -> bool:
        status = cluster.status(namespace, NAME)
        history = status.get("history") or []
        if (status.get("resolved") or {}).get("version") != version or not history:
            return False
        if status.get("phase") == "Progressing" or history[-1].get("version") != version:
            return False
        current = (status.get("current") or {}).get("modelUri")
        if cluster.model_uri(namespace, NAME) != current:
            return False
        outcome = history[-1].get("outcome")
        if kind == "good":
            return bool(outcome == "Succeeded" and status.get("phase") == "Ready")
        return bool(outcome == ("Blocked" if kind == "gate" else "RolledBack"))

    return probe


def history_figures(status: dict[str, Any], expected: list[str]) -> tuple[int, int]:
    """(entries lost, entries duplicated): each version moved to must appear exactly once."""
    counts = Counter(entry["version"] for entry in status.get("history") or [])
    lost = sum(1 for version in expected if counts[version] == 0)
    return lost, sum(n - 1 for n in counts.values() if n > 1)


def served(watch: Watch, uris: set[str]) -> int:
    """How many of `uris` the watched Deployment ever carried."""
    return len({value for _at, _name, value in watch.changes if value in uris})


def operator_kills(
    cluster: Cluster, models: Models, operator: Operator, moves: int, seed: int, kill_within: float = 4.0
) -> Figures:
    """`moves` alias moves to fresh versions (good, crashing or gate-failing, in an order the RNG draws),
    the operator SIGKILLed at a random moment after each (restarted at once), the release converging
    before the next."""
    rng = random.Random(seed)
    figures = Figures("operator SIGKILLed during alias moves", seed, releases=1)
    namespace = cluster.namespace("chaos-kill")
    model = model_name("chaos")
    first = models.register(model, f1=GOOD_F1)
    models.move_alias(model, first)
    watch = deployments(cluster.api, namespace)
    expected, failing = [first], set()
    kinds = (["good", "crash", "gate", "good"] * moves)[:moves]  # each kind once in any four moves
    rng.shuffle(kinds)
    try:
        cluster.apply_release(namespace, NAME, spec(model))
        eventually("the first version Ready", settled(cluster, namespace, model, first, "good"), CONVERGE_S)
        for kind in kinds:
            version = models.register(model, f1=GATE_FAILING_F1 if kind == "gate" else GOOD_F1)
            uri = f"models:/{model}/{version}"
            if kind == "crash":
                cluster.inject_fault(namespace, uri, "crashloop")
            elif kind == "gate":
                failing.add(uri)
            expected.append(version)
            models.move_alias(model, version)
            time.sleep(rng.uniform(0, kill_within))  # the fault's moment, drawn from the seeded RNG
            operator.stop(signal.SIGKILL)
            figures.faults += 1
            operator.start()
            eventually(
                f"version {version} ({kind}) settled",
                settled(cluster, namespace, model, version, kind),
                CONVERGE_S,
            )
        figures.converged = 1
    finally:
        watch.stop()
        status = cluster.status(namespace, NAME)
        figures.history_lost, figures.history_duplicated = history_figures(status, expected)
        figures.unverified_served = served(watch, failing)
        figures.notes.append(f"moves: {', '.join(kinds)}")
        cluster.delete_releases(namespace)
    return figures


# ------------------------------------------------------------------------------ registry faults


class FaultyProxy(RegistryProxy):
    """The counting proxy of the integration tests, which can also answer slowly or never (bounded: a
    hanging request is answered 503 once the fault is cleared, or after `hang_s`)."""

    delay: float = 0.0
    hang: bool = False
    hang_s: float = 600.0

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if self.hang:
            self.counts["hung"] += 1
            deadline = time.monotonic() + self.hang_s
            while self.hang and time.monotonic() < deadline:  # released when the fault is cleared
                await asyncio.sleep(0.2)
            return web.Response(status=503, text="was hanging (injected by the test proxy)")
        if self.delay:
            await asyncio.sleep(self.delay)
        return await super()._handle(request)


@contextmanager
def faulty_proxy(upstream: str) -> Iterator[FaultyProxy]:
    proxy = FaultyProxy(upstream)
    proxy.up()
    try:
        yield proxy
    finally:
        proxy.close()


def resolved_false(cluster: Cluster, namespace: str) -> Callable[[], dict[str, Any] | None]:
    def probe() -> dict[str, Any] | None:
        condition = cluster.condition(namespace, NAME, "Resolved")
        return condition if condition.get("status") == "False" else None

    return probe


def generation(cluster: Cluster, namespace: str) -> int | None:
    """The Deployment's metadata.generation: it moves with every write of its spec, not with its status."""
    deployment = cluster.deployment(namespace, NAME)
    return None if deployment is None else int(deployment["metadata"]["generation"])


def registry_slow_then_hanging(cluster: Cluster, models: Models, sandbox: SandboxInfo, seed: int) -> Figures:
    """The registry answers after its request timeout, then (after recovering) never: each time an alias
    move the operator cannot see, Resolved=False within one poll plus the retry bound, the Deployment's
    spec untouched while it fails, and the new version served once the registry answers again."""
    figures = Figures("registry slow, then hanging (proxy)", seed, releases=1)
    namespace = cluster.namespace("chaos-registry")
    model = model_name("chaos-reg")
    first = models.register(model)
    models.move_alias(model, first)
    poll = 5.0
    bound = poll + RETRY_BOUND_S + 15  # one poll, the documented retry bound, the pass's own writes
    expected = [first]
    with faulty_proxy(sandbox.mlflow_url) as proxy:
        try:
            cluster.apply_release(namespace, NAME, spec(model, tracking_uri=proxy.url, poll=f"{poll:.0f}s"))
            eventually(
                "the first version Ready", settled(cluster, namespace, model, first, "good"), CONVERGE_S
            )
            for fault in ("slow", "hanging"):
                version = models.register(model)  # MLflow itself answers; only the operator's path fails
                expected.append(version)
                before = generation(cluster, namespace)
                if fault == "slow":
                    proxy.delay = HttpPolicy().request_timeout + 2
                else:
                    proxy.hang = True
                figures.faults += 1
                started = time.monotonic()
                models.move_alias(model, version)
                condition = eventually(
                    f"Resolved=False ({fault})", resolved_false(cluster, namespace), bound, 0.5
                )
                figures.notes.append(
                    f"{fault}: Resolved=False ({condition.get('reason')}) after "
                    f"{time.monotonic() - started:.0f}s (bound {bound:.0f}s)"
                )
                if generation(cluster, namespace) != before:
                    figures.unverified_served += 1  # the Deployment must not move while nothing is known
                proxy.delay, proxy.hang = 0.0, False
                eventually(
                    f"version {version} Ready after the {fault} registry answers again",
                    settled(cluster, namespace, model, version, "good"),
                    CONVERGE_S,
                )
            figures.converged = 1
        finally:
            _count_history_and_clean_up(figures, cluster, namespace, expected)
    return figures


# ------------------------------------------------------------------------------ control-plane faults


def component_restart(
    cluster: Cluster,
    models: Models,
    sandbox: SandboxInfo,
    component: str,
    seed: int,
    during: str = "rollout",
) -> Figures:
    """Restart one sandbox component while a release moves to a new version: `rollout` restarts it once the
    Deployment carries the new pin (mid-rollout); `move` restarts it right after the alias move (the
    registry or the store is then needed to verify it). The release converges unaided."""
    rng = random.Random(seed)
    figures = Figures(f"{component} restarted ({during})", seed, releases=1)
    namespace = cluster.namespace(f"chaos-{component}"[:40])
    model = model_name("chaos-cp")
    first = models.register(model)
    models.move_alias(model, first)
    watch = deployments(cluster.api, namespace)
    try:
        cluster.apply_release(namespace, NAME, spec(model))
        eventually("the first version Ready", settled(cluster, namespace, model, first, "good"), CONVERGE_S)
        second = models.register(model)
        models.move_alias(model, second)
        if during == "rollout":
            uri = f"models:/{model}/{second}"
            watch.wait("the new pin on the Deployment", lambda latest: latest.get(NAME) == uri, CONVERGE_S)
        time.sleep(rng.uniform(0, 1.0))  # the fault's moment
        restart(sandbox.dir, component)
        figures.faults += 1
        eventually(
            f"the second version Ready after the {component} restart",
            lambda: _ready_again(cluster, namespace, model, second),
            CONVERGE_S,
            1.0,
        )
        figures.converged = 1
        figures.notes.append(f"test watch relisted {watch.lists - 1} times after breaks")
    finally:
        watch.stop()
        _count_history_and_clean_up(figures, cluster, namespace, [first, second])
    return figures


def _ready_again(cluster: Cluster, namespace: str, model: str, version: str) -> bool:
    try:
        return settled(cluster, namespace, model, version, "good")()
    except Exception:  # the API server is still coming back
        return False


def _count_history_and_clean_up(
    figures: Figures, cluster: Cluster, namespace: str, expected: list[str]
) -> None:
    """Fill in the history figures from the release's status (empty if the API server cannot answer
    yet), then delete the scenario's releases if it can."""
    try:
        status = cluster.status(namespace, NAME)
    except Exception:
        status = {}
    figures.history_lost, figures.history_duplicated = history_figures(status, expected)
    with suppress(Exception):
        cluster.delete_releases(namespace)


def wait_answering(what: str, probe: Callable[[], object], timeout: float = 180.0) -> None:
    """Until `probe` stops raising (a restarted component answers again)."""

    def ok() -> bool:
        try:
            probe()
        except Exception:
            return False
        return True

    eventually(what, ok, timeout, 0.5)


def store_down(cluster: Cluster, models: Models, sandbox: SandboxInfo, seed: int) -> Figures:
    """The S3 endpoint stops answering (moto paused: a restart would lose every object it holds) right
    after an alias move to a version whose bytes the operator has not verified yet: Resolved=False
    within one poll plus the retry bound, the Deployment untouched while the store is down; then the
    store comes back and the release converges unaided."""
    figures = Figures("S3 endpoint down after an alias move", seed, releases=1)
    namespace = cluster.namespace("chaos-s3")
    model = model_name("chaos-s3")
    first = models.register(model)
    models.move_alias(model, first)
    second = models.register(model)  # registered (its bytes stored) before the store goes down
    poll = 5.0
    bound = poll + RETRY_BOUND_S + 15

    def while_down() -> None:
        before = generation(cluster, namespace)
        models.move_alias(model, second)
        condition = eventually(
            "Resolved=False with the store down", resolved_false(cluster, namespace), bound, 0.5
        )
        figures.notes.append(f"Resolved=False ({condition.get('reason')}) while the store was down")
        if generation(cluster, namespace) != before:
            figures.unverified_served += 1

    try:
        cluster.apply_release(namespace, NAME, spec(model, poll=f"{poll:.0f}s"))
        eventually("the first version Ready", settled(cluster, namespace, model, first, "good"), CONVERGE_S)
        with paused(sandbox.dir, "s3"):
            while_down()
        figures.faults += 1
        eventually(
            "the second version Ready after the store is back",
            settled(cluster, namespace, model, second, "good"),
            CONVERGE_S,
        )
        figures.converged = 1
    finally:
        _count_history_and_clean_up(figures, cluster, namespace, [first, second])
    return figures


def watches_expire(stack: OwnStack, seed: int) -> Figures:
    """The real 410 Gone path: the operator is stopped (SIGSTOP) while kube-apiserver restarts with a 1 s
    etcd compaction interval and the cluster moves on, until a watch from the release's last
    resourceVersion is answered 410 Gone; then the operator continues, its watches resume from that
    expired version, and it must list again and converge on the alias move it slept through."""
    import kubernetes

    from modelrelease.api.models import GROUP, PLURAL, VERSION

    cluster, models, sandbox, operator = stack.cluster, stack.models, stack.sandbox, stack.operator
    rng = random.Random(seed)
    figures = Figures("watches expired (410 Gone)", seed, releases=1)
    namespace = cluster.namespace("chaos-gone")
    model = model_name("chaos-gone")
    first = models.register(model)
    models.move_alias(model, first)
    second = models.register(model)
    assert operator.process is not None
    pid = operator.process.pid
    try:
        cluster.apply_release(namespace, NAME, spec(model))
        eventually("the first version Ready", settled(cluster, namespace, model, first, "good"), CONVERGE_S)
        old = (cluster.release(namespace, NAME) or {})["metadata"]["resourceVersion"]
        os.kill(pid, signal.SIGSTOP)
        try:
            restart(sandbox.dir, "kube-apiserver", extra_args=("--etcd-compaction-interval=1s",))
            figures.faults += 1
            wait_answering("kube-apiserver after its restart", lambda: cluster.core.list_namespace(limit=1))
            models.move_alias(model, second)
            custom: Any = kubernetes.client.CustomObjectsApi(cluster.api)

            def expired() -> bool:
                cluster.core.create_namespaced_config_map(  # the cluster moves on: revisions to compact
                    namespace, {"metadata": {"generateName": "tick-"}, "data": {"n": str(rng.random())}}
                )
                stream = kubernetes.watch.Watch().stream(
                    custom.list_namespaced_custom_object, GROUP, VERSION, namespace, PLURAL,
                    resource_version=old, timeout_seconds=1, deserialize=False,
                )  # fmt: skip
                try:
                    for _ in stream:
                        pass
                except kubernetes.client.exceptions.ApiException as exc:
                    return exc.status == 410
                except KeyError:  # kubernetes.watch reads raw_object of an undeserialized ERROR event: 410
                    return True
                return False

            eventually(f"a watch from resourceVersion {old} answered 410 Gone", expired, 120, 1.0)
            figures.notes.append(f"a watch from resourceVersion {old} was answered 410 Gone")
        finally:
            os.kill(pid, signal.SIGCONT)
        eventually(
            "the second version Ready after the operator's watches expired",
            lambda: _ready_again(cluster, namespace, model, second),
            CONVERGE_S,
            1.0,
        )
        figures.converged = 1
    finally:
        _count_history_and_clean_up(figures, cluster, namespace, [first, second])
    return figures
