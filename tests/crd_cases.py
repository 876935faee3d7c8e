"""ModelRelease objects the API must accept or refuse, shared by the pydantic tests (tests/unit) and the
admission tests against the real kube-apiserver (tests/integration/test_crd_admission.py), so both
tiers judge the very same objects."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, NamedTuple

from pydantic import ValidationError

from modelrelease.api.models import (
    API_VERSION,
    KIND,
    RELEASE_NAME_RULE,
    Condition,
    Current,
    HistoryEntry,
    ModelReleaseSpec,
    ModelReleaseStatus,
    Resolved,
    ServingSpec,
    VerificationEntry,
    release_name_problem,
)

DIGEST = "sha256:" + "ab" * 32


def spec(**sections: Any) -> dict[str, Any]:
    """A valid spec (alias champion) with `sections` replacing top-level parts."""
    return {"model": {"name": "fraud", "alias": "champion"}, **sections}


def release(body: dict[str, Any], name: str = "fraud") -> dict[str, Any]:
    """A whole ModelRelease object with this spec."""
    return {"apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": name}, "spec": body}


def dump(model: ModelReleaseSpec | ModelReleaseStatus) -> dict[str, Any]:
    """The model as the operator writes it (camelCase, unset fields left out)."""
    return model.model_dump(by_alias=True, exclude_none=True, mode="json")


def pydantic_accepts(body: dict[str, Any]) -> bool:
    """Whether the operator's models accept this whole release (its spec and its name)."""
    try:
        parsed = ModelReleaseSpec.model_validate(body["spec"])
    except ValidationError:
        return False
    return release_name_problem(body["metadata"]["name"], parsed) is None


# ------------------------------------------------------------------------------------------ bad specs


class BadSpec(NamedTuple):
    id: str
    body: dict[str, Any]
    pydantic: str
    """A part of pydantic's error."""
    server: str
    """A part of the real kube-apiserver's answer to `kubectl apply` (fieldValidation=Strict)."""
    code: int = 422
    """422 Invalid; 400 BadRequest for a field the schema does not know (strict decoding)."""


def _pattern(field: str) -> str:
    return f"{field} in body should match '"


