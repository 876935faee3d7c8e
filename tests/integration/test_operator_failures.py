"""The real operator process against the sandbox when the registry's answer is bad: a model, alias or
version that does not exist, an artifact missing from the object store, an incompatible input schema;
and the registration-side CLI (`modelrelease digest`, `modelrelease stamp`) as a training pipeline runs it.

What serves keeps serving, a condition says why in one line, and recovery needs no human.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from integration.helpers import (
    Cluster,
    Models,
    Operator,
    RegistryProxy,
    eventually,
    history,
    model_name,
    ready_on,
    registry_proxy,
    release_spec,
)
from modelrelease.sandbox.registrar import DIGEST_TAG
from modelrelease.sandbox.stack import SandboxInfo, free_port

pytestmark = pytest.mark.slow

POLL_S = 5.0  # release_spec's default pollInterval
CLI = Path(sys.executable).with_name("modelrelease")  # the console script a user runs
DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


def resolved_false(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    condition = cluster.condition(namespace, name, "Resolved")
    return condition if condition.get("status") == "False" else {}


def warning_event(cluster: Cluster, namespace: str, name: str, reason: str) -> dict[str, Any] | None:
    """The Warning Event with `reason` (the operator writes Events last in a pass, after the Deployment)."""
    events = cluster.events(namespace, name)
    return next((e for e in events if e["reason"] == reason and e["type"] == "Warning"), None)


def one_line(message: str) -> bool:
    return bool(message) and "\n" not in message and "Traceback" not in message


def test_missing_model_creates_nothing_and_serves_once_registered(
    cluster: Cluster, models: Models, operator: Operator, ns: str
) -> None:
    model = model_name("nomodel")
    cluster.apply_release(ns, "fraud", release_spec(model))
    resolved = eventually("Resolved=False", partial(resolved_false, cluster, ns, "fraud"))
    assert resolved["reason"] == "ModelNotFound"
    assert model in resolved["message"] and one_line(resolved["message"])
    assert eventually("a ModelNotFound Event", partial(warning_event, cluster, ns, "fraud", "ModelNotFound"))
    assert cluster.deployment(ns, "fraud") is None
    status = cluster.status(ns, "fraud")
    assert status["phase"] == "Failed" and not status.get("history")  # nothing to act on, nothing touched

    v1 = models.register(model)
    models.move_alias(model, v1)
    aliased = time.monotonic()
    eventually(
        "the Deployment created for v1 by the next poll",
        lambda: cluster.model_uri(ns, "fraud") == f"models:/{model}/{v1}",
        timeout=POLL_S + 15,
    )
    print(f"\nalias set on a missing model -> Deployment created: {time.monotonic() - aliased:.2f}s")
    eventually("v1 Ready", partial(ready_on, cluster, ns, "fraud", model, v1))
    assert cluster.condition(ns, "fraud", "Resolved")["reason"] == "AliasResolved"
    assert history(cluster.status(ns, "fraud")) == [(v1, "Succeeded")]


def test_missing_alias_recovers_and_a_missing_pinned_version_leaves_the_deployment_alone(
    cluster: Cluster, models: Models, operator: Operator, ns: str
) -> None:
    model = model_name("noalias")
    v1 = models.register(model)  # no alias yet
    cluster.apply_release(ns, "fraud", release_spec(model))
    resolved = eventually("Resolved=False", partial(resolved_false, cluster, ns, "fraud"))
    assert resolved["reason"] == "AliasNotFound"
    assert "champion" in resolved["message"] and one_line(resolved["message"])
    assert cluster.deployment(ns, "fraud") is None

    models.move_alias(model, v1)
    eventually("v1 Ready once the alias exists", partial(ready_on, cluster, ns, "fraud", model, v1))
    before = cluster.deployment(ns, "fraud")
    assert before is not None

    # A pin the registry does not know (yet): version 2 is registered only later.
    v2 = str(int(v1) + 1)
    cluster.apply_release(ns, "fraud", {"model": {"name": model, "version": v2, "alias": None}})
    resolved = eventually("Resolved=False", partial(resolved_false, cluster, ns, "fraud"))
    assert resolved["reason"] == "VersionNotFound"
    assert f"version {v2}" in resolved["message"] and one_line(resolved["message"])
    assert eventually(
        "a VersionNotFound Event", partial(warning_event, cluster, ns, "fraud", "VersionNotFound")
    )
    after = cluster.deployment(ns, "fraud")
    assert after is not None
    # A spec the registry cannot resolve leaves the Deployment untouched: no write, no rollout.
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert cluster.model_uri(ns, "fraud") == f"models:/{model}/{v1}"
    status = cluster.status(ns, "fraud")
    assert status["current"]["version"] == v1 and status["phase"] == "Degraded"
    degraded = cluster.condition(ns, "fraud", "Degraded")
    assert (degraded["status"], degraded["reason"]) == ("True", "VersionNotFound")
    assert f"version {v1} keeps serving" in degraded["message"]
    assert history(status) == [(v1, "Succeeded")]

    assert models.register(model) == v2
    eventually("the pinned v2 Ready once registered", partial(ready_on, cluster, ns, "fraud", model, v2))
    assert cluster.condition(ns, "fraud", "Resolved")["reason"] == "VersionPinned"
    assert history(cluster.status(ns, "fraud")) == [(v1, "Succeeded"), (v2, "Succeeded")]


@pytest.fixture
def proxy(sandbox: SandboxInfo) -> Iterator[RegistryProxy]:
    with registry_proxy(sandbox.mlflow_url) as running:
        yield running


def test_registry_answering_5xx_leaves_the_deployment_alone_and_recovers(
    cluster: Cluster, models: Models, operator: Operator, proxy: RegistryProxy, ns: str
) -> None:
    model = model_name("five")
    v1 = models.register(model)
    models.move_alias(model, v1)
    cluster.apply_release(ns, "fraud", release_spec(model, tracking_uri=proxy.url))
    eventually("v1 Ready", partial(ready_on, cluster, ns, "fraud", model, v1))
    before = cluster.deployment(ns, "fraud")
    assert before is not None

    proxy.fault = 503
    v2 = models.register(model)
    models.move_alias(model, v2)  # behind the failing registry
    resolved = eventually("Resolved=False", partial(resolved_false, cluster, ns, "fraud"))
    assert resolved["reason"] == "RegistryUnavailable"
    assert "HTTP 503 after 3 attempts" in resolved["message"] and one_line(resolved["message"])
    assert eventually(
        "a RegistryUnavailable Event", partial(warning_event, cluster, ns, "fraud", "RegistryUnavailable")
    )
    after = cluster.deployment(ns, "fraud")
    assert after is not None
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert cluster.status(ns, "fraud")["phase"] == "Degraded"

    proxy.fault = None
    eventually("v2 Ready once the registry answers", partial(ready_on, cluster, ns, "fraud", model, v2))
    assert history(cluster.status(ns, "fraud")) == [(v1, "Succeeded"), (v2, "Succeeded")]


def test_a_registry_answering_what_mlflow_never_sends_is_a_condition_and_recovers(
    cluster: Cluster, models: Models, operator: Operator, proxy: RegistryProxy, ns: str
) -> None:
    model = model_name("garbled")
    v1 = models.register(model)
    models.move_alias(model, v1)
    cluster.apply_release(ns, "fraud", release_spec(model, tracking_uri=proxy.url))
    eventually("v1 Ready", partial(ready_on, cluster, ns, "fraud", model, v1))
    before = cluster.deployment(ns, "fraud")
    assert before is not None

    proxy.fault = 200  # every answer: 200 with a body that is not MLflow's JSON
    v2 = models.register(model)
    models.move_alias(model, v2)
    resolved = eventually("Resolved=False", partial(resolved_false, cluster, ns, "fraud"))
    assert resolved["reason"] == "UnexpectedRegistryAnswer" and one_line(resolved["message"])
    after = cluster.deployment(ns, "fraud")
    assert after is not None and after["metadata"]["generation"] == before["metadata"]["generation"]
    assert cluster.model_uri(ns, "fraud") == f"models:/{model}/{v1}"

    proxy.fault = None
    eventually("v2 Ready once the registry answers", partial(ready_on, cluster, ns, "fraud", model, v2))


def test_a_tracking_uri_the_crd_admits_but_no_url_parser_does_is_named_by_field(
    cluster: Cluster, operator: Operator, ns: str
) -> None:
    cluster.apply_release(ns, "fraud", release_spec("anything", tracking_uri="http://[mlflow:5000"))
    resolved = eventually("Resolved=False", partial(resolved_false, cluster, ns, "fraud"))
    assert resolved["reason"] == "InvalidTrackingUri"
    assert resolved["message"].startswith("spec.registry.trackingUri:") and one_line(resolved["message"])
    assert eventually(
        "an InvalidTrackingUri Event", partial(warning_event, cluster, ns, "fraud", "InvalidTrackingUri")
    )
    assert cluster.deployment(ns, "fraud") is None


def _artifact_keys(models: Models, model: str, version: str) -> list[str]:
    """The version's objects in the sandbox bucket (found as Registrar.tamper finds them)."""
    uri = models.client.get_model_version_download_uri(model, version)
    prefix = uri.split(":", 1)[1].lstrip("/")
    listing = models.s3.list_objects_v2(Bucket=models.sandbox.bucket, Prefix=prefix)
    return [o["Key"] for o in listing.get("Contents", [])]


