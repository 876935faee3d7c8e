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
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import kubernetes
from kubernetes.client.exceptions import ApiException

from modelrelease.api.models import GROUP, KIND, PLURAL, VERSION

FIELD_MANAGER = "modelrelease-operator"
COMPONENT = "modelrelease-operator"
KUBE_IO_THREADS = 24
"""API calls in flight at once: as many as the scheduler runs passes (scheduler.CONCURRENCY), so that a
pass waits for the API server, not for a thread; the connection pool holds as many connections."""
REQUEST_TIMEOUT_S = 30.0
_MERGE = "application/merge-patch+json"
# Server-side apply. The client sends a dict body for a */*+yaml content type as JSON, which is YAML.
_APPLY = "application/apply-patch+yaml"
_FORCED = {"fieldManager": FIELD_MANAGER, "force": "true"}


def _path(group_version: str, namespace: str, plural: str, name: str | None = None) -> str:
    """The URL path of a namespaced collection, or of one object in it; names are quoted as a path
    segment (a name the API server accepts needs no quoting, but nothing here relies on that)."""
    collection = f"/{group_version}/namespaces/{quote(namespace, safe='')}/{plural}"
    return collection if name is None else f"{collection}/{quote(name, safe='')}"


def _release_path(namespace: str, name: str) -> str:
    return _path(f"apis/{GROUP}/{VERSION}", namespace, PLURAL, name)


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
        self._pool = ThreadPoolExecutor(max_workers=KUBE_IO_THREADS, thread_name_prefix="kube")

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._api.close()

    async def _json(
        self,
        method: str,
        path: str,
        query: Mapping[str, str] | None = None,
        body: Any = None,
        content_type: str | None = None,
    ) -> dict[str, Any]:
        """One request through the client's ApiClient (its credentials, TLS and connection pool), its
        answer as plain JSON, read and parsed in the pool thread. The client's generated API classes are
        not used: with their typed models they took 90 MiB of the operator's memory and more of its CPU
        than the requests themselves (bench/scale.py), while a pass works on dicts anyway.

        Raises ApiException for an answer other than 2xx, as the generated classes do."""

        def call() -> dict[str, Any]:
            headers = {"Accept": "application/json"}
            if content_type is not None:
                headers["Content-Type"] = content_type
            request = self._api.param_serialize(
                method=method,
                resource_path=path,
                query_params=list((query or {}).items()),
                header_params=headers,
                body=body,
                auth_settings=["BearerToken"],
            )
            response = self._api.call_api(*request, _request_timeout=REQUEST_TIMEOUT_S)
            data = response.read()
            if not 200 <= response.status <= 299:
                raise ApiException.from_response(http_resp=response, body=None, data=None)
            answer: dict[str, Any] = json.loads(data or b"{}")
            return answer

        return await asyncio.get_running_loop().run_in_executor(self._pool, call)

    async def _get(self, path: str) -> dict[str, Any] | None:
        try:
            return await self._json("GET", path)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    # -- ModelRelease

    async def get_release(self, namespace: str, name: str) -> dict[str, Any] | None:
        return await self._get(_release_path(namespace, name))

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
        return await self._json(
            "PATCH",
            f"{_release_path(namespace, name)}/status",
            {"fieldManager": FIELD_MANAGER},
            {"status": patch},
            _MERGE,
        )

    # -- Deployments and Services

    async def get_deployment(self, namespace: str, name: str) -> dict[str, Any] | None:
        return await self._get(_path("apis/apps/v1", namespace, "deployments", name))

    async def get_service(self, namespace: str, name: str) -> dict[str, Any] | None:
        return await self._get(_path("api/v1", namespace, "services", name))

    async def apply_deployment(self, manifest: dict[str, Any]) -> dict[str, Any]:
        """Server-side apply of `manifest` (an apply configuration: only the fields the operator has an
        opinion on) as the operator's field manager, creating the Deployment if need be. Fields other
        managers own (a label, `kubectl rollout restart`'s annotation, an HPA's replicas) are left as they
        are; conflicts on fields in `manifest` are forced: the operator owns those. Raises Refused when
        the API server finds the result invalid (a value the CRD cannot check, such as requests above
        limits)."""
        meta = manifest["metadata"]
        try:
            return await self._json(
                "PATCH",
                _path("apis/apps/v1", meta["namespace"], "deployments", meta["name"]),
                _FORCED,
                manifest,
                _APPLY,
            )
        except ApiException as exc:
            if exc.status == 422:
                raise _refusal(exc) from exc
            raise

    async def apply_service(self, manifest: dict[str, Any]) -> dict[str, Any]:
        """Server-side apply of the managed Service, like `apply_deployment` (the API server keeps the
        clusterIP it allocated: the operator never names it)."""
        meta = manifest["metadata"]
        return await self._json(
            "PATCH", _path("api/v1", meta["namespace"], "services", meta["name"]), _FORCED, manifest, _APPLY
        )

    async def hpa_targets(self, namespace: str, deployment: str) -> bool:
        """Whether a HorizontalPodAutoscaler in the namespace scales this Deployment (only
        spec.scaleTargetRef is read: an HPA its controller has not yet given a status is fine)."""
        listing = await self._json("GET", _path("apis/autoscaling/v2", namespace, "horizontalpodautoscalers"))
        return any(
            (hpa.get("spec", {}).get("scaleTargetRef") or {}).get("kind") == "Deployment"
            and hpa["spec"]["scaleTargetRef"].get("name") == deployment
            for hpa in listing.get("items", [])
        )

    async def list_pods(self, namespace: str, selector: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The pods a Deployment's `spec.selector` (matchLabels, matchExpressions) selects."""
        listing = await self._json(
            "GET", _path("api/v1", namespace, "pods"), {"labelSelector": label_selector(selector)}
        )
        return list(listing.get("items") or [])

    # -- Secrets and Events

    async def secret_data(self, namespace: str, name: str) -> dict[str, str] | None:
        """The decoded data of a Secret, or None when it does not exist. Values are never logged."""
        secret = await self._get(_path("api/v1", namespace, "secrets", name))
        if secret is None:
            return None
        data = {
            k: base64.b64decode(v).decode("utf-8", "replace") for k, v in (secret.get("data") or {}).items()
        }
        return {**data, **(secret.get("stringData") or {})}

    async def config_map_data(self, namespace: str, name: str) -> dict[str, str] | None:
        """The data of a ConfigMap (one GET, no cache), or None when it does not exist."""
        config_map = await self._get(_path("api/v1", namespace, "configmaps", name))
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
        await self._json("POST", _path("api/v1", meta["namespace"], "events"), body=body)


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
