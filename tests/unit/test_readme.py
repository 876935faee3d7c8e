"""The README is part of the product: its field reference and its commands must match the code."""

from __future__ import annotations

import re
from pathlib import Path

from modelrelease.api.reference import readme_block, reference_markdown
from modelrelease.registry.mlflow import HttpPolicy

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def test_field_reference_matches_the_crd_schema() -> None:
    assert readme_block(README) == reference_markdown(), "run `make sync`"


def test_ci_runs_the_test_command_the_readme_gives() -> None:
    first_block = re.search(r"```\n(.*?)```", README, re.S)
    assert first_block is not None
    commands = [line.split("#")[0].strip() for line in first_block.group(1).splitlines()]
    assert commands == ["make demo", "make test"]
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert "make test" in [line.strip() for line in ci]


def test_the_registry_retry_bound_the_readme_gives_is_the_codes() -> None:
    bounds = re.findall(r"at most ([0-9.]+) s per call", README)
    assert bounds == [f"{HttpPolicy().worst_case_seconds:g}"]
