"""The ``cnn`` family: a small ResNet for 1x8x8 digit images.

Stem conv (+ BatchNorm + activation), then ``stages`` stages of ``blocks`` residual basic
blocks (conv-BN-act-conv-BN, plus the shortcut, then the activation); stage ``i > 0`` starts
with a stride-2 block; global average pooling and a linear classifier.

A block of the per-block knobs is a stage: ``width`` and ``kernel_size`` take one value per
stage. Compression per stage: the stem uses the first ``weight_bits`` / ``act_bits`` entry,
stage ``i`` (its convolutions and shortcut) entry ``i``, the classifier the last entry; an
``act_bits`` entry applies to the activations entering those layers. Channel pruning shrinks
the inner convolution of every residual block (conv1's filters, bn1, conv2's inputs), so the
residual additions keep their shapes.
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
from hwsearch.models.mlp import ACTIVATIONS, NUM_CLASSES

IMAGE_SHAPE = (1, 8, 8)


class BasicBlock(nn.Module):
    """Residual basic block; ``quant`` and ``mid_quant`` are activation-quantization slots."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int, stride: int, activation: str
    ) -> None:
        super().__init__()
        pad = kernel_size // 2
        self.quant = nn.Identity()
        self.conv1 = nn.Conv2d(in_channels, out_channels, kernel_size, stride, pad, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.act1 = ACTIVATIONS[activation]()
        self.mid_quant = nn.Identity()
        self.conv2 = nn.Conv2d(out_channels, out_channels, kernel_size, 1, pad, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )
        self.act2 = ACTIVATIONS[activation]()

    @property
    def has_projection(self) -> bool:
        return isinstance(self.shortcut, nn.Sequential)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.quant(x)
        out = self.bn1(self.conv1(x))
        out = self.bn2(self.conv2(self.mid_quant(self.act1(out))))
        return self.act2(out + self.shortcut(x))


class ResNet(CompressibleNet):
    def __init__(
        self,
        widths: Sequence[int],
        kernel_sizes: Sequence[int],
        blocks_per_stage: int,
        activation: str,
    ) -> None:
        super().__init__()
        if not widths or len(widths) != len(kernel_sizes):
            raise ValueError("need one width and one kernel size per stage")
        self.num_blocks = len(widths)
        k0 = kernel_sizes[0]
        self.stem_quant = nn.Identity()
        self.stem = nn.Conv2d(IMAGE_SHAPE[0], widths[0], k0, 1, k0 // 2, bias=False)
        self.stem_bn = nn.BatchNorm2d(widths[0])
        self.stem_act = ACTIVATIONS[activation]()
        stages = []
        in_channels = widths[0]
        for i, (width, kernel) in enumerate(zip(widths, kernel_sizes, strict=True)):
            blocks = []
            for j in range(blocks_per_stage):
                stride = 2 if i > 0 and j == 0 else 1
                blocks.append(BasicBlock(in_channels, width, kernel, stride, activation))
                in_channels = width
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.ModuleList(stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head_quant = nn.Identity()
        self.head = nn.Linear(in_channels, NUM_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem_act(self.stem_bn(self.stem(self.stem_quant(x))))
        for stage in self.stages:
            x = stage(x)
        return self.head(self.head_quant(self.pool(x).flatten(1)))

    def _blocks(self) -> list[tuple[str, int, BasicBlock]]:
        found = []
        for i, stage in enumerate(self.stages):
            assert isinstance(stage, nn.Sequential)
            for j, block in enumerate(stage):
                assert isinstance(block, BasicBlock)
                found.append((f"stages.{i}.{j}", i, block))
        return found

    def weight_layers(self) -> list[tuple[str, int]]:
        layers = [("stem", 0)]
        for name, stage, block in self._blocks():
            layers += [(f"{name}.conv1", stage), (f"{name}.conv2", stage)]
            if block.has_projection:
                layers.append((f"{name}.shortcut.0", stage))
        return [*layers, ("head", self.num_blocks - 1)]

    def act_quant_slots(self) -> list[tuple[str, int]]:
        slots = [("stem_quant", 0)]
        for name, stage, _ in self._blocks():
            slots += [(f"{name}.quant", stage), (f"{name}.mid_quant", stage)]
        return [*slots, ("head_quant", self.num_blocks - 1)]

    def quant_regions(self) -> list[tuple[str, int]]:
        last = self.num_blocks - 1
        stem = [(name, 0) for name in ("stem_quant", "stem", "stem_bn", "stem_act")]
        stages = [(f"stages.{i}", i) for i in range(self.num_blocks)]
        head = [(name, last) for name in ("pool", "head_quant", "head")]
        return stem + stages + head

    def prune_groups(self) -> list[PruneGroup]:
        return [
            PruneGroup(producer=f"{name}.conv1", norm=f"{name}.bn1", consumer=f"{name}.conv2")
            for name, _, _ in self._blocks()
        ]


class CNNFamily(ModelFamily):
    """Small residual networks on 1x8x8 digit images."""

    name = "cnn"
    knobs: Mapping[str, Knob] = {
        "stages": Knob(
            "stages", "int", 2, "number of stages (stage i > 0 halves H, W)", low=1, high=3
        ),
        "blocks": Knob("blocks", "int", 1, "residual basic blocks per stage", low=1, high=3),
        "width": Knob("width", "int", 16, "channels per stage", low=1, high=1024, per_block=True),
        "kernel_size": Knob(
            "kernel_size",
            "choice",
            3,
            "conv kernel size per stage",
            choices=(3, 5, 7),
            per_block=True,
        ),
        "activation": Knob(
            "activation", "choice", "relu", "activation", choices=tuple(ACTIVATIONS)
        ),
        **compression_knobs(),
    }

    def num_blocks(self, config: Mapping[str, Any]) -> int:
        return int(config.get("stages", self.knobs["stages"].default))

    def canonical(self, config: Mapping[str, Any]) -> dict[str, Any]:
        return canonical_config(self.name, self.knobs, config, self.num_blocks)

    def build(self, config: Mapping[str, Any]) -> ResNet:
        cfg = self.canonical(config)
        return ResNet(cfg["width"], cfg["kernel_size"], cfg["blocks"], cfg["activation"])

    def example_input(self, batch_size: int) -> torch.Tensor:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size!r}")
        generator = torch.Generator().manual_seed(0)
        return torch.randn(batch_size, *IMAGE_SHAPE, generator=generator)


CNN = register_family(CNNFamily())
