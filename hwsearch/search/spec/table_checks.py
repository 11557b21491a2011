"""The meaning of the spec's tables: table targets and table evaluations (files, columns,
a family with a table key and the settings its tables describe) and the prior (its metric,
an optimizer that uses it, tables with rows for the space, no source that is the job's own
target)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hwsearch.errors import HwsearchError, SpecError, UnknownNameError
from hwsearch.search.spec.base import get_family
from hwsearch.search.spec.schema import JobSpec
from hwsearch.search.spec.sections import PriorSpec, PriorTableSpec, TableMeasurement
from hwsearch.search.spec.variables import VariableSpec

if TYPE_CHECKING:
    from hwsearch.models.base import ModelFamily


def _check_table_file(field: str, path: str, key: str, column: str) -> list[SpecError]:
    """Problems with reading ``column`` by ``key`` from the table at ``path``."""
    from hwsearch.hardware.tables import TableColumnError, TableError, load_table

    try:
        table = load_table(path, key=key)
    except TableColumnError as exc:
        return [SpecError(f"{field}.key", str(exc))]
    except TableError as exc:
        reason = str(exc)
        if not Path(path).exists():
            reason += " (a relative path is read from the spec file's folder)"
        return [SpecError(f"{field}.table", reason)]
    try:
        table.check_column(column)
    except TableColumnError as exc:
        return [SpecError(f"{field}.column", str(exc))]
    return []


def check_tables(spec: JobSpec) -> list[SpecError]:
    """Table targets and table evaluations: files, columns, a keyed family, the metrics."""
    problems = _table_target_problems(spec)
    evaluation = spec.evaluation_table
    if evaluation is not None:
        problems += _check_table_file(
            "evaluation", evaluation.table, evaluation.key, evaluation.column
        )
    try:
        family = get_family(spec.family)
    except UnknownNameError:
        return problems  # reported by the space's checks
    if spec.target_table is None and evaluation is None:
        return problems
    return problems + _keyed_family_problems(spec, family)


def _table_target_problems(spec: JobSpec) -> list[SpecError]:
    """A table target names no device here, its file and column can be read, and it is
    not timed; a table measurement comes only from a table target."""
    problems: list[SpecError] = []
    target = spec.target_table
    if target is not None:
        from hwsearch.hardware.targets import is_device_name

        if is_device_name(target.name):
            problems.append(
                SpecError(
                    "target.name",
                    f"{target.name!r} names a device of this machine; give the device whose "
                    "numbers the table holds its own name (e.g. the column's)",
                )
            )
        problems += _check_table_file("target", target.table, target.key, target.column)
        if spec.measurement != target.lookup():
            problems.append(
                SpecError(
                    "measurement",
                    "a table target is not timed here (its latencies were measured "
                    "elsewhere); remove the measurement section",
                )
            )
    elif isinstance(spec.measurement, TableMeasurement):
        problems.append(
            SpecError(
                "measurement.type",
                "latencies from a table are given as a table target: "
                "target: {name: ..., table: FILE, column: ...}",
            )
        )
    return problems


def _keyed_family_problems(spec: JobSpec, family: ModelFamily) -> list[SpecError]:
    """The family has a table key and the space fixes the knobs its tables describe."""
    from hwsearch.hardware.tables import TableKeyed

    problems: list[SpecError] = []

    if not isinstance(family, TableKeyed):
        problems.append(
            SpecError(
                "family",
                f"family {family.name!r} has no key to look its configs up in a table; "
                "table targets and table evaluations need one (e.g. nb201)",
            )
        )
        return problems
    settings: Mapping[str, Any] = getattr(family, "table_settings", {})
    for knob, value in settings.items():
        entry = spec.space.get(knob, family.knobs[knob].default)
        if isinstance(entry, VariableSpec) or entry != value:
            problems.append(
                SpecError(
                    f"space.{knob}",
                    f"the tables of family {family.name!r} describe networks with "
                    f"{knob} = {value}; fix {knob} at {value} to look candidates up in them",
                )
            )
    return problems


def check_prior(spec: JobSpec) -> list[SpecError]:
    """The prior's metric is an objective, the optimizer uses it, its tables can be read
    by the family's key, and no source is the job's own target."""
    prior = spec.prior
    if prior is None:
        return []
    problems = _prior_use_problems(spec, prior)
    if not prior.tables:
        return problems
    from hwsearch.hardware.tables import TableKeyed

    try:
        family = get_family(spec.family)
    except UnknownNameError:
        return problems  # reported by the space's checks
    if not isinstance(family, TableKeyed):
        problems.append(
            SpecError(
                "prior.tables",
                f"family {spec.family!r} has no key to look its configs up in a table",
            )
        )
        return problems
    keys = _example_keys(spec, family)
    for i, source in enumerate(prior.tables):
        problems += _prior_table_problems(spec, f"prior.tables[{i}]", source, keys)
    return problems


def _prior_use_problems(spec: JobSpec, prior: PriorSpec) -> list[SpecError]:
    """The prior's metric is an objective, the optimizer uses a prior, and no target it
    names is the job's own."""
    from hwsearch.search.optimizer import get_optimizer_class

    problems: list[SpecError] = []
    metrics = [o.metric for o in spec.objectives]
    if prior.metric not in metrics:
        problems.append(
            SpecError(
                "prior.metric",
                f"{prior.metric!r} is not an objective of this job; one of {', '.join(metrics)}",
            )
        )
    try:
        uses = getattr(get_optimizer_class(spec.optimizer.name), "USES_PRIOR", False)
    except UnknownNameError:
        uses = True  # reported as optimizer.name
    if not uses:
        problems.append(
            SpecError(
                "prior",
                f"optimizer {spec.optimizer.name!r} does not use prior knowledge; "
                "use optimizer: {name: default} or remove the prior section",
            )
        )
    if isinstance(prior.targets, list) and spec.target_name in prior.targets:
        at = prior.targets.index(spec.target_name)
        problems.append(
            SpecError(
                f"prior.targets[{at}]",
                f"{spec.target_name!r} is the job's own target: its values are what the "
                "search measures, not prior knowledge",
            )
        )
    return problems


