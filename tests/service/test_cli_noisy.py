"""`hwsearch run` warns when measurements are noisy or the cores are overfilled."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import yaml
from typer.testing import CliRunner

from hwsearch.records import MetricValue, Provenance
from hwsearch.service.cli import app
from hwsearch.service.cli.jobs import noisy_summary

runner = CliRunner()


def test_run_on_busy_cores_warns_that_measurements_are_noisy(
    tmp_path: Path, tiny_spec: dict[str, Any], busy_cores: int
) -> None:
    spec = {**tiny_spec, "budget": {"evaluations": 2}, "optimizer": {"name": "random"}}
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(spec))
    url = f"sqlite:///{tmp_path / 'jobs.db'}"
    result = runner.invoke(app, ["run", str(path), "--db", url, "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    output = " ".join(result.output.split())  # rich wraps at the terminal's width
    assert "warning:" in output and "are noisy" in output, output
    assert "other processes on the cores" in output, output


def test_run_warns_when_workers_times_threads_exceed_the_cores(
    tmp_path: Path, tiny_spec: dict[str, Any]
) -> None:
    from hwsearch.hardware.threads import usable_cores

    spec = {
        **tiny_spec,
        "budget": {"evaluations": 1},
        "optimizer": {"name": "random"},
        "threads": {"training": usable_cores() + 1},
    }
    path = tmp_path / "crowded.yaml"
    path.write_text(yaml.safe_dump(spec))
    url = f"sqlite:///{tmp_path / 'jobs.db'}"
    result = runner.invoke(app, ["run", str(path), "--db", url, "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    output = " ".join(result.output.split())
    assert "usable core(s): timings will be taken on shared cores" in output, output


def _candidate(noisy: bool, reasons: list[str]) -> Any:
    details = {"noisy": noisy, "noisy_reasons": reasons, "load": {}}
    latency = MetricValue("latency_ms", 1.0, Provenance.MEASURED, "cpu", details)
    return SimpleNamespace(metrics={"latency_ms": latency})


def test_the_summary_counts_noisy_measurements_and_names_the_commonest_reason() -> None:
    clean = [_candidate(False, []), _candidate(False, [])]
    assert noisy_summary(clean) is None
    mixed = [
        *clean,
        _candidate(True, ["dispersion cv 0.120 above the target 0.05"]),
        _candidate(True, ["dispersion cv 0.090 above the target 0.05"]),
        _candidate(True, ["1-minute load average 4.10 on 2 cores"]),
    ]
    summary = noisy_summary(mixed)
    assert summary is not None
    assert summary.startswith("3 of 5 measurement(s) are noisy")
    assert "dispersion above target_cv" in summary
