"""Compression applied for real: channel pruning, sparsity masks, simulated quantization, size.

The transforms work on a :class:`CompressibleNet`, a network that names its weight layers, the
block each belongs to, its activation-quantization slots and the channel groups that may be
pruned. Each transform returns the model and what it did.

Order inside :func:`apply_compression`: channel pruning (physically smaller layers) or a
sparsity mask (unstructured or N:M), then weight fake-quantization, then activation
fake-quantization. Masks and weight fake-quantization are ``torch.nn.utils.parametrize``
parametrizations, so they stay in force during fine-tuning; :func:`bake` folds them into plain
dense weights.

Bit-widths: 32 leaves a tensor untouched; 16 is an fp16 round trip (the values an fp16
deployment would hold); 2, 4 and 8 are symmetric integer fake-quantization (weights per output
channel, ``2**(bits-1) - 1`` levels each side of zero) or affine per-tensor fake-quantization
(activations, ``2**bits`` levels). All use a straight-through estimator for the gradient.

This module also holds what every family shares: the compression knobs and the canonical form
of a config (:func:`canonical_config`).
"""

from __future__ import annotations

import abc
import copy
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import torch
from torch import nn
from torch.nn.utils import parametrize

from hwsearch.errors import SpecError
from hwsearch.models.base import Knob

BIT_CHOICES: tuple[int, ...] = (2, 4, 8, 16, 32)
PATTERNS: tuple[str, ...] = ("none", "unstructured", "channel")  # plus any "N:M"
MAX_SPARSITY = 0.95
FLOAT_DIGITS = 6  # floats in a canonical config are rounded to this many decimals

_NM = re.compile(r"^\s*(\d+)\s*:\s*(\d+)\s*$")


# --------------------------------------------------------------------------------------------
# Knobs and canonical configs
# --------------------------------------------------------------------------------------------


def parse_nm(pattern: str) -> tuple[int, int] | None:
    """``(N, M)`` of an ``"N:M"`` pattern, or None if ``pattern`` is not of that form."""
    match = _NM.match(pattern)
    if match is None:
        return None
    return int(match.group(1)), int(match.group(2))


def pattern_problem(value: Any, names: tuple[str, ...] = PATTERNS) -> str | None:
    """Why ``value`` is not one of the pattern ``names`` or an ``N:M`` pattern, or None."""
    if not isinstance(value, str):
        hint = (
            ' (YAML reads an unquoted 2:4 as 124: quote it, "2:4")'
            if isinstance(value, int)
            else ""
        )
        return f"{value!r} is not a string{hint}"
    if value in names:
        return None
    nm = parse_nm(value)
    if nm is None:
        return f"{value!r} is not one of {list(names)} or an 'N:M' pattern such as '2:4'"
    if not 0 < nm[0] < nm[1]:
        return f"{value!r} needs 0 < N < M"
    return None


def compression_knobs() -> dict[str, Knob]:
    """The compression knobs every family has (per-block values: see the family's docs)."""
    return {
        "sparsity": Knob(
            "sparsity",
            "float",
            0.0,
            "share of weights removed (channel) or zeroed (unstructured); fixed by an N:M pattern",
            low=0.0,
            high=MAX_SPARSITY,
        ),
        "sparsity_pattern": Knob(
            "sparsity_pattern",
            "choice",
            "unstructured",
            "'unstructured' (magnitude), 'channel' (structured pruning) or 'N:M' (e.g. '2:4')",
            choices=PATTERNS,
            check=pattern_problem,
        ),
        "weight_bits": Knob(
            "weight_bits",
            "choice",
            32,
            "weight bit-width (per output channel, symmetric; 16 = fp16, 32 = float)",
            choices=BIT_CHOICES,
            per_block=True,
        ),
        "act_bits": Knob(
            "act_bits",
            "choice",
            32,
            "bit-width of the activations entering each layer (per tensor; 16 = fp16)",
            choices=BIT_CHOICES,
            per_block=True,
        ),
    }


def _normalise(knob: Knob, value: Any) -> Any:
    if knob.kind == "int":
        return int(value)
    if knob.kind == "float":
        return round(float(value), FLOAT_DIGITS) + 0.0  # + 0.0 turns -0.0 into 0.0
    if knob.name == "sparsity_pattern":
        nm = parse_nm(value)
        return f"{nm[0]}:{nm[1]}" if nm is not None else value
    if knob.choices is not None and all(isinstance(c, int) for c in knob.choices):
        return int(value)
    return value


def _checked(knob: Knob, value: Any, field_name: str) -> Any:
    problem = knob.problem(value)
    if problem is not None:
        raise SpecError(field_name, problem)
    return _normalise(knob, value)


