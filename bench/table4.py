"""The most accurate architecture within a latency limit, found with N evaluations (HELP's Table 4).

    python bench/table4.py --accuracy-csv A --latency-csv L --target D --limit-ms X
        --budget N --seeds S --strategies default,random,optuna-tpe
        [--prior-latency-csv P] [--dataset cifar10|cifar100|imagenet16]

The task of HELP's Table 4 (Lee et al., NeurIPS 2021) on NAS-Bench-201: find the
architecture of highest test accuracy on ``--dataset`` (default cifar100, the
``<dataset>_acc`` column of A) whose latency on device D (a column of L) is at most X ms.
Each strategy runs as the driver runs it: the optimizer registered under that name, built by
``make_optimizer`` with one objective, ``accuracy`` (maximised, a fraction), and one
constraint, ``latency_ms <= X``, whose violation (:meth:`Constraint.violation
<hwsearch.search.objectives.Constraint.violation>`) it is told with every result; it is
asked for batches of ``--batch`` (default: the driver's, the strategy's
``population_size`` option or ``BATCH_SIZE`` of :mod:`hwsearch.search.driver`), seeds
``0..S-1``. One evaluation reveals one architecture's accuracy and its latency on D, as in
``bench/search_quality.py`` (whose space, tables, prior features and ask/tell loop this
reuses): the budget N counts distinct architectures, and several budgets (``--budget
20,50``) share one run per seed (the answer at N is that after the first N evaluations).
With ``--prior-latency-csv P`` the strategies that take prior knowledge are given the
log-latencies of every architecture on the devices of P other than D, known beforehand.

The reported answer of a run is what the driver's front holds: the most accurate evaluated
architecture that the constraint marks feasible (none if no evaluation was). ``--target``
and ``--limit-ms`` take comma-separated lists, paired element by element. Prints one JSON
line per (target, limit, strategy, budget) with ``best_accuracy_mean`` (accuracy in % of
the answer, mean over the seeds that have one), ``oracle_accuracy`` (the most accurate
architecture of the table within the limit), ``gap_pp`` (their difference, percentage
points), ``over_limit_share`` (share of seeds whose answer's latency in the table exceeds
the limit; checked against the table, not the violation told), ``no_answer_share`` (seeds
without any feasible evaluation) and ``evaluations`` (distinct evaluations, fewest over the
seeds); then one line per (strategy, budget) with ``target: "mean"`` over the pairs; and a
Markdown table of ``gap_pp`` on stderr.
"""

from __future__ import annotations

import os

# one BLAS thread per process: the runs are parallelised over processes instead
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Mapping, Sequence  # noqa: E402
from concurrent.futures import ProcessPoolExecutor  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.search_quality import Table, _make, drive, parse_budgets, prior_blocks  # noqa: E402

DATASETS = ("cifar10", "cifar100", "imagenet16")


# -- bookkeeping ---------------------------------------------------------------------------


def within(latency: np.ndarray, limit_ms: float) -> np.ndarray:
    """Which latencies meet ``latency_ms <= limit_ms``, as the driver decides it (the
    constraint's violation ``<= 0``)."""
    from hwsearch.search.objectives import Constraint

    constraint = Constraint("latency_ms", "<=", float(limit_ms))
    return np.array([constraint.violation(float(v)) <= 0 for v in latency], dtype=bool)


def oracle(accuracy: np.ndarray, latency: np.ndarray, limit_ms: float) -> int:
    """Index of the most accurate architecture within the limit (the lowest index of ties);
    ValueError when none is."""
    ok = within(latency, limit_ms)
    if not ok.any():
        raise ValueError(
            f"no architecture is within {limit_ms} ms (fastest: {float(latency.min())} ms)"
        )
    candidates = np.flatnonzero(ok)
    return int(candidates[np.argmax(accuracy[candidates])])


