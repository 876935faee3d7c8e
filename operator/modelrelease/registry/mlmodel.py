"""Reading an MLflow ``MLmodel`` file: its signature's inputs, as every backend's Schema check needs them."""

from __future__ import annotations

import json
from typing import Any

import yaml

from modelrelease.registry.base import RegistryError


def parse_mlmodel(data: bytes, uri: str) -> Any:
    """The MLmodel's YAML; RegistryError(InvalidMLmodel) when it is not YAML."""
    try:
        return yaml.safe_load(data)
    except (yaml.YAMLError, RecursionError):
        raise RegistryError(f"MLmodel of {uri} is not valid YAML", reason="InvalidMLmodel") from None


def signature_inputs(mlmodel: Any, uri: str) -> list[dict[str, Any]] | None:
    """The signature's input columns of a parsed MLmodel, or None when it has no signature."""
    signature = mlmodel.get("signature") if isinstance(mlmodel, dict) else None
    inputs = signature.get("inputs") if isinstance(signature, dict) else None
    if not inputs:
        return None
    try:
        # Through JSON either way, so the columns hold only JSON values (the schema check compares them).
        columns = json.loads(inputs if isinstance(inputs, str) else json.dumps(inputs))
    except (TypeError, ValueError, RecursionError):
        columns = None
    if not isinstance(columns, list) or not all(isinstance(c, dict) for c in columns):
        raise RegistryError(f"MLmodel signature inputs of {uri} are not a JSON list", "InvalidMLmodel")
    return [dict(column) for column in columns]


def mlmodel_inputs(data: bytes, uri: str) -> list[dict[str, Any]] | None:
    """The signature's input columns of MLmodel bytes, or None when it has no signature."""
    return signature_inputs(parse_mlmodel(data, uri), uri)
