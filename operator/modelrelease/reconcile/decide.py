"""The release pipeline's decisions as one pure function.

`decide` takes everything the operator knows about one ModelRelease (spec, generation, the status it
last wrote, the registry's answer, verification results, the serving Deployment as observed) and returns
a `Plan`: at most one Deployment change, the complete new status, the Events of the transitions, and
when to look again. Like Argo Rollouts' persistRolloutStatus, the whole status is computed in one place;
a plan whose status equals the old one says so (`status_changed`).

Crash safety: the handler writes the status *before* it changes the Deployment. The status therefore
always names what the Deployment should carry (`expected_pin`), and when the Deployment disagrees (a
crash between the two writes, a deleted Deployment) the next decision re-applies it. Only verified
versions ever get into the status as something to roll out, so repairs never apply anything unverified.
When the status is lost, it is rebuilt from the Deployment's pod-template annotations. When the API server
refuses a Deployment write as invalid, `refused` decides again from that outcome (Progressing=False
DeploymentRejected), and nothing is re-written until the spec changes.

A version that was blocked, failed or rolled back is not attempted again until the spec generation or
the registry answer (the resolved version) changes: verification runs once per (version, generation),
recorded in the Verified condition's observedGeneration and status.verification's version, and a
rollout only ever starts right after a passing verification.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal

from modelrelease.api.models import (
    Condition,
    ConditionStatus,
    ConditionType,
    Current,
    HistoryEntry,
    ModelReleaseSpec,
    ModelReleaseStatus,
    Phase,
    Resolved,
    VerificationEntry,
)
from modelrelease.registry.base import ModelVersion, RegistryError, RegistryUnavailable
from modelrelease.registry.factory import parse_pinned
from modelrelease.render.observe import ObservedDeployment, rebuilt_entry
from modelrelease.render.pin import Pin
from modelrelease.verify.checks import CheckResult, check_smoke_test, first_blocking

CONDITION_TYPES: tuple[ConditionType, ...] = ("Resolved", "Verified", "Progressing", "Ready", "Degraded")
ACTIVE_REQUEUE_S = 10.0
"""Re-check interval while a rollout runs (Deployment events normally arrive sooner)."""

DeployKind = Literal["Rollout", "Rollback", "Repair"]
REJECTED = "DeploymentRejected"
"""Reason of the history entry and Progressing condition of a Deployment write the API server refused."""
ARTIFACT_CHANGED = "ServingArtifactChanged"
"""Degraded reason (and Warning Event) when the serving version's bytes are no longer those verified."""
SERVICE_NOT_APPLIED = "ServiceNotApplied"
"""Degraded reason (and Warning Event) while the API server refuses or fails the managed Service."""


@dataclass(frozen=True)
class Reverified:
    """The serving version's bytes hashed again, at most spec.verify.reverifyInterval after the last time."""

    version: str
    digest: str | None
    """Their digest now; None when they can no longer be read (`problem` says why)."""
    problem: str = ""


@dataclass(frozen=True)
class SmokeTarget:
    """The rollout in flight whose new pods are all Ready: send them its serving input example."""

    pin: Pin
    release_generation: int | None
    """Its pods carry this in their pod-template annotations (with the pin's model URI)."""


@dataclass(frozen=True)
class SmokeTested:
    """The smoke test's verdict (check SmokeTest) on the new pods of the rollout of `version`."""

    version: str
    result: CheckResult


@dataclass(frozen=True)
class Deploy:
    """Make the serving Deployment carry `pin` (rendered with `release_generation` in its annotations)."""

    pin: Pin
    release_generation: int
    kind: DeployKind


@dataclass(frozen=True)
class Event:
    type: Literal["Normal", "Warning"]
    reason: str
    message: str


@dataclass(frozen=True)
class Plan:
    status: ModelReleaseStatus
    """The complete computed status."""
    status_changed: bool
    """False when `status` equals the status decided from: skip the patch."""
    deploy: Deploy | None = None
    events: tuple[Event, ...] = ()
    verify: ModelVersion | None = None
    """Set when the candidate needs verification first: run the checks and decide again with them."""
    requeue_after: float | None = None
    blocked: CheckResult | None = None
    """The check that blocked the candidate in this step, if one did."""
    smoke_test: SmokeTarget | None = None
    """Set when the rollout in flight awaits its smoke test: run it and decide again with the verdict."""

    @property
    def status_json(self) -> dict[str, Any]:
        """`status` as the server stores it: unset fields absent (and removed where the server has them)."""
        return self.status.model_dump(by_alias=True, exclude_none=True, mode="json")


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _key(uri: str, release_generation: int | None) -> tuple[str, int | None]:
    return uri, release_generation


