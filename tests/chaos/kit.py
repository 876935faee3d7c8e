"""What the chaos tests and the scale/chaos benchmarks share: a real watch kept in a thread (every change
of every object, in order, with its time), a process's CPU and RSS from /proc, and a sandbox component
paused (a component is restarted by the sandbox itself: `modelrelease.sandbox.stack.restart`)."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kubernetes
from kubernetes.client.exceptions import ApiException

Project = Callable[[Mapping[str, Any]], Any]
"""What of an object the watch keeps (a small tuple or string), from its raw JSON."""

CLK_TCK = os.sysconf("SC_CLK_TCK")


def model_uri_of(obj: Mapping[str, Any]) -> str | None:
    """The MODEL_URI of a Deployment's first container."""
    containers = obj.get("spec", {}).get("template", {}).get("spec", {}).get("containers") or [{}]
    env = containers[0].get("env") or []
    return next((e.get("value") for e in env if e.get("name") == "MODEL_URI"), None)


def release_state_of(obj: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """(phase, current version) of a ModelRelease."""
    status = obj.get("status") or {}
    return status.get("phase"), (status.get("current") or {}).get("version")


class Watch:
    """A real watch (list, then watch from its resourceVersion; list again after 410 Gone or any break) of
    one kind in one namespace, in a daemon thread. `latest` holds each object's projection; `changes`
    every projection that differed from the one before, with its monotonic time."""

    def __init__(self, list_fn: Callable[..., Any], namespace: str, project: Project) -> None:
        self._list = list_fn
        self.namespace = namespace
        self.project = project
        self.latest: dict[str, Any] = {}
        self.changes: list[tuple[float, str, Any]] = []
        self.lists = 0
        self.breaks = 0
        self._cond = threading.Condition()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"watch {namespace}")
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=30)

    def wait(self, what: str, done: Callable[[dict[str, Any]], bool], timeout: float) -> float:
        """Block until `done(latest)` holds (checked on every change); its monotonic time. Bounded."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not done(self.latest):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
                self._cond.wait(min(left, 1.0))
            return time.monotonic()

    def _record(self, name: str, value: Any) -> None:
        with self._cond:
            if name in self.latest and self.latest[name] == value:
                return
            self.latest[name] = value
            self.changes.append((time.monotonic(), name, value))
            self._cond.notify_all()

    def _forget(self, name: str) -> None:
        with self._cond:
            if self.latest.pop(name, None) is not None:
                self.changes.append((time.monotonic(), name, None))
            self._cond.notify_all()

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                response = self._list(self.namespace, _preload_content=False, _request_timeout=60)
                listing = json.loads(response.data)
                self.lists += 1
                seen = set()
                for item in listing.get("items") or []:
                    seen.add(item["metadata"]["name"])
                    self._record(item["metadata"]["name"], self.project(item))
                for gone in set(self.latest) - seen:
                    self._forget(gone)
                version = listing["metadata"]["resourceVersion"]
                while not self._stopping.is_set():
                    stream = kubernetes.watch.Watch().stream(
                        self._list,
                        self.namespace,
                        resource_version=version,
                        timeout_seconds=30,
                        allow_watch_bookmarks=True,
                        deserialize=False,
                        _request_timeout=60,
                    )
                    for event in stream:
                        obj = event["object"]
                        if event["type"] == "ERROR":
                            raise ApiException(status=obj.get("code"), reason=obj.get("reason"))
                        version = obj["metadata"]["resourceVersion"]
                        if event["type"] == "DELETED":
                            self._forget(obj["metadata"]["name"])
                        elif event["type"] != "BOOKMARK":
                            self._record(obj["metadata"]["name"], self.project(obj))
                        if self._stopping.is_set():
                            break
            except Exception:  # 410 Gone, a cut connection, an API server restarting: list again
                self.breaks += 1
                self._stopping.wait(0.5)


def deployments(api: kubernetes.client.ApiClient, namespace: str) -> Watch:
    return Watch(kubernetes.client.AppsV1Api(api).list_namespaced_deployment, namespace, model_uri_of)


def releases(api: kubernetes.client.ApiClient, namespace: str) -> Watch:
    from modelrelease.api.models import GROUP, PLURAL, VERSION

    custom = kubernetes.client.CustomObjectsApi(api)

    def list_releases(ns: str, **kwargs: Any) -> Any:
        return custom.list_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, **kwargs)

    list_releases.__doc__ = ":return: object"  # kubernetes.watch reads the return type from the docstring
    return Watch(list_releases, namespace, release_state_of)


# ------------------------------------------------------------------------------ process figures


@dataclass
class Sample:
    at: float
    cpu_s: float
    rss_mib: float


def sample(pid: int) -> Sample | None:
    """CPU seconds (user + system) and resident memory of a process, from /proc."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime (fields 14 and 15 of stat)
    rss_kib = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
    return Sample(time.monotonic(), cpu, rss_kib / 1024)


@dataclass
class Sampler:
    """Samples processes once a second in a thread, for figures over windows of its timeline."""

    pids: dict[str, int]
    interval: float = 1.0
    samples: dict[str, list[Sample]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.samples = {name: [] for name in self.pids}
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="sampler")
        self._thread.start()

    def _run(self) -> None:
        while not self._stopping.wait(self.interval):
            for name, pid in self.pids.items():
                taken = sample(pid)
                if taken is not None:
                    self.samples[name].append(taken)

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=10)

    def window(self, name: str, start: float, end: float) -> tuple[float, float]:
        """(CPU as a fraction of one core, peak RSS MiB) of `name` between two monotonic times."""
        inside = [s for s in self.samples[name] if start <= s.at <= end]
        if len(inside) < 2:
            return float("nan"), float("nan")
        cpu = (inside[-1].cpu_s - inside[0].cpu_s) / (inside[-1].at - inside[0].at)
        return cpu, max(s.rss_mib for s in inside)


# ------------------------------------------------------------------------------ control-plane faults


def _component(directory: Path, name: str) -> dict[str, Any]:
    state = json.loads((directory / "state.json").read_text())
    entry: dict[str, Any] = state["components"][name]
    return entry


@contextmanager
def paused(directory: Path, name: str) -> Iterator[None]:
    """A sandbox component stopped (SIGSTOP to its process group) for the block, then continued: its port
    accepts connections that nothing answers. For moto's S3, whose objects live in its memory and would
    not survive a restart."""
    pid = int(_component(directory, name)["pid"])
    os.killpg(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.killpg(pid, signal.SIGCONT)
