"""Compression of any ``nn.Module`` by per-layer rules (see :mod:`.rules`).

Order, in place on the model: dependency-aware channel pruning (torch-pruning), then sparsity
masks (unstructured magnitude or ``N:M``), then weight fake-quantization, then activation
fake-quantization. Masks and weight fake-quantization are the parametrizations of
:mod:`hwsearch.models.compression`, so they hold during fine-tuning; activation
fake-quantization is an :class:`~hwsearch.models.compression.ActFakeQuant` child
(``act_quant``) applied to the layer's input by a forward pre-hook, and
:func:`~hwsearch.models.compression.calibrate_activations` observes its range.
:func:`bake` folds everything into a plain float model.

Channel pruning builds torch-pruning's ``DependencyGraph`` from one forward pass, so layers
tied by residual additions, concatenations, grouped and depthwise convolutions (and their
norms) lose the same channels, and the layers really shrink. A group of tied layers is pruned
only when every layer whose output channels it removes has a channel rule (a layer without one
stays whole, and so does everything tied to it); tied layers share the ratio of the group's
first layer with a rule (give them the same ratio for a predictable result). Channels are
ranked by the L1 norm over the whole group. A rule that would change the model's output
shape is refused.
"""

from __future__ import annotations

import copy
import re
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import torch
from torch import nn
from torch.nn.utils import parametrize

from hwsearch.errors import SpecError
from hwsearch.models.compression import (
    ActFakeQuant,
    WeightFakeQuant,
    WeightMask,
    fake_quantize_weight,
    magnitude_mask,
    nm_mask,
)
from hwsearch.models.custom.rules import NORMS, WEIGHT_LAYERS, LayerRule

ACT_QUANT = "act_quant"  # name of the activation fake-quant child of a layer


@dataclass
class CompressReport:
    """What :func:`compress` did, per layer name."""

    rules: dict[str, LayerRule] = field(default_factory=dict)
    # (before, after) output channels of every layer whose shape changed, tied ones included
    pruned_out: dict[str, tuple[int, int]] = field(default_factory=dict)
    pruned_in: dict[str, tuple[int, int]] = field(default_factory=dict)
    # indices of the removed output channels (of the layer as it was), for checks and replay
    removed_out: dict[str, list[int]] = field(default_factory=dict)
    # layers whose channel rule removed nothing: tied to a layer without one, or no group
    # torch-pruning could shrink safely (e.g. a reshape by a fixed head size)
    unpruned: list[str] = field(default_factory=list)
    layer_sparsity: dict[str, float] = field(default_factory=dict)  # masked layers only
    weight_bits: dict[str, int] = field(default_factory=dict)
    act_bits: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (for the candidate's stored details)."""
        return {
            "rules": {k: v.as_dict() for k, v in self.rules.items()},
            "pruned_out": {k: list(v) for k, v in self.pruned_out.items()},
            "pruned_in": {k: list(v) for k, v in self.pruned_in.items()},
            "unpruned": list(self.unpruned),
            "layer_sparsity": dict(self.layer_sparsity),
            "weight_bits": dict(self.weight_bits),
            "act_bits": dict(self.act_bits),
        }


def _output_shapes(out: Any) -> Any:
    if isinstance(out, torch.Tensor):
        return tuple(out.shape)
    if isinstance(out, Mapping):
        return {k: _output_shapes(v) for k, v in out.items()}
    if isinstance(out, list | tuple):
        return [_output_shapes(v) for v in out]
    return type(out).__name__


def traced_output(out: Any) -> torch.Tensor:
    """The tensor torch-pruning traces back from when a model returns more than one: a
    mapping's ``logits`` (Hugging Face ``ModelOutput``) or its first tensor, a sequence's
    first tensor."""
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, Mapping):
        if isinstance(out.get("logits"), torch.Tensor):
            return cast(torch.Tensor, out["logits"])
        values: list[Any] = list(out.values())
    elif isinstance(out, list | tuple):
        values = list(out)
    else:
        raise TypeError(f"the model returned a {type(out).__name__}, not tensors")
    for value in values:
        try:
            return traced_output(value)
        except TypeError:
            continue
    raise TypeError("the model's output holds no tensor")


def _forward(model: nn.Module, example: torch.Tensor) -> Any:
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            return model(example)
    finally:
        model.train(was_training)


