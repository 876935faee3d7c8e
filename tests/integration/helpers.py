"""Shared helpers of the operator integration tests: a real MLflow model registrar, a stoppable reverse proxy
in front of the registry, and bounded waits; the real operator process is `operator_process.Operator`."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import kubernetes
from aiohttp import ClientSession, web
from kubernetes.client.exceptions import ApiException

from modelrelease.api.models import GROUP, PLURAL, VERSION
from modelrelease.sandbox.kubelet import FAULTS_CONFIGMAP, fault_key
from modelrelease.sandbox.registrar import Registrar
from modelrelease.sandbox.stack import SandboxInfo, free_port
from operator_process import Operator, eventually

__all__ = ["Operator", "eventually", "free_port"]  # re-exported for the test modules

ROOT = Path(__file__).resolve().parents[2]
CRD = ROOT / "crds" / "modelrelease.io_modelreleases.yaml"


# ------------------------------------------------------------------------------ Kubernetes side


class Cluster:
    """The sandbox's API through the official client."""

    def __init__(self, sandbox: SandboxInfo) -> None:
        api = kubernetes.config.new_client_from_config(config_file=str(sandbox.kubeconfig))
        self.api = api
        # Typed as Any: the client takes plain dict bodies, which its annotations do not say.
        self.custom: Any = kubernetes.client.CustomObjectsApi(api)
        self.apps: Any = kubernetes.client.AppsV1Api(api)
        self.core: Any = kubernetes.client.CoreV1Api(api)
        self.autoscaling: Any = kubernetes.client.AutoscalingV2Api(api)

    def namespace(self, prefix: str) -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:6]}"
        self.core.create_namespace({"metadata": {"name": name}})
        return name

    def apply_release(self, namespace: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "ModelRelease",
            "metadata": {"name": name, "namespace": namespace},
            "spec": spec,
        }
        try:
            live = self.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
        except ApiException as exc:
            if exc.status != 404:
                raise
            created: dict[str, Any] = self.custom.create_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, body
            )
            return created
        patched: dict[str, Any] = self.custom.patch_namespaced_custom_object(
            GROUP,
            VERSION,
            namespace,
            PLURAL,
            name,
            {"spec": spec},
            _content_type="application/merge-patch+json",
        )
        del live
        return patched

    def delete_releases(self, namespace: str) -> None:
        listing = self.custom.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)
        for item in listing.get("items", []):
            self.custom.delete_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, item["metadata"]["name"]
            )

    def release(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            obj: dict[str, Any] = self.custom.get_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, name
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return obj

    def status(self, namespace: str, name: str) -> dict[str, Any]:
        release = self.release(namespace, name) or {}
        status: dict[str, Any] = release.get("status") or {}
        return status

    def condition(self, namespace: str, name: str, type_: str) -> dict[str, Any]:
        conditions = self.status(namespace, name).get("conditions") or []
        return next((c for c in conditions if c["type"] == type_), {})

    def deployment(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            obj = self.apps.read_namespaced_deployment(name, namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        plain: dict[str, Any] = self.api.sanitize_for_serialization(obj)
        return plain

    def model_uri(self, namespace: str, name: str, container: int = 0) -> str | None:
        deployment = self.deployment(namespace, name)
        if deployment is None:
            return None
        env = deployment["spec"]["template"]["spec"]["containers"][container].get("env") or []
        return next((e.get("value") for e in env if e["name"] == "MODEL_URI"), None)

    def events(self, namespace: str, name: str) -> list[dict[str, Any]]:
        listing = self.api.sanitize_for_serialization(self.core.list_namespaced_event(namespace))
        return [e for e in listing.get("items", []) if e.get("involvedObject", {}).get("name") == name]

    def inject_fault(self, namespace: str, model_uri: str, fault: str) -> None:
        body = {
            "metadata": {"name": FAULTS_CONFIGMAP, "namespace": namespace},
            "data": {fault_key(model_uri): fault},
        }
        try:
            self.core.create_namespaced_config_map(namespace, body)
        except ApiException as exc:
            if exc.status != 409:
                raise
            self.core.patch_namespaced_config_map(FAULTS_CONFIGMAP, namespace, {"data": body["data"]})


def history(status: dict[str, Any]) -> list[tuple[str, str | None]]:
    return [(h["version"], h.get("outcome")) for h in status.get("history") or []]


def ready_on(cluster: Cluster, namespace: str, name: str, model: str, version: str) -> bool:
    """Whether `models:/model/version` serves through the release, with phase Ready."""
    status = cluster.status(namespace, name)
    return (
        cluster.model_uri(namespace, name) == f"models:/{model}/{version}"
        and status.get("phase") == "Ready"
        and (status.get("current") or {}).get("version") == version
    )


def release_spec(
    model: str, tracking_uri: str | None = None, poll: str = "5s", **extra: Any
) -> dict[str, Any]:
    """A release following the alias `champion` of `model`, polled every `poll`."""
    spec: dict[str, Any] = {
        "model": {"name": model, "alias": "champion"},
        "registry": {"pollInterval": poll},
        "rollout": {"progressDeadlineSeconds": 12},
    }
    if tracking_uri is not None:
        spec["registry"]["trackingUri"] = tracking_uri
    spec.update(extra)
    return spec


def model_name(prefix: str) -> str:
    """A registered-model name no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


# ------------------------------------------------------------------------------ MLflow side


class Models(Registrar):
    """Registers real scikit-learn models (trained once, logged per version with its own run)."""

    def __init__(self, sandbox: SandboxInfo) -> None:
        from mlflow.models import infer_signature
        from sklearn.datasets import load_iris
        from sklearn.linear_model import LogisticRegression

        super().__init__(sandbox, "operator-integration")
        x, y = load_iris(return_X_y=True, as_frame=True)
        self.estimator = LogisticRegression(max_iter=300).fit(x, y)
        self.signature = infer_signature(x, self.estimator.predict(x))

    def register(self, name: str, f1: float = 0.95, stamp: bool = True) -> str:
        return self.log_version(name, self.estimator, self.signature, {"f1": f1}, stamp=stamp)


# ------------------------------------------------------------------------------ registry proxy


class RegistryProxy:
    """A reverse proxy in front of the MLflow server on a fixed loopback port, run in its own thread:
    counts requests per path, can be taken down and brought back (a registry outage), and answers
    every request with `fault` (an HTTP status) while that is set."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.counts: Counter[str] = Counter()
        self.fault: int | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._runner: web.AppRunner | None = None
        self._session: ClientSession | None = None

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=30)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.counts[request.path] += 1
        if self.fault is not None:
            return web.Response(status=self.fault, text="injected by the test proxy")
        if self._session is None:
            self._session = ClientSession()
        headers = {k: v for k, v in request.headers.items() if k in ("Authorization", "Content-Type")}
        async with self._session.request(
            request.method, self.upstream + request.path_qs, data=await request.read(), headers=headers
        ) as answer:
            return web.Response(
                status=answer.status, body=await answer.read(), content_type=answer.content_type
            )

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def _stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def up(self) -> None:
        self._call(self._start())

    def down(self) -> None:
        self._call(self._stop())

    def close(self) -> None:
        self.down()
        if self._session is not None:
            self._call(self._session.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)


@contextmanager
def registry_proxy(upstream: str) -> Iterator[RegistryProxy]:
    proxy = RegistryProxy(upstream)
    proxy.up()
    try:
        yield proxy
    finally:
        proxy.close()
