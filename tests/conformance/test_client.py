"""The emulator driven by the official `kubernetes` Python client."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from typing import Any

import pytest
import urllib3
import yaml
from emu_support import start_emulator, stop_emulator, wait_for
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

GROUP, VERSION, PLURAL = "example.com", "v1", "widgets"


def _widget(name: str, size: int = 1, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "metadata": {"name": name},
        "spec": {"size": size, **spec},
    }


def _cm(
    name: str, labels: dict[str, str] | None = None, data: dict[str, str] | None = None
) -> client.V1ConfigMap:
    return client.V1ConfigMap(metadata=client.V1ObjectMeta(name=name, labels=labels), data=data)


def test_crud_and_resource_versions(api: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(api)
    created = core.create_namespaced_config_map(namespace, _cm("c1", data={"a": "1"}))
    meta = created.metadata
    assert meta.uid and meta.creation_timestamp and meta.resource_version.isdigit()
    with pytest.raises(ApiException) as exists:
        core.create_namespaced_config_map(namespace, _cm("c1"))
    assert exists.value.status == 409 and json.loads(exists.value.body)["reason"] == "AlreadyExists"

    created.data = {"a": "2"}
    updated = core.replace_namespaced_config_map("c1", namespace, created)
    assert int(updated.metadata.resource_version) > int(meta.resource_version)
    assert core.read_namespaced_config_map("c1", namespace).data == {"a": "2"}

    created.data = {"a": "stale"}  # still carries the old resourceVersion
    with pytest.raises(ApiException) as stale:
        core.replace_namespaced_config_map("c1", namespace, created)
    body = json.loads(stale.value.body)
    assert stale.value.status == 409 and body["reason"] == "Conflict"
    assert "the object has been modified" in body["message"]

    core.delete_namespaced_config_map("c1", namespace)
    with pytest.raises(ApiException) as gone:
        core.read_namespaced_config_map("c1", namespace)
    assert gone.value.status == 404
    assert json.loads(gone.value.body)["message"] == 'configmaps "c1" not found'


def test_noop_update_keeps_resource_version(api: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(api)
    created = core.create_namespaced_config_map(namespace, _cm("same", data={"a": "1"}))
    patched = core.patch_namespaced_config_map("same", namespace, {"data": {"a": "1"}})
    assert patched.metadata.resource_version == created.metadata.resource_version


def test_cluster_scoped_custom_resources_and_list_across_namespaces(
    api: client.ApiClient, namespace: str, test_crds: None
) -> None:
    custom = client.CustomObjectsApi(api)
    gadget = {
        "apiVersion": "example.com/v1",
        "kind": "Gadget",
        "metadata": {"name": f"g-{namespace}"},
        "anything": {"goes": True},
    }
    created = custom.create_cluster_custom_object(GROUP, VERSION, "gadgets", gadget)
    assert "namespace" not in created["metadata"]
    assert created["anything"] == {"goes": True}
    custom.delete_cluster_custom_object(GROUP, VERSION, "gadgets", gadget["metadata"]["name"])

    core = client.CoreV1Api(api)
    core.create_namespaced_config_map(namespace, _cm("everywhere", labels={"probe": namespace}))
    found = core.list_config_map_for_all_namespaces(label_selector=f"probe={namespace}").items
    assert [(c.metadata.namespace, c.metadata.name) for c in found] == [(namespace, "everywhere")]


def test_label_and_field_selectors(api: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(api)
    for name, labels in [
        ("a", {"app": "x", "tier": "web"}),
        ("b", {"app": "y", "tier": "db"}),
        ("c", {"app": "z"}),
    ]:
        core.create_namespaced_config_map(namespace, _cm(name, labels=labels))

    def names(**kwargs: str) -> list[str]:
        return [c.metadata.name for c in core.list_namespaced_config_map(namespace, **kwargs).items]

    assert names(label_selector="app=x") == ["a"]
    assert names(label_selector="app==y") == ["b"]
    assert names(label_selector="app!=x") == ["b", "c"]
    assert names(label_selector="app in (x, z)") == ["a", "c"]
    assert names(label_selector="app notin (x,z)") == ["b"]
    assert names(label_selector="tier") == ["a", "b"]
    assert names(label_selector="!tier") == ["c"]
    assert names(label_selector="tier,app!=y") == ["a"]
    assert names(field_selector="metadata.name=b") == ["b"]
    assert names(field_selector="metadata.name!=b") == ["a", "c"]
    assert names(field_selector=f"metadata.namespace={namespace},metadata.name=c") == ["c"]
    with pytest.raises(ApiException) as bad:
        names(field_selector="data.color=blue")
    assert bad.value.status == 400


def test_list_limit_and_continue(api: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(api)
    for i in range(5):
        core.create_namespaced_config_map(namespace, _cm(f"p{i}"))
    first = core.list_namespaced_config_map(namespace, limit=2)
    assert [c.metadata.name for c in first.items] == ["p0", "p1"]
    assert first.metadata.remaining_item_count == 3
    rest = core.list_namespaced_config_map(namespace, limit=10, _continue=first.metadata._continue)
    assert [c.metadata.name for c in rest.items] == ["p2", "p3", "p4"]
    assert not rest.metadata._continue


def test_watch_resumes_from_resource_version(api: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(api)
    listed = core.list_namespaced_config_map(namespace)
    start = listed.metadata.resource_version
    core.create_namespaced_config_map(namespace, _cm("w1"))
    core.patch_namespaced_config_map("w1", namespace, {"data": {"k": "v"}})
    core.delete_namespaced_config_map("w1", namespace)
    # the events happened before the watch started: resuming from `start` replays them in order
    seen = []
    for event in watch.Watch().stream(
        core.list_namespaced_config_map, namespace, resource_version=start, timeout_seconds=5
    ):
        seen.append((event["type"], event["object"].metadata.name, event["object"].data))
        if event["type"] == "DELETED":
            break
    assert seen == [("ADDED", "w1", None), ("MODIFIED", "w1", {"k": "v"}), ("DELETED", "w1", {"k": "v"})]


def test_watch_without_resource_version_starts_with_current_state(
    api: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(api)
    core.create_namespaced_config_map(namespace, _cm("existing"))
    stream = watch.Watch().stream(core.list_namespaced_config_map, namespace, timeout_seconds=5)
    first = next(stream)
    assert (first["type"], first["object"].metadata.name) == ("ADDED", "existing")


def test_watch_label_selector_sees_objects_leave_and_enter(api: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(api)
    start = core.list_namespaced_config_map(namespace).metadata.resource_version
    core.create_namespaced_config_map(namespace, _cm("m", labels={"watched": "yes"}))
    core.patch_namespaced_config_map("m", namespace, {"metadata": {"labels": {"watched": "no"}}})
    events = []
    for event in watch.Watch().stream(
        core.list_namespaced_config_map,
        namespace,
        resource_version=start,
        label_selector="watched=yes",
        timeout_seconds=5,
    ):
        events.append(event["type"])
        if len(events) == 2:
            break
    assert events == ["ADDED", "DELETED"]


def test_watch_bookmarks_and_timeout(emulator: Any, namespace: str) -> None:
    http = urllib3.PoolManager()
    url = (
        f"{emulator.url}/api/v1/namespaces/{namespace}/configmaps?watch=true&allowWatchBookmarks=true"
        "&timeoutSeconds=3"
    )
    response = http.request("GET", url, preload_content=False, timeout=10)
    lines = [json.loads(line) for line in response.read().decode().splitlines() if line]
    # the emulator under test sends bookmarks every second; the stream ends at timeoutSeconds
    assert lines and all(line["type"] == "BOOKMARK" for line in lines)
    assert lines[0]["object"]["metadata"]["resourceVersion"].isdigit()


def test_watch_from_compacted_resource_version_gets_410(tmp_path: Any) -> None:
    proc, url = start_emulator(tmp_path, "--watch-history", "5")
    try:
        with client.ApiClient(client.Configuration(host=url)) as small:
            core = client.CoreV1Api(small)
            start = core.list_namespaced_config_map("default").metadata.resource_version
            for i in range(8):
                core.create_namespaced_config_map("default", _cm(f"h{i}"))
            with pytest.raises(ApiException) as expired:
                for _ in watch.Watch().stream(
                    core.list_namespaced_config_map, "default", resource_version=start, timeout_seconds=5
                ):
                    pass
            assert expired.value.status == 410
    finally:
        stop_emulator(proc)


def test_status_subresource_and_generation(api: client.ApiClient, namespace: str, test_crds: None) -> None:
    custom = client.CustomObjectsApi(api)
    created = custom.create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, {**_widget("g", 1), "status": {"phase": "Ignored"}}
    )
    assert created["metadata"]["generation"] == 1
    assert "status" not in created  # create ignores status when the status subresource exists

    status = custom.patch_namespaced_custom_object_status(
        GROUP, VERSION, namespace, PLURAL, "g", {"status": {"phase": "Ready"}, "spec": {"size": 9}}
    )
    assert status["status"] == {"phase": "Ready"}
    assert status["spec"]["size"] == 1  # /status writes ignore everything but status
    assert status["metadata"]["generation"] == 1

    main = custom.patch_namespaced_custom_object(
        GROUP,
        VERSION,
        namespace,
        PLURAL,
        "g",
        {"status": {"phase": "Hacked"}, "metadata": {"labels": {"l": "1"}}},
    )
    assert main["status"] == {"phase": "Ready"}  # main-resource writes ignore status
    assert main["metadata"]["generation"] == 1  # labels are metadata: no bump

    bumped = custom.patch_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, "g", {"spec": {"size": 2}}
    )
    assert bumped["metadata"]["generation"] == 2

    apps = client.AppsV1Api(api)
    dep = apps.create_namespaced_deployment(namespace, _deployment("d"))
    assert dep.metadata.generation == 1
    apps.patch_namespaced_deployment_status(
        "d", namespace, {"status": {"observedGeneration": 1, "replicas": 1}}
    )
    after_status = apps.patch_namespaced_deployment("d", namespace, {"metadata": {"annotations": {"a": "b"}}})
    assert after_status.metadata.generation == 1
    assert after_status.status.observed_generation == 1
    respec = apps.patch_namespaced_deployment("d", namespace, {"spec": {"replicas": 4}})
    assert respec.metadata.generation == 2


def _deployment(name: str, owner: client.V1OwnerReference | None = None) -> client.V1Deployment:
    labels = {"app": name}
    return client.V1Deployment(
        metadata=client.V1ObjectMeta(name=name, owner_references=[owner] if owner else None),
        spec=client.V1DeploymentSpec(
            selector=client.V1LabelSelector(match_labels=labels),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=labels),
                spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="example/c:1")]),
            ),
        ),
    )


def test_owner_reference_garbage_collection(api: client.ApiClient, namespace: str, test_crds: None) -> None:
    custom = client.CustomObjectsApi(api)
    owner = custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, _widget("owner"))
    ref = client.V1OwnerReference(
        api_version="example.com/v1",
        kind="Widget",
        name="owner",
        uid=owner["metadata"]["uid"],
        controller=True,
        block_owner_deletion=True,
    )
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    apps.create_namespaced_deployment(namespace, _deployment("owned", ref))
    core.create_namespaced_config_map(
        namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="orphan-me", owner_references=[ref]))
    )
    core.create_namespaced_config_map(namespace, _cm("unrelated"))

    custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "owner")

    def gone() -> bool:
        names = {d.metadata.name for d in apps.list_namespaced_deployment(namespace).items}
        return "owned" not in names

    wait_for(gone)
    left = {c.metadata.name for c in core.list_namespaced_config_map(namespace).items}
    assert left == {"unrelated"}


def test_orphan_propagation_keeps_dependents(api: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(api)
    owner = core.create_namespaced_config_map(namespace, _cm("parent"))
    ref = client.V1OwnerReference(api_version="v1", kind="ConfigMap", name="parent", uid=owner.metadata.uid)
    core.create_namespaced_config_map(
        namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="child", owner_references=[ref]))
    )
    core.delete_namespaced_config_map("parent", namespace, propagation_policy="Orphan")
    child = core.read_namespaced_config_map("child", namespace)
    assert not child.metadata.owner_references


def test_finalizers_hold_deletion_until_removed(
    api: client.ApiClient, namespace: str, test_crds: None
) -> None:
    custom = client.CustomObjectsApi(api)
    body = _widget("held")
    body["metadata"]["finalizers"] = ["example.com/hold"]
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)
    answer = custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "held")
    assert answer["metadata"]["deletionTimestamp"]  # not deleted yet: the object comes back
    held = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "held")
    assert held["metadata"]["deletionTimestamp"] and held["metadata"]["finalizers"] == ["example.com/hold"]

    custom.patch_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, "held", {"metadata": {"finalizers": None}}
    )
    with pytest.raises(ApiException) as gone:
        custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "held")
    assert gone.value.status == 404


def test_delete_answers_status_or_object_like_the_real_server(
    api: client.ApiClient, emulator: Any, namespace: str
) -> None:
    core = client.CoreV1Api(api)
    core.create_namespaced_config_map(namespace, _cm("del"))
    core.create_namespaced_service_account(
        namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="sa"))
    )
    http = urllib3.PoolManager()
    base = f"{emulator.url}/api/v1/namespaces/{namespace}"
    status = json.loads(http.request("DELETE", f"{base}/configmaps/del").data)
    assert status["kind"] == "Status" and status["status"] == "Success" and status["details"]["name"] == "del"
    # serviceaccounts answer with the deleted object (ReturnDeletedObject in the real registry)
    assert json.loads(http.request("DELETE", f"{base}/serviceaccounts/sa").data)["kind"] == "ServiceAccount"


def test_events_core_and_events_k8s_io_share_storage(api: client.ApiClient, namespace: str) -> None:
    core, events_v1 = client.CoreV1Api(api), client.EventsV1Api(api)
    cm = core.create_namespaced_config_map(namespace, _cm("subject"))
    now = datetime.now(UTC)
    core.create_namespaced_event(
        namespace,
        client.CoreV1Event(
            metadata=client.V1ObjectMeta(generate_name="subject."),
            event_time=now,
            reason="Tested",
            involved_object=client.V1ObjectReference(
                kind="ConfigMap", name="subject", namespace=namespace, uid=cm.metadata.uid, api_version="v1"
            ),
            message="from core",
            type="Normal",
            count=1,
            reporting_component="tester",
            reporting_instance="t-1",
            action="Test",
        ),
    )
    events_v1.create_namespaced_event(
        namespace,
        client.EventsV1Event(
            metadata=client.V1ObjectMeta(name="from-v1"),
            event_time=now,
            reason="Tested",
            note="from v1",
            regarding=client.V1ObjectReference(kind="ConfigMap", name="subject", namespace=namespace),
            type="Normal",
            reporting_controller="tester",
            reporting_instance="t-1",
            action="Test",
        ),
    )
    core.create_namespaced_event(
        namespace,
        client.CoreV1Event(
            metadata=client.V1ObjectMeta(name="other"),
            involved_object=client.V1ObjectReference(kind="Pod", name="p", namespace=namespace),
            reason="Other",
            message="x",
            type="Warning",
        ),
    )

    found = core.list_namespaced_event(
        namespace, field_selector="involvedObject.name=subject,reason=Tested"
    ).items
    assert sorted(e.message for e in found) == ["from core", "from v1"]
    via_v1 = events_v1.list_namespaced_event(namespace, field_selector="regarding.name=subject").items
    assert sorted((e.note, e.reporting_controller) for e in via_v1) == [
        ("from core", "tester"),
        ("from v1", "tester"),
    ]


def test_server_side_apply_creates_then_updates(emulator: Any, namespace: str) -> None:
    http = urllib3.PoolManager()
    manifest = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "applied"}, "data": {"a": "1"}}

    def apply(body: dict[str, Any], manager: str | None = "tester") -> tuple[int, Any]:
        query = f"?fieldManager={manager}&force=true" if manager else ""
        response = http.request(
            "PATCH",
            f"{emulator.url}/api/v1/namespaces/{namespace}/configmaps/applied{query}",
            body=yaml.safe_dump(body),
            headers={"Content-Type": "application/apply-patch+yaml"},
        )
        return response.status, json.loads(response.data)

    code, data = apply(manifest)
    assert code == 201 and data["data"] == {"a": "1"}
    code, data = apply({**manifest, "data": {"a": "2"}})
    assert code == 200 and data["data"] == {"a": "2"}
    assert any(
        m["manager"] == "tester" and m["operation"] == "Apply" for m in data["metadata"]["managedFields"]
    )
    code, data = apply(manifest, manager=None)
    assert code == 400 and "fieldManager is required" in data["message"]


def test_dry_run_does_not_persist(api: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(api)
    core.create_namespaced_config_map(namespace, _cm("dry"), dry_run="All")
    with pytest.raises(ApiException) as missing:
        core.read_namespaced_config_map("dry", namespace)
    assert missing.value.status == 404


def test_schema_validation_422_with_causes(api: client.ApiClient, namespace: str, test_crds: None) -> None:
    custom = client.CustomObjectsApi(api)
    with pytest.raises(ApiException) as invalid:
        custom.create_namespaced_custom_object(
            GROUP,
            VERSION,
            namespace,
            PLURAL,
            {
                "apiVersion": "example.com/v1",
                "kind": "Widget",
                "metadata": {"name": "nosize"},
                "spec": {"color": "red"},
            },
        )
    body = json.loads(invalid.value.body)
    assert invalid.value.status == 422 and body["reason"] == "Invalid"
    assert body["details"]["causes"][0]["field"] == "spec.size"
    assert "Required value" in body["message"]

    with pytest.raises(ApiException) as cel:
        custom.create_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, _widget("cel", 2, minSize=3)
        )
    assert cel.value.status == 422
    assert "minSize must not exceed size" in json.loads(cel.value.body)["message"]


def test_unknown_fields_pruned_with_warning_or_rejected_when_strict(
    api: client.ApiClient, namespace: str, test_crds: None
) -> None:
    custom = client.CustomObjectsApi(api)
    created = custom.create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, _widget("pruned", 1, extra="dropped")
    )
    assert "extra" not in created["spec"]
    assert created["spec"]["color"] == "red"  # defaulted
    with pytest.raises(ApiException) as strict:
        custom.create_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, _widget("strict", 1, extra="x"), field_validation="Strict"
        )
    assert strict.value.status == 400
    assert 'unknown field "spec.extra"' in json.loads(strict.value.body)["message"]


def test_namespace_deletion_removes_its_contents(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="doomed")))
    core.create_namespaced_config_map("doomed", _cm("inside"))
    core.delete_namespace("doomed")
    with pytest.raises(ApiException) as gone:
        core.read_namespace("doomed")
    assert gone.value.status == 404
    with pytest.raises(ApiException) as no_ns:
        core.create_namespaced_config_map("doomed", _cm("late"))
    assert no_ns.value.status == 404


def test_concurrent_watchers_each_see_events(api: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(api)
    start = core.list_namespaced_config_map(namespace).metadata.resource_version
    results: list[list[str]] = [[], []]

    def run(out: list[str]) -> None:
        for event in watch.Watch().stream(
            core.list_namespaced_config_map, namespace, resource_version=start, timeout_seconds=5
        ):
            out.append(event["object"].metadata.name)
            if len(out) == 2:
                return

    threads = [threading.Thread(target=run, args=(r,)) for r in results]
    for t in threads:
        t.start()
    core.create_namespaced_config_map(namespace, _cm("one"))
    core.create_namespaced_config_map(namespace, _cm("two"))
    for t in threads:
        t.join(timeout=10)
    assert results == [["one", "two"], ["one", "two"]]


def test_warn_field_validation_sends_warning_header(emulator: Any, namespace: str, test_crds: None) -> None:
    http = urllib3.PoolManager()
    response = http.request(
        "POST",
        f"{emulator.url}/apis/example.com/v1/namespaces/{namespace}/widgets?fieldValidation=Warn",
        body=json.dumps(_widget("warned", 1, colour="red")),
        headers={"Content-Type": "application/json"},
    )
    assert response.status == 201
    assert response.headers["Warning"] == '299 - "unknown field \\"spec.colour\\""'
    assert "colour" not in json.loads(response.data)["spec"]


def test_sigterm_ends_open_watches_and_exits_cleanly(tmp_path: Any) -> None:
    proc, url = start_emulator(tmp_path)
    http = urllib3.PoolManager()
    stream = http.request("GET", f"{url}/api/v1/configmaps?watch=true", preload_content=False, timeout=10)
    assert stream.status == 200
    proc.terminate()
    assert proc.wait(timeout=10) == 0
    stream.release_conn()


def test_watch_list_sends_initial_events_then_end_bookmark(
    api: client.ApiClient, emulator: Any, namespace: str
) -> None:
    """client-go's streaming list (helm --wait uses it): sendInitialEvents=true."""
    core = client.CoreV1Api(api)
    for name in ("x1", "x2"):
        core.create_namespaced_config_map(namespace, _cm(name))
    http = urllib3.PoolManager()
    url = (
        f"{emulator.url}/api/v1/namespaces/{namespace}/configmaps?watch=true&sendInitialEvents=true"
        "&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&timeoutSeconds=5"
    )
    response = http.request("GET", url, preload_content=False, timeout=10)
    lines: list[dict[str, Any]] = []
    buffer = b""
    for chunk in response.stream(decode_content=True):
        buffer += chunk
        *complete, buffer = buffer.split(b"\n")
        lines.extend(json.loads(line) for line in complete if line)
        if any(line["type"] == "BOOKMARK" for line in lines):
            break
    response.release_conn()
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in lines[:2]] == [
        ("ADDED", "x1"),
        ("ADDED", "x2"),
    ]
    assert lines[2]["type"] == "BOOKMARK"
    assert lines[2]["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}


def test_server_side_apply_conflicts_with_other_managers_unless_forced(emulator: Any, namespace: str) -> None:
    http = urllib3.PoolManager()
    url = f"{emulator.url}/api/v1/namespaces/{namespace}/configmaps/shared"

    def apply(data: dict[str, str], manager: str, force: bool = False) -> tuple[int, Any]:
        body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "shared"}, "data": data}
        response = http.request(
            "PATCH",
            f"{url}?fieldManager={manager}&force={str(force).lower()}",
            body=json.dumps(body),
            headers={"Content-Type": "application/apply-patch+yaml"},
        )
        return response.status, json.loads(response.data)

    assert apply({"a": "1", "b": "1"}, "first")[0] == 201
    # someone else edits a field "first" applied: it now belongs to them
    edited = http.request(
        "PATCH",
        f"{url}?fieldManager=editor",
        body=json.dumps({"data": {"a": "edited"}}),
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert edited.status == 200
    code, body = apply({"a": "1", "b": "2"}, "first")
    assert code == 409 and body["reason"] == "Conflict"
    assert body["message"] == 'Apply failed with 1 conflict: conflict with "editor" using v1: .data.a'
    assert body["details"]["causes"] == [
        {"reason": "FieldManagerConflict", "message": 'conflict with "editor" using v1', "field": ".data.a"}
    ]
    code, body = apply({"a": "1", "b": "2"}, "first", force=True)
    assert code == 200 and body["data"] == {"a": "1", "b": "2"}
    editor = [m for m in body["metadata"]["managedFields"] if m["manager"] == "editor"]
    assert editor == []  # forcing took the only field "editor" owned


def test_health_version_and_discovery_documents(emulator: Any, test_crds: None) -> None:
    http = urllib3.PoolManager()

    def get(path: str) -> Any:
        response = http.request("GET", emulator.url + path)
        assert response.status == 200, path
        return response.data.decode() if path.endswith("z") else json.loads(response.data)

    assert [get(p) for p in ("/readyz", "/livez", "/healthz")] == ["ok", "ok", "ok"]
    assert get("/version")["gitVersion"].startswith("v1.32.")
    assert get("/api")["versions"] == ["v1"]
    groups = {g["name"]: g for g in get("/apis")["groups"]}
    assert groups["example.com"]["preferredVersion"] == {"groupVersion": "example.com/v1", "version": "v1"}
    assert {"apps", "batch", "apiextensions.k8s.io", "events.k8s.io", "coordination.k8s.io"} <= set(groups)
    core = {r["name"]: r for r in get("/api/v1")["resources"]}
    assert core["configmaps"]["shortNames"] == ["cm"] and core["configmaps"]["namespaced"] is True
    assert core["namespaces"]["namespaced"] is False and "pods/status" in core
    widgets = {r["name"]: r for r in get("/apis/example.com/v1")["resources"]}
    assert widgets["widgets"]["kind"] == "Widget" and widgets["widgets"]["singularName"] == "widget"
    assert {"get", "list", "watch", "create", "update", "patch", "delete"} <= set(widgets["widgets"]["verbs"])
    assert widgets["widgets/status"]["verbs"] == ["get", "patch", "update"]
    assert "gadgets/status" not in widgets
    apps = {r["name"]: r for r in get("/apis/apps/v1")["resources"]}
    assert (
        apps["deployments/scale"]["kind"] == "Scale" and apps["deployments/scale"]["group"] == "autoscaling"
    )


def test_aggregated_discovery_when_asked_for(emulator: Any, test_crds: None) -> None:
    accept = (
        "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,"
        "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json"
    )
    response = urllib3.PoolManager().request("GET", f"{emulator.url}/apis", headers={"Accept": accept})
    assert (
        response.headers["Content-Type"]
        == "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
    )
    groups = {g["metadata"]["name"]: g for g in json.loads(response.data)["items"]}
    widgets = next(r for r in groups["example.com"]["versions"][0]["resources"] if r["resource"] == "widgets")
    assert widgets["responseKind"] == {"group": "example.com", "version": "v1", "kind": "Widget"}
    assert widgets["scope"] == "Namespaced" and widgets["shortNames"] == ["wd"]
    assert [s["subresource"] for s in widgets["subresources"]] == ["status"]


def test_field_selector_on_crd_selectable_fields(
    api: client.ApiClient, namespace: str, test_crds: None
) -> None:
    custom = client.CustomObjectsApi(api)
    for name, color in [("r", "red"), ("b", "blue")]:
        custom.create_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, _widget(name, 1, color=color)
        )
    found = custom.list_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, field_selector="spec.color=blue"
    )
    assert [w["metadata"]["name"] for w in found["items"]] == ["b"]
    with pytest.raises(ApiException) as unsupported:
        custom.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, field_selector="spec.size=1")
    assert unsupported.value.status == 400


def test_foreground_propagation_deletes_dependents_too(api: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(api)
    owner = core.create_namespaced_config_map(namespace, _cm("fg-owner"))
    ref = client.V1OwnerReference(
        api_version="v1", kind="ConfigMap", name="fg-owner", uid=owner.metadata.uid, block_owner_deletion=True
    )
    core.create_namespaced_config_map(
        namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="fg-child", owner_references=[ref]))
    )
    core.delete_namespaced_config_map("fg-owner", namespace, propagation_policy="Foreground")
    wait_for(lambda: not core.list_namespaced_config_map(namespace).items)
