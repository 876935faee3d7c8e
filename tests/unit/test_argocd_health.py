"""argocd/health.lua run by a real Lua over Argo CD's own test layout (health_test.yaml + testdata/).

Argo CD's Lua VM (gopher-lua, Lua 5.1) opens only the base, table and package libraries for health scripts,
and hands the object over as the global `obj` decoded from JSON; the runtime here does the same.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import lupa.lua51 as lua51
import pytest
import yaml

from modelrelease.api.models import ModelReleaseSpec, ModelReleaseStatus

ARGOCD = Path(__file__).resolve().parents[2] / "argocd"
SCRIPT = ARGOCD / "health.lua"
TESTS: list[dict[str, Any]] = yaml.safe_load((ARGOCD / "health_test.yaml").read_text())["tests"]
ARGOCD_HEALTH_STATES = {"Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown"}


def run_health(script: str, obj: dict[str, Any]) -> dict[str, str]:
    runtime = lua51.LuaRuntime(unpack_returned_tuples=False)
    # Keep what Argo CD keeps (base, table, package); drop the string metatable, so s:sub() fails as there.
    runtime.execute(
        'debug.setmetatable("", nil) string, math, os, io, debug, coroutine = nil, nil, nil, nil, nil, nil'
    )
    runtime.globals().obj = runtime.table_from(obj, recursive=True)
    result = runtime.execute(script)
    assert result is not None, "health.lua returned nothing"
    return {key: str(value) for key, value in dict(result).items()}


def test_every_testdata_file_is_a_test_case() -> None:
    listed = {ARGOCD / test["inputPath"] for test in TESTS}
    assert listed == set((ARGOCD / "testdata").glob("*.yaml"))


@pytest.mark.parametrize("test", TESTS, ids=[Path(test["inputPath"]).stem for test in TESTS])
def test_health(test: dict[str, Any]) -> None:
    obj = yaml.safe_load((ARGOCD / test["inputPath"]).read_text())
    expected = test["healthStatus"]
    assert expected["status"] in ARGOCD_HEALTH_STATES
    # Argo CD compares status and message as a whole struct; an absent message means "".
    assert run_health(SCRIPT.read_text(), obj) == {
        "status": expected["status"],
        **({"message": expected["message"]} if expected.get("message") else {}),
    }


@pytest.mark.parametrize("test", TESTS, ids=[Path(test["inputPath"]).stem for test in TESTS])
def test_testdata_is_a_valid_model_release(test: dict[str, Any]) -> None:
    """The cases speak the operator's real status contract, so a renamed field breaks them here."""
    obj = yaml.safe_load((ARGOCD / test["inputPath"]).read_text())
    assert (obj["apiVersion"], obj["kind"]) == ("modelrelease.io/v1alpha1", "ModelRelease")
    ModelReleaseSpec.model_validate(obj["spec"])
    if "status" in obj:
        ModelReleaseStatus.model_validate(obj["status"])


def test_every_health_state_the_brief_names_is_covered() -> None:
    assert {test["healthStatus"]["status"] for test in TESTS} == {"Healthy", "Progressing", "Degraded"}


def test_readme_snippet_is_the_script() -> None:
    readme = (ARGOCD / "README.md").read_text()
    key = "resource.customizations.health.modelrelease.io_ModelRelease: |"
    assert key in readme
    block = re.search(re.escape(key) + r"\n((?:    .*\n|\n)+)", readme)
    assert block is not None
    snippet = "".join(line[4:] + "\n" for line in block.group(1).rstrip("\n").split("\n"))
    assert snippet == SCRIPT.read_text()


def test_example_application_installs_this_chart_with_valid_values() -> None:
    operator_app, releases_app = yaml.safe_load_all((ARGOCD / "application.yaml").read_text())
    source = operator_app["spec"]["source"]
    chart = ARGOCD.parent / source["path"]
    assert (chart / "Chart.yaml").is_file()
    schema = json.loads((chart / "values.schema.json").read_text())
    jsonschema.Draft7Validator(schema).validate(source["helm"]["valuesObject"])
    assert "ServerSideApply=true" in operator_app["spec"]["syncPolicy"]["syncOptions"]
    waves = [
        app["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"] for app in (operator_app, releases_app)
    ]
    assert waves == ["0", "1"]  # the CRD and the operator before the releases
