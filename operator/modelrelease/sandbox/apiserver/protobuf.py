"""Decoding of Kubernetes protobuf request bodies (`application/vnd.kubernetes.protobuf`) into JSON objects.

client-go's generated clients always send built-in kinds as protobuf (helm stores releases in Secrets
that way; `kubectl create configmap|secret|namespace|serviceaccount` does too). Responses stay JSON,
which those clients accept. Only the kinds such clients create are described here; others get a 415.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

from .errors import ApiError, bad_request

MAGIC = b"k8s\x00"

# message -> field number -> (json name, type, repeated). Types: string, bytes, int, bool, time,
# map<string>, map<bytes>, or another message's name.
Field = tuple[str, str, bool]
_MESSAGES: dict[str, dict[int, Field]] = {
    "Unknown": {
        1: ("typeMeta", "TypeMeta", False),
        2: ("raw", "bytes", False),
        3: ("contentEncoding", "string", False),
        4: ("contentType", "string", False),
    },
    "TypeMeta": {1: ("apiVersion", "string", False), 2: ("kind", "string", False)},
    "ObjectMeta": {
        1: ("name", "string", False),
        2: ("generateName", "string", False),
        3: ("namespace", "string", False),
        4: ("selfLink", "string", False),
        5: ("uid", "string", False),
        6: ("resourceVersion", "string", False),
        7: ("generation", "int", False),
        8: ("creationTimestamp", "time", False),
        9: ("deletionTimestamp", "time", False),
        10: ("deletionGracePeriodSeconds", "int", False),
        11: ("labels", "map<string>", False),
        12: ("annotations", "map<string>", False),
        13: ("ownerReferences", "OwnerReference", True),
        14: ("finalizers", "string", True),
    },
    "OwnerReference": {
        5: ("apiVersion", "string", False),
        1: ("kind", "string", False),
        3: ("name", "string", False),
        4: ("uid", "string", False),
        6: ("controller", "bool", False),
        7: ("blockOwnerDeletion", "bool", False),
    },
    "ObjectReference": {
        1: ("kind", "string", False),
        2: ("namespace", "string", False),
        3: ("name", "string", False),
        4: ("uid", "string", False),
        5: ("apiVersion", "string", False),
        6: ("resourceVersion", "string", False),
        7: ("fieldPath", "string", False),
    },
    "LocalObjectReference": {1: ("name", "string", False)},
    "ConfigMap": {
        1: ("metadata", "ObjectMeta", False),
        2: ("data", "map<string>", False),
        3: ("binaryData", "map<bytes>", False),
        4: ("immutable", "bool", False),
    },
    "Secret": {
        1: ("metadata", "ObjectMeta", False),
        2: ("data", "map<bytes>", False),
        3: ("type", "string", False),
        4: ("stringData", "map<string>", False),
        5: ("immutable", "bool", False),
    },
    "Namespace": {
        1: ("metadata", "ObjectMeta", False),
        2: ("spec", "NamespaceSpec", False),
        3: ("status", "NamespaceStatus", False),
    },
    "NamespaceSpec": {1: ("finalizers", "string", True)},
    "NamespaceStatus": {1: ("phase", "string", False)},
    "ServiceAccount": {
        1: ("metadata", "ObjectMeta", False),
        2: ("secrets", "ObjectReference", True),
        3: ("imagePullSecrets", "LocalObjectReference", True),
        4: ("automountServiceAccountToken", "bool", False),
    },
    "Event": {
        1: ("metadata", "ObjectMeta", False),
        2: ("involvedObject", "ObjectReference", False),
        3: ("reason", "string", False),
        4: ("message", "string", False),
        5: ("source", "EventSource", False),
        6: ("firstTimestamp", "time", False),
        7: ("lastTimestamp", "time", False),
        8: ("count", "int", False),
        9: ("type", "string", False),
        10: ("eventTime", "microtime", False),
        11: ("series", "EventSeries", False),
        12: ("action", "string", False),
        13: ("related", "ObjectReference", False),
        14: ("reportingComponent", "string", False),
        15: ("reportingInstance", "string", False),
    },
    "EventSource": {1: ("component", "string", False), 2: ("host", "string", False)},
    "EventSeries": {1: ("count", "int", False), 2: ("lastObservedTime", "microtime", False)},
    "DeleteOptions": {
        1: ("gracePeriodSeconds", "int", False),
        2: ("preconditions", "Preconditions", False),
        3: ("orphanDependents", "bool", False),
        4: ("propagationPolicy", "string", False),
        5: ("dryRun", "string", True),
    },
    "Preconditions": {1: ("uid", "string", False), 2: ("resourceVersion", "string", False)},
    "Time": {1: ("seconds", "int", False), 2: ("nanos", "int", False)},
}
SUPPORTED_KINDS = frozenset({"ConfigMap", "Secret", "Namespace", "ServiceAccount", "Event", "DeleteOptions"})


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise ValueError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def _fields(buf: bytes) -> list[tuple[int, int | bytes]]:
    """Raw (field number, value) pairs of one message; values are ints (varint/fixed) or bytes."""
    out: list[tuple[int, int | bytes]] = []
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        value: int | bytes
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = int.from_bytes(buf[pos : pos + 8], "little"), pos + 8
        elif wire == 2:
            size, pos = _varint(buf, pos)
            value, pos = buf[pos : pos + size], pos + size
        elif wire == 5:
            value, pos = int.from_bytes(buf[pos : pos + 4], "little"), pos + 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
        out.append((number, value))
    return out


def _time(raw: bytes, micro: bool) -> str | None:
    parts = dict(_fields(raw))
    seconds = parts.get(1, 0)
    nanos = parts.get(2, 0)
    assert isinstance(seconds, int) and isinstance(nanos, int)
    if not seconds and not nanos:
        return None  # Go's zero time: omitted in JSON
    moment = datetime.fromtimestamp(seconds, UTC)
    if micro:
        return moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{nanos // 1000:06d}Z"
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _scalar(kind: str, value: int | bytes) -> Any:
    if kind == "string":
        assert isinstance(value, bytes)
        return value.decode()
    if kind == "bytes":
        assert isinstance(value, bytes)
        return base64.b64encode(value).decode()
    if kind == "bool":
        return bool(value)
    if kind == "int":
        assert isinstance(value, int)
        return value - (1 << 64) if value >= 1 << 63 else value
    if kind in ("time", "microtime"):
        assert isinstance(value, bytes)
        return _time(value, kind == "microtime")
    assert isinstance(value, bytes)
    return decode_message(kind, value)


def decode_message(message: str, buf: bytes) -> dict[str, Any]:
    spec = _MESSAGES[message]
    out: dict[str, Any] = {}
    for number, value in _fields(buf):
        if number not in spec:
            continue
        name, kind, repeated = spec[number]
        if kind.startswith("map<"):
            assert isinstance(value, bytes)
            entry = dict(_fields(value))
            key, val = entry.get(1, b""), entry.get(2, b"")
            assert isinstance(key, bytes) and isinstance(val, bytes)
            out.setdefault(name, {})[key.decode()] = _scalar(kind[4:-1], val)
        elif repeated:
            out.setdefault(name, []).append(_scalar(kind, value))
        else:
            decoded = _scalar(kind, value)
            # gogo-protobuf writes zero values that Go's JSON encoding omits (omitempty)
            if decoded not in ("", 0, False, None):
                out[name] = decoded
    return out


def decode(body: bytes) -> dict[str, Any]:
    """A Kubernetes protobuf envelope -> the JSON form of the object it carries."""
    if not body.startswith(MAGIC):
        raise bad_request("protobuf body without the k8s envelope")
    try:
        envelope = decode_message("Unknown", body[len(MAGIC) :])
        type_meta = envelope.get("typeMeta", {})
        kind = type_meta.get("kind", "")
        if kind not in SUPPORTED_KINDS:
            raise ApiError(
                415,
                "UnsupportedMediaType",
                f"this emulator decodes protobuf bodies only for {', '.join(sorted(SUPPORTED_KINDS))}; "
                f"send {kind or 'this object'} as application/json",
            )
        obj = decode_message(kind, base64.b64decode(envelope.get("raw", "")))
    except (ValueError, AssertionError) as exc:
        raise bad_request(f"unable to decode protobuf body: {exc}") from exc
    return {"apiVersion": type_meta.get("apiVersion", "v1"), "kind": kind, **obj}
