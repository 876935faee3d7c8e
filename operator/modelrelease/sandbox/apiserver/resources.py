"""The resource type registry: built-in kinds plus the kinds that applied CRDs declare."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
SUBRESOURCE_VERBS = ("get", "patch", "update")


@dataclass(frozen=True)
class ResourceType:
    group: str
    version: str
    plural: str
    singular: str
    kind: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    status_subresource: bool = False
    scale_subresource: bool = False  # /scale answers an autoscaling/v1 Scale of spec.replicas
    # metadata.generation is maintained (set on create, bumped on spec changes)
    generation: bool = False
    builtin: bool = True
    # DELETE answers with the object rather than a Status (ReturnDeletedObject in the real registry)
    return_deleted: bool = False
    # the storage this type reads and writes; two types share it when they are views of one resource
    storage_group: str | None = None
    printer_columns: tuple[dict[str, Any], ...] = field(default=(), compare=False)
    selectable_fields: tuple[str, ...] = ()  # a CRD's spec.versions[].selectableFields, as dotted paths
    schema: dict[str, Any] | None = field(default=None, compare=False, hash=False)

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"

    @property
    def storage_key(self) -> tuple[str, str]:
        return (self.group if self.storage_group is None else self.storage_group, self.plural)

    @property
    def subresources(self) -> tuple[str, ...]:
        return (("status",) if self.status_subresource else ()) + (
            ("scale",) if self.scale_subresource else ()
        )


def _b(
    group: str,
    version: str,
    plural: str,
    kind: str,
    namespaced: bool = True,
    short: tuple[str, ...] = (),
    *,
    status: bool = False,
    generation: bool = False,
    all_category: bool = False,
    return_deleted: bool = False,
    storage_group: str | None = None,
    scale: bool = False,
) -> ResourceType:
    return ResourceType(
        group=group,
        version=version,
        plural=plural,
        singular=kind.lower(),
        kind=kind,
        namespaced=namespaced,
        short_names=short,
        categories=("all",) if all_category else (),
        status_subresource=status,
        scale_subresource=scale,
        generation=generation,
        return_deleted=return_deleted,
        storage_group=storage_group,
    )


BUILTINS: tuple[ResourceType, ...] = (
    _b("", "v1", "namespaces", "Namespace", False, ("ns",), status=True, return_deleted=True),
    _b("", "v1", "configmaps", "ConfigMap", short=("cm",)),
    _b("", "v1", "secrets", "Secret"),
    _b("", "v1", "services", "Service", short=("svc",), status=True, all_category=True),
    _b("", "v1", "serviceaccounts", "ServiceAccount", short=("sa",), return_deleted=True),
    _b("", "v1", "pods", "Pod", short=("po",), status=True, all_category=True, return_deleted=True),
    _b("", "v1", "events", "Event", short=("ev",)),
    _b("", "v1", "endpoints", "Endpoints", short=("ep",)),
    _b("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", short=("pvc",), status=True),
    _b("", "v1", "nodes", "Node", False, ("no",), status=True),
    _b("events.k8s.io", "v1", "events", "Event", short=("ev",), storage_group=""),
    _b(
        "apps",
        "v1",
        "deployments",
        "Deployment",
        short=("deploy",),
        status=True,
        generation=True,
        all_category=True,
        scale=True,
    ),
    _b(
        "apps",
        "v1",
        "replicasets",
        "ReplicaSet",
        short=("rs",),
        status=True,
        generation=True,
        all_category=True,
        scale=True,
    ),
    _b(
        "apps",
        "v1",
        "statefulsets",
        "StatefulSet",
        short=("sts",),
        status=True,
        generation=True,
        all_category=True,
        scale=True,
    ),
    _b(
        "apps",
        "v1",
        "daemonsets",
        "DaemonSet",
        short=("ds",),
        status=True,
        generation=True,
        all_category=True,
    ),
    _b(
        "autoscaling",
        "v2",
        "horizontalpodautoscalers",
        "HorizontalPodAutoscaler",
        short=("hpa",),
        status=True,
        generation=True,
        all_category=True,
    ),
    _b("batch", "v1", "jobs", "Job", status=True, generation=True, all_category=True),
    _b("batch", "v1", "cronjobs", "CronJob", short=("cj",), status=True, generation=True, all_category=True),
    _b("rbac.authorization.k8s.io", "v1", "roles", "Role"),
    _b("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding"),
    _b("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", False),
    _b("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", False),
    _b("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", short=("netpol",), generation=True),
    _b("networking.k8s.io", "v1", "ingresses", "Ingress", short=("ing",), status=True, generation=True),
    _b(
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        False,
        ("crd", "crds"),
        status=True,
        generation=True,
    ),
    _b("coordination.k8s.io", "v1", "leases", "Lease"),
    _b(
        "policy",
        "v1",
        "poddisruptionbudgets",
        "PodDisruptionBudget",
        short=("pdb",),
        status=True,
        generation=True,
    ),
    _b("storage.k8s.io", "v1", "storageclasses", "StorageClass", False, ("sc",), return_deleted=True),
    _b("scheduling.k8s.io", "v1", "priorityclasses", "PriorityClass", False, ("pc",)),
)

_VERSION_RE = re.compile(r"^v(\d+)(?:(alpha|beta)(\d+))?$")


def version_priority(version: str) -> tuple[int, int, int, str]:
    """Sort key: GA before beta before alpha, higher numbers first, then non-Kube versions by name."""
    m = _VERSION_RE.match(version)
    if not m:
        return (3, 0, 0, version)
    stage = {None: 0, "beta": 1, "alpha": 2}[m.group(2)]
    return (stage, -int(m.group(1)), -int(m.group(3) or 0), "")


def crd_types(crd: dict[str, Any]) -> list[ResourceType]:
    """One ResourceType per served version of a CustomResourceDefinition."""
    spec = crd.get("spec", {})
    names = spec.get("names", {})
    group = spec.get("group", "")
    types = []
    for v in spec.get("versions", []):
        if not v.get("served", True):
            continue
        schema = (v.get("schema") or {}).get("openAPIV3Schema")
        types.append(
            ResourceType(
                group=group,
                version=v["name"],
                plural=names["plural"],
                singular=names.get("singular") or names["kind"].lower(),
                kind=names["kind"],
                namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                short_names=tuple(names.get("shortNames", ())),
                categories=tuple(names.get("categories", ())),
                status_subresource="status" in (v.get("subresources") or {}),
                generation=True,
                builtin=False,
                printer_columns=tuple(v.get("additionalPrinterColumns", ())),
                selectable_fields=tuple(
                    str(f.get("jsonPath", "")).lstrip(".") for f in v.get("selectableFields") or []
                ),
                schema=schema,
            )
        )
    return types


class Registry:
    """Which resource types exist right now (built-ins plus those of established CRDs)."""

    def __init__(self) -> None:
        self._types: dict[tuple[str, str, str], ResourceType] = {}
        self._by_crd: dict[str, list[ResourceType]] = {}
        for rt in BUILTINS:
            self._add(rt)

    def _add(self, rt: ResourceType) -> None:
        self._types[(rt.group, rt.version, rt.plural)] = rt

    def get(self, group: str, version: str, plural: str) -> ResourceType | None:
        return self._types.get((group, version, plural))

    def __iter__(self) -> Iterator[ResourceType]:
        return iter(self._types.values())

    def versions(self, group: str) -> list[str]:
        found = {rt.version for rt in self._types.values() if rt.group == group}
        return sorted(found, key=version_priority)

    def groups(self) -> list[str]:
        """Group names in a stable order: built-in groups first, then CRD groups sorted."""
        seen: list[str] = []
        for rt in BUILTINS:
            if rt.group and rt.group not in seen:
                seen.append(rt.group)
        extra = sorted({rt.group for rt in self._types.values()} - set(seen) - {""})
        return seen + extra

    def in_group_version(self, group: str, version: str) -> list[ResourceType]:
        return [rt for rt in self._types.values() if rt.group == group and rt.version == version]

    def set_crd(self, name: str, types: list[ResourceType]) -> None:
        self.remove_crd(name)
        self._by_crd[name] = types
        for rt in types:
            self._add(rt)

    def remove_crd(self, name: str) -> list[ResourceType]:
        old = self._by_crd.pop(name, [])
        for rt in old:
            self._types.pop((rt.group, rt.version, rt.plural), None)
        return old
