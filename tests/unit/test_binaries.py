"""Where the control plane's binaries come from (KUBEBUILDER_ASSETS, then the cache); what a build leaves.

The builds here run a stand-in `go` (a shell script) so that the cache logic is tested without compiling
Kubernetes; the real builds run in `make install`, and every integration test runs what they built.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import pytest

from modelrelease.sandbox import binaries

FAKE_GO = """#!/bin/sh
# go build ... -o OUTPUT PACKAGE: write a stand-in binary, or fail like the compiler for FAIL_PACKAGE.
while [ $# -gt 0 ]; do
  case "$1" in -o) out="$2"; shift;; esac
  last="$1"; shift
done
if [ "$last" = "$FAIL_PACKAGE" ]; then echo "# $last" >&2; echo "link: out of memory" >&2; exit 2; fi
echo "built $last" > "$out"
"""


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(binaries.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.delenv(binaries.ASSETS_ENV, raising=False)
    return tmp_path / "cache" / "controlplane"


@pytest.fixture
def fake_go(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "gobin"
    folder.mkdir()
    go = folder / "go"
    go.write_text(FAKE_GO)
    go.chmod(go.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    return go


def executable(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    return path


def test_each_version_is_named_once_in_its_go_mod() -> None:
    assert binaries.KUBERNETES.version() == "v1.36.3"
    assert re.fullmatch(r"v3\.\d+\.\d+", binaries.ETCD.version())
    assert re.fullmatch(r"v0\.\d+\.\d+", binaries.KWOK.version())
    kubernetes_mod = (binaries.KUBERNETES.path / "go.mod").read_text()
    minor = binaries.KUBERNETES.version().split(".", 1)[1]
    replaced = re.findall(r"^\s*(k8s\.io/\S+) => k8s\.io/\S+ (v\S+)$", kubernetes_mod, re.MULTILINE)
    assert len(replaced) >= 30
    assert {version for _, version in replaced} == {f"v0.{minor}"}  # every staging module at the same minor


def test_cache_entries_are_keyed_by_version_and_pins(cache: Path) -> None:
    entry = binaries.KUBERNETES.cache_entry()
    assert entry.parent == cache
    assert entry.name.startswith(f"kubernetes-{binaries.KUBERNETES.version()}-")
    assert len({m.cache_entry() for m in binaries.MODULES}) == len(binaries.MODULES)


def test_ldflags_stamp_the_version_as_upstream_does() -> None:
    flags = binaries.KUBERNETES.ldflags()
    assert "-X k8s.io/component-base/version.gitVersion=v1.36.3" in flags
    assert "-X k8s.io/client-go/pkg/version.gitMinor=36" in flags


def test_kubebuilder_assets_come_first(cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assets = tmp_path / "assets"
    for name in ("kube-apiserver", "etcd"):
        executable(assets / name)
    executable(binaries.KWOK.cache_entry() / "kwok")
    monkeypatch.setenv(binaries.ASSETS_ENV, str(assets))

    assert binaries.locate("kube-apiserver") == assets / "kube-apiserver"
    assert binaries.locate("etcd") == assets / "etcd"
    assert binaries.locate("kwok") == binaries.KWOK.cache_entry() / "kwok"  # not in the assets: the cache
    with pytest.raises(
        binaries.BinaryError, match=r"^kube-scheduler v1\.36\.3 is not built: run `make install`"
    ):
        binaries.locate("kube-scheduler")


def test_assets_without_the_envtest_pair_are_refused(
    cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    executable(tmp_path / "assets" / "kube-apiserver")
    monkeypatch.setenv(binaries.ASSETS_ENV, str(tmp_path / "assets"))
    with pytest.raises(binaries.BinaryError, match="lacks etcd"):
        binaries.locate("kube-apiserver")


def test_install_builds_what_is_missing_and_says_one_line_per_binary(cache: Path, fake_go: Path) -> None:
    executable(binaries.ETCD.cache_entry() / "etcd")
    said: list[str] = []

    binaries.install(said.append)

    for module in binaries.MODULES:
        for name in module.binaries:
            assert (module.cache_entry() / name).is_file(), name
    etcd = [line for line in said if line.startswith("etcd ")]
    assert len(etcd) == 1 and ": cached in " in etcd[0]
    built = sorted(line.split(" ")[0] for line in said if ": built in " in line)
    assert built == sorted([*binaries.KUBERNETES.binaries, *binaries.KWOK.binaries])
    assert sorted(p.name for p in cache.iterdir()) == sorted(m.cache_entry().name for m in binaries.MODULES)

    said.clear()
    binaries.install(said.append)  # everything cached now: nothing is built
    assert all(": cached in " in line for line in said) and len(said) == 6


def test_a_failed_build_names_the_binary_and_leaves_no_entry(
    cache: Path, fake_go: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAIL_PACKAGE", "k8s.io/kubernetes/cmd/kube-scheduler")
    with pytest.raises(binaries.BinaryError) as failed:
        binaries.install(lambda _line: None)
    assert str(failed.value) == "kube-scheduler v1.36.3: build failed: link: out of memory"
    assert not cache.exists() or list(cache.iterdir()) == []  # not even the binaries built before it
