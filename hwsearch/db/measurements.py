"""Measurements for reuse: the stored values of a config on a target, from any job, and the
measured values a predictor is fitted on."""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC, datetime
from functools import cache
from typing import Any

from sqlalchemy import Connection, Select, Text, any_, bindparam, select
from sqlalchemy.dialects import postgresql

from hwsearch.db.checks import IN_CHUNK
from hwsearch.db.models import Candidate, Job, Measurement
from hwsearch.db.repository import Repository
from hwsearch.db.retry import install as _install_retries
from hwsearch.records import CandidateStatus, MeasuredConfig, MetricValue, Provenance

__all__ = ["MeasurementRepository", "find_stored"]


class MeasurementRepository(Repository):
    """Reads of the measurements table across jobs."""

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
        self,
        config_hashes: Collection[str],
        target: str,
        *,
        context: str | None = None,
        with_origin: bool = False,
    ) -> dict[str, list[MetricValue]]:
        """:meth:`find_measurements` of several configs in one query: hash -> values, for
        the hashes that have any. With ``with_origin``, each value's details gain
        ``reused_from``: the job and candidate that measured it and when (kept as it was
        when the stored value was itself reused, so it names the first measurement)."""
        return self._find_measurements(list(config_hashes), target, context, with_origin)

    def _find_measurements(
        self,
        config_hashes: list[str],
        target: str,
        context: str | None,
        with_origin: bool = False,
    ) -> dict[str, list[MetricValue]]:
        with self._engine.connect() as connection:
            return find_stored(connection, config_hashes, target, context, with_origin)

    def measured_values(self, family: str, target: str, metric: str) -> list[MeasuredConfig]:
        """:class:`~hwsearch.records.MeasuredConfig` (hash, config, value) of every config of
        ``family`` with ``metric`` measured (or estimated, never predicted) on ``target`` by
        a done candidate of any job; the newest value per config, ordered by config hash."""
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
        newest: dict[str, MeasuredConfig] = {}
        with self._reading() as session:
            for config_hash, config, value in session.execute(query):
                newest.setdefault(config_hash, MeasuredConfig(config_hash, config, float(value)))
        return [newest[key] for key in sorted(newest)]

    def measured_values_by_target(
        self,
        family: str,
        metric: str,
        *,
        targets: Collection[str] | None = None,
        config_hashes: Collection[str] | None = None,
        before: datetime | None = None,
    ) -> dict[str, list[MeasuredConfig]]:
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
                query.where(Measurement.config_hash.in_(hashes[start : start + IN_CHUNK]))
                for start in range(0, len(hashes), IN_CHUNK)
            ]
        )
        newest: dict[str, dict[str, MeasuredConfig]] = {}
        with self._reading() as session:
            for chunk in chunks:
                for target, config_hash, config, value in session.execute(chunk):
                    newest.setdefault(target, {}).setdefault(
                        config_hash, MeasuredConfig(config_hash, config, float(value))
                    )
        return {
            target: [rows[key] for key in sorted(rows)] for target, rows in sorted(newest.items())
        }


def find_stored(
    connection: Connection,
    config_hashes: list[str],
    target: str,
    context: str | None,
    with_origin: bool = False,
) -> dict[str, list[MetricValue]]:
    """The newest stored (measured or estimated, never predicted) values of done candidates
    of any job for each of ``config_hashes`` on ``target`` (with ``context``: stored with
    that context), read on ``connection``: hash -> values by metric name."""
    postgres = connection.dialect.name == "postgresql"
    query = _stored_query(postgres=postgres, with_context=context is not None)
    newest: dict[str, dict[str, MetricValue]] = {}
    # PostgreSQL takes the hashes as one array; elsewhere they go in IN lists of IN_CHUNK
    chunk = max(1, len(config_hashes)) if postgres else IN_CHUNK
    for start in range(0, len(config_hashes), chunk):
        params: dict[str, Any] = {"hashes": config_hashes[start : start + chunk], "target": target}
        if context is not None:
            params["context"] = context
        for row in connection.execute(query, params):
            digest, name, value, provenance, on, details, job_id, candidate_id, at = row
            if name in newest.get(digest, {}):
                continue
            if with_origin and "reused_from" not in details:
                origin = {
                    "job_id": job_id,
                    "candidate_id": candidate_id,
                    "measured_at": _utc(at).isoformat(timespec="seconds"),
                }
                details = {**details, "reused_from": origin}
            newest.setdefault(digest, {})[name] = MetricValue(name, value, provenance, on, details)
    return {
        digest: [metrics[name] for name in sorted(metrics)] for digest, metrics in newest.items()
    }


@cache
def _stored_query(*, postgres: bool, with_context: bool) -> Select[Any]:
    """:func:`find_stored`'s query, built once: the hashes are a parameter, on PostgreSQL
    one array (``= ANY``, a statement of fixed text that psycopg converts once), elsewhere
    an expanding IN list."""
    hashes = (
        Measurement.config_hash == any_(bindparam("hashes", type_=postgresql.ARRAY(Text())))
        if postgres
        else Measurement.config_hash.in_(bindparam("hashes", expanding=True))
    )
    query = (
        select(
            Measurement.config_hash,
            Measurement.metric,
            Measurement.value,
            Measurement.provenance,
            Measurement.target,
            Measurement.details,
            Candidate.job_id,
            Measurement.candidate_id,
            Measurement.created_at,
        )
        .join(Candidate, Candidate.id == Measurement.candidate_id)
        .where(
            hashes,
            Measurement.target == bindparam("target"),
            Measurement.provenance != Provenance.PREDICTED,
            Candidate.status == CandidateStatus.DONE,
        )
        .order_by(Measurement.created_at.desc(), Measurement.id.desc())
    )
    if with_context:
        query = query.where(Measurement.context == bindparam("context"))
    return query


def _utc(moment: datetime) -> datetime:
    """A timestamp read by a Core query: SQLite's come back naive, in UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


_install_retries(MeasurementRepository)
