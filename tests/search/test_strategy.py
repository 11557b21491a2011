from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pytest

from hwsearch.errors import SpecError
from hwsearch.search.objectives import Objective
from hwsearch.search.optimizer import Optimizer, RandomOptimizer, make_optimizer, optimizer_names
from hwsearch.search.pareto import hypervolume, pareto_front
from hwsearch.search.space import ChoiceVar, FloatVar, IntVar, SearchSpace
from hwsearch.search.surrogate import Encoder, GaussianProcess

OBJECTIVES = [Objective("accuracy", "maximize"), Objective("latency_ms", "minimize")]
DIRECTIONS = [o.direction for o in OBJECTIVES]

MIXED = SearchSpace(
    (
        ChoiceVar("op0", ("conv", "pool", "skip", "none")),
        ChoiceVar("op1", ("conv", "pool", "skip", "none")),
        ChoiceVar("op2", ("conv", "pool", "skip", "none")),
        IntVar("width", 1, 8),
        FloatVar("x", 0.0, 1.0),
    )
)
_COST = {"conv": 3.0, "pool": 1.0, "skip": 0.2, "none": 0.0}
_GAIN = {"conv": 0.25, "pool": 0.08, "skip": 0.05, "none": 0.0}


def mixed_problem(params: Mapping[str, Any]) -> list[float]:
    """Accuracy grows with convolutions and width (saturating), latency with their cost."""
    ops = [params[f"op{i}"] for i in range(3)]
    width = params["width"]
    x = params["x"]
    accuracy = 0.1 + 0.8 * (1 - math.exp(-sum(_GAIN[o] for o in ops) * width / 2)) - 0.1 * x
    latency = 0.5 + sum(_COST[o] for o in ops) * width / 4 + 0.5 * (1 - x) ** 2
    return [accuracy, latency]


def make(
    space: SearchSpace = MIXED,
    seed: int = 0,
    n_constraints: int = 0,
    prior: Any = None,
    **options: Any,
) -> Optimizer:
    return make_optimizer(
        "default",
        space=space,
        objectives=OBJECTIVES,
        n_constraints=n_constraints,
        seed=seed,
        options=options,
        prior=prior,
    )


def drive(
    opt: Optimizer,
    evaluate: Callable[[Mapping[str, Any]], list[float] | None],
    batches: int,
    size: int,
    violations: Callable[[list[float]], list[float]] = lambda v: [],
) -> list[tuple[dict[str, Any], list[float] | None]]:
    out = []
    for _ in range(batches):
        for s in opt.ask(size):
            values = evaluate(s.params)
            opt.tell(s.id, values, violations(values) if values is not None else [])
            out.append((s.params, values))
    return out


def hv(values: list[list[float]], reference: list[float]) -> float:
    return hypervolume(np.array(values), DIRECTIONS, reference)


def test_registered_as_default_and_checks_options() -> None:
    assert "default" in optimizer_names()
    with pytest.raises(SpecError) as info:
        make(optimism=-1)
    assert info.value.field == "optimizer.optimism"
    with pytest.raises(SpecError) as info:
        make(model="svm")
    assert info.value.field == "optimizer.model" and "gp" in info.value.reason
    with pytest.raises(SpecError) as info:
        make(initial=0)
    assert info.value.field == "optimizer.initial"


def test_optimism_per_objective() -> None:
    opt = make(optimism=[0.5, 2])
    assert opt.options["optimism"] == (0.5, 2.0)
    assert len(drive(opt, mixed_problem, batches=3, size=6)) == 18
    for bad in ([1.0], [1.0, -1.0], [], [1.0, True]):
        with pytest.raises(SpecError) as info:
            make(optimism=bad)
        assert info.value.field == "optimizer.optimism"
    # more optimism on latency than on accuracy changes what is proposed
    first = [p for p, _ in drive(make(seed=2, initial=6, optimism=[0.0, 0.0]), mixed_problem, 3, 6)]
    other = [p for p, _ in drive(make(seed=2, initial=6, optimism=[0.0, 3.0]), mixed_problem, 3, 6)]
    assert first[:6] == other[:6] and first[6:] != other[6:]


