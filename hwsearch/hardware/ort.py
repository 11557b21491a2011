"""The runtime of the ONNX Runtime targets ``ort:cpu`` and ``ort:cuda[:N]``.

A candidate on an ORT target is not run by PyTorch: its float model (compression baked into
the weights) is exported to ONNX, quantized with ORT's own tools where its bit-widths ask
for it, and loaded in an ``onnxruntime.InferenceSession`` with fixed threads. Per layer, by
its ``(weight_bits, act_bits)``:

* ``weight_bits <= 8`` and ``act_bits == 8`` → static int8, QDQ format
  (``quantize_static``: per-channel symmetric int8 weights, int8 activations with ranges
  calibrated on the evaluation's calibration batches) — kernel path ``ort-int8-static-qdq``.
  When every layer is static the whole graph is quantized (ReLUs, additions, pooling in
  int8), else only the static layers' nodes. ORT fuses the QDQ pairs into ``QLinearConv``,
  ``QLinearMatMul`` and friends when the session optimises the graph;
* Linear with ``weight_bits <= 8`` and float activations → dynamic int8
  (``quantize_dynamic``, ``MatMulInteger`` / ``DynamicQuantizeMatMul``) —
  ``ort-int8-dynamic``; convolutions with float activations stay fp32 (as with PyTorch);
* anything else (16 or 32 bits) → ``ort-fp32``.

Weight widths below 8 run on the int8 kernels (their values re-quantized to the int8 grid;
no narrower ORT CPU kernel is used). Activations below 8 bits have no ORT kernel at all:
the target kinds (:class:`~hwsearch.hardware.targets.OrtKind`, torch-free, in
:mod:`hwsearch.hardware.targets`) make them a spec error naming the knob, and
:func:`deploy` refuses them too.

The session (:class:`OrtModule`, an ``nn.Module`` over it so that the project's measurement
protocol, :func:`hwsearch.hardware.measure_latency`, times it unchanged) runs with
``intra_op_num_threads`` = the measurement's ``threads``, ``inter_op_num_threads`` = 1,
sequential execution and ``ORT_ENABLE_ALL``; :func:`with_runtime` adds the ORT version,
execution provider, optimisation level and thread counts to the measurement's environment.
``onnxruntime`` is imported only where a candidate is deployed.
"""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch
from torch import nn

from hwsearch.errors import HwsearchError, SpecError
from hwsearch.hardware.targets import (
    CPU_PROVIDER,
    CUDA_PROVIDER,
    ORT_CPU,
    ORT_RUNTIME,
    OrtCudaKind,
    OrtKind,
    Target,
    act_bits_problem,
    available_providers,
)

if TYPE_CHECKING:
    from hwsearch.hardware.measure import LatencyMeasurement

RUNTIME = ORT_RUNTIME
STATIC = "ort-int8-static-qdq"
DYNAMIC = "ort-int8-dynamic"
FP32 = "ort-fp32"
_ORDER = (STATIC, DYNAMIC, FP32)
GRAPH_OPTIMIZATION_LEVEL = "ORT_ENABLE_ALL"
INTER_OP_THREADS = 1
OPSET = 17
INPUT, OUTPUT = "input", "output"
_WEIGHT_OPS = ("Conv", "Gemm", "MatMul")


def provider_of(target: Target) -> str:
    """The execution provider a target of an ORT kind runs on."""
    from hwsearch.hardware.targets import target_kind

    kind = target_kind(target)
    if not isinstance(kind, OrtKind):
        raise HwsearchError(f"{target.name!r} is not an ONNX Runtime target")
    return kind.provider


def is_ort(target: Target) -> bool:
    """Whether candidates on ``target`` run in ONNX Runtime."""
    from hwsearch.hardware.targets import target_kind

    return target_kind(target).runtime == RUNTIME


# --------------------------------------------------------------------------------------------
# The session


class OrtModule(nn.Module):
    """An ``InferenceSession`` of one ONNX model, callable like the model it came from
    (one float tensor in, one tensor out), so the measurement protocol times it as is."""

    def __init__(
        self,
        onnx_model: bytes,
        *,
        provider: str = CPU_PROVIDER,
        device_index: int = 0,
        threads: int = 1,
    ) -> None:
        super().__init__()
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = INTER_OP_THREADS
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = getattr(
            ort.GraphOptimizationLevel, GRAPH_OPTIMIZATION_LEVEL
        )
        options.log_severity_level = 3  # errors only
        providers: list[Any] = [provider]
        if provider == CUDA_PROVIDER:
            providers = [(CUDA_PROVIDER, {"device_id": device_index}), CPU_PROVIDER]
        self.session = ort.InferenceSession(onnx_model, options, providers=providers)
        self.input_name = self.session.get_inputs()[0].name
        self.weight_bytes = initializer_bytes(onnx_model)
        self.info = {
            "runtime": RUNTIME,
            "ort_version": ort.__version__,
            "execution_provider": self.session.get_providers()[0],
            "graph_optimization_level": GRAPH_OPTIMIZATION_LEVEL,
            "intra_op_num_threads": threads,
            "inter_op_num_threads": INTER_OP_THREADS,
        }

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        array = np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float32)
        return torch.from_numpy(self.session.run(None, {self.input_name: array})[0])


