"""The optimizer protocol (ask a batch of params, tell their objective values) and its registry.

Every algorithm is an adapter behind :class:`Optimizer`; the driver only sees ``ask`` and
``tell``. Values are told in each metric's own units and direction (the adapter knows from
the objectives which ones are maximised); ``violations`` follow Optuna's convention: one
number per constraint, ``<= 0`` satisfied.

Adapters are registered by name; an entry may be a ``"module:Class"`` string so the module
(and the library it wraps) is imported only when the optimizer is used.
"""

from __future__ import annotations

import abc
import importlib
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from hwsearch.errors import SpecError, UnknownNameError
from hwsearch.search.objectives import Objective
from hwsearch.search.space import SearchSpace


@dataclass(frozen=True)
class Suggestion:
    """Params to evaluate; ``id`` is what :meth:`Optimizer.tell` takes back."""

    id: int
    params: dict[str, Any]


class Optimizer(abc.ABC):
    """Ask for params, tell their results. Subclasses implement :meth:`ask` and :meth:`tell`.

    ``OPTIONS`` lists the option names with their defaults; :meth:`check_options` turns the
    user's options into complete, checked keyword values (override it to check more).
    """

    OPTIONS: ClassVar[Mapping[str, Any]] = {}
    #: whether this optimizer searches as well driven asynchronously as in generations; where
    #: False, a job whose spec leaves ``search.driving`` unset is driven generationally
    asynchronous: ClassVar[bool] = True

    def __init__(
        self,
        *,
        space: SearchSpace,
        objectives: Sequence[Objective],
        n_constraints: int = 0,
        seed: int = 0,
        options: Mapping[str, Any] | None = None,
    ) -> None:
        if not objectives:
            raise ValueError("an optimizer needs at least one objective")
        if n_constraints < 0:
            raise ValueError(f"n_constraints must be >= 0, got {n_constraints!r}")
        self.space = space
        self.objectives = tuple(objectives)
        self.n_constraints = n_constraints
        self.seed = seed
        self.options = self.check_options(options or {})

    @classmethod
    def check_objectives(cls, options: Mapping[str, Any], n_objectives: int) -> None:
        """Raise ``SpecError("optimizer.<key>", ...)`` where checked ``options`` do not fit a
        problem of ``n_objectives`` objectives (e.g. one value per objective); every
        value fits any problem unless an optimizer says otherwise."""
        return None

    @classmethod
    def check_options(cls, options: Mapping[str, Any]) -> dict[str, Any]:
        """Complete ``options`` with defaults; raise ``SpecError("optimizer.<key>", ...)``."""
        for key in options:
            if key not in cls.OPTIONS:
                known = ", ".join(cls.OPTIONS) or "none"
                raise SpecError(f"optimizer.{key}", f"unknown option; options: {known}")
        return {**cls.OPTIONS, **options}

    @abc.abstractmethod
    def ask(self, n: int) -> list[Suggestion]:
        """``n`` new suggestions (each with every variable of the space set)."""

    @abc.abstractmethod
    def tell(
        self,
        suggestion_id: int,
        values: Sequence[float] | None,
        violations: Sequence[float] = (),
    ) -> None:
        """Report a suggestion's objective values (None: the evaluation failed) and its
        constraint violations (one per constraint, ``<= 0`` means satisfied)."""

    def drive_asynchronously(self) -> None:  # noqa: B027 - a no-op by default
        """Called by the driver before the first :meth:`ask` of an asynchronously driven job:
        results will be told as they arrive, and the next suggestions asked while others are
        still out, one free worker at a time. An optimizer whose ``ask`` already accounts
        for suggestions not told yet needs nothing; one that works in generations changes
        when it closes one (pymoo: see :mod:`hwsearch.search._pymoo`)."""

    def min_free_workers(self, workers: int) -> int:
        """Driven asynchronously over ``workers`` workers, the fewest free ones worth an ask
        (fewer are asked for only when nothing is in flight or the budget leaves fewer): 1 by
        default, a free worker gets its next candidate at once."""
        return 1

    def attach_storage(self, url: str, name: str) -> None:  # noqa: B027 - a no-op by default
        """Keep this optimizer's own state as ``name`` in the database at ``url`` (the job's
        database), where the library it wraps can store it; called by the driver once, before
        the first :meth:`ask`. The default keeps nothing: the driver's replay restores state.
        """

    def _check_result(
        self, values: Sequence[float] | None, violations: Sequence[float]
    ) -> tuple[list[float] | None, list[float]]:
        """Checked floats of a ``tell``; raises ValueError on wrong lengths or NaN values."""
        if values is None:
            return None, [float(v) for v in violations]
        out = [float(v) for v in values]
        if len(out) != len(self.objectives):
            raise ValueError(f"expected {len(self.objectives)} objective values, got {len(out)}")
        if any(math.isnan(v) for v in out):
            raise ValueError(f"objective values must not be NaN, got {out}; tell None instead")
        limits = [float(v) for v in violations]
        if len(limits) != self.n_constraints:
            raise ValueError(f"expected {self.n_constraints} violations, got {len(limits)}")
        if any(math.isnan(v) for v in limits):
            raise ValueError(f"violations must not be NaN, got {limits}")
        return out, limits


