"""Every registered optimizer through the ask/tell protocol on one small mixed problem.

The problem (ZDT1-like, two objectives) has integers with a step, a log integer, floats with
a step and on a log scale, choices and a per-layer knob; a constraint that cuts the space in
half and failing evaluations. Batches come in several sizes, so the adapters that think in
generations (pymoo, Optuna's NSGA) have to buffer.
"""

from __future__ import annotations

import functools
import importlib.util
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from hwsearch.errors import SpecError, UnknownNameError
from hwsearch.search.objectives import Constraint, Objective
from hwsearch.search.optimizer import Optimizer, make_optimizer, optimizer_names
from hwsearch.search.pareto import hypervolume, pareto_front
from hwsearch.search.space import ChoiceVar, FloatVar, IntVar, SearchSpace

SPACE = SearchSpace(
    (
        FloatVar("x", 0.0, 1.0),
        IntVar("n", 0, 10, step=2),
        FloatVar("lr", 1e-3, 1.0, log=True),
        FloatVar("drop", 0.0, 0.5, step=0.1),
        IntVar("heads", 1, 16, log=True),
        ChoiceVar("kind", ("good", "bad", "ugly")),
        *(ChoiceVar(f"width[{i}]", (8, 16, 32)) for i in range(3)),
    ),
    layers={"width": 3},
)
OBJECTIVES = [Objective("accuracy", "maximize"), Objective("latency_ms", "minimize")]
DIRECTIONS = [o.direction for o in OBJECTIVES]
CONSTRAINT = Constraint.parse("accuracy >= 0.5")
REFERENCE = [0.0, 12.0]  # fixed, so hypervolumes of different sets compare

NAMES = [name for name in optimizer_names() if name != "default"]
RANDOM = {"random", "optuna-random"}
SCHEDULE = (8, 3, 13, 8, 6, 10, 8, 8, 8, 8)
# each GP suggestion refits three GPs and optimises the acquisition (seconds): a small budget
GP_SCHEDULE = (8, 1, 2)
HAS_NUMBA = importlib.util.find_spec("numba") is not None


def evaluate(params: dict[str, Any]) -> list[float] | None:
    """accuracy = 1 - x; latency = g (1 - sqrt(x / g)), g >= 1 smallest at n=0, lr=10^-1.5,
    drop=0.2, heads=4, kind 'good' and every width 16."""
    if params["kind"] == "ugly" and params["n"] >= 8:
        return None  # a failed evaluation
    g = (
        1.0
        + 0.5 * params["n"]
        + abs(math.log10(params["lr"]) + 1.5)
        + 4.0 * abs(params["drop"] - 0.2)
        + 0.3 * abs(math.log2(params["heads"]) - 2.0)
        + (2.0 if params["kind"] != "good" else 0.0)
        + sum(abs(params[f"width[{i}]"] - 16) / 16 for i in range(3))
    )
    x = params["x"]
    return [1.0 - x, g * (1.0 - math.sqrt(x / g))]


def make(
    name: str, seed: int = 0, objectives: list[Objective] = OBJECTIVES, **options: Any
) -> Optimizer:
    if name == "pymoo-agemoea" and not HAS_NUMBA:
        pytest.skip("pymoo's AGE-MOEA needs numba")
    if name == "optuna-gp":
        options = {"n_startup_trials": 6, **options}
    return make_optimizer(
        name, space=SPACE, objectives=objectives, n_constraints=1, seed=seed, options=options
    )


def tell(opt: Optimizer, suggestion_id: int, params: dict[str, Any]) -> list[float] | None:
    values = evaluate(params)
    if values is None:
        opt.tell(suggestion_id, None)
    else:
        opt.tell(suggestion_id, values, [CONSTRAINT.violation(values[0])])
    return values


@dataclass
class Run:
    optimizer: Optimizer
    values: NDArray[np.float64]  # of the successful evaluations
    feasible: NDArray[np.bool_]
    batch: NDArray[np.intp]
    n_failed: int


@functools.cache
def search(name: str, seed: int = 0) -> Run:
    opt = make(name, seed)
    values, feasible, batches, failed = [], [], [], 0
    ids: set[int] = set()
    for batch, size in enumerate(GP_SCHEDULE if name == "optuna-gp" else SCHEDULE):
        suggestions = opt.ask(size)
        assert len(suggestions) == size
        for suggestion in suggestions:
            SPACE.check_params(suggestion.params)
            assert suggestion.id not in ids
            ids.add(suggestion.id)
        for suggestion in suggestions:
            result = tell(opt, suggestion.id, suggestion.params)
            if result is None:
                failed += 1
                continue
            values.append(result)
            feasible.append(CONSTRAINT.violation(result[0]) <= 0)
            batches.append(batch)
    return Run(opt, np.array(values), np.array(feasible), np.array(batches), failed)


def hv(values: NDArray[np.float64]) -> float:
    return hypervolume(values, DIRECTIONS, REFERENCE)


