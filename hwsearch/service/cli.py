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

from hwsearch.errors import FilterError, HwsearchError, SpecError, SpecErrors

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
    except (SpecError, FilterError) as exc:
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


OutOption = Annotated[
    Path | None, typer.Option(help="Folder for the front CSV and plot (default runs/job-ID).")
]
ExecutorOption = Annotated[Executor, typer.Option(help="Where candidates are evaluated.")]
WorkersOption = Annotated[int, typer.Option(min=1, help="Workers of the pool executor.")]


@app.command()
def run(
    spec_path: Annotated[Path, typer.Argument(metavar="SPEC", help="Job spec, YAML or JSON.")],
    db: DbOption = None,
    out: OutOption = None,
    executor: ExecutorOption = Executor.local,
    workers: WorkersOption = 2,
) -> None:
    """Run a search job to the end of its budget and print its Pareto front."""
    from hwsearch.search.spec import load_spec

    with _user_errors():
        spec = load_spec(spec_path)  # a bad spec stops here, before the database is touched
        store = _open_store(db, create=True)
        _drive(store, spec, executor, workers, out, lambda driver: driver.run())


@app.command()
def resume(
    job_id: Annotated[int, typer.Argument(metavar="JOB")],
    db: DbOption = None,
    out: OutOption = None,
    executor: ExecutorOption = Executor.local,
    workers: WorkersOption = 2,
) -> None:
    """Continue an interrupted job; candidates it finished are not evaluated again."""
    from hwsearch.search.spec import parse_spec

    with _user_errors():
        store = _open_store(db)
        spec = parse_spec(store.get_job(job_id).spec)
        _drive(store, spec, executor, workers, out, lambda driver: driver.resume(job_id))


def _drive(
    store: Any,
    spec: Any,
    executor: Executor,
    workers: int,
    out: Path | None,
    start: Callable[[Any], Any],
) -> None:
    """Run a driver with a progress bar, then print the front and write its CSV and plot."""
    from hwsearch.search.driver import Driver
    from hwsearch.search.driver import Progress as JobProgress
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
        make_executor(executor.value, workers=workers) as pool,
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
            )
            bar.update(task, completed=p.evaluations, status=status)

        driver = Driver(spec, store, executor=pool, on_progress=show)
        try:
            job = start(driver)
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
    console.print(
        f"job {job.id} {job.state.value}: {job.evaluations} evaluated, "
        f"front of {len(view.candidates)}; wrote {out_dir / 'front.csv'} and "
        f"{out_dir / 'front.png'}"
    )


@app.command()
def jobs(
    db: DbOption = None,
    state: Annotated[str | None, typer.Option(help="Only jobs in this state.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
) -> None:
    """List jobs, newest first."""
    from hwsearch.records import JobState

    with _user_errors():
        if state is not None and state not in {s.value for s in JobState}:
            raise SpecError("--state", f"{state!r} is not one of {[s.value for s in JobState]}")
        store = _open_store(db)
        records = store.list_jobs(state=JobState(state) if state else None, limit=limit)
        table = Table("id", "name", "family", "target", "state", "evaluated", "created")
        for job in records:
            table.add_row(
                str(job.id),
                job.name,
                job.family,
                job.target,
                job.state.value,
                str(job.evaluations),
                job.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            )
        console.print(table)


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
) -> None:
    """Show the latest Pareto front of a job."""
    from hwsearch.service.fronts import load_front, to_csv, to_json

    with _user_errors():
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
) -> None:
    """Export a candidate: config (JSON, YAML), state dict, TorchScript and a README."""
    from hwsearch.service.export import export_candidate

    with _user_errors():
        result = export_candidate(_open_store(db), job_id, candidate_id, out)
        for path in result.files:
            console.print(f"wrote {path}")
        stored, rebuilt = result.stored_accuracy, result.reproduced_accuracy
        if stored is not None and rebuilt is not None and abs(stored - rebuilt) > 1e-6:
            errors.print(
                f"[yellow]warning:[/yellow] rebuilt accuracy {rebuilt:.4f} "
                f"differs from the stored {stored:.4f}"
            )


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
    table.add_column("measured")
    table.add_column("config", overflow="fold", ratio=1)
    measured = {p.candidate_id: p.measured for p in front.points}
    for c in view.candidates:
        table.add_row(
            str(c.id),
            *(f"{c.metrics[m].value:.4g}" for m in front.objectives),
            _measured_label(measured.get(c.id, False), unsettled_timing(c)),
            _short_config(c.config),
        )
    return table


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
