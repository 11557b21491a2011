"""The network of the ``nb201`` family: NAS-Bench-201's cell, stages and classifier (see
:mod:`hwsearch.models.nb201`)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from hwsearch.models.shapes import EDGES, NUM_EDGES, OPERATIONS


class ReLUConvBN(nn.Sequential):
    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int, stride: int, padding: int
    ) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, bias=False),
            nn.BatchNorm2d(out_channels),
        )


class Zero(nn.Module):
    """The ``none`` operation: zeros of the input's shape (no parameters)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mul(0.0)


def make_operation(op: str, channels: int) -> nn.Module:
    """One edge operation of a cell with ``channels`` channels (stride 1)."""
    if op == "none":
        return Zero()
    if op == "skip_connect":
        return nn.Identity()
    if op == "nor_conv_1x1":
        return ReLUConvBN(channels, channels, 1, 1, 0)
    if op == "nor_conv_3x3":
        return ReLUConvBN(channels, channels, 3, 1, 1)
    if op == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
    raise ValueError(f"unknown operation {op!r}; one of {list(OPERATIONS)}")


class Cell(nn.Module):
    """Node ``j`` = sum over ``i < j`` of ``edge_ij(node i)``; the output is node 3."""

    def __init__(self, ops: Sequence[str], channels: int) -> None:
        super().__init__()
        if len(ops) != NUM_EDGES:
            raise ValueError(f"a cell needs {NUM_EDGES} operations, got {len(ops)}")
        self.edges = nn.ModuleList(make_operation(op, channels) for op in ops)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes = [x]
        edges = iter(zip(self.edges, EDGES, strict=True))
        for j in (1, 2, 3):
            total: torch.Tensor | None = None
            for _ in range(j):  # node j has j incoming edges, next in EDGES order
                edge, (_, source) = next(edges)
                out = edge(nodes[source])
                total = out if total is None else total + out
            assert total is not None
            nodes.append(total)
        return nodes[3]


class ReductionBlock(nn.Module):
    """The residual block between stages: halves H and W, doubles the channels."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv_a = ReLUConvBN(in_channels, out_channels, 3, 2, 1)
        self.conv_b = ReLUConvBN(out_channels, out_channels, 3, 1, 1)
        self.downsample = nn.Sequential(
            nn.AvgPool2d(kernel_size=2, stride=2, padding=0),
            nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.downsample(x) + self.conv_b(self.conv_a(x))


class NB201Network(nn.Module):
    def __init__(self, ops: Sequence[str], channels: int, cells: int, num_classes: int) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels)
        )
        layers: list[nn.Module] = []
        width = channels
        for stage in range(3):
            if stage > 0:
                layers.append(ReductionBlock(width, width * 2))
                width *= 2
            layers.extend(Cell(ops, width) for _ in range(cells))
        self.cells = nn.Sequential(*layers)
        self.lastact = nn.Sequential(nn.BatchNorm2d(width), nn.ReLU(inplace=False))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.lastact(self.cells(self.stem(x)))
        return self.classifier(self.pool(out).flatten(1))
