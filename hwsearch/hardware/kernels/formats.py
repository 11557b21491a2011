"""Weight formats of the quantized and block-sparse kernels, and PyTorch references.

All matmuls compute ``y = x @ W.T`` for an ``nn.Linear`` weight ``W`` of shape ``(N, K)``
and activations ``x`` of shape ``(M, K)``.

* **int8, weight-only**: ``q`` int8 of shape ``(K, N)`` (transposed so that a kernel reads
  rows of N contiguously), symmetric per output channel: ``W[n, k] = q[k, n] * scale[n]``,
  ``q`` in [-127, 127].
* **int4, weight-only, group-wise**: two 4-bit values per byte along K, ``packed`` uint8 of
  shape ``(K / 2, N)``: the low nibble holds row ``2i`` of K, the high nibble row
  ``2i + 1``; each stores ``q + 8`` for ``q`` in [-8, 7]. ``scales`` of shape
  ``(K / group_size, N)``: ``W[n, k] = q[k, n] * scales[k // group_size, n]``. K must be a
  multiple of ``group_size``, and ``group_size`` even.
* **block-sparse**: ``W.T`` (``(K, N)``) cut into ``block × block`` tiles; only tiles with a
  non-zero value are kept, grouped by their column of tiles: ``col_ptr`` (``N / block + 1``)
  indexes ``k_blocks`` (the tile row of each kept tile) and ``blocks`` (``(nnz, block,
  block)``). K and N are padded with zeros to multiples of ``block``.

The references dequantise the whole weight and call ``torch.matmul``; the Triton kernels
dequantise tiles in registers and must agree with them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Int8Weight:
    q: torch.Tensor  # (K, N) int8
    scale: torch.Tensor  # (N,) float32

    @property
    def shape(self) -> tuple[int, int]:
        """``(N, K)``, the shape of the weight it stands for."""
        return int(self.q.shape[1]), int(self.q.shape[0])

    def nbytes(self) -> int:
        return self.q.numel() + self.scale.numel() * self.scale.element_size()


@dataclass(frozen=True)
class Int4Weight:
    packed: torch.Tensor  # (K / 2, N) uint8
    scales: torch.Tensor  # (K / group_size, N) float32
    group_size: int

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.packed.shape[1]), int(self.packed.shape[0]) * 2

    def nbytes(self) -> int:
        return self.packed.numel() + self.scales.numel() * self.scales.element_size()


@dataclass(frozen=True)
class BlockSparseWeight:
    blocks: torch.Tensor  # (nnz, block, block), tiles of W.T
    k_blocks: torch.Tensor  # (nnz,) int32: tile row (along K) of each kept tile
    col_ptr: torch.Tensor  # (N_padded / block + 1,) int32
    block: int
    n: int  # unpadded N
    k: int  # unpadded K

    @property
    def shape(self) -> tuple[int, int]:
        return self.n, self.k

    @property
    def density(self) -> float:
        """Share of tiles kept."""
        tiles = (self.col_ptr.numel() - 1) * _ceil_div(self.k, self.block)
        return self.blocks.shape[0] / tiles if tiles else 0.0

    def nbytes(self) -> int:
        return (
            self.blocks.numel() * self.blocks.element_size()
            + self.k_blocks.numel() * 4
            + self.col_ptr.numel() * 4
        )


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _check_weight(weight: torch.Tensor) -> None:
    if not isinstance(weight, torch.Tensor) or weight.dim() != 2:
        raise ValueError(
            f"weight must be a 2-D (N, K) tensor, got {getattr(weight, 'shape', type(weight))}"
        )
    if weight.numel() == 0:
        raise ValueError(f"weight must not be empty, got shape {tuple(weight.shape)}")
    if not weight.is_floating_point():
        raise ValueError(f"weight must be floating point, got {weight.dtype}")


# --------------------------------------------------------------------------------------------
# Packing


def quantize_int8(weight: torch.Tensor) -> Int8Weight:
    """Symmetric per-output-channel int8 of an ``(N, K)`` weight."""
    _check_weight(weight)
    w = weight.detach().float()
    scale = w.abs().amax(dim=1).clamp(min=1e-12) / 127.0
    q = torch.clamp(torch.round(w / scale[:, None]), -127, 127).to(torch.int8)
    return Int8Weight(q=q.t().contiguous(), scale=scale.contiguous())


def quantize_int4(weight: torch.Tensor, group_size: int = 32) -> Int4Weight:
    """Symmetric group-wise int4 of an ``(N, K)`` weight: one scale per ``group_size`` values
    of K per output channel. K must be a multiple of ``group_size`` (``ValueError`` otherwise)."""
    _check_weight(weight)
    n, k = weight.shape
    if isinstance(group_size, bool) or not isinstance(group_size, int) or group_size < 2:
        raise ValueError(f"group_size must be an even integer >= 2, got {group_size!r}")
    if group_size % 2:
        raise ValueError(f"group_size must be even (two values per byte), got {group_size}")
    if k % group_size:
        raise ValueError(
            f"K = {k} (the weight's second dimension) is not a multiple of group_size = "
            f"{group_size}; choose a group size that divides K"
        )
    w = weight.detach().float().reshape(n, k // group_size, group_size)
    scales = w.abs().amax(dim=2).clamp(min=1e-12) / 7.0  # (N, groups)
    q = torch.clamp(torch.round(w / scales[:, :, None]), -8, 7).reshape(n, k).to(torch.int16)
    unsigned = (q + 8).to(torch.uint8).t().contiguous()  # (K, N) in 0..15
    packed = unsigned[0::2] | (unsigned[1::2] << 4)
    return Int4Weight(
        packed=packed.contiguous(), scales=scales.t().contiguous(), group_size=group_size
    )


def to_block_sparse(weight: torch.Tensor, block: int = 32) -> BlockSparseWeight:
    """The non-zero ``block × block`` tiles of an ``(N, K)`` weight (see module docstring)."""
    _check_weight(weight)
    if isinstance(block, bool) or not isinstance(block, int) or block < 1:
        raise ValueError(f"block must be a positive integer, got {block!r}")
    n, k = weight.shape
    kp, np_ = _ceil_div(k, block) * block, _ceil_div(n, block) * block
    wt = torch.zeros(kp, np_, dtype=weight.dtype, device=weight.device)
    wt[:k, :n] = weight.detach().t()
    tiles = wt.reshape(kp // block, block, np_ // block, block).permute(2, 0, 1, 3)
    keep = tiles.ne(0).flatten(2).any(dim=2)  # (N tiles, K tiles)
    counts = keep.sum(dim=1).to(torch.int32)
    col_ptr = torch.zeros(np_ // block + 1, dtype=torch.int32, device=weight.device)
    col_ptr[1:] = torch.cumsum(counts, 0)
    col, row = keep.nonzero(as_tuple=True)  # column-major over tiles: grouped by column
    return BlockSparseWeight(
        blocks=tiles[col, row].contiguous(),
        k_blocks=row.to(torch.int32).contiguous(),
        col_ptr=col_ptr,
        block=block,
        n=n,
        k=k,
    )


def block_mask(
    shape: tuple[int, int], density: float, block: int, *, seed: int = 0
) -> torch.Tensor:
    """A 0/1 mask of ``shape`` keeping a ``density`` share of its ``block`` tiles (at least
    one), chosen at random with ``seed``."""
    if not 0.0 < density <= 1.0:
        raise ValueError(f"density must be in (0, 1], got {density!r}")
    n, k = shape
    tn, tk = _ceil_div(n, block), _ceil_div(k, block)
    generator = torch.Generator().manual_seed(seed)
    keep_count = max(1, round(density * tn * tk))
    order = torch.randperm(tn * tk, generator=generator)[:keep_count]
    tiles = torch.zeros(tn * tk)
    tiles[order] = 1.0
    full = tiles.reshape(tn, tk).repeat_interleave(block, 0).repeat_interleave(block, 1)
    return full[:n, :k].contiguous()


def magnitude_block_mask(weight: torch.Tensor, sparsity: float, block: int) -> torch.Tensor:
    """A 0/1 mask zeroing the ``sparsity`` share of ``block`` tiles with the smallest L1 norm."""
    if not 0.0 <= sparsity < 1.0:
        raise ValueError(f"sparsity must be in [0, 1), got {sparsity!r}")
    n, k = weight.shape
    tn, tk = _ceil_div(n, block), _ceil_div(k, block)
    padded = torch.zeros(tn * block, tk * block)
    padded[:n, :k] = weight.detach().abs().float()
    norms = padded.reshape(tn, block, tk, block).sum(dim=(1, 3)).flatten()
    drop = min(round(sparsity * norms.numel()), norms.numel() - 1)
    tiles = torch.ones_like(norms)
    if drop > 0:
        tiles[torch.argsort(norms, stable=True)[:drop]] = 0.0
    full = tiles.reshape(tn, tk).repeat_interleave(block, 0).repeat_interleave(block, 1)
    return full[:n, :k].to(weight.dtype).contiguous()


# --------------------------------------------------------------------------------------------
# Dequantisation and references


def dequantize_int8(w: Int8Weight) -> torch.Tensor:
    """The ``(N, K)`` float weight an :class:`Int8Weight` stands for."""
    return (w.q.float() * w.scale[None, :]).t().contiguous()


def unpack_int4(w: Int4Weight) -> torch.Tensor:
    """The signed values ``q`` of an :class:`Int4Weight`, ``(K, N)`` int8 in [-8, 7]."""
    low = (w.packed & 0x0F).to(torch.int8) - 8
    high = (w.packed >> 4).to(torch.int8) - 8
    k2, n = w.packed.shape
    return torch.stack([low, high], dim=1).reshape(k2 * 2, n)


def dequantize_int4(w: Int4Weight) -> torch.Tensor:
    q = unpack_int4(w).float()  # (K, N)
    scales = w.scales.repeat_interleave(w.group_size, dim=0)  # (K, N)
    return (q * scales).t().contiguous()


def dense_from_block_sparse(w: BlockSparseWeight) -> torch.Tensor:
    """The ``(N, K)`` weight a :class:`BlockSparseWeight` stands for."""
    b = w.block
    tiles_n = w.col_ptr.numel() - 1
    tiles_k = _ceil_div(w.k, b)
    wt = torch.zeros(tiles_k * b, tiles_n * b, dtype=w.blocks.dtype, device=w.blocks.device)
    ptr = w.col_ptr.tolist()
    rows = w.k_blocks.tolist()
    for col in range(tiles_n):
        for i in range(ptr[col], ptr[col + 1]):
            r = rows[i]
            wt[r * b : (r + 1) * b, col * b : (col + 1) * b] = w.blocks[i]
    return wt[: w.k, : w.n].t().contiguous()


def _check_x(x: torch.Tensor, k: int) -> None:
    if x.dim() != 2 or x.shape[1] != k:
        raise ValueError(f"x must be (M, K={k}), got shape {tuple(x.shape)}")


def int8_matmul_reference(x: torch.Tensor, w: Int8Weight) -> torch.Tensor:
    _check_x(x, w.shape[1])
    return x @ dequantize_int8(w).to(x.dtype).t()


def int4_matmul_reference(x: torch.Tensor, w: Int4Weight) -> torch.Tensor:
    _check_x(x, w.shape[1])
    return x @ dequantize_int4(w).to(x.dtype).t()


def block_sparse_matmul_reference(x: torch.Tensor, w: BlockSparseWeight) -> torch.Tensor:
    _check_x(x, w.k)
    return x @ dense_from_block_sparse(w).to(x.dtype).t()


__all__ = [
    "BlockSparseWeight",
    "Int4Weight",
    "Int8Weight",
    "block_mask",
    "block_sparse_matmul_reference",
    "dense_from_block_sparse",
    "dequantize_int4",
    "dequantize_int8",
    "int4_matmul_reference",
    "int8_matmul_reference",
    "magnitude_block_mask",
    "quantize_int4",
    "quantize_int8",
    "to_block_sparse",
    "unpack_int4",
]
