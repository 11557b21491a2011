"""Commands that read a job's results: ``front``, ``export``."""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from hwsearch.service.cli.common import (
    DbOption,
    PluginOption,
    ServerOption,
    TokenOption,
    WideOption,
    app,
    console,
    errors,
    import_plugins,
    open_store,
    server_client,
    user_errors,
)
from hwsearch.service.cli.tables import front_table


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
    wide: WideOption = False,
) -> None:
    """Show the latest Pareto front of a job."""
    from hwsearch.service.fronts import load_front, to_csv, to_json

    with user_errors():
        if server:
            with server_client(server, token) as client:
                view = client.front(job_id, where=where, sort=sort)
        else:
            view = load_front(open_store(db), job_id, where=where, sort=sort)
        if format is Format.json:
            sys.stdout.write(to_json(view) + "\n")
        elif format is Format.csv:
            sys.stdout.write(to_csv(view))
        else:
            console.print(front_table(view, wide=wide))


@app.command()
def compare(
    job_ids: Annotated[list[int], typer.Argument(metavar="JOB JOB...", help="Two jobs or more.")],
    db: DbOption = None,
    reference: Annotated[
        str | None,
        typer.Option(
            help="The common reference point, METRIC=VALUE,... (default: the worst value of "
            "all the fronts' points plus 10% of their range, per objective)."
        ),
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="The plot's PNG (default compare-JOB-JOB.png here).")
    ] = None,
    server: ServerOption = None,
    token: TokenOption = None,
) -> None:
    """Compare jobs' fronts by hypervolume on one common reference point (each job's own
    hypervolume uses its own reference point, so those do not compare), with a plot."""
    from rich.table import Table

    from hwsearch.service.compare import compare_fronts, parse_reference
    from hwsearch.service.fronts import load_front
    from hwsearch.service.plot import plot_comparison

    with user_errors():
        if server:
            with server_client(server, token) as client:
                views = [client.front(job_id) for job_id in job_ids]
        else:
            store = open_store(db)
            views = [load_front(store, job_id) for job_id in job_ids]
        given = parse_reference(reference, views[0].front.objectives)
        result = compare_fronts(views, given)
        point = ", ".join(
            f"{m} {v:.4g}" for m, v in zip(result.objectives, result.reference, strict=True)
        )
        table = Table(
            title=f"Hypervolume on one reference point ({point}; "
            + ("given" if result.reference_given else "from all the fronts' points")
            + ")"
        )
        for column in ("job", "front points", "evaluated", "hypervolume", "on joint front"):
            table.add_column(column, justify="right")
        table.add_column("own HV (own reference, not comparable)", justify="right")
        for job in result.jobs:
            table.add_row(
                str(job.job_id),
                str(job.points),
                str(job.evaluations),
                f"{job.hypervolume:.4g}",
                f"{job.on_joint_front} of {job.points}",
                f"{job.own_hypervolume:.4g}",
            )
        console.print(table)
        console.print(f"all the fronts together: hypervolume {result.joint_hypervolume:.4g}")
        path = out or Path(f"compare-{'-'.join(str(j) for j in job_ids)}.png")
        plot_comparison(views, result, path)
        console.print(f"wrote {path}")


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

    with user_errors():
        import_plugins(plugin)
        if server:
            with server_client(server, token) as client:
                result = client.export(job_id, candidate_id, out)
        else:
            result = export_candidate(open_store(db), job_id, candidate_id, out)
        for path in result.files:
            console.print(f"wrote {path}")
        stored, rebuilt = result.stored_accuracy, result.reproduced_accuracy
        if stored is not None and rebuilt is not None and abs(stored - rebuilt) > 1e-6:
            errors.print(
                f"[yellow]warning:[/yellow] rebuilt accuracy {rebuilt:.4f} "
                f"differs from the stored {stored:.4f}"
            )
