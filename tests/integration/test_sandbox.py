"""`modelrelease sandbox up|down`, driven as a user would: the CLI, then a shell that sources DIR/env.

The control plane is the real one (etcd, kube-apiserver, kube-controller-manager, kube-scheduler at the
pinned version; kwok for the node): its version, TLS and RBAC, the node Ready with a loopback podCIDR, CRDs
applied, `kubectl get mr -A`, an invalid ModelRelease refused naming the field, a healthy Deployment made
Available by the real controllers, crashloop/unready faults carried out through pod status until the real
Deployment controller reports ProgressDeadlineExceeded, garbage collection and namespace deletion, MLflow's
/health with curl, S3 with boto3, and `down` leaving nothing listening — plus two sandboxes side by side, a
second `up` refused, and `up` failing or interrupted cleanly.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from modelrelease.sandbox import binaries
from modelrelease.sandbox.stack import SERVICE_CIDR, SandboxInfo

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "modelrelease.cli"]
COMPONENTS = {
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kwok",
    "kubelet",
    "s3",
    "mlflow",
}
LOOPBACK = ipaddress.IPv4Network("127.0.0.0/8")
LISTENING = COMPONENTS - {"kubelet"}  # the pod runner only talks to the API server


@dataclass(frozen=True)
class Sandbox:
    dir: Path
    up_seconds: float


def cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 240
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], capture_output=True, text=True, timeout=timeout, env=env, check=False, cwd=REPO
    )


def sh(
    sandbox: Sandbox, command: str, stdin: str | None = None, timeout: float = 90
) -> subprocess.CompletedProcess[str]:
    """Run `command` in bash after `source DIR/env`, from the repository root."""
    script = f"source {shlex.quote(str(sandbox.dir / 'env'))} && {command}"
    return subprocess.run(
        ["bash", "-c", script],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
        check=False,
    )


def ports(directory: Path) -> dict[str, int]:
    state = json.loads((directory / "state.json").read_text())
    return {name: c["port"] for name, c in state["components"].items() if "port" in c}


def listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def processes_using(directory: Path) -> list[str]:
    """Live processes whose working directory, command line or environment mentions `directory`."""
    needle = str(directory).encode()
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if (proc / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                continue
            cwd = os.readlink(proc / "cwd")
            cmdline = (proc / "cmdline").read_bytes()
            environ = (proc / "environ").read_bytes()
        except OSError:  # gone meanwhile, or not ours to read
            continue
        if cwd == str(directory) or needle in cmdline or needle in environ:
            found.append(f"{proc.name}: {cmdline.replace(bytes(1), b' ').decode(errors='replace')[:120]}")
    return found


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.2)


def deployment(namespace: str, uri: str, deadline: int = 600) -> str:
    return textwrap.dedent(
        f"""\
        apiVersion: apps/v1
        kind: Deployment
        metadata: {{name: fraud, namespace: {namespace}}}
        spec:
          replicas: 2
          progressDeadlineSeconds: {deadline}
          selector: {{matchLabels: {{app: fraud}}}}
          template:
            metadata: {{labels: {{app: fraud}}}}
            spec:
              containers:
              - name: server
                image: example.invalid/serve:1
                env: [{{name: MODEL_URI, value: "{uri}"}}]
        """
    )


@pytest.fixture(scope="module")
def cli_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    """A sandbox of this module's own, started with the CLI: up and down are what is under test here."""
    directory = tmp_path_factory.mktemp("cli-sandbox")
    started = time.monotonic()
    done = cli("sandbox", "up", "--dir", str(directory))
    up_seconds = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    print(f"\n`modelrelease sandbox up` took {up_seconds:.1f}s")
    try:
        yield Sandbox(directory, up_seconds)
    finally:
        if (directory / "state.json").exists():
            cli("sandbox", "down", "--dir", str(directory))


