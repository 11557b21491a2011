"""Export of a chosen candidate: its config, the compressed model, and how it was measured.

The model is rebuilt from the stored config with the job's seed and settings (training is
deterministic for a seed), so the database needs to hold no weights. The rebuilt model's
accuracy is compared with the stored one and both are written into the README.
"""

from __future__ import annotations

import json
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from hwsearch.db import Store
from hwsearch.errors import HwsearchError
from hwsearch.records import CandidateRecord, CandidateStatus, JobRecord, MetricValue
from hwsearch.search.spec import parse_spec


@dataclass(frozen=True)
class ExportResult:
    out_dir: Path
    files: list[Path]
    stored_accuracy: float | None
    reproduced_accuracy: float | None  # None where the family is not trained here


def _describe(candidate: CandidateRecord, job: JobRecord) -> dict[str, Any]:
    return {
        "job_id": job.id,
        "job_name": job.name,
        "candidate_id": candidate.id,
        "family": job.family,
        "target": job.target,
        "config_hash": candidate.config_hash,
        "config": candidate.config,
        "metrics": {
            name: {"value": m.value, "provenance": m.provenance.value}
            for name, m in sorted(candidate.metrics.items())
        },
    }


def candidate_description(store: Store, job_id: int, candidate_id: int) -> dict[str, Any]:
    """What ``config.json`` of an export holds, without rebuilding the model."""
    return _describe(store.get_candidate(job_id, candidate_id), store.get_job(job_id))


#: One export at a time per process: ``torch.jit.trace`` keeps global tracing state, and
#: rebuilding a model seeds torch's global generator, so two exports from the API's thread
#: pool at once would fail or train different weights.
_TORCH_LOCK = threading.Lock()


def export_candidate(
    store: Store, job_id: int, candidate_id: int, out_dir: Path, *, onnx: bool = False
) -> ExportResult:
    """Write config (JSON, YAML), state dict, TorchScript and a README into ``out_dir``;
    with ``onnx``, also ``model.onnx`` (the float model, needs the ``onnx`` package).
    Exports run one at a time (the others wait)."""
    with _TORCH_LOCK:
        return _export_candidate(store, job_id, candidate_id, out_dir, onnx=onnx)


def _export_candidate(
    store: Store, job_id: int, candidate_id: int, out_dir: Path, *, onnx: bool
) -> ExportResult:
    import torch

    from hwsearch.hardware.threads import WorkerThreads, stored_threads, using_threads
    from hwsearch.models import get_family
    from hwsearch.workers.kinds import kind_of

    job = store.get_job(job_id)
    candidate = store.get_candidate(job_id, candidate_id)
    if candidate.status != CandidateStatus.DONE:
        reason = f": {candidate.error}" if candidate.error else ""
        raise HwsearchError(
            f"candidate {candidate_id} of job {job_id} is {candidate.status.value}{reason}; "
            "only evaluated candidates can be exported"
        )
    spec = parse_spec(job.spec)
    family = get_family(job.family)

    # The job's evaluation kind rebuilds the model (trained where the kind trains),
    # before anything is written: a model that cannot be rebuilt leaves no half export.
    # With the thread counts it was trained with: the weights depend on them.
    kind = kind_of(spec.evaluation)
    quality = candidate.metrics.get("accuracy")
    threads = stored_threads(quality.details) if quality is not None else None
    with using_threads(threads or WorkerThreads()):
        rebuilt = kind.rebuild_stored(
            family, candidate.config, dict(spec.evaluation), spec.seed, candidate.metrics
        ) or kind.rebuild(family, candidate.config, dict(spec.evaluation), spec.seed)
    weights, deployed, portable = rebuilt.weights, rebuilt.deployed, rebuilt.portable
    example, kernel_path, how_built = rebuilt.example, rebuilt.kernel_path, rebuilt.how_built
    reproduced = rebuilt.quality.get("accuracy")

    out_dir.mkdir(parents=True, exist_ok=True)
    description = _describe(candidate, job)
    files = [out_dir / "config.json", out_dir / "config.yaml"]
    files[0].write_text(json.dumps(description, indent=2, sort_keys=True) + "\n")
    files[1].write_text(yaml.safe_dump(description, sort_keys=True))

    state_path = out_dir / "model_state_dict.pt"
    torch.save(weights.state_dict(), state_path)
    script_path = out_dir / "model_torchscript.pt"
    with warnings.catch_warnings(), torch.inference_mode():
        warnings.simplefilter("ignore")
        scripted = torch.jit.trace(deployed, example)
    scripted.save(str(script_path))
    files += [state_path, script_path]
    if onnx:
        files.append(_write_onnx(portable, example, out_dir / "model.onnx"))
    ort_note = ""
    if _runs_on_ort(job.target):  # the model ONNX Runtime ran, quantized by it
        from hwsearch.workers.ort_eval import write_ort_model

        ort = write_ort_model(rebuilt, out_dir / ORT_MODEL)
        files.append(ort.path)
        reproduced = ort.quality.get("accuracy", reproduced)
        ort_note = _ort_readme(ort.kernel_path, ort.quantized, ort.quality.get("accuracy"))

    front = store.latest_front(job_id)
    stored = candidate.metrics.get("accuracy")
    readme = out_dir / "README.md"
    on_front = front is not None and any(p.candidate_id == candidate.id for p in front.points)
    readme.write_text(
        _readme(
            description,
            candidate,
            kernel_path,
            on_front,
            how_built,
            tuple(example.shape),
            rebuilt.inputs,
        )
        + ort_note
    )
    files.append(readme)
    return ExportResult(out_dir, files, stored.value if stored else None, reproduced)


