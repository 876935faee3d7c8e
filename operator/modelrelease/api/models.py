"""The ModelRelease API (group modelrelease.io, version v1alpha1): spec and status as pydantic models.

These models are the one source of truth: `modelrelease.api.crd` generates the CustomResourceDefinition
from them, including the field descriptions `kubectl explain` shows (taken from the attribute
docstrings below) and the CEL rules declared in `x-kubernetes-validations` next to each model. Every
CEL rule has a pydantic validator that says the same thing, so the operator refuses exactly what the
API server refuses; tests check that the two agree.

Attributes are snake_case in Python and camelCase on the wire. Parse a spec with
`ModelReleaseSpec.model_validate(body["spec"])`; serialise with
`model_dump(by_alias=True, exclude_none=True, mode="json")`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Literal, NotRequired

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    StrictBool,
    WithJsonSchema,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic.json_schema import JsonDict
from typing_extensions import TypedDict

GROUP = "modelrelease.io"
VERSION = "v1alpha1"
KIND = "ModelRelease"
PLURAL = "modelreleases"
SINGULAR = "modelrelease"
SHORT_NAMES = ("mr",)
API_VERSION = f"{GROUP}/{VERSION}"

# Prefix of the labels and annotations the operator itself writes on pod templates.
OPERATOR_KEY_PREFIX = "modelrelease.io/"
# The env var the operator sets on the serving container to the pinned model URI.
MODEL_URI_ENV = "MODEL_URI"
# The env var the operator sets to the verified artifact digest; `modelrelease serve` checks it at load.
MODEL_DIGEST_ENV = "MODEL_DIGEST"

Mode = Literal["Enforce", "Warn", "Off"]
Stage = Literal["Staging", "Production"]
RegistryType = Literal["mlflow", "sagemaker"]
"""The registry backends: each is the module `modelrelease.registry.<type>` (see registry/factory.py)."""
ReferenceKind = Literal["version", "alias", "stage", "latestApproved"]
Phase = Literal["Pending", "Progressing", "Ready", "Blocked", "Degraded", "Failed"]
ConditionType = Literal["Resolved", "Verified", "Progressing", "Ready", "Degraded"]
ConditionStatus = Literal["True", "False", "Unknown"]
HistoryOutcome = Literal["Succeeded", "Failed", "RolledBack", "Blocked"]
CheckName = Literal["RegistryReady", "Metrics", "Digest", "Signature", "Schema", "SmokeTest"]
CheckOutcome = Literal["Passed", "Failed", "Skipped", "Warned"]

# Patterns are written for both Python `re` and Go RE2 (the API server's engine): no look-arounds, and no
# \s, \d or \w, which RE2 reads as ASCII classes and Python and pydantic (Rust regex) as Unicode ones.
_SPACE = r"\t\n\f\r "  # RE2's \s
MODEL_NAME_PATTERN = rf"^[^/:@{_SPACE}]([^/:@]*[^/:@{_SPACE}])?$"
VERSION_PATTERN = r"^[1-9][0-9]{0,17}$"
ALIAS_PATTERN = r"^[A-Za-z0-9_-]+$"
DIGEST_PATTERN = r"^sha256:[0-9a-f]{64}$"
DURATION_PATTERN = r"^([0-9]+([.][0-9]+)?(ms|s|m|h))+$"
TRACKING_URI_PATTERN = rf"^https?://[^{_SPACE}]+$"
DNS_SUBDOMAIN_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
REASON_PATTERN = r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"

_ONE_REFERENCE = (
    "exactly one of spec.model.version, spec.model.alias, spec.model.stage or spec.model.latestApproved "
    "must be set"
)
_SAGEMAKER = "(has(self.registry.type) && self.registry.type == 'sagemaker')"
_NOT_FOR_SAGEMAKER = "{field} is not supported with spec.registry.type sagemaker{hint}"
_NO_ALIAS_ON_SAGEMAKER = _NOT_FOR_SAGEMAKER.format(
    field="spec.model.alias", hint=": use version or latestApproved"
)
_NO_STAGE_ON_SAGEMAKER = _NOT_FOR_SAGEMAKER.format(
    field="spec.model.stage", hint=": use version or latestApproved"
)
_NO_TRACKING_URI_ON_SAGEMAKER = _NOT_FOR_SAGEMAKER.format(
    field="spec.registry.trackingUri", hint=": the region and the AWS endpoint say where it is"
)
_NO_SECRET_ON_SAGEMAKER = _NOT_FOR_SAGEMAKER.format(
    field="spec.registry.credentialsSecret",
    hint=": AWS credentials come from the operator's credential chain",
)
_LATEST_APPROVED_NEEDS_SAGEMAKER = (
    "spec.model.latestApproved needs spec.registry.type sagemaker (with MLflow, follow an alias)"
)
REGION_PATTERN = r"^[a-z]{2}(-[a-z]+)+-[1-9][0-9]?$"
_RESERVED_ALIAS = "spec.model.alias must not be 'latest' or 'v<N>': MLflow reserves those names"
_GATE_NEEDS_BOUND = "a metric gate in spec.verify.metrics needs min or max"
_NO_MODEL_URI_ENV = (
    f"spec.serving.env must not set {MODEL_URI_ENV}: the operator sets it to the pinned model URI"
)
_POLL_INTERVAL_BOUNDS = "spec.registry.pollInterval must be between 5s and 24h"
_SIGNERS_REQUIRED = "spec.verify.signersConfigMap is required when spec.verify.signature is Enforce or Warn"
_REVERIFY_BOUND = "spec.verify.reverifyInterval must be at least 30s"
MIN_REVERIFY_INTERVAL_SECONDS = 30.0

MIN_POLL_INTERVAL_SECONDS = 5.0
MAX_POLL_INTERVAL_SECONDS = 86400.0

_DURATION_RE = re.compile(DURATION_PATTERN)
_DURATION_PART_RE = re.compile(r"([0-9]+)(?:[.]([0-9]+))?(ms|s|m|h)")
_UNIT_NANOSECONDS = {"ms": 10**6, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9}
_MAX_NANOSECONDS = 2**63 - 1
# Alias names MLflow reserves: `latest` in any case, and `v<N>` (it means version N).
RESERVED_ALIAS_PATTERN = r"^([Ll][Aa][Tt][Ee][Ss][Tt]|[vV][0-9]+)$"
_RESERVED_ALIAS_RE = re.compile(RESERVED_ALIAS_PATTERN)
_MODEL_URI_RE = re.compile(
    r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<versions>versions/)?(?P<tail>[^/]+))$"
)
_STAGES: dict[str, Stage] = {"staging": "Staging", "production": "Production"}


def _fraction(digits: str) -> tuple[int, float]:
    """Go's leadingFraction: the digits as an integer and its scale, precision kept while it fits int64."""
    value, scale = 0, 1.0
    for digit in digits:
        candidate = value * 10 + int(digit)
        if value > _MAX_NANOSECONDS // 10 or candidate > _MAX_NANOSECONDS + 1:
            break
        value, scale = candidate, scale * 10
    return value, scale


