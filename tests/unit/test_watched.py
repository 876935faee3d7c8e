"""The newest body of each watched object: the watch and the operator's own writes race, the newer wins;
the kopf handlers feed it, so a pass reads the release and its Deployment from memory."""

from __future__ import annotations

from typing import Any

import kopf
import kubernetes

from modelrelease import handlers, pipeline
from modelrelease.kube.client import Kube
from modelrelease.kube.watched import Latest, not_older, slim
from modelrelease.registry.factory import Registries
from modelrelease.settings import Settings
from unit.kopf_calls import invoke


def body(rv: str | None, **extra: Any) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": "fraud", "namespace": "ml", "managedFields": [{"manager": "x"}]}
    if rv is not None:
        metadata["resourceVersion"] = rv
    return {"metadata": metadata, **extra}


def test_a_body_older_than_the_one_held_is_ignored() -> None:
    latest: Latest[str] = Latest()
    assert latest.seen("k", body("10", status={"phase": "Ready"}))  # the answer to a write
    assert not latest.seen("k", body("9", status={"phase": "Pending"}))  # a late watch event
    assert latest.get("k") == slim(body("10", status={"phase": "Ready"}))
    assert latest.seen("k", body("10", status={"phase": "Ready"}))  # the watch catches up
    assert latest.seen("k", body("11"))


def test_revisions_that_are_not_integers_let_the_newer_arrival_win() -> None:
    assert not_older(body("abc"), body("10")) and not_older(body("5"), body(None))
    assert not not_older(body("5"), body("10"))


def test_a_deletion_leaves_a_tombstone_that_late_bodies_do_not_pass() -> None:
    latest: Latest[str] = Latest()
    latest.seen("k", body("10"))
    latest.gone("k", body("12"))
    assert latest.get("k") is None and len(latest) == 0
    assert not latest.seen("k", body("11"))
    assert latest.seen("k", body("13"))  # created again
    latest.gone("k")  # no longer of interest: no tombstone
    assert latest.seen("k", body("1"))


def test_kept_bodies_lack_managed_fields_and_leave_the_original_alone() -> None:
    original = body("3", spec={"a": 1})
    kept = slim(original)
    assert "managedFields" not in kept["metadata"] and kept["spec"] == {"a": 1}
    assert "managedFields" in original["metadata"]


def operator() -> pipeline.Operator:
    return pipeline.Operator(
        settings=Settings(), kube=Kube(kubernetes.client.ApiClient()), registries=Registries()
    )


async def test_the_handlers_keep_the_watched_release_and_deployment() -> None:
    memo = kopf.Memo(operator=operator())
    op: pipeline.Operator = memo.operator
    release = {**body("7"), "spec": {"model": {"name": "m", "alias": "a"}}}
    await invoke(
        handlers.release_event,
        event={"type": None, "object": release},
        body=release,
        namespace="ml",
        name="fraud",
        patch=kopf.Patch(),
        memo=memo,
    )
    assert op.bodies.get(("ml", "fraud")) == slim(release)
    deployment = {
        "metadata": {
            "name": "fraud",
            "namespace": "ml",
            "resourceVersion": "8",
            "labels": {handlers.MANAGED_BY_LABEL: handlers.MANAGED_BY, handlers.RELEASE_LABEL: "fraud"},
        },
    }
    for type_ in (None, "DELETED"):
        await invoke(
            handlers.deployment_event,
            event={"type": type_, "object": deployment},
            body=deployment,
            namespace="ml",
            name="fraud",
            memo=memo,
        )
        assert (op.deployments.get(("ml", "fraud")) is None) == (type_ == "DELETED")
    await invoke(
        handlers.release_event,
        event={"type": "DELETED", "object": release},
        body=release,
        namespace="ml",
        name="fraud",
        patch=kopf.Patch(),
        memo=memo,
    )
    assert op.bodies.get(("ml", "fraud")) is None and not op.releases
