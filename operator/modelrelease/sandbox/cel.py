"""Evaluate CRD `x-kubernetes-validations` rules with a real CEL implementation (cel-python)."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

import celpy

# What `evaluate` and `evaluate_value` raise: a rule that does not compile, or cannot be evaluated.
CELError: tuple[type[Exception], ...] = (celpy.CELParseError, celpy.CELEvalError)


@lru_cache(maxsize=512)
def _program(rule: str) -> celpy.Runner:
    env = celpy.Environment()
    return env.program(env.compile(rule))


def evaluate(rule: str, self_value: Any, old_self: Any = None) -> bool:
    """Return whether `rule` holds for `self_value` (and `old_self` on updates).

    Raises `celpy.CELParseError` for a rule that does not compile and
    `celpy.CELEvalError` for one that cannot be evaluated on this object.
    """
    return bool(evaluate_value(rule, self_value, old_self))


def evaluate_value(expression: str, self_value: Any, old_self: Any = None) -> Any:
    """The value of a CEL expression such as a `messageExpression` (CEL strings are `str`s).

    Raises as `evaluate` does.
    """
    activation: dict[str, Any] = {"self": celpy.json_to_cel(self_value)}
    if old_self is not None:
        activation["oldSelf"] = celpy.json_to_cel(old_self)
    result = _program(expression).evaluate(activation)
    if isinstance(result, celpy.CELEvalError):
        raise result
    return result


def error_text(error: Exception) -> str:
    """A one-line description of a CEL error, in cel-go's words where they differ from celpy's
    (`no such key: x`, `no such overload`), as the apiserver quotes them."""
    first = error.args[0] if error.args else error
    text = " ".join(str(first).split())
    missing = re.fullmatch(r"no such member in mapping: '(.*)'", text)
    if missing:
        return f"no such key: {missing.group(1)}"
    if text.startswith("found no matching overload"):
        return "no such overload"
    return text
