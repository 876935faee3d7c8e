"""What the real kube-apiserver makes of ModelReleases under the generated CRD: which specs it admits and
which it refuses (and in which words), what it defaults and prunes, and the status it stores.

Every question is a server-side dry run (`dryRun=All`): the API server decodes, defaults, prunes,
validates (OpenAPI schema, then the CEL rules) and runs admission exactly as for a real write, and stores
nothing. Specs go in with `fieldValidation=Strict`, as `kubectl apply` sends them, so an unknown field is
an error; the pruning tests use the server's default, Warn. The same objects are judged by the pydantic
models in tests/unit (tests/crd_cases.py holds them), and a property test checks that pydantic accepts a
spec exactly when the server admits it.
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kubernetes.client.exceptions import ApiException

from crd_cases import (
    BAD_SPECS,
    BAD_STATUSES,
    CASES,
    EMPTY_SHAPING,
    FULL_SPEC,
    POLL,
    SHAPING_VALUES,
    UNKNOWN_STATUS_FIELD,
    WHOLE_OBJECTS_BREAKING_ONE_RULE,
    BadSpec,
    dump,
    embed,
    full_status,
    pydantic_accepts,
    release,
    spec,
)
from integration.helpers import CRD, ROOT, Cluster
from modelrelease.api.models import GROUP, PLURAL, VERSION, ModelReleaseSpec
from modelrelease.sandbox.stack import SandboxInfo
from operator_process import operators_paused

pytestmark = pytest.mark.slow

EXAMPLES = sorted((ROOT / "examples").glob("modelrelease*.yaml"))
WARNING = re.compile(r'\d{3} \S+ "((?:[^"\\]|\\.)*)"')
Kubectl = Callable[..., "subprocess.CompletedProcess[str]"]


@dataclass(frozen=True)
class Answer:
    """The API server's answer to one request."""

    code: int
    stored: dict[str, Any] | None
    """The object as the server stores it (returned by the dry run); None when refused."""
    message: str = ""
    causes: list[tuple[str, str]] = field(default_factory=list)
    """(field, message) of each error of a refusal, as in the Status' details."""
    warnings: list[str] = field(default_factory=list)

    @property
    def admitted(self) -> bool:
        return self.stored is not None


def _warnings(headers: Any) -> list[str]:
    joined = ", ".join(headers.getlist("Warning")) if headers is not None else ""
    return [text.replace('\\"', '"') for text in WARNING.findall(joined)]


def _ask(call: Callable[[], tuple[dict[str, Any], int, Any]]) -> Answer:
    try:
        stored, code, headers = call()
    except ApiException as exc:
        if exc.body is None:  # no Status object to read: not an admission answer
            raise
        status = json.loads(exc.body)
        causes = [(c.get("field", ""), c["message"]) for c in status.get("details", {}).get("causes", [])]
        return Answer(exc.status, None, status["message"], causes, _warnings(exc.headers))
    return Answer(code, stored, warnings=_warnings(headers))


class Server:
    """Dry-run writes of ModelReleases into one namespace of the sandbox's API server."""

    def __init__(self, cluster: Cluster, namespace: str) -> None:
        self.custom = cluster.custom
        self.namespace = namespace

    def create(self, body: dict[str, Any], validation: str = "Strict") -> Answer:
        args = (GROUP, VERSION, self.namespace, PLURAL, copy.deepcopy(body))
        return _ask(
            lambda: self.custom.create_namespaced_custom_object_with_http_info(
                *args, dry_run="All", field_validation=validation
            )
        )

    def create_spec(self, body: dict[str, Any]) -> dict[str, Any]:
        """The spec as the server stores it; fails the test when the server refuses it."""
        answer = self.create(release(body))
        assert answer.stored is not None, answer.message
        stored: dict[str, Any] = answer.stored["spec"]
        return stored

    def write_status(self, name: str, status: dict[str, Any], dry_run: bool = True) -> Answer:
        """Patch the status subresource the way the operator does (a JSON merge patch of `status`)."""
        args = (GROUP, VERSION, self.namespace, PLURAL, name, {"status": status})
        return _ask(
            lambda: self.custom.patch_namespaced_custom_object_status_with_http_info(
                *args,
                _content_type="application/merge-patch+json",
                **({"dry_run": "All"} if dry_run else {}),
            )
        )

    def get(self, name: str) -> dict[str, Any]:
        live: dict[str, Any] = self.custom.get_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, name
        )
        return live


