"""Candidates and their results: added in batches, marked done with their metrics (the
driver's hot path: two Core statements per finished candidate) or failed, and read back."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import (
    Connection,
    Integer,
    Text,
    any_,
    bindparam,
    distinct,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from hwsearch.db.checks import (
    MAX_HASH,
    check_bool,
    check_count,
    check_id,
    check_metrics,
    check_text,
    coerce_enum,
    json_object,
)
from hwsearch.db.convert import candidate_record
from hwsearch.db.fronts import checked_front, front_clash, front_landed, write_front
from hwsearch.db.measurements import find_stored
from hwsearch.db.models import Candidate, Job, Measurement, PredictionRow, UTCDateTime, utcnow
from hwsearch.db.predictions import checked_predictions, predictions_clash, write_predictions
from hwsearch.db.repository import Repository, candidate_count, require_job
from hwsearch.db.retry import install as _install_retries
from hwsearch.errors import ConflictError, HwsearchError, NotFoundError, StorageError
from hwsearch.records import (
    CandidateFailure,
    CandidateRecord,
    CandidateResult,
    CandidateStatus,
    MetricValue,
    NewCandidate,
    NewFront,
    PredictionRecord,
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
        rows, hashes = _new_rows(job_id, items)
        try:
            with self._write_engine.begin() as connection:
                return self._add(connection, job_id, rows, hashes)
        except IntegrityError as exc:
            missing = self._missing_job(job_id)
            if missing is None:
                raise
            raise missing from exc

    def add_candidates_and_find(
        self, job_id: int, items: Sequence[NewCandidate], *, target: str, context: str | None
    ) -> tuple[list[CandidateRecord], dict[str, list[MetricValue]]]:
        """:meth:`add_candidates`, and in the same transaction what
        :meth:`~hwsearch.db.measurements.MeasurementRepository.find_measurements_many`
        (``with_origin``) finds of the items' configs on ``target``: the driver's write of a
        batch, with its lookup of measurements to reuse, in one round of statements."""
        rows, hashes = _new_rows(job_id, items)
        try:
            with self._write_engine.begin() as connection:
                added = self._add(connection, job_id, rows, hashes)
                found = find_stored(connection, list(rows), target, context, with_origin=True)
        except IntegrityError as exc:
            missing = self._missing_job(job_id)
            if missing is None:
                raise
            raise missing from exc
        return added, found

    def _missing_job(self, job_id: int) -> NotFoundError | None:
        """The error for a job that does not exist (a foreign key's violation names none)."""
        with self._engine.connect() as connection:
            if connection.scalar(select(Job.id).where(Job.id == job_id)) is None:
                return NotFoundError(f"job {job_id} not found")
        return None

    def _add(
        self,
        connection: Connection,
        job_id: int,
        rows: dict[str, dict[str, Any]],
        hashes: list[str],
    ) -> list[CandidateRecord]:
        """Insert ``rows`` (by hash; see :func:`_new_rows`) on ``connection``; the records
        of ``hashes``, in order. Core statements, once per batch of the driver: the new rows
        come back from the INSERT itself; only hashes stored before are read (with their
        metrics). A job that does not exist shows as the foreign key's violation
        (:class:`~sqlalchemy.exc.IntegrityError`), which the caller turns into its error."""
        if not rows:
            if connection.scalar(select(Job.id).where(Job.id == job_id)) is None:
                raise NotFoundError(f"job {job_id} not found")
            return []
        added = self._insert(connection, job_id, rows)
        by_hash = {
            config_hash: CandidateRecord(
                id=candidate_id,
                job_id=job_id,
                config_hash=config_hash,
                config=rows[config_hash]["config"],
                generation=rows[config_hash]["generation"],
                status=CandidateStatus.PENDING,
            )
            for candidate_id, config_hash in added
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

    @staticmethod
    def _insert(
        connection: Connection, job_id: int, rows: dict[str, dict[str, Any]]
    ) -> list[tuple[int, str]]:
        """The ``(id, config_hash)`` of the rows inserted (those the job did not have)."""
        if connection.dialect.name == "postgresql":
            batch = [
                {"config_hash": h, "config": row["config"], "generation": row["generation"]}
                for h, row in rows.items()
            ]
            result = connection.execute(
                _PG_ADD_CANDIDATES,
                {
                    "job_id": job_id,
                    "status": CandidateStatus.PENDING.value,
                    "created_at": utcnow(),
                    "rows": json.dumps(batch),
                },
            )
        else:
            statement = (
                sqlite.insert(Candidate)
                .on_conflict_do_nothing(index_elements=["job_id", "config_hash"])
                .returning(Candidate.id, Candidate.config_hash)
            )
            result = connection.execute(statement, list(rows.values()))
        return [(int(candidate_id), config_hash) for candidate_id, config_hash in result]

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
        check_id("candidate_id", candidate_id)
        checked = check_metrics(metrics)
        check_bool("feasible", feasible)
        self._record_results([_Checked(candidate_id, checked, feasible)], context, ["metrics"])

    def record_results(
        self,
        results: Sequence[CandidateResult],
        *,
        context: str | None = None,
        failures: Sequence[CandidateFailure] = (),
        front: NewFront | None = None,
        predictions: Sequence[PredictionRecord] = (),
    ) -> None:
        """:meth:`record_result` for several results (:class:`~hwsearch.records.CandidateResult`
        or plain ``(candidate_id, metrics, feasible)`` tuples) at once, and
        :meth:`record_failure` for ``failures`` (:class:`~hwsearch.records.CandidateFailure`
        or ``(candidate_id, error)``), in one transaction: all of them are stored, or (on any
        error) none. This is the driver's group commit: outcomes that arrive together cost
        one commit and a fixed number of statements, whatever their number.

        With ``front`` (:class:`~hwsearch.records.NewFront`), the front that these results
        complete is saved in the same transaction
        (:meth:`~hwsearch.db.fronts.FrontRepository.save_front`, with its checks): the
        driver's last write of a generation. With ``predictions``
        (:class:`~hwsearch.records.PredictionRecord`), what predictors said of candidates
        (:meth:`~hwsearch.db.predictions.PredictionRepository.record_predictions`) is
        stored in the same transaction: the driver's settling of a batch by prediction."""
        checked: list[_Checked] = []
        seen: set[int] = set()
        for k, item in enumerate(results):
            if not isinstance(item, tuple | list) or len(item) != 3:
                raise StorageError(f"results[{k}]", "must be a (candidate_id, metrics, feasible)")
            candidate_id, metrics, feasible = item
            check_id(f"results[{k}].candidate_id", candidate_id)
            if candidate_id in seen:
                raise StorageError(f"results[{k}]", f"candidate {candidate_id} is given twice")
            seen.add(candidate_id)
            check_bool(f"results[{k}].feasible", feasible)
            metric_values = check_metrics(metrics, f"results[{k}].metrics")
            checked.append(_Checked(candidate_id, metric_values, feasible))
        failed: list[tuple[int, str]] = []
        for k, failure in enumerate(failures):
            if not isinstance(failure, tuple | list) or len(failure) != 2:
                raise StorageError(f"failures[{k}]", "must be a (candidate_id, error)")
            candidate_id, error = failure
            check_id(f"failures[{k}].candidate_id", candidate_id)
            if candidate_id in seen:
                raise StorageError(f"failures[{k}]", f"candidate {candidate_id} is given twice")
            seen.add(candidate_id)
            failed.append((candidate_id, _check_error(f"failures[{k}].error", error)))
        fields = [f"results[{k}].metrics" for k in range(len(checked))]
        self._record_results(
            checked,
            context,
            fields,
            failed,
            None if front is None else checked_front(front),
            checked_predictions(predictions),
        )

    def _record_results(
        self,
        results: Sequence[_Checked],
        context: str | None,
        fields: Sequence[str],
        failures: Sequence[tuple[int, str]] = (),
        front: NewFront | None = None,
        predictions: Sequence[PredictionRecord] = (),
    ) -> None:
        """Checked results and failures (and a checked front and predictions) in one
        transaction of Core statements, as many whatever the number of results: the
        predictions' INSERT, one ``UPDATE ... RETURNING``
        (hashes, jobs and their targets) of the candidates done, one multi-row INSERT of
        every metric, one ``UPDATE`` per failure, and the front's three statements. No ORM
        objects: this is the driver's per-candidate cost."""
        if not results and not failures and front is None and not predictions:
            return
        now = utcnow()
        try:
            with self._write_engine.begin() as connection:
                if predictions:
                    write_predictions(connection, predictions)
                if results:
                    _write_results(connection, results, context, now)
                for candidate_id, error in failures:
                    failed = connection.execute(
                        _MARK_FAILED, {"failed_id": candidate_id, "failed_error": error}
                    )
                    if failed.first() is None:
                        raise NotFoundError(f"candidate {candidate_id} not found")
                if front is not None:
                    write_front(connection, front)
        except IntegrityError as exc:
            if self._landed(results, front, predictions):
                return  # a retried call whose first COMMIT landed, its answer lost
            clash: HwsearchError | None = self._stored_clash(results, fields)
            if clash is None and front is not None:
                clash = front_clash(self._engine, front)
            if clash is None and predictions:
                clash = predictions_clash()
            if clash is None:
                raise
            raise clash from exc

    def _landed(
        self,
        results: Sequence[_Checked],
        front: NewFront | None,
        predictions: Sequence[PredictionRecord],
    ) -> bool:
        """Whether a write of ``results``, ``front`` and ``predictions`` is stored already
        (every metric with the same value, the same front, the same predictions); ``False``
        where there is nothing to compare."""
        wanted = {(r[0], m.name): m.value for r in results for m in r[1]}
        said = {(p.candidate_id, p.metric): p.value for p in predictions}
        if not wanted and not said and front is None:
            return False
        ids = sorted({key[0] for key in wanted} | {key[0] for key in said})
        with self._engine.connect() as connection:
            query = select(Measurement.candidate_id, Measurement.metric, Measurement.value).where(
                Measurement.candidate_id.in_(ids)
            )
            stored = {(c, name): value for c, name, value in connection.execute(query)}
            query = select(PredictionRow.candidate_id, PredictionRow.metric, PredictionRow.value)
            kept = {
                (c, name): value
                for c, name, value in connection.execute(
                    query.where(PredictionRow.candidate_id.in_(ids))
                )
            }
        if any(stored.get(key) != value for key, value in wanted.items()):
            return False
        if any(kept.get(key) != value for key, value in said.items()):
            return False
        return front is None or front_landed(self._engine, front)

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
        self._record_results([], None, [], [(candidate_id, _check_error("error", error))])

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

# The statements of the driver's write of results, built once (not per call): candidates
# marked done (an expanding IN of their ids), returning their hashes and jobs; then their
# metrics, as one multi-row INSERT (with RETURNING, SQLAlchemy sends the rows as one
# statement instead of psycopg's pipelined executemany, which costs two more round trips;
# PostgreSQL takes them as one JSON document instead, below).
_MARK_DONE = (
    update(Candidate)
    .where(Candidate.id.in_(bindparam("done_ids", expanding=True)))
    .values(
        status=CandidateStatus.DONE,
        feasible=Candidate.id.in_(bindparam("feasible_ids", expanding=True)),
        error=None,
    )
    .returning(
        Candidate.id,
        Candidate.config_hash,
        select(Job.target).where(Job.id == Candidate.job_id).scalar_subquery(),
    )
)
# On PostgreSQL the ids go as two arrays (``= ANY``): a statement of fixed text, which
# SQLAlchemy renders once and psycopg converts once, where an expanding IN is rendered
# again for every count of ids and psycopg parses anew one of more than 50 parameters.
_PG_MARK_DONE = (
    update(Candidate)
    .where(Candidate.id == any_(bindparam("done_ids", type_=postgresql.ARRAY(Integer()))))
    .values(
        status=CandidateStatus.DONE,
        feasible=Candidate.id == any_(bindparam("feasible_ids", type_=postgresql.ARRAY(Integer()))),
        error=None,
    )
    .returning(
        Candidate.id,
        Candidate.config_hash,
        select(Job.target).where(Job.id == Candidate.job_id).scalar_subquery(),
    )
)
_INSERT_MEASUREMENTS = insert(Measurement).returning(Measurement.id)
_MARK_FAILED = (
    update(Candidate)
    .where(Candidate.id == bindparam("failed_id"))
    .values(status=CandidateStatus.FAILED, error=bindparam("failed_error"))
    .returning(Candidate.id)
)


# On PostgreSQL the metrics go as one JSON array of rows (``json_to_recordset``): one
# statement of fixed text and three parameters, which psycopg converts once and caches,
# and one ``json.dumps`` of the rows (in C) instead of psycopg's adaptation of an array per
# column, which quotes and escapes every JSON text element in Python (and a multi-row
# VALUES list, of as many parameters as values, is parsed again on every call). JSON
# numbers are read by the column types' own input functions, so a double arrives as the
# same double (Python writes the shortest text that reads back exactly).
_PG_INSERT_MEASUREMENTS = text(
    "INSERT INTO measurements (candidate_id, config_hash, target, metric, value, provenance, "
    "details, context, created_at) "
    "SELECT u.candidate_id, u.config_hash, u.target, u.metric, u.value, u.provenance, "
    "u.details, :context, :created_at "
    "FROM json_to_recordset(CAST(:rows AS JSON)) AS u(candidate_id INTEGER, "
    "config_hash VARCHAR, target VARCHAR, metric VARCHAR, value DOUBLE PRECISION, "
    "provenance VARCHAR, details JSONB)"
).bindparams(
    bindparam("rows", type_=Text()),
    bindparam("context", type_=Text()),
    bindparam("created_at", type_=UTCDateTime()),
)


# A batch of new candidates on PostgreSQL, the same way (in the order given).
_PG_ADD_CANDIDATES = text(
    "INSERT INTO candidates (job_id, config_hash, config, generation, status, created_at) "
    "SELECT :job_id, u.config_hash, u.config, u.generation, :status, :created_at "
    "FROM ROWS FROM (json_to_recordset(CAST(:rows AS JSON)) "
    "AS (config_hash VARCHAR, config JSONB, generation INTEGER)) "
    "WITH ORDINALITY AS u(config_hash, config, generation, n) "
    "ORDER BY u.n "
    "ON CONFLICT (job_id, config_hash) DO NOTHING "
    "RETURNING id, config_hash"
).bindparams(
    bindparam("job_id", type_=Integer()),
    bindparam("status", type_=Text()),
    bindparam("created_at", type_=UTCDateTime()),
    bindparam("rows", type_=Text()),
)


def _write_results(
    connection: Connection, results: Sequence[_Checked], context: str | None, now: datetime
) -> None:
    """Mark ``results``' candidates done and insert their metrics (a metric without a
    target is stored under its job's target, which the UPDATE returns)."""
    marked = connection.execute(
        _PG_MARK_DONE if connection.dialect.name == "postgresql" else _MARK_DONE,
        {
            "done_ids": [r.candidate_id for r in results],
            "feasible_ids": [r.candidate_id for r in results if r.feasible],
        },
    )
    found = {candidate_id: (digest, target) for candidate_id, digest, target in marked}
    missing = [r.candidate_id for r in results if r.candidate_id not in found]
    if missing:
        raise NotFoundError(f"candidate {missing[0]} not found")
    rows: list[dict[str, Any]] = []
    for candidate_id, metrics, _ in results:
        config_hash, job_target = found[candidate_id]
        rows.extend(
            {
                "candidate_id": candidate_id,
                "config_hash": config_hash,
                "target": m.target or job_target,
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
        _insert_measurements(connection, rows)


def _insert_measurements(connection: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Insert measurement rows (all with the same ``context`` and ``created_at``)."""
    if connection.dialect.name != "postgresql":
        connection.execute(_INSERT_MEASUREMENTS, rows)
        return
    batch = [
        {
            "candidate_id": row["candidate_id"],
            "config_hash": row["config_hash"],
            "target": row["target"],
            "metric": row["metric"],
            "value": row["value"],
            "provenance": str(row["provenance"]),
            "details": row["details"],
        }
        for row in rows
    ]
    params = {
        "rows": json.dumps(batch),
        "context": rows[0]["context"],
        "created_at": rows[0]["created_at"],
    }
    connection.execute(_PG_INSERT_MEASUREMENTS, params)


def _new_rows(
    job_id: int, items: Sequence[NewCandidate]
) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """Checked rows of ``items`` by hash (the first of a repeated hash) and every item's
    hash in order."""
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
    return rows, hashes


def _check_error(field: str, error: object) -> str:
    if not isinstance(error, str) or not error.strip():
        raise StorageError(field, f"must be a non-empty reason, got {error!r}")
    return error
