"""Latency prediction on a new device from a few measurements on it.

    python bench/predictor_transfer.py --latency-csv L --accuracy-csv A --target D \
        --samples 10,20,50 --seeds S [--source-devices d1,d2,...] [--reference-indices i,j,...]
    python bench/predictor_transfer.py --latency-csv L --accuracy-csv A --leave-one-out ...

Devices of L other than the target (or those named) are sources whose latencies are known
for every architecture; the target's latencies are known only for the sampled ones (chosen
by :func:`hwsearch.predictors.reference_set`, or the given row indices, or uniformly at
random with ``--policy random``); the predictor is scored on every other architecture of the
target. Prints one JSON line per (target, samples) with Spearman, Kendall, share within
±10%, RMSE (ms) and MAPE, means over seeds, plus the seconds one fit + prediction of all
architectures took; with ``--leave-one-out`` every device is the target in turn and a last
line per sample count gives the mean over devices. The predictor gets the cells' one-hot
edges (features), whether the cell is connected (covariate) and two sets of operation counts
for its count models: all operations, and those whose result the cell's output uses; and
the sources' latent factors (:func:`hwsearch.predictors.source_factors`).
``--model ridge`` scores the baseline: a ridge regression on the sources' log-latencies and
the one-hot edges.

A is read to check that both tables list the same architectures in the same order.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hwsearch.predictors import (  # noqa: E402
    RidgePredictor,
    TransferPredictor,
    evaluate,
    nb201_codes_from_archs,
    nb201_features,
    nb201_op_counts,
    nb201_used_edges,
    pruned_sources,
    random_set,
    reference_set,
    source_factors,
)

METRICS = ("spearman", "kendall", "within_10pct", "rmse_ms", "mape")


def _int_list(text: str, name: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise SystemExit(f"--{name}: expected comma-separated integers, got {text!r}") from None
    if not values:
        raise SystemExit(f"--{name}: empty")
    return values


def load(
    latency_csv: Path, accuracy_csv: Path
) -> tuple[pd.DataFrame, list[str], np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    lat = pd.read_csv(latency_csv)
    acc = pd.read_csv(accuracy_csv, usecols=["index", "arch"])
    if "arch" not in lat.columns:
        raise SystemExit(f"--latency-csv: {latency_csv} has no 'arch' column")
    if len(acc) != len(lat) or not (acc["arch"].to_numpy() == lat["arch"].to_numpy()).all():
        raise SystemExit("--accuracy-csv: its architectures differ from the latency table's")
    devices = [c for c in lat.columns if c not in ("index", "arch")]
    codes = nb201_codes_from_archs(lat["arch"].tolist())
    features = nb201_features(codes)
    onehot = features.select(("edge",)).values
    connected = features.select(("connected",)).values
    counts = {
        "ops": nb201_op_counts(codes).values,
        "used_ops": nb201_op_counts(codes, nb201_used_edges(codes)).values,
    }
    return lat, devices, onehot, connected, counts


def score_target(
    lat: pd.DataFrame,
    onehot: np.ndarray,
    connected: np.ndarray,
    counts: dict[str, np.ndarray],
    target: str,
    sources: list[str],
    samples: list[int],
    seeds: int,
    reference: list[int] | None,
    policy: str,
    model: str,
    use_pruned: bool = True,
) -> list[dict[str, Any]]:
    source = lat[sources].to_numpy(float)
    pruned = pruned_sources(source, counts["ops"], counts["used_ops"]) if use_pruned else None
    factors, factor_prior = source_factors(source, pruned)
    y = lat[target].to_numpy(float)
    n = len(y)
    rows = []
    for k in samples:
        per_seed = []
        seconds = []
        for seed in range(seeds):
            if reference is not None:
                idx = np.array(reference[:k])
            elif policy == "random":
                idx = random_set(n, k, seed=seed)
            else:
                idx = reference_set(source, k, seed=seed, strata=connected)
            start = time.perf_counter()
            if model == "ridge":
                x = np.c_[np.log(source), onehot]
                fitted = RidgePredictor(alpha=1.0).fit(x[idx], np.log(y[idx]))
                pred = np.exp(fitted.predict(x)[0])
            else:
                transfer = TransferPredictor().fit(
                    source[idx],
                    y[idx],
                    onehot[idx],
                    covariates=connected[idx],
                    counts={name: c[idx] for name, c in counts.items()},
                    pruned=None if pruned is None else pruned[idx],
                    factors=factors[idx],
                    factor_prior=factor_prior,
                )
                pred, _ = transfer.predict(
                    source,
                    onehot,
                    covariates=connected,
                    counts=counts,
                    pruned=pruned,
                    factors=factors,
                )
            seconds.append(time.perf_counter() - start)
            held_out = np.ones(n, bool)
            held_out[idx] = False
            m = evaluate(y[held_out], pred[held_out])
            m["rmse_ms"] = m.pop("rmse")
            per_seed.append(m)
        row: dict[str, Any] = {"target": target, "samples": k, "seeds": seeds}
        row.update(
            {name: round(float(np.mean([m[name] for m in per_seed])), 4) for name in METRICS}
        )
        row["fit_predict_s"] = round(float(np.mean(seconds)), 3)
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--latency-csv", type=Path, required=True)
    parser.add_argument("--accuracy-csv", type=Path, required=True)
    parser.add_argument("--target", help="device column of the latency table")
    parser.add_argument("--samples", default="10,20,50")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--source-devices", help="comma-separated device columns")
    parser.add_argument("--reference-indices", help="comma-separated row indices to measure")
    parser.add_argument("--leave-one-out", action="store_true")
    parser.add_argument("--policy", choices=("reference", "random"), default="reference")
    parser.add_argument("--model", choices=("transfer", "ridge"), default="transfer")
    parser.add_argument(
        "--no-pruned-sources",
        action="store_true",
        help="do not give the predictor the sources' pruned cost models (pruned_sources)",
    )
    args = parser.parse_args(argv)

    lat, devices, onehot, connected, counts = load(args.latency_csv, args.accuracy_csv)
    samples = _int_list(args.samples, "samples")
    if args.seeds < 1:
        raise SystemExit(f"--seeds: must be at least 1, got {args.seeds}")
    reference = None
    if args.reference_indices:
        reference = _int_list(args.reference_indices, "reference-indices")
        bad = [i for i in reference if not 0 <= i < len(lat)]
        if bad:
            raise SystemExit(f"--reference-indices: {bad} outside 0..{len(lat) - 1}")
        if len(set(reference)) != len(reference):
            raise SystemExit("--reference-indices: repeated index")
        if max(samples) > len(reference):
            raise SystemExit(
                f"--reference-indices: {len(reference)} given, --samples asks for {max(samples)}"
            )
    named = args.source_devices.split(",") if args.source_devices else None
    for name in (named or []) + ([args.target] if args.target else []):
        if name not in devices:
            raise SystemExit(f"unknown device {name!r}; devices: {', '.join(devices)}")
    if args.leave_one_out:
        targets = devices
    elif args.target:
        targets = [args.target]
    else:
        raise SystemExit("give --target D or --leave-one-out")

    all_rows = []
    for target in targets:
        sources = [d for d in (named or devices) if d != target]
        if not sources:
            raise SystemExit(f"no source device left for target {target!r}")
        rows = score_target(
            lat,
            onehot,
            connected,
            counts,
            target,
            sources,
            samples,
            args.seeds,
            reference,
            args.policy,
            args.model,
            not args.no_pruned_sources,
        )
        for row in rows:
            print(json.dumps(row), flush=True)
        all_rows.extend(rows)
    if args.leave_one_out:
        for k in samples:
            group = [r for r in all_rows if r["samples"] == k]
            mean = {name: round(float(np.mean([r[name] for r in group])), 4) for name in METRICS}
            print(json.dumps({"target": "mean", "samples": k, "devices": len(group), **mean}))


if __name__ == "__main__":
    main()
