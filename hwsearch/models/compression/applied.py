"""Everything together and what it weighs: :func:`apply_compression` (prune or mask, then
fake-quantize), :func:`bake` (plain dense weights for a deployment) and the size and sparsity
of a compressed model (:func:`model_size_bytes`)."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn.utils import parametrize

from hwsearch.models.compression.knobs import CompressionSpec, parse_nm
from hwsearch.models.compression.transforms import (
    CompressibleNet,
    WeightFakeQuant,
    WeightMask,
    apply_sparsity,
    conv_like,
    find_parametrization,
    prune_channels,
    quantize_activations,
    quantize_weights,
    set_module,
)

# --------------------------------------------------------------------------------------------
# Everything together
# --------------------------------------------------------------------------------------------


@dataclass
class CompressionReport:
    """What :func:`apply_compression` did."""

    pruned_channels: dict[str, tuple[int, int]] = field(default_factory=dict)
    layer_sparsity: dict[str, float] = field(default_factory=dict)  # masked layers only
    weight_bits: dict[str, int] = field(default_factory=dict)
    act_bits: dict[str, int] = field(default_factory=dict)


def apply_compression(
    model: CompressibleNet, spec: CompressionSpec
) -> tuple[CompressibleNet, CompressionReport]:
    """Prune or mask, then fake-quantize weights and activations, in place.

    Activation ranges still need observing: fine-tune or :func:`calibrate_activations`.
    """
    report = CompressionReport()
    if spec.sparsity > 0.0 and spec.pattern == "channel":
        model, report.pruned_channels = prune_channels(model, spec.sparsity)
    elif spec.sparsity > 0.0 and spec.pattern != "none":
        model, report.layer_sparsity = apply_sparsity(model, spec.sparsity, spec.pattern)
    model, report.weight_bits = quantize_weights(model, spec.weight_bits)
    model, report.act_bits = quantize_activations(model, spec.act_bits)
    return model, report


def bake(model: CompressibleNet) -> CompressibleNet:
    """A plain float copy: masks and quantized weight values folded into dense weights, no
    parametrizations, activation fake-quantization removed. What a deployment starts from.

    ``model`` itself is left as it was (parametrized layers are rebuilt, not unparametrized,
    because a copy of a parametrized module shares its injected class with the original).
    """
    baked = copy.deepcopy(model)
    for name, module in list(baked.named_modules()):
        if isinstance(module, nn.Linear | nn.Conv2d) and parametrize.is_parametrized(module):
            set_module(baked, name, _plain(module))
    for name, _ in baked.act_quant_slots():
        set_module(baked, name, nn.Identity())
    return baked


def _plain(layer: nn.Linear | nn.Conv2d) -> nn.Linear | nn.Conv2d:
    new: nn.Linear | nn.Conv2d
    if isinstance(layer, nn.Linear):
        new = nn.Linear(layer.in_features, layer.out_features, bias=layer.bias is not None)
    else:
        new = conv_like(layer, layer.in_channels, layer.out_channels)
    with torch.no_grad():
        new.weight.copy_(layer.weight)
        if layer.bias is not None and new.bias is not None:
            new.bias.copy_(layer.bias)
    return new.train(layer.training)


# --------------------------------------------------------------------------------------------
# Size and sparsity
# --------------------------------------------------------------------------------------------


def _bits_of(layer: nn.Module) -> int:
    quant = find_parametrization(layer, WeightFakeQuant)
    return 32 if quant is None else int(quant.bits)


def layer_weight_bits(layer: nn.Linear | nn.Conv2d) -> int:
    """Storage bits of a weight layer's weights, following :func:`model_size_bytes`."""
    numel = layer.weight.numel()
    bits = _bits_of(layer)
    mask = find_parametrization(layer, WeightMask)
    if mask is None:
        return numel * bits
    kept = int(mask.mask.count_nonzero())
    nm = parse_nm(mask.pattern)
    if nm is None:  # bitmap of every position, then the kept values
        return numel + kept * bits
    return kept * (bits + math.ceil(math.log2(nm[1])))


def model_size_bytes(model: nn.Module) -> int:
    """Stored size of a compressed model at its bit-widths, in bytes (rounded up).

    Per Linear / Conv2d weight: dense → ``numel * bits``; unstructured mask → a 1-bit bitmap
    per element plus ``kept * bits``; N:M mask → ``kept * (bits + ceil(log2(M)))`` (the kept
    values and their index in the group). Channel-pruned layers simply have fewer elements.
    Biases and BatchNorm (weight, bias, running mean and variance) count at 32 bits.
    Quantization scales and activation ranges are not counted.
    """
    total = 0
    for module in model.modules():
        if isinstance(module, nn.Linear | nn.Conv2d):
            total += layer_weight_bits(module)
            if module.bias is not None:
                total += module.bias.numel() * 32
        elif isinstance(module, nn.modules.batchnorm._BatchNorm):
            for tensor in (module.weight, module.bias, module.running_mean, module.running_var):
                if tensor is not None:
                    total += tensor.numel() * 32
    return math.ceil(total / 8)


def kept_weights(model: nn.Module) -> int:
    """Weights of all Linear / Conv2d layers that are neither pruned away nor masked."""
    kept = 0
    for module in model.modules():
        if isinstance(module, nn.Linear | nn.Conv2d):
            mask = find_parametrization(module, WeightMask)
            kept += module.weight.numel() if mask is None else int(mask.mask.count_nonzero())
    return kept


def weight_count(model: nn.Module) -> int:
    """All weights of Linear / Conv2d layers (masked or not)."""
    return sum(m.weight.numel() for m in model.modules() if isinstance(m, nn.Linear | nn.Conv2d))


def measured_sparsity(model: nn.Module, dense_weights: int) -> float:
    """Share of the dense architecture's weights that pruning removed or a mask zeroed."""
    if dense_weights <= 0:
        raise ValueError(f"dense_weights must be positive, got {dense_weights!r}")
    return 1.0 - kept_weights(model) / dense_weights
