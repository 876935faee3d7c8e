"""Registration-side commands: ``modelrelease digest MODEL_URI`` and ``modelrelease stamp NAME VERSION``
(MLflow), and the same with ``--registry sagemaker`` for SageMaker model packages (below).

The registry comes from the environment as MLflow's own client reads it: ``MLFLOW_TRACKING_URI``,
``MLFLOW_TRACKING_USERNAME`` / ``MLFLOW_TRACKING_PASSWORD`` (basic auth) or ``MLFLOW_TRACKING_TOKEN``
(bearer), ``MLFLOW_TRACKING_INSECURE_TLS=true`` to skip certificate checks; S3 artifacts use the
AWS environment and ``MLFLOW_S3_ENDPOINT_URL``.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence

from modelrelease.api.models import ModelRef, RegistrySpec, VerifySpec, parse_model_uri
from modelrelease.registry.base import READY, ModelVersion, RegistryError, RegistryTarget
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


# ------------------------------------------------------------------------------ SageMaker Model Registry
# ``modelrelease digest --registry sagemaker GROUP VERSION`` (or a model package ARN) and ``modelrelease
# stamp --registry sagemaker GROUP VERSION``: the region is ``--region`` or AWS_REGION /
# AWS_DEFAULT_REGION; endpoints and credentials as boto3 reads them (AWS_ENDPOINT_URL_SAGEMAKER,
# AWS_ENDPOINT_URL, the standard credential chain), as for the operator.


def sagemaker_reference(reference: Sequence[str]) -> tuple[str, str, str | None]:
    """(group, version, the ARN's region) of a model package ARN, or (group, version, None) of ``GROUP
    VERSION``; RegistryError otherwise."""
    from modelrelease.registry.sagemaker import parse_pinned

    if len(reference) == 1 and (parsed := parse_pinned(reference[0])) is not None:
        return (*parsed, reference[0].split(":")[3])
    if len(reference) != 2:
        raise RegistryError(
            "name a model package: GROUP VERSION, or its ARN "
            "(arn:aws:sagemaker:REGION:ACCOUNT:model-package/GROUP/VERSION)",
            reason="InvalidModelReference",
        )
    group, version = reference
    if not version.isdigit() or int(version) < 1:
        raise RegistryError(f"version must be a positive integer, not {version!r}", reason="InvalidVersion")
    return group, str(int(version)), None


def _sagemaker_spec(region: str | None) -> RegistrySpec:
    region = region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or None
    if region is None:
        raise RegistryError("no AWS region: pass --region or set AWS_REGION", reason="RegionMissing")
    try:
        return RegistrySpec(type="sagemaker", region=region)
    except ValueError:
        raise RegistryError(f"{region[:40]!r} is not an AWS region name", reason="InvalidRegion") from None


async def _sagemaker(
    group: str, version: str, region: str | None, tag: str | None
) -> tuple[ModelVersion, str]:
    from modelrelease.registry.sagemaker import SageMakerRegistries, target

    async with SageMakerRegistries() as hub:
        registry = hub.get(target(_sagemaker_spec(region)))
        mv = await registry.get_version(group, version, max_age=0.0)
        if mv.status != READY:
            message = f"{mv.uri} is {mv.status}: only a Completed version that is not Rejected is hashed"
            raise RegistryError(message, reason="VersionNotReady")
        digest = await registry.artifact_digest(mv)
        if tag is not None:
            await registry.set_version_tag(group, version, tag, digest)
        return mv, digest


def sagemaker_digest_command(reference: Sequence[str], region: str | None = None) -> str:
    """The canonical digest of a SageMaker model package's ``model.tar.gz`` (``GROUP VERSION`` or the ARN)."""
    group, version, arn_region = sagemaker_reference(reference)
    return asyncio.run(_sagemaker(group, version, region or arn_region, None))[1]


def sagemaker_stamp_command(
    reference: Sequence[str], tag: str = DEFAULT_DIGEST_TAG, region: str | None = None
) -> tuple[str, str]:
    """Compute a model package's digest and record it in its CustomerMetadataProperties under ``tag``
    (keeping its approval status and the rest of its properties); returns (the package ARN, the digest)."""
    group, version, arn_region = sagemaker_reference(reference)
    mv, digest = asyncio.run(_sagemaker(group, version, region or arn_region, tag))
    return mv.uri, digest
