"""The local sandbox: everything the operator talks to, on loopback, started and stopped as one.

`up(DIR)` starts these components, each in its own process group with its log in DIR/logs/<name>.log:

- a real Kubernetes control plane, built by `modelrelease.sandbox.binaries`: `etcd`, `kube-apiserver`
  (TLS with certificates made for this sandbox, RBAC, service-account tokens, the default admission
  plugins), `kube-controller-manager` (every default controller but the legacy Endpoints one: Deployment,
  ReplicaSet, garbage collector, namespace, service account, EndpointSlice, ...) and `kube-scheduler`;
- `kwok`, which keeps the sandbox's node Ready (no kubelet or container runtime runs here), and `kubelet`,
  the project's stand-in for the pod half of a kubelet (`modelrelease.sandbox.kubelet`);
- `s3`: moto's S3 API in server mode, with the bucket `mlflow-artifacts`,
- `mlflow`: a real `mlflow server` (SQLite file in DIR) proxying artifacts to that bucket.

Ports are chosen free at start, so sandboxes in different folders run side by side. `up` returns once every
component answers and writes DIR/kubeconfig (the administrator's), DIR/env (shell export lines) and
DIR/state.json (pids, ports); if anything fails it stops what it started and raises `SandboxError` with a
one-line reason. `down(DIR)` stops the processes recorded in DIR/state.json and checks that their ports are
closed.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import os
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml

from modelrelease.sandbox import NO_TELEMETRY
from modelrelease.sandbox.binaries import BinaryError, locate
from modelrelease.sandbox.pki import ADMIN, CONTROLLER_MANAGER, SCHEDULER, Pki
from modelrelease.sandbox.pki import create as create_pki

BUCKET = "mlflow-artifacts"
HOST = "127.0.0.1"
# moto accepts any credentials; fixed dummies keep real ones out of the sandbox.
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}
# Bounded waits, seconds. `mlflow server` imports MLflow twice (CLI, then the uvicorn worker) and migrates a
# fresh database: about 20 s on an idle 2-core machine, 90 s measured on one shared by seven busy processes.
READY_TIMEOUT = {
    "etcd": 30.0,
    "kube-apiserver": 90.0,
    "kube-controller-manager": 60.0,
    "kube-scheduler": 60.0,
    "kwok": 60.0,
    "kubelet": 60.0,
    "s3": 30.0,
    "mlflow": 180.0,
}
CONTROL_PLANE = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")
# Services get ClusterIPs and pods get IPs from loopback ranges: nothing listens on them, and should anything
# ever try to connect, the traffic stays on this machine (the network rule in DESIGN.md).
# 65,534 ClusterIPs: a /24 ran out at the 254th Service (HTTP 500 "failed to allocate a serviceIP: range is
# full").
SERVICE_CIDR = "127.2.0.0/16"
SERVICE_IP = "127.2.0.1"  # the `kubernetes` Service's ClusterIP: the first address of SERVICE_CIDR
POD_BLOCKS = 252 * 32  # /21 ranges (2,046 pod IPs each) in 127.3.0.0 - 127.254.255.255
UNTHROTTLED_CLIENT = ("--kube-api-qps=5000", "--kube-api-burst=10000")
"""For kube-controller-manager and kube-scheduler, as kwokctl's disableQPSLimits sets them: their default
client limits (20 and 50 requests a second) made the control plane alone take 71 s to make 300 Deployments
available here, which is their throttle, not the machine; the API server keeps its own limits."""
CONTROLLERS = "*,-endpoint"
"""Every controller but the legacy Endpoints one: it writes each pod IP into the deprecated v1 Endpoints,
which the API server refuses for loopback addresses, and retried each Service about 15 times (2,000
failing writes and their Events in 40 s at 300 idle releases). Nothing reads Endpoints (kubectl, helm and
the operator read pods; consumers read EndpointSlices); the EndpointSlice controller still runs."""
NODE_NAME = "sandbox-node"
KWOK_NODE_ANNOTATION = "kwok.x-k8s.io/node"
# kwok's node stages, the sandbox's own: a node it manages turns Ready at once, and its conditions' heartbeat
# is renewed every 20 s (its Lease is renewed by kwok itself, --node-lease-duration-seconds).
_NODE_CONDITIONS = """\
      {{ $now := Now | Quote }}
      {{ $since := .metadata.creationTimestamp | Quote }}
      conditions:
      {{ range NodeConditions }}
      - {type: {{ .type | Quote }}, status: {{ .status | Quote }}, reason: {{ .reason | Quote }},
         message: {{ .message | Quote }}, lastHeartbeatTime: {{ $now }}, lastTransitionTime: {{ $since }}}
      {{ end }}
