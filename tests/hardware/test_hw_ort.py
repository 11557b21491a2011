"""ONNX Runtime targets: names, the provider check, the bit-widths ORT runs, and the deployed
session against the PyTorch model it came from (real export, real ORT quantization)."""

from __future__ import annotations

import os
from pathlib import Path

import onnxruntime as ort
import pytest
import torch
from torch import nn

from hwsearch.errors import SpecError
from hwsearch.hardware import MeasureSettings, measure_latency, parse_target, parse_target_name
from hwsearch.hardware.ort import (
    DYNAMIC,
    FP32,
    STATIC,
    OrtModule,
    deploy,
    is_ort,
    layer_of,
    layer_paths,
    with_runtime,
)
from hwsearch.hardware.targets import target_kind


def test_ort_names_parse_and_cpu_is_here() -> None:
    cpu = parse_target("ort:cpu")
    assert (cpu.name, cpu.kind, str(cpu.device)) == ("ort:cpu", "ort", "cpu")
    assert is_ort(cpu) and not is_ort(parse_target("cpu"))
    cuda = parse_target_name("ORT:cuda")
    assert (cuda.name, cuda.device_index) == ("ort:cuda:0", 0)
    assert target_kind(cuda).resources(cuda) == {"num_gpus": 1.0}
    with pytest.raises(SpecError, match="'ort:cpu' or 'ort:cuda:N'"):
        parse_target_name("ort:gpu")


@pytest.mark.skipif(
    "CUDAExecutionProvider" in ort.get_available_providers(), reason="ORT has CUDA here"
)
def test_ort_cuda_without_the_provider_is_a_target_error() -> None:
    with pytest.raises(SpecError, match="CUDAExecutionProvider") as info:
        parse_target("ort:cuda:0")
    assert info.value.field == "target"


def test_activation_bits_below_8_are_refused_by_the_kind() -> None:
    kind = target_kind(parse_target_name("ort:cpu"))
    assert kind.value_problem("act_bits", 8) is None
    assert kind.value_problem("act_bits", 32) is None
    assert kind.value_problem("weight_bits", 4) is None  # runs on the int8 kernels
    problem = kind.value_problem("layers[features.*].act_bits", 4)
    assert problem is not None and "act_bits 4" in problem
    with pytest.raises(SpecError) as info:
        layer_paths(nn.Sequential(nn.Linear(4, 4)), {"0": (8, 2)})
    assert info.value.field == "act_bits"


def test_layer_names_come_back_from_the_exporters_scopes() -> None:
    assert layer_of("/stages.1/stages.1.0/shortcut/shortcut.0/Conv") == "stages.1.0.shortcut.0"
    assert layer_of("/blocks.0/linear/Gemm") == "blocks.0.linear"
    assert layer_of("/features/features.3/conv/Conv") == "features.3.conv"
    assert layer_of("/head/MatMul") == "head"


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(8 * 64, 32),
        nn.ReLU(),
        nn.Linear(32, 10),
    ).eval()


@pytest.mark.parametrize(
    ("bits", "paths"),
    [
        ({}, {"0": FP32, "3": FP32, "5": FP32}),
        ({"3": (8, 32), "5": (8, 32)}, {"0": FP32, "3": DYNAMIC, "5": DYNAMIC}),
        ({n: (8, 8) for n in ("0", "3", "5")}, {"0": STATIC, "3": STATIC, "5": STATIC}),
        ({"0": (8, 8), "3": (4, 32)}, {"0": STATIC, "3": DYNAMIC, "5": FP32}),
    ],
)
def test_deployed_session_computes_what_the_model_computes(
    bits: dict[str, tuple[int, int]], paths: dict[str, str]
) -> None:
    model = _net()
    calibration = [
        torch.randn(16, 1, 8, 8, generator=torch.Generator().manual_seed(i)) for i in range(4)
    ]
    deployed = deploy(
        model, calibration[0][:1], bits, calibration, target=parse_target("ort:cpu"), threads=1
    )
    assert deployed.paths == paths
    assert deployed.quantized == any(p != FP32 for p in paths.values())
    ops = {n.op_type for n in __import__("onnx").load_from_string(deployed.onnx_model).graph.node}
    if STATIC in paths.values():
        assert "QuantizeLinear" in ops
    if DYNAMIC in paths.values():
        assert "MatMulInteger" in ops
    x = torch.randn(32, 1, 8, 8, generator=torch.Generator().manual_seed(9))
    with torch.no_grad():
        want = model(x)
    got = deployed.model(x)
    assert got.shape == want.shape  # the batch dimension is dynamic
    tolerance = 1e-4 if not deployed.quantized else 0.1 * float(want.abs().max())
    assert float((got - want).abs().max()) <= tolerance


def test_measurement_records_ort_version_provider_level_and_threads() -> None:
    model = _net()
    target = parse_target("ort:cpu")
    deployed = deploy(model, torch.zeros(1, 1, 8, 8), {}, [], target=target, threads=1)
    settings = MeasureSettings(warmup=1, min_repeats=3, max_repeats=5)
    latency = with_runtime(
        measure_latency(deployed.model, torch.zeros(1, 1, 8, 8), target, settings), deployed.model
    )
    env = latency.environment
    assert env["ort_version"] == ort.__version__
    assert env["execution_provider"] == "CPUExecutionProvider"
    assert env["graph_optimization_level"] == "ORT_ENABLE_ALL"
    assert (env["intra_op_num_threads"], env["inter_op_num_threads"]) == (1, 1)
    assert latency.peak_memory_bytes >= deployed.model.weight_bytes > 8 * 64 * 32 * 4
    assert isinstance(deployed.model, OrtModule) and latency.median_ms > 0


def test_an_ort_spec_is_checked_without_torch_or_onnxruntime(tmp_path: Path) -> None:
    """Naming an ORT target, and refusing its bit-widths, imports neither torch nor ORT."""
    import subprocess
    import sys
    import textwrap

    root = Path(__file__).resolve().parents[2]
    code = textwrap.dedent(
        """
        import sys
        from hwsearch.errors import SpecErrors
        from hwsearch.search.spec import parse_spec
        spec = {
            "name": "n", "family": "mlp", "target": "ort:cpu", "budget": {"evaluations": 2},
            "space": {"act_bits": {"type": "choice", "values": [4, 8]}},
            "objectives": [{"metric": "accuracy", "direction": "maximize"}],
        }
        try:
            parse_spec(spec)
        except SpecErrors as exc:
            print([e.field for e in exc.errors])
        print(sorted(m for m in ("torch", "onnxruntime") if m in sys.modules))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["['space.act_bits.values[0]']", "[]"]
