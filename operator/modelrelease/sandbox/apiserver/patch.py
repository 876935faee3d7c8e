"""The three PATCH flavours of the Kubernetes API, and a simplified server-side apply, as pure functions.

- `merge_patch`: RFC 7386 JSON merge patch (`application/merge-patch+json`).
- `json_patch`: RFC 6902 JSON patch (`application/json-patch+json`), with the error texts of the
  evanphx/json-patch v4 library the real apiserver uses.
- `strategic_merge_patch`: `application/strategic-merge-patch+json` for built-in kinds, following
  k8s.io/apimachinery `strategicpatch` (server mode: parallel lists merged, unmatched nulls ignored).

Every function returns a new document and leaves its arguments untouched.
"""

from __future__ import annotations

import copy
from typing import Any, NamedTuple

JSON = Any


class PatchError(ValueError):
    """A patch that cannot be applied; `str(error)` is the message the real apiserver would give.

    `code` is the HTTP status the real apiserver answers with: 422 when a well-formed JSON patch
    does not apply to the object, 400 for a malformed patch document.
    """

    def __init__(self, message: str, code: int = 400) -> None:
        super().__init__(message)
        self.code = code


def json_equal(a: JSON, b: JSON) -> bool:
    """JSON equality: unlike Python's `==`, `true` is not `1` (but `1` is `1.0`, as in JSON)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(v, b[k]) for k, v in a.items())
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    return type(a) is type(b) and bool(a == b)


# --------------------------------------------------------------------------------------------------
# RFC 7386 merge patch


def merge_patch(target: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """Apply an RFC 7386 merge patch: objects merge key by key, `null` deletes, anything else replaces."""
    merged = _merge(target, patch)
    if not isinstance(merged, dict):
        raise PatchError("a merge patch for an object must be a JSON object")
    return merged


def _merge(target: JSON, patch: JSON) -> JSON:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merge(result.get(key), value)
    return result


# --------------------------------------------------------------------------------------------------
# RFC 6902 JSON patch

_MISSING = "missing value"
_GO_TYPES = {bool: "bool", int: "number", float: "number", str: "string", list: "array", dict: "object"}


def json_patch(target: dict[str, Any], ops: list[dict[str, Any]]) -> dict[str, Any]:
    """Apply an RFC 6902 patch (add, remove, replace, move, copy, test) to a copy of `target`.

    Behaves as the evanphx/json-patch v4 library behind the real apiserver, quirks included (checked
    against `kubectl patch --local`, which uses the same library): `replace` of a missing object
    member adds it, `copy` of a missing member copies null, `test` of a missing member against null
    passes, and negative array indices count from the end.
    """
    if not isinstance(ops, list):
        raise PatchError(f"json: cannot unmarshal {_go_type(ops)} into Go value of type jsonpatch.Patch")
    for op in ops:
        if not isinstance(op, dict):
            raise PatchError(
                f"json: cannot unmarshal {_go_type(op)} into Go value of type jsonpatch.Operation"
            )
    doc: JSON = copy.deepcopy(target)
    for op in ops:
        doc = _apply_op(doc, op)
    if not isinstance(doc, dict):
        raise PatchError("json patch must leave an object", 422)
    return doc


def _go_type(value: JSON) -> str:
    return _GO_TYPES.get(type(value), "null")


def _apply_op(doc: JSON, op: dict[str, Any]) -> JSON:
    kind = op.get("op")
    value = copy.deepcopy(op.get("value"))
    if kind == "add":
        path = _op_field(op, "path", "add operation failed to decode path")
        parent, key = _locate(doc, path, f'add operation does not apply: doc is missing path: "{path}"')
        _insert(parent, key, value, f"error in add for path: '{path}'")
    elif kind == "remove":
        path = _op_field(op, "path", "remove operation failed to decode path")
        parent, key = _locate(doc, path, f'remove operation does not apply: doc is missing path: "{path}"')
        _delete(parent, key, f"error in remove for path: '{path}'")
    elif kind == "replace":
        path = _op_field(op, "path", "replace operation failed to decode path: operation missing path field")
        if path == "":
            return value
        parent, key = _locate(doc, path, f"replace operation does not apply: doc is missing path: {path}")
        if isinstance(parent, list):
            if not (key.isdigit() and int(key) < len(parent)):
                raise PatchError(
                    f"replace operation does not apply: doc is missing key: {path}: {_MISSING}", 422
                )
            parent[int(key)] = value
        else:
            parent[key] = value
    elif kind == "test":
        path = _op_field(op, "path", "test operation failed to decode path: operation missing path field")
        if path == "":
            actual = doc
        else:
            parent, key = _locate(doc, path, f"test operation does not apply: is missing path: {path}")
            actual = _get(parent, key, f"error in test for path: '{path}'")
        if not json_equal(actual, value):
            raise PatchError(f"testing value {path} failed: test failed", 422)
    elif kind in ("move", "copy"):
        source = _op_field(
            op, "from", f"{kind} operation failed to decode from: operation, missing from field"
        )
        parent, key = _locate(
            doc, source, f"{kind} operation does not apply: doc is missing from path: {source}"
        )
        if kind == "move":
            moved = _get(parent, key, f"error in move for path: '{key}'")
            _delete(parent, key, f"error in move for path: '{key}'")
            path = _op_field(op, "path", "move operation failed to decode path: operation missing path field")
            context = f"error in move for path: '{path}'"
        else:
            moved = copy.deepcopy(_get(parent, key, f"error in copy for from: '{source}'"))
            path = _op_field(op, "path", "copy operation failed to decode path")
            context = "error while adding value during copy"
        dest, dest_key = _locate(
            doc, path, f"{kind} operation does not apply: doc is missing destination path: {path}"
        )
        _insert(dest, dest_key, moved, context)
    else:
        raise PatchError(f"Unexpected kind: {kind if isinstance(kind, str) else 'unknown'}", 422)
    return doc


def _op_field(op: dict[str, Any], field: str, missing: str) -> str:
    value = op.get(field)
    if not isinstance(value, str):
        raise PatchError(f"{missing}: {_MISSING}", 422)
    return value


def _locate(doc: JSON, pointer: str, missing: str) -> tuple[Any, str]:
    """The container holding the pointer's last token, and that token (RFC 6901 `~1`/`~0` decoded)."""
    if not pointer.startswith("/"):
        raise PatchError(f"{missing}: {_MISSING}", 422)
    *parents, last = (token.replace("~1", "/").replace("~0", "~") for token in pointer[1:].split("/"))
    node = doc
    for token in parents:
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
            node = node[int(token)]
        else:
            raise PatchError(f"{missing}: {_MISSING}", 422)
    if not isinstance(node, dict | list):
        raise PatchError(f"{missing}: {_MISSING}", 422)
    return node, last


