"""Amazon SageMaker Model Registry backend of :class:`~modelrelease.registry.base.Registry`.

The model package group is the model (``spec.model.name``); ``version: "N"`` is its ModelPackageVersion;
``latestApproved`` is the newest version whose ModelApprovalStatus is ``Approved``. A version is READY when
its ModelPackageStatus is ``Completed``, and a ``Rejected`` one has the status ``Rejected`` (so
RegistryReady blocks it). The pinned reference is the model package ARN; serving pods get MODEL_URI = the
``model.tar.gz`` at ``InferenceSpecification.Containers[0].ModelDataUrl`` and MODEL_PACKAGE_ARN.

Metrics: the S3 JSON of ``ModelMetrics.ModelQuality.Statistics`` (a gate's name is the leaf metric key,
``{"binary_classification_metrics": {"f1": {"value": 0.91}}}`` gives ``f1``), overlaying the numeric
``CustomerMetadataProperties``. The digest is the canonical tree digest (:mod:`modelrelease.registry.digest`)
of the archive's files, streamed through ``tarfile`` in stream mode: never unpacked, never whole in memory.
Members that are absolute, hold ``..``, or are links or devices refuse the archive (reason UnsafeArchive).
The tree's root is the archive root, or its single top-level folder when the MLmodel is there.

boto3 blocks: every call runs in the artifact thread pool (:func:`modelrelease.registry.s3.io_pool`), never
on the event loop. Region: ``spec.registry.region`` or the operator's (AWS_REGION / AWS_DEFAULT_REGION);
endpoints and credentials only as boto3 reads them (``AWS_ENDPOINT_URL_SAGEMAKER``, ``AWS_ENDPOINT_URL``,
``AWS_ENDPOINT_URL_S3``, the standard credential chain).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import os
import re
import tarfile
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import partial
from typing import IO, Any, BinaryIO, TypeVar, cast
from urllib.parse import urlsplit

from modelrelease.api.models import MODEL_URI_ENV, ModelRef, RegistrySpec
from modelrelease.registry.base import (
    READY,
    ModelNotFound,
    ModelVersion,
    RegistryError,
    RegistryUnavailable,
    TargetProblem,
)
from modelrelease.registry.cache import (
    VERSION_FACTS_CACHE_SIZE,
    FactsKey,
    ResolutionCache,
    ResolutionKey,
    VersionFactsCache,
)
from modelrelease.registry.digest import check_path, manifest_digest, stream_sha256
from modelrelease.registry.mlmodel import mlmodel_inputs
from modelrelease.settings import Settings

MODEL_PACKAGE_ARN_ENV = "MODEL_PACKAGE_ARN"
CONNECT_TIMEOUT_S = 3.0
READ_TIMEOUT_S = 30.0
MAX_ATTEMPTS = 3
MLMODEL_MAX_BYTES = 1 << 20
STATISTICS_MAX_BYTES = 4 << 20
MAX_ARCHIVE_MEMBERS = 10_000
PACKAGES_KEPT = 1024

_ARN = re.compile(
    r"^arn:aws[a-z-]*:sagemaker:[a-z0-9-]+:[0-9]{12}:model-package/(?P<group>[^/]+)/(?P<version>[1-9][0-9]*)$"
)
V = TypeVar("V")


@dataclass(frozen=True)
class SageMakerTarget:
    """One SageMaker Model Registry: a region and the endpoint boto3 will use (a cache key)."""

    region: str | None
    endpoint: str | None


class Facts:
    """What one pass over a version's archive yields: manifest entries and the MLmodel's bytes."""

    def __init__(self, entries: tuple[tuple[str, str], ...], mlmodel: bytes | None) -> None:
        self.entries = entries
        self.mlmodel = mlmodel


# ------------------------------------------------------------------------------------ pure parts


def parse_pinned(uri: str) -> tuple[str, str] | None:
    """(group, version) of a model package ARN, else None."""
    match = _ARN.match(uri)
    return (match["group"], match["version"]) if match else None


def member_problem(member: tarfile.TarInfo) -> str | None:
    """Why an archive member must not be accepted (absolute, ``..``, link, device, fifo), or None."""
    name = member.name
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        return f"absolute path {name!r}"
    if ".." in name.replace("\\", "/").split("/"):
        return f"path {name!r} leaves the archive"
    if member.issym() or member.islnk():
        return f"{name!r} is a link"
    if not (member.isfile() or member.isdir()):
        return f"{name!r} is a device, fifo or other special file"
    return None


def _relative(name: str) -> str:
    return "/".join(part for part in name.split("/") if part not in ("", "."))


def archive_root(paths: Iterable[str]) -> str:
    """The model's root among an archive's file paths: ``""`` (the archive root), or its single top-level
    folder when every file is inside it (``model/MLmodel``, ``model/model.pkl`` give ``model``)."""
    found = list(paths)
    tops = {path.split("/", 1)[0] for path in found}
    return tops.pop() if len(tops) == 1 and all("/" in path for path in found) else ""


def rooted(entries: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """The entries relative to the model's root (:func:`archive_root`)."""
    found = list(entries)
    top = archive_root(path for path, _ in found)
    return [(path.removeprefix(top + "/"), digest) for path, digest in found] if top else found


