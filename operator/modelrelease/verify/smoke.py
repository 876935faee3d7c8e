"""The post-rollout smoke test's I/O: the version's serving input example, POSTed to `/invocations` on
each new pod's own IP (its `status.podIP`: never a ClusterIP, never a Service), with a bounded timeout.
The verdict on the answers is :func:`modelrelease.verify.checks.check_smoke_test`'s.

Only the example goes out: no registry credentials, no headers but the content type. An answer is read
up to a bound, and a pod that does not answer (connection refused, a timeout) is a failed answer with a
one-line reason, like a refusal.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import aiohttp

from modelrelease.api.models import Mode, ModelReleaseSpec
from modelrelease.registry.base import RegistryError
from modelrelease.render.manifests import target_container
from modelrelease.verify.checks import CheckResult, check_smoke_test, example_rows, smoke_answer_problem

REQUEST_TIMEOUT_S = 15.0
"""Whole-request timeout of one POST (connect, send, first prediction, read)."""
CONNECT_TIMEOUT_S = 3.0
ANSWER_MAX_BYTES = 1 << 20
"""An answer longer than this is cut there (and then is not valid JSON: a failed answer)."""
CONCURRENT_PODS = 8
"""Pods tested at the same time."""

Post = Callable[[str, bytes], Awaitable[tuple[int, str]]]
"""POST a JSON body to a URL: (HTTP status, body text). Raises aiohttp.ClientError or TimeoutError."""


def serving_port(spec: ModelReleaseSpec, live: Mapping[str, Any]) -> int:
    """The port the model server listens on: spec.serving.port for a managed Deployment; for a targetRef
    one, the first containerPort of the container that receives MODEL_URI (spec.serving.port without)."""
    if spec.serving.target_ref is None:
        return spec.serving.port
    name = target_container(dict(live), spec.serving.target_ref.container)
    containers = live.get("spec", {}).get("template", {}).get("spec", {}).get("containers") or []
    container: Mapping[str, Any] = next((c for c in containers if c.get("name") == name), {})
    ports = [p.get("containerPort") for p in container.get("ports") or [] if isinstance(p, Mapping)]
    return next((int(p) for p in ports if isinstance(p, int)), spec.serving.port)


def invocations_url(ip: str, port: int) -> str:
    """`http://<pod IP>:<port>/invocations`; ValueError when `ip` is not an IP address (a pod IP always is:
    a host name here would be resolved, and could be anything)."""
    address = ipaddress.ip_address(ip)
    host = f"[{address}]" if address.version == 6 else str(address)
    return f"http://{host}:{port}/invocations"


async def post_json(url: str, body: bytes) -> tuple[int, str]:
    """One POST with the bounded timeouts above, no proxy from the environment, no redirects."""
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S, connect=CONNECT_TIMEOUT_S)
    async with (
        aiohttp.ClientSession(timeout=timeout, trust_env=False) as session,
        session.post(
            url, data=body, headers={"Content-Type": "application/json"}, allow_redirects=False
        ) as response,
    ):
        data = await response.content.read(ANSWER_MAX_BYTES)
        return response.status, data.decode("utf-8", "replace")


def _unanswered(exc: BaseException) -> str:
    """Why a pod gave no answer, in one line."""
    if isinstance(exc, TimeoutError):
        return f"no answer within {REQUEST_TIMEOUT_S:g}s"
    if isinstance(exc, aiohttp.ClientConnectorError):
        if exc.os_error.errno == errno.ECONNREFUSED:
            return "connection refused (no server listens on the pod's IP and port)"
        return f"cannot connect: {exc.os_error.strerror or exc.os_error}"
    return " ".join(f"{type(exc).__name__}: {exc}".split())[:300]


async def smoke_test(
    mode: Mode,
    version: str,
    example: Mapping[str, Any] | RegistryError | None,
    pods: Sequence[tuple[str, str]],
    port: int,
    post: Post = post_json,
) -> CheckResult:
    """Send `example` to every pod in `pods`, (name, status.podIP) of the new ReplicaSet's Ready pods, and
    judge the answers."""
    if mode == "Off" or example is None or isinstance(example, RegistryError):
        return check_smoke_test(mode, version, example, {})
    body = json.dumps(example).encode()
    rows = example_rows(example)
    gate = asyncio.Semaphore(CONCURRENT_PODS)

    async def one(ip: str) -> str | None:
        try:
            url = invocations_url(ip, port)
        except ValueError:
            return f"status.podIP {ip[:64]!r} is not an IP address"
        async with gate:
            try:
                status, text = await post(url, body)
            except (aiohttp.ClientError, TimeoutError) as exc:
                return _unanswered(exc)
        return smoke_answer_problem(status, text, rows)

    answers = await asyncio.gather(*(one(ip) for _name, ip in pods))
    labels = (f"{name} ({ip})" for name, ip in pods)
    return check_smoke_test(mode, version, example, dict(zip(labels, answers, strict=True)))
