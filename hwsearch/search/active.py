"""Active learning in the driver: predict what would not pay to measure, measure what might.

A job whose spec has an ``active_learning`` section settles some candidates by prediction.
Every generation, once ``min_measured`` of its candidates are measured, the driver fits one
predictor (:mod:`hwsearch.predictors`, kind ``predictor``) per metric its objectives and
constraints need, on the job's measured candidates, and stores each fit as a new predictor
version. Each fresh candidate of the generation is then forecast, and

- it is **measured** when its optimistic forecast (every objective moved ``optimism``
  standard deviations the good way, every constraint given the same benefit of the doubt)
  is not dominated by the front of what was measured, or where no front exists yet;
- otherwise it is **predicted**: stored with the forecast values (provenance ``predicted``,
  details naming the predictor version and the standard deviation) and told to the
  optimizer as if measured. Predicted candidates do not count against the evaluation budget.

A generation measures at least one candidate (the most uncertain one, when none is worth it
by the rule above), so the predictors keep learning. Every forecast made is stored
(:meth:`~hwsearch.db.Store.record_predictions`), for the predicted-vs-measured record of the
job. Finally, with ``verify_front``, the driver measures the front's predicted points, and
the points that take their place, until the front is measured or the budget is spent; a
front point left predicted is marked so (``measured: false``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from hwsearch.db import Store
from hwsearch.errors import SpecError
from hwsearch.predictors.features import featurize
from hwsearch.predictors.registry import StoredPredictor, fit_on_values
from hwsearch.records import CandidateRecord, MetricValue, PredictionRecord, Provenance
from hwsearch.search.objectives import Constraint, Objective
from hwsearch.search.spec import ActiveLearningSpec


@dataclass(frozen=True)
class Forecast:
    """Predicted value and standard deviation of each needed metric of one candidate."""

    candidate_id: int
    values: dict[str, float]
    stds: dict[str, float]

    def relative_uncertainty(self) -> float:
        return max((self.stds[m] / abs(v) if v else math.inf) for m, v in self.values.items())


class ActiveLearner:
    """Fits the job's predictors and decides, per candidate, measure or predict."""

    def __init__(
        self,
        settings: ActiveLearningSpec,
        *,
        store: Store,
        family: str,
        target: str,
        objectives: Sequence[Objective],
        constraints: Sequence[Constraint],
        seed: int = 0,
    ) -> None:
        self.settings = settings
        self.store = store
        self.family = family
        self.target = target
        self.objectives = list(objectives)
        self.constraints = list(constraints)
        self.seed = seed
        self.metrics = sorted({o.metric for o in objectives} | {c.metric for c in constraints})
        self.predictors: dict[str, StoredPredictor] = {}

    def check_family(self, config: Mapping[str, object]) -> None:
        """Refuse, before the job starts, a family the predictors cannot featurise."""
        try:
            featurize(self.family, [config])
        except SpecError as exc:
            raise SpecError(
                "active_learning", f"cannot predict for this job: {exc.reason}"
            ) from exc

    def fit(self, measured: Sequence[CandidateRecord]) -> bool:
        """Fit and store one predictor per needed metric on ``measured`` (done candidates
        whose needed metrics are all measured); False while there are too few."""
        usable = [c for c in measured if _all_measured(c, self.metrics)]
        if len(usable) < self.settings.min_measured:
            return False
        configs = [c.config for c in usable]
        hashes = [c.config_hash for c in usable]
        self.predictors = {
            metric: fit_on_values(
                self.store,
                family=self.family,
                target=self.target,
                metric=metric,
                hashes=hashes,
                configs=configs,
                values=[c.metrics[metric].value for c in usable],
                kind=self.settings.predictor,
                seed=self.seed,
            )
            for metric in self.metrics
        }
        return True

    def forecast(self, candidates: Sequence[CandidateRecord]) -> list[Forecast]:
        """The fitted predictors' values for ``candidates`` (after :meth:`fit`)."""
        if not candidates:
            return []
        configs = [c.config for c in candidates]
        columns = {m: p.predict_configs(configs) for m, p in self.predictors.items()}
        return [
            Forecast(
                candidate_id=c.id,
                values={m: float(mean[i]) for m, (mean, _) in columns.items()},
                stds={m: float(std[i]) for m, (_, std) in columns.items()},
            )
            for i, c in enumerate(candidates)
        ]

    def worth_measuring(
        self, forecasts: Sequence[Forecast], front: Sequence[CandidateRecord]
    ) -> list[bool]:
        """Per forecast: measure it (True) or settle it by prediction (module docstring)."""
        measured_front = [
            np.array([o.sign * c.metrics[o.metric].value for o in self.objectives])
            for c in front
            if c.feasible and _all_measured(c, [o.metric for o in self.objectives])
        ]
        worth = []
        for f in forecasts:
            optimistic = np.array([o.sign * self._optimistic(f, o) for o in self.objectives])
            feasible = all(self._optimistic_violation(f, c) <= 0 for c in self.constraints)
            dominated = any(
                bool(np.all(p <= optimistic) and np.any(p < optimistic)) for p in measured_front
            )
            worth.append(feasible and not dominated)
        if forecasts and not any(worth):
            most_uncertain = max(
                range(len(forecasts)), key=lambda i: forecasts[i].relative_uncertainty()
            )
            worth[most_uncertain] = True
        return worth

    def predicted_metrics(self, forecast: Forecast) -> list[MetricValue]:
        """The values a predicted candidate is stored with."""
        return [
            MetricValue(
                name=metric,
                value=value,
                provenance=Provenance.PREDICTED,
                details={
                    "predictor_id": self.predictors[metric].record.id,
                    "predictor_version": self.predictors[metric].record.version,
                    "predictor_kind": self.predictors[metric].record.kind,
                    "std": forecast.stds[metric],
                },
            )
            for metric, value in forecast.values.items()
        ]

    def prediction_records(self, forecast: Forecast) -> list[PredictionRecord]:
        return [
            PredictionRecord(
                candidate_id=forecast.candidate_id,
                metric=metric,
                value=value,
                std=forecast.stds[metric],
                predictor_id=self.predictors[metric].record.id,
            )
            for metric, value in forecast.values.items()
        ]

    def _shifted(self, forecast: Forecast, metric: str, steps: float) -> float:
        """The forecast of ``metric`` moved ``steps`` standard deviations (on the log scale
        for a predictor fitted on logs, so a positive metric stays positive)."""
        value, std = forecast.values[metric], forecast.stds[metric]
        if self.predictors[metric].log and value > 0:
            return value * math.exp(steps * std / value)
        return value + steps * std

    def _optimistic(self, forecast: Forecast, objective: Objective) -> float:
        # sign is +1 for minimised objectives: optimism lowers them, raises maximised ones
        return self._shifted(forecast, objective.metric, -objective.sign * self.settings.optimism)

    def _optimistic_violation(self, forecast: Forecast, constraint: Constraint) -> float:
        k = self.settings.optimism
        return min(
            constraint.violation(self._shifted(forecast, constraint.metric, -k)),
            constraint.violation(self._shifted(forecast, constraint.metric, k)),
        )


def _all_measured(candidate: CandidateRecord, metrics: Sequence[str]) -> bool:
    return all(
        m in candidate.metrics and candidate.metrics[m].provenance != Provenance.PREDICTED
        for m in metrics
    )


def has_predicted(candidate: CandidateRecord, metrics: Sequence[str]) -> bool:
    """Whether any of ``metrics`` of ``candidate`` is only predicted."""
    return any(
        m in candidate.metrics and candidate.metrics[m].provenance == Provenance.PREDICTED
        for m in metrics
    )


__all__ = ["ActiveLearner", "Forecast", "has_predicted"]
