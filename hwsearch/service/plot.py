"""A picture of a job's search: every evaluated candidate, the front highlighted."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hwsearch.records import CandidateRecord, CandidateStatus, FrontRecord


def plot_front(candidates: list[CandidateRecord], front: FrontRecord, path: Path) -> Path:
    """Write a PNG scatter of the first two objectives (colour: the third, if any)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    objectives = front.objectives
    x_name, y_name = (objectives[1], objectives[0]) if len(objectives) > 1 else (objectives[0],) * 2
    colour = objectives[2] if len(objectives) > 2 else None
    done = [
        c
        for c in candidates
        if c.status == CandidateStatus.DONE and all(o in c.metrics for o in objectives)
    ]
    on_front = {p.candidate_id for p in front.points}
    fig, ax = plt.subplots(figsize=(7, 5), dpi=120)
    rest = [c for c in done if c.id not in on_front]
    best = sorted((c for c in done if c.id in on_front), key=lambda c: c.metrics[x_name].value)

    def xs(cs: list[CandidateRecord]) -> list[float]:
        return [c.metrics[x_name].value for c in cs]

    def ys(cs: list[CandidateRecord]) -> list[float]:
        return [c.metrics[y_name].value for c in cs]

    ax.scatter(xs(rest), ys(rest), c="lightgrey", s=25, label="evaluated", edgecolors="grey")
    style: dict[str, Any] = {"s": 60, "label": "Pareto front", "edgecolors": "black", "zorder": 3}
    if colour:
        style.update(c=[c.metrics[colour].value for c in best], cmap="viridis")
    points = ax.scatter(xs(best), ys(best), **style)
    if colour:
        fig.colorbar(points, ax=ax, label=colour)
    ax.set_xlabel(x_name)
    ax.set_ylabel(y_name)
    ax.set_title(
        f"job {front.job_id}: {len(best)} front points of {len(done)} evaluated, "
        f"HV {front.hypervolume:.4g}"
    )
    ax.grid(alpha=0.3)
    ax.legend(loc="best")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