@pytest.mark.parametrize("name", NAMES)
def test_adapter_improves_on_its_first_batch(name: str) -> None:
    run = search(name)
    assert run.n_failed > 0  # failures were told and the adapter went on
    good = run.values[run.feasible]
    first = run.values[(run.batch == 0) & run.feasible]
    # the evaluated set grows its hypervolume well beyond the first batch's (>= 1.07 on the
    # ten seeds tried for every adapter, random search included)
    assert hv(good) > 1.05 * hv(first)
    if name not in RANDOM and name != "optuna-gp":
        # and the search moves: the last three batches alone beat the first (>= 1.10 on the
        # ten seeds tried; random search falls to 0.82)
        late = run.values[(run.batch >= run.batch.max() - 2) & run.feasible]
        assert hv(late) > 1.05 * hv(first)


@pytest.mark.parametrize("name", NAMES)
def test_infeasible_points_never_on_the_front(name: str) -> None:
    run = search(name)
    assert run.feasible.any() and not run.feasible.all()  # the constraint cuts the evaluated set
    front = pareto_front(run.values, DIRECTIONS, run.feasible)
    assert len(front) > 0 and run.feasible[front].all()
    # the adapter's own view of the best points agrees: feasible, evaluated successfully
    opt = run.optimizer
    if name.startswith("optuna-"):
        best = opt.study.best_trials  # type: ignore[attr-defined]
        assert best and all(t.constraints and max(t.constraints.values()) <= 0 for t in best)
    elif name.startswith("pymoo-"):
        from hwsearch.search._pymoo import decode

        best_params = [decode(SPACE, ind.X) for ind in opt.algorithm.opt]  # type: ignore[attr-defined]
        assert best_params
        for params in best_params:
            values = evaluate(params)
            assert values is not None and CONSTRAINT.violation(values[0]) <= 0


def first_suggestions(name: str, seed: int) -> list[dict[str, Any]]:
    opt = make(name, seed)
    out: list[dict[str, Any]] = []
    for size in (8,) if name == "optuna-gp" else (8, 8, 8):  # the third bred from the first
        batch = opt.ask(size)
        for suggestion in batch:
            tell(opt, suggestion.id, suggestion.params)
        out += [s.params for s in batch]
    return out


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_first_suggestions(name: str) -> None:
    a = first_suggestions(name, seed=11)
    assert a == first_suggestions(name, seed=11)
    assert a != first_suggestions(name, seed=12)
    assert len({repr(p) for p in a}) == len(a)  # not a constant stream


def test_a_wrong_name_lists_every_adapter() -> None:
    with pytest.raises(UnknownNameError) as info:
        make("pymoo-nsga4")
    message = str(info.value)
    assert message.startswith("unknown optimizer 'pymoo-nsga4'; valid names: ")
    for name in NAMES:
        assert name in message
    expected = {f"optuna-{s}" for s in ("nsga2", "nsga3", "tpe", "gp", "random")}
    expected |= {f"pymoo-{s}" for s in ("nsga2", "nsga3", "moead", "agemoea", "smsemoa")}
    assert expected <= set(NAMES)


@pytest.mark.parametrize(
    ("name", "options", "field", "reason"),
    [
        ("optuna-nsga3", {"dividing_parameter": 0}, "optimizer.dividing_parameter", "at least 1"),
        ("optuna-nsga3", {"population_size": 1.5}, "optimizer.population_size", "an integer"),
        ("optuna-tpe", {"multivariate": "yes"}, "optimizer.multivariate", "true, false or null"),
        ("optuna-tpe", {"population_size": 8}, "optimizer.population_size", "unknown option"),
        ("optuna-gp", {"n_startup_trials": 0}, "optimizer.n_startup_trials", "at least 1"),
        ("optuna-random", {"n_startup_trials": 3}, "optimizer.n_startup_trials", "none"),
        ("pymoo-nsga2", {"n_offsprings": 0}, "optimizer.n_offsprings", "at least 1"),
        ("pymoo-nsga3", {"n_partitions": 20}, "optimizer.n_partitions", "21 reference directions"),
        ("pymoo-moead", {"n_neighbors": 17}, "optimizer.n_neighbors", "at most the number"),
        ("pymoo-moead", {"prob_neighbor_mating": 2}, "optimizer.prob_neighbor_mating", "prob"),
        ("pymoo-smsemoa", {"crossover_eta": 3}, "optimizer.crossover_eta", "unknown option"),
    ],
)
def test_bad_options_name_the_option(
    name: str, options: dict[str, Any], field: str, reason: str
) -> None:
    with pytest.raises(SpecError) as info:
        make(name, **options)
    assert info.value.field == field
    assert reason in info.value.reason


@pytest.mark.parametrize("name", ["pymoo-nsga3", "pymoo-moead", "pymoo-smsemoa"])
def test_reference_direction_algorithms_need_several_objectives(name: str) -> None:
    with pytest.raises(SpecError) as info:
        make(name, objectives=OBJECTIVES[:1])
    assert info.value.field == "objectives"
    assert "at least 2 objectives, got 1" in info.value.reason


