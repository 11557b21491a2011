"""Resume after a kill, and reuse of measurements across jobs."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from hwsearch.db import Store
from hwsearch.db.leases import JobLeased
from hwsearch.errors import JobInterrupted
from hwsearch.records import CandidateStatus, JobState
from hwsearch.search.driver import Driver, resume_job, reuse_summary, run_job
from hwsearch.search.spec import parse_spec
from hwsearch.workers import EvalOutcome, EvalTask, InProcessExecutor, evaluate_safely


class CountingExecutor(InProcessExecutor):
    """The in-process executor, counting the evaluations it really runs."""

    def __init__(self) -> None:
        self.evaluated: list[int] = []
        super().__init__(evaluate=self._evaluate_and_count)

    def _evaluate_and_count(self, task: EvalTask) -> EvalOutcome:
        self.evaluated.append(task.candidate_id)
        return evaluate_safely(task)


def _deterministic(spec: dict[str, Any], evaluations: int) -> dict[str, Any]:
    """The tiny spec with objectives that do not vary between runs (no timing)."""
    spec["objectives"] = [
        {"metric": "accuracy", "direction": "maximize"},
        {"metric": "size_bytes", "direction": "minimize"},
    ]
    spec["budget"] = {"evaluations": evaluations}
    return spec


def _front(store: Store, job_id: int) -> list[tuple[str, dict[str, float]]]:
    front = store.latest_front(job_id)
    assert front is not None
    return sorted((p.config_hash, p.values) for p in front.points)


def test_killed_job_resumes_without_re_evaluating_and_reaches_the_same_front(
    tmp_path: Path, tiny_spec: dict[str, Any]
) -> None:
    spec = _deterministic(tiny_spec, evaluations=12)
    with Store.open(f"sqlite:///{tmp_path / 'reference.db'}") as reference:
        whole = run_job(parse_spec(spec), reference)
        expected_front = _front(reference, whole.id)
        expected_configs = [c.config for c in reference.list_candidates(whole.id)]
    total = whole.evaluations  # the budget, or fewer if the optimizer ran out of new configs
    assert total >= 10

    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(yaml.safe_dump(spec))
    url = f"sqlite:///{tmp_path / 'killed.db'}"
    Store.open(url).close()  # migrate first, so polling below never races the migration
    driver = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from hwsearch.service.cli import app; app()",
            "run",
            str(spec_path),
            "--db",
            url,
            "--out",
            str(tmp_path / "out"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "HWSEARCH_LEASE_S": "6", "HWSEARCH_HEARTBEAT_S": "1"},
    )
    with Store.open(url) as store:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and driver.poll() is None:
            jobs = store.list_jobs()
            if jobs and store.count_candidates(jobs[0].id, status=CandidateStatus.DONE) >= 5:
                break
            time.sleep(0.05)
        driver.kill()  # SIGKILL: no chance to clean up
        driver.wait()
        (job,) = store.list_jobs()
        assert job.state == JobState.RUNNING, "the driver must have been killed mid-job"
        before = {
            c.id: c for c in store.list_candidates(job.id) if c.status == CandidateStatus.DONE
        }
        assert 5 <= len(before) < total

        # Killed, its lease still live: nobody may take the job yet, and it is not stale.
        assert not job.stale() and job.lease is not None
        with pytest.raises(
            JobLeased, match=rf"job {job.id} is being run by .* \(pid {driver.pid}\)"
        ):
            resume_job(job.id, store)
        assert store.get_job(job.id).state == JobState.RUNNING  # the refusal changed nothing
        deadline = time.monotonic() + 30
        while not store.get_job(job.id).stale() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert store.get_job(job.id).stale(), "the killed driver's lease never expired"

        executor = CountingExecutor()
        resumed = resume_job(job.id, store, executor=executor)

        assert resumed.state == JobState.FINISHED
        assert resumed.evaluations == total
        assert not set(executor.evaluated) & set(before), "finished candidates were rerun"
        assert len(executor.evaluated) == total - len(before)
        after = store.list_candidates(job.id)
        for candidate_id, candidate in before.items():
            kept = next(c for c in after if c.id == candidate_id)
            assert kept.metrics == candidate.metrics
        assert [c.config for c in after] == expected_configs
        assert _front(store, job.id) == expected_front
        generations = [f.generation for f in store.list_fronts(job.id)]
        assert generations == sorted(set(generations))


def test_measurements_are_reused_across_jobs_with_the_same_settings(
    store: Store, tiny_spec: dict[str, Any]
) -> None:
    spec = _deterministic(tiny_spec, evaluations=6)
    first = run_job(parse_spec(spec), store)

    again = CountingExecutor()
    second = run_job(parse_spec(spec), store, executor=again)
    assert again.evaluated == []
    assert second.evaluations == 6
    reused = store.list_candidates(second.id)
    originals = {c.config_hash: c for c in store.list_candidates(first.id)}
    for candidate in reused:
        source = originals[candidate.config_hash]
        assert candidate.metrics["accuracy"].value == source.metrics["accuracy"].value
        assert candidate.metrics["accuracy"].details["reused"] is True
        origin = candidate.metrics["accuracy"].details["reused_from"]
        assert origin["job_id"] == first.id and origin["candidate_id"] == source.id
        assert origin["measured_at"][:4] == str(first.created_at.year)
    assert _front(store, second.id) == _front(store, first.id)

    # Reused again by a third job: the origin is still the first job's measurement.
    third = Driver(parse_spec(spec), store, executor=CountingExecutor())
    third.run()
    assert {o["job_id"] for o in third.reused_from} == {first.id}
    summary = reuse_summary(third.reused_from)
    assert summary.startswith(f"reused 6 from job {first.id} (measured ") and "UTC)" in summary

    # reuse: false measures everything again, and says nothing was reused.
    measuring = CountingExecutor()
    fresh = Driver(parse_spec({**spec, "reuse": False}), store, executor=measuring)
    fresh_job = fresh.run()
    assert len(measuring.evaluated) == 6 and fresh.reused_from == []
    assert fresh_job.spec["reuse"] is False
    for candidate in store.list_candidates(fresh_job.id):
        assert "reused" not in candidate.metrics["accuracy"].details

    spec["evaluation"]["epochs"] = 2  # other training settings: nothing may be reused
    other = CountingExecutor()
    run_job(parse_spec(spec), store, executor=other)
    assert len(other.evaluated) == 6


class InterruptingExecutor(InProcessExecutor):
    """Evaluates ``after`` candidates, then raises as Ctrl-C would in the middle of one."""

    def __init__(self, after: int, error: BaseException) -> None:
        self.done = 0
        self.after = after
        self.error = error
        super().__init__(evaluate=self._evaluate)

    def _evaluate(self, task: EvalTask) -> EvalOutcome:
        if self.done >= self.after:
            raise self.error
        self.done += 1
        return evaluate_safely(task)


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (KeyboardInterrupt(), "interrupted (Ctrl-C)"),
        (JobInterrupted("interrupted (SIGTERM)"), "interrupted (SIGTERM)"),
    ],
)
def test_an_interrupted_job_is_interrupted_not_failed_and_resumes(
    store: Store, tiny_spec: dict[str, Any], error: BaseException, reason: str
) -> None:
    spec = parse_spec(_deterministic(tiny_spec, evaluations=6))
    driver = Driver(spec, store, executor=InterruptingExecutor(3, error))
    with pytest.raises(KeyboardInterrupt):
        driver.run()
    assert driver.job_id is not None
    job = store.get_job(driver.job_id)
    assert job.state is JobState.INTERRUPTED and job.error == reason
    assert job.evaluations == 3 and job.finished_at is not None
    assert job.lease is not None and job.lease.expired()  # given back: resumable at once
    assert not job.stale() and job.shown_state() is JobState.INTERRUPTED

    executor = CountingExecutor()
    resumed = resume_job(job.id, store, executor=executor)
    assert resumed.state is JobState.FINISHED and resumed.error is None
    assert resumed.evaluations == 6 and len(executor.evaluated) == 3