@pytest.fixture(scope="module")
def server(cluster: Cluster) -> Iterator[Server]:
    # The releases here are the API server's, not the operator's: a running operator would write its own
    # status over the one under test (found when the chaos tests had started the session operator first).
    namespace = cluster.namespace("crd-admission")
    try:
        with operators_paused():
            yield Server(cluster, namespace)
    finally:
        cluster.core.delete_namespace(namespace)


def _without_empty(value: Any) -> Any:
    """`value` without empty maps and lists: pydantic writes them out, the API server's defaults do not."""
    if isinstance(value, dict):
        kept = {key: _without_empty(sub) for key, sub in value.items()}
        return {key: sub for key, sub in kept.items() if sub not in ({}, [])}
    return value


def test_the_server_serves_the_committed_schema(cluster: Cluster) -> None:
    definition = kubernetes.client.ApiextensionsV1Api(cluster.api).read_custom_resource_definition(
        f"{PLURAL}.{GROUP}"
    )
    live = cluster.api.sanitize_for_serialization(definition)
    committed = yaml.safe_load(CRD.read_text())
    assert live["spec"]["versions"] == committed["spec"]["versions"]
    assert {c["type"]: c["status"] for c in live["status"]["conditions"]}["Established"] == "True"


# ----------------------------------------------------------------------------------------------- specs


@pytest.mark.parametrize("bad", BAD_SPECS, ids=[bad.id for bad in BAD_SPECS])
def test_bad_specs_are_refused_naming_the_field(server: Server, bad: BadSpec) -> None:
    answer = server.create(release(bad.body))
    assert (answer.code, answer.admitted) == (bad.code, False), answer
    assert bad.server in answer.message


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_the_examples_and_their_round_trip_are_admitted_alike(server: Server, path: Path) -> None:
    example = yaml.safe_load(path.read_text())
    del example["metadata"]["namespace"]
    answer = server.create(example)
    assert answer.stored is not None, answer.message
    assert answer.warnings == []
    parsed = dump(ModelReleaseSpec.model_validate(example["spec"]))
    assert _without_empty(answer.stored["spec"]) == _without_empty(server.create_spec(parsed))
    assert _without_empty(answer.stored["spec"]) == _without_empty(parsed)


def test_every_field_survives_the_round_trip_through_pydantic_and_the_server(server: Server) -> None:
    stored = server.create_spec(FULL_SPEC)
    parsed = dump(ModelReleaseSpec.model_validate(FULL_SPEC))
    assert _without_empty(server.create_spec(parsed)) == _without_empty(stored) == _without_empty(parsed)
    assert stored["serving"]["env"][1]["valueFrom"] == {"secretKeyRef": {"name": "s", "key": "k"}}
    assert stored["serving"]["resources"]["requests"] == {"cpu": "500m", "memory": 536870912}
    assert stored["serving"]["affinity"] == FULL_SPEC["serving"]["affinity"]


@pytest.mark.parametrize(
    "body",
    [
        {"model": {"name": "fraud", "alias": "champion"}},
        {"model": {"name": "fraud", "version": "3"}, "serving": {"targetRef": {"name": "d"}}, "verify": {}},
    ],
)
def test_server_defaults_equal_model_defaults(server: Server, body: dict[str, Any]) -> None:
    assert server.create_spec(body) == _without_empty(dump(ModelReleaseSpec.model_validate(body)))


def test_unknown_fields_are_pruned_with_a_warning(server: Server) -> None:
    """Without Strict (the server's default, Warn), unknown fields are dropped and each is named in a
    warning, which kubectl prints."""
    answer = server.create(release(spec(extra=1, serving={"bogus": True, "port": 81})), validation="Warn")
    assert answer.stored is not None, answer.message
    assert "extra" not in answer.stored["spec"]
    assert answer.stored["spec"]["serving"] == {"port": 81}
    assert sorted(answer.warnings) == ['unknown field "spec.extra"', 'unknown field "spec.serving.bogus"']


