"""Tables and cells the commands print (a job's front, its carbon, configs)."""

from __future__ import annotations

from typing import Any

from rich.markup import escape
from rich.table import Table

#: The widest a config summary gets in the default (narrow) table.
SUMMARY_WIDTH = 36


def front_title(view: Any) -> str:
    """``Pareto front of job 3: 10 of 22 points ...``, saying the hypervolume is the job's
    own (measured against this job's reference point, so not comparable with another's)."""
    front = view.front
    total = len(front.points)
    shown = len(view.candidates)
    points = f"{shown} of {total} points" if shown != total else f"{total} point(s)"
    return (
        f"Pareto front of job {front.job_id}: {points}, {front.evaluations} evaluated; "
        f"hypervolume {front.hypervolume:.4g} against this job's own reference point "
        "(not comparable across jobs: hwsearch compare JOB JOB)"
    )


def front_table(view: Any, *, wide: bool = False) -> Table:
    """The front as a table: objectives (with their direction), provenance, and a config
    summary of one line (the knobs that differ between the points), or with ``wide`` every
    knob of each config."""
    from hwsearch.service.fronts import unsettled_timing

    front = view.front
    table = Table(title=front_title(view))
    table.add_column("id", justify="right")
    for metric, direction in zip(front.objectives, front.directions, strict=True):
        table.add_column(metric + (" ↑" if direction == "maximize" else " ↓"), justify="right")
    carbon = _carbon_breakdown_shown(view)
    if carbon:
        table.add_column("operational g/1k", justify="right")
        table.add_column("embodied g/1k", justify="right")
        table.add_column("energy J/inf.", justify="right")
    table.add_column("measured")
    varying = _varying_keys([c.config for c in view.candidates])
    if wide:
        table.add_column("config", overflow="fold", ratio=1)
    else:
        heading = "config (differing knobs; --wide: all)" if varying else "config (--wide: all)"
        table.add_column(heading, overflow="ellipsis", no_wrap=True, max_width=SUMMARY_WIDTH)
    measured = {p.candidate_id: p.measured for p in front.points}
    for c in view.candidates:
        config = c.config if wide or not varying else {k: c.config.get(k) for k in varying}
        table.add_row(
            str(c.id),
            *(f"{c.metrics[m].value:.4g}" for m in front.objectives),
            *(_carbon_cells(c) if carbon else ()),
            _measured_label(measured.get(c.id, False), unsettled_timing(c)),
            escape(short_config(config)),  # keys such as layers[head] are not markup
        )
    return table


def _varying_keys(configs: list[dict[str, Any]]) -> list[str]:
    """The config keys whose values are not the same in every config, sorted."""
    keys = sorted({k for config in configs for k in config})
    return [k for k in keys if len({repr(config.get(k)) for config in configs}) > 1]


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


def short_config(config: dict[str, Any]) -> str:
    """``stages=2 width=16/32 ...``: per-block lists joined by '/'."""

    def show(value: Any) -> str:
        if isinstance(value, list):
            return "/".join(show(v) for v in value)
        return f"{value:g}" if isinstance(value, float) else str(value)

    return " ".join(f"{key}={show(value)}" for key, value in sorted(config.items()))