def test_improves_over_its_initial_design_and_beats_random() -> None:
    reference = [0.0, 10.0]
    opt = make(seed=1, initial=8)
    history = drive(opt, mixed_problem, batches=5, size=8)
    values = [v for _, v in history if v is not None]
    initial_hv = hv(values[:8], reference)
    final_hv = hv(values, reference)
    assert final_hv > initial_hv * 1.05
    rand = RandomOptimizer(space=MIXED, objectives=OBJECTIVES, seed=1)
    random_values = [v for _, v in drive(rand, mixed_problem, 5, 8) if v is not None]
    assert final_hv > hv(random_values, reference)


@pytest.mark.parametrize(("model", "acquisition"), [("forest", "optimistic"), ("gp", "ehvi")])
def test_other_models_and_acquisitions_improve_too(model: str, acquisition: str) -> None:
    reference = [0.0, 10.0]
    opt = make(seed=1, initial=8, model=model, acquisition=acquisition)
    history = drive(opt, mixed_problem, batches=4, size=8)
    values = [v for _, v in history if v is not None]
    assert len({tuple(sorted(p.items())) for p, _ in history}) == len(history)
    assert hv(values, reference) > hv(values[:8], reference) * 1.02


def test_never_reproposes_and_says_when_the_space_is_exhausted() -> None:
    space = SearchSpace(tuple(ChoiceVar(f"c{i}", ("a", "b", "c")) for i in range(3)))

    def evaluate(params: Mapping[str, Any]) -> list[float] | None:
        score = sum("abc".index(params[f"c{i}"]) for i in range(3))
        if params["c0"] == "c" and params["c1"] == "c":
            return None  # failures are never proposed again either
        return [0.1 * score, 1.0 + score]

    opt = make(space=space, initial=5)
    seen = []
    for _ in range(10):
        batch = opt.ask(4)
        for s in batch:
            seen.append(tuple(s.params[f"c{i}"] for i in range(3)))
            values = evaluate(s.params)
            opt.tell(s.id, values, [])
    assert len(seen) == len(set(seen)) == 27
    assert opt.ask(3) == []


def test_pending_batches_differ() -> None:
    opt = make(initial=4)
    drive(opt, mixed_problem, batches=1, size=4)
    first = opt.ask(6)
    second = opt.ask(6)  # asked before the first batch is told: a second worker pool
    keys = [tuple(sorted(s.params.items())) for s in first + second]
    assert len(set(keys)) == 12


def test_deterministic_for_a_seed() -> None:
    def params_of(seed: int) -> list[dict[str, Any]]:
        return [p for p, _ in drive(make(seed=seed, initial=6), mixed_problem, 3, 6)]

    assert params_of(3) == params_of(3)
    assert params_of(3) != params_of(4)


def _random_table_problem() -> tuple[SearchSpace, dict[tuple[str, ...], list[float]]]:
    """625 configs whose objectives are random: nothing about a config's params predicts
    them, so only prior knowledge can guide the search."""
    space = SearchSpace(tuple(ChoiceVar(f"e{i}", tuple("abcde")) for i in range(4)))
    rng = np.random.default_rng(7)
    table = {}
    for code in np.ndindex(5, 5, 5, 5):
        key = tuple("abcde"[c] for c in code)
        latency = float(rng.uniform(1, 10))
        accuracy = float(np.clip(0.3 + 0.06 * latency + rng.normal(0, 0.08), 0, 1))
        table[key] = [accuracy, latency]
    return space, table


