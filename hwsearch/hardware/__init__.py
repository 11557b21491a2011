"""Targets, the measurement protocol, the environment record, analytic counts and tables of
metrics measured elsewhere.

Importing the package imports none of them (some bring torch or pandas): each name below
loads its module on first use, so that checking a spec's target imports neither. The
environment record is ``hwsearch.hardware.environment.environment``: the package attribute
``environment`` is that submodule, as Python sets it once the submodule is imported.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hwsearch.lazy import lazy_names

if TYPE_CHECKING:
    from hwsearch.hardware.counts import (
        count_macs,
        count_nonzero_params,
        count_params,
        model_size_bytes,
    )
    from hwsearch.hardware.measure import (
        LatencyMeasurement,
        MeasureSettings,
        measure_latency,
        robust_cv,
    )
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

_LAZY = {
    "count_macs": "hwsearch.hardware.counts",
    "count_nonzero_params": "hwsearch.hardware.counts",
    "count_params": "hwsearch.hardware.counts",
    "model_size_bytes": "hwsearch.hardware.counts",
    "LatencyMeasurement": "hwsearch.hardware.measure",
    "MeasureSettings": "hwsearch.hardware.measure",
    "measure_latency": "hwsearch.hardware.measure",
    "robust_cv": "hwsearch.hardware.measure",
    "MetricTable": "hwsearch.hardware.tables",
    "TableColumnError": "hwsearch.hardware.tables",
    "TableError": "hwsearch.hardware.tables",
    "TableKeyed": "hwsearch.hardware.tables",
    "TableKeyError": "hwsearch.hardware.tables",
    "clear_table_cache": "hwsearch.hardware.tables",
    "load_table": "hwsearch.hardware.tables",
    "Target": "hwsearch.hardware.targets",
    "TargetKind": "hwsearch.hardware.targets",
    "available_targets": "hwsearch.hardware.targets",
    "parse_target": "hwsearch.hardware.targets",
    "parse_target_name": "hwsearch.hardware.targets",
    "register_target_kind": "hwsearch.hardware.targets",
    "target_kind": "hwsearch.hardware.targets",
}


__getattr__ = lazy_names(globals(), _LAZY)


__all__ = [
    "LatencyMeasurement",
    "MeasureSettings",
    "MetricTable",
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
    "load_table",
    "measure_latency",
    "model_size_bytes",
    "parse_target",
    "parse_target_name",
    "register_target_kind",
    "robust_cv",
    "target_kind",
]
