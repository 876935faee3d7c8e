"""Rollout simulator: plays the Deployment and ReplicaSet controllers and the kubelet for the sandbox.

It watches Deployments in all namespaces through the Kubernetes API and moves their `status` (via the status
subresource) the way kube-controller-manager does: observedGeneration, replica counts, and the `Progressing` /
`Available` conditions with the reasons and messages of pkg/controller/deployment (calculateStatus,
syncRolloutStatus, the rolling-update and recreate scaling rules, ProgressDeadlineExceeded). Pods are
imaginary: each becomes ready a short delay after it is "created".

Faults are plain Kubernetes objects: the ConfigMap `sandbox-faults` in the Deployment's namespace maps a model
URI (the pod template's `MODEL_URI` env value) to `crashloop` or `unready` (pods never become ready) or `ok`.
A real API server only accepts ConfigMap keys made of `[-._a-zA-Z0-9]`, so the key may also be the URI with
every other run of characters replaced by `_` (`models:/fraud/5` -> `models_fraud_5`, see `fault_key`).
The ConfigMap is read when a rollout creates a new ReplicaSet — always fresh from the API server, so a fault
written just before the Deployment is seen — and the fault stays with that ReplicaSet: a change applies to
the next rollout, and old ReplicaSets keep serving exactly as in a real rolling update.

`reconcile` is the pure step (no I/O, time passed in); `Simulator` is the thin watch/tick/patch loop.
"""

from __future__ import annotations

import argparse
import asyncio
import calendar
import contextlib
import hashlib
import json
import logging
import math
import os
import re
import signal
import ssl
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal, cast

import aiohttp

log = logging.getLogger("modelrelease.sandbox.simulator")

Fault = Literal["ok", "crashloop", "unready"]
FAULTS: tuple[Fault, ...] = ("ok", "crashloop", "unready")
FAULTS_CONFIGMAP = "sandbox-faults"
MODEL_URI_ENV = "MODEL_URI"

# API-server defaults for apps/v1 Deployments (applied here in case the server did not default them).
DEFAULT_PROGRESS_DEADLINE_SECONDS = 600
DEFAULT_REVISION_HISTORY_LIMIT = 10
DEFAULT_MAX_SURGE = "25%"
DEFAULT_MAX_UNAVAILABLE = "25%"

# Reasons, as in pkg/controller/deployment/util/deployment_util.go.
NEW_RS_REASON = "NewReplicaSetCreated"
FOUND_NEW_RS_REASON = "FoundNewReplicaSet"
RS_UPDATED_REASON = "ReplicaSetUpdated"
NEW_RS_AVAILABLE_REASON = "NewReplicaSetAvailable"
TIMED_OUT_REASON = "ProgressDeadlineExceeded"
PAUSED_REASON = "DeploymentPaused"
RESUMED_REASON = "DeploymentResumed"
MIN_AVAILABLE_REASON = "MinimumReplicasAvailable"
MIN_UNAVAILABLE_REASON = "MinimumReplicasUnavailable"

_COUNTERS = ("replicas", "updatedReplicas", "readyReplicas", "availableReplicas", "unavailableReplicas")
# The alphabet Kubernetes uses for generated name suffixes (no vowels, no look-alikes).
_SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


# ---------------------------------------------------------------------------------------------------------
# Pure model
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Timing:
    ready_delay: float = 1.0  # seconds from pod creation to Ready for a healthy pod


@dataclass(frozen=True)
class Pod:
    created: float
    healthy: bool  # False under a crashloop/unready fault: the pod never becomes ready

    def ready(self, now: float, timing: Timing) -> bool:
        return self.healthy and now >= self.created + timing.ready_delay

    def available(self, now: float, timing: Timing, min_ready_seconds: int) -> bool:
        return self.healthy and now >= self.created + timing.ready_delay + min_ready_seconds


@dataclass(frozen=True)
class ReplicaSet:
    name: str
    template_hash: str
    revision: int
    fault: Fault
    replicas: int = 0  # spec.replicas, set by the rollout
    pods: tuple[Pod, ...] = ()


@dataclass(frozen=True)
class Rollout:
    """The simulator's memory of one Deployment: its ReplicaSets and the status last computed."""

    sets: tuple[ReplicaSet, ...]
    status: Mapping[str, Any]


