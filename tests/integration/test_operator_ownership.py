"""What the real kube-apiserver keeps of the operator's writes, and what it refuses.

The status subresource holds exactly the computed status (a field that becomes empty is removed); the
managed Deployment and Service are server-side applied as `modelrelease-operator`, so fields other
managers own survive a rollout (a label, `kubectl rollout restart`, `minReadySeconds`, an HPA's
replicas) and a targetRef Deployment's owner keeps everything but MODEL_URI and the pod-template
annotations; a Deployment the API server refuses (HTTP 422) is recorded as DeploymentRejected while the
previous version keeps serving; a quantity the CRD can check is refused at admission naming the field.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import kubernetes
import pytest
from kubernetes.client.exceptions import ApiException

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
from modelrelease.api.models import GROUP, VERSION, ModelReleaseSpec
from modelrelease.kube.client import Kube
from modelrelease.render import manifests
from modelrelease.render.pin import Pin, ReleaseRef
from modelrelease.sandbox.stack import SandboxInfo

pytestmark = pytest.mark.slow

MANAGER = "modelrelease-operator"
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"


def serving(cluster: Cluster, namespace: str, model: str, version: str) -> None:
    eventually(
        f"version {version} of {model} serving (phase Ready)",
        lambda: ready_on(cluster, namespace, "fraud", model, version),
        timeout=120,
    )


def served(cluster: Cluster, models: Models, namespace: str, prefix: str) -> tuple[str, str]:
    """A new registered model whose first version serves through the managed release `fraud`."""
    model = model_name(prefix)
    v1 = models.register(model)
    models.move_alias(model, v1)
    cluster.apply_release(namespace, "fraud", release_spec(model))
    serving(cluster, namespace, model, v1)
    return model, v1


def live(cluster: Cluster, namespace: str, name: str = "fraud") -> dict[str, Any]:
    deployment = cluster.deployment(namespace, name)
    assert deployment is not None, f"Deployment {namespace}/{name} is missing"
    return deployment


def managers(obj: dict[str, Any]) -> dict[tuple[str, str, str], dict[str, Any]]:
    """managedFields by (manager, operation, subresource) → the fields that entry owns."""
    return {
        (m["manager"], m["operation"], m.get("subresource") or ""): m.get("fieldsV1") or {}
        for m in obj["metadata"].get("managedFields") or []
    }


def test_a_field_that_becomes_empty_is_removed_from_the_status_on_the_server(
    cluster: Cluster, models: Models, operator: Operator, ns: str
) -> None:
    """v1 served with its digest; v2 rolls out with verify.digest Off: no digest is left anywhere."""
    model, _ = served(cluster, models, ns, "nodigest")
    status = cluster.status(ns, "fraud")
    assert status["current"]["digest"].startswith("sha256:")
    assert status["resolved"]["digest"] == status["current"]["digest"]

    cluster.apply_release(ns, "fraud", release_spec(model, verify={"digest": "Off"}))
    v2 = models.register(model, stamp=False)
    models.move_alias(model, v2)
    serving(cluster, ns, model, v2)
    status = cluster.status(ns, "fraud")
    assert "digest" not in status["current"], status["current"]
    assert "digest" not in status["resolved"], status["resolved"]
    assert {v["check"]: v["outcome"] for v in status["verification"]}["Digest"] == "Skipped"
    annotations = live(cluster, ns)["spec"]["template"]["metadata"]["annotations"]
    assert "modelrelease.io/digest" not in annotations


def test_fields_other_managers_own_survive_the_next_rollout(
    cluster: Cluster,
    models: Models,
    operator: Operator,
    ns: str,
    sandbox: SandboxInfo,
    run_kubectl: Any,
) -> None:
    model, _ = served(cluster, models, ns, "owners")
    cluster_ip = cluster.core.read_namespaced_service("fraud", ns).spec.cluster_ip

    cluster.apps.patch_namespaced_deployment(
        "fraud",
        ns,
        {"metadata": {"labels": {"team.example/owner": "risk"}}, "spec": {"minReadySeconds": 1}},
        field_manager="platform-team",
    )
    restart = run_kubectl(sandbox, "rollout", "restart", "deployment/fraud", "-n", ns)
    assert restart.returncode == 0, restart.stderr
    restarted = live(cluster, ns)["spec"]["template"]["metadata"]["annotations"][RESTARTED_AT]

    v2 = models.register(model)
    models.move_alias(model, v2)
    serving(cluster, ns, model, v2)

    deployment = live(cluster, ns)
    assert deployment["metadata"]["labels"]["team.example/owner"] == "risk"
    assert deployment["metadata"]["labels"]["app.kubernetes.io/managed-by"] == MANAGER
    assert deployment["spec"]["minReadySeconds"] == 1
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations[RESTARTED_AT] == restarted
    assert annotations["modelrelease.io/version"] == v2
    owners = managers(deployment)
    assert (MANAGER, "Apply", "") in owners
    assert not [key for key in owners if key[0] == MANAGER and key[1] != "Apply"], owners
    ours = owners[(MANAGER, "Apply", "")]["f:spec"]
    assert "f:minReadySeconds" not in ours
    assert f"f:{RESTARTED_AT}" not in ours["f:template"]["f:metadata"]["f:annotations"]

    service = cluster.api.sanitize_for_serialization(cluster.core.read_namespaced_service("fraud", ns))
    assert service["spec"]["clusterIP"] == cluster_ip
    assert (MANAGER, "Apply", "") in managers(service)


def test_an_hpas_replicas_survive_the_next_rollout(
    cluster: Cluster, models: Models, operator: Operator, ns: str
) -> None:
    """The real HPA controller scales the Deployment (through the scale subresource) up to its
    minReplicas; the operator's next rollout leaves replicas out of its apply configuration."""
    model, v1 = served(cluster, models, ns, "hpa")
    assert live(cluster, ns)["spec"]["replicas"] == 1
    cluster.autoscaling.create_namespaced_horizontal_pod_autoscaler(
        ns,
        {
            "metadata": {"name": "fraud"},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "fraud"},
                "minReplicas": 2,
                "maxReplicas": 4,
            },
        },
        _preload_content=False,
    )
    eventually("the HPA to scale the Deployment to 2", lambda: live(cluster, ns)["spec"]["replicas"] == 2)
    serving(cluster, ns, model, v1)

    v2 = models.register(model)
    models.move_alias(model, v2)
    serving(cluster, ns, model, v2)
    deployment = live(cluster, ns)
    assert deployment["spec"]["replicas"] == 2
    assert "f:replicas" not in managers(deployment)[(MANAGER, "Apply", "")]["f:spec"]


