"""Pure parts of the API emulator: selectors, printer-column JSONPath and ages, SSA field ownership, store."""

from __future__ import annotations

import pytest

from modelrelease.sandbox.apiserver import managed, validation
from modelrelease.sandbox.apiserver.errors import ApiError
from modelrelease.sandbox.apiserver.selectors import parse_field_selector, parse_label_selector
from modelrelease.sandbox.apiserver.store import Store
from modelrelease.sandbox.apiserver.tables import human_duration, jsonpath

LABELS = {"app": "web", "tier": "front", "env": ""}


@pytest.mark.parametrize(
    ("selector", "matches"),
    [
        ("app=web", True),
        ("app==web", True),
        ("app=db", False),
        ("app!=db", True),
        ("missing!=x", True),
        ("app in (web, db)", True),
        ("app notin (web)", False),
        ("missing notin (web)", True),
        ("tier", True),
        ("!tier", False),
        ("!missing", True),
        ("env=", True),
        ("app=web,tier in (front,back),!missing", True),
        ("app=web,tier=back", False),
    ],
)
def test_label_selectors(selector: str, matches: bool) -> None:
    assert parse_label_selector(selector)(LABELS) is matches


def test_bad_label_selector_is_a_400() -> None:
    with pytest.raises(ApiError) as bad:
        parse_label_selector("app in web")
    assert bad.value.code == 400


def test_field_selectors_accept_only_supported_fields() -> None:
    event = {
        "metadata": {"name": "e", "namespace": "ns"},
        "involvedObject": {"name": "w"},
        "reason": "R",
        "source": {"component": "kopf"},
    }
    assert parse_field_selector("involvedObject.name=w,reason=R,source=kopf", "Event")(event)
    assert not parse_field_selector("metadata.name!=e", "Event")(event)
    with pytest.raises(ApiError) as unsupported:
        parse_field_selector("involvedObject.name=w", "ConfigMap")
    assert unsupported.value.code == 400 and "field label not supported" in unsupported.value.message


def test_printer_column_jsonpath() -> None:
    obj = {
        "spec": {"model": {"name": "fraud"}, "items": [{"n": 1}, {"n": 2}]},
        "status": {
            "conditions": [{"type": "Ready", "status": "True"}, {"type": "Degraded", "status": "False"}]
        },
    }
    assert jsonpath(obj, ".spec.model.name") == ["fraud"]
    assert jsonpath(obj, ".spec.items[1].n") == [2]
    assert jsonpath(obj, ".spec.items[*].n") == [1, 2]
    assert jsonpath(obj, '.status.conditions[?(@.type=="Degraded")].status') == ["False"]
    assert jsonpath(obj, ".status.phase") == []


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (0, "0s"),
        (119, "119s"),
        (125, "2m5s"),
        (600, "10m"),
        (3 * 3600 + 60, "3h1m"),
        (30 * 3600, "30h"),
        (3 * 86400 + 3600, "3d1h"),
        (40 * 86400, "40d"),
        (3 * 365 * 86400, "3y"),
    ],
)
def test_age_format_matches_kubectl(seconds: int, shown: str) -> None:
    assert human_duration(seconds) == shown


def test_apply_field_sets_and_removal() -> None:
    before = managed.field_set(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "c", "labels": {"a": "1"}},
            "data": {"keep": "1", "drop": "2"},
            "spec": {"containers": [{"name": "app", "image": "x"}, {"name": "sidecar", "image": "y"}]},
        }
    )
    assert before["f:data"] == {"f:keep": {}, "f:drop": {}}
    assert set(before["f:spec"]["f:containers"]) == {'k:{"name":"app"}', 'k:{"name":"sidecar"}'}
    assert before["f:metadata"] == {"f:labels": {"f:a": {}}}  # identity (name) is nobody's field
    assert "f:metadata" not in managed.field_set({"metadata": {"name": "c"}, "data": {}})
    after = managed.field_set(
        {
            "metadata": {"name": "c"},
            "data": {"keep": "1"},
            "spec": {"containers": [{"name": "app", "image": "x"}]},
        }
    )
    gone = managed.removed(before, after)
    assert sorted(gone) == sorted(
        [
            ("f:metadata", "f:labels", "f:a"),
            ("f:data", "f:drop"),
            ("f:spec", "f:containers", 'k:{"name":"sidecar"}'),
        ]
    )
    live = {
        "metadata": {"name": "c", "labels": {"a": "1", "theirs": "2"}},
        "data": {"keep": "1", "drop": "2"},
        "spec": {"containers": [{"name": "app"}, {"name": "sidecar"}]},
    }
    for path in gone:
        managed.remove(live, path)
    assert live == {
        "metadata": {"name": "c", "labels": {"theirs": "2"}},
        "data": {"keep": "1"},
        "spec": {"containers": [{"name": "app"}]},
    }


