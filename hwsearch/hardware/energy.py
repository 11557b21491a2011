"""Energy meters: NVML on NVIDIA GPUs, RAPL on Linux CPUs, otherwise an explicit estimate.

A meter measures the energy of a *window*: ``with meter.window() as w: ...`` then
``w.reading``. The evaluation opens the window around the latency measurement of a
candidate, so energy and latency come from the same run, and turns the window's average
power into energy per inference (:func:`energy_per_inference`):

    energy per inference = average power over the run × median latency / batch size

* :class:`NvmlMeter` (``measured``): the GPU's total-energy counter
  (``nvmlDeviceGetTotalEnergyConsumption``, millijoules, Volta and newer) through
  ``nvidia-ml-py``. The board alone; the host CPU is not counted.
* :class:`RaplMeter` (``measured``): the package energy counters of Linux's powercap
  interface (``/sys/class/powercap/intel-rapl:N/energy_uj``, wrap-around handled), when the
  files are readable. They count the whole package, other processes included.
* :class:`EstimateMeter` (``estimated``): no counter. On a CPU, ``TDP / cores × CPU
  seconds of this process`` — TDP per core times utilisation times wall time, with the
  utilisation measured from the process's CPU time; on a GPU without NVML, the board power
  over the wall time (utilisation taken as 1). The model is named in the reading's details.

:func:`select_meter` picks one by the target and the profile's ``meter`` (``auto`` takes
the first of NVML/RAPL that works, else the estimate).
"""

from __future__ import annotations

import abc
import importlib
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from hwsearch.errors import MeasurementError, SpecError
from hwsearch.hardware.profiles import TargetProfile
from hwsearch.hardware.targets import Target, target_kind
from hwsearch.records import Provenance

POWERCAP_ROOT = Path("/sys/class/powercap")
# Shortest window each counter resolves well; shorter windows are padded by the caller.
NVML_MIN_WINDOW_S = 1.0
RAPL_MIN_WINDOW_S = 0.2

CPU_ESTIMATE_MODEL = (
    "estimate: TDP / cores × CPU seconds of the process (= TDP per core × utilisation × "
    "threads × wall time, utilisation measured from process CPU time)"
)
GPU_ESTIMATE_MODEL = "estimate: board power (TDP) × wall time (utilisation taken as 1)"


@dataclass(frozen=True)
class EnergyReading:
    """Energy of one window: joules over ``seconds`` of wall time, and how it was obtained."""

    joules: float
    seconds: float
    meter: str  # "nvml", "rapl" or "estimate"
    provenance: Provenance
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def average_power_w(self) -> float:
        return self.joules / self.seconds if self.seconds > 0 else 0.0


class EnergyMeter(abc.ABC):
    """Reads an energy counter at the start and end of a window."""

    name: str
    provenance: Provenance
    #: Windows shorter than this are below the counter's resolution; pad them.
    min_window_s: float = 0.0

    @abc.abstractmethod
    def start(self) -> Any:
        """Take the counter's state at the start of a window."""

    @abc.abstractmethod
    def stop(self, started: Any) -> EnergyReading:
        """The energy since ``started`` (what :meth:`start` returned)."""

    def window(self) -> EnergyWindow:
        return EnergyWindow(self)

    def describe(self) -> str:
        return self.name


class EnergyWindow:
    """A context manager measuring the energy of its body; ``reading`` is set on exit."""

    def __init__(self, meter: EnergyMeter) -> None:
        self.meter = meter
        self.reading: EnergyReading | None = None
        self._started: Any = None
        self._t0 = 0.0

    def __enter__(self) -> EnergyWindow:
        self._t0 = time.perf_counter()
        self._started = self.meter.start()
        return self

    def elapsed(self) -> float:
        return time.perf_counter() - self._t0

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if kind is None:
            self.reading = self.meter.stop(self._started)


# --------------------------------------------------------------------------------------------
# RAPL


@dataclass(frozen=True)
class _RaplDomain:
    name: str
    energy: Path
    max_range_uj: int


def rapl_domains(root: Path | str = POWERCAP_ROOT) -> list[_RaplDomain]:
    """The readable top-level RAPL package domains under ``root`` (empty when none are).

    Sub-domains (``intel-rapl:0:0``, cores or DRAM) are inside their package and not
    counted again.
    """
    base = Path(root)
    domains: list[_RaplDomain] = []
    try:
        entries = sorted(base.glob("intel-rapl:*"))
    except OSError:
        return []
    for entry in entries:
        if entry.name.count(":") != 1:
            continue
        energy = entry / "energy_uj"
        try:
            int(energy.read_text().strip())
            max_range = int((entry / "max_energy_range_uj").read_text().strip())
            label = (entry / "name").read_text().strip() if (entry / "name").exists() else ""
        except (OSError, ValueError):
            continue
        domains.append(_RaplDomain(label or entry.name, energy, max_range))
    return domains


