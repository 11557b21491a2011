"""Load test of the REST API: concurrent clients querying the front of a 10,000-candidate job.

Builds a job directly through the Store with synthetic but plausible candidates (an MLP-like
trade-off: accuracy rises with model size and saturates; latency grows with size, with 5%
timing noise; size from parameters at 8 or 32 bits; one candidate in five carries a
*predicted* latency instead of a measured one), takes its three-objective Pareto front
(accuracy up, latency and size down) with the search's own ``compute_front``, then starts
``hwsearch serve`` as a separate process on 127.0.0.1 and runs ``--clients`` concurrent
clients against ``GET /jobs/{id}/front`` for ``--duration`` seconds. Each request asks for
one page of 50 points with one of several filters, sorts and offsets. Prints requests/s and
latency percentiles (client-side, connection reuse, one request in flight per client).

    .venv/bin/python bench/api_load.py                   # 50 clients, 30 s
    .venv/bin/python bench/api_load.py --clients 10 --duration 5
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from hwsearch.db import Store
from hwsearch.records import CandidateRecord, MetricValue, Provenance, TokenScope
from hwsearch.search.front import compute_front, reference_point
from hwsearch.search.hashing import config_hash
from hwsearch.search.objectives import Objective
from hwsearch.service.api import create_token

QUERIES: list[dict[str, str | int]] = [
    {"limit": 50},
    {"limit": 50, "sort": "-accuracy"},
    {"limit": 50, "sort": "latency_ms", "offset": 50},
    {"limit": 50, "where": "latency_ms <= 0.5 and accuracy >= 0.9"},
    {"limit": 50, "where": "size_bytes < 200000 or not (accuracy < 0.95)", "sort": "size_bytes"},
    {"limit": 50, "measured_only": "true", "metrics": "accuracy,latency_ms,size_bytes"},
]
MAX_DURATION_S = 120.0
MAX_CLIENTS = 200


def build_job(store: Store, n: int, seed: int = 0) -> tuple[int, int]:
    """A finished job of ``n`` synthetic candidates and its front; (job id, front size)."""
    rng = np.random.default_rng(seed)
    spec = {
        "name": "load-test",
        "family": "mlp",
        "target": "cpu",
        "budget": {"evaluations": n},
        "objectives": [
            {"metric": "accuracy", "direction": "maximize"},
            {"metric": "latency_ms", "direction": "minimize"},
            {"metric": "size_bytes", "direction": "minimize"},
        ],
    }
    job = store.create_job(name="load-test", family="mlp", target="cpu", spec=spec)
    configs: list[dict[str, Any]] = []
    hashes: list[str] = []
    seen: set[str] = set()
    while len(configs) < n:  # distinct configs: a job holds each config hash once
        depth = int(rng.integers(1, 5))
        config: dict[str, Any] = {
            "depth": depth,
            "width": [int(w) for w in rng.choice([8, 16, 32, 48, 64, 96, 128, 256], depth)],
            "activation": str(rng.choice(["relu", "gelu"])),
            "sparsity": float(rng.choice([0.0, 0.25, 0.5, 0.75])),
            "weight_bits": int(rng.choice([8, 32])),
        }
        digest = config_hash("mlp", config)
        if digest not in seen:
            seen.add(digest)
            configs.append(config)
            hashes.append(digest)
    added = store.add_candidates(
        job.id, [(h, c, i // 50) for i, (h, c) in enumerate(zip(hashes, configs, strict=True))]
    )
    records: list[CandidateRecord] = []
    for i, (candidate, config) in enumerate(zip(added, configs, strict=True)):
        widths = [64, *config["width"], 10]
        dense = sum(a * b + b for a, b in itertools.pairwise(widths))
        params = int(dense * (1 - config["sparsity"]))
        size = params * config["weight_bits"] / 8
        accuracy = float(np.clip(1 - 0.6 * np.exp(-params / 6000) + rng.normal(0, 0.01), 0, 1))
        latency = float(0.02 + params / 4e5 * (0.6 if config["weight_bits"] == 8 else 1.0))
        latency *= float(rng.lognormal(0, 0.05))
        predicted = i % 5 == 4
        timing = (
            {"predictor": "synthetic", "std": latency * 0.1}
            if predicted
            else {"repeats": 50, "cv": 0.03, "converged": True}
        )
        metrics = [
            MetricValue("accuracy", accuracy, Provenance.MEASURED, details={"synthetic": True}),
            MetricValue(
                "latency_ms",
                latency,
                Provenance.PREDICTED if predicted else Provenance.MEASURED,
                details=timing,
            ),
            MetricValue(
                "size_bytes", size, Provenance.ESTIMATED, details={"bits": config["weight_bits"]}
            ),
            MetricValue("params", float(params), Provenance.ESTIMATED),
        ]
        store.record_result(candidate.id, metrics, feasible=True)
        records.append(
            CandidateRecord(
                id=candidate.id,
                job_id=job.id,
                config_hash=candidate.config_hash,
                config=config,
                generation=candidate.generation,
                status=candidate.status.DONE,
                feasible=True,
                metrics={m.name: m for m in metrics},
            )
        )
    objectives = [
        Objective("accuracy", "maximize"),
        Objective("latency_ms", "minimize"),
        Objective("size_bytes", "minimize"),
    ]
    reference = reference_point(records, objectives)
    points, volume = compute_front(records, objectives, reference)
    store.save_front(
        job.id,
        generation=0,
        objectives=[o.metric for o in objectives],
        directions=[o.direction for o in objectives],
        reference_point=reference,
        hypervolume=volume,
        evaluations=n,
        points=points,
    )
    return job.id, len(points)


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux ``/proc``), to tell server cost from
    waiting for a busy machine."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def _client(
    http: httpx.AsyncClient,
    path: str,
    stop_at: float,
    latencies: list[float],
    errors: list[int],
    k: int,
) -> None:
    i = k
    while time.perf_counter() < stop_at:
        params = QUERIES[i % len(QUERIES)]
        i += 1
        start = time.perf_counter()
        response = await http.get(path, params=params)
        latencies.append(time.perf_counter() - start)
        if response.status_code != 200:
            errors.append(response.status_code)


async def load(
    url: str, token: str, job_id: int, clients: int, duration: float
) -> dict[str, float]:
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(
        base_url=url, headers={"Authorization": f"Bearer {token}"}, limits=limits, timeout=30
    ) as http:
        path = f"/jobs/{job_id}/front"
        (await http.get(path)).raise_for_status()  # warm the server's front cache
        latencies: list[float] = []
        errors: list[int] = []
        start = time.perf_counter()
        await asyncio.gather(
            *(_client(http, path, start + duration, latencies, errors, k) for k in range(clients))
        )
        elapsed = time.perf_counter() - start
    ms = sorted(v * 1000 for v in latencies)
    return {
        "requests": len(ms),
        "errors": len(errors),
        "rps": len(ms) / elapsed,
        "p50": statistics.median(ms),
        "p90": ms[int(0.90 * (len(ms) - 1))],
        "p99": ms[int(0.99 * (len(ms) - 1))],
        "max": ms[-1],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of load")
    parser.add_argument("--candidates", type=int, default=10_000)
    args = parser.parse_args()
    if not 1 <= args.clients <= MAX_CLIENTS:
        parser.error(f"--clients must be 1..{MAX_CLIENTS}, got {args.clients}")
    if not 0 < args.duration <= MAX_DURATION_S:
        parser.error(f"--duration must be in (0, {MAX_DURATION_S}], got {args.duration}")

    with tempfile.TemporaryDirectory(prefix="hwsearch-load-") as folder:
        url = f"sqlite:///{Path(folder) / 'load.db'}"
        started = time.perf_counter()
        with Store.open(url) as store:
            job_id, front_size = build_job(store, args.candidates)
            token, _ = create_token(store, "load-test", TokenScope.READ)
        print(
            f"job {job_id}: {args.candidates} candidates, front of {front_size} points "
            f"(built in {time.perf_counter() - started:.1f} s)"
        )
        port = _free_port()
        hwsearch = Path(sys.executable).with_name("hwsearch")
        server = subprocess.Popen(
            [str(hwsearch), "serve", "--db", url, "--port", str(port), "--no-run-jobs"],
            stderr=subprocess.DEVNULL,
            env={**os.environ},
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit("the server did not start")
                time.sleep(0.2)
            cpu_before = _cpu_seconds(server.pid)
            result = asyncio.run(load(base, token, job_id, args.clients, args.duration))
            server_cpu = _cpu_seconds(server.pid) - cpu_before
        finally:
            server.send_signal(signal.SIGINT)
            server.wait(30)
    print(
        f"{args.clients} clients, {args.duration:.0f} s: {result['requests']:.0f} requests, "
        f"{result['errors']:.0f} errors, {result['rps']:.0f} requests/s; latency ms "
        f"p50 {result['p50']:.1f}, p90 {result['p90']:.1f}, p99 {result['p99']:.1f}, "
        f"max {result['max']:.1f}"
    )
    per_request = 1000 * server_cpu / max(result["requests"], 1)
    print(
        f"server CPU {server_cpu:.1f} s in all, {per_request:.2f} ms per request "
        f"(one core serves at most ~{1000 / per_request:.0f} requests/s); "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    )


if __name__ == "__main__":
    main()
