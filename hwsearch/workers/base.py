"""The executor interface: runs evaluation tasks, yields their outcomes as they finish.

Two ways in. :meth:`Executor.run` takes a batch and yields its outcomes (the generational
driver, front verification). :meth:`Executor.submit` and :meth:`Executor.wait` stream: a
task is handed over whenever the caller has one, and ``wait`` returns every outcome that is
ready, at least one, so that the asynchronous driver gives a free worker its next task at
once and stores outcomes that arrived together in one transaction. An executor that does
not stream on its own gets ``submit``/``wait`` from ``run``: what was submitted runs as one
batch at the next ``wait``.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator, Sequence

from hwsearch.workers.tasks import EvalOutcome, EvalTask


class Executor(abc.ABC):
    """Runs evaluation tasks and yields their outcomes in completion order."""

    _streamed: list[EvalTask]  # what the default submit/wait hold until the next wait

    @property
    @abc.abstractmethod
    def max_workers(self) -> int:
        """How many tasks run at once; the driver sizes batches from it."""

    @property
    def runs_one_at_a_time(self) -> bool:
        """Whether evaluations never overlap, each run inside the caller's :meth:`wait`
        (or :meth:`run`) after the one before it returned, so that the time between two
        outcomes' arrivals is what the second one took to evaluate. The driver then leaves
        a fast outcome to the group commit's window while the next evaluation runs
        (:mod:`hwsearch.db.group_commit`). ``False``, the default and the safe answer for
        any executor that may run evaluations alongside each other or alongside its caller
        (whatever :attr:`max_workers` says: one slot with several GPU actors, a plug-in's
        own workers): what one ``wait`` hands back is stored before the next ``wait``."""
        return False

    @property
    def cores_per_worker(self) -> int | None:
        """The cores one worker may use (a ``threads: auto`` count); ``None``: this
        machine's usable cores shared among :attr:`max_workers`, worked out in the worker."""
        return None

    @abc.abstractmethod
    def run(self, tasks: Sequence[EvalTask]) -> Iterator[EvalOutcome]:
        """Evaluate ``tasks``, yielding each outcome as soon as it is ready."""

    # -- streaming ---------------------------------------------------------------------------

    def submit(self, task: EvalTask) -> None:
        """Start ``task`` as soon as a worker is free; its outcome comes from :meth:`wait`."""
        self._submitted().append(task)

    def wait(self, timeout: float | None = None) -> list[EvalOutcome]:
        """The outcomes ready now, waiting until there is at least one (or ``timeout``
        seconds, then possibly none); empty when nothing is submitted."""
        batch, self._streamed = self._submitted(), []
        return list(self.run(batch))

    @property
    def in_flight(self) -> int:
        """Tasks submitted whose outcome :meth:`wait` has not returned yet."""
        return len(self._submitted())

    def cancel(self) -> None:
        """Give up every task submitted and not returned (they may still finish unseen)."""
        self._streamed = []

    def _submitted(self) -> list[EvalTask]:
        queued: list[EvalTask] | None = getattr(self, "_streamed", None)
        if queued is None:
            queued = self._streamed = []
        return queued

    # -- lifetime ----------------------------------------------------------------------------

    def worker_cpu_seconds(self) -> dict[str, float]:
        """CPU seconds the evaluations spent in processes that are neither this one nor its
        children (Ray workers), summed by host from what each task reported; the job's
        footprint adds them. In-process and pool work is counted by the process itself."""
        return {}

    def close(self) -> None:  # noqa: B027 - a concrete no-op hook, overridden where needed
        """Release workers; the executor cannot be used afterwards."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["Executor"]
