"""The hash's fast path for plain JSON types gives byte-identical canonical text to the
general normalisation (hashes are stored and matched across jobs, so they must never move)."""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwsearch.hashing import SIGNIFICANT_DIGITS, canonical_json, config_hash


def _reference(value: Any, path: str) -> Any:
    """The normalisation as it was before the fast path (kept here as the oracle)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool) or type(value).__name__ == "bool_":
        return bool(value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        number = float(value)
        if not math.isfinite(number):
            raise ValueError(f"config value at {path or 'top level'} is not finite: {value!r}")
        number = float(f"{number:.{SIGNIFICANT_DIGITS}g}")
        return int(number) if number.is_integer() else number
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"config keys must be strings, got {key!r} at {path or 'top'}")
            out[key] = _reference(item, f"{path}.{key}" if path else key)
        return out
    if isinstance(value, Sequence | frozenset | set) and not isinstance(value, bytes):
        if isinstance(value, set | frozenset):
            raise TypeError(f"config value at {path} is a set; use a list")
        return [_reference(item, f"{path}[{i}]") for i, item in enumerate(value)]
    raise TypeError(
        f"config value at {path or 'top level'} has unsupported type {type(value).__name__}"
    )


def _reference_json(family: str, config: Mapping[str, Any]) -> str:
    payload = {"family": family, "config": _reference(config, "")}
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.floats(min_value=-1e3, max_value=1e3).map(lambda x: round(x, 3))
    | st.sampled_from([0.0, -0.0, 8.0, 0.5, 0.50000000001, 1e-300, 1e300, 0.1 + 0.2])
    | st.text(max_size=8)
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.lists(inner, max_size=4).map(tuple)
        | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=400, deadline=None, derandomize=True, database=None)
@given(st.dictionaries(st.text(max_size=6), values, max_size=6))
def test_plain_configs_give_the_text_of_the_general_path(config: dict[str, Any]) -> None:
    assert canonical_json("mlp", config) == _reference_json("mlp", config)


@pytest.mark.parametrize(
    "config",
    [
        {"depth": np.int64(2), "dropout": np.float32(0.25), "flag": True},
        {"x": [np.float64(0.5), 1, (2.0, -0.0)], "y": {"z": np.int32(7)}},
        {"n": float(2**60), "m": 1e16, "k": -1e-7, "s": "caf\u00e9 \u2603"},
        {"nested": [[[[{"a": [1.0, 2.5, None, False]}]]]]},
    ],
)
def test_unusual_values_give_the_text_of_the_general_path(config: dict[str, Any]) -> None:
    assert canonical_json("cnn", config) == _reference_json("cnn", config)


def test_stored_hashes_do_not_move() -> None:
    """Digests computed before the fast path existed (they are persisted in databases)."""
    mlp = {
        "depth": 2, "width": [64, 32], "activation": "relu", "sparsity": 0.0,
        "sparsity_pattern": "none", "weight_bits": [8, 8], "act_bits": [32, 32],
    }  # fmt: skip
    assert config_hash("mlp", mlp) == (
        "0f1195edeef42478fcd33cef7d641c0eb550d48a86948c8f7dccdefce7687057"
    )
    mixed = {
        "x": 0.1 + 0.2, "y": (1, 2.0, -0.0), "z": {"b": None, "a": True}, "u": "caf\u00e9",
        "n": np.int64(3),
    }  # fmt: skip
    assert config_hash("cnn", mixed) == (
        "15b223e4c233c39356b70bff53001ada0a9efca4ddcb8bbdd0c05a79f49d3970"
    )


@pytest.mark.parametrize(
    ("config", "error", "message"),
    [
        ({"a": [1, {"b": float("inf")}]}, ValueError, r"at a\[1\]\.b is not finite"),
        ({"a": {1: 2}}, TypeError, "keys must be strings, got 1 at a"),
        ({"a": [object()]}, TypeError, r"at a\[0\] has unsupported type object"),
        ({"a": {1, 2}}, TypeError, "at a is a set"),
    ],
)
def test_refusals_name_the_same_path(config: dict[str, Any], error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        config_hash("cnn", config)
    with pytest.raises(error, match=message):
        _reference_json("cnn", config)


def test_numpy_booleans_hash_as_booleans() -> None:
    assert config_hash("cnn", {"flag": np.True_}) == config_hash("cnn", {"flag": True})
    assert config_hash("cnn", {"flags": [np.False_]}) == config_hash("cnn", {"flags": [False]})
    assert config_hash("cnn", {"flag": np.True_}) != config_hash("cnn", {"flag": 1})
