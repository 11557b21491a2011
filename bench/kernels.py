"""Benchmark of the Triton kernels against PyTorch's dense half-precision matmul.

    python bench/kernels.py                # on a CUDA device: the figures of the issue
    python bench/kernels.py --json out.json
    TRITON_INTERPRET=1 python bench/kernels.py --smoke   # CPU: runs the code, no figures

For each weight shape K = N in {4096, 8192} and activation rows M in {1, 4, 16} (decode)
and 2048 (prefill): the time of ``x @ W.T`` with a dense fp16 (or bf16) weight through
``torch.nn.functional.linear`` (cuBLAS), with weight-only int8 (per channel), weight-only
int4 (groups of 128) and block-sparse fp16 (64×64 tiles, half of them kept); the speed-up
over dense; and the memory bandwidth each achieves (weight + activation + output bytes over
the time) as a share of the device's peak.

Physical limit at M = 1: reading the weight dominates, so int8 can be at most ~2× and int4
~4× faster than fp16; block-sparse at 50% density ~2×. Targets on an H100/H200: int4 >= 3×
and int8 >= 1.8× at M = 1, K = N = 8192; block-sparse at 50% >= 1.6×.

Without a CUDA device the script says so and exits 0: there are no figures to take.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

# Peak memory bandwidth (bytes/s) by a distinctive part of the device name (datasheets).
PEAK_BANDWIDTH = (
    ("H200", 4.8e12),
    ("H100 PCIE", 2.0e12),
    ("H100", 3.35e12),
    ("A100-SXM4-80GB", 2.039e12),
    ("A100-PCIE-80GB", 1.935e12),
    ("A100", 1.555e12),
    ("L40S", 0.864e12),
    ("L4", 0.3e12),
)
DECODE_M = (1, 4, 16)
PREFILL_M = (2048,)
SIZES = (4096, 8192)
TARGETS = {"int4": 3.0, "int8": 1.8, "block-sparse-50%": 1.6}


@dataclass
class Row:
    kernel: str
    m: int
    k: int
    n: int
    ms: float
    dense_ms: float
    speedup: float
    bandwidth_gbs: float
    peak_share: float | None


def peak_bandwidth(name: str) -> float | None:
    upper = name.upper()
    return next((bw for key, bw in PEAK_BANDWIDTH if key in upper), None)


def time_ms(fn: Callable[[], object], *, repeats: int) -> float:
    """Median time of ``fn`` (CUDA events after warm-up; wall clock in the interpreter)."""
    from triton.testing import do_bench

    if torch.cuda.is_available():
        return float(do_bench(fn, warmup=25, rep=repeats, return_mode="median"))
    import time

    samples = []
    for _ in range(3):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return sorted(samples)[1]


def run(device: str, dtype: torch.dtype, sizes: tuple[int, ...], ms: tuple[int, ...]) -> list[Row]:
    from hwsearch.hardware import kernels as K

    peak = peak_bandwidth(torch.cuda.get_device_name()) if device == "cuda" else None
    rows: list[Row] = []
    generator = torch.Generator().manual_seed(0)
    for size in sizes:
        k = n = size
        weight = torch.randn(n, k, generator=generator) * 0.02
        mask = K.block_mask((n, k), 0.5, 64 if size >= 64 else 16, seed=1)
        formats = {
            "int8": K.quantize_int8(weight),
            "int4": K.quantize_int4(weight, 128 if k % 128 == 0 else 32),
            "block-sparse-50%": K.to_block_sparse(weight * mask, 64 if size >= 64 else 16),
        }
        moved: dict[str, Any] = {name: _to(fmt, device, dtype) for name, fmt in formats.items()}
        dense = weight.to(device, dtype)
        for m in ms:
            x = torch.randn(m, k, generator=generator).to(device, dtype)
            out_bytes = m * n * x.element_size()
            x_bytes = x.numel() * x.element_size()
            repeats = 200 if m <= 16 else 100
            dense_ms = time_ms(lambda: F.linear(x, dense), repeats=repeats)  # noqa: B023
            calls: dict[str, Callable[[], object]] = {
                "int8": lambda: K.int8_matmul(x, moved["int8"]),  # noqa: B023
                "int4": lambda: K.int4_matmul(x, moved["int4"]),  # noqa: B023
                "block-sparse-50%": lambda: K.block_sparse_matmul(x, moved["block-sparse-50%"]),  # noqa: B023
            }
            rows.append(
                _row(
                    "dense",
                    m,
                    k,
                    n,
                    dense_ms,
                    dense_ms,
                    dense.numel() * 2 + x_bytes + out_bytes,
                    peak,
                )
            )
            for name, call in calls.items():
                elapsed = time_ms(call, repeats=repeats)
                nbytes = moved[name].nbytes() + x_bytes + out_bytes
                rows.append(_row(name, m, k, n, elapsed, dense_ms, nbytes, peak))
    return rows


def _to(fmt: object, device: str, dtype: torch.dtype) -> object:
    from hwsearch.hardware.kernels import BlockSparseWeight, Int4Weight, Int8Weight

    if isinstance(fmt, Int8Weight):
        return Int8Weight(q=fmt.q.to(device), scale=fmt.scale.to(device))
    if isinstance(fmt, Int4Weight):
        return Int4Weight(
            packed=fmt.packed.to(device),
            scales=fmt.scales.to(device, dtype),
            group_size=fmt.group_size,
        )
    assert isinstance(fmt, BlockSparseWeight)
    return BlockSparseWeight(
        blocks=fmt.blocks.to(device, dtype),
        k_blocks=fmt.k_blocks.to(device),
        col_ptr=fmt.col_ptr.to(device),
        block=fmt.block,
        n=fmt.n,
        k=fmt.k,
    )


def _row(
    kernel: str, m: int, k: int, n: int, ms: float, dense_ms: float, nbytes: int, peak: float | None
) -> Row:
    bandwidth = nbytes / (ms / 1000)
    return Row(
        kernel,
        m,
        k,
        n,
        ms,
        dense_ms,
        dense_ms / ms,
        bandwidth / 1e9,
        bandwidth / peak if peak else None,
    )


def report(rows: list[Row], device: str) -> None:
    print(f"device: {device}")
    head = ("kernel", "M", "K=N", "ms", "dense ms", "speed-up", "GB/s", "of peak")
    print(f"{head[0]:<18}" + "".join(f"{h:>10}" for h in head[1:]))
    for r in rows:
        share = f"{r.peak_share:.0%}" if r.peak_share is not None else "?"
        cells: tuple[int | str, ...] = (r.m, r.k, f"{r.ms:.4f}", f"{r.dense_ms:.4f}")
        cells += (f"{r.speedup:.2f}x", f"{r.bandwidth_gbs:.0f}", share)
        print(f"{r.kernel:<18}" + "".join(f"{c:>10}" for c in cells))
    for kernel, target in TARGETS.items():
        found = [r for r in rows if r.kernel == kernel and r.m == 1 and r.k == 8192]
        if found:
            verdict = "meets" if found[0].speedup >= target else "misses"
            speedup = found[0].speedup
            print(f"{kernel} at M=1, K=N=8192: {speedup:.2f}x ({verdict} the target of {target}x)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--json", type=Path, help="also write the rows as JSON here")
    parser.add_argument("--dtype", choices=("float16", "bfloat16"), default="float16")
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="run the benchmark's code on tiny CPU shapes in Triton's interpreter "
        "(TRITON_INTERPRET=1); the times mean nothing",
    )
    args = parser.parse_args(argv)
    dtype = getattr(torch, args.dtype)
    if args.smoke:
        rows = run("cpu", torch.float32, (64,), (1, 4, 16))
        report(rows, "cpu (Triton interpreter; smoke run, times mean nothing)")
        return 0
    if not torch.cuda.is_available():
        built = "built without CUDA" if torch.version.cuda is None else "no CUDA device visible"
        print(
            f"No CUDA device available (torch {torch.__version__}, {built}): no kernel figures "
            "were taken. The kernels are checked on CPU in Triton's interpreter: "
            "pytest tests/hardware/test_hw_kernels.py"
        )
        return 0
    device_name = torch.cuda.get_device_name()
    rows = run("cuda", dtype, SIZES, DECODE_M + PREFILL_M)
    report(rows, f"{device_name} ({args.dtype}, torch {torch.__version__})")
    if args.json:
        args.json.write_text(
            json.dumps({"device": device_name, "rows": [asdict(r) for r in rows]}, indent=2)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
