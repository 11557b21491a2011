"""The ``Store``: every read and write of jobs, candidates, measurements and fronts.

Each public method runs in one transaction of its own: a write either lands completely or,
when anything in it fails, not at all. Methods return the plain records of
:mod:`hwsearch.records`, never ORM rows, so callers cannot lazy-load after the session closed.
"""

from __future__ import annotations

import json
import math
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Boolean, Engine, Select, bindparam, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload, sessionmaker

from hwsearch.db.engine import (
    WRITE_OPTION,
    database_url,
    engine_revision,
    head_revision,
    make_engine,
    normalize_url,
    upgrade_engine,
)
from hwsearch.db.leases import lease_record
from hwsearch.db.models import (
    ApiToken,
    Candidate,
    Front,
    FrontPointRow,
    Job,
    Measurement,
    PredictionRow,
    PredictorRow,
    TargetRow,
    utcnow,
)
from hwsearch.db.retry import install as _install_retries
from hwsearch.errors import HwsearchError, NotFoundError, SpecError
from hwsearch.records import (
    CandidateRecord,
    CandidateStatus,
    FrontPoint,
    FrontRecord,
    HypervolumePoint,
    JobRecord,
    JobState,
    MetricValue,
    PredictionRecord,
    PredictorRecord,
    Provenance,
    TargetRecord,
    TokenRecord,
    TokenScope,
)

__all__ = ["JOB_TRANSITIONS", "Store"]

#: The states a job may move to from each state. A finished job is final; a failed or
#: cancelled one may be queued again to resume it.
JOB_TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    JobState.QUEUED: frozenset({JobState.RUNNING, JobState.CANCELLED, JobState.FAILED}),
    JobState.RUNNING: frozenset(
        {JobState.FINISHED, JobState.FAILED, JobState.CANCELLED, JobState.QUEUED}
    ),
    JobState.FINISHED: frozenset(),
    JobState.FAILED: frozenset({JobState.QUEUED}),
    JobState.CANCELLED: frozenset({JobState.QUEUED}),
}
_TERMINAL = frozenset({JobState.FINISHED, JobState.FAILED, JobState.CANCELLED})
_DIRECTIONS = ("minimize", "maximize")
_E = TypeVar("_E", JobState, CandidateStatus)
# Column widths of models.py, checked up front for a clear error instead of a backend one.
_MAX_NAME = 200
_MAX_LABEL = 100
_MAX_HASH = 64
# Values per IN list, well under SQLite's limit on the parameters of one statement.
_IN_CHUNK = 500


