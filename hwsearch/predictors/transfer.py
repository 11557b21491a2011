"""Transfer to a new device: predict its latency from other devices' latencies of the same
candidates, after a handful of measurements on it.

**Source models.** On a log scale, latencies on different devices of the same candidates
are close to affine in each other (the same operations dominate), but which source device
is the right one differs per target (a phone is like another phone, a GPU at batch 256 like
another at batch 256). :class:`TransferPredictor` fits, by least squares on the target
samples, ``log y = a + b log s_j`` for every source device ``j`` and ``log y = a + b log s_j
+ c log s_k`` for every pair, optionally plus structural covariates (whether a cell is dead
code, which some compilers remove), and averages their predictions with weights
``exp(temperature * BIC score)`` (Bayesian model averaging, tempered: with ten samples the
plain posterior is overconfident and piles on one pair).

**Count models.** A device unlike every source (another cost per operation, or a compiler
that removes operations whose result is unused) is better described by its own additive
cost model on a linear scale, ``y = c_0 + sum_k c_k x_k``, where ``x`` counts the
operations of each kind (all of them, or only those that survive dead-code elimination:
each set of counts given is one candidate model). These are fitted by least squares on
relative errors, on the samples whose covariates take their most common value; other
covariate values get a multiplicative factor from their own samples.

**Choice.** The source mixture and the count models are weighted by their exact
leave-one-out error on the target samples, ``exp(temperature * -n/2 log MSE_loo)``; the
spread between them plus each model's predictive variance is the uncertainty. The point
prediction is then moved, from 20 samples on, by one common factor so that the window of
``±tolerance`` around it holds as many leave-one-out residuals as it can (latency noise is
skewed: the centre of the densest window beats the median for the share of predictions
within ±10%; ranks do not change). With more samples (``residual_min_samples``) a ridge
regression on the candidates' encodings and the source log-latencies may correct what the
candidates miss on held-out samples (kept only where its leave-one-out error says so).

**Latent factors.** The source devices' log-latencies of all candidates are close to a
low-rank matrix, ``log S = mu + U E^T``: ``U`` the candidates' factors, each device a row
of loadings ``E`` (a device embedding, as HELP learns one, here by SVD). Given the factors
(:func:`source_factors`), the predictor also fits the target's loadings by Bayesian linear
regression with the source devices' loadings as prior (mean and covariance: a new device is
one more draw from those seen), and below ``factor_max_samples`` (20) samples blends its
log prediction in with weight ``factor_weight`` (0.25). It sees all sources at once where
the mixture sees two, and with ten samples it ranks a little better (more in
``docs/benchmarks.md``); from 20 samples on the blend cost the share within ±10%, so it
stops there. Weighted by its leave-one-out error instead of a fixed weight, it did worse.

**Reference set.** :func:`reference_set` says which candidates to measure first: the
source log-latencies are standardised and projected on their two main principal components
(overall speed, and how convolutions fare against memory-bound operations); the first
``design_size`` picks cover that plane by greedy k-center (maximin) from a random start, so
the affine fits see the whole range; further picks are uniformly random so that the
residual model sees typical candidates too (and, given ``strata``, cover every label).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from hwsearch.predictors.models import RidgePredictor

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.intp]


def _log_positive(values: ArrayLike, name: str) -> FloatArray:
    arr = np.asarray(values, dtype=float)
    if not np.isfinite(arr).all() or (arr <= 0).any():
        raise ValueError(f"{name} must be positive and finite (latencies in ms)")
    return np.log(arr)


@dataclass(frozen=True)
class _CountModel:
    """``y = coef @ [1, counts]`` on a linear scale, times ``exp(offset @ (cov - usual))``."""

    name: str
    coef: FloatArray
    inverse: FloatArray  # of the relative-error normal matrix
    sigma2: float  # variance of the relative (about log) error
    floor: float
    offset: FloatArray

    def predict_log(
        self, counts: FloatArray, covariates: FloatArray, usual: FloatArray
    ) -> tuple[FloatArray, FloatArray]:
        design = np.c_[np.ones(len(counts)), counts]
        linear = np.maximum(design @ self.coef, self.floor)
        scaled = design / linear[:, None]
        lever = np.einsum("ij,jk,ik->i", scaled, self.inverse, scaled)
        mean = np.log(linear) + (covariates - usual) @ self.offset
        return mean, np.sqrt(self.sigma2 * (1.0 + lever))


@dataclass(frozen=True)
class _FactorModel:
    """``log y = coef @ [1, factors]``, Bayesian linear regression."""

    coef: FloatArray
    posterior: FloatArray  # covariance of coef, over sigma2
    sigma2: float

    def predict_log(self, factors: FloatArray) -> tuple[FloatArray, FloatArray]:
        design = np.c_[np.ones(len(factors)), factors]
        lever = np.einsum("ij,jk,ik->i", design, self.posterior, design)
        return design @ self.coef, np.sqrt(self.sigma2 * (1.0 + lever))


def _densest_shift(residuals: FloatArray, tolerance: float, softness: float = 0.02) -> float:
    """The ``d`` that puts the most ``residuals`` (log of truth over prediction) inside the
    ``±tolerance`` window of ``prediction * exp(d)``, window edges smoothed by ``softness``."""
    low, high = -math.log1p(tolerance), -math.log1p(-tolerance)
    start = max(float(residuals.min()) - high, -0.5)  # never more than a factor e**0.5
    grid = np.arange(start, min(float(residuals.max()) - low, 0.5), 0.002)
    gap = residuals[None, :] - grid[:, None]
    inside = (1.0 + np.tanh((gap - low) / (2 * softness))) * (
        1.0 + np.tanh((high - gap) / (2 * softness))
    )  # a product of two logistic steps, times 4
    return float(grid[int(np.argmax(inside.sum(axis=1)))]) if len(grid) else 0.0


class TransferPredictor:
    """Latency on a target from source devices' latencies (see the module docstring).

    ``fit(source, y, features=None)``: ``source`` is ``(n, m)`` latencies of the ``n``
    measured candidates on ``m`` source devices, ``y`` their latencies on the target,
    ``features`` optional encodings ``(n, d)``, ``counts`` optional named count matrices
    ``{name: (n, c)}`` for the count models. ``predict(source, features=None, ...)`` returns
    the predicted latency and its standard deviation, both in the units of ``y``.
    ``tolerance=None`` predicts the median of the log-normal instead of the centre of the
    densest ``±tolerance`` window.
    """

    RESIDUAL_ALPHAS = (0.1, 1.0, 10.0, 100.0, 1e3, 1e4)
    SOURCES = "sources"
    SHIFT_MIN_SAMPLES = 20  # below, where the densest window of residuals falls is chance

    def __init__(
        self,
        *,
        pairs: bool = True,
        residual_min_samples: int = 30,
        temperature: float = 0.5,
        tolerance: float | None = 0.1,
        pruned_max_samples: int = 30,
        factor_weight: float = 0.25,
        factor_max_samples: int = 20,
    ) -> None:
        if residual_min_samples < 3:
            raise ValueError(f"residual_min_samples must be at least 3, got {residual_min_samples}")
        if not 0 < temperature <= 1:
            raise ValueError(f"temperature must be in (0, 1], got {temperature!r}")
        if tolerance is not None and not 0 < tolerance < 1:
            raise ValueError(f"tolerance must be in (0, 1) or None, got {tolerance!r}")
        self.temperature = temperature
        self.pairs = pairs
        self.residual_min_samples = residual_min_samples
        self.tolerance = tolerance
        self.pruned_max_samples = pruned_max_samples
        if not 0 <= factor_weight <= 1:
            raise ValueError(f"factor_weight must be in [0, 1], got {factor_weight!r}")
        self.factor_weight = factor_weight
        self.factor_max_samples = factor_max_samples

    def fit(
        self,
        source: ArrayLike,
        y: ArrayLike,
        features: ArrayLike | None = None,
        covariates: ArrayLike | None = None,
        counts: Mapping[str, ArrayLike] | None = None,
        pruned: ArrayLike | None = None,
        factors: ArrayLike | None = None,
        factor_prior: tuple[ArrayLike, ArrayLike] | None = None,
    ) -> TransferPredictor:
        """``covariates``: optional structural columns ``(n, c)`` that every affine model
        may add (e.g. whether a cell's output is connected to its input: a graph compiler
        removes a dead cell on some devices only); each model is tried with and without
        them, and the information criterion decides. ``counts``: optional named matrices
        of operation counts, one count model each (module docstring). ``pruned``: optional
        extra source columns ``(n, p)`` (:func:`pruned_sources`), joined to the sources
        below ``pruned_max_samples`` samples, where the count models' coefficients are not
        yet well fixed by the target's own samples; ``predict`` then needs them too.
        ``factors``, ``factor_prior``: the candidates' latent factors (rows of the samples)
        and the prior over a device's loadings, both from :func:`source_factors`; below
        ``factor_max_samples`` samples the latent-factor model's log prediction is blended
        in with weight ``factor_weight`` (module docstring); ``predict`` then needs the
        factors of the candidates it predicts."""
        logs = _log_positive(source, "source")
        logy = _log_positive(y, "y").ravel()
        if logs.ndim != 2 or len(logs) != len(logy):
            raise ValueError(
                f"source must have one row per target value ({len(logy)}), got {logs.shape}"
            )
        n, m = logs.shape
        if n < 3:
            raise ValueError(f"need at least 3 target measurements, got {n}")
        if m < 1:
            raise ValueError("need at least one source device")
        cov_train = self._covariates(covariates, n)
        count_train = self._counts(counts, n)
        self._pruned_columns = 0
        if pruned is not None:
            extra = _log_positive(pruned, "pruned")
            extra = extra.reshape(n, -1) if extra.ndim == 1 else extra
            if extra.ndim != 2 or len(extra) != n:
                raise ValueError(f"pruned must have {n} rows, got shape {extra.shape}")
            if n < self.pruned_max_samples:  # until the count models are well fixed
                logs = np.c_[logs, extra]
                self._pruned_columns = extra.shape[1]
        n, m = logs.shape
        self._n_covariates = cov_train.shape[1]
        self._count_columns = {name: c.shape[1] for name, c in count_train.items()}
        varying = cov_train.shape[1] > 0 and all(
            n - np.unique(col, return_counts=True)[1].max() >= 2 for col in cov_train.T
        )  # a covariate seen off its usual value only once would just memorise that point
        max_size = 2 if self.pairs and n >= 5 and m >= 2 else 1
        combos: list[tuple[int, ...]] = []
        for size in range(1, max_size + 1):
            combos.extend(itertools.combinations(range(m), size))
        self._models: list[tuple[tuple[int, ...], bool, FloatArray, FloatArray, float]] = []
        scores = []
        loo = []
        for combo in combos:
            for with_cov in (False, True) if varying else (False,):
                design = self._design(logs, cov_train, combo, with_cov)
                p = design.shape[1]
                if p >= n:
                    continue
                coef, *_ = np.linalg.lstsq(design, logy, rcond=None)
                resid = logy - design @ coef
                rss = float(resid @ resid)
                scores.append(-0.5 * n * math.log(rss / n + 1e-8) - 0.5 * p * math.log(n))
                cov = np.asarray(np.linalg.pinv(design.T @ design), float)
                lever = np.einsum("ij,jk,ik->i", design, cov, design)
                loo.append(resid / np.maximum(1.0 - lever, 0.01))
                sigma2 = rss / (n - p) + 1e-8
                self._models.append((combo, with_cov, np.asarray(coef, float), cov, sigma2))
        s = np.array(scores)
        w = np.exp(self.temperature * (s - s.max()))
        self.weights_ = w / w.sum()
        self.n_sources = m - self._pruned_columns

        # the rows whose covariates take their most common value fit the count models and
        # are the ones every candidate is judged on
        self._usual = self._usual_covariates(cov_train)
        usual_rows = (cov_train == self._usual).all(axis=1)
        self._count_models = self._fit_counts(
            count_train, np.exp(logy), cov_train, usual_rows, varying
        )
        loo_logs = [self.weights_ @ np.array(loo)]
        loo_logs.extend(loo_c for _, loo_c in self._count_models)
        mse = np.array([np.mean(r[usual_rows] ** 2) for r in loo_logs])
        score = -0.5 * usual_rows.sum() * np.log(mse + 1e-12)
        w = np.exp(self.temperature * (score - score.max()))
        self.candidate_weights_ = w / w.sum()
        combined_loo = self.candidate_weights_ @ np.array(loo_logs)

        self._residual: RidgePredictor | None = None
        if features is not None and n >= self.residual_min_samples:
            feats = np.asarray(features, dtype=float)
            if feats.ndim != 2 or feats.shape[0] != n:
                raise ValueError(f"features must have {n} rows, got shape {feats.shape}")
            # what the candidates miss on samples they were not fitted on (their in-sample
            # residuals are smaller than their errors elsewhere)
            gap = combined_loo
            residual = RidgePredictor(alphas=self.RESIDUAL_ALPHAS).fit(np.c_[logs, feats], gap)
            # keep the correction only where it predicts held-out samples better than none
            null_error = float(np.mean(((gap - gap.mean()) * n / (n - 1)) ** 2))
            if residual.loo_error_ < null_error:
                self._residual = residual
                combined_loo = combined_loo - residual.predict(np.c_[logs, feats])[0]
        self._factor_model: _FactorModel | None = None
        if factors is not None:
            if factor_prior is None:
                raise ValueError("factors need factor_prior (source_factors gives both)")
            if self.factor_weight > 0 and n < self.factor_max_samples:
                self._factor_model = self._fit_factors(
                    np.asarray(factors, float), logy, factor_prior
                )
        self.shift_ = 0.0
        if self.tolerance is not None and usual_rows.sum() >= self.SHIFT_MIN_SAMPLES:
            self.shift_ = _densest_shift(combined_loo[usual_rows], self.tolerance)
        return self

    FACTOR_NOISE = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1)  # log-latency variances

    def _fit_factors(
        self, factors: FloatArray, logy: FloatArray, prior: tuple[ArrayLike, ArrayLike]
    ) -> _FactorModel:
        """Bayesian linear regression of the log-latency on the latent factors, the loadings'
        prior from the source devices, the intercept nearly free, the noise variance the
        one of ``FACTOR_NOISE`` of highest marginal likelihood. No covariates: where a
        device removes dead cells, the pruned columns among the factors say so, and a free
        covariate term fitted on ten samples costs more on the devices that do not."""
        factors = factors.reshape(len(logy), -1) if factors.ndim == 1 else factors
        mean = np.asarray(prior[0], float).ravel()
        cov = np.atleast_2d(np.asarray(prior[1], float))
        r = factors.shape[1]
        if factors.shape[0] != len(logy) or mean.shape != (r,) or cov.shape != (r, r):
            raise ValueError(
                f"factors must be ({len(logy)}, r) with a prior mean (r,) and covariance "
                f"(r, r); got {factors.shape}, {mean.shape}, {cov.shape}"
            )
        n = len(logy)
        # the intercept's prior variance is 100 (a factor e**10 either way: flat)
        base = factors @ cov @ factors.T + 100.0
        gap = logy - factors @ mean
        evidence = []
        for sigma2 in self.FACTOR_NOISE:
            kernel = base + sigma2 * np.eye(n)
            fit_term = float(gap @ np.linalg.solve(kernel, gap))
            evidence.append(-0.5 * fit_term - 0.5 * float(np.linalg.slogdet(kernel)[1]))
        sigma2 = self.FACTOR_NOISE[int(np.argmax(evidence))]
        design = np.c_[np.ones(n), factors]
        precision = np.zeros((r + 1, r + 1))
        precision[1:, 1:] = np.linalg.pinv(cov)
        posterior = np.asarray(np.linalg.pinv(design.T @ design + sigma2 * precision), float)
        coef = posterior @ (design.T @ logy + sigma2 * precision @ np.r_[0.0, mean])
        return _FactorModel(np.asarray(coef, float), posterior, sigma2)

    @staticmethod
    def _usual_covariates(covariates: FloatArray) -> FloatArray:
        if covariates.shape[1] == 0:
            return np.zeros(0)
        rows, sizes = np.unique(covariates, axis=0, return_counts=True)
        return np.asarray(rows[int(np.argmax(sizes))], float)

    def _fit_counts(
        self,
        counts: dict[str, FloatArray],
        y: FloatArray,
        covariates: FloatArray,
        usual_rows: NDArray[np.bool_],
        varying: bool,
    ) -> list[tuple[_CountModel, FloatArray]]:
        """One count model per count matrix, with its leave-one-out log residuals (zero on
        the unusual rows): least squares on relative errors ``(y - fit) / y``, which keeps
        a fast candidate's error as important as a slow one's."""
        fitted = []
        k = int(usual_rows.sum())
        for name, matrix in counts.items():
            design = np.c_[np.ones(len(y)), matrix][usual_rows]
            p = design.shape[1]
            if k < 2 * p:  # too few samples to tell this model's error from luck
                continue
            scaled = design / y[usual_rows, None]
            inverse = np.asarray(np.linalg.pinv(scaled.T @ scaled), float)
            coef = inverse @ scaled.T @ np.ones(k)
            relative = 1.0 - scaled @ coef
            lever = np.einsum("ij,jk,ik->i", scaled, inverse, scaled)
            floor = 0.25 * float(y[usual_rows].min())  # a line can turn negative off range
            fit_all = np.maximum(np.c_[np.ones(len(y)), matrix] @ coef, floor)
            offset = np.zeros(covariates.shape[1])
            if varying:
                gap = np.log(y / fit_all)[~usual_rows]
                offset, *_ = np.linalg.lstsq(covariates[~usual_rows] - self._usual, gap, rcond=None)
            loo_fit = y[usual_rows] * (1.0 - relative / np.maximum(1.0 - lever, 0.01))
            loo = np.zeros(len(y))
            loo[usual_rows] = np.log(y[usual_rows] / np.maximum(loo_fit, floor))
            sigma2 = float(relative @ relative) / max(k - p, 1) + 1e-8
            model = _CountModel(name, np.asarray(coef, float), inverse, sigma2, floor, offset)
            fitted.append((model, loo))
        return fitted

    @staticmethod
    def _covariates(covariates: ArrayLike | None, n: int) -> FloatArray:
        if covariates is None:
            return np.zeros((n, 0))
        arr = np.asarray(covariates, dtype=float)
        arr = arr.reshape(n, -1) if arr.ndim == 1 else arr
        if arr.ndim != 2 or arr.shape[0] != n or not np.isfinite(arr).all():
            raise ValueError(f"covariates must be finite with {n} rows, got shape {arr.shape}")
        return arr

    @staticmethod
    def _counts(counts: Mapping[str, ArrayLike] | None, n: int) -> dict[str, FloatArray]:
        out = {}
        for name, matrix in (counts or {}).items():
            arr = np.asarray(matrix, dtype=float)
            arr = arr.reshape(n, -1) if arr.ndim == 1 else arr
            if arr.ndim != 2 or arr.shape[0] != n or not np.isfinite(arr).all():
                raise ValueError(
                    f"counts[{name!r}] must be finite with {n} rows, got shape {arr.shape}"
                )
            out[name] = arr
        return out

    @staticmethod
    def _design(
        logs: FloatArray, covariates: FloatArray, combo: tuple[int, ...], with_cov: bool
    ) -> FloatArray:
        blocks = [logs[:, combo], np.ones((len(logs), 1))]
        if with_cov:
            blocks.append(covariates)
        return np.concatenate(blocks, axis=1)

    def _mixture(self, logs: FloatArray, covariates: FloatArray) -> tuple[FloatArray, FloatArray]:
        first = np.zeros(len(logs))
        second = np.zeros(len(logs))
        keep = self.weights_ >= 1e-6
        for weight, (combo, with_cov, coef, cov, sigma2) in zip(
            self.weights_[keep],
            [m for m, k in zip(self._models, keep, strict=True) if k],
            strict=True,
        ):
            design = self._design(logs, covariates, combo, with_cov)
            mean = design @ coef
            var = sigma2 * (1.0 + np.einsum("ij,jk,ik->i", design, cov, design))
            first += weight * mean
            second += weight * (var + mean * mean)
        total = self.weights_[keep].sum()
        first /= total
        second /= total
        return first, np.sqrt(np.maximum(second - first * first, 0.0))

    def _combined(
        self, logs: FloatArray, covariates: FloatArray, counts: dict[str, FloatArray]
    ) -> tuple[FloatArray, FloatArray]:
        """The candidates' weighted log mean and the standard deviation of their mixture."""
        means_stds = [self._mixture(logs, covariates)]
        means_stds.extend(
            model.predict_log(counts[model.name], covariates, self._usual)
            for model, _ in self._count_models
        )
        first = np.zeros(len(logs))
        second = np.zeros(len(logs))
        for weight, (mean, std) in zip(self.candidate_weights_, means_stds, strict=True):
            first += weight * mean
            second += weight * (std * std + mean * mean)
        return first, np.sqrt(np.maximum(second - first * first, 0.0))

    def predict_log(
        self,
        source: ArrayLike,
        features: ArrayLike | None = None,
        covariates: ArrayLike | None = None,
        counts: Mapping[str, ArrayLike] | None = None,
        pruned: ArrayLike | None = None,
        factors: ArrayLike | None = None,
    ) -> tuple[FloatArray, FloatArray]:
        """Mean and standard deviation of the log-latency."""
        logs = _log_positive(source, "source")
        if logs.ndim != 2 or logs.shape[1] != self.n_sources:
            raise ValueError(f"source must have shape (n, {self.n_sources}), got {logs.shape}")
        if self._pruned_columns:
            if pruned is None:
                raise ValueError("this predictor was fitted with pruned sources; pass them")
            extra = _log_positive(pruned, "pruned").reshape(len(logs), -1)
            if extra.shape[1] != self._pruned_columns:
                raise ValueError(
                    f"fitted with {self._pruned_columns} pruned column(s), got {extra.shape[1]}"
                )
            logs = np.c_[logs, extra]
        cov = self._covariates(covariates, len(logs))
        if cov.shape[1] != self._n_covariates:
            raise ValueError(
                f"fitted with {self._n_covariates} covariate column(s), got {cov.shape[1]}"
            )
        count_arrays = self._counts(counts, len(logs))
        given = {name: c.shape[1] for name, c in count_arrays.items()}
        if given != self._count_columns:
            raise ValueError(f"fitted with counts {self._count_columns}, got {given}")
        mean, std = self._combined(logs, cov, count_arrays)
        if self._factor_model is not None:
            if factors is None:
                raise ValueError("this predictor was fitted with factors; pass them")
            f = np.asarray(factors, dtype=float)
            f = f.reshape(len(logs), -1) if f.ndim == 1 else f
            if f.shape != (len(logs), len(self._factor_model.coef) - 1):
                raise ValueError(
                    f"factors must have shape ({len(logs)}, {len(self._factor_model.coef) - 1}),"
                    f" got {f.shape}"
                )
            f_mean, f_std = self._factor_model.predict_log(f)
            w = self.factor_weight
            second = (1 - w) * (std * std + mean * mean) + w * (f_std * f_std + f_mean * f_mean)
            mean = (1 - w) * mean + w * f_mean
            std = np.sqrt(np.maximum(second - mean * mean, 0.0))
        if self._residual is not None:
            if features is None:
                raise ValueError("this predictor was fitted with features; pass them")
            correction, _ = self._residual.predict(np.c_[logs, np.asarray(features, float)])
            mean = mean + correction
        return mean + self.shift_, std

    def predict(
        self,
        source: ArrayLike,
        features: ArrayLike | None = None,
        covariates: ArrayLike | None = None,
        counts: Mapping[str, ArrayLike] | None = None,
        pruned: ArrayLike | None = None,
        factors: ArrayLike | None = None,
    ) -> tuple[FloatArray, FloatArray]:
        mean, std = self.predict_log(source, features, covariates, counts, pruned, factors)
        median = np.exp(mean)
        return median, median * std


