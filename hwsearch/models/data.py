"""The digits data set (scikit-learn's bundled 8x8 images, no download), split and scaled."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split


@dataclass(frozen=True)
class DigitsSplit:
    """Standardised images ``(N, 1, 8, 8)`` float32 and labels ``(N,)`` int64."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor


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
        images(x_train), torch.from_numpy(y_train), images(x_test), torch.from_numpy(y_test)
    )


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
