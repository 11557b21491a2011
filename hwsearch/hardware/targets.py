"""Deployment targets: the devices a candidate can be measured on.

A target is named like ``torch.device``: ``"cpu"`` or ``"cuda:N"`` (``"cuda"`` means
``"cuda:0"``). Only devices present on this machine parse; energy and carbon profiles are
attached elsewhere.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

import torch

from hwsearch.errors import SpecError

TargetKind = Literal["cpu", "cuda"]

_CUDA_NAME = re.compile(r"cuda(?::(\d+))?")


@dataclass(frozen=True)
class Target:
    """One device on this machine.

    ``name`` is the canonical spelling (``"cpu"``, ``"cuda:0"``); ``device_index`` is ``None``
    for the CPU.
    """

    name: str
    kind: TargetKind
    device_index: int | None = None

    @property
    def device(self) -> torch.device:
        """The ``torch.device`` to put models and inputs on."""
        return torch.device(self.name)


CPU = Target(name="cpu", kind="cpu", device_index=None)


def parse_target(name: str) -> Target:
    """Parse a target name and check that the device exists here.

    Raises :class:`SpecError` (field ``target``) for a malformed name, and for ``cuda:N``
    when CUDA is not available or ``N`` is not a device index of this machine.
    """
    if not isinstance(name, str):
        raise SpecError(field="target", reason=f"must be a string such as 'cpu', got {name!r}")
    text = name.strip().lower()
    if text == "cpu":
        return CPU
    match = _CUDA_NAME.fullmatch(text)
    if match is None:
        raise SpecError(
            field="target", reason=f"unknown target {name!r}; expected 'cpu' or 'cuda:N'"
        )
    index = int(match.group(1) or 0)
    if not torch.cuda.is_available():
        built = "built without CUDA" if torch.version.cuda is None else "no CUDA device visible"
        raise SpecError(
            field="target",
            reason=f"{name!r} asks for a GPU but CUDA is not available here "
            f"(torch {torch.__version__}, {built})",
        )
    count = torch.cuda.device_count()
    if index >= count:
        raise SpecError(
            field="target",
            reason=f"{name!r}: device index {index} out of range; this machine has "
            f"{count} CUDA device(s) (cuda:0 to cuda:{count - 1})",
        )
    return Target(name=f"cuda:{index}", kind="cuda", device_index=index)


def available_targets() -> list[Target]:
    """The CPU, then every visible CUDA device in index order."""
    targets = [CPU]
    if torch.cuda.is_available():
        targets.extend(
            Target(name=f"cuda:{i}", kind="cuda", device_index=i)
            for i in range(torch.cuda.device_count())
        )
    return targets
