"""Fixtures of the chaos tests. Faults the operator or the registry suffers run on the session's sandbox
and operator (tests/conftest.py); faults of control-plane processes (kube-apiserver, etcd, MLflow, S3)
run on a sandbox and operator of this module's own, so that restarting them disturbs no other test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from chaos.scenarios import OwnStack
from integration.helpers import CRD, Cluster, Models
from modelrelease.sandbox import stack
from operator_process import Operator


def client_env(sandbox: stack.SandboxInfo) -> dict[str, str]:
    # The blocking MLflow client used to set up fixtures must fail fast, not retry for minutes.
    return {**sandbox.env, "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1", "MLFLOW_HTTP_REQUEST_TIMEOUT": "60"}


@pytest.fixture(scope="session")
def chaos_cluster(sandbox: stack.SandboxInfo) -> Cluster:
    stack.install_crd(sandbox, CRD)
    return Cluster(sandbox)


@pytest.fixture(scope="session")
def chaos_models(sandbox: stack.SandboxInfo) -> Iterator[Models]:
    with pytest.MonkeyPatch.context() as patch:
        for key, value in client_env(sandbox).items():
            patch.setenv(key, value)
        yield Models(sandbox)


@pytest.fixture(scope="module")
def own_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OwnStack]:
    """A sandbox and an operator of their own, for faults of the control plane's processes."""
    import mlflow

    directory: Path = tmp_path_factory.mktemp("chaos-sandbox")
    info = stack.up(directory)
    global_uri = mlflow.get_tracking_uri()  # Registrar sets MLflow's global tracking URI: put it back after
    try:
        stack.install_crd(info, CRD)
        with pytest.MonkeyPatch.context() as patch:
            for key, value in client_env(info).items():
                patch.setenv(key, value)
            operator = Operator(
                info,
                directory / "logs" / "operator.log",
                extra_env={"MODELRELEASE_ALLOWED_TRACKING_URIS": "http://127.0.0.1:"},
            )
            operator.start()
            try:
                yield OwnStack(info, Cluster(info), Models(info), operator)
            finally:
                operator.stop()
    finally:
        mlflow.set_tracking_uri(global_uri)
        stack.down(directory)
