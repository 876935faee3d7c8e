"""Generate the ModelRelease CustomResourceDefinition from the pydantic models.

`python -m modelrelease.api.crd` writes crds/modelrelease.io_modelreleases.yaml;
`python -m modelrelease.api.crd --check` exits 1 with a diff when that file is out of date.

Pydantic's JSON Schema becomes a structural openAPIV3Schema: `$ref`s inlined, optional fields'
`anyOf [X, null]` reduced to X (Kubernetes prunes nulls of non-nullable fields, and pydantic treats an
absent field as None), free-form maps marked `x-kubernetes-preserve-unknown-fields`, `int | str` as
`x-kubernetes-int-or-string`, titles dropped, descriptions (the attribute docstrings, which
`kubectl explain` shows) folded to one line. Scalar defaults are kept, and an optional object whose
fields have defaults gets `default: {}` so the API server fills them in too. Status carries no
defaults: the operator writes all of it.
"""

from __future__ import annotations

import argparse
import difflib
import re
import sys
from pathlib import Path
from typing import Any

import yaml

from modelrelease.api.models import (
    API_VERSION,
    GROUP,
    KIND,
    LIST_MAP_KEYS,
    PLURAL,
    RELEASE_NAME_RULE,
    SHORT_NAMES,
    SINGULAR,
    VERSION,
    ModelReleaseSpec,
    ModelReleaseStatus,
)

CRD_PATH = Path("crds") / f"{GROUP}_{PLURAL}.yaml"
HEADER = "# Generated from modelrelease.api.models by `python -m modelrelease.api.crd`. Do not edit.\n"

# Keys of pydantic's JSON Schema that mean the same in a structural openAPIV3Schema.
_KEPT = frozenset(
    {
        "type",
        "description",
        "properties",
        "required",
        "items",
        "enum",
        "pattern",
        "format",
        "default",
        "minLength",
        "maxLength",
        "minimum",
        "maximum",
        "minItems",
        "maxItems",
        "minProperties",
        "maxProperties",
        "x-kubernetes-validations",
        "x-kubernetes-int-or-string",
    }
)
_DROPPED = frozenset({"title", "$defs"})

KIND_DESCRIPTION = (
    "ModelRelease serves one registered model version, chosen by a version, an alias or a stage: the "
    "operator resolves the reference to one immutable version, verifies it (registry status, metric "
    "gates, artifact digest, input schema), rolls a Deployment to the pinned URI models:/<name>/<N>, "
    "rolls back when the rollout fails, and records resolution, verification and history in status."
)

PRINTER_COLUMNS = (
    {"name": "Model", "type": "string", "jsonPath": ".spec.model.name", "description": "Registered model"},
    {
        "name": "Ref",
        "type": "string",
        "jsonPath": ".status.resolved.ref",
        "description": "The reference followed: alias=<alias>, version=<N> or stage=<stage>",
    },
    {
        "name": "Serving",
        "type": "string",
        "jsonPath": ".status.current.version",
        "description": "Version serving now",
    },
    {"name": "Phase", "type": "string", "jsonPath": ".status.phase", "description": "Release phase"},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    {
        "name": "Resolved",
        "type": "string",
        "jsonPath": ".status.resolved.version",
        "priority": 1,
        "description": "Version the reference resolved to (the candidate)",
    },
)


class SchemaError(ValueError):
    """The models produced a JSON Schema construct that has no structural equivalent."""


