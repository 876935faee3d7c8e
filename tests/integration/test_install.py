"""Install paths against the sandbox's real kube-apiserver with the real binaries: `helm install|upgrade|
uninstall --wait` and `helm test` into a namespace that enforces the restricted Pod Security Standard,
`kubectl apply --server-side -k manifests/`, and the chart's RBAC enforced for real: the operator run with its
ServiceAccount's token does a whole release, and cannot read Secrets cluster-wide or write a spec.

Pods do not run here (kwok and the sandbox's pod runner report them): the operator's own pod from the chart
and the `helm test` hook pod are admitted, scheduled and reported Running or Succeeded, not executed; the
hook's script is run below as a local process instead."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from integration.helpers import Cluster, Models, Operator, eventually, model_name, ready_on, release_spec
from modelrelease.sandbox.stack import SandboxInfo

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "modelrelease-operator"
CRD_NAME = "modelreleases.modelrelease.io"
RELEASE = "mr-install"
NAMESPACE = "mr-install"
FULLNAME = f"{RELEASE}-modelrelease-operator"

Kubectl = Callable[..., "subprocess.CompletedProcess[str]"]


@pytest.fixture(scope="module")
def sandbox_helm(helm: str, sandbox: SandboxInfo) -> Callable[..., subprocess.CompletedProcess[str]]:
    helm_home = sandbox.dir / "helm"

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        env = {
            **os.environ,
            **sandbox.env,
            "HELM_CONFIG_HOME": str(helm_home / "config"),
            "HELM_CACHE_HOME": str(helm_home / "cache"),
            "HELM_DATA_HOME": str(helm_home / "data"),
        }
        return subprocess.run(
            [helm, *args], env=env, capture_output=True, text=True, check=False, timeout=180
        )

    return run


def get_json(run_kubectl: Kubectl, sandbox: SandboxInfo, *args: str) -> dict[str, Any]:
    result = run_kubectl(sandbox, "get", *args, "-o", "json")
    assert result.returncode == 0, result.stderr
    loaded: dict[str, Any] = json.loads(result.stdout)
    return loaded


def exists(run_kubectl: Kubectl, sandbox: SandboxInfo, *args: str) -> bool:
    result = run_kubectl(sandbox, "get", *args, "-o", "name")
    if result.returncode != 0:
        assert "NotFound" in result.stderr, result.stderr
    return result.returncode == 0


def restricted_namespace(run_kubectl: Kubectl, sandbox: SandboxInfo, name: str) -> None:
    """A namespace whose pods the API server's PodSecurity admission holds to the restricted standard."""
    if not exists(run_kubectl, sandbox, "namespace", name):
        created = run_kubectl(sandbox, "create", "namespace", name)
        assert created.returncode == 0, created.stderr
    labelled = run_kubectl(
        sandbox, "label", "--overwrite", "namespace", name, "pod-security.kubernetes.io/enforce=restricted"
    )
    assert labelled.returncode == 0, labelled.stderr


