"""pymoo's multi-objective algorithms behind the :class:`~hwsearch.search.optimizer.Optimizer`
protocol, through pymoo's ask/tell interface (``algorithm.setup(problem, ...)``,
``algorithm.ask()``, ``algorithm.tell(infills=pop)`` with ``F`` and ``G`` set).

=================  ===================================  ====================================
name               algorithm                            options (default)
=================  ===================================  ====================================
``pymoo-nsga2``    ``NSGA2``                            population_size (16), n_offsprings
                                                        (None: population_size)
``pymoo-nsga3``    ``NSGA3``                            the same, and n_partitions (None)
``pymoo-moead``    ``ParallelMOEAD`` (batch MOEA/D)     population_size (16), n_partitions
                                                        (None), n_neighbors (None: a quarter
                                                        of the population, at least 2),
                                                        prob_neighbor_mating (0.9)
``pymoo-agemoea``  ``AGEMOEA``                          population_size, n_offsprings
``pymoo-smsemoa``  ``SMSEMOA``                          population_size, n_offsprings
=================  ===================================  ====================================

Reference directions (NSGA-III, MOEA/D) are Das-Dennis points from
``get_reference_directions("das-dennis", n_objectives, n_partitions=...)``; by default
``n_partitions`` is the largest that gives at most ``population_size`` directions for the
number of objectives (16 for two objectives, 15 for three). MOEA/D's population is one
individual per direction. Crossover and mutation are each algorithm's defaults (SBX and
polynomial mutation).

**Variables.** Every variable of the space is one real gene in ``[0, 1]``, decoded to its
value: a choice by index (equal-width bins), an integer or a float with a step by grid
index (equal-width bins over ``low, low + step, ..., high``), a log-scaled variable
log-uniformly (a log integer rounded within its bounds), a plain float linearly. This works
alike for all five algorithms — pymoo's own mixed-variable operators
(``MixedVariableMating``) cannot take the parent indices MOEA/D mates with — and keeps
pymoo's real-valued operators. Duplicates are eliminated on the decoded params, so two genes
that decode to the same config count as one. Per-layer variables (``width[0]``, ...) are
ordinary genes. The space has no conditional variables: entries of a per-layer knob beyond
a candidate's depth are searched like the others and ignored by the family.

**Batches.** pymoo works in generations, the protocol in batches of any size. ``ask(n)``
serves the individuals of the current generation; when it has served them all before the
generation was told, it asks pymoo again for more individuals of the same generation (more
offspring of the same parents; before the first generation, more random samples; for
MOEA/D more offspring for further sub-problems). ``algorithm.tell`` receives the whole
generation once every individual of it was told; survival takes any number of offspring.

**Asynchronous driving** (:meth:`PymooOptimizer.drive_asynchronously`). pymoo's algorithms
are generational: no member of generation g + 1 can be bred before generation g is told.
Driven asynchronously, a generation is therefore closed as soon as it is *full*: once
``population_size`` members are told (the first generation; for MOEA/D every member of the
initial population, one per direction) or ``n_offsprings`` (later ones). pymoo is told
those, the members still out are carried into the next generation and told with it, members
never served are dropped, and the next ask breeds the next generation's first members. So
a free worker always gets a candidate: of the next generation once the current one is full,
else another member of the current one (more offspring of its parents, as above). What it
cannot do asynchronously: breed from results still out, so with many more workers than
``population_size`` most candidates are bred from a population a few generations old.
SMS-EMOA with ``n_offsprings: 1`` is the steady-state form (one told member closes a
generation).

**Results.** Maximised objectives are negated for pymoo. A failed evaluation is told to
pymoo as the worst objective values told so far, pushed a tenth of their range further, and
— where there are constraints — with every constraint violated by more than twice the
largest violation told so far, so it ranks behind every measured point. NSGA-II, NSGA-III,
AGE-MOEA and SMS-EMOA handle constraints themselves (``G``, feasible first). MOEA/D takes no
constraints in pymoo; there an infeasible point's objectives are replaced by those of a
failed one plus its total violation, which puts it behind every feasible point.
"""