def _index(key: str, size: int, context: str, prefix: str = "") -> int:
    """Array index of `key` among `size` slots; negative indices count from the end."""
    try:
        index = int(key)
    except ValueError:
        raise PatchError(f'{context}: {prefix}strconv.Atoi: parsing "{key}": invalid syntax', 422) from None
    if index >= size or index < -size:
        raise PatchError(f"{context}: Unable to access invalid index: {index}: invalid index referenced", 422)
    return index + size if index < 0 else index


def _get(parent: Any, key: str, context: str) -> JSON:
    if isinstance(parent, dict):
        return parent.get(key)  # a missing member reads as null, as in the library
    try:
        index = int(key)
    except ValueError:
        raise PatchError(f'{context}: strconv.Atoi: parsing "{key}": invalid syntax', 422) from None
    if not 0 <= index < len(parent):
        raise PatchError(f"{context}: Unable to access invalid index: {index}: invalid index referenced", 422)
    return parent[index]


def _insert(parent: Any, key: str, value: JSON, context: str) -> None:
    if isinstance(parent, dict):
        parent[key] = value
    elif key == "-":
        parent.append(value)
    else:
        proper = f"value was not a proper array index: '{key}': "
        parent.insert(_index(key, len(parent) + 1, context, proper), value)


def _delete(parent: Any, key: str, context: str) -> None:
    if isinstance(parent, dict):
        if key not in parent:
            raise PatchError(f"{context}: Unable to remove nonexistent key: {key}: {_MISSING}", 422)
        del parent[key]
    else:
        del parent[_index(key, len(parent), context)]


