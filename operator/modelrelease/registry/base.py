"""The registry protocol the operator programs against, its value types and its errors.

No kopf, no HTTP here: backends (``modelrelease.registry.mlflow``, ``modelrelease.registry.sagemaker``)
implement :class:`Registry`; :mod:`modelrelease.registry.factory` picks one by ``spec.registry.type``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import urlsplit

from modelrelease.api.models import MODEL_URI_ENV, ModelRef, pinned_uri

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
    pinned: str | None = None
    """The backend's immutable reference to this version (MLflow ``models:/<name>/<N>``, a SageMaker model
    package ARN): status, history and the pod-template annotation record it."""
    serving_uri: str | None = None
    """What the serving container's MODEL_URI gets, when that is not :attr:`uri` (SageMaker: the
    ``s3://.../model.tar.gz`` of the package's container)."""
    serving_env: Mapping[str, str] = field(default_factory=dict, hash=False)
    """Further env the serving container gets (SageMaker: MODEL_PACKAGE_ARN)."""

    @property
    def uri(self) -> str:
        """The pinned reference; when a backend gave none (values built by hand), MLflow's loadable form
        ``models:/<name>/<version>`` (MLflow 3 rejects ``/versions/N``)."""
        return self.pinned if self.pinned is not None else pinned_uri(self.name, self.version)

    def model_env(self) -> dict[str, str]:
        """The env that points a serving container at this version: MODEL_URI and the backend's extras."""
        return {MODEL_URI_ENV: self.serving_uri or self.uri, **self.serving_env}


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


class TargetProblem(RegistryError):
    """The spec names no usable registry (no tracking URI, a missing Secret, a region that is not one).

    ``field`` is the spec path at fault, e.g. ``spec.registry.trackingUri``."""

    def __init__(self, field: str, message: str, reason: str) -> None:
        super().__init__(message, reason)
        self.field = field


class Registry(Protocol):
    """What the reconciler and the checks need from a model registry."""

    async def resolve(self, ref: ModelRef, *, max_age: float | None = None) -> ModelVersion:
        """version | alias | stage | latestApproved → one version. ``max_age``: accept a shared answer up to
        this old."""
        ...

    async def get_version(self, name: str, version: str, *, max_age: float | None = None) -> ModelVersion: ...

    async def serving_env(self, name: str, version: str) -> dict[str, str]:
        """The env that points a serving container at this version (MODEL_URI, and the backend's extras)."""
        ...

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