def _delete(models: Models, keys: list[str]) -> None:
    for key in keys:
        models.s3.delete_object(Bucket=models.sandbox.bucket, Key=key)


def test_artifacts_missing_from_the_store_block_the_candidate(
    cluster: Cluster, models: Models, operator: Operator, ns: str
) -> None:
    model = model_name("noartifact")
    v1 = models.register(model)
    models.move_alias(model, v1)
    cluster.apply_release(ns, "fraud", release_spec(model))
    eventually("v1 Ready", partial(ready_on, cluster, ns, "fraud", model, v1))
    before = cluster.deployment(ns, "fraud")
    assert before is not None

    # v2's MLmodel file disappears from S3 after it was stamped.
    v2 = models.register(model)
    (mlmodel,) = [k for k in _artifact_keys(models, model, v2) if k.endswith("/MLmodel")]
    _delete(models, [mlmodel])
    models.move_alias(model, v2)
    eventually("v2 blocked", lambda: (v2, "Blocked") in history(cluster.status(ns, "fraud")))
    status = cluster.status(ns, "fraud")
    checks = {v["check"]: v for v in status["verification"]}
    assert checks["Digest"]["outcome"] == "Failed"  # the stamped digest covered the missing file
    assert checks["Schema"]["outcome"] == "Failed"
    assert checks["Schema"]["reason"].startswith(f"models:/{model}/{v2} has no MLmodel file at ")
    verified = cluster.condition(ns, "fraud", "Verified")
    assert (verified["status"], verified["reason"]) == ("False", "DigestMismatch")
    assert one_line(verified["message"])
    assert status["phase"] == "Blocked"
    assert status["history"][-1]["reason"] == "DigestMismatch"

    # v3's artifacts are gone altogether: the operator says so, not that the digest differs.
    v3 = models.register(model)
    _delete(models, _artifact_keys(models, model, v3))
    models.move_alias(model, v3)
    eventually("v3 blocked", lambda: (v3, "Blocked") in history(cluster.status(ns, "fraud")))
    verified = cluster.condition(ns, "fraud", "Verified")
    assert (verified["status"], verified["reason"]) == ("False", "ArtifactNotFound")
    assert verified["message"].startswith(f"version {v3} blocked: no artifact files at ")
    assert one_line(verified["message"])
    assert eventually(
        "an ArtifactNotFound Event", partial(warning_event, cluster, ns, "fraud", "ArtifactNotFound")
    )

    after = cluster.deployment(ns, "fraud")
    assert after is not None
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert cluster.model_uri(ns, "fraud") == f"models:/{model}/{v1}"
    status = cluster.status(ns, "fraud")
    assert status["current"]["version"] == v1 and status["phase"] == "Blocked"
    assert history(status) == [(v1, "Succeeded"), (v2, "Blocked"), (v3, "Blocked")]


