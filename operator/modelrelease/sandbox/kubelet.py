"""The sandbox's stand-in for the kubelet: it runs, or reports, the pods scheduled onto the sandbox's node.

No container runtime runs here, so kwok keeps the node Ready and this process plays the pod half of a
kubelet on the real control plane: the real kube-scheduler binds pods to the kwok node, this process gives
each an IP of its own from the node's loopback podCIDR and reports its status, and removes deleted pods once
their containers have stopped. The real Deployment and ReplicaSet controllers then report what follows
(Available, ProgressDeadlineExceeded, ...).

Two kinds of pod:

- **Run as processes**: a pod annotated `sandbox.modelrelease.io/run: process` (set it through a release's
  `spec.serving.template.metadata.annotations`) whose containers' programs exist here. Each container runs
  as a local process with its command and args and the env a kubelet builds (`value`, `valueFrom`
  secretKeyRef / configMapKeyRef / fieldRef, `$(VAR)` expansion), its output in
  `LOG_DIR/<namespace>_<pod>_<container>.log`. Its readiness probe (HTTP GET) is performed for real against
  the pod's IP; an exit is a container restart with back-off (`restartCount`, `CrashLoopBackOff`, the last
  exit code and termination message). A shared host cannot give each process a filesystem and a network of
  its own, so three things are mapped: the wildcard address `0.0.0.0` in the command line becomes the pod's
  IP (what binding it means inside a pod's own network namespace), an emptyDir mounted at /tmp becomes a
  folder of the pod's passed as TMPDIR, and /dev/termination-log becomes a file of the container's, named
  by MODELRELEASE_TERMINATION_LOG.
- **Simulated**, every other pod (the operator's own image from the chart, a helm test hook, ...): it is a
  status only. It runs and is Ready at once, or, by `sandbox-faults`, keeps crashing or never becomes ready;
  a run-to-completion pod (`restartPolicy: Never`) Succeeds, or Fails under a `crashloop` fault.

Faults are plain Kubernetes objects: the ConfigMap `sandbox-faults` in the pod's namespace maps the fault-key
spelling of a model URI (the container's `MODEL_URI` env value; `models:/fraud/5` -> `models_fraud_5`, since
ConfigMap keys allow only `[-._a-zA-Z0-9]`) to `crashloop`, `unready` or `ok`. It is read when a simulated pod
first appears, so it applies to the pods a rollout creates after it was written.

Network rule: the only addresses contacted are the API server's and, for probes, pod IPs this process gave
to a process it started; both on loopback.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import functools
import heapq
import ipaddress
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, cast

import kubernetes
from kubernetes.client.exceptions import ApiException

from modelrelease.sandbox import NO_TELEMETRY

log = logging.getLogger("modelrelease.sandbox.kubelet")

Fault = Literal["ok", "crashloop", "unready"]
FAULTS: tuple[Fault, ...] = ("ok", "crashloop", "unready")
FAULTS_CONFIGMAP = "sandbox-faults"
MODEL_URI_ENV = "MODEL_URI"
RUN_ANNOTATION = "sandbox.modelrelease.io/run"
RUN_AS_PROCESS = "process"
TERMINATION_LOG_ENV = "MODELRELEASE_TERMINATION_LOG"
CRASH_BACKOFF_S = (1.0, 2.0, 4.0, 8.0)
"""Seconds between restarts of a crashing container: the kubelet's 10 s doubling to 5 min, scaled down so a
test sees restartCount grow within its deadline."""
STOP_GRACE_S = 5.0
"""At most this long between SIGTERM and SIGKILL of a container's processes (terminationGracePeriodSeconds,
capped: the sandbox has no reason to wait 30 s)."""
_MERGE = "application/merge-patch+json"
_VARIABLE = re.compile(r"\$\$|\$\(([-._a-zA-Z][-._a-zA-Z0-9]*)\)")


def fault_key(uri: str) -> str:
    """The spelling of a model URI that is a valid ConfigMap key: `models:/fraud/5` -> `models_fraud_5`."""
    return re.sub(r"[^-._a-zA-Z0-9]+", "_", uri)


def model_uri(pod: Mapping[str, Any]) -> str | None:
    for container in (pod.get("spec") or {}).get("containers") or []:
        for env in container.get("env") or []:
            if env.get("name") == MODEL_URI_ENV and env.get("value"):
                return str(env["value"])
    return None


def fault_for(pod: Mapping[str, Any], faults: Mapping[str, str]) -> Fault:
    """The fault the `sandbox-faults` data assigns to this pod (`ok` when none or unknown)."""
    uri = model_uri(pod)
    if uri is None:
        return "ok"
    value = faults.get(fault_key(uri), "ok").strip()
    return cast(Fault, value) if value in FAULTS else "ok"


# -- what a kubelet reports --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Exit:
    code: int
    message: str
    started: datetime
    finished: datetime


@dataclass(frozen=True)
class ContainerState:
    """One container as a kubelet sees it."""

    running_since: datetime | None = None
    ready: bool = False
    waiting: str | None = "ContainerCreating"  # the reason, while not running
    restarts: int = 0
    last_exit: Exit | None = None


def simulated_state(fault: Fault, started: datetime, restarts: int, now: datetime) -> ContainerState:
    """The state of a container that is only a status: healthy, never ready, or crashing `restarts` times."""
    if fault == "crashloop":
        last = Exit(1, "", now, now) if restarts else None
        return ContainerState(waiting="CrashLoopBackOff", restarts=restarts, last_exit=last)
    return ContainerState(running_since=started, ready=fault == "ok", waiting=None)


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _container_status(pod: Mapping[str, Any], container: Mapping[str, Any], state: ContainerState) -> Any:
    status: dict[str, Any] = {
        "name": container["name"],
        "image": container.get("image", ""),
        "imageID": "",
        "containerID": f"sandbox://{pod['metadata']['uid']}/{container['name']}",
        "ready": state.ready,
        "started": state.running_since is not None,
        "restartCount": state.restarts,
    }
    if state.running_since is not None:
        status["state"] = {"running": {"startedAt": _stamp(state.running_since)}}
    else:
        reason = state.waiting or "ContainerCreating"
        waiting: dict[str, str] = {"reason": reason}
        if reason == "CrashLoopBackOff":
            waiting["message"] = f"back-off restarting failed container={container['name']}"
        status["state"] = {"waiting": waiting}
    if state.last_exit is not None:
        terminated: dict[str, Any] = {
            "exitCode": state.last_exit.code,
            "reason": "Completed" if state.last_exit.code == 0 else "Error",
            "startedAt": _stamp(state.last_exit.started),
            "finishedAt": _stamp(state.last_exit.finished),
        }
        if state.last_exit.message:
            terminated["message"] = state.last_exit.message
        status["lastState"] = {"terminated": terminated}
    return status


def pod_status(
    pod: Mapping[str, Any],
    states: Mapping[str, ContainerState],
    ip: str,
    host_ip: str,
    started: datetime,
) -> dict[str, Any]:
    """The complete status a kubelet would report for a running pod whose containers are in `states`."""
    containers = (pod.get("spec") or {}).get("containers") or []
    statuses = [_container_status(pod, c, states.get(c["name"], ContainerState())) for c in containers]
    ready = bool(statuses) and all(s["ready"] for s in statuses)
    not_ready = {} if ready else {"reason": "ContainersNotReady"}
    conditions = [
        {"type": "PodReadyToStartContainers", "status": "True"},
        {"type": "Initialized", "status": "True"},
        {"type": "Ready", "status": "True" if ready else "False", **not_ready},
        {"type": "ContainersReady", "status": "True" if ready else "False", **not_ready},
        {"type": "PodScheduled", "status": "True"},
    ]
    for condition in conditions:
        condition["lastTransitionTime"] = _stamp(started)
    return {
        "phase": "Running",
        "conditions": conditions,
        "hostIP": host_ip,
        "hostIPs": [{"ip": host_ip}],
        "podIP": ip,
        "podIPs": [{"ip": ip}],
        "startTime": _stamp(started),
        "containerStatuses": statuses,
    }


def completed_status(
    pod: Mapping[str, Any], succeeded: bool, ip: str, host_ip: str, started: datetime, now: datetime
) -> dict[str, Any]:
    """A run-to-completion pod whose containers have exited: 0 when `succeeded`, else 1."""
    exit_code = 0 if succeeded else 1
    terminated = {
        "exitCode": exit_code,
        "reason": "Completed" if succeeded else "Error",
        "startedAt": _stamp(started),
        "finishedAt": _stamp(now),
    }
    containers = [
        {
            "name": container["name"],
            "image": container.get("image", ""),
            "imageID": "",
            "containerID": f"sandbox://{pod['metadata']['uid']}/{container['name']}",
            "ready": False,
            "started": False,
            "restartCount": 0,
            "state": {"terminated": terminated},
        }
        for container in (pod.get("spec") or {}).get("containers") or []
    ]
    done = {"status": "False", "reason": "PodCompleted", "lastTransitionTime": _stamp(now)}
    return {
        "phase": "Succeeded" if succeeded else "Failed",
        "conditions": [
            {"type": "Initialized", "status": "True", "lastTransitionTime": _stamp(started)},
            {"type": "Ready", **done},
            {"type": "ContainersReady", **done},
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": _stamp(started)},
        ],
        "hostIP": host_ip,
        "hostIPs": [{"ip": host_ip}],
        "podIP": ip,
        "podIPs": [{"ip": ip}],
        "startTime": _stamp(started),
        "containerStatuses": containers,
    }


# -- how a kubelet starts a container ----------------------------------------------------------------------


class ContainerConfigError(Exception):
    """The container's environment cannot be built (a missing Secret key, say): CreateContainerConfigError."""


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' `$(VAR)` expansion: a defined variable is replaced, `$$` is a literal `$`, anything
    else (an undefined variable) stays as written."""

    def one(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        return env.get(match.group(1), match.group(0))

    return _VARIABLE.sub(one, text)


Lookup = Callable[[str, str, str], str | None]
"""(kind "secret" or "configmap", object name, key) -> the value, or None when the object or key is absent."""


def _field(pod: Mapping[str, Any], path: str, ip: str) -> str:
    meta = pod.get("metadata") or {}
    simple = {
        "metadata.name": meta.get("name"),
        "metadata.namespace": meta.get("namespace"),
        "metadata.uid": meta.get("uid"),
        "spec.nodeName": (pod.get("spec") or {}).get("nodeName"),
        "spec.serviceAccountName": (pod.get("spec") or {}).get("serviceAccountName"),
        "status.podIP": ip,
        "status.hostIP": "127.0.0.1",
    }
    if path in simple:
        return str(simple[path] or "")
    labels = re.fullmatch(r"metadata\.(labels|annotations)\['(.+)'\]", path)
    if labels:
        return str((meta.get(labels.group(1)) or {}).get(labels.group(2), ""))
    raise ContainerConfigError(f"fieldRef {path} is not supported")


def container_env(
    container: Mapping[str, Any], pod: Mapping[str, Any], ip: str, lookup: Lookup
) -> dict[str, str]:
    """The container's environment as the kubelet builds it, in order, each value expanded against the
    variables before it."""
    env: dict[str, str] = {}
    for entry in container.get("env") or []:
        name = entry["name"]
        if "value" in entry:
            env[name] = expand(str(entry["value"]), env)
            continue
        source = entry.get("valueFrom") or {}
        if "fieldRef" in source:
            env[name] = _field(pod, source["fieldRef"]["fieldPath"], ip)
            continue
        for kind, ref_key in (("secret", "secretKeyRef"), ("configmap", "configMapKeyRef")):
            ref = source.get(ref_key)
            if ref is None:
                continue
            value = lookup(kind, ref["name"], ref["key"])
            if value is not None:
                env[name] = value
            elif not ref.get("optional"):
                raise ContainerConfigError(f"{ref_key} {ref['name']}/{ref['key']} not found (env {name})")
            break
        else:
            env[name] = ""
    return env


def command_line(container: Mapping[str, Any], env: Mapping[str, str], ip: str) -> list[str]:
    """command + args, `$(VAR)`-expanded; the wildcard address is the pod's own IP here (see the module)."""
    argv = [expand(str(a), env) for a in [*(container.get("command") or []), *(container.get("args") or [])]]
    return [ip if a == "0.0.0.0" else a for a in argv]