"""
NODE_STAGES = (
    """\
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata: {name: sandbox-node-ready}
spec:
  resourceRef: {apiGroup: v1, kind: Node}
  selector:
    matchExpressions:
    - {key: .status.phase, operator: NotIn, values: [Running]}
  next:
    statusTemplate: |
"""
    + _NODE_CONDITIONS
    + """\
      addresses:
      - {type: InternalIP, address: {{ NodeIP | Quote }}}
      - {type: Hostname, address: {{ NodeName | Quote }}}
      daemonEndpoints: {kubeletEndpoint: {Port: {{ NodePort }}}}
      allocatable: {cpu: "1k", memory: 1Ti, pods: "1M"}
      capacity: {cpu: "1k", memory: 1Ti, pods: "1M"}
      nodeInfo:
        architecture: amd64
        operatingSystem: linux
        kubeletVersion: {{ printf "kwok-%s" Version | Quote }}
        containerRuntimeVersion: sandbox
      phase: Running
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata: {name: sandbox-node-heartbeat}
spec:
  resourceRef: {apiGroup: v1, kind: Node}
  selector:
    matchExpressions:
    - {key: .status.phase, operator: In, values: [Running]}
  delay: {durationMilliseconds: 20000}
  next:
    statusTemplate: |
"""
    + _NODE_CONDITIONS
)
STOP_TIMEOUT = 10.0
KILL_TIMEOUT = 5.0
_MLFLOW_BIND_ATTEMPTS = 3

T = TypeVar("T")


class SandboxError(Exception):
    """A sandbox could not be started or stopped; the message is one line naming the component and its log."""


@dataclass(frozen=True)
class SandboxInfo:
    dir: Path
    kubeconfig: Path
    env: dict[str, str]
    api_url: str
    mlflow_url: str
    s3_url: str
    bucket: str


# Popen objects of components this process started, kept so they are reaped (no zombies, no ResourceWarning).
_children: dict[int, subprocess.Popen[bytes]] = {}


def up(directory: Path) -> SandboxInfo:
    directory = directory.resolve()
    directory.mkdir(parents=True, exist_ok=True)
    with _exclusive(directory):
        running = [name for name, entry in _read_state(directory).items() if _members([entry])]
        if running:
            raise SandboxError(
                f"a sandbox is already running in {directory} ({', '.join(running)}); "
                f"stop it first with `modelrelease sandbox down --dir {directory}`"
            )
        stack = _Stack(directory)
        try:
            with _interruptible():
                return stack.start()
        except BaseException:  # KeyboardInterrupt included: Ctrl-C during up leaves nothing behind
            stack.stop()
            raise


def down(directory: Path) -> None:
    directory = directory.resolve()
    if not directory.is_dir():
        return
    with _exclusive(directory):
        components = _read_state(directory)
        _stop(components)
        listening = [
            f"{name} (port {entry['port']})"
            for name, entry in components.items()
            if entry.get("port") and _listening(int(entry["port"]), wait=KILL_TIMEOUT)
        ]
        if listening:
            raise SandboxError(f"still listening after sandbox down in {directory}: {', '.join(listening)}")
        # Logs stay for a post-mortem; what described the running sandbox goes.
        for path in [directory / "state.json", directory / "env", directory / "kubeconfig"]:
            path.unlink(missing_ok=True)
        shutil.rmtree(directory / "run", ignore_errors=True)


def restart(directory: Path, name: str, extra_args: Sequence[str] = ()) -> int:
    """Stop one component of the running sandbox in `directory` as `down` would, and start it again with
    the command line (plus `extra_args`), environment, folder and log it had. Its new pid goes into
    DIR/state.json, so `down` stops it; returns that pid. For fault injection (the chaos suite restarts
    kube-apiserver, etcd and MLflow mid-rollout)."""
    directory = directory.resolve()
    with _exclusive(directory):
        state = json.loads((directory / "state.json").read_text())
        entry = state["components"][name]
        pid = int(entry["pid"])
        argv = [a.decode() for a in Path(f"/proc/{pid}/cmdline").read_bytes().rstrip(b"\0").split(b"\0")]
        environ = dict(
            item.decode().split("=", 1)
            for item in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            if b"=" in item
        )
        cwd = os.readlink(f"/proc/{pid}/cwd")
        _stop_group(entry)
        with open(entry["log"], "ab") as out:
            process = subprocess.Popen(
                [*argv, *extra_args],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=cwd,
                env=environ,
                start_new_session=True,
            )
        _children[process.pid] = process
        entry.update(pid=process.pid, start=_start_ticks(process.pid))
        _write_atomic(directory / "state.json", json.dumps(state, indent=2) + "\n")
        return process.pid


def stop_process(process: subprocess.Popen[Any], timeout: float = STOP_TIMEOUT) -> None:
    """SIGTERM a child process, SIGKILL it if it has not exited after `timeout` seconds, and reap it."""
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


CRD_TIMEOUT = 90.0


def install_crd(info: SandboxInfo, crd_file: Path) -> None:
    """Apply a CRD with the real kubectl and wait until the API server serves its kind.

    Each kubectl call is retried until the bound: right after an API server starts, or while another test
    applies the same CRD, a call can fail once (seen as `kubectl wait` exiting 1 at once under load)."""
    env = {**os.environ, **info.env}
    crd = yaml.safe_load(crd_file.read_text())
    deadline = time.monotonic() + CRD_TIMEOUT
    for args in (
        ["apply", "-f", str(crd_file)],
        ["wait", "--for=condition=Established", f"crd/{crd['metadata']['name']}", "--timeout=10s"],
        ["get", crd["spec"]["names"]["plural"], "--all-namespaces", "-o", "name"],  # the kind is served
    ):
        while True:
            try:
                _kubectl(env, *args)
                break
            except SandboxError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)


def _kubectl(env: Mapping[str, str], *args: str) -> str:
    result = subprocess.run(
        [str(locate("kubectl")), *args],
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or [f"exit {result.returncode}"])[-1]
        raise SandboxError(f"kubectl {args[0]} failed: {last[:300]}")
    return result.stdout


class _Stack:
    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.logs = directory / "logs"
        self.run = directory / "run"
        self.components: dict[str, dict[str, Any]] = {}
        self.started = time.monotonic()

    def start(self) -> SandboxInfo:
        self.logs.mkdir(exist_ok=True)
        # Every up is a fresh sandbox: nothing of a previous one (etcd data, MLflow's database, keys) is kept.
        shutil.rmtree(self.run, ignore_errors=True)
        self.run.mkdir()
        for stale in [self.dir / "mlflow.db", self.dir / "kubeconfig", self.dir / "env"]:
            stale.unlink(missing_ok=True)
        try:
            binaries = {name: str(locate(name)) for name in CONTROL_PLANE}
        except BinaryError as exc:
            raise SandboxError(str(exc)) from None

        s3_port_file = self.run / "s3.port"
        self._spawn("s3", [sys.executable, "-m", "modelrelease.sandbox.s3", "--host", HOST, "--port", "0",
                           "--port-file", str(s3_port_file)])  # fmt: skip
        s3_port = self._wait("s3", lambda: _read_port(s3_port_file))
        s3_url = f"http://{HOST}:{s3_port}"
        self._record("s3", port=s3_port)
        mlflow_port = self._spawn_mlflow(s3_url)  # the slowest to start: let it start first

        pki = create_pki(self.run / "pki", SERVICE_IP)
        etcd_url = self._start_etcd(binaries["etcd"])
        api_url = self._start_apiserver(binaries["kube-apiserver"], pki, etcd_url)
        kubeconfig = self.dir / "kubeconfig"
        _write_atomic(kubeconfig, pki.kubeconfig(ADMIN, api_url))
        self._start_controllers(binaries, pki, api_url, kubeconfig)

        self._wait("s3", lambda: _create_bucket(s3_url))
        self._answered("s3")
        self._wait_cluster(pki, api_url)
        mlflow_url = self._wait_mlflow(mlflow_port, s3_url)

        env = {
            "KUBECONFIG": str(kubeconfig),
            "MLFLOW_TRACKING_URI": mlflow_url,
            "MLFLOW_S3_ENDPOINT_URL": s3_url,
            **AWS_ENV,
            **NO_TELEMETRY,
        }
        _write_atomic(self.dir / "env", "".join(f"export {k}={shlex.quote(v)}\n" for k, v in env.items()))
        self._save(up_seconds=round(time.monotonic() - self.started, 1))
        return SandboxInfo(self.dir, kubeconfig, env, api_url, mlflow_url, s3_url, BUCKET)

    # -- the control plane -------------------------------------------------------------------------------

    def _start_etcd(self, binary: str) -> str:
        client, peer = free_port(), free_port()
        client_url, peer_url = f"http://{HOST}:{client}", f"http://{HOST}:{peer}"
        self._spawn("etcd", [binary, "--name", "sandbox", "--data-dir", str(self.run / "etcd"),
                             "--listen-client-urls", client_url, "--advertise-client-urls", client_url,
                             "--listen-peer-urls", peer_url, "--initial-advertise-peer-urls", peer_url,
                             "--initial-cluster", f"sandbox={peer_url}", "--unsafe-no-fsync",
                             "--log-level", "warn"])  # fmt: skip
        self._record("etcd", port=client)
        self._wait("etcd", functools.partial(_http_ok, f"{client_url}/health"))
        self._answered("etcd")
        return client_url

    def _start_apiserver(self, binary: str, pki: Pki, etcd_url: str) -> str:
        port = free_port()
        self._spawn("kube-apiserver", [binary, "--etcd-servers", etcd_url,
                                       "--bind-address", HOST, "--advertise-address", HOST,
                                       "--secure-port", str(port), "--cert-dir", str(pki.folder),
                                       "--tls-cert-file", str(pki.cert("apiserver")),
                                       "--tls-private-key-file", str(pki.key("apiserver")),
                                       "--client-ca-file", str(pki.ca),
                                       "--authorization-mode", "RBAC",
                                       "--service-cluster-ip-range", SERVICE_CIDR,
                                       "--service-account-issuer", "https://kubernetes.default.svc.cluster.local",
                                       "--service-account-key-file", str(pki.service_account_public_key),
                                       "--service-account-signing-key-file", str(pki.service_account_key),
                                       "--profiling=false"])  # fmt: skip
        self._record("kube-apiserver", port=port)
        api_url = f"https://{HOST}:{port}"
        context = _tls_context(pki)
        self._wait("kube-apiserver", functools.partial(_http_ok, f"{api_url}/readyz", context))
        self._answered("kube-apiserver")
        return api_url

    def _start_controllers(
        self, binaries: Mapping[str, str], pki: Pki, api_url: str, admin_kubeconfig: Path
    ) -> None:
        self.pod_cidr = pod_cidr(int(self.components["kube-apiserver"]["port"]))
        configs = {}
        for identity in (CONTROLLER_MANAGER, SCHEDULER):
            configs[identity.name] = self.run / f"{identity.name}.kubeconfig"
            _write_atomic(configs[identity.name], pki.kubeconfig(identity, api_url))
        manager_port, scheduler_port = free_port(), free_port()
        self._spawn("kube-controller-manager", [
            binaries["kube-controller-manager"], "--kubeconfig", str(configs["kube-controller-manager"]),
            "--authentication-kubeconfig", str(configs["kube-controller-manager"]),
            "--authorization-kubeconfig", str(configs["kube-controller-manager"]),
            "--bind-address", HOST, "--secure-port", str(manager_port),
            "--cert-dir", str(self.run / "kube-controller-manager"),
            "--leader-elect=false", f"--controllers={CONTROLLERS}", "--use-service-account-credentials",
            "--service-account-private-key-file", str(pki.service_account_key),
            "--root-ca-file", str(pki.ca), "--service-cluster-ip-range", SERVICE_CIDR,
            "--profiling=false", *UNTHROTTLED_CLIENT,
        ])  # fmt: skip
        self._record("kube-controller-manager", port=manager_port)
        self._spawn("kube-scheduler", [
            binaries["kube-scheduler"], "--kubeconfig", str(configs["kube-scheduler"]),
            "--authentication-kubeconfig", str(configs["kube-scheduler"]),
            "--authorization-kubeconfig", str(configs["kube-scheduler"]),
            "--bind-address", HOST, "--secure-port", str(scheduler_port),
            "--cert-dir", str(self.run / "kube-scheduler"),
            "--leader-elect=false", "--profiling=false", *UNTHROTTLED_CLIENT,
        ])  # fmt: skip
        self._record("kube-scheduler", port=scheduler_port)
        stages = self.run / "kwok-stages.yaml"
        _write_atomic(stages, NODE_STAGES)
        kwok_port = free_port()
        self._spawn("kwok", [
            binaries["kwok"], "--kubeconfig", str(admin_kubeconfig), "--config", str(stages),
            "--manage-nodes-with-annotation-selector", f"{KWOK_NODE_ANNOTATION}=fake",
            "--node-ip", HOST, "--node-port", str(kwok_port), "--server-address", f"{HOST}:{kwok_port}",
            "--node-lease-duration-seconds", "40",
        ])  # fmt: skip
        self._record("kwok", port=kwok_port)
        ready_file = self.run / "kubelet.ready"
        self._spawn("kubelet", [sys.executable, "-m", "modelrelease.sandbox.kubelet",
                                "--kubeconfig", str(admin_kubeconfig), "--node", NODE_NAME,
                                "--pod-cidr", self.pod_cidr, "--host-ip", HOST,
                                "--work-dir", str(self.run / "pods"), "--log-dir", str(self.logs / "pods"),
                                "--ready-file", str(ready_file)])  # fmt: skip
        self.ready_file = ready_file

    def _wait_cluster(self, pki: Pki, api_url: str) -> None:
        """The node exists and is Ready (kwok), the controllers and scheduler answer, the controller manager
        has made the default ServiceAccount (its controllers run), the pod runner has listed pods."""
        context = _tls_context(pki)
        _api(api_url, context, "POST", "/api/v1/nodes", _node(self.pod_cidr))
        for name in ("kube-controller-manager", "kube-scheduler"):
            url = f"https://{HOST}:{self.components[name]['port']}/healthz"
            self._wait(name, functools.partial(_http_ok, url, ssl._create_unverified_context()))
            self._answered(name)
        self._wait("kwok", lambda: _node_ready(api_url, context))
        self._answered("kwok")
        self._wait("kubelet", lambda: self.ready_file.exists() or None)
        self._answered("kubelet")
        self._wait(
            "kube-controller-manager",
            lambda: _api(api_url, context, "GET", "/api/v1/namespaces/default/serviceaccounts/default"),
        )

    def stop(self) -> None:
        _stop(self.components)
        (self.dir / "state.json").unlink(missing_ok=True)

    # -- processes ---------------------------------------------------------------------------------------

    def _spawn(self, name: str, argv: list[str], env: Mapping[str, str] | None = None) -> None:
        log = self.logs / f"{name}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.dir,
                env=dict(env if env is not None else os.environ),
                start_new_session=True,  # its own process group: signals reach its children, not ours
            )
        _children[process.pid] = process
        self.components[name] = {"pid": process.pid, "start": _start_ticks(process.pid), "log": str(log)}
        self._save()

    def _record(self, name: str, **fields: Any) -> None:
        self.components[name].update(fields)
        self._save()

    def _answered(self, name: str) -> None:
        """Record when a component first answered, in seconds since `up` began (for tuning the bounds)."""
        self._record(name, answered_after=round(time.monotonic() - self.started, 1))

    def _save(self, **extra: Any) -> None:
        state = {"components": self.components, **extra}
        _write_atomic(self.dir / "state.json", json.dumps(state, indent=2) + "\n")

    def _wait(self, name: str, ready: Callable[[], T | None]) -> T:
        """Poll `ready` until it returns a value; fail when any component exits or `name` runs out of time."""
        deadline = time.monotonic() + READY_TIMEOUT[name]
        while True:
            value = ready()
            if value is not None:
                return value
            for other, entry in self.components.items():
                code = _children[entry["pid"]].poll()
                if code is not None:
                    raise SandboxError(_failure(other, f"exited with code {code}", Path(entry["log"])))
            if time.monotonic() > deadline:
                what = f"did not answer within {READY_TIMEOUT[name]:.0f}s"
                raise SandboxError(_failure(name, what, Path(self.components[name]["log"])))
            time.sleep(0.1)

    def _spawn_mlflow(self, s3_url: str) -> int:
        port = free_port()
        env = {k: v for k, v in os.environ.items() if k not in ("AWS_PROFILE", "AWS_SESSION_TOKEN")}
        env.update(AWS_ENV)
        env.update(NO_TELEMETRY)
        env["MLFLOW_S3_ENDPOINT_URL"] = s3_url
        # The job runner and its huey consumers (about 2 GB of processes) serve features unused here.
        env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
        # Let MLflow deliver webhooks to an operator's plain-HTTP loopback receiver (by default it accepts
        # only https URLs with public addresses), and re-read its webhook list every second, not minute.
        env.update(
            MLFLOW_WEBHOOK_ALLOWED_SCHEMES="http,https",
            MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS="true",
            MLFLOW_WEBHOOK_CACHE_TTL="1",
        )
        self._spawn(
            "mlflow",
            [sys.executable, "-m", "mlflow", "server",
             "--backend-store-uri", f"sqlite:///{self.dir / 'mlflow.db'}",
             "--artifacts-destination", f"s3://{BUCKET}/", "--serve-artifacts",
             "--host", HOST, "--port", str(port), "--workers", "1",
             "--allowed-hosts", f"{HOST}:{port},localhost:{port}"],
            env,
        )  # fmt: skip
        self._record("mlflow", port=port)
        return port

    def _wait_mlflow(self, port: int, s3_url: str) -> str:
        # The port was free when chosen but is only bound seconds later; on the rare lost race, try another.
        for attempt in range(1, _MLFLOW_BIND_ATTEMPTS + 1):
            url = f"http://{HOST}:{port}"
            try:
                self._wait("mlflow", functools.partial(_http_ok, f"{url}/health"))
                self._answered("mlflow")
                return url
            except SandboxError:
                log = Path(self.components["mlflow"]["log"])
                if (
                    attempt == _MLFLOW_BIND_ATTEMPTS
                    or "address already in use" not in _tail(log, 4000).lower()
                ):
                    raise
                _stop({"mlflow": self.components.pop("mlflow")})
                port = self._spawn_mlflow(s3_url)
        raise AssertionError("unreachable")


# -- stopping ------------------------------------------------------------------------------------------------


def _stop(components: Mapping[str, Mapping[str, Any]]) -> None:
    """Stop the components in the reverse of their start order: the API server's clients before it, the API
    server before etcd (without etcd its graceful shutdown stalls until SIGKILL; measured 1 s with it)."""
    for name in reversed(list(components)):
        _stop_group(components[name])


def _stop_group(component: Mapping[str, Any]) -> None:
    """SIGTERM every live member of a component's session, SIGKILL what is left after a bound."""
    components = [component]
    for sig, bound in ((signal.SIGTERM, STOP_TIMEOUT), (signal.SIGKILL, KILL_TIMEOUT)):
        alive = _members(components)
        for pid in alive:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + bound
        while alive and time.monotonic() < deadline:
            time.sleep(0.1)
            _reap(components)
            alive = _members(components)
        if not alive:
            return


