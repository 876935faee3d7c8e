"""Unknown-field handling for built-in kinds, from the official Kubernetes 1.32 JSON schemas that the
`kubernetes-validate` package ships: like the real server, fields a kind does not declare are dropped
(and reported, so `fieldValidation=Strict` can refuse them and `Warn` can warn)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import kubernetes_validate

_SCHEMAS = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema" / "v1.32.0-local-strict"


@cache
def _definitions() -> dict[str, Any]:
    defs: dict[str, Any] = json.loads((_SCHEMAS / "_definitions.json").read_text())["$defs"]
    return defs


@cache
def _kinds() -> dict[tuple[str, str, str], str]:
    found = {}
    for name, schema in _definitions().items():
        for gvk in schema.get("x-kubernetes-group-version-kind") or []:
            found[(gvk.get("group", ""), gvk["version"], gvk["kind"])] = name
    return found


def _resolve(schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = _definitions()[schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def _walk(schema: dict[str, Any], value: Any, path: str, unknown: list[str]) -> None:
    schema = _resolve(schema)
    if isinstance(value, dict):
        props = schema.get("properties")
        extra = schema.get("additionalProperties")
        for key in list(value):
            where = f"{path}.{key}" if path else key
            if props is not None and key in props:
                _walk(props[key], value[key], where, unknown)
            elif isinstance(extra, dict):
                _walk(extra, value[key], where, unknown)
            elif props is not None:
                unknown.append(where)
                del value[key]
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            _walk(schema["items"], item, f"{path}[{i}]", unknown)


def prune_unknown(obj: dict[str, Any]) -> list[str]:
    """Drop (in place) the fields `obj`'s kind does not declare; returns their paths, e.g.
    `spec.template.spec.containers[0].imagee`. Kinds without a schema are left alone."""
    group, _, version = str(obj.get("apiVersion", "")).rpartition("/")
    name = _kinds().get((group, version, str(obj.get("kind", ""))))
    if name is None:
        return []
    unknown: list[str] = []
    _walk(_definitions()[name], obj, "", unknown)
    return unknown
