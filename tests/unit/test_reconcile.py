"""Example-based tests of each branch of the reconcile decisions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from modelrelease.api.models import ModelReleaseSpec, ModelReleaseStatus
from modelrelease.reconcile import Plan, decide, refused
from modelrelease.reconcile.decide import SmokeTested
from modelrelease.registry.base import ModelNotFound, ModelVersion, RegistryError, RegistryUnavailable
from modelrelease.render.observe import ObservedDeployment
from modelrelease.render.pin import Pin
from modelrelease.verify.checks import CheckResult
from unit.status_server import StatusServer

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
PASS = [
    CheckResult("RegistryReady", "Passed", "version is READY", "VersionReady"),
    CheckResult("Metrics", "Passed", "all gates pass: f1=0.93", "MetricGatesPassed"),
]
REFUSAL = (
    'Deployment.apps "fraud" is invalid: spec.template.spec.containers[0].resources.requests: '
    'Invalid value: "2": must be less than or equal to cpu limit of 1'
)
NO_EXAMPLE = CheckResult("SmokeTest", "Skipped", "version logged no serving input example", "NoInputExample")
"""The smoke test's verdict where a test does not say: the version logged no input example."""
FAIL_F1 = [
    CheckResult("RegistryReady", "Passed", "version is READY", "VersionReady"),
    CheckResult("Metrics", "Failed", "f1=0.41 below min 0.9", "MetricGateFailed"),
]


def mv(n: int, name: str = "fraud") -> ModelVersion:
    return ModelVersion(name=name, version=str(n), status="READY", run_id=f"r{n}", source="s3://b/x")


def make_spec(**overrides: Any) -> ModelReleaseSpec:
    body: dict[str, Any] = {"model": {"name": "fraud", "alias": "champion"}}
    body.update(overrides)
    return ModelReleaseSpec.model_validate(body)


def deployment(
    n: int | None, rollout: str = "Progressing", gen: int = 1, applied: int | None = 1, message: str = ""
) -> ObservedDeployment:
    return ObservedDeployment(
        pin=Pin("fraud", str(n)) if n is not None else None,
        release_generation=gen if n is not None else None,
        rollout=rollout,  # type: ignore[arg-type]
        replicas=1,
        available=1 if rollout == "Succeeded" else 0,
        message=message or f"rollout {rollout.lower()}",
        applied_generation=applied,
    )


class Release:
    """Drives decide() the way the handler does; the status lives on a StatusServer, written as the
    operator writes it and read back from there."""

    def __init__(self, spec: ModelReleaseSpec | None = None, generation: int = 1) -> None:
        self.spec = spec or make_spec()
        self.generation = generation
        self.server = StatusServer()
        self.clock = T0

    @property
    def status(self) -> ModelReleaseStatus | None:
        return self.server.read()

    def step(
        self,
        resolution: ModelVersion | RegistryError,
        observed: ObservedDeployment | None,
        results: list[CheckResult] | None = None,
        digest: str | None = None,
        smoke: CheckResult | None = NO_EXAMPLE,
    ) -> Plan:
        """One pass. `smoke`: the smoke test's verdict when the plan asks for one (None: not this pass)."""
        self.clock += timedelta(seconds=5)
        plan = decide(self.spec, self.generation, self.status, resolution, None, observed, self.clock)
        if plan.smoke_test is not None and smoke is not None:  # the handler sends the example, decides again
            tested = SmokeTested(plan.smoke_test.pin.version, smoke)
            plan = decide(
                self.spec, self.generation, self.status, resolution, None, observed, self.clock, smoke=tested
            )
        if plan.verify is not None and results is not None:
            plan = decide(
                self.spec,
                self.generation,
                self.status,
                resolution,
                results,
                observed,
                self.clock,
                digest=digest,
            )
        if plan.verify is None:  # the handler verifies before it writes anything
            self.server.write(plan)
        return plan

    def refuse(
        self, plan: Plan, resolution: ModelVersion | RegistryError, observed: ObservedDeployment | None
    ) -> Plan:
        """The API server refused `plan.deploy` (HTTP 422): what the handler writes next."""
        after = refused(plan, self.spec, self.generation, resolution, observed, self.clock, REFUSAL)
        self.server.write(after)
        return after

    def condition(self, type_: str) -> tuple[str, str]:
        assert self.status is not None
        found = next(c for c in self.status.conditions if c.type == type_)
        return found.status, found.reason

    def outcomes(self) -> list[tuple[str, str | None]]:
        assert self.status is not None
        return [(e.version, e.outcome) for e in self.status.history]


