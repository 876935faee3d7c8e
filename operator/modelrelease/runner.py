"""`modelrelease run`: kopf in standalone mode with this package's handlers and settings.

Equivalent to `kopf run --standalone -m modelrelease.handlers` plus the liveness endpoint and the
namespaces from MODELRELEASE_NAMESPACES (or the arguments).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

import kopf

from modelrelease.settings import Settings

MALLOC_ARENAS = 2
"""glibc malloc arenas: by default up to 8 per core, one per thread that allocates, each keeping what it
freed. The operator's threads (API calls, S3 reads) made its RSS 2.4x a bare kopf operator's."""


def limit_malloc_arenas(arenas: int = MALLOC_ARENAS) -> bool:
    """mallopt(M_ARENA_MAX) before any thread starts (as MALLOC_ARENA_MAX=2 would); False without glibc."""
    name = ctypes.util.find_library("c")
    try:
        mallopt = ctypes.CDLL(name).mallopt if name else None
    except (OSError, AttributeError):  # musl and others have no mallopt
        return False
    return bool(mallopt is not None and mallopt(-8, arenas) == 1)  # -8 is M_ARENA_MAX in malloc.h


def run(namespaces: list[str] | None = None, verbose: bool = False) -> None:
    """Run the operator until SIGINT/SIGTERM. `namespaces` (or MODELRELEASE_NAMESPACES) limits the
    watch; otherwise the operator watches the whole cluster."""
    limit_malloc_arenas()
    import modelrelease.handlers  # noqa: F401  (registers the handlers with kopf)

    settings = Settings.from_env()
    watched = list(namespaces or settings.namespaces)
    kopf.configure(verbose=verbose)
    if not verbose:  # else every watch event logs "Handler 'release_event' succeeded." at INFO
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    liveness = (
        f"http://{settings.bind_address}:{settings.health_port}/healthz" if settings.health_port else None
    )
    kopf.run(
        standalone=True,
        clusterwide=not watched,
        namespaces=watched,
        liveness_endpoint=liveness,
    )
