"""How well can any architecture -> latency model do on each device of the table?

    python bench/predictor_ceiling.py --latency-csv L --accuracy-csv A

Upper references for ``bench/predictor_transfer.py``: per device, with the other devices
as sources, (1) least squares of the log-latency on the sources' log-latencies, the one-hot
edges, ``connected`` and both sets of operation counts, fitted on *all* 15,625 cells and
scored on them (in-sample), prediction moved to the densest ±10% window as the transfer
predictor does; (2) gradient-boosted trees on the same inputs, two-fold cross-validated
(each half predicted by trees fitted on the other 7,800 cells), moved the same way; (3)
the autocorrelation of (1)'s residuals along the table's rows at lags 1 and 100, and the
share within ±10% of (1) once the moving average of its residuals over 101 rows is taken
out (what a model of the measurement drift would add; not a predictor). Residuals
that follow the row order are measurement drift (the table's cells were measured in that
order), which no function of the architecture can predict. Prints one JSON line per
device and one with their mean.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.predictor_transfer import load  # noqa: E402
from hwsearch.predictors.transfer import _densest_shift  # noqa: E402


def _share(residual: np.ndarray) -> float:
    """Share of log residuals (truth over prediction) inside ±10%."""
    return float(np.mean((residual >= -np.log(1.1)) & (residual <= -np.log(0.9))))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--latency-csv", type=Path, required=True)
    parser.add_argument("--accuracy-csv", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0, help="of the two-fold split")
    args = parser.parse_args(argv)
    from sklearn.ensemble import HistGradientBoostingRegressor

    lat, devices, onehot, connected, counts = load(args.latency_csv, args.accuracy_csv)
    fold = np.random.default_rng(args.seed).integers(2, size=len(lat))
    rows = []
    for target in devices:
        logy = np.log(lat[target].to_numpy(float))
        sources = np.log(lat[[d for d in devices if d != target]].to_numpy(float))
        x = np.c_[sources, onehot, connected, counts["ops"], counts["used_ops"]]
        design = np.c_[np.ones(len(x)), x]
        coef, *_ = np.linalg.lstsq(design, logy, rcond=None)
        resid = logy - design @ coef
        trees = np.empty(len(x))
        for k in (0, 1):
            model = HistGradientBoostingRegressor(max_iter=300, random_state=args.seed)
            trees[fold == k] = model.fit(x[fold != k], logy[fold != k]).predict(x[fold == k])
        tree_resid = logy - trees
        row = {
            "target": target,
            "ls_all_within_10pct": round(_share(resid - _densest_shift(resid, 0.1)), 4),
            "ls_all_spearman": round(float(spearmanr(logy, logy - resid)[0]), 4),
            "trees_cv_within_10pct": round(_share(tree_resid - _densest_shift(tree_resid, 0.1)), 4),
            "trees_cv_spearman": round(float(spearmanr(logy, trees)[0]), 4),
            "ls_all_minus_row_drift_within_10pct": round(
                _share(resid - np.convolve(resid, np.ones(101) / 101, mode="same")), 4
            ),
            "residual_autocorr_lag1": round(float(np.corrcoef(resid[:-1], resid[1:])[0, 1]), 3),
            "residual_autocorr_lag100": round(
                float(np.corrcoef(resid[:-100], resid[100:])[0, 1]), 3
            ),
        }
        print(json.dumps(row), flush=True)
        rows.append(row)
    keys = [k for k in rows[0] if k != "target"]
    mean = {k: round(float(np.mean([r[k] for r in rows])), 4) for k in keys}
    print(json.dumps({"target": "mean", "devices": len(rows), **mean}), flush=True)


if __name__ == "__main__":
    main()
