"""Plain records passed between layers.

These dataclasses carry no ORM or torch state, so every package (``db`` included) can use
them. Storage functions return them instead of ORM rows.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


class Provenance(enum.StrEnum):
    """Where a stored number came from."""

    MEASURED = "measured"  # taken on the target: details hold device, software, repeats, dispersion
    PREDICTED = "predicted"  # from a predictor: details hold its version and the uncertainty
    ESTIMATED = "estimated"  # computed by a stated model (e.g. size from bit-widths)


class JobState(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"
    CANCELLED = "cancelled"


class CandidateStatus(enum.StrEnum):
    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"


@dataclass(frozen=True)
class MetricValue:
    """One number about one candidate, with where it came from."""

    name: str
    value: float
    provenance: Provenance
    target: str = ""
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class JobRecord:
    id: int
    name: str
    family: str
    target: str
    state: JobState
    spec: dict[str, Any]
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    evaluations: int = 0
    error: str | None = None


@dataclass(frozen=True)
class CandidateRecord:
    id: int
    job_id: int
    config_hash: str
    config: dict[str, Any]
    generation: int
    status: CandidateStatus
    feasible: bool | None = None
    error: str | None = None
    metrics: dict[str, MetricValue] = field(default_factory=dict)


@dataclass(frozen=True)
class FrontPoint:
    candidate_id: int
    config_hash: str
    values: dict[str, float]
    measured: bool  # every objective of this point comes from a real measurement


@dataclass(frozen=True)
class FrontRecord:
    id: int
    job_id: int
    generation: int
    objectives: list[str]  # metric names, in the order of `reference_point`
    directions: list[str]  # "minimize" / "maximize", one per objective
    reference_point: list[float]
    hypervolume: float
    evaluations: int  # candidates evaluated when this front was taken
    points: list[FrontPoint] = field(default_factory=list)
