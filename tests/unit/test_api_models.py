"""The ModelRelease pydantic models: what they accept, refuse, default and how they serialise.

What the real API server makes of the same objects is tests/integration/test_crd_admission.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from crd_cases import (
    BAD_SPECS,
    BAD_STATUSES,
    DIGEST,
    FULL_SPEC,
    UNKNOWN_STATUS_FIELD,
    BadSpec,
    dump,
    full_status,
    spec,
)
from modelrelease.api.models import (
    Current,
    MetricGate,
    ModelRef,
    ModelReleaseSpec,
    ModelReleaseStatus,
    parse_duration,
    parse_model_uri,
    pinned_uri,
    release_name_problem,
)

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("modelrelease*.yaml"))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_examples_are_valid_releases(path: Path) -> None:
    body = yaml.safe_load(path.read_text())
    parsed = ModelReleaseSpec.model_validate(body["spec"])
    assert release_name_problem(body["metadata"]["name"], parsed) is None


def test_examples_cover_both_serving_modes() -> None:
    modes = {
        ModelReleaseSpec.model_validate(yaml.safe_load(p.read_text())["spec"]).serving.managed
        for p in EXAMPLES
    }
    assert modes == {True, False}


def test_defaults_of_a_minimal_spec() -> None:
    parsed = ModelReleaseSpec.model_validate({"model": {"name": "fraud", "version": "7"}})
    assert dump(parsed) == {
        "model": {"name": "fraud", "version": "7"},
        "registry": {"type": "mlflow", "pollInterval": "60s"},
        "verify": {
            "requireReady": True,
            "digest": "Enforce",
            "digestTag": "modelrelease.io/sha256",
            "metrics": [],
            "metricsMode": "Enforce",
            "schema": "Enforce",
            "signature": "Off",
            "reverifyInterval": "24h",
        },
        "serving": {
            "port": 8080,
            "env": [],
            "resources": {},
            "template": {"metadata": {"labels": {}, "annotations": {}}},
            "nodeSelector": {},
            "tolerations": [],
            "affinity": {},
        },
        "rollout": {
            "progressDeadlineSeconds": 600,
            "autoRollback": True,
            "historyLimit": 10,
            "smokeTest": "Enforce",
        },
    }
    assert parsed.serving.replicas is None
    assert parsed.serving.managed
    assert parsed.registry.poll_interval_seconds == 60.0


def test_camel_case_on_the_wire_snake_case_in_python() -> None:
    parsed = ModelReleaseSpec.model_validate(
        spec(
            registry={"trackingUri": "https://mlflow.example:5000", "credentialsSecret": "mlflow-auth"},
            verify={"schema": "Warn", "metricsMode": "Off", "digestTag": "sha"},
            rollout={"progressDeadlineSeconds": 30, "autoRollback": False, "historyLimit": 3},
            serving={"serviceAccountName": "model-sa", "nodeSelector": {"pool": "gpu"}},
        )
    )
    assert parsed.registry.tracking_uri == "https://mlflow.example:5000"
    assert parsed.registry.credentials_secret == "mlflow-auth"
    assert (parsed.verify.schema_, parsed.verify.metrics_mode, parsed.verify.digest_tag) == (
        "Warn",
        "Off",
        "sha",
    )
    assert (parsed.rollout.progress_deadline_seconds, parsed.rollout.auto_rollback) == (30, False)
    assert parsed.serving.service_account_name == "model-sa"


def test_python_names_are_accepted_too() -> None:
    parsed = ModelReleaseSpec.model_validate(
        spec(verify={"schema_": "Off", "metrics_mode": "Warn"}, rollout={"history_limit": 5})
    )
    assert (parsed.verify.schema_, parsed.verify.metrics_mode, parsed.rollout.history_limit) == (
        "Off",
        "Warn",
        5,
    )


def test_round_trip_keeps_every_field() -> None:
    parsed = ModelReleaseSpec.model_validate(FULL_SPEC)
    again = ModelReleaseSpec.model_validate(dump(parsed))
    assert again == parsed
    out = dump(parsed)
    assert out["serving"]["env"][1]["valueFrom"] == {"secretKeyRef": {"name": "s", "key": "k"}}
    assert out["serving"]["resources"]["requests"] == {"cpu": "500m", "memory": 536870912}
    assert out["verify"]["metrics"][1] == {"name": "latency_ms", "max": 40.0}


@pytest.mark.parametrize("bad", BAD_SPECS, ids=[bad.id for bad in BAD_SPECS])
def test_bad_specs_are_refused_with_a_message(bad: BadSpec) -> None:
    with pytest.raises(ValidationError) as error:
        ModelReleaseSpec.model_validate(bad.body)
    assert bad.pydantic in str(error.value)


@pytest.mark.parametrize(
    "body",
    [
        spec(
            serving={"replicas": 2.0}
        ),  # a JSON number with no fraction is an integer, as for the API server
        spec(serving={"resources": {"limits": {"cpu": 1.0}}}),
        spec(verify={"metrics": [{"name": "f1", "min": 1, "max": 2}]}),
    ],
    ids=str,
)
def test_json_numbers_are_accepted_as_the_api_server_types_them(body: dict[str, Any]) -> None:
    ModelReleaseSpec.model_validate(body)


def test_target_ref_mode_accepts_empty_collections_and_port() -> None:
    parsed = ModelReleaseSpec.model_validate(
        spec(
            serving={
                "targetRef": {"name": "d", "container": "server"},
                "env": [],
                "resources": {},
                "port": 80,
            }
        )
    )
    assert not parsed.serving.managed
    assert parsed.serving.target_ref is not None and parsed.serving.target_ref.container == "server"


@pytest.mark.parametrize(
    ("ref", "expected", "display", "floating"),
    [
        ({"version": "7"}, ("version", "7"), "version=7", False),
        ({"alias": "champion"}, ("alias", "champion"), "alias=champion", True),
        ({"stage": "Production"}, ("stage", "Production"), "stage=Production", True),
    ],
)
def test_reference_helpers(
    ref: dict[str, str], expected: tuple[str, str], display: str, floating: bool
) -> None:
    model = ModelRef.model_validate({"name": "fraud", **ref})
    assert model.reference == expected
    assert model.display_ref == display
    assert model.floating is floating
    assert model.pinned_version == ref.get("version")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("60s", 60),
        ("5m", 300),
        ("1h30m", 5400),
        ("1.5h", 5400),
        ("500ms", 0.5),
        ("1m30s", 90),
        ("2h0m5s", 7205),
        # As Go's time.ParseDuration reads them (the CEL rule's duration()): fractions truncated per part to
        # whole nanoseconds, precision kept while the digits fit in 64 bits.
        ("4999.9999999999999ms", 4.999999999),
        ("4.99999999999999999999s", 5),
        ("0.0000000019s", 0.000000001),
        ("2562047h", 2562047 * 3600),
    ],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "text", ["", "60", "s", "1d", "-5s", "1h 30m", "1.s", " 5s", "2562048h", "9" * 20 + "ms"]
)
def test_parse_duration_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("uri", "parsed"),
    [
        ("models:/fraud/7", ("fraud", "version", "7")),
        ("models:/fraud/versions/7", ("fraud", "version", "7")),
        ("models:/fraud@champion", ("fraud", "alias", "champion")),
        ("models:/fraud/Production", ("fraud", "stage", "Production")),
        ("models:/fraud/staging", ("fraud", "stage", "Staging")),
    ],
)
def test_parse_model_uri(uri: str, parsed: tuple[str, str, str]) -> None:
    assert parse_model_uri(uri) == parsed


@pytest.mark.parametrize(
    "uri",
    ["runs:/abc/model", "models:/fraud", "models:/fraud/versions/x", "models:/fraud/latest", "models:/a/b/7"],
)
def test_parse_model_uri_refuses(uri: str) -> None:
    with pytest.raises(ValueError, match="invalid model URI"):
        parse_model_uri(uri)


def test_pinned_uri_is_the_loadable_form() -> None:
    assert pinned_uri("fraud", "7") == "models:/fraud/7"
    assert parse_model_uri(pinned_uri("fraud", "7")) == ("fraud", "version", "7")


def test_metric_gate_bounds_are_inclusive() -> None:
    gate = MetricGate(name="f1", min=0.78, max=0.99)
    assert gate.admits(0.78) and gate.admits(0.99)
    assert not gate.admits(0.7799) and not gate.admits(0.991)
    assert MetricGate(name="loss", max=1.0).admits(-5)


@pytest.mark.parametrize(
    ("name", "serving", "ok"),
    [
        ("fraud", {}, True),
        ("a" * 63, {}, True),
        ("a" * 64, {}, False),
        ("9fraud", {}, False),
        ("fraud.v2", {}, False),
        ("fraud.v2", {"targetRef": {"name": "d"}}, True),
    ],
)
def test_release_name_problem(name: str, serving: dict[str, Any], ok: bool) -> None:
    parsed = ModelReleaseSpec.model_validate(spec(serving=serving))
    assert (release_name_problem(name, parsed) is None) is ok


def test_status_serialises_like_kubernetes() -> None:
    out = dump(full_status())
    assert out["observedGeneration"] == 3
    assert out["conditions"][0]["lastTransitionTime"] == "2026-12-01T07:00:05Z"
    assert out["current"] == {
        "version": "2",
        "modelUri": "models:/fraud/2",
        "digest": DIGEST,
        "since": "2026-12-01T07:00:05Z",
    }
    assert out["history"][1] == {
        "version": "5",
        "modelUri": "models:/fraud/5",
        "outcome": "RolledBack",
        "reason": "ProgressDeadlineExceeded",
    }
    assert "finishedAt" not in out["history"][1]


def test_status_round_trip() -> None:
    status = full_status()
    assert ModelReleaseStatus.model_validate(dump(status)) == status


def test_timestamps_are_utc_whole_seconds() -> None:
    east = timezone(timedelta(hours=2))
    current = Current(
        version="1", model_uri="models:/f/1", since=datetime(2026, 1, 1, 2, 0, 0, 999, tzinfo=east)
    )
    assert current.since == datetime(2026, 1, 1, 0, 0, 0, tzinfo=UTC)
    assert (
        Current.model_validate({"version": "1", "modelUri": "models:/f/1", "since": "2026-01-01T00:00:00Z"})
        == current
    )


def test_naive_timestamps_are_refused() -> None:
    with pytest.raises(ValidationError, match="timezone"):
        Current(version="1", model_uri="models:/f/1", since=datetime(2026, 1, 1))


@pytest.mark.parametrize("body", [body for body, _ in BAD_STATUSES] + [UNKNOWN_STATUS_FIELD], ids=str)
def test_bad_status_is_refused(body: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        ModelReleaseStatus.model_validate(body)
