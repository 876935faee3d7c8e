"""Benchmarks of the design targets, each printing its figures beside a baseline measured in the same run.

Run all with ``python -m bench`` (one sandbox shared by all) or one with ``python -m bench NAME``.
"""

import sys
from pathlib import Path

# The test helpers import each other as top-level modules, the way pytest puts tests/ on sys.path.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
