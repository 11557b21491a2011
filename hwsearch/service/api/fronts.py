"""Fronts served by the API: read once per front with :func:`load_front`, then filtered,
sorted and paged in memory for every request.

A stored front never changes (a running job adds a new one per generation), so a job's
front is cached by the id of its newest front. Whether a newer front exists is asked of the
database at most every ``refresh_s`` seconds per job, so a running job's new generation
shows within that time and requests in between touch no database at all.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from hwsearch.db import Store
from hwsearch.errors import FilterError, NotFoundError
from hwsearch.records import CandidateRecord
from hwsearch.search.filters import Filter
from hwsearch.service.fronts import FrontView, load_front


@dataclass(frozen=True)
class CachedFront:
    view: FrontView
    known: list[str]  # every metric a point has, for filters and sorting
    measured: dict[int, bool]
    values: list[dict[str, float]]  # per candidate of view.candidates, for filters
    encoded: dict[int, str]  # candidate id -> its point as JSON, every metric


@dataclass(frozen=True)
class FrontSelection:
    front: CachedFront
    candidates: list[CandidateRecord]  # matching, sorted, this page only
    count: int  # matching, all pages


class FrontCache:
    """The newest front of the most recently asked ``max_jobs`` jobs."""

    def __init__(self, store: Store, *, max_jobs: int = 32, refresh_s: float = 0.5) -> None:
        self._store = store
        self._max = max_jobs
        self._refresh = refresh_s
        self._lock = threading.Lock()
        # job id -> (front id, when it was last checked to be the newest, the front)
        self._entries: OrderedDict[int, tuple[int, float, CachedFront]] = OrderedDict()

    def peek(self, job_id: int) -> CachedFront | None:
        """The cached front if it was checked within ``refresh_s``; no database access."""
        with self._lock:
            hit = self._entries.get(job_id)
        if hit is not None and time.monotonic() - hit[1] < self._refresh:
            return hit[2]
        return None

    def get(self, job_id: int) -> CachedFront:
        """The job's newest front; ``NotFoundError`` for an unknown job or one without a front."""
        checked = time.monotonic()
        front_id = self._store.latest_front_id(job_id)
        if front_id is None:
            raise NotFoundError(f"job {job_id} has no front yet")
        with self._lock:
            hit = self._entries.get(job_id)
            if hit is not None and hit[0] == front_id:
                self._entries[job_id] = (front_id, checked, hit[2])
                self._entries.move_to_end(job_id)
                return hit[2]
        view = load_front(self._store, job_id)
        known = sorted({n for c in view.candidates for n in c.metrics} | set(view.front.objectives))
        measured = {p.candidate_id: p.measured for p in view.front.points}
        cached = CachedFront(
            view=view,
            known=known,
            measured=measured,
            values=[{k: m.value for k, m in c.metrics.items()} for c in view.candidates],
            encoded={
                c.id: json.dumps(point_payload(c, measured[c.id], None), allow_nan=False)
                for c in view.candidates
            },
        )
        with self._lock:
            self._entries[job_id] = (view.front.id, checked, cached)
            self._entries.move_to_end(job_id)
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)
        return cached


def select_points(
    cached: CachedFront,
    *,
    keep: Filter | None,
    sort: str | None,
    measured_only: bool,
    offset: int,
    limit: int,
) -> FrontSelection:
    """Points that ``keep`` (a parsed filter) accepts, sorted by ``sort`` (a metric, ``-``
    prefix for descending; points without it last), one page of them."""
    rows = [
        (c, values)
        for c, values in zip(cached.view.candidates, cached.values, strict=True)
        if (not measured_only or cached.measured.get(c.id, False))
        and (keep is None or keep(values))
    ]
    if sort:
        descending = sort.startswith("-")
        metric = sort.lstrip("-")
        if metric not in cached.known:
            raise FilterError(
                f"cannot sort by unknown metric {metric!r}; known: {', '.join(cached.known)}"
            )

        def key(row: tuple[CandidateRecord, dict[str, float]]) -> tuple[bool, float]:
            value = row[1].get(metric, math.nan)
            missing = math.isnan(value)
            return (missing, 0.0 if missing else (-value if descending else value))

        rows.sort(key=key)
    page = [c for c, _ in rows[offset : offset + limit]]
    return FrontSelection(cached, page, len(rows))


def metric_subset(cached: CachedFront, metrics: str | None) -> list[str] | None:
    """The metric names of a ``metrics=a,b`` query, checked; ``None`` keeps them all."""
    if metrics is None:
        return None
    names = [m.strip() for m in metrics.split(",") if m.strip()]
    unknown = [m for m in names if m not in cached.known]
    if not names or unknown:
        raise FilterError(
            f"unknown metric(s) {', '.join(map(repr, unknown)) or '(none given)'}; "
            f"known: {', '.join(cached.known)}"
        )
    return names


def point_payload(
    candidate: CandidateRecord, measured: bool, metrics: list[str] | None
) -> dict[str, Any]:
    return {
        **candidate_payload(candidate, metrics),
        "measured": measured,
    }


def candidate_payload(
    candidate: CandidateRecord, metrics: list[str] | None = None
) -> dict[str, Any]:
    names = sorted(candidate.metrics) if metrics is None else metrics
    return {
        "id": candidate.id,
        "job_id": candidate.job_id,
        "config_hash": candidate.config_hash,
        "config": candidate.config,
        "generation": candidate.generation,
        "status": candidate.status.value,
        "feasible": candidate.feasible,
        "error": candidate.error,
        "metrics": {
            name: {
                "value": m.value,
                "provenance": m.provenance.value,
                "target": m.target,
                "details": m.details,
            }
            for name in names
            if (m := candidate.metrics.get(name)) is not None
        },
    }