# --------------------------------------------------------------------------------------------------
# Strategic merge patch


class _Field(NamedTuple):
    """Patch metadata of one field of a Kubernetes type (its `patchStrategy`/`patchMergeKey` tags).

    `type`: the struct type of the value, or of the list's items, when it holds fields listed below.
    `merge_key`: None for a plain field (lists are replaced whole); "" for a list of primitives merged
    as a set (`patchStrategy:"merge"` without a key, e.g. finalizers); otherwise the list's merge key.
    """

    type: str | None
    merge_key: str | None = None


def _merge_list(key: str, item_type: str | None = None) -> _Field:
    return _Field(item_type, key)


def _struct(type_name: str) -> _Field:
    return _Field(type_name)


# Patch metadata by Kubernetes type name, generated from the v1.32 OpenAPI (`x-kubernetes-patch-strategy:
# merge` with `x-kubernetes-patch-merge-key`) as shipped in kubernetes-validate; the unit tests check it
# against that source. Only lists that merge, and the struct fields leading to them, are listed: every other
# list is atomic and replaced whole by a patch (tolerations, envFrom, command, args, RBAC rules, subjects …).
# The `merge,retainKeys` lists (volumes, resourceClaims) merge; `$retainKeys` directives apply wherever sent.
_TYPES: dict[str, dict[str, _Field]] = {
    "Pod": {"metadata": _struct("ObjectMeta"), "spec": _struct("PodSpec"), "status": _struct("PodStatus")},
    "ObjectMeta": {"finalizers": _merge_list(""), "ownerReferences": _merge_list("uid")},
    "PodSpec": {
        "containers": _merge_list("name", "Container"),
        "ephemeralContainers": _merge_list("name", "EphemeralContainer"),
        "hostAliases": _merge_list("ip"),
        "imagePullSecrets": _merge_list("name"),
        "initContainers": _merge_list("name", "Container"),
        "resourceClaims": _merge_list("name"),
        "schedulingGates": _merge_list("name"),
        "topologySpreadConstraints": _merge_list("topologyKey"),
        "volumes": _merge_list("name", "Volume"),
    },
    "Container": {
        "env": _merge_list("name"),
        "ports": _merge_list("containerPort"),
        "volumeDevices": _merge_list("devicePath"),
        "volumeMounts": _merge_list("mountPath"),
    },
    "EphemeralContainer": {
        "env": _merge_list("name"),
        "ports": _merge_list("containerPort"),
        "volumeDevices": _merge_list("devicePath"),
        "volumeMounts": _merge_list("mountPath"),
    },
    "Volume": {"ephemeral": _struct("EphemeralVolumeSource")},
    "EphemeralVolumeSource": {"volumeClaimTemplate": _struct("PersistentVolumeClaimTemplate")},
    "PersistentVolumeClaimTemplate": {"metadata": _struct("ObjectMeta")},
    "PodStatus": {
        "conditions": _merge_list("type"),
        "hostIPs": _merge_list("ip"),
        "podIPs": _merge_list("ip"),
        "resourceClaimStatuses": _merge_list("name"),
    },
    "PodTemplate": {"metadata": _struct("ObjectMeta"), "template": _struct("PodTemplateSpec")},
    "PodTemplateSpec": {"metadata": _struct("ObjectMeta"), "spec": _struct("PodSpec")},
    "Service": {
        "metadata": _struct("ObjectMeta"),
        "spec": _struct("ServiceSpec"),
        "status": _struct("ServiceStatus"),
    },
    "ServiceSpec": {"ports": _merge_list("port")},
    "ServiceStatus": {"conditions": _merge_list("type")},
    "ConfigMap": {"metadata": _struct("ObjectMeta")},
    "Secret": {"metadata": _struct("ObjectMeta")},
    "ServiceAccount": {"metadata": _struct("ObjectMeta"), "secrets": _merge_list("name")},
    "Namespace": {"metadata": _struct("ObjectMeta"), "status": _struct("NamespaceStatus")},
    "NamespaceStatus": {"conditions": _merge_list("type")},
    "Event": {"metadata": _struct("ObjectMeta")},
    "Endpoints": {"metadata": _struct("ObjectMeta")},
    "PersistentVolumeClaim": {
        "metadata": _struct("ObjectMeta"),
        "status": _struct("PersistentVolumeClaimStatus"),
    },
    "PersistentVolumeClaimStatus": {"conditions": _merge_list("type")},
    "Node": {"metadata": _struct("ObjectMeta"), "spec": _struct("NodeSpec"), "status": _struct("NodeStatus")},
    "NodeSpec": {"podCIDRs": _merge_list("")},
    "NodeStatus": {"addresses": _merge_list("type"), "conditions": _merge_list("type")},
    "Deployment": {
        "metadata": _struct("ObjectMeta"),
        "spec": _struct("DeploymentSpec"),
        "status": _struct("DeploymentStatus"),
    },
    "DeploymentSpec": {"template": _struct("PodTemplateSpec")},
    "DeploymentStatus": {"conditions": _merge_list("type")},
    "ReplicaSet": {
        "metadata": _struct("ObjectMeta"),
        "spec": _struct("ReplicaSetSpec"),
        "status": _struct("ReplicaSetStatus"),
    },
    "ReplicaSetSpec": {"template": _struct("PodTemplateSpec")},
    "ReplicaSetStatus": {"conditions": _merge_list("type")},
    "StatefulSet": {
        "metadata": _struct("ObjectMeta"),
        "spec": _struct("StatefulSetSpec"),
        "status": _struct("StatefulSetStatus"),
    },
    "StatefulSetSpec": {"template": _struct("PodTemplateSpec")},
    "StatefulSetStatus": {"conditions": _merge_list("type")},
    "DaemonSet": {
        "metadata": _struct("ObjectMeta"),
        "spec": _struct("DaemonSetSpec"),
        "status": _struct("DaemonSetStatus"),
    },
    "DaemonSetSpec": {"template": _struct("PodTemplateSpec")},
    "DaemonSetStatus": {"conditions": _merge_list("type")},
    "Job": {"metadata": _struct("ObjectMeta"), "spec": _struct("JobSpec"), "status": _struct("JobStatus")},
    "JobSpec": {"template": _struct("PodTemplateSpec")},
    "JobStatus": {"conditions": _merge_list("type")},
    "CronJob": {"metadata": _struct("ObjectMeta"), "spec": _struct("CronJobSpec")},
    "CronJobSpec": {"jobTemplate": _struct("JobTemplateSpec")},
    "JobTemplateSpec": {"metadata": _struct("ObjectMeta"), "spec": _struct("JobSpec")},
    "Role": {"metadata": _struct("ObjectMeta")},
    "ClusterRole": {"metadata": _struct("ObjectMeta")},
    "RoleBinding": {"metadata": _struct("ObjectMeta")},
    "ClusterRoleBinding": {"metadata": _struct("ObjectMeta")},
    "HorizontalPodAutoscaler": {
        "metadata": _struct("ObjectMeta"),
        "status": _struct("HorizontalPodAutoscalerStatus"),
    },
    "HorizontalPodAutoscalerStatus": {"conditions": _merge_list("type")},
    "NetworkPolicy": {"metadata": _struct("ObjectMeta")},
    "Ingress": {"metadata": _struct("ObjectMeta")},
    "PodDisruptionBudget": {
        "metadata": _struct("ObjectMeta"),
        "status": _struct("PodDisruptionBudgetStatus"),
    },
    "PodDisruptionBudgetStatus": {"conditions": _merge_list("type")},
}

