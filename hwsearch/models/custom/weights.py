"""A compressed candidate's weights as bytes, and back onto a freshly built model.

The payload holds the baked model's state dict (:func:`~.compress.bake`: masks and quantized
values folded in) with the shape attributes of its layers (``in_features``, ``out_channels``,
``groups``, ``num_features``, ...), which record the shapes channel pruning left, so
``build(config)`` followed by :func:`load_weights` gives the candidate back without pruning
or training again; and the observed activation ranges of every fake-quantized layer input.
The bytes go to :class:`hwsearch.artifacts.ArtifactStore`.
"""

from __future__ import annotations

import io
from typing import Any

import torch
from torch import nn

from hwsearch.models.compression import ActFakeQuant
from hwsearch.models.custom.compress import ACT_QUANT, _act_quant_hook, bake

FORMAT = "hwsearch-custom-weights/1"
SHAPE_ATTRS = (
    "in_features",
    "out_features",
    "in_channels",
    "out_channels",
    "groups",
    "num_features",
    "normalized_shape",
    "num_channels",
    "num_embeddings",
    "embedding_dim",
    "embed_dim",
    "kdim",
    "vdim",
    "num_heads",
    "head_dim",
)


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def dump_weights(model: nn.Module) -> bytes:
    """Serialise a compressed model (parametrized or baked) to bytes."""
    ranges: dict[str, dict[str, Any]] = {}
    for name, module in model.named_modules():
        quant = getattr(module, ACT_QUANT, None)
        if isinstance(quant, ActFakeQuant):
            ranges[name] = {
                "bits": quant.bits,
                "low": float(quant.low),
                "high": float(quant.high),
                "observed": bool(quant.observed),
            }
    baked = bake(model)
    shapes = {
        name: {a: _plain(getattr(m, a)) for a in SHAPE_ATTRS if hasattr(m, a)}
        for name, m in baked.named_modules()
    }
    payload = {
        "format": FORMAT,
        "state": baked.state_dict(),
        "shapes": {k: v for k, v in shapes.items() if v},
        "act_ranges": ranges,
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return buffer.getvalue()


def load_weights(model: nn.Module, data: bytes) -> nn.Module:
    """Load :func:`dump_weights` bytes into ``model`` (as ``build(config)`` returned it).

    Shapes follow the stored ones (channel pruning); activation fake-quantization is put back
    with its stored ranges, so outputs equal those of the compressed model that was stored.
    """
    payload = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"not a {FORMAT} payload")
    state: dict[str, torch.Tensor] = payload["state"]
    for key, value in state.items():
        path, _, tensor_name = key.rpartition(".")
        module = model.get_submodule(path)
        if tensor_name in module._parameters:
            old = module._parameters[tensor_name]
            grad = True if old is None else old.requires_grad
            module._parameters[tensor_name] = nn.Parameter(value.clone(), requires_grad=grad)
        elif tensor_name in module._buffers:
            module._buffers[tensor_name] = value.clone()
    for name, attrs in payload["shapes"].items():
        module = model.get_submodule(name)
        for attr, value in attrs.items():
            setattr(module, attr, tuple(value) if isinstance(value, list) else value)
    model.load_state_dict(state, strict=True)  # every tensor present, none left over
    for name, spec in payload["act_ranges"].items():
        layer = model.get_submodule(name)
        quant = ActFakeQuant(int(spec["bits"]))
        quant.low.fill_(spec["low"])
        quant.high.fill_(spec["high"])
        quant.observed.fill_(bool(spec["observed"]))
        layer.add_module(ACT_QUANT, quant)
        layer.register_forward_pre_hook(_act_quant_hook)
    return model
