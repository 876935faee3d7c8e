"""MLflow backend of :class:`~modelrelease.registry.base.Registry`, async end to end.

Registry calls go to MLflow's REST API (``/api/2.0/mlflow/...``) over aiohttp, never through the
blocking MLflow client, so nothing here stalls the event loop. Every request has an explicit timeout
and bounded retries with exponential backoff, on transient failures only (connection errors,
timeouts, HTTP 429 and 5xx); see :class:`HttpPolicy` for the numbers. MLflow's own client would wait
about 244 s before giving up on a dead server (7 retries, backoff factor 2, 120 s timeouts); with the
defaults below a dead server is reported within about 1.5 s, and no call takes longer than
:attr:`HttpPolicy.worst_case_seconds`, the one bound the README quotes.

Answers are parsed defensively: a body MLflow would not send (a proxy's JSON, a truncated answer, odd
artifact paths) is a :class:`RegistryError` with reason ``UnexpectedRegistryAnswer`` or
``InvalidArtifactPath``, never a ``KeyError`` escaping a reconcile pass.

Artifacts are read where the version's download URI points: through the tracking server's artifact
proxy (``mlflow-artifacts:`` locations, ``/api/2.0/mlflow-artifacts/artifacts/...``, same credentials
as the registry) or straight from S3 (``s3://`` locations, boto3 with the operator's own AWS
environment, ``MLFLOW_S3_ENDPOINT_URL`` and ``MLFLOW_S3_IGNORE_TLS`` as MLflow reads them; blocking
boto3 calls run in a small dedicated thread pool so they never occupy kopf's executor). File bytes are
streamed through SHA-256 in :data:`~modelrelease.registry.digest.CHUNK_SIZE` chunks.

Sharing: one :class:`MlflowRegistries` per operator process holds the HTTP session, the
:class:`ResolutionCache` (answers per (target, model, reference) with a TTL, single-flight on misses)
and bounded LRU caches of per-file digests and input schemas per (target, model, version).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import json
import math
import random
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from functools import cached_property, partial
from typing import Any, ParamSpec, Protocol, TypeVar
from urllib.parse import quote, unquote, urlsplit

import aiohttp

from modelrelease import __version__
from modelrelease.api.models import (
    MODEL_NAME_PATTERN,
    MODEL_URI_ENV,
    VERSION_PATTERN,
    ModelRef,
    RegistrySpec,
    parse_model_uri,
    pinned_uri,
)
from modelrelease.registry.base import (
    READY,
    ModelNotFound,
    ModelVersion,
    RegistryError,
    RegistryTarget,
    RegistryUnavailable,
    TargetProblem,
    tracking_uri_problem,
)
from modelrelease.registry.cache import (
    VERSION_FACTS_CACHE_SIZE,
    ResolutionCache,
    ResolutionKey,
    VersionFactsCache,
)
from modelrelease.registry.digest import (
    CHUNK_SIZE,
    SIGNATURE_FILE,
    check_path,
    hashed,
    manifest,
    manifest_digest,
)
from modelrelease.registry.mlmodel import mlmodel_inputs, parse_mlmodel, signature_inputs
from modelrelease.settings import Settings

__all__ = [
    "HttpPolicy",
    "Hub",
    "MlflowApiError",
    "MlflowRegistries",
    "MlflowRegistry",
    "ResolutionCache",
    "parse_pinned",
    "registry_for",
]

# ----------------------------------------------------------------------------------- tunables

REQUEST_TIMEOUT_S = 10.0
"""Whole-request timeout of one registry API call attempt."""
CONNECT_TIMEOUT_S = 3.0
"""Time allowed to open a connection (also for artifact downloads)."""
READ_TIMEOUT_S = 30.0
"""Longest silence between two reads while streaming an artifact (downloads have no total timeout)."""
MAX_ATTEMPTS = 3
"""Attempts per call, the first included; only transient failures are retried."""
BACKOFF_BASE_S = 0.5
"""Wait before the second attempt; doubles per attempt (with up to 50 % jitter taken off)."""
BACKOFF_MAX_S = 4.0
"""Cap on one wait, also on a server's Retry-After."""

MLMODEL_MAX_BYTES = 1 << 20
"""An MLmodel file larger than this is refused rather than read."""
MAX_ARTIFACT_ENTRIES = 10_000
"""Files and directories listed per artifact tree before the tree is refused (a listing that never ends)."""
MAX_ARTIFACT_DEPTH = 32
"""Directory nesting allowed in an artifact tree."""
INPUT_EXAMPLE_MAX_BYTES = 1 << 20
"""A serving input example larger than this is refused rather than read (it is sent to every new pod)."""
SIGNATURE_MAX_BYTES = 16 << 20
"""A model.sig larger than this is refused rather than read (it lists every file: ~200 bytes each)."""