# Any other built-in kind (CustomResourceDefinition, Lease, StorageClass …) merges only its metadata lists.
_OTHER_KIND = "ObjectWithMetadata"
_TYPES[_OTHER_KIND] = {"metadata": _struct("ObjectMeta")}

# Built-in kinds whose root type is in `_TYPES` under the kind's own name.
STRATEGIC_KINDS: frozenset[str] = frozenset(
    {
        "Pod",
        "PodTemplate",
        "Service",
        "ConfigMap",
        "Secret",
        "ServiceAccount",
        "Namespace",
        "Event",
        "Endpoints",
        "PersistentVolumeClaim",
        "Node",
        "Deployment",
        "ReplicaSet",
        "StatefulSet",
        "DaemonSet",
        "Job",
        "CronJob",
        "Role",
        "ClusterRole",
        "RoleBinding",
        "ClusterRoleBinding",
        "HorizontalPodAutoscaler",
        "NetworkPolicy",
        "Ingress",
        "PodDisruptionBudget",
    }
)

_DIRECTIVE = "$patch"
_RETAIN_KEYS = "$retainKeys"
_SET_ORDER = "$setElementOrder"
_DELETE_FROM = "$deleteFromPrimitiveList"


def strategic_merge_patch(target: dict[str, Any], patch: dict[str, Any], kind: str) -> dict[str, Any]:
    """Apply a strategic merge patch to an object of a built-in `kind`.

    Lists listed in the type table merge by their patch merge key (or as sets of primitives); all
    other lists are replaced. Directives: `$patch: replace|delete` on maps and list items,
    `$patch: replace` as a list element, `$setElementOrder/<list>`, `$deleteFromPrimitiveList/<list>`,
    `$retainKeys`; `null` deletes a key. A kind outside `STRATEGIC_KINDS` merges only the lists of its
    `metadata` (finalizers, ownerReferences).
    """
    if not isinstance(patch, dict):
        raise PatchError("strategic merge patch must be a JSON object")
    return _merge_map(
        copy.deepcopy(target), copy.deepcopy(patch), kind if kind in STRATEGIC_KINDS else _OTHER_KIND
    )


