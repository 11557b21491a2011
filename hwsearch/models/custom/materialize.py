"""A compressed model on real kernels, for latency: what runs, and which kernel each layer uses.

Starts from :func:`~.compress.bake` output (channel-pruned layers physically small, masks and
quantized values folded into float weights). Per layer, by its rule, on a CPU target:

- Linear / Conv with ``weight_bits <= 8`` and ``act_bits <= 8`` → ``x86-int8-static``:
  static int8 through FX graph mode (``torch.ao.quantization``, ``x86`` engine, activation
  ranges from the calibration batches);
- Linear with ``weight_bits <= 8`` and float activations → by ``weight_only``:
  ``"dynamic"`` (default) ``int8-dynamic-linear`` (``torch.ao.quantization.quantize_dynamic``),
  ``"torchao"`` ``torchao-int8-weight`` (torchao ``quantize_`` with ``Int8WeightOnlyConfig``),
  ``"hwsearch"`` ``aten-int8-weight-only`` / ``aten-int4-weight-only`` (hwsearch's
  ``QuantizedLinear``; int4 where ``in_features`` is a multiple of 32);
- Conv with ``weight_bits <= 8`` and float activations → ``fp32`` (no weight-only convolution
  kernel on CPUs);
- anything else (16 or 32 bits) → ``fp32``.

The two ``torch.ao.quantization`` paths are deprecated upstream and kept because measurement
on this CPU shows nothing maintained matching them (``bench/byo_kernels.py``, figures in
docs/compression.md): pt2e with the X86 inductor quantizer is slower than fp32 in eager mode
and no faster compiled; torchao's int8 configs and hwsearch's aten weight-only kernels are
slower than fp32 for these layers. A target where they win selects them with ``weight_only``.

On a CUDA target, Linear layers with ``weight_bits <= 8`` become ``QuantizedLinear`` (the
project's Triton int8 / int4 kernels, see :mod:`hwsearch.hardware.kernels`); the rest runs
in float. Widths below 8 run on the int8 kernels (no narrower ones), except int4 where named.

A model FX cannot trace (data-dependent control flow) falls back for its static layers to the
weight-only path of its Linears, convolutions in fp32; the reason is recorded in ``notes``.
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
DYNAMIC = "int8-dynamic-linear"
TORCHAO_INT8 = "torchao-int8-weight"
INT8 = "aten-int8-weight-only"
INT4 = "aten-int4-weight-only"
CUDA_INT8 = "quantized-linear-int8"
CUDA_INT4 = "quantized-linear-int4"
FP32 = "fp32"
_ORDER = (STATIC, DYNAMIC, TORCHAO_INT8, INT8, INT4, CUDA_INT8, CUDA_INT4, FP32)
WEIGHT_ONLY = ("dynamic", "torchao", "hwsearch")
INT4_GROUP = 32


@dataclass
class Materialized:
    """The deployable model (eval mode), each layer's kernel path and what fell back."""

    model: nn.Module
    paths: dict[str, str]
    notes: list[str] = field(default_factory=list)
    #: the kernel path of a model deployed on another runtime (its own path names)
    kernel_path_override: str | None = None
    #: whether the runtime quantized the model itself, so that it computes other numbers
    #: than the fake-quantized simulation (its quality is evaluated again on it)
    requantized: bool = False

    @property
    def kernel_path(self) -> str:
        """The distinct paths joined, e.g. ``"x86-int8-static+fp32"``."""
        if self.kernel_path_override is not None:
            return self.kernel_path_override
        return "+".join(p for p in _ORDER if p in self.paths.values()) or FP32


