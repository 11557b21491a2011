from __future__ import annotations

import math

import pytest

from hwsearch.errors import SpecError
from hwsearch.search.objectives import METRICS, Constraint, Objective


def test_parse_and_violation() -> None:
    c = Constraint.parse("  latency_ms<=5 ")
    assert (c.metric, c.op, c.bound) == ("latency_ms", "<=", 5.0)
    assert c.violation(4.0) == -1.0
    assert c.violation(5.0) == 0.0 and c.satisfied(5.0)
    assert c.violation(6.5) == 1.5 and not c.satisfied(6.5)
    g = Constraint.parse("accuracy >= 0.9")
    assert g.violation(0.95) == pytest.approx(-0.05)
    assert g.violation(0.8) == pytest.approx(0.1)
    assert str(g) == "accuracy >= 0.9"
    assert Constraint.parse(str(g)) == g


def test_strict_operators_fail_on_the_bound() -> None:
    lt = Constraint.parse("size_bytes < 1000")
    assert lt.violation(1000) > 0 and not lt.satisfied(1000)
    assert lt.satisfied(999.9)
    gt = Constraint.parse("accuracy > 0.5")
    assert gt.violation(0.5) > 0 and gt.satisfied(0.5000001)


def test_nan_value_is_a_violation() -> None:
    assert Constraint.parse("latency_ms <= 5").violation(math.nan) == math.inf


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("latency", "cannot read 'latency'; write 'metric op number', e.g. 'latency_ms <= 5'"),
        ("speed < 3", "unknown metric 'speed'; known: accuracy, carbon_embodied_g_per_1k,"),
        ("latency_ms == 3", "operator '==' is not allowed; use one of <=, <, >=, >"),
        ("accuracy => 0.5", "operator '=' is not allowed (did you mean '>='?); use one of"),
        ("latency_ms =<3", "operator '=' is not allowed (did you mean '<='?); use one of"),
        ("latency_ms < fast", "the bound 'fast' is not a number"),
        ("latency_ms < inf", "the bound 'inf' is not a finite number"),
    ],
)
def test_bad_constraint_text(text: str, reason: str) -> None:
    with pytest.raises(SpecError) as info:
        Constraint.parse(text, field="constraints[3]")
    assert info.value.field == "constraints[3]"
    assert info.value.reason.startswith(reason)


def test_objective_checks() -> None:
    assert Objective("accuracy", "maximize").sign == -1.0
    assert Objective("latency_ms", "minimize", 5.0).sign == 1.0
    with pytest.raises(ValueError, match="unknown metric 'speed'"):
        Objective("speed", "minimize")
    with pytest.raises(ValueError, match="direction must be"):
        Objective("accuracy", "up")  # type: ignore[arg-type]
    assert {"accuracy", "latency_ms", "size_bytes", "peak_memory_bytes"} <= set(METRICS)


def test_an_unknown_metric_says_where_ones_own_are_declared() -> None:
    with pytest.raises(SpecError) as info:
        Constraint.parse("f1 >= 0.5", field="constraints[0]")
    assert info.value.reason.endswith(
        "; a metric your own model's evaluate returns is declared in evaluation.metrics"
    )
