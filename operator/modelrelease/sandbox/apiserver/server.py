"""HTTP front of the emulator (aiohttp): routing, request decoding, content negotiation and watch streams.

All object semantics live in `cluster.Cluster`; this module only translates between HTTP and it.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import yaml
from aiohttp import web

from . import conversion, discovery, openapi, protobuf, tables
from .cluster import PATCH_TYPES, Cluster, WriteOptions, WriteResult, unsupported_patch
from .errors import ApiError, bad_request, method_not_allowed, status_body
from .resources import ResourceType
from .selectors import object_predicate
from .store import Obj

log = logging.getLogger("modelrelease.sandbox.apiserver")

VERSION_INFO = {
    "major": "1",
    "minor": "32",
    "gitVersion": "v1.32.2",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2025-01-01T00:00:00Z",
    "goVersion": "go1.23.4",
    "compiler": "gc",
    "platform": "linux/amd64",
}
CLUSTER = web.AppKey("cluster", Cluster)
SETTINGS = web.AppKey("settings", dict)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Target:
    rt: ResourceType
    namespace: str | None  # None: across all namespaces (or a cluster-scoped type)
    name: str | None
    subresource: str | None


def _json(body: Any, status: int = 200, warnings: list[str] | None = None) -> web.Response:
    headers = {"Warning": ", ".join(_warning(w) for w in warnings)} if warnings else None
    return web.Response(
        text=json.dumps(body, separators=(",", ":")),
        status=status,
        content_type="application/json",
        headers=headers,
    )


def _warning(text: str) -> str:
    """An RFC 7234 Warning header value (code 299), quoted as the real server does."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'299 - "{escaped}"'


def _not_found_path() -> ApiError:
    return ApiError(404, "NotFound", "the server could not find the requested resource", {})


