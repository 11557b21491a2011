"""Hypothesis-built hostile specs against the spec loader: each parses or is refused with
spec errors, quickly, and no error quotes a file outside the table folder."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from hwsearch.errors import FilterError, SpecErrors
from hwsearch.fuzzing import BASE_SPEC, hostile_specs, where_filters
from hwsearch.search.filters import parse_filter
from hwsearch.search.spec import parse_spec

# A guard against the old unbounded paths (they took minutes or ran out of memory), not a
# speed goal: the speed figures are bench/hostile.py's.
HANG_S = 30.0

SECRET = "planted-secret-0c7e"
HOSTILE = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    base = tmp_path_factory.mktemp("fuzz")
    tables = base / "tables"
    tables.mkdir()
    arch = "|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|"
    (tables / "latency.csv").write_text(f"arch,pixel3\n{arch},1.0\n")
    secret = base / "secret.csv"
    secret.write_text(f"arch,pixel3,{SECRET}\n{arch},1.0,{SECRET}\n")
    (tables / "link_to_secret.csv").symlink_to(secret)
    yield tables, secret


def test_hostile_specs_parse_or_are_refused_quickly(folders: tuple[Path, Path]) -> None:
    tables, secret = folders
    outcomes = {"accepted": 0, "refused": 0}
    parse_spec(BASE_SPEC)  # imports the families and optimizers once, outside the clock

    @given(spec=hostile_specs(str(secret)))
    @HOSTILE
    def check(spec: dict[str, Any]) -> None:
        started = time.monotonic()
        try:
            parse_spec(spec, base_dir=tables, file_roots=(tables,))
            outcomes["accepted"] += 1
        except SpecErrors as exc:
            outcomes["refused"] += 1
            assert exc.errors and all(e.field is not None for e in exc.errors)
            assert SECRET not in str(exc) and "PATH=" not in str(exc)
        assert time.monotonic() - started < HANG_S

    check()
    assert outcomes["refused"] > 0


def test_hostile_where_filters_parse_or_are_filter_errors() -> None:
    @given(text=where_filters())
    @HOSTILE
    def check(text: str) -> None:
        started = time.monotonic()
        try:
            parse_filter(text, {"accuracy", "latency_ms"})
        except FilterError as exc:
            assert str(exc)
        assert time.monotonic() - started < HANG_S

    check()
