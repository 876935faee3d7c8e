"""Unit tests: no cluster, no network. A package, so that pytest and mypy name its modules alike (unit.*)."""
