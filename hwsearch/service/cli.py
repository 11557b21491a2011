"""The ``hwsearch`` command line."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from hwsearch.errors import FilterError, HwsearchError, SpecError, SpecErrors, StorageError

app = typer.Typer(
    name="hwsearch",
    help="Hardware-aware search of neural-network architectures and compression.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database schema commands.", no_args_is_help=True)
app.add_typer(db_app, name="db")

console = Console()
errors = Console(stderr=True)

DbOption = Annotated[
    str | None,
    typer.Option(
        "--db",
        envvar="HWSEARCH_DB_URL",
        help="SQLAlchemy URL of the database (default: sqlite:///hwsearch.db here).",
    ),
]
ServerOption = Annotated[
    str | None,
    typer.Option(
        "--server",
        envvar="HWSEARCH_SERVER",
        help="URL of an hwsearch server to ask instead of the local database.",
    ),
]
TokenOption = Annotated[
    str | None,
    typer.Option("--token", envvar="HWSEARCH_TOKEN", help="API token for --server."),
]


def _client(server: str, token: str | None) -> Any:
    from hwsearch.service.client import ServiceClient

    return ServiceClient(server, token)


@contextmanager
def _user_errors() -> Iterator[None]:
    """Turn hwsearch errors into a message and an exit code: 2 for bad input, 1 otherwise."""
    try:
        yield
    except SpecErrors as exc:
        errors.print(f"[red]error:[/red] invalid job spec ({len(exc.errors)} problem(s))")
        for problem in exc.errors:
            errors.print(
                f"  [bold]{problem.field or '(spec)'}[/bold]: {problem.reason}", highlight=False
            )
        raise typer.Exit(2) from None
    except (SpecError, StorageError, FilterError) as exc:  # a conflict is a StorageError
        errors.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(2) from None
    except HwsearchError as exc:
        errors.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(1) from None


def _open_store(url: str | None, *, create: bool = False) -> Any:
    """The store at ``url``; only commands that write (``create``) may make a new database."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    from hwsearch.db import Store
    from hwsearch.db.engine import database_url

    resolved = database_url(url)
    parsed = make_url(resolved)
    shown = parsed.render_as_string(hide_password=True)
    is_file = parsed.get_backend_name() == "sqlite" and bool(parsed.database)
    if parsed.get_backend_name() == "sqlite" and parsed.database in (None, "", ":memory:"):
        raise HwsearchError(
            f"{shown} is an in-memory database: what a command stores there is gone when it "
            "ends; name a file, e.g. --db sqlite:///hwsearch.db"
        )
    if not create and is_file and not Path(str(parsed.database)).exists():
        raise HwsearchError(
            f"no database at {shown}; run a job first, or name one with --db or HWSEARCH_DB_URL"
        )
    try:
        return Store.open(resolved)
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise HwsearchError(f"cannot open database {shown}: {reason}") from None


class Executor(StrEnum):
    local = "local"
    pool = "pool"
    ray = "ray"


OutOption = Annotated[
    Path | None, typer.Option(help="Folder for the front CSV and plot (default runs/job-ID).")
]
ExecutorOption = Annotated[Executor, typer.Option(help="Where candidates are evaluated.")]
WorkersOption = Annotated[
    int | None,
    typer.Option(
        min=1,
        help="Workers of the pool executor (default 2); for ray, most tasks at once "
        "(default: every CPU of the cluster).",
    ),
]
PluginOption = Annotated[
    list[str] | None,
    typer.Option(
        "--plugin",
        help="Module (pkg.mod or pkg.mod:func) to import first, registering families, "
        "evaluation kinds, targets, metrics or optimizers (repeatable); installed "
        "'hwsearch.plugins' entry points are loaded too.",
    ),
]


def _load_plugins(names: list[str] | None) -> None:
    from hwsearch.plugins import load_plugins

    load_plugins(names or ())


AddressOption = Annotated[
    str | None,
    typer.Option(
        help="Ray cluster to connect to, e.g. ray://head:10001 or auto (ray executor; "
        "default: RAY_ADDRESS, else a new local Ray).",
    ),
]


