"""Objectives and constraints of a search, and the metrics they may name."""

from __future__ import annotations

import math
import re
from collections.abc import Collection
from dataclasses import dataclass
from typing import Literal

from hwsearch.errors import SpecError
from hwsearch.metrics import METRICS

Direction = Literal["minimize", "maximize"]
ConstraintOp = Literal["<=", "<", ">=", ">"]

#: Metrics an objective, constraint or filter may name: name -> meaning. The registry of
#: :mod:`hwsearch.metrics` fills it (built-ins and plug-ins).
DIRECTIONS: tuple[Direction, ...] = ("minimize", "maximize")
CONSTRAINT_OPS: tuple[ConstraintOp, ...] = ("<=", "<", ">=", ">")


def unknown_metric_reason(name: str, known: Collection[str] = METRICS) -> str:
    return (
        f"unknown metric {name!r}; known: {', '.join(sorted(known))}; a metric your own "
        "model's evaluate returns is declared in evaluation.metrics"
    )


@dataclass(frozen=True)
class Objective:
    """One metric to optimise; ``reference`` is its coordinate of the hypervolume reference
    point (in the metric's own units), or None to derive one from the first generation."""

    metric: str
    direction: Direction
    reference: float | None = None

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise ValueError(unknown_metric_reason(self.metric))
        if self.direction not in DIRECTIONS:
            raise ValueError(f"direction must be 'minimize' or 'maximize', got {self.direction!r}")
        if self.reference is not None and not math.isfinite(self.reference):
            raise ValueError(f"reference must be a finite number, got {self.reference!r}")

    @property
    def sign(self) -> float:
        """+1 for a minimised metric, -1 for a maximised one: ``sign * value`` is minimised."""
        return 1.0 if self.direction == "minimize" else -1.0


_CONSTRAINT_RE = re.compile(
    r"^\s*(?P<metric>[A-Za-z_][A-Za-z0-9_]*)\s*(?P<op><=|>=|<|>|==|!=|=)\s*(?P<bound>\S.*?)\s*$"
)


@dataclass(frozen=True)
class Constraint:
    """``metric op bound``: a requirement every candidate on the front must meet.

    :meth:`violation` follows Optuna's convention: a value ``<= 0`` means satisfied, a positive
    value says by how much (in the metric's units) the candidate misses the bound. For the
    strict operators ``<`` and ``>`` a value exactly on the bound is violated by the smallest
    representable amount (``math.ulp(bound)``), so ``violation > 0`` holds exactly when the
    comparison is false.
    """

    metric: str
    op: ConstraintOp
    bound: float

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise ValueError(unknown_metric_reason(self.metric))
        if self.op not in CONSTRAINT_OPS:
            ops = ", ".join(CONSTRAINT_OPS)
            raise ValueError(f"operator must be one of {ops}, got {self.op!r}")
        if not math.isfinite(self.bound):
            raise ValueError(f"bound must be a finite number, got {self.bound!r}")

    @classmethod
    def parse(cls, text: str, *, field: str = "constraint") -> Constraint:
        """Parse ``"latency_ms <= 5"``; raises :class:`SpecError` on ``field`` if malformed."""
        if not isinstance(text, str):
            raise SpecError(field, f"must be a string such as 'latency_ms <= 5', got {text!r}")
        match = _CONSTRAINT_RE.match(text)
        if match is None:
            raise SpecError(
                field, f"cannot read {text!r}; write 'metric op number', e.g. 'latency_ms <= 5'"
            )
        metric, op, bound_text = match.group("metric", "op", "bound")
        if metric not in METRICS:
            raise SpecError(field, unknown_metric_reason(metric))
        if op not in CONSTRAINT_OPS:
            written = text[match.start("op") :].lstrip()
            meant = next((o for o in ("<=", ">=") if written.startswith(o[::-1])), None)
            hint = f" (did you mean {meant!r}?)" if meant else ""
            raise SpecError(
                field,
                f"operator {op!r} is not allowed{hint}; use one of {', '.join(CONSTRAINT_OPS)}",
            )
        try:
            bound = float(bound_text)
        except ValueError:
            raise SpecError(field, f"the bound {bound_text!r} is not a number") from None
        if not math.isfinite(bound):
            raise SpecError(field, f"the bound {bound_text!r} is not a finite number")
        return cls(metric, op, bound)

    def violation(self, value: float) -> float:
        """How far ``value`` misses the bound (<= 0: satisfied). NaN counts as +inf."""
        if math.isnan(value):
            return math.inf
        amount = value - self.bound if self.op in ("<=", "<") else self.bound - value
        if amount == 0.0 and self.op in ("<", ">"):
            return math.ulp(self.bound)
        return amount

    def satisfied(self, value: float) -> bool:
        return self.violation(value) <= 0.0

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {format_number(self.bound)}"


def format_number(value: float) -> str:
    """Shortest text that reads back as the same float; integral values without ``.0``."""
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)