from __future__ import annotations

import abc
import importlib.util
import math
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from hwsearch.errors import SpecError
from hwsearch.search.optimizer import Optimizer, Suggestion, int_option, probability_option
from hwsearch.search.space import ChoiceVar, IntVar, SearchSpace, Variable


def _import_pymoo() -> None:
    try:
        import pymoo  # noqa: F401
    except ImportError as exc:  # pragma: no cover - pymoo is a dependency of hwsearch
        raise ImportError("the pymoo optimizers need pymoo: pip install 'pymoo>=0.6.2'") from exc


def _bin(u: float, n: int) -> int:
    """Index ``0..n-1`` of the equal-width bin of ``u`` in ``[0, 1]``."""
    return min(int(u * n), n - 1)


def _decode(var: Variable, u: float) -> Any:
    u = min(max(float(u), 0.0), 1.0)
    if isinstance(var, ChoiceVar):
        return var.values[_bin(u, len(var.values))]
    if isinstance(var, IntVar):
        if var.log:
            low, high = math.log(var.low - 0.5), math.log(var.high + 0.5)
            return min(max(round(math.exp(low + u * (high - low))), var.low), var.high)
        return var.low + var.step * _bin(u, (var.high - var.low) // var.step + 1)
    if var.step is not None:
        n = math.floor((var.high - var.low) / var.step + 1e-9) + 1
        value = var.low + var.step * _bin(u, n)
    elif var.log:  # exact ends: exp(log(low)) may miss low by a rounding error
        low, high = math.log(var.low), math.log(var.high)
        value = var.low if u == 0.0 else var.high if u == 1.0 else math.exp(low + u * (high - low))
    else:
        value = var.low + u * (var.high - var.low)
    return float(min(max(value, var.low), var.high))


def decode(space: SearchSpace, genes: Sequence[float]) -> dict[str, Any]:
    """The params of a gene vector in ``[0, 1]^len(space)`` (see the module docstring)."""
    return {var.name: _decode(var, u) for var, u in zip(space.variables, genes, strict=True)}


def _duplicate_elimination(space: SearchSpace) -> Any:
    """pymoo duplicate elimination that compares individuals by their decoded params."""
    from pymoo.core.duplicate import DuplicateElimination

    def key(individual: Any) -> tuple[tuple[str, Any], ...]:
        return tuple((type(v).__name__, v) for v in decode(space, individual.X).values())

    class DecodedDuplicateElimination(DuplicateElimination):
        def _do(self, pop: Any, other: Any, is_duplicate: NDArray[np.bool_]) -> Any:
            seen = set() if other is None else {key(ind) for ind in other}
            for i, individual in enumerate(pop):
                k = key(individual)
                if k in seen:
                    is_duplicate[i] = True
                else:
                    seen.add(k)
            return is_duplicate

    return DecodedDuplicateElimination()


def _default_partitions(n_objectives: int, population_size: int) -> int:
    """The largest Das-Dennis partition count with at most ``population_size`` directions."""
    partitions = 1
    while math.comb(partitions + 1 + n_objectives - 1, n_objectives - 1) <= population_size:
        partitions += 1
    return partitions


class PymooOptimizer(Optimizer):
    """An algorithm that :meth:`make_algorithm` builds, run generation by generation."""

    OPTIONS: ClassVar[Mapping[str, Any]] = {"population_size": 16, "n_offsprings": None}
    #: Whether the pymoo algorithm ranks by the constraints ``G`` itself.
    HANDLES_CONSTRAINTS: ClassVar[bool] = True
    #: The fewest objectives the algorithm works with.
    MIN_OBJECTIVES: ClassVar[int] = 1
    #: Whether more individuals asked for the same generation are checked for duplicates.
    DEDUPLICATE: ClassVar[bool] = True

    @classmethod
    def check_options(cls, options: Mapping[str, Any]) -> dict[str, Any]:
        merged = super().check_options(options)
        merged["population_size"] = int_option(merged, "population_size", minimum=2)
        if "n_offsprings" in merged and merged["n_offsprings"] is not None:
            merged["n_offsprings"] = int_option(merged, "n_offsprings", minimum=1)
        return merged

    @abc.abstractmethod
    def make_algorithm(self) -> Any:
        """The pymoo algorithm, from the checked ``self.options`` (not set up yet)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        _import_pymoo()
        from pymoo.core.evaluator import Evaluator
        from pymoo.core.population import Population
        from pymoo.core.problem import Problem
        from pymoo.core.termination import NoTermination
        from pymoo.problems.static import StaticProblem

        name = type(self).__name__
        if not self.space.variables:
            raise SpecError("space", f"{name} needs at least one variable to search")
        if len(self.objectives) < self.MIN_OBJECTIVES:
            raise SpecError(
                "objectives",
                f"{name} needs at least {self.MIN_OBJECTIVES} objectives, "
                f"got {len(self.objectives)}",
            )
        self._population_cls = Population
        self._static_problem = StaticProblem
        self._evaluator = Evaluator()
        self._signs = np.array([o.sign for o in self.objectives])
        self._problem = Problem(
            n_var=len(self.space),
            n_obj=len(self.objectives),
            n_ieq_constr=self.n_constraints if self.HANDLES_CONSTRAINTS else 0,
            xl=0.0,
            xu=1.0,
        )
        self._duplicates = _duplicate_elimination(self.space)
        self.algorithm = self.make_algorithm()
        self.algorithm.setup(self._problem, termination=NoTermination(), seed=self.seed)
        self._rng = np.random.default_rng(self.seed)
        self._next_id = 0
        # the current generation: its individuals, which are not served yet, which are out
        self._members: list[Any] = []
        self._unserved: deque[int] = deque()
        self._pending: dict[int, int] = {}  # suggestion id -> member index
        self._results: dict[int, tuple[NDArray[np.float64] | None, list[float]]] = {}
        self._low: NDArray[np.float64] | None = None  # minimised values told so far
        self._high: NDArray[np.float64] | None = None
        self._max_violation = 0.0
        self._opened = False  # whether pymoo was asked for the current generation
        self._async = False  # close a generation once enough of it is told (drive_async...)

    def drive_asynchronously(self) -> None:
        """Close each generation as soon as enough of it is told (see the module docstring:
        *Asynchronous driving*) rather than when every member is."""
        self._async = True

    # -- the protocol ------------------------------------------------------------------------

    def ask(self, n: int) -> list[Suggestion]:
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n!r}")
        out: list[Suggestion] = []
        while len(out) < n:
            if not self._unserved:
                self._extend(n - len(out))
            index = self._unserved.popleft()
            self._pending[self._next_id] = index
            out.append(Suggestion(self._next_id, decode(self.space, self._members[index].X)))
            self._next_id += 1
        return out

    def tell(
        self,
        suggestion_id: int,
        values: Sequence[float] | None,
        violations: Sequence[float] = (),
    ) -> None:
        index = self._pending.get(suggestion_id)
        if index is None:
            raise ValueError(f"suggestion {suggestion_id!r} is unknown or was already told")
        checked, limits = self._check_result(values, violations)
        del self._pending[suggestion_id]
        minimised = None if checked is None else np.asarray(checked) * self._signs
        self._results[index] = (minimised, limits)
        if minimised is not None:
            self._low = minimised if self._low is None else np.minimum(self._low, minimised)
            self._high = minimised if self._high is None else np.maximum(self._high, minimised)
            self._max_violation = max([self._max_violation, *limits])
        everything = not self._unserved and len(self._results) == len(self._members)
        # asynchronously, a generation of carried members alone waits for new ones
        if (everything and (self._opened or not self._async)) or (
            self._async and self._can_close()
        ):
            self._finish_generation()

    # -- generations -------------------------------------------------------------------------

    def _extend(self, needed: int) -> None:
        """Add individuals to the current generation: a new generation from pymoo, or (when
        one is out) ``needed`` more of it; random ones where pymoo has no new offspring."""
        first = not self._opened
        self._opened = True
        off = self.algorithm.ask()
        if off is not None and len(off) and not first:
            if self.DEDUPLICATE:
                off = self._duplicates.do(off, self._population_cls.create(*self._members))
            off = off[:needed]
        elif off is not None and len(off) and self._members and self.DEDUPLICATE:
            # a new generation beside members carried over from the last (asynchronous)
            off = self._duplicates.do(off, self._population_cls.create(*self._members))
        if off is None or len(off) == 0:  # mating found no new offspring: sample instead
            self.algorithm.termination.force_termination = False
            size = self.options["population_size"] if first else needed
            off = self._population_cls.new(X=self._rng.random((size, len(self.space))))
        self._add_members(list(off), first)

    def _add_members(self, individuals: list[Any], first: bool) -> None:
        start = len(self._members)
        self._members += individuals
        self._unserved.extend(range(start, len(self._members)))

    def _can_close(self) -> bool:
        """Whether enough of the generation is told to close it under asynchronous
        driving: the population first, then the offspring of one generation."""
        size = int(self.options["population_size"])
        if self.algorithm.is_initialized:
            size = int(self.options.get("n_offsprings") or size)
        return len(self._results) >= size

    def _finish_generation(self) -> None:
        """Set ``F`` (and ``G``) of the told members and hand them to the algorithm.

        Members still out (asynchronous driving) join the next generation, to be told with
        it; members never served are dropped: the next generation's offspring replace them.
        """
        told = sorted(self._results)
        pop = self._population_cls.create(*[self._members[i] for i in told])
        F, G = self._fitness(told)
        out = {"F": F, "G": G} if self._problem.n_ieq_constr else {"F": F}
        self._evaluator.eval(self._static_problem(self._problem, **out), pop)
        self._tell_generation(pop, told)
        out_still = sorted(set(self._pending.values()))
        self._carry(out_still)
        renumber = {old: new for new, old in enumerate(out_still)}
        self._members = [self._members[i] for i in out_still]
        self._pending = {sid: renumber[i] for sid, i in self._pending.items()}
        self._unserved = deque()
        self._results = {}
        self._opened = False

    def _carry(self, kept: list[int]) -> None:
        """Keep per-member state of the members ``kept`` into the next generation."""

    def _tell_generation(self, pop: Any, members: list[int]) -> None:
        self.algorithm.tell(infills=pop)

    def _failure_values(self) -> NDArray[np.float64]:
        if self._low is None or self._high is None:
            return np.ones(len(self.objectives))
        return self._high + 0.1 * (self._high - self._low) + 1e-9 * (1.0 + np.abs(self._high))

    def _fitness(self, members: list[int]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Minimised objectives and constraint values of ``members``, failures filled in."""
        failed = self._failure_values()
        big = 1.0 + 2.0 * self._max_violation
        F = np.empty((len(members), len(self.objectives)))
        G = np.empty((len(members), self.n_constraints))
        for row, index in enumerate(members):
            values, limits = self._results[index]
            if values is None:
                F[row], G[row] = failed, big
            else:
                F[row], G[row] = values, limits
        return F, G


class _GeneticPymoo(PymooOptimizer):
    """Options and construction shared by the population-based algorithms."""

    def _genetic_kwargs(self) -> dict[str, Any]:
        from pymoo.operators.sampling.rnd import FloatRandomSampling

        return {
            "pop_size": self.options["population_size"],
            "n_offsprings": self.options["n_offsprings"],
            "sampling": FloatRandomSampling(),
            "eliminate_duplicates": self._duplicates,
        }


class PymooNSGA2(_GeneticPymoo):
    """NSGA-II from pymoo (``pymoo-nsga2``)."""

    def make_algorithm(self) -> Any:
        from pymoo.algorithms.moo.nsga2 import NSGA2

        return NSGA2(**self._genetic_kwargs())


class PymooAGEMOEA(_GeneticPymoo):
    """AGE-MOEA from pymoo (``pymoo-agemoea``): survival by the estimated geometry of the
    front."""

    MIN_OBJECTIVES: ClassVar[int] = 2

    @classmethod
    def check_options(cls, options: Mapping[str, Any]) -> dict[str, Any]:
        if importlib.util.find_spec("numba") is None:  # pymoo's AGE-MOEA is compiled by numba
            raise SpecError(
                "optimizer.name", "pymoo-agemoea needs the numba package: pip install numba"
            )
        return super().check_options(options)

    def make_algorithm(self) -> Any:
        from pymoo.algorithms.moo.age import AGEMOEA

        return AGEMOEA(**self._genetic_kwargs())


class PymooSMSEMOA(_GeneticPymoo):
    """SMS-EMOA from pymoo (``pymoo-smsemoa``): survival by hypervolume contribution, here
    with a whole batch of offspring per generation instead of one."""

    MIN_OBJECTIVES: ClassVar[int] = 2

    def make_algorithm(self) -> Any:
        from pymoo.algorithms.moo.sms import SMSEMOA

        return SMSEMOA(**self._genetic_kwargs())


def _check_partitions(options: dict[str, Any]) -> None:
    if options["n_partitions"] is not None:
        options["n_partitions"] = int_option(options, "n_partitions", minimum=1)


def _reference_directions(optimizer: PymooOptimizer) -> NDArray[np.float64]:
    from pymoo.util.ref_dirs import get_reference_directions

    m = len(optimizer.objectives)
    partitions = optimizer.options["n_partitions"]
    if partitions is None:
        partitions = _default_partitions(m, optimizer.options["population_size"])
    directions: NDArray[np.float64] = get_reference_directions(
        "das-dennis", m, n_partitions=partitions
    )
    return directions


class PymooNSGA3(_GeneticPymoo):
    """NSGA-III from pymoo (``pymoo-nsga3``) with Das-Dennis reference directions; the
    population must hold at least one individual per direction."""

    OPTIONS: ClassVar[Mapping[str, Any]] = {**PymooOptimizer.OPTIONS, "n_partitions": None}
    MIN_OBJECTIVES: ClassVar[int] = 2

    @classmethod
    def check_options(cls, options: Mapping[str, Any]) -> dict[str, Any]:
        merged = super().check_options(options)
        _check_partitions(merged)
        return merged

    def make_algorithm(self) -> Any:
        from pymoo.algorithms.moo.nsga3 import NSGA3

        directions = _reference_directions(self)
        if len(directions) > self.options["population_size"]:
            raise SpecError(
                "optimizer.n_partitions",
                f"gives {len(directions)} reference directions for {len(self.objectives)} "
                f"objectives, more than population_size={self.options['population_size']}",
            )
        return NSGA3(directions, **self._genetic_kwargs())


class PymooMOEAD(PymooOptimizer):
    """MOEA/D from pymoo (``pymoo-moead``), in its batch form ``ParallelMOEAD``: each
    generation mates once per sub-problem (reference direction) and offers the offspring to
    that sub-problem's neighbourhood."""

    OPTIONS: ClassVar[Mapping[str, Any]] = {
        "population_size": 16,
        "n_partitions": None,
        "n_neighbors": None,
        "prob_neighbor_mating": 0.9,
    }
    HANDLES_CONSTRAINTS: ClassVar[bool] = False
    MIN_OBJECTIVES: ClassVar[int] = 2
    DEDUPLICATE: ClassVar[bool] = False  # offspring stay aligned with their sub-problems

    @classmethod
    def check_options(cls, options: Mapping[str, Any]) -> dict[str, Any]:
        merged = super().check_options(options)
        _check_partitions(merged)
        if merged["n_neighbors"] is not None:
            merged["n_neighbors"] = int_option(merged, "n_neighbors", minimum=2)
        prob = probability_option(merged, "prob_neighbor_mating")
        merged["prob_neighbor_mating"] = (
            cls.OPTIONS["prob_neighbor_mating"] if prob is None else prob
        )
        return merged

    def __init__(self, **kwargs: Any) -> None:
        self._subproblems: list[int | None] = []  # per member: the sub-problem it was bred for
        super().__init__(**kwargs)

    def make_algorithm(self) -> Any:
        from pymoo.algorithms.moo.moead import ParallelMOEAD
        from pymoo.operators.sampling.rnd import FloatRandomSampling

        directions = _reference_directions(self)
        neighbors = self.options["n_neighbors"]
        if neighbors is None:
            neighbors = max(2, math.ceil(len(directions) / 4))
        elif neighbors > len(directions):
            raise SpecError(
                "optimizer.n_neighbors",
                f"must be at most the number of reference directions ({len(directions)}), "
                f"got {neighbors}",
            )
        return ParallelMOEAD(
            directions,
            n_neighbors=neighbors,
            prob_neighbor_mating=self.options["prob_neighbor_mating"],
            sampling=FloatRandomSampling(),
        )

    def _add_members(self, individuals: list[Any], first: bool) -> None:
        if self.algorithm.is_initialized:
            # ParallelMOEAD keeps the sub-problem of each offspring of its last ask, in order
            self._subproblems += [int(k) for k in self.algorithm.indices[: len(individuals)]]
        elif first:
            self._subproblems += [None] * len(individuals)  # the initial population
        else:  # more random samples before the first generation: offered to random sub-problems
            size = self.algorithm.pop_size
            self._subproblems += [int(k) for k in self._rng.integers(size, size=len(individuals))]
        super()._add_members(individuals, first)

    def _fitness(self, members: list[int]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        F, G = super()._fitness(members)
        infeasible = (G > 0).any(axis=1) if G.size else np.zeros(len(F), dtype=bool)
        total = np.where(G > 0, G, 0.0).sum(axis=1) if G.size else np.zeros(len(F))
        F[infeasible] = self._failure_values() + total[infeasible, None]
        return F, G

    def _tell_generation(self, pop: Any, members: list[int]) -> None:
        kinds = [self._subproblems[i] for i in members]
        initial = [row for row, k in enumerate(kinds) if k is None]
        offspring = [row for row, k in enumerate(kinds) if k is not None]
        if initial:
            self.algorithm.tell(infills=pop[initial])
        if offspring:
            self.algorithm.indices = np.array([kinds[row] for row in offspring])
            self.algorithm.tell(infills=pop[offspring])

    def _can_close(self) -> bool:
        # the initial population is one member per direction: all of it first
        if not self.algorithm.is_initialized:
            initial = [i for i, k in enumerate(self._subproblems) if k is None]
            if any(i not in self._results for i in initial):
                return False
        return super()._can_close()

    def _carry(self, kept: list[int]) -> None:
        # members of the initial population told after it was: offered to random sub-problems
        size = self.algorithm.pop_size
        self._subproblems = [
            int(self._rng.integers(size)) if self._subproblems[i] is None else self._subproblems[i]
            for i in kept
        ]


__all__ = [
    "PymooAGEMOEA",
    "PymooMOEAD",
    "PymooNSGA2",
    "PymooNSGA3",
    "PymooOptimizer",
    "PymooSMSEMOA",
    "decode",
]
