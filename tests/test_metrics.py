"""The metric registry: built-ins, plug-in metrics, and the sets derived from it."""

import pytest

from hwsearch.metrics import (
    METRICS,
    Metric,
    get_metric,
    register_metric,
    tagged,
    unregister_metric,
)
from hwsearch.search.objectives import Constraint, Objective
from hwsearch.workers.evaluation import LM_METRICS, TRAINED_METRICS


def test_builtin_metrics_have_unit_direction_and_doc() -> None:
    latency = get_metric("latency_ms")
    assert (latency.unit, latency.better) == ("ms", "lower")
    assert get_metric("accuracy").better == "higher" and get_metric("accuracy").linear
    assert METRICS["latency_ms"] == latency.doc


def test_sets_are_derived_from_the_registry() -> None:
    assert tagged("trained") == TRAINED_METRICS
    assert {"ttft_ms", "perplexity"} <= LM_METRICS and "ttft_ms" not in TRAINED_METRICS


def test_a_registered_metric_can_be_named_by_objectives_and_constraints() -> None:
    with pytest.raises(ValueError, match="unknown metric 'test_wobble'"):
        Objective("test_wobble", "minimize")
    register_metric(Metric("test_wobble", "mm", "lower", "how much it wobbles"))
    assert Objective("test_wobble", "minimize").metric == "test_wobble"
    assert Constraint.parse("test_wobble <= 2").bound == 2.0
    register_metric(Metric("test_wobble", "mm", "lower", "how much it wobbles"))  # same: fine
    try:
        with pytest.raises(ValueError, match="already registered"):
            register_metric(Metric("test_wobble", "m", "lower", "another"))
    finally:
        unregister_metric("test_wobble")
    assert "test_wobble" not in METRICS
