"""Artifact integrity end to end against the sandbox's real MLflow and S3.

With the real operator process: OpenSSF model signatures made by `modelrelease sign` (the console
script a pipeline runs) and checked against the keys of a ConfigMap, `Enforce` blocking what is not
signed by a trusted key over exactly the stored bytes while the previous version keeps serving, `Warn`
serving and recording, and a key set that changes without an operator restart; re-verification of the
serving version's bytes (Degraded=True ServingArtifactChanged, cleared when they are restored), and a pod
the sandbox really runs refusing altered bytes when it restarts. As processes: `modelrelease sign`
failing in one line, and `modelrelease serve` answering on a loopback port with the verified digest and
refusing bytes altered after verification.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from kubernetes.client.exceptions import ApiException

from integration.helpers import (
    Cluster,
    Models,
    Operator,
    eventually,
    history,
    model_name,
    ready_on,
    release_spec,
)
from modelrelease.sandbox.kubelet import RUN_ANNOTATION, RUN_AS_PROCESS
from modelrelease.sandbox.stack import SandboxInfo, free_port

pytestmark = pytest.mark.slow

CLI = Path(sys.executable).with_name("modelrelease")
SIGNERS = "model-signers"


class Key:
    """An EC key pair as a pipeline keeps it: the private key in a PEM file, the public PEM to trust."""

    def __init__(self, folder: Path, name: str, curve: ec.EllipticCurve) -> None:
        key = ec.generate_private_key(curve)
        self.private = folder / f"{name}.pem"
        self.private.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        self.public = (
            key.public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            .decode()
        )


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Key]:
    folder = tmp_path_factory.mktemp("keys")
    return {
        "pipeline": Key(folder, "pipeline", ec.SECP256R1()),
        "rotated": Key(folder, "rotated", ec.SECP384R1()),
        "stranger": Key(folder, "stranger", ec.SECP256R1()),
    }


def cli(sandbox: SandboxInfo, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CLI), *args],
        env={**os.environ, **sandbox.env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def sign(sandbox: SandboxInfo, key: Key, model: str, version: str) -> None:
    signed = cli(sandbox, "sign", "--private-key", str(key.private), model, version)
    assert signed.returncode == 0, signed.stderr
    assert signed.stdout.startswith(f"{model} version {version}: signed, ") and signed.stdout.endswith(
        "/model.sig\n"
    )


def trust(cluster: Cluster, namespace: str, **pems: str) -> None:
    """Create or extend the signers ConfigMap (merge: keys already there stay)."""
    try:
        cluster.core.create_namespaced_config_map(
            namespace, {"metadata": {"name": SIGNERS, "namespace": namespace}, "data": pems}
        )
    except ApiException as exc:
        if exc.status != 409:
            raise
        cluster.core.patch_namespaced_config_map(SIGNERS, namespace, {"data": pems})


def signed_spec(model: str, mode: str = "Enforce", **extra: Any) -> dict[str, Any]:
    # The digest check is off: the signature alone decides, and it still pins the digest it verified.
    verify = {"digest": "Off", "signature": mode, "signersConfigMap": SIGNERS}
    return release_spec(model, verify=verify, **extra)


def blocked(cluster: Cluster, namespace: str, name: str, version: str) -> dict[str, Any]:
    """The Verified=False condition once `version` is Blocked (empty until then)."""
    status = cluster.status(namespace, name)
    if (version, "Blocked") not in history(status):
        return {}
    return cluster.condition(namespace, name, "Verified")


def check(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    entries = cluster.status(namespace, name).get("verification") or []
    return next(e for e in entries if e["check"] == "Signature")


def container(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    deployment = cluster.deployment(namespace, name)
    assert deployment is not None
    serving: dict[str, Any] = deployment["spec"]["template"]["spec"]["containers"][0]
    return serving


def digest_env(cluster: Cluster, namespace: str, name: str) -> str | None:
    env = container(cluster, namespace, name).get("env") or []
    return next((e.get("value") for e in env if e["name"] == "MODEL_DIGEST"), None)


def test_enforce_serves_a_trusted_signature_and_blocks_the_rest(
    cluster: Cluster,
    models: Models,
    operator: Operator,
    sandbox: SandboxInfo,
    ns: str,
    keys: dict[str, Key],
) -> None:
    model = model_name("signed")
    trust(cluster, ns, pipeline=keys["pipeline"].public)
    v1 = models.register(model)
    sign(sandbox, keys["pipeline"], model, v1)
    models.move_alias(model, v1)
    cluster.apply_release(ns, "fraud", signed_spec(model))

    eventually("signed v1 Ready", partial(ready_on, cluster, ns, "fraud", model, v1))
    entry = check(cluster, ns, "fraud")
    assert entry["outcome"] == "Passed" and entry["version"] == v1
    assert entry["reason"].startswith(f"signed by key pipeline of ConfigMap {SIGNERS} (")
    digest = cluster.status(ns, "fraud")["current"]["digest"]
    assert digest == models.stamp(model, v1)  # what `modelrelease stamp` computes, though the check was off
    # What the pods check at load: the verified digest, and the default image's `modelrelease serve`.
    assert digest_env(cluster, ns, "fraud") == digest
    assert container(cluster, ns, "fraud")["command"] == [
        "modelrelease",
        "serve",
        "--host",
        "0.0.0.0",
        "--port",
        "8080",
    ]

    cases = []
    untrusted = models.register(model)
    sign(sandbox, keys["stranger"], model, untrusted)
    cases.append(
        (untrusted, "SignatureInvalid", f"model.sig is not signed by any key of ConfigMap {SIGNERS}")
    )
    unsigned = models.register(model)
    cases.append((unsigned, "SignatureMissing", "no model.sig at the artifact root"))
    altered = models.register(model)
    sign(sandbox, keys["pipeline"], model, altered)
    changed = models.tamper(model, altered).rsplit("/", 1)[-1]
    cases.append((altered, "SignatureInvalid", f"signed: changed {changed}"))

    def warned(reason: str) -> bool:
        return any(e["reason"] == reason and e["type"] == "Warning" for e in cluster.events(ns, "fraud"))

    for version, reason, detail in cases:
        models.move_alias(model, version)
        verified = eventually(
            f"v{version} Blocked", partial(blocked, cluster, ns, "fraud", version), timeout=60
        )
        assert verified["status"] == "False" and verified["reason"] == reason, verified
        assert detail in verified["message"] and "\n" not in verified["message"]
        entry = check(cluster, ns, "fraud")
        assert (entry["outcome"], entry["version"]) == ("Failed", version)
        status = cluster.status(ns, "fraud")
        assert status["phase"] == "Blocked" and status["current"]["version"] == v1
        assert cluster.model_uri(ns, "fraud") == f"models:/{model}/{v1}"
        assert digest_env(cluster, ns, "fraud") == digest
        eventually(f"a {reason} Warning Event", partial(warned, reason))  # Events come last in a pass

    assert history(cluster.status(ns, "fraud")) == [
        (v1, "Succeeded"),
        (untrusted, "Blocked"),
        (unsigned, "Blocked"),
        (altered, "Blocked"),
    ]


def test_warn_serves_an_unsigned_version_and_records_it(
    cluster: Cluster, models: Models, operator: Operator, ns: str, keys: dict[str, Key]
) -> None:
    model = model_name("warn")
    trust(cluster, ns, pipeline=keys["pipeline"].public)
    v1 = models.register(model)
    models.move_alias(model, v1)
    cluster.apply_release(ns, "fraud", signed_spec(model, mode="Warn"))

    eventually("unsigned v1 Ready under Warn", partial(ready_on, cluster, ns, "fraud", model, v1))
    entry = check(cluster, ns, "fraud")
    assert (entry["outcome"], entry["reason"]) == ("Warned", "no model.sig at the artifact root")
    verified = cluster.condition(ns, "fraud", "Verified")
    assert (verified["status"], verified["reason"]) == ("True", "ChecksPassedWithWarnings")
    assert "Signature: no model.sig at the artifact root" in verified["message"]


def test_signers_are_read_at_each_verification_without_a_restart(
    cluster: Cluster,
    models: Models,
    operator: Operator,
    sandbox: SandboxInfo,
    ns: str,
    keys: dict[str, Key],
) -> None:
    model = model_name("rotate")
    v1 = models.register(model)
    sign(sandbox, keys["pipeline"], model, v1)
    models.move_alias(model, v1)
    spec = signed_spec(model)
    cluster.apply_release(ns, "fraud", spec)
    verified = eventually("v1 Blocked: no ConfigMap", partial(blocked, cluster, ns, "fraud", v1), timeout=60)
    assert verified["reason"] == "SignersNotFound"
    assert verified["message"] == f"version {v1} blocked: ConfigMap {SIGNERS} not found"
    assert cluster.deployment(ns, "fraud") is None

    # The ConfigMap appears; a spec change (a new generation) verifies v1 again, with it.
    trust(cluster, ns, pipeline=keys["pipeline"].public)
    cluster.apply_release(ns, "fraud", {**spec, "rollout": {**spec["rollout"], "historyLimit": 9}})
    eventually("v1 Ready once trusted", partial(ready_on, cluster, ns, "fraud", model, v1))

    v2 = models.register(model)
    sign(sandbox, keys["rotated"], model, v2)
    models.move_alias(model, v2)
    verified = eventually(
        "v2 Blocked: key not trusted yet", partial(blocked, cluster, ns, "fraud", v2), timeout=60
    )
    assert verified["reason"] == "SignatureInvalid"

    # The pipeline rotated its key: trusting it is one ConfigMap edit, honoured by the running operator.
    trust(cluster, ns, rotated=keys["rotated"].public)
    v3 = models.register(model)
    sign(sandbox, keys["rotated"], model, v3)
    models.move_alias(model, v3)
    eventually("v3 Ready, signed by the rotated key", partial(ready_on, cluster, ns, "fraud", model, v3))
    assert check(cluster, ns, "fraud")["reason"].startswith(f"signed by key rotated of ConfigMap {SIGNERS}")
    assert operator.process is not None and operator.process.poll() is None


def test_sign_fails_in_one_line_and_uploads_what_the_library_verifies(
    models: Models, sandbox: SandboxInfo, keys: dict[str, Key], tmp_path: Path
) -> None:
    import mlflow.artifacts
    import model_signing

    from modelrelease.registry.digest import local_digest

    model = model_name("sign")
    v1 = models.register(model)
    stamped = models.client.get_model_version(model, v1).tags["modelrelease.io/sha256"]
    sign(sandbox, keys["pipeline"], model, v1)

    # A models:/ download carries model.sig; the library's own verifier accepts it, and the canonical
    # digest (which leaves model.sig out) is still the stamped one.
    local = Path(mlflow.artifacts.download_artifacts(f"models:/{model}/{v1}", dst_path=str(tmp_path / "dl")))
    public = tmp_path / "pipeline.pub"
    public.write_text(keys["pipeline"].public)
    model_signing.verifying.Config().use_elliptic_key_verifier(public_key=public).verify(
        local, local / "model.sig"
    )
    assert local_digest(local) == stamped

    rsa_key = tmp_path / "rsa.pem"
    rsa_key.write_bytes(
        rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    private = str(keys["pipeline"].private)
    for args, message in (
        ((str(tmp_path / "absent.pem"), model, v1), "cannot read"),
        ((str(rsa_key), model, v1), "is not an unencrypted PEM EC private key"),
        ((private, model, "999"), f"model {model} has no version 999"),
        ((private, "never-registered-model", "1"), "registered model never-registered-model not found"),
    ):
        failed = cli(sandbox, "sign", "--private-key", *args)
        assert failed.returncode == 1 and failed.stdout == ""
        assert failed.stderr.startswith("modelrelease sign: ") and message in failed.stderr, failed.stderr
        assert failed.stderr.count("\n") == 1 and "Traceback" not in failed.stderr


# ------------------------------------------------------------------------------ modelrelease serve

IRIS_ROWS = {
    "dataframe_split": {
        "columns": ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"],
        "data": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]],
    }
}


@contextmanager
def serving(sandbox: SandboxInfo, folder: Path, uri: str, digest: str) -> Iterator[ServeProcess]:
    """`modelrelease serve` as the pod runs it, on a loopback port, with its own termination log."""
    served = ServeProcess(free_port(), folder / "termination-log", folder / "serve.log")
    env = {**os.environ, **sandbox.env, "MODEL_URI": uri, "MODEL_DIGEST": digest}
    argv = ["serve", "--host", "127.0.0.1", "--port", str(served.port), "--model-dir", str(folder / "model")]
    with served.log.open("wb") as log:
        process = subprocess.Popen(
            [str(CLI), *argv, "--termination-log", str(served.termination_log)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # mlflow starts uvicorn as a child: stop the whole group
        )
    served.process = process
    try:
        yield served
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)


@dataclass
class ServeProcess:
    port: int
    termination_log: Path
    log: Path
    process: subprocess.Popen[bytes] | None = None

    def get(self, path: str, body: dict[str, Any] | None = None) -> tuple[int, bytes] | None:
        """The answer of the model server, or None while nothing listens (or it is not ready)."""
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(
                f"modelrelease serve exited with {self.process.returncode}: {self.log.read_text()}"
            )
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}", data=data, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                return int(answer.status), bytes(answer.read())
        except urllib.error.HTTPError as error:
            return int(error.code), bytes(error.read())
        except OSError:
            return None


def test_serve_answers_with_the_verified_digest(models: Models, sandbox: SandboxInfo, tmp_path: Path) -> None:
    model = model_name("serve")
    v1 = models.register(model)
    digest = models.client.get_model_version(model, v1).tags["modelrelease.io/sha256"]
    with serving(sandbox, tmp_path, f"models:/{model}/{v1}", digest) as served:
        eventually("/ping to answer 200", lambda: (served.get("/ping") or (0,))[0] == 200, timeout=180)
        status, body = served.get("/invocations", IRIS_ROWS) or (0, b"")
        assert status == 200, body
        assert json.loads(body) == {"predictions": [0, 2]}
    first = served.log.read_text().splitlines()[0]
    uri, local = f"models:/{model}/{v1}", tmp_path / "model"
    assert first == f"modelrelease serve: {uri} downloaded to {local}, digest {digest} (matches)"
    assert not served.termination_log.exists()


def test_serve_refuses_bytes_altered_after_verification(
    models: Models, sandbox: SandboxInfo, tmp_path: Path
) -> None:
    model = model_name("altered")
    v1 = models.register(model)
    verified = models.client.get_model_version(model, v1).tags["modelrelease.io/sha256"]
    models.tamper(model, v1)  # after the digest was recorded: what a pod restart would load
    with serving(sandbox, tmp_path, f"models:/{model}/{v1}", verified) as served:
        assert served.process is not None
        assert served.process.wait(timeout=180) == 1
    line = served.termination_log.read_text()
    assert re.fullmatch(
        rf"modelrelease serve: models:/{model}/{v1} has digest sha256:[0-9a-f]{{64}}, expected {verified} "
        r"\(MODEL_DIGEST\): refusing to serve it\n",
        line,
    ), line
    assert line.split(" has digest ")[1].split(",")[0] != verified
    assert served.log.read_text() == line  # the same one line on stderr, nothing else


# ------------------------------------------------------------------------------ re-verification


def degraded_reason(cluster: Cluster, namespace: str, name: str, status: str) -> dict[str, Any]:
    condition = cluster.condition(namespace, name, "Degraded")
    return condition if condition.get("status") == status else {}


def test_reverification_notices_altered_serving_bytes_and_clears_when_restored(
    cluster: Cluster, models: Models, operator: Operator, ns: str
) -> None:
    model = model_name("reverify")
    v1 = models.register(model)
    models.move_alias(model, v1)
    cluster.apply_release(ns, "fraud", release_spec(model, verify={"reverifyInterval": "30s"}))
    eventually("v1 Ready", partial(ready_on, cluster, ns, "fraud", model, v1))
    verified = cluster.status(ns, "fraud")["current"]["digest"]
    before = cluster.deployment(ns, "fraud")
    assert before is not None
    changes = operator.metric("modelrelease_serving_artifact_changes_total")

    key = models.tamper(model, v1)  # appends one byte to the serialized estimator

    condition = eventually(
        "Degraded=True after the next re-hash",
        partial(degraded_reason, cluster, ns, "fraud", "True"),
        timeout=120,
    )
    assert condition["reason"] == "ServingArtifactChanged"
    assert condition["message"].startswith(f"version {v1}: its artifacts now hash to sha256:")
    assert f"not the verified {verified}" in condition["message"]
    status = cluster.status(ns, "fraud")
    assert status["phase"] == "Degraded" and status["current"]["digest"] == verified

    def changed_events() -> list[str]:  # Events and metrics come last in a pass, after the status
        return [e["type"] for e in cluster.events(ns, "fraud") if e["reason"] == "ServingArtifactChanged"]

    assert eventually("a ServingArtifactChanged Event", changed_events) == ["Warning"]
    counted = partial(operator.metric, "modelrelease_serving_artifact_changes_total")
    eventually("the change counted", lambda: counted() == changes + 1)
    after = cluster.deployment(ns, "fraud")
    assert after is not None  # left alone: its pods refuse the altered bytes when they next start
    assert after["metadata"]["generation"] == before["metadata"]["generation"]
    assert after["spec"]["template"] == before["spec"]["template"]

    altered = models.s3.get_object(Bucket=models.sandbox.bucket, Key=key)["Body"].read()
    models.s3.put_object(Bucket=models.sandbox.bucket, Key=key, Body=altered[:-1])  # restored
    eventually(
        "Degraded=False once the bytes match",
        partial(degraded_reason, cluster, ns, "fraud", "False"),
        timeout=120,
    )
    assert cluster.condition(ns, "fraud", "Degraded")["reason"] == "AsExpected"
    eventually("phase Ready again", partial(ready_on, cluster, ns, "fraud", model, v1))


def test_a_real_pod_restarted_on_altered_bytes_refuses_them(
    cluster: Cluster, models: Models, operator: Operator, ns: str
) -> None:
    """The whole story with a pod the sandbox really runs (`modelrelease serve`, then MLflow): bytes altered
    behind the registry's back are flagged by re-verification, and the next pod start refuses them."""
    model = model_name("refuse")
    v1 = models.register(model)
    models.move_alias(model, v1)
    template = {"metadata": {"annotations": {RUN_ANNOTATION: RUN_AS_PROCESS}}}
    spec = release_spec(model, verify={"reverifyInterval": "30s"}, serving={"template": template})
    spec["rollout"] = {"progressDeadlineSeconds": 300}
    cluster.apply_release(ns, "fraud", spec)
    eventually("v1 served by a real pod", partial(ready_on, cluster, ns, "fraud", model, v1), timeout=300)
    verified = cluster.status(ns, "fraud")["current"]["digest"]
    before = cluster.deployment(ns, "fraud")
    assert before is not None

    models.tamper(model, v1)
    (pod,) = [p for p in cluster.core.list_namespaced_pod(ns).items if p.metadata.deletion_timestamp is None]
    cluster.core.delete_namespaced_pod(pod.metadata.name, ns)  # as a node drain or an eviction would

    def refused() -> dict[str, Any] | None:
        for item in cluster.core.list_namespaced_pod(ns).items:
            if item.metadata.name == pod.metadata.name or item.metadata.deletion_timestamp is not None:
                continue
            for container in item.status.container_statuses or []:
                last = container.last_state.terminated if container.last_state else None
                if last is not None and last.exit_code == 1 and last.message:
                    return {"message": last.message, "ready": container.ready}
        return None

    found = eventually("the new pod to refuse the altered bytes", refused, timeout=300)
    assert found["ready"] is False
    assert re.fullmatch(
        rf"modelrelease serve: models:/{model}/{v1} has digest sha256:[0-9a-f]{{64}}, expected {verified} "
        r"\(MODEL_DIGEST\): refusing to serve it",
        found["message"],
    ), found["message"]
    condition = eventually(
        "Degraded=True ServingArtifactChanged",
        partial(degraded_reason, cluster, ns, "fraud", "True"),
        timeout=120,
    )
    assert condition["reason"] == "ServingArtifactChanged"
    after = cluster.deployment(ns, "fraud")
    assert after is not None and after["spec"]["template"] == before["spec"]["template"]
    assert cluster.status(ns, "fraud")["current"]["version"] == v1  # nothing was rolled back or forward
