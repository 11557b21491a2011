"""A plug-in outside hwsearch: a family, a data source, an evaluation kind, a target kind and
a metric, registered on import (``hwsearch run --plugin hwsearch_demo_plugin``).

* family ``demo_mlp``: a ReLU MLP whose hidden layers are the spec's ``width_1``,
  ``width_2``, ... knobs (declared from the space, not known in advance);
* data source ``demo_blobs``: three Gaussian blobs in 4-D, split by the seed;
* evaluation kind ``demo_fit``: trains the model on its data source for ``steps`` full-batch
  steps and times it on the target; the quality metrics it reports are declared in its
  settings (``metrics: {accuracy: maximize}``);
* target kind ``sim``: ``sim:N``, a simulated accelerator that runs on the CPU N times faster;
* metric ``demo_margin``: the mean logit margin of the true class on the test split.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from hwsearch.hardware import (
    MeasureSettings,
    Target,
    TargetKind,
    measure_latency,
    parse_target,
    register_target_kind,
)
from hwsearch.metrics import Metric, register_metric
from hwsearch.models import DataSource, ModelFamily, Split, get_source, register_source
from hwsearch.models.base import Knob, register_family
from hwsearch.records import MetricValue, Provenance
from hwsearch.workers.evaluation import EvalOutcome, EvalTask
from hwsearch.workers.kinds import EvaluationKind, Rebuilt, register_evaluation

# -- a metric ---------------------------------------------------------------------------------

register_metric(
    Metric("demo_margin", "", "higher", "mean logit margin of the true class on the test split")
)


# -- a data source ----------------------------------------------------------------------------


class Blobs(DataSource):
    name = "demo_blobs"
    description = "three 4-D Gaussian blobs, 150 train / 60 test points"

    def split(self, seed: int) -> Split:
        gen = torch.Generator().manual_seed(seed)
        centres = torch.tensor([[2.0, 0, 0, 0], [0, 2.0, 0, 0], [0, 0, 2.0, 0]])
        labels = torch.arange(210) % 3
        points = centres[labels] + torch.randn(210, 4, generator=gen)
        return Split(points[:150], labels[:150], points[150:], labels[150:])


register_source(Blobs())


# -- a family whose knobs come from the spec's space ------------------------------------------

WIDTH = Knob("width", "int", 8, "units of one hidden layer", low=1, high=256)


class DemoMLP(ModelFamily):
    name = "demo_mlp"
    knobs: Mapping[str, Knob] = {}
    default_evaluation = "demo_fit"
    evaluations = ("demo_fit",)
    data_source = "demo_blobs"
    trainable = False  # not by the built-in train kind: it trains CompressibleNets

    def knobs_for(self, space: Mapping[str, Any]) -> Mapping[str, Knob]:
        """One ``width_<i>`` knob per hidden layer the space names."""
        return {k: WIDTH for k in space if k.startswith("width_") and k[6:].isdigit()}

    def _widths(self, config: Mapping[str, Any]) -> list[int]:
        keys = sorted((k for k in config if k.startswith("width_")), key=lambda k: int(k[6:]))
        return [int(config[k]) for k in keys]

    def num_blocks(self, config: Mapping[str, Any]) -> int:
        return len(self._widths(config))

    def canonical(self, config: Mapping[str, Any]) -> dict[str, Any]:
        return {f"width_{i + 1}": w for i, w in enumerate(self._widths(config))}

    def build(self, config: Mapping[str, Any]) -> nn.Module:
        layers: list[nn.Module] = []
        width = 4
        for units in self._widths(config):
            layers += [nn.Linear(width, units), nn.ReLU()]
            width = units
        return nn.Sequential(*layers, nn.Linear(width, 3))

    def example_input(self, batch_size: int) -> torch.Tensor:
        return torch.zeros(batch_size, 4)

    def counts(self, config: Mapping[str, Any]) -> tuple[int, int]:
        sizes = [4, *self._widths(config), 3]
        macs = sum(a * b for a, b in itertools.pairwise(sizes))
        return macs + sum(sizes[1:]), macs


register_family(DemoMLP())


# -- a target kind ----------------------------------------------------------------------------


class SimKind(TargetKind):
    """``sim:N``: the CPU, reported N times faster (a stand-in for a remote accelerator)."""

    name = "sim"
    syntax = "'sim:N'"
    profile_kind = "cpu"

    def parse(self, text: str) -> Target | None:
        kind, _, speed = text.partition(":")
        if kind != "sim" or not speed.isdigit() or int(speed) < 1:
            return None
        return Target(name=text, kind="sim", device_index=int(speed), torch_device="cpu")


register_target_kind(SimKind())


# -- an evaluation kind -----------------------------------------------------------------------

QUALITY = ("accuracy", "demo_margin")


class DemoFitSettings(BaseModel):
    """The ``evaluation`` section of ``type: demo_fit``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["demo_fit"] = "demo_fit"
    steps: int = Field(default=30, ge=1)
    learning_rate: float = Field(default=0.05, gt=0)
    metrics: dict[str, Literal["minimize", "maximize"]] = Field(
        default_factory=lambda: {"accuracy": "maximize"}
    )


