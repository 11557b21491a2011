"""Kernels for quantized and sparse layers: Triton on CUDA, PyTorch elsewhere.

* :mod:`~hwsearch.hardware.kernels.formats` — packed weight formats (int8, group-wise int4,
  block-sparse) and PyTorch reference matmuls;
* ``int8_matmul``, ``int4_matmul``, ``block_sparse_matmul`` — the Triton kernels (compiled
  for CUDA tensors, or ``interpret=True`` for CPU tensors in Triton's interpreter); Triton
  is imported only when one of them is first used, and a missing Triton is an
  ``ImportError`` that says what to install;
* :mod:`~hwsearch.hardware.kernels.dispatch` — ``QuantizedLinear`` / ``BlockSparseLinear``
  layers that pick a kernel path by device and record it.
"""

from __future__ import annotations

from typing import Any

from hwsearch.hardware.kernels.dispatch import (
    BlockSparseLinear,
    QuantizedLinear,
    kernel_paths,
    select_path,
    triton_available,
)
from hwsearch.hardware.kernels.formats import (
    BlockSparseWeight,
    Int4Weight,
    Int8Weight,
    block_mask,
    block_sparse_matmul_reference,
    dense_from_block_sparse,
    dequantize_int4,
    dequantize_int8,
    int4_matmul_reference,
    int8_matmul_reference,
    magnitude_block_mask,
    quantize_int4,
    quantize_int8,
    to_block_sparse,
)

_TRITON_FUNCTIONS = ("int8_matmul", "int4_matmul", "block_sparse_matmul")


def __getattr__(name: str) -> Any:
    if name in _TRITON_FUNCTIONS:
        try:
            from hwsearch.hardware.kernels import _triton
        except ImportError as exc:
            raise ImportError(
                f"{name} needs Triton, which is not installed here: pip install triton ({exc})"
            ) from exc
        return getattr(_triton, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "BlockSparseLinear",
    "BlockSparseWeight",
    "Int4Weight",
    "Int8Weight",
    "QuantizedLinear",
    "block_mask",
    "block_sparse_matmul",
    "block_sparse_matmul_reference",
    "dense_from_block_sparse",
    "dequantize_int4",
    "dequantize_int8",
    "int4_matmul",
    "int4_matmul_reference",
    "int8_matmul",
    "int8_matmul_reference",
    "kernel_paths",
    "magnitude_block_mask",
    "quantize_int4",
    "quantize_int8",
    "select_path",
    "to_block_sparse",
    "triton_available",
]