TARGET: dict[str, Any] = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "scorer", "labels": {"app": "scorer"}},
    "spec": {
        "replicas": 1,
        "selector": {"matchLabels": {"app": "scorer"}},
        "template": {
            "metadata": {"labels": {"app": "scorer"}},
            "spec": {
                "containers": [
                    {
                        "name": "server",
                        "image": "custom/serving:2",
                        "env": [{"name": "WORKERS", "value": "4"}],
                    }
                ]
            },
        },
    },
}


def test_a_target_ref_owner_keeps_everything_but_model_uri_and_the_annotations(
    cluster: Cluster,
    models: Models,
    operator: Operator,
    ns: str,
    sandbox: SandboxInfo,
    run_kubectl: Any,
) -> None:
    def apply_target(workers: str) -> None:
        manifest = json.loads(json.dumps(TARGET))
        manifest["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"] = workers
        applied = run_kubectl(
            sandbox, "apply", "--server-side", "--field-manager=scorer-owner", "-n", ns, "-f", "-",
            stdin=json.dumps(manifest),
        )  # fmt: skip
        assert applied.returncode == 0, applied.stderr

    apply_target("4")
    model = model_name("target")
    v1 = models.register(model)
    models.move_alias(model, v1)
    cluster.apply_release(ns, "fraud", release_spec(model, serving={"targetRef": {"name": "scorer"}}))
    uri = f"models:/{model}/{v1}"
    eventually("the target repointed", lambda: cluster.model_uri(ns, "scorer") == uri)

    ours = managers(live(cluster, ns, "scorer"))[(MANAGER, "Apply", "")]
    assert set(ours) == {"f:spec"} and set(ours["f:spec"]) == {"f:template"}
    template = ours["f:spec"]["f:template"]
    assert set(template["f:metadata"]) == {"f:annotations"}
    (container,) = template["f:spec"]["f:containers"].values()
    assert set(container["f:env"]) - {"."} == {'k:{"name":"MODEL_URI"}'}

    # The owner applies their own manifest again (it has no MODEL_URI): no conflict, and the
    # operator's fields stay.
    apply_target("8")
    deployment = live(cluster, ns, "scorer")
    env = {e["name"]: e.get("value") for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env == {"WORKERS": "8", "MODEL_URI": uri}
    assert deployment["spec"]["template"]["metadata"]["annotations"]["modelrelease.io/version"] == v1


def test_a_target_ref_apply_never_creates_the_deployment(
    cluster: Cluster, sandbox: SandboxInfo, ns: str
) -> None:
    """The uid in targetRef mode's apply configuration is a precondition: a Deployment deleted meanwhile
    is a conflict (retried), not a Deployment created from MODEL_URI and a few annotations."""
    gone = {**TARGET, "metadata": {"name": "scorer", "namespace": ns, "uid": str(uuid.uuid4())}}
    spec = ModelReleaseSpec.model_validate(
        {"model": {"name": "m", "alias": "a"}, "serving": {"targetRef": {"name": "scorer"}}}
    )
    applied = manifests.target_apply(ReleaseRef("fraud", ns, str(uuid.uuid4())), spec, gone, Pin("m", "1"), 1)
    kube = Kube(kubernetes.config.new_client_from_config(config_file=str(sandbox.kubeconfig)))
    try:
        with pytest.raises(ApiException) as conflict:
            asyncio.run(kube.apply_deployment(applied))
    finally:
        kube.close()
    assert conflict.value.status == 409 and "uid mismatch" in (conflict.value.body or "")
    assert cluster.deployment(ns, "scorer") is None


def _rejected(cluster: Cluster, namespace: str) -> list[dict[str, Any]]:
    return [e for e in cluster.events(namespace, "fraud") if e["reason"] == "DeploymentRejected"]


def test_a_deployment_the_api_server_refuses_is_recorded_and_the_previous_version_keeps_serving(
    cluster: Cluster, models: Models, operator: Operator, ns: str
) -> None:
    """requests above limits: a valid quantity each (the CRD admits it), an invalid container (apps/v1
    validation refuses the Deployment with 422)."""
    model, v1 = served(cluster, models, ns, "refused")

    bad = {"resources": {"requests": {"cpu": "2"}, "limits": {"cpu": "1"}}}
    cluster.apply_release(ns, "fraud", release_spec(model, serving=bad))  # generation 2: re-render v1

    def refused() -> dict[str, Any] | None:
        progressing = cluster.condition(ns, "fraud", "Progressing")
        return progressing if progressing.get("reason") == "DeploymentRejected" else None

    progressing = eventually("Progressing=False DeploymentRejected", refused)
    assert progressing["status"] == "False" and progressing["observedGeneration"] == 2
    assert "must be less than or equal to cpu limit" in progressing["message"]
    assert "\n" not in progressing["message"]
    assert eventually("a Warning Event", lambda: _rejected(cluster, ns))[0]["type"] == "Warning"
    assert cluster.condition(ns, "fraud", "Ready")["reason"] == "Serving"
    assert cluster.model_uri(ns, "fraud") == f"models:/{model}/{v1}"
    assert not live(cluster, ns)["spec"]["template"]["spec"]["containers"][0].get("resources", {})

    # A new version under the same spec is tried once, refused, and the old version still serves.
    v2 = models.register(model)
    models.move_alias(model, v2)
    eventually("v2 refused", lambda: (v2, "Failed") in history(cluster.status(ns, "fraud")))
    status = cluster.status(ns, "fraud")
    entry = status["history"][-1]
    assert entry["reason"] == "DeploymentRejected" and "cpu limit" in entry["message"]
    assert status["current"]["version"] == v1 and status["phase"] == "Degraded"
    assert cluster.condition(ns, "fraud", "Progressing")["reason"] == "DeploymentRejected"
    assert cluster.model_uri(ns, "fraud") == f"models:/{model}/{v1}"

    # No retry storm: several passes later (the poll runs every 5 s), still one Event per refusal.
    eventually("two DeploymentRejected Events", lambda: len(_rejected(cluster, ns)) == 2)
    passes = operator.metric("modelrelease_reconciles_total")
    eventually("three more passes", lambda: operator.metric("modelrelease_reconciles_total") >= passes + 3)
    assert len(_rejected(cluster, ns)) == 2
    assert cluster.condition(ns, "fraud", "Progressing")["reason"] == "DeploymentRejected"

    fixed = {"resources": {"requests": {"cpu": "1"}, "limits": {"cpu": "1"}}}
    cluster.apply_release(ns, "fraud", release_spec(model, serving=fixed))  # retried after the spec change
    serving(cluster, ns, model, v2)
    resources = live(cluster, ns)["spec"]["template"]["spec"]["containers"][0]["resources"]
    assert resources == {"requests": {"cpu": "1"}, "limits": {"cpu": "1"}}


@pytest.mark.parametrize(
    ("kind", "value"),
    [("limits", '"2 cores"'), ("requests", "-1"), ("requests", '"-500m"'), ("limits", '"1Gb"')],
)
def test_a_quantity_the_crd_can_check_is_refused_at_admission_naming_the_field(
    cluster: Cluster, ns: str, sandbox: SandboxInfo, run_kubectl: Any, kind: str, value: str
) -> None:
    manifest = f"""
apiVersion: {GROUP}/{VERSION}
kind: ModelRelease
metadata: {{name: fraud, namespace: {ns}}}
spec:
  model: {{name: fraud-detector, alias: champion}}
  serving:
    resources:
      {kind}: {{cpu: {value}}}
"""
    applied = run_kubectl(sandbox, "apply", "-f", "-", stdin=manifest)
    assert applied.returncode != 0
    assert f"spec.serving.resources.{kind}.cpu" in applied.stderr, applied.stderr
    with pytest.raises(ApiException) as missing:
        cluster.custom.get_namespaced_custom_object(GROUP, VERSION, ns, "modelreleases", "fraud")
    assert missing.value.status == 404