def test_dropped_input_column_is_blocked_unless_the_schema_check_warns(
    cluster: Cluster, models: Models, operator: Operator, ns: str
) -> None:
    from mlflow.models import infer_signature
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    model = model_name("schema")
    v1 = models.register(model)  # iris, 4 input columns
    models.move_alias(model, v1)
    cluster.apply_release(ns, "enforce", release_spec(model))
    cluster.apply_release(ns, "warn", release_spec(model, verify={"schema": "Warn"}))
    for name in ("enforce", "warn"):
        eventually(f"{name}: v1 Ready", partial(ready_on, cluster, ns, name, model, v1))

    x, y = load_iris(return_X_y=True, as_frame=True)
    dropped = str(x.columns[-1])
    x3 = x.drop(columns=[dropped])
    estimator = LogisticRegression(max_iter=300).fit(x3, y)
    v2 = models.log_version(model, estimator, infer_signature(x3, estimator.predict(x3)), {"f1": 0.95})
    models.move_alias(model, v2)

    eventually("enforce: v2 blocked", lambda: (v2, "Blocked") in history(cluster.status(ns, "enforce")))
    verified = cluster.condition(ns, "enforce", "Verified")
    assert (verified["status"], verified["reason"]) == ("False", "SchemaIncompatible")
    assert f"input {dropped!r} removed" in verified["message"] and one_line(verified["message"])
    status = cluster.status(ns, "enforce")
    assert status["phase"] == "Blocked" and status["current"]["version"] == v1
    assert cluster.model_uri(ns, "enforce") == f"models:/{model}/{v1}"
    assert eventually(
        "a SchemaIncompatible Event", partial(warning_event, cluster, ns, "enforce", "SchemaIncompatible")
    )

    eventually("warn: v2 Ready", partial(ready_on, cluster, ns, "warn", model, v2))
    status = cluster.status(ns, "warn")
    schema = next(v for v in status["verification"] if v["check"] == "Schema")
    assert schema["outcome"] == "Warned" and f"input {dropped!r} removed" in schema["reason"]
    verified = cluster.condition(ns, "warn", "Verified")
    assert (verified["status"], verified["reason"]) == ("True", "ChecksPassedWithWarnings")
    assert history(status) == [(v1, "Succeeded"), (v2, "Succeeded")]


