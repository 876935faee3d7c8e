"""The local sandbox (`stack`), its control-plane binaries (`binaries`) and its pod runner (`kubelet`)."""

NO_TELEMETRY = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}
"""For every MLflow process of the sandbox (its server, the clients that source DIR/env, pod processes):
MLflow 3 otherwise sends usage telemetry to its vendor's hosts, and the sandbox talks to loopback only."""
