"""Driver events: the order in which a job's driver asked its optimizer and told it
results (:class:`~hwsearch.records.DriverEvent`), the record an asynchronous job's resume
replays."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from hwsearch.db.models import DriverEventRow
from hwsearch.db.repository import Repository, require_job
from hwsearch.db.retry import install as _install_retries
from hwsearch.errors import ConflictError, StorageError
from hwsearch.records import DriverEvent

__all__ = ["EVENT_KINDS", "EventRepository"]

EVENT_KINDS = ("async", "generational", "ask", "tell")


class EventRepository(Repository):
    """The ``driver_events`` table: one job's events numbered from 0 in order."""

    def append_events(
        self, job_id: int, events: Sequence[DriverEvent], *, start: int | None = None
    ) -> int:
        """Append ``events`` after the job's last one, in one transaction (one multi-row
        INSERT); return how many the job has now.

        ``start`` is the number of events the caller believes the job has: a write whose
        commit landed but whose answer was lost (and is run again, hwsearch.db.retry) finds
        its own events there and returns; any other difference is a ``ConflictError`` on
        ``events`` (another driver wrote to the job). The unique ``(job_id, seq)`` keeps two
        writers from interleaving either way."""
        rows = []
        for k, event in enumerate(events):
            kind, value = event
            if kind not in EVENT_KINDS:
                raise StorageError(f"events[{k}].kind", f"must be one of {', '.join(EVENT_KINDS)}")
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise StorageError(f"events[{k}].value", f"must be an integer >= 0, got {value!r}")
            rows.append((kind, value))
        if start is not None:  # one INSERT, no read first: the driver's per-round cost
            try:
                with self._write_engine.begin() as connection:
                    if rows:
                        connection.execute(insert(DriverEventRow), _rows(job_id, start, rows))
                return start + len(rows)
            except IntegrityError:
                pass  # a write landed before, another writer's or this one's: see which
        with self._writing() as session:
            require_job(session, job_id)
            last = session.scalar(
                select(func.max(DriverEventRow.seq)).where(DriverEventRow.job_id == job_id)
            )
            have = 0 if last is None else last + 1
            if start is not None and have != start:
                if have == start + len(rows) and self._events(session, job_id, start) == rows:
                    return have  # this very write landed before
                raise ConflictError(
                    "events", f"job {job_id} has {have} driver events, expected {start}"
                )
            if rows:
                session.execute(insert(DriverEventRow), _rows(job_id, have, rows))
            return have + len(rows)

    def list_events(self, job_id: int) -> list[DriverEvent]:
        """The job's events in the order they were appended."""
        with self._reading() as session:
            return [DriverEvent(kind, value) for kind, value in self._events(session, job_id)]

    @staticmethod
    def _events(session: Session, job_id: int, start: int = 0) -> list[tuple[str, int]]:
        rows = session.execute(
            select(DriverEventRow.kind, DriverEventRow.value)
            .where(DriverEventRow.job_id == job_id, DriverEventRow.seq >= start)
            .order_by(DriverEventRow.seq)
        ).all()
        return [(kind, value) for kind, value in rows]


def _rows(job_id: int, start: int, rows: Sequence[tuple[str, int]]) -> list[dict[str, object]]:
    return [
        {"job_id": job_id, "seq": start + k, "kind": kind, "value": value}
        for k, (kind, value) in enumerate(rows)
    ]


_install_retries(EventRepository)
