"""The generated CustomResourceDefinition: up to date, structural, and true to the models."""

from __future__ import annotations

import copy
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from modelrelease.api import crd
from unit.crd_walk import CRD_FILE, ROOT, load_manifest, nodes, root_schema

# JSON Schema constructs a structural schema forbids (or that pydantic-isms would leak).
FORBIDDEN = {"$ref", "$defs", "anyOf", "oneOf", "allOf", "not", "title", "const", "uniqueItems", "nullable"}


@pytest.fixture(scope="module")
def manifest() -> dict[str, Any]:
    return load_manifest()


@pytest.fixture(scope="module")
def schema(manifest: dict[str, Any]) -> dict[str, Any]:
    return root_schema(manifest)


def test_committed_crd_is_up_to_date() -> None:
    assert CRD_FILE.read_text() == crd.crd_yaml(), "crds/ is stale: run python -m modelrelease.api.crd"


def test_check_reports_a_stale_file_with_a_diff(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "crd.yaml"
    target.write_text(crd.crd_yaml().replace("historyLimit", "historyLimitOld"))
    assert crd.main(["--check", "--output", str(target)]) == 1
    captured = capsys.readouterr()
    assert "-                  historyLimitOld:" in captured.out
    assert "+                  historyLimit:" in captured.out
    assert "out of date" in captured.err

    assert crd.main(["--output", str(target)]) == 0
    assert crd.main(["--check", "--output", str(target)]) == 0
    assert crd.main(["--check", "--output", str(tmp_path / "missing.yaml")]) == 1


def test_module_check_passes_from_the_repository_root() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "modelrelease.api.crd", "--check"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_names_scope_and_version(manifest: dict[str, Any]) -> None:
    assert manifest["metadata"]["name"] == "modelreleases.modelrelease.io"
    spec = manifest["spec"]
    assert spec["group"] == "modelrelease.io"
    assert spec["scope"] == "Namespaced"
    assert spec["names"] == {
        "kind": "ModelRelease",
        "listKind": "ModelReleaseList",
        "plural": "modelreleases",
        "singular": "modelrelease",
        "shortNames": ["mr"],
        "categories": ["ml"],
    }
    [version] = spec["versions"]
    assert (version["name"], version["served"], version["storage"]) == ("v1alpha1", True, True)
    assert version["subresources"] == {"status": {}}


def test_kubernetes_accepts_the_crd_document(manifest: dict[str, Any]) -> None:
    kubernetes_validate.validate(manifest, "1.32.0", strict=True)


def test_kubernetes_validate_would_notice_a_broken_crd(manifest: dict[str, Any]) -> None:
    broken = copy.deepcopy(manifest)
    broken["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["type"] = 5
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, "1.32.0", strict=True)


def test_every_node_is_structural(schema: dict[str, Any]) -> None:
    for path, node in nodes(schema):
        where = path or "<root>"
        assert not FORBIDDEN & set(node), f"{where}: {sorted(FORBIDDEN & set(node))}"
        typed = "type" in node or node.get("x-kubernetes-int-or-string")
        assert typed or node.get("x-kubernetes-preserve-unknown-fields"), f"{where} has no type"
        if "type" in node:
            assert node["type"] in {"object", "array", "string", "integer", "number", "boolean"}, where
        assert not ("properties" in node and "additionalProperties" in node), where
        assert not isinstance(node.get("additionalProperties"), bool), where
        assert set(node.get("required", ())) <= set(node.get("properties", {})), where
        if node.get("type") == "array":
            assert isinstance(node.get("items"), dict), f"{where}: array without items"


def test_free_form_only_where_meant(schema: dict[str, Any]) -> None:
    free = {path for path, node in nodes(schema) if node.get("x-kubernetes-preserve-unknown-fields")}
    assert free == {
        "spec.serving.env[].valueFrom",
        "spec.serving.affinity.nodeAffinity",
        "spec.serving.affinity.podAffinity",
        "spec.serving.affinity.podAntiAffinity",
    }


def test_every_spec_and_status_field_is_described(schema: dict[str, Any]) -> None:
    undocumented = [
        path
        for path, node in nodes(schema)
        if path.startswith(("spec", "status"))
        and not path.endswith(("[]", "{}"))
        and not node.get("description")
    ]
    assert undocumented == []


def test_descriptions_are_single_lines(schema: dict[str, Any]) -> None:
    for path, node in nodes(schema):
        assert "\n" not in node.get("description", ""), path


def test_list_map_keys_are_required_fields(schema: dict[str, Any]) -> None:
    keyed = [(path, node) for path, node in nodes(schema) if node.get("x-kubernetes-list-type") == "map"]
    assert {path for path, _ in keyed} == {
        "spec.verify.metrics",
        "spec.serving.env",
        "status.conditions",
        "status.verification",
    }
    for path, node in keyed:
        for key in node["x-kubernetes-list-map-keys"]:
            assert key in node["items"]["required"], path


def _satisfies(node: dict[str, Any], value: Any) -> bool:
    python_type: dict[str, type | tuple[type, ...]] = {
        "string": str,
        "integer": int,
        "number": (int, float),
        "boolean": bool,
        "object": dict,
    }
    if "type" in node and not isinstance(value, python_type[node["type"]]):
        return False
    if "enum" in node and value not in node["enum"]:
        return False
    if "pattern" in node and not re.search(node["pattern"], value):
        return False
    return (
        node.get("minimum", value) <= value <= node.get("maximum", value)
        if node.get("type") == "integer"
        else True
    )


def test_defaults_satisfy_their_own_schema(schema: dict[str, Any]) -> None:
    defaulted = [(path, node) for path, node in nodes(schema) if "default" in node]
    assert defaulted, "the spec declares defaults"
    for path, node in defaulted:
        assert _satisfies(node, node["default"]), path
        assert path.startswith("spec."), f"{path}: status carries no defaults"


def _schema_at(schema: dict[str, Any], json_path: str) -> dict[str, Any] | None:
    node: dict[str, Any] | None = schema
    for part in json_path.strip(".").split("."):
        node = (node or {}).get("properties", {}).get(part)
    return node


def test_printer_columns(manifest: dict[str, Any], schema: dict[str, Any]) -> None:
    columns = manifest["spec"]["versions"][0]["additionalPrinterColumns"]
    default_view = [(c["name"], c["jsonPath"]) for c in columns if c.get("priority", 0) == 0]
    assert default_view == [
        ("Model", ".spec.model.name"),
        ("Ref", ".status.resolved.ref"),
        ("Serving", ".status.current.version"),
        ("Phase", ".status.phase"),
        ("Age", ".metadata.creationTimestamp"),
    ]
    for column in columns:
        if column["jsonPath"].startswith(".metadata."):
            continue
        node = _schema_at(schema, column["jsonPath"])
        assert node is not None, f"{column['name']}: {column['jsonPath']} is not in the schema"
        assert node["type"] == column["type"], column["name"]


@pytest.mark.parametrize(
    "node",
    [
        {"type": "number", "exclusiveMinimum": 0},
        {"anyOf": [{"type": "string"}, {"type": "number"}]},
        {"type": "string", "const": "x"},
    ],
)
def test_the_generator_refuses_what_has_no_structural_form(node: dict[str, Any]) -> None:
    with pytest.raises(crd.SchemaError):
        crd._structural(node, {}, "spec.x")
