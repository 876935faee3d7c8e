"""The MLflow backend against a real MLflow server whose artifacts are proxied to a real S3 API (moto).

Models are real scikit-learn models trained on iris and logged with mlflow.sklearn; requests are
counted independently of the backend by a small reverse proxy in front of the tracking server. Failure
modes that need no MLflow (a dead, hung or garbling server, the retry bound) are unit tests
(tests/unit/test_mlflow_backend.py).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import ipaddress
import os
import ssl
import tracemalloc
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import boto3
import pytest
from aiohttp import web

from modelrelease.api.models import ModelRef, ModelReleaseSpec, parse_model_uri
from modelrelease.registry.base import (
    ModelNotFound,
    ModelVersion,
    RegistryError,
    RegistryTarget,
    RegistryUnavailable,
)
from modelrelease.registry.commands import digest_command, stamp_command
from modelrelease.registry.digest import local_digest, manifest_digest
from modelrelease.registry.mlflow import HttpPolicy, MlflowRegistries, MlflowRegistry
from modelrelease.sandbox.stack import SandboxInfo
from modelrelease.verify.checks import first_blocking, verify_candidate

pytestmark = pytest.mark.slow

FEATURES = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]


# ------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def client_env(sandbox: SandboxInfo) -> Iterator[dict[str, str]]:
    """The sandbox's environment in this process (MLflow client, boto3, the commands)."""
    with pytest.MonkeyPatch.context() as patch:
        for key, value in sandbox.env.items():
            patch.setenv(key, value)
        # The blocking MLflow client used to set up fixtures must fail fast, not retry for minutes.
        patch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
        patch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
        yield dict(sandbox.env)


@pytest.fixture(scope="module")
def s3(sandbox: SandboxInfo, client_env: dict[str, str]) -> Any:
    return boto3.client("s3", endpoint_url=sandbox.s3_url)


@dataclass(frozen=True)
class Iris:
    """Registered model with v1 (4 features, alias champion, stage Production), v2 (3 features),
    v3 (4 features, retrained): real scikit-learn models. v1's logged model also carries a metric
    from a later evaluation run (``eval_f1``), as MLflow 3 evaluation records it."""

    name: str
    accuracy: float
    f1: float
    run_id: str
    eval_f1: float


@pytest.fixture(scope="module")
def iris(sandbox: SandboxInfo, client_env: dict[str, str]) -> Iris:
    import mlflow
    from mlflow.models import infer_signature
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score

    mlflow.set_tracking_uri(sandbox.mlflow_url)
    name = f"facts-iris-{uuid.uuid4().hex[:8]}"
    features, target = load_iris(return_X_y=True, as_frame=True)
    client = mlflow.MlflowClient()
    logged: list[dict[str, Any]] = []
    for columns, c in ((FEATURES, 1.0), (FEATURES[:3], 1.0), (FEATURES, 0.5)):
        x = features[columns]
        model = LogisticRegression(C=c, max_iter=500).fit(x, target)
        with mlflow.start_run() as run:
            accuracy = float(model.score(x, target))
            mlflow.log_metric("accuracy", accuracy)
            info = mlflow.sklearn.log_model(
                model,
                name="model",
                signature=infer_signature(x, model.predict(x)),
                registered_model_name=name,
                pip_requirements=["scikit-learn"],  # skips requirement inference (a subprocess per model)
            )
            f1 = float(f1_score(target, model.predict(x), average="macro"))
            mlflow.log_metric("f1", f1, model_id=info.model_id)
        logged.append({"accuracy": accuracy, "f1": f1, "run_id": run.info.run_id, "model_id": info.model_id})
    client.set_registered_model_alias(name, "champion", "1")
    client.transition_model_version_stage(name, "1", "Production")
    first = logged[0]
    with mlflow.start_run():  # an evaluation run: its metric lands on the logged model, not the source run
        mlflow.log_metric("eval_f1", 0.875, model_id=first.pop("model_id"))
    return Iris(name, **first, eval_f1=0.875)


@pytest.fixture(scope="module")
def trees(sandbox: SandboxInfo, client_env: dict[str, str]) -> TreeRegistrar:
    return TreeRegistrar(sandbox, f"facts-tree-{uuid.uuid4().hex[:8]}")


