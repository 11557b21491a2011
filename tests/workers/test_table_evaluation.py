"""Evaluation from tables: metrics looked up by architecture, and a whole job run on them."""

from __future__ import annotations

import dataclasses
import pickle
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from hwsearch.db import Store
from hwsearch.hardware import TableKeyError
from hwsearch.models.nb201 import arch_string, config_from_arch, nb201_counts
from hwsearch.records import JobState, Provenance
from hwsearch.search.driver import run_job
from hwsearch.search.spec import load_spec, parse_spec
from hwsearch.workers import EvalTask, evaluate, evaluate_safely

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "nb201_pixel3.yaml"
SHARED = (ROOT / ".." / "shared" / "data" / "nb201").resolve()
ACCURACY = SHARED / "accuracy.csv"
LATENCY = SHARED / "latency_ms.csv"


@pytest.fixture(scope="module")
def csv_rows(nb201_data: Path) -> dict[str, dict[str, Any]]:
    """Accuracy and latency rows of the shared NAS-Bench-201 tables, by architecture."""
    assert nb201_data == SHARED
    merged = pd.read_csv(ACCURACY).merge(pd.read_csv(LATENCY), on=["index", "arch"])
    return {row["arch"]: row for row in merged.to_dict("records")}


def table_task(arch: str, *, target: str = "pixel3", **changes: Any) -> EvalTask:
    fields: dict[str, Any] = {
        "candidate_id": 7,
        "family": "nb201",
        "config": config_from_arch(arch),
        "config_hash": "h",
        "target": target,
        "seed": 0,
        "evaluation": {
            "type": "table",
            "table": str(ACCURACY),
            "column": "cifar10_acc",
            "scale": 0.01,
            "key": "arch",
        },
        "measurement": {"type": "table", "table": str(LATENCY), "column": target, "key": "arch"},
    }
    return EvalTask(**{**fields, **changes})


def with_changes(task: EvalTask, **changes: Any) -> EvalTask:
    return dataclasses.replace(task, **changes)


def test_table_evaluation_gives_the_csv_values(csv_rows: dict[str, dict[str, Any]]) -> None:
    archs = list(csv_rows)
    for arch in (archs[0], archs[1], archs[4_321], archs[-1]):
        row = csv_rows[arch]
        outcome = evaluate(table_task(arch))
        assert outcome.ok and outcome.candidate_id == 7
        metrics = {m.name: m for m in outcome.metrics}
        assert set(metrics) == {"accuracy", "latency_ms", "params", "macs", "size_bytes"}
        assert metrics["accuracy"].value == row["cifar10_acc"] * 0.01
        assert metrics["latency_ms"].value == row["pixel3"]
        for name in ("accuracy", "latency_ms"):
            assert metrics[name].provenance == Provenance.MEASURED
            assert metrics[name].target == "pixel3"
            assert metrics[name].details["key"] == arch
            assert "elsewhere" in metrics[name].details["measured"]
        assert metrics["accuracy"].details["source"] == str(ACCURACY)
        assert metrics["accuracy"].details["column"] == "cifar10_acc"
        assert metrics["accuracy"].details["table_value"] == row["cifar10_acc"]
        assert metrics["latency_ms"].details["source"] == str(LATENCY)
        assert metrics["latency_ms"].details["device"] == "pixel3"
        counts = nb201_counts(config_from_arch(arch))
        assert metrics["params"].value == counts.params
        assert metrics["macs"].value == counts.macs
        assert metrics["params"].provenance == Provenance.ESTIMATED
    # another device column of the same table
    outcome = evaluate(table_task(archs[1], target="gold_6240"))
    assert outcome.values()["latency_ms"] == csv_rows[archs[1]]["gold_6240"]


def test_table_evaluation_is_fast_and_the_task_is_plain_data(
    csv_rows: dict[str, dict[str, Any]],
) -> None:
    tasks = [table_task(arch) for arch in list(csv_rows)[:200]]
    assert pickle.loads(pickle.dumps(tasks[0])) == tasks[0]
    evaluate(tasks[0])  # tables read once per process
    start = time.perf_counter()
    outcomes = [evaluate(task) for task in tasks]
    per_candidate = (time.perf_counter() - start) / len(tasks)
    assert all(o.ok for o in outcomes)
    assert per_candidate < 0.010, f"{per_candidate * 1e3:.2f} ms per candidate"