def pruned_sources(source: ArrayLike, counts: ArrayLike, used_counts: ArrayLike) -> FloatArray:
    """What each source device would measure if its compiler removed the operations whose
    result the output does not use (as pixel3's does, which no source device resembles):
    the device's own additive cost model ``y = c_0 + c @ counts``, fitted by least squares
    on relative errors over all the candidates given (``source`` ``(n, m)``, ``counts``
    ``(n, c)`` of all operations), evaluated on ``used_counts`` (:func:`nb201_op_counts`
    with :func:`nb201_used_edges`); floored at a quarter of the device's fastest latency.
    A device's cost per operation, known from its full table, stands in for the target's
    until there are samples enough to fit the target's own."""
    values = np.exp(_log_positive(source, "source"))
    if values.ndim != 2:
        raise ValueError(f"source must be a 2-D matrix, got shape {values.shape}")
    n = len(values)
    design = np.c_[np.ones(n), np.asarray(counts, dtype=float)]
    used = np.c_[np.ones(n), np.asarray(used_counts, dtype=float)]
    if design.shape != used.shape or len(design) != n:
        raise ValueError(
            f"counts and used_counts must both have {n} rows and the same columns, got "
            f"{design.shape[0]}x{design.shape[1] - 1} and {used.shape[0]}x{used.shape[1] - 1}"
        )
    out = np.empty_like(values)
    for j in range(values.shape[1]):
        y = values[:, j]
        coef, *_ = np.linalg.lstsq(design / y[:, None], np.ones(n), rcond=None)
        out[:, j] = np.maximum(used @ coef, 0.25 * float(y.min()))
    return out


