"""The control plane's binaries: where they come from, and how a missing one is built.

Each binary is built from a Go module of the project's under tools/controlplane/ (go.mod and go.sum
committed), which pins its version: `kubernetes/` (kube-apiserver, kube-controller-manager,
kube-scheduler and kubectl from `k8s.io/kubernetes`, every staging module replaced by its published
version), `etcd/` (`go.etcd.io/etcd/server/v3`) and `kwok/` (simulated nodes). The version in each go.mod's
`require` line is the one place it is named.

Lookup order, as envtest does it: `KUBEBUILDER_ASSETS` (a folder holding at least kube-apiserver and
etcd; whatever else it holds is used too), then the cache outside the clone, keyed by the module's version
and a hash of its go.mod and go.sum, so a changed pin is a new entry and CI runs and later sessions reuse
built ones. `install()` builds what is missing into a temporary folder beside the entry and renames it into
place only when every binary of the module built, so no half-written entry is ever seen.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

MODULES_DIR = Path(__file__).resolve().parents[3] / "tools" / "controlplane"
ASSETS_ENV = "KUBEBUILDER_ASSETS"
CACHE_ENV = "MODELRELEASE_CACHE_DIR"
GO_BUILD_TAGS = "selinux,notest,grpcnotrace"


class BinaryError(Exception):
    """A binary is missing or could not be built; the message is one line naming it."""


@dataclass(frozen=True)
class Module:
    folder: str
    dependency: str
    binaries: dict[str, str]
    """Binary name -> Go package that builds it."""
    version_ldflags: tuple[str, ...] = ()
    """Packages whose version variables are stamped, as upstream's build does (else /version says v0.0.0)."""

    @property
    def path(self) -> Path:
        return MODULES_DIR / self.folder

    def version(self) -> str:
        text = (self.path / "go.mod").read_text()
        match = re.search(rf"^\s*(?:require\s+)?{re.escape(self.dependency)}\s+(v\S+)", text, re.MULTILINE)
        if match is None:
            raise BinaryError(f"{self.path / 'go.mod'} does not require {self.dependency}")
        return match.group(1)

    def cache_entry(self) -> Path:
        digest = hashlib.sha256()
        for name in ("go.mod", "go.sum"):
            digest.update((self.path / name).read_bytes())
        return cache_root() / f"{self.folder}-{self.version()}-{digest.hexdigest()[:12]}"

    def ldflags(self) -> str:
        flags = ["-s", "-w"]
        version = self.version()
        major, minor = version.lstrip("v").split(".")[:2]
        for package in self.version_ldflags:
            flags += [
                f"-X {package}.gitVersion={version}",
                f"-X {package}.gitMajor={major}",
                f"-X {package}.gitMinor={minor}",
                f"-X {package}.gitTreeState=clean",
            ]
        return " ".join(flags)


KUBERNETES = Module(
    folder="kubernetes",
    dependency="k8s.io/kubernetes",
    binaries={
        name: f"k8s.io/kubernetes/cmd/{name}"
        for name in ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl")
    },
    version_ldflags=("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"),
)
ETCD = Module(
    folder="etcd", dependency="go.etcd.io/etcd/server/v3", binaries={"etcd": "go.etcd.io/etcd/server/v3"}
)
KWOK = Module(folder="kwok", dependency="sigs.k8s.io/kwok", binaries={"kwok": "sigs.k8s.io/kwok/cmd/kwok"})
MODULES = (KUBERNETES, ETCD, KWOK)


def cache_root() -> Path:
    configured = os.environ.get(CACHE_ENV)
    if configured:
        return Path(configured) / "controlplane"
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "modelrelease-operator" / "controlplane"


def _assets() -> Path | None:
    folder = os.environ.get(ASSETS_ENV)
    if not folder:
        return None
    path = Path(folder)
    missing = [name for name in ("kube-apiserver", "etcd") if not (path / name).is_file()]
    if missing:
        raise BinaryError(f"{ASSETS_ENV}={folder} lacks {', '.join(missing)}")
    return path


def _module_of(name: str) -> Module:
    for module in MODULES:
        if name in module.binaries:
            return module
    raise BinaryError(f"no module builds {name}")


def locate(name: str) -> Path:
    """The path of binary `name`, from KUBEBUILDER_ASSETS or the cache; BinaryError when neither has it."""
    assets = _assets()
    if assets is not None and (assets / name).is_file():
        return assets / name
    module = _module_of(name)
    path = module.cache_entry() / name
    if not path.is_file():
        raise BinaryError(f"{name} {module.version()} is not built: run `make install`")
    return path


def install(say: Callable[[str], None] = print) -> None:
    """Build every binary that neither KUBEBUILDER_ASSETS nor the cache has; one line per binary."""
    assets = _assets()
    go = shutil.which("go")
    for module in MODULES:
        version, entry = module.version(), module.cache_entry()
        wanted = [name for name in module.binaries if assets is None or not (assets / name).is_file()]
        for name in module.binaries:
            if name not in wanted:
                say(f"{name} {version}: from {ASSETS_ENV}")
            elif (entry / name).is_file():
                say(f"{name} {version}: cached in {entry}")
        if not wanted or all((entry / name).is_file() for name in wanted):
            continue
        if go is None:
            raise BinaryError(f"{wanted[0]} {version}: cannot build: no `go` on PATH")
        entry.parent.mkdir(parents=True, exist_ok=True)
        partial = Path(tempfile.mkdtemp(prefix=f".{entry.name}.", dir=entry.parent))
        try:
            for name in module.binaries:  # the whole module, so that an entry is complete when it exists
                started = time.monotonic()
                say(f"{name} {version}: building ...")
                _go_build(go, module, name, partial / name)
                say(f"{name} {version}: built in {time.monotonic() - started:.0f}s")
            shutil.rmtree(entry, ignore_errors=True)
            partial.rename(entry)
        finally:
            shutil.rmtree(partial, ignore_errors=True)


def _go_build(go: str, module: Module, name: str, output: Path) -> None:
    env = {
        **os.environ,
        "CGO_ENABLED": "0",
        "GOTOOLCHAIN": "local",
        "GOFLAGS": "-mod=readonly -buildvcs=false",
    }
    argv = [go, "build", "-p", "2", "-trimpath", "-tags", GO_BUILD_TAGS, "-ldflags", module.ldflags(),
            "-o", str(output), module.binaries[name]]  # fmt: skip
    result = subprocess.run(argv, cwd=module.path, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        lines = [line for line in (result.stderr or result.stdout).splitlines() if line.strip()]
        reason = lines[-1].strip() if lines else f"go build exited with {result.returncode}"
        raise BinaryError(f"{name} {module.version()}: build failed: {reason[:300]}")


def main(argv: list[str] | None = None) -> int:
    """`python -m modelrelease.sandbox.binaries` builds what is missing; `--path NAME` prints NAME's path."""
    args = sys.argv[1:] if argv is None else argv
    try:
        if args[:1] == ["--path"] and len(args) == 2:
            print(locate(args[1]))
        elif not args:
            install()
        else:
            raise BinaryError("usage: python -m modelrelease.sandbox.binaries [--path NAME]")
    except BinaryError as exc:
        print(f"modelrelease binaries: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
