"""The transforms on a :class:`CompressibleNet`: channel pruning, sparsity masks (unstructured
or N:M) and simulated quantization of weights and activations, each returning the model and
what it did. Masks and weight fake-quantization are ``torch.nn.utils.parametrize``
parametrizations, so they stay in force during fine-tuning."""

from __future__ import annotations

import abc
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import torch
from torch import nn
from torch.nn.utils import parametrize

from hwsearch.models.compression.knobs import BIT_CHOICES, parse_nm

# --------------------------------------------------------------------------------------------
# The network interface
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PruneGroup:
    """Output channels of ``producer`` (Linear or Conv2d), normalised by ``norm`` (BatchNorm2d
    or None), read by ``consumer`` alone. Pruning the group keeps every shape consistent."""

    producer: str
    consumer: str
    norm: str | None = None


class CompressibleNet(nn.Module, abc.ABC):
    """A network that tells compression which layers it may touch.

    Activation-quantization slots are ``nn.Identity`` modules placed in front of weight
    layers; :func:`quantize_activations` replaces them.
    """

    num_blocks: int

    @abc.abstractmethod
    def weight_layers(self) -> list[tuple[str, int]]:
        """Every Linear / Conv2d as ``(module name, block index)``."""

    @abc.abstractmethod
    def act_quant_slots(self) -> list[tuple[str, int]]:
        """Every activation-quantization slot as ``(module name, block index)``."""

    @abc.abstractmethod
    def prune_groups(self) -> list[PruneGroup]:
        """The channel groups that structured pruning may shrink."""

    @abc.abstractmethod
    def quant_regions(self) -> list[tuple[str, int]]:
        """Submodules that together hold every layer, as ``(module name, block index)``.

        A deployment that quantizes only some blocks quantizes whole regions, so a residual
        addition never mixes a quantized and a float tensor.
        """


def set_module(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, module)


def _weight_layer(model: nn.Module, name: str) -> nn.Linear | nn.Conv2d:
    layer = model.get_submodule(name)
    if not isinstance(layer, nn.Linear | nn.Conv2d):
        raise TypeError(f"{name} is a {type(layer).__name__}, not a Linear or Conv2d")
    return layer


# --------------------------------------------------------------------------------------------
# Channel pruning
# --------------------------------------------------------------------------------------------


def kept_count(channels: int, ratio: float) -> int:
    """How many of ``channels`` survive pruning a share ``ratio`` of them (at least one)."""
    return max(1, math.floor(channels * (1.0 - ratio) + 0.5))


def _slice_out(layer: nn.Linear | nn.Conv2d, keep: torch.Tensor) -> nn.Linear | nn.Conv2d:
    new: nn.Linear | nn.Conv2d
    if isinstance(layer, nn.Linear):
        new = nn.Linear(layer.in_features, len(keep), bias=layer.bias is not None)
    else:
        new = conv_like(layer, layer.in_channels, len(keep))
    with torch.no_grad():
        new.weight.copy_(layer.weight[keep])
        if layer.bias is not None and new.bias is not None:
            new.bias.copy_(layer.bias[keep])
    return new


def _slice_in(layer: nn.Linear | nn.Conv2d, keep: torch.Tensor) -> nn.Linear | nn.Conv2d:
    new: nn.Linear | nn.Conv2d
    if isinstance(layer, nn.Linear):
        new = nn.Linear(len(keep), layer.out_features, bias=layer.bias is not None)
    else:
        new = conv_like(layer, len(keep), layer.out_channels)
    with torch.no_grad():
        new.weight.copy_(layer.weight[:, keep])
        if layer.bias is not None and new.bias is not None:
            new.bias.copy_(layer.bias)
    return new


def conv_like(layer: nn.Conv2d, in_channels: int, out_channels: int) -> nn.Conv2d:
    if layer.groups != 1:
        raise ValueError("channel pruning supports only convolutions with groups=1")
    pair = tuple[int, int]
    return nn.Conv2d(
        in_channels,
        out_channels,
        cast(pair, layer.kernel_size),
        stride=cast(pair, layer.stride),
        padding=cast(pair, layer.padding),
        dilation=cast(pair, layer.dilation),
        bias=layer.bias is not None,
    )


def _slice_norm(norm: nn.BatchNorm2d, keep: torch.Tensor) -> nn.BatchNorm2d:
    new = nn.BatchNorm2d(len(keep), eps=norm.eps, momentum=norm.momentum, affine=norm.affine)
    with torch.no_grad():
        if norm.affine:
            new.weight.copy_(norm.weight[keep])
            new.bias.copy_(norm.bias[keep])
        if norm.running_mean is not None and norm.running_var is not None:
            assert new.running_mean is not None and new.running_var is not None
            new.running_mean.copy_(norm.running_mean[keep])
            new.running_var.copy_(norm.running_var[keep])
    return new