def prune_channels(
    model: nn.Module,
    ratios: Mapping[str, float],
    example: torch.Tensor,
    *,
    output_transform: Callable[[Any], torch.Tensor] | None = None,
) -> tuple[dict[str, tuple[int, int]], dict[str, tuple[int, int]], dict[str, list[int]]]:
    """Remove a share of output channels of the named layers and all layers tied to them.

    ``ratios`` maps Linear / Conv names to the share of channels to remove. Returns
    ``(pruned_out, pruned_in, removed_out)`` as in :class:`CompressReport`. Raises
    :class:`SpecError` (field ``layers[<name>]``) when pruning would change the output shape.
    """
    import torch_pruning as tp

    if not ratios:
        return {}, {}, {}
    names = {module: name for name, module in model.named_modules()}
    by_name = dict(model.named_modules())
    before_shapes = {n: shape for n, m in by_name.items() if (shape := _shape(m)) is not None}
    reference = _output_shapes(_forward(model, example))
    ignored = [m for n, m in by_name.items() if isinstance(m, WEIGHT_LAYERS) and n not in ratios]
    ratio_dict: dict[nn.Module | tuple[nn.Module, ...], float] = {
        by_name[n]: float(r) for n, r in ratios.items()
    }
    was_training = model.training
    model.eval()
    removed_out: dict[str, list[int]] = {}
    first = next(iter(ratios))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pruner = tp.pruner.BasePruner(
                model,
                example,
                importance=tp.importance.GroupMagnitudeImportance(p=1),
                pruning_ratio=0.0,
                pruning_ratio_dict=ratio_dict,
                ignored_layers=ignored,
                output_transform=output_transform or traced_output,
            )
            for group in pruner.step(interactive=True):
                for dep, idxs in group:
                    target = dep.target.module
                    if pruner.DG.is_out_channel_pruning_fn(dep.handler) and target in names:
                        removed_out.setdefault(names[target], []).extend(int(i) for i in idxs)
                group.prune()
        after = _output_shapes(_forward(model, example))
    except Exception as exc:
        culprit = next((n for n in ratios if n in removed_out), first)
        raise SpecError(
            f"layers[{culprit}].sparsity_pattern",
            f"channel pruning failed on this model ({type(exc).__name__}: {exc}); leave the "
            "layers involved (e.g. attention projections of a hand-written attention that "
            "reshapes by a fixed head size) without a channel rule",
        ) from exc
    finally:
        model.train(was_training)
    if after != reference:
        culprit = next((n for n in ratios if n in removed_out), first)
        raise SpecError(
            f"layers[{culprit}].sparsity_pattern",
            f"channel pruning would change the model's output from {reference} to {after}; "
            "leave the output layer (and what is tied to it) without a channel rule",
        )
    pruned_out: dict[str, tuple[int, int]] = {}
    pruned_in: dict[str, tuple[int, int]] = {}
    for name, (out_before, in_before) in before_shapes.items():
        now = _shape(by_name[name])
        assert now is not None
        if now[0] != out_before:
            pruned_out[name] = (out_before, now[0])
        if now[1] != in_before:
            pruned_in[name] = (in_before, now[1])
    return pruned_out, pruned_in, {k: sorted(set(v)) for k, v in removed_out.items()}


def _shape(layer: nn.Module) -> tuple[int, int] | None:
    """``(output, input)`` channels of a layer pruning may shrink, or None for others."""
    if isinstance(layer, nn.Linear):
        return layer.out_features, layer.in_features
    if isinstance(layer, nn.Conv1d | nn.Conv2d):
        return layer.out_channels, layer.in_channels
    if isinstance(layer, nn.MultiheadAttention):
        return layer.embed_dim, layer.embed_dim
    if isinstance(layer, NORMS):
        weight = getattr(layer, "weight", None)
        if isinstance(weight, torch.Tensor):
            return int(weight.shape[0]), int(weight.shape[0])
        n = getattr(layer, "num_features", None) or getattr(layer, "num_channels", None)
        if isinstance(n, int):
            return n, n
    return None


def _quantize_1d_safe(bits: int) -> nn.Module:
    return _PerTensorFakeQuant(bits)


class _PerTensorFakeQuant(nn.Module):
    """Fake quantization of a 1-D weight (a norm's scale): one scale for the whole tensor."""

    def __init__(self, bits: int) -> None:
        super().__init__()
        self.bits = bits

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return fake_quantize_weight(weight.reshape(1, -1), self.bits).reshape(weight.shape)


def _act_quant_hook(module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...]:
    quant = getattr(module, ACT_QUANT, None)
    if quant is None or not args or not isinstance(args[0], torch.Tensor):
        return args
    return (quant(args[0]), *args[1:])


