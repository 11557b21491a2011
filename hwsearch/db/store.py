"""The ``Store``: the front door of storage, over one repository per kind of data.

``Store.open()`` gives one object for the whole database; each kind of data has its own
repository (``store.jobs``, ``store.candidates``, ``store.fronts`` ...; see below), and the
store's methods delegate to them, so callers need not know which one holds what. Each call
runs in one transaction of its own: a write either lands completely or, when anything in it
fails, not at all; on PostgreSQL it runs again after a transient failure (the repositories'
methods are wrapped, :mod:`hwsearch.db.retry`). Calls return the plain records of
:mod:`hwsearch.records`, never ORM rows.

Storage raises its own errors: :class:`~hwsearch.errors.StorageError` for a value it
refuses, :class:`~hwsearch.errors.ConflictError` for an illegal state change or a duplicate,
:class:`~hwsearch.errors.NotFoundError` for a missing job, candidate, token or target.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Engine

from hwsearch.db.cancels import CancelRepository
from hwsearch.db.candidates import CandidateRepository
from hwsearch.db.engine import (
    database_url,
    engine_revision,
    head_revision,
    make_engine,
    normalize_url,
    upgrade_engine,
)
from hwsearch.db.events import EventRepository
from hwsearch.db.fronts import FrontRepository
from hwsearch.db.jobs import JOB_TRANSITIONS, JobRepository
from hwsearch.db.measurements import MeasurementRepository
from hwsearch.db.predictions import PredictionRepository
from hwsearch.db.predictors import PredictorRepository
from hwsearch.db.targets import TargetRepository
from hwsearch.db.tokens import TokenRepository
from hwsearch.errors import HwsearchError, SpecError
from hwsearch.records import (
    CandidateFailure,
    CandidateRecord,
    CandidateResult,
    CandidateStatus,
    DriverEvent,
    FrontPoint,
    FrontRecord,
    HypervolumePoint,
    JobRecord,
    JobState,
    MeasuredConfig,
    MetricValue,
    NewCandidate,
    NewFront,
    PredictionRecord,
    PredictorRecord,
    TargetRecord,
    TokenRecord,
    TokenScope,
)

__all__ = ["JOB_TRANSITIONS", "Store"]


class Store:
    """Storage of jobs, candidates, measurements and fronts in one SQL database.

    Thread-safe: every call opens its own session. Use :meth:`open`, and :meth:`close` (or a
    ``with`` block) when done.
    """

    def __init__(self, engine: Engine, url: str) -> None:
        self.url = url
        self._engine = engine
        self.jobs = JobRepository(engine)
        self.cancels = CancelRepository(engine)
        self.candidates = CandidateRepository(engine)
        self.measurements = MeasurementRepository(engine)
        self.fronts = FrontRepository(engine)
        self.tokens = TokenRepository(engine)
        self.targets = TargetRepository(engine)
        self.predictors = PredictorRepository(engine)
        self.predictions = PredictionRepository(engine)
        self.events = EventRepository(engine)

    @classmethod
    def open(cls, url: str | None = None, *, migrate: bool = True) -> Store:
        """Open the database at ``url`` (see :func:`~hwsearch.db.engine.database_url`).

        With ``migrate`` the schema is brought up to date first; without it, a database that
        is not at the newest revision is refused.
        """
        resolved = database_url(url)
        engine = make_engine(resolved)
        try:
            if migrate:
                upgrade_engine(engine)
            else:
                have, want = engine_revision(engine), head_revision()
                if have != want:
                    raise HwsearchError(
                        f"database {_safe(resolved)} is at schema revision {have or 'none'}, "
                        f"this version of hwsearch needs {want}; open it with migrate=True"
                    )
        except BaseException:
            engine.dispose()
            raise
        return cls(engine, resolved)

    @property
    def engine(self) -> Engine:
        return self._engine

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({_safe(self.url)!r})"

    # -- jobs (JobRepository) ----------------------------------------------------------------

    def create_job(
        self,
        *,
        name: str,
        family: str,
        target: str,
        spec: dict[str, Any],
        owner_token_id: int | None = None,
    ) -> JobRecord:
        return self.jobs.create_job(
            name=name, family=family, target=target, spec=spec, owner_token_id=owner_token_id
        )

    def set_job_state(self, job_id: int, state: JobState, *, error: str | None = None) -> JobRecord:
        return self.jobs.set_job_state(job_id, state, error=error)

    def get_job(self, job_id: int) -> JobRecord:
        return self.jobs.get_job(job_id)

    def list_jobs(
        self, *, state: JobState | None = None, limit: int = 100, offset: int = 0
    ) -> list[JobRecord]:
        return self.jobs.list_jobs(state=state, limit=limit, offset=offset)

    def count_jobs(self, *, state: JobState | None = None) -> int:
        return self.jobs.count_jobs(state=state)

    def set_job_footprint(self, job_id: int, footprint: dict[str, Any]) -> None:
        self.jobs.set_job_footprint(job_id, footprint)

    def get_job_footprint(self, job_id: int) -> dict[str, Any] | None:
        return self.jobs.get_job_footprint(job_id)

    # -- cancel requests (CancelRepository) --------------------------------------------------

    def request_cancel(self, job_id: int) -> JobRecord:
        return self.cancels.request_cancel(job_id)

    def cancel_requested(self, job_id: int) -> bool:
        return self.cancels.cancel_requested(job_id)

    def clear_cancel_request(self, job_id: int) -> None:
        self.cancels.clear_cancel_request(job_id)

    # -- candidates and results (CandidateRepository) ----------------------------------------

    def add_candidates(self, job_id: int, items: Sequence[NewCandidate]) -> list[CandidateRecord]:
        return self.candidates.add_candidates(job_id, items)

    def add_candidates_and_find(
        self, job_id: int, items: Sequence[NewCandidate], *, target: str, context: str | None
    ) -> tuple[list[CandidateRecord], dict[str, list[MetricValue]]]:
        return self.candidates.add_candidates_and_find(
            job_id, items, target=target, context=context
        )

    def record_result(
        self,
        candidate_id: int,
        metrics: Sequence[MetricValue],
        *,
        feasible: bool,
        context: str | None = None,
    ) -> None:
        self.candidates.record_result(candidate_id, metrics, feasible=feasible, context=context)

    def record_results(
        self,
        results: Sequence[CandidateResult],
        *,
        context: str | None = None,
        failures: Sequence[CandidateFailure] = (),
        front: NewFront | None = None,
        predictions: Sequence[PredictionRecord] = (),
    ) -> None:
        self.candidates.record_results(
            results, context=context, failures=failures, front=front, predictions=predictions
        )

    def record_failure(self, candidate_id: int, error: str) -> None:
        self.candidates.record_failure(candidate_id, error)

    # -- driver events (EventRepository) -----------------------------------------------------

    def append_events(
        self, job_id: int, events: Sequence[DriverEvent], *, start: int | None = None
    ) -> int:
        return self.events.append_events(job_id, events, start=start)

    def list_events(self, job_id: int) -> list[DriverEvent]:
        return self.events.list_events(job_id)

    def get_candidate(self, job_id: int, candidate_id: int) -> CandidateRecord:
        return self.candidates.get_candidate(job_id, candidate_id)

    def list_candidates(
        self, job_id: int, *, status: CandidateStatus | None = None
    ) -> list[CandidateRecord]:
        return self.candidates.list_candidates(job_id, status=status)

    def count_candidates(self, job_id: int, *, status: CandidateStatus | None = None) -> int:
        return self.candidates.count_candidates(job_id, status=status)

    def count_predicted(self, job_id: int) -> int:
        return self.candidates.count_predicted(job_id)

    # -- measurements for reuse and fitting (MeasurementRepository) --------------------------

    def find_measurements(
        self, config_hash: str, target: str, *, context: str | None = None
    ) -> list[MetricValue]:
        return self.measurements.find_measurements(config_hash, target, context=context)

    def find_measurements_many(
        self,
        config_hashes: Collection[str],
        target: str,
        *,
        context: str | None = None,
        with_origin: bool = False,
    ) -> dict[str, list[MetricValue]]:
        return self.measurements.find_measurements_many(
            config_hashes, target, context=context, with_origin=with_origin
        )

    def measured_values(self, family: str, target: str, metric: str) -> list[MeasuredConfig]:
        return self.measurements.measured_values(family, target, metric)

    def measured_values_by_target(
        self,
        family: str,
        metric: str,
        *,
        targets: Collection[str] | None = None,
        config_hashes: Collection[str] | None = None,
        before: datetime | None = None,
    ) -> dict[str, list[MeasuredConfig]]:
        return self.measurements.measured_values_by_target(
            family, metric, targets=targets, config_hashes=config_hashes, before=before
        )

    # -- fronts (FrontRepository) ------------------------------------------------------------

    def save_front(
        self,
        job_id: int,
        *,
        generation: int,
        objectives: list[str],
        directions: list[str],
        reference_point: list[float],
        hypervolume: float,
        evaluations: int,
        points: Sequence[FrontPoint],
    ) -> FrontRecord:
        return self.fronts.save_front(
            job_id,
            generation=generation,
            objectives=objectives,
            directions=directions,
            reference_point=reference_point,
            hypervolume=hypervolume,
            evaluations=evaluations,
            points=points,
        )

    def latest_front(self, job_id: int) -> FrontRecord | None:
        return self.fronts.latest_front(job_id)

    def list_fronts(self, job_id: int) -> list[FrontRecord]:
        return self.fronts.list_fronts(job_id)

    def latest_front_id(self, job_id: int) -> int | None:
        return self.fronts.latest_front_id(job_id)

    def hypervolume_history(self, job_id: int) -> list[HypervolumePoint]:
        return self.fronts.hypervolume_history(job_id)

    # -- tokens (TokenRepository) ------------------------------------------------------------

    def add_token(self, *, name: str, token_hash: str, scope: TokenScope) -> TokenRecord:
        return self.tokens.add_token(name=name, token_hash=token_hash, scope=scope)

    def find_token(self, token_hash: str) -> TokenRecord | None:
        return self.tokens.find_token(token_hash)

    def list_tokens(self) -> list[TokenRecord]:
        return self.tokens.list_tokens()

    def revoke_token(self, token_id: int) -> TokenRecord:
        return self.tokens.revoke_token(token_id)

    # -- target profiles (TargetRepository) --------------------------------------------------

    def save_target(self, profile: dict[str, Any], *, replace: bool = True) -> TargetRecord:
        return self.targets.save_target(profile, replace=replace)

    def get_target(self, name: str) -> TargetRecord:
        return self.targets.get_target(name)

    def list_targets(self) -> list[TargetRecord]:
        return self.targets.list_targets()

    # -- fitted predictors (PredictorRepository) ---------------------------------------------

    def save_predictor(
        self,
        *,
        family: str,
        target: str,
        metric: str,
        kind: str,
        features: Sequence[str],
        training_size: int,
        metrics: dict[str, float],
        state: dict[str, Any],
    ) -> PredictorRecord:
        return self.predictors.save_predictor(
            family=family,
            target=target,
            metric=metric,
            kind=kind,
            features=features,
            training_size=training_size,
            metrics=metrics,
            state=state,
        )

    def get_predictor(
        self, family: str, target: str, metric: str, *, version: int | None = None
    ) -> PredictorRecord:
        return self.predictors.get_predictor(family, target, metric, version=version)

    def list_predictors(
        self, *, family: str | None = None, target: str | None = None, metric: str | None = None
    ) -> list[PredictorRecord]:
        return self.predictors.list_predictors(family=family, target=target, metric=metric)

    # -- predictions (PredictionRepository) --------------------------------------------------

    def record_predictions(self, predictions: Sequence[PredictionRecord]) -> None:
        self.predictions.record_predictions(predictions)

    def list_predictions(self, job_id: int) -> list[PredictionRecord]:
        return self.predictions.list_predictions(job_id)

    def replace_predicted(
        self,
        candidate_id: int,
        metrics: Sequence[MetricValue],
        *,
        feasible: bool,
        context: str | None = None,
    ) -> None:
        self.predictions.replace_predicted(
            candidate_id, metrics, feasible=feasible, context=context
        )


def _safe(url: str) -> str:
    """``url`` with any password masked, for messages."""
    try:
        return normalize_url(url).render_as_string(hide_password=True)
    except SpecError:
        return "<unparsable URL>"
