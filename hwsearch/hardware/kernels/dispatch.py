"""Layers that run quantized or block-sparse weights through the best kernel of their device.

:class:`QuantizedLinear` (weight-only int8 or group-wise int4) and
:class:`BlockSparseLinear` replace ``nn.Linear`` layers when a candidate is materialised.
Each forward pass picks a path by the device of its input (:func:`select_path`) and records
it in ``path``:

==========================  ==================================================================
path                        when
==========================  ==================================================================
``triton-int8``             CUDA tensor, Triton importable
``triton-int4``             CUDA tensor, Triton importable, group size a multiple of 32
``triton-block-sparse``     CUDA tensor, Triton importable, tile a power of two >= 16
``aten-int8-weight-only``   CPU: PyTorch's ``_weight_int8pack_mm`` (fp32 activations)
``aten-int4-weight-only``   CPU: PyTorch's ``_weight_int4pack_mm_for_cpu`` (groups of 32-256,
                            N a multiple of 16; else ``torch-dequant``)
``torch-dequant``           any other case of a quantized layer: dequantise, then matmul
``dense-masked``            block-sparse weight on a device without the kernel: dense matmul
==========================  ==================================================================

The Triton kernels run only on CUDA devices; on a CPU the PyTorch paths run (the kernels
are tested there in Triton's interpreter instead).
"""

from __future__ import annotations

import functools
import importlib.util
from typing import Literal

import torch
from torch import nn

from hwsearch.hardware.kernels.formats import (
    BlockSparseWeight,
    Int4Weight,
    Int8Weight,
    dense_from_block_sparse,
    dequantize_int4,
    dequantize_int8,
    quantize_int4,
    quantize_int8,
    to_block_sparse,
)

LayerKind = Literal["int8", "int4", "block-sparse"]


@functools.cache
def triton_available() -> bool:
    """Whether the ``triton`` package can be imported here."""
    return importlib.util.find_spec("triton") is not None


def select_path(
    kind: LayerKind,
    device: torch.device,
    *,
    group_size: int = 32,
    block: int = 32,
    has_triton: bool | None = None,
) -> str:
    """The path a layer of ``kind`` takes on ``device`` (see the module docstring)."""
    triton_ok = triton_available() if has_triton is None else has_triton
    if device.type == "cuda" and triton_ok:
        if kind == "int8":
            return "triton-int8"
        if kind == "int4" and group_size % 32 == 0:
            return "triton-int4"
        if kind == "block-sparse" and block >= 16 and not block & (block - 1):
            return "triton-block-sparse"
    if device.type == "cpu" and kind == "int8":
        return "aten-int8-weight-only"
    if device.type == "cpu" and kind == "int4" and group_size in (32, 64, 128, 256):
        return "aten-int4-weight-only"
    return "dense-masked" if kind == "block-sparse" else "torch-dequant"


def _flatten(x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, ...]]:
    lead = tuple(x.shape[:-1])
    return x.reshape(-1, x.shape[-1]), lead


