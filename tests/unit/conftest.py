"""Fixtures for the install-path tests: the real helm binary that tools/install-helm.sh puts in .tools/bin."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def helm() -> str:
    found = shutil.which("helm", path=str(ROOT / ".tools" / "bin")) or shutil.which("helm")
    if found is None:
        pytest.skip("helm is not installed: run `bash tools/install-helm.sh .tools` (make install does)")
    return found
