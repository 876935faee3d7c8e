"""N releases over M models, the real operator process beside a no-op kopf operator watching the same objects.

Managed mode, one replica, pollInterval 30s, every release's trackingUri a counting proxy in front of
MLflow. Figures: time from `kubectl apply --server-side` of one multi-document file to every release
Ready; registry requests in one poll window against the distinct references; CPU and RSS of the operator
and of the no-op operator (a kopf module with an on.event handler for modelreleases and one for
deployments, run beside it for the whole benchmark, so it sees the same watch events) while converging
and idle; after an alias move on every model, the time until every Deployment carries the new pin, by
polling and then with the MLflow webhook; the registry requests of each phase by endpoint, and the API
server's writes of each move by resource. Then the floor under them (BENCH_SCALE_FLOOR=0: skipped): the
control plane alone creating the same number of Deployments, and moving all of them to a new MODEL_URI.
Sizes: BENCH_SCALE_RELEASES (1000), BENCH_SCALE_MODELS (100).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from bench.alias_latency import mlflow_webhook
from bench.common import Env, table
from chaos.kit import Sampler, Watch, deployments, releases
from integration.helpers import Operator, RegistryProxy
from modelrelease.api.models import GROUP, VERSION
from modelrelease.sandbox.binaries import locate
from modelrelease.sandbox.registrar import DIGEST_TAG
from modelrelease.sandbox.stack import stop_process

RELEASES = int(os.environ.get("BENCH_SCALE_RELEASES", "1000"))
MODELS = int(os.environ.get("BENCH_SCALE_MODELS", "100"))
FLOOR = os.environ.get("BENCH_SCALE_FLOOR", "1") != "0"
"""Also measure the control plane alone with the same Deployments (BENCH_SCALE_FLOOR=0: skip)."""
PROFILE = os.environ.get("BENCH_SCALE_PROFILE")
"""A file for py-spy's profile of the operator (collapsed stacks), when set and py-spy is installed."""
POLL_S = 30.0
NAMESPACE = "scale"
ALIAS = "champion"
IDLE_SETTLE_S = 10.0
"""After convergence, before the idle window starts (the last status writes, the first re-polls)."""
TARGETS = {
    "converge": 60.0,
    "idle_cpu": 0.05,
    "rss_ratio": 1.5,
    "poll_move": POLL_S + 10.0,
    "webhook_move": 10.0,
}
NOOP_OPERATOR = """\
import kopf


@kopf.on.startup()
def configure(settings, **_):
    settings.peering.standalone = True
    settings.posting.enabled = False


@kopf.on.event("{group}", "{version}", "modelreleases")
async def release(**_):
    pass


@kopf.on.event("apps", "v1", "deployments")
async def deployment(**_):
    pass
"""


def model_names() -> list[str]:
    return [f"scale-{index:03d}" for index in range(MODELS)]


def register_models(env: Env) -> tuple[list[str], list[str]]:
    """M registered models with three versions each (the same verified artifacts, digest tagged), alias at
    1; returns (models, [versions per model]) quickly: one logged model, the rest are registry calls."""
    models = env.models
    first = model_names()[0]
    version = models.register(first)
    source = models.client.get_model_version(first, version)
    digest = source.tags[DIGEST_TAG]
    assert source.source is not None  # the version was just registered from a logged model
    logged_model = source.source
    model_id = logged_model.removeprefix("models:/")  # MLflow 3: the logged model the source names

    def one(name: str) -> None:
        client = models.client
        if name != first:
            client.create_registered_model(name)
        for _ in range(3 if name != first else 2):
            mv = client.create_model_version(name, logged_model, run_id=source.run_id, model_id=model_id)
            client.set_model_version_tag(name, mv.version, DIGEST_TAG, digest)
        client.set_registered_model_alias(name, ALIAS, "1")

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, model_names()))
    return model_names(), ["1", "2", "3"]


def manifest(proxy_url: str) -> str:
    docs: list[dict[str, Any]] = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}]
    names = model_names()
    for index in range(RELEASES):
        docs.append(
            {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "ModelRelease",
                "metadata": {"name": f"r{index:04d}", "namespace": NAMESPACE},
                "spec": {
                    "model": {"name": names[index % MODELS], "alias": ALIAS},
                    "registry": {"pollInterval": f"{POLL_S:.0f}s", "trackingUri": proxy_url},
                    "serving": {"replicas": 1},
                    # Status-only pods: nothing listens on their IPs, and nothing may connect to them.
                    "rollout": {"smokeTest": "Off"},
                },
            }
        )
    return "\n---\n".join(json.dumps(doc) for doc in docs) + "\n"


