"""One reconcile pass over one ModelRelease: gather facts, call the pure decision, carry out the plan.

Reads: the release, its credentials Secret, the serving Deployment, HPAs. Asks the registry (shared
cache) and, when the decision says so, verifies the candidate. Writes, in this order: the status
(complete, skipped when unchanged), then the Deployment (and Service), then Events. Writing the
status first makes a crash in between harmless: the next pass sees the Deployment disagree with the
status and re-applies (see `modelrelease.reconcile.decide`).

No kopf here: handlers.py maps the exceptions below onto kopf's.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any

from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError

from modelrelease import metrics
from modelrelease.api.models import ModelReleaseSpec, ModelReleaseStatus, parse_model_uri
from modelrelease.kube.client import Kube, Refused
from modelrelease.reconcile import Deploy, Plan, decide, refused
from modelrelease.registry.base import ModelVersion, RegistryError, RegistryTarget, RegistryUnavailable
from modelrelease.registry.mlflow import MlflowRegistries, MlflowRegistry
from modelrelease.render import manifests
from modelrelease.render.observe import observe
from modelrelease.render.pin import ReleaseRef
from modelrelease.settings import Settings
from modelrelease.verify.checks import CheckResult, Signers, verify_candidate

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


@dataclass
class ReleaseState:
    """In-memory bookkeeping per release: one pass at a time, and a way to wake its poller."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    model: str | None = None
    refresh: bool = False
    """The next pass must not use a cached registry answer (a webhook said it changed)."""


@dataclass
class Operator:
    """Everything a reconcile pass needs; one per operator process (kopf's memo holds it)."""

    settings: Settings
    kube: Kube
    registries: MlflowRegistries
    releases: dict[tuple[str, str], ReleaseState] = field(default_factory=dict)

    def state(self, namespace: str, name: str) -> ReleaseState:
        return self.releases.setdefault((namespace, name), ReleaseState())

    def forget(self, namespace: str, name: str) -> None:
        self.releases.pop((namespace, name), None)

    def wake(self, namespace: str, name: str) -> None:
        self.state(namespace, name).wake.set()

    def model_changed(self, model: str) -> int:
        """A registry push about `model`: drop its cached answers, wake the releases that follow it."""
        self.registries.cache.invalidate(model)
        woken = 0
        for state in self.releases.values():
            if state.model == model:
                state.refresh = True
                state.wake.set()
                woken += 1
        return woken


def _validation_field(exc: ValidationError) -> tuple[str, str]:
    error = exc.errors()[0]
    path = ".".join(str(p) for p in ("spec", *error.get("loc", ())))
    return path, str(error.get("msg", "invalid"))


async def _target(op: Operator, namespace: str, spec: ModelReleaseSpec) -> RegistryTarget | SpecError:
    uri = spec.registry.tracking_uri or op.settings.default_tracking_uri
    if uri is None:
        return SpecError(
            "spec.registry.trackingUri",
            "not set, and the operator has no MODELRELEASE_DEFAULT_TRACKING_URI",
            "TrackingUriMissing",
        )
    if not op.settings.tracking_uri_allowed(uri):
        return SpecError(
            "spec.registry.trackingUri",
            f"{uri} is not allowed by the operator (MODELRELEASE_ALLOWED_TRACKING_URIS)",
            "TrackingUriNotAllowed",
        )
    secret_name = spec.registry.credentials_secret
    if secret_name is None:
        return RegistryTarget(tracking_uri=uri)
    data = await op.kube.secret_data(namespace, secret_name)
    if data is None:
        return SpecError(
            "spec.registry.credentialsSecret",
            f"Secret {secret_name} not found in namespace {namespace}",
            "CredentialsSecretNotFound",
        )
    if not (data.get("token") or data.get("username")):
        return SpecError(
            "spec.registry.credentialsSecret",
            f"Secret {secret_name} has neither a token key nor a username key",
            "CredentialsInvalid",
        )
    return RegistryTarget(
        tracking_uri=uri,
        username=data.get("username") or None,
        password=data.get("password") or None,
        token=data.get("token") or None,
    )


async def _serving_version(
    registry: MlflowRegistry, status: ModelReleaseStatus | None
) -> ModelVersion | None:
    """The version serving now, for the schema check (None when unknown or unreadable)."""
    if status is None or status.current is None:
        return None
    try:
        name, _kind, version = parse_model_uri(status.current.model_uri)
        return await registry.get_version(name, version)
    except (ValueError, RegistryError):
        return None


async def _verify(
    spec: ModelReleaseSpec,
    mv: ModelVersion,
    status: ModelReleaseStatus | None,
    registry: MlflowRegistry,
    signers: Signers,
) -> tuple[list[CheckResult], str | None] | RegistryUnavailable:
    try:
        results = await verify_candidate(
            spec, mv, await _serving_version(registry, status), registry, signers
        )
    except RegistryUnavailable as exc:
        return exc
    codes = {r.check: r.code for r in results}
    digest = None
    if (
        codes.get("Digest") in ("DigestMatched", "DigestMismatch")
        or codes.get("Signature") == "SignatureVerified"
    ):
        digest = await registry.artifact_digest(mv)  # the checks hashed the files already: a cache hit
    return results, digest


