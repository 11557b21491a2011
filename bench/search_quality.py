"""How close does each search strategy get to the true Pareto front of NAS-Bench-201?

    python bench/search_quality.py --accuracy-csv A --latency-csv L --device D --budget N
        --seeds S --strategies default,random,optuna-nsga2,optuna-tpe,pymoo-nsga2
        [--prior-latency-csv P] [--batch 10] [--jobs 2] [--driving async,generational]
        [--cv 0.3]

The space is the NAS-Bench-201 cell (6 edges, each one of 5 operations), built directly as
a :class:`~hwsearch.search.space.SearchSpace` of 6 choice variables. Each strategy is the
optimizer registered under that name, driven through ``make_optimizer`` and ask/tell in
batches of ``--batch`` as the driver does, with seeds ``0..S-1``. Evaluating an
architecture reveals its CIFAR-10 test accuracy (``accuracy.csv``) and its latency on the
device (a column of ``latency_ms.csv``); the strategy is told ``accuracy`` (maximised, a
fraction) and ``latency_ms`` (minimised).

``--driving async`` drives each strategy as the asynchronous driver does instead: ``--batch``
workers on a virtual clock with lognormal evaluation times (mean 1, ``--cv``, drawn from a
seed of their own), each finished evaluation told at once and its worker given the next
suggestion (once the optimizer's ``min_free_workers`` are free, as the driver waits);
the score at N is then that of the first N evaluations to finish. With
``--driving async,generational`` both run on the same seeds.

Score: HV gap = 1 - HV(evaluated) / HV(all architectures), with test error (100 -
``cifar10_acc``) and latency both minimised, min-max normalised over all architectures,
reference point (1, 1). Budget N is the number of *distinct* architectures evaluated: a
strategy that asks for one it has seen is told the known values again at no cost; a run
stops early (``evaluations`` < N in the output) when a strategy returns no suggestion, or
makes no new proposal in ``MAX_IDLE_BATCHES`` batches in a row. Several budgets
(``--budget 50,100``) share one run per seed: the score at N is that of the first N
distinct architectures, which is what a run of budget N evaluates (no strategy is told
its budget).

``--device all`` runs every device column of the latency file. With
``--prior-latency-csv P`` the strategies are given (``make_optimizer(..., prior=...)``) the
log-latencies of every architecture on all devices of P other than D, known beforehand, as
a block named ``latency_ms`` (as a job with a ``prior`` section gives them); strategies
that do not use prior knowledge ignore it. With ``--encoding cell`` (the default) they are
also given the cell's graph features, computed from the architecture key alone
(:func:`cell_features`, the ``nb201`` family's ``structure``, which a search job's default
strategy gets too: which input-output paths are alive, the operations on live paths, the
longest chain of 3x3 convolutions, a residual path, whether one and whether two live edges
convolve) -- knowledge of the search space, not of any measurement; ``--encoding family``
gives the predictors' ``nb201`` features instead; ``--encoding generic`` withholds both,
leaving only the space's own encoding of 6 choices.

Prints one JSON line per (device, strategy, budget) with ``hv_gap_mean`` and ``hv_gap_std``
over the seeds, then one per (strategy, budget) with ``device: "mean"`` (the mean over
devices of the per-device means), and a Markdown table on stderr.
"""

from __future__ import annotations

import os

# one BLAS thread per process: the runs are parallelised over processes instead
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import heapq  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Mapping, Sequence  # noqa: E402
from concurrent.futures import ProcessPoolExecutor  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

OPERATIONS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
EDGES = 6
MAX_IDLE_BATCHES = 20
_TOKEN = re.compile(r"\|([a-z0-9_]+)~\d")


def parse_arch(arch: str) -> tuple[str, ...]:
    """The 6 operations of a NAS-Bench-201 key, edge by edge."""
    ops = tuple(_TOKEN.findall(arch))
    if len(ops) != EDGES or any(op not in OPERATIONS for op in ops):
        raise ValueError(f"not a NAS-Bench-201 architecture key: {arch!r}")
    return ops


def make_space() -> Any:
    from hwsearch.search.space import ChoiceVar, SearchSpace

    return SearchSpace(tuple(ChoiceVar(f"edge{i}", OPERATIONS) for i in range(EDGES)))


