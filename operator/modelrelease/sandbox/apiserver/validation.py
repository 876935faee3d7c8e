"""The built-in validation rules that controllers trip over in practice (workload selectors, containers,
Service ports), with the real server's field paths and messages. Pure: returns Invalid causes."""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

Obj = dict[str, Any]
Cause = tuple[str, str, str]  # (reason, field, message after the field)

_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_CONFIG_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
_ANNOTATIONS_LIMIT = 256 * 1024
_WORKLOADS = {("apps", "Deployment"), ("apps", "ReplicaSet"), ("apps", "StatefulSet"), ("apps", "DaemonSet")}


def _go_map(labels: dict[str, Any]) -> str:
    inner = ", ".join(f'"{k}":"{v}"' for k, v in sorted(labels.items()))
    return f"map[string]string{{{inner}}}"


def _selector_matches(selector: Obj, labels: dict[str, Any]) -> bool:
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        present = key in labels
        if (op == "In" and not (present and labels[key] in values)) or (
            op == "NotIn" and present and labels[key] in values
        ):
            return False
        if (op == "Exists" and not present) or (op == "DoesNotExist" and present):
            return False
    return True


def _containers(spec: Obj, path: str) -> list[Cause]:
    causes: list[Cause] = []
    containers = spec.get("containers")
    if not containers:
        return [("FieldValueRequired", f"{path}.containers", "Required value")]
    seen: set[str] = set()
    for i, c in enumerate(containers):
        where = f"{path}.containers[{i}]"
        name = c.get("name")
        if not name:
            causes.append(("FieldValueRequired", f"{where}.name", "Required value"))
        elif name in seen:
            causes.append(("FieldValueDuplicate", f"{where}.name", f'Duplicate value: "{name}"'))
        seen.add(name or "")
        if not c.get("image"):
            causes.append(("FieldValueRequired", f"{where}.image", "Required value"))
    return causes


def _workload(obj: Obj, old: Obj | None) -> list[Cause]:
    spec = obj.get("spec") or {}
    causes: list[Cause] = []
    selector = spec.get("selector")
    labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    if not selector:
        causes.append(("FieldValueRequired", "spec.selector", "Required value"))
    elif not (selector.get("matchLabels") or selector.get("matchExpressions")):
        causes.append(
            (
                "FieldValueInvalid",
                "spec.selector",
                "Invalid value: v1.LabelSelector{MatchLabels:map[string]string(nil), "
                "MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: empty selector is invalid for "
                "deployment",
            )
        )
    elif not _selector_matches(selector, labels):
        causes.append(
            (
                "FieldValueInvalid",
                "spec.template.metadata.labels",
                f"Invalid value: {_go_map(labels)}: `selector` does not match template `labels`",
            )
        )
    if old is not None and selector and (old.get("spec") or {}).get("selector") not in (None, selector):
        causes.append(("FieldValueInvalid", "spec.selector", "Invalid value: field is immutable"))
    if isinstance(spec.get("replicas"), int) and spec["replicas"] < 0:
        causes.append(
            (
                "FieldValueInvalid",
                "spec.replicas",
                f"Invalid value: {spec['replicas']}: must be greater than or equal to 0",
            )
        )
    causes.extend(_containers((spec.get("template") or {}).get("spec") or {}, "spec.template.spec"))
    return causes


def _label_name(obj: Obj, pattern: re.Pattern[str], what: str, rule: str) -> list[Cause]:
    name = str((obj.get("metadata") or {}).get("name", ""))
    if len(name) <= 63 and pattern.match(name):
        return []
    return [
        ("FieldValueInvalid", "metadata.name", f'Invalid value: "{name}": a {what} must consist of {rule}')
    ]


def _service(obj: Obj) -> list[Cause]:
    causes = _label_name(
        obj,
        _DNS1035_LABEL,
        "DNS-1035 label",
        "lower case alphanumeric characters or '-', "
        "start with an alphabetic character, and end with an alphanumeric character",
    )
    for i, port in enumerate((obj.get("spec") or {}).get("ports") or []):
        number = port.get("port")
        if not isinstance(number, int) or not 0 < number < 65536:
            causes.append(
                (
                    "FieldValueInvalid",
                    f"spec.ports[{i}].port",
                    f"Invalid value: {number}: must be between 1 and 65535, inclusive",
                )
            )
    return causes