@dataclass(frozen=True)
class Probe:
    url: str
    period_s: float
    failure_threshold: int
    initial_delay_s: float


def readiness_probe(container: Mapping[str, Any], ip: str) -> Probe | None:
    """The container's HTTP readiness probe against the pod's IP (None when it has none)."""
    probe = container.get("readinessProbe") or {}
    http = probe.get("httpGet")
    if http is None:
        return None
    port = http.get("port")
    if isinstance(port, str) and not port.isdigit():
        named = {p.get("name"): p.get("containerPort") for p in container.get("ports") or []}
        port = named.get(port)
    if port is None:
        return None
    return Probe(
        url=f"http://{ip}:{int(port)}{http.get('path') or '/'}",
        period_s=float(probe.get("periodSeconds", 10)),
        failure_threshold=int(probe.get("failureThreshold", 3)),
        initial_delay_s=float(probe.get("initialDelaySeconds", 0)),
    )


def runs_as_process(pod: Mapping[str, Any]) -> bool:
    """Whether the pod asks to run for real and every container's program is on this machine."""
    meta = pod.get("metadata") or {}
    if (meta.get("annotations") or {}).get(RUN_ANNOTATION) != RUN_AS_PROCESS:
        return False
    containers = (pod.get("spec") or {}).get("containers") or []
    return bool(containers) and all(
        (c.get("command") or c.get("args"))
        and shutil.which(str((c.get("command") or c["args"])[0]), path=_path())
        for c in containers
    )