class Store:
    """Storage of jobs, candidates, measurements and fronts in one SQL database.

    Thread-safe: every call opens its own session. Use :meth:`open`, and :meth:`close` (or a
    ``with`` block) when done.
    """

    def __init__(self, engine: Engine, url: str) -> None:
        self.url = url
        self._engine = engine
        self._read = sessionmaker(engine, expire_on_commit=False)
        self._write_engine = engine.execution_options(**{WRITE_OPTION: True})
        self._write = sessionmaker(self._write_engine, expire_on_commit=False)

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

    @contextmanager
    def _writing(self) -> Iterator[Session]:
        with self._write.begin() as session:
            yield session

    @contextmanager
    def _reading(self) -> Iterator[Session]:
        with self._read.begin() as session:
            yield session

    # -- jobs ---------------------------------------------------------------------------

    def create_job(
        self,
        *,
        name: str,
        family: str,
        target: str,
        spec: dict[str, Any],
        owner_token_id: int | None = None,
    ) -> JobRecord:
        """Queue a new job; ``owner_token_id``: the API token submitting it, if any."""
        _check_text("name", name, _MAX_NAME)
        _check_text("family", family, _MAX_LABEL)
        _check_text("target", target, _MAX_LABEL)
        stored_spec = _json_object("spec", spec)
        with self._writing() as session:
            job = Job(
                name=name,
                family=family,
                target=target,
                spec=stored_spec,
                state=JobState.QUEUED,
                owner_token_id=owner_token_id,
            )
            session.add(job)
            session.flush()
            return _job_record(job, evaluations=0)

    def set_job_state(self, job_id: int, state: JobState, *, error: str | None = None) -> JobRecord:
        """Move a job to ``state`` (see :data:`JOB_TRANSITIONS`), stamping ``started_at`` on
        running and ``finished_at`` on finished, failed or cancelled; ``error`` is stored as
        given (``None`` clears an earlier one)."""
        new = _coerce_enum("state", state, JobState)
        with self._writing() as session:
            job = session.scalars(
                select(Job).where(Job.id == job_id).with_for_update()
            ).one_or_none()
            if job is None:
                raise NotFoundError(f"job {job_id} not found")
            if new not in JOB_TRANSITIONS[job.state]:
                allowed = ", ".join(sorted(JOB_TRANSITIONS[job.state])) or "none, it is final"
                raise SpecError(
                    "state",
                    f"job {job_id} is {job.state.value} and cannot become {new.value} "
                    f"(allowed: {allowed})",
                )
            now = utcnow()
            job.state = new
            job.error = error
            if new is JobState.QUEUED:
                job.started_at = None
                job.finished_at = None
            elif new is JobState.RUNNING:
                job.started_at = now
                job.finished_at = None
            elif new in _TERMINAL:
                job.finished_at = now
            session.flush()
            return _job_record(job, evaluations=_count(session, job_id, CandidateStatus.DONE))

    def get_job(self, job_id: int) -> JobRecord:
        with self._reading() as session:
            row = session.execute(_jobs_query().where(Job.id == job_id)).one_or_none()
            if row is None:
                raise NotFoundError(f"job {job_id} not found")
            return _job_record(row[0], evaluations=row[1])

    def list_jobs(
        self, *, state: JobState | None = None, limit: int = 100, offset: int = 0
    ) -> list[JobRecord]:
        """Jobs, newest first."""
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise SpecError("limit", f"must be a positive integer, got {limit!r}")
        if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
            raise SpecError("offset", f"must be a non-negative integer, got {offset!r}")
        query = _jobs_query().order_by(Job.id.desc()).limit(limit).offset(offset)
        if state is not None:
            query = query.where(Job.state == _coerce_enum("state", state, JobState))
        with self._reading() as session:
            return [_job_record(job, evaluations=n) for job, n in session.execute(query)]

    def count_jobs(self, *, state: JobState | None = None) -> int:
        query = select(func.count(Job.id))
        if state is not None:
            query = query.where(Job.state == _coerce_enum("state", state, JobState))
        with self._reading() as session:
            return int(session.scalar(query) or 0)

    # -- candidates ---------------------------------------------------------------------

    def add_candidates(
        self, job_id: int, items: Sequence[tuple[str, dict[str, Any], int]]
    ) -> list[CandidateRecord]:
        """Add ``(config_hash, config, generation)`` candidates to a job.

        Returns one record per item, in order. A hash the job already has (stored earlier
        or repeated within ``items``) is not added again: its existing record is returned.
        """
        rows: dict[str, dict[str, Any]] = {}
        hashes: list[str] = []
        for i, item in enumerate(items):
            if not isinstance(item, tuple | list) or len(item) != 3:
                raise SpecError(f"items[{i}]", "must be a (config_hash, config, generation)")
            config_hash, config, generation = item
            _check_text(f"items[{i}].config_hash", config_hash, _MAX_HASH)
            config = _json_object(f"items[{i}].config", config)
            _check_count(f"items[{i}].generation", generation)
            hashes.append(config_hash)
            rows.setdefault(
                config_hash,
                {
                    "job_id": job_id,
                    "config_hash": config_hash,
                    "config": config,
                    "generation": generation,
                    "status": CandidateStatus.PENDING,
                    "created_at": utcnow(),
                },
            )
        # Core statements, once per batch of the driver: the new rows come back from the
        # INSERT itself; only hashes stored before are read (with their metrics).
        with self._write_engine.begin() as connection:
            if connection.scalar(select(Job.id).where(Job.id == job_id)) is None:
                raise NotFoundError(f"job {job_id} not found")
            if not rows:
                return []
            upsert = postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert
            statement = (
                upsert(Candidate)
                .on_conflict_do_nothing(index_elements=["job_id", "config_hash"])
                .returning(Candidate.id, Candidate.config_hash)
            )
            by_hash = {
                config_hash: CandidateRecord(
                    id=candidate_id,
                    job_id=job_id,
                    config_hash=config_hash,
                    config=rows[config_hash]["config"],
                    generation=rows[config_hash]["generation"],
                    status=CandidateStatus.PENDING,
                )
                for candidate_id, config_hash in connection.execute(statement, list(rows.values()))
            }
            known = [h for h in rows if h not in by_hash]
            if known:
                with Session(connection) as session:
                    for candidate in session.scalars(
                        select(Candidate)
                        .where(Candidate.job_id == job_id, Candidate.config_hash.in_(known))
                        .options(selectinload(Candidate.measurements))
                    ):
                        by_hash[candidate.config_hash] = _candidate_record(candidate)
            return [by_hash[h] for h in hashes]

    def record_result(
        self,
        candidate_id: int,
        metrics: Sequence[MetricValue],
        *,
        feasible: bool,
        context: str | None = None,
    ) -> None:
        """Store a candidate's metrics and mark it done.

        ``context`` is the digest of the settings the values depend on besides the config
        and target; :meth:`find_measurements` matches on it for reuse across jobs.
        A metric without a ``target`` is stored under the job's target. Metrics may be
        added to a done candidate later, but a metric it already has is refused (and then
        nothing of the call is stored).
        """
        checked = _check_metrics(metrics)
        _check_bool("feasible", feasible)
        self._record_results([(candidate_id, checked, feasible)], context, ["metrics"])

    def record_results(
        self,
        results: Sequence[tuple[int, Sequence[MetricValue], bool]],
        *,
        context: str | None = None,
    ) -> None:
        """:meth:`record_result` for several ``(candidate_id, metrics, feasible)`` at once,
        in one transaction: all of them are stored, or (on any error) none."""
        checked: list[tuple[int, list[MetricValue], bool]] = []
        seen: set[int] = set()
        for k, item in enumerate(results):
            if not isinstance(item, tuple | list) or len(item) != 3:
                raise SpecError(f"results[{k}]", "must be a (candidate_id, metrics, feasible)")
            candidate_id, metrics, feasible = item
            if candidate_id in seen:
                raise SpecError(f"results[{k}]", f"candidate {candidate_id} is given twice")
            seen.add(candidate_id)
            _check_bool(f"results[{k}].feasible", feasible)
            metric_values = _check_metrics(metrics, f"results[{k}].metrics")
            checked.append((candidate_id, metric_values, feasible))
        fields = [f"results[{k}].metrics" for k in range(len(checked))]
        self._record_results(checked, context, fields)

    def _record_results(
        self,
        results: Sequence[tuple[int, list[MetricValue], bool]],
        context: str | None,
        fields: Sequence[str],
    ) -> None:
        """Checked results in one transaction of Core statements: per candidate one
        ``UPDATE ... RETURNING`` (its hash and job), then one multi-row INSERT of every
        metric. No ORM objects: this is the driver's per-candidate cost."""
        now = utcnow()
        try:
            with self._write_engine.begin() as connection:
                rows: list[dict[str, Any]] = []
                for candidate_id, metrics, feasible in results:
                    found = connection.execute(
                        _MARK_DONE, {"done_id": candidate_id, "done_feasible": feasible}
                    ).one_or_none()
                    if found is None:
                        raise NotFoundError(f"candidate {candidate_id} not found")
                    config_hash, job_id = found
                    target = ""
                    if not all(m.target for m in metrics):  # stored under the job's target
                        target = connection.execute(
                            select(Job.target).where(Job.id == job_id)
                        ).scalar_one()
                    rows.extend(
                        {
                            "candidate_id": candidate_id,
                            "config_hash": config_hash,
                            "target": m.target or target,
                            "metric": m.name,
                            "value": m.value,
                            "provenance": m.provenance,
                            "details": m.details,
                            "context": context,
                            "created_at": now,
                        }
                        for m in metrics
                    )
                if rows:
                    connection.execute(_INSERT_MEASUREMENTS, rows)
        except IntegrityError as exc:
            if self._already_stored(results):
                return  # a retried call whose first COMMIT landed, its answer lost
            clash = self._stored_clash(results, fields)
            if clash is None:
                raise
            raise clash from exc

    def _already_stored(self, results: Sequence[tuple[int, list[MetricValue], bool]]) -> bool:
        """Whether every metric of ``results`` is stored already, with the same value."""
        wanted = {(r[0], m.name): m.value for r in results for m in r[1]}
        with self._engine.connect() as connection:
            query = select(Measurement.candidate_id, Measurement.metric, Measurement.value).where(
                Measurement.candidate_id.in_([r[0] for r in results])
            )
            stored = {(c, name): value for c, name, value in connection.execute(query)}
        return all(stored.get(key) == value for key, value in wanted.items())

    def _stored_clash(
        self, results: Sequence[tuple[int, list[MetricValue], bool]], fields: Sequence[str]
    ) -> SpecError | None:
        """The error naming the first metric that a candidate of ``results`` already has."""
        with self._engine.connect() as connection:
            query = select(Measurement.candidate_id, Measurement.metric).where(
                Measurement.candidate_id.in_([r[0] for r in results])
            )
            stored = {(candidate_id, metric) for candidate_id, metric in connection.execute(query)}
        for (candidate_id, metrics, _), field in zip(results, fields, strict=True):
            clash = [i for i, m in enumerate(metrics) if (candidate_id, m.name) in stored]
            if clash:
                return SpecError(
                    f"{field}[{clash[0]}].name",
                    f"candidate {candidate_id} already has stored "
                    f"{', '.join(repr(metrics[i].name) for i in clash)}; nothing was recorded",
                )
        return None

    def record_failure(self, candidate_id: int, error: str) -> None:
        """Mark a candidate failed with the reason ``error``."""
        if not isinstance(error, str) or not error.strip():
            raise SpecError("error", f"must be a non-empty reason, got {error!r}")
        with self._writing() as session:
            candidate = session.get(Candidate, candidate_id)
            if candidate is None:
                raise NotFoundError(f"candidate {candidate_id} not found")
            candidate.status = CandidateStatus.FAILED
            candidate.error = error

    def get_candidate(self, job_id: int, candidate_id: int) -> CandidateRecord:
        with self._reading() as session:
            candidate = session.scalars(
                select(Candidate)
                .where(Candidate.id == candidate_id, Candidate.job_id == job_id)
                .options(selectinload(Candidate.measurements))
            ).one_or_none()
            if candidate is None:
                raise NotFoundError(f"candidate {candidate_id} not found in job {job_id}")
            return _candidate_record(candidate)

    def list_candidates(
        self, job_id: int, *, status: CandidateStatus | None = None
    ) -> list[CandidateRecord]:
        """A job's candidates with their metrics, in the order they were added."""
        query = (
            select(Candidate)
            .where(Candidate.job_id == job_id)
            .order_by(Candidate.id)
            .options(selectinload(Candidate.measurements))
        )
        if status is not None:
            query = query.where(Candidate.status == _coerce_enum("status", status, CandidateStatus))
        with self._reading() as session:
            _require_job(session, job_id)
            return [_candidate_record(c) for c in session.scalars(query)]

    def count_candidates(self, job_id: int, *, status: CandidateStatus | None = None) -> int:
        checked = None if status is None else _coerce_enum("status", status, CandidateStatus)
        with self._reading() as session:
            _require_job(session, job_id)
            return _count(session, job_id, checked)

    def find_measurements(
        self, config_hash: str, target: str, *, context: str | None = None
    ) -> list[MetricValue]:
        """Measured values of this config on this target, from any job, for reuse.

        Measured and estimated (analytic) values of candidates that are done count, predicted
        ones never; with ``context``, only
        values stored with that context. Where a metric was measured more than once, the
        newest measurement is returned. Ordered by metric name.
        """
        found = self._find_measurements([config_hash], target, context)
        return found.get(config_hash, [])

    def find_measurements_many(
        self, config_hashes: Collection[str], target: str, *, context: str | None = None
    ) -> dict[str, list[MetricValue]]:
        """:meth:`find_measurements` of several configs in one query: hash -> values, for
        the hashes that have any."""
        return self._find_measurements(list(config_hashes), target, context)

    def _find_measurements(
        self, config_hashes: list[str], target: str, context: str | None
    ) -> dict[str, list[MetricValue]]:
        columns = (
            Measurement.config_hash,
            Measurement.metric,
            Measurement.value,
            Measurement.provenance,
            Measurement.target,
            Measurement.details,
        )
        newest: dict[str, dict[str, MetricValue]] = {}
        with self._engine.connect() as connection:
            for start in range(0, len(config_hashes), _IN_CHUNK):
                query = (
                    select(*columns)
                    .join(Candidate, Candidate.id == Measurement.candidate_id)
                    .where(
                        Measurement.config_hash.in_(config_hashes[start : start + _IN_CHUNK]),
                        Measurement.target == target,
                        Measurement.provenance != Provenance.PREDICTED,
                        Candidate.status == CandidateStatus.DONE,
                    )
                    .order_by(Measurement.created_at.desc(), Measurement.id.desc())
                )
                if context is not None:
                    query = query.where(Measurement.context == context)
                for digest, name, value, provenance, on, details in connection.execute(query):
                    newest.setdefault(digest, {}).setdefault(
                        name, MetricValue(name, value, provenance, on, details)
                    )
        return {
            digest: [metrics[name] for name in sorted(metrics)]
            for digest, metrics in newest.items()
        }

    # -- fronts -------------------------------------------------------------------------

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
        """Store the Pareto front of one generation.

        Every point must be a candidate of the job with a stored metric for each objective;
        the values of the returned (and later read) points are those stored metrics.
        """
        _check_count("generation", generation)
        _check_count("evaluations", evaluations)
        _check_front_axes(objectives, directions, reference_point)
        hv = _check_finite("hypervolume", hypervolume)
        if hv < 0:
            raise SpecError("hypervolume", f"must not be negative, got {hypervolume!r}")
        seen: set[int] = set()
        for i, point in enumerate(points):
            if point.candidate_id in seen:
                raise SpecError(
                    f"points[{i}].candidate_id", f"candidate {point.candidate_id} appears twice"
                )
            seen.add(point.candidate_id)
        objectives = list(objectives)
        reference = [float(v) for v in reference_point]
        try:
            # Core statements, once per generation of the driver.
            with self._write_engine.begin() as connection:
                if connection.scalar(select(Job.id).where(Job.id == job_id)) is None:
                    raise NotFoundError(f"job {job_id} not found")
                owners = {
                    candidate_id: (owner, config_hash)
                    for candidate_id, owner, config_hash in connection.execute(
                        select(Candidate.id, Candidate.job_id, Candidate.config_hash).where(
                            Candidate.id.in_(seen)
                        )
                    )
                }
                values: dict[int, dict[str, float]] = {}
                for candidate_id, metric, value in connection.execute(
                    select(Measurement.candidate_id, Measurement.metric, Measurement.value).where(
                        Measurement.candidate_id.in_(seen), Measurement.metric.in_(objectives)
                    )
                ):
                    values.setdefault(candidate_id, {})[metric] = value
                for i, point in enumerate(points):
                    owner, stored = owners.get(point.candidate_id), values.get(point.candidate_id)
                    _check_point(i, point, owner, stored or {}, job_id, objectives)
                front_id = connection.execute(
                    insert(Front)
                    .values(
                        job_id=job_id,
                        generation=generation,
                        objectives=objectives,
                        directions=list(directions),
                        reference_point=reference,
                        hypervolume=hv,
                        evaluations=evaluations,
                    )
                    .returning(Front.id)
                ).scalar_one()
                if points:
                    connection.execute(
                        insert(FrontPointRow),
                        [
                            {
                                "front_id": front_id,
                                "candidate_id": p.candidate_id,
                                "position": i,
                                "measured": bool(p.measured),
                            }
                            for i, p in enumerate(points)
                        ],
                    )
        except IntegrityError as exc:
            if self._has_front(job_id, generation):
                raise SpecError(
                    "generation", f"job {job_id} already has a front for generation {generation}"
                ) from exc
            raise
        return FrontRecord(
            id=front_id,
            job_id=job_id,
            generation=generation,
            objectives=objectives,
            directions=list(directions),
            reference_point=reference,
            hypervolume=hv,
            evaluations=evaluations,
            points=[
                FrontPoint(
                    candidate_id=p.candidate_id,
                    config_hash=owners[p.candidate_id][1],
                    values={name: values[p.candidate_id][name] for name in objectives},
                    measured=bool(p.measured),
                )
                for p in points
            ],
        )

    def latest_front(self, job_id: int) -> FrontRecord | None:
        """The front of the job's highest generation, or ``None`` before the first."""
        query = _fronts_query(job_id).order_by(Front.generation.desc()).limit(1)
        with self._reading() as session:
            _require_job(session, job_id)
            front = session.scalars(query).one_or_none()
            return None if front is None else _front_record(front)

    def list_fronts(self, job_id: int) -> list[FrontRecord]:
        """Every front of the job, by generation (its hypervolume history)."""
        with self._reading() as session:
            _require_job(session, job_id)
            query = _fronts_query(job_id).order_by(Front.generation)
            return [_front_record(f) for f in session.scalars(query)]

    def _has_front(self, job_id: int, generation: int) -> bool:
        with self._reading() as session:
            found = session.scalar(
                select(Front.id).where(Front.job_id == job_id, Front.generation == generation)
            )
            return found is not None

    def latest_front_id(self, job_id: int) -> int | None:
        """The id of the job's newest front (a cheap check whether a cached front is stale)."""
        with self._reading() as session:
            _require_job(session, job_id)
            found = session.scalar(
                select(Front.id)
                .where(Front.job_id == job_id)
                .order_by(Front.generation.desc())
                .limit(1)
            )
            return None if found is None else int(found)

    def hypervolume_history(self, job_id: int) -> list[HypervolumePoint]:
        """Hypervolume and front size of every generation, without loading the points."""
        size = (
            select(func.count(FrontPointRow.candidate_id))
            .where(FrontPointRow.front_id == Front.id)
            .correlate(Front)
            .scalar_subquery()
        )
        query = (
            select(Front.generation, Front.evaluations, Front.hypervolume, size)
            .where(Front.job_id == job_id)
            .order_by(Front.generation)
        )
        with self._reading() as session:
            _require_job(session, job_id)
            return [
                HypervolumePoint(int(g), int(e), float(hv), int(n or 0))
                for g, e, hv, n in session.execute(query)
            ]

    # -- the service's queue and tokens ---------------------------------------------------

    def request_cancel(self, job_id: int) -> JobRecord:
        """Cancel a job: a queued one at once; a running one is flagged, and its driver stops
        after the generation in flight (see :meth:`cancel_requested`).

        A finished, failed or cancelled job cannot be cancelled (``SpecError`` on ``state``).
        """
        with self._writing() as session:
            job = session.scalars(
                select(Job).where(Job.id == job_id).with_for_update()
            ).one_or_none()
            if job is None:
                raise NotFoundError(f"job {job_id} not found")
            if job.state is JobState.QUEUED:
                job.state = JobState.CANCELLED
                job.finished_at = utcnow()
            elif job.state is JobState.RUNNING:
                job.cancel_requested = True
            else:
                raise SpecError(
                    "state",
                    f"job {job_id} is {job.state.value}; only queued or running jobs "
                    "can be cancelled",
                )
            session.flush()
            return _job_record(job, evaluations=_count(session, job_id, CandidateStatus.DONE))

    def cancel_requested(self, job_id: int) -> bool:
        with self._reading() as session:
            flag = session.scalar(select(Job.cancel_requested).where(Job.id == job_id))
            if flag is None:
                raise NotFoundError(f"job {job_id} not found")
            return bool(flag)

    def clear_cancel_request(self, job_id: int) -> None:
        """Drop a job's cancel flag (done once its driver has stopped)."""
        with self._writing() as session:
            job = session.get(Job, job_id)
            if job is None:
                raise NotFoundError(f"job {job_id} not found")
            job.cancel_requested = False

    def add_token(self, *, name: str, token_hash: str, scope: TokenScope) -> TokenRecord:
        """Store an API token by the SHA-256 hex digest of its secret (never the secret)."""
        _check_text("name", name, _MAX_LABEL)
        if not isinstance(token_hash, str) or len(token_hash) != 64:
            raise SpecError("token_hash", "must be a SHA-256 hex digest (64 characters)")
        try:
            checked = TokenScope(scope)
        except ValueError:
            valid = ", ".join(s.value for s in TokenScope)
            raise SpecError("scope", f"unknown value {scope!r}; valid values: {valid}") from None
        with self._writing() as session:
            token = ApiToken(name=name, token_hash=token_hash, scope=checked)
            session.add(token)
            session.flush()
            return _token_record(token)

    def find_token(self, token_hash: str) -> TokenRecord | None:
        """The token with this digest, revoked or not; ``None`` when there is none."""
        with self._reading() as session:
            token = session.scalars(
                select(ApiToken).where(ApiToken.token_hash == token_hash)
            ).one_or_none()
            return None if token is None else _token_record(token)

    def list_tokens(self) -> list[TokenRecord]:
        with self._reading() as session:
            tokens = session.scalars(select(ApiToken).order_by(ApiToken.id))
            return [_token_record(t) for t in tokens]

    def revoke_token(self, token_id: int) -> TokenRecord:
        with self._writing() as session:
            token = session.get(ApiToken, token_id)
            if token is None:
                raise NotFoundError(f"token {token_id} not found")
            token.revoked = True
            session.flush()
            return _token_record(token)

    # -- target profiles and job footprints ------------------------------------------------

    def save_target(self, profile: dict[str, Any], *, replace: bool = True) -> TargetRecord:
        """Store a target profile by its ``name`` (the fields of ``TargetRecord`` less the
        timestamps). An existing profile of that name is updated, or with ``replace=False``
        kept as it is and returned."""
        values = _check_target_profile(profile)
        with self._writing() as session:
            row = session.scalars(
                select(TargetRow).where(TargetRow.name == values["name"]).with_for_update()
            ).one_or_none()
            if row is None:
                row = TargetRow(**values)
                session.add(row)
            elif replace:
                for key, value in values.items():
                    setattr(row, key, value)
                row.updated_at = utcnow()
            session.flush()
            return _target_record(row)

    def get_target(self, name: str) -> TargetRecord:
        with self._reading() as session:
            row = session.scalars(select(TargetRow).where(TargetRow.name == name)).one_or_none()
            if row is None:
                raise NotFoundError(f"target {name!r} not found")
            return _target_record(row)

    def list_targets(self) -> list[TargetRecord]:
        """Every stored target profile, by name."""
        with self._reading() as session:
            return [
                _target_record(r)
                for r in session.scalars(select(TargetRow).order_by(TargetRow.name))
            ]

    def set_job_footprint(self, job_id: int, footprint: dict[str, Any]) -> None:
        """Store the energy and carbon of job ``job_id``'s own search."""
        stored = _json_object("footprint", footprint)
        with self._writing() as session:
            job = session.get(Job, job_id)
            if job is None:
                raise NotFoundError(f"job {job_id} not found")
            job.footprint = stored

    def get_job_footprint(self, job_id: int) -> dict[str, Any] | None:
        """The footprint stored with job ``job_id``, or ``None`` before one is."""
        with self._reading() as session:
            found = session.execute(select(Job.footprint).where(Job.id == job_id)).one_or_none()
            if found is None:
                raise NotFoundError(f"job {job_id} not found")
            return found[0]

    # -- fitted predictors ------------------------------------------------------------------

    def measured_values(
        self, family: str, target: str, metric: str
    ) -> list[tuple[str, dict[str, Any], float]]:
        """``(config_hash, config, value)`` of every config of ``family`` with ``metric``
        measured (or estimated, never predicted) on ``target`` by a done candidate of any
        job; the newest value per config, ordered by config hash."""
        query = (
            select(Measurement.config_hash, Candidate.config, Measurement.value)
            .join(Candidate, Candidate.id == Measurement.candidate_id)
            .join(Job, Job.id == Candidate.job_id)
            .where(
                Job.family == family,
                Measurement.target == target,
                Measurement.metric == metric,
                Measurement.provenance != Provenance.PREDICTED,
                Candidate.status == CandidateStatus.DONE,
            )
            .order_by(Measurement.created_at.desc(), Measurement.id.desc())
        )
        newest: dict[str, tuple[str, dict[str, Any], float]] = {}
        with self._reading() as session:
            for config_hash, config, value in session.execute(query):
                newest.setdefault(config_hash, (config_hash, config, float(value)))
        return [newest[key] for key in sorted(newest)]

    def measured_values_by_target(
        self,
        family: str,
        metric: str,
        *,
        targets: Collection[str] | None = None,
        config_hashes: Collection[str] | None = None,
        before: datetime | None = None,
    ) -> dict[str, list[tuple[str, dict[str, Any], float]]]:
        """:meth:`measured_values` of every target that has any (only ``targets`` when
        given; only the configs of ``config_hashes`` when given; only measurements made
        before ``before`` when given), by target name."""
        query = (
            select(Measurement.target, Measurement.config_hash, Candidate.config, Measurement.value)
            .join(Candidate, Candidate.id == Measurement.candidate_id)
            .join(Job, Job.id == Candidate.job_id)
            .where(
                Job.family == family,
                Measurement.metric == metric,
                Measurement.provenance != Provenance.PREDICTED,
                Candidate.status == CandidateStatus.DONE,
            )
            .order_by(Measurement.created_at.desc(), Measurement.id.desc())
        )
        if targets is not None:
            query = query.where(Measurement.target.in_(list(targets)))
        if before is not None:
            query = query.where(Measurement.created_at < before)
        hashes = None if config_hashes is None else sorted(set(config_hashes))
        chunks = (
            [query]
            if hashes is None
            else [
                query.where(Measurement.config_hash.in_(hashes[start : start + _IN_CHUNK]))
                for start in range(0, len(hashes), _IN_CHUNK)
            ]
        )
        newest: dict[str, dict[str, tuple[str, dict[str, Any], float]]] = {}
        with self._reading() as session:
            for chunk in chunks:
                for target, config_hash, config, value in session.execute(chunk):
                    newest.setdefault(target, {}).setdefault(
                        config_hash, (config_hash, config, float(value))
                    )
        return {
            target: [rows[key] for key in sorted(rows)] for target, rows in sorted(newest.items())
        }

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
        """Store a fitted predictor as the next version of its (family, target, metric)."""
        for field, value, max_len in (
            ("family", family, 100),
            ("target", target, 100),
            ("metric", metric, 100),
            ("kind", kind, 32),
        ):
            _check_text(field, value, max_len)
        _check_count("training_size", training_size)
        names = list(features)
        if not all(isinstance(n, str) for n in names):
            raise SpecError("features", "must be a list of feature names (strings)")
        checked = {str(k): _check_finite(f"metrics.{k}", v) for k, v in dict(metrics).items()}
        stored = _json_object("state", state)
        with self._writing() as session:
            latest = session.scalar(
                select(func.max(PredictorRow.version)).where(
                    PredictorRow.family == family,
                    PredictorRow.target == target,
                    PredictorRow.metric == metric,
                )
            )
            row = PredictorRow(
                family=family,
                target=target,
                metric=metric,
                version=(latest or 0) + 1,
                kind=kind,
                training_size=training_size,
                features=names,
                metrics=checked,
                state=stored,
            )
            session.add(row)
            session.flush()
            return _predictor_record(row)

    def get_predictor(
        self, family: str, target: str, metric: str, *, version: int | None = None
    ) -> PredictorRecord:
        """A stored predictor: ``version``, or the newest one."""
        query = select(PredictorRow).where(
            PredictorRow.family == family,
            PredictorRow.target == target,
            PredictorRow.metric == metric,
        )
        if version is not None:
            query = query.where(PredictorRow.version == version)
        with self._reading() as session:
            row = session.scalars(query.order_by(PredictorRow.version.desc()).limit(1)).first()
            if row is None:
                which = f"version {version} of " if version is not None else ""
                raise NotFoundError(
                    f"no {which}predictor of {metric!r} for family {family!r} on {target!r}"
                )
            return _predictor_record(row)

    def list_predictors(
        self, *, family: str | None = None, target: str | None = None, metric: str | None = None
    ) -> list[PredictorRecord]:
        """Stored predictors, by family, target, metric and version."""
        query = select(PredictorRow).order_by(
            PredictorRow.family, PredictorRow.target, PredictorRow.metric, PredictorRow.version
        )
        if family is not None:
            query = query.where(PredictorRow.family == family)
        if target is not None:
            query = query.where(PredictorRow.target == target)
        if metric is not None:
            query = query.where(PredictorRow.metric == metric)
        with self._reading() as session:
            return [_predictor_record(r) for r in session.scalars(query)]

    # -- predictions ------------------------------------------------------------------------

    def record_predictions(self, predictions: Sequence[PredictionRecord]) -> None:
        """Store what predictors said of candidates, in one transaction. A candidate has one
        prediction per metric: the first one stands (a later one for the same metric is
        refused, and then nothing of the call is stored)."""
        rows = []
        for i, p in enumerate(predictions):
            _check_text(f"predictions[{i}].metric", p.metric, 100)
            rows.append(
                PredictionRow(
                    candidate_id=p.candidate_id,
                    metric=p.metric,
                    value=_check_finite(f"predictions[{i}].value", p.value),
                    std=_check_finite(f"predictions[{i}].std", p.std),
                    predictor_id=p.predictor_id,
                )
            )
        if not rows:
            return
        try:
            with self._writing() as session:
                session.add_all(rows)
                session.flush()
        except IntegrityError as exc:
            raise SpecError(
                "predictions",
                "a candidate already has a prediction of one of these metrics, or an unknown "
                "candidate or predictor is named; nothing was recorded",
            ) from exc

    def list_predictions(self, job_id: int) -> list[PredictionRecord]:
        """The predictions made for the candidates of a job, each with the value measured
        since (``None`` while only predicted), in candidate order."""
        measured = (
            select(Measurement.value)
            .where(
                Measurement.candidate_id == PredictionRow.candidate_id,
                Measurement.metric == PredictionRow.metric,
                Measurement.provenance != Provenance.PREDICTED,
            )
            .scalar_subquery()
        )
        query = (
            select(PredictionRow, PredictorRow.version, measured)
            .join(Candidate, Candidate.id == PredictionRow.candidate_id)
            .outerjoin(PredictorRow, PredictorRow.id == PredictionRow.predictor_id)
            .where(Candidate.job_id == job_id)
            .order_by(PredictionRow.candidate_id, PredictionRow.metric)
        )
        with self._reading() as session:
            _require_job(session, job_id)
            return [
                PredictionRecord(
                    candidate_id=row.candidate_id,
                    metric=row.metric,
                    value=row.value,
                    std=row.std,
                    predictor_id=row.predictor_id,
                    predictor_version=version,
                    measured=value,
                )
                for row, version, value in session.execute(query)
            ]

    def replace_predicted(
        self,
        candidate_id: int,
        metrics: Sequence[MetricValue],
        *,
        feasible: bool,
        context: str | None = None,
    ) -> None:
        """Put measured ``metrics`` in place of a done candidate's predicted values of the
        same metrics, in one transaction (a measured value is never replaced)."""
        checked = _check_metrics(metrics)
        if any(m.provenance == Provenance.PREDICTED for m in checked):
            raise SpecError("metrics", "only measured or estimated values replace predictions")
        names = [m.name for m in checked]
        with self._writing() as session:
            found = session.execute(
                select(Candidate, Job.target)
                .join(Job, Job.id == Candidate.job_id)
                .where(Candidate.id == candidate_id)
            ).one_or_none()
            if found is None:
                raise NotFoundError(f"candidate {candidate_id} not found")
            candidate, job_target = found
            stored = {
                m.metric: m
                for m in session.scalars(
                    select(Measurement).where(
                        Measurement.candidate_id == candidate_id, Measurement.metric.in_(names)
                    )
                )
            }
            kept = sorted(n for n, m in stored.items() if m.provenance != Provenance.PREDICTED)
            if kept:
                raise SpecError(
                    "metrics",
                    f"candidate {candidate_id} already has measured {', '.join(kept)}; "
                    "nothing was replaced",
                )
            for row in stored.values():
                session.delete(row)
            session.flush()
            candidate.status = CandidateStatus.DONE
            candidate.feasible = feasible
            candidate.error = None
            session.add_all(
                Measurement(
                    candidate_id=candidate.id,
                    config_hash=candidate.config_hash,
                    target=m.target or job_target,
                    metric=m.name,
                    value=m.value,
                    provenance=m.provenance,
                    details=m.details,
                    context=context,
                )
                for m in checked
            )
            session.flush()


