#!/usr/bin/env bash
# `make e2e`: create a kind cluster, build and load both images, start MLflow in it, install the chart (and
# run its helm test), run tests/e2e against it, delete the cluster. KEEP_CLUSTER=1 keeps it for debugging.
set -euo pipefail
cd "$(dirname "$0")/../.."

CLUSTER="${KIND_CLUSTER_NAME:-modelrelease-e2e}"
TAG=e2e
HELM="${HELM:-.tools/bin/helm}"
PYTEST="${PYTEST:-.venv/bin/pytest}"

for tool in kind docker kubectl "$HELM"; do
    command -v "$tool" >/dev/null || { echo "run-kind: $tool not found" >&2; exit 1; }
done

workdir="$(mktemp -d)"
export KUBECONFIG="$workdir/kubeconfig"
cleanup() {
    local status=$?
    if [[ $status -ne 0 && -s "$KUBECONFIG" ]]; then
        echo "run-kind: failed ($status); cluster state:" >&2
        kubectl get modelreleases,deployments,pods -A -o wide >&2 || true
        kubectl -n modelrelease-system logs deployment/modelrelease-operator --tail=200 >&2 || true
        kubectl get events -A --sort-by=.lastTimestamp >&2 | tail -50 || true
    fi
    if [[ -z "${KEEP_CLUSTER:-}" ]]; then
        kind delete cluster --name "$CLUSTER" || true
    else
        echo "run-kind: kept cluster $CLUSTER (KUBECONFIG=$KUBECONFIG)"
    fi
}
trap cleanup EXIT

kind create cluster --name "$CLUSTER" --kubeconfig "$KUBECONFIG" --wait 180s

docker build -f operator/Dockerfile -t "modelrelease-operator:$TAG" .
docker build -f operator/serving.Dockerfile -t "modelrelease-serving:$TAG" .
kind load docker-image --name "$CLUSTER" "modelrelease-operator:$TAG" "modelrelease-serving:$TAG"

kubectl apply -f tests/e2e/mlflow.yaml
kubectl -n mlflow-e2e rollout status deployment/mlflow --timeout=300s

kubectl create namespace modelrelease-system
kubectl label namespace modelrelease-system pod-security.kubernetes.io/enforce=restricted
"$HELM" install modelrelease-operator charts/modelrelease-operator \
    --namespace modelrelease-system \
    --set image.repository=modelrelease-operator --set image.tag="$TAG" --set image.pullPolicy=Never \
    --set operator.defaultServingImage="modelrelease-serving:$TAG" \
    --set operator.defaultTrackingUri=http://mlflow.mlflow-e2e.svc:5000 \
    --wait --timeout 300s
"$HELM" test modelrelease-operator --namespace modelrelease-system --timeout 180s

MODELRELEASE_E2E_KUBECONFIG="$KUBECONFIG" "$PYTEST" -m e2e tests/e2e -ra -p no:cacheprovider
