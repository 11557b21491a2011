"""The model-family interface: what the search can vary and how a config becomes a network."""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:  # the interface names torch's types; importing it waits for a model
    import numpy as np
    import torch
    from torch import nn

KnobKind = Literal["int", "float", "choice"]


@dataclass(frozen=True)
class Knob:
    """One setting of a family that a spec may fix or search over.

    ``per_block`` knobs take either one value (used for every block) or a list with one value
    per block (for ``mlp`` a block is a hidden layer, for ``cnn`` a stage).
    """

    name: str
    kind: KnobKind
    default: Any
    doc: str
    choices: tuple[Any, ...] | None = None  # allowed values of a "choice" knob
    low: float | None = None  # inclusive bounds of an "int" / "float" knob
    high: float | None = None
    per_block: bool = False
    check: Callable[[Any], str | None] | None = None  # extra rule; returns the reason or None

    @cached_property
    def integer_choices(self) -> bool:
        """Whether this knob has choices and every one is an int (asked of every value a
        canonical config takes, so worked out once)."""
        return self.choices is not None and all(isinstance(c, int) for c in self.choices)

    def problem(self, value: Any) -> str | None:
        """Why ``value`` is not a valid single value of this knob, or None if it is."""
        if self.kind == "choice":
            if self.check is not None:
                return self.check(value)
            if self.choices is not None and value not in self.choices:
                return f"{value!r} is not one of {list(self.choices)}"
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f"{value!r} is not a number"
        if self.kind == "int" and not float(value).is_integer():
            return f"{value!r} is not an integer"
        if self.low is not None and value < self.low:
            return f"{value!r} is below the minimum {self.low:g}"
        if self.high is not None and value > self.high:
            return f"{value!r} is above the maximum {self.high:g}"
        if self.check is not None:
            return self.check(value)
        return None


class ModelFamily(abc.ABC):
    """A family of networks described by a flat config of knob values."""

    name: str
    knobs: Mapping[str, Knob]
    #: Whether the ``train`` evaluation can train this family on its data source. Families
    #: whose quality comes from published tables (``nb201``) set it to False.
    trainable: bool = True
    #: The evaluation kind (:mod:`hwsearch.workers.kinds`) of a spec whose ``evaluation``
    #: names no ``type``.
    default_evaluation: str = "train"
    #: The evaluation kinds that may evaluate this family; None: every kind that accepts it.
    evaluations: tuple[str, ...] | None = None
    #: The data source (:mod:`hwsearch.models.sources`) the ``train`` evaluation trains,
    #: calibrates and tests this family's models on; None where the family's evaluation
    #: brings its own data.
    data_source: str | None = "digits"

    def knobs_for(self, space: Mapping[str, Any]) -> Mapping[str, Knob]:
        """The knobs of a spec whose ``space`` has these entries (by name). By default the
        family's fixed :attr:`knobs`; a family whose settings are not known in advance
        (e.g. one knob per layer of a user's model) declares them from the space's names."""
        return self.knobs

    @abc.abstractmethod
    def num_blocks(self, config: Mapping[str, Any]) -> int:
        """How many blocks the architecture in ``config`` has (the length of per-block lists)."""

    @abc.abstractmethod
    def canonical(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """The config with defaults filled in and equivalent spellings made identical.

        Per-block knobs become lists trimmed to ``num_blocks``; settings that have no effect
        (a sparsity pattern at ratio 0) take one fixed value. Two configs that build the same
        model have the same canonical form, hence the same hash.
        """

    @abc.abstractmethod
    def build(self, config: Mapping[str, Any]) -> nn.Module:
        """A dense, untrained float model of the canonical ``config``."""

    @abc.abstractmethod
    def example_input(self, batch_size: int) -> torch.Tensor:
        """An input batch of the shape the family's models take."""

    def example_input_for(self, config: Mapping[str, Any], batch_size: int) -> torch.Tensor:
        """An input batch for the model of ``config`` (families whose input shape is a knob
        override this)."""
        return self.example_input(batch_size)

    def structure(self, configs: Sequence[Mapping[str, Any]]) -> np.ndarray | None:
        """What canonical ``configs`` are, beyond their knob values, that a surrogate of
        their quality and cost should know (one row per config: e.g. which paths of a
        cell carry data), or None where the knob values say it all (the default)."""
        return None

    def features(
        self, configs: Sequence[Mapping[str, Any]]
    ) -> tuple[np.ndarray, Sequence[str]] | None:
        """A numeric encoding of canonical ``configs`` for predictors (one row per config)
        and its column names, or None where :mod:`hwsearch.predictors.features` has the
        family's encoding (the built-ins) or the family has none."""
        return None

    def counts(self, config: Mapping[str, Any]) -> tuple[int, int] | None:
        """``(params, macs)`` of the canonical ``config`` without building it, or None where
        the family has no formula (the model is then built and counted)."""
        return None


_REGISTRY: dict[str, ModelFamily] = {}


def register_family(family: ModelFamily) -> ModelFamily:
    """Register ``family`` under its name (built-ins and plug-ins)."""
    if not isinstance(family, ModelFamily):
        raise TypeError(f"{family!r} is not a ModelFamily")
    _REGISTRY[family.name] = family
    return family


def get_family(name: str) -> ModelFamily:
    from hwsearch.errors import UnknownNameError

    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownNameError("model family", name, _REGISTRY) from None


def family_names() -> list[str]:
    return sorted(_REGISTRY)
