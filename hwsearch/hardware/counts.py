"""Analytic counts of a model: parameters, non-zero parameters, multiply-accumulates, bytes.

These are ``estimated`` numbers (computed from the model's structure), not measurements.
Float models and eager-mode quantized models (``torch.ao.nn.quantized``, static and
dynamic) are both understood: a quantized layer keeps its weight in packed form, outside
``parameters()``, and is read through its ``weight()`` / ``bias()`` methods. So are weights
that are tensor subclasses (torchao's quantized tensors): they count their logical elements,
their stored bytes are those of the tensors they hold (``qdata``, ``scale``, ...).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import torch
import torch.ao.nn.quantized as nnq
from torch import nn
from torch.utils._python_dispatch import is_traceable_wrapper_subclass

_FLOAT_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_QUANT_CONVS = (nnq.Conv1d, nnq.Conv2d, nnq.Conv3d)
_QUANT_LINEARS = (nnq.Linear,)  # the dynamic quantized Linear derives from it


def count_params(model: nn.Module) -> int:
    """Number of weights and biases, including the packed weights of quantized layers.

    A parameter shared between modules counts once. Buffers (batch-norm statistics, pruning
    masks) are not parameters and do not count.
    """
    return sum(t.numel() for t in _weights(model, effective=False))


def count_nonzero_params(model: nn.Module) -> int:
    """Number of parameters that are not zero.

    Sees the effect of ``torch.nn.utils.prune``: a pruned ``weight`` counts as
    ``weight_orig * weight_mask``. Quantized weights count where their dequantized value is
    non-zero.
    """
    return sum(int(torch.count_nonzero(t).item()) for t in _weights(model, effective=True))


def model_size_bytes(model: nn.Module) -> int:
    """Bytes held by parameters (quantized ones at their stored width) and buffers."""
    total = sum(_stored_bytes(t) for t in _weights(model, effective=False))
    return total + sum(b.numel() * b.element_size() for b in model.buffers())


def count_macs(model: nn.Module, example_input: torch.Tensor) -> int:
    """Multiply-accumulates of one forward pass for a single sample.

    The model runs once (eval mode, no autograd) on ``example_input[:1]``, a batch of one
    whatever the batch size of ``example_input``. Forward hooks on convolutions (1d/2d/3d,
    float or quantized) add ``output elements × in_channels / groups × kernel elements`` and
    on linear layers ``output elements × in_features`` (``out × in`` per row, so a sequence
    input counts each position). Biases, activations, normalisation, pooling, transposed
    convolutions and matmuls outside these layers are not counted; a layer called twice
    counts twice.
    """
    if example_input.dim() == 0:
        raise ValueError("example_input must have a leading batch dimension, got a 0-d tensor")
    total = 0

    def hook(module: nn.Module, _inputs: Any, output: Any) -> None:
        nonlocal total
        if isinstance(output, torch.Tensor):
            total += output.numel() * _macs_per_output(module)

    layers = (*_FLOAT_CONVS, *_QUANT_CONVS, nn.Linear, *_QUANT_LINEARS)
    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, layers)]
    was_training = model.training
    try:
        model.eval()
        with torch.inference_mode():
            model(example_input[:1])
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return total


def _macs_per_output(module: nn.Module) -> int:
    layer: Any = module  # float and quantized layers share these attribute names
    if isinstance(module, (nn.Linear, *_QUANT_LINEARS)):
        return int(layer.in_features)
    kernel = layer.kernel_size
    kernel_elements = math.prod(kernel) if isinstance(kernel, tuple) else int(kernel)
    return int(layer.in_channels) // int(layer.groups) * kernel_elements


def _stored_bytes(t: torch.Tensor) -> int:
    if is_traceable_wrapper_subclass(t):
        names, _ = t.__tensor_flatten__()
        return sum(_stored_bytes(getattr(t, name)) for name in names)
    return t.numel() * t.element_size()


def _weights(model: nn.Module, *, effective: bool) -> Iterator[torch.Tensor]:
    """Every parameter once; with ``effective``, pruned weights with their mask applied and
    quantized weights dequantized."""
    seen: set[int] = set()
    for module in model.modules():
        for name, param in module.named_parameters(recurse=False):
            if id(param) in seen:
                continue
            seen.add(id(param))
            tensor: torch.Tensor = param
            if is_traceable_wrapper_subclass(param):
                # a quantized tensor subclass: detach() is refused under inference mode
                wrapped: Any = param
                yield wrapped.dequantize() if effective else param
                continue
            mask = getattr(module, name.removesuffix("_orig") + "_mask", None)
            if effective and name.endswith("_orig") and isinstance(mask, torch.Tensor):
                # computed here: the pruned attribute itself is only refreshed by forward()
                tensor = param * mask
            yield tensor.detach()
        if isinstance(module, nnq.modules.utils.WeightedQuantizedModule):
            quantized: Any = module  # weight() and bias() are methods here, not tensors
            for packed in (quantized.weight(), quantized.bias()):
                if isinstance(packed, torch.Tensor):
                    yield packed.dequantize() if effective and packed.is_quantized else packed
