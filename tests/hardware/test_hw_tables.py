"""Tables of metrics measured elsewhere: loading, lookups, errors, the per-process cache."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pandas as pd
import pytest

from hwsearch.errors import HwsearchError, NotFoundError
from hwsearch.hardware import (
    MetricTable,
    TableColumnError,
    TableError,
    TableKeyError,
    clear_table_cache,
    load_table,
)

A1 = "|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|"
A2 = "|skip_connect~0|+|none~0|none~1|+|none~0|none~1|none~2|"


@pytest.fixture
def latency_csv(tmp_path: Path) -> Path:
    path = tmp_path / "latency.csv"
    path.write_text(
        "index,arch,phone,gpu,note\n"
        f"0,{A1},12.5,0.75,fast\n"
        f"1,{A2},3.25,,slow\n"  # no gpu value for A2
    )
    return path


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    clear_table_cache()


def test_lookup_returns_the_numeric_columns_of_the_row(latency_csv: Path) -> None:
    table = MetricTable(latency_csv)
    assert len(table) == 2 and A1 in table and "x" not in table
    assert table.keys() == [A1, A2]
    assert table.columns == ("index", "phone", "gpu")  # the text column is left out
    assert table.lookup(A1) == {"index": 0.0, "phone": 12.5, "gpu": 0.75}
    assert table.value(A2, "phone") == 3.25
    assert list(table.column_values("phone")) == [12.5, 3.25]
    assert table.frame.shape == (2, 5)


def test_missing_key_names_the_key_and_the_file(latency_csv: Path) -> None:
    table = MetricTable(latency_csv)
    key = "|foo~0|+|none~0|none~1|+|none~0|none~1|none~2|"
    with pytest.raises(TableKeyError) as info:
        table.lookup(key)
    assert str(info.value) == f"architecture {key!r} not in {latency_csv}"
    assert info.value.key == key and info.value.path == str(latency_csv)
    # one class to catch for hwsearch, and a KeyError / NotFoundError for everyone else
    assert isinstance(info.value, HwsearchError)
    assert isinstance(info.value, KeyError)
    assert isinstance(info.value, NotFoundError)
    with pytest.raises(TableKeyError, match="not in"):
        table.value(key, "phone")


def test_missing_column_names_it_and_counts_the_columns(latency_csv: Path) -> None:
    table = MetricTable(latency_csv)
    with pytest.raises(TableColumnError) as info:
        table.value(A1, "pixel3")
    assert str(info.value) == (
        f"column 'pixel3' not in {latency_csv} (the table has 3 numeric column(s))"
    )
    assert info.value.column == "pixel3"
    with pytest.raises(TableColumnError, match=r"'note' of .* is not numeric"):
        table.check_column("note")
    with pytest.raises(TableColumnError, match="'arch' is the key column"):
        table.check_column("arch")


def test_a_cell_without_a_value_is_an_error_naming_it(latency_csv: Path) -> None:
    table = MetricTable(latency_csv)
    assert table.value(A1, "gpu") == 0.75
    with pytest.raises(TableError, match=r"no 'gpu' value for '\|skip_connect"):
        table.value(A2, "gpu")


def test_bad_files(tmp_path: Path) -> None:
    with pytest.raises(TableError, match="does not exist"):
        MetricTable(tmp_path / "nothing.csv")
    with pytest.raises(TableError, match="does not exist"):
        load_table(tmp_path / "nothing.csv")
    other_key = tmp_path / "other.csv"
    other_key.write_text(f"name,phone\n{A1},1.0\n")
    with pytest.raises(TableColumnError, match=r"'arch' not in .* \(its 2 column\(s\) do not"):
        MetricTable(other_key)
    assert MetricTable(other_key, key="name").value(A1, "phone") == 1.0
    twice = tmp_path / "twice.csv"
    twice.write_text(f"arch,phone\n{A1},1.0\n{A1},2.0\n")
    with pytest.raises(TableError, match="appears more than once"):
        MetricTable(twice)
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(TableError, match="is empty"):
        MetricTable(empty)


def test_load_table_caches_per_path_and_key(latency_csv: Path, tmp_path: Path) -> None:
    first = load_table(latency_csv)
    assert load_table(latency_csv) is first
    assert load_table(str(latency_csv)) is first
    by_index = load_table(latency_csv, key="index")
    assert by_index is not first and by_index.key == "index"
    # a file changed on disk is read again
    latency_csv.write_text(f"arch,phone\n{A1},99.0\n")
    stat = latency_csv.stat()
    os.utime(latency_csv, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    again = load_table(latency_csv)
    assert again is not first and again.value(A1, "phone") == 99.0
    clear_table_cache()
    assert load_table(latency_csv) is not again


def test_all_nb201_latencies_look_up_fast_and_exactly(nb201_data: Path) -> None:
    path = nb201_data / "latency_ms.csv"
    table = load_table(path)
    frame = pd.read_csv(path)
    assert len(table) == len(frame) == 15_625
    keys = table.keys()
    start = time.perf_counter()
    rows = [table.lookup(key) for key in keys]
    elapsed = time.perf_counter() - start
    assert elapsed < 1.0, f"15,625 lookups took {elapsed:.2f}s"
    for i in (0, 1, 7_777, 15_624):
        assert keys[i] == frame["arch"][i]
        assert rows[i]["pixel3"] == frame["pixel3"][i]
        assert rows[i]["gold_6240"] == frame["gold_6240"][i]
