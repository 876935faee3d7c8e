"""Shared fixtures: one sandbox stack for the whole session, kubectl pointed at it, one operator process."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from modelrelease.sandbox import stack
from modelrelease.sandbox.binaries import locate
from operator_process import Operator

KubectlRunner = Callable[..., "subprocess.CompletedProcess[str]"]
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[stack.SandboxInfo]:
    """A running sandbox (a real Kubernetes control plane with kwok, MLflow, S3), shared by every test that
    asks for it.

    Tests using it are `slow`. They share one API server, so each should work in its own namespace.
    """
    directory = tmp_path_factory.mktemp("sandbox")
    info = stack.up(directory)
    try:
        yield info
    finally:
        stack.down(directory)


def run_kubectl(
    sandbox: stack.SandboxInfo, *args: str, stdin: str | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run the real kubectl against the sandbox; the caller checks `returncode`, `stdout` and `stderr`."""
    return subprocess.run(
        [str(locate("kubectl")), *args],
        input=stdin,
        env={**os.environ, **sandbox.env},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture(name="run_kubectl")
def run_kubectl_fixture() -> KubectlRunner:
    """`run_kubectl(sandbox, *args, stdin=None, timeout=60) -> CompletedProcess[str]`."""
    return run_kubectl


@pytest.fixture(scope="session")
def helm() -> str:
    """The real helm binary (tools/install-helm.sh puts it in .tools/bin); tests skip without it."""
    found = shutil.which("helm", path=str(ROOT / ".tools" / "bin")) or shutil.which("helm")
    if found is None:
        pytest.skip("helm is not installed: run `bash tools/install-helm.sh .tools` (make install does)")
    return found


@pytest.fixture(scope="session")
def operator(sandbox: stack.SandboxInfo) -> Iterator[Operator]:
    """The real operator process (`modelrelease run`), watching every namespace of the sandbox; shared by the
    integration and e2e tiers, so that one operator owns every release. A test that stops it restarts it."""
    stack.install_crd(sandbox, ROOT / "crds" / "modelrelease.io_modelreleases.yaml")
    process = Operator(
        sandbox,
        sandbox.dir / "logs" / "operator.log",
        extra_env={
            "MODELRELEASE_ALLOWED_TRACKING_URIS": "http://127.0.0.1:",
            # issue 9: boto3's own endpoint override sends SageMaker and S3 calls to the sandbox's moto.
            "AWS_ENDPOINT_URL": sandbox.s3_url,
        },
    )
    process.start()
    try:
        yield process
    finally:
        process.stop()
