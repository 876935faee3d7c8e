"""Evaluate CRD `x-kubernetes-validations` rules with a real CEL implementation (cel-python)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import celpy


@lru_cache(maxsize=512)
def _program(rule: str) -> celpy.Runner:
    env = celpy.Environment()
    return env.program(env.compile(rule))


def evaluate(rule: str, self_value: Any, old_self: Any = None) -> bool:
    """Return whether `rule` holds for `self_value` (and `old_self` on updates).

    Raises `celpy.CELParseError` for a rule that does not compile and
    `celpy.CELEvalError` for one that cannot be evaluated on this object.
    """
    activation: dict[str, Any] = {"self": celpy.json_to_cel(self_value)}
    if old_self is not None:
        activation["oldSelf"] = celpy.json_to_cel(old_self)
    result = _program(rule).evaluate(activation)
    if isinstance(result, celpy.CELEvalError):
        raise result
    return bool(result)
