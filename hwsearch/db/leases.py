"""Job leases: each running job is driven by exactly one driver at a time.

A driver takes a job by writing its identity (a runner id, the host and the process id)
and an expiry into the job's row, with one compare-and-set ``UPDATE``: it lands only where
no lease is held, the lease is the caller's own, or it has expired. PostgreSQL re-checks
the ``WHERE`` clause of an ``UPDATE`` that waited on a row lock, and SQLite writes one
transaction at a time (``BEGIN IMMEDIATE``), so of two drivers racing for a job exactly one
wins, on both backends. While it runs, the driver renews the lease every
``heartbeat_s`` (:class:`LeaseKeeper`); a driver killed with ``kill -9``, or cut from the
database, stops renewing, its lease expires after ``duration_s`` and the job shows as
*stale* until another driver takes it.

Times are the drivers' clocks in UTC: hosts sharing a database must keep their clocks in
step to well within ``duration_s`` (NTP does).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Protocol

from sqlalchemy import Engine, or_, select, update

from hwsearch.db.engine import WRITE_OPTION
from hwsearch.db.models import Job, utcnow
from hwsearch.db.retry import install as _install_retries
from hwsearch.errors import HwsearchError, NotFoundError
from hwsearch.records import JobState, Lease

__all__ = [
    "JobLeased",
    "LeaseKeeper",
    "LeaseLost",
    "LeaseOwner",
    "LeaseSettings",
    "Leases",
    "lease_record",
]

log = logging.getLogger("hwsearch.leases")

LEASE_ENV = "HWSEARCH_LEASE_S"
HEARTBEAT_ENV = "HWSEARCH_HEARTBEAT_S"


@dataclass(frozen=True)
class LeaseSettings:
    """How long a lease lasts without renewal, and how often its holder renews it.

    Defaults 30 s and 10 s; ``HWSEARCH_LEASE_S`` and ``HWSEARCH_HEARTBEAT_S`` override them
    (:meth:`from_environment`). A killed driver's job is taken over at most ``duration_s``
    after its last heartbeat.
    """

    duration_s: float = 30.0
    heartbeat_s: float = 10.0

    def __post_init__(self) -> None:
        if not self.heartbeat_s > 0:
            raise ValueError(f"heartbeat_s must be positive, got {self.heartbeat_s!r}")
        if not self.duration_s >= 2 * self.heartbeat_s:
            raise ValueError(
                f"duration_s ({self.duration_s!r}) must be at least twice heartbeat_s "
                f"({self.heartbeat_s!r}), so that one late heartbeat does not lose the lease"
            )

    @classmethod
    def from_environment(cls) -> LeaseSettings:
        def read(name: str, default: float) -> float:
            text = os.environ.get(name)
            if text is None or text == "":
                return default
            try:
                return float(text)
            except ValueError:
                raise ValueError(f"{name} must be a number of seconds, got {text!r}") from None

        return cls(read(LEASE_ENV, cls.duration_s), read(HEARTBEAT_ENV, cls.heartbeat_s))


@dataclass(frozen=True)
class LeaseOwner:
    """Who drives a job: a runner id unique to one driver or runner, its host and pid."""

    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    host: str = field(default_factory=lambda: socket.gethostname()[:255])
    pid: int = field(default_factory=os.getpid)

    def __str__(self) -> str:
        return f"{self.id[:8]} on {self.host} (pid {self.pid})"


class JobLeased(HwsearchError):
    """The job is driven elsewhere: its lease is held by another, live driver."""


class LeaseLost(HwsearchError):
    """Another driver took the job over, or this one could not renew its lease in time."""


def lease_record(job: Job) -> Lease | None:
    """The lease stored in a job row, or ``None`` when no driver ever held one."""
    if job.lease_owner is None or job.lease_expires_at is None or job.heartbeat_at is None:
        return None
    return Lease(
        owner=job.lease_owner,
        host=job.lease_host or "",
        pid=int(job.lease_pid or 0),
        heartbeat_at=job.heartbeat_at,
        expires_at=job.lease_expires_at,
    )


def describe(lease: Lease) -> str:
    return f"runner {lease.owner[:8]} on {lease.host} (pid {lease.pid})"


class HasEngine(Protocol):
    """What :class:`Leases` needs of a store (a :class:`~hwsearch.db.store.Store`)."""

    @property
    def engine(self) -> Engine: ...


class Leases:
    """Take, renew and give back job leases in a store's database (each call is one
    transaction, retried on PostgreSQL like the store's own)."""

    def __init__(self, store: HasEngine) -> None:
        self._store = store
        self._write = store.engine.execution_options(**{WRITE_OPTION: True})

    @property
    def engine(self) -> Engine:
        return self._store.engine

    def acquire(self, job_id: int, owner: LeaseOwner, duration_s: float) -> bool:
        """Take job ``job_id`` for ``owner`` if its lease is free, expired or already
        ``owner``'s; ``True`` when taken. A finished job cannot be leased."""
        now = utcnow()
        statement = (
            update(Job)
            .where(
                Job.id == job_id,
                Job.state != JobState.FINISHED,
                or_(
                    Job.lease_owner.is_(None),
                    Job.lease_owner == owner.id,
                    Job.lease_expires_at.is_(None),
                    Job.lease_expires_at <= now,
                ),
            )
            .values(
                lease_owner=owner.id,
                lease_host=owner.host,
                lease_pid=owner.pid,
                heartbeat_at=now,
                lease_expires_at=now + timedelta(seconds=duration_s),
            )
        )
        with self._write.begin() as conn:
            taken = conn.execute(statement).rowcount == 1
            if not taken and conn.scalar(select(Job.id).where(Job.id == job_id)) is None:
                raise NotFoundError(f"job {job_id} not found")
        return taken

    def renew(self, job_id: int, owner: LeaseOwner, duration_s: float) -> bool:
        """Extend ``owner``'s lease; ``False`` when another driver holds the job now."""
        now = utcnow()
        statement = (
            update(Job)
            .where(Job.id == job_id, Job.lease_owner == owner.id)
            .values(heartbeat_at=now, lease_expires_at=now + timedelta(seconds=duration_s))
        )
        with self._write.begin() as conn:
            return conn.execute(statement).rowcount == 1

    def release(self, job_id: int, owner: LeaseOwner) -> None:
        """Give ``owner``'s lease back: it expires now (who held it last stays recorded)."""
        statement = (
            update(Job)
            .where(Job.id == job_id, Job.lease_owner == owner.id)
            .values(lease_expires_at=utcnow())
        )
        with self._write.begin() as conn:
            conn.execute(statement)

    def holder(self, job_id: int) -> Lease | None:
        """The lease now stored for the job (expired or not)."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(
                    Job.lease_owner,
                    Job.lease_host,
                    Job.lease_pid,
                    Job.heartbeat_at,
                    Job.lease_expires_at,
                ).where(Job.id == job_id)
            ).one_or_none()
        if row is None:
            raise NotFoundError(f"job {job_id} not found")
        if row[0] is None or row[3] is None or row[4] is None:
            return None
        return Lease(owner=row[0], host=row[1] or "", pid=int(row[2] or 0),
                     heartbeat_at=row[3], expires_at=row[4])  # fmt: skip

    def take(self, job_id: int, owner: LeaseOwner, duration_s: float) -> None:
        """:meth:`acquire`, or :class:`JobLeased` naming the driver that holds the job."""
        if self.acquire(job_id, owner, duration_s):
            return
        lease = self.holder(job_id)
        if lease is None:  # only a finished job refuses a free lease
            raise JobLeased(f"job {job_id} is finished; nothing to drive")
        left = (lease.expires_at - utcnow()).total_seconds()
        raise JobLeased(
            f"job {job_id} is being run by {describe(lease)}, last heartbeat "
            f"{lease.heartbeat_at:%Y-%m-%d %H:%M:%S} UTC; it can be taken over once that "
            f"driver has stopped and its lease has expired (in {max(left, 0):.0f} s)"
        )


_install_retries(Leases)


class LeaseKeeper:
    """Renews one job's lease in a background thread while its driver runs.

    :meth:`check` (called by the driver before each write of a result) raises
    :class:`LeaseLost` once another driver holds the job, or when no renewal has landed
    for ``duration_s`` — the lease may then have expired and been taken, so the driver
    stops rather than write beside another.
    """

    def __init__(
        self, leases: Leases, job_id: int, owner: LeaseOwner, settings: LeaseSettings
    ) -> None:
        self.leases = leases
        self.job_id = job_id
        self.owner = owner
        self.settings = settings
        self._renewed = time.monotonic()
        self._lost: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._beat, name=f"hwsearch-lease-{job_id}", daemon=True
        )

    def start(self) -> LeaseKeeper:
        self._renewed = time.monotonic()
        self._thread.start()
        return self

    def stop(self, *, release: bool = True) -> None:
        """Stop renewing; with ``release`` give the lease back (best effort: a database
        that is away lets it expire instead)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(self.settings.heartbeat_s + 5)
        if release and self._lost is None:
            try:
                self.leases.release(self.job_id, self.owner)
            except Exception as exc:  # the lease then expires on its own
                log.warning("releasing the lease of job %s failed: %s", self.job_id, exc)

    def check(self) -> None:
        """Raise :class:`LeaseLost` unless the lease is still this driver's. After a
        silence as long as the lease (the database was away), one renewal is tried here:
        it lands only if nobody took the job meanwhile."""
        if self._lost is not None:
            raise LeaseLost(self._lost)
        silent = time.monotonic() - self._renewed
        if silent < self.settings.duration_s:
            return
        try:
            kept = self.leases.renew(self.job_id, self.owner, self.settings.duration_s)
        except Exception as exc:
            raise LeaseLost(
                f"job {self.job_id}: lease not renewed for {silent:.0f} s ({exc}); stopping so "
                "that the next driver can take the job over"
            ) from exc
        if not kept:
            self._lost = f"job {self.job_id} was taken over by another driver"
            raise LeaseLost(self._lost)
        self._renewed = time.monotonic()

    def _beat(self) -> None:
        while not self._stop.wait(self.settings.heartbeat_s):
            try:
                kept = self.leases.renew(self.job_id, self.owner, self.settings.duration_s)
            except Exception as exc:  # database away: try again at the next beat
                log.warning("renewing the lease of job %s failed: %s", self.job_id, exc)
                continue
            if not kept:
                holder = None
                with contextlib.suppress(Exception):  # only for the message
                    holder = self.leases.holder(self.job_id)
                by = describe(holder) if holder is not None else "another driver"
                self._lost = f"job {self.job_id} was taken over by {by}"
                log.warning(self._lost)
                return
            self._renewed = time.monotonic()
