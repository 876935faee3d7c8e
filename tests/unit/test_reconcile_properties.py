"""Property tests of the reconcile decisions against a small model of the world.

Hypothesis drives arbitrary sequences of registry answers (versions or outages), verification verdicts,
Deployment controller outcomes, smoke-test verdicts, spec edits and operator crashes. The world applies each
plan the way the handler does (status first, then the Deployment), and the properties are checked at every
step.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from hypothesis import event, given, settings
from hypothesis import strategies as st

from modelrelease.api.models import HistoryEntry, ModelReleaseSpec, ModelReleaseStatus
from modelrelease.reconcile import Plan, decide, refused
from modelrelease.reconcile.decide import SmokeTested
from modelrelease.registry.base import ModelVersion, RegistryError, RegistryUnavailable
from modelrelease.render.observe import ObservedDeployment
from modelrelease.render.pin import Pin
from modelrelease.verify.checks import CheckResult
from unit.status_server import StatusServer

MODEL = "fraud"
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def version(n: int) -> ModelVersion:
    return ModelVersion(name=MODEL, version=str(n), status="READY", run_id=f"run{n}", source="s3://b/m")


def results(passed: bool) -> list[CheckResult]:
    if passed:
        return [CheckResult("Metrics", "Passed", "f1=0.9", "MetricGatesPassed")]
    return [CheckResult("Metrics", "Failed", "f1=0.1 below min 0.8", "MetricGateFailed")]


def digest(n: int) -> str | None:
    """Odd versions have their digest checked; even ones roll out with verify.digest Off (none known)."""
    return f"sha256:{n:064x}" if n % 2 else None


@dataclass
class Deployment:
    pin: Pin
    release_generation: int
    applied_generation: int
    rollout: str = "Progressing"

    def observed(self) -> ObservedDeployment:
        return ObservedDeployment(
            pin=self.pin,
            release_generation=self.release_generation,
            rollout=self.rollout,  # type: ignore[arg-type]
            replicas=1,
            available=1 if self.rollout == "Succeeded" else 0,
            message=f"rollout {self.rollout}",
            applied_generation=self.applied_generation,
        )


@dataclass
class World:
    spec: ModelReleaseSpec
    generation: int = 1
    server: StatusServer = field(default_factory=StatusServer)
    """The release's status, written and read back as on the API server."""
    answer: int | None = 1  # None: the registry is down
    verdicts: dict[int, bool] = field(default_factory=dict)
    smoke_verdicts: dict[int, bool] = field(default_factory=dict)
    """Whether each version's pods answer its serving input example (default: they do)."""
    deployment: Deployment | None = None
    clock: int = 0
    approved: set[str] = field(default_factory=set)
    """URIs whose verification passed when their rollout was planned."""
    epoch: int = 0
    """Counts changes of the registry's answer (an outage is not a change)."""
    last_answer: int | None = None
    attempts: set[tuple[str, int, int]] = field(default_factory=set)
    """(version, generation, epoch) of every attempt started: one attempt each at most."""
    outcomes: set[str] = field(default_factory=set)
    refused_generation: int | None = None
    """The generation whose last Deployment write the API server refused (HTTP 422), if any."""

    def set_answer(self, answer: int | None) -> None:
        self.answer = answer
        if answer is not None and answer != self.last_answer:
            self.epoch += 1
            self.last_answer = answer

    @property
    def status(self) -> ModelReleaseStatus | None:
        return self.server.read()

    def now(self) -> datetime:
        self.clock += 1
        return T0 + timedelta(seconds=self.clock)

    def resolution(self) -> ModelVersion | RegistryError:
        if self.answer is None:
            return RegistryUnavailable("connection refused")
        return version(self.answer)

    def observed(self) -> ObservedDeployment | None:
        return self.deployment.observed() if self.deployment is not None else None

    def decide(self) -> Plan:
        """What the handler does: decide, verify or smoke test when asked, decide again with the verdict."""
        now = self.now()
        args = (self.spec, self.generation, self.status, self.resolution())
        plan = decide(*args, None, self.observed(), now)
        if plan.smoke_test is not None:
            n = int(plan.smoke_test.pin.version)
            answered = self.smoke_verdicts.get(n, True)
            verdict = CheckResult(
                "SmokeTest",
                "Passed" if answered else "Failed",
                "1 pod answered" if answered else "pod p: HTTP 400",
                "SmokeTestPassed" if answered else "SmokeTestFailed",
            )
            plan = decide(*args, None, self.observed(), now, smoke=SmokeTested(str(n), verdict))
            assert plan.smoke_test is None, "a smoke test asked for again once it has a verdict"
            event(f"smoke test {verdict.outcome}")
            ended = next(e for e in reversed(plan.status.history) if e.model_uri == plan_uri(n))
            if answered:
                assert ended.outcome == "Succeeded"
            else:
                assert (ended.outcome, ended.reason) in (
                    ("RolledBack", "SmokeTestFailed"),
                    ("Failed", "SmokeTestFailed"),
                )
        if plan.verify is not None:
            verified = self.verdicts.get(int(plan.verify.version), True)
            plan = decide(
                *args, results(verified), self.observed(), now, digest=digest(int(plan.verify.version))
            )
            if plan.deploy is not None and plan.deploy.kind == "Rollout":
                assert verified, "a rollout was planned for a version that failed verification"
                self.approved.add(plan.deploy.pin.uri)
        return plan

    def apply(self, plan: Plan, crash_before_deploy: bool = False, refuse: bool = False) -> Plan:
        """Write the status, then the Deployment; returns the plan whose status the server now holds."""
        self.server.write(plan)
        if plan.deploy is None:
            return plan
        if plan.deploy.kind != "Repair":
            self.refused_generation = None  # a new attempt, not the refused write again
        if crash_before_deploy:
            return plan
        if refuse:  # the API server refuses the Deployment; the handler records why
            after = refused(
                plan, self.spec, self.generation, self.resolution(), self.observed(), self.now(), "invalid"
            )
            assert after.deploy is None
            self.server.write(after)
            self.refused_generation = self.generation
            return after
        self.refused_generation = None
        deploy = plan.deploy
        unchanged = (
            self.deployment is not None
            and self.deployment.pin.uri == deploy.pin.uri
            and self.deployment.release_generation == deploy.release_generation
        )
        rollout = self.deployment.rollout if unchanged and self.deployment is not None else "Progressing"
        self.deployment = Deployment(deploy.pin, deploy.release_generation, self.generation, rollout)
        return plan


