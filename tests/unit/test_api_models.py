"""The ModelRelease pydantic models: what they accept, refuse, default and how they serialise."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml
from crd_walk import load_manifest, root_schema
from pydantic import ValidationError

from modelrelease.api.models import (
    Condition,
    Current,
    HistoryEntry,
    MetricGate,
    ModelRef,
    ModelReleaseSpec,
    ModelReleaseStatus,
    Resolved,
    VerificationEntry,
    parse_duration,
    parse_model_uri,
    pinned_uri,
    release_name_problem,
)
from modelrelease.sandbox.apiserver.schema import prune_and_default, validate

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("modelrelease*.yaml"))
DIGEST = "sha256:" + "ab" * 32


def spec(**sections: Any) -> dict[str, Any]:
    """A valid spec (alias champion) with `sections` replacing top-level parts."""
    return {"model": {"name": "fraud", "alias": "champion"}, **sections}


SCHEMA = root_schema(load_manifest())


def api_server_errors(body: dict[str, Any]) -> list[str]:
    """What the API server (the sandbox's, with the generated CRD) says to `kubectl apply` of this spec:
    unknown fields are errors, as with kubectl's default --validate=strict."""
    obj = {"apiVersion": "modelrelease.io/v1alpha1", "kind": "ModelRelease", "metadata": {"name": "fraud"}}
    stored, pruned = prune_and_default(SCHEMA, {**obj, "spec": body})
    return [f"{path}: unknown field" for path in pruned] + [
        error.message for error in validate(SCHEMA, stored)
    ]


def dump(model: ModelReleaseSpec | ModelReleaseStatus) -> dict[str, Any]:
    return model.model_dump(by_alias=True, exclude_none=True, mode="json")


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
        "registry": {"pollInterval": "60s"},
        "verify": {
            "requireReady": True,
            "digest": "Enforce",
            "digestTag": "modelrelease.io/sha256",
            "metrics": [],
            "metricsMode": "Enforce",
            "schema": "Enforce",
            "signature": "Off",
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
        "rollout": {"progressDeadlineSeconds": 600, "autoRollback": True, "historyLimit": 10},
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
    full = spec(
        model={"name": "fraud detector.v2", "alias": "champion", "digest": DIGEST},
        registry={
            "trackingUri": "http://mlflow.mlflow:5000",
            "credentialsSecret": "auth",
            "pollInterval": "1h30m",
        },
        verify={
            "metrics": [{"name": "f1", "min": 0.78}, {"name": "latency_ms", "max": 40}],
            "digest": "Warn",
        },
        serving={
            "replicas": 0,
            "image": "registry.example/serve:1",
            "port": 9000,
            "env": [
                {"name": "A", "value": "1"},
                {"name": "B", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
            ],
            "resources": {"requests": {"cpu": "500m", "memory": 536870912}, "limits": {"nvidia.com/gpu": 1}},
            "template": {"metadata": {"labels": {"team": "risk"}, "annotations": {"a/b": "c"}}},
            "tolerations": [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}],
            "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {}}},
        },
    )
    parsed = ModelReleaseSpec.model_validate(full)
    again = ModelReleaseSpec.model_validate(dump(parsed))
    assert again == parsed
    assert api_server_errors(full) == api_server_errors(dump(parsed)) == []
    out = dump(parsed)
    assert out["serving"]["env"][1]["valueFrom"] == {"secretKeyRef": {"name": "s", "key": "k"}}
    assert out["serving"]["resources"]["requests"] == {"cpu": "500m", "memory": 536870912}
    assert out["verify"]["metrics"][1] == {"name": "latency_ms", "max": 40.0}


BAD_SPECS: list[tuple[str, dict[str, Any], str]] = [
    ("no reference", {"model": {"name": "fraud"}}, "exactly one of spec.model.version"),
    ("two references", {"model": {"name": "fraud", "version": "1", "alias": "a"}}, "exactly one of"),
    (
        "three references",
        {"model": {"name": "f", "version": "1", "alias": "a", "stage": "Staging"}},
        "exactly one",
    ),
    ("no model", {}, "model"),
    ("empty name", {"model": {"name": "", "version": "1"}}, "name"),
    ("slash in name", {"model": {"name": "a/b", "version": "1"}}, "name"),
    ("long name", {"model": {"name": "m" * 257, "version": "1"}}, "name"),
    ("version as int", {"model": {"name": "f", "version": 7}}, "version"),
    ("version as URI", {"model": {"name": "f", "version": "models:/f/versions/7"}}, "version"),
    ("version zero", {"model": {"name": "f", "version": "0"}}, "version"),
    ("alias latest", {"model": {"name": "f", "alias": "Latest"}}, "MLflow reserves"),
    ("alias v3", {"model": {"name": "f", "alias": "v3"}}, "MLflow reserves"),
    ("alias with dot", {"model": {"name": "f", "alias": "a.b"}}, "alias"),
    ("unknown stage", {"model": {"name": "f", "stage": "None"}}, "stage"),
    ("short digest", {"model": {"name": "f", "version": "1", "digest": "sha256:abc"}}, "digest"),
    ("upper-case digest", {"model": {"name": "f", "version": "1", "digest": DIGEST.upper()}}, "digest"),
    ("unknown field", spec(extra=1), "extra"),
    ("unknown model field", {"model": {"name": "f", "version": "1", "uri": "x"}}, "uri"),
    ("poll 1s", spec(registry={"pollInterval": "1s"}), "between 5s and 24h"),
    ("poll 4999ms", spec(registry={"pollInterval": "4999ms"}), "between 5s and 24h"),
    ("poll 25h", spec(registry={"pollInterval": "25h"}), "between 5s and 24h"),
    ("poll no unit", spec(registry={"pollInterval": "60"}), "pollInterval"),
    ("poll spaces", spec(registry={"pollInterval": "1h 30m"}), "pollInterval"),
    ("ftp tracking", spec(registry={"trackingUri": "ftp://x"}), "trackingUri"),
    ("secret name", spec(registry={"credentialsSecret": "Not_A_Name"}), "credentialsSecret"),
    ("bad mode", spec(verify={"digest": "Sometimes"}), "digest"),
    ("gate without bounds", spec(verify={"metrics": [{"name": "f1"}]}), "needs min or max"),
    (
        "gate min > max",
        spec(verify={"metrics": [{"name": "f1", "min": 0.9, "max": 0.8}]}),
        "less than or equal",
    ),
    (
        "duplicate gates",
        spec(verify={"metrics": [{"name": "f1", "min": 0}, {"name": "f1", "max": 1}]}),
        "duplicate",
    ),
    ("replicas -1", spec(serving={"replicas": -1}), "replicas"),
    ("replicas 1001", spec(serving={"replicas": 1001}), "replicas"),
    ("port 0", spec(serving={"port": 0}), "port"),
    ("port 65536", spec(serving={"port": 65536}), "port"),
    ("deadline 9", spec(rollout={"progressDeadlineSeconds": 9}), "progressDeadlineSeconds"),
    ("deadline 86401", spec(rollout={"progressDeadlineSeconds": 86401}), "progressDeadlineSeconds"),
    ("history 0", spec(rollout={"historyLimit": 0}), "historyLimit"),
    ("history 101", spec(rollout={"historyLimit": 101}), "historyLimit"),
    (
        "targetRef + image",
        spec(serving={"targetRef": {"name": "d"}, "image": "x"}),
        "targetRef excludes image",
    ),
    ("targetRef + replicas", spec(serving={"targetRef": {"name": "d"}, "replicas": 2}), "excludes replicas"),
    ("targetRef + env", spec(serving={"targetRef": {"name": "d"}, "env": [{"name": "A"}]}), "excludes env"),
    (
        "targetRef + template",
        spec(serving={"targetRef": {"name": "d"}, "template": {"metadata": {"labels": {"a": "b"}}}}),
        "excludes template",
    ),
    ("targetRef bad name", spec(serving={"targetRef": {"name": "Bad_Name"}}), "name"),
    ("env MODEL_URI", spec(serving={"env": [{"name": "MODEL_URI", "value": "x"}]}), "must not set MODEL_URI"),
    (
        "env value and valueFrom",
        spec(serving={"env": [{"name": "A", "value": "1", "valueFrom": {"fieldRef": {}}}]}),
        "not both",
    ),
    ("duplicate env", spec(serving={"env": [{"name": "A", "value": "1"}, {"name": "A"}]}), "duplicate A"),
    ("env without name", spec(serving={"env": [{"value": "1"}]}), "name"),
    ("env unknown key", spec(serving={"env": [{"name": "A", "valu": "1"}]}), "valu"),
    (
        "reserved label",
        spec(serving={"template": {"metadata": {"labels": {"modelrelease.io/x": "1"}}}}),
        "operator",
    ),
    (
        "reserved annotation",
        spec(serving={"template": {"metadata": {"annotations": {"modelrelease.io/version": "1"}}}}),
        "operator",
    ),
    ("float quantity", spec(serving={"resources": {"requests": {"cpu": 0.5}}}), "cpu"),
    ("unknown resources key", spec(serving={"resources": {"request": {}}}), "request"),
    ("bad toleration effect", spec(serving={"tolerations": [{"effect": "Sometimes"}]}), "effect"),
]


@pytest.mark.parametrize(
    ("body", "message"), [(b, m) for _, b, m in BAD_SPECS], ids=[i for i, _, _ in BAD_SPECS]
)
def test_bad_specs_are_refused_with_a_message(body: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as error:
        ModelReleaseSpec.model_validate(body)
    assert message in str(error.value)


@pytest.mark.parametrize("body", [b for _, b, _ in BAD_SPECS], ids=[i for i, _, _ in BAD_SPECS])
def test_the_api_server_refuses_them_too(body: dict[str, Any]) -> None:
    assert api_server_errors(body) != []


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_the_api_server_accepts_the_examples_and_their_round_trip(path: Path) -> None:
    body = yaml.safe_load(path.read_text())["spec"]
    assert api_server_errors(body) == []
    assert api_server_errors(dump(ModelReleaseSpec.model_validate(body))) == []


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
    ],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "60", "s", "1d", "-5s", "1h 30m", "1.s", " 5s"])
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