def _fields(type_name: str | None) -> dict[str, _Field]:
    return _TYPES.get(type_name, {}) if type_name else {}


def _merge_map(
    original: dict[str, Any] | None, patch: dict[str, Any], type_name: str | None
) -> dict[str, Any]:
    if _DIRECTIVE in patch:
        directive = patch[_DIRECTIVE]
        if directive == "replace":
            return _without_directives({k: v for k, v in patch.items() if k != _DIRECTIVE}, type_name)
        if directive == "delete":
            return {}
        raise PatchError(f"unknown patch type: {_go(directive)} in map: {_go(patch)}")
    result = original if original is not None else {}
    fields = _fields(type_name)
    _retain_keys(result, patch)
    _apply_element_orders(result, patch, fields)
    for raw_key, value in patch.items():
        delete_list = raw_key.startswith(_DELETE_FROM + "/")
        key = raw_key.split("/", 1)[1] if delete_list else raw_key
        if raw_key.startswith(_DELETE_FROM) and not delete_list:
            raise PatchError("invalid patch format of primitive list")
        if value is None:
            result.pop(key, None)
            continue
        field = fields.get(key, _Field(None))
        if key not in result or type(result[key]) is not type(value):
            # A value the target lacks is taken as is, less its directives; upstream drops a map that
            # carries `$patch` there.
            if not delete_list and not (isinstance(value, dict) and _DIRECTIVE in value):
                result[key] = _without_directives(value, field.type, field.merge_key)
        elif isinstance(value, dict):
            result[key] = _merge_map(result[key], value, field.type)
        elif isinstance(value, list):
            result[key] = _merge_list_field(result[key], value, field, delete_list)
        else:
            result[key] = value
    return result


def _merge_list_field(original: list[Any], patch: list[Any], field: _Field, delete_list: bool) -> list[Any]:
    if field.merge_key is None and not delete_list:
        return [_without_directives(item, field.type) for item in patch]
    return _merge_slice(original, patch, field, delete_list)


