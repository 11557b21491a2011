"""Reading a job's Pareto front back from the store, filtered and sorted, in three formats."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from typing import Any

from hwsearch.db import Store
from hwsearch.errors import FilterError, NotFoundError
from hwsearch.metrics import tagged_in_order
from hwsearch.records import CandidateRecord, FrontRecord
from hwsearch.search.filters import parse_filter

# Details of a metric worth showing beside its value: how settled a timing was, which
# kernels ran, where a value measured elsewhere came from.
SHOWN_DETAILS: tuple[str, ...] = (
    *("converged", "cv", "noisy", "repeats", "kernel_path", "source", "column", "reused"),
    # ... and for energy and carbon: the meter and the factors used.
    *("meter", "energy_provenance", "region", "grid_gco2e_per_kwh", "pue"),
)


def extra_metrics() -> tuple[str, ...]:
    """Metrics shown in tables after the objectives, when the candidate has them: those the
    registry tags ``shown`` (:mod:`hwsearch.metrics`)."""
    return tagged_in_order("shown")


@dataclass(frozen=True)
class FrontView:
    """A job's latest front: its record and the full candidates on it, in display order."""

    front: FrontRecord
    candidates: list[CandidateRecord]

    @property
    def columns(self) -> list[str]:
        """Objectives first, then other well-known metrics that every point has."""
        extra = [
            m
            for m in extra_metrics()
            if m not in self.front.objectives and all(m in c.metrics for c in self.candidates)
        ]
        return [*self.front.objectives, *extra]


def load_front(
    store: Store, job_id: int, *, where: str | None = None, sort: str | None = None
) -> FrontView:
    """The latest front of ``job_id``, keeping the points that match ``where``, sorted by ``sort``.

    ``sort`` is a metric name, ascending; prefix it with ``-`` for descending.
    """
    store.get_job(job_id)  # NotFoundError for an unknown job
    front = store.latest_front(job_id)
    if front is None:
        raise NotFoundError(f"job {job_id} has no front yet")
    candidates = [store.get_candidate(job_id, p.candidate_id) for p in front.points]
    known = sorted({name for c in candidates for name in c.metrics} | set(front.objectives))
    if where:
        keep = parse_filter(where, known)
        candidates = [c for c in candidates if keep({k: m.value for k, m in c.metrics.items()})]
    if sort:
        descending = sort.startswith("-")
        metric = sort.lstrip("-")
        if metric not in known:
            raise FilterError(
                f"cannot sort by unknown metric {metric!r}; known: {', '.join(known)}"
            )
        candidates.sort(key=lambda c: c.metrics[metric].value, reverse=descending)
    return FrontView(front, candidates)


def _measured(view: FrontView, candidate: CandidateRecord) -> bool:
    return next(p.measured for p in view.front.points if p.candidate_id == candidate.id)


def to_json(view: FrontView) -> str:
    """Every point with its config and every metric with value, provenance and target."""
    data: dict[str, Any] = {
        "job_id": view.front.job_id,
        "generation": view.front.generation,
        "objectives": [
            {"metric": m, "direction": d}
            for m, d in zip(view.front.objectives, view.front.directions, strict=True)
        ],
        "reference_point": view.front.reference_point,
        "hypervolume": view.front.hypervolume,
        "evaluations": view.front.evaluations,
        "points": [
            {
                "candidate_id": c.id,
                "config_hash": c.config_hash,
                "measured": _measured(view, c),
                "config": c.config,
                "metrics": {
                    name: {
                        "value": m.value,
                        "provenance": m.provenance.value,
                        "target": m.target,
                        "details": {k: m.details[k] for k in SHOWN_DETAILS if k in m.details},
                    }
                    for name, m in sorted(c.metrics.items())
                },
            }
            for c in view.candidates
        ],
    }
    return json.dumps(data, indent=2)


def to_csv(view: FrontView) -> str:
    """One row per point: id, measured, each column's value and provenance, then the config."""
    out = io.StringIO()
    writer = csv.writer(out)
    columns = view.columns
    writer.writerow(
        ["candidate_id", "measured", *columns, *(f"{c}_provenance" for c in columns), "config"]
    )
    for c in view.candidates:
        writer.writerow(
            [
                c.id,
                _measured(view, c),
                *(repr_value(c.metrics[col].value) for col in columns),
                *(c.metrics[col].provenance.value for col in columns),
                json.dumps(c.config, sort_keys=True),
            ]
        )
    return out.getvalue()


def repr_value(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.6g}"


def unsettled_timing(candidate: CandidateRecord) -> float | None:
    """The latency dispersion of a candidate whose timing never settled, else None."""
    latency = candidate.metrics.get("latency_ms")
    if latency is None or latency.details.get("converged", True):
        return None
    return float(latency.details.get("cv", float("nan")))