def serving(release: Release, n: int = 1) -> None:
    """Bring `release` to version n serving (rolled out and available)."""
    release.step(mv(n), None, PASS)
    release.step(mv(n), deployment(n, "Succeeded", gen=release.generation, applied=release.generation))


def reasons(plan: Plan) -> list[str]:
    return [e.reason for e in plan.events]


def test_first_resolution_asks_for_verification_before_anything_else() -> None:
    plan = Release().step(mv(1), None)
    assert plan.verify == mv(1)
    assert plan.deploy is None
    assert plan.status.history == []


def test_verified_version_rolls_out_and_completes() -> None:
    release = Release()
    plan = release.step(mv(1), None, PASS, digest="sha256:" + "1" * 64)
    assert plan.deploy is not None and plan.deploy.kind == "Rollout"
    assert plan.deploy.pin == Pin("fraud", "1", "sha256:" + "1" * 64)
    assert plan.status.phase == "Progressing"
    assert release.outcomes() == [("1", None)]
    assert release.condition("Verified") == ("True", "ChecksPassed")
    assert release.condition("Progressing") == ("True", "RolloutInProgress")
    # The resolution is said in the one RolloutStarted Event (and in the Resolved condition).
    assert reasons(plan) == ["RolloutStarted"]
    assert [e.message for e in plan.events] == [
        "alias champion resolved to version 1 (models:/fraud/1): rolling it out"
    ]
    assert release.condition("Resolved") == ("True", "AliasResolved")
    assert plan.status.resolved is not None and plan.status.resolved.digest == "sha256:" + "1" * 64

    plan = release.step(mv(1), deployment(1, "Succeeded"))
    assert release.outcomes() == [("1", "Succeeded")]
    assert plan.status.current is not None and plan.status.current.model_uri == "models:/fraud/1"
    assert plan.status.current.since == release.clock
    assert plan.status.phase == "Ready"
    assert release.condition("Ready") == ("True", "Serving")
    assert reasons(plan) == ["RolloutSucceeded"]
    assert plan.status.observed_generation == 1


def test_deciding_again_on_the_same_observation_changes_nothing() -> None:
    release = Release()
    serving(release)
    plan = release.step(mv(1), deployment(1, "Succeeded"))
    assert not plan.status_changed
    assert plan.deploy is None and plan.events == () and plan.verify is None


def test_alias_move_verifies_and_rolls_out_the_new_version() -> None:
    release = Release()
    serving(release)
    assert release.step(mv(2), deployment(1, "Succeeded")).verify == mv(2)
    plan = release.step(mv(2), deployment(1, "Succeeded"), PASS)
    assert plan.deploy is not None and plan.deploy.pin.version == "2"
    assert plan.status.current is not None and plan.status.current.version == "1"  # until v2 is available
    assert reasons(plan) == ["RolloutStarted"]
    assert plan.events[0].message == "alias champion resolved to version 2 (models:/fraud/2): rolling it out"


def test_failed_gate_blocks_and_the_old_version_keeps_serving() -> None:
    release = Release()
    serving(release)
    plan = release.step(mv(3), deployment(1, "Succeeded"), FAIL_F1)
    assert plan.deploy is None
    assert release.outcomes() == [("1", "Succeeded"), ("3", "Blocked")]
    entry = plan.status.history[-1]
    assert entry.reason == "MetricGateFailed" and entry.message is not None and "f1=0.41" in entry.message
    assert plan.status.phase == "Blocked"
    assert release.condition("Verified") == ("False", "MetricGateFailed")
    assert release.condition("Ready") == ("True", "Serving")
    assert plan.status.current is not None and plan.status.current.version == "1"
    assert [(e.type, e.reason) for e in plan.events] == [
        ("Normal", "AliasResolved"),
        ("Warning", "MetricGateFailed"),
    ]
    assert [v.version for v in plan.status.verification] == ["3", "3"]

    again = release.step(mv(3), deployment(1, "Succeeded"))
    assert again.verify is None and again.deploy is None and not again.status_changed


