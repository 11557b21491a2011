"""Materialisation for a CPU target: the network that really runs, and which kernels it uses.

Starts from :func:`~hwsearch.models.compression.bake` output (pruned layers physically small,
masks and quantized weight values folded into dense float weights; dense kernels get no
speed-up from the zeros, and the measurement shows that). Then, per block (see the families'
docs for what a block is):

* ``weight_bits <= 8`` and ``act_bits <= 8`` → static int8 through FX graph-mode quantization
  (backend ``x86``, activation ranges calibrated on training batches; residual additions run
  as quantized adds) — kernel path ``"x86-int8-static"``. Widths below 8 run on these int8
  kernels too: there are no narrower CPU kernels.
* ``weight_bits <= 8`` with float activations → dynamic int8 for the block's Linear layers
  (``quantize_dynamic``) — ``"int8-dynamic-linear"``; its convolutions stay float.
* otherwise, 16-bit weights or activations included → float32 kernels — ``"fp32"`` (CPUs have
  no general fp16 convolution path in PyTorch; the fp16-rounded weights are stored as fp32).

The kernel path of a whole model joins the distinct paths, e.g. ``"x86-int8-static+fp32"``.
"""

from __future__ import annotations

import contextlib
import copy
import warnings
from collections.abc import Iterator, Sequence

import torch
from torch import nn
from torch.nn.utils import parametrize

from hwsearch.models.compression import CompressibleNet, CompressionSpec

STATIC = "x86-int8-static"
DYNAMIC = "int8-dynamic-linear"
FP32 = "fp32"
_ORDER = (STATIC, DYNAMIC, FP32)
BACKEND = "x86"


def block_is_static(spec: CompressionSpec, block: int) -> bool:
    return spec.weight_bits[block] <= 8 and spec.act_bits[block] <= 8


def layer_paths(model: CompressibleNet, spec: CompressionSpec) -> dict[str, str]:
    """The kernel path each Linear / Conv2d of ``model`` will run on."""
    paths: dict[str, str] = {}
    for name, block in model.weight_layers():
        if block_is_static(spec, block):
            paths[name] = STATIC
        elif spec.weight_bits[block] <= 8 and isinstance(model.get_submodule(name), nn.Linear):
            paths[name] = DYNAMIC
        else:
            paths[name] = FP32
    return paths


def kernel_path_name(paths: Sequence[str]) -> str:
    return "+".join(p for p in _ORDER if p in paths)


@contextlib.contextmanager
def _quiet_ao() -> Iterator[None]:
    """Silences torch.ao.quantization's deprecation warnings (the APIs still work)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", ".*torch.ao.quantization", DeprecationWarning)
        warnings.filterwarnings("ignore", ".*torch.ao.quantization", FutureWarning)
        warnings.filterwarnings("ignore", "Please use quant_min and quant_max", UserWarning)
        warnings.filterwarnings("ignore", ".*quantized tensor creation functions", UserWarning)
        yield


def materialize(
    float_model: CompressibleNet,
    spec: CompressionSpec,
    calibration: Sequence[torch.Tensor],
) -> tuple[nn.Module, str]:
    """The deployable module (eval mode) for ``float_model`` and its kernel path.

    ``float_model`` is a baked model (no parametrizations, no fake-quantization) and is left
    unchanged; ``calibration`` holds input batches for the static activation ranges.
    """
    if (
        len(spec.weight_bits) != float_model.num_blocks
        or len(spec.act_bits) != float_model.num_blocks
    ):
        raise ValueError("spec needs one weight and one activation bit-width per block")
    paths = layer_paths(float_model, spec)
    model: nn.Module = copy.deepcopy(float_model).eval()
    if any(parametrize.is_parametrized(m) for m in model.modules()):
        raise ValueError("materialize takes a baked model; call compression.bake first")
    kernel_path = kernel_path_name(list(paths.values()))
    if STATIC in paths.values():
        if not calibration:
            raise ValueError("static int8 quantization needs at least one calibration batch")
        model = _static_int8(float_model, model, spec, calibration)
    dynamic = {name for name, path in paths.items() if path == DYNAMIC}
    if dynamic:
        with _quiet_ao():
            model = torch.ao.quantization.quantize_dynamic(model, dynamic, dtype=torch.qint8)
    model.eval()
    if calibration:
        with _quiet_ao(), torch.no_grad():
            model(calibration[0])  # one-time kernel set-up and warnings happen here
    return model, kernel_path


def _static_int8(
    net: CompressibleNet,
    model: nn.Module,
    spec: CompressionSpec,
    calibration: Sequence[torch.Tensor],
) -> nn.Module:
    from torch.ao.quantization import QConfigMapping, get_default_qconfig
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    _select_engine()
    qconfig = get_default_qconfig(BACKEND)
    mapping = QConfigMapping()
    regions = net.quant_regions()
    if all(block_is_static(spec, block) for _, block in regions):
        mapping.set_global(qconfig)
    else:
        mapping.set_global(None)
        for name, block in regions:
            if block_is_static(spec, block):
                mapping.set_module_name(name, qconfig)
    with _quiet_ao():
        prepared = prepare_fx(model, mapping, (calibration[0],))
        with torch.no_grad():
            for batch in calibration:
                prepared(batch)
        return convert_fx(prepared)


def _select_engine() -> None:
    """Run quantized ops on the x86 (fbgemm + oneDNN) kernels the qconfig was made for."""
    if torch.backends.quantized.engine != BACKEND:
        if BACKEND not in torch.backends.quantized.supported_engines:
            raise RuntimeError(f"this PyTorch build has no {BACKEND!r} quantized engine")
        torch.backends.quantized.engine = BACKEND


def calibration_batches(
    x: torch.Tensor, batch_size: int, max_batches: int = 8
) -> list[torch.Tensor]:
    """The first ``max_batches`` batches of ``x`` in order (deterministic calibration data)."""
    return list(_chunks(x, batch_size, max_batches))


def _chunks(x: torch.Tensor, batch_size: int, limit: int) -> Iterator[torch.Tensor]:
    for i in range(min(limit, -(-x.shape[0] // batch_size))):
        yield x[i * batch_size : (i + 1) * batch_size]
