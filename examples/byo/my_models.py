"""Your own model for hwsearch: a small classifier of 8x8 digits (scikit-learn's bundled
set), its weights trained once and cached, an evaluation and a short fine-tune."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import torch
from sklearn.datasets import load_digits
from torch import nn

WEIGHTS = Path(__file__).with_name("weights")


@cache
def digits() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    x, y = load_digits(return_X_y=True)
    x = torch.tensor(x, dtype=torch.float32) / 16.0
    y = torch.tensor(y)
    return x[:1200], y[:1200], x[1200:], y[1200:]


def _net(width: int) -> nn.Module:
    return nn.Sequential(
        nn.Linear(64, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, 10)
    )


def _train(model: nn.Module, steps: int) -> None:
    x, y, _, _ = digits()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(0)
    for _ in range(steps):
        i = torch.randint(0, len(x), (128,), generator=g)
        opt.zero_grad()
        nn.functional.cross_entropy(model(x[i]), y[i]).backward()
        opt.step()


def build(config: dict) -> nn.Module:
    """The model of ``config`` with its trained weights (trained once, then loaded)."""
    torch.set_num_threads(1)
    width = int(config["width"])
    path = WEIGHTS / f"mlp_{width}.pt"
    model = _net(width)
    if path.exists():
        model.load_state_dict(torch.load(path))
    else:
        torch.manual_seed(0)
        model = _net(width)
        _train(model, 150)
        WEIGHTS.mkdir(exist_ok=True)
        torch.save(model.state_dict(), path)
    return model


def evaluate(model: nn.Module, context) -> dict:
    _, _, x, y = digits()
    with torch.no_grad():
        accuracy = (model(x.to(context.device)).argmax(1).cpu() == y).float().mean().item()
    return {"accuracy": accuracy}


def finetune(model: nn.Module, context) -> None:
    """A few steps after compression (masks and fake quantization stay in place)."""
    _train(model, 20)


def calibration(context):
    x, _, _, _ = digits()
    return [x[i : i + 64] for i in range(0, 512, 64)]
