"""Predictors fitted on stored measurements, versioned in the database.

:func:`fit_stored` fits a predictor of one metric of a (family, target) on what the database
holds, keeps a seeded share of the measurements out to evaluate it, and stores it as the
next version with its training-set size, features and metrics. A stored predictor's
``state`` is JSON: its kind and options, whether it works on the log of the metric, the
configs' hashes and the feature matrix and values it was fitted on. :func:`load_stored`
refits from that state (every predictor here is deterministic for its data and seed), so a
loaded predictor gives the same predictions as the one that was stored.

Kind ``transfer`` (:mod:`hwsearch.predictors.stored_transfer`) predicts a target from other
targets' stored values of the same configs; loading it needs the store it reads them from.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from hwsearch.errors import HwsearchError, SpecError
from hwsearch.metrics import linear_metrics
from hwsearch.predictors.features import featurize
from hwsearch.predictors.metrics import evaluate
from hwsearch.predictors.models import PREDICTORS, Predictor, make_predictor
from hwsearch.predictors.stored_transfer import (
    TRANSFER,
    StoredTransferPredictor,
    fit_transfer,
    load_transfer,
)
from hwsearch.records import PredictorRecord

if TYPE_CHECKING:
    from hwsearch.db import Store

FloatArray = NDArray[np.float64]
#: Quality columns of the NAS-Bench-201 tables (not metrics), fitted on their own scale.
QUALITY_COLUMNS = frozenset({"cifar10_acc", "cifar100_acc", "imagenet16_acc"})


def is_linear(metric: str) -> bool:
    """Whether ``metric`` is predicted on its own scale (every other positive metric is
    predicted on a log scale); see :attr:`hwsearch.metrics.Metric.linear`."""
    return metric in QUALITY_COLUMNS or metric in linear_metrics()


MIN_TRAINING = 5
#: Kinds :func:`fit_stored` takes: the models of :data:`PREDICTORS` and ``transfer``.
STORED_KINDS = (*PREDICTORS, TRANSFER)


@dataclass
class StoredPredictor:
    """A predictor loaded from the database: predicts configs of its family directly."""

    record: PredictorRecord
    model: Predictor
    log: bool

    def predict_configs(
        self, configs: Sequence[Mapping[str, Any]]
    ) -> tuple[FloatArray, FloatArray]:
        """Mean and standard deviation of the metric for ``configs`` (its own units)."""
        features = featurize(self.record.family, configs)
        if list(features.names) != self.record.features:
            raise HwsearchError("the family's features changed since this predictor was fitted")
        mean, std = self.model.predict(features.values)
        if self.log:
            median = np.exp(mean)
            return median, median * std
        return mean, std


def _fit(kind: str, options: Mapping[str, Any], x: FloatArray, y: FloatArray) -> Predictor:
    return make_predictor(kind, **options).fit(x, y)


def fit_stored(
    store: Store,
    *,
    family: str,
    target: str,
    metric: str,
    kind: str = "gp",
    holdout: float = 0.2,
    seed: int = 0,
    sources: Sequence[str] | None = None,
) -> PredictorRecord:
    """Fit, evaluate on a held-out share and store a new version (module docstring).

    ``sources``: the targets a ``transfer`` predictor learns from (default: every other
    target that measured all of the target's configs)."""
    if kind not in STORED_KINDS:
        raise SpecError("kind", f"unknown predictor {kind!r}; one of {', '.join(STORED_KINDS)}")
    if sources is not None and kind != TRANSFER:
        raise SpecError("sources", f"only the {TRANSFER!r} kind takes source targets")
    if not 0 <= holdout < 1:
        raise SpecError("holdout", f"must be in [0, 1), got {holdout!r}")
    rows = store.measured_values(family, target, metric)
    n_train = len(rows) - round(holdout * len(rows))
    if n_train < MIN_TRAINING or (holdout > 0 and len(rows) - n_train < 2):
        raise HwsearchError(
            f"{len(rows)} stored value(s) of {metric!r} for family {family!r} on {target!r}; "
            f"need at least {MIN_TRAINING} to fit and 2 to evaluate"
        )
    values = np.array([v for _, _, v in rows])
    log = not is_linear(metric) and bool((values > 0).all())
    features = featurize(family, [config for _, config, _ in rows])
    order = np.random.default_rng(seed).permutation(len(rows))
    train, test = order[:n_train], order[n_train:]
    if kind == TRANSFER:
        return fit_transfer(
            store,
            rows,
            train.tolist(),
            test.tolist(),
            family=family,
            target=target,
            metric=metric,
            sources=sources,
        )
    y = np.log(values) if log else values
    options: dict[str, Any] = {"seed": seed} if kind == "forest" else {}
    model = _fit(kind, options, features.values[train], y[train])
    metrics: dict[str, float] = {}
    if len(test):
        mean, _ = model.predict(features.values[test])
        metrics = evaluate(values[test], np.exp(mean) if log else mean)
        metrics = {k: v for k, v in metrics.items() if np.isfinite(v)}
    state = {
        "kind": kind,
        "options": options,
        "log": log,
        "hashes": [rows[i][0] for i in train],
        "x": features.values[train].tolist(),
        "y": y[train].tolist(),
    }
    return store.save_predictor(
        family=family,
        target=target,
        metric=metric,
        kind=kind,
        features=list(features.names),
        training_size=len(train),
        metrics=metrics,
        state=state,
    )


def fit_on_values(
    store: Store,
    *,
    family: str,
    target: str,
    metric: str,
    hashes: Sequence[str],
    configs: Sequence[Mapping[str, Any]],
    values: Sequence[float],
    kind: str = "gp",
    seed: int = 0,
    folds: int = 5,
) -> StoredPredictor:
    """Fit on every given value, store the fit as the next version and return it loaded.

    Used where the training set is chosen by the caller (a job's own measurements, each
    generation of active learning). Its stored metrics come from ``folds``-fold
    cross-validation (none with fewer than ``2 * folds`` values): every value is then
    predicted by a fit that did not see it.
    """
    if kind not in PREDICTORS:
        raise SpecError("kind", f"unknown predictor {kind!r}; one of {', '.join(PREDICTORS)}")
    if len(values) < MIN_TRAINING:
        raise HwsearchError(
            f"{len(values)} value(s) of {metric!r}; need at least {MIN_TRAINING} to fit"
        )
    y_raw = np.asarray(values, dtype=float)
    log = not is_linear(metric) and bool((y_raw > 0).all())
    features = featurize(family, configs)
    y = np.log(y_raw) if log else y_raw
    options: dict[str, Any] = {"seed": seed} if kind == "forest" else {}
    metrics: dict[str, float] = {}
    if len(y) >= 2 * folds:
        predicted = np.empty(len(y))
        for part in np.array_split(np.random.default_rng(seed).permutation(len(y)), folds):
            train = np.setdiff1d(np.arange(len(y)), part)
            mean, _ = _fit(kind, options, features.values[train], y[train]).predict(
                features.values[part]
            )
            predicted[part] = mean
        scored = evaluate(y_raw, np.exp(predicted) if log else predicted)
        metrics = {k: v for k, v in scored.items() if np.isfinite(v)}
    record = store.save_predictor(
        family=family,
        target=target,
        metric=metric,
        kind=kind,
        features=list(features.names),
        training_size=len(y),
        metrics=metrics,
        state={
            "kind": kind,
            "options": options,
            "log": log,
            "hashes": list(hashes),
            "x": features.values.tolist(),
            "y": y.tolist(),
        },
    )
    model = _fit(kind, options, features.values, y)
    return StoredPredictor(record=record, model=model, log=log)


def load_stored(
    record: PredictorRecord, store: Store | None = None
) -> StoredPredictor | StoredTransferPredictor:
    """The fitted predictor of a stored record (refitted from its state); a ``transfer``
    one needs ``store``, which it reads its sources' values from."""
    state = record.state
    if state["kind"] == TRANSFER:
        return load_transfer(record, store)
    model = _fit(state["kind"], state["options"], np.array(state["x"]), np.array(state["y"]))
    return StoredPredictor(record=record, model=model, log=bool(state["log"]))


def evaluate_stored(
    store: Store, *, family: str, target: str, metric: str, version: int | None = None
) -> tuple[PredictorRecord, dict[str, float], int]:
    """Metrics of a stored predictor on every stored measurement it was not fitted on, and
    how many there were."""
    record = store.get_predictor(family, target, metric, version=version)
    seen = set(record.state["hashes"])
    rows = [r for r in store.measured_values(family, target, metric) if r[0] not in seen]
    loaded = load_stored(record, store)
    if isinstance(loaded, StoredTransferPredictor):
        # it predicts only the configs that all its sources measured
        covered = loaded.covered([r[0] for r in rows])
        rows = [r for r in rows if r[0] in covered]
    if len(rows) < 2:
        raise HwsearchError(
            f"{len(rows)} stored value(s) outside the training set of version "
            f"{record.version}; need at least 2 to evaluate"
        )
    mean, _ = loaded.predict_configs([config for _, config, _ in rows])
    return record, evaluate([v for _, _, v in rows], mean), len(rows)


__all__ = [
    "STORED_KINDS",
    "StoredPredictor",
    "StoredTransferPredictor",
    "evaluate_stored",
    "fit_on_values",
    "fit_stored",
    "load_stored",
]