def _path() -> str:
    """The sandbox's image: the programs beside this interpreter (the project's venv) come first."""
    return os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])


# -- the processes -----------------------------------------------------------------------------------------


class _Container(threading.Thread):
    """One container run as a local process: started, probed, restarted with back-off, stopped."""

    def __init__(
        self,
        argv: list[str],
        env: dict[str, str],
        probe: Probe | None,
        log_file: Path,
        termination_log: Path,
        on_change: Callable[[ContainerState], None],
    ) -> None:
        super().__init__(daemon=True)
        self.argv, self.env, self.probe = argv, env, probe
        self.log_file, self.termination_log = log_file, termination_log
        self.on_change = on_change
        self.stopping = threading.Event()
        self.state = ContainerState()
        self.process: subprocess.Popen[bytes] | None = None

    def _set(self, **changes: Any) -> None:
        self.state = replace(self.state, **changes)
        self.on_change(self.state)

    def run(self) -> None:
        while not self.stopping.is_set():
            started = datetime.now(UTC)
            self.termination_log.unlink(missing_ok=True)
            with self.log_file.open("ab") as out:
                # Its own process group in the sandbox's session: stopped as a whole here, and by
                # `sandbox down` with the rest of the session.
                self.process = subprocess.Popen(
                    self.argv, env=self.env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                    process_group=0,
                )  # fmt: skip
            self._set(running_since=started, waiting=None, ready=self.probe is None)
            code = self._watch()
            if self.stopping.is_set():
                return
            message = ""
            with contextlib.suppress(OSError):
                message = self.termination_log.read_text(errors="replace").strip()[:4096]
            finished = datetime.now(UTC)
            self._set(
                running_since=None, ready=False, waiting="CrashLoopBackOff",
                restarts=self.state.restarts + 1, last_exit=Exit(code, message, started, finished),
            )  # fmt: skip
            log.info("%s exited with %s; restarting (%d)", self.argv[0], code, self.state.restarts)
            self.stopping.wait(CRASH_BACKOFF_S[min(self.state.restarts - 1, len(CRASH_BACKOFF_S) - 1)])

    def _watch(self) -> int:
        """Probe until the process exits (or the container is stopped); its exit code."""
        assert self.process is not None
        probe, failures = self.probe, 0
        next_probe = time.monotonic() + (probe.initial_delay_s if probe else 0)
        while True:
            code = self.process.poll()
            if code is not None or self.stopping.is_set():
                return code if code is not None else 0
            if probe is not None and time.monotonic() >= next_probe:
                ok = _http_get(probe.url)
                failures = 0 if ok else failures + 1
                if ok and not self.state.ready:
                    self._set(ready=True)
                elif not ok and self.state.ready and failures >= probe.failure_threshold:
                    self._set(ready=False)
                # Until ready, probe every second: the kubelet's period applies once it is serving.
                next_probe = time.monotonic() + (probe.period_s if self.state.ready else 1.0)
            self.stopping.wait(0.2)

    def stop(self) -> None:
        self.stopping.set()
        process = self.process
        if process is None or process.poll() is not None:
            return
        for sig, wait in ((signal.SIGTERM, STOP_GRACE_S), (signal.SIGKILL, STOP_GRACE_S)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=wait)
                return


