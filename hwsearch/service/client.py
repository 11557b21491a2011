"""The HTTP client the CLI uses against ``hwsearch serve``.

It returns the same records as the local store (:class:`~hwsearch.records.JobRecord`,
:class:`~hwsearch.service.fronts.FrontView`) so the CLI prints the same output either way,
and turns error responses back into the same exceptions (a bad spec is
:class:`~hwsearch.errors.SpecErrors` naming each field, a bad filter a ``FilterError``).
"""

from __future__ import annotations

import io
import time
import zipfile
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from hwsearch.errors import (
    ConflictError,
    FilterError,
    HwsearchError,
    NotFoundError,
    SpecError,
    SpecErrors,
)
from hwsearch.records import (
    CandidateRecord,
    CandidateStatus,
    FrontPoint,
    FrontRecord,
    HypervolumePoint,
    JobRecord,
    JobState,
    Lease,
    MetricValue,
    Provenance,
)
from hwsearch.service.export import ExportResult
from hwsearch.service.fronts import FrontView

__all__ = ["ServiceClient"]

PAGE = 500
TERMINAL = frozenset({JobState.FINISHED, JobState.FAILED, JobState.CANCELLED})


class ServiceClient:
    """A client of one server; ``token`` is an API token from ``hwsearch tokens create``."""

    def __init__(self, url: str, token: str | None, *, timeout: float = 300.0) -> None:
        if not url.startswith(("http://", "https://")):
            raise SpecError("--server", f"must be an http:// or https:// URL, got {url!r}")
        if not token:
            raise SpecError(
                "--token", "a server needs an API token: pass --token or set HWSEARCH_TOKEN"
            )
        self.url = url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ServiceClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise HwsearchError(f"cannot reach the server at {self.url}: {exc}") from None
        if response.is_success:
            return response
        try:
            body = response.json()
        except ValueError:
            body = {"detail": response.text.strip() or response.reason_phrase}
        detail = str(body.get("detail", "")) if isinstance(body, dict) else str(body)
        errors = body.get("errors", []) if isinstance(body, dict) else []
        status = response.status_code
        if status == 422 and errors:
            problems = [
                SpecError(str(e.get("field", "")), str(e.get("reason", ""))) for e in errors
            ]
            if detail.startswith("invalid job spec"):
                raise SpecErrors(problems)
            raise problems[0]
        if status == 400 and path.endswith("/front"):
            raise FilterError(detail)
        if status == 404:
            raise NotFoundError(detail)
        if status == 409:
            first = errors[0] if errors and isinstance(errors[0], dict) else {}
            raise ConflictError(str(first.get("field", "")), str(first.get("reason", detail)))
        raise HwsearchError(f"server answered {status}: {detail}")

    # -- jobs ---------------------------------------------------------------------------

    def submit(self, spec: dict[str, Any]) -> JobRecord:
        return _job(self._call("POST", "/jobs", json={"spec": spec}).json())

    def get_job(self, job_id: int) -> JobRecord:
        return _job(self._call("GET", f"/jobs/{job_id}").json())

    def job_progress(self, job_id: int) -> tuple[JobRecord, list[HypervolumePoint]]:
        """The job and its hypervolume history (one per generation), in one request."""
        data = self._call("GET", f"/jobs/{job_id}").json()
        history = [
            HypervolumePoint(h["generation"], h["evaluations"], h["hypervolume"], h["points"])
            for h in data.get("hypervolume_history", [])
        ]
        return _job(data), history

    def list_jobs(self, *, state: JobState | None = None, limit: int = 50) -> list[JobRecord]:
        jobs: list[JobRecord] = []
        while len(jobs) < limit:
            params: dict[str, Any] = {"offset": len(jobs), "limit": min(PAGE, limit - len(jobs))}
            if state is not None:
                params["state"] = state.value
            page = self._call("GET", "/jobs", params=params).json()
            jobs += [_job(item) for item in page["items"]]
            if not page["items"] or len(jobs) >= page["count"]:
                break
        return jobs

    def cancel(self, job_id: int) -> JobRecord:
        return _job(self._call("POST", f"/jobs/{job_id}/cancel").json())

    def wait(self, job_id: int, *, poll_s: float = 1.0, on_update: Any = None) -> JobRecord:
        """Poll until the job is finished, failed or cancelled."""
        while True:
            job = self.get_job(job_id)
            if on_update is not None:
                on_update(job)
            if job.state in TERMINAL:
                return job
            time.sleep(poll_s)

    # -- fronts and export ----------------------------------------------------------------

    def front(self, job_id: int, *, where: str | None = None, sort: str | None = None) -> FrontView:
        """The whole filtered front (every page), as :func:`load_front` gives it locally."""
        params: dict[str, Any] = {"limit": PAGE}
        if where:
            params["where"] = where
        if sort:
            params["sort"] = sort
        points: list[dict[str, Any]] = []
        while True:
            page = self._call(
                "GET", f"/jobs/{job_id}/front", params={**params, "offset": len(points)}
            ).json()
            points += page["points"]
            if not page["points"] or len(points) >= page["count"]:
                break
        objectives = [o["metric"] for o in page["objectives"]]
        candidates = [_candidate(p) for p in points]
        record = FrontRecord(
            id=0,
            job_id=page["job_id"],
            generation=page["generation"],
            objectives=objectives,
            directions=[o["direction"] for o in page["objectives"]],
            reference_point=list(page["reference_point"]),
            hypervolume=page["hypervolume"],
            evaluations=page["evaluations"],
            points=[
                FrontPoint(
                    candidate_id=c.id,
                    config_hash=c.config_hash,
                    values={m: c.metrics[m].value for m in objectives if m in c.metrics},
                    measured=bool(p["measured"]),
                )
                for c, p in zip(candidates, points, strict=True)
            ],
        )
        return FrontView(record, candidates)

    def export(self, job_id: int, candidate_id: int, out_dir: Path) -> ExportResult:
        """Download the export ``hwsearch export`` writes locally and unpack it into ``out_dir``."""
        response = self._call(
            "GET", f"/jobs/{job_id}/candidates/{candidate_id}/export", params={"format": "zip"}
        )
        out_dir.mkdir(parents=True, exist_ok=True)
        files: list[Path] = []
        with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
            for name in archive.namelist():
                target = out_dir / Path(name).name  # flat: never outside out_dir
                target.write_bytes(archive.read(name))
                files.append(target)

        def number(header: str) -> float | None:
            value = response.headers.get(header)
            return float(value) if value is not None else None

        return ExportResult(
            out_dir,
            files,
            number("X-Hwsearch-Stored-Accuracy"),
            number("X-Hwsearch-Reproduced-Accuracy"),
        )


