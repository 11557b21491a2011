"""Transfer to a new device from what the database holds: the stored ``transfer`` kind.

**Sources.** The sources of a target are the other targets that hold measured (or
estimated, never predicted) values of the same metric for configs of the same family. A
source is kept when it measured every config the target measured (those fitted on and
those held out to evaluate), with positive values; the others are left out and named in
the stored state (``dropped_sources``: how many of the target's configs each lacks).
Sources named by the caller must all qualify. There is no imputation: a source that lacks
a config says nothing reliable about it.

**State.** A stored transfer predictor names its source targets and holds the training
configs, their hashes, the sources' values of them (``source``, one column per source) and
the target's values (``y``, in the metric's own units), so :func:`load_transfer` refits it
identically whatever the database holds later. Predicting configs reads the sources'
newest values of those configs from the database; a config a source never measured is an
error that names the source and how many configs it lacks.

**Inputs.** :class:`~hwsearch.predictors.transfer.TransferPredictor` takes, besides the
sources, encodings of the candidates (for its residual model) and, for ``nb201``, the
structural covariate ``connected`` and the operation counts for its count models, as the
benchmark ``bench/predictor_transfer.py`` gives them; other families give their analytic
features (:func:`~hwsearch.predictors.features.featurize`).

**Reference set.** :func:`reference_configs` says which stored configs (measured on the
sources, not yet on the target) to measure first on a new device, by
:func:`~hwsearch.predictors.transfer.reference_set` over the sources' values.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from hwsearch.errors import HwsearchError, SpecError
from hwsearch.hashing import config_hash
from hwsearch.models.base import get_family
from hwsearch.predictors.features import (
    Features,
    canonical_configs,
    featurize,
    nb201_codes_from_configs,
    nb201_op_counts,
    nb201_used_edges,
)
from hwsearch.predictors.metrics import evaluate
from hwsearch.predictors.transfer import TransferPredictor, reference_set
from hwsearch.records import PredictorRecord

if TYPE_CHECKING:
    from hwsearch.db import Store

FloatArray = NDArray[np.float64]
Row = tuple[str, dict[str, Any], float]
TRANSFER = "transfer"


@dataclass(frozen=True)
class TransferInputs:
    """What :class:`TransferPredictor` takes of the candidates besides the sources' values."""

    names: tuple[str, ...]  # the family's feature names (checked at prediction)
    features: FloatArray
    covariates: FloatArray | None = None
    counts: dict[str, FloatArray] | None = None


def transfer_inputs(family: str, configs: Sequence[Mapping[str, Any]]) -> TransferInputs:
    """The candidates' encodings, covariates and operation counts (module docstring)."""
    features = featurize(family, configs)
    cell_inputs = CELL_INPUTS.get(family)
    if cell_inputs is None:
        return TransferInputs(features.names, features.values)
    return cell_inputs(features, configs)


def _nb201_inputs(features: Features, configs: Sequence[Mapping[str, Any]]) -> TransferInputs:
    """A cell's edges as features, whether each is connected as covariates, op counts."""
    codes = nb201_codes_from_configs(configs)
    return TransferInputs(
        features.names,
        features.select(("edge",)).values,
        covariates=features.select(("connected",)).values,
        counts={
            "ops": nb201_op_counts(codes).values,
            "used_ops": nb201_op_counts(codes, nb201_used_edges(codes)).values,
        },
    )


#: Families whose configs are cells: their transfer inputs, by family name.
CELL_INPUTS: dict[str, Callable[[Features, Sequence[Mapping[str, Any]]], TransferInputs]] = {
    "nb201": _nb201_inputs,
}


def _fit_model(
    options: Mapping[str, Any], source: FloatArray, y: FloatArray, inputs: TransferInputs
) -> TransferPredictor:
    try:
        return TransferPredictor(**options).fit(
            source, y, inputs.features, covariates=inputs.covariates, counts=inputs.counts
        )
    except ValueError as exc:
        raise HwsearchError(f"cannot fit the transfer predictor: {exc}") from None


def _predict(
    model: TransferPredictor, source: FloatArray, inputs: TransferInputs
) -> tuple[FloatArray, FloatArray]:
    try:
        return model.predict(
            source, inputs.features, covariates=inputs.covariates, counts=inputs.counts
        )
    except ValueError as exc:
        raise HwsearchError(f"cannot predict with the transfer predictor: {exc}") from None


def _positive(rows: Sequence[Row]) -> bool:
    return all(np.isfinite(v) and v > 0 for _, _, v in rows)


def _check_sources(sources: Sequence[str] | None, target: str) -> list[str] | None:
    if sources is None:
        return None
    names = list(dict.fromkeys(sources))
    if not names:
        raise SpecError("sources", "name at least one source target, or leave it out")
    if target in names:
        raise SpecError("sources", f"the target {target!r} cannot be its own source")
    return names


def _lacking(found: Mapping[str, float], hashes: Sequence[str]) -> int:
    return sum(1 for h in hashes if h not in found)


