"""The registration side of a release, as a training pipeline does it against the sandbox's registry.

Log a real model with its metrics, register it as a new version, stamp its digest, move an alias —
and, for fault drills, alter the stored bytes behind the registry's back. Used by the demo and the
integration tests, so both tell the same story.
"""

from __future__ import annotations

from typing import Any

from modelrelease.registry.commands import stamp_command
from modelrelease.sandbox.stack import SandboxInfo

DIGEST_TAG = "modelrelease.io/sha256"


class Registrar:
    def __init__(self, sandbox: SandboxInfo, experiment: str) -> None:
        import boto3
        import mlflow

        self.sandbox = sandbox
        self.client = mlflow.MlflowClient(tracking_uri=sandbox.mlflow_url)
        mlflow.set_tracking_uri(sandbox.mlflow_url)
        # An explicit experiment id, not mlflow.set_experiment: that also exports MLFLOW_EXPERIMENT_ID,
        # which every subprocess then inherits.
        found = self.client.get_experiment_by_name(experiment)
        self.experiment_id = found.experiment_id if found else self.client.create_experiment(experiment)
        self.s3 = boto3.client("s3", endpoint_url=sandbox.s3_url)

    def log_version(
        self,
        name: str,
        estimator: Any,
        signature: Any,
        metrics: dict[str, float],
        stamp: bool = True,
        input_example: Any = None,
    ) -> str:
        """Log `estimator` in a run with `metrics`, register it under `name`; return the new version.

        With `input_example` (a few rows, e.g. a DataFrame), MLflow also saves `serving_input_example.json`,
        the request the operator's smoke test sends to the new pods. MLflow only warns when the example does
        not fit the signature, so a version whose server refuses its own example can be logged on purpose."""
        import mlflow

        with mlflow.start_run(experiment_id=self.experiment_id):
            mlflow.log_metrics(metrics)
            info = mlflow.sklearn.log_model(
                estimator,
                name="model",
                signature=signature,
                input_example=input_example,
                registered_model_name=name,
                pip_requirements=["scikit-learn"],  # skips requirement inference (a subprocess per model)
            )
        version = str(info.registered_model_version)
        if stamp:
            self.stamp(name, version)
        return version

    def log_unloadable(self, name: str, stamp: bool = True) -> str:
        """Register a version that cannot load: a pyfunc model whose loader module does not exist, so
        `mlflow models serve` exits when it starts (a crash that needs no fault injection)."""
        import tempfile
        from pathlib import Path

        import mlflow

        with mlflow.start_run(experiment_id=self.experiment_id), tempfile.TemporaryDirectory() as scratch:
            mlflow.log_metrics({"f1": 0.99})
            weights = Path(scratch) / "weights.txt"
            weights.write_text("not a model")
            info = mlflow.pyfunc.log_model(
                name="model",
                loader_module="modelrelease_missing_loader",
                data_path=str(weights),
                registered_model_name=name,
                pip_requirements=[],
            )
        version = str(info.registered_model_version)
        if stamp:
            self.stamp(name, version)
        return version

    def stamp(self, name: str, version: str) -> str:
        """`modelrelease stamp NAME VERSION`: record the version's digest under the digest tag."""
        return stamp_command(name, version, DIGEST_TAG)

    def move_alias(self, name: str, version: str, alias: str = "champion") -> None:
        self.client.set_registered_model_alias(name, alias, version)

    def tamper(self, name: str, version: str) -> str:
        """Append a byte to the version's serialized estimator in S3; return the object key."""
        uri = self.client.get_model_version_download_uri(name, version)
        prefix = uri.split(":", 1)[1].lstrip("/")
        listing = self.s3.list_objects_v2(Bucket=self.sandbox.bucket, Prefix=prefix)
        # The serialized estimator: model.skops (MLflow 3's default for scikit-learn) or model.pkl.
        key = next(o["Key"] for o in listing["Contents"] if o["Key"].endswith(("model.skops", "model.pkl")))
        body = self.s3.get_object(Bucket=self.sandbox.bucket, Key=key)["Body"].read()
        self.s3.put_object(Bucket=self.sandbox.bucket, Key=key, Body=body + b"\0")
        return str(key)
