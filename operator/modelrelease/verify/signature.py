"""OpenSSF model signatures: signing and verifying ``model.sig`` against digests computed while streaming.

A signature is what the ``model-signing`` library (sigstore/model-transparency) writes with an elliptic
curve key: a Sigstore bundle holding a DSSE envelope over an in-toto statement that lists each file of
the model with its SHA-256 (the library's default ``files`` serialization). It sits at the artifact
root as ``model.sig`` and does not cover itself.

``model_signing.verifying.Config.verify(model_path, signature_path)`` re-hashes a model on local disk.
The operator never downloads a model, so it uses the two halves of that call separately: the library's
key verifier checks the envelope and expands the payload to the signed manifest, and the manifest of
the candidate is built from the per-file SHA-256s already streamed for the canonical digest
(:mod:`modelrelease.registry.digest`). Every artifact byte is read once for both checks, and nothing
is written to disk but the (small) bundle and keys, in a temporary folder the library reads them from.
Signing builds the same manifest from the same digests and hands it to the library's key signer.

These halves live in the library's private modules (``_signing``), hence the exact version pin. Only
``files`` manifests with ``sha256`` can be compared with the operator's digests: a bundle made with
shards or BLAKE hashes is refused with a reason that says so.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import cast

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from model_signing import manifest as ms_manifest
from model_signing._hashing.hashing import Digest
from model_signing._signing import sign_ec_key, sign_sigstore_pb
from model_signing._signing.signing import Payload

from modelrelease.registry.digest import SIGNATURE_FILE, UNHASHED_FILES, hashed

MAX_LISTED_FILES = 5
"""Files named in a mismatch reason; the rest are counted."""

_SIGNED_SERIALIZATION = {
    "method": "files",
    "hash_type": "sha256",
    "allow_symlinks": False,
    "ignore_paths": sorted(UNHASHED_FILES),
}
# What a malformed bundle, a key that did not sign it, or a payload that is no manifest raise.
_UNUSABLE = (ValueError, KeyError, TypeError, AttributeError, InvalidSignature, UnsupportedAlgorithm)


@dataclass(frozen=True)
class Verdict:
    passed: bool
    code: str
    """SignatureVerified, SignatureMissing, SignatureInvalid or SignersNotFound."""
    reason: str


def _manifest(model_name: str, files: Mapping[str, str]) -> ms_manifest.Manifest:
    serialization = ms_manifest.SerializationType.from_args(_SIGNED_SERIALIZATION)
    items = [
        ms_manifest.FileManifestItem(
            path=PurePosixPath(path), digest=Digest("sha256", bytes.fromhex(hexdigest))
        )
        for path, hexdigest in files.items()
    ]
    return ms_manifest.Manifest(model_name, items, serialization)


def signer(private_key: Path) -> sign_ec_key.Signer:
    """The library's signer for a PEM EC private key (P-256, P-384 or P-521, unencrypted); ValueError
    with a one-line reason when the file holds no such key."""
    try:
        return sign_ec_key.Signer(private_key)
    except OSError as exc:
        raise ValueError(f"cannot read {private_key}: {exc.strerror}") from None
    except _UNUSABLE:
        # The library's own messages differ by cause (RSA keys fail on a missing attribute).
        raise ValueError(
            f"{private_key} is not an unencrypted PEM EC private key (P-256, P-384 or P-521)"
        ) from None


def sign(entries: Iterable[tuple[str, str]], key: sign_ec_key.Signer, model_name: str) -> bytes:
    """The ``model.sig`` bundle over these ``(path, sha256 hex)`` entries."""
    payload = Payload(_manifest(model_name, {p: h for p, h in entries if hashed(p)}))
    signature = cast(sign_sigstore_pb.Signature, key.sign(payload))
    return str(signature.bundle.to_json()).encode("utf-8")


def _listed(label: str, paths: set[str]) -> str:
    shown = ", ".join(sorted(paths)[:MAX_LISTED_FILES])
    more = len(paths) - MAX_LISTED_FILES
    return f"{label} {shown}" + (f" and {more} more" if more > 0 else "")


def _compare(signed: ms_manifest.Manifest, entries: Iterable[tuple[str, str]], signer: str) -> Verdict:
    serialization = signed.serialization_type
    method, hash_type = serialization.get("method"), serialization.get("hash_type")
    if method != "files" or hash_type != "sha256":
        return Verdict(
            False,
            "SignatureInvalid",
            f"model.sig uses {method}/{hash_type} hashing; only files/sha256 signatures (the model-signing "
            "default) can be checked against the artifact digests",
        )
    expected = {str(rd.identifier): rd.digest.digest_hex for rd in signed.resource_descriptors()}
    if not expected:
        return Verdict(False, "SignatureInvalid", "model.sig covers no file")
    ignored = [PurePosixPath(p) for p in serialization.get("ignore_paths", ())]
    actual = {
        path: hexdigest
        for path, hexdigest in entries
        if hashed(path) and not any(PurePosixPath(path).is_relative_to(p) for p in ignored)
    }
    if _manifest(signed.model_name, actual) == signed:
        return Verdict(True, "SignatureVerified", f"signed by {signer} ({len(expected)} files)")
    problems = [
        _listed(label, paths)
        for label, paths in (
            ("changed", {p for p in actual.keys() & expected.keys() if actual[p] != expected[p]}),
            ("missing", expected.keys() - actual.keys()),
            ("unsigned", actual.keys() - expected.keys()),
        )
        if paths
    ]
    return Verdict(
        False, "SignatureInvalid", f"files differ from what {signer} signed: {'; '.join(problems)}"
    )


def verify(
    bundle: bytes | None, signers: Mapping[str, str] | None, source: str, entries: Iterable[tuple[str, str]]
) -> Verdict:
    """Whether ``bundle`` (model.sig, None when absent) was made by one of ``signers`` (name → PEM public
    key, None when ``source``, the ConfigMap, does not exist) over exactly these ``(path, sha256 hex)``
    entries. Values that are not EC public keys are passed over."""
    if signers is None:
        return Verdict(False, "SignersNotFound", f"{source} not found")
    if bundle is None:
        return Verdict(False, "SignatureMissing", f"no {SIGNATURE_FILE} at the artifact root")
    with tempfile.TemporaryDirectory(prefix="modelrelease-signature-") as folder:
        bundle_path = Path(folder, SIGNATURE_FILE)
        bundle_path.write_bytes(bundle)
        verifiers = {}
        for index, (name, pem) in enumerate(sorted(signers.items())):
            key_path = Path(folder, f"{index}.pem")
            key_path.write_text(pem, encoding="utf-8")
            try:
                verifiers[name] = sign_ec_key.Verifier(key_path)
            except _UNUSABLE:
                continue
        if not verifiers:
            return Verdict(
                False, "SignersNotFound", f"{source} holds no PEM EC public key (P-256, P-384 or P-521)"
            )
        try:
            signature = sign_sigstore_pb.Signature.read(bundle_path)
        except _UNUSABLE:
            return Verdict(False, "SignatureInvalid", f"{SIGNATURE_FILE} is not a model-signing bundle")
    for name, verifier in verifiers.items():
        try:
            signed = verifier.verify(signature)
        except _UNUSABLE:
            continue
        return _compare(signed, entries, f"key {name} of {source}")
    return Verdict(False, "SignatureInvalid", f"{SIGNATURE_FILE} is not signed by any key of {source}")
