"""Helpers shared by the emulator conformance tests: start/stop the emulator, kubeconfig, polling."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import urllib3

from modelrelease.sandbox.stack import stop_process

HERE = Path(__file__).parent
KUBECTL = shutil.which("kubectl") or "kubectl"


@dataclass(frozen=True)
class Emulator:
    url: str
    kubeconfig: Path
    env: dict[str, str]  # KUBECONFIG and client caches pointing into the session's tmp dir


def write_kubeconfig(path: Path, url: str, namespace: str = "default") -> None:
    path.write_text(
        "apiVersion: v1\nkind: Config\n"
        f"clusters: [{{name: emu, cluster: {{server: '{url}'}}}}]\n"
        "users: [{name: emu, user: {}}]\n"
        f"contexts: [{{name: emu, context: {{cluster: emu, user: emu, namespace: {namespace}}}}}]\n"
        "current-context: emu\n"
    )


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05) -> Any:
    """Poll until `predicate()` is truthy (returning it) or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)


def start_emulator(workdir: Path, *extra: str) -> tuple[subprocess.Popen[bytes], str]:
    """Start `python -m modelrelease.sandbox.apiserver` on a free port; returns (process, base URL)."""
    workdir.mkdir(parents=True, exist_ok=True)
    port_file = workdir / "port"
    port_file.unlink(missing_ok=True)
    log = (workdir / "apiserver.log").open("wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "modelrelease.sandbox.apiserver",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--port-file",
            str(port_file),
            *extra,
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for(lambda: port_file.exists() or proc.poll() is not None, timeout=20)
        if proc.poll() is not None:
            raise RuntimeError(f"emulator exited: {(workdir / 'apiserver.log').read_text()[-2000:]}")
        url = f"http://127.0.0.1:{port_file.read_text().strip()}"
        http = urllib3.PoolManager()
        wait_for(lambda: http.request("GET", url + "/readyz", retries=False).status == 200, timeout=10)
    except BaseException:
        proc.kill()
        raise
    return proc, url


def stop_emulator(proc: subprocess.Popen[bytes]) -> None:
    stop_process(proc)
