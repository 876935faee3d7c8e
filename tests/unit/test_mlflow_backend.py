"""The MLflow backend against small local servers (aiohttp on 127.0.0.1): whatever a server answers, a
call raises nothing but RegistryError; the retry loop's waits add up to the one documented bound.

Waits are recorded through the backend's injected `sleep`, never measured: bench/retry_bound.py measures
the real elapsed time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelrelease.api.models import ModelRef
from modelrelease.registry.base import ModelVersion, RegistryError, RegistryTarget, RegistryUnavailable
from modelrelease.registry.mlflow import HttpPolicy, MlflowRegistries
from modelrelease.sandbox.stack import free_port

Answer = tuple[int, bytes, Mapping[str, str]]
"""HTTP status, body, headers."""

ENDPOINTS = {
    "/api/2.0/mlflow/registered-models/alias": "alias",
    "/api/2.0/mlflow/model-versions/get": "version",
    "/api/2.0/mlflow/registered-models/get": "model",
    "/api/2.0/mlflow/registered-models/get-latest-versions": "stage",
    "/api/2.0/mlflow/runs/get": "run",
    "/api/2.0/mlflow/model-versions/get-download-uri": "location",
    "/api/2.0/mlflow-artifacts/artifacts": "listing",
}


def endpoint(path: str) -> str:
    if path.startswith("/api/2.0/mlflow/logged-models/"):
        return "logged-model"
    if path.startswith("/api/2.0/mlflow-artifacts/artifacts/"):
        return "file"
    return ENDPOINTS.get(path, "other")


class Waits(list[float]):
    """An injected `sleep` that records what the retry loop asked to wait, and returns at once."""

    async def __call__(self, seconds: float) -> None:
        self.append(seconds)


class NoObjectStore(MlflowRegistries):
    """No test here talks to S3: an s3:// location is reported unavailable instead."""

    async def s3_client(self) -> Any:
        raise RegistryUnavailable("no object store in this test")


@contextlib.asynccontextmanager
async def registry_at(
    answers: Mapping[str, Sequence[Answer]], served: dict[str, int] | None = None
) -> AsyncIterator[str]:
    """A server answering each endpoint with its answers in turn (the last one repeated); 404 elsewhere.
    `served` counts the requests per endpoint."""
    served = {} if served is None else served

    async def handle(request: web.Request) -> web.Response:
        kind = endpoint(request.path)
        script = answers.get(kind) or [(404, b"{}", {})]
        index = served.get(kind, 0)
        served[kind] = index + 1
        status, body, headers = script[min(index, len(script) - 1)]
        return web.Response(status=status, body=body, headers=dict(headers))

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    async with TestServer(app, host="127.0.0.1") as server:
        yield str(server.make_url("")).rstrip("/")


def ok(body: object, status: int = 200) -> list[Answer]:
    return [(status, json.dumps(body).encode(), {})]


FRAUD_7 = ModelVersion(name="fraud", version="7", status="READY", run_id="r1", source="", model_id="m-1")


async def one_pass(url: str, waits: Waits) -> None:
    """What a reconcile pass asks of the backend: resolve each kind of reference, then every fact the
    checks read. Only RegistryError may come out of it (the pass records it as a condition)."""
    async with NoObjectStore(sleep=waits, max_artifact_entries=40) as registries:
        registry = registries.get(RegistryTarget(url))
        for ref in (
            ModelRef(name="fraud", alias="champion"),
            ModelRef(name="fraud", version="7"),
            ModelRef(name="fraud", stage="Production"),
        ):
            try:
                mv = await registry.resolve(ref, max_age=0)
            except RegistryError:
                mv = FRAUD_7
            for fact in (
                registry.version_metrics(mv),
                registry.artifact_digest(mv),
                registry.input_schema(mv),
                registry.signature_bundle(mv),
                registry.serving_input_example(mv),
            ):
                with contextlib.suppress(RegistryError):
                    await fact