def _entry_pin(entry: HistoryEntry | Current) -> Pin:
    name, _version = parse_pinned(entry.model_uri)
    return Pin(model=name, version=entry.version, digest=entry.digest, ref=entry.model_uri)


def _rejected(entry: HistoryEntry | None) -> bool:
    """Whether `entry` records a Deployment write the API server refused (see `refused`)."""
    return entry is not None and entry.outcome == "Failed" and entry.reason == REJECTED


def _inflight(history: Sequence[HistoryEntry]) -> HistoryEntry | None:
    return history[-1] if history and history[-1].outcome is None else None


def _current_entry(history: Sequence[HistoryEntry], current: Current | None) -> HistoryEntry | None:
    """The Succeeded entry of the version serving now (the rollback target's record)."""
    if current is None:
        return None
    return next(
        (
            e
            for e in reversed(history)
            if e.outcome == "Succeeded" and e.model_uri == current.model_uri and e.version == current.version
        ),
        None,
    )


def expected_pin(
    history: Sequence[HistoryEntry], current: Current | None, resolved: Resolved | None, generation: int
) -> tuple[Pin, int] | None:
    """What the serving Deployment should carry now, with the release generation of its rollout:
    the rollout in flight; else a version whose rollout failed without a rollback, left in place (as
    Kubernetes does) while it is still the one asked for; else the version serving now. A write the API
    server refused never reached the Deployment, so it counts no more than a Blocked version."""
    decisive = [e for e in history if e.outcome != "Blocked" and not _rejected(e)]
    last = decisive[-1] if decisive else None
    if last is not None and (
        last.outcome is None
        or (last.outcome == "Failed" and (resolved is None or resolved.model_uri == last.model_uri))
    ):
        gen = last.release_generation if last.release_generation is not None else generation
        return _entry_pin(last), gen
    if current is None:
        return None
    entry = _current_entry(history, current)
    gen = (
        entry.release_generation if entry is not None and entry.release_generation is not None else generation
    )
    return _entry_pin(current), gen


def _trim(history: list[HistoryEntry], limit: int, current: Current | None) -> list[HistoryEntry]:
    """Drop the oldest entries beyond `limit`, keeping the rollout in flight and the serving version's
    record (the rollback target) as long as the limit allows."""
    protected = {id(e) for e in (_inflight(history), _current_entry(history, current)) if e is not None}
    trimmed = list(history)
    while len(trimmed) > limit:
        victim = next((e for e in trimmed if id(e) not in protected), trimmed[0])
        trimmed.remove(victim)
    return trimmed


def _verified_for(status: ModelReleaseStatus, version: str, generation: int) -> bool:
    """Whether verification already ran for this version under this generation."""
    verified = next((c for c in status.conditions if c.type == "Verified"), None)
    return (
        verified is not None
        and verified.status != "Unknown"
        and verified.observed_generation == generation
        and bool(status.verification)
        and all(v.version == version for v in status.verification)
    )


def _check_code(result: CheckResult) -> str:
    return result.code or f"{result.check}Failed"


