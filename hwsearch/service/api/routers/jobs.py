"""``/jobs``: submit, list, inspect and cancel jobs."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Response, status

from hwsearch.errors import NotFoundError
from hwsearch.records import CandidateStatus, JobRecord, JobState, TokenScope
from hwsearch.search.driver import target_name
from hwsearch.search.spec.user_model import names_code
from hwsearch.service.api.deps import (
    JobId,
    PageDep,
    RunnerDep,
    SettingsDep,
    StoreDep,
    SubmitTokenDep,
    TokenDep,
)
from hwsearch.service.api.policy import check_submission
from hwsearch.service.api.schemas import (
    ErrorPublic,
    HypervolumePublic,
    JobCancelled,
    JobCreate,
    JobDetail,
    JobList,
    JobPublic,
)

router = APIRouter(prefix="/jobs", tags=["jobs"])

NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": ErrorPublic}}


def _budget(job: JobRecord) -> tuple[int | None, float | None]:
    budget = job.spec.get("budget") or {}
    evaluations = budget.get("evaluations")
    wall = budget.get("wall_time_s")
    return (
        int(evaluations) if isinstance(evaluations, int) else None,
        float(wall) if isinstance(wall, int | float) else None,
    )


def _left_to_its_user(job: JobRecord) -> str | None:
    """Why a queued job of the user's own code stays queued: no server runs it."""
    if job.state is not JobState.QUEUED or not names_code(job.spec):
        return None
    return (
        "no server runs this job: its spec names code to run (your own model), which a "
        f"server never imports; run it with hwsearch resume {job.id} where that code is"
    )


def job_public(job: JobRecord, store: Any = None) -> dict[str, Any]:
    """A job as the API shows it. ``progress`` is what was spent of the evaluation budget,
    however the job ended (one that stopped on its wall time at 14 of 48 is at 0.29): the
    measured candidates and the failed ones, whose evaluation ran too; candidates an
    active-learning job settled by prediction (``predicted``, counted with ``store``) are
    not measurements and do not count."""
    evaluations, _ = _budget(job)
    predicted = (
        store.count_predicted(job.id)
        if store is not None and job.spec.get("active_learning")
        else 0
    )
    measured = job.evaluations - predicted
    progress = min(1.0, (measured + job.failed) / evaluations) if evaluations else None
    return {
        "id": job.id,
        "name": job.name,
        "family": job.family,
        "target": job.target,
        "state": job.state,
        "shown_state": job.shown_state(),
        "measured": measured,
        "predicted": predicted,
        "created_at": job.created_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
        "evaluations": job.evaluations,
        "failed": job.failed,
        "budget_evaluations": evaluations,
        "progress": progress,
        "error": job.error or _left_to_its_user(job),
        "stale": job.stale(),
        "driver": None
        if job.lease is None
        else {
            "runner": job.lease.owner,
            "host": job.lease.host,
            "pid": job.lease.pid,
            "heartbeat_at": job.lease.heartbeat_at,
            "lease_expires_at": job.lease.expires_at,
        },
        "owner_token_id": job.owner_token_id,
    }


def _get_job(store: Any, job_id: int) -> JobRecord:
    try:
        job: JobRecord = store.get_job(job_id)
    except NotFoundError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    return job


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobPublic,
    responses={422: {"model": ErrorPublic}},
    summary="Submit a job spec; it is queued and run by the server's runner.",
)
def submit_job(
    body: JobCreate,
    store: StoreDep,
    settings: SettingsDep,
    runner: RunnerDep,
    token: SubmitTokenDep,
    response: Response,
) -> dict[str, Any]:
    spec = check_submission(body.spec, settings.table_roots, settings.limits)  # 422 by field
    job = store.create_job(
        name=spec.name,
        family=spec.family,
        target=target_name(spec),
        spec=spec.to_dict(),
        owner_token_id=token.id,
    )
    if runner is not None:
        runner.wake()
    response.headers["Location"] = f"/jobs/{job.id}"
    return job_public(job, store)


@router.get("", response_model=JobList, summary="Jobs, newest first.")
def list_jobs(
    store: StoreDep,
    page: PageDep,
    token: TokenDep,
    state: Annotated[JobState | None, Query(description="Only jobs in this state.")] = None,
) -> dict[str, Any]:
    items = store.list_jobs(state=state, limit=page.limit, offset=page.offset)
    return {"count": store.count_jobs(state=state), "items": [job_public(j, store) for j in items]}


@router.get("/{job_id}", response_model=JobDetail, responses=NOT_FOUND)
def get_job(job_id: JobId, store: StoreDep, token: TokenDep) -> dict[str, Any]:
    """State, progress, budget used, hypervolume history and errors of one job."""
    job = _get_job(store, job_id)
    _, wall = _budget(job)
    counts = {s.value: store.count_candidates(job_id, status=s) for s in CandidateStatus}
    history = [
        HypervolumePublic(
            generation=h.generation,
            evaluations=h.evaluations,
            hypervolume=h.hypervolume,
            points=h.points,
        )
        for h in store.hypervolume_history(job_id)
    ]
    return {
        **job_public(job, store),
        "spec": job.spec,
        "budget_wall_time_s": wall,
        "cancel_requested": store.cancel_requested(job_id),
        "candidates": counts,
        "hypervolume_history": history,
    }


@router.post(
    "/{job_id}/cancel",
    response_model=JobCancelled,
    responses={**NOT_FOUND, 403: {"model": ErrorPublic}, 409: {"model": ErrorPublic}},
)
def cancel_job(job_id: JobId, store: StoreDep, token: SubmitTokenDep) -> dict[str, Any]:
    """Cancel a job: a queued one at once; a running one stops after the evaluation in
    flight (state stays ``running`` until then), keeping what it finished. Only the token
    that submitted the job, or an ``admin`` token, may cancel it."""
    job = _get_job(store, job_id)
    if token.scope is not TokenScope.ADMIN and job.owner_token_id != token.id:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            f"job {job_id} was not submitted with token {token.name!r}; only its own token "
            "or an admin token may cancel it",
        )
    cancelled = job_public(store.request_cancel(job_id), store)  # a final job: 409
    return {**cancelled, "cancel_requested": store.cancel_requested(job_id)}
