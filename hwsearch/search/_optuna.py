"""Optuna's samplers behind the :class:`~hwsearch.search.optimizer.Optimizer` protocol.

One adapter, :class:`OptunaOptimizer`, translates the protocol for every sampler: an in-memory
study, ``study.ask`` with fixed distributions built from the space, ``study.tell`` for results
(a failed evaluation is told as a failed trial, which every sampler leaves out). Each
registered optimizer is a small subclass that names its options and builds its sampler:

=================  ================  =================================================
name               sampler           options (default)
=================  ================  =================================================
``optuna-nsga2``   NSGAIISampler     population_size (16), crossover_prob (0.9),
                                     mutation_prob (None: 1 / variables),
                                     swapping_prob (0.5)
``optuna-nsga3``   NSGAIIISampler    the same, and dividing_parameter (3)
``optuna-tpe``     TPESampler        n_startup_trials (10), n_ei_candidates (24),
                                     multivariate (None: Optuna's choice, multivariate
                                     for one objective only), constant_liar (True)
``optuna-gp``      GPSampler         n_startup_trials (10), deterministic_objective
                                     (False)
``optuna-random``  RandomSampler     none
=================  ================  =================================================

Constraint violations are attached with ``Trial.set_constraint`` before ``tell`` — the
ask-and-tell way of Optuna 5, where the samplers' ``constraints_func`` is deprecated. Every
sampler here but the random one reads them from the trial: NSGA-II/III rank by constrained
domination (feasible first, then by total violation), TPE splits good and bad trials
feasible-first, and GP multiplies its (hyper-volume) expected improvement by the probability
of feasibility. All of them take several objectives, and every variable of the space —
per-layer ones (``width[0]``, ...) included, as they are plain variables to the sampler.

Optuna is imported only when an optimizer of this kind is built.
"""

from __future__ import annotations

import abc
import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from hwsearch.errors import SpecError
from hwsearch.search.optimizer import Optimizer, Suggestion, int_option, probability_option
from hwsearch.search.space import ChoiceVar, FloatVar, IntVar

if TYPE_CHECKING:
    import optuna


def _import_optuna() -> Any:
    try:
        import optuna
    except ImportError as exc:  # pragma: no cover - optuna is a dependency of hwsearch
        raise ImportError("the Optuna optimizers need Optuna: pip install 'optuna>=5'") from exc
    return optuna


def _bool_option(options: Mapping[str, Any], key: str, *, allow_none: bool = False) -> bool | None:
    value = options[key]
    if value is None and allow_none:
        return None
    if not isinstance(value, bool):
        expected = "true, false or null" if allow_none else "true or false"
        raise SpecError(f"optimizer.{key}", f"expected {expected}, got {value!r}")
    return value


class OptunaOptimizer(Optimizer):
    """A study driven by the sampler that :meth:`make_sampler` builds (override it)."""

    @abc.abstractmethod
    def make_sampler(self, lib: Any) -> optuna.samplers.BaseSampler:
        """The sampler, from the checked ``self.options`` and ``self.seed``."""

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
        with warnings.catch_warnings():  # experimental-feature notices of the samplers
            warnings.simplefilter("ignore", lib.exceptions.ExperimentalWarning)
            sampler = self.make_sampler(lib)
        self._study: optuna.Study = lib.create_study(
            directions=[o.direction for o in self.objectives], sampler=sampler
        )
        self._trials: dict[int, optuna.Trial] = {}
        self._fail_state = lib.trial.TrialState.FAIL
        self._experimental = lib.exceptions.ExperimentalWarning

    @property
    def study(self) -> optuna.Study:
        """The underlying study (for inspection; the protocol does not need it)."""
        return self._study

    def ask(self, n: int) -> list[Suggestion]:
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n!r}")
        out = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", self._experimental)
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


class _OptunaGenetic(OptunaOptimizer):
    """Options shared by Optuna's NSGA-II and NSGA-III."""

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

    def _genetic_kwargs(self) -> dict[str, Any]:
        keys = ("population_size", "crossover_prob", "mutation_prob", "swapping_prob")
        return {key: self.options[key] for key in keys} | {"seed": self.seed}