def answer(
    order: Sequence[int], accuracy: np.ndarray, latency: np.ndarray, limit_ms: float
) -> int | None:
    """The run's reported answer after evaluating ``order``: the most accurate of them that
    the constraint marks feasible (the first evaluated of ties); None when none is."""
    if not len(order):
        return None
    codes = np.asarray(order, dtype=int)
    ok = within(latency[codes], limit_ms)
    if not ok.any():
        return None
    feasible = codes[ok]
    return int(feasible[np.argmax(accuracy[feasible])])


@dataclass(frozen=True)
class Summary:
    """The figures of one (target, limit, strategy, budget) over its seeds."""

    best_accuracy_mean: float | None
    best_accuracy_std: float | None
    oracle_accuracy: float
    gap_pp: float | None
    over_limit_share: float
    no_answer_share: float


def summarise(
    answers: Sequence[int | None], accuracy: np.ndarray, latency: np.ndarray, limit_ms: float
) -> Summary:
    """Mean accuracy of the seeds' answers, the oracle's, their gap, and the shares of seeds
    whose answer exceeds the limit in the table, or that have none."""
    if not answers:
        raise ValueError("no runs to summarise")
    best = accuracy[oracle(accuracy, latency, limit_ms)]
    given = [a for a in answers if a is not None]
    over = sum(1 for a in given if float(latency[a]) > limit_ms)
    accs = [float(accuracy[a]) for a in given]
    mean = float(np.mean(accs)) if accs else None
    return Summary(
        best_accuracy_mean=mean,
        best_accuracy_std=float(np.std(accs)) if accs else None,
        oracle_accuracy=float(best),
        gap_pp=float(best) - mean if mean is not None else None,
        over_limit_share=over / len(answers),
        no_answer_share=(len(answers) - len(given)) / len(answers),
    )


# -- runs ----------------------------------------------------------------------------------

_TABLE: Table | None = None


def _init_worker(
    accuracy_csv: str, latency_csv: str, prior_csv: str | None, accuracy_column: str
) -> None:
    global _TABLE
    _TABLE = Table(accuracy_csv, latency_csv, prior_csv, accuracy_column)


def run_one(
    target: str,
    limit_ms: float,
    strategy: str,
    seed: int,
    budgets: Sequence[int],
    batch: int,
    use_prior: bool,
    options: Mapping[str, Any],
    encoding: str = "cell",
) -> dict[str, Any]:
    """One search under ``latency_ms <= limit_ms``; the answer after the first N distinct
    evaluations for each budget N."""
    from hwsearch.search.objectives import Constraint, Objective

    assert _TABLE is not None
    table = _TABLE
    constraint = Constraint("latency_ms", "<=", float(limit_ms))
    latency = table.latency[target]
    prior = prior_blocks(table, target, use_prior, encoding)
    start = time.perf_counter()
    optimizer = _make(
        strategy,
        options,
        seed=seed,
        prior=prior,
        objectives=[Objective("accuracy", "maximize")],
        n_constraints=1,
    )

    def evaluate(code: int) -> tuple[list[float], list[float]]:
        return [table.accuracy[code] / 100.0], [constraint.violation(float(latency[code]))]

    order = drive(optimizer, max(budgets), batch, evaluate)
    seconds = time.perf_counter() - start
    return {
        "target": target,
        "limit_ms": limit_ms,
        "strategy": strategy,
        "seed": seed,
        "answers": {n: answer(order[:n], table.accuracy, latency, limit_ms) for n in budgets},
        "evaluations": len(order),
        "seconds": seconds,
    }


