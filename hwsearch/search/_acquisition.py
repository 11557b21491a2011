"""The arithmetic under the default strategy's choices: the per-objective value transform
its models are fitted on, the transforms of constraint violations, and the acquisition
(hypervolume improvement times the probability of feasibility, or how far a point is from
improving the front)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]


class ValueTransform:
    """A monotone map of one objective's values to the scale its model is fitted on."""

    def __init__(self, y: FloatArray) -> None:
        self.log = bool(np.all(y > 0) and y.max() / y.min() > 2.0)
        self.lam: float | None = None
        if not self.log:
            from scipy.stats import yeojohnson

            self.shift = float(np.median(y))
            self.scale = float(np.std(y)) or 1.0
            _, lam = yeojohnson((y - self.shift) / self.scale)
            self.lam = float(np.clip(lam, -2.0, 4.0))

    def forward(self, y: FloatArray) -> FloatArray:
        if self.log:
            return np.log(y)
        from scipy.stats import yeojohnson

        assert self.lam is not None
        return np.asarray(yeojohnson((y - self.shift) / self.scale, lmbda=self.lam))

    def inverse(self, t: FloatArray | float) -> Any:
        if self.log:
            return np.exp(np.minimum(t, 700.0))
        assert self.lam is not None
        return self.shift + self.scale * yeojohnson_inverse(np.asarray(t, dtype=float), self.lam)


#: shifts tried for a violation ``metric - bound``, as multiples of the observed spread
VIOLATION_SHIFTS: tuple[float, ...] = (0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)


class ViolationTransform:
    """A monotone map ``t`` of one constraint's violations to the scale its model is fitted
    on, and the value ``threshold`` = ``t(0)`` at the bound.

    ``signed``: ``sign(v) log1p(|v| / m)`` (``m`` the median ``|v|``) keeps the bound at 0
    and tames far-off violations. ``shift``: ``d log(s + d v)`` with ``d`` = +1 or -1. The
    violation of ``metric <= bound`` is ``metric - bound``, so with ``s`` = bound and
    ``d`` = +1 this is the log of the metric itself (``d`` = -1: ``metric >= bound``), the
    scale on which a latency relates linearly to other devices' log-latencies. The bound is
    not told to the strategy: :meth:`candidates` gives the signed log and a grid of shifts,
    and the strategy keeps the one under which its model's marginal likelihood of the
    violations themselves (``log_jacobian`` included) is highest.
    """

    def __init__(self, kind: str, shift: float, direction: float = 1.0, cap: float = 1e300) -> None:
        if kind not in ("signed", "shift"):
            raise ValueError(f"kind must be 'signed' or 'shift', got {kind!r}")
        self.kind = kind
        self.cap = float(cap)  # 'signed': what an infinite violation counts as
        self.shift = float(shift)  # the median |v| for 'signed'
        self.direction = float(direction)
        self.threshold = 0.0 if kind == "signed" else self.direction * math.log(self.shift)

    @classmethod
    def candidates(cls, v: FloatArray) -> list[ViolationTransform]:
        """The signed log, then (for finite violations that differ) shifts in both
        directions that keep every ``s + d v`` positive, the bound's (``s``) included."""
        v = np.asarray(v, dtype=float)
        finite = v[np.isfinite(v)]
        scale = float(np.median(np.abs(finite))) if len(finite) else 1.0
        cap = 10.0 * float(np.abs(finite).max()) if len(finite) else 1.0
        out = [cls("signed", scale or 1.0, cap=cap or 1.0)]
        if len(finite) < len(v) or len(v) < 3:
            return out
        spread = float(v.max() - v.min())
        if spread <= 0:
            return out
        for direction in (1.0, -1.0):
            # s + d v > 0 for every v seen, and at the bound (v = 0): s > 0
            edge = max(float(-(direction * v).min()), 0.0)
            for r in VIOLATION_SHIFTS:
                out.append(cls("shift", edge + r * spread, direction))
        return out

    def forward(self, v: FloatArray) -> FloatArray:
        v = np.asarray(v, dtype=float)
        if self.kind == "signed":
            size = np.minimum(np.abs(v), self.cap)
            return np.asarray(np.sign(v) * np.log1p(size / self.shift))
        return np.asarray(self.direction * np.log(self.shift + self.direction * v))

    def log_jacobian(self, v: FloatArray) -> float:
        """``sum log dt/dv`` over ``v``: turns a likelihood of ``t(v)`` into one of ``v``."""
        v = np.asarray(v, dtype=float)
        if self.kind == "signed":
            return float(-np.log(self.shift + np.minimum(np.abs(v), self.cap)).sum())
        return float(-np.log(self.shift + self.direction * v).sum())


