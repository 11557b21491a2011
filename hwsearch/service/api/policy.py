"""What a submitted spec may ask of the server.

A spec names families, optimizers and metrics by registered name only; nothing in it is
imported or evaluated. The one thing it can point at is a table file (a table target or a
table evaluation): those must lie inside the server's table folders, and are checked before
any file is opened, so a spec cannot probe the server's disk.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hwsearch.errors import SpecError, SpecErrors
from hwsearch.search.spec import JobSpec, parse_spec

_TABLE_FIELDS = ("target", "evaluation", "measurement")


def _table_paths(data: Mapping[str, Any]) -> list[tuple[str, object]]:
    found = []
    for section in _TABLE_FIELDS:
        value = data.get(section)
        if isinstance(value, Mapping) and "table" in value:
            found.append((f"{section}.table", value["table"]))
    return found


def check_submission(data: Mapping[str, Any], table_roots: tuple[Path, ...]) -> JobSpec:
    """``data`` as a spec this server accepts; ``SpecErrors`` names every problem."""
    if not isinstance(data, Mapping):
        raise SpecErrors([SpecError("spec", "must be a mapping of fields")])
    problems: list[SpecError] = []
    base = table_roots[0] if table_roots else None
    for field, table in _table_paths(data):
        if not isinstance(table, str) or not table:
            continue  # reported by the spec's own checks
        if base is None:
            problems.append(
                SpecError(field, "this server reads no table files (start it with --tables DIR)")
            )
            continue
        path = Path(table)
        resolved = (path if path.is_absolute() else base / path).resolve()
        if not any(resolved.is_relative_to(root) for root in table_roots):
            shown = ", ".join(str(r) for r in table_roots)
            problems.append(
                SpecError(field, f"{table!r} is outside the server's table folders ({shown})")
            )
    if problems:
        raise SpecErrors(problems)
    return parse_spec(data, base_dir=base)