def test_helm_install_upgrade_uninstall(
    sandbox_helm: Callable[..., subprocess.CompletedProcess[str]], sandbox: SandboxInfo, run_kubectl: Kubectl
) -> None:
    restricted_namespace(run_kubectl, sandbox, NAMESPACE)
    # Another test may have applied the CRD from crds/ already: the chart adopts it instead of failing.
    installed = sandbox_helm(
        "install", RELEASE, str(CHART), "--namespace", NAMESPACE, "--take-ownership",
        "--wait", "--timeout", "90s",
    )  # fmt: skip
    assert installed.returncode == 0, installed.stderr
    status = json.loads(sandbox_helm("status", RELEASE, "--namespace", NAMESPACE, "--output", "json").stdout)
    assert status["info"]["status"] == "deployed"
    # The hook pod passes the restricted admission and completes; helm waits for it and deletes it.
    tested = sandbox_helm("test", RELEASE, "--namespace", NAMESPACE, "--timeout", "60s")
    assert tested.returncode == 0, tested.stderr
    assert "Phase:          Succeeded" in tested.stdout, tested.stdout
    assert not exists(run_kubectl, sandbox, "pod", f"{FULLNAME}-test", "-n", NAMESPACE)

    crd = get_json(run_kubectl, sandbox, "crd", CRD_NAME)
    assert crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert crd["metadata"]["labels"]["app.kubernetes.io/instance"] == RELEASE
    deployment = get_json(run_kubectl, sandbox, "deployment", FULLNAME, "-n", NAMESPACE)
    assert deployment["spec"]["strategy"]["type"] == "Recreate"
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True
    assert deployment["status"]["readyReplicas"] == 1  # --wait returned on a rolled-out Deployment
    for kind, name in (("serviceaccount", FULLNAME), ("service", f"{FULLNAME}-metrics")):
        assert exists(run_kubectl, sandbox, kind, name, "-n", NAMESPACE)
    cluster_role = get_json(run_kubectl, sandbox, "clusterrole", FULLNAME)
    assert any("secrets" in rule["resources"] for rule in cluster_role["rules"])

    # Narrow the operator to two namespaces: Roles appear there, the ClusterRole keeps only the CRD read.
    for watched in ("mr-install-a", "mr-install-b"):
        if not exists(run_kubectl, sandbox, "namespace", watched):
            created = run_kubectl(sandbox, "create", "namespace", watched)
            assert created.returncode == 0, created.stderr
    upgraded = sandbox_helm(
        "upgrade", RELEASE, str(CHART), "--namespace", NAMESPACE, "--wait", "--timeout", "90s",
        "--set-json", 'watchNamespaces=["mr-install-a","mr-install-b"]',
    )  # fmt: skip
    assert upgraded.returncode == 0, upgraded.stderr
    for watched in ("mr-install-a", "mr-install-b"):
        role = get_json(run_kubectl, sandbox, "role", FULLNAME, "-n", watched)
        assert any("secrets" in rule["resources"] for rule in role["rules"])
        assert exists(run_kubectl, sandbox, "rolebinding", FULLNAME, "-n", watched)
    cluster_role = get_json(run_kubectl, sandbox, "clusterrole", FULLNAME)
    assert [rule["resources"] for rule in cluster_role["rules"]] == [["customresourcedefinitions"]]
    deployment = get_json(run_kubectl, sandbox, "deployment", FULLNAME, "-n", NAMESPACE)
    env = {
        item["name"]: item.get("value")
        for item in deployment["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["MODELRELEASE_NAMESPACES"] == "mr-install-a,mr-install-b"

    uninstalled = sandbox_helm("uninstall", RELEASE, "--namespace", NAMESPACE, "--wait", "--timeout", "90s")
    assert uninstalled.returncode == 0, uninstalled.stderr
    assert not exists(run_kubectl, sandbox, "deployment", FULLNAME, "-n", NAMESPACE)
    assert not exists(run_kubectl, sandbox, "clusterrole", FULLNAME)
    assert not exists(run_kubectl, sandbox, "role", FULLNAME, "-n", "mr-install-a")
    # crds.keep: the CRD, and every ModelRelease with it, outlives the release.
    assert exists(run_kubectl, sandbox, "crd", CRD_NAME)


def test_values_schema_is_enforced_on_install(
    sandbox_helm: Callable[..., subprocess.CompletedProcess[str]], sandbox: SandboxInfo, run_kubectl: Kubectl
) -> None:
    refused = sandbox_helm(
        "install", "mr-bad-values", str(CHART), "--namespace", NAMESPACE, "--create-namespace",
        "--set", "crds.install=maybe",
    )  # fmt: skip
    assert refused.returncode != 0
    assert "at '/crds/install'" in refused.stderr
    assert not exists(
        run_kubectl, sandbox, "deployment", "mr-bad-values-modelrelease-operator", "-n", NAMESPACE
    )


def test_kubectl_apply_kustomize_base(sandbox: SandboxInfo, run_kubectl: Kubectl) -> None:
    # The CRD may have been kept by an earlier `helm uninstall` (crds.keep): Helm owns its labels, so taking
    # it over from kubectl needs --force-conflicts, as the README says for moving between install paths.
    apply = ("apply", "--server-side", "--force-conflicts", "--field-manager", "kubectl-test",
             "-k", str(ROOT / "manifests"))  # fmt: skip
    applied = run_kubectl(sandbox, *apply)
    assert applied.returncode == 0, applied.stderr
    expected = [doc for path in ("operator.yaml", "namespace.yaml") for doc in
                yaml.safe_load_all((ROOT / "manifests" / path).read_text()) if doc]  # fmt: skip
    for obj, args in zip(expected, applied_objects(expected), strict=True):
        live = get_json(run_kubectl, sandbox, *args)
        # The server may add labels of its own (kubernetes.io/metadata.name on a Namespace).
        assert obj["metadata"]["labels"].items() <= live["metadata"]["labels"].items(), args
    deployment = get_json(
        run_kubectl, sandbox, "deployment", "modelrelease-operator", "-n", "modelrelease-system"
    )
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert deployment["spec"]["strategy"]["type"] == "Recreate"

    # A second apply changes nothing: the base is stable under the server's defaulting. (Objects are compared
    # without status and write bookkeeping: controllers write status, e.g. the admission policy's type check.)
    before = {
        tuple(args): settled(get_json(run_kubectl, sandbox, *args)) for args in applied_objects(expected)
    }
    again = run_kubectl(sandbox, *apply)
    assert again.returncode == 0, again.stderr
    for key, obj in before.items():
        assert settled(get_json(run_kubectl, sandbox, *key)) == obj, key

    # Remove the operator again but keep the CRD: other tests share this API server and its ModelReleases.
    deleted = run_kubectl(sandbox, "delete", "-f", str(ROOT / "manifests" / "operator.yaml"), "--wait=true")
    assert deleted.returncode == 0, deleted.stderr
    assert not exists(
        run_kubectl, sandbox, "deployment", "modelrelease-operator", "-n", "modelrelease-system"
    )


def settled(obj: dict[str, Any]) -> dict[str, Any]:
    """An object without its status and the metadata every write changes."""
    volatile = ("resourceVersion", "managedFields", "generation")
    metadata = {k: v for k, v in obj["metadata"].items() if k not in volatile}
    return {**{k: v for k, v in obj.items() if k != "status"}, "metadata": metadata}


def applied_objects(objects: list[dict[str, Any]]) -> list[list[str]]:
    """`kubectl get` arguments naming each object."""
    named = []
    for obj in objects:
        namespace = obj["metadata"].get("namespace")
        named.append(
            [obj["kind"].lower(), obj["metadata"]["name"], *(["-n", namespace] if namespace else [])]
        )
    return named


def hook_pod(sandbox_helm: Callable[..., subprocess.CompletedProcess[str]]) -> dict[str, Any]:
    rendered = sandbox_helm("template", RELEASE, str(CHART), "--namespace", NAMESPACE, "--show-only",
                    "templates/tests/test-operator.yaml")  # fmt: skip
    assert rendered.returncode == 0, rendered.stderr
    pod: dict[str, Any] = yaml.safe_load(rendered.stdout)
    return pod


def run_hook_script(
    pod: dict[str, Any], sandbox: SandboxInfo, metrics_url: str, timeout: str
) -> subprocess.CompletedProcess[str]:
    """The `helm test` pod's own script, run here with the sandbox kubeconfig instead of a service account."""
    (container,) = pod["spec"]["containers"]
    assert container["command"][:2] == ["python", "-c"]
    env = {**os.environ, **sandbox.env, "METRICS_URL": metrics_url, "TIMEOUT_SECONDS": timeout}
    return subprocess.run(
        [sys.executable, "-c", container["command"][2]], env=env, capture_output=True, text=True, timeout=120
    )


def test_helm_test_hook_passes_against_the_running_operator(
    sandbox_helm: Callable[..., subprocess.CompletedProcess[str]], sandbox: SandboxInfo, operator: Operator
) -> None:
    url = f"http://127.0.0.1:{operator.metrics_port}/metrics"
    result = run_hook_script(hook_pod(sandbox_helm), sandbox, url, "30")
    assert result.returncode == 0, result.stderr
    assert f"CRD established; operator answers at {url}" in result.stdout


def test_helm_test_hook_fails_when_the_operator_does_not_answer(
    sandbox_helm: Callable[..., subprocess.CompletedProcess[str]], sandbox: SandboxInfo, operator: Operator
) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}/metrics"
    result = run_hook_script(hook_pod(sandbox_helm), sandbox, url, "1")
    assert result.returncode != 0
    assert f"operator does not answer at {url}" in result.stderr


RBAC_RELEASE = "mr-rbac"
RBAC_NAMESPACE = "mr-rbac"
RBAC_SERVICE_ACCOUNT = f"{RBAC_RELEASE}-modelrelease-operator"


def service_account_kubeconfig(sandbox: SandboxInfo, run_kubectl: Kubectl, path: Path) -> Path:
    """A kubeconfig that authenticates as the chart's ServiceAccount with a token the API server issued."""
    token = run_kubectl(
        sandbox, "create", "token", RBAC_SERVICE_ACCOUNT, "-n", RBAC_NAMESPACE, "--duration=1h"
    )
    assert token.returncode == 0, token.stderr
    admin = json.loads(sandbox.kubeconfig.read_text())
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": admin["clusters"],
        "users": [{"name": "operator", "user": {"token": token.stdout.strip()}}],
        "contexts": [{"name": "operator", "context": {"cluster": "sandbox", "user": "operator"}}],
        "current-context": "operator",
    }
    path.write_text(json.dumps(config))
    return path


