"""What the benchmarks share: one sandbox per run (and at most one operator process), tables, ratios."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path

from integration.helpers import CRD, Cluster, Models
from modelrelease.sandbox import stack
from operator_process import Operator

CLIENT_ENV = {
    # The blocking MLflow client used for setup must fail fast, not retry for minutes.
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "60",
}
MIB = 1 << 20


class Env:
    """A running sandbox plus what the benchmarks need from it, each made on first use."""

    def __init__(self, sandbox: stack.SandboxInfo, work: Path) -> None:
        self.sandbox = sandbox
        self.work = work
        self._operator: Operator | None = None

    @cached_property
    def models(self) -> Models:
        return Models(self.sandbox)

    @cached_property
    def cluster(self) -> Cluster:
        """The sandbox's API, with the ModelRelease CRD installed by the real kubectl."""
        stack.install_crd(self.sandbox, CRD)
        return Cluster(self.sandbox)

    def operator(self) -> Operator:
        """The real operator process (`modelrelease run`), started once, allowed any loopback registry."""
        if self._operator is None:
            self.cluster  # noqa: B018  (the CRD must exist before kopf starts watching it)
            self._operator = Operator(
                self.sandbox,
                self.work / "operator.log",
                extra_env={"MODELRELEASE_ALLOWED_TRACKING_URIS": "http://127.0.0.1:"},
            )
            self._operator.start()
        return self._operator

    def close(self) -> None:
        if self._operator is not None:
            self._operator.stop()


@contextmanager
def environment() -> Iterator[Env]:
    """A fresh sandbox in a temporary folder, brought down (and the folder removed) afterwards.

    The process environment points at the sandbox while it runs (MLflow client, boto3, kubectl), as
    the integration tests' fixtures do; it is restored afterwards. On failure the folder (logs) stays.
    """
    work = Path(tempfile.mkdtemp(prefix="modelrelease-bench-"))
    saved = dict(os.environ)
    ok = False
    try:
        started = time.monotonic()
        info = stack.up(work / "sandbox")
        try:
            print(f"sandbox up in {time.monotonic() - started:.0f}s", flush=True)
            os.environ.update({**info.env, **CLIENT_ENV})
            env = Env(info, work)
            try:
                yield env
            finally:
                env.close()
        finally:
            stack.down(work / "sandbox")
        ok = True
    finally:
        os.environ.clear()
        os.environ.update(saved)
        if ok:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"benchmark failed; logs kept in {work}", file=sys.stderr)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def ratio(numerator: float, denominator: float) -> str:
    return f"{numerator / denominator:.1f}x" if denominator else "n/a"


def table(title: str, headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain-text table: a title line, then columns padded to their widest cell."""
    cells = [[str(h) for h in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) for row in cells]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join([f"\n== {title}", *(line.rstrip() for line in lines)])
