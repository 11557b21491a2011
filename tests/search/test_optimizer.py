from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from hwsearch.errors import SpecError, UnknownNameError
from hwsearch.search.objectives import Constraint, Objective
from hwsearch.search.optimizer import (
    Optimizer,
    RandomOptimizer,
    make_optimizer,
    optimizer_names,
)
from hwsearch.search.pareto import default_reference_point, hypervolume, pareto_front
from hwsearch.search.space import ChoiceVar, FloatVar, IntVar, SearchSpace

SPACE = SearchSpace(
    (
        FloatVar("x", 0.0, 1.0),
        IntVar("n", 0, 10),
        FloatVar("lr", 1e-3, 1.0, log=True),
        ChoiceVar("kind", ("good", "bad", "ugly")),
    )
)
OBJECTIVES = [Objective("accuracy", "maximize"), Objective("latency_ms", "minimize")]
DIRECTIONS = [o.direction for o in OBJECTIVES]
CONSTRAINTS = [Constraint.parse("accuracy >= 0.2")]


def evaluate(params: dict[str, Any]) -> list[float] | None:
    """A ZDT1-like problem: accuracy = 1 - x; latency grows with n, lr and a bad kind."""
    if params["kind"] == "ugly" and params["n"] == 10:
        return None  # a failed evaluation
    g = (
        1.0
        + params["n"]
        + abs(math.log10(params["lr"]) + 1.5)
        + (2.0 if params["kind"] != "good" else 0.0)
    )
    f1 = params["x"]
    return [1.0 - f1, g * (1.0 - math.sqrt(f1 / g))]


def make(name: str, seed: int = 0, **options: Any) -> Optimizer:
    return make_optimizer(
        name,
        space=SPACE,
        objectives=OBJECTIVES,
        n_constraints=len(CONSTRAINTS),
        seed=seed,
        options=options,
    )


def run(opt: Optimizer, generations: int, size: int) -> list[tuple[int, list[float], bool]]:
    """(generation, values, feasible) of every successful evaluation."""
    out = []
    for gen in range(generations):
        for suggestion in opt.ask(size):
            SPACE.check_params(suggestion.params)
            values = evaluate(suggestion.params)
            if values is None:
                opt.tell(suggestion.id, None)
                continue
            violations = [c.violation(values[0]) for c in CONSTRAINTS]
            opt.tell(suggestion.id, values, violations)
            out.append((gen, values, all(v <= 0 for v in violations)))
    return out


def test_registry_lists_valid_names_on_a_wrong_one() -> None:
    assert {"optuna-nsga2", "random"} <= set(optimizer_names())
    with pytest.raises(UnknownNameError) as info:
        make("cma-es")
    assert str(info.value).startswith("unknown optimizer 'cma-es'; valid names: ")
    assert "optuna-nsga2" in str(info.value) and "random" in str(info.value)


def test_bad_options_name_the_option() -> None:
    with pytest.raises(SpecError) as info:
        make("optuna-nsga2", population_size="many")
    assert info.value.field == "optimizer.population_size"
    assert info.value.reason == "expected an integer, got 'many'"
    with pytest.raises(SpecError) as info:
        make("optuna-nsga2", crossover_prob=1.5)
    assert info.value.field == "optimizer.crossover_prob"
    with pytest.raises(SpecError) as info:
        make("random", generations=8)
    assert (info.value.field, info.value.reason) == (
        "optimizer.generations",
        "unknown option; options: population_size",
    )
    assert make("random", population_size=4).options == {"population_size": 4}


def test_nsga2_improves_hypervolume_and_respects_constraints() -> None:
    opt = make("optuna-nsga2", seed=3, population_size=12)
    results = run(opt, generations=8, size=12)
    gens = np.array([g for g, _, _ in results])
    values = np.array([v for _, v, _ in results])
    feasible = np.array([f for _, _, f in results])
    first = gens == 0
    ref = default_reference_point(values[first], DIRECTIONS)
    hv_first = hypervolume(values[first & feasible], DIRECTIONS, ref)
    last = gens == gens.max()
    hv_last = hypervolume(values[last & feasible], DIRECTIONS, ref)
    assert hv_last > 1.2 * hv_first
    # the final front holds feasible points only, and Optuna agrees they are feasible
    front = pareto_front(values, DIRECTIONS, feasible)
    assert len(front) > 0 and feasible[front].all()
    assert all(values[i][0] >= 0.2 for i in front)
    best = opt.study.best_trials  # type: ignore[attr-defined]
    assert best and all(all(c <= 0 for c in t.constraints.values()) for t in best)
    # selection pushes the population towards the feasible region
    assert feasible[last].mean() >= feasible[first].mean()


def first_suggestions(name: str, seed: int, n: int = 20) -> list[dict[str, Any]]:
    opt = make(name, seed=seed, **({"population_size": 8} if name == "optuna-nsga2" else {}))
    out: list[dict[str, Any]] = []
    while len(out) < n:  # 8 at a time: the third batch is bred from the first two
        batch = opt.ask(8)
        for s in batch:
            values = evaluate(s.params)
            opt.tell(s.id, values, [] if values is None else [CONSTRAINTS[0].violation(values[0])])
        out += [s.params for s in batch]
    return out[:n]


@pytest.mark.parametrize("name", ["optuna-nsga2", "random"])
def test_same_seed_same_suggestions(name: str) -> None:
    a = first_suggestions(name, seed=7)
    assert a == first_suggestions(name, seed=7)
    assert a != first_suggestions(name, seed=8)
    assert len({repr(p) for p in a}) > 10  # not a constant stream


def test_tell_checks_its_input() -> None:
    opt = make("optuna-nsga2", population_size=4)
    (s,) = opt.ask(1)
    with pytest.raises(ValueError, match="expected 2 objective values, got 1"):
        opt.tell(s.id, [1.0])
    with pytest.raises(ValueError, match="expected 1 violations, got 0"):
        opt.tell(s.id, [1.0, 2.0])
    with pytest.raises(ValueError, match="must not be NaN"):
        opt.tell(s.id, [math.nan, 2.0], [0.0])
    opt.tell(s.id, [0.5, 2.0], [0.0])  # still pending after the rejected tells
    with pytest.raises(ValueError, match="unknown or was already told"):
        opt.tell(s.id, [0.5, 2.0], [0.0])


def test_random_optimizer_records_results() -> None:
    opt = make("random", seed=1)
    assert isinstance(opt, RandomOptimizer)
    suggestions = opt.ask(3)
    assert [s.id for s in suggestions] == [0, 1, 2]
    opt.tell(1, None)
    opt.tell(0, [0.5, 1.0], [-0.3])
    assert opt.told == {1: (None, []), 0: ([0.5, 1.0], [-0.3])}
    with pytest.raises(ValueError, match="unknown or was already told"):
        opt.tell(7, None)
