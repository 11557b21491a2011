"""What every repository of the store shares: its engine, its sessions, and the small
queries several of them need.

Each public method of a repository runs in one transaction of its own (a write lands
completely or not at all) and is run again after a transient failure on PostgreSQL
(:mod:`hwsearch.db.retry`, installed on each repository class).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, Select, func, select
from sqlalchemy.orm import Session, sessionmaker

from hwsearch.db.engine import WRITE_OPTION
from hwsearch.db.models import Candidate, Job
from hwsearch.errors import NotFoundError
from hwsearch.records import CandidateStatus


class Repository:
    """One kind of data in the store's database; thread-safe (each call its own session)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._read = sessionmaker(engine, expire_on_commit=False)
        self._write_engine = engine.execution_options(**{WRITE_OPTION: True})
        self._write = sessionmaker(self._write_engine, expire_on_commit=False)

    @property
    def engine(self) -> Engine:
        return self._engine

    @contextmanager
    def _writing(self) -> Iterator[Session]:
        with self._write.begin() as session:
            yield session

    @contextmanager
    def _reading(self) -> Iterator[Session]:
        with self._read.begin() as session:
            yield session


def jobs_query() -> Select[Job, int, int]:
    """Jobs with their numbers of done and of failed candidates."""

    def count(status: CandidateStatus) -> Any:
        return (
            select(func.count(Candidate.id))
            .where(Candidate.job_id == Job.id, Candidate.status == status)
            .correlate(Job)
            .scalar_subquery()
        )

    return select(Job, count(CandidateStatus.DONE), count(CandidateStatus.FAILED))


def settled_counts(session: Session, job_id: int) -> dict[str, int]:
    """``evaluations`` (done) and ``failed`` candidates of a job, as :func:`job_record`
    takes them."""
    return {
        "evaluations": candidate_count(session, job_id, CandidateStatus.DONE),
        "failed": candidate_count(session, job_id, CandidateStatus.FAILED),
    }


def require_job(session: Session, job_id: int) -> None:
    if session.scalar(select(Job.id).where(Job.id == job_id)) is None:
        raise NotFoundError(f"job {job_id} not found")


def candidate_count(session: Session, job_id: int, status: CandidateStatus | None) -> int:
    query = select(func.count(Candidate.id)).where(Candidate.job_id == job_id)
    if status is not None:
        query = query.where(Candidate.status == status)
    return int(session.scalar(query) or 0)
