from __future__ import annotations

import numpy as np
import pytest

from hwsearch.search.hashing import canonical_json, config_hash

CONFIG = {"depth": 2, "width": [32, 8], "act": "relu", "dropout": 0.25, "nested": {"a": 1, "b": 2}}


def test_key_order_is_irrelevant() -> None:
    shuffled = {
        "nested": {"b": 2, "a": 1},
        "dropout": 0.25,
        "act": "relu",
        "width": [32, 8],
        "depth": 2,
    }
    assert config_hash("cnn", shuffled) == config_hash("cnn", CONFIG)


def test_float_noise_is_irrelevant() -> None:
    noisy = {**CONFIG, "dropout": 0.25000000000001}
    assert config_hash("cnn", noisy) == config_hash("cnn", CONFIG)
    assert config_hash("cnn", {"x": 0.1 + 0.2}) == config_hash("cnn", {"x": 0.3})


def test_equal_numbers_and_sequences_hash_alike() -> None:
    assert config_hash("cnn", {**CONFIG, "depth": 2.0}) == config_hash("cnn", CONFIG)
    assert config_hash("cnn", {**CONFIG, "width": (32, 8)}) == config_hash("cnn", CONFIG)
    numpy_config = {**CONFIG, "depth": np.int64(2), "dropout": np.float32(0.25)}
    assert config_hash("cnn", numpy_config) == config_hash("cnn", CONFIG)


def test_differences_change_the_hash() -> None:
    base = config_hash("cnn", CONFIG)
    assert config_hash("mlp", CONFIG) != base
    assert config_hash("cnn", {**CONFIG, "dropout": 0.2500001}) != base
    assert config_hash("cnn", {**CONFIG, "width": [8, 32]}) != base
    assert config_hash("cnn", {**CONFIG, "act": "gelu"}) != base
    assert config_hash("cnn", {"flag": True}) != config_hash("cnn", {"flag": 1})
    assert len(base) == 64 and int(base, 16) >= 0


def test_canonical_text_is_compact_and_sorted() -> None:
    assert canonical_json("mlp", {"b": [1.5, 2.0], "a": None}) == (
        '{"config":{"a":null,"b":[1.5,2]},"family":"mlp"}'
    )


def test_unhashable_values_are_rejected() -> None:
    with pytest.raises(ValueError, match="not finite"):
        config_hash("cnn", {"x": float("nan")})
    with pytest.raises(TypeError, match="keys must be strings"):
        config_hash("cnn", {"x": {1: 2}})
    with pytest.raises(TypeError, match="unsupported type object"):
        config_hash("cnn", {"x": object()})
