"""Chaos tests. A package, so that pytest and mypy name its modules alike (chaos.*), the names bench imports
them by."""
