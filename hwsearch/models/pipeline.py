"""From a config to a trained, compressed, deployable candidate: what a worker evaluates."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

import torch
from torch import nn

from hwsearch.errors import HwsearchError
from hwsearch.hardware.threads import WorkerThreads, default_threads, torch_threads
from hwsearch.models.base import ModelFamily
from hwsearch.models.compression import (
    CompressibleNet,
    CompressionSpec,
    apply_compression,
    bake,
    calibrate_activations,
    measured_sparsity,
    model_size_bytes,
    weight_count,
)
from hwsearch.models.deploy import calibration_batches, materialize
from hwsearch.models.sources import get_source
from hwsearch.models.training import accuracy, train

FINETUNE_LR_FACTOR = 0.1  # fine-tuning after compression starts from a tenth of the rate


@dataclass(frozen=True, kw_only=True)
class TrainSettings:
    """How a candidate is trained and fine-tuned; every field is checked on construction."""

    epochs: int = 4
    finetune_epochs: int = 1
    batch_size: int = 64
    learning_rate: float = 0.05

    def __post_init__(self) -> None:
        minimum = {"epochs": 1, "finetune_epochs": 0, "batch_size": 1}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "learning_rate":
                ok = isinstance(value, int | float) and not isinstance(value, bool)
                if not ok or not math.isfinite(value) or value <= 0:
                    raise ValueError(f"learning_rate must be a positive number, got {value!r}")
            elif isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"{f.name} must be an integer, got {value!r}")
            elif value < minimum[f.name]:
                raise ValueError(f"{f.name} must be at least {minimum[f.name]}, got {value!r}")


@dataclass
class BuiltCandidate:
    """A trained and compressed candidate and what runs on the target."""

    model: nn.Module  # trained + compressed float model (fake-quant, masks), eval mode
    accuracy: float  # test accuracy in [0, 1]
    size_bytes: int  # see compression.model_size_bytes
    sparsity: float  # share of the dense weights removed (channel) or masked to zero
    deploy_model: nn.Module  # what runs on the CPU target (see deploy.materialize), eval mode
    kernel_path: str  # e.g. "x86-int8-static", "int8-dynamic-linear+fp32", "fp32"
    float_model: nn.Module  # compression baked into plain float layers (MACs, params, export)
    # intra-op threads torch reported in each phase: {"training": n, "evaluation": n}
    threads: dict[str, int] = field(default_factory=dict)


def build_candidate(
    family: ModelFamily,
    config: Mapping[str, Any],
    settings: TrainSettings,
    seed: int,
    *,
    threads: WorkerThreads | None = None,
) -> BuiltCandidate:
    """Train ``config`` on its family's data source (:mod:`hwsearch.models.sources`; digits
    for ``mlp`` and ``cnn``) split with ``seed``, compress it, fine-tune it,
    measure its test accuracy and materialise it for the CPU.

    Training and fine-tuning run with ``threads.training`` intra-op threads, calibration,
    the test-set pass and materialisation with ``threads.evaluation`` (by default those of
    :func:`~hwsearch.hardware.threads.using_threads`, else one each; the previous count is
    restored). Deterministic for a given seed and thread counts; the global torch RNG is
    left as it was.
    """
    counts = threads or default_threads()
    seen: dict[str, int] = {}
    if not family.trainable:
        raise HwsearchError(
            f"family {family.name!r} is not trained here; take its quality from a table "
            "(evaluation: {type: table, table: ..., column: ...})"
        )
    cfg = family.canonical(config)
    spec = CompressionSpec.from_config(cfg)
    if family.data_source is None:
        raise HwsearchError(f"family {family.name!r} names no data source to train on")
    data = get_source(family.data_source).split(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = family.build(cfg)
        if not isinstance(model, CompressibleNet):
            raise TypeError(f"family {family.name!r} does not build a CompressibleNet")
        dense_weights = weight_count(model)
        with torch_threads(counts.training) as seen["training"]:
            train(
                model,
                data.x_train,
                data.y_train,
                epochs=settings.epochs,
                batch_size=settings.batch_size,
                learning_rate=settings.learning_rate,
                seed=seed,
            )
        model, _ = apply_compression(model, spec)
        calibration = calibration_batches(data.x_train, settings.batch_size)
        with torch_threads(counts.evaluation):
            calibrate_activations(model, calibration)
        with torch_threads(counts.training):
            train(
                model,
                data.x_train,
                data.y_train,
                epochs=settings.finetune_epochs,
                batch_size=settings.batch_size,
                learning_rate=settings.learning_rate * FINETUNE_LR_FACTOR,
                seed=seed + 1,
            )
    with torch_threads(counts.evaluation) as seen["evaluation"]:
        model.eval()
        float_model = bake(model).eval()
        deploy_model, kernel_path = materialize(float_model, spec, calibration)
        test_accuracy = accuracy(model, data.x_test, data.y_test)
    return BuiltCandidate(
        model=model,
        accuracy=test_accuracy,
        size_bytes=model_size_bytes(model),
        sparsity=measured_sparsity(model, dense_weights),
        deploy_model=deploy_model,
        kernel_path=kernel_path,
        float_model=float_model,
        threads=seen,
    )
