#!/usr/bin/env bash
# Install checkov into its own virtualenv: TOOLS_DIR/checkov-venv/bin/checkov, linked as TOOLS_DIR/bin/checkov.
#
# checkov pins older boto3, botocore, packaging and networkx than requirements.lock, so it cannot share the
# project's venv. Idempotent: nothing is done when the pinned version is already there.
#
# Usage: tools/install-checkov.sh [TOOLS_DIR]   (default: .tools)
set -euo pipefail

CHECKOV_VERSION="3.3.30"

tools_dir="$(realpath -m "${1:-.tools}")"
venv="$tools_dir/checkov-venv"

installed="$("$venv/bin/python" -m pip show checkov 2>/dev/null || true)"
if [[ -x "$venv/bin/checkov" && -L "$tools_dir/bin/checkov" && "$installed" == *$'\nVersion: '"$CHECKOV_VERSION"$'\n'* ]]; then
    exit 0
fi
python3 -m venv "$venv"
# uv (which `make install` puts in the project venv) resolves and installs checkov's ~100 packages far faster.
uv="${UV:-$(command -v uv || echo .venv/bin/uv)}"
if [[ -x "$uv" ]]; then
    "$uv" pip install --quiet --python "$venv/bin/python" "checkov==$CHECKOV_VERSION"
else
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "checkov==$CHECKOV_VERSION"
fi
mkdir -p "$tools_dir/bin"
ln -sf "$venv/bin/checkov" "$tools_dir/bin/checkov"
echo "install-checkov: checkov $CHECKOV_VERSION in $venv"
