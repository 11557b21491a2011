"""A compressed model on real kernels, for latency: what runs, and which kernel each layer uses.

Starts from :func:`~.compress.bake` output (channel-pruned layers physically small, masks and
quantized values folded into float weights). Per layer, by its rule:

====================================  ========================  ==============================
rule (CPU target)                     kernel path               API
====================================  ========================  ==============================
Linear / Conv, ``weight_bits <= 8``   ``x86-int8-static``       FX graph mode, ``x86`` engine
and ``act_bits <= 8``                                           (``torch.ao.quantization``,
                                                                kept: see docs/compression.md)
Linear, ``weight_bits <= 8``,         ``torchao-int8-weight``   torchao ``quantize_`` with
float activations                                               ``Int8WeightOnlyConfig``
Linear, ``weight_bits <= 4``, float   ``aten-int4-weight-only`` hwsearch's ``QuantizedLinear``
activations, ``in_features`` a                                  (``_weight_int4pack_mm``)
multiple of 32
Conv, ``weight_bits <= 8``, float     ``fp32``                  none: no weight-only
activations                                                     convolution kernel on CPUs
anything else (16 or 32 bits)         ``fp32``
====================================  ========================  ==============================

On a CUDA target, Linear layers with ``weight_bits <= 8`` become ``QuantizedLinear`` (the
project's Triton int8 / int4 kernels, see :mod:`hwsearch.hardware.kernels`); the rest runs
in float. Widths below 8 (but above 4) run on the int8 kernels: there are none narrower.

A model FX cannot trace (data-dependent control flow) falls back for its static layers to the
weight-only path of its Linears, convolutions in fp32; the reason is recorded.
"""

from __future__ import annotations

import contextlib
import copy
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn.utils import parametrize

from hwsearch.hardware.kernels.dispatch import QuantizedLinear
from hwsearch.models.custom.rules import WEIGHT_LAYERS, LayerRule

STATIC = "x86-int8-static"
TORCHAO_INT8 = "torchao-int8-weight"
INT4 = "aten-int4-weight-only"
CUDA_INT8 = "quantized-linear-int8"
CUDA_INT4 = "quantized-linear-int4"
FP32 = "fp32"
_ORDER = (STATIC, TORCHAO_INT8, INT4, CUDA_INT8, CUDA_INT4, FP32)
INT4_GROUP = 32


@dataclass
class Materialized:
    """The deployable model (eval mode), each layer's kernel path and what fell back."""

    model: nn.Module
    paths: dict[str, str]
    notes: list[str] = field(default_factory=list)

    @property
    def kernel_path(self) -> str:
        """The distinct paths joined, e.g. ``"x86-int8-static+fp32"``."""
        return "+".join(p for p in _ORDER if p in self.paths.values()) or FP32


def plan(
    model: nn.Module, rules: Mapping[str, LayerRule], device_kind: str = "cpu"
) -> dict[str, str]:
    """The kernel path each Linear / Conv layer of ``model`` will take."""
    paths: dict[str, str] = {}
    for name, module in model.named_modules():
        if not isinstance(module, WEIGHT_LAYERS):
            continue
        rule = rules.get(name, LayerRule())
        linear = isinstance(module, nn.Linear)
        if rule.weight_bits > 8:
            paths[name] = FP32
        elif device_kind == "cuda":
            paths[name] = (CUDA_INT4 if rule.weight_bits <= 4 else CUDA_INT8) if linear else FP32
        elif rule.act_bits <= 8:
            paths[name] = STATIC
        elif linear and rule.weight_bits <= 4 and _in_features(module) % INT4_GROUP == 0:
            paths[name] = INT4
        elif linear:
            paths[name] = TORCHAO_INT8
        else:
            paths[name] = FP32
    return paths


def _in_features(module: nn.Module) -> int:
    return int(module.in_features) if isinstance(module, nn.Linear) else 0


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", "Please use quant_min and quant_max", UserWarning)
        warnings.filterwarnings("ignore", ".*quantized tensor creation functions", UserWarning)
        yield


def _set(model: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, module)


def materialize(
    baked: nn.Module,
    rules: Mapping[str, LayerRule],
    calibration: Sequence[torch.Tensor],
    *,
    device_kind: str = "cpu",
) -> Materialized:
    """The model that really runs for ``baked`` (left unchanged) and its kernel paths.

    ``calibration`` holds input batches for the static activation ranges (one at least when a
    layer runs static int8).
    """
    if any(parametrize.is_parametrized(m) for m in baked.modules()):
        raise ValueError("materialize takes a baked model; call compress.bake first")
    paths = plan(baked, rules, device_kind)
    model = copy.deepcopy(baked).eval()
    notes: list[str] = []
    static = [n for n, p in paths.items() if p == STATIC]
    if static:
        if not calibration:
            raise ValueError("static int8 layers need at least one calibration batch")
        try:
            model = _static_int8(model, static, calibration)
        except Exception as exc:  # FX cannot trace every model
            notes.append(
                f"FX graph-mode quantization failed ({type(exc).__name__}: {exc}); its layers "
                "run weight-only int8 (Linear) or fp32 (Conv)"
            )
            model = copy.deepcopy(baked).eval()
            for name in static:
                linear = isinstance(model.get_submodule(name), nn.Linear)
                paths[name] = TORCHAO_INT8 if linear else FP32
    torchao = [n for n, p in paths.items() if p == TORCHAO_INT8]
    if torchao:
        _torchao_int8(model, set(torchao))
    for name, path in paths.items():
        if path in (INT4, CUDA_INT8, CUDA_INT4):
            layer = model.get_submodule(name)
            assert isinstance(layer, nn.Linear)
            bits = 8 if path == CUDA_INT8 else 4
            group = INT4_GROUP if layer.in_features % INT4_GROUP == 0 else 2
            if bits == 4 and layer.in_features % 2:
                bits, paths[name] = 8, CUDA_INT8 if path != INT4 else TORCHAO_INT8
            _set(model, name, QuantizedLinear(layer, bits, group_size=group))
    model.eval()
    if calibration:
        with _quiet(), torch.no_grad():
            model(calibration[0])  # one-time kernel set-up and warnings happen here
    return Materialized(model=model, paths=paths, notes=notes)


def _static_int8(
    model: nn.Module, names: Sequence[str], calibration: Sequence[torch.Tensor]
) -> nn.Module:
    from torch.ao.quantization import QConfigMapping, get_default_qconfig
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    if torch.backends.quantized.engine != "x86":
        if "x86" not in torch.backends.quantized.supported_engines:
            raise RuntimeError("this PyTorch build has no 'x86' quantized engine")
        torch.backends.quantized.engine = "x86"
    qconfig = get_default_qconfig("x86")
    mapping = QConfigMapping().set_global(None)
    for name in names:
        mapping.set_module_name(name, qconfig)
    with _quiet():
        prepared = prepare_fx(model, mapping, (calibration[0],))
        with torch.no_grad():
            for batch in calibration:
                prepared(batch)
        return convert_fx(prepared)


def _torchao_int8(model: nn.Module, names: set[str]) -> None:
    from torchao.quantization import Int8WeightOnlyConfig, quantize_

    def chosen(module: nn.Module, fqn: str) -> bool:
        return fqn in names and isinstance(module, nn.Linear)

    with _quiet():
        quantize_(model, Int8WeightOnlyConfig(), filter_fn=chosen)
