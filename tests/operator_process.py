"""The real operator process (`python -m modelrelease.cli run`) against a sandbox, for every test tier that
runs the operator: its metrics, liveness, webhook receiver and log, stopped and started on demand."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from prometheus_client.parser import text_string_to_metric_families

from modelrelease.sandbox.stack import SandboxInfo, free_port

T = TypeVar("T")
_STARTED: list[Operator] = []
"""Every operator process this test session started (running or not)."""


def eventually(what: str, probe: Callable[[], T | None], timeout: float = 90.0, interval: float = 0.2) -> T:
    """Poll `probe` until it returns something truthy; fail naming what was awaited."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")


class Operator:
    """The real operator process (`python -m modelrelease.cli run`) against the sandbox."""

    def __init__(
        self, sandbox: SandboxInfo, log: Path, extra_env: dict[str, str] | None = None, verbose: bool = True
    ) -> None:
        """`verbose` runs it with debug logging (tests read the log); benchmarks run it as the chart does."""
        self.sandbox = sandbox
        self.verbose = verbose
        self.log = log
        self.metrics_port = free_port()
        self.health_port = free_port()
        self.webhook_port = free_port()
        self.webhook_secret = uuid.uuid4().hex
        self.env = {
            **os.environ,
            **sandbox.env,
            "MODELRELEASE_DEFAULT_TRACKING_URI": sandbox.mlflow_url,
            "MODELRELEASE_METRICS_PORT": str(self.metrics_port),
            "MODELRELEASE_HEALTH_PORT": str(self.health_port),
            "MODELRELEASE_BIND_ADDRESS": "127.0.0.1",
            "MODELRELEASE_WEBHOOK_PORT": str(self.webhook_port),
            "MODELRELEASE_WEBHOOK_SECRET": self.webhook_secret,
            **(extra_env or {}),
        }
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "modelrelease.cli", "run", *(["--verbose"] if self.verbose else [])],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        if self not in _STARTED:
            _STARTED.append(self)
        eventually("the operator's liveness endpoint", self._alive, timeout=120)

    def _alive(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"operator exited with {self.process.returncode}; see {self.log}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}/healthz", timeout=2) as answer:
                return bool(answer.status == 200)
        except OSError:
            return False

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(sig)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)

    def restart(self) -> None:
        self.stop()
        self.start()

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as answer:
            text = answer.read().decode()
        values = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                values[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
        return values

    def push_webhook(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Deliver `payload` to the operator's MLflow webhook receiver, signed by MLflow's own code."""
        from mlflow.webhooks.constants import (
            WEBHOOK_DELIVERY_ID_HEADER,
            WEBHOOK_SIGNATURE_HEADER,
            WEBHOOK_TIMESTAMP_HEADER,
        )
        from mlflow.webhooks.delivery import _generate_hmac_signature

        body, delivery, stamp = json.dumps(payload), str(uuid.uuid4()), str(int(time.time()))
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.webhook_port}/webhooks/mlflow",
            data=body.encode(),
            headers={
                "Content-Type": "application/json",
                WEBHOOK_DELIVERY_ID_HEADER: delivery,
                WEBHOOK_TIMESTAMP_HEADER: stamp,
                WEBHOOK_SIGNATURE_HEADER: _generate_hmac_signature(
                    self.webhook_secret, delivery, stamp, body
                ),
            },
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            result: dict[str, Any] = json.loads(answer.read())
            return result

    def metric(self, name: str, **labels: str) -> float:
        wanted = tuple(sorted(labels.items()))
        return sum(v for (n, ls), v in self.metrics().items() if n == name and set(wanted) <= set(ls))


@contextmanager
def operators_paused() -> Iterator[None]:
    """Stop every operator this session runs, and start them again afterwards: for tests that write a
    release's status themselves, which a running operator would overwrite with the status it computes."""
    paused = [operator for operator in _STARTED if operator.running()]
    for operator in paused:
        operator.stop()
    try:
        yield
    finally:
        for operator in paused:
            operator.start()
