"""Energy meters: selection, RAPL counters (wrap-around), the estimate fallback."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from hwsearch.errors import MeasurementError, SpecError
from hwsearch.hardware.energy import (
    CPU_ESTIMATE_MODEL,
    EnergyReading,
    EstimateMeter,
    RaplMeter,
    energy_per_inference,
    meter_available,
    pad_window,
    rapl_domains,
    select_meter,
)
from hwsearch.hardware.footprint import FootprintTracker
from hwsearch.hardware.profiles import resolve_profile
from hwsearch.records import Provenance


def _powercap(root: Path, energies: dict[str, int], max_range: int = 1_000_000) -> Path:
    """A powercap tree laid out as Linux lays it out, with the given counters."""
    for name, energy in energies.items():
        domain = root / name
        domain.mkdir(parents=True, exist_ok=True)
        (domain / "energy_uj").write_text(f"{energy}\n")
        (domain / "max_energy_range_uj").write_text(f"{max_range}\n")
        (domain / "name").write_text(
            ("package-" + name.split(":")[1]) if name.count(":") == 1 else "core"
        )
    return root


def _busy(seconds: float) -> None:
    end = time.perf_counter() + seconds
    x = 0
    while time.perf_counter() < end:
        x += 1


def test_auto_on_cpu_without_rapl_falls_back_to_the_estimate(tmp_path: Path) -> None:
    meter = select_meter(resolve_profile("cpu"), powercap_root=tmp_path / "absent")
    assert isinstance(meter, EstimateMeter)
    assert meter.provenance is Provenance.ESTIMATED
    assert not meter_available("rapl", root=tmp_path / "absent")


def test_auto_on_cpu_takes_rapl_when_its_counters_are_readable(tmp_path: Path) -> None:
    root = _powercap(tmp_path, {"intel-rapl:0": 5_000, "intel-rapl:0:0": 100, "intel-rapl:1": 7})
    meter = select_meter(resolve_profile("cpu"), powercap_root=root)
    assert isinstance(meter, RaplMeter)
    assert [d.name for d in meter.domains] == ["package-0", "package-1"]  # no sub-domain
    assert meter.provenance is Provenance.MEASURED


def test_rapl_reading_sums_packages_and_handles_wrap_around(tmp_path: Path) -> None:
    root = _powercap(tmp_path, {"intel-rapl:0": 999_000, "intel-rapl:1": 10_000})
    meter = RaplMeter(root)
    with meter.window() as window:
        (root / "intel-rapl:0" / "energy_uj").write_text("1000\n")  # wrapped: +2,000 uJ
        (root / "intel-rapl:1" / "energy_uj").write_text("13000\n")  # +3,000 uJ
    assert window.reading is not None
    assert window.reading.joules == pytest.approx(0.005)
    assert window.reading.details["scope"].startswith("whole CPU package")


def test_forced_rapl_without_counters_says_why(tmp_path: Path) -> None:
    profile = resolve_profile("cpu", {"meter": "rapl"})
    with pytest.raises(MeasurementError, match="no readable RAPL"):
        select_meter(profile, powercap_root=tmp_path)
    assert rapl_domains(tmp_path) == []


def test_nvml_is_refused_for_a_cpu_target() -> None:
    with pytest.raises(SpecError) as info:
        select_meter(resolve_profile("cpu", {"meter": "nvml"}))
    assert info.value.field == "target.meter"


def test_forced_estimate_ignores_readable_counters(tmp_path: Path) -> None:
    root = _powercap(tmp_path, {"intel-rapl:0": 1})
    meter = select_meter(resolve_profile("cpu", {"meter": "estimate"}), powercap_root=root)
    assert isinstance(meter, EstimateMeter)


def test_cpu_estimate_is_tdp_per_core_times_cpu_seconds() -> None:
    profile = resolve_profile("cpu", {"tdp_w": 80.0, "cores": 8})
    with EstimateMeter(profile).window() as window:
        _busy(0.05)
    reading = window.reading
    assert reading is not None and reading.provenance is Provenance.ESTIMATED
    cpu_seconds = reading.details["cpu_seconds"]
    assert cpu_seconds > 0
    assert reading.joules == pytest.approx(10.0 * cpu_seconds)
    assert reading.details["model"] == CPU_ESTIMATE_MODEL
    assert 0 < reading.details["busy_cores"] <= 2.5  # one busy thread, plus noise


def test_gpu_estimate_without_nvml_is_board_power_over_wall_time() -> None:
    profile = resolve_profile("cuda:0", {"tdp_w": 200.0, "meter": "estimate"})
    with EstimateMeter(profile).window() as window:
        time.sleep(0.01)
    assert window.reading is not None
    assert window.reading.joules == pytest.approx(200.0 * window.reading.seconds)


def test_energy_per_inference_is_average_power_times_latency_per_example() -> None:
    reading = EnergyReading(10.0, 2.0, "rapl", Provenance.MEASURED, {"meter": "rapl"})
    joules, details = energy_per_inference(reading, latency_s=0.004, batch_size=4)
    assert joules == pytest.approx(5.0 * 0.004 / 4)
    assert details["average_power_w"] == 5.0 and details["meter"] == "rapl"
    with pytest.raises(ValueError, match="batch_size"):
        energy_per_inference(reading, 0.004, 0)


def test_pad_window_runs_until_the_meter_resolution_is_reached(tmp_path: Path) -> None:
    meter = RaplMeter(_powercap(tmp_path, {"intel-rapl:0": 1}))
    meter.min_window_s = 0.05
    calls: list[int] = []
    with meter.window() as window:
        extra = pad_window(window, lambda: calls.append(1) or time.sleep(0.01))
    assert extra == len(calls) >= 3
    assert window.reading is not None and window.reading.seconds >= 0.05


def test_footprint_of_a_job_is_estimated_here_and_adds_up(tmp_path: Path) -> None:
    profile = resolve_profile("cpu", {"region": "FR", "pue": 1.2})
    with FootprintTracker(profile, powercap_root=tmp_path / "absent") as tracker:
        _busy(0.05)
    footprint = tracker.footprint
    assert footprint is not None and footprint.provenance == "estimated"
    assert footprint.energy_j > 0 and footprint.cpu_seconds > 0
    assert footprint.operational_g == pytest.approx(footprint.energy_j / 3.6e6 * 1.2 * 56.0)
    assert footprint.embodied_g > 0
    assert footprint.total_g == pytest.approx(footprint.operational_g + footprint.embodied_g)
    assert footprint.to_dict()["parts"][0]["meter"] == "estimate"
    assert "gCO2e" in footprint.summary()


def test_remote_workers_cpu_time_is_added_to_the_footprint(tmp_path: Path) -> None:
    """Ray workers are not this process's children: their reported CPU seconds are added
    as a ``workers`` part, estimated from the cpu profile's power per core."""
    profile = resolve_profile("cpu")
    with FootprintTracker(profile, powercap_root=tmp_path / "absent") as alone:
        _busy(0.02)
    assert alone.footprint is not None
    assert [p["device"] for p in alone.footprint.parts] == [profile.name]

    tracker = FootprintTracker(profile, powercap_root=tmp_path / "absent")
    tracker.start()
    _busy(0.02)
    footprint = tracker.stop({"node-a": 30.0, "node-b": 10.0, "idle": 0.0})
    [part] = [p for p in footprint.parts if p["device"] == "workers"]
    host = tracker.host
    assert part["cpu_seconds"] == 40.0
    assert part["energy_j"] == pytest.approx(host.tdp_w / host.cores * 40.0)
    assert part["details"]["cpu_seconds_by_host"] == {"node-a": 30.0, "node-b": 10.0}
    assert part["embodied_g"] > 0 and part["provenance"] == "estimated"
    assert footprint.cpu_seconds >= 40.0
    assert footprint.energy_j == pytest.approx(sum(p["energy_j"] for p in footprint.parts))
    assert footprint.energy_j > part["energy_j"]  # the driver's own part besides


def test_workers_on_a_rapl_host_are_not_billed_twice(tmp_path: Path) -> None:
    """RAPL reads the whole package: workers on the driver's host are in its energy already;
    only their CPU seconds are added, while other hosts' energy is estimated."""
    import socket

    root = _powercap(tmp_path, {"intel-rapl:0": 1_000})
    profile = resolve_profile("cpu", {"meter": "rapl"})
    tracker = FootprintTracker(profile, powercap_root=root)
    tracker.start()
    footprint = tracker.stop({socket.gethostname(): 20.0, "elsewhere": 5.0})
    [part] = [p for p in footprint.parts if p["device"] == "workers"]
    host = tracker.host
    assert part["cpu_seconds"] == 25.0
    assert part["energy_j"] == pytest.approx(host.tdp_w / host.cores * 5.0)
    assert part["details"]["energy_in_host_rapl"] is True