class TreeRegistrar:
    """Registers plain artifact trees (no MLmodel) as versions, through the proxy or straight in S3."""

    def __init__(self, sandbox: SandboxInfo, name: str) -> None:
        import mlflow

        self.sandbox, self.name = sandbox, name
        mlflow.set_tracking_uri(sandbox.mlflow_url)
        self.client = mlflow.MlflowClient()
        self.client.create_registered_model(name)

    def proxied(self, local: Path) -> ModelVersion:
        import mlflow

        with mlflow.start_run() as run:
            mlflow.log_artifacts(str(local), artifact_path="tree")
        mv = self.client.create_model_version(
            self.name, f"{run.info.artifact_uri}/tree", run_id=run.info.run_id
        )
        return _version(self.name, mv.version)

    def in_s3(self, local: Path, s3: Any) -> ModelVersion:
        prefix = f"direct/{uuid.uuid4().hex}"
        for path in sorted(p for p in local.rglob("*") if p.is_file()):
            s3.upload_file(str(path), self.sandbox.bucket, f"{prefix}/{path.relative_to(local).as_posix()}")
        mv = self.client.create_model_version(self.name, f"s3://{self.sandbox.bucket}/{prefix}")
        return _version(self.name, mv.version)


def _version(name: str, version: str) -> ModelVersion:
    return ModelVersion(name=name, version=str(version), status="READY", run_id=None, source="")


def write_tree(root: Path, files: dict[str, bytes]) -> Path:
    for relative, data in files.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_bytes(data)
    return root


# ------------------------------------------------------------------------ counting proxy


@dataclass
class CountingProxy:
    """A reverse proxy in front of the tracking server: counts requests per path, records the
    Authorization headers it sees, and answers the next ``faults`` statuses itself."""

    upstream: str
    counts: Counter[str] = field(default_factory=Counter)
    authorization: list[str | None] = field(default_factory=list)
    faults: list[int] = field(default_factory=list)
    url: str = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.counts[request.path] += 1
        self.authorization.append(request.headers.get("Authorization"))
        if self.faults:
            return web.Response(status=self.faults.pop(0), text="injected")
        async with (
            aiohttp.ClientSession() as session,
            session.request(
                request.method, self.upstream + request.path_qs, data=await request.read()
            ) as answer,
        ):
            return web.Response(
                status=answer.status, body=await answer.read(), content_type=answer.content_type
            )

    @property
    def total(self) -> int:
        return sum(self.counts.values())


@asynccontextmanager
async def counting_proxy(upstream: str, tls: ssl.SSLContext | None = None) -> AsyncIterator[CountingProxy]:
    proxy = CountingProxy(upstream)
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", proxy.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=tls)
    await site.start()
    proxy.url = f"{'https' if tls else 'http'}://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield proxy
    finally:
        await runner.cleanup()


ALIAS_PATH = "/api/2.0/mlflow/registered-models/alias"


# -------------------------------------------------------------------------- resolution


async def test_alias_resolution_is_one_request(sandbox: SandboxInfo, iris: Iris) -> None:
    async with (
        counting_proxy(sandbox.mlflow_url) as proxy,
        MlflowRegistry(RegistryTarget(proxy.url)) as registry,
    ):
        mv = await registry.resolve(ModelRef(name=iris.name, alias="champion"))
        assert proxy.counts == Counter({ALIAS_PATH: 1})
    assert (mv.name, mv.version, mv.status, mv.run_id) == (iris.name, "1", "READY", iris.run_id)
    assert "champion" in mv.aliases
    assert mv.uri == f"models:/{iris.name}/1"
    assert mv.model_id is not None and mv.model_id.startswith("m-")


@pytest.mark.parametrize("spelling", ["models:/{name}/3", "models:/{name}/versions/3"])
async def test_version_resolution_from_either_uri_spelling(
    sandbox: SandboxInfo, iris: Iris, spelling: str
) -> None:
    name, kind, value = parse_model_uri(spelling.format(name=iris.name))
    async with MlflowRegistry(RegistryTarget(sandbox.mlflow_url)) as registry:
        mv = await registry.resolve(ModelRef.model_validate({"name": name, kind: value}))
    assert mv.uri == f"models:/{iris.name}/3"


