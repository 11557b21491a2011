"""Training and evaluation on the digits split: Adam, cross-entropy, fixed seeds."""

from __future__ import annotations

import torch
from torch import nn

from hwsearch.models.data import batches


def train(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    seed: int,
) -> nn.Module:
    """Train in place with Adam and a cosine-decaying learning rate; the shuffling order
    comes from ``seed``. Leaves the model in training mode and returns it."""
    if epochs < 0:
        raise ValueError(f"epochs must be at least 0, got {epochs!r}")
    if epochs == 0:
        return model
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    steps = epochs * -(-x.shape[0] // batch_size)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    for _ in range(epochs):
        for xb, yb in batches(x, y, batch_size, generator):
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(xb), yb)
            loss.backward()
            optimizer.step()
            schedule.step()
    return model


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """Predicted classes of ``x`` (the model is switched to eval mode)."""
    model.eval()
    out = [model(x[i : i + batch_size]).argmax(dim=1) for i in range(0, x.shape[0], batch_size)]
    return torch.cat(out)


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Share of correctly classified samples, in [0, 1]."""
    if x.shape[0] == 0:
        raise ValueError("cannot measure accuracy on an empty set")
    return float((predict(model, x) == y).float().mean())
