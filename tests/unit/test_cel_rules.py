"""The CEL rules of the generated CRD without a server: each has a message and cases, each has a pydantic
twin that judges those cases the same way, and each type-checks against the schema it sits on.

The real kube-apiserver evaluates the same cases in tests/integration/test_crd_admission.py, and checks
there that pydantic accepts a spec exactly when the server admits it.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from crd_cases import CASES, EMPTY_SHAPING, SHAPING_VALUES, embed, pydantic_accepts
from modelrelease.api.models import MANAGED_ONLY_FIELDS
from unit.crd_walk import load_manifest, nodes, root_schema

SCHEMA = root_schema(load_manifest())
RULE_LIST = [
    (path, rule["rule"], rule.get("message", ""))
    for path, node in nodes(SCHEMA)
    for rule in node.get("x-kubernetes-validations", ())
]
RULES = {message: (path, rule) for path, rule, message in RULE_LIST}


def test_every_rule_has_its_own_one_line_message() -> None:
    """The message is what `kubectl apply` prints: without one the server prints the rule's source."""
    messages = [message for _, _, message in RULE_LIST]
    assert all(messages), [rule for _, rule, message in RULE_LIST if not message]
    assert len(set(messages)) == len(messages)
    assert not [message for message in messages if "\n" in message]


def test_every_rule_in_the_crd_has_cases() -> None:
    assert set(RULES) == set(CASES)
    for message, case in CASES.items():
        assert RULES[message][0] == case.path, message
        assert case.good and case.bad, message


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
    [(m, v) for m, case in CASES.items() for v in case.good],
    ids=lambda x: str(x)[:60],
)
def test_the_pydantic_twin_accepts_what_the_rule_passes(message: str, value: Any) -> None:
    assert pydantic_accepts(embed(CASES[message].path, value))


@pytest.mark.parametrize(
    ("message", "value"),
    [(m, v) for m, case in CASES.items() for v in case.bad],
    ids=lambda x: str(x)[:60],
)
def test_the_pydantic_twin_refuses_what_the_rule_fails(message: str, value: Any) -> None:
    assert not pydantic_accepts(embed(CASES[message].path, value))


# ------------------------------------------------------------------------------- Kubernetes typing
# The API server type-checks each rule against the schema when the CRD is created and refuses the CRD if a
# rule does not compile (tests/integration installs it for real). Check here, without a server, the two
# ways a rule can go wrong there: a field path the schema does not declare, and a function applied to the
# wrong kind of node (in Kubernetes CEL an object with declared properties is not a map, so size() does
# not apply to it).

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
