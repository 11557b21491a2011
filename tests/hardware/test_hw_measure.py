import math
import statistics
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from hwsearch.errors import MeasurementError, SpecError
from hwsearch.hardware import (
    MeasureSettings,
    count_params,
    measure_latency,
    model_size_bytes,
    parse_target,
)

CPU = parse_target("cpu")
FAST = MeasureSettings(warmup=2, min_repeats=10, max_repeats=40, max_seconds=2.0)


def mlp(width: int, depth: int, inputs: int = 32) -> nn.Module:
    layers: list[nn.Module] = [nn.Linear(inputs, width), nn.ReLU()]
    for _ in range(depth - 1):
        layers += [nn.Linear(width, width), nn.ReLU()]
    return nn.Sequential(*layers, nn.Linear(width, 10))


class Recorder(nn.Module):
    """Records what the protocol set up while it runs the model."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(16, 16)
        self.threads: set[int] = set()
        self.training_flags: set[bool] = set()
        self.batch_sizes: set[int] = set()
        self.grad_enabled: set[bool] = set()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.threads.add(torch.get_num_threads())
        self.training_flags.add(self.training)
        self.batch_sizes.add(x.shape[0])
        self.grad_enabled.add(torch.is_grad_enabled())
        return self.linear(x)


def test_statistics_are_consistent_with_the_samples() -> None:
    m = measure_latency(mlp(128, 2), torch.randn(1, 32), CPU, FAST)
    assert FAST.min_repeats <= m.repeats <= FAST.max_repeats
    assert len(m.samples_ms) == m.repeats
    assert all(s > 0 for s in m.samples_ms)
    assert m.median_ms <= m.p90_ms <= max(m.samples_ms)
    assert m.median_ms == pytest.approx(statistics.median(m.samples_ms))
    assert m.mean_ms == pytest.approx(statistics.fmean(m.samples_ms))
    assert m.std_ms == pytest.approx(statistics.stdev(m.samples_ms))
    samples = np.array(m.samples_ms)
    median = np.median(samples)
    assert m.cv == pytest.approx(1.4826 * np.median(np.abs(samples - median)) / median)
    assert m.converged == (m.cv <= FAST.target_cv)
    if m.repeats > FAST.min_repeats and m.repeats < FAST.max_repeats:
        assert m.converged  # stopped early only because the dispersion was low enough


def test_environment_is_attached() -> None:
    settings = MeasureSettings(threads=2, warmup=1, min_repeats=3, max_repeats=5)
    m = measure_latency(nn.Linear(4, 4), torch.randn(1, 4), CPU, settings)
    assert m.environment["torch_version"] == torch.__version__
    assert m.environment["threads"] == 2
    assert m.environment["target"] == "cpu"
    assert {"cpu_model", "logical_cores", "python_version", "platform", "quantized_engine"} <= set(
        m.environment
    )


def test_protocol_sets_threads_eval_and_batch_then_restores() -> None:
    model = Recorder()
    model.train()
    previous = torch.get_num_threads()
    other = 2 if previous != 2 else 1
    torch.set_num_threads(other)
    try:
        settings = MeasureSettings(
            batch_size=3, threads=1 if other == 2 else 2, warmup=1, min_repeats=3, max_repeats=5
        )
        measure_latency(model, torch.randn(1, 16), CPU, settings)
        assert torch.get_num_threads() == other
    finally:
        torch.set_num_threads(previous)
    assert model.threads == {settings.threads}
    assert model.training_flags == {False}
    assert model.batch_sizes == {3}
    assert model.grad_enabled == {False}
    assert model.training  # restored


def test_input_already_at_batch_size_is_used_as_is() -> None:
    model = Recorder()
    settings = MeasureSettings(batch_size=4, warmup=0, min_repeats=2, max_repeats=2)
    measure_latency(model, torch.randn(4, 16), CPU, settings)
    assert model.batch_sizes == {4}
    with pytest.raises(SpecError) as info:
        measure_latency(model, torch.randn(3, 16), CPU, settings)
    assert info.value.field == "example_input"
    assert "3" in info.value.reason and "batch_size=4" in info.value.reason


def test_a_much_bigger_model_measures_slower() -> None:
    tiny = measure_latency(nn.Linear(32, 4), torch.randn(1, 32), CPU, FAST)
    big = measure_latency(mlp(1024, 4), torch.randn(1, 32), CPU, FAST)  # ~3.2M MACs vs 128
    assert big.median_ms > 5 * tiny.median_ms


def test_peak_memory_follows_batch_size() -> None:
    model = nn.Sequential(nn.Linear(256, 1024), nn.ReLU(), nn.Linear(1024, 10))
    settings = MeasureSettings(warmup=1, min_repeats=2, max_repeats=2)
    x = torch.randn(1, 256)
    small = measure_latency(model, x, CPU, settings)
    large = measure_latency(
        model, x, CPU, MeasureSettings(batch_size=64, warmup=1, min_repeats=2, max_repeats=2)
    )
    weights = count_params(model) * 4
    # one batch-1 inference: weights, its input and at least the 1024-wide hidden activation
    assert small.peak_memory_bytes >= weights + 256 * 4 + 1024 * 4
    # 63 more rows: input rows plus the linear output and the ReLU output, alive together
    grown = large.peak_memory_bytes - small.peak_memory_bytes
    assert grown >= 63 * (256 + 2 * 1024) * 4
    assert grown < 63 * (256 + 4 * 1024 + 10) * 4  # and not more than everything it made


def test_peak_memory_sees_quantized_weights() -> None:
    from torch.ao.quantization import quantize_dynamic

    model = nn.Sequential(nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quantized = quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8)
    settings = MeasureSettings(warmup=1, min_repeats=2, max_repeats=2)
    fp = measure_latency(model, torch.randn(1, 512), CPU, settings)
    q = measure_latency(quantized, torch.randn(1, 512), CPU, settings)
    assert q.peak_memory_bytes >= model_size_bytes(quantized) > 512 * 512
    assert q.peak_memory_bytes < fp.peak_memory_bytes


def test_loose_target_stops_at_min_repeats_and_converges() -> None:
    settings = MeasureSettings(warmup=1, min_repeats=7, max_repeats=50, target_cv=100.0)
    m = measure_latency(mlp(64, 1), torch.randn(1, 32), CPU, settings)
    assert m.repeats == 7
    assert m.converged


def test_unreachable_target_stops_at_max_repeats() -> None:
    settings = MeasureSettings(warmup=1, min_repeats=5, max_repeats=12, target_cv=1e-12)
    m = measure_latency(mlp(256, 2), torch.randn(1, 32), CPU, settings)
    assert m.repeats == 12
    assert not m.converged


def test_time_budget_stops_after_min_repeats() -> None:
    settings = MeasureSettings(
        warmup=0, min_repeats=4, max_repeats=10_000, target_cv=1e-12, max_seconds=1e-6
    )
    m = measure_latency(mlp(256, 2), torch.randn(1, 32), CPU, settings)
    assert m.repeats == 4
    assert not m.converged


def test_failing_forward_is_a_measurement_error_and_threads_are_restored() -> None:
    before = torch.get_num_threads()
    with pytest.raises(MeasurementError, match=r"failed on cpu.*\(1, 5\)"):
        measure_latency(nn.Linear(4, 4), torch.randn(1, 5), CPU, FAST)
    assert torch.get_num_threads() == before


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("batch_size", 0),
        ("batch_size", 1.5),
        ("batch_size", True),
        ("threads", 0),
        ("warmup", -1),
        ("min_repeats", 1),
        ("max_repeats", 1),
        ("target_cv", 0.0),
        ("target_cv", -0.1),
        ("target_cv", math.nan),
        ("target_cv", "0.05"),
        ("max_seconds", 0),
        ("max_seconds", math.inf),
    ],
)
def test_settings_reject_bad_values(field: str, value: object) -> None:
    with pytest.raises(ValueError) as info:
        MeasureSettings(**{field: value})  # type: ignore[arg-type]
    assert field in str(info.value)
    assert repr(value) in str(info.value)


def test_settings_reject_max_below_min_and_positional_use() -> None:
    with pytest.raises(ValueError, match=r"max_repeats must be >= min_repeats \(20\), got 10"):
        MeasureSettings(max_repeats=10)
    with pytest.raises(TypeError):
        MeasureSettings(1)  # type: ignore[call-arg]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA is not available on this machine")
def test_cuda_measurement() -> None:
    target = parse_target("cuda:0")
    model = mlp(256, 2)
    m = measure_latency(model, torch.randn(1, 32), target, FAST)
    assert FAST.min_repeats <= m.repeats <= FAST.max_repeats
    assert m.median_ms > 0
    assert m.peak_memory_bytes >= model_size_bytes(model)
    assert m.environment["cuda_device_name"]
    assert next(model.parameters()).device.type == "cuda"
