"""Views of one stored resource through another API version (core/v1 Events as events.k8s.io/v1)."""

from __future__ import annotations

from typing import Any

from .resources import ResourceType

Obj = dict[str, Any]

# events.k8s.io/v1 field -> core/v1 field (both share the core/v1 storage, as in the real server)
_EVENT_FIELDS = {
    "regarding": "involvedObject",
    "note": "message",
    "reportingController": "reportingComponent",
    "deprecatedSource": "source",
    "deprecatedFirstTimestamp": "firstTimestamp",
    "deprecatedLastTimestamp": "lastTimestamp",
    "deprecatedCount": "count",
}
_EVENT_FIELDS_BACK = {v: k for k, v in _EVENT_FIELDS.items()}


def _rename(obj: Obj, names: dict[str, str]) -> Obj:
    return {names.get(k, k): v for k, v in obj.items()}


def is_events_v1(rt: ResourceType) -> bool:
    return rt.group == "events.k8s.io"


def to_storage(rt: ResourceType, obj: Obj) -> Obj:
    """A request body in `rt`'s version -> the stored form."""
    if is_events_v1(rt):
        return {**_rename(obj, _EVENT_FIELDS), "apiVersion": "v1", "kind": "Event"}
    return {**obj, "apiVersion": rt.api_version, "kind": rt.kind}


def to_view(rt: ResourceType, obj: Obj) -> Obj:
    """A stored object -> `rt`'s version (apiVersion set to the version asked for)."""
    if is_events_v1(rt):
        return {**_rename(obj, _EVENT_FIELDS_BACK), "apiVersion": rt.api_version, "kind": "Event"}
    return {**obj, "apiVersion": rt.api_version, "kind": rt.kind}


def field_selector_to_storage(rt: ResourceType, selector: str) -> str:
    if not is_events_v1(rt):
        return selector
    for new, old in _EVENT_FIELDS.items():
        selector = selector.replace(f"{new}.", f"{old}.")
    return selector
