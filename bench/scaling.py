"""How far does one driver scale? Throughput, parallel efficiency, memory, and a projection.

(a) Driver throughput: the real driver (ask, hash, store, tell, front per generation) with a
    trivially cheap evaluation computed from the config hash, at 1,000 and 10,000
    candidates, on a SQLite file and on PostgreSQL. Each case runs in a fresh process, so
    its peak RSS is its own. Besides the wall time per candidate each case reports the
    driver's own CPU time per candidate and its SQL statements and commits per candidate
    (figures a busy machine does not move), and the floor of one committed write on that
    database just before and just after the case (a one-row INSERT and its COMMIT: on
    PostgreSQL mostly the WAL flush, which a busy disk stretches).
    Optuna's own per-trial cost with its RDB storage on the same database (ask + tell of a
    random sampler, nothing else) is measured in the same run as the reference, and so is
    the driver with ``optuna-nsga2``, whose study then lives in the job's database.
(b) Parallel efficiency: a fixed 0.5 s evaluation on a local Ray instance with 1 and 2
    workers; efficiency = T(1) / (2 T(2)).
(c) Projection: the real driver (``random`` optimizer, a store of its own per case) over 2, 64
    and 512 simulated workers (``--workers``) on a virtual clock (``SimulatedExecutor``: no
    sleeping), for 0.5 s, 5 s and 60 s evaluations (``--eval-s``; ``--wait-fraction F``: asking
    only once ``ceil(F x workers)`` are free), fixed or drawn lognormal with a coefficient of
    variation of 0.3 and 1.0; the driver's own real time between executor calls is charged to
    the clock, so its cost per candidate limits the figure as it would a real run. Parallel
    efficiency = busy worker time / (elapsed time x workers) until the last candidate starts
    (``efficiency_*``: while there is work to give out; the end of the run, where workers go
    idle as the last evaluations finish whatever the driver does, is in ``whole_run_*``), over 8
    evaluations per worker (at least 256), for each ``--driving``: ``generational`` (batches of
    one evaluation per worker, the driver waiting for the slowest) and ``async`` (a free worker
    gets its next candidate at once).

    python bench/scaling.py [--sizes 1000,10000] [--optuna-trials 1000] [--skip-ray]
                            [--backends sqlite,postgresql,postgresql-async] [--profile N]
                            [--driving async,generational] [--projection-backend sqlite]
                            [--workers 2,64,512] [--eval-s 0.5,5,60] [--wait-fraction 0]
                            [--projection-only]

``--profile N`` runs one driver case of N candidates per backend under cProfile instead and
prints where its time goes.

Backends: a SQLite file; PostgreSQL as configured by default; and PostgreSQL with
``synchronous_commit=off`` set in the URL (``postgresql-async``). PostgreSQL:
``HWSEARCH_TEST_POSTGRES_URL`` (default postgresql://postgres@127.0.0.1:5432/test);
each case gets a schema of its own, dropped afterwards. Prints one JSON line per case and
Markdown tables at the end.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

POSTGRES = os.environ.get("HWSEARCH_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
BATCH = 32
EVAL_S = 0.5


def spec(evaluations: int, population: int = BATCH, optimizer: str = "random") -> dict[str, Any]:
    """An mlp space with far more than 10,000 distinct configs; random sampling."""
    return {
        "name": f"scaling-{evaluations}",
        "family": "mlp",
        "target": "cpu",
        "space": {
            "depth": {"type": "int", "low": 1, "high": 4},
            "width": {"type": "int", "low": 8, "high": 512, "per_layer": 4},
            "weight_bits": {"type": "choice", "values": [8, 16, 32]},
        },
        "objectives": [
            {"metric": "accuracy", "direction": "maximize"},
            {"metric": "latency_ms", "direction": "minimize"},
        ],
        "budget": {"evaluations": evaluations},
        "optimizer": {"name": optimizer, "population_size": population},
        "seed": 0,
    }


def cheap(task: Any) -> Any:
    """Two objective values from the config hash: no model, no timing."""
    from hwsearch.records import MetricValue, Provenance
    from hwsearch.workers import EvalOutcome

    a = int(task.config_hash[:8], 16) / 2**32
    b = int(task.config_hash[8:16], 16) / 2**32
    metrics = [
        MetricValue("accuracy", a, Provenance.ESTIMATED, task.target, {"model": "hash"}),
        MetricValue("latency_ms", 0.1 + a * b + b, Provenance.ESTIMATED, task.target, {}),
    ]
    return EvalOutcome(task.candidate_id, metrics)


class FixedCost:
    """A fixed-cost evaluation (sleeps), returning the cheap values."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def __call__(self, task: Any) -> Any:
        time.sleep(self.seconds)
        return cheap(task)