def test_kubectl_apply_shows_the_rule_a_spec_breaks(
    sandbox: SandboxInfo, run_kubectl: Kubectl, server: Server
) -> None:
    example = yaml.safe_load((ROOT / "examples" / "modelrelease.yaml").read_text())  # managed mode
    example["metadata"]["namespace"] = server.namespace
    applied = run_kubectl(sandbox, "apply", "--dry-run=server", "-f", "-", stdin=yaml.safe_dump(example))
    assert applied.returncode == 0, applied.stderr
    assert "created (server dry run)" in applied.stdout

    example["spec"]["serving"]["targetRef"] = {"name": "existing"}
    refused = run_kubectl(sandbox, "apply", "--dry-run=server", "-f", "-", stdin=yaml.safe_dump(example))
    assert refused.returncode == 1
    assert "spec.serving: Invalid value: spec.serving.targetRef excludes image, replicas" in refused.stderr


# ------------------------------------------------------------------------------------------ CEL rules


def _field(path: str) -> str:
    """The field a refusal names for a rule on the schema node `path`."""
    return path.replace("[]", "[0]") if path else "<nil>"


@pytest.mark.parametrize(
    ("message", "value"),
    [(m, v) for m, case in CASES.items() for v in case.good],
    ids=lambda x: str(x)[:60],
)
def test_rule_admits(server: Server, message: str, value: Any) -> None:
    answer = server.create(embed(CASES[message].path, value))
    assert answer.admitted, answer.message


@pytest.mark.parametrize(
    ("message", "value"),
    [(m, v) for m, case in CASES.items() for v in case.bad],
    ids=lambda x: str(x)[:60],
)
def test_rule_refuses_with_its_message(server: Server, message: str, value: Any) -> None:
    answer = server.create(embed(CASES[message].path, value))
    assert answer.code == 422
    assert answer.causes == [(_field(CASES[message].path), f"Invalid value: {message}")]


def test_a_poll_interval_the_pattern_refuses_is_not_judged_by_the_bounds_rule(server: Server) -> None:
    """The bounds rule skips a value that is no duration, so the user reads the pattern's error alone
    (not a CEL evaluation error)."""
    answer = server.create(release(spec(registry={"pollInterval": "oops"})))
    [(where, text)] = answer.causes
    assert where == "spec.registry.pollInterval"
    assert text.startswith('Invalid value: "oops": spec.registry.pollInterval in body should match')
    assert POLL not in answer.message


def test_server_defaults_do_not_trip_the_target_ref_rule(server: Server) -> None:
    # The schema defaults serving.port (and serving itself): a bare targetRef release must still pass.
    body = release({"model": {"name": "m", "version": "1"}, "serving": {"targetRef": {"name": "d"}}}, "x.y")
    answer = server.create(body)
    assert answer.stored is not None, answer.message
    assert answer.stored["spec"]["serving"] == {"targetRef": {"name": "d"}, "port": 8080}


@pytest.mark.parametrize(("body", "message"), WHOLE_OBJECTS_BREAKING_ONE_RULE, ids=lambda x: str(x)[:40])
def test_whole_objects_report_the_rule_they_break(server: Server, body: dict[str, Any], message: str) -> None:
    assert [text for _, text in server.create(release(body)).causes] == [f"Invalid value: {message}"]


# ---------------------------------------------------------------------------------------- agreement
# Specs that always satisfy the schema's types, patterns, enums and ranges but vary everything the CEL
# rules judge. The API server and pydantic must then accept exactly the same ones.

# A release is a random valid base plus up to two perturbations, each a random instance of one kind of
# edit (most break one rule, some are valid edge cases), so a failing spec usually breaks a single rule.

random_durations = st.lists(
    st.tuples(
        st.one_of(st.integers(0, 90).map(str), st.decimals(0, 30, places=2).map(str)),
        st.sampled_from(["ms", "s", "m", "h"]),
    ),
    min_size=1,
    max_size=3,
).map(lambda parts: "".join(number + unit for number, unit in parts))
edge_durations = st.sampled_from(
    [
        *("5s", "5000ms", "24h", "4s", "4.5s", "4999ms", "0.08m", "24h1s", "86401s"),
        # Where Go's truncation to whole nanoseconds and float rounding decide
        *(
            "4999.9999999999999ms",
            "4.99999999999999999999s",
            "86400.0000000000001s",
            "24.0000000000000000001h",
        ),
    ]
)
bounds = st.one_of(st.integers(-5, 5), st.floats(-5, 5, allow_nan=False, allow_infinity=False))
Perturbation = Callable[[dict[str, Any]], None]


