"""Serving pods that really serve: the Deployment the operator renders, run by the sandbox's pod runner as
local processes (`modelrelease serve`, then `mlflow models serve`), each on a loopback IP of its own.

These prove what a status-only pod cannot: that the rendered command, env (`MODEL_URI`, `MODEL_DIGEST`,
`MLFLOW_TRACKING_URI`) and readiness probe start a server that loads the pinned version and answers on
the pod's own IP, and that a version which cannot load crashes for real (its container exits, restartCount
grows) and is rolled back by the operator, with no `sandbox-faults` entry. A few tests only: each pod is
a real MLflow server.
"""

from __future__ import annotations

import ipaddress
import json
import urllib.request
from typing import Any

import pytest
from helpers import Cluster, Models, Operator, eventually, history, model_name, ready_on, release_spec

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


def iris_rows() -> dict[str, Any]:
    columns = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]
    return {"dataframe_split": {"columns": columns, "data": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]}}


def test_a_pinned_version_serves_on_each_pods_own_ip(
    cluster: Cluster, models: Models, operator: Operator, ns: str
) -> None:
    model = model_name("serve")
    v1 = models.register(model)
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
