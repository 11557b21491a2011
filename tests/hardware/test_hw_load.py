"""The machine's load during a measurement, and the noisy flag, with real busy processes."""

from __future__ import annotations

import time

import torch
from torch import nn

from hwsearch.hardware import MeasureSettings, measure_latency, parse_target
from hwsearch.hardware.load import (
    NOISY_CORE_MARGIN,
    LoadReading,
    LoadWindow,
    noisy_reasons,
    usable_cpus,
)

CPU = parse_target("cpu")
FAST = MeasureSettings(warmup=2, min_repeats=10, max_repeats=40, max_seconds=2.0)
LOAD_KEYS = {
    "window_s",
    "cores",
    "own_cores",
    "others_cores",
    "others_share",
    "steal_cores",
    "steal_share",
    "loadavg_1m",
    "loadavg_5m",
    "loadavg_15m",
}


def test_every_measurement_records_the_load_of_its_window() -> None:
    m = measure_latency(nn.Linear(16, 16), torch.randn(1, 16), CPU, FAST)
    assert set(m.load) == LOAD_KEYS
    assert m.load["cores"] == len(usable_cpus())
    assert m.load["window_s"] >= 0.25  # lengthened to what /proc/stat's ticks can resolve
    assert 0 <= m.load["others_share"] <= 1
    assert m.load["loadavg_1m"] >= 0
    assert m.environment["torch_threads"] == FAST.threads
    assert m.noisy == bool(m.noisy_reasons)


def test_busy_processes_on_every_core_make_the_measurement_noisy(busy_cores: int) -> None:
    m = measure_latency(nn.Linear(16, 16), torch.randn(1, 16), CPU, FAST)
    # Each spinning process takes a core whenever the measurement does not.
    assert m.load["others_cores"] > busy_cores - FAST.threads + NOISY_CORE_MARGIN
    assert m.noisy
    assert any("other processes" in reason for reason in m.noisy_reasons)


def test_a_window_of_busy_processes_reads_as_their_cores(busy_cores: int) -> None:
    with LoadWindow() as window:
        time.sleep(0.6)  # this process idles; the busy loops use the cores
    reading = window.reading
    assert reading is not None and reading.others_cores is not None
    assert reading.others_cores > 0.7 * busy_cores
    assert reading.own_cores < 0.2


def test_a_quiet_window_with_converged_samples_is_clean() -> None:
    quiet = LoadReading(
        window_s=1.0,
        cores=2,
        own_cores=1.0,
        others_cores=0.8,  # one core left to the measurement's one thread
        steal_cores=0.0,
        loadavg=(1.2, 1.0, 0.9),
    )
    assert noisy_reasons(quiet, threads=1, cv=0.01, target_cv=0.05) == []
    # two threads need both cores: the same others now crowd them
    assert noisy_reasons(quiet, threads=2, cv=0.01, target_cv=0.05)
    # dispersion alone flags it
    (reason,) = noisy_reasons(quiet, threads=1, cv=0.2, target_cv=0.05)
    assert "dispersion" in reason


def test_steal_and_the_load_average_count_too() -> None:
    stolen = LoadReading(
        window_s=1.0, cores=2, own_cores=1.0, others_cores=0.2, steal_cores=1.3, loadavg=None
    )
    assert noisy_reasons(stolen, threads=1, cv=0.0, target_cv=0.05)
    loaded = LoadReading(
        window_s=1.0, cores=2, own_cores=1.0, others_cores=0.0, steal_cores=0.0,
        loadavg=(3.5, 3.0, 2.0),
    )  # fmt: skip
    (reason,) = noisy_reasons(loaded, threads=1, cv=0.0, target_cv=0.05)
    assert "load average" in reason