# -- (a) one throughput case, in its own process ---------------------------------------------


def _schema_url(schema: str, *, async_commit: bool = False) -> str:
    """The server's URL with ``schema`` first on the search path; ``async_commit`` adds
    ``synchronous_commit=off`` (commits return before the WAL reaches the disk)."""
    from sqlalchemy.engine import make_url

    options = f"-csearch_path={schema}" + (" -csynchronous_commit=off" if async_commit else "")
    url = make_url(POSTGRES).update_query_dict({"options": options})
    return url.render_as_string(hide_password=False)


def _with_schema(backend: str, run: Any) -> Any:
    import psycopg

    if backend == "sqlite":
        with tempfile.TemporaryDirectory() as folder:
            return run(f"sqlite:///{Path(folder) / 'bench.db'}")
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(POSTGRES, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        return run(_schema_url(schema, async_commit=backend == "postgresql-async"))
    finally:
        with psycopg.connect(POSTGRES, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def commit_floor(url: str, n: int = 200) -> float:
    """Milliseconds of one committed one-row INSERT on ``url`` (a table of its own)."""
    from sqlalchemy import text

    from hwsearch.db import make_engine
    from hwsearch.db.engine import WRITE_OPTION

    engine = make_engine(url).execution_options(**{WRITE_OPTION: True})
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE bench_commit (id INTEGER PRIMARY KEY, v FLOAT)"))
        started = time.perf_counter()
        for i in range(n):
            with engine.begin() as conn:
                conn.execute(text("INSERT INTO bench_commit VALUES (:i, 1.0)"), {"i": i})
        elapsed = time.perf_counter() - started
        with engine.begin() as conn:
            conn.execute(text("DROP TABLE bench_commit"))
    finally:
        engine.engine.dispose()
    return 1000 * elapsed / n


def driver_case(backend: str, n: int, optimizer: str = "random") -> dict[str, Any]:
    from sqlalchemy import event

    from hwsearch.db import Store
    from hwsearch.search.driver import Driver
    from hwsearch.search.front import compute_front
    from hwsearch.search.spec import parse_spec
    from hwsearch.workers import InProcessExecutor

    def run(url: str) -> dict[str, Any]:
        job_spec = parse_spec(spec(n, optimizer=optimizer))
        with Store.open(url) as store:
            driver = Driver(job_spec, store, executor=InProcessExecutor(evaluate=cheap))
            counts = {"statements": 0, "commits": 0}

            def statement(*args: Any) -> None:
                counts["statements"] += 1

            def commit(*args: Any) -> None:
                counts["commits"] += 1

            floor_before = commit_floor(url)
            event.listen(store.engine, "before_cursor_execute", statement)
            event.listen(store.engine, "commit", commit)
            started = time.perf_counter()
            cpu = time.process_time()
            job = driver.run()
            cpu = time.process_time() - cpu
            wall = time.perf_counter() - started
            event.remove(store.engine, "before_cursor_execute", statement)
            event.remove(store.engine, "commit", commit)
            rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # the driver's
            # The incrementally kept front must be the front of every stored candidate.
            stored = store.latest_front(job.id)
            assert stored is not None
            everything = store.list_candidates(job.id)
            full, _ = compute_front(everything, driver.objectives, stored.reference_point)
            assert sorted(p.candidate_id for p in full) == sorted(
                p.candidate_id for p in stored.points
            ), "incremental front differs from the front of all candidates"
        return {
            "case": "driver" if optimizer == "random" else "driver-optuna",
            "backend": backend,
            "optimizer": optimizer,
            "candidates": job.evaluations,
            "generations": len({c.generation for c in everything}),
            "wall_s": round(wall, 2),
            "per_s": round(job.evaluations / wall, 1),
            "ms_per_candidate": round(1000 * wall / job.evaluations, 3),
            "cpu_ms_per_candidate": round(1000 * cpu / job.evaluations, 3),
            "statements_per_candidate": round(counts["statements"] / job.evaluations, 2),
            "commits_per_candidate": round(counts["commits"] / job.evaluations, 3),
            "commit_floor_ms": [round(floor_before, 3), round(commit_floor(url), 3)],
            "rss_mb": round(rss_mb, 1),
        }

    result: dict[str, Any] = _with_schema(backend, run)
    return result


def optuna_case(backend: str, n: int) -> dict[str, Any]:
    """Optuna's per-trial cost with its RDB storage on the same kind of database."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    dist = optuna.distributions
    space: dict[str, optuna.distributions.BaseDistribution] = {"depth": dist.IntDistribution(1, 4)}
    space |= {f"width[{i}]": dist.IntDistribution(8, 512) for i in range(4)}
    space["weight_bits"] = dist.CategoricalDistribution([8, 16, 32])

    def run(url: str) -> dict[str, Any]:
        storage_url = url
        if backend.startswith("postgresql"):
            storage_url = url.replace("postgresql://", "postgresql+psycopg://", 1)
        study = optuna.create_study(
            storage=storage_url,
            directions=["maximize", "minimize"],
            sampler=optuna.samplers.RandomSampler(seed=0),
        )
        started = time.perf_counter()
        for _ in range(n):
            trial = study.ask(fixed_distributions=space)
            study.tell(trial, [0.5, trial.params["depth"] * 0.1])
        wall = time.perf_counter() - started
        return {
            "case": "optuna-rdb",
            "backend": backend,
            "trials": n,
            "wall_s": round(wall, 2),
            "ms_per_trial": round(1000 * wall / n, 3),
        }

    result: dict[str, Any] = _with_schema(backend, run)
    return result


# -- (b) parallel efficiency on Ray ------------------------------------------------------


def ray_case(n: int) -> dict[str, Any]:
    import ray

    from hwsearch.db import Store
    from hwsearch.search.driver import run_job
    from hwsearch.search.spec import parse_spec
    from hwsearch.workers.ray_executor import RayExecutor

    ray.init(
        address="local",  # a new instance, never a cluster started on this node
        num_cpus=2,
        include_dashboard=False,
        _node_ip_address="127.0.0.1",
        object_store_memory=96 * 1024**2,
        log_to_driver=False,
    )
    times: dict[int, float] = {}
    try:
        with tempfile.TemporaryDirectory() as folder:
            for workers in (1, 2):
                url = f"sqlite:///{Path(folder) / f'ray-{workers}.db'}"
                # One batch per round of workers: the batch is the workers, as on a cluster.
                with Store.open(url) as store:
                    executor = RayExecutor(workers=workers, evaluate=FixedCost(EVAL_S))
                    job_spec = parse_spec(spec(n, population=workers))
                    started = time.perf_counter()
                    job = run_job(job_spec, store, executor=executor)
                    times[workers] = time.perf_counter() - started
                    executor.close()
                    assert job.evaluations == n
    finally:
        ray.shutdown()
    ideal = n * EVAL_S
    return {
        "case": "ray",
        "candidates": n,
        "eval_s": EVAL_S,
        "t1_s": round(times[1], 2),
        "t2_s": round(times[2], 2),
        "efficiency_1": round(ideal / times[1], 3),
        "efficiency_2": round(times[1] / (2 * times[2]), 3),
    }


# -- (c) projection ----------------------------------------------------------------------


def lognormal_durations(eval_s: float, cv: float, seed: int) -> Callable[[Any], float]:
    """Evaluation times with mean ``eval_s`` and coefficient of variation ``cv`` (lognormal;
    ``cv`` 0: always ``eval_s``), drawn in the order tasks start."""
    rng = np.random.default_rng(seed)
    sigma = float(np.sqrt(np.log(1 + cv**2)))

    def duration(task: Any) -> float:
        if cv == 0:
            return eval_s
        return float(eval_s * rng.lognormal(-(sigma**2) / 2, sigma))

    return duration


def _waiting_random(fraction: float) -> str:
    """The name of a ``random`` optimizer that, driven asynchronously, asks only once
    ``max(1, ceil(workers * fraction))`` workers are free (the default strategy's batch rule
    at 0.25), registered on first use; ``random`` itself where ``fraction`` is 0."""
    from hwsearch.search.optimizer import RandomOptimizer, register_optimizer

    if fraction <= 0:
        return "random"

    class WaitingRandom(RandomOptimizer):
        def min_free_workers(self, workers: int) -> int:
            return max(1, math.ceil(workers * fraction))

    name = f"random-wait-{fraction}"
    register_optimizer(name, WaitingRandom)
    return name


def projection_case(
    driving: str,
    workers: int,
    eval_s: float,
    cv: float,
    n: int,
    url: str,
    wait_fraction: float = 0.0,
) -> dict[str, float]:
    """Parallel efficiency of the real driver (``random`` optimizer, the store on ``url``)
    over ``workers`` simulated workers on a virtual clock: each evaluation takes a drawn
    virtual time, and the driver's own real time between executor calls (ask, hash, store,
    tell, front) is charged to the clock, so a driver too slow for its workers shows."""
    from hwsearch.db import Store
    from hwsearch.search.driver import Driver
    from hwsearch.search.spec import parse_spec
    from hwsearch.workers.simulated import SimulatedExecutor

    data = spec(n, population=workers, optimizer=_waiting_random(wait_fraction))
    data["search"] = {"driving": driving}
    executor = SimulatedExecutor(
        workers=workers,
        duration=lognormal_durations(eval_s, cv, seed=workers),
        evaluate=cheap,
        charge_caller=True,
    )
    with Store.open(url) as store:
        job = Driver(parse_spec(data), store, executor=executor).run()
    assert job.evaluations == n, job
    return {
        "efficiency": executor.steady_efficiency(),
        "whole_run": executor.efficiency(),
        "driver_ms_per_candidate": 1000 * executor.caller_s / n,
    }


def projection(
    drivings: list[str],
    backend: str,
    sizes: tuple[int, ...] = (2, 64, 512),
    eval_times: tuple[float, ...] = (0.5, 5.0, 60.0),
    wait_fraction: float = 0.0,
) -> list[dict[str, Any]]:
    """Every (driving, evaluation time, workers) case at cv 0, 0.3 and 1.0; one database
    per case (a SQLite file, or a schema of the PostgreSQL server)."""
    rows = []
    for driving in drivings:
        for eval_s in eval_times:
            for workers in sizes:
                n = max(256, 8 * workers)  # 8 evaluations per worker at the largest size
                row: dict[str, Any] = {
                    "case": "projection",
                    "driving": driving,
                    "backend": backend,
                    "eval_s": eval_s,
                    "workers": workers,
                    "candidates": n,
                    "wait_fraction": wait_fraction,
                }
                cost = []
                for key, cv in (("fixed", 0.0), ("cv0.3", 0.3), ("cv1.0", 1.0)):
                    result = _with_schema(
                        backend,
                        functools.partial(
                            projection_case,
                            driving,
                            workers,
                            eval_s,
                            cv,
                            n,
                            wait_fraction=wait_fraction,
                        ),
                    )
                    row[f"efficiency_{key}"] = round(result["efficiency"], 3)
                    row[f"whole_run_{key}"] = round(result["whole_run"], 3)
                    cost.append(result["driver_ms_per_candidate"])
                row["driver_ms_per_candidate"] = round(float(np.mean(cost)), 3)
                row["driver_bound_at_workers"] = int(eval_s / (float(np.mean(cost)) / 1000))
                rows.append(row)
                print(json.dumps(row), flush=True)
    return rows


# -- main --------------------------------------------------------------------------------


def profiled_case(backend: str, n: int) -> dict[str, Any]:
    """:func:`driver_case` under cProfile; where the time went is printed to stderr."""
    import cProfile
    import io
    import pstats

    profile = cProfile.Profile()
    result = profile.runcall(driver_case, backend, n)
    out = io.StringIO()
    stats = pstats.Stats(profile, stream=out).sort_stats("cumulative")
    stats.print_stats(r"hwsearch/(search|db)/", 25)
    stats.sort_stats("tottime").print_stats(12)
    print(out.getvalue(), file=sys.stderr)
    return result


CASES: dict[str, Callable[[str, int], dict[str, Any]]] = {
    "driver": driver_case,
    "driver-optuna": lambda backend, n: driver_case(backend, n, optimizer="optuna-nsga2"),
    "optuna": optuna_case,
    "profile": profiled_case,
}


def _in_child(kind: str, backend: str, n: int, *, show_stderr: bool = False) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", kind, backend, str(n)],
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        raise RuntimeError(f"{kind} on {backend} with {n} failed:\n{out.stderr[-3000:]}")
    if show_stderr:
        print(out.stderr, flush=True)
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--optuna-trials", type=int, default=1000)
    parser.add_argument("--ray-candidates", type=int, default=24)
    parser.add_argument("--backends", default="sqlite,postgresql,postgresql-async")
    parser.add_argument("--skip-ray", action="store_true")
    parser.add_argument("--profile", type=int, metavar="N")
    parser.add_argument("--child", nargs=3, metavar=("KIND", "BACKEND", "N"))
    parser.add_argument(
        "--driving",
        default="async,generational",
        help="drivings of the projection: async, generational or both (async,generational)",
    )
    parser.add_argument(
        "--projection-backend", default="sqlite", help="the store of the projection's driver"
    )
    parser.add_argument("--projection-only", action="store_true", help="only the projection (c)")
    parser.add_argument(
        "--workers", default="2,64,512", help="worker counts of the projection (2,64,512)"
    )
    parser.add_argument(
        "--eval-s", default="0.5,5,60", help="mean evaluation times of the projection (0.5,5,60)"
    )
    parser.add_argument(
        "--wait-fraction",
        type=float,
        default=0.0,
        help="projection: ask only once ceil(workers * F) workers are free (0: one; the "
        "default strategy's rule is 0.25)",
    )
    args = parser.parse_args()
    drivings = [d.strip() for d in args.driving.split(",") if d.strip()]
    for driving in drivings:
        if driving not in ("async", "generational"):
            parser.error(f"--driving: {driving!r} is neither async nor generational")
    try:
        sizes = tuple(int(w) for w in args.workers.split(","))
    except ValueError:
        parser.error(f"--workers: expected integers separated by commas, got {args.workers!r}")
    try:
        eval_times = tuple(float(e) for e in args.eval_s.split(","))
    except ValueError:
        parser.error(f"--eval-s: expected numbers separated by commas, got {args.eval_s!r}")
    if not 0 <= args.wait_fraction <= 1:
        parser.error(f"--wait-fraction: expected a number from 0 to 1, got {args.wait_fraction}")
    if args.projection_only:
        _projection_table(
            projection(drivings, args.projection_backend, sizes, eval_times, args.wait_fraction)
        )
        return
    if args.child:
        kind, backend, n = args.child
        print(json.dumps(CASES[kind](backend, int(n))))
        return
    if args.profile:
        for backend in args.backends.split(","):
            print(json.dumps(_in_child("profile", backend, args.profile, show_stderr=True)))
        return

    results: list[dict[str, Any]] = []
    for backend in args.backends.split(","):
        for n in (int(s) for s in args.sizes.split(",")):
            results.append(_in_child("driver", backend, n))
            print(json.dumps(results[-1]), flush=True)
        if backend != "postgresql-async":
            results.append(_in_child("optuna", backend, args.optuna_trials))
            print(json.dumps(results[-1]), flush=True)
            results.append(_in_child("driver-optuna", backend, args.optuna_trials))
            print(json.dumps(results[-1]), flush=True)
    if not args.skip_ray:
        results.append(ray_case(args.ray_candidates))
        print(json.dumps(results[-1]), flush=True)
    results += projection(drivings, args.projection_backend, sizes)

    print(
        "\n| backend | optimizer | candidates | wall s | candidates/s | ms/candidate | "
        "CPU ms/candidate | statements/candidate | commits/candidate | commit floor ms "
        "(before / after) | "
        "peak RSS MB |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        if r["case"].startswith("driver"):
            print(
                f"| {r['backend']} | {r['optimizer']} | "
                f"{r['candidates']} | {r['wall_s']} | {r['per_s']} | {r['ms_per_candidate']} | "
                f"{r['cpu_ms_per_candidate']} | {r['statements_per_candidate']} | "
                f"{r['commits_per_candidate']} | "
                f"{' / '.join(map(str, r['commit_floor_ms']))} | {r['rss_mb']} |"
            )
    print("\n| Optuna RDB storage | trials | ms/trial |\n|---|---:|---:|")
    for r in results:
        if r["case"] == "optuna-rdb":
            print(f"| {r['backend']} | {r['trials']} | {r['ms_per_trial']} |")
    _projection_table(results)


def _projection_table(results: list[dict[str, Any]]) -> None:
    print(
        "\n| driving | eval s | workers | efficiency (fixed) | efficiency (cv 0.3) | "
        "efficiency (cv 1.0) | driver ms/candidate | driver-bound at |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        if r["case"] == "projection":
            print(
                f"| {r['driving']} | {r['eval_s']} | {r['workers']} | {r['efficiency_fixed']} | "
                f"{r['efficiency_cv0.3']} | {r['efficiency_cv1.0']} | "
                f"{r['driver_ms_per_candidate']} | {r['driver_bound_at_workers']} |"
            )


if __name__ == "__main__":
    main()