@dataclass
class _Work:
    """The status under construction."""

    spec: ModelReleaseSpec
    generation: int
    prev: ModelReleaseStatus
    now: datetime
    history: list[HistoryEntry]
    current: Current | None
    resolved: Resolved | None
    verification: list[VerificationEntry]
    conditions: dict[str, Condition] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    blocked: CheckResult | None = None
    reverified: Reverified | None = None
    smoke: SmokeTested | None = None
    smoke_target: SmokeTarget | None = None
    service_problem: str | None = None
    resolution_event: Event | None = None
    """The Normal Event of a resolution that changed in this pass (AliasResolved, ...), if one was made."""

    def finish(
        self, index: int, outcome: Literal["Succeeded", "Failed", "RolledBack"], reason: str, message: str
    ) -> None:
        self.history[index] = self.history[index].model_copy(
            update={
                "outcome": outcome,
                "finished_at": self.now,
                "reason": reason,
                "message": _one_line(message),
            }
        )

    def condition(
        self,
        type_: ConditionType,
        status: ConditionStatus,
        reason: str,
        message: str,
    ) -> None:
        old = next((c for c in self.prev.conditions if c.type == type_), None)
        observed = self.generation
        message = _one_line(message)
        if old is not None and (old.status, old.reason, old.message, old.observed_generation) == (
            status,
            reason,
            message,
            observed,
        ):
            self.conditions[type_] = old
            return
        since = old.last_transition_time if old is not None and old.status == status else self.now
        self.conditions[type_] = Condition(
            type=type_,
            status=status,
            reason=reason,
            message=message,
            last_transition_time=since,
            observed_generation=observed,
        )

    def keep(self, type_: ConditionType, default: tuple[ConditionStatus, str, str]) -> None:
        """Leave the condition as it was when nothing in this step decided it."""
        if type_ in self.conditions:
            return
        old = next((c for c in self.prev.conditions if c.type == type_), None)
        if old is not None:
            self.conditions[type_] = old
        else:
            self.condition(type_, *default)


def decide(
    spec: ModelReleaseSpec,
    generation: int,
    status: ModelReleaseStatus | None,
    resolution: ModelVersion | RegistryError,
    verification: Sequence[CheckResult] | None,
    observed: ObservedDeployment | None,
    now: datetime,
    *,
    digest: str | None = None,
    reverified: Reverified | None = None,
    smoke: SmokeTested | None = None,
    service_problem: str | None = None,
) -> Plan:
    """Decide one reconcile step. `observed` is the serving Deployment (the managed one, or the targetRef
    one) or None when it does not exist; `digest` is the candidate's artifact digest when computed;
    `reverified` the serving version's bytes hashed again (None: not this pass); `smoke` the smoke test's
    verdict on the new pods of the rollout in flight, once `Plan.smoke_test` asked for it;
    `service_problem` why the managed Service could not be applied when an earlier pass tried."""
    prev = status or ModelReleaseStatus()
    work = _Work(
        spec=spec,
        generation=generation,
        prev=prev,
        now=now,
        history=list(prev.history),
        current=prev.current,
        resolved=prev.resolved,
        verification=list(prev.verification),
        reverified=reverified,
        smoke=smoke,
        service_problem=service_problem,
    )
    if work.current is None and not work.history and observed is not None:
        entry = rebuilt_entry(observed, now)
        if entry is not None:
            work.history.append(entry)
            work.events.append(Event("Normal", "StatusRebuilt", f"version {entry.version}: {entry.message}"))
            if entry.outcome == "Succeeded":
                work.current = Current(
                    version=entry.version, model_uri=entry.model_uri, digest=entry.digest, since=now
                )

    deploy = _observe_rollout(work, observed)
    verify: ModelVersion | None = None
    if isinstance(resolution, RegistryError):
        _resolution_failed(work, resolution)
    else:
        _resolution_succeeded(work, resolution, digest)
        if deploy is None and _inflight(work.history) is None:
            deploy, verify = _candidate(work, resolution, verification, observed)
    if deploy is None and _refused_now(work) is None:
        deploy = _repair(work, observed, respec=not isinstance(resolution, RegistryError))

    work.history = _trim(work.history, spec.rollout.history_limit, work.current)
    phase = _conditions(work, resolution, observed, deploy)
    new = ModelReleaseStatus(
        observed_generation=generation,
        phase=phase,
        conditions=[work.conditions[t] for t in CONDITION_TYPES],
        resolved=work.resolved,
        current=work.current,
        history=work.history,
        verification=work.verification,
    )
    return Plan(
        status=new,
        status_changed=new != prev,
        deploy=deploy,
        events=tuple(work.events),
        verify=verify,
        requeue_after=_requeue(spec, work, deploy),
        blocked=work.blocked,
        smoke_test=work.smoke_target,
    )