def _reap(components: Iterable[Mapping[str, Any]]) -> None:
    """Collect the exit status of stopped leaders this process started, so none lingers as a zombie."""
    for entry in components:
        process = _children.get(int(entry["pid"]))
        if process is not None and process.poll() is not None:
            del _children[process.pid]


@dataclass(frozen=True)
class _Proc:
    pid: int
    session: int
    start: str  # starttime in clock ticks: with the pid, identifies one process for its lifetime


def _processes() -> list[_Proc]:
    """Live (not zombie) processes, from /proc."""
    table = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _proc_stat(int(entry.name))
            if fields is not None and fields[0] not in ("Z", "X"):
                table.append(_Proc(int(entry.name), int(fields[3]), fields[19]))
    return table


def _proc_stat(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name: [state, ppid, pgrp, session, ...]."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2 :].split()


def _start_ticks(pid: int) -> str | None:
    fields = _proc_stat(pid)
    return fields[19] if fields else None


def _members(components: Iterable[Mapping[str, Any]]) -> list[int]:
    """Live processes of the components: each leader (if still the same process) and the rest of its session
    (every component starts a session of its own; the pod runner's containers are process groups in it)."""
    table = _processes()
    members: list[int] = []
    for entry in components:
        leader = int(entry["pid"])
        # Linux never hands out a pid still in use as a session id. So a live process with the leader's pid
        # but another start time means our session died out entirely and the pid was recycled: not ours.
        if any(p.pid == leader and p.start != entry.get("start") for p in table):
            continue
        members.extend(p.pid for p in table if p.session == leader)
    return members


# -- small helpers -------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _interruptible() -> Iterator[None]:
    """While `up` runs, SIGINT, SIGTERM and SIGHUP interrupt it like Ctrl-C, so it still stops what it
    started. SIGINT too: a shell starts a background job (`up &` in a script) with SIGINT ignored, and
    Python then installs no KeyboardInterrupt handler of its own."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def _exclusive(directory: Path) -> Iterator[None]:
    with (directory / ".lock").open("w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SandboxError(f"another `sandbox up` or `down` is working in {directory}") from None
        yield


def _read_state(directory: Path) -> dict[str, dict[str, Any]]:
    try:
        state = json.loads((directory / "state.json").read_text())
    except FileNotFoundError:
        return {}
    except ValueError as exc:
        raise SandboxError(f"unreadable {directory / 'state.json'}: {exc}") from None
    components: dict[str, dict[str, Any]] = state.get("components", {})
    return components


def _write_atomic(path: Path, text: str) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text)
    os.replace(partial, path)


def _read_port(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def free_port() -> int:
    """A TCP port on the loopback address that is free now (the kernel picks it)."""
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


def _listening(port: int, wait: float = 0.0) -> bool:
    deadline = time.monotonic() + wait
    while True:
        with socket.socket() as probe:
            probe.settimeout(1.0)
            if probe.connect_ex((HOST, port)) != 0:
                return False
        if time.monotonic() >= deadline:
            return True
        time.sleep(0.1)


def _http_ok(url: str, context: ssl.SSLContext | None = None) -> bool | None:
    try:
        with urllib.request.urlopen(url, timeout=2, context=context) as response:
            return True if response.status == 200 else None
    except (urllib.error.URLError, OSError):
        return None


def _tls_context(pki: Pki) -> ssl.SSLContext:
    """A client context that trusts the sandbox's CA and presents the administrator's certificate."""
    context = ssl.create_default_context(cafile=str(pki.ca))
    context.load_cert_chain(str(pki.cert(ADMIN.name)), str(pki.key(ADMIN.name)))
    return context


def _api(
    api_url: str, context: ssl.SSLContext, method: str, path: str, body: Mapping[str, Any] | None = None
) -> dict[str, Any] | None:
    """One request to the API server as the administrator: the object, or None on 404 or 409."""
    request = urllib.request.Request(
        api_url + path,
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Content-Type": "application/json", "Accept": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10, context=context) as response:
            answer: dict[str, Any] = json.loads(response.read())
            return answer
    except urllib.error.HTTPError as exc:
        if exc.code in (404, 409):
            return None
        raise SandboxError(f"kube-apiserver refused {method} {path}: HTTP {exc.code}") from None


def pod_cidr(api_port: int) -> str:
    """The node's podCIDR: a loopback /21 of its own per sandbox, derived from its API server's port, so that
    real pod processes of sandboxes side by side never bind the same address (unless their ports are a
    multiple of POD_BLOCKS apart). Never 127.0.x.x (the services) or 127.2.0.0/16 (the ClusterIPs)."""
    block = api_port % POD_BLOCKS
    return f"127.{3 + block // 32}.{(block % 32) * 8}.0/21"


def _node(cidr: str) -> dict[str, Any]:
    """The sandbox's one node, kept Ready by kwok; its pods get loopback IPs from `cidr`."""
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": NODE_NAME,
            "annotations": {KWOK_NODE_ANNOTATION: "fake"},
            "labels": {"kubernetes.io/hostname": NODE_NAME, "kubernetes.io/os": "linux", "type": "kwok"},
        },
        "spec": {"podCIDR": cidr, "podCIDRs": [cidr]},
    }