@dataclass(frozen=True)
class _Spec:
    name: str
    generation: int
    replicas: int
    template: Mapping[str, Any]
    recreate: bool
    max_surge: int
    max_unavailable: int
    min_ready_seconds: int
    progress_deadline: int
    revision_history_limit: int
    paused: bool

    @classmethod
    def of(cls, deployment: Mapping[str, Any]) -> _Spec:
        meta = deployment.get("metadata") or {}
        spec = deployment.get("spec") or {}
        replicas = int(spec.get("replicas", 1))
        strategy = spec.get("strategy") or {}
        rolling = strategy.get("rollingUpdate") or {}
        surge, unavailable = resolve_fenceposts(
            rolling.get("maxSurge"), rolling.get("maxUnavailable"), replicas
        )
        return cls(
            name=str(meta.get("name", "")),
            generation=int(meta.get("generation", 1)),
            replicas=replicas,
            template=spec.get("template") or {},
            recreate=strategy.get("type") == "Recreate",
            max_surge=surge,
            max_unavailable=unavailable,
            min_ready_seconds=int(spec.get("minReadySeconds", 0)),
            progress_deadline=int(spec.get("progressDeadlineSeconds", DEFAULT_PROGRESS_DEADLINE_SECONDS)),
            revision_history_limit=int(spec.get("revisionHistoryLimit", DEFAULT_REVISION_HISTORY_LIMIT)),
            paused=bool(spec.get("paused", False)),
        )

    def allowed_unavailable(self) -> int:
        """MaxUnavailable(deployment): what the Available condition tolerates."""
        if self.recreate or self.replicas == 0:
            return 0
        return min(self.max_unavailable, self.replicas)


def _scaled(value: int | str | None, default: str, total: int, round_up: bool) -> int:
    """intstr.GetScaledValueFromIntOrPercent."""
    value = default if value is None else value
    if isinstance(value, int):
        return value
    if not value.endswith("%"):
        return int(value)
    exact = int(value[:-1]) * total / 100
    return math.ceil(exact) if round_up else math.floor(exact)


def resolve_fenceposts(
    max_surge: int | str | None, max_unavailable: int | str | None, desired: int
) -> tuple[int, int]:
    """Surge rounds up, unavailable rounds down; both zero would deadlock, so unavailable becomes 1."""
    surge = _scaled(max_surge, DEFAULT_MAX_SURGE, desired, round_up=True)
    unavailable = _scaled(max_unavailable, DEFAULT_MAX_UNAVAILABLE, desired, round_up=False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def pod_template_hash(template: Mapping[str, Any]) -> str:
    digest = hashlib.sha256(json.dumps(template, sort_keys=True, separators=(",", ":")).encode()).digest()
    return "".join(_SAFE_ALPHABET[b % len(_SAFE_ALPHABET)] for b in digest[:10])


def model_uri(template: Mapping[str, Any]) -> str | None:
    """The MODEL_URI env value of the first container that sets one literally."""
    for container in (template.get("spec") or {}).get("containers") or []:
        for env in container.get("env") or []:
            if env.get("name") == MODEL_URI_ENV and isinstance(env.get("value"), str):
                return cast(str, env["value"])
    return None


def fault_key(uri: str) -> str:
    """The spelling of a model URI that is a valid ConfigMap key: `models:/fraud/5` -> `models_fraud_5`."""
    return re.sub(r"[^-._a-zA-Z0-9]+", "_", uri)


def fault_for(template: Mapping[str, Any], faults: Mapping[str, str]) -> Fault:
    """The fault the `sandbox-faults` data assigns to this pod template (`ok` when none or unknown)."""
    uri = model_uri(template)
    if uri is None:
        return "ok"
    value = faults.get(uri, faults.get(fault_key(uri), "ok")).strip()
    return cast(Fault, value) if value in FAULTS else "ok"


def needs_new_replica_set(deployment: Mapping[str, Any], previous: Rollout | None) -> bool:
    """True when the next `reconcile` will create a ReplicaSet (the moment the fault is read)."""
    spec = _Spec.of(deployment)
    if spec.paused:
        return False
    wanted = pod_template_hash(spec.template)
    return previous is None or all(rs.template_hash != wanted for rs in previous.sets)


def _timestamp(now: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))


def _utc_seconds(value: str) -> float:
    return float(calendar.timegm(time.strptime(value, "%Y-%m-%dT%H:%M:%SZ")))