def source_matrix(
    store: Store, family: str, metric: str, sources: Sequence[str], hashes: Sequence[str]
) -> FloatArray:
    """The sources' newest values of the configs ``hashes``, ``(len(hashes), len(sources))``;
    a config a source did not measure raises :class:`HwsearchError` naming the source."""
    stored = store.measured_values_by_target(family, metric, targets=sources, config_hashes=hashes)
    found = {name: {h: v for h, _, v in stored.get(name, [])} for name in sources}
    missing = {name: _lacking(found[name], hashes) for name in sources}
    if any(missing.values()):
        which = ", ".join(f"{count} on source {name!r}" for name, count in missing.items() if count)
        raise HwsearchError(
            f"the transfer predictor needs its sources' {metric!r} of every config to "
            f"predict; of {len(set(hashes))} config(s), not measured: {which}"
        )
    return np.array([[found[name][h] for name in sources] for h in hashes], dtype=float).reshape(
        len(hashes), len(sources)
    )


@dataclass
class StoredTransferPredictor:
    """A stored transfer predictor loaded with the store it reads its sources' values from."""

    record: PredictorRecord
    model: TransferPredictor
    store: Store
    sources: list[str] = field(default_factory=list)
    log: bool = True

    def covered(self, hashes: Sequence[str]) -> set[str]:
        """The configs of ``hashes`` that every source measured (those it can predict)."""
        stored = self.store.measured_values_by_target(
            self.record.family, self.record.metric, targets=self.sources, config_hashes=hashes
        )
        per_source = [{h for h, _, _ in stored.get(name, [])} for name in self.sources]
        return set(hashes).intersection(*per_source)

    def predict_configs(
        self, configs: Sequence[Mapping[str, Any]]
    ) -> tuple[FloatArray, FloatArray]:
        """Mean and standard deviation of the metric for ``configs`` (its own units)."""
        family = self.record.family
        canon = canonical_configs(get_family(family), configs)
        if not canon:
            return np.zeros(0), np.zeros(0)
        inputs = transfer_inputs(family, canon)
        if list(inputs.names) != self.record.features:
            raise HwsearchError("the family's features changed since this predictor was fitted")
        hashes = [config_hash(family, c) for c in canon]
        source = source_matrix(self.store, family, self.record.metric, self.sources, hashes)
        return _predict(self.model, source, inputs)


def load_transfer(record: PredictorRecord, store: Store | None) -> StoredTransferPredictor:
    """The fitted transfer predictor of a stored record (refitted from its state)."""
    if store is None:
        raise HwsearchError(
            "a transfer predictor reads its sources' values from the database: pass the store"
        )
    state = record.state
    inputs = transfer_inputs(record.family, state["configs"])
    model = _fit_model(
        state["options"],
        np.array(state["source"], dtype=float),
        np.array(state["y"], dtype=float),
        inputs,
    )
    return StoredTransferPredictor(
        record=record, model=model, store=store, sources=list(state["sources"])
    )


def fit_transfer(
    store: Store,
    rows: Sequence[Row],
    train: Sequence[int],
    test: Sequence[int],
    *,
    family: str,
    target: str,
    metric: str,
    sources: Sequence[str] | None = None,
) -> PredictorRecord:
    """Fit a transfer predictor on ``rows[train]`` of ``target``, evaluate it on
    ``rows[test]`` and store it as the next version (module docstring)."""
    named = _check_sources(sources, target)
    if not _positive(rows):
        raise HwsearchError(
            f"the transfer predictor needs positive values of {metric!r}; "
            f"{target!r} has zero, negative or non-finite ones"
        )
    hashes = [h for h, _, _ in rows]
    stored = store.measured_values_by_target(family, metric, targets=named, config_hashes=hashes)
    stored.pop(target, None)
    candidates = named if named is not None else list(stored)
    if not candidates:
        raise HwsearchError(
            f"no source for a transfer predictor of {metric!r} on {target!r}: no other target "
            f"holds measured {metric!r} of any of the {len(rows)} config(s) of family "
            f"{family!r} measured there"
        )
    found = {name: {h: v for h, _, v in stored.get(name, [])} for name in candidates}
    lacking = {name: _lacking(found[name], hashes) for name in candidates}
    usable = {name: lacking[name] == 0 and _positive(stored.get(name, [])) for name in candidates}
    if named is not None and not all(usable.values()):
        bad = next(name for name in named if not usable[name])
        problem = (
            f"lacks {lacking[bad]} of the {len(rows)} config(s) measured on {target!r}"
            if lacking[bad]
            else f"has zero, negative or non-finite values of {metric!r}"
        )
        raise HwsearchError(f"source {bad!r} {problem}")
    kept = [name for name in candidates if usable[name]]
    if not kept:
        which = ", ".join(f"{name!r} lacks {lacking[name]}" for name in candidates)
        raise HwsearchError(
            f"no source target measured every one of the {len(rows)} config(s) measured on "
            f"{target!r}: {which}"
        )
    source = np.array([[found[name][h] for name in kept] for h in hashes], dtype=float)
    values = np.array([v for _, _, v in rows], dtype=float)
    configs = [config for _, config, _ in rows]
    inputs = transfer_inputs(family, configs)
    options: dict[str, Any] = {}
    train_idx, test_idx = np.asarray(train, dtype=np.intp), np.asarray(test, dtype=np.intp)
    model = _fit_model(options, source[train_idx], values[train_idx], _rows_of(inputs, train_idx))
    metrics: dict[str, float] = {}
    if len(test_idx):
        mean, _ = _predict(model, source[test_idx], _rows_of(inputs, test_idx))
        scored = evaluate(values[test_idx], mean)
        metrics = {k: v for k, v in scored.items() if np.isfinite(v)}
    state = {
        "kind": TRANSFER,
        "options": options,
        "log": True,
        "sources": kept,
        "dropped_sources": {name: lacking[name] for name in candidates if not usable[name]},
        "hashes": [hashes[i] for i in train_idx],
        "configs": [configs[i] for i in train_idx],
        "source": source[train_idx].tolist(),
        "y": values[train_idx].tolist(),
    }
    return store.save_predictor(
        family=family,
        target=target,
        metric=metric,
        kind=TRANSFER,
        features=list(inputs.names),
        training_size=len(train_idx),
        metrics=metrics,
        state=state,
    )


