"""The hostile battery against a real ``hwsearch serve`` on 127.0.0.1.

Starts ``hwsearch serve`` as a separate process on a free loopback port, over its own
temporary SQLite database (holding one finished synthetic job, so that the front and
candidate routes have something to answer) and its own ``--tables`` folder, with a write
token. Beside the folder it plants a secret: a folder ``outside/`` holding ``secret.csv``
(a valid table with a marker in every cell), reachable from inside the tables folder by a
symbolic link, and a marker in the server's environment (``/proc/self/environ``). Then it
sends ``--cases`` requests (only to 127.0.0.1), each one hostile:

* Hypothesis-built specs (:func:`hwsearch.fuzzing.hostile_specs`): long lists, huge and
  boundary numbers, deep nesting, odd unicode, paths to the secret, devices and /proc in
  every table field (target, evaluation, measurement, prior tables);
* ``where`` filters, deep, long and odd (:func:`hwsearch.fuzzing.where_filters`);
* control characters and odd text in every query parameter and path of the API;
* raw bodies: deep JSON, binary, UTF-16, over the size limit, not JSON at all.

File reads outside the folder are counted with inotify on ``outside/`` (every open or read
of a file there, by any process: only the server knows it exists), and every answer is
searched for the markers and for ``/etc/passwd``'s first line. Prints one JSON line per
figure group and a summary: reads outside (must be 0), leaks (0), the server's peak RSS
(``VmHWM``, at most 1 GB), the slowest answer (at most 2 s), 5xx answers (0).

    PYTHONPATH=$PWD .venv/bin/python bench/hostile.py                 # 10,000 cases
    PYTHONPATH=$PWD .venv/bin/python bench/hostile.py --cases 2000
    PYTHONPATH=$PWD .venv/bin/python bench/hostile.py --server-pythonpath /old/checkout
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from api_load import _free_port, build_job
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from hwsearch.db import Store
from hwsearch.fuzzing import HOSTILE_PATHS, hostile_specs, odd_text, where_filters
from hwsearch.service.api import create_token
from hwsearch.service.api.auth import TokenScope

MARKER = "hostile-marker-6b1f0e"
PASSWD_LINE = "root:x:0:0"
MAX_CASES = 200_000
IN_ACCESS, IN_OPEN = 0x1, 0x20
ARCH = "|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|"
QUERY_ROUTES = [
    "/jobs",
    "/jobs/{job}",
    "/jobs/{job}/front",
    "/jobs/{job}/candidates/1",
    "/jobs/{job}/candidates/1/export",
    "/jobs/{job}/predictions",
    "/targets",
    "/families",
]
QUERY_NAMES = ["state", "limit", "offset", "where", "sort", "metrics", "format", "measured_only"]


class Watch:
    """inotify on one folder: counts opens and reads of the files in it."""

    def __init__(self, folder: Path) -> None:
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.fd = self.libc.inotify_init1(os.O_NONBLOCK)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        if self.libc.inotify_add_watch(self.fd, str(folder).encode(), IN_OPEN | IN_ACCESS) < 0:
            raise OSError(ctypes.get_errno(), f"inotify_add_watch {folder}")
        self.events: Counter[str] = Counter()

    def drain(self) -> int:
        """Events since the last call, added to :attr:`events`; their number."""
        count = 0
        while True:
            try:
                data = os.read(self.fd, 1 << 16)
            except BlockingIOError:
                return count
            offset = 0
            while offset < len(data):
                _, mask, _, length = struct.unpack_from("iIII", data, offset)
                name = data[offset + 16 : offset + 16 + length].rstrip(b"\0").decode()
                kind = "open" if mask & IN_OPEN else "read"
                self.events[f"{kind} {name}"] += 1
                count += 1
                offset += 16 + length

    def close(self) -> None:
        os.close(self.fd)


class Tally:
    """Statuses, latencies, leaks and failures of every answer."""

    def __init__(self, watch: Watch) -> None:
        self.watch = watch
        self.statuses: Counter[int] = Counter()
        self.by_kind: Counter[str] = Counter()
        self.slowest = (0.0, "")
        self.leaks: list[str] = []
        self.server_errors: list[str] = []
        self.transport_errors: list[str] = []

    @property
    def cases(self) -> int:
        return sum(self.by_kind.values())

    def send(self, kind: str, call: Callable[[], httpx.Response], what: str) -> None:
        self.by_kind[kind] += 1
        started = time.perf_counter()
        try:
            response = call()
        except httpx.HTTPError as exc:
            self.transport_errors.append(f"{kind} {what[:200]}: {type(exc).__name__}")
            return
        elapsed = time.perf_counter() - started
        if elapsed > self.slowest[0]:
            self.slowest = (elapsed, f"{kind} {what[:200]}")
        self.statuses[response.status_code] += 1
        text = response.text
        if MARKER in text or PASSWD_LINE in text:
            self.leaks.append(f"{kind} {what[:200]}")
        if response.status_code >= 500:
            self.server_errors.append(f"{kind} {what[:200]}: {text[:300]}")


def _peak_rss_mb(pid: int) -> float | None:
    """The peak RSS (``VmHWM``) of process ``pid`` so far; ``None`` once it has exited."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return None


