"""The real operator process against the sandbox: pin, follow the alias, block, roll back, repoint.

Each test works in its own namespace with its own registered model (real scikit-learn models in the
sandbox's MLflow, artifacts in its S3), and waits on observable state with bounded deadlines.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from integration.helpers import Cluster, Models, Operator, eventually, history, model_name

pytestmark = pytest.mark.slow

POLL = "5s"
POLL_S = 5.0


def release_spec(model: str, **extra: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "model": {"name": model, "alias": "champion"},
        "registry": {"pollInterval": POLL},
        "verify": {"metrics": [{"name": "f1", "min": 0.8}]},
        "rollout": {"progressDeadlineSeconds": 12},
    }
    spec.update(extra)
    return spec


def wait_serving(cluster: Cluster, namespace: str, name: str, model: str, version: str, phase: str) -> None:
    uri = f"models:/{model}/{version}"

    def serving() -> bool:
        status = cluster.status(namespace, name)
        return (
            cluster.model_uri(namespace, name) == uri
            and (status.get("current") or {}).get("version") == version
            and status.get("phase") == phase
        )

    eventually(f"{uri} serving with phase {phase}", serving, timeout=120)


def test_alias_pins_the_deployment_and_follows_the_alias(
    cluster: Cluster, models: Models, operator: Operator, ns: str, record_property: Any
) -> None:
    namespace, model = ns, model_name("pin")
    v1 = models.register(model)
    models.move_alias(model, v1)
    cluster.apply_release(namespace, "fraud", release_spec(model, serving={"replicas": 2}))

    wait_serving(cluster, namespace, "fraud", model, v1, "Ready")
    deployment = cluster.deployment(namespace, "fraud")
    assert deployment is not None
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["modelrelease.io/version"] == v1
    assert annotations["modelrelease.io/model-uri"] == f"models:/{model}/{v1}"
    assert annotations["modelrelease.io/digest"].startswith("sha256:")
    assert annotations["modelrelease.io/release-generation"] == "1"
    assert deployment["metadata"]["ownerReferences"][0]["kind"] == "ModelRelease"
    assert deployment["spec"]["replicas"] == 2
    assert cluster.core.read_namespaced_service("fraud", namespace).spec.selector == {
        "modelrelease.io/release": "fraud"
    }
    status = cluster.status(namespace, "fraud")
    assert status["observedGeneration"] == 1
    assert status["resolved"]["alias"] == "champion"
    assert {v["check"]: v["outcome"] for v in status["verification"]} == {
        "RegistryReady": "Passed",
        "Metrics": "Passed",
        "Digest": "Passed",
        "Signature": "Skipped",
        "Schema": "Skipped",
        "SmokeTest": "Skipped",  # the version was logged without an input example
    }
    assert "RolloutSucceeded" in {e["reason"] for e in cluster.events(namespace, "fraud")}

    v2 = models.register(model)
    moved = time.monotonic()
    models.move_alias(model, v2)
    eventually(
        "the Deployment to be repointed at v2",
        lambda: cluster.model_uri(namespace, "fraud") == f"models:/{model}/{v2}",
        timeout=POLL_S + 60,
        interval=0.1,
    )
    latency = time.monotonic() - moved
    record_property("alias_move_to_deployment_patch_seconds", round(latency, 2))
    print(f"\nalias move -> Deployment patched: {latency:.2f}s (pollInterval {POLL})")
    wait_serving(cluster, namespace, "fraud", model, v2, "Ready")
    assert history(cluster.status(namespace, "fraud")) == [(v1, "Succeeded"), (v2, "Succeeded")]

    # The operator writes status, never the spec: the generation is still the one we created.
    release = cluster.release(namespace, "fraud")
    assert release is not None and release["metadata"]["generation"] == 1
    assert release["spec"]["model"] == {"name": model, "alias": "champion"}


def test_failed_metric_gate_blocks_and_the_old_version_keeps_serving(
    cluster: Cluster, models: Models, operator: Operator, ns: str
) -> None:
    namespace, model = ns, model_name("gate")
    v1 = models.register(model, f1=0.93)
    models.move_alias(model, v1)
    cluster.apply_release(namespace, "fraud", release_spec(model))
    wait_serving(cluster, namespace, "fraud", model, v1, "Ready")

    v2 = models.register(model, f1=0.41)
    models.move_alias(model, v2)
    eventually("v2 blocked", lambda: (v2, "Blocked") in history(cluster.status(namespace, "fraud")))
    status = cluster.status(namespace, "fraud")
    assert status["phase"] == "Blocked"
    assert status["current"]["version"] == v1
    assert cluster.model_uri(namespace, "fraud") == f"models:/{model}/{v1}"
    verified = cluster.condition(namespace, "fraud", "Verified")
    assert (verified["status"], verified["reason"]) == ("False", "MetricGateFailed")
    assert "f1=0.41" in verified["message"]
    entry = status["history"][-1]
    assert entry["reason"] == "MetricGateFailed"
    warning = eventually(
        "a MetricGateFailed Event",
        lambda: [e for e in cluster.events(namespace, "fraud") if e["reason"] == "MetricGateFailed"],
    )
    assert warning[0]["type"] == "Warning"
    assert history(cluster.status(namespace, "fraud")).count((v2, "Blocked")) == 1  # not retried


def test_tampered_artifact_is_blocked_by_the_digest(
    cluster: Cluster, models: Models, operator: Operator, ns: str
) -> None:
    namespace, model = ns, model_name("digest")
    v1 = models.register(model)
    models.move_alias(model, v1)
    cluster.apply_release(namespace, "fraud", release_spec(model))
    wait_serving(cluster, namespace, "fraud", model, v1, "Ready")

    v2 = models.register(model)  # stamped, then altered in S3
    models.tamper(model, v2)
    models.move_alias(model, v2)
    eventually("v2 blocked", lambda: (v2, "Blocked") in history(cluster.status(namespace, "fraud")))
    verified = cluster.condition(namespace, "fraud", "Verified")
    assert (verified["status"], verified["reason"]) == ("False", "DigestMismatch")
    assert cluster.model_uri(namespace, "fraud") == f"models:/{model}/{v1}"
    assert cluster.status(namespace, "fraud")["phase"] == "Blocked"


def test_crashing_rollout_is_rolled_back_to_the_last_good_version(
    cluster: Cluster, models: Models, operator: Operator, ns: str
) -> None:
    namespace, model = ns, model_name("rollback")
    v1 = models.register(model)
    models.move_alias(model, v1)
    cluster.apply_release(namespace, "fraud", release_spec(model))
    wait_serving(cluster, namespace, "fraud", model, v1, "Ready")

    v2 = models.register(model)
    cluster.inject_fault(namespace, f"models:/{model}/{v2}", "crashloop")
    models.move_alias(model, v2)
    eventually(
        "v2 to be rolled out (it crashes)",
        lambda: cluster.model_uri(namespace, "fraud") == f"models:/{model}/{v2}",
    )
    eventually("v2 rolled back", lambda: (v2, "RolledBack") in history(cluster.status(namespace, "fraud")))
    wait_serving(cluster, namespace, "fraud", model, v1, "Degraded")
    degraded = cluster.condition(namespace, "fraud", "Degraded")
    assert (degraded["status"], degraded["reason"]) == ("True", "RolledBack")
    entry = cluster.status(namespace, "fraud")["history"][-1]
    assert entry["reason"] == "ProgressDeadlineExceeded"
    assert f"rolled back to version {v1}" in entry["message"]
    events = {e["reason"]: e for e in cluster.events(namespace, "fraud")}
    assert events["RolledBack"]["type"] == "Warning"
    assert history(cluster.status(namespace, "fraud")) == [(v1, "Succeeded"), (v2, "RolledBack")]


TARGET = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "scorer", "labels": {"app": "scorer", "team": "risk"}},
    "spec": {
        "replicas": 2,
        "selector": {"matchLabels": {"app": "scorer"}},
        "template": {
            "metadata": {"labels": {"app": "scorer"}, "annotations": {"team.example/owner": "risk"}},
            "spec": {
                "containers": [
                    {"name": "proxy", "image": "envoyproxy/envoy:v1.31.0"},
                    {
                        "name": "server",
                        "image": "custom/serving:2",
                        "env": [{"name": "WORKERS", "value": "4"}, {"name": "MODEL_URI", "value": "unset"}],
                    },
                ]
            },
        },
    },
}


def _without_model_uri(deployment: dict[str, Any]) -> dict[str, Any]:
    spec = {**deployment["spec"], "template": {**deployment["spec"]["template"]}}
    template = spec["template"]
    template["metadata"] = {
        **template["metadata"],
        "annotations": {
            k: v
            for k, v in template["metadata"].get("annotations", {}).items()
            if not k.startswith("modelrelease.io/")
        },
    }
    containers = [
        {**c, "env": [e for e in c.get("env", []) if e["name"] != "MODEL_URI"]}
        for c in template["spec"]["containers"]
    ]
    template["spec"] = {**template["spec"], "containers": containers}
    return {"labels": deployment["metadata"].get("labels"), "spec": spec}


def test_target_ref_touches_only_model_uri_and_annotations_and_survives_deletion(
    cluster: Cluster, models: Models, operator: Operator, ns: str
) -> None:
    namespace, model = ns, model_name("target")
    cluster.apps.create_namespaced_deployment(namespace, TARGET)
    before = cluster.deployment(namespace, "scorer")
    assert before is not None
    v1 = models.register(model)
    models.move_alias(model, v1)
    spec = release_spec(model, serving={"targetRef": {"name": "scorer", "container": "server"}})
    cluster.apply_release(namespace, "fraud", spec)

    uri = f"models:/{model}/{v1}"
    eventually("the target repointed", lambda: cluster.model_uri(namespace, "scorer", container=1) == uri)
    eventually("Ready", lambda: cluster.status(namespace, "fraud").get("phase") == "Ready")
    after = cluster.deployment(namespace, "scorer")
    assert after is not None
    assert _without_model_uri(after) == _without_model_uri(before)
    annotations = after["spec"]["template"]["metadata"]["annotations"]
    assert annotations["team.example/owner"] == "risk"
    assert annotations["modelrelease.io/version"] == v1
    assert after["metadata"].get("ownerReferences") is None
    assert cluster.deployment(namespace, "fraud") is None  # no managed Deployment in targetRef mode

    cluster.custom.delete_namespaced_custom_object(
        "modelrelease.io", "v1alpha1", namespace, "modelreleases", "fraud"
    )
    eventually("the release gone", lambda: cluster.release(namespace, "fraud") is None)
    left = cluster.deployment(namespace, "scorer")
    assert left is not None and cluster.model_uri(namespace, "scorer", container=1) == uri


def test_deleting_a_managed_release_garbage_collects_its_deployment(
    cluster: Cluster, models: Models, operator: Operator, ns: str
) -> None:
    namespace, model = ns, model_name("gc")
    v1 = models.register(model)
    models.move_alias(model, v1)
    cluster.apply_release(namespace, "fraud", release_spec(model))
    wait_serving(cluster, namespace, "fraud", model, v1, "Ready")
    cluster.custom.delete_namespaced_custom_object(
        "modelrelease.io", "v1alpha1", namespace, "modelreleases", "fraud"
    )
    eventually("the release gone", lambda: cluster.release(namespace, "fraud") is None)
    eventually("the Deployment garbage-collected", lambda: cluster.deployment(namespace, "fraud") is None)

    def service_gone() -> bool:
        try:
            cluster.core.read_namespaced_service("fraud", namespace)
        except ApiException as exc:
            return exc.status == 404
        return False

    eventually("the Service garbage-collected", service_gone)


def test_replicas_are_left_to_an_hpa(cluster: Cluster, models: Models, operator: Operator, ns: str) -> None:
    namespace, model = ns, model_name("hpa")
    cluster.autoscaling.create_namespaced_horizontal_pod_autoscaler(
        namespace,
        {
            "metadata": {"name": "fraud"},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "fraud"},
                "minReplicas": 1,
                "maxReplicas": 5,
            },
        },
        _preload_content=False,  # the typed model wants a status only the HPA controller writes
    )
    v1 = models.register(model)
    models.move_alias(model, v1)
    cluster.apply_release(namespace, "fraud", release_spec(model, serving={"replicas": 2}))
    wait_serving(cluster, namespace, "fraud", model, v1, "Ready")
    # The HPA scales the Deployment to 3, as its controller would (the sandbox's API has no scale
    # subresource, so the same write goes to the Deployment itself).
    cluster.apps.patch_namespaced_deployment("fraud", namespace, {"spec": {"replicas": 3}})
    v2 = models.register(model)
    models.move_alias(model, v2)
    wait_serving(cluster, namespace, "fraud", model, v2, "Ready")
    deployment = cluster.deployment(namespace, "fraud")
    assert deployment is not None and deployment["spec"]["replicas"] == 3


def test_mlflow_webhook_moves_the_deployment_without_waiting_for_the_poll(
    cluster: Cluster, models: Models, operator: Operator, ns: str, record_property: Any
) -> None:
    namespace, model = ns, model_name("push")
    v1 = models.register(model)
    models.move_alias(model, v1)
    spec = release_spec(model)
    spec["registry"]["pollInterval"] = "10m"  # only the push can move it within this test
    cluster.apply_release(namespace, "fraud", spec)
    wait_serving(cluster, namespace, "fraud", model, v1, "Ready")

    # A real MLflow webhook: the sandbox's MLflow server signs and delivers the alias event itself.
    webhook = models.client.create_webhook(
        name=f"operator-{model}",
        url=f"http://127.0.0.1:{operator.webhook_port}/webhooks/mlflow",
        events=["model_version_alias.created"],
        secret=operator.webhook_secret,
    )
    try:
        probe = models.client.test_webhook(webhook.webhook_id)
        assert probe.success, f"MLflow's signed test delivery was refused: {probe.response_status}"
        v2 = models.register(model)
        moved = time.monotonic()
        models.move_alias(model, v2)
        eventually(
            "the Deployment to be repointed at v2",
            lambda: cluster.model_uri(namespace, "fraud") == f"models:/{model}/{v2}",
            timeout=60,
            interval=0.1,
        )
        latency = time.monotonic() - moved
    finally:
        models.client.delete_webhook(webhook.webhook_id)
    record_property("webhook_alias_move_to_deployment_patch_seconds", round(latency, 2))
    print(f"\nalias move + webhook -> Deployment patched: {latency:.2f}s (pollInterval 10m)")


def test_target_ref_naming_a_missing_container_is_refused_naming_the_field(
    cluster: Cluster, operator: Operator, ns: str
) -> None:
    cluster.apps.create_namespaced_deployment(ns, TARGET)
    spec = release_spec(
        model_name("nocontainer"), serving={"targetRef": {"name": "scorer", "container": "model"}}
    )
    cluster.apply_release(ns, "fraud", spec)
    resolved = eventually(
        "Resolved=False naming the field",
        lambda: (c := cluster.condition(ns, "fraud", "Resolved")).get("status") == "False" and c,
    )
    assert resolved["reason"] == "TargetContainerNotFound"
    assert resolved["message"].startswith("spec.serving.targetRef.container:")
    assert "proxy, server" in resolved["message"]
    assert cluster.model_uri(ns, "scorer", container=1) == "unset"


@pytest.mark.filterwarnings(
    "ignore:.*transition_model_version_stage.*:FutureWarning"
)  # the point of the test
def test_legacy_stage_reference_resolves_with_a_deprecation_warning(
    cluster: Cluster, models: Models, operator: Operator, ns: str
) -> None:
    model = model_name("stage")
    v1 = models.register(model)
    models.client.transition_model_version_stage(model, v1, "Production")
    spec = release_spec(model)
    spec["model"] = {"name": model, "stage": "Production"}
    cluster.apply_release(ns, "fraud", spec)
    wait_serving(cluster, ns, "fraud", model, v1, "Ready")
    resolved = cluster.condition(ns, "fraud", "Resolved")
    assert resolved["reason"] == "StageResolved"
    assert "deprecated" in resolved["message"]
    assert cluster.status(ns, "fraud")["resolved"]["stage"] == "Production"
