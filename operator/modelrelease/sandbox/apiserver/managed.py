"""Field ownership (managedFields), simplified from server-side apply: each write records the fields its
manager set (`fieldsV1`); an update takes over the fields it changed; an apply conflicts (409) when it
would change a field another manager owns, unless forced; and a re-apply drops the fields its manager
applied before but no longer applies (unless someone else owns them too).

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
            if not value:
                continue
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
    """Delete the field or list element that `path` names from `obj` (in place); missing parts are ignored.
    The object's metadata as a whole is never removed, only fields inside it."""
    if path == ("f:metadata",):
        return
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


def _content(obj: dict[str, Any]) -> dict[str, Any]:
    """What writers own: everything but identity and the server-maintained metadata."""
    meta = obj.get("metadata") or {}
    kept = {k: meta[k] for k in ("labels", "annotations", "finalizers", "ownerReferences") if k in meta}
    content = {k: v for k, v in obj.items() if k not in ("metadata", *_IDENTITY)}
    return {**content, "metadata": kept} if kept else content


def changed(old: Any, new: Any) -> FieldSet:
    """The fields `new` sets to something other than in `old` (new objects: everything they set)."""
    if old is None:
        return _value_set(new)
    if isinstance(old, dict) and isinstance(new, dict):
        out: FieldSet = {}
        for key, value in new.items():
            if key in old and old[key] == value:
                continue
            out[f"f:{key}"] = changed(old.get(key), value) if key in old else _value_set(value)
        return out
    if isinstance(old, list) and isinstance(new, list):
        key = _list_key(new)
        if key is not None and _list_key(old) == key:
            before = {json.dumps(i[key]): i for i in old}
            return {
                _element(key, item): changed(before.get(json.dumps(item[key])), item)
                for item in new
                if before.get(json.dumps(item[key])) != item
            }
    return {}


def object_changes(old: dict[str, Any] | None, new: dict[str, Any]) -> FieldSet:
    return changed(_content(old) if old is not None else None, _content(new))


def _merge(a: FieldSet, b: FieldSet) -> FieldSet:
    out = dict(a)
    for element, children in b.items():
        out[element] = _merge(out.get(element, {}), children) if children else out.get(element, {})
    return out


def _subtract(fields: FieldSet, taken: FieldSet) -> FieldSet:
    out: FieldSet = {}
    for element, children in fields.items():
        if element not in taken:
            out[element] = children
        elif not taken[element]:
            continue  # taken whole
        elif children:
            rest = _subtract(children, taken[element])
            if rest:
                out[element] = rest
        else:
            out[element] = children  # owned whole, only partly taken: still owned
    return out


def record(entries: list[dict[str, Any]], entry: dict[str, Any], take: bool) -> list[dict[str, Any]]:
    """managedFields after a write by `entry`'s manager: an Update adds to what it owned, an Apply replaces
    it; with `take` the fields move away from every other manager (of the same subresource)."""
    ident = (entry["manager"], entry["operation"], entry.get("subresource"))
    fields: FieldSet = entry["fieldsV1"]
    out = []
    for e in entries:
        if (e.get("manager"), e.get("operation"), e.get("subresource")) == ident:
            if entry["operation"] == "Update":
                fields = _merge(e.get("fieldsV1") or {}, fields)
            continue
        if take and e.get("subresource") == entry.get("subresource"):
            rest = _subtract(e.get("fieldsV1") or {}, entry["fieldsV1"])
            if not rest:
                continue
            e = {**e, "fieldsV1": rest}
        out.append(e)
    return [*out, {**entry, "fieldsV1": fields}]


def _value_at(obj: Any, path: tuple[str, ...]) -> Any:
    cur = obj
    for element in path:
        kind, _, name = element.partition(":")
        if kind == "f" and isinstance(cur, dict):
            cur = cur.get(name)
        elif kind == "k" and isinstance(cur, list):
            wanted = json.loads(name)
            cur = next(
                (i for i in cur if isinstance(i, dict) and all(i.get(k) == v for k, v in wanted.items())),
                None,
            )
        else:
            return None
    return cur


def _dotted(path: tuple[str, ...]) -> str:
    out = ""
    for element in path:
        kind, _, name = element.partition(":")
        if kind == "f":
            out += f".{name}"
        else:
            key, value = next(iter(json.loads(name).items()))
            out += f"[{key}={json.dumps(value)}]"
    return out


def conflicts(
    entries: list[dict[str, Any]],
    manager: str,
    subresource: str | None,
    applied: dict[str, Any],
    live: dict[str, Any],
) -> list[tuple[str, str, str]]:
    """(manager, apiVersion, field) for every field `applied` would change that another manager owns."""
    found = []
    for path in _leaves(field_set(applied), ()):
        new, old = _value_at(applied, path), _value_at(live, path)
        if new == old:
            continue
        for e in entries:
            if (e.get("manager") == manager and e.get("operation") == "Apply") or e.get(
                "subresource"
            ) != subresource:
                continue
            if owns(e.get("fieldsV1") or {}, path):
                found.append((str(e.get("manager")), str(e.get("apiVersion", "")), _dotted(path)))
                break
    return found
