"""The rollout simulator's pure status computation, driven through simulated time."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from modelrelease.sandbox.simulator import (
    Rollout,
    Timing,
    fault_for,
    fault_key,
    needs_new_replica_set,
    pod_template_hash,
    reconcile,
    resolve_fenceposts,
    status_patch,
)

T0 = 1_800_000_000.0
TIMING = Timing(ready_delay=1.0)
STEP = 0.2


def deployment(
    uri: str = "models:/fraud/1", replicas: int = 2, generation: int = 1, deadline: int = 5, **spec: Any
) -> dict[str, Any]:
    return {
        "metadata": {"name": "fraud", "namespace": "ml", "generation": generation},
        "spec": {
            "replicas": replicas,
            "progressDeadlineSeconds": deadline,
            "selector": {"matchLabels": {"app": "fraud"}},
            "template": {
                "metadata": {"labels": {"app": "fraud"}},
                "spec": {"containers": [{"name": "server", "env": [{"name": "MODEL_URI", "value": uri}]}]},
            },
            **spec,
        },
    }


class Clock:
    """Drives one Deployment through reconcile passes, STEP seconds apart, as the simulator's loop does."""

    def __init__(self) -> None:
        self.now = T0
        self.rollout: Rollout | None = None
        self.history: list[Mapping[str, Any]] = []

    def run(self, dep: Mapping[str, Any], seconds: float, faults: Mapping[str, str] | None = None) -> Rollout:
        end = self.now + seconds
        while self.now < end:
            fault = fault_for(dep["spec"]["template"], faults or {})
            fault = fault if needs_new_replica_set(dep, self.rollout) else "ok"
            self.rollout = reconcile(dep, self.rollout, fault, self.now, TIMING)
            self.history.append(self.rollout.status)
            self.now += STEP
        assert self.rollout is not None
        return self.rollout

    @property
    def status(self) -> Mapping[str, Any]:
        assert self.rollout is not None
        return self.rollout.status


def cond(status: Mapping[str, Any], type_: str) -> Mapping[str, Any]:
    return next(c for c in status["conditions"] if c["type"] == type_)


def counts(status: Mapping[str, Any]) -> tuple[int, ...]:
    keys = ("replicas", "updatedReplicas", "readyReplicas", "availableReplicas", "unavailableReplicas")
    return tuple(status.get(k, 0) for k in keys)


def rs_name(dep: Mapping[str, Any]) -> str:
    return f"fraud-{pod_template_hash(dep['spec']['template'])}"


def test_first_pass_creates_the_replica_set_and_is_not_yet_available() -> None:
    clock = Clock()
    dep = deployment()
    status = clock.run(dep, STEP).status

    assert status["observedGeneration"] == 1
    progressing = cond(status, "Progressing")
    assert (progressing["status"], progressing["reason"]) == ("True", "NewReplicaSetCreated")
    assert progressing["message"] == f'Created new replica set "{rs_name(dep)}"'
    available = cond(status, "Available")
    assert (available["status"], available["reason"]) == ("False", "MinimumReplicasUnavailable")
    assert available["message"] == "Deployment does not have minimum availability."


def test_healthy_rollout_reaches_available_and_new_replica_set_available() -> None:
    clock = Clock()
    dep = deployment(replicas=2)
    status = clock.run(dep, 3).status

    assert counts(status) == (2, 2, 2, 2, 0)
    assert "unavailableReplicas" not in status  # zero counters are omitted, as the API does
    available = cond(status, "Available")
    assert (available["status"], available["reason"]) == ("True", "MinimumReplicasAvailable")
    assert available["message"] == "Deployment has minimum availability."
    progressing = cond(status, "Progressing")
    assert (progressing["status"], progressing["reason"]) == ("True", "NewReplicaSetAvailable")
    assert progressing["message"] == f'ReplicaSet "{rs_name(dep)}" has successfully progressed.'
    reasons = [cond(s, "Progressing")["reason"] for s in clock.history]
    assert reasons[0] == "NewReplicaSetCreated"
    assert "ReplicaSetUpdated" in reasons
    # Progressing stayed True throughout, so its lastTransitionTime is the first pass's.
    assert progressing["lastTransitionTime"] == cond(clock.history[0], "Progressing")["lastTransitionTime"]


