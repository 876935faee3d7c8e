"""`modelrelease demo`: the whole release story on a local sandbox, with a real scikit-learn model.

The serving pods run for real (the sandbox's pod runner starts `modelrelease serve` → `mlflow models
serve` on a loopback IP per pod). v1 behind alias `champion` serves; v2 takes the alias, rolls out and
answers its logged input example (the operator's smoke test); v3 misses the f1 gate and is blocked; v4's
artifact bytes are altered after stamping and are blocked; v5 cannot load, crashes for real and is rolled
back to v2; v6 loads but its server refuses its own input example, and the smoke test rolls it back. The
history table is read from the ModelRelease's status, and the demo ends by sending the logged input
example to the serving pod and printing its predictions.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
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
from modelrelease.sandbox.kubelet import RUN_ANNOTATION, RUN_AS_PROCESS
from modelrelease.sandbox.registrar import Registrar
from modelrelease.verify.smoke import invocations_url, post_json

MODEL = "demo-classifier"
RELEASE = "demo"
NAMESPACE = "default"
F1_GATE = 0.9
PROGRESS_DEADLINE_S = 30
REPO_ROOT = Path(__file__).resolve().parents[2]
CRD_FILE = REPO_ROOT / "crds" / "modelrelease.io_modelreleases.yaml"


_CLOCK = {"started": time.monotonic()}
"""When `main` started: each step says how far into the demo it begins."""


def say(text: str) -> None:
    print(f"\n==> [{time.monotonic() - _CLOCK['started']:3.0f}s] {text}", flush=True)


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
        # v6 is logged with an input example its signature refuses, on purpose: MLflow warns at length.
        logging.getLogger("mlflow.models.model").setLevel(logging.ERROR)
        api = kubernetes.config.new_client_from_config(config_file=str(info.kubeconfig))
        self.custom = kubernetes.client.CustomObjectsApi(api)
        self.apps = kubernetes.client.AppsV1Api(api)
        self.core = kubernetes.client.CoreV1Api(api)
        self.api = api

    # -- registry side: what a training pipeline does ------------------------------------------

    def register(self, quality: str, example: str = "matching") -> str:
        """Train, log and register a model; `quality` is "good" or "poor". Logged with three rows of
        input example under the training columns, or, with `example="renamed"`, under columns the
        model's signature does not know. Returns the version."""
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
        rows = x_test.head(3)
        if example == "renamed":
            rows = rows.rename(columns=lambda column: column.replace(" ", "_"))
        version = self.registrar.log_version(
            MODEL, estimator, signature, {"f1": f1}, stamp=False, input_example=rows
        )
        print(f"    registered {MODEL} version {version} (f1={f1:.3f}, input example: {example} columns)")
        return version

    def register_unloadable(self) -> str:
        version = self.registrar.log_unloadable(MODEL, stamp=False)
        print(f"    registered {MODEL} version {version}: a pyfunc model whose loader module does not exist")
        return version

    def subscribe(self, url: str, secret: str) -> None:
        """An MLflow webhook for alias moves to the operator's receiver, so that they arrive at once
        rather than at the next poll (which stays the fallback)."""
        from mlflow.exceptions import MlflowException

        try:
            webhook = self.registrar.client.create_webhook(
                name="modelrelease-demo", url=url, events=["model_version_alias.created"], secret=secret
            )
            probe = self.registrar.client.test_webhook(webhook.webhook_id)
            how = (
                "alias moves are pushed"
                if probe.success
                else f"test delivery failed ({probe.response_status})"
            )
        except MlflowException as exc:
            how = f"MLflow refused it ({exc.message[:100]})"
        print(f"    MLflow webhook -> {url}: {how}; the operator also polls every 5s")

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

    def pods(self, version: str) -> list[dict[str, Any]]:
        """The pods of `version` (by their pod-template annotation), as plain dicts."""
        listing = self.api.sanitize_for_serialization(self.core.list_namespaced_pod(NAMESPACE))
        return [
            pod
            for pod in listing.get("items", [])
            if (pod["metadata"].get("annotations") or {}).get("modelrelease.io/version") == version
            and not pod["metadata"].get("deletionTimestamp")
        ]

    def show_crash(self, version: str) -> None:
        """The real container's restarts, as the pod runner reports them."""

        def restarts() -> int:
            statuses = [
                c for p in self.pods(version) for c in p.get("status", {}).get("containerStatuses") or []
            ]
            return max((int(c.get("restartCount", 0)) for c in statuses), default=0)

        count = wait_for(f"version {version}'s container to restart", restarts)
        print(
            f"    version {version}'s container exited and was restarted ({count}x so far): CrashLoopBackOff"
        )

    def show_smoke_test(self, version: str) -> None:
        verification = self.release().get("status", {}).get("verification", [])
        entry: dict[str, Any] = next(
            (v for v in verification if v["check"] == "SmokeTest" and v.get("version") == version), {}
        )
        print(f"    smoke test of version {version}: {entry.get('outcome')} — {entry.get('reason', '')}")

    def predict(self, version: str) -> None:
        """Send the serving version's logged input example to its pod's IP, as the smoke test does."""
        import asyncio

        import mlflow

        location = self.registrar.client.get_model_version_download_uri(MODEL, version)
        path = mlflow.artifacts.download_artifacts(artifact_uri=f"{location}/serving_input_example.json")
        example = json.loads(Path(path).read_text())

        def ready() -> dict[str, Any] | None:
            return next(
                (
                    p
                    for p in self.pods(version)
                    if any(
                        c.get("type") == "Ready" and c.get("status") == "True"
                        for c in p.get("status", {}).get("conditions") or []
                    )
                ),
                None,
            )

        pod: dict[str, Any] = wait_for(f"a ready pod of version {version}", ready)
        url = invocations_url(pod["status"]["podIP"], 8080)
        status, body = asyncio.run(post_json(url, json.dumps(example).encode()))
        print(f"    POST {url} (pod {pod['metadata']['name']}), body serving_input_example.json:")
        print(f"      {json.dumps(example)[:150]}...")
        print(f"    HTTP {status}: {' '.join(body.split())}")