BAD_SPECS: list[BadSpec] = [
    BadSpec(
        "no reference",
        {"model": {"name": "fraud"}},
        "exactly one of spec.model.version",
        "spec.model: Invalid value: exactly one of spec.model.version",
    ),
    BadSpec(
        "two references",
        {"model": {"name": "fraud", "version": "1", "alias": "a"}},
        "exactly one of",
        "spec.model: Invalid value: exactly one of",
    ),
    BadSpec(
        "three references",
        {"model": {"name": "f", "version": "1", "alias": "a", "stage": "Staging"}},
        "exactly one",
        "spec.model: Invalid value: exactly one of",
    ),
    BadSpec("no model", {}, "model", "spec.model: Required value"),
    BadSpec(
        "empty name",
        {"model": {"name": "", "version": "1"}},
        "name",
        "spec.model.name in body should be at least 1 chars long",
    ),
    BadSpec("slash in name", {"model": {"name": "a/b", "version": "1"}}, "name", _pattern("spec.model.name")),
    BadSpec(
        "long name",
        {"model": {"name": "m" * 257, "version": "1"}},
        "name",
        "spec.model.name: Too long: may not be more than 256 bytes",
    ),
    BadSpec(
        "version as int",
        {"model": {"name": "f", "version": 7}},
        "version",
        "spec.model.version in body must be of type string",
    ),
    BadSpec(
        "version as URI",
        {"model": {"name": "f", "version": "models:/f/versions/7"}},
        "version",
        _pattern("spec.model.version"),
    ),
    BadSpec(
        "version zero", {"model": {"name": "f", "version": "0"}}, "version", _pattern("spec.model.version")
    ),
    BadSpec(
        "alias latest",
        {"model": {"name": "f", "alias": "Latest"}},
        "MLflow reserves",
        "spec.model: Invalid value: spec.model.alias must not be 'latest' or 'v<N>'",
    ),
    BadSpec(
        "alias v3",
        {"model": {"name": "f", "alias": "v3"}},
        "MLflow reserves",
        "spec.model: Invalid value: spec.model.alias must not be 'latest' or 'v<N>'",
    ),
    BadSpec(
        "alias with dot", {"model": {"name": "f", "alias": "a.b"}}, "alias", _pattern("spec.model.alias")
    ),
    BadSpec(
        "unknown stage",
        {"model": {"name": "f", "stage": "None"}},
        "stage",
        'spec.model.stage: Unsupported value: "None": supported values: "Staging", "Production"',
    ),
    BadSpec(
        "short digest",
        {"model": {"name": "f", "version": "1", "digest": "sha256:abc"}},
        "digest",
        _pattern("spec.model.digest"),
    ),
    BadSpec(
        "upper-case digest",
        {"model": {"name": "f", "version": "1", "digest": DIGEST.upper()}},
        "digest",
        _pattern("spec.model.digest"),
    ),
    BadSpec("unknown field", spec(extra=1), "extra", 'unknown field "spec.extra"', 400),
    BadSpec(
        "unknown model field",
        {"model": {"name": "f", "version": "1", "uri": "x"}},
        "uri",
        'unknown field "spec.model.uri"',
        400,
    ),
    BadSpec(
        "poll 1s",
        spec(registry={"pollInterval": "1s"}),
        "between 5s and 24h",
        "spec.registry: Invalid value: spec.registry.pollInterval must be between 5s and 24h",
    ),
    BadSpec(
        "poll 4999ms",
        spec(registry={"pollInterval": "4999ms"}),
        "between 5s and 24h",
        "spec.registry: Invalid value: spec.registry.pollInterval must be between 5s and 24h",
    ),
    BadSpec(
        "poll 25h",
        spec(registry={"pollInterval": "25h"}),
        "between 5s and 24h",
        "spec.registry: Invalid value: spec.registry.pollInterval must be between 5s and 24h",
    ),
    # Go's time.ParseDuration, behind the CEL rule's duration(), truncates a fraction to whole nanoseconds:
    # this is 4.999999999s there, and the model reads it the same way.
    BadSpec(
        "poll 4999.9999999999999ms",
        spec(registry={"pollInterval": "4999.9999999999999ms"}),
        "between 5s and 24h",
        "spec.registry: Invalid value: spec.registry.pollInterval must be between 5s and 24h",
    ),
    BadSpec(
        "poll no unit",
        spec(registry={"pollInterval": "60"}),
        "pollInterval",
        _pattern("spec.registry.pollInterval"),
    ),
    BadSpec(
        "poll spaces",
        spec(registry={"pollInterval": "1h 30m"}),
        "pollInterval",
        _pattern("spec.registry.pollInterval"),
    ),
    BadSpec(
        "ftp tracking",
        spec(registry={"trackingUri": "ftp://x"}),
        "trackingUri",
        _pattern("spec.registry.trackingUri"),
    ),
    BadSpec(
        "secret name",
        spec(registry={"credentialsSecret": "Not_A_Name"}),
        "credentialsSecret",
        _pattern("spec.registry.credentialsSecret"),
    ),
    BadSpec(
        "bad mode",
        spec(verify={"digest": "Sometimes"}),
        "digest",
        'spec.verify.digest: Unsupported value: "Sometimes"',
    ),
    BadSpec(
        "bad smokeTest mode",
        spec(rollout={"smokeTest": "Always"}),
        "smokeTest",
        'spec.rollout.smokeTest: Unsupported value: "Always"',
    ),
    BadSpec(
        "smokeTest as boolean",
        spec(rollout={"smokeTest": False}),
        "smokeTest",
        "spec.rollout.smokeTest in body must be of type string",
    ),
    BadSpec(
        "gate without bounds",
        spec(verify={"metrics": [{"name": "f1"}]}),
        "needs min or max",
        "spec.verify.metrics[0]: Invalid value: a metric gate in spec.verify.metrics needs min or max",
    ),
    BadSpec(
        "gate min > max",
        spec(verify={"metrics": [{"name": "f1", "min": 0.9, "max": 0.8}]}),
        "less than or equal",
        "spec.verify.metrics[0]: Invalid value: spec.verify.metrics: min must be less than or equal to max",
    ),
    BadSpec(
        "duplicate gates",
        spec(verify={"metrics": [{"name": "f1", "min": 0}, {"name": "f1", "max": 1}]}),
        "duplicate",
        'spec.verify.metrics[1]: Duplicate value: {"name":"f1"}',
    ),
    BadSpec(
        "replicas -1",
        spec(serving={"replicas": -1}),
        "replicas",
        "spec.serving.replicas in body should be greater than or equal to 0",
    ),
    # JSON types: the API server refuses what pydantic's lax mode would coerce ("2" to 2, True to 1).
    BadSpec(
        "replicas as string",
        spec(serving={"replicas": "2"}),
        "'2' is a string, not a number",
        "spec.serving.replicas in body must be of type integer",
    ),
    BadSpec(
        "replicas as boolean",
        spec(serving={"replicas": True}),
        "True is a boolean, not a number",
        "spec.serving.replicas in body must be of type integer",
    ),
    BadSpec(
        "historyLimit as string",
        spec(rollout={"historyLimit": "5"}),
        "'5' is a string, not a number",
        "spec.rollout.historyLimit in body must be of type integer",
    ),
    BadSpec(
        "autoRollback as string",
        spec(rollout={"autoRollback": "true"}),
        "Input should be a valid boolean",
        "spec.rollout.autoRollback in body must be of type boolean",
    ),
    BadSpec(
        "requireReady as 1",
        spec(verify={"requireReady": 1}),
        "Input should be a valid boolean",
        "spec.verify.requireReady in body must be of type boolean",
    ),
    BadSpec(
        "gate bound as string",
        spec(verify={"metrics": [{"name": "f1", "min": "0.5"}]}),
        "'0.5' is a string, not a number",
        "spec.verify.metrics[0].min in body must be of type number",
    ),
    BadSpec(
        "quantity as boolean",
        spec(serving={"resources": {"limits": {"cpu": True}}}),
        "True is a boolean, not a number",
        "spec.serving.resources.limits.cpu in body must be of type integer,string",
    ),
    BadSpec(
        "tolerationSeconds as string",
        spec(serving={"tolerations": [{"operator": "Exists", "tolerationSeconds": "5"}]}),
        "'5' is a string, not a number",
        "spec.serving.tolerations[0].tolerationSeconds in body must be of type integer",
    ),
    BadSpec(
        "replicas 1001",
        spec(serving={"replicas": 1001}),
        "replicas",
        "spec.serving.replicas in body should be less than or equal to 1000",
    ),
    BadSpec(
        "port 0",
        spec(serving={"port": 0}),
        "port",
        "spec.serving.port in body should be greater than or equal to 1",
    ),
    BadSpec(
        "port 65536",
        spec(serving={"port": 65536}),
        "port",
        "spec.serving.port in body should be less than or equal to 65535",
    ),
    BadSpec(
        "deadline 9",
        spec(rollout={"progressDeadlineSeconds": 9}),
        "progressDeadlineSeconds",
        "spec.rollout.progressDeadlineSeconds in body should be greater than or equal to 10",
    ),
    BadSpec(
        "deadline 86401",
        spec(rollout={"progressDeadlineSeconds": 86401}),
        "progressDeadlineSeconds",
        "spec.rollout.progressDeadlineSeconds in body should be less than or equal to 86400",
    ),
    BadSpec(
        "history 0",
        spec(rollout={"historyLimit": 0}),
        "historyLimit",
        "spec.rollout.historyLimit in body should be greater than or equal to 1",
    ),
    BadSpec(
        "history 101",
        spec(rollout={"historyLimit": 101}),
        "historyLimit",
        "spec.rollout.historyLimit in body should be less than or equal to 100",
    ),
    BadSpec(
        "targetRef + image",
        spec(serving={"targetRef": {"name": "d"}, "image": "x"}),
        "targetRef excludes image",
        "spec.serving: Invalid value: spec.serving.targetRef excludes image, replicas, env",
    ),
    # The API server's one message names every excluded field; pydantic names the ones given.
    BadSpec(
        "targetRef + replicas",
        spec(serving={"targetRef": {"name": "d"}, "replicas": 2}),
        "excludes replicas",
        "spec.serving: Invalid value: spec.serving.targetRef excludes image, replicas, env",
    ),
    BadSpec(
        "targetRef + env",
        spec(serving={"targetRef": {"name": "d"}, "env": [{"name": "A"}]}),
        "excludes env",
        "spec.serving: Invalid value: spec.serving.targetRef excludes image, replicas, env",
    ),
    BadSpec(
        "targetRef + template",
        spec(serving={"targetRef": {"name": "d"}, "template": {"metadata": {"labels": {"a": "b"}}}}),
        "excludes template",
        "spec.serving: Invalid value: spec.serving.targetRef excludes image, replicas, env, resources, "
        "template",
    ),
    BadSpec(
        "targetRef bad name",
        spec(serving={"targetRef": {"name": "Bad_Name"}}),
        "name",
        _pattern("spec.serving.targetRef.name"),
    ),
    BadSpec(
        "env MODEL_URI",
        spec(serving={"env": [{"name": "MODEL_URI", "value": "x"}]}),
        "must not set MODEL_URI",
        "spec.serving: Invalid value: spec.serving.env must not set MODEL_URI",
    ),
    BadSpec(
        "env value and valueFrom",
        spec(serving={"env": [{"name": "A", "value": "1", "valueFrom": {"fieldRef": {}}}]}),
        "not both",
        "spec.serving: Invalid value: spec.serving.env: set value or valueFrom, not both",
    ),
    BadSpec(
        "duplicate env",
        spec(serving={"env": [{"name": "A", "value": "1"}, {"name": "A"}]}),
        "duplicate A",
        'spec.serving.env[1]: Duplicate value: {"name":"A"}',
    ),
    BadSpec(
        "env without name",
        spec(serving={"env": [{"value": "1"}]}),
        "name",
        "spec.serving.env[0].name: Required value",
    ),
    BadSpec(
        "env unknown key",
        spec(serving={"env": [{"name": "A", "valu": "1"}]}),
        "valu",
        'unknown field "spec.serving.env[0].valu"',
        400,
    ),
    BadSpec(
        "reserved label",
        spec(serving={"template": {"metadata": {"labels": {"modelrelease.io/x": "1"}}}}),
        "operator",
        "spec.serving.template.metadata: Invalid value: spec.serving.template.metadata.labels: keys under "
        "modelrelease.io/ are the operator's",
    ),
    BadSpec(
        "reserved annotation",
        spec(serving={"template": {"metadata": {"annotations": {"modelrelease.io/version": "1"}}}}),
        "operator",
        "spec.serving.template.metadata: Invalid value: spec.serving.template.metadata.annotations: keys "
        "under modelrelease.io/ are the operator's",
    ),
    BadSpec(
        "float quantity",
        spec(serving={"resources": {"requests": {"cpu": 0.5}}}),
        "cpu",
        "spec.serving.resources.requests.cpu in body must be of type integer,string",
    ),
    BadSpec(
        "unknown resources key",
        spec(serving={"resources": {"request": {}}}),
        "request",
        'unknown field "spec.serving.resources.request"',
        400,
    ),
    BadSpec(
        "bad toleration effect",
        spec(serving={"tolerations": [{"effect": "Sometimes"}]}),
        "effect",
        'spec.serving.tolerations[0].effect: Unsupported value: "Sometimes"',
    ),
]

