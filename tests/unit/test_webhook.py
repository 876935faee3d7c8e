"""The MLflow webhook receiver: MLflow's own signing code produces what the receiver accepts."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping

from aiohttp.test_utils import TestClient, TestServer
from mlflow.webhooks.delivery import _generate_hmac_signature

from modelrelease import webhook

SECRET = "whsec-test"


def delivery(
    payload: Mapping[str, object], secret: str = SECRET, at: float | None = None
) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(payload)
    delivery_id, stamp = str(uuid.uuid4()), str(int(at if at is not None else time.time()))
    headers = {
        "Content-Type": "application/json",
        webhook.DELIVERY_HEADER: delivery_id,
        webhook.TIMESTAMP_HEADER: stamp,
        webhook.SIGNATURE_HEADER: _generate_hmac_signature(secret, delivery_id, stamp, body),
    }
    return body.encode(), headers


ALIAS_MOVED = {
    "entity": "model_version_alias",
    "action": "created",
    "timestamp": "2026-01-01T00:00:00+00:00",
    "data": {"name": "fraud", "alias": "champion", "version": "7"},
}


def test_signature_matches_mlflow() -> None:
    body, headers = delivery(ALIAS_MOVED)
    assert webhook.verified(SECRET, headers, body, time.time())
    assert not webhook.verified("other", headers, body, time.time())
    assert not webhook.verified(SECRET, headers, body + b" ", time.time())
    assert not webhook.verified(SECRET, headers, body, time.time() + 3600)  # replayed an hour later
    assert not webhook.verified(SECRET, {**headers, webhook.SIGNATURE_HEADER: ""}, body, time.time())


def test_model_of_relevant_events() -> None:
    assert webhook.model_of(json.dumps(ALIAS_MOVED).encode()) == "fraud"
    deleted = {**ALIAS_MOVED, "action": "deleted", "data": {"name": "fraud", "alias": "champion"}}
    assert webhook.model_of(json.dumps(deleted).encode()) == "fraud"
    prompt = {**ALIAS_MOVED, "entity": "prompt_alias"}
    assert webhook.model_of(json.dumps(prompt).encode()) is None
    assert webhook.model_of(b"not json") is None


async def test_receiver_wakes_on_signed_deliveries_only() -> None:
    woken: list[str] = []

    def changed(name: str) -> int:
        woken.append(name)
        return 2

    async with TestClient(TestServer(webhook.application(SECRET, changed))) as client:
        body, headers = delivery(ALIAS_MOVED)
        answer = await client.post(webhook.PATH, data=body, headers=headers)
        assert answer.status == 200
        assert await answer.json() == {"model": "fraud", "releases": 2}

        forged, forged_headers = delivery(ALIAS_MOVED, secret="guess")
        assert (await client.post(webhook.PATH, data=forged, headers=forged_headers)).status == 401
        unsigned = {k: v for k, v in headers.items() if k != webhook.SIGNATURE_HEADER}
        assert (await client.post(webhook.PATH, data=body, headers=unsigned)).status == 401
    assert woken == ["fraud"]