def plan_uri(n: int) -> str:
    return Pin(MODEL, str(n)).uri


def check_history(before: list[HistoryEntry], after: list[HistoryEntry], limit: int) -> None:
    """History only grows at the end, only loses its oldest entries to the limit, and a finished entry
    never changes; an in-flight entry is completed in place."""
    assert len(after) <= limit

    def identity(entry: HistoryEntry) -> tuple[str, datetime | None, int | None]:
        return entry.version, entry.started_at, entry.release_generation

    assert len({identity(e) for e in after}) == len(after), "duplicate history entries"

    by_identity = {identity(e): e for e in after}
    kept = [e for e in before if identity(e) in by_identity]
    new = [e for e in after if identity(e) not in {identity(b) for b in before}]
    assert after == [by_identity[identity(e)] for e in kept] + new, "history reordered or inserted mid-way"
    assert len(after) == min(limit, len(before) + len(new)), "history lost an entry it had room for"
    for old in kept:
        successor = by_identity[identity(old)]
        if old.outcome is not None:
            assert successor == old, "a finished history entry changed"
        else:  # completed in place: what was attempted stays as it was
            attempted = ("version", "model_uri", "digest", "started_at", "release_generation")
            assert all(getattr(successor, f) == getattr(old, f) for f in attempted)


def reconcile(world: World, crash: bool = False, refuse: bool = False) -> None:
    before = list(world.status.history) if world.status else []
    plan = world.decide()
    limit = world.spec.rollout.history_limit
    check_history(before, list(plan.status.history), limit)
    if plan.deploy is not None:
        assert plan.deploy.pin.uri in world.approved, (
            f"{plan.deploy.kind} applies unverified {plan.deploy.pin}"
        )
        assert plan.deploy.kind != "Repair" or world.refused_generation != world.generation, (
            "a refused Deployment is written again without a spec change"
        )
    for entry in plan.status.history:
        if entry.outcome == "Succeeded":
            assert entry.model_uri in world.approved
    if plan.status.current is not None:
        assert plan.status.current.model_uri in world.approved
    started = [
        e
        for e in plan.status.history
        if e not in before and e.outcome in (None, "Blocked") and e.reason != "RebuiltFromDeployment"
    ]
    for entry in started:
        attempt = (entry.version, world.generation, world.epoch)
        assert attempt not in world.attempts, f"version {entry.version} retried without a change"
        world.attempts.add(attempt)
    world.outcomes |= {e.outcome or "InProgress" for e in plan.status.history}
    written = world.apply(plan, crash_before_deploy=crash, refuse=refuse)
    check_history(list(plan.status.history), list(written.status.history), limit)
    assert world.status == written.status, "the status on the server differs from the computed one"


