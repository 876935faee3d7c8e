"""Walk the generated CRD's openAPIV3Schema: the manifest, its root schema and every node with its path."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from modelrelease.api import crd

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
