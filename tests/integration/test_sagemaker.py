"""The SageMaker Model Registry backend end to end: the real operator process and the real boto3 against
the sandbox's moto server (which answers SageMaker on the S3 endpoint)."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import tarfile
import uuid
from functools import partial
from pathlib import Path
from typing import Any

import boto3
import pytest
from aiohttp import ClientSession, web

from integration.helpers import Cluster, Models, Operator, RegistryProxy, eventually, history
from integration.test_integrity import IRIS_ROWS, serving
from integration.test_real_pods import START_TIMEOUT, answer, pods_of
from modelrelease.registry.digest import local_digest
from modelrelease.registry.sagemaker import CONNECT_TIMEOUT_S, MAX_ATTEMPTS, READ_TIMEOUT_S
from modelrelease.sandbox.kubelet import RUN_ANNOTATION, RUN_AS_PROCESS
from modelrelease.sandbox.stack import SandboxInfo, free_port

pytestmark = pytest.mark.slow

MLMODEL = b"flavors:\n  python_function: {loader_module: mlflow.sklearn}\n"


def client(sandbox: SandboxInfo, service: str) -> Any:
    return boto3.session.Session().client(
        service,
        endpoint_url=sandbox.s3_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def tarball(members: dict[str, bytes], link: str | None = None) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        if link is not None:
            info = tarfile.TarInfo("model/evil")
            info.type, info.linkname = tarfile.SYMTYPE, link
            tar.addfile(info)
    return buffer.getvalue()


class Group:
    """A model package group in moto, with versions registered as a pipeline would."""

    def __init__(self, sandbox: SandboxInfo) -> None:
        self.sandbox = sandbox
        self.name = f"g-{uuid.uuid4().hex[:8]}"
        self.sm = client(sandbox, "sagemaker")
        self.s3 = client(sandbox, "s3")
        self.sm.create_model_package_group(ModelPackageGroupName=self.name)

    def key(self, n: int) -> str:
        return f"sagemaker/{self.name}/{n}"

    def upload(
        self, n: int, weights: bytes, link: str | None = None, members: dict[str, bytes] | None = None
    ) -> None:
        body = tarball(members or {"model/MLmodel": MLMODEL, "model/model.pkl": weights}, link)
        self.s3.put_object(Bucket=self.sandbox.bucket, Key=f"{self.key(n)}/model.tar.gz", Body=body)

    def register(
        self,
        n: int,
        *,
        f1: float = 0.9,
        approved: bool = False,
        link: str | None = None,
        properties: dict[str, str] | None = None,
        members: dict[str, bytes] | None = None,
    ) -> str:
        """Version n: a model.tar.gz of `members` (default: a stand-in MLmodel and weights in model/)."""
        key = self.key(n)
        self.upload(n, f"weights {n}".encode(), link, members)
        stats = b'{"binary_classification_metrics": {"f1": {"value": %f}}}' % f1
        self.s3.put_object(Bucket=self.sandbox.bucket, Key=f"{key}/statistics.json", Body=stats)
        answer = self.sm.create_model_package(
            ModelPackageGroupName=self.name,
            ModelApprovalStatus="Approved" if approved else "PendingManualApproval",
            InferenceSpecification={
                "Containers": [
                    {"Image": "serve", "ModelDataUrl": f"s3://{self.sandbox.bucket}/{key}/model.tar.gz"}
                ],
                "SupportedContentTypes": ["application/json"],
                "SupportedResponseMIMETypes": ["application/json"],
            },
            ModelMetrics={
                "ModelQuality": {
                    "Statistics": {
                        "ContentType": "application/json",
                        "S3Uri": f"s3://{self.sandbox.bucket}/{key}/statistics.json",
                    }
                }
            },
            **({"CustomerMetadataProperties": properties} if properties else {}),
        )
        return str(answer["ModelPackageArn"])

    def approve(self, arn: str) -> None:
        """Approve as SageMaker would: its properties (the digest stamp) stay, which moto's update resets
        unless they are sent back."""
        properties = self.sm.describe_model_package(ModelPackageName=arn).get("CustomerMetadataProperties")
        self.sm.update_model_package(
            ModelPackageArn=arn,
            ModelApprovalStatus="Approved",
            ApprovalDescription="approved by the test",
            **({"CustomerMetadataProperties": properties} if properties else {}),
        )


def spec(group: str, **model: Any) -> dict[str, Any]:
    return {
        "model": {"name": group, **(model or {"latestApproved": True})},
        "registry": {"type": "sagemaker", "pollInterval": "5s"},
        "verify": {"digest": "Off", "metrics": [{"name": "f1", "min": 0.8}]},
    }


def env_of(cluster: Cluster, ns: str, name: str) -> dict[str, str]:
    deployment = cluster.deployment(ns, name) or {}
    containers = deployment.get("spec", {}).get("template", {}).get("spec", {}).get("containers") or [{}]
    return {e["name"]: e.get("value", "") for e in containers[0].get("env") or []}


def serving_release(cluster: Cluster, ns: str, version: str, name: str = "sm") -> bool:
    status = cluster.status(ns, name)
    return status.get("phase") == "Ready" and (status.get("current") or {}).get("version") == version


def test_latest_approved_follows_approvals_and_a_version_below_a_gate_is_blocked(
    sandbox: SandboxInfo, cluster: Cluster, ns: str, operator: Operator
) -> None:
    group = Group(sandbox)
    first = group.register(1, approved=True)
    cluster.apply_release(ns, "sm", spec(group.name))
    eventually("version 1 serves", lambda: serving_release(cluster, ns, "1"))
    env = env_of(cluster, ns, "sm")
    assert env["MODEL_URI"] == f"s3://{sandbox.bucket}/sagemaker/{group.name}/1/model.tar.gz"
    assert env["MODEL_PACKAGE_ARN"] == first and "MLFLOW_TRACKING_URI" not in env
    assert cluster.status(ns, "sm")["current"]["modelUri"] == first
    # SageMaker's requests are in the operator's registry request metric, like MLflow's.
    described = operator.metric(
        "modelrelease_registry_request_duration_seconds_count", operation="sagemaker.describe_package"
    )
    assert described >= 1

    second = group.register(2)
    group.approve(second)
    eventually("version 2 serves", lambda: serving_release(cluster, ns, "2"))

    third = group.register(3, f1=0.5)
    group.approve(third)
    eventually("version 3 is blocked", lambda: ("3", "Blocked") in history(cluster.status(ns, "sm")))
    assert cluster.status(ns, "sm")["current"]["version"] == "2"
    assert env_of(cluster, ns, "sm")["MODEL_PACKAGE_ARN"] == second


def test_a_hostile_archive_is_blocked(
    sandbox: SandboxInfo, cluster: Cluster, ns: str, operator: Operator
) -> None:
    group = Group(sandbox)
    group.register(1, approved=True, link="/etc/passwd")
    body = spec(group.name, version="1")
    body["verify"] = {"digest": "Enforce", "schema": "Off"}
    body["model"]["digest"] = "sha256:" + "0" * 64
    cluster.apply_release(ns, "sm", body)
    eventually("version 1 is blocked", lambda: ("1", "Blocked") in history(cluster.status(ns, "sm")))
    verification = {v["check"]: v for v in cluster.status(ns, "sm").get("verification") or []}
    assert "is a link" in verification["Digest"]["reason"]
    assert cluster.deployment(ns, "sm") is None


@pytest.mark.parametrize("case", ["unknown-group", "unknown-version", "none-approved"])
def test_what_does_not_resolve_is_resolved_false_and_deploys_nothing(
    sandbox: SandboxInfo, cluster: Cluster, ns: str, operator: Operator, case: str
) -> None:
    group = Group(sandbox)
    group.register(1)
    name = {"unknown-group": "no-such-group", "unknown-version": group.name, "none-approved": group.name}[
        case
    ]
    model = {"version": "9"} if case == "unknown-version" else {"latestApproved": True}
    cluster.apply_release(ns, "sm", spec(name, **model))
    resolved = eventually(
        "Resolved=False",
        lambda: (c := cluster.condition(ns, "sm", "Resolved")).get("status") == "False" and c,
    )
    assert resolved["reason"] in ("ModelNotFound", "VersionNotFound", "NoApprovedVersion"), resolved
    assert "\n" not in resolved["message"]
    assert cluster.deployment(ns, "sm") is None


# ------------------------------------------------------------------------------ modelrelease digest / stamp

CLI = Path(sys.executable).with_name("modelrelease")
DIGEST_TAG = "modelrelease.io/sha256"


def cli(sandbox: SandboxInfo, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """The console script as a user runs it: the sandbox's AWS env, boto3's endpoint override to moto."""
    return subprocess.run(
        [str(CLI), *args],
        env={**os.environ, **sandbox.env, "AWS_ENDPOINT_URL": sandbox.s3_url, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def stamp(sandbox: SandboxInfo, group: str, version: str) -> str:
    stamped = cli(sandbox, "stamp", "--registry", "sagemaker", group, version)
    assert stamped.returncode == 0, stamped.stderr
    return stamped.stdout.strip().rsplit("=", 1)[1]


def test_digest_and_stamp_name_a_package_by_group_and_version_or_by_arn(sandbox: SandboxInfo) -> None:
    group = Group(sandbox)
    arn = group.register(1, approved=True, properties={"team": "fraud"})
    group.approve(arn)  # with an ApprovalDescription, which moto would reset unless stamp sends it back

    by_name = cli(sandbox, "digest", "--registry", "sagemaker", group.name, "1")
    by_arn = cli(sandbox, "digest", "--registry", "sagemaker", arn)
    assert by_name.returncode == 0 and by_arn.returncode == 0, (by_name.stderr, by_arn.stderr)
    digest = by_name.stdout.strip()
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", digest) and by_arn.stdout.strip() == digest

    stamped = cli(sandbox, "stamp", "--registry", "sagemaker", group.name, "1")
    assert stamped.returncode == 0, stamped.stderr
    assert stamped.stdout == f"{arn}: {DIGEST_TAG}={digest}\n"
    package = group.sm.describe_model_package(ModelPackageName=arn)
    assert package["CustomerMetadataProperties"] == {"team": "fraud", DIGEST_TAG: digest}
    assert package["ModelApprovalStatus"] == "Approved"
    assert package["ApprovalDescription"] == "approved by the test"


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["digest", "--registry", "sagemaker", "no-such-group", "1"], {}, "no-such-group: not found"),
        (["stamp", "--registry", "sagemaker", "{group}", "7"], {}, "has no version 7"),
        (["stamp", "--registry", "sagemaker", "{group}", "one"], {}, "positive integer, not 'one'"),
        (["digest", "--registry", "sagemaker", "{group}"], {}, "GROUP VERSION, or its ARN"),
        (
            ["stamp", "--registry", "sagemaker", "{group}", "1"],
            {"AWS_REGION": "", "AWS_DEFAULT_REGION": ""},
            "no AWS region",
        ),
        (["stamp", "--registry", "sagemaker", "--region", "Mars", "{group}", "1"], {}, "not an AWS region"),
        (
            ["digest", "--registry", "sagemaker", "{group}", "1"],
            {"AWS_ENDPOINT_URL": "http://127.0.0.1:{port}"},
            "unavailable",
        ),
        (["digest", "models:/x/1", "1"], {}, "MLflow: name the version in MODEL_URI"),
    ],
)
def test_digest_and_stamp_fail_in_one_line(
    sandbox: SandboxInfo, args: list[str], env: dict[str, str], message: str
) -> None:
    group = Group(sandbox)
    group.register(1, approved=True)
    port = str(free_port())
    argv = [a.format(group=group.name) for a in args]
    failed = cli(sandbox, *argv, **{k: v.format(port=port) for k, v in env.items()})
    assert failed.returncode == 1 and failed.stdout == "", failed
    assert failed.stderr.startswith(f"modelrelease {argv[0]}: ") and message in failed.stderr, failed.stderr
    assert failed.stderr.count("\n") == 1 and "Traceback" not in failed.stderr


# ------------------------------------------------------------------------------ integrity


def test_a_tarball_altered_after_stamping_is_blocked_and_the_previous_version_keeps_serving(
    sandbox: SandboxInfo, cluster: Cluster, ns: str, operator: Operator
) -> None:
    group = Group(sandbox)
    first = group.register(1)
    stamped = stamp(sandbox, group.name, "1")
    group.approve(first)
    body = spec(group.name)
    body["verify"]["digest"] = "Enforce"
    cluster.apply_release(ns, "sm", body)
    eventually("version 1 serves", lambda: serving_release(cluster, ns, "1"))
    assert cluster.status(ns, "sm")["current"]["digest"] == stamped  # the CLI and the operator agree
    before = cluster.deployment(ns, "sm")
    assert before is not None

    second = group.register(2)
    stamp(sandbox, group.name, "2")
    group.upload(2, b"weights 2, altered after stamping")
    group.approve(second)
    eventually("version 2 is blocked", lambda: ("2", "Blocked") in history(cluster.status(ns, "sm")))
    verified = cluster.condition(ns, "sm", "Verified")
    assert (verified["status"], verified["reason"]) == ("False", "DigestMismatch"), verified
    status = cluster.status(ns, "sm")
    assert status["phase"] == "Blocked" and status["current"]["version"] == "1"
    checks = {v["check"]: v for v in status["verification"]}
    assert checks["Digest"]["outcome"] == "Failed"
    after = cluster.deployment(ns, "sm")
    assert after is not None and after["spec"]["template"] == before["spec"]["template"]
    assert env_of(cluster, ns, "sm")["MODEL_PACKAGE_ARN"] == first


# ------------------------------------------------------------------------------ SageMaker outage

HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
     "transfer-encoding", "upgrade"}
)  # fmt: skip
RETRY_BOUND = 5 + MAX_ATTEMPTS * (CONNECT_TIMEOUT_S + READ_TIMEOUT_S) + 30
"""Seconds from an outage to Resolved=False: one poll interval (5s), every boto3 attempt timing out, slack."""


class AwsProxy(RegistryProxy):
    """A RegistryProxy in front of moto that passes every request header (Host, X-Amz-Target, X-Amz-Date,
    the SigV4 Authorization: moto does not verify signatures by default) and the body through unchanged,
    and the answer's headers and raw bytes back: what SageMaker's JSON protocol needs."""

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.counts[request.path] += 1
        if self._session is None:
            self._session = ClientSession(auto_decompress=False, skip_auto_headers=("User-Agent", "Accept"))
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        async with self._session.request(
            request.method, self.upstream + request.path_qs, data=await request.read(), headers=headers
        ) as answer:
            back = {
                k: v for k, v in answer.headers.items() if k.lower() not in HOP_BY_HOP | {"content-length"}
            }
            return web.Response(status=answer.status, body=await answer.read(), headers=back)


def untouched(cluster: Cluster, ns: str, before: dict[str, Any]) -> bool:
    """Fails the test the moment the Deployment differs from `before` (a probe of every wait)."""
    now = cluster.deployment(ns, "sm") or {}
    for field in ("resourceVersion", "generation"):
        assert now.get("metadata", {}).get(field) == before["metadata"][field], (field, now.get("metadata"))
    assert env_of(cluster, ns, "sm")["MODEL_URI"].endswith("/1/model.tar.gz")
    return True


def test_the_sagemaker_endpoint_down_leaves_the_deployment_untouched_and_recovers_unaided(
    sandbox: SandboxInfo, cluster: Cluster, ns: str, operator: Operator
) -> None:
    group = Group(sandbox)
    group.register(1, approved=True)
    proxy = AwsProxy(sandbox.s3_url)
    proxy.up()
    operator.stop()  # a dedicated operator whose SageMaker calls (not S3's) cross the proxy
    dedicated = Operator(
        sandbox,
        sandbox.dir / "logs" / "operator-sagemaker-outage.log",
        extra_env={
            "MODELRELEASE_ALLOWED_TRACKING_URIS": operator.env["MODELRELEASE_ALLOWED_TRACKING_URIS"],
            "AWS_ENDPOINT_URL": sandbox.s3_url,
            "AWS_ENDPOINT_URL_SAGEMAKER": proxy.url,
        },
    )
    try:
        dedicated.start()
        cluster.apply_release(ns, "sm", spec(group.name))
        eventually("version 1 serves", lambda: serving_release(cluster, ns, "1"))
        assert proxy.counts["/"] > 0  # the SageMaker calls did go through the proxy
        before = cluster.deployment(ns, "sm")
        assert before is not None

        proxy.down()
        group.approve(group.register(2))  # the operator cannot see this while SageMaker is down
        requests = partial(dedicated.metric, "modelrelease_resolution_cache_requests_total")

        def unavailable() -> dict[str, Any] | None:
            untouched(cluster, ns, before)
            condition = cluster.condition(ns, "sm", "Resolved")
            return condition if condition.get("status") == "False" else None

        resolved = eventually("Resolved=False", unavailable, timeout=RETRY_BOUND)
        assert resolved["reason"] == "RegistryUnavailable", resolved
        assert "unavailable" in resolved["message"] and "\n" not in resolved["message"]
        degraded = cluster.condition(ns, "sm", "Degraded")
        assert (degraded["status"], degraded["reason"]) == ("True", "RegistryUnavailable"), degraded
        assert "version 1 keeps serving" in degraded["message"]
        # Two more polls fail, and the Deployment stays as it was throughout.
        sent = requests()
        eventually(
            "two more polls during the outage",
            lambda: untouched(cluster, ns, before) and requests() >= sent + 2,
            timeout=2 * RETRY_BOUND,
        )
        assert cluster.status(ns, "sm")["phase"] == "Degraded"

        proxy.up()
        eventually(
            "version 2 serves once SageMaker is back",
            lambda: serving_release(cluster, ns, "2"),
            timeout=RETRY_BOUND,
        )
        assert cluster.condition(ns, "sm", "Resolved")["status"] == "True"
        assert history(cluster.status(ns, "sm")) == [("1", "Succeeded"), ("2", "Succeeded")]
    finally:
        dedicated.stop()
        proxy.close()
        operator.start()


# ------------------------------------------------------------------------------ modelrelease serve


@pytest.fixture(scope="module")
def iris(models: Models, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real MLflow model (the trained iris estimator, with its signature) saved to a local folder."""
    import mlflow.sklearn

    folder = tmp_path_factory.mktemp("iris") / "model"
    mlflow.sklearn.save_model(models.estimator, str(folder), signature=models.signature)
    return folder


