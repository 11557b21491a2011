"""Regressors that predict a mean and a standard deviation.

All follow one small interface: ``fit(X, y)`` returns the fitted predictor and
``predict(X) -> (mean, std)``. Fit them on the scale where the metric is roughly linear in
the features (log for latency and energy); features are standardised inside.

- :class:`RidgePredictor`: Bayesian ridge regression; the penalty is chosen by exact
  leave-one-out error, the standard deviation is the predictive one (noise plus the
  uncertainty of the weights).
- :class:`ForestPredictor`: extremely randomised trees; the spread over the trees.
- :class:`GPPredictor`: a Gaussian process with an RBF plus linear kernel, hyperparameters by
  marginal likelihood over a small grid; its standard deviation grows away from the data.

:func:`make_predictor` builds one by name (``ridge``, ``forest``, ``gp``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
from numpy.typing import ArrayLike, NDArray

from hwsearch.errors import UnknownNameError

FloatArray = NDArray[np.float64]


class Predictor(Protocol):
    def fit(self, x: ArrayLike, y: ArrayLike) -> Predictor: ...

    def predict(self, x: ArrayLike) -> tuple[FloatArray, FloatArray]: ...


def _check_xy(x: ArrayLike, y: ArrayLike) -> tuple[FloatArray, FloatArray]:
    xa = np.asarray(x, dtype=float)
    ya = np.asarray(y, dtype=float).ravel()
    if xa.ndim != 2:
        raise ValueError(f"X must be a 2-D matrix, got shape {xa.shape}")
    if len(xa) != len(ya):
        raise ValueError(f"X has {len(xa)} rows but y has {len(ya)} values")
    if len(ya) < 2:
        raise ValueError(f"need at least 2 training points, got {len(ya)}")
    if not (np.isfinite(xa).all() and np.isfinite(ya).all()):
        raise ValueError("X and y must be finite (no NaN or inf)")
    return xa, ya


class _Scaler:
    def __init__(self, x: FloatArray) -> None:
        self.mean = x.mean(0)
        std = x.std(0)
        self.std = np.where(std > 0, std, 1.0)

    def __call__(self, x: ArrayLike) -> FloatArray:
        xa = np.asarray(x, dtype=float)
        if xa.ndim != 2 or xa.shape[1] != len(self.mean):
            raise ValueError(f"X must have shape (n, {len(self.mean)}), got {xa.shape}")
        return (xa - self.mean) / self.std


class RidgePredictor:
    """Ridge regression with the penalty chosen by leave-one-out error (``alpha=None``) or
    fixed; predictive standard deviation ``sigma * sqrt(1 + x' (X'X + alpha I)^-1 x)``."""

    ALPHAS = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0, 1e3)

    def __init__(
        self, *, alpha: float | None = None, alphas: Sequence[float] | None = None
    ) -> None:
        if alpha is not None and not alpha > 0:
            raise ValueError(f"alpha must be positive, got {alpha!r}")
        self.alpha = alpha
        self.alphas = tuple(alphas) if alphas is not None else self.ALPHAS
        if not self.alphas or min(self.alphas) <= 0:
            raise ValueError(f"alphas must be positive, got {self.alphas!r}")

    def fit(self, x: ArrayLike, y: ArrayLike) -> RidgePredictor:
        xa, ya = _check_xy(x, y)
        self._scaler = _Scaler(xa)
        z = self._scaler(xa)
        self._y_mean = float(ya.mean())
        yc = ya - self._y_mean
        u, s, vt = np.linalg.svd(z, full_matrices=False)
        n = len(ya)
        alphas = [self.alpha] if self.alpha is not None else list(self.alphas)
        best: tuple[float, float] | None = None
        for alpha in alphas:
            shrink = s**2 / (s**2 + alpha)
            hat = (u * shrink) @ u.T
            resid = (yc - hat @ yc) / np.maximum(1.0 - np.diag(hat) - 1.0 / n, 1e-9)
            err = float(np.mean(resid**2))
            if best is None or err < best[0]:
                best = (err, alpha)
        assert best is not None
        self.loo_error_, self.alpha_ = best
        self._cov = (vt.T / (s**2 + self.alpha_)) @ vt
        self.coef_ = self._cov @ z.T @ yc
        resid = yc - z @ self.coef_
        dof = max(n - float((s**2 / (s**2 + self.alpha_)).sum()) - 1.0, 1.0)
        self.sigma_ = math.sqrt(max(float(resid @ resid) / dof, 1e-12))
        return self

    def predict(self, x: ArrayLike) -> tuple[FloatArray, FloatArray]:
        z = self._scaler(x)
        mean = self._y_mean + z @ self.coef_
        lever = np.einsum("ij,jk,ik->i", z, self._cov, z)
        return mean, self.sigma_ * np.sqrt(1.0 + lever)


class ForestPredictor:
    """Extremely randomised trees (bootstrapped); the standard deviation over the trees."""

    def __init__(self, *, n_trees: int = 100, seed: int = 0) -> None:
        if n_trees < 2:
            raise ValueError(f"n_trees must be at least 2, got {n_trees!r}")
        self.n_trees = n_trees
        self.seed = seed

    def fit(self, x: ArrayLike, y: ArrayLike) -> ForestPredictor:
        from sklearn.ensemble import ExtraTreesRegressor

        xa, ya = _check_xy(x, y)
        self._model = ExtraTreesRegressor(
            n_estimators=self.n_trees, max_features=0.7, bootstrap=True, random_state=self.seed
        ).fit(xa, ya)
        return self

    def predict(self, x: ArrayLike) -> tuple[FloatArray, FloatArray]:
        xa = np.asarray(x, dtype=float)
        per_tree = np.stack([tree.predict(xa) for tree in self._model.estimators_])
        return per_tree.mean(0), per_tree.std(0) + 1e-9


class GPPredictor:
    """Exact GP: ``s2 * (w * RBF(length) + (1 - w) * linear / d) + noise`` on standardised
    features; ``(length, w, noise)`` from a grid by marginal likelihood, ``s2`` profiled out.
    Fitting is O(n^3): meant for the hundreds of measurements a device gets, not millions."""

    LENGTHS = (0.5, 1.0, 2.0, 4.0)
    WEIGHTS = (1.0, 0.7, 0.3)
    NOISES = (1e-4, 1e-2, 1e-1, 0.3)

    def fit(self, x: ArrayLike, y: ArrayLike) -> GPPredictor:
        from scipy.linalg import cho_solve

        xa, ya = _check_xy(x, y)
        self._scaler = _Scaler(xa)
        z = self._scaler(xa) / math.sqrt(xa.shape[1])
        self._y_mean = float(ya.mean())
        self._y_scale = float(ya.std()) or 1.0
        t = (ya - self._y_mean) / self._y_scale
        n = len(t)
        best: tuple[float, tuple[Any, ...]] | None = None
        for length in self.LENGTHS:
            for weight in self.WEIGHTS:
                k = self._kernel(z, z, length, weight)
                for noise in self.NOISES:
                    try:
                        chol = np.linalg.cholesky(k + (noise + 1e-8) * np.eye(n))
                    except np.linalg.LinAlgError:
                        continue
                    alpha = cho_solve((chol, True), t)
                    s2 = max(float(t @ alpha) / n, 1e-12)
                    lml = -0.5 * n * math.log(s2) - float(np.log(np.diag(chol)).sum())
                    if best is None or lml > best[0]:
                        best = (lml, (length, weight, noise, chol, alpha, s2))
        if best is None:
            raise np.linalg.LinAlgError("no kernel of the grid gave a positive definite matrix")
        self.length, self.weight, self.noise, self._chol, self._alpha, self._s2 = best[1]
        self._z = z
        return self

    @staticmethod
    def _kernel(a: FloatArray, b: FloatArray, length: float, weight: float) -> FloatArray:
        dot = a @ b.T
        sq = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * dot
        return weight * np.exp(-np.maximum(sq, 0.0) / (2.0 * length**2)) + (1.0 - weight) * dot

    def predict(self, x: ArrayLike) -> tuple[FloatArray, FloatArray]:
        from scipy.linalg import solve_triangular

        z = self._scaler(x) / math.sqrt(self._z.shape[1])
        kx = self._kernel(z, self._z, self.length, self.weight)
        v = solve_triangular(self._chol, kx.T, lower=True)
        prior = self.weight + (1.0 - self.weight) * (z * z).sum(1)
        var = (np.maximum(prior - (v * v).sum(0), 0.0) + self.noise) * self._s2
        mean = self._y_mean + self._y_scale * (kx @ self._alpha)
        return mean, self._y_scale * np.sqrt(var)


PREDICTORS: dict[str, type[RidgePredictor] | type[ForestPredictor] | type[GPPredictor]] = {
    "ridge": RidgePredictor,
    "forest": ForestPredictor,
    "gp": GPPredictor,
}


def make_predictor(kind: str, **options: Any) -> Predictor:
    """A new, unfitted predictor of ``kind`` (one of :data:`PREDICTORS`)."""
    try:
        cls = PREDICTORS[kind]
    except KeyError:
        raise UnknownNameError("predictor", kind, PREDICTORS) from None
    return cls(**options)


__all__ = [
    "PREDICTORS",
    "ForestPredictor",
    "GPPredictor",
    "Predictor",
    "RidgePredictor",
    "make_predictor",
]
