"""Fixtures of the operator integration tests: one operator process, one model registrar, shared by
every tests/integration/test_operator_*.py module (they share the session's sandbox too)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from helpers import CRD, Cluster, Models, Operator

from modelrelease.sandbox.stack import SandboxInfo, install_crd


@pytest.fixture(scope="session")
def cluster(sandbox: SandboxInfo) -> Cluster:
    """The sandbox's API (official client), with the ModelRelease CRD installed by the real kubectl."""
    install_crd(sandbox, CRD)
    return Cluster(sandbox)


@pytest.fixture(scope="session")
def models(sandbox: SandboxInfo) -> Iterator[Models]:
    """Real scikit-learn models registered in the sandbox's MLflow (client env set in this process)."""
    with pytest.MonkeyPatch.context() as patch:
        for key, value in sandbox.env.items():
            patch.setenv(key, value)
        # The blocking MLflow client used to set up fixtures must fail fast, not retry for minutes.
        patch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
        patch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "60")
        yield Models(sandbox)


@pytest.fixture
def ns(cluster: Cluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace for one test; its ModelReleases are deleted afterwards (fewer pollers)."""
    prefix = request.node.name.removeprefix("test_").replace("_", "-")[:20].strip("-")
    namespace = cluster.namespace(prefix)
    yield namespace
    cluster.delete_releases(namespace)


@pytest.fixture(scope="session")
def operator(sandbox: SandboxInfo, cluster: Cluster) -> Iterator[Operator]:
    """The real operator process (`modelrelease run`), watching every namespace of the sandbox."""
    process = Operator(
        sandbox,
        sandbox.dir / "logs" / "operator.log",
        extra_env={"MODELRELEASE_ALLOWED_TRACKING_URIS": "http://127.0.0.1:"},
    )
    process.start()
    try:
        yield process
    finally:
        process.stop()
