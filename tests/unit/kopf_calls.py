"""Calling the operator's kopf handlers directly, with the keyword arguments each declares.

kopf.on.* return the decorated function unchanged but are annotated to return kopf's callback protocols
(WatchingFn, ActivityFn: every keyword argument kopf can pass, a result that is sync or async), so a direct
call would be checked against those rather than the handler's own signature. `invoke` calls a handler the
way kopf's own invocation does: keyword arguments, and the result awaited when it is awaitable."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any


async def invoke(handler: Callable[..., object], **kwargs: Any) -> object:
    result = handler(**kwargs)
    if inspect.isawaitable(result):
        return await result
    return result