def canonical_config(
    family: str,
    knobs: Mapping[str, Knob],
    config: Mapping[str, Any],
    num_blocks: Callable[[Mapping[str, Any]], int],
) -> dict[str, Any]:
    """The canonical form of ``config`` for a family with ``knobs``.

    Fills defaults; checks every value (a :class:`SpecError` names the knob); turns per-block
    scalars into lists of ``num_blocks`` values and trims longer lists (a search over a larger
    maximum depth yields them) but rejects shorter ones; makes no-op settings identical: at
    sparsity 0 the pattern is ``"none"`` (whatever was given, so sparsity 0 always means a
    dense model), and at sparsity > 0 an ``N:M`` pattern fixes the sparsity at ``1 - N/M``.
    ``num_blocks`` is called with the checked scalar knobs.
    """
    unknown = sorted(set(config) - set(knobs))
    if unknown:
        raise SpecError(
            unknown[0], f"unknown knob of family {family!r}; valid knobs: {', '.join(knobs)}"
        )
    out: dict[str, Any] = {}
    for name, knob in knobs.items():
        if knob.per_block:
            continue
        value = config.get(name, knob.default)
        if isinstance(value, list | tuple):
            raise SpecError(name, f"takes one value, not a list ({list(value)!r})")
        out[name] = _checked(knob, value, name)
    blocks = num_blocks(out)
    for name, knob in knobs.items():
        if not knob.per_block:
            continue
        value = config.get(name, knob.default)
        if isinstance(value, list | tuple):
            if len(value) < blocks:
                raise SpecError(
                    name, f"has {len(value)} value(s) but the architecture has {blocks} blocks"
                )
            out[name] = [_checked(knob, v, f"{name}[{i}]") for i, v in enumerate(value[:blocks])]
        else:
            out[name] = [_checked(knob, value, name)] * blocks
    if "sparsity" in out:
        _normalise_sparsity(out)
    return {name: out[name] for name in knobs}


def _normalise_sparsity(out: dict[str, Any]) -> None:
    pattern = out["sparsity_pattern"]
    nm = parse_nm(pattern)
    if out["sparsity"] == 0.0:
        out["sparsity_pattern"] = "none"
    elif nm is not None:
        out["sparsity"] = round(1.0 - nm[0] / nm[1], FLOAT_DIGITS)
    elif pattern == "none":
        raise SpecError(
            "sparsity_pattern", f"'none' contradicts sparsity {out['sparsity']}; choose a pattern"
        )


@dataclass(frozen=True)
class CompressionSpec:
    """The compression part of a canonical config, one bit-width per block."""

    sparsity: float = 0.0
    pattern: str = "none"
    weight_bits: tuple[int, ...] = (32,)
    act_bits: tuple[int, ...] = (32,)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> CompressionSpec:
        """Read from a canonical config (see :func:`canonical_config`)."""
        return cls(
            sparsity=float(config["sparsity"]),
            pattern=str(config["sparsity_pattern"]),
            weight_bits=tuple(int(b) for b in config["weight_bits"]),
            act_bits=tuple(int(b) for b in config["act_bits"]),
        )

    @property
    def nm(self) -> tuple[int, int] | None:
        return parse_nm(self.pattern)


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


def _set_module(model: nn.Module, name: str, module: nn.Module) -> None:
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
        new = _conv_like(layer, layer.in_channels, len(keep))
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
        new = _conv_like(layer, len(keep), layer.out_channels)
    with torch.no_grad():
        new.weight.copy_(layer.weight[:, keep])
        if layer.bias is not None and new.bias is not None:
            new.bias.copy_(layer.bias)
    return new


def _conv_like(layer: nn.Conv2d, in_channels: int, out_channels: int) -> nn.Conv2d:
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
        _set_module(model, group.producer, _slice_out(producer, keep))
        if group.norm is not None:
            norm = model.get_submodule(group.norm)
            if not isinstance(norm, nn.BatchNorm2d):
                raise TypeError(f"{group.norm} is a {type(norm).__name__}, not a BatchNorm2d")
            _set_module(model, group.norm, _slice_norm(norm, keep))
        _set_module(model, group.consumer, _slice_in(_weight_layer(model, group.consumer), keep))
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


def _find(layer: nn.Module, kind: type[nn.Module]) -> Any:
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
            _set_module(model, name, ActFakeQuant(bits))
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
            _set_module(baked, name, _plain(module))
    for name, _ in baked.act_quant_slots():
        _set_module(baked, name, nn.Identity())
    return baked


def _plain(layer: nn.Linear | nn.Conv2d) -> nn.Linear | nn.Conv2d:
    new: nn.Linear | nn.Conv2d
    if isinstance(layer, nn.Linear):
        new = nn.Linear(layer.in_features, layer.out_features, bias=layer.bias is not None)
    else:
        new = _conv_like(layer, layer.in_channels, layer.out_channels)
    with torch.no_grad():
        new.weight.copy_(layer.weight)
        if layer.bias is not None and new.bias is not None:
            new.bias.copy_(layer.bias)
    return new.train(layer.training)


# --------------------------------------------------------------------------------------------
# Size and sparsity
# --------------------------------------------------------------------------------------------


def _bits_of(layer: nn.Module) -> int:
    quant = _find(layer, WeightFakeQuant)
    return 32 if quant is None else int(quant.bits)


def layer_weight_bits(layer: nn.Linear | nn.Conv2d) -> int:
    """Storage bits of a weight layer's weights, following :func:`model_size_bytes`."""
    numel = layer.weight.numel()
    bits = _bits_of(layer)
    mask = _find(layer, WeightMask)
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
            mask = _find(module, WeightMask)
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
