"""Fitted predictors, versioned per (family, target, metric)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select

from hwsearch.db.checks import check_count, check_finite, check_text, json_object
from hwsearch.db.convert import predictor_record
from hwsearch.db.models import PredictorRow
from hwsearch.db.repository import Repository
from hwsearch.db.retry import install as _install_retries
from hwsearch.errors import NotFoundError, StorageError
from hwsearch.records import PredictorRecord

__all__ = ["PredictorRepository"]


class PredictorRepository(Repository):
    """The predictors table."""

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
            check_text(field, value, max_len)
        check_count("training_size", training_size)
        names = list(features)
        if not all(isinstance(n, str) for n in names):
            raise StorageError("features", "must be a list of feature names (strings)")
        checked = {str(k): check_finite(f"metrics.{k}", v) for k, v in dict(metrics).items()}
        stored = json_object("state", state)
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
            return predictor_record(row)

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
            return predictor_record(row)

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
            return [predictor_record(r) for r in session.scalars(query)]


_install_retries(PredictorRepository)
