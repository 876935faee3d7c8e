"""Custom-resource schema handling as the real apiserver does it, as pure functions.

- `prune_and_default`: drop fields a structural schema does not declare, drop `null`s the schema
  does not allow, apply `default`s (apiextensions-apiserver `structural/pruning` and `defaulting`).
- `validate`: the openAPIV3Schema value validations (kube-openapi) and the CEL
  `x-kubernetes-validations` rules, with the apiserver's field paths and message wording.
- `invalid_status`: the 422 `Status` body for a list of `FieldError`s.

Error texts follow k8s.io/apimachinery `field.Error` (`<path>: <type>: <value>: <detail>`) and the
kube-openapi messages apiextensions-apiserver wraps (`<path> in body should be …`). Supported
keywords: type, nullable, enum, required, properties, additionalProperties, items, minimum,
maximum, exclusiveMinimum, exclusiveMaximum, multipleOf, minLength, maxLength, pattern, format
(date-time, date, uuid, ipv4, ipv6, cidr, byte), minItems, maxItems, minProperties,
maxProperties, x-kubernetes-list-type set/map uniqueness, x-kubernetes-int-or-string,
x-kubernetes-preserve-unknown-fields, x-kubernetes-embedded-resource, and ratcheting on updates.
Not supported: allOf, anyOf, oneOf, not, uniqueItems, CEL cost budgets, `optionalOldSelf`, and the
Kubernetes CEL libraries cel-python lacks (quantity, url, ip, isSorted …: such rules fail to evaluate).
"""

from __future__ import annotations

import base64
import binascii
import copy
import datetime
import ipaddress
import json
import re
import uuid
from dataclasses import dataclass
from typing import Any

from modelrelease.sandbox import cel
from modelrelease.sandbox.apiserver.patch import json_equal

JSON = Any

REQUIRED = "FieldValueRequired"
INVALID = "FieldValueInvalid"
NOT_SUPPORTED = "FieldValueNotSupported"
TOO_LONG = "FieldValueTooLong"
TOO_MANY = "FieldValueTooMany"
TYPE_INVALID = "FieldValueTypeInvalid"
FORBIDDEN = "FieldValueForbidden"
DUPLICATE = "FieldValueDuplicate"

# How each reason reads in a message (k8s.io/apimachinery/pkg/util/validation/field ErrorType.String()).
_TYPE_WORDS = {
    REQUIRED: "Required value",
    INVALID: "Invalid value",
    NOT_SUPPORTED: "Unsupported value",
    TOO_LONG: "Too long",
    TOO_MANY: "Too many",
    TYPE_INVALID: "Invalid value",
    FORBIDDEN: "Forbidden",
    DUPLICATE: "Duplicate value",
}
_NO_VALUE = object()  # marks an error rendered without its bad value (Required, Forbidden, Too long)


@dataclass(frozen=True)
class FieldError:
    """One invalid field, as `k8s.io/apimachinery` `field.Error` renders it."""

    path: str  # "spec.model.name"; "" for the object itself
    reason: str  # FieldValueRequired, FieldValueInvalid, … (the Status cause type)
    message: str  # "spec.model.name: Required value"

    @property
    def detail(self) -> str:
        """The message without the leading path (the Status cause message)."""
        return self.message.removeprefix(f"{self.path or '<nil>'}: ")


def _field_error(path: str, reason: str, value: Any = _NO_VALUE, detail: str = "") -> FieldError:
    body = _TYPE_WORDS[reason]
    if value is not _NO_VALUE:
        body += ": " + _go_value(value)
    if detail:
        body += ": " + detail
    return FieldError(path, reason, f"{path or '<nil>'}: {body}")


def _go_value(value: JSON) -> str:
    """A bad value as `field.Error` prints it: strings quoted, numbers and booleans bare."""
    if value is None:
        return '"null"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return _number(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return _go_syntax(value)


def _go_syntax(value: JSON) -> str:
    """Go's `%#v` of a decoded JSON value (used for objects and lists)."""
    if isinstance(value, dict):
        inner = ", ".join(f"{json.dumps(k)}:{_go_syntax(v)}" for k, v in sorted(value.items()))
        return "map[string]interface {}{" + inner + "}"
    if isinstance(value, list):
        return "[]interface {}{" + ", ".join(_go_syntax(v) for v in value) + "}"
    if value is None:
        return "interface {}(nil)"
    return _go_value(value)


def _number(value: float) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    return repr(value) if isinstance(value, float) else str(value)


# --------------------------------------------------------------------------------------------------
# Pruning and defaulting