def refused(
    plan: Plan,
    spec: ModelReleaseSpec,
    generation: int,
    resolution: ModelVersion | RegistryError,
    observed: ObservedDeployment | None,
    now: datetime,
    message: str,
) -> Plan:
    """Decide again after the API server refused to write `plan.deploy` (HTTP 422 Invalid; `message` is
    its one-line reason), from `plan.status` as already written. The Deployment is as `observed`.
    Progressing=False DeploymentRejected says why, the other conditions follow from what serves, and
    until the spec changes only a new version's rollout writes the Deployment again. In the history, a
    rollout that never reached the Deployment ends Failed with reason DeploymentRejected; with none in
    flight, a Failed entry records the refused write (of a repair or rollback); a rollout in flight that
    the Deployment does carry goes on."""
    assert plan.deploy is not None
    pin = plan.deploy.pin
    text = _one_line(message)[:1024] or REJECTED
    history = list(plan.status.history)
    inflight = _inflight(history)
    carried = (
        inflight is not None
        and observed is not None
        and observed.pin is not None
        and _key(observed.pin.uri, observed.release_generation)
        == _key(inflight.model_uri, inflight.release_generation)
    )
    if inflight is not None and not carried:
        history[-1] = inflight.model_copy(
            update={"outcome": "Failed", "finished_at": now, "reason": REJECTED, "message": text}
        )
    elif inflight is None:
        history.append(
            HistoryEntry(
                version=pin.version,
                model_uri=pin.uri,
                digest=pin.digest,
                started_at=now,
                finished_at=now,
                outcome="Failed",
                reason=REJECTED,
                message=text,
                release_generation=generation,
            )
        )
    old = next((c for c in plan.status.conditions if c.type == "Progressing"), None)
    progressing = Condition(
        type="Progressing",
        status="False",
        reason=REJECTED,
        message=f"version {pin.version}: {text}",
        last_transition_time=old.last_transition_time if old is not None and old.status == "False" else now,
        observed_generation=generation,
    )
    conditions = [c for c in plan.status.conditions if c.type != "Progressing"] + [progressing]
    status = plan.status.model_copy(update={"history": history, "conditions": conditions})
    again = decide(spec, generation, status, resolution, None, observed, now)
    event = Event("Warning", REJECTED, f"version {pin.version}: {text}")
    return replace(again, events=(*plan.events, event, *again.events))


def _refused_now(work: _Work) -> Condition | None:
    """The Progressing condition `refused` recorded for this generation's Deployment: no repair is written
    until the spec changes. (A condition rather than the history entry, which historyLimit may trim.)"""
    old = next((c for c in work.prev.conditions if c.type == "Progressing"), None)
    if old is not None and old.reason == REJECTED and old.observed_generation == work.generation:
        return old
    return None


def _observe_rollout(work: _Work, observed: ObservedDeployment | None) -> Deploy | None:
    """Complete the rollout in flight when the Deployment reports its end and its smoke test has a
    verdict; roll back on failure."""
    inflight = _inflight(work.history)
    if inflight is None or observed is None or observed.pin is None:
        return None
    if _key(observed.pin.uri, observed.release_generation) != _key(
        inflight.model_uri, inflight.release_generation
    ):
        return None
    index = len(work.history) - 1
    if observed.rollout == "Succeeded":
        smoke = _smoke_verdict(work, inflight)
        if smoke is None:
            return None
        if smoke.outcome == "Failed":
            return _fail(work, inflight, "SmokeTestFailed", f"smoke test failed: {smoke.reason}")
        message = f"{observed.message}; smoke test: {smoke.reason}"
        work.finish(index, "Succeeded", "RolloutComplete", message)
        work.current = Current(
            version=inflight.version, model_uri=inflight.model_uri, digest=inflight.digest, since=work.now
        )
        work.events.append(
            Event("Normal", "RolloutSucceeded", f"version {inflight.version} serves ({observed.message})")
        )
        return None
    if observed.rollout != "Failed":
        return None
    return _fail(work, inflight, "ProgressDeadlineExceeded", observed.message)


