"""The API's object semantics, independent of HTTP: create/update/patch/delete pipelines, the status
subresource, generation, finalizers, namespace lifecycle, ownerReference garbage collection and CRDs."""

from __future__ import annotations

import copy
import re
import secrets
import uuid
from dataclasses import dataclass, field, replace
from typing import Any

from . import builtin_schema, conversion, crds, defaults, managed, validation
from . import patch as patching
from . import schema as crd_schema
from .errors import ApiError, already_exists, bad_request, conflict, invalid, not_found
from .resources import Registry, ResourceType, crd_types
from .store import Obj, Store
from .times import now

_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_GENERATE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_NAMESPACES = ("", "namespaces")
_CRDS = ("apiextensions.k8s.io", "customresourcedefinitions")
PATCH_TYPES = (
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
    "application/apply-patch+yaml",
)
_LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
_CLIENT_SIDE_APPLY = "kubectl-client-side-apply"
_SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


@dataclass(frozen=True)
class WriteOptions:
    dry_run: bool = False
    field_validation: str = "Warn"  # Strict | Warn | Ignore
    manager: str = "unknown"
    subresource: str | None = None


@dataclass
class WriteResult:
    obj: Obj
    created: bool = False
    warnings: list[str] = field(default_factory=list)


def _strip_for_compare(obj: Obj) -> Obj:
    meta = {k: v for k, v in obj.get("metadata", {}).items() if k not in ("resourceVersion", "managedFields")}
    return {**obj, "metadata": meta}


def _content(obj: Obj, ignore: tuple[str, ...]) -> Obj:
    return {k: v for k, v in obj.items() if k not in ignore}


def _record_manager(
    meta: dict[str, Any],
    opts: WriteOptions,
    operation: str,
    api_version: str,
    fields: managed.FieldSet,
    take: bool,
) -> None:
    entry: dict[str, Any] = {
        "manager": opts.manager,
        "operation": operation,
        "apiVersion": api_version,
        "time": now(),
        "fieldsType": "FieldsV1",
        "fieldsV1": fields,
    }
    if opts.subresource:
        entry["subresource"] = opts.subresource
    meta["managedFields"] = managed.record(meta.get("managedFields") or [], entry, take)


def _owned_part(rt: ResourceType, obj: Obj, subresource: str | None) -> Obj:
    """The part of `obj` a write to the main resource (or to /status) can own."""
    if subresource == "status":
        return {"metadata": {}, **({"status": obj["status"]} if "status" in obj else {})}
    if rt.status_subresource:
        return {k: v for k, v in obj.items() if k != "status"}
    return obj


def apply_conflicts(found: list[tuple[str, str, str]]) -> ApiError:
    """The 409 the real server answers when an apply would change fields other managers own."""
    by_manager: dict[tuple[str, str], list[str]] = {}
    for manager, api_version, path in found:
        by_manager.setdefault((manager, api_version), []).append(path)
    parts = []
    for (manager, api_version), fields in by_manager.items():
        if len(fields) == 1:
            parts.append(f'conflict with "{manager}" using {api_version}: {fields[0]}')
        else:
            parts.append(
                f'conflicts with "{manager}" using {api_version}:\n' + "\n".join(f"- {f}" for f in fields)
            )
    count = len(found)
    message = f"Apply failed with {count} conflict{'s' if count > 1 else ''}: " + "\n".join(parts)
    causes = [
        {"reason": "FieldManagerConflict", "message": f'conflict with "{m}" using {v}', "field": f}
        for m, v, f in found
    ]
    return ApiError(409, "Conflict", message, {"causes": causes})


