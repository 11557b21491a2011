"""Analytic features of the ``mlp``, ``cnn`` and ``transformer`` families against the counts
of the built (and compressed) PyTorch models, by hand, and through a stored job."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from hwsearch.db import Store
from hwsearch.errors import SpecError
from hwsearch.hardware import count_macs, count_nonzero_params, count_params
from hwsearch.hardware import model_size_bytes as float_size_bytes
from hwsearch.models import get_family
from hwsearch.models.compression import (
    CompressibleNet,
    CompressionSpec,
    apply_compression,
    bake,
    measured_sparsity,
    model_size_bytes,
    weight_count,
)
from hwsearch.models.lm_data import char_data
from hwsearch.models.lm_pipeline import LMSettings, build_lm
from hwsearch.models.transformer import TransformerFamily, kv_cache_bytes
from hwsearch.models.transformer_net import DecodeStep, Prefill
from hwsearch.predictors import featurize
from hwsearch.predictors.registry import fit_stored, load_stored
from hwsearch.search.driver import run_job
from hwsearch.search.spec import parse_spec
from hwsearch.service.cli import app

LM = TransformerFamily()


def _row(family: str, config: dict[str, Any]) -> dict[str, float]:
    features = featurize(family, [config])
    return dict(zip(features.names, features.values[0].tolist(), strict=True))


def _count(row: dict[str, float], name: str) -> int:
    return round(math.exp(row[f"log_{name}"]))


def _compressed(family: str, config: dict[str, Any]) -> tuple[CompressibleNet, nn.Module, int]:
    """The compressed model of ``config`` (parametrized), its baked float copy and the dense
    weight count. Weights are redrawn with magnitudes in [0.6, 1] so that none is zero before
    masking (batch-norm biases start at zero) and none rounds to zero at 2 to 8 bits."""
    fam = get_family(family)
    cfg = fam.canonical(config)
    generator = torch.Generator().manual_seed(0)
    model = fam.build(cfg)
    assert isinstance(model, CompressibleNet)
    with torch.no_grad():
        for p in model.parameters():
            magnitude = torch.rand(p.shape, generator=generator) * 0.4 + 0.6
            sign = torch.randint(0, 2, p.shape, generator=generator) * 2 - 1
            p.copy_(magnitude * sign)
    dense = weight_count(model)
    model, _ = apply_compression(model, CompressionSpec.from_config(cfg))
    return model, bake(model), dense


CONVOLUTIONAL = [
    ("mlp", {"depth": 2, "width": [8, 4]}),
    ("mlp", {"depth": 3, "width": [33, 17, 5], "activation": "gelu"}),
    (
        "mlp",
        {
            "depth": 3,
            "width": [33, 17, 5],
            "sparsity": 0.37,
            "sparsity_pattern": "unstructured",
            "weight_bits": [4, 8, 16],
        },
    ),
    (
        "mlp",
        {
            "depth": 3,
            "width": [33, 17, 5],
            "sparsity": 0.5,
            "sparsity_pattern": "channel",
            "weight_bits": 8,
            "act_bits": [8, 4, 32],
        },
    ),
    ("mlp", {"depth": 2, "width": [30, 7], "sparsity_pattern": "2:4", "sparsity": 0.5}),
    (
        "mlp",
        {
            "depth": 2,
            "width": [30, 7],
            "sparsity_pattern": "1:3",
            "sparsity": 0.1,
            "weight_bits": 4,
        },
    ),
    ("cnn", {"stages": 2, "blocks": 1, "width": [4, 8]}),
    ("cnn", {"stages": 3, "blocks": 2, "width": [5, 7, 9], "kernel_size": [3, 5, 7]}),
    (
        "cnn",
        {
            "stages": 3,
            "blocks": 2,
            "width": [5, 7, 9],
            "kernel_size": [7, 5, 3],
            "sparsity": 0.4,
            "sparsity_pattern": "channel",
            "weight_bits": [8, 4, 32],
        },
    ),
    (
        "cnn",
        {
            "stages": 2,
            "blocks": 3,
            "width": [6, 10],
            "kernel_size": [5, 3],
            "sparsity": 0.3,
            "sparsity_pattern": "unstructured",
            "weight_bits": [16, 8],
        },
    ),
    (
        "cnn",
        {"stages": 2, "blocks": 2, "width": [6, 10], "sparsity": 0.5, "sparsity_pattern": "2:4"},
    ),
    (
        "cnn",
        {"stages": 1, "width": 3, "kernel_size": 7, "sparsity": 0.6, "sparsity_pattern": "3:7"},
    ),
]


@pytest.mark.parametrize(("family", "config"), CONVOLUTIONAL)
def test_counts_match_the_built_compressed_model(family: str, config: dict[str, Any]) -> None:
    model, baked, dense = _compressed(family, config)
    row = _row(family, config)
    assert _count(row, "macs") == count_macs(baked, get_family(family).example_input(1))
    assert _count(row, "params") == count_params(baked)
    assert _count(row, "nonzero_params") == count_nonzero_params(baked)
    assert _count(row, "weight_bytes") == model_size_bytes(model)
    assert row["sparsity"] == pytest.approx(measured_sparsity(model, dense), abs=1e-12)


def test_hand_counted_small_models() -> None:
    # mlp 64 -> 8 -> 4 -> 10: 512 + 32 + 40 MACs, plus 8 + 4 + 10 biases.
    row = _row("mlp", {"depth": 2, "width": [8, 4], "act_bits": [8, 16]})
    assert (_count(row, "macs"), _count(row, "params")) == (584, 606)
    # float32 weights and no buffers: the size is 4 bytes a parameter
    built = get_family("mlp").build({"depth": 2, "width": [8, 4]})
    assert _count(row, "weight_bytes") == 4 * 606 == float_size_bytes(built)
    # activations: input 64 x 8 bits, 8 x 16 bits, 4 x 16 bits (read by the head), logits
    assert _count(row, "act_max_bytes") == 64
    assert _count(row, "act_sum_bytes") == 64 + 16 + 8 + 40
    assert row["mean_act_bits"] == pytest.approx((512 * 8 + 32 * 16 + 40 * 16) / 584)

    # cnn, one stage of one block, 2 channels, 3x3 on 8x8: stem 18 weights, conv1 and conv2
    # 36 each, all at 64 positions; head 2 x 10 + 10; three batch norms of 2 channels.
    row = _row("cnn", {"stages": 1, "blocks": 1, "width": 2})
    assert _count(row, "macs") == (18 + 36 + 36) * 64 + 20
    assert _count(row, "params") == 18 + 36 + 36 + 20 + 10 + 3 * 2 * 2
    assert (row["count=conv3x3"], row["count=conv1x1"], row["count=batchnorm"]) == (3, 0, 3)

    # channel pruning keeps round(16 * 0.75) = 12 of the inner channels, 1x1 shortcut at
    # stride 2 in stage 1
    row = _row("cnn", {"width": [16, 32], "sparsity": 0.25, "sparsity_pattern": "channel"})
    assert (row["stage0.inner"], row["stage1.inner"], row["count=conv1x1"]) == (12, 24, 1)


TRANSFORMERS = [
    {},
    {"layers": 3, "d_model": 48, "heads": 6, "kv_heads": 2, "mlp_ratio": 2.5, "early_exit": 2},
    {"layers": 2, "d_model": 33, "heads": 3, "kv_heads": 1, "mlp_ratio": 1.0, "weight_bits": 4},
]


@pytest.mark.parametrize("config", TRANSFORMERS)
def test_transformer_counts_match_prefill_and_decode(config: dict[str, Any]) -> None:
    cfg = LM.canonical(config)
    model = LM.build(cfg)
    if cfg["early_exit"]:
        model.blocks = model.blocks[: cfg["early_exit"]]
    row = _row("transformer", config)
    p, new, d, used = 32, 32, cfg["d_model"], len(model.blocks)
    prompt = char_data().val[:p].unsqueeze(0)
    prefill = count_macs(Prefill(model, 1, p + new), prompt)
    decode = count_macs(DecodeStep(model, prompt, p + new), prompt[:, -1:])
    # count_macs sees the linears; the attention products are added by hand
    assert _count(row, "prefill_macs") == prefill + used * d * p * (p + 1)
    assert _count(row, "decode_macs") == decode + 2 * used * d * (p + 1)
    assert _count(row, "params") == count_params(model)
    assert _count(row, "kv_cache_bytes") == kv_cache_bytes(
        layers_used=used,
        batch=1,
        context=p + new,
        kv_heads=cfg["kv_heads"],
        head_dim=d // cfg["heads"],
    )
    assert row["layers_used"] == used and row["has_early_exit"] == float(bool(cfg["early_exit"]))


@pytest.mark.parametrize(
    "config",
    [
        {"weight_bits": 8, "sparsity": 0.5, "sparsity_pattern": "unstructured", "kv_heads": 1},
        {"weight_bits": 4, "sparsity": 0.5, "sparsity_pattern": "2:4", "kv_heads": 2},
        {"sparsity": 0.5, "sparsity_pattern": "block"},
        {"weight_bits": 16, "sparsity": 0.3, "sparsity_pattern": "unstructured"},
    ],
)
def test_compressed_transformer_matches_the_materialised_model(config: dict[str, Any]) -> None:
    settings = LMSettings(steps=1, finetune_steps=1, batch_size=2, seq_len=8, eval_windows=2)
    built = build_lm(LM, config, settings, seed=0)
    row = _row("transformer", config)
    assert _count(row, "weight_bytes") == built.size_bytes
    assert _count(row, "params") == built.params
    assert row["sparsity"] == pytest.approx(built.sparsity, abs=1e-9)
    dense = LM.build(config)
    linears = [dense.get_submodule(name) for name in dense.block_linears()]
    weights = sum(m.weight.numel() for m in linears if isinstance(m, nn.Linear))
    assert _count(row, "nonzero_params") == built.params - round(built.sparsity * weights)


@pytest.mark.parametrize(
    ("family", "shallow", "deep"),
    [
        ("mlp", {"depth": 1, "width": 16}, {"depth": 6, "width": [8, 9, 10, 11, 12, 13]}),
        ("cnn", {"stages": 1, "blocks": 1}, {"stages": 3, "blocks": 3, "kernel_size": [3, 5, 7]}),
        ("transformer", {"layers": 1}, {"layers": 12, "early_exit": 5, "sparsity": 0.5}),
    ],
)
def test_one_column_set_per_family(
    family: str, shallow: dict[str, Any], deep: dict[str, Any]
) -> None:
    alone = [featurize(family, [c]) for c in (shallow, deep)]
    together = featurize(family, [shallow, deep])
    assert alone[0].names == alone[1].names == together.names == featurize(family, []).names
    assert together.values.tolist() == [f.values[0].tolist() for f in alone]
    assert together.values.shape == (2, len(set(together.names)))
    if family == "mlp":  # absent layers are zeros
        row = dict(zip(together.names, together.values[0], strict=True))
        assert row["layer0.width"] == 16 and row["layer5.width"] == row["layer5.weight_bits"] == 0


def test_bad_configs_name_the_field() -> None:
    with pytest.raises(SpecError, match="family") as error:
        featurize("resnet", [{}])
    assert "mlp" in str(error.value)
    with pytest.raises(SpecError, match=r"configs\[0\]\.width") as bad:
        featurize("mlp", [{"depth": 3, "width": [8, 8]}])
    assert bad.value.field == "configs[0].width"
    with pytest.raises(SpecError, match=r"configs\[1\]\.kernel_size"):
        featurize("cnn", [{}, {"kernel_size": 4}])
    with pytest.raises(SpecError, match=r"configs\[0\]\.d_model"):
        featurize("transformer", [{"d_model": 30, "heads": 4}])
    with pytest.raises(SpecError, match=r"configs\[0\]\.colour"):
        featurize("cnn", [{"colour": 3}])
    with pytest.raises(SpecError, match=r"configs\[1\]: must be a mapping"):
        featurize("mlp", [{}, "depth=2"])  # type: ignore[list-item]


def _mlp_job(tiny_spec: dict[str, Any]) -> dict[str, Any]:
    tiny_spec["budget"] = {"evaluations": 10}
    tiny_spec["optimizer"] = {"name": "random", "population_size": 5}
    tiny_spec["measurement"] = {
        "warmup": 1,
        "min_repeats": 3,
        "max_repeats": 10,
        "max_seconds": 0.5,
    }
    return tiny_spec


def test_fit_stored_predictor_of_an_mlp_job(db_url: str, tiny_spec: dict[str, Any]) -> None:
    with Store.open(db_url) as store:
        run_job(parse_spec(_mlp_job(tiny_spec)), store)
        rows = store.measured_values("mlp", "cpu", "latency_ms")
        assert len(rows) >= 8
        # the analytic features equal what the evaluation counted on the trained models
        features = featurize("mlp", [config for _, config, _ in rows])
        for metric in ("macs", "params", "size_bytes"):
            stored = {h: v for h, _, v in store.measured_values("mlp", "cpu", metric)}
            column = features.names.index(f"log_{metric.replace('size', 'weight')}")
            counted = [round(math.exp(x)) for x in features.values[:, column]]
            assert counted == [stored[h] for h, _, _ in rows], metric

        record = fit_stored(store, family="mlp", target="cpu", metric="latency_ms", kind="ridge")
        assert record.training_size == len(rows) - round(0.2 * len(rows))
        assert "log_macs" in record.features and "layer5.width" in record.features
        mean, std = load_stored(record).predict_configs([config for _, config, _ in rows])
        assert (mean > 0).all() and (std > 0).all()

    where = ["--family", "mlp", "--target", "cpu", "--db", db_url]
    fit = CliRunner().invoke(app, ["predictors", "fit", *where, "--metric", "accuracy"])
    assert fit.exit_code == 0, fit.output
    assert "version 1 (gp" in fit.output
    evaluated = CliRunner().invoke(app, ["predictors", "eval", *where, "--metric", "accuracy"])
    assert evaluated.exit_code == 0, evaluated.output