def source_factors(
    source: ArrayLike, pruned: ArrayLike | None = None
) -> tuple[FloatArray, tuple[FloatArray, FloatArray]]:
    """The candidates' latent factors and a prior over a device's loadings on them, from the
    source devices' latencies of *all* candidates, ``(n, m)`` (and optional pruned columns,
    :func:`pruned_sources`, taken as further devices): ``log S = mu + U E^T`` by singular
    value decomposition of the centred log-latencies. Returns ``U`` ``(n, r)`` and
    ``(mean, covariance)`` of the devices' loadings (rows of ``E``): a new device is taken
    as one more draw from the devices seen, as HELP's device embedding does, without the
    network. Pass ``U[samples]`` and the prior to :meth:`TransferPredictor.fit`, ``U`` of
    the candidates to predict to ``predict``."""
    logs = _log_positive(source, "source")
    if logs.ndim != 2 or logs.shape[1] < 2:
        raise ValueError(f"source must be a 2-D matrix of two devices or more, got {logs.shape}")
    if pruned is not None:
        extra = _log_positive(pruned, "pruned")
        if len(extra) != len(logs):
            raise ValueError(f"pruned must have {len(logs)} rows, got {len(extra)}")
        logs = np.c_[logs, extra.reshape(len(logs), -1)]
    u, s, vt = np.linalg.svd(logs - logs.mean(0), full_matrices=False)
    keep = s > s[0] * 1e-8
    loadings = (s[keep, None] * vt[keep]).T  # (devices, r)
    cov = np.atleast_2d(np.cov(loadings.T)) + 1e-8 * np.eye(int(keep.sum()))
    return np.asarray(u[:, keep], float), (loadings.mean(0), np.asarray(cov, float))