def converge(world: World) -> None:
    """Two more passes settle the status; a third on the same observation must change nothing."""
    reconcile(world)
    reconcile(world)
    before = world.status
    plan = world.decide()
    assert plan.deploy is None, f"deciding again on the same observation deploys {plan.deploy}"
    assert plan.events == (), f"deciding again emits {plan.events}"
    assert not plan.status_changed and plan.status == before


step = st.tuples(
    st.one_of(
        st.tuples(st.just("answer"), st.one_of(st.none(), st.integers(1, 4))),
        st.tuples(st.just("answer"), st.integers(1, 4)),
        st.tuples(st.just("verdict"), st.tuples(st.integers(1, 4), st.booleans())),
        st.tuples(st.just("smoke"), st.tuples(st.integers(1, 4), st.booleans())),
        st.tuples(st.just("controller"), st.sampled_from(["Succeeded", "Failed"])),
        st.tuples(st.just("controller"), st.sampled_from(["Succeeded", "Failed"])),
        st.tuples(st.just("bump"), st.none()),
        st.tuples(st.just("idle"), st.none()),
        st.tuples(st.just("lose-status"), st.none()),
    ),
    st.sampled_from(["reconcile"] * 6 + ["skip", "crash", "refuse"]),
)


@settings(max_examples=400, deadline=None)
@given(
    steps=st.lists(step, min_size=6, max_size=50),
    limit=st.integers(1, 5),
    auto_rollback=st.booleans(),
    warm=st.booleans(),
)
def test_reconcile_properties(
    steps: list[tuple[tuple[str, object], str]], limit: int, auto_rollback: bool, warm: bool
) -> None:
    """For any sequence of registry answers, verification verdicts, rollout outcomes, smoke-test verdicts,
    spec edits, crashes between the status write and the Deployment write, and lost statuses: nothing
    unverified is ever applied or recorded as serving; a version whose pods refuse its input example never
    succeeds; history keeps its entries (up to historyLimit), never
    duplicates one and never rewrites a finished one; no version is attempted twice without a spec
    or registry change; and the operator converges to a status that deciding again leaves
    unchanged, with no further actions."""
    spec = ModelReleaseSpec.model_validate(
        {
            "model": {"name": MODEL, "alias": "champion"},
            "rollout": {"historyLimit": limit, "autoRollback": auto_rollback},
        }
    )
    world = World(spec=spec)
    world.set_answer(1)
    if warm:  # start from version 1 serving, where rollbacks become possible
        steps = [(("idle", None), "reconcile"), (("controller", "Succeeded"), "reconcile"), *steps]
    for (kind, arg), then in steps:
        if kind == "answer":
            assert arg is None or isinstance(arg, int)
            world.set_answer(arg)
        elif kind == "verdict":
            assert isinstance(arg, tuple)
            world.verdicts[int(arg[0])] = bool(arg[1])
        elif kind == "smoke":
            assert isinstance(arg, tuple)
            world.smoke_verdicts[int(arg[0])] = bool(arg[1])
        elif kind == "controller" and world.deployment is not None:
            if world.deployment.rollout == "Progressing":
                world.deployment = replace(world.deployment, rollout=str(arg))
        elif kind == "bump":
            world.generation += 1
        elif kind == "lose-status":  # rebuilt from the Deployment; what was blocked may be checked again
            world.server.lose()
            world.attempts.clear()
            world.refused_generation = None
        if then != "skip":
            reconcile(world, crash=then == "crash", refuse=then == "refuse")
    converge(world)
    assert world.status is not None
    for outcome in world.outcomes:
        event(f"saw {outcome}")
    event(f"ends in phase {world.status.phase}")