class PeakSampler(threading.Thread):
    """Samples the server's peak RSS every 0.2 s (the last sample survives its death)."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.peak_mb = 0.0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.2):
            sample = _peak_rss_mb(self.pid)
            if sample is None:
                return
            self.peak_mb = max(self.peak_mb, sample)


def _wait_until_up(url: str, server: subprocess.Popen[bytes], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline or server.poll() is not None:
            raise SystemExit("the server did not start")
        time.sleep(0.2)


def _examples(strategy: st.SearchStrategy[Any], count: int, seed_value: int) -> Iterator[Any]:
    """``count`` values drawn from ``strategy`` by Hypothesis (generation only, seeded)."""
    drawn: list[Any] = []

    @seed(seed_value)
    @given(value=strategy)
    @settings(
        max_examples=count,
        phases=[Phase.generate],
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    def collect(value: Any) -> None:
        drawn.append(value)

    collect()
    yield from drawn[:count]


def _raw_bodies() -> list[tuple[str, bytes, str]]:
    spec = {"family": "mlp", "target": "cpu", "budget": {"evaluations": 1}}
    return [
        ("deep json", b'{"spec": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "application/json"),
        ("deep object", b'{"spec": {"a": ' * 5000 + b"1" + b"}" * 5001, "application/json"),
        ("binary", bytes(range(256)) * 64, "application/json"),
        ("utf-16", json.dumps({"spec": spec}).encode("utf-16"), "application/json"),
        ("over the limit", b'{"spec": {"name": "' + b"x" * (2 << 20) + b'"}}', "application/json"),
        ("not json", b"family: mlp\ntarget: cpu\n", "application/yaml"),
        ("nul in json", b'{"spec": {"name": "a\\u0000b"}}', "application/json"),
        ("lone surrogate", b'{"spec": {"name": "\\ud800"}}', "application/json"),
        ("huge number", b'{"spec": {"seed": 1' + b"0" * 5000 + b"}}", "application/json"),
        ("infinity", b'{"spec": {"seed": 1e999}}', "application/json"),
    ]


def battery(client: httpx.Client, tally: Tally, job_id: int, cases: int, secret: Path) -> None:
    """Send ``cases`` hostile requests (proportioned over the kinds) through ``client``."""
    n_paths = len(HOSTILE_PATHS) * 5
    n_raw = max(10, cases // 50)
    n_query = cases // 10
    n_where = cases // 5
    n_specs = max(0, cases - n_paths - n_raw - n_query - n_where)
    base = {
        "family": "nb201",
        "target": {"name": "pixel3", "table": "latency.csv"},
        "space": {"ops": {"type": "choice", "values": ["none", "nor_conv_3x3"], "per_layer": 6}},
        "objectives": [{"metric": "latency_ms", "direction": "minimize"}],
        "budget": {"evaluations": 2},
        "evaluation": {"type": "table", "table": "latency.csv", "column": "pixel3"},
    }
    # every hostile path in every section that names a file
    for template in HOSTILE_PATHS:
        path = template.format(secret=secret, secret_name=secret.name)
        for section in ("target", "evaluation", "measurement", "prior", "prior-relative"):
            spec = json.loads(json.dumps(base))
            if section == "target":
                spec["target"]["table"] = path
            elif section == "evaluation":
                spec["evaluation"]["table"] = path
            elif section == "measurement":
                spec["measurement"] = {"type": "table", "table": path, "column": "pixel3"}
            else:
                spec["prior"] = {
                    "tables": [{"table": path if section == "prior" else "x/../" + path}]
                }
                spec["objectives"].append({"metric": "accuracy", "direction": "maximize"})
            tally.send(
                "paths", lambda s=spec: client.post("/jobs", json={"spec": s}), f"{section}={path}"
            )
    bodies = _raw_bodies()
    for i in range(n_raw):
        what, body, media = bodies[i % len(bodies)]
        tally.send(
            "raw bodies",
            lambda b=body, m=media: client.post("/jobs", content=b, headers={"content-type": m}),
            what,
        )
    for i, text in enumerate(_examples(odd_text(200), n_query, 1)):
        route = QUERY_ROUTES[i % len(QUERY_ROUTES)].format(job=job_id)
        name = QUERY_NAMES[(i // len(QUERY_ROUTES)) % len(QUERY_NAMES)]
        if i % 7 == 0:  # the text in the path itself
            route = "/jobs/" + urllib.request.quote(text, safe="")
            tally.send("query", lambda r=route: client.get(r), route)
            continue
        tally.send(
            "query",
            lambda r=route, n=name, t=text: client.get(r, params={n: t}),
            f"{route}?{name}={text!r}",
        )
    for where in _examples(where_filters(), n_where, 2):
        tally.send(
            "where",
            lambda w=where: client.get(f"/jobs/{job_id}/front", params={"where": w}),
            f"where={where!r}",
        )
    for spec in _examples(hostile_specs(str(secret)), n_specs, 3):
        tally.send("specs", lambda s=spec: client.post("/jobs", json={"spec": s}), repr(spec))
    tally.watch.drain()


@contextmanager
def planted(folder: Path) -> Iterator[tuple[Path, Path]]:
    """``tables/`` with one table and a link to ``outside/secret.csv``; both paths."""
    tables, outside = folder / "tables", folder / "outside"
    tables.mkdir()
    outside.mkdir()
    (tables / "latency.csv").write_text(f"arch,pixel3\n{ARCH},12.5\n")
    secret = outside / "secret.csv"
    secret.write_text(f"arch,pixel3,{MARKER}\n{ARCH},1.0,{MARKER}\n")
    (outside / "secret.yaml").write_text(f"name: {MARKER}\n")
    (tables / "link_to_secret.csv").symlink_to(secret)
    yield tables, secret


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=10_000, help="requests to send")
    parser.add_argument(
        "--server-pythonpath",
        help="PYTHONPATH of the server only (to run the battery against another checkout)",
    )
    args = parser.parse_args()
    if not 100 <= args.cases <= MAX_CASES:
        parser.error(f"--cases must be 100..{MAX_CASES}, got {args.cases}")

    with (
        tempfile.TemporaryDirectory(prefix="hwsearch-hostile-") as name,
        planted(Path(name)) as (tables, secret),
    ):
        folder = Path(name)
        url = f"sqlite:///{folder / 'hostile.db'}"
        with Store.open(url) as store:
            job_id, _ = build_job(store, 200)
            token, _ = create_token(store, "hostile", TokenScope.SUBMIT)
        port = _free_port()
        command = [
            sys.executable, "-c", "from hwsearch.service.cli import app; app()",
            "serve", "--db", url, "--host", "127.0.0.1", "--port", str(port),
            "--tables", str(tables), "--no-run-jobs",
        ]  # fmt: skip
        env = {**os.environ, "HWSEARCH_BENCH_MARKER": MARKER, "OMP_NUM_THREADS": "1"}
        if args.server_pythonpath:
            env["PYTHONPATH"] = args.server_pythonpath
        watch = Watch(secret.parent)
        server = subprocess.Popen(command, stderr=subprocess.DEVNULL, env=env, cwd=folder)
        tally = Tally(watch)
        started = time.perf_counter()
        try:
            _wait_until_up(f"http://127.0.0.1:{port}/health", server)
            sampler = PeakSampler(server.pid)
            sampler.start()
            watch.drain()
            reads_at_start = sum(watch.events.values())
            headers = {"Authorization": f"Bearer {token}"}
            with httpx.Client(
                base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=30
            ) as client:
                battery(client, tally, job_id, args.cases, secret)
            alive = server.poll() is None
            last = _peak_rss_mb(server.pid)
            sampler.stop.set()
            sampler.join()
            peak_mb = max(sampler.peak_mb, last or 0.0)
        finally:
            if server.poll() is None:
                server.send_signal(signal.SIGINT)
                server.wait(30)
            watch.close()
    seconds = time.perf_counter() - started
    reads = sum(watch.events.values()) - reads_at_start
    print(json.dumps({"cases": tally.cases, "by_kind": dict(tally.by_kind)}))
    print(json.dumps({"statuses": {str(k): v for k, v in sorted(tally.statuses.items())}}))
    summary = {
        "cases": tally.cases,
        "reads_outside_folders": reads,
        "leaked_answers": len(tally.leaks),
        "server_peak_rss_mb": round(peak_mb, 1),
        "slowest_answer_s": round(tally.slowest[0], 3),
        "slowest_request": tally.slowest[1][:120],
        "answers_5xx": len(tally.server_errors),
        "transport_errors": len(tally.transport_errors),
        "server_alive_at_end": alive,
        "wall_s": round(seconds, 1),
    }
    print(json.dumps(summary))
    for line in (tally.server_errors + tally.transport_errors + tally.leaks)[:10]:
        print("  " + line)
    for event, count in watch.events.items():
        print(f"  outside: {event} x{count}")
    ok = (
        reads == 0
        and not tally.leaks
        and not tally.server_errors
        and not tally.transport_errors
        and peak_mb <= 1024
        and tally.slowest[0] <= 2.0
        and alive
    )
    print("PASS" if ok else "FAIL")
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