def test_blocked_version_is_retried_when_the_spec_changes() -> None:
    release = Release()
    serving(release)
    release.step(mv(3), deployment(1, "Succeeded"), FAIL_F1)
    release.generation = 2
    plan = release.step(mv(3), deployment(1, "Succeeded"))
    assert plan.verify == mv(3)


def test_blocked_version_is_retried_when_the_registry_answer_changes() -> None:
    release = Release()
    serving(release)
    release.step(mv(3), deployment(1, "Succeeded"), FAIL_F1)
    release.step(mv(4), deployment(1, "Succeeded"), FAIL_F1)
    assert release.step(mv(3), deployment(1, "Succeeded")).verify == mv(3)


def test_warnings_do_not_block() -> None:
    release = Release()
    warned = [CheckResult("Digest", "Warned", "no expected digest", "DigestMissing")]
    plan = release.step(mv(1), None, warned)
    assert plan.deploy is not None
    assert release.condition("Verified") == ("True", "ChecksPassedWithWarnings")


def test_deadline_exceeded_rolls_back_to_the_last_succeeded_version() -> None:
    release = Release()
    serving(release, 2)
    release.step(mv(5), deployment(2, "Succeeded"), PASS)
    stuck = deployment(5, "Failed", message="ReplicaSet has timed out progressing")
    plan = release.step(mv(5), stuck)
    assert plan.deploy is not None and plan.deploy.kind == "Rollback"
    assert plan.deploy.pin.version == "2" and plan.deploy.release_generation == 1
    assert release.outcomes() == [("2", "Succeeded"), ("5", "RolledBack")]
    entry = plan.status.history[-1]
    assert entry.reason == "ProgressDeadlineExceeded"
    assert entry.message is not None and "rolled back to version 2" in entry.message
    assert release.condition("Degraded") == ("True", "RolledBack")
    assert plan.status.phase == "Progressing"
    assert ("Warning", "RolledBack") in [(e.type, e.reason) for e in plan.events]

    rolling_back = release.step(mv(5), deployment(2, "Progressing"))
    assert release.condition("Progressing") == ("True", "RollbackInProgress")
    assert rolling_back.deploy is None
    settled = release.step(mv(5), deployment(2, "Succeeded"))
    assert settled.status.phase == "Degraded"
    assert release.condition("Ready") == ("True", "Serving")
    assert release.outcomes() == [("2", "Succeeded"), ("5", "RolledBack")]  # no entry for the rollback
    assert settled.status.current is not None and settled.status.current.version == "2"
    # Not retried while nothing changed.
    assert release.step(mv(5), deployment(2, "Succeeded")).verify is None


def test_without_auto_rollback_the_failed_version_stays_and_phase_is_failed() -> None:
    release = Release(make_spec(rollout={"autoRollback": False}))
    serving(release, 2)
    release.step(mv(5), deployment(2, "Succeeded"), PASS)
    plan = release.step(mv(5), deployment(5, "Failed"))
    assert plan.deploy is None
    assert release.outcomes()[-1] == ("5", "Failed")
    assert plan.status.phase == "Failed"
    assert release.condition("Degraded") == ("True", "RolloutFailed")
    assert reasons(plan) == ["RolloutFailed"]


def test_moving_the_alias_back_after_a_failure_restores_the_serving_version() -> None:
    release = Release(make_spec(rollout={"autoRollback": False}))
    serving(release, 2)
    release.step(mv(5), deployment(2, "Succeeded"), PASS)
    release.step(mv(5), deployment(5, "Failed"))
    plan = release.step(mv(2), deployment(5, "Failed"))
    assert plan.deploy is not None and plan.deploy.kind == "Repair" and plan.deploy.pin.version == "2"


def test_first_version_failing_cannot_roll_back() -> None:
    release = Release()
    release.step(mv(1), None, PASS)
    plan = release.step(mv(1), deployment(1, "Failed"))
    assert plan.deploy is None
    assert release.outcomes() == [("1", "Failed")]
    assert plan.status.history[-1].message is not None
    assert "no earlier version succeeded" in plan.status.history[-1].message


