"""Triton kernels: weight-only int8 / int4 matmul and block-sparse matmul.

Compiled for CUDA tensors; with ``TRITON_INTERPRET=1`` set before Triton is first imported,
Triton's interpreter runs them on CPU tensors instead, which is how they are tested without
a GPU (Triton fixes the mode for the whole process when it is imported). Weights are
dequantised tile by tile in registers; only the packed bytes are read from memory. Formats:
:mod:`hwsearch.hardware.kernels.formats`.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import triton
import triton.language as tl

from hwsearch.hardware.kernels.formats import BlockSparseWeight, Int4Weight, Int8Weight


@triton.jit
def _int8_kernel(
    x_ptr,
    q_ptr,
    s_ptr,
    y_ptr,
    M,
    N,
    K,
    stride_xm,
    stride_xk,
    stride_qk,
    stride_qn,
    stride_ym,
    stride_yn,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
):
    pid_m = tl.program_id(0)
    pid_n = tl.program_id(1)
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_k = tl.arange(0, BLOCK_K)
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        kk = k0 + offs_k
        x = tl.load(
            x_ptr + offs_m[:, None] * stride_xm + kk[None, :] * stride_xk,
            mask=(offs_m[:, None] < M) & (kk[None, :] < K),
            other=0.0,
        )
        q = tl.load(
            q_ptr + kk[:, None] * stride_qk + offs_n[None, :] * stride_qn,
            mask=(kk[:, None] < K) & (offs_n[None, :] < N),
            other=0,
        )
        acc += tl.dot(x, q.to(x.dtype))
    scale = tl.load(s_ptr + offs_n, mask=offs_n < N, other=0.0)
    acc = acc * scale[None, :]
    tl.store(
        y_ptr + offs_m[:, None] * stride_ym + offs_n[None, :] * stride_yn,
        acc.to(y_ptr.dtype.element_ty),
        mask=(offs_m[:, None] < M) & (offs_n[None, :] < N),
    )


@triton.jit
def _int4_kernel(
    x_ptr,
    p_ptr,
    s_ptr,
    y_ptr,
    M,
    N,
    K,
    stride_xm,
    stride_xk,
    stride_pk,
    stride_pn,
    stride_sg,
    stride_sn,
    stride_ym,
    stride_yn,
    GROUP: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
):
    # BLOCK_K divides GROUP, so one row of scales serves a whole K tile. Even rows of K
    # sit in the low nibbles, odd rows in the high ones: x is read at even and odd columns
    # and each half multiplies its own nibbles, which needs no interleaving in registers.
    pid_m = tl.program_id(0)
    pid_n = tl.program_id(1)
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_h = tl.arange(0, BLOCK_K // 2)
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        rows = k0 // 2 + offs_h
        packed = tl.load(
            p_ptr + rows[:, None] * stride_pk + offs_n[None, :] * stride_pn,
            mask=(rows[:, None] < K // 2) & (offs_n[None, :] < N),
            other=0,
        ).to(tl.int32)
        scale = tl.load(s_ptr + (k0 // GROUP) * stride_sg + offs_n * stride_sn, mask=offs_n < N)
        even = k0 + 2 * offs_h
        x_even = tl.load(
            x_ptr + offs_m[:, None] * stride_xm + even[None, :] * stride_xk,
            mask=(offs_m[:, None] < M) & (even[None, :] < K),
            other=0.0,
        )
        x_odd = tl.load(
            x_ptr + offs_m[:, None] * stride_xm + (even[None, :] + 1) * stride_xk,
            mask=(offs_m[:, None] < M) & (even[None, :] + 1 < K),
            other=0.0,
        )
        low = ((packed & 15) - 8).to(tl.float32) * scale[None, :]
        high = ((packed >> 4) - 8).to(tl.float32) * scale[None, :]
        acc += tl.dot(x_even, low.to(x_even.dtype))
        acc += tl.dot(x_odd, high.to(x_odd.dtype))
    tl.store(
        y_ptr + offs_m[:, None] * stride_ym + offs_n[None, :] * stride_yn,
        acc.to(y_ptr.dtype.element_ty),
        mask=(offs_m[:, None] < M) & (offs_n[None, :] < N),
    )


@triton.jit
def _block_sparse_kernel(
    x_ptr,
    b_ptr,
    kb_ptr,
    cp_ptr,
    y_ptr,
    M,
    N,
    K,
    stride_xm,
    stride_xk,
    stride_ym,
    stride_yn,
    BLOCK: tl.constexpr,
    BLOCK_M: tl.constexpr,
):
    # One program per (M tile, column of weight tiles); it visits only that column's kept
    # tiles, so zero tiles cost neither memory traffic nor arithmetic.
    pid_m = tl.program_id(0)
    pid_n = tl.program_id(1)
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_b = tl.arange(0, BLOCK)
    start = tl.load(cp_ptr + pid_n)
    end = tl.load(cp_ptr + pid_n + 1)
    acc = tl.zeros((BLOCK_M, BLOCK), dtype=tl.float32)
    for i in range(start, end):
        kb = tl.load(kb_ptr + i)
        kk = kb * BLOCK + offs_b
        x = tl.load(
            x_ptr + offs_m[:, None] * stride_xm + kk[None, :] * stride_xk,
            mask=(offs_m[:, None] < M) & (kk[None, :] < K),
            other=0.0,
        )
        w = tl.load(b_ptr + i * BLOCK * BLOCK + offs_b[:, None] * BLOCK + offs_b[None, :])
        acc += tl.dot(x, w.to(x.dtype))
    offs_n = pid_n * BLOCK + offs_b
    tl.store(
        y_ptr + offs_m[:, None] * stride_ym + offs_n[None, :] * stride_yn,
        acc.to(y_ptr.dtype.element_ty),
        mask=(offs_m[:, None] < M) & (offs_n[None, :] < N),
    )


def interpreting() -> bool:
    """Whether Triton runs kernels in its interpreter in this process."""
    return bool(triton.knobs.runtime.interpret)


def _prepare(x: torch.Tensor, k: int, *others: torch.Tensor) -> bool:
    """Check the operands; return whether the interpreter runs the kernel."""
    if x.dim() != 2 or x.shape[1] != k:
        raise ValueError(f"x must be (M, K={k}), got shape {tuple(x.shape)}")
    if x.shape[0] == 0:
        raise ValueError("x has no rows (M = 0)")
    devices = {x.device.type, *(t.device.type for t in others)}
    if len(devices) != 1:
        raise ValueError(f"x and the weight are on different devices: {sorted(devices)}")
    interpret = interpreting()
    if not interpret and not x.is_cuda:
        raise ValueError(
            "compiled Triton kernels need CUDA tensors; to run them on CPU tensors set "
            "TRITON_INTERPRET=1 before Triton is first imported"
        )
    return interpret


def _tiles(m: int) -> tuple[int, int, int, dict[str, Any]]:
    """(BLOCK_M, BLOCK_N, BLOCK_K, launch options) for M rows: decode or prefill shapes."""
    if m <= 16:
        return 16, 64, 128, {"num_warps": 4, "num_stages": 4}
    if m <= 64:
        return 64, 64, 64, {"num_warps": 4, "num_stages": 3}
    return 128, 128, 64, {"num_warps": 8, "num_stages": 3}


def int8_matmul(x: torch.Tensor, w: Int8Weight) -> torch.Tensor:
    """``x @ W.T`` for a weight-only int8 ``W``; the result has ``x``'s dtype."""
    n, k = w.shape
    interpret = _prepare(x, k, w.q, w.scale)
    m = x.shape[0]
    y = torch.empty(m, n, dtype=x.dtype, device=x.device)
    block_m, block_n, block_k, options = _tiles(m)
    if interpret:
        options = {}
    grid = (triton.cdiv(m, block_m), triton.cdiv(n, block_n))
    _int8_kernel[grid](
        x, w.q, w.scale, y, m, n, k,
        x.stride(0), x.stride(1), w.q.stride(0), w.q.stride(1), y.stride(0), y.stride(1),
        BLOCK_M=block_m, BLOCK_N=block_n, BLOCK_K=block_k, **options,
    )  # fmt: skip
    return y