def test_up_writes_kubeconfig_env_state_and_logs(
    cli_sandbox: Sandbox, record_property: Callable[[str, object], None]
) -> None:
    record_property("sandbox_up_seconds", round(cli_sandbox.up_seconds, 1))
    exported = sh(cli_sandbox, "env").stdout
    for key in ("KUBECONFIG", "MLFLOW_TRACKING_URI", "MLFLOW_S3_ENDPOINT_URL", "AWS_ACCESS_KEY_ID",
                "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"):  # fmt: skip
        assert f"\n{key}=" in f"\n{exported}", key
    assert f"KUBECONFIG={cli_sandbox.dir / 'kubeconfig'}" in exported
    # MLflow's usage telemetry (to its vendor's hosts) is off for the clients and for the server.
    assert "\nMLFLOW_DISABLE_TELEMETRY=true\n" in f"\n{exported}"
    server = json.loads((cli_sandbox.dir / "state.json").read_text())["components"]["mlflow"]["pid"]
    assert b"MLFLOW_DISABLE_TELEMETRY=true" in Path(f"/proc/{server}/environ").read_bytes().split(b"\0")
    assert set(json.loads((cli_sandbox.dir / "state.json").read_text())["components"]) == COMPONENTS
    assert {p.stem for p in (cli_sandbox.dir / "logs").glob("*.log")} >= COMPONENTS
    assert set(ports(cli_sandbox.dir)) == LISTENING
    assert len(set(ports(cli_sandbox.dir).values())) == len(LISTENING)


def test_the_control_plane_is_the_pinned_kubernetes_with_tls_and_rbac(cli_sandbox: Sandbox) -> None:
    version = sh(cli_sandbox, "kubectl version -o json")
    assert version.returncode == 0, version.stderr
    assert json.loads(version.stdout)["serverVersion"]["gitVersion"] == binaries.KUBERNETES.version()
    ready = sh(cli_sandbox, "kubectl get --raw '/readyz?verbose'")
    assert "readyz check passed" in ready.stdout, ready.stdout + ready.stderr
    # Without the sandbox's client certificate the API server does not answer, and RBAC is in force.
    server = json.loads((cli_sandbox.dir / "kubeconfig").read_text())["clusters"][0]["cluster"]["server"]
    assert server.startswith("https://127.0.0.1:")
    anonymous = sh(cli_sandbox, f"curl -sk -o /dev/null -w '%{{http_code}}' {server}/api/v1/secrets")
    assert anonymous.stdout in ("401", "403"), anonymous.stdout
    can = sh(cli_sandbox, "kubectl auth can-i list secrets --as system:serviceaccount:default:default -A")
    assert can.stdout.strip() == "no", can.stdout + can.stderr


def test_the_node_is_ready_with_a_loopback_pod_range(cli_sandbox: Sandbox) -> None:
    nodes = json.loads(sh(cli_sandbox, "kubectl get nodes -o json").stdout)["items"]
    assert len(nodes) == 1
    assert ipaddress.IPv4Network(nodes[0]["spec"]["podCIDR"]).subnet_of(LOOPBACK)
    conditions = {c["type"]: c["status"] for c in nodes[0]["status"]["conditions"]}
    assert conditions["Ready"] == "True"
    assert nodes[0]["status"]["nodeInfo"]["kubeletVersion"].startswith("kwok-")


def test_crds_apply_and_modelreleases_list(cli_sandbox: Sandbox) -> None:
    applied = sh(cli_sandbox, "kubectl apply -f crds/")
    assert applied.returncode == 0, applied.stderr
    assert "modelreleases.modelrelease.io" in applied.stdout
    established = sh(
        cli_sandbox, "kubectl wait --for=condition=Established crd/modelreleases.modelrelease.io"
    )
    assert established.returncode == 0, established.stderr

    listed = sh(cli_sandbox, "kubectl get mr -A")
    assert listed.returncode == 0, listed.stderr
    assert "No resources found" in listed.stdout + listed.stderr


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ("{alias: champion}", "spec.model.name: Required value"),
        ('{name: fraud, version: "7", alias: champion}', "exactly one of spec.model.version"),
    ],
)
def test_invalid_modelrelease_is_refused_naming_the_field(
    cli_sandbox: Sandbox, model: str, message: str
) -> None:
    release = "apiVersion: modelrelease.io/v1alpha1\nkind: ModelRelease\nmetadata: {name: bad}\n"
    release += f"spec:\n  model: {model}\n"
    refused = sh(cli_sandbox, "kubectl apply -f -", stdin=release)
    assert refused.returncode != 0
    assert 'The ModelRelease "bad" is invalid' in refused.stderr  # kubectl's rendering of the 422
    assert message in refused.stderr
    assert "No resources found" in sh(cli_sandbox, "kubectl get mr -A").stderr