async def reconcile(op: Operator, namespace: str, name: str) -> Plan | None:
    """One pass; returns the plan carried out (None when the release is gone).

    Raises SpecError (bad spec, recorded), Transient (registry unavailable, recorded), or the
    Kubernetes client's ApiException for API failures (nothing half-written that matters)."""
    state = op.state(namespace, name)
    async with state.lock:
        started = time.monotonic()
        try:
            plan = await _reconcile(op, state, namespace, name)
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


async def _reconcile(op: Operator, state: ReleaseState, namespace: str, name: str) -> Plan | None:
    body = await op.kube.get_release(namespace, name)
    if body is None or body["metadata"].get("deletionTimestamp"):
        return None
    meta = body["metadata"]
    release = ReleaseRef(name=name, namespace=namespace, uid=meta["uid"])
    generation = int(meta.get("generation") or 1)
    try:
        status = ModelReleaseStatus.model_validate(body["status"]) if body.get("status") else None
    except ValidationError:
        logger.warning("status of %s/%s is unreadable; rebuilding it from the Deployment", namespace, name)
        status = None
    try:
        spec = ModelReleaseSpec.model_validate(body.get("spec") or {})
    except ValidationError as exc:
        path, message = _validation_field(exc)
        await _record_bad_spec(op, body, SpecError(path, message, "InvalidSpec"))
        raise SpecError(path, message, "InvalidSpec") from None
    state.model = spec.model.name

    deployment_name = spec.serving.target_ref.name if spec.serving.target_ref else name
    live = await op.kube.get_deployment(namespace, deployment_name)
    observed = observe(live, release=name) if live is not None else None
    now = datetime.now(UTC)

    target = await _target(op, namespace, spec)
    if not isinstance(target, SpecError) and spec.serving.target_ref is not None and live is not None:
        try:
            manifests.target_container(live, spec.serving.target_ref.container)
        except manifests.RenderError as exc:
            target = SpecError(exc.field, str(exc).split(": ", 1)[-1], "TargetContainerNotFound")
    problem: SpecError | None = None
    registry: MlflowRegistry | None = None
    resolution: ModelVersion | RegistryError
    if isinstance(target, SpecError):
        problem = target
        resolution = RegistryError(str(target), reason=target.reason)
    else:
        registry = op.registries.get(target)
        max_age = 0.0 if state.refresh else spec.registry.poll_interval_seconds
        state.refresh = False
        try:
            resolution = await registry.resolve(spec.model, max_age=max_age)
        except RegistryError as exc:
            resolution = exc

    plan = decide(spec, generation, status, resolution, None, observed, now)
    if plan.verify is not None and registry is not None and isinstance(resolution, ModelVersion):
        signers = partial(op.kube.config_map_data, namespace)
        verified = await _verify(spec, resolution, status, registry, signers)
        if isinstance(verified, RegistryUnavailable):
            resolution = verified
            plan = decide(spec, generation, status, resolution, None, observed, now)
        else:
            results, digest = verified
            plan = decide(spec, generation, status, resolution, results, observed, now, digest=digest)

    await op.kube.write_release_status(namespace, name, body.get("status"), plan.status_json)
    if plan.deploy is not None:
        refusal = await _carry_out(op, release, spec, generation, plan.deploy, live)
        if refusal is not None:  # say why in the status; the Deployment stays as it was
            written = plan.status_json
            plan = refused(plan, spec, generation, resolution, observed, now, refusal)
            await op.kube.write_release_status(namespace, name, written, plan.status_json)
    elif spec.serving.managed and (plan.status.current is not None or live is not None):
        await _ensure_service(op, release, spec, generation)
    for event in plan.events:
        await _event(op, body, event.type, event.reason, event.message)
    _count(plan)

    if problem is not None:
        raise problem
    if isinstance(resolution, RegistryUnavailable):
        raise Transient(str(resolution))
    return plan


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
    await op.kube.write_release_status(meta["namespace"], meta["name"], old, new)
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
    release: ReleaseRef,
    spec: ModelReleaseSpec,
    generation: int,
    deploy: Deploy,
    live: dict[str, Any] | None,
) -> str | None:
    """Write `deploy`; the API server's message when it refuses the Deployment as invalid, else None."""
    if spec.serving.target_ref is not None:
        assert live is not None  # decide() only repoints a Deployment it has observed
        try:
            await op.kube.apply_deployment(
                manifests.target_apply(release, spec, live, deploy.pin, deploy.release_generation)
            )
        except Refused as exc:
            return str(exc)
        return None
    hpa = await op.kube.hpa_targets(release.namespace, release.name)
    ctx = manifests.RenderContext(
        image=op.settings.default_image,
        tracking_uri=spec.registry.tracking_uri or op.settings.default_tracking_uri or "",
        hpa=hpa,
    )
    manifest = manifests.deployment(release, spec, generation, deploy.pin, deploy.release_generation, ctx)
    try:
        await op.kube.apply_deployment(manifest)
    except Refused as exc:
        return str(exc)
    await op.kube.apply_service(manifests.service(release, spec, generation))
    return None


async def _ensure_service(op: Operator, release: ReleaseRef, spec: ModelReleaseSpec, generation: int) -> None:
    live = await op.kube.get_service(release.namespace, release.name)
    applied = ((live or {}).get("metadata", {}).get("annotations") or {}).get(
        manifests.APPLIED_GENERATION_ANNOTATION
    )
    if live is None or applied != str(generation):
        await op.kube.apply_service(manifests.service(release, spec, generation))


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
    if plan.blocked is not None:
        metrics.VERIFICATION_FAILURES.labels(plan.blocked.check, plan.blocked.code).inc()