def _node_ready(api_url: str, context: ssl.SSLContext) -> bool | None:
    node = _api(api_url, context, "GET", f"/api/v1/nodes/{NODE_NAME}") or {}
    conditions = (node.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions) or None


def _create_bucket(s3_url: str) -> bool | None:
    import boto3
    import botocore.config
    import botocore.exceptions

    client = boto3.client(
        "s3",
        endpoint_url=s3_url,
        aws_access_key_id=AWS_ENV["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=AWS_ENV["AWS_SECRET_ACCESS_KEY"],
        region_name=AWS_ENV["AWS_DEFAULT_REGION"],
        config=botocore.config.Config(connect_timeout=2, read_timeout=5, retries={"max_attempts": 1}),
    )
    try:
        client.create_bucket(Bucket=BUCKET)
    except botocore.exceptions.EndpointConnectionError:
        return None
    return True


def _tail(path: Path, size: int) -> str:
    try:
        with path.open("rb") as f:
            f.seek(max(0, path.stat().st_size - size))
            return f.read().decode(errors="replace")
    except OSError:
        return ""


def _failure(name: str, what: str, log: Path) -> str:
    last = next((line.strip() for line in reversed(_tail(log, 4000).splitlines()) if line.strip()), "")
    detail = f": {last[:200]}" if last else ""
    return f"{name} {what} (log: {log}){detail}"