def test_registry_outage_leaves_the_deployment_alone_and_says_why() -> None:
    release = Release()
    serving(release)
    down = RegistryUnavailable("GET /registered-models/alias: connection refused")
    plan = release.step(down, deployment(1, "Succeeded"))
    assert plan.deploy is None and plan.verify is None
    assert release.condition("Resolved") == ("False", "RegistryUnavailable")
    assert release.condition("Degraded") == ("True", "RegistryUnavailable")
    assert plan.status.phase == "Degraded"
    assert plan.status.current is not None and plan.status.current.version == "1"
    assert [(e.type, e.reason) for e in plan.events] == [("Warning", "RegistryUnavailable")]
    assert release.step(down, deployment(1, "Succeeded")).events == ()  # said once

    back = release.step(mv(1), deployment(1, "Succeeded"))
    assert release.condition("Resolved") == ("True", "AliasResolved")
    assert back.status.phase == "Ready"
    assert reasons(back) == ["AliasResolved"]


def test_registry_errors_before_anything_serves() -> None:
    release = Release()
    assert release.step(RegistryUnavailable("timeout"), None).status.phase == "Pending"
    missing = ModelNotFound("alias champion not found on fraud", reason="AliasNotFound")
    plan = release.step(missing, None)
    assert plan.status.phase == "Failed"
    assert release.condition("Resolved") == ("False", "AliasNotFound")
    assert release.condition("Ready") == ("False", "NotServing")


def test_rollout_is_still_observed_and_rolled_back_while_the_registry_is_down() -> None:
    release = Release()
    serving(release, 2)
    release.step(mv(5), deployment(2, "Succeeded"), PASS)
    plan = release.step(RegistryUnavailable("down"), deployment(5, "Failed"))
    assert plan.deploy is not None and plan.deploy.kind == "Rollback"


def test_lost_status_is_rebuilt_from_the_deployment() -> None:
    release = Release()
    plan = release.step(mv(4), deployment(4, "Succeeded", gen=3, applied=1))
    assert release.outcomes() == [("4", "Succeeded")]
    assert plan.status.history[0].reason == "RebuiltFromDeployment"
    assert plan.status.history[0].release_generation == 3
    assert plan.status.current is not None and plan.status.current.version == "4"
    assert plan.deploy is None and plan.verify is None
    assert "StatusRebuilt" in reasons(plan)
    assert plan.status.phase == "Ready"


def test_lost_status_mid_rollout_keeps_observing_it() -> None:
    release = Release()
    release.step(mv(4), deployment(4, "Progressing"))
    assert release.outcomes() == [("4", None)]
    release.step(mv(4), deployment(4, "Succeeded"))
    assert release.outcomes() == [("4", "Succeeded")]


def test_crash_between_status_and_deployment_write_is_repaired() -> None:
    release = Release()
    serving(release)
    release.step(mv(2), deployment(1, "Succeeded"), PASS)  # status written, Deployment write lost
    plan = release.step(mv(2), deployment(1, "Succeeded"))
    assert plan.deploy is not None and plan.deploy.kind == "Repair" and plan.deploy.pin.version == "2"
    assert release.outcomes() == [("1", "Succeeded"), ("2", None)]  # no second entry


def test_deleted_managed_deployment_is_recreated() -> None:
    release = Release()
    serving(release)
    plan = release.step(mv(1), None)
    assert plan.deploy is not None and plan.deploy.kind == "Repair" and plan.deploy.pin.version == "1"
    assert release.condition("Ready") == ("False", "RolloutInProgress")
    assert "DeploymentCreated" in reasons(plan)


def test_spec_change_re_renders_the_managed_deployment_keeping_its_pin_generation() -> None:
    release = Release()
    serving(release)
    release.generation = 2
    plan = release.step(mv(1), deployment(1, "Succeeded", gen=1, applied=1))
    assert plan.deploy is not None and plan.deploy.kind == "Repair"
    assert plan.deploy.release_generation == 1
    assert plan.verify is None  # the serving version is not verified again
    assert release.step(mv(1), deployment(1, "Succeeded", gen=1, applied=2)).deploy is None


def test_spec_change_the_registry_cannot_resolve_leaves_the_deployment_untouched() -> None:
    release = Release()
    serving(release)
    release.generation = 2
    unknown = ModelNotFound("version 2 of fraud not found", reason="VersionNotFound")
    plan = release.step(unknown, deployment(1, "Succeeded", gen=1, applied=1))
    assert plan.deploy is None
    assert release.condition("Resolved") == ("False", "VersionNotFound")
    # once the registry answers again, the new generation's serving settings are applied
    assert release.step(mv(1), deployment(1, "Succeeded", gen=1, applied=1)).deploy is not None