def _cli(sandbox: SandboxInfo, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CLI), *args],
        env={**os.environ, **sandbox.env, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _serving_degraded_by_service(cluster: Cluster, ns: str, model: str, version: str) -> bool:
    status = cluster.status(ns, "fraud")
    degraded = cluster.condition(ns, "fraud", "Degraded")
    return (
        cluster.model_uri(ns, "fraud") == f"models:/{model}/{version}"
        and (status.get("current") or {}).get("version") == version
        and status.get("phase") == "Degraded"
        and degraded.get("reason") == "ServiceNotApplied"
    )


def test_a_service_the_api_server_refuses_is_a_warning_event_and_is_applied_once_allowed(
    cluster: Cluster, models: Models, operator: Operator, ns: str
) -> None:
    # A ResourceQuota that allows no Service: the real quota admission refuses it with HTTP 403.
    quota = {"metadata": {"name": "no-services"}, "spec": {"hard": {"services": "0"}}}
    cluster.core.create_namespaced_resource_quota(ns, quota)
    eventually(
        "the quota counted by its controller",
        lambda: (cluster.core.read_namespaced_resource_quota("no-services", ns).status.hard or {}).get(
            "services"
        ),
    )
    model = model_name("quota")
    v1 = models.register(model)
    models.move_alias(model, v1)
    cluster.apply_release(ns, "fraud", release_spec(model))
    eventually(
        "v1 serving, Degraded ServiceNotApplied: the Deployment serves without its Service",
        partial(_serving_degraded_by_service, cluster, ns, model, v1),
    )
    degraded = cluster.condition(ns, "fraud", "Degraded")
    assert degraded["status"] == "True" and "exceeded quota: no-services" in degraded["message"]
    refused = eventually(
        "a ServiceNotApplied Event", partial(warning_event, cluster, ns, "fraud", "ServiceNotApplied")
    )
    assert refused["message"].startswith("Service fraud could not be applied: ")
    assert "exceeded quota: no-services" in refused["message"] and one_line(refused["message"])
    # The rollout's own Events went out although the pass ended on the refused Service.
    assert {"RolloutStarted", "RolloutSucceeded"} <= {e["reason"] for e in cluster.events(ns, "fraud")}
    passes = operator.metric("modelrelease_reconciles_total")
    eventually("three more passes", lambda: operator.metric("modelrelease_reconciles_total") >= passes + 3)
    warnings = [e for e in cluster.events(ns, "fraud") if e["reason"] == "ServiceNotApplied"]
    assert len(warnings) == 1 and warnings[0].get("count", 1) == 1  # said once, not at every retry
    assert cluster.core.list_namespaced_service(ns).items == []

    cluster.core.delete_namespaced_resource_quota("no-services", ns)
    eventually(
        "the Service applied once the quota is gone", lambda: cluster.core.list_namespaced_service(ns).items
    )
    eventually("v1 Ready, Degraded=False again", partial(ready_on, cluster, ns, "fraud", model, v1))
    assert cluster.condition(ns, "fraud", "Degraded")["reason"] == "AsExpected"


def test_registration_cli_digest_and_stamp_agree_with_the_operator(
    cluster: Cluster, models: Models, operator: Operator, sandbox: SandboxInfo, ns: str
) -> None:
    model = model_name("cli")
    v1 = models.register(model, stamp=False)

    stamped = _cli(sandbox, "stamp", model, v1)
    assert stamped.returncode == 0, stamped.stderr
    tag = models.client.get_model_version(model, v1).tags[DIGEST_TAG]
    assert DIGEST.fullmatch(tag)
    assert stamped.stdout.strip() == f"{model} version {v1}: {DIGEST_TAG}={tag}"
    for uri in (f"models:/{model}/{v1}", f"models:/{model}/versions/{v1}"):
        printed = _cli(sandbox, "digest", uri)
        assert printed.returncode == 0, printed.stderr
        assert printed.stdout == f"{tag}\n"

    # The operator's Digest check (Enforce) passes on the stamp, and records the same digest.
    models.move_alias(model, v1)
    cluster.apply_release(ns, "fraud", release_spec(model))
    eventually("v1 Ready", partial(ready_on, cluster, ns, "fraud", model, v1))
    status = cluster.status(ns, "fraud")
    assert status["current"]["digest"] == tag
    assert next(v for v in status["verification"] if v["check"] == "Digest")["outcome"] == "Passed"

    missing = _cli(sandbox, "digest", "models:/nope-never-registered/1")
    assert missing.returncode == 1 and missing.stdout == ""
    assert missing.stderr.startswith("modelrelease digest: ") and "nope-never-registered" in missing.stderr
    assert missing.stderr.count("\n") == 1 and "Traceback" not in missing.stderr

    # Bounded by _cli's timeout: a client that retried for minutes (MLflow's defaults) would exceed it.
    closed = _cli(
        sandbox, "digest", f"models:/{model}/{v1}", MLFLOW_TRACKING_URI=f"http://127.0.0.1:{free_port()}"
    )
    assert closed.returncode == 1 and closed.stdout == ""
    assert closed.stderr.startswith("modelrelease digest: ") and "unavailable" in closed.stderr
    assert closed.stderr.count("\n") == 1 and "Traceback" not in closed.stderr
