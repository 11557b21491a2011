"""Plain records passed between layers.

These dataclasses carry no ORM or torch state, so every package (``db`` included) can use
them. Storage functions return them instead of ORM rows.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple


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
    # Stopped by Ctrl-C, SIGTERM or a server shutdown, with every finished candidate kept:
    # ``hwsearch resume`` continues it.
    INTERRUPTED = "interrupted"


class TokenScope(enum.StrEnum):
    """What an API token may do: ``read`` queries; ``submit`` also submits jobs and cancels
    its own; ``admin`` also cancels anyone's. ``WRITE`` is the former name of ``SUBMIT``."""

    READ = "read"
    SUBMIT = "submit"
    ADMIN = "admin"
    WRITE = "submit"


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
    evaluations: int = 0  # candidates done
    error: str | None = None
    lease: Lease | None = None  # who drives the job now (or last did); see hwsearch.db.leases
    owner_token_id: int | None = None  # the API token that submitted it
    failed: int = 0  # candidates whose evaluation raised: they count against the budget too

    def stale(self, now: datetime | None = None) -> bool:
        """Running, but its driver stopped renewing the lease (killed, or lost the database):
        any runner, or ``hwsearch resume``, may take it over."""
        if self.state is not JobState.RUNNING:
            return False
        return self.lease is None or self.lease.expired(now)

    def shown_state(self, now: datetime | None = None) -> JobState:
        """The state to show a user: a stale running job (its driver killed, its lease
        expired) is ``interrupted``, which it is, whatever the row still says."""
        return JobState.INTERRUPTED if self.stale(now) else self.state


@dataclass(frozen=True)
class Lease:
    """The driver holding a job: runner id, host and process, last heartbeat, expiry."""

    owner: str
    host: str
    pid: int
    heartbeat_at: datetime
    expires_at: datetime

    def expired(self, now: datetime | None = None) -> bool:
        return self.expires_at <= (now or datetime.now(UTC))


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


@dataclass(frozen=True)
class TokenRecord:
    """An API token as stored: its secret is never kept, only the SHA-256 digest of it."""

    id: int
    name: str
    scope: TokenScope
    created_at: datetime
    revoked: bool = False


@dataclass(frozen=True)
class HypervolumePoint:
    """One generation of a job's hypervolume history (a front without its points)."""

    generation: int
    evaluations: int
    hypervolume: float
    points: int  # size of the front


@dataclass(frozen=True)
class TargetRecord:
    """A stored target profile (see ``hwsearch.hardware.profiles.TargetProfile``): the
    factors energy and carbon accounting use, and where each comes from."""

    name: str
    kind: str  # "cpu", "cuda" or "table"
    tdp_w: float
    cores: int
    embodied_kgco2e: float
    lifetime_years: float
    busy_share: float
    region: str
    pue: float
    grid_gco2e_per_kwh: float | None
    meter: str
    sources: dict[str, str]
    created_at: datetime
    updated_at: datetime

    def profile_data(self) -> dict[str, Any]:
        """The profile fields, as ``TargetProfile.from_dict`` takes them."""
        return {
            "name": self.name,
            "kind": self.kind,
            "tdp_w": self.tdp_w,
            "cores": self.cores,
            "embodied_kgco2e": self.embodied_kgco2e,
            "lifetime_years": self.lifetime_years,
            "busy_share": self.busy_share,
            "region": self.region,
            "pue": self.pue,
            "grid_gco2e_per_kwh": self.grid_gco2e_per_kwh,
            "meter": self.meter,
            "sources": dict(self.sources),
        }


@dataclass(frozen=True)
class PredictorRecord:
    """A stored, fitted predictor (``state`` is its JSON form) and how well it did."""

    id: int
    family: str
    target: str
    metric: str
    version: int
    kind: str
    training_size: int
    features: list[str]
    metrics: dict[str, float]
    state: dict[str, Any]
    created_at: datetime


@dataclass(frozen=True)
class PredictionRecord:
    """What a predictor said of one metric of a candidate before (or instead of) measuring
    it; ``measured`` is the value measured since, if any."""

    candidate_id: int
    metric: str
    value: float
    std: float
    predictor_id: int | None
    predictor_version: int | None = None
    measured: float | None = None


# -- what callers hand to the store (named tuples: a plain tuple of the same fields is
# accepted too) ---------------------------------------------------------------------------


class NewCandidate(NamedTuple):
    """A candidate to add to a job (``Store.add_candidates``)."""

    config_hash: str
    config: dict[str, Any]
    generation: int


class CandidateResult(NamedTuple):
    """A finished candidate's metrics (``Store.record_results``)."""

    candidate_id: int
    metrics: Sequence[MetricValue]
    feasible: bool


class NewFront(NamedTuple):
    """The Pareto front of one generation of a job (``Store.save_front``, or with the
    results it follows from, ``Store.record_results``)."""

    job_id: int
    generation: int
    objectives: Sequence[str]
    directions: Sequence[str]
    reference_point: Sequence[float]
    hypervolume: float
    evaluations: int
    points: Sequence[FrontPoint]


class DriverEvent(NamedTuple):
    """One step of a job's driver, in the order it happened (``Store.append_events``).

    ``kind`` is ``"async"`` or ``"generational"`` (the first event of a job: how it is
    driven; ``value`` 0), ``"ask"`` (``value`` suggestions asked of the optimizer at once)
    or ``"tell"`` (the result of the job's ``value``-th suggestion, counted from 0 over
    every ask, told to the optimizer)."""

    kind: str
    value: int


class CandidateFailure(NamedTuple):
    """A candidate whose evaluation failed, with the reason (``Store.record_results``)."""

    candidate_id: int
    error: str


class MeasuredConfig(NamedTuple):
    """A config with one stored value of a metric (``Store.measured_values``)."""

    config_hash: str
    config: dict[str, Any]
    value: float
