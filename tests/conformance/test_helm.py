"""The emulator driven by the real helm (v4: server-side apply by default) with a tiny chart."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from emu_support import Emulator, wait_for
from kubernetes import client
from kubernetes.client.exceptions import ApiException

CHART = {
    "Chart.yaml": "apiVersion: v2\nname: tiny\nversion: 0.1.0\n",
    "values.yaml": "greeting: hello\nreplicas: 1\nextra: true\n",
    "templates/configmap.yaml": (
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-config\n"
        "data:\n  greeting: {{ .Values.greeting | quote }}\n"
        '{{- if .Values.extra }}\n  extra: "yes"\n{{- end }}\n'
    ),
    "templates/deployment.yaml": (
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {{ .Release.Name }}-web\n"
        "spec:\n  replicas: {{ .Values.replicas }}\n"
        "  selector: {matchLabels: {app: {{ .Release.Name }}}}\n"
        "  template:\n    metadata: {labels: {app: {{ .Release.Name }}}}\n"
        "    spec:\n      containers:\n        - name: web\n          image: example/web:1\n"
        "          env: [{name: GREETING, value: {{ .Values.greeting | quote }}}]\n"
    ),
}


@pytest.fixture
def chart(tmp_path: Path) -> Path:
    root = tmp_path / "tiny"
    for rel, text in CHART.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def _helm(helm: str, emulator: Emulator, *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([helm, *args], env=emulator.env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"helm {' '.join(args)} failed: {result.stderr}"
    return result


def test_helm_install_upgrade_uninstall(
    helm: str, emulator: Emulator, api: client.ApiClient, namespace: str, chart: Path
) -> None:
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    _helm(helm, emulator, "install", "rel", str(chart), "-n", namespace)
    assert core.read_namespaced_config_map("rel-config", namespace).data == {
        "greeting": "hello",
        "extra": "yes",
    }
    dep = apps.read_namespaced_deployment("rel-web", namespace)
    assert dep.spec.replicas == 1 and dep.spec.template.spec.containers[0].env[0].value == "hello"
    status = _helm(helm, emulator, "status", "rel", "-n", namespace).stdout
    assert "STATUS: deployed" in status

    _helm(
        helm,
        emulator,
        "upgrade",
        "rel",
        str(chart),
        "-n",
        namespace,
        "--set",
        "greeting=hi,replicas=2,extra=false",
    )
    # a field the chart no longer renders is removed, as server-side apply does for its own manager
    assert core.read_namespaced_config_map("rel-config", namespace).data == {"greeting": "hi"}
    assert apps.read_namespaced_deployment("rel-web", namespace).spec.replicas == 2
    assert "REVISION: 2" in _helm(helm, emulator, "status", "rel", "-n", namespace).stdout

    _helm(helm, emulator, "uninstall", "rel", "-n", namespace)

    def gone() -> bool:
        try:
            apps.read_namespaced_deployment("rel-web", namespace)
        except ApiException as exc:
            return exc.status == 404
        return False

    wait_for(gone)
    left = [c.metadata.name for c in core.list_namespaced_config_map(namespace).items]
    assert "rel-config" not in left
    assert not core.list_namespaced_secret(namespace, label_selector="owner=helm").items
