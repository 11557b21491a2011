"""One candidate of the user's own model in a worker: the pipeline of
:mod:`hwsearch.models.custom.pipeline`, with energy measured in the same run as the latency
and every number stored with its provenance, as for the built-in families."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from hwsearch.records import MetricValue, Provenance
from hwsearch.workers import evaluation as ev
from hwsearch.workers.tasks import EvalOutcome, EvalTask

if TYPE_CHECKING:
    from torch import nn

    from hwsearch.hardware import LatencyMeasurement
    from hwsearch.models.custom.pipeline import CandidateResult, UserModel


def failure_text(failure: Mapping[str, str]) -> str:
    """A failed candidate's stored error: one line, then the failure (with its traceback)
    as JSON."""
    head = f"{failure['stage']}: {failure['error_type']}: {failure['message']}"
    return head + "\n" + json.dumps(dict(failure))


def evaluate_user_model(task: EvalTask, code: UserModel) -> EvalOutcome:
    """Every metric of the task's candidate, or a failed outcome with the traceback."""
    import torch

    from hwsearch.hardware import MeasureSettings, measure_latency, parse_target
    from hwsearch.hardware.threads import WorkerThreads, torch_threads
    from hwsearch.models.custom.family import split_config
    from hwsearch.models.custom.pipeline import PipelineSettings, run_candidate

    target = parse_target(task.target)
    measure = MeasureSettings(**ev.timing_settings(task.measurement))
    profile = ev.target_profile(task)
    meter = ev._meter(profile, target)
    energy: list[ev.InferenceEnergy] = []

    from hwsearch.hardware.ort import with_runtime
    from hwsearch.workers.ort_eval import runs_on_ort, user_deployer

    def timer(model: nn.Module, example: torch.Tensor) -> LatencyMeasurement:
        batch = code.example(measure.batch_size).to(target.device)
        with meter.window() as window:
            latency = with_runtime(measure_latency(model, batch, target, measure), model)
            padded = ev._pad(window, model, batch, target, measure.threads)
        energy.append(
            ev._per_inference(window, latency.median_ms / 1000, measure.batch_size, padded)
        )
        return latency

    build, layers = split_config(task.config)
    settings = PipelineSettings(
        target=target,
        measure=measure,
        seed=task.seed,
        calibration_batches=int(task.evaluation.get("calibration_batches", 8)),
        keep_weights=task.evaluation.get("artifacts") is not None,
        timer=timer,
        deploy=user_deployer(target, measure.threads) if runs_on_ort(target) else None,
    )
    # The user's build, training and evaluation run with the training count; the timing
    # sets the measurement's itself (measure_latency).
    threads = WorkerThreads.from_task(task.threads)
    with torch_threads(threads.training) as seen:
        result = run_candidate(code, build, layers, settings, candidate_id=str(task.candidate_id))
    if result.failure is not None:
        return EvalOutcome(task.candidate_id, error=failure_text(result.failure.as_dict()))
    return EvalOutcome(
        task.candidate_id, _metrics(task, result, measure, energy, profile, {"training": seen})
    )


def _metrics(
    task: EvalTask,
    result: CandidateResult,
    measure: Any,
    energy: list[ev.InferenceEnergy],
    profile: Any,
    threads: dict[str, int],
) -> list[MetricValue]:
    declared = task.evaluation["metrics"]
    quality = {
        "evaluate": str(task.evaluation.get("evaluate")),
        "seed": task.seed,
        "config": dict(task.config),
        "timings_s": dict(result.timings),
        "user_seconds": result.user_seconds(),
        "own_seconds": result.own_seconds(),
        "threads": threads,
    }
    from hwsearch.workers.ort_eval import ORT_QUANTIZED, SIMULATED

    if result.simulated_metrics is not None:  # evaluated again on what the runtime runs
        quality["quality_model"] = ORT_QUANTIZED
        quality["simulated"] = {k: result.simulated_metrics.get(k) for k in declared}
    elif result.latency is not None and "runtime" in result.latency.environment:
        quality["quality_model"] = SIMULATED
    root = task.evaluation.get("artifacts")
    if root is not None and result.weights is not None:
        from hwsearch.artifacts import ArtifactStore

        quality["weights"] = ArtifactStore(root).put(result.weights)
        quality["weights_bytes"] = len(result.weights)
        quality["artifacts"] = root
    out = [
        MetricValue(name, result.metrics[name], Provenance.MEASURED, task.target, quality)
        for name in declared
    ]
    assert result.latency is not None and energy
    kernel_path = result.kernel_path or "fp32"
    out += ev.timing_metrics(result.latency, measure, kernel_path, task.target)
    analytic = {
        "model": "per-layer analytic count of the compressed model's Linear and Conv layers",
        "layers": len(result.counts),
        "kernel_paths": dict(result.layer_paths),
    }
    params = sum(c.params for c in result.counts)
    nonzero = sum(c.nonzero_params for c in result.counts)
    size = sum(c.weight_bytes for c in result.counts)
    out += [
        MetricValue("params", params, Provenance.ESTIMATED, task.target, analytic),
        MetricValue("nonzero_params", nonzero, Provenance.ESTIMATED, task.target, analytic),
        MetricValue(
            "macs", sum(c.macs for c in result.counts), Provenance.ESTIMATED, task.target, analytic
        ),
        MetricValue(
            "size_bytes",
            size,
            Provenance.ESTIMATED,
            task.target,
            {
                **analytic,
                "model": "weights of the Linear and Conv layers at their bit-widths "
                "and storage formats",
            },
        ),
        MetricValue(
            "sparsity",
            1.0 - nonzero / params if params else 0.0,
            Provenance.MEASURED,
            task.target,
            {"model": "share of zero weights in the Linear and Conv layers"},
        ),
        *ev.energy_carbon_metrics(
            energy[-1],
            busy_s=result.latency.median_ms / 1000 / measure.batch_size,
            profile=profile,
            threads=measure.threads,
            target=task.target,
        ),
    ]
    return out
