"""Kubernetes' RFC 3339 timestamps (second precision, UTC), as metadata and conditions carry them."""

from __future__ import annotations

from datetime import UTC, datetime

FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def now() -> str:
    return datetime.now(UTC).strftime(FORMAT)


def seconds_since(timestamp: str) -> float:
    """Seconds from `timestamp` until now; raises ValueError for a malformed one."""
    return (datetime.now(UTC) - datetime.strptime(timestamp, FORMAT).replace(tzinfo=UTC)).total_seconds()
