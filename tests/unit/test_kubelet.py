"""The sandbox pod runner's pure parts: which fault a pod gets, the status a kubelet reports for it, and how
a kubelet builds a container's environment, command line and readiness probe."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from modelrelease.sandbox.kubelet import (
    RUN_ANNOTATION,
    ContainerConfigError,
    ContainerState,
    Exit,
    command_line,
    completed_status,
    container_env,
    expand,
    fault_for,
    fault_key,
    pod_status,
    readiness_probe,
    runs_as_process,
    simulated_state,
)

STARTED = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
IP = "127.1.0.7"


def pod(uri: str | None = "models:/fraud/5", **container: Any) -> dict[str, Any]:
    env = [{"name": "MODEL_URI", "value": uri}] if uri else []
    return {
        "metadata": {"uid": "u1", "name": "p", "namespace": "ml", "labels": {"app": "fraud"}},
        "spec": {
            "nodeName": "sandbox-node",
            "containers": [{"name": "server", "image": "serve:1", "env": env, **container}],
        },
    }


def status_of(state: ContainerState, body: dict[str, Any] | None = None) -> dict[str, Any]:
    return pod_status(body or pod(), {"server": state}, IP, "127.0.0.1", STARTED)


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
    status = status_of(simulated_state("ok", STARTED, 0, STARTED))
    assert status["phase"] == "Running"
    assert status["podIP"] == IP and status["podIPs"] == [{"ip": IP}]
    assert {c["type"]: c["status"] for c in status["conditions"]}["Ready"] == "True"
    (container,) = status["containerStatuses"]
    assert container["ready"] and "running" in container["state"] and container["restartCount"] == 0


def test_an_unready_pod_runs_but_never_becomes_ready() -> None:
    status = status_of(simulated_state("unready", STARTED, 0, STARTED))
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["Ready"]["status"] == "False" and conditions["Ready"]["reason"] == "ContainersNotReady"
    assert "running" in status["containerStatuses"][0]["state"]


def test_a_crash_looping_container_reports_its_restarts_and_last_exit() -> None:
    later = STARTED + timedelta(seconds=30)
    (container,) = status_of(simulated_state("crashloop", STARTED, 3, later))["containerStatuses"]
    assert container["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    assert container["restartCount"] == 3
    assert container["lastState"]["terminated"]["exitCode"] == 1
    assert not container["ready"]
    (first,) = status_of(simulated_state("crashloop", STARTED, 0, STARTED))["containerStatuses"]
    assert "lastState" not in first  # it has not exited yet


def test_a_process_that_exited_reports_its_code_and_termination_message() -> None:
    exited = Exit(1, "modelrelease serve: digest mismatch", STARTED, STARTED + timedelta(seconds=4))
    state = ContainerState(waiting="CrashLoopBackOff", restarts=2, last_exit=exited)
    (container,) = status_of(state)["containerStatuses"]
    assert container["lastState"]["terminated"]["message"] == "modelrelease serve: digest mismatch"
    assert container["lastState"]["terminated"]["reason"] == "Error"
    assert container["restartCount"] == 2
    waiting = status_of(ContainerState())["containerStatuses"][0]["state"]["waiting"]
    assert waiting == {"reason": "ContainerCreating"}


def test_a_run_to_completion_pod_succeeds_or_fails() -> None:
    done = completed_status(pod(), True, IP, "127.0.0.1", STARTED, STARTED)
    assert done["phase"] == "Succeeded"
    assert done["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 0
    failed = completed_status(pod(), False, IP, "127.0.0.1", STARTED, STARTED)
    assert failed["phase"] == "Failed"
    assert failed["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 1


def test_variable_expansion_is_kubernetes() -> None:
    env = {"A": "1", "B": "two"}
    assert expand("$(A)-$(B)", env) == "1-two"
    assert expand("$$(A)", env) == "$(A)"  # escaped
    assert expand("$(MISSING)", env) == "$(MISSING)"  # undefined: left as written
    assert expand("$A", env) == "$A"


def test_the_environment_is_built_in_order_from_every_source() -> None:
    body = pod(
        uri=None,
        env=[
            {"name": "MODEL_URI", "value": "models:/fraud/5"},
            {"name": "ARGS", "value": "-m $(MODEL_URI)"},
            {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}},
            {"name": "LEVEL", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "level"}}},
            {"name": "GONE", "valueFrom": {"secretKeyRef": {"name": "x", "key": "y", "optional": True}}},
            {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
        ],
    )
    values = {("secret", "creds", "token"): "s3cret", ("configmap", "cfg", "level"): "debug"}
    env = container_env(body["spec"]["containers"][0], body, IP, lambda *ref: values.get(ref))
    assert env == {
        "MODEL_URI": "models:/fraud/5",
        "ARGS": "-m models:/fraud/5",
        "TOKEN": "s3cret",
        "LEVEL": "debug",
        "POD": "p",
        "IP": IP,
        "APP": "fraud",
    }


def test_a_missing_required_key_is_a_container_config_error() -> None:
    body = pod(
        uri=None, env=[{"name": "T", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}}]
    )
    with pytest.raises(ContainerConfigError, match="secretKeyRef creds/token not found"):
        container_env(body["spec"]["containers"][0], body, IP, lambda *_: None)


def test_the_command_line_is_expanded_and_binds_the_pods_own_ip() -> None:
    container = {
        "command": ["mlflow", "models", "serve", "-m", "$(MODEL_URI)", "-h", "0.0.0.0"],
        "args": ["-p", "8080"],
    }
    argv = command_line(container, {"MODEL_URI": "models:/fraud/5"}, IP)
    assert argv == ["mlflow", "models", "serve", "-m", "models:/fraud/5", "-h", IP, "-p", "8080"]


def test_the_readiness_probe_resolves_a_named_port_on_the_pod_ip() -> None:
    container = {
        "ports": [{"name": "http", "containerPort": 8080}],
        "readinessProbe": {"httpGet": {"path": "/ping", "port": "http"}, "periodSeconds": 5},
    }
    probe = readiness_probe(container, IP)
    assert probe is not None
    assert (probe.url, probe.period_s, probe.failure_threshold) == (f"http://{IP}:8080/ping", 5.0, 3)
    assert readiness_probe({"readinessProbe": {"exec": {"command": ["true"]}}}, IP) is None


def test_only_annotated_pods_with_programs_here_run_as_processes() -> None:
    runnable = pod(command=["python", "-c", "pass"])
    assert not runs_as_process(runnable)  # not asked to
    runnable["metadata"]["annotations"] = {RUN_ANNOTATION: "process"}
    assert runs_as_process(runnable)
    missing = pod(command=["no-such-program-here"])
    missing["metadata"]["annotations"] = {RUN_ANNOTATION: "process"}
    assert not runs_as_process(missing)
