"""Label and field selectors: parsing (with the real server's error messages) and matching."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from .errors import ApiError, bad_request

Predicate = Callable[[dict[str, Any]], bool]

_SET_RE = re.compile(r"^\s*(\S+)\s+(in|notin)\s+\((.*)\)\s*$")
_EQ_RE = re.compile(r"^\s*([^=!\s]+)\s*(==|=|!=)\s*(\S*)\s*$")
_EXISTS_RE = re.compile(r"^\s*(!?)\s*([^=!\s()]+)\s*$")

# Field selectors the real server accepts beyond metadata.name / metadata.namespace, per kind.
_FIELDS: dict[str, tuple[str, ...]] = {
    "Event": (
        "involvedObject.kind",
        "involvedObject.namespace",
        "involvedObject.name",
        "involvedObject.uid",
        "involvedObject.apiVersion",
        "involvedObject.resourceVersion",
        "involvedObject.fieldPath",
        "reason",
        "reportingComponent",
        "source",
        "type",
    ),
    "Pod": (
        "spec.nodeName",
        "spec.restartPolicy",
        "spec.schedulerName",
        "spec.serviceAccountName",
        "status.phase",
        "status.podIP",
        "status.nominatedNodeName",
    ),
    "Secret": ("type",),
    "Namespace": ("status.phase",),
    "ReplicaSet": ("status.replicas",),
    "Job": ("status.successful",),
}


def _split_top_level(text: str) -> list[str]:
    parts: list[str] = []
    depth = 0
    cur: list[str] = []
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return [p for p in parts if p.strip()]


LabelCheck = Callable[[Mapping[str, str]], bool]


def _label_check(key: str, op: str, values: frozenset[str]) -> LabelCheck:
    def check(labels: Mapping[str, str]) -> bool:
        present = key in labels
        if op in ("=", "==", "in"):
            return present and labels[key] in values
        if op in ("!=", "notin"):
            return not present or labels[key] not in values
        return present if op == "exists" else not present

    return check


def parse_label_selector(text: str) -> LabelCheck:
    """Compile a label selector (=, ==, !=, in, notin, exists, !exists) into a predicate on labels."""
    checks: list[LabelCheck] = []
    for part in _split_top_level(text):
        if m := _SET_RE.match(part):
            values = frozenset(v.strip() for v in m.group(3).split(",") if v.strip())
            checks.append(_label_check(m.group(1), m.group(2), values))
        elif m := _EQ_RE.match(part):
            checks.append(_label_check(m.group(1), m.group(2), frozenset({m.group(3)})))
        elif m := _EXISTS_RE.match(part):
            checks.append(_label_check(m.group(2), "absent" if m.group(1) else "exists", frozenset()))
        else:
            raise bad_request(f"unable to parse requirement: {part.strip()!r}")
    return lambda labels: all(check(labels) for check in checks)


def _field_value(obj: dict[str, Any], path: str) -> str:
    cur: Any = obj
    for part in path.split("."):
        if not isinstance(cur, dict):
            return ""
        cur = cur.get(part)
    if cur is None:
        return ""
    if isinstance(cur, dict) and path == "source":
        return str(cur.get("component", ""))
    return str(cur)


def _field_check(path: str, op: str, value: str) -> Predicate:
    def check(obj: dict[str, Any]) -> bool:
        return (_field_value(obj, path) == value) == (op != "!=")

    return check


def parse_field_selector(text: str, kind: str, extra_fields: tuple[str, ...] = ()) -> Predicate:
    """Compile a field selector; unsupported fields are a 400 like the real server's."""
    allowed = {"metadata.name", "metadata.namespace", *_FIELDS.get(kind, ()), *extra_fields}
    checks: list[Predicate] = []
    for part in _split_top_level(text):
        m = _EQ_RE.match(part)
        if not m:
            raise bad_request(f"invalid selector: '{text}'; can't understand '{part.strip()}'")
        if m.group(1) not in allowed:
            raise ApiError(400, "BadRequest", f"field label not supported: {m.group(1)}")
        checks.append(_field_check(m.group(1), m.group(2), m.group(3)))
    return lambda obj: all(check(obj) for check in checks)


def object_predicate(
    label_selector: str | None, field_selector: str | None, kind: str, extra_fields: tuple[str, ...] = ()
) -> Predicate:
    """One predicate for a list or watch request's `labelSelector` and `fieldSelector`."""
    labels_ok = parse_label_selector(label_selector) if label_selector else None
    fields_ok = parse_field_selector(field_selector, kind, extra_fields) if field_selector else None

    def matches(obj: dict[str, Any]) -> bool:
        if labels_ok is not None and not labels_ok(obj.get("metadata", {}).get("labels") or {}):
            return False
        return fields_ok is None or fields_ok(obj)

    return matches
