"""Hostile spec files and database URLs on the command line: a spec error and exit 2, or
a clear refusal, never a traceback; YAML loading is bounded in time and memory."""

from __future__ import annotations

import json
import resource
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hwsearch.errors import SpecErrors
from hwsearch.search.spec import load_spec
from hwsearch.search.spec_files import load_yaml
from hwsearch.service.cli import app

# A guard against the old unbounded paths (they took minutes or ran out of memory), not a
# speed goal: the speed figures are bench/hostile.py's.
HANG_S = 30.0

runner = CliRunner()

BILLION_LAUGHS = """\
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
family: mlp
"""

SPEC = {
    "family": "mlp",
    "target": "cpu",
    "space": {"depth": {"type": "int", "low": 1, "high": 2}},
    "objectives": [{"metric": "accuracy", "direction": "maximize"}],
    "budget": {"evaluations": 1},
}


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _run_spec(path: Path, tmp_path: Path) -> tuple[int, str]:
    result = runner.invoke(app, ["run", str(path), "--db", f"sqlite:///{tmp_path / 'x.db'}"])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, " ".join(result.output.split())  # rich wraps long lines


def test_billion_laughs_is_refused_fast_and_small(tmp_path: Path) -> None:
    path = tmp_path / "laughs.yaml"
    path.write_text(BILLION_LAUGHS)
    before, started = _peak_mb(), time.monotonic()
    code, output = _run_spec(path, tmp_path)
    assert time.monotonic() - started < HANG_S
    assert _peak_mb() - before < 100
    assert code == 2
    assert "expands to more than" in output
    assert not (tmp_path / "x.db").exists()  # refused before the database is touched


def test_recursive_aliases_are_refused() -> None:
    with pytest.raises(SpecErrors, match="alias to a collection inside itself"):
        load_yaml("a: &a [1, *a]\n")


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("binary.yaml", bytes(range(256)) * 4, "is binary"),
        ("utf16.yaml", json.dumps(SPEC).encode("utf-16"), "UTF-16"),
        ("latin1.yaml", "family: mlp\nname: caf\xe9\n".encode("latin-1"), "not UTF-8 text"),
        ("deep.yaml", b"a: " + b"[" * 10_000 + b"]" * 10_000 + b"\n", "nested more than"),
        ("deep.json", b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        ("deep_block.yaml", "".join(f"{' ' * i}k{i}:\n" for i in range(1000)).encode(), "nested"),
        ("huge.yaml", b"#" * (2 << 20), "more than the 1048576 bytes"),
    ],
)
def test_bad_spec_files_are_spec_errors_with_exit_2(
    tmp_path: Path, name: str, content: bytes, reason: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    code, output = _run_spec(path, tmp_path)
    assert code == 2, output
    assert reason in output and "Traceback" not in output


def test_a_spec_file_that_is_not_a_file_is_refused(tmp_path: Path) -> None:
    code, output = _run_spec(Path("/dev/zero"), tmp_path)
    assert code == 2 and "not a regular file" in output
    code, output = _run_spec(tmp_path, tmp_path)
    assert code == 2 and "is a folder" in output


def test_a_bom_and_yaml_anchors_within_limits_still_load(tmp_path: Path) -> None:
    path = tmp_path / "bom.yaml"
    text = "objective: &o {metric: accuracy, direction: maximize}\n"
    data = {k: v for k, v in SPEC.items() if k != "objectives"}
    path.write_bytes(
        b"\xef\xbb\xbf"
        + (
            json.dumps(data)[:-1] + ', "objectives": [{"metric": "accuracy", '
            '"direction": "maximize"}]}'
        ).encode()
    )
    assert load_spec(path).family == "mlp"
    assert load_yaml(text + "x: [*o, *o]\n")["x"][1]["metric"] == "accuracy"


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///", "sqlite:///:memory:"])
def test_an_in_memory_database_is_refused(tmp_path: Path, url: str) -> None:
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(SPEC))
    for args in (["run", str(path), "--db", url], ["submit", str(path), "--db", url]):
        result = runner.invoke(app, args)
        assert result.exit_code == 1, result.output
        assert "in-memory database" in " ".join(result.output.split())


def test_a_long_string_repeated_by_aliases_is_refused_fast_and_small() -> None:
    text = 'a: &a "' + "x" * 500_000 + '"\nb: [' + ", ".join(["*a"] * 100) + "]\n"
    before, started = _peak_mb(), time.monotonic()
    with pytest.raises(SpecErrors, match="expands to more than"):
        load_yaml(text)
    assert time.monotonic() - started < HANG_S and _peak_mb() - before < 100
