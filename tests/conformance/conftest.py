"""Fixtures for the emulator conformance suite: one emulator process per session, real clients only."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Callable, Iterator

import pytest
from emu_support import HERE, KUBECTL, Emulator, start_emulator, stop_emulator, write_kubeconfig
from kubernetes import client


@pytest.fixture(scope="session")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    workdir = tmp_path_factory.mktemp("emulator")
    proc, url = start_emulator(workdir, "--bookmark-interval", "1")
    kubeconfig = workdir / "kubeconfig"
    write_kubeconfig(kubeconfig, url)
    env = {
        **os.environ,
        "KUBECONFIG": str(kubeconfig),
        "KUBECACHEDIR": str(workdir / "kube-cache"),
        "HELM_CACHE_HOME": str(workdir / "helm-cache"),
        "HELM_CONFIG_HOME": str(workdir / "helm-config"),
        "HELM_DATA_HOME": str(workdir / "helm-data"),
    }
    yield Emulator(url, kubeconfig, env)
    stop_emulator(proc)


@pytest.fixture(scope="session")
def kubectl(emulator: Emulator) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run the real kubectl against the emulator: kubectl("get", "ns", check=False, input=...)."""

    def run(
        *args: str,
        check: bool = True,
        input: str | None = None,
        timeout: float = 30,
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [KUBECTL, *args], env=emulator.env, capture_output=True, text=True, input=input, timeout=timeout
        )
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {result.stderr}")
        return result

    return run


@pytest.fixture(scope="session")
def api(emulator: Emulator) -> Iterator[client.ApiClient]:
    """The official kubernetes client, configured for the emulator."""
    config = client.Configuration(host=emulator.url)
    with client.ApiClient(config) as api_client:
        yield api_client


@pytest.fixture(scope="session")
def test_crds(kubectl: Callable[..., subprocess.CompletedProcess[str]]) -> None:
    """widgets.example.com (namespaced, status subresource) and gadgets.example.com (cluster scoped)."""
    kubectl("apply", "-f", str(HERE / "widgets-crd.yaml"))
    kubectl(
        "wait",
        "--for=condition=Established",
        "crd/widgets.example.com",
        "crd/gadgets.example.com",
        "--timeout=10s",
    )


@pytest.fixture
def namespace(api: client.ApiClient) -> Iterator[str]:
    """A fresh namespace per test, deleted afterwards."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    core = client.CoreV1Api(api)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    core.delete_namespace(name)
