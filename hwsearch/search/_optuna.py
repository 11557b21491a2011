"""Optuna's NSGA-II behind the :class:`~hwsearch.search.optimizer.Optimizer` protocol.

A thin translation: an in-memory study with ``NSGAIISampler``, ``study.ask`` with fixed
distributions built from the space, ``study.tell`` for results. Constraint violations are
attached with ``Trial.set_constraint`` before ``tell`` — the ask-and-tell way of Optuna 5,
where the sampler's ``constraints_func`` is deprecated; NSGA-II then ranks by constrained
domination (feasible first, then by total violation). Optuna is imported only when an
optimizer of this kind is built.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from hwsearch.search.optimizer import Optimizer, Suggestion, int_option, probability_option
from hwsearch.search.space import ChoiceVar, FloatVar, IntVar

if TYPE_CHECKING:
    import optuna


def _import_optuna() -> Any:
    try:
        import optuna
    except ImportError as exc:  # pragma: no cover - optuna is a dependency of hwsearch
        raise ImportError(
            "the 'optuna-nsga2' optimizer needs Optuna: pip install 'optuna>=4'"
        ) from exc
    return optuna


class OptunaNSGA2(Optimizer):
    """NSGA-II from Optuna. Options: ``population_size`` (>= 2, default 16),
    ``crossover_prob`` (0.9), ``mutation_prob`` (None: 1 / number of variables),
    ``swapping_prob`` (0.5, for uniform crossover)."""

    OPTIONS: ClassVar[Mapping[str, Any]] = {
        "population_size": 16,
        "crossover_prob": 0.9,
        "mutation_prob": None,
        "swapping_prob": 0.5,
    }

    @classmethod
    def check_options(cls, options: Mapping[str, Any]) -> dict[str, Any]:
        merged = super().check_options(options)
        merged["population_size"] = int_option(merged, "population_size", minimum=2)
        for key in ("crossover_prob", "mutation_prob", "swapping_prob"):
            merged[key] = probability_option(merged, key)
        for key in ("crossover_prob", "swapping_prob"):
            if merged[key] is None:
                merged[key] = cls.OPTIONS[key]
        return merged

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        lib = _import_optuna()
        lib.logging.set_verbosity(lib.logging.WARNING)
        dist = lib.distributions
        self._distributions: dict[str, optuna.distributions.BaseDistribution] = {}
        for var in self.space.variables:
            if isinstance(var, IntVar):
                self._distributions[var.name] = dist.IntDistribution(
                    var.low, var.high, log=var.log, step=var.step
                )
            elif isinstance(var, FloatVar):
                self._distributions[var.name] = dist.FloatDistribution(
                    var.low, var.high, log=var.log, step=var.step
                )
            elif isinstance(var, ChoiceVar):
                self._distributions[var.name] = dist.CategoricalDistribution(var.values)
        sampler = lib.samplers.NSGAIISampler(
            population_size=self.options["population_size"],
            crossover_prob=self.options["crossover_prob"],
            mutation_prob=self.options["mutation_prob"],
            swapping_prob=self.options["swapping_prob"],
            seed=self.seed,
        )
        self._study: optuna.Study = lib.create_study(
            directions=[o.direction for o in self.objectives], sampler=sampler
        )
        self._trials: dict[int, optuna.Trial] = {}
        self._fail_state = lib.trial.TrialState.FAIL

    @property
    def study(self) -> optuna.Study:
        """The underlying study (for inspection; the protocol does not need it)."""
        return self._study

    def ask(self, n: int) -> list[Suggestion]:
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n!r}")
        out = []
        for _ in range(n):
            trial = self._study.ask(fixed_distributions=self._distributions)
            self._trials[trial.number] = trial
            params = {name: trial.params[name] for name in self._distributions}
            out.append(Suggestion(trial.number, params))
        return out

    def tell(
        self,
        suggestion_id: int,
        values: Sequence[float] | None,
        violations: Sequence[float] = (),
    ) -> None:
        trial = self._trials.get(suggestion_id)
        if trial is None:
            raise ValueError(f"suggestion {suggestion_id!r} is unknown or was already told")
        checked, limits = self._check_result(values, violations)
        del self._trials[suggestion_id]
        if checked is None:
            self._study.tell(trial, state=self._fail_state)
            return
        for i, violation in enumerate(limits):
            trial.set_constraint(str(i), violation)
        self._study.tell(trial, checked)
