"""The driver loop of one job: ask, evaluate, store, tell, take the front; repeat.

Two drivings (``search.driving``, fixed for a job by its first driver event). *Async*
(the default with more than one worker): a worker that finishes gets its next candidate at
once; outcomes that arrived together are stored in one transaction
(:meth:`Store.record_results`) and then told, each durable before it is told; every ask and
tell is stored in order as a driver event, and a resume replays them (see
:meth:`Driver._search_async`). *Generational*: a batch is asked, evaluated, stored and told
in the order asked, as described below.

The driver alone writes to the database. A candidate's metrics are stored when its
evaluation finishes: at once, committed before the driver waits for the next evaluation,
when it took longer than 50 ms to arrive; together with the others, in one transaction,
when evaluations finish within 50 ms of each other (:mod:`hwsearch.db.group_commit`).
Every outcome is stored before it is told to the optimizer, before a stop hook is asked,
and when the driver is interrupted, so an interrupted job keeps every finished candidate.
That write is the whole per-candidate cost in the database (:meth:`Store.record_results`: a
fixed number of Core statements per group); everything else is once per batch.

Resuming replays. The optimizer is rebuilt with the job's seed and asked for the same
batches as before; configs the job already evaluated are told their stored values instead
of being evaluated again. Because results are told in the order they were asked (not the
order they finished), a deterministic optimizer reaches exactly the state it had, and the
resumed job goes on as the uninterrupted one would have. An optimizer that keeps its own
state in the job's database (an Optuna study, named by :func:`study_name`) starts it afresh
on every run of the job, so that the replay rebuilds it with each trial once.

A config measured before by another job, on the same target under the same settings
(:func:`measurement_context`), is reused rather than measured again: one query, in the
transaction that adds the batch's candidates, looks up the whole batch, and the batch's
reused candidates are stored in one transaction before any of its evaluations starts. The
batch's last outcomes (what the executor's last wait handed back) are stored with the front
they complete, in one transaction.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy.exc import DBAPIError

from hwsearch.db import Store
from hwsearch.db.group_commit import GroupCommit
from hwsearch.db.leases import LeaseKeeper, LeaseLost, LeaseOwner, Leases, LeaseSettings
from hwsearch.db.retry import transient_cause
from hwsearch.errors import HwsearchError, JobInterrupted
from hwsearch.hardware.threads import AUTO as AUTO_THREADS
from hwsearch.hardware.threads import cores_per_worker
from hwsearch.models import get_family
from hwsearch.plugins import loaded_plugins
from hwsearch.records import (
    CandidateFailure,
    CandidateRecord,
    CandidateResult,
    CandidateStatus,
    DriverEvent,
    FrontPoint,
    JobRecord,
    JobState,
    MetricValue,
    NewCandidate,
    NewFront,
)
from hwsearch.search.active import ActiveLearner, has_predicted
from hwsearch.search.front import compute_front, reference_point
from hwsearch.search.hashing import config_hash
from hwsearch.search.optimizer import (
    Optimizer,
    Suggestion,
    check_optimizer_options,
    make_optimizer,
)
from hwsearch.search.prior import search_prior
from hwsearch.search.space import SearchSpace
from hwsearch.search.spec import JobSpec, parse_spec
from hwsearch.workers import EvalOutcome, EvalTask, Executor, InProcessExecutor
from hwsearch.workers.kinds import kind_of

# A suggestion of a config evaluated before costs no evaluation; after this many
# generations' worth of such suggestions in a row (counted in suggestions, since the last
# generations of a budget are smaller) the space is taken as exhausted.
MAX_IDLE_GENERATIONS = 5
BATCH_SIZE = 8

log = logging.getLogger("hwsearch.driver")

Told = tuple[list[float] | None, list[float]]  # objective values (None: failed), violations


@dataclass(frozen=True)
class Progress:
    """What a progress display needs after each finished candidate or generation."""

    job_id: int
    evaluations: int
    budget: int | None
    generation: int
    failed: int = 0
    reused: int = 0
    predicted: int = 0  # settled by prediction instead of measurement (active learning)
    hypervolume: float | None = None
    front: list[FrontPoint] = field(default_factory=list)


ProgressCallback = Callable[[Progress], None]


def measurement_context(spec: JobSpec, *, cores_per_worker: int | None = None) -> str:
    """Digest of what a job's measurements depend on besides the config and the target.

    A spec's ``threads`` section counts (trained weights depend on the thread count) only
    when it is given, so that specs without one keep the digest they had. An ``auto`` count
    enters as what it resolves to, ``cores_per_worker`` (the cores one worker gets), so that
    runs whose workers got other counts do not take each other's measurements."""
    data = spec.to_dict()
    keys = ("target", "evaluation", "measurement", "seed")
    parts = {key: data.get(key) for key in keys}
    threads = data.get("threads")
    if threads is not None:
        if cores_per_worker is not None:
            resolved = max(1, cores_per_worker)
            threads = {k: resolved if v == AUTO_THREADS else v for k, v in threads.items()}
        parts["threads"] = threads
    return config_hash(spec.family, parts)


def reuse_summary(origins: Sequence[dict[str, Any]]) -> str:
    """``reused 14 from job 3 (measured 2026-12-02 00:10 to 00:12)``: what a run copied
    instead of measuring, by source job; empty when nothing was reused."""
    if not origins:
        return ""
    by_job: dict[int, list[str]] = {}
    for origin in origins:
        by_job.setdefault(int(origin["job_id"]), []).append(str(origin["measured_at"]))
    parts = []
    for job_id, times in sorted(by_job.items()):
        first, last = min(times)[:16].replace("T", " "), max(times)[:16].replace("T", " ")
        when = (
            first
            if first == last
            else f"{first} to {last[11:] if first[:10] == last[:10] else last}"
        )
        parts.append(f"{len(times)} from job {job_id} (measured {when} UTC)")
    return "reused " + ", ".join(parts)


