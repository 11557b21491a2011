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
        f"HV {front.hypervolume:.4g} (own reference point)"
    )
    ax.grid(alpha=0.3)
    ax.legend(loc="best")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_comparison(views: list[Any], comparison: Any, path: Path) -> Path:
    """Write a PNG of the jobs' fronts on their first two objectives, one colour per job,
    each as a staircase, with the common reference point and each job's hypervolume on it
    in the legend (:mod:`hwsearch.service.compare`)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    objectives = comparison.objectives
    x_name, y_name = (objectives[1], objectives[0]) if len(objectives) > 1 else (objectives[0],) * 2
    fig, ax = plt.subplots(figsize=(7, 5), dpi=120)
    for view, job in zip(views, comparison.jobs, strict=True):
        points = sorted(view.front.points, key=lambda p: p.values[x_name])
        xs = [p.values[x_name] for p in points]
        ys = [p.values[y_name] for p in points]
        label = f"job {job.job_id}: {job.points} points, HV {job.hypervolume:.4g}"
        (line,) = ax.step(xs, ys, where="post", alpha=0.6)
        ax.scatter(xs, ys, s=40, color=line.get_color(), edgecolors="black", label=label, zorder=3)
    ref = dict(zip(objectives, comparison.reference, strict=True))
    ax.scatter(
        [ref[x_name]],
        [ref[y_name]],
        marker="x",
        s=80,
        color="black",
        label="common reference point",
        zorder=4,
    )
    ax.set_xlabel(x_name)
    ax.set_ylabel(y_name)
    ax.set_title(
        f"jobs {', '.join(str(j.job_id) for j in comparison.jobs)} on one reference point"
        + (f" ({len(objectives)} objectives; first two shown)" if len(objectives) > 2 else "")
    )
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