def yeojohnson_inverse(t: FloatArray, lam: float) -> FloatArray:
    out = np.empty_like(t)
    pos = t >= 0
    if abs(lam) > 1e-8:
        base = np.maximum(t[pos] * lam + 1.0, 1e-12)
        out[pos] = base ** (1.0 / lam) - 1.0
    else:
        out[pos] = np.expm1(t[pos])
    if abs(lam - 2.0) > 1e-8:
        base = np.maximum(1.0 - (2.0 - lam) * t[~pos], 1e-12)
        out[~pos] = 1.0 - base ** (1.0 / (2.0 - lam))
    else:
        out[~pos] = -np.expm1(-t[~pos])
    return out


def normal_cdf(x: FloatArray) -> FloatArray:
    from scipy.special import ndtr

    return np.asarray(ndtr(x))


def add_point(front: FloatArray, point: FloatArray) -> FloatArray:
    """``front`` with ``point`` added and the points it dominates removed."""
    if len(front) and np.any(np.all(front <= point, axis=1)):
        return front
    keep = ~(np.all(point <= front, axis=1) & np.any(point < front, axis=1))
    return np.vstack([front[keep], point[None, :]])


def acquisition(
    pts: FloatArray, front: FloatArray, ref: FloatArray, feasible_prob: FloatArray
) -> FloatArray:
    """Hypervolume improvement times feasibility; below zero, minus the distance to improving."""
    hvi = hv_improvement(pts, front, ref)
    gap = distance_to_improve(pts, front, ref)
    return np.where(hvi > 0, hvi * feasible_prob, -gap - (1.0 - feasible_prob))


def hv_improvement(pts: FloatArray, front: FloatArray, ref: FloatArray) -> FloatArray:
    """Exact hypervolume improvement of each point over ``front`` (2-D vectorised)."""
    pts = np.minimum(pts, ref)
    if pts.shape[1] == 1:
        best = front[:, 0].min() if len(front) else ref[0]
        return np.maximum(min(best, ref[0]) - pts[:, 0], 0.0)
    if pts.shape[1] == 2:
        if len(front) == 0:
            return np.prod(ref - pts, axis=1)
        f = front[np.argsort(front[:, 0])]
        f = f[f[:, 0] < ref[0]]
        # staircase: for x in [x_k, x_{k+1}) the front covers heights above h_k
        xs = np.concatenate([[-np.inf], f[:, 0], [ref[0]]])
        hs = np.concatenate([[ref[1]], np.minimum.accumulate(f[:, 1]) if len(f) else []])
        hs = np.minimum(hs, ref[1])
        left = np.maximum(xs[None, :-1], pts[:, :1])
        right = np.minimum(xs[None, 1:], ref[0])
        width = np.maximum(right - left, 0.0)
        height = np.maximum(hs[None, :] - pts[:, 1:2], 0.0)
        return np.asarray((width * height).sum(1))
    from pymoo.indicators.hv import HV

    indicator = HV(ref_point=ref)
    base = float(indicator(front)) if len(front) else 0.0
    out = np.zeros(len(pts))
    gap = distance_to_improve(pts, front, ref)
    top = np.flatnonzero(gap <= 0)
    top = top[np.argsort(pts[top].sum(1))][:256]
    for i in top:
        out[i] = float(indicator(np.vstack([front, pts[i : i + 1]]))) - base
    return out


def distance_to_improve(pts: FloatArray, front: FloatArray, ref: FloatArray) -> FloatArray:
    """How far each point must move (the same in every objective) to improve the front."""
    outside = np.maximum(pts - ref, 0.0).max(1)
    if len(front) == 0:
        return outside
    margin = (pts[:, None, :] - front[None, :, :]).min(2).max(1)
    return np.maximum(np.maximum(margin, 0.0), outside)


__all__ = [
    "VIOLATION_SHIFTS",
    "ValueTransform",
    "ViolationTransform",
    "acquisition",
    "add_point",
    "distance_to_improve",
    "hv_improvement",
    "normal_cdf",
    "yeojohnson_inverse",
]
