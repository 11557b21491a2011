"""Carbon accounting: grid intensity by region, and gCO2e per 1,000 inferences.

For ``n = 1000`` inferences, each taking ``energy_j`` joules and keeping its share
``device_share`` of the device busy for ``busy_s`` seconds::

    operational = n × energy_j / 3.6e6 [kWh] × PUE × grid intensity [gCO2e/kWh]
    embodied    = n × busy_s × device_share × embodied [gCO2e]
                  / (lifetime [s] × busy_share)
    carbon_g_per_1k = operational + embodied

The embodied carbon of a device is spread over the time it is busy during its service life
(``lifetime × busy_share``): each busy second carries the same part of it. A CPU
measurement that uses ``threads`` of the profile's ``cores`` carries that share of the
device (:meth:`~hwsearch.hardware.profiles.TargetProfile.device_share`).

Grid intensities are annual averages per region (:data:`GRID_INTENSITY`), each with its
source and year; a spec gives its own value (an hourly or a contracted one) with
``grid_gco2e_per_kwh``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from hwsearch.errors import UnknownNameError
from hwsearch.hardware.profiles import TargetProfile, normalise_region

JOULES_PER_KWH = 3.6e6
SECONDS_PER_YEAR = 365.25 * 24 * 3600
PER = 1000  # inferences the carbon metrics are given for


@dataclass(frozen=True)
class GridIntensity:
    """Average carbon intensity of a region's electricity, with where it comes from."""

    region: str
    g_per_kwh: float
    year: int
    source: str


_EMBER = (
    "Ember, yearly electricity data: carbon intensity of generation (life-cycle basis), "
    "rounded annual average"
)

#: Annual average carbon intensity of electricity generation by region (gCO2e/kWh).
#: Rounded figures; for a report, check them against the current release of the source or
#: give the site's own value with ``grid_gco2e_per_kwh``.
GRID_INTENSITY: dict[str, GridIntensity] = {
    g.region: g
    for g in (
        GridIntensity("WORLD", 480.0, 2023, _EMBER + " (world)"),
        GridIntensity("EU", 250.0, 2023, _EMBER + " (EU-27)"),
        GridIntensity("US", 370.0, 2023, _EMBER + " (United States)"),
        GridIntensity("CA", 130.0, 2023, _EMBER + " (Canada)"),
        GridIntensity("CN", 580.0, 2023, _EMBER + " (China)"),
        GridIntensity("IN", 710.0, 2023, _EMBER + " (India)"),
        GridIntensity("JP", 480.0, 2023, _EMBER + " (Japan)"),
        GridIntensity("DE", 380.0, 2023, _EMBER + " (Germany)"),
        GridIntensity("FR", 56.0, 2023, _EMBER + " (France)"),
        GridIntensity("GB", 240.0, 2023, _EMBER + " (United Kingdom)"),
        GridIntensity("PL", 660.0, 2023, _EMBER + " (Poland)"),
        GridIntensity("SE", 40.0, 2023, _EMBER + " (Sweden)"),
        GridIntensity("NO", 30.0, 2023, _EMBER + " (Norway)"),
    )
}


def grid_intensity(region: str) -> GridIntensity:
    """The table entry of ``region`` (case-insensitive); :class:`UnknownNameError` lists the
    known regions."""
    key = normalise_region(region) if isinstance(region, str) else region
    try:
        return GRID_INTENSITY[key]
    except KeyError:
        raise UnknownNameError("grid region", str(region), GRID_INTENSITY) from None


def profile_intensity(profile: TargetProfile) -> tuple[float, str]:
    """The grid intensity a profile uses (gCO2e/kWh) and where it comes from."""
    if profile.grid_gco2e_per_kwh is not None:
        return float(profile.grid_gco2e_per_kwh), "job spec (grid_gco2e_per_kwh)"
    entry = grid_intensity(profile.region)
    return entry.g_per_kwh, f"{entry.source}, {entry.year}"


@dataclass(frozen=True)
class CarbonBreakdown:
    """Carbon of 1,000 inferences, split into its parts, with every factor used."""

    operational_g_per_1k: float
    embodied_g_per_1k: float
    energy_kwh_per_1k: float
    busy_s_per_1k: float
    device_share: float
    grid_gco2e_per_kwh: float
    grid_source: str
    pue: float
    region: str
    embodied_kgco2e: float
    lifetime_years: float
    busy_share: float

    @property
    def total_g_per_1k(self) -> float:
        return self.operational_g_per_1k + self.embodied_g_per_1k

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "total_g_per_1k": self.total_g_per_1k}


def operational_g(energy_j: float, profile: TargetProfile) -> float:
    """gCO2e of ``energy_j`` joules drawn by the device at its site (PUE × grid intensity)."""
    intensity, _ = profile_intensity(profile)
    return energy_j / JOULES_PER_KWH * profile.pue * intensity


def embodied_g(busy_s: float, profile: TargetProfile, device_share: float) -> float:
    """The part of the device's embodied carbon that ``busy_s`` busy seconds carry."""
    busy_life_s = profile.lifetime_years * SECONDS_PER_YEAR * profile.busy_share
    return busy_s * device_share * profile.embodied_kgco2e * 1000.0 / busy_life_s


def carbon_per_1k(
    *, energy_j: float, busy_s: float, profile: TargetProfile, device_share: float
) -> CarbonBreakdown:
    """Carbon of 1,000 inferences of ``energy_j`` joules and ``busy_s`` busy seconds each.

    ``device_share`` in (0, 1] is the part of the device an inference occupies (see the
    module docstring). Raises ``ValueError`` for negative or non-finite inputs.
    """
    for name, value in (("energy_j", energy_j), ("busy_s", busy_s)):
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    if not 0 < device_share <= 1:
        raise ValueError(f"device_share must be in (0, 1], got {device_share!r}")
    intensity, source = profile_intensity(profile)
    return CarbonBreakdown(
        operational_g_per_1k=PER * operational_g(energy_j, profile),
        embodied_g_per_1k=PER * embodied_g(busy_s, profile, device_share),
        energy_kwh_per_1k=PER * energy_j / JOULES_PER_KWH,
        busy_s_per_1k=PER * busy_s,
        device_share=device_share,
        grid_gco2e_per_kwh=intensity,
        grid_source=source,
        pue=profile.pue,
        region=profile.region,
        embodied_kgco2e=profile.embodied_kgco2e,
        lifetime_years=profile.lifetime_years,
        busy_share=profile.busy_share,
    )


__all__ = [
    "GRID_INTENSITY",
    "JOULES_PER_KWH",
    "SECONDS_PER_YEAR",
    "CarbonBreakdown",
    "GridIntensity",
    "carbon_per_1k",
    "embodied_g",
    "grid_intensity",
    "operational_g",
    "profile_intensity",
]