def _condition(type_: str, status: str, reason: str, message: str, now: float) -> dict[str, str]:
    stamp = _timestamp(now)
    return {
        "type": type_,
        "status": status,
        "lastUpdateTime": stamp,
        "lastTransitionTime": stamp,
        "reason": reason,
        "message": message,
    }


def get_condition(conditions: Sequence[Mapping[str, Any]], type_: str) -> Mapping[str, Any] | None:
    return next((c for c in conditions if c.get("type") == type_), None)


def set_condition(conditions: list[dict[str, Any]], condition: dict[str, Any]) -> list[dict[str, Any]]:
    """SetDeploymentCondition: no-op for the same status and reason; same status keeps lastTransitionTime."""
    current = get_condition(conditions, condition["type"])
    if current is not None and current.get("status") == condition["status"]:
        if current.get("reason") == condition["reason"]:
            return conditions
        condition = {**condition, "lastTransitionTime": current.get("lastTransitionTime")}
    return [*remove_condition(conditions, condition["type"]), condition]


def remove_condition(conditions: list[dict[str, Any]], type_: str) -> list[dict[str, Any]]:
    return [c for c in conditions if c.get("type") != type_]


def _rs_ready(rs: ReplicaSet, now: float, timing: Timing) -> int:
    return sum(p.ready(now, timing) for p in rs.pods)


def _rs_available(rs: ReplicaSet, spec: _Spec, now: float, timing: Timing) -> int:
    return sum(p.available(now, timing, spec.min_ready_seconds) for p in rs.pods)


def _sync_pods(rs: ReplicaSet, now: float, timing: Timing) -> ReplicaSet:
    """The ReplicaSet controller: create pods up to spec.replicas, delete the surplus (unready first)."""
    have = len(rs.pods)
    if have < rs.replicas:
        healthy = rs.fault == "ok"
        return replace(rs, pods=rs.pods + tuple(Pod(now, healthy) for _ in range(rs.replicas - have)))
    if have > rs.replicas:
        # Ready pods are kept over unready ones, older over newer.
        order = sorted(range(have), key=lambda i: (not rs.pods[i].ready(now, timing), rs.pods[i].created))
        return replace(rs, pods=tuple(rs.pods[i] for i in sorted(order[: rs.replicas])))
    return rs


def _scale_rolling(
    spec: _Spec, new: ReplicaSet, old: list[ReplicaSet], now: float, timing: Timing
) -> tuple[ReplicaSet, list[ReplicaSet]]:
    """rolloutRolling: scale the new ReplicaSet up within maxSurge, else old ones within maxUnavailable."""
    if new.replicas > spec.replicas:
        return replace(new, replicas=spec.replicas), old
    all_pods = new.replicas + sum(rs.replicas for rs in old)
    if new.replicas < spec.replicas:
        room = spec.replicas + spec.max_surge - all_pods
        if room > 0:
            return replace(new, replicas=new.replicas + min(room, spec.replicas - new.replicas)), old
    if not any(rs.replicas for rs in old):
        return new, old
    min_available = spec.replicas - spec.max_unavailable
    new_unavailable = new.replicas - _rs_available(new, spec, now, timing)
    budget = all_pods - min_available - new_unavailable
    if budget <= 0:
        return new, old
    # cleanupUnhealthyReplicas: old pods that are not available go first, oldest ReplicaSet first.
    old = sorted(old, key=lambda rs: rs.revision)
    for i, rs in enumerate(old):
        unhealthy = min(budget, rs.replicas - _rs_available(rs, spec, now, timing))
        if unhealthy > 0:
            old[i] = replace(rs, replicas=rs.replicas - unhealthy)
            budget -= unhealthy
    # scaleDownOldReplicaSetsForRollingUpdate: then available ones, as long as minAvailable holds.
    available = _rs_available(new, spec, now, timing) + sum(
        _rs_available(rs, spec, now, timing) for rs in old
    )
    surplus = min(budget, available - min_available)
    for i, rs in enumerate(old):
        if surplus <= 0:
            break
        cut = min(surplus, rs.replicas)
        old[i] = replace(rs, replicas=rs.replicas - cut)
        surplus -= cut
    return new, old


def _scale_recreate(
    spec: _Spec, new: ReplicaSet, old: list[ReplicaSet]
) -> tuple[ReplicaSet, list[ReplicaSet]]:
    """rolloutRecreate: all old pods go first; the new ReplicaSet scales up once none is left."""
    if any(rs.replicas or rs.pods for rs in old):
        return new, [replace(rs, replicas=0) for rs in old]
    return replace(new, replicas=spec.replicas), old


