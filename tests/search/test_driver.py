"""The driver end to end: a tiny real search, stored and read back from the database."""

from __future__ import annotations

import collections
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from hwsearch.db import Store
from hwsearch.records import CandidateStatus, JobState, MetricValue, Provenance
from hwsearch.search.driver import Progress, run_job
from hwsearch.search.pareto import pareto_front
from hwsearch.search.spec import parse_spec
from hwsearch.workers import EvalOutcome, EvalTask, Executor, InProcessExecutor, evaluate_safely


def _instant(task: EvalTask) -> EvalOutcome:
    """An outcome at once, with the tiny spec's objectives (the values do not matter)."""
    metrics = [
        MetricValue("accuracy", 0.5, Provenance.ESTIMATED, task.target, {}),
        MetricValue("latency_ms", 1.0, Provenance.ESTIMATED, task.target, {}),
    ]
    return EvalOutcome(task.candidate_id, metrics)


def test_tiny_search_stores_candidates_and_fronts(store: Store, tiny_spec: dict[str, Any]) -> None:
    seen: list[Progress] = []
    job = run_job(parse_spec(tiny_spec), store, on_progress=seen.append)

    assert job.state == JobState.FINISHED
    assert job.finished_at is not None
    candidates = store.list_candidates(job.id)
    budget = tiny_spec["budget"]["evaluations"]
    assert len(candidates) == budget == job.evaluations
    assert len({c.config_hash for c in candidates}) == budget
    assert all(c.status == CandidateStatus.DONE for c in candidates)
    assert seen[-1].evaluations == budget

    fronts = store.list_fronts(job.id)
    assert [f.generation for f in fronts] == list(range(len(fronts)))
    assert len(fronts) >= 2
    # One reference point for the whole job, so the hypervolume never shrinks.
    assert all(f.reference_point == fronts[0].reference_point for f in fronts)
    volumes = [f.hypervolume for f in fronts]
    assert volumes == sorted(volumes)

    # The stored front is exactly the non-dominated set of the stored candidates.
    last = fronts[-1]
    import numpy as np

    values = np.array([[c.metrics[m].value for m in last.objectives] for c in candidates])
    feasible = np.array([bool(c.feasible) for c in candidates])
    expected = {candidates[i].id for i in pareto_front(values, last.directions, feasible)}
    assert {p.candidate_id for p in last.points} == expected
    assert all(p.measured for p in last.points)
    for point in last.points:
        candidate = store.get_candidate(job.id, point.candidate_id)
        assert candidate.metrics["latency_ms"].provenance == Provenance.MEASURED
        assert point.values["latency_ms"] == candidate.metrics["latency_ms"].value


def test_infeasible_candidates_never_reach_the_front(
    store: Store, tiny_spec: dict[str, Any]
) -> None:
    tiny_spec["constraints"] = ["params <= 3000"]
    job = run_job(parse_spec(tiny_spec), store)
    candidates = store.list_candidates(job.id)
    infeasible = {c.id for c in candidates if c.metrics["params"].value > 3000}
    assert infeasible, "the space must hold candidates over the limit for this test to bite"
    assert all(c.feasible is (c.id not in infeasible) for c in candidates)
    front = store.latest_front(job.id)
    assert front is not None
    assert not infeasible & {p.candidate_id for p in front.points}


def test_same_seed_proposes_the_same_candidates(tmp_path: Path, tiny_spec: dict[str, Any]) -> None:
    # Measured latency differs run to run and steers later generations; with deterministic
    # objectives the whole search must repeat exactly. Two databases, so nothing is reused.
    tiny_spec["objectives"][1] = {"metric": "size_bytes", "direction": "minimize"}
    runs = []
    for name in ("first", "second"):
        with Store.open(f"sqlite:///{tmp_path / name}.db") as store:
            job = run_job(parse_spec(tiny_spec), store)
            runs.append(
                [(c.config, c.metrics["accuracy"].value) for c in store.list_candidates(job.id)]
            )
    assert runs[0] == runs[1]


def test_failing_candidates_are_stored_as_failed_and_the_job_goes_on(
    store: Store, tiny_spec: dict[str, Any]
) -> None:
    def fail_every_third(task: EvalTask) -> EvalOutcome:
        if task.candidate_id % 3 == 0:
            return EvalOutcome(task.candidate_id, error="RuntimeError: worker lost")
        return evaluate_safely(task)

    job = run_job(
        parse_spec(tiny_spec), store, executor=InProcessExecutor(evaluate=fail_every_third)
    )
    assert job.state == JobState.FINISHED
    candidates = store.list_candidates(job.id)
    failed = [c for c in candidates if c.status == CandidateStatus.FAILED]
    assert failed and all(c.id % 3 == 0 for c in failed)
    assert all(c.error == "RuntimeError: worker lost" and not c.metrics for c in failed)
    front = store.latest_front(job.id)
    assert front is not None and front.points
    assert not {c.id for c in failed} & {p.candidate_id for p in front.points}


