import warnings

import pytest
import torch
from torch import nn
from torch.nn.utils import prune

from hwsearch.hardware import count_macs, count_nonzero_params, count_params, model_size_bytes


def test_linear() -> None:
    model = nn.Linear(64, 32)
    assert count_macs(model, torch.randn(1, 64)) == 64 * 32
    assert count_params(model) == 64 * 32 + 32
    assert model_size_bytes(model) == (64 * 32 + 32) * 4


def test_macs_are_per_sample_whatever_the_batch() -> None:
    model = nn.Linear(64, 32)
    assert count_macs(model, torch.randn(16, 64)) == 2048


def test_linear_on_a_sequence_counts_every_row() -> None:
    # (1, 10, 64) -> (1, 10, 32): ten rows of 64 x 32
    assert count_macs(nn.Linear(64, 32), torch.randn(1, 10, 64)) == 10 * 2048


def test_conv2d() -> None:
    model = nn.Conv2d(3, 8, kernel_size=3, padding=1)
    # output 8 x 16 x 16, each a 3 x 3 x 3 dot product
    assert count_macs(model, torch.randn(1, 3, 16, 16)) == 8 * 16 * 16 * 27
    assert count_params(model) == 8 * 3 * 3 * 3 + 8


def test_conv1d_stride_and_no_bias() -> None:
    model = nn.Conv1d(4, 6, kernel_size=5, stride=2, bias=False)
    # length (20 - 5) // 2 + 1 = 8
    assert count_macs(model, torch.randn(1, 4, 20)) == 6 * 8 * 4 * 5
    assert count_params(model) == 6 * 4 * 5


def test_grouped_and_depthwise_convs_in_a_model() -> None:
    model = nn.Sequential(
        nn.Conv2d(8, 16, kernel_size=3, groups=4),  # 10x10 -> 8x8, 2 input channels per group
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.Conv2d(16, 16, kernel_size=3, padding=1, groups=16, bias=False),  # depthwise, 8x8
        nn.Flatten(),
        nn.Linear(16 * 8 * 8, 10),
    )
    grouped = 16 * 8 * 8 * (8 // 4) * 9
    depthwise = 16 * 8 * 8 * 1 * 9
    linear = 10 * 16 * 8 * 8
    assert count_macs(model, torch.randn(1, 8, 10, 10)) == grouped + depthwise + linear
    params = (16 * 2 * 9 + 16) + (16 + 16) + 16 * 1 * 9 + (1024 * 10 + 10)
    assert count_params(model) == params
    # batch norm running stats are buffers: in the size, not in the parameter count
    buffers = (16 + 16 + 1) * 4 + 4  # mean, var as float32, num_batches_tracked as int64
    assert model_size_bytes(model) == params * 4 + buffers


def test_shared_layer_counts_params_once_and_macs_per_call() -> None:
    shared = nn.Linear(8, 8)
    model = nn.Sequential(shared, nn.ReLU(), shared)
    assert count_params(model) == 8 * 8 + 8
    assert count_macs(model, torch.randn(1, 8)) == 2 * 64


def test_count_macs_leaves_mode_and_hooks_as_they_were() -> None:
    linear = nn.Linear(4, 4)
    model = nn.Sequential(linear, nn.Dropout(0.5))
    model.train()
    count_macs(model, torch.randn(1, 4))
    assert model.training
    assert not linear._forward_hooks


def test_nonzero_sees_pruning_masks() -> None:
    model = nn.Linear(10, 10, bias=False)
    nn.init.ones_(model.weight)
    prune.l1_unstructured(model, name="weight", amount=0.3)
    assert count_params(model) == 100
    assert count_nonzero_params(model) == 70


def test_nonzero_follows_updates_of_a_pruned_weight() -> None:
    model = nn.Linear(10, 10, bias=False)
    nn.init.ones_(model.weight)
    mask = torch.ones(10, 10)
    mask[:3] = 0  # rows 0-2 pruned
    prune.custom_from_mask(model, name="weight", mask=mask)
    orig = model.weight_orig
    assert isinstance(orig, torch.Tensor)
    with torch.no_grad():
        orig[5].zero_()  # as an optimiser step would; no forward pass since
    assert count_nonzero_params(model) == 100 - 30 - 10


def test_nonzero_on_dense_model() -> None:
    model = nn.Linear(6, 3)
    with torch.no_grad():
        model.weight[:, :2] = 0
        model.bias.zero_()
    assert count_nonzero_params(model) == 3 * 4


def test_quantized_linear_packed_weights_count() -> None:
    from torch.ao.quantization import quantize_dynamic

    first, second = nn.Linear(16, 8), nn.Linear(8, 4)
    float_model = nn.Sequential(first, nn.ReLU(), second)
    with torch.no_grad():
        for layer in (first, second):  # far from 0, so int8 keeps them non-zero
            layer.weight.copy_(
                torch.sign(layer.weight) * (0.5 + 0.5 * torch.rand_like(layer.weight))
            )
        first.weight[:, :4] = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quantized = quantize_dynamic(float_model, {nn.Linear}, dtype=torch.qint8)
    assert list(quantized.parameters()) == []
    assert count_params(quantized) == count_params(float_model) == 16 * 8 + 8 + 8 * 4 + 4
    assert count_nonzero_params(quantized) == count_nonzero_params(float_model)
    assert count_macs(quantized, torch.randn(1, 16)) == 16 * 8 + 8 * 4
    # int8 weights take a quarter of the float bytes; biases stay float32
    weights, biases = 16 * 8 + 8 * 4, 8 + 4
    assert model_size_bytes(float_model) == (weights + biases) * 4
    assert model_size_bytes(quantized) == weights * 1 + biases * 4


def test_scalar_input_is_rejected() -> None:
    with pytest.raises(ValueError, match="batch dimension"):
        count_macs(nn.Linear(1, 1), torch.tensor(1.0))
