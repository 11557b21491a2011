"""A real two-node Ray cluster on this machine: a head and a worker node started here.

The head (``ray start --head``, one CPU, the dashboard for the Jobs API) runs the job's
driver; the worker node (``ray start --address``, two CPUs, the custom resource
``hwsearch_worker: 2``) is the only node offering what the spec's ``executor.resources``
asks of each candidate task, so every candidate must run there. The job is submitted with
the ``ray job submit`` command line from a client process. Mid-job the worker node is
killed (SIGKILL to its whole process group); a fresh worker node joins, and the job ends
with every candidate stored, those finished before the kill kept as they were.

Both nodes have their own ports, their own temporary folders and a token of their own
(``RAY_AUTH_TOKEN``); they are stopped by killing their process groups, never with ``ray stop``,
so no other Ray on the machine is touched.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

pytest.importorskip(
    "ray", reason="the two-node cluster test needs Ray (pip install 'ray[default]')"
)

from ray.job_submission import JobStatus, JobSubmissionClient

from hwsearch.db import Store
from hwsearch.records import CandidateStatus, JobState

pytestmark = pytest.mark.ray_cluster

BIN = Path(sys.executable).parent
RESOURCE = "hwsearch_worker"


def _free_ports(count: int) -> list[int]:
    """``count`` distinct ports free on 127.0.0.1 now."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _node_ports() -> list[str]:
    """The per-node ports of a Ray node, each chosen free (never Ray's defaults, which a
    second Ray on this machine would share)."""
    names = (
        "node-manager-port",
        "object-manager-port",
        "dashboard-agent-listen-port",
        "dashboard-agent-grpc-port",
        "runtime-env-agent-port",
        "metrics-export-port",
    )
    return [f"--{name}={port}" for name, port in zip(names, _free_ports(len(names)), strict=True)]


@dataclass
class Cluster:
    address: str  # the head's GCS, for `ray start --address`
    dashboard: str  # the Jobs API
    env: dict[str, str]  # what every process of this cluster runs with (its token)
    folder: Path
    head: subprocess.Popen[bytes]
    workers: list[subprocess.Popen[bytes]]

    def client(self) -> JobSubmissionClient:
        token = self.env["RAY_AUTH_TOKEN"]
        return JobSubmissionClient(self.dashboard, headers={"Authorization": f"Bearer {token}"})

    def start_worker(self, *, wait: bool = True) -> subprocess.Popen[bytes]:
        """A worker node with two CPUs and ``hwsearch_worker: 2``; with ``wait``, returns
        once it has joined."""
        index = len(self.workers)
        temp = Path(tempfile.mkdtemp(prefix=f"hw-w{index}-", dir=self.folder))
        command = [
            str(BIN / "ray"),
            "start",
            "--block",
            f"--address={self.address}",
            "--node-ip-address=127.0.0.1",
            "--num-cpus=2",
            "--num-gpus=0",
            f"--resources={json.dumps({RESOURCE: 2})}",
            f"--temp-dir={temp}",
            "--object-store-memory=80000000",
            *_node_ports(),
        ]
        node = _spawn(command, self.folder / f"worker{index}.log", self.env)
        self.workers.append(node)
        if wait:
            self.wait_for_worker(index)
        return node

    def wait_for_worker(self, index: int) -> None:
        log = self.folder / f"worker{index}.log"
        # printed once its raylet registered with the head
        self._wait_for(
            lambda: "Ray runtime started" in log.read_text(), self.workers[index], log.name
        )

    def _wait_for(self, ready: Any, process: subprocess.Popen[bytes], log: str) -> None:
        deadline = time.monotonic() + 60
        while not ready():
            if process.poll() is not None or time.monotonic() > deadline:
                tail = (self.folder / log).read_text()[-2000:]
                raise RuntimeError(f"a Ray node did not start ({log}): {tail}")
            time.sleep(0.5)


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _spawn(command: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )


def _kill_group(node: subprocess.Popen[bytes]) -> None:
    """SIGKILL a node's whole process group (raylet, GCS, workers): a throwaway cluster
    has nothing to drain, and a killed worker node is what the test is about."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(node.pid, signal.SIGKILL)
    node.wait()


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    """A head (1 CPU, dashboard) and one worker node (2 CPUs, ``hwsearch_worker: 2``)."""
    # A short folder: Ray's Unix sockets live under it and their paths are limited in length.
    folder = Path(tempfile.mkdtemp(prefix="hw-ray-"))
    env = {
        **os.environ,
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": uuid.uuid4().hex,  # this cluster's own, not ~/.ray/auth_token
        "RAY_USAGE_STATS_ENABLED": "0",
        # A node lost is noticed within a few seconds, not Ray's default tens of seconds.
        "RAY_health_check_period_ms": "500",
        "RAY_health_check_failure_threshold": "4",
    }
    env.pop("RAY_ADDRESS", None)
    port, dashboard, client_port = _free_ports(3)
    command = [
        str(BIN / "ray"),
        "start",
        "--head",
        "--block",
        "--node-ip-address=127.0.0.1",
        f"--port={port}",
        f"--ray-client-server-port={client_port}",
        "--num-cpus=1",
        "--num-gpus=0",
        "--include-dashboard=true",
        "--dashboard-host=127.0.0.1",
        f"--dashboard-port={dashboard}",
        f"--temp-dir={folder / 'head'}",
        "--object-store-memory=80000000",
        "--disable-usage-stats",
        *_node_ports(),
    ]
    head = _spawn(command, folder / "head.log", env)
    made = Cluster(
        f"127.0.0.1:{port}", f"http://127.0.0.1:{dashboard}", env, folder, head, workers=[]
    )
    try:

        def answers() -> bool:
            try:
                made.client().list_jobs()
            except Exception:
                return False
            return True

        made._wait_for(lambda: _listening(port), head, "head.log")
        made.start_worker(wait=False)  # starts while the head's dashboard comes up
        made._wait_for(answers, head, "head.log")
        made.wait_for_worker(0)
        yield made
    finally:
        for node in [*made.workers, head]:  # a throwaway cluster: nothing to drain
            _kill_group(node)
        if not os.environ.get("HWSEARCH_KEEP_RAY_LOGS"):
            shutil.rmtree(folder, ignore_errors=True)


def _done(db: str) -> list[Any]:
    """The job's candidates stored as done so far, read without writing (the driver is
    writing the same SQLite file: a read that meets its lock is tried again)."""
    for _ in range(50):
        try:
            with Store.open(db, migrate=False) as store:
                jobs = store.list_jobs()
                if not jobs:
                    return []
                candidates = store.list_candidates(jobs[0].id)
        except Exception:
            time.sleep(0.2)
            continue
        return [c for c in candidates if c.status == CandidateStatus.DONE]
    raise AssertionError(f"could not read {db}")


def _worker_of(candidate: Any) -> dict[str, Any]:
    return dict(candidate.metrics["latency_ms"].details["worker"])


def test_candidates_run_on_the_worker_node_and_survive_its_loss(
    cluster: Cluster, tiny_spec: dict[str, Any], tmp_path: Path
) -> None:
    spec = {
        **tiny_spec,
        "budget": {"evaluations": 4},
        "optimizer": {"name": "optuna-nsga2", "population_size": 2},  # batches of two
        "measurement": {"warmup": 1, "min_repeats": 3, "max_repeats": 10, "max_seconds": 0.5},
        # every candidate task asks for the resource only worker nodes offer
        "executor": {"type": "ray", "resources": {RESOURCE: 1}, "max_retries": 3},
    }
    spec_path = tmp_path / "two-nodes.yaml"
    spec_path.write_text(yaml.safe_dump(spec))
    db = f"sqlite:///{tmp_path / 'two-nodes.db'}"
    Store.open(db).close()  # migrated before the job starts
    submission = f"hwsearch-{uuid.uuid4().hex[:8]}"
    # `ray job submit` from a client process, as a user would; it returns once submitted.
    submit = subprocess.run(
        [
            str(BIN / "ray"),
            "job",
            "submit",
            f"--address={cluster.dashboard}",
            f"--submission-id={submission}",
            "--no-wait",
            "--",
            str(BIN / "hwsearch"),
            "run",
            str(spec_path),
            "--db",
            db,
            "--out",
            str(tmp_path / "out"),
        ],
        env=cluster.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    started = time.monotonic()

    def phase(name: str) -> None:  # shown with -s, for where a slow run spends its time
        print(f"two-node test: {name} at {time.monotonic() - started:.1f} s", flush=True)

    assert submit.returncode == 0, submit.stdout[-2000:] + submit.stderr[-2000:]
    client = cluster.client()

    # Kill the worker node once some candidates are stored and the job is still going.
    # Generous for a loaded machine; unloaded, the whole test takes well under that.
    deadline = time.monotonic() + 300
    done = _done(db)
    while len(done) < 2 and time.monotonic() < deadline:
        if client.get_job_status(submission).is_terminal():
            pytest.fail(f"the job ended early: {client.get_job_logs(submission)[-3000:]}")
        time.sleep(0.3)
        done = _done(db)
    before = {c.id: (c.metrics["accuracy"].value, _worker_of(c)) for c in done}
    assert 2 <= len(before) < 4
    phase(f"{len(before)} done; killing the worker node")
    _kill_group(cluster.workers[0])
    assert not client.get_job_status(submission).is_terminal()
    cluster.start_worker()  # a restarted worker node takes the rest
    phase("a new worker node joined")

    status = client.get_job_status(submission)
    while not status.is_terminal() and time.monotonic() < deadline:
        time.sleep(0.5)
        status = client.get_job_status(submission)
    phase(f"job {status.value}")
    logs = client.get_job_logs(submission)
    if not status.is_terminal():
        client.stop_job(submission)
    assert status == JobStatus.SUCCEEDED, f"{len(_done(db))} done; {logs[-3000:]}"
    head_node = client.get_job_info(submission).driver_node_id

    with Store.open(db) as store:
        [job] = store.list_jobs()
        candidates = store.list_candidates(job.id)
        footprint = store.get_job_footprint(job.id) or {}
    assert job.state == JobState.FINISHED
    assert len(candidates) == 4
    assert all(c.status == CandidateStatus.DONE for c in candidates), [c.error for c in candidates]
    by_id = {c.id: c for c in candidates}
    for cid, (accuracy, worker) in before.items():  # finished before the kill: kept as it was
        assert by_id[cid].metrics["accuracy"].value == accuracy
        assert _worker_of(by_id[cid]) == worker
    nodes = {_worker_of(c)["node_id"] for c in candidates}
    first = {w["node_id"] for _, w in before.values()}
    assert head_node and head_node not in nodes  # none ran on the head, which lacks the resource
    assert len(first) == 1 and len(nodes) == 2  # the first worker node, then its replacement
    assert all(_worker_of(c)["host"] == socket.gethostname() for c in candidates)
    assert all(_worker_of(c)["cpu_seconds"] > 0 for c in candidates)
    # the job's footprint counts the workers' CPU time, which the driver's own counters miss
    [part] = [p for p in footprint.get("parts", []) if p["device"] == "workers"]
    reported = sum(_worker_of(c)["cpu_seconds"] for c in candidates)
    assert part["cpu_seconds"] == pytest.approx(reported)
    assert footprint["cpu_seconds"] > reported  # the driver's own CPU time besides
    assert part["energy_j"] > 0