def test_an_architecture_missing_from_the_table_fails_naming_it(tmp_path: Path) -> None:
    arch = "|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|"
    other = "|skip_connect~0|+|none~0|none~1|+|none~0|none~1|none~2|"
    table = tmp_path / "acc.csv"
    table.write_text(f"arch,top1\n{other},50.0\n")
    task = table_task(
        arch,
        evaluation={"type": "table", "table": str(table), "column": "top1"},
        measurement={"type": "table", "table": str(table), "column": "top1"},
    )
    with pytest.raises(TableKeyError) as info:
        evaluate(task)
    assert str(info.value) == f"architecture {arch!r} not in {table}"
    failed = evaluate_safely(task)
    assert not failed.ok and failed.error is not None
    assert arch in failed.error and str(table) in failed.error
    ok = evaluate(with_changes(task, config=config_from_arch(other)))
    assert ok.values()["accuracy"] == 50.0 == ok.values()["latency_ms"]


def test_nb201_is_not_trained() -> None:
    arch = "|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|"
    task = table_task(arch, evaluation={"epochs": 1}, measurement={"warmup": 1})
    outcome = evaluate_safely(with_changes(task, target="cpu"))
    assert outcome.error is not None
    assert "family 'nb201' is not trained here" in outcome.error


def test_table_quality_with_latency_timed_on_onnx_runtime(
    csv_rows: dict[str, dict[str, Any]],
) -> None:
    arch = "|nor_conv_1x1~0|+|none~0|skip_connect~1|+|none~0|none~1|avg_pool_3x3~2|"
    measurement = {"warmup": 1, "min_repeats": 3, "max_repeats": 5, "max_seconds": 2.0}
    outcome = evaluate(table_task(arch, target="ort:cpu", measurement=measurement))
    assert outcome.ok, outcome.error
    metrics = {m.name: m for m in outcome.metrics}
    assert metrics["accuracy"].value == csv_rows[arch]["cifar10_acc"] * 0.01
    latency = metrics["latency_ms"]
    assert latency.target == "ort:cpu" and latency.details["kernel_path"] == "ort-fp32"
    assert latency.details["environment"]["execution_provider"] == "CPUExecutionProvider"


def test_table_quality_with_latency_timed_on_this_cpu(csv_rows: dict[str, dict[str, Any]]) -> None:
    arch = "|nor_conv_1x1~0|+|none~0|skip_connect~1|+|none~0|none~1|avg_pool_3x3~2|"
    measurement = {"warmup": 1, "min_repeats": 3, "max_repeats": 5, "max_seconds": 2.0}
    task = table_task(arch, target="cpu", measurement=measurement)
    outcome = evaluate(task)
    assert outcome.ok
    metrics = {m.name: m for m in outcome.metrics}
    assert metrics["accuracy"].value == csv_rows[arch]["cifar10_acc"] * 0.01
    latency = metrics["latency_ms"]
    assert latency.provenance == Provenance.MEASURED and latency.target == "cpu"
    assert latency.value > 0 and latency.details["repeats"] >= 3
    assert latency.details["kernel_path"] == "fp32"
    assert latency.details["environment"]
    assert metrics["peak_memory_bytes"].value > 0
    assert metrics["params"].value == nb201_counts(config_from_arch(arch)).params


def test_job_on_tables_stores_a_front_of_csv_values(
    store: Store, csv_rows: dict[str, dict[str, Any]]
) -> None:
    example = load_spec(EXAMPLE)
    data = example.to_dict()
    data["budget"] = {"evaluations": 40}
    data["optimizer"] = {"name": "optuna-nsga2", "population_size": 10}
    spec = parse_spec(data)
    assert spec.target_name == "pixel3"

    job = run_job(spec, store)
    assert job.state == JobState.FINISHED and job.evaluations == 40
    assert job.target == "pixel3"
    stored = store.get_job(job.id)
    assert parse_spec(stored.spec) == spec  # the stored spec finds its tables again

    candidates = store.list_candidates(job.id)
    assert len(candidates) == 40
    for candidate in candidates:
        row = csv_rows[arch_string(candidate.config)]
        assert candidate.metrics["accuracy"].value == row["cifar10_acc"] * 0.01
        assert candidate.metrics["latency_ms"].value == row["pixel3"]

    front = store.latest_front(job.id)
    assert front is not None and front.points
    assert front.objectives == ["accuracy", "latency_ms"]
    for point in front.points:
        assert point.measured
        candidate = store.get_candidate(job.id, point.candidate_id)
        row = csv_rows[arch_string(candidate.config)]
        assert point.values["accuracy"] == row["cifar10_acc"] * 0.01
        assert point.values["latency_ms"] == row["pixel3"]
    # the front is non-dominated among the evaluated architectures
    for point in front.points:
        acc, lat = point.values["accuracy"], point.values["latency_ms"]
        assert not any(
            c.metrics["accuracy"].value >= acc
            and c.metrics["latency_ms"].value <= lat
            and (c.metrics["accuracy"].value, c.metrics["latency_ms"].value) != (acc, lat)
            for c in candidates
        )
