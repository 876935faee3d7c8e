"""checkov over the rendered chart (default and every optional object), manifests/ and both Dockerfiles."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "modelrelease-operator"
RENDERS: dict[str, list[str]] = {
    "default": [],
    "everything": [
        '--set-json=watchNamespaces=["ml","team-b"]',
        "--set=networkPolicy.enabled=true,serviceMonitor.enabled=true",
        "--set=operator.webhook.enabled=true,operator.webhook.secretName=mlflow-webhook",
        "--set=image.digest=sha256:" + "ab" * 32,
    ],
}


@pytest.fixture(scope="module")
def checkov() -> str:
    found = shutil.which("checkov", path=str(ROOT / ".tools" / "bin")) or shutil.which("checkov")
    if found is None:
        pytest.skip("checkov is not installed: run `bash tools/install-checkov.sh .tools`")
    return found


def test_checkov_passes(checkov: str, helm: str, tmp_path: Path) -> None:
    scanned = []
    for name, args in RENDERS.items():
        rendered = subprocess.run(
            [helm, "template", "mr", str(CHART), "--namespace", "modelrelease-system", *args],
            capture_output=True,
            text=True,
            check=True,
        )
        (tmp_path / f"chart-{name}.yaml").write_text(rendered.stdout)
        scanned.append(f"chart-{name}.yaml")
    for manifest in sorted((ROOT / "manifests").glob("*.yaml")):
        if manifest.name != "kustomization.yaml":
            shutil.copy(manifest, tmp_path / f"manifests-{manifest.name}")
            scanned.append(f"manifests-{manifest.name}")
    for dockerfile in ("Dockerfile", "serving.Dockerfile"):
        shutil.copy(ROOT / "operator" / dockerfile, tmp_path / dockerfile)
        scanned.append(dockerfile)

    result = subprocess.run(
        [
            checkov,
            "--config-file",
            str(ROOT / ".checkov.yaml"),
            "--directory",
            str(tmp_path),
            "--output",
            "json",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    reports: list[dict[str, Any]] = json.loads(result.stdout)
    failed = [
        f"{check['check_id']} {check['resource']} ({check['file_path']})"
        for report in reports
        for check in report["results"]["failed_checks"]
    ]
    assert not failed, "\n".join(failed)
    assert result.returncode == 0, result.stderr
    checked_files = {
        Path(check["file_path"]).name for report in reports for check in report["results"]["passed_checks"]
    }
    # The CRD and the Namespace have no checks of their own; everything holding pods or RBAC must be checked.
    must_check = {name for name in scanned if name not in ("manifests-crd.yaml", "manifests-namespace.yaml")}
    assert must_check <= checked_files, f"not scanned: {must_check - checked_files}"
    assert {report["check_type"] for report in reports} == {"kubernetes", "dockerfile"}
