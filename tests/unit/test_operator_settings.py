"""Operator settings from the environment, and the MLflow client bounds they apply."""

from __future__ import annotations

import pytest

from modelrelease.settings import (
    MLFLOW_CLIENT_DEFAULTS,
    Settings,
    SettingsError,
    apply_mlflow_client_defaults,
)


def test_defaults() -> None:
    settings = Settings.from_env({})
    assert settings == Settings()
    assert (settings.metrics_port, settings.health_port, settings.webhook_port) == (9090, 8080, None)
    assert settings.default_image == "modelrelease-serving:0.1.0"
    assert settings.default_tracking_uri is None


def test_the_servers_listen_on_every_address_in_a_pod_and_on_loopback_elsewhere() -> None:
    assert Settings.from_env({}).bind_address == "127.0.0.1"
    assert Settings.from_env({"KUBERNETES_SERVICE_HOST": "10.96.0.1"}).bind_address == "0.0.0.0"
    chosen = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "MODELRELEASE_BIND_ADDRESS": "127.0.0.1"}
    assert Settings.from_env(chosen).bind_address == "127.0.0.1"


def test_everything_from_the_environment() -> None:
    settings = Settings.from_env(
        {
            "MODELRELEASE_DEFAULT_TRACKING_URI": "http://mlflow.mlflow:5000",
            "MODELRELEASE_ALLOWED_TRACKING_URIS": "http://mlflow.mlflow:5000/, https://mlflow.example.org/",
            "MODELRELEASE_NAMESPACES": "ml, risk ,",
            "MODELRELEASE_METRICS_PORT": "0",
            "MODELRELEASE_HEALTH_PORT": "18080",
            "MODELRELEASE_WEBHOOK_PORT": "9443",
            "MODELRELEASE_WEBHOOK_SECRET": "s3cret",
            "MODELRELEASE_DEFAULT_IMAGE": "serving:2",
            "MODELRELEASE_BIND_ADDRESS": "127.0.0.1",
        }
    )
    assert settings.allowed_tracking_uris == ("http://mlflow.mlflow:5000/", "https://mlflow.example.org/")
    assert settings.namespaces == ("ml", "risk")
    assert settings.metrics_port is None  # 0 disables
    assert (settings.health_port, settings.webhook_port) == (18080, 9443)
    assert "s3cret" not in repr(settings)


def test_default_tracking_uri_falls_back_to_mlflow_tracking_uri_when_http() -> None:
    assert Settings.from_env({"MLFLOW_TRACKING_URI": "http://m:5000"}).default_tracking_uri == "http://m:5000"
    assert Settings.from_env({"MLFLOW_TRACKING_URI": "sqlite:///x.db"}).default_tracking_uri is None


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"MODELRELEASE_METRICS_PORT": "http"}, "MODELRELEASE_METRICS_PORT"),
        ({"MODELRELEASE_HEALTH_PORT": "70000"}, "MODELRELEASE_HEALTH_PORT"),
        ({"MODELRELEASE_WEBHOOK_PORT": "9443"}, "MODELRELEASE_WEBHOOK_SECRET"),
        ({"MODELRELEASE_DEFAULT_TRACKING_URI": "file:///tmp/mlruns"}, "MODELRELEASE_DEFAULT_TRACKING_URI"),
        ({"MODELRELEASE_ALLOWED_TRACKING_URIS": "ftp://x/"}, "MODELRELEASE_ALLOWED_TRACKING_URIS"),
        (
            {
                "MODELRELEASE_DEFAULT_TRACKING_URI": "http://other:5000",
                "MODELRELEASE_ALLOWED_TRACKING_URIS": "http://mlflow:5000/",
            },
            "MODELRELEASE_ALLOWED_TRACKING_URIS",
        ),
    ],
)
def test_invalid_settings_name_the_variable(env: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError, match=named):
        Settings.from_env(env)


def test_tracking_uri_allowlist() -> None:
    open_settings = Settings()
    assert open_settings.tracking_uri_allowed("https://anything.example/")
    assert not open_settings.tracking_uri_allowed("file:///etc/passwd")
    assert not open_settings.tracking_uri_allowed("http://")
    strict = Settings(allowed_tracking_uris=("http://mlflow.mlflow:5000/",))
    assert strict.tracking_uri_allowed("http://mlflow.mlflow:5000/")
    assert strict.tracking_uri_allowed("http://mlflow.mlflow:5000")
    assert not strict.tracking_uri_allowed("http://mlflow.mlflow.evil.example:5000/")


def test_mlflow_client_bounds_are_set_unless_the_operator_sets_them() -> None:
    env = {"MLFLOW_HTTP_REQUEST_TIMEOUT": "30"}
    apply_mlflow_client_defaults(env)
    assert env["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "30"
    assert (
        env["MLFLOW_HTTP_REQUEST_MAX_RETRIES"]
        == MLFLOW_CLIENT_DEFAULTS["MLFLOW_HTTP_REQUEST_MAX_RETRIES"]
        == "2"
    )
    assert env["MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"] == "1"
