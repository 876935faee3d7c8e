"""What the kube adapter puts on the wire, through the real `kubernetes` client down to its HTTP pool:
the method, path, query, content type and body of each write. (What the API server then does with them
is proven against a real kube-apiserver in tests/integration/test_operator_ownership.py.)"""

from __future__ import annotations

import asyncio
import copy
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import kubernetes
import pytest

from modelrelease import pipeline
from modelrelease.api.models import ModelReleaseSpec
from modelrelease.kube.client import Kube, Refused
from modelrelease.render import manifests
from modelrelease.render.pin import Pin, ReleaseRef
from unit.test_status_write import FULL

RELEASE = ReleaseRef(name="fraud", namespace="ml", uid="0b5e7d1c-1111-2222-3333-444455556666")


@dataclass
class Sent:
    method: str
    path: str
    query: dict[str, list[str]]
    content_type: str | None
    body: Any


@dataclass
class _Answer:
    status: int = 200
    reason: str = "OK"
    data: bytes = b"{}"
    headers: dict[str, str] = field(default_factory=lambda: {"content-type": "application/json"})


class _Pool:
    """Stands in for urllib3's PoolManager: records each request and answers with its body, as if the
    server had stored it unchanged."""

    def __init__(self) -> None:
        self.sent: list[Sent] = []
        self.answer: Any = None
        """Answer with this instead, when set."""

    def request(self, method: str, url: str, body: str | None = None, **kwargs: Any) -> _Answer:
        parts = urlsplit(url)
        headers = kwargs.get("headers") or {}
        self.sent.append(
            Sent(
                method,
                parts.path,
                parse_qs(parts.query),
                headers.get("Content-Type"),
                json.loads(body) if body else None,
            )
        )
        return self.answer or _Answer(data=(body or "{}").encode())

    def clear(self) -> None:
        pass


@pytest.fixture
def wire() -> Iterator[tuple[Kube, _Pool]]:
    config = kubernetes.client.Configuration(host="https://127.0.0.1:6443")
    api = kubernetes.client.ApiClient(config)
    pool = _Pool()
    api.rest_client.pool_manager = pool  # type: ignore[assignment]
    kube = Kube(api)
    try:
        yield kube, pool
    finally:
        kube.close()


def _spec() -> ModelReleaseSpec:
    return ModelReleaseSpec.model_validate({"model": {"name": "fraud-detector", "alias": "champion"}})


def test_the_status_is_written_as_a_merge_patch_with_nulls_and_not_at_all_when_unchanged(
    wire: tuple[Kube, _Pool],
) -> None:
    kube, pool = wire
    new = copy.deepcopy(FULL)
    del new["current"]["digest"]
    asyncio.run(kube.write_release_status("ml", "fraud", FULL, new))
    asyncio.run(kube.write_release_status("ml", "fraud", new, copy.deepcopy(new)))
    (sent,) = pool.sent
    assert (sent.method, sent.path) == (
        "PATCH",
        "/apis/modelrelease.io/v1alpha1/namespaces/ml/modelreleases/fraud/status",
    )
    assert sent.content_type == "application/merge-patch+json"
    assert sent.query == {"fieldManager": ["modelrelease-operator"]}
    assert sent.body == {"status": {"current": {"digest": None}}}


def test_recording_a_bad_spec_writes_only_the_resolved_condition_and_the_phase(
    wire: tuple[Kube, _Pool],
) -> None:
    kube, pool = wire
    op = pipeline.Operator(settings=None, kube=kube, registries=None)  # type: ignore[arg-type]
    body = {"metadata": {"name": "fraud", "namespace": "ml", "generation": 4}, "status": FULL}
    asyncio.run(pipeline._record_bad_spec(op, body, pipeline.SpecError("spec.model", "bad", "InvalidSpec")))
    status_write, event = pool.sent
    assert status_write.path.endswith("/modelreleases/fraud/status")
    patch = status_write.body["status"]
    assert set(patch) == {"conditions", "phase"} and patch["phase"] == "Failed"
    assert [(c["type"], c["reason"]) for c in patch["conditions"]] == [
        ("Ready", "Serving"),
        ("Resolved", "InvalidSpec"),
    ]
    assert event.path == "/api/v1/namespaces/ml/events"


def test_managed_objects_are_server_side_applied_with_force(wire: tuple[Kube, _Pool]) -> None:
    kube, pool = wire
    ctx = manifests.RenderContext(image="serving:1", tracking_uri="http://127.0.0.1:5000", hpa=True)
    deployment = manifests.deployment(RELEASE, _spec(), 3, Pin("fraud-detector", "7"), 2, ctx)
    service = manifests.service(RELEASE, _spec(), 3)
    asyncio.run(kube.apply_deployment(deployment))
    asyncio.run(kube.apply_service(service))
    applied_deployment, applied_service = pool.sent
    for sent, path, manifest in (
        (applied_deployment, "/apis/apps/v1/namespaces/ml/deployments/fraud", deployment),
        (applied_service, "/api/v1/namespaces/ml/services/fraud", service),
    ):
        assert (sent.method, sent.path) == ("PATCH", path)
        assert sent.content_type == "application/apply-patch+yaml"
        assert sent.query == {"fieldManager": ["modelrelease-operator"], "force": ["true"]}
        assert sent.body == manifest  # JSON, which is YAML: nothing but the apply configuration
    assert "replicas" not in applied_deployment.body["spec"]  # an HPA scales it


def test_a_deployment_the_api_server_finds_invalid_is_refused_with_its_message(
    wire: tuple[Kube, _Pool],
) -> None:
    kube, pool = wire
    message = (
        'Deployment.apps "fraud" is invalid: spec.template.spec.containers[0].resources.requests:\n'
        '  Invalid value: "2": must be less than or equal to cpu limit of 1'
    )
    status = {"kind": "Status", "status": "Failure", "reason": "Invalid", "code": 422, "message": message}
    pool.answer = _Answer(status=422, reason="Unprocessable Entity", data=json.dumps(status).encode())
    ctx = manifests.RenderContext(image="serving:1", tracking_uri="http://127.0.0.1:5000")
    deployment = manifests.deployment(RELEASE, _spec(), 3, Pin("fraud-detector", "7"), 2, ctx)
    with pytest.raises(Refused) as refused:
        asyncio.run(kube.apply_deployment(deployment))
    assert str(refused.value) == " ".join(message.split())


class _ReadOn:
    """An answer that notes the thread its body is read on."""

    status = 200
    reason = "OK"

    def __init__(self, body: bytes) -> None:
        self.headers = {"content-type": "application/json"}
        self.body = body
        self.read_on: threading.Thread | None = None

    @property
    def data(self) -> bytes:
        self.read_on = threading.current_thread()
        return self.body


def test_answers_are_read_and_parsed_off_the_event_loop(wire: tuple[Kube, _Pool]) -> None:
    kube, pool = wire
    pool.answer = _ReadOn(
        b'{"items": [{"spec": {"scaleTargetRef": {"kind": "Deployment", "name": "fraud"}}}]}'
    )
    assert asyncio.run(kube.hpa_targets("ml", "fraud"))
    assert not asyncio.run(kube.hpa_targets("ml", "other"))
    assert pool.answer.read_on is not None and pool.answer.read_on is not threading.current_thread()
    assert [(s.method, s.path) for s in pool.sent] == [
        ("GET", "/apis/autoscaling/v2/namespaces/ml/horizontalpodautoscalers")
    ] * 2
