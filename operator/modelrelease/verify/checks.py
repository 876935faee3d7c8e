"""Verification of a candidate version: one small pure function per check, plus the async gatherer.

Each check honours its mode: ``Enforce`` → a failing check is ``Failed`` (blocks the rollout),
``Warn`` → ``Warned`` (recorded, rollout proceeds), ``Off`` → ``Skipped`` without fetching anything.
``reason`` is one human line for ``status.verification``; ``code`` is the CamelCase form for history
entries, conditions and Events.

Registry facts are fetched by :func:`verify_candidate` only for enabled checks. A transient registry
failure (:class:`RegistryUnavailable`) propagates, so the caller retries later and nothing is recorded
as a verdict; any other registry error becomes that check's failing result.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from modelrelease.api.models import (
    DIGEST_PATTERN,
    CheckName,
    CheckOutcome,
    MetricGate,
    Mode,
    ModelReleaseSpec,
)
from modelrelease.registry.base import READY, ModelVersion, Registry, RegistryError, RegistryUnavailable

T = TypeVar("T")

Column = Mapping[str, Any]
Serving = ModelVersion | RegistryError | None
"""The version serving now for the Schema check: None when none serves, or why it could not be read."""
Signers = Callable[[str], Awaitable[Mapping[str, str] | None]]
"""Reads a ConfigMap of the release's namespace by name: its data, or None when it does not exist."""


async def no_config_maps(name: str) -> Mapping[str, str] | None:
    """The :data:`Signers` of a caller outside any namespace: every ConfigMap is absent."""
    return None


@dataclass(frozen=True)
class CheckResult:
    check: CheckName
    outcome: CheckOutcome
    reason: str
    code: str = ""
    """CamelCase, e.g. MetricGateFailed, DigestMismatch, SchemaIncompatible, VersionNotReady."""


def _verdict(check: CheckName, mode: Mode, passed: bool, reason: str, code: str) -> CheckResult:
    """Passed, or Failed/Warned according to the mode (callers handle Off before gathering facts)."""
    if passed:
        return CheckResult(check, "Passed", reason, code)
    return CheckResult(check, "Failed" if mode == "Enforce" else "Warned", reason, code)


def _off(check: CheckName) -> CheckResult:
    return CheckResult(check, "Skipped", "check is Off", "CheckDisabled")


def _registry_error(check: CheckName, mode: Mode, error: RegistryError) -> CheckResult:
    return _verdict(check, mode, False, str(error), error.reason)


def check_ready(require_ready: bool, candidate: ModelVersion) -> CheckResult:
    if not require_ready:
        return CheckResult("RegistryReady", "Skipped", "requireReady is false", "CheckDisabled")
    if candidate.status == READY:
        return CheckResult("RegistryReady", "Passed", f"version {candidate.version} is READY", "VersionReady")
    return CheckResult(
        "RegistryReady",
        "Failed",
        f"version {candidate.version} has registry status {candidate.status}, not READY",
        "VersionNotReady",
    )


def _gate_failure(gate: MetricGate, metrics: Mapping[str, float]) -> str | None:
    value = metrics.get(gate.name)
    if value is None:
        return f"metric {gate.name} not logged"
    if gate.admits(value):
        return None
    if gate.min is not None and not value >= gate.min:  # NaN fails here too
        return f"{gate.name}={value:g} below min {gate.min:g}"
    return f"{gate.name}={value:g} above max {gate.max:g}"


def check_metrics(gates: Sequence[MetricGate], mode: Mode, metrics: Mapping[str, float]) -> CheckResult:
    """Every gate's metric must be logged and within [min, max] (a missing metric is a failure)."""
    if mode == "Off":
        return _off("Metrics")
    if not gates:
        return CheckResult("Metrics", "Skipped", "no metric gates", "NoMetricGates")
    failing = {gate.name: failure for gate in gates if (failure := _gate_failure(gate, metrics)) is not None}
    if failing:
        code = "MetricMissing" if all(name not in metrics for name in failing) else "MetricGateFailed"
        return _verdict("Metrics", mode, False, "; ".join(failing.values()), code)
    shown = ", ".join(f"{gate.name}={metrics[gate.name]:g}" for gate in gates)
    return _verdict("Metrics", mode, True, f"all gates pass: {shown}", "MetricGatesPassed")


def expected_digest(
    spec_digest: str | None, tags: Mapping[str, str], digest_tag: str
) -> tuple[str | None, str]:
    """(expected digest or None, where it comes from): spec.model.digest wins over the version tag."""
    if spec_digest is not None:
        return spec_digest, "spec.model.digest"
    return tags.get(digest_tag), f"version tag {digest_tag}"


