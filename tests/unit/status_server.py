"""A release's status as the API server holds it, written the way the operator writes it.

The reconcile harnesses keep the status here instead of in the Plan: each write is the operator's own
patch (`modelrelease.kube.client.merge_diff` of what the server holds and the plan's status) applied
with RFC 7386 merge-patch semantics, and the next step reads back what the server would return. So a
field the operator's write fails to remove stays, as it would on a real cluster, and the tests see it.
"""

from __future__ import annotations

import copy
from typing import Any

from modelrelease.api.models import ModelReleaseStatus
from modelrelease.kube.client import merge_diff
from modelrelease.reconcile import Plan


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 MergePatch(Target, Patch): objects merge key by key, null removes, the rest replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


class StatusServer:
    """The status subresource of one release."""

    def __init__(self) -> None:
        self.stored: dict[str, Any] = {}

    def write(self, plan: Plan) -> None:
        self.stored = merge_patch(self.stored, merge_diff(self.stored, plan.status_json))

    def lose(self) -> None:
        self.stored = {}

    def read(self) -> ModelReleaseStatus | None:
        return ModelReleaseStatus.model_validate(self.stored) if self.stored else None