def reference_set(
    source: ArrayLike,
    k: int,
    *,
    seed: int = 0,
    design_size: int = 10,
    strata: ArrayLike | None = None,
    per_label: int = 2,
) -> IntArray:
    """Indices of the ``k`` candidates to measure first on a new device (module docstring).

    ``source`` holds the candidates' latencies on the source devices, ``(n, m)``.
    ``strata`` optionally labels each candidate (e.g. connected or dead cell); the design
    then holds at least ``per_label`` candidates of each label where the random picks after
    the design leave room (they make way), so that models with those labels as covariates
    can be fitted.
    """
    logs = _log_positive(source, "source")
    if logs.ndim != 2:
        raise ValueError(f"source must be a 2-D matrix, got shape {logs.shape}")
    n = len(logs)
    if not 1 <= k <= n:
        raise ValueError(f"k must be between 1 and the number of candidates ({n}), got {k}")
    rng = np.random.default_rng(seed)
    z = logs - logs.mean(0)
    std = z.std(0)
    z /= np.where(std > 0, std, 1.0)
    u, s, _ = np.linalg.svd(z, full_matrices=False)
    plane = u[:, :2] * s[:2]
    chosen = [int(rng.integers(n))]
    dist = ((plane - plane[chosen[0]]) ** 2).sum(1)
    for _ in range(min(k, design_size) - 1):
        pick = int(np.argmax(dist))
        chosen.append(pick)
        dist = np.minimum(dist, ((plane - plane[pick]) ** 2).sum(1))
    if k > len(chosen):
        rest = np.setdiff1d(np.arange(n), chosen)
        chosen.extend(int(i) for i in rng.choice(rest, k - len(chosen), replace=False))
    if strata is not None:
        labels = np.asarray(strata).ravel()
        if len(labels) != n:
            raise ValueError(f"strata must have one label per candidate ({n}), got {len(labels)}")
        _cover_strata(chosen, labels, plane, per_label, first=min(k, design_size))
    return np.array(chosen, dtype=np.intp)


