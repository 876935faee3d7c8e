"""OpenSSF model signatures: interoperability with the model-signing library in both directions, each
verdict, and the Signature check inside verify_candidate (what it fetches, Enforce / Warn / Off)."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import model_signing
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from modelrelease.api.models import ModelReleaseSpec
from modelrelease.registry.base import RegistryTarget
from modelrelease.registry.digest import local_digest, local_entries
from modelrelease.registry.mlflow import MlflowRegistry
from modelrelease.verify import signature
from modelrelease.verify.checks import first_blocking, verify_candidate
from unit.test_checks import DIGEST, TAG, FakeRegistry, version

MODEL = {"MLmodel": b"flavors: {}\n", "model.pkl": b"\x80\x04weights", "sub/conda.yaml": b"name: m\n"}
SOURCE = "ConfigMap signers"


@dataclass(frozen=True)
class Key:
    private: Path
    public_pem: str


def make_key(folder: Path, name: str, curve: ec.EllipticCurve | None = None) -> Key:
    key = ec.generate_private_key(curve or ec.SECP256R1())
    private = folder / f"{name}.pem"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    (folder / f"{name}.pub").write_bytes(public)
    return Key(private, public.decode())


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, Key]:
    return {
        "pipeline": make_key(tmp_path, "pipeline"),
        "other": make_key(tmp_path, "other"),
        "p384": make_key(tmp_path, "p384", ec.SECP384R1()),
    }


def make_model(root: Path, files: Mapping[str, bytes] = MODEL) -> Path:
    for path, data in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(data)
    return root


def library_signed_verdict(model: Path, key: Key, hashing: model_signing.hashing.Config) -> signature.Verdict:
    """Sign `model` on disk with the library's own signer and hashing, then verify as the operator does."""
    signer = model_signing.signing.Config().use_elliptic_key_signer(private_key=key.private)
    signer.set_hashing_config(hashing).sign(model, model / "model.sig")
    bundle = (model / "model.sig").read_bytes()
    return signature.verify(bundle, {"ci": key.public_pem}, SOURCE, local_entries(model))


def entries(files: Mapping[str, bytes]) -> list[tuple[str, str]]:
    """The per-file digests a registry streams: no file on disk."""
    return [(path, hashlib.sha256(data).hexdigest()) for path, data in files.items()]


# ------------------------------------------------------------------------------ interoperability


def test_a_bundle_the_library_signs_on_disk_verifies_against_streamed_digests(
    tmp_path: Path, keys: dict[str, Key]
) -> None:
    model = make_model(tmp_path / "model")
    hashing = model_signing.hashing.Config().set_ignored_paths(paths=["model.sig"])
    verdict = library_signed_verdict(model, keys["pipeline"], hashing)
    assert verdict == signature.Verdict(True, "SignatureVerified", f"signed by key ci of {SOURCE} (3 files)")


def test_a_bundle_signed_from_streamed_digests_verifies_with_the_library_on_disk(
    tmp_path: Path, keys: dict[str, Key]
) -> None:
    model = make_model(tmp_path / "model")
    bundle = signature.sign(local_entries(model), signature.signer(keys["p384"].private), "fraud")
    (model / "model.sig").write_bytes(bundle)
    # The library's own high-level verification: raises on any mismatch.
    model_signing.verifying.Config().use_elliptic_key_verifier(
        public_key=keys["p384"].private.with_suffix(".pub")
    ).verify(model, model / "model.sig")
    payload = json.loads(base64.b64decode(json.loads(bundle)["dsseEnvelope"]["payload"]))
    assert payload["predicate"]["serialization"]["ignore_paths"] == ["model.sig", "registered_model_meta"]
    assert sorted(r["name"] for r in payload["predicate"]["resources"]) == sorted(MODEL)


def test_signing_leaves_the_canonical_digest_alone(tmp_path: Path, keys: dict[str, Key]) -> None:
    model = make_model(tmp_path / "model")
    before = local_digest(model)
    (model / "model.sig").write_bytes(
        signature.sign(local_entries(model), signature.signer(keys["pipeline"].private), "m")
    )
    assert local_digest(model) == before
    bundle = (model / "model.sig").read_bytes()
    assert signature.verify(bundle, {"k": keys["pipeline"].public_pem}, SOURCE, local_entries(model)).passed


# ------------------------------------------------------------------------------------- verdicts


