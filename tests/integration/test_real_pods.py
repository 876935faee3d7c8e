"""Serving pods that really serve: the Deployment the operator renders, run by the sandbox's pod runner as
local processes (`modelrelease serve`, then `mlflow models serve`), each on a loopback IP of its own.

These prove what a status-only pod cannot: that the rendered command, env (`MODEL_URI`, `MODEL_DIGEST`,
`MLFLOW_TRACKING_URI`) and readiness probe start a server that loads the pinned version and answers on
the pod's own IP, and that a version which cannot load crashes for real (its container exits, restartCount
grows) and is rolled back by the operator, with no `sandbox-faults` entry. And the operator's smoke test
for real: once the new pods are Ready it POSTs the version's logged serving input example to each pod's IP;
a server that refuses its own example is rolled back. A few tests only: each pod is a real MLflow server.
"""

from __future__ import annotations

import ipaddress
import json
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from integration.helpers import (
    Cluster,
    Models,
    Operator,
    eventually,
    history,
    model_name,
    ready_on,
    release_spec,
)
from modelrelease.sandbox.kubelet import FAULTS_CONFIGMAP, RUN_ANNOTATION, RUN_AS_PROCESS

pytestmark = pytest.mark.slow

START_TIMEOUT = (
    180.0  # download, hash, then mlflow models serve: about 10 s idle, much more on a busy machine
)


def serving_spec(model: str, deadline: int) -> dict[str, Any]:
    spec = release_spec(model, rollout={"progressDeadlineSeconds": deadline})
    spec["serving"] = {"template": {"metadata": {"annotations": {RUN_ANNOTATION: RUN_AS_PROCESS}}}}
    return spec


def pods_of(cluster: Cluster, namespace: str, version: str) -> list[dict[str, Any]]:
    listing = cluster.api.sanitize_for_serialization(cluster.core.list_namespaced_pod(namespace))
    return [
        p
        for p in listing["items"]
        if (p["metadata"].get("annotations") or {}).get("modelrelease.io/version") == version
        and not p["metadata"].get("deletionTimestamp")
    ]


def node_cidr(cluster: Cluster) -> str:
    (node,) = cluster.core.list_node().items
    return str(node.spec.pod_cidr)


def answer(url: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        text = response.read().decode()
        return response.status, json.loads(text) if text.startswith(("{", "[")) else text


IRIS_COLUMNS = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]


def iris_rows() -> dict[str, Any]:
    return {
        "dataframe_split": {"columns": IRIS_COLUMNS, "data": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]}
    }


def register_with_example(models: Models, model: str, columns: list[str] = IRIS_COLUMNS) -> str:
    """A version logged with a three-row input example under `columns` (MLflow saves its
    serving_input_example.json; with other columns than the signature's, the server refuses it)."""
    import pandas as pd

    rows = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]]
    example = pd.DataFrame(rows, columns=columns)
    return models.log_version(model, models.estimator, models.signature, {"f1": 0.95}, input_example=example)


def smoke_entry(status: dict[str, Any]) -> dict[str, Any]:
    return {v["check"]: v for v in status.get("verification") or []}.get("SmokeTest", {})


def environments_with(entry: bytes) -> list[set[bytes]]:
    """The environments of this machine's processes that hold `entry` (a container's, here)."""
    found = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            env = set(environ.read_bytes().split(b"\0"))
        except OSError:  # exited, or not ours
            continue
        if entry in env:
            found.append(env)
    return found


def test_a_pinned_version_serves_on_each_pods_own_ip(
    cluster: Cluster, models: Models, operator: Operator, ns: str
) -> None:
    model = model_name("serve")
    v1 = register_with_example(models, model)
    models.move_alias(model, v1)
    spec = serving_spec(model, deadline=int(START_TIMEOUT))
    spec["serving"]["replicas"] = 2
    cluster.apply_release(ns, "fraud", spec)

    eventually(
        "v1 served by real pods", lambda: ready_on(cluster, ns, "fraud", model, v1), timeout=START_TIMEOUT
    )
    pods = pods_of(cluster, ns, v1)
    ips = sorted(p["status"]["podIP"] for p in pods)
    assert len(ips) == 2 and ips[0] != ips[1]
    assert all(ipaddress.ip_address(ip) in ipaddress.ip_network(node_cidr(cluster)) for ip in ips)
    for ip in ips:
        assert answer(f"http://{ip}:8080/ping")[0] == 200
        status, predicted = answer(f"http://{ip}:8080/invocations", iris_rows())
        assert status == 200
        assert predicted["predictions"] == [0, 2]  # setosa, virginica: the trained estimator, loaded
    assert all(c["ready"] and c["restartCount"] == 0 for p in pods for c in p["status"]["containerStatuses"])
    # The pod runner starts each container with MLflow's usage telemetry off (the sandbox talks to loopback).
    serving = environments_with(f"MODEL_URI=models:/{model}/{v1}".encode())
    assert len(serving) >= 2 and all(b"MLFLOW_DISABLE_TELEMETRY=true" in env for env in serving)
    # The operator sent the logged example to both pods before it called the rollout a success.
    smoke = smoke_entry(cluster.status(ns, "fraud"))
    assert (smoke["outcome"], smoke["version"]) == ("Passed", v1), smoke
    assert smoke["reason"] == "2 pods answered the serving input example with 3 predictions"
    assert "SmokeTestPassed" in {e["reason"] for e in cluster.events(ns, "fraud")}


