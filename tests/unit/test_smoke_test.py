"""The post-rollout smoke test: its pure parts (the row-count rule, the verdict by mode, which pods are
the new ones, the label selector), the decision with each verdict, the POST itself against local
servers on 127.0.0.1 (one answering, one refusing, one silent, a port nobody listens on), and the
pipeline's part (the example from the registry, the pods from the API, what each failure becomes)."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from kubernetes.client.exceptions import ApiException

from modelrelease import pipeline
from modelrelease.kube.client import label_selector
from modelrelease.reconcile import decide
from modelrelease.reconcile.decide import SmokeTarget, SmokeTested
from modelrelease.registry.base import RegistryError, RegistryUnavailable
from modelrelease.render.observe import new_pods
from modelrelease.render.pin import Pin
from modelrelease.verify import smoke
from modelrelease.verify.checks import CheckResult, check_smoke_test, example_rows, smoke_answer_problem
from unit.test_reconcile import PASS, Release, deployment, make_spec, mv, reasons

SPLIT = {"dataframe_split": {"columns": ["a", "b"], "data": [[1, 2], [3, 4], [5, 6]]}}
MLFLOW_400 = {
    "error_code": "BAD_REQUEST",
    "message": "Failed to enforce schema of data: Model is missing inputs ['a']",
}
REFUSED = "HTTP 400: BAD_REQUEST: Failed to enforce schema of data: Model is missing inputs ['a']"


def verdict(outcome: str, reason: str = "2 pods answered the serving input example") -> CheckResult:
    code = {"Passed": "SmokeTestPassed", "Skipped": "NoInputExample"}.get(outcome, "SmokeTestFailed")
    return CheckResult("SmokeTest", outcome, reason, code)  # type: ignore[arg-type]


def smoke_entry(release: Release) -> tuple[str, str, str | None]:
    assert release.status is not None
    (entry,) = [v for v in release.status.verification if v.check == "SmokeTest"]
    return entry.outcome, entry.reason, entry.version


# ------------------------------------------------------------------------------- the row-count rule


@pytest.mark.parametrize(
    ("example", "rows"),
    [
        (SPLIT, 3),
        ({"dataframe_records": [{"a": 1}, {"a": 2}]}, 2),
        ({"instances": [[1, 2]]}, 1),
        ({"inputs": [[1], [2], [3], [4]]}, 4),
        ({"inputs": {"x": [1, 2], "y": [3, 4]}}, 2),
        ({"inputs": {"x": [1, 2], "y": [3]}}, None),
        ({"inputs": 7}, None),
        ({"dataframe_split": {"columns": ["a"]}}, None),
        ({"something": "else"}, None),
    ],
)
def test_example_rows(example: dict[str, Any], rows: int | None) -> None:
    assert example_rows(example) == rows


@pytest.mark.parametrize(
    ("status", "body", "expected", "problem"),
    [
        (200, '{"predictions": [0, 1, 1]}', 3, None),
        (200, '{"predictions": [{"p": 0.1}, {"p": 0.9}, {"p": 0.4}]}', 3, None),
        (200, '{"predictions": {"label": [0, 1, 1], "score": [0.1, 0.9, 0.4]}}', 3, None),
        (200, '{"predictions": [0, 1]}', None, None),  # rows unknown: any count
        (200, '{"predictions": [0, 1]}', 3, "HTTP 200 with 2 predictions for 3 example rows"),
        (200, '{"predictions": 1}', 3, "HTTP 200 with predictions that cannot be counted for 3 example rows"),
        (200, '{"outputs": [0, 1, 1]}', 3, 'HTTP 200 without predictions: {"outputs": [0, 1, 1]}'),
        (200, "[0, 1, 1]", 3, "HTTP 200 without predictions: [0, 1, 1]"),
        (200, "<html>ok</html>", 3, "HTTP 200 without predictions: <html>ok</html>"),
        (200, "", 3, "HTTP 200 without predictions: (empty body)"),
        (500, "", 3, "HTTP 500: (empty body)"),
        (400, json.dumps(MLFLOW_400), 3, REFUSED),
        (400, '{"message": "bad"}', 3, "HTTP 400: bad"),
        (400, '{"detail": "bad"}', 3, 'HTTP 400: {"detail": "bad"}'),
        (400, "line one\nline two", 3, "HTTP 400: line one line two"),
    ],
)
def test_an_answer_must_be_200_with_one_prediction_per_row(
    status: int, body: str, expected: int | None, problem: str | None
) -> None:
    assert smoke_answer_problem(status, body, expected) == problem


def test_a_long_answer_is_shown_by_its_cause_or_its_start_and_end_on_one_line() -> None:
    rows = "\n".join(f"{i} 5.1 3.5 1.4 0.2" for i in range(500))
    message = f"Failed to enforce schema of data '{rows}'. Error: Model is missing inputs ['a']."
    problem = smoke_answer_problem(400, json.dumps({"error_code": "BAD_REQUEST", "message": message}), 1)
    assert problem == "HTTP 400: BAD_REQUEST: … Error: Model is missing inputs ['a']."
    plain = smoke_answer_problem(502, f"upstream failed {rows} giving up", 1)
    assert plain is not None and "\n" not in plain and len(plain) < 450
    assert (
        plain.startswith("HTTP 502: upstream failed 0 5.1") and plain.endswith("giving up") and " … " in plain
    )


# ------------------------------------------------------------------------------- the verdict by mode


def test_the_verdict_follows_the_mode() -> None:
    good = {"p1": None, "p2": None}
    bad = {"p1": None, "p2 (127.1.0.3)": "HTTP 400: no"}
    assert check_smoke_test("Enforce", "4", SPLIT, good) == CheckResult(
        "SmokeTest",
        "Passed",
        "2 pods answered the serving input example with 3 predictions",
        "SmokeTestPassed",
    )
    failed = check_smoke_test("Enforce", "4", SPLIT, bad)
    assert (failed.outcome, failed.code) == ("Failed", "SmokeTestFailed")
    assert failed.reason == "1 of 2 pods refused the serving input example: pod p2 (127.1.0.3): HTTP 400: no"
    assert check_smoke_test("Warn", "4", SPLIT, bad).outcome == "Warned"
    assert check_smoke_test("Warn", "4", SPLIT, good).outcome == "Passed"
    same = check_smoke_test(
        "Enforce", "4", SPLIT, {"a": "HTTP 400: no", "b": "HTTP 400: no", "c": "HTTP 500: x"}
    )
    assert (
        same.reason
        == "3 of 3 pods refused the serving input example: pods a, b: HTTP 400: no; pod c: HTTP 500: x"
    )
    off = check_smoke_test("Off", "4", SPLIT, bad)
    assert (off.outcome, off.code) == ("Skipped", "CheckDisabled")


def test_without_an_example_or_pods_the_test_is_skipped_with_a_reason() -> None:
    none = check_smoke_test("Enforce", "4", None, {})
    assert (none.outcome, none.code) == ("Skipped", "NoInputExample")
    assert "version 4 logged no serving input example" in none.reason
    nobody = check_smoke_test("Enforce", "4", SPLIT, {})
    assert (nobody.outcome, nobody.code) == ("Skipped", "NoReadyPods")


def test_an_example_the_registry_cannot_give_fails_by_mode() -> None:
    error = RegistryError(
        "serving_input_example.json of models:/fraud/4 is not a JSON object", "InvalidInputExample"
    )
    assert check_smoke_test("Enforce", "4", error, {}).outcome == "Failed"
    assert check_smoke_test("Warn", "4", error, {}).code == "InvalidInputExample"


# -------------------------------------------------------------------------- which pods are tested


def pod(
    name: str,
    uri: str = "models:/fraud/2",
    gen: str = "3",
    ready: bool = True,
    ip: str | None = "127.1.0.7",
    deleting: bool = False,
) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": name,
        "annotations": {"modelrelease.io/model-uri": uri, "modelrelease.io/release-generation": gen},
    }
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    status: dict[str, Any] = {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}
    if ip is not None:
        status["podIP"] = ip
    return {"metadata": meta, "status": status}


def test_the_new_pods_are_the_ready_ones_of_the_rollouts_template() -> None:
    pods = [
        pod("new-b", ip="127.1.0.9"),
        pod("new-a"),
        pod("old", uri="models:/fraud/1"),
        pod("older-generation", gen="2"),
        pod("starting", ready=False),
        pod("no-ip", ip=None),
        pod("leaving", deleting=True),
        {"metadata": {"name": "bare"}},
    ]
    assert new_pods(pods, Pin("fraud", "2"), 3) == [("new-a", "127.1.0.7"), ("new-b", "127.1.0.9")]
    assert [name for name, _ in new_pods(pods, Pin("fraud", "2"), None)] == [
        "new-a",
        "new-b",
        "older-generation",
    ]


def test_label_selector_query() -> None:
    assert label_selector({"matchLabels": {"b": "2", "a": "1"}}) == "a=1,b=2"
    expressions = [
        {"key": "tier", "operator": "In", "values": ["x", "y"]},
        {"key": "env", "operator": "NotIn", "values": ["dev"]},
        {"key": "app", "operator": "Exists"},
        {"key": "legacy", "operator": "DoesNotExist"},
    ]
    assert label_selector({"matchLabels": {"a": "1"}, "matchExpressions": expressions}) == (
        "a=1,tier in (x,y),env notin (dev),app,!legacy"
    )
    assert label_selector({}) == ""
    with pytest.raises(ValueError, match="operator"):
        label_selector({"matchExpressions": [{"key": "a", "operator": "Near"}]})


def test_the_port_is_the_serving_port_or_the_target_containers() -> None:
    assert smoke.serving_port(make_spec(serving={"port": 9000}), {}) == 9000
    live = {
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {"name": "sidecar", "ports": [{"containerPort": 15000}]},
                        {"name": "server", "ports": [{"name": "http", "containerPort": 5001}]},
                    ]
                }
            }
        }
    }
    target = make_spec(serving={"targetRef": {"name": "d", "container": "server"}})
    assert smoke.serving_port(target, live) == 5001
    bare = make_spec(serving={"targetRef": {"name": "d", "container": "server"}})
    assert (
        smoke.serving_port(bare, {"spec": {"template": {"spec": {"containers": [{"name": "server"}]}}}})
        == 8080
    )


def test_only_an_ip_address_is_addressed() -> None:
    assert smoke.invocations_url("127.1.0.7", 8080) == "http://127.1.0.7:8080/invocations"
    assert smoke.invocations_url("fd00::7", 8080) == "http://[fd00::7]:8080/invocations"
    for host in ("fraud.ml.svc", "", "127.1.0.7:80"):
        with pytest.raises(ValueError):
            smoke.invocations_url(host, 8080)


# --------------------------------------------------------------------------------- the decisions


def rolled_out(release: Release, n: int) -> None:
    """Start the rollout of version n (verified) on top of whatever serves."""
    release.step(mv(n), deployment(n - 1, "Succeeded") if n > 1 else None, PASS)


def test_ready_pods_ask_for_the_smoke_test_and_the_rollout_waits_for_its_verdict() -> None:
    release = Release()
    rolled_out(release, 1)
    plan = release.step(mv(1), deployment(1, "Succeeded"), smoke=None)
    assert plan.smoke_test is not None
    assert (plan.smoke_test.pin, plan.smoke_test.release_generation) == (Pin("fraud", "1"), 1)
    assert release.outcomes() == [("1", None)]
    assert release.condition("Progressing") == ("True", "SmokeTestInProgress")
    assert release.condition("Ready") == ("False", "SmokeTestInProgress")
    assert plan.status.phase == "Progressing" and plan.requeue_after == 10.0
    assert plan.deploy is None and reasons(plan) == []


def test_a_passing_smoke_test_completes_the_rollout_once() -> None:
    release = Release()
    rolled_out(release, 1)
    plan = release.step(mv(1), deployment(1, "Succeeded"), smoke=verdict("Passed"))
    assert release.outcomes() == [("1", "Succeeded")]
    assert smoke_entry(release) == ("Passed", "2 pods answered the serving input example", "1")
    assert plan.status.history[-1].message == (
        "rollout succeeded; smoke test: 2 pods answered the serving input example"
    )
    assert reasons(plan) == ["SmokeTestPassed", "RolloutSucceeded"]
    assert plan.status.phase == "Ready"
    again = release.step(mv(1), deployment(1, "Succeeded"), smoke=None)
    assert again.smoke_test is None and not again.status_changed


def test_a_refused_example_rolls_back_like_a_deadline_and_is_not_retried() -> None:
    release = Release()
    rolled_out(release, 1)
    release.step(mv(1), deployment(1, "Succeeded"))
    rolled_out(release, 2)
    answer = f"1 of 1 pods refused the serving input example: pod fraud-2-x (127.1.0.9): {REFUSED}"
    plan = release.step(mv(2), deployment(2, "Succeeded"), smoke=verdict("Failed", answer))
    assert plan.deploy is not None and (plan.deploy.kind, plan.deploy.pin.version) == ("Rollback", "1")
    entry = plan.status.history[-1]
    assert (entry.version, entry.outcome, entry.reason) == ("2", "RolledBack", "SmokeTestFailed")
    assert entry.message == f"smoke test failed: {answer}; rolled back to version 1"
    assert smoke_entry(release) == ("Failed", answer, "2")
    assert [(e.type, e.reason) for e in plan.events] == [
        ("Warning", "SmokeTestFailed"),
        ("Warning", "RolledBack"),
    ]
    assert "Failed to enforce schema" in plan.events[0].message
    assert plan.status.current is not None and plan.status.current.version == "1"

    back = release.step(mv(2), deployment(1, "Succeeded"), smoke=None)
    assert back.verify is None and back.deploy is None and back.smoke_test is None
    assert back.status.phase == "Degraded"
    assert release.condition("Degraded") == ("True", "RolledBack")
    assert release.step(mv(2), deployment(1, "Succeeded"), smoke=None).verify is None  # not retried
    assert release.step(mv(3), deployment(1, "Succeeded"), smoke=None).verify == mv(3)  # a new version is


def test_a_refused_first_version_fails_and_stays_in_place() -> None:
    release = Release()
    rolled_out(release, 1)
    plan = release.step(mv(1), deployment(1, "Succeeded"), smoke=verdict("Failed", "pod p: HTTP 400: no"))
    assert plan.deploy is None
    assert release.outcomes() == [("1", "Failed")]
    assert plan.status.history[-1].reason == "SmokeTestFailed"
    assert "no earlier version succeeded" in (plan.status.history[-1].message or "")
    assert plan.status.phase == "Failed" and plan.status.current is None
    assert reasons(plan) == ["SmokeTestFailed", "RolloutFailed"]


def test_warn_records_the_refusal_and_the_version_serves() -> None:
    release = Release(make_spec(rollout={"smokeTest": "Warn"}))
    rolled_out(release, 1)
    plan = release.step(mv(1), deployment(1, "Succeeded"), smoke=verdict("Warned", "pod p: HTTP 400: no"))
    assert release.outcomes() == [("1", "Succeeded")]
    assert smoke_entry(release) == ("Warned", "pod p: HTTP 400: no", "1")
    assert [(e.type, e.reason) for e in plan.events] == [
        ("Warning", "SmokeTestFailed"),
        ("Normal", "RolloutSucceeded"),
    ]
    assert plan.events[0].message == "version 1: pod p: HTTP 400: no; smokeTest is Warn: it serves anyway"
    assert plan.status.phase == "Ready"


def test_off_asks_for_nothing_and_says_so() -> None:
    release = Release(make_spec(rollout={"smokeTest": "Off"}))
    rolled_out(release, 1)
    plan = release.step(mv(1), deployment(1, "Succeeded"), smoke=None)
    assert plan.smoke_test is None
    assert release.outcomes() == [("1", "Succeeded")]
    assert smoke_entry(release) == ("Skipped", "check is Off", "1")
    assert reasons(plan) == ["RolloutSucceeded"]


def test_a_version_without_an_example_serves_with_the_test_skipped() -> None:
    release = Release()
    rolled_out(release, 1)
    skipped = check_smoke_test("Enforce", "1", None, {})
    plan = release.step(mv(1), deployment(1, "Succeeded"), smoke=skipped)
    assert release.outcomes() == [("1", "Succeeded")]
    assert (
        smoke_entry(release)[0] == "Skipped" and "logged no serving input example" in smoke_entry(release)[1]
    )
    assert reasons(plan) == ["RolloutSucceeded"]


def test_a_verdict_about_another_version_is_not_this_rollouts() -> None:
    release = Release()
    rolled_out(release, 1)
    plan = release.step(mv(1), deployment(1, "Succeeded"), smoke=None)
    assert plan.smoke_test is not None
    stale = SmokeTested("7", verdict("Failed", "pod p: HTTP 400"))
    again = decide(
        release.spec, 1, release.status, mv(1), None, deployment(1, "Succeeded"), release.clock, smoke=stale
    )
    assert again.smoke_test is not None and again.deploy is None
    assert [e.outcome for e in again.status.history] == [None]


# ------------------------------------------------------------------------------------- the POST


@asynccontextmanager
async def model_server(handler: Any) -> AsyncIterator[int]:
    app = web.Application()
    app.router.add_post("/invocations", handler)
    async with TestServer(app, host="127.0.0.1") as server:
        assert server.port is not None
        yield server.port


def closed_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_the_example_goes_to_each_pod_and_the_answers_are_judged() -> None:
    seen: list[Any] = []

    async def predict(request: web.Request) -> web.Response:
        body = await request.json()
        seen.append((request.headers.get("Content-Type"), request.headers.get("Authorization"), body))
        return web.json_response({"predictions": [0] * len(body["dataframe_split"]["data"])})

    async with model_server(predict) as port:
        result = await smoke.smoke_test("Enforce", "2", SPLIT, [("a", "127.0.0.1"), ("b", "127.0.0.1")], port)
    assert (result.outcome, result.reason) == (
        "Passed",
        "2 pods answered the serving input example with 3 predictions",
    )
    assert seen == [("application/json", None, SPLIT)] * 2  # the example as logged, no credentials


async def test_a_refusal_a_closed_port_and_a_silent_pod_are_clear_failures(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def refuse(request: web.Request) -> web.Response:
        return web.json_response(MLFLOW_400, status=400)

    async with model_server(refuse) as port:
        refused = await smoke.smoke_test("Enforce", "2", SPLIT, [("p", "127.0.0.1")], port)
    assert refused.outcome == "Failed"
    assert refused.reason == f"1 of 1 pods refused the serving input example: pod p (127.0.0.1): {REFUSED}"

    nobody = await smoke.smoke_test("Enforce", "2", SPLIT, [("p", "127.0.0.1")], closed_port())
    assert nobody.outcome == "Failed"
    assert nobody.reason.endswith(
        "pod p (127.0.0.1): connection refused (no server listens on the pod's IP and port)"
    )

    async def hang(request: web.Request) -> web.Response:
        await asyncio.sleep(30)
        return web.json_response({})

    monkeypatch.setattr(smoke, "REQUEST_TIMEOUT_S", 0.3)
    async with model_server(hang) as port:
        silent = await smoke.smoke_test("Warn", "2", SPLIT, [("p", "127.0.0.1")], port)
    assert silent.outcome == "Warned" and silent.reason.endswith("pod p (127.0.0.1): no answer within 0.3s")


async def test_a_pod_ip_that_is_not_an_address_is_never_contacted() -> None:
    async def post(url: str, body: bytes) -> tuple[int, str]:
        raise AssertionError(f"POST {url}")

    result = await smoke.smoke_test("Enforce", "2", SPLIT, [("p", "fraud.ml.svc")], 8080, post)
    assert result.outcome == "Failed" and "'fraud.ml.svc' is not an IP address" in result.reason


async def test_nothing_is_sent_when_off_or_without_an_example() -> None:
    async def post(url: str, body: bytes) -> tuple[int, str]:
        raise AssertionError(f"POST {url}")

    assert (await smoke.smoke_test("Off", "2", SPLIT, [("p", "127.0.0.1")], 8080, post)).outcome == "Skipped"
    assert (
        await smoke.smoke_test("Enforce", "2", None, [("p", "127.0.0.1")], 8080, post)
    ).outcome == "Skipped"


# ------------------------------------------------------------------ the pipeline's part (its I/O)


class FakeRegistry:
    """The two registry calls the smoke test makes, answering `example` (or raising it)."""

    def __init__(self, example: Any) -> None:
        self.example = example

    async def get_version(self, name: str, version: str, *, max_age: float | None = None) -> Any:
        return mv(int(version), name)

    async def serving_input_example(self, version: Any) -> Any:
        if isinstance(self.example, Exception):
            raise self.example
        return self.example


class FakeKube:
    def __init__(self, pods: list[dict[str, Any]] | Exception) -> None:
        self.pods = pods
        self.selectors: list[Any] = []

    async def list_pods(self, namespace: str, selector: Any) -> list[dict[str, Any]]:
        self.selectors.append((namespace, selector))
        if isinstance(self.pods, Exception):
            raise self.pods
        return self.pods


LIVE = {"metadata": {"name": "fraud", "namespace": "ml"}, "spec": {"selector": {"matchLabels": {"a": "b"}}}}
TARGET = SmokeTarget(Pin("fraud", "2"), 3)


async def run_pipeline_smoke(
    example: Any, pods: Any, port: int = 8080
) -> tuple[SmokeTested | None, FakeKube]:
    kube = FakeKube(pods)
    op = SimpleNamespace(kube=kube)
    spec = make_spec(serving={"port": port})
    return await pipeline._smoke_test(op, spec, FakeRegistry(example), TARGET, LIVE), kube  # type: ignore[arg-type]


async def test_the_pipeline_lists_the_deployments_pods_and_tests_the_new_ones() -> None:
    async def predict(request: web.Request) -> web.Response:
        return web.json_response({"predictions": [1, 0, 1]})

    async with model_server(predict) as port:
        tested, kube = await run_pipeline_smoke(
            SPLIT, [pod("new", ip="127.0.0.1"), pod("old", uri="models:/fraud/1")], port
        )
    assert kube.selectors == [("ml", {"matchLabels": {"a": "b"}})]
    assert tested is not None and tested.version == "2"
    assert (tested.result.outcome, tested.result.reason) == (
        "Passed",
        "1 pod answered the serving input example with 3 predictions",
    )


async def test_the_pipeline_waits_out_a_registry_outage_and_lists_nothing_without_an_example() -> None:
    tested, kube = await run_pipeline_smoke(RegistryUnavailable("connection refused"), [])
    assert tested is None  # the rollout stays in progress; the next pass tries again
    tested, kube = await run_pipeline_smoke(None, AssertionError("listed"))
    assert tested is not None and tested.result.code == "NoInputExample" and kube.selectors == []
    broken = RegistryError("serving_input_example.json is not a JSON object", "InvalidInputExample")
    tested, _ = await run_pipeline_smoke(broken, [])
    assert tested is not None and (tested.result.outcome, tested.result.code) == (
        "Failed",
        "InvalidInputExample",
    )


async def test_pods_the_operator_may_not_list_fail_the_test_with_what_to_do() -> None:
    tested, _ = await run_pipeline_smoke(SPLIT, ApiException(status=403, reason="Forbidden"))
    assert tested is not None and (tested.result.outcome, tested.result.code) == ("Failed", "PodsNotListable")
    assert "may not list pods in namespace ml (HTTP 403)" in tested.result.reason
    assert "smokeTest: Off" in tested.result.reason
    with pytest.raises(ApiException):  # an API server hiccup fails the pass, which is retried
        await run_pipeline_smoke(SPLIT, ApiException(status=503, reason="Unavailable"))