def kubectl(env: Env, *args: str) -> None:
    subprocess.run(
        [str(locate("kubectl")), *args],
        env={**os.environ, **env.sandbox.env},
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )


def all_ready(version: str) -> Callable[[dict[str, Any]], bool]:
    return lambda latest: len(latest) == RELEASES and all(v == ("Ready", version) for v in latest.values())


def all_pinned(version: str) -> Callable[[dict[str, Any]], bool]:
    names = model_names()
    wanted = {f"r{i:04d}": f"models:/{names[i % MODELS]}/{version}" for i in range(RELEASES)}
    return lambda latest: all(latest.get(name) == uri for name, uri in wanted.items())


def move_all(env: Env, version: str) -> None:
    with ThreadPoolExecutor(8) as pool:
        client = env.models.client
        list(pool.map(lambda model: client.set_registered_model_alias(model, ALIAS, version), model_names()))


WRITE_VERBS = frozenset({"POST", "PUT", "PATCH", "APPLY", "DELETE", "DELETECOLLECTION"})


def api_writes(env: Env) -> Counter[str]:
    """Writes the API server has answered so far, by resource (its apiserver_request_total)."""
    text = subprocess.run(
        [str(locate("kubectl")), "get", "--raw", "/metrics"],
        env={**os.environ, **env.sandbox.env},
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    writes: Counter[str] = Counter()
    for family in text_string_to_metric_families(text):
        if family.name != "apiserver_request":
            continue
        for sample in family.samples:
            if sample.name == "apiserver_request_total" and sample.labels.get("verb") in WRITE_VERBS:
                resource = "/".join(
                    filter(None, (sample.labels.get("resource"), sample.labels.get("subresource")))
                )
                writes[resource] += int(sample.value)
    return writes


def report_writes(what: str, writes: Counter[str], seconds: float) -> None:
    """Every write the control plane answered while the pins moved: what bounds the move's time here."""
    top = ", ".join(f"{resource} {n}" for resource, n in writes.most_common(6))
    total = sum(writes.values())
    print(
        f"alias move ({what}): {total} API writes in {seconds:.1f}s ({total / seconds:.0f}/s): {top}",
        flush=True,
    )


def report_requests(what: str, counts: Counter[str]) -> None:
    """The registry requests the operator sent in a phase, by endpoint (an artifact's path folded into
    its endpoint, so the figure reads per kind of request)."""
    by_endpoint: Counter[str] = Counter()
    for path, n in counts.items():
        endpoint, is_file, _ = path.partition("/artifacts/")
        by_endpoint[endpoint + "/artifacts/<file>" if is_file else path] += n
    top = ", ".join(f"{path.removeprefix('/api/2.0/')} {n}" for path, n in by_endpoint.most_common())
    print(f"registry requests {what}: {sum(counts.values())}: {top}", flush=True)


@dataclass(frozen=True)
class Floor:
    """What the control plane alone needs for the operator's work, in seconds: RELEASES Deployments like
    the operator's (its rendered pod template, one replica, no owner) applied with one `kubectl apply
    --server-side` until all are available; then all of them given a new MODEL_URI the same way."""

    apply_s: float
    available_s: float
    move_apply_s: float
    rolled_out_s: float


def _floor_manifest(pod: dict[str, Any], namespace: str, model_uri: str) -> str:
    containers = [
        {
            **c,
            "env": [
                {**e, "value": model_uri} if e.get("name") == "MODEL_URI" else e for e in c.get("env", [])
            ],
        }
        for c in pod["spec"]["containers"]
    ]
    docs: list[dict[str, Any]] = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}]
    for index in range(RELEASES):
        labels = {"app": f"floor-{index:04d}"}
        template = {
            **pod,
            "metadata": {**pod.get("metadata", {}), "labels": labels},
            "spec": {**pod["spec"], "containers": containers},
        }
        docs.append(
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": f"floor-{index:04d}", "namespace": namespace},
                "spec": {"replicas": 1, "selector": {"matchLabels": labels}, "template": template},
            }
        )
    return "\n---\n".join(json.dumps(doc) for doc in docs) + "\n"


def _rollout(obj: Mapping[str, Any]) -> tuple[Any, ...]:
    status = obj.get("status") or {}
    done = status.get("observedGeneration") == obj["metadata"].get("generation")
    return (obj["metadata"].get("generation"), done, status.get("updatedReplicas"), status.get("replicas"),
            status.get("availableReplicas"))  # fmt: skip