def _train(family: ModelFamily, config: Mapping[str, Any], settings: Any, seed: int) -> Any:
    source = get_source(family.data_source or "")
    data = source.split(seed)
    torch.manual_seed(seed)
    model = family.build(config)
    optimiser = torch.optim.SGD(model.parameters(), lr=float(settings["learning_rate"]))
    for _ in range(int(settings["steps"])):
        optimiser.zero_grad()
        nn.functional.cross_entropy(model(data.x_train), data.y_train).backward()
        optimiser.step()
    model.eval()
    with torch.inference_mode():
        logits = model(data.x_test)
    accuracy = float((logits.argmax(1) == data.y_test).float().mean())
    true = logits.gather(1, data.y_test[:, None]).squeeze(1)
    others = logits.masked_fill(nn.functional.one_hot(data.y_test, 3).bool(), -1e9).amax(1)
    return model, {"accuracy": accuracy, "demo_margin": float((true - others).mean())}, source


class DemoFit(EvaluationKind):
    type = "demo_fit"
    doc = "'demo_fit' (the demo plug-in's fit on blobs)"

    @property
    def settings_model(self) -> type[BaseModel]:
        return DemoFitSettings

    def problems(self, family: ModelFamily, settings: BaseModel) -> list[tuple[str, str]]:
        assert isinstance(settings, DemoFitSettings)
        return [
            (f"evaluation.metrics.{name}", f"demo_fit reports {', '.join(QUALITY)}")
            for name in settings.metrics
            if name not in QUALITY
        ]

    def produces(self, family: ModelFamily, settings: BaseModel, *, timed_here: bool) -> set[str]:
        assert isinstance(settings, DemoFitSettings)
        return {*settings.metrics, "latency_ms", "params", "macs"}

    def evaluate(self, task: EvalTask) -> EvalOutcome:
        from hwsearch.models import get_family

        torch.set_num_threads(1)
        family = get_family(task.family)
        settings = DemoFitSettings.model_validate(task.evaluation)
        model, quality, source = _train(family, task.config, task.evaluation, task.seed)
        target = parse_target(task.target)  # the device is checked here, in the worker
        timing = MeasureSettings(
            **{k: v for k, v in task.measurement.items() if k != "target_profile"}
        )
        latency = measure_latency(model, family.example_input(timing.batch_size), target, timing)
        speed = target.device_index if target.kind == "sim" else 1
        params, macs = family.counts(task.config) or (0, 0)
        details = {"dataset": source.description, "steps": settings.steps, "seed": task.seed}
        measured, estimated = Provenance.MEASURED, Provenance.ESTIMATED
        metrics = [
            MetricValue(n, quality[n], measured, task.target, details) for n in settings.metrics
        ]
        timed = {
            "median_ms_on_cpu": latency.median_ms,
            "speed_up": speed,
            "repeats": latency.repeats,
        }
        metrics += [
            MetricValue(
                "latency_ms", latency.median_ms / (speed or 1), measured, task.target, timed
            ),
            MetricValue("params", params, estimated, task.target, {"model": "layer formula"}),
            MetricValue("macs", macs, estimated, task.target, {"model": "layer formula"}),
        ]
        return EvalOutcome(task.candidate_id, metrics)

    def rebuild(
        self, family: ModelFamily, config: Mapping[str, Any], settings: Mapping[str, Any], seed: int
    ) -> Rebuilt:
        model, quality, _ = _train(family, config, settings, seed)
        return Rebuilt(
            weights=model,
            deployed=model,
            portable=model,
            example=family.example_input(1),
            kernel_path="fp32",
            how_built=f"trained for {settings['steps']} steps with seed {seed}; test accuracy "
            f"of this rebuilt model: {quality['accuracy']:.4f}",
            quality={"accuracy": quality["accuracy"]},
        )


register_evaluation(DemoFit())
