"""Running a job, new or resumed: the one place the CLI, the server and Python call.

:class:`Job` wraps the :class:`~hwsearch.search.driver.Driver` with what every run of a
job needs besides the search itself: the search's own footprint (energy and carbon of the
process and of the CPU time remote workers reported, :mod:`hwsearch.hardware.footprint`),
stored with the job and added to that of its earlier runs, and the target's profile stored
among the targets. Progress callbacks and cancellation (``should_stop``, asked after each
evaluation) and the job's lease go to the driver.

::

    job = Job(load_spec("examples/digits_cnn.yaml"), Store.open(url))
    record = job.run()          # or job.resume(job_id)
    print(job.footprint_line)
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from hwsearch.db import Store
from hwsearch.db.leases import LeaseOwner, LeaseSettings
from hwsearch.records import JobRecord
from hwsearch.search.driver import Driver, ProgressCallback
from hwsearch.search.spec import JobSpec
from hwsearch.workers import Executor

log = logging.getLogger(__name__)


class Job:
    """One run of a job: :meth:`run` creates it, :meth:`resume` continues a stored one.

    Constructing it checks that the spec can be driven (its family, space and optimizer);
    a :class:`~hwsearch.errors.HwsearchError` raised here leaves nothing in the store.
    """

    def __init__(
        self,
        spec: JobSpec,
        store: Store,
        *,
        executor: Executor | None = None,
        on_progress: ProgressCallback | None = None,
        should_stop: Callable[[], bool] | None = None,
        lease_owner: LeaseOwner | None = None,
        lease_settings: LeaseSettings | None = None,
    ) -> None:
        from hwsearch.workers.kinds import kind_of

        kind = kind_of(spec.evaluation)
        spec = spec.model_copy(update={"evaluation": kind.for_store(spec.evaluation, store.url)})
        self.spec = spec
        self.store = store
        self.driver = Driver(
            spec,
            store,
            executor=executor,
            on_progress=on_progress,
            should_stop=should_stop,
            lease_owner=lease_owner,
            lease_settings=lease_settings,
        )
        #: the footprint of this run (a dict of :class:`~hwsearch.hardware.footprint.Footprint`)
        #: and of every run of the job so far, set once a run ends
        self.footprint: dict[str, Any] | None = None
        self.total_footprint: dict[str, Any] | None = None
        self.footprint_line = ""

    @property
    def job_id(self) -> int | None:
        """The job's id, once the run created or found it."""
        return self.driver.job_id

    def run(self) -> JobRecord:
        """Create the job and run it to the end of its budget."""
        return self._drive(self.driver.run)

    def resume(self, job_id: int) -> JobRecord:
        """Continue job ``job_id``; what it finished is not evaluated again."""
        return self._drive(lambda: self.driver.resume(job_id))

    def _drive(self, start: Callable[[], JobRecord]) -> JobRecord:
        tracker = self._tracker()
        workers0 = self.driver.executor.worker_cpu_seconds()
        tracker.start()
        try:
            return start()
        finally:  # a failed or interrupted run spent energy too
            if self.driver.job_id is not None:
                workers = {
                    host: seconds - workers0.get(host, 0.0)
                    for host, seconds in self.driver.executor.worker_cpu_seconds().items()
                }
                self._store_footprint(self.driver.job_id, tracker, workers)
                self._finish(self.driver.job_id)

    def _finish(self, job_id: int) -> None:
        from hwsearch.workers.kinds import kind_of

        try:
            kind_of(self.spec.evaluation).finish_job(self.store, job_id, self.spec.evaluation)
        except Exception:  # the run's own outcome matters more
            log.exception("finishing job %s failed", job_id)

    def _tracker(self) -> Any:
        from hwsearch.hardware.footprint import FootprintTracker

        profile = self.spec.target_profile()
        return FootprintTracker(profile, device_index=profile.device_index or 0)

    def _store_footprint(self, job_id: int, tracker: Any, workers: dict[str, float]) -> None:
        """Store this run's footprint, with the CPU seconds its executor's remote workers
        reported (by host), added to the job's earlier runs."""
        from hwsearch.hardware.footprint import merge_footprints

        footprint = tracker.stop(workers)
        try:
            total = merge_footprints(self.store.get_job_footprint(job_id), footprint.to_dict())
            self.store.set_job_footprint(job_id, total)
            self.store.save_target(self.spec.target_profile().to_dict(), replace=False)
        except Exception:  # the run's own outcome (or error) matters more than this record
            log.exception("storing the footprint of job %s failed", job_id)
            return
        self.footprint, self.total_footprint = footprint.to_dict(), total
        line = f"job {job_id} {footprint.summary()}"
        if total["runs"] > 1:
            line += f"; all {total['runs']} runs of the job: {total['total_g']:.3g} gCO2e"
        self.footprint_line = line
