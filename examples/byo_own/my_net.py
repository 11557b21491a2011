"""Your own ``nn.Module`` in your own file: a small residual CNN for scikit-learn's 8x8 digits,
with the four functions hwsearch calls (``build``, ``evaluate``, ``finetune``,
``calibration``). Nothing here imports hwsearch: ``search.py`` hands these to
``hwsearch.search(...)``.

``build(config)`` stands for "your model with your weights": each architecture is trained
once per process (``PRETRAIN_STEPS`` steps, ``HWSEARCH_EXAMPLE_PRETRAIN_STEPS`` to change it)
and its weights are loaded into every build of it.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn

PRETRAIN_STEPS = int(os.environ.get("HWSEARCH_EXAMPLE_PRETRAIN_STEPS", "200"))
FINETUNE_STEPS = int(os.environ.get("HWSEARCH_EXAMPLE_FINETUNE_STEPS", "50"))
BATCH = 64


class Block(nn.Module):
    """Depthwise 3x3 then pointwise 1x1, added to its input."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(width, width, 3, padding=1, groups=width, bias=False)
        self.pointwise = nn.Conv2d(width, width, 1, bias=False)
        self.norm = nn.BatchNorm2d(width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.norm(self.pointwise(F.relu(self.depthwise(x)))))


class DigitsNet(nn.Module):
    """Stem conv, ``blocks`` residual blocks of ``width`` channels, pooled, a classifier."""

    def __init__(self, width: int = 32, blocks: int = 2) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU()
        )
        self.blocks = nn.Sequential(*(Block(width) for _ in range(blocks)))
        self.head = nn.Linear(width, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x)).mean(dim=(2, 3)))


@functools.cache
def data() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Digits as (N, 1, 8, 8) in [0, 1]; a fixed 80/20 split."""
    digits = load_digits()
    x = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(digits.target, dtype=torch.long)
    order = torch.from_numpy(np.random.default_rng(0).permutation(len(y)))
    split = int(0.8 * len(y))
    return x[order][:split], y[order][:split], x[order][split:], y[order][split:]


def _train(model: nn.Module, steps: int, lr: float, seed: int) -> None:
    x, y, _, _ = data()
    generator = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in range(steps):
        idx = torch.randint(0, len(y), (BATCH,), generator=generator)
        opt.zero_grad()
        F.cross_entropy(model(x[idx]), y[idx]).backward()
        opt.step()


@functools.cache
def _weights(width: int, blocks: int) -> dict[str, torch.Tensor]:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = DigitsNet(width, blocks)
        _train(model, PRETRAIN_STEPS, lr=1e-2, seed=0)
    return {k: v.clone() for k, v in model.state_dict().items()}


def build(config: dict[str, Any]) -> nn.Module:
    width, blocks = int(config.get("width", 32)), int(config.get("blocks", 2))
    model = DigitsNet(width, blocks)
    model.load_state_dict(_weights(width, blocks))
    return model


def evaluate(model: nn.Module, context: Any) -> dict[str, float]:
    """Accuracy on the held-out 20% (360 digits)."""
    _, _, x, y = data()
    model.eval()
    with torch.no_grad():
        return {"accuracy": float((model(x).argmax(1) == y).float().mean())}


def finetune(model: nn.Module, context: Any) -> None:
    """``FINETUNE_STEPS`` Adam steps (``context.extras["finetune_steps"]`` if given), with
    the compression held."""
    steps = int(context.extras.get("finetune_steps", FINETUNE_STEPS))
    _train(model, steps, lr=1e-3, seed=context.seed)


def calibration(context: Any) -> Iterator[torch.Tensor]:
    x, _, _, _ = data()
    for i in range(0, len(x), BATCH):
        yield x[i : i + BATCH]