def prune_channels(
    model: CompressibleNet, ratio: float
) -> tuple[CompressibleNet, dict[str, tuple[int, int]]]:
    """Remove a share ``ratio`` of the channels of every prune group, in place.

    Keeps the output channels of the producer with the largest L1 norm (at least one) and
    slices the norm and the consumer to match, so the layers are physically smaller and the
    model's output shape is unchanged. Returns the model and ``{producer: (before, after)}``.
    """
    if not 0.0 <= ratio < 1.0:
        raise ValueError(f"ratio must be in [0, 1), got {ratio!r}")
    done: dict[str, tuple[int, int]] = {}
    for group in model.prune_groups():
        producer = _weight_layer(model, group.producer)
        if parametrize.is_parametrized(producer):
            raise ValueError(f"{group.producer} is already masked or quantized; prune first")
        channels = producer.weight.shape[0]
        keep_n = kept_count(channels, ratio)
        scores = producer.weight.detach().abs().reshape(channels, -1).sum(dim=1)
        order = torch.argsort(scores, descending=True, stable=True)
        keep = order[:keep_n].sort().values
        set_module(model, group.producer, _slice_out(producer, keep))
        if group.norm is not None:
            norm = model.get_submodule(group.norm)
            if not isinstance(norm, nn.BatchNorm2d):
                raise TypeError(f"{group.norm} is a {type(norm).__name__}, not a BatchNorm2d")
            set_module(model, group.norm, _slice_norm(norm, keep))
        set_module(model, group.consumer, _slice_in(_weight_layer(model, group.consumer), keep))
        done[group.producer] = (channels, keep_n)
    return model, done


# --------------------------------------------------------------------------------------------
# Sparsity masks
# --------------------------------------------------------------------------------------------


def magnitude_mask(weight: torch.Tensor, ratio: float) -> torch.Tensor:
    """A 0/1 mask that zeroes the ``round(ratio * numel)`` weights of smallest magnitude."""
    if not 0.0 <= ratio < 1.0:
        raise ValueError(f"ratio must be in [0, 1), got {ratio!r}")
    flat = weight.detach().abs().flatten()
    drop = min(math.floor(ratio * flat.numel() + 0.5), flat.numel() - 1)
    mask = torch.ones_like(flat)
    if drop > 0:
        mask[torch.argsort(flat, stable=True)[:drop]] = 0.0
    return mask.reshape(weight.shape)


def nm_mask(weight: torch.Tensor, n: int, m: int) -> torch.Tensor:
    """A 0/1 mask keeping the ``n`` largest of every ``m`` consecutive weights.

    Groups run along the input dimension: a weight is viewed as ``(out, in * kh * kw)`` in
    PyTorch's memory order. Where that length is not a multiple of ``m`` the last, shorter
    group keeps ``min(n, its length)`` weights.
    """
    if not 0 < n < m:
        raise ValueError(f"N:M sparsity needs 0 < N < M, got {n}:{m}")
    rows = weight.detach().abs().reshape(weight.shape[0], -1)
    length = rows.shape[1]
    pad = (-length) % m
    scores = torch.cat([rows, rows.new_full((rows.shape[0], pad), -1.0)], dim=1)
    groups = scores.reshape(rows.shape[0], -1, m)
    top = torch.topk(groups, n, dim=2, sorted=False).indices
    mask = torch.zeros_like(groups).scatter_(2, top, 1.0)
    return mask.reshape(rows.shape[0], -1)[:, :length].reshape(weight.shape)


class WeightMask(nn.Module):
    """Parametrization multiplying a weight by a fixed 0/1 mask (kept during fine-tuning)."""

    mask: torch.Tensor

    def __init__(self, mask: torch.Tensor, pattern: str) -> None:
        super().__init__()
        self.register_buffer("mask", mask)
        self.pattern = pattern  # "unstructured" or "N:M"; decides the storage format

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return weight * self.mask


def _parametrizations(layer: nn.Module) -> list[nn.Module]:
    if not parametrize.is_parametrized(layer, "weight"):
        return []
    plist = cast(nn.ModuleDict, layer.parametrizations)["weight"]
    return list(cast(nn.ModuleList, plist))


def find_parametrization(layer: nn.Module, kind: type[nn.Module]) -> Any:
    return next((p for p in _parametrizations(layer) if isinstance(p, kind)), None)


def apply_sparsity(
    model: CompressibleNet, ratio: float, pattern: str
) -> tuple[CompressibleNet, dict[str, float]]:
    """Mask every weight layer: magnitude (``"unstructured"``, per layer) or ``"N:M"``.

    The ratio of an N:M pattern is ``1 - N/M`` and ``ratio`` is ignored. Returns the model and
    the share of zeroed weights per layer.
    """
    nm = parse_nm(pattern)
    if pattern != "unstructured" and nm is None:
        raise ValueError(f"pattern must be 'unstructured' or 'N:M', got {pattern!r}")
    achieved: dict[str, float] = {}
    for name, _ in model.weight_layers():
        layer = _weight_layer(model, name)
        weight = layer.weight
        mask = magnitude_mask(weight, ratio) if nm is None else nm_mask(weight, *nm)
        parametrize.register_parametrization(layer, "weight", WeightMask(mask, pattern))
        achieved[name] = 1.0 - float(mask.mean())
    return model, achieved


# --------------------------------------------------------------------------------------------
# Simulated quantization
# --------------------------------------------------------------------------------------------


