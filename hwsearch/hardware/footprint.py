"""The footprint of a search job itself: its energy and carbon, for reporting with results.

:class:`FootprintTracker` opens energy windows (:mod:`hwsearch.hardware.energy`) around a
whole job: the host CPU (RAPL when readable, else the CPU estimate over the CPU seconds of
this process and of its finished child processes, so a process-pool executor's workers
count once they exit) and, for a CUDA target, the GPU through NVML when it works. Carbon
is :mod:`hwsearch.hardware.carbon`'s formula applied to the whole job: operational from the
energy, embodied from the busy time (the CPU's busy core-seconds, the GPU's wall time).

The CPU part uses the default ``cpu`` profile with the job target's region, grid intensity
and PUE, because the host CPU runs the search wherever the candidates are measured.

Workers that are not this process's children (Ray's) are invisible to its counters: each
of their tasks reports its process CPU seconds, the executor sums them by host, and
:meth:`FootprintTracker.stop` adds them as a ``workers`` part, its energy estimated from the
``cpu`` profile's power per core. Where the host's energy comes from RAPL, which reads the
whole package, the workers on the driver's own host are in it already: their CPU seconds are
counted, their energy is not counted twice.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from types import TracebackType
from typing import Any

from hwsearch.errors import MeasurementError
from hwsearch.hardware.carbon import embodied_g, operational_g, profile_intensity
from hwsearch.hardware.energy import (
    POWERCAP_ROOT,
    EnergyMeter,
    EnergyReading,
    EstimateMeter,
    NvmlMeter,
    RaplMeter,
    process_cpu_seconds,
)
from hwsearch.hardware.profiles import TargetProfile, default_profile


@dataclass(frozen=True)
class Footprint:
    """Energy and carbon of one job, split by device and into operational and embodied."""

    wall_seconds: float
    cpu_seconds: float
    energy_j: float
    operational_g: float
    embodied_g: float
    provenance: str  # "measured" when every part came from a counter, else "estimated"
    region: str
    grid_gco2e_per_kwh: float
    grid_source: str
    pue: float
    parts: list[dict[str, Any]] = field(default_factory=list)  # one per device

    @property
    def total_g(self) -> float:
        return self.operational_g + self.embodied_g

    @property
    def energy_kwh(self) -> float:
        return self.energy_j / 3.6e6

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "total_g": self.total_g, "energy_kwh": self.energy_kwh}

    def summary(self) -> str:
        """One line for a paper's compute statement."""
        return (
            f"search footprint: {self.energy_kwh * 1000:.3g} Wh, "
            f"{self.total_g:.3g} gCO2e ({self.operational_g:.3g} operational + "
            f"{self.embodied_g:.3g} embodied; {self.provenance}; region {self.region} at "
            f"{self.grid_gco2e_per_kwh:g} gCO2e/kWh, PUE {self.pue:g}) over "
            f"{self.wall_seconds:.1f} s wall, {self.cpu_seconds:.1f} CPU s"
        )


