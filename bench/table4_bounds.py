"""What ``bench/table4.py`` would score with knowledge no real search has (diagnostics).

    python bench/table4_bounds.py --bound target-latency|feasible-only TABLE4-ARGS...
    python bench/table4_bounds.py --bound accuracy-noise --accuracy-csv A --latency-csv L \
        --target D --limit-ms X [--dataset cifar100]

``target-latency``: the default strategy is also given the target device's own
log-latencies as a prior block (what a perfect latency predictor would give).
``feasible-only``: the default strategy's pool holds only the architectures within the
limit and every probability of feasibility is 1 (no evaluation is spent on an infeasible
one). Both run ``bench/table4.py`` with the arguments that follow, patching the strategy's
inputs for the run; they bound how much of the gap is feasibility.

``accuracy-noise``: groups the architectures into classes that compute the same function
(``skip`` is the identity, ``none`` removes its edge, sums are flattened and sorted, so two
cells differing only in the order of their branches or in dead edges fall together), and
prints per (target, limit) how many members of the oracle's class are within the limit and
how far the oracle's accuracy lies above their mean: the oracle is the luckiest training
run of its function, which a search has to find among its twins.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import bench.search_quality as sq  # noqa: E402
import bench.table4 as t4  # noqa: E402


def function_class(arch: str) -> str:
    """A key shared by the NAS-Bench-201 cells that compute the same function."""
    nodes = [[e.split("~") for e in n.strip("|").split("|")] for n in arch.strip("|").split("|+|")]
    values: list[tuple[Any, ...]] = [("x",)]
    for node in nodes:
        terms: list[Any] = []
        for op, source in node:
            value = values[int(source)]
            if op == "none" or value == ():
                continue
            if op == "skip_connect":
                terms.extend(value)
            else:
                terms.append((op, value))
        values.append(tuple(sorted(terms, key=repr)))
    return repr(values[-1])


def accuracy_noise(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--accuracy-csv", required=True)
    parser.add_argument("--latency-csv", required=True)
    parser.add_argument("--target", required=True)
    parser.add_argument("--limit-ms", required=True)
    parser.add_argument("--dataset", choices=t4.DATASETS, default="cifar100")
    args = parser.parse_args(argv)
    acc = pd.read_csv(args.accuracy_csv)
    lat = pd.read_csv(args.latency_csv)
    if not (acc["arch"].to_numpy() == lat["arch"].to_numpy()).all():
        parser.error("--latency-csv: its architectures differ from the accuracy table's")
    accuracy = acc[f"{args.dataset}_acc"].to_numpy(float)
    classes = pd.Series([function_class(a) for a in acc["arch"]]).astype("category").cat.codes
    cls = classes.to_numpy()
    sizes = np.bincount(cls)
    pairs = [np.abs(np.diff(accuracy[cls == c][:2]))[0] for c in np.flatnonzero(sizes > 1)[:2000]]
    print(
        f"{sizes.size} function classes; {np.mean(sizes[cls] > 1):.3f} of the cells have a "
        f"twin; accuracy noise sd from twin pairs {np.sqrt(np.mean(np.square(pairs)) / 2):.2f} pp"
    )
    targets = args.target.split(",")
    limits = [float(x) for x in args.limit_ms.split(",")]
    above = []
    for target, limit in zip(targets, limits, strict=True):
        latency = lat[target].to_numpy(float)
        best = t4.oracle(accuracy, latency, limit)
        twins = np.flatnonzero((cls == cls[best]) & t4.within(latency, limit))
        above.append(accuracy[best] - accuracy[twins].mean())
        print(
            f"{target} {limit:g}: oracle {accuracy[best]:.2f} %, {len(twins)} feasible "
            f"member(s) of its class, oracle - their mean {above[-1]:.2f} pp"
        )
    print(f"mean oracle - class mean {np.mean(above):.2f} pp")
    return 0


_MODE = {"mode": ""}
_FEASIBLE: dict[str, Any] = {}
_BLOCKS = t4.prior_blocks
_RUN = t4.run_one


def _prior_blocks(table: sq.Table, device: str, use_prior: bool, encoding: str) -> Any:
    out = dict(_BLOCKS(table, device, use_prior, encoding) or {})
    if _MODE["mode"] == "target-latency":
        out["target_latency"] = sq._lookup(np.log(table.latency[device])[:, None])
    return out


def _run_one(target: str, limit_ms: float, *rest: Any, **kw: Any) -> dict[str, Any]:
    assert t4._TABLE is not None
    _FEASIBLE["ok"] = t4.within(t4._TABLE.latency[target], limit_ms)
    _FEASIBLE["mask"] = None
    return _RUN(target, limit_ms, *rest, **kw)


def _candidates(self: Any) -> tuple[np.ndarray, np.ndarray]:
    """The strategy's free pool, less the architectures beyond the limit."""
    assert self._pool is not None and self._pool_features is not None
    if _FEASIBLE["mask"] is None:
        codes = [sq.params_code(self._enc.decode(r)) for r in self._pool]
        _FEASIBLE["mask"] = _FEASIBLE["ok"][codes]
    free = np.array([k not in self._asked for k in self._pool_keys]) & _FEASIBLE["mask"]
    return self._pool[free], self._pool_features[free]


def _certain(self: Any, x_obs: np.ndarray, x_all: np.ndarray, **_: Any) -> np.ndarray:
    return np.ones(len(x_all))


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) < 2 or argv[0] != "--bound":
        raise SystemExit("usage: table4_bounds.py --bound MODE ARGS...")
    mode, rest = argv[1], argv[2:]
    if mode == "accuracy-noise":
        return accuracy_noise(rest)
    if mode not in ("target-latency", "feasible-only"):
        raise SystemExit(f"--bound: unknown mode {mode!r}")
    from hwsearch.search._strategy import SurrogateStrategy

    _MODE["mode"] = mode
    # the runs look these names up in bench.table4 (forked workers inherit the patches)
    setattr(t4, "prior_blocks", _prior_blocks)  # noqa: B010
    setattr(t4, "run_one", _run_one)  # noqa: B010
    if mode == "feasible-only":
        setattr(SurrogateStrategy, "_candidates", _candidates)  # noqa: B010
        setattr(SurrogateStrategy, "_feasibility", _certain)  # noqa: B010
    return t4.main(rest)


if __name__ == "__main__":
    raise SystemExit(main())
