"""``predictors``: fit, evaluate and list predictors on stored measurements."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from hwsearch.service.cli.common import (
    DbOption,
    app,
    console,
    open_store,
    user_errors,
)
from hwsearch.service.cli.tables import short_config

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

    with user_errors():
        record = fit_stored(
            open_store(db),
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

    with user_errors():
        record, metrics, count = evaluate_stored(
            open_store(db), family=family, target=target, metric=metric, version=version
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

    with user_errors():
        chosen = reference_configs(
            open_store(db),
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
            table.add_row(str(i), digest[:12], escape(short_config(config)))
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

    with user_errors():
        records = open_store(db).list_predictors(family=family, target=target, metric=metric)
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
