"""OpenAPI v3 documents: enough for clients to learn that every kind supports server-side field validation.

`kubectl apply` (validate=strict by default) reads `/openapi/v3`, then the group-version document, and
looks for a PATCH operation tagged with the kind's `x-kubernetes-group-version-kind` that takes a
`fieldValidation` query parameter; finding one, it leaves validation to the server. Custom resources also
carry their CRD schema, so `kubectl explain` works for them.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from .resources import Registry, ResourceType

_QUERY_PARAMS = ("dryRun", "fieldManager", "fieldValidation", "pretty")
_JSON = {"application/json": {"schema": {"type": "object"}}}


def gv_path(rt: ResourceType) -> str:
    return f"apis/{rt.group}/{rt.version}" if rt.group else f"api/{rt.version}"


def _params(names: tuple[str, ...]) -> list[dict[str, Any]]:
    return [{"name": n, "in": "query", "schema": {"type": "string", "uniqueItems": True}} for n in names]


def _operation(rt: ResourceType, action: str, params: tuple[str, ...]) -> dict[str, Any]:
    op: dict[str, Any] = {
        "operationId": f"{action}{rt.kind}",
        "parameters": _params(params),
        "responses": {"200": {"description": "OK", "content": _JSON}},
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": {"group": rt.group, "kind": rt.kind, "version": rt.version},
    }
    if action in ("post", "put", "patch"):
        op["requestBody"] = {"content": _JSON, "required": True}
    return op


def _paths(rt: ResourceType) -> dict[str, Any]:
    base = f"/{gv_path(rt)}"
    collection = f"{base}/namespaces/{{namespace}}/{rt.plural}" if rt.namespaced else f"{base}/{rt.plural}"
    item = f"{collection}/{{name}}"
    paths = {
        collection: {
            "get": _operation(rt, "list", ("labelSelector", "fieldSelector", "limit", "watch")),
            "post": _operation(rt, "post", _QUERY_PARAMS),
        },
        item: {
            "get": _operation(rt, "get", ("pretty",)),
            "put": _operation(rt, "put", _QUERY_PARAMS),
            "patch": _operation(rt, "patch", (*_QUERY_PARAMS, "force")),
            "delete": _operation(rt, "delete", ("dryRun", "propagationPolicy", "gracePeriodSeconds")),
        },
    }
    for sub in rt.subresources:
        paths[f"{item}/{sub}"] = {
            "get": _operation(rt, "get", ("pretty",)),
            "put": _operation(rt, "put", _QUERY_PARAMS),
            "patch": _operation(rt, "patch", (*_QUERY_PARAMS, "force")),
        }
    return paths


def _schema_name(rt: ResourceType) -> str:
    reversed_group = ".".join(reversed(rt.group.split("."))) if rt.group else "io.k8s.api.core"
    return f"{reversed_group}.{rt.version}.{rt.kind}"


def group_version_document(registry: Registry, path: str) -> dict[str, Any] | None:
    types = [rt for rt in registry if gv_path(rt) == path]
    if not types:
        return None
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    for rt in sorted(types, key=lambda t: t.plural):
        paths.update(_paths(rt))
        if rt.schema is not None:
            gvk = [{"group": rt.group, "kind": rt.kind, "version": rt.version}]
            schemas[_schema_name(rt)] = {**rt.schema, "x-kubernetes-group-version-kind": gvk}
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.32.2"},
        "paths": paths,
        "components": {"schemas": schemas},
    }


def _hash(doc: dict[str, Any]) -> str:
    return hashlib.sha512(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:128].upper()


def root_document(registry: Registry) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for path in sorted({gv_path(rt) for rt in registry}):
        doc = group_version_document(registry, path)
        assert doc is not None
        paths[path] = {"serverRelativeURL": f"/openapi/v3/{path}?hash={_hash(doc)}"}
    return {"paths": paths}
