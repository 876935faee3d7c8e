"""Verification checks: each pure check under Enforce / Warn / Off, and what verify_candidate fetches."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from modelrelease.api.models import MetricGate, ModelRef, ModelReleaseSpec
from modelrelease.registry.base import ModelVersion, RegistryError, RegistryUnavailable
from modelrelease.verify.checks import (
    CheckResult,
    check_digest,
    check_metrics,
    check_ready,
    check_schema,
    expected_digest,
    first_blocking,
    schema_incompatibilities,
    verify_candidate,
)

DIGEST = "sha256:" + "ab" * 32
OTHER = "sha256:" + "cd" * 32
TAG = "modelrelease.io/sha256"


def version(number: str = "7", status: str = "READY", tags: Mapping[str, str] | None = None) -> ModelVersion:
    return ModelVersion(
        name="fraud",
        version=number,
        status=status,
        run_id=f"run{number}",
        source=f"models:/m-{number}",
        tags=dict(tags or {}),
    )


def col(name: str, type_: str = "double", required: bool = True) -> dict[str, Any]:
    return {"name": name, "type": type_, "required": required}


# ------------------------------------------------------------------------------- ready


def test_ready_version_passes() -> None:
    assert check_ready(True, version()).outcome == "Passed"


def test_pending_version_fails_with_its_status() -> None:
    result = check_ready(True, version(status="PENDING_REGISTRATION"))
    assert (result.outcome, result.code) == ("Failed", "VersionNotReady")
    assert "PENDING_REGISTRATION" in result.reason


def test_ready_check_can_be_disabled() -> None:
    assert check_ready(False, version(status="FAILED_REGISTRATION")).outcome == "Skipped"


# ----------------------------------------------------------------------------- metrics

F1 = [MetricGate(name="f1", min=0.78)]


@pytest.mark.parametrize(
    ("gates", "metrics", "outcome"),
    [
        (F1, {"f1": 0.80}, "Passed"),
        (F1, {"f1": 0.78}, "Passed"),  # bounds are inclusive
        (F1, {"f1": 0.77}, "Failed"),
        ([MetricGate(name="loss", max=0.3)], {"loss": 0.31}, "Failed"),
        ([MetricGate(name="loss", min=0.1, max=0.3)], {"loss": 0.2}, "Passed"),
        (F1, {"f1": float("nan")}, "Failed"),
        (F1, {"accuracy": 0.99}, "Failed"),  # a missing metric fails
    ],
)
def test_metric_gates_under_enforce(gates: list[MetricGate], metrics: dict[str, float], outcome: str) -> None:
    assert check_metrics(gates, "Enforce", metrics).outcome == outcome


def test_failed_gate_says_value_and_bound() -> None:
    result = check_metrics([*F1, MetricGate(name="auc", min=0.5)], "Enforce", {"f1": 0.71, "auc": 0.9})
    assert (result.code, result.reason) == ("MetricGateFailed", "f1=0.71 below min 0.78")


def test_missing_metric_is_named() -> None:
    result = check_metrics(F1, "Enforce", {})
    assert (result.outcome, result.code, result.reason) == ("Failed", "MetricMissing", "metric f1 not logged")


def test_metric_failure_under_warn_is_warned() -> None:
    assert check_metrics(F1, "Warn", {"f1": 0.5}).outcome == "Warned"
    assert check_metrics(F1, "Warn", {}).outcome == "Warned"


def test_metrics_off_or_without_gates_is_skipped() -> None:
    assert check_metrics(F1, "Off", {}).outcome == "Skipped"
    assert check_metrics([], "Enforce", {}).outcome == "Skipped"


# ------------------------------------------------------------------------------ digest


def test_spec_digest_wins_over_the_tag() -> None:
    assert expected_digest(DIGEST, {TAG: OTHER}, TAG) == (DIGEST, "spec.model.digest")
    assert expected_digest(None, {TAG: OTHER}, TAG) == (OTHER, f"version tag {TAG}")
    assert expected_digest(None, {}, TAG) == (None, f"version tag {TAG}")


def test_matching_digest_passes() -> None:
    assert check_digest("Enforce", version(), DIGEST, "spec.model.digest", DIGEST).outcome == "Passed"


@pytest.mark.parametrize(("mode", "outcome"), [("Enforce", "Failed"), ("Warn", "Warned")])
def test_mismatching_digest(mode: Any, outcome: str) -> None:
    result = check_digest(mode, version(), DIGEST, f"version tag {TAG}", OTHER)
    assert (result.outcome, result.code) == (outcome, "DigestMismatch")
    assert DIGEST in result.reason and OTHER in result.reason


@pytest.mark.parametrize(("mode", "outcome"), [("Enforce", "Failed"), ("Warn", "Warned"), ("Off", "Skipped")])
def test_no_expected_digest(mode: Any, outcome: str) -> None:
    result = check_digest(mode, version(), None, f"version tag {TAG}", None)
    assert result.outcome == outcome
    if mode != "Off":
        assert result.reason == (
            "no expected digest: set spec.model.digest or run `modelrelease stamp fraud 7`"
        )


def test_malformed_tag_value_fails() -> None:
    result = check_digest("Enforce", version(), "md5:abc", f"version tag {TAG}", DIGEST)
    assert (result.outcome, result.code) == ("Failed", "DigestInvalid")


# ------------------------------------------------------------------------------ schema

SERVING = [col("amount"), col("country", "string"), col("note", "string", required=False)]


@pytest.mark.parametrize(
    ("candidate", "problems"),
    [
        (SERVING, []),
        (list(reversed(SERVING)), []),  # order of named columns does not matter
        ([*SERVING, col("channel", "string", required=False)], []),  # added optional: fine
        (SERVING[1:], ["input 'amount' removed"]),
        ([col("amount", "long"), *SERVING[1:]], ["input 'amount' type changed double -> long"]),
        ([*SERVING, col("channel", "string")], ["new required input 'channel'"]),
        ([*SERVING[:2], col("note", "string")], ["input 'note' became required"]),
    ],
)
def test_schema_incompatibilities(candidate: list[dict[str, Any]], problems: list[str]) -> None:
    assert schema_incompatibilities(candidate, SERVING) == problems


def tensor(dtype: str, shape: list[int]) -> dict[str, Any]:
    return {"type": "tensor", "tensor-spec": {"dtype": dtype, "shape": shape}}


def test_unnamed_tensor_inputs_are_compared_by_position() -> None:
    assert schema_incompatibilities([tensor("float64", [-1, 4])], [tensor("float64", [-1, 4])]) == []
    assert schema_incompatibilities([tensor("float32", [-1, 4])], [tensor("float64", [-1, 4])]) == [
        "input '#0' type changed tensor float64 [-1, 4] -> tensor float32 [-1, 4]"
    ]


def test_schema_check_outcomes() -> None:
    old, new = version("6"), version("7")
    assert check_schema("Enforce", new, old, SERVING, SERVING).outcome == "Passed"
    failed = check_schema("Enforce", new, old, SERVING[1:], SERVING)
    assert (failed.outcome, failed.code) == ("Failed", "SchemaIncompatible")
    assert failed.reason == "input schema incompatible with serving version 6: input 'amount' removed"
    assert check_schema("Warn", new, old, SERVING[1:], SERVING).outcome == "Warned"
    assert check_schema("Off", new, old, SERVING[1:], SERVING).outcome == "Skipped"


@pytest.mark.parametrize(
    ("serving", "candidate_inputs", "serving_inputs", "code"),
    [
        (None, SERVING, None, "NoServingVersion"),
        (version("7"), SERVING, SERVING, "SameVersion"),
        (version("6"), SERVING, None, "NoSignature"),
        (version("6"), None, SERVING, "NoSignature"),
    ],
)
def test_schema_check_skips_without_two_signatures(
    serving: ModelVersion | None, candidate_inputs: Any, serving_inputs: Any, code: str
) -> None:
    result = check_schema("Enforce", version("7"), serving, candidate_inputs, serving_inputs)
    assert (result.outcome, result.code) == ("Skipped", code)


# ---------------------------------------------------------------------- verify_candidate


@dataclass
class FakeRegistry:
    """The Registry protocol over fixed answers; records which facts were asked for."""

    metrics: dict[str, float] = field(default_factory=dict)
    digest: str = DIGEST
    schemas: dict[str, list[dict[str, Any]] | None] = field(default_factory=dict)
    entries: tuple[tuple[str, str], ...] = ()
    bundle: bytes | None = None
    error: Exception | None = None
    asked: list[str] = field(default_factory=list)
    max_ages: list[float | None] = field(default_factory=list)

    def _ask(self, what: str) -> None:
        self.asked.append(what)
        if self.error is not None:
            raise self.error

    async def resolve(self, ref: ModelRef, *, max_age: float | None = None) -> ModelVersion:
        raise NotImplementedError

    async def get_version(self, name: str, version: str, *, max_age: float | None = None) -> ModelVersion:
        raise NotImplementedError

    async def serving_env(self, name: str, version: str) -> dict[str, str]:
        raise NotImplementedError

    async def run_metrics(self, run_id: str) -> dict[str, float]:
        raise NotImplementedError

    async def version_metrics(self, mv: ModelVersion) -> dict[str, float]:
        self._ask(f"metrics {mv.version}")
        return self.metrics

    async def input_schema(self, mv: ModelVersion) -> list[dict[str, Any]] | None:
        self._ask(f"schema {mv.version}")
        return self.schemas.get(mv.version)

    async def artifact_digest(self, mv: ModelVersion, *, max_age: float | None = None) -> str:
        self._ask(f"digest {mv.version}")
        self.max_ages.append(max_age)
        return self.digest

    async def artifact_entries(
        self, mv: ModelVersion, *, max_age: float | None = None
    ) -> tuple[tuple[str, str], ...]:
        self._ask(f"entries {mv.version}")
        self.max_ages.append(max_age)
        return self.entries

    async def signature_bundle(self, mv: ModelVersion) -> bytes | None:
        self._ask(f"model.sig {mv.version}")
        return self.bundle

    async def serving_input_example(self, mv: ModelVersion) -> dict[str, object] | None:
        raise NotImplementedError


async def no_signers(name: str) -> Mapping[str, str] | None:
    raise AssertionError(f"ConfigMap {name} read although the signature check is Off")


def release(**verify: Any) -> ModelReleaseSpec:
    return ModelReleaseSpec.model_validate(
        {"model": {"name": "fraud", "alias": "champion"}, "verify": verify}
    )


def outcomes(results: list[CheckResult]) -> dict[str, str]:
    return {result.check: result.outcome for result in results}


async def test_all_checks_pass_with_every_fact_fetched() -> None:
    registry = FakeRegistry(metrics={"f1": 0.9}, schemas={"6": SERVING, "7": SERVING})
    spec = release(metrics=[{"name": "f1", "min": 0.78}])
    results = await verify_candidate(
        spec, version("7", tags={TAG: DIGEST}), version("6"), registry, no_signers
    )
    assert [r.check for r in results] == ["RegistryReady", "Metrics", "Digest", "Signature", "Schema"]
    assert set(outcomes(results).values()) == {"Passed", "Skipped"}
    assert outcomes(results)["Signature"] == "Skipped"
    assert sorted(registry.asked) == ["digest 7", "metrics 7", "schema 6", "schema 7"]
    assert first_blocking(results) is None


async def test_checks_that_are_off_fetch_nothing() -> None:
    registry = FakeRegistry()
    spec = release(digest="Off", schema="Off", metricsMode="Off", metrics=[{"name": "f1", "min": 0.78}])
    results = await verify_candidate(
        spec, version("7", tags={TAG: DIGEST}), version("6"), registry, no_signers
    )
    assert registry.asked == []
    assert outcomes(results) == {
        "RegistryReady": "Passed",
        "Metrics": "Skipped",
        "Digest": "Skipped",
        "Signature": "Skipped",
        "Schema": "Skipped",
    }


async def test_no_expected_digest_blocks_without_hashing() -> None:
    registry = FakeRegistry()
    results = await verify_candidate(release(), version("7"), None, registry, no_signers)
    blocking = first_blocking(results)
    assert blocking is not None and (blocking.check, blocking.code) == ("Digest", "DigestMissing")
    assert registry.asked == []


async def test_first_blocking_is_the_first_failed_check_in_order() -> None:
    registry = FakeRegistry(metrics={"f1": 0.5}, digest=OTHER)
    spec = release(metrics=[{"name": "f1", "min": 0.78}])
    results = await verify_candidate(spec, version("7", tags={TAG: DIGEST}), None, registry, no_signers)
    assert outcomes(results)["Digest"] == "Failed"
    blocking = first_blocking(results)
    assert blocking is not None and blocking.check == "Metrics"


async def test_a_digest_is_trusted_for_at_most_the_reverify_interval() -> None:
    registry = FakeRegistry()
    spec = release(reverifyInterval="1h", schema="Off")
    await verify_candidate(spec, version("7", tags={TAG: DIGEST}), None, registry, no_signers)
    assert registry.max_ages == [3600.0]


async def test_spec_digest_is_compared_not_the_tag() -> None:
    spec = ModelReleaseSpec.model_validate({"model": {"name": "fraud", "version": "7", "digest": OTHER}})
    results = await verify_candidate(
        spec, version("7", tags={TAG: DIGEST}), None, FakeRegistry(digest=OTHER), no_signers
    )
    assert outcomes(results)["Digest"] == "Passed"


async def test_transient_registry_failure_propagates() -> None:
    registry = FakeRegistry(error=RegistryUnavailable("registry down"))
    with pytest.raises(RegistryUnavailable):
        await verify_candidate(
            release(), version("7", tags={TAG: DIGEST}), version("6"), registry, no_signers
        )


async def test_permanent_registry_error_fails_that_check_with_its_reason() -> None:
    error = RegistryError("no artifact files at s3://b/p", reason="ArtifactNotFound")
    results = await verify_candidate(
        release(schema="Off"), version("7", tags={TAG: DIGEST}), None, FakeRegistry(error=error), no_signers
    )
    digest = next(r for r in results if r.check == "Digest")
    assert (digest.outcome, digest.code, digest.reason) == ("Failed", "ArtifactNotFound", str(error))
    warned = await verify_candidate(
        release(digest="Warn"), version("7", tags={TAG: DIGEST}), None, FakeRegistry(error=error), no_signers
    )
    assert outcomes(warned)["Digest"] == "Warned" and first_blocking(warned) is None


def test_model_version_is_a_hashable_value_with_the_pinned_uri() -> None:
    """ModelVersion is a frozen value: hashable (tags excluded) and comparable."""
    mv = version("7", tags={TAG: DIGEST})
    assert hash(mv) == hash(replace(mv, tags={}))
    assert mv.uri == "models:/fraud/7"
