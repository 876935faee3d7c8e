"""Artifact trees stored in S3 (``s3://bucket/prefix`` download locations), read with boto3.

boto3 blocks, so every call runs in a small dedicated thread pool (:func:`io_pool`), never on the event
loop and never in the loop's default executor, which kopf's sync handlers share. Credentials and endpoint
come from the operator's environment (the AWS chain, ``MLFLOW_S3_ENDPOINT_URL``, ``MLFLOW_S3_IGNORE_TLS``),
as in MLflow's own S3 artifact repository. Bytes are streamed through SHA-256 in bounded chunks.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar
from urllib.parse import urlsplit

import boto3
import botocore.config
import botocore.exceptions

from modelrelease.registry.base import RegistryError, RegistryUnavailable
from modelrelease.registry.digest import stream_sha256

ARTIFACT_IO_THREADS = 4
"""Threads for blocking object-store calls."""

V = TypeVar("V")

_POOL: ThreadPoolExecutor | None = None


def io_pool() -> ThreadPoolExecutor:
    global _POOL
    if _POOL is None:
        _POOL = ThreadPoolExecutor(ARTIFACT_IO_THREADS, thread_name_prefix="modelrelease-artifacts")
    return _POOL


def client(connect_timeout: float, read_timeout: float, max_attempts: int) -> Any:
    """A boto3 S3 client configured from the environment as MLflow's S3 artifact repository does.

    Blocking (it loads botocore's service model): call it in :func:`io_pool`.
    """
    config = botocore.config.Config(
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        retries={"max_attempts": max_attempts, "mode": "standard"},
    )
    return boto3.session.Session().client(
        "s3",
        endpoint_url=os.environ.get("MLFLOW_S3_ENDPOINT_URL") or None,
        verify=os.environ.get("MLFLOW_S3_IGNORE_TLS", "").lower() not in ("1", "true", "yes"),
        config=config,
    )


_S3_MISSING = frozenset({"NoSuchKey", "NoSuchBucket", "404", "NotFound"})
_S3_DENIED = frozenset({"AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken"})


def s3_error(location: str, exc: Exception) -> RegistryError:
    if isinstance(exc, botocore.exceptions.ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        if code in _S3_MISSING:
            return RegistryError(f"artifact not found in {location}: {code}", reason="ArtifactNotFound")
        if code in _S3_DENIED:
            return RegistryError(f"access to {location} denied: {code}", reason="ArtifactAccessDenied")
        if status >= 500 or status == 429 or code in ("SlowDown", "Throttling", "RequestTimeout"):
            return RegistryUnavailable(
                f"object store unavailable for {location}: {code}", reason="ArtifactStoreUnavailable"
            )
        return RegistryError(f"object store refused {location}: {code}", reason="ArtifactStoreError")
    if isinstance(exc, botocore.exceptions.NoCredentialsError):
        return RegistryError(f"no object-store credentials to read {location}", reason="ArtifactAccessDenied")
    if isinstance(exc, botocore.exceptions.ParamValidationError):
        return RegistryError(f"invalid S3 location {location}", reason="ArtifactStoreError")
    return RegistryUnavailable(
        f"object store unavailable for {location}: {type(exc).__name__}", reason="ArtifactStoreUnavailable"
    )


class S3Tree:
    """A tree in S3 (``s3://bucket/prefix`` locations), read with boto3 in the artifact thread pool."""

    def __init__(self, client: Callable[[], Awaitable[Any]], location: str) -> None:
        self.location = location
        self._client = client
        parts = urlsplit(location)
        self._bucket = parts.netloc
        self._prefix = parts.path.strip("/")

    async def _blocking(self, fn: Callable[..., V], *args: Any) -> V:
        client = await self._client()
        try:
            return await asyncio.get_running_loop().run_in_executor(io_pool(), fn, client, *args)
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            raise s3_error(self.location, exc) from None

    def _key(self, path: str) -> str:
        return f"{self._prefix}/{path}" if self._prefix else path

    async def files(self) -> list[str]:
        return await self._blocking(self._list)

    def _list(self, client: Any) -> list[str]:
        prefix = f"{self._prefix}/" if self._prefix else ""
        found = []
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=self._bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                relative = item["Key"][len(prefix) :]
                if relative and not relative.endswith("/"):
                    found.append(relative)
        return found

    async def exists(self, path: str) -> bool:
        return await self._blocking(self._exists, self._key(path))

    def _exists(self, client: Any, key: str) -> bool:
        try:
            client.head_object(Bucket=self._bucket, Key=key)
        except botocore.exceptions.ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code", "")) in _S3_MISSING:
                return False
            raise
        return True

    async def sha256(self, path: str) -> str:
        return await self._blocking(self._sha256, self._key(path))

    def _sha256(self, client: Any, key: str) -> str:
        body = client.get_object(Bucket=self._bucket, Key=key)["Body"]
        try:
            return stream_sha256(body)
        finally:
            body.close()

    async def read(self, path: str, limit: int) -> bytes:
        data: bytes = await self._blocking(self._read, self._key(path), limit)
        if len(data) > limit:
            raise RegistryError(f"artifact larger than {limit} bytes", reason="ArtifactTooLarge")
        return data

    def _read(self, client: Any, key: str, limit: int) -> bytes:
        body = client.get_object(Bucket=self._bucket, Key=key)["Body"]
        try:
            data: bytes = body.read(limit + 1)
            return data
        finally:
            body.close()