def archived(folder: Path, top: str) -> dict[str, bytes]:
    """The folder's files as tarball members, under the top-level folder `top` ("": at the archive root)."""
    prefix = f"{top}/" if top else ""
    return {
        f"{prefix}{p.relative_to(folder)}": p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


@pytest.mark.parametrize("top", ["model", ""])
def test_serve_fetches_the_tarball_and_answers_with_the_verified_digest(
    sandbox: SandboxInfo, iris: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, top: str
) -> None:
    group = Group(sandbox)
    group.register(1, approved=True, members=archived(iris, top))
    digest = stamp(sandbox, group.name, "1")
    assert digest == local_digest(iris)  # the archive's tree is the model folder's, wherever it sits
    uri = f"s3://{sandbox.bucket}/{group.key(1)}/model.tar.gz"
    monkeypatch.setenv("AWS_ENDPOINT_URL", sandbox.s3_url)  # boto3's own override, as in a pod's env
    with serving(sandbox, tmp_path, uri, digest) as served:
        eventually("/ping to answer 200", lambda: (served.get("/ping") or (0,))[0] == 200, timeout=180)
        status, body = served.get("/invocations", IRIS_ROWS) or (0, b"")
        assert status == 200, body
        assert json.loads(body) == {"predictions": [0, 2]}
    local = tmp_path / "model" / "model" / top if top else tmp_path / "model" / "model"
    first = served.log.read_text().splitlines()[0]
    assert first == f"modelrelease serve: {uri} downloaded to {local}, digest {digest} (matches)"
    assert not (tmp_path / "model" / "model.tar.gz").exists()  # the tarball is not kept beside the model
    assert not served.termination_log.exists()


@pytest.mark.parametrize("case", ["altered", "hostile", "missing"])
def test_serve_refuses_an_altered_hostile_or_missing_tarball_in_one_line(
    sandbox: SandboxInfo, iris: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    group = Group(sandbox)
    group.register(
        1, approved=True, members=archived(iris, "model"), link="/etc/passwd" if case == "hostile" else None
    )
    verified = local_digest(iris)
    if case == "altered":  # after the operator verified it: what a pod restart would load
        group.upload(1, b"", members={**archived(iris, "model"), "model/model.pkl": b"altered"})
    uri = f"s3://{sandbox.bucket}/{group.key(1)}/{'gone.tar.gz' if case == 'missing' else 'model.tar.gz'}"
    monkeypatch.setenv("AWS_ENDPOINT_URL", sandbox.s3_url)
    with serving(sandbox, tmp_path, uri, verified) as served:
        assert served.process is not None
        assert served.process.wait(timeout=180) == 1
    line = served.termination_log.read_text()
    expected = {
        "altered": rf"{re.escape(uri)} has digest sha256:[0-9a-f]{{64}}, expected {verified} "
        r"\(MODEL_DIGEST\): refusing to serve it",
        "hostile": rf"archive {re.escape(uri)}: 'model/evil' is a link",
        "missing": rf"cannot download {re.escape(uri)}: .*Not Found",
    }[case]
    assert re.fullmatch(rf"modelrelease serve: {expected}\n", line), line
    assert served.log.read_text() == line  # the same one line on stderr, nothing else
    assert not (tmp_path / "evil").exists() and not (tmp_path / "model" / "model" / "model" / "evil").exists()


def test_a_sagemaker_release_really_serves_in_a_pod_the_sandbox_runs(
    sandbox: SandboxInfo, cluster: Cluster, ns: str, operator: Operator, iris: Path
) -> None:
    group = Group(sandbox)
    arn = group.register(1, members=archived(iris, "model"))
    digest = stamp(sandbox, group.name, "1")
    group.approve(arn)
    body = spec(group.name)
    body["verify"]["digest"] = "Enforce"
    body["rollout"] = {"progressDeadlineSeconds": int(START_TIMEOUT)}
    aws = {k: v for k, v in sandbox.env.items() if k.startswith("AWS_")}  # IRSA's part on a real cluster
    body["serving"] = {
        "template": {"metadata": {"annotations": {RUN_ANNOTATION: RUN_AS_PROCESS}}},
        "env": [{"name": k, "value": v} for k, v in {**aws, "AWS_ENDPOINT_URL": sandbox.s3_url}.items()],
    }
    cluster.apply_release(ns, "sm", body)
    eventually(
        "version 1 served by a real pod", lambda: serving_release(cluster, ns, "1"), timeout=START_TIMEOUT
    )
    assert cluster.status(ns, "sm")["current"]["digest"] == digest
    (pod,) = pods_of(cluster, ns, "1")
    ip = pod["status"]["podIP"]
    assert answer(f"http://{ip}:8080/ping")[0] == 200
    status, predicted = answer(f"http://{ip}:8080/invocations", IRIS_ROWS)
    assert status == 200 and predicted["predictions"] == [0, 2]
    assert all(c["ready"] and c["restartCount"] == 0 for c in pod["status"]["containerStatuses"])