def _float_list(text: str, name: str) -> list[float]:
    """Comma-separated finite numbers; ValueError names ``--name``."""
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"--{name}: expected numbers separated by commas, got {text!r}") from None
    if not values or not all(np.isfinite(values)):
        raise ValueError(f"--{name}: expected finite numbers separated by commas, got {text!r}")
    return values


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--accuracy-csv", required=True)
    parser.add_argument("--latency-csv", required=True)
    parser.add_argument("--target", required=True, help="device column(s), comma-separated")
    parser.add_argument(
        "--limit-ms", required=True, help="latency limit(s), comma-separated, one per target"
    )
    parser.add_argument("--budget", required=True, help="evaluations, e.g. 50 or 20,50")
    parser.add_argument("--seeds", type=int, required=True, help="runs with seeds 0..S-1")
    parser.add_argument("--strategies", required=True, help="comma-separated optimizer names")
    parser.add_argument("--prior-latency-csv", default=None)
    parser.add_argument("--dataset", choices=DATASETS, default="cifar100")
    parser.add_argument(
        "--batch",
        type=int,
        default=None,
        help="suggestions per ask (default: the driver's, population_size or BATCH_SIZE)",
    )
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="processes")
    parser.add_argument("--encoding", choices=("cell", "family", "generic"), default="cell")
    parser.add_argument("--options", default="{}", help="JSON: options per strategy")
    args = parser.parse_args(argv)

    targets = [t.strip() for t in args.target.split(",") if t.strip()]
    try:
        limits = _float_list(args.limit_ms, "limit-ms")
    except ValueError as exc:
        parser.error(str(exc))
    if not targets:
        parser.error("--target: empty")
    if len(limits) != len(targets):
        parser.error(
            f"--limit-ms: {len(limits)} limit(s) for {len(targets)} target(s); "
            "give one limit per target, in the same order"
        )
    budgets = parse_budgets(parser, args.budget, args.seeds)
    if args.batch is not None and args.batch < 1:
        parser.error(f"--batch: must be >= 1, got {args.batch}")
    if args.jobs < 1:
        parser.error(f"--jobs: must be >= 1, got {args.jobs}")
    strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    if not strategies:
        parser.error("--strategies: empty")
    try:
        options = json.loads(args.options)
    except json.JSONDecodeError as exc:
        parser.error(f"--options: not JSON ({exc})")
    if not isinstance(options, dict) or not all(isinstance(v, dict) for v in options.values()):
        parser.error("--options: expected an object of strategy name -> options object")
    from hwsearch.search.optimizer import get_optimizer_class

    batches: dict[str, int] = {}
    for name in strategies:
        try:
            checked = get_optimizer_class(name).check_options(options.get(name, {}))
        except KeyError as exc:
            parser.error(f"--strategies: {exc}")
        except ValueError as exc:
            parser.error(f"--options: {name}: {exc}")
        if args.batch is not None:
            batches[name] = args.batch
        else:  # as Driver.__init__ sizes a batch (one in-process worker)
            from hwsearch.search.driver import BATCH_SIZE

            batches[name] = int(checked.get("population_size") or BATCH_SIZE)

    column = f"{args.dataset}_acc"
    try:
        table = Table(args.accuracy_csv, args.latency_csv, args.prior_latency_csv, column)
    except SystemExit as exc:
        parser.error(str(exc))
    for target, limit in zip(targets, limits, strict=True):
        if target not in table.devices:
            parser.error(f"--target: {target!r} is not a column of {args.latency_csv}")
        if not within(table.latency[target], limit).any():
            fastest = float(table.latency[target].min())
            parser.error(
                f"--limit-ms: no architecture is within {limit:g} ms on {target} "
                f"(fastest: {fastest:g} ms)"
            )
    use_prior = args.prior_latency_csv is not None
    if use_prior:
        for target in targets:
            if not any(d != target for d in table.prior):
                parser.error(f"--prior-latency-csv: no device column other than {target!r}")

    pairs = list(zip(targets, limits, strict=True))
    tasks = [(t, x, s, seed) for seed in range(args.seeds) for s in strategies for t, x in pairs]
    init = (args.accuracy_csv, args.latency_csv, args.prior_latency_csv, column)

    def call(t: str, x: float, s: str, seed: int) -> tuple[Any, ...]:
        return (t, x, s, seed, budgets, batches[s], use_prior, options.get(s, {}), args.encoding)

    started = time.perf_counter()
    if args.jobs == 1:
        _init_worker(*init)
        results = [run_one(*call(*task)) for task in tasks]
    else:
        with ProcessPoolExecutor(args.jobs, initializer=_init_worker, initargs=init) as pool:
            futures = [pool.submit(run_one, *call(*task)) for task in tasks]
            results = [f.result() for f in futures]
    wall = time.perf_counter() - started

    lines = []
    for target, limit in pairs:
        latency = table.latency[target]
        best = oracle(table.accuracy, latency, limit)
        for strategy in strategies:
            runs = [
                r
                for r in results
                if r["target"] == target and r["limit_ms"] == limit and r["strategy"] == strategy
            ]
            for n in budgets:
                summary = summarise([r["answers"][n] for r in runs], table.accuracy, latency, limit)
                line = {
                    "target": target,
                    "limit_ms": limit,
                    "strategy": strategy,
                    "budget": n,
                    "dataset": args.dataset,
                    "prior": use_prior,
                    "best_accuracy_mean": _round(summary.best_accuracy_mean),
                    "best_accuracy_std": _round(summary.best_accuracy_std),
                    "oracle_accuracy": _round(summary.oracle_accuracy),
                    "oracle_latency_ms": _round(float(latency[best])),
                    "gap_pp": _round(summary.gap_pp),
                    "over_limit_share": summary.over_limit_share,
                    "no_answer_share": summary.no_answer_share,
                    "evaluations": min(min(r["evaluations"], n) for r in runs),
                    "seeds": len(runs),
                    "feasible_share": _round(float(within(latency, limit).mean())),
                    "seconds_per_run": _round(float(np.mean([r["seconds"] for r in runs])), 3),
                }
                print(json.dumps(line), flush=True)
                lines.append(line)
    for strategy in strategies:
        for n in budgets:
            group = [ln for ln in lines if ln["strategy"] == strategy and ln["budget"] == n]
            gaps = [ln["gap_pp"] for ln in group if ln["gap_pp"] is not None]
            mean = {
                "target": "mean",
                "limit_ms": None,
                "strategy": strategy,
                "budget": n,
                "dataset": args.dataset,
                "prior": use_prior,
                "gap_pp": _round(float(np.mean(gaps))) if gaps else None,
                "gap_pp_max": _round(float(np.max(gaps))) if gaps else None,
                "within_0_2pp_share": _round(float(np.mean([g <= 0.2 for g in gaps])))
                if gaps
                else None,
                "over_limit_share": float(np.mean([ln["over_limit_share"] for ln in group])),
                "no_answer_share": float(np.mean([ln["no_answer_share"] for ln in group])),
                "settings": len(group),
                "wall_s": round(wall, 1),
            }
            print(json.dumps(mean), flush=True)
    _markdown(lines, pairs, strategies, budgets, wall)
    return 0


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