def _rows_of(inputs: TransferInputs, idx: NDArray[np.intp]) -> TransferInputs:
    return TransferInputs(
        inputs.names,
        inputs.features[idx],
        None if inputs.covariates is None else inputs.covariates[idx],
        None if inputs.counts is None else {k: c[idx] for k, c in inputs.counts.items()},
    )


@dataclass(frozen=True)
class Reference:
    """Configs to measure first on a new device, best first, and the sources that chose."""

    sources: list[str]
    configs: list[tuple[str, dict[str, Any]]]  # (config_hash, config)
    pool: int  # how many configs were eligible (measured on the sources, not the target)
    dropped_sources: dict[str, int]  # source -> eligible configs it lacks


def reference_configs(
    store: Store,
    *,
    family: str,
    target: str,
    metric: str = "latency_ms",
    count: int = 10,
    sources: Sequence[str] | None = None,
    seed: int = 0,
) -> Reference:
    """Which stored configs to measure first on ``target`` (module docstring).

    Eligible are the configs every source measured and ``target`` did not. Named
    ``sources`` must each hold some; by default the eligible configs are those the other
    target with the most values measured, and the other targets that lack any of them are
    left out (``dropped_sources``).
    """
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise SpecError("count", f"must be a positive integer, got {count!r}")
    named = _check_sources(sources, target)
    stored = store.measured_values_by_target(family, metric, targets=named)
    stored.pop(target, None)
    measured = {h for h, _, _ in store.measured_values(family, target, metric)}
    if named is not None:
        empty = [name for name in named if name not in stored]
        if empty:
            raise HwsearchError(
                f"source {empty[0]!r} holds no measured {metric!r} of family {family!r}"
            )
    if not stored:
        raise HwsearchError(
            f"no source target: no target other than {target!r} holds measured {metric!r} "
            f"of family {family!r}"
        )
    by_source = {name: {h: (c, v) for h, c, v in rows} for name, rows in stored.items()}
    if named is not None:
        kept = named
        pool = set.intersection(*(set(by_source[name]) for name in kept)) - measured
    else:
        largest = max(by_source, key=lambda name: (len(by_source[name]), name))
        pool = set(by_source[largest]) - measured
        kept = [name for name in by_source if pool <= set(by_source[name])]
    dropped = {name: len(pool - set(by_source[name])) for name in by_source if name not in kept}
    if not pool:
        raise HwsearchError(
            f"every config measured on the source(s) {', '.join(kept)} is measured on "
            f"{target!r} already"
        )
    if count > len(pool):
        raise SpecError(
            "count",
            f"only {len(pool)} config(s) are measured on the sources and not on {target!r}; "
            f"got {count}",
        )
    hashes = sorted(pool)
    configs = [by_source[kept[0]][h][0] for h in hashes]
    source = np.array([[by_source[name][h][1] for name in kept] for h in hashes], dtype=float)
    strata = transfer_inputs(family, configs).covariates
    try:
        chosen = reference_set(source, count, seed=seed, strata=strata)
    except ValueError as exc:
        raise HwsearchError(f"cannot choose a reference set: {exc}") from None
    return Reference(
        sources=list(kept),
        configs=[(hashes[i], configs[i]) for i in chosen],
        pool=len(pool),
        dropped_sources=dropped,
    )


__all__ = [
    "TRANSFER",
    "Reference",
    "StoredTransferPredictor",
    "TransferInputs",
    "fit_transfer",
    "load_transfer",
    "reference_configs",
    "source_matrix",
    "transfer_inputs",
]