async def test_legacy_stage_resolution(sandbox: SandboxInfo, iris: Iris) -> None:
    async with MlflowRegistry(RegistryTarget(sandbox.mlflow_url)) as registry:
        assert (await registry.resolve(ModelRef(name=iris.name, stage="Production"))).version == "1"
        with pytest.raises(ModelNotFound) as missing:
            await registry.resolve(ModelRef(name=iris.name, stage="Staging"))
    assert missing.value.reason == "StageNotFound"


@pytest.mark.parametrize(
    ("reference", "reason"),
    [
        ({"alias": "champion"}, "ModelNotFound"),
        ({"version": "1"}, "ModelNotFound"),
        ({"stage": "Production"}, "ModelNotFound"),
        ({"alias": "nobody"}, "AliasNotFound"),
        ({"version": "99"}, "VersionNotFound"),
    ],
)
async def test_unknown_references_say_what_is_missing(
    sandbox: SandboxInfo, iris: Iris, reference: dict[str, str], reason: str
) -> None:
    name = f"{iris.name}-absent" if reason == "ModelNotFound" else iris.name
    async with MlflowRegistry(RegistryTarget(sandbox.mlflow_url)) as registry:
        with pytest.raises(ModelNotFound) as error:
            await registry.resolve(ModelRef.model_validate({"name": name, **reference}))
    assert error.value.reason == reason
    assert name in str(error.value) and "\n" not in str(error.value)


async def test_concurrent_resolves_share_one_request(sandbox: SandboxInfo, iris: Iris) -> None:
    ref = ModelRef(name=iris.name, alias="champion")
    async with counting_proxy(sandbox.mlflow_url) as proxy, MlflowRegistries() as registries:
        registry = registries.get(RegistryTarget(proxy.url))
        first = await asyncio.gather(*(registry.resolve(ref) for _ in range(25)))
        assert {mv.version for mv in first} == {"1"}
        assert registries.cache.stats() == {"hits": 0, "misses": 25, "requests": 1}
        assert proxy.counts[ALIAS_PATH] == 1

        # Within the TTL every release sharing the reference is answered without a request.
        await asyncio.gather(*(registries.get(RegistryTarget(proxy.url)).resolve(ref) for _ in range(25)))
        assert registries.cache.stats() == {"hits": 25, "misses": 25, "requests": 1}
        assert proxy.counts[ALIAS_PATH] == 1

        await registry.resolve(ref, max_age=0)  # older than the caller accepts: asks again
        assert proxy.counts[ALIAS_PATH] == 2
        registries.cache.invalidate(iris.name)
        await registry.resolve(ref)
        assert proxy.counts[ALIAS_PATH] == 3 and registries.cache.requests == 3


async def test_alias_move_is_seen_after_the_ttl_or_an_invalidation(sandbox: SandboxInfo, iris: Iris) -> None:
    import mlflow

    client = mlflow.MlflowClient(sandbox.mlflow_url)
    await asyncio.to_thread(client.set_registered_model_alias, iris.name, "moving", "1")
    ref = ModelRef(name=iris.name, alias="moving")
    async with MlflowRegistries() as registries:
        registry = registries.get(RegistryTarget(sandbox.mlflow_url))
        assert (await registry.resolve(ref)).version == "1"
        await asyncio.to_thread(client.set_registered_model_alias, iris.name, "moving", "2")
        assert (await registry.resolve(ref)).version == "1"  # the shared answer, within its TTL
        assert (await registry.resolve(ref, max_age=0)).version == "2"
        await asyncio.to_thread(client.set_registered_model_alias, iris.name, "moving", "3")
        assert registries.cache.invalidate(iris.name) >= 1  # a webhook push
        assert (await registry.resolve(ref)).version == "3"


# ------------------------------------------------------------------------ failure modes


async def test_transient_answers_are_retried_and_client_errors_are_not(
    sandbox: SandboxInfo, iris: Iris
) -> None:
    policy = HttpPolicy(backoff_base=0.05)
    async with counting_proxy(sandbox.mlflow_url) as proxy, MlflowRegistries(policy=policy) as registries:
        registry = registries.get(RegistryTarget(proxy.url))
        proxy.faults = [503, 429]
        assert (await registry.resolve(ModelRef(name=iris.name, alias="champion"))).version == "1"
        assert proxy.counts[ALIAS_PATH] == 3

        proxy.faults = [502, 500, 504]
        with pytest.raises(RegistryUnavailable, match="HTTP 504 after 3 attempts"):
            await registry.resolve(ModelRef(name=iris.name, version="2"))

        before = proxy.total
        with pytest.raises(ModelNotFound):
            await registry.resolve(ModelRef(name=iris.name, alias="nobody"))
        assert proxy.total == before + 1


