"""Target profiles: defaults with sources, overrides from a spec, checks, round trips."""

from __future__ import annotations

import pytest

from hwsearch.errors import SpecError
from hwsearch.hardware.profiles import (
    OVERRIDABLE,
    TargetProfile,
    default_profile,
    gpu_tdp,
    resolve_profile,
)


def test_cpu_default_is_a_reference_server_cpu_with_a_source_for_every_factor() -> None:
    cpu = default_profile("cpu")
    assert cpu.kind == "cpu"
    assert cpu.tdp_w == 270.0 and cpu.cores == 80
    assert cpu.device_share(1) == pytest.approx(1 / 80)
    assert cpu.device_share(500) == 1.0
    for factor in ("tdp_w", "cores", "embodied_kgco2e", "lifetime_years", "busy_share", "pue"):
        assert cpu.sources[factor], factor


def test_gpu_default_follows_the_device_name() -> None:
    assert gpu_tdp("NVIDIA H100 80GB HBM3")[0] == 700.0
    assert gpu_tdp("NVIDIA H100 PCIe")[0] == 350.0
    assert gpu_tdp("NVIDIA H200")[0] == 700.0
    watts, source = gpu_tdp("Some Future GPU")
    assert watts == 300.0 and "assumption" in source
    gpu = default_profile("cuda:0", device_name="NVIDIA A100-SXM4-40GB")
    assert gpu.kind == "cuda" and gpu.tdp_w == 400.0 and gpu.device_share(8) == 1.0


def test_unknown_name_is_a_table_device_with_placeholder_factors() -> None:
    pixel = default_profile("pixel3")
    assert pixel.kind == "table"
    assert "placeholder" in pixel.sources["tdp_w"]


def test_overrides_replace_factors_and_mark_their_source() -> None:
    profile = resolve_profile(
        "cpu", {"region": "fr", "pue": 1.2, "tdp_w": 100, "lifetime_years": 6}
    )
    assert profile.region == "FR" and profile.pue == 1.2 and profile.tdp_w == 100
    assert profile.lifetime_years == 6
    assert profile.sources["region"] == "job spec" and profile.sources["pue"] == "job spec"
    assert profile.sources["cores"] != "job spec"


@pytest.mark.parametrize(
    ("key", "value", "words"),
    [
        ("pue", 0.9, "at least 1"),
        ("tdp_w", 0, "greater than 0"),
        ("busy_share", 1.5, "(0, 1]"),
        ("cores", 2.5, "integer"),
        ("embodied_kgco2e", -1, "negative"),
        ("region", "", "region code"),
        ("meter", "wattmeter", "auto"),
        ("lifetime_years", float("nan"), "finite"),
    ],
)
def test_bad_override_names_the_field_and_the_reason(key: str, value: object, words: str) -> None:
    with pytest.raises(SpecError) as info:
        default_profile("cpu").with_overrides({key: value})
    assert info.value.field == f"target.{key}"
    assert words in info.value.reason


def test_unknown_factor_lists_the_known_ones() -> None:
    with pytest.raises(SpecError) as info:
        default_profile("cpu").with_overrides({"watts": 3})
    assert info.value.field == "target.watts"
    assert all(name in info.value.reason for name in OVERRIDABLE)


def test_profile_round_trips_through_plain_data() -> None:
    profile = resolve_profile("cuda:1", {"region": "SE", "grid_gco2e_per_kwh": 12.5})
    data = profile.to_dict()
    assert TargetProfile.from_dict(data) == profile
    with pytest.raises(ValueError, match="unknown profile field"):
        TargetProfile.from_dict({**data, "colour": "green"})


def test_constructor_rejects_bad_values_quoting_them() -> None:
    with pytest.raises(ValueError, match="-3"):
        TargetProfile(name="x", kind="cpu", tdp_w=-3, embodied_kgco2e=1)
    with pytest.raises(ValueError, match="'tpu'"):
        TargetProfile(name="x", kind="tpu", tdp_w=3, embodied_kgco2e=1)  # type: ignore[arg-type]
