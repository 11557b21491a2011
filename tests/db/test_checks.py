"""``json_object``'s direct copy of plain values equals the JSON round trip it stands in for."""

from __future__ import annotations

import enum
import json
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwsearch.db.checks import json_object
from hwsearch.errors import StorageError

leaves = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
)
values = st.recursive(
    leaves,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.lists(inner, max_size=4).map(tuple)
        | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=20,
)


def _round_trip(value: dict[str, Any]) -> Any:
    return json.loads(json.dumps(value, allow_nan=False))


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(st.dictionaries(st.text(max_size=6), values, max_size=6))
def test_plain_values_are_what_the_round_trip_gives(value: dict[str, Any]) -> None:
    copied = json_object("x", value)
    assert copied == _round_trip(value)
    assert json.dumps(copied) == json.dumps(_round_trip(value))  # types and order too
    if value:
        assert copied is not value


class Colour(enum.StrEnum):
    RED = "red"


def test_other_values_take_the_round_trip() -> None:
    value = {"a": Colour.RED, "b": {1: (2, 3)}, "c": -0.0, "d": [True, None]}
    copied = json_object("x", value)
    assert copied == _round_trip(value)
    assert type(copied["a"]) is str and copied["b"] == {"1": [2, 3]}


@pytest.mark.parametrize(
    "value",
    [{"a": float("nan")}, {"a": [float("inf")]}, {"a": object()}, {"a": np.float32(1.5)}],
)
def test_what_json_refuses_is_refused(value: dict[str, Any]) -> None:
    with pytest.raises(StorageError, match="must be JSON-serialisable"):
        json_object("details", value)


def test_a_cycle_is_refused() -> None:
    value: dict[str, Any] = {}
    value["self"] = value
    with pytest.raises(StorageError, match="must be JSON-serialisable"):
        json_object("details", value)