def test_a_job_whose_space_runs_out_ends_early_and_says_why(
    store: Store, tiny_spec: dict[str, Any], caplog: Any
) -> None:
    data = {**tiny_spec, "space": {"width": {"type": "choice", "values": [8, 16]}}}
    data |= {"budget": {"evaluations": 10}, "optimizer": {"name": "random"}}
    caplog.set_level(logging.WARNING, logger="hwsearch.driver")
    job = run_job(parse_spec(data), store, executor=InProcessExecutor(evaluate=_instant))
    assert job.state == JobState.FINISHED and job.evaluations == 2
    assert len(store.list_candidates(job.id)) == 2
    said = [r.getMessage() for r in caplog.records if r.name == "hwsearch.driver"]
    assert any("exhausted after 2 evaluations of the budget's 10" in m for m in said), said
    (why,) = [m for m in said if "exhausted" in m]
    assert "proposed only configs evaluated before" in why and "prediction" not in why


class OneSlotOverlapping(Executor):
    """One slot (``max_workers`` 1) whose evaluations may still overlap, as a Ray executor
    with one slot and several GPU actors: it does not claim to run one at a time. It hands
    back one instant outcome per wait and, at each wait, notes which outcomes it handed back
    before are not yet stored as a second connection to the database sees them."""

    def __init__(self, reader: Store) -> None:
        self._reader = reader
        self._queue: collections.deque[EvalTask] = collections.deque()
        self._returned: list[int] = []
        self.waits = 0
        self.unstored: list[list[int]] = []  # per wait, the returned ids not yet stored

    @property
    def max_workers(self) -> int:
        return 1

    def run(self, tasks: Sequence[EvalTask]) -> Iterator[EvalOutcome]:
        for task in tasks:
            yield _instant(task)

    def submit(self, task: EvalTask) -> None:
        self._queue.append(task)

    def wait(self, timeout: float | None = None) -> list[EvalOutcome]:
        if not self._queue:
            return []
        self.waits += 1
        if self._returned:
            done = {
                c.id
                for job in self._reader.list_jobs()
                for c in self._reader.list_candidates(job.id, status=CandidateStatus.DONE)
            }
            self.unstored.append([i for i in self._returned if i not in done])
        task = self._queue.popleft()
        self._returned.append(task.candidate_id)
        return [_instant(task)]

    @property
    def in_flight(self) -> int:
        return len(self._queue)

    def cancel(self) -> None:
        self._queue.clear()


def test_one_slot_that_may_overlap_stores_each_wait_s_outcomes_before_the_next_wait(
    store: Store, db_url: str, tiny_spec: dict[str, Any]
) -> None:
    # One worker slot is not one evaluation at a time: outcomes that arrive within the group
    # commit's window are stored before the driver waits again, not held by the window.
    data = {**tiny_spec, "budget": {"evaluations": 6}, "optimizer": {"name": "random"}}
    with Store.open(db_url) as reader:
        executor = OneSlotOverlapping(reader)
        assert executor.max_workers == 1 and not executor.runs_one_at_a_time
        job = run_job(parse_spec(data), store, executor=executor)
    assert job.state == JobState.FINISHED and job.evaluations == 6
    assert executor.waits == 6 and len(executor.unstored) == 5
    assert executor.unstored == [[]] * 5, executor.unstored


def test_the_executors_that_run_one_evaluation_at_a_time_say_so() -> None:
    from hwsearch.workers import ProcessPoolExecutor
    from hwsearch.workers.simulated import SimulatedExecutor

    assert InProcessExecutor().runs_one_at_a_time
    assert SimulatedExecutor(workers=1, duration=lambda task: 1.0).runs_one_at_a_time
    assert not SimulatedExecutor(workers=2, duration=lambda task: 1.0).runs_one_at_a_time
    with ProcessPoolExecutor(workers=1) as pool:  # runs alongside the driver
        assert not pool.runs_one_at_a_time


def test_a_small_space_is_searched_to_its_last_config_when_the_budget_holds_it_all(
    store: Store, tiny_spec: dict[str, Any], caplog: Any
) -> None:
    # 16 configs and a budget of 16: near the end optuna-nsga2 proposes mostly configs seen
    # before, one at a time (a generation is only what the budget has left). Counted in
    # asks, five such asks in a row ended the job at 15; counted in suggestions (five
    # generations' worth, 40), the search goes on to the last config.
    widths = [8 * (k + 1) for k in range(16)]
    data = {**tiny_spec, "space": {"width": {"type": "choice", "values": widths}}}
    data |= {"budget": {"evaluations": 16}}
    data |= {"optimizer": {"name": "optuna-nsga2", "population_size": 8}}
    caplog.set_level(logging.WARNING, logger="hwsearch.driver")
    job = run_job(parse_spec(data), store, executor=InProcessExecutor(evaluate=_instant))
    candidates = store.list_candidates(job.id)
    assert job.state == JobState.FINISHED and job.evaluations == 16
    assert sorted(c.config["width"][0] for c in candidates) == widths  # one width, every layer
    said = [r.getMessage() for r in caplog.records if r.name == "hwsearch.driver"]
    assert not any("exhausted" in m for m in said), said
