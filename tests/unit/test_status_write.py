"""The status write: the server ends up holding exactly the computed status, removed fields included.

Each write is applied here with RFC 7386 merge-patch semantics (what the API server does with
`application/merge-patch+json` on a custom resource), so a patch that leaves a stale field behind fails.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from modelrelease.api.models import ModelReleaseStatus
from modelrelease.kube.client import merge_diff
from unit.status_server import merge_patch

DIGEST_1 = "sha256:" + "1" * 64
DIGEST_2 = "sha256:" + "2" * 64
STAMP = "2026-01-02T03:04:05Z"

# A status with every field set (test_every_status_field_is_set_in_full checks that).
FULL: dict[str, Any] = {
    "observedGeneration": 3,
    "phase": "Ready",
    "conditions": [
        {
            "type": "Ready",
            "status": "True",
            "reason": "Serving",
            "message": "version 2 serves",
            "lastTransitionTime": STAMP,
            "observedGeneration": 3,
        }
    ],
    "resolved": {
        "version": "2",
        "modelUri": "models:/fraud/2",
        "runId": "r2",
        "digest": DIGEST_2,
        "resolvedAt": STAMP,
        "alias": "champion",
        "stage": "Production",
        "ref": "alias=champion",
    },
    "current": {"version": "2", "modelUri": "models:/fraud/2", "digest": DIGEST_2, "since": STAMP},
    "history": [
        {
            "version": "2",
            "modelUri": "models:/fraud/2",
            "digest": DIGEST_2,
            "startedAt": STAMP,
            "finishedAt": STAMP,
            "outcome": "Succeeded",
            "reason": "RolloutComplete",
            "message": "1/1 replicas available",
            "releaseGeneration": 3,
        }
    ],
    "verification": [{"check": "Digest", "outcome": "Passed", "reason": "digest matches", "version": "2"}],
}


def _paths(node: Any, prefix: tuple[str | int, ...] = ()) -> Iterator[tuple[str | int, ...]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield (*prefix, key)
            yield from _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _paths(value, (*prefix, index))


def _without(doc: dict[str, Any], path: tuple[str | int, ...]) -> dict[str, Any]:
    trimmed = copy.deepcopy(doc)
    parent: Any = trimmed
    for step in path[:-1]:
        parent = parent[step]
    del parent[path[-1]]
    return trimmed


def _optional_paths() -> list[tuple[str | int, ...]]:
    """Every field of FULL that a valid status may lack."""
    found = []
    for path in _paths(FULL):
        try:
            ModelReleaseStatus.model_validate(_without(FULL, path))
        except ValidationError:
            continue
        found.append(path)
    return found


def _aliases(model: type[BaseModel]) -> Iterator[tuple[type[BaseModel], str]]:
    for name, info in model.model_fields.items():
        yield model, info.alias or name
        for arg in getattr(info.annotation, "__args__", ()) or (info.annotation,):
            nested = next((a for a in getattr(arg, "__args__", ()) or (arg,) if isinstance(a, type)), None)
            if nested is not None and issubclass(nested, BaseModel):
                yield from _aliases(nested)


def test_every_status_field_is_set_in_full() -> None:
    objects = {
        "ModelReleaseStatus": FULL,
        "Condition": FULL["conditions"][0],
        "Resolved": FULL["resolved"],
        "Current": FULL["current"],
        "HistoryEntry": FULL["history"][0],
        "VerificationEntry": FULL["verification"][0],
    }
    missing = sorted(
        f"{model.__name__}.{alias}"
        for model, alias in _aliases(ModelReleaseStatus)
        if alias not in objects[model.__name__]
    )
    assert missing == [], "add these status fields to FULL so that clearing them is tested"
    ModelReleaseStatus.model_validate(FULL)


@pytest.mark.parametrize("path", _optional_paths(), ids=lambda p: ".".join(map(str, p)))
def test_clearing_an_optional_status_field_removes_it_on_the_server(path: tuple[str | int, ...]) -> None:
    new = _without(FULL, path)
    assert merge_patch(FULL, merge_diff(FULL, new)) == new


def test_the_cases_that_were_stale() -> None:
    """v2 rolled out with verify.digest Off after v1 served with a digest: no digest anywhere."""
    old = {**FULL, "current": {**FULL["current"], "digest": DIGEST_1}}
    new = copy.deepcopy(FULL)
    del new["current"]["digest"], new["resolved"]["digest"]
    patch = merge_diff(old, new)
    assert patch["current"] == {"digest": None} and patch["resolved"] == {"digest": None}
    assert merge_patch(old, patch) == new


def test_an_unchanged_status_is_an_empty_patch() -> None:
    assert merge_diff(FULL, copy.deepcopy(FULL)) == {}
    assert merge_diff(None, FULL) == FULL


_scalars = st.one_of(st.booleans(), st.integers(), st.text(max_size=3))
_json = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.sampled_from("abcd"), inner, max_size=4)
    ),
    max_leaves=8,
)
_objects = st.dictionaries(st.sampled_from("abcde"), _json, max_size=5)


@settings(suppress_health_check=[HealthCheck.too_slow])  # generation is slow on a busy machine
@given(old=_objects, new=_objects)
def test_the_patch_turns_any_object_into_any_other(old: dict[str, Any], new: dict[str, Any]) -> None:
    assert merge_patch(old, merge_diff(old, new)) == new