def test_a_version_whose_server_refuses_its_own_input_example_is_rolled_back(
    cluster: Cluster, models: Models, operator: Operator, ns: str
) -> None:
    model = model_name("smoke")
    v1 = register_with_example(models, model)
    models.move_alias(model, v1)
    cluster.apply_release(ns, "fraud", serving_spec(model, deadline=int(START_TIMEOUT)))
    eventually(
        "v1 served by a real pod", lambda: ready_on(cluster, ns, "fraud", model, v1), timeout=START_TIMEOUT
    )

    # v2 loads and serves (its pod turns Ready), but its logged example names columns its signature lacks.
    v2 = register_with_example(models, model, columns=[c.replace(" (cm)", "") for c in IRIS_COLUMNS])
    models.move_alias(model, v2)
    eventually(
        "v2 rolled back after its smoke test",
        lambda: history(cluster.status(ns, "fraud"))[-1] == (v2, "RolledBack"),
        timeout=2 * START_TIMEOUT,
    )
    status = cluster.status(ns, "fraud")
    entry = status["history"][-1]
    assert entry["reason"] == "SmokeTestFailed"
    message = entry["message"]
    assert message.startswith("smoke test failed: 1 of 1 pods refused the serving input example: pod fraud-")
    assert "HTTP 400" in message and "missing inputs" in message  # MLflow's own answer, on one line
    assert message.endswith(f"rolled back to version {v1}") and "\n" not in message
    smoke = smoke_entry(status)
    assert (smoke["outcome"], smoke["version"]) == ("Failed", v2)
    events = {e["reason"]: e for e in cluster.events(ns, "fraud")}
    assert (
        "missing inputs" in events["SmokeTestFailed"]["message"]
        and events["SmokeTestFailed"]["type"] == "Warning"
    )
    assert "RolledBack" in events

    def back_on_v1() -> list[dict[str, Any]] | None:
        status = cluster.status(ns, "fraud")
        if (status.get("phase"), (status.get("current") or {}).get("version")) != ("Degraded", v1):
            return None
        pods = pods_of(cluster, ns, v1)
        ready = [
            p
            for p in pods
            if all(c["ready"] for c in (p.get("status") or {}).get("containerStatuses") or [{}])
        ]
        return ready if ready and not pods_of(cluster, ns, v2) else None

    (pod,) = eventually("v1 serving again from a new pod, v2's gone", back_on_v1, timeout=START_TIMEOUT)
    assert cluster.model_uri(ns, "fraud") == f"models:/{model}/{v1}"
    status_code, predicted = answer(f"http://{pod['status']['podIP']}:8080/invocations", iris_rows())
    assert (status_code, predicted["predictions"]) == (200, [0, 2])
    assert history(cluster.status(ns, "fraud"))[-1] == (v2, "RolledBack")  # and not attempted again


def test_a_version_that_cannot_load_crashes_for_real_and_is_rolled_back(
    cluster: Cluster, models: Models, operator: Operator, ns: str
) -> None:
    model = model_name("crash")
    v1 = models.register(model)
    models.move_alias(model, v1)
    cluster.apply_release(ns, "fraud", serving_spec(model, deadline=60))
    eventually(
        "v1 served by a real pod", lambda: ready_on(cluster, ns, "fraud", model, v1), timeout=START_TIMEOUT
    )

    v2 = models.log_unloadable(model)
    models.move_alias(model, v2)

    def restarted() -> list[dict[str, Any]]:
        return [
            c
            for p in pods_of(cluster, ns, v2)
            for c in (p.get("status") or {}).get("containerStatuses") or []
            if c["restartCount"] >= 2 and c["lastState"]["terminated"]["exitCode"] != 0
        ]

    crashed = eventually("v2's container to exit and restart twice", restarted, timeout=START_TIMEOUT)
    assert crashed[0]["state"].get("waiting", {}).get("reason") in ("CrashLoopBackOff", None)
    config_maps = cluster.core.list_namespaced_config_map(ns).items
    assert FAULTS_CONFIGMAP not in {c.metadata.name for c in config_maps}  # a real crash, not an injected one
    eventually(
        "the rollback to v1",
        lambda: history(cluster.status(ns, "fraud"))[-1] == (v2, "RolledBack"),
        timeout=START_TIMEOUT,
    )

    def back_on_v1() -> bool:
        status = cluster.status(ns, "fraud")
        serving = (status.get("phase"), (status.get("current") or {}).get("version"))
        return serving == ("Degraded", v1) and cluster.model_uri(ns, "fraud") == f"models:/{model}/{v1}"

    eventually("v1 pinned again, the release Degraded", back_on_v1, timeout=START_TIMEOUT)
    (pod,) = eventually(
        "only v1's pod left", lambda: pods_of(cluster, ns, v1) if not pods_of(cluster, ns, v2) else None
    )
    assert answer(f"http://{pod['status']['podIP']}:8080/ping")[0] == 200
