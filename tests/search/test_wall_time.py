"""The wall-time budget holds within one evaluation, in a real search on this machine."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from hwsearch.db import Store
from hwsearch.records import CandidateStatus, JobState
from hwsearch.search.driver import run_job
from hwsearch.search.spec import parse_spec
from hwsearch.workers import EvalOutcome, EvalTask, InProcessExecutor, evaluate_safely

# Storing a result and taking a front after the last evaluation (SQLite, a few ms each on
# an idle machine; this one is shared).
BOOKKEEPING_S = 1.5


class Timed:
    """The real evaluation, with the time each one took."""

    def __init__(self) -> None:
        self.durations: list[float] = []

    def __call__(self, task: EvalTask) -> EvalOutcome:
        start = time.monotonic()
        try:
            return evaluate_safely(task)
        finally:
            self.durations.append(time.monotonic() - start)


def test_the_search_stops_within_one_evaluation_of_its_wall_time(
    tmp_path: Path, tiny_spec: dict[str, Any]
) -> None:
    wall = 6.0
    data = {
        **tiny_spec,
        # generations of 8: the old check between generations ran one well past the cap
        "optimizer": {"name": "optuna-nsga2", "population_size": 8},
        "budget": {"evaluations": 200, "wall_time_s": wall},
    }
    timed = Timed()
    with Store.open(f"sqlite:///{tmp_path / 'wall.db'}") as store:
        start = time.monotonic()
        job = run_job(parse_spec(data), store, executor=InProcessExecutor(timed))
        elapsed = time.monotonic() - start
        candidates = store.list_candidates(job.id)
    assert job.state == JobState.FINISHED
    assert 0 < len(timed.durations) < 200
    assert elapsed <= wall + max(timed.durations) + BOOKKEEPING_S, (elapsed, timed.durations)
    done = [c for c in candidates if c.status == CandidateStatus.DONE]
    assert len(done) == job.evaluations == len(timed.durations)