class Cluster:
    def __init__(self, watch_history: int = 10000) -> None:
        self.registry = Registry()
        self.store = Store(watch_history)
        self._next_ip = 1
        for name in _SYSTEM_NAMESPACES:
            ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
            self.create(self._ns_type(), "", ns, WriteOptions(manager="kube-apiserver"))

    def _ns_type(self) -> ResourceType:
        rt = self.registry.get("", "v1", "namespaces")
        assert rt is not None
        return rt

    # ---- reads ----

    def get(self, rt: ResourceType, namespace: str, name: str) -> Obj:
        obj = self.store.get(rt.storage_key, namespace if rt.namespaced else "", name)
        if obj is None:
            raise not_found(rt.plural, rt.group, name)
        return obj

    def list_objects(self, rt: ResourceType, namespace: str | None) -> tuple[list[Obj], int]:
        return self.store.list_objects(
            rt.storage_key, namespace if rt.namespaced else None
        ), self.store.resource_version

    # ---- create ----

    def create(
        self,
        rt: ResourceType,
        namespace: str,
        body: Obj,
        opts: WriteOptions,
        operation: str = "Update",
        fields: managed.FieldSet | None = None,
    ) -> WriteResult:
        obj = conversion.to_storage(rt, copy.deepcopy(body))
        meta = dict(obj.get("metadata") or {})
        ns = namespace if rt.namespaced else ""
        if rt.namespaced:
            if meta.get("namespace") and meta["namespace"] != namespace:
                raise bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request"
                )
            self._check_namespace_open(namespace)
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + "".join(
                secrets.choice(_GENERATE_ALPHABET) for _ in range(5)
            )
        name = meta.get("name", "")
        if not name:
            raise invalid(
                rt.kind,
                rt.group,
                "",
                [("FieldValueRequired", "metadata.name", "Required value: name or generateName is required")],
            )
        if not _NAME_RE.match(name) or len(name) > 253:
            raise invalid(
                rt.kind,
                rt.group,
                name,
                [
                    (
                        "FieldValueInvalid",
                        "metadata.name",
                        f'Invalid value: "{name}": a lowercase RFC 1123 subdomain must consist of lower '
                        "case alphanumeric characters, '-' or '.', and must start and end with an "
                        "alphanumeric character",
                    )
                ],
            )
        if self.store.get(rt.storage_key, ns, name) is not None:
            raise already_exists(rt.plural, rt.group, name)
        for key in ("resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds", "selfLink"):
            meta.pop(key, None)
        meta.update(uid=str(uuid.uuid4()), creationTimestamp=now())
        if rt.namespaced:
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
        if rt.generation:
            meta["generation"] = 1
        else:
            meta.pop("generation", None)
        obj["metadata"] = meta
        if rt.status_subresource:
            if rt.builtin:
                obj["status"] = {}
            else:
                obj.pop("status", None)
        if fields is None:
            fields = managed.object_changes(None, _owned_part(rt, obj, None))
        if rt.group == "" and rt.plural == "services":
            self._allocate_cluster_ip(obj)
        warnings = self._admit(rt, obj, None, opts)
        _record_manager(meta, opts, operation, rt.api_version, fields, take=True)
        if opts.dry_run:
            obj["metadata"]["resourceVersion"] = ""
            return WriteResult(conversion.to_view(rt, obj), True, warnings)
        stored = self.store.put(rt.storage_key, obj)
        self._after_write(rt, stored)
        return WriteResult(conversion.to_view(rt, stored), True, warnings)

    def _check_namespace_open(self, namespace: str) -> None:
        ns = self.store.get(_NAMESPACES, "", namespace)
        if ns is None:
            raise not_found("namespaces", "", namespace)
        if ns["metadata"].get("deletionTimestamp"):
            raise ApiError(
                403,
                "Forbidden",
                f"unable to create new content in namespace {namespace} because it is being terminated",
                {"name": namespace, "kind": "namespaces"},
            )

    def _allocate_cluster_ip(self, obj: Obj) -> None:
        spec = obj.setdefault("spec", {})
        if spec.get("type") == "ExternalName" or spec.get("clusterIP") == "None":
            return
        if not spec.get("clusterIP"):
            spec["clusterIP"] = f"10.96.{self._next_ip // 250}.{self._next_ip % 250 + 1}"
            self._next_ip += 1
        spec.setdefault("clusterIPs", [spec["clusterIP"]])

    # ---- admission: defaulting, pruning, validation ----

    def _admit(self, rt: ResourceType, obj: Obj, old: Obj | None, opts: WriteOptions) -> list[str]:
        """Prune unknown fields (refused when Strict, warned about when Warn), default, validate."""
        meta, api_version, kind = obj["metadata"], obj.get("apiVersion"), obj.get("kind")
        if rt.builtin:
            unknown = builtin_schema.prune_unknown(obj)
            undecodable = validation.undecodable_bytes(rt.group, rt.kind, obj)
            if undecodable:
                raise bad_request(
                    f'{rt.kind} in version "{rt.version}" cannot be handled as a {rt.kind}: {undecodable}'
                )
        elif rt.schema is not None:
            pruned_obj, unknown = crd_schema.prune_and_default(rt.schema, obj)
            # metadata, apiVersion and kind are the server's business, never the schema's
            admitted = {**pruned_obj, "metadata": meta, "apiVersion": api_version, "kind": kind}
            obj.clear()
            obj.update(admitted)
            unknown = [p for p in unknown if p.split(".", 1)[0] not in ("metadata", "apiVersion", "kind")]
        else:
            unknown = []
        if unknown and opts.field_validation == "Strict":
            fields = ", ".join(f'unknown field "{p}"' for p in unknown)
            raise bad_request(
                f'{rt.kind} in version "{rt.version}" cannot be handled as a {rt.kind}: '
                f"strict decoding error: {fields}"
            )
        warnings = [f'unknown field "{p}"' for p in unknown] if opts.field_validation == "Warn" else []
        bad_metadata = validation.metadata(obj)
        if bad_metadata:
            raise invalid(rt.kind, rt.group, meta.get("name", ""), bad_metadata)
        if rt.builtin:
            defaults.apply_defaults(rt.group, rt.kind, obj)
            causes = validation.validate(rt.group, rt.kind, obj, old)
            if causes:
                raise invalid(rt.kind, rt.group, meta.get("name", ""), causes)
            if rt.storage_key == _CRDS:
                crds.validate_crd(obj)
                crds.set_status(obj, old)
        elif rt.schema is not None:
            errors = crd_schema.validate(rt.schema, obj, old)
            if errors:
                err = ApiError(422, "Invalid", "invalid")
                err.body = crd_schema.invalid_status(rt.kind, rt.group, meta.get("name", ""), errors)
                raise err
        return warnings

    def _after_write(self, rt: ResourceType, stored: Obj) -> None:
        if rt.storage_key == _CRDS:
            self.registry.set_crd(stored["metadata"]["name"], crd_types(stored))

    # ---- update (PUT, and every PATCH ends here) ----

    def update(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        body: Obj,
        opts: WriteOptions,
    ) -> WriteResult:
        ns = namespace if rt.namespaced else ""
        old = self.store.get(rt.storage_key, ns, name)
        if old is None:
            raise not_found(rt.plural, rt.group, name)
        new = conversion.to_storage(rt, copy.deepcopy(body))
        return self._update(rt, old, new, opts, "Update")

    def _update(
        self,
        rt: ResourceType,
        old: Obj,
        new: Obj,
        opts: WriteOptions,
        operation: str,
        applied: tuple[managed.FieldSet, bool] | None = None,
    ) -> WriteResult:
        """`applied`: for an apply, its field set and whether it takes the fields from other managers."""
        old_meta = old["metadata"]
        name = old_meta["name"]
        meta = dict(new.get("metadata") or {})
        if meta.get("name", name) != name:
            raise bad_request("the name of the object does not match the name on the URL")
        if rt.namespaced and meta.get("namespace", old_meta.get("namespace")) != old_meta.get("namespace"):
            raise bad_request(
                "the namespace of the provided object does not match the namespace sent on the request"
            )
        if meta.get("resourceVersion") and meta["resourceVersion"] != old_meta["resourceVersion"]:
            raise conflict(rt.plural, rt.group, name)
        managed_override: list[Any] | None = None
        if opts.subresource == "status":
            result = copy.deepcopy(old)
            if "status" in new:
                result["status"] = new["status"]
            else:
                result.pop("status", None)
        else:
            result = new
            # a client may rewrite managedFields (kubectl does, to hand client-side-apply fields to its
            # server-side apply manager); otherwise they are the server's to maintain
            client_managed = meta.get("managedFields")
            if client_managed is not None and client_managed != old_meta.get("managedFields"):
                managed_override = client_managed
            for key in (
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "generation",
                "managedFields",
            ):
                if key in old_meta:
                    meta[key] = old_meta[key]
                else:
                    meta.pop(key, None)
            meta["name"] = name
            if rt.namespaced:
                meta["namespace"] = old_meta["namespace"]
            result["metadata"] = meta
            if rt.status_subresource:
                if "status" in old:
                    result["status"] = old["status"]
                else:
                    result.pop("status", None)
            if rt.group == "" and rt.plural == "services":
                old_spec = old.get("spec", {})
                spec = result.setdefault("spec", {})
                for key in ("clusterIP", "clusterIPs"):
                    if key in old_spec and not spec.get(key):
                        spec[key] = old_spec[key]
        result["metadata"]["resourceVersion"] = old_meta["resourceVersion"]
        warnings = self._admit(rt, result, old, opts)
        if rt.generation:
            ignore = ("metadata", "status") if (rt.builtin or rt.status_subresource) else ("metadata",)
            if _content(result, ignore) != _content(old, ignore):
                result["metadata"]["generation"] = int(old_meta.get("generation", 1)) + 1
        if managed_override is None and _strip_for_compare(result) == _strip_for_compare(old):
            return WriteResult(conversion.to_view(rt, old), False, warnings)
        if managed_override is not None:
            result["metadata"]["managedFields"] = managed_override
        elif applied is None:
            changes = managed.object_changes(
                _owned_part(rt, old, opts.subresource), _owned_part(rt, result, opts.subresource)
            )
            _record_manager(result["metadata"], opts, operation, rt.api_version, changes, take=True)
        else:
            _record_manager(result["metadata"], opts, operation, rt.api_version, applied[0], take=applied[1])
        if opts.dry_run:
            return WriteResult(conversion.to_view(rt, result), False, warnings)
        if old_meta.get("deletionTimestamp") and not result["metadata"].get("finalizers"):
            removed = self._remove(rt.storage_key, result, final=True)
            return WriteResult(conversion.to_view(rt, removed), False, warnings)
        stored = self.store.put(rt.storage_key, result)
        self._after_write(rt, stored)
        return WriteResult(conversion.to_view(rt, stored), False, warnings)

    # ---- patch ----

    def patch(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        content_type: str,
        patch_body: Any,
        opts: WriteOptions,
        force: bool = False,
    ) -> WriteResult:
        ns = namespace if rt.namespaced else ""
        old = self.store.get(rt.storage_key, ns, name)
        if content_type == "application/apply-patch+yaml":
            return self._apply(rt, namespace, name, old, patch_body, opts, force)
        if old is None:
            raise not_found(rt.plural, rt.group, name)
        current = conversion.to_view(rt, old)
        try:
            if content_type == "application/json-patch+json":
                if not isinstance(patch_body, list):
                    raise bad_request(
                        "json: cannot unmarshal object into Go value of type []handlers.jsonPatchOp"
                    )
                patched = patching.json_patch(current, patch_body)
            elif content_type == "application/merge-patch+json":
                patched = patching.merge_patch(current, self._object_patch(patch_body))
            elif content_type == "application/strategic-merge-patch+json":
                if not rt.builtin:
                    raise unsupported_patch()
                patched = patching.strategic_merge_patch(current, self._object_patch(patch_body), rt.kind)
            else:
                raise unsupported_patch()
        except patching.PatchError as exc:
            raise ApiError(422, "Invalid", str(exc)) from exc
        return self._update(rt, old, conversion.to_storage(rt, patched), opts, "Update")

    @staticmethod
    def _object_patch(patch_body: Any) -> dict[str, Any]:
        if not isinstance(patch_body, dict):
            raise bad_request("json: cannot unmarshal array into Go value of type map[string]interface {}")
        return patch_body

    def _apply(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        old: Obj | None,
        applied: Any,
        opts: WriteOptions,
        force: bool,
    ) -> WriteResult:
        if not isinstance(applied, dict):
            raise bad_request("error decoding YAML: the apply configuration must be an object")
        applied_name = (applied.get("metadata") or {}).get("name")
        if applied_name and applied_name != name:
            raise bad_request("the name of the object does not match the name on the URL")
        owned = _owned_part(rt, applied, opts.subresource)
        applied_fields = managed.field_set(owned)
        if old is None:
            if opts.subresource:
                raise not_found(rt.plural, rt.group, name)
            created = patching.apply_patch(None, applied, rt.kind, rt.builtin)
            created.setdefault("metadata", {})["name"] = name
            return self.create(rt, namespace, created, opts, "Apply", applied_fields)
        live = conversion.to_view(rt, old)
        entries = old["metadata"].get("managedFields") or []
        found = managed.conflicts(entries, opts.manager, opts.subresource, owned, live)
        if _LAST_APPLIED in (old["metadata"].get("annotations") or {}):
            # moving from `kubectl apply` to server-side apply: the server lets the applier take over
            # what client-side apply managed, as the real one does for objects with last-applied config
            found = [c for c in found if c[0] != _CLIENT_SIDE_APPLY]
        if found and not force:
            raise apply_conflicts(found)
        ident = (opts.manager, "Apply", opts.subresource)
        mine = next(
            (
                e.get("fieldsV1") or {}
                for e in entries
                if (e.get("manager"), e.get("operation"), e.get("subresource")) == ident
            ),
            {},
        )
        others = [e.get("fieldsV1") or {} for e in entries if e.get("manager") != opts.manager]
        # what this manager applied before and applies no more goes, unless someone else owns it too
        for path in managed.removed(mine, applied_fields):
            if not any(managed.owns(other, path) for other in others):
                managed.remove(live, path)
        merged = patching.apply_patch(live, applied, rt.kind, rt.builtin)
        return self._update(
            rt, old, conversion.to_storage(rt, merged), opts, "Apply", (applied_fields, force)
        )

    # ---- the scale subresource ----

    def scale(self, rt: ResourceType, namespace: str, name: str) -> Obj:
        return scale_view(self.get(rt, namespace, name))

    def update_scale(
        self, rt: ResourceType, namespace: str, name: str, scale: Obj, opts: WriteOptions
    ) -> WriteResult:
        old = self.get(rt, namespace, name)
        replicas = (scale.get("spec") or {}).get("replicas")
        if not isinstance(replicas, int) or replicas < 0:
            raise invalid(
                "Scale",
                "autoscaling",
                name,
                [
                    (
                        "FieldValueInvalid",
                        "spec.replicas",
                        f"Invalid value: {replicas}: must be greater than or equal to 0",
                    )
                ],
            )
        new = copy.deepcopy(old)
        new["metadata"]["resourceVersion"] = (scale.get("metadata") or {}).get("resourceVersion") or ""
        new.setdefault("spec", {})["replicas"] = replicas
        result = self._update(rt, old, new, replace(opts, subresource=None), "Update")
        return WriteResult(scale_view(result.obj), False, result.warnings)

    def patch_scale(
        self, rt: ResourceType, namespace: str, name: str, content_type: str, body: Any, opts: WriteOptions
    ) -> WriteResult:
        current = self.scale(rt, namespace, name)
        try:
            if content_type == "application/json-patch+json" and isinstance(body, list):
                patched = patching.json_patch(current, body)
            elif content_type in ("application/merge-patch+json", "application/strategic-merge-patch+json"):
                patched = patching.merge_patch(current, self._object_patch(body))
            else:
                raise unsupported_patch()
        except patching.PatchError as exc:
            raise ApiError(422, "Invalid", str(exc)) from exc
        return self.update_scale(rt, namespace, name, patched, opts)

    # ---- delete ----

    def delete(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        *,
        propagation: str | None = None,
        preconditions: dict[str, Any] | None = None,
        dry_run: bool = False,
    ) -> tuple[Obj, bool]:
        """Delete (or start deleting) an object. Returns (its last state, whether it is gone now)."""
        ns = namespace if rt.namespaced else ""
        obj = self.store.get(rt.storage_key, ns, name)
        if obj is None:
            raise not_found(rt.plural, rt.group, name)
        pre = preconditions or {}
        if pre.get("uid") and pre["uid"] != obj["metadata"].get("uid"):
            raise ApiError(
                409,
                "Conflict",
                f"Precondition failed: UID in precondition: {pre['uid']}, "
                f"UID in object meta: {obj['metadata'].get('uid')}",
            )
        if pre.get("resourceVersion") and pre["resourceVersion"] != obj["metadata"]["resourceVersion"]:
            raise conflict(rt.plural, rt.group, name)
        if dry_run:
            return conversion.to_view(rt, obj), False
        policy = propagation or "Background"
        if policy == "Orphan":
            self._orphan_dependents(obj["metadata"].get("uid", ""))
        elif policy == "Foreground":
            self._delete_dependents(obj["metadata"].get("uid", ""), force=True)
        if rt.storage_key == _NAMESPACES:
            return conversion.to_view(rt, self._delete_namespace(obj)), False
        if obj["metadata"].get("finalizers"):
            return conversion.to_view(rt, self._mark_deleting(rt.storage_key, obj)), False
        return conversion.to_view(rt, self._remove(rt.storage_key, obj)), True

    def _mark_deleting(self, key: tuple[str, str], obj: Obj) -> Obj:
        """Set deletionTimestamp (once): the object stays until its finalizers are gone."""
        if obj["metadata"].get("deletionTimestamp"):
            return obj
        obj["metadata"]["deletionTimestamp"] = now()
        obj["metadata"]["deletionGracePeriodSeconds"] = 0
        if key == _NAMESPACES:
            obj.setdefault("status", {})["phase"] = "Terminating"
        return self.store.put(key, obj)

    def _remove(self, key: tuple[str, str], obj: Obj, final: bool = False) -> Obj:
        """Remove an object for good (`final`: its last state is `obj`), then GC what depended on it."""
        meta = obj["metadata"]
        removed = (
            self.store.remove(key, meta.get("namespace", ""), meta["name"], obj if final else None) or obj
        )
        if key == _CRDS:
            self._drop_crd(removed)
        self._delete_dependents(meta.get("uid", ""))
        ns = meta.get("namespace")
        if ns:
            self._maybe_finish_namespace(ns)
        return removed

    def _delete_namespace(self, ns_obj: Obj) -> Obj:
        name = ns_obj["metadata"]["name"]
        ns_obj = self._mark_deleting(_NAMESPACES, ns_obj)
        for key, obj in list(self.store.iter_all()):
            if obj["metadata"].get("namespace") == name:
                self._delete_object(key, obj)
        return self._maybe_finish_namespace(name) or ns_obj

    def _maybe_finish_namespace(self, name: str) -> Obj | None:
        ns_obj = self.store.get(_NAMESPACES, "", name)
        if ns_obj is None or not ns_obj["metadata"].get("deletionTimestamp"):
            return None
        if any(obj["metadata"].get("namespace") == name for _, obj in self.store.iter_all()):
            return None
        return self.store.remove(_NAMESPACES, "", name)

    def _delete_object(self, key: tuple[str, str], obj: Obj) -> None:
        """Delete a stored object on the server's own behalf (GC, namespace and CRD cleanup)."""
        current = self.store.get(key, obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
        if current is None:
            return
        if current["metadata"].get("finalizers"):
            self._mark_deleting(key, current)
        else:
            self._remove(key, current)

    def _dependents(self, owner_uid: str) -> list[tuple[tuple[str, str], Obj]]:
        return [
            (key, obj)
            for key, obj in self.store.iter_all()
            if any(ref.get("uid") == owner_uid for ref in obj["metadata"].get("ownerReferences") or [])
        ]

    def _delete_dependents(self, owner_uid: str, force: bool = False) -> None:
        """Background GC: a dependent goes once none of its owners exists any more."""
        if not owner_uid:
            return
        for key, obj in self._dependents(owner_uid):
            refs = obj["metadata"].get("ownerReferences") or []
            alive = [r for r in refs if r.get("uid") != owner_uid and self.store.by_uid(r.get("uid", ""))]
            if force or not alive:
                self._delete_object(key, obj)

    def _orphan_dependents(self, owner_uid: str) -> None:
        for key, obj in self._dependents(owner_uid):
            updated = copy.deepcopy(obj)
            refs = [r for r in updated["metadata"]["ownerReferences"] if r.get("uid") != owner_uid]
            if refs:
                updated["metadata"]["ownerReferences"] = refs
            else:
                updated["metadata"].pop("ownerReferences")
            self.store.put(key, updated)

    def _drop_crd(self, crd: Obj) -> None:
        """A deleted CRD takes its objects along (finalizers notwithstanding), and GC their dependents."""
        types = self.registry.remove_crd(crd["metadata"]["name"])
        for key in {rt.storage_key for rt in types}:
            for obj in self.store.list_objects(key):
                self._remove(key, obj)

    def delete_collection(
        self, rt: ResourceType, items: list[Obj], propagation: str | None, dry_run: bool
    ) -> list[Obj]:
        deleted = []
        for obj in items:
            meta = obj["metadata"]
            try:
                deleted.append(
                    self.delete(
                        rt, meta.get("namespace", ""), meta["name"], propagation=propagation, dry_run=dry_run
                    )[0]
                )
            except ApiError as exc:
                if exc.code != 404:  # deleted meanwhile (e.g. by GC of an earlier item): nothing to do
                    raise
        return deleted


def scale_view(obj: Obj) -> Obj:
    """The autoscaling/v1 Scale of a workload."""
    meta = obj["metadata"]
    match = ((obj.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            k: meta[k]
            for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
            if k in meta
        },
        "spec": {"replicas": (obj.get("spec") or {}).get("replicas", 0)},
        "status": {
            "replicas": (obj.get("status") or {}).get("replicas", 0),
            "selector": ",".join(f"{k}={v}" for k, v in sorted(match.items())),
        },
    }


def unsupported_patch() -> ApiError:
    return ApiError(
        415,
        "UnsupportedMediaType",
        "the body of the request was in an unknown format - accepted media types include: "
        "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml",
    )
