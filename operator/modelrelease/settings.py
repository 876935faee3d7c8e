"""Operator settings from the environment (the Helm chart sets these), validated once at startup.

- MODELRELEASE_DEFAULT_TRACKING_URI: registry of releases without spec.registry.trackingUri
  (default: MLFLOW_TRACKING_URI when that is an http(s) URL).
- MODELRELEASE_ALLOWED_TRACKING_URIS: comma-separated allowed tracking-URI prefixes; empty allows any
  http/https URI. End each prefix with "/" or a port so `http://mlflow` does not admit
  `http://mlflow.example.org`.
- MODELRELEASE_NAMESPACES: comma-separated namespaces to watch; empty watches all.
- MODELRELEASE_METRICS_PORT: Prometheus /metrics (default 9090; 0 disables).
- MODELRELEASE_HEALTH_PORT: kopf liveness /healthz (default 8080; 0 disables).
- MODELRELEASE_WEBHOOK_PORT: MLflow webhook receiver at POST /webhooks/mlflow (unset: none);
  MODELRELEASE_WEBHOOK_SECRET, its HMAC secret, is then required.
- MODELRELEASE_DEFAULT_IMAGE: serving image of managed Deployments (default modelrelease-serving:0.1.0).
- MODELRELEASE_BIND_ADDRESS: address the HTTP servers listen on (default 0.0.0.0 in a pod, where the
  kubelet's probes and Prometheus come from outside; 127.0.0.1 elsewhere, so an operator run on a
  workstation is not reachable from the network and does not take its ports on every address).

MLflow client retries: the operator's own registry calls go through `modelrelease.registry.mlflow`
(aiohttp, 10 s per attempt, 3 attempts). Any MLflow client code that runs in the operator process
would otherwise wait about 244 s on a dead server (7 retries, backoff factor 2, 120 s timeout), so
`apply_mlflow_client_defaults` sets, unless already set: MLFLOW_HTTP_REQUEST_MAX_RETRIES=2,
MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR=1, MLFLOW_HTTP_REQUEST_BACKOFF_JITTER=0.5 and
MLFLOW_HTTP_REQUEST_TIMEOUT=10: at most about 3 x 10 s + 1 s + 2 s = 33 s, in line with the backend.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from modelrelease.registry.base import tracking_uri_problem

DEFAULT_IMAGE = "modelrelease-serving:0.1.0"
MLFLOW_CLIENT_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0.5",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
}


class SettingsError(ValueError):
    """An operator environment variable is invalid; the message names it."""


def _is_http_url(value: str) -> bool:
    return tracking_uri_problem(value) is None


def _port(env: Mapping[str, str], name: str, default: int | None) -> int | None:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or int(raw) > 65535:
        raise SettingsError(f"{name}={raw!r}: expected a port number 0-65535")
    return int(raw) or None


def _list(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in env.get(name, "").split(",") if item.strip())


@dataclass(frozen=True)
class Settings:
    default_tracking_uri: str | None = None
    allowed_tracking_uris: tuple[str, ...] = ()
    namespaces: tuple[str, ...] = ()
    metrics_port: int | None = 9090
    health_port: int | None = 8080
    webhook_port: int | None = None
    webhook_secret: str | None = field(default=None, repr=False)
    default_image: str = DEFAULT_IMAGE
    bind_address: str = "127.0.0.1"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        default_uri = env.get("MODELRELEASE_DEFAULT_TRACKING_URI", "").strip() or None
        if default_uri is None and _is_http_url(env.get("MLFLOW_TRACKING_URI", "")):
            default_uri = env["MLFLOW_TRACKING_URI"].strip()
        if default_uri is not None and not _is_http_url(default_uri):
            raise SettingsError(f"MODELRELEASE_DEFAULT_TRACKING_URI={default_uri!r}: expected an http(s) URL")
        allowed = _list(env, "MODELRELEASE_ALLOWED_TRACKING_URIS")
        for prefix in allowed:
            if not _is_http_url(prefix):
                raise SettingsError(
                    f"MODELRELEASE_ALLOWED_TRACKING_URIS: {prefix!r} is not an http:// or https:// prefix"
                )
        webhook_port = _port(env, "MODELRELEASE_WEBHOOK_PORT", None)
        webhook_secret = env.get("MODELRELEASE_WEBHOOK_SECRET") or None
        if webhook_port is not None and not webhook_secret:
            raise SettingsError("MODELRELEASE_WEBHOOK_SECRET must be set when MODELRELEASE_WEBHOOK_PORT is")
        settings = cls(
            default_tracking_uri=default_uri,
            allowed_tracking_uris=allowed,
            namespaces=_list(env, "MODELRELEASE_NAMESPACES"),
            metrics_port=_port(env, "MODELRELEASE_METRICS_PORT", 9090),
            health_port=_port(env, "MODELRELEASE_HEALTH_PORT", 8080),
            webhook_port=webhook_port,
            webhook_secret=webhook_secret,
            default_image=env.get("MODELRELEASE_DEFAULT_IMAGE", "").strip() or DEFAULT_IMAGE,
            bind_address=env.get("MODELRELEASE_BIND_ADDRESS", "").strip()
            or ("0.0.0.0" if env.get("KUBERNETES_SERVICE_HOST") else "127.0.0.1"),  # in a pod: every address
        )
        if default_uri is not None and not settings.tracking_uri_allowed(default_uri):
            raise SettingsError(
                "MODELRELEASE_DEFAULT_TRACKING_URI is outside MODELRELEASE_ALLOWED_TRACKING_URIS"
            )
        return settings

    def tracking_uri_allowed(self, uri: str) -> bool:
        """http(s) only; with an allowlist, the URI must start with one of its prefixes."""
        if not _is_http_url(uri):
            return False
        candidate = uri if urlsplit(uri).path else uri + "/"  # http://host:5000 matches http://host:5000/
        return not self.allowed_tracking_uris or any(
            candidate.startswith(p) for p in self.allowed_tracking_uris
        )


def apply_mlflow_client_defaults(env: dict[str, str] | None = None) -> None:
    """Bound the MLflow client's retries and timeouts in this process (see the module docstring)."""
    target = os.environ if env is None else env
    for name, value in MLFLOW_CLIENT_DEFAULTS.items():
        target.setdefault(name, value)
