"""An executor on a virtual clock: ``workers`` simulated workers, no sleeping.

Each task takes ``duration(task)`` virtual seconds on a worker; the clock jumps to the next
finish whenever the caller waits, so a run of thousands of 5 s evaluations takes as long as
the driver's own work. With ``charge_caller`` the real time the caller spends between calls
(its asks, tells, hashing, database writes: the driver's cost per candidate) is added to
the clock as well, and workers that finish meanwhile wait for it, exactly as they wait
for a real driver. Without it the clock is purely virtual and the order of outcomes is a
function of the tasks alone: deterministic, for tests of asynchronous driving.

Outcomes come from ``evaluate`` (by default the real evaluation), run when the clock
reaches their finish; its own time is not charged (it is the workers', not the driver's).
Tasks that finish at the same virtual instant are returned together, in submission order.
"""

from __future__ import annotations

import collections
import heapq
import time
from collections.abc import Callable, Iterator, Sequence

from hwsearch.workers.base import Executor
from hwsearch.workers.evaluation import EvalOutcome, EvalTask, evaluate_safely

__all__ = ["SimulatedExecutor"]


class SimulatedExecutor(Executor):
    """``workers`` workers on a virtual clock (see the module docstring)."""

    def __init__(
        self,
        *,
        workers: int,
        duration: Callable[[EvalTask], float],
        evaluate: Callable[[EvalTask], EvalOutcome] = evaluate_safely,
        charge_caller: bool = False,
    ) -> None:
        if isinstance(workers, bool) or workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers!r}")
        self._workers = workers
        self._duration = duration
        self._evaluate = evaluate
        self._charge = charge_caller
        self.now = 0.0  #: the virtual clock, seconds
        self.busy_s = 0.0  #: virtual seconds workers spent evaluating
        self.caller_s = 0.0  #: real seconds charged for the caller's work
        #: (candidate id, virtual start, virtual finish) of every task started, in order
        self.history: list[tuple[int, float, float]] = []
        self._running: list[tuple[float, int, EvalTask]] = []  # (finish, order, task) heap
        self._queue: collections.deque[tuple[int, EvalTask]] = collections.deque()
        self._order = 0
        self._last: float | None = None  # when control last went back to the caller

    @property
    def max_workers(self) -> int:
        return self._workers

    @property
    def runs_one_at_a_time(self) -> bool:
        """With one worker: tasks never overlap on the virtual clock, and each outcome is
        evaluated inside :meth:`wait`, after the one before it was returned, as in process.
        (Tasks of zero duration finish at one instant and come back from one ``wait``.)"""
        return self._workers == 1

    @property
    def in_flight(self) -> int:
        return len(self._running) + len(self._queue)

    def efficiency(self, until: float | None = None) -> float:
        """Busy worker time over the elapsed time of every worker, from the start to
        ``until`` (virtual seconds; by default the whole run so far)."""
        end = self.now if until is None else until
        if end <= 0:
            return 0.0
        busy = sum(max(0.0, min(finish, end) - start) for _, start, finish in self.history)
        return busy / (end * self._workers)

    def steady_efficiency(self) -> float:
        """:meth:`efficiency` until the last task started: while there was work to give out,
        leaving aside the end of the run, where workers go idle as the last ones finish
        whatever the driver does."""
        return self.efficiency(max((start for _, start, _ in self.history), default=0.0))

    def _enter(self) -> None:
        """Charge the caller's time since the last call to the clock."""
        if self._charge and self._last is not None:
            spent = time.perf_counter() - self._last
            self.now += spent
            self.caller_s += spent

    def _leave(self) -> None:
        self._last = time.perf_counter()

    def _start(self, order: int, task: EvalTask, at: float) -> None:
        seconds = float(self._duration(task))
        if not seconds >= 0:
            raise ValueError(f"duration of candidate {task.candidate_id} is {seconds!r}")
        self.busy_s += seconds
        self.history.append((task.candidate_id, at, at + seconds))
        heapq.heappush(self._running, (at + seconds, order, task))

    def submit(self, task: EvalTask) -> None:
        self._enter()
        if len(self._running) < self._workers:
            self._start(self._order, task, self.now)
        else:
            self._queue.append((self._order, task))
        self._order += 1
        self._leave()

    def wait(self, timeout: float | None = None) -> list[EvalOutcome]:
        """Every task finished by now; if none, the clock moves to the next finish."""
        self._enter()
        if not self._running:
            self._leave()
            return []
        self.now = max(self.now, self._running[0][0])
        finished: list[tuple[float, int, EvalTask]] = []
        while self._running and self._running[0][0] <= self.now:
            finish, order, task = heapq.heappop(self._running)
            finished.append((finish, order, task))
            if self._queue:  # the freed worker takes the next queued task at once
                next_order, queued = self._queue.popleft()
                self._start(next_order, queued, finish)
        finished.sort(key=lambda item: (item[0], item[1]))
        outcomes = [self._evaluate(task) for _, _, task in finished]
        self._leave()
        return outcomes

    def cancel(self) -> None:
        self._running.clear()
        self._queue.clear()

    def run(self, tasks: Sequence[EvalTask]) -> Iterator[EvalOutcome]:
        for task in tasks:
            self.submit(task)
        wanted = {task.candidate_id for task in tasks}
        while wanted:
            outcomes = self.wait()
            if not outcomes:
                return
            for outcome in outcomes:
                wanted.discard(outcome.candidate_id)
                yield outcome