# Every field of the spec set, the way a user might write it (quantities as strings and integers, a
# free-form valueFrom, an affinity): it must survive pydantic and the API server unchanged.
FULL_SPEC = spec(
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
    rollout={"progressDeadlineSeconds": 120, "autoRollback": False, "historyLimit": 5, "smokeTest": "Warn"},
)

# ------------------------------------------------------------------------------------------ CEL rules

ONE_REF = (
    "exactly one of spec.model.version, spec.model.alias, spec.model.stage or spec.model.latestApproved "
    "must be set"
)
SM_ALIAS = (
    "spec.model.alias is not supported with spec.registry.type sagemaker: use version or latestApproved"
)
SM_STAGE = (
    "spec.model.stage is not supported with spec.registry.type sagemaker: use version or latestApproved"
)
SM_TRACKING = (
    "spec.registry.trackingUri is not supported with spec.registry.type sagemaker: "
    "the region and the AWS endpoint say where it is"
)
SM_SECRET = (
    "spec.registry.credentialsSecret is not supported with spec.registry.type sagemaker: "
    "AWS credentials come from the operator's credential chain"
)
LATEST_APPROVED = (
    "spec.model.latestApproved needs spec.registry.type sagemaker (with MLflow, follow an alias)"
)
SAGEMAKER = {"type": "sagemaker"}
RESERVED_ALIAS = "spec.model.alias must not be 'latest' or 'v<N>': MLflow reserves those names"
POLL = "spec.registry.pollInterval must be between 5s and 24h"
GATE_BOUND = "a metric gate in spec.verify.metrics needs min or max"
GATE_ORDER = "spec.verify.metrics: min must be less than or equal to max"
LABELS = "spec.serving.template.metadata.labels: keys under modelrelease.io/ are the operator's"
ANNOTATIONS = "spec.serving.template.metadata.annotations: keys under modelrelease.io/ are the operator's"
TARGET_REF = ServingSpec.cel_rules[0].message
MODEL_URI = "spec.serving.env must not set MODEL_URI: the operator sets it to the pinned model URI"
ENV_SOURCE = "spec.serving.env: set value or valueFrom, not both"
RELEASE_NAME = RELEASE_NAME_RULE.message
SIGNERS = "spec.verify.signersConfigMap is required when spec.verify.signature is Enforce or Warn"
REVERIFY = "spec.verify.reverifyInterval must be at least 30s"

