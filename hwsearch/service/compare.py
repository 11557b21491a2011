"""Jobs compared on one hypervolume reference point (``hwsearch compare``).

A job's stored hypervolume is measured against its own reference point (the spec's, or
its first generation's worst values plus 10% of their range), so two jobs' figures do not
compare. Here every job's latest front is measured again against one common point: the
one given, else the worst value among all the fronts' points plus 10% of their range, per
objective. The fronts must share their objectives (metrics and directions). The joint
front — the non-dominated points of all the fronts together — says how many points each
job contributes to the best trade-offs found by any of them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from hwsearch.errors import SpecError
from hwsearch.search.pareto import default_reference_point, hypervolume, pareto_front
from hwsearch.service.fronts import FrontView

__all__ = ["Comparison", "JobComparison", "compare_fronts", "parse_reference"]


@dataclass(frozen=True)
class JobComparison:
    """One job's front measured on the common reference point."""

    job_id: int
    points: int  # on its latest front
    evaluations: int
    own_hypervolume: float  # as stored: against the job's own reference point
    own_reference: list[float]
    hypervolume: float  # against the common reference point
    on_joint_front: int  # of its points, how many are on the joint front


@dataclass(frozen=True)
class Comparison:
    objectives: list[str]
    directions: list[str]
    reference: list[float]  # the common reference point, per objective
    reference_given: bool
    jobs: list[JobComparison]
    joint_hypervolume: float  # of all the fronts together


def parse_reference(text: str | None, objectives: Sequence[str]) -> dict[str, float]:
    """``accuracy=0.5,latency_ms=20`` as a mapping; every name must be an objective."""
    if not text:
        return {}
    given: dict[str, float] = {}
    for part in text.split(","):
        name, sep, value = part.partition("=")
        name = name.strip()
        if not sep or not name:
            raise SpecError("--reference", f"expected METRIC=VALUE, got {part.strip()!r}")
        if name not in objectives:
            raise SpecError(
                "--reference", f"{name!r} is not an objective; objectives: {', '.join(objectives)}"
            )
        try:
            number = float(value)
        except ValueError:
            raise SpecError("--reference", f"{name}: {value.strip()!r} is not a number") from None
        if not np.isfinite(number):
            raise SpecError("--reference", f"{name}: must be finite, got {value.strip()!r}")
        given[name] = number
    return given


def compare_fronts(views: Sequence[FrontView], reference: Mapping[str, float]) -> Comparison:
    """Each view's front measured against one reference point (``reference`` where it
    names an objective, derived from all the fronts' points for the others)."""
    if len(views) < 2:
        raise SpecError("JOB", "name at least two jobs to compare")
    first = views[0].front
    objectives, directions = list(first.objectives), list(first.directions)
    wanted = dict(zip(objectives, directions, strict=True))
    for view in views[1:]:
        theirs = dict(zip(view.front.objectives, view.front.directions, strict=True))
        if theirs != wanted:
            raise SpecError(
                "JOB",
                f"job {view.front.job_id} has objectives {_said(theirs)}, job {first.job_id} "
                f"{_said(wanted)}: only jobs with the same objectives compare",
            )
    per_job = [
        np.array(
            [[p.values[m] for m in objectives] for p in view.front.points], dtype=float
        ).reshape(len(view.front.points), len(objectives))
        for view in views
    ]
    everything = np.vstack(per_job)
    if not len(everything):
        raise SpecError("JOB", "the jobs' fronts have no points")
    derived = default_reference_point(everything, directions)
    point = [
        float(reference[m]) if m in reference else float(d)
        for m, d in zip(objectives, derived, strict=True)
    ]
    joint = set(pareto_front(everything, directions).tolist())
    jobs = []
    start = 0
    for view, values in zip(views, per_job, strict=True):
        rows = range(start, start + len(values))
        start += len(values)
        jobs.append(
            JobComparison(
                job_id=view.front.job_id,
                points=len(values),
                evaluations=view.front.evaluations,
                own_hypervolume=view.front.hypervolume,
                own_reference=list(view.front.reference_point),
                hypervolume=hypervolume(values, directions, point) if len(values) else 0.0,
                on_joint_front=sum(i in joint for i in rows),
            )
        )
    return Comparison(
        objectives=objectives,
        directions=directions,
        reference=point,
        reference_given=bool(reference),
        jobs=jobs,
        joint_hypervolume=hypervolume(everything, directions, point),
    )


def _said(objectives: Mapping[str, str]) -> str:
    return ", ".join(f"{m} ({d})" for m, d in objectives.items())
