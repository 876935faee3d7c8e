"""The emulator's custom-resource pruning, defaulting, validation and 422 bodies.

Expected texts are the apiserver's: `field.Error` renders `<path>: <type>[: <value>][: <detail>]`
(k8s.io/apimachinery/pkg/util/validation/field/errors.go), and apiextensions-apiserver wraps the
kube-openapi messages (`<path> in body should …`, pkg/validation/errors/schema.go) into it
(apiextensions-apiserver/pkg/apiserver/validation/validation.go, kubeOpenAPIResultToFieldErrors);
CEL failures come from apiextensions-apiserver/pkg/apiserver/schema/cel/validation.go.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from modelrelease.sandbox.apiserver.schema import FieldError, invalid_status, prune_and_default, validate

CRD = Path(__file__).resolve().parents[2] / "crds" / "modelrelease.io_modelreleases.yaml"


def _obj(spec: Any) -> dict[str, Any]:
    return {"apiVersion": "x.io/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": spec}


def _schema(spec: dict[str, Any], **root: Any) -> dict[str, Any]:
    return {"type": "object", "properties": {"spec": spec}, **root}


def _messages(schema: dict[str, Any], spec: Any, old_spec: Any = None) -> list[str]:
    old = _obj(old_spec) if old_spec is not None else None
    return [e.message for e in validate(schema, _obj(spec), old)]


# --------------------------------------------------------------------------------------------------
# Pruning and defaulting


def test_unknown_fields_are_pruned_and_reported() -> None:
    schema = _schema({"type": "object", "properties": {"a": {"type": "string"}}})
    obj = _obj({"a": "x", "b": 1, "c": {"d": 2}})
    obj["status"] = {"phase": "x"}
    pruned_obj, pruned = prune_and_default(schema, obj)
    assert pruned_obj == _obj({"a": "x"})
    assert pruned == ["spec.b", "spec.c", "status"]
    assert obj["spec"]["b"] == 1  # the input is untouched


def test_root_metadata_apiversion_and_kind_are_kept() -> None:
    obj = _obj({})
    obj["metadata"] = {"name": "w", "labels": {"a": "b"}, "whatever": 1}
    pruned_obj, pruned = prune_and_default(_schema({"type": "object"}), obj)
    assert pruned_obj["metadata"] == obj["metadata"] and pruned_obj["apiVersion"] == "x.io/v1"
    assert pruned == []


def test_pruning_reaches_list_items_and_map_values() -> None:
    item = {"type": "object", "properties": {"name": {"type": "string"}}}
    schema = _schema(
        {
            "type": "object",
            "properties": {
                "items": {"type": "array", "items": item},
                "byName": {"type": "object", "additionalProperties": item},
            },
        }
    )
    pruned_obj, pruned = prune_and_default(
        schema,
        _obj({"items": [{"name": "a"}, {"name": "b", "x": 1}], "byName": {"k": {"name": "c", "y": 2}}}),
    )
    assert pruned_obj["spec"] == {"items": [{"name": "a"}, {"name": "b"}], "byName": {"k": {"name": "c"}}}
    assert pruned == ["spec.items[1].x", "spec.byName.k.y"]


def test_preserve_unknown_fields_keeps_unknown_but_prunes_below_known() -> None:
    schema = _schema(
        {
            "type": "object",
            "x-kubernetes-preserve-unknown-fields": True,
            "properties": {"known": {"type": "object", "properties": {"a": {"type": "string"}}}},
        }
    )
    pruned_obj, pruned = prune_and_default(
        schema, _obj({"free": {"any": [1]}, "known": {"a": "x", "b": "y"}})
    )
    assert pruned_obj["spec"] == {"free": {"any": [1]}, "known": {"a": "x"}}
    assert pruned == ["spec.known.b"]


def test_embedded_resource_keeps_its_type_and_metadata() -> None:
    schema = _schema(
        {
            "type": "object",
            "properties": {
                "template": {
                    "type": "object",
                    "x-kubernetes-embedded-resource": True,
                    "properties": {"spec": {"type": "object"}},
                }
            },
        }
    )
    template = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {}, "extra": 1}
    pruned_obj, pruned = prune_and_default(schema, _obj({"template": template}))
    assert pruned_obj["spec"]["template"] == {k: v for k, v in template.items() if k != "extra"}
    assert pruned == ["spec.template.extra"]


def test_defaults_apply_to_missing_fields_and_inside_defaulted_objects() -> None:
    # as CRD authors rely on: `verify: {default: {}}` makes the nested defaults apply too
    schema = _schema(
        {
            "type": "object",
            "properties": {
                "verify": {
                    "type": "object",
                    "default": {},
                    "properties": {
                        "digest": {"type": "string", "default": "Enforce"},
                        "tag": {"type": "string", "default": "t"},
                    },
                },
                "port": {"type": "integer", "default": 8080},
                "gates": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {"mode": {"type": "string", "default": "Enforce"}},
                    },
                },
            },
        }
    )
    defaulted, _ = prune_and_default(
        schema, _obj({"verify": {"tag": "mine"}, "gates": [{}, {"mode": "Off"}]})
    )
    assert defaulted["spec"] == {
        "verify": {"tag": "mine", "digest": "Enforce"},
        "port": 8080,
        "gates": [{"mode": "Enforce"}, {"mode": "Off"}],
    }
    assert prune_and_default(schema, _obj({}))[0]["spec"]["verify"] == {"digest": "Enforce", "tag": "t"}


def test_nulls_are_dropped_unless_nullable_and_replaced_by_defaults() -> None:
    # "null values for fields that either don't specify the nullable flag, or give it a false value,
    # will be pruned before defaulting happens. If a default is present, it will be applied."
    schema = _schema(
        {
            "type": "object",
            "properties": {
                "plain": {"type": "string"},
                "nullable": {"type": "string", "nullable": True},
                "defaulted": {"type": "string", "default": "d"},
            },
        }
    )
    defaulted, pruned = prune_and_default(schema, _obj({"plain": None, "nullable": None, "defaulted": None}))
    assert defaulted["spec"] == {"nullable": None, "defaulted": "d"}
    assert pruned == []
    assert validate(schema, defaulted) == []


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 3) | st.text("ab", max_size=2),
    lambda inner: st.lists(inner, max_size=2) | st.dictionaries(st.sampled_from("abxy"), inner, max_size=3),
    max_leaves=10,
)


@given(st.dictionaries(st.sampled_from(["a", "b", "items", "x"]), json_values, max_size=4))
def test_prune_and_default_is_idempotent(spec: dict[str, Any]) -> None:
    schema = _schema(
        {
            "type": "object",
            "properties": {
                "a": {"type": "string", "default": "A"},
                "b": {
                    "type": "object",
                    "default": {},
                    "properties": {"c": {"type": "integer", "default": 1}},
                },
                "items": {
                    "type": "array",
                    "items": {"type": "object", "properties": {"a": {"type": "string"}}},
                },
            },
        }
    )
    once, _ = prune_and_default(schema, _obj(spec))
    twice, pruned_again = prune_and_default(schema, once)
    assert twice == once
    assert pruned_again == []


# --------------------------------------------------------------------------------------------------
# OpenAPI keywords: (schema of spec.x, value, expected error messages)

KEYWORD_CASES: list[tuple[str, dict[str, Any], Any, list[str]]] = [
    (
        "type integer",
        {"type": "integer"},
        "string",
        ['spec.x: Invalid value: "string": spec.x in body must be of type integer: "string"'],
    ),
    ("integral number is an integer", {"type": "integer"}, 3.0, []),
    ("integer is a number", {"type": "number"}, 3, []),
    (
        "type string",
        {"type": "string"},
        5,
        ['spec.x: Invalid value: "integer": spec.x in body must be of type string: "integer"'],
    ),
    (
        "type boolean",
        {"type": "boolean"},
        "true",
        ['spec.x: Invalid value: "string": spec.x in body must be of type boolean: "string"'],
    ),
    (
        "type object",
        {"type": "object"},
        [1],
        ['spec.x: Invalid value: "array": spec.x in body must be of type object: "array"'],
    ),
    (
        "null is not a string",
        {"type": "string"},
        None,
        ['spec.x: Invalid value: "null": spec.x in body must be of type string: "null"'],
    ),
    ("nullable", {"type": "string", "nullable": True}, None, []),
    ("int-or-string takes a string", {"x-kubernetes-int-or-string": True}, "50%", []),
    ("int-or-string takes an integer", {"x-kubernetes-int-or-string": True}, 3, []),
    (
        # apiextensions converts int-or-string to the type list [integer, string]
        "int-or-string takes nothing else",
        {"x-kubernetes-int-or-string": True},
        True,
        ['spec.x: Invalid value: "boolean": spec.x in body must be of type integer,string: "boolean"'],
    ),
    (
        "maximum",
        {"type": "integer", "maximum": 10},
        11,
        ["spec.x: Invalid value: 11: spec.x in body should be less than or equal to 10"],
    ),
    (
        "exclusiveMaximum",
        {"type": "integer", "maximum": 10, "exclusiveMaximum": True},
        10,
        ["spec.x: Invalid value: 10: spec.x in body should be less than 10"],
    ),
    (
        "minimum",
        {"type": "number", "minimum": 0.5},
        0.25,
        ["spec.x: Invalid value: 0.25: spec.x in body should be greater than or equal to 0.5"],
    ),
    (
        "exclusiveMinimum",
        {"type": "integer", "minimum": 1, "exclusiveMinimum": True},
        1,
        ["spec.x: Invalid value: 1: spec.x in body should be greater than 1"],
    ),
    (
        "multipleOf",
        {"type": "integer", "multipleOf": 5},
        7,
        ["spec.x: Invalid value: 7: spec.x in body should be a multiple of 5"],
    ),
    (
        "enum",
        {"type": "string", "enum": ["Enforce", "Warn", "Off"]},
        "Sometimes",
        ['spec.x: Unsupported value: "Sometimes": supported values: "Enforce", "Warn", "Off"'],
    ),
    (
        # non-string allowed values are JSON-encoded, then quoted
        "enum of numbers",
        {"type": "integer", "enum": [1, 2]},
        3,
        ['spec.x: Unsupported value: 3: supported values: "1", "2"'],
    ),
    (
        # TooLong omits the value (field.TooLong, Kubernetes 1.32 wording)
        "maxLength",
        {"type": "string", "maxLength": 3},
        "abcd",
        ["spec.x: Too long: may not be more than 3 bytes"],
    ),
    (
        "minLength",
        {"type": "string", "minLength": 3},
        "ab",
        ['spec.x: Invalid value: "ab": spec.x in body should be at least 3 chars long'],
    ),
    (
        "pattern",
        {"type": "string", "pattern": "^sha256:[0-9a-f]{64}$"},
        "md5:x",
        ["spec.x: Invalid value: \"md5:x\": spec.x in body should match '^sha256:[0-9a-f]{64}$'"],
    ),
    (
        "format date-time",
        {"type": "string", "format": "date-time"},
        "yesterday",
        ['spec.x: Invalid value: "yesterday": spec.x in body must be of type date-time: "yesterday"'],
    ),
    ("format date-time ok", {"type": "string", "format": "date-time"}, "2026-12-01T07:00:00Z", []),
    (
        "format uuid",
        {"type": "string", "format": "uuid"},
        "not-a-uuid",
        ['spec.x: Invalid value: "not-a-uuid": spec.x in body must be of type uuid: "not-a-uuid"'],
    ),
    (
        "minItems",
        {"type": "array", "minItems": 1},
        [],
        ["spec.x: Invalid value: 0: spec.x in body should have at least 1 items"],
    ),
    (
        "maxItems",
        {"type": "array", "maxItems": 2},
        [1, 2, 3],
        ["spec.x: Too many: 3: must have at most 2 items"],
    ),
    (
        "minProperties",
        {"type": "object", "minProperties": 2},
        {"a": 1},
        ["spec.x: Invalid value: 1: spec.x in body should have at least 2 properties"],
    ),
    (
        "maxProperties",
        {"type": "object", "maxProperties": 1},
        {"a": 1, "b": 2},
        ["spec.x: Too many: 2: must have at most 1 item"],
    ),
    (
        "items",
        {"type": "array", "items": {"type": "integer", "maximum": 1}},
        [1, 2],
        ["spec.x[1]: Invalid value: 2: spec.x[1] in body should be less than or equal to 1"],
    ),
    (
        "additionalProperties",
        {"type": "object", "additionalProperties": {"type": "string"}},
        {"a": "x", "b": 2},
        ['spec.x.b: Invalid value: "integer": spec.x.b in body must be of type string: "integer"'],
    ),
    (
        "list-type set",
        {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
        ["a", "b", "a"],
        ['spec.x[2]: Duplicate value: "a"'],
    ),
    (
        "list-type map",
        {
            "type": "array",
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["name"],
            "items": {"type": "object", "properties": {"name": {"type": "string"}, "v": {"type": "string"}}},
        },
        [{"name": "A", "v": "1"}, {"name": "A", "v": "2"}],
        ['spec.x[1]: Duplicate value: map[string]interface {}{"name":"A"}'],
    ),
]


@pytest.mark.parametrize(
    ("schema", "value", "expected"), [pytest.param(s, v, e, id=n) for n, s, v, e in KEYWORD_CASES]
)
def test_keyword(schema: dict[str, Any], value: Any, expected: list[str]) -> None:
    outer = _schema({"type": "object", "properties": {"x": schema}})
    messages = _messages(outer, {"x": value})
    blocked = "some validation rules were not checked"
    assert [m for m in messages if blocked not in m] == expected


def test_required() -> None:
    schema = _schema(
        {
            "type": "object",
            "required": ["model"],
            "properties": {
                "model": {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}}
            },
        }
    )
    assert _messages(schema, {}) == ["spec.model: Required value"]
    assert _messages(schema, {"model": {}}) == ["spec.model.name: Required value"]
    assert validate(schema, _obj({"model": {}})) == [
        FieldError("spec.model.name", "FieldValueRequired", "spec.model.name: Required value")
    ]


def test_reasons_of_schema_errors() -> None:
    schema = _schema(
        {
            "type": "object",
            "properties": {
                "n": {"type": "string", "maxLength": 1},
                "e": {"type": "string", "enum": ["a"]},
                "t": {"type": "integer"},
                "l": {"type": "array", "maxItems": 0},
            },
        }
    )
    errors = validate(schema, _obj({"n": "xx", "e": "b", "t": "1", "l": [1]}))
    assert [(e.path, e.reason) for e in errors] == [
        ("spec.n", "FieldValueTooLong"),
        ("spec.e", "FieldValueNotSupported"),
        ("spec.t", "FieldValueTypeInvalid"),
        ("spec.l", "FieldValueTooMany"),
        ("", "FieldValueInvalid"),  # CEL skipped: see below
    ]


def test_cel_rules_are_skipped_after_type_or_enum_errors() -> None:
    # apiextensions-apiserver `hasBlockingErr`: CEL would see values of the wrong type
    schema = _schema(
        {
            "type": "object",
            "properties": {"n": {"type": "integer"}},
            "x-kubernetes-validations": [{"rule": "self.n > 1"}],
        }
    )
    assert _messages(schema, {"n": "x"}) == [
        'spec.n: Invalid value: "string": spec.n in body must be of type integer: "string"',
        '<nil>: Invalid value: "null": some validation rules were not checked because the object was '
        "invalid; correct the existing errors to complete validation",
    ]


@given(st.integers(-20, 20))
def test_bounds_accept_exactly_the_range(value: int) -> None:
    schema = _schema(
        {"type": "object", "properties": {"x": {"type": "integer", "minimum": -5, "maximum": 5}}}
    )
    assert len(_messages(schema, {"x": value})) == (0 if -5 <= value <= 5 else 1)


# --------------------------------------------------------------------------------------------------
# CEL x-kubernetes-validations


def _rules(*rules: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return _schema(
        {
            "type": "object",
            "properties": {
                "min": {"type": "integer"},
                "max": {"type": "integer"},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            },
            "x-kubernetes-validations": list(rules),
            **extra,
        }
    )


CEL_CASES: list[tuple[str, dict[str, Any], dict[str, Any], list[str]]] = [
    ("rule holds", {"rule": "self.min <= self.max"}, {"min": 1, "max": 2}, []),
    (
        "default message names the rule",
        {"rule": "self.min <= self.max"},
        {"min": 3, "max": 2},
        ['spec: Invalid value: "object": failed rule: self.min <= self.max'],
    ),
    (
        "message",
        {"rule": "self.min <= self.max", "message": "min must not exceed max"},
        {"min": 3, "max": 2},
        ['spec: Invalid value: "object": min must not exceed max'],
    ),
    (
        "messageExpression",
        {
            "rule": "self.min <= self.max",
            "message": "m",
            "messageExpression": "'min ' + string(self.min) + ' > max'",
        },
        {"min": 3, "max": 2},
        ['spec: Invalid value: "object": min 3 > max'],
    ),
    (
        # a messageExpression that fails falls back to message
        "messageExpression error falls back to message",
        {"rule": "self.min <= self.max", "message": "fallback", "messageExpression": "self.nope"},
        {"min": 3, "max": 2},
        ['spec: Invalid value: "object": fallback'],
    ),
    (
        "fieldPath",
        {"rule": "self.min <= self.max", "message": "too big", "fieldPath": ".min"},
        {"min": 3, "max": 2},
        ['spec.min: Invalid value: "object": too big'],
    ),
    (
        "fieldPath into a map",
        {"rule": "!('a.b' in self.labels)", "message": "reserved", "fieldPath": ".labels['a.b']"},
        {"labels": {"a.b": "x"}},
        ['spec.labels[a.b]: Invalid value: "object": reserved'],
    ),
    (
        "reason FieldValueForbidden",
        {"rule": "!has(self.max)", "message": "max is not allowed here", "reason": "FieldValueForbidden"},
        {"max": 1},
        ["spec: Forbidden: max is not allowed here"],
    ),
    (
        "reason FieldValueRequired",
        {
            "rule": "has(self.max)",
            "message": "max is required",
            "reason": "FieldValueRequired",
            "fieldPath": ".max",
        },
        {},
        ["spec.max: Required value: max is required"],
    ),
    (
        # field.Duplicate carries the value only, no detail
        "reason FieldValueDuplicate",
        {"rule": "false", "message": "dup", "reason": "FieldValueDuplicate"},
        {},
        ['spec: Duplicate value: "object"'],
    ),
    (
        "evaluation error",
        {"rule": "self.max > 1"},
        {},
        ['spec: Invalid value: "object": no such key: max evaluating rule: self.max > 1'],
    ),
    (
        "evaluation error: no such overload",
        {"rule": "self.labels + 1 == 2", "message": "labels"},
        {"labels": {}},
        [
            "spec: Invalid value: \"object\": 'no such overload': call arguments did not match a supported "
            "operator, function or macro signature for rule: labels"
        ],
    ),
]


@pytest.mark.parametrize(
    ("rule", "spec", "expected"), [pytest.param(r, s, e, id=n) for n, r, s, e in CEL_CASES]
)
def test_cel_rule(rule: dict[str, Any], spec: dict[str, Any], expected: list[str]) -> None:
    assert _messages(_rules(rule), spec) == expected


def test_cel_rule_reasons() -> None:
    forbidden = _rules({"rule": "false", "reason": "FieldValueForbidden"})
    assert [e.reason for e in validate(forbidden, _obj({}))] == ["FieldValueForbidden"]
    assert [e.reason for e in validate(_rules({"rule": "false"}), _obj({}))] == ["FieldValueInvalid"]


def test_cel_rules_on_list_items_run_per_item() -> None:
    gate = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "min": {"type": "number"}},
        "x-kubernetes-validations": [{"rule": "has(self.min)", "message": "a gate needs min"}],
    }
    schema = _schema({"type": "object", "properties": {"gates": {"type": "array", "items": gate}}})
    assert _messages(schema, {"gates": [{"name": "a", "min": 1}, {"name": "b"}]}) == [
        'spec.gates[1]: Invalid value: "object": a gate needs min'
    ]


def test_cel_rules_on_map_values_use_key_paths() -> None:
    value = {"type": "string", "x-kubernetes-validations": [{"rule": "self != 'bad'"}]}
    schema = _schema(
        {"type": "object", "properties": {"m": {"type": "object", "additionalProperties": value}}}
    )
    assert _messages(schema, {"m": {"ok": "fine", "k": "bad"}}) == [
        "spec.m[k]: Invalid value: \"string\": failed rule: self != 'bad'"
    ]


def test_cel_rule_at_the_root_sees_name_but_not_other_metadata() -> None:
    schema = {
        "type": "object",
        "properties": {"metadata": {"type": "object"}, "spec": {"type": "object"}},
        "x-kubernetes-validations": [
            {"rule": "self.metadata.name.size() <= 3", "message": "name too long"},
            {"rule": "!has(self.metadata.labels)", "message": "labels are hidden from CEL"},
        ],
    }
    obj = {**_obj({}), "metadata": {"name": "long-name", "labels": {"a": "b"}}}
    assert [e.message for e in validate(schema, obj)] == ['<nil>: Invalid value: "object": name too long']


TRANSITION = _schema(
    {
        "type": "object",
        "properties": {
            "name": {
                "type": "string",
                "x-kubernetes-validations": [{"rule": "self == oldSelf", "message": "name is immutable"}],
            },
            "gates": {
                "type": "array",
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["name"],
                "items": {
                    "type": "object",
                    "properties": {"name": {"type": "string"}, "min": {"type": "integer"}},
                    "x-kubernetes-validations": [
                        {"rule": "self.min >= oldSelf.min", "message": "min may only grow"}
                    ],
                },
            },
            "tags": {
                "type": "array",
                "items": {"type": "string", "x-kubernetes-validations": [{"rule": "self == oldSelf"}]},
            },
        },
    }
)


def test_transition_rules_are_skipped_on_create() -> None:
    assert _messages(TRANSITION, {"name": "a", "gates": [{"name": "f1", "min": 1}], "tags": ["x"]}) == []


def test_transition_rules_compare_with_the_old_value() -> None:
    assert _messages(TRANSITION, {"name": "b"}, old_spec={"name": "a"}) == [
        'spec.name: Invalid value: "string": name is immutable'
    ]
    assert _messages(TRANSITION, {"name": "a"}, old_spec={"name": "a"}) == []


def test_transition_rules_skip_fields_new_in_the_update() -> None:
    assert _messages(TRANSITION, {"name": "a"}, old_spec={}) == []


def test_transition_rules_correlate_map_list_items_by_key() -> None:
    old = {"gates": [{"name": "f1", "min": 5}, {"name": "auc", "min": 1}]}
    new = {"gates": [{"name": "auc", "min": 2}, {"name": "f1", "min": 4}, {"name": "new", "min": 0}]}
    assert _messages(TRANSITION, new, old_spec=old) == [
        'spec.gates[1]: Invalid value: "object": min may only grow'
    ]


def test_transition_rules_do_not_correlate_atomic_list_items() -> None:
    # only items of x-kubernetes-list-type: map lists have an oldSelf
    assert _messages(TRANSITION, {"tags": ["b"]}, old_spec={"tags": ["a"]}) == []


# Ratcheting (CRDValidationRatcheting, beta and on by default since Kubernetes 1.30): an update may keep
# a value that a tightened schema now rejects, as long as that value does not change.
RATCHET = _schema(
    {
        "type": "object",
        "properties": {
            "replicas": {"type": "integer", "maximum": 10},
            "name": {"type": "string", "x-kubernetes-validations": [{"rule": "self.size() <= 3"}]},
            "other": {"type": "string"},
            "gates": {
                "type": "array",
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["name"],
                "items": {
                    "type": "object",
                    "properties": {"name": {"type": "string"}, "min": {"type": "integer", "minimum": 0}},
                },
            },
        },
    }
)


def test_unchanged_invalid_values_ratchet() -> None:
    old = {"replicas": 11, "name": "toolong", "gates": [{"name": "a", "min": -1}]}
    new = {**old, "other": "x", "gates": [{"name": "b", "min": 1}, {"name": "a", "min": -1}]}
    assert _messages(RATCHET, new, old_spec=old) == []


def test_changed_invalid_values_do_not_ratchet() -> None:
    old = {"replicas": 11, "name": "toolong", "gates": [{"name": "a", "min": -1}]}
    new = {"replicas": 12, "name": "longer", "gates": [{"name": "a", "min": -2}]}
    assert _messages(RATCHET, new, old_spec=old) == [
        "spec.replicas: Invalid value: 12: spec.replicas in body should be less than or equal to 10",
        "spec.gates[0].min: Invalid value: -2: "
        "spec.gates[0].min in body should be greater than or equal to 0",
        'spec.name: Invalid value: "string": failed rule: self.size() <= 3',
    ]


# --------------------------------------------------------------------------------------------------
# The 422 body


def test_invalid_status_with_one_error() -> None:
    errors = [FieldError("spec.model.name", "FieldValueRequired", "spec.model.name: Required value")]
    assert invalid_status("ModelRelease", "modelrelease.io", "fraud", errors) == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'ModelRelease.modelrelease.io "fraud" is invalid: spec.model.name: Required value',
        "reason": "Invalid",
        "details": {
            "name": "fraud",
            "group": "modelrelease.io",
            "kind": "ModelRelease",
            "causes": [
                {"reason": "FieldValueRequired", "message": "Required value", "field": "spec.model.name"}
            ],
        },
        "code": 422,
    }


def test_invalid_status_with_several_errors() -> None:
    schema = _rules(
        {"rule": "self.min <= self.max", "message": "min must not exceed max"}, required=["labels"]
    )
    errors = validate(schema, _obj({"min": 3, "max": 2}))
    body = invalid_status("Widget", "x.io", "w", errors)
    assert body["message"] == (
        'Widget.x.io "w" is invalid: '
        '[spec.labels: Required value, spec: Invalid value: "object": min must not exceed max]'
    )
    assert body["details"]["causes"] == [
        {"reason": "FieldValueRequired", "message": "Required value", "field": "spec.labels"},
        {
            "reason": "FieldValueInvalid",
            "message": 'Invalid value: "object": min must not exceed max',
            "field": "spec",
        },
    ]


def test_invalid_status_lists_a_repeated_message_once_and_omits_an_empty_field() -> None:
    error = FieldError("", "FieldValueInvalid", '<nil>: Invalid value: "object": bad')
    body = invalid_status("Pod", "", "p", [error, error])
    assert body["message"] == 'Pod "p" is invalid: <nil>: Invalid value: "object": bad'
    assert (
        body["details"]["causes"]
        == [{"reason": "FieldValueInvalid", "message": 'Invalid value: "object": bad'}] * 2
    )


# --------------------------------------------------------------------------------------------------
# The project's own CRD


@pytest.fixture(scope="module")
def release_schema() -> dict[str, Any]:
    crd = yaml.safe_load(CRD.read_text())
    schema: dict[str, Any] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def _release(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "modelrelease.io/v1alpha1",
        "kind": "ModelRelease",
        "metadata": {"name": "fraud", "namespace": "ml"},
        "spec": {"model": {"name": "fraud-detector", "alias": "champion"}, **spec},
    }


def test_a_good_release_is_defaulted_and_valid(release_schema: dict[str, Any]) -> None:
    admitted, pruned = prune_and_default(release_schema, _release())
    assert pruned == []
    assert admitted["spec"]["verify"]["digest"] == "Enforce"
    assert admitted["spec"]["registry"]["pollInterval"] == "60s"
    assert admitted["spec"]["rollout"]["progressDeadlineSeconds"] == 600
    assert validate(release_schema, admitted) == []


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        pytest.param(
            {"model": {"name": "m", "alias": "a", "version": "3"}},
            [
                'spec.model: Invalid value: "object": exactly one of spec.model.version, spec.model.alias or '
                "spec.model.stage must be set"
            ],
            id="two references",
        ),
        pytest.param({"model": {"alias": "a"}}, ["spec.model.name: Required value"], id="no model name"),
        pytest.param(
            {"verify": {"digest": "Sometimes"}},
            [
                'spec.verify.digest: Unsupported value: "Sometimes": '
                'supported values: "Enforce", "Warn", "Off"'
            ],
            id="bad mode",
        ),
    ],
)
def test_bad_releases(release_schema: dict[str, Any], spec: dict[str, Any], expected: list[str]) -> None:
    release = _release(**spec)
    admitted, _ = prune_and_default(release_schema, release)
    messages = [e.message for e in validate(release_schema, admitted)]
    assert [m for m in messages if "some validation rules were not checked" not in m] == expected


def test_release_transition_keeps_existing_object_valid(release_schema: dict[str, Any]) -> None:
    old, _ = prune_and_default(release_schema, _release())
    new = copy.deepcopy(old)
    new["spec"]["model"]["alias"] = "challenger"
    assert validate(release_schema, new, old) == []