def test_target_ref_mode_waits_for_its_deployment() -> None:
    release = Release(make_spec(serving={"targetRef": {"name": "scorer"}}))
    plan = release.step(mv(1), None)
    assert plan.verify is None and plan.deploy is None
    assert release.condition("Ready") == ("False", "NotServing")
    target = deployment(None, "Succeeded", applied=None)
    assert release.step(mv(1), target).verify == mv(1)
    plan = release.step(mv(1), target, PASS)
    assert plan.deploy is not None and plan.deploy.kind == "Rollout"
    # A spec change does not re-render someone else's Deployment.
    release.step(mv(1), deployment(1, "Succeeded", applied=None))
    release.generation = 2
    assert release.step(mv(1), deployment(1, "Succeeded", applied=None)).deploy is None


def test_stage_reference_warns_in_status() -> None:
    release = Release(make_spec(model={"name": "fraud", "stage": "Production"}))
    release.step(mv(1), None, PASS)
    assert release.condition("Resolved") == ("True", "StageResolved")
    assert release.status is not None
    resolved = next(c for c in release.status.conditions if c.type == "Resolved")
    assert "deprecated" in resolved.message
    assert release.status.resolved is not None and release.status.resolved.ref == "stage=Production"


def test_pinned_version_reference() -> None:
    release = Release(make_spec(model={"name": "fraud", "version": "7"}))
    plan = release.step(mv(7), None, PASS)
    assert release.condition("Resolved") == ("True", "VersionPinned")
    assert plan.requeue_after is not None  # while the rollout runs
    plan = release.step(mv(7), deployment(7, "Succeeded"))
    assert plan.requeue_after is None  # nothing can move a pinned version


def test_history_is_bounded_and_keeps_the_rollback_target() -> None:
    release = Release(make_spec(rollout={"historyLimit": 3}))
    serving(release, 1)
    for n in (2, 3, 4, 5):
        release.step(mv(n), deployment(1, "Succeeded"), FAIL_F1)
    assert release.outcomes() == [("1", "Succeeded"), ("4", "Blocked"), ("5", "Blocked")]
    release.step(mv(6), deployment(1, "Succeeded"), PASS)
    plan = release.step(mv(6), deployment(6, "Failed"))
    assert plan.deploy is not None and plan.deploy.pin.version == "1"
    assert release.outcomes() == [("1", "Succeeded"), ("5", "Blocked"), ("6", "RolledBack")]


def test_a_failed_attempt_left_in_place_is_retried_only_after_a_spec_change() -> None:
    release = Release(make_spec(rollout={"autoRollback": False}))
    serving(release, 2)
    release.step(mv(5), deployment(2, "Succeeded"), PASS)
    release.step(mv(5), deployment(5, "Failed"))
    release.step(mv(6), deployment(5, "Failed"), FAIL_F1)  # the alias moves on, is blocked, comes back
    assert release.step(mv(5), deployment(5, "Failed")).verify is None
    release.generation = 2
    assert release.step(mv(5), deployment(5, "Failed")).verify == mv(5)


def test_a_digest_no_longer_known_is_removed_from_the_status_on_the_server() -> None:
    """v1 served with digest D; v2 rolls out with verify.digest Off: no stale D in resolved or current
    (a later repair or rollback would write it into the pod template)."""
    release = Release()
    d1 = "sha256:" + "d" * 64
    release.step(mv(1), None, PASS, digest=d1)
    release.step(mv(1), deployment(1, "Succeeded"))
    assert release.status is not None and release.status.current is not None
    assert release.status.current.digest == d1
    release.spec = make_spec(verify={"digest": "Off"})
    release.generation = 2
    release.step(mv(2), deployment(1, "Succeeded", applied=1), PASS)
    plan = release.step(mv(2), deployment(2, "Succeeded", gen=2, applied=2))
    assert plan.status.current is not None and plan.status.current.version == "2"
    stored = release.server.stored
    assert "digest" not in stored["resolved"] and "digest" not in stored["current"]
    assert release.status == plan.status