class RaplMeter(EnergyMeter):
    """Package energy from Linux powercap RAPL counters (microjoules)."""

    name = "rapl"
    provenance = Provenance.MEASURED
    min_window_s = RAPL_MIN_WINDOW_S

    def __init__(self, root: Path | str = POWERCAP_ROOT) -> None:
        self.root = Path(root)
        self.domains = rapl_domains(self.root)
        if not self.domains:
            raise MeasurementError(
                f"no readable RAPL energy counter under {self.root} "
                "(intel-rapl:N/energy_uj missing or not readable)"
            )

    def _read(self) -> list[int]:
        try:
            return [int(d.energy.read_text().strip()) for d in self.domains]
        except (OSError, ValueError) as exc:
            raise MeasurementError(
                f"reading RAPL counters under {self.root} failed: {exc}"
            ) from exc

    def start(self) -> tuple[float, list[int]]:
        return time.perf_counter(), self._read()

    def stop(self, started: tuple[float, list[int]]) -> EnergyReading:
        t0, before = started
        after = self._read()
        seconds = time.perf_counter() - t0
        micro = 0
        for domain, a, b in zip(self.domains, before, after, strict=True):
            delta = b - a
            if delta < 0:  # the counter wrapped around once
                delta += domain.max_range_uj
            micro += delta
        return EnergyReading(
            joules=micro / 1e6,
            seconds=seconds,
            meter=self.name,
            provenance=self.provenance,
            details={
                "meter": "rapl",
                "domains": [d.name for d in self.domains],
                "root": str(self.root),
                "scope": "whole CPU package(s), every process on them",
            },
        )


# --------------------------------------------------------------------------------------------
# NVML


def _nvml() -> Any:
    try:
        return importlib.import_module("pynvml")
    except ImportError as exc:
        raise MeasurementError("NVML energy needs nvidia-ml-py (pip install nvidia-ml-py)") from exc


class NvmlMeter(EnergyMeter):
    """A GPU's total-energy counter through NVML (millijoules since the driver loaded)."""

    name = "nvml"
    provenance = Provenance.MEASURED
    min_window_s = NVML_MIN_WINDOW_S

    def __init__(self, device_index: int) -> None:
        nvml = _nvml()
        self.device_index = device_index
        try:
            nvml.nvmlInit()
            self._handle = nvml.nvmlDeviceGetHandleByIndex(device_index)
            nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle)
            raw = nvml.nvmlDeviceGetName(self._handle)
        except Exception as exc:  # NVMLError subclasses: no driver, old GPU, no permission
            raise MeasurementError(
                f"NVML energy counter unavailable for GPU {device_index}: {exc}"
            ) from exc
        self.device_name = raw.decode() if isinstance(raw, bytes) else str(raw)
        self._nvml = nvml

    def _read(self) -> int:
        return int(self._nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle))

    def start(self) -> tuple[float, int]:
        _synchronize_cuda(self.device_index)
        return time.perf_counter(), self._read()

    def stop(self, started: tuple[float, int]) -> EnergyReading:
        _synchronize_cuda(self.device_index)
        t0, before = started
        after = self._read()
        return EnergyReading(
            joules=(after - before) / 1e3,
            seconds=time.perf_counter() - t0,
            meter=self.name,
            provenance=self.provenance,
            details={
                "meter": "nvml",
                "device": self.device_name,
                "device_index": self.device_index,
                "scope": "GPU board only",
            },
        )


def _synchronize_cuda(index: int) -> None:
    try:
        import torch
    except ImportError:
        return
    if torch.cuda.is_available():
        torch.cuda.synchronize(index)


# --------------------------------------------------------------------------------------------
# Estimate


