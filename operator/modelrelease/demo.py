"""`modelrelease demo`: the whole release story on a local sandbox, with a real scikit-learn model.

v1 behind alias `champion` serves; v2 takes the alias and rolls out; v3 misses the f1 gate and is
blocked; v4's artifact bytes are altered after stamping and are blocked; v5 crashes on rollout and is
rolled back to v2. The history table at the end is read from the ModelRelease's status.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

import yaml

from modelrelease.sandbox import stack
from modelrelease.sandbox.binaries import locate
from modelrelease.sandbox.kubelet import fault_key
from modelrelease.sandbox.registrar import Registrar

MODEL = "demo-classifier"
RELEASE = "demo"
NAMESPACE = "default"
F1_GATE = 0.9
REPO_ROOT = Path(__file__).resolve().parents[2]
CRD_FILE = REPO_ROOT / "crds" / "modelrelease.io_modelreleases.yaml"


def say(text: str) -> None:
    print(f"\n==> {text}", flush=True)


def wait_for(what: str, probe: Callable[[], Any], timeout: float = 90.0) -> Any:
    """Poll `probe` until it returns something truthy, or fail naming what was awaited."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.5)


class Demo:
    def __init__(self, info: stack.SandboxInfo) -> None:
        import kubernetes

        self.info = info
        os.environ.update(info.env)
        os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"
        self.registrar = Registrar(info, "demo")
        logging.getLogger("mlflow").setLevel(logging.WARNING)  # after the import, which configures it
        api = kubernetes.config.new_client_from_config(config_file=str(info.kubeconfig))
        self.custom = kubernetes.client.CustomObjectsApi(api)
        self.apps = kubernetes.client.AppsV1Api(api)

    # -- registry side: what a training pipeline does ------------------------------------------

    def register(self, quality: str) -> str:
        """Train, log and register a model; `quality` is "good" or "poor". Returns the version."""
        from mlflow.models import infer_signature
        from sklearn.datasets import load_breast_cancer
        from sklearn.dummy import DummyClassifier
        from sklearn.linear_model import LogisticRegression
        from sklearn.metrics import f1_score
        from sklearn.model_selection import train_test_split
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        data = load_breast_cancer(as_frame=True)
        x_train, x_test, y_train, y_test = train_test_split(
            data.data, data.target, test_size=0.25, random_state=7, stratify=data.target
        )
        estimator: Any = (
            make_pipeline(StandardScaler(), LogisticRegression(max_iter=500))
            if quality == "good"
            else DummyClassifier(strategy="constant", constant=0)
        )
        estimator.fit(x_train, y_train)
        f1 = float(f1_score(y_test, estimator.predict(x_test)))
        signature = infer_signature(x_test, estimator.predict(x_test))
        version = self.registrar.log_version(MODEL, estimator, signature, {"f1": f1}, stamp=False)
        print(f"    registered {MODEL} version {version} (f1={f1:.3f})")
        return version

    def stamp(self, version: str) -> None:
        digest = self.registrar.stamp(MODEL, version)
        print(f"    modelrelease stamp {MODEL} {version} -> {digest[:19]}...")

    def move_alias(self, version: str) -> None:
        self.registrar.move_alias(MODEL, version)
        print(f"    alias champion -> version {version}")

    def tamper(self, version: str) -> None:
        key = self.registrar.tamper(MODEL, version)
        print(f"    altered s3://{self.info.bucket}/{key} after stamping")

    # -- cluster side ----------------------------------------------------------------------------

    def release(self) -> dict[str, Any]:
        obj = self.custom.get_namespaced_custom_object(
            "modelrelease.io", "v1alpha1", NAMESPACE, "modelreleases", RELEASE
        )
        return cast(dict[str, Any], obj)

    def serving_uri(self) -> str | None:
        from kubernetes.client.exceptions import ApiException

        try:
            deployment = self.apps.read_namespaced_deployment(RELEASE, NAMESPACE)
        except ApiException:
            return None
        pod = deployment.spec.template.spec if deployment.spec else None
        for env in (pod.containers[0].env if pod else None) or []:
            if env.name == "MODEL_URI":
                return str(env.value)
        return None

    def wait_serving(self, version: str, phase: str) -> None:
        uri = f"models:/{MODEL}/{version}"

        def serving() -> bool:
            status = self.release().get("status", {})
            return (
                self.serving_uri() == uri
                and status.get("current", {}).get("version") == version
                and status.get("phase") == phase
            )

        wait_for(f"{uri} to serve with phase {phase}", serving)
        print(f"    Deployment {RELEASE} serves MODEL_URI={uri}; phase {phase}")

    def wait_history(self, version: str, outcome: str) -> dict[str, Any]:
        def entry() -> dict[str, Any] | None:
            history = self.release().get("status", {}).get("history", [])
            return next((h for h in history if h["version"] == version and h.get("outcome") == outcome), None)

        found: dict[str, Any] = wait_for(f"version {version} to be {outcome}", entry)
        print(f"    version {version}: {outcome} — {found.get('reason', '')}")
        return found

    def inject_crash(self, version: str) -> None:
        key = fault_key(f"models:/{MODEL}/{version}")
        kubectl(
            self.info,
            "create",
            "configmap",
            "sandbox-faults",
            "-n",
            NAMESPACE,
            f"--from-literal={key}=crashloop",
        )
        print(f"    ConfigMap sandbox-faults: {key}=crashloop")


