"""Executors run candidate evaluations: in this process or in a local process pool.

Every executor takes a batch of :class:`EvalTask` and yields an :class:`EvalOutcome` per
task as each one finishes, so the driver can store results the moment they exist; both
also stream (``submit`` a task whenever a worker is free, ``wait`` for what is ready, see
:mod:`hwsearch.workers.base`). A task that raises becomes an outcome with ``error`` set; it
never stops the batch.
"""

from __future__ import annotations

import collections
import concurrent.futures as cf
import multiprocessing
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from hwsearch.errors import SpecError, UnknownNameError
from hwsearch.workers.base import Executor
from hwsearch.workers.evaluation import EvalOutcome, EvalTask, evaluate_safely
from hwsearch.workers.placement import RAY_FIELDS, ExecutorSettings


class InProcessExecutor(Executor):
    """Evaluates tasks one after another in the calling process (the embedded default)."""

    def __init__(self, evaluate: Callable[[EvalTask], EvalOutcome] = evaluate_safely) -> None:
        self._evaluate = evaluate
        self._queue: collections.deque[EvalTask] = collections.deque()

    @property
    def max_workers(self) -> int:
        return 1

    @property
    def runs_one_at_a_time(self) -> bool:
        return True  # each evaluation runs inside the driver's wait, after the last one

    def run(self, tasks: Sequence[EvalTask]) -> Iterator[EvalOutcome]:
        for task in tasks:
            yield self._evaluate(task)

    def submit(self, task: EvalTask) -> None:
        self._queue.append(task)

    def wait(self, timeout: float | None = None) -> list[EvalOutcome]:
        """The oldest submitted task, evaluated now: one worker, in submission order."""
        return [self._evaluate(self._queue.popleft())] if self._queue else []

    @property
    def in_flight(self) -> int:
        return len(self._queue)

    def cancel(self) -> None:
        self._queue.clear()


class ProcessPoolExecutor(Executor):
    """Evaluates tasks in a pool of fresh worker processes on this machine.

    Processes are started with ``spawn`` so that no torch thread pool state leaks from the
    parent. Latency measured while other workers run shares the cores with them; use one
    worker per core at most, or the in-process executor for the cleanest timings.
    """

    def __init__(self, *, workers: int = 2) -> None:
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers!r}")
        self._workers = workers
        self._pool = cf.ProcessPoolExecutor(
            max_workers=workers, mp_context=multiprocessing.get_context("spawn")
        )
        self._futures: dict[cf.Future[EvalOutcome], int] = {}  # submitted -> submission order
        self._submitted_count = 0

    @property
    def max_workers(self) -> int:
        return self._workers

    def run(self, tasks: Sequence[EvalTask]) -> Iterator[EvalOutcome]:
        futures = [self._pool.submit(evaluate_safely, task) for task in tasks]
        try:
            for future in cf.as_completed(futures):
                yield future.result()
        finally:  # the caller stopped early (deadline, cancel): start no more of them
            for future in futures:
                future.cancel()

    def submit(self, task: EvalTask) -> None:
        self._futures[self._pool.submit(evaluate_safely, task)] = self._submitted_count
        self._submitted_count += 1

    def wait(self, timeout: float | None = None) -> list[EvalOutcome]:
        """Every finished outcome, in submission order (at least one unless ``timeout``)."""
        if not self._futures:
            return []
        done, _ = cf.wait(self._futures, timeout=timeout, return_when=cf.FIRST_COMPLETED)
        ordered = sorted(done, key=self._futures.__getitem__)
        for future in ordered:
            del self._futures[future]
        return [future.result() for future in ordered]

    @property
    def in_flight(self) -> int:
        return len(self._futures)

    def cancel(self) -> None:
        for future in self._futures:
            future.cancel()
        self._futures.clear()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


EXECUTORS: dict[str, Callable[[int], Executor]] = {
    "local": lambda workers: InProcessExecutor(),
    "pool": lambda workers: ProcessPoolExecutor(workers=workers),
    "ray": lambda workers: _ray_executor(workers=workers),
}


def _ray_executor(*, workers: int | None, address: str | None = None, **options: Any) -> Executor:
    """The Ray executor, importing Ray only now (it is large and slow to import)."""
    try:
        from hwsearch.workers.ray_executor import RayExecutor
    except ModuleNotFoundError as exc:
        if exc.name is None or exc.name.split(".")[0] != "ray":
            raise
        raise ImportError(
            "the ray executor needs Ray: pip install 'ray[default]>=2.40' "
            "(or install hwsearch with its dev extra)"
        ) from exc
    return RayExecutor(address=address, workers=workers, **options)


def make_executor(
    name: str,
    *,
    workers: int | None = 1,
    address: str | None = None,
    placement: ExecutorSettings | None = None,
) -> Executor:
    """The executor registered as ``name`` (``local``, ``pool`` or ``ray``).

    ``workers`` ``None`` means the executor's own default: every CPU of the cluster for
    ``ray``, one worker otherwise. ``address`` (a Ray cluster) and ``placement`` (the Ray
    fields of a spec's ``executor`` section: resources, GPUs, timeouts) are for ``ray``
    only.
    """
    if name == "ray":
        options = placement.ray_options() if placement is not None else {}
        return _ray_executor(workers=workers, address=address, **options)
    if address is not None:
        raise SpecError("address", f"only the ray executor connects to an address, not {name!r}")
    if placement is not None:
        for field in RAY_FIELDS:
            if field in placement.model_fields_set:
                reason = f"only the ray executor reads it, not {name!r}"
                raise SpecError(f"executor.{field}", reason)
    try:
        factory = EXECUTORS[name]
    except KeyError:
        raise UnknownNameError("executor", name, EXECUTORS) from None
    return factory(1 if workers is None else workers)


def executor_for(
    settings: ExecutorSettings | None,
    *,
    name: str | None = None,
    workers: int | None = None,
    address: str | None = None,
    default_workers: int | None = 1,
) -> Executor:
    """The executor of a spec's ``executor`` section with the caller's overrides (a CLI's
    ``--executor``, ``--workers``, ``--address``) applied over it; ``local`` by default."""
    chosen = (settings or ExecutorSettings()).merged(type=name, workers=workers, address=address)
    kind = chosen.type or "local"
    count = chosen.workers if chosen.workers is not None else default_workers
    if kind == "ray" and chosen.workers is None:
        count = None  # every CPU of the cluster
    return make_executor(kind, workers=count, address=chosen.address, placement=chosen)
