"""Error responses: JSON ``{"detail": ..., "errors": [{"field", "reason"}]}`` everywhere."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from hwsearch.errors import (
    ConflictError,
    FilterError,
    HwsearchError,
    NotFoundError,
    SpecError,
    SpecErrors,
    StorageError,
)

log = logging.getLogger("hwsearch.api")


class ApiError(Exception):
    """An HTTP error with the problems by field (raised by routers only)."""

    def __init__(self, status_code: int, detail: str, errors: list[dict[str, str]] | None = None):
        super().__init__(detail)
        self.status_code = status_code
        self.detail = detail
        self.errors = errors or []


def _body(detail: str, errors: list[dict[str, str]] | None = None) -> dict[str, Any]:
    return {"detail": detail, "errors": errors or []}


def _field(loc: tuple[Any, ...] | list[Any]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _request_problem(error: dict[str, Any]) -> dict[str, str]:
    """One of FastAPI's request errors as a field and a reason; a body that is not JSON
    is the body's problem, at a character, not a field ``body[0]``."""
    loc = tuple(error.get("loc", ()))
    if error.get("type") == "json_invalid" and loc[:1] == ("body",):
        where = f" at character {loc[1]}" if len(loc) > 1 and isinstance(loc[1], int) else ""
        why = (error.get("ctx") or {}).get("error") or "JSON decode error"
        return {"field": "body", "reason": f"is not valid JSON ({why}{where})"}
    return {"field": _field(loc), "reason": str(error.get("msg", "invalid"))}


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(_body(exc.detail, exc.errors), status_code=exc.status_code)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(
            _body(str(exc.detail)), status_code=exc.status_code, headers=exc.headers
        )

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [_request_problem(e) for e in exc.errors()]
        lines = "; ".join(f"{e['field']}: {e['reason']}" for e in errors)
        return JSONResponse(
            _body(f"invalid request: {lines}", errors),
            status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
        )

    @app.exception_handler(SpecErrors)
    async def invalid_spec(request: Request, exc: SpecErrors) -> JSONResponse:
        errors = [{"field": e.field or "spec", "reason": e.reason} for e in exc.errors]
        return JSONResponse(
            _body(f"invalid job spec ({len(errors)} problem(s))", errors),
            status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
        )

    @app.exception_handler(SpecError)
    async def invalid_value(request: Request, exc: SpecError) -> JSONResponse:
        return JSONResponse(
            _body(str(exc), [{"field": exc.field, "reason": exc.reason}]),
            status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
        )

    @app.exception_handler(ConflictError)
    async def conflict(request: Request, exc: ConflictError) -> JSONResponse:
        return JSONResponse(
            _body(str(exc), [{"field": exc.field, "reason": exc.reason}]),
            status_code=status.HTTP_409_CONFLICT,
        )

    @app.exception_handler(StorageError)
    async def refused_value(request: Request, exc: StorageError) -> JSONResponse:
        return JSONResponse(
            _body(str(exc), [{"field": exc.field, "reason": exc.reason}]),
            status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
        )

    @app.exception_handler(NotFoundError)
    async def not_found(request: Request, exc: NotFoundError) -> JSONResponse:
        return JSONResponse(_body(str(exc)), status_code=status.HTTP_404_NOT_FOUND)

    @app.exception_handler(FilterError)
    async def bad_filter(request: Request, exc: FilterError) -> JSONResponse:
        return JSONResponse(_body(str(exc)), status_code=status.HTTP_400_BAD_REQUEST)

    @app.exception_handler(HwsearchError)
    async def refused(request: Request, exc: HwsearchError) -> JSONResponse:
        return JSONResponse(_body(str(exc)), status_code=status.HTTP_400_BAD_REQUEST)

    @app.exception_handler(Exception)
    async def broken(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse(
            _body("internal error; see the server log"),
            status_code=status.HTTP_500_INTERNAL_SERVER_ERROR,
        )