def process_cpu_seconds(*, children: bool = False) -> float:
    """CPU seconds (user + system) of this process, all threads; with ``children``, plus
    those of its finished child processes."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    total = usage.ru_utime + usage.ru_stime
    if children:
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        total += kids.ru_utime + kids.ru_stime
    return float(total)


class EstimateMeter(EnergyMeter):
    """Energy from the profile's TDP: per busy core on a CPU, the whole board on a GPU."""

    name = "estimate"
    provenance = Provenance.ESTIMATED

    def __init__(self, profile: TargetProfile, *, children: bool = False) -> None:
        self.profile = profile
        self.children = children

    @property
    def model(self) -> str:
        return CPU_ESTIMATE_MODEL if self.profile.kind == "cpu" else GPU_ESTIMATE_MODEL

    def start(self) -> tuple[float, float]:
        return time.perf_counter(), process_cpu_seconds(children=self.children)

    def stop(self, started: tuple[float, float]) -> EnergyReading:
        t0, cpu0 = started
        seconds = time.perf_counter() - t0
        cpu_seconds = max(0.0, process_cpu_seconds(children=self.children) - cpu0)
        profile = self.profile
        details: dict[str, Any] = {
            "meter": "estimate",
            "model": self.model,
            "tdp_w": profile.tdp_w,
            "profile": profile.name,
        }
        if profile.kind == "cpu":
            joules = profile.tdp_w / profile.cores * cpu_seconds
            details.update(
                cores=profile.cores,
                cpu_seconds=cpu_seconds,
                wall_seconds=seconds,
                busy_cores=cpu_seconds / seconds if seconds > 0 else 0.0,
            )
        else:
            joules = profile.tdp_w * seconds
            details.update(wall_seconds=seconds, utilisation=1.0)
        return EnergyReading(
            joules=joules,
            seconds=seconds,
            meter=self.name,
            provenance=self.provenance,
            details=details,
        )


# --------------------------------------------------------------------------------------------
# Selection


def meter_available(
    kind: str, *, device_index: int | None = None, root: Path | str = POWERCAP_ROOT
) -> bool:
    """Whether the ``kind`` meter ("nvml", "rapl", "estimate") works here."""
    if kind == "estimate":
        return True
    try:
        if kind == "rapl":
            RaplMeter(root)
        elif kind == "nvml":
            NvmlMeter(device_index or 0)
        else:
            return False
    except MeasurementError:
        return False
    return True


def meter_for(profile: TargetProfile, target: Target) -> EnergyMeter:
    """The energy meter of ``target``: its kind's own (:meth:`TargetKind.meter`), else the
    one the profile's ``meter`` setting selects."""
    own = target_kind(target).meter(profile, target)
    return own if own is not None else select_meter(profile, device_index=target.device_index)


def select_meter(
    profile: TargetProfile,
    *,
    device_index: int | None = None,
    powercap_root: Path | str = POWERCAP_ROOT,
) -> EnergyMeter:
    """The energy meter for a target with ``profile``.

    ``profile.meter``: ``auto`` takes NVML for a CUDA target and RAPL for a CPU when they
    work, else the estimate; ``nvml`` / ``rapl`` insist (a :class:`MeasurementError` says
    why one does not work); ``estimate`` always estimates.
    """
    choice = profile.meter
    if choice == "estimate" or profile.kind == "table":
        return EstimateMeter(profile)
    if choice == "nvml" or (choice == "auto" and profile.kind == "cuda"):
        if profile.kind != "cuda":
            raise SpecError("target.meter", f"nvml measures GPUs; {profile.name!r} is a CPU")
        try:
            return NvmlMeter(device_index or 0)
        except MeasurementError:
            if choice == "nvml":
                raise
            return EstimateMeter(profile)
    if choice == "rapl" or (choice == "auto" and profile.kind == "cpu"):
        try:
            return RaplMeter(powercap_root)
        except MeasurementError:
            if choice == "rapl":
                raise
            return EstimateMeter(profile)
    return EstimateMeter(profile)


def pad_window(window: EnergyWindow, run_once: Callable[[], object]) -> int:
    """Run ``run_once`` until ``window`` has lasted its meter's ``min_window_s``; returns
    how many extra runs that took."""
    extra = 0
    while window.elapsed() < window.meter.min_window_s:
        run_once()
        extra += 1
    return extra


def energy_per_inference(
    reading: EnergyReading, latency_s: float, batch_size: int
) -> tuple[float, dict[str, Any]]:
    """Joules per inference: the window's average power × one batch's latency / batch size.

    Returns the value and the details to store with it (meter, model, window, power).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size!r}")
    if reading.seconds <= 0:
        raise MeasurementError("the energy window lasted no time; nothing was measured")
    power = reading.average_power_w
    joules = power * latency_s / batch_size
    details = {
        **reading.details,
        "method": "average power over the measurement run × median latency / batch size",
        "window_joules": reading.joules,
        "window_seconds": reading.seconds,
        "average_power_w": power,
        "latency_s": latency_s,
        "batch_size": batch_size,
    }
    return joules, details


__all__ = [
    "CPU_ESTIMATE_MODEL",
    "GPU_ESTIMATE_MODEL",
    "POWERCAP_ROOT",
    "EnergyMeter",
    "EnergyReading",
    "EnergyWindow",
    "EstimateMeter",
    "NvmlMeter",
    "RaplMeter",
    "energy_per_inference",
    "meter_available",
    "pad_window",
    "process_cpu_seconds",
    "rapl_domains",
    "select_meter",
]