def control_plane_floor(env: Env, work: Path) -> Floor:
    cluster = env.cluster
    template = cluster.apps.read_namespaced_deployment("r0000", NAMESPACE)
    pod = cluster.api.sanitize_for_serialization(template)["spec"]["template"]
    namespace = f"{NAMESPACE}-floor"
    created, moved = work / "floor.yaml", work / "floor-moved.yaml"
    created.write_text(_floor_manifest(pod, namespace, "models:/floor/1"))
    moved.write_text(_floor_manifest(pod, namespace, "models:/floor/2"))
    watch = Watch(cluster.apps.list_namespaced_deployment, namespace, _rollout)

    def on(generation: int) -> Callable[[dict[str, Any]], bool]:
        return lambda latest: (
            len(latest) == RELEASES and all(v == (generation, True, 1, 1, 1) for v in latest.values())
        )

    try:
        applied = time.monotonic()
        kubectl(env, "apply", "--server-side", "-f", str(created))
        returned = time.monotonic()
        available = watch.wait("every floor Deployment available", on(1), timeout=1800)
        move_applied = time.monotonic()
        kubectl(env, "apply", "--server-side", "-f", str(moved))
        move_returned = time.monotonic()
        rolled_out = watch.wait("every floor Deployment rolled out", on(2), timeout=1800)
    finally:
        watch.stop()
    floor = Floor(
        returned - applied, available - applied, move_returned - move_applied, rolled_out - move_applied
    )
    print(
        f"control plane alone: {RELEASES} Deployments available {floor.available_s:.1f}s after kubectl apply "
        f"(which returned after {floor.apply_s:.1f}s); all given a new MODEL_URI: kubectl apply returned "
        f"after {floor.move_apply_s:.1f}s, all rolled out after {floor.rolled_out_s:.1f}s",
        flush=True,
    )
    return floor


def stop_profiler(profiler: subprocess.Popen[bytes]) -> None:
    profiler.send_signal(signal.SIGINT)  # py-spy writes its profile when interrupted
    profiler.wait(timeout=60)