@app.command()
def run(
    spec_path: Annotated[Path, typer.Argument(metavar="SPEC", help="Job spec, YAML or JSON.")],
    db: DbOption = None,
    out: OutOption = None,
    executor: ExecutorOption = Executor.local,
    workers: WorkersOption = None,
    address: AddressOption = None,
    plugin: PluginOption = None,
) -> None:
    """Run a search job to the end of its budget and print its Pareto front."""
    from hwsearch.search.spec import load_spec

    with _user_errors():
        _load_plugins(plugin)
        spec = load_spec(spec_path)  # a bad spec stops here, before the database is touched
        store = _open_store(db, create=True)
        _drive(store, spec, executor, workers, out, lambda job: job.run(), address)


@app.command()
def resume(
    job_id: Annotated[int, typer.Argument(metavar="JOB")],
    db: DbOption = None,
    out: OutOption = None,
    executor: ExecutorOption = Executor.local,
    workers: WorkersOption = None,
    address: AddressOption = None,
    plugin: PluginOption = None,
) -> None:
    """Continue an interrupted job; candidates it finished are not evaluated again."""
    from hwsearch.search.spec import parse_spec

    with _user_errors():
        _load_plugins(plugin)
        store = _open_store(db)
        spec = parse_spec(store.get_job(job_id).spec)
        _drive(store, spec, executor, workers, out, lambda job: job.resume(job_id), address)


def _drive(
    store: Any,
    spec: Any,
    executor: Executor,
    workers: int | None,
    out: Path | None,
    start: Callable[[Any], Any],
    address: str | None = None,
) -> None:
    """Run a driver with a progress bar, then print the front and write its CSV and plot."""
    from hwsearch.search.driver import Progress as JobProgress
    from hwsearch.search.jobs import Job
    from hwsearch.service.fronts import load_front, to_csv
    from hwsearch.service.plot import plot_front
    from hwsearch.workers import make_executor

    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
    )
    with (
        make_executor(
            executor.value,
            workers=workers if workers is not None or executor is Executor.ray else 2,
            address=address,
        ) as pool,
        Progress(*columns, console=console, transient=False) as bar,
    ):
        task = bar.add_task(spec.name, total=spec.budget.evaluations, status="starting")

        def show(p: JobProgress) -> None:
            if p.hypervolume is None:
                bar.update(task, completed=p.evaluations)
                return
            status = (
                f"gen {p.generation}, HV {p.hypervolume:.4g}, front {len(p.front)}, "
                f"failed {p.failed}, reused {p.reused}"
                + (f", predicted {p.predicted}" if p.predicted else "")
            )
            bar.update(task, completed=p.evaluations, status=status)

        run = Job(spec, store, executor=pool, on_progress=show)  # stores its footprint
        driver = run.driver
        try:
            job = start(run)
        except KeyboardInterrupt:
            bar.stop()
            if driver.job_id is None:
                raise typer.Exit(130) from None
            done = store.get_job(driver.job_id).evaluations
            errors.print(
                f"job {driver.job_id} interrupted with {done} candidate(s) evaluated and "
                f"stored; continue it with: hwsearch resume {driver.job_id}"
            )
            raise typer.Exit(130) from None
    view = load_front(store, job.id)
    console.print(_front_table(view))
    out_dir = out or Path("runs") / f"job-{job.id}"
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "front.csv").write_text(to_csv(view))
    plot_front(store.list_candidates(job.id), view.front, out_dir / "front.png")
    predicted = f" ({driver.predicted} of them settled by prediction)" if driver.predicted else ""
    console.print(
        f"job {job.id} {job.state.value}: {job.evaluations} evaluated{predicted}, "
        f"front of {len(view.candidates)}; wrote {out_dir / 'front.csv'} and "
        f"{out_dir / 'front.png'}"
    )
    console.print(run.footprint_line, highlight=False)