def _smoke_verdict(work: _Work, inflight: HistoryEntry) -> CheckResult | None:
    """The smoke test's verdict on the rollout in flight, recorded in status.verification (with an Event
    unless it passed or was skipped); None, with the request in `work.smoke_target`, while it has none."""
    mode = work.spec.rollout.smoke_test
    if mode == "Off":
        result = check_smoke_test(mode, inflight.version, None, {})
    elif work.smoke is not None and work.smoke.version == inflight.version:
        result = work.smoke.result
    else:
        work.smoke_target = SmokeTarget(_entry_pin(inflight), inflight.release_generation)
        return None
    entry = VerificationEntry(
        check="SmokeTest",
        outcome=result.outcome,
        reason=_one_line(result.reason)[:1024],
        version=inflight.version,
    )
    work.verification = [v for v in work.verification if v.check != "SmokeTest"] + [entry]
    if result.outcome == "Passed":
        work.events.append(Event("Normal", "SmokeTestPassed", f"version {inflight.version}: {entry.reason}"))
    elif result.outcome == "Warned":
        message = f"version {inflight.version}: {entry.reason}; smokeTest is Warn: it serves anyway"
        work.events.append(Event("Warning", "SmokeTestFailed", message))
    elif result.outcome == "Failed":
        work.events.append(Event("Warning", "SmokeTestFailed", f"version {inflight.version}: {entry.reason}"))
    return result


def _fail(work: _Work, inflight: HistoryEntry, reason: str, detail: str) -> Deploy | None:
    """End the rollout in flight as failed for `reason`: rolled back to the version serving before it
    when autoRollback allows, else Failed, left in place (as Kubernetes does)."""
    index = len(work.history) - 1
    current = work.current
    target = _current_entry(work.history, current)
    if work.spec.rollout.auto_rollback and current is not None and current.model_uri != inflight.model_uri:
        message = f"{detail}; rolled back to version {current.version}"
        work.finish(index, "RolledBack", reason, message)
        work.events.append(Event("Warning", "RolledBack", f"version {inflight.version}: {message}"))
        gen = (
            target.release_generation
            if target is not None and target.release_generation is not None
            else work.generation
        )
        return Deploy(_entry_pin(current), gen, "Rollback")
    why = "autoRollback is off" if not work.spec.rollout.auto_rollback else "no earlier version succeeded"
    message = f"{detail}; not rolled back: {why}"
    work.finish(index, "Failed", reason, message)
    work.events.append(Event("Warning", "RolloutFailed", f"version {inflight.version}: {message}"))
    return None


def _resolution_failed(work: _Work, error: RegistryError) -> None:
    message = _one_line(str(error)) or error.reason
    work.condition("Resolved", "False", error.reason, message)
    old = next((c for c in work.prev.conditions if c.type == "Resolved"), None)
    if old is None or old.status != "False" or old.reason != error.reason:
        work.events.append(Event("Warning", error.reason, message))


def _resolution_succeeded(work: _Work, mv: ModelVersion, digest: str | None) -> None:
    model = work.spec.model
    kind, value = model.reference
    prev = work.resolved
    same = prev is not None and prev.version == mv.version and prev.model_uri == mv.uri
    known_digest = digest or (prev.digest if same and prev is not None else None)
    work.resolved = Resolved(
        version=mv.version,
        model_uri=mv.uri,
        run_id=mv.run_id,
        digest=known_digest,
        resolved_at=prev.resolved_at if same and prev is not None else work.now,
        alias=model.alias,
        stage=model.stage,
        ref=model.display_ref,
    )
    if kind == "version":
        reason, message = "VersionPinned", f"version {mv.version} ({mv.uri})"
    elif kind == "alias":
        reason, message = "AliasResolved", f"alias {value} resolved to version {mv.version} ({mv.uri})"
    elif kind == "latestApproved":
        reason = "LatestApprovedResolved"
        message = f"the latest approved version is {mv.version} ({mv.uri})"
    else:
        reason = "StageResolved"
        message = (
            f"stage {value} resolved to version {mv.version} ({mv.uri}); "
            "stages are deprecated by MLflow, prefer an alias"
        )
    work.condition("Resolved", "True", reason, message)
    old = next((c for c in work.prev.conditions if c.type == "Resolved"), None)
    if not same or old is None or old.status != "True":
        work.resolution_event = Event("Normal", reason, message)
        work.events.append(work.resolution_event)


