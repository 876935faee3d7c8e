"""`meta.k8s.io/v1 Table` output (what `kubectl get` asks for with `Accept: ...;as=Table`)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from .resources import ResourceType
from .times import seconds_since

Obj = dict[str, Any]
Cell = Any

_TOKEN_RE = re.compile(
    r"""\.([A-Za-z0-9_\-/]+)|\[(\d+|\*)\]|\[\?\(@\.([A-Za-z0-9_.\-]+)\s*==\s*["']([^"']*)["']\)\]"""
)


def jsonpath(obj: Any, path: str) -> list[Any]:
    """The results of a simple JSONPath (`.a.b`, `[0]`, `[*]`, `[?(@.type=="Ready")]`), as printer
    columns use them."""
    path = path.strip()
    if path.startswith("{") and path.endswith("}"):
        path = path[1:-1]
    if path.startswith("$"):
        path = path[1:]
    results = [obj]
    pos = 0
    while pos < len(path):
        m = _TOKEN_RE.match(path, pos)
        if not m:
            return []
        pos = m.end()
        key, index, filter_key, filter_value = m.groups()
        nxt: list[Any] = []
        for cur in results:
            if key is not None and isinstance(cur, dict) and key in cur:
                nxt.append(cur[key])
            elif index is not None and isinstance(cur, list):
                if index == "*":
                    nxt.extend(cur)
                elif int(index) < len(cur):
                    nxt.append(cur[int(index)])
            elif filter_key is not None and isinstance(cur, list):
                nxt.extend(item for item in cur if _lookup(item, filter_key) == filter_value)
        results = nxt
    return results


def _lookup(item: Any, dotted: str) -> str | None:
    for part in dotted.split("."):
        if not isinstance(item, dict) or part not in item:
            return None
        item = item[part]
    return str(item)


def human_duration(seconds: float) -> str:
    """Go's `duration.HumanDuration`, the AGE column format."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        return f"{minutes}m{s % 60}s" if s % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = s // 3600
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{hours // 24}d{hours % 24}h" if hours % 24 else f"{hours // 24}d"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        years, days = hours // 24 // 365, (hours // 24) % 365
        return f"{years}y{days}d" if days else f"{years}y"
    return f"{hours // 24 // 365}y"


def age(timestamp: Any) -> str:
    if not isinstance(timestamp, str) or not timestamp:
        return "<unknown>"
    try:
        return human_duration(seconds_since(timestamp))
    except ValueError:
        return "<invalid>"


def _cell(col_type: str, value: Any) -> Cell:
    if col_type == "date":
        return age(value)
    if col_type == "integer" and isinstance(value, int | float) and not isinstance(value, bool):
        return int(value)
    if col_type == "number" and isinstance(value, int | float) and not isinstance(value, bool):
        return value
    if col_type == "boolean" and isinstance(value, bool):
        return value
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _column(
    name: str, col_type: str = "string", description: str = "", priority: int = 0, fmt: str = ""
) -> Obj:
    return {"name": name, "type": col_type, "format": fmt, "description": description, "priority": priority}


_NAME = _column("Name", fmt="name", description="Name must be unique within a namespace.")
_AGE = _column(
    "Age",
    description="CreationTimestamp is a timestamp representing the server time when this object was created.",
)


def _ready(obj: Obj) -> str:
    statuses = obj.get("status", {}).get("containerStatuses") or []
    total = len(obj.get("spec", {}).get("containers") or [])
    return f"{sum(1 for c in statuses if c.get('ready'))}/{total}"


def _ports(obj: Obj) -> str:
    ports = obj.get("spec", {}).get("ports") or []
    return ",".join(f"{p.get('port')}/{p.get('protocol', 'TCP')}" for p in ports) or "<none>"


Row = Callable[[Obj], list[Cell]]


def _name(obj: Obj) -> str:
    return str(obj.get("metadata", {}).get("name", ""))


def _created(obj: Obj) -> str:
    return age(obj.get("metadata", {}).get("creationTimestamp"))


def _framed(columns: list[Obj], middle: Row) -> tuple[list[Obj], Row]:
    """The usual shape: Name, the kind's own columns, Age."""
    return [_NAME, *columns, _AGE], lambda o: [_name(o), *middle(o), _created(o)]


def _event_object(event: Obj) -> str:
    involved = event.get("involvedObject") or event.get("regarding") or {}
    return f"{str(involved.get('kind', '')).lower()}/{involved.get('name', '')}"


def _last_seen(event: Obj) -> str:
    stamp = (
        event.get("lastTimestamp")
        or event.get("deprecatedLastTimestamp")
        or event.get("eventTime")
        or event.get("metadata", {}).get("creationTimestamp")
    )
    return age(f"{stamp[:19]}Z" if isinstance(stamp, str) else None)


_EVENTS: tuple[list[Obj], Row] = (
    [
        _column("Last Seen"),
        _column("Type"),
        _column("Reason"),
        _column("Object"),
        _column("Message"),
        {**_NAME, "priority": 1},
    ],
    lambda e: [
        _last_seen(e),
        e.get("type", ""),
        e.get("reason", ""),
        _event_object(e),
        e.get("message") or e.get("note", ""),
        _name(e),
    ],
)
_CRD: tuple[list[Obj], Row] = (
    [_NAME, _column("Created At", "date")],
    lambda o: [_name(o), o.get("metadata", {}).get("creationTimestamp", "")],
)
_BUILTIN: dict[tuple[str, str], tuple[list[Obj], Row]] = {
    ("", "events"): _EVENTS,
    ("apiextensions.k8s.io", "customresourcedefinitions"): _CRD,
    ("apps", "deployments"): _framed(
        [_column("Ready"), _column("Up-to-date", "integer"), _column("Available", "integer")],
        lambda o: [
            f"{o.get('status', {}).get('readyReplicas', 0)}/{o.get('spec', {}).get('replicas', 0)}",
            o.get("status", {}).get("updatedReplicas", 0),
            o.get("status", {}).get("availableReplicas", 0),
        ],
    ),
    ("", "pods"): _framed(
        [_column("Ready"), _column("Status"), _column("Restarts")],
        lambda o: [
            _ready(o),
            o.get("status", {}).get("phase", ""),
            str(sum(c.get("restartCount", 0) for c in o.get("status", {}).get("containerStatuses") or [])),
        ],
    ),
    ("", "configmaps"): _framed(
        [_column("Data", "integer")],
        lambda o: [len(o.get("data") or {}) + len(o.get("binaryData") or {})],
    ),
    ("", "secrets"): _framed(
        [_column("Type"), _column("Data", "integer")],
        lambda o: [o.get("type", ""), len(o.get("data") or {})],
    ),
    ("", "namespaces"): _framed([_column("Status")], lambda o: [o.get("status", {}).get("phase", "")]),
    ("", "services"): _framed(
        [_column("Type"), _column("Cluster-IP"), _column("External-IP"), _column("Port(s)")],
        lambda o: [
            o.get("spec", {}).get("type", ""),
            o.get("spec", {}).get("clusterIP", "<none>"),
            "<none>",
            _ports(o),
        ],
    ),
}


def _crd_cell(obj: Obj, column: Obj) -> Cell:
    found = jsonpath(obj, column.get("jsonPath", ""))
    return _cell(column.get("type", "string"), found[0]) if found else None


def _partial(obj: Obj) -> Obj:
    return {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata", {}),
    }


def table(
    rt: ResourceType,
    items: list[Obj],
    resource_version: str,
    include_object: str = "Metadata",
    list_meta: Obj | None = None,
) -> Obj:
    """A Table of `items`: a CRD's additionalPrinterColumns (Age when it declares none), or per-kind
    columns for common built-ins, Name and Age otherwise."""
    columns: list[Obj]
    row: Row
    if not rt.builtin and rt.printer_columns:
        declared = list(rt.printer_columns)
        columns = [_NAME] + [
            _column(
                c["name"],
                c.get("type", "string"),
                c.get("description", ""),
                int(c.get("priority", 0)),
                c.get("format", ""),
            )
            for c in declared
        ]
        row = lambda o: [_name(o), *(_crd_cell(o, c) for c in declared)]  # noqa: E731
    elif rt.storage_key in _BUILTIN:
        columns, row = _BUILTIN[rt.storage_key]
    else:
        columns, row = _framed([], lambda o: [])
    rows = []
    for obj in items:
        entry: Obj = {"cells": row(obj)}
        if include_object == "Object":
            entry["object"] = obj
        elif include_object != "None":
            entry["object"] = _partial(obj)
        rows.append(entry)
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version, **(list_meta or {})},
        "columnDefinitions": columns,
        "rows": rows,
    }
