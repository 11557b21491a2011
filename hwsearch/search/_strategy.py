"""The default strategy: a surrogate of every objective, batches chosen by hypervolume gain.

For expensive evaluations (a training run, a latency measurement on a device) the
optimizer's own time is nearly free, so each batch is chosen with care:

1. **Initial design.** The first ``initial`` points are spread over the space by greedy
   maximin distance in the feature space (one-hot choices, scaled numbers, value counts of
   choice variables that share their values; prior features when given, which spreads the
   design over e.g. the latency range other devices measured).
2. **Surrogate.** Each objective and each constraint violation gets a Gaussian process
   (:class:`~hwsearch.search.surrogate.GaussianProcess`, RBF + linear kernel, hyperparameters
   and the blocks of features it uses chosen by marginal likelihood) fitted to the values on
   a transformed scale (log for positive metrics with a wide range, a Yeo-Johnson power
   transform otherwise), so that outliers such as untrainable networks do not swamp the
   fit. A violation is fitted on the transform under which the GP finds it likeliest: a
   signed log, or ``log(v + s)`` with a shift ``s`` estimated from the data -- the
   violation of ``latency_ms <= X`` is ``latency - X``, so ``s`` near ``X`` gives the log
   latency, which other devices' log-latencies predict linearly
   (:class:`~hwsearch.search._acquisition.ViolationTransform`); with one objective its
   probability of feasibility uses the calibrated variance plus the noise, as below for the
   objectives (``bench/table4.py``, 50 evaluations with the prior: 0.28 against 0.32
   percentage points of accuracy for the signed log and the GP's variance alone). Measured
   on NAS-Bench-201,
   the GP beat extra-trees and Bayesian ridge (``model: forest`` keeps the trees as an
   option).
3. **Pool.** Where the space is finite and small (``max_enumerate`` configs, e.g. the 15,625
   cells of NAS-Bench-201) the pool is the whole space less what was asked; otherwise
   ``pool_size`` random configs plus mutations and crossovers of the current front.
4. **Acquisition.** Every pool point is scored by the hypervolume improvement of its
   optimistic prediction (mean minus ``optimism`` standard deviations, per objective) over
   the front of what was evaluated, in objective space normalised by the observed ranges,
   times its probability of feasibility; once data exists, with several objectives, points
   more likely infeasible than not are not proposed (the hypervolume would credit latency
   beyond a latency bound). With one objective none is excluded: the best config within a
   limit usually lies on it, where that probability is near one half (excluding them cost
   0.61 against 0.24 percentage points of accuracy in ``bench/table4.py``, 3 seeds); once
   a feasible result exists, that probability enters as its square root, and the default
   optimism is 2 standard deviations instead of 1, which charges the infeasible neighbours
   of the best candidates less and explores more around the limit (``bench/table4.py``
   with the prior, 10 seeds, 50 evaluations: 0.23 against 0.30 percentage points). Where
   no point improves the front, the one closest to improving it wins. The standard
   deviation is that of the value an evaluation will show: the GP's variance, widened
   where its leave-one-out errors say it is overconfident
   (:meth:`~hwsearch.search.surrogate.GaussianProcess.calibrate`), plus its fitted noise
   (what the kernel does not explain: a latency measured in whole milliseconds, a config
   that departs from what other devices predict). ``acquisition: ehvi`` takes the Monte
   Carlo expected hypervolume improvement instead (slower; no better on NAS-Bench-201).
5. **Batch.** ``ask(n)`` picks greedily: after each pick its predicted mean joins the front
   ("kriging believer") and the GP variances are conditioned on it, so the next pick goes
   where the model is still unsure or the front still has a gap. Pending points (asked, not
   told) are fantasised the same way, so batches for a pool of parallel workers differ.

Configs once asked are never proposed again (failed ones included); with a finite space
exhausted, ``ask`` returns fewer suggestions than asked for (possibly none).

**Prior knowledge.** ``prior`` is an optional callable ``params -> 1-D array`` of features
known before any evaluation, or a mapping ``name -> callable`` of several such blocks: the
log-latencies of the same config measured on other devices in earlier jobs, a family's
structural description of a config (e.g. which paths of a cell are alive). A block must give
the same number of values for every config; NaN marks an unknown entry (filled with the
column mean). Pass it as ``make_optimizer(..., prior=f)`` or ``prior={"latency": f, "cell":
g}``. Each block is standardised; each GP chooses which blocks it uses by marginal
likelihood (other devices' latencies predict latency; with no structural features they
also help the accuracy GP, which is why no block is reserved for one objective: on
NAS-Bench-201 with the generic encoding, reserving them cost 0.0164 against 0.0145 of HV gap
at 50 evaluations). Features are best given on the scale where they
relate linearly to the objectives (log latencies for latency). A block with a ``many``
method (a list of params -> a 2-D array) is asked for all configs at once;
:mod:`hwsearch.search.prior` builds such blocks from a job's ``prior`` section.

Everything is deterministic for a seed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
from numpy.typing import ArrayLike, NDArray

from hwsearch.errors import SpecError
from hwsearch.search._acquisition import (
    ValueTransform,
    ViolationTransform,
    acquisition,
    add_point,
    hv_improvement,
    normal_cdf,
)
from hwsearch.search.optimizer import Optimizer, Suggestion, int_option
from hwsearch.search.surrogate import Encoder, ForestModel, GaussianProcess

FloatArray = NDArray[np.float64]
PriorFeatures = Callable[[Mapping[str, Any]], ArrayLike]

_MODELS = ("gp", "forest")
_ACQUISITIONS = ("ehvi", "optimistic")
_EHVI_SAMPLES = 32
#: with several objectives, candidates less likely feasible than this are not proposed
_MIN_FEASIBLE = 0.5
#: with one objective under constraints: the default optimism, and the power of the
#: probability of feasibility in the acquisition once a feasible result exists
#: (``bench/table4.py`` with the prior, 26 settings, 10 seeds, 50 evaluations: 0.23 against
#: 0.30 percentage points of accuracy for 1.0 and the plain probability)
_CONSTRAINED_OPTIMISM = 2.0
_CONSTRAINED_FEASIBLE_POWER = 0.5


class SurrogateStrategy(Optimizer):
    """Surrogate-assisted batch search by hypervolume improvement (see the module docstring).

    Options: ``initial`` (size of the initial design; None: ``min(20, max(8, 2 * number of
    variables))``), ``optimism`` (standard deviations of optimism in the acquisition, or a
    list, one per objective; None: 1.0, and 2.0 with one objective under constraints),
    ``model`` (``gp`` or ``forest``), ``acquisition`` (``optimistic`` or ``ehvi``),
    ``pool_size`` (sampled pool of an infinite or large space, 4096), ``max_enumerate``
    (largest finite space scored whole, 50000).
    """

    OPTIONS: ClassVar[Mapping[str, Any]] = {
        "initial": None,
        "optimism": None,
        "model": "gp",
        "acquisition": "optimistic",
        "pool_size": 4096,
        "max_enumerate": 50000,
    }
    #: make_optimizer hands this strategy the ``prior`` features it is given
    USES_PRIOR: ClassVar[bool] = True

    @classmethod
    def check_options(cls, options: Mapping[str, Any]) -> dict[str, Any]:
        merged = super().check_options(options)
        if merged["initial"] is not None:
            merged["initial"] = int_option(merged, "initial", minimum=1)
        optimism = merged["optimism"]
        if optimism is not None:  # None: resolved in __init__, where the problem is known
            values = optimism if isinstance(optimism, list | tuple) else [optimism]
            if not values or not all(
                not isinstance(v, bool) and isinstance(v, int | float) and v >= 0 for v in values
            ):
                raise SpecError(
                    "optimizer.optimism",
                    "must be a number >= 0 or a list of them (one per objective), "
                    f"got {optimism!r}",
                )
            merged["optimism"] = (
                tuple(float(v) for v in optimism)
                if isinstance(optimism, list | tuple)
                else float(optimism)
            )
        if merged["model"] not in _MODELS:
            raise SpecError(
                "optimizer.model", f"must be one of {', '.join(_MODELS)}, got {merged['model']!r}"
            )
        if merged["acquisition"] not in _ACQUISITIONS:
            raise SpecError(
                "optimizer.acquisition",
                f"must be one of {', '.join(_ACQUISITIONS)}, got {merged['acquisition']!r}",
            )
        merged["pool_size"] = int_option(merged, "pool_size", minimum=16)
        merged["max_enumerate"] = int_option(merged, "max_enumerate", minimum=0)
        return merged

    @classmethod
    def check_objectives(cls, options: Mapping[str, Any], n_objectives: int) -> None:
        optimism = options["optimism"]
        if isinstance(optimism, tuple) and len(optimism) != n_objectives:
            raise SpecError(
                "optimizer.optimism", f"has {len(optimism)} values for {n_objectives} objectives"
            )

    def __init__(
        self, *, prior: PriorFeatures | Mapping[str, PriorFeatures] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        blocks = {"prior": prior} if callable(prior) else dict(prior or {})
        for name, block in blocks.items():
            if not callable(block):
                raise TypeError(f"prior {name!r} must be a callable params -> features")
        self._prior: dict[str, PriorFeatures] = blocks
        self._rng = np.random.default_rng(self.seed)
        self._enc = Encoder(self.space)
        self._signs = np.array([o.sign for o in self.objectives])
        self.check_objectives(self.options, len(self.objectives))
        optimism = self.options["optimism"]
        self._one_constrained = len(self.objectives) == 1 and self.n_constraints > 0
        if optimism is None:
            optimism = _CONSTRAINED_OPTIMISM if self._one_constrained else 1.0
        self._optimism = np.broadcast_to(
            np.asarray(optimism, dtype=float), (len(self.objectives),)
        ).copy()
        n_vars = max(len(self.space), 1)
        initial = self.options["initial"]
        self._initial: int = initial if initial is not None else min(20, max(8, 2 * n_vars))
        self._next_id = 0
        self._asked: set[bytes] = set()
        self._pending: dict[int, FloatArray] = {}  # id -> code row
        self._codes: list[FloatArray] = []  # successful evaluations
        self._values: list[FloatArray] = []  # minimised objective values (sign * value)
        self._violations: list[FloatArray] = []
        self._failed = 0
        self._prior_stats: list[tuple[FloatArray, FloatArray]] = []
        self._n_structural: int | None = None
        self._pool: FloatArray | None = None  # the enumerated space, when finite and small
        self._pool_features: FloatArray | None = None
        self._pool_keys: list[bytes] = []
        sizes = self._enc.cardinalities()
        total = math.prod(s if s is not None else 10**9 for s in sizes) if sizes else 1
        if total <= self.options["max_enumerate"]:
            self._enumerate([int(s) for s in sizes if s is not None])

    # -- the protocol ------------------------------------------------------------------

    def min_free_workers(self, workers: int) -> int:
        """An eighth of the workers: one surrogate fit chooses several suggestions together
        (nearer the batches it chooses driven generationally) instead of one per outcome; a
        quarter searched no better and kept 512 workers of 5 s evaluations 0.87 busy
        (docs/benchmarks.md)."""
        return max(1, math.ceil(workers / 8))

    def ask(self, n: int) -> list[Suggestion]:
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n!r}")
        if n == 0:
            return []
        started = len(self._codes) + self._failed + len(self._pending)
        n_design = max(0, min(n, self._initial - started))
        if len(self._codes) < 3:
            n_design = n
        rows = self._design(n_design) if n_design else []
        if n - len(rows) > 0:
            rows += self._acquire(n - len(rows), extra_pending=rows)
        out = []
        for row in rows:
            key = row.tobytes()
            self._asked.add(key)
            self._pending[self._next_id] = row
            out.append(Suggestion(self._next_id, self._enc.decode(row)))
            self._next_id += 1
        return out

    def tell(
        self,
        suggestion_id: int,
        values: Sequence[float] | None,
        violations: Sequence[float] = (),
    ) -> None:
        row = self._pending.get(suggestion_id)
        if row is None:
            raise ValueError(f"suggestion {suggestion_id!r} is unknown or was already told")
        checked, limits = self._check_result(values, violations)
        del self._pending[suggestion_id]
        if checked is None:
            self._failed += 1
            return
        self._codes.append(row)
        self._values.append(np.asarray(checked) * self._signs)
        self._violations.append(np.asarray(limits, dtype=float))

    # -- candidates ----------------------------------------------------------------------

    def _enumerate(self, sizes: list[int]) -> None:
        grids = np.indices(sizes).reshape(len(sizes), -1).T if sizes else np.zeros((1, 0))
        codes = np.empty(grids.shape, dtype=float)
        for j in range(len(sizes)):
            values = np.array([self._enc.value_at(j, p) for p in range(sizes[j])])
            codes[:, j] = values[grids[:, j]]
        self._pool = codes
        self._pool_keys = [row.tobytes() for row in codes]
        self._pool_features = self._features(codes)

    def _candidates(self) -> tuple[FloatArray, FloatArray]:
        """Code rows and features of the points not asked yet."""
        if self._pool is not None and self._pool_features is not None:
            free = np.array([k not in self._asked for k in self._pool_keys], dtype=bool)
            return self._pool[free], self._pool_features[free]
        rows = [
            self._enc.encode(self.space.sample(self._rng)) for _ in range(self.options["pool_size"])
        ]
        rows += self._variations()
        unique: dict[bytes, FloatArray] = {}
        for row in rows:
            key = row.tobytes()
            if key not in self._asked:
                unique.setdefault(key, row)
        codes = np.array(list(unique.values())) if unique else np.empty((0, len(self.space)))
        return codes, self._features(codes)

    def _variations(self) -> list[FloatArray]:
        """Mutations (one or two variables redrawn) and uniform crossovers of front points."""
        if not self._codes:
            return []
        front = [self._codes[i] for i in self._front_indices()]
        out: list[FloatArray] = []
        for _ in range(self.options["pool_size"] // 2):
            parent = front[int(self._rng.integers(len(front)))].copy()
            if len(front) > 1 and self._rng.random() < 0.5:
                other = front[int(self._rng.integers(len(front)))]
                mask = self._rng.random(len(parent)) < 0.5
                parent[mask] = other[mask]
            sample = self._enc.encode(self.space.sample(self._rng))
            k = min(len(parent), 1 + int(self._rng.integers(2)))
            for j in self._rng.choice(len(parent), size=k, replace=False):
                parent[j] = sample[j]
            out.append(parent)
        return out

    def _features(self, codes: FloatArray) -> FloatArray:
        """The encoding of code rows, then each prior block standardised (NaN: the mean)."""
        codes = np.asarray(codes, dtype=float).reshape(-1, len(self.space))
        if not len(codes):
            return np.empty((0, 0))
        parts = [self._enc.features(codes)]
        if self._n_structural is None:
            self._n_structural = parts[0].shape[1]
        for b, (name, block) in enumerate(self._prior.items()):
            many = getattr(block, "many", None)
            if callable(many):  # a block that does many configs at once
                values = np.asarray(many([self._enc.decode(r) for r in codes]), dtype=float)
                if values.ndim != 2 or len(values) != len(codes):
                    raise ValueError(
                        f"prior {name!r} gave an array of shape {values.shape} for "
                        f"{len(codes)} configs; expected one row per config"
                    )
            else:
                rows = [
                    np.asarray(block(self._enc.decode(r)), dtype=float).reshape(-1) for r in codes
                ]
                width = len(rows[0])
                if any(len(r) != width for r in rows):
                    raise ValueError(f"prior {name!r} gave feature vectors of different lengths")
                values = np.array(rows).reshape(len(codes), width)
            if b == len(self._prior_stats):
                mean = np.nan_to_num(np.nanmean(values, axis=0))
                std = np.nan_to_num(np.nanstd(values, axis=0))
                self._prior_stats.append((mean, np.where(std > 0, std, 1.0)))
            mean, std = self._prior_stats[b]
            if values.shape[1] != len(mean):
                raise ValueError(
                    f"prior {name!r} gave {values.shape[1]} features for a config, "
                    f"{len(mean)} for others"
                )
            parts.append(np.nan_to_num((values - mean) / std, nan=0.0))
        return np.concatenate(parts, axis=1)

    def _feature_sets(self) -> list[list[list[int]]]:
        """Blocks of columns the GP may use: the encoding, with each subset of prior blocks."""
        assert self._n_structural is not None
        blocks = [list(range(self._n_structural))]
        start = self._n_structural
        for mean, _ in self._prior_stats:
            blocks.append(list(range(start, start + len(mean))))
            start += len(mean)
        extra = blocks[1:]
        if len(extra) > 3:
            return [blocks[:1], blocks]
        return [
            blocks[:1] + [extra[i] for i in range(len(extra)) if mask >> i & 1]
            for mask in range(2 ** len(extra))
        ]

    # -- initial design ------------------------------------------------------------------

    def _design(self, n: int) -> list[FloatArray]:
        """``n`` points by greedy maximin distance to everything asked before."""
        codes, feats = self._candidates()
        if len(codes) == 0:
            return []
        take = min(len(codes), 4096)
        subset = self._rng.choice(len(codes), size=take, replace=False)
        codes, feats = codes[subset], feats[subset]
        scaled = feats / np.sqrt(feats.shape[1])
        asked = [*self._codes, *self._pending.values()]
        if asked:
            ref = self._features(np.array(asked)) / np.sqrt(feats.shape[1])
            dist = ((scaled[:, None, :] - ref[None, :, :]) ** 2).sum(-1).min(1)
        else:
            dist = np.full(len(codes), np.inf)
        out: list[FloatArray] = []
        first = not asked
        for _ in range(min(n, len(codes))):
            i = int(self._rng.integers(len(codes))) if first else int(np.argmax(dist))
            first = False
            out.append(codes[i])
            dist = np.minimum(dist, ((scaled - scaled[i]) ** 2).sum(1))
            dist[i] = -1.0
        return out

    # -- acquisition ---------------------------------------------------------------------

    def _front_indices(self) -> list[int]:
        values = np.array(self._values)
        feasible = [i for i, v in enumerate(self._violations) if not np.any(v > 0)]
        if not feasible:
            return list(range(len(values)))
        pts = values[feasible]
        keep = [
            feasible[a]
            for a in range(len(pts))
            if not np.any(np.all(pts <= pts[a], axis=1) & np.any(pts < pts[a], axis=1))
        ]
        return keep

    def _acquire(self, n: int, extra_pending: Sequence[FloatArray]) -> list[FloatArray]:
        codes, feats = self._candidates()
        if len(codes) == 0:
            return []
        x_obs = self._features(np.array(self._codes))
        y_obs = np.array(self._values)
        m = y_obs.shape[1]
        pending = [*self._pending.values(), *extra_pending]
        x_all = np.concatenate([feats, self._features(np.array(pending))]) if pending else feats
        n_pool = len(feats)
        beta = self._optimism

        models = []
        means = np.empty((len(x_all), m))
        variances = np.empty((len(x_all), m))
        vs: list[FloatArray | None] = []
        noise = np.zeros(m)  # added to the variance of what an evaluation will show
        transforms = []
        for j in range(m):
            transform = ValueTransform(y_obs[:, j])
            model = self._model().fit(x_obs, transform.forward(y_obs[:, j]))
            if isinstance(model, GaussianProcess):
                model.calibrate()
                mu, var, v = model.predict_full(x_all)
                noise[j] = model.noise_variance
                vs.append(v)
            else:
                mu, sd = model.predict(x_all)
                var = sd**2
                vs.append(None)
            models.append(model)
            transforms.append(transform)
            means[:, j], variances[:, j] = mu, var

        feasible_prob = self._feasibility(x_obs, x_all, widen=m == 1)
        # with one objective the best feasible config usually lies on the limit: its
        # infeasible neighbours are charged less than by the plain probability
        acq_prob = feasible_prob
        if self._one_constrained and any(not np.any(v > 0) for v in self._violations):
            acq_prob = feasible_prob**_CONSTRAINED_FEASIBLE_POWER

        # objective space normalised by the observed ranges; reference point 10% beyond
        low, high = y_obs.min(0), y_obs.max(0)
        span = np.where(high > low, high - low, 1.0)
        ref = np.full(m, 1.1)
        front = (y_obs[self._front_indices()] - low) / span
        if self.n_constraints and not any(not np.any(v > 0) for v in self._violations):
            front = np.empty((0, m))

        def believed(i: int) -> FloatArray:
            return np.array([transforms[j].inverse(means[i, j]) for j in range(m)])

        # pending points join the front at their predicted means
        for i in range(n_pool, len(x_all)):
            if feasible_prob[i] >= 0.5:
                front = add_point(front, (believed(i) - low) / span)

        chosen_rows: list[FloatArray] = []
        chosen_idx: list[int] = list(range(n_pool, len(x_all)))
        var_now = variances.copy()
        u_list: list[list[FloatArray]] = [[] for _ in range(m)]
        self._condition(models, vs, x_all, chosen_idx, var_now, u_list, new=chosen_idx)
        available = np.ones(n_pool, dtype=bool)
        if self.n_constraints and len(self._codes) >= 3 and m > 1:
            available &= feasible_prob[:n_pool] >= _MIN_FEASIBLE
            if not available.any():
                available[:] = True
        ehvi = self.options["acquisition"] == "ehvi"
        draws = self._rng.standard_normal((_EHVI_SAMPLES, n_pool, m)) if ehvi else None
        for _ in range(min(n, n_pool)):
            sd = np.sqrt(np.maximum(var_now[:n_pool], 0.0) + noise)
            optimistic = np.empty((n_pool, m))
            for j in range(m):
                optimistic[:, j] = transforms[j].inverse(means[:n_pool, j] - beta[j] * sd[:, j])
            pts = (optimistic - low) / span
            score = acquisition(pts, front, ref, acq_prob[:n_pool])
            score[~available] = -np.inf
            if draws is not None:
                cand = np.flatnonzero(score > 0)
                if len(cand):
                    total = np.zeros(len(cand))
                    for d in draws:
                        sample = np.empty((len(cand), m))
                        for j in range(m):
                            t = means[cand, j] + sd[cand, j] * d[cand, j]
                            sample[:, j] = transforms[j].inverse(t)
                        total += hv_improvement((sample - low) / span, front, ref)
                    score[cand] = total / len(draws) * acq_prob[cand] + 1e-12
            i = int(np.argmax(score))
            available[i] = False
            chosen_rows.append(codes[i])
            if feasible_prob[i] >= 0.5:
                front = add_point(front, (believed(i) - low) / span)
            self._condition(models, vs, x_all, chosen_idx, var_now, u_list, new=[i])
            chosen_idx.append(i)
        return chosen_rows

    def _feasibility(
        self, x_obs: FloatArray, x_all: FloatArray, *, widen: bool = False
    ) -> FloatArray:
        """Probability that each row of ``x_all`` meets every constraint, from a model of
        each violation fitted on the transform (:class:`ViolationTransform`) under which the
        GP finds the observed violations most likely. With ``widen`` (one objective) its
        variance is that of the value an evaluation will show, as for the objectives:
        calibrated by the leave-one-out errors, plus the fitted noise (a latency measured in
        whole milliseconds). With several objectives the probability decides which
        candidates are excluded, and the wider one let more far-off candidates through
        (``test_constraints_shape_the_front_and_the_proposals``)."""
        prob = np.ones(len(x_all))
        if not self.n_constraints:
            return prob
        viol = np.array(self._violations)
        for c in range(self.n_constraints):
            v = viol[:, c]
            candidates = ViolationTransform.candidates(v)
            if self.options["model"] != "gp":
                candidates = candidates[:1]
            # each transform scored at the kernel the first (the signed log) chose; the
            # winner fitted in full
            first = self._model().fit(x_obs, candidates[0].forward(v))
            best: tuple[float, ViolationTransform] | None = None
            for transform in candidates:
                t = transform.forward(v)
                if transform is candidates[0] or not isinstance(first, GaussianProcess):
                    model = first
                else:
                    model = GaussianProcess().fit_like(first, x_obs, t)
                score = getattr(model, "log_likelihood", 0.0) + transform.log_jacobian(v)
                if best is None or score > best[0]:
                    best = (score, transform)
            assert best is not None
            transform = best[1]
            if transform is not candidates[0]:
                first = self._model().fit(x_obs, transform.forward(v))
            model = first
            if widen and isinstance(model, GaussianProcess):
                model.calibrate()
                mu_c, var_c, _ = model.predict_full(x_all)
                sd_c = np.sqrt(var_c + model.noise_variance)
            else:
                mu_c, sd_c = model.predict(x_all)
            prob *= normal_cdf((transform.threshold - mu_c) / np.maximum(sd_c, 1e-9))
        return prob

    def _model(self) -> GaussianProcess | ForestModel:
        if self.options["model"] == "forest":
            return ForestModel(seed=self.seed)
        return GaussianProcess(self._feature_sets())

    @staticmethod
    def _condition(
        models: list[Any],
        vs: list[FloatArray | None],
        x_all: FloatArray,
        chosen: list[int],
        var_now: FloatArray,
        u_list: list[list[FloatArray]],
        new: list[int],
    ) -> None:
        """Condition each GP's variances on the ``new`` points (their values unknown)."""
        for j, model in enumerate(models):
            v = vs[j]
            if v is None or not isinstance(model, GaussianProcess):
                continue
            for i in new:
                cov = model.posterior_cov(x_all, v, x_all[i : i + 1], v[:, i : i + 1])[:, 0]
                for u in u_list[j]:
                    cov = cov - u * u[i]
                denom = var_now[i, j] + model.noise * model._s2 * model._scale**2
                if denom <= 0:
                    continue
                u_new = cov / math.sqrt(denom)
                u_list[j].append(u_new)
                var_now[:, j] = np.maximum(var_now[:, j] - u_new**2, 0.0)


__all__ = ["PriorFeatures", "SurrogateStrategy"]