NOW = datetime(2026, 12, 1, 7, 0, 5, 123456, tzinfo=UTC)


def full_status() -> ModelReleaseStatus:
    return ModelReleaseStatus(
        observed_generation=3,
        phase="Degraded",
        conditions=[
            Condition(type="Ready", status="True", reason="RolloutComplete", last_transition_time=NOW),
            Condition(
                type="Degraded",
                status="True",
                reason="RolledBack",
                message="v5 crashed",
                observed_generation=3,
            ),
        ],
        resolved=Resolved(
            version="5", model_uri="models:/fraud/5", run_id="r1", resolved_at=NOW, alias="champion"
        ),
        current=Current(version="2", model_uri="models:/fraud/2", digest=DIGEST, since=NOW),
        history=[
            HistoryEntry(
                version="2", model_uri="models:/fraud/2", outcome="Succeeded", started_at=NOW, finished_at=NOW
            ),
            HistoryEntry(
                version="5",
                model_uri="models:/fraud/5",
                outcome="RolledBack",
                reason="ProgressDeadlineExceeded",
            ),
        ],
        verification=[
            VerificationEntry(check="Digest", outcome="Passed", reason="DigestMatches", version="5")
        ],
    )


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


def test_the_api_server_accepts_the_status_the_operator_writes() -> None:
    obj = {
        "apiVersion": "modelrelease.io/v1alpha1",
        "kind": "ModelRelease",
        "metadata": {"name": "fraud"},
        "spec": {"model": {"name": "fraud", "alias": "champion"}},
        "status": dump(full_status()),
    }
    stored, pruned = prune_and_default(SCHEMA, obj)
    assert pruned == []
    assert stored["status"] == obj["status"]
    assert validate(SCHEMA, stored) == []


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


@pytest.mark.parametrize(
    "body",
    [
        {"phase": "Sleeping"},
        {"conditions": [{"type": "Ready", "status": "Maybe"}]},
        {"conditions": [{"type": "Ready", "status": "True"}, {"type": "Ready", "status": "False"}]},
        {"conditions": [{"type": "Ready", "status": "True", "reason": "not camel case"}]},
        {"history": [{"version": "1", "modelUri": "m", "outcome": "Exploded"}]},
        {"verification": [{"check": "Digest", "outcome": "Passed", "reason": "a"}] * 2},
        {"verification": [{"check": "Vibes", "outcome": "Passed", "reason": "a"}]},
        {"resolved": {"version": "7"}},
        {"kopf": {"progress": {}}},
    ],
)
def test_bad_status_is_refused(body: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        ModelReleaseStatus.model_validate(body)
