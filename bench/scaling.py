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
(c) Projection: a small simulation of generation-synchronous batches (the driver asks a
    batch, workers evaluate it, the driver stores each result and tells it, then takes the
    front) using the measured per-candidate overhead, at 64 and 512 workers.

    python bench/scaling.py [--sizes 1000,10000] [--optuna-trials 1000] [--skip-ray]
                            [--backends sqlite,postgresql,postgresql-async] [--profile N]

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
import json
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


def simulate(workers: int, eval_s: float, overhead_s: float, cv: float, n: int) -> float:
    """Parallel efficiency of generation-synchronous batches of ``workers`` candidates.

    Workers evaluate a batch at once (lognormal durations around ``eval_s`` with ``cv``);
    the driver stores and tells each result as it arrives, one at a time, ``overhead_s``
    each, and starts the next batch when the whole batch is stored.
    """
    rng = np.random.default_rng(0)
    sigma = np.sqrt(np.log(1 + cv**2))
    clock = 0.0
    done = 0
    while done < n:
        size = min(workers, n - done)
        finish = np.sort(
            clock + eval_s * rng.lognormal(-(sigma**2) / 2, sigma, size)
            if cv > 0
            else np.full(size, clock + eval_s)
        )
        driver = clock
        for t in finish:
            driver = max(driver, t) + overhead_s
        clock = driver
        done += size
    return float(n * eval_s / (clock * workers))


def projection(overhead_s: float) -> list[dict[str, Any]]:
    rows = []
    for eval_s in (0.5, 5.0, 60.0):
        for workers in (2, 64, 512):
            rows.append(
                {
                    "case": "projection",
                    "eval_s": eval_s,
                    "workers": workers,
                    "efficiency_fixed": round(simulate(workers, eval_s, overhead_s, 0.0, 4096), 3),
                    "efficiency_cv0.3": round(simulate(workers, eval_s, overhead_s, 0.3, 4096), 3),
                    "driver_bound_at_workers": int(eval_s / overhead_s),
                }
            )
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
    args = parser.parse_args()
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
    drivers = [r for r in results if r["case"] == "driver"]
    pg = [r for r in drivers if r["backend"] == "postgresql"] or drivers
    overhead = max(pg, key=lambda r: r["candidates"])["ms_per_candidate"] / 1000
    for row in projection(overhead):
        results.append(row)
        print(json.dumps(row), flush=True)

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
    print("\n| eval s | workers | efficiency (fixed) | efficiency (cv 0.3) | driver-bound at |")
    print("|---:|---:|---:|---:|---:|")
    for r in results:
        if r["case"] == "projection":
            print(
                f"| {r['eval_s']} | {r['workers']} | {r['efficiency_fixed']} | "
                f"{r['efficiency_cv0.3']} | {r['driver_bound_at_workers']} |"
            )


if __name__ == "__main__":
    main()