def _key_ok(key: str) -> bool:
    prefix, _, name = key.rpartition("/")
    if prefix and (len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix)):
        return False
    return 0 < len(name) <= 63 and bool(_QUALIFIED_NAME.match(name))


def metadata(obj: Obj) -> list[Cause]:
    """Label and annotation rules that hold for every kind."""
    meta = obj.get("metadata") or {}
    causes: list[Cause] = []
    for key, value in (meta.get("labels") or {}).items():
        if not _key_ok(str(key)):
            causes.append(
                (
                    "FieldValueInvalid",
                    "metadata.labels",
                    f'Invalid value: "{key}": name part must '
                    "consist of alphanumeric characters, '-', '_' or '.', and must start and end with "
                    "an alphanumeric character",
                )
            )
        elif not isinstance(value, str) or len(value) > 63 or not _LABEL_VALUE.match(value):
            causes.append(
                (
                    "FieldValueInvalid",
                    "metadata.labels",
                    f'Invalid value: "{value}": a valid label '
                    "must be an empty string or consist of alphanumeric characters, '-', '_' or '.', "
                    "and must start and end with an alphanumeric character",
                )
            )
    annotations = meta.get("annotations") or {}
    for key in annotations:
        if not _key_ok(str(key)):
            causes.append(
                (
                    "FieldValueInvalid",
                    "metadata.annotations",
                    f'Invalid value: "{key}": name part '
                    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end "
                    "with an alphanumeric character",
                )
            )
    if sum(len(str(k)) + len(str(v)) for k, v in annotations.items()) > _ANNOTATIONS_LIMIT:
        causes.append(
            (
                "FieldValueTooLong",
                "metadata.annotations",
                f"Too long: must have at most {_ANNOTATIONS_LIMIT} bytes",
            )
        )
    return causes


def _config_keys(obj: Obj, fields: tuple[str, ...]) -> list[Cause]:
    """ConfigMap and Secret keys, as k8s.io/apimachinery's IsConfigMapKey words it."""
    causes: list[Cause] = []
    for field in fields:
        for key in obj.get(field) or {}:
            if len(key) <= 253 and _CONFIG_KEY.match(key) and key not in (".", ".."):
                continue
            causes.append(
                (
                    "FieldValueInvalid",
                    f"{field}[{key}]",
                    f'Invalid value: "{key}": a valid config key must consist of alphanumeric '
                    "characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', "
                    "regex used for validation is '[-._a-zA-Z0-9]+')",
                )
            )
    return causes


def validate(group: str, kind: str, obj: Obj, old: Obj | None) -> list[Cause]:
    """The causes of a 422 for a built-in object's kind-specific rules (empty when it passes)."""
    if (group, kind) in _WORKLOADS:
        return _workload(obj, old)
    if (group, kind) == ("batch", "Job"):
        return _containers(
            ((obj.get("spec") or {}).get("template") or {}).get("spec") or {}, "spec.template.spec"
        )
    if (group, kind) == ("", "Pod"):
        return _containers(obj.get("spec") or {}, "spec")
    if (group, kind) == ("", "Service"):
        return _service(obj)
    if (group, kind) == ("", "ConfigMap"):
        return _config_keys(obj, ("data", "binaryData"))
    if (group, kind) == ("", "Secret"):
        return _config_keys(obj, ("data", "stringData"))
    if (group, kind) == ("", "Namespace"):
        return _label_name(
            obj,
            _DNS1123_LABEL,
            "lowercase RFC 1123 label",
            "lower case alphanumeric "
            "characters or '-', and must start and end with an alphanumeric character",
        )
    return []


def undecodable_bytes(group: str, kind: str, obj: Obj) -> str | None:
    """Why a byte field (Secret `data`, ConfigMap `binaryData`) is not base64, as a decoding error says."""
    field = {("", "Secret"): "data", ("", "ConfigMap"): "binaryData"}.get((group, kind))
    for key, value in ((obj.get(field) or {}) if field else {}).items():
        try:
            base64.b64decode(str(value), validate=True)
        except (binascii.Error, ValueError):
            return f"illegal base64 data in {field}[{key}]"
    return None