def test_a_rollout_the_api_server_refuses_fails_once_and_the_old_version_keeps_serving() -> None:
    release = Release()
    serving(release)
    plan = release.step(mv(2), deployment(1, "Succeeded"), PASS)
    assert plan.deploy is not None and plan.deploy.kind == "Rollout"
    plan = release.refuse(plan, mv(2), deployment(1, "Succeeded"))
    assert plan.deploy is None
    assert release.outcomes() == [("1", "Succeeded"), ("2", "Failed")]
    entry = plan.status.history[-1]
    assert (entry.reason, entry.message) == ("DeploymentRejected", REFUSAL)
    progressing = next(c for c in plan.status.conditions if c.type == "Progressing")
    assert (progressing.status, progressing.reason) == ("False", "DeploymentRejected")
    assert progressing.message == f"version 2: {REFUSAL}"
    assert release.condition("Ready") == ("True", "Serving")
    assert release.condition("Degraded") == ("True", "DeploymentRejected")
    assert plan.status.phase == "Degraded"
    assert plan.status.current is not None and plan.status.current.version == "1"
    assert [(e.type, e.reason) for e in plan.events][-2:] == [
        ("Normal", "RolloutStarted"),
        ("Warning", "DeploymentRejected"),
    ]

    again = release.step(mv(2), deployment(1, "Succeeded"))  # no retry storm
    assert again.deploy is None and again.verify is None and again.events == ()
    assert not again.status_changed

    release.generation = 2  # the spec is fixed: verified and rolled out again
    assert release.step(mv(2), deployment(1, "Succeeded")).verify == mv(2)
    plan = release.step(mv(2), deployment(1, "Succeeded"), PASS)
    assert plan.deploy is not None and plan.deploy.kind == "Rollout"
    assert release.condition("Progressing") == ("True", "RolloutInProgress")


def test_a_refused_spec_change_is_not_re_applied_until_the_spec_changes_again() -> None:
    release = Release()
    serving(release)
    release.generation = 2
    plan = release.step(mv(1), deployment(1, "Succeeded", gen=1, applied=1))
    assert plan.deploy is not None and plan.deploy.kind == "Repair"
    plan = release.refuse(plan, mv(1), deployment(1, "Succeeded", gen=1, applied=1))
    assert release.outcomes() == [("1", "Succeeded"), ("1", "Failed")]
    assert release.condition("Progressing") == ("False", "DeploymentRejected")
    assert release.condition("Ready") == ("True", "Serving")
    assert plan.status.phase == "Degraded"
    assert release.step(mv(1), deployment(1, "Succeeded", gen=1, applied=1)).deploy is None
    release.generation = 3
    assert release.step(mv(1), deployment(1, "Succeeded", gen=1, applied=1)).deploy is not None


def test_a_first_deployment_the_api_server_refuses_leaves_nothing_serving_and_phase_failed() -> None:
    release = Release()
    plan = release.refuse(release.step(mv(1), None, PASS), mv(1), None)
    assert plan.deploy is None
    assert release.outcomes() == [("1", "Failed")]
    assert release.condition("Progressing") == ("False", "DeploymentRejected")
    assert release.condition("Ready") == ("False", "NotServing")
    assert plan.status.phase == "Failed"
    again = release.step(mv(1), None)
    assert again.deploy is None and again.verify is None and again.events == ()


def test_a_service_the_api_server_refused_is_degraded_until_a_pass_applies_it() -> None:
    release = Release()
    serving(release)
    live = deployment(1, "Succeeded", gen=release.generation, applied=release.generation)
    problem = (
        "Service fraud could not be applied: exceeded quota: q, requested: services=1, limited: services=0"
    )

    def decided(service_problem: str | None) -> Plan:
        args = (release.spec, release.generation, release.status, mv(1), None, live, release.clock)
        return decide(*args, service_problem=service_problem)

    refused_plan = decided(problem)
    degraded = next(c for c in refused_plan.status.conditions if c.type == "Degraded")
    assert (degraded.status, degraded.reason, degraded.message) == ("True", "ServiceNotApplied", problem)
    assert refused_plan.status.phase == "Degraded"
    assert refused_plan.deploy is None and refused_plan.events == ()  # the pass posts its Warning itself
    assert refused_plan.status.current is not None and refused_plan.status.current.version == "1"
    release.server.write(refused_plan)

    applied = decided(None)
    assert next(c for c in applied.status.conditions if c.type == "Degraded").reason == "AsExpected"
    assert applied.status.phase == "Ready"
