"""The latency and memory measurement protocol.

One protocol for every target, so numbers are comparable:

1. the model goes to eval mode and runs under ``torch.inference_mode()`` with a fixed
   intra-op thread count (``torch.set_num_threads``; the previous count and the model's
   training flag are restored afterwards);
2. ``warmup`` untimed runs (lazy initialisation, allocator and cache warm-up);
3. timed runs, one inference each — ``time.perf_counter_ns`` on the CPU, CUDA events with
   synchronisation on a GPU — until at least ``min_repeats`` samples are in and either the
   dispersion ``cv`` is at most ``target_cv``, ``max_repeats`` samples are in, or the timed
   phase has lasted ``max_seconds``;
4. one more, untimed inference to measure peak memory.

The machine's load is read over steps 2–4 (:mod:`hwsearch.hardware.load`): CPU time other
processes took on this process's cores, CPU time stolen by the hypervisor, and the load
average. ``/proc/stat`` counts in ticks of 10 ms, so a window shorter than
``LOAD_MIN_WINDOW_S`` is lengthened with untimed inferences (the same work, so the reading
still describes the conditions of the measurement). The measurement is ``noisy`` when that
load or the samples' dispersion says the figure is not clean; the reasons are kept.

``cv`` is a *robust* coefficient of variation: ``1.4826 × MAD / median``, where MAD is the
median absolute deviation from the median. For normally distributed samples it equals
``std / mean``; unlike it, a few outliers (a descheduled thread, a page fault) do not keep
the run from converging. The classical ``std_ms`` (sample standard deviation) and
``mean_ms`` are reported too.
"""

from __future__ import annotations

import math
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.profiler import ProfilerActivity, profile

from hwsearch.errors import MeasurementError, SpecError
from hwsearch.hardware.counts import model_size_bytes
from hwsearch.hardware.environment import environment
from hwsearch.hardware.load import LoadWindow, noisy_reasons
from hwsearch.hardware.targets import Target

# Scales the MAD to the standard deviation for normally distributed samples.
_MAD_TO_STD = 1.4826
#: The shortest window the load is read over (see the module docstring).
LOAD_MIN_WINDOW_S = 0.25


@dataclass(frozen=True, kw_only=True)
class MeasureSettings:
    """How to measure: batch size, threads, warm-up and the stopping rule.

    ``max_seconds`` bounds the timed phase once ``min_repeats`` samples are in; the minimum
    is always taken, however slow the model.
    """

    batch_size: int = 1
    threads: int = 1
    warmup: int = 10
    min_repeats: int = 20
    max_repeats: int = 200
    target_cv: float = 0.05
    max_seconds: float = 10.0

    def __post_init__(self) -> None:
        _check_int("batch_size", self.batch_size, minimum=1)
        _check_int("threads", self.threads, minimum=1)
        _check_int("warmup", self.warmup, minimum=0)
        _check_int("min_repeats", self.min_repeats, minimum=2)
        _check_int("max_repeats", self.max_repeats, minimum=2)
        if self.max_repeats < self.min_repeats:
            raise ValueError(
                f"max_repeats must be >= min_repeats ({self.min_repeats}), got {self.max_repeats!r}"
            )
        _check_positive("target_cv", self.target_cv)
        _check_positive("max_seconds", self.max_seconds)


