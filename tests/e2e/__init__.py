"""Release scenarios end to end. A package, so that pytest and mypy name its modules alike (e2e.*)."""