def _candidate(
    work: _Work,
    mv: ModelVersion,
    verification: Sequence[CheckResult] | None,
    observed: ObservedDeployment | None,
) -> tuple[Deploy | None, ModelVersion | None]:
    """Verify and start rolling out the resolved version when it is new (see the module docstring)."""
    if not _wanted(work, mv, observed):
        return None, None
    if verification is None:
        return None, mv
    work.verification = [
        VerificationEntry(
            check=r.check, outcome=r.outcome, reason=_one_line(r.reason)[:1024], version=mv.version
        )
        for r in verification
    ]
    pin = Pin(
        model=mv.name, version=mv.version, digest=work.resolved.digest if work.resolved else None, ref=mv.uri
    )
    blocker = first_blocking(verification)
    if blocker is not None:
        _block(work, mv, pin, blocker)
        return None, None
    return _start_rollout(work, mv, pin, verification), None


def _wanted(work: _Work, mv: ModelVersion, observed: ObservedDeployment | None) -> bool:
    """Whether the resolved version is a candidate at all: not serving, not the failed attempt the
    Deployment still carries, something to repoint, and not verified already under this generation."""
    if work.current is not None and work.current.model_uri == mv.uri:
        return False
    last = next((e for e in reversed(work.history) if e.outcome != "Blocked"), None)
    if (
        last is not None
        and last.outcome == "Failed"
        and last.model_uri == mv.uri
        and last.release_generation == work.generation
    ):
        return False  # the Deployment still carries exactly this failed attempt: nothing to retry
    if not work.spec.serving.managed and observed is None:
        return False  # nothing to repoint yet
    return not _verified_for(work.prev, mv.version, work.generation)


def _block(work: _Work, mv: ModelVersion, pin: Pin, blocker: CheckResult) -> None:
    """Record the candidate as Blocked by the check that failed it."""
    code = _check_code(blocker)
    message = f"version {mv.version} blocked: {_one_line(blocker.reason)}"
    work.history.append(
        HistoryEntry(
            version=mv.version,
            model_uri=mv.uri,
            digest=pin.digest,
            started_at=work.now,
            finished_at=work.now,
            outcome="Blocked",
            reason=code,
            message=message[:4096],
            release_generation=work.generation,
        )
    )
    work.condition("Verified", "False", code, message)
    work.events.append(Event("Warning", code, message))
    work.blocked = blocker


def _start_rollout(work: _Work, mv: ModelVersion, pin: Pin, verification: Sequence[CheckResult]) -> Deploy:
    """Record the verified candidate (with any warnings) as the rollout in flight."""
    warned = [r for r in verification if r.outcome == "Warned"]
    if warned:
        detail = "; ".join(f"{r.check}: {_one_line(r.reason)}" for r in warned)
        work.condition("Verified", "True", "ChecksPassedWithWarnings", f"version {mv.version}: {detail}")
    else:
        work.condition(
            "Verified", "True", "ChecksPassed", f"version {mv.version} passed every enforced check"
        )
    work.history.append(
        HistoryEntry(
            version=mv.version,
            model_uri=mv.uri,
            digest=pin.digest,
            started_at=work.now,
            release_generation=work.generation,
        )
    )
    work.events.append(_rollout_started(work, mv))
    return Deploy(pin, work.generation, "Rollout")


def _rollout_started(work: _Work, mv: ModelVersion) -> Event:
    """RolloutStarted, saying how the version was resolved when this same pass resolved it: one Event
    instead of two for an alias move (the operator's Events were a third of the API server's writes
    while bench/scale.py moved 1,000 pins); the Resolved condition still says it on its own."""
    resolved = work.resolution_event
    if resolved is None:
        return Event("Normal", "RolloutStarted", f"rolling out version {mv.version} ({mv.uri})")
    work.events.remove(resolved)
    work.resolution_event = None
    return Event("Normal", "RolloutStarted", f"{resolved.message}: rolling it out")


def _repair(work: _Work, observed: ObservedDeployment | None, respec: bool) -> Deploy | None:
    """Re-apply what the status says should serve when the Deployment disagrees, or when the spec changed
    and `respec` allows it: a spec the registry cannot resolve leaves the Deployment untouched."""
    expected = expected_pin(work.history, work.current, work.resolved, work.generation)
    if expected is None:
        return None
    pin, gen = expected
    if observed is None:
        if not work.spec.serving.managed:
            return None
        work.events.append(
            Event("Normal", "DeploymentCreated", f"creating the Deployment for version {pin.version}")
        )
        return Deploy(pin, gen, "Repair")
    drifted = observed.pin is None or _key(observed.pin.uri, observed.release_generation) != _key(
        pin.uri, gen
    )
    changed = respec and work.spec.serving.managed and observed.applied_generation != work.generation
    return Deploy(pin, gen, "Repair") if drifted or changed else None