def test_healthy_deployment_becomes_available(cli_sandbox: Sandbox) -> None:
    assert sh(cli_sandbox, "kubectl create namespace healthy").returncode == 0
    assert (
        sh(cli_sandbox, "kubectl apply -f -", stdin=deployment("healthy", "models:/fraud/1")).returncode == 0
    )
    waited = sh(cli_sandbox, "kubectl -n healthy wait --for=condition=Available deploy/fraud --timeout=60s")
    assert waited.returncode == 0, waited.stderr
    rolled = sh(cli_sandbox, "kubectl -n healthy rollout status deploy/fraud --timeout=60s")
    assert rolled.returncode == 0, rolled.stderr
    assert "successfully rolled out" in rolled.stdout
    pods = json.loads(sh(cli_sandbox, "kubectl -n healthy get pods -o json").stdout)["items"]
    ips = [p["status"]["podIP"] for p in pods]
    assert len(ips) == 2 and len(set(ips)) == 2
    (node,) = json.loads(sh(cli_sandbox, "kubectl get nodes -o json").stdout)["items"]
    assert all(ipaddress.ip_address(ip) in ipaddress.ip_network(node["spec"]["podCIDR"]) for ip in ips)
    exposed = sh(
        cli_sandbox, "kubectl -n healthy expose deploy/fraud --port 8080 -o jsonpath='{.spec.clusterIP}'"
    )
    assert exposed.returncode == 0, exposed.stderr
    assert ipaddress.ip_address(exposed.stdout) in ipaddress.ip_network(SERVICE_CIDR)


def test_hundreds_of_services_get_cluster_ips(cli_sandbox: Sandbox) -> None:
    """Each managed release has a Service: 300 of them get ClusterIPs (a /24 refused the 254th with HTTP
    500 "range is full"), and the range holds well over the 1,000 that bench/scale.py makes."""
    assert ipaddress.ip_network(SERVICE_CIDR).num_addresses - 2 > 1000
    services = json.dumps({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": f"s{index}"},
         "spec": {"ports": [{"port": 8080}], "selector": {"app": f"s{index}"}}}
        for index in range(300)
    ]})  # fmt: skip
    assert sh(cli_sandbox, "kubectl create namespace services").returncode == 0
    applied = sh(cli_sandbox, "kubectl -n services apply --server-side -f -", stdin=services, timeout=180)
    assert applied.returncode == 0, applied.stderr[-500:]
    listed = json.loads(sh(cli_sandbox, "kubectl -n services get services -o json").stdout)["items"]
    addresses = {service["spec"]["clusterIP"] for service in listed}
    assert len(addresses) == 300
    assert all(ipaddress.ip_address(address) in ipaddress.ip_network(SERVICE_CIDR) for address in addresses)


def test_deleting_a_namespace_collects_everything_in_it(cli_sandbox: Sandbox) -> None:
    # The real namespace controller and garbage collector: Deployment -> ReplicaSet -> pods, all removed.
    assert sh(cli_sandbox, "kubectl create namespace doomed").returncode == 0
    assert (
        sh(cli_sandbox, "kubectl apply -f -", stdin=deployment("doomed", "models:/fraud/1")).returncode == 0
    )
    waited = sh(cli_sandbox, "kubectl -n doomed wait --for=condition=Available deploy/fraud --timeout=60s")
    assert waited.returncode == 0, waited.stderr
    deleted = sh(cli_sandbox, "kubectl delete namespace doomed --wait --timeout=90s", timeout=120)
    assert deleted.returncode == 0, deleted.stderr
    left = sh(cli_sandbox, "kubectl get pods,replicasets -n doomed -o name")
    assert left.stdout.strip() == ""


FAULTS_FILE = """\
apiVersion: v1
kind: ConfigMap
metadata: {name: sandbox-faults, namespace: NS}
data: {"models_fraud_2": crashloop}
"""


