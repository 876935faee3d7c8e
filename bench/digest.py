"""Canonical digest: the project's streaming code vs reading each object whole, on one artifact tree.

The tree (a large file of BENCH_DIGEST_MIB MiB, default 128, plus small ones) is generated, uploaded
to the sandbox's S3 bucket, and registered twice: as a version behind MLflow's artifact proxy
(``mlflow-artifacts:`` source) and as one read straight from S3 (``s3://`` source). Per route (and
for the local folder), each reader is timed three times, interleaved with the other, and run once
more under tracemalloc for its peak of Python allocations; all must agree on the digest. Then a
second digest of the same version through one shared registry shows what the per-version cache
saves, counted by a proxy in front of MLflow (artifact GETs and their bytes).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit

import aiohttp
import boto3

from bench.common import MIB, Env, ratio, table, unique
from integration.helpers import RegistryProxy, registry_proxy
from modelrelease.registry.base import ModelVersion, RegistryTarget
from modelrelease.registry.digest import local_digest, manifest_digest
from modelrelease.registry.mlflow import MlflowRegistries, MlflowRegistry

LARGE_MIB = int(os.environ.get("BENCH_DIGEST_MIB", "128"))
TIMED_RUNS = 3
SMALL_FILES = 8
SMALL_BYTES = 256 << 10
ARTIFACTS_API = "/api/2.0/mlflow-artifacts/artifacts"
"""MLflow's artifact proxy; the baseline downloads from it as the project's code does."""


@dataclass(frozen=True)
class Sample:
    seconds: float
    peak_bytes: int
    digest: str


def make_tree(root: Path) -> dict[str, int]:
    """An MLflow-shaped model folder; returns relative path → size."""
    files = {
        "MLmodel": b"artifact_path: model\nflavors:\n  python_function:\n    loader_module: bench\n",
        "requirements.txt": b"scikit-learn\n",
        "python_env.yaml": b"python: 3.11\n",
    }
    for name, data in files.items():
        (root / name).write_bytes(data)
    (root / "data").mkdir()
    for index in range(SMALL_FILES):
        (root / "data" / f"part-{index}.bin").write_bytes(os.urandom(SMALL_BYTES))
    with (root / "data" / "weights.bin").open("wb") as out:
        for _ in range(LARGE_MIB):
            out.write(os.urandom(MIB))
    return {p.relative_to(root).as_posix(): p.stat().st_size for p in root.rglob("*") if p.is_file()}


def compare(readers: dict[str, Callable[[], str]]) -> dict[str, Sample]:
    """Each reader's best of TIMED_RUNS timed runs (interleaved, so load changes hit all readers alike),
    then one run each under tracemalloc for the peak."""
    times: dict[str, list[float]] = {name: [] for name in readers}
    digests: dict[str, set[str]] = {name: set() for name in readers}
    for _ in range(TIMED_RUNS):
        for name, read in readers.items():
            started = time.perf_counter()
            digests[name].add(read())
            times[name].append(time.perf_counter() - started)
    samples = {}
    for name, read in readers.items():
        tracemalloc.start()
        try:
            digests[name].add(read())
            _current, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        (digest,) = digests[name]  # one answer, however often it is asked
        samples[name] = Sample(min(times[name]), peak, digest)
    return samples


# ------------------------------------------------------------------------------ the two readers


def local_whole(root: Path, files: list[str]) -> str:
    return manifest_digest((path, hashlib.sha256((root / path).read_bytes()).hexdigest()) for path in files)


async def project_remote(tracking_uri: str, name: str, version: str) -> str:
    """The operator's code path, with a fresh registry (so a fresh digest cache) each time."""
    async with MlflowRegistry(RegistryTarget(tracking_uri)) as registry:
        mv = await registry.get_version(name, version)
        return await registry.artifact_digest(mv)


async def proxy_whole(tracking_uri: str, location: str, files: list[str]) -> str:
    root = urlsplit(location).path.strip("/")
    entries = []
    async with aiohttp.ClientSession() as session:
        for path in files:
            async with session.get(f"{tracking_uri}{ARTIFACTS_API}/{quote(f'{root}/{path}')}") as response:
                response.raise_for_status()
                data = await response.read()
            entries.append((path, hashlib.sha256(data).hexdigest()))
    return manifest_digest(entries)


def s3_whole(endpoint: str, location: str, files: list[str]) -> str:
    parts = urlsplit(location)
    client = boto3.session.Session().client("s3", endpoint_url=endpoint)
    entries = []
    for path in files:
        body = client.get_object(Bucket=parts.netloc, Key=f"{parts.path.strip('/')}/{path}")["Body"]
        entries.append((path, hashlib.sha256(body.read()).hexdigest()))
    return manifest_digest(entries)


# ------------------------------------------------------------------------------ setup


@dataclass(frozen=True)
class Registered:
    name: str
    proxied: ModelVersion
    direct: ModelVersion
    proxied_location: str
    direct_location: str


