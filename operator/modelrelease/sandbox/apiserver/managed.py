"""Server-side apply field ownership, simplified: the `fieldsV1` set of what an apply configuration sets,
and the removal of fields a manager applied before but no longer applies (unless another applier owns them).

Lists of objects that all carry a key field (`name`, or the key of ports, mounts and conditions) are
treated as maps keyed by it, as the real server does for Kubernetes' list-map fields; other lists are
atomic.
"""

from __future__ import annotations

import json
from typing import Any

FieldSet = dict[str, Any]  # the managedFields `fieldsV1` form: {"f:spec": {"f:replicas": {}}}
_KEYS = ("name", "containerPort", "port", "mountPath", "devicePath", "type", "ip", "topologyKey")
_IDENTITY = {"apiVersion", "kind"}
_META_IDENTITY = {"name", "namespace"}


def _list_key(items: list[Any]) -> str | None:
    if not items or not all(isinstance(i, dict) for i in items):
        return None
    for key in _KEYS:
        if all(key in i for i in items):
            return key
    return None


def _element(key: str, item: dict[str, Any]) -> str:
    return "k:" + json.dumps({key: item[key]}, separators=(",", ":"))


def field_set(obj: Any, top: bool = True) -> FieldSet:
    """The fields an apply configuration sets, in `fieldsV1` form."""
    out: FieldSet = {}
    if not isinstance(obj, dict):
        return out
    for name, value in obj.items():
        if top and name in _IDENTITY:
            continue
        if top and name == "metadata" and isinstance(value, dict):
            value = {k: v for k, v in value.items() if k not in _META_IDENTITY}
        out[f"f:{name}"] = _value_set(value)
    return out


def _value_set(value: Any) -> FieldSet:
    if isinstance(value, dict):
        return field_set(value, top=False)
    if isinstance(value, list):
        key = _list_key(value)
        if key is not None:
            return {_element(key, item): field_set(item, top=False) for item in value}
    return {}


def _leaves(fields: FieldSet, prefix: tuple[str, ...]) -> list[tuple[str, ...]]:
    """What a manager owns under `prefix`: leaf fields, and keyed list items as a whole."""
    paths: list[tuple[str, ...]] = []
    for element, children in fields.items():
        path = (*prefix, element)
        if children and not element.startswith("k:"):
            paths.extend(_leaves(children, path))
        else:
            paths.append(path)
    return paths


def removed(before: FieldSet, after: FieldSet, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """What was owned in `before` and is set no more in `after`: leaf fields and keyed list items."""
    paths: list[tuple[str, ...]] = []
    for element, children in before.items():
        path = (*prefix, element)
        if element in after:
            if children:
                paths.extend(removed(children, after[element], path))
        elif children and not element.startswith("k:"):
            paths.extend(_leaves(children, path))
        else:
            paths.append(path)
    return paths


def owns(fields: FieldSet, path: tuple[str, ...]) -> bool:
    cur = fields
    for element in path:
        if element not in cur:
            return False
        cur = cur[element]
    return True


def remove(obj: dict[str, Any], path: tuple[str, ...]) -> None:
    """Delete the field or list element that `path` names from `obj` (in place); missing parts are ignored."""
    parent: Any = obj
    for i, element in enumerate(path):
        last = i == len(path) - 1
        kind, _, name = element.partition(":")
        if kind == "f" and isinstance(parent, dict):
            if last:
                parent.pop(name, None)
                return
            parent = parent.get(name)
        elif kind == "k" and isinstance(parent, list):
            wanted = json.loads(name)
            match = [
                item
                for item in parent
                if isinstance(item, dict) and all(item.get(k) == v for k, v in wanted.items())
            ]
            if not match:
                return
            if last:
                parent.remove(match[0])
                return
            parent = match[0]
        else:
            return
