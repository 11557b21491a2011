"""Thread counts of a worker: training, evaluation (the test-set pass) and measurement.

A spec's ``threads`` section gives training and evaluation counts (an integer, or ``auto``:
the cores of one worker — this machine's usable cores divided by the executor's workers, or
what Ray reserved per task); ``measurement.threads`` gives the measurement's. They are set
with ``torch.set_num_threads`` around each phase, in whatever process evaluates (in
process, a pool worker, a Ray task), and the count torch reports inside each phase is
stored with the metrics it produced.

The default is one thread per phase: the models searched here are small, so intra-op
threads buy little, and on cores shared with other processes a phase whose threads must
all be scheduled at once stalls; the trained weights also depend on the thread count
(reductions in another order), so it is fixed rather than the machine's.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from hwsearch.hardware.load import usable_cpus

AUTO = "auto"
DEFAULT_THREADS = 1


def usable_cores() -> int:
    """How many CPUs this process may run on."""
    return len(usable_cpus())


def cores_per_worker(workers: int, cores: int | None = None) -> int:
    """This machine's usable cores (or ``cores``) shared out among ``workers``; at least 1."""
    total = usable_cores() if cores is None else cores
    return max(1, total // max(1, workers))


def resolve(requested: Any, *, per_worker: int) -> int:
    """An explicit count as given; ``auto`` (or ``None``) as ``per_worker`` / the default."""
    if requested == AUTO:
        return max(1, per_worker)
    if requested is None:
        return DEFAULT_THREADS
    if isinstance(requested, bool) or not isinstance(requested, int) or requested < 1:
        raise ValueError(f"a thread count must be an integer >= 1 or 'auto', got {requested!r}")
    return requested


@dataclass(frozen=True)
class WorkerThreads:
    """The resolved training and evaluation thread counts of one worker."""

    training: int = DEFAULT_THREADS
    evaluation: int = DEFAULT_THREADS

    @classmethod
    def from_task(cls, threads: Mapping[str, Any]) -> WorkerThreads:
        """From a task's ``threads``: ``training`` / ``evaluation`` (int, ``auto``, absent),
        with ``cores_per_worker`` (what the executor gives each worker) or ``workers`` (to
        share this machine's cores out)."""
        per_worker = threads.get("cores_per_worker")
        if per_worker is None:
            per_worker = cores_per_worker(int(threads.get("workers") or 1))
        per_worker = max(1, int(per_worker))
        return cls(
            training=resolve(threads.get("training"), per_worker=per_worker),
            evaluation=resolve(threads.get("evaluation"), per_worker=per_worker),
        )


_DEFAULT: ContextVar[WorkerThreads | None] = ContextVar("hwsearch_worker_threads", default=None)


def default_threads() -> WorkerThreads:
    """The counts a build uses when given none: those of :func:`using_threads`, else one."""
    return _DEFAULT.get() or WorkerThreads()


@contextmanager
def using_threads(threads: WorkerThreads) -> Iterator[None]:
    """Builds inside the block that are given no counts use ``threads`` (export rebuilds a
    candidate with the counts it was trained with)."""
    token = _DEFAULT.set(threads)
    try:
        yield
    finally:
        _DEFAULT.reset(token)


def stored_threads(details: Mapping[str, Any]) -> WorkerThreads | None:
    """The counts a quality metric's details say its candidate was built with."""
    seen = details.get("threads")
    if not isinstance(seen, Mapping) or not seen:
        return None
    return WorkerThreads(
        training=int(seen.get("training") or DEFAULT_THREADS),
        evaluation=int(seen.get("evaluation") or DEFAULT_THREADS),
    )


@contextmanager
def torch_threads(count: int) -> Iterator[int]:
    """Run the block with ``count`` intra-op threads; yields the count torch reports, and
    restores the previous one afterwards."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(previous)
