"""`modelrelease run`: kopf in standalone mode with this package's handlers and settings.

Equivalent to `kopf run --standalone -m modelrelease.handlers` plus the liveness endpoint and the
namespaces from MODELRELEASE_NAMESPACES (or the arguments).
"""

from __future__ import annotations

import kopf

from modelrelease.settings import Settings


def run(namespaces: list[str] | None = None, verbose: bool = False) -> None:
    """Run the operator until SIGINT/SIGTERM. `namespaces` (or MODELRELEASE_NAMESPACES) limits the
    watch; otherwise the operator watches the whole cluster."""
    import modelrelease.handlers  # noqa: F401  (registers the handlers with kopf)

    settings = Settings.from_env()
    watched = list(namespaces or settings.namespaces)
    kopf.configure(verbose=verbose)
    liveness = (
        f"http://{settings.bind_address}:{settings.health_port}/healthz" if settings.health_port else None
    )
    kopf.run(
        standalone=True,
        clusterwide=not watched,
        namespaces=watched,
        liveness_endpoint=liveness,
    )
