"""Prior knowledge for the default strategy: one metric of every config, known beforehand.

Latency on a new device is predicted far better from the same configs' latencies on other
devices than from the configs alone (on NAS-Bench-201 the HV gap of the default strategy at
50 evaluations halves with them; see ``docs/benchmarks.md``). A job's ``prior`` section names
where such values come from:

* ``tables``: columns of a table measured elsewhere (one column per device; by default every
  numeric column but the job's own target's and a row number, ``index``), looked up by the
  family's key of each config (e.g. NAS-Bench-201's architecture string); an unknown key
  gives NaN, which the strategy fills with the column's mean;
* ``targets``: other targets whose measurements of the metric the database holds for this
  family (``all``: every target but the job's own with at least ``min_measured`` of them).
  A config a target has measured gets its measured value; the others get the value of a
  ``predictor`` fitted on that target's measurements (the family's analytic features).

Each source is one column of the block, on a log scale for metrics that are positive and
span orders of magnitude (latency, energy), as the strategy wants features that relate
linearly to its transformed objectives. The block is named after its metric. It is read
from the tables and the database when the job starts (and again when it is resumed, from
the measurements made before the job was created).

Every job's default strategy also gets, as the block ``structure``, what the family says
of each config's structure (:meth:`~hwsearch.models.base.ModelFamily.structure`, e.g.
which paths of a NAS-Bench-201 cell carry data): knowledge of the search space, not of any
measurement (:func:`search_prior` gathers both).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
from numpy.typing import NDArray

from hwsearch.db import Store
from hwsearch.errors import SpecError
from hwsearch.hardware.tables import ROW_NUMBER_COLUMNS, TableKeyed, load_table
from hwsearch.hashing import config_hash
from hwsearch.models.base import ModelFamily
from hwsearch.predictors.features import featurize
from hwsearch.predictors.models import Predictor, make_predictor
from hwsearch.predictors.registry import is_linear
from hwsearch.search.space import SearchSpace
from hwsearch.search.spec import JobSpec, PriorSpec

log = logging.getLogger(__name__)

FloatArray = NDArray[np.float64]


def _scaled(metric: str, values: FloatArray) -> FloatArray:
    """Each column on a log scale where the metric is not a bounded score and the column
    is positive; raw values else."""
    out = np.array(values, dtype=float, copy=True)
    if is_linear(metric):
        return out
    columns = out.reshape(len(out), -1)
    for j in range(columns.shape[1]):
        known = columns[:, j][np.isfinite(columns[:, j])]
        if len(known) and (known > 0).all():
            with np.errstate(invalid="ignore", divide="ignore"):
                columns[:, j] = np.log(columns[:, j])
    return out


@dataclass
class StoredTarget:
    """One target's stored measurements and a predictor of the configs it lacks."""

    name: str
    exact: dict[str, float]  # config hash -> scaled value
    model: Predictor


@dataclass
class PriorBlock:
    """``params -> values`` of every source for one config (a prior block of the default
    strategy); :meth:`many` does a list of configs at once."""

    metric: str
    family: ModelFamily
    space: SearchSpace
    sources: list[str] = field(default_factory=list)  # a description of each column
    #: per table: row number by key, and the scaled values of its columns (rows x columns)
    tables: list[tuple[dict[str, int], FloatArray]] = field(default_factory=list)
    stored: list[StoredTarget] = field(default_factory=list)

    def __call__(self, params: Mapping[str, Any]) -> FloatArray:
        return self.many([params])[0]

    def many(self, params: Sequence[Mapping[str, Any]]) -> FloatArray:
        configs = [self.family.canonical(self.space.to_config(p)) for p in params]
        parts: list[FloatArray] = []
        if self.tables:
            assert isinstance(self.family, TableKeyed)
            keys = [self.family.table_key(c) for c in configs]
            for rows, matrix in self.tables:
                index = np.array([rows.get(k, -1) for k in keys])
                values = matrix[np.maximum(index, 0)]
                values[index < 0] = np.nan
                parts.append(values)
        if self.stored:
            hashes = [config_hash(self.family.name, c) for c in configs]
            x = featurize(self.family.name, configs).values
            for target in self.stored:
                predicted, _ = target.model.predict(x)
                exact = np.array([target.exact.get(h, np.nan) for h in hashes])
                parts.append(np.where(np.isnan(exact), predicted, exact)[:, None])
        return np.concatenate(parts, axis=1) if parts else np.empty((len(configs), 0))