def prune_and_default(schema: dict[str, Any], obj: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Prune unknown fields, drop disallowed nulls, apply defaults; return the result and the pruned
    fields' paths (`spec.foo`, `spec.items[0].bar`), as `fieldValidation` reports them.

    The root's `apiVersion`, `kind` and `metadata` are kept as they are (the apiserver handles
    object metadata itself).
    """
    result = copy.deepcopy(obj)
    pruned: list[str] = []
    _prune(result, schema, "", pruned, root=True)
    _drop_nulls(result, schema)
    _default(result, schema)
    return result, pruned


_OBJECT_META_KEYS = ("apiVersion", "kind", "metadata")


def _prune(
    value: JSON, schema: dict[str, Any] | None, path: str, pruned: list[str], root: bool = False
) -> None:
    """apiextensions `structural/pruning`: the root is an embedded resource; a value without a
    schema loses every key of its objects; `x-kubernetes-preserve-unknown-fields` keeps unknown keys."""
    preserve = schema is not None and bool(schema.get("x-kubernetes-preserve-unknown-fields"))
    if isinstance(value, list):
        items = schema.get("items") if schema is not None else None
        for i, item in enumerate(value):
            if preserve and not isinstance(items, dict):
                continue
            _prune(item, items if isinstance(items, dict) else None, f"{path}[{i}]", pruned)
        return
    if not isinstance(value, dict):
        return
    embedded = root or (schema is not None and bool(schema.get("x-kubernetes-embedded-resource")))
    for key in list(value):
        if embedded and key in _OBJECT_META_KEYS:
            continue  # the apiserver coerces object metadata itself
        child = _child_schema(schema, key) if schema is not None else None
        if child is not None or (schema is not None and schema.get("additionalProperties") is True):
            _prune(value[key], child, _join(path, key), pruned)
        elif not preserve:
            pruned.append(_join(path, key))
            del value[key]


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _child_schema(schema: dict[str, Any], key: str) -> dict[str, Any] | None:
    if key in schema.get("properties", {}):
        return schema["properties"][key]
    additional = schema.get("additionalProperties")
    return additional if isinstance(additional, dict) else None


def _drop_nulls(value: JSON, schema: dict[str, Any]) -> None:
    """Remove `null`s the schema does not allow (not `nullable`) and that no default replaces."""
    if isinstance(value, dict):
        for key in list(value):
            child = _child_schema(schema, key)
            if child is None:
                continue
            if value[key] is None and not child.get("nullable") and "default" not in child:
                del value[key]
            else:
                _drop_nulls(value[key], child)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for item in value:
            _drop_nulls(item, schema["items"])


def _default(value: JSON, schema: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for key, child in schema.get("properties", {}).items():
            if "default" in child and (
                key not in value or (value[key] is None and not child.get("nullable"))
            ):
                value[key] = copy.deepcopy(child["default"])
        for key, item in value.items():
            child = _child_schema(schema, key)
            if child is not None:
                _default(item, child)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        items = schema["items"]
        for i, item in enumerate(value):
            if item is None and "default" in items and not items.get("nullable"):
                value[i] = copy.deepcopy(items["default"])
            _default(value[i], items)


# --------------------------------------------------------------------------------------------------
# OpenAPI value validation


def validate(
    schema: dict[str, Any], obj: dict[str, Any], old: dict[str, Any] | None = None
) -> list[FieldError]:
    """Validate `obj` (pruned and defaulted) against the schema, then its CEL rules.

    As in the apiserver: CEL rules are skipped when a type or enum error makes them unreliable, and
    one error says so; transition rules (those using `oldSelf`) only run where `old` has a value; and
    on updates validation ratchets (CRDValidationRatcheting, on by default since 1.30): a value equal
    to its old value (object properties and map-list items correlate) is not re-validated, so an
    object stored under an older schema can still be updated elsewhere.
    """
    errors: list[FieldError] = []
    _check(obj, schema, "", errors, old)
    if any(e.reason in (TYPE_INVALID, NOT_SUPPORTED) for e in errors):
        detail = (
            "some validation rules were not checked because the object was invalid; "
            "correct the existing errors to complete validation"
        )
        return [*errors, _field_error("", INVALID, None, detail)]
    _check_rules(_cel_root(obj), schema, _cel_root(old) if old is not None else None, "", errors)
    return errors


def _in_body(path: str, text: str) -> str:
    return f"{path} in body {text}"


def _check(
    value: JSON, schema: dict[str, Any], path: str, errors: list[FieldError], old: JSON = None
) -> None:
    if old is not None and json_equal(value, old):
        return  # ratcheting: unchanged values keep whatever validity they had
    if value is None:
        if not schema.get("nullable") and _declared_type(schema):
            detail = _in_body(path, f'must be of type {_declared_type(schema)}: "null"')
            errors.append(_field_error(path, TYPE_INVALID, "null", detail))
        return
    _check_type(value, schema, path, errors)
    if isinstance(value, str):
        _check_string(value, schema, path, errors)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        _check_number(value, schema, path, errors)
    elif isinstance(value, list):
        _check_list(value, schema, path, errors, old)
    if "enum" in schema and not any(json_equal(value, allowed) for allowed in schema["enum"]):
        supported = [v if isinstance(v, str) else json.dumps(v) for v in schema["enum"]]
        detail = "supported values: " + ", ".join(json.dumps(v, ensure_ascii=False) for v in supported)
        errors.append(_field_error(path, NOT_SUPPORTED, value, detail))
    if isinstance(value, dict):
        _check_object(value, schema, path, errors, old if isinstance(old, dict) else {})


def _declared_type(schema: dict[str, Any]) -> str:
    """The schema's type as kube-openapi names it; int-or-string is both `integer` and `string`."""
    return "integer,string" if schema.get("x-kubernetes-int-or-string") else str(schema.get("type", ""))


