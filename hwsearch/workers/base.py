"""The executor interface: runs evaluation tasks, yields their outcomes as they finish."""

from __future__ import annotations

import abc
from collections.abc import Iterator, Sequence

from hwsearch.workers.tasks import EvalOutcome, EvalTask


class Executor(abc.ABC):
    """Runs evaluation tasks and yields their outcomes in completion order."""

    @property
    @abc.abstractmethod
    def max_workers(self) -> int:
        """How many tasks run at once; the driver sizes batches from it."""

    @property
    def cores_per_worker(self) -> int | None:
        """The cores one worker may use (a ``threads: auto`` count); ``None``: this
        machine's usable cores shared among :attr:`max_workers`, worked out in the worker."""
        return None

    @abc.abstractmethod
    def run(self, tasks: Sequence[EvalTask]) -> Iterator[EvalOutcome]:
        """Evaluate ``tasks``, yielding each outcome as soon as it is ready."""

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