def _time(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value.replace("Z", "+00:00"))


def _job(data: dict[str, Any]) -> JobRecord:
    created = _time(data["created_at"])
    if created is None:
        raise HwsearchError(f"the server sent job {data.get('id')} without created_at")
    return JobRecord(
        id=data["id"],
        name=data["name"],
        family=data["family"],
        target=data["target"],
        state=JobState(data["state"]),
        spec=data.get("spec", {}),
        created_at=created,
        started_at=_time(data.get("started_at")),
        finished_at=_time(data.get("finished_at")),
        evaluations=data["evaluations"],
        error=data.get("error"),
        lease=_lease(data.get("driver")),
        owner_token_id=data.get("owner_token_id"),
        failed=data.get("failed", 0),
    )


def _lease(data: dict[str, Any] | None) -> Lease | None:
    if not data:
        return None
    heartbeat, expires = _time(data["heartbeat_at"]), _time(data["lease_expires_at"])
    if heartbeat is None or expires is None:
        return None
    return Lease(data["runner"], data["host"], data["pid"], heartbeat, expires)


def _candidate(data: dict[str, Any]) -> CandidateRecord:
    return CandidateRecord(
        id=data["id"],
        job_id=data["job_id"],
        config_hash=data["config_hash"],
        config=data["config"],
        generation=data["generation"],
        status=CandidateStatus(data["status"]),
        feasible=data.get("feasible"),
        error=data.get("error"),
        metrics={
            name: MetricValue(
                name=name,
                value=m["value"],
                provenance=Provenance(m["provenance"]),
                target=m["target"],
                details=m["details"],
            )
            for name, m in data["metrics"].items()
        },
    )
