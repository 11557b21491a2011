"""The ``context`` the user's code receives: ``evaluate(model, context)``,
``finetune(model, context)`` and ``calibration(context)``."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import torch


@dataclass(frozen=True)
class Context:
    """What one candidate's run knows; frozen, so user code cannot change it for others.

    - ``seed``: the candidate's seed; torch, numpy and ``random`` are seeded with it before
      each user call, so a user who wants more streams can derive them from it.
    - ``device``: where the model is and where batches should go (``torch.device``).
    - ``config``: the candidate's architecture config (the keys that go to ``build``).
    - ``compression``: the resolved per-layer rules, ``{layer name: {knob: value}}``.
    - ``logger``: a :class:`logging.Logger` whose records are kept with the candidate.
    - ``deadline``: ``time.monotonic()`` value by which the candidate must finish, or None.
    - ``candidate_id`` / ``job_id``: where the run is stored, when it is stored.
    - ``stage``: which user call is running (``"calibrate"``, ``"finetune"``, ``"evaluate"``).
    - ``extras``: a read-only bag of options the spec passes through (``evaluation.options``).
    """

    seed: int
    device: torch.device
    config: Mapping[str, Any]
    logger: logging.Logger
    deadline: float | None = None
    compression: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    candidate_id: str | None = None
    job_id: str | None = None
    stage: str = ""
    extras: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # read-only views: a user who writes into them gets a TypeError, not a silent leak
        object.__setattr__(self, "config", MappingProxyType(dict(self.config)))
        object.__setattr__(self, "extras", MappingProxyType(dict(self.extras)))
        object.__setattr__(
            self,
            "compression",
            MappingProxyType({k: MappingProxyType(dict(v)) for k, v in self.compression.items()}),
        )

    def time_left(self) -> float | None:
        """Seconds until the deadline (negative once past it), or None without one."""
        return None if self.deadline is None else self.deadline - time.monotonic()

    def expired(self) -> bool:
        """Whether the deadline has passed; long loops in user code may check it."""
        left = self.time_left()
        return left is not None and left <= 0

    def at(self, stage: str) -> Context:
        """The same context for another stage of the pipeline."""
        return Context(
            seed=self.seed,
            device=self.device,
            config=self.config,
            logger=self.logger,
            deadline=self.deadline,
            compression=self.compression,
            candidate_id=self.candidate_id,
            job_id=self.job_id,
            stage=stage,
            extras=self.extras,
        )
