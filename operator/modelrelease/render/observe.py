"""Reading back what was rendered: the pin a Deployment's pod template carries and how its rollout stands.

The pod-template annotations are the durable record: if a release's status is lost, the version, digest
and release generation of what serves are rebuilt from them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from modelrelease.api.models import HistoryEntry
from modelrelease.registry.factory import parse_pinned
from modelrelease.render.manifests import (
    APPLIED_GENERATION_ANNOTATION,
    DIGEST_ANNOTATION,
    GENERATION_ANNOTATION,
    MODEL_URI_ANNOTATION,
    RELEASE_ANNOTATION,
    VERSION_ANNOTATION,
)
from modelrelease.render.pin import Pin

RolloutState = Literal["Progressing", "Succeeded", "Failed"]


@dataclass(frozen=True)
class ObservedDeployment:
    """The serving Deployment as last read: its pinned version (if it carries one) and rollout state."""

    pin: Pin | None
    release_generation: int | None
    rollout: RolloutState
    replicas: int
    available: int
    message: str = ""
    applied_generation: int | None = None
    """Release generation the managed Deployment was last rendered from (None for a targetRef one)."""


def _conditions(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c.get("type", ""): c for c in status.get("conditions") or []}


def template_pin(deployment: dict[str, Any], release: str | None = None) -> tuple[Pin | None, int | None]:
    """The pin and release generation recorded in the pod-template annotations, if any; with `release`,
    only a pin that release recorded (not one left by another, deleted release)."""
    template = deployment.get("spec", {}).get("template", {})
    annotations: dict[str, str] = template.get("metadata", {}).get("annotations") or {}
    if release is not None and annotations.get(RELEASE_ANNOTATION) != release:
        return None, None
    uri = annotations.get(MODEL_URI_ANNOTATION)
    version = annotations.get(VERSION_ANNOTATION)
    if not uri or not version:
        return None, None
    try:
        name, value = parse_pinned(uri)
    except ValueError:
        return None, None
    if value != version:
        return None, None
    generation = annotations.get(GENERATION_ANNOTATION, "")
    return (
        Pin(model=name, version=version, digest=annotations.get(DIGEST_ANNOTATION) or None, ref=uri),
        int(generation) if generation.isdigit() else None,
    )


def rollout_state(deployment: dict[str, Any]) -> tuple[RolloutState, str]:
    """How the Deployment controller reports the rollout of the current pod template, with its message.

    Succeeded: the controller has seen this generation and every replica is updated and available.
    Failed: Progressing=False with ProgressDeadlineExceeded (Kubernetes itself takes no action then).
    """
    spec = deployment.get("spec", {})
    status = deployment.get("status") or {}
    generation = deployment.get("metadata", {}).get("generation", 0)
    if status.get("observedGeneration", 0) < generation:
        return "Progressing", "waiting for the Deployment controller to observe the new template"
    conditions = _conditions(status)
    progressing = conditions.get("Progressing", {})
    if progressing.get("status") == "False" and progressing.get("reason") == "ProgressDeadlineExceeded":
        return "Failed", " ".join(str(progressing.get("message", "progress deadline exceeded")).split())
    replicas = spec.get("replicas", 1)
    updated = status.get("updatedReplicas", 0)
    available = status.get("availableReplicas", 0)
    total = status.get("replicas", 0)
    if (
        updated >= replicas
        and available >= replicas
        and total == updated
        and conditions.get("Available", {}).get("status") == "True"
    ):
        return "Succeeded", f"{available}/{replicas} replicas available"
    return "Progressing", f"{updated}/{replicas} updated, {available}/{replicas} available"


def observe(deployment: dict[str, Any], release: str | None = None) -> ObservedDeployment:
    pin, generation = template_pin(deployment, release)
    state, message = rollout_state(deployment)
    status = deployment.get("status") or {}
    applied = (deployment.get("metadata", {}).get("annotations") or {}).get(APPLIED_GENERATION_ANNOTATION, "")
    return ObservedDeployment(
        pin=pin,
        release_generation=generation,
        rollout=state,
        replicas=deployment.get("spec", {}).get("replicas", 1),
        available=status.get("availableReplicas", 0),
        message=message,
        applied_generation=int(applied) if applied.isdigit() else None,
    )


def new_pods(pods: list[dict[str, Any]], pin: Pin, release_generation: int | None) -> list[tuple[str, str]]:
    """(name, status.podIP) of the Ready, not terminating pods whose pod-template annotations carry `pin`
    as rolled out by `release_generation` (any, when None): the new ReplicaSet's, whatever its
    pod-template-hash."""
    found = []
    for pod in pods:
        meta = pod.get("metadata") or {}
        annotations = meta.get("annotations") or {}
        status = pod.get("status") or {}
        conditions = status.get("conditions") or []
        if annotations.get(MODEL_URI_ANNOTATION) != pin.uri or meta.get("deletionTimestamp"):
            continue
        if release_generation is not None and annotations.get(GENERATION_ANNOTATION) != str(
            release_generation
        ):
            continue
        ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
        if ready and status.get("podIP"):
            found.append((str(meta.get("name", "")), str(status["podIP"])))
    return sorted(found)


def rebuilt_entry(observed: ObservedDeployment, now: datetime) -> HistoryEntry | None:
    """A history entry for what the Deployment serves, rebuilt from its annotations when status was lost.

    A finished rollout becomes a Succeeded entry; anything else an in-progress one (outcome unset) that
    the next observations complete.
    """
    if observed.pin is None:
        return None
    done = observed.rollout == "Succeeded"
    return HistoryEntry(
        version=observed.pin.version,
        model_uri=observed.pin.uri,
        digest=observed.pin.digest,
        started_at=now,
        finished_at=now if done else None,
        outcome="Succeeded" if done else None,
        reason="RebuiltFromDeployment",
        message="status was lost; rebuilt from the Deployment's pod-template annotations",
        release_generation=observed.release_generation,
    )
