"""Pieces of a reconcile pass that decide what a bad input becomes: a tracking URI urlsplit refuses, a
hand-edited status, a serving version the registry cannot describe right now."""

from __future__ import annotations

from typing import Any

import kubernetes
import pytest

from modelrelease import pipeline
from modelrelease.api.models import ModelReleaseSpec, ModelReleaseStatus
from modelrelease.kube.client import Kube
from modelrelease.registry.base import ModelVersion, RegistryError, RegistryTarget, RegistryUnavailable
from modelrelease.registry.factory import Registries
from modelrelease.registry.mlflow import MlflowRegistry
from modelrelease.settings import Settings
from modelrelease.verify.checks import no_config_maps


def operator(settings: Settings | None = None) -> pipeline.Operator:
    return pipeline.Operator(
        settings=settings or Settings(),
        kube=Kube(kubernetes.client.ApiClient()),
        registries=Registries(),
    )


def spec(**registry: Any) -> ModelReleaseSpec:
    return ModelReleaseSpec.model_validate(
        {"model": {"name": "fraud", "alias": "champion"}, "registry": registry}
    )


@pytest.mark.parametrize(
    ("uri", "reason"),
    [("http://[mlflow:5000", "InvalidTrackingUri"), ("http://mlflow:99999", "InvalidTrackingUri")],
)
async def test_a_tracking_uri_the_crd_admits_but_urlsplit_refuses_is_a_spec_error(
    uri: str, reason: str
) -> None:
    op = operator(Settings(allowed_tracking_uris=("http://mlflow:5000/",)))
    problem = await pipeline._target(op, "ml", spec(trackingUri=uri))
    assert isinstance(problem, pipeline.SpecError)
    assert (problem.field, problem.reason) == ("spec.registry.trackingUri", reason)
    assert "\n" not in str(problem)


def body(status: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"name": "fraud", "namespace": "ml"}, "status": status}


CURRENT = {"version": "3", "modelUri": "models:/fraud/3"}


@pytest.mark.parametrize(
    "status",
    [
        {"current": {**CURRENT, "modelUri": "s3://bucket/model"}},
        {"current": {**CURRENT, "modelUri": "models:/fraud@champion"}},
        {"current": {**CURRENT, "modelUri": "models:/fraud/4"}},
        {"history": [{"version": "3", "modelUri": "not a uri"}]},
        {"phase": "Sleeping"},
    ],
    ids=["not-models", "alias", "other-version", "history", "schema"],
)
def test_a_hand_edited_status_is_unreadable_and_rebuilt(status: dict[str, Any]) -> None:
    assert pipeline._read_status(body(status)) is None


def test_the_status_the_operator_writes_is_read_back() -> None:
    status = pipeline._read_status(
        body({"current": CURRENT, "history": [{**CURRENT, "outcome": "Succeeded"}]})
    )
    assert status is not None and status.current is not None and status.current.version == "3"


class Unreachable(MlflowRegistry):
    """A registry whose serving-version lookup fails with `error`; the candidate's facts are fine."""

    def __init__(self, error: RegistryError) -> None:
        super().__init__(RegistryTarget("http://127.0.0.1:1"))
        self.error = error

    async def get_version(self, name: str, version: str, *, max_age: float | None = None) -> ModelVersion:
        raise self.error

    async def input_schema(self, mv: ModelVersion) -> list[dict[str, object]] | None:
        return [{"name": "a", "type": "double"}]


CANDIDATE = ModelVersion(name="fraud", version="4", status="READY", run_id=None, source="")
SERVING = ModelReleaseStatus.model_validate({"current": CURRENT})


def checked(schema: str) -> ModelReleaseSpec:
    return ModelReleaseSpec.model_validate(
        {"model": {"name": "fraud", "alias": "champion"}, "verify": {"schema": schema, "digest": "Off"}}
    )


async def test_an_enforced_schema_check_waits_for_an_unavailable_registry_instead_of_skipping() -> None:
    registry = Unreachable(RegistryUnavailable("registry down"))
    verified = await pipeline._verify(checked("Enforce"), CANDIDATE, SERVING, registry, no_config_maps)
    assert isinstance(verified, RegistryUnavailable)


@pytest.mark.parametrize(("mode", "outcome"), [("Enforce", "Failed"), ("Warn", "Warned")])
async def test_a_serving_version_the_registry_cannot_describe_fails_the_schema_check(
    mode: str, outcome: str
) -> None:
    registry = Unreachable(RegistryError("model fraud has no version 3", reason="VersionNotFound"))
    verified = await pipeline._verify(checked(mode), CANDIDATE, SERVING, registry, no_config_maps)
    assert not isinstance(verified, RegistryUnavailable)
    schema = next(r for r in verified[0] if r.check == "Schema")
    assert (schema.outcome, schema.code) == (outcome, "VersionNotFound")


async def test_with_the_schema_check_off_the_serving_version_is_not_even_read() -> None:
    registry = Unreachable(RegistryUnavailable("registry down"))
    verified = await pipeline._verify(checked("Off"), CANDIDATE, SERVING, registry, no_config_maps)
    assert not isinstance(verified, RegistryUnavailable)
    assert next(r for r in verified[0] if r.check == "Schema").outcome == "Skipped"