def check_digest(
    mode: Mode, candidate: ModelVersion, expected: str | None, source: str, actual: str | None
) -> CheckResult:
    """The artifact digest must equal the expected one. ``actual`` may be None when nothing is expected."""
    if mode == "Off":
        return _off("Digest")
    if expected is None:
        reason = (
            "no expected digest: set spec.model.digest or run "
            f"`modelrelease stamp {candidate.name} {candidate.version}`"
        )
        return _verdict("Digest", mode, False, reason, "DigestMissing")
    if re.fullmatch(DIGEST_PATTERN, expected) is None:
        return _verdict(
            "Digest",
            mode,
            False,
            f"{source} holds {expected[:80]!r}, not a sha256:<hex> digest",
            "DigestInvalid",
        )
    if actual == expected:
        return _verdict("Digest", mode, True, f"artifact digest matches {source}", "DigestMatched")
    return _verdict(
        "Digest",
        mode,
        False,
        f"artifact digest {actual} does not match {expected} ({source})",
        "DigestMismatch",
    )


def _type_of(column: Column) -> str:
    """The column's type descriptor: everything but its name and whether it is required."""
    return json.dumps({k: v for k, v in column.items() if k not in ("name", "required")}, sort_keys=True)


def _describe_type(column: Column) -> str:
    spec = column.get("tensor-spec")
    if isinstance(spec, Mapping):
        return f"tensor {spec.get('dtype')} {spec.get('shape')}"
    return str(column.get("type"))


def _keyed(columns: Sequence[Column]) -> dict[str, Column]:
    """Columns by name; unnamed (tensor) inputs by position, as MLflow matches them."""
    if all("name" in column for column in columns):
        return {str(column["name"]): column for column in columns}
    return {f"#{index}": column for index, column in enumerate(columns)}


def schema_incompatibilities(candidate: Sequence[Column], serving: Sequence[Column]) -> list[str]:
    """What would break callers of the serving version: removed or retyped inputs, new required inputs,
    inputs that became required. Added optional inputs are compatible."""
    new, old = _keyed(candidate), _keyed(serving)
    problems = []
    for key, column in old.items():
        if key not in new:
            problems.append(f"input {key!r} removed")
        elif _type_of(new[key]) != _type_of(column):
            problems.append(
                f"input {key!r} type changed {_describe_type(column)} -> {_describe_type(new[key])}"
            )
        elif new[key].get("required", True) and not column.get("required", True):
            problems.append(f"input {key!r} became required")
    problems += [
        f"new required input {key!r}"
        for key, column in new.items()
        if key not in old and column.get("required", True)
    ]
    return problems


def check_schema(
    mode: Mode,
    candidate: ModelVersion,
    serving: ModelVersion | None,
    candidate_inputs: Sequence[Column] | None,
    serving_inputs: Sequence[Column] | None,
) -> CheckResult:
    """The candidate's MLmodel input signature must accept what the serving version accepts."""
    if mode == "Off":
        return _off("Schema")
    if serving is None:
        return CheckResult("Schema", "Skipped", "no version serving yet", "NoServingVersion")
    if serving.version == candidate.version:
        return CheckResult(
            "Schema", "Skipped", f"version {serving.version} is serving already", "SameVersion"
        )
    if not serving_inputs:
        return CheckResult(
            "Schema", "Skipped", f"serving version {serving.version} has no input signature", "NoSignature"
        )
    if not candidate_inputs:
        return CheckResult(
            "Schema", "Skipped", f"version {candidate.version} has no input signature", "NoSignature"
        )
    problems = schema_incompatibilities(candidate_inputs, serving_inputs)
    if problems:
        reason = f"input schema incompatible with serving version {serving.version}: " + "; ".join(problems)
        return _verdict("Schema", mode, False, reason[:1000], "SchemaIncompatible")
    return _verdict(
        "Schema",
        mode,
        True,
        f"input schema compatible with serving version {serving.version}",
        "SchemaCompatible",
    )


def _rows(value: Any) -> int | None:
    """Rows in a list, or in a mapping of equally long lists (named columns or tensors); else None."""
    if isinstance(value, list):
        return len(value)
    if isinstance(value, Mapping) and value and all(isinstance(v, list) for v in value.values()):
        lengths = {len(v) for v in value.values()}
        return lengths.pop() if len(lengths) == 1 else None
    return None


