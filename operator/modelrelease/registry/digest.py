"""The canonical artifact digest: SHA-256 over a manifest of the artifact tree.

The manifest lists every file of the model's artifact tree, one line per file, in ``sha256sum`` format::

    <sha256 of the file's bytes, 64 lowercase hex>  <relative POSIX path>\\n

Paths are relative to the model's root (``MLmodel`` sits at the top), use ``/`` separators, and the
lines are sorted by path (code-point order, which equals UTF-8 byte order). Directories contribute
only through their files. Two top-level files are left out (:data:`UNHASHED_FILES`):
``registered_model_meta``, which MLflow's client writes into a ``models:/`` download (it is not stored
with the version, and leaving it out makes a local download hash like the registry's copy), and the
model signature ``model.sig``, which is about the bytes rather than part of them (so signing a stamped
version keeps its digest). The digest is ``sha256:`` + the hex SHA-256 of the manifest's UTF-8 bytes,
so for ordinary file names this reproduces it::

    cd model && find . -type f ! -path ./registered_model_meta ! -path ./model.sig -printf '%P\\0' \\
        | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum

File bytes are always streamed in bounded chunks; no file is ever held in memory.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

CHUNK_SIZE = 1 << 20
"""Bytes read per step while hashing (1 MiB): memory stays bounded whatever the file size."""

PREFIX = "sha256:"
SIGNATURE_FILE = "model.sig"
"""The OpenSSF model-signing bundle at the artifact root (see :mod:`modelrelease.verify.signature`)."""
UNHASHED_FILES = frozenset({"registered_model_meta", SIGNATURE_FILE})
"""Top-level files that are not part of the manifest: MLflow's download marker and the signature."""


def check_path(path: str) -> str:
    """A manifest path: relative, POSIX, normalised, one line. Returns it; ValueError otherwise."""
    parts = path.split("/")
    if not path or path.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"not a normalised relative artifact path: {path!r}")
    if "\n" in path or "\r" in path:
        raise ValueError(f"artifact path contains a line break: {path!r}")
    return path


def hashed(path: str) -> bool:
    """Whether the file at this relative path is part of the manifest."""
    return path not in UNHASHED_FILES


def manifest(entries: Iterable[tuple[str, str]]) -> bytes:
    """The manifest bytes for ``(relative path, file sha256 hex)`` pairs, in any order."""
    seen: set[str] = set()
    lines = []
    for path, hexdigest in sorted(entries):
        if not hashed(path):
            continue
        if path in seen:
            raise ValueError(f"duplicate artifact path in manifest: {path!r}")
        seen.add(path)
        lines.append(f"{hexdigest}  {check_path(path)}\n")
    return "".join(lines).encode("utf-8")


def manifest_digest(entries: Iterable[tuple[str, str]]) -> str:
    """``sha256:<hex>`` of the manifest for these entries."""
    return PREFIX + hashlib.sha256(manifest(entries)).hexdigest()


def stream_sha256(stream: BinaryIO, chunk_size: int = CHUNK_SIZE) -> str:
    """Hex SHA-256 of everything readable from ``stream``, read ``chunk_size`` bytes at a time."""
    h = hashlib.sha256()
    while chunk := stream.read(chunk_size):
        h.update(chunk)
    return h.hexdigest()


def local_entries(root: Path) -> list[tuple[str, str]]:
    """Manifest entries of a local artifact tree (e.g. ``mlflow.artifacts.download_artifacts`` output)."""
    entries = []
    for directory, _dirs, files in os.walk(root):
        for filename in files:
            path = Path(directory, filename)
            with path.open("rb") as stream:
                entries.append((path.relative_to(root).as_posix(), stream_sha256(stream)))
    return entries


def local_digest(root: Path) -> str:
    """The canonical digest of a local artifact tree; blocking, so call it from a thread in async code."""
    if not root.is_dir():
        raise NotADirectoryError(f"not a directory: {root}")
    return manifest_digest(local_entries(root))