def test_the_charts_rbac_lets_the_operator_do_its_whole_job_and_no_more(
    sandbox_helm: Callable[..., subprocess.CompletedProcess[str]],
    sandbox: SandboxInfo,
    run_kubectl: Kubectl,
    cluster: Cluster,
    models: Models,
    operator: Operator,
    ns: str,
    tmp_path: Path,
) -> None:
    restricted_namespace(run_kubectl, sandbox, RBAC_NAMESPACE)
    installed = sandbox_helm(
        "install", RBAC_RELEASE, str(CHART), "--namespace", RBAC_NAMESPACE, "--set", "crds.install=false",
        "--wait", "--timeout", "90s",
    )  # fmt: skip
    assert installed.returncode == 0, installed.stderr
    kubeconfig = service_account_kubeconfig(sandbox, run_kubectl, tmp_path / "operator.kubeconfig")

    def can(*args: str) -> str:
        answer = run_kubectl(sandbox, "--kubeconfig", str(kubeconfig), "auth", "can-i", *args)
        return answer.stdout.strip()

    assert can("list", "secrets", "--all-namespaces") == "no"
    assert can("watch", "secrets", "-n", ns) == "no"
    assert can("get", "secrets", "-n", ns) == "yes"  # one named credentials Secret at a time
    assert can("delete", "modelreleases", "-n", ns) == "no"
    assert can("patch", "deployments", "-n", ns) == "yes"

    model = model_name("rbac")
    version = models.register(model)
    models.move_alias(model, version)
    # The session's operator (cluster-admin) steps aside; the one with the chart's token does the release.
    operator.stop()
    restricted = Operator(
        sandbox, sandbox.dir / "logs" / "operator-rbac.log", extra_env={"KUBECONFIG": str(kubeconfig)}
    )
    restricted.start()
    try:
        cluster.apply_release(ns, "fraud", release_spec(model))
        eventually(
            "the release served by the restricted operator",
            lambda: ready_on(cluster, ns, "fraud", model, version),
        )
        # Writing a spec is refused by the chart's admission policy, even though RBAC allows the patch.
        refused = run_kubectl(
            sandbox, "--kubeconfig", str(kubeconfig), "-n", ns, "patch", "modelrelease", "fraud",
            "--type=merge", "-p", '{"spec":{"model":{"version":"1","alias":null}}}',
        )  # fmt: skip
        assert refused.returncode != 0
        assert "the modelrelease operator never writes a ModelRelease's spec" in refused.stderr
        annotated = run_kubectl(
            sandbox, "--kubeconfig", str(kubeconfig), "-n", ns, "annotate", "modelrelease", "fraud", "probe=1"
        )
        assert annotated.returncode == 0, annotated.stderr  # metadata stays writable
    finally:
        restricted.stop()
        operator.start()
        sandbox_helm("uninstall", RBAC_RELEASE, "--namespace", RBAC_NAMESPACE, "--wait", "--timeout", "90s")
    log = restricted.log.read_text()
    assert "Forbidden" not in log and " 403" not in log, "the restricted operator was refused something"
