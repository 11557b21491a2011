"""Surrogate models for the predictor-assisted search: an encoding of params and regressors
that predict a mean and an uncertainty.

The encoding is generic over a :class:`~hwsearch.search.space.SearchSpace`: one-hot columns
per choice variable, numeric variables scaled to ``[0, 1]`` (log scale where the variable
is), and, for choice variables that share one tuple of values (the operations of a cell's
edges, the bit-width of every layer), how often each value occurs among them. Extra
per-candidate features known beforehand (see :mod:`hwsearch.search._strategy`) are appended
standardised.

Regressors follow one small interface, ``fit(X, y)`` then ``predict(X) -> (mean, std)``:

- :class:`GaussianProcess`: an exact GP with an isotropic RBF kernel plus a linear kernel on
  the features; hyperparameters are picked from a small grid by marginal likelihood (cheap
  and deterministic). It can also give the posterior covariance with a few chosen points,
  which the strategy uses to fantasise a batch (kriging believer), and widen its variances
  where its leave-one-out errors say they are too narrow (:meth:`GaussianProcess.calibrate`).
- :class:`ForestModel`: extremely randomised trees; the spread over the trees is the
  uncertainty.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from hwsearch.search.space import ChoiceVar, FloatVar, IntVar, SearchSpace

FloatArray = NDArray[np.float64]


class Encoder:
    """Params <-> rows of numbers (``codes``) -> model features.

    A code row holds, per variable, the index of the value for a choice, the value itself for
    an int or a float; it is what the strategy keeps candidates as (and hashes for
    duplicates). :meth:`features` turns code rows into the model's feature matrix.
    """

    def __init__(self, space: SearchSpace) -> None:
        self.space = space
        self.variables = space.variables
        self._index: list[dict[Any, int]] = []
        for var in self.variables:
            if isinstance(var, ChoiceVar):
                self._index.append({_value_key(v): i for i, v in enumerate(var.values)})
            else:
                self._index.append({})
        groups: dict[tuple[Any, ...], list[int]] = {}
        for j, var in enumerate(self.variables):
            if isinstance(var, ChoiceVar) and len(var.values) > 1:
                key = tuple(_value_key(v) for v in var.values)
                groups.setdefault(key, []).append(j)
        #: choice variables sharing a tuple of values: their value counts are features
        self.groups: list[list[int]] = [cols for cols in groups.values() if len(cols) > 1]

    @property
    def n_variables(self) -> int:
        return len(self.variables)

    def cardinalities(self) -> list[int | None]:
        """Number of values of each variable, or None where it is continuous."""
        out: list[int | None] = []
        for var in self.variables:
            if isinstance(var, ChoiceVar):
                out.append(len(var.values))
            elif isinstance(var, IntVar):
                out.append((var.high - var.low) // var.step + 1)
            elif var.step is not None:
                out.append(math.floor((var.high - var.low) / var.step + 1e-9) + 1)
            else:
                out.append(None)
        return out

    def value_at(self, j: int, position: int) -> float:
        """The code of the ``position``-th value of finite variable ``j``."""
        var = self.variables[j]
        if isinstance(var, ChoiceVar):
            return float(position)
        if isinstance(var, IntVar):
            return float(var.low + var.step * position)
        assert var.step is not None
        return float(var.low + var.step * position)

    def encode(self, params: Mapping[str, Any]) -> FloatArray:
        """The code row of one params dict."""
        row = np.empty(self.n_variables)
        for j, var in enumerate(self.variables):
            value = params[var.name]
            if isinstance(var, ChoiceVar):
                try:
                    row[j] = self._index[j][_value_key(value)]
                except KeyError:
                    raise ValueError(
                        f"parameter {var.name}={value!r} is not one of its values"
                    ) from None
            else:
                row[j] = float(value)
        return row

    def decode(self, row: Sequence[float] | FloatArray) -> dict[str, Any]:
        """The params dict of one code row (Python scalars)."""
        params: dict[str, Any] = {}
        for j, var in enumerate(self.variables):
            if isinstance(var, ChoiceVar):
                params[var.name] = var.values[int(row[j])]
            elif isinstance(var, IntVar):
                params[var.name] = round(float(row[j]))
            else:
                params[var.name] = float(row[j])
        return params

    def features(self, codes: FloatArray) -> FloatArray:
        """Model features of code rows: one-hot choices, scaled numbers, value counts."""
        codes = np.atleast_2d(codes)
        n = len(codes)
        blocks: list[FloatArray] = []
        for j, var in enumerate(self.variables):
            col = codes[:, j]
            if isinstance(var, ChoiceVar):
                k = len(var.values)
                if k > 1:
                    blocks.append(np.eye(k)[col.astype(np.intp)])
            elif isinstance(var, IntVar | FloatVar):
                blocks.append(_scale(col, var).reshape(n, 1))
        for cols in self.groups:
            k = len(self.variables[cols[0]].values)  # type: ignore[union-attr]
            sub = codes[:, cols].astype(np.intp)
            counts = np.stack([(sub == v).sum(axis=1) for v in range(k)], axis=1)
            blocks.append(counts / len(cols))
        if not blocks:
            return np.zeros((n, 1))
        return np.concatenate(blocks, axis=1).astype(float)


def _value_key(value: Any) -> tuple[str, Any]:
    """A hashable key telling ``True`` from ``1`` (choices may hold both)."""
    return (type(value).__name__ if isinstance(value, bool) else "v", value)


def _scale(col: FloatArray, var: IntVar | FloatVar) -> FloatArray:
    low, high = float(var.low), float(var.high)
    if var.log:
        col, low, high = np.log(col), math.log(low), math.log(high)
    span = high - low
    return (col - low) / span if span > 0 else np.zeros_like(col)


def standardise(columns: FloatArray) -> FloatArray:
    """Columns to mean 0, standard deviation 1 (constant columns to 0; NaN to 0)."""
    columns = np.asarray(columns, dtype=float)
    mean = np.nanmean(columns, axis=0)
    std = np.nanstd(columns, axis=0)
    out = (columns - mean) / np.where(std > 0, std, 1.0)
    return np.nan_to_num(out, nan=0.0)


class GaussianProcess:
    """Exact GP regression: ``s2 * (w * RBF(l) + (1 - w) * linear) + noise`` on the features.

    ``y`` is standardised; the signal variance is profiled out of the marginal likelihood
    and ``(l, w, noise)`` are picked from a small grid, so a fit is a few dozen Cholesky
    factorisations of an ``n x n`` matrix.

    ``feature_sets`` are alternative inputs, each a list of blocks of feature columns (the
    encoding of the params, a block of prior features, ...); the fit keeps the set of
    highest marginal likelihood, so a block that does not predict this target (other
    devices' latencies for accuracy) is left out. Each block is weighted so that it counts
    as much as any other, whatever its number of columns. Default: all columns, one block.
    """

    LENGTHS: ClassVar[tuple[float, ...]] = (0.5, 1.0, 2.0, 4.0)
    WEIGHTS: ClassVar[tuple[float, ...]] = (1.0, 0.7, 0.3)
    NOISES: ClassVar[tuple[float, ...]] = (1e-4, 1e-2, 1e-1, 0.3)

    def __init__(self, feature_sets: Sequence[Sequence[Sequence[int]]] | None = None) -> None:
        self._x: FloatArray | None = None
        self._feature_sets = [[list(b) for b in blocks] for blocks in feature_sets or []]
        self.blocks: list[list[int]] | None = None

    @staticmethod
    def _columns_and_scale(blocks: Sequence[Sequence[int]]) -> tuple[list[int], FloatArray]:
        columns = [c for block in blocks for c in block]
        scale = np.concatenate(
            [np.full(len(b), 1.0 / math.sqrt(len(b) * len(blocks))) for b in blocks if b]
        )
        return columns, scale

    @staticmethod
    def _kernel(a: FloatArray, b: FloatArray, length: float, weight: float) -> FloatArray:
        dot = a @ b.T
        sq = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * dot
        rbf = np.exp(-np.maximum(sq, 0.0) / (2.0 * length * length))
        if weight >= 1.0:
            return rbf
        return weight * rbf + (1.0 - weight) * dot

    def fit(self, x: FloatArray, y: FloatArray) -> GaussianProcess:
        return self._fit(x, y, self._feature_sets, self.LENGTHS, self.WEIGHTS)

    def fit_like(self, other: GaussianProcess, x: FloatArray, y: FloatArray) -> GaussianProcess:
        """Fit ``y`` with the blocks, length and weight ``other`` chose (the noise level
        chosen again): a cheap likelihood of another transform of the same target."""
        assert other.blocks is not None, "fit other first"
        return self._fit(x, y, [other.blocks], (other.length,), (other.weight,))

    def _fit(
        self,
        x: FloatArray,
        y: FloatArray,
        feature_sets: Sequence[Sequence[Sequence[int]]],
        lengths: Sequence[float],
        weights: Sequence[float],
    ) -> GaussianProcess:
        x = np.asarray(x, dtype=float)
        y = np.asarray(y, dtype=float)
        self._mean = float(y.mean())
        self._scale = float(y.std()) or 1.0
        z = np.asarray((y - self._mean) / self._scale, dtype=np.float64)
        n = len(x)
        best: tuple[float, Any] | None = None
        for blocks in feature_sets or [[list(range(x.shape[1]))]]:
            columns, scale = self._columns_and_scale(blocks)
            xc = x[:, columns] * scale
            for length in lengths:
                for weight in weights:
                    k = self._kernel(xc, xc, length, weight)
                    for noise in self.NOISES:
                        try:
                            chol = np.linalg.cholesky(k + (noise + 1e-8) * np.eye(n))
                        except np.linalg.LinAlgError:
                            continue
                        alpha = _cho_solve(chol, z)
                        s2 = max(float(z @ alpha) / n, 1e-12)
                        lml = -0.5 * n * math.log(s2) - float(np.log(np.diag(chol)).sum())
                        if best is None or lml > best[0]:
                            best = (lml, (blocks, length, weight, noise, chol, alpha, s2))
        if best is None:
            raise np.linalg.LinAlgError("no kernel of the grid gave a positive definite matrix")
        blocks, self.length, self.weight, self.noise, self._chol, self._alpha, self._s2 = best[1]
        #: log marginal likelihood of ``y`` (not of its standardised form), up to a constant
        #: that depends only on ``n``: comparable between fits of transforms of one target
        self.log_likelihood = best[0] - n * math.log(self._scale)
        self.blocks = blocks
        self._columns, self._column_scale = self._columns_and_scale(blocks)
        self._x = self._select(x)
        return self

    def _select(self, x: FloatArray) -> FloatArray:
        return np.asarray(x, dtype=float)[:, self._columns] * self._column_scale

    def cross(self, x: FloatArray) -> FloatArray:
        """Prior covariance (unscaled) between ``x`` and the training points."""
        assert self._x is not None, "fit first"
        return self._kernel(self._select(x), self._x, self.length, self.weight)

    def predict(self, x: FloatArray) -> tuple[FloatArray, FloatArray]:
        mean, var, _ = self.predict_full(x)
        return mean, np.sqrt(var)

    def predict_full(self, x: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
        """Mean and variance in ``y`` units, and ``V = L^-1 k(train, x)`` for fantasies."""
        kx = self.cross(x)
        mean = kx @ self._alpha
        v = _tri_solve(self._chol, kx.T)
        prior = self._kernel_diag(self._select(x))
        var = np.maximum(prior - (v * v).sum(0), 1e-12) * self._s2
        return self._mean + self._scale * mean, var * self._scale**2, v

    def _kernel_diag(self, x: FloatArray) -> FloatArray:
        if self.weight >= 1.0:
            return np.ones(len(x))
        return self.weight + (1.0 - self.weight) * (x * x).sum(1)

    @property
    def noise_variance(self) -> float:
        """The fitted noise variance in ``y`` units."""
        return float(self.noise * self._s2 * self._scale**2)

    def loo_errors(self) -> tuple[FloatArray, FloatArray]:
        """Leave-one-out residuals of the training targets and their predictive variances
        (noise included), both in ``y`` units: closed form from the fitted factorisation."""
        assert self._x is not None, "fit first"
        inverse_diag = np.diag(_cho_solve(self._chol, np.eye(len(self._alpha))))
        residuals = self._alpha / inverse_diag * self._scale
        variances = self._s2 / inverse_diag * self._scale**2
        return residuals, variances

    def calibrate(self) -> float:
        """Scale the posterior (co)variances by the mean squared leave-one-out z-score of the
        training points where it exceeds 1, never down, and return that factor.

        The grid's hyperparameters can leave the GP overconfident (a smooth fit through
        points it misses by more than its variance says); an optimistic acquisition then
        stops exploring too early. The mean is unchanged."""
        residuals, variances = self.loo_errors()
        factor = max(1.0, float(np.mean(residuals**2 / variances)))
        self._s2 *= factor
        return factor

    def posterior_cov(
        self, x: FloatArray, v: FloatArray, chosen: FloatArray, v_chosen: FloatArray
    ) -> FloatArray:
        """Posterior covariance between rows ``x`` and rows ``chosen`` in ``y`` units."""
        prior = self._kernel(self._select(x), self._select(chosen), self.length, self.weight)
        return (prior - v.T @ v_chosen) * self._s2 * self._scale**2


def _cho_solve(chol: NDArray[Any], b: NDArray[Any]) -> FloatArray:
    from scipy.linalg import cho_solve

    return np.asarray(cho_solve((chol, True), b))


def _tri_solve(chol: FloatArray, b: FloatArray) -> FloatArray:
    from scipy.linalg import solve_triangular

    return np.asarray(solve_triangular(chol, b, lower=True))


class ForestModel:
    """Extremely randomised trees; the mean and the spread of the trees' predictions."""

    def __init__(self, *, n_trees: int = 64, seed: int = 0) -> None:
        self.n_trees = n_trees
        self.seed = seed

    def fit(self, x: FloatArray, y: FloatArray) -> ForestModel:
        from sklearn.ensemble import ExtraTreesRegressor

        self._model = ExtraTreesRegressor(
            n_estimators=self.n_trees,
            min_samples_leaf=1,
            max_features=0.7,
            bootstrap=True,
            random_state=self.seed,
        )
        self._model.fit(x, y)
        return self

    def predict(self, x: FloatArray) -> tuple[FloatArray, FloatArray]:
        per_tree = np.stack([t.predict(x) for t in self._model.estimators_])
        return per_tree.mean(0), per_tree.std(0) + 1e-9


__all__ = ["Encoder", "ForestModel", "GaussianProcess", "standardise"]
