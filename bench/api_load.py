"""Load test of the REST API: concurrent clients querying the front of a 10,000-candidate job.

Builds a job directly through the Store with synthetic but plausible candidates (an MLP-like
trade-off: accuracy rises with model size and saturates; latency grows with size, with 5%
timing noise; size from parameters at 8 or 32 bits; one candidate in five carries a
*predicted* latency instead of a measured one), takes its three-objective Pareto front
(accuracy up, latency and size down) with the search's own ``compute_front``, then starts
``hwsearch serve`` as a separate process on 127.0.0.1 and runs ``--clients`` concurrent
clients against ``GET /jobs/{id}/front`` for ``--duration`` seconds. Each request asks for
one page of 50 points with one of several filters, sorts and offsets (``--uncached``: each
with a filter term of its own, so that no answer comes from a cache). Prints requests/s,
latency percentiles (client-side, one keep-alive connection and one request in flight per
client, no think time), the server's CPU per request and the load average.

The clients are plain asyncio streams speaking HTTP/1.1 (on uvloop where installed), not an
HTTP library: the load generator shares the machine with the server and must cost it as
little CPU as it can (it prints its own). Every status is checked to be 200, and one body in
``CHECK_EVERY`` (and every query once before the clock starts) is parsed and checked.

    .venv/bin/python bench/api_load.py                   # 50 clients, 30 s
    .venv/bin/python bench/api_load.py --clients 10 --duration 5
    .venv/bin/python bench/api_load.py --api-workers 2 --uncached
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
MAX_API_WORKERS = 8
CHECK_EVERY = 50  # parse one body in this many (and every query once before the clock)

#: The ``i``-th request of a client: its bytes and the page size it asks for.
Requests = Callable[[int], tuple[bytes, int]]


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


def _tree_cpu_seconds(pid: int) -> float:
    """CPU time of ``pid`` and its live child processes (the server's workers)."""
    total = _cpu_seconds(pid)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended meanwhile
            continue
        if int(fields[1]) == pid:
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def _load_average() -> str:
    return ", ".join(f"{v:.2f}" for v in os.getloadavg())


def _wait_until_up(
    url: str, server: subprocess.Popen[bytes], workers: int, timeout: float = 120
) -> None:
    """Until ``url`` answers and, with several workers, every worker has started: they share
    one listening socket, and a connection stays with the worker that accepted it, so the
    clients must not connect while only some accept. A worker has started when the server's
    processes stop using CPU (importing and starting up)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    break
        except OSError:
            pass
        if time.monotonic() > deadline or server.poll() is not None:
            raise SystemExit("the server did not start")
        time.sleep(0.2)
    if workers == 1:
        return
    before = _tree_cpu_seconds(server.pid)
    while time.monotonic() < deadline:
        time.sleep(1.0)
        now = _tree_cpu_seconds(server.pid)
        if now - before < 0.05:
            return
        before = now
    raise SystemExit(f"the server's {workers} workers did not settle")


def _run(coroutine: Coroutine[Any, Any, Result]) -> Result:
    """Run on uvloop where it is installed (a cheaper event loop leaves more CPU to the
    server), else on asyncio's own."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _request(host: str, port: int, target: str, token: str) -> bytes:
    """A keep-alive ``GET`` as bytes, built once per query so that a client only sends it."""
    return (
        f"GET {target} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Authorization: Bearer {token}\r\nAccept: application/json\r\n\r\n"
    ).encode("ascii")


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> tuple[int, bytes, bool]:
    """Send one request and read its response: (status, body, whether the server keeps the
    connection open). Only ``Content-Length`` bodies are read: the API sends no others."""
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length = -1
    keep = True
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        if name == "content-length":
            length = int(value)
        elif name == "connection" and value.strip().lower() == "close":
            keep = False
    if length < 0:
        raise RuntimeError(f"response without Content-Length (status {status})")
    body = await reader.readexactly(length) if length else b""
    return status, body, keep


def _check_body(body: bytes, limit: int) -> None:
    """A front page parses as JSON and holds at most ``limit`` points."""
    page = json.loads(body)
    if not isinstance(page, dict) or not isinstance(page.get("points"), list):
        raise RuntimeError(f"not a front page: {body[:200]!r}")
    if len(page["points"]) > limit or not isinstance(page.get("count"), int):
        raise RuntimeError(f"a page of {len(page['points'])} points for limit {limit}")


def _queries(host: str, port: int, token: str, job_id: int, uncached: bool) -> Requests:
    """The request to send as the ``i``-th of a client (bytes, and its page size).

    By default the clients cycle through :data:`QUERIES`. ``uncached`` adds to each request a
    filter term no other request has and that every point passes (``params >= -n``), so the
    server filters, sorts and encodes every request as a new query: the cost of a cache miss.
    """
    path = f"/jobs/{job_id}/front"
    fixed = [
        (_request(host, port, f"{path}?{urllib.parse.urlencode(q)}", token), int(q["limit"]))
        for q in QUERIES
    ]
    if not uncached:
        return lambda i: fixed[i % len(fixed)]
    serial = itertools.count(1)

    def fresh(i: int) -> tuple[bytes, int]:
        query = dict(QUERIES[i % len(QUERIES)])
        term = f"params >= -{next(serial)}"
        query["where"] = f"({query['where']}) and {term}" if "where" in query else term
        target = f"{path}?{urllib.parse.urlencode(query)}"
        return _request(host, port, target, token), int(query["limit"])

    return fresh


Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def _connect(host: str, port: int, requests: Requests, k: int) -> Connection:
    """A client's keep-alive connection, warmed by one checked request (its first query):
    the server process that accepted it has the front in its cache before the clock starts."""
    reader, writer = await asyncio.open_connection(host, port)
    request, limit = requests(k)
    status, body, _ = await _exchange(reader, writer, request)
    if status != 200:
        raise RuntimeError(f"warm-up answered {status}: {body[:200]!r}")
    _check_body(body, limit)
    return reader, writer


async def _client(
    host: str,
    port: int,
    connection: Connection,
    requests: Requests,
    stop_at: float,
    latencies: list[float],
    errors: list[str],
    reconnects: list[int],
    k: int,
) -> int:
    """One closed-loop client: one request in flight on one keep-alive connection, the next
    sent as soon as the last is read. Every status is checked; every ``CHECK_EVERY``-th body
    is parsed. Returns the bodies checked."""
    reader, writer = connection
    i = k + 1
    checked = 0
    try:
        while time.perf_counter() < stop_at:
            request, limit = requests(i)
            start = time.perf_counter()
            try:
                status, body, keep = await _exchange(reader, writer, request)
            except (asyncio.IncompleteReadError, ConnectionError) as exc:
                if isinstance(exc, asyncio.IncompleteReadError) and exc.partial:
                    raise
                # The server closed the connection while it was idle (its keep-alive timeout,
                # while other clients warmed up): connect again and resend, on the clock.
                writer.close()
                reader, writer = await asyncio.open_connection(host, port)
                reconnects.append(k)
                status, body, keep = await _exchange(reader, writer, request)
            latencies.append(time.perf_counter() - start)
            if status != 200:
                errors.append(f"{status}: {body[:200]!r}")
            elif i % CHECK_EVERY == k % CHECK_EVERY:
                _check_body(body, limit)
                checked += 1
            i += 1
            if not keep:
                writer.close()
                reader, writer = await asyncio.open_connection(host, port)
    finally:
        writer.close()
    return checked


@dataclass(frozen=True)
class Result:
    requests: int
    errors: list[str]  # status and start of the body of each non-200 answer
    checked: int  # bodies parsed and checked
    rps: float
    p50: float  # latencies in ms
    p90: float
    p99: float
    max: float
    client_cpu: float  # CPU seconds of this load generator during the run
    server_cpu: float  # CPU seconds of the server's processes during the run
    reconnects: int  # idle connections the server closed, connected again


async def load(
    host: str,
    port: int,
    token: str,
    job_id: int,
    clients: int,
    duration: float,
    *,
    server_cpu: Callable[[], float],
    uncached: bool = False,
) -> Result:
    """Open and warm ``clients`` connections, then load the server for ``duration`` s.
    ``server_cpu`` reads the server's CPU seconds, before and after the measured part."""
    requests = _queries(host, port, token, job_id, uncached)
    connections = list(
        await asyncio.gather(*(_connect(host, port, requests, k) for k in range(clients)))
    )
    for i in range(clients, len(QUERIES)):  # every query checked once, however few clients
        await _connect(host, port, requests, i)
    latencies: list[float] = []
    errors: list[str] = []
    reconnects: list[int] = []
    server_before = server_cpu()
    cpu_before = time.process_time()
    start = time.perf_counter()
    checked = await asyncio.gather(
        *(
            _client(
                host,
                port,
                connection,
                requests,
                start + duration,
                latencies,
                errors,
                reconnects,
                k,
            )
            for k, connection in enumerate(connections)
        )
    )
    elapsed = time.perf_counter() - start
    client_cpu = time.process_time() - cpu_before
    server = server_cpu() - server_before
    ms = sorted(v * 1000 for v in latencies)
    return Result(
        requests=len(ms),
        errors=errors,
        checked=sum(checked),
        rps=len(ms) / elapsed,
        p50=statistics.median(ms),
        p90=ms[int(0.90 * (len(ms) - 1))],
        p99=ms[int(0.99 * (len(ms) - 1))],
        max=ms[-1],
        client_cpu=client_cpu,
        server_cpu=server,
        reconnects=len(reconnects),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of load")
    parser.add_argument("--candidates", type=int, default=10_000)
    parser.add_argument(
        "--api-workers", type=int, default=1, help="server processes (hwsearch serve --api-workers)"
    )
    parser.add_argument(
        "--uncached",
        action="store_true",
        help="make every request a query never asked before (the cost of a cache miss)",
    )
    args = parser.parse_args()
    if not 1 <= args.clients <= MAX_CLIENTS:
        parser.error(f"--clients must be 1..{MAX_CLIENTS}, got {args.clients}")
    if not 0 < args.duration <= MAX_DURATION_S:
        parser.error(f"--duration must be in (0, {MAX_DURATION_S}], got {args.duration}")
    if not 1 <= args.api_workers <= MAX_API_WORKERS:
        parser.error(f"--api-workers must be 1..{MAX_API_WORKERS}, got {args.api_workers}")

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
        host, port = "127.0.0.1", _free_port()
        hwsearch = Path(sys.executable).with_name("hwsearch")
        command = [str(hwsearch), "serve", "--db", url, "--port", str(port), "--no-run-jobs"]
        server = subprocess.Popen(
            [*command, "--api-workers", str(args.api_workers)],
            stderr=subprocess.DEVNULL,
            env={**os.environ},
        )
        try:
            _wait_until_up(f"http://{host}:{port}/health", server, args.api_workers)
            print(f"load average before: {_load_average()}")
            result = _run(
                load(
                    host,
                    port,
                    token,
                    job_id,
                    args.clients,
                    args.duration,
                    server_cpu=lambda: _tree_cpu_seconds(server.pid),
                    uncached=args.uncached,
                )
            )
        finally:
            server.send_signal(signal.SIGINT)
            server.wait(30)
    print(
        f"{args.clients} clients, {args.duration:.0f} s, {args.api_workers} server "
        f"process(es): {result.requests} requests, {len(result.errors)} errors "
        f"({result.checked} bodies parsed and checked, {result.reconnects} reconnections), "
        f"{result.rps:.0f} requests/s; "
        f"latency ms p50 {result.p50:.1f}, p90 {result.p90:.1f}, p99 {result.p99:.1f}, "
        f"max {result.max:.1f}"
    )
    server_cpu = result.server_cpu
    per_request = 1000 * server_cpu / max(result.requests, 1)
    client_per_request = 1000 * result.client_cpu / max(result.requests, 1)
    print(
        f"server CPU {server_cpu:.1f} s in all, {per_request:.2f} ms per request "
        f"(one core serves at most ~{1000 / max(per_request, 1e-9):.0f} requests/s); "
        f"load generator CPU {result.client_cpu:.1f} s, {client_per_request:.3f} ms per request"
    )
    print(f"load average after: {_load_average()} on {os.cpu_count()} CPUs")
    if result.errors:
        raise SystemExit(f"{len(result.errors)} requests failed; first: {result.errors[0]}")


if __name__ == "__main__":
    main()