def example_rows(example: Mapping[str, Any]) -> int | None:
    """Rows in an MLflow serving request body (`dataframe_split`, `dataframe_records`, `instances` or
    `inputs`), or None when its shape does not say (the row-count rule is then not applied)."""
    split = example.get("dataframe_split")
    if isinstance(split, Mapping):
        return _rows(split.get("data"))
    for key in ("dataframe_records", "instances", "inputs"):
        if key in example:
            return _rows(example[key])
    return None


ANSWER_SHOWN = 420
"""At most this many characters of a server's answer go into a reason: its start and its end, where
servers put the cause (MLflow's schema errors quote the rejected rows in between)."""


def _clip(text: str, limit: int = ANSWER_SHOWN) -> str:
    """`text` on one line, at most `limit` characters: its head and tail around an ellipsis."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    head = limit // 3
    return f"{text[:head]} … {text[len(text) - (limit - head - 3) :]}"


def smoke_answer_problem(status: int, body: str, expected_rows: int | None) -> str | None:
    """What is wrong with a pod's answer to the serving input example, or None: it must be HTTP 200 with
    a JSON object holding `predictions`, one per example row when the example's rows can be counted.
    An error answer is shown by its `message` when it has one (MLflow's `{"error_code", "message"}`)."""
    try:
        answer = json.loads(body)
    except ValueError:
        answer = None
    if status != 200:
        code = ""
        if isinstance(answer, Mapping) and isinstance(answer.get("message"), str):
            code = f"{answer['error_code']}: " if isinstance(answer.get("error_code"), str) else ""
            body = answer["message"]
        body = " ".join(body.split())
        if (
            len(code + body) > ANSWER_SHOWN and "Error: " in body
        ):  # MLflow: "<what failed> ... Error: <cause>"
            body = "… " + body[body.rindex("Error: ") :]
        return f"HTTP {status}: {_clip(code + body) or '(empty body)'}"
    if not isinstance(answer, Mapping) or "predictions" not in answer:
        return f"HTTP 200 without predictions: {_clip(body) or '(empty body)'}"
    rows = _rows(answer["predictions"])
    if expected_rows is not None and rows != expected_rows:
        counted = "predictions that cannot be counted" if rows is None else f"{rows} predictions"
        return f"HTTP 200 with {counted} for {expected_rows} example rows"
    return None


def check_smoke_test(
    mode: Mode,
    version: str,
    example: Mapping[str, Any] | RegistryError | None,
    problems: Mapping[str, str | None],
) -> CheckResult:
    """The verdict on the new pods' answers to the version's serving input example (or on why it could
    not be read): `problems` maps each pod tested to what was wrong with its answer (None: a good one)."""
    if mode == "Off":
        return _off("SmokeTest")
    if isinstance(example, RegistryError):
        return _registry_error("SmokeTest", mode, example)
    if example is None:
        reason = f"version {version} logged no serving input example (log the model with input_example=)"
        return CheckResult("SmokeTest", "Skipped", reason, "NoInputExample")
    if not problems:
        return CheckResult("SmokeTest", "Skipped", f"no ready pod of version {version}", "NoReadyPods")
    failed: dict[str, list[str]] = {}  # pods by what was wrong, so that one refusal is told once
    for pod, problem in sorted(problems.items()):
        if problem is not None:
            failed.setdefault(problem, []).append(pod)
    if failed:
        count = sum(len(pods) for pods in failed.values())
        detail = "; ".join(
            f"{'pod' if len(pods) == 1 else 'pods'} {', '.join(pods)}: {problem}"
            for problem, pods in failed.items()
        )
        reason = f"{count} of {len(problems)} pods refused the serving input example: {detail}"
        return _verdict("SmokeTest", mode, False, _clip(reason, 1000), "SmokeTestFailed")
    rows = example_rows(example)
    each = "" if rows is None else f" with {rows} prediction{'s' if rows != 1 else ''}"
    pods = f"{len(problems)} pod{'s' if len(problems) != 1 else ''}"
    reason = f"{pods} answered the serving input example{each}"
    return _verdict("SmokeTest", mode, True, reason, "SmokeTestPassed")


def smoke_test_not_run(mode: Mode, reason: str, code: str) -> CheckResult:
    """The smoke test could not be sent (the operator may not list the pods, say): Failed or Warned."""
    return _verdict("SmokeTest", mode, False, reason, code)


async def _fact(fetch: Awaitable[T]) -> T | RegistryError:
    """A registry fact, or the non-transient error that prevented it (transient errors propagate)."""
    try:
        return await fetch
    except RegistryUnavailable:
        raise
    except RegistryError as exc:
        return exc


async def _metrics_result(spec: ModelReleaseSpec, candidate: ModelVersion, registry: Registry) -> CheckResult:
    verify = spec.verify
    if verify.metrics_mode == "Off" or not verify.metrics:
        return check_metrics(verify.metrics, verify.metrics_mode, {})
    metrics = await _fact(registry.version_metrics(candidate))
    if isinstance(metrics, RegistryError):
        return _registry_error("Metrics", verify.metrics_mode, metrics)
    return check_metrics(verify.metrics, verify.metrics_mode, metrics)


async def _digest_result(spec: ModelReleaseSpec, candidate: ModelVersion, registry: Registry) -> CheckResult:
    mode = spec.verify.digest
    expected, source = expected_digest(spec.model.digest, candidate.tags, spec.verify.digest_tag)
    if mode == "Off" or expected is None:  # nothing to compare with: the hashing work would be wasted
        return check_digest(mode, candidate, expected, source, None)
    actual = await _fact(registry.artifact_digest(candidate, max_age=spec.verify.reverify_interval_seconds))
    if isinstance(actual, RegistryError):
        return _registry_error("Digest", mode, actual)
    return check_digest(mode, candidate, expected, source, actual)


async def _schema_result(
    spec: ModelReleaseSpec, candidate: ModelVersion, serving: Serving, registry: Registry
) -> CheckResult:
    mode = spec.verify.schema_
    if mode == "Off":
        return _off("Schema")
    if isinstance(serving, RegistryUnavailable):
        raise serving  # retried later: an enabled check is never skipped for want of a fact
    if isinstance(serving, RegistryError):
        return _registry_error("Schema", mode, serving)
    if serving is None or serving.version == candidate.version:
        return check_schema(mode, candidate, serving, None, None)
    new, old = await asyncio.gather(
        _fact(registry.input_schema(candidate)), _fact(registry.input_schema(serving))
    )
    if isinstance(new, RegistryError):
        return _registry_error("Schema", mode, new)
    if isinstance(old, RegistryError):
        return _registry_error("Schema", mode, old)
    return check_schema(mode, candidate, serving, new, old)


async def _signature_result(
    spec: ModelReleaseSpec, candidate: ModelVersion, registry: Registry, signers: Signers
) -> CheckResult:
    """Keys first, then model.sig, then the per-file digests (shared with the Digest check): each fetched
    only when the previous one exists."""
    mode, config_map = spec.verify.signature, spec.verify.signers_config_map
    if mode == "Off" or config_map is None:
        return _off("Signature")
    # model-signing and what it imports (sigstore, protobuf, boto3) took 19 of the 96 MiB the operator's
    # modules occupy: loaded by the first release that checks signatures, not by every operator.
    from modelrelease.verify import signature

    keys = await signers(config_map)
    bundle = await _fact(registry.signature_bundle(candidate)) if keys is not None else None
    if isinstance(bundle, RegistryError):
        return _registry_error("Signature", mode, bundle)
    trusted_for = spec.verify.reverify_interval_seconds  # a digest older than that is computed again
    entries = (
        await _fact(registry.artifact_entries(candidate, max_age=trusted_for)) if bundle is not None else ()
    )
    if isinstance(entries, RegistryError):
        return _registry_error("Signature", mode, entries)
    # Parsing keys and the bundle and checking the signature write temporary files: off the event loop.
    verdict = await asyncio.to_thread(signature.verify, bundle, keys, f"ConfigMap {config_map}", entries)
    return _verdict("Signature", mode, verdict.passed, verdict.reason, verdict.code)


async def verify_candidate(
    spec: ModelReleaseSpec,
    candidate: ModelVersion,
    serving: Serving,
    registry: Registry,
    signers: Signers = no_config_maps,
) -> list[CheckResult]:
    """All five checks, in the order RegistryReady, Metrics, Digest, Signature, Schema; the facts of the
    first three fetched concurrently, the Schema's after them (hashing the files reads the MLmodel, which
    then needs no download of its own). ``serving`` is the version serving now, None when none does, or
    the error that kept it from being read (which the Schema check reports instead of skipping).

    Raises RegistryUnavailable when the registry or object store is transiently unreachable.
    """
    gathered = await asyncio.gather(
        _metrics_result(spec, candidate, registry),
        _digest_result(spec, candidate, registry),
        _signature_result(spec, candidate, registry, signers),
    )
    schema = await _schema_result(spec, candidate, serving, registry)
    return [check_ready(spec.verify.require_ready, candidate), *gathered, schema]


def first_blocking(results: Sequence[CheckResult]) -> CheckResult | None:
    """The first Failed result (the one that blocks the rollout), if any."""
    return next((result for result in results if result.outcome == "Failed"), None)