class Table:
    """Accuracy and latencies by architecture, as arrays indexed by the base-5 op code."""

    def __init__(
        self,
        accuracy_csv: str,
        latency_csv: str,
        prior_csv: str | None,
        accuracy_column: str = "cifar10_acc",
    ) -> None:
        acc = pd.read_csv(accuracy_csv)
        lat = pd.read_csv(latency_csv)
        for name, frame, cols in (
            (accuracy_csv, acc, ("arch", accuracy_column)),
            (latency_csv, lat, ("arch",)),
        ):
            missing = [c for c in cols if c not in frame.columns]
            if missing:
                raise SystemExit(f"{name}: missing column(s) {', '.join(missing)}")
        self.devices = [c for c in lat.columns if c not in ("index", "arch")]
        size = len(OPERATIONS) ** EDGES
        self.accuracy = self._by_code(acc, accuracy_column, accuracy_csv, size)
        self.latency = {d: self._by_code(lat, d, latency_csv, size) for d in self.devices}
        self.prior: dict[str, np.ndarray] = {}
        self.cell = np.zeros((size, len(cell_features(OPERATIONS[:1] * EDGES))))
        for arch in acc["arch"]:
            ops = parse_arch(arch)
            self.cell[code_of(ops)] = cell_features(ops)
        self.structure: np.ndarray | None = None  # hwsearch's own features, on demand
        if prior_csv is not None:
            prior = pd.read_csv(prior_csv)
            for d in prior.columns:
                if d not in ("index", "arch"):
                    self.prior[d] = self._by_code(prior, d, prior_csv, size)

    @staticmethod
    def _by_code(frame: pd.DataFrame, column: str, path: str, size: int) -> np.ndarray:
        out = np.full(size, np.nan)
        for arch, value in zip(frame["arch"], frame[column], strict=True):
            out[code_of(parse_arch(arch))] = float(value)
        if np.isnan(out).any():
            raise SystemExit(f"{path}: column {column!r} lacks {int(np.isnan(out).sum())} archs")
        return out


def code_of(ops: Sequence[str]) -> int:
    code = 0
    for op in ops:
        code = code * len(OPERATIONS) + OPERATIONS.index(op)
    return code


def params_code(params: Mapping[str, Any]) -> int:
    return code_of([params[f"edge{i}"] for i in range(EDGES)])


def cell_features(ops: Sequence[str]) -> np.ndarray:
    """The cell's graph features (:func:`hwsearch.models.nb201.cell_structure`): live
    input-output paths, operations on live paths, the longest chain of 3x3 convolutions, a
    residual path, whether one and whether two live edges convolve."""
    from hwsearch.models.nb201 import cell_structure

    return cell_structure(ops)


def normalised_points(table: Table, device: str) -> np.ndarray:
    error = 100.0 - table.accuracy
    latency = table.latency[device]
    cols = [(c - c.min()) / (c.max() - c.min()) for c in (error, latency)]
    return np.stack(cols, axis=1)


def hypervolume_2d(points: np.ndarray) -> float:
    """Exact hypervolume of minimised 2-D points with reference (1, 1)."""
    pts = points[np.all(points < 1.0, axis=1)]
    if len(pts) == 0:
        return 0.0
    pts = pts[np.lexsort((pts[:, 1], pts[:, 0]))]
    volume, best_y = 0.0, 1.0
    for x, y in pts:
        if y < best_y:
            volume += (1.0 - x) * (best_y - y)
            best_y = y
    return volume