def _merge_slice(original: list[Any], patch: list[Any], field: _Field, delete_list: bool) -> list[Any]:
    if not original and not patch:
        return original
    items_are_maps = _element_kind(original + patch) is dict
    if not items_are_maps:
        if delete_list:
            return [item for item in original if not any(json_equal(item, gone) for gone in patch)]
        merged = _dedupe(original + patch)
        order_key = ""
    else:
        key = field.merge_key
        if not key:
            raise PatchError("cannot merge lists without merge key")
        original, patch = _special_elements(original, patch, field)
        merged = list(original)
        for item in patch:
            if key not in item:
                raise PatchError(f"map: {_go(item)} does not contain declared merge key: {key}")
            position = _find(merged, key, item[key])
            if position is None:
                merged.append(_without_directives(item, field.type))
            else:
                merged[position] = _merge_map(merged[position], item, field.type)
        order_key = key
    patch_items = [item for item in merged if _position(patch, item, order_key) is not None]
    server_only = [item for item in merged if _position(patch, item, order_key) is None]
    return _normalize_order(patch_items, server_only, patch, original, order_key)


def _special_elements(original: list[Any], patch: list[Any], field: _Field) -> tuple[list[Any], list[Any]]:
    """Apply `$patch` list elements: delete removes matching items, replace drops the original."""
    key = field.merge_key or ""
    plain: list[Any] = []
    replace = False
    for item in patch:
        if _DIRECTIVE not in item:
            plain.append(item)
            continue
        directive = item[_DIRECTIVE]
        if directive == "delete":
            if key not in item:
                raise PatchError(f"map: {_go(item)} does not contain declared merge key: {key}")
            original = [entry for entry in original if not json_equal(entry.get(key), item[key])]
        elif directive == "replace":
            replace = True
        elif directive == "merge":
            raise PatchError("merging lists cannot yet be specified in the patch")
        else:
            raise PatchError(f"unknown patch type: {_go(directive)} in map: {_go(item)}")
    if replace:
        return [_without_directives(item, field.type) for item in plain], []
    return original, plain


def _apply_element_orders(result: dict[str, Any], patch: dict[str, Any], fields: dict[str, _Field]) -> None:
    """Merge each list named by a `$setElementOrder/<list>` directive and order it as the directive says."""
    for raw_key in [k for k in patch if k.startswith(_SET_ORDER)]:
        order = patch.pop(raw_key)
        if not raw_key.startswith(_SET_ORDER + "/") or not isinstance(order, list):
            raise PatchError("invalid patch format of setElementOrder list")
        key = raw_key.split("/", 1)[1]
        field = fields.get(key, _Field(None))
        merge_key = field.merge_key or ""
        live_list = result.get(key, [])
        if not isinstance(live_list, list):
            raise PatchError("invalid patch format of setElementOrder list")
        patch_list: list[Any] = []
        if key in patch:
            patch_list = patch.pop(key)
            if not isinstance(patch_list, list):
                raise PatchError("invalid patch format of setElementOrder list")
            _check_order(patch_list, order, merge_key)
            merged = _merge_list_field(live_list, patch_list, field, delete_list=False)
        elif key in result:
            merged = live_list
        else:
            continue
        if not live_list and not patch_list:
            raise PatchError("no elements in any of the given slices")  # upstream cannot tell the item type
        patch_items = [item for item in merged if _position(order, item, merge_key) is not None]
        server_only = [item for item in merged if _position(order, item, merge_key) is None]
        result[key] = _normalize_order(patch_items, server_only, order, live_list, merge_key)


def _check_order(patch_list: list[Any], order: list[Any], merge_key: str) -> None:
    """The patch list's items must appear in `$setElementOrder` in the same relative order."""
    pending = [item for item in patch_list if not (isinstance(item, dict) and _DIRECTIVE in item)]
    i = 0
    for entry in order:
        if i < len(pending) and json_equal(_key_of(pending[i], merge_key), _key_of(entry, merge_key)):
            i += 1
    if i < len(pending):
        raise PatchError(
            f"The order in patch list:\n{_go(patch_list)}\n doesn't match {_SET_ORDER} list:\n{_go(order)}"
        )


