"""Commands that run jobs and list them: ``run``, ``resume``, ``jobs``."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from hwsearch.errors import JobInterrupted, SpecError
from hwsearch.records import CandidateStatus
from hwsearch.service.cli.common import (
    AddressOption,
    DbOption,
    Executor,
    ExecutorSettingOption,
    NoReuseOption,
    OutOption,
    PluginOption,
    RunExecutorOption,
    ServerOption,
    TokenOption,
    WideOption,
    WorkersOption,
    app,
    console,
    errors,
    evaluated,
    executor_settings,
    import_plugins,
    open_store,
    server_client,
    user_errors,
)
from hwsearch.service.cli.tables import front_table


@app.command()
def run(
    spec_path: Annotated[Path, typer.Argument(metavar="SPEC", help="Job spec, YAML or JSON.")],
    db: DbOption = None,
    out: OutOption = None,
    executor: RunExecutorOption = None,
    workers: WorkersOption = None,
    address: AddressOption = None,
    executor_setting: ExecutorSettingOption = None,
    plugin: PluginOption = None,
    no_reuse: NoReuseOption = False,
    wide: WideOption = False,
) -> None:
    """Run a search job to the end of its budget and print its Pareto front."""
    from hwsearch.search.spec import load_spec

    with user_errors():
        import_plugins(plugin)
        spec = load_spec(spec_path)  # a bad spec stops here, before the database is touched
        where = _placement(spec, executor, workers, address, executor_setting)  # and here
        if no_reuse:
            spec = spec.model_copy(update={"reuse": False})
        store = open_store(db, create=True)
        _drive(store, spec, where, out, lambda job: job.run(), wide)


@app.command()
def check(
    spec_path: Annotated[Path, typer.Argument(metavar="SPEC", help="Job spec, YAML or JSON.")],
    plugin: PluginOption = None,
) -> None:
    """Check a job spec without running it: every problem named by its field (exit 2)."""
    from hwsearch.search.spec import load_spec

    with user_errors():
        import_plugins(plugin)
        spec = load_spec(spec_path)
    console.print(
        f"{spec_path}: a valid spec ({spec.name}, family {spec.family}, "
        f"{len(spec.objectives)} objective(s))",
        highlight=False,
    )


@app.command()
def resume(
    job_id: Annotated[int, typer.Argument(metavar="JOB")],
    db: DbOption = None,
    out: OutOption = None,
    executor: RunExecutorOption = None,
    workers: WorkersOption = None,
    address: AddressOption = None,
    executor_setting: ExecutorSettingOption = None,
    plugin: PluginOption = None,
    wide: WideOption = False,
) -> None:
    """Continue an interrupted (or failed, cancelled, killed) job; candidates it finished
    are not evaluated again."""
    from hwsearch.records import JobState
    from hwsearch.search.spec import parse_spec

    with user_errors():
        import_plugins(plugin)
        store = open_store(db)
        stored = store.get_job(job_id)
        if stored.state is JobState.FINISHED:  # nothing left to do: not an error
            console.print(
                f"job {job_id} is already finished ({evaluated(stored)}); nothing "
                f"to resume. Its front: hwsearch front {job_id}",
                highlight=False,
            )
            return
        spec = parse_spec(stored.spec)
        where = _placement(spec, executor, workers, address, executor_setting)
        _drive(store, spec, where, out, lambda job: job.resume(job_id), wide)


def _placement(
    spec: Any,
    executor: Executor | None,
    workers: int | None,
    address: str | None,
    pairs: list[str] | None,
) -> Any:
    """The spec's ``executor`` section with the command's options over it, checked
    (an :class:`~hwsearch.workers.ExecutorSettings`)."""
    from hwsearch.workers import ExecutorSettings
    from hwsearch.workers.placement import RAY_FIELDS

    settings = spec.executor or ExecutorSettings()
    given = executor_settings(pairs)
    kind = executor.value if executor is not None else given.get("type") or settings.type
    kind = kind or "local"
    ignored = sorted(name for name in given if name in RAY_FIELDS)
    if ignored and kind != "ray":  # the spec's own Ray placement is dropped; these were asked for
        raise SpecError(
            f"--executor-setting {ignored[0]}",
            f"only the ray executor reads {', '.join(ignored)}, not {kind!r}: the run would "
            "ignore it",
        )
    if given:
        settings = ExecutorSettings.parse({**settings.model_dump(exclude_unset=True), **given})
    chosen = settings.merged(
        type=executor.value if executor is not None else None, workers=workers, address=address
    )
    return chosen


def _drive(
    store: Any,
    spec: Any,
    where: Any,
    out: Path | None,
    start: Callable[[Any], Any],
    wide: bool = False,
) -> None:
    """Run a driver with a progress bar, then print the front and write its CSV and plot.
    Ctrl-C and SIGTERM leave the job ``interrupted``, for ``hwsearch resume``."""
    from hwsearch.search.driver import Progress as JobProgress
    from hwsearch.search.driver import reuse_summary
    from hwsearch.search.jobs import Job
    from hwsearch.service.fronts import load_front, to_csv
    from hwsearch.service.plot import plot_front
    from hwsearch.workers import executor_for

    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
    )
    with (
        executor_for(where, default_workers=2) as pool,
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

        crowded = _crowded_cores(spec, pool)
        if crowded:
            errors.print(f"warning: {crowded}", highlight=False)
        run = Job(spec, store, executor=pool, on_progress=show)  # stores its footprint
        driver = run.driver
        try:
            with _sigterm_interrupts():
                job = start(run)
        except KeyboardInterrupt as exc:
            bar.stop()
            code = 143 if isinstance(exc, JobInterrupted) else 130
            if driver.job_id is None:
                raise typer.Exit(code) from None
            stopped = store.get_job(driver.job_id)
            failed = f" (and {stopped.failed} failed)" if stopped.failed else ""
            errors.print(
                f"job {driver.job_id} interrupted with {stopped.evaluations} candidate(s) "
                f"evaluated{failed} and stored; continue it with: hwsearch resume "
                f"{driver.job_id}"
            )
            raise typer.Exit(code) from None
    reused = reuse_summary(driver.reused_from)
    if reused:
        console.print(
            f"{reused}; not measured again (--no-reuse, or reuse: false in the spec, "
            "measures them)",
            highlight=False,
        )
    view = load_front(store, job.id)
    console.print(front_table(view, wide=wide))
    out_dir = out or Path("runs") / f"job-{job.id}"
    _claim_output(out_dir, store.url, job.id, chosen=out is not None)
    (out_dir / "front.csv").write_text(to_csv(view))
    plot_front(store.list_candidates(job.id), view.front, out_dir / "front.png")
    predicted = f" ({driver.predicted} of them settled by prediction)" if driver.predicted else ""
    failed = f", {job.failed} failed" if job.failed else ""
    console.print(
        f"job {job.id} {job.state.value}: {job.evaluations} evaluated{predicted}{failed}, "
        f"front of {len(view.candidates)}; wrote {out_dir / 'front.csv'} and "
        f"{out_dir / 'front.png'}"
    )
    console.print(run.footprint_line, highlight=False)
    candidates = store.list_candidates(job.id)
    for warning in (noisy_summary(candidates), failed_summary(candidates)):
        if warning:
            errors.print(f"warning: {warning}", highlight=False)


#: the file of a run's output folder that says whose results it holds
OUTPUT_SOURCE = ".hwsearch-source"


def _claim_output(out_dir: Path, db_url: str, job_id: int, *, chosen: bool) -> None:
    """Make ``out_dir`` for job ``job_id`` of ``db_url``, warning where it held the results
    of another database's job: the default ``runs/job-N`` is named by the job's id alone,
    which each database counts from 1."""
    from sqlalchemy.engine import make_url

    source = f"{make_url(db_url).render_as_string(hide_password=True)} job {job_id}"
    marker = out_dir / OUTPUT_SOURCE
    before = marker.read_text().strip() if marker.is_file() else None
    if before is not None and before != source:
        hint = "" if chosen else "; --out FOLDER keeps both"
        errors.print(
            f"warning: {out_dir} held the results of {before}; overwritten with those of "
            f"{source}{hint}",
            highlight=False,
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    marker.write_text(source + "\n")


#: The metrics whose details say whether their measurement was noisy.
TIMED = ("latency_ms", "ttft_ms", "decode_ms_per_token")


def noisy_summary(candidates: Any) -> str | None:
    """A warning when some of the candidates' measurements are flagged ``noisy`` (the
    machine's load or the samples' dispersion), with the most frequent reason."""
    flagged = total = 0
    reasons: dict[str, int] = {}
    for candidate in candidates:
        for name in TIMED:
            metric = candidate.metrics.get(name)
            if metric is None or "noisy" not in metric.details:
                continue
            total += 1
            if metric.details["noisy"]:
                flagged += 1
                for reason in metric.details.get("noisy_reasons") or []:
                    kind = _reason_kind(str(reason))
                    reasons[kind] = reasons.get(kind, 0) + 1
    if not flagged:
        return None
    top = max(reasons, key=reasons.__getitem__) if reasons else "noisy"
    return (
        f"{flagged} of {total} measurement(s) are noisy (most often: {top}); their "
        "timings are not clean figures: each one's details hold the load (load, "
        "noisy_reasons); measure again on a quieter machine"
    )


#: failed candidates a run names, with their reasons
FAILED_SHOWN = 3


def failed_summary(candidates: Any) -> str | None:
    """A warning naming the candidates whose evaluation raised, with the first line of each
    one's error (its whole traceback is stored on the candidate: ``GET
    /jobs/{id}/candidates/{cid}``); the budget counted them."""
    failed = [c for c in candidates if c.status is CandidateStatus.FAILED]
    if not failed:
        return None
    lines = []
    for candidate in failed[:FAILED_SHOWN]:
        first = (candidate.error or "").strip().splitlines() or ["no reason stored"]
        lines.append(f"  candidate {candidate.id} {candidate.config}: {first[0]}")
    more = f"\n  ... and {len(failed) - FAILED_SHOWN} more" if len(failed) > FAILED_SHOWN else ""
    return (
        f"{len(failed)} candidate(s) failed; the budget counted them and the search went "
        "on without them:\n" + "\n".join(lines) + more
    )


def _reason_kind(reason: str) -> str:
    """The kind of a noisy reason (:mod:`hwsearch.hardware.load`), without its numbers."""
    for key, kind in (
        ("other processes", "other processes on the cores"),
        ("load average", "a high load average"),
        ("dispersion", "dispersion above target_cv"),
    ):
        if key in reason:
            return kind
    return reason


def _crowded_cores(spec: Any, executor: Any) -> str | None:
    """Why the executor's workers and the spec's thread counts overfill this machine's
    cores (local executors only; a Ray cluster's nodes are not this machine)."""
    from hwsearch.hardware.threads import WorkerThreads, usable_cores

    if executor.cores_per_worker is not None:  # Ray reserves the cores itself
        return None
    workers = executor.max_workers
    given = spec.threads.model_dump() if spec.threads is not None else {}
    threads = WorkerThreads.from_task({**given, "workers": workers})
    measurement = getattr(spec.measurement, "threads", 1)
    most = max(threads.training, threads.evaluation, measurement)
    cores = usable_cores()
    if workers * most <= cores:
        return None
    return (
        f"{workers} worker(s) x {most} thread(s) need more than the {cores} usable core(s): "
        "timings will be taken on shared cores"
    )


@contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """SIGTERM stops the run as Ctrl-C does (the job is left ``interrupted``, not killed
    mid-write); the previous handler comes back afterwards. Main thread only."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise JobInterrupted("interrupted (SIGTERM)")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


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

    with user_errors():
        if state is not None and state not in {s.value for s in JobState}:
            raise SpecError("--state", f"{state!r} is not one of {[s.value for s in JobState]}")
        wanted = JobState(state) if state else None
        if server:
            with server_client(server, token) as client:
                records = client.list_jobs(state=wanted, limit=limit)
        else:
            records = open_store(db).list_jobs(state=wanted, limit=limit)
        # who drives a running job (or that none does: interrupted), when any is running
        drivers = any(job.state is JobState.RUNNING for job in records)
        columns = ["id", "name", "family", "target", "state", "evaluated", "created"]
        table = Table(*columns, *(["driver"] if drivers else []))
        for job in records:
            table.add_row(
                str(job.id),
                job.name,
                job.family,
                job.target,
                _state_cell(job),
                f"{job.evaluations} ({job.failed} failed)" if job.failed else str(job.evaluations),
                job.created_at.strftime("%Y-%m-%d %H:%M:%S"),
                *([_driver_cell(job)] if drivers else []),
            )
        console.print(table)


@app.command()
def cancel(
    job_id: Annotated[int, typer.Argument(metavar="JOB", help="Id of the job.")],
    db: DbOption = None,
    server: ServerOption = None,
    token: TokenOption = None,
) -> None:
    """Cancel a job: a queued or interrupted one at once; a running one stops after the
    evaluation in flight, keeping what it finished (hwsearch resume continues it)."""
    from hwsearch.records import JobState

    with user_errors():
        if server:
            with server_client(server, token) as client:
                job = client.cancel(job_id)
        else:
            job = open_store(db).request_cancel(job_id)
    if job.state is JobState.RUNNING:
        console.print(
            f"job {job_id}: cancel requested; it stops after the evaluation in flight "
            f"({evaluated(job)} so far)"
        )
    else:
        console.print(f"job {job_id} {job.state.value}: {evaluated(job)}")


def _state_cell(job: Any) -> str:
    """The state shown: a running job whose driver is gone is interrupted (resumable)."""
    if job.stale():
        return f"{job.shown_state().value} (driver gone; hwsearch resume {job.id})"
    if job.state.value == "interrupted":
        return f"interrupted (hwsearch resume {job.id})"
    return str(job.state.value)


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
