"""Artifact integrity end to end, with the real operator process against the sandbox: OpenSSF model
signatures made by `modelrelease sign` (the console script a pipeline runs) and checked against the
keys of a ConfigMap, `Enforce` blocking what is not signed by a trusted key over exactly the stored
bytes while the previous version keeps serving, `Warn` serving and recording, and a key set that
changes without an operator restart.
"""

from __future__ import annotations

import os
import subprocess
import sys
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from helpers import Cluster, Models, Operator, eventually, history, model_name, ready_on, release_spec
from kubernetes.client.exceptions import ApiException

from modelrelease.sandbox.stack import SandboxInfo

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
        warnings = {e["reason"] for e in cluster.events(ns, "fraud") if e["type"] == "Warning"}
        assert reason in warnings

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
