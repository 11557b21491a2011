"""Target profiles: the power, carbon and siting factors of a device.

A profile says what energy and carbon accounting needs to know about a target besides its
measurements: its thermal design power (``tdp_w``) and how many cores that power covers
(``cores``), the embodied carbon of making it (``embodied_kgco2e``), its service lifetime
and the share of that lifetime it is busy (``busy_share``), the electricity region it runs
in (``region``, for the grid's carbon intensity) and the data centre's power usage
effectiveness (``pue``). Each default comes with its source in ``sources``; a job spec may
override any factor (:meth:`TargetProfile.with_overrides`), and the source then reads
``job spec``.

This module imports neither torch nor the database, so both may use it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal, get_args

from hwsearch.errors import SpecError
from hwsearch.hardware.targets import ProfileKind

MeterChoice = Literal["auto", "nvml", "rapl", "estimate"]

PROFILE_KINDS: tuple[str, ...] = get_args(ProfileKind)
METER_CHOICES: tuple[str, ...] = get_args(MeterChoice)

#: Factors a job spec may override, with what each means.
OVERRIDABLE: dict[str, str] = {
    "tdp_w": "thermal design power of the device, in watts",
    "cores": "logical cores the TDP covers (CPU); 1 for a GPU or a whole device",
    "embodied_kgco2e": "carbon emitted making the device, in kgCO2e",
    "lifetime_years": "service lifetime the embodied carbon is spread over, in years",
    "busy_share": "share of the lifetime the device is busy (0..1]",
    "region": "electricity region, for the grid's carbon intensity (e.g. FR, US, WORLD)",
    "pue": "power usage effectiveness of the site (>= 1)",
    "grid_gco2e_per_kwh": "grid carbon intensity in gCO2e/kWh, replacing the region's value",
    "meter": "energy meter: auto, nvml, rapl or estimate",
}

SPEC_SOURCE = "job spec"

# --------------------------------------------------------------------------------------------
# Sources of the defaults

SRC_XEON_TDP = (
    "Intel ARK, Xeon Platinum 8380 (a reference server CPU): TDP 270 W for 40 cores / 80 "
    "threads, i.e. 3.4 W per busy logical core"
)
SRC_SERVER_EMBODIED = (
    "Luccioni, Viguier, Ligozat (2022), 'Estimating the carbon footprint of BLOOM': about "
    "2,500 kgCO2e embodied per server node without GPUs; half of it for one of its two sockets"
)
SRC_GPU_EMBODIED = (
    "Luccioni, Viguier, Ligozat (2022), 'Estimating the carbon footprint of BLOOM': about "
    "150 kgCO2e embodied per data-centre GPU (A100), used for every GPU without its own figure"
)
SRC_LIFETIME = "assumption: 4 years, the service life common in server life-cycle assessments"
SRC_BUSY = (
    "assumption: busy half of the time; Barroso and Hölzle (2007), 'The case for "
    "energy-proportional computing', report servers mostly at 10-50% utilisation"
)
SRC_PUE = "Uptime Institute, Global Data Center Survey 2023: average PUE 1.58"
SRC_REGION = "assumption: world average grid (WORLD); set region for the site's grid"
SRC_GPU_TDP = "NVIDIA datasheet board power of the named GPU"
SRC_GPU_GENERIC = "assumption: 300 W, a typical data-centre GPU board power (name not known)"
SRC_TABLE_DEVICE = (
    "placeholder for a device known only through tables: 10 W, 50 kgCO2e; "
    "override tdp_w and embodied_kgco2e in the spec"
)
SRC_SINGLE_UNIT = "a GPU or a whole device is accounted as one unit"

#: Board power (W) of GPUs by a distinctive part of their name, most specific first.
GPU_TDP_W: tuple[tuple[str, float], ...] = (
    ("H200", 700.0),
    ("H100 PCIE", 350.0),
    ("H100", 700.0),
    ("A100-PCIE", 300.0),
    ("A100", 400.0),
    ("L40S", 350.0),
    ("L4", 72.0),
    ("T4", 70.0),
    ("V100", 300.0),
    ("RTX 4090", 450.0),
)


@dataclass(frozen=True, kw_only=True)
class TargetProfile:
    """The factors energy and carbon accounting uses for one target.

    Every numeric factor is checked on construction (a ``ValueError`` quotes the value);
    ``sources`` maps each factor to where its value comes from.
    """

    name: str
    kind: ProfileKind
    tdp_w: float
    cores: int = 1
    embodied_kgco2e: float
    lifetime_years: float = 4.0
    busy_share: float = 0.5
    region: str = "WORLD"
    pue: float = 1.58
    grid_gco2e_per_kwh: float | None = None
    meter: MeterChoice = "auto"
    sources: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ValueError(f"name must be a non-empty string, got {self.name!r}")
        if self.kind not in PROFILE_KINDS:
            raise ValueError(f"kind must be one of {list(PROFILE_KINDS)}, got {self.kind!r}")
        for key in OVERRIDABLE:
            problem = profile_value_problem(key, getattr(self, key))
            if problem is not None:
                raise ValueError(f"{key}: {problem}")

    @property
    def device_index(self) -> int | None:
        """The index N of a ``cuda:N`` profile (0 for ``cuda``); None for other kinds."""
        if self.kind != "cuda":
            return None
        _, _, index = self.name.partition(":")
        return int(index) if index.isdigit() else 0

    def with_overrides(
        self, overrides: Mapping[str, Any], *, field_prefix: str = "target"
    ) -> TargetProfile:
        """This profile with ``overrides`` applied; their sources become ``job spec``.

        An unknown factor or a bad value is a :class:`SpecError` on ``<field_prefix>.<key>``.
        """
        changes: dict[str, Any] = {}
        sources = dict(self.sources)
        for key, value in overrides.items():
            if key not in OVERRIDABLE:
                raise SpecError(
                    f"{field_prefix}.{key}",
                    f"not a profile factor; factors: {', '.join(OVERRIDABLE)}",
                )
            if value is None:
                continue
            problem = profile_value_problem(key, value)
            if problem is not None:
                raise SpecError(f"{field_prefix}.{key}", problem)
            changes[key] = normalise_region(value) if key == "region" else value
            sources[key] = SPEC_SOURCE
        return replace(self, **changes, sources=sources)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (JSON-serialisable); :meth:`from_dict` reads it back."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TargetProfile:
        known = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown profile field(s) {unknown}; fields: {sorted(known)}")
        return cls(**{**data, "sources": dict(data.get("sources") or {})})

    def device_share(self, threads: int) -> float:
        """The share of the device one measurement with ``threads`` threads occupies."""
        if self.kind != "cpu":
            return 1.0
        return min(1.0, threads / self.cores)


def profile_value_problem(key: str, value: Any) -> str | None:
    """Why ``value`` is not a valid value of factor ``key``, or None."""
    if key == "region":
        if not isinstance(value, str) or not _REGION.fullmatch(value.strip()):
            return f"must be a region code such as 'FR', 'US' or 'WORLD', got {value!r}"
        return None
    if key == "meter":
        if value not in METER_CHOICES:
            return f"must be one of {list(METER_CHOICES)}, got {value!r}"
        return None
    if key == "grid_gco2e_per_kwh" and value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return f"must be a finite number, got {value!r}"
    if key == "cores":
        if not isinstance(value, int) or value < 1:
            return f"must be an integer >= 1, got {value!r}"
    elif key == "pue":
        if value < 1.0:
            return f"must be at least 1 (total facility power / IT power), got {value!r}"
    elif key == "busy_share":
        if not 0.0 < value <= 1.0:
            return f"must be in (0, 1], got {value!r}"
    elif key in ("embodied_kgco2e", "grid_gco2e_per_kwh"):
        if value < 0:
            return f"must not be negative, got {value!r}"
    elif value <= 0:  # tdp_w, lifetime_years
        return f"must be greater than 0, got {value!r}"
    return None


_REGION = re.compile(r"[A-Za-z][A-Za-z0-9_-]{1,15}")


def normalise_region(region: str) -> str:
    return region.strip().upper()


def gpu_tdp(device_name: str | None) -> tuple[float, str]:
    """Board power of a GPU by name, with its source (a generic value for unknown names)."""
    if device_name:
        upper = device_name.upper()
        for key, watts in GPU_TDP_W:
            if key in upper:
                return watts, f"{SRC_GPU_TDP} ({key}: {watts:g} W)"
    return 300.0, SRC_GPU_GENERIC


def _profile_kind(name: str) -> ProfileKind:
    """The profile kind of a target named ``name``: its target kind's, or ``table`` for a
    name that is no device (a table target)."""
    from hwsearch.errors import SpecError
    from hwsearch.hardware.targets import parse_target_name, target_kind

    try:
        return target_kind(parse_target_name(name)).profile_kind
    except SpecError:
        return "table"


def default_profile(
    name: str, *, kind: ProfileKind | None = None, device_name: str | None = None
) -> TargetProfile:
    """The built-in profile of a target.

    ``cpu``: a share of a reference server CPU; ``cuda:N``: the GPU named ``device_name``
    (looked up on this machine when not given, else a generic data-centre GPU); any other
    name: a device known only through tables, with placeholder factors to override.
    """
    text = name.strip().lower()
    if kind is None:
        kind = _profile_kind(name)
    common = {
        "lifetime_years": SRC_LIFETIME,
        "busy_share": SRC_BUSY,
        "pue": SRC_PUE,
        "region": SRC_REGION,
    }
    if kind == "cpu":
        return TargetProfile(
            name=name,
            kind="cpu",
            tdp_w=270.0,
            cores=80,
            embodied_kgco2e=1250.0,
            sources={
                "tdp_w": SRC_XEON_TDP,
                "cores": SRC_XEON_TDP,
                "embodied_kgco2e": SRC_SERVER_EMBODIED,
                **common,
            },
        )
    if kind == "cuda":
        if device_name is None:
            device_name = _local_gpu_name(text)
        tdp, tdp_source = gpu_tdp(device_name)
        return TargetProfile(
            name=name,
            kind="cuda",
            tdp_w=tdp,
            cores=1,
            embodied_kgco2e=150.0,
            sources={
                "tdp_w": tdp_source,
                "cores": SRC_SINGLE_UNIT,
                "embodied_kgco2e": SRC_GPU_EMBODIED,
                **common,
            },
        )
    return TargetProfile(
        name=name,
        kind="table",
        tdp_w=10.0,
        cores=1,
        embodied_kgco2e=50.0,
        sources={
            "tdp_w": SRC_TABLE_DEVICE,
            "cores": SRC_SINGLE_UNIT,
            "embodied_kgco2e": SRC_TABLE_DEVICE,
            **common,
        },
    )


def _local_gpu_name(text: str) -> str | None:
    """The name of CUDA device ``text`` on this machine, or None (no torch, no CUDA)."""
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    index = int(text.split(":", 1)[1]) if ":" in text else 0
    if index >= torch.cuda.device_count():
        return None
    return str(torch.cuda.get_device_name(index))


def resolve_profile(
    name: str, overrides: Mapping[str, Any] | None = None, *, kind: ProfileKind | None = None
) -> TargetProfile:
    """The default profile of ``name`` with a spec's ``overrides`` applied."""
    profile = default_profile(name, kind=kind)
    return profile.with_overrides(overrides or {}) if overrides else profile


__all__ = [
    "METER_CHOICES",
    "OVERRIDABLE",
    "PROFILE_KINDS",
    "TargetProfile",
    "default_profile",
    "gpu_tdp",
    "normalise_region",
    "profile_value_problem",
    "resolve_profile",
]
