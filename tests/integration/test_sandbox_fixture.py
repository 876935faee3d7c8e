"""The shared session fixtures from tests/conftest.py: `sandbox` and `run_kubectl`."""

from __future__ import annotations

import json
import subprocess
import urllib.request
from collections.abc import Callable

import pytest

from modelrelease.sandbox.stack import SandboxInfo

pytestmark = pytest.mark.slow


def test_session_sandbox_answers_kubectl_mlflow_and_s3(
    sandbox: SandboxInfo, run_kubectl: Callable[..., subprocess.CompletedProcess[str]]
) -> None:
    version = run_kubectl(sandbox, "version", "-o", "json")
    assert version.returncode == 0, version.stderr
    assert json.loads(version.stdout)["serverVersion"]["gitVersion"].startswith("v1.")

    created = run_kubectl(sandbox, "create", "namespace", "fixture-check")
    assert created.returncode == 0, created.stderr
    assert run_kubectl(sandbox, "get", "namespace", "fixture-check", "-o", "name").stdout.strip() == (
        "namespace/fixture-check"
    )

    with urllib.request.urlopen(f"{sandbox.mlflow_url}/health", timeout=10) as health:
        assert health.read() == b"OK"
    assert sandbox.env["MLFLOW_TRACKING_URI"] == sandbox.mlflow_url
    assert sandbox.env["MLFLOW_S3_ENDPOINT_URL"] == sandbox.s3_url
    assert sandbox.bucket == "mlflow-artifacts"
    assert sandbox.kubeconfig.exists()
