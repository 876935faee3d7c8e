"""The registry protocol the operator programs against, its value types and its errors.

No kopf, no HTTP here: backends (``modelrelease.registry.mlflow``) implement :class:`Registry`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import urlsplit

from modelrelease.api.models import ModelRef, pinned_uri

READY = "READY"
"""Registry status of a version whose artifacts are completely registered."""


@dataclass(frozen=True)
class ModelVersion:
    """One immutable registered model version, as the registry describes it."""

    name: str
    version: str
    status: str
    run_id: str | None
    source: str
    tags: Mapping[str, str] = field(default_factory=dict, hash=False)
    aliases: tuple[str, ...] = ()
    model_id: str | None = None
    """MLflow 3 logged-model id (``m-...``) when the version was registered from a logged model."""

    @property
    def uri(self) -> str:
        """The pinned, loadable URI: ``models:/<name>/<version>`` (MLflow 3 rejects ``/versions/N``)."""
        return pinned_uri(self.name, self.version)


@dataclass(frozen=True)
class RegistryTarget:
    """Where a registry lives and how to authenticate. Hashable (a cache key); repr hides secrets."""

    tracking_uri: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)
    verify_tls: bool = True


class RegistryError(Exception):
    """A registry answer the operator cannot use. ``reason`` is CamelCase for conditions and Events.

    The message is one line and never contains credentials.
    """

    default_reason = "RegistryError"

    def __init__(self, message: str, reason: str | None = None) -> None:
        self.reason = reason or self.default_reason
        super().__init__(" ".join(message.split()))


class RegistryUnavailable(RegistryError):
    """Transient: timeouts, connection errors, HTTP 5xx and 429 (after the bounded retries)."""

    default_reason = "RegistryUnavailable"


class ModelNotFound(RegistryError):
    """reason: ModelNotFound | VersionNotFound | AliasNotFound | StageNotFound."""

    default_reason = "ModelNotFound"


def tracking_uri_problem(uri: str) -> RegistryError | None:
    """Why `uri` cannot address a registry (it must be an http(s) URL with a host), or None."""
    try:
        parts = urlsplit(uri.strip())
        parts.port  # noqa: B018 -- raises ValueError for a port out of range
    except ValueError as exc:
        return RegistryError(f"tracking URI is not a valid URL: {exc}", reason="InvalidTrackingUri")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return RegistryError("tracking URI must be an http(s) URL", reason="UnsupportedTrackingUri")
    return None


class Registry(Protocol):
    """What the reconciler and the checks need from a model registry."""

    async def resolve(self, ref: ModelRef, *, max_age: float | None = None) -> ModelVersion:
        """version | alias | stage → one version. ``max_age``: accept a shared answer up to this old."""
        ...

    async def get_version(self, name: str, version: str) -> ModelVersion: ...

    async def run_metrics(self, run_id: str) -> dict[str, float]:
        """The latest value of each metric of a run."""
        ...

    async def version_metrics(self, mv: ModelVersion) -> dict[str, float]:
        """Metrics of the version: its source run's, overlaid with its MLflow 3 logged model's."""
        ...

    async def input_schema(self, mv: ModelVersion) -> list[dict[str, object]] | None:
        """The MLmodel signature's inputs, or None when the model has no signature."""
        ...

    async def artifact_entries(
        self, mv: ModelVersion, *, max_age: float | None = None
    ) -> tuple[tuple[str, str], ...]:
        """``(relative path, file sha256 hex)`` of every hashed file, shared by every check: the bytes are
        read again only when the entries were computed ``max_age`` seconds ago or more (None: never)."""
        ...

    async def artifact_digest(self, mv: ModelVersion, *, max_age: float | None = None) -> str:
        """``sha256:<hex>`` over the canonical manifest of :meth:`artifact_entries`."""
        ...

    async def signature_bundle(self, mv: ModelVersion) -> bytes | None:
        """The bytes of ``model.sig`` at the artifact root, or None when the version has none."""
        ...

    async def serving_input_example(self, mv: ModelVersion) -> dict[str, object] | None:
        """The version's logged request body for ``/invocations`` (MLflow: ``serving_input_example.json``,
        named by the MLmodel's ``saved_input_example_info``), or None when it logged none."""
        ...