def duration_nanoseconds(text: str) -> int:
    """Whole nanoseconds in a duration such as `60s`, `1h30m` or `1.5h`, computed as Go's
    time.ParseDuration does (the API server's CEL duration()): a fraction's value is truncated to whole
    nanoseconds per part, so `4999.9999999999999ms` is less than 5s there and here."""
    if not _DURATION_RE.match(text):
        raise ValueError(f"invalid duration {text!r}: use numbers with units ms, s, m or h, e.g. 60s, 1h30m")
    total = 0
    for whole, fraction, unit in _DURATION_PART_RE.findall(text):
        per_unit = _UNIT_NANOSECONDS[unit]
        value = int(whole) * per_unit
        if fraction:
            digits, scale = _fraction(fraction)
            value += int(float(digits) * (float(per_unit) / scale))
        total += value
        if total > _MAX_NANOSECONDS:
            raise ValueError(f"invalid duration {text!r}: out of range")
    return total


def parse_duration(text: str) -> float:
    """Seconds in a duration such as `60s`, `5m`, `1h30m`, `1.5h` or `500ms` (Go's syntax, subset)."""
    return duration_nanoseconds(text) / 1e9


def pinned_uri(name: str, version: str) -> str:
    """The loadable pinned form `models:/<name>/<N>` (MLflow 3 rejects `models:/<name>/versions/<N>`)."""
    return f"models:/{name}/{version}"


def parse_model_uri(uri: str) -> tuple[str, ReferenceKind, str]:
    """Split a `models:/` URI into (name, kind, value).

    Accepts `models:/name/7`, the `models:/name/versions/7` spelling, `models:/name@alias` and
    `models:/name/Production` (stage names case-insensitive); raises ValueError for anything else.
    """
    match = _MODEL_URI_RE.match(uri)
    if match is None:
        raise ValueError(f"invalid model URI {uri!r}: expected models:/<name>/<N> or models:/<name>@<alias>")
    name = match["name"]
    if match["alias"] is not None:
        return name, "alias", match["alias"]
    tail = match["tail"]
    if re.match(VERSION_PATTERN, tail):
        return name, "version", tail
    if match["versions"] is None and tail.lower() in _STAGES:
        return name, "stage", _STAGES[tail.lower()]
    raise ValueError(f"invalid model URI {uri!r}: {tail!r} is neither a version number nor a stage")


def _aware_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("timestamp must carry a timezone (use datetime.now(UTC))")
    return value.astimezone(UTC).replace(microsecond=0)


