"""Predictors fitted on stored measurements, versioned and loaded back, on each backend."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from hwsearch.db import Store
from hwsearch.errors import HwsearchError, NotFoundError, SpecError, StorageError
from hwsearch.models.nb201 import config_from_arch
from hwsearch.predictors.registry import evaluate_stored, fit_stored, load_stored
from hwsearch.records import MetricValue, Provenance


def _fill(store: Store, nb201_data: Path, n: int = 60) -> list[dict[str, object]]:
    table = pd.read_csv(nb201_data / "latency_ms.csv", nrows=n)
    job = store.create_job(name="m", family="nb201", target="gold_6240", spec={}).id
    configs = [config_from_arch(a) for a in table["arch"]]
    items = [(f"h{i}", c, 0) for i, c in enumerate(configs)]
    for candidate, value in zip(store.add_candidates(job, items), table["gold_6240"], strict=True):
        metrics = [MetricValue("latency_ms", float(value), Provenance.MEASURED, "gold_6240")]
        store.record_result(candidate.id, metrics, feasible=True)
    # a predicted value is never training data
    other = store.add_candidates(job, [("p1", configs[0] | {"cells": 2}, 1)])[0]
    guess = MetricValue("latency_ms", 1.0, Provenance.PREDICTED, "gold_6240")
    store.record_result(other.id, [guess], feasible=True)
    return configs  # type: ignore[return-value]


def test_fit_store_load_and_evaluate_versions(store: Store, nb201_data: Path) -> None:
    configs = _fill(store, nb201_data)
    assert len(store.measured_values("nb201", "gold_6240", "latency_ms")) == 60
    first = fit_stored(store, family="nb201", target="gold_6240", metric="latency_ms", kind="gp")
    second = fit_stored(
        store, family="nb201", target="gold_6240", metric="latency_ms", kind="ridge", seed=1
    )
    assert (first.version, second.version) == (1, 2)
    assert first.training_size == 48 and first.kind == "gp"
    assert "log_macs" in first.features and first.state["log"] is True
    assert first.metrics["spearman"] > 0.5
    assert set(first.metrics) == {"rmse", "mape", "within_10pct", "spearman", "kendall"}

    assert store.get_predictor("nb201", "gold_6240", "latency_ms") == second
    assert store.get_predictor("nb201", "gold_6240", "latency_ms", version=1) == first
    assert [p.version for p in store.list_predictors(family="nb201")] == [1, 2]
    assert store.list_predictors(target="cpu") == []

    loaded = load_stored(first)
    mean, std = loaded.predict_configs(configs[:5])
    again = load_stored(store.get_predictor("nb201", "gold_6240", "latency_ms", version=1))
    assert mean.tolist() == again.predict_configs(configs[:5])[0].tolist()
    assert (mean > 0).all() and (std > 0).all()

    record, metrics, count = evaluate_stored(
        store, family="nb201", target="gold_6240", metric="latency_ms", version=1
    )
    assert record == first and count == 12
    assert metrics == pytest.approx(first.metrics)


def test_bad_requests_are_refused(store: Store, nb201_data: Path) -> None:
    with pytest.raises(HwsearchError, match="0 stored value"):
        fit_stored(store, family="nb201", target="gold_6240", metric="latency_ms")
    _fill(store, nb201_data, n=10)
    with pytest.raises(SpecError, match="kind"):
        fit_stored(store, family="nb201", target="gold_6240", metric="latency_ms", kind="svm")
    with pytest.raises(SpecError, match="holdout"):
        fit_stored(store, family="nb201", target="gold_6240", metric="latency_ms", holdout=1.0)
    with pytest.raises(NotFoundError, match="no version 3 of predictor"):
        store.get_predictor("nb201", "gold_6240", "latency_ms", version=3)
    with pytest.raises(StorageError, match=r"metrics\.rmse"):
        store.save_predictor(
            family="nb201",
            target="t",
            metric="latency_ms",
            kind="gp",
            features=[],
            training_size=1,
            metrics={"rmse": float("nan")},
            state={},
        )
    assert store.list_predictors() == []
