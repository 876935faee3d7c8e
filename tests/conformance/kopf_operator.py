"""A minimal kopf operator for the emulator conformance tests (run as `kopf run --standalone`).

Its delete handler talks to the API with plain aiohttp (URL in EMULATOR_URL), which starts instantly.
"""

from __future__ import annotations

import os
from typing import Any

import aiohttp
import kopf


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    settings.persistence.finalizer = "example.com/kopf-finalizer"
    settings.watching.server_timeout = 30


@kopf.on.create("example.com", "v1", "widgets")
def created(spec: dict[str, Any], patch: kopf.Patch, **_: Any) -> None:
    patch.status["phase"] = "Handled"
    patch.metadata.annotations["example.com/seen-size"] = str(spec["size"])


@kopf.on.delete("example.com", "v1", "widgets")
async def deleted(name: str, namespace: str, **_: Any) -> None:
    """Finish only once the test opens the gate (a ConfigMap), then leave a trace of having run."""
    configmaps = f"{os.environ['EMULATOR_URL']}/api/v1/namespaces/{namespace}/configmaps"
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{configmaps}/{name}-gate") as gate:
            if gate.status == 404:
                raise kopf.TemporaryError("gate closed", delay=0.3)
        trace = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"{name}-cleaned"}}
        async with session.post(configmaps, json=trace) as created:
            created.raise_for_status()
