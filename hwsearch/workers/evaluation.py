"""The evaluation of one candidate: train, compress, materialise, measure; or look it up.

A task carries only plain data (names, dicts, numbers) so it can be sent to another process
or machine. The outcome carries every number with its provenance.

Where the task's ``evaluation`` or ``measurement`` is a table (``{"type": "table", "table":
path, "column": ..., "key": ...}``, from a table evaluation or a table target of the spec),
those numbers are looked up in the table by the family's table key (``nb201``: the
architecture string) instead of training or timing; they are ``measured`` numbers, taken
elsewhere, and their details say where they come from.

Energy is measured in the same run as the latency: an energy window
(:mod:`hwsearch.hardware.energy`) is open while the latency is measured, and energy per
inference is the window's average power times the latency. Carbon per 1,000 inferences
follows from it and the target's profile (:mod:`hwsearch.hardware.carbon`); the profile is
the target's default with the spec's factors (``measurement["target_profile"]``).

Language models (``evaluation["type"] == "lm"``, family ``transformer``) are trained on the
bundled corpus and timed as a server runs them: time to first token of a prompt batch, and
the time of one decode step. One of their inferences is one request: the prompt, then
``new_tokens`` decode steps.
"""

from __future__ import annotations

import traceback
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from hwsearch.errors import HwsearchError
from hwsearch.metrics import tagged
from hwsearch.records import MetricValue, Provenance
from hwsearch.workers.tasks import EvalOutcome, EvalTask

if TYPE_CHECKING:  # torch is imported only where a candidate is evaluated
    from hwsearch.hardware import LatencyMeasurement, MeasureSettings, Target
    from hwsearch.hardware.energy import EnergyMeter, EnergyReading, EnergyWindow
    from hwsearch.hardware.profiles import TargetProfile
    from hwsearch.models.transformer import TransformerFamily


SIZE_MODEL = (
    "weights at their bit-widths: dense = elements x bits/8; unstructured = 1-bit bitmap + "
    "nonzeros x bits/8; N:M = kept values x bits/8 + ceil(log2 M) index bits per kept value; "
    "biases and norms at 32 bits"
)


def evaluate(task: EvalTask) -> EvalOutcome:
    """Every metric of the candidate, by the task's evaluation kind, after loading the
    plug-ins the task names."""
    from hwsearch.plugins import load_plugins
    from hwsearch.workers.kinds import get_evaluation

    load_plugins(task.plugins)
    kind = task.kind or str(task.evaluation.get("type") or "train")
    return get_evaluation(kind).evaluate(task)


def dataset_description(family: Any) -> str:
    """What the family's data source says of its split (stored with quality metrics)."""
    from hwsearch.models import get_source

    return get_source(family.data_source or "").description


def evaluate_trained(task: EvalTask) -> EvalOutcome:
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
    from hwsearch.hardware.threads import WorkerThreads
    from hwsearch.models import TrainSettings, build_candidate, get_family

    family = get_family(task.family)
    target = parse_target(task.target)
    train_settings = TrainSettings(**task.evaluation)
    measure_settings = MeasureSettings(**timing_settings(task.measurement))
    profile = target_profile(task)
    meter = _meter(profile, target)

    from hwsearch.hardware.ort import with_runtime
    from hwsearch.workers.ort_eval import deploy_trained, runs_on_ort

    threads = WorkerThreads.from_task(task.threads)
    built = build_candidate(family, task.config, train_settings, task.seed, threads=threads)
    model, kernel_path, accuracy = built.deploy_model, built.kernel_path, built.accuracy
    on_runtime: dict[str, Any] = {}
    if runs_on_ort(target):  # exported and quantized by ONNX Runtime instead
        ort = deploy_trained(
            family, task.config, built, train_settings, task.seed, target, measure_settings.threads
        )
        model, kernel_path, accuracy = ort.deployed.model, ort.deployed.kernel_path, ort.accuracy
        on_runtime = ort.quality
    example = family.example_input(measure_settings.batch_size)
    with meter.window() as window:  # energy in the same run as the latency
        latency = with_runtime(measure_latency(model, example, target, measure_settings), model)
        padded = _pad(window, model, example, target, measure_settings.threads)
    energy = _per_inference(window, latency.median_ms / 1000, measure_settings.batch_size, padded)
    macs = count_macs(built.float_model, family.example_input(1))

    quality = {
        "dataset": dataset_description(family),
        "settings": asdict(train_settings),
        "seed": task.seed,
        "threads": built.threads,
        **on_runtime,
    }
    analytic = {"model": "analytic count over the materialised float model"}

    def metric(
        name: str, value: float, provenance: Provenance, details: Mapping[str, Any]
    ) -> MetricValue:
        return MetricValue(name, float(value), provenance, task.target, dict(details))

    return EvalOutcome(
        task.candidate_id,
        [
            metric("accuracy", accuracy, Provenance.MEASURED, quality),
            *timing_metrics(latency, measure_settings, kernel_path, task.target),
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
            *energy_carbon_metrics(
                energy,
                busy_s=latency.median_ms / 1000 / measure_settings.batch_size,
                profile=profile,
                threads=measure_settings.threads,
                target=task.target,
            ),
        ],
    )