def _json_type(value: JSON) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object" if isinstance(value, dict) else "null"


def _check_type(value: JSON, schema: dict[str, Any], path: str, errors: list[FieldError]) -> None:
    expected = _declared_type(schema)
    actual = _json_type(value)
    allowed = expected.split(",")
    matches = (
        not expected
        or actual in allowed
        or ("number" in allowed and actual == "integer")
        or ("integer" in allowed and actual == "number" and float(value).is_integer())
    )
    if not matches:
        detail = _in_body(path, f'must be of type {expected}: "{actual}"')
        errors.append(_field_error(path, TYPE_INVALID, actual, detail))


def _check_string(value: str, schema: dict[str, Any], path: str, errors: list[FieldError]) -> None:
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        limit = schema["maxLength"]
        detail = f"may not be more than {limit} byte{'' if limit == 1 else 's'}"
        errors.append(_field_error(path, TOO_LONG, detail=detail))
    if "minLength" in schema and len(value) < schema["minLength"]:
        detail = _in_body(path, f"should be at least {schema['minLength']} chars long")
        errors.append(_field_error(path, INVALID, value, detail))
    if "pattern" in schema and not re.search(schema["pattern"], value):
        errors.append(
            _field_error(path, INVALID, value, _in_body(path, f"should match '{schema['pattern']}'"))
        )
    check = _FORMATS.get(schema.get("format", ""))
    if check is not None and not check(value):
        detail = _in_body(
            path, f"must be of type {schema['format']}: {json.dumps(value, ensure_ascii=False)}"
        )
        errors.append(_field_error(path, TYPE_INVALID, value, detail))


def _check_number(value: float, schema: dict[str, Any], path: str, errors: list[FieldError]) -> None:
    if "maximum" in schema:
        limit, exclusive = schema["maximum"], bool(schema.get("exclusiveMaximum"))
        if value > limit or (exclusive and value == limit):
            words = "less than" if exclusive else "less than or equal to"
            errors.append(
                _field_error(path, INVALID, value, _in_body(path, f"should be {words} {_number(limit)}"))
            )
    if "minimum" in schema:
        limit, exclusive = schema["minimum"], bool(schema.get("exclusiveMinimum"))
        if value < limit or (exclusive and value == limit):
            words = "greater than" if exclusive else "greater than or equal to"
            errors.append(
                _field_error(path, INVALID, value, _in_body(path, f"should be {words} {_number(limit)}"))
            )
    factor = schema.get("multipleOf")
    if factor and (value / factor) != int(value / factor):
        errors.append(
            _field_error(path, INVALID, value, _in_body(path, f"should be a multiple of {_number(factor)}"))
        )


def _check_list(
    value: list[Any], schema: dict[str, Any], path: str, errors: list[FieldError], old: JSON
) -> None:
    if "minItems" in schema and len(value) < schema["minItems"]:
        detail = _in_body(path, f"should have at least {schema['minItems']} items")
        errors.append(_field_error(path, INVALID, len(value), detail))
    if "maxItems" in schema and len(value) > schema["maxItems"]:
        errors.append(_too_many(path, len(value), schema["maxItems"]))
    items = schema.get("items")
    if isinstance(items, dict):
        for i, item in enumerate(value):
            _check(item, items, f"{path}[{i}]", errors, _old_item(schema, item, old))
    _check_list_type(value, schema, path, errors)


