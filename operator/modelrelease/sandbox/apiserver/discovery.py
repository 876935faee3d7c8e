"""Legacy (unaggregated) discovery documents: /api, /apis, /apis/<group>, and resource lists.

Clients that ask for aggregated discovery (kubectl, client-go) accept `application/json` and fall back to
these documents when the response's Content-Type is plain JSON.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from .resources import SUBRESOURCE_VERBS, VERBS, Registry, ResourceType


def api_versions(server_address: str) -> dict[str, Any]:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    }


def _group_version(group: str, version: str) -> dict[str, str]:
    return {"groupVersion": f"{group}/{version}", "version": version}


def api_group(registry: Registry, group: str) -> dict[str, Any] | None:
    versions = registry.versions(group)
    if not versions:
        return None
    return {
        "kind": "APIGroup",
        "apiVersion": "v1",
        "name": group,
        "versions": [_group_version(group, v) for v in versions],
        "preferredVersion": _group_version(group, versions[0]),
    }


def api_group_list(registry: Registry) -> dict[str, Any]:
    groups = [g for g in (api_group(registry, name) for name in registry.groups()) if g is not None]
    for g in groups:
        del g["kind"], g["apiVersion"]
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def _storage_version_hash(rt: ResourceType) -> str:
    digest = hashlib.sha256(f"{rt.group}/{rt.version}/{rt.kind}".encode()).digest()
    return base64.b64encode(digest[:8]).decode()


def _resource(rt: ResourceType) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": rt.plural,
        "singularName": rt.singular,
        "namespaced": rt.namespaced,
        "kind": rt.kind,
        "verbs": list(VERBS),
        "storageVersionHash": _storage_version_hash(rt),
    }
    if rt.short_names:
        entry["shortNames"] = list(rt.short_names)
    if rt.categories:
        entry["categories"] = list(rt.categories)
    return entry


def resource_list(registry: Registry, group: str, version: str) -> dict[str, Any] | None:
    types = sorted(registry.in_group_version(group, version), key=lambda rt: rt.plural)
    if not types:
        return None
    resources: list[dict[str, Any]] = []
    for rt in types:
        resources.append(_resource(rt))
        for sub in rt.subresources:
            entry = {
                "name": f"{rt.plural}/{sub}",
                "singularName": "",
                "namespaced": rt.namespaced,
                "kind": rt.kind,
                "verbs": list(SUBRESOURCE_VERBS),
            }
            if sub == "scale":
                entry.update(group="autoscaling", version="v1", kind="Scale")
            resources.append(entry)
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{group}/{version}" if group else version,
        "resources": resources,
    }


AGGREGATED_TYPE = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"


def wants_aggregated(accept: str) -> bool:
    """Whether the client asks for aggregated discovery (apidiscovery.k8s.io/v2), as kubectl does first."""
    for offer in accept.split(","):
        params = {k.strip(): v.strip() for k, _, v in (p.partition("=") for p in offer.split(";")[1:])}
        if params.get("as") == "APIGroupDiscoveryList" and params.get("v") == "v2":
            return True
    return False


def _aggregated_resource(rt: ResourceType) -> dict[str, Any]:
    kind = {"group": rt.group, "version": rt.version, "kind": rt.kind}
    entry: dict[str, Any] = {
        "resource": rt.plural,
        "responseKind": kind,
        "scope": "Namespaced" if rt.namespaced else "Cluster",
        "singularResource": rt.singular,
        "verbs": list(VERBS),
    }
    if rt.short_names:
        entry["shortNames"] = list(rt.short_names)
    if rt.categories:
        entry["categories"] = list(rt.categories)
    subresources = []
    for sub in rt.subresources:
        sub_kind = {"group": "autoscaling", "version": "v1", "kind": "Scale"} if sub == "scale" else kind
        subresources.append({"subresource": sub, "responseKind": sub_kind, "verbs": list(SUBRESOURCE_VERBS)})
    if subresources:
        entry["subresources"] = subresources
    return entry


def aggregated(registry: Registry, core: bool) -> dict[str, Any]:
    """The APIGroupDiscoveryList of /api (core) or /apis (every named group)."""
    names = [""] if core else registry.groups()
    items = []
    for group in names:
        versions = ["v1"] if core else registry.versions(group)
        items.append(
            {
                "metadata": {"name": group} if group else {},
                "versions": [
                    {
                        "version": v,
                        "resources": [
                            _aggregated_resource(rt)
                            for rt in sorted(registry.in_group_version(group, v), key=lambda t: t.plural)
                        ],
                        "freshness": "Current",
                    }
                    for v in versions
                ],
            }
        )
    return {
        "kind": "APIGroupDiscoveryList",
        "apiVersion": "apidiscovery.k8s.io/v2",
        "metadata": {},
        "items": items,
    }
