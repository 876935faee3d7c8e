"""Release scenarios against any cluster: pin and serve, alias move, a metric gate that blocks, an
unloadable version rolled back, and the operator never writing spec.

Where it runs:
- MODELRELEASE_E2E_KUBECONFIG names a kubeconfig, or a kind cluster named KIND_CLUSTER_NAME (default
  modelrelease-e2e) exists: that cluster, with the chart installed (tests/e2e/run-kind.sh, `make e2e`, sets
  one up) and MLflow as the Service `mlflow` in MODELRELEASE_E2E_MLFLOW_NAMESPACE (default mlflow-e2e);
- otherwise (as in CI): the sandbox's real control plane, with the operator as a local process and the
  sandbox's MLflow. Pods do not run there (kwok and the sandbox's pod runner report them), so the unloadable
  version's crash is injected with the `sandbox-faults` ConfigMap instead of happening for real.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from modelrelease.sandbox import binaries
from modelrelease.sandbox.kubelet import FAULTS_CONFIGMAP, fault_key
from modelrelease.sandbox.stack import SandboxInfo

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

OPERATOR_NAMESPACE = os.environ.get("MODELRELEASE_E2E_OPERATOR_NAMESPACE", "modelrelease-system")
MLFLOW_NAMESPACE = os.environ.get("MODELRELEASE_E2E_MLFLOW_NAMESPACE", "mlflow-e2e")


def _kubectl_binary() -> str:
    try:
        return str(binaries.locate("kubectl"))  # the one built with the control plane
    except binaries.BinaryError:
        return "kubectl"


KUBECTL = _kubectl_binary()
SANDBOX_PROGRESS_DEADLINE_S = 15  # simulated pods fail at once: no need to wait kind's 90 s


@dataclass(frozen=True)
class Cluster:
    kubeconfig: Path
    sandbox_mlflow: str | None = None
    """The sandbox's MLflow when the suite runs on the sandbox, else None (a cluster with the chart)."""

    def kubectl(
        self, *args: str, stdin: str | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [KUBECTL, "--kubeconfig", str(self.kubeconfig), *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def get(self, *args: str) -> dict[str, Any] | None:
        result = self.kubectl("get", *args, "-o", "json")
        if result.returncode != 0:
            assert "NotFound" in result.stderr, result.stderr
            return None
        loaded: dict[str, Any] = json.loads(result.stdout)
        return loaded

    def apply(self, manifest: dict[str, Any]) -> None:
        result = self.kubectl("apply", "-f", "-", stdin=json.dumps(manifest))
        assert result.returncode == 0, result.stderr


def _kubeconfig(tmp: Path) -> tuple[Path | None, str]:
    named = os.environ.get("MODELRELEASE_E2E_KUBECONFIG")
    if named:
        path = Path(named)
        return (path, "") if path.is_file() else (None, f"MODELRELEASE_E2E_KUBECONFIG={named} is not a file")
    kind = shutil.which("kind")
    if kind is None:
        return None, ""
    name = os.environ.get("KIND_CLUSTER_NAME", "modelrelease-e2e")
    result = subprocess.run(
        [kind, "get", "kubeconfig", "--name", name], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        return None, ""
    path = tmp / "kubeconfig"
    path.write_text(result.stdout)
    return path, ""


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Cluster:
    path, reason = _kubeconfig(tmp_path_factory.mktemp("e2e"))
    if reason:
        pytest.skip(reason)
    if path is None:  # no cluster of the user's: the sandbox, and the session's operator process
        sandbox: SandboxInfo = request.getfixturevalue("sandbox")
        request.getfixturevalue("operator")
        return Cluster(sandbox.kubeconfig, sandbox_mlflow=sandbox.mlflow_url)
    found = Cluster(path)
    version = found.kubectl("version", "-o", "json", timeout=20)
    if version.returncode != 0:
        pytest.skip(f"cluster in {path} is not reachable: {version.stderr.strip().splitlines()[-1:]}")
    operator = found.get(
        "deployment", "-n", OPERATOR_NAMESPACE, "-l", "app.kubernetes.io/name=modelrelease-operator"
    )
    if not operator or not any(item.get("status", {}).get("readyReplicas") for item in operator["items"]):
        pytest.skip(
            f"no ready modelrelease-operator in namespace {OPERATOR_NAMESPACE}: run tests/e2e/run-kind.sh"
        )
    return found


@pytest.fixture(scope="session")
def tracking_uri(cluster: Cluster) -> Iterator[str]:
    """The sandbox's MLflow, or the in-cluster one reached through `kubectl port-forward` on a local port."""
    if cluster.sandbox_mlflow is not None:
        yield cluster.sandbox_mlflow
        return
    process = subprocess.Popen(
        [KUBECTL, "--kubeconfig", str(cluster.kubeconfig), "port-forward", "-n", MLFLOW_NAMESPACE,
         "service/mlflow", "0:5000"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        line = process.stdout.readline()  # "Forwarding from 127.0.0.1:NNNNN -> 5000", or an error and EOF
        match = re.search(r"127\.0\.0\.1:(\d+)", line)
        assert match, f"kubectl port-forward failed: {line}"
        yield f"http://127.0.0.1:{match.group(1)}"
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def namespace(cluster: Cluster) -> Iterator[str]:
    name = f"e2e-{uuid.uuid4().hex[:8]}"
    created = cluster.kubectl("create", "namespace", name)
    assert created.returncode == 0, created.stderr
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false")


ROLLOUT_TIMEOUT = 300.0  # image is loaded into kind; MLflow serving cold start is about 10 s per pod


def wait_for(what: str, probe: Callable[[], Any], timeout: float = ROLLOUT_TIMEOUT) -> Any:
    """Poll `probe()` until it returns something truthy; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(2)  # poll interval, not a synchronisation guess: the deadline bounds the wait
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}; last seen: {last!r}")


def register(tracking_uri: str, name: str, f1: float, *, loadable: bool = True) -> str:
    """Log and register one version of `name` whose run records metric f1; return its version number.

    An unloadable version is a pyfunc model whose loader module does not exist: `mlflow models serve` fails
    to load it in the serving pod, so the rollout never becomes ready."""
    # Imported here so that collecting (and skipping) this suite stays fast without a cluster.
    import mlflow
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    mlflow.set_tracking_uri(tracking_uri)
    features = np.array([[0.0, 1.0], [1.0, 0.0], [0.2, 0.9], [0.9, 0.1]])
    labels = np.array([0, 1, 0, 1])
    with mlflow.start_run(), tempfile.TemporaryDirectory() as scratch:
        mlflow.log_metric("f1", f1)
        if loadable:
            model = LogisticRegression().fit(features, labels)
            info = mlflow.sklearn.log_model(
                model, name="model", input_example=features[:1], registered_model_name=name
            )
        else:
            data = Path(scratch) / "weights.txt"
            data.write_text("not a model")
            info = mlflow.pyfunc.log_model(
                name="model",
                loader_module="e2e_missing_loader",
                data_path=str(data),
                registered_model_name=name,
            )
    version = str(info.registered_model_version)
    client = mlflow.MlflowClient(tracking_uri)
    wait_for(
        f"{name} v{version} READY", lambda: client.get_model_version(name, version).status == "READY", 60.0
    )
    return version


def stamp(tracking_uri: str, name: str, version: str) -> str:
    """`modelrelease stamp`, as a model's publisher runs it: the digest goes into the version's tag."""
    command = [str(Path(sys.executable).parent / "modelrelease"), "stamp", name, version]
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri}
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().rsplit("=", 1)[-1]  # "<name> version <N>: <tag>=sha256:<hex>"


def set_alias(tracking_uri: str, name: str, version: str) -> None:
    import mlflow

    mlflow.MlflowClient(tracking_uri).set_registered_model_alias(name, "champion", version)


def release(
    cluster: Cluster, namespace: str, name: str, model: dict[str, Any], **spec: Any
) -> dict[str, Any]:
    deadline = 90 if cluster.sandbox_mlflow is None else SANDBOX_PROGRESS_DEADLINE_S
    rollout: dict[str, Any] = {"progressDeadlineSeconds": deadline}
    if cluster.sandbox_mlflow is not None:
        # The sandbox's pods here are simulated: no server listens on their IPs, so there is nothing to
        # send the logged input example to (and the network rule forbids trying). On a cluster it is sent.
        rollout["smokeTest"] = "Off"
    return {
        "apiVersion": "modelrelease.io/v1alpha1",
        "kind": "ModelRelease",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "model": model,
            "registry": {"pollInterval": "5s"},
            "serving": {"replicas": 1},
            "rollout": rollout,
            **spec,
        },
    }


def current_version(cluster: Cluster, namespace: str, name: str) -> str | None:
    obj = cluster.get("modelrelease", name, "-n", namespace)
    return ((obj or {}).get("status", {}).get("current") or {}).get("version")


def condition(obj: dict[str, Any], kind: str) -> dict[str, Any]:
    found = [c for c in obj.get("status", {}).get("conditions", []) if c["type"] == kind]
    return found[0] if found else {}


def serving_uri(cluster: Cluster, namespace: str, name: str) -> str | None:
    deployment = cluster.get("deployment", name, "-n", namespace)
    if deployment is None:
        return None
    env = deployment["spec"]["template"]["spec"]["containers"][0]["env"]
    return next((item["value"] for item in env if item["name"] == "MODEL_URI"), None)


def ready_and_observed(cluster: Cluster, namespace: str, name: str) -> dict[str, Any] | None:
    obj = cluster.get("modelrelease", name, "-n", namespace)
    if obj is None or obj.get("status", {}).get("observedGeneration") != obj["metadata"]["generation"]:
        return None
    return obj if condition(obj, "Ready").get("status") == "True" else None


def contains(live: Any, applied: Any) -> bool:
    if isinstance(applied, dict):
        return isinstance(live, dict) and all(k in live and contains(live[k], v) for k, v in applied.items())
    return bool(live == applied)


def assert_spec_untouched(cluster: Cluster, applied: dict[str, Any]) -> None:
    """Argo CD sees no drift: the spec is what was applied, and no manager but kubectl owns a spec field."""
    live = cluster.get("modelrelease", applied["metadata"]["name"], "-n", applied["metadata"]["namespace"])
    assert live is not None
    assert contains(live["spec"], applied["spec"]), (live["spec"], applied["spec"])  # plus the CRD's defaults
    for entry in live["metadata"].get("managedFields", []):
        if not entry["manager"].startswith("kubectl"):
            assert "f:spec" not in entry.get("fieldsV1", {}), entry["manager"]


def test_pinned_release_serves_and_follows_the_alias(
    cluster: Cluster, namespace: str, tracking_uri: str
) -> None:
    model = f"e2e-{uuid.uuid4().hex[:6]}"
    first = register(tracking_uri, model, f1=0.9)
    second = register(tracking_uri, model, f1=0.91)
    # Digest verification stays on (Enforce, the default): both versions carry their stamped digest.
    digests = {version: stamp(tracking_uri, model, version) for version in (first, second)}
    set_alias(tracking_uri, model, first)
    applied = release(cluster, namespace, "fraud", {"name": model, "alias": "champion"})
    cluster.apply(applied)

    obj = wait_for("release Ready", lambda: ready_and_observed(cluster, namespace, "fraud"))
    assert obj["status"]["current"]["version"] == first
    assert obj["status"]["resolved"]["digest"] == digests[first]
    digest_check = [entry for entry in obj["status"]["verification"] if entry["check"] == "Digest"]
    assert [entry["outcome"] for entry in digest_check] == ["Passed"]
    smoke = {entry["check"]: entry for entry in obj["status"]["verification"]}["SmokeTest"]
    # On a cluster the operator sent the logged input example to the new pod's IP (sandbox pods: simulated).
    assert smoke["outcome"] == ("Skipped" if cluster.sandbox_mlflow is not None else "Passed"), smoke
    assert serving_uri(cluster, namespace, "fraud") == f"models:/{model}/{first}"
    deployment = cluster.get("deployment", "fraud", "-n", namespace)
    assert deployment is not None
    (owner,) = deployment["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["uid"]) == ("ModelRelease", "fraud", obj["metadata"]["uid"])
    assert owner.get("controller") is True

    set_alias(tracking_uri, model, second)
    wait_for(f"alias move to v{second}", lambda: current_version(cluster, namespace, "fraud") == second)
    assert serving_uri(cluster, namespace, "fraud") == f"models:/{model}/{second}"
    history = (cluster.get("modelrelease", "fraud", "-n", namespace) or {})["status"]["history"]
    assert [(entry["version"], entry["outcome"]) for entry in history[-2:]] == [
        (first, "Succeeded"),
        (second, "Succeeded"),
    ]
    assert_spec_untouched(cluster, applied)


def test_metric_gate_blocks_and_the_previous_version_keeps_serving(
    cluster: Cluster, namespace: str, tracking_uri: str
) -> None:
    model = f"e2e-{uuid.uuid4().hex[:6]}"
    good = register(tracking_uri, model, f1=0.9)
    weak = register(tracking_uri, model, f1=0.5)
    set_alias(tracking_uri, model, good)
    applied = release(
        cluster,
        namespace,
        "gated",
        {"name": model, "alias": "champion"},
        verify={"metrics": [{"name": "f1", "min": 0.78}], "digest": "Off"},
    )
    cluster.apply(applied)
    wait_for("release Ready", lambda: ready_and_observed(cluster, namespace, "gated"))

    set_alias(tracking_uri, model, weak)

    def blocked() -> dict[str, Any] | None:
        obj = cluster.get("modelrelease", "gated", "-n", namespace)
        return obj if obj and obj.get("status", {}).get("phase") == "Blocked" else None

    obj = wait_for(f"v{weak} blocked by the f1 gate", blocked)
    assert condition(obj, "Verified")["status"] == "False"
    assert obj["status"]["current"]["version"] == good
    assert serving_uri(cluster, namespace, "gated") == f"models:/{model}/{good}"
    assert obj["status"]["history"][-1]["outcome"] == "Blocked"
    assert_spec_untouched(cluster, applied)


def test_unloadable_version_is_rolled_back(cluster: Cluster, namespace: str, tracking_uri: str) -> None:
    model = f"e2e-{uuid.uuid4().hex[:6]}"
    good = register(tracking_uri, model, f1=0.9)
    broken = register(tracking_uri, model, f1=0.9, loadable=False)
    applied = release(
        cluster,
        namespace,
        "rollback",
        {"name": model, "version": good},
        verify={"schema": "Off", "digest": "Off"},
    )
    cluster.apply(applied)
    wait_for("release Ready", lambda: ready_and_observed(cluster, namespace, "rollback"))

    if cluster.sandbox_mlflow is not None:  # no pod runs the model there: its crash is injected
        faults = cluster.kubectl(
            "-n", namespace, "create", "configmap", FAULTS_CONFIGMAP,
            f"--from-literal={fault_key(f'models:/{model}/{broken}')}=crashloop",
        )  # fmt: skip
        assert faults.returncode == 0, faults.stderr
    applied["spec"]["model"] = {"name": model, "version": broken}
    cluster.apply(applied)

    def rolled_back() -> dict[str, Any] | None:
        obj = cluster.get("modelrelease", "rollback", "-n", namespace)
        history = (obj or {}).get("status", {}).get("history", [])
        return obj if history and history[-1]["version"] == broken and history[-1].get("outcome") else None

    obj = wait_for(f"v{broken} to fail and roll back", rolled_back, timeout=ROLLOUT_TIMEOUT + 90)
    assert obj["status"]["history"][-1]["outcome"] == "RolledBack"
    assert condition(obj, "Degraded")["status"] == "True"
    assert obj["status"]["current"]["version"] == good
    wait_for(
        "the good version serving again",
        lambda: serving_uri(cluster, namespace, "rollback") == f"models:/{model}/{good}",
    )
    assert_spec_untouched(cluster, applied)