@web.middleware
async def _errors_and_log(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except ApiError as exc:
        response = _json(exc.status(), exc.code)
    except web.HTTPException as exc:
        response = _json(
            status_body(exc.status, "NotFound" if exc.status == 404 else "BadRequest", exc.reason), exc.status
        )
    except asyncio.CancelledError:  # the client went away (typically in the middle of a watch)
        _log_line(request, "closed by client")
        raise
    except Exception as exc:  # an emulator bug: answer like the real server's 500, keep serving
        log.exception("internal error on %s %s", request.method, request.path_qs)
        response = _json(status_body(500, "InternalError", f"Internal error occurred: {exc}"), 500)
    _log_line(request, str(response.status))
    return response


def _log_line(request: web.Request, outcome: str) -> None:
    print(f"{request.method} {request.path_qs} {outcome}", file=sys.stderr, flush=True)


# ---- plain endpoints ----


async def _ok(request: web.Request) -> web.Response:
    return web.Response(text="ok")


async def _version(request: web.Request) -> web.Response:
    return _json(VERSION_INFO)


def _aggregated(request: web.Request, core: bool) -> web.Response | None:
    if not discovery.wants_aggregated(request.headers.get("Accept", "")):
        return None
    body = json.dumps(discovery.aggregated(request.app[CLUSTER].registry, core), separators=(",", ":"))
    return web.Response(body=body.encode(), headers={"Content-Type": discovery.AGGREGATED_TYPE})


async def _api(request: web.Request) -> web.Response:
    return _aggregated(request, core=True) or _json(discovery.api_versions(request.host))


async def _apis(request: web.Request) -> web.Response:
    return _aggregated(request, core=False) or _json(discovery.api_group_list(request.app[CLUSTER].registry))


async def _group(request: web.Request) -> web.Response:
    found = discovery.api_group(request.app[CLUSTER].registry, request.match_info["group"])
    if found is None:
        raise _not_found_path()
    return _json(found)


def _resource_list(request: web.Request, group: str, version: str) -> web.Response:
    found = discovery.resource_list(request.app[CLUSTER].registry, group, version)
    if found is None:
        raise _not_found_path()
    return _json(found)


async def _openapi_v3(request: web.Request) -> web.Response:
    return _json(openapi.root_document(request.app[CLUSTER].registry))


async def _openapi_v3_gv(request: web.Request) -> web.Response:
    doc = openapi.group_version_document(request.app[CLUSTER].registry, request.match_info["path"])
    if doc is None:
        raise _not_found_path()
    return _json(doc)


# ---- resources ----


def _resolve(cluster: Cluster, group: str, version: str, segments: list[str]) -> Target:
    registry = cluster.registry
    if len(segments) >= 3 and segments[0] == "namespaces":
        nested = registry.get(group, version, segments[2])
        if nested is not None and nested.namespaced and len(segments) <= 5:
            return Target(
                nested,
                segments[1],
                segments[3] if len(segments) > 3 else None,
                segments[4] if len(segments) > 4 else None,
            )
    if not segments or len(segments) > 3:
        raise _not_found_path()
    rt = registry.get(group, version, segments[0])
    if rt is None:
        raise _not_found_path()
    name = segments[1] if len(segments) > 1 else None
    sub = segments[2] if len(segments) > 2 else None
    if rt.namespaced and name is not None:
        raise _not_found_path()
    return Target(rt, None, name, sub)


def _int_param(request: web.Request, name: str) -> int | None:
    raw = request.query.get(name)
    if raw in (None, ""):
        return None
    try:
        return int(raw)
    except ValueError as exc:
        raise bad_request(f'invalid value for {name}: "{raw}"') from exc


def _flag(value: str | None) -> bool:
    return value is not None and value.lower() in ("true", "1")


def _manager(request: web.Request) -> str:
    manager = request.query.get("fieldManager")
    if manager:
        return manager
    agent = request.headers.get("User-Agent", "unknown")
    return agent.split("/", 1)[0][:128] or "unknown"


def _write_options(request: web.Request, subresource: str | None) -> WriteOptions:
    validation = request.query.get("fieldValidation") or "Warn"
    if validation not in ("Strict", "Warn", "Ignore"):
        raise bad_request(
            f'fieldValidation parameter unsupported: "{validation}". '
            'Supported values: "Ignore", "Warn", "Strict"'
        )
    dry_run = request.query.getall("dryRun", [])
    if any(d != "All" for d in dry_run):
        raise bad_request(f"Invalid dry run value: {dry_run}")
    return WriteOptions(
        dry_run=bool(dry_run), field_validation=validation, manager=_manager(request), subresource=subresource
    )


async def _body(request: web.Request) -> Any:
    raw = await request.read()
    if not raw:
        raise bad_request("the request body is empty")
    if request.content_type == "application/vnd.kubernetes.protobuf":
        return protobuf.decode(raw)
    try:
        if "yaml" in request.content_type:
            return yaml.safe_load(raw)
        return json.loads(raw)
    except (ValueError, yaml.YAMLError) as exc:
        raise bad_request(f"couldn't get version/kind; json parse error: {exc}") from exc


def _wants_table(request: web.Request) -> bool:
    return "as=Table" in request.headers.get("Accept", "")


def _encode_continue(rv: int, last: tuple[str, str]) -> str:
    return base64.urlsafe_b64encode(json.dumps({"rv": rv, "start": list(last)}).encode()).decode()


def _decode_continue(token: str) -> tuple[str, str]:
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
        return (str(data["start"][0]), str(data["start"][1]))
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise bad_request("continue key is not valid: incorrect encoded start resourceVersion") from exc


def _predicate(request: web.Request, rt: ResourceType) -> Callable[[Obj], bool]:
    fields = request.query.get("fieldSelector")
    return object_predicate(
        request.query.get("labelSelector"),
        conversion.field_selector_to_storage(rt, fields) if fields else None,
        rt.kind,
        rt.selectable_fields,
    )


def _paginate(request: web.Request, items: list[Obj], rv: int) -> tuple[list[Obj], dict[str, Any]]:
    token = request.query.get("continue")
    if token:
        start = _decode_continue(token)
        items = [o for o in items if (o["metadata"].get("namespace", ""), o["metadata"]["name"]) > start]
    limit = _int_param(request, "limit") or 0
    if limit <= 0 or len(items) <= limit:
        return items, {}
    page, rest = items[:limit], len(items) - limit
    last = page[-1]["metadata"]
    return page, {
        "continue": _encode_continue(rv, (last.get("namespace", ""), last["name"])),
        "remainingItemCount": rest,
    }


async def _list(request: web.Request, target: Target) -> web.StreamResponse:
    cluster = request.app[CLUSTER]
    rt = target.rt
    predicate = _predicate(request, rt)
    if _flag(request.query.get("watch")):
        return await _watch(request, target, predicate)
    items, rv = cluster.list_objects(rt, target.namespace)
    items = [conversion.to_view(rt, o) for o in items if predicate(o)]
    items, list_meta = _paginate(request, items, rv)
    if _wants_table(request):
        include = request.query.get("includeObject", "Metadata")
        return _json(tables.table(rt, items, str(rv), include, list_meta))
    return _json(
        {
            "kind": rt.list_kind,
            "apiVersion": rt.api_version,
            "metadata": {"resourceVersion": str(rv), **list_meta},
            "items": items,
        }
    )


async def _watch(
    request: web.Request, target: Target, predicate: Callable[[Obj], bool]
) -> web.StreamResponse:
    cluster = request.app[CLUSTER]
    rt = target.rt
    raw_rv = request.query.get("resourceVersion")
    initial_events = _flag(request.query.get("sendInitialEvents"))
    try:
        since = None if raw_rv in (None, "", "0") or initial_events else int(raw_rv)
    except ValueError as exc:
        raise bad_request(f"invalid resource version: {raw_rv}") from exc
    timeout = _int_param(request, "timeoutSeconds")
    response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
    response.enable_chunked_encoding()
    try:
        watcher = cluster.store.watch(rt.storage_key, target.namespace, predicate, since)
    except ApiError as exc:
        await response.prepare(request)
        await response.write(_line("ERROR", exc.status()))
        return response
    if initial_events:
        # watch-list (client-go's streaming list): the current state, then a bookmark marking its end
        end = _bookmark(rt, cluster.store.resource_version)
        end["metadata"]["annotations"] = {"k8s.io/initial-events-end": "true"}
        watcher.queue.put_nowait(("BOOKMARK", end))
    try:
        await response.prepare(request)
        await _stream(request, response, watcher.queue, rt, timeout)
    finally:
        cluster.store.unwatch(watcher)
    return response


def _bookmark(rt: ResourceType, resource_version: int) -> Obj:
    return {
        "kind": rt.kind,
        "apiVersion": rt.api_version,
        "metadata": {"resourceVersion": str(resource_version)},
    }


def _line(kind: str, obj: Obj) -> bytes:
    return (json.dumps({"type": kind, "object": obj}, separators=(",", ":")) + "\n").encode()


async def _stream(
    request: web.Request,
    response: web.StreamResponse,
    queue: asyncio.Queue[tuple[str, Obj]],
    rt: ResourceType,
    timeout: int | None,
) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout if timeout else None
    bookmarks = _flag(request.query.get("allowWatchBookmarks"))
    interval = float(request.app[SETTINGS]["bookmark_interval"])
    next_bookmark = loop.time() + interval
    as_table, sent_columns = _wants_table(request), False
    while True:
        now = loop.time()
        if deadline is not None and now >= deadline:
            return
        if bookmarks and now >= next_bookmark:
            await response.write(
                _line("BOOKMARK", _bookmark(rt, request.app[CLUSTER].store.resource_version))
            )
            next_bookmark = now + interval
        wakes = [t for t in (deadline, next_bookmark if bookmarks else None) if t is not None]
        try:
            kind, obj = await asyncio.wait_for(queue.get(), max(0.0, min(wakes) - now) if wakes else None)
        except TimeoutError:
            continue
        if kind == "CLOSED":
            return
        if kind == "BOOKMARK":
            await response.write(_line(kind, obj))
            continue
        view = conversion.to_view(rt, obj)
        if as_table:
            # like the real server, only the first event's Table carries the column definitions
            view = tables.table(
                rt,
                [view],
                view["metadata"]["resourceVersion"],
                request.query.get("includeObject", "Metadata"),
            )
            if sent_columns:
                view["columnDefinitions"] = []
            sent_columns = True
        await response.write(_line(kind, view))


def _result(result: WriteResult, created_status: int = 201) -> web.Response:
    return _json(result.obj, created_status if result.created else 200, result.warnings)


async def _resource(request: web.Request) -> web.StreamResponse:
    cluster = request.app[CLUSTER]
    info = request.match_info
    group = info.get("group", "")
    target = _resolve(cluster, group, info["version"], [s for s in info["tail"].split("/") if s])
    rt = target.rt
    if target.subresource is not None and target.subresource not in rt.subresources:
        raise _not_found_path()
    method = request.method
    namespace = target.namespace or ""
    if target.name is None:
        if method == "GET":
            return await _list(request, target)
        if method == "POST":
            if rt.namespaced and target.namespace is None:
                raise method_not_allowed()
            body = await _body(request)
            if not isinstance(body, dict):
                raise bad_request("the request body must be an object")
            return _result(cluster.create(rt, namespace, body, _write_options(request, None)))
        if method == "DELETE":
            return await _delete_collection(request, target)
        raise method_not_allowed()
    name = target.name
    if target.subresource == "scale":
        return await _scale(request, target, name)
    if method == "GET":
        obj = conversion.to_view(rt, cluster.get(rt, namespace, name))
        if _wants_table(request):
            include = request.query.get("includeObject", "Metadata")
            return _json(tables.table(rt, [obj], obj["metadata"]["resourceVersion"], include))
        return _json(obj)
    opts = _write_options(request, target.subresource)
    if method == "PUT":
        body = await _body(request)
        if not isinstance(body, dict):
            raise bad_request("the request body must be an object")
        return _result(cluster.update(rt, namespace, name, body, opts))
    if method == "PATCH":
        content_type = request.content_type
        if content_type not in PATCH_TYPES:
            raise unsupported_patch()
        if content_type == "application/apply-patch+yaml" and not request.query.get("fieldManager"):
            raise bad_request(
                "PATCH, application/apply-patch+yaml: fieldManager is required for apply requests"
            )
        body = await _body(request)
        return _result(
            cluster.patch(rt, namespace, name, content_type, body, opts, _flag(request.query.get("force")))
        )
    if method == "DELETE" and target.subresource is None:
        return await _delete(request, target, name)
    raise method_not_allowed()


async def _scale(request: web.Request, target: Target, name: str) -> web.Response:
    cluster = request.app[CLUSTER]
    rt, namespace = target.rt, target.namespace or ""
    if request.method == "GET":
        return _json(cluster.scale(rt, namespace, name))
    opts = _write_options(request, None)
    body = await _body(request)
    if request.method == "PUT" and isinstance(body, dict):
        return _result(cluster.update_scale(rt, namespace, name, body, opts))
    if request.method == "PATCH":
        return _result(cluster.patch_scale(rt, namespace, name, request.content_type, body, opts))
    raise method_not_allowed()


async def _delete_options(request: web.Request) -> dict[str, Any]:
    options: dict[str, Any] = await _body(request) if request.can_read_body else {}
    if not isinstance(options, dict):
        raise bad_request("DeleteOptions must be an object")
    if "propagationPolicy" in request.query:
        options["propagationPolicy"] = request.query["propagationPolicy"]
    if request.query.getall("dryRun", []):
        options["dryRun"] = request.query.getall("dryRun")
    policy = options.get("propagationPolicy")
    if options.get("orphanDependents") is True and policy is None:
        options["propagationPolicy"] = "Orphan"
    if options.get("propagationPolicy") not in (None, "Background", "Foreground", "Orphan"):
        raise bad_request(f'propagationPolicy: Unsupported value: "{options["propagationPolicy"]}"')
    return options


async def _delete(request: web.Request, target: Target, name: str) -> web.Response:
    cluster = request.app[CLUSTER]
    rt = target.rt
    options = await _delete_options(request)
    obj, gone = cluster.delete(
        rt,
        target.namespace or "",
        name,
        propagation=options.get("propagationPolicy"),
        preconditions=options.get("preconditions"),
        dry_run=bool(options.get("dryRun")),
    )
    if gone and not rt.return_deleted:
        return _json(
            {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Success",
                "details": {
                    "name": name,
                    "group": rt.group,
                    "kind": rt.plural,
                    "uid": obj["metadata"].get("uid"),
                },
            }
        )
    return _json(obj)


async def _delete_collection(request: web.Request, target: Target) -> web.Response:
    cluster = request.app[CLUSTER]
    rt = target.rt
    options = await _delete_options(request)
    predicate = _predicate(request, rt)
    items, _ = cluster.list_objects(rt, target.namespace)
    deleted = cluster.delete_collection(
        rt, [o for o in items if predicate(o)], options.get("propagationPolicy"), bool(options.get("dryRun"))
    )
    return _json(
        {
            "kind": rt.list_kind,
            "apiVersion": rt.api_version,
            "metadata": {"resourceVersion": str(cluster.store.resource_version)},
            "items": deleted,
        }
    )


async def _core_resource_list(request: web.Request) -> web.Response:
    return _resource_list(request, "", "v1")


async def _group_resource_list(request: web.Request) -> web.Response:
    return _resource_list(request, request.match_info["group"], request.match_info["version"])


async def _openapi_v2(request: web.Request) -> web.Response:
    """Not served: clients (kubectl's field-validation check, `kubectl explain`) use /openapi/v3 first,
    and kubectl falls back to its compiled-in types for strategic-merge patches without it."""
    raise _not_found_path()


def make_app(cluster: Cluster | None = None, bookmark_interval: float = 10.0) -> web.Application:
    app = web.Application(middlewares=[_errors_and_log], client_max_size=32 * 1024 * 1024)
    app[CLUSTER] = cluster or Cluster()
    app[SETTINGS] = {"bookmark_interval": bookmark_interval}
    r = app.router
    for path in ("/readyz", "/livez", "/healthz"):
        r.add_get(path, _ok)
    r.add_get("/version", _version)
    r.add_get("/version/", _version)
    r.add_get("/api", _api)
    r.add_get("/api/", _api)
    r.add_get("/apis", _apis)
    r.add_get("/apis/", _apis)
    r.add_get("/openapi/v2", _openapi_v2)
    r.add_get("/openapi/v3", _openapi_v3)
    r.add_get("/openapi/v3/", _openapi_v3)
    r.add_get("/openapi/v3/{path:.+}", _openapi_v3_gv)
    r.add_get("/api/v1", _core_resource_list)
    r.add_get("/api/v1/", _core_resource_list)
    r.add_route("*", "/api/{version:v1}/{tail:.+}", _resource)
    r.add_get("/apis/{group}", _group)
    r.add_get("/apis/{group}/", _group)
    r.add_get("/apis/{group}/{version}", _group_resource_list)
    r.add_get("/apis/{group}/{version}/", _group_resource_list)
    r.add_route("*", "/apis/{group}/{version}/{tail:.+}", _resource)
    return app


async def serve(
    host: str,
    port: int,
    *,
    bookmark_interval: float = 10.0,
    watch_history: int = 10000,
    ready: Callable[[int], None] | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Run until `stop` is set (or forever); `ready` receives the bound port."""
    app = make_app(Cluster(watch_history), bookmark_interval)
    runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=2.0)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = runner.addresses[0][1]
    if ready is not None:
        ready(int(bound))
    try:
        await (stop or asyncio.Event()).wait()
    finally:
        app[CLUSTER].store.close_watches()
        await runner.cleanup()