# ------------------------------------------------------------------------- any answer at all

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=12,
)
names = st.sampled_from(["fraud", "other", "", "a/b", "x" * 300]) | json_values
versions = st.sampled_from(["7", "1", "0", "v7", 7, "99999999999999999999"]) | json_values
model_versions = st.fixed_dictionaries(
    {"name": names, "version": versions},
    optional={
        "status": st.sampled_from(["READY", "PENDING_REGISTRATION"]) | json_values,
        "run_id": st.sampled_from(["r1", "x" * 300]) | json_values,
        "source": st.sampled_from(["models:/m-1", "runs:/r1/model"]) | json_values,
        "tags": st.lists(st.fixed_dictionaries({"key": json_values, "value": json_values})) | json_values,
        "aliases": st.lists(json_values, max_size=2) | json_values,
        "current_stage": st.sampled_from(["Production", "None"]) | json_values,
    },
)
metric = st.fixed_dictionaries(
    {"key": st.sampled_from(["f1", "loss"]) | json_values, "value": json_values},
    optional={"timestamp": json_values, "step": json_values},
)
entities = st.fixed_dictionaries(
    {"data": st.fixed_dictionaries({"metrics": st.lists(metric, max_size=3) | json_values}) | json_values}
)
listing_entry = st.fixed_dictionaries(
    {
        "path": st.sampled_from(["MLmodel", "model.pkl", "model.sig", "d", "..", "", "a/b", "x\ny"])
        | json_values
    },
    optional={"is_dir": st.booleans() | json_values},
)
locations = st.sampled_from(
    [
        "mlflow-artifacts:/1/abc/artifacts/model",
        "mlflow-artifacts:/",
        "s3://bucket/key",
        "file:///m",
        "http://[x",
    ]
) | st.text(max_size=20)
mlmodels = st.sampled_from(
    [
        'signature:\n  inputs: \'[{"name": "a", "type": "double"}]\'\n',
        "signature:\n  inputs: [{name: a, type: double}]\n",
        "signature:\n  inputs: [{name: a, when: 2024-01-01}]\n",
        "signature: [1, 2]\n",
        "signature:\n  inputs: '[[[['\n",
        "- just a list\n",
        ": : :\n",
        "saved_input_example_info:\n  serving_input_path: serving_input_example.json\n",
        "saved_input_example_info:\n  serving_input_path: ../../etc/passwd\n",
        "saved_input_example_info: {serving_input_path: [1]}\n",
        "saved_input_example_info: [1]\n",
    ]
).map(str.encode) | st.binary(max_size=32)
bodies = st.one_of(
    st.fixed_dictionaries({"model_version": model_versions | json_values}),
    st.fixed_dictionaries({"model_versions": st.lists(model_versions, max_size=2) | json_values}),
    st.fixed_dictionaries({"run": entities | json_values, "model": entities | json_values}),
    st.fixed_dictionaries({"artifact_uri": locations | json_values}),
    st.fixed_dictionaries({"files": st.lists(listing_entry, max_size=3) | json_values}),
    st.fixed_dictionaries({"error_code": json_values, "message": json_values}),
    json_values,
).map(lambda body: json.dumps(body).encode())
answers = st.tuples(
    st.sampled_from([200, 200, 200, 200, 301, 400, 401, 403, 404, 429, 500, 503]),
    bodies | mlmodels,
    st.sampled_from([{}, {"Retry-After": "1"}, {"Retry-After": "nan"}, {"Retry-After": "-5"}])
    | st.fixed_dictionaries({"Retry-After": st.text(alphabet="0123456789.e-", max_size=6)}),
)
scripts = st.dictionaries(
    st.sampled_from([*ENDPOINTS.values(), "logged-model", "file"]),
    st.lists(answers, min_size=1, max_size=3),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(script=scripts)
def test_whatever_the_registry_answers_a_pass_raises_only_registry_errors(
    script: dict[str, list[Answer]],
) -> None:
    async def scenario() -> None:
        waits = Waits()
        async with registry_at(script) as url:
            await one_pass(url, waits)
        policy = HttpPolicy()
        assert all(0.0 <= wait <= policy.backoff_max for wait in waits)

    asyncio.run(scenario())


# -------------------------------------------------------------------- the reproduced cases


async def test_a_tracking_uri_the_crd_admits_but_urlsplit_refuses_is_a_registry_error() -> None:
    async with MlflowRegistries() as registries:
        with pytest.raises(RegistryError) as refused:
            await registries.get(RegistryTarget("http://[mlflow:5000")).resolve(ModelRef(name="m", alias="a"))
    assert refused.value.reason == "InvalidTrackingUri"


async def test_a_port_out_of_range_is_a_registry_error() -> None:
    async with MlflowRegistries() as registries:
        with pytest.raises(RegistryError) as refused:
            await registries.get(RegistryTarget("http://mlflow:99999")).resolve(ModelRef(name="m", alias="a"))
    assert refused.value.reason == "InvalidTrackingUri"


@pytest.mark.parametrize(
    "body",
    [{"ok": True}, {"model_version": []}, {"model_version": {"name": "fraud", "version": "seven"}}],
    ids=["not-mlflow", "wrong-type", "bad-version"],
)
async def test_json_that_is_not_mlflows_is_an_unexpected_answer(body: object) -> None:
    async with registry_at({"alias": ok(body)}) as url, MlflowRegistries() as registries:
        with pytest.raises(RegistryError) as refused:
            await registries.get(RegistryTarget(url)).resolve(ModelRef(name="fraud", alias="champion"))
    assert refused.value.reason == "UnexpectedRegistryAnswer"
    assert "\n" not in str(refused.value)


@pytest.mark.parametrize(
    ("files", "reason"),
    [
        ([{"path": ".."}], "InvalidArtifactPath"),
        ([{"path": "a/b"}], "InvalidArtifactPath"),
        ([{"path": "x"}, {"path": "x"}], "InvalidArtifactPath"),
        ([{"path": "d", "is_dir": True}], "ArtifactTreeTooLarge"),  # every directory holds another
    ],
    ids=["dot-dot", "slash", "duplicate", "endless"],
)
async def test_odd_artifact_listings_are_refused_before_any_download(files: object, reason: str) -> None:
    script = {
        "location": ok({"artifact_uri": "mlflow-artifacts:/1/abc/artifacts/model"}),
        "listing": ok({"files": files}),
    }
    async with registry_at(script) as url, MlflowRegistries(sleep=Waits()) as registries:
        with pytest.raises(RegistryError) as refused:
            await registries.get(RegistryTarget(url)).artifact_digest(FRAUD_7)
    assert refused.value.reason == reason


MLMODEL_WITH_SCHEMA = b"""
signature:
  inputs: '[{"name": "a", "type": "double"}]'
"""


async def test_a_versions_location_is_asked_once_and_its_mlmodel_read_once_for_digest_and_schema() -> None:
    script: dict[str, list[Answer]] = {
        "location": ok({"artifact_uri": "mlflow-artifacts:/1/abc/artifacts/model"}),
        "listing": ok({"files": [{"path": "MLmodel"}]}),
        "file": [(200, MLMODEL_WITH_SCHEMA, {})],
    }
    served: dict[str, int] = {}
    async with registry_at(script, served) as url, MlflowRegistries(sleep=Waits()) as registries:
        registry = registries.get(RegistryTarget(url))
        first = await registry.artifact_digest(FRAUD_7)
        again = await registry.artifact_digest(FRAUD_7, max_age=0)  # hashed again: the bytes may change
        schema = await registry.input_schema(FRAUD_7)
    assert first == again and schema == [{"name": "a", "type": "double"}]
    assert served["location"] == 1
    assert served["listing"] == 2 and served["file"] == 2  # the schema came with the hashed MLmodel


MLMODEL_WITH_EXAMPLE = b"""
saved_input_example_info:
  artifact_path: input_example.json
  serving_input_path: serving_input_example.json
  type: dataframe
"""
EXAMPLE_LISTING = {"files": [{"path": "MLmodel"}, {"path": "serving_input_example.json"}]}
EXAMPLE = {"dataframe_split": {"columns": ["a"], "data": [[1.0], [2.0]]}}


async def test_the_serving_input_example_is_the_file_the_mlmodel_names() -> None:
    script: dict[str, list[Answer]] = {
        "location": ok({"artifact_uri": "mlflow-artifacts:/1/abc/artifacts/model"}),
        "listing": ok(EXAMPLE_LISTING),
        "file": [(200, MLMODEL_WITH_EXAMPLE, {}), (200, json.dumps(EXAMPLE).encode(), {})],
    }
    async with registry_at(script) as url, MlflowRegistries(sleep=Waits()) as registries:
        assert await registries.get(RegistryTarget(url)).serving_input_example(FRAUD_7) == EXAMPLE


@pytest.mark.parametrize(
    ("mlmodel", "example", "expected"),
    [
        (b"flavors: {}\n", b"", None),
        (b"saved_input_example_info:\n  artifact_path: input_example.json\n", b"", None),
        (b"saved_input_example_info:\n  serving_input_path: ../x.json\n", b"", "InvalidInputExample"),
        (b"saved_input_example_info:\n  serving_input_path: nowhere.json\n", b"", "InputExampleNotFound"),
        (MLMODEL_WITH_EXAMPLE, b"[1, 2]", "InvalidInputExample"),
        (MLMODEL_WITH_EXAMPLE, b"\xff{", "InvalidInputExample"),
    ],
    ids=["no-example", "no-serving-form", "outside-the-tree", "missing-file", "not-an-object", "not-json"],
)
async def test_a_missing_or_odd_serving_input_example(
    mlmodel: bytes, example: bytes, expected: str | None
) -> None:
    script: dict[str, list[Answer]] = {
        "location": ok({"artifact_uri": "mlflow-artifacts:/1/abc/artifacts/model"}),
        "listing": ok(EXAMPLE_LISTING),
        "file": [(200, mlmodel, {}), (200, example, {})],
    }
    async with registry_at(script) as url, MlflowRegistries(sleep=Waits()) as registries:
        registry = registries.get(RegistryTarget(url))
        if expected is None:
            assert await registry.serving_input_example(FRAUD_7) is None
            return
        with pytest.raises(RegistryError) as refused:
            await registry.serving_input_example(FRAUD_7)
    assert refused.value.reason == expected
    assert "\n" not in str(refused.value)


# ------------------------------------------------------------------------------ retry bound


async def test_waits_honour_retry_after_up_to_the_cap_and_add_up_to_the_bound() -> None:
    policy, waits = HttpPolicy(), Waits()
    script = {"alias": [(503, b"busy", {"Retry-After": "120"})]}
    async with registry_at(script) as url, MlflowRegistries(policy=policy, sleep=waits) as registries:
        with pytest.raises(RegistryUnavailable, match="HTTP 503 after 3 attempts"):
            await registries.get(RegistryTarget(url)).resolve(ModelRef(name="fraud", alias="champion"))
    assert waits == [policy.backoff_max] * (policy.max_attempts - 1)
    # Each attempt may use its whole timeout before answering 503: the bound is every timeout plus
    # every wait the server asked for.
    assert policy.max_attempts * policy.request_timeout + sum(waits) == policy.worst_case_seconds == 38.0


@pytest.mark.parametrize("retry_after", ["nan", "inf", "-inf", "Wed, 21 Oct 2015 07:28:00 GMT"])
async def test_a_retry_after_that_is_not_a_finite_number_falls_back_to_the_backoff(retry_after: str) -> None:
    policy, waits = HttpPolicy(), Waits()
    script = {"alias": [(429, b"", {"Retry-After": retry_after})]}
    async with registry_at(script) as url, MlflowRegistries(policy=policy, sleep=waits) as registries:
        with pytest.raises(RegistryUnavailable):
            await registries.get(RegistryTarget(url)).resolve(ModelRef(name="fraud", alias="champion"))
    assert len(waits) == policy.max_attempts - 1
    assert all(0.0 <= wait <= policy.backoff_max for wait in waits)


async def test_registry_down_is_retried_and_reported_without_credentials() -> None:
    target = RegistryTarget(f"http://admin:pw-in-url@127.0.0.1:{free_port()}", password="s3cret")
    policy, waits = HttpPolicy(), Waits()
    async with MlflowRegistries(policy=policy, sleep=waits) as registries:
        with pytest.raises(RegistryUnavailable) as error:
            await registries.get(target).resolve(ModelRef(name="fraud", alias="champion"))
    assert len(waits) == policy.max_attempts - 1
    assert all(wait <= policy.backoff_base * 2**i for i, wait in enumerate(waits))
    message = str(error.value)
    assert error.value.reason == "RegistryUnavailable" and "\n" not in message
    assert "s3cret" not in message and "pw-in-url" not in message and "admin" not in message
    assert "s3cret" not in repr(target)


async def test_a_hung_registry_times_out_once_per_attempt() -> None:
    release = asyncio.Event()

    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await release.wait()
        writer.close()

    server = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    policy, waits = HttpPolicy(request_timeout=0.2, max_attempts=2, backoff_base=0.1), Waits()
    try:
        async with MlflowRegistries(policy=policy, sleep=waits) as registries:
            with pytest.raises(RegistryUnavailable, match="timed out after 2 attempts"):
                await registries.get(RegistryTarget(f"http://127.0.0.1:{port}")).get_version("fraud", "1")
    finally:
        release.set()
        server.close()
        await server.wait_closed()
    assert len(waits) == 1 and waits[0] <= policy.backoff_base


@pytest.mark.parametrize("status", [400, 404, 401])
async def test_client_errors_are_not_retried(status: int) -> None:
    waits = Waits()
    async with registry_at({"version": ok({}, status)}) as url, MlflowRegistries(sleep=waits) as registries:
        with pytest.raises(RegistryError) as refused:
            await registries.get(RegistryTarget(url)).get_version("fraud", "7")
    assert not isinstance(refused.value, RegistryUnavailable)
    assert waits == []
