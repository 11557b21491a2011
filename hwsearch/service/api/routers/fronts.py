"""``/jobs/{id}/front`` and ``/jobs/{id}/candidates``: query fronts, read and export candidates."""

from __future__ import annotations

import enum
import io
import json
import tempfile
import zipfile
from pathlib import Path
from typing import Annotated, Any

import yaml
from fastapi import APIRouter, HTTPException, Query, Request, Response, status
from starlette.concurrency import run_in_threadpool

from hwsearch.errors import HwsearchError, NotFoundError
from hwsearch.records import CandidateStatus
from hwsearch.search.spec.user_model import names_code
from hwsearch.service.api.deps import (
    CandidateId,
    JobId,
    PageDep,
    StoreDep,
    TokenDep,
)
from hwsearch.service.api.errors import ApiError
from hwsearch.service.api.fronts import FrontCache, FrontQuery, FrontQueryError
from hwsearch.service.api.schemas import CandidatePublic, ErrorPublic, FrontPublic
from hwsearch.service.fronts import candidate_payload

router = APIRouter(prefix="/jobs/{job_id}", tags=["fronts"])


@router.get(
    "/front",
    response_model=FrontPublic,
    responses={400: {"model": ErrorPublic}, 404: {"model": ErrorPublic}},
)
async def get_front(
    request: Request,
    job_id: JobId,
    page: PageDep,
    token: TokenDep,
    where: Annotated[
        str | None,
        Query(
            max_length=1000,
            description="Filter, e.g. 'latency_ms <= 5 and accuracy >= 0.9' "
            "(comparisons, and/or/not, parentheses; parsed, never evaluated).",
        ),
    ] = None,
    sort: Annotated[
        str | None, Query(max_length=100, description="A metric; prefix '-' for descending.")
    ] = None,
    metrics: Annotated[
        str | None,
        Query(max_length=1000, description="Comma-separated metrics to return (default all)."),
    ] = None,
    measured_only: Annotated[
        bool, Query(description="Only points whose objectives were all measured.")
    ] = False,
) -> Response:
    """The latest Pareto front of a job, filtered, sorted and paged. A running job's newest
    generation shows within half a second."""
    fronts: FrontCache = request.app.state.fronts  # not a dependency: one less to resolve
    try:
        cached = fronts.peek(job_id)
        if cached is None:
            cached = await run_in_threadpool(fronts.get, job_id)
    except NotFoundError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    query = FrontQuery(where, sort, metrics, measured_only, page.offset, page.limit)
    try:
        # Remembered so that send_replay answers the same request again on its own.
        body = fronts.body(cached, query, (request.scope["path"], request.scope["query_string"]))
    except FrontQueryError as exc:
        problem = {"field": f"query.{exc.field}", "reason": exc.reason}
        raise ApiError(400, str(exc), [problem]) from None
    return Response(body, media_type="application/json")


@router.get(
    "/candidates/{candidate_id}",
    response_model=CandidatePublic,
    responses={404: {"model": ErrorPublic}},
)
def get_candidate(
    job_id: JobId, candidate_id: CandidateId, store: StoreDep, token: TokenDep
) -> dict[str, Any]:
    """A candidate's config and every metric with its provenance."""
    try:
        return candidate_payload(store.get_candidate(job_id, candidate_id))
    except NotFoundError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None


class ExportFormat(enum.StrEnum):
    json = "json"
    yaml = "yaml"
    torchscript = "torchscript"
    onnx = "onnx"
    zip = "zip"


_MODEL_FILES = {
    ExportFormat.torchscript: ("model_torchscript.pt", "application/octet-stream"),
    ExportFormat.onnx: ("model.onnx", "application/octet-stream"),
}


@router.get(
    "/candidates/{candidate_id}/export",
    response_class=Response,
    responses={
        200: {
            "content": {
                "application/json": {},
                "application/yaml": {},
                "application/octet-stream": {},
                "application/zip": {},
            },
            "description": "The exported file.",
        },
        404: {"model": ErrorPublic},
        409: {"model": ErrorPublic},
    },
)
def export(
    job_id: JobId,
    candidate_id: CandidateId,
    store: StoreDep,
    token: TokenDep,
    format: Annotated[
        ExportFormat,
        Query(
            description="json/yaml: config and metrics; torchscript: the model as it runs on "
            "the target; onnx: the float model; zip: config, state dict, TorchScript and the "
            "model card (README), as `hwsearch export` writes them."
        ),
    ] = ExportFormat.json,
) -> Response:
    """Export a candidate. Models are rebuilt from the stored config (seconds for a small
    trained model)."""
    from hwsearch.service.export import candidate_description, export_candidate

    try:
        candidate = store.get_candidate(job_id, candidate_id)
    except NotFoundError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    if candidate.status is not CandidateStatus.DONE:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"candidate {candidate_id} of job {job_id} is {candidate.status.value}; "
            "only evaluated candidates can be exported",
        )
    stem = f"job{job_id}-candidate{candidate_id}"
    if format in (ExportFormat.json, ExportFormat.yaml):
        description = candidate_description(store, job_id, candidate_id)
        if format is ExportFormat.json:
            body, media = (
                json.dumps(description, indent=2, sort_keys=True) + "\n",
                "application/json",
            )
        else:
            body, media = yaml.safe_dump(description, sort_keys=True), "application/yaml"
        return _download(body.encode(), media, f"{stem}.{format.value}")
    if names_code(store.get_job(job_id).spec):  # rebuilding it would import the user's code
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"job {job_id} runs its user's own model: exporting its model rebuilds it with "
            "that code, which a server never imports; export it with hwsearch export "
            f"{job_id} {candidate_id} --db URL where the code is (format json or yaml gives "
            "its config and metrics here)",
        )
    with tempfile.TemporaryDirectory(prefix="hwsearch-export-") as folder:
        out = Path(folder)
        try:
            result = export_candidate(
                store, job_id, candidate_id, out, onnx=format is ExportFormat.onnx
            )
        except HwsearchError as exc:
            raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
        headers = {}
        if result.stored_accuracy is not None:
            headers["X-Hwsearch-Stored-Accuracy"] = repr(result.stored_accuracy)
        if result.reproduced_accuracy is not None:
            headers["X-Hwsearch-Reproduced-Accuracy"] = repr(result.reproduced_accuracy)
        if format is ExportFormat.zip:
            buffer = io.BytesIO()
            with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
                for path in result.files:
                    archive.write(path, path.name)
            return _download(buffer.getvalue(), "application/zip", f"{stem}.zip", headers)
        name, media = _MODEL_FILES[format]
        data = (out / name).read_bytes()
    suffix = "onnx" if format is ExportFormat.onnx else "pt"
    return _download(data, media, f"{stem}.{suffix}", headers)


def _download(
    data: bytes, media: str, filename: str, headers: dict[str, str] | None = None
) -> Response:
    return Response(
        data,
        media_type=media,
        headers={**(headers or {}), "Content-Disposition": f'attachment; filename="{filename}"'},
    )