def _normalize_order(
    patch_items: list[Any], server_only: list[Any], patch_order: list[Any], server_order: list[Any], key: str
) -> list[Any]:
    """Interleave patch items (in patch order) with server-only items (in live order), as upstream's
    `normalizeElementOrder`: a server-only item goes first only if it precedes the patch item live."""
    left = sorted(server_only, key=lambda item: _rank(server_order, item, key))
    right = sorted(patch_items, key=lambda item: _rank(patch_order, item, key))
    merged: list[Any] = []
    i = j = 0
    while i < len(left) or j < len(right):
        if j >= len(right):
            merged.append(left[i])
            i += 1
        elif i >= len(left):
            merged.append(right[j])
            j += 1
        else:
            li, ri = _position(server_order, left[i], key), _position(server_order, right[j], key)
            if li is not None and ri is not None and li < ri:
                merged.append(left[i])
                i += 1
            else:
                merged.append(right[j])
                j += 1
    return merged


def _key_of(item: JSON, key: str) -> JSON:
    return item.get(key) if key and isinstance(item, dict) else item


def _position(items: list[Any], item: JSON, key: str) -> int | None:
    wanted = _key_of(item, key)
    for i, candidate in enumerate(items):
        if json_equal(_key_of(candidate, key), wanted):
            return i
    return None


def _rank(items: list[Any], item: JSON, key: str) -> int:
    position = _position(items, item, key)
    return len(items) if position is None else position


def _find(items: list[Any], key: str, value: JSON) -> int | None:
    for i, item in enumerate(items):
        if key in item and json_equal(item[key], value):
            return i
    return None


def _dedupe(items: list[Any]) -> list[Any]:
    unique: list[Any] = []
    for item in items:
        if not any(json_equal(item, seen) for seen in unique):
            unique.append(item)
    return unique


def _element_kind(items: list[Any]) -> type:
    kinds = {dict if isinstance(item, dict) else list if isinstance(item, list) else object for item in items}
    if list in kinds:
        raise PatchError("lists of lists are not supported")
    if len(kinds) > 1:
        raise PatchError(f"list element types are not identical: {items}")
    return kinds.pop()


def _retain_keys(original: dict[str, Any], patch: dict[str, Any]) -> None:
    """`$retainKeys`: drop the original's keys the list does not name (e.g. a Deployment strategy switch)."""
    if _RETAIN_KEYS not in patch:
        return
    keep = patch.pop(_RETAIN_KEYS)
    invalid = PatchError("invalid patch format of retainKeys")
    if not isinstance(keep, list):
        raise invalid
    for key, value in patch.items():
        if value is not None and not key.startswith((_DELETE_FROM, _SET_ORDER)) and key not in keep:
            raise invalid
    for key in [k for k in original if k not in keep]:
        del original[key]


def _without_directives(value: JSON, type_name: str | None, merge_key: str | None = None) -> JSON:
    """A patch value for a field the target lacks: merged into nothing, so its directives take effect."""
    if isinstance(value, dict):
        return _merge_map(None, value, type_name)
    if isinstance(value, list):
        if merge_key is not None:
            return _merge_slice([], value, _Field(type_name, merge_key), delete_list=False)
        return [_without_directives(item, type_name) for item in value]
    return value


def _go(value: JSON) -> str:
    """Render a JSON value the way Go's `%v` does in upstream error messages."""
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{_go(v)}" for k, v in sorted(value.items())) + "]"
    if isinstance(value, list):
        return "[" + " ".join(_go(item) for item in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    return "<nil>" if value is None else str(value)


# --------------------------------------------------------------------------------------------------
# Server-side apply (simplified)


def apply_patch(
    live: dict[str, Any] | None, applied: dict[str, Any], kind: str, is_builtin: bool
) -> dict[str, Any]:
    """Simplified server-side apply: the applied configuration becomes the object when none exists;
    otherwise it is merged into the live object (strategic semantics for built-in kinds, merge-patch
    semantics for custom resources). Field ownership is not tracked, so fields the applier stops
    sending are kept rather than removed."""
    if live is None:
        return _without_nulls(applied)
    if is_builtin:
        return strategic_merge_patch(live, applied, kind)
    return merge_patch(live, applied)


def _without_nulls(value: JSON) -> JSON:
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(item) for item in value]
    return value
