"""The managed Deployment and Service, the targetRef patch, and reading pins back from a Deployment."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import kubernetes_validate
import pytest

from modelrelease.api.models import ModelReleaseSpec
from modelrelease.render import manifests
from modelrelease.render.manifests import RenderContext, RenderError
from modelrelease.render.observe import observe, rebuilt_entry, rollout_state
from modelrelease.render.pin import Pin, ReleaseRef

RELEASE = ReleaseRef(name="fraud", namespace="ml", uid="0b5e7d1c-1111-2222-3333-444455556666")
PIN = Pin(model="fraud-detector", version="7", digest="sha256:" + "ab" * 32)
CTX = RenderContext(image="modelrelease-serving:0.1.0", tracking_uri="http://mlflow.mlflow:5000")
NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def spec(**serving: Any) -> ModelReleaseSpec:
    return ModelReleaseSpec.model_validate(
        {"model": {"name": "fraud-detector", "alias": "champion"}, "serving": serving}
    )


def render(s: ModelReleaseSpec, ctx: RenderContext = CTX) -> dict[str, Any]:
    return manifests.deployment(RELEASE, s, 3, PIN, 2, ctx)


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    containers: list[dict[str, Any]] = deployment["spec"]["template"]["spec"]["containers"]
    return containers[0]


def env(deployment: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container(deployment)["env"]}


def test_managed_deployment_is_valid_kubernetes_and_pins_the_version() -> None:
    deployment = render(spec(replicas=2))
    kubernetes_validate.validate(deployment, "1.32", strict=True)
    assert env(deployment)["MODEL_URI"] == "models:/fraud-detector/7"
    assert env(deployment)["MLFLOW_TRACKING_URI"] == "http://mlflow.mlflow:5000"
    assert env(deployment)["MODEL_DIGEST"] == PIN.digest
    assert container(deployment)["command"] == [
        "modelrelease",
        "serve",
        "--host",
        "0.0.0.0",
        "--port",
        "8080",
    ]
    assert container(deployment)["readinessProbe"]["httpGet"]["path"] == "/ping"
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["progressDeadlineSeconds"] == 600
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["modelrelease.io/version"] == "7"
    assert annotations["modelrelease.io/model-uri"] == "models:/fraud-detector/7"
    assert annotations["modelrelease.io/digest"] == PIN.digest
    assert annotations["modelrelease.io/release-generation"] == "2"
    assert deployment["metadata"]["annotations"]["modelrelease.io/applied-generation"] == "3"


def test_ownership_and_labels() -> None:
    deployment = render(spec())
    (owner,) = deployment["metadata"]["ownerReferences"]
    assert owner == {
        "apiVersion": "modelrelease.io/v1alpha1",
        "kind": "ModelRelease",
        "name": "fraud",
        "uid": RELEASE.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }
    labels = {"app.kubernetes.io/managed-by": "modelrelease-operator", "modelrelease.io/release": "fraud"}
    assert deployment["metadata"]["labels"] == labels
    assert deployment["spec"]["template"]["metadata"]["labels"] == labels
    assert deployment["spec"]["selector"]["matchLabels"] == {"modelrelease.io/release": "fraud"}


def test_restricted_security_context_by_default() -> None:
    deployment = render(spec())
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    security = container(deployment)["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["readOnlyRootFilesystem"] is True
    assert {"name": "tmp", "mountPath": "/tmp"} in container(deployment)["volumeMounts"]


def test_user_fields_are_carried_over() -> None:
    deployment = render(
        spec(
            image="registry.example/serving:1",
            port=9000,
            env=[{"name": "WORKERS", "value": "4"}],
            resources={"requests": {"cpu": "500m"}, "limits": {"memory": "1Gi"}},
            template={
                "metadata": {"labels": {"team": "risk"}, "annotations": {"prometheus.io/scrape": "true"}}
            },
            serviceAccountName="serving",
            nodeSelector={"pool": "cpu"},
            tolerations=[{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}],
            affinity={"podAntiAffinity": {}},
        )
    )
    kubernetes_validate.validate(deployment, "1.32", strict=True)
    pod = deployment["spec"]["template"]
    assert container(deployment)["image"] == "registry.example/serving:1"
    assert "9000" in container(deployment)["command"]
    assert container(deployment)["ports"][0]["containerPort"] == 9000
    assert env(deployment)["WORKERS"] == "4"
    assert container(deployment)["resources"] == {"requests": {"cpu": "500m"}, "limits": {"memory": "1Gi"}}
    assert pod["metadata"]["labels"]["team"] == "risk"
    assert pod["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
    assert pod["metadata"]["annotations"]["modelrelease.io/version"] == "7"
    assert pod["spec"]["serviceAccountName"] == "serving"
    assert pod["spec"]["nodeSelector"] == {"pool": "cpu"}
    assert pod["spec"]["tolerations"][0]["key"] == "dedicated"
    assert pod["spec"]["affinity"] == {"podAntiAffinity": {}}


def test_another_image_runs_mlflow_serve_and_an_unknown_digest_sets_no_env() -> None:
    """`modelrelease serve` is in the default image only; MODEL_DIGEST goes to any image when known."""
    custom = manifests.deployment(RELEASE, spec(image="serve:2", port=9000), 3, PIN, 2, CTX)
    assert " ".join(container(custom)["command"]) == (
        "mlflow models serve -m $(MODEL_URI) -h 0.0.0.0 -p 9000 --env-manager local"
    )
    assert env(custom)["MODEL_DIGEST"] == PIN.digest
    unknown = manifests.deployment(RELEASE, spec(), 3, Pin(model="fraud-detector", version="7"), 2, CTX)
    assert "MODEL_DIGEST" not in env(unknown)
    user = spec(env=[{"name": "MODEL_DIGEST", "value": "sha256:" + "00" * 32}])
    assert env(render(user))["MODEL_DIGEST"] == PIN.digest  # the operator's verified digest wins


def test_default_image_and_one_replica() -> None:
    deployment = render(spec())
    assert container(deployment)["image"] == "modelrelease-serving:0.1.0"
    assert deployment["spec"]["replicas"] == 1


def test_replicas_left_to_an_hpa() -> None:
    ctx = RenderContext(image=CTX.image, tracking_uri=CTX.tracking_uri, hpa=True)
    assert "replicas" not in render(spec(replicas=3), ctx)["spec"]


def test_apply_configurations_name_only_what_the_operator_has_an_opinion_on() -> None:
    """Server-side apply: whatever the configuration names, the operator owns (and forces); what it does
    not name (status, identity, fields the API server or other managers set) stays theirs."""
    for applied in (render(spec()), manifests.service(RELEASE, spec(), 3)):
        assert set(applied) == {"apiVersion", "kind", "metadata", "spec"}
        assert set(applied["metadata"]) == {"name", "namespace", "labels", "annotations", "ownerReferences"}
    deployment = render(spec())
    assert set(deployment["spec"]) == {"selector", "progressDeadlineSeconds", "template", "replicas"}
    assert set(manifests.service(RELEASE, spec(), 3)["spec"]) == {"type", "selector", "ports"}


def test_credentials_come_from_the_secret_never_inline() -> None:
    s = ModelReleaseSpec.model_validate(
        {
            "model": {"name": "fraud-detector", "version": "7"},
            "registry": {"credentialsSecret": "mlflow-auth"},
        }
    )
    deployment = render(s)
    values = env(deployment)
    for name, key in (
        ("MLFLOW_TRACKING_USERNAME", "username"),
        ("MLFLOW_TRACKING_PASSWORD", "password"),
        ("MLFLOW_TRACKING_TOKEN", "token"),
    ):
        assert values[name] == {"secretKeyRef": {"name": "mlflow-auth", "key": key, "optional": True}}
    kubernetes_validate.validate(deployment, "1.32", strict=True)


def test_service_selects_the_pods() -> None:
    service = manifests.service(RELEASE, spec(port=9000), 3)
    kubernetes_validate.validate(service, "1.32", strict=True)
    assert service["spec"]["selector"] == {"modelrelease.io/release": "fraud"}
    assert service["spec"]["ports"][0]["port"] == 9000
    assert service["metadata"]["ownerReferences"][0]["uid"] == RELEASE.uid


LIVE_TARGET: dict[str, Any] = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "scorer", "namespace": "ml", "generation": 4, "uid": "5c0e-live"},
    "spec": {
        "replicas": 3,
        "template": {
            "metadata": {"labels": {"app": "scorer"}},
            "spec": {
                "containers": [
                    {"name": "proxy", "image": "envoy"},
                    {
                        "name": "server",
                        "image": "custom",
                        "env": [{"name": "MODEL_URI", "value": "models:/x@a"}],
                    },
                ]
            },
        },
    },
}


def target_spec(container: str | None = None) -> ModelReleaseSpec:
    ref = {"name": "scorer"} | ({"container": container} if container else {})
    return ModelReleaseSpec.model_validate(
        {"model": {"name": "fraud-detector", "alias": "champion"}, "serving": {"targetRef": ref}}
    )


def test_target_apply_names_only_model_uri_and_annotations() -> None:
    applied = manifests.target_apply(RELEASE, target_spec("server"), LIVE_TARGET, PIN, 5)
    assert applied == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        # the uid makes the apply fail rather than create a Deployment from these fields alone
        "metadata": {"name": "scorer", "namespace": "ml", "uid": "5c0e-live"},
        "spec": {
            "template": {
                "metadata": {"annotations": manifests.pin_annotations(RELEASE, PIN, 5)},
                "spec": {
                    "containers": [
                        {
                            "name": "server",
                            "env": [{"name": "MODEL_URI", "value": "models:/fraud-detector/7"}],
                        }
                    ]
                },
            }
        },
    }


def test_target_apply_defaults_to_the_first_container() -> None:
    applied = manifests.target_apply(RELEASE, target_spec(), LIVE_TARGET, PIN, 5)
    assert applied["spec"]["template"]["spec"]["containers"][0]["name"] == "proxy"


def test_target_apply_names_the_field_of_a_missing_container() -> None:
    with pytest.raises(RenderError) as raised:
        manifests.target_apply(RELEASE, target_spec("model"), LIVE_TARGET, PIN, 5)
    assert raised.value.field == "spec.serving.targetRef.container"
    assert "proxy, server" in str(raised.value)


def rolled(deployment: dict[str, Any], **status: Any) -> dict[str, Any]:
    live = {**deployment, "metadata": {**deployment["metadata"], "generation": 2}}
    return {**live, "status": {"observedGeneration": 2, **status}}


def test_rollout_states_follow_the_deployment_controller() -> None:
    deployment = render(spec(replicas=2))
    available = {"type": "Available", "status": "True"}
    done = rolled(deployment, replicas=2, updatedReplicas=2, availableReplicas=2, conditions=[available])
    assert rollout_state(done)[0] == "Succeeded"
    halfway = rolled(deployment, replicas=3, updatedReplicas=1, availableReplicas=2, conditions=[available])
    assert rollout_state(halfway)[0] == "Progressing"
    stale = {**done, "status": {**done["status"], "observedGeneration": 1}}
    assert rollout_state(stale)[0] == "Progressing"
    stuck = {
        "type": "Progressing",
        "status": "False",
        "reason": "ProgressDeadlineExceeded",
        "message": "slow",
    }
    assert rollout_state(rolled(deployment, conditions=[stuck])) == ("Failed", "slow")


def test_history_entry_rebuilt_from_annotations() -> None:
    deployment = render(spec(replicas=1))
    available = {"type": "Available", "status": "True"}
    observed = observe(
        rolled(deployment, replicas=1, updatedReplicas=1, availableReplicas=1, conditions=[available])
    )
    assert observed.pin == PIN
    assert observed.release_generation == 2
    assert observed.applied_generation == 3
    entry = rebuilt_entry(observed, NOW)
    assert entry is not None
    assert (entry.version, entry.model_uri, entry.digest, entry.release_generation) == (
        "7",
        "models:/fraud-detector/7",
        PIN.digest,
        2,
    )
    assert entry.outcome == "Succeeded"
    in_progress = rebuilt_entry(observe(rolled(deployment)), NOW)
    assert in_progress is not None and in_progress.outcome is None


def test_a_pin_left_by_another_release_is_not_taken_over() -> None:
    deployment = render(spec())
    assert observe(deployment, release="fraud").pin == PIN
    assert observe(deployment, release="other").pin is None


def test_deployment_without_annotations_carries_no_pin() -> None:
    observed = observe(LIVE_TARGET)
    assert observed.pin is None
    assert rebuilt_entry(observed, NOW) is None


def test_target_apply_sets_model_digest_only_where_the_container_reads_it() -> None:
    live = copy.deepcopy(LIVE_TARGET)
    server = live["spec"]["template"]["spec"]["containers"][1]
    server["env"].append({"name": "MODEL_DIGEST", "value": "sha256:" + "00" * 32})
    applied = manifests.target_apply(RELEASE, target_spec("server"), live, PIN, 5)
    env = applied["spec"]["template"]["spec"]["containers"][0]["env"]
    assert env == [
        {"name": "MODEL_URI", "value": "models:/fraud-detector/7"},
        {"name": "MODEL_DIGEST", "value": PIN.digest},
    ]
    # A container that does not read MODEL_DIGEST is not given one (the operator owns only what it names).
    plain = manifests.target_apply(RELEASE, target_spec("server"), LIVE_TARGET, PIN, 5)
    assert [e["name"] for e in plain["spec"]["template"]["spec"]["containers"][0]["env"]] == ["MODEL_URI"]
