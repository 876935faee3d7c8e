"""The identity of what a release serves: one immutable model version, optionally with its digest."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Pin:
    """A pinned model version; `ref` is the backend's pinned reference to it (status modelUri)."""

    model: str
    version: str
    digest: str | None = None
    ref: str | None = field(default=None, compare=False)
    """Not compared: within one release, (model, version) names the version whatever the backend."""

    @property
    def uri(self) -> str:
        """`ref`; when none was given (pins built by hand), MLflow's loadable `models:/<name>/<N>`."""
        return self.ref if self.ref is not None else f"models:/{self.model}/{self.version}"


@dataclass(frozen=True)
class ReleaseRef:
    """The ModelRelease that owns rendered objects."""

    name: str
    namespace: str
    uid: str
