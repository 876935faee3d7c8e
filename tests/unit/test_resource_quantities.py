"""spec.serving.resources quantities are checked at admission (the CRD's pattern and minimum) and by the
model alike, so a value the Deployment would refuse never gets that far."""

from __future__ import annotations

import re
from typing import Any

import pytest
from pydantic import ValidationError

from modelrelease.api.models import QUANTITY_PATTERN, ModelReleaseSpec
from unit.crd_walk import load_manifest, root_schema

GOOD: list[int | str] = [0, 2, "2", "500m", "0.5", ".5", "1.5Gi", "512Mi", "1e3", "1E-3", "+1", "100k"]
BAD: list[int | str] = [-1, "-1", "-500m", "2 cores", "1Gb", "1.5.2", "Gi", "", "1 ", "1\n", "0x10"]


def spec(value: int | str, kind: str = "limits") -> dict[str, Any]:
    return {"model": {"name": "m", "alias": "a"}, "serving": {"resources": {kind: {"cpu": value}}}}


@pytest.mark.parametrize("value", GOOD)
def test_quantities_kubernetes_accepts_are_accepted(value: int | str) -> None:
    ModelReleaseSpec.model_validate(spec(value))


@pytest.mark.parametrize("kind", ["limits", "requests"])
@pytest.mark.parametrize("value", BAD)
def test_a_bad_quantity_is_refused_naming_the_field(value: int | str, kind: str) -> None:
    with pytest.raises(ValidationError) as raised:
        ModelReleaseSpec.model_validate(spec(value, kind))
    (error,) = raised.value.errors()
    assert error["loc"] == ("serving", "resources", kind, "cpu")
    assert "is not a resource quantity" in error["msg"]


def test_the_crd_refuses_the_same_values_at_admission() -> None:
    """The API server applies `pattern` to strings and `minimum` to integers (RE2 and Python `re` agree
    on this pattern: no look-arounds, no backreferences)."""
    resources = root_schema(load_manifest())["properties"]["spec"]["properties"]["serving"]["properties"][
        "resources"
    ]["properties"]
    for kind in ("limits", "requests"):
        value = resources[kind]["additionalProperties"]
        assert value == {"pattern": QUANTITY_PATTERN, "minimum": 0, "x-kubernetes-int-or-string": True}

    def admitted(quantity: int | str) -> bool:
        if isinstance(quantity, int):
            return quantity >= 0
        return re.search(QUANTITY_PATTERN.replace("$", r"\Z"), quantity) is not None

    assert all(admitted(q) for q in GOOD)
    assert not any(admitted(q) for q in BAD)
