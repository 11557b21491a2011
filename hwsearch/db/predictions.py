"""Predictions: what a predictor said of a candidate, and measured values put in place of
predicted ones."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from sqlalchemy import Connection, insert, select
from sqlalchemy.exc import IntegrityError

from hwsearch.db.checks import check_finite, check_metrics, check_text
from hwsearch.db.models import Candidate, Job, Measurement, PredictionRow, PredictorRow
from hwsearch.db.repository import Repository, require_job
from hwsearch.db.retry import install as _install_retries
from hwsearch.errors import ConflictError, NotFoundError, StorageError
from hwsearch.records import CandidateStatus, MetricValue, PredictionRecord, Provenance

__all__ = ["PredictionRepository"]


class PredictionRepository(Repository):
    """The predictions table, and the measurements that replace predicted values."""

    def record_predictions(self, predictions: Sequence[PredictionRecord]) -> None:
        """Store what predictors said of candidates, in one transaction. A candidate has one
        prediction per metric: the first one stands (a later one for the same metric is
        refused, and then nothing of the call is stored)."""
        checked = checked_predictions(predictions)
        if not checked:
            return
        try:
            with self._write_engine.begin() as connection:
                write_predictions(connection, checked)
        except IntegrityError as exc:
            raise predictions_clash() from exc

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
            require_job(session, job_id)
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
        checked = check_metrics(metrics)
        if any(m.provenance == Provenance.PREDICTED for m in checked):
            raise StorageError("metrics", "only measured or estimated values replace predictions")
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
                raise ConflictError(
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


_install_retries(PredictionRepository)


def predictions_clash() -> ConflictError:
    """The error for predictions the database refuses (a duplicate or an unknown name)."""
    return ConflictError(
        "predictions",
        "a candidate already has a prediction of one of these metrics, or an unknown "
        "candidate or predictor is named; nothing was recorded",
    )


def checked_predictions(predictions: Sequence[PredictionRecord]) -> list[PredictionRecord]:
    """``predictions`` with their metric names and values checked (the first bad one
    named)."""
    checked = []
    for i, p in enumerate(predictions):
        check_text(f"predictions[{i}].metric", p.metric, 100)
        checked.append(
            replace(
                p,
                value=check_finite(f"predictions[{i}].value", p.value),
                std=check_finite(f"predictions[{i}].std", p.std),
            )
        )
    return checked


def write_predictions(connection: Connection, predictions: Sequence[PredictionRecord]) -> None:
    """Insert checked predictions on ``connection`` (in the caller's transaction), one
    statement."""
    connection.execute(
        insert(PredictionRow),
        [
            {
                "candidate_id": p.candidate_id,
                "metric": p.metric,
                "value": p.value,
                "std": p.std,
                "predictor_id": p.predictor_id,
            }
            for p in predictions
        ],
    )