def _too_many(path: str, actual: int, limit: int) -> FieldError:
    return _field_error(path, TOO_MANY, actual, f"must have at most {limit} item{'' if limit == 1 else 's'}")


def _check_list_type(value: list[Any], schema: dict[str, Any], path: str, errors: list[FieldError]) -> None:
    """`x-kubernetes-list-type: set|map`: items (or the map keys of items) must be unique."""
    list_type = schema.get("x-kubernetes-list-type")
    if list_type not in ("set", "map"):
        return
    keys = schema.get("x-kubernetes-list-map-keys", [])
    seen: list[JSON] = []
    for i, item in enumerate(value):
        if list_type == "map":
            if not isinstance(item, dict):
                continue
            identity: JSON = {k: item[k] for k in keys if k in item}
        else:
            identity = item
        if any(json_equal(identity, earlier) for earlier in seen):
            errors.append(_field_error(f"{path}[{i}]", DUPLICATE, identity))
        else:
            seen.append(identity)


def _check_object(
    value: dict[str, Any], schema: dict[str, Any], path: str, errors: list[FieldError], old: dict[str, Any]
) -> None:
    if "minProperties" in schema and len(value) < schema["minProperties"]:
        detail = _in_body(path, f"should have at least {schema['minProperties']} properties")
        errors.append(_field_error(path, INVALID, len(value), detail))
    if "maxProperties" in schema and len(value) > schema["maxProperties"]:
        errors.append(_too_many(path, len(value), schema["maxProperties"]))
    properties: dict[str, Any] = schema.get("properties", {})
    for key, child in properties.items():
        if key in value:
            _check(value[key], child, _join(path, key), errors, old.get(key))
    additional = schema.get("additionalProperties")
    if isinstance(additional, dict):
        for key, item in value.items():
            if key not in properties:
                _check(item, additional, _join(path, key), errors, old.get(key))
    for key in schema.get("required", []):
        if key not in value:
            errors.append(_field_error(_join(path, key), REQUIRED))


def _is_date_time(value: str) -> bool:
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})", value):
        return False
    try:
        datetime.datetime.fromisoformat(value.replace("z", "Z").replace("t", "T"))
    except ValueError:
        return False
    return True


def _is_date(value: str) -> bool:
    try:
        datetime.date.fromisoformat(value)
    except ValueError:
        return False
    return bool(re.fullmatch(r"\d{4}-\d{2}-\d{2}", value))


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return bool(re.fullmatch(r"[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}", value))


def _parses(parser: Any) -> Any:
    def check(value: str) -> bool:
        try:
            parser(value)
        except (ValueError, binascii.Error):
            return False
        return True

    return check


_FORMATS = {
    "date-time": _is_date_time,
    "date": _is_date,
    "uuid": _is_uuid,
    "ipv4": _parses(ipaddress.IPv4Address),
    "ipv6": _parses(ipaddress.IPv6Address),
    "cidr": _parses(lambda v: ipaddress.ip_network(v, strict=False)),
    "byte": _parses(lambda v: base64.b64decode(v, validate=True)),
}


# --------------------------------------------------------------------------------------------------
# CEL x-kubernetes-validations

_OLD_SELF = re.compile(r"\boldSelf\b")


def _cel_root(obj: dict[str, Any]) -> dict[str, Any]:
    """The root `self` of CEL rules: the object, with only `name` and `generateName` of its metadata."""
    view = dict(obj)
    if isinstance(obj.get("metadata"), dict):
        view["metadata"] = {k: v for k, v in obj["metadata"].items() if k in ("name", "generateName")}
    return view


def _check_rules(value: JSON, schema: dict[str, Any], old: JSON, path: str, errors: list[FieldError]) -> None:
    if value is None:
        return
    for rule in schema.get("x-kubernetes-validations", []):
        error = _check_rule(rule, schema, value, old, path)
        if error is not None:
            errors.append(error)
    if isinstance(value, dict):
        properties: dict[str, Any] = schema.get("properties", {})
        additional = schema.get("additionalProperties")
        old_map = old if isinstance(old, dict) else {}
        for key, item in value.items():
            if key in properties:
                _check_rules(item, properties[key], old_map.get(key), _join(path, key), errors)
            elif isinstance(additional, dict):
                _check_rules(item, additional, old_map.get(key), f"{path}[{key}]", errors)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            _check_rules(item, schema["items"], _old_item(schema, item, old), f"{path}[{i}]", errors)