# --------------------------------------------------------------------------------------------
# Tables

#: Metrics of an evaluation with a table target, and the ones it adds when timing here.
TABLE_METRICS = tagged("table")
TIMED_METRICS = tagged("timed")
FLOAT32_SIZE_MODEL = "float32 weights: params x 4 bytes (no compression)"


def metrics_with_tables(*, target_table: bool) -> frozenset[str]:
    """The metrics an evaluation that uses a table produces (with a table target or not)."""
    return TABLE_METRICS if target_table else TABLE_METRICS | TIMED_METRICS


def _table(description: Mapping[str, Any]) -> Mapping[str, Any] | None:
    return description if description.get("type") == "table" else None


def is_table(description: Mapping[str, Any]) -> bool:
    """Whether a task's evaluation or measurement is a table lookup."""
    return _table(description) is not None


def evaluate_with_tables(task: EvalTask) -> EvalOutcome:
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
        from hwsearch.hardware.threads import WorkerThreads

        fields = {k: v for k, v in task.evaluation.items() if k != "type"}
        threads = WorkerThreads.from_task(task.threads)
        built = build_candidate(
            family, task.config, TrainSettings(**fields), task.seed, threads=threads
        )
        quality_details = {
            "dataset": dataset_description(family),
            "settings": dict(task.evaluation),
            "seed": task.seed,
            "threads": built.threads,
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
        from hwsearch.hardware.ort import deploy, with_runtime
        from hwsearch.workers.ort_eval import runs_on_ort

        target = parse_target(task.target)
        settings = MeasureSettings(**timing_settings(task.measurement))
        model = built.deploy_model if built is not None else family.build(task.config)
        example = _example_input(family, task.config, settings.batch_size)
        kernel_path = built.kernel_path if built is not None else "fp32"
        timed = model
        if built is None and runs_on_ort(target):  # the untrained float network on ORT
            on_ort = deploy(model, example[:1], {}, [], target=target, threads=settings.threads)
            timed, kernel_path = on_ort.model, on_ort.kernel_path
        measured = with_runtime(measure_latency(timed, example, target, settings), timed)
        metrics += timing_metrics(measured, settings, kernel_path, task.target)

    counts = family.counts(task.config) if built is None else None
    if counts is not None:
        params, macs = counts
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
    return family.example_input_for(config, batch_size)


# --------------------------------------------------------------------------------------------
# Energy and carbon

#: Metrics of an evaluation trained and measured here (families other than language models).
TRAINED_METRICS = tagged("trained")
#: Metrics of a language model's evaluation.
LM_METRICS = tagged("lm")
CARBON_MODEL = (
    "per 1,000 inferences: operational = energy x PUE x grid intensity; embodied = busy "
    "time x device share x embodied carbon / (lifetime x busy share)"
)


def timing_settings(measurement: Mapping[str, Any]) -> dict[str, Any]:
    """The ``MeasureSettings`` fields of a task's measurement (its profile factors left out)."""
    return {k: v for k, v in measurement.items() if k != "target_profile"}


def target_profile(task: EvalTask) -> TargetProfile:
    """The task's target profile: the target's defaults with the spec's factors."""
    from hwsearch.hardware.profiles import resolve_profile

    overrides = task.measurement.get("target_profile") or {}
    return resolve_profile(task.target, overrides)


def _meter(profile: TargetProfile, target: Target) -> EnergyMeter:
    from hwsearch.hardware.energy import meter_for

    return meter_for(profile, target)


def _pad(window: EnergyWindow, model: Any, example: Any, target: Target, threads: int) -> int:
    """Untimed inferences until the window is long enough for its counter (none for the
    estimate)."""
    if window.meter.min_window_s <= 0:
        return 0
    import torch

    from hwsearch.hardware.energy import pad_window

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.inference_mode():
            batch = example.to(target.device)
            return pad_window(window, lambda: model(batch))
    finally:
        torch.set_num_threads(previous)


@dataclass(frozen=True)
class InferenceEnergy:
    """Energy of one inference and how it was obtained."""

    joules: float
    provenance: Provenance
    details: dict[str, Any]


def _per_inference(
    window: EnergyWindow, latency_s: float, batch_size: int, padded: int
) -> InferenceEnergy:
    from hwsearch.hardware.energy import energy_per_inference

    reading = _reading(window)
    joules, details = energy_per_inference(reading, latency_s, batch_size)
    return InferenceEnergy(joules, reading.provenance, {**details, "padding_runs": padded})


def _reading(window: EnergyWindow) -> EnergyReading:
    if window.reading is None:
        raise HwsearchError("the energy window was not closed")
    return window.reading


def energy_carbon_metrics(
    energy: InferenceEnergy,
    *,
    busy_s: float,
    profile: TargetProfile,
    threads: int,
    target: str,
) -> list[MetricValue]:
    """``energy_j_per_inference`` and carbon per 1,000 inferences, total and its two parts.

    Energy keeps its meter's provenance (``measured`` from NVML or RAPL, ``estimated`` with
    the model named); carbon is always ``estimated`` (grid averages and embodied figures),
    its details holding every factor and the energy's provenance.
    """
    from hwsearch.hardware.carbon import carbon_per_1k

    share = profile.device_share(threads)
    breakdown = carbon_per_1k(
        energy_j=energy.joules, busy_s=busy_s, profile=profile, device_share=share
    )
    carbon_details = {
        "model": CARBON_MODEL,
        **breakdown.to_dict(),
        "energy_provenance": energy.provenance.value,
        "energy_meter": energy.details.get("meter"),
        "energy_j_per_inference": energy.joules,
        "profile": profile.to_dict(),
    }
    estimated = Provenance.ESTIMATED
    return [
        MetricValue(
            "energy_j_per_inference", energy.joules, energy.provenance, target, energy.details
        ),
        MetricValue("carbon_g_per_1k", breakdown.total_g_per_1k, estimated, target, carbon_details),
        MetricValue(
            "carbon_operational_g_per_1k",
            breakdown.operational_g_per_1k,
            estimated,
            target,
            carbon_details,
        ),
        MetricValue(
            "carbon_embodied_g_per_1k",
            breakdown.embodied_g_per_1k,
            estimated,
            target,
            carbon_details,
        ),
    ]


# --------------------------------------------------------------------------------------------
# Language models


def evaluate_lm(task: EvalTask, family: TransformerFamily) -> EvalOutcome:
    """Train a language model of ``family``, time its prefill and decode on the target, and
    return every metric (quality, serving latency, memory, energy, carbon)."""
    import torch

    from hwsearch.hardware import MeasureSettings, measure_latency, parse_target
    from hwsearch.hardware.kernels import kernel_paths
    from hwsearch.models.lm_data import char_data
    from hwsearch.models.lm_pipeline import DATASET, LM_SIZE_MODEL, LMSettings, build_lm
    from hwsearch.models.transformer import kv_cache_bytes
    from hwsearch.models.transformer_net import DecodeStep, Prefill

    target = parse_target(task.target)
    settings = LMSettings.from_dict(task.evaluation)
    timing = MeasureSettings(**timing_settings(task.measurement))
    profile = target_profile(task)
    meter = _meter(profile, target)
    batch = timing.batch_size

    from hwsearch.hardware.threads import WorkerThreads

    built = build_lm(
        family, task.config, settings, task.seed, threads=WorkerThreads.from_task(task.threads)
    )
    model = built.model
    prompt = char_data().val[: settings.prompt_len].unsqueeze(0)
    prompts = prompt.repeat(batch, 1)
    prefill = Prefill(model, batch, settings.context)
    with meter.window() as prefill_window:
        ttft = measure_latency(prefill, prompts, target, timing)
        padded = _pad(prefill_window, prefill, prompts, target, timing.threads)
    prefill_energy = _per_inference(prefill_window, ttft.median_ms / 1000, batch, padded)
    decode = DecodeStep(model.to(torch.device("cpu")), prompts, settings.context)
    last = prompts[:, -1:]
    with meter.window() as decode_window:
        step = measure_latency(decode, last, target, timing)
        padded = _pad(decode_window, decode, last, target, timing.threads)
    token_energy = _per_inference(decode_window, step.median_ms / 1000, batch, padded)

    paths = sorted(set(kernel_paths(model).values())) or ["fp32-dense"]
    setup: dict[str, Any] = {
        "environment": ttft.environment,
        "kernel_path": "+".join(paths),
        "layers": built.layer_kinds,
        "batch_size": batch,
        "threads": timing.threads,
        "prompt_len": settings.prompt_len,
    }

    def timed(latency: LatencyMeasurement) -> dict[str, Any]:
        return {
            **setup,
            "repeats": latency.repeats,
            "cv": latency.cv,
            "converged": latency.converged,
            "median_ms": latency.median_ms,
            "p90_ms": latency.p90_ms,
            "samples_ms": list(latency.samples_ms),
            **load_details(latency),
        }

    request_s = (ttft.median_ms + settings.new_tokens * step.median_ms) / 1000
    request_energy = InferenceEnergy(
        prefill_energy.joules + settings.new_tokens * token_energy.joules,
        prefill_energy.provenance
        if prefill_energy.provenance == token_energy.provenance
        else Provenance.ESTIMATED,
        {
            **prefill_energy.details,
            "method": "prefill energy + new_tokens x decode-step energy, per sequence; each "
            "the window's average power x median latency / batch",
            "prefill": prefill_energy.details,
            "decode_step": token_energy.details,
            "new_tokens": settings.new_tokens,
        },
    )
    shape = built.shape
    kv_bytes = kv_cache_bytes(
        layers_used=shape.layers_used,
        batch=batch,
        context=settings.context,
        kv_heads=shape.kv_heads,
        head_dim=shape.head_dim,
    )
    quality = {
        "dataset": DATASET,
        "settings": settings_dict(settings),
        "seed": task.seed,
        "threads": built.threads,
    }
    measured, estimated = Provenance.MEASURED, Provenance.ESTIMATED

    def metric(
        name: str, value: float, provenance: Provenance, details: Mapping[str, Any]
    ) -> MetricValue:
        return MetricValue(name, float(value), provenance, task.target, dict(details))

    return EvalOutcome(
        task.candidate_id,
        [
            metric("val_loss", built.val_loss, measured, quality),
            metric("perplexity", built.perplexity, measured, quality),
            metric("accuracy", built.accuracy, measured, {**quality, "task": "next character"}),
            metric("ttft_ms", ttft.median_ms, measured, timed(ttft)),
            metric("decode_ms_per_token", step.median_ms, measured, timed(step)),
            metric(
                "tokens_per_s",
                batch * 1000.0 / step.median_ms,
                measured,
                {**setup, "model": "batch / median decode step time"},
            ),
            metric(
                "kv_cache_bytes",
                kv_bytes,
                estimated,
                {
                    "model": "2 x layers_used x batch x (prompt_len + new_tokens) x kv_heads x "
                    "head_dim x 4 bytes",
                    "layers_used": shape.layers_used,
                    "context": settings.context,
                    "kv_heads": shape.kv_heads,
                    "head_dim": shape.head_dim,
                },
            ),
            metric(
                "peak_memory_bytes", ttft.peak_memory_bytes, measured, {**setup, "phase": "prefill"}
            ),
            metric(
                "params", built.params, estimated, {"model": "parameters of the deployed layers"}
            ),
            metric("size_bytes", built.size_bytes, estimated, {"model": LM_SIZE_MODEL}),
            metric(
                "sparsity",
                built.sparsity,
                measured,
                {"model": "share of zero weights in the block linears"},
            ),
            metric(
                "energy_j_per_token",
                token_energy.joules,
                token_energy.provenance,
                token_energy.details,
            ),
            *energy_carbon_metrics(
                request_energy,
                busy_s=request_s / batch,
                profile=profile,
                threads=timing.threads,
                target=task.target,
            ),
        ],
    )


def settings_dict(settings: Any) -> dict[str, Any]:
    return asdict(settings)


def evaluate_safely(task: EvalTask) -> EvalOutcome:
    """:func:`evaluate`, with any exception turned into a failed outcome that says why."""
    try:
        return evaluate(task)
    except Exception as exc:  # a failing candidate must not stop the job
        last = traceback.format_exception_only(exc)[-1].strip()
        return EvalOutcome(task.candidate_id, error=last)


def load_details(latency: LatencyMeasurement) -> dict[str, Any]:
    """The machine's load during a measurement and whether it is ``noisy`` (and why)."""
    return {
        "load": dict(latency.load),
        "noisy": latency.noisy,
        "noisy_reasons": list(latency.noisy_reasons),
    }


def timing_metrics(
    latency: LatencyMeasurement, settings: MeasureSettings, kernel_path: str, target: str
) -> list[MetricValue]:
    """The metrics of one latency measurement, each with how it was taken.

    Every timing metric carries the environment, the kernel path, batch size, threads,
    repeats and dispersion, the machine's load during the measurement and the ``noisy``
    flag; ``latency_ms`` also keeps every sample.
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
        **load_details(latency),
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
