"""Registration-side commands: ``modelrelease digest MODEL_URI`` and ``modelrelease stamp NAME VERSION``.

The registry comes from the environment as MLflow's own client reads it: ``MLFLOW_TRACKING_URI``,
``MLFLOW_TRACKING_USERNAME`` / ``MLFLOW_TRACKING_PASSWORD`` (basic auth) or ``MLFLOW_TRACKING_TOKEN``
(bearer), ``MLFLOW_TRACKING_INSECURE_TLS=true`` to skip certificate checks; S3 artifacts use the
AWS environment and ``MLFLOW_S3_ENDPOINT_URL``.
"""

from __future__ import annotations

import asyncio
import os

from modelrelease.api.models import ModelRef, VerifySpec, parse_model_uri
from modelrelease.registry.base import READY, RegistryError, RegistryTarget
from modelrelease.registry.mlflow import MlflowRegistry

DEFAULT_DIGEST_TAG = VerifySpec().digest_tag


def target_from_env() -> RegistryTarget:
    uri = os.environ.get("MLFLOW_TRACKING_URI", "").strip()
    if not uri.startswith(("http://", "https://")):
        raise RegistryError(
            "MLFLOW_TRACKING_URI must be set to the tracking server's http(s) URL", reason="NoTrackingUri"
        )
    return RegistryTarget(
        tracking_uri=uri,
        username=os.environ.get("MLFLOW_TRACKING_USERNAME") or None,
        password=os.environ.get("MLFLOW_TRACKING_PASSWORD") or None,
        token=os.environ.get("MLFLOW_TRACKING_TOKEN") or None,
        verify_tls=os.environ.get("MLFLOW_TRACKING_INSECURE_TLS", "").lower() not in ("1", "true"),
    )


async def _digest(ref: ModelRef) -> str:
    async with MlflowRegistry(target_from_env()) as registry:
        return await registry.artifact_digest(await registry.resolve(ref))


def digest_command(uri: str) -> str:
    """The canonical digest of ``models:/name/N`` (also ``models:/name/versions/N``, ``@alias``, stage)."""
    try:
        name, kind, value = parse_model_uri(uri)
    except ValueError as exc:
        raise RegistryError(str(exc), reason="InvalidModelUri") from None
    return asyncio.run(_digest(ModelRef.model_validate({"name": name, kind: value})))


async def _stamp(name: str, version: str, tag: str) -> str:
    async with MlflowRegistry(target_from_env()) as registry:
        mv = await registry.get_version(name, version)
        if mv.status != READY:
            message = f"{mv.uri} has registry status {mv.status}: stamp it once it is READY"
            raise RegistryError(message, reason="VersionNotReady")
        digest = await registry.artifact_digest(mv)
        await registry.set_version_tag(mv.name, mv.version, tag, digest)
        return digest


def stamp_command(name: str, version: str, tag: str = DEFAULT_DIGEST_TAG) -> str:
    """Compute the version's digest, record it in the version tag ``tag``, and return it."""
    if not version.isdigit() or int(version) < 1:
        raise RegistryError(f"version must be a positive integer, not {version!r}", reason="InvalidVersion")
    return asyncio.run(_stamp(name, str(int(version)), tag))
