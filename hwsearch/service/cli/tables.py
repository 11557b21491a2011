"""Tables and cells the commands print (a job's front, its carbon, configs)."""

from __future__ import annotations

from typing import Any

from rich.table import Table


def front_table(view: Any) -> Table:
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
            short_config(c.config),
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


def short_config(config: dict[str, Any]) -> str:
    """``stages=2 width=16/32 ...``: per-block lists joined by '/'."""

    def show(value: Any) -> str:
        if isinstance(value, list):
            return "/".join(show(v) for v in value)
        return f"{value:g}" if isinstance(value, float) else str(value)

    return " ".join(f"{key}={show(value)}" for key, value in sorted(config.items()))
