"""Channel pruning, sparsity masks, simulated quantization and the size formula."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from hwsearch.models import get_family
from hwsearch.models.compression import (
    ActFakeQuant,
    CompressionSpec,
    WeightFakeQuant,
    WeightMask,
    apply_compression,
    apply_sparsity,
    bake,
    calibrate_activations,
    fake_quantize_weight,
    kept_count,
    magnitude_mask,
    measured_sparsity,
    model_size_bytes,
    nm_mask,
    prune_channels,
    weight_count,
)

MLP = get_family("mlp")
CNN = get_family("cnn")


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield
    torch.set_num_threads(threads)


def test_cnn_channel_pruning_shrinks_inner_convs_and_keeps_largest_filters() -> None:
    model = CNN.build({"stages": 2, "blocks": 2, "width": [8, 16]}).eval()
    original_conv1 = model.stages[1][1].conv1.weight.detach().clone()
    x = CNN.example_input(4)
    model, done = prune_channels(model, 0.5)
    assert done["stages.1.1.conv1"] == (16, 8)
    block = model.stages[1][1]
    assert block.conv1.weight.shape == (8, 16, 3, 3)
    assert block.bn1.num_features == 8 and block.bn1.running_mean.shape == (8,)
    assert block.conv2.weight.shape == (16, 8, 3, 3)  # the residual width is unchanged
    assert model.stages[0][0].conv1.weight.shape[0] == 4
    assert model(x).shape == (4, 10)
    norms = original_conv1.abs().sum(dim=(1, 2, 3))
    expected = original_conv1[norms.topk(8).indices.sort().values]
    assert torch.equal(block.conv1.weight, expected)


def test_mlp_channel_pruning_removes_dead_neurons_without_changing_outputs() -> None:
    model = MLP.build({"depth": 2, "width": [16, 8]}).eval()
    with torch.no_grad():  # silence half of each hidden layer: zero weights and bias
        for block in model.blocks:
            dead = torch.randperm(block.linear.out_features)[: block.linear.out_features // 2]
            block.linear.weight[dead] = 0.0
            block.linear.bias[dead] = 0.0
    x = MLP.example_input(6)
    before = model(x)
    model, _ = prune_channels(model, 0.5)
    assert [b.linear.out_features for b in model.blocks] == [8, 4]
    assert model.blocks[1].linear.in_features == 8 and model.head.in_features == 4
    assert torch.allclose(model(x), before, atol=1e-6)


def test_pruning_keeps_at_least_one_channel() -> None:
    assert kept_count(4, 0.9) == 1
    assert kept_count(10, 0.25) == 8
    model, done = prune_channels(MLP.build({"depth": 1, "width": 4}), 0.9)
    assert done["blocks.0.linear"] == (4, 1)
    assert model(MLP.example_input(2)).shape == (2, 10)


def test_magnitude_mask_hits_the_ratio_and_drops_the_smallest() -> None:
    weight = torch.randn(64, 48)
    mask = magnitude_mask(weight, 0.7)
    assert int((mask == 0).sum()) == round(0.7 * weight.numel())
    kept, dropped = weight.abs()[mask == 1], weight.abs()[mask == 0]
    assert kept.min() >= dropped.max()


def test_nm_mask_keeps_n_largest_of_every_m() -> None:
    weight = torch.randn(8, 32)
    mask = nm_mask(weight, 2, 4)
    groups = mask.reshape(8, 8, 4)
    assert torch.all(groups.sum(dim=2) == 2)
    mags = weight.abs().reshape(8, 8, 4)
    kept_min = torch.where(groups == 1, mags, torch.inf).amin(dim=2)
    dropped_max = torch.where(groups == 0, mags, -torch.inf).amax(dim=2)
    assert torch.all(kept_min >= dropped_max)


def test_nm_mask_on_conv_groups_along_the_input_dimension() -> None:
    weight = torch.randn(4, 2, 3, 3)  # 18 inputs per filter: four full groups and one of 2
    rows = nm_mask(weight, 2, 4).reshape(4, 18)
    assert torch.all(rows[:, :16].reshape(4, 4, 4).sum(dim=2) == 2)
    assert torch.all(rows[:, 16:].sum(dim=1) == 2)


def test_masks_survive_fine_tuning() -> None:
    model = MLP.build({"depth": 2, "width": 16})
    model, achieved = apply_sparsity(model, 0.6, "unstructured")
    assert achieved["blocks.0.linear"] == pytest.approx(0.6, abs=1e-3)
    zero_before = model.blocks[0].linear.weight == 0
    optimizer = torch.optim.Adam(model.parameters(), lr=0.1)
    for _ in range(3):
        optimizer.zero_grad()
        model(MLP.example_input(8)).square().sum().backward()
        optimizer.step()
    assert torch.equal(model.blocks[0].linear.weight == 0, zero_before)


@pytest.mark.parametrize("bits", [2, 4, 8])
def test_weight_fake_quant_levels_per_channel(bits: int) -> None:
    weight = torch.randn(6, 200)
    quantized = fake_quantize_weight(weight, bits)
    for row, original in zip(quantized, weight, strict=True):
        assert len(torch.unique(row)) <= 2**bits
        scale = original.abs().max() / (2 ** (bits - 1) - 1)
        assert (row - original).abs().max() <= scale / 2 + 1e-6
    assert len(torch.unique(fake_quantize_weight(weight, 8))) > 2**4


def test_weight_fake_quant_16_32_and_gradient() -> None:
    weight = torch.randn(4, 10, requires_grad=True)
    assert torch.equal(fake_quantize_weight(weight, 32), weight)
    assert torch.equal(fake_quantize_weight(weight, 16), weight.half().float())
    fake_quantize_weight(weight, 4).sum().backward()
    assert weight.grad is not None and torch.equal(weight.grad, torch.ones(4, 10))
    with pytest.raises(ValueError, match="3"):
        fake_quantize_weight(weight, 3)


def test_activation_fake_quant_observes_then_quantizes() -> None:
    quant = ActFakeQuant(4).eval()
    x = torch.randn(32, 50, requires_grad=True)
    assert torch.equal(quant(x), x)  # nothing observed yet
    calibrate_activations(quant, [torch.randn(32, 50)])
    y = quant(x)
    assert len(torch.unique(y)) <= 16
    y.sum().backward()
    assert x.grad is not None and torch.equal(x.grad, torch.ones_like(x))


def test_apply_compression_and_bake() -> None:
    model = CNN.build({"width": [4, 8]})
    spec = CompressionSpec.from_config(
        CNN.canonical(
            {
                "width": [4, 8],
                "sparsity": 0.5,
                "sparsity_pattern": "2:4",
                "weight_bits": 4,
                "act_bits": [8, 32],
            }
        )
    )
    model, report = apply_compression(model, spec)
    assert report.weight_bits["head"] == 4 and report.act_bits["head_quant"] == 32
    assert isinstance(model.stem_quant, ActFakeQuant) and isinstance(model.head_quant, nn.Identity)
    calibrate_activations(model, [CNN.example_input(16)])
    model.eval()
    baked = bake(model).eval()
    assert not any(parametrize.is_parametrized(m) for m in baked.modules())
    assert not any(isinstance(m, ActFakeQuant) for m in baked.modules())
    assert parametrize.is_parametrized(model.stem)  # the original is untouched
    assert torch.equal(baked.stages[1][0].conv2.weight, model.stages[1][0].conv2.weight)
    assert measured_sparsity(model, weight_count(model)) == pytest.approx(0.5, abs=0.02)


def _layer(*parametrizations: nn.Module) -> nn.Sequential:
    net = nn.Sequential(nn.Linear(8, 4))
    for p in parametrizations:
        parametrize.register_parametrization(net[0], "weight", p)
    return net


def test_size_formula_on_a_small_layer() -> None:
    # 32 weights + 4 biases; biases always 32 bits (4 * 32 = 128 bits)
    assert model_size_bytes(_layer()) == (32 * 32 + 128) // 8
    assert model_size_bytes(_layer(WeightFakeQuant(8))) == (32 * 8 + 128) // 8
    mask = torch.zeros(4, 8)
    mask.view(-1)[:10] = 1.0  # 10 kept: 32-bit bitmap + 10 values at 4 bits
    unstructured = _layer(WeightMask(mask, "unstructured"), WeightFakeQuant(4))
    assert model_size_bytes(unstructured) == (32 + 10 * 4 + 128) // 8
    two_four = nm_mask(torch.randn(4, 8), 2, 4)  # 16 kept, each 8 bits + 2 index bits
    nm = _layer(WeightMask(two_four, "2:4"), WeightFakeQuant(8))
    assert model_size_bytes(nm) == (16 * (8 + 2) + 128) // 8
    assert model_size_bytes(nn.BatchNorm2d(4)) == 4 * 4 * 4  # weight, bias, mean, var
    odd = _layer(WeightMask(two_four, "2:4"), WeightFakeQuant(2))
    assert model_size_bytes(odd) == -(-(16 * (2 + 2) + 128) // 8)


def test_channel_pruning_shrinks_the_size() -> None:
    dense = MLP.build({"width": 32})
    pruned, _ = prune_channels(MLP.build({"width": 32}), 0.5)
    assert model_size_bytes(pruned) < model_size_bytes(dense)
    assert measured_sparsity(pruned, weight_count(dense)) == pytest.approx(
        1 - (64 * 16 + 16 * 16 + 16 * 10) / (64 * 32 + 32 * 32 + 32 * 10)
    )