def _paused_conditions(spec: _Spec, conditions: list[dict[str, Any]], now: float) -> list[dict[str, Any]]:
    """checkPausedConditions."""
    current = get_condition(conditions, "Progressing")
    if current is not None and current.get("reason") == TIMED_OUT_REASON:
        return conditions
    was_paused = current is not None and current.get("reason") == PAUSED_REASON
    if spec.paused and not was_paused:
        return set_condition(
            conditions, _condition("Progressing", "Unknown", PAUSED_REASON, "Deployment is paused", now)
        )
    if not spec.paused and was_paused:
        return set_condition(
            conditions, _condition("Progressing", "Unknown", RESUMED_REASON, "Deployment is resumed", now)
        )
    return conditions


def _counter(status: Mapping[str, Any], key: str) -> int:
    return int(status.get(key, 0) or 0)


def _complete(spec: _Spec, status: Mapping[str, Any]) -> bool:
    """DeploymentComplete."""
    return (
        _counter(status, "updatedReplicas") == spec.replicas
        and _counter(status, "replicas") == spec.replicas
        and _counter(status, "availableReplicas") == spec.replicas
        and _counter(status, "observedGeneration") >= spec.generation
    )


def _progressing(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """DeploymentProgressing: more updated, fewer old, more ready or more available replicas than before."""
    old_old = _counter(old, "replicas") - _counter(old, "updatedReplicas")
    new_old = _counter(new, "replicas") - _counter(new, "updatedReplicas")
    return (
        _counter(new, "updatedReplicas") > _counter(old, "updatedReplicas")
        or new_old < old_old
        or _counter(new, "readyReplicas") > _counter(old, "readyReplicas")
        or _counter(new, "availableReplicas") > _counter(old, "availableReplicas")
    )


def _timed_out(spec: _Spec, conditions: Sequence[Mapping[str, Any]], now: float) -> bool:
    """DeploymentTimedOut: no progress for progressDeadlineSeconds since the condition's lastUpdateTime."""
    current = get_condition(conditions, "Progressing")
    if current is None or current.get("reason") == NEW_RS_AVAILABLE_REASON:
        return False
    if current.get("reason") == TIMED_OUT_REASON:
        return True
    return _utc_seconds(str(current["lastUpdateTime"])) + spec.progress_deadline < now


def _rollout_conditions(
    spec: _Spec,
    old_status: Mapping[str, Any],
    counters: Mapping[str, int],
    conditions: list[dict[str, Any]],
    new: ReplicaSet,
    now: float,
) -> list[dict[str, Any]]:
    """syncRolloutStatus: the Progressing condition of a rollout in flight."""
    current = get_condition(conditions, "Progressing")
    complete_before = (
        counters["replicas"] == counters["updatedReplicas"]
        and current is not None
        and current.get("reason") == NEW_RS_AVAILABLE_REASON
    )
    if complete_before:
        return conditions
    rs_name = json.dumps(new.name)
    if _complete(spec, counters):
        message = f"ReplicaSet {rs_name} has successfully progressed."
        return set_condition(
            conditions, _condition("Progressing", "True", NEW_RS_AVAILABLE_REASON, message, now)
        )
    if _progressing(old_status, counters):
        message = f"ReplicaSet {rs_name} is progressing."
        condition = _condition("Progressing", "True", RS_UPDATED_REASON, message, now)
        if current is not None and current.get("status") == "True":
            condition["lastTransitionTime"] = current["lastTransitionTime"]
        # Unlike set_condition, the same reason still refreshes lastUpdateTime: that is what "progress" means.
        return [*remove_condition(conditions, "Progressing"), condition]
    if _timed_out(spec, conditions, now):
        message = f"ReplicaSet {rs_name} has timed out progressing."
        return set_condition(conditions, _condition("Progressing", "False", TIMED_OUT_REASON, message, now))
    return conditions


def reconcile(
    deployment: Mapping[str, Any], previous: Rollout | None, fault: Fault, now: float, timing: Timing
) -> Rollout:
    """One pass of the Deployment controller, the ReplicaSet controller and the kubelet over one Deployment.

    `previous` is the last pass's result (None the first time: the Deployment's own status is the starting
    point); `fault` applies to a ReplicaSet this pass creates. Returns the ReplicaSets and the full status.
    """
    spec = _Spec.of(deployment)
    old_status: Mapping[str, Any] = previous.status if previous else (deployment.get("status") or {})
    conditions = [dict(c) for c in old_status.get("conditions") or []]
    # Pods follow the ReplicaSet sizes the last pass decided, as the ReplicaSet controller would by now.
    sets = [_sync_pods(rs, now, timing) for rs in (previous.sets if previous else ())]

    conditions = _paused_conditions(spec, conditions, now)

    wanted = pod_template_hash(spec.template)
    new = next((rs for rs in sets if rs.template_hash == wanted), None)
    old = [rs for rs in sets if rs.template_hash != wanted]
    max_old_revision = max((rs.revision for rs in old), default=0)
    if new is None and not spec.paused:
        new = ReplicaSet(f"{spec.name}-{wanted}", wanted, max_old_revision + 1, fault)
        message = f"Created new replica set {json.dumps(new.name)}"
        conditions = set_condition(conditions, _condition("Progressing", "True", NEW_RS_REASON, message, now))
    elif new is not None:
        # Back to an older template (a rollback): its ReplicaSet becomes the newest revision.
        if new.revision <= max_old_revision:
            new = replace(new, revision=max_old_revision + 1)
        if get_condition(conditions, "Progressing") is None:
            message = f"Found new replica set {json.dumps(new.name)}"
            conditions = set_condition(
                conditions, _condition("Progressing", "True", FOUND_NEW_RS_REASON, message, now)
            )

    if new is not None and not spec.paused:
        new, old = (
            _scale_recreate(spec, new, old) if spec.recreate else _scale_rolling(spec, new, old, now, timing)
        )
    elif new is not None and not any(rs.replicas for rs in old):
        new = replace(new, replicas=spec.replicas)  # a paused Deployment still scales

    old = _trim_history(spec, old)
    sets_now = ([new] if new is not None else []) + old

    available = sum(_rs_available(rs, spec, now, timing) for rs in sets_now)
    counters = {
        "observedGeneration": spec.generation,
        "replicas": sum(len(rs.pods) for rs in sets_now),
        "updatedReplicas": len(new.pods) if new is not None else 0,
        "readyReplicas": sum(_rs_ready(rs, now, timing) for rs in sets_now),
        "availableReplicas": available,
        "unavailableReplicas": max(0, sum(rs.replicas for rs in sets_now) - available),
    }
    if available >= spec.replicas - spec.allowed_unavailable():
        availability = _condition(
            "Available", "True", MIN_AVAILABLE_REASON, "Deployment has minimum availability.", now
        )
    else:
        availability = _condition(
            "Available",
            "False",
            MIN_UNAVAILABLE_REASON,
            "Deployment does not have minimum availability.",
            now,
        )
    conditions = set_condition(conditions, availability)
    if new is not None and not spec.paused:
        conditions = _rollout_conditions(spec, old_status, counters, conditions, new, now)

    status: dict[str, Any] = {k: v for k, v in counters.items() if v}  # the API omits zero counters
    status["conditions"] = conditions
    return Rollout(sets=tuple(sorted(sets_now, key=lambda rs: -rs.revision)), status=status)


def _trim_history(spec: _Spec, old: list[ReplicaSet]) -> list[ReplicaSet]:
    """cleanupDeployment: keep at most revisionHistoryLimit scaled-down old ReplicaSets."""
    idle = sorted((rs for rs in old if rs.replicas == 0 and not rs.pods), key=lambda rs: rs.revision)
    drop = {rs.name for rs in idle[: max(0, len(idle) - spec.revision_history_limit)]}
    return [rs for rs in old if rs.name not in drop]


def status_patch(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any] | None:
    """A JSON merge patch turning status `old` into `new` (None keys delete), or None when nothing changed."""
    if dict(old) == dict(new):
        return None
    patch: dict[str, Any] = {key: None for key in old if key not in new}
    patch.update({key: value for key, value in new.items() if old.get(key) != value})
    return patch


def describe(status: Mapping[str, Any]) -> str:
    conditions = " ".join(
        f"{c['type']}={c['status']}/{c['reason']}" for c in status.get("conditions") or [] if "reason" in c
    )
    counts = " ".join(f"{key}={_counter(status, key)}" for key in _COUNTERS)
    return f"{counts} {conditions}"


# ---------------------------------------------------------------------------------------------------------
# I/O loop
# ---------------------------------------------------------------------------------------------------------


class _WatchExpired(Exception):
    """The watch's resourceVersion is too old (410 Gone): list again."""


@dataclass(frozen=True)
class Endpoint:
    server: str
    headers: Mapping[str, str]
    ssl: ssl.SSLContext | bool


def load_endpoint(kubeconfig: Path) -> Endpoint:
    """Server, credentials and TLS of the kubeconfig's current context, read by the official loader."""
    from kubernetes import client, config

    cfg = client.Configuration()
    config.load_kube_config(config_file=str(kubeconfig), client_configuration=cfg)
    headers = {"Accept": "application/json"}
    if token := cfg.api_key.get("authorization"):
        headers["Authorization"] = token
    tls: ssl.SSLContext | bool = False
    if cfg.host.startswith("https://"):
        tls = ssl.create_default_context(cafile=cfg.ssl_ca_cert)
        if not cfg.verify_ssl:
            tls.check_hostname = False
            tls.verify_mode = ssl.CERT_NONE
        if cfg.cert_file:
            tls.load_cert_chain(cfg.cert_file, cfg.key_file)
    return Endpoint(server=cfg.host.rstrip("/"), headers=headers, ssl=tls)


Key = tuple[str, str]


def _key(obj: Mapping[str, Any]) -> Key:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace", "")), str(meta.get("name", ""))


class Simulator:
    """Lists and watches Deployments; every tick moves each a step and patches its status if it changed."""

    def __init__(
        self, session: aiohttp.ClientSession, endpoint: Endpoint, timing: Timing, tick: float
    ) -> None:
        self._session = session
        self._endpoint = endpoint
        self._timing = timing
        self._tick = tick
        self._deployments: dict[Key, Mapping[str, Any]] = {}
        self._rollouts: dict[Key, Rollout] = {}
        self._written: dict[Key, Mapping[str, Any]] = {}

    async def run(self, synced: asyncio.Event) -> None:
        ticker = asyncio.create_task(self._tick_forever())
        try:
            await self._watch_forever(synced)
        finally:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker

    def _url(self, path: str) -> str:
        return self._endpoint.server + path

    async def _watch_forever(self, synced: asyncio.Event) -> None:
        version: str | None = None
        while True:
            try:
                if version is None:
                    version = await self._list()
                    synced.set()
                version = await self._watch(version)
            except _WatchExpired:
                version = None
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                log.warning("watching Deployments failed (%s); listing again in 1s", exc)
                version = None
                await asyncio.sleep(1)

    async def _list(self) -> str:
        async with self._session.get(
            self._url("/apis/apps/v1/deployments"), headers=self._endpoint.headers, ssl=self._endpoint.ssl
        ) as response:
            response.raise_for_status()
            body = await response.json()
        self._deployments = {_key(item): item for item in body.get("items") or []}
        for gone in set(self._rollouts) - set(self._deployments):
            self._forget(gone)
        return str(body["metadata"]["resourceVersion"])

    async def _watch(self, version: str) -> str:
        params = {
            "watch": "true",
            "resourceVersion": version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": "240",
        }
        async with self._session.get(
            self._url("/apis/apps/v1/deployments"),
            params=params,
            headers=self._endpoint.headers,
            ssl=self._endpoint.ssl,
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=300),
        ) as response:
            if response.status == 410:
                raise _WatchExpired
            response.raise_for_status()
            buffer = b""
            async for chunk in response.content.iter_any():
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    if line.strip():
                        version = self._on_event(json.loads(line), version)
        return version

    def _on_event(self, event: Mapping[str, Any], version: str) -> str:
        kind, obj = event.get("type"), event.get("object") or {}
        if kind == "ERROR":
            if obj.get("code") == 410:
                raise _WatchExpired
            raise ValueError(f"watch error: {obj.get('message', obj)}")
        if kind in ("ADDED", "MODIFIED"):
            self._deployments[_key(obj)] = obj
        elif kind == "DELETED":
            self._deployments.pop(_key(obj), None)
            self._forget(_key(obj))
        return str((obj.get("metadata") or {}).get("resourceVersion") or version)

    def _forget(self, key: Key) -> None:
        self._rollouts.pop(key, None)
        self._written.pop(key, None)

    async def _tick_forever(self) -> None:
        while True:
            for key, deployment in list(self._deployments.items()):
                try:
                    await self._step(key, deployment)
                except (aiohttp.ClientError, TimeoutError) as exc:
                    log.warning("%s/%s: %s", *key, exc)
            await asyncio.sleep(self._tick)

    async def _step(self, key: Key, deployment: Mapping[str, Any]) -> None:
        previous = self._rollouts.get(key)
        fault: Fault = "ok"
        if needs_new_replica_set(deployment, previous):
            template = (deployment.get("spec") or {}).get("template") or {}
            fault = fault_for(template, await self._faults(key[0]))
            if fault != "ok":
                log.info("%s/%s: new rollout of %s gets fault %s", *key, model_uri(template), fault)
        rollout = reconcile(deployment, previous, fault, time.time(), self._timing)
        self._rollouts[key] = rollout
        patch = status_patch(self._written.get(key, deployment.get("status") or {}), rollout.status)
        if patch is not None and await self._patch_status(key, patch):
            self._written[key] = rollout.status
            log.info("%s/%s: %s", *key, describe(rollout.status))

    async def _faults(self, namespace: str) -> Mapping[str, str]:
        path = f"/api/v1/namespaces/{namespace}/configmaps/{FAULTS_CONFIGMAP}"
        async with self._session.get(
            self._url(path), headers=self._endpoint.headers, ssl=self._endpoint.ssl
        ) as r:
            if r.status == 404:
                return {}
            r.raise_for_status()
            data: dict[str, str] = (await r.json()).get("data") or {}
        for uri, value in data.items():
            if value.strip() not in FAULTS:
                log.warning(
                    "%s/%s: unknown fault %r for %s (known: %s)",
                    namespace,
                    FAULTS_CONFIGMAP,
                    value,
                    uri,
                    FAULTS,
                )
        return data

    async def _patch_status(self, key: Key, patch: Mapping[str, Any]) -> bool:
        namespace, name = key
        async with self._session.patch(
            self._url(f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}/status"),
            data=json.dumps({"status": patch}),
            headers={**self._endpoint.headers, "Content-Type": "application/merge-patch+json"},
            ssl=self._endpoint.ssl,
        ) as response:
            if response.status == 404:  # deleted meanwhile; the watch will say so
                return False
            if response.status >= 400:
                log.warning(
                    "%s/%s: status patch refused: %s %s", *key, response.status, await response.text()
                )
                return False
        return True


