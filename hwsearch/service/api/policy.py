"""What a submitted spec may ask of the server.

A spec names families, optimizers and metrics by registered name only; nothing in it is
imported or evaluated. The one thing it can point at is a table file (a table target, a
table evaluation, a prior's tables): those must lie inside the server's table folders once
resolved, and are checked before any file is opened, so a spec cannot probe the server's
disk.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hwsearch.errors import SpecError, SpecErrors
from hwsearch.search.limits import SpecLimits
from hwsearch.search.spec import JobSpec, parse_spec
from hwsearch.search.spec.user_model import check_names_no_code


def check_submission(
    data: Mapping[str, Any], table_roots: tuple[Path, ...], limits: SpecLimits | None = None
) -> JobSpec:
    """``data`` as a spec this server accepts; ``SpecErrors`` names every problem.

    Every table path, in any section (target, evaluation, measurement, prior tables), is
    resolved and confined to ``table_roots`` while the spec is validated, before any file
    is opened (:mod:`hwsearch.files`); relative paths are taken from the first folder.
    ``limits`` (default: the process's) cap what the spec may ask for.
    """
    if not isinstance(data, Mapping):
        raise SpecErrors([SpecError("spec", "must be a mapping of fields")])
    check_names_no_code(data)  # refused before anything is imported
    base = table_roots[0] if table_roots else None
    return parse_spec(data, base_dir=base, file_roots=tuple(table_roots), limits=limits)