def _check_bits(bits: int) -> None:
    if bits not in BIT_CHOICES:
        raise ValueError(f"bits must be one of {list(BIT_CHOICES)}, got {bits!r}")


def fake_quantize_weight(weight: torch.Tensor, bits: int) -> torch.Tensor:
    """Weights rounded to ``bits``: symmetric per output channel (2-8), fp16 (16) or as is (32).

    Integer widths use ``2**(bits-1) - 1`` levels each side of zero (zero stays exact, so masks
    survive), scale = the channel's largest magnitude over that count. The gradient passes
    straight through.
    """
    _check_bits(bits)
    if bits == 32:
        return weight
    if bits == 16:
        rounded = weight.to(torch.float16).to(weight.dtype)
    else:
        qmax = 2 ** (bits - 1) - 1
        amax = weight.detach().abs().reshape(weight.shape[0], -1).amax(dim=1)
        scale = (amax.clamp(min=1e-12) / qmax).reshape(-1, *([1] * (weight.dim() - 1)))
        rounded = torch.clamp(torch.round(weight / scale), -qmax, qmax) * scale
    return weight + (rounded - weight).detach()


class WeightFakeQuant(nn.Module):
    """Parametrization applying :func:`fake_quantize_weight` (kept during fine-tuning)."""

    def __init__(self, bits: int) -> None:
        super().__init__()
        _check_bits(bits)
        self.bits = bits

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return fake_quantize_weight(weight, self.bits)


class ActFakeQuant(nn.Module):
    """Per-tensor activation fake-quantization with a running min/max observer.

    Integer widths are affine over ``[min(lo, 0), max(hi, 0)]`` with ``2**bits`` levels; the
    range is an exponential moving average of batch extremes, updated in training mode or
    while ``observing`` is set (see :func:`calibrate_activations`). 16 bits is an fp16 round
    trip. Before any observation the input passes unchanged.
    """

    low: torch.Tensor
    high: torch.Tensor
    observed: torch.Tensor

    def __init__(self, bits: int, momentum: float = 0.1) -> None:
        super().__init__()
        _check_bits(bits)
        self.bits = bits
        self.momentum = momentum
        self.observing = False
        self.register_buffer("low", torch.zeros(()))
        self.register_buffer("high", torch.zeros(()))
        self.register_buffer("observed", torch.zeros((), dtype=torch.bool))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.bits == 32:
            return x
        if self.bits == 16:
            return x + (x.to(torch.float16).to(x.dtype) - x).detach()
        if self.training or self.observing:
            self._observe(x.detach())
        if not bool(self.observed):
            return x
        low = torch.clamp(self.low, max=0.0)
        high = torch.clamp(self.high, min=0.0)
        levels = 2**self.bits - 1
        scale = torch.clamp(high - low, min=1e-8) / levels
        zero_point = torch.round(-low / scale)
        q = torch.clamp(torch.round(x / scale) + zero_point, 0, levels)
        return x + ((q - zero_point) * scale - x).detach()

    def _observe(self, x: torch.Tensor) -> None:
        low, high = x.min(), x.max()
        if bool(self.observed):
            low = torch.lerp(self.low, low, self.momentum)
            high = torch.lerp(self.high, high, self.momentum)
        self.low.copy_(low)
        self.high.copy_(high)
        self.observed.fill_(True)

    def extra_repr(self) -> str:
        return f"bits={self.bits}"


def quantize_weights(
    model: CompressibleNet, bits_per_block: Sequence[int]
) -> tuple[CompressibleNet, dict[str, int]]:
    """Fake-quantize each weight layer to its block's bit-width; returns ``{layer: bits}``."""
    done: dict[str, int] = {}
    for name, block in model.weight_layers():
        bits = int(bits_per_block[block])
        _check_bits(bits)
        if bits < 32:
            layer = _weight_layer(model, name)
            parametrize.register_parametrization(layer, "weight", WeightFakeQuant(bits))
        done[name] = bits
    return model, done


def quantize_activations(
    model: CompressibleNet, bits_per_block: Sequence[int]
) -> tuple[CompressibleNet, dict[str, int]]:
    """Put an :class:`ActFakeQuant` of the block's width in every slot below 32 bits."""
    done: dict[str, int] = {}
    for name, block in model.act_quant_slots():
        bits = int(bits_per_block[block])
        _check_bits(bits)
        if bits < 32:
            set_module(model, name, ActFakeQuant(bits))
        done[name] = bits
    return model, done


@torch.no_grad()
def calibrate_activations(model: nn.Module, batches: Iterable[torch.Tensor]) -> int:
    """Feed ``batches`` (eval mode) so every :class:`ActFakeQuant` observes its range.

    Returns the number of batches seen. The model's training flag is restored.
    """
    quants = [m for m in model.modules() if isinstance(m, ActFakeQuant)]
    was_training = model.training
    model.eval()
    for q in quants:
        q.observing = True
    seen = 0
    try:
        for batch in batches:
            model(batch)
            seen += 1
    finally:
        for q in quants:
            q.observing = False
        model.train(was_training)
    return seen
