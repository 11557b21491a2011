"""The evaluation of one candidate: train, compress, materialise, measure; or look it up.

A task carries only plain data (names, dicts, numbers) so it can be sent to another process
or machine. The outcome carries every number with its provenance.

Where the task's ``evaluation`` or ``measurement`` is a table (``{"type": "table", "table":
path, "column": ..., "key": ...}``, from a table evaluation or a table target of the spec),
those numbers are looked up in the table by the family's table key (``nb201``: the
architecture string) instead of training or timing; they are ``measured`` numbers, taken
elsewhere, and their details say where they come from.
"""

from __future__ import annotations

import traceback
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from hwsearch.errors import HwsearchError
from hwsearch.records import MetricValue, Provenance

if TYPE_CHECKING:  # torch is imported only where a candidate is evaluated
    from hwsearch.hardware import LatencyMeasurement, MeasureSettings


@dataclass(frozen=True)
class EvalTask:
    candidate_id: int
    family: str
    config: dict[str, Any]  # canonical config of the family
    config_hash: str
    target: str  # a device here ("cpu") or the name of a table target
    seed: int
    # TrainSettings fields, or a table description (type "table") to look accuracy up in
    evaluation: dict[str, Any] = field(default_factory=dict)
    # MeasureSettings fields, or a table description (type "table") to look latency up in
    measurement: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class EvalOutcome:
    candidate_id: int
    metrics: list[MetricValue] = field(default_factory=list)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def values(self) -> dict[str, float]:
        return {m.name: m.value for m in self.metrics}


SIZE_MODEL = (
    "weights at their bit-widths: dense = elements x bits/8; unstructured = 1-bit bitmap + "
    "nonzeros x bits/8; N:M = kept values x bits/8 + ceil(log2 M) index bits per kept value; "
    "biases and norms at 32 bits"
)


def evaluate(task: EvalTask) -> EvalOutcome:
    """Every metric of the candidate: trained and measured here, or looked up in tables."""
    if _table(task.evaluation) is None and _table(task.measurement) is None:
        return _evaluate_trained(task)
    return _evaluate_with_tables(task)


def _evaluate_trained(task: EvalTask) -> EvalOutcome:
    """Train and compress the candidate, measure it on its target, and return every metric."""
    # Imported here so that the driver process does not pay for torch until it evaluates.
    from hwsearch.hardware import (
        MeasureSettings,
        count_macs,
        count_nonzero_params,
        count_params,
        measure_latency,
        parse_target,
    )
    from hwsearch.models import TrainSettings, build_candidate, get_family

    family = get_family(task.family)
    target = parse_target(task.target)
    train_settings = TrainSettings(**task.evaluation)
    measure_settings = MeasureSettings(**task.measurement)

    built = build_candidate(family, task.config, train_settings, task.seed)
    latency = measure_latency(
        built.deploy_model,
        family.example_input(measure_settings.batch_size),
        target,
        measure_settings,
    )
    macs = count_macs(built.float_model, family.example_input(1))

    quality = {
        "dataset": "sklearn digits, stratified 75/25 split",
        "settings": asdict(train_settings),
        "seed": task.seed,
    }
    analytic = {"model": "analytic count over the materialised float model"}

    def metric(
        name: str, value: float, provenance: Provenance, details: Mapping[str, Any]
    ) -> MetricValue:
        return MetricValue(name, float(value), provenance, task.target, dict(details))

    return EvalOutcome(
        task.candidate_id,
        [
            metric("accuracy", built.accuracy, Provenance.MEASURED, quality),
            *timing_metrics(latency, measure_settings, built.kernel_path, task.target),
            metric("size_bytes", built.size_bytes, Provenance.ESTIMATED, {"model": SIZE_MODEL}),
            metric("params", count_params(built.float_model), Provenance.ESTIMATED, analytic),
            metric(
                "nonzero_params",
                count_nonzero_params(built.float_model),
                Provenance.ESTIMATED,
                analytic,
            ),
            metric("macs", macs, Provenance.ESTIMATED, analytic),
            metric(
                "sparsity",
                built.sparsity,
                Provenance.MEASURED,
                {"model": "share of zero weights in compressible layers"},
            ),
        ],
    )


# --------------------------------------------------------------------------------------------
# Tables

#: Metrics of an evaluation with a table target, and the ones it adds when timing here.
TABLE_METRICS = frozenset({"accuracy", "latency_ms", "params", "macs", "size_bytes"})
TIMED_METRICS = frozenset({"latency_p90_ms", "latency_cv", "peak_memory_bytes"})
FLOAT32_SIZE_MODEL = "float32 weights: params x 4 bytes (no compression)"


def metrics_with_tables(*, target_table: bool) -> frozenset[str]:
    """The metrics an evaluation that uses a table produces (with a table target or not)."""
    return TABLE_METRICS if target_table else TABLE_METRICS | TIMED_METRICS


def _table(description: Mapping[str, Any]) -> Mapping[str, Any] | None:
    return description if description.get("type") == "table" else None


