"""The evaluation of one candidate: train, compress, materialise, measure.

A task carries only plain data (names, dicts, numbers) so it can be sent to another process
or machine. The outcome carries every number with its provenance.
"""

from __future__ import annotations

import traceback
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from hwsearch.records import MetricValue, Provenance


@dataclass(frozen=True)
class EvalTask:
    candidate_id: int
    family: str
    config: dict[str, Any]  # canonical config of the family
    config_hash: str
    target: str
    seed: int
    evaluation: dict[str, Any] = field(default_factory=dict)  # TrainSettings fields
    measurement: dict[str, Any] = field(default_factory=dict)  # MeasureSettings fields


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

    measured: dict[str, Any] = {
        "environment": latency.environment,
        "kernel_path": built.kernel_path,
        "batch_size": measure_settings.batch_size,
        "threads": measure_settings.threads,
    }
    timing = {
        **measured,
        "repeats": latency.repeats,
        "cv": latency.cv,
        "converged": latency.converged,
        "median_ms": latency.median_ms,
        "p90_ms": latency.p90_ms,
    }
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
            metric("latency_ms", latency.median_ms, Provenance.MEASURED, timing),
            metric("latency_p90_ms", latency.p90_ms, Provenance.MEASURED, timing),
            metric("latency_cv", latency.cv, Provenance.MEASURED, timing),
            metric("peak_memory_bytes", latency.peak_memory_bytes, Provenance.MEASURED, measured),
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


def evaluate_safely(task: EvalTask) -> EvalOutcome:
    """:func:`evaluate`, with any exception turned into a failed outcome that says why."""
    try:
        return evaluate(task)
    except Exception as exc:  # a failing candidate must not stop the job
        last = traceback.format_exception_only(exc)[-1].strip()
        return EvalOutcome(task.candidate_id, error=last)
