"""The service: ``serve`` and ``submit``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from hwsearch.service.cli.common import (
    AddressOption,
    DbOption,
    Executor,
    ExecutorOption,
    NoReuseOption,
    PluginOption,
    ServerOption,
    TokenOption,
    WideOption,
    app,
    console,
    errors,
    evaluated,
    open_store,
    server_client,
    user_errors,
)
from hwsearch.service.cli.tables import front_table


@app.command()
def serve(
    db: DbOption = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8000,
    executor: ExecutorOption = Executor.local,
    workers: Annotated[int, typer.Option(min=1, help="Workers per job (pool, ray).")] = 1,
    max_jobs: Annotated[int, typer.Option(min=1, help="Jobs run at once.")] = 1,
    address: AddressOption = None,
    tables: Annotated[
        list[Path] | None,
        typer.Option(help="Folder specs may read table files from (repeatable)."),
    ] = None,
    plugin: PluginOption = None,
    max_body_bytes: Annotated[int, typer.Option(min=1024)] = 1 << 20,
    limit: Annotated[
        list[str] | None,
        typer.Option(
            help="A cap on what specs may ask for, NAME=VALUE (repeatable; see docs/service.md).",
        ),
    ] = None,
    run_jobs: Annotated[bool, typer.Option(help="Run queued jobs in this server.")] = True,
    api_workers: Annotated[
        int,
        typer.Option(
            min=1,
            max=64,
            help="Processes answering requests (uvicorn workers); jobs still run in one.",
        ),
    ] = 1,
    token_cache_s: Annotated[
        float, typer.Option(min=0, help="A revoked token stops working within this time.")
    ] = 5.0,
) -> None:
    """Serve the REST API and the dashboard, and run queued jobs."""
    import os

    import uvicorn

    from hwsearch.search.limits import SpecLimits
    from hwsearch.service.api import ServiceSettings, create_app
    from hwsearch.service.runner import JobRunner, RunnerSettings

    try:
        limits = SpecLimits.parse_settings(list(limit or ()))
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--limit") from None
    with user_errors():
        store = open_store(db, create=True)
        settings = ServiceSettings(
            db_url=store.url,
            max_body_bytes=max_body_bytes,
            limits=limits,
            table_roots=tuple(tables or ()),
            plugins=tuple(plugin or ()),
            runner=RunnerSettings(
                executor=executor.value, workers=workers, max_jobs=max_jobs, address=address
            ),
            run_jobs=run_jobs,
            token_cache_s=token_cache_s,
        )
        api = create_app(settings, store=store)  # with N workers, only to check the plug-ins
    errors.print(f"hwsearch serving on http://{host}:{port}/ (dashboard at /dashboard/)")
    _log_jobs()
    if api_workers == 1:
        uvicorn.run(api, host=host, port=port, log_level="warning")
        return
    # Several processes answer requests; the runner runs here, in the supervising process,
    # so that each queued job is run once. A job submitted to a worker cannot wake it: the
    # runner finds the job at its next poll (within a second).
    os.environ.update(settings.to_environment())
    runner = JobRunner(store, settings.runner) if run_jobs else None
    if runner is not None:
        runner.start()
    try:
        uvicorn.run(
            "hwsearch.service.api.app:worker_app",
            factory=True,
            workers=api_workers,
            host=host,
            port=port,
            log_level="warning",
        )
    finally:
        if runner is not None:
            runner.stop()
        store.close()


@app.command()
def submit(
    spec_path: Annotated[Path, typer.Argument(metavar="SPEC", help="Job spec, YAML or JSON.")],
    wait: Annotated[bool, typer.Option(help="Wait for the job and print its front.")] = False,
    db: DbOption = None,
    server: ServerOption = None,
    token: TokenOption = None,
    no_reuse: NoReuseOption = False,
    wide: WideOption = False,
) -> None:
    """Queue a job for a server: sent to --server, or written to the local database for
    `hwsearch serve` on it to run. With --wait, print its progress as it goes (evaluations,
    front size, hypervolume) and its front at the end."""
    from hwsearch.records import JobState
    from hwsearch.search.driver import target_name
    from hwsearch.search.spec import load_spec
    from hwsearch.search.spec.user_model import check_names_no_code
    from hwsearch.search.spec_files import read_spec_data
    from hwsearch.service.fronts import load_front

    with user_errors():
        if server:
            _, data = read_spec_data(spec_path)  # size, encoding, depth and aliases limited
            if isinstance(data, dict):
                data.setdefault("name", spec_path.stem)
                if no_reuse:
                    data["reuse"] = False
            with server_client(server, token) as client:
                job = client.submit(data)
                console.print(f"job {job.id} {job.state.value}")
                if not wait:
                    return
                job = _follow(lambda: client.job_progress(job.id))
                view = client.front(job.id) if job.state is JobState.FINISHED else None
        else:
            _, data = read_spec_data(spec_path)
            if isinstance(data, dict):  # a server would leave it queued: refused here
                check_names_no_code(data)
            spec = load_spec(spec_path)
            if no_reuse:
                spec = spec.model_copy(update={"reuse": False})
            store = open_store(db, create=True)
            job = store.create_job(
                name=spec.name, family=spec.family, target=target_name(spec), spec=spec.to_dict()
            )
            console.print(f"job {job.id} {job.state.value}")
            if not wait:
                return
            job_id = job.id
            job = _follow(lambda: (store.get_job(job_id), store.hypervolume_history(job_id)))
            view = load_front(store, job.id) if job.state is JobState.FINISHED else None
        if view is not None:
            console.print(front_table(view, wide=wide))
        console.print(f"job {job.id} {job.state.value}: {evaluated(job)}")
        if job.state is not JobState.FINISHED:
            if job.error:
                errors.print(f"[red]error:[/red] {job.error}", highlight=False)
            raise typer.Exit(1)


def _log_jobs() -> None:
    """The runner's lines (a job taken, a job ended, a job left to its user) on stderr,
    where the server's own line is; uvicorn's access log stays off."""
    import logging

    runner_log = logging.getLogger("hwsearch.runner")
    if not runner_log.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        runner_log.addHandler(handler)
        runner_log.setLevel(logging.INFO)


#: States after which ``submit --wait`` stops waiting (an interrupted job is queued again by
#: the server that stopped it, or waits for ``hwsearch resume``: waiting goes on).
WAIT_ENDS = frozenset({"finished", "failed", "cancelled"})


def _follow(poll: Callable[[], tuple[Any, list[Any]]], poll_s: float = 1.0) -> Any:
    """Poll a job until it ends, printing a line whenever its state, evaluations or front
    change: ``job 3 running: 12/48 evaluated, generation 1, front 5, hypervolume 0.41``."""
    import time

    last = ""
    while True:
        job, history = poll()
        line = progress_line(job, history[-1] if history else None)
        if line != last:
            console.print(line, highlight=False)
            last = line
        if job.state.value in WAIT_ENDS:
            return job
        time.sleep(poll_s)


def progress_line(job: Any, latest: Any | None) -> str:
    """One line of a job's progress; ``latest``: its newest hypervolume point, if any."""
    budget = (job.spec.get("budget") or {}).get("evaluations")
    line = f"job {job.id} {job.shown_state().value}: {evaluated(job, budget)}"
    if latest is not None:
        line += (
            f", generation {latest.generation}, front {latest.points}, "
            f"hypervolume {latest.hypervolume:.4g} (this job's reference point)"
        )
    return line
