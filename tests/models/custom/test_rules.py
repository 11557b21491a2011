"""Per-layer rules chosen by glob over module names."""

from __future__ import annotations

import pytest
import torch

from hwsearch.errors import SpecError
from hwsearch.models.custom.compress import compress
from hwsearch.models.custom.rules import LayerRule, canonical_rule, resolve_rules

from .nets import ResNet, TokenNet


def test_glob_covers_layers_inside_a_matched_container() -> None:
    rules = resolve_rules(ResNet(), {"features.0": {"weight_bits": 8}})
    assert set(rules) == {"features.0.conv1", "features.0.conv2"}  # not the norms


def test_layers_no_glob_covers_stay_dense() -> None:
    rules = resolve_rules(ResNet(), {"classifier": {"weight_bits": 8}})
    assert rules == {"classifier": LayerRule(weight_bits=8)}


def test_later_glob_wins_per_knob() -> None:
    rules = resolve_rules(
        ResNet(),
        {"features.*": {"weight_bits": 4, "act_bits": 8}, "features.0.conv1": {"weight_bits": 8}},
    )
    assert rules["features.0.conv1"] == LayerRule(weight_bits=8, act_bits=8)
    assert rules["features.1.conv1"] == LayerRule(weight_bits=4, act_bits=8)


def test_glob_matching_nothing_is_an_error_naming_it() -> None:
    with pytest.raises(SpecError) as info:
        resolve_rules(ResNet(), {"classifier": {"weight_bits": 8}, "decoder.*": {"weight_bits": 8}})
    assert info.value.field == "layers.decoder.*"
    assert "matches no" in info.value.reason and "stem.0" in info.value.reason


@pytest.mark.parametrize(
    ("knobs", "field", "reason"),
    [
        ({"weight_bits": 3}, "layers.x.weight_bits", "not one of"),
        ({"act_bits": "8"}, "layers.x.act_bits", "not one of"),
        ({"sparsity": 0.99}, "layers.x.sparsity", "not in"),
        ({"sparsity": 0.5, "sparsity_pattern": "blocky"}, "layers.x.sparsity_pattern", "N:M"),
        ({"sparsity": 0.5, "sparsity_pattern": 124}, "layers.x.sparsity_pattern", "quote"),
        ({"sparsity": 0.5, "sparsity_pattern": "4:2"}, "layers.x.sparsity_pattern", "0 < N < M"),
        ({"sparsity": 0.5, "sparsity_pattern": "none"}, "layers.x.sparsity_pattern", "contradicts"),
        ({"bits": 8}, "layers.x.bits", "unknown knob"),
    ],
)
def test_bad_knobs(knobs: dict, field: str, reason: str) -> None:
    with pytest.raises(SpecError) as info:
        canonical_rule("layers.x", knobs)
    assert info.value.field == field and reason in info.value.reason


def test_canonical_forms() -> None:
    assert canonical_rule("x", {"sparsity": 0.3}) == LayerRule(0.3, "unstructured")
    assert canonical_rule("x", {"sparsity": 0.0, "sparsity_pattern": "channel"}).pattern == "none"
    assert canonical_rule("x", {"sparsity_pattern": " 2 : 4 ", "sparsity": 0.1}) == LayerRule(
        0.5, "2:4"
    )


def test_embeddings_and_norms_only_when_named() -> None:
    model = TokenNet()
    assert set(resolve_rules(model, {"*": {"weight_bits": 8}})) == {"head"}
    rules = resolve_rules(model, {"embed": {"weight_bits": 8}, "norm": {"weight_bits": 16}})
    assert set(rules) == {"embed", "norm"}
    x = torch.randint(0, 50, (2, 5))
    compress(model, rules, x[:1])
    w = model.embed.weight.detach()
    assert max(len(torch.unique(row)) for row in w) <= 255
    assert torch.equal(model.norm.weight.detach(), model.norm.weight.detach().half().float())


@pytest.mark.parametrize(
    ("layers", "field"),
    [
        (
            {"embed": {"sparsity": 0.5, "sparsity_pattern": "channel"}},
            "layers[embed].sparsity_pattern",
        ),
        ({"embed": {"act_bits": 8}}, "layers[embed].act_bits"),
        ({"norm": {"sparsity": 0.5}}, "layers[norm].sparsity"),
    ],
)
def test_rules_a_layer_type_cannot_take(layers: dict, field: str) -> None:
    with pytest.raises(SpecError) as info:
        resolve_rules(TokenNet(), layers)
    assert info.value.field == field


def test_layers_must_be_a_mapping() -> None:
    with pytest.raises(SpecError, match="layers: must be a mapping"):
        resolve_rules(TokenNet(), ["head"])  # type: ignore[arg-type]
