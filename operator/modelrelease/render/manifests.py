"""Pure builders: (release, spec, pinned version) → the server-side apply configurations of the managed
Deployment and Service, or of the few fields of a targetRef Deployment the operator owns. Each names only
the fields the operator has an opinion on. No I/O; the kube adapter applies what these return."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from modelrelease.api.models import API_VERSION, KIND, MODEL_DIGEST_ENV, MODEL_URI_ENV, ModelReleaseSpec
from modelrelease.render.pin import Pin, ReleaseRef

MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "modelrelease-operator"
RELEASE_LABEL = "modelrelease.io/release"

VERSION_ANNOTATION = "modelrelease.io/version"
MODEL_URI_ANNOTATION = "modelrelease.io/model-uri"
DIGEST_ANNOTATION = "modelrelease.io/digest"
GENERATION_ANNOTATION = "modelrelease.io/release-generation"
# On the managed Deployment's own metadata (not the pod template, so it triggers no rollout): the
# release generation whose spec it was last rendered from.
APPLIED_GENERATION_ANNOTATION = "modelrelease.io/applied-generation"
# Pod-template annotation naming the release; in targetRef mode it is how the operator recognises the
# Deployments it repoints (their labels are not ours to change).
RELEASE_ANNOTATION = "modelrelease.io/release"

SERVING_CONTAINER = "server"
PORT_NAME = "http"
# Keys of spec.registry.credentialsSecret, mapped onto the env vars the MLflow client reads.
CREDENTIAL_ENV = (
    ("MLFLOW_TRACKING_USERNAME", "username"),
    ("MLFLOW_TRACKING_PASSWORD", "password"),
    ("MLFLOW_TRACKING_TOKEN", "token"),
)
_NON_ROOT_ID = 10001  # the serving image's numeric user (operator/serving.Dockerfile)
_TMP_VOLUME = "tmp"  # MLflow downloads the model into TMPDIR; the root filesystem stays read-only


class RenderError(ValueError):
    """The spec cannot be rendered onto the live object; `field` names the spec field at fault."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}")


@dataclass(frozen=True)
class RenderContext:
    """Operator-level inputs that are not part of the spec."""

    image: str
    """Serving image when spec.serving.image is unset (MODELRELEASE_DEFAULT_IMAGE)."""
    tracking_uri: str
    """The release's effective tracking URI (spec.registry.trackingUri or the operator default)."""
    hpa: bool = False
    """An HPA targets the Deployment: `replicas` stays out of the apply configuration (the HPA owns it)."""
    model_env: Mapping[str, str] | None = None
    """The env that points the container at the version, as the registry backend gives it (MODEL_URI and
    e.g. MODEL_PACKAGE_ARN); None: MODEL_URI is the pin's reference. No MLFLOW_TRACKING_URI without
    tracking_uri (a registry other than MLflow)."""


def selector_labels(release: ReleaseRef) -> dict[str, str]:
    return {RELEASE_LABEL: release.name}


def object_labels(release: ReleaseRef) -> dict[str, str]:
    return {MANAGED_BY_LABEL: MANAGED_BY, **selector_labels(release)}


def pin_annotations(release: ReleaseRef, pin: Pin, generation: int) -> dict[str, str]:
    """The pod-template annotations that trigger a rollout and let history be rebuilt from the Deployment."""
    annotations = {
        RELEASE_ANNOTATION: release.name,
        VERSION_ANNOTATION: pin.version,
        MODEL_URI_ANNOTATION: pin.uri,
        GENERATION_ANNOTATION: str(generation),
    }
    if pin.digest:
        annotations[DIGEST_ANNOTATION] = pin.digest
    return annotations


def owner_reference(release: ReleaseRef) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "name": release.name,
        "uid": release.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _metadata(release: ReleaseRef, generation: int) -> dict[str, Any]:
    return {
        "name": release.name,
        "namespace": release.namespace,
        "labels": object_labels(release),
        "annotations": {APPLIED_GENERATION_ANNOTATION: str(generation)},
        "ownerReferences": [owner_reference(release)],
    }


def _env(spec: ModelReleaseSpec, pin: Pin, ctx: RenderContext) -> list[dict[str, Any]]:
    model_env = ctx.model_env if ctx.model_env is not None else {MODEL_URI_ENV: pin.uri}
    ours: list[dict[str, Any]] = [
        *({"name": name, "value": value} for name, value in model_env.items()),
        *([{"name": MODEL_DIGEST_ENV, "value": pin.digest}] if pin.digest else []),
        *([{"name": "MLFLOW_TRACKING_URI", "value": ctx.tracking_uri}] if ctx.tracking_uri else []),
    ]
    secret = spec.registry.credentials_secret
    if secret:
        ours += [
            {
                "name": env_name,
                "valueFrom": {"secretKeyRef": {"name": secret, "key": key, "optional": True}},
            }
            for env_name, key in CREDENTIAL_ENV
        ]
    taken = {entry["name"] for entry in ours}
    user = [dict(entry) for entry in spec.serving.env if entry["name"] not in taken]
    return ours + user


def serve_command(port: int, default_image: bool) -> list[str]:
    """The default image's `modelrelease serve` (which refuses bytes other than MODEL_DIGEST's, then runs
    `mlflow models serve`), else `mlflow models serve` of the pinned URI ($(MODEL_URI) is expanded by
    Kubernetes from the container env)."""
    if default_image:
        return ["modelrelease", "serve", "--host", "0.0.0.0", "--port", str(port)]
    return f"mlflow models serve -m $({MODEL_URI_ENV}) -h 0.0.0.0 -p {port} --env-manager local".split()


