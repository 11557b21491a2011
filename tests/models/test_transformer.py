"""The transformer family: canonical configs, shapes per attention variant, the KV cache
(its formula and its agreement with full attention), and a small materialised model."""

from __future__ import annotations

import math

import pytest
import torch

from hwsearch.errors import SpecError
from hwsearch.hardware.kernels import QuantizedLinear
from hwsearch.models import get_family
from hwsearch.models.lm_data import CORPUS_PATH, char_data, generate_corpus
from hwsearch.models.lm_pipeline import LMSettings, build_lm
from hwsearch.models.transformer import TransformerFamily, kv_cache_bytes
from hwsearch.models.transformer_net import DecodeStep, Prefill, TinyLM

FAMILY = get_family("transformer")
assert isinstance(FAMILY, TransformerFamily)
VARIANTS = {"mha": (4, 4), "gqa": (4, 2), "mqa": (4, 1)}


def _model(kv_heads: int, heads: int = 4, **config: object) -> TinyLM:
    torch.manual_seed(0)
    return FAMILY.build({"d_model": 32, "heads": heads, "kv_heads": kv_heads, **config}).eval()


def test_bundled_corpus_is_what_the_generator_writes() -> None:
    text = CORPUS_PATH.read_text(encoding="utf-8")
    assert text == generate_corpus()
    assert 30_000 < len(text) < 60_000
    data = char_data()
    assert data.decode(data.encode("three plus four is seven.")) == "three plus four is seven."
    assert len(data.train) + len(data.val) == len(text)


def test_canonical_caps_kv_heads_and_normalises_no_op_settings() -> None:
    cfg = FAMILY.canonical({"heads": 2, "kv_heads": 8, "layers": 2, "early_exit": 5})
    assert cfg["kv_heads"] == 2 and cfg["early_exit"] == 0
    assert (
        FAMILY.canonical({"sparsity": 0.0, "sparsity_pattern": "block"})["sparsity_pattern"]
        == "none"
    )
    nm = FAMILY.canonical({"sparsity": 0.3, "sparsity_pattern": " 2 : 4 "})
    assert nm["sparsity"] == 0.5 and nm["sparsity_pattern"] == "2:4"
    assert FAMILY.canonical({"mlp_ratio": 2}) == FAMILY.canonical({"mlp_ratio": 2.0})