def _check_int(name: str, value: object, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _check_positive(name: str, value: object) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")


@dataclass(frozen=True)
class LatencyMeasurement:
    """The result of :func:`measure_latency`; times in milliseconds per batch.

    ``cv`` is the robust coefficient of variation described in the module docstring;
    ``converged`` says whether it reached ``target_cv`` before ``max_repeats`` or
    ``max_seconds`` stopped the run. ``peak_memory_bytes`` is described in
    :func:`measure_latency`; ``environment`` is :func:`hwsearch.hardware.environment.environment`.
    """

    median_ms: float
    p90_ms: float
    mean_ms: float
    std_ms: float
    cv: float
    repeats: int
    converged: bool
    samples_ms: tuple[float, ...]
    peak_memory_bytes: int
    environment: dict[str, Any]
    #: :meth:`hwsearch.hardware.load.LoadReading.to_dict` of the measurement's window
    load: dict[str, Any] = field(default_factory=dict)
    #: whether the load or the dispersion says the figure is not clean, and why
    noisy: bool = False
    noisy_reasons: tuple[str, ...] = ()


def robust_cv(samples: list[float] | tuple[float, ...]) -> float:
    """``1.4826 × MAD / median`` of the samples (0 for an all-zero list)."""
    median = statistics.median(samples)
    if median == 0:
        return 0.0
    mad = statistics.median(abs(s - median) for s in samples)
    return _MAD_TO_STD * mad / median


def measure_latency(
    model: nn.Module,
    example_input: torch.Tensor,
    target: Target,
    settings: MeasureSettings,
) -> LatencyMeasurement:
    """Measure the latency and peak memory of ``model`` on ``target`` (see module docstring).

    ``example_input`` holds one sample with a leading batch dimension of 1 (it is repeated
    to ``settings.batch_size`` rows) or already has ``settings.batch_size`` rows. The model
    and input are moved to the target's device; ``nn.Module.to`` moves the model in place.

    ``peak_memory_bytes`` is the memory one inference needs at its peak:

    * CPU: the bytes of parameters (quantized ones at their stored width) and buffers, plus
      the input batch, plus the peak of the running sum of the allocations and frees the
      PyTorch profiler records during one forward pass (activations, output, temporaries).
      Memory that kernels allocate outside the PyTorch allocator (oneDNN or fbgemm scratch)
      is not seen.
    * CUDA: ``torch.cuda.max_memory_allocated`` over one forward pass after
      ``reset_peak_memory_stats``: everything the process holds on that device through the
      PyTorch allocator at the peak (model, input, activations, and any other live tensors
      of the process there), not the allocator's cached reserve.

    Raises :class:`MeasurementError` when the forward pass fails on the target.
    """
    if not isinstance(settings, MeasureSettings):
        raise TypeError(f"settings must be a MeasureSettings, got {type(settings).__name__}")
    batch = _batch(example_input, settings.batch_size)
    device = target.device
    was_training = model.training
    previous_threads = torch.get_num_threads()
    load = LoadWindow()
    try:
        torch.set_num_threads(settings.threads)
        torch_threads = torch.get_num_threads()  # what the runs below use, as torch says
        model.to(device)
        model.eval()
        batch = batch.to(device)
        with torch.inference_mode():
            if device.type == "cuda":  # timed with CUDA events, whatever the target kind
                with torch.cuda.device(device), load:
                    for _ in range(settings.warmup):
                        model(batch)
                    samples = _timed_runs(settings, _cuda_timer(model, batch))
                    peak = _cuda_peak_memory(model, batch, device)
                    _lengthen(load, lambda: model(batch), torch.cuda.synchronize)
            else:
                with load:
                    for _ in range(settings.warmup):
                        model(batch)
                    samples = _timed_runs(settings, _cpu_timer(model, batch))
                    peak = _cpu_peak_memory(model, batch)
                    _lengthen(load, lambda: model(batch))
    except MeasurementError:
        raise
    except (RuntimeError, ValueError, TypeError, IndexError) as exc:
        raise MeasurementError(
            f"forward pass of {type(model).__name__} failed on {target.name} with input of "
            f"shape {tuple(batch.shape)}: {exc}"
        ) from exc
    finally:
        torch.set_num_threads(previous_threads)
        model.train(was_training)

    array = np.asarray(samples, dtype=np.float64)
    cv = robust_cv(samples)
    reasons = noisy_reasons(
        load.reading, threads=settings.threads, cv=cv, target_cv=settings.target_cv
    )
    record = environment(target, settings.threads)
    record["torch_threads"] = torch_threads
    return LatencyMeasurement(
        median_ms=float(np.median(array)),
        p90_ms=float(np.percentile(array, 90)),
        mean_ms=float(array.mean()),
        std_ms=float(array.std(ddof=1)),
        cv=cv,
        repeats=len(samples),
        converged=cv <= settings.target_cv,
        samples_ms=tuple(samples),
        peak_memory_bytes=peak,
        environment=record,
        load=load.reading.to_dict() if load.reading is not None else {},
        noisy=bool(reasons),
        noisy_reasons=tuple(reasons),
    )


def _lengthen(
    window: LoadWindow, run_once: Callable[[], object], sync: Callable[[], None] | None = None
) -> None:
    """Untimed inferences until ``window`` has lasted ``LOAD_MIN_WINDOW_S``."""
    started = window.started
    while started is not None and time.monotonic() - started < LOAD_MIN_WINDOW_S:
        run_once()
        if sync is not None:
            sync()


def _batch(example_input: torch.Tensor, batch_size: int) -> torch.Tensor:
    if not isinstance(example_input, torch.Tensor) or example_input.dim() == 0:
        raise SpecError(
            field="example_input",
            reason="must be a tensor with a leading batch dimension",
        )
    rows = example_input.shape[0]
    if rows == batch_size:
        return example_input
    if rows == 1:
        return example_input.repeat(batch_size, *([1] * (example_input.dim() - 1)))
    raise SpecError(
        field="example_input",
        reason=f"leading (batch) dimension is {rows}; expected 1 or batch_size={batch_size}",
    )


def _timed_runs(settings: MeasureSettings, time_one: Callable[[], float]) -> list[float]:
    samples: list[float] = []
    deadline = time.perf_counter() + settings.max_seconds
    while True:
        samples.append(time_one())
        n = len(samples)
        if n < settings.min_repeats:
            continue
        if (
            n >= settings.max_repeats
            or time.perf_counter() >= deadline
            or robust_cv(samples) <= settings.target_cv
        ):
            return samples


def _cpu_timer(model: nn.Module, batch: torch.Tensor) -> Callable[[], float]:
    def time_one() -> float:
        start = time.perf_counter_ns()
        model(batch)
        return (time.perf_counter_ns() - start) / 1e6

    return time_one


def _cuda_timer(model: nn.Module, batch: torch.Tensor) -> Callable[[], float]:
    torch.cuda.synchronize()  # queued warm-up work must not leak into the first sample
    start = torch.cuda.Event(enable_timing=True)
    end = torch.cuda.Event(enable_timing=True)

    def time_one() -> float:
        start.record()
        model(batch)
        end.record()
        end.synchronize()
        return float(start.elapsed_time(end))

    return time_one


@contextmanager
def _native_stderr_silenced() -> Iterator[None]:
    """Hide what native code writes to file descriptor 2 (the profiler logs its start/stop)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _cpu_peak_memory(model: nn.Module, batch: torch.Tensor) -> int:
    with (
        _native_stderr_silenced(),
        profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof,
    ):
        model(batch)
    results = prof.profiler.kineto_results if prof.profiler is not None else None
    if results is None:
        raise MeasurementError("the PyTorch profiler returned no memory events")
    # Each "[memory]" event is one allocation (nbytes > 0) or free (nbytes < 0).
    events = sorted(
        (e.start_ns(), e.nbytes())
        for e in results.events()
        if e.name() == "[memory]" and e.device_type() == torch.autograd.DeviceType.CPU
    )
    running = peak = 0
    for _, nbytes in events:
        running += nbytes
        peak = max(peak, running)
    input_bytes = batch.numel() * batch.element_size()
    return model_size_bytes(model) + input_bytes + peak


def _cuda_peak_memory(model: nn.Module, batch: torch.Tensor, device: torch.device) -> int:
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    model(batch)
    torch.cuda.synchronize(device)
    return int(torch.cuda.max_memory_allocated(device))
