"""Cancel requests: a queued or interrupted job (a running one whose driver is gone
included) is cancelled at once, a running one flagged for its driver, which stops after
the evaluation in flight."""

from __future__ import annotations

from sqlalchemy import select

from hwsearch.db.convert import job_record
from hwsearch.db.models import Job, utcnow
from hwsearch.db.repository import Repository, settled_counts
from hwsearch.db.retry import install as _install_retries
from hwsearch.errors import ConflictError, NotFoundError
from hwsearch.records import JobRecord, JobState

__all__ = ["CancelRepository"]


class CancelRepository(Repository):
    """The cancel flag of the jobs table."""

    def request_cancel(self, job_id: int) -> JobRecord:
        """Cancel a job: a queued or interrupted one at once, and so a running one whose
        driver is gone (its lease expired: shown interrupted); a running one is flagged,
        and its driver stops after the evaluation in flight (see :meth:`cancel_requested`).

        A finished, failed or cancelled job cannot be cancelled (``ConflictError`` on ``state``).
        """
        with self._writing() as session:
            job = session.scalars(
                select(Job).where(Job.id == job_id).with_for_update()
            ).one_or_none()
            if job is None:
                raise NotFoundError(f"job {job_id} not found")
            stale = job_record(job, evaluations=0).stale()  # its driver gone: interrupted
            if job.state in (JobState.QUEUED, JobState.INTERRUPTED) or stale:
                job.state = JobState.CANCELLED
                job.finished_at = utcnow()
            elif job.state is JobState.RUNNING:
                job.cancel_requested = True
            else:
                raise ConflictError(
                    "state",
                    f"job {job_id} is {job.state.value}; only queued, running or interrupted "
                    "jobs can be cancelled",
                )
            session.flush()
            return job_record(job, **settled_counts(session, job_id))

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


_install_retries(CancelRepository)
