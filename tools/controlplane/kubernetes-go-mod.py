"""Write tools/controlplane/kubernetes/go.mod for a Kubernetes version, then `go mod tidy` it.

Usage: python tools/controlplane/kubernetes-go-mod.py v1.36.3

`go install k8s.io/kubernetes/cmd/...@v` cannot work: k8s.io/kubernetes requires its staging modules at
v0.0.0 and replaces them with ./staging folders. This module requires k8s.io/kubernetes instead and replaces
every staging module with its published v0.MINOR.PATCH, the list taken from that version's own go.mod (so a
new staging module is never missed), with its godebug line copied.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

FOLDER = Path(__file__).resolve().parent / "kubernetes"
TOOLS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl")
HEADER = """\
// Builds kube-apiserver, kube-controller-manager, kube-scheduler and kubectl from k8s.io/kubernetes used as a
// dependency. Every staging module is replaced by its published version;
// tools/controlplane/kubernetes-go-mod.py writes this file for the version it is given.
"""


def main(version: str) -> None:
    FOLDER.mkdir(exist_ok=True)
    info = json.loads(
        subprocess.run(
            ["go", "mod", "download", "-json", f"k8s.io/kubernetes@{version}"],
            cwd=FOLDER, check=True, capture_output=True, text=True,
        ).stdout
    )  # fmt: skip
    upstream = Path(info["GoMod"]).read_text()
    go_line = re.search(r"^go \S+$", upstream, re.MULTILINE)
    godebug = re.search(r"^godebug .+$", upstream, re.MULTILINE)
    staging = re.findall(r"^\s*(k8s\.io/\S+) => \./staging/", upstream, re.MULTILINE)
    minor_patch = version.lstrip("v").split(".", 1)[1]
    lines = [HEADER + "module modelrelease.io/controlplane/kubernetes", ""]
    lines += [go_line.group(0) if go_line else "go 1.26.0", ""]
    if godebug:
        lines += [godebug.group(0), ""]
    lines += [f"require k8s.io/kubernetes {version}", "", "tool ("]
    lines += [f"\tk8s.io/kubernetes/cmd/{tool}" for tool in TOOLS]
    lines += [")", "", "replace ("]
    lines += [f"\t{module} => {module} v0.{minor_patch}" for module in staging]
    lines += [")", ""]
    (FOLDER / "go.mod").write_text("\n".join(lines))
    (FOLDER / "go.sum").unlink(missing_ok=True)
    subprocess.run(["go", "mod", "tidy"], cwd=FOLDER, check=True)


if __name__ == "__main__":
    if len(sys.argv) != 2 or not sys.argv[1].startswith("v1."):
        sys.exit("usage: kubernetes-go-mod.py v1.MINOR.PATCH")
    main(sys.argv[1])
