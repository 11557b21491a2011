"""The networks of the ``cnn`` family (see :mod:`hwsearch.models.cnn`)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from hwsearch.models.compression import CompressibleNet, PruneGroup
from hwsearch.models.mlp_net import ACTIVATIONS
from hwsearch.models.shapes import IMAGE_SHAPE, NUM_CLASSES


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