def int_option(options: Mapping[str, Any], key: str, *, minimum: int) -> int:
    value = options[key]
    if isinstance(value, bool) or not isinstance(value, int):
        raise SpecError(f"optimizer.{key}", f"expected an integer, got {value!r}")
    if value < minimum:
        raise SpecError(f"optimizer.{key}", f"must be at least {minimum}, got {value!r}")
    return value


def probability_option(options: Mapping[str, Any], key: str) -> float | None:
    value = options[key]
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise SpecError(f"optimizer.{key}", f"must be a probability between 0 and 1, got {value!r}")
    return float(value)


class RandomOptimizer(Optimizer):
    """Uniform independent sampling of the space: a baseline, and a dependency-free default.

    ``population_size`` only sets how many configs the driver asks for at a time, so that a
    spec written for a population-based algorithm runs unchanged with this one.
    """

    OPTIONS: ClassVar[Mapping[str, Any]] = {"population_size": 8}

    @classmethod
    def check_options(cls, options: Mapping[str, Any]) -> dict[str, Any]:
        merged = super().check_options(options)
        merged["population_size"] = int_option(merged, "population_size", minimum=1)
        return merged

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._rng = np.random.default_rng(self.seed)
        self._next_id = 0
        self._pending: set[int] = set()
        self.told: dict[int, tuple[list[float] | None, list[float]]] = {}

    def ask(self, n: int) -> list[Suggestion]:
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n!r}")
        out = []
        for _ in range(n):
            out.append(Suggestion(self._next_id, self.space.sample(self._rng)))
            self._pending.add(self._next_id)
            self._next_id += 1
        return out

    def tell(
        self,
        suggestion_id: int,
        values: Sequence[float] | None,
        violations: Sequence[float] = (),
    ) -> None:
        if suggestion_id not in self._pending:
            raise ValueError(f"suggestion {suggestion_id!r} is unknown or was already told")
        self.told[suggestion_id] = self._check_result(values, violations)
        self._pending.discard(suggestion_id)


_REGISTRY: dict[str, type[Optimizer] | str] = {
    "random": RandomOptimizer,
    "optuna-nsga2": "hwsearch.search._optuna:OptunaNSGA2",
    "default": "hwsearch.search._strategy:SurrogateStrategy",
    "optuna-nsga3": "hwsearch.search._optuna:OptunaNSGA3",
    "optuna-tpe": "hwsearch.search._optuna:OptunaTPE",
    "optuna-gp": "hwsearch.search._optuna:OptunaGP",
    "optuna-random": "hwsearch.search._optuna:OptunaRandom",
    "pymoo-nsga2": "hwsearch.search._pymoo:PymooNSGA2",
    "pymoo-nsga3": "hwsearch.search._pymoo:PymooNSGA3",
    "pymoo-moead": "hwsearch.search._pymoo:PymooMOEAD",
    "pymoo-agemoea": "hwsearch.search._pymoo:PymooAGEMOEA",
    "pymoo-smsemoa": "hwsearch.search._pymoo:PymooSMSEMOA",
}


def register_optimizer(name: str, optimizer: type[Optimizer] | str) -> None:
    """Register a class, or ``"module:Class"`` to import on first use."""
    _REGISTRY[name] = optimizer


def optimizer_names() -> list[str]:
    return sorted(_REGISTRY)


def get_optimizer_class(name: str) -> type[Optimizer]:
    try:
        entry = _REGISTRY[name]
    except (KeyError, TypeError):
        raise UnknownNameError("optimizer", str(name), _REGISTRY) from None
    if isinstance(entry, str):
        module_name, _, attr = entry.partition(":")
        entry = getattr(importlib.import_module(module_name), attr)
        if not (isinstance(entry, type) and issubclass(entry, Optimizer)):
            raise TypeError(f"optimizer {name!r} is registered as {entry!r}, not an Optimizer")
        _REGISTRY[name] = entry
    return entry


def check_optimizer_options(name: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """The complete options of optimizer ``name``; raises UnknownNameError or SpecError."""
    return get_optimizer_class(name).check_options(options)


#: features known before any evaluation: params -> 1-D array, or named blocks of them
PriorFn = Callable[[Mapping[str, Any]], Any]
PriorArg = PriorFn | Mapping[str, PriorFn] | None


def make_optimizer(
    name: str,
    *,
    space: SearchSpace,
    objectives: Sequence[Objective],
    n_constraints: int,
    seed: int,
    options: Mapping[str, Any],
    prior: PriorArg = None,
) -> Optimizer:
    """Build the optimizer registered as ``name`` (UnknownNameError lists the valid names).

    ``prior`` (params -> 1-D array of features known beforehand, such as other devices'
    log-latencies of the config, or a mapping of block name -> such a callable) reaches
    optimizers whose class sets ``USES_PRIOR``; the others ignore it.
    """
    cls = get_optimizer_class(name)
    extra: dict[str, Any] = {}
    if prior is not None and getattr(cls, "USES_PRIOR", False):
        extra["prior"] = prior
    return cls(
        space=space,
        objectives=objectives,
        n_constraints=n_constraints,
        seed=seed,
        options=options,
        **extra,
    )


__all__ = [
    "Optimizer",
    "RandomOptimizer",
    "Suggestion",
    "check_optimizer_options",
    "get_optimizer_class",
    "make_optimizer",
    "optimizer_names",
    "register_optimizer",
]
