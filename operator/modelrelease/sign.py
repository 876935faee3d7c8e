"""``modelrelease sign --private-key KEY.pem NAME VERSION``: sign a registered version as a pipeline would.

The version's files are read from its artifact location and streamed through SHA-256 (no local copy),
the manifest of those digests is signed with model-signing's elliptic-key signer, and the bundle is
uploaded as ``model.sig`` at the root of the same location through MLflow's own artifact repository
(``mlflow-artifacts:``, ``s3://`` and every other scheme MLflow writes). The signature leaves the
version's canonical digest unchanged, so a version may be stamped before or after it is signed.
The registry and object store come from the environment, as for ``modelrelease stamp``.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from modelrelease.clientenv import bound_mlflow_client
from modelrelease.registry.base import READY, RegistryError
from modelrelease.registry.commands import target_from_env
from modelrelease.registry.digest import SIGNATURE_FILE
from modelrelease.registry.mlflow import MlflowRegistry
from modelrelease.verify import signature


async def _files(name: str, version: str) -> tuple[str, str, tuple[tuple[str, str], ...]]:
    async with MlflowRegistry(target_from_env()) as registry:
        mv = await registry.get_version(name, version)
        if mv.status != READY:
            raise RegistryError(
                f"{mv.uri} has registry status {mv.status}: sign it once it is READY", "VersionNotReady"
            )
        return mv.name, await registry.artifact_location(mv), await registry.artifact_entries(mv)


def _upload(location: str, bundle: bytes) -> None:
    from mlflow.exceptions import MlflowException
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    bound_mlflow_client()
    with tempfile.TemporaryDirectory(prefix="modelrelease-sign-") as folder:
        path = Path(folder, SIGNATURE_FILE)
        path.write_bytes(bundle)
        try:
            get_artifact_repository(location).log_artifact(str(path))
        except (MlflowException, OSError) as exc:
            message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise RegistryError(
                f"cannot upload {SIGNATURE_FILE} to {location}: {message}", "UploadFailed"
            ) from None


def sign_command(name: str, version: str, private_key: Path) -> str:
    """Sign the version's files with ``private_key``, upload ``model.sig``; return where it went."""
    if not version.isdigit() or int(version) < 1:
        raise RegistryError(f"version must be a positive integer, not {version!r}", reason="InvalidVersion")
    try:
        key = signature.signer(private_key)  # before any registry call: a bad key fails at once
    except ValueError as exc:
        raise RegistryError(str(exc), reason="InvalidSigningKey") from None
    model, location, entries = asyncio.run(_files(name, str(int(version))))
    _upload(location, signature.sign(entries, key, model))
    return f"{location.rstrip('/')}/{SIGNATURE_FILE}"