@dataclass(frozen=True)
class _Serving:
    """Where the serving side stands, as the conditions and the phase see it."""

    expected: tuple[Pin, int] | None
    rollout: str
    """The observed rollout state of the expected pin; Progressing while the Deployment disagrees."""
    message: str
    rolling_back: bool


def _serving(work: _Work, observed: ObservedDeployment | None, deploy: Deploy | None) -> _Serving:
    expected = expected_pin(work.history, work.current, work.resolved, work.generation)
    in_sync = (
        expected is not None
        and deploy is None
        and observed is not None
        and observed.pin is not None
        and _key(observed.pin.uri, observed.release_generation) == _key(expected[0].uri, expected[1])
    )
    rollout = observed.rollout if in_sync and observed is not None else "Progressing"
    if work.smoke_target is not None:  # the new pods are ready, but the rollout ends with the smoke test
        rollout = "Progressing"
    last = next((e for e in reversed(work.history) if e.outcome != "Blocked"), None)
    rolling_back = (
        last is not None
        and last.outcome == "RolledBack"
        and expected is not None
        and rollout == "Progressing"
    )
    return _Serving(expected, rollout, observed.message if observed is not None else "", rolling_back)


def _conditions(
    work: _Work,
    resolution: ModelVersion | RegistryError,
    observed: ObservedDeployment | None,
    deploy: Deploy | None,
) -> Phase:
    """Fill in Verified (when untouched), Progressing, Ready and Degraded; return the phase."""
    work.keep("Verified", ("Unknown", "NotVerified", "no version verified yet"))
    serving = _serving(work, observed, deploy)
    inflight = _inflight(work.history)
    target = "the Deployment" if work.spec.serving.managed else "the targetRef Deployment"
    missing = observed is None and deploy is None

    if serving.expected is None:
        work.condition("Progressing", "False", "NoRollout", "no version has been rolled out yet")
        work.condition("Ready", "False", "NotServing", "no version serves yet")
    else:
        version = serving.expected[0].version
        if missing:
            reason = "DeploymentNotFound" if work.spec.serving.managed else "TargetNotFound"
            work.condition("Progressing", "False", reason, f"{target} does not exist")
            work.condition("Ready", "False", reason, f"{target} does not exist")
        elif serving.rollout == "Succeeded":
            work.condition("Progressing", "False", "RolloutComplete", f"version {version} rolled out")
            work.condition("Ready", "True", "Serving", f"version {version} serves ({serving.message})")
        elif serving.rollout == "Failed":
            message = f"version {version}: {serving.message}"
            work.condition("Progressing", "False", "ProgressDeadlineExceeded", message)
            work.condition("Ready", "False", "ProgressDeadlineExceeded", message)
        elif work.smoke_target is not None:
            message = f"version {version}: its new pods are ready; sending them its serving input example"
            work.condition("Progressing", "True", "SmokeTestInProgress", message)
            work.condition("Ready", "False", "SmokeTestInProgress", message)
        else:
            if serving.rolling_back:
                work.condition(
                    "Progressing", "True", "RollbackInProgress", f"rolling back to version {version}"
                )
            else:
                work.condition("Progressing", "True", "RolloutInProgress", f"rolling out version {version}")
            work.condition(
                "Ready", "False", "RolloutInProgress", f"waiting for version {version} to be available"
            )

    refused = _refused_now(work)
    if refused is not None and deploy is None:  # Ready above says how what serves stands
        work.conditions["Progressing"] = refused

    _degraded(work, resolution, serving)
    return _phase(work, resolution, serving, inflight)