def test_store_replays_history_and_reports_compaction() -> None:
    store = Store(history=3)
    key = ("", "configmaps")
    for i in range(5):
        store.put(key, {"metadata": {"name": f"c{i}", "namespace": "ns"}})
    watcher = store.watch(key, "ns", lambda _: True, since=3)
    replayed = [watcher.queue.get_nowait() for _ in range(watcher.queue.qsize())]
    assert [(kind, obj["metadata"]["name"]) for kind, obj in replayed] == [("ADDED", "c3"), ("ADDED", "c4")]
    with pytest.raises(ApiError) as expired:
        store.watch(key, "ns", lambda _: True, since=1)
    assert expired.value.code == 410


@pytest.mark.parametrize(
    ("labels", "annotations", "ok"),
    [
        ({"app.kubernetes.io/name": "web", "empty": ""}, {"modelrelease.io/version": "7"}, True),
        ({"app": "has space"}, {}, False),
        ({"app": "x" * 64}, {}, False),
        ({"-bad": "x"}, {}, False),
        ({}, {"Bad_Prefix.io/x": "1"}, False),
        ({}, {"big": "x" * (256 * 1024)}, False),
    ],
)
def test_label_and_annotation_rules(labels: dict[str, str], annotations: dict[str, str], ok: bool) -> None:
    causes = validation.metadata({"metadata": {"labels": labels, "annotations": annotations}})
    assert (causes == []) is ok


def test_updates_take_ownership_and_applies_conflict() -> None:
    live = {"metadata": {"name": "c"}, "data": {"a": "1", "b": "1"}}
    entries = managed.record(
        [],
        {"manager": "applier", "operation": "Apply", "apiVersion": "v1", "fieldsV1": managed.field_set(live)},
        take=True,
    )
    edited = {"metadata": {"name": "c"}, "data": {"a": "edited", "b": "1"}}
    changes = managed.object_changes(live, edited)
    assert changes == {"f:data": {"f:a": {}}}
    assert managed.object_changes(None, live) == {"f:data": {"f:a": {}, "f:b": {}}}
    entries = managed.record(
        entries,
        {"manager": "editor", "operation": "Update", "apiVersion": "v1", "fieldsV1": changes},
        take=True,
    )
    assert [e["fieldsV1"] for e in entries] == [{"f:data": {"f:b": {}}}, {"f:data": {"f:a": {}}}]
    wanted = {"metadata": {"name": "c"}, "data": {"a": "1", "b": "2"}}
    assert managed.conflicts(entries, "applier", None, wanted, edited) == [("editor", "v1", ".data.a")]
    same = {"metadata": {"name": "c"}, "data": {"a": "edited"}}
    assert managed.conflicts(entries, "applier", None, same, edited) == []  # same value: shared, no conflict


def test_secret_data_must_be_base64() -> None:
    assert validation.undecodable_bytes("", "Secret", {"data": {"ok": "aGVsbG8="}}) is None
    assert validation.undecodable_bytes("", "Secret", {"data": {"bad": "not base64!"}}) == (
        "illegal base64 data in data[bad]"
    )
    assert validation.undecodable_bytes("", "ConfigMap", {"data": {"plain": "not base64!"}}) is None


@pytest.mark.parametrize(
    ("kind", "name", "ok"),
    [
        ("Namespace", "ml-team", True),
        ("Namespace", "ml.team", False),
        ("Service", "fraud", True),
        ("Service", "7fraud", False),
        ("ConfigMap", "fraud.v7", True),
    ],
)
def test_kind_specific_name_rules(kind: str, name: str, ok: bool) -> None:
    assert (validation.validate("", kind, {"metadata": {"name": name}}, None) == []) is ok
