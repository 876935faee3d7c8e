"""The Helm chart, rendered and linted by the real helm binary, checked against the Kubernetes schemas."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "modelrelease-operator"
CRD_SOURCE = ROOT / "crds" / "modelrelease.io_modelreleases.yaml"
NAMESPACE = "modelrelease-system"
KUBERNETES_VERSION = "1.32.0"
CRD_NAME = "modelreleases.modelrelease.io"

Obj = dict[str, Any]

SCENARIOS: dict[str, Obj] = {
    "default": {},
    "namespaced": {"watchNamespaces": ["ml", "team-b"]},
    "observability": {
        "serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}},
        "networkPolicy": {
            "enabled": True,
            "metricsFrom": [{"namespaceSelector": {"matchLabels": {"name": "monitoring"}}}],
        },
        "operator": {
            "defaultTrackingUri": "http://mlflow.mlflow:5000",
            "allowedTrackingUris": ["http://mlflow.mlflow:5000", "https://mlflow.example.com"],
            "webhook": {"enabled": True, "secretName": "mlflow-webhook"},
        },
        "image": {"digest": "sha256:" + "ab" * 32},
    },
    "no-crds": {"crds": {"install": False, "keep": False}},
}

# What the operator needs (CONTRACTS.md section F): (apiGroup, resource) -> verbs.
NAMESPACED_NEEDS: dict[tuple[str, str], set[str]] = {
    ("modelrelease.io", "modelreleases"): {"get", "list", "watch", "patch", "update"},
    ("modelrelease.io", "modelreleases/status"): {"get", "patch", "update"},
    ("apps", "deployments"): {"get", "list", "watch", "create", "patch", "update", "delete"},
    ("", "services"): {"get", "list", "watch", "create", "patch", "update", "delete"},
    ("autoscaling", "horizontalpodautoscalers"): {"get", "list", "watch"},
    ("", "events"): {"create", "patch"},
    ("", "secrets"): {"get"},
    ("", "configmaps"): {"get"},
    ("", "pods"): {"list"},  # the smoke test's new pods, by the Deployment's selector
}
CLUSTER_NEEDS: dict[tuple[str, str], set[str]] = {
    ("apiextensions.k8s.io", "customresourcedefinitions"): {"get", "list", "watch"},
}


def helm_run(
    helm: str, *args: str, values: Obj | None = None, tmp: Path | None = None
) -> subprocess.CompletedProcess[str]:
    command = [helm, *args]
    if values:
        assert tmp is not None
        values_file = tmp / "values.yaml"
        values_file.write_text(yaml.safe_dump(values))
        command += ["--values", str(values_file)]
    return subprocess.run(command, capture_output=True, text=True, check=False, timeout=120)


def render(helm: str, tmp: Path, values: Obj | None = None) -> list[Obj]:
    result = helm_run(helm, "template", "mr", str(CHART), "--namespace", NAMESPACE, values=values, tmp=tmp)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@pytest.fixture(scope="module", params=list(SCENARIOS))
def scenario(
    request: pytest.FixtureRequest, helm: str, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, list[Obj]]:
    name: str = request.param
    return name, render(helm, tmp_path_factory.mktemp(name), SCENARIOS[name])


def by_kind(objects: list[Obj], kind: str) -> list[Obj]:
    return [obj for obj in objects if obj["kind"] == kind]


def one(objects: list[Obj], kind: str) -> Obj:
    (found,) = by_kind(objects, kind)
    return found


def pod_specs(objects: list[Obj]) -> Iterator[tuple[str, Obj]]:
    for obj in objects:
        if obj["kind"] == "Deployment":
            yield obj["metadata"]["name"], obj["spec"]["template"]["spec"]
        elif obj["kind"] == "Pod":
            yield obj["metadata"]["name"], obj["spec"]


def grants(rules: list[Obj]) -> dict[tuple[str, str], set[str]]:
    granted: dict[tuple[str, str], set[str]] = {}
    for rule in rules:
        for group in rule.get("apiGroups", []):
            for resource in rule.get("resources", []):
                granted.setdefault((group, resource), set()).update(rule["verbs"])
    return granted


def covers(granted: dict[tuple[str, str], set[str]], needs: dict[tuple[str, str], set[str]]) -> bool:
    return all(verbs <= granted.get(key, set()) for key, verbs in needs.items())


# --- lint -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_helm_lint_strict(helm: str, tmp_path: Path, name: str) -> None:
    result = helm_run(helm, "lint", "--strict", str(CHART), values=SCENARIOS[name], tmp=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout


# --- every object is valid Kubernetes -----------------------------------------------------------------------


def test_every_object_matches_the_official_schema(scenario: tuple[str, list[Obj]]) -> None:
    name, objects = scenario
    checked = 0
    for obj in objects:
        if obj["apiVersion"].startswith("monitoring.coreos.com/"):
            continue  # ServiceMonitor is a Prometheus Operator CRD: kubernetes-validate has no schema for it.
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        checked += 1
    assert checked >= 6, f"{name}: only {checked} objects rendered"


def test_every_namespaced_object_lands_in_the_release_or_a_watched_namespace(
    scenario: tuple[str, list[Obj]],
) -> None:
    name, objects = scenario
    allowed = {NAMESPACE, *SCENARIOS[name].get("watchNamespaces", [])}
    cluster_scoped = {
        "ClusterRole",
        "ClusterRoleBinding",
        "CustomResourceDefinition",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
    }
    for obj in objects:
        namespace = obj["metadata"].get("namespace")
        assert (namespace is None) == (obj["kind"] in cluster_scoped), obj["metadata"]
        assert namespace is None or namespace in allowed


# --- CRD ----------------------------------------------------------------------------------------------------


def strip_chart_metadata(crd: Obj) -> Obj:
    crd = {**crd, "metadata": {"name": crd["metadata"]["name"]}}
    return crd


def test_crd_template_is_the_crds_file(helm: str, tmp_path: Path) -> None:
    (crd,) = by_kind(render(helm, tmp_path), "CustomResourceDefinition")
    source = yaml.safe_load(CRD_SOURCE.read_text())
    assert strip_chart_metadata(crd) == strip_chart_metadata(source)
    assert source["metadata"].get("labels", {}).items() <= crd["metadata"]["labels"].items()
    assert crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    # Argo CD would otherwise prune the CRD, and every ModelRelease with it, when it leaves the render.
    assert crd["metadata"]["annotations"]["argocd.argoproj.io/sync-options"] == "Delete=false,Prune=false"


def test_crd_keep_false_drops_the_resource_policy(helm: str, tmp_path: Path) -> None:
    (crd,) = by_kind(render(helm, tmp_path, {"crds": {"keep": False}}), "CustomResourceDefinition")
    assert not crd["metadata"].get("annotations")


def test_crd_install_false_renders_no_crd(helm: str, tmp_path: Path) -> None:
    objects = render(helm, tmp_path, SCENARIOS["no-crds"])
    assert not by_kind(objects, "CustomResourceDefinition")
    assert by_kind(objects, "Deployment")


def test_generated_files_are_current() -> None:
    # The CRD template and manifests/ are generated: editing a source without regenerating fails here.
    result = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "sync_chart.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr


# --- Deployment ---------------------------------------------------------------------------------------------


def test_deployment_runs_one_operator_at_a_time(scenario: tuple[str, list[Obj]]) -> None:
    _, objects = scenario
    deployment = one(objects, "Deployment")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}


def test_probes_and_ports(scenario: tuple[str, list[Obj]]) -> None:
    _, objects = scenario
    (container,) = one(objects, "Deployment")["spec"]["template"]["spec"]["containers"]
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    env = {item["name"]: item.get("value") for item in container["env"]}
    assert ports["health"] == int(env["MODELRELEASE_HEALTH_PORT"]) == 8080
    assert ports["metrics"] == int(env["MODELRELEASE_METRICS_PORT"]) == 9090
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert {"cpu", "memory"} <= container["resources"]["requests"].keys()
    assert {"cpu", "memory"} <= container["resources"]["limits"].keys()


def test_operator_settings_reach_the_environment(helm: str, tmp_path: Path) -> None:
    values = {**SCENARIOS["observability"], "watchNamespaces": ["ml", "team-b"]}
    (container,) = one(render(helm, tmp_path, values), "Deployment")["spec"]["template"]["spec"]["containers"]
    env = {item["name"]: item for item in container["env"]}
    assert env["MODELRELEASE_DEFAULT_TRACKING_URI"]["value"] == "http://mlflow.mlflow:5000"
    assert env["MODELRELEASE_ALLOWED_TRACKING_URIS"]["value"] == (
        "http://mlflow.mlflow:5000,https://mlflow.example.com"
    )
    assert env["MODELRELEASE_NAMESPACES"]["value"] == "ml,team-b"
    assert env["MODELRELEASE_WEBHOOK_PORT"]["value"] == "8443"
    assert env["MODELRELEASE_WEBHOOK_SECRET"]["valueFrom"]["secretKeyRef"] == {
        "name": "mlflow-webhook",
        "key": "secret",
    }
    assert container["image"] == "modelrelease-operator@sha256:" + "ab" * 32


def test_default_settings(helm: str, tmp_path: Path) -> None:
    (container,) = one(render(helm, tmp_path), "Deployment")["spec"]["template"]["spec"]["containers"]
    env = {item["name"]: item.get("value") for item in container["env"]}
    assert env["MODELRELEASE_NAMESPACES"] == ""  # all namespaces
    assert env["MODELRELEASE_DEFAULT_IMAGE"] == "modelrelease-serving:0.1.0"
    assert "MODELRELEASE_WEBHOOK_PORT" not in env
    assert container["image"] == "modelrelease-operator:0.1.0"


def test_webhook_without_secret_is_refused(helm: str, tmp_path: Path) -> None:
    result = helm_run(
        helm, "template", "mr", str(CHART), values={"operator": {"webhook": {"enabled": True}}}, tmp=tmp_path
    )
    assert result.returncode != 0
    assert "operator.webhook.secretName is required" in result.stderr


# --- security defaults --------------------------------------------------------------------------------------


def test_pods_meet_the_restricted_standard(scenario: tuple[str, list[Obj]]) -> None:
    _, objects = scenario
    specs = list(pod_specs(objects))
    assert {name for name, _ in specs} == {"mr-modelrelease-operator", "mr-modelrelease-operator-test"}
    for name, spec in specs:
        pod_context = spec["securityContext"]
        assert pod_context["runAsNonRoot"] is True, name
        assert pod_context["seccompProfile"] == {"type": "RuntimeDefault"}, name
        for container in spec["containers"]:
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False, name
            assert context["readOnlyRootFilesystem"] is True, name
            assert context["capabilities"] == {"drop": ["ALL"]}, name
            assert context["runAsNonRoot"] is True and context["runAsUser"] > 0, name
            assert context["seccompProfile"] == {"type": "RuntimeDefault"}, name
            assert "privileged" not in context, name
            mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
            volumes = {volume["name"]: volume for volume in spec["volumes"]}
            assert "emptyDir" in volumes[mounts["/tmp"]], f"{name}: /tmp must be writable"
        assert not spec.get("hostNetwork") and not spec.get("hostPID") and not spec.get("hostIPC"), name


# --- RBAC ---------------------------------------------------------------------------------------------------


def test_rbac_has_no_wildcards(scenario: tuple[str, list[Obj]]) -> None:
    _, objects = scenario
    for role in by_kind(objects, "ClusterRole") + by_kind(objects, "Role"):
        for rule in role["rules"]:
            for field in ("apiGroups", "resources", "verbs"):
                assert "*" not in rule.get(field, []), (role["metadata"]["name"], rule)
            assert "nonResourceURLs" not in rule
            assert not {"escalate", "bind", "impersonate"} & set(rule["verbs"]), rule


def test_secrets_are_never_listed_or_watched_cluster_wide(scenario: tuple[str, list[Obj]]) -> None:
    _, objects = scenario
    for role in by_kind(objects, "ClusterRole") + by_kind(objects, "Role"):
        secrets = grants(role["rules"]).get(("", "secrets"), set())
        assert secrets <= {"get"}, (role["kind"], role["metadata"]["name"], secrets)


def test_all_namespaces_shape(helm: str, tmp_path: Path) -> None:
    objects = render(helm, tmp_path)
    assert not by_kind(objects, "Role") and not by_kind(objects, "RoleBinding")
    cluster_role = one(objects, "ClusterRole")
    granted = grants(cluster_role["rules"])
    assert covers(granted, NAMESPACED_NEEDS | CLUSTER_NEEDS)
    # kopf 1.45 does not observe namespaces when cluster-wide (kopf/_core/reactor/observation.py).
    assert set(granted) == set(NAMESPACED_NEEDS | CLUSTER_NEEDS) | {("events.k8s.io", "events")}
    binding = one(objects, "ClusterRoleBinding")
    assert binding["roleRef"]["name"] == cluster_role["metadata"]["name"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "mr-modelrelease-operator", "namespace": NAMESPACE}
    ]


def test_listed_namespaces_shape(helm: str, tmp_path: Path) -> None:
    watched = SCENARIOS["namespaced"]["watchNamespaces"]
    objects = render(helm, tmp_path, SCENARIOS["namespaced"])
    cluster_granted = grants(one(objects, "ClusterRole")["rules"])
    # Cluster-wide: only what cannot be namespaced.
    assert cluster_granted == CLUSTER_NEEDS
    roles = {role["metadata"]["namespace"]: role for role in by_kind(objects, "Role")}
    bindings = {binding["metadata"]["namespace"]: binding for binding in by_kind(objects, "RoleBinding")}
    assert sorted(roles) == sorted(bindings) == sorted(watched)
    for namespace in watched:
        assert covers(grants(roles[namespace]["rules"]), NAMESPACED_NEEDS)
        assert bindings[namespace]["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": roles[namespace]["metadata"]["name"],
        }
        assert bindings[namespace]["subjects"][0]["namespace"] == NAMESPACE


def test_rbac_create_false_renders_no_rbac(helm: str, tmp_path: Path) -> None:
    objects = render(helm, tmp_path, {"rbac": {"create": False}, "watchNamespaces": ["ml"]})
    kinds = {obj["kind"] for obj in objects}
    assert not kinds & {"ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}


# --- Service, ServiceMonitor, NetworkPolicy, helm test ------------------------------------------------------


def test_metrics_service_and_service_monitor_select_the_operator(helm: str, tmp_path: Path) -> None:
    objects = render(helm, tmp_path, SCENARIOS["observability"])
    deployment = one(objects, "Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    service = one(objects, "Service")
    assert service["spec"]["selector"].items() <= pod_labels.items()
    service_ports = {port["name"] for port in service["spec"]["ports"]}
    assert service_ports == {"metrics", "webhook"}
    monitor = one(objects, "ServiceMonitor")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
    assert monitor["metadata"]["labels"]["release"] == "prometheus"


def test_network_policy_admits_metrics_scrapers_and_the_helm_test(helm: str, tmp_path: Path) -> None:
    objects = render(helm, tmp_path, SCENARIOS["observability"])
    policy = one(objects, "NetworkPolicy")
    pod_labels = one(objects, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= pod_labels.items()
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    metrics_rule, webhook_rule = policy["spec"]["ingress"]
    assert metrics_rule["ports"] == [{"port": "metrics", "protocol": "TCP"}]
    test_pod = one(objects, "Pod")
    test_selector = metrics_rule["from"][-1]["podSelector"]["matchLabels"]
    assert test_selector.items() <= test_pod["metadata"]["labels"].items()
    assert webhook_rule["ports"] == [{"port": "webhook", "protocol": "TCP"}]
    egress_ports = {
        (port["port"], port["protocol"]) for rule in policy["spec"]["egress"] for port in rule["ports"]
    }
    assert {(53, "UDP"), (443, "TCP"), (6443, "TCP")} <= egress_ports


def test_network_policy_lets_the_smoke_test_reach_the_managed_serving_pods(helm: str, tmp_path: Path) -> None:
    from modelrelease.render.manifests import MANAGED_BY, MANAGED_BY_LABEL

    values = {"networkPolicy": {"enabled": True}, "watchNamespaces": ["ml"]}
    policy = one(render(helm, tmp_path, values), "NetworkPolicy")
    (rule,) = [r for r in policy["spec"]["egress"] if r.get("to")]
    (peer,) = rule["to"]
    assert peer["podSelector"] == {
        "matchLabels": {MANAGED_BY_LABEL: MANAGED_BY}
    }  # what the pod template carries
    assert peer["namespaceSelector"]["matchExpressions"][0]["values"] == ["ml"]
    assert rule["ports"] == [{"port": 8080, "protocol": "TCP"}]
    closed = one(
        render(helm, tmp_path, {"networkPolicy": {"enabled": True, "servingPorts": []}}), "NetworkPolicy"
    )
    assert not [r for r in closed["spec"]["egress"] if r.get("to")]


def test_optional_objects_are_off_by_default(helm: str, tmp_path: Path) -> None:
    kinds = {obj["kind"] for obj in render(helm, tmp_path)}
    assert "ServiceMonitor" not in kinds and "NetworkPolicy" not in kinds


def test_helm_test_hook_checks_crd_and_metrics(helm: str, tmp_path: Path) -> None:
    objects = render(helm, tmp_path)
    pod = one(objects, "Pod")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    (container,) = pod["spec"]["containers"]
    script = container["command"][-1]
    assert CRD_NAME in script and "Established" in script
    service = one(objects, "Service")
    metrics_url = {item["name"]: item["value"] for item in container["env"]}["METRICS_URL"]
    port = service["spec"]["ports"][0]["port"]
    assert metrics_url == f"http://{service['metadata']['name']}.{NAMESPACE}.svc:{port}/metrics"
    compile(script, "helm-test", "exec")  # the one-liner is valid Python
    assert pod["spec"]["serviceAccountName"] == one(objects, "ServiceAccount")["metadata"]["name"]


def test_notes_tell_the_next_steps(helm: str) -> None:
    result = subprocess.run(
        [helm, "install", "mr", str(CHART), "--namespace", NAMESPACE, "--dry-run=client"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    notes = result.stdout.split("NOTES:", 1)[1]
    assert "helm test mr" in notes
    assert "kind: ModelRelease" in notes
    assert "kubectl get modelreleases" in notes
    assert "spec.registry.trackingUri" in notes  # no default tracking URI configured


# --- values.schema.json -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "path"),
    [
        ({"crds": {"install": "yes"}}, "/crds/install"),
        ({"crds": {"keep": 1}}, "/crds/keep"),
        ({"watchNamespaces": "ml"}, "/watchNamespaces"),
        ({"watchNamespaces": ["Not_A_Namespace"]}, "/watchNamespaces/0"),
        ({"operator": {"metricsPort": "9090"}}, "/operator/metricsPort"),
        ({"operator": {"healthPort": 70000}}, "/operator/healthPort"),
        ({"operator": {"allowedTrackingUris": "http://mlflow:5000"}}, "/operator/allowedTrackingUris"),
        ({"operator": {"defaultTrackingUri": "mlflow:5000"}}, "/operator/defaultTrackingUri"),
        ({"image": {"pullPolicy": "Sometimes"}}, "/image/pullPolicy"),
        ({"image": {"tag": "latest"}}, "/image/tag"),
        ({"serviceMonitor": {"enabled": "true"}}, "/serviceMonitor/enabled"),
        ({"networkPolicy": {"egressPorts": ["https"]}}, "/networkPolicy/egressPorts/0"),
        ({"resources": {"limit": {"cpu": 1}}}, ""),
        ({"replicas": 2}, ""),
    ],
)
def test_values_schema_rejects_wrong_values(helm: str, tmp_path: Path, values: Obj, path: str) -> None:
    result = helm_run(helm, "template", "mr", str(CHART), values=values, tmp=tmp_path)
    assert result.returncode != 0, f"{values} was accepted"
    assert "values don't meet the specifications of the schema" in result.stderr or "at '" in result.stderr
    if path:
        assert f"at '{path}'" in result.stderr, result.stderr


def test_every_value_is_documented() -> None:
    """Each leaf in values.yaml has a comment right above it, or above the block that holds it."""
    lines = (CHART / "values.yaml").read_text().splitlines()
    documented: list[tuple[int, bool]] = []  # (indent, documented) of the enclosing keys
    undocumented = []
    for index, line in enumerate(lines):
        stripped = line.strip()
        if not stripped or stripped.startswith("#") or stripped.startswith("- "):
            continue
        indent = len(line) - len(line.lstrip())
        while documented and documented[-1][0] >= indent:
            documented.pop()
        has_comment = index > 0 and lines[index - 1].strip().startswith("#")
        inherited = any(flag for _, flag in documented)
        key, _, value = stripped.partition(":")
        if value.strip():  # a leaf
            if not (has_comment or inherited):
                undocumented.append(key)
        else:
            documented.append((indent, has_comment))
    assert not undocumented, f"values without a comment: {undocumented}"


def test_the_spec_guard_names_the_operators_service_account(helm: str, tmp_path: Path) -> None:
    objects = render(helm, tmp_path)
    account = one(objects, "ServiceAccount")["metadata"]
    policy = one(objects, "ValidatingAdmissionPolicy")
    (condition,) = policy["spec"]["matchConditions"]
    assert f'"system:serviceaccount:{account["namespace"]}:{account["name"]}"' in condition["expression"]
    assert policy["spec"]["validations"][0]["expression"] == "object.spec == oldObject.spec"
    binding = one(objects, "ValidatingAdmissionPolicyBinding")
    assert binding["spec"] == {"policyName": policy["metadata"]["name"], "validationActions": ["Deny"]}
    assert not by_kind(render(helm, tmp_path, {"rbac": {"create": False}}), "ValidatingAdmissionPolicy")
