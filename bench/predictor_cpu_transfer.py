"""Transfer to this machine's CPU: measure NAS-Bench-201 cells here, predict the rest.

    python bench/predictor_cpu_transfer.py --latency-csv L --accuracy-csv A \
        [--samples 10] [--held-out 40] [--seed 0] [--threads 1]

Builds the ``nb201`` family's networks (C=16, N=5, 32x32 input, batch 1) and measures their
latency on the CPU with :func:`hwsearch.hardware.measure_latency`: first the ``--samples``
cells the reference set picks (the 13 published devices of L are the sources), then
``--held-out`` further cells drawn at random. Fits :class:`TransferPredictor` on the first
and prints one JSON line with its Spearman, Kendall, within ±10% and MAPE on the held-out
cells, next to two baselines on the same cells: MACs as a proxy (ranking only) and a ridge
regression on the one-hot encoding fitted on the same samples.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hwsearch.hardware.measure import MeasureSettings, measure_latency  # noqa: E402
from hwsearch.hardware.targets import parse_target  # noqa: E402
from hwsearch.models.nb201 import NB201, config_from_arch  # noqa: E402
from hwsearch.predictors import (  # noqa: E402
    RidgePredictor,
    TransferPredictor,
    evaluate,
    nb201_codes_from_archs,
    nb201_features,
    reference_set,
)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--latency-csv", type=Path, required=True)
    parser.add_argument("--accuracy-csv", type=Path, required=True)
    parser.add_argument("--samples", type=int, default=10)
    parser.add_argument("--held-out", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    if args.samples < 3 or args.held_out < 2:
        raise SystemExit("--samples must be at least 3 and --held-out at least 2")

    lat = pd.read_csv(args.latency_csv)
    acc = pd.read_csv(args.accuracy_csv, usecols=["arch"])
    if not (acc["arch"].to_numpy() == lat["arch"].to_numpy()).all():
        raise SystemExit("--accuracy-csv: its architectures differ from the latency table's")
    devices = [c for c in lat.columns if c not in ("index", "arch")]
    source = lat[devices].to_numpy(float)
    features = nb201_features(nb201_codes_from_archs(lat["arch"].tolist()))
    onehot = features.select(("edge",)).values
    connected = features.select(("connected",)).values
    log_macs = features.select(("log_macs",)).values.ravel()

    picked = reference_set(source, args.samples, seed=args.seed)
    rng = np.random.default_rng(args.seed + 1)
    rest = np.setdiff1d(np.arange(len(lat)), picked)
    held = rng.choice(rest, args.held_out, replace=False)

    target = parse_target("cpu")
    settings = MeasureSettings(
        threads=args.threads, warmup=5, min_repeats=15, max_repeats=60, max_seconds=2.0
    )
    start = time.perf_counter()
    measured: dict[int, float] = {}
    for i in [*picked.tolist(), *held.tolist()]:
        config = config_from_arch(lat["arch"].iloc[i])
        model = NB201.build(config).eval()
        result = measure_latency(model, NB201.example_input(1), target, settings)
        measured[i] = result.median_ms
    seconds = time.perf_counter() - start

    y_pick = np.array([measured[i] for i in picked])
    y_held = np.array([measured[i] for i in held])
    transfer = TransferPredictor().fit(source[picked], y_pick, covariates=connected[picked])
    pred, _ = transfer.predict(source[held], covariates=connected[held])
    ridge = RidgePredictor().fit(onehot[picked], np.log(y_pick))
    ridge_pred = np.exp(ridge.predict(onehot[held])[0])
    keys = ("spearman", "kendall", "within_10pct", "mape")
    result_row = {
        "target": "cpu (this machine)",
        "samples": args.samples,
        "held_out": args.held_out,
        "transfer": {k: round(v, 4) for k, v in evaluate(y_held, pred).items() if k in keys},
        "ridge_onehot": {
            k: round(v, 4) for k, v in evaluate(y_held, ridge_pred).items() if k in keys
        },
        "macs_spearman": round(evaluate(y_held, np.exp(log_macs[held]))["spearman"], 4),
        "measure_s": round(seconds, 1),
        "latency_ms_range": [round(float(y_held.min()), 2), round(float(y_held.max()), 2)],
    }
    print(json.dumps(result_row))


if __name__ == "__main__":
    main()
