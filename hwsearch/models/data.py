"""The digits data set (scikit-learn's bundled 8x8 images, no download), split and scaled."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn


@dataclass(frozen=True)
class DigitsSplit:
    """Standardised images ``(N, 1, 8, 8)`` float32 and labels ``(N,)`` int64."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    mean: torch.Tensor  # (64,) per-pixel mean of the raw training images (0..16)
    std: torch.Tensor  # (64,) per-pixel deviation, 1 where a pixel is constant


@functools.lru_cache(maxsize=1)
def _raw() -> tuple[np.ndarray, np.ndarray]:
    bunch = load_digits()
    return bunch.data.astype(np.float32), bunch.target.astype(np.int64)


@functools.lru_cache(maxsize=8)
def load_digits_split(seed: int, test_size: float = 0.25) -> DigitsSplit:
    """A stratified train/test split drawn with ``seed``, pixels standardised per position
    with the training set's mean and deviation (constant pixels get deviation 1)."""
    if not 0.0 < test_size < 1.0:
        raise ValueError(f"test_size must be in (0, 1), got {test_size!r}")
    x, y = _raw()
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=test_size, stratify=y, random_state=seed
    )
    mean = x_train.mean(axis=0)
    std = x_train.std(axis=0)
    std[std < 1e-6] = 1.0

    def images(a: np.ndarray) -> torch.Tensor:
        scaled = ((a - mean) / std).astype(np.float32)
        tensor = torch.from_numpy(scaled).reshape(-1, 1, 8, 8)
        tensor.requires_grad_(False)
        return tensor

    return DigitsSplit(
        images(x_train),
        torch.from_numpy(y_train),
        images(x_test),
        torch.from_numpy(y_test),
        torch.from_numpy(mean.astype(np.float32)),
        torch.from_numpy(std.astype(np.float32)),
    )


class RawPixelInput(nn.Module):
    """Wraps a model trained on standardised digits so that it takes raw pixels (0..16).

    The exported model then needs nothing from this package: inputs are shaped like the
    family's (``(N, 64)`` for mlp, ``(N, 1, 8, 8)`` for cnn) and hold the digits' pixel values.
    """

    def __init__(self, model: nn.Module, split: DigitsSplit, example: torch.Tensor) -> None:
        super().__init__()
        self.model = model
        shape = example.shape[1:]
        self.mean: torch.Tensor
        self.std: torch.Tensor
        self.register_buffer("mean", split.mean.reshape(shape).clone())
        self.register_buffer("std", split.std.reshape(shape).clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.model((x - self.mean) / self.std)
        return out


def batches(
    x: torch.Tensor,
    y: torch.Tensor,
    batch_size: int,
    generator: torch.Generator | None = None,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Mini-batches of ``(x, y)``; shuffled with ``generator`` if given, else in order."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size!r}")
    n = x.shape[0]
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    for start in range(0, n, batch_size):
        idx = order[start : start + batch_size]
        yield x[idx], y[idx]
