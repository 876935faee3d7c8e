"""The sandbox's stand-in for the kubelet: it writes the status of pods scheduled onto the sandbox's nodes.

No container runtime runs here, so kwok keeps the nodes Ready and this process plays the pod half of a
kubelet on the real control plane: the real kube-scheduler binds pods to the kwok node, this process marks
them Running with an IP of their own from the node's loopback podCIDR (never a routable address: nothing
listens there, and nothing must try), and removes deleted pods once they are terminating, as a kubelet does
when their containers have stopped. The real Deployment and ReplicaSet controllers then report what follows
(Available, ProgressDeadlineExceeded, ...). A pod with `restartPolicy: Never` (a `helm test` hook, a Job's
pod) runs to completion: its containers exit 0 and it Succeeds, or Fails under a `crashloop` fault.

Faults are plain Kubernetes objects: the ConfigMap `sandbox-faults` in the pod's namespace maps the fault-key
spelling of a model URI (the container's `MODEL_URI` env value; `models:/fraud/5` -> `models_fraud_5`, since
ConfigMap keys allow only `[-._a-zA-Z0-9]`) to `crashloop` (the container keeps exiting: `CrashLoopBackOff`
with a growing `restartCount`), `unready` (running, never ready) or `ok`. It is read when a pod first
appears, so it applies to the pods a rollout creates after it was written.

`pod_status` is the pure step; `PodRunner` is the thin list/watch/patch loop.
"""

from __future__ import annotations

import argparse
import contextlib
import heapq
import ipaddress
import logging
import re
import signal
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, cast

import kubernetes
from kubernetes.client.exceptions import ApiException

log = logging.getLogger("modelrelease.sandbox.kubelet")

Fault = Literal["ok", "crashloop", "unready"]
FAULTS: tuple[Fault, ...] = ("ok", "crashloop", "unready")
FAULTS_CONFIGMAP = "sandbox-faults"
MODEL_URI_ENV = "MODEL_URI"
CRASH_BACKOFF_S = (1.0, 2.0, 4.0, 8.0)
"""Seconds between restarts of a crash-looping container: the kubelet's 10 s doubling to 5 min, scaled down
so a test sees restartCount grow within its deadline."""
_MERGE = "application/merge-patch+json"


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


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def pod_status(
    pod: Mapping[str, Any],
    fault: Fault,
    ip: str,
    host_ip: str,
    started: datetime,
    restarts: int,
    now: datetime,
) -> dict[str, Any]:
    """The complete status a kubelet would report for `pod` under `fault`."""
    if (pod.get("spec") or {}).get("restartPolicy") == "Never":
        return _completed(pod, fault != "crashloop", ip, host_ip, started, now)
    running = {"running": {"startedAt": _stamp(started)}}
    ready = fault == "ok"
    containers = []
    for container in (pod.get("spec") or {}).get("containers") or []:
        status: dict[str, Any] = {
            "name": container["name"],
            "image": container.get("image", ""),
            "imageID": "",
            "containerID": f"sandbox://{pod['metadata']['uid']}/{container['name']}",
            "ready": ready,
            "started": fault != "crashloop",
            "restartCount": restarts if fault == "crashloop" else 0,
            "state": running,
        }
        if fault == "crashloop":
            status["state"] = {
                "waiting": {
                    "reason": "CrashLoopBackOff",
                    "message": f"back-off restarting failed container={container['name']}",
                }
            }
            if restarts:
                status["lastState"] = {
                    "terminated": {
                        "exitCode": 1,
                        "reason": "Error",
                        "startedAt": _stamp(now),
                        "finishedAt": _stamp(now),
                    }
                }
        containers.append(status)
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
        "containerStatuses": containers,
    }


