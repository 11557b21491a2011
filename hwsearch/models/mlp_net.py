"""The networks of the ``mlp`` family (see :mod:`hwsearch.models.mlp`)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from hwsearch.models.compression import CompressibleNet, PruneGroup
from hwsearch.models.shapes import ACTIVATION_NAMES, IN_FEATURES, NUM_CLASSES

ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU}
assert tuple(ACTIVATIONS) == ACTIVATION_NAMES


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