def test_prior_features_find_the_front_faster() -> None:
    space, table = _random_table_problem()

    def key(params: Mapping[str, Any]) -> tuple[str, ...]:
        return tuple(params[f"e{i}"] for i in range(4))

    def evaluate(params: Mapping[str, Any]) -> list[float]:
        return table[key(params)]

    def prior(params: Mapping[str, Any]) -> np.ndarray:
        accuracy, latency = table[key(params)]
        return np.array([accuracy, math.log(latency)])

    all_values = np.array(list(table.values()))
    reference = [0.0, 11.0]
    best = hv(all_values.tolist(), reference)

    def gap(with_prior: bool) -> float:
        opt = make(space=space, seed=0, initial=6, prior={"db": prior} if with_prior else None)
        values = [v for _, v in drive(opt, evaluate, batches=5, size=6) if v is not None]
        return 1 - hv(values, reference) / best

    assert gap(True) < 0.5 * gap(False)
    assert gap(True) < 0.02


def test_prior_is_ignored_by_optimizers_that_do_not_use_it() -> None:
    opt = make_optimizer(
        "random",
        space=MIXED,
        objectives=OBJECTIVES,
        n_constraints=0,
        seed=0,
        options={},
        prior=lambda params: np.zeros(2),
    )
    assert len(opt.ask(3)) == 3


def test_prior_of_changing_length_is_rejected() -> None:
    space = SearchSpace((ChoiceVar("a", (1, 2, 3)), ChoiceVar("b", (1, 2))))
    with pytest.raises(ValueError, match="different lengths"):
        make(space=space, prior=lambda params: np.zeros(params["a"]))
    with pytest.raises(TypeError, match="callable"):
        make(space=space, prior={"bad": 3})


def test_constraints_shape_the_front_and_the_proposals() -> None:
    bound = 3.0

    def violations(values: list[float]) -> list[float]:
        return [values[1] - bound]  # latency_ms <= 3

    far_off = {"default": 0, "random": 0}
    for seed in range(3):
        opt = make(seed=seed, n_constraints=1, initial=8)
        rand = RandomOptimizer(space=MIXED, objectives=OBJECTIVES, n_constraints=1, seed=seed)
        fronts = {}
        for name, optimizer in (("default", opt), ("random", rand)):
            history = drive(optimizer, mixed_problem, 5, 8, violations=violations)
            values = np.array([v for _, v in history if v is not None])
            feasible = values[:, 1] <= bound
            front = pareto_front(values, DIRECTIONS, feasible)
            assert len(front) >= 2 and feasible[front].all()
            fronts[name] = hv(values[front].tolist(), [0.0, bound])
            far_off[name] += int((values[8:, 1] > 2 * bound).sum())
        assert fronts["default"] > fronts["random"]
    # once the violations are modelled, proposals far beyond the bound become rarer
    assert far_off["default"] < 0.75 * far_off["random"]


def test_encoder_round_trip_and_value_counts() -> None:
    enc = Encoder(MIXED)
    params = {"op0": "pool", "op1": "pool", "op2": "none", "width": 5, "x": 0.25}
    row = enc.encode(params)
    assert enc.decode(row) == params
    features = enc.features(row[None, :])[0]
    # one-hot (3 x 4) + width + x + counts of the shared op values (4)
    assert features.shape == (3 * 4 + 2 + 4,)
    np.testing.assert_allclose(features[-4:], [0, 2 / 3, 0, 1 / 3])
    with pytest.raises(ValueError, match="op0"):
        enc.encode({**params, "op0": "dense"})


def test_gaussian_process_interpolates_and_knows_where_it_is_unsure() -> None:
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (40, 2))
    y = np.sin(3 * x[:, 0]) + x[:, 1] ** 2
    gp = GaussianProcess().fit(x, y)
    near = rng.uniform(0, 1, (50, 2))
    far = near + 5.0
    mean, sd_near = gp.predict(near)
    _, sd_far = gp.predict(far)
    assert np.abs(mean - (np.sin(3 * near[:, 0]) + near[:, 1] ** 2)).max() < 0.2
    assert sd_far.mean() > 5 * sd_near.mean()


