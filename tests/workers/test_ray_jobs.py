"""``hwsearch run --executor ray`` submitted as a Ray job to a running head on 127.0.0.1.

The head is a real ``ray start --head --block`` process group owned by this module, stopped
by signalling that group (never ``ray stop``, which would stop every Ray on the machine).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

pytest.importorskip("ray")
import contextlib

from ray.job_submission import JobStatus, JobSubmissionClient

from hwsearch.db import Store
from hwsearch.records import CandidateStatus, JobState

BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def ray_head(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Ray head on 127.0.0.1 with the dashboard (Jobs API); yields the dashboard URL."""
    port, dashboard = _free_port(), _free_port()
    # `ray start` records its address for later `ray.init()` calls on this node; put back
    # what was there so that nothing connects to this head once it is gone.
    current = Path(tempfile.gettempdir()) / "ray" / "ray_current_cluster"
    previous = current.read_text() if current.exists() else None
    logs = tmp_path_factory.mktemp("ray-head")
    command = [
        str(BIN / "ray"),
        "start",
        "--head",
        "--block",
        "--node-ip-address=127.0.0.1",
        f"--port={port}",
        "--num-cpus=2",
        "--include-dashboard=true",
        "--dashboard-host=127.0.0.1",
        f"--dashboard-port={dashboard}",
        "--object-store-memory=100000000",
        "--disable-usage-stats",
    ]
    with (logs / "head.log").open("wb") as log:
        head = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    url = f"http://127.0.0.1:{dashboard}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                _client(url).list_jobs()
                break
            except Exception:
                if head.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"the Ray head did not start: {(logs / 'head.log').read_text()[-2000:]}"
                    ) from None
                time.sleep(1)
        yield url
    finally:
        _stop_group(head)
        if previous is None:
            current.unlink(missing_ok=True)
        else:
            current.write_text(previous)


def _client(url: str) -> JobSubmissionClient:
    """A Jobs API client sending the cluster's token.

    A Ray 2.60 head generates a token (``~/.ray/auth_token``, or ``RAY_AUTH_TOKEN_PATH``)
    and refuses requests without it; the client sends it by itself only when this process
    started with ``RAY_AUTH_MODE=token``, so it is given explicitly here.
    """
    path = Path(os.environ.get("RAY_AUTH_TOKEN_PATH") or Path.home() / ".ray" / "auth_token")
    headers = {"Authorization": f"Bearer {path.read_text().strip()}"} if path.exists() else {}
    return JobSubmissionClient(url, headers=headers)


def _stop_group(head: subprocess.Popen[bytes]) -> None:
    """Stop the head's process group: TERM, then KILL for whatever outlives a grace period
    (Ray's GCS server can hang on TERM once the raylet has gone)."""
    os.killpg(head.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        head.wait(timeout=15)
    time.sleep(2)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(head.pid, signal.SIGKILL)
    head.wait()


def test_ray_job_runs_the_search_and_the_front_lands_in_the_database(
    ray_head: str, db_url: str, tiny_spec: dict[str, Any], tmp_path: Path
) -> None:
    spec_path = tmp_path / "tiny.yaml"
    spec_path.write_text(yaml.safe_dump(tiny_spec))
    Store.open(db_url).close()  # migrated before the job starts
    client = _client(ray_head)
    entrypoint = (
        f"{BIN / 'hwsearch'} run {spec_path} --db '{db_url}' --executor ray "
        f"--out {tmp_path / 'out'}"
    )
    submission = client.submit_job(entrypoint=entrypoint)
    deadline = time.monotonic() + 150
    status = client.get_job_status(submission)
    while not status.is_terminal() and time.monotonic() < deadline:
        time.sleep(1)
        status = client.get_job_status(submission)
    logs = client.get_job_logs(submission)
    if not status.is_terminal():
        client.stop_job(submission)
    assert status == JobStatus.SUCCEEDED, logs[-3000:]

    with Store.open(db_url) as store:
        [job] = store.list_jobs()
        candidates = store.list_candidates(job.id)
        front = store.latest_front(job.id)
    assert job.state == JobState.FINISHED
    assert len(candidates) == 6
    assert all(c.status == CandidateStatus.DONE for c in candidates)
    assert front is not None and front.points
    assert {p.candidate_id for p in front.points} <= {c.id for c in candidates}
    assert f"job {job.id} finished" in logs
    assert (tmp_path / "out" / "front.csv").exists()
