"""Optional MLflow webhook receiver: a push path for alias moves (and other registry changes).

MLflow 3 signs each delivery (`mlflow/webhooks/delivery.py`): headers `X-MLflow-Delivery-Id`,
`X-MLflow-Timestamp` (Unix seconds) and `X-MLflow-Signature: v1,<base64 HMAC-SHA256>` over
`"<delivery id>.<timestamp>.<raw body>"` with the webhook's secret. The body is
`{"entity": "model_version_alias", "action": "created", "timestamp": ..., "data": {"name": ..., ...}}`.

A verified delivery about a registered model drops the cached registry answers for that model and
wakes every release that follows it, so an alias move reaches the Deployment at once instead of at
the next poll. Unsigned, badly signed, or stale deliveries (more than five minutes off) get 401.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable

from aiohttp import web

PATH = "/webhooks/mlflow"
MAX_SKEW_S = 300.0
SIGNATURE_HEADER = "X-MLflow-Signature"
TIMESTAMP_HEADER = "X-MLflow-Timestamp"
DELIVERY_HEADER = "X-MLflow-Delivery-Id"
# Events that can change what a release resolves to or how its candidate verifies.
ENTITIES = frozenset({"model_version_alias", "model_version", "model_version_tag", "registered_model"})

logger = logging.getLogger(__name__)


def signature(secret: str, delivery_id: str, timestamp: str, body: bytes) -> str:
    """The `X-MLflow-Signature` value MLflow sends for this delivery."""
    signed = f"{delivery_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def verified(secret: str, headers: dict[str, str], body: bytes, now: float) -> bool:
    delivery_id = headers.get(DELIVERY_HEADER, "")
    timestamp = headers.get(TIMESTAMP_HEADER, "")
    given = headers.get(SIGNATURE_HEADER, "")
    if not (delivery_id and timestamp.isdigit() and given):
        return False
    if abs(now - int(timestamp)) > MAX_SKEW_S:
        return False
    return hmac.compare_digest(given, signature(secret, delivery_id, timestamp, body))


def model_of(body: bytes) -> str | None:
    """The registered model a delivery is about, when it is an event the operator acts on."""
    try:
        payload = json.loads(body)
    except ValueError:
        return None
    if not isinstance(payload, dict) or payload.get("entity") not in ENTITIES:
        return None
    data = payload.get("data")
    name = data.get("name") if isinstance(data, dict) else None
    return name if isinstance(name, str) and name else None


def application(secret: str, on_model_changed: Callable[[str], int]) -> web.Application:
    """`on_model_changed(name)` invalidates and wakes; it returns how many releases it woke."""

    async def receive(request: web.Request) -> web.Response:
        body = await request.read()
        headers = {
            k: request.headers.get(k, "") for k in (DELIVERY_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER)
        }
        if not verified(secret, headers, body, time.time()):
            return web.json_response({"error": "invalid or missing signature"}, status=401)
        name = model_of(body)
        if name is None:
            return web.json_response({"ignored": True})
        woken = on_model_changed(name)
        logger.info("MLflow webhook about model %s: woke %d release(s)", name, woken)
        return web.json_response({"model": name, "releases": woken})

    app = web.Application(client_max_size=1 << 20)
    app.router.add_post(PATH, receive)
    return app


async def serve(
    address: str, port: int, secret: str, on_model_changed: Callable[[str], int]
) -> web.AppRunner:
    runner = web.AppRunner(application(secret, on_model_changed), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, address, port).start()
    return runner