def study_name(job_id: int) -> str:
    """The name of job ``job_id``'s optimizer state in its database (an Optuna study)."""
    return f"hwsearch-job-{job_id}"


def target_name(spec: JobSpec) -> str:
    target: Any = spec.target
    return str(getattr(target, "name", target))


class Driver:
    """Runs one job spec to the end of its budget against a store and an executor."""

    def __init__(
        self,
        spec: JobSpec,
        store: Store,
        *,
        executor: Executor | None = None,
        on_progress: ProgressCallback | None = None,
        should_stop: Callable[[], bool] | None = None,
        lease_owner: LeaseOwner | None = None,
        lease_settings: LeaseSettings | None = None,
    ) -> None:
        self.spec = spec
        self.store = store
        self.executor = executor or InProcessExecutor()
        self.on_progress = on_progress or (lambda progress: None)
        # Asked after each evaluation; True ends the job as cancelled, keeping what finished.
        self.should_stop = should_stop or (lambda: False)
        # A hook may read the store (the server's cancel flag): it sees every outcome.
        self._flush_before_stop = should_stop is not None
        self.stopped = False
        # The job is driven under a lease (hwsearch.db.leases): one driver at a time.
        self.lease_owner = lease_owner or LeaseOwner()
        self.lease_settings = lease_settings or LeaseSettings.from_environment()
        self._keeper: LeaseKeeper | None = None
        self.family = get_family(spec.family)
        self.space = SearchSpace.from_spec(spec)
        self.objectives = spec.get_objectives()
        self.constraints = spec.get_constraints()
        self.target = target_name(spec)
        self.context = measurement_context(spec, cores_per_worker=self._cores_per_worker())
        self._writes = GroupCommit(store, context=self.context, before_write=self._check_lease)
        # Made when the job starts: its prior knowledge is what the database held then.
        self._optimizer: Optimizer | None = None
        options = check_optimizer_options(spec.optimizer.name, spec.optimizer.options)
        # A generation of a population-based optimizer is one batch; others take batches of
        # BATCH_SIZE, and never fewer than the executor's workers.
        population = options.get("population_size") or BATCH_SIZE
        self.batch_size = max(int(population), self.executor.max_workers)
        self.job_id: int | None = None  # set once the job exists
        #: ``async`` or ``generational``, fixed when the job first runs (see :meth:`_driving`)
        self.driving: str | None = None
        # asynchronous driving: every suggestion by ordinal (params, hash, config), which
        # were told, which hashes are being evaluated (-> the ordinals waiting on them), the
        # candidates in the executor, the events not yet stored, the events stored so far
        self._asked: list[tuple[Suggestion, str, dict[str, Any]]] = []
        self._told_ordinals: set[int] = set()
        self._waiting: dict[str, list[int]] = {}
        self._running: dict[int, CandidateRecord] = {}
        self._events: list[DriverEvent] = []
        self._event_count = 0
        self._front_number = 0
        self._since_front = 0
        self._reference: list[float] | None = None
        self._saved_generations: set[int] = set()
        self._fronts_before: set[int] = set()  # of them, those stored before a resume
        self._stored: dict[str, CandidateRecord] = {}  # this job's candidates, when resuming
        self._forecast: set[int] = set()  # candidates with stored predictions, when resuming
        self._told: dict[str, Told] = {}  # by config hash, in this run
        self._evaluations = 0
        self._failed = 0
        self._reused = 0
        self._predicted = 0  # settled by prediction (active learning), not by measurement
        # The wall-time budget: its deadline (time.monotonic), and what evaluations took so
        # far (worker-seconds per evaluation), to start none expected to end past it.
        self._deadline: float | None = None
        self._slot_seconds = 0.0
        self._timed = 0
        self._task_threads: dict[str, Any] | None = None
        self._settings: tuple[dict[str, Any], dict[str, Any], str] | None = None
        #: where each candidate reused in this run was measured: job_id, candidate_id,
        #: measured_at (see :func:`reuse_summary`)
        self.reused_from: list[dict[str, Any]] = []
        self.learner = (
            ActiveLearner(
                spec.active_learning,
                store=store,
                family=self.family.name,
                target=self.target,
                objectives=self.objectives,
                constraints=self.constraints,
                seed=spec.seed,
            )
            if spec.active_learning is not None
            else None
        )
        if self.learner is not None:
            self.learner.check_family(
                self.family.canonical(
                    self.space.to_config(self.space.sample(np.random.default_rng(spec.seed)))
                )
            )
        # The last front's candidates and those settled since: the next front is taken from
        # them alone (the front of all candidates is the front of this pool), not from the
        # whole job read back from the database after every generation.
        self._pool: dict[int, CandidateRecord] = {}

    @property
    def predicted(self) -> int:
        """Candidates settled by prediction rather than measurement (active learning)."""
        return self._predicted

    # -- entry points ---------------------------------------------------------------------

    def run(self) -> JobRecord:
        """Create the job, search until the budget is spent, and return the finished job."""
        job = self.store.create_job(
            name=self.spec.name,
            family=self.spec.family,
            target=self.target,
            spec=self.spec.to_dict(),
        )
        self._take(job.id)
        return self._drive(job.id)

    def resume(self, job_id: int) -> JobRecord:
        """Continue job ``job_id`` (interrupted, failed, cancelled or killed) from what it
        stored."""
        job = self.store.get_job(job_id)
        if job.state == JobState.FINISHED:
            raise HwsearchError(f"job {job_id} is already finished; nothing to resume")
        self._take(job_id)  # JobLeased when another live driver runs it
        try:
            self._stored = {c.config_hash: c for c in self.store.list_candidates(job_id)}
            if self.learner is not None:
                self._forecast = {p.candidate_id for p in self.store.list_predictions(job_id)}
            fronts = self.store.list_fronts(job_id)
            self._saved_generations = {f.generation for f in fronts}
            self._fronts_before = set(self._saved_generations)
            if fronts:
                self._reference = list(fronts[0].reference_point)
            if self.store.get_job(job_id).state != JobState.QUEUED:
                self.store.set_job_state(job_id, JobState.QUEUED)
        except BaseException:
            if self._keeper is not None:
                self._keeper.stop()
            raise
        return self._drive(job_id)

    @property
    def optimizer(self) -> Optimizer:
        """The job's optimizer; made when the job starts (or resumes)."""
        if self._optimizer is None:
            raise HwsearchError("the optimizer is made when the job runs: call run or resume")
        return self._optimizer

    def _make_optimizer(self, job_created: datetime) -> Optimizer:
        """The spec's optimizer with what is known beforehand: stored measurements of other
        targets count only if made before the job was created, so that a resumed job knows
        what the uninterrupted one knew."""
        spec = self.spec
        return make_optimizer(
            spec.optimizer.name,
            space=self.space,
            objectives=self.objectives,
            n_constraints=len(self.constraints),
            seed=spec.seed,
            options=dict(spec.optimizer.options),
            prior=search_prior(
                spec, self.store, family=self.family, space=self.space, before=job_created
            ),
        )

    # -- the loop ---------------------------------------------------------------------------

    def _take(self, job_id: int) -> None:
        """Lease the job for this driver and keep renewing it while the driver runs."""
        leases = Leases(self.store)
        leases.take(job_id, self.lease_owner, self.lease_settings.duration_s)
        self._keeper = LeaseKeeper(leases, job_id, self.lease_owner, self.lease_settings).start()

    def _drive(self, job_id: int) -> JobRecord:
        self.job_id = job_id
        try:
            job = self.store.set_job_state(job_id, JobState.RUNNING)
            try:
                self._optimizer = self._make_optimizer(job.created_at)
                self.optimizer.attach_storage(self.store.url, study_name(job_id))
                events = self.store.list_events(job_id)
                self.driving = self._driving(events)
                self._event_count = len(events)
                if not events:
                    self._event_count = self.store.append_events(
                        job_id, [DriverEvent(self.driving, 0)], start=0
                    )
                if self.driving == "async":
                    self.optimizer.drive_asynchronously()
                    self._search_async(job_id, events[1:])
                else:
                    self._search(job_id)
            except BaseException as exc:  # interrupted or broken: keep what finished, say why
                self._settle_failure(job_id, exc)
                raise
            return self.store.set_job_state(
                job_id, JobState.CANCELLED if self.stopped else JobState.FINISHED
            )
        finally:
            if self._keeper is not None:
                self._keeper.stop()

    def _settle_failure(self, job_id: int, exc: BaseException) -> None:
        """Store why the job stopped, unless the next holder of its lease must settle it:
        when another driver took it over, or the database is away (the job stays
        ``running``, its lease expires, and a runner, or ``hwsearch resume``, continues it
        from what it stored)."""
        dialect = self.store.engine.dialect.name
        if isinstance(exc, LeaseLost) or transient_cause(exc, dialect) is not None:
            log.warning("job %s left for the next lease holder: %s", job_id, exc)
            return
        state = JobState.FAILED
        if isinstance(exc, KeyboardInterrupt):  # Ctrl-C, SIGTERM, a server stopping
            state = JobState.INTERRUPTED
            reason = str(exc) if isinstance(exc, JobInterrupted) else "interrupted (Ctrl-C)"
        elif isinstance(exc, DBAPIError):  # the database's reason, not the statement
            reason = str(exc.orig or exc).strip().splitlines()[0] if str(exc) else ""
        else:
            reason = str(exc)
        try:  # retried while the database comes back (hwsearch.db.retry)
            self.store.set_job_state(job_id, state, error=reason or type(exc).__name__)
        except Exception as error:  # still away: its lease expires, the next holder settles
            log.warning("job %s: storing its failure failed (%s); left to the next lease "
                        "holder", job_id, error)  # fmt: skip

    def _check_lease(self) -> None:
        """Raise :class:`LeaseLost` once another driver holds the job."""
        if self._keeper is not None:
            self._keeper.check()

    def _stop_requested(self) -> bool:
        """Whether to stop now: cancel or shutdown asked, or the lease lost (raised)."""
        self._check_lease()
        if self._flush_before_stop:
            self._writes.flush()
        if self.should_stop():
            self.stopped = True
        return self.stopped

    def _driving(self, events: Sequence[DriverEvent]) -> str:
        """How the job is driven: as its first event says (a resumed job keeps how it was
        driven, whatever the executor now); generational for a job that stored candidates
        before driver events existed; else the spec's ``search.driving``, by default async
        where the executor has more than one worker, no active learning is asked for and the
        optimizer says it searches as well asynchronously (``Optimizer.asynchronous``)."""
        if events:
            if events[0].kind not in ("async", "generational"):
                raise HwsearchError(
                    f"job {self.job_id}: its driver events start with {events[0].kind!r}, "
                    "not how the job is driven"
                )
            return events[0].kind
        if self._stored:
            return "generational"
        chosen = self.spec.search.driving if self.spec.search is not None else None
        if chosen is not None:
            return chosen
        if self.executor.max_workers > 1 and self.learner is None and self.optimizer.asynchronous:
            return "async"
        return "generational"

    def _search(self, job_id: int) -> None:
        budget = self.spec.budget
        deadline = time.monotonic() + budget.wall_time_s if budget.wall_time_s is not None else None
        self._deadline = deadline
        generation = 0
        idle = 0  # suggestions in a row without a new config measured
        predicted_idle = 0  # of them, new configs settled by prediction alone
        while idle < MAX_IDLE_GENERATIONS * self.batch_size:
            remaining = (
                budget.evaluations - self._evaluations if budget.evaluations is not None else None
            )
            if remaining is not None and self._verifying():
                remaining -= self._unverified()  # kept for measuring the front's predictions
            if remaining is not None and remaining <= 0:
                break
            if deadline is not None and time.monotonic() >= deadline:
                break
            if self._stop_requested():
                break
            size = self.batch_size if remaining is None else min(self.batch_size, remaining)
            size = self._fitting(size)
            if size <= 0:  # not even one more evaluation is expected to end in time
                break
            measured_before = self._evaluations
            suggestions = self.optimizer.ask(size)
            evaluated = self._generation(job_id, generation, suggestions)
            if self.stopped:  # within the generation: its pending candidates stay pending
                break
            # a generation settled by prediction alone measured nothing new; an optimizer
            # with nothing left to propose counts a whole generation
            if evaluated and self._evaluations > measured_before:
                idle = predicted_idle = 0
            else:  # new configs settled without a measurement were settled by prediction
                idle += len(suggestions) or self.batch_size
                predicted_idle += evaluated
            if evaluated:
                self._take_front(job_id, generation)
                generation += 1
        if idle >= MAX_IDLE_GENERATIONS * self.batch_size:
            self._exhausted(job_id, suggested=idle, predicted=predicted_idle)
        if self.learner is not None and self.learner.settings.verify_front:
            self._verify_front(job_id, generation, deadline)

    def _exhausted(self, job_id: int, *, suggested: int = 0, predicted: int = 0) -> None:
        """Say why a job ends before its budget: ``suggested`` suggestions in a row measured
        nothing new, ``predicted`` of them new configs settled by prediction (active
        learning), the others configs evaluated before."""
        budget = self.spec.budget.evaluations
        of_budget = f" of the budget's {budget}" if budget is not None else ""
        if not predicted:
            log.warning(
                "job %s: the optimizer proposed only configs evaluated before, %d "
                "generations' worth in a row; the space is taken as exhausted after %d "
                "evaluations%s", job_id, MAX_IDLE_GENERATIONS, self._evaluations, of_budget,
            )  # fmt: skip
            return
        log.warning(
            "job %s: %d generations' worth of suggestions in a row measured nothing new: %d "
            "of the %d were new configs settled by prediction as not worth measuring "
            "(active learning), the others configs evaluated before; the search is taken as "
            "exhausted after %d evaluations%s", job_id, MAX_IDLE_GENERATIONS, predicted,
            suggested, self._evaluations, of_budget,
        )  # fmt: skip

    def _generation(self, job_id: int, generation: int, suggestions: Sequence[Suggestion]) -> int:
        """Settle every suggestion of one batch; return how many new configs it settled."""
        hashes: list[str] = []
        fresh: dict[str, dict[str, Any]] = {}
        for suggestion in suggestions:
            config = self.family.canonical(self.space.to_config(suggestion.params))
            digest = config_hash(self.family.name, config)
            hashes.append(digest)
            if digest not in self._told:
                fresh.setdefault(digest, config)
        settled = len(fresh)
        to_store = {h: c for h, c in fresh.items() if not self._replay(h)}
        front: NewFront | None = None
        if to_store:
            candidates, found = self._add_candidates(
                job_id,
                [NewCandidate(digest, config, generation) for digest, config in to_store.items()],
            )
            to_evaluate = self._reuse(candidates, found)
            to_evaluate = self._predict_unpromising(generation, to_evaluate)
            by_id = {c.id: c for c in to_evaluate}
            self._writes.start()
            started, done = time.monotonic(), 0
            for task in [self._task(c) for c in to_evaluate]:
                self.executor.submit(task)
            # Evaluations run one at a time (the executor says so, whatever its worker
            # count): an outcome held by the group commit took less than its window to
            # evaluate, so holding it while the next one runs risks little. Otherwise a
            # fast arrival says nothing of what the evaluation cost (one slot may still
            # feed several GPU actors), so what arrived together is stored before waiting
            # again.
            flush_per_wait = not self.executor.runs_one_at_a_time
            try:
                while self.executor.in_flight:
                    for outcome in self.executor.wait():
                        candidate = by_id[outcome.candidate_id]
                        self._told[candidate.config_hash] = self._store_outcome(outcome)
                        self._remember(candidate, outcome.metrics)
                        self._evaluations += 1
                        done += 1
                        self.on_progress(self._progress(job_id, generation))
                        if self._stop_requested():  # cancel takes effect within one evaluation
                            self._writes.flush()
                            self.executor.cancel()  # what did not finish stays pending
                            return settled
                        if _past(self._deadline):  # within one evaluation of the wall time
                            self._writes.flush()
                            self.executor.cancel()
                            self._time_taken(time.monotonic() - started, done, len(to_evaluate))
                            return settled
                    if flush_per_wait and self.executor.in_flight:  # the last: with the front
                        self._writes.flush()
                # every result durable before it is told; the front they complete with them
                front = self._front_of(job_id, generation) if settled else None
                self._writes.flush(front=front)
            except BaseException as exc:
                self._flush_after(exc)
                self.executor.cancel()
                raise
            if front is not None:
                self._front_saved(front)
            self._time_taken(time.monotonic() - started, done, len(to_evaluate))
        # Told in the order asked, so that a replay reaches the same optimizer state.
        for suggestion, digest in zip(suggestions, hashes, strict=True):
            values, violations = self._told[digest]
            self.optimizer.tell(suggestion.id, values, violations)
        if front is not None:
            self.on_progress(
                self._progress(job_id, generation, front.hypervolume, list(front.points))
            )
        return settled

    # -- asynchronous driving ---------------------------------------------------------------

    def _search_async(self, job_id: int, events: Sequence[DriverEvent]) -> None:
        """Keep every worker busy: whenever one is free, ask the optimizer for a candidate
        for it; store outcomes that arrive together in one transaction, then tell each.

        Every ask and tell is recorded in order (:class:`~hwsearch.records.DriverEvent`):
        a resume replays ``events`` first — the same asks, and each stored result told where
        it was told before — so the optimizer reaches the state it had; suggestions asked
        and not told then are settled (evaluated if they never finished) before new ones.
        """
        budget = self.spec.budget
        deadline = time.monotonic() + budget.wall_time_s if budget.wall_time_s is not None else None
        self._front_number = max(self._saved_generations, default=-1) + 1
        self._replay_events(events)
        self._accept(job_id, [k for k in range(len(self._asked)) if k not in self._told_ordinals])
        idle = 0
        min_free = self.optimizer.min_free_workers(self.executor.max_workers)
        try:
            while True:
                if self._stop_requested():
                    self.executor.cancel()  # what is in flight stays pending
                    break
                remaining = (
                    budget.evaluations - self._evaluations - len(self._waiting)
                    if budget.evaluations is not None
                    else None
                )
                free = self.executor.max_workers - self.executor.in_flight
                n = free if remaining is None else min(free, remaining)
                late = deadline is not None and time.monotonic() >= deadline
                # the optimizer may wait for several free workers while others run
                enough = n >= min_free or n == remaining or self.executor.in_flight == 0
                if n > 0 and enough and idle < MAX_IDLE_GENERATIONS * self.batch_size and not late:
                    # recorded (after the tells before it) before the optimizer is asked
                    self._events.append(DriverEvent("ask", n))
                    self._flush_events(job_id)
                    start = len(self._asked)
                    self._asked += [self._hashed(s) for s in self.optimizer.ask(n)]
                    fresh = self._accept(job_id, range(start, len(self._asked)))
                    # as many suggestions without a new config as idle generations would ask
                    idle = 0 if fresh else idle + max(1, len(self._asked) - start)
                    continue
                if self.executor.in_flight == 0:
                    break
                outcomes = self.executor.wait()
                if outcomes:
                    self._settle_outcomes(job_id, outcomes)
                if self._since_front >= self.batch_size:
                    self._take_front(job_id, self._front_number)
                    self._front_number += 1
                    self._since_front = 0
            if idle >= MAX_IDLE_GENERATIONS * self.batch_size:
                self._exhausted(job_id)
            if self._since_front or not self._saved_generations:
                self._take_front(job_id, self._front_number)
        except BaseException as exc:
            if isinstance(exc, LeaseLost):  # the job's events are another driver's now
                raise
            # Told results are stored already: their order is worth keeping if it can be.
            try:
                self._flush_events(job_id)
            except Exception as error:
                log.warning("job %s: storing its last driver events failed (%s)", job_id, error)
            raise
        self._flush_events(job_id)

    def _hashed(self, suggestion: Suggestion) -> tuple[Suggestion, str, dict[str, Any]]:
        config = self.family.canonical(self.space.to_config(suggestion.params))
        return suggestion, config_hash(self.family.name, config), config

    def _replay_events(self, events: Sequence[DriverEvent]) -> None:
        """Ask and tell the optimizer what the job's stored events say, in their order."""
        for event in events:
            if event.kind == "ask":
                self._asked += [self._hashed(s) for s in self.optimizer.ask(event.value)]
                continue
            if event.kind != "tell" or event.value >= len(self._asked):
                raise HwsearchError(
                    f"job {self.job_id}: driver event {event} does not follow from the "
                    f"{len(self._asked)} suggestions asked before it"
                )
            _, digest, _ = self._asked[event.value]
            if digest in self._told:
                pass
            elif self._replay(digest):
                self._since_front += 1
            else:
                raise HwsearchError(
                    f"job {self.job_id}: suggestion {event.value} was told but its "
                    "candidate has no stored result"
                )
            self._tell(event.value, record=False)

    def _accept(self, job_id: int, ordinals: Sequence[int]) -> int:
        """Settle or start the suggestions ``ordinals``: configs settled before are told
        again, stored results (resuming) and other jobs' measurements are told, the rest
        go to the executor. Return how many new configs there were."""
        new: dict[str, dict[str, Any]] = {}
        start: list[CandidateRecord] = []
        fresh = 0
        for ordinal in ordinals:
            _, digest, config = self._asked[ordinal]
            if digest in self._told:
                continue
            if digest in self._waiting:
                self._waiting[digest].append(ordinal)
                continue
            fresh += 1
            if self._replay(digest):
                self._since_front += 1
                continue
            self._waiting[digest] = [ordinal]
            stored = self._stored.get(digest)
            if stored is not None:  # stored pending: it never finished
                start.append(stored)
            else:
                new[digest] = config
        if new:
            candidates, found = self._add_candidates(
                job_id,
                [NewCandidate(d, c, self._front_number) for d, c in new.items()],
            )
            start += self._reuse(candidates, found)
            for candidate in candidates:
                if candidate.config_hash in self._told:  # reused
                    del self._waiting[candidate.config_hash]
                    self._since_front += 1
        for candidate in start:
            self._running[candidate.id] = candidate
            self.executor.submit(self._task(candidate))
        for ordinal in ordinals:  # told in the order asked
            if ordinal not in self._told_ordinals and self._asked[ordinal][1] in self._told:
                self._tell(ordinal)
        return fresh

    def _settle_outcomes(self, job_id: int, outcomes: Sequence[EvalOutcome]) -> None:
        """Store outcomes that arrived together (the successes in one transaction), then
        tell the optimizer each: every result is durable before it is told."""
        settled: list[tuple[CandidateRecord, EvalOutcome, Told]] = []
        results: list[CandidateResult] = []
        failures: list[CandidateFailure] = []
        for outcome in outcomes:
            candidate = self._running.pop(outcome.candidate_id)
            measured = {m.name: m for m in outcome.metrics} if outcome.ok else {}
            missing = sorted(self._needed() - set(measured))
            if not outcome.ok or missing:
                self._failed += 1
                error = outcome.error if not outcome.ok else None
                error = error or f"evaluation returned no value for {', '.join(missing)}"
                failures.append(CandidateFailure(candidate.id, error))
                settled.append((candidate, outcome, (None, [])))
                continue
            told = self._values(measured)
            feasible = all(v <= 0 for v in told[1])
            results.append(CandidateResult(candidate.id, outcome.metrics, feasible))
            settled.append((candidate, outcome, told))
        self._check_lease()  # a driver that lost its job writes nothing more
        self.store.record_results(results, context=self.context, failures=failures)
        for candidate, outcome, told in settled:
            self._told[candidate.config_hash] = told
            self._remember(candidate, outcome.metrics)
            self._evaluations += 1
            self._since_front += 1
            for ordinal in self._waiting.pop(candidate.config_hash):
                self._tell(ordinal)
            self.on_progress(self._progress(job_id, self._front_number))

    def _tell(self, ordinal: int, *, record: bool = True) -> None:
        """Tell the optimizer the settled result of suggestion ``ordinal`` (and record it)."""
        suggestion, digest, _ = self._asked[ordinal]
        values, violations = self._told[digest]
        self.optimizer.tell(suggestion.id, values, violations)
        self._told_ordinals.add(ordinal)
        if record:
            self._events.append(DriverEvent("tell", ordinal))

    def _flush_events(self, job_id: int) -> None:
        """Store the events not stored yet, in one transaction."""
        if self._events:
            self._event_count = self.store.append_events(
                job_id, self._events, start=self._event_count
            )
            self._events = []

    def _time_taken(self, seconds: float, done: int, submitted: int) -> None:
        """Count ``done`` evaluations that took ``seconds`` on up to ``submitted`` workers."""
        if done:
            self._slot_seconds += seconds * min(self.executor.max_workers, submitted)
            self._timed += done

    def _fitting(self, size: int) -> int:
        """How many of ``size`` evaluations are expected to end before the deadline, from
        the time evaluations took so far (all of them before any was timed)."""
        if self._deadline is None or not self._timed:
            return size
        per_evaluation = self._slot_seconds / self._timed  # on one worker
        left = self._deadline - time.monotonic()
        rounds = int(left // per_evaluation) if per_evaluation > 0 else size
        return min(size, max(0, rounds) * self.executor.max_workers)

    def _flush_after(self, exc: BaseException) -> None:
        """Store the held outcomes of a generation that broke off (interrupted, say),
        unless another driver holds the job now."""
        if isinstance(exc, LeaseLost):
            return
        try:
            self._writes.flush()
        except Exception as error:  # the original error matters more; resume redoes them
            log.warning("storing the last outcomes of job %s failed: %s", self.job_id, error)

    def _replay(self, digest: str) -> bool:
        """Settle ``digest`` from this job's stored result, if it has one."""
        stored = self._stored.get(digest)
        if stored is None or stored.status == CandidateStatus.PENDING:
            return False
        if stored.status == CandidateStatus.FAILED:
            self._told[digest] = (None, [])
            self._failed += 1
        else:
            self._told[digest] = self._values(stored.metrics)
            self._pool[stored.id] = stored
        if has_predicted(stored, sorted(self._needed())):
            self._predicted += 1
        else:
            self._evaluations += 1
        return True

    def _add_candidates(
        self, job_id: int, items: Sequence[NewCandidate]
    ) -> tuple[list[CandidateRecord], dict[str, list[MetricValue]]]:
        """Store a batch of new candidates and, in the same transaction, find what other
        jobs measured of their configs (nothing where the spec says ``reuse: false``)."""
        if not self.spec.reuse:
            return self.store.add_candidates(job_id, items), {}
        return self.store.add_candidates_and_find(
            job_id, items, target=self.target, context=self.context
        )

    def _reuse(
        self, candidates: Sequence[CandidateRecord], found: dict[str, list[MetricValue]]
    ) -> list[CandidateRecord]:
        """Settle the candidates that other jobs measured (every needed metric, as ``found``
        when they were added; stored in one transaction); return the others, to evaluate.
        Each copied value says where it came from (``details.reused_from``: job, candidate,
        when)."""
        needed = self._needed()
        reused: list[tuple[CandidateRecord, list[MetricValue], Told]] = []
        rest: list[CandidateRecord] = []
        for candidate in candidates:
            stored = found.get(candidate.config_hash, [])
            if not needed <= {m.name for m in stored}:
                rest.append(candidate)
                continue
            metrics = [replace(m, details={**m.details, "reused": True}) for m in stored]
            reused.append((candidate, metrics, self._values({m.name: m for m in metrics})))
        if reused:
            results = [CandidateResult(c.id, m, all(v <= 0 for v in t[1])) for c, m, t in reused]
            self.store.record_results(results, context=self.context)
        for candidate, metrics, told in reused:
            self._told[candidate.config_hash] = told
            self._remember(candidate, metrics)
            self._evaluations += 1
            self._reused += 1
            self.reused_from.append(metrics[0].details["reused_from"])
        return rest

    # -- active learning (hwsearch.search.active) ------------------------------------------

    def _predict_unpromising(
        self, generation: int, candidates: Sequence[CandidateRecord]
    ) -> list[CandidateRecord]:
        """Settle by prediction the candidates not worth measuring; return the others."""
        if self.learner is None or not candidates or self.job_id is None:
            return list(candidates)
        # Resuming: a candidate forecast before and left pending was found worth measuring
        # then (the others of its batch were settled by prediction and stored); it is
        # measured, not forecast again by predictors fitted on what finished since.
        decided = [c for c in candidates if c.id in self._forecast]
        if decided:
            undecided = [c for c in candidates if c.id not in self._forecast]
            kept = {c.id for c in self._predict_unpromising(generation, undecided)}
            return [c for c in candidates if c.id in kept or c.id in self._forecast]
        done = self.store.list_candidates(self.job_id, status=CandidateStatus.DONE)
        if not self.learner.fit(done):
            return list(candidates)
        forecasts = self.learner.forecast(candidates)
        worth = self.learner.worth_measuring(forecasts, list(self._pool.values()))
        said = [record for f in forecasts for record in self.learner.prediction_records(f)]
        to_measure = []
        settled: list[tuple[CandidateRecord, list[MetricValue], Told]] = []
        for candidate, forecast, measure in zip(candidates, forecasts, worth, strict=True):
            if measure:
                to_measure.append(candidate)
                continue
            metrics = self.learner.predicted_metrics(forecast)
            settled.append((candidate, metrics, self._values({m.name: m for m in metrics})))
        # one transaction for the batch's forecasts and the candidates they settle, so a
        # resume finds either both or neither
        self.store.record_results(
            [CandidateResult(c.id, m, all(v <= 0 for v in t[1])) for c, m, t in settled],
            predictions=said,
        )
        for candidate, metrics, told in settled:
            self._told[candidate.config_hash] = told
            self._remember(candidate, metrics)
            self._predicted += 1
        return to_measure

    def _verifying(self) -> bool:
        return self.learner is not None and self.learner.settings.verify_front

    def _unverified(self) -> int:
        """Predicted candidates among the last front and those settled since."""
        needed = sorted(self._needed())
        return sum(has_predicted(c, needed) for c in self._pool.values())

    def _verify_front(self, job_id: int, generation: int, deadline: float | None) -> None:
        """Measure the front's predicted points, and those that take their place, while the
        budget and the time last; each round ends with a new front."""
        budget = self.spec.budget.evaluations
        needed = sorted(self._needed())
        while self._reference is not None and not self._stop_requested():
            if deadline is not None and time.monotonic() >= deadline:
                return
            points, _ = compute_front(list(self._pool.values()), self.objectives, self._reference)
            unverified = [self._pool[p.candidate_id] for p in points if not p.measured]
            if budget is not None:
                unverified = unverified[: max(0, budget - self._evaluations)]
            if not unverified:
                return
            by_id = {c.id: c for c in unverified}
            for outcome in self.executor.run([self._task(c) for c in unverified]):
                candidate = by_id[outcome.candidate_id]
                self._evaluations += 1
                self._predicted -= 1
                measured = {m.name: m for m in outcome.metrics} if outcome.ok else {}
                if not outcome.ok or not all(m in measured for m in needed):
                    self._failed += 1
                    error = outcome.error or f"verification returned no {', '.join(needed)}"
                    self.store.record_failure(candidate.id, error)
                    del self._pool[candidate.id]
                    if _past(deadline):  # within one evaluation of the wall-time budget
                        break
                    continue
                told = self._values(measured)
                feasible = all(v <= 0 for v in told[1])
                self.store.replace_predicted(
                    candidate.id, outcome.metrics, feasible=feasible, context=self.context
                )
                self._told[candidate.config_hash] = told
                self._remember(candidate, outcome.metrics)
                if _past(deadline):
                    break
            self._take_front(job_id, generation)
            generation += 1

    def _remember(self, candidate: CandidateRecord, metrics: Sequence[MetricValue]) -> None:
        """Add a settled candidate, as stored, to the pool of the next front."""
        values, violations = self._told[candidate.config_hash]
        if values is None:  # failed: never on a front
            return
        self._pool[candidate.id] = replace(
            candidate,
            status=CandidateStatus.DONE,
            feasible=all(v <= 0 for v in violations),
            metrics={m.name: m for m in metrics},
        )

    def _needed(self) -> set[str]:
        return {o.metric for o in self.objectives} | {c.metric for c in self.constraints}

    def _values(self, metrics: dict[str, MetricValue]) -> Told:
        violations = [c.violation(metrics[c.metric].value) for c in self.constraints]
        return [metrics[o.metric].value for o in self.objectives], violations

    def _task(self, candidate: CandidateRecord) -> EvalTask:
        evaluation, measurement, kind = self._task_settings()
        return EvalTask(
            candidate_id=candidate.id,
            family=self.family.name,
            config=candidate.config,
            config_hash=candidate.config_hash,
            target=self.target,
            seed=self.spec.seed,
            evaluation=dict(evaluation),  # each task its own copy, as before
            measurement=dict(measurement),
            kind=kind,
            plugins=loaded_plugins(),
            threads=self._threads(),
        )

    def _task_settings(self) -> tuple[dict[str, Any], dict[str, Any], str]:
        """The spec's evaluation and measurement settings as dicts, and the evaluation's
        kind: read from the spec once, not for every task."""
        if self._settings is None:
            evaluation = self.spec.evaluation
            self._settings = (
                dict(evaluation),
                dict(self.spec.measurement),
                kind_of(evaluation).type,
            )
        return self._settings

    def _cores_per_worker(self) -> int:
        """What a ``threads: auto`` count means for this executor's workers."""
        given = self.executor.cores_per_worker
        return given if given is not None else cores_per_worker(self.executor.max_workers)

    def _threads(self) -> dict[str, Any]:
        """The spec's thread counts and what ``auto`` means with this executor (the same
        dict for every task)."""
        if self._task_threads is None:
            given = self.spec.threads.model_dump() if self.spec.threads is not None else {}
            self._task_threads = {
                **given,
                "workers": self.executor.max_workers,
                "cores_per_worker": self.executor.cores_per_worker,
            }
        return self._task_threads

    def _store_outcome(self, outcome: EvalOutcome) -> Told:
        """Store one outcome (now or with its group); return the objective values and
        constraint violations to tell."""
        if not outcome.ok:
            self._failed += 1
            self._writes.add_failure(outcome.candidate_id, outcome.error or "failed")
            return None, []
        measured = {m.name: m for m in outcome.metrics}
        missing = sorted(self._needed() - set(measured))
        if missing:
            self._failed += 1
            error = f"evaluation returned no value for {', '.join(missing)}"
            self._writes.add_failure(outcome.candidate_id, error)
            return None, []
        told = self._values(measured)
        feasible = all(v <= 0 for v in told[1])
        self._writes.add_result(outcome.candidate_id, outcome.metrics, feasible=feasible)
        return told

    def _take_front(self, job_id: int, generation: int) -> None:
        """Save the front of the pool as generation ``generation``'s (once)."""
        if generation in self._fronts_before:  # taken before the job was interrupted: the
            self._fronts_before.discard(generation)  # pool is cut to it, as it was then
            if self._reference is not None:
                points, _ = compute_front(
                    list(self._pool.values()), self.objectives, self._reference
                )
                self._pool = {p.candidate_id: self._pool[p.candidate_id] for p in points}
            return
        front = self._front_of(job_id, generation)
        if front is None:
            return
        self.store.save_front(
            job_id,
            generation=generation,
            objectives=list(front.objectives),
            directions=list(front.directions),
            reference_point=list(front.reference_point),
            hypervolume=front.hypervolume,
            evaluations=front.evaluations,
            points=front.points,
        )
        self._front_saved(front)
        self.on_progress(self._progress(job_id, generation, front.hypervolume, list(front.points)))

    def _front_of(self, job_id: int, generation: int) -> NewFront | None:
        """The front of the pool, to save as generation ``generation``'s; ``None`` where
        that generation has its front already (taken before the job was interrupted) or
        nothing is scored yet."""
        if generation in self._saved_generations:
            return None
        candidates = list(self._pool.values())
        if self._reference is None:
            reference = reference_point(candidates, self.objectives)
            if any(r != r for r in reference):  # NaN: nothing scored yet
                return None
            self._reference = reference
        points, volume = compute_front(candidates, self.objectives, self._reference)
        return NewFront(
            job_id=job_id,
            generation=generation,
            objectives=[o.metric for o in self.objectives],
            directions=[o.direction for o in self.objectives],
            reference_point=list(self._reference),
            hypervolume=volume,
            evaluations=self._evaluations,
            points=points,
        )

    def _front_saved(self, front: NewFront) -> None:
        """The front is stored: only its points stay in the pool of the next one."""
        self._saved_generations.add(front.generation)
        self._pool = {p.candidate_id: self._pool[p.candidate_id] for p in front.points}

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
            reused=self._reused,
            predicted=self._predicted,
            hypervolume=volume,
            front=points or [],
        )


def _past(deadline: float | None) -> bool:
    """Whether the wall-time deadline (``time.monotonic``; ``None``: none) has passed."""
    return deadline is not None and time.monotonic() >= deadline


def run_job(
    spec: JobSpec,
    store: Store,
    *,
    executor: Executor | None = None,
    on_progress: ProgressCallback | None = None,
) -> JobRecord:
    """Run ``spec`` to the end of its budget; the finished job record is returned."""
    return Driver(spec, store, executor=executor, on_progress=on_progress).run()


def resume_job(
    job_id: int,
    store: Store,
    *,
    executor: Executor | None = None,
    on_progress: ProgressCallback | None = None,
) -> JobRecord:
    """Resume job ``job_id`` with the spec stored with it; finished candidates are not rerun."""
    spec = parse_spec(store.get_job(job_id).spec)
    return Driver(spec, store, executor=executor, on_progress=on_progress).resume(job_id)