#: The ONNX Runtime model an export of an ORT target's candidate writes.
ORT_MODEL = "model_ort.onnx"


def _runs_on_ort(target: str) -> bool:
    from hwsearch.hardware.ort import is_ort
    from hwsearch.hardware.targets import is_device_name, parse_target_name

    return is_device_name(target) and is_ort(parse_target_name(target))


def _ort_readme(kernel_path: str, quantized: bool, accuracy: float | None) -> str:
    how = (
        "exported to ONNX and quantized by ONNX Runtime's tools as during the search"
        if quantized
        else "exported to ONNX in float (no bit-width asked ORT to quantize)"
    )
    quality = f" Accuracy of this ORT model: {accuracy:.4f}." if accuracy is not None else ""
    return f"""
## ONNX Runtime

`{ORT_MODEL}`: the model that ran on the ONNX Runtime target, {how} (kernel path
`{kernel_path}`). It takes the inputs the search measured and evaluated it on (input
`input`, output `output`, dynamic batch): for the built-in families the data source's
preprocessed inputs (digits: standardised per pixel, flattened for the mlp), not the raw
pixels `model_torchscript.pt` takes. Load it with
`onnxruntime.InferenceSession("{ORT_MODEL}")`.{quality}
"""


def _write_onnx(model: Any, example: Any, path: Path) -> Path:
    """The float model (compression applied to its weights, fp32 kernels) as ONNX, checked
    with ``onnx.checker``; quantized kernels have no portable ONNX form here."""
    import torch

    try:
        import onnx
    except ImportError as exc:
        raise HwsearchError("ONNX export needs the onnx package: pip install onnx") from exc
    with warnings.catch_warnings(), torch.inference_mode():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (example,),
            str(path),
            input_names=["pixels"],
            output_names=["logits"],
            dynamo=False,
        )
    onnx.checker.check_model(onnx.load(str(path)))
    return path


def _readme(
    description: dict[str, Any],
    candidate: CandidateRecord,
    kernel_path: str,
    on_front: bool,
    how_built: str,
    example_shape: tuple[int, ...],
    inputs: str = "",
) -> str:
    rows = "\n".join(
        f"| {name} | {m.value:.6g} | {m.provenance.value} |"
        for name, m in sorted(candidate.metrics.items())
    )
    stored = candidate.metrics.get("accuracy")
    place = "On" if on_front else "Not on"
    input_shape = "(N, " + ", ".join(str(d) for d in example_shape[1:]) + ")"
    takes = (inputs or "It takes the inputs its own code was written for.") + _int8_note(
        kernel_path
    )
    return f"""# Candidate {candidate.id} of job {description["job_id"]} ({description["job_name"]})

Family `{description["family"]}`, target `{description["target"]}`, config hash
`{candidate.config_hash}`. {place} the job's latest Pareto front.

## Files

- `config.json`, `config.yaml`: the configuration and every stored metric.
- `model_torchscript.pt`: the model as it runs on the target (kernel path `{kernel_path}`);
  load it with `torch.jit.load` and call it on a float batch shaped
  `{input_shape}`. {takes}
- `model_state_dict.pt`: the compressed float model's tensors (pruned layers already
  smaller, sparsity masks applied, fake-quantised weights).

## Metrics

| metric | value | provenance |
|---|---|---|
{rows}

Accuracy stored during the search: {stored.value if stored else float("nan"):.4f}. The exported
model was {how_built}.

## How latency was measured

{_latency_story(candidate.metrics.get("latency_ms"), kernel_path)}
"""


def _int8_note(kernel_path: str) -> str:
    """What to expect loading a model that runs torch.ao's quantized kernels."""
    if "int8" not in kernel_path and "int4" not in kernel_path:
        return ""
    return """
  Its quantized layers are `torch.ao` modules: loading it prints PyTorch's warning that
  quantized tensor creation functions are deprecated. The file loads and runs on this
  PyTorch as measured; wrap `torch.jit.load` in `warnings.catch_warnings()` to silence it.
  For a maintained path, load `model_state_dict.pt` into the float model and quantize it
  with torchao, e.g. `torchao.quantization.quantize_(model, Int8WeightOnlyConfig())`
  (not the kernels measured here, so measure it again)."""


def _latency_story(latency: MetricValue | None, kernel_path: str) -> str:
    if latency is None:
        return "Latency was not measured for this candidate."
    details = latency.details
    if "source" in details:  # a table target: measured elsewhere
        return (
            f"Not measured here: read from `{details['source']}`, column "
            f"`{details.get('column', '?')}` ({details.get('measured', 'published results')})."
        )
    env = "\n".join(f"- {k}: {v}" for k, v in sorted(details.get("environment", {}).items()))
    worker = details.get("worker")
    if isinstance(worker, dict):  # measured on a Ray worker
        env += (
            f"\n- worker: host {worker.get('host', '?')}, Ray node {worker.get('node_id', '?')}, "
            f"pid {worker.get('pid', '?')}, {float(worker.get('cpu_seconds', 0.0)):.1f} CPU s"
        )
    return f"""Median of {details.get("repeats", "?")} timed runs after warm-up, batch size
{details.get("batch_size", "?")}, {details.get("threads", "?")} thread(s), coefficient of
variation {details.get("cv", float("nan")):.3g} (converged: {details.get("converged", "?")}),
p90 {details.get("p90_ms", float("nan")):.4g} ms, kernel path
`{details.get("kernel_path", kernel_path)}`.

Environment:
{env}"""
