"""Jobs: created queued, moved through :data:`JOB_TRANSITIONS`, read with their number of
done candidates; a job's footprint lives in its row too."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from hwsearch.db.checks import MAX_LABEL, MAX_NAME, check_text, coerce_enum, json_object
from hwsearch.db.convert import job_record
from hwsearch.db.models import Job, utcnow
from hwsearch.db.repository import Repository, jobs_query, settled_counts
from hwsearch.db.retry import install as _install_retries
from hwsearch.errors import ConflictError, NotFoundError, StorageError
from hwsearch.records import JobRecord, JobState

__all__ = ["JOB_TRANSITIONS", "JobRepository"]

#: The states a job may move to from each state. A finished job is final; a failed,
#: cancelled or interrupted one may be queued again to resume it.
JOB_TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    JobState.QUEUED: frozenset(
        {JobState.RUNNING, JobState.CANCELLED, JobState.FAILED, JobState.INTERRUPTED}
    ),
    JobState.RUNNING: frozenset(
        {
            JobState.FINISHED,
            JobState.FAILED,
            JobState.CANCELLED,
            JobState.QUEUED,
            JobState.INTERRUPTED,
        }
    ),
    JobState.FINISHED: frozenset(),
    JobState.FAILED: frozenset({JobState.QUEUED}),
    JobState.CANCELLED: frozenset({JobState.QUEUED}),
    JobState.INTERRUPTED: frozenset({JobState.QUEUED, JobState.CANCELLED}),
}
#: States that stamp ``finished_at``: the job's driver has stopped.
_TERMINAL = frozenset(
    {JobState.FINISHED, JobState.FAILED, JobState.CANCELLED, JobState.INTERRUPTED}
)


class JobRepository(Repository):
    """The jobs table."""

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
        check_text("name", name, MAX_NAME)
        check_text("family", family, MAX_LABEL)
        check_text("target", target, MAX_LABEL)
        stored_spec = json_object("spec", spec)
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
            return job_record(job, evaluations=0)

    def set_job_state(self, job_id: int, state: JobState, *, error: str | None = None) -> JobRecord:
        """Move a job to ``state`` (see :data:`JOB_TRANSITIONS`), stamping ``started_at`` on
        running and ``finished_at`` on finished, failed or cancelled; ``error`` is stored as
        given (``None`` clears an earlier one)."""
        new = coerce_enum("state", state, JobState)
        with self._writing() as session:
            job = session.scalars(
                select(Job).where(Job.id == job_id).with_for_update()
            ).one_or_none()
            if job is None:
                raise NotFoundError(f"job {job_id} not found")
            if new not in JOB_TRANSITIONS[job.state]:
                allowed = ", ".join(sorted(JOB_TRANSITIONS[job.state])) or "none, it is final"
                raise ConflictError(
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
            return job_record(job, **settled_counts(session, job_id))

    def get_job(self, job_id: int) -> JobRecord:
        with self._reading() as session:
            row = session.execute(jobs_query().where(Job.id == job_id)).one_or_none()
            if row is None:
                raise NotFoundError(f"job {job_id} not found")
            return job_record(row[0], evaluations=row[1], failed=row[2])

    def list_jobs(
        self, *, state: JobState | None = None, limit: int = 100, offset: int = 0
    ) -> list[JobRecord]:
        """Jobs, newest first."""
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise StorageError("limit", f"must be a positive integer, got {limit!r}")
        if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
            raise StorageError("offset", f"must be a non-negative integer, got {offset!r}")
        query = jobs_query().order_by(Job.id.desc()).limit(limit).offset(offset)
        if state is not None:
            query = query.where(Job.state == coerce_enum("state", state, JobState))
        with self._reading() as session:
            return [
                job_record(job, evaluations=done, failed=failed)
                for job, done, failed in session.execute(query)
            ]

    def count_jobs(self, *, state: JobState | None = None) -> int:
        query = select(func.count(Job.id))
        if state is not None:
            query = query.where(Job.state == coerce_enum("state", state, JobState))
        with self._reading() as session:
            return int(session.scalar(query) or 0)

    def set_job_footprint(self, job_id: int, footprint: dict[str, Any]) -> None:
        """Store the energy and carbon of job ``job_id``'s own search."""
        stored = json_object("footprint", footprint)
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


_install_retries(JobRepository)
