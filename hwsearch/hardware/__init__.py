"""Targets, the measurement protocol, the environment record and analytic counts."""

from hwsearch.hardware.counts import (
    count_macs,
    count_nonzero_params,
    count_params,
    model_size_bytes,
)
from hwsearch.hardware.environment import environment
from hwsearch.hardware.measure import (
    LatencyMeasurement,
    MeasureSettings,
    measure_latency,
    robust_cv,
)
from hwsearch.hardware.targets import Target, available_targets, parse_target

__all__ = [
    "LatencyMeasurement",
    "MeasureSettings",
    "Target",
    "available_targets",
    "count_macs",
    "count_nonzero_params",
    "count_params",
    "environment",
    "measure_latency",
    "model_size_bytes",
    "parse_target",
    "robust_cv",
]