@pytest.mark.parametrize(
    ("fault", "create_faults"),
    [
        # A real API server accepts only [-._a-zA-Z0-9] in ConfigMap keys: the URI is spelled fault_key(uri).
        ("crashloop", f"kubectl apply -f - <<'EOF'\n{FAULTS_FILE}EOF"),
        ("unready", "kubectl -n NS create configmap sandbox-faults --from-literal=models_fraud_2=unready"),
    ],
)
def test_faulty_model_exceeds_the_progress_deadline(
    cli_sandbox: Sandbox, fault: str, create_faults: str
) -> None:
    namespace = f"faulty-{fault}"
    assert sh(cli_sandbox, f"kubectl create namespace {namespace}").returncode == 0
    made = sh(cli_sandbox, create_faults.replace("NS", namespace))
    assert made.returncode == 0, made.stderr
    applied = sh(
        cli_sandbox, "kubectl apply -f -", stdin=deployment(namespace, "models:/fraud/2", deadline=3)
    )
    assert applied.returncode == 0, applied.stderr

    if fault == "crashloop":  # the container keeps exiting: the pod runner reports restarts with back-off

        def containers() -> list[dict[str, Any]]:
            pods = json.loads(sh(cli_sandbox, f"kubectl -n {namespace} get pods -o json").stdout)["items"]
            return [c for p in pods for c in (p.get("status") or {}).get("containerStatuses") or []]

        wait_until(
            lambda: len(containers()) == 2 and all(c["restartCount"] >= 2 for c in containers()),
            60,
            "both pods to restart twice",
        )
        assert {c["state"]["waiting"]["reason"] for c in containers()} == {"CrashLoopBackOff"}
    reason = "jsonpath={.status.conditions[?(@.type=='Progressing')].reason}=ProgressDeadlineExceeded"
    waited = sh(
        cli_sandbox, f"kubectl -n {namespace} wait --for={shlex.quote(reason)} deploy/fraud --timeout=60s"
    )
    assert waited.returncode == 0, waited.stderr
    rolled = sh(cli_sandbox, f"kubectl -n {namespace} rollout status deploy/fraud --timeout=30s")
    assert rolled.returncode != 0
    assert "exceeded its progress deadline" in rolled.stderr
    available = sh(
        cli_sandbox, f"kubectl -n {namespace} get deploy fraud -o jsonpath='{{.status.availableReplicas}}'"
    )
    assert available.stdout.strip() in ("", "0")


def test_mlflow_answers_health_with_curl(cli_sandbox: Sandbox) -> None:
    health = sh(cli_sandbox, 'curl -fsS "$MLFLOW_TRACKING_URI/health"')
    assert health.returncode == 0, health.stderr
    assert health.stdout.strip() == "OK"


def test_s3_lists_the_artifact_bucket_with_boto3(cli_sandbox: Sandbox) -> None:
    script = (
        "import boto3, os; s3 = boto3.client('s3', endpoint_url=os.environ['MLFLOW_S3_ENDPOINT_URL']); "
        "print([b['Name'] for b in s3.list_buckets()['Buckets']])"
    )
    listed = sh(cli_sandbox, f"{shlex.quote(sys.executable)} -c {shlex.quote(script)}")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.strip() == "['mlflow-artifacts']"


def test_mlflow_artifacts_are_stored_in_the_s3_bucket(cli_sandbox: Sandbox, tmp_path: Path) -> None:
    (tmp_path / "note.txt").write_text("proxied")
    script = textwrap.dedent(
        f"""\
        import boto3, mlflow, os
        with mlflow.start_run() as run:
            mlflow.log_artifact({str(tmp_path / "note.txt")!r})
        s3 = boto3.client("s3", endpoint_url=os.environ["MLFLOW_S3_ENDPOINT_URL"])
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket="mlflow-artifacts")["Contents"]]
        print(run.info.artifact_uri)
        print(next(k for k in keys if run.info.run_id in k))
        """
    )
    logged = sh(cli_sandbox, f"{shlex.quote(sys.executable)} -c {shlex.quote(script)}", timeout=120)
    assert logged.returncode == 0, logged.stderr
    artifact_uri, key = logged.stdout.strip().splitlines()[-2:]
    assert artifact_uri.startswith("mlflow-artifacts:/")  # the client talks to the server, not to S3
    assert key.endswith("/artifacts/note.txt")