@pytest.mark.parametrize(
    ("config", "field", "words"),
    [
        ({"d_model": 30, "heads": 4}, "d_model", "not a multiple of heads"),
        ({"heads": 4, "kv_heads": 3}, "kv_heads", "does not divide"),
        ({"weight_bits": 3}, "weight_bits", "not one of"),
        ({"sparsity": 0.5, "sparsity_pattern": "channel"}, "sparsity_pattern", "not one of"),
        ({"sparsity": 0.5, "sparsity_pattern": 24}, "sparsity_pattern", "quote it"),
        ({"depth": 2}, "depth", "unknown knob"),
    ],
)
def test_bad_configs_name_the_knob(config: dict[str, object], field: str, words: str) -> None:
    with pytest.raises(SpecError) as info:
        FAMILY.canonical(config)
    assert info.value.field == field and words in info.value.reason


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_shapes_of_each_attention_variant(variant: str) -> None:
    heads, kv_heads = VARIANTS[variant]
    model = _model(kv_heads, heads, layers=2, mlp_ratio=2)
    attn = model.blocks[0].attn
    head_dim = 32 // heads
    assert attn.q_proj.out_features == 32
    assert attn.kv_proj.out_features == 2 * kv_heads * head_dim
    assert model.blocks[0].fc1.out_features == 64
    idx = torch.randint(0, model.shape.vocab, (3, 10))
    assert model(idx).shape == (3, 10, model.shape.vocab)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_cached_prefill_and_decode_match_full_attention(variant: str) -> None:
    heads, kv_heads = VARIANTS[variant]
    model = _model(kv_heads, heads, layers=2)
    idx = torch.randint(0, model.shape.vocab, (2, 9))
    with torch.inference_mode():
        full = model(idx)
        cache = model.new_cache(2, 16)
        prefill = model.step(idx[:, :8], cache, 0)
        decoded = model.step(idx[:, 8:9], cache, 8)
        # a chunk after a prefix takes the masked path
        cache2 = model.new_cache(2, 16)
        model.step(idx[:, :5], cache2, 0)
        chunk = model.step(idx[:, 5:9], cache2, 5)
    torch.testing.assert_close(prefill, full[:, 7], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(decoded, full[:, 8], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(chunk, full[:, 8], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_kv_cache_formula_matches_the_cache_allocated(variant: str) -> None:
    heads, kv_heads = VARIANTS[variant]
    model = _model(kv_heads, heads, layers=3)
    cache = model.new_cache(batch=5, max_len=40)
    expected = kv_cache_bytes(
        layers_used=3, batch=5, context=40, kv_heads=kv_heads, head_dim=32 // heads
    )
    assert cache.nbytes() == expected == 2 * 3 * 5 * 40 * kv_heads * (32 // heads) * 4
    # fewer KV heads, proportionally smaller cache
    assert expected * heads // kv_heads == kv_cache_bytes(
        layers_used=3, batch=5, context=40, kv_heads=heads, head_dim=32 // heads
    )


def test_prefill_and_decode_modules_return_one_token_per_sequence() -> None:
    model = _model(2)
    prompt = torch.randint(0, model.shape.vocab, (3, 6))
    with torch.inference_mode():
        first = Prefill(model, 3, 10)(prompt)
        step = DecodeStep(model, prompt, 10)
        again = [step(prompt[:, -1:]) for _ in range(3)]
    assert first.shape == (3,)
    assert all(torch.equal(a, again[0]) for a in again)  # every call decodes the same position


def test_small_materialised_models_report_quality_and_shrink_with_bits() -> None:
    settings = LMSettings(steps=4, finetune_steps=2, batch_size=4, seq_len=32, eval_windows=4)
    base = {"layers": 2, "d_model": 32, "heads": 2, "kv_heads": 1, "mlp_ratio": 2}
    built = {
        bits: build_lm(FAMILY, {**base, "weight_bits": bits}, settings, seed=0)
        for bits in (32, 8, 4)
    }
    assert built[4].size_bytes < built[8].size_bytes < built[32].size_bytes
    for result in built.values():
        assert result.perplexity == pytest.approx(math.exp(result.val_loss))
        assert 0.0 <= result.accuracy <= 1.0
    assert all(
        isinstance(built[8].model.get_submodule(n), QuantizedLinear) for n in built[8].layer_kinds
    )
    assert set(built[4].layer_kinds.values()) == {"int4 (groups of 32)"}


def test_early_exit_deploys_only_the_layers_before_it() -> None:
    settings = LMSettings(steps=3, finetune_steps=0, batch_size=2, seq_len=16, eval_windows=2)
    config = {"layers": 3, "early_exit": 1, "d_model": 32, "heads": 2, "kv_heads": 2}
    built = build_lm(FAMILY, config, settings, seed=0)
    assert len(built.model.blocks) == 1 and built.shape.layers_used == 1
    full = build_lm(FAMILY, {**config, "early_exit": 0}, settings, seed=0)
    assert built.params < full.params


def test_block_sparsity_keeps_whole_tiles_and_training_is_deterministic() -> None:
    settings = LMSettings(steps=3, finetune_steps=2, batch_size=2, seq_len=16, eval_windows=2)
    config = {"d_model": 32, "heads": 2, "sparsity": 0.5, "sparsity_pattern": "block"}
    first = build_lm(FAMILY, config, settings, seed=1)
    second = build_lm(FAMILY, config, settings, seed=1)
    assert first.val_loss == second.val_loss
    assert first.sparsity == pytest.approx(0.5, abs=0.05)
    layer = first.model.blocks[0].fc1
    tiles = layer.dense_weight.reshape(layer.out_features // 16, 16, 32 // 16, 16)
    zero_tiles = (tiles.abs().sum(dim=(1, 3)) == 0).float().mean()
    assert zero_tiles == pytest.approx(0.5, abs=0.01)
