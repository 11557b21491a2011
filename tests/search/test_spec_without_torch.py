"""A spec is checked before torch, Ray, scikit-learn or the database are imported: the spec
path of ``hwsearch run`` and ``hwsearch check`` (a bad spec is reported in under a second
on a quiet machine, not after the 7–9 s those imports took), and ``load_spec``. Each
case runs in a fresh interpreter and reads ``sys.modules`` at the end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "ray", "sklearn", "scipy", "sqlalchemy", "alembic", "optuna", "pandas")
TYPO = (
    (ROOT / "examples" / "digits_cnn.yaml")
    .read_text()
    .replace("metric: accuracy,", "metric: acuracy,", 1)
)


def _imported_after(code: str, tmp_path: Path) -> tuple[list[str], str]:
    """The heavy packages imported by the end of ``code``, and what it printed."""
    script = textwrap.dedent(code) + textwrap.dedent(
        f"""
        import json as _json, sys as _sys
        print("HEAVY=" + _json.dumps(sorted(m for m in {HEAVY!r} if m in _sys.modules)))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    line = next(x for x in done.stdout.splitlines() if x.startswith("HEAVY="))
    return json.loads(line.removeprefix("HEAVY=")), done.stdout + done.stderr


@pytest.mark.parametrize("command", ["run", "check"])
def test_a_typo_is_reported_without_importing_torch(command: str, tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text(TYPO)
    args = [command, "bad.yaml", *(["--db", "sqlite:///x.db"] if command == "run" else [])]
    heavy, out = _imported_after(
        f"""
        from hwsearch.service.cli import app
        try:
            app({args!r})
        except SystemExit as exc:
            assert exc.code == 2, exc.code
        """,
        tmp_path,
    )
    assert "objectives[0].metric" in out and "acuracy" in out
    assert heavy == [], f"the spec check imported {heavy}"
    assert not (tmp_path / "x.db").exists()


@pytest.mark.parametrize("example", ["digits_cnn.yaml", "digits_cnn_carbon.yaml", "tiny_lm.yaml"])
def test_a_sound_spec_is_checked_without_torch(example: str, tmp_path: Path) -> None:
    heavy, out = _imported_after(
        f"""
        from hwsearch.search.spec import load_spec
        spec = load_spec({str(ROOT / "examples" / example)!r})
        print("checked", spec.name)
        """,
        tmp_path,
    )
    assert "checked" in out
    assert heavy == [], f"checking {example} imported {heavy}"


def test_the_families_register_without_torch(tmp_path: Path) -> None:
    heavy, out = _imported_after(
        """
        from hwsearch.models import family_names, get_family
        print(family_names())
        get_family("cnn").canonical({"stages": 2})
        """,
        tmp_path,
    )
    assert "'cnn'" in out and "'transformer'" in out
    assert heavy == []


def test_building_a_model_still_imports_torch_on_demand(tmp_path: Path) -> None:
    heavy, _ = _imported_after(
        """
        from hwsearch.models import build_candidate, get_family
        model = get_family("cnn").build({"stages": 1})
        assert type(model).__name__ == "ResNet"
        assert callable(build_candidate)
        """,
        tmp_path,
    )
    assert "torch" in heavy


def test_check_accepts_a_sound_spec_without_torch(tmp_path: Path) -> None:
    spec = str(ROOT / "examples" / "digits_cnn.yaml")
    heavy, out = _imported_after(
        f"""
        from hwsearch.service.cli import app
        try:
            app(["check", {spec!r}])
        except SystemExit as exc:
            assert exc.code in (0, None), exc.code
        """,
        tmp_path,
    )
    assert "a valid spec (digits-cnn" in out.replace("\n", " ")
    assert heavy == []
