"""The one thin adapter between the operator and the Kubernetes API.

The official `kubernetes` client is synchronous, so every call runs in a small dedicated thread pool
(never on kopf's event loop, never in kopf's own executor). Objects go in and come out as plain
camelCase dicts, the shape the pure render/reconcile modules work with.
"""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from functools import partial
from typing import Any, TypeVar

import kubernetes
from kubernetes.client.exceptions import ApiException

from modelrelease.api.models import GROUP, KIND, PLURAL, VERSION

T = TypeVar("T")

FIELD_MANAGER = "modelrelease-operator"
COMPONENT = "modelrelease-operator"
KUBE_IO_THREADS = 24
"""API calls in flight at once: as many as the scheduler runs passes (scheduler.CONCURRENCY), so that a
pass waits for the API server, not for a thread; the connection pool holds as many connections."""
REQUEST_TIMEOUT_S = 30.0
_MERGE = "application/merge-patch+json"
# Server-side apply. The client sends a dict body for a */*+yaml content type as JSON, which is YAML.
_APPLY = "application/apply-patch+yaml"


class Refused(Exception):
    """The API server refused a write as invalid (HTTP 422); the message is its own, on one line."""


def api_message(exc: ApiException) -> str:
    """The API server's own message for a failed request (its Status body), on one line."""
    try:
        message = str(json.loads(exc.body or "")["message"])
    except (ValueError, KeyError, TypeError):
        message = f"HTTP {exc.status} {exc.reason}"
    return " ".join(message.split())


def _refusal(exc: ApiException) -> Refused:
    return Refused(api_message(exc))


def load_config() -> kubernetes.client.ApiClient:
    """In-cluster credentials when running in a pod, else the current kubeconfig (KUBECONFIG)."""
    try:
        kubernetes.config.load_incluster_config()
    except kubernetes.config.ConfigException:
        kubernetes.config.load_kube_config()
    configuration = kubernetes.client.Configuration.get_default_copy()
    configuration.connection_pool_maxsize = KUBE_IO_THREADS
    return kubernetes.client.ApiClient(configuration)