def register(env: Env, root: Path) -> Registered:
    """Upload the tree under a run's artifact folder; register it via the proxy and straight from S3."""
    client = env.models.client
    run = client.create_run(env.models.experiment_id)
    client.set_terminated(run.info.run_id)
    prefix = urlsplit(run.info.artifact_uri).path.strip("/") + "/model"
    s3 = env.models.s3
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        s3.upload_file(str(path), env.sandbox.bucket, f"{prefix}/{path.relative_to(root).as_posix()}")
    name = unique("digest")
    client.create_registered_model(name)
    proxied_location = f"{run.info.artifact_uri}/model"
    direct_location = f"s3://{env.sandbox.bucket}/{prefix}"
    proxied = client.create_model_version(name, proxied_location, run_id=run.info.run_id)
    direct = client.create_model_version(name, direct_location)
    registry = MlflowRegistry(RegistryTarget(env.sandbox.mlflow_url))
    versions = asyncio.run(_versions(registry, name, [proxied.version, direct.version]))
    return Registered(name, versions[0], versions[1], proxied_location, direct_location)


async def _versions(registry: MlflowRegistry, name: str, versions: list[str]) -> list[ModelVersion]:
    async with registry:
        return [await registry.get_version(name, v) for v in versions]


async def digest_twice(proxy: RegistryProxy, mv: ModelVersion) -> list[tuple[str, Counter[str]]]:
    """Two digests of one version through one shared registry; each with the proxy's request counts."""
    steps = []
    async with MlflowRegistries() as registries:
        registry = registries.get(RegistryTarget(proxy.url))
        for _ in range(2):
            before = Counter(proxy.counts)
            digest = await registry.artifact_digest(mv)
            steps.append((digest, Counter(proxy.counts) - before))
    return steps


def artifact_reads(counts: Counter[str], sizes: dict[str, int]) -> tuple[int, int]:
    """(file downloads, bytes downloaded) among the requests counted by the proxy."""
    downloads = {path: n for path, n in counts.items() if path.startswith(ARTIFACTS_API + "/")}
    read = sum(
        n * size for path, n in downloads.items() for rel, size in sizes.items() if path.endswith("/" + rel)
    )
    return sum(downloads.values()), read


# ------------------------------------------------------------------------------ the benchmark


def run(env: Env) -> None:
    root = env.work / unique("tree")
    root.mkdir()
    sizes = make_tree(root)
    files = sorted(sizes)
    total = sum(sizes.values())
    registered = register(env, root)
    url, name = env.sandbox.mlflow_url, registered.name
    routes = {
        "local folder": (
            lambda: local_digest(root),
            lambda: local_whole(root, files),
        ),
        "MLflow artifact proxy": (
            lambda: asyncio.run(project_remote(url, name, registered.proxied.version)),
            lambda: asyncio.run(proxy_whole(url, registered.proxied_location, files)),
        ),
        "S3 (moto server)": (
            lambda: asyncio.run(project_remote(url, name, registered.direct.version)),
            lambda: s3_whole(env.sandbox.s3_url, registered.direct_location, files),
        ),
    }
    expected = local_digest(root)
    rows, ratios = [], []
    for route, (streaming, whole) in routes.items():
        results = compare({"streaming (project)": streaming, "whole object (baseline)": whole})
        for reader, sample in results.items():
            assert sample.digest == expected, f"{route}, {reader}: digest differs from the local tree's"
            rate = total / MIB / sample.seconds
            rows.append(
                [route, reader, f"{sample.seconds:.2f}", f"{rate:.0f}", f"{sample.peak_bytes / MIB:.1f}"]
            )
        stream, base = results["streaming (project)"], results["whole object (baseline)"]
        ratios.append([route, ratio(base.seconds, stream.seconds), ratio(base.peak_bytes, stream.peak_bytes)])
    tree = f"{len(files)} files, {total / MIB:.0f} MiB, largest {max(sizes.values()) / MIB:.0f} MiB"
    print(table(f"digest: {tree}", ["route", "reader", f"best of {TIMED_RUNS} s", "MiB/s", "peak MiB"], rows))
    print(table("digest ratios", ["route", "speed stream/whole", "peak memory whole/stream"], ratios))

    with registry_proxy(url) as proxy:
        steps = asyncio.run(digest_twice(proxy, registered.proxied))
    cache_rows = []
    for label, (digest, counts) in zip(["first digest", "second digest, same version"], steps, strict=True):
        assert digest == expected
        downloads, read = artifact_reads(counts, sizes)
        cache_rows.append([label, sum(counts.values()), downloads, f"{read / MIB:.1f}"])
    headers = ["call (one shared registry)", "registry requests", "file downloads", "MiB read"]
    print(table("digest cache (counted by a proxy in front of MLflow)", headers, cache_rows))