_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
_API = "/api/2.0/mlflow"
_ARTIFACTS_API = "/api/2.0/mlflow-artifacts/artifacts"
_LOGGED_MODEL_SOURCE = re.compile(r"^models:/(?P<id>m-[0-9a-f]+)$")
_MODEL_NAME = re.compile(MODEL_NAME_PATTERN)
_VERSION = re.compile(VERSION_PATTERN)
_RUN_ID_MAX = 256


@dataclass(frozen=True)
class HttpPolicy:
    """Timeouts and retries of every registry request (defaults: the module constants)."""

    request_timeout: float = REQUEST_TIMEOUT_S
    connect_timeout: float = CONNECT_TIMEOUT_S
    read_timeout: float = READ_TIMEOUT_S
    max_attempts: int = MAX_ATTEMPTS
    backoff_base: float = BACKOFF_BASE_S
    backoff_max: float = BACKOFF_MAX_S

    def backoff(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based); a server's Retry-After is
        honoured up to ``backoff_max``."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.backoff_max)
        ceiling = min(self.backoff_base * 2 ** (attempt - 1), self.backoff_max)
        return ceiling * random.uniform(0.5, 1.0)

    @property
    def worst_case_seconds(self) -> float:
        """Upper bound on one API call, all attempts and waits included: every attempt may run into its
        timeout, and a server answering 429/5xx with Retry-After can stretch every wait to backoff_max."""
        return self.max_attempts * self.request_timeout + (self.max_attempts - 1) * self.backoff_max


V = TypeVar("V")
P = ParamSpec("P")

Sleep = Callable[[float], Awaitable[None]]
"""How the retry loop waits between attempts (``asyncio.sleep``; tests record the waits instead)."""

RequestObserver = Callable[[str, str, float], None]
"""Called after every HTTP attempt with (operation, outcome, seconds): operation like
``model-versions/get`` or ``artifact download``; outcome ``ok``, ``HTTP <status>`` (an error answer),
``timeout``, ``connection-error`` or ``tls-error``. For request-latency metrics."""


# ---------------------------------------------------------------------------------- HTTP


class MlflowApiError(RegistryError):
    """A non-transient error answer of the MLflow REST API (HTTP status and MLflow error code kept)."""

    default_reason = "RegistryRequestFailed"

    def __init__(
        self, message: str, status: int, error_code: str, detail: str, reason: str | None = None
    ) -> None:
        super().__init__(message, reason)
        self.status = status
        self.error_code = error_code
        self.detail = detail
        """The server's own message."""


class _Retryable(Exception):
    def __init__(self, detail: str, retry_after: float | None = None) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


def _retry_after(value: str | None) -> float | None:
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        return None  # an HTTP date: use our own backoff
    return seconds if seconds is not None and math.isfinite(seconds) else None


def _endpoint(target: RegistryTarget) -> tuple[str, dict[str, str]]:
    """(base URL without credentials, auth headers) for a target; credentials in the URL are honoured."""
    problem = tracking_uri_problem(target.tracking_uri)
    if problem is not None:
        raise problem
    parts = urlsplit(target.tracking_uri.strip())
    base = f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path.rstrip('/')}"
    username, password = target.username, target.password
    if username is None and target.token is None and parts.username is not None:
        username, password = unquote(parts.username), unquote(parts.password or "")
    headers = {"User-Agent": f"modelrelease-operator/{__version__}"}
    if target.token is not None:
        headers["Authorization"] = f"Bearer {target.token}"
    elif username is not None:
        headers["Authorization"] = aiohttp.encode_basic_auth(username, password or "")
    return base, headers


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


