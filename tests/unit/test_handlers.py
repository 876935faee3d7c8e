"""The kopf wiring: nothing makes kopf put a finalizer on a release, the watch feeds the scheduler, the
old finalizer is removed, startup reads its configuration off the event loop, one error mapping."""

from __future__ import annotations

import copy
import logging
import threading
from typing import Any

import kopf
import kubernetes
import pytest
from kubernetes.client.exceptions import ApiException

from modelrelease import handlers, pipeline
from modelrelease.api.models import GROUP, PLURAL, VERSION
from modelrelease.kube.client import Kube
from modelrelease.registry.factory import Registries
from modelrelease.scheduler import Outcome
from modelrelease.settings import Settings
from unit.kopf_calls import invoke

RELEASES = kopf.Resource(GROUP, VERSION, PLURAL)


def test_no_handler_makes_kopf_add_a_finalizer_to_releases() -> None:
    registry = kopf.get_default_registry()
    # kopf blocks deletion for daemons and timers (spawning handlers) and non-optional on.delete handlers.
    assert not registry._spawning.has_handlers(resource=RELEASES)
    assert not [h for h in registry._changing.get_all_handlers() if h.requires_finalizer]
    assert registry._watching.has_handlers(resource=RELEASES)


def operator() -> pipeline.Operator:
    return pipeline.Operator(
        settings=Settings(), kube=Kube(kubernetes.client.ApiClient()), registries=Registries()
    )


def release(generation: int = 1, **metadata: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "fraud", "namespace": "ml", "generation": generation, **metadata},
        "spec": {
            "model": {"name": "fraud-detector", "alias": "champion"},
            "registry": {"pollInterval": "30s"},
        },
    }


async def event(memo: Any, type_: str | None, body: dict[str, Any]) -> kopf.Patch:
    patch = kopf.Patch(body=body)  # type: ignore[arg-type]
    await invoke(
        handlers.release_event,
        event={"type": type_, "object": body},
        body=body,
        namespace="ml",
        name="fraud",
        patch=patch,
        memo=memo,
    )
    return patch


async def test_watch_events_register_and_forget_releases() -> None:
    memo = kopf.Memo(operator=operator())
    op: pipeline.Operator = memo.operator
    await event(memo, None, release())
    assert len(op.scheduler.agenda) == 1 and op.releases[("ml", "fraud")].model == "fraud-detector"
    assert op.model_changed("fraud-detector") == 1 and op.releases[("ml", "fraud")].refresh
    await event(memo, "MODIFIED", release(deletionTimestamp="2026-01-01T00:00:00Z"))
    assert len(op.scheduler.agenda) == 0 and not op.releases
    await event(memo, "ADDED", release())
    await event(memo, "DELETED", release())
    assert len(op.scheduler.agenda) == 0 and op.model_changed("fraud-detector") == 0


@pytest.mark.parametrize("others", [[], ["other.io/keep"]])
async def test_the_old_finalizer_is_removed_and_only_it(others: list[str]) -> None:
    memo = kopf.Memo(operator=operator())
    body = release(finalizers=[*others, handlers.LEGACY_FINALIZER], resourceVersion="7")
    patch = await event(memo, None, body)
    assert len(patch.fns) == 1
    patched = copy.deepcopy(body)
    patch.fns[0](patched)  # type: ignore[arg-type]
    assert patched["metadata"]["finalizers"] == others
    assert not (await event(memo, "MODIFIED", release(finalizers=others))).fns
    assert not (await event(memo, "DELETED", body)).fns


async def test_startup_reads_its_configuration_off_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    loop_thread = threading.current_thread()
    readers: dict[str, threading.Thread] = {}

    def settings() -> Settings:
        readers["settings"] = threading.current_thread()
        return Settings(metrics_port=None, health_port=None)

    def config() -> kubernetes.client.ApiClient:
        readers["kubeconfig"] = threading.current_thread()
        return kubernetes.client.ApiClient()

    monkeypatch.setattr(handlers.Settings, "from_env", staticmethod(settings))
    monkeypatch.setattr(handlers, "load_config", config)
    memo = kopf.Memo()
    await invoke(
        handlers.configure, settings=kopf.OperatorSettings(), memo=memo, logger=logging.getLogger("t")
    )
    try:
        assert set(readers) == {"settings", "kubeconfig"}
        assert all(thread is not loop_thread for thread in readers.values())
        assert await invoke(handlers.releases_known, memo=memo) == 0  # the scheduler runs
    finally:
        await invoke(handlers.shutdown, memo=memo)
    assert memo.scheduler_task.done()
    with pytest.raises(kopf.PermanentError):
        await invoke(handlers.releases_known, memo=memo)


@pytest.mark.parametrize(
    ("error", "outcome"),
    [
        (pipeline.SpecError("spec.x", "bad", "InvalidSpec"), Outcome.PERMANENT),
        (ApiException(status=403, reason="Forbidden"), Outcome.PERMANENT),
        (ApiException(status=422, reason="Unprocessable Entity"), Outcome.PERMANENT),
        (ApiException(status=404, reason="Not Found"), Outcome.TRANSIENT),
        (ApiException(status=409, reason="Conflict"), Outcome.TRANSIENT),
        (ApiException(status=429, reason="Too Many Requests"), Outcome.TRANSIENT),
        (ApiException(status=503, reason="Service Unavailable"), Outcome.TRANSIENT),
        (ApiException(reason="connection reset"), Outcome.TRANSIENT),
        (pipeline.Transient("registry down"), Outcome.TRANSIENT),
        (RuntimeError("a bug"), Outcome.TRANSIENT),
    ],
)
def test_one_mapping_of_a_failed_pass_whatever_triggered_it(error: Exception, outcome: Outcome) -> None:
    assert pipeline.outcome_of(error) is outcome
