"""Bounds for the blocking MLflow client in the command-line tools (`sign`, `serve`).

MLflow's defaults retry a dead server for about four minutes (see `modelrelease.registry.mlflow`); a
command fails within a minute instead. Values the user exported win.
"""

from __future__ import annotations

import os

MLFLOW_HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_TIMEOUT": "30"}


def bound_mlflow_client() -> None:
    """Set the defaults in this process's environment, where MLflow reads them, unless already set."""
    for key, value in MLFLOW_HTTP_DEFAULTS.items():
        os.environ.setdefault(key, value)
