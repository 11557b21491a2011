"""Targets, the measurement protocol, the environment record, analytic counts and tables of
metrics measured elsewhere."""

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
from hwsearch.hardware.ort import OrtKind  # registers ort:cpu and ort:cuda
from hwsearch.hardware.tables import (
    MetricTable,
    TableColumnError,
    TableError,
    TableKeyed,
    TableKeyError,
    clear_table_cache,
    load_table,
)
from hwsearch.hardware.targets import (
    Target,
    TargetKind,
    available_targets,
    parse_target,
    parse_target_name,
    register_target_kind,
    target_kind,
)

__all__ = [
    "LatencyMeasurement",
    "MeasureSettings",
    "MetricTable",
    "OrtKind",
    "TableColumnError",
    "TableError",
    "TableKeyError",
    "TableKeyed",
    "Target",
    "TargetKind",
    "available_targets",
    "clear_table_cache",
    "count_macs",
    "count_nonzero_params",
    "count_params",
    "environment",
    "load_table",
    "measure_latency",
    "model_size_bytes",
    "parse_target",
    "parse_target_name",
    "register_target_kind",
    "robust_cv",
    "target_kind",
]
