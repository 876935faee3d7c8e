"""`sandbox down` and the running-check of `up`, on stand-in processes (the full stack is in integration)."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelrelease.sandbox import stack


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def start_ticks(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]


@pytest.fixture
def group() -> Iterator[subprocess.Popen[str]]:
    """A process-group leader with a child, like `mlflow server` and its uvicorn worker."""
    leader = subprocess.Popen(
        ["bash", "-c", "sleep 300 & echo $!; wait"], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    yield leader
    if leader.poll() is None:
        leader.kill()
    leader.wait()


def write_state(directory: Path, **components: dict[str, object]) -> None:
    (directory / "state.json").write_text(json.dumps({"components": components}))


def test_down_stops_the_whole_process_group_and_forgets_the_sandbox(
    tmp_path: Path, group: subprocess.Popen[str]
) -> None:
    assert group.stdout is not None
    child = int(group.stdout.readline())
    write_state(tmp_path, mlflow={"pid": group.pid, "start": start_ticks(group.pid), "log": "x"})
    (tmp_path / "env").write_text("export KUBECONFIG=x\n")

    stack.down(tmp_path)

    assert group.wait(timeout=5) is not None
    deadline = time.monotonic() + 5
    while alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(child)
    assert not (tmp_path / "state.json").exists()
    assert not (tmp_path / "env").exists()


def test_down_leaves_a_recycled_pid_alone(tmp_path: Path, group: subprocess.Popen[str]) -> None:
    assert group.stdout is not None
    child = int(group.stdout.readline())
    # Same pid and group as recorded, but a different process: its start time differs.
    write_state(tmp_path, api={"pid": group.pid, "start": "1", "log": "x"})

    stack.down(tmp_path)

    assert group.poll() is None
    assert alive(child)
    assert not (tmp_path / "state.json").exists()


def test_down_of_a_dead_or_unknown_sandbox_is_a_no_op(tmp_path: Path) -> None:
    # A pid above the kernel's maximum (2**22) cannot be running.
    write_state(tmp_path, s3={"pid": 2**22 + 1, "start": "1", "log": "x", "port": 1})
    stack.down(tmp_path)
    assert not (tmp_path / "state.json").exists()
    stack.down(tmp_path / "never-created")


def test_up_refuses_a_dir_whose_sandbox_is_running(tmp_path: Path, group: subprocess.Popen[str]) -> None:
    write_state(tmp_path, api={"pid": group.pid, "start": start_ticks(group.pid), "log": "x"})

    with pytest.raises(stack.SandboxError, match="already running") as refused:
        stack.up(tmp_path)

    assert "\n" not in str(refused.value)
    assert f"modelrelease sandbox down --dir {tmp_path}" in str(refused.value)
    assert group.poll() is None  # untouched
    assert not (tmp_path / "logs").exists()  # nothing was started