class _Api:
    """One registry target's REST API: timeouts, retries, error mapping. Never logs or shows credentials."""

    def __init__(self, target: RegistryTarget, hub: MlflowRegistries) -> None:
        self.base, self._headers = _endpoint(target)
        self._ssl = target.verify_tls  # True: aiohttp verifies certificates with the default context
        self._hub = hub
        policy = hub.policy
        self._policy = policy
        self._call_timeout = aiohttp.ClientTimeout(
            total=policy.request_timeout, connect=policy.connect_timeout
        )
        self._stream_timeout = aiohttp.ClientTimeout(
            total=None, connect=policy.connect_timeout, sock_read=policy.read_timeout
        )

    async def get(self, path: str, params: Mapping[str, str]) -> dict[str, Any]:
        return await self._call("GET", path, params=params)

    async def post(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return await self._call("POST", path, body=body)

    async def _call(
        self, method: str, path: str, *, params: Mapping[str, str] | None = None, body: object = None
    ) -> dict[str, Any]:
        operation = path.removeprefix(_API + "/")

        async def attempt() -> dict[str, Any]:
            session = await self._hub.session()
            async with session.request(
                method,
                self.base + path,
                params=params,
                json=body,
                headers=self._headers,
                ssl=self._ssl,
                timeout=self._call_timeout,
                allow_redirects=False,
            ) as response:
                self._raise_for_retry(response)
                data = await self._json(response)
                if response.status >= 300:
                    raise self._api_error(operation, response.status, data)
                return data

        return await self._retrying(operation, attempt)

    async def sha256(self, path: str) -> str:
        """Hex SHA-256 of a download, streamed in bounded chunks; a broken transfer restarts the file."""

        async def attempt() -> str:
            async with await self._open(path) as response:
                digest = hashlib.sha256()
                async for chunk in response.content.iter_chunked(CHUNK_SIZE):
                    digest.update(chunk)
                return digest.hexdigest()

        return await self._retrying("artifact download", attempt)

    async def read(self, path: str, limit: int) -> bytes:
        async def attempt() -> bytes:
            async with await self._open(path) as response:
                data = await response.content.read(limit + 1)
                if len(data) > limit:
                    raise RegistryError(f"artifact larger than {limit} bytes", reason="ArtifactTooLarge")
                return data

        return await self._retrying("artifact download", attempt)

    async def _open(self, path: str) -> aiohttp.ClientResponse:
        session = await self._hub.session()
        response = await session.get(
            self.base + path,
            headers=self._headers,
            ssl=self._ssl,
            timeout=self._stream_timeout,
            allow_redirects=False,
        )
        try:
            self._raise_for_retry(response)
            if response.status >= 300:
                raise self._api_error("artifact download", response.status, await self._json(response))
        except BaseException:
            response.release()
            raise
        return response

    async def _retrying(self, operation: str, attempt: Callable[[], Awaitable[V]]) -> V:
        policy = self._policy
        detail = ""
        for number in range(1, policy.max_attempts + 1):
            started = time.monotonic()
            retry_after: float | None = None
            try:
                result = await attempt()
            except (aiohttp.ClientSSLError, aiohttp.ClientConnectorCertificateError) as exc:
                self._observe(operation, "tls-error", started)
                raise RegistryError(
                    f"TLS handshake with registry {self.base} failed: {_describe(exc)}",
                    reason="RegistryTLSError",
                ) from None
            except aiohttp.InvalidURL as exc:
                raise RegistryError(
                    f"registry URL {self.base} is not valid: {_describe(exc)}", reason="InvalidTrackingUri"
                ) from None
            except _Retryable as exc:
                self._observe(operation, str(exc), started)
                detail, retry_after = str(exc), exc.retry_after
            except TimeoutError as exc:
                self._observe(operation, "timeout", started)
                detail = _describe(exc)
            except MlflowApiError as exc:
                self._observe(operation, f"HTTP {exc.status}", started)
                raise
            except aiohttp.ClientError as exc:  # connection errors, broken payloads, unparseable answers
                self._observe(operation, "connection-error", started)
                detail = _describe(exc)
            else:
                self._observe(operation, "ok", started)
                return result
            if number < policy.max_attempts:
                await self._hub.sleep(policy.backoff(number, retry_after))
        raise RegistryUnavailable(
            f"registry {self.base} unavailable ({operation}): {detail} after {policy.max_attempts} attempts"
        )

    def _observe(self, operation: str, outcome: str, started: float) -> None:
        if self._hub.observer is not None:
            self._hub.observer(operation, outcome, time.monotonic() - started)

    @staticmethod
    def _raise_for_retry(response: aiohttp.ClientResponse) -> None:
        if response.status in _RETRY_STATUSES:
            raise _Retryable(f"HTTP {response.status}", _retry_after(response.headers.get("Retry-After")))

    @staticmethod
    async def _json(response: aiohttp.ClientResponse) -> dict[str, Any]:
        try:
            data = json.loads(await response.read() or b"{}")
        except (ValueError, RecursionError):
            return {}
        return data if isinstance(data, dict) else {}

    def _api_error(self, operation: str, status: int, data: Mapping[str, Any]) -> MlflowApiError:
        code = str(data.get("error_code") or "")
        message = str(data.get("message") or "")[:300]
        if status in (401, 403):
            return MlflowApiError(
                f"registry {self.base} refused the credentials ({operation}: HTTP {status})",
                status,
                code,
                message,
                reason="RegistryUnauthorized",
            )
        return MlflowApiError(
            f"{operation}: HTTP {status} {code}: {message}".strip(": "), status, code, message
        )


# ----------------------------------------------------------------------------- artifacts


class _ArtifactTree(Protocol):
    """The artifact tree of one model version, wherever it is stored."""

    location: str

    async def files(self) -> list[str]:
        """Relative POSIX paths of every file in the tree."""
        ...

    async def exists(self, path: str) -> bool:
        """Whether ``path`` is a file of the tree."""
        ...

    async def sha256(self, path: str) -> str: ...

    async def read(self, path: str, limit: int) -> bytes: ...


class _ProxiedTree:
    """A tree behind the tracking server's artifact proxy (``mlflow-artifacts:`` locations).

    The host in a ``mlflow-artifacts://host/...`` location is ignored: the registry's own base URL is
    used, so the registry credentials are never sent elsewhere.
    """

    def __init__(self, api: _Api, location: str, max_entries: int) -> None:
        self.location = location
        self._api = api
        self._root = urlsplit(location).path.strip("/")
        self._max_entries = max_entries

    def _url(self, path: str) -> str:
        return f"{_ARTIFACTS_API}/{quote(f'{self._root}/{path}')}"

    async def _list(self, directory: str) -> list[tuple[str, bool]]:
        listing = await self._api.get(_ARTIFACTS_API, {"path": f"{self._root}/{directory}".rstrip("/")})
        return _listing(listing, self.location)

    async def files(self) -> list[str]:
        found: list[str] = []
        pending = [""]
        seen = 0
        while pending:
            directory = pending.pop()
            for name, is_dir in await self._list(directory):
                path = f"{directory}/{name}".lstrip("/")
                seen += 1
                if seen > self._max_entries or (is_dir and path.count("/") >= MAX_ARTIFACT_DEPTH):
                    raise RegistryError(
                        f"artifact tree at {self.location} has more than {self._max_entries} entries "
                        f"or is nested deeper than {MAX_ARTIFACT_DEPTH} directories",
                        reason="ArtifactTreeTooLarge",
                    )
                (pending if is_dir else found).append(path)
        return found

    async def exists(self, path: str) -> bool:
        # The proxy answers 500, not 404, for a missing file: look in the listing instead.
        directory, _, name = path.rpartition("/")
        return (name, False) in await self._list(directory)

    async def sha256(self, path: str) -> str:
        return await self._api.sha256(self._url(path))

    async def read(self, path: str, limit: int) -> bytes:
        return await self._api.read(self._url(path), limit)


# ------------------------------------------------------------------------------ registry


class _Unexpected(Exception):
    """A registry answer of a shape MLflow does not send (raised inside the parsers below)."""


def _answer(what: str) -> Callable[[Callable[P, V]], Callable[P, V]]:
    """Parsers of registry answers raise RegistryError(UnexpectedRegistryAnswer), never the KeyError,
    TypeError or ValueError that a body of another shape (a proxy's JSON, another API) would cause."""

    def wrap(parse: Callable[P, V]) -> Callable[P, V]:
        @functools.wraps(parse)
        def parsed(*args: P.args, **kwargs: P.kwargs) -> V:
            try:
                return parse(*args, **kwargs)
            except (_Unexpected, LookupError, TypeError, ValueError, AttributeError, ArithmeticError) as exc:
                detail = f": {exc}" if isinstance(exc, _Unexpected) else f" ({type(exc).__name__})"
                raise RegistryError(
                    f"the registry answered {what} in a shape MLflow does not send{detail}",
                    reason="UnexpectedRegistryAnswer",
                ) from None

        return parsed

    return wrap


def _list_of(items: Any) -> list[Any]:
    if items is None:
        return []
    if not isinstance(items, list):
        raise _Unexpected(f"expected a list, got {type(items).__name__}")
    return items


def _tags(items: Any) -> dict[str, str]:
    return {str(t["key"]): str(t.get("value", "")) for t in _list_of(items)}


@_answer("a model version")
def _model_version(data: Any) -> ModelVersion:
    # MLflow 3's REST answer omits model_id; a version made from a logged model has source models:/m-<id>.
    name, version, run_id = data["name"], str(data["version"]), data.get("run_id") or None
    if not isinstance(name, str) or len(name) > 256 or not _MODEL_NAME.match(name):
        raise _Unexpected(f"model name {str(name)[:80]!r}")
    if not _VERSION.match(version):
        raise _Unexpected(f"version {version[:80]!r} is not a version number")
    if run_id is not None and (not isinstance(run_id, str) or len(run_id) > _RUN_ID_MAX):
        raise _Unexpected("run_id is not a run id")
    source = str(data.get("source") or "")
    logged = _LOGGED_MODEL_SOURCE.match(source)
    return ModelVersion(
        name=name,
        version=version,
        status=str(data.get("status") or "UNKNOWN"),
        run_id=run_id,
        source=source,
        tags=_tags(data.get("tags")),
        aliases=tuple(str(a) for a in _list_of(data.get("aliases"))),
        model_id=str(data.get("model_id") or "") or (logged["id"] if logged else None),
        pinned=pinned_uri(name, version),
    )


@_answer("a model version lookup")
def _version_answer(data: Mapping[str, Any]) -> ModelVersion:
    return _model_version(data["model_version"])


@_answer("the latest versions of a stage")
def _stage_versions(data: Mapping[str, Any], stage: str) -> list[ModelVersion]:
    return [
        _model_version(v)
        for v in _list_of(data.get("model_versions"))
        if str(v.get("current_stage", "")).lower() == stage.lower()
    ]


@_answer("metrics")
def _latest_metrics(items: Any) -> dict[str, float]:
    """``key → value`` keeping, per key, the entry with the newest (timestamp, step)."""
    newest: dict[str, tuple[int, int, float]] = {}
    for item in _list_of(items):
        stamp = (int(item.get("timestamp", 0)), int(item.get("step", 0)), float(item["value"]))
        key = str(item["key"])
        if key not in newest or stamp[:2] >= newest[key][:2]:
            newest[key] = stamp
    return {key: value for key, (_t, _s, value) in newest.items()}


@_answer("a run or logged model")
def _entity_metrics(data: Mapping[str, Any], entity: str) -> dict[str, float]:
    """The metrics of ``{entity: {data: {metrics: [...]}}}`` (a run, or an MLflow 3 logged model)."""
    return _latest_metrics((data.get(entity) or {}).get("data", {}).get("metrics"))


@_answer("an artifact listing")
def _listing(data: Mapping[str, Any], location: str) -> list[tuple[str, bool]]:
    """(name, is_dir) per entry of one directory; a name that is not one plain path segment is refused."""
    entries = []
    for info in _list_of(data.get("files")):
        name = info["path"]
        if not isinstance(name, str) or name in ("", ".", "..") or any(c in name for c in "/\n\r"):
            raise RegistryError(
                f"artifact listing of {location} holds the path {str(name)[:80]!r}",
                reason="InvalidArtifactPath",
            )
        entries.append((name, bool(info.get("is_dir"))))
    return entries


class MlflowRegistries:
    """Process-wide shared state of the MLflow backend: HTTP session, caches, policy, observer.

    ``registries.get(target)`` is cheap; every registry it returns shares this state. Create it inside
    the running event loop's lifetime and ``await close()`` at shutdown.
    """

    def __init__(
        self,
        *,
        policy: HttpPolicy | None = None,
        cache: ResolutionCache | None = None,
        facts_cache_size: int = VERSION_FACTS_CACHE_SIZE,
        observer: RequestObserver | None = None,
        sleep: Sleep = asyncio.sleep,
        max_artifact_entries: int = MAX_ARTIFACT_ENTRIES,
    ) -> None:
        self.policy = policy or HttpPolicy()
        self.sleep = sleep
        self.max_artifact_entries = max_artifact_entries
        self.cache = cache if cache is not None else ResolutionCache()
        self.entries: VersionFactsCache[tuple[tuple[str, str], ...]] = VersionFactsCache(facts_cache_size)
        self.schemas: VersionFactsCache[list[dict[str, Any]] | None] = VersionFactsCache(facts_cache_size)
        self.locations: VersionFactsCache[str] = VersionFactsCache(facts_cache_size)
        self.observer = observer
        self._session: aiohttp.ClientSession | None = None
        self._s3: Any = None
        self._s3_lock = asyncio.Lock()

    def get(self, target: RegistryTarget) -> MlflowRegistry:
        return MlflowRegistry(target, registries=self)

    async def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64, limit_per_host=16))
        return self._session

    async def s3_client(self) -> Any:
        async with self._s3_lock:
            if self._s3 is None:
                from modelrelease.registry import s3  # boto3 is imported only when a location needs it

                policy = self.policy
                make = partial(s3.client, policy.connect_timeout, policy.read_timeout, policy.max_attempts)
                self._s3 = await asyncio.get_running_loop().run_in_executor(s3.io_pool(), make)
        return self._s3

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> MlflowRegistries:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()


