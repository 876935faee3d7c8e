"""One reconcile pass over one ModelRelease: gather facts, call the pure decision, carry out the plan.

Reads: the release, its credentials Secret, the serving Deployment, HPAs. Asks the registry (shared
cache) and, when the decision says so, verifies the candidate. Writes, in this order: the status
(complete, skipped when unchanged), then the Deployment (and Service), then Events. Writing the
status first makes a crash in between harmless: the next pass sees the Deployment disagree with the
status and re-applies (see `modelrelease.reconcile.decide`).

No kopf here: the scheduler (`modelrelease.scheduler`) runs passes through :func:`run_pass`, which maps
every failure onto what happens next with :func:`outcome_of`, the one mapping whatever triggered the pass.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any

from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError

from modelrelease import metrics
from modelrelease.api.models import MODEL_URI_ENV, ModelReleaseSpec, ModelReleaseStatus, RegistrySpec
from modelrelease.kube.client import Kube, Refused, api_message
from modelrelease.kube.watched import Latest
from modelrelease.reconcile import Deploy, Plan, decide, refused
from modelrelease.reconcile.decide import (
    ARTIFACT_CHANGED,
    SERVICE_NOT_APPLIED,
    Reverified,
    SmokeTarget,
    SmokeTested,
)
from modelrelease.registry.base import (
    ModelVersion,
    Registry,
    RegistryError,
    RegistryUnavailable,
    TargetProblem,
)
from modelrelease.registry.factory import Registries, parse_pinned
from modelrelease.render import manifests
from modelrelease.render.observe import ObservedDeployment, new_pods, observe
from modelrelease.render.pin import ReleaseRef
from modelrelease.scheduler import Outcome, PassResult, Scheduler
from modelrelease.settings import Settings
from modelrelease.verify import smoke
from modelrelease.verify.checks import CheckResult, Serving, Signers, smoke_test_not_run, verify_candidate

logger = logging.getLogger(__name__)


class SpecError(Exception):
    """A spec the API schema accepted but the operator cannot act on; `field` names the culprit.

    Already recorded in a condition and an Event when raised."""

    def __init__(self, field: str, message: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {message}")


class Transient(Exception):
    """The registry is (for now) unavailable; recorded in status, worth retrying with backoff."""


class ServiceNotApplied(Exception):
    """The API server failed or refused the managed Service (a quota, no ClusterIP left, ...)."""

    def __init__(self, cause: ApiException) -> None:
        self.cause = cause
        super().__init__(api_message(cause))


Key = tuple[str, str]
"""(namespace, name) of a release."""
SERVICE_RECHECK_S = 600.0
"""How often a pass reads the managed Service although its generation has not changed."""


@dataclass
class ReleaseState:
    """In-memory bookkeeping per release, beside its due time in the scheduler."""

    model: str | None = None
    """spec.model.name as last seen, so that a registry push about a model wakes its releases."""
    refresh: bool = False
    """The next pass must not use a registry answer older than `pushed_at` (a webhook said it changed)."""
    pushed_at: float = 0.0
    """When (monotonic clock, the resolution cache's) the last webhook about its model arrived."""
    service_problem: str | None = None
    """Why its managed Service could not be applied, as last posted in a Warning Event (posted once per
    message); the next passes' status says it too (Degraded ServiceNotApplied) until one applies it."""


@dataclass
class Operator:
    """Everything a reconcile pass needs; one per operator process (kopf's memo holds it)."""

    settings: Settings
    kube: Kube
    registries: Registries
    releases: dict[Key, ReleaseState] = field(default_factory=dict)
    bodies: Latest[Key] = field(default_factory=Latest)
    """Each release as last watched or written: a pass reads it instead of GETting the release."""
    deployments: Latest[Key] = field(default_factory=Latest)
    """The Deployments releases serve through, as last watched or applied (by namespace and name)."""
    services_checked: dict[Key, tuple[int, float]] = field(default_factory=dict)
    """Per release, the generation its managed Service was last applied or found current for, and when."""
    answers: dict[tuple[str | None, str], str] = field(default_factory=dict)
    """The version each reference (tracking URI, spec.model) last resolved to, in any release's pass."""
    scheduler: Scheduler[Key] = field(init=False)

    def __post_init__(self) -> None:
        self.scheduler = Scheduler(partial(run_pass, self))

    def observe(self, namespace: str, name: str, body: Mapping[str, Any]) -> None:
        """A watch event of a release that is not being deleted: remember what it follows, and let the
        scheduler register it or, when its generation changed, run it now."""
        spec = body.get("spec") or {}
        model = spec.get("model") if isinstance(spec, Mapping) else None
        state = self.releases.setdefault((namespace, name), ReleaseState())
        state.model = model.get("name") if isinstance(model, Mapping) else None
        self.bodies.seen((namespace, name), body)
        generation = int(body["metadata"].get("generation") or 1)
        self.scheduler.observe((namespace, name), poll_interval(spec), generation)

    def forget(self, namespace: str, name: str, body: Mapping[str, Any] | None = None) -> None:
        self.releases.pop((namespace, name), None)
        self.bodies.gone((namespace, name), body)
        self.services_checked.pop((namespace, name), None)
        self.scheduler.forget((namespace, name))

    def deployment_seen(self, namespace: str, name: str, body: Mapping[str, Any], deleted: bool) -> None:
        """A watch event of a Deployment that serves a release."""
        if deleted:
            self.deployments.gone((namespace, name), body)
        else:
            self.deployments.seen((namespace, name), body)

    def wake(self, namespace: str, name: str, delay: float = 0.0) -> None:
        self.scheduler.wake((namespace, name), delay)

    def resolution_seen(self, key: Key, spec: ModelReleaseSpec, version: str) -> int:
        """A pass of `key` resolved its reference to `version`. The first pass to see a new answer wakes the
        other releases of the model: each would otherwise wait for its own poll, and the answer it gets
        then may come from the shared cache, up to a poll interval old; so an alias move could take two
        poll intervals to reach every release. Returns how many were woken."""
        reference = (spec.registry.tracking_uri, spec.model.model_dump_json())
        previous, self.answers[reference] = self.answers.get(reference), version
        if previous is None or previous == version:
            return 0
        woken = 0
        for other, state in self.releases.items():
            if other != key and state.model == spec.model.name and self.scheduler.wake(other):
                woken += 1
        return woken

    def model_changed(self, model: str) -> int:
        """A registry push about `model`: drop its cached answers, wake the releases that follow it."""
        self.registries.cache.invalidate(model)
        woken = 0
        for key, state in self.releases.items():
            if state.model == model and self.scheduler.wake(key):
                state.refresh, state.pushed_at = True, time.monotonic()
                woken += 1
        return woken


def poll_interval(spec: object) -> float:
    """spec.registry.pollInterval in seconds; the default when the spec does not say it readably (the
    pass then records what is wrong with the spec)."""
    try:
        registry = spec.get("registry") if isinstance(spec, Mapping) else None
        return RegistrySpec.model_validate(registry or {}).poll_interval_seconds
    except ValueError:
        return RegistrySpec().poll_interval_seconds


def outcome_of(exc: Exception) -> Outcome:
    """What follows a failed pass, whatever triggered it: a problem waiting cannot fix (a bad spec, a write
    the API server refuses as invalid or forbidden) is looked at again after the poll interval; registry
    outages, API server hiccups (404, 409, 429, 5xx) and bugs back off."""
    if isinstance(exc, SpecError):
        return Outcome.PERMANENT
    status = exc.status if isinstance(exc, ApiException) else None
    if status is not None and 400 <= status < 500 and status not in (404, 409, 429):
        return Outcome.PERMANENT
    return Outcome.TRANSIENT


async def run_pass(op: Operator, key: Key) -> PassResult:
    """One pass over the release `key` for the scheduler: never raises."""
    namespace, name = key
    try:
        plan = await reconcile(op, namespace, name)
    except Exception as exc:
        outcome = outcome_of(exc)
        if isinstance(exc, SpecError):
            logger.info("%s/%s: %s", namespace, name, exc)  # in its status and an Event already
        elif isinstance(exc, ApiException):
            log = logger.error if outcome is Outcome.PERMANENT else logger.warning
            log("%s/%s: Kubernetes API answered HTTP %s %s", namespace, name, exc.status, exc.reason)
        elif isinstance(exc, Transient):
            logger.warning("%s/%s: %s", namespace, name, exc)
        else:
            logger.exception("reconcile of %s/%s crashed", namespace, name)
        return PassResult(outcome)
    if plan is None:
        op.releases.pop(key, None)
        return PassResult(Outcome.GONE)
    return PassResult(Outcome.OK, plan.requeue_after)


def _validation_field(exc: ValidationError) -> tuple[str, str]:
    error = exc.errors()[0]
    path = ".".join(str(p) for p in ("spec", *error.get("loc", ())))
    return path, str(error.get("msg", "invalid"))


async def _target(op: Operator, namespace: str, spec: ModelReleaseSpec) -> Registry | SpecError:
    """The release's registry from the factory (by spec.registry.type), or the spec problem in the way."""
    try:
        return await op.registries.registry_for(spec.registry, namespace, op.settings, op.kube.secret_data)
    except TargetProblem as exc:
        return SpecError(exc.field, str(exc), exc.reason)


async def _serving_version(
    spec: ModelReleaseSpec, registry: Registry, status: ModelReleaseStatus | None
) -> Serving:
    """The version serving now for the Schema check (read only when the check is on): None when none
    serves, else the version or why the registry could not describe it."""
    if spec.verify.schema_ == "Off" or status is None or status.current is None:
        return None
    name, version = parse_pinned(status.current.model_uri)  # checked by _read_status
    try:
        return await registry.get_version(name, version)
    except RegistryError as exc:
        return exc


async def _verify(
    spec: ModelReleaseSpec,
    mv: ModelVersion,
    status: ModelReleaseStatus | None,
    registry: Registry,
    signers: Signers,
) -> tuple[list[CheckResult], str | None] | RegistryUnavailable:
    try:
        results = await verify_candidate(
            spec, mv, await _serving_version(spec, registry, status), registry, signers
        )
        codes = {r.check: r.code for r in results}
        digest = None
        if (
            codes.get("Digest") in ("DigestMatched", "DigestMismatch")
            or codes.get("Signature") == "SignatureVerified"
        ):
            digest = await registry.artifact_digest(mv)  # the checks hashed the files already: a cache hit
    except RegistryUnavailable as exc:
        return exc
    return results, digest


async def _reverify(
    spec: ModelReleaseSpec,
    registry: Registry,
    status: ModelReleaseStatus | None,
    resolution: ModelVersion | RegistryError,
) -> Reverified | None:
    """The digest of the serving version's bytes, streamed again once the cached one is reverifyInterval
    old (a cache hit until then); None when nothing verified serves, or the store is unreachable for now.
    The serving version is described by this pass's resolution when that is the one serving (the steady
    state: no registry request beyond the reference's own), else asked for."""
    current = status.current if status is not None else None
    if current is None or current.digest is None:
        return None
    try:
        name, version = parse_pinned(current.model_uri)
        if isinstance(resolution, ModelVersion) and (resolution.name, resolution.version) == (name, version):
            serving = resolution
        else:
            serving = await registry.get_version(name, version)
        digest = await registry.artifact_digest(serving, max_age=spec.verify.reverify_interval_seconds)
    except (ValueError, RegistryUnavailable):
        return None
    except RegistryError as exc:
        return Reverified(current.version, None, str(exc))
    return Reverified(current.version, digest)


async def reconcile(op: Operator, namespace: str, name: str) -> Plan | None:
    """One pass; returns the plan carried out (None when the release is gone).

    Raises SpecError (bad spec, recorded), Transient (registry unavailable, recorded), or the
    Kubernetes client's ApiException for API failures (nothing half-written that matters). The scheduler
    runs at most one pass per release at a time."""
    started = time.monotonic()
    try:
        plan = await _reconcile(op, namespace, name)
    except SpecError:
        metrics.RECONCILES.labels("spec-error").inc()
        raise
    except Transient:
        metrics.RECONCILES.labels("registry-unavailable").inc()
        raise
    except Exception:
        metrics.RECONCILES.labels("error").inc()
        raise
    finally:
        metrics.RECONCILE_SECONDS.observe(time.monotonic() - started)
    metrics.RECONCILES.labels("ok").inc()
    return plan


def _read_status(body: Mapping[str, Any]) -> ModelReleaseStatus | None:
    """The status as the operator wrote it, or None when there is none or it cannot be read (a restored
    backup, a hand edit: then it is rebuilt from the Deployment). Every model URI it records must be a
    pinned version URI, as the operator writes them."""
    if not body.get("status"):
        return None
    meta = body["metadata"]
    try:
        status = ModelReleaseStatus.model_validate(body["status"])
        for entry in (status.current, *status.history):
            if entry is not None and parse_pinned(entry.model_uri)[1] != entry.version:
                raise ValueError(f"{entry.model_uri!r} is not the pinned URI of version {entry.version}")
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        detail = " ".join(str(exc).split())[:300]
        logger.warning(
            "status of %s/%s is unreadable (%s); rebuilding it from the Deployment",
            meta["namespace"],
            meta["name"],
            detail,
        )
        return None
    return status


async def _reconcile(op: Operator, namespace: str, name: str) -> Plan | None:
    # The watched body (or the answer to this operator's last status write) when the watch knows the
    # release; a GET only for one it does not (a pass the watch has not caught up with).
    body = op.bodies.get((namespace, name)) if (namespace, name) in op.releases else None
    if body is None:
        body = await op.kube.get_release(namespace, name)
    if body is None or body["metadata"].get("deletionTimestamp"):
        return None
    state = op.releases.get((namespace, name)) or ReleaseState()
    meta = body["metadata"]
    release = ReleaseRef(name=name, namespace=namespace, uid=meta["uid"])
    generation = int(meta.get("generation") or 1)
    status = _read_status(body)
    try:
        spec = ModelReleaseSpec.model_validate(body.get("spec") or {})
    except ValidationError as exc:
        path, message = _validation_field(exc)
        await _record_bad_spec(op, body, SpecError(path, message, "InvalidSpec"))
        raise SpecError(path, message, "InvalidSpec") from None

    deployment_name = spec.serving.target_ref.name if spec.serving.target_ref else name
    live = op.deployments.get((namespace, deployment_name))
    if live is None:  # not created yet, or a targetRef Deployment the operator has not annotated yet
        live = await op.kube.get_deployment(namespace, deployment_name)
    observed = observe(live, release=name) if live is not None else None
    now = datetime.now(UTC)
    registry, resolution, problem = await _resolve(op, state, namespace, spec, live)
    if isinstance(resolution, ModelVersion):
        op.resolution_seen((namespace, name), spec, resolution.version)
    plan, resolution = await _plan(
        op,
        namespace,
        spec,
        generation,
        status,
        registry,
        resolution,
        observed,
        now,
        live,
        state.service_problem,
    )

    _written(op, namespace, name, await op.kube.write_release_status(namespace, name, body.get("status"),
                                                                    plan.status_json))  # fmt: skip
    service_failure: ServiceNotApplied | None = None
    try:
        if plan.deploy is not None:
            assert registry is not None  # decide() deploys only what a registry resolved or served
            refusal = await _carry_out(op, registry, release, spec, generation, plan.deploy, live)
            if refusal is not None:  # say why in the status; the Deployment stays as it was
                written = plan.status_json
                plan = refused(plan, spec, generation, resolution, observed, now, refusal)
                answer = await op.kube.write_release_status(namespace, name, written, plan.status_json)
                _written(op, namespace, name, answer)
        elif spec.serving.managed and (plan.status.current is not None or live is not None):
            await _ensure_service(op, release, spec, generation)
    except ServiceNotApplied as exc:  # what the pass wrote stays written, and its Events still go out
        service_failure = exc
    for event in plan.events:
        await _event(op, body, event.type, event.reason, event.message)
    _count(plan)
    if service_failure is not None:
        message = f"Service {name} could not be applied: {service_failure}"
        if state.service_problem != message:
            await _event(op, body, "Warning", SERVICE_NOT_APPLIED, message)
        state.service_problem = message
        raise service_failure.cause  # retried as any API failure is (outcome_of)
    if state.service_problem is not None:  # the status just written still says Degraded: once more, now
        state.service_problem = None
        op.wake(namespace, name)

    if problem is not None:
        raise problem
    if isinstance(resolution, RegistryUnavailable):
        raise Transient(str(resolution))
    return plan


async def _resolve(
    op: Operator, state: ReleaseState, namespace: str, spec: ModelReleaseSpec, live: dict[str, Any] | None
) -> tuple[Registry | None, ModelVersion | RegistryError, SpecError | None]:
    """The release's registry and its answer for spec.model; or, instead of a registry, the spec problem
    found on the way (no usable registry, a targetRef container that does not exist) as the answer."""
    target = await _target(op, namespace, spec)
    if not isinstance(target, SpecError) and spec.serving.target_ref is not None and live is not None:
        try:
            manifests.target_container(live, spec.serving.target_ref.container)
        except manifests.RenderError as exc:
            target = SpecError(exc.field, str(exc).split(": ", 1)[-1], "TargetContainerNotFound")
    if isinstance(target, SpecError):
        return None, RegistryError(str(target), reason=target.reason), target
    registry = target
    max_age = spec.registry.poll_interval_seconds
    if state.refresh:  # an answer fetched after the push is fresh: the releases of one model share it
        max_age = min(max_age, time.monotonic() - state.pushed_at)
    state.refresh = False
    try:
        return registry, await registry.resolve(spec.model, max_age=max_age), None
    except RegistryError as exc:
        return registry, exc, None


async def _plan(
    op: Operator,
    namespace: str,
    spec: ModelReleaseSpec,
    generation: int,
    status: ModelReleaseStatus | None,
    registry: Registry | None,
    resolution: ModelVersion | RegistryError,
    observed: ObservedDeployment | None,
    now: datetime,
    live: dict[str, Any] | None,
    service_problem: str | None,
) -> tuple[Plan, ModelVersion | RegistryError]:
    """The decision, with the candidate verified first, or the new pods smoke-tested, when the decision
    asks for that; and the resolution it ends on (RegistryUnavailable when verification could not read
    what it needs)."""
    # A registry that just failed to answer is not asked again in this pass: each call may take the
    # retry bound (HttpPolicy.worst_case_seconds), and Resolved=False must be written within one.
    reachable = registry is not None and not isinstance(resolution, RegistryUnavailable)
    reverified = (
        await _reverify(spec, registry, status, resolution) if registry is not None and reachable else None
    )
    decided = partial(
        decide, spec, generation, status, reverified=reverified, service_problem=service_problem
    )
    plan = decided(resolution, None, observed, now)
    if plan.smoke_test is not None and registry is not None and live is not None:
        tested = await _smoke_test(op, spec, registry, plan.smoke_test, live)
        if tested is not None:  # else the rollout stays in progress and the next pass tries again
            plan = decided(resolution, None, observed, now, smoke=tested)
        return plan, resolution
    if plan.verify is None or registry is None or not isinstance(resolution, ModelVersion):
        return plan, resolution
    signers = partial(op.kube.config_map_data, namespace)
    verified = await _verify(spec, resolution, status, registry, signers)
    if isinstance(verified, RegistryUnavailable):
        return decided(verified, None, observed, now), verified
    results, digest = verified
    return decided(resolution, results, observed, now, digest=digest), resolution


async def _smoke_test(
    op: Operator, spec: ModelReleaseSpec, registry: Registry, target: SmokeTarget, live: dict[str, Any]
) -> SmokeTested | None:
    """Send the version's serving input example to the Ready pods of its rollout (found by the
    Deployment's selector and their pod-template annotations); None while the registry is unreachable."""
    version = target.pin.version
    example: dict[str, Any] | RegistryError | None
    try:
        mv = await registry.get_version(target.pin.model, version)
        example = await registry.serving_input_example(mv)
    except RegistryUnavailable:
        return None
    except RegistryError as exc:
        example = exc
    pods: list[tuple[str, str]] = []
    if isinstance(example, dict):
        namespace = live["metadata"]["namespace"]
        try:
            listed = await op.kube.list_pods(namespace, live.get("spec", {}).get("selector") or {})
        except ApiException as exc:
            if exc.status not in (401, 403):
                raise  # the API server's hiccup: the pass is retried
            reason = (
                f"the operator may not list pods in namespace {namespace} (HTTP {exc.status}): grant it "
                "list on pods, or set spec.rollout.smokeTest: Off"
            )
            result = smoke_test_not_run(spec.rollout.smoke_test, reason, "PodsNotListable")
            return SmokeTested(version, result)
        pods = new_pods(listed, target.pin, target.release_generation)
    port = smoke.serving_port(spec, live)
    result = await smoke.smoke_test(spec.rollout.smoke_test, version, example, pods, port)
    return SmokeTested(version, result)


async def _record_bad_spec(op: Operator, body: dict[str, Any], problem: SpecError) -> None:
    conditions = (body.get("status") or {}).get("conditions") or []
    resolved: dict[str, Any] = next((c for c in conditions if c.get("type") == "Resolved"), {})
    if resolved.get("reason") == problem.reason and resolved.get("message") == str(problem):
        return
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    others = [c for c in conditions if c.get("type") != "Resolved"]
    condition = {
        "type": "Resolved",
        "status": "False",
        "reason": problem.reason,
        "message": str(problem),
        "lastTransitionTime": now,
        "observedGeneration": body["metadata"].get("generation"),
    }
    meta = body["metadata"]
    old = body.get("status") or {}
    new = {**old, "conditions": [*others, condition], "phase": "Failed"}
    written = await op.kube.write_release_status(meta["namespace"], meta["name"], old, new)
    _written(op, meta["namespace"], meta["name"], written)
    await _event(op, body, "Warning", problem.reason, str(problem))


async def _event(op: Operator, body: dict[str, Any], type_: str, reason: str, message: str) -> None:
    """Events are best effort: a failure to post one must not undo or repeat the pass."""
    try:
        await op.kube.create_event(body, type_, reason, message)
    except ApiException as exc:
        logger.warning(
            "could not post Event %s for %s: HTTP %s", reason, body["metadata"]["name"], exc.status
        )


async def _carry_out(
    op: Operator,
    registry: Registry,
    release: ReleaseRef,
    spec: ModelReleaseSpec,
    generation: int,
    deploy: Deploy,
    live: dict[str, Any] | None,
) -> str | None:
    """Write `deploy`; the API server's message when it refuses the Deployment as invalid, else None."""
    # What points the container at the version is the backend's (MODEL_URI, and e.g. MODEL_PACKAGE_ARN).
    model_env = await registry.serving_env(deploy.pin.model, deploy.pin.version)
    if spec.serving.target_ref is not None:
        assert live is not None  # decide() only repoints a Deployment it has observed
        try:
            applied = await op.kube.apply_deployment(
                manifests.target_apply(
                    release, spec, live, deploy.pin, deploy.release_generation, model_env[MODEL_URI_ENV]
                )
            )
        except Refused as exc:
            return str(exc)
        op.deployments.seen((release.namespace, applied["metadata"]["name"]), applied)
        return None
    hpa = await op.kube.hpa_targets(release.namespace, release.name)
    ctx = manifests.RenderContext(
        image=op.settings.default_image,
        tracking_uri=(spec.registry.tracking_uri or op.settings.default_tracking_uri or "")
        if spec.registry.type == "mlflow"
        else "",
        hpa=hpa,
        model_env=model_env,
    )
    manifest = manifests.deployment(release, spec, generation, deploy.pin, deploy.release_generation, ctx)
    try:
        applied = await op.kube.apply_deployment(manifest)
    except Refused as exc:
        return str(exc)
    op.deployments.seen((release.namespace, release.name), applied)
    checked = op.services_checked.get((release.namespace, release.name))
    if checked is None or checked[0] != generation:  # a new version needs no new Service
        await _apply_service(op, release, spec, generation)
        op.services_checked[(release.namespace, release.name)] = (generation, time.monotonic())
    return None


async def _apply_service(op: Operator, release: ReleaseRef, spec: ModelReleaseSpec, generation: int) -> None:
    try:
        await op.kube.apply_service(manifests.service(release, spec, generation))
    except ApiException as exc:
        raise ServiceNotApplied(exc) from exc


async def _ensure_service(op: Operator, release: ReleaseRef, spec: ModelReleaseSpec, generation: int) -> None:
    """Apply the managed Service when it is missing or of an older generation. Looked at once per
    generation and then every SERVICE_RECHECK_S (a Service deleted by hand comes back within that), not
    on every pass: nothing but a person changes it between generations."""
    key = (release.namespace, release.name)
    checked = op.services_checked.get(key)
    if checked is not None and checked[0] == generation and time.monotonic() - checked[1] < SERVICE_RECHECK_S:
        return
    live = await op.kube.get_service(release.namespace, release.name)
    applied = ((live or {}).get("metadata", {}).get("annotations") or {}).get(
        manifests.APPLIED_GENERATION_ANNOTATION
    )
    if live is None or applied != str(generation):
        await _apply_service(op, release, spec, generation)
    op.services_checked[key] = (generation, time.monotonic())


def _written(op: Operator, namespace: str, name: str, written: dict[str, Any] | None) -> None:
    """Keep the answer to a status write (None: nothing was sent) as the release's newest body."""
    if written is not None:
        op.bodies.seen((namespace, name), written)


def _count(plan: Plan) -> None:
    for event in plan.events:
        if event.reason == "RolloutStarted":
            metrics.ROLLOUTS.labels("started").inc()
        elif event.reason == "RolloutSucceeded":
            metrics.ROLLOUTS.labels("succeeded").inc()
        elif event.reason in ("RolloutFailed", "RolledBack"):
            metrics.ROLLOUTS.labels("failed").inc()
            if event.reason == "RolledBack":
                metrics.ROLLBACKS.inc()
        elif event.reason == ARTIFACT_CHANGED:
            metrics.SERVING_ARTIFACT_CHANGES.inc()
    if plan.blocked is not None:
        metrics.VERIFICATION_FAILURES.labels(plan.blocked.check, plan.blocked.code).inc()
