"""The pure parts of the SageMaker backend: hostile archive members (also as `modelrelease serve` unpacks),
the tree's root, metrics from a model-quality report, latestApproved selection, the pinned ARN."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from modelrelease.registry.base import RegistryError
from modelrelease.registry.digest import local_digest, manifest_digest
from modelrelease.registry.factory import parse_pinned
from modelrelease.registry.sagemaker import (
    latest_approved,
    model_version,
    numeric_properties,
    quality_metrics,
    scan_archive,
)
from modelrelease.serve import Refused, unpack_archive

ARN = "arn:aws:sagemaker:us-east-1:123456789012:model-package/fraud/3"


def archive(members: list[tarfile.TarInfo], data: dict[str, bytes]) -> io.BytesIO:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for member in members:
            payload = data.get(member.name)
            if payload is not None:
                member.size = len(payload)
            tar.addfile(member, io.BytesIO(payload) if payload is not None else None)
    buffer.seek(0)
    return buffer


def file(name: str) -> tarfile.TarInfo:
    return tarfile.TarInfo(name)


def special(name: str, kind: bytes, link: str = "") -> tarfile.TarInfo:
    member = tarfile.TarInfo(name)
    member.type = kind
    member.linkname = link
    return member


@pytest.mark.parametrize(
    ("member", "words"),
    [
        (file("/etc/passwd"), "absolute"),
        (file("model/../../evil"), "leaves the archive"),
        (special("model/link", tarfile.SYMTYPE, "/etc/passwd"), "link"),
        (special("model/hard", tarfile.LNKTYPE, "model/MLmodel"), "link"),
        (special("model/dev", tarfile.CHRTYPE), "device"),
        (special("model/fifo", tarfile.FIFOTYPE), "device"),
    ],
)
def test_a_hostile_member_refuses_the_archive(member: tarfile.TarInfo, words: str) -> None:
    stream = archive([file("model/MLmodel"), member], {"model/MLmodel": b"a: 1\n", member.name: b"x"})
    with pytest.raises(RegistryError) as raised:
        scan_archive(stream, "s3://b/model.tar.gz")
    assert raised.value.reason == "UnsafeArchive" and words in str(raised.value)


@pytest.mark.parametrize(
    ("member", "words"),
    [
        (file("/tmp/evil"), "absolute"),
        (file("model/../../evil"), "leaves the archive"),
        (special("model/link", tarfile.SYMTYPE, "/etc/passwd"), "link"),
        (special("model/dev", tarfile.CHRTYPE), "device"),
    ],
)
def test_serve_unpacks_under_the_same_rules_and_writes_nothing_outside(
    member: tarfile.TarInfo, words: str, tmp_path: Path
) -> None:
    tarball = tmp_path / "in" / "model.tar.gz"
    tarball.parent.mkdir()
    tarball.write_bytes(
        archive([file("model/MLmodel"), member], {"model/MLmodel": b"a: 1\n", member.name: b"x"}).read()
    )
    with pytest.raises(Refused, match=words):
        unpack_archive(tarball, tmp_path / "out" / "model", "s3://b/model.tar.gz")
    written = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if not p.is_dir())
    assert written == ["in/model.tar.gz", "out/model/model/MLmodel"]  # what came before the hostile member


def test_serve_unpacks_to_the_tree_the_operator_hashed(tmp_path: Path) -> None:
    data = {"model/MLmodel": b"flavors: {}\n", "model/sub/weights.bin": b"\0" * 3000}
    tarball = tmp_path / "model.tar.gz"
    tarball.write_bytes(archive([file(n) for n in data], data).read())
    root = unpack_archive(tarball, tmp_path / "out", "s3://b/m.tar.gz")
    assert root == tmp_path / "out" / "model"
    facts = scan_archive(archive([file(n) for n in data], data), "s3://b/m.tar.gz")
    assert local_digest(root) == manifest_digest(facts.entries)


def test_the_digest_of_an_archive_is_the_tree_digest_of_its_single_top_folder(tmp_path: object) -> None:
    data = {"model/MLmodel": b"flavors: {}\n", "model/sub/weights.bin": b"\0" * 3000, "model/model.sig": b"s"}
    facts = scan_archive(archive([file(n) for n in data], data), "s3://b/m.tar.gz")
    assert [p for p, _ in facts.entries] == ["MLmodel", "model.sig", "sub/weights.bin"]
    assert facts.mlmodel == b"flavors: {}\n"
    root = tmp_path / "model"  # type: ignore[operator]
    for name, payload in data.items():
        path = root.parent / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(payload)
    assert manifest_digest(facts.entries) == local_digest(root)


def test_an_archive_rooted_at_the_top_keeps_its_paths() -> None:
    data = {"MLmodel": b"a: 1\n", "model.pkl": b"p"}
    facts = scan_archive(archive([file(n) for n in data], data), "s3://b/m.tar.gz")
    assert [p for p, _ in facts.entries] == ["MLmodel", "model.pkl"]


def test_bytes_that_are_no_archive_are_a_registry_error() -> None:
    with pytest.raises(RegistryError) as raised:
        scan_archive(io.BytesIO(b"not a tarball"), "s3://b/m.tar.gz")
    assert raised.value.reason == "InvalidArchive"


def test_metrics_are_the_leaf_keys_of_a_quality_report_and_numeric_properties() -> None:
    report = {
        "binary_classification_metrics": {
            "f1": {"value": 0.91, "standard_deviation": 0.01},
            "auc": {"value": "0.8"},
            "confusion_matrix": {"0": {"0": 5}},
        },
        "version": 1,
    }
    assert quality_metrics(report) == {"f1": 0.91, "auc": 0.8}
    assert numeric_properties({"f1": "0.5", "team": "fraud", "n": "nan"}) == {"f1": 0.5}


def test_latest_approved_is_the_highest_approved_version() -> None:
    summaries = [
        {"ModelPackageVersion": 1, "ModelApprovalStatus": "Approved"},
        {"ModelPackageVersion": 3, "ModelApprovalStatus": "PendingManualApproval"},
        {"ModelPackageVersion": 2, "ModelApprovalStatus": "Approved"},
        {"ModelPackageVersion": 4, "ModelApprovalStatus": "Rejected"},
    ]
    chosen = latest_approved(summaries)
    assert chosen is not None and chosen["ModelPackageVersion"] == 2
    assert latest_approved(summaries[1:2]) is None


def test_a_package_is_a_version_pinned_by_its_arn_serving_its_model_data() -> None:
    package = {
        "ModelPackageGroupName": "fraud",
        "ModelPackageVersion": 3,
        "ModelPackageArn": ARN,
        "ModelPackageStatus": "Completed",
        "ModelApprovalStatus": "Approved",
        "InferenceSpecification": {"Containers": [{"Image": "i", "ModelDataUrl": "s3://b/3/model.tar.gz"}]},
        "CustomerMetadataProperties": {"modelrelease.io/sha256": "sha256:" + "a" * 64},
    }
    mv = model_version(package)
    assert (mv.name, mv.version, mv.status, mv.uri) == ("fraud", "3", "READY", ARN)
    assert mv.model_env() == {"MODEL_URI": "s3://b/3/model.tar.gz", "MODEL_PACKAGE_ARN": ARN}
    assert model_version({**package, "ModelApprovalStatus": "Rejected"}).status == "Rejected"
    assert parse_pinned(ARN) == ("fraud", "3")
    assert parse_pinned("models:/fraud/3") == ("fraud", "3")
    with pytest.raises(ValueError):
        parse_pinned("s3://b/3/model.tar.gz")