SHAPING_VALUES: dict[str, Any] = {
    "image": "serve:1",
    "replicas": 0,
    "env": [{"name": "A", "value": "1"}],
    "resources": {"requests": {"cpu": "1"}},
    "template": {"metadata": {"annotations": {"a": "b"}}},
    "serviceAccountName": "sa",
    "nodeSelector": {"pool": "gpu"},
    "tolerations": [{"operator": "Exists"}],
    "affinity": {"nodeAffinity": {}},
}
EMPTY_SHAPING = {
    "env": [],
    "resources": {},
    "nodeSelector": {},
    "tolerations": [],
    "affinity": {},
    "template": {"metadata": {"labels": {}, "annotations": {}}},
}


class RuleCases(NamedTuple):
    path: str
    """The schema node the rule sits on ("" for the root, `[]` for a list's items)."""
    good: list[Any]
    """Values of `self` there that pass every check."""
    bad: list[Any]
    """Values of `self` there that break this rule and nothing else."""


def embed(path: str, value: Any) -> dict[str, Any]:
    """A release valid but for `value` at the schema node `path` (a list node holds just `value`);
    at the root `value` is the whole release."""
    if path == "":
        whole: dict[str, Any] = value
        return whole
    body = release({"model": {"name": "fraud", "version": "1"}})
    *parents, last = path.split(".")
    node = body
    for part in parents:
        node = node.setdefault(part, {})
    if last.endswith("[]"):
        node[last.removesuffix("[]")] = [value]
    else:
        node[last] = value
    return body


