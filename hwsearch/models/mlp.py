"""The ``mlp`` family: a fully connected classifier of the 64 digit pixels.

A block is a hidden layer (Linear + activation). Per-block knobs take one value per hidden
layer. Compression per block: hidden layer ``i`` uses ``weight_bits[i]`` for its weights and
``act_bits[i]`` for the activations entering it; the output layer uses the last entries.
Channel pruning removes hidden neurons (the rows of a hidden layer and the matching columns
of the next layer).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from hwsearch.models.base import Knob, ModelFamily, register_family
from hwsearch.models.compression import (
    CompressibleNet,
    PruneGroup,
    canonical_config,
    compression_knobs,
)

IN_FEATURES = 64
NUM_CLASSES = 10
ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU}


class HiddenLayer(nn.Module):
    def __init__(self, in_features: int, out_features: int, activation: str) -> None:
        super().__init__()
        self.quant = nn.Identity()  # activation-quantization slot for the layer's input
        self.linear = nn.Linear(in_features, out_features)
        self.act = ACTIVATIONS[activation]()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.linear(self.quant(x)))


class MLPNet(CompressibleNet):
    """Hidden layers of the given widths, then a linear classifier; takes (B, 64) or images."""

    def __init__(self, widths: Sequence[int], activation: str) -> None:
        super().__init__()
        if not widths:
            raise ValueError("an MLP needs at least one hidden layer")
        self.num_blocks = len(widths)
        sizes = [IN_FEATURES, *widths]
        self.blocks = nn.ModuleList(
            HiddenLayer(sizes[i], sizes[i + 1], activation) for i in range(len(widths))
        )
        self.head_quant = nn.Identity()
        self.head = nn.Linear(sizes[-1], NUM_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)
        for block in self.blocks:
            x = block(x)
        return self.head(self.head_quant(x))

    def weight_layers(self) -> list[tuple[str, int]]:
        hidden = [(f"blocks.{i}.linear", i) for i in range(self.num_blocks)]
        return [*hidden, ("head", self.num_blocks - 1)]

    def act_quant_slots(self) -> list[tuple[str, int]]:
        hidden = [(f"blocks.{i}.quant", i) for i in range(self.num_blocks)]
        return [*hidden, ("head_quant", self.num_blocks - 1)]

    def quant_regions(self) -> list[tuple[str, int]]:
        last = self.num_blocks - 1
        return [
            *((f"blocks.{i}", i) for i in range(self.num_blocks)),
            ("head_quant", last),
            ("head", last),
        ]

    def prune_groups(self) -> list[PruneGroup]:
        consumers = [f"blocks.{i}.linear" for i in range(1, self.num_blocks)] + ["head"]
        return [
            PruneGroup(producer=f"blocks.{i}.linear", consumer=consumers[i])
            for i in range(self.num_blocks)
        ]


class MLPFamily(ModelFamily):
    """Fully connected networks on the flat 64 pixels of a digit."""

    name = "mlp"
    knobs: Mapping[str, Knob] = {
        "depth": Knob("depth", "int", 2, "number of hidden layers", low=1, high=6),
        "width": Knob(
            "width", "int", 64, "neurons per hidden layer", low=1, high=4096, per_block=True
        ),
        "activation": Knob(
            "activation", "choice", "relu", "hidden activation", choices=tuple(ACTIVATIONS)
        ),
        **compression_knobs(),
    }

    def num_blocks(self, config: Mapping[str, Any]) -> int:
        return int(config.get("depth", self.knobs["depth"].default))

    def canonical(self, config: Mapping[str, Any]) -> dict[str, Any]:
        return canonical_config(self.name, self.knobs, config, self.num_blocks)

    def build(self, config: Mapping[str, Any]) -> MLPNet:
        cfg = self.canonical(config)
        return MLPNet(cfg["width"], cfg["activation"])

    def example_input(self, batch_size: int) -> torch.Tensor:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size!r}")
        generator = torch.Generator().manual_seed(0)
        return torch.randn(batch_size, IN_FEATURES, generator=generator)


MLP = register_family(MLPFamily())