def initializer_bytes(onnx_model: bytes) -> int:
    """Bytes of an ONNX model's initializers (its weights at their stored types)."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load_from_string(onnx_model).graph
    return sum(numpy_helper.to_array(t).nbytes for t in graph.initializer)


def with_runtime(latency: LatencyMeasurement, model: nn.Module) -> LatencyMeasurement:
    """``latency`` of ``model`` with the runtime's record added when ``model`` is an
    :class:`OrtModule`: the ORT version, execution provider, optimisation level and thread
    counts join the environment, and the weights ORT holds join the peak memory (the
    PyTorch profiler sees only the input and output; ORT's own arena is not seen)."""
    if not isinstance(model, OrtModule):
        return latency
    return replace(
        latency,
        environment={**latency.environment, **model.info},
        peak_memory_bytes=latency.peak_memory_bytes + model.weight_bytes,
    )


# --------------------------------------------------------------------------------------------
# Export and quantization


def layer_paths(model: nn.Module, bits: Mapping[str, tuple[int, int]]) -> dict[str, str]:
    """The ORT kernel path of each Linear / Conv of ``model`` by its ``(weight_bits,
    act_bits)`` (layers ``bits`` leaves out are fp32). :class:`SpecError` on ``act_bits``
    below 8."""
    paths: dict[str, str] = {}
    for name, module in model.named_modules():
        if not isinstance(module, nn.Linear | nn.Conv1d | nn.Conv2d):
            continue
        weight_bits, act_bits = bits.get(name, (32, 32))
        problem = act_bits_problem(act_bits)
        if problem is not None:
            raise SpecError("act_bits", f"layer {name!r}: {problem}")
        if weight_bits <= 8 and act_bits <= 8:
            paths[name] = STATIC
        elif weight_bits <= 8 and isinstance(module, nn.Linear):
            paths[name] = DYNAMIC
        else:
            paths[name] = FP32
    return paths


def kernel_path_name(paths: Mapping[str, str]) -> str:
    """The distinct paths joined, e.g. ``"ort-int8-static-qdq+ort-fp32"``."""
    return "+".join(p for p in _ORDER if p in paths.values()) or FP32


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Hides the exporter's warnings and the quantizer's advice on the root logger."""
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(previous)


def export_onnx(model: nn.Module, example: torch.Tensor) -> bytes:
    """``model`` (float, eval mode) as ONNX with a dynamic batch dimension."""
    buffer = io.BytesIO()
    with _quiet(), torch.no_grad():
        torch.onnx.export(
            model.eval(),
            (example,),
            cast(Any, buffer),  # a file-like object works; the stubs say a path
            input_names=[INPUT],
            output_names=[OUTPUT],
            dynamic_axes={INPUT: {0: "batch"}, OUTPUT: {0: "batch"}},
            opset_version=OPSET,
            dynamo=False,
        )
    return buffer.getvalue()


def layer_of(node_name: str) -> str:
    """The module name of an ONNX node of the TorchScript exporter, from its scope:
    ``/stages.1/stages.1.0/shortcut/shortcut.0/Conv`` → ``stages.1.0.shortcut.0`` (an item
    of a container is scoped by its name inside the container after the container's own)."""
    parts: list[str] = []
    for segment in node_name.strip("/").split("/")[:-1]:
        if parts and segment.startswith(parts[-1] + "."):
            parts[-1] = segment
        else:
            parts.append(segment)
    return ".".join(parts)


def _nodes_by_layer(graph: Any) -> dict[str, list[str]]:
    """The weight nodes (Conv, Gemm, MatMul) of an exported graph by module name."""
    out: dict[str, list[str]] = {}
    for node in graph.node:
        if node.op_type in _WEIGHT_OPS:
            out.setdefault(layer_of(node.name), []).append(node.name)
    return out


class _Batches:
    """ORT's ``CalibrationDataReader`` protocol over a list of input batches."""

    def __init__(self, batches: Sequence[torch.Tensor]) -> None:
        self._it = iter(batches)

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self._it, None)
        if batch is None:
            return None
        return {INPUT: np.ascontiguousarray(batch.detach().cpu().numpy(), dtype=np.float32)}

    def rewind(self) -> None:  # a reader is used once
        pass


def quantize(
    onnx_model: bytes,
    paths: dict[str, str],
    calibration: Sequence[torch.Tensor],
) -> tuple[bytes, list[str]]:
    """``onnx_model`` quantized by ORT's tools per layer path; returns the model and notes.
    A layer whose nodes are not found runs in fp32 (its entry in ``paths`` says so)."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )

    by_layer = _nodes_by_layer(onnx.load_from_string(onnx_model).graph)
    notes: list[str] = []
    nodes: dict[str, list[str]] = {STATIC: [], DYNAMIC: []}
    for layer, path in paths.items():
        if path == FP32:
            continue
        found = by_layer.get(layer, [])
        if not found:
            notes.append(f"no ONNX node of layer {layer!r} found; it runs in fp32")
            paths[layer] = FP32
        nodes[path] += found
    if not nodes[STATIC] and not nodes[DYNAMIC]:
        return onnx_model, notes
    with tempfile.TemporaryDirectory(prefix="hwsearch-ort-") as tmp, _quiet():
        current = Path(tmp) / "float.onnx"
        current.write_bytes(onnx_model)
        if nodes[STATIC]:
            if not calibration:
                raise ValueError("static int8 quantization needs at least one calibration batch")
            every = all(p == STATIC for p in paths.values())  # quantize the whole graph
            reader: CalibrationDataReader = _Batches(calibration)
            out = Path(tmp) / "static.onnx"
            quantize_static(
                current,
                out,
                reader,
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                activation_type=QuantType.QInt8,
                weight_type=QuantType.QInt8,
                nodes_to_quantize=None if every else nodes[STATIC],
            )
            current = out
        if nodes[DYNAMIC]:
            out = Path(tmp) / "dynamic.onnx"
            # quantize_dynamic rewrites a Gemm as MatMul + Add before quantizing the MatMul
            names = nodes[DYNAMIC] + [f"{n}_MatMul" for n in nodes[DYNAMIC]]
            quantize_dynamic(
                current,
                out,
                weight_type=QuantType.QInt8,
                nodes_to_quantize=names,
                op_types_to_quantize=["MatMul", "Gemm"],
                per_channel=False,
            )
            current = out
        return current.read_bytes(), notes


@dataclass
class OrtDeployed:
    """A candidate deployed on ORT: the session, the ONNX bytes that it runs (quantized
    where ``quantized``), each layer's kernel path and what fell back."""

    model: OrtModule
    onnx_model: bytes
    paths: dict[str, str]
    quantized: bool
    notes: list[str] = field(default_factory=list)

    @property
    def kernel_path(self) -> str:
        return kernel_path_name(self.paths)


def onnx_for(
    model: nn.Module,
    example: torch.Tensor,
    bits: Mapping[str, tuple[int, int]],
    calibration: Sequence[torch.Tensor],
) -> tuple[bytes, dict[str, str], list[str]]:
    """The ONNX model ORT runs for the baked float ``model`` (moved to the CPU in eval
    mode): exported, and quantized per layer by ``bits`` (module name →
    ``(weight_bits, act_bits)``) with the ``calibration`` batches; with each layer's path
    and the notes."""
    model = model.cpu().eval()
    paths = layer_paths(model, bits)
    exported = export_onnx(model, example[:1].cpu())
    if all(p == FP32 for p in paths.values()):
        return exported, paths, []
    quantized, notes = quantize(exported, paths, [b.cpu() for b in calibration])
    return quantized, paths, notes


def deploy(
    model: nn.Module,
    example: torch.Tensor,
    bits: Mapping[str, tuple[int, int]],
    calibration: Sequence[torch.Tensor],
    *,
    target: Target,
    threads: int,
) -> OrtDeployed:
    """``model`` on ORT (see :func:`onnx_for`), in a session of ``target``'s provider."""
    onnx_model, paths, notes = onnx_for(model, example, bits, calibration)
    session = OrtModule(
        onnx_model,
        provider=provider_of(target),
        device_index=target.device_index or 0,
        threads=threads,
    )
    quantized = any(p != FP32 for p in paths.values())
    return OrtDeployed(session, onnx_model, paths, quantized, notes)


__all__ = [
    "DYNAMIC",
    "FP32",
    "ORT_CPU",
    "RUNTIME",
    "STATIC",
    "OrtCudaKind",
    "OrtDeployed",
    "OrtKind",
    "OrtModule",
    "act_bits_problem",
    "available_providers",
    "deploy",
    "is_ort",
    "onnx_for",
    "with_runtime",
]
