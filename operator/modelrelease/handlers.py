"""Thin kopf handlers: configure once, feed the watch into the scheduler, report health. The logic
lives in `modelrelease.scheduler` (when passes run), `modelrelease.pipeline` (a pass's I/O) and
`modelrelease.reconcile` (decisions).

Releases are watched with an event handler only: kopf adds a finalizer when a release has daemons,
timers or mandatory deletion handlers, and none exists here, so deleting a release (or its namespace)
never waits for the operator. The API server garbage-collects the managed Deployment and Service through
their ownerReferences; a targetRef Deployment is left serving the version it has. Event handlers store
nothing on the release either (no progress or diff-base annotations): the only writes to a release are
its status and, once, the removal of the finalizer earlier versions added.

One scheduler task runs every pass (at startup each release is due at once, then at its pollInterval,
sooner when its generation changes, its Deployment changes, or an MLflow webhook names its model).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

import kopf

from modelrelease import metrics, pipeline, webhook
from modelrelease.api.models import GROUP, PLURAL, VERSION
from modelrelease.kube.client import Kube, load_config
from modelrelease.registry.factory import Registries
from modelrelease.render.manifests import (
    MANAGED_BY,
    MANAGED_BY_LABEL,
    RELEASE_ANNOTATION,
    RELEASE_LABEL,
)
from modelrelease.settings import Settings, apply_mlflow_client_defaults

Logger = logging.Logger | logging.LoggerAdapter[Any]
DEPLOYMENT_WAKE_S = 1.0
"""A Deployment event makes its release due within this: the several events of one rollout step (the
Deployment, then its status, as the ReplicaSets move) coalesce into one pass (bench/scale.py counted
5.5 passes per release while 1,000 converged)."""
LEGACY_FINALIZER = "modelrelease.io/finalizer"
"""Added by operator versions that polled with per-release kopf daemons; removed wherever it is seen."""


class NoDiffBase(kopf.DiffBaseStorage):
    """kopf deep-copies every watched body into a diff base for change handlers, even when, as here,
    there are only event handlers and nothing reads a diff: 13 % of the operator's CPU while 1,000
    releases moved (bench/scale.py with py-spy). This keeps nothing and stores nothing on the objects."""

    def build(self, *, body: kopf.Body, extra_fields: Any = None) -> kopf.BodyEssence:
        return kopf.BodyEssence()

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        return None

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        pass


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: Any, logger: Logger, **_: Any) -> None:
    """All kopf and operator settings in one place."""
    # Both read files (kubeconfig, service-account token, environment): not on the event loop.
    config = await asyncio.to_thread(Settings.from_env)
    api = await asyncio.to_thread(load_config)
    apply_mlflow_client_defaults()
    # Our own Events carry the story; kopf posts only its warnings and errors (not every log line).
    settings.posting.enabled = True
    settings.posting.loggers = False
    settings.posting.level = logging.WARNING
    settings.posting.reporting_component = "modelrelease-operator"
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
    settings.persistence.diffbase_storage = NoDiffBase()
    # Every handler is async; the executor only serves kopf's own sync work.
    settings.execution.max_workers = 4

    registries = Registries(observer=metrics.observe_registry_request)
    operator = pipeline.Operator(settings=config, kube=Kube(api), registries=registries)
    memo.operator = operator
    memo.scheduler_task = asyncio.create_task(operator.scheduler.run(), name="modelrelease scheduler")
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
    task: asyncio.Task[None] | None = memo.get("scheduler_task")
    if task is not None:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    runner = memo.get("webhook_runner")
    if runner is not None:
        await runner.cleanup()
    server = memo.get("metrics_server")
    if server is not None:
        server.close()
    operator: pipeline.Operator | None = memo.get("operator")
    if operator is not None:
        await operator.scheduler.stop()
        await operator.registries.close()
        operator.kube.close()


@kopf.on.probe(id="releases", errors=kopf.ErrorsMode.PERMANENT)
def releases_known(memo: Any, **_: Any) -> int:
    """Releases the scheduler knows; the liveness endpoint fails when the scheduler has stopped."""
    task: asyncio.Task[None] = memo.scheduler_task
    if task.done():
        raise kopf.PermanentError("the reconcile scheduler has stopped")
    operator: pipeline.Operator = memo.operator
    return len(operator.scheduler.agenda)


def _without_legacy_finalizer(body: kopf.RawBody) -> None:
    metadata = body["metadata"]
    metadata["finalizers"] = [f for f in metadata.get("finalizers") or [] if f != LEGACY_FINALIZER]


@kopf.on.event(GROUP, VERSION, PLURAL)
async def release_event(
    event: Mapping[str, Any],
    body: Any,
    namespace: str | None,
    name: str,
    patch: kopf.Patch,
    memo: Any,
    **_: Any,
) -> None:
    """Every watch event of a release (including the initial listing): schedule it, or forget it once it
    is deleted or being deleted. A leftover finalizer of earlier versions is removed (a JSON patch that
    kopf guards with the resourceVersion), so such a release can be deleted without the operator."""
    operator: pipeline.Operator = memo.operator
    assert namespace is not None  # ModelRelease is namespaced
    raw = event.get("object")  # the watch's own dict (kopf's `body` is a view of it)
    raw = raw if isinstance(raw, Mapping) else body
    if event.get("type") == "DELETED" or body["metadata"].get("deletionTimestamp"):
        operator.forget(namespace, name, raw if event.get("type") == "DELETED" else None)
    else:
        operator.observe(namespace, name, raw)
    if event.get("type") != "DELETED" and LEGACY_FINALIZER in (body["metadata"].get("finalizers") or []):
        patch.fns.append(_without_legacy_finalizer)


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
async def deployment_event(
    event: Mapping[str, Any], body: Any, namespace: str | None, name: str, memo: Any, **_: Any
) -> None:
    """A managed or targetRef Deployment changed (rollout progress, deletion): keep its body for the next
    pass (which then reads no Deployment from the API server) and look at its release now.

    A watch-event handler stores nothing on the Deployment, so targetRef Deployments stay untouched."""
    release = _release_of(body)
    operator: pipeline.Operator = memo.operator
    if release is not None and namespace is not None:
        raw = event.get("object")
        operator.deployment_seen(
            namespace, name, raw if isinstance(raw, Mapping) else body, event.get("type") == "DELETED"
        )
        operator.wake(namespace, release, delay=DEPLOYMENT_WAKE_S)
