"""pytorchcv's CIFAR ResNet-20 on scikit-learn's digits, resized to 32x32x3: a model class
and a data set no one in hwsearch wrote, searched through ``family.model`` and
``evaluation: {type: python}`` (see spec.yaml).

Everything is offline: the digits ship with scikit-learn; the model is
``pytorchcv.models.resnet_cifar.CIFARResNet`` (``pip install --no-deps pytorchcv``: it needs
no torchvision). ``build(config)`` stands for "your model with your weights": it trains the
configured ResNet once per process on the training split (``PRETRAIN_STEPS`` SGD steps,
``HWSEARCH_EXAMPLE_PRETRAIN_STEPS`` to change it) and loads those weights into every build.
``HWSEARCH_EXAMPLE_FINETUNE_STEPS`` sets the fine-tune's length (the tests make both tiny).
``finetune`` recovers what compression cost, ``evaluate`` is test-split accuracy.
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

PRETRAIN_STEPS = int(os.environ.get("HWSEARCH_EXAMPLE_PRETRAIN_STEPS", "300"))
FINETUNE_STEPS = int(os.environ.get("HWSEARCH_EXAMPLE_FINETUNE_STEPS", "100"))
BATCH = 64


@functools.cache
def data() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Digits 8x8 → 32x32, grey repeated to 3 channels, normalised; 80/20 split, fixed."""
    digits = load_digits()
    x = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
    x = F.interpolate(x, size=(32, 32), mode="bilinear", align_corners=False).repeat(1, 3, 1, 1)
    x = (x - 0.5) / 0.5
    y = torch.tensor(digits.target, dtype=torch.long)
    order = torch.from_numpy(np.random.default_rng(0).permutation(len(y)))
    x, y = x[order], y[order]
    split = int(0.8 * len(y))
    return x[:split], y[:split], x[split:], y[split:]


def _architecture(config: dict[str, Any]) -> nn.Module:
    from pytorchcv.models.resnet_cifar import CIFARResNet

    depth = int(config.get("depth", 20))
    width = float(config.get("width", 1.0))
    if (depth - 2) % 6:
        raise ValueError(f"depth must be 6n + 2 (8, 14, 20, ...), got {depth}")
    per_stage = (depth - 2) // 6
    stage_widths = [max(4, round(c * width)) for c in (16, 32, 64)]
    channels = [[c] * per_stage for c in stage_widths]
    return CIFARResNet(
        channels=channels, init_block_channels=stage_widths[0], bottleneck=False, num_classes=10
    )


def _train(model: nn.Module, steps: int, lr: float, seed: int) -> None:
    x, y, _, _ = data()
    generator = torch.Generator().manual_seed(seed)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)
    model.train()
    for _ in range(steps):
        idx = torch.randint(0, len(y), (BATCH,), generator=generator)
        opt.zero_grad()
        F.cross_entropy(model(x[idx]), y[idx]).backward()
        opt.step()


@functools.cache
def _weights(depth: int, width: float) -> dict[str, torch.Tensor]:
    """ "The user's weights": trained once per process and architecture, seed 0."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = _architecture({"depth": depth, "width": width})
        _train(model, PRETRAIN_STEPS, lr=0.05, seed=0)
    return {k: v.clone() for k, v in model.state_dict().items()}


def build(config: dict[str, Any]) -> nn.Module:
    """The configured ResNet with its trained weights loaded."""
    model = _architecture(config)
    key = (int(config.get("depth", 20)), float(config.get("width", 1.0)))
    model.load_state_dict(_weights(*key))
    return model


def evaluate(model: nn.Module, context: Any) -> dict[str, float]:
    """Top-1 accuracy on the held-out 20% (360 images)."""
    _, _, x, y = data()
    model.eval()
    with torch.no_grad():
        predictions = torch.cat([model(x[i : i + 128]).argmax(1) for i in range(0, len(y), 128)])
    return {"accuracy": float((predictions == y).float().mean())}


def finetune(model: nn.Module, context: Any) -> None:
    """``FINETUNE_STEPS`` SGD steps (``context.extras["finetune_steps"]`` if given) at a
    small rate, with the compression (masks, pruned shapes, fake quantization) held."""
    steps = int(context.extras.get("finetune_steps", FINETUNE_STEPS))
    _train(model, steps, lr=0.01, seed=context.seed)


def calibration(context: Any) -> Iterator[torch.Tensor]:
    """Training batches for the activation ranges of int8 layers."""
    x, _, _, _ = data()
    for i in range(0, len(x), BATCH):
        yield x[i : i + BATCH]
