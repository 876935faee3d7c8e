"""Walk the generated CRD's openAPIV3Schema: its nodes, the defaulted object, and its CEL rules."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from modelrelease.api import crd
from modelrelease.sandbox.apiserver.schema import prune_and_default
from modelrelease.sandbox.cel import evaluate

ROOT = Path(__file__).resolve().parents[2]
CRD_FILE = ROOT / crd.CRD_PATH

Node = dict[str, Any]


def load_manifest() -> Node:
    loaded: Node = yaml.safe_load(CRD_FILE.read_text())
    return loaded


def root_schema(manifest: Node) -> Node:
    schema: Node = manifest["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def nodes(node: Node, path: str = "") -> Iterator[tuple[str, Node]]:
    """Every schema node with its dotted path ([] for list items, {} for map values)."""
    yield path, node
    for name, sub in node.get("properties", {}).items():
        yield from nodes(sub, f"{path}.{name}" if path else name)
    if isinstance(node.get("items"), dict):
        yield from nodes(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from nodes(node["additionalProperties"], f"{path}{{}}")


def apply_defaults(schema: Node, obj: Node) -> Node:
    """The object as the API server stores it: unknown fields pruned, schema defaults applied."""
    return prune_and_default(schema, obj)[0]


def rule_sites(node: Node, value: Any, path: str = "") -> Iterator[tuple[str, str, str, Any]]:
    """(path, rule, message, self) for every CEL rule that applies somewhere in `value`."""
    for rule in node.get("x-kubernetes-validations", ()):
        yield path, rule["rule"], rule["message"], value
    if isinstance(value, dict):
        for name, sub in node.get("properties", {}).items():
            if name in value:
                yield from rule_sites(sub, value[name], f"{path}.{name}" if path else name)
        if isinstance(node.get("additionalProperties"), dict):
            for key, item in value.items():
                yield from rule_sites(node["additionalProperties"], item, f"{path}[{key}]")
    if isinstance(value, list) and isinstance(node.get("items"), dict):
        for index, item in enumerate(value):
            yield from rule_sites(node["items"], item, f"{path}[{index}]")


def cel_failures(schema: Node, obj: Node) -> list[str]:
    """Messages of the CEL rules `obj` breaks (after defaulting, as the API server evaluates them)."""
    defaulted = apply_defaults(schema, obj)
    return [message for _, rule, message, value in rule_sites(schema, defaulted) if not evaluate(rule, value)]
