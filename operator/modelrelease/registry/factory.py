"""The registry factory: one backend module per ``spec.registry.type``, one shared resolution cache.

A backend is the module ``modelrelease.registry.<type>`` (the type as the API enum spells it), found by
name, so adding one touches only that module and the enum. It provides:

- ``Hub(*, cache, observer)``: the backend's process-wide state (sessions, clients, per-version fact
  caches) around the one :class:`~modelrelease.registry.cache.ResolutionCache` every backend shares;
  ``await hub.close()`` at shutdown;
- ``async def registry_for(hub, spec, namespace, settings, secrets) -> Registry``: the release's registry
  (:class:`~modelrelease.registry.base.Registry`), or :class:`~modelrelease.registry.base.TargetProblem`
  naming the field at fault;
- ``def parse_pinned(uri) -> tuple[str, str] | None``: (model, version) of a pinned reference this backend
  writes (status, history, pod-template annotations), None when the reference is not of its form.

Cache keys carry the backend's own target type, so one request is sent per distinct (backend, endpoint or
region, model, reference) per poll, whichever releases ask.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable, Mapping
from types import ModuleType
from typing import Any, Protocol, cast, get_args

from modelrelease.api.models import RegistrySpec, RegistryType
from modelrelease.registry.base import Registry
from modelrelease.registry.cache import ResolutionCache
from modelrelease.settings import Settings

SecretReader = Callable[[str, str], Awaitable[Mapping[str, str] | None]]
"""(namespace, name) → the Secret's decoded data, or None when there is no such Secret."""

RequestObserver = Callable[[str, str, float], None]
"""Called after every registry request attempt with (operation, outcome, seconds), for metrics."""


class Hub(Protocol):
    """A backend's process-wide shared state."""

    cache: ResolutionCache

    async def close(self) -> None: ...


def backend(kind: str) -> ModuleType:
    """The backend module of a registry type; ValueError for a type the API does not define."""
    if kind not in get_args(RegistryType):
        raise ValueError(f"unknown registry type {kind!r}")
    return importlib.import_module(f"modelrelease.registry.{kind}")


def parse_pinned(uri: str) -> tuple[str, str]:
    """(model, version) of a pinned reference any backend writes; ValueError for anything else."""
    for kind in get_args(RegistryType):
        parsed = cast("tuple[str, str] | None", backend(kind).parse_pinned(uri))
        if parsed is not None:
            return parsed
    raise ValueError(f"{uri!r} is not a pinned model version reference")


class Registries:
    """Every backend's shared state, created on first use, around one shared resolution cache."""

    def __init__(
        self,
        *,
        cache: ResolutionCache | None = None,
        observer: RequestObserver | None = None,
        hubs: Mapping[str, Any] | None = None,
    ) -> None:
        self.cache = cache if cache is not None else ResolutionCache()
        self.observer = observer
        self._hubs: dict[str, Any] = dict(hubs or {})
        for hub in self._hubs.values():
            hub.cache = self.cache

    def hub(self, kind: str) -> Any:
        """The backend's shared state (its ``Hub``), created on first use."""
        if kind not in self._hubs:
            self._hubs[kind] = backend(kind).Hub(cache=self.cache, observer=self.observer)
        return self._hubs[kind]

    async def registry_for(
        self, spec: RegistrySpec, namespace: str, settings: Settings, secrets: SecretReader
    ) -> Registry:
        """The registry of a release; raises TargetProblem when the spec names no usable one."""
        module = backend(spec.type)
        return cast(
            Registry, await module.registry_for(self.hub(spec.type), spec, namespace, settings, secrets)
        )

    async def close(self) -> None:
        for hub in self._hubs.values():
            await hub.close()
