"""Triton kernels in Triton's interpreter against PyTorch references; the dispatch.

Triton fixes interpreter or compiled mode for a whole process when it is first imported.
This module asks for the interpreter before anything imports Triton; when something in
this process imported it compiled before (another test module), the kernel tests run once
in a fresh process instead (``test_kernels_in_a_fresh_interpreter_process``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

_COMPILED_ALREADY = "triton" in sys.modules and os.environ.get("TRITON_INTERPRET") != "1"
os.environ["TRITON_INTERPRET"] = "1"

import pytest  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from hwsearch.hardware import kernels as K  # noqa: E402
from hwsearch.hardware.kernels import (  # noqa: E402
    BlockSparseLinear,
    QuantizedLinear,
    kernel_paths,
    select_path,
)

needs_interpreter = pytest.mark.skipif(
    _COMPILED_ALREADY,
    reason="Triton was imported compiled earlier in this process; "
    "test_kernels_in_a_fresh_interpreter_process runs these tests",
)


def _data(m: int, n: int, k: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(m, k, generator=generator), torch.randn(n, k, generator=generator)


@needs_interpreter
@pytest.mark.parametrize(("m", "n", "k"), [(1, 64, 128), (5, 70, 96), (33, 17, 40)])
def test_int8_kernel_matches_the_reference_on_even_and_odd_shapes(m: int, n: int, k: int) -> None:
    x, w = _data(m, n, k)
    q = K.quantize_int8(w)
    out = K.int8_matmul(x, q)
    torch.testing.assert_close(out, K.int8_matmul_reference(x, q), rtol=1e-4, atol=1e-4)
    # and the quantized product is close to the float one (per-channel int8)
    assert (out - x @ w.t()).abs().max() < 0.05 * (x @ w.t()).abs().max()


@needs_interpreter
@pytest.mark.parametrize(
    ("m", "n", "k", "group"), [(1, 64, 128, 32), (3, 50, 96, 16), (17, 8, 64, 64)]
)
def test_int4_kernel_with_groups_matches_the_reference(m: int, n: int, k: int, group: int) -> None:
    x, w = _data(m, n, k, seed=1)
    q = K.quantize_int4(w, group)
    assert q.packed.shape == (k // 2, n) and q.scales.shape == (k // group, n)
    torch.testing.assert_close(
        K.int4_matmul(x, q), K.int4_matmul_reference(x, q), rtol=1e-4, atol=1e-4
    )


def test_int4_packing_round_trips_and_uses_one_scale_per_group() -> None:
    _, w = _data(1, 6, 64, seed=2)
    q = K.quantize_int4(w, 16)
    values = K.formats.unpack_int4(q)
    assert values.min() >= -8 and values.max() <= 7
    # dequantised weights err by at most half a step of their own group
    step = q.scales.repeat_interleave(16, dim=0).t()
    assert ((K.dequantize_int4(q) - w).abs() <= step / 2 + 1e-6).all()


@needs_interpreter
@pytest.mark.parametrize(
    ("m", "n", "k", "block", "density"),
    [(4, 64, 64, 16, 0.5), (9, 50, 70, 16, 0.3), (1, 32, 96, 32, 0.75)],
)
def test_block_sparse_kernel_matches_the_dense_product(
    m: int, n: int, k: int, block: int, density: float
) -> None:
    x, w = _data(m, n, k, seed=3)
    w = w * K.block_mask((n, k), density, block, seed=4)
    sparse = K.to_block_sparse(w, block)
    assert sparse.density == pytest.approx(density, abs=0.1)
    torch.testing.assert_close(K.block_sparse_matmul(x, sparse), x @ w.t(), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(K.dense_from_block_sparse(sparse), w)


@needs_interpreter
def test_block_sparse_kernel_handles_an_all_zero_column_of_tiles() -> None:
    x, w = _data(2, 32, 32, seed=5)
    w[:16] = 0.0  # the first column of 16x16 tiles of W.T holds nothing
    sparse = K.to_block_sparse(w, 16)
    assert sparse.col_ptr.tolist()[:2] == [0, 0]
    out = K.block_sparse_matmul(x, sparse)
    assert torch.equal(out[:, :16], torch.zeros(2, 16))
    torch.testing.assert_close(out, x @ w.t(), rtol=1e-4, atol=1e-4)


def test_odd_shapes_are_rejected_with_the_reason() -> None:
    _, w = _data(1, 8, 40)
    with pytest.raises(ValueError, match="not a multiple of group_size"):
        K.quantize_int4(w, 32)
    with pytest.raises(ValueError, match="even"):
        K.quantize_int4(w, 5)
    with pytest.raises(ValueError, match="2-D"):
        K.quantize_int8(torch.randn(3))
    with pytest.raises(ValueError, match="x must be"):
        K.int8_matmul_reference(torch.randn(2, 7), K.quantize_int8(w))


@needs_interpreter
def test_kernels_refuse_mismatched_inputs() -> None:
    x, w = _data(2, 8, 32)
    with pytest.raises(ValueError, match="x must be"):
        K.int8_matmul(x[:, :16], K.quantize_int8(w))
    with pytest.raises(ValueError, match="power of two"):
        K.block_sparse_matmul(x, K.to_block_sparse(w, 12))


def test_cuda_path_is_selected_only_on_cuda_devices() -> None:
    cpu, cuda = torch.device("cpu"), torch.device("cuda", 0)
    assert select_path("int8", cuda, has_triton=True) == "triton-int8"
    assert select_path("int4", cuda, group_size=64, has_triton=True) == "triton-int4"
    assert select_path("int4", cuda, group_size=16, has_triton=True) == "torch-dequant"
    assert select_path("block-sparse", cuda, block=32, has_triton=True) == "triton-block-sparse"
    assert select_path("int8", cuda, has_triton=False) == "torch-dequant"
    assert select_path("int4", cpu, group_size=16) == "torch-dequant"
    assert select_path("block-sparse", cuda, has_triton=False) == "dense-masked"
    for kind in ("int8", "int4", "block-sparse"):
        assert not select_path(kind, cpu, has_triton=True).startswith("triton")  # type: ignore[arg-type]


def test_layers_on_this_machine_take_the_cpu_paths_and_record_them() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(64, 48), nn.ReLU(), nn.Linear(64, 32), nn.Linear(32, 32), nn.Linear(32, 32)
    )
    model[2] = nn.Linear(48, 32)
    x = torch.randn(3, 5, 64)
    ref = model(x)
    model[0] = QuantizedLinear(model[0], 8)
    model[2] = QuantizedLinear(model[2], 4, group_size=16)  # too small a group for aten
    model[4] = QuantizedLinear(model[4], 4, group_size=32)
    dense = model[3].weight.detach() * K.block_mask((32, 32), 0.5, 16)
    model[3].weight.data.copy_(dense)
    ref_sparse_tail = model[3]
    model[3] = BlockSparseLinear(ref_sparse_tail, block=16)
    with torch.inference_mode():
        out = model(x)
    assert out.shape == (3, 5, 32)
    paths = kernel_paths(model)
    assert paths == {
        "0": "aten-int8-weight-only",
        "2": "torch-dequant",
        "3": "dense-masked",
        "4": "aten-int4-weight-only",
    }
    # the quantized model stays close to the float one
    assert (out - ref).abs().max() < 0.25 * ref.abs().max() + 0.1
    # and each quantized layer computes exactly what its reference computes
    for index, width in ((0, 64), (2, 48), (4, 32)):
        layer = model[index]
        assert isinstance(layer, QuantizedLinear)
        h = torch.randn(4, width)
        with torch.inference_mode():
            expected_out = h @ layer.dequantized().t() + layer.bias
            torch.testing.assert_close(layer(h), expected_out, rtol=1e-4, atol=1e-4)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")
def test_layers_on_a_gpu_take_the_triton_kernels() -> None:
    layer = QuantizedLinear(nn.Linear(256, 128), 4, group_size=32).cuda()
    x = torch.randn(4, 256, device="cuda")
    torch.testing.assert_close(
        layer(x), x @ layer.dequantized().t() + layer.bias, rtol=1e-3, atol=1e-3
    )
    assert layer.path == "triton-int4"


@pytest.mark.skipif(not _COMPILED_ALREADY, reason="Triton was not imported before this module")
def test_kernels_in_a_fresh_interpreter_process() -> None:
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(Path(__file__))],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
