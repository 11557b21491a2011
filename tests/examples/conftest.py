"""The examples of your own model, run with a tiny budget: their user code trains for a
handful of steps (the examples read these variables when first imported)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
TINY = {"HWSEARCH_EXAMPLE_PRETRAIN_STEPS": "25", "HWSEARCH_EXAMPLE_FINETUNE_STEPS": "3"}


@pytest.fixture(autouse=True)
def tiny_user_work(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in TINY.items():
        monkeypatch.setenv(key, value)


def tiny_env(**overrides: str) -> dict[str, str]:
    """The environment for a script of an example run as a subprocess: the tiny budget, and
    this checkout's ``hwsearch`` importable (after any ``PYTHONPATH`` already set)."""
    root = str(EXAMPLES.parent)
    path = os.environ.get("PYTHONPATH")
    return {
        **os.environ,
        **TINY,
        **overrides,
        "PYTHONPATH": root if not path else f"{path}{os.pathsep}{root}",
        "OMP_NUM_THREADS": "1",
    }
