"""Predictors fitted on stored measurements, versioned in the database.

:func:`fit_stored` fits a predictor of one metric of a (family, target) on what the database
holds, keeps a seeded share of the measurements out to evaluate it, and stores it as the
next version with its training-set size, features and metrics. A stored predictor's
``state`` is JSON: its kind and options, whether it works on the log of the metric, the
configs' hashes and the feature matrix and values it was fitted on. :func:`load_stored`
refits from that state (every predictor here is deterministic for its data and seed), so a
loaded predictor gives the same predictions as the one that was stored.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from hwsearch.errors import HwsearchError, SpecError
from hwsearch.predictors.features import featurize
from hwsearch.predictors.metrics import evaluate
from hwsearch.predictors.models import PREDICTORS, Predictor, make_predictor
from hwsearch.records import PredictorRecord

if TYPE_CHECKING:
    from hwsearch.db import Store

FloatArray = NDArray[np.float64]
#: Metrics predicted on their own scale; every other positive metric on a log scale.
LINEAR_METRICS = frozenset({"accuracy", "cifar10_acc", "cifar100_acc", "imagenet16_acc"})
MIN_TRAINING = 5


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
) -> PredictorRecord:
    """Fit, evaluate on a held-out share and store a new version (module docstring)."""
    if kind not in PREDICTORS:
        raise SpecError("kind", f"unknown predictor {kind!r}; one of {', '.join(PREDICTORS)}")
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
    log = metric not in LINEAR_METRICS and bool((values > 0).all())
    features = featurize(family, [config for _, config, _ in rows])
    order = np.random.default_rng(seed).permutation(len(rows))
    train, test = order[:n_train], order[n_train:]
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


def load_stored(record: PredictorRecord) -> StoredPredictor:
    """The fitted predictor of a stored record (refitted from its state)."""
    state = record.state
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
    if len(rows) < 2:
        raise HwsearchError(
            f"{len(rows)} stored value(s) outside the training set of version "
            f"{record.version}; need at least 2 to evaluate"
        )
    mean, _ = load_stored(record).predict_configs([config for _, config, _ in rows])
    return record, evaluate([v for _, _, v in rows], mean), len(rows)


__all__ = ["StoredPredictor", "evaluate_stored", "fit_stored", "load_stored"]
