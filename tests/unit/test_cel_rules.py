"""Every CEL rule of the generated CRD, evaluated with a real CEL implementation, and agreement between
the API server's view (schema defaults + CEL) and the pydantic models on which specs are acceptable."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from crd_walk import ROOT, cel_failures, load_manifest, nodes, root_schema
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from modelrelease.api.models import MANAGED_ONLY_FIELDS, ModelReleaseSpec, release_name_problem
from modelrelease.sandbox.cel import evaluate

SCHEMA = root_schema(load_manifest())
RULES = {
    rule["message"]: (path, rule["rule"])
    for path, node in nodes(SCHEMA)
    for rule in node.get("x-kubernetes-validations", ())
}

ONE_REF = "exactly one of spec.model.version, spec.model.alias or spec.model.stage must be set"
RESERVED_ALIAS = "spec.model.alias must not be 'latest' or 'v<N>': MLflow reserves those names"
POLL = "spec.registry.pollInterval must be between 5s and 24h"
GATE_BOUND = "a metric gate in spec.verify.metrics needs min or max"
GATE_ORDER = "spec.verify.metrics: min must be less than or equal to max"
LABELS = "spec.serving.template.metadata.labels: keys under modelrelease.io/ are the operator's"
ANNOTATIONS = "spec.serving.template.metadata.annotations: keys under modelrelease.io/ are the operator's"
TARGET_REF = next(message for message in RULES if message.startswith("spec.serving.targetRef excludes"))
MODEL_URI = "spec.serving.env must not set MODEL_URI: the operator sets it to the pinned model URI"
ENV_SOURCE = "spec.serving.env: set value or valueFrom, not both"
RELEASE_NAME = next(message for message in RULES if message.startswith("metadata.name must be"))
SIGNERS = "spec.verify.signersConfigMap is required when spec.verify.signature is Enforce or Warn"

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

# For each rule (by message): the node it sits on, then values of `self` that pass and that fail.
CASES: dict[str, tuple[str, list[Any], list[Any]]] = {
    ONE_REF: (
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
    RESERVED_ALIAS: (
        "spec.model",
        [{"alias": "champion"}, {"alias": "v1x"}, {"alias": "latest2"}, {"alias": "vv1"}, {"version": "1"}],
        [{"alias": "latest"}, {"alias": "LaTeSt"}, {"alias": "v1"}, {"alias": "V12"}],
    ),
    POLL: (
        "spec.registry",
        # A value that breaks the pattern passes here: the pattern reports it, with a clearer message.
        [{}, *({"pollInterval": p} for p in ("5s", "5000ms", "24h", "1h30m", "0.5m", "23h59m60s", "oops"))],
        [{"pollInterval": p} for p in ("4s", "4999ms", "0.08m", "24h1s", "25h", "0s")],
    ),
    GATE_BOUND: (
        "spec.verify.metrics[]",
        [{"name": "f1", "min": 0.5}, {"name": "f1", "max": 0}, {"name": "f1", "min": 0, "max": 1}],
        [{"name": "f1"}],
    ),
    GATE_ORDER: (
        "spec.verify.metrics[]",
        [{"min": 0.5, "max": 0.5}, {"min": 1, "max": 1.5}, {"min": -2.5, "max": 3}, {"min": 7}, {"max": 7}],
        [{"min": 0.9, "max": 0.8}, {"min": 2, "max": 1}, {"min": 1.5, "max": 1}],
    ),
    LABELS: (
        "spec.serving.template.metadata",
        [{}, {"labels": {"team": "risk"}}, {"labels": {"x.modelrelease.io/y": "1"}}, {"annotations": {}}],
        [{"labels": {"team": "risk", "modelrelease.io/release": "x"}}],
    ),
    ANNOTATIONS: (
        "spec.serving.template.metadata",
        [{}, {"annotations": {"prometheus.io/scrape": "true"}}, {"labels": {"modelrelease.io/x": "1"}}],
        [{"annotations": {"modelrelease.io/version": "1"}}],
    ),
    TARGET_REF: (
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
    MODEL_URI: (
        "spec.serving",
        [{}, {"env": []}, {"env": [{"name": "MODEL"}, {"name": "MODEL_URI_EXTRA"}]}],
        [{"env": [{"name": "A"}, {"name": "MODEL_URI", "value": "models:/x/1"}]}],
    ),
    ENV_SOURCE: (
        "spec.serving",
        [
            {},
            {
                "env": [
                    {"name": "A", "value": "1"},
                    {"name": "B", "valueFrom": {"fieldRef": {}}},
                    {"name": "C"},
                ]
            },
        ],
        [{"env": [{"name": "A", "value": "1", "valueFrom": {"fieldRef": {}}}]}],
    ),
    SIGNERS: (
        "spec.verify",
        [
            {},
            {"signature": "Off"},
            {"signature": "Enforce", "signersConfigMap": "s"},
            {"signersConfigMap": "s"},
        ],
        [{"signature": "Enforce"}, {"signature": "Warn", "metrics": []}],
    ),
    RELEASE_NAME: (
        "",
        [
            {"metadata": {"name": "fraud"}, "spec": {"serving": {}}},
            {"metadata": {"name": "a" * 63}, "spec": {}},
            {"metadata": {"name": "fraud.v2"}, "spec": {"serving": {"targetRef": {"name": "d"}}}},
            {"metadata": {"name": "9-lives"}, "spec": {"serving": {"targetRef": {"name": "d"}}}},
        ],
        [
            {"metadata": {"name": "fraud.v2"}, "spec": {"serving": {}}},
            {"metadata": {"name": "9-lives"}, "spec": {}},
            {"metadata": {"name": "a" * 64}, "spec": {"serving": {"port": 80}}},
            {"metadata": {"name": "fraud-"}, "spec": {}},
        ],
    ),
}


def test_every_rule_in_the_crd_has_cases() -> None:
    assert set(RULES) == set(CASES)
    for message, (path, _, _) in CASES.items():
        assert RULES[message][0] == path, message


def test_every_field_targetref_excludes_is_covered() -> None:
    assert (
        set(SHAPING_VALUES)
        == set(MANAGED_ONLY_FIELDS)
        == set(EMPTY_SHAPING)
        | {
            "image",
            "replicas",
            "serviceAccountName",
        }
    )


@pytest.mark.parametrize(
    ("message", "value"),
    [(m, v) for m, (_, good, _) in CASES.items() for v in good],
    ids=lambda x: str(x)[:60],
)
def test_rule_passes(message: str, value: Any) -> None:
    assert evaluate(RULES[message][1], value) is True


@pytest.mark.parametrize(
    ("message", "value"), [(m, v) for m, (_, _, bad) in CASES.items() for v in bad], ids=lambda x: str(x)[:60]
)
def test_rule_fails(message: str, value: Any) -> None:
    assert evaluate(RULES[message][1], value) is False


def release(spec: dict[str, Any], name: str = "fraud") -> dict[str, Any]:
    return {
        "apiVersion": "modelrelease.io/v1alpha1",
        "kind": "ModelRelease",
        "metadata": {"name": name},
        "spec": spec,
    }


@pytest.mark.parametrize("path", sorted((ROOT / "examples").glob("modelrelease*.yaml")), ids=lambda p: p.name)
def test_examples_pass_every_rule(path: Path) -> None:
    assert cel_failures(SCHEMA, yaml.safe_load(path.read_text())) == []


def test_server_defaults_do_not_trip_the_target_ref_rule() -> None:
    # The schema defaults serving.port (and serving itself): a bare targetRef release must still pass.
    body = release({"model": {"name": "m", "version": "1"}, "serving": {"targetRef": {"name": "d"}}}, "x.y")
    assert cel_failures(SCHEMA, body) == []


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"model": {"name": "m"}}, ONE_REF),
        ({"model": {"name": "m", "alias": "latest"}}, RESERVED_ALIAS),
        ({"model": {"name": "m", "version": "1"}, "registry": {"pollInterval": "1s"}}, POLL),
        ({"model": {"name": "m", "version": "1"}, "verify": {"metrics": [{"name": "f1"}]}}, GATE_BOUND),
        (
            {"model": {"name": "m", "version": "1"}, "serving": {"targetRef": {"name": "d"}, "image": "i"}},
            TARGET_REF,
        ),
    ],
)
def test_whole_objects_report_the_rule_they_break(spec: dict[str, Any], message: str) -> None:
    assert cel_failures(SCHEMA, release(spec)) == [message]


# ---------------------------------------------------------------------------------------- agreement
# Specs that always satisfy the schema's types, patterns, enums and ranges but vary everything the CEL
# rules judge. The API server (defaults, then CEL) and pydantic must then accept exactly the same ones.

# A release is a random valid base plus up to two perturbations, each a random instance of one kind of
# edit (most break one rule, some are valid edge cases), so a failing spec usually breaks a single rule.

random_durations = st.lists(
    st.tuples(
        st.one_of(st.integers(0, 90).map(str), st.decimals(0, 30, places=2).map(str)),
        st.sampled_from(["ms", "s", "m", "h"]),
    ),
    min_size=1,
    max_size=3,
).map(lambda parts: "".join(number + unit for number, unit in parts))
edge_durations = st.sampled_from(["5s", "5000ms", "24h", "4s", "4.5s", "4999ms", "0.08m", "24h1s", "86401s"])
bounds = st.one_of(st.integers(-5, 5), st.floats(-5, 5, allow_nan=False, allow_infinity=False))
Perturbation = Callable[[dict[str, Any]], None]


@st.composite
def base_releases(draw: st.DrawFn) -> dict[str, Any]:
    kind, value = draw(st.sampled_from([("version", "7"), ("alias", "champion"), ("stage", "Production")]))
    spec: dict[str, Any] = {"model": {"name": "fraud", kind: value}}
    if draw(st.booleans()):
        spec["registry"] = {"pollInterval": draw(st.sampled_from(["5s", "60s", "1h30m", "24h"]))}
    if draw(st.booleans()):
        low, high = sorted(draw(st.lists(bounds, min_size=2, max_size=2)))
        spec["verify"] = {"metrics": [{"name": "f1", "min": low, "max": high}, {"name": "loss", "max": high}]}
    if draw(st.booleans()):
        spec["serving"] = {"targetRef": {"name": "existing"}}
    else:
        spec["serving"] = {"replicas": 2, "env": [{"name": "A", "value": "1"}], **EMPTY_SHAPING}
        spec["serving"]["template"] = {"metadata": {"labels": {"team": "risk"}}}
    return release(spec, draw(st.sampled_from(["fraud", "ok-name"])))


@st.composite
def perturbations(draw: st.DrawFn) -> Perturbation:
    kind = draw(st.integers(0, 11))
    if kind == 0:  # references: none, two, three, or a different single one
        refs = draw(st.lists(st.sampled_from(["version", "alias", "stage"]), unique=True, max_size=3))
        values = {"version": "3", "alias": draw(st.sampled_from(["x", "v3a"])), "stage": "Staging"}
        return lambda body: body["spec"].update(model={"name": "fraud", **{r: values[r] for r in refs}})
    if kind == 1:
        alias = draw(st.sampled_from(["latest", "Latest", "v3", "V10", "v3a", "latest1"]))
        return lambda body: body["spec"].update(model={"name": "fraud", "alias": alias})
    if kind == 2:
        duration = draw(st.one_of(edge_durations, random_durations))
        return lambda body: body["spec"].update(registry={"pollInterval": duration})
    if kind == 3:
        gate = {
            "name": "auc",
            **{key: draw(bounds) for key in draw(st.sets(st.sampled_from(["min", "max"])))},
        }
        return lambda body: body["spec"].setdefault("verify", {}).update(metrics=[gate])
    if kind == 4:  # a shaping field (set or empty) next to targetRef
        field = draw(st.sampled_from(sorted(SHAPING_VALUES)))
        value = (
            SHAPING_VALUES[field]
            if field not in EMPTY_SHAPING or draw(st.booleans())
            else EMPTY_SHAPING[field]
        )
        return lambda body: body["spec"]["serving"].update(targetRef={"name": "d"}, **{field: value})
    if kind in (5, 6):  # env entries, possibly MODEL_URI, possibly with both value and valueFrom
        env = draw(env_lists())
        return lambda body: body["spec"]["serving"].update(env=env)
    if kind == 7:
        where = draw(st.sampled_from(["labels", "annotations"]))
        key = draw(st.sampled_from(["modelrelease.io/version", "x.modelrelease.io/ok", "team"]))
        return lambda body: body["spec"]["serving"].update(template={"metadata": {where: {key: "v"}}})
    if kind == 8:
        signing = {"signature": draw(st.sampled_from(["Enforce", "Warn", "Off"]))}
        if draw(st.booleans()):
            signing["signersConfigMap"] = "signers"
        return lambda body: body["spec"].setdefault("verify", {}).update(signing)
    name = draw(st.sampled_from(["fraud.v2", "9lives", "a" * 63, "a" * 64, "fraud-"]))
    return lambda body: body["metadata"].update(name=name)


@st.composite
def env_lists(draw: st.DrawFn) -> list[dict[str, Any]]:
    names = draw(st.lists(st.sampled_from(["A", "MODEL_URI", "B"]), unique=True, min_size=1, max_size=2))
    out = []
    for name in names:
        entry: dict[str, Any] = {"name": name}
        source = draw(st.sampled_from(["value", "valueFrom", "none", "both"]))
        if source in ("value", "both"):
            entry["value"] = "v"
        if source in ("valueFrom", "both"):
            entry["valueFrom"] = {"secretKeyRef": {"name": "s", "key": "k"}}
        out.append(entry)
    return out


@st.composite
def releases(draw: st.DrawFn) -> dict[str, Any]:
    body = draw(base_releases())
    for perturb in draw(st.lists(perturbations(), max_size=2)):
        perturb(body)
    return body


def pydantic_accepts(body: dict[str, Any]) -> bool:
    try:
        spec = ModelReleaseSpec.model_validate(body["spec"])
    except ValidationError:
        return False
    return release_name_problem(body["metadata"]["name"], spec) is None


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(releases())
def test_pydantic_and_cel_agree(body: dict[str, Any]) -> None:
    failures = cel_failures(SCHEMA, body)
    assert pydantic_accepts(body) == (failures == []), failures


# ------------------------------------------------------------------------------- Kubernetes typing
# cel-python is dynamically typed; the API server type-checks each rule against the schema when the CRD
# is created and refuses the CRD if a rule does not compile. Check the two ways a rule can go wrong
# there: a field path the schema does not declare, and a function applied to the wrong kind of node (in
# Kubernetes CEL an object with declared properties is not a map, so size() does not apply to it).

REFERENCE = re.compile(r"\b([A-Za-z_]\w*)((?:\.[A-Za-z_]\w*)+)")
MACRO = re.compile(r"\b(self(?:\.\w+)*)\.(?:all|exists|exists_one|map|filter)\((\w+),")
FUNCTION_OF = {"size": {"string", "array", "map"}, "duration": {"string"}, "double": {"number", "integer"}}
METHOD_ON = {
    "matches": {"string"},
    "startsWith": {"string"},
    "all": {"array", "map"},
    "exists": {"array", "map"},
}
# Root fields the API server always declares for rules on the resource root.
ROOT_META = {"type": "object", "properties": {"name": {"type": "string"}, "generateName": {"type": "string"}}}


def _kind(node: dict[str, Any]) -> str:
    if node.get("type") == "object" and "additionalProperties" in node:
        return "map"
    return str(node.get("type", "dyn"))


def _step(node: dict[str, Any], name: str, at_root: bool) -> dict[str, Any] | None:
    if at_root and name == "metadata":
        return ROOT_META
    if _kind(node) == "map":
        return dict(node["additionalProperties"])
    found = node.get("properties", {}).get(name)
    return None if found is None else dict(found)


def _resolve(variables: dict[str, tuple[dict[str, Any], bool]], var: str, path: str) -> dict[str, Any] | None:
    node, at_root = variables[var]
    for name in filter(None, path.split(".")):
        if name in METHOD_ON or name == "size":
            break
        next_node = _step(node, name, at_root)
        if next_node is None:
            return None
        node, at_root = next_node, False
    return node


@pytest.mark.parametrize("message", sorted(RULES), ids=lambda m: m[:50])
def test_rule_type_checks_against_the_schema(message: str) -> None:
    path, rule = RULES[message]
    node = SCHEMA if path == "" else dict(next(n for p, n in nodes(SCHEMA) if p == path))
    variables: dict[str, tuple[dict[str, Any], bool]] = {"self": (node, path == "")}
    for collection, var in MACRO.findall(rule):
        target = _resolve(variables, "self", collection[len("self") :]) if collection != "self" else node
        assert target is not None and _kind(target) in {"array", "map"}, f"{collection} is not iterable"
        variables[var] = (target["items"] if _kind(target) == "array" else {"type": "string"}, False)
    for var, dotted in REFERENCE.findall(rule):
        if var not in variables:
            continue
        assert _resolve(variables, var, dotted) is not None, f"{var}{dotted}: not declared in the schema"
    for function, kinds in FUNCTION_OF.items():
        for var, dotted in re.findall(rf"\b{function}\((\w+)((?:\.\w+)*)\)", rule):
            target = _resolve(variables, var, dotted)
            assert target is not None and _kind(target) in kinds, f"{function}({var}{dotted}) on {target}"
    for method, kinds in METHOD_ON.items():
        for var, dotted in re.findall(rf"\b(\w+)((?:\.\w+)*)\.{method}\(", rule):
            if var in variables:
                target = _resolve(variables, var, dotted)
                assert target is not None and _kind(target) in kinds, f"{var}{dotted}.{method}() on {target}"


def test_the_type_check_catches_size_of_an_object() -> None:
    serving = dict(next(n for p, n in nodes(SCHEMA) if p == "spec.serving"))
    assert _kind(serving["properties"]["resources"]) == "object"
    assert _kind(serving["properties"]["nodeSelector"]) == "map"
    assert _resolve({"self": (serving, False)}, "self", ".affinity.nodeAffinity") is not None
    assert _resolve({"self": (serving, False)}, "self", ".affinity.colour") is None