@pytest.fixture
def signed(keys: dict[str, Key]) -> bytes:
    return signature.sign(entries(MODEL), signature.signer(keys["pipeline"].private), "fraud")


def test_any_one_trusted_key_is_enough(keys: dict[str, Key], signed: bytes) -> None:
    signers = {"a-old": keys["other"].public_pem, "b-new": keys["pipeline"].public_pem, "note": "not a key"}
    verdict = signature.verify(signed, signers, SOURCE, entries(MODEL))
    assert (verdict.passed, verdict.reason) == (True, f"signed by key b-new of {SOURCE} (3 files)")


def test_an_untrusted_key_is_invalid(keys: dict[str, Key], signed: bytes) -> None:
    verdict = signature.verify(signed, {"other": keys["other"].public_pem}, SOURCE, entries(MODEL))
    assert verdict == signature.Verdict(
        False, "SignatureInvalid", f"model.sig is not signed by any key of {SOURCE}"
    )


@pytest.mark.parametrize(
    ("files", "problem"),
    [
        ({**MODEL, "model.pkl": b"\x80\x04tampered"}, "changed model.pkl"),
        ({k: v for k, v in MODEL.items() if k != "sub/conda.yaml"}, "missing sub/conda.yaml"),
        ({**MODEL, "extra.py": b"import os"}, "unsigned extra.py"),
    ],
    ids=["changed", "missing", "added"],
)
def test_files_that_differ_from_what_was_signed_are_invalid(
    keys: dict[str, Key], signed: bytes, files: dict[str, bytes], problem: str
) -> None:
    verdict = signature.verify(signed, {"ci": keys["pipeline"].public_pem}, SOURCE, entries(files))
    assert verdict == signature.Verdict(
        False, "SignatureInvalid", f"files differ from what key ci of {SOURCE} signed: {problem}"
    )


def test_a_missing_signature_or_signers(keys: dict[str, Key], signed: bytes) -> None:
    found = entries(MODEL)
    assert (
        signature.verify(None, {"ci": keys["pipeline"].public_pem}, SOURCE, found).code == "SignatureMissing"
    )
    assert signature.verify(signed, None, SOURCE, found) == signature.Verdict(
        False, "SignersNotFound", f"{SOURCE} not found"
    )
    rsa_pem = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    for unusable in ({}, {"rsa": rsa_pem, "text": "hello"}):
        verdict = signature.verify(signed, unusable, SOURCE, found)
        assert (verdict.passed, verdict.code) == (False, "SignersNotFound")


@pytest.mark.parametrize("bundle", [b"", b"{not json", b"{}", b'{"mediaType": "x"}', b"\xff\xfe"])
def test_a_file_that_is_no_bundle_is_invalid(keys: dict[str, Key], bundle: bytes) -> None:
    verdict = signature.verify(bundle, {"ci": keys["pipeline"].public_pem}, SOURCE, entries(MODEL))
    assert verdict == signature.Verdict(False, "SignatureInvalid", "model.sig is not a model-signing bundle")


def test_shard_signatures_cannot_be_checked_against_file_digests(
    tmp_path: Path, keys: dict[str, Key]
) -> None:
    model = make_model(tmp_path / "model")
    hashing = model_signing.hashing.Config().use_shard_serialization().set_ignored_paths(paths=["model.sig"])
    verdict = library_signed_verdict(model, keys["pipeline"], hashing)
    assert (verdict.passed, verdict.code) == (False, "SignatureInvalid")
    assert "shards/sha256" in verdict.reason


def test_a_signature_that_ignores_every_file_is_invalid(tmp_path: Path, keys: dict[str, Key]) -> None:
    model = make_model(tmp_path / "model")
    hashing = model_signing.hashing.Config().set_ignored_paths(paths=[*MODEL, "model.sig"])
    verdict = library_signed_verdict(model, keys["pipeline"], hashing)
    assert verdict == signature.Verdict(False, "SignatureInvalid", "model.sig covers no file")


# ---------------------------------------------------------------------- the check in verify_candidate


@dataclass
class Signers:
    data: dict[str, str] | None
    read: list[str] = field(default_factory=list)

    async def __call__(self, name: str) -> Mapping[str, str] | None:
        self.read.append(name)
        return self.data


def spec(mode: str, **verify: Any) -> ModelReleaseSpec:
    return ModelReleaseSpec.model_validate(
        {
            "model": {"name": "fraud", "version": "7"},
            "verify": {"signature": mode, "signersConfigMap": "signers", "digest": "Off", **verify},
        }
    )


