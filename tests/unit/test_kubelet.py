"""The sandbox pod runner's pure part: which fault a pod gets, and the status a kubelet reports for it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from modelrelease.sandbox.kubelet import fault_for, fault_key, pod_status

STARTED = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def pod(uri: str | None = "models:/fraud/5") -> dict[str, Any]:
    env = [{"name": "MODEL_URI", "value": uri}] if uri else []
    return {
        "metadata": {"uid": "u1", "name": "p", "namespace": "ml"},
        "spec": {"containers": [{"name": "server", "image": "serve:1", "env": env}]},
    }


def test_fault_keys_are_valid_configmap_keys() -> None:
    assert fault_key("models:/fraud/5") == "models_fraud_5"
    assert fault_key("models:/fraud-detector/12") == "models_fraud-detector_12"


@pytest.mark.parametrize(
    ("faults", "expected"),
    [
        ({"models_fraud_5": "crashloop"}, "crashloop"),
        ({"models_fraud_5": " unready\n"}, "unready"),
        ({"models_fraud_5": "ok"}, "ok"),
        ({"models_fraud_5": "explode"}, "ok"),  # unknown value: healthy
        ({"models_fraud_6": "crashloop"}, "ok"),  # another version
        ({}, "ok"),
    ],
)
def test_the_fault_follows_the_pods_model_uri(faults: dict[str, str], expected: str) -> None:
    assert fault_for(pod(), faults) == expected


def test_a_pod_without_a_model_uri_is_healthy() -> None:
    assert fault_for(pod(uri=None), {"models_fraud_5": "crashloop"}) == "ok"


def test_a_healthy_pod_is_running_and_ready_on_its_ip() -> None:
    status = pod_status(pod(), "ok", "127.1.0.7", "127.0.0.1", STARTED, 0, STARTED)
    assert status["phase"] == "Running"
    assert status["podIP"] == "127.1.0.7" and status["podIPs"] == [{"ip": "127.1.0.7"}]
    assert {c["type"]: c["status"] for c in status["conditions"]}["Ready"] == "True"
    (container,) = status["containerStatuses"]
    assert container["ready"] and "running" in container["state"] and container["restartCount"] == 0


def test_an_unready_pod_runs_but_never_becomes_ready() -> None:
    status = pod_status(pod(), "unready", "127.1.0.7", "127.0.0.1", STARTED, 0, STARTED)
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["Ready"]["status"] == "False" and conditions["Ready"]["reason"] == "ContainersNotReady"
    assert "running" in status["containerStatuses"][0]["state"]


def test_a_crash_looping_container_reports_its_restarts_and_last_exit() -> None:
    later = STARTED + timedelta(seconds=30)
    status = pod_status(pod(), "crashloop", "127.1.0.7", "127.0.0.1", STARTED, 3, later)
    (container,) = status["containerStatuses"]
    assert container["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    assert container["restartCount"] == 3
    assert container["lastState"]["terminated"]["exitCode"] == 1
    assert not container["ready"]
    first = pod_status(pod(), "crashloop", "127.1.0.7", "127.0.0.1", STARTED, 0, STARTED)
    assert "lastState" not in first["containerStatuses"][0]  # it has not exited yet


def test_a_run_to_completion_pod_succeeds_or_fails_under_a_crashloop() -> None:
    hook = pod()
    hook["spec"]["restartPolicy"] = "Never"
    done = pod_status(hook, "ok", "127.1.0.7", "127.0.0.1", STARTED, 0, STARTED)
    assert done["phase"] == "Succeeded"
    assert done["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 0
    failed = pod_status(hook, "crashloop", "127.1.0.7", "127.0.0.1", STARTED, 0, STARTED)
    assert failed["phase"] == "Failed"
    assert failed["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 1
