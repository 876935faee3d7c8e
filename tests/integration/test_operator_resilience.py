"""The real operator process under failure: registry outages, restarts mid-rollout, bad specs; and the
registry load of many releases sharing one model."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from functools import partial
from typing import Any

import pytest

from integration.helpers import (
    Cluster,
    Models,
    Operator,
    RegistryProxy,
    eventually,
    history,
    model_name,
    ready_on,
    registry_proxy,
    release_spec,
)
from modelrelease.sandbox.stack import SandboxInfo

pytestmark = pytest.mark.slow

ALIAS_PATH = "/api/2.0/mlflow/registered-models/alias"


@pytest.fixture
def proxy(sandbox: SandboxInfo) -> Iterator[RegistryProxy]:
    with registry_proxy(sandbox.mlflow_url) as running:
        yield running


def test_registry_outage_leaves_the_deployment_alone_and_recovers(
    cluster: Cluster, models: Models, operator: Operator, proxy: RegistryProxy, ns: str
) -> None:
    model = model_name("outage")
    v1 = models.register(model)
    models.move_alias(model, v1)
    cluster.apply_release(ns, "fraud", release_spec(model, tracking_uri=proxy.url))
    eventually("v1 Ready", lambda: ready_on(cluster, ns, "fraud", model, v1))
    before = cluster.deployment(ns, "fraud")
    assert before is not None

    proxy.down()
    v2 = models.register(model)
    models.move_alias(model, v2)  # the operator cannot see this while the registry is down
    resolved = eventually(
        "Resolved=False",
        lambda: (c := cluster.condition(ns, "fraud", "Resolved")).get("status") == "False" and c,
        timeout=120,
    )
    assert resolved["reason"] == "RegistryUnavailable"
    assert "unavailable" in resolved["message"] and "\n" not in resolved["message"]
    degraded = cluster.condition(ns, "fraud", "Degraded")
    assert (degraded["status"], degraded["reason"]) == ("True", "RegistryUnavailable")
    assert f"version {v1} keeps serving" in degraded["message"]
    after = cluster.deployment(ns, "fraud")
    assert after is not None
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert cluster.status(ns, "fraud")["phase"] == "Degraded"
    assert "RegistryUnavailable" in {e["reason"] for e in cluster.events(ns, "fraud")}

    proxy.up()
    eventually(
        "v2 Ready after the registry is back", lambda: ready_on(cluster, ns, "fraud", model, v2), timeout=150
    )
    assert cluster.condition(ns, "fraud", "Resolved")["status"] == "True"
    assert history(cluster.status(ns, "fraud")) == [(v1, "Succeeded"), (v2, "Succeeded")]


def test_restart_mid_rollout_converges_without_duplicate_history(
    cluster: Cluster, models: Models, operator: Operator, ns: str
) -> None:
    model = model_name("restart")
    v1 = models.register(model)
    models.move_alias(model, v1)
    cluster.apply_release(ns, "fraud", release_spec(model))
    eventually("v1 Ready", lambda: ready_on(cluster, ns, "fraud", model, v1))

    v2 = models.register(model)
    cluster.inject_fault(ns, f"models:/{model}/{v2}", "unready")  # its rollout never completes
    models.move_alias(model, v2)
    eventually(
        "v2 rolling out", lambda: history(cluster.status(ns, "fraud")) == [(v1, "Succeeded"), (v2, None)]
    )
    operator.stop(signal.SIGKILL)  # no clean shutdown: whatever was in flight is cut off
    operator.start()
    eventually(
        "v2 rolled back after the restart",
        lambda: history(cluster.status(ns, "fraud")) == [(v1, "Succeeded"), (v2, "RolledBack")],
        timeout=120,
    )
    eventually("v1 serving again", lambda: cluster.model_uri(ns, "fraud") == f"models:/{model}/{v1}")
    eventually("Degraded phase", lambda: cluster.status(ns, "fraud").get("phase") == "Degraded")

    # A second restart with nothing in flight changes nothing.
    settled = cluster.status(ns, "fraud")
    operator.restart()
    eventually(
        "the operator to have resumed the release",
        lambda: operator.metric("modelrelease_reconciles_total", result="ok") >= 1,
    )
    assert history(cluster.status(ns, "fraud")) == history(settled)
    assert cluster.status(ns, "fraud")["history"] == settled["history"]


def test_releases_sharing_a_model_share_registry_requests(
    cluster: Cluster, models: Models, operator: Operator, proxy: RegistryProxy, ns: str, record_property: Any
) -> None:
    model, count, poll_s = model_name("shared"), 6, 5.0
    v1 = models.register(model)
    models.move_alias(model, v1)
    for index in range(count):
        cluster.apply_release(ns, f"r{index}", release_spec(model, tracking_uri=proxy.url))
    for index in range(count):
        name = f"r{index}"
        eventually(f"{name} Ready", partial(ready_on, cluster, ns, name, model, v1), timeout=180)

    # Measure over a fixed window of polls (a measurement, not a synchronisation).
    polls = 4
    start = proxy.counts[ALIAS_PATH]
    time.sleep(polls * poll_s)
    requests = proxy.counts[ALIAS_PATH] - start
    per_poll = requests / polls
    record_property("alias_requests_per_poll", per_poll)
    summary = f"{count} releases sharing one model: {requests} alias requests in {polls} polls"
    print(f"\n{summary} ({per_poll:.2f}/poll)")
    # About one request per poll: more means the answers are not shared; none, that polling stopped.
    assert polls // 2 <= requests <= polls + 1, f"{requests} requests for {count} releases over {polls} polls"
    # The operator's own account agrees: most resolutions were answered from the shared cache.
    assert operator.metric("modelrelease_resolution_cache_hits_total") > operator.metric(
        "modelrelease_resolution_cache_requests_total"
    )
    assert (
        operator.metric(
            "modelrelease_registry_request_duration_seconds_count", operation="registered-models/alias"
        )
        > 0
    )


def test_tracking_uri_outside_the_allowlist_is_refused_naming_the_field(
    cluster: Cluster, operator: Operator, ns: str
) -> None:
    # The test operator allows only loopback registries (MODELRELEASE_ALLOWED_TRACKING_URIS).
    cluster.apply_release(
        ns, "fraud", release_spec("anything", tracking_uri="http://mlflow.example.invalid:5000")
    )
    resolved = eventually(
        "Resolved=False naming the field",
        lambda: (c := cluster.condition(ns, "fraud", "Resolved")).get("status") == "False" and c,
    )
    assert resolved["reason"] == "TrackingUriNotAllowed"
    assert resolved["message"].startswith("spec.registry.trackingUri:")
    assert cluster.status(ns, "fraud")["phase"] == "Failed"
    assert cluster.deployment(ns, "fraud") is None
    assert "TrackingUriNotAllowed" in {e["reason"] for e in cluster.events(ns, "fraud")}


def test_missing_credentials_secret_is_named_by_field_and_recovers(
    cluster: Cluster, models: Models, operator: Operator, ns: str
) -> None:
    model = model_name("secret")
    spec = release_spec(model)
    spec["registry"]["credentialsSecret"] = "mlflow-auth"
    cluster.apply_release(ns, "fraud", spec)
    resolved = eventually(
        "Resolved=False naming the field",
        lambda: (c := cluster.condition(ns, "fraud", "Resolved")).get("status") == "False" and c,
    )
    assert resolved["reason"] == "CredentialsSecretNotFound"
    assert resolved["message"].startswith("spec.registry.credentialsSecret:")
    assert cluster.deployment(ns, "fraud") is None
    assert "CredentialsSecretNotFound" in {e["reason"] for e in cluster.events(ns, "fraud")}

    cluster.core.create_namespaced_secret(
        ns, {"metadata": {"name": "mlflow-auth"}, "stringData": {"token": "t0k"}}
    )
    v1 = models.register(model)
    models.move_alias(model, v1)
    eventually("Ready once the Secret exists", lambda: ready_on(cluster, ns, "fraud", model, v1), timeout=120)
    deployment = cluster.deployment(ns, "fraud")
    assert deployment is not None
    env = {e["name"]: e for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["MLFLOW_TRACKING_TOKEN"]["valueFrom"]["secretKeyRef"] == {
        "name": "mlflow-auth",
        "key": "token",
        "optional": True,
    }
    assert "t0k" not in str(deployment) and "t0k" not in str(cluster.status(ns, "fraud"))


def test_lost_status_is_rebuilt_from_the_deployment_annotations(
    cluster: Cluster, models: Models, operator: Operator, ns: str
) -> None:
    model = model_name("rebuild")
    v1 = models.register(model)
    models.move_alias(model, v1)
    cluster.apply_release(ns, "fraud", release_spec(model))
    eventually("v1 Ready", lambda: ready_on(cluster, ns, "fraud", model, v1))
    digest = cluster.status(ns, "fraud")["current"]["digest"]

    cluster.custom.patch_namespaced_custom_object_status(
        "modelrelease.io", "v1alpha1", ns, "modelreleases", "fraud", {"status": None},
        _content_type="application/merge-patch+json",
    )  # fmt: skip
    rebuilt = eventually(
        "the status rebuilt",
        lambda: (s := cluster.status(ns, "fraud")).get("phase") == "Ready" and s.get("history") and s,
    )
    (entry,) = rebuilt["history"]
    assert (entry["version"], entry["outcome"], entry["reason"]) == (v1, "Succeeded", "RebuiltFromDeployment")
    assert entry["digest"] == digest and entry["releaseGeneration"] == 1
    assert rebuilt["current"]["version"] == v1
    assert cluster.model_uri(ns, "fraud") == f"models:/{model}/{v1}"