def family_features(table: Table) -> np.ndarray:
    """The ``nb201`` family's predictor features of every architecture (``featurize``), by
    op code; a search job's default strategy gets the cell structure (``cell_features``)."""
    if table.structure is None:
        from hwsearch.predictors.features import featurize

        n = len(OPERATIONS)
        ops = [
            [OPERATIONS[code // n ** (EDGES - 1 - e) % n] for e in range(EDGES)]
            for code in range(n**EDGES)
        ]
        table.structure = featurize("nb201", [{"ops": o} for o in ops]).values
    return table.structure


_TABLE: Table | None = None


def _lookup(matrix: np.ndarray) -> Any:
    def features(params: Mapping[str, Any]) -> np.ndarray:
        return matrix[params_code(params)]

    return features


def _init_worker(accuracy_csv: str, latency_csv: str, prior_csv: str | None) -> None:
    global _TABLE
    _TABLE = Table(accuracy_csv, latency_csv, prior_csv)


def _make(
    strategy: str,
    options: Mapping[str, Any],
    *,
    seed: int,
    prior: Any,
    objectives: Sequence[Any] | None = None,
    n_constraints: int = 0,
) -> Any:
    """The optimizer ``strategy`` on this benchmark's space; by default with its objectives
    (accuracy maximised, latency minimised) and no constraint."""
    from hwsearch.search.objectives import Objective
    from hwsearch.search.optimizer import make_optimizer

    if objectives is None:
        objectives = [Objective("accuracy", "maximize"), Objective("latency_ms", "minimize")]
    return make_optimizer(
        strategy,
        space=make_space(),
        objectives=objectives,
        n_constraints=n_constraints,
        seed=seed,
        options=options,
        prior=prior,
    )


def prior_blocks(table: Table, device: str, use_prior: bool, encoding: str) -> Any:
    """What a strategy is given beforehand when ``device`` is the target: the cell's
    features (``encoding``) and, with ``use_prior``, the other devices' log-latencies."""
    blocks: dict[str, np.ndarray] = {}
    if encoding == "cell":
        blocks["cell"] = table.cell
    elif encoding == "family":
        blocks["structure"] = family_features(table)
    if use_prior:
        others = [d for d in table.prior if d != device]
        latencies = np.stack([table.prior[d] for d in others], axis=1)
        blocks["latency_ms"] = np.log(np.maximum(latencies, 1e-6))
    return {name: _lookup(matrix) for name, matrix in blocks.items()} or None


def drive(
    optimizer: Any,
    budget: int,
    batch: int,
    evaluate: Callable[[int], tuple[list[float], list[float]]],
) -> list[int]:
    """Ask/tell ``optimizer`` in batches of ``batch`` until ``budget`` distinct
    architectures are evaluated; ``evaluate(code)`` gives the values and violations told.
    A repeated architecture is told its known values at no cost; the run stops early when
    the strategy returns no suggestion, or nothing new in ``MAX_IDLE_BATCHES`` batches.
    Returns the distinct op codes in evaluation order."""
    order: list[int] = []
    seen: set[int] = set()
    idle = 0
    while len(order) < budget and idle < MAX_IDLE_BATCHES:
        suggestions = optimizer.ask(min(batch, budget - len(order)))
        if not suggestions:
            break
        new = 0
        for suggestion in suggestions:
            code = params_code(suggestion.params)
            if code not in seen and len(order) < budget:
                seen.add(code)
                order.append(code)
                new += 1
            values, violations = evaluate(code)
            optimizer.tell(suggestion.id, values, violations)
        idle = 0 if new else idle + 1
    return order


def drive_async(
    optimizer: Any,
    budget: int,
    workers: int,
    evaluate: Callable[[int], tuple[list[float], list[float]]],
    durations: Callable[[], float],
) -> list[int]:
    """Ask/tell ``optimizer`` as the asynchronous driver does, over ``workers`` workers on
    a virtual clock: each evaluation takes ``durations()`` (virtual) seconds, a worker that
    finishes is told at once and gets the next suggestion, until ``budget`` distinct
    architectures were started. A suggestion of an architecture already evaluated is told
    its values at once, one of an architecture being evaluated when that evaluation
    finishes. Returns the distinct op codes in the order their evaluations finished."""
    optimizer.drive_asynchronously()
    min_free = optimizer.min_free_workers(workers)
    order: list[int] = []
    known: set[int] = set()
    waiting: dict[int, list[int]] = {}  # code being evaluated -> suggestion ids
    running: list[tuple[float, int, int]] = []  # (finish, start order, code) heap
    now, started, idle = 0.0, 0, 0
    while True:
        free = workers - len(running)
        remaining = budget - len(known) - len(running)
        # as the driver: wait for the optimizer's fewest free workers while others run
        enough = free >= min(min_free, remaining) or not running
        if free > 0 and remaining > 0 and enough and idle < MAX_IDLE_BATCHES * workers:
            suggestions = optimizer.ask(min(free, remaining))
            if not suggestions and not running:
                break
            new = 0
            for suggestion in suggestions:
                code = params_code(suggestion.params)
                if code in known:
                    optimizer.tell(suggestion.id, *evaluate(code))
                elif code in waiting:
                    waiting[code].append(suggestion.id)
                else:
                    waiting[code] = [suggestion.id]
                    heapq.heappush(running, (now + durations(), started, code))
                    started += 1
                    new += 1
            idle = 0 if new else idle + max(1, len(suggestions))
            continue
        if not running:
            break
        now, _, code = heapq.heappop(running)
        order.append(code)
        known.add(code)
        for suggestion_id in waiting.pop(code):
            optimizer.tell(suggestion_id, *evaluate(code))
    return order


def lognormal(seed: int, cv: float) -> Callable[[], float]:
    """Draws of evaluation times with mean 1 and coefficient of variation ``cv``."""
    rng = np.random.default_rng(10_000 + seed)
    sigma = float(np.sqrt(np.log(1 + cv**2)))
    return lambda: float(rng.lognormal(-(sigma**2) / 2, sigma)) if cv > 0 else 1.0


def run_one(
    device: str,
    strategy: str,
    seed: int,
    budgets: Sequence[int],
    batch: int,
    use_prior: bool,
    options: Mapping[str, Any],
    encoding: str = "cell",
    driving: str = "generational",
    cv: float = 0.3,
) -> dict[str, Any]:
    """One search; the HV gap after the first N distinct evaluations for each N."""
    assert _TABLE is not None
    table = _TABLE
    points = normalised_points(table, device)
    full = hypervolume_2d(points)
    prior = prior_blocks(table, device, use_prior, encoding)

    start = time.perf_counter()
    optimizer = _make(strategy, options, seed=seed, prior=prior)

    def evaluate(code: int) -> tuple[list[float], list[float]]:
        return [table.accuracy[code] / 100.0, table.latency[device][code]], []

    if driving == "async":
        order = drive_async(optimizer, max(budgets), batch, evaluate, lognormal(seed, cv))
    else:
        order = drive(optimizer, max(budgets), batch, evaluate)
    seconds = time.perf_counter() - start
    gaps = {n: 1.0 - hypervolume_2d(points[order[:n]]) / full for n in budgets}
    return {
        "device": device,
        "strategy": strategy,
        "driving": driving,
        "seed": seed,
        "gaps": gaps,
        "evaluations": len(order),
        "seconds": seconds,
    }


def parse_budgets(parser: argparse.ArgumentParser, text: str, seeds: int) -> list[int]:
    """``--budget`` as sorted distinct budgets (each >= 1), with ``--seeds`` checked too."""
    try:
        budgets = sorted({int(b) for b in text.split(",")})
    except ValueError:
        parser.error(f"--budget: expected integers separated by commas, got {text!r}")
    if not budgets or budgets[0] < 1:
        parser.error(f"--budget: every budget must be >= 1, got {text!r}")
    if seeds < 1:
        parser.error(f"--seeds: must be >= 1, got {seeds}")
    return budgets


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--accuracy-csv", required=True)
    parser.add_argument("--latency-csv", required=True)
    parser.add_argument("--device", required=True, help="a latency column, or 'all'")
    parser.add_argument("--budget", required=True, help="evaluations, e.g. 100 or 50,100")
    parser.add_argument("--seeds", type=int, required=True, help="runs with seeds 0..S-1")
    parser.add_argument("--strategies", required=True, help="comma-separated optimizer names")
    parser.add_argument("--prior-latency-csv", default=None)
    parser.add_argument("--batch", type=int, default=10, help="suggestions per ask (10)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="processes")
    parser.add_argument(
        "--driving",
        default="generational",
        help="generational (ask --batch, tell all, repeat), async (--batch workers on a "
        "virtual clock, each told and given a new suggestion as it finishes), or both: "
        "async,generational",
    )
    parser.add_argument(
        "--cv",
        type=float,
        default=0.3,
        help="async: coefficient of variation of the lognormal evaluation times (0.3)",
    )
    parser.add_argument(
        "--encoding",
        choices=("cell", "family", "generic"),
        default="cell",
        help="cell: strategies that take prior features also get the cell's graph features "
        "(computed from the key); family: the nb201 family's features of "
        "hwsearch.predictors.features instead (the predictors' encoding); "
        "generic: only the space's own encoding",
    )
    parser.add_argument(
        "--options",
        default="{}",
        help='JSON: options per strategy, e.g. \'{"default": {"optimism": 2}}\'',
    )
    args = parser.parse_args(argv)

    budgets = parse_budgets(parser, args.budget, args.seeds)
    if args.batch < 1:
        parser.error(f"--batch: must be >= 1, got {args.batch}")
    strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    drivings = [d.strip() for d in args.driving.split(",") if d.strip()]
    if not drivings or any(d not in ("async", "generational") for d in drivings):
        parser.error(f"--driving: expected async, generational or both, got {args.driving!r}")
    if args.cv < 0:
        parser.error(f"--cv: must be >= 0, got {args.cv}")
    try:
        options = json.loads(args.options)
    except json.JSONDecodeError as exc:
        parser.error(f"--options: not JSON ({exc})")
    if not isinstance(options, dict) or not all(isinstance(v, dict) for v in options.values()):
        parser.error("--options: expected an object of strategy name -> options object")
    from hwsearch.search.optimizer import get_optimizer_class

    for name in strategies:
        try:
            get_optimizer_class(name).check_options(options.get(name, {}))
        except KeyError as exc:
            parser.error(f"--strategies: {exc}")
        except ValueError as exc:
            parser.error(f"--options: {name}: {exc}")
        try:  # options checked against the problem (one value per objective) fail here too
            _make(name, options.get(name, {}), seed=0, prior=None)
        except ValueError as exc:
            parser.error(f"--options: {name}: {exc}")
    table = Table(args.accuracy_csv, args.latency_csv, args.prior_latency_csv)
    devices = table.devices if args.device == "all" else [args.device]
    for device in devices:
        if device not in table.devices:
            parser.error(f"--device: {device!r} is not a column of {args.latency_csv}")
    use_prior = args.prior_latency_csv is not None
    if use_prior and not any(d != devices[0] for d in table.prior):
        parser.error("--prior-latency-csv: no device column other than the target")

    tasks = [
        (d, s, seed, driving)
        for seed in range(args.seeds)
        for s in strategies
        for d in devices
        for driving in drivings
    ]
    results: list[dict[str, Any]] = []
    init = (args.accuracy_csv, args.latency_csv, args.prior_latency_csv)
    started = time.perf_counter()
    if args.jobs <= 1:
        _init_worker(*init)
        for d, s, seed, driving in tasks:
            results.append(
                run_one(
                    d,
                    s,
                    seed,
                    budgets,
                    args.batch,
                    use_prior,
                    options.get(s, {}),
                    args.encoding,
                    driving,
                    args.cv,
                )
            )
    else:
        with ProcessPoolExecutor(args.jobs, initializer=_init_worker, initargs=init) as pool:
            futures = [
                pool.submit(
                    run_one,
                    d,
                    s,
                    seed,
                    budgets,
                    args.batch,
                    use_prior,
                    options.get(s, {}),
                    args.encoding,
                    driving,
                    args.cv,
                )
                for d, s, seed, driving in tasks
            ]
            results = [f.result() for f in futures]
    wall = time.perf_counter() - started

    summary: dict[tuple[str, str, int], list[float]] = {}
    cases = [(d, s, g) for d in devices for s in strategies for g in drivings]
    for device, strategy, driving in cases:
        runs = [
            r
            for r in results
            if r["device"] == device and r["strategy"] == strategy and r["driving"] == driving
        ]
        for n in budgets:
            gaps = [r["gaps"][n] for r in runs]
            line = {
                "device": device,
                "strategy": strategy,
                "driving": driving,
                "budget": n,
                "hv_gap_mean": round(float(np.mean(gaps)), 6),
                "hv_gap_std": round(float(np.std(gaps)), 6),
                "seeds": len(runs),
                "evaluations_min": min(min(r["evaluations"], n) for r in runs),
                "seconds_per_run": round(float(np.mean([r["seconds"] for r in runs])), 3),
                "prior": use_prior,
                "encoding": args.encoding,
            }
            print(json.dumps(line), flush=True)
            summary.setdefault((strategy, driving, n), []).append(line["hv_gap_mean"])
    for (strategy, driving, n), means in summary.items():
        line = {
            "device": "mean",
            "strategy": strategy,
            "driving": driving,
            "budget": n,
            "hv_gap_mean": round(float(np.mean(means)), 6),
            "hv_gap_std": round(float(np.std(means)), 6),
            "devices": len(means),
            "prior": use_prior,
            "encoding": args.encoding,
            "wall_s": round(wall, 1),
        }
        print(json.dumps(line), flush=True)
    if len(drivings) > 1:  # columns per strategy and driving
        for r in results:
            r["strategy"] = f"{r['strategy']} {r['driving']}"
        strategies = [f"{s} {g}" for s in strategies for g in drivings]
    _markdown(results, devices, strategies, budgets, wall)
    return 0


def _markdown(
    results: list[dict[str, Any]],
    devices: list[str],
    strategies: list[str],
    budgets: list[int],
    wall: float,
) -> None:
    cols = [(s, n) for n in budgets for s in strategies]
    head = " | ".join(f"{s} @{n}" for s, n in cols)
    lines = [f"| device | {head} |", "|---|" + "---:|" * len(cols)]
    means: dict[tuple[str, int], list[float]] = {c: [] for c in cols}
    for device in devices:
        cells = []
        for s, n in cols:
            gaps = [r["gaps"][n] for r in results if r["device"] == device and r["strategy"] == s]
            value = float(np.mean(gaps))
            means[(s, n)].append(value)
            cells.append(f"{value:.4f}")
        lines.append(f"| {device} | " + " | ".join(cells) + " |")
    lines.append("| **mean** | " + " | ".join(f"**{np.mean(means[c]):.4f}**" for c in cols) + " |")
    print("\n".join(lines), file=sys.stderr)
    print(f"wall time {wall:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    raise SystemExit(main())
