"""Pareto fronts and hypervolume for mixed minimised / maximised objectives.

``values`` is an ``(n, m)`` array in each metric's own units and ``directions`` says per
column whether it is minimised or maximised; maximised columns are negated internally.
Hypervolume is pymoo's (``pymoo.indicators.hv.HV``).

The hypervolume reference point is given in the metrics' units too. The driver fixes it once,
with :func:`default_reference_point` over the first generation (or from the objectives'
``reference``), so that the hypervolumes of later generations are comparable.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

IntArray = NDArray[np.intp]


def _signs(directions: Sequence[str], m: int) -> NDArray[np.float64]:
    if len(directions) != m:
        raise ValueError(f"got {len(directions)} directions for {m} objective columns")
    signs = []
    for d in directions:
        if d not in ("minimize", "maximize"):
            raise ValueError(f"direction must be 'minimize' or 'maximize', got {d!r}")
        signs.append(1.0 if d == "minimize" else -1.0)
    return np.asarray(signs)


def _as_values(values: ArrayLike, directions: Sequence[str]) -> NDArray[np.float64]:
    """``values`` as a 2-D array of minimised objectives."""
    array = np.asarray(values, dtype=float)
    if array.ndim == 1 and array.size == 0:
        array = array.reshape(0, len(directions))
    if array.ndim != 2:
        raise ValueError(f"values must be a 2-D array (points x objectives), got {array.shape}")
    return array * _signs(directions, array.shape[1])


def non_dominated_sort(values: ArrayLike, directions: Sequence[str]) -> list[IntArray]:
    """Indices of the points by front: the non-dominated ones first, then the next layer, ...

    Equal points share a front. NaN values are rejected (leave failed points out).
    O(n^2 m) time and n^2 memory, fine for the few thousand candidates of a job.
    """
    points = _as_values(values, directions)
    if np.isnan(points).any():
        raise ValueError("values contain NaN; leave failed points out before sorting")
    n = len(points)
    if n == 0:
        return []
    better_eq = np.all(points[:, None, :] <= points[None, :, :], axis=2)
    strictly = np.any(points[:, None, :] < points[None, :, :], axis=2)
    dominates = better_eq & strictly  # [i, j]: i dominates j
    dominated_by = dominates.sum(axis=0)
    remaining = np.ones(n, dtype=bool)
    fronts: list[IntArray] = []
    while remaining.any():
        front = np.flatnonzero(remaining & (dominated_by == 0))
        fronts.append(front.astype(np.intp))
        remaining[front] = False
        dominated_by -= dominates[front].sum(axis=0)
    return fronts


def pareto_front(
    values: ArrayLike,
    directions: Sequence[str],
    feasible: ArrayLike | None = None,
) -> IntArray:
    """Sorted indices of the non-dominated feasible points (empty if none is feasible)."""
    points = _as_values(values, directions)
    mask = (
        np.ones(len(points), dtype=bool)
        if feasible is None
        else np.asarray(feasible, dtype=bool).reshape(-1)
    )
    if len(mask) != len(points):
        raise ValueError(f"feasible has {len(mask)} entries for {len(points)} points")
    candidates = np.flatnonzero(mask)
    if candidates.size == 0:
        return np.empty(0, dtype=np.intp)
    chosen = points[candidates]
    if np.isnan(chosen).any():
        raise ValueError("values contain NaN; leave failed points out before sorting")
    # the first layer only: the points no other point dominates
    better_eq = np.all(chosen[:, None, :] <= chosen[None, :, :], axis=2)
    strictly = np.any(chosen[:, None, :] < chosen[None, :, :], axis=2)
    dominated = (better_eq & strictly).any(axis=0)
    return np.sort(candidates[~dominated]).astype(np.intp)


def hypervolume(values: ArrayLike, directions: Sequence[str], reference_point: ArrayLike) -> float:
    """Volume dominated by the points and bounded by ``reference_point``.

    Points not strictly better than the reference in every objective add nothing.
    """
    points = _as_values(values, directions)
    signs = _signs(directions, points.shape[1])
    ref = np.asarray(reference_point, dtype=float).reshape(-1)
    if ref.shape != (points.shape[1],):
        raise ValueError(f"reference point has {ref.size} values for {points.shape[1]} objectives")
    if not np.isfinite(ref).all():
        raise ValueError(f"reference point must be finite, got {ref.tolist()}")
    ref = ref * signs
    inside = points[np.all(points < ref, axis=1)]
    if len(inside) == 0:
        return 0.0
    from pymoo.indicators.hv import HV

    return float(HV(ref_point=ref)(inside))


def default_reference_point(
    values: ArrayLike, directions: Sequence[str], margin: float = 0.1
) -> NDArray[np.float64]:
    """Per objective, the worst value plus ``margin`` times the range (in the worse direction).

    Where all values are equal the range is taken as ``|value|`` (or 1 for 0) so every point
    still adds volume. NaN entries are ignored.
    """
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin!r}")
    points = _as_values(values, directions)
    signs = _signs(directions, points.shape[1])
    finite = np.where(np.isfinite(points), points, np.nan)
    if len(finite) == 0 or np.isnan(finite).all(axis=0).any():
        raise ValueError("every objective needs at least one finite value")
    worst = np.nanmax(finite, axis=0)
    span = worst - np.nanmin(finite, axis=0)
    span = np.where(span > 0, span, np.where(worst != 0, np.abs(worst), 1.0))
    return np.asarray((worst + margin * span) * signs, dtype=float)


__all__ = ["default_reference_point", "hypervolume", "non_dominated_sort", "pareto_front"]