@app.command()
def jobs(
    db: DbOption = None,
    state: Annotated[str | None, typer.Option(help="Only jobs in this state.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
    server: ServerOption = None,
    token: TokenOption = None,
) -> None:
    """List jobs, newest first."""
    from hwsearch.records import JobState

    with _user_errors():
        if state is not None and state not in {s.value for s in JobState}:
            raise SpecError("--state", f"{state!r} is not one of {[s.value for s in JobState]}")
        wanted = JobState(state) if state else None
        if server:
            with _client(server, token) as client:
                records = client.list_jobs(state=wanted, limit=limit)
        else:
            records = _open_store(db).list_jobs(state=wanted, limit=limit)
        # who drives a running job (or that none does: stale), when any is running
        drivers = any(job.state is JobState.RUNNING for job in records)
        columns = ["id", "name", "family", "target", "state", "evaluated", "created"]
        table = Table(*columns, *(["driver"] if drivers else []))
        for job in records:
            table.add_row(
                str(job.id),
                job.name,
                job.family,
                job.target,
                job.state.value + (" (stale)" if job.stale() else ""),
                str(job.evaluations),
                job.created_at.strftime("%Y-%m-%d %H:%M:%S"),
                *([_driver_cell(job)] if drivers else []),
            )
        console.print(table)


def _driver_cell(job: Any) -> str:
    """Who runs a running job, or since when its driver is silent (a stale job)."""
    from hwsearch.records import JobState

    lease = job.lease
    if job.state is not JobState.RUNNING or lease is None:
        return ""
    where = f"{lease.host} pid {lease.pid}"
    if job.stale():
        return f"none: last heartbeat {lease.heartbeat_at:%H:%M:%S} from {where}"
    return where


class Format(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"


@app.command()
def front(
    job_id: Annotated[int, typer.Argument(metavar="JOB")],
    db: DbOption = None,
    format: Annotated[Format, typer.Option("--format", "-f")] = Format.table,
    where: Annotated[
        str | None,
        typer.Option(help="Keep points matching e.g. 'latency_ms < 5 and accuracy >= 0.9'."),
    ] = None,
    sort: Annotated[
        str | None, typer.Option(help="Sort by a metric; prefix '-' for descending.")
    ] = None,
    server: ServerOption = None,
    token: TokenOption = None,
) -> None:
    """Show the latest Pareto front of a job."""
    from hwsearch.service.fronts import load_front, to_csv, to_json

    with _user_errors():
        if server:
            with _client(server, token) as client:
                view = client.front(job_id, where=where, sort=sort)
        else:
            view = load_front(_open_store(db), job_id, where=where, sort=sort)
        if format is Format.json:
            sys.stdout.write(to_json(view) + "\n")
        elif format is Format.csv:
            sys.stdout.write(to_csv(view))
        else:
            console.print(_front_table(view))


@app.command()
def export(
    job_id: Annotated[int, typer.Argument(metavar="JOB")],
    candidate_id: Annotated[int, typer.Argument(metavar="CANDIDATE")],
    out: Annotated[Path, typer.Option(help="Folder to write the export into.")],
    db: DbOption = None,
    server: ServerOption = None,
    token: TokenOption = None,
    plugin: PluginOption = None,
) -> None:
    """Export a candidate: config (JSON, YAML), state dict, TorchScript and a README."""
    from hwsearch.service.export import export_candidate

    with _user_errors():
        _load_plugins(plugin)
        if server:
            with _client(server, token) as client:
                result = client.export(job_id, candidate_id, out)
        else:
            result = export_candidate(_open_store(db), job_id, candidate_id, out)
        for path in result.files:
            console.print(f"wrote {path}")
        stored, rebuilt = result.stored_accuracy, result.reproduced_accuracy
        if stored is not None and rebuilt is not None and abs(stored - rebuilt) > 1e-6:
            errors.print(
                f"[yellow]warning:[/yellow] rebuilt accuracy {rebuilt:.4f} "
                f"differs from the stored {stored:.4f}"
            )


# -- the service: serve, submit, tokens --------------------------------------------------------

tokens_app = typer.Typer(help="API tokens of the server.", no_args_is_help=True)
app.add_typer(tokens_app, name="tokens")


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
    with _user_errors():
        store = _open_store(db, create=True)
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
) -> None:
    """Queue a job for a server: sent to --server, or written to the local database for
    `hwsearch serve` on it to run."""
    import time

    from hwsearch.records import JobState
    from hwsearch.search.driver import target_name
    from hwsearch.search.spec import load_spec
    from hwsearch.search.spec_files import read_spec_data
    from hwsearch.service.fronts import load_front

    terminal = {JobState.FINISHED, JobState.FAILED, JobState.CANCELLED}
    with _user_errors():
        if server:
            _, data = read_spec_data(spec_path)  # size, encoding, depth and aliases limited
            if isinstance(data, dict):
                data.setdefault("name", spec_path.stem)
            with _client(server, token) as client:
                job = client.submit(data)
                console.print(f"job {job.id} {job.state.value}")
                if not wait:
                    return
                job = client.wait(job.id)
                view = client.front(job.id) if job.state is JobState.FINISHED else None
        else:
            spec = load_spec(spec_path)
            store = _open_store(db, create=True)
            job = store.create_job(
                name=spec.name, family=spec.family, target=target_name(spec), spec=spec.to_dict()
            )
            console.print(f"job {job.id} {job.state.value}")
            if not wait:
                return
            while job.state not in terminal:
                time.sleep(1.0)
                job = store.get_job(job.id)
            view = load_front(store, job.id) if job.state is JobState.FINISHED else None
        if view is not None:
            console.print(_front_table(view))
        console.print(f"job {job.id} {job.state.value}: {job.evaluations} evaluated")
        if job.state is not JobState.FINISHED:
            if job.error:
                errors.print(f"[red]error:[/red] {job.error}", highlight=False)
            raise typer.Exit(1)


class Scope(StrEnum):
    read = "read"
    submit = "submit"
    admin = "admin"


@tokens_app.command("create")
def tokens_create(
    name: Annotated[str, typer.Option(help="Who or what the token is for.")],
    scope: Annotated[
        Scope,
        typer.Option(
            help="read: queries; submit: also submit jobs and cancel its own; admin: also "
            "cancel anyone's."
        ),
    ] = Scope.submit,
    read_only: Annotated[bool, typer.Option(help="The same as --scope read.")] = False,
    db: DbOption = None,
) -> None:
    """Create an API token; its secret is printed once and stored only as a hash."""
    from hwsearch.records import TokenScope
    from hwsearch.service.api.auth import create_token

    with _user_errors():
        if read_only and scope is not Scope.submit and scope is not Scope.read:
            raise SpecError("--read-only", f"contradicts --scope {scope.value}")
        scope = Scope.read if read_only else scope
        chosen = TokenScope(scope.value)
        secret, record = create_token(_open_store(db, create=True), name, chosen)
        errors.print(f"token {record.id} ({record.name}, {record.scope.value}); keep it now:")
        sys.stdout.write(secret + "\n")


@tokens_app.command("list")
def tokens_list(db: DbOption = None) -> None:
    """List API tokens (never their secrets)."""
    with _user_errors():
        table = Table("id", "name", "scope", "created", "revoked")
        for t in _open_store(db).list_tokens():
            table.add_row(
                str(t.id),
                t.name,
                t.scope.value,
                t.created_at.strftime("%Y-%m-%d %H:%M:%S"),
                "yes" if t.revoked else "",
            )
        console.print(table)


@tokens_app.command("revoke")
def tokens_revoke(
    token_id: Annotated[int, typer.Argument(metavar="ID")], db: DbOption = None
) -> None:
    """Revoke an API token (servers notice within their token cache time, 5 s unless
    `hwsearch serve --token-cache-s` says otherwise)."""
    with _user_errors():
        record = _open_store(db).revoke_token(token_id)
        console.print(f"token {record.id} ({record.name}) revoked")


@app.command()
def targets(
    db: DbOption = None,
    sources: Annotated[bool, typer.Option(help="Show where each factor comes from.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print the profiles as JSON.")] = False,
) -> None:
    """List the targets with their energy and carbon profiles.

    The devices of this machine (cpu, cuda:N) are added with their default profiles when
    missing; targets that jobs ran on are stored with the profile they ran with.
    """
    import json
    from dataclasses import asdict

    from hwsearch.hardware.carbon import GRID_INTENSITY
    from hwsearch.hardware.energy import meter_available
    from hwsearch.hardware.profiles import default_profile
    from hwsearch.hardware.targets import available_targets

    with _user_errors():
        store = _open_store(db, create=True)
        here = available_targets()
        for target in here:
            store.save_target(default_profile(target.name).to_dict(), replace=False)
        records = store.list_targets()
        local = {t.name: t for t in here}
        if json_out:
            data = [
                {
                    **asdict(r),
                    "created_at": r.created_at.isoformat(),
                    "updated_at": r.updated_at.isoformat(),
                }
                for r in records
            ]
            sys.stdout.write(json.dumps(data, indent=2) + "\n")
            return
        table = Table(title="Targets", box=None, pad_edge=False, header_style="bold underline")
        for name in ("name", "kind", "here"):
            table.add_column(name)
        for name in ("TDP W", "cores", "kgCO2e", "life/busy", "gCO2e/kWh", "PUE"):
            table.add_column(name, justify="right", min_width=len(name))
        table.add_column("meter", min_width=8)
        for r in records:
            grid = r.grid_gco2e_per_kwh
            if grid is None and r.region in GRID_INTENSITY:
                grid = GRID_INTENSITY[r.region].g_per_kwh
            device = local.get(r.name)
            meter = r.meter
            if device is not None and r.meter == "auto":
                counter = "nvml" if device.kind == "cuda" else "rapl"
                available = meter_available(counter, device_index=device.device_index)
                meter = counter if available else "estimate"
            table.add_row(
                r.name,
                r.kind,
                "yes" if device is not None else "no",
                f"{r.tdp_w:g}",
                str(r.cores),
                f"{r.embodied_kgco2e:g}",
                f"{r.lifetime_years:g}y/{r.busy_share:.0%}",
                f"{r.region} {'?' if grid is None else f'{grid:g}'}",
                f"{r.pue:g}",
                meter,
            )
        console.print(table)
        if sources:
            for r in records:
                console.print(f"[bold]{r.name}[/bold]")
                for factor, source in sorted(r.sources.items()):
                    console.print(f"  {factor}: {source}", highlight=False)


predictors_app = typer.Typer(help="Predictors fitted on stored measurements.", no_args_is_help=True)
app.add_typer(predictors_app, name="predictors")
FamilyOption = Annotated[str, typer.Option(help="Model family of the measurements, e.g. nb201.")]
TargetOption = Annotated[str, typer.Option(help="Target the metric was measured on.")]
MetricOption = Annotated[str, typer.Option(help="Metric to predict.")]
SourceOption = Annotated[
    list[str] | None,
    typer.Option(
        "--source",
        help="Source target of a transfer predictor (repeat; default: every other target "
        "that measured the configs).",
    ),
]


def _metric_cells(metrics: dict[str, float]) -> list[str]:
    return [
        f"{metrics[name]:.4g}" if name in metrics else "-"
        for name in ("spearman", "kendall", "within_10pct", "mape", "rmse")
    ]


@predictors_app.command("fit")
def predictors_fit(
    family: FamilyOption,
    target: TargetOption,
    metric: MetricOption = "latency_ms",
    kind: Annotated[str, typer.Option(help="ridge, forest, gp or transfer.")] = "gp",
    holdout: Annotated[
        float, typer.Option(help="Share of the measurements kept out to evaluate the fit.")
    ] = 0.2,
    seed: Annotated[int, typer.Option(help="Seed of the held-out split.")] = 0,
    source: SourceOption = None,
    db: DbOption = None,
) -> None:
    """Fit a predictor on the stored measurements and store it as a new version."""
    from hwsearch.predictors.registry import fit_stored

    with _user_errors():
        record = fit_stored(
            _open_store(db),
            family=family,
            target=target,
            metric=metric,
            kind=kind,
            holdout=holdout,
            seed=seed,
            sources=source or None,
        )
        console.print(
            f"predictor {record.family}/{record.target}/{record.metric} version "
            f"{record.version} ({record.kind}, {record.training_size} training points)"
        )
        if "sources" in record.state:
            console.print(
                f"sources: {', '.join(record.state['sources'])}", highlight=False, soft_wrap=True
            )
            dropped = record.state.get("dropped_sources") or {}
            if dropped:
                console.print(
                    "left out (configs lacking): "
                    + ", ".join(f"{name} ({n})" for name, n in dropped.items()),
                    highlight=False,
                    soft_wrap=True,
                )
        table = Table("spearman", "kendall", "within ±10%", "MAPE", "RMSE")
        table.add_row(*_metric_cells(record.metrics))
        console.print(table)


@predictors_app.command("eval")
def predictors_eval(
    family: FamilyOption,
    target: TargetOption,
    metric: MetricOption = "latency_ms",
    version: Annotated[int | None, typer.Option(help="Version (default: newest).")] = None,
    db: DbOption = None,
) -> None:
    """Evaluate a stored predictor on the stored measurements it was not fitted on."""
    from hwsearch.predictors.registry import evaluate_stored

    with _user_errors():
        record, metrics, count = evaluate_stored(
            _open_store(db), family=family, target=target, metric=metric, version=version
        )
        console.print(
            f"predictor {record.family}/{record.target}/{record.metric} version "
            f"{record.version} on {count} held-out measurement(s)"
        )
        table = Table("spearman", "kendall", "within ±10%", "MAPE", "RMSE")
        table.add_row(*_metric_cells(metrics))
        console.print(table)


@predictors_app.command("reference")
def predictors_reference(
    family: FamilyOption,
    target: TargetOption,
    metric: Annotated[str, typer.Option(help="Metric the sources measured.")] = "latency_ms",
    count: Annotated[int, typer.Option(help="How many configs to measure first.")] = 10,
    source: SourceOption = None,
    seed: Annotated[int, typer.Option(help="Seed of the first pick.")] = 0,
    json_out: Annotated[bool, typer.Option("--json", help="Print the configs as JSON.")] = False,
    db: DbOption = None,
) -> None:
    """Which stored configs (measured on the sources, not on the target) to measure first
    on a new device, so that a transfer predictor learns the most from few measurements."""
    import json

    from hwsearch.predictors.stored_transfer import reference_configs

    with _user_errors():
        chosen = reference_configs(
            _open_store(db),
            family=family,
            target=target,
            metric=metric,
            count=count,
            sources=source or None,
            seed=seed,
        )
        if json_out:
            payload = {
                "family": family,
                "target": target,
                "metric": metric,
                "sources": chosen.sources,
                "configs": [{"config_hash": h, "config": c} for h, c in chosen.configs],
            }
            sys.stdout.write(json.dumps(payload, indent=2) + "\n")
            return
        console.print(
            f"measure first on {target}: {len(chosen.configs)} of {chosen.pool} config(s) "
            f"by their {metric} on {', '.join(chosen.sources)}",
            highlight=False,
            soft_wrap=True,
        )
        table = Table("#", "config hash", "config")
        for i, (digest, config) in enumerate(chosen.configs, start=1):
            table.add_row(str(i), digest[:12], _short_config(config))
        console.print(table)


@predictors_app.command("list")
def predictors_list(
    family: Annotated[str | None, typer.Option(help="Only this family.")] = None,
    target: Annotated[str | None, typer.Option(help="Only this target.")] = None,
    metric: Annotated[str | None, typer.Option(help="Only this metric.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the versions as JSON.")] = False,
    db: DbOption = None,
) -> None:
    """List the stored predictor versions with their metrics."""
    import json

    with _user_errors():
        records = _open_store(db).list_predictors(family=family, target=target, metric=metric)
        if json_out:
            fields = ("family", "target", "metric", "version", "kind", "training_size")
            rows = [
                {
                    **{name: getattr(r, name) for name in fields},
                    "metrics": r.metrics,
                    "features": len(r.features),
                    "created_at": r.created_at.isoformat(),
                }
                for r in records
            ]
            sys.stdout.write(json.dumps(rows, indent=2) + "\n")
            return
        table = Table("predictor", "v", "kind", "n", "spearman", "±10%", "MAPE", "created")
        for r in records:
            cells = _metric_cells(r.metrics)
            table.add_row(
                f"{r.family}/{r.target}/{r.metric}",
                str(r.version),
                r.kind,
                str(r.training_size),
                cells[0],
                cells[2],
                cells[3],
                r.created_at.strftime("%Y-%m-%d %H:%M"),
            )
        console.print(table)


@db_app.command("upgrade")
def db_upgrade(db: DbOption = None) -> None:
    """Apply the schema migrations to the database."""
    from hwsearch.db.engine import current_revision, database_url, upgrade

    with _user_errors():
        url = database_url(db)
        upgrade(url)
        console.print(f"database at revision {current_revision(url)}")


@db_app.command("current")
def db_current(db: DbOption = None) -> None:
    """Print the schema revision of the database."""
    from hwsearch.db.engine import current_revision, database_url

    with _user_errors():
        console.print(str(current_revision(database_url(db))))


def _front_table(view: Any) -> Table:
    """The front as a table: objectives (with their direction), provenance, compact config."""
    from hwsearch.service.fronts import unsettled_timing

    front = view.front
    title = (
        f"Pareto front of job {front.job_id}: {len(view.candidates)} point(s), "
        f"hypervolume {front.hypervolume:.4g}, {front.evaluations} evaluated"
    )
    table = Table(title=title)
    table.add_column("id", justify="right")
    for metric, direction in zip(front.objectives, front.directions, strict=True):
        table.add_column(metric + (" ↑" if direction == "maximize" else " ↓"), justify="right")
    carbon = _carbon_breakdown_shown(view)
    if carbon:
        table.add_column("operational g/1k", justify="right")
        table.add_column("embodied g/1k", justify="right")
        table.add_column("energy J/inf.", justify="right")
    table.add_column("measured")
    table.add_column("config", overflow="fold", ratio=1)
    measured = {p.candidate_id: p.measured for p in front.points}
    for c in view.candidates:
        table.add_row(
            str(c.id),
            *(f"{c.metrics[m].value:.4g}" for m in front.objectives),
            *(_carbon_cells(c) if carbon else ()),
            _measured_label(measured.get(c.id, False), unsettled_timing(c)),
            _short_config(c.config),
        )
    return table


_CARBON_PARTS = (
    "carbon_operational_g_per_1k",
    "carbon_embodied_g_per_1k",
    "energy_j_per_inference",
)


def _carbon_breakdown_shown(view: Any) -> bool:
    """Whether the front's table shows carbon's parts: a carbon objective and every part."""
    if not any(m.startswith("carbon") for m in view.front.objectives):
        return False
    return all(all(p in c.metrics for p in _CARBON_PARTS) for c in view.candidates)


def _carbon_cells(candidate: Any) -> list[str]:
    """Operational and embodied carbon, and the energy with its provenance and meter."""
    operational, embodied, energy = (candidate.metrics[p] for p in _CARBON_PARTS)
    meter = energy.details.get("meter", "?")
    return [
        f"{operational.value:.3g}",
        f"{embodied.value:.3g}",
        f"{energy.value:.3g} ({energy.provenance.value}, {meter})",
    ]


def _measured_label(measured: bool, unsettled_cv: float | None) -> str:
    if not measured:
        return "predicted"
    return "yes" if unsettled_cv is None else f"yes, noisy (cv {unsettled_cv:.2f})"


def _short_config(config: dict[str, Any]) -> str:
    """``stages=2 width=16/32 ...``: per-block lists joined by '/'."""

    def show(value: Any) -> str:
        if isinstance(value, list):
            return "/".join(show(v) for v in value)
        return f"{value:g}" if isinstance(value, float) else str(value)

    return " ".join(f"{key}={show(value)}" for key, value in sorted(config.items()))