async def test_enforce_passes_a_version_signed_by_a_trusted_key(keys: dict[str, Key], signed: bytes) -> None:
    registry = FakeRegistry(entries=tuple(entries(MODEL)), bundle=signed)
    signers = Signers({"ci": keys["pipeline"].public_pem})
    results = await verify_candidate(spec("Enforce"), version("7"), None, registry, signers)
    check = next(r for r in results if r.check == "Signature")
    assert (check.outcome, check.code) == ("Passed", "SignatureVerified")
    assert signers.read == ["signers"]
    assert registry.asked == ["model.sig 7", "entries 7"]


@pytest.mark.parametrize(
    ("signers", "bundle", "code", "asked"),
    [
        (None, b"x", "SignersNotFound", []),
        ({"ci": "PUBLIC"}, None, "SignatureMissing", ["model.sig 7"]),
        ({"other": "OTHER"}, "SIGNED", "SignatureInvalid", ["model.sig 7", "entries 7"]),
    ],
)
async def test_enforce_blocks_and_fetches_only_what_it_needs(
    keys: dict[str, Key],
    signed: bytes,
    signers: dict[str, str] | None,
    bundle: Any,
    code: str,
    asked: list[str],
) -> None:
    pems = {"PUBLIC": keys["pipeline"].public_pem, "OTHER": keys["other"].public_pem}
    trusted = None if signers is None else {name: pems[value] for name, value in signers.items()}
    registry = FakeRegistry(entries=tuple(entries(MODEL)), bundle=signed if bundle == "SIGNED" else bundle)
    results = await verify_candidate(spec("Enforce"), version("7"), None, registry, Signers(trusted))
    blocking = first_blocking(results)
    assert blocking is not None and (blocking.check, blocking.code) == ("Signature", code)
    assert registry.asked == asked


async def test_warn_records_and_does_not_block() -> None:
    registry = FakeRegistry(entries=tuple(entries(MODEL)), bundle=None)
    results = await verify_candidate(spec("Warn"), version("7"), None, registry, Signers({}))
    check = next(r for r in results if r.check == "Signature")
    assert (check.outcome, check.code) == ("Warned", "SignatureMissing")
    assert first_blocking(results) is None


async def test_off_reads_no_configmap_and_no_artifact() -> None:
    registry = FakeRegistry()
    signers = Signers({})
    results = await verify_candidate(spec("Off"), version("7"), None, registry, signers)
    assert next(r for r in results if r.check == "Signature").outcome == "Skipped"
    assert signers.read == [] and registry.asked == []


class CountingTree:
    """An artifact tree over in-memory files that counts how often each file's bytes are downloaded
    (streamed through SHA-256, or read whole)."""

    location = "s3://bucket/model"

    def __init__(self, files: Mapping[str, bytes]) -> None:
        self._files = dict(files)
        self.downloaded: list[str] = []

    async def files(self) -> list[str]:
        return list(self._files)

    async def exists(self, path: str) -> bool:
        return path in self._files

    async def sha256(self, path: str) -> str:
        self.downloaded.append(path)
        return hashlib.sha256(self._files[path]).hexdigest()

    async def read(self, path: str, limit: int) -> bytes:
        self.downloaded.append(path)
        return self._files[path][:limit]


async def test_digest_and_signature_read_each_artifact_byte_once(
    tmp_path: Path, keys: dict[str, Key], signed: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    tree = CountingTree({**MODEL, "model.sig": signed})

    async def fake_tree(self: MlflowRegistry, mv: object) -> CountingTree:
        return tree

    monkeypatch.setattr(MlflowRegistry, "_tree", fake_tree)
    digest = local_digest(make_model(tmp_path / "model"))
    candidate = version("7", tags={TAG: digest})
    assert digest != DIGEST
    async with MlflowRegistry(RegistryTarget("http://127.0.0.1:1")) as registry:
        results = await verify_candidate(
            spec("Enforce", digest="Enforce"),
            candidate,
            None,
            registry,
            Signers({"ci": keys["pipeline"].public_pem}),
        )
        assert await registry.artifact_digest(candidate) == digest
    assert {r.check: r.code for r in results}["Digest"] == "DigestMatched"
    assert {r.check: r.code for r in results}["Signature"] == "SignatureVerified"
    # Once each (the MLmodel read whole, for its schema too), model.sig read to check it, never hashed.
    assert sorted(tree.downloaded) == sorted([*MODEL, "model.sig"])