class QuantizedLinear(nn.Module):
    """A linear layer with weight-only int8 (per channel) or int4 (group-wise) weights."""

    path: str

    def __init__(self, linear: nn.Linear, bits: int, *, group_size: int = 32) -> None:
        super().__init__()
        if bits not in (4, 8):
            raise ValueError(f"bits must be 4 or 8, got {bits!r}")
        self.bits = bits
        self.group_size = group_size
        self.in_features = linear.in_features
        self.out_features = linear.out_features
        self.weight_format: Int8Weight | Int4Weight = (
            quantize_int8(linear.weight) if bits == 8 else quantize_int4(linear.weight, group_size)
        )
        self.bias = None if linear.bias is None else nn.Parameter(linear.bias.detach().clone())
        self.path = "unused"
        self._aten_int4: tuple[torch.Tensor, torch.Tensor] | None = None
        self._aten_int8: torch.Tensor | None = None
        self._dequantized: torch.Tensor | None = None

    @property
    def kind(self) -> LayerKind:
        return "int8" if self.bits == 8 else "int4"

    def weight_bytes(self) -> int:
        return self.weight_format.nbytes()

    def _apply(self, fn, recurse: bool = True):  # type: ignore[no-untyped-def]
        # Moving the layer moves its packed weight and drops the caches of the old device.
        super()._apply(fn, recurse)
        fmt = self.weight_format
        if isinstance(fmt, Int8Weight):
            self.weight_format = Int8Weight(q=fn(fmt.q), scale=fn(fmt.scale))
        else:
            self.weight_format = Int4Weight(
                packed=fn(fmt.packed), scales=fn(fmt.scales), group_size=fmt.group_size
            )
        self._aten_int4 = self._aten_int8 = self._dequantized = None
        return self

    def dequantized(self) -> torch.Tensor:
        """The float ``(N, K)`` weight the quantized one stands for."""
        fmt = self.weight_format
        return dequantize_int8(fmt) if isinstance(fmt, Int8Weight) else dequantize_int4(fmt)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat, lead = _flatten(x)
        path = select_path(self.kind, flat.device, group_size=self.group_size)
        y = self._run(flat, path)
        if self.bias is not None:
            y = y + self.bias.to(y.dtype)
        return y.reshape(*lead, self.out_features)

    def _run(self, x: torch.Tensor, path: str) -> torch.Tensor:
        fmt = self.weight_format
        if path.startswith("triton"):
            from hwsearch.hardware.kernels import _triton

            self.path = path
            if isinstance(fmt, Int8Weight):
                return _triton.int8_matmul(x.contiguous(), fmt)
            return _triton.int4_matmul(x.contiguous(), fmt)
        if path == "aten-int8-weight-only" and x.dtype == torch.float32:
            try:
                y = self._aten_int8_mm(x)
            except RuntimeError:
                pass
            else:
                self.path = path
                return y
        if path == "aten-int4-weight-only" and x.dtype in (torch.float32, torch.bfloat16):
            try:
                y = self._aten_int4_mm(x)
            except RuntimeError:
                pass
            else:
                self.path = path
                return y
        self.path = "torch-dequant"
        if self._dequantized is None:
            self._dequantized = self.dequantized()
        return x @ self._dequantized.to(x.dtype).t()

    def _aten_int8_mm(self, x: torch.Tensor) -> torch.Tensor:
        fmt = self.weight_format
        assert isinstance(fmt, Int8Weight)
        if self._aten_int8 is None:
            self._aten_int8 = fmt.q.t().contiguous()  # (N, K) int8
        return torch.ops.aten._weight_int8pack_mm(x.contiguous(), self._aten_int8, fmt.scale)

    def _aten_int4_mm(self, x: torch.Tensor) -> torch.Tensor:
        fmt = self.weight_format
        assert isinstance(fmt, Int4Weight)
        if self._aten_int4 is None:
            from hwsearch.hardware.kernels.formats import unpack_int4

            unsigned = (unpack_int4(fmt).to(torch.int32) + 8).t().contiguous()  # (N, K)
            packed = torch.ops.aten._convert_weight_to_int4pack_for_cpu(unsigned, 1)
            # PyTorch's layout: w = (u - 8) * scale + zero; symmetric weights have zero 0.
            scales = fmt.scales.to(x.dtype)
            zeros_and_scales = torch.stack([scales, torch.zeros_like(scales)], dim=2)
            self._aten_int4 = (packed, zeros_and_scales.contiguous())
        packed, scales_and_zeros = self._aten_int4
        return torch.ops.aten._weight_int4pack_mm_for_cpu(
            x.contiguous(), packed, self.group_size, scales_and_zeros.to(x.dtype)
        )


class BlockSparseLinear(nn.Module):
    """A linear layer whose weight keeps only some ``block × block`` tiles."""

    path: str

    def __init__(self, linear: nn.Linear, *, block: int = 32) -> None:
        super().__init__()
        self.block = block
        self.in_features = linear.in_features
        self.out_features = linear.out_features
        self.weight_format = to_block_sparse(linear.weight, block)
        self.register_buffer("dense_weight", dense_from_block_sparse(self.weight_format))
        self.bias = None if linear.bias is None else nn.Parameter(linear.bias.detach().clone())
        self.path = "unused"

    dense_weight: torch.Tensor

    def _apply(self, fn, recurse: bool = True):  # type: ignore[no-untyped-def]
        super()._apply(fn, recurse)
        fmt = self.weight_format
        self.weight_format = BlockSparseWeight(
            blocks=fn(fmt.blocks),
            k_blocks=fmt.k_blocks.to(self.dense_weight.device),
            col_ptr=fmt.col_ptr.to(self.dense_weight.device),
            block=fmt.block,
            n=fmt.n,
            k=fmt.k,
        )
        return self

    @property
    def density(self) -> float:
        return self.weight_format.density

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat, lead = _flatten(x)
        path = select_path("block-sparse", flat.device, block=self.block)
        self.path = path
        if path == "triton-block-sparse":
            from hwsearch.hardware.kernels import _triton

            y = _triton.block_sparse_matmul(flat.contiguous(), self.weight_format)
        else:
            y = flat @ self.dense_weight.to(flat.dtype).t()
        if self.bias is not None:
            y = y + self.bias.to(y.dtype)
        return y.reshape(*lead, self.out_features)


def kernel_paths(model: nn.Module) -> dict[str, str]:
    """The path each quantized or block-sparse layer of ``model`` took in its last forward."""
    return {
        name: module.path
        for name, module in model.named_modules()
        if isinstance(module, QuantizedLinear | BlockSparseLinear)
    }


__all__ = [
    "BlockSparseLinear",
    "QuantizedLinear",
    "kernel_paths",
    "select_path",
    "triton_available",
]
