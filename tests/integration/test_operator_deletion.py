"""Deleting a release needs nothing from the operator, on the real API server: the operator puts no
finalizer on a release, so with the operator stopped a deleted release is gone at once and the garbage
collector (kube-controller-manager) removes the Deployment and Service it owned; a finalizer that
earlier operator versions added is removed when the operator starts."""

from __future__ import annotations

from functools import partial
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from integration.helpers import Cluster, Models, Operator, eventually, model_name, ready_on, release_spec
from modelrelease.api.models import GROUP, PLURAL, VERSION
from modelrelease.handlers import LEGACY_FINALIZER

pytestmark = pytest.mark.slow

GC_TIMEOUT_S = 90.0
"""Bound on the garbage collector's asynchronous deletion of dependents."""
OTHER_FINALIZER = "example.com/keep"


def finalizers(cluster: Cluster, namespace: str, name: str) -> list[str] | None:
    release = cluster.release(namespace, name)
    return None if release is None else list(release["metadata"].get("finalizers") or [])


def service(cluster: Cluster, namespace: str, name: str) -> dict[str, Any] | None:
    try:
        found: dict[str, Any] = cluster.api.sanitize_for_serialization(
            cluster.core.read_namespaced_service(name, namespace)
        )
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    return found


def namespace_gone(cluster: Cluster, namespace: str) -> bool:
    try:
        cluster.core.read_namespace(namespace)
    except ApiException as exc:
        if exc.status == 404:
            return True
        raise
    return False


def delete(cluster: Cluster, namespace: str, name: str) -> None:
    cluster.custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)


def test_with_the_operator_stopped_a_deleted_release_is_gone_at_once_and_gc_removes_what_it_owned(
    cluster: Cluster, models: Models, operator: Operator, ns: str
) -> None:
    model = model_name("delete")
    v1 = models.register(model)
    models.move_alias(model, v1)
    cluster.apply_release(ns, "fraud", release_spec(model))
    eventually("v1 Ready", partial(ready_on, cluster, ns, "fraud", model, v1))
    assert service(cluster, ns, "fraud") is not None
    assert finalizers(cluster, ns, "fraud") == []  # nothing for kopf to block the deletion with
    annotations = (cluster.release(ns, "fraud") or {})["metadata"].get("annotations") or {}
    assert not [key for key in annotations if key.startswith(("modelrelease.io/", "kopf.zalando.org/"))]

    # A second release in a namespace of its own: deleting that namespace must not hang either.
    other_ns = cluster.namespace("delete-ns")
    cluster.apply_release(other_ns, "fraud", release_spec(model))
    eventually("v1 Ready in the other namespace", partial(ready_on, cluster, other_ns, "fraud", model, v1))

    operator.stop()
    try:
        delete(cluster, ns, "fraud")
        assert cluster.release(ns, "fraud") is None  # at once: no finalizer, no Terminating
        eventually(
            "the GC to delete the Deployment",
            lambda: cluster.deployment(ns, "fraud") is None,
            timeout=GC_TIMEOUT_S,
        )
        eventually(
            "the GC to delete the Service",
            lambda: service(cluster, ns, "fraud") is None,
            timeout=GC_TIMEOUT_S,
        )
        cluster.core.delete_namespace(other_ns)
        eventually(
            "the other namespace to be deleted", partial(namespace_gone, cluster, other_ns), timeout=120
        )
    finally:
        operator.start()


def test_the_finalizer_earlier_versions_added_is_removed_when_the_operator_starts(
    cluster: Cluster, operator: Operator, ns: str
) -> None:
    spec = release_spec(model_name("legacy"))  # never registered: the passes only record ModelNotFound
    operator.stop()
    try:
        for name, kept in (("deleted", []), ("kept", [OTHER_FINALIZER])):
            cluster.custom.create_namespaced_custom_object(
                GROUP,
                VERSION,
                ns,
                PLURAL,
                {
                    "apiVersion": f"{GROUP}/{VERSION}",
                    "kind": "ModelRelease",
                    "metadata": {"name": name, "finalizers": [LEGACY_FINALIZER, *kept]},
                    "spec": spec,
                },
            )
        delete(cluster, ns, "deleted")
        stuck = cluster.release(ns, "deleted")
        assert stuck is not None and stuck["metadata"].get("deletionTimestamp")  # held by the old finalizer
    finally:
        operator.start()
    eventually("the Terminating release to go", lambda: cluster.release(ns, "deleted") is None, timeout=60)
    eventually(
        "only the operator's finalizer removed from the other release",
        lambda: finalizers(cluster, ns, "kept") == [OTHER_FINALIZER],
        timeout=60,
    )
    cluster.custom.patch_namespaced_custom_object(
        GROUP,
        VERSION,
        ns,
        PLURAL,
        "kept",
        {"metadata": {"finalizers": None}},
        _content_type="application/merge-patch+json",
    )