@dataclass
class StructureBlock:
    """``params ->`` the family's :meth:`~hwsearch.models.base.ModelFamily.structure` of the
    config: knowledge of the search space, not of any measurement."""

    family: ModelFamily
    space: SearchSpace

    def __call__(self, params: Mapping[str, Any]) -> FloatArray:
        return self.many([params])[0]

    def many(self, params: Sequence[Mapping[str, Any]]) -> FloatArray:
        configs = [self.family.canonical(self.space.to_config(p)) for p in params]
        rows = self.family.structure(configs)
        assert rows is not None, f"family {self.family.name!r} describes no structure"
        return np.asarray(rows, dtype=float).reshape(len(configs), -1)


def search_prior(
    spec: JobSpec,
    store: Store | None,
    *,
    family: ModelFamily,
    space: SearchSpace,
    before: datetime | None = None,
) -> dict[str, StructureBlock | PriorBlock] | None:
    """Everything a job's optimizer may know beforehand: the family's structure of each
    config (block ``structure``, where the family has one) and the ``prior`` section's
    values (a block named after their metric)."""
    blocks: dict[str, StructureBlock | PriorBlock] = {}
    example = family.canonical(space.to_config(space.sample(np.random.default_rng(0))))
    if family.structure([example]) is not None:
        blocks["structure"] = StructureBlock(family, space)
    blocks.update(build_prior(spec, store, family=family, space=space, before=before) or {})
    return blocks or None


def build_prior(
    spec: JobSpec,
    store: Store | None,
    *,
    family: ModelFamily,
    space: SearchSpace,
    before: datetime | None = None,
) -> dict[str, PriorBlock] | None:
    """The prior block of ``spec``'s ``prior`` section, by metric; None without one. Stored
    measurements count only if made before ``before`` (when given).

    Raises :class:`~hwsearch.errors.SpecError` where a target named in ``prior.targets``
    has fewer than ``min_measured`` stored values, or no source is left.
    """
    settings = spec.prior
    if settings is None:
        return None
    block = PriorBlock(settings.metric, family, space)
    target_table = spec.target_table
    for source in settings.tables:
        table = load_table(source.table, key=source.key)
        same_file = target_table is not None and target_table.table == source.table
        own = target_table.column if target_table is not None and same_file else None
        columns = source.columns or [
            c for c in table.columns if c != own and c not in ROW_NUMBER_COLUMNS
        ]
        matrix = np.stack([table.column_values(c) for c in columns], axis=1)
        rows = {k: i for i, k in enumerate(table.keys())}
        block.tables.append((rows, _scaled(settings.metric, matrix)))
        block.sources += [f"{source.table}:{c}" for c in columns]
    if settings.targets:
        if store is None:
            raise SpecError("prior.targets", "stored measurements need a database")
        block.stored = _stored_targets(settings, store, family, own=spec.target_name, before=before)
        block.sources += [f"target {t.name}" for t in block.stored]
    if not block.sources:
        raise SpecError(
            "prior.targets",
            f"no other target has {settings.min_measured} stored {settings.metric!r} "
            f"measurements of family {family.name!r}",
        )
    log.info("prior %s from %s", settings.metric, ", ".join(block.sources))
    return {settings.metric: block}


def _stored_targets(
    settings: PriorSpec, store: Store, family: ModelFamily, *, own: str, before: datetime | None
) -> list[StoredTarget]:
    named = None if settings.targets == "all" else list(settings.targets or [])
    found = store.measured_values_by_target(
        family.name, settings.metric, targets=named, before=before
    )
    found.pop(own, None)
    out: list[StoredTarget] = []
    for name in named or sorted(found):
        rows = found.get(name, [])
        if len(rows) < settings.min_measured:
            if named is not None:
                raise SpecError(
                    f"prior.targets[{named.index(name)}]",
                    f"target {name!r} has {len(rows)} stored {settings.metric!r} measurements "
                    f"of family {family.name!r}; need at least {settings.min_measured} "
                    "(prior.min_measured)",
                )
            continue
        hashes = [h for h, _, _ in rows]
        values = _scaled(settings.metric, np.array([v for _, _, v in rows], dtype=float))
        x = featurize(family.name, [c for _, c, _ in rows]).values
        options: dict[str, Any] = {"seed": 0} if settings.predictor == "forest" else {}
        model = make_predictor(settings.predictor, **options).fit(x, values)
        out.append(StoredTarget(name, dict(zip(hashes, values.tolist(), strict=True)), model))
    return out


__all__ = ["PriorBlock", "StructureBlock", "build_prior", "search_prior"]
