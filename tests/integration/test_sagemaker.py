"""The SageMaker Model Registry backend end to end: the real operator process and the real boto3 against
the sandbox's moto server (which answers SageMaker on the S3 endpoint)."""

from __future__ import annotations

import io
import tarfile
import uuid
from typing import Any

import boto3
import pytest
from helpers import Cluster, Operator, eventually, history

from modelrelease.sandbox.stack import SandboxInfo

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

    def register(self, n: int, *, f1: float = 0.9, approved: bool = False, link: str | None = None) -> str:
        key = f"sagemaker/{self.name}/{n}"
        body = tarball({"model/MLmodel": MLMODEL, "model/model.pkl": f"weights {n}".encode()}, link)
        self.s3.put_object(Bucket=self.sandbox.bucket, Key=f"{key}/model.tar.gz", Body=body)
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
        )
        return str(answer["ModelPackageArn"])

    def approve(self, arn: str) -> None:
        self.sm.update_model_package(ModelPackageArn=arn, ModelApprovalStatus="Approved")


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


def serving(cluster: Cluster, ns: str, name: str, version: str) -> bool:
    status = cluster.status(ns, name)
    return status.get("phase") == "Ready" and (status.get("current") or {}).get("version") == version


def test_latest_approved_follows_approvals_and_a_version_below_a_gate_is_blocked(
    sandbox: SandboxInfo, cluster: Cluster, ns: str, operator: Operator
) -> None:
    group = Group(sandbox)
    first = group.register(1, approved=True)
    cluster.apply_release(ns, "sm", spec(group.name))
    eventually("version 1 serves", lambda: serving(cluster, ns, "sm", "1"))
    env = env_of(cluster, ns, "sm")
    assert env["MODEL_URI"] == f"s3://{sandbox.bucket}/sagemaker/{group.name}/1/model.tar.gz"
    assert env["MODEL_PACKAGE_ARN"] == first and "MLFLOW_TRACKING_URI" not in env
    assert cluster.status(ns, "sm")["current"]["modelUri"] == first

    second = group.register(2)
    group.approve(second)
    eventually("version 2 serves", lambda: serving(cluster, ns, "sm", "2"))

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