@st.composite
def base_releases(draw: st.DrawFn) -> dict[str, Any]:
    kind, value = draw(st.sampled_from([("version", "7"), ("alias", "champion"), ("stage", "Production")]))
    body: dict[str, Any] = {"model": {"name": "fraud", kind: value}}
    if draw(st.booleans()):
        body["registry"] = {"pollInterval": draw(st.sampled_from(["5s", "60s", "1h30m", "24h"]))}
    if draw(st.booleans()):
        low, high = sorted(draw(st.lists(bounds, min_size=2, max_size=2)))
        body["verify"] = {"metrics": [{"name": "f1", "min": low, "max": high}, {"name": "loss", "max": high}]}
    if draw(st.booleans()):
        body["serving"] = {"targetRef": {"name": "existing"}}
    else:
        body["serving"] = {"replicas": 2, "env": [{"name": "A", "value": "1"}], **EMPTY_SHAPING}
        body["serving"]["template"] = {"metadata": {"labels": {"team": "risk"}}}
    return release(body, draw(st.sampled_from(["fraud", "ok-name"])))


@st.composite
def perturbations(draw: st.DrawFn) -> Perturbation:
    kind = draw(st.integers(0, 12))
    if kind == 0:  # references: none, two, three, or a different single one
        refs = draw(st.lists(st.sampled_from(["version", "alias", "stage"]), unique=True, max_size=3))
        values = {"version": "3", "alias": draw(st.sampled_from(["x", "v3a"])), "stage": "Staging"}
        return lambda body: body["spec"].update(model={"name": "fraud", **{r: values[r] for r in refs}})
    if kind == 1:
        alias = draw(st.sampled_from(["latest", "Latest", "v3", "V10", "v3a", "latest1"]))
        return lambda body: body["spec"].update(model={"name": "fraud", "alias": alias})
    if kind == 2:
        duration = draw(st.one_of(edge_durations, random_durations))
        return lambda body: body["spec"].update(registry={"pollInterval": duration})
    if kind == 3:
        gate = {
            "name": "auc",
            **{key: draw(bounds) for key in draw(st.sets(st.sampled_from(["min", "max"])))},
        }
        return lambda body: body["spec"].setdefault("verify", {}).update(metrics=[gate])
    if kind == 4:  # a shaping field (set or empty) next to targetRef
        name = draw(st.sampled_from(sorted(SHAPING_VALUES)))
        value = (
            SHAPING_VALUES[name] if name not in EMPTY_SHAPING or draw(st.booleans()) else EMPTY_SHAPING[name]
        )
        return lambda body: body["spec"]["serving"].update(targetRef={"name": "d"}, **{name: value})
    if kind in (5, 6):  # env entries, possibly MODEL_URI, possibly with both value and valueFrom
        env = draw(env_lists())
        return lambda body: body["spec"]["serving"].update(env=env)
    if kind == 7:
        where = draw(st.sampled_from(["labels", "annotations"]))
        key = draw(st.sampled_from(["modelrelease.io/version", "x.modelrelease.io/ok", "team"]))
        return lambda body: body["spec"]["serving"].update(template={"metadata": {where: {key: "v"}}})
    if kind == 8:
        signing = {"signature": draw(st.sampled_from(["Enforce", "Warn", "Off"]))}
        if draw(st.booleans()):
            signing["signersConfigMap"] = "signers"
        return lambda body: body["spec"].setdefault("verify", {}).update(signing)
    if kind == 9:
        edges = st.sampled_from(["30s", "29s", "29999ms", "0.5m", "24h"])
        interval = draw(st.one_of(edges, random_durations))
        return lambda body: body["spec"].setdefault("verify", {}).update(reverifyInterval=interval)
    # Names every Kubernetes object may have (the server's own metadata checks are not the rule's).
    name = draw(st.sampled_from(["fraud.v2", "9lives", "a" * 63, "a" * 64]))
    return lambda body: body["metadata"].update(name=name)


@st.composite
def env_lists(draw: st.DrawFn) -> list[dict[str, Any]]:
    names = draw(st.lists(st.sampled_from(["A", "MODEL_URI", "B"]), unique=True, min_size=1, max_size=2))
    out = []
    for name in names:
        entry: dict[str, Any] = {"name": name}
        source = draw(st.sampled_from(["value", "valueFrom", "none", "both"]))
        if source in ("value", "both"):
            entry["value"] = "v"
        if source in ("valueFrom", "both"):
            entry["valueFrom"] = {"secretKeyRef": {"name": "s", "key": "k"}}
        out.append(entry)
    return out


