"""The driver loop of one job: ask, evaluate, store, tell, take the front; repeat.

The driver alone writes to the database. Each candidate's metrics are stored in one
transaction the moment its evaluation finishes, so an interrupted job keeps every finished
candidate.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from hwsearch.db import Store
from hwsearch.models import get_family
from hwsearch.records import CandidateRecord, FrontPoint, JobRecord, JobState
from hwsearch.search.front import compute_front, reference_point
from hwsearch.search.hashing import config_hash
from hwsearch.search.optimizer import Optimizer, Suggestion, make_optimizer
from hwsearch.search.space import SearchSpace
from hwsearch.search.spec import JobSpec
from hwsearch.workers import EvalOutcome, EvalTask, Executor, InProcessExecutor

# A generation that proposes only configs evaluated before costs no evaluation; after this
# many such generations in a row the space is taken as exhausted.
MAX_IDLE_GENERATIONS = 5


@dataclass(frozen=True)
class Progress:
    """What a progress display needs after each finished candidate or generation."""

    job_id: int
    evaluations: int
    budget: int | None
    generation: int
    failed: int = 0
    hypervolume: float | None = None
    front: list[FrontPoint] = field(default_factory=list)


ProgressCallback = Callable[[Progress], None]


class Driver:
    """Runs one job spec to the end of its budget against a store and an executor."""

    def __init__(
        self,
        spec: JobSpec,
        store: Store,
        *,
        executor: Executor | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> None:
        self.spec = spec
        self.store = store
        self.executor = executor or InProcessExecutor()
        self.on_progress = on_progress or (lambda progress: None)
        self.family = get_family(spec.family)
        self.space = SearchSpace.from_spec(spec)
        self.objectives = spec.get_objectives()
        self.constraints = spec.get_constraints()
        options = dict(spec.optimizer.options)
        self.batch_size = max(int(options.get("population_size", 8)), self.executor.max_workers)
        self.optimizer: Optimizer = make_optimizer(
            spec.optimizer.name,
            space=self.space,
            objectives=self.objectives,
            n_constraints=len(self.constraints),
            seed=spec.seed,
            options=options,
        )
        self._reference: list[float] | None = None
        self._told: dict[str, tuple[list[float] | None, list[float]]] = {}  # by config hash
        self._evaluations = 0
        self._failed = 0

    def run(self) -> JobRecord:
        """Create the job, search until the budget is spent, and return the finished job."""
        job = self.store.create_job(
            name=self.spec.name,
            family=self.spec.family,
            target=self.spec.target,
            spec=self.spec.to_dict(),
        )
        self.store.set_job_state(job.id, JobState.RUNNING)
        try:
            self._search(job.id)
        except BaseException as exc:  # interrupted or broken: keep what finished, say why
            reason = "interrupted" if isinstance(exc, KeyboardInterrupt) else str(exc)
            self.store.set_job_state(job.id, JobState.FAILED, error=reason or type(exc).__name__)
            raise
        return self.store.set_job_state(job.id, JobState.FINISHED)

    def _search(self, job_id: int) -> None:
        budget = self.spec.budget
        deadline = time.monotonic() + budget.wall_time_s if budget.wall_time_s is not None else None
        generation = 0
        idle = 0
        while idle < MAX_IDLE_GENERATIONS:
            remaining = (
                budget.evaluations - self._evaluations if budget.evaluations is not None else None
            )
            if remaining is not None and remaining <= 0:
                break
            if deadline is not None and time.monotonic() >= deadline:
                break
            size = self.batch_size if remaining is None else min(self.batch_size, remaining)
            evaluated = self._generation(job_id, generation, self.optimizer.ask(size))
            idle = 0 if evaluated else idle + 1
            if evaluated:
                self._take_front(job_id, generation)
                generation += 1

    def _generation(self, job_id: int, generation: int, suggestions: Sequence[Suggestion]) -> int:
        """Evaluate the new configs among ``suggestions``; return how many were evaluated."""
        fresh: dict[str, tuple[dict[str, object], list[Suggestion]]] = {}
        for suggestion in suggestions:
            config = self.family.canonical(self.space.to_config(suggestion.params))
            digest = config_hash(self.family.name, config)
            if digest in self._told:  # evaluated before in this job: answer from the record
                values, violations = self._told[digest]
                self.optimizer.tell(suggestion.id, values, violations)
            else:
                fresh.setdefault(digest, (config, []))[1].append(suggestion)
        if not fresh:
            return 0
        candidates = self.store.add_candidates(
            job_id, [(digest, config, generation) for digest, (config, _) in fresh.items()]
        )
        tasks = [self._task(candidate) for candidate in candidates]
        by_id = {c.id: c for c in candidates}
        for outcome in self.executor.run(tasks):
            candidate = by_id[outcome.candidate_id]
            values, violations = self._store_outcome(outcome)
            self._told[candidate.config_hash] = (values, violations)
            for suggestion in fresh[candidate.config_hash][1]:
                self.optimizer.tell(suggestion.id, values, violations)
            self.on_progress(self._progress(job_id, generation))
        return len(tasks)

    def _task(self, candidate: CandidateRecord) -> EvalTask:
        return EvalTask(
            candidate_id=candidate.id,
            family=self.family.name,
            config=candidate.config,
            config_hash=candidate.config_hash,
            target=self.spec.target,
            seed=self.spec.seed,
            evaluation=dict(self.spec.evaluation),
            measurement=dict(self.spec.measurement),
        )

    def _store_outcome(self, outcome: EvalOutcome) -> tuple[list[float] | None, list[float]]:
        """Store one outcome; return the objective values and constraint violations to tell."""
        self._evaluations += 1
        if not outcome.ok:
            self._failed += 1
            self.store.record_failure(outcome.candidate_id, outcome.error or "failed")
            return None, []
        measured = outcome.values()
        missing = [o.metric for o in self.objectives if o.metric not in measured] + [
            c.metric for c in self.constraints if c.metric not in measured
        ]
        if missing:
            self._failed += 1
            error = f"evaluation returned no value for {', '.join(sorted(set(missing)))}"
            self.store.record_failure(outcome.candidate_id, error)
            return None, []
        violations = [c.violation(measured[c.metric]) for c in self.constraints]
        feasible = all(v <= 0 for v in violations)
        self.store.record_result(outcome.candidate_id, outcome.metrics, feasible=feasible)
        return [measured[o.metric] for o in self.objectives], violations

    def _take_front(self, job_id: int, generation: int) -> None:
        candidates = self.store.list_candidates(job_id)
        if self._reference is None:
            reference = reference_point(candidates, self.objectives)
            if any(r != r for r in reference):  # NaN: nothing scored yet
                return
            self._reference = reference
        points, volume = compute_front(candidates, self.objectives, self._reference)
        self.store.save_front(
            job_id,
            generation=generation,
            objectives=[o.metric for o in self.objectives],
            directions=[o.direction for o in self.objectives],
            reference_point=self._reference,
            hypervolume=volume,
            evaluations=self._evaluations,
            points=points,
        )
        self.on_progress(self._progress(job_id, generation, volume, points))

    def _progress(
        self,
        job_id: int,
        generation: int,
        volume: float | None = None,
        points: list[FrontPoint] | None = None,
    ) -> Progress:
        return Progress(
            job_id=job_id,
            evaluations=self._evaluations,
            budget=self.spec.budget.evaluations,
            generation=generation,
            failed=self._failed,
            hypervolume=volume,
            front=points or [],
        )


def run_job(
    spec: JobSpec,
    store: Store,
    *,
    executor: Executor | None = None,
    on_progress: ProgressCallback | None = None,
) -> JobRecord:
    """Run ``spec`` to the end of its budget; the finished job record is returned."""
    return Driver(spec, store, executor=executor, on_progress=on_progress).run()
