"""The emulator driven by a real kopf operator process (`kopf run --standalone`)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from emu_support import HERE, Emulator, wait_for
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from modelrelease.sandbox.stack import stop_process

GROUP, VERSION, PLURAL = "example.com", "v1", "widgets"


@pytest.fixture
def operator(emulator: Emulator, namespace: str, test_crds: None, tmp_path: Path) -> Iterator[Path]:
    log = tmp_path / "kopf.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "kopf",
                "run",
                "--standalone",
                "--namespace",
                namespace,
                str(HERE / "kopf_operator.py"),
            ],
            env={**emulator.env, "EMULATOR_URL": emulator.url},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield log
    finally:
        stop_process(proc)


def _get(custom: client.CustomObjectsApi, namespace: str, name: str) -> dict[str, Any] | None:
    try:
        return custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


def test_create_runs_handler_and_delete_waits_for_it(
    api: client.ApiClient, namespace: str, operator: Path
) -> None:
    custom, core = client.CustomObjectsApi(api), client.CoreV1Api(api)
    body = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "k"}, "spec": {"size": 3}}
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)

    def handled() -> dict[str, Any] | None:
        obj = _get(custom, namespace, "k")
        return obj if obj and obj.get("status", {}).get("phase") == "Handled" else None

    obj = wait_for(handled, timeout=30)
    assert obj["metadata"]["annotations"]["example.com/seen-size"] == "3"
    assert "example.com/kopf-finalizer" in obj["metadata"]["finalizers"]

    custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "k")
    # the delete handler cannot finish while the gate is closed: the object stays, marked for deletion
    pending = _get(custom, namespace, "k")
    assert pending is not None and pending["metadata"]["deletionTimestamp"]
    wait_for(lambda: "gate closed" in operator.read_text(), timeout=30)
    assert _get(custom, namespace, "k") is not None

    core.create_namespaced_config_map(
        namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="k-gate"))
    )
    wait_for(lambda: _get(custom, namespace, "k") is None, timeout=30)
    cleaned = core.read_namespaced_config_map("k-cleaned", namespace)
    assert cleaned.metadata.name == "k-cleaned"  # the handler ran before the object went away