CASES: dict[str, RuleCases] = {
    ONE_REF: RuleCases(
        "spec.model",
        [{"name": "f", "version": "1"}, {"name": "f", "alias": "a"}, {"name": "f", "stage": "Staging"}],
        [
            {"name": "f"},
            {"name": "f", "version": "1", "alias": "a"},
            {"name": "f", "version": "1", "stage": "Production"},
            {"name": "f", "alias": "a", "stage": "Staging"},
            {"name": "f", "version": "1", "alias": "a", "stage": "Staging"},
        ],
    ),
    SM_ALIAS: RuleCases(
        "spec",
        [spec(registry={"type": "mlflow"}), spec(registry=SAGEMAKER, model={"name": "g", "version": "3"})],
        [spec(registry=SAGEMAKER)],
    ),
    SM_STAGE: RuleCases(
        "spec",
        [spec(model={"name": "g", "stage": "Staging"})],
        [spec(registry=SAGEMAKER, model={"name": "g", "stage": "Staging"})],
    ),
    LATEST_APPROVED: RuleCases(
        "spec",
        [
            spec(registry={**SAGEMAKER, "region": "eu-west-1"}, model={"name": "g", "latestApproved": True}),
            spec(registry=SAGEMAKER, model={"name": "g", "version": "2", "latestApproved": False}),
        ],
        [
            spec(model={"name": "g", "latestApproved": True}),
            spec(registry={"type": "mlflow"}, model={"name": "g", "version": "2", "latestApproved": False}),
        ],
    ),
    SM_TRACKING: RuleCases(
        "spec.registry",
        [{"trackingUri": "http://mlflow:5000"}, SAGEMAKER],
        [{**SAGEMAKER, "trackingUri": "http://mlflow:5000"}],
    ),
    SM_SECRET: RuleCases(
        "spec.registry",
        [{"credentialsSecret": "auth"}, {**SAGEMAKER, "region": "us-east-1"}],
        [{**SAGEMAKER, "credentialsSecret": "auth"}],
    ),
    RESERVED_ALIAS: RuleCases(
        "spec.model",
        [{"name": "f", "alias": a} for a in ("champion", "v1x", "latest2", "vv1")]
        + [{"name": "f", "version": "1"}],
        [{"name": "f", "alias": a} for a in ("latest", "LaTeSt", "v1", "V12")],
    ),
    POLL: RuleCases(
        "spec.registry",
        [
            {},
            *(
                {"pollInterval": p}
                for p in ("5s", "5000ms", "24h", "1h30m", "0.5m", "23h59m60s", "4.99999999999999999999s")
            ),
        ],
        [
            {"pollInterval": p}
            for p in ("4s", "4999ms", "0.08m", "24h1s", "25h", "0s", "4999.9999999999999ms")
        ],
    ),
    GATE_BOUND: RuleCases(
        "spec.verify.metrics[]",
        [{"name": "f1", "min": 0.5}, {"name": "f1", "max": 0}, {"name": "f1", "min": 0, "max": 1}],
        [{"name": "f1"}],
    ),
    GATE_ORDER: RuleCases(
        "spec.verify.metrics[]",
        [
            {"name": "f1", **bounds}
            for bounds in (
                {"min": 0.5, "max": 0.5},
                {"min": 1, "max": 1.5},
                {"min": -2.5, "max": 3},
                {"min": 7},
                {"max": 7},
            )
        ],
        [
            {"name": "f1", **bounds}
            for bounds in ({"min": 0.9, "max": 0.8}, {"min": 2, "max": 1}, {"min": 1.5, "max": 1})
        ],
    ),
    LABELS: RuleCases(
        "spec.serving.template.metadata",
        [{}, {"labels": {"team": "risk"}}, {"labels": {"x.modelrelease.io/y": "1"}}, {"annotations": {}}],
        [{"labels": {"team": "risk", "modelrelease.io/release": "x"}}],
    ),
    ANNOTATIONS: RuleCases(
        "spec.serving.template.metadata",
        [
            {},
            {"annotations": {"prometheus.io/scrape": "true"}},
            {"annotations": {"x.modelrelease.io/y": "1"}},
        ],
        [{"annotations": {"modelrelease.io/version": "1"}}],
    ),
    TARGET_REF: RuleCases(
        "spec.serving",
        [
            {"targetRef": {"name": "d"}},
            {"targetRef": {"name": "d"}, "port": 8080, **EMPTY_SHAPING},
            {"targetRef": {"name": "d"}, "template": {}},
            {"targetRef": {"name": "d"}, "template": {"metadata": {}}},
            {"port": 8080, **SHAPING_VALUES},
        ],
        [{"targetRef": {"name": "d"}, field: value} for field, value in SHAPING_VALUES.items()],
    ),
    MODEL_URI: RuleCases(
        "spec.serving",
        [{}, {"env": []}, {"env": [{"name": "MODEL"}, {"name": "MODEL_URI_EXTRA"}]}],
        [{"env": [{"name": "A"}, {"name": "MODEL_URI", "value": "models:/x/1"}]}],
    ),
    ENV_SOURCE: RuleCases(
        "spec.serving",
        [
            {},
            {
                "env": [
                    {"name": "A", "value": "1"},
                    {"name": "B", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                    {"name": "C"},
                ]
            },
        ],
        [{"env": [{"name": "A", "value": "1", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]}],
    ),
    SIGNERS: RuleCases(
        "spec.verify",
        [
            {},
            {"signature": "Off"},
            {"signature": "Enforce", "signersConfigMap": "s"},
            {"signersConfigMap": "s"},
        ],
        [{"signature": "Enforce"}, {"signature": "Warn", "metrics": []}],
    ),
    REVERIFY: RuleCases(
        "spec.verify",
        [{}, *({"reverifyInterval": d} for d in ("30s", "30000ms", "0.5m", "24h", "168h", "1h30m"))],
        [{"reverifyInterval": d} for d in ("29s", "29999ms", "0.49m", "0s", "10ms")],
    ),
    RELEASE_NAME: RuleCases(
        "",
        [
            release({"model": {"name": "m", "version": "1"}, "serving": {}}, "fraud"),
            release({"model": {"name": "m", "version": "1"}}, "a" * 63),
            release(
                {"model": {"name": "m", "version": "1"}, "serving": {"targetRef": {"name": "d"}}}, "fraud.v2"
            ),
            release(
                {"model": {"name": "m", "version": "1"}, "serving": {"targetRef": {"name": "d"}}}, "9-lives"
            ),
        ],
        [
            release({"model": {"name": "m", "version": "1"}, "serving": {}}, "fraud.v2"),
            release({"model": {"name": "m", "version": "1"}}, "9-lives"),
            release({"model": {"name": "m", "version": "1"}, "serving": {"port": 80}}, "a" * 64),
            # (A name ending in '-' is no object name at all: metadata validation refuses it as well.)
            release({"model": {"name": "m", "version": "1"}}, "7"),
        ],
    ),
}

# A release broken in one way per spec, and the one rule it must be refused by.
WHOLE_OBJECTS_BREAKING_ONE_RULE: list[tuple[dict[str, Any], str]] = [
    ({"model": {"name": "m"}}, ONE_REF),
    ({"model": {"name": "m", "alias": "latest"}}, RESERVED_ALIAS),
    ({"model": {"name": "m", "version": "1"}, "registry": {"pollInterval": "1s"}}, POLL),
    ({"model": {"name": "m", "version": "1"}, "verify": {"metrics": [{"name": "f1"}]}}, GATE_BOUND),
    (
        {"model": {"name": "m", "version": "1"}, "serving": {"targetRef": {"name": "d"}, "image": "i"}},
        TARGET_REF,
    ),
]

# --------------------------------------------------------------------------------------------- status

NOW = datetime(2026, 12, 1, 7, 0, 5, 123456, tzinfo=UTC)


def full_status() -> ModelReleaseStatus:
    """A status with every kind of entry the operator writes."""
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
            VerificationEntry(check="Digest", outcome="Passed", reason="DigestMatches", version="5"),
            VerificationEntry(
                check="SmokeTest",
                outcome="Failed",
                reason="1 of 1 pods refused the serving input example: pod fraud-5-x: 127.1.0.9: HTTP 400",
                version="5",
            ),
        ],
    )