class _RigidGP(GaussianProcess):
    """One short, noiseless kernel: it interpolates outliers and misses them when they are
    left out by more than its variance says."""

    LENGTHS = (0.5,)
    WEIGHTS = (1.0,)
    NOISES = (1e-4,)


def test_gaussian_process_calibration_widens_an_overconfident_fit_only() -> None:
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 1, (60, 2))
    test = rng.uniform(0, 1, (50, 2))
    spiky = np.sin(6 * x[:, 0])
    spiky[:5] += 3.0
    gp = _RigidGP().fit(x, spiky)
    residuals, variances = gp.loo_errors()
    overconfidence = float(np.mean(residuals**2 / variances))
    mean, sd = gp.predict(test)
    noise = gp.noise_variance
    assert gp.calibrate() == pytest.approx(overconfidence) and overconfidence > 1.2
    mean_after, sd_after = gp.predict(test)
    np.testing.assert_allclose(mean_after, mean)  # only the uncertainty changes
    np.testing.assert_allclose(sd_after, sd * math.sqrt(overconfidence))
    assert gp.noise_variance == pytest.approx(noise * overconfidence)
    residuals, variances = gp.loo_errors()
    assert np.mean(residuals**2 / variances) == pytest.approx(1.0)
    # a fit whose left-out errors are within its variance is never narrowed
    smooth = GaussianProcess().fit(x, np.sin(3 * x[:, 0]) + x[:, 1] ** 2)
    residuals, variances = smooth.loo_errors()
    assert np.mean(residuals**2 / variances) < 1
    _, sd_smooth = smooth.predict(test)
    assert smooth.calibrate() == 1.0
    np.testing.assert_allclose(smooth.predict(test)[1], sd_smooth)


class _Latency:
    """A prior block that answers many configs at once (as hwsearch.search.prior's do)."""

    def __init__(self, rows: int | None = None) -> None:
        self.rows = rows  # a broken block gives this many rows whatever it is asked

    def __call__(self, params: Mapping[str, Any]) -> np.ndarray:
        return self.many([params])[0]

    def many(self, params: list[Mapping[str, Any]]) -> np.ndarray:
        values = [[math.log(mixed_problem(p)[1])] for p in params]
        return np.array(values[: self.rows] if self.rows is not None else values)


def test_a_prior_block_answers_for_many_configs_at_once_and_must_give_a_row_each() -> None:
    def run(prior: Any) -> list[dict[str, Any]]:
        return [p for p, _ in drive(make(seed=3, initial=6, prior=prior), mixed_problem, 3, 6)]

    batched = run({"latency_ms": _Latency()})
    assert len(batched) == 18
    assert batched == run({"latency_ms": lambda p: _Latency()(p)})  # same as one by one
    assert batched != run(None)  # and the prior is used
    with pytest.raises(ValueError, match="one row per config"):
        make(prior={"latency_ms": _Latency(rows=1)}).ask(4)


