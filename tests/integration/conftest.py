"""Fixtures of the operator integration tests: the cluster client and one model registrar, shared by every
tests/integration module (they share the session's sandbox and operator, tests/conftest.py, too)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from integration.helpers import CRD, Cluster, Models
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
