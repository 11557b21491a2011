"""Carbon arithmetic against cases computed by hand."""

from __future__ import annotations

import math

import pytest

from hwsearch.errors import UnknownNameError
from hwsearch.hardware.carbon import (
    GRID_INTENSITY,
    SECONDS_PER_YEAR,
    carbon_per_1k,
    grid_intensity,
    profile_intensity,
)
from hwsearch.hardware.profiles import TargetProfile, resolve_profile


def _profile(**changes: object) -> TargetProfile:
    base: dict[str, object] = {
        "name": "dev",
        "kind": "cuda",
        "tdp_w": 100.0,
        "embodied_kgco2e": 100.0,
        "lifetime_years": 1.0,
        "busy_share": 1.0,
        "region": "FR",
        "pue": 1.0,
    }
    return TargetProfile(**{**base, **changes})  # type: ignore[arg-type]


def test_operational_carbon_is_energy_times_pue_times_grid() -> None:
    # 3.6 J per inference -> 3.6 kJ per 1000 = 0.001 kWh; x 1.5 PUE x 56 g/kWh = 0.084 g.
    profile = _profile(pue=1.5, embodied_kgco2e=0.0)
    result = carbon_per_1k(energy_j=3.6, busy_s=0.01, profile=profile, device_share=1.0)
    assert result.energy_kwh_per_1k == pytest.approx(0.001)
    assert result.operational_g_per_1k == pytest.approx(0.001 * 1.5 * 56.0)
    assert result.embodied_g_per_1k == 0.0
    assert result.total_g_per_1k == pytest.approx(0.084)
    assert result.grid_gco2e_per_kwh == 56.0 and "Ember" in result.grid_source


def test_embodied_carbon_is_amortised_over_busy_lifetime_and_device_share() -> None:
    # 100 kg over 1 year at 50 % busy: 1e5 g / (0.5 * 31,557,600 s) per busy second.
    profile = _profile(busy_share=0.5)
    result = carbon_per_1k(energy_j=0.0, busy_s=0.002, profile=profile, device_share=0.25)
    per_busy_second = 1e5 / (0.5 * SECONDS_PER_YEAR)
    assert result.embodied_g_per_1k == pytest.approx(1000 * 0.002 * 0.25 * per_busy_second)
    assert result.operational_g_per_1k == 0.0
    assert result.to_dict()["total_g_per_1k"] == pytest.approx(result.embodied_g_per_1k)


def test_hand_computed_cpu_case_with_the_default_profile() -> None:
    # Default cpu: 1250 kg, 4 years, busy 0.5, 80 cores; region DE 380 g/kWh, PUE 1.58.
    profile = resolve_profile("cpu", {"region": "DE"})
    energy_j, busy_s = 0.5, 0.002  # per inference, one thread
    result = carbon_per_1k(
        energy_j=energy_j, busy_s=busy_s, profile=profile, device_share=profile.device_share(1)
    )
    operational = 1000 * 0.5 / 3.6e6 * 1.58 * 380.0
    embodied = 1000 * 0.002 * (1 / 80) * 1_250_000 / (4 * SECONDS_PER_YEAR * 0.5)
    assert result.operational_g_per_1k == pytest.approx(operational)
    assert result.embodied_g_per_1k == pytest.approx(embodied)


def test_spec_grid_intensity_replaces_the_region_table() -> None:
    profile = _profile(grid_gco2e_per_kwh=100.0, embodied_kgco2e=0.0)
    assert profile_intensity(profile) == (100.0, "job spec (grid_gco2e_per_kwh)")
    result = carbon_per_1k(energy_j=36.0, busy_s=0.0, profile=profile, device_share=1.0)
    assert result.operational_g_per_1k == pytest.approx(1.0)  # 0.01 kWh x 100 g


def test_region_table_has_sources_and_years_and_names_unknown_regions() -> None:
    for region, entry in GRID_INTENSITY.items():
        assert entry.region == region and entry.year >= 2020 and entry.source
        assert 0 < entry.g_per_kwh < 1500
    assert grid_intensity("fr").g_per_kwh == GRID_INTENSITY["FR"].g_per_kwh
    with pytest.raises(UnknownNameError) as info:
        grid_intensity("ATLANTIS")
    assert "WORLD" in str(info.value)


@pytest.mark.parametrize(
    ("energy", "busy", "share"),
    [(-1.0, 0.0, 1.0), (math.inf, 0.0, 1.0), (0.0, -1.0, 1.0), (0.0, 0.0, 0.0), (0, 0, 1.5)],
)
def test_bad_inputs_are_refused(energy: float, busy: float, share: float) -> None:
    with pytest.raises(ValueError):
        carbon_per_1k(energy_j=energy, busy_s=busy, profile=_profile(), device_share=share)