class OptunaNSGA2(_OptunaGenetic):
    """NSGA-II from Optuna (``optuna-nsga2``)."""

    def make_sampler(self, lib: Any) -> optuna.samplers.BaseSampler:
        return lib.samplers.NSGAIISampler(**self._genetic_kwargs())


class OptunaNSGA3(_OptunaGenetic):
    """NSGA-III from Optuna (``optuna-nsga3``); reference points are Das-Dennis points with
    ``dividing_parameter`` divisions per objective."""

    OPTIONS: ClassVar[Mapping[str, Any]] = {**_OptunaGenetic.OPTIONS, "dividing_parameter": 3}

    @classmethod
    def check_options(cls, options: Mapping[str, Any]) -> dict[str, Any]:
        merged = super().check_options(options)
        merged["dividing_parameter"] = int_option(merged, "dividing_parameter", minimum=1)
        return merged

    def make_sampler(self, lib: Any) -> optuna.samplers.BaseSampler:
        return lib.samplers.NSGAIIISampler(
            **self._genetic_kwargs(), dividing_parameter=self.options["dividing_parameter"]
        )


class OptunaTPE(OptunaOptimizer):
    """TPE from Optuna (``optuna-tpe``). ``constant_liar`` keeps the trials of one batch apart
    (pending trials count as bad ones while they run)."""

    OPTIONS: ClassVar[Mapping[str, Any]] = {
        "n_startup_trials": 10,
        "n_ei_candidates": 24,
        "multivariate": None,
        "constant_liar": True,
    }

    @classmethod
    def check_options(cls, options: Mapping[str, Any]) -> dict[str, Any]:
        merged = super().check_options(options)
        merged["n_startup_trials"] = int_option(merged, "n_startup_trials", minimum=0)
        merged["n_ei_candidates"] = int_option(merged, "n_ei_candidates", minimum=1)
        merged["multivariate"] = _bool_option(merged, "multivariate", allow_none=True)
        merged["constant_liar"] = _bool_option(merged, "constant_liar")
        return merged

    def make_sampler(self, lib: Any) -> optuna.samplers.BaseSampler:
        return lib.samplers.TPESampler(
            n_startup_trials=self.options["n_startup_trials"],
            n_ei_candidates=self.options["n_ei_candidates"],
            multivariate=self.options["multivariate"],
            constant_liar=self.options["constant_liar"],
            seed=self.seed,
        )


class OptunaGP(OptunaOptimizer):
    """Gaussian-process Bayesian optimisation from Optuna (``optuna-gp``): log EI for one
    objective, log EHVI for several, both weighted by the probability of feasibility when
    there are constraints; trials asked in one batch are spread by the q-batch variants.
    Each suggestion refits the GPs, so it costs about a second: for expensive evaluations."""

    OPTIONS: ClassVar[Mapping[str, Any]] = {
        "n_startup_trials": 10,
        "deterministic_objective": False,
    }

    @classmethod
    def check_options(cls, options: Mapping[str, Any]) -> dict[str, Any]:
        merged = super().check_options(options)
        merged["n_startup_trials"] = int_option(merged, "n_startup_trials", minimum=1)
        merged["deterministic_objective"] = _bool_option(merged, "deterministic_objective")
        return merged

    def make_sampler(self, lib: Any) -> optuna.samplers.BaseSampler:
        return lib.samplers.GPSampler(
            n_startup_trials=self.options["n_startup_trials"],
            deterministic_objective=self.options["deterministic_objective"],
            warn_independent_sampling=False,
            seed=self.seed,
        )


class OptunaRandom(OptunaOptimizer):
    """Optuna's independent uniform sampling (``optuna-random``); ignores constraints."""

    def make_sampler(self, lib: Any) -> optuna.samplers.BaseSampler:
        return lib.samplers.RandomSampler(seed=self.seed)


__all__ = ["OptunaGP", "OptunaNSGA2", "OptunaNSGA3", "OptunaOptimizer", "OptunaRandom", "OptunaTPE"]