async def _serve(kubeconfig: Path, timing: Timing, tick: float, ready_file: Path | None) -> None:
    endpoint = load_endpoint(kubeconfig)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    synced = asyncio.Event()
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        simulator = asyncio.create_task(Simulator(session, endpoint, timing, tick).run(synced))
        stopping = asyncio.create_task(stop.wait())
        ready = asyncio.create_task(synced.wait())
        await asyncio.wait({ready, stopping, simulator}, return_when=asyncio.FIRST_COMPLETED)
        if synced.is_set():
            log.info(
                "watching Deployments at %s (pods ready after %.1fs)", endpoint.server, timing.ready_delay
            )
            if ready_file is not None:
                ready_file.write_text("ok\n")
            await asyncio.wait({stopping, simulator}, return_when=asyncio.FIRST_COMPLETED)
        for task in (simulator, stopping, ready):
            task.cancel()
        results = await asyncio.gather(simulator, return_exceptions=True)
        if isinstance(results[0], Exception):
            raise results[0]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m modelrelease.sandbox.simulator", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--kubeconfig",
        type=Path,
        default=os.environ.get("KUBECONFIG"),
        required="KUBECONFIG" not in os.environ,
    )
    parser.add_argument(
        "--ready-delay",
        type=float,
        default=float(os.environ.get("MODELRELEASE_SIM_READY_DELAY", "1.0")),
        help="seconds from pod creation to Ready (env MODELRELEASE_SIM_READY_DELAY; default 1.0)",
    )
    parser.add_argument(
        "--tick", type=float, default=0.2, help="seconds between controller passes (default 0.2)"
    )
    parser.add_argument(
        "--ready-file", type=Path, help="written once the first list of Deployments succeeded"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    asyncio.run(_serve(args.kubeconfig, Timing(ready_delay=args.ready_delay), args.tick, args.ready_file))
    return 0


if __name__ == "__main__":
    sys.exit(main())
