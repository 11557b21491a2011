"""The job runner of ``hwsearch serve``: takes queued jobs from the database and runs them.

One runner serves one database. It polls for ``queued`` jobs (oldest first; a submission
wakes it at once) and runs each in a thread of its own with the driver's
:meth:`~hwsearch.search.driver.Driver.resume`, which starts a job that never ran and
continues one that was interrupted. At most ``max_jobs`` jobs run at once.

Every job is driven under a lease (:mod:`hwsearch.db.leases`): the runner takes a job only
when its lease is free or expired, with a compare-and-set in the database, so two servers
on one database never drive the same job, and a second server leaves the first one's live
jobs alone. At each poll the runner also adopts *stale* jobs — ``running`` with an expired
lease, their driver killed or cut from the database — and its own jobs whose driver
stopped on a database outage; their finished candidates are replayed, not evaluated again.

Cancelling a running job sets its ``cancel_requested`` flag; the driver reads it after each
evaluation and ends the job ``cancelled``, with every finished candidate kept.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from hwsearch.db import Store
from hwsearch.db.leases import LeaseOwner, Leases, LeaseSettings
from hwsearch.errors import HwsearchError, JobInterrupted
from hwsearch.records import JobState
from hwsearch.search.spec.user_model import names_code
from hwsearch.workers import Executor, make_executor

__all__ = ["JobRunner", "RunnerSettings"]

log = logging.getLogger("hwsearch.runner")


@dataclass(frozen=True)
class RunnerSettings:
    """How the runner runs jobs: ``executor`` is ``local`` (in the server's process),
    ``pool`` (``workers`` processes per job) or ``ray`` (``address``: the cluster; default a
    local Ray); ``max_jobs`` jobs at once."""

    executor: str = "local"
    workers: int = 1
    max_jobs: int = 1
    poll_s: float = 1.0
    address: str | None = None
    lease: LeaseSettings = field(default_factory=LeaseSettings.from_environment)
    #: after the executor failed to start, no job is taken for this long (doubled at each
    #: failure in a row, up to ``executor_backoff_max_s``): an outage fails one job per
    #: wait, not the whole queue
    executor_backoff_s: float = 30.0
    executor_backoff_max_s: float = 600.0

    def __post_init__(self) -> None:
        if self.executor not in ("local", "pool", "ray"):
            raise ValueError(f"executor must be 'local', 'pool' or 'ray', got {self.executor!r}")
        if self.address is not None and self.executor != "ray":
            raise ValueError(f"address is for the ray executor only, not {self.executor!r}")
        for name in ("workers", "max_jobs"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        for name in ("poll_s", "executor_backoff_s", "executor_backoff_max_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)!r}")


class JobRunner:
    """Runs the database's queued jobs in background threads until :meth:`stop`."""

    def __init__(
        self,
        store: Store,
        settings: RunnerSettings | None = None,
        *,
        executor_factory: Callable[[], Executor] | None = None,
    ) -> None:
        self.store = store
        self.settings = settings or RunnerSettings()
        self._executor_factory = executor_factory or (
            lambda: make_executor(
                self.settings.executor, workers=self.settings.workers, address=self.settings.address
            )
        )
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._active: dict[int, threading.Thread] = {}
        self._left_to_user: set[int] = set()  # queued jobs of user code, warned about once
        self._backoff = self.settings.executor_backoff_s
        self._executor_down_until = 0.0  # monotonic time; no job taken before it
        self._loop: threading.Thread | None = None
        self.owner = LeaseOwner()  # this runner's identity in the jobs' leases
        self.leases = Leases(store)

    # -- control ------------------------------------------------------------------------

    def start(self) -> None:
        """Start polling for queued and stale jobs."""
        if self._loop is not None:
            raise HwsearchError("the runner is already started")
        self._stopping.clear()
        self._loop = threading.Thread(target=self._poll, name="hwsearch-runner", daemon=True)
        self._loop.start()

    def wake(self) -> None:
        """Look for queued jobs now (called after a submission)."""
        self._wake.set()

    def stop(self, timeout: float | None = None) -> None:
        """Stop taking jobs and ask the running ones to stop after their generation.

        Jobs stopped this way are queued again, keeping what they finished, so the next
        server resumes them.
        """
        self._stopping.set()
        self._wake.set()
        if self._loop is not None:
            self._loop.join(timeout)
            self._loop = None
        for thread in list(self._active.values()):
            thread.join(timeout)

    @property
    def active_jobs(self) -> list[int]:
        """Jobs this runner is running now."""
        with self._lock:
            return sorted(job_id for job_id, t in self._active.items() if t.is_alive())

    # -- the loop -------------------------------------------------------------------------

    def _poll(self) -> None:
        while not self._stopping.is_set():
            try:
                self._take_jobs()
            except Exception:  # a database hiccup must not end the runner
                log.exception("looking for queued jobs failed")
            self._wake.wait(self.settings.poll_s)
            self._wake.clear()

    def _take_jobs(self) -> None:
        """Start the stale jobs, then the queued ones, whose lease this runner gets (none
        while the executor is in its back-off after failing to start)."""
        if time.monotonic() < self._executor_down_until:
            return
        with self._lock:
            active = {k for k, t in self._active.items() if t.is_alive()}
        candidates: list[int] = []
        running = self.store.list_jobs(state=JobState.RUNNING, limit=1000)
        for job in sorted(running, key=lambda j: j.id):
            mine = job.lease is not None and job.lease.owner == self.owner.id
            if job.id not in active and (job.stale() or mine) and not names_code(job.spec):
                candidates.append(job.id)  # a job of the user's own code is resumed by its user
        queued = self.store.list_jobs(state=JobState.QUEUED, limit=1000)
        for job in sorted(queued, key=lambda j: j.id):
            if not names_code(job.spec):
                candidates.append(job.id)
            elif job.id not in self._left_to_user:  # queued past the CLI's and API's checks
                self._left_to_user.add(job.id)
                log.warning(
                    "job %s names code to run (its user's own model) and is left queued: a "
                    "server never imports code a spec names; its user runs it with hwsearch "
                    "resume %s",
                    job.id,
                    job.id,
                )
        for job_id in candidates:
            with self._lock:
                self._active = {k: t for k, t in self._active.items() if t.is_alive()}
                if len(self._active) >= self.settings.max_jobs or self._stopping.is_set():
                    return
                if job_id in self._active:
                    continue
                # the compare-and-set: none but this runner drives the job from here on
                if not self.leases.acquire(job_id, self.owner, self.settings.lease.duration_s):
                    continue  # another driver holds it
                log.info("job %s taken by runner %s", job_id, self.owner)
                thread = threading.Thread(
                    target=self._run_job, args=(job_id,), name=f"hwsearch-job-{job_id}", daemon=True
                )
                self._active[job_id] = thread
            thread.start()

    def _run_job(self, job_id: int) -> None:
        from hwsearch.search.jobs import Job
        from hwsearch.search.spec import parse_spec

        try:
            job = self.store.get_job(job_id)
            if job.state not in (JobState.QUEUED, JobState.RUNNING):
                return  # cancelled (or taken) between the listing and now
            if names_code(job.spec):  # never imported here (see _take_jobs)
                return
            try:
                spec = parse_spec(job.spec)
            except HwsearchError as exc:  # e.g. a table file removed since submission
                self.store.set_job_state(job_id, JobState.FAILED, error=f"invalid spec: {exc}")
                return
            try:
                executor = self._executor_factory()
            except Exception as exc:  # the server's executor is away (its Ray cluster, say)
                wait = self._backoff
                self._executor_down_until = time.monotonic() + wait
                self._backoff = min(2 * wait, self.settings.executor_backoff_max_s)
                log.error(
                    "job %s: the server's executor did not start (%s); no job is taken for "
                    "the next %.0f s",
                    job_id,
                    exc,
                    wait,
                )
                self.store.set_job_state(
                    job_id,
                    JobState.FAILED,
                    error=f"the server could not start its executor: {exc}; the job keeps "
                    f"what it finished: hwsearch resume {job_id}, or resubmit it, once the "
                    "server's executor is back",
                )
                return
            self._backoff = self.settings.executor_backoff_s  # it starts again
            with executor:
                try:  # the job's footprint is stored when its run ends
                    run = Job(
                        spec,
                        self.store,
                        executor=executor,
                        should_stop=lambda: self._should_stop(job_id),
                        lease_owner=self.owner,
                        lease_settings=self.settings.lease,
                    )
                except HwsearchError as exc:  # before the driver could store a reason
                    self.store.set_job_state(job_id, JobState.FAILED, error=str(exc))
                    return
                ended = run.resume(job_id)
                failed = f", {ended.failed} failed" if ended.failed else ""
                state, done = ended.state.value, ended.evaluations
                log.info("job %s %s: %s evaluated%s", job_id, state, done, failed)
        except _ServerStopping:
            self.store.set_job_state(job_id, JobState.QUEUED)  # from interrupted: resumed later
        except Exception:
            log.exception("job %s failed", job_id)  # the driver stored the reason
        finally:
            if not self._stopping.is_set():
                self._clear_flag(job_id)
            self._release(job_id)
            self._wake.set()  # a slot is free

    def _should_stop(self, job_id: int) -> bool:
        if self._stopping.is_set():
            raise _ServerStopping(f"server stopping; job {job_id} resumes on restart")
        return self.store.cancel_requested(job_id)

    def _release(self, job_id: int) -> None:
        try:
            self.leases.release(job_id, self.owner)
        except Exception as exc:  # database away: the lease expires on its own
            log.warning("releasing the lease of job %s failed: %s", job_id, exc)

    def _clear_flag(self, job_id: int) -> None:
        try:
            if self.store.get_job(job_id).state is JobState.RUNNING:
                return  # left for the next lease holder, who must still see the request
            if self.store.cancel_requested(job_id):
                self.store.clear_cancel_request(job_id)
        except Exception:
            log.exception("clearing the cancel flag of job %s failed", job_id)


class _ServerStopping(JobInterrupted):
    """Raised inside a driver when the server shuts down: the job is interrupted, then
    queued again for the next server."""
