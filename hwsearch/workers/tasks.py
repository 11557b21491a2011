"""What an executor sends to a worker and gets back: plain data that crosses processes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hwsearch.records import MetricValue


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
    # the evaluation kind's type (hwsearch.workers.kinds); "" for tasks made before kinds
    # existed, whose kind is read from ``evaluation``
    kind: str = ""
    # plug-ins to load before evaluating (hwsearch.plugins), so workers know what they add
    plugins: tuple[str, ...] = ()
    # intra-op threads per worker: "training" and "evaluation" (int or "auto"), and what
    # "auto" resolves to: "cores_per_worker" (given by the executor) or "workers" (this
    # machine's cores shared among them); see hwsearch.hardware.threads. Empty: one each.
    threads: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class EvalOutcome:
    candidate_id: int
    metrics: list[MetricValue] = field(default_factory=list)
    error: str | None = None
    # where the evaluation ran and what it cost there, from executors that run it outside
    # the driver's process (Ray): host, node_id, pid, cpu_seconds
    worker: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def values(self) -> dict[str, float]:
        return {m.name: m.value for m in self.metrics}


__all__ = ["EvalOutcome", "EvalTask"]