def _old_item(schema: dict[str, Any], item: JSON, old: JSON) -> JSON:
    """The old value of a list item: only items of `x-kubernetes-list-type: map` lists correlate."""
    if (
        schema.get("x-kubernetes-list-type") != "map"
        or not isinstance(old, list)
        or not isinstance(item, dict)
    ):
        return None
    keys = schema.get("x-kubernetes-list-map-keys", [])
    for candidate in old:
        if isinstance(candidate, dict) and all(json_equal(candidate.get(k), item.get(k)) for k in keys):
            return candidate
    return None


def _check_rule(
    rule: dict[str, Any], schema: dict[str, Any], value: JSON, old: JSON, path: str
) -> FieldError | None:
    text = str(rule.get("rule", ""))
    transition = bool(_OLD_SELF.search(text))
    if transition and old is None:
        return None  # a transition rule runs only on an update that has an old value here
    if not transition and old is not None and json_equal(value, old):
        return None  # ratcheting
    node_type = str(schema.get("type", ""))
    old_self = old if transition else None
    try:
        holds = cel.evaluate(text, value, old_self)
    except cel.CELError as error:
        problem = cel.error_text(error)
        if problem.startswith("no such overload"):
            detail = (
                f"'{problem}': call arguments did not match a supported operator, function or macro "
                f"signature for rule: {_rule_text(rule)}"
            )
        else:
            detail = f"{problem} evaluating rule: {_rule_text(rule)}"
        return _field_error(path, INVALID, node_type, detail)
    if holds:
        return None
    detail = _rule_message(rule, value, old_self) or (
        str(rule["message"]).strip() if rule.get("message") else f"failed rule: {text.strip()}"
    )
    field_path = _resolve_field_path(path, str(rule.get("fieldPath", "")))
    reason = rule.get("reason") or INVALID
    if reason == FORBIDDEN:
        return _field_error(field_path, FORBIDDEN, detail=detail)
    if reason == REQUIRED:
        return _field_error(field_path, REQUIRED, detail=detail)
    if reason == DUPLICATE:
        return _field_error(field_path, DUPLICATE, node_type)
    return _field_error(field_path, INVALID, node_type, detail)


def _rule_text(rule: dict[str, Any]) -> str:
    return str(rule.get("message") or rule.get("rule", "")).strip()


def _rule_message(rule: dict[str, Any], value: JSON, old: JSON) -> str:
    """The `messageExpression` result, or "" when it is absent, fails, or is not a one-line string
    (the apiserver then falls back to `message`)."""
    expression = rule.get("messageExpression")
    if not expression:
        return ""
    try:
        message = cel.evaluate_value(str(expression), value, old)
    except cel.CELError:
        return ""
    if not isinstance(message, str) or not message.strip() or "\n" in message:
        return ""
    return message.strip()


_FIELD_PATH_TOKEN = re.compile(r"\.([A-Za-z_][A-Za-z0-9_-]*)|\['((?:[^'\\]|\\.)*)'\]")


def _resolve_field_path(path: str, field_path: str) -> str:
    """Append a rule's `fieldPath` (`.spec.x`, `.labels['a.b']`) to the path of the rule's node."""
    position = 0
    while position < len(field_path):
        match = _FIELD_PATH_TOKEN.match(field_path, position)
        if match is None:
            return path  # an invalid fieldPath is rejected when the CRD is created; report at the node
        name = match.group(1) if match.group(1) is not None else match.group(2)
        path = _join(path, name) if match.group(1) is not None else f"{path}[{name}]"
        position = match.end()
    return path


# --------------------------------------------------------------------------------------------------
# The 422 Status


def invalid_status(kind: str, group: str, name: str, errors: list[FieldError]) -> dict[str, Any]:
    """The `Status` body of a 422 Invalid answer, as `apierrors.NewInvalid` builds it."""
    qualified = f"{kind}.{group}" if group else kind
    messages = list(dict.fromkeys(e.message for e in errors))  # identical messages are shown once
    summary = messages[0] if len(messages) == 1 else "[" + ", ".join(messages) + "]"
    causes = [
        {"reason": e.reason, "message": e.detail, **({"field": e.path} if e.path else {})} for e in errors
    ]
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": f'{qualified} "{name}" is invalid: {summary}'
        if errors
        else f'{qualified} "{name}" is invalid',
        "reason": "Invalid",
        "details": {"name": name, "group": group, "kind": kind, "causes": causes},
        "code": 422,
    }