def _container(spec: ModelReleaseSpec, pin: Pin, ctx: RenderContext) -> dict[str, Any]:
    port = spec.serving.port
    container: dict[str, Any] = {
        "name": SERVING_CONTAINER,
        "image": spec.serving.image or ctx.image,
        "command": serve_command(port, default_image=spec.serving.image is None),
        "ports": [{"name": PORT_NAME, "containerPort": port, "protocol": "TCP"}],
        "env": _env(spec, pin, ctx),
        "readinessProbe": {
            "httpGet": {"path": "/ping", "port": PORT_NAME},
            "periodSeconds": 5,
            "failureThreshold": 3,
        },
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [{"name": _TMP_VOLUME, "mountPath": "/tmp"}],
    }
    if spec.serving.resources:
        container["resources"] = dict(spec.serving.resources)
    return container


def deployment(
    release: ReleaseRef,
    spec: ModelReleaseSpec,
    generation: int,
    pin: Pin,
    pin_generation: int,
    ctx: RenderContext,
) -> dict[str, Any]:
    """The managed Deployment serving `pin`, rendered from the spec of release `generation`.

    `pin_generation` is the release generation that started this pin's rollout: it goes into the pod
    template (so a restart can rebuild the history from the Deployment) and stays the same when only
    the spec changes, so re-rendering does not restart pods unless the pod shape itself changed."""
    serving = spec.serving
    template_metadata = serving.template.metadata
    pod_spec: dict[str, Any] = {
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": _NON_ROOT_ID,
            "runAsGroup": _NON_ROOT_ID,
            "fsGroup": _NON_ROOT_ID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [_container(spec, pin, ctx)],
        "volumes": [{"name": _TMP_VOLUME, "emptyDir": {}}],
    }
    if serving.service_account_name:
        pod_spec["serviceAccountName"] = serving.service_account_name
    if serving.node_selector:
        pod_spec["nodeSelector"] = dict(serving.node_selector)
    if serving.tolerations:
        pod_spec["tolerations"] = [dict(t) for t in serving.tolerations]
    if serving.affinity:
        pod_spec["affinity"] = dict(serving.affinity)
    deployment_spec: dict[str, Any] = {
        "selector": {"matchLabels": selector_labels(release)},
        "progressDeadlineSeconds": spec.rollout.progress_deadline_seconds,
        "template": {
            "metadata": {
                # The user's metadata first: the operator's keys win (the API refuses modelrelease.io/ keys).
                "labels": {**template_metadata.labels, **object_labels(release)},
                "annotations": {
                    **template_metadata.annotations,
                    **pin_annotations(release, pin, pin_generation),
                },
            },
            "spec": pod_spec,
        },
    }
    if not ctx.hpa:
        deployment_spec["replicas"] = 1 if serving.replicas is None else serving.replicas
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(release, generation),
        "spec": deployment_spec,
    }


def service(release: ReleaseRef, spec: ModelReleaseSpec, generation: int) -> dict[str, Any]:
    """The managed ClusterIP Service in front of the serving pods."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(release, generation),
        "spec": {
            "type": "ClusterIP",
            "selector": selector_labels(release),
            "ports": [
                {"name": PORT_NAME, "port": spec.serving.port, "targetPort": PORT_NAME, "protocol": "TCP"}
            ],
        },
    }


def target_container(live: dict[str, Any], container: str | None) -> str:
    """The container of a targetRef Deployment that receives MODEL_URI: the named one, else the first."""
    containers = live.get("spec", {}).get("template", {}).get("spec", {}).get("containers") or []
    names = [c.get("name", "") for c in containers]
    if container is None:
        if not names:
            raise RenderError("spec.serving.targetRef.name", "the Deployment has no containers")
        return str(names[0])
    if container not in names:
        raise RenderError(
            "spec.serving.targetRef.container",
            f"container {container!r} not found in the Deployment (it has {', '.join(names) or 'none'})",
        )
    return container


def _env_names(live: dict[str, Any], container: str) -> set[str]:
    containers = live.get("spec", {}).get("template", {}).get("spec", {}).get("containers") or []
    return {e.get("name") for c in containers if c.get("name") == container for e in c.get("env") or []}


def target_apply(
    release: ReleaseRef,
    spec: ModelReleaseSpec,
    live: dict[str, Any],
    pin: Pin,
    generation: int,
    model_uri: str | None = None,
) -> dict[str, Any]:
    """Apply configuration for targetRef mode: only the container's MODEL_URI env (and MODEL_DIGEST when the
    container already reads it; containers and env are lists keyed by name, so nothing else of them is
    named) and the pod-template annotations; every other
    field stays as its owner wrote it (`model_uri`: what MODEL_URI gets, default the pin's reference).
    `metadata.uid` is a precondition, not an opinion: if the Deployment
    was deleted meanwhile, the apply fails with a conflict instead of creating one from these fields."""
    assert spec.serving.target_ref is not None
    name = target_container(live, spec.serving.target_ref.container)
    meta = live["metadata"]
    env = [{"name": MODEL_URI_ENV, "value": model_uri or pin.uri}]
    if pin.digest and MODEL_DIGEST_ENV in _env_names(live, name):
        env.append({"name": MODEL_DIGEST_ENV, "value": pin.digest})  # its image checks what it loads
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": meta["name"], "namespace": meta["namespace"], "uid": meta["uid"]},
        "spec": {
            "template": {
                "metadata": {"annotations": pin_annotations(release, pin, generation)},
                "spec": {"containers": [{"name": name, "env": env}]},
            }
        },
    }