def test_second_up_in_a_running_dir_fails_clearly(cli_sandbox: Sandbox) -> None:
    again = cli("sandbox", "up", "--dir", str(cli_sandbox.dir))
    assert again.returncode == 1
    assert len(again.stderr.strip().splitlines()) == 1
    assert "already running" in again.stderr
    assert all(listening(port) for port in ports(cli_sandbox.dir).values())


def test_two_sandboxes_run_side_by_side(
    cli_sandbox: Sandbox, sandbox: SandboxInfo, run_kubectl: Callable[..., subprocess.CompletedProcess[str]]
) -> None:
    # The session sandbox (tests/conftest.py) runs next to the one this module started with the CLI.
    assert set(ports(sandbox.dir).values()).isdisjoint(ports(cli_sandbox.dir).values())
    assert sh(cli_sandbox, "kubectl create namespace only-in-cli-sandbox").returncode == 0
    assert run_kubectl(sandbox, "get", "namespace", "only-in-cli-sandbox").returncode != 0
    version = run_kubectl(sandbox, "version", "-o", "json")
    assert version.returncode == 0, version.stderr
    assert json.loads(version.stdout)["serverVersion"]["gitVersion"].startswith("v1.")
    with urllib.request.urlopen(f"{sandbox.mlflow_url}/health", timeout=10) as health:
        assert health.read() == b"OK"
    assert sh(cli_sandbox, 'curl -fsS "$MLFLOW_TRACKING_URI/health"').stdout.strip() == "OK"


def test_up_fails_cleanly_when_a_component_cannot_start(tmp_path: Path) -> None:
    # An mlflow that cannot even import: S3 and the control plane are already starting when it dies.
    broken = tmp_path / "broken-site" / "mlflow"
    broken.mkdir(parents=True)
    (broken / "__init__.py").write_text("raise SystemExit('mlflow is broken in this environment')\n")
    directory = tmp_path / "sandbox"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(broken.parent), os.environ.get("PYTHONPATH")])),
    }

    failed = cli("sandbox", "up", "--dir", str(directory), env=env)

    assert failed.returncode == 1
    lines = failed.stderr.strip().splitlines()
    assert len(lines) == 1, failed.stderr
    assert f"mlflow exited with code 1 (log: {directory / 'logs' / 'mlflow.log'})" in lines[0]
    assert "mlflow is broken in this environment" in lines[0]
    assert (directory / "logs" / "s3.log").exists()  # it got that far
    assert not (directory / "state.json").exists()
    assert processes_using(directory) == []


def test_ctrl_c_during_up_leaves_nothing_running(tmp_path: Path) -> None:
    directory = tmp_path / "sandbox"
    up = subprocess.Popen(
        [*CLI, "sandbox", "up", "--dir", str(directory)], cwd=REPO, stderr=subprocess.PIPE, text=True
    )
    try:
        state = directory / "state.json"
        wait_until(lambda: state.exists() and "mlflow" in state.read_text(), 60, "up to start mlflow")
        up.send_signal(signal.SIGINT)
        assert up.wait(timeout=60) == 130
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()
        if up.returncode != 130 and (directory / "state.json").exists():
            cli("sandbox", "down", "--dir", str(directory))  # not interrupted: stop what it started
    assert not (directory / "state.json").exists()
    assert processes_using(directory) == []


def test_down_leaves_nothing_listening(cli_sandbox: Sandbox, sandbox: SandboxInfo) -> None:
    used = ports(cli_sandbox.dir)
    stopped = cli("sandbox", "down", "--dir", str(cli_sandbox.dir))
    assert stopped.returncode == 0, stopped.stderr
    assert [name for name, port in used.items() if listening(port)] == []
    assert processes_using(cli_sandbox.dir) == []
    assert not (cli_sandbox.dir / "state.json").exists()
    # The other sandbox is untouched.
    assert all(listening(port) for port in ports(sandbox.dir).values())