class Kube:
    """Typed, small: exactly the reads and writes the operator makes."""

    def __init__(self, api: kubernetes.client.ApiClient) -> None:
        self._api = api
        self._apps = kubernetes.client.AppsV1Api(api)
        self._core = kubernetes.client.CoreV1Api(api)
        self._custom = kubernetes.client.CustomObjectsApi(api)
        self._autoscaling = kubernetes.client.AutoscalingV2Api(api)
        self._pool = ThreadPoolExecutor(max_workers=KUBE_IO_THREADS, thread_name_prefix="kube")

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._api.close()

    async def _run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        call = partial(fn, *args, _request_timeout=REQUEST_TIMEOUT_S, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(self._pool, call)

    def _plain(self, obj: Any) -> dict[str, Any]:
        data: dict[str, Any] = self._api.sanitize_for_serialization(obj)
        return data

    async def _get(self, fn: Callable[..., Any], *args: Any) -> dict[str, Any] | None:
        try:
            return self._plain(await self._run(fn, *args))
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    # -- ModelRelease

    async def get_release(self, namespace: str, name: str) -> dict[str, Any] | None:
        return await self._get(
            self._custom.get_namespaced_custom_object, GROUP, VERSION, namespace, PLURAL, name
        )

    async def write_release_status(
        self, namespace: str, name: str, old: Mapping[str, Any] | None, new: Mapping[str, Any]
    ) -> dict[str, Any] | None:
        """Make the status subresource hold exactly `new`, given `old`, the status as read in this pass (the
        operator never writes a release's spec). Sends nothing when the two are equal (returns None), else
        returns the release as the API server answered.

        A JSON merge patch with explicit nulls (`merge_diff`) rather than a replace: the operator is the
        only writer of the status, passes over one release run one at a time and each starts from the newest
        body seen (the watch's, or this method's answer to the last write: `modelrelease.kube.watched`), so
        `old` is what the server holds and the patch leaves exactly `new`. A PUT guarded by
        resourceVersion would add nothing but conflicts with every metadata write in between (kopf's own
        annotations on the release) and a re-read/retry path for them."""
        patch = merge_diff(old, new)
        if not patch:
            return None
        written: Any = await self._run(
            self._custom.patch_namespaced_custom_object_status,
            GROUP,
            VERSION,
            namespace,
            PLURAL,
            name,
            {"status": patch},
            field_manager=FIELD_MANAGER,
            _content_type=_MERGE,
        )
        return dict(written)

    # -- Deployments and Services

    async def get_deployment(self, namespace: str, name: str) -> dict[str, Any] | None:
        return await self._get(self._apps.read_namespaced_deployment, name, namespace)

    async def get_service(self, namespace: str, name: str) -> dict[str, Any] | None:
        return await self._get(self._core.read_namespaced_service, name, namespace)

    async def apply_deployment(self, manifest: dict[str, Any]) -> dict[str, Any]:
        """Server-side apply of `manifest` (an apply configuration: only the fields the operator has an
        opinion on) as the operator's field manager, creating the Deployment if need be. Fields other
        managers own (a label, `kubectl rollout restart`'s annotation, an HPA's replicas) are left as they
        are; conflicts on fields in `manifest` are forced: the operator owns those. Raises Refused when
        the API server finds the result invalid (a value the CRD cannot check, such as requests above
        limits)."""
        meta = manifest["metadata"]
        try:
            applied = await self._run(
                self._apps.patch_namespaced_deployment,
                meta["name"],
                meta["namespace"],
                manifest,
                field_manager=FIELD_MANAGER,
                force=True,
                _content_type=_APPLY,
            )
        except ApiException as exc:
            if exc.status == 422:
                raise _refusal(exc) from exc
            raise
        return self._plain(applied)

    async def apply_service(self, manifest: dict[str, Any]) -> dict[str, Any]:
        """Server-side apply of the managed Service, like `apply_deployment` (the API server keeps the
        clusterIP it allocated: the operator never names it)."""
        meta = manifest["metadata"]
        return self._plain(
            await self._run(
                self._core.patch_namespaced_service,
                meta["name"],
                meta["namespace"],
                manifest,
                field_manager=FIELD_MANAGER,
                force=True,
                _content_type=_APPLY,
            )
        )

    async def hpa_targets(self, namespace: str, deployment: str) -> bool:
        """Whether a HorizontalPodAutoscaler in the namespace scales this Deployment.

        Read as raw JSON: an HPA its controller has not yet given a status does not fit the client's
        typed model, and only spec.scaleTargetRef matters here."""
        listing = await self._list_json(
            self._autoscaling.list_namespaced_horizontal_pod_autoscaler, namespace
        )
        return any(
            (hpa.get("spec", {}).get("scaleTargetRef") or {}).get("kind") == "Deployment"
            and hpa["spec"]["scaleTargetRef"].get("name") == deployment
            for hpa in listing.get("items", [])
        )

    async def list_pods(self, namespace: str, selector: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The pods a Deployment's `spec.selector` (matchLabels, matchExpressions) selects, as raw JSON:
        only their metadata and status matter here."""
        listing = await self._list_json(
            self._core.list_namespaced_pod, namespace, label_selector=label_selector(selector)
        )
        return list(listing.get("items") or [])

    async def _list_json(self, fn: Callable[..., Any], namespace: str, **kwargs: Any) -> dict[str, Any]:
        """A namespaced list call's answer as plain JSON, not the client's typed model."""

        def read(_request_timeout: float) -> dict[str, Any]:
            # Unpreloaded, the body is read by `.data`: here, in the pool thread, not on the event loop.
            response: Any = fn(namespace, _preload_content=False, _request_timeout=_request_timeout, **kwargs)
            listing: dict[str, Any] = json.loads(response.data)
            return listing

        return await self._run(read)

    # -- Secrets and Events

    async def secret_data(self, namespace: str, name: str) -> dict[str, str] | None:
        """The decoded data of a Secret, or None when it does not exist. Values are never logged."""
        secret = await self._get(self._core.read_namespaced_secret, name, namespace)
        if secret is None:
            return None
        data = {
            k: base64.b64decode(v).decode("utf-8", "replace") for k, v in (secret.get("data") or {}).items()
        }
        return {**data, **(secret.get("stringData") or {})}

    async def config_map_data(self, namespace: str, name: str) -> dict[str, str] | None:
        """The data of a ConfigMap (one GET, no cache), or None when it does not exist."""
        config_map = await self._get(self._core.read_namespaced_config_map, name, namespace)
        return None if config_map is None else dict(config_map.get("data") or {})

    async def create_event(
        self, release: dict[str, Any], type_: str, reason: str, message: str, now: datetime | None = None
    ) -> None:
        """A core/v1 Event about a ModelRelease."""
        meta = release["metadata"]
        stamp = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": f"{meta['name']}.{uuid.uuid4().hex[:16]}", "namespace": meta["namespace"]},
            "involvedObject": {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": KIND,
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta.get("uid"),
                "resourceVersion": meta.get("resourceVersion"),
            },
            "type": type_,
            "reason": reason,
            "message": message[:1024],
            "source": {"component": COMPONENT},
            "reportingComponent": COMPONENT,
            "reportingInstance": COMPONENT,
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
        }
        await self._run(self._core.create_namespaced_event, meta["namespace"], body)


def label_selector(selector: Mapping[str, Any]) -> str:
    """A LabelSelector (`matchLabels`, `matchExpressions`) in the query syntax of `?labelSelector=`. An
    empty selector selects everything, as in Kubernetes. ValueError for an operator the API server would
    have refused."""
    terms = [f"{key}={value}" for key, value in sorted((selector.get("matchLabels") or {}).items())]
    for expression in selector.get("matchExpressions") or []:
        key, operator, values = (
            expression.get("key", ""),
            expression.get("operator"),
            expression.get("values"),
        )
        if operator in ("In", "NotIn"):
            terms.append(f"{key} {operator.lower()} ({','.join(values or [])})")
        elif operator == "Exists":
            terms.append(key)
        elif operator == "DoesNotExist":
            terms.append(f"!{key}")
        else:
            raise ValueError(
                f"label selector operator {operator!r} is not one of In, NotIn, Exists, DoesNotExist"
            )
    return ",".join(terms)


def merge_diff(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> dict[str, Any]:
    """The RFC 7386 merge patch turning `old` into `new`: what `new` lacks becomes null (removed), objects
    in both are diffed key by key, anything else (lists too, which a merge patch replaces) is sent whole
    when it differs. Empty when the two are equal."""
    old = old or {}
    patch: dict[str, Any] = {key: None for key in old if key not in new}
    for key, value in new.items():
        before = old.get(key)
        if isinstance(value, Mapping) and isinstance(before, Mapping):
            nested = merge_diff(before, value)
            if nested:
                patch[key] = nested
        elif key not in old or before != value:
            patch[key] = value
    return patch