class MlflowRegistry:
    """The :class:`~modelrelease.registry.base.Registry` protocol for one MLflow tracking server.

    Standalone (``async with MlflowRegistry(target) as registry``) it owns private shared state;
    inside the operator, take it from :meth:`MlflowRegistries.get` so answers are shared.
    """

    def __init__(self, target: RegistryTarget, *, registries: MlflowRegistries | None = None) -> None:
        self.target = target
        self._owned = registries is None
        self._shared = registries if registries is not None else MlflowRegistries()

    @cached_property
    def _api(self) -> _Api:
        # Built on first use, so an unusable tracking URI surfaces as a RegistryError from a call.
        return _Api(self.target, self._shared)

    async def close(self) -> None:
        if self._owned:
            await self._shared.close()

    async def __aenter__(self) -> MlflowRegistry:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    # -- resolution

    async def resolve(self, ref: ModelRef, *, max_age: float | None = None) -> ModelVersion:
        kind, value = ref.reference
        return await self._cached(ref.name, kind, value, max_age)

    async def get_version(self, name: str, version: str, *, max_age: float | None = None) -> ModelVersion:
        return await self._cached(name, "version", str(int(version)), max_age)

    async def serving_env(self, name: str, version: str) -> dict[str, str]:
        """MODEL_URI is the pinned ``models:/<name>/<N>`` itself: no request needed."""
        return {MODEL_URI_ENV: pinned_uri(name, version)}

    async def _cached(self, name: str, kind: str, value: str, max_age: float | None) -> ModelVersion:
        fetchers = {"version": self._fetch_version, "alias": self._fetch_alias, "stage": self._fetch_stage}
        key = ResolutionKey(self.target, name, kind, value)
        return await self._shared.cache.get(key, partial(fetchers[kind], name, value), max_age)

    async def _fetch_version(self, name: str, version: str) -> ModelVersion:
        try:
            data = await self._api.get(f"{_API}/model-versions/get", {"name": name, "version": version})
        except MlflowApiError as exc:
            if exc.status != 404:
                raise
            await self._require_model(name)
            raise ModelNotFound(f"model {name} has no version {version}", reason="VersionNotFound") from None
        return _version_answer(data)

    async def _fetch_alias(self, name: str, alias: str) -> ModelVersion:
        try:
            data = await self._api.get(f"{_API}/registered-models/alias", {"name": name, "alias": alias})
        except MlflowApiError as exc:
            # MLflow answers 404 for an unknown model, 400 INVALID_PARAMETER_VALUE for an unknown alias.
            if exc.status in (400, 404) and "alias" in exc.detail.lower():
                raise ModelNotFound(f"model {name} has no alias {alias}", reason="AliasNotFound") from None
            if exc.status == 404:
                raise ModelNotFound(f"registered model {name} not found") from None
            raise
        return _version_answer(data)

    async def _fetch_stage(self, name: str, stage: str) -> ModelVersion:
        try:
            data = await self._api.get(
                f"{_API}/registered-models/get-latest-versions", {"name": name, "stages": stage}
            )
        except MlflowApiError as exc:
            if exc.status == 404:
                raise ModelNotFound(f"registered model {name} not found") from None
            raise
        versions = _stage_versions(data, stage)
        if not versions:
            raise ModelNotFound(f"model {name} has no version in stage {stage}", reason="StageNotFound")
        return max(versions, key=lambda mv: int(mv.version))

    async def _require_model(self, name: str) -> None:
        try:
            await self._api.get(f"{_API}/registered-models/get", {"name": name})
        except MlflowApiError as exc:
            if exc.status == 404:
                raise ModelNotFound(f"registered model {name} not found") from None
            raise

    # -- metrics

    async def run_metrics(self, run_id: str) -> dict[str, float]:
        try:
            data = await self._api.get(f"{_API}/runs/get", {"run_id": run_id})
        except MlflowApiError as exc:
            if exc.status == 404:
                raise RegistryError(f"run {run_id} not found", reason="RunNotFound") from None
            raise
        return _entity_metrics(data, "run")

    async def version_metrics(self, mv: ModelVersion) -> dict[str, float]:
        metrics = await self.run_metrics(mv.run_id) if mv.run_id else {}
        if mv.model_id:
            try:
                data = await self._api.get(f"{_API}/logged-models/{quote(mv.model_id)}", {})
            except MlflowApiError as exc:
                if exc.status != 404:  # 404: no logged model (or a server older than MLflow 3)
                    raise
            else:
                metrics.update(_entity_metrics(data, "model"))
        return metrics

    # -- artifacts

    async def artifact_location(self, mv: ModelVersion) -> str:
        """Where the version's artifacts are: asked once per version (a version's source cannot change),
        then shared by the digest, signature and schema reads of every release."""
        return await self._shared.locations.get(self._facts_key(mv), partial(self._download_uri, mv))

    async def _download_uri(self, mv: ModelVersion) -> str:
        data = await self._api.get(
            f"{_API}/model-versions/get-download-uri", {"name": mv.name, "version": mv.version}
        )
        return str(data.get("artifact_uri") or "")

    async def _tree(self, mv: ModelVersion) -> _ArtifactTree:
        location = await self.artifact_location(mv)
        try:
            scheme = urlsplit(location).scheme
        except ValueError:
            scheme = ""  # refused below
        if scheme == "mlflow-artifacts":
            return _ProxiedTree(self._api, location, self._shared.max_artifact_entries)
        if scheme == "s3":
            from modelrelease.registry.s3 import S3Tree

            return S3Tree(self._shared.s3_client, location)
        raise RegistryError(
            f"cannot read artifacts of {mv.uri}: unsupported location scheme {scheme or location!r}",
            reason="UnsupportedArtifactLocation",
        )

    def _facts_key(self, mv: ModelVersion) -> tuple[RegistryTarget, str, str]:
        return (self.target, mv.name, mv.version)

    async def artifact_entries(
        self, mv: ModelVersion, *, max_age: float | None = None
    ) -> tuple[tuple[str, str], ...]:
        if mv.status != READY:  # an upload still in progress must not be hashed, let alone cached
            message = f"{mv.uri} has registry status {mv.status}: its artifacts may be incomplete"
            raise RegistryError(message, reason="VersionNotReady")
        return await self._shared.entries.get(self._facts_key(mv), partial(self._hash_files, mv), max_age)

    async def _hash_files(self, mv: ModelVersion) -> tuple[tuple[str, str], ...]:
        tree = await self._tree(mv)
        files = [path for path in await tree.files() if hashed(path)]
        if not files:
            raise RegistryError(f"no artifact files at {tree.location}", reason="ArtifactNotFound")
        try:  # before any download: a path the manifest cannot hold ('..', empty segments, duplicates)
            manifest((path, "") for path in files)
        except ValueError as exc:
            message = f"artifacts at {tree.location}: {exc}"
            raise RegistryError(message, reason="InvalidArtifactPath") from None
        return tuple([(path, await self._file_digest(mv, tree, path)) for path in files])

    async def _file_digest(self, mv: ModelVersion, tree: _ArtifactTree, path: str) -> str:
        """A file's SHA-256. The root MLmodel (small) is read whole instead of streamed, and the input
        schema it declares kept, so the Schema check of the version downloads it no second time."""
        if path != "MLmodel":
            return await tree.sha256(path)
        try:
            data = await tree.read(path, MLMODEL_MAX_BYTES)
        except RegistryError as exc:
            if exc.reason != "ArtifactTooLarge":
                raise
            return await tree.sha256(path)  # hashed all the same; the Schema check refuses it itself
        with contextlib.suppress(RegistryError):  # not YAML, odd inputs: the Schema check reads it again
            self._shared.schemas.put(self._facts_key(mv), mlmodel_inputs(data, mv.uri))
        return hashlib.sha256(data).hexdigest()

    async def artifact_digest(self, mv: ModelVersion, *, max_age: float | None = None) -> str:
        return manifest_digest(await self.artifact_entries(mv, max_age=max_age))

    async def signature_bundle(self, mv: ModelVersion) -> bytes | None:
        tree = await self._tree(mv)
        if not await tree.exists(SIGNATURE_FILE):
            return None
        return await tree.read(SIGNATURE_FILE, SIGNATURE_MAX_BYTES)

    async def input_schema(self, mv: ModelVersion) -> list[dict[str, Any]] | None:
        return await self._shared.schemas.get(self._facts_key(mv), partial(self._read_input_schema, mv))

    async def _mlmodel(self, mv: ModelVersion, tree: _ArtifactTree) -> Any:
        """The version's MLmodel file, parsed (any YAML value: callers check its shape)."""
        if not await tree.exists("MLmodel"):
            raise RegistryError(f"{mv.uri} has no MLmodel file at {tree.location}", reason="MLmodelNotFound")
        return parse_mlmodel(await tree.read("MLmodel", MLMODEL_MAX_BYTES), mv.uri)

    async def _read_input_schema(self, mv: ModelVersion) -> list[dict[str, Any]] | None:
        return signature_inputs(await self._mlmodel(mv, await self._tree(mv)), mv.uri)

    async def serving_input_example(self, mv: ModelVersion) -> dict[str, Any] | None:
        """``saved_input_example_info.serving_input_path`` of the MLmodel (MLflow 2.16+ writes
        ``serving_input_example.json`` there when a model is logged with ``input_example=``), read and
        parsed; None when the version logged no serving input example."""
        tree = await self._tree(mv)
        mlmodel = await self._mlmodel(mv, tree)
        info = mlmodel.get("saved_input_example_info") if isinstance(mlmodel, dict) else None
        path = info.get("serving_input_path") if isinstance(info, dict) else None
        if path is None:
            return None
        try:
            if not isinstance(path, str):
                raise ValueError(f"not a path: {path!r}")
            check_path(path)  # under the artifact root: no '..', no absolute path
        except ValueError as exc:
            message = f"MLmodel of {mv.uri}: serving_input_path {str(exc)[:120]}"
            raise RegistryError(message, reason="InvalidInputExample") from None
        if not await tree.exists(path):
            raise RegistryError(f"{mv.uri} has no {path} at {tree.location}", reason="InputExampleNotFound")
        try:
            example = json.loads(await tree.read(path, INPUT_EXAMPLE_MAX_BYTES))
        except (UnicodeDecodeError, ValueError, RecursionError):
            example = None
        if not isinstance(example, dict):
            raise RegistryError(f"{path} of {mv.uri} is not a JSON object", reason="InvalidInputExample")
        return example

    # -- registration side

    async def set_version_tag(self, name: str, version: str, key: str, value: str) -> None:
        await self._api.post(
            f"{_API}/model-versions/set-tag", {"name": name, "version": version, "key": key, "value": value}
        )
        self._shared.cache.invalidate(name, self.target)