def release_manifest() -> dict[str, Any]:
    return {
        "apiVersion": "modelrelease.io/v1alpha1",
        "kind": "ModelRelease",
        "metadata": {"name": RELEASE, "namespace": NAMESPACE},
        "spec": {
            "model": {"name": MODEL, "alias": "champion"},
            "registry": {"pollInterval": "5s"},
            "verify": {"metrics": [{"name": "f1", "min": F1_GATE}]},
            # Real pods: the sandbox's pod runner runs them as local processes on loopback IPs of their own.
            "serving": {
                "replicas": 1,
                "template": {"metadata": {"annotations": {RUN_ANNOTATION: RUN_AS_PROCESS}}},
            },
            # Long enough for a real server to start on a busy machine; the crashing version waits it out.
            "rollout": {"progressDeadlineSeconds": PROGRESS_DEADLINE_S},
        },
    }


def kubectl(info: stack.SandboxInfo, *args: str, stdin: str | None = None) -> str:
    env = {**os.environ, **info.env}
    done = subprocess.run(
        [str(locate("kubectl")), *args], input=stdin, env=env, capture_output=True, text=True, check=True
    )
    return done.stdout


@contextmanager
def operator_process(info: stack.SandboxInfo, log: Path) -> Iterator[tuple[str, str]]:
    """The operator, with its MLflow webhook receiver on loopback: yields the receiver's URL and secret."""
    webhook_port, webhook_secret = stack.free_port(), secrets.token_hex(16)
    env = {
        **os.environ,
        **info.env,
        "MODELRELEASE_DEFAULT_TRACKING_URI": info.mlflow_url,
        "MODELRELEASE_BIND_ADDRESS": "127.0.0.1",
        "MODELRELEASE_METRICS_PORT": str(stack.free_port()),
        "MODELRELEASE_HEALTH_PORT": str(stack.free_port()),
        "MODELRELEASE_WEBHOOK_PORT": str(webhook_port),
        "MODELRELEASE_WEBHOOK_SECRET": webhook_secret,
    }
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "modelrelease.cli", "run"], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        yield f"http://127.0.0.1:{webhook_port}/webhooks/mlflow", webhook_secret
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


def story(demo: Demo, info: stack.SandboxInfo, webhook: tuple[str, str]) -> None:
    say(f"v1 behind alias 'champion'; a ModelRelease that follows the alias (gate: f1 >= {F1_GATE})")
    v1 = demo.register("good")
    demo.stamp(v1)
    demo.move_alias(v1)
    kubectl(info, "apply", "-f", "-", stdin=yaml.safe_dump(release_manifest()))
    demo.wait_serving(v1, "Ready")
    demo.subscribe(*webhook)

    say(
        "v2 is registered and the alias moves: the Deployment rolls to the pinned v2, whose new pod "
        "answers its logged input example (the smoke test) before the rollout counts as done"
    )
    v2 = demo.register("good")
    demo.stamp(v2)
    demo.move_alias(v2)
    demo.wait_serving(v2, "Ready")
    demo.show_smoke_test(v2)

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

    say(
        "v5 passes every check but cannot load: its server crashes for real; "
        f"rollback to v2 once the {PROGRESS_DEADLINE_S}s progress deadline passes"
    )
    v5 = demo.register_unloadable()
    demo.stamp(v5)
    demo.move_alias(v5)
    demo.show_crash(v5)
    demo.wait_history(v5, "RolledBack")
    demo.wait_serving(v2, "Degraded")

    say(
        "v6 loads and turns Ready, but its server refuses its own input example: the smoke test rolls it back"
    )
    v6 = demo.register("good", example="renamed")
    demo.stamp(v6)
    demo.move_alias(v6)
    found = demo.wait_history(v6, "RolledBack")
    print(f"    {found.get('message', '')}")
    demo.wait_serving(v2, "Degraded")

    say("kubectl get mr")
    print(kubectl(info, "get", "mr", "-n", NAMESPACE))
    say("history, from status.history")
    print_history(demo.release())
    say(f"the serving version {v2}, asked for predictions on its logged input example")
    demo.predict(v2)


def main(directory: Path, keep: bool = False) -> int:
    started = _CLOCK["started"] = time.monotonic()
    say(f"starting the sandbox in {directory}")
    if (directory / "state.json").exists():
        stack.down(directory)
    info = stack.up(directory)
    try:
        stack.install_crd(info, CRD_FILE)
        with operator_process(info, directory / "logs" / "operator.log") as webhook:
            story(Demo(info), info, webhook)
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
