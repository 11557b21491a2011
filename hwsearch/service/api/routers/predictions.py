"""``/jobs/{id}/predictions``: what the job's predictors said, against what was measured."""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from hwsearch.predictors.metrics import evaluate
from hwsearch.service.api.deps import JobId, StoreDep, TokenDep
from hwsearch.service.api.schemas import ErrorPublic, PredictionList

router = APIRouter(prefix="/jobs/{job_id}", tags=["fronts"])


@router.get("/predictions", response_model=PredictionList, responses={404: {"model": ErrorPublic}})
async def get_predictions(job_id: JobId, store: StoreDep, token: TokenDep) -> dict[str, Any]:
    """Every prediction an active-learning job made (before measuring a candidate, or in
    place of measuring it), with the value measured since and, per metric, how well the
    predictions did where both exist."""
    records = await run_in_threadpool(store.list_predictions, job_id)
    pairs: dict[str, tuple[list[float], list[float]]] = defaultdict(lambda: ([], []))
    for r in records:
        if r.measured is not None:
            pairs[r.metric][0].append(r.measured)
            pairs[r.metric][1].append(r.value)
    scores = {
        metric: {
            **{k: v for k, v in evaluate(measured, predicted).items() if math.isfinite(v)},
            "n": float(len(measured)),
        }
        for metric, (measured, predicted) in sorted(pairs.items())
        if len(measured) >= 2
    }
    items = [
        {
            "candidate_id": r.candidate_id,
            "metric": r.metric,
            "predicted": r.value,
            "std": r.std,
            "predictor_id": r.predictor_id,
            "predictor_version": r.predictor_version,
            "measured": r.measured,
        }
        for r in records
    ]
    return {"count": len(items), "items": items, "scores": scores}