def _prior_table_problems(
    spec: JobSpec, field: str, source: PriorTableSpec, keys: list[str]
) -> list[SpecError]:
    """One prior table: readable by its key, with rows for some of the space's ``keys``,
    and columns that exist and are not the job's own target's."""
    from hwsearch.hardware.tables import (
        ROW_NUMBER_COLUMNS,
        TableColumnError,
        TableError,
        load_table,
    )

    try:
        table = load_table(source.table, key=source.key)
    except TableColumnError as exc:
        return [SpecError(f"{field}.key", str(exc))]
    except TableError as exc:
        return [SpecError(f"{field}.table", str(exc))]
    if keys and not any(k in table for k in keys):
        return [
            SpecError(
                f"{field}.key",
                f"none of {len(keys)} configs of this space has a row in {source.table} "
                f"(e.g. {keys[0]!r})",
            )
        ]
    own = spec.target_table
    own_column = own.column if own is not None and own.table == source.table else None
    problems: list[SpecError] = []
    for j, column in enumerate(source.columns or []):
        try:
            table.check_column(column)
        except TableColumnError as exc:
            problems.append(SpecError(f"{field}.columns[{j}]", str(exc)))
            continue
        if column == own_column:
            problems.append(
                SpecError(
                    f"{field}.columns[{j}]",
                    f"{column!r} is the job's own target column: its values are what "
                    "the search looks up, not prior knowledge",
                )
            )
    if source.columns is None and not [
        c for c in table.columns if c != own_column and c not in ROW_NUMBER_COLUMNS
    ]:
        problems.append(
            SpecError(f"{field}.table", "has no numeric column besides the job's own target")
        )
    return problems


def _example_keys(spec: JobSpec, family: Any, count: int = 16) -> list[str]:
    """Table keys of ``count`` configs sampled from the spec's space (none where the space
    itself is invalid: that is reported on its own)."""
    import numpy as np

    from hwsearch.search.space import SearchSpace

    try:
        space = SearchSpace.from_spec(spec)
        rng = np.random.default_rng(0)
        configs = [family.canonical(space.to_config(space.sample(rng))) for _ in range(count)]
        return [family.table_key(c) for c in configs]
    except (HwsearchError, ValueError, KeyError, TypeError):
        return []