class FootprintTracker:
    """Measures a job's footprint: ``with FootprintTracker(profile) as t: ...; t.footprint``."""

    def __init__(
        self,
        target: TargetProfile,
        *,
        device_index: int | None = None,
        powercap_root: Path | str = POWERCAP_ROOT,
    ) -> None:
        self.target = target
        host = default_profile("cpu")
        self.host = replace(
            host,
            region=target.region,
            pue=target.pue,
            grid_gco2e_per_kwh=target.grid_gco2e_per_kwh,
            meter="rapl" if target.meter == "rapl" else host.meter,
        )
        self._meters: list[tuple[TargetProfile, EnergyMeter]] = []
        try:
            host_meter: EnergyMeter = (
                EstimateMeter(self.host, children=True)
                if target.meter == "estimate"
                else RaplMeter(powercap_root)
            )
        except MeasurementError:
            host_meter = EstimateMeter(self.host, children=True)
        self._meters.append((self.host, host_meter))
        if target.kind == "cuda":
            gpu_meter: EnergyMeter
            try:
                gpu_meter = (
                    EstimateMeter(target)
                    if target.meter == "estimate"
                    else NvmlMeter(device_index or 0)
                )
            except MeasurementError:
                gpu_meter = EstimateMeter(target)
            self._meters.append((target, gpu_meter))
        self._started: list[Any] = []
        self._t0 = 0.0
        self._cpu0 = 0.0
        self.footprint: Footprint | None = None

    def __enter__(self) -> FootprintTracker:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        self._t0 = time.perf_counter()
        self._cpu0 = process_cpu_seconds(children=True)
        self._started = [meter.start() for _, meter in self._meters]

    def stop(self, workers: Mapping[str, float] | None = None) -> Footprint:
        """End the job's windows; ``workers``: CPU seconds spent by workers outside this
        process tree during the job, by host (:meth:`Executor.worker_cpu_seconds`)."""
        readings = [
            meter.stop(started)
            for (_, meter), started in zip(self._meters, self._started, strict=True)
        ]
        wall = time.perf_counter() - self._t0
        cpu_seconds = max(0.0, process_cpu_seconds(children=True) - self._cpu0)
        parts = []
        operational = embodied = energy = 0.0
        for (profile, _), reading in zip(self._meters, readings, strict=True):
            busy, share = self._busy(profile, reading, wall, cpu_seconds)
            op = operational_g(reading.joules, profile)
            emb = embodied_g(busy, profile, share) if busy > 0 else 0.0
            operational += op
            embodied += emb
            energy += reading.joules
            parts.append(
                {
                    "device": profile.name,
                    "meter": reading.meter,
                    "provenance": reading.provenance.value,
                    "energy_j": reading.joules,
                    "operational_g": op,
                    "embodied_g": emb,
                    "busy_seconds": busy,
                    "device_share": share,
                    "details": reading.details,
                }
            )
        remote = {host: float(s) for host, s in (workers or {}).items() if s > 0}
        if remote:
            part = self._workers_part(remote, wall)
            parts.append(part)
            cpu_seconds += part["cpu_seconds"]
            operational += part["operational_g"]
            embodied += part["embodied_g"]
            energy += part["energy_j"]
        intensity, source = profile_intensity(self.target)
        measured = all(p["provenance"] == "measured" for p in parts)
        self.footprint = Footprint(
            wall_seconds=wall,
            cpu_seconds=cpu_seconds,
            energy_j=energy,
            operational_g=operational,
            embodied_g=embodied,
            provenance="measured" if measured else "estimated",
            region=self.target.region,
            grid_gco2e_per_kwh=intensity,
            grid_source=source,
            pue=self.target.pue,
            parts=parts,
        )
        return self.footprint

    def _workers_part(self, by_host: Mapping[str, float], wall: float) -> dict[str, Any]:
        """The footprint of remote workers' CPU seconds: energy per core-second of the
        ``cpu`` profile (less what RAPL on this host already read), embodied carbon over
        their busy core-seconds."""
        profile = self.host
        here = socket.gethostname()
        host_meter = self._meters[0][1]
        counted_here = isinstance(host_meter, RaplMeter)
        cpu_seconds = sum(by_host.values())
        billed = sum(s for h, s in by_host.items() if not (counted_here and h == here))
        joules = profile.tdp_w / profile.cores * billed
        share = 1.0 / profile.cores  # one core for each of the busy seconds
        return {
            "device": "workers",
            "meter": "estimate",
            "provenance": "estimated",
            "energy_j": joules,
            "operational_g": operational_g(joules, profile),
            "embodied_g": embodied_g(cpu_seconds, profile, share),
            "busy_seconds": cpu_seconds,
            "device_share": share,
            "cpu_seconds": cpu_seconds,
            "details": {
                "model": "reported CPU seconds of each task x the cpu profile's TDP per core",
                "cpu_seconds_by_host": dict(by_host),
                "tdp_w": profile.tdp_w,
                "cores": profile.cores,
                "energy_in_host_rapl": counted_here and here in by_host,
                "wall_seconds": wall,
            },
        }

    @staticmethod
    def _busy(
        profile: TargetProfile, reading: EnergyReading, wall: float, cpu_seconds: float
    ) -> tuple[float, float]:
        """Busy seconds and device share: CPU core-seconds over the cores; a GPU's wall."""
        if profile.kind == "cpu":
            if wall <= 0:
                return 0.0, 1.0
            share = min(1.0, cpu_seconds / wall / profile.cores) or 1.0
            return (wall, share) if cpu_seconds > 0 else (0.0, 1.0)
        return reading.seconds, 1.0


_SUMMED = (
    "wall_seconds",
    "cpu_seconds",
    "energy_j",
    "energy_kwh",
    "operational_g",
    "embodied_g",
    "total_g",
)


def merge_footprints(earlier: dict[str, Any] | None, latest: dict[str, Any]) -> dict[str, Any]:
    """The footprint of a job over all its runs (a resumed job runs more than once):
    totals summed, parts kept per run, ``runs`` counted; measured only if every run was."""
    if not earlier:
        return {**latest, "runs": 1, "run_footprints": [latest]}
    merged = dict(latest)
    for key in _SUMMED:
        merged[key] = float(earlier.get(key, 0.0)) + float(latest.get(key, 0.0))
    merged["runs"] = int(earlier.get("runs", 1)) + 1
    merged["run_footprints"] = [*earlier.get("run_footprints", []), latest]
    if earlier.get("provenance") != "measured":
        merged["provenance"] = "estimated"
    return merged


__all__ = ["Footprint", "FootprintTracker", "merge_footprints"]
