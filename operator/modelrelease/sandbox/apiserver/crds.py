"""CustomResourceDefinition checks and the status the real CRD controllers would write."""

from __future__ import annotations

from typing import Any

from .errors import invalid
from .times import now

Obj = dict[str, Any]


def validate_crd(crd: Obj) -> None:
    """The CRD checks clients hit in practice (names, scope, versions), with Kubernetes messages."""
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    name = crd.get("metadata", {}).get("name", "")
    causes: list[tuple[str, str, str]] = []
    if not spec.get("group"):
        causes.append(("FieldValueRequired", "spec.group", "Required value"))
    for key in ("plural", "kind"):
        if not names.get(key):
            causes.append(("FieldValueRequired", f"spec.names.{key}", "Required value"))
    if spec.get("scope") not in ("Namespaced", "Cluster"):
        causes.append(
            (
                "FieldValueNotSupported",
                "spec.scope",
                f'Unsupported value: "{spec.get("scope", "")}": supported values: "Cluster", "Namespaced"',
            )
        )
    versions = spec.get("versions") or []
    if not versions:
        causes.append(
            (
                "FieldValueInvalid",
                "spec.versions",
                "Invalid value: null: must have exactly one version marked as storage version",
            )
        )
    elif sum(1 for v in versions if v.get("storage")) != 1:
        causes.append(
            (
                "FieldValueInvalid",
                "spec.versions",
                "Invalid value: must have exactly one version marked as storage version",
            )
        )
    expected = f"{names.get('plural', '')}.{spec.get('group', '')}"
    if names.get("plural") and spec.get("group") and name != expected:
        causes.append(
            (
                "FieldValueInvalid",
                "metadata.name",
                f'Invalid value: "{name}": must be spec.names.plural+"."+spec.group',
            )
        )
    if causes:
        raise invalid("CustomResourceDefinition", "apiextensions.k8s.io", name, causes)


def _condition(type_: str, reason: str, message: str, old: list[Obj]) -> Obj:
    for cond in old:
        if cond.get("type") == type_ and cond.get("status") == "True":
            return {**cond, "reason": reason, "message": message}
    return {
        "type": type_,
        "status": "True",
        "lastTransitionTime": now(),
        "reason": reason,
        "message": message,
    }


def set_status(crd: Obj, old: Obj | None) -> None:
    """Names accepted and established at once, as the real controllers do for a conflict-free CRD."""
    spec = crd.get("spec") or {}
    old_status = (old or {}).get("status") or {}
    old_conditions = old_status.get("conditions") or []
    storage = [v["name"] for v in spec.get("versions", []) if v.get("storage")]
    stored = list(old_status.get("storedVersions") or [])
    for version in storage:
        if version not in stored:
            stored.append(version)
    crd["status"] = {
        "conditions": [
            _condition("NamesAccepted", "NoConflicts", "no conflicts found", old_conditions),
            _condition(
                "Established", "InitialNamesAccepted", "the initial names have been accepted", old_conditions
            ),
        ],
        "acceptedNames": dict(spec.get("names") or {}),
        "storedVersions": stored,
    }
