"""Per-layer analytic counts of a built (compressed) model, and a predictor feature vector.

Counts are ``estimated`` numbers from the model's structure and one forward pass at batch 1:

- MACs per Linear / Conv (as :func:`hwsearch.hardware.count_macs` counts them: channel-pruned
  layers at their pruned size, masked zeros still counted since dense kernels multiply them);
- parameters and non-zero parameters (weights zeroed by a sparsity mask do not count);
- weight bytes at the layer's bit-width and storage format
  (:func:`hwsearch.models.compression.layer_weight_bits`: bitmap for unstructured masks,
  index bits for N:M);
- the input activation of each layer in bytes at its ``act_bits``;
- layer counts per type (``linear``, ``conv1d``, ``conv2d``, ``depthwise``, ``grouped``).

:func:`feature_vector` turns them into named columns shaped like
:mod:`hwsearch.predictors.analytic` (``log_macs``, ``log_params``, ``log_weight_bytes``,
``macs_share_w8``, ...), the same names for every model, so active learning and the transfer
predictors can use user models.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, cast

import torch
from torch import nn

from hwsearch.models.compression import (
    BIT_CHOICES,
    WeightMask,
    find_parametrization,
    layer_weight_bits,
)
from hwsearch.models.custom.compress import ACT_QUANT
from hwsearch.models.custom.rules import NORMS, WEIGHT_LAYERS

LAYER_TYPES = ("linear", "conv1d", "conv2d", "depthwise", "grouped", "embedding", "norm")


@dataclass(frozen=True)
class LayerCount:
    """Counts of one Linear / Conv layer."""

    name: str
    kind: str  # one of LAYER_TYPES
    macs: int
    params: int
    nonzero_params: int
    weight_bytes: float
    act_bytes: float  # the layer's input at its activation bit-width
    weight_bits: int
    act_bits: int


def layer_kind(module: nn.Module) -> str:
    """The type name a layer counts under (see :data:`LAYER_TYPES`)."""
    if isinstance(module, nn.Linear):
        return "linear"
    if isinstance(module, nn.Conv1d | nn.Conv2d):
        if module.groups > 1:
            return "depthwise" if module.groups == module.in_channels else "grouped"
        return "conv1d" if isinstance(module, nn.Conv1d) else "conv2d"
    if isinstance(module, nn.Embedding):
        return "embedding"
    return "norm"


def _bits_of(module: nn.Module) -> int:
    from hwsearch.models.compression import WeightFakeQuant

    quant = find_parametrization(module, WeightFakeQuant)
    return 32 if quant is None else int(quant.bits)


def _act_bits_of(module: nn.Module) -> int:
    quant = getattr(module, ACT_QUANT, None)
    return 32 if quant is None else int(quant.bits)


def layer_counts(model: nn.Module, example: torch.Tensor) -> list[LayerCount]:
    """Counts of every Linear / Conv layer that ran in one forward pass of ``example[:1]``.

    A layer called twice counts twice (its MACs and activations), its parameters once.
    """
    inputs: dict[str, list[tuple[int, int]]] = {}
    names = {m: n for n, m in model.named_modules()}

    def hook(module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
        if isinstance(output, torch.Tensor) and args and isinstance(args[0], torch.Tensor):
            inputs.setdefault(names[module], []).append((args[0].numel(), output.numel()))

    handles = [
        m.register_forward_hook(hook) for m in model.modules() if isinstance(m, WEIGHT_LAYERS)
    ]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(example[:1])
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    rows: list[LayerCount] = []
    for name, module in model.named_modules():
        if not isinstance(module, WEIGHT_LAYERS) or name not in inputs:
            continue
        layer = cast(Any, module)
        if isinstance(module, nn.Linear):
            per_out = module.in_features
        else:
            per_out = layer.in_channels // layer.groups * math.prod(layer.kernel_size)
        calls = inputs[name]
        bias = 0 if layer.bias is None else int(layer.bias.numel())
        numel = int(layer.weight.numel())
        mask = find_parametrization(module, WeightMask)
        kept = numel if mask is None else int(mask.mask.count_nonzero())
        act_bits = _act_bits_of(module)
        rows.append(
            LayerCount(
                name=name,
                kind=layer_kind(module),
                macs=sum(out * per_out for _, out in calls),
                params=numel + bias,
                nonzero_params=kept + bias,
                weight_bytes=(layer_weight_bits(layer) + bias * 32) / 8,
                act_bytes=sum(inp for inp, _ in calls) * act_bits / 8,
                weight_bits=_bits_of(module),
                act_bits=act_bits,
            )
        )
    return rows


def _other_params(model: nn.Module) -> tuple[int, int]:
    """Parameters outside Linear / Conv layers (norms, embeddings, free tensors) and their
    count of embedding layers and norms, for the totals."""
    counted = {
        id(p) for m in model.modules() if isinstance(m, WEIGHT_LAYERS) for p in m.parameters()
    }
    extra = 0
    seen: set[int] = set()
    for p in model.parameters():
        if id(p) not in counted and id(p) not in seen:
            seen.add(id(p))
            extra += p.numel()
    return extra, len(seen)


def feature_vector(model: nn.Module, rows: list[LayerCount]) -> dict[str, float]:
    """Named features of the whole model from :func:`layer_counts` rows (fixed names)."""
    macs = sum(r.macs for r in rows)
    weights = sum(r.params for r in rows)
    extra, _ = _other_params(model)
    kept = sum(r.nonzero_params for r in rows)
    acts = [r.act_bytes for r in rows] or [0.0]
    kinds = {k: 0.0 for k in LAYER_TYPES}
    for r in rows:
        kinds[r.kind] += 1
    for m in model.modules():
        if isinstance(m, nn.Embedding):
            kinds["embedding"] += 1
        elif isinstance(m, NORMS):
            kinds["norm"] += 1
    total_macs = max(macs, 1)
    out: dict[str, float] = {
        "log_macs": math.log(max(macs, 1)),
        "log_params": math.log(max(weights + extra, 1)),
        "log_nonzero_params": math.log(max(kept + extra, 1)),
        "log_weight_bytes": math.log(max(sum(r.weight_bytes for r in rows) + extra * 4, 1.0)),
        "log_act_max_bytes": math.log(max(max(acts), 1.0)),
        "log_act_sum_bytes": math.log(max(sum(acts), 1.0)),
        "sparsity": 1.0 - kept / max(weights, 1),
        "mean_weight_bits": sum(r.params * r.weight_bits for r in rows) / max(weights, 1),
        "mean_act_bits": sum(r.macs * r.act_bits for r in rows) / total_macs,
        "layers": float(len(rows)),
    }
    for b in BIT_CHOICES:
        out[f"macs_share_w{b}"] = sum(r.macs for r in rows if r.weight_bits == b) / total_macs
    for b in BIT_CHOICES:
        out[f"macs_share_a{b}"] = sum(r.macs for r in rows if r.act_bits == b) / total_macs
    for k in LAYER_TYPES:
        out[f"count={k}"] = kinds[k]
    for k in LAYER_TYPES[:5]:
        out[f"macs_share={k}"] = sum(r.macs for r in rows if r.kind == k) / total_macs
    return out


def counts_table(rows: list[LayerCount]) -> list[dict[str, Any]]:
    """The rows as JSON-ready dicts (for the candidate's stored details)."""
    return [asdict(r) for r in rows]


@functools.cache
def feature_names() -> tuple[str, ...]:
    """The names :func:`feature_vector` returns, in order."""
    model = nn.Sequential(nn.Linear(1, 1))
    return tuple(feature_vector(model, layer_counts(model, torch.zeros(1, 1))))


def features_of(values: Mapping[str, float]) -> list[float]:
    """The feature vector as a list in :func:`feature_names` order."""
    return [float(values[n]) for n in feature_names()]
