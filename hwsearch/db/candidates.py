"""Candidates and their results: added in batches, marked done with their metrics (the
driver's hot path: two Core statements per finished candidate) or failed, and read back."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from sqlalchemy import Boolean, bindparam, distinct, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from hwsearch.db.checks import (
    MAX_HASH,
    check_bool,
    check_count,
    check_metrics,
    check_text,
    coerce_enum,
    json_object,
)
from hwsearch.db.convert import candidate_record
from hwsearch.db.models import Candidate, Job, Measurement, utcnow
from hwsearch.db.repository import Repository, candidate_count, require_job
from hwsearch.db.retry import install as _install_retries
from hwsearch.errors import ConflictError, NotFoundError, StorageError
from hwsearch.records import (
    CandidateRecord,
    CandidateResult,
    CandidateStatus,
    MetricValue,
    NewCandidate,
    Provenance,
)

__all__ = ["CandidateRepository"]


class _Checked(NamedTuple):
    """A result whose metrics passed :func:`~hwsearch.db.checks.check_metrics`."""

    candidate_id: int
    metrics: list[MetricValue]
    feasible: bool


class CandidateRepository(Repository):
    """The candidates table and the measurements written with a result."""

    def add_candidates(self, job_id: int, items: Sequence[NewCandidate]) -> list[CandidateRecord]:
        """Add candidates (:class:`~hwsearch.records.NewCandidate`, or plain
        ``(config_hash, config, generation)`` tuples) to a job.

        Returns one record per item, in order. A hash the job already has (stored earlier
        or repeated within ``items``) is not added again: its existing record is returned.
        """
        rows: dict[str, dict[str, Any]] = {}
        hashes: list[str] = []
        for i, item in enumerate(items):
            if not isinstance(item, tuple | list) or len(item) != 3:
                raise StorageError(f"items[{i}]", "must be a (config_hash, config, generation)")
            config_hash, config, generation = item
            check_text(f"items[{i}].config_hash", config_hash, MAX_HASH)
            config = json_object(f"items[{i}].config", config)
            check_count(f"items[{i}].generation", generation)
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
                        by_hash[candidate.config_hash] = candidate_record(candidate)
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
        checked = check_metrics(metrics)
        check_bool("feasible", feasible)
        self._record_results([_Checked(candidate_id, checked, feasible)], context, ["metrics"])

    def record_results(
        self,
        results: Sequence[CandidateResult],
        *,
        context: str | None = None,
    ) -> None:
        """:meth:`record_result` for several results (:class:`~hwsearch.records.CandidateResult`
        or plain ``(candidate_id, metrics, feasible)`` tuples) at once,
        in one transaction: all of them are stored, or (on any error) none."""
        checked: list[_Checked] = []
        seen: set[int] = set()
        for k, item in enumerate(results):
            if not isinstance(item, tuple | list) or len(item) != 3:
                raise StorageError(f"results[{k}]", "must be a (candidate_id, metrics, feasible)")
            candidate_id, metrics, feasible = item
            if candidate_id in seen:
                raise StorageError(f"results[{k}]", f"candidate {candidate_id} is given twice")
            seen.add(candidate_id)
            check_bool(f"results[{k}].feasible", feasible)
            metric_values = check_metrics(metrics, f"results[{k}].metrics")
            checked.append(_Checked(candidate_id, metric_values, feasible))
        fields = [f"results[{k}].metrics" for k in range(len(checked))]
        self._record_results(checked, context, fields)

    def _record_results(
        self,
        results: Sequence[_Checked],
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

    def _already_stored(self, results: Sequence[_Checked]) -> bool:
        """Whether every metric of ``results`` is stored already, with the same value."""
        wanted = {(r[0], m.name): m.value for r in results for m in r[1]}
        with self._engine.connect() as connection:
            query = select(Measurement.candidate_id, Measurement.metric, Measurement.value).where(
                Measurement.candidate_id.in_([r[0] for r in results])
            )
            stored = {(c, name): value for c, name, value in connection.execute(query)}
        return all(stored.get(key) == value for key, value in wanted.items())

    def _stored_clash(
        self, results: Sequence[_Checked], fields: Sequence[str]
    ) -> ConflictError | None:
        """The error naming the first metric that a candidate of ``results`` already has."""
        with self._engine.connect() as connection:
            query = select(Measurement.candidate_id, Measurement.metric).where(
                Measurement.candidate_id.in_([r[0] for r in results])
            )
            stored = {(candidate_id, metric) for candidate_id, metric in connection.execute(query)}
        for (candidate_id, metrics, _), field in zip(results, fields, strict=True):
            clash = [i for i, m in enumerate(metrics) if (candidate_id, m.name) in stored]
            if clash:
                return ConflictError(
                    f"{field}[{clash[0]}].name",
                    f"candidate {candidate_id} already has stored "
                    f"{', '.join(repr(metrics[i].name) for i in clash)}; nothing was recorded",
                )
        return None

    def record_failure(self, candidate_id: int, error: str) -> None:
        """Mark a candidate failed with the reason ``error``."""
        if not isinstance(error, str) or not error.strip():
            raise StorageError("error", f"must be a non-empty reason, got {error!r}")
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
            return candidate_record(candidate)

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
            query = query.where(Candidate.status == coerce_enum("status", status, CandidateStatus))
        with self._reading() as session:
            require_job(session, job_id)
            return [candidate_record(c) for c in session.scalars(query)]

    def count_candidates(self, job_id: int, *, status: CandidateStatus | None = None) -> int:
        checked = None if status is None else coerce_enum("status", status, CandidateStatus)
        with self._reading() as session:
            require_job(session, job_id)
            return candidate_count(session, job_id, checked)

    def count_predicted(self, job_id: int) -> int:
        """Done candidates of the job with a predicted value (active learning settled them,
        or some of their metrics, by prediction instead of measurement)."""
        query = (
            select(func.count(distinct(Measurement.candidate_id)))
            .join(Candidate, Candidate.id == Measurement.candidate_id)
            .where(
                Candidate.job_id == job_id,
                Candidate.status == CandidateStatus.DONE,
                Measurement.provenance == Provenance.PREDICTED,
            )
        )
        with self._reading() as session:
            require_job(session, job_id)
            return int(session.scalar(query) or 0)


_install_retries(CandidateRepository)

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