def test_pods_become_ready_after_the_configured_delay() -> None:
    clock = Clock()
    dep = deployment(replicas=1)
    clock.run(dep, 0.9)
    assert clock.status.get("readyReplicas", 0) == 0
    clock.run(dep, 0.6)
    assert clock.status["readyReplicas"] == 1


def test_rolling_update_keeps_availability_and_surge_bounds() -> None:
    clock = Clock()
    clock.run(deployment(replicas=4), 3)
    v2 = deployment("models:/fraud/2", replicas=4, generation=2)
    status = clock.run(v2, 10).status

    assert counts(status) == (4, 4, 4, 4, 0)
    assert cond(status, "Progressing")["reason"] == "NewReplicaSetAvailable"
    assert [rs.replicas for rs in clock.run(v2, STEP).sets] == [4, 0]
    during = clock.history[15:]
    surge, unavailable = resolve_fenceposts(None, None, 4)
    assert max(s.get("replicas", 0) for s in during) <= 4 + surge
    assert min(s.get("availableReplicas", 0) for s in during) >= 4 - unavailable


@pytest.mark.parametrize("fault", ["crashloop", "unready"])
def test_faulty_rollout_exceeds_its_deadline_while_old_replicas_keep_serving(fault: str) -> None:
    clock = Clock()
    clock.run(deployment(replicas=2, deadline=3), 3)
    v2 = deployment("models:/fraud/2", replicas=2, generation=2, deadline=3)
    faults = {"models:/fraud/2": fault}

    before = clock.run(v2, 2.5, faults).status
    assert cond(before, "Progressing")["status"] == "True"

    status = clock.run(v2, 2.5, faults).status
    progressing = cond(status, "Progressing")
    assert (progressing["status"], progressing["reason"]) == ("False", "ProgressDeadlineExceeded")
    assert progressing["message"] == f'ReplicaSet "{rs_name(v2)}" has timed out progressing.'
    # The surge pod of the new ReplicaSet never becomes ready; both old pods still serve.
    assert counts(status) == (3, 1, 2, 2, 1)
    assert cond(status, "Available")["status"] == "True"


def test_faulty_first_rollout_is_unavailable_and_times_out() -> None:
    clock = Clock()
    dep = deployment(replicas=2, deadline=2)
    status = clock.run(dep, 3.5, {"models:/fraud/1": "crashloop"}).status

    assert cond(status, "Available")["reason"] == "MinimumReplicasUnavailable"
    assert cond(status, "Progressing")["reason"] == "ProgressDeadlineExceeded"
    assert counts(status) == (2, 2, 0, 0, 2)


def test_wider_deployment_under_a_fault_keeps_the_minimum_available() -> None:
    clock = Clock()
    clock.run(deployment(replicas=4), 3)
    v2 = deployment("models:/fraud/2", replicas=4, generation=2)
    status = clock.run(v2, 5, {"models:/fraud/2": "unready"}).status

    _, unavailable = resolve_fenceposts(None, None, 4)
    assert status["availableReplicas"] == 4 - unavailable
    assert cond(status, "Available")["status"] == "True"


def test_ok_fault_and_unknown_values_roll_out_normally() -> None:
    template = deployment("models:/fraud/3")["spec"]["template"]
    assert fault_for(template, {"models:/fraud/3": "ok"}) == "ok"
    assert fault_for(template, {"models:/fraud/3": "explode"}) == "ok"
    assert fault_for(template, {"models:/fraud/4": "crashloop"}) == "ok"
    assert fault_for(template, {"models:/fraud/3": " crashloop\n"}) == "crashloop"
    # The spelling a real API server accepts as a ConfigMap key works too.
    assert fault_key("models:/fraud-detector/3") == "models_fraud-detector_3"
    assert fault_for(template, {"models_fraud_3": "unready"}) == "unready"

    clock = Clock()
    status = clock.run(deployment("models:/fraud/3"), 3, {"models:/fraud/3": "ok"}).status
    assert cond(status, "Progressing")["reason"] == "NewReplicaSetAvailable"


def test_a_fault_change_applies_to_the_next_rollout_only() -> None:
    clock = Clock()
    v1 = deployment(deadline=2)
    clock.run(v1, 3, {"models:/fraud/1": "crashloop"})
    # Clearing the fault does not heal pods already created under it.
    status = clock.run(v1, 3, {}).status
    assert cond(status, "Progressing")["reason"] == "ProgressDeadlineExceeded"

    v2 = deployment("models:/fraud/2", generation=2, deadline=2)
    status = clock.run(v2, 4, {"models:/fraud/1": "crashloop"}).status
    progressing = cond(status, "Progressing")
    assert (progressing["status"], progressing["reason"]) == ("True", "NewReplicaSetAvailable")
    assert counts(status) == (2, 2, 2, 2, 0)
    assert cond(status, "Available")["status"] == "True"


