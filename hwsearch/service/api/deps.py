"""Dependencies shared by the routers, as ``Annotated`` aliases.

They are ``async``: FastAPI runs a plain ``def`` dependency in a worker thread, a hop that
costs more than these functions do; the one that may wait on the database hands that wait to
a thread itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Path, Query, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from hwsearch.db import Store
from hwsearch.records import TokenRecord, TokenScope
from hwsearch.service.api.auth import TokenCache
from hwsearch.service.api.settings import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, ServiceSettings
from hwsearch.service.runner import JobRunner


async def _store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


async def _settings(request: Request) -> ServiceSettings:
    settings: ServiceSettings = request.app.state.settings
    return settings


async def _runner(request: Request) -> JobRunner | None:
    runner: JobRunner | None = request.app.state.runner
    return runner


StoreDep = Annotated[Store, Depends(_store)]
SettingsDep = Annotated[ServiceSettings, Depends(_settings)]
RunnerDep = Annotated[JobRunner | None, Depends(_runner)]

_bearer = HTTPBearer(auto_error=False, description="An API token from `hwsearch tokens create`.")


async def _token(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> TokenRecord:
    challenge = {"WWW-Authenticate": "Bearer"}
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing API token: send 'Authorization: Bearer <token>'",
            headers=challenge,
        )
    tokens: TokenCache = request.app.state.tokens
    secret = credentials.credentials
    found = tokens.cached(secret)
    if found is TokenCache.UNKNOWN:  # not cached: ask the database, off the event loop
        found = await run_in_threadpool(tokens.lookup, secret)
    if not isinstance(found, TokenRecord):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "invalid or revoked API token", headers=challenge
        )
    return found


async def _submit_token(token: Annotated[TokenRecord, Depends(_token)]) -> TokenRecord:
    if token.scope not in (TokenScope.SUBMIT, TokenScope.ADMIN):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            f"token {token.name!r} is read-only; submitting and cancelling need a submit "
            "or admin token",
        )
    return token


TokenDep = Annotated[TokenRecord, Depends(_token)]
#: ``submit`` or ``admin`` scope: submitting jobs, cancelling one's own (admin: anyone's).
SubmitTokenDep = Annotated[TokenRecord, Depends(_submit_token)]
WriteTokenDep = SubmitTokenDep  # the former name


@dataclass(frozen=True)
class Page:
    offset: int
    limit: int


async def _page(
    offset: Annotated[int, Query(ge=0, le=10**9, description="Items to skip.")] = 0,
    limit: Annotated[
        int, Query(ge=1, le=MAX_PAGE_SIZE, description=f"Page size, at most {MAX_PAGE_SIZE}.")
    ] = DEFAULT_PAGE_SIZE,
) -> Page:
    return Page(offset, limit)


PageDep = Annotated[Page, Depends(_page)]


# Ids are 32-bit integers in every backend; larger numbers are refused with 422, not sent to
# the database.
MAX_ID = 2**31 - 1
JobId = Annotated[int, Path(ge=1, le=MAX_ID, description="A job's id.")]
CandidateId = Annotated[int, Path(ge=1, le=MAX_ID, description="A candidate's id.")]