def checked_members(
    archive: tarfile.TarFile, location: str, max_members: int = MAX_ARCHIVE_MEMBERS
) -> Iterator[tuple[tarfile.TarInfo, str]]:
    """The archive's regular files with their relative paths, in archive order (stream mode works); a
    hostile member (:func:`member_problem`) raises UnsafeArchive, more than ``max_members`` members
    ArtifactTreeTooLarge. What the operator hashes and what ``modelrelease serve`` unpacks."""
    for count, member in enumerate(archive, 1):
        problem = member_problem(member)
        if problem is not None:
            raise RegistryError(f"archive {location}: {problem}", reason="UnsafeArchive")
        if count > max_members:
            raise RegistryError(
                f"archive {location} has more than {max_members} members", reason="ArtifactTreeTooLarge"
            )
        path = _relative(member.name)
        if member.isfile() and path:
            yield member, path


def scan_archive(stream: IO[bytes], location: str, max_members: int = MAX_ARCHIVE_MEMBERS) -> Facts:
    """Hash every file of a (gzipped) tar read from ``stream`` in stream mode; refuse hostile members."""
    entries: list[tuple[str, str]] = []
    mlmodels: dict[str, bytes] = {}
    try:
        with tarfile.open(fileobj=stream, mode="r|*") as archive:
            for member, path in checked_members(archive, location, max_members):
                extracted = archive.extractfile(member)
                if extracted is None:
                    continue
                if path.rsplit("/", 1)[-1] == "MLmodel" and path.count("/") <= 1:
                    if member.size > MLMODEL_MAX_BYTES:
                        raise RegistryError(f"MLmodel in {location} is too large", reason="ArtifactTooLarge")
                    data = extracted.read()
                    mlmodels[path] = data
                    entries.append((path, hashlib.sha256(data).hexdigest()))
                else:
                    entries.append((path, stream_sha256(cast(BinaryIO, extracted))))
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise RegistryError(
            f"{location} is not a readable tar archive: {exc}", reason="InvalidArchive"
        ) from None
    files = rooted(entries)
    try:
        for path, _ in files:
            check_path(path)
    except ValueError as exc:
        raise RegistryError(f"archive {location}: {exc}", reason="InvalidArtifactPath") from None
    mlmodel = mlmodels.get("MLmodel") or (next(iter(mlmodels.values())) if len(mlmodels) == 1 else None)
    return Facts(tuple(sorted(files)), mlmodel)


def quality_metrics(statistics: Any) -> dict[str, float]:
    """Leaf metrics of a model-quality report: every ``{"<key>": {"value": <number>}}`` at any depth."""
    found: dict[str, float] = {}

    def walk(node: Any, depth: int) -> None:
        if not isinstance(node, dict) or depth > 16:
            return
        for key, child in node.items():
            if isinstance(child, dict) and _number(child.get("value")) is not None:
                found[str(key)] = _number(child["value"])  # type: ignore[assignment]
            else:
                walk(child, depth + 1)

    walk(statistics, 0)
    return found


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def numeric_properties(properties: Mapping[str, str]) -> dict[str, float]:
    """The CustomerMetadataProperties that are numbers, as metrics."""
    return {key: n for key, value in properties.items() if (n := _number(value)) is not None}