def run(env: Env) -> None:
    cluster = env.cluster
    work = Path(tempfile.mkdtemp(prefix="scale-", dir=env.work))
    began = time.monotonic()
    register_models(env)
    print(f"registered {MODELS} models x 3 versions in {time.monotonic() - began:.0f}s", flush=True)
    proxy = RegistryProxy(env.sandbox.mlflow_url)
    proxy.up()
    noop_file = work / "noop_operator.py"
    noop_file.write_text(NOOP_OPERATOR.format(group=GROUP, version=VERSION))
    cluster.core.create_namespace({"metadata": {"name": NAMESPACE}})
    file = work / "releases.yaml"
    file.write_text(manifest(proxy.url))
    started: list[Any] = []
    try:
        noop = subprocess.Popen(
            [sys.executable, "-m", "kopf", "run", "--standalone", "--all-namespaces", str(noop_file)],
            env={**os.environ, **env.sandbox.env},
            stdout=(work / "noop.log").open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        started.append(partial(stop_process, noop))
        operator = Operator(
            env.sandbox,
            work / "operator.log",
            extra_env={"MODELRELEASE_ALLOWED_TRACKING_URIS": "http://127.0.0.1:"},
            verbose=False,  # as the chart runs it (no debug log of every watch event)
        )
        started.append(operator.stop)
        operator.start()
        assert operator.process is not None
        if PROFILE:  # py-spy's collapsed stacks of the whole run, for flamegraph.pl or speedscope
            profiler = subprocess.Popen(
                [str(Path(sys.executable).with_name("py-spy")), "record", "--pid", str(operator.process.pid),
                 "--format", "raw", "--rate", "50", "--output", PROFILE, "--nonblocking"],
                stdout=subprocess.DEVNULL, stderr=(work / "py-spy.log").open("wb"),
            )  # fmt: skip
            started.append(partial(stop_profiler, profiler))
        sampler = Sampler({"operator": operator.process.pid, "noop": noop.pid})
        started.append(sampler.stop)
        watched_releases = releases(cluster.api, NAMESPACE)
        started.append(watched_releases.stop)
        watched_deployments = deployments(cluster.api, NAMESPACE)
        started.append(watched_deployments.stop)
        applied, asked = time.monotonic(), proxy.counts.copy()
        kubectl(env, "apply", "--server-side", "-f", str(file))
        apply_s = time.monotonic() - applied
        ready = watched_releases.wait("every release Ready", all_ready("1"), timeout=1800)
        converge = ready - applied
        print(f"converged in {converge:.1f}s (kubectl apply took {apply_s:.1f}s)", flush=True)
        report_requests("converging", proxy.counts - asked)

        time.sleep(IDLE_SETTLE_S)  # a settling time, not synchronisation: the idle window starts after it
        idle_start, before = time.monotonic(), proxy.counts.copy()
        time.sleep(POLL_S)  # the window measured: one poll interval
        window = proxy.counts.copy() - before
        window_requests = sum(window.values())
        alias_requests = window.get("/api/2.0/mlflow/registered-models/alias", 0)
        report_requests("in one poll window", window)
        time.sleep(POLL_S)
        idle_end = time.monotonic()

        moved, writes, asked = time.monotonic(), api_writes(env), proxy.counts.copy()
        move_all(env, "2")
        moves_s = time.monotonic() - moved
        pinned = watched_deployments.wait("every Deployment on version 2", all_pinned("2"), timeout=600)
        poll_move = pinned - moved
        report_writes("polling", api_writes(env) - writes, pinned - moved)
        report_requests("alias move, polling", proxy.counts - asked)
        watched_releases.wait("every release Ready on 2", all_ready("2"), timeout=900)

        webhook_id, problem = mlflow_webhook(env, operator)
        if problem is not None:
            print(f"webhook: {problem}")
        moved, writes, asked = time.monotonic(), api_writes(env), proxy.counts.copy()
        move_all(env, "3")
        webhook_moves_s = time.monotonic() - moved
        pinned = watched_deployments.wait("every Deployment on version 3", all_pinned("3"), timeout=600)
        webhook_move = pinned - moved
        report_writes("webhook", api_writes(env) - writes, pinned - moved)
        report_requests("alias move, webhook", proxy.counts - asked)
        watched_releases.wait("every release Ready on 3", all_ready("3"), timeout=900)
        if webhook_id is not None:
            env.models.client.delete_webhook(webhook_id)
    finally:
        for stop in reversed(started):  # the profiler and the sampler first, the operators last
            stop()
        proxy.close()
    floor = control_plane_floor(env, work) if FLOOR else None

    op_conv = sampler.window("operator", applied, ready)
    noop_conv = sampler.window("noop", applied, ready)
    op_idle = sampler.window("operator", idle_start, idle_end)
    noop_idle = sampler.window("noop", idle_start, idle_end)
    rows: list[list[object]] = [
        ["releases / models", f"{RELEASES} / {MODELS}", "", ""],
        [
            "apply -> all Ready (s)",
            f"{converge:.1f}",
            f"kubectl apply returned after {apply_s:.1f}"
            + ("" if floor is None else f"; the control plane alone: {floor.available_s:.1f}"),
            f"<= {TARGETS['converge']:.0f}",
        ],
        ["registry requests in one poll window", window_requests, f"{MODELS} references", ""],
        ["  of which alias lookups", alias_requests, f"{alias_requests / MODELS:.2f} per reference", ""],
        ["CPU converging (% of a core)", f"{100 * op_conv[0]:.1f}", f"{100 * noop_conv[0]:.1f}", ""],
        [
            "CPU idle (% of a core)",
            f"{100 * op_idle[0]:.1f}",
            f"{100 * noop_idle[0]:.1f}",
            f"<= {100 * TARGETS['idle_cpu']:.0f}",
        ],
        ["RSS peak converging (MiB)", f"{op_conv[1]:.0f}", f"{noop_conv[1]:.0f}", ""],
        [
            "RSS idle (MiB)",
            f"{op_idle[1]:.0f}",
            f"{noop_idle[1]:.0f} ({op_idle[1] / noop_idle[1]:.2f}x)",
            f"<= {TARGETS['rss_ratio']}x",
        ],
        [
            "alias moved on every model -> every pin moved, polling (s)",
            f"{poll_move:.1f}",
            f"poll {POLL_S:.0f}s; moves took {moves_s:.1f}s",
            f"<= {TARGETS['poll_move']:.0f}",
        ],
        [
            "the same with the MLflow webhook (s)",
            f"{webhook_move:.1f}",
            f"moves took {webhook_moves_s:.1f}s"
            + (" (no webhook)" if problem else "")
            + (
                ""
                if floor is None
                else f"; the control plane alone: new pins written {floor.move_apply_s:.1f}, "
                f"rolled out {floor.rolled_out_s:.1f}"
            ),
            f"<= {TARGETS['webhook_move']:.0f}",
        ],
    ]
    headers = ["figure", "operator", "baseline", "target"]
    print(table("scale: the operator beside a no-op kopf operator", headers, rows))
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"load average at the end: {load} ({os.cpu_count()} cores)")
