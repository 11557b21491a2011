"""Faults a running service meets: its database away for a while, a full disk, a second
runner on the same database, a runner restarted mid-job, a driver that died.

The outages stop and start a PostgreSQL server each test makes for itself
(``throwaway_postgres``), never the machine's own. Evaluations are real (a tiny MLP trained
on digits and timed); leases are short so that take-overs happen within the test.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, func, select

from hwsearch.db import Store
from hwsearch.db.leases import LeaseKeeper, LeaseOwner, Leases, LeaseSettings
from hwsearch.db.models import Measurement
from hwsearch.records import CandidateStatus, JobState
from hwsearch.search.driver import Driver
from hwsearch.search.spec import parse_spec
from hwsearch.service.runner import JobRunner, RunnerSettings
from hwsearch.workers import EvalOutcome, EvalTask, InProcessExecutor, evaluate_safely

SHORT_LEASE = LeaseSettings(duration_s=4.0, heartbeat_s=1.0)
ENDED = {JobState.FINISHED, JobState.FAILED, JobState.CANCELLED}


def _spec(tiny: dict[str, Any], optimizer: str, evaluations: int, seed: int = 0) -> dict[str, Any]:
    data = {**tiny, "name": f"{optimizer}-{seed}", "seed": seed}
    data["budget"] = {"evaluations": evaluations}
    data["optimizer"] = (
        {"name": optimizer, "population_size": 4} if optimizer.startswith("optuna") else
        {"name": optimizer}
    )  # fmt: skip
    return data


def _queue(store: Store, data: dict[str, Any]) -> int:
    spec = parse_spec(data)
    return store.create_job(
        name=spec.name, family=spec.family, target=spec.target_name, spec=spec.to_dict()
    ).id


def _wait(store: Store, job_ids: list[int], timeout: float) -> list[Any]:
    deadline = time.monotonic() + timeout
    while True:
        try:
            jobs = [store.get_job(j) for j in job_ids]
        except Exception:  # the database may be away
            jobs = []
        if jobs and all(j.state in ENDED for j in jobs):
            return jobs
        if time.monotonic() > deadline:
            raise TimeoutError(f"jobs still {[j.state.value for j in jobs]} after {timeout} s")
        time.sleep(0.2)


def _assert_complete(store: Store, job: Any, budget: int) -> None:
    """Finished with its whole budget: every candidate done, none twice, each metric once."""
    assert job.state is JobState.FINISHED, job.error
    candidates = store.list_candidates(job.id)
    not_done = [(c.id, c.generation, c.status.value, c.error) for c in candidates
                if c.status is not CandidateStatus.DONE]  # fmt: skip
    assert job.evaluations == budget == len(candidates), (
        f"job {job.id}: {job.evaluations} done of {len(candidates)} candidates, budget "
        f"{budget}; not done: {not_done}; generations: {[c.generation for c in candidates]}"
    )
    assert all(c.status is CandidateStatus.DONE for c in candidates)
    assert len({c.config_hash for c in candidates}) == len(candidates)  # 0 duplicates
    with store.engine.connect() as conn:
        for c in candidates:
            rows = conn.scalar(
                select(func.count(Measurement.id)).where(Measurement.candidate_id == c.id)
            )
            assert rows == len(c.metrics) > 0  # no metric stored twice, none missing


@dataclass
class Outage:
    """The real evaluation; the ``after``-th one (over every job) stops the server for
    ``seconds``. Each evaluation's interval, from the driver's call to its outcome, is
    recorded by candidate with ``label``."""

    server: Any = None
    after: int = 0
    seconds: float = 0.0
    calls: int = 0
    intervals: list[tuple[str, int, float, float]] = field(default_factory=list)
    restarted: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    device: threading.Lock = field(default_factory=threading.Lock)

    def executor(self, label: str = "") -> Callable[[], InProcessExecutor]:
        return lambda: InProcessExecutor(evaluate=lambda task: self.evaluate(task, label))

    def evaluate(self, task: EvalTask, label: str) -> EvalOutcome:
        start = time.monotonic()
        # One evaluation at a time, as on one measurement device: two in one process would
        # meet in PyTorch's profiler (process-wide), failing one of them.
        with self.device:
            outcome = evaluate_safely(task)
        with self.lock:
            self.calls += 1
            self.intervals.append((label, task.candidate_id, start, time.monotonic()))
            trigger = self.server is not None and self.calls == self.after
        if trigger:
            self.server.stop()
            threading.Thread(target=self._start_later, daemon=True).start()
        return outcome

    def _start_later(self) -> None:
        time.sleep(self.seconds)
        self.server.start()
        self.restarted.set()


def _outage_run(
    server: Any, tiny_spec: dict[str, Any], seconds: float, caplog: Any
) -> tuple[Store, list[Any], Outage]:
    budget = 8
    store = Store.open(server.url)
    jobs = [_queue(store, _spec(tiny_spec, name, budget)) for name in ("random", "optuna-nsga2")]
    outage = Outage(server, after=3, seconds=seconds)
    settings = RunnerSettings(max_jobs=2, poll_s=0.2, lease=SHORT_LEASE)
    runner = JobRunner(store, settings, executor_factory=outage.executor())
    caplog.set_level(logging.WARNING)
    runner.start()
    try:
        done = _wait(store, jobs, timeout=seconds + 240)
    finally:
        runner.stop(timeout=60)
        outage.restarted.wait(timeout=seconds + 60)
    # Read again once every driver has stopped: a driver cut off by the outage may land its
    # last result after the next lease holder ended the job (docs/ARCHITECTURE.md, leases).
    done = [store.get_job(job.id) for job in done]
    for job in done:
        _assert_complete(store, job, budget)
    return store, done, outage


@pytest.mark.postgres
def test_database_down_10_s_mid_job_both_jobs_finish_losing_nothing(
    throwaway_postgres: Any, tiny_spec: dict[str, Any], caplog: Any
) -> None:
    store, _, outage = _outage_run(throwaway_postgres, tiny_spec, 10.0, caplog)
    assert outage.restarted.is_set()
    # the drivers met the outage and waited it out, Optuna's writes too
    assert any("retrying" in r.getMessage() for r in caplog.records)
    store.close()


@pytest.mark.postgres
@pytest.mark.slow
def test_database_down_90_s_mid_job_the_runner_resumes_both_jobs_on_its_own(
    throwaway_postgres: Any, tiny_spec: dict[str, Any], caplog: Any
) -> None:
    """Longer than the drivers' retries: they give up, leaving the jobs ``running`` with a
    lease that expires; the runner takes them again once the database is back."""
    store, done, outage = _outage_run(throwaway_postgres, tiny_spec, 90.0, caplog)
    assert outage.restarted.is_set()
    assert any("left for the next lease holder" in r.getMessage() for r in caplog.records)
    assert all(j.started_at is not None for j in done)
    store.close()


def test_a_full_disk_fails_the_job_cleanly_never_orphaned(
    tmp_path: Path, tiny_spec: dict[str, Any]
) -> None:
    """SQLite capped a few pages above its size once the job has started: a write fails
    with "database or disk is full"; the job ends failed with that reason, or, where even
    that write fails, stays ``running`` with its lease given back (stale: the next runner
    takes it), never ``running`` under a live lease with no driver."""
    store = Store.open(f"sqlite:///{tmp_path / 'full.db'}")
    data = _spec(tiny_spec, "random", 40)
    data["space"] = {**data["space"], "width": {"type": "int", "low": 8, "high": 4096}}
    with store.engine.connect() as conn:
        pages = int(conn.exec_driver_sql("PRAGMA page_count").scalar() or 0)

    @event.listens_for(store.engine, "connect")
    def _cap(dbapi: Any, record: Any) -> None:
        dbapi.execute(f"PRAGMA max_page_count = {pages + 6}")

    store.engine.dispose()  # every connection from now on has the cap
    driver = Driver(parse_spec(data), store, lease_settings=SHORT_LEASE)
    with pytest.raises(Exception, match="full"):
        driver.run()
    event.remove(store.engine, "connect", _cap)
    store.engine.dispose()
    job = store.get_job(driver.job_id or 0)
    if job.state is JobState.FAILED:
        assert job.error is not None and "full" in job.error
    else:
        assert job.state is JobState.RUNNING and job.stale(), job
    assert 0 < job.evaluations < 40
    store.close()


def _overlaps(intervals: list[tuple[str, int, float, float]], job_of: dict[int, int]) -> list[Any]:
    """Pairs of evaluations of one job that ran at the same time."""
    by_job: dict[int, list[tuple[float, float, str]]] = {}
    for label, candidate, start, end in intervals:
        by_job.setdefault(job_of[candidate], []).append((start, end, label))
    clashes = []
    for job, spans in by_job.items():
        spans.sort()
        for (_, e1, l1), (s2, _, l2) in itertools.pairwise(spans):
            if s2 < e1:
                clashes.append((job, l1, l2))
    return clashes


def test_two_runners_one_restarted_mid_job_drive_each_job_once_at_a_time(
    tmp_path: Path, tiny_spec: dict[str, Any]
) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'two.db'}")
    budget = 5
    jobs = [_queue(store, _spec(tiny_spec, "random", budget, seed)) for seed in range(3)]
    record = Outage()
    settings = RunnerSettings(max_jobs=1, poll_s=0.1, lease=SHORT_LEASE)
    first = JobRunner(store, settings, executor_factory=record.executor("first"))
    second = JobRunner(store, settings, executor_factory=record.executor("second"))
    first.start()
    second.start()
    restarted = None
    try:
        deadline = time.monotonic() + 120
        while record.calls < 3:  # both busy, each with its own job
            assert time.monotonic() < deadline, "the runners evaluated nothing"
            time.sleep(0.05)
        taken = first.active_jobs
        first.stop(timeout=60)  # as `hwsearch serve` stopping: its job is queued again
        restarted = JobRunner(store, settings, executor_factory=record.executor("restarted"))
        restarted.start()
        done = _wait(store, jobs, timeout=240)
    finally:
        second.stop(timeout=60)
        if restarted is not None:
            restarted.stop(timeout=60)
    for job in done:
        _assert_complete(store, job, budget)
    job_of = {c.id: c.job_id for j in jobs for c in store.list_candidates(j)}
    assert _overlaps(record.intervals, job_of) == []  # one driver per job at any time
    labels = {label for label, *_ in record.intervals}
    assert labels >= {"first", "second"} and taken
    store.close()


def test_a_live_lease_is_left_alone_and_a_dead_one_adopted(
    store: Store, tiny_spec: dict[str, Any]
) -> None:
    """A job driven elsewhere (its lease renewed) is not touched by a second runner; once
    that driver stops renewing, the runner adopts it at its next poll and finishes it."""
    job_id = _queue(store, _spec(tiny_spec, "random", 3))
    elsewhere = LeaseOwner(host="elsewhere", pid=1)
    leases = Leases(store)
    assert leases.acquire(job_id, elsewhere, SHORT_LEASE.duration_s)
    store.set_job_state(job_id, JobState.RUNNING)
    keeper = LeaseKeeper(leases, job_id, elsewhere, SHORT_LEASE).start()
    runner = JobRunner(store, RunnerSettings(poll_s=0.1, lease=SHORT_LEASE))
    runner.start()
    try:
        time.sleep(2 * SHORT_LEASE.duration_s)  # several polls, and the lease renewed
        job = store.get_job(job_id)
        assert runner.active_jobs == [] and not job.stale()
        assert job.lease is not None and job.lease.host == "elsewhere"
        keeper.stop(release=False)  # the driver dies: no more heartbeats
        (done,) = _wait(store, [job_id], timeout=120)
    finally:
        runner.stop(timeout=60)
    _assert_complete(store, done, 3)
    assert done.lease is not None and done.lease.owner == runner.owner.id


def test_a_server_stopping_stops_its_job_within_one_evaluation(
    store: Store, tiny_spec: dict[str, Any]
) -> None:
    """As on SIGTERM: the job in flight stops after the evaluation running, not at the end
    of its generation (eight evaluations here), and is queued again with what it stored."""
    job_id = _queue(store, _spec(tiny_spec, "random", 16))
    record = Outage()
    runner = JobRunner(
        store, RunnerSettings(poll_s=0.1, lease=SHORT_LEASE), executor_factory=record.executor()
    )
    runner.start()
    deadline = time.monotonic() + 120
    while record.calls < 1:
        assert time.monotonic() < deadline, "nothing was evaluated"
        time.sleep(0.02)
    asked = time.monotonic()
    runner.stop(timeout=60)
    took = time.monotonic() - asked
    longest = max(end - start for _, _, start, end in record.intervals)
    job = store.get_job(job_id)
    assert job.state is JobState.QUEUED and job.error is None
    assert 1 <= job.evaluations == record.calls <= 2 < 8
    assert took < 2 * longest + 5.0, (took, longest)
    pending = store.count_candidates(job_id, status=CandidateStatus.PENDING)
    assert pending == store.count_candidates(job_id) - job.evaluations > 0  # for the resume


@pytest.mark.postgres
def test_optuna_s_study_writes_wait_out_an_outage(
    throwaway_postgres: Any, tiny_spec: dict[str, Any], caplog: Any
) -> None:
    """Asked and told while the database is away for 4 s: both calls wait for it, and the
    study ends with each trial once, none left running."""
    import optuna

    from hwsearch.search.optimizer import make_optimizer
    from hwsearch.search.space import SearchSpace

    spec = parse_spec(_spec(tiny_spec, "optuna-nsga2", 8))
    optimizer = make_optimizer(
        "optuna-nsga2",
        space=SearchSpace.from_spec(spec),
        objectives=spec.get_objectives(),
        n_constraints=0,
        seed=0,
        options={"population_size": 4},
    )
    Store.open(throwaway_postgres.url).close()  # hwsearch's schema beside Optuna's
    optimizer.attach_storage(throwaway_postgres.url, "outage-study")
    first = optimizer.ask(2)
    caplog.set_level(logging.WARNING, logger="hwsearch.db")
    throwaway_postgres.stop()
    restart = threading.Timer(4.0, throwaway_postgres.start)
    restart.start()
    try:
        optimizer.tell(first[0].id, [0.9, 1.0])  # while the server is down
        optimizer.tell(first[1].id, None)
        second = optimizer.ask(2)
        for suggestion in second:
            optimizer.tell(suggestion.id, [0.8, 2.0])
    finally:
        restart.join()
    assert any("Optuna" in r.getMessage() and "retrying" in r.getMessage() for r in caplog.records)
    storage = optuna.storages.RDBStorage(
        throwaway_postgres.url.replace("postgresql", "postgresql+psycopg", 1)
    )
    study = optuna.load_study(study_name="outage-study", storage=storage)
    states = sorted(t.state.name for t in study.get_trials(deepcopy=False))
    assert states.count("COMPLETE") == 3 and "RUNNING" not in states
    assert states.count("FAIL") >= 1  # the told failure (and any attempt a retry replaced)
