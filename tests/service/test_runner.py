"""The job queue: store methods, the driver's stop hook, the runner, and a server restart."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from hwsearch.db import Store
from hwsearch.errors import ConflictError, NotFoundError, StorageError
from hwsearch.records import CandidateStatus, JobState, TokenScope
from hwsearch.search.driver import Driver
from hwsearch.search.spec import parse_spec
from hwsearch.service.runner import JobRunner, RunnerSettings


def _nb201(nb201_data: Path, evaluations: int) -> dict[str, Any]:
    """A table-evaluated search: nothing trained or timed, so generations take moments."""
    return {
        "name": "nb201-queue",
        "family": "nb201",
        "target": {"name": "pixel3", "table": str(nb201_data / "latency_ms.csv")},
        "space": {
            "ops": {
                "type": "choice",
                "values": ["none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"],
                "per_layer": 6,
            }
        },
        "objectives": [
            {"metric": "accuracy", "direction": "maximize"},
            {"metric": "latency_ms", "direction": "minimize"},
        ],
        "budget": {"evaluations": evaluations},
        "optimizer": {"name": "optuna-nsga2", "population_size": 10},
        "evaluation": {
            "type": "table",
            "table": str(nb201_data / "accuracy.csv"),
            "column": "cifar10_acc",
            "scale": 0.01,
        },
        "seed": 0,
    }


def _queue(store: Store, data: dict[str, Any]) -> int:
    spec = parse_spec(data)
    return store.create_job(
        name=spec.name, family=spec.family, target=spec.target_name, spec=spec.to_dict()
    ).id


def _wait(store: Store, job_id: int, states: set[JobState], timeout: float = 120) -> Any:
    deadline = time.monotonic() + timeout
    while (job := store.get_job(job_id)).state not in states:
        if time.monotonic() > deadline:
            raise TimeoutError(f"job {job_id} still {job.state.value}")
        time.sleep(0.05)
    return job


# -- store ------------------------------------------------------------------------------------


def test_request_cancel_by_state(store: Store) -> None:
    spec = {"budget": {"evaluations": 1}}
    queued = store.create_job(name="q", family="mlp", target="cpu", spec=spec)
    assert store.request_cancel(queued.id).state is JobState.CANCELLED
    assert store.get_job(queued.id).finished_at is not None

    running = store.create_job(name="r", family="mlp", target="cpu", spec=spec)
    from hwsearch.db.leases import LeaseOwner, Leases

    assert Leases(store).acquire(running.id, LeaseOwner(host="here", pid=1), 600)  # a live driver
    store.set_job_state(running.id, JobState.RUNNING)
    assert store.cancel_requested(running.id) is False
    assert store.request_cancel(running.id).state is JobState.RUNNING  # the driver stops it
    assert store.cancel_requested(running.id) is True
    store.clear_cancel_request(running.id)
    assert store.cancel_requested(running.id) is False

    store.set_job_state(running.id, JobState.FINISHED)
    with pytest.raises(ConflictError, match="is finished; only queued, running or interrupted"):
        store.request_cancel(running.id)
    with pytest.raises(NotFoundError):
        store.request_cancel(999)
    with pytest.raises(NotFoundError):
        store.cancel_requested(999)
    assert store.count_jobs() == 2 and store.count_jobs(state=JobState.CANCELLED) == 1


def test_tokens_by_digest(store: Store) -> None:
    digest = "a" * 64
    token = store.add_token(name="ci", token_hash=digest, scope=TokenScope.READ)
    assert store.find_token(digest) == token and token.scope is TokenScope.READ
    assert store.find_token("b" * 64) is None
    assert store.revoke_token(token.id).revoked is True
    assert store.find_token(digest).revoked is True  # type: ignore[union-attr]
    assert [t.id for t in store.list_tokens()] == [token.id]
    with pytest.raises(StorageError, match="token_hash"):
        store.add_token(name="x", token_hash="short", scope=TokenScope.READ)
    with pytest.raises(StorageError, match="scope"):
        store.add_token(name="x", token_hash="c" * 64, scope="write")  # type: ignore[arg-type]


# -- the driver's stop hook and the runner ------------------------------------------------------


def test_driver_stops_between_generations_keeping_what_finished(
    store: Store, nb201_data: Path
) -> None:
    spec = parse_spec(_nb201(nb201_data, 100))
    generations: list[int] = []

    def stop() -> bool:
        return len(store.list_fronts(driver.job_id)) >= 2 if driver.job_id else False

    driver = Driver(spec, store, should_stop=stop)
    driver.on_progress = lambda p: generations.append(p.generation)
    job = driver.run()
    assert job.state is JobState.CANCELLED and driver.stopped
    assert job.evaluations == 20  # two generations of ten, then the stop
    assert store.count_candidates(job.id, status=CandidateStatus.DONE) == 20
    assert [h.generation for h in store.hypervolume_history(job.id)] == [0, 1]
    assert store.latest_front_id(job.id) == store.latest_front(job.id).id  # type: ignore[union-attr]


def test_runner_runs_queued_jobs_one_at_a_time(store: Store, nb201_data: Path) -> None:
    first = _queue(store, _nb201(nb201_data, 20))
    second = _queue(store, _nb201(nb201_data, 20) | {"seed": 1})
    runner = JobRunner(store, RunnerSettings(max_jobs=1, poll_s=0.1))
    runner.start()
    try:
        done = [_wait(store, j, {JobState.FINISHED, JobState.FAILED}) for j in (first, second)]
    finally:
        runner.stop()
    assert [j.state for j in done] == [JobState.FINISHED, JobState.FINISHED]
    assert [j.evaluations for j in done] == [20, 20]
    assert done[0].finished_at <= done[1].started_at  # never both at once
    for job_id in (first, second):  # the server's runs store the search's own footprint
        footprint = store.get_job_footprint(job_id)
        assert footprint is not None and footprint["runs"] == 1 and footprint["energy_j"] > 0


def test_runner_cancels_a_running_job_within_one_evaluation(store: Store, nb201_data: Path) -> None:
    job_id = _queue(store, _nb201(nb201_data, 5000))
    runner = JobRunner(store, RunnerSettings(poll_s=0.1))
    runner.start()
    try:
        deadline = time.monotonic() + 60
        while not store.hypervolume_history(job_id):
            assert time.monotonic() < deadline, "no generation finished"
            time.sleep(0.05)
        assert store.request_cancel(job_id).state is JobState.RUNNING
        asked = store.get_job(job_id).evaluations
        job = _wait(store, job_id, {JobState.CANCELLED, JobState.FINISHED, JobState.FAILED})
        deadline = time.monotonic() + 10
        while runner.active_jobs:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        runner.stop()
    assert job.state is JobState.CANCELLED
    assert 0 < job.evaluations <= asked + 1  # the evaluation in flight, then the stop
    assert store.count_candidates(job_id, status=CandidateStatus.DONE) == job.evaluations
    # the rest of that generation stays pending: a resume evaluates it
    assert store.count_candidates(job_id, status=CandidateStatus.PENDING) < 10
    assert store.cancel_requested(job_id) is False  # cleared: the job may be queued again


def test_a_job_whose_spec_no_longer_parses_fails_with_the_reason(
    store: Store, tmp_path: Path, nb201_data: Path
) -> None:
    copy = tmp_path / "latency.csv"
    copy.write_bytes((nb201_data / "latency_ms.csv").read_bytes())
    data = _nb201(nb201_data, 10)
    data["target"]["table"] = str(copy)
    job_id = _queue(store, data)
    copy.unlink()
    runner = JobRunner(store, RunnerSettings(poll_s=0.1))
    runner.start()
    try:
        job = _wait(store, job_id, {JobState.FAILED, JobState.FINISHED})
    finally:
        runner.stop()
    assert job.state is JobState.FAILED
    assert job.error is not None
    assert job.error.startswith("invalid spec") and "target.table" in job.error


# -- a server killed in the middle of a job --------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _serve(url: str, cwd: Path) -> subprocess.Popen[bytes]:
    hwsearch = Path(sys.executable).with_name("hwsearch")
    return subprocess.Popen(
        [str(hwsearch), "serve", "--db", url, "--port", str(_free_port())],
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        # short leases: the killed server's job is taken over seconds after its last beat
        env={
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "HWSEARCH_LEASE_S": "4",
            "HWSEARCH_HEARTBEAT_S": "1",
        },
    )


def test_a_restarted_server_resumes_the_job_it_was_running(
    tmp_path: Path, tiny_spec: dict[str, Any]
) -> None:
    url = f"sqlite:///{tmp_path / 'restart.db'}"
    store = Store.open(url)
    job_id = _queue(store, tiny_spec)
    first = _serve(url, tmp_path)
    try:
        deadline = time.monotonic() + 120
        while (job := store.get_job(job_id)).evaluations < 1:
            assert first.poll() is None, first.stderr.read() if first.stderr else ""
            assert time.monotonic() < deadline, "the first server evaluated nothing"
            time.sleep(0.05)
        first.send_signal(signal.SIGKILL)
        first.wait(30)
    finally:
        if first.poll() is None:
            first.kill()
    killed = store.get_job(job_id)
    assert killed.state is JobState.RUNNING and killed.evaluations < 6
    assert killed.lease is not None and killed.lease.pid == first.pid
    before = {
        c.config_hash: c.metrics for c in store.list_candidates(job_id, status=CandidateStatus.DONE)
    }

    second = _serve(url, tmp_path)
    try:
        job = _wait(store, job_id, {JobState.FINISHED, JobState.FAILED}, timeout=180)
    finally:
        second.send_signal(signal.SIGINT)
        second.wait(60)
    assert job.state is JobState.FINISHED and job.evaluations == 6, job.error
    said = second.stderr.read().decode() if second.stderr else ""
    assert f"job {job_id} taken by runner" in said and f"job {job_id} finished: 6 evaluated" in said
    after = {c.config_hash: c.metrics for c in store.list_candidates(job_id)}
    assert len(after) == 6
    for digest, metrics in before.items():  # replayed from the store, not measured again
        assert after[digest] == metrics
    store.close()


def test_a_stale_job_of_the_users_own_code_is_not_adopted(tmp_path: Path) -> None:
    """Adopting it would import the code its spec names in the server; its user resumes it."""
    from hwsearch.db.leases import LeaseOwner, Leases

    spec = {
        "name": "byo",
        "family": {"model": "never_imported:build", "input_shape": [8]},
        "evaluation": {"type": "python", "evaluate": "never_imported:evaluate"},
    }
    store = Store.open(f"sqlite:///{tmp_path / 'byo.db'}")
    try:
        job_id = store.create_job(name="byo", family="python", target="cpu", spec=spec).id
        assert Leases(store).acquire(job_id, LeaseOwner(host="gone", pid=1), 0.5)
        store.set_job_state(job_id, JobState.RUNNING)
        time.sleep(0.7)
        assert store.get_job(job_id).stale()
        runner = JobRunner(store, RunnerSettings(poll_s=0.1))
        runner._take_jobs()
        assert not runner._active
        assert store.get_job(job_id).state is JobState.RUNNING
    finally:
        store.close()


@pytest.mark.parametrize(
    "spec",
    [
        {
            "name": "byo",
            "family": {"model": "never_imported:build", "input_shape": [8]},
            "evaluation": {"type": "python", "evaluate": "never_imported:evaluate"},
        },
        {  # as stored: the python family, whose default evaluation runs user code
            "name": "byo",
            "family": "python",
            "evaluation": {"model": "never_imported:build", "evaluate": "never_imported:e"},
        },
    ],
)
def test_a_queued_job_of_the_users_own_code_is_left_queued(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, spec: dict[str, Any]
) -> None:
    """Queued past the CLI's and the API's checks (written to the database directly), it
    is not run: running it would import the code its spec names in the server."""
    store = Store.open(f"sqlite:///{tmp_path / 'byo.db'}")
    try:
        job_id = store.create_job(name="byo", family="python", target="cpu", spec=spec).id
        runner = JobRunner(store, RunnerSettings(poll_s=0.1))
        with caplog.at_level("WARNING", logger="hwsearch.runner"):
            runner._take_jobs()
            runner._take_jobs()
        assert not runner._active
        assert store.get_job(job_id).state is JobState.QUEUED
        warned = [r.getMessage() for r in caplog.records if "left queued" in r.getMessage()]
        assert len(warned) == 1 and f"hwsearch resume {job_id}" in warned[0]
        # the API says why it stays queued
        from hwsearch.service.api.routers.jobs import job_public

        shown = job_public(store.get_job(job_id))["error"]
        assert "no server runs this job" in shown and f"hwsearch resume {job_id}" in shown
    finally:
        store.close()


def test_a_job_whose_executor_does_not_start_fails_with_the_reason(
    store: Store, nb201_data: Path
) -> None:
    """Taken again at every poll, it would stay queued with no reason while the runner
    logs the same error forever (its Ray cluster away, say)."""
    from hwsearch.errors import HwsearchError

    def away() -> Any:
        raise HwsearchError("cannot connect to the Ray cluster at 127.0.0.1:1: refused")

    job_id = _queue(store, _nb201(nb201_data, 8))
    waiting = _queue(store, _nb201(nb201_data, 8))
    settings = RunnerSettings(poll_s=0.1, executor_backoff_s=60.0)
    runner = JobRunner(store, settings, executor_factory=away)
    runner.start()
    try:
        job = _wait(store, job_id, {JobState.FAILED}, timeout=30)
        time.sleep(1.0)  # ten polls: the next job waits out the back-off, not failed too
        assert store.get_job(waiting).state is JobState.QUEUED
    finally:
        runner.stop(30)
    assert job.error is not None
    assert "could not start its executor: cannot connect to the Ray cluster" in job.error
    assert f"hwsearch resume {job_id}" in job.error
