"""The identity of what a release serves: one immutable model version, optionally with its digest."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Pin:
    """A pinned model version; `uri` is the loadable form MLflow 3 accepts (`models:/<name>/<N>`)."""

    model: str
    version: str
    digest: str | None = None

    @property
    def uri(self) -> str:
        return f"models:/{self.model}/{self.version}"


@dataclass(frozen=True)
class ReleaseRef:
    """The ModelRelease that owns rendered objects."""

    name: str
    namespace: str
    uid: str
