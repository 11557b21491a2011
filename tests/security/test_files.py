"""Reading the files a spec names (:mod:`hwsearch.files`): resolved before they are
checked, regular files only, a size cap, and errors that never quote a file."""

from __future__ import annotations

import os
import resource
import time
from pathlib import Path
from typing import Any

import pytest

from hwsearch.errors import SpecErrors
from hwsearch.files import FileAccessError, confine, open_named, read_capped, resolve
from hwsearch.hardware.tables import TableError, clear_table_cache, load_table
from hwsearch.search.spec import parse_spec

# A guard against the old unbounded paths (they took minutes or ran out of memory), not a
# speed goal: the speed figures are bench/hostile.py's.
HANG_S = 30.0

ARCH = "|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|"
SECRET = "hunter2-9f3c"


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _spec(target_table: str) -> dict[str, Any]:
    return {
        "family": "nb201",
        "target": {"name": "pixel3", "table": target_table},
        "space": {"ops": {"type": "choice", "values": ["none", "nor_conv_3x3"], "per_layer": 6}},
        "objectives": [{"metric": "latency_ms", "direction": "minimize"}],
        "budget": {"evaluations": 2},
        "evaluation": {"type": "table", "table": target_table, "column": "pixel3"},
    }


def test_resolve_expands_home_dotdot_and_links(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    real = tmp_path / "real.csv"
    real.write_text("arch,x\n")
    (tmp_path / "home" / "link.csv").symlink_to(real)
    assert resolve("~/../real.csv") == real
    assert resolve("~/link.csv") == real
    assert resolve("link.csv", base=tmp_path / "home") == real
    assert resolve(tmp_path / "home" / ".." / "home" / "link.csv") == real


def test_confine_judges_the_resolved_path(tmp_path: Path, monkeypatch: Any) -> None:
    root = tmp_path / "tables"
    root.mkdir()
    outside = tmp_path / "secret.csv"
    outside.write_text(f"arch,{SECRET}\n")
    (root / "innocent.csv").symlink_to(outside)
    monkeypatch.setenv("HOME", str(root))
    for given in ("innocent.csv", "../secret.csv", "~/../secret.csv", str(outside)):
        with pytest.raises(FileAccessError, match="outside the folders") as info:
            open_named(given, base=root, roots=(root,))
        assert SECRET not in str(info.value)
    with pytest.raises(FileAccessError, match="reads no files"):
        confine(resolve(outside), ())
    assert confine(resolve(outside), None) == outside  # the CLI reads what its user can


@pytest.mark.parametrize("path", ["/dev/zero", "/dev/urandom", "/proc/self/environ", "/"])
def test_only_regular_data_files_are_read(path: str) -> None:
    before, started = _peak_rss_mb(), time.monotonic()
    with pytest.raises(FileAccessError) as info:
        read_capped(resolve(path))
    assert time.monotonic() - started < HANG_S
    assert _peak_rss_mb() - before < 50
    assert str(info.value).startswith(os.path.realpath(path) + ": ")
    assert "PATH=" not in str(info.value)


def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    started = time.monotonic()
    with pytest.raises(FileAccessError, match="not a regular file"):
        read_capped(resolve(fifo))
    with pytest.raises(TableError, match="not a regular file"):
        load_table(fifo)
    assert time.monotonic() - started < HANG_S


def test_a_file_over_the_cap_is_refused_unread(tmp_path: Path, monkeypatch: Any) -> None:
    big = tmp_path / "big.csv"
    with big.open("wb") as out:
        out.truncate(200 << 20)  # 200 MiB, sparse
    before = _peak_rss_mb()
    with pytest.raises(TableError, match=r"more than the \d+ bytes a file may have"):
        load_table(big)
    assert _peak_rss_mb() - before < 50
    small = tmp_path / "small.csv"
    small.write_text(f"arch,x\n{ARCH},1.0\n")
    monkeypatch.setenv("HWSEARCH_MAX_FILE_BYTES", "10")
    clear_table_cache()
    with pytest.raises(TableError, match="more than the 10 bytes"):
        load_table(small)
    monkeypatch.delenv("HWSEARCH_MAX_FILE_BYTES")
    assert load_table(small).value(ARCH, "x") == 1.0


def test_table_errors_name_the_path_never_the_contents(tmp_path: Path) -> None:
    header = tmp_path / "header.csv"
    header.write_text(f"password={SECRET},token\n1,2\n")
    twice = tmp_path / "twice.csv"
    twice.write_text(f"arch,x\n{SECRET},1\n{SECRET},2\n")
    binary = tmp_path / "binary.csv"
    binary.write_bytes(b"arch,x\n\xff\xfe" + SECRET.encode() + b"\n")
    ragged = tmp_path / "ragged.csv"
    ragged.write_text(f"arch,x\n{SECRET},1\n{SECRET},1,2,3\n")
    for path in (header, twice, binary, ragged):
        clear_table_cache()
        with pytest.raises((TableError, KeyError)) as info:
            load_table(path)
        assert str(path) in str(info.value)
        assert SECRET not in str(info.value) and "password" not in str(info.value)


def test_every_spec_section_is_confined(tmp_path: Path) -> None:
    root = tmp_path / "tables"
    root.mkdir()
    (root / "latency.csv").write_text(f"arch,pixel3\n{ARCH},1.0\n")
    secret = tmp_path / "secret.csv"
    secret.write_text(f"arch,pixel3\n{ARCH},{SECRET}\n")
    data = _spec("latency.csv")
    data["prior"] = {"tables": [{"table": "/proc/self/environ"}, {"table": "../secret.csv"}]}
    data["objectives"].append({"metric": "accuracy", "direction": "maximize"})
    with pytest.raises(SpecErrors) as info:
        parse_spec(data, base_dir=root, file_roots=(root,))
    found = {e.field: e.reason for e in info.value.errors}
    assert "outside the server's table folders" in found["prior.tables[0].table"]
    assert "outside the server's table folders" in found["prior.tables[1].table"]
    assert SECRET not in str(info.value) and "PATH=" not in str(info.value)
    data = _spec(str(secret))
    data["measurement"] = {"type": "table", "table": "~/../../../../../../" + str(secret)}
    with pytest.raises(SpecErrors) as info:
        parse_spec(data, base_dir=root, file_roots=(root,))
    found = {e.field: e.reason for e in info.value.errors}
    assert {"target.table", "evaluation.table"} <= set(found)
    assert SECRET not in str(info.value)


def test_the_cli_reads_tables_anywhere_its_user_can(tmp_path: Path, monkeypatch: Any) -> None:
    home = tmp_path / "home"
    (home / "data").mkdir(parents=True)
    (home / "data" / "latency.csv").write_text(f"arch,pixel3\n{ARCH},1.0\n")
    monkeypatch.setenv("HOME", str(home))
    spec = parse_spec(_spec("~/data/latency.csv"))
    assert spec.target.table == str(home / "data" / "latency.csv")  # type: ignore[union-attr]