def _evaluate_with_tables(task: EvalTask) -> EvalOutcome:
    """Look up what the tables give; train or time here only what they do not."""
    from hwsearch.hardware import (
        MeasureSettings,
        TableKeyed,
        count_macs,
        count_params,
        load_table,
        measure_latency,
        parse_target,
    )
    from hwsearch.models import TrainSettings, build_candidate, get_family

    family = get_family(task.family)
    if not isinstance(family, TableKeyed):
        raise HwsearchError(f"family {family.name!r} has no key to look its configs up in a table")
    key = family.table_key(task.config)
    quality, timing = _table(task.evaluation), _table(task.measurement)

    def metric(
        name: str, value: float, provenance: Provenance, details: Mapping[str, Any]
    ) -> MetricValue:
        return MetricValue(name, float(value), provenance, task.target, dict(details))

    metrics: list[MetricValue] = []
    built = None
    model = None
    if quality is not None:
        table = load_table(quality["table"], key=quality.get("key", "arch"))
        raw = table.value(key, quality["column"])
        scale = float(quality.get("scale", 1.0))
        details = {
            "source": table.path,
            "column": quality["column"],
            "key": key,
            "scale": scale,
            "table_value": raw,
            "measured": "elsewhere: published results read from the table",
        }
        metrics.append(metric("accuracy", raw * scale, Provenance.MEASURED, details))
    else:
        built = build_candidate(family, task.config, TrainSettings(**task.evaluation), task.seed)
        quality_details = {
            "dataset": "sklearn digits, stratified 75/25 split",
            "settings": dict(task.evaluation),
            "seed": task.seed,
        }
        metrics.append(metric("accuracy", built.accuracy, Provenance.MEASURED, quality_details))

    if timing is not None:
        table = load_table(timing["table"], key=timing.get("key", "arch"))
        details = {
            "source": table.path,
            "column": timing["column"],
            "device": task.target,
            "key": key,
            "measured": f"elsewhere, on {task.target}: read from the table",
        }
        latency = table.value(key, timing["column"])
        metrics.append(metric("latency_ms", latency, Provenance.MEASURED, details))
    else:
        target = parse_target(task.target)
        settings = MeasureSettings(**task.measurement)
        model = built.deploy_model if built is not None else family.build(task.config)
        example = _example_input(family, task.config, settings.batch_size)
        measured = measure_latency(model, example, target, settings)
        kernel_path = built.kernel_path if built is not None else "fp32"
        metrics += timing_metrics(measured, settings, kernel_path, task.target)

    counts = getattr(family, "counts", None)
    if built is None and callable(counts):
        params, macs = counts(task.config)
        analytic = {"model": f"analytic count of the {family.name} network (conv, linear, BN)"}
    else:
        counted = built.float_model if built is not None else model or family.build(task.config)
        params = count_params(counted)
        macs = count_macs(counted, _example_input(family, task.config, 1))
        analytic = {"model": "analytic count over the float model"}
    size = built.size_bytes if built is not None else 4 * params
    size_model = SIZE_MODEL if built is not None else FLOAT32_SIZE_MODEL
    metrics += [
        metric("params", params, Provenance.ESTIMATED, analytic),
        metric("macs", macs, Provenance.ESTIMATED, analytic),
        metric("size_bytes", size, Provenance.ESTIMATED, {"model": size_model}),
    ]
    return EvalOutcome(task.candidate_id, metrics)


def _example_input(family: Any, config: Mapping[str, Any], batch_size: int) -> Any:
    """The family's input batch for ``config`` where it depends on it (nb201's input_size)."""
    for_config = getattr(family, "example_input_for", None)
    if callable(for_config):
        return for_config(config, batch_size)
    return family.example_input(batch_size)


def evaluate_safely(task: EvalTask) -> EvalOutcome:
    """:func:`evaluate`, with any exception turned into a failed outcome that says why."""
    try:
        return evaluate(task)
    except Exception as exc:  # a failing candidate must not stop the job
        last = traceback.format_exception_only(exc)[-1].strip()
        return EvalOutcome(task.candidate_id, error=last)


def timing_metrics(
    latency: LatencyMeasurement, settings: MeasureSettings, kernel_path: str, target: str
) -> list[MetricValue]:
    """The metrics of one latency measurement, each with how it was taken.

    Every timing metric carries the environment, the kernel path, batch size, threads,
    repeats and dispersion; ``latency_ms`` also keeps every sample.
    """
    setup: dict[str, Any] = {
        "environment": latency.environment,
        "kernel_path": kernel_path,
        "batch_size": settings.batch_size,
        "threads": settings.threads,
    }
    timing = {
        **setup,
        "repeats": latency.repeats,
        "cv": latency.cv,
        "converged": latency.converged,
        "median_ms": latency.median_ms,
        "p90_ms": latency.p90_ms,
        "mean_ms": latency.mean_ms,
        "std_ms": latency.std_ms,
    }
    measured = Provenance.MEASURED
    return [
        MetricValue(
            "latency_ms",
            latency.median_ms,
            measured,
            target,
            {**timing, "samples_ms": list(latency.samples_ms)},
        ),
        MetricValue("latency_p90_ms", latency.p90_ms, measured, target, timing),
        MetricValue("latency_cv", latency.cv, measured, target, timing),
        MetricValue("peak_memory_bytes", float(latency.peak_memory_bytes), measured, target, setup),
    ]
