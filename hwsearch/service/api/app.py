"""The FastAPI application of ``hwsearch serve``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send

import hwsearch
from hwsearch.db import Store
from hwsearch.search.limits import configure_limits
from hwsearch.service.api.auth import TokenCache
from hwsearch.service.api.controls import refuse_control_characters
from hwsearch.service.api.docs import install_docs
from hwsearch.service.api.errors import install_error_handlers
from hwsearch.service.api.fronts import FrontCache, send_replay
from hwsearch.service.api.routers import catalog, fronts, jobs, predictions
from hwsearch.service.api.settings import ServiceSettings
from hwsearch.service.runner import JobRunner

DASHBOARD = Path(__file__).resolve().parents[2] / "dashboards" / "static"

DESCRIPTION = """Submit hardware-aware search jobs, follow them, query their Pareto fronts and
export chosen candidates. Every endpoint but `/health` needs `Authorization: Bearer <token>`
(tokens come from `hwsearch tokens create`)."""


def load_plugins(modules: tuple[str, ...]) -> None:
    """Load the installed and the allow-listed plug-in modules (:mod:`hwsearch.plugins`)."""
    from hwsearch.plugins import load_plugins as load

    load(modules)


class ServiceAPI(FastAPI):
    """FastAPI, except that a request with control characters is refused (422) and a
    repeat of a front query it answered is sent from the front cache, both before FastAPI's
    middleware and routing (see :func:`refuse_control_characters`, :func:`send_replay`)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and await refuse_control_characters(scope, send):
            return
        if scope["type"] == "http" and await send_replay(self.state, scope, send):
            return
        await super().__call__(scope, receive, send)


def create_app(settings: ServiceSettings | None = None, *, store: Store | None = None) -> FastAPI:
    """The API (and, with ``settings.run_jobs``, the job runner) over one database.

    A ``store`` given here is used as is and left open; otherwise one is opened from
    ``settings.db_url`` at start-up and closed at shutdown.
    """
    settings = settings or ServiceSettings()
    load_plugins(settings.plugins)
    configure_limits(settings.limits)  # the runner re-reads specs, and filters, under them

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        opened = store or Store.open(settings.db_url)
        app.state.store = opened
        app.state.tokens = TokenCache(opened, settings.token_cache_s)
        app.state.fronts = FrontCache(opened)
        runner = JobRunner(opened, settings.runner) if settings.run_jobs else None
        app.state.runner = runner
        if runner is not None:
            runner.start()
        try:
            yield
        finally:
            if runner is not None:
                runner.stop()
            if store is None:
                opened.close()

    app = ServiceAPI(
        title="hwsearch",
        version=hwsearch.__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        max_body_size=settings.max_body_bytes,
        docs_url=None,  # served by install_docs from local files, not from a CDN
        redoc_url=None,
    )
    app.state.settings = settings
    install_error_handlers(app)
    app.include_router(catalog.router)
    app.include_router(jobs.router)
    app.include_router(fronts.router)
    app.include_router(predictions.router)
    install_docs(app)
    app.mount("/dashboard", StaticFiles(directory=DASHBOARD, html=True), name="dashboard")

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse("/dashboard/")

    return app


def worker_app() -> FastAPI:
    """The app of one worker process of ``hwsearch serve --api-workers N`` (a uvicorn
    factory): settings from :data:`~hwsearch.service.api.settings.SETTINGS_ENV`; the job
    runner runs in the supervising process, never in a worker."""
    return create_app(ServiceSettings.from_environment())