def test_agemoea_without_numba_says_what_to_install() -> None:
    if HAS_NUMBA:
        assert make("pymoo-agemoea").ask(3)
    else:
        with pytest.raises(SpecError, match="needs the numba package"):
            make_optimizer(
                "pymoo-agemoea",
                space=SPACE,
                objectives=OBJECTIVES,
                n_constraints=1,
                seed=0,
                options={},
            )


def test_pymoo_tells_a_generation_only_when_all_of_it_was_told() -> None:
    opt = make("pymoo-nsga2", population_size=6)
    algorithm = opt.algorithm  # type: ignore[attr-defined]
    batch = opt.ask(4) + opt.ask(9)  # more than one generation before any result
    assert len({repr(s.params) for s in batch}) == 13  # the extra ones are no duplicates
    for s in batch[:-1]:
        tell(opt, s.id, s.params)
    assert not algorithm.is_initialized  # one individual of the generation is still out
    tell(opt, batch[-1].id, batch[-1].params)
    assert algorithm.is_initialized and algorithm.n_gen == 2
    assert len(algorithm.pop) == 13
    nxt = opt.ask(6)  # bred from them: the next generation
    assert all(s.id >= 13 for s in nxt)
    for s in nxt:
        tell(opt, s.id, s.params)
    assert algorithm.n_gen == 3 and len(algorithm.pop) == 6  # survival kept the 6 best


def test_pymoo_ranks_failures_behind_every_measured_point() -> None:
    from hwsearch.search._pymoo import decode

    opt = make("pymoo-nsga2", population_size=8)
    batch = opt.ask(8)
    for i, s in enumerate(batch):
        if i % 2:
            opt.tell(s.id, None)
        else:  # accuracy i / 10, latency 1 + i; the constraint violated by up to 0.5
            opt.tell(s.id, [i / 10, 1.0 + i], [0.5 - i / 10])
    pop = opt.algorithm.pop  # type: ignore[attr-defined]
    failed_params = [s.params for s in batch[1::2]]
    failed = np.array([decode(SPACE, ind.X) in failed_params for ind in pop])
    assert failed.sum() == 4
    F, CV = pop.get("F"), pop.get("CV")[:, 0]
    assert (F[failed, 0] > F[~failed, 0].max()).all()  # -accuracy: worse than any told
    assert (F[failed, 1] > F[~failed, 1].max()).all()
    assert (CV[failed] > CV[~failed].max()).all()
    assert np.allclose(sorted(-F[~failed, 0]), [0.0, 0.2, 0.4, 0.6])  # maximised: negated


@pytest.mark.parametrize("name", ["pymoo-nsga2", "pymoo-moead", "optuna-tpe"])
def test_tell_checks_its_input(name: str) -> None:
    opt = make(name)
    (s,) = opt.ask(1)
    with pytest.raises(ValueError, match="expected 2 objective values, got 1"):
        opt.tell(s.id, [1.0])
    with pytest.raises(ValueError, match="expected 1 violations, got 0"):
        opt.tell(s.id, [1.0, 2.0])
    opt.tell(s.id, [0.5, 2.0], [0.0])  # still pending after the rejected tells
    with pytest.raises(ValueError, match="unknown or was already told"):
        opt.tell(s.id, [0.5, 2.0], [0.0])
    with pytest.raises(ValueError, match="n must be >= 0"):
        opt.ask(-1)


def test_decode_maps_the_unit_cube_onto_the_space() -> None:
    from hwsearch.search._pymoo import decode

    low = decode(SPACE, [0.0] * len(SPACE))
    high = decode(SPACE, [1.0] * len(SPACE))
    assert low == {"x": 0.0, "n": 0, "lr": 1e-3, "drop": 0.0, "heads": 1, "kind": "good"} | {
        f"width[{i}]": 8 for i in range(3)
    }
    assert high == {"x": 1.0, "n": 10, "lr": 1.0, "drop": 0.5, "heads": 16, "kind": "ugly"} | {
        f"width[{i}]": 32 for i in range(3)
    }
    # equal-width bins: every value of a choice or grid equally likely from uniform genes
    grid = np.linspace(0.0, 1.0, 6001)
    kinds = [decode(SPACE, [0.5, 0, 0, u, 0, u, 0, 0, 0])["kind"] for u in grid]
    assert {k: kinds.count(k) for k in ("good", "bad", "ugly")} == {
        "good": 2000,
        "bad": 2000,
        "ugly": 2001,
    }
    drops = {decode(SPACE, [0.5, 0, 0, u, 0, 0, 0, 0, 0])["drop"] for u in grid}
    assert sorted(drops) == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4, 0.5])
    for u in grid[::50]:  # log scale: the middle gene is the geometric middle
        params = decode(SPACE, [u] * len(SPACE))
        SPACE.check_params(params)
    assert decode(SPACE, [0.5] * len(SPACE))["lr"] == pytest.approx(10**-1.5)
