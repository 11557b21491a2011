"""``hwsearch predictors fit|eval|list`` on a database with stored measurements."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from hwsearch.db import Store
from hwsearch.service.cli import app

from .test_registry import _fill

runner = CliRunner()


def test_fit_eval_list(tmp_path: Path, nb201_data: Path) -> None:
    url = f"sqlite:///{tmp_path / 'p.db'}"
    with Store.open(url) as store:
        _fill(store, nb201_data)
    where = ["--family", "nb201", "--target", "gold_6240", "--db", url]

    fit = runner.invoke(app, ["predictors", "fit", *where, "--kind", "ridge"])
    assert fit.exit_code == 0, fit.output
    assert "version 1 (ridge, 48 training points)" in fit.output
    assert runner.invoke(app, ["predictors", "fit", *where]).exit_code == 0

    evaluated = runner.invoke(app, ["predictors", "eval", *where, "--version", "1"])
    assert evaluated.exit_code == 0, evaluated.output
    assert "version 1 on 12 held-out measurement(s)" in evaluated.output

    listed = runner.invoke(app, ["predictors", "list", "--db", url, "--json"])
    assert listed.exit_code == 0, listed.output
    rows = json.loads(listed.stdout)
    assert [(r["version"], r["kind"], r["training_size"]) for r in rows] == [
        (1, "ridge", 48),
        (2, "gp", 48),
    ]
    assert rows[0]["metrics"]["spearman"] > 0.5
    table = runner.invoke(app, ["predictors", "list", "--db", url, "--target", "gold_6240"])
    assert table.exit_code == 0 and "ridge" in table.output and "gp" in table.output


def test_errors_name_the_problem(tmp_path: Path, nb201_data: Path) -> None:
    url = f"sqlite:///{tmp_path / 'p.db'}"
    with Store.open(url) as store:
        _fill(store, nb201_data, n=8)
    where = ["--family", "nb201", "--target", "gold_6240", "--db", url]
    bad_kind = runner.invoke(app, ["predictors", "fit", *where, "--kind", "svm"])
    assert bad_kind.exit_code == 2 and "kind" in bad_kind.output
    missing = runner.invoke(app, ["predictors", "eval", *where])
    assert missing.exit_code == 1 and "no predictor of 'latency_ms'" in missing.output
    few = runner.invoke(app, ["predictors", "fit", *where, "--metric", "energy_j"])
    assert few.exit_code == 1 and "0 stored value(s) of 'energy_j'" in few.output
