"""A small model family of the search tests' own, so they do not depend on the real ones."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
import torch
from torch import nn

from hwsearch.models.base import Knob, ModelFamily, get_family, register_family


def _even(value: Any) -> str | None:
    return None if int(value) % 2 == 0 else f"{value!r} is not even"


class ToyFamily(ModelFamily):
    name = "search-toy"
    knobs: Mapping[str, Knob] = {
        "depth": Knob("depth", "int", 2, "number of layers", low=1, high=4),
        "width": Knob(
            "width", "int", 8, "units per layer", low=2, high=64, per_block=True, check=_even
        ),
        "act": Knob("act", "choice", "relu", "activation", choices=("relu", "tanh")),
        "bits": Knob("bits", "choice", 32, "weight bits", choices=(4, 8, 32), per_block=True),
        "dropout": Knob("dropout", "float", 0.0, "dropout rate", low=0.0, high=0.5),
    }

    def num_blocks(self, config: Mapping[str, Any]) -> int:
        return int(config.get("depth", 2))

    def canonical(self, config: Mapping[str, Any]) -> dict[str, Any]:
        return {k: config.get(k, knob.default) for k, knob in self.knobs.items()}

    def build(self, config: Mapping[str, Any]) -> nn.Module:
        return nn.Linear(4, 2)

    def example_input(self, batch_size: int) -> torch.Tensor:
        return torch.zeros(batch_size, 4)


@pytest.fixture(scope="session")
def toy_family() -> ModelFamily:
    try:
        return get_family(ToyFamily.name)
    except KeyError:
        return register_family(ToyFamily())


@pytest.fixture
def toy_spec_data(toy_family: ModelFamily) -> dict[str, Any]:
    """A valid spec of the toy family; tests copy and break it."""
    return {
        "name": "toy-job",
        "family": toy_family.name,
        "target": "cpu",
        "space": {
            "depth": {"type": "int", "low": 1, "high": 3},
            "width": {"type": "choice", "values": [8, 16, 32], "per_layer": 3},
            "act": "relu",
            "bits": {"type": "choice", "values": [4, 8, 32]},
            "dropout": {"type": "float", "low": 0.0, "high": 0.5, "step": 0.25},
        },
        "objectives": [
            {"metric": "accuracy", "direction": "maximize"},
            {"metric": "latency_ms", "direction": "minimize", "reference": 5.0},
        ],
        "constraints": ["latency_ms <= 5", "accuracy >= 0.5"],
        "budget": {"evaluations": 32, "wall_time_s": 170},
        "optimizer": {"name": "optuna-nsga2", "population_size": 8},
        "seed": 0,
    }