# Every public method runs again after a serialisation failure or a lost connection on
# PostgreSQL, within a bounded window (hwsearch/db/retry.py).
_install_retries(Store)


# -- statements -----------------------------------------------------------------------------

# The statements of the driver's per-candidate write, built once (not per call): a
# candidate marked done, returning its hash and its job; then its metrics, as one
# multi-row INSERT (with RETURNING, SQLAlchemy sends the rows as one statement instead of
# psycopg's pipelined executemany, which costs two more round trips).
_MARK_DONE = (
    update(Candidate)
    .where(Candidate.id == bindparam("done_id"))
    .values(
        status=CandidateStatus.DONE,
        feasible=bindparam("done_feasible", type_=Boolean()),
        error=None,
    )
    .returning(Candidate.config_hash, Candidate.job_id)
)
_INSERT_MEASUREMENTS = insert(Measurement).returning(Measurement.id)


# -- queries --------------------------------------------------------------------------------


def _jobs_query() -> Select[Job, int]:
    done = (
        select(func.count(Candidate.id))
        .where(Candidate.job_id == Job.id, Candidate.status == CandidateStatus.DONE)
        .correlate(Job)
        .scalar_subquery()
    )
    return select(Job, done)


def _fronts_query(job_id: int) -> Select[Front]:
    return (
        select(Front)
        .where(Front.job_id == job_id)
        .options(
            selectinload(Front.points)
            .selectinload(FrontPointRow.candidate)
            .selectinload(Candidate.measurements)
        )
    )


