"""The canonical artifact digest: manifest format, local trees, streaming in bounded chunks."""

from __future__ import annotations

import hashlib
import io
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modelrelease.registry.digest import (
    CHUNK_SIZE,
    local_digest,
    local_entries,
    manifest,
    manifest_digest,
    stream_sha256,
)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def make_tree(root: Path, files: dict[str, bytes]) -> Path:
    for relative, data in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


MODEL = {
    "MLmodel": b"flavors: {}\n",
    "model.skops": b"\x00\x01binary",
    "sub/dir/weights.bin": b"w" * 10,
    "sub/a.txt": b"",
    "zeta/\u00e9t\u00e9.json": b"{}",
}


def test_manifest_is_sorted_sha256sum_lines() -> None:
    entries = [("b/x", sha(b"2")), ("a", sha(b"1")), ("B", sha(b"3"))]
    assert manifest(entries) == (f"{sha(b'3')}  B\n{sha(b'1')}  a\n{sha(b'2')}  b/x\n").encode()
    assert manifest_digest(entries) == "sha256:" + sha(manifest(entries))


def test_empty_manifest_is_the_empty_string() -> None:
    assert manifest([]) == b""
    assert manifest_digest([]) == "sha256:" + sha(b"")


@pytest.mark.parametrize("path", ["", "/abs", "a//b", "./a", "a/../b", "a/", "line\nbreak"])
def test_manifest_refuses_unnormalised_paths(path: str) -> None:
    with pytest.raises(ValueError):
        manifest([(path, sha(b""))])


def test_manifest_refuses_duplicate_paths() -> None:
    with pytest.raises(ValueError, match="duplicate"):
        manifest([("a", sha(b"1")), ("a", sha(b"2"))])


@given(st.permutations(sorted(MODEL)))
def test_digest_does_not_depend_on_listing_order(order: list[str]) -> None:
    assert manifest_digest([(p, sha(MODEL[p])) for p in order]) == manifest_digest(
        [(p, sha(d)) for p, d in MODEL.items()]
    )


def test_local_digest_matches_sha256sum_pipeline(tmp_path: Path) -> None:
    """The documented shell reproduction (GNU find, sort, sha256sum) gives the same hex."""
    if shutil.which("sha256sum") is None:
        pytest.skip("sha256sum not installed")
    root = make_tree(tmp_path / "model", {**MODEL, "model.sig": b"{}"})
    shell = subprocess.run(
        "find . -type f ! -path ./registered_model_meta ! -path ./model.sig -printf '%P\\0' "
        "| LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum",
        shell=True,
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    )
    assert local_digest(root) == "sha256:" + shell.stdout.split()[0]


def test_local_entries_are_relative_posix_paths(tmp_path: Path) -> None:
    root = make_tree(tmp_path, MODEL)
    assert dict(local_entries(root)) == {path: sha(data) for path, data in MODEL.items()}


def test_download_metadata_file_is_not_part_of_the_digest(tmp_path: Path) -> None:
    plain = make_tree(tmp_path / "plain", MODEL)
    downloaded = make_tree(tmp_path / "downloaded", {**MODEL, "registered_model_meta": b"model_name: m\n"})
    assert local_digest(downloaded) == local_digest(plain)
    nested = make_tree(tmp_path / "nested", {**MODEL, "sub/registered_model_meta": b"x"})
    assert local_digest(nested) != local_digest(plain)


def test_signature_file_is_not_part_of_the_digest(tmp_path: Path) -> None:
    """Signing a stamped version leaves its digest as it was; a model.sig below the root is a file."""
    plain = make_tree(tmp_path / "plain", MODEL)
    signed = make_tree(tmp_path / "signed", {**MODEL, "model.sig": b'{"mediaType": "x"}'})
    assert local_digest(signed) == local_digest(plain)
    nested = make_tree(tmp_path / "nested", {**MODEL, "sub/model.sig": b"x"})
    assert local_digest(nested) != local_digest(plain)


@pytest.mark.parametrize(
    "change",
    [
        {"model.skops": b"\x00\x01binarY"},  # one byte
        {"sub/dir/weights.bin": b"w" * 11},  # length
        {"extra.txt": b""},  # an added empty file
    ],
)
def test_any_content_change_changes_the_digest(tmp_path: Path, change: dict[str, bytes]) -> None:
    before = local_digest(make_tree(tmp_path / "a", MODEL))
    assert local_digest(make_tree(tmp_path / "b", {**MODEL, **change})) != before


def test_renaming_a_file_changes_the_digest(tmp_path: Path) -> None:
    renamed = dict(MODEL)
    renamed["model.pkl"] = renamed.pop("model.skops")
    assert local_digest(make_tree(tmp_path / "a", MODEL)) != local_digest(make_tree(tmp_path / "b", renamed))


def test_local_digest_needs_a_directory(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"x")
    with pytest.raises(NotADirectoryError):
        local_digest(tmp_path / "file")


class RecordingStream(io.BytesIO):
    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.requested: list[int] = []

    def read(self, size: int | None = -1, /) -> bytes:
        self.requested.append(-1 if size is None else size)
        return super().read(size)


def test_stream_sha256_reads_bounded_chunks() -> None:
    data = bytes(range(256)) * (3 * CHUNK_SIZE // 256 + 7)
    stream = RecordingStream(data)
    assert stream_sha256(stream) == sha(data)
    assert stream.requested and all(0 < size <= CHUNK_SIZE for size in stream.requested)