def latest_approved(summaries: Iterable[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The newest (highest ModelPackageVersion) summary whose ModelApprovalStatus is Approved."""
    approved = [s for s in summaries if s.get("ModelApprovalStatus") == "Approved"]
    return max(approved, key=lambda s: int(s.get("ModelPackageVersion") or 0), default=None)


def model_version(package: Mapping[str, Any]) -> ModelVersion:
    """A described model package as the operator sees a version."""
    containers = (package.get("InferenceSpecification") or {}).get("Containers") or [{}]
    status = str(package.get("ModelPackageStatus") or "Unknown")
    if package.get("ModelApprovalStatus") == "Rejected":
        status = "Rejected"
    elif status == "Completed":
        status = READY
    arn = str(package["ModelPackageArn"])
    return ModelVersion(
        name=str(package["ModelPackageGroupName"]),
        version=str(package["ModelPackageVersion"]),
        status=status,
        run_id=None,
        source=str(containers[0].get("ModelDataUrl") or ""),
        tags={str(k): str(v) for k, v in (package.get("CustomerMetadataProperties") or {}).items()},
        pinned=arn,
        serving_uri=str(containers[0].get("ModelDataUrl") or "") or None,
        serving_env={MODEL_PACKAGE_ARN_ENV: arn},
    )


# ------------------------------------------------------------------------------------------ boto3


_MISSING = re.compile(r"not (be )?found|does not exist", re.IGNORECASE)
_DENIED = frozenset({"AccessDenied", "AccessDeniedException", "UnrecognizedClientException", "ExpiredToken"})


def _error(what: str, exc: Exception) -> RegistryError:
    import botocore.exceptions

    if isinstance(exc, botocore.exceptions.ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        if code in _DENIED or status in (401, 403):
            return RegistryError(
                f"SageMaker refused the credentials ({what}: {code})", reason="RegistryUnauthorized"
            )
        if status >= 500 or status == 429 or "Throttl" in code:
            return RegistryUnavailable(f"SageMaker unavailable ({what}): {code}")
        return RegistryError(f"SageMaker refused {what}: {code}", reason="RegistryRequestFailed")
    if isinstance(exc, botocore.exceptions.NoCredentialsError):
        return RegistryError(
            "no AWS credentials in the operator's credential chain", reason="RegistryUnauthorized"
        )
    if isinstance(exc, botocore.exceptions.NoRegionError):
        return RegistryError("no AWS region: set spec.registry.region or AWS_REGION", reason="RegionMissing")
    return RegistryUnavailable(f"SageMaker unavailable ({what}): {type(exc).__name__}")


def _missing(exc: Exception) -> bool:
    import botocore.exceptions

    return isinstance(exc, botocore.exceptions.ClientError) and bool(
        _MISSING.search(str(exc.response.get("Error", {}).get("Message", "")))
    )


def boto3_client(service: str, region: str | None) -> Any:
    """A boto3 client with the backend's timeouts and bounded retries (blocking: loads botocore's model)."""
    import boto3
    import botocore.config

    config = botocore.config.Config(
        connect_timeout=CONNECT_TIMEOUT_S,
        read_timeout=READ_TIMEOUT_S,
        retries={"max_attempts": MAX_ATTEMPTS, "mode": "standard"},
    )
    return boto3.session.Session().client(service, region_name=region, config=config)


class SageMakerRegistries:
    """Process-wide state of the SageMaker backend: boto3 clients per region, caches, observer."""

    def __init__(
        self,
        *,
        cache: ResolutionCache | None = None,
        observer: Callable[[str, str, float], None] | None = None,
        facts_cache_size: int = VERSION_FACTS_CACHE_SIZE,
    ) -> None:
        self.cache = cache if cache is not None else ResolutionCache()
        self.observer = observer
        self.facts: VersionFactsCache[Facts] = VersionFactsCache(facts_cache_size)
        self.packages: OrderedDict[tuple[SageMakerTarget, str], Mapping[str, Any]] = OrderedDict()
        self._clients: dict[tuple[str, str | None], Any] = {}
        self._lock = asyncio.Lock()

    def get(self, target: SageMakerTarget) -> SageMakerRegistry:
        return SageMakerRegistry(target, self)

    async def client(self, service: str, region: str | None) -> Any:
        from modelrelease.registry.s3 import io_pool

        async with self._lock:
            key = (service, region)
            if key not in self._clients:
                loop = asyncio.get_running_loop()
                self._clients[key] = await loop.run_in_executor(io_pool(), boto3_client, service, region)
        return self._clients[key]

    def remember(self, target: SageMakerTarget, package: Mapping[str, Any]) -> None:
        self.packages[(target, str(package["ModelPackageArn"]))] = package
        self.packages.move_to_end((target, str(package["ModelPackageArn"])))
        while len(self.packages) > PACKAGES_KEPT:
            self.packages.popitem(last=False)

    async def close(self) -> None:
        self._clients.clear()

    async def __aenter__(self) -> SageMakerRegistries:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()


Hub = SageMakerRegistries


class SageMakerRegistry:
    """The Registry protocol for one region's SageMaker Model Registry."""

    def __init__(self, target: SageMakerTarget, hub: SageMakerRegistries | None = None) -> None:
        self.target = target
        self._hub = hub if hub is not None else SageMakerRegistries()

    async def __aenter__(self) -> SageMakerRegistry:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        return None

    async def _call(self, service: str, what: str, fn: Callable[..., V], *args: Any) -> V:
        from modelrelease.registry.s3 import io_pool

        client = await self._hub.client(service, self.target.region)
        operation, started, outcome = f"{service}.{fn.__name__.lstrip('_')}", time.monotonic(), "ok"
        try:
            return await asyncio.get_running_loop().run_in_executor(io_pool(), partial(fn, client, *args))
        except RegistryError:
            outcome = "error"
            raise
        except Exception as exc:  # botocore's errors, mapped to one line
            outcome = "not-found" if _missing(exc) else "error"
            if _missing(exc):
                raise ModelNotFound(f"{what}: not found") from None
            raise _error(what, exc) from None
        finally:
            if self._hub.observer is not None:  # the same request metric as the MLflow backend's
                self._hub.observer(operation, outcome, time.monotonic() - started)

    # -- resolution

    async def resolve(self, ref: ModelRef, *, max_age: float | None = None) -> ModelVersion:
        kind, value = ref.reference
        if kind not in ("version", "latestApproved"):
            raise RegistryError(f"SageMaker has no {kind} references", reason="UnsupportedReference")
        return await self._cached(ref.name, kind, value, max_age)

    async def get_version(self, name: str, version: str, *, max_age: float | None = None) -> ModelVersion:
        return await self._cached(name, "version", str(int(version)), max_age)

    async def _cached(self, name: str, kind: str, value: str, max_age: float | None) -> ModelVersion:
        key = ResolutionKey(self.target, name, kind, value)
        return await self._hub.cache.get(key, partial(self._fetch, name, kind, value), max_age)

    async def _fetch(self, group: str, kind: str, value: str) -> ModelVersion:
        summaries = await self._call("sagemaker", f"model package group {group}", _list_packages, group)
        if not summaries:
            await self._call("sagemaker", f"model package group {group}", _describe_group, group)
        if kind == "latestApproved":
            chosen = latest_approved(summaries)
            if chosen is None:
                raise ModelNotFound(
                    f"model package group {group} has no Approved version", reason="NoApprovedVersion"
                )
        else:
            chosen = next((s for s in summaries if str(s.get("ModelPackageVersion")) == value), None)
            if chosen is None:
                raise ModelNotFound(
                    f"model package group {group} has no version {value}", reason="VersionNotFound"
                )
        arn = str(chosen["ModelPackageArn"])
        package = await self._call("sagemaker", f"model package {arn}", _describe_package, arn)
        self._hub.remember(self.target, package)
        return model_version(package)

    async def serving_env(self, name: str, version: str) -> dict[str, str]:
        mv = await self.get_version(name, version)
        if not mv.serving_uri:
            raise RegistryError(f"{mv.uri} has no ModelDataUrl", reason="ArtifactNotFound")
        return {MODEL_URI_ENV: mv.serving_uri, **mv.serving_env}

    # -- metrics

    async def run_metrics(self, run_id: str) -> dict[str, float]:
        raise RegistryError("SageMaker versions have no runs", reason="RunNotFound")

    async def version_metrics(self, mv: ModelVersion) -> dict[str, float]:
        metrics = numeric_properties(mv.tags)
        package = self._hub.packages.get((self.target, mv.uri)) or {}
        stats = ((package.get("ModelMetrics") or {}).get("ModelQuality") or {}).get("Statistics") or {}
        location = str(stats.get("S3Uri") or "")
        if location:
            data = await self._call("s3", location, _read_object, location, STATISTICS_MAX_BYTES)
            try:
                metrics.update(quality_metrics(json.loads(data)))
            except (ValueError, RecursionError):
                raise RegistryError(
                    f"model quality statistics at {location} are not JSON", "InvalidMetrics"
                ) from None
        return metrics

    # -- artifacts

    def _key(self, mv: ModelVersion) -> FactsKey:
        return (self.target, mv.name, mv.version)

    async def _facts(self, mv: ModelVersion, max_age: float | None = None) -> Facts:
        if mv.status != READY:
            raise RegistryError(f"{mv.uri} has registry status {mv.status}", reason="VersionNotReady")
        if not mv.source.startswith("s3://"):
            raise RegistryError(
                f"{mv.uri}: ModelDataUrl {mv.source!r} is not s3://", "UnsupportedArtifactLocation"
            )
        return await self._hub.facts.get(
            self._key(mv), partial(self._call, "s3", mv.source, _scan_object, mv.source), max_age
        )

    async def artifact_entries(
        self, mv: ModelVersion, *, max_age: float | None = None
    ) -> tuple[tuple[str, str], ...]:
        return (await self._facts(mv, max_age)).entries

    async def artifact_digest(self, mv: ModelVersion, *, max_age: float | None = None) -> str:
        return manifest_digest(await self.artifact_entries(mv, max_age=max_age))

    async def signature_bundle(self, mv: ModelVersion) -> bytes | None:
        return None  # model.sig inside an archive is not read (yet)

    async def serving_input_example(self, mv: ModelVersion) -> dict[str, object] | None:
        return None

    async def input_schema(self, mv: ModelVersion) -> list[dict[str, Any]] | None:
        facts = await self._facts(mv)
        return mlmodel_inputs(facts.mlmodel, mv.uri) if facts.mlmodel is not None else None

    # -- registration side

    async def set_version_tag(self, name: str, version: str, key: str, value: str) -> None:
        """Record ``key=value`` in CustomerMetadataProperties, sending back the other properties, the approval
        status and its description (moto resets what an update does not name; SageMaker keeps it)."""
        mv = await self.get_version(name, version, max_age=0.0)
        package = self._hub.packages.get((self.target, mv.uri)) or {}
        await self._call("sagemaker", f"model package {mv.uri}", _set_property, package, key, value)
        self._hub.cache.invalidate(name, self.target)


def _list_packages(client: Any, group: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for page in client.get_paginator("list_model_packages").paginate(ModelPackageGroupName=group):
        found += page.get("ModelPackageSummaryList", [])
    return found


def _describe_group(client: Any, group: str) -> None:
    client.describe_model_package_group(ModelPackageGroupName=group)


def _describe_package(client: Any, arn: str) -> dict[str, Any]:
    answer: dict[str, Any] = client.describe_model_package(ModelPackageName=arn)
    return answer


def split_s3_uri(location: str) -> tuple[str, str]:
    """(bucket, key) of ``s3://bucket/key``."""
    parts = urlsplit(location)
    return parts.netloc, parts.path.lstrip("/")


def _read_object(client: Any, location: str, limit: int) -> bytes:
    bucket, key = split_s3_uri(location)
    body = client.get_object(Bucket=bucket, Key=key)["Body"]
    try:
        data: bytes = body.read(limit + 1)
    finally:
        body.close()
    if len(data) > limit:
        raise RegistryError(f"{location} is larger than {limit} bytes", reason="ArtifactTooLarge")
    return data


def _scan_object(client: Any, location: str) -> Facts:
    bucket, key = split_s3_uri(location)
    body = client.get_object(Bucket=bucket, Key=key)["Body"]
    try:
        return scan_archive(body, location)
    finally:
        body.close()


def _set_property(client: Any, package: Mapping[str, Any], key: str, value: str) -> None:
    properties = {**(package.get("CustomerMetadataProperties") or {}), key: value}
    kept: dict[str, Any] = {"CustomerMetadataProperties": properties}
    for field in ("ModelApprovalStatus", "ApprovalDescription"):  # moto resets what is not sent back
        if package.get(field):
            kept[field] = package[field]
    client.update_model_package(ModelPackageArn=package["ModelPackageArn"], **kept)


# ------------------------------------------------------------------------------ the factory's entry points


def target(spec: RegistrySpec, environ: Mapping[str, str] = os.environ) -> SageMakerTarget:
    """The registry a release names: its region (else the operator's) and boto3's endpoint override."""
    region = spec.region or environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION") or None
    if region is None:
        raise TargetProblem(
            "spec.registry.region", "not set, and the operator has no AWS_REGION", "RegionMissing"
        )
    endpoint = environ.get("AWS_ENDPOINT_URL_SAGEMAKER") or environ.get("AWS_ENDPOINT_URL") or None
    return SageMakerTarget(region=region, endpoint=endpoint)


async def registry_for(
    hub: SageMakerRegistries,
    spec: RegistrySpec,
    namespace: str,
    settings: Settings,
    secrets: Callable[[str, str], Awaitable[Mapping[str, str] | None]],
) -> SageMakerRegistry:
    """The release's SageMaker registry (credentials: the operator's own chain, never a Secret)."""
    return hub.get(target(spec))
