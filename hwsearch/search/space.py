"""The typed search space: the variables an optimizer sets and the constants it leaves alone.

A per-layer knob (``width: {type: choice, values: [...], per_layer: 3}``) becomes one variable
per layer, named ``width[0]``, ``width[1]``, ``width[2]``; :meth:`SearchSpace.to_config`
gathers them back into the list the family expects.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Protocol

import numpy as np


class HasSpace(Protocol):
    """What :meth:`SearchSpace.from_spec` reads of a job spec: its ``space`` entries, each a
    constant or a variable (an object with ``type`` ``int``, ``float`` or ``choice`` and
    that type's fields, as :mod:`hwsearch.search.spec` validates them)."""

    @property
    def space(self) -> Mapping[str, Any]: ...


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@dataclass(frozen=True)
class IntVar:
    """Integers ``low, low + step, ..., high``; ``log`` samples log-uniformly (step 1 only)."""

    name: str
    low: int
    high: int
    step: int = 1
    log: bool = False

    def __post_init__(self) -> None:
        if self.low > self.high:
            raise ValueError(f"{self.name}: low={self.low!r} is greater than high={self.high!r}")
        if self.step < 1:
            raise ValueError(f"{self.name}: step must be >= 1, got {self.step!r}")
        if self.log and (self.low < 1 or self.step != 1):
            raise ValueError(f"{self.name}: log scale needs low >= 1 and step 1")
        if (self.high - self.low) % self.step:
            raise ValueError(f"{self.name}: high - low is not a multiple of step={self.step!r}")

    def sample(self, rng: np.random.Generator) -> int:
        if self.log:
            value = math.exp(rng.uniform(math.log(self.low - 0.5), math.log(self.high + 0.5)))
            return min(max(round(value), self.low), self.high)
        n = (self.high - self.low) // self.step + 1
        return self.low + self.step * int(rng.integers(n))

    def contains(self, value: Any) -> bool:
        return (
            _is_number(value)
            and float(value).is_integer()
            and self.low <= value <= self.high
            and (int(value) - self.low) % self.step == 0
        )


@dataclass(frozen=True)
class FloatVar:
    """Reals in ``[low, high]``: uniform, on a ``step`` grid from ``low``, or log-uniform."""

    name: str
    low: float
    high: float
    step: float | None = None
    log: bool = False

    def __post_init__(self) -> None:
        if not (math.isfinite(self.low) and math.isfinite(self.high)):
            raise ValueError(f"{self.name}: bounds must be finite, got {self.low!r}, {self.high!r}")
        if self.low > self.high:
            raise ValueError(f"{self.name}: low={self.low!r} is greater than high={self.high!r}")
        if self.step is not None and not self.step > 0:
            raise ValueError(f"{self.name}: step must be > 0, got {self.step!r}")
        if self.log and (self.low <= 0 or self.step is not None):
            raise ValueError(f"{self.name}: log scale needs low > 0 and no step")

    def _grid_size(self) -> int:
        assert self.step is not None
        return math.floor((self.high - self.low) / self.step + 1e-9) + 1

    def sample(self, rng: np.random.Generator) -> float:
        if self.step is not None:
            return float(self.low + self.step * int(rng.integers(self._grid_size())))
        if self.log:
            return float(math.exp(rng.uniform(math.log(self.low), math.log(self.high))))
        return float(rng.uniform(self.low, self.high))

    def contains(self, value: Any) -> bool:
        if not _is_number(value) or not self.low <= value <= self.high:
            return False
        if self.step is None:
            return True
        ratio = (value - self.low) / self.step
        return abs(ratio - round(ratio)) <= 1e-9 * max(1.0, abs(ratio))


@dataclass(frozen=True)
class ChoiceVar:
    """One of a fixed tuple of values (numbers, strings or booleans)."""

    name: str
    values: tuple[Any, ...]

    def __post_init__(self) -> None:
        if not self.values:
            raise ValueError(f"{self.name}: a choice needs at least one value")
        object.__setattr__(self, "values", tuple(self.values))

    def sample(self, rng: np.random.Generator) -> Any:
        return self.values[int(rng.integers(len(self.values)))]

    def contains(self, value: Any) -> bool:
        return any(
            value == v and isinstance(value, bool) == isinstance(v, bool) for v in self.values
        )


Variable = IntVar | FloatVar | ChoiceVar


@dataclass(frozen=True)
class SearchSpace:
    """Variables (what the optimizer sets) and constants (fixed knob values).

    ``layers`` maps each per-layer knob to its number of layers; the order of ``knobs`` is the
    order of the spec and of the config :meth:`to_config` builds.
    """

    variables: tuple[Variable, ...]
    constants: dict[str, Any] = field(default_factory=dict)
    layers: dict[str, int] = field(default_factory=dict)
    knobs: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        names = [v.name for v in self.variables]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"variable names must be distinct; repeated: {duplicates}")
        if not self.knobs:
            knobs = [k for k in self.constants]
            knobs += [n for n in names if "[" not in n] + list(self.layers)
            object.__setattr__(self, "knobs", tuple(dict.fromkeys(knobs)))

    @classmethod
    def from_spec(cls, spec: HasSpace) -> SearchSpace:
        variables: list[Variable] = []
        constants: dict[str, Any] = {}
        layers: dict[str, int] = {}
        # Knobs in name order, not spec order: the same space written in another order (or
        # stored as PostgreSQL JSONB, which reorders keys) must search identically.
        for key, entry in sorted(spec.space.items()):
            kind = getattr(entry, "type", None)
            if kind not in ("int", "float", "choice"):
                constants[key] = entry
                continue
            if entry.per_layer is not None:
                layers[key] = entry.per_layer
                names = [f"{key}[{i}]" for i in range(entry.per_layer)]
            else:
                names = [key]
            for name in names:
                if kind == "int":
                    variables.append(IntVar(name, entry.low, entry.high, entry.step, entry.log))
                elif kind == "float":
                    variables.append(FloatVar(name, entry.low, entry.high, entry.step, entry.log))
                else:
                    variables.append(ChoiceVar(name, tuple(entry.values)))
        return cls(tuple(variables), constants, layers, tuple(sorted(spec.space)))

    @property
    def names(self) -> list[str]:
        return [v.name for v in self.variables]

    # Worked out once (to_config runs for every candidate); the fields do not change.
    @cached_property
    def _by_name(self) -> dict[str, Variable]:
        return {v.name: v for v in self.variables}

    @cached_property
    def _layer_names(self) -> dict[str, tuple[str, ...]]:
        """Each per-layer knob's variable names, by layer."""
        return {knob: tuple(f"{knob}[{i}]" for i in range(n)) for knob, n in self.layers.items()}

    def __len__(self) -> int:
        return len(self.variables)

    def sample(self, rng: np.random.Generator) -> dict[str, Any]:
        """Independent uniform draws of every variable (Python scalars, not numpy ones)."""
        return {v.name: v.sample(rng) for v in self.variables}

    def check_params(self, params: Mapping[str, Any]) -> None:
        """Raise ValueError naming the first missing, unknown or out-of-range parameter."""
        by_name = self._by_name
        missing = [n for n in by_name if n not in params]
        if missing:
            raise ValueError(f"parameters missing: {', '.join(missing)}")
        unknown = sorted(set(params) - by_name.keys())
        if unknown:
            raise ValueError(f"unknown parameters: {', '.join(unknown)}")
        for variable in self.variables:
            if not variable.contains(params[variable.name]):
                raise ValueError(
                    f"parameter {variable.name}={params[variable.name]!r} is outside its range"
                )

    def to_config(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """The knob config for flat variable values: per-layer knobs as lists, constants in."""
        self.check_params(params)
        by_name = self._by_name
        config: dict[str, Any] = {}
        for knob in self.knobs:
            if knob in self.layers:
                config[knob] = [
                    _plain(params[name], by_name[name]) for name in self._layer_names[knob]
                ]
            elif knob in by_name:
                config[knob] = _plain(params[knob], by_name[knob])
            else:
                constant = self.constants[knob]
                config[knob] = (
                    list(constant)
                    if isinstance(constant, Sequence) and not isinstance(constant, str)
                    else constant
                )
        return config

    def to_params(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """The inverse of :meth:`to_config` (for seeding an optimizer with known configs)."""
        params: dict[str, Any] = {}
        for variable in self.variables:
            knob, _, index = variable.name.partition("[")
            value = config[knob]
            params[variable.name] = value[int(index[:-1])] if index else value
        self.check_params(params)
        return params


def _plain(value: Any, variable: Variable) -> Any:
    """Python ``int``/``float`` for numeric variables (optimizers may hand back numpy types)."""
    if isinstance(variable, IntVar):
        return int(value)
    if isinstance(variable, FloatVar):
        return float(value)
    if isinstance(value, np.generic):
        return value.item()
    return value


__all__ = ["ChoiceVar", "FloatVar", "IntVar", "SearchSpace", "Variable"]
