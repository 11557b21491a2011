"""What the server offers: health, targets, predictors, families, optimizers."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

import hwsearch
from hwsearch.service.api.deps import RunnerDep, StoreDep, TokenDep
from hwsearch.service.api.schemas import HealthPublic, NameList, PredictorList, TargetList

router = APIRouter(tags=["catalogue"])


@router.get("/health", response_model=HealthPublic)
def health(runner: RunnerDep) -> dict[str, Any]:
    """Liveness; the only endpoint that needs no token."""
    return {
        "status": "ok",
        "version": hwsearch.__version__,
        "running_jobs": runner.active_jobs if runner is not None else [],
    }


@router.get("/targets", response_model=TargetList)
def targets(token: TokenDep) -> dict[str, Any]:
    """Devices of this server that jobs can be measured on. Table targets (devices measured
    elsewhere) are named in specs and need no entry here."""
    from hwsearch.hardware.targets import available_targets

    items = [{"name": t.name, "kind": t.kind} for t in available_targets()]
    return {"count": len(items), "items": items}


@router.get("/predictors", response_model=PredictorList)
def predictors(
    token: TokenDep,
    store: StoreDep,
    family: Annotated[str | None, Query(max_length=100)] = None,
    target: Annotated[str | None, Query(max_length=100)] = None,
    metric: Annotated[str | None, Query(max_length=100)] = None,
) -> dict[str, Any]:
    """Fitted predictors stored in the database (``hwsearch predictors fit`` and active
    learning), every version with its training-set size and how well it did."""
    items = [
        {
            "id": r.id,
            "family": r.family,
            "target": r.target,
            "metric": r.metric,
            "version": r.version,
            "kind": r.kind,
            "training_size": r.training_size,
            "features": len(r.features),
            "metrics": r.metrics,
            "created_at": r.created_at,
        }
        for r in store.list_predictors(family=family, target=target, metric=metric)
    ]
    return {"count": len(items), "items": items}


@router.get("/families", response_model=NameList)
def families(token: TokenDep) -> dict[str, Any]:
    """Model families a spec may name (plug-ins on the server's allow-list included); not
    ``python``, your own model, which a server never runs (``docs/byo.md``)."""
    from hwsearch.models import family_names
    from hwsearch.search.spec.user_model import FAMILY

    names = [name for name in family_names() if name != FAMILY]
    return {"count": len(names), "items": names}


@router.get("/optimizers", response_model=NameList)
def optimizers(token: TokenDep) -> dict[str, Any]:
    """Optimizers a spec may name."""
    from hwsearch.search.optimizer import optimizer_names

    names = optimizer_names()
    return {"count": len(names), "items": names}
