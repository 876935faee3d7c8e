"""`modelrelease serve` before it execs the model server: what it downloads, hashes and refuses."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from modelrelease.registry.digest import local_digest
from modelrelease.serve import Refused, add_arguments, fetch, main

MODEL = {"MLmodel": b"flavors: {}\n", "model.pkl": b"\x80\x04weights", "sub/conda.yaml": b"name: m\n"}


def make_model(root: Path) -> Path:
    for path, data in MODEL.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(data)
    return root


def test_the_download_is_hashed_after_emptying_what_an_earlier_start_left(tmp_path: Path) -> None:
    source = make_model(tmp_path / "store")
    folder = tmp_path / "emptydir"
    (folder / "old").mkdir(parents=True)
    (folder / "old" / "weights.bin").write_bytes(b"from a previous container start")
    (folder / "stale.txt").write_bytes(b"x")
    local, digest = fetch(source.as_uri(), local_digest(source), folder)
    assert digest == local_digest(source)
    assert sorted(p.name for p in folder.rglob("*") if p.is_file()) == ["MLmodel", "conda.yaml", "model.pkl"]
    assert local_digest(local) == digest


def test_other_bytes_are_refused_naming_both_digests(tmp_path: Path) -> None:
    source = make_model(tmp_path / "store")
    expected = "sha256:" + "ab" * 32
    with pytest.raises(Refused) as refused:
        fetch(source.as_uri(), expected, tmp_path / "emptydir")
    actual = local_digest(source)
    assert str(refused.value) == (
        f"{source.as_uri()} has digest {actual}, expected {expected} (MODEL_DIGEST): refusing to serve it"
    )


def test_no_expected_digest_serves_what_was_downloaded(tmp_path: Path) -> None:
    source = make_model(tmp_path / "store")
    assert fetch(source.as_uri(), None, tmp_path / "emptydir")[1] == local_digest(source)


def args(tmp_path: Path) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(["--model-dir", str(tmp_path / "m"), "--termination-log", str(tmp_path / "log")])


@pytest.mark.parametrize(
    ("env", "line"),
    [
        ({}, "modelrelease serve: MODEL_URI is not set\n"),
        (
            {"MODEL_URI": "models:/m/1", "MODEL_DIGEST": "md5:1"},
            "modelrelease serve: MODEL_DIGEST='md5:1' is not a sha256:<hex> digest\n",
        ),
    ],
)
def test_refusals_exit_1_with_one_line_in_the_termination_log(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    env: dict[str, str],
    line: str,
) -> None:
    monkeypatch.delenv("MODEL_URI", raising=False)
    monkeypatch.delenv("MODEL_DIGEST", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert main(args(tmp_path)) == 1
    assert (tmp_path / "log").read_text() == line
    assert capsys.readouterr().err == line