def int4_matmul(x: torch.Tensor, w: Int4Weight) -> torch.Tensor:
    """``x @ W.T`` for a weight-only, group-wise int4 ``W``; the result has ``x``'s dtype.

    The K tile is the largest power of two dividing both the group size and 128; compiled
    kernels need it to be at least 32 (``tl.dot``'s smallest K of 16 per half), i.e. a
    group size that is a multiple of 32.
    """
    n, k = w.shape
    interpret = _prepare(x, k, w.packed, w.scales)
    block_k = math.gcd(w.group_size, 128)
    if block_k < 2:
        raise ValueError(f"group_size {w.group_size} must be even")
    if not interpret and block_k < 32:
        raise ValueError(
            f"compiled int4 kernels need a group size that is a multiple of 32, got {w.group_size}"
        )
    m = x.shape[0]
    y = torch.empty(m, n, dtype=x.dtype, device=x.device)
    block_m, block_n, _, options = _tiles(m)
    if interpret:
        options = {}
    grid = (triton.cdiv(m, block_m), triton.cdiv(n, block_n))
    _int4_kernel[grid](
        x, w.packed, w.scales, y, m, n, k,
        x.stride(0), x.stride(1), w.packed.stride(0), w.packed.stride(1),
        w.scales.stride(0), w.scales.stride(1), y.stride(0), y.stride(1),
        GROUP=w.group_size, BLOCK_M=block_m, BLOCK_N=block_n, BLOCK_K=block_k, **options,
    )  # fmt: skip
    return y


def block_sparse_matmul(x: torch.Tensor, w: BlockSparseWeight) -> torch.Tensor:
    """``x @ W.T`` for a block-sparse ``W``, visiting only its kept tiles.

    The tile size must be a power of two (``tl.arange``), and at least 16 for compiled
    kernels (``tl.dot``).
    """
    n, k = w.shape
    interpret = _prepare(x, k, w.blocks, w.k_blocks, w.col_ptr)
    b = w.block
    if b & (b - 1) or (not interpret and b < 16):
        raise ValueError(
            f"block size {b} is not supported: use a power of two"
            + ("" if interpret else " of at least 16")
        )
    m = x.shape[0]
    y = torch.empty(m, n, dtype=x.dtype, device=x.device)
    block_m = 16 if m <= 16 else 64
    grid = (triton.cdiv(m, block_m), w.col_ptr.numel() - 1)
    options: dict[str, Any] = {} if interpret else {"num_warps": 4, "num_stages": 3}
    _block_sparse_kernel[grid](
        x, w.blocks, w.k_blocks, w.col_ptr, y, m, n, k,
        x.stride(0), x.stride(1), y.stride(0), y.stride(1),
        BLOCK=b, BLOCK_M=block_m, **options,
    )  # fmt: skip
    return y