def _markdown(
    lines: list[dict[str, Any]],
    pairs: list[tuple[str, float]],
    strategies: list[str],
    budgets: list[int],
    wall: float,
) -> None:
    cols = [(s, n) for n in budgets for s in strategies]
    head = " | ".join(f"{s} @{n}" for s, n in cols)
    out = [f"| target | limit ms | oracle % | {head} |", "|---|---:|---:|" + "---:|" * len(cols)]
    for target, limit in pairs:
        row = [ln for ln in lines if ln["target"] == target and ln["limit_ms"] == limit]
        cells = []
        for s, n in cols:
            (ln,) = [x for x in row if x["strategy"] == s and x["budget"] == n]
            text = "n/a" if ln["gap_pp"] is None else f"{ln['gap_pp']:.2f}"
            if ln["over_limit_share"] or ln["no_answer_share"]:
                text += f" ({ln['over_limit_share'] + ln['no_answer_share']:.0%} bad)"
            cells.append(text)
        oracle_acc = row[0]["oracle_accuracy"]
        out.append(f"| {target} | {limit:g} | {oracle_acc:.2f} | " + " | ".join(cells) + " |")
    means = []
    for s, n in cols:
        gaps = [
            ln["gap_pp"]
            for ln in lines
            if ln["strategy"] == s and ln["budget"] == n and ln["gap_pp"] is not None
        ]
        means.append(f"**{np.mean(gaps):.2f}**" if gaps else "n/a")
    out.append("| **mean** | | | " + " | ".join(means) + " |")
    print("\n".join(out), file=sys.stderr)
    print(f"wall time {wall:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    raise SystemExit(main())