def _degraded(work: _Work, resolution: ModelVersion | RegistryError, serving: _Serving) -> None:
    newest = work.history[-1] if work.history else None
    resolved_uri = work.resolved.model_uri if work.resolved else None
    if newest is not None and newest.outcome in ("RolledBack", "Failed") and newest.model_uri == resolved_uri:
        reason = "RolledBack" if newest.outcome == "RolledBack" else "RolloutFailed"
        if _rejected(newest):
            reason = REJECTED
        work.condition(
            "Degraded", "True", reason, f"version {newest.version}: {newest.message or newest.reason}"
        )
    elif serving.rollout == "Failed" and serving.expected is not None:
        work.condition(
            "Degraded",
            "True",
            "ProgressDeadlineExceeded",
            f"version {serving.expected[0].version} is not available: {serving.message}",
        )
    elif (changed := _artifact_changed(work)) is not None:
        work.condition("Degraded", "True", ARTIFACT_CHANGED, changed)
        old = next((c for c in work.prev.conditions if c.type == "Degraded"), None)
        if old is None or old.reason != ARTIFACT_CHANGED:
            work.events.append(Event("Warning", ARTIFACT_CHANGED, changed))
    elif isinstance(resolution, RegistryError) and work.current is not None:
        work.condition(
            "Degraded",
            "True",
            resolution.reason,
            f"cannot follow {work.spec.model.display_ref}: {_one_line(str(resolution))}; "
            f"version {work.current.version} keeps serving",
        )
    elif work.service_problem is not None:
        work.condition("Degraded", "True", SERVICE_NOT_APPLIED, _one_line(work.service_problem)[:1024])
    else:
        work.condition("Degraded", "False", "AsExpected", "serving as specified")


def _artifact_changed(work: _Work) -> str | None:
    """Why the serving version's bytes are not those verified when it rolled out, or None. Not hashed again
    in this pass (the store is unreachable for now): what the last pass found stands."""
    current, seen = work.current, work.reverified
    if current is None or current.digest is None:
        return None
    if seen is None or seen.version != current.version:
        old = next((c for c in work.prev.conditions if c.type == "Degraded"), None)
        if old is None or old.reason != ARTIFACT_CHANGED or not old.message:
            return None
        return old.message if old.message.startswith(f"version {current.version}:") else None
    if seen.digest == current.digest:
        return None
    what = (
        f"its artifacts can no longer be read ({_one_line(seen.problem)})"
        if seen.digest is None
        else f"its artifacts now hash to {seen.digest}, not the verified {current.digest}"
    )
    return (
        f"version {current.version}: {what}; the Deployment is left as it is, and its pods refuse other "
        "bytes when they next start"
    )[:1024]


def _phase(
    work: _Work, resolution: ModelVersion | RegistryError, serving: _Serving, inflight: HistoryEntry | None
) -> Phase:
    newest = work.history[-1] if work.history else None
    last = next((e for e in reversed(work.history) if e.outcome != "Blocked"), None)
    resolved_uri = work.resolved.model_uri if work.resolved else None
    if inflight is not None or serving.rolling_back:
        return "Progressing"
    expected_uri = serving.expected[0].uri if serving.expected is not None else None
    if _rejected(last):
        if work.current is None:
            return "Failed"  # nothing serves, and the write that would have was refused
    elif last is not None and last.outcome == "Failed" and last.model_uri == expected_uri:
        return "Failed"
    if isinstance(resolution, RegistryError) and work.current is None:
        return "Pending" if isinstance(resolution, RegistryUnavailable) else "Failed"
    if work.conditions["Degraded"].status == "True":
        return "Degraded"
    if newest is not None and newest.outcome == "Blocked" and newest.model_uri == resolved_uri:
        return "Blocked"
    if work.conditions["Ready"].status == "True":
        return "Ready"
    return "Pending" if serving.expected is None else "Progressing"


def _requeue(spec: ModelReleaseSpec, work: _Work, deploy: Deploy | None) -> float | None:
    poll = spec.registry.poll_interval_seconds if spec.model.floating else None
    if work.current is not None and work.current.digest is not None:  # its bytes are hashed again then
        reverify = spec.verify.reverify_interval_seconds
        poll = reverify if poll is None else min(poll, reverify)
    active = deploy is not None or work.conditions["Progressing"].status == "True"
    if active:
        return ACTIVE_REQUEUE_S if poll is None else min(poll, ACTIVE_REQUEUE_S)
    return poll