async def test_credentials_are_sent_and_a_refusal_is_not_retried(sandbox: SandboxInfo, iris: Iris) -> None:
    ref = ModelRef(name=iris.name, alias="champion")
    async with counting_proxy(sandbox.mlflow_url) as proxy:
        async with MlflowRegistry(RegistryTarget(proxy.url, username="ml", password="pw")) as registry:
            await registry.resolve(ref)
        userinfo = proxy.url.replace("http://", "http://url%40user:url-pw@")
        async with MlflowRegistry(RegistryTarget(userinfo)) as registry:  # credentials in the URL
            await registry.resolve(ref)
        async with MlflowRegistry(RegistryTarget(proxy.url, token="tok")) as registry:
            await registry.resolve(ref)
            proxy.faults = [401]
            with pytest.raises(RegistryError) as refused:
                await registry.resolve(ref, max_age=0)
    basic = ["Basic " + base64.b64encode(pair).decode() for pair in (b"ml:pw", b"url@user:url-pw")]
    assert proxy.authorization[:3] == [*basic, "Bearer tok"]
    assert refused.value.reason == "RegistryUnauthorized" and "tok" not in str(refused.value)
    assert proxy.counts[ALIAS_PATH] == 4


def self_signed_tls(directory: Path) -> ssl.SSLContext:
    """A server TLS context with a fresh self-signed certificate for 127.0.0.1 (trusted by nobody)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    loopback = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(loopback, critical=False)
        .sign(key, hashes.SHA256())
    )
    (directory / "cert.pem").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    (directory / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(directory / "cert.pem", directory / "key.pem")
    return context


async def test_tls_is_verified_by_default(sandbox: SandboxInfo, iris: Iris, tmp_path: Path) -> None:
    ref = ModelRef(name=iris.name, alias="champion")
    waits: list[float] = []

    async def recorded(seconds: float) -> None:
        waits.append(seconds)

    async with counting_proxy(sandbox.mlflow_url, tls=self_signed_tls(tmp_path)) as proxy:
        async with MlflowRegistries(sleep=recorded) as registries:
            with pytest.raises(RegistryError) as refused:
                await registries.get(RegistryTarget(proxy.url)).resolve(ref)
        assert proxy.total == 0  # the handshake failed: no request reached the server
        async with MlflowRegistry(RegistryTarget(proxy.url, verify_tls=False)) as registry:
            assert (await registry.resolve(ref)).version == "1"
    assert refused.value.reason == "RegistryTLSError" and not isinstance(refused.value, RegistryUnavailable)
    assert waits == [], "a certificate error must not be retried"


# ------------------------------------------------------------------------------- metrics


async def test_metrics_come_from_the_source_run_and_the_logged_model(
    sandbox: SandboxInfo, iris: Iris
) -> None:
    async with MlflowRegistry(RegistryTarget(sandbox.mlflow_url)) as registry:
        mv = await registry.get_version(iris.name, "1")
        assert mv.run_id == iris.run_id
        assert await registry.run_metrics(iris.run_id) == pytest.approx(
            {"accuracy": iris.accuracy, "f1": iris.f1}
        )
        assert await registry.version_metrics(mv) == pytest.approx(
            {"accuracy": iris.accuracy, "f1": iris.f1, "eval_f1": iris.eval_f1}
        )


@pytest.mark.parametrize(
    ("bound", "outcome", "reason"),
    [(0.8, "Passed", "all gates pass: eval_f1=0.875"), (0.9, "Failed", "eval_f1=0.875 below min 0.9")],
)
async def test_metric_gate_on_a_logged_model_metric(
    sandbox: SandboxInfo, iris: Iris, bound: float, outcome: str, reason: str
) -> None:
    spec = ModelReleaseSpec.model_validate(
        {
            "model": {"name": iris.name, "version": "1"},
            "verify": {"digest": "Off", "metrics": [{"name": "eval_f1", "min": bound}]},
        }
    )
    async with MlflowRegistry(RegistryTarget(sandbox.mlflow_url)) as registry:
        results = await verify_candidate(spec, await registry.resolve(spec.model), None, registry)
    gate = next(r for r in results if r.check == "Metrics")
    assert (gate.outcome, gate.reason) == (outcome, reason)


# -------------------------------------------------------------------------------- digest


async def test_digest_equals_the_digest_of_a_local_download(
    sandbox: SandboxInfo, iris: Iris, tmp_path: Path
) -> None:
    import mlflow

    downloaded = await asyncio.to_thread(
        mlflow.artifacts.download_artifacts, f"models:/{iris.name}/1", dst_path=str(tmp_path)
    )
    async with MlflowRegistry(RegistryTarget(sandbox.mlflow_url)) as registry:
        remote = await registry.artifact_digest(await registry.get_version(iris.name, "1"))
    assert remote == await asyncio.to_thread(local_digest, Path(downloaded))
    assert (Path(downloaded) / "MLmodel").is_file()


async def test_digest_is_the_same_through_the_proxy_and_straight_from_s3(
    sandbox: SandboxInfo, trees: TreeRegistrar, s3: Any, tmp_path: Path
) -> None:
    files = {
        "MLmodel": b"flavors: {}\n",
        "data/a b.bin": os.urandom(3000),  # names that need quoting in a URL
        "data/deeper/\u00e9t\u00e9+1.txt": b"b",  # ("#" is cut off by the MLflow client's upload)
    }
    local = write_tree(tmp_path, files)
    proxied, direct = await asyncio.gather(
        asyncio.to_thread(trees.proxied, local), asyncio.to_thread(trees.in_s3, local, s3)
    )
    async with MlflowRegistry(RegistryTarget(sandbox.mlflow_url)) as registry:
        assert (await registry.artifact_location(proxied)).startswith("mlflow-artifacts:")
        assert (await registry.artifact_location(direct)).startswith("s3://")
        digests = {await registry.artifact_digest(proxied), await registry.artifact_digest(direct)}
    assert digests == {local_digest(local)}
    assert digests == {manifest_digest([(p, hashlib.sha256(d).hexdigest()) for p, d in files.items()])}


def _object_key(s3: Any, bucket: str, suffix: str) -> str:
    keys = [
        item["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
        for item in page.get("Contents", [])
        if item["Key"].endswith(suffix)
    ]
    assert len(keys) == 1, keys
    return str(keys[0])


async def test_altered_bytes_in_s3_change_the_digest_of_a_fresh_cache(
    sandbox: SandboxInfo, trees: TreeRegistrar, s3: Any, tmp_path: Path
) -> None:
    marker = uuid.uuid4().hex
    local = write_tree(tmp_path, {"MLmodel": b"flavors: {}\n", f"{marker}.bin": b"original bytes"})
    mv = await asyncio.to_thread(trees.proxied, local)
    key = _object_key(s3, sandbox.bucket, f"/{marker}.bin")
    async with MlflowRegistries() as registries:
        registry = registries.get(RegistryTarget(sandbox.mlflow_url))
        before = await registry.artifact_digest(mv)
        await asyncio.to_thread(s3.put_object, Bucket=sandbox.bucket, Key=key, Body=b"original bytez")
        assert await registry.artifact_digest(mv) == before  # computed once per version
    async with MlflowRegistry(RegistryTarget(sandbox.mlflow_url)) as fresh:
        after = await fresh.artifact_digest(mv)
    assert after != before
    assert after == manifest_digest(
        [("MLmodel", hashlib.sha256(b"flavors: {}\n").hexdigest()),
         (f"{marker}.bin", hashlib.sha256(b"original bytez").hexdigest())]
    )  # fmt: skip


@pytest.mark.parametrize("where", ["proxied", "s3"])
async def test_hashing_memory_stays_bounded(
    sandbox: SandboxInfo, trees: TreeRegistrar, s3: Any, tmp_path: Path, where: str
) -> None:
    size = 32 << 20
    big = tmp_path / "tree" / "weights.bin"
    big.parent.mkdir()
    with big.open("wb") as out:
        for _ in range(size >> 20):
            out.write(os.urandom(1 << 20))
    register = trees.proxied if where == "proxied" else (lambda local: trees.in_s3(local, s3))
    mv = await asyncio.to_thread(register, big.parent)
    expected = await asyncio.to_thread(local_digest, big.parent)
    async with MlflowRegistries() as registries:
        registry = registries.get(RegistryTarget(sandbox.mlflow_url))
        # Warm the HTTP session and the S3 client (boto3 loads its service model) outside the measurement.
        await registry.artifact_location(mv)
        await registries.s3_client()
        tracemalloc.start()
        try:
            digest = await registry.artifact_digest(mv)
            _current, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert digest == expected
    assert peak < size / 8, f"peak {peak / 2**20:.1f} MiB while hashing {size / 2**20:.0f} MiB"


# ---------------------------------------------------------------------- stamp and verify


async def test_stamp_then_verify_passes_and_tampering_blocks(
    sandbox: SandboxInfo, trees: TreeRegistrar, s3: Any, client_env: dict[str, str], tmp_path: Path
) -> None:
    marker = uuid.uuid4().hex
    local = write_tree(tmp_path, {"MLmodel": b"flavors: {}\n", f"{marker}.bin": b"weights"})
    mv = await asyncio.to_thread(trees.proxied, local)
    stamped = await asyncio.to_thread(stamp_command, trees.name, mv.version)
    assert stamped == local_digest(local)
    for spelling in (mv.uri, f"models:/{trees.name}/versions/{mv.version}"):
        assert await asyncio.to_thread(digest_command, spelling) == stamped

    spec = ModelReleaseSpec.model_validate({"model": {"name": trees.name, "version": mv.version}})
    async with MlflowRegistry(RegistryTarget(sandbox.mlflow_url)) as registry:
        candidate = await registry.resolve(spec.model)
        assert candidate.tags["modelrelease.io/sha256"] == stamped
        results = await verify_candidate(spec, candidate, None, registry)
    assert {r.check: r.outcome for r in results} == {
        "RegistryReady": "Passed",
        "Metrics": "Skipped",
        "Digest": "Passed",
        "Signature": "Skipped",
        "Schema": "Skipped",
    }

    key = _object_key(s3, sandbox.bucket, f"/{marker}.bin")
    await asyncio.to_thread(s3.put_object, Bucket=sandbox.bucket, Key=key, Body=b"tampered")
    async with MlflowRegistry(RegistryTarget(sandbox.mlflow_url)) as registry:
        candidate = await registry.resolve(spec.model)
        blocking = first_blocking(await verify_candidate(spec, candidate, None, registry))
    assert blocking is not None and (blocking.check, blocking.code) == ("Digest", "DigestMismatch")


# -------------------------------------------------------------------------------- schema


async def test_input_schema_is_read_from_mlmodel(sandbox: SandboxInfo, iris: Iris) -> None:
    async with MlflowRegistry(RegistryTarget(sandbox.mlflow_url)) as registry:
        inputs = await registry.input_schema(await registry.get_version(iris.name, "1"))
    assert inputs is not None
    assert [(c["name"], c["type"]) for c in inputs] == [(name, "double") for name in FEATURES]


@pytest.mark.parametrize(
    ("candidate", "serving", "outcome", "detail"),
    [
        ("2", "1", "Failed", "input 'petal width (cm)' removed"),
        ("1", "2", "Failed", "new required input 'petal width (cm)'"),
        ("3", "1", "Passed", "compatible with serving version 1"),
    ],
)
async def test_schema_compatibility_between_versions(
    sandbox: SandboxInfo, iris: Iris, candidate: str, serving: str, outcome: str, detail: str
) -> None:
    spec = ModelReleaseSpec.model_validate(
        {"model": {"name": iris.name, "version": candidate}, "verify": {"digest": "Off"}}
    )
    async with MlflowRegistry(RegistryTarget(sandbox.mlflow_url)) as registry:
        results = await verify_candidate(
            spec,
            await registry.get_version(iris.name, candidate),
            await registry.get_version(iris.name, serving),
            registry,
        )
    schema = next(r for r in results if r.check == "Schema")
    assert schema.outcome == outcome and detail in schema.reason


async def test_missing_mlmodel_is_a_named_error(
    sandbox: SandboxInfo, trees: TreeRegistrar, tmp_path: Path
) -> None:
    mv = await asyncio.to_thread(trees.proxied, write_tree(tmp_path, {"only.txt": b"x"}))
    async with MlflowRegistry(RegistryTarget(sandbox.mlflow_url)) as registry:
        with pytest.raises(RegistryError) as error:
            await registry.input_schema(mv)
    assert error.value.reason == "MLmodelNotFound"