def release_manifest() -> dict[str, Any]:
    return {
        "apiVersion": "modelrelease.io/v1alpha1",
        "kind": "ModelRelease",
        "metadata": {"name": RELEASE, "namespace": NAMESPACE},
        "spec": {
            "model": {"name": MODEL, "alias": "champion"},
            "registry": {"pollInterval": "5s"},
            "verify": {"metrics": [{"name": "f1", "min": F1_GATE}]},
            "serving": {"replicas": 2},
            "rollout": {"progressDeadlineSeconds": 15},
        },
    }


def kubectl(info: stack.SandboxInfo, *args: str, stdin: str | None = None) -> str:
    env = {**os.environ, **info.env}
    done = subprocess.run(
        [str(locate("kubectl")), *args], input=stdin, env=env, capture_output=True, text=True, check=True
    )
    return done.stdout


@contextmanager
def operator_process(info: stack.SandboxInfo, log: Path) -> Iterator[None]:
    env = {
        **os.environ,
        **info.env,
        "MODELRELEASE_DEFAULT_TRACKING_URI": info.mlflow_url,
        "MODELRELEASE_BIND_ADDRESS": "127.0.0.1",
        "MODELRELEASE_METRICS_PORT": str(stack.free_port()),
        "MODELRELEASE_HEALTH_PORT": str(stack.free_port()),
    }
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "modelrelease.cli", "run"], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        yield
    finally:
        stack.stop_process(process, timeout=15)


def print_history(release: dict[str, Any]) -> None:
    rows = [("VERSION", "OUTCOME", "STARTED", "FINISHED", "REASON")]
    for h in release.get("status", {}).get("history", []):
        rows.append(
            (
                h["version"],
                h.get("outcome", "InProgress"),
                h.get("startedAt", ""),
                h.get("finishedAt", ""),
                h.get("reason", ""),
            )
        )
    widths = [max(len(str(row[i])) for row in rows) for i in range(4)]
    for row in rows:
        print("  " + "  ".join(str(c).ljust(w) for c, w in zip(row[:4], widths, strict=True)) + "  " + row[4])


def story(demo: Demo, info: stack.SandboxInfo) -> None:
    say(f"v1 behind alias 'champion'; a ModelRelease that follows the alias (gate: f1 >= {F1_GATE})")
    v1 = demo.register("good")
    demo.stamp(v1)
    demo.move_alias(v1)
    kubectl(info, "apply", "-f", "-", stdin=yaml.safe_dump(release_manifest()))
    demo.wait_serving(v1, "Ready")

    say("v2 is registered and the alias moves: the Deployment rolls to the pinned v2")
    v2 = demo.register("good")
    demo.stamp(v2)
    demo.move_alias(v2)
    demo.wait_serving(v2, "Ready")

    say("v3 misses the f1 gate: blocked, v2 keeps serving")
    v3 = demo.register("poor")
    demo.stamp(v3)
    demo.move_alias(v3)
    demo.wait_history(v3, "Blocked")
    demo.wait_serving(v2, "Blocked")

    say("v4 is stamped, then its bytes change in S3: the digest check blocks it")
    v4 = demo.register("good")
    demo.stamp(v4)
    demo.tamper(v4)
    demo.move_alias(v4)
    demo.wait_history(v4, "Blocked")
    demo.wait_serving(v2, "Blocked")

    say("v5 passes every check but crashes on rollout: automatic rollback to v2")
    v5 = demo.register("good")
    demo.stamp(v5)
    demo.inject_crash(v5)
    demo.move_alias(v5)
    demo.wait_history(v5, "RolledBack")
    demo.wait_serving(v2, "Degraded")

    say("kubectl get mr")
    print(kubectl(info, "get", "mr", "-n", NAMESPACE))
    say("history, from status.history")
    print_history(demo.release())


def main(directory: Path, keep: bool = False) -> int:
    started = time.monotonic()
    say(f"starting the sandbox in {directory}")
    if (directory / "state.json").exists():
        stack.down(directory)
    info = stack.up(directory)
    try:
        stack.install_crd(info, CRD_FILE)
        with operator_process(info, directory / "logs" / "operator.log"):
            story(Demo(info), info)
    except (TimeoutError, subprocess.CalledProcessError) as exc:
        detail = exc.stderr if isinstance(exc, subprocess.CalledProcessError) else exc
        print(
            f"\ndemo failed: {detail}\noperator log: {directory / 'logs' / 'operator.log'}", file=sys.stderr
        )
        return 1
    finally:
        if keep:
            print(
                f"\nsandbox left running: source {directory / 'env'}; stop it with "
                f"`modelrelease sandbox down --dir {directory}`"
            )
        else:
            stack.down(directory)
    print(f"\ndemo finished in {time.monotonic() - started:.0f}s")
    return 0
