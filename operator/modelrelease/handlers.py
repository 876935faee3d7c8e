"""Thin kopf handlers: configure once, trigger reconcile passes, map errors. The logic lives in
`modelrelease.pipeline` (I/O) and `modelrelease.reconcile` (decisions).

Triggers of a pass over a release: its creation, spec changes and operator start (change handlers,
so kopf retries them on TemporaryError), and a per-release daemon that polls at
spec.registry.pollInterval and is woken at once by events of the Deployment it serves through and by
the MLflow webhook. Deleting a release needs nothing from the operator: the managed Deployment and
Service are garbage-collected through their ownerReferences, and a targetRef Deployment is left
serving the version it has.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import kopf
from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError

from modelrelease import metrics, pipeline, webhook
from modelrelease.api.models import GROUP, PLURAL, VERSION, RegistrySpec
from modelrelease.kube.client import Kube, load_config
from modelrelease.registry.mlflow import MlflowRegistries
from modelrelease.render.manifests import (
    MANAGED_BY,
    MANAGED_BY_LABEL,
    RELEASE_ANNOTATION,
    RELEASE_LABEL,
)
from modelrelease.settings import Settings, apply_mlflow_client_defaults

Logger = logging.Logger | logging.LoggerAdapter[Any]
PREFIX = "modelrelease.io"
MAX_BACKOFF_S = 60.0
DEFAULT_POLL_S = 60.0


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: Any, logger: Logger, **_: Any) -> None:
    """All kopf and operator settings in one place."""
    config = Settings.from_env()
    apply_mlflow_client_defaults()
    # Our own Events carry the story; kopf posts only its warnings and errors (not every log line).
    settings.posting.enabled = True
    settings.posting.loggers = False
    settings.posting.level = logging.WARNING
    settings.posting.reporting_component = "modelrelease-operator"
    # Progress and the diff base live in annotations under our own prefix; the finalizer too.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=PREFIX)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=PREFIX, key="last-handled-configuration"
    )
    settings.persistence.finalizer = f"{PREFIX}/finalizer"
    # One replica with strategy Recreate: no peering (it is not leader election anyway).
    settings.peering.standalone = True
    settings.peering.mandatory = False
    # Watches: server-side timeouts so a silently dead connection is replaced within minutes.
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.connect_timeout = 30
    settings.watching.reconnect_backoff = 1.0
    settings.networking.request_timeout = 60
    settings.networking.error_backoffs = (1, 2, 5, 10, 20)
    # Every handler is async; the executor only serves kopf's own sync work.
    settings.execution.max_workers = 4
    settings.background.cancellation_polling = 5

    registries = MlflowRegistries(observer=metrics.observe_registry_request)
    operator = pipeline.Operator(settings=config, kube=Kube(load_config()), registries=registries)
    memo.operator = operator
    if config.metrics_port is not None:
        memo.metrics_server = metrics.MetricsServer(
            config.metrics_port, config.bind_address, registries.cache
        )
    if config.webhook_port is not None and config.webhook_secret:
        memo.webhook_runner = await webhook.serve(
            config.bind_address, config.webhook_port, config.webhook_secret, operator.model_changed
        )
    logger.info("modelrelease operator configured: %r", config)


@kopf.on.cleanup()
async def shutdown(memo: Any, **_: Any) -> None:
    runner = memo.get("webhook_runner")
    if runner is not None:
        await runner.cleanup()
    server = memo.get("metrics_server")
    if server is not None:
        server.close()
    operator: pipeline.Operator | None = memo.get("operator")
    if operator is not None:
        await operator.registries.close()
        operator.kube.close()


@kopf.on.probe(id="releases")
def releases_known(memo: Any, **_: Any) -> int:
    operator: pipeline.Operator = memo.operator
    return len(operator.releases)


def _backoff(retry: int) -> float:
    return min(MAX_BACKOFF_S, 2.0 ** max(retry, 0))


async def _pass(memo: Any, namespace: str, name: str, retry: int) -> None:
    """One reconcile pass with kopf's error mapping."""
    operator: pipeline.Operator = memo.operator
    try:
        await pipeline.reconcile(operator, namespace, name)
    except pipeline.SpecError as exc:
        raise kopf.PermanentError(str(exc)) from None
    except pipeline.Transient as exc:
        raise kopf.TemporaryError(str(exc), delay=_backoff(retry)) from None
    except ApiException as exc:
        if exc.status is not None and 400 <= exc.status < 500 and exc.status not in (404, 409, 429):
            raise kopf.PermanentError(
                f"Kubernetes API refused a write: HTTP {exc.status} {exc.reason}"
            ) from None
        raise kopf.TemporaryError(
            f"Kubernetes API: HTTP {exc.status} {exc.reason}", delay=_backoff(retry)
        ) from None


