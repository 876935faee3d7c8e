"""Integration tests against the sandbox. A package, so that pytest and mypy name its modules alike
(integration.*), the names tests/chaos and bench import helpers by."""
