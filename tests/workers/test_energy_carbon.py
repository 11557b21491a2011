"""Energy and carbon in evaluations, jobs and the CLI: measured in the same run as the
latency, stored with provenance, broken down on fronts, and the search's own footprint."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from hwsearch.db import Store
from hwsearch.errors import NotFoundError, SpecErrors, StorageError
from hwsearch.hardware.carbon import GRID_INTENSITY
from hwsearch.hardware.energy import CPU_ESTIMATE_MODEL, meter_available
from hwsearch.hardware.profiles import TargetProfile, default_profile
from hwsearch.records import MetricValue, Provenance
from hwsearch.search.spec import parse_spec
from hwsearch.service.cli import app
from hwsearch.workers.evaluation import LM_METRICS, TRAINED_METRICS, EvalTask, evaluate

RAPL_HERE = meter_available("rapl")
FAST = {"warmup": 1, "min_repeats": 3, "max_repeats": 6, "max_seconds": 1.0}
PROFILE = {"region": "DE", "pue": 1.25}


@pytest.fixture(scope="module")
def mlp_metrics() -> dict[str, MetricValue]:
    task = EvalTask(
        candidate_id=1,
        family="mlp",
        config={"depth": 1, "width": 16, "weight_bits": 8},
        config_hash="h",
        target="cpu",
        seed=0,
        evaluation={"epochs": 1, "finetune_epochs": 0},
        measurement={**FAST, "batch_size": 2, "target_profile": PROFILE},
    )
    outcome = evaluate(task)
    assert outcome.ok, outcome.error
    return {m.name: m for m in outcome.metrics}


def test_a_trained_candidate_gets_energy_and_carbon_from_its_latency_run(
    mlp_metrics: dict[str, MetricValue],
) -> None:
    assert set(mlp_metrics) == TRAINED_METRICS
    energy = mlp_metrics["energy_j_per_inference"]
    latency_s = mlp_metrics["latency_ms"].value / 1000
    # average power of the measurement run x median latency / batch size
    assert energy.value == pytest.approx(energy.details["average_power_w"] * latency_s / 2)
    assert energy.details["latency_s"] == pytest.approx(latency_s)
    if not RAPL_HERE:  # no counter in this container: the estimate ran, and says so
        assert energy.provenance is Provenance.ESTIMATED
        assert energy.details["meter"] == "estimate"
        assert energy.details["model"] == CPU_ESTIMATE_MODEL
        assert energy.details["cpu_seconds"] > 0


def test_carbon_is_energy_times_pue_and_grid_plus_amortised_embodied(
    mlp_metrics: dict[str, MetricValue],
) -> None:
    energy = mlp_metrics["energy_j_per_inference"].value
    total = mlp_metrics["carbon_g_per_1k"]
    operational = mlp_metrics["carbon_operational_g_per_1k"].value
    embodied = mlp_metrics["carbon_embodied_g_per_1k"].value
    assert operational == pytest.approx(
        1000 * energy / 3.6e6 * 1.25 * GRID_INTENSITY["DE"].g_per_kwh
    )
    busy_s = mlp_metrics["latency_ms"].value / 1000 / 2
    cpu = default_profile("cpu")
    expected_embodied = (
        1000
        * busy_s
        * (1 / cpu.cores)
        * cpu.embodied_kgco2e
        * 1000
        / (cpu.lifetime_years * 365.25 * 86400 * cpu.busy_share)
    )
    assert embodied == pytest.approx(expected_embodied)
    assert total.value == pytest.approx(operational + embodied)
    assert total.provenance is Provenance.ESTIMATED
    assert total.details["region"] == "DE" and total.details["pue"] == 1.25
    assert (
        total.details["energy_provenance"] == mlp_metrics["energy_j_per_inference"].provenance.value
    )
    assert total.details["profile"]["sources"]["pue"] == "job spec"


def test_energy_provenance_and_model_survive_the_store(
    store: Store, mlp_metrics: dict[str, MetricValue]
) -> None:
    job = store.create_job(name="e", family="mlp", target="cpu", spec={})
    (candidate,) = store.add_candidates(job.id, [("h" * 64, {"depth": 1}, 0)])
    store.record_result(candidate.id, list(mlp_metrics.values()), feasible=True)
    stored = store.get_candidate(job.id, candidate.id).metrics
    energy = stored["energy_j_per_inference"]
    assert energy.provenance == mlp_metrics["energy_j_per_inference"].provenance
    assert energy.details["meter"] == mlp_metrics["energy_j_per_inference"].details["meter"]
    assert stored["carbon_g_per_1k"].details["model"].startswith("per 1,000 inferences")


def test_target_profiles_round_trip_through_the_store(store: Store) -> None:
    profile = default_profile("cpu").with_overrides({"region": "FR", "pue": 1.1})
    saved = store.save_target(profile.to_dict())
    assert TargetProfile.from_dict(saved.profile_data()) == profile
    assert store.get_target("cpu") == saved
    # replace=False keeps what is stored; replace=True updates it
    kept = store.save_target(default_profile("cpu").to_dict(), replace=False)
    assert kept.region == "FR"
    updated = store.save_target(default_profile("cpu").to_dict())
    assert updated.region == "WORLD" and updated.updated_at >= saved.updated_at
    store.save_target(default_profile("pixel3").to_dict())
    assert [t.name for t in store.list_targets()] == ["cpu", "pixel3"]
    with pytest.raises(NotFoundError):
        store.get_target("tpu")
    with pytest.raises(StorageError) as info:
        store.save_target({**profile.to_dict(), "kind": "fpga"})
    assert info.value.field == "kind"
    with pytest.raises(StorageError) as info:
        store.save_target({**profile.to_dict(), "pue": float("nan")})
    assert info.value.field == "pue"


def test_job_footprint_is_stored_with_the_job(store: Store) -> None:
    job = store.create_job(name="f", family="mlp", target="cpu", spec={})
    assert store.get_job_footprint(job.id) is None
    store.set_job_footprint(job.id, {"energy_j": 1.5, "total_g": 0.2, "runs": 1})
    assert store.get_job_footprint(job.id) == {"energy_j": 1.5, "total_g": 0.2, "runs": 1}
    with pytest.raises(NotFoundError):
        store.set_job_footprint(job.id + 1, {})


def test_a_language_model_is_timed_as_served() -> None:
    task = EvalTask(
        candidate_id=2,
        family="transformer",
        config={"layers": 1, "d_model": 32, "heads": 2, "kv_heads": 1, "weight_bits": 8},
        config_hash="h",
        target="cpu",
        seed=0,
        evaluation={
            "type": "lm",
            "steps": 3,
            "finetune_steps": 0,
            "batch_size": 4,
            "seq_len": 32,
            "eval_windows": 4,
            "prompt_len": 8,
            "new_tokens": 4,
        },
        measurement={**FAST, "batch_size": 2},
    )
    outcome = evaluate(task)
    assert outcome.ok, outcome.error
    metrics = {m.name: m for m in outcome.metrics}
    assert set(metrics) == LM_METRICS
    decode = metrics["decode_ms_per_token"].value
    assert metrics["tokens_per_s"].value == pytest.approx(2 * 1000 / decode)
    assert metrics["kv_cache_bytes"].value == 2 * 1 * 2 * (8 + 4) * 1 * 16 * 4
    assert metrics["ttft_ms"].details["kernel_path"] == "aten-int8-weight-only"
    request = metrics["energy_j_per_inference"].value
    per_token = metrics["energy_j_per_token"].value
    assert request > 4 * per_token  # the prompt's prefill plus four decode steps
    assert metrics["perplexity"].provenance is Provenance.MEASURED


def _spec(**changes: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "name": "carbon",
        "family": "mlp",
        "target": {"name": "cpu", "region": "FR", "pue": 1.2},
        "space": {"width": {"type": "choice", "values": [8, 32]}, "depth": 1},
        "objectives": [
            {"metric": "accuracy", "direction": "maximize"},
            {"metric": "carbon_g_per_1k", "direction": "minimize"},
        ],
        "budget": {"evaluations": 2},
        "optimizer": {"name": "random"},
        "evaluation": {"epochs": 1, "finetune_epochs": 0},
        "measurement": FAST,
    }
    spec.update(changes)
    return spec


def test_profile_factors_travel_with_the_spec_and_round_trip() -> None:
    spec = parse_spec(_spec())
    assert spec.target_name == "cpu"
    assert dict(spec.measurement)["target_profile"] == {"region": "FR", "pue": 1.2}
    assert spec.target_profile().region == "FR"
    data = spec.to_dict()
    assert "target_profile" not in data["measurement"]
    assert parse_spec(data) == spec


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"target": {"name": "cpu", "region": "ATLANTIS"}}, "target.region"),
        ({"target": {"name": "cpu", "pue": 0.8}}, "target.pue"),
        ({"target": {"name": "cpu", "watts": 3}}, "target.watts"),
        # a malformed name; a GPU absent here is checked by the worker that measures
        ({"target": {"name": "gpu:7", "region": "FR"}}, "target.name"),
        ({"target": {"name": "cpu", "meter": "nvml"}}, "target.meter"),
        ({"measurement": {**FAST, "target_profile": {"pue": 2}}}, "measurement.target_profile"),
        ({"evaluation": {"type": "lm"}}, "evaluation.type"),
    ],
)
def test_bad_profile_or_evaluation_names_the_field(change: dict[str, Any], field: str) -> None:
    with pytest.raises(SpecErrors) as info:
        parse_spec(_spec(**change))
    assert field in {e.field for e in info.value.errors}


def test_language_model_metrics_are_refused_for_other_families() -> None:
    objectives = [{"metric": "ttft_ms", "direction": "minimize"}]
    with pytest.raises(SpecErrors) as info:
        parse_spec(_spec(objectives=objectives))
    (problem,) = info.value.errors
    assert problem.field == "objectives[0].metric" and "not produced" in problem.reason


def test_run_shows_the_carbon_breakdown_and_the_search_footprint(tmp_path: Path) -> None:
    spec_path = tmp_path / "carbon.yaml"
    spec_path.write_text(yaml.safe_dump(_spec()))
    url = f"sqlite:///{tmp_path / 'jobs.db'}"
    runner = CliRunner()
    result = runner.invoke(app, ["run", str(spec_path), "--db", url, "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "operational" in result.output and "embodied" in result.output
    assert "search footprint:" in result.output and "region FR" in result.output
    with Store.open(url) as store:
        footprint = store.get_job_footprint(1)
        assert footprint is not None and footprint["runs"] == 1
        assert footprint["total_g"] == pytest.approx(
            footprint["operational_g"] + footprint["embodied_g"]
        )
        assert footprint["energy_j"] > 0 and footprint["region"] == "FR"
        assert store.get_target("cpu").region == "FR"  # the profile the job ran with
    csv_header = (tmp_path / "front.csv").read_text().splitlines()[0]
    assert "carbon_operational_g_per_1k" in csv_header and "carbon_embodied_g_per_1k" in csv_header
    front = runner.invoke(app, ["front", "1", "--db", url, "--format", "json"])
    point = json.loads(front.stdout)["points"][0]
    assert point["metrics"]["carbon_g_per_1k"]["details"]["region"] == "FR"
    assert point["metrics"]["energy_j_per_inference"]["details"]["meter"] in ("estimate", "rapl")
    listed = runner.invoke(app, ["targets", "--db", url, "--json"])
    assert listed.exit_code == 0, listed.output
    by_name = {t["name"]: t for t in json.loads(listed.stdout)}
    cpu = by_name["cpu"]
    assert cpu["region"] == "FR" and cpu["sources"]["tdp_w"]
    # ONNX Runtime on this CPU is listed with the default CPU profile, not the job's
    assert by_name["ort:cpu"]["kind"] == "cpu" and by_name["ort:cpu"]["region"] != "FR"