def _completed(
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


@dataclass
class _Running:
    namespace: str
    name: str
    fault: Fault
    ip: str
    started: datetime
    restarts: int = 0


class PodRunner:
    def __init__(self, api: kubernetes.client.ApiClient, node: str, cidr: str, host_ip: str) -> None:
        self.core = kubernetes.client.CoreV1Api(api)
        self.node = node
        self.host_ip = host_ip
        self.pool = ipaddress.ip_network(cidr)
        self.pods: dict[str, _Running] = {}
        self.crashes: list[tuple[float, str]] = []  # (due, uid) heap of pending container restarts
        self.lock = threading.Lock()
        self.stopped = threading.Event()

    # -- the loop

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
                with self.lock:
                    self.pods.pop(event["raw_object"]["metadata"]["uid"], None)

    # -- one pod

    def _handle(self, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        uid, namespace, name = meta["uid"], meta["namespace"], meta["name"]
        if meta.get("deletionTimestamp"):
            with contextlib.suppress(ApiException):  # 404: already gone
                self.core.delete_namespaced_pod(name, namespace, grace_period_seconds=0, _request_timeout=30)
            with self.lock:
                self.pods.pop(uid, None)
            return
        with self.lock:
            known = self.pods.get(uid)
        if known is not None:
            return
        status = pod.get("status") or {}
        now = datetime.now(UTC)
        with self.lock:
            ip = status.get("podIP") or self._free_ip()
            running = _Running(namespace, name, self._fault(namespace, pod), ip, now)
            self.pods[uid] = running
        if status.get("podIP") and status.get("phase") in (
            "Running",
            "Succeeded",
            "Failed",
        ):  # reported already
            counts = [c.get("restartCount", 0) for c in status.get("containerStatuses") or []]
            running.restarts = max(counts, default=0)
        else:
            self._report(uid, pod, running)
        if running.fault == "crashloop" and (pod.get("spec") or {}).get("restartPolicy") != "Never":
            self._schedule_crash(uid, running.restarts)

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

    def _report(self, uid: str, pod: Mapping[str, Any], running: _Running) -> None:
        status = pod_status(
            pod, running.fault, running.ip, self.host_ip, running.started, running.restarts, datetime.now(UTC)
        )
        try:
            self.core.patch_namespaced_pod_status(
                running.name, running.namespace, {"status": status}, _content_type=_MERGE, _request_timeout=30
            )
        except ApiException as exc:
            if exc.status != 404:
                raise

    # -- crash loops

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
                self._restart_crashed(uid)

    def _restart_crashed(self, uid: str) -> None:
        with self.lock:
            running = self.pods.get(uid)
            if running is None:
                return
            running.restarts += 1
        try:
            pod = self.core.read_namespaced_pod(running.name, running.namespace, _request_timeout=30)
            self._report(uid, self.core.api_client.sanitize_for_serialization(pod), running)
        except ApiException as exc:
            if exc.status == 404:
                return
            log.warning("restart of %s/%s not reported: HTTP %s", running.namespace, running.name, exc.status)
        except Exception as exc:
            log.warning("restart of %s/%s not reported: %s", running.namespace, running.name, exc)
        self._schedule_crash(uid, running.restarts)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m modelrelease.sandbox.kubelet", description=__doc__)
    parser.add_argument("--kubeconfig", type=Path, required=True)
    parser.add_argument("--node", required=True, help="the node whose pods this process runs")
    parser.add_argument("--pod-cidr", required=True, help="the node's podCIDR (a loopback range)")
    parser.add_argument("--host-ip", default="127.0.0.1")
    parser.add_argument("--ready-file", type=Path, help="written once the first list of pods succeeded")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    runner = PodRunner(
        kubernetes.config.new_client_from_config(config_file=str(args.kubeconfig)),
        args.node,
        args.pod_cidr,
        args.host_ip,
    )

    def stop(_signum: int, _frame: object) -> None:
        runner.stopped.set()
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    runner.run(args.ready_file)
    return 0


if __name__ == "__main__":
    sys.exit(main())
