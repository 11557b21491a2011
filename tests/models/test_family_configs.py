"""Canonical configs and model construction of the mlp and cnn families."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from hwsearch.errors import SpecError, UnknownNameError
from hwsearch.models import ModelFamily, family_names, get_family

MLP = get_family("mlp")
CNN = get_family("cnn")


def test_both_families_are_registered() -> None:
    assert {"mlp", "cnn"} <= set(family_names())
    with pytest.raises(UnknownNameError, match=r"valid names: .*cnn"):
        get_family("lstm")


def test_defaults_are_filled_and_per_block_scalars_expanded() -> None:
    cfg = MLP.canonical({"depth": 3})
    assert cfg["width"] == [64, 64, 64]
    assert cfg["weight_bits"] == [32, 32, 32]
    assert cfg["act_bits"] == [32, 32, 32]
    assert cfg["activation"] == "relu"
    assert cfg["sparsity"] == 0.0
    assert cfg["sparsity_pattern"] == "none"
    cnn = CNN.canonical({"stages": 3, "width": 8, "kernel_size": 5})
    assert cnn["width"] == [8, 8, 8]
    assert cnn["kernel_size"] == [5, 5, 5]
    assert set(cnn) == set(CNN.knobs)


def test_longer_lists_are_trimmed_to_the_block_count() -> None:
    cfg = MLP.canonical({"depth": 2, "width": [32, 16, 8, 4], "weight_bits": [8, 4, 2]})
    assert cfg["width"] == [32, 16]
    assert cfg["weight_bits"] == [8, 4]
    cnn = CNN.canonical({"stages": 1, "kernel_size": [7, 3, 5]})
    assert cnn["kernel_size"] == [7]


def test_shorter_list_is_rejected_naming_the_knob() -> None:
    with pytest.raises(SpecError) as info:
        MLP.canonical({"depth": 3, "width": [32, 16]})
    assert info.value.field == "width"
    assert "3 blocks" in info.value.reason
    assert isinstance(info.value, ValueError)


def test_unknown_knob_is_rejected() -> None:
    with pytest.raises(SpecError) as info:
        CNN.canonical({"stages": 2, "dropout": 0.1})
    assert info.value.field == "dropout"
    assert "kernel_size" in info.value.reason  # lists the valid knobs


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"weight_bits": 3}, "weight_bits"),
        ({"act_bits": [8, 5]}, "act_bits[1]"),
        ({"depth": 7}, "depth"),
        ({"depth": 2.5}, "depth"),
        ({"activation": "tanh"}, "activation"),
        ({"sparsity": 0.99}, "sparsity"),
        ({"sparsity": 0.5, "sparsity_pattern": "4:2"}, "sparsity_pattern"),
        ({"sparsity": 0.5, "sparsity_pattern": "blocky"}, "sparsity_pattern"),
        ({"sparsity": 0.5, "sparsity_pattern": "none"}, "sparsity_pattern"),
        ({"activation": ["relu", "gelu"]}, "activation"),
    ],
)
def test_bad_values_name_their_field(config: dict[str, Any], field: str) -> None:
    with pytest.raises(SpecError) as info:
        MLP.canonical(config)
    assert info.value.field == field


def test_nm_pattern_fixes_the_sparsity() -> None:
    assert CNN.canonical({"sparsity": 0.3, "sparsity_pattern": "2:4"})["sparsity"] == 0.5
    one_in_three = MLP.canonical({"sparsity": 0.1, "sparsity_pattern": "1:3"})
    assert one_in_three["sparsity"] == pytest.approx(2 / 3, abs=1e-6)
    assert (
        MLP.canonical({"sparsity": 0.2, "sparsity_pattern": " 02:8"})["sparsity_pattern"] == "2:8"
    )


def test_no_op_settings_share_one_canonical_form() -> None:
    dense = MLP.canonical({})
    assert MLP.canonical({"sparsity": 0, "sparsity_pattern": "channel"}) == dense
    assert MLP.canonical({"sparsity": 0.0, "sparsity_pattern": "2:4"}) == dense
    assert MLP.canonical({"width": [64, 64, 128]}) == dense
    assert MLP.canonical({"width": 64.0, "weight_bits": 32.0}) == dense


def test_numbers_are_normalised() -> None:
    cfg = MLP.canonical({"width": 32.0, "sparsity": 0.30000000001, "weight_bits": 8.0})
    assert cfg["width"] == [32, 32] and all(type(w) is int for w in cfg["width"])
    assert cfg["sparsity"] == 0.3
    assert all(type(b) is int for b in cfg["weight_bits"])


@pytest.mark.parametrize("family", [MLP, CNN])
@pytest.mark.parametrize(
    "config",
    [
        {},
        {"sparsity": 0.37, "sparsity_pattern": "channel", "weight_bits": [8, 4, 2]},
        {"sparsity": 0.2, "sparsity_pattern": "2:4", "act_bits": 8, "width": 16},
        {"activation": "silu", "weight_bits": 16},
    ],
)
def test_canonical_is_idempotent(family: ModelFamily, config: dict[str, Any]) -> None:
    once = family.canonical(config)
    assert family.canonical(once) == once


def test_mlp_builds_and_takes_flat_or_image_input() -> None:
    model = MLP.build({"depth": 3, "width": [32, 16, 8], "activation": "gelu"})
    assert [b.linear.out_features for b in model.blocks] == [32, 16, 8]
    assert model(MLP.example_input(5)).shape == (5, 10)
    assert model(torch.zeros(5, 1, 8, 8)).shape == (5, 10)


def test_cnn_builds_stages_with_downsampling() -> None:
    model = CNN.build({"stages": 3, "blocks": 2, "width": [4, 8, 16], "kernel_size": [3, 5, 7]})
    x = CNN.example_input(2)
    assert x.shape == (2, 1, 8, 8)
    assert model(x).shape == (2, 10)
    shapes = []
    hook = lambda _m, _i, out: shapes.append(tuple(out.shape))  # noqa: E731
    for stage in model.stages:
        stage.register_forward_hook(hook)
    model(x)
    assert shapes == [(2, 4, 8, 8), (2, 8, 4, 4), (2, 16, 2, 2)]
    assert model.stages[2][0].conv1.kernel_size == (7, 7)
    assert len(model.stages[1]) == 2


def test_example_input_is_deterministic_and_checked() -> None:
    assert torch.equal(CNN.example_input(3), CNN.example_input(3))
    with pytest.raises(ValueError, match="0"):
        MLP.example_input(0)
