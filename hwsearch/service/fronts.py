"""Reading a job's Pareto front back from the store, filtered and sorted, in three formats."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from typing import Any

from hwsearch.db import Store
from hwsearch.errors import FilterError, NotFoundError
from hwsearch.metrics import metric_names, tagged_in_order
from hwsearch.records import CandidateRecord, FrontRecord
from hwsearch.search.filters import parse_filter


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


# -- the one point format: REST front pages, the CLI's JSON and its CSV -------------------


def candidate_payload(
    candidate: CandidateRecord, metrics: list[str] | None = None
) -> dict[str, Any]:
    """A candidate as JSON: ``id`` and its fields, each metric (all, or those of
    ``metrics`` it has, in that order) with value, provenance, target and every detail."""
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


def point_payload(
    candidate: CandidateRecord, measured: bool, metrics: list[str] | None = None
) -> dict[str, Any]:
    """A front point: its candidate (:func:`candidate_payload`) and ``measured``, whether
    no objective of it was predicted. REST pages, ``front -f json`` and ``-f csv`` all
    write this."""
    return {**candidate_payload(candidate, metrics), "measured": measured}


def front_head(view: FrontView) -> dict[str, Any]:
    """What a front says besides its points; ``size`` is the front, ``count`` the points
    kept by the filter. The hypervolume is against this job's own reference point."""
    front = view.front
    return {
        "job_id": front.job_id,
        "generation": front.generation,
        "objectives": [
            {"metric": m, "direction": d}
            for m, d in zip(front.objectives, front.directions, strict=True)
        ],
        "reference_point": front.reference_point,
        "hypervolume": front.hypervolume,
        "evaluations": front.evaluations,
        "size": len(front.points),
        "count": len(view.candidates),
    }


def to_json(view: FrontView) -> str:
    """The front as ``GET /jobs/{id}/front`` sends it (without paging): every point in
    :func:`point_payload`'s format."""
    data = {
        **front_head(view),
        "points": [point_payload(c, _measured(view, c)) for c in view.candidates],
    }
    return json.dumps(data, indent=2)


#: The point's own fields, first in every CSV row (as :func:`point_payload` names them).
CSV_FIELDS = ("id", "job_id", "config_hash", "generation", "status", "feasible", "measured")


def csv_metrics(view: FrontView) -> list[str]:
    """Every metric any point has: objectives, the registry's in its order, then others."""
    have = {name for c in view.candidates for name in c.metrics}
    ordered = [m for m in (*view.front.objectives, *metric_names()) if m in have]
    ordered = list(dict.fromkeys(ordered))
    return [*ordered, *sorted(have - set(ordered))]


def to_csv(view: FrontView) -> str:
    """One row per point, flattening :func:`point_payload`: the point's fields, each
    metric's value and provenance (empty where a point lacks it), then the config as JSON."""
    out = io.StringIO()
    writer = csv.writer(out)
    metrics = csv_metrics(view)
    writer.writerow([*CSV_FIELDS, *metrics, *(f"{m}_provenance" for m in metrics), "config"])
    for c in view.candidates:
        point = point_payload(c, _measured(view, c))
        values = point["metrics"]
        writer.writerow(
            [
                *(point[name] for name in CSV_FIELDS),
                *(repr_value(values[m]["value"]) if m in values else "" for m in metrics),
                *(values[m]["provenance"] if m in values else "" for m in metrics),
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