@kopf.on.resume(GROUP, VERSION, PLURAL)
@kopf.on.create(GROUP, VERSION, PLURAL)
@kopf.on.update(GROUP, VERSION, PLURAL, field="spec")
async def release_changed(namespace: str | None, name: str, retry: int, memo: Any, **_: Any) -> None:
    assert namespace is not None  # ModelRelease is namespaced
    await _pass(memo, namespace, name, retry)


@kopf.on.delete(GROUP, VERSION, PLURAL, optional=True)
async def release_deleted(namespace: str | None, name: str, memo: Any, **_: Any) -> None:
    """Forget in-memory state; the API server garbage-collects what the release owns."""
    operator: pipeline.Operator = memo.operator
    assert namespace is not None
    operator.forget(namespace, name)


def _poll_interval(spec: Any) -> float:
    try:
        return RegistrySpec.model_validate(dict(spec.get("registry") or {})).poll_interval_seconds
    except ValidationError:
        return DEFAULT_POLL_S


async def _pause(state: pipeline.ReleaseState, stopped: kopf.DaemonStopped, delay: float) -> None:
    """Sleep `delay` seconds, or less when woken or stopped."""
    waiters = {asyncio.ensure_future(state.wake.wait()), asyncio.ensure_future(stopped.wait())}
    try:
        await asyncio.wait(waiters, timeout=delay, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
    state.wake.clear()


@kopf.daemon(GROUP, VERSION, PLURAL, cancellation_timeout=5)
async def poll(
    namespace: str | None,
    name: str,
    spec: Any,
    stopped: kopf.DaemonStopped,
    memo: Any,
    logger: Logger,
    **_: Any,
) -> None:
    """Re-resolve every pollInterval (alias and stage move; a pinned version only needs the rollout
    watched), sooner when woken; back off on transient failures."""
    operator: pipeline.Operator = memo.operator
    assert namespace is not None
    state = operator.state(namespace, name)
    failures = 0
    delay = _poll_interval(spec)
    while not stopped:
        await _pause(state, stopped, delay)
        if stopped:
            break
        interval = _poll_interval(spec)
        try:
            plan = await pipeline.reconcile(operator, namespace, name)
        except pipeline.SpecError:
            failures, delay = 0, interval  # recorded in status and an Event; retried at the next poll
            continue
        except (pipeline.Transient, ApiException) as exc:
            failures += 1
            delay = min(interval, _backoff(failures))
            logger.warning("reconcile failed (attempt %d, next in %.0fs): %s", failures, delay, exc)
            continue
        except Exception:  # a bug must not end the polling of this release
            failures += 1
            delay = min(interval, _backoff(failures))
            logger.exception("reconcile crashed (attempt %d, next in %.0fs)", failures, delay)
            continue
        failures = 0
        if plan is None:
            break
        delay = min(interval, plan.requeue_after) if plan.requeue_after is not None else interval


def _release_of(body: Any) -> str | None:
    labels = body.get("metadata", {}).get("labels") or {}
    if labels.get(MANAGED_BY_LABEL) == MANAGED_BY and labels.get(RELEASE_LABEL):
        return str(labels[RELEASE_LABEL])
    annotations = body.get("spec", {}).get("template", {}).get("metadata", {}).get("annotations") or {}
    release = annotations.get(RELEASE_ANNOTATION)
    return str(release) if release else None


def _serves_a_release(body: Any, **_: Any) -> bool:
    return _release_of(body) is not None


@kopf.on.event("apps", "v1", "deployments", when=_serves_a_release)
async def deployment_event(body: Any, namespace: str | None, memo: Any, **_: Any) -> None:
    """A managed or targetRef Deployment changed (rollout progress, deletion): look at its release now.

    A watch-event handler stores nothing on the Deployment, so targetRef Deployments stay untouched."""
    release = _release_of(body)
    operator: pipeline.Operator = memo.operator
    if release is not None and namespace is not None and (namespace, release) in operator.releases:
        operator.wake(namespace, release)
