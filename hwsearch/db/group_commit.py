"""Group commit: the outcomes of evaluations that finish together, stored in one transaction.

A commit costs a round trip and, on PostgreSQL, a flush of the write-ahead log to disk
(0.5-4 ms on a busy disk), whatever it holds. Evaluations that finish within
:data:`WINDOW_S` of each other are therefore held and stored together, with one
:meth:`~hwsearch.db.store.Store.record_results` call (one transaction, a fixed number of
statements). An outcome is written at once, as before, when it took longer than the window
to arrive (a real evaluation: the next one will take as long, and the result should not
wait for it); otherwise it waits until the group it belongs to is older than the window,
holds :data:`MAX_SIZE` outcomes, or its holder calls :meth:`GroupCommit.flush` — the driver
does before it tells the optimizer, before it asks a stop hook, and when it stops. At the
end of a generation the driver hands it the generation's front too, stored in the same
transaction as the last outcomes.

The driver also flushes after each batch of outcomes its executor hands back at once,
unless the executor says it runs evaluations one at a time
(:attr:`~hwsearch.workers.base.Executor.runs_one_at_a_time`, whatever its worker count):
where evaluations may overlap a fast arrival says nothing of what an evaluation cost, so
nothing is held while it waits for a further one. With evaluations run one at a time, a
held outcome took less than the window to evaluate; it waits for the next arrival, so a
driver killed meanwhile loses at most a window's worth of evaluation, which its job's
resume evaluates again. Either way every result is stored before it is told.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Protocol

from hwsearch.errors import HwsearchError
from hwsearch.records import CandidateFailure, CandidateResult, MetricValue, NewFront

__all__ = ["MAX_SIZE", "WINDOW_S", "GroupCommit"]

#: outcomes arriving this close together (seconds) are stored together
WINDOW_S = 0.05
#: at most this many outcomes in one transaction
MAX_SIZE = 256


class RecordsResults(Protocol):
    """What :class:`GroupCommit` needs of a store (a :class:`~hwsearch.db.store.Store`)."""

    def record_results(
        self,
        results: Sequence[CandidateResult],
        *,
        context: str | None = None,
        failures: Sequence[CandidateFailure] = (),
        front: NewFront | None = None,
    ) -> None: ...


class GroupCommit:
    """Holds results and failures briefly and stores them in groups (see the module).

    ``before_write`` runs before each write (the driver checks its lease there: a driver
    that lost its job writes nothing more). Not thread-safe: one driver loop owns it.
    """

    def __init__(
        self,
        store: RecordsResults,
        *,
        context: str | None = None,
        window_s: float = WINDOW_S,
        max_size: int = MAX_SIZE,
        before_write: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not window_s >= 0:
            raise ValueError(f"window_s must be non-negative, got {window_s!r}")
        if max_size < 1:
            raise ValueError(f"max_size must be at least 1, got {max_size!r}")
        self._store = store
        self._context = context
        self._window = window_s
        self._max_size = max_size
        self._before_write = before_write or (lambda: None)
        self._clock = clock
        self._results: list[CandidateResult] = []
        self._failures: list[CandidateFailure] = []
        self._last = clock()  # the last arrival, or the start of the evaluations
        self._first = self._last  # the arrival of the oldest held outcome
        self.commits = 0  # transactions written, for the benchmarks

    @property
    def pending(self) -> int:
        """Outcomes held, not yet stored."""
        return len(self._results) + len(self._failures)

    def start(self) -> None:
        """Evaluations start now: the first outcome's arrival is measured from here."""
        self._last = self._clock()

    def add_result(
        self, candidate_id: int, metrics: Sequence[MetricValue], *, feasible: bool
    ) -> None:
        """A finished candidate's metrics; stored now or with its group."""
        self._results.append(CandidateResult(candidate_id, list(metrics), feasible))
        self._arrived()

    def add_failure(self, candidate_id: int, error: str) -> None:
        """A failed candidate with its reason; stored now or with its group."""
        self._failures.append(CandidateFailure(candidate_id, error))
        self._arrived()

    def flush(self, *, front: NewFront | None = None) -> None:
        """Store every held outcome, and ``front`` where given (the front they complete),
        in one transaction. The held outcomes are let go whether or not the write lands:
        on an error they stay pending in the database, and a resume evaluates them again.
        A front that cannot be stored does not take its outcomes with it: they are stored
        without it before the front's error is raised."""
        if not self.pending and front is None:
            return
        results, failures = self._results, self._failures
        self._results, self._failures = [], []
        self._before_write()
        if front is None:
            self._store.record_results(results, context=self._context, failures=failures)
            self.commits += 1
            return
        try:
            self._store.record_results(
                results, context=self._context, failures=failures, front=front
            )
        except HwsearchError:  # the front refused, not the database away: keep the outcomes
            if results or failures:
                self._store.record_results(results, context=self._context, failures=failures)
                self.commits += 1
            raise
        self.commits += 1

    def _arrived(self) -> None:
        now = self._clock()
        slow = now - self._last >= self._window
        self._last = now
        if self.pending == 1:
            self._first = now
        if slow or now - self._first >= self._window or self.pending >= self._max_size:
            self.flush()
