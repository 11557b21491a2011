"""Candidates on ONNX Runtime targets (``ort:cpu``, ``ort:cuda:N``) in a worker, and their
ORT model for export.

The evaluation kinds train and compress as they do for a PyTorch target; then, instead of
materialising for PyTorch's kernels, the baked float model goes to
:func:`hwsearch.hardware.ort.deploy` (ONNX export, ORT's static QDQ or dynamic int8 where
the bit-widths ask for it) and the session is what is timed. Where ORT quantized the model,
its quality is evaluated again on the ORT model (what runs, not the fake-quantized
simulation) and the quality metrics say so in ``details.quality_model``
(``"ort-quantized"``, with ``simulated_<metric>`` beside it; ``"simulated"`` where ORT runs
the float model, which computes what the simulation did up to float rounding).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hwsearch.workers.kinds import Rebuilt, RuntimeSource

if TYPE_CHECKING:
    import torch
    from torch import nn

    from hwsearch.hardware import Target
    from hwsearch.hardware.ort import OrtDeployed
    from hwsearch.models import BuiltCandidate, ModelFamily, TrainSettings
    from hwsearch.models.custom.materialize import Materialized
    from hwsearch.models.custom.rules import LayerRule

ORT_QUANTIZED = "ort-quantized"
SIMULATED = "simulated"


def runs_on_ort(target: Target) -> bool:
    """Whether the candidates of ``target`` run in ONNX Runtime."""
    from hwsearch.hardware.ort import is_ort

    return is_ort(target)


@dataclass(frozen=True)
class TrainedOnOrt:
    """A trained candidate deployed on ORT, with the accuracy of what runs."""

    deployed: OrtDeployed
    accuracy: float
    quality: dict[str, Any]  # details added to the quality metrics


def trained_source(
    family: ModelFamily, config: Mapping[str, Any], built: BuiltCandidate, settings: Any, seed: int
) -> RuntimeSource:
    """What ORT deploys of a candidate of the ``train`` kind: its baked float model, the
    bit-widths of its blocks per layer, the training batches the PyTorch path calibrates
    on, and test accuracy on the family's data source."""
    from hwsearch.models import get_source
    from hwsearch.models.compression import CompressionSpec
    from hwsearch.models.deploy import calibration_batches
    from hwsearch.models.training import accuracy

    spec = CompressionSpec.from_config(family.canonical(config))
    net = built.float_model
    bits = {
        name: (spec.weight_bits[block], spec.act_bits[block])
        for name, block in net.weight_layers()  # type: ignore[operator]
    }
    data = get_source(family.data_source or "").split(seed)
    example = family.example_input_for(config, 1)
    shape = tuple(example.shape[1:])  # an ONNX graph keeps the rank it was exported with

    def evaluate(model: nn.Module) -> dict[str, float]:
        return {"accuracy": accuracy(model, data.x_test.reshape(-1, *shape), data.y_test)}

    calibration = calibration_batches(data.x_train, settings.batch_size)
    return RuntimeSource(
        model=net,
        bits=bits,
        calibration=[b.reshape(-1, *shape) for b in calibration],
        example=example,
        evaluate=evaluate,
    )


def deploy_trained(
    family: ModelFamily,
    config: Mapping[str, Any],
    built: BuiltCandidate,
    settings: TrainSettings,
    seed: int,
    target: Target,
    threads: int,
) -> TrainedOnOrt:
    """``built`` on ORT, with its accuracy on the ORT model where ORT quantized it."""
    from hwsearch.hardware.ort import deploy

    source = trained_source(family, config, built, settings, seed)
    deployed = deploy(
        source.model,
        source.example,
        source.bits,
        source.calibration,
        target=target,
        threads=threads,
    )
    details = _ort_details(deployed)
    if not deployed.quantized:
        return TrainedOnOrt(deployed, built.accuracy, {**details, "quality_model": SIMULATED})
    accuracy = source.evaluate(deployed.model)["accuracy"]
    quality = {**details, "quality_model": ORT_QUANTIZED, "simulated_accuracy": built.accuracy}
    return TrainedOnOrt(deployed, accuracy, quality)


def _ort_details(deployed: OrtDeployed) -> dict[str, Any]:
    return {
        "kernel_path": deployed.kernel_path,
        "runtime": deployed.model.info,
        **({"ort_notes": list(deployed.notes)} if deployed.notes else {}),
    }


def user_deployer(
    target: Target, threads: int
) -> Callable[
    [nn.Module, Mapping[str, LayerRule], Sequence[torch.Tensor], torch.Tensor], Materialized
]:
    """The pipeline's ``deploy`` step of the user's model on ORT (see
    :class:`hwsearch.models.custom.pipeline.PipelineSettings`)."""
    from hwsearch.hardware.ort import deploy
    from hwsearch.models.custom.materialize import Materialized

    def run(
        baked: nn.Module,
        rules: Mapping[str, LayerRule],
        calibration: Sequence[torch.Tensor],
        example: torch.Tensor,
    ) -> Materialized:
        bits = {name: (rule.weight_bits, rule.act_bits) for name, rule in rules.items()}
        deployed = deploy(baked, example, bits, calibration, target=target, threads=threads)
        return Materialized(
            model=deployed.model,
            paths=dict(deployed.paths),
            notes=list(deployed.notes),
            kernel_path_override=deployed.kernel_path,
            requantized=deployed.quantized,
        )

    return run


# --------------------------------------------------------------------------------------------
# Export


@dataclass(frozen=True)
class OrtExport:
    """The ORT model written by export, its kernel path and the quality of what it runs."""

    path: Path
    kernel_path: str
    quantized: bool
    quality: dict[str, float]


def write_ort_model(rebuilt: Rebuilt, path: Path) -> OrtExport:
    """The ORT model of an exported candidate at ``path``: the same export and ORT
    quantization as its measurement (quantization is deterministic for the same float
    model and calibration batches), and its quality evaluated on a CPU session of it."""
    from hwsearch.errors import HwsearchError
    from hwsearch.hardware.ort import ORT_CPU, deploy

    source = rebuilt.runtime_source
    if source is None:
        raise HwsearchError(
            "this job's evaluation kind gives no model for ONNX Runtime; export it for "
            "a PyTorch target"
        )
    deployed = deploy(
        source.model, source.example, source.bits, source.calibration, target=ORT_CPU, threads=1
    )
    path.write_bytes(deployed.onnx_model)
    quality = source.evaluate(deployed.model) if deployed.quantized else dict(rebuilt.quality)
    return OrtExport(path, deployed.kernel_path, deployed.quantized, quality)


__all__ = [
    "ORT_QUANTIZED",
    "SIMULATED",
    "OrtExport",
    "TrainedOnOrt",
    "deploy_trained",
    "runs_on_ort",
    "trained_source",
    "user_deployer",
    "write_ort_model",
]
