"""How good a prediction is: error and ranking metrics on the original scale of the metric."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

METRIC_NAMES: tuple[str, ...] = ("rmse", "mape", "within_10pct", "spearman", "kendall")


def evaluate(y_true: ArrayLike, y_pred: ArrayLike) -> dict[str, float]:
    """RMSE, MAPE (a fraction, not percent), share of predictions within ±10% of the truth,
    Spearman's rho and Kendall's tau (tau-b, ties allowed) of ``y_pred`` against ``y_true``.

    MAPE and the ±10% share divide by the truth, so they need ``y_true`` non-zero; entries
    where it is zero are left out of those two.
    """
    from scipy.stats import kendalltau, spearmanr

    true = np.asarray(y_true, dtype=float).ravel()
    pred = np.asarray(y_pred, dtype=float).ravel()
    if true.shape != pred.shape:
        raise ValueError(f"y_true has {true.size} values but y_pred has {pred.size}")
    if true.size < 2:
        raise ValueError(f"need at least 2 values to evaluate, got {true.size}")
    if not (np.isfinite(true).all() and np.isfinite(pred).all()):
        raise ValueError("y_true and y_pred must be finite (no NaN or inf)")
    error = pred - true
    nonzero = true != 0
    relative = np.abs(error[nonzero]) / np.abs(true[nonzero])
    constant = np.ptp(true) == 0 or np.ptp(pred) == 0  # no ranking to compare
    rho = float("nan") if constant else spearmanr(true, pred)[0]
    tau = float("nan") if constant else kendalltau(true, pred)[0]
    return {
        "rmse": float(np.sqrt(np.mean(error**2))),
        "mape": float(relative.mean()) if relative.size else float("nan"),
        "within_10pct": float((relative <= 0.1).mean()) if relative.size else float("nan"),
        "spearman": float(rho) if np.isfinite(rho) else 0.0,
        "kendall": float(tau) if np.isfinite(tau) else 0.0,
    }


__all__ = ["METRIC_NAMES", "evaluate"]