def test_one_objective_finds_the_best_config_on_the_limit() -> None:
    # the most accurate configs within latency_ms <= 7 take exactly 7 ms (a convolution and
    # three skips), where the probability of feasibility is about one half; with one
    # objective such candidates stay in the pool, and 40 of the 256 configs find one
    ops = ("conv", "pool", "skip", "none")
    space = SearchSpace(tuple(ChoiceVar(f"op{i}", ops) for i in range(4)))
    cost = {"conv": 3, "pool": 2, "skip": 1, "none": 0}
    gain = {"conv": 0.2, "pool": 0.12, "skip": 0.07, "none": 0.0}

    def problem(params: Mapping[str, Any]) -> list[float]:
        chosen = [params[f"op{i}"] for i in range(4)]
        return [0.1 + sum(gain[o] for o in chosen), 1.0 + sum(cost[o] for o in chosen)]

    configs = [{f"op{i}": o for i, o in enumerate(c)} for c in itertools.product(ops, repeat=4)]
    oracle = max(a for a, lat in map(problem, configs) if lat <= 7.0)
    assert oracle == pytest.approx(0.51)
    for seed in range(3):
        opt = make_optimizer(
            "default",
            space=space,
            objectives=[Objective("accuracy", "maximize")],
            n_constraints=1,
            seed=seed,
            options={"initial": 8},
        )
        best = 0.0
        for _ in range(5):
            for s in opt.ask(8):
                accuracy, latency = problem(s.params)
                opt.tell(s.id, [accuracy], [latency - 7.0])
                if latency <= 7.0:
                    best = max(best, accuracy)
        assert best == pytest.approx(oracle), seed


def test_violation_transforms_keep_the_bound_and_order() -> None:
    from hwsearch.search._acquisition import ViolationTransform

    v = np.array([-2.5, -1.0, 0.0, 0.5, 4.0, 12.0])
    candidates = ViolationTransform.candidates(v)
    assert candidates[0].kind == "signed" and len(candidates) > 1
    for transform in candidates:
        t = transform.forward(v)
        assert np.all(np.diff(t) > 0), transform.kind
        assert float(transform.forward(np.array([0.0]))[0]) == pytest.approx(transform.threshold)
        assert np.isfinite(transform.log_jacobian(v))
    # nothing feasible yet (every violation positive): the bound stays inside every shift
    for transform in ViolationTransform.candidates(np.array([0.5, 2.0, 7.0])):
        assert transform.kind == "signed" or transform.shift > 0
        assert np.isfinite(transform.threshold)
    # an infinite violation (a metric that came out NaN) leaves only the signed log, finite
    inf = np.array([-1.0, 2.0, math.inf])
    (only,) = ViolationTransform.candidates(inf)
    assert only.kind == "signed" and np.isfinite(only.forward(inf)).all()


def test_the_likeliest_violation_transform_recovers_a_latency_bound() -> None:
    # latency = exp(linear in the features), limit 3 ms: told only latency - 3, the
    # strategy's likelihood picks log(v + s) with s near 3, which predicts feasibility on
    # new configs better than the signed log does
    from hwsearch.search._acquisition import ViolationTransform

    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 3))
    latency = np.exp(1.0 + x @ np.array([0.6, -0.4, 0.3]))
    v = latency - 3.0
    train, test = slice(0, 30), slice(30, None)
    scored = []
    for transform in ViolationTransform.candidates(v[train]):
        model = GaussianProcess().fit(x[train], transform.forward(v[train]))
        scored.append((model.log_likelihood + transform.log_jacobian(v[train]), transform, model))
    _, best, model = max(scored, key=lambda s: s[0])
    assert best.kind == "shift" and best.direction == 1.0
    assert 2.0 < best.shift < 4.5

    def accuracy(transform: ViolationTransform, model: GaussianProcess) -> float:
        mean, _ = model.predict(x[test])
        return float(np.mean((mean <= transform.threshold) == (v[test] <= 0)))

    signed = scored[0]
    assert accuracy(best, model) > accuracy(signed[1], signed[2])


def test_gaussian_process_fit_like_reuses_the_kernel() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(25, 2))
    y = np.sin(x[:, 0]) + 0.1 * x[:, 1]
    full = GaussianProcess().fit(x, y)
    like = GaussianProcess().fit_like(full, x, y)
    assert (like.length, like.weight, like.noise) == (full.length, full.weight, full.noise)
    assert like.log_likelihood == pytest.approx(full.log_likelihood)
    # a worse transform of the same target is less likely at that kernel
    scrambled = GaussianProcess().fit_like(full, x, rng.permutation(y))
    assert scrambled.log_likelihood < full.log_likelihood