def plan(
    model: nn.Module,
    rules: Mapping[str, LayerRule],
    device_kind: str = "cpu",
    weight_only: str = "dynamic",
) -> dict[str, str]:
    """The kernel path each Linear / Conv layer of ``model`` will take."""
    if weight_only not in WEIGHT_ONLY:
        raise ValueError(f"weight_only must be one of {list(WEIGHT_ONLY)}, got {weight_only!r}")
    paths: dict[str, str] = {}
    for name, module in model.named_modules():
        if not isinstance(module, WEIGHT_LAYERS):
            continue
        rule = rules.get(name, LayerRule())
        linear = isinstance(module, nn.Linear)
        if rule.weight_bits > 8:
            paths[name] = FP32
        elif device_kind == "cuda":
            int4 = rule.weight_bits <= 4 and _in_features(module) % INT4_GROUP == 0
            paths[name] = (CUDA_INT4 if int4 else CUDA_INT8) if linear else FP32
        elif rule.act_bits <= 8:
            paths[name] = STATIC
        elif linear and weight_only == "dynamic":
            paths[name] = DYNAMIC
        elif linear and weight_only == "torchao":
            paths[name] = TORCHAO_INT8
        elif linear:
            small = rule.weight_bits <= 4 and _in_features(module) % INT4_GROUP == 0
            paths[name] = INT4 if small else INT8
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
    weight_only: str = "dynamic",
) -> Materialized:
    """The model that really runs for ``baked`` (left unchanged) and its kernel paths.

    ``calibration`` holds input batches for the static activation ranges (one at least when a
    layer runs static int8); ``weight_only`` picks the path of Linears with float
    activations (module docstring).
    """
    if any(parametrize.is_parametrized(m) for m in baked.modules()):
        raise ValueError("materialize takes a baked model; call compress.bake first")
    paths = plan(baked, rules, device_kind, weight_only)
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
                "run as with float activations"
            )
            model = copy.deepcopy(baked).eval()
            fallback = {"dynamic": DYNAMIC, "torchao": TORCHAO_INT8, "hwsearch": INT8}
            for name in static:
                linear = isinstance(model.get_submodule(name), nn.Linear)
                paths[name] = fallback[weight_only] if linear else FP32
    for name, path in paths.items():
        if path in (INT8, INT4, CUDA_INT8, CUDA_INT4):
            layer = model.get_submodule(name)
            assert isinstance(layer, nn.Linear)
            bits = 4 if path in (INT4, CUDA_INT4) else 8
            _set(model, name, QuantizedLinear(layer, bits, group_size=INT4_GROUP))
    torchao = {n for n, p in paths.items() if p == TORCHAO_INT8}
    if torchao:
        _torchao_int8(model, torchao)
    dynamic = {n for n, p in paths.items() if p == DYNAMIC}
    if dynamic:
        with _quiet():
            model = torch.ao.quantization.quantize_dynamic(model, dynamic, dtype=torch.qint8)
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
    for region in static_regions(model, names):
        if region:
            mapping.set_module_name(region, qconfig)
        else:
            mapping.set_global(qconfig)
    with _quiet():
        prepared = prepare_fx(model, mapping, (calibration[0],))
        with torch.no_grad():
            for batch in calibration:
                prepared(batch)
        return convert_fx(prepared)


def static_regions(model: nn.Module, names: Sequence[str]) -> list[str]:
    """The largest submodules whose every Linear / Conv runs static int8 (``""``: all).

    Quantizing whole regions keeps their norms, activations and residual additions in int8
    and lets FX fuse convolution + norm + ReLU; quantizing layer by layer would put a
    quantize / dequantize pair around every convolution.
    """
    chosen = set(names)
    regions: list[str] = []
    for name, module in model.named_modules():
        if any(name == r or name.startswith(f"{r}.") or r == "" for r in regions):
            continue
        inner = [
            (n if not name else f"{name}.{n}" if n else name)
            for n, m in module.named_modules()
            if isinstance(m, WEIGHT_LAYERS)
        ]
        if inner and all(n in chosen for n in inner):
            regions.append(name)
    return regions


def _torchao_int8(model: nn.Module, names: set[str]) -> None:
    from torchao.quantization import Int8WeightOnlyConfig, quantize_

    def chosen(module: nn.Module, fqn: str) -> bool:
        return fqn in names and isinstance(module, nn.Linear)

    with _quiet():
        quantize_(model, Int8WeightOnlyConfig(), filter_fn=chosen)