# Statuses the operator's model refuses, with what the real API server says of each.
BAD_STATUSES: list[tuple[dict[str, Any], str]] = [
    ({"phase": "Sleeping"}, 'status.phase: Unsupported value: "Sleeping"'),
    (
        {"conditions": [{"type": "Ready", "status": "Maybe"}]},
        'status.conditions[0].status: Unsupported value: "Maybe"',
    ),
    (
        {"conditions": [{"type": "Ready", "status": "True"}, {"type": "Ready", "status": "False"}]},
        'status.conditions[1]: Duplicate value: {"type":"Ready"}',
    ),
    # The server's words for a list item's pattern: "conditions[0].reason in body should match", not
    # "status.conditions[0].reason in body ..." (the full path comes before the colon).
    (
        {"conditions": [{"type": "Ready", "status": "True", "reason": "not camel case"}]},
        'status.conditions[0].reason: Invalid value: "not camel case": '
        "conditions[0].reason in body should match",
    ),
    (
        {"history": [{"version": "1", "modelUri": "m", "outcome": "Exploded"}]},
        'status.history[0].outcome: Unsupported value: "Exploded"',
    ),
    (
        {"verification": [{"check": "Digest", "outcome": "Passed", "reason": "a"}] * 2},
        'status.verification[1]: Duplicate value: {"check":"Digest"}',
    ),
    (
        {"verification": [{"check": "Vibes", "outcome": "Passed", "reason": "a"}]},
        'status.verification[0].check: Unsupported value: "Vibes"',
    ),
    ({"resolved": {"version": "7"}}, "status.resolved.modelUri: Required value"),
]
# A status field the schema does not declare: pydantic refuses it, the API server prunes it.
UNKNOWN_STATUS_FIELD: dict[str, Any] = {"kopf": {"progress": {}}}