# ------------------------------------------------------------------------------ the factory's entry points

Hub = MlflowRegistries
"""The backend's shared state, as :mod:`modelrelease.registry.factory` creates it."""


def parse_pinned(uri: str) -> tuple[str, str] | None:
    """(model, version) of a pinned ``models:/<name>/<N>`` (``/versions/N`` accepted), else None."""
    try:
        name, kind, value = parse_model_uri(uri)
    except ValueError:
        return None
    return (name, value) if kind == "version" else None


async def target(
    spec: RegistrySpec,
    namespace: str,
    settings: Settings,
    secrets: Callable[[str, str], Awaitable[Mapping[str, str] | None]],
) -> RegistryTarget:
    """The tracking server of a release: spec.registry.trackingUri (else the operator's default), allowed by
    the operator, with the credentials of spec.registry.credentialsSecret. Raises TargetProblem."""
    uri = spec.tracking_uri or settings.default_tracking_uri
    if uri is None:
        raise TargetProblem(
            "spec.registry.trackingUri",
            "not set, and the operator has no MODELRELEASE_DEFAULT_TRACKING_URI",
            "TrackingUriMissing",
        )
    invalid = tracking_uri_problem(uri)
    if invalid is not None:
        raise TargetProblem("spec.registry.trackingUri", f"{uri!r}: {invalid}", invalid.reason)
    if not settings.tracking_uri_allowed(uri):
        raise TargetProblem(
            "spec.registry.trackingUri",
            f"{uri} is not allowed by the operator (MODELRELEASE_ALLOWED_TRACKING_URIS)",
            "TrackingUriNotAllowed",
        )
    secret_name = spec.credentials_secret
    if secret_name is None:
        return RegistryTarget(tracking_uri=uri)
    data = await secrets(namespace, secret_name)
    if data is None:
        raise TargetProblem(
            "spec.registry.credentialsSecret",
            f"Secret {secret_name} not found in namespace {namespace}",
            "CredentialsSecretNotFound",
        )
    if not (data.get("token") or data.get("username")):
        raise TargetProblem(
            "spec.registry.credentialsSecret",
            f"Secret {secret_name} has neither a token key nor a username key",
            "CredentialsInvalid",
        )
    return RegistryTarget(
        tracking_uri=uri,
        username=data.get("username") or None,
        password=data.get("password") or None,
        token=data.get("token") or None,
    )


async def registry_for(
    hub: MlflowRegistries,
    spec: RegistrySpec,
    namespace: str,
    settings: Settings,
    secrets: Callable[[str, str], Awaitable[Mapping[str, str] | None]],
) -> MlflowRegistry:
    """The release's MLflow registry, sharing the hub's state; raises TargetProblem."""
    return hub.get(await target(spec, namespace, settings, secrets))