def _cover_strata(
    chosen: list[int], labels: NDArray[Any], plane: FloatArray, per_label: int, first: int
) -> None:
    """Replace random picks (those from ``first`` on) until every label has ``per_label``."""
    values, sizes = np.unique(labels, return_counts=True)
    if len(chosen) - first < per_label * len(values):
        return
    slot = len(chosen) - 1
    order = np.argsort(-sizes)
    for value, size in zip(values[order], sizes[order], strict=True):
        want = min(per_label, int(size))
        while int((labels[chosen] == value).sum()) < want:
            while labels[chosen[slot]] == value or _only(chosen, labels, slot, per_label):
                slot -= 1
            members = np.setdiff1d(np.flatnonzero(labels == value), chosen)
            others = [c for i, c in enumerate(chosen) if i != slot]
            gap = np.min(((plane[members, None, :] - plane[None, others, :]) ** 2).sum(2), axis=1)
            chosen[slot] = int(members[np.argmax(gap)])
            slot -= 1


def _only(chosen: list[int], labels: NDArray[Any], slot: int, per_label: int) -> bool:
    """Whether pick ``slot`` is needed to keep its own label at ``per_label`` picks."""
    return int((labels[chosen] == labels[chosen[slot]]).sum()) <= per_label


def random_set(n: int, k: int, *, seed: int = 0) -> IntArray:
    """``k`` distinct indices out of ``n``, uniformly (the baseline policy)."""
    if not 1 <= k <= n:
        raise ValueError(f"k must be between 1 and {n}, got {k}")
    return np.random.default_rng(seed).choice(n, k, replace=False).astype(np.intp)


def describe(predictor: TransferPredictor) -> dict[str, Any]:
    """The source devices (by column) that carry the mixture, with their weights."""
    out: dict[str, float] = {}
    for weight, (combo, with_cov, *_rest) in zip(
        predictor.weights_, predictor._models, strict=True
    ):
        if weight >= 0.01:
            name = "+".join(str(c) for c in combo) + ("+covariates" if with_cov else "")
            out[name] = round(float(weight), 3)
    candidates = [predictor.SOURCES] + [model.name for model, _ in predictor._count_models]
    return {
        "models": out,
        "candidates": {
            name: round(float(weight), 3)
            for name, weight in zip(candidates, predictor.candidate_weights_, strict=True)
        },
        "factors": predictor._factor_model is not None,
        "shift": round(predictor.shift_, 4),
        "residual": predictor._residual is not None,
    }


__all__ = [
    "TransferPredictor",
    "describe",
    "pruned_sources",
    "random_set",
    "reference_set",
    "source_factors",
]