def _fold(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def _structural(node: dict[str, Any], defs: dict[str, Any], where: str) -> dict[str, Any]:
    if "$ref" in node:
        target = defs[node["$ref"].rsplit("/", 1)[-1]]
        siblings = {key: value for key, value in node.items() if key != "$ref"}
        return _structural({**target, **siblings}, defs, where)
    if "anyOf" in node:
        return _structural(_collapse_any_of(node, where), defs, where)
    unknown = set(node) - _KEPT - _DROPPED - {"additionalProperties"}
    if unknown:
        raise SchemaError(f"{where}: no structural equivalent for {sorted(unknown)}")

    out: dict[str, Any] = {key: value for key, value in node.items() if key in _KEPT}
    if "description" in out:
        out["description"] = _fold(out["description"])
    if "default" in out and (out["default"] is None or isinstance(out["default"], list | dict)):
        del out["default"]  # None means unset; an empty list or map would only add noise to every object
    if "properties" in out:
        out["properties"] = {
            name: _structural(sub, defs, f"{where}.{name}") for name, sub in out["properties"].items()
        }
        for name, sub in out["properties"].items():
            if name not in out.get("required", ()) and sub.get("type") == "object" and _has_defaults(sub):
                sub["default"] = {}
    if "items" in out:
        out["items"] = _structural(out["items"], defs, f"{where}[]")
    extra = node.get("additionalProperties")
    if extra is True or extra == {}:
        out["x-kubernetes-preserve-unknown-fields"] = True
    elif isinstance(extra, dict):
        out["additionalProperties"] = _structural(extra, defs, f"{where}{{}}")
    return out


def _collapse_any_of(node: dict[str, Any], where: str) -> dict[str, Any]:
    options = [option for option in node["anyOf"] if option != {"type": "null"}]
    outer = {key: value for key, value in node.items() if key != "anyOf"}
    if len(options) == 1:
        return {**options[0], **outer}
    if sorted(option.get("type") for option in options) == ["integer", "string"]:
        outer.pop("type", None)
        return {**outer, "x-kubernetes-int-or-string": True}
    raise SchemaError(f"{where}: a union of {options} has no structural form")


def _has_defaults(node: dict[str, Any]) -> bool:
    return any("default" in sub or _has_defaults(sub) for sub in node.get("properties", {}).values())


def _without_defaults(node: dict[str, Any]) -> dict[str, Any]:
    out = {key: value for key, value in node.items() if key != "default"}
    if "properties" in out:
        out["properties"] = {name: _without_defaults(sub) for name, sub in out["properties"].items()}
    if "items" in out:
        out["items"] = _without_defaults(out["items"])
    return out


def _model_schema(model: type[ModelReleaseSpec] | type[ModelReleaseStatus], where: str) -> dict[str, Any]:
    raw = model.model_json_schema(by_alias=True, mode="validation")
    return _structural(raw, raw.get("$defs", {}), where)


def _mark_list_maps(root: dict[str, Any]) -> None:
    for path, key in LIST_MAP_KEYS.items():
        node = root
        for name in path:
            node = node["properties"][name]
        node["x-kubernetes-list-type"] = "map"
        node["x-kubernetes-list-map-keys"] = [key]


def open_api_schema() -> dict[str, Any]:
    """The structural openAPIV3Schema of ModelRelease."""
    root: dict[str, Any] = {
        "type": "object",
        "description": KIND_DESCRIPTION,
        "required": ["spec"],
        "properties": {
            "apiVersion": {
                "type": "string",
                "description": "APIVersion defines the versioned schema of this representation of an object.",
            },
            "kind": {
                "type": "string",
                "description": "Kind is the REST resource this object represents.",
            },
            "metadata": {"type": "object"},
            "spec": _model_schema(ModelReleaseSpec, "spec"),
            "status": _without_defaults(_model_schema(ModelReleaseStatus, "status")),
        },
        "x-kubernetes-validations": [{"rule": RELEASE_NAME_RULE.rule, "message": RELEASE_NAME_RULE.message}],
    }
    _mark_list_maps(root)
    return _ordered(root)


_KEY_ORDER = {
    key: index
    for index, key in enumerate(
        (
            "type",
            "description",
            "default",
            "enum",
            "format",
            "pattern",
            "minLength",
            "maxLength",
            "minimum",
            "maximum",
            "minItems",
            "maxItems",
            "minProperties",
            "maxProperties",
            "required",
            "properties",
            "additionalProperties",
            "items",
        )
    )
}


def _ordered(node: dict[str, Any]) -> dict[str, Any]:
    """Keys in a reading order (type and description first, extensions last), subtrees likewise."""
    out: dict[str, Any] = {}
    for key in sorted(node, key=lambda key: (_KEY_ORDER.get(key, len(_KEY_ORDER)), key)):
        value = node[key]
        if key == "properties":
            value = {name: _ordered(sub) for name, sub in value.items()}
        elif key in ("items", "additionalProperties"):
            value = _ordered(value)
        elif key == "x-kubernetes-validations":
            value = [{"rule": rule["rule"], "message": rule["message"]} for rule in value]
        out[key] = value
    return out


def crd() -> dict[str, Any]:
    """The CustomResourceDefinition of ModelRelease as a manifest."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{PLURAL}.{GROUP}",
            "labels": {"app.kubernetes.io/name": "modelrelease-operator"},
        },
        "spec": {
            "group": GROUP,
            "names": {
                "kind": KIND,
                "listKind": f"{KIND}List",
                "plural": PLURAL,
                "singular": SINGULAR,
                "shortNames": list(SHORT_NAMES),
                "categories": ["ml"],
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [dict(column) for column in PRINTER_COLUMNS],
                    "schema": {"openAPIV3Schema": open_api_schema()},
                }
            ],
        },
    }


def crd_yaml() -> str:
    """The CRD file's exact text."""
    return HEADER + yaml.safe_dump(crd(), sort_keys=False, width=10_000, allow_unicode=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m modelrelease.api.crd", description=f"Write the {API_VERSION} {KIND} CRD."
    )
    parser.add_argument("--output", type=Path, default=CRD_PATH, help=f"CRD file (default {CRD_PATH})")
    parser.add_argument("--check", action="store_true", help="exit 1 with a diff if the file is out of date")
    args = parser.parse_args(argv)
    wanted = crd_yaml()
    path: Path = args.output
    if args.check:
        current = path.read_text() if path.exists() else ""
        if current == wanted:
            return 0
        sys.stdout.writelines(
            difflib.unified_diff(
                current.splitlines(keepends=True),
                wanted.splitlines(keepends=True),
                fromfile=str(path),
                tofile="generated",
            )
        )
        print(f"{path} is out of date: run python -m modelrelease.api.crd", file=sys.stderr)
        return 1
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(wanted)
    return 0


if __name__ == "__main__":
    sys.exit(main())
