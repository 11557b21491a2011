"""Plain records (:mod:`hwsearch.records`) from ORM rows, so callers never hold a row
that could lazy-load after its session closed."""

from __future__ import annotations

from hwsearch.db.leases import lease_record
from hwsearch.db.models import (
    ApiToken,
    Candidate,
    Front,
    Job,
    Measurement,
    PredictorRow,
    TargetRow,
)
from hwsearch.records import (
    CandidateRecord,
    FrontPoint,
    FrontRecord,
    JobRecord,
    MetricValue,
    PredictorRecord,
    TargetRecord,
    TokenRecord,
)


def job_record(job: Job, *, evaluations: int, failed: int = 0) -> JobRecord:
    return JobRecord(
        id=job.id,
        name=job.name,
        family=job.family,
        target=job.target,
        state=job.state,
        spec=job.spec,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        evaluations=int(evaluations),
        error=job.error,
        lease=lease_record(job),
        owner_token_id=job.owner_token_id,
        failed=int(failed),
    )


def target_record(row: TargetRow) -> TargetRecord:
    return TargetRecord(
        name=row.name,
        kind=row.kind,
        tdp_w=row.tdp_w,
        cores=row.cores,
        embodied_kgco2e=row.embodied_kgco2e,
        lifetime_years=row.lifetime_years,
        busy_share=row.busy_share,
        region=row.region,
        pue=row.pue,
        grid_gco2e_per_kwh=row.grid_gco2e_per_kwh,
        meter=row.meter,
        sources=dict(row.sources),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def predictor_record(row: PredictorRow) -> PredictorRecord:
    return PredictorRecord(
        id=row.id,
        family=row.family,
        target=row.target,
        metric=row.metric,
        version=row.version,
        kind=row.kind,
        training_size=row.training_size,
        features=list(row.features),
        metrics=dict(row.metrics),
        state=dict(row.state),
        created_at=row.created_at,
    )


def token_record(token: ApiToken) -> TokenRecord:
    return TokenRecord(
        id=token.id,
        name=token.name,
        scope=token.scope,
        created_at=token.created_at,
        revoked=token.revoked,
    )


def metric_value(row: Measurement) -> MetricValue:
    return MetricValue(
        name=row.metric,
        value=row.value,
        provenance=row.provenance,
        target=row.target,
        details=row.details,
    )


def candidate_record(candidate: Candidate) -> CandidateRecord:
    return CandidateRecord(
        id=candidate.id,
        job_id=candidate.job_id,
        config_hash=candidate.config_hash,
        config=candidate.config,
        generation=candidate.generation,
        status=candidate.status,
        feasible=candidate.feasible,
        error=candidate.error,
        metrics={m.metric: metric_value(m) for m in candidate.measurements},
    )


def front_record(front: Front) -> FrontRecord:
    objectives = list(front.objectives)
    points = []
    for row in front.points:
        stored = {m.metric: m.value for m in row.candidate.measurements}
        points.append(
            FrontPoint(
                candidate_id=row.candidate_id,
                config_hash=row.candidate.config_hash,
                values={name: stored[name] for name in objectives if name in stored},
                measured=row.measured,
            )
        )
    return FrontRecord(
        id=front.id,
        job_id=front.job_id,
        generation=front.generation,
        objectives=objectives,
        directions=list(front.directions),
        reference_point=[float(v) for v in front.reference_point],
        hypervolume=front.hypervolume,
        evaluations=front.evaluations,
        points=points,
    )
