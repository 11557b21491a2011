"""docs/byo.md's example: the files it quotes are examples/byo verbatim, and both forms run."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from hwsearch.db import Store
from hwsearch.search.api import front_of
from hwsearch.service.cli import app

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "examples" / "byo"
FILES = ("my_models.py", "byo.yaml", "search_api.py")


def _copy(tmp_path: Path) -> Path:
    folder = tmp_path / "byo"
    shutil.copytree(EXAMPLE, folder, ignore=shutil.ignore_patterns("weights", "__pycache__"))
    return folder


def test_docs_quote_the_example_verbatim() -> None:
    doc = (ROOT / "docs" / "byo.md").read_text()
    for name in FILES:
        assert (EXAMPLE / name).read_text().strip() in doc, name


def test_the_yaml_example_runs_and_exports(tmp_path: Path) -> None:
    folder = _copy(tmp_path)
    db = f"sqlite:///{folder / 'byo.db'}"
    result = CliRunner().invoke(
        app, ["run", str(folder / "byo.yaml"), "--db", db, "--out", str(folder / "out")]
    )
    assert result.exit_code == 0, result.output
    store = Store.open(db)
    try:
        front = front_of(store, 1)
    finally:
        store.close()
    assert front.points and all(p.metrics["accuracy"].value >= 0.8 for p in front.points)
    point = front.points[0]
    result = CliRunner().invoke(
        app, ["export", "1", str(point.candidate_id), "--out", str(folder / "exp"), "--db", db]
    )
    assert result.exit_code == 0, result.output
    assert "differs" not in result.output


def test_the_python_example_runs(tmp_path: Path) -> None:
    folder = _copy(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "search_api.py", f"sqlite:///{folder / 'api.db'}", "2"],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    assert lines and all("measured" in line for line in lines)
    # an ordinary job: the CLI exports it from the stored weights
    candidate = lines[0].split()[0]
    db = f"sqlite:///{folder / 'api.db'}"
    result = CliRunner().invoke(
        app, ["export", "1", candidate, "--out", str(folder / "exp"), "--db", db]
    )
    assert result.exit_code == 0, result.output
    assert "stored weights" in (folder / "exp" / "README.md").read_text()