def test_observed_generation_follows_the_spec() -> None:
    clock = Clock()
    clock.run(deployment(generation=1), 3)
    assert clock.status["observedGeneration"] == 1

    # A metadata-only or scale change still bumps generation when the spec changes; status follows at once.
    status = clock.run(deployment(replicas=3, generation=2), STEP).status
    assert status["observedGeneration"] == 2


def test_scale_up_and_down_of_a_complete_deployment() -> None:
    clock = Clock()
    clock.run(deployment(replicas=2), 3)
    status = clock.run(deployment(replicas=4, generation=2), 3).status
    assert counts(status) == (4, 4, 4, 4, 0)
    assert cond(status, "Progressing")["reason"] == "NewReplicaSetAvailable"

    status = clock.run(deployment(replicas=1, generation=3), 1).status
    assert counts(status) == (1, 1, 1, 1, 0)

    status = clock.run(deployment(replicas=0, generation=4), 1).status
    assert counts(status) == (0, 0, 0, 0, 0)
    assert cond(status, "Available")["status"] == "True"


def test_rollback_to_a_previous_template_reuses_its_replica_set() -> None:
    clock = Clock()
    v1 = deployment(deadline=2)
    clock.run(v1, 3)
    clock.run(deployment("models:/fraud/2", generation=2, deadline=2), 4, {"models:/fraud/2": "crashloop"})
    assert cond(clock.status, "Progressing")["reason"] == "ProgressDeadlineExceeded"

    rollout = clock.run(deployment(generation=3, deadline=2), 3)
    status, sets = rollout.status, rollout.sets
    assert sets[0].name == rs_name(v1)
    assert sets[0].revision == 3
    assert [rs.replicas for rs in sets] == [2, 0]
    assert counts(status) == (2, 2, 2, 2, 0)
    assert cond(status, "Progressing")["reason"] == "NewReplicaSetAvailable"


def test_recreate_strategy_never_runs_old_and_new_pods_together() -> None:
    clock = Clock()
    recreate: dict[str, Any] = {"strategy": {"type": "Recreate"}}
    clock.run(deployment(replicas=2, **recreate), 3)
    status = clock.run(deployment("models:/fraud/2", replicas=2, generation=2, **recreate), 4).status

    assert counts(status) == (2, 2, 2, 2, 0)
    assert all(s.get("replicas", 0) <= 2 for s in clock.history)
    assert any(s.get("replicas", 0) == 0 for s in clock.history[15:])


def test_paused_deployment_does_not_roll_until_resumed() -> None:
    clock = Clock()
    clock.run(deployment(), 3)
    paused = deployment("models:/fraud/2", generation=2, paused=True)
    status = clock.run(paused, 2).status
    progressing = cond(status, "Progressing")
    assert (progressing["status"], progressing["reason"]) == ("Unknown", "DeploymentPaused")
    assert "updatedReplicas" not in status  # the running pods are not of the paused template

    status = clock.run(deployment("models:/fraud/2", generation=3), 4).status
    assert cond(status, "Progressing")["reason"] == "NewReplicaSetAvailable"
    assert counts(status) == (2, 2, 2, 2, 0)


@pytest.mark.parametrize(
    ("surge", "unavailable", "replicas", "expected"),
    [
        (None, None, 1, (1, 0)),
        (None, None, 4, (1, 1)),
        (0, 0, 3, (0, 1)),
        ("50%", "50%", 3, (2, 1)),
        (2, "0%", 5, (2, 0)),
    ],
)
def test_resolve_fenceposts(
    surge: int | str | None, unavailable: int | str | None, replicas: int, expected: tuple[int, int]
) -> None:
    assert resolve_fenceposts(surge, unavailable, replicas) == expected


def test_status_patch_deletes_dropped_counters_and_skips_no_ops() -> None:
    old = {"replicas": 2, "readyReplicas": 2, "conditions": []}
    new = {"replicas": 2, "conditions": [{"type": "Available"}]}
    assert status_patch(old, new) == {"readyReplicas": None, "conditions": [{"type": "Available"}]}
    assert status_patch(new, dict(new)) is None