def _rfc3339(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


# A point in time: timezone-aware, whole seconds, written `2026-01-02T03:04:05Z` as Kubernetes does.
Timestamp = Annotated[
    datetime, AfterValidator(_aware_utc), PlainSerializer(_rfc3339, return_type=str, when_used="json")
]


def _no_operator_keys(value: dict[str, str]) -> dict[str, str]:
    reserved = sorted(key for key in value if key.startswith(OPERATOR_KEY_PREFIX))
    if reserved:
        raise ValueError(f"keys under {OPERATOR_KEY_PREFIX} are set by the operator: {', '.join(reserved)}")
    return value


def _no_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is a boolean, not a number")  # pydantic would read True as 1
    return value


def _json_number(value: Any) -> Any:
    """What JSON Schema's number and integer types admit: pydantic reads "2" as 2, the API server does not."""
    if isinstance(value, str):
        raise ValueError(f"{value!r} is a string, not a number")
    return _no_bool(value)


# The spec's numbers as the API server types them (an integral float such as 2.0 is an integer there too).
JsonInt = Annotated[int, BeforeValidator(_json_number)]
JsonFloat = Annotated[float, BeforeValidator(_json_number)]


@dataclass(frozen=True)
class CelRule:
    """A rule the API server enforces (`x-kubernetes-validations`); the model checks the same in Python."""

    rule: str
    message: str


def _unique(values: list[str], what: str) -> None:
    duplicates = sorted({value for value in values if values.count(value) > 1})
    if duplicates:
        raise ValueError(f"{what}: duplicate {', '.join(duplicates)}")


def _schema_with_cel_rules(schema: JsonDict, model_class: type) -> None:
    rules: tuple[CelRule, ...] = getattr(model_class, "cel_rules", ())
    if rules:
        schema["x-kubernetes-validations"] = [{"rule": r.rule, "message": r.message} for r in rules]


def _unset(field: str) -> str:
    """CEL: list or map `self.<field>` is absent or empty (empty counts as not set, as in pydantic)."""
    return f"(!has(self.{field}) || size(self.{field}) == 0)"


def _no_fields(field: str, typed: type) -> str:
    """CEL: object `self.<field>` is absent or sets none of its fields. (In Kubernetes CEL an object with
    declared properties is not a map, so size() does not apply to it.)"""
    inner = " && ".join(f"!has(self.{field}.{name})" for name in typed.__annotations__)
    return f"(!has(self.{field}) || ({inner}))"


class ApiModel(BaseModel):
    """Base of every API model: camelCase on the wire, unknown fields refused."""

    model_config = ConfigDict(
        populate_by_name=True,
        extra="forbid",
        alias_generator=to_camel,
        use_attribute_docstrings=True,
        protected_namespaces=(),
        json_schema_extra=_schema_with_cel_rules,
    )

    cel_rules: ClassVar[tuple[CelRule, ...]] = ()


# ----------------------------------------------------------------------------------------------- spec


class ModelRef(ApiModel):
    """Which registered model version should serve: exactly one of version, alias, stage or
    latestApproved."""

    cel_rules = (
        CelRule(
            "(has(self.version) ? 1 : 0) + (has(self.alias) ? 1 : 0) + (has(self.stage) ? 1 : 0) + "
            "(has(self.latestApproved) && self.latestApproved ? 1 : 0) == 1",
            _ONE_REFERENCE,
        ),
        CelRule(
            f"!has(self.alias) || !self.alias.matches('{RESERVED_ALIAS_PATTERN}')",
            _RESERVED_ALIAS,
        ),
    )

    name: str = Field(min_length=1, max_length=256, pattern=MODEL_NAME_PATTERN)
    """Registered model name in the registry, e.g. `fraud-detector` (no '/', ':' or '@')."""
    version: str | None = Field(default=None, pattern=VERSION_PATTERN)
    """Pin one model version by number, written as a string of digits: `"7"`. Not a URI: the operator
    builds the pinned URI `models:/<name>/<version>` itself."""
    alias: str | None = Field(default=None, min_length=1, max_length=255, pattern=ALIAS_PATTERN)
    """Follow a registry alias such as `champion`; re-resolved every registry.pollInterval, and the
    Deployment is moved when the alias moves (after verification)."""
    stage: Stage | None = None
    """Follow the latest version in a registry stage (Staging or Production). Deprecated by MLflow
    since 2.9; accepted with a warning in status. Prefer alias."""
    latest_approved: StrictBool | None = None
    """SageMaker only: follow the newest version of the model package group whose ModelApprovalStatus is
    Approved; re-resolved every registry.pollInterval."""
    digest: str | None = Field(default=None, pattern=DIGEST_PATTERN)
    """Expected artifact digest `sha256:<64 hex>` (see `modelrelease digest`). When set, it overrides
    the version tag named by verify.digestTag; the strongest check."""

    @model_validator(mode="after")
    def _reference_rules(self) -> ModelRef:
        given = [kind for kind in ("version", "alias", "stage") if getattr(self, kind) is not None]
        if self.latest_approved:
            given.append("latestApproved")
        if len(given) != 1:
            raise ValueError(_ONE_REFERENCE)
        if self.alias is not None and _RESERVED_ALIAS_RE.match(self.alias):
            raise ValueError(_RESERVED_ALIAS)
        return self

    @property
    def reference(self) -> tuple[ReferenceKind, str]:
        """The one reference given: ("version", "7"), ("alias", "champion") or ("stage", "Production")."""
        if self.version is not None:
            return "version", self.version
        if self.alias is not None:
            return "alias", self.alias
        if self.stage is not None:
            return "stage", self.stage
        return "latestApproved", "true"  # the one left, by _reference_rules

    @property
    def pinned_version(self) -> str | None:
        """The version number when the reference is a pinned version, else None."""
        return self.version

    @property
    def floating(self) -> bool:
        """Whether the reference can move (alias, stage, latestApproved): re-resolved every poll interval."""
        return self.version is None

    @property
    def display_ref(self) -> str:
        """The reference as shown in `kubectl get mr` (status.resolved.ref): `alias=champion`, `version=7`."""
        kind, value = self.reference
        return f"{kind}={value}"


class RegistrySpec(ApiModel):
    """Which model registry, where it is, and how often floating references are re-resolved."""

    cel_rules = (
        CelRule(
            f"!has(self.pollInterval) || !self.pollInterval.matches('{DURATION_PATTERN}') || "
            "(duration(self.pollInterval) >= duration('5s') && "
            "duration(self.pollInterval) <= duration('24h'))",
            _POLL_INTERVAL_BOUNDS,
        ),
        CelRule(
            "!has(self.type) || self.type != 'sagemaker' || !has(self.trackingUri)",
            _NO_TRACKING_URI_ON_SAGEMAKER,
        ),
        CelRule(
            "!has(self.type) || self.type != 'sagemaker' || !has(self.credentialsSecret)",
            _NO_SECRET_ON_SAGEMAKER,
        ),
    )

    type: RegistryType = "mlflow"
    """The registry: `mlflow` (MLflow Model Registry) or `sagemaker` (Amazon SageMaker Model Registry,
    where spec.model.name is the model package group)."""
    region: str | None = Field(default=None, max_length=32, pattern=REGION_PATTERN)
    """SageMaker: the AWS region of the registry, e.g. `eu-west-1`; defaults to the operator's region
    (AWS_REGION / AWS_DEFAULT_REGION, as boto3 reads it)."""
    tracking_uri: str | None = Field(default=None, max_length=2048, pattern=TRACKING_URI_PATTERN)
    """MLflow tracking server URL (http or https), e.g. `http://mlflow.mlflow:5000`. Defaults to the
    operator-wide MODELRELEASE_DEFAULT_TRACKING_URI; must match the operator's allowlist."""
    credentials_secret: str | None = Field(default=None, max_length=253, pattern=DNS_SUBDOMAIN_PATTERN)
    """Name of a Secret in this namespace holding registry credentials: keys `username` and `password`
    (basic auth) or `token` (bearer)."""
    poll_interval: str = Field(default="60s", max_length=32, pattern=DURATION_PATTERN)
    """How often an alias or stage is re-resolved, e.g. `60s`, `5m`, `1h30m`; between 5s and 24h."""

    @model_validator(mode="after")
    def _poll_interval_bounds(self) -> RegistrySpec:
        nanoseconds = duration_nanoseconds(self.poll_interval)
        if not MIN_POLL_INTERVAL_SECONDS * 1e9 <= nanoseconds <= MAX_POLL_INTERVAL_SECONDS * 1e9:
            raise ValueError(_POLL_INTERVAL_BOUNDS)
        return self

    @model_validator(mode="after")
    def _sagemaker_fields(self) -> RegistrySpec:
        if self.type == "sagemaker" and self.tracking_uri is not None:
            raise ValueError(_NO_TRACKING_URI_ON_SAGEMAKER)
        if self.type == "sagemaker" and self.credentials_secret is not None:
            raise ValueError(_NO_SECRET_ON_SAGEMAKER)
        return self

    @property
    def poll_interval_seconds(self) -> float:
        return parse_duration(self.poll_interval)


class MetricGate(ApiModel):
    """A metric of the version's source run that must lie within [min, max]."""

    cel_rules = (
        CelRule("has(self.min) || has(self.max)", _GATE_NEEDS_BOUND),
        CelRule(
            "!has(self.min) || !has(self.max) || double(self.min) <= double(self.max)",
            "spec.verify.metrics: min must be less than or equal to max",
        ),
    )

    name: str = Field(min_length=1, max_length=250)
    """Metric key as logged to MLflow, e.g. `f1`."""
    min: JsonFloat | None = None
    """Lowest acceptable value (inclusive)."""
    max: JsonFloat | None = None
    """Highest acceptable value (inclusive)."""

    @model_validator(mode="after")
    def _bounds(self) -> MetricGate:
        if self.min is None and self.max is None:
            raise ValueError(_GATE_NEEDS_BOUND)
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError("spec.verify.metrics: min must be less than or equal to max")
        return self

    def admits(self, value: float) -> bool:
        """Whether `value` lies within the gate's bounds."""
        return (self.min is None or value >= self.min) and (self.max is None or value <= self.max)


class VerifySpec(ApiModel):
    """What must be true of a candidate version before it serves. Each check has a mode:
    Enforce blocks the rollout, Warn records the failure and proceeds, Off skips the check."""

    cel_rules = (
        CelRule(
            "!has(self.signature) || self.signature == 'Off' || has(self.signersConfigMap)", _SIGNERS_REQUIRED
        ),
        CelRule(
            f"!has(self.reverifyInterval) || !self.reverifyInterval.matches('{DURATION_PATTERN}') || "
            "duration(self.reverifyInterval) >= duration('30s')",
            _REVERIFY_BOUND,
        ),
    )

    require_ready: StrictBool = True
    """Require the registry status READY for the version."""
    digest: Mode = "Enforce"
    """Artifact digest check: SHA-256 of the artifact tree against model.digest or the digestTag tag."""
    digest_tag: str = Field(default="modelrelease.io/sha256", min_length=1, max_length=250)
    """Model version tag holding the expected digest (written by `modelrelease stamp`)."""
    metrics: list[MetricGate] = Field(default_factory=list, max_length=32)
    """Metric gates read from the version's source run, e.g. `{name: f1, min: 0.78}`; names unique."""
    metrics_mode: Mode = "Enforce"
    """Mode of the metric gates."""
    schema_: Mode = Field(default="Enforce", alias="schema")
    """Input-signature compatibility of the candidate with the version serving now."""
    signature: Mode = "Off"
    """OpenSSF model signature: `model.sig` at the artifact root (written by `modelrelease sign` or the
    model-signing tool) must be signed by a key of signersConfigMap over exactly the artifact's files."""
    signers_config_map: str | None = Field(default=None, max_length=253, pattern=DNS_SUBDOMAIN_PATTERN)
    """ConfigMap in this namespace whose every value is a trusted PEM EC public key (P-256, P-384 or
    P-521); a signature by any one of them is valid. Read at each verification, so edits apply at once."""
    reverify_interval: str = Field(default="24h", max_length=32, pattern=DURATION_PATTERN)
    """How often the serving version's bytes are hashed again and compared with the digest verified
    when it rolled out (a mismatch sets Degraded=True ServingArtifactChanged; the Deployment is left
    alone); also how long a computed digest is trusted. At least 30s, e.g. `24h`, `1h30m`."""

    @model_validator(mode="after")
    def _unique_metrics(self) -> VerifySpec:
        _unique([gate.name for gate in self.metrics], "spec.verify.metrics name")
        return self

    @model_validator(mode="after")
    def _signers_required(self) -> VerifySpec:
        if self.signature != "Off" and self.signers_config_map is None:
            raise ValueError(_SIGNERS_REQUIRED)
        return self

    @model_validator(mode="after")
    def _reverify_bound(self) -> VerifySpec:
        if parse_duration(self.reverify_interval) < MIN_REVERIFY_INTERVAL_SECONDS:
            raise ValueError(_REVERIFY_BOUND)
        return self

    @property
    def reverify_interval_seconds(self) -> float:
        return parse_duration(self.reverify_interval)


class EnvVar(TypedDict):
    """An environment variable of the serving container (as in a Pod spec)."""

    __pydantic_config__ = ConfigDict(extra="forbid", use_attribute_docstrings=True)  # type: ignore[misc]

    name: Annotated[str, Field(min_length=1, max_length=256)]
    """Variable name. MODEL_URI is set by the operator and cannot be given."""
    value: NotRequired[str]
    """Literal value."""
    valueFrom: NotRequired[dict[str, Any]]
    """Source of the value (secretKeyRef, configMapKeyRef, fieldRef, resourceFieldRef), as in a Pod."""


def _check_env_var(env: EnvVar) -> EnvVar:
    if env["name"] == MODEL_URI_ENV:
        raise ValueError(_NO_MODEL_URI_ENV)
    if "value" in env and "valueFrom" in env:
        raise ValueError(f"spec.serving.env {env['name']}: set value or valueFrom, not both")
    return env


EnvEntry = Annotated[EnvVar, AfterValidator(_check_env_var)]

# Kubernetes' resource.Quantity syntax without its leading '-': container resources must not be negative.
_DECIMAL = r"(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"
QUANTITY_PATTERN = rf"^\+?{_DECIMAL}(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?{_DECIMAL}))?$"
_QUANTITY_RE = re.compile(QUANTITY_PATTERN)


def _check_quantity(value: int | str) -> int | str:
    if (isinstance(value, str) and not _QUANTITY_RE.fullmatch(value)) or (
        isinstance(value, int) and value < 0
    ):
        raise ValueError(
            f"{value!r} is not a resource quantity: a non-negative number with an optional suffix, "
            "e.g. 500m, 2, 512Mi, 1.5Gi"
        )
    return value


# The API server refuses what the operator refuses (the pattern for strings, minimum for integers), so a
# bad quantity is caught at admission, naming the field, instead of when the Deployment is written.
Quantity = Annotated[
    int | str,
    BeforeValidator(_no_bool),
    AfterValidator(_check_quantity),
    WithJsonSchema({"x-kubernetes-int-or-string": True, "pattern": QUANTITY_PATTERN, "minimum": 0}),
]


class ResourceClaim(TypedDict):
    """A dynamic resource claim the container uses (as in a Pod)."""

    __pydantic_config__ = ConfigDict(extra="forbid", use_attribute_docstrings=True)  # type: ignore[misc]

    name: Annotated[str, Field(min_length=1, max_length=253)]
    """Name of an entry in the pod's resourceClaims."""
    request: NotRequired[str]
    """Request within that claim."""


class Resources(TypedDict, total=False):
    """Compute resources of the serving container, as in a Pod, e.g. `{requests: {cpu: 500m}}`."""

    __pydantic_config__ = ConfigDict(extra="forbid", use_attribute_docstrings=True)  # type: ignore[misc]

    limits: dict[str, Quantity]
    """Maximum resources, e.g. `{cpu: "1", memory: 1Gi}`."""
    requests: dict[str, Quantity]
    """Minimum resources the scheduler reserves, e.g. `{cpu: 500m, memory: 512Mi}`."""
    claims: list[ResourceClaim]
    """Dynamic resource claims (DRA)."""


class Toleration(TypedDict, total=False):
    """A toleration of the serving pods (as in a Pod)."""

    __pydantic_config__ = ConfigDict(extra="forbid", use_attribute_docstrings=True)  # type: ignore[misc]

    key: str
    """Taint key; empty with operator Exists matches every taint."""
    operator: Literal["Exists", "Equal"]
    """Exists or Equal (default Equal)."""
    value: str
    """Taint value to match with operator Equal."""
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"]
    """Taint effect to match; empty matches all effects."""
    tolerationSeconds: JsonInt
    """How long a NoExecute taint is tolerated before eviction."""


class Affinity(TypedDict, total=False):
    """Scheduling affinity of the serving pods, as in a Pod spec."""

    __pydantic_config__ = ConfigDict(extra="forbid", use_attribute_docstrings=True)  # type: ignore[misc]

    nodeAffinity: dict[str, Any]
    """Node affinity scheduling rules, as in a Pod spec."""
    podAffinity: dict[str, Any]
    """Pod affinity scheduling rules, as in a Pod spec."""
    podAntiAffinity: dict[str, Any]
    """Pod anti-affinity scheduling rules, as in a Pod spec."""


class TemplateMetadata(ApiModel):
    """Labels and annotations added to the serving pod template."""

    cel_rules = (
        CelRule(
            f"!has(self.labels) || self.labels.all(k, !k.startsWith('{OPERATOR_KEY_PREFIX}'))",
            f"spec.serving.template.metadata.labels: keys under {OPERATOR_KEY_PREFIX} are the operator's",
        ),
        CelRule(
            f"!has(self.annotations) || self.annotations.all(k, !k.startsWith('{OPERATOR_KEY_PREFIX}'))",
            "spec.serving.template.metadata.annotations: "
            f"keys under {OPERATOR_KEY_PREFIX} are the operator's",
        ),
    )

    labels: Annotated[dict[str, str], AfterValidator(_no_operator_keys)] = Field(
        default_factory=dict, max_length=64
    )
    """Pod labels (keys under modelrelease.io/ are reserved for the operator)."""
    annotations: Annotated[dict[str, str], AfterValidator(_no_operator_keys)] = Field(
        default_factory=dict, max_length=64
    )
    """Pod annotations, e.g. for a metrics scraper (keys under modelrelease.io/ are reserved)."""


class PodTemplate(ApiModel):
    """Additions to the serving Deployment's pod template."""

    metadata: TemplateMetadata = Field(default_factory=TemplateMetadata)
    """Pod labels and annotations."""

    @property
    def empty(self) -> bool:
        return not (self.metadata.labels or self.metadata.annotations)


class TargetRef(ApiModel):
    """An existing Deployment in this namespace whose serving container the operator repoints."""

    name: str = Field(min_length=1, max_length=253, pattern=DNS_SUBDOMAIN_PATTERN)
    """Deployment name."""
    container: str | None = Field(default=None, min_length=1, max_length=63, pattern=DNS_LABEL_PATTERN)
    """Container whose MODEL_URI env is set; defaults to the Deployment's only (or first) container."""


# Fields of ServingSpec that shape the pod the operator builds; meaningless with targetRef.
MANAGED_ONLY_FIELDS = (
    "image",
    "replicas",
    "env",
    "resources",
    "template",
    "serviceAccountName",
    "nodeSelector",
    "tolerations",
    "affinity",
)

_TEMPLATE_UNSET = (
    "(!has(self.template) || !has(self.template.metadata) || "
    "((!has(self.template.metadata.labels) || size(self.template.metadata.labels) == 0) && "
    "(!has(self.template.metadata.annotations) || size(self.template.metadata.annotations) == 0)))"
)


class ServingSpec(ApiModel):
    """How the model serves. Managed mode (the default): the operator owns a Deployment and a Service
    named after the release, built from these fields. With targetRef: the operator only sets the
    MODEL_URI env of one container (and pod-template annotations) on an existing Deployment, so the
    pod-shaping fields (image, replicas, env, resources, template, serviceAccountName, nodeSelector,
    tolerations, affinity) must be left unset."""

    cel_rules = (
        CelRule(
            "!has(self.targetRef) || "
            "(!has(self.image) && !has(self.replicas) && !has(self.serviceAccountName)"
            f" && {_unset('env')} && {_unset('nodeSelector')} && {_unset('tolerations')}"
            f" && {_no_fields('resources', Resources)} && {_no_fields('affinity', Affinity)}"
            f" && {_TEMPLATE_UNSET})",
            "spec.serving.targetRef excludes image, replicas, env, resources, template, serviceAccountName, "
            "nodeSelector, tolerations and affinity: those shape a managed Deployment",
        ),
        CelRule(
            f"!has(self.env) || !self.env.exists(e, has(e.name) && e.name == '{MODEL_URI_ENV}')",
            _NO_MODEL_URI_ENV,
        ),
        CelRule(
            "!has(self.env) || self.env.all(e, !has(e.value) || !has(e.valueFrom))",
            "spec.serving.env: set value or valueFrom, not both",
        ),
    )

    replicas: Annotated[int, Field(ge=0, le=1000), BeforeValidator(_json_number)] | None = None
    """Pod count of the managed Deployment; default 1. Left alone when an HPA targets the Deployment."""
    image: str | None = Field(default=None, min_length=1, max_length=1024)
    """Serving image. Default: the operator's MODELRELEASE_DEFAULT_IMAGE, run as `modelrelease serve
    --port <port>`, which refuses to serve bytes whose digest is not MODEL_DIGEST. Any other image runs
    `mlflow models serve -m $(MODEL_URI) -h 0.0.0.0 -p <port> --env-manager local`."""
    port: JsonInt = Field(default=8080, ge=1, le=65535)
    """Container and Service port of the model server (managed mode; ignored with targetRef)."""
    env: list[EnvEntry] = Field(default_factory=list, max_length=128)
    """Extra environment variables of the serving container."""
    resources: Resources = Field(default_factory=lambda: Resources())
    """Compute resources of the serving container."""
    template: PodTemplate = Field(default_factory=PodTemplate)
    """Pod template additions (metadata only)."""
    service_account_name: str | None = Field(default=None, max_length=253, pattern=DNS_SUBDOMAIN_PATTERN)
    """ServiceAccount the serving pods run as (e.g. one bound to object-store credentials)."""
    node_selector: dict[str, str] = Field(default_factory=dict, max_length=64)
    """Node labels the serving pods must match."""
    tolerations: list[Toleration] = Field(default_factory=list, max_length=64)
    """Tolerations of the serving pods."""
    affinity: Affinity = Field(default_factory=lambda: Affinity())
    """Affinity of the serving pods, as in a Pod spec (nodeAffinity, podAffinity, podAntiAffinity)."""
    target_ref: TargetRef | None = None
    """Repoint an existing Deployment instead of managing one (see the description of serving)."""

    @model_validator(mode="after")
    def _unique_env(self) -> ServingSpec:
        _unique([env["name"] for env in self.env], "spec.serving.env name")
        return self

    @model_validator(mode="after")
    def _target_ref_alone(self) -> ServingSpec:
        if self.target_ref is None:
            return self
        shaping = {
            "image": self.image is not None,
            "replicas": self.replicas is not None,
            "env": bool(self.env),
            "resources": bool(self.resources),
            "template": not self.template.empty,
            "serviceAccountName": self.service_account_name is not None,
            "nodeSelector": bool(self.node_selector),
            "tolerations": bool(self.tolerations),
            "affinity": bool(self.affinity),
        }
        given = [name for name, present in shaping.items() if present]
        if given:
            raise ValueError(
                f"spec.serving.targetRef excludes {', '.join(given)}: those shape a managed Deployment"
            )
        return self

    @property
    def managed(self) -> bool:
        """Whether the operator owns the Deployment (no targetRef)."""
        return self.target_ref is None


class RolloutSpec(ApiModel):
    """How a verified version is rolled out and what happens when the rollout fails."""

    progress_deadline_seconds: JsonInt = Field(default=600, ge=10, le=86400)
    """Seconds a rollout may take before it counts as failed (the Deployment's progressDeadlineSeconds)."""
    auto_rollback: StrictBool = True
    """On a failed rollout, roll back to the last version whose rollout succeeded."""
    history_limit: JsonInt = Field(default=10, ge=1, le=100)
    """How many entries status.history keeps (oldest dropped first)."""
    smoke_test: Mode = "Enforce"
    """Once the new pods are Ready, POST the version's logged serving input example
    (`serving_input_example.json`, saved by `log_model(input_example=...)`) to `/invocations` on each new
    pod's IP. Enforce: an answer other than HTTP 200 with one prediction per example row is a failed
    rollout (rolled back, reason SmokeTestFailed). Warn: recorded, the version serves anyway. Off: not
    sent. Skipped, with a reason, when the version logged no input example. The operator needs network
    access to the serving pods' port."""


class ModelReleaseSpec(ApiModel):
    """Which registered model version serves, what must be true before it does, and how it serves."""

    cel_rules = (
        CelRule(f"!has(self.registry) || !{_SAGEMAKER} || !has(self.model.alias)", _NO_ALIAS_ON_SAGEMAKER),
        CelRule(f"!has(self.registry) || !{_SAGEMAKER} || !has(self.model.stage)", _NO_STAGE_ON_SAGEMAKER),
        CelRule(
            f"!has(self.model.latestApproved) || (has(self.registry) && {_SAGEMAKER})",
            _LATEST_APPROVED_NEEDS_SAGEMAKER,
        ),
    )

    model: ModelRef
    """The registered model and the reference (version, alias or stage) that picks its version."""
    registry: RegistrySpec = Field(default_factory=RegistrySpec)
    """Model registry connection and polling."""
    verify: VerifySpec = Field(default_factory=VerifySpec)
    """Checks a candidate version must pass before it serves."""
    serving: ServingSpec = Field(default_factory=ServingSpec)
    """The Deployment that serves the model: managed by the operator, or an existing one via targetRef."""
    rollout: RolloutSpec = Field(default_factory=RolloutSpec)
    """Rollout deadline, automatic rollback and history length."""

    @model_validator(mode="after")
    def _references_of_the_registry(self) -> ModelReleaseSpec:
        sagemaker = self.registry.type == "sagemaker"
        if sagemaker and self.model.alias is not None:
            raise ValueError(_NO_ALIAS_ON_SAGEMAKER)
        if sagemaker and self.model.stage is not None:
            raise ValueError(_NO_STAGE_ON_SAGEMAKER)
        if not sagemaker and self.model.latest_approved is not None:
            raise ValueError(_LATEST_APPROVED_NEEDS_SAGEMAKER)
        return self


# --------------------------------------------------------------------------------------------- status


class Condition(ApiModel):
    """A condition of the release (Kubernetes convention)."""

    type: ConditionType
    """Resolved, Verified, Progressing, Ready or Degraded."""
    status: ConditionStatus
    """True, False or Unknown."""
    reason: str = Field(default="", max_length=1024, pattern=r"^$|" + REASON_PATTERN)
    """CamelCase reason, e.g. AliasResolved, MetricGateFailed, ProgressDeadlineExceeded."""
    message: str = Field(default="", max_length=32768)
    """One-line human-readable explanation."""
    last_transition_time: Timestamp | None = None
    """When status last changed."""
    observed_generation: int | None = Field(default=None, ge=0)
    """metadata.generation the condition was computed for."""


class Resolved(ApiModel):
    """The version the model reference resolved to most recently."""

    version: str = Field(pattern=VERSION_PATTERN)
    """Resolved version number."""
    model_uri: str = Field(max_length=512)
    """Pinned URI `models:/<name>/<version>`."""
    run_id: str | None = Field(default=None, max_length=256)
    """MLflow run that produced the version."""
    digest: str | None = Field(default=None, pattern=DIGEST_PATTERN)
    """Artifact digest of the version, once computed."""
    resolved_at: Timestamp | None = None
    """When the reference was last resolved."""
    alias: str | None = Field(default=None, max_length=255)
    """The alias it was resolved from, if any."""
    stage: str | None = Field(default=None, max_length=64)
    """The stage it was resolved from, if any."""
    ref: str | None = Field(default=None, max_length=300)
    """The reference as written, `alias=champion`, `version=7` or `stage=Production` (printer column)."""


class Current(ApiModel):
    """The version serving now."""

    version: str = Field(pattern=VERSION_PATTERN)
    """Serving version number."""
    model_uri: str = Field(max_length=512)
    """Pinned URI the serving pods load."""
    digest: str | None = Field(default=None, pattern=DIGEST_PATTERN)
    """Artifact digest of the serving version."""
    since: Timestamp | None = None
    """When its rollout completed."""


class HistoryEntry(ApiModel):
    """One rollout attempt (newest last)."""

    version: str = Field(pattern=VERSION_PATTERN)
    """Version number attempted."""
    model_uri: str = Field(max_length=512)
    """Pinned URI attempted."""
    digest: str | None = Field(default=None, pattern=DIGEST_PATTERN)
    """Artifact digest of the version."""
    started_at: Timestamp | None = None
    """When the attempt started (verification or rollout)."""
    finished_at: Timestamp | None = None
    """When it finished; unset while the rollout is in progress."""
    outcome: HistoryOutcome | None = None
    """Succeeded, Failed, RolledBack or Blocked (failed verification); unset while in progress."""
    reason: str | None = Field(default=None, max_length=1024)
    """Why it ended so, e.g. ProgressDeadlineExceeded or MetricGateFailed."""
    message: str | None = Field(default=None, max_length=4096)
    """One-line detail."""
    release_generation: int | None = Field(default=None, ge=0)
    """metadata.generation of the release that started the attempt."""


class VerificationEntry(ApiModel):
    """The result of one verification check on the latest candidate."""

    check: CheckName
    """RegistryReady, Metrics, Digest, Signature, Schema, or SmokeTest (after the new pods are Ready)."""
    outcome: CheckOutcome
    """Passed, Failed, Skipped or Warned."""
    reason: str = Field(max_length=1024)
    """Why, in one line."""
    version: str | None = Field(default=None, pattern=VERSION_PATTERN)
    """The candidate version checked."""


class ModelReleaseStatus(ApiModel):
    """Observed state, written by the operator: resolution, verification, what serves, history."""

    observed_generation: int | None = Field(default=None, ge=0)
    """metadata.generation last acted on."""
    phase: Phase | None = None
    """Summary: Pending, Progressing, Ready, Blocked, Degraded or Failed."""
    conditions: list[Condition] = Field(default_factory=list, max_length=16)
    """Resolved, Verified, Progressing, Ready and Degraded conditions (one per type)."""
    resolved: Resolved | None = None
    """The version the reference resolved to."""
    current: Current | None = None
    """The version serving now."""
    history: list[HistoryEntry] = Field(default_factory=list, max_length=100)
    """Rollout attempts, newest last, at most spec.rollout.historyLimit."""
    verification: list[VerificationEntry] = Field(default_factory=list, max_length=16)
    """One entry per check of the latest candidate."""

    @model_validator(mode="after")
    def _unique_keys(self) -> ModelReleaseStatus:
        _unique([condition.type for condition in self.conditions], "status.conditions type")
        _unique([entry.check for entry in self.verification], "status.verification check")
        return self


_RELEASE_NAME_PROBLEM = (
    "metadata.name must be a DNS-1035 label (lowercase letters, digits and '-', starting with a letter, "
    "at most 63 characters) unless spec.serving.targetRef is set: it names the Deployment and the Service"
)
# A rule on the whole object (the CRD's root schema): the API server may read metadata.name there.
RELEASE_NAME_RULE = CelRule(
    "(has(self.spec) && has(self.spec.serving) && has(self.spec.serving.targetRef)) || "
    "(size(self.metadata.name) <= 63 && self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$'))",
    _RELEASE_NAME_PROBLEM,
)
_DNS_1035_LABEL_RE = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


def release_name_problem(name: str, spec: ModelReleaseSpec) -> str | None:
    """Why `name` cannot name this release (RELEASE_NAME_RULE in Python), or None when it can."""
    if spec.serving.managed and not (len(name) <= 63 and _DNS_1035_LABEL_RE.match(name)):
        return _RELEASE_NAME_PROBLEM
    return None


# Lists whose entries are keyed (x-kubernetes-list-type: map), by JSON path from the CRD's root schema.
LIST_MAP_KEYS: dict[tuple[str, ...], str] = {
    ("spec", "verify", "metrics"): "name",
    ("spec", "serving", "env"): "name",
    ("status", "conditions"): "type",
    ("status", "verification"): "check",
}
