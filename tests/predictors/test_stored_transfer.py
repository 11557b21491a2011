"""The stored ``transfer`` predictor and the reference set, from what the database holds.

The store gets the shared NAS-Bench-201 latencies of a sample of cells: every device but
one measured all of them, the new device only ten.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from hwsearch.db import Store
from hwsearch.errors import HwsearchError, SpecError
from hwsearch.models.nb201 import NB201, config_from_arch
from hwsearch.predictors.metrics import evaluate
from hwsearch.predictors.registry import evaluate_stored, fit_stored, load_stored
from hwsearch.predictors.stored_transfer import reference_configs
from hwsearch.records import MetricValue, Provenance
from hwsearch.search.hashing import config_hash
from hwsearch.service.cli import app

TARGET = "silver_4210r"
SAMPLE = 120
TRAINING = 10


class Cells:
    """A seeded sample of cells: canonical configs, their hashes and latencies per device."""

    def __init__(self, nb201_data: Path) -> None:
        table = pd.read_csv(nb201_data / "latency_ms.csv")
        rows = table.iloc[np.random.default_rng(0).choice(len(table), SAMPLE, replace=False)]
        self.configs = [NB201.canonical(config_from_arch(a)) for a in rows["arch"]]
        self.hashes = [config_hash("nb201", c) for c in self.configs]
        self.devices = [c for c in table.columns if c not in ("index", "arch")]
        self.latency = {d: rows[d].to_numpy(float) for d in self.devices}
        self.sources = sorted(d for d in self.devices if d != TARGET)


@pytest.fixture(scope="module")
def cells(nb201_data: Path) -> Cells:
    return Cells(nb201_data)


def _measure(
    store: Store, device: str, configs: Sequence[dict[str, Any]], values: Sequence[float]
) -> None:
    """One job of ``device`` that measured ``configs``."""
    job = store.create_job(name=f"measure {device}", family="nb201", target=device, spec={}).id
    items = [(config_hash("nb201", c), c, 0) for c in configs]
    results = [
        (candidate.id, [MetricValue("latency_ms", float(v), Provenance.MEASURED, device)], True)
        for candidate, v in zip(store.add_candidates(job, items), values, strict=True)
    ]
    store.record_results(results)


def _fill(store: Store, cells: Cells, training: int = TRAINING) -> None:
    """Every source measured every cell; the target measured the first ``training``."""
    for device in cells.sources:
        _measure(store, device, cells.configs, cells.latency[device])
    _measure(store, TARGET, cells.configs[:training], cells.latency[TARGET][:training])


def test_transfer_beats_gp_and_round_trips(store: Store, cells: Cells) -> None:
    _fill(store, cells)
    where = {"family": "nb201", "target": TARGET, "metric": "latency_ms", "holdout": 0.0}
    transfer = fit_stored(store, kind="transfer", **where)  # type: ignore[arg-type]
    gp = fit_stored(store, kind="gp", **where)  # type: ignore[arg-type]
    assert (transfer.version, transfer.kind, transfer.training_size) == (1, "transfer", 10)
    assert transfer.state["sources"] == cells.sources
    assert transfer.state["dropped_sources"] == {}
    assert "edge0=none" in transfer.features

    held_out = cells.configs[TRAINING:]
    truth = cells.latency[TARGET][TRAINING:]
    mean, std = load_stored(transfer, store).predict_configs(held_out)
    alone, _ = load_stored(gp, store).predict_configs(held_out)
    with_sources, without = evaluate(truth, mean), evaluate(truth, alone)
    assert with_sources["spearman"] >= 0.9
    assert with_sources["spearman"] > without["spearman"] + 0.03
    assert with_sources["mape"] < without["mape"]
    assert (std > 0).all()

    # a later value of a training config on a source changes nothing of the stored fit
    _measure(store, cells.sources[0], cells.configs[:1], [cells.latency[cells.sources[0]][0] * 3])
    again = load_stored(store.get_predictor("nb201", TARGET, "latency_ms", version=1), store)
    assert again.predict_configs(held_out)[0].tolist() == mean.tolist()

    # evaluated on later measurements of the target, those the sources measured
    _measure(store, TARGET, held_out[:30], truth[:30])
    _measure(store, TARGET, [NB201.canonical({"ops": ["none"] * 6})], [1.0])
    record, metrics, count = evaluate_stored(
        store, family="nb201", target=TARGET, metric="latency_ms", version=1
    )
    assert record == transfer and count == 30
    assert metrics == pytest.approx(evaluate(truth[:30], mean[:30]))


def test_held_out_share_is_scored(store: Store, cells: Cells) -> None:
    _fill(store, cells, training=40)
    record = fit_stored(
        store, family="nb201", target=TARGET, metric="latency_ms", kind="transfer", holdout=0.5
    )
    assert record.training_size == 20 and len(record.state["source"]) == 20
    assert len(record.state["source"][0]) == len(cells.sources)
    assert record.metrics["spearman"] > 0.9
    _, metrics, count = evaluate_stored(store, family="nb201", target=TARGET, metric="latency_ms")
    assert count == 20 and metrics == pytest.approx(record.metrics)


def test_sources_that_lack_configs(store: Store, cells: Cells) -> None:
    where = {"family": "nb201", "target": TARGET, "metric": "latency_ms", "holdout": 0.0}
    _measure(store, TARGET, cells.configs[:TRAINING], cells.latency[TARGET][:TRAINING])
    with pytest.raises(HwsearchError, match="no source for a transfer predictor"):
        fit_stored(store, kind="transfer", **where)  # type: ignore[arg-type]

    full, partial = cells.sources[:2]
    _measure(store, partial, cells.configs[3:], cells.latency[partial][3:])
    with pytest.raises(HwsearchError, match=f"'{partial}' lacks 3"):
        fit_stored(store, kind="transfer", **where)  # type: ignore[arg-type]
    _measure(store, full, cells.configs[:50], cells.latency[full][:50])
    record = fit_stored(store, kind="transfer", **where)  # type: ignore[arg-type]
    assert record.state["sources"] == [full]
    assert record.state["dropped_sources"] == {partial: 3}
    with pytest.raises(HwsearchError, match=f"source '{partial}' lacks 3 of the 10"):
        fit_stored(store, kind="transfer", sources=[full, partial], **where)  # type: ignore[arg-type]

    predictor = load_stored(record, store)
    with pytest.raises(HwsearchError, match=f"not measured: 2 on source '{full}'"):
        predictor.predict_configs(cells.configs[48:52])
    assert predictor.predict_configs(cells.configs[40:50])[0].shape == (10,)

    with pytest.raises(SpecError, match="sources"):
        fit_stored(store, kind="gp", sources=[full], **where)  # type: ignore[arg-type]
    with pytest.raises(SpecError, match="own source"):
        fit_stored(store, kind="transfer", sources=[TARGET], **where)  # type: ignore[arg-type]
    with pytest.raises(SpecError, match="kind"):
        fit_stored(store, kind="svm", **where)  # type: ignore[arg-type]
    with pytest.raises(HwsearchError, match="pass the store"):
        load_stored(record)


def test_reference_set_from_the_store(store: Store, cells: Cells) -> None:
    _fill(store, cells)
    chosen = reference_configs(store, family="nb201", target=TARGET, count=10)
    hashes = [h for h, _ in chosen.configs]
    assert chosen.sources == cells.sources and chosen.pool == SAMPLE - TRAINING
    assert len(set(hashes)) == 10
    assert set(hashes) <= set(cells.hashes[TRAINING:])
    assert all(config_hash("nb201", c) == h for h, c in chosen.configs)
    spread = np.log(cells.latency[cells.sources[0]])
    picked = spread[[cells.hashes.index(h) for h in hashes]]
    assert np.ptp(picked) > 0.6 * np.ptp(spread[TRAINING:])

    one = cells.sources[:1]
    named = reference_configs(store, family="nb201", target=TARGET, count=5, sources=one)
    assert named.sources == one and len(named.configs) == 5
    with pytest.raises(SpecError, match="count"):
        reference_configs(store, family="nb201", target=TARGET, count=SAMPLE)
    with pytest.raises(HwsearchError, match="source 'nowhere' holds no measured"):
        reference_configs(store, family="nb201", target=TARGET, sources=["nowhere"])
    with pytest.raises(HwsearchError, match="no source target"):
        reference_configs(store, family="nb201", target=TARGET, metric="energy_j")


def test_cli_fit_eval_reference(tmp_path: Path, cells: Cells) -> None:
    url = f"sqlite:///{tmp_path / 'p.db'}"
    with Store.open(url) as store:
        _fill(store, cells, training=30)
    runner = CliRunner()
    where = ["--family", "nb201", "--target", TARGET, "--db", url]

    fit = runner.invoke(app, ["predictors", "fit", *where, "--kind", "transfer"])
    assert fit.exit_code == 0, fit.output
    assert "version 1 (transfer, 24 training points)" in fit.output
    assert f"sources: {', '.join(cells.sources)}" in fit.output
    evaluated = runner.invoke(app, ["predictors", "eval", *where])
    assert evaluated.exit_code == 0, evaluated.output
    assert "version 1 on 6 held-out measurement(s)" in evaluated.output

    shown = runner.invoke(app, ["predictors", "reference", *where, "--count", "4", "--json"])
    assert shown.exit_code == 0, shown.output
    payload = json.loads(shown.stdout)
    assert payload["sources"] == cells.sources
    picked = [row["config_hash"] for row in payload["configs"]]
    assert len(set(picked)) == 4 and set(picked) <= set(cells.hashes[30:])
    assert all(
        config_hash("nb201", row["config"]) == row["config_hash"] for row in payload["configs"]
    )
    table = runner.invoke(app, ["predictors", "reference", *where, "--count", "4"])
    assert table.exit_code == 0 and picked[0][:12] in table.output

    source = ["--source", cells.sources[0], "--source", cells.sources[1]]
    named = runner.invoke(app, ["predictors", "fit", *where, "--kind", "transfer", *source])
    assert named.exit_code == 0 and "version 2" in named.output, named.output
    lacking = runner.invoke(
        app, ["predictors", "fit", *where, "--kind", "transfer", "--source", "x"]
    )
    assert lacking.exit_code == 1 and "source 'x' lacks 30 of the 30" in lacking.output
    too_many = runner.invoke(app, ["predictors", "reference", *where, "--count", "500"])
    assert too_many.exit_code == 2 and "count" in too_many.output