def _require_job(session: Session, job_id: int) -> None:
    if session.scalar(select(Job.id).where(Job.id == job_id)) is None:
        raise NotFoundError(f"job {job_id} not found")


def _count(session: Session, job_id: int, status: CandidateStatus | None) -> int:
    query = select(func.count(Candidate.id)).where(Candidate.job_id == job_id)
    if status is not None:
        query = query.where(Candidate.status == status)
    return int(session.scalar(query) or 0)


# -- conversion to records -------------------------------------------------------------------


def _job_record(job: Job, *, evaluations: int) -> JobRecord:
    return JobRecord(
        id=job.id,
        name=job.name,
        family=job.family,
        target=job.target,
        state=job.state,
        spec=job.spec,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        evaluations=int(evaluations),
        error=job.error,
        lease=lease_record(job),
        owner_token_id=job.owner_token_id,
    )


def _target_record(row: TargetRow) -> TargetRecord:
    return TargetRecord(
        name=row.name,
        kind=row.kind,
        tdp_w=row.tdp_w,
        cores=row.cores,
        embodied_kgco2e=row.embodied_kgco2e,
        lifetime_years=row.lifetime_years,
        busy_share=row.busy_share,
        region=row.region,
        pue=row.pue,
        grid_gco2e_per_kwh=row.grid_gco2e_per_kwh,
        meter=row.meter,
        sources=dict(row.sources),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


_TARGET_KINDS = ("cpu", "cuda", "table")
_TARGET_NUMBERS = ("tdp_w", "embodied_kgco2e", "lifetime_years", "busy_share", "pue")


def _check_target_profile(profile: object) -> dict[str, Any]:
    """The columns of a target profile, each checked (a ``SpecError`` names the field)."""
    if not isinstance(profile, dict):
        raise SpecError("profile", f"must be a dict, got {type(profile).__name__}")
    allowed = {*_TARGET_NUMBERS, "name", "kind", "cores", "region", "grid_gco2e_per_kwh"}
    allowed |= {"meter", "sources"}
    unknown = sorted(set(profile) - allowed)
    if unknown:
        raise SpecError(unknown[0], f"not a profile field; fields: {', '.join(sorted(allowed))}")
    _check_text("name", profile.get("name"), _MAX_LABEL)
    if profile.get("kind") not in _TARGET_KINDS:
        raise SpecError(
            "kind", f"must be one of {list(_TARGET_KINDS)}, got {profile.get('kind')!r}"
        )
    values: dict[str, Any] = {"name": profile["name"], "kind": profile["kind"]}
    for key in _TARGET_NUMBERS:
        values[key] = _check_finite(key, profile.get(key))
        if values[key] < 0:
            raise SpecError(key, f"must not be negative, got {values[key]!r}")
    cores = profile.get("cores", 1)
    if isinstance(cores, bool) or not isinstance(cores, int) or cores < 1:
        raise SpecError("cores", f"must be an integer >= 1, got {cores!r}")
    values["cores"] = cores
    grid = profile.get("grid_gco2e_per_kwh")
    values["grid_gco2e_per_kwh"] = (
        None if grid is None else _check_finite("grid_gco2e_per_kwh", grid)
    )
    _check_text("region", profile.get("region"), 16)
    values["region"] = profile["region"]
    meter = profile.get("meter", "auto")
    _check_text("meter", meter, 16)
    values["meter"] = meter
    values["sources"] = _json_object("sources", profile.get("sources") or {})
    return values


def _predictor_record(row: PredictorRow) -> PredictorRecord:
    return PredictorRecord(
        id=row.id,
        family=row.family,
        target=row.target,
        metric=row.metric,
        version=row.version,
        kind=row.kind,
        training_size=row.training_size,
        features=list(row.features),
        metrics=dict(row.metrics),
        state=dict(row.state),
        created_at=row.created_at,
    )


def _token_record(token: ApiToken) -> TokenRecord:
    return TokenRecord(
        id=token.id,
        name=token.name,
        scope=token.scope,
        created_at=token.created_at,
        revoked=token.revoked,
    )


def _metric(row: Measurement) -> MetricValue:
    return MetricValue(
        name=row.metric,
        value=row.value,
        provenance=row.provenance,
        target=row.target,
        details=row.details,
    )


def _candidate_record(candidate: Candidate) -> CandidateRecord:
    return CandidateRecord(
        id=candidate.id,
        job_id=candidate.job_id,
        config_hash=candidate.config_hash,
        config=candidate.config,
        generation=candidate.generation,
        status=candidate.status,
        feasible=candidate.feasible,
        error=candidate.error,
        metrics={m.metric: _metric(m) for m in candidate.measurements},
    )


def _front_record(front: Front) -> FrontRecord:
    objectives = list(front.objectives)
    points = []
    for row in front.points:
        stored = {m.metric: m.value for m in row.candidate.measurements}
        points.append(
            FrontPoint(
                candidate_id=row.candidate_id,
                config_hash=row.candidate.config_hash,
                values={name: stored[name] for name in objectives if name in stored},
                measured=row.measured,
            )
        )
    return FrontRecord(
        id=front.id,
        job_id=front.job_id,
        generation=front.generation,
        objectives=objectives,
        directions=list(front.directions),
        reference_point=[float(v) for v in front.reference_point],
        hypervolume=front.hypervolume,
        evaluations=front.evaluations,
        points=points,
    )


# -- input checks -----------------------------------------------------------------------------


def _safe(url: str) -> str:
    """``url`` with any password masked, for messages."""
    try:
        return normalize_url(url).render_as_string(hide_password=True)
    except SpecError:
        return "<unparsable URL>"


def _check_text(field: str, value: object, max_len: int) -> None:
    if not isinstance(value, str) or not value.strip():
        raise SpecError(field, f"must be a non-empty string, got {value!r}")
    if len(value) > max_len:
        raise SpecError(field, f"must be at most {max_len} characters, got {len(value)}")


def _json_object(field: str, value: object) -> dict[str, Any]:
    """``value`` as the database will give it back (tuples become lists, keys strings), so
    a record returned by a write equals the one a later read returns."""
    if not isinstance(value, dict):
        raise SpecError(field, f"must be a dict, got {type(value).__name__}")
    try:
        normalised: dict[str, Any] = json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise SpecError(field, f"must be JSON-serialisable (finite numbers only): {exc}") from exc
    return normalised


def _check_count(field: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise SpecError(field, f"must be a non-negative integer, got {value!r}")


def _check_finite(field: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SpecError(field, f"must be a number, got {value!r}")
    if not math.isfinite(value):
        raise SpecError(field, f"must be finite, got {value!r}")
    return float(value)


def _coerce_enum(field: str, value: str, kind: type[_E]) -> _E:
    try:
        return kind(value)
    except ValueError:
        valid = ", ".join(member.value for member in kind)
        raise SpecError(field, f"unknown value {value!r}; valid values: {valid}") from None


def _check_metrics(metrics: Sequence[MetricValue], field: str = "metrics") -> list[MetricValue]:
    """``metrics`` checked, with details as the database gives them back; errors name
    ``field[i]``."""
    checked: list[MetricValue] = []
    names: set[str] = set()
    for i, m in enumerate(metrics):
        if not isinstance(m, MetricValue):
            raise SpecError(f"{field}[{i}]", f"must be a MetricValue, got {type(m).__name__}")
        _check_text(f"{field}[{i}].name", m.name, _MAX_LABEL)
        if m.name in names:
            raise SpecError(f"{field}[{i}].name", f"{m.name!r} is given twice")
        names.add(m.name)
        value = _check_finite(f"{field}[{i}].value", m.value)
        try:
            provenance = Provenance(m.provenance)
        except ValueError:
            valid = ", ".join(p.value for p in Provenance)
            raise SpecError(
                f"{field}[{i}].provenance", f"unknown value {m.provenance!r}; valid: {valid}"
            ) from None
        if m.target:
            _check_text(f"{field}[{i}].target", m.target, _MAX_LABEL)
        details = _json_object(f"{field}[{i}].details", m.details)
        checked.append(
            MetricValue(
                name=m.name,
                value=value,
                provenance=provenance,
                target=m.target,
                details=details,
            )
        )
    return checked


def _check_bool(field: str, value: object) -> None:
    if not isinstance(value, bool):
        raise SpecError(field, f"must be true or false, got {value!r}")


def _check_front_axes(
    objectives: Sequence[str], directions: Sequence[str], reference_point: Sequence[float]
) -> None:
    if not objectives:
        raise SpecError("objectives", "must name at least one metric")
    for i, name in enumerate(objectives):
        _check_text(f"objectives[{i}]", name, _MAX_LABEL)
    if len(set(objectives)) != len(objectives):
        raise SpecError("objectives", f"names a metric twice: {list(objectives)!r}")
    for field, values in (("directions", directions), ("reference_point", reference_point)):
        if len(values) != len(objectives):
            raise SpecError(field, f"has {len(values)} entries for {len(objectives)} objectives")
    for i, direction in enumerate(directions):
        if direction not in _DIRECTIONS:
            raise SpecError(
                f"directions[{i}]", f"must be 'minimize' or 'maximize', got {direction!r}"
            )
    for i, value in enumerate(reference_point):
        _check_finite(f"reference_point[{i}]", value)


def _check_point(
    i: int,
    point: FrontPoint,
    owner: tuple[int, str] | None,
    stored: dict[str, float],
    job_id: int,
    objectives: list[str],
) -> None:
    """``owner`` is the candidate's (job id, config hash), ``stored`` its objective values."""
    if owner is None or owner[0] != job_id:
        raise NotFoundError(
            f"points[{i}]: candidate {point.candidate_id} not found in job {job_id}"
        )
    if point.config_hash != owner[1]:
        raise SpecError(
            f"points[{i}].config_hash",
            f"{point.config_hash!r} is not the hash of candidate {point.candidate_id} "
            f"({owner[1]!r})",
        )
    missing = [name for name in objectives if name not in stored]
    if missing:
        raise SpecError(
            f"points[{i}]",
            f"candidate {point.candidate_id} has no stored {', '.join(map(repr, missing))}; "
            "record its result before saving a front with it",
        )