def compress(
    model: nn.Module,
    rules: Mapping[str, LayerRule],
    example: torch.Tensor,
    *,
    output_transform: Callable[[Any], torch.Tensor] | None = None,
) -> CompressReport:
    """Apply ``rules`` (from :func:`~.rules.resolve_rules`) to ``model`` in place.

    ``example`` is one input batch (for the dependency graph of channel pruning);
    ``output_transform`` turns a model output that is not a tensor (a dict, a
    ``ModelOutput``) into the tensor torch-pruning traces back from. Activation ranges still
    need observing: calibrate or fine-tune.
    """
    report = CompressReport(rules=dict(rules))
    by_name = dict(model.named_modules())
    missing = sorted(set(rules) - set(by_name))
    if missing:
        raise SpecError(f"layers[{missing[0]}]", "no module of that name in the model")
    channel = {n: r.sparsity for n, r in rules.items() if r.pattern == "channel"}
    for name in channel:
        _refuse_inside_attention(model, name)
    if channel:
        report.pruned_out, report.pruned_in, report.removed_out = prune_channels(
            model, channel, example, output_transform=output_transform
        )
        report.unpruned = [n for n in channel if n not in report.pruned_out]
    for name, rule in rules.items():
        layer = by_name[name]
        if parametrize.is_parametrized(layer, "weight"):
            raise SpecError(f"layers[{name}]", "the layer's weight is already parametrized")
        weight = getattr(layer, "weight", None)
        if rule.pattern not in ("none", "channel") and isinstance(weight, torch.Tensor):
            nm = rule.nm
            mask = magnitude_mask(weight, rule.sparsity) if nm is None else nm_mask(weight, *nm)
            parametrize.register_parametrization(layer, "weight", WeightMask(mask, rule.pattern))
            report.layer_sparsity[name] = 1.0 - float(mask.mean())
        if rule.weight_bits < 32 and isinstance(weight, torch.Tensor):
            quant = (
                _quantize_1d_safe(rule.weight_bits)
                if weight.dim() == 1
                else WeightFakeQuant(rule.weight_bits)
            )
            parametrize.register_parametrization(layer, "weight", quant)
        report.weight_bits[name] = rule.weight_bits
        if rule.act_bits < 32 and isinstance(layer, WEIGHT_LAYERS):
            layer.add_module(ACT_QUANT, ActFakeQuant(rule.act_bits))
            layer.register_forward_pre_hook(_act_quant_hook)
        report.act_bits[name] = rule.act_bits
    return report


_ATTENTION = re.compile(r"atten|attn", re.IGNORECASE)


def _refuse_inside_attention(model: nn.Module, name: str) -> None:
    """Channel rules on the projections of an attention module other than torch's
    ``nn.MultiheadAttention`` are refused: such modules reshape by head sizes held in their
    own attributes, which pruning cannot update, and torch-pruning's grouping through rotary
    embeddings and grouped-query attention can run for hours."""
    parts = name.split(".")
    for i in range(len(parts) - 1, 0, -1):
        parent = model.get_submodule(".".join(parts[:i]))
        if isinstance(parent, nn.MultiheadAttention):
            return
        if _ATTENTION.search(type(parent).__name__):
            raise SpecError(
                f"layers[{name}].sparsity_pattern",
                f"channel pruning inside the attention module {'.'.join(parts[:i])} "
                f"({type(parent).__name__}) is not supported (only torch.nn.MultiheadAttention "
                "is); prune the MLP layers, or give the attention another pattern",
            )


def _unparametrized(layer: nn.Module) -> nn.Module:
    """A plain instance of ``layer``'s own class holding its parametrized tensors' values.

    ``torch.nn.utils.parametrize.remove_parametrizations`` would edit the injected class,
    which a deep copy shares with the original; this builds a new object instead.
    """
    cls: type[nn.Module] = type(layer).__bases__[0]  # parametrize injects a subclass
    new = object.__new__(cls)
    state = {k: copy.copy(v) if isinstance(v, dict) else v for k, v in layer.__dict__.items()}
    new.__dict__.update(state)
    plist = cast(nn.ModuleDict, state["_modules"].pop("parametrizations"))
    for tensor_name in plist:
        value = getattr(layer, tensor_name).detach().clone()
        new._parameters[tensor_name] = nn.Parameter(value, requires_grad=True)
    return new


def _set_module(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, module)


def bake(model: nn.Module) -> nn.Module:
    """A plain float copy of a compressed model: masks and quantized weight values folded
    into its weights, activation fake-quantization removed. ``model`` is left as it was."""
    baked = copy.deepcopy(model)
    for name, module in list(baked.named_modules()):
        if parametrize.is_parametrized(module):
            plain = _unparametrized(module)
            if name:
                _set_module(baked, name, plain)
            else:
                baked = plain
    for module in baked.modules():
        if isinstance(getattr(module, ACT_QUANT, None), ActFakeQuant):
            del module._modules[ACT_QUANT]
            for key, hook in list(module._forward_pre_hooks.items()):
                if hook is _act_quant_hook:
                    del module._forward_pre_hooks[key]
    return baked
