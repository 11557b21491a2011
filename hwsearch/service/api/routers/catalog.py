"""What the server offers: health, targets, predictors, families, optimizers."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

import hwsearch
from hwsearch.service.api.deps import RunnerDep, TokenDep
from hwsearch.service.api.schemas import HealthPublic, NameList, TargetList

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


@router.get("/predictors", response_model=NameList)
def predictors(token: TokenDep) -> dict[str, Any]:
    """Registered learned predictors (none are registered in this version)."""
    import hwsearch.predictors as package

    names = sorted(getattr(package, "predictor_names", lambda: [])())
    return {"count": len(names), "items": names}


@router.get("/families", response_model=NameList)
def families(token: TokenDep) -> dict[str, Any]:
    """Model families a spec may name (plug-ins on the server's allow-list included)."""
    from hwsearch.models import family_names

    names = family_names()
    return {"count": len(names), "items": names}


@router.get("/optimizers", response_model=NameList)
def optimizers(token: TokenDep) -> dict[str, Any]:
    """Optimizers a spec may name."""
    from hwsearch.search.optimizer import optimizer_names

    names = optimizer_names()
    return {"count": len(names), "items": names}
