"""manifests/ is a kustomize base that real kubectl builds into the chart's default render."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
from pathlib import Path
from types import ModuleType

import kubernetes_validate
import pytest
import yaml

from modelrelease.sandbox import binaries

ROOT = Path(__file__).resolve().parents[2]
KUBERNETES_VERSION = "1.32.0"


def sync_chart() -> ModuleType:
    spec = importlib.util.spec_from_file_location("sync_chart", ROOT / "tools" / "sync_chart.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def built() -> list[dict]:
    kubectl = project_kubectl()
    result = subprocess.run(
        [kubectl, "kustomize", str(ROOT / "manifests")],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def project_kubectl() -> str:
    """The kubectl built with the control plane (its kustomize knows the admission-policy kinds are
    cluster-scoped; older ones put them in the base's namespace)."""
    try:
        return str(binaries.locate("kubectl"))
    except binaries.BinaryError as exc:
        pytest.skip(str(exc))


def key(obj: dict) -> tuple[str, str, str]:
    return obj["kind"], obj["metadata"].get("namespace", ""), obj["metadata"]["name"]


def test_kustomize_build_is_the_default_chart_render(built: list[dict], helm: str) -> None:
    tool = sync_chart()
    rendered = [tool._strip_helm_metadata(obj) for obj in tool.render_default(helm)]
    by_key = {key(obj): obj for obj in built}
    namespace = by_key.pop(("Namespace", "", tool.NAMESPACE))
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    # kustomize does not know the admission-policy kinds are cluster-scoped and gives them the base's
    # namespace; kubectl drops it again on apply (tests/integration/test_install.py applies the base).
    for kind in ("ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"):
        for obj in [o for k, o in by_key.items() if k[0] == kind]:
            del by_key[key(obj)]
            del obj["metadata"]["namespace"]
            by_key[key(obj)] = obj
    assert by_key == {key(obj): obj for obj in rendered}


def test_base_carries_no_helm_bookkeeping(built: list[dict]) -> None:
    for obj in built:
        labels = obj["metadata"].get("labels", {})
        annotations = obj["metadata"].get("annotations", {})
        assert "helm.sh/chart" not in labels and labels.get("app.kubernetes.io/managed-by") != "Helm", key(
            obj
        )
        assert not any(name.startswith("helm.sh/") for name in annotations), key(obj)


def test_base_objects_match_the_official_schema(built: list[dict]) -> None:
    for obj in built:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    assert {obj["kind"] for obj in built} >= {
        "Namespace",
        "CustomResourceDefinition",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Service",
        "Deployment",
    }


def test_the_readme_overlay_sets_namespace_image_and_tracking_uri(tmp_path: Path) -> None:
    kubectl = project_kubectl()
    shutil.copytree(ROOT / "manifests", tmp_path / "base")
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    env_patch = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "modelrelease-operator", "namespace": "modelrelease-system"},
        "spec": {"template": {"spec": {"containers": [{"name": "operator", "env": [
            {"name": "MODELRELEASE_DEFAULT_TRACKING_URI", "value": "http://mlflow.mlflow:5000"},
        ]}]}}},
    }  # fmt: skip
    kustomization = {
        "namespace": "platform",
        "resources": ["../base"],
        "images": [
            {"name": "modelrelease-operator", "newName": "registry.example.com/modelrelease-operator"}
        ],
        "patches": [{"patch": yaml.safe_dump(env_patch)}],
    }
    (overlay / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    result = subprocess.run(
        [kubectl, "kustomize", str(overlay)], capture_output=True, text=True, check=True, timeout=60
    )
    objects = {obj["kind"]: obj for obj in yaml.safe_load_all(result.stdout) if obj}
    # The ClusterRoleBinding must follow the ServiceAccount, or the operator runs without permissions.
    assert objects["ClusterRoleBinding"]["subjects"][0]["namespace"] == "platform"
    deployment = objects["Deployment"]
    assert deployment["metadata"]["namespace"] == "platform"
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "registry.example.com/modelrelease-operator:0.1.0"
    env = {item["name"]: item.get("value") for item in container["env"]}
    assert env["MODELRELEASE_DEFAULT_TRACKING_URI"] == "http://mlflow.mlflow:5000"
    assert env["MODELRELEASE_METRICS_PORT"] == "9090"  # the other settings are untouched