def _http_get(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as answer:
            return 200 <= answer.status < 400
    except OSError:
        return False


# -- the loop ----------------------------------------------------------------------------------------------


@dataclass
class _Pod:
    namespace: str
    name: str
    ip: str
    started: datetime
    body: dict[str, Any]
    fault: Fault = "ok"
    restarts: int = 0  # of a simulated crash loop
    containers: dict[str, _Container] = field(default_factory=dict)
    states: dict[str, ContainerState] = field(default_factory=dict)


class PodRunner:
    def __init__(
        self, api: kubernetes.client.ApiClient, node: str, cidr: str, host_ip: str, work: Path, logs: Path
    ) -> None:
        self.core = kubernetes.client.CoreV1Api(api)
        self.node = node
        self.host_ip = host_ip
        self.pool = ipaddress.ip_network(cidr)
        self.work, self.logs = work, logs
        self.pods: dict[str, _Pod] = {}
        self.crashes: list[tuple[float, str]] = []  # (due, uid) heap of simulated container restarts
        self.terminating: set[str] = set()
        self.lock = threading.RLock()
        self.stopped = threading.Event()

    def run(self, ready_file: Path | None) -> None:
        threading.Thread(target=self._restart_crashed_forever, daemon=True).start()
        while not self.stopped.is_set():
            try:
                version = self._list()
                if ready_file is not None:
                    ready_file.write_text("ok\n")
                    ready_file = None
                self._watch(version)
            except ApiException as exc:
                if exc.status != 410:
                    log.warning("pod watch failed: HTTP %s %s", exc.status, exc.reason)
                    self.stopped.wait(1.0)
            except Exception as exc:  # the API server restarting, a cut connection: list again
                log.warning("pod watch failed: %s", exc)
                self.stopped.wait(1.0)

    def stop(self) -> None:
        self.stopped.set()
        with self.lock:
            containers = [c for pod in self.pods.values() for c in pod.containers.values()]
        for container in containers:
            container.stop()

    def _selector(self) -> str:
        return f"spec.nodeName={self.node}"

    def _list(self) -> str:
        listing = self.core.list_pod_for_all_namespaces(field_selector=self._selector(), _request_timeout=30)
        for pod in listing.items:
            self._handle(self.core.api_client.sanitize_for_serialization(pod))
        return str(listing.metadata.resource_version)  # type: ignore[union-attr]  # a list always has it

    def _watch(self, version: str) -> None:
        stream = kubernetes.watch.Watch().stream(
            self.core.list_pod_for_all_namespaces,
            field_selector=self._selector(),
            resource_version=version,
            allow_watch_bookmarks=True,
            timeout_seconds=300,
            _request_timeout=330,
        )
        for event in stream:
            if self.stopped.is_set():
                return
            if event["type"] == "ERROR":
                raise ApiException(status=event["raw_object"].get("code"), reason="watch error")
            if event["type"] in ("ADDED", "MODIFIED"):
                self._handle(event["raw_object"])
            elif event["type"] == "DELETED":
                self._forget(event["raw_object"]["metadata"]["uid"])

    # -- one pod

    def _handle(self, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        uid = meta["uid"]
        if meta.get("deletionTimestamp"):
            with self.lock:
                if uid in self.terminating:
                    return
                self.terminating.add(uid)
            threading.Thread(target=self._terminate, args=(uid, meta["namespace"], meta["name"])).start()
            return
        with self.lock:
            if uid in self.pods:
                return
            status = pod.get("status") or {}
            known = _Pod(meta["namespace"], meta["name"], status.get("podIP") or self._free_ip(),
                         datetime.now(UTC), pod)  # fmt: skip
            self.pods[uid] = known
        if runs_as_process(pod):
            self._start(uid, known)
            return
        known.fault = self._fault(known.namespace, pod)
        run_to_completion = (pod.get("spec") or {}).get("restartPolicy") == "Never"
        if status.get("podIP") and status.get("phase") in (
            "Running",
            "Succeeded",
            "Failed",
        ):  # reported already
            counts = [c.get("restartCount", 0) for c in status.get("containerStatuses") or []]
            known.restarts = max(counts, default=0)
        elif run_to_completion:
            self._patch(known, completed_status(pod, known.fault != "crashloop", known.ip, self.host_ip,
                                                known.started, datetime.now(UTC)))  # fmt: skip
        else:
            self._report_simulated(uid)
        if known.fault == "crashloop" and not run_to_completion:
            self._schedule_crash(uid, known.restarts)

    def _terminate(self, uid: str, namespace: str, name: str) -> None:
        """Stop the pod's containers, then remove it, as a kubelet does when it sees a deletion."""
        self._forget(uid)
        with contextlib.suppress(ApiException):  # 404: already gone
            self.core.delete_namespaced_pod(name, namespace, grace_period_seconds=0, _request_timeout=30)
        with self.lock:
            self.terminating.discard(uid)

    def _forget(self, uid: str) -> None:
        with self.lock:
            pod = self.pods.pop(uid, None)
        for container in pod.containers.values() if pod else ():
            container.stop()

    def _fault(self, namespace: str, pod: Mapping[str, Any]) -> Fault:
        try:
            faults = self.core.read_namespaced_config_map(FAULTS_CONFIGMAP, namespace, _request_timeout=30)
        except ApiException as exc:
            if exc.status == 404:
                return "ok"
            raise
        return fault_for(pod, faults.data or {})

    def _free_ip(self) -> str:
        used = {p.ip for p in self.pods.values()}
        for address in self.pool.hosts():
            if str(address) not in used:
                return str(address)
        raise RuntimeError(f"pod CIDR {self.pool} is exhausted")

    def _patch(self, pod: _Pod, status: dict[str, Any]) -> None:
        try:
            self.core.patch_namespaced_pod_status(
                pod.name, pod.namespace, {"status": status}, _content_type=_MERGE, _request_timeout=30
            )
        except ApiException as exc:
            if exc.status != 404:
                log.warning("status of %s/%s not written: HTTP %s", pod.namespace, pod.name, exc.status)
        except Exception as exc:  # the API server restarting: the next change reports again
            log.warning("status of %s/%s not written: %s", pod.namespace, pod.name, exc)

    # -- pods run as processes

    def _lookup(self, namespace: str) -> Lookup:
        def lookup(kind: str, name: str, key: str) -> str | None:
            read = (
                self.core.read_namespaced_secret if kind == "secret" else self.core.read_namespaced_config_map
            )
            try:
                data = read(name, namespace, _request_timeout=30).data or {}
            except ApiException as exc:
                if exc.status == 404:
                    return None
                raise
            if key not in data:
                return None
            return base64.b64decode(data[key]).decode() if kind == "secret" else str(data[key])

        return lookup

    def _start(self, uid: str, pod: _Pod) -> None:
        folder = self.work / f"{pod.namespace}_{pod.name}"
        (folder / "tmp").mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(parents=True, exist_ok=True)
        for container in pod.body["spec"]["containers"]:
            name = container["name"]
            try:
                env = container_env(container, pod.body, pod.ip, self._lookup(pod.namespace))
            except ContainerConfigError as exc:
                log.warning("%s/%s %s: %s", pod.namespace, pod.name, name, exc)
                pod.states[name] = ContainerState(waiting="CreateContainerConfigError")
                continue
            termination_log = folder / f"{name}.termination-log"
            process_env = {"PATH": _path(), "HOME": str(folder), "TMPDIR": str(folder / "tmp"),
                           TERMINATION_LOG_ENV: str(termination_log), **NO_TELEMETRY, **env}  # fmt: skip
            runner = _Container(
                command_line(container, env, pod.ip),
                process_env,
                readiness_probe(container, pod.ip),
                self.logs / f"{pod.namespace}_{pod.name}_{name}.log",
                termination_log,
                functools.partial(self._container_changed, uid, name),
            )
            pod.containers[name] = runner
            pod.states[name] = runner.state
        self._report_processes(uid)
        for runner in pod.containers.values():
            runner.start()

    def _container_changed(self, uid: str, name: str, state: ContainerState) -> None:
        with self.lock:
            pod = self.pods.get(uid)
            if pod is None:
                return
            pod.states[name] = state
        self._report_processes(uid)

    def _report_processes(self, uid: str) -> None:
        with self.lock:
            pod = self.pods.get(uid)
            if pod is None:
                return
            status = pod_status(pod.body, dict(pod.states), pod.ip, self.host_ip, pod.started)
        self._patch(pod, status)

    # -- simulated pods

    def _report_simulated(self, uid: str) -> None:
        with self.lock:
            pod = self.pods.get(uid)
            if pod is None:
                return
            state = simulated_state(pod.fault, pod.started, pod.restarts, datetime.now(UTC))
            names = [c["name"] for c in pod.body["spec"]["containers"]]
            status = pod_status(pod.body, dict.fromkeys(names, state), pod.ip, self.host_ip, pod.started)
        self._patch(pod, status)

    def _schedule_crash(self, uid: str, restarts: int) -> None:
        delay = CRASH_BACKOFF_S[min(restarts, len(CRASH_BACKOFF_S) - 1)]
        with self.lock:
            heapq.heappush(self.crashes, (time.monotonic() + delay, uid))

    def _restart_crashed_forever(self) -> None:
        while not self.stopped.wait(0.2):
            now = time.monotonic()
            due: list[str] = []
            with self.lock:
                while self.crashes and self.crashes[0][0] <= now:
                    due.append(heapq.heappop(self.crashes)[1])
            for uid in due:
                with self.lock:
                    pod = self.pods.get(uid)
                    if pod is None:
                        continue
                    pod.restarts += 1
                self._report_simulated(uid)
                self._schedule_crash(uid, pod.restarts)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m modelrelease.sandbox.kubelet", description=__doc__)
    parser.add_argument("--kubeconfig", type=Path, required=True)
    parser.add_argument("--node", required=True, help="the node whose pods this process runs")
    parser.add_argument("--pod-cidr", required=True, help="the node's podCIDR (a loopback range)")
    parser.add_argument("--host-ip", default="127.0.0.1")
    parser.add_argument("--work-dir", type=Path, required=True, help="per-pod folders (TMPDIR, HOME)")
    parser.add_argument("--log-dir", type=Path, required=True, help="container logs")
    parser.add_argument("--ready-file", type=Path, help="written once the first list of pods succeeded")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    runner = PodRunner(
        kubernetes.config.new_client_from_config(config_file=str(args.kubeconfig)),
        args.node,
        args.pod_cidr,
        args.host_ip,
        args.work_dir,
        args.log_dir,
    )

    def stop(_signum: int, _frame: object) -> None:
        runner.stop()
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    runner.run(args.ready_file)
    return 0


if __name__ == "__main__":
    sys.exit(main())
