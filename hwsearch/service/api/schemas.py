"""Request and response bodies, one family per resource (Create / Public / list with count)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from hwsearch.records import CandidateStatus, JobState, Provenance

# -- errors ------------------------------------------------------------------------------


class FieldProblem(BaseModel):
    field: str = Field(description="Dotted path of the offending field, e.g. 'budget.evaluations'.")
    reason: str


class ErrorPublic(BaseModel):
    """Every error response: a message, and for bad input each problem by field."""

    detail: str
    errors: list[FieldProblem] = Field(default_factory=list)


# -- jobs --------------------------------------------------------------------------------


class JobCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    spec: dict[str, Any] = Field(
        description="A job spec as in the YAML files (docs/spec.md); table paths are read "
        "from the server's table folders."
    )


class DriverPublic(BaseModel):
    """The lease of the driver that runs the job now, or ran it last."""

    runner: str = Field(description="Id of the runner (or CLI process) holding the lease.")
    host: str
    pid: int
    heartbeat_at: datetime = Field(description="Its last renewal of the lease.")
    lease_expires_at: datetime = Field(description="When another driver may take over.")


class JobPublic(BaseModel):
    id: int
    name: str
    family: str
    target: str
    state: JobState = Field(description="The stored state.")
    shown_state: JobState = Field(
        description="The state to show: `interrupted` for a running job whose driver is gone "
        "(stale), else `state`."
    )
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    evaluations: int = Field(
        description="Candidates settled so far: measured, reused, or predicted (active learning)."
    )
    measured: int = Field(description="Of them, measured or reused: what the budget counts.")
    failed: int = Field(
        default=0,
        description="Candidates whose evaluation raised (the reason is on each candidate): "
        "not among `evaluations`, but the budget counts them too.",
    )
    predicted: int = Field(
        default=0, description="Of them, settled by prediction (active learning), not measured."
    )
    budget_evaluations: int | None = Field(description="The spec's evaluation budget, if any.")
    progress: float | None = Field(
        description="(measured + failed) / budget_evaluations, at most 1, however the job ended."
    )
    error: str | None
    stale: bool = Field(
        default=False,
        description="Running, but its driver's lease expired (killed, or cut from the "
        "database): a runner adopts it, or `hwsearch resume` continues it.",
    )
    driver: DriverPublic | None = Field(default=None, description="Who drives (drove) it.")
    owner_token_id: int | None = Field(
        default=None, description="The API token that submitted it (null: made by the CLI)."
    )


class JobList(BaseModel):
    count: int = Field(description="Jobs matching the filter, on every page.")
    items: list[JobPublic]


class HypervolumePublic(BaseModel):
    generation: int
    evaluations: int
    hypervolume: float
    points: int


class JobCancelled(JobPublic):
    cancel_requested: bool = Field(
        description="Running, and flagged: its driver stops after the evaluation in flight, "
        "keeping what it finished (the flag is cleared when the job ends)."
    )


class JobDetail(JobPublic):
    spec: dict[str, Any]
    budget_wall_time_s: float | None
    cancel_requested: bool
    candidates: dict[str, int] = Field(description="Candidates by status: pending, done, failed.")
    hypervolume_history: list[HypervolumePublic]


# -- fronts and candidates ----------------------------------------------------------------


class MetricPublic(BaseModel):
    value: float
    provenance: Provenance
    target: str
    details: dict[str, Any]


class CandidatePublic(BaseModel):
    id: int
    job_id: int
    config_hash: str
    config: dict[str, Any]
    generation: int
    status: CandidateStatus
    feasible: bool | None
    error: str | None
    metrics: dict[str, MetricPublic]


class FrontCandidatePublic(CandidatePublic):
    measured: bool = Field(description="No objective of this point comes from a predictor.")


class ObjectivePublic(BaseModel):
    metric: str
    direction: Literal["minimize", "maximize"]


class FrontPublic(BaseModel):
    """One page of a job's latest front, after filtering and sorting."""

    job_id: int
    generation: int
    objectives: list[ObjectivePublic]
    reference_point: list[float]
    hypervolume: float
    evaluations: int
    size: int = Field(description="Points on the front before filtering.")
    count: int = Field(description="Points matching the filter, on every page.")
    offset: int
    limit: int
    points: list[FrontCandidatePublic]


# -- catalogue ---------------------------------------------------------------------------


class TargetPublic(BaseModel):
    name: str
    kind: str


class TargetList(BaseModel):
    count: int
    items: list[TargetPublic]


class NameList(BaseModel):
    count: int
    items: list[str]


class HealthPublic(BaseModel):
    status: Literal["ok"]
    version: str
    running_jobs: list[int]


# -- predictors and predictions -------------------------------------------------------------


class PredictorPublic(BaseModel):
    id: int
    family: str
    target: str
    metric: str
    version: int
    kind: str
    training_size: int
    features: int = Field(description="Number of features the predictor uses.")
    metrics: dict[str, float] = Field(description="How well it did (held-out or cross-validated).")
    created_at: datetime


class PredictorList(BaseModel):
    count: int
    items: list[PredictorPublic]


class PredictionPublic(BaseModel):
    candidate_id: int
    metric: str
    predicted: float
    std: float
    predictor_id: int | None
    predictor_version: int | None
    measured: float | None = Field(description="The value measured since; null if none.")


class PredictionList(BaseModel):
    count: int
    items: list[PredictionPublic]
    scores: dict[str, dict[str, float]] = Field(
        description="Per metric, predicted against measured where both exist: rmse, mape, "
        "within_10pct, spearman, kendall and n."
    )