@st.composite
def releases(draw: st.DrawFn) -> dict[str, Any]:
    body = draw(base_releases())
    for perturb in draw(st.lists(perturbations(), max_size=2)):
        perturb(body)
    return body


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=releases())
def test_pydantic_accepts_a_spec_iff_the_server_admits_it(server: Server, body: dict[str, Any]) -> None:
    answer = server.create(body)
    assert pydantic_accepts(body) == answer.admitted, answer.message


# Where the two could part: regular-expression classes (RE2's \s is ASCII, Python's and pydantic's are
# Unicode), Go's duration arithmetic, JSON number types, doubles. (Not here: nulls. The server drops a null
# of a typed field before validating and stores none, so the operator never reads one; pydantic refuses a
# null where the model has no None.)
EDGES: dict[str, dict[str, Any]] = {
    "no-break space inside a tracking URI": spec(registry={"trackingUri": "http://mlflow\u00a0x:5000"}),
    "no-break space ending a model name": {"model": {"name": "fraud\u00a0", "version": "1"}},
    "vertical tab ending a model name": {"model": {"name": "fraud\v", "version": "1"}},
    "tab ending a model name": {"model": {"name": "fraud\t", "version": "1"}},
    "integral float replicas": spec(serving={"replicas": 2.0}),
    "fractional replicas": spec(serving={"replicas": 2.5}),
    "integral float quantity": spec(serving={"resources": {"limits": {"cpu": 1.0}}}),
    "poll 4.99999999999999999999s": spec(registry={"pollInterval": "4.99999999999999999999s"}),
    "poll 4999.9999999999999ms": spec(registry={"pollInterval": "4999.9999999999999ms"}),
    "poll 86400.0000000000001s": spec(registry={"pollInterval": "86400.0000000000001s"}),
    "poll beyond int64 nanoseconds": spec(registry={"pollInterval": "2562048h"}),
    "gate bounds equal as doubles": spec(
        verify={"metrics": [{"name": "f1", "min": 9007199254740993, "max": 9007199254740992.0}]}
    ),
    "gate bounds beyond int64": spec(verify={"metrics": [{"name": "f1", "min": 10**20, "max": 10**20 + 1}]}),
}


@pytest.mark.parametrize("body", EDGES.values(), ids=EDGES.keys())
def test_pydantic_and_the_server_agree_on_the_edges(server: Server, body: dict[str, Any]) -> None:
    answer = server.create(release(body))
    assert pydantic_accepts(release(body)) == answer.admitted, answer.message


# ---------------------------------------------------------------------------------------------- status


def _stored_release(server: Server, name: str) -> str:
    server.custom.create_namespaced_custom_object(
        GROUP, VERSION, server.namespace, PLURAL, release(spec(), name)
    )
    return name


@pytest.fixture(scope="module")
def status_release(server: Server) -> str:
    """A release stored for real whose status is only ever written in dry runs: it stays empty."""
    return _stored_release(server, "dry-status")


def test_the_server_stores_the_status_the_operator_writes_exactly(server: Server) -> None:
    name = _stored_release(server, "written-status")
    status = dump(full_status())
    patch = status  # the operator's merge patch from no status to this one: the status itself

    rehearsal = server.write_status(name, patch)
    assert rehearsal.stored is not None, rehearsal.message
    assert rehearsal.stored["status"] == status
    assert rehearsal.warnings == []
    assert "status" not in server.get(name)  # a dry run stores nothing

    written = server.write_status(name, patch, dry_run=False)
    assert written.admitted, written.message
    live = server.get(name)
    assert live["status"] == status
    assert live["spec"]["model"] == spec()["model"]


@pytest.mark.parametrize(("body", "message"), BAD_STATUSES, ids=lambda x: str(x)[:50])
def test_a_status_the_model_refuses_is_refused_by_the_server_too(
    server: Server, status_release: str, body: dict[str, Any], message: str
) -> None:
    answer = server.write_status(status_release, body)
    assert answer.code == 422
    assert message in answer.message


def test_unknown_status_fields_are_pruned_with_a_warning(server: Server, status_release: str) -> None:
    status = dump(full_status())
    answer = server.write_status(status_release, {**status, **UNKNOWN_STATUS_FIELD})
    assert answer.stored is not None, answer.message
    assert answer.stored["status"] == status
    assert answer.warnings == ['unknown field "status.kopf"']
