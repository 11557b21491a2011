"""The Pareto front of a job's evaluated candidates, and its hypervolume."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from hwsearch.records import CandidateRecord, CandidateStatus, FrontPoint, Provenance
from hwsearch.search.objectives import Objective
from hwsearch.search.pareto import default_reference_point, hypervolume, pareto_front


def _scored(
    candidates: Sequence[CandidateRecord], objectives: Sequence[Objective]
) -> list[CandidateRecord]:
    """Candidates that finished and have a value for every objective."""
    return [
        c
        for c in candidates
        if c.status == CandidateStatus.DONE and all(o.metric in c.metrics for o in objectives)
    ]


def _values(candidates: Sequence[CandidateRecord], objectives: Sequence[Objective]) -> np.ndarray:
    return np.array(
        [[c.metrics[o.metric].value for o in objectives] for c in candidates], dtype=float
    ).reshape(len(candidates), len(objectives))


def reference_point(
    candidates: Sequence[CandidateRecord], objectives: Sequence[Objective]
) -> list[float]:
    """The hypervolume reference point: the spec's where given, else derived from the data.

    Derived coordinates are the worst value seen plus 10% of the range
    (:func:`default_reference_point`). The driver fixes the point once, after the first
    generation, so that the hypervolumes of later generations can be compared.
    """
    scored = _scored(candidates, objectives)
    directions = [o.direction for o in objectives]
    derived = (
        default_reference_point(_values(scored, objectives), directions)
        if scored
        else [float("nan")] * len(objectives)
    )
    return [
        float(o.reference) if o.reference is not None else float(d)
        for o, d in zip(objectives, derived, strict=True)
    ]


def compute_front(
    candidates: Sequence[CandidateRecord],
    objectives: Sequence[Objective],
    reference: Sequence[float],
) -> tuple[list[FrontPoint], float]:
    """Non-dominated feasible candidates (ordered by the first objective) and their hypervolume.

    A point is marked ``measured`` when none of its objective values comes from a predictor.
    """
    scored = _scored(candidates, objectives)
    if not scored:
        return [], 0.0
    directions = [o.direction for o in objectives]
    values = _values(scored, objectives)
    feasible = np.array([bool(c.feasible) for c in scored])
    indices = pareto_front(values, directions, feasible)
    if len(indices) == 0:
        return [], 0.0
    volume = float(hypervolume(values[indices], directions, list(reference)))
    first_sign = -1.0 if directions[0] == "maximize" else 1.0
    ordered = sorted(indices, key=lambda i: (first_sign * values[i, 0], scored[i].id))
    points = [
        FrontPoint(
            candidate_id=scored[i].id,
            config_hash=scored[i].config_hash,
            values={o.metric: float(values[i, k]) for k, o in enumerate(objectives)},
            measured=all(
                scored[i].metrics[o.metric].provenance != Provenance.PREDICTED for o in objectives
            ),
        )
        for i in ordered
    ]
    return points, volume
