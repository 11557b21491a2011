"""Per-layer analytic counts of any built model."""

from __future__ import annotations

import math

import torch
from torch import nn

from hwsearch.hardware.counts import count_macs, count_params
from hwsearch.models.compression import model_size_bytes
from hwsearch.models.custom.compress import compress
from hwsearch.models.custom.counts import feature_names, feature_vector, layer_counts
from hwsearch.models.custom.rules import resolve_rules

from .nets import MLP, DepthwiseNet, ResNet


def test_linear_counts_by_hand() -> None:
    model = MLP()
    x = torch.randn(1, 64)
    rows = {r.name: r for r in layer_counts(model, x)}
    assert rows["fc1"].macs == 64 * 64 and rows["fc1"].params == 64 * 64 + 64
    assert rows["fc1"].weight_bytes == (64 * 64 + 64) * 4
    assert rows["fc1"].act_bytes == 64 * 4
    assert sum(r.macs for r in rows.values()) == count_macs(model, x)


def test_compressed_counts_follow_bits_masks_and_pruning() -> None:
    model = MLP()
    x = torch.randn(1, 64)
    layers = {
        "fc1": {"sparsity": 0.5, "sparsity_pattern": "channel"},
        "fc2": {"weight_bits": 8, "act_bits": 8, "sparsity": 0.5, "sparsity_pattern": "2:4"},
    }
    compress(model, resolve_rules(model, layers), x)
    rows = {r.name: r for r in layer_counts(model, x)}
    assert rows["fc1"].macs == 64 * 32  # physically smaller
    assert rows["fc2"].macs == 32 * 32  # masked zeros still multiply on dense kernels
    assert rows["fc2"].nonzero_params == 32 * 32 // 2 + 32
    assert rows["fc2"].weight_bits == 8 and rows["fc2"].act_bits == 8
    assert rows["fc2"].act_bytes == 32 * 8 / 8
    # 2:4 at 8 bits: kept values plus 2 index bits each, bias at 32 bits
    assert rows["fc2"].weight_bytes == (512 * (8 + 2) + 32 * 32) / 8
    weight_bytes = sum(r.weight_bytes for r in rows.values())
    assert math.isclose(weight_bytes, model_size_bytes(model), abs_tol=1)
    f = feature_vector(model, list(rows.values()))
    assert math.isclose(
        f["sparsity"],
        1 - sum(r.nonzero_params for r in rows.values()) / sum(r.params for r in rows.values()),
    )
    assert math.isclose(f["log_params"], math.log(count_params(model)))
    assert f["macs_share_w8"] == rows["fc2"].macs / sum(r.macs for r in rows.values())


def test_layer_types_and_fixed_feature_names() -> None:
    model = DepthwiseNet()
    x = torch.randn(1, 3, 8, 8)
    rows = layer_counts(model, x)
    kinds = [r.kind for r in rows]
    assert kinds == ["conv2d", "depthwise", "conv2d", "grouped", "linear"]
    dw = rows[1]
    assert dw.macs == 32 * 8 * 8 * 9
    grouped = rows[3]
    assert grouped.macs == 64 * 8 * 8 * (64 // 4) * 9
    f = feature_vector(model, rows)
    assert f["count=depthwise"] == 1 and f["count=grouped"] == 1 and f["count=norm"] == 2
    assert tuple(f) == feature_names()
    assert (
        tuple(feature_vector(ResNet(), layer_counts(ResNet(), torch.randn(1, 3, 8, 8))))
        == feature_names()
    )


def test_a_layer_called_twice_counts_twice() -> None:
    class Twice(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(8, 8)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(self.fc(x))

    (row,) = layer_counts(Twice(), torch.randn(3, 8))
    assert row.macs == 2 * 64 and row.params == 72


def test_hardware_counts_read_torchao_weights_under_inference_mode() -> None:
    """Materialised layers hold torchao tensor subclasses; the measurement's memory count
    runs in inference mode and must see their stored int8 bytes."""
    from torchao.quantization import Int8WeightOnlyConfig, quantize_

    from hwsearch.hardware.counts import count_nonzero_params
    from hwsearch.hardware.counts import model_size_bytes as stored_bytes

    layer = nn.Linear(64, 16)
    quantize_(layer, Int8WeightOnlyConfig())
    with torch.inference_mode():
        size = stored_bytes(layer)
        assert count_params(layer) == 64 * 16 + 16
        assert count_nonzero_params(layer) <= 64 * 16 + 16
    # int8 values, one fp32 scale and an int8 zero point per row (torchao's layout), fp32 bias
    assert 64 * 16 + 16 * 4 <= size <= 64 * 16 + 16 * (4 + 4) + 16 * 4
