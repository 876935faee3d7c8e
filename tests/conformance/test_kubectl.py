"""The emulator driven by the real kubectl binary: apply, get, patch, delete, wait, discovery, tables."""

from __future__ import annotations

import json
import queue
import subprocess
import threading
from collections.abc import Callable
from typing import Any

import pytest
from emu_support import KUBECTL, Emulator

Kubectl = Callable[..., subprocess.CompletedProcess[str]]

DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, labels: {app: web}}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
        - name: server
          image: example/server:1.0
          env: [{name: MODEL_URI, value: "models:/fraud/1"}, {name: LOG_LEVEL, value: info}]
        - name: sidecar
          image: example/sidecar:1.0
"""


def _json(kubectl: Kubectl, *args: str) -> Any:
    return json.loads(kubectl(*args, "-o", "json").stdout)


def test_apply_builtin_then_reapply_is_unchanged_and_change_is_configured(
    kubectl: Kubectl, namespace: str
) -> None:
    first = kubectl("apply", "-n", namespace, "-f", "-", input=DEPLOYMENT)
    assert "deployment.apps/web created" in first.stdout
    again = kubectl("apply", "-n", namespace, "-f", "-", input=DEPLOYMENT)
    assert "deployment.apps/web unchanged" in again.stdout
    changed = kubectl(
        "apply", "-n", namespace, "-f", "-", input=DEPLOYMENT.replace("server:1.0", "server:2.0")
    )
    assert "deployment.apps/web configured" in changed.stdout

    dep = _json(kubectl, "get", "deployment", "web", "-n", namespace)
    assert dep["metadata"]["generation"] == 2
    spec = dep["spec"]
    assert (spec["replicas"], spec["progressDeadlineSeconds"], spec["revisionHistoryLimit"]) == (1, 600, 10)
    assert spec["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"},
    }
    server = spec["template"]["spec"]["containers"][0]
    assert server["image"] == "example/server:2.0"
    assert server["imagePullPolicy"] == "IfNotPresent"
    assert server["terminationMessagePath"] == "/dev/termination-log"


def test_patch_merge_json_and_strategic(kubectl: Kubectl, namespace: str) -> None:
    kubectl("apply", "-n", namespace, "-f", "-", input=DEPLOYMENT)
    kubectl(
        "patch",
        "deployment",
        "web",
        "-n",
        namespace,
        "--type",
        "merge",
        "-p",
        '{"metadata": {"labels": {"tier": "gold"}}, "spec": {"replicas": 3}}',
    )
    kubectl(
        "patch",
        "deployment",
        "web",
        "-n",
        namespace,
        "--type",
        "json",
        "-p",
        '[{"op": "replace", "path": "/spec/template/spec/containers/1/image", "value": "example/sidecar:2"}]',
    )
    # strategic: containers and env are merged by name, not replaced
    kubectl(
        "patch",
        "deployment",
        "web",
        "-n",
        namespace,
        "--type",
        "strategic",
        "-p",
        '{"spec": {"template": {"spec": {"containers": [{"name": "server", '
        '"env": [{"name": "MODEL_URI", "value": "models:/fraud/2"}]}]}}}}',
    )
    dep = _json(kubectl, "get", "deployment", "web", "-n", namespace)
    assert dep["metadata"]["labels"] == {"app": "web", "tier": "gold"}
    assert dep["spec"]["replicas"] == 3
    server, sidecar = dep["spec"]["template"]["spec"]["containers"]
    assert sidecar["image"] == "example/sidecar:2"
    assert server["env"] == [
        {"name": "MODEL_URI", "value": "models:/fraud/2"},
        {"name": "LOG_LEVEL", "value": "info"},
    ]


def test_strategic_patch_of_custom_resource_is_415(kubectl: Kubectl, namespace: str, test_crds: None) -> None:
    kubectl(
        "apply",
        "-n",
        namespace,
        "-f",
        "-",
        input="apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\nspec: {size: 1}\n",
    )
    result = kubectl(
        "patch",
        "widget",
        "w",
        "-n",
        namespace,
        "--type",
        "strategic",
        "-p",
        '{"spec": {"size": 2}}',
        check=False,
    )
    assert result.returncode != 0
    # kubectl recognises the real server's 415 for custom resources and says so
    assert (
        "application/strategic-merge-patch+json is not supported by example.com/v1, Kind=Widget"
        in result.stderr
    )


def test_crd_apply_makes_kind_discoverable_with_printer_columns(
    kubectl: Kubectl, namespace: str, test_crds: None
) -> None:
    resources = kubectl("api-resources", "--api-group=example.com").stdout
    assert "widgets" in resources and "wd" in resources and "Widget" in resources
    kubectl(
        "apply",
        "-n",
        namespace,
        "-f",
        "-",
        input="apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: big}\nspec: {size: 7}\n",
    )
    table = kubectl("get", "widgets", "-n", namespace).stdout.splitlines()
    assert table[0].split() == ["NAME", "SIZE", "COLOR", "PHASE", "READY", "AGE"]
    assert table[1].split()[:3] == ["big", "7", "red"]  # color defaulted by the CRD schema
    assert (
        kubectl("get", "wd", "big", "-n", namespace, "-o", "name").stdout.strip() == "widget.example.com/big"
    )


def test_builtin_tables_have_the_usual_columns(kubectl: Kubectl, namespace: str) -> None:
    kubectl("apply", "-n", namespace, "-f", "-", input=DEPLOYMENT)
    header = kubectl("get", "deployments", "-n", namespace).stdout.splitlines()[0].split()
    assert header == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    all_namespaces = kubectl("get", "deployments", "-A").stdout
    assert f"{namespace}" in all_namespaces and "web" in all_namespaces
    event = (
        '{"apiVersion": "v1", "kind": "Event", "metadata": {"name": "e1"}, "type": "Normal",'
        ' "reason": "Tested", "message": "hello there",'
        ' "involvedObject": {"kind": "Deployment", "name": "web"}}'
    )
    kubectl("create", "-n", namespace, "-f", "-", input=event)
    events = kubectl("get", "events", "-n", namespace).stdout.splitlines()
    assert events[0].split() == ["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    assert events[1].split()[1:] == ["Normal", "Tested", "deployment/web", "hello", "there"]


def test_schema_error_is_422_naming_the_field(kubectl: Kubectl, namespace: str, test_crds: None) -> None:
    result = kubectl(
        "apply",
        "-n",
        namespace,
        "-f",
        "-",
        check=False,
        input="apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: bad}\n"
        "spec: {size: 11, color: purple}\n",
    )
    assert result.returncode != 0
    assert 'The Widget "bad" is invalid' in result.stderr  # kubectl's rendering of a 422 with causes
    assert "spec.size" in result.stderr and "spec.color" in result.stderr
    assert 'Unsupported value: "purple"' in result.stderr


def test_cel_rule_error_is_reported(kubectl: Kubectl, namespace: str, test_crds: None) -> None:
    result = kubectl(
        "apply",
        "-n",
        namespace,
        "-f",
        "-",
        check=False,
        input="apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: cel}\n"
        "spec: {size: 2, minSize: 5}\n",
    )
    assert result.returncode != 0
    assert "minSize must not exceed size" in result.stderr


def test_unknown_field_rejected_by_default_strict_validation(
    kubectl: Kubectl, namespace: str, test_crds: None
) -> None:
    result = kubectl(
        "apply",
        "-n",
        namespace,
        "-f",
        "-",
        check=False,
        input="apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: typo}\n"
        "spec: {size: 2, colour: red}\n",
    )
    assert result.returncode != 0
    assert 'unknown field "spec.colour"' in result.stderr


def test_wait_for_condition_and_delete(
    kubectl: Kubectl, emulator: Emulator, namespace: str, test_crds: None
) -> None:
    kubectl(
        "apply",
        "-n",
        namespace,
        "-f",
        "-",
        input="apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\nspec: {size: 1}\n",
    )
    # kubectl wait started before the condition holds: it must see the change through its watch
    waiter = subprocess.Popen(
        [KUBECTL, "wait", "widget/w", "-n", namespace, "--for=condition=Ready", "--timeout=20s"],
        env=emulator.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        status = '{"status": {"conditions": [{"type": "Ready", "status": "True"}]}}'
        kubectl(
            "patch", "widget", "w", "-n", namespace, "--subresource=status", "--type", "merge", "-p", status
        )
        out, err = waiter.communicate(timeout=20)
    finally:
        waiter.kill()
    assert waiter.returncode == 0, err
    assert "condition met" in out
    deleted = kubectl("delete", "widget", "w", "-n", namespace)
    assert 'widget.example.com "w" deleted' in deleted.stdout
    kubectl("wait", "widget/w", "-n", namespace, "--for=delete", "--timeout=10s")
    missing = kubectl("get", "widget", "w", "-n", namespace, check=False)
    assert missing.returncode != 0 and "NotFound" in missing.stderr


@pytest.mark.parametrize("kind", ["configmap", "secret", "namespace", "serviceaccount"])
def test_kubectl_create_sends_protobuf_and_works(kubectl: Kubectl, namespace: str, kind: str) -> None:
    name = f"made-{kind}"
    args = {
        "configmap": ["create", "configmap", name, "--from-literal=k=v", "-n", namespace],
        "secret": ["create", "secret", "generic", name, "--from-literal=k=v", "-n", namespace],
        "namespace": ["create", "namespace", f"{namespace}-{name}"],
        "serviceaccount": ["create", "serviceaccount", name, "-n", namespace],
    }[kind]
    kubectl(*args)
    if kind == "namespace":
        ns = _json(kubectl, "get", "namespace", f"{namespace}-{name}")
        assert ns["status"]["phase"] == "Active"
        kubectl("delete", "namespace", f"{namespace}-{name}")
        return
    obj = _json(kubectl, "get", kind, name, "-n", namespace)
    assert obj["metadata"]["namespace"] == namespace
    if kind == "configmap":
        assert obj["data"] == {"k": "v"}
    if kind == "secret":
        assert obj["data"] == {"k": "dg=="} and obj["type"] == "Opaque"


def test_scale_subresource(kubectl: Kubectl, namespace: str) -> None:
    kubectl("apply", "-n", namespace, "-f", "-", input=DEPLOYMENT)
    assert "scaled" in kubectl("scale", "deployment", "web", "-n", namespace, "--replicas=4").stdout
    dep = _json(kubectl, "get", "deployment", "web", "-n", namespace)
    assert (dep["spec"]["replicas"], dep["metadata"]["generation"]) == (4, 2)
    scale = json.loads(
        kubectl("get", "--raw", f"/apis/apps/v1/namespaces/{namespace}/deployments/web/scale").stdout
    )
    assert (
        scale["kind"] == "Scale"
        and scale["spec"]["replicas"] == 4
        and scale["status"]["selector"] == "app=web"
    )


def test_get_watch_prints_new_rows(kubectl: Kubectl, emulator: Emulator, namespace: str) -> None:
    kubectl("create", "configmap", "first", "-n", namespace)
    watcher = subprocess.Popen(
        [KUBECTL, "get", "configmaps", "-n", namespace, "-w"],
        env=emulator.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in watcher.stdout or []], daemon=True).start()
    try:
        assert lines.get(timeout=15).split() == ["NAME", "DATA", "AGE"]
        assert lines.get(timeout=15).split()[:2] == ["first", "0"]
        kubectl("create", "configmap", "second", "--from-literal=a=b", "-n", namespace)
        assert lines.get(timeout=15).split()[:2] == ["second", "1"]
    finally:
        watcher.kill()
        watcher.wait()


def test_deleting_a_crd_removes_its_kind_and_objects(kubectl: Kubectl, namespace: str) -> None:
    crd = (
        "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\n"
        "metadata: {name: things.example.org}\n"
        "spec:\n  group: example.org\n  scope: Namespaced\n  names: {plural: things, kind: Thing}\n"
        "  versions:\n    - name: v1\n      served: true\n      storage: true\n"
        "      schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}\n"
    )
    kubectl("apply", "-f", "-", input=crd)
    kubectl("wait", "--for=condition=Established", "crd/things.example.org", "--timeout=10s")
    kubectl(
        "apply",
        "-n",
        namespace,
        "-f",
        "-",
        input="apiVersion: example.org/v1\nkind: Thing\nmetadata: {name: t}\nanything: 1\n",
    )
    assert kubectl("get", "things", "-n", namespace, "-o", "name").stdout.strip() == "thing.example.org/t"
    kubectl("delete", "crd", "things.example.org")
    assert "things" not in kubectl("api-resources", "--api-group=example.org").stdout
    missing = kubectl("get", "things", "-n", namespace, check=False)
    assert missing.returncode != 0 and "the server doesn't have a resource type" in missing.stderr


def test_builtin_validation_rejects_selector_mismatch(kubectl: Kubectl, namespace: str) -> None:
    broken = DEPLOYMENT.replace("metadata: {labels: {app: web}}", "metadata: {labels: {app: other}}")
    result = kubectl("apply", "-n", namespace, "-f", "-", input=broken, check=False)
    assert result.returncode != 0
    assert 'The Deployment "web" is invalid' in result.stderr
    assert (
        "spec.template.metadata.labels" in result.stderr
        and "`selector` does not match template `labels`" in result.stderr
    )


def test_configmap_keys_must_be_config_keys(kubectl: Kubectl, namespace: str) -> None:
    # Why sandbox-faults spells model URIs as `models_fraud_5`: a real server refuses `models:/fraud/5`.
    bad = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: faults}\ndata: {'models:/fraud/5': crashloop}\n"
    result = kubectl("apply", "-n", namespace, "-f", "-", input=bad, check=False)
    assert result.returncode != 0
    assert 'The ConfigMap "faults" is invalid: data[models:/fraud/5]: Invalid value: "models:/fraud/5"' in (
        result.stderr
    )
    assert "a valid config key must consist of alphanumeric characters" in result.stderr
    good = kubectl(
        "create", "configmap", "faults", "-n", namespace, "--from-literal=models_fraud_5=crashloop"
    )
    assert good.returncode == 0


def test_unknown_builtin_field_rejected_by_strict_validation(kubectl: Kubectl, namespace: str) -> None:
    typo = DEPLOYMENT.replace(
        "image: example/server:1.0", "image: example/server:1.0\n          imagePullPolice: Always"
    )
    result = kubectl("apply", "-n", namespace, "-f", "-", input=typo, check=False)
    assert result.returncode != 0
    assert 'unknown field "spec.template.spec.containers[0].imagePullPolice"' in result.stderr
    # without strict validation the field is dropped with a warning, as the real server does
    lenient = kubectl("apply", "-n", namespace, "--validate=warn", "-f", "-", input=typo)
    assert 'unknown field "spec.template.spec.containers[0].imagePullPolice"' in lenient.stderr
    dep = _json(kubectl, "get", "deployment", "web", "-n", namespace)
    assert "imagePullPolice" not in dep["spec"]["template"]["spec"]["containers"][0]


def test_server_side_apply_takes_over_from_client_side_apply_and_conflicts(
    kubectl: Kubectl, namespace: str
) -> None:
    kubectl("apply", "-n", namespace, "-f", "-", input=DEPLOYMENT)
    # switching to server-side apply hands client-side apply's fields over, even when a value changes
    changed = DEPLOYMENT.replace("server:1.0", "server:2.0")
    assert (
        "serverside-applied"
        in kubectl("apply", "--server-side", "-n", namespace, "-f", "-", input=changed).stdout
    )
    kubectl("scale", "deployment", "web", "-n", namespace, "--replicas=5")
    with_replicas = changed.replace("spec:\n  selector", "spec:\n  replicas: 2\n  selector")
    conflict = kubectl("apply", "--server-side", "-n", namespace, "-f", "-", input=with_replicas, check=False)
    assert conflict.returncode != 0
    assert "Apply failed with 1 conflict" in conflict.stderr and ".spec.replicas" in conflict.stderr
    kubectl("apply", "--server-side", "--force-conflicts", "-n", namespace, "-f", "-", input=with_replicas)
    dep = _json(kubectl, "get", "deployment", "web", "-n", namespace)
    assert dep["spec"]["replicas"] == 2
    assert dep["spec"]["template"]["spec"]["containers"][0]["image"] == "example/server:2.0"
