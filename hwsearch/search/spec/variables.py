"""The search space's entries: int, float and choice variables, and constants."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Discriminator, Field, Tag, field_validator, model_validator

from hwsearch.search.spec.base import Scalar, SpecModel, describe


def _check_scalar(value: Any) -> Scalar:
    if isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"must be a finite number, got {value!r}")
        return value
    raise ValueError(f"must be a number, a string or a boolean, got {describe(value)}")


def _check_constant(value: Any) -> Scalar | list[Scalar]:
    if isinstance(value, list):
        if not value:
            raise ValueError("an empty list is not a value; give one value or one per block")
        for i, item in enumerate(value):
            try:
                _check_scalar(item)
            except ValueError as exc:
                raise ValueError(f"item [{i}] {exc}") from None
        return value
    try:
        return _check_scalar(value)
    except ValueError as exc:
        raise ValueError(
            f"a constant {exc}, or a list of those; "
            "a variable is a mapping with type: int, float or choice"
        ) from None


ScalarValue = Annotated[Any, AfterValidator(_check_scalar)]
ConstantValue = Annotated[Any, AfterValidator(_check_constant)]


def _multiple_of(span: float, step: float) -> bool:
    ratio = span / step
    return abs(ratio - round(ratio)) <= 1e-9 * max(1.0, abs(ratio))


class IntVarSpec(SpecModel):
    """An integer knob searched over ``low..high`` (inclusive) in ``step`` increments."""

    type: Literal["int"]
    low: int
    high: int
    step: int = Field(default=1, gt=0)
    log: bool = False
    per_layer: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _check(self) -> IntVarSpec:
        if self.low > self.high:
            raise ValueError(f"low ({self.low}) is greater than high ({self.high})")
        if self.log and self.low <= 0:
            raise ValueError(f"log scale needs low > 0, got low={self.low}")
        if self.log and self.step != 1:
            raise ValueError("log scale cannot be combined with a step other than 1")
        if (self.high - self.low) % self.step:
            raise ValueError(
                f"high - low ({self.high - self.low}) is not a multiple of step ({self.step})"
            )
        return self


class FloatVarSpec(SpecModel):
    """A real knob searched over ``[low, high]``: uniform, on a ``step`` grid or log-uniform."""

    type: Literal["float"]
    low: float
    high: float
    step: float | None = Field(default=None, gt=0)
    log: bool = False
    per_layer: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _check(self) -> FloatVarSpec:
        if self.low > self.high:
            raise ValueError(f"low ({self.low:g}) is greater than high ({self.high:g})")
        if self.log and self.low <= 0:
            raise ValueError(f"log scale needs low > 0, got low={self.low:g}")
        if self.log and self.step is not None:
            raise ValueError("log scale cannot be combined with step")
        if self.step is not None and not _multiple_of(self.high - self.low, self.step):
            raise ValueError(
                f"high - low ({self.high - self.low:g}) is not a multiple of step ({self.step:g})"
            )
        return self


class ChoiceVarSpec(SpecModel):
    """A knob searched over a list of distinct values."""

    type: Literal["choice"]
    values: list[ScalarValue] = Field(min_length=1)
    per_layer: int | None = Field(default=None, ge=1)

    @field_validator("values")
    @classmethod
    def _distinct(cls, values: list[Scalar]) -> list[Scalar]:
        # Linear: keyed by type too, since True == 1 == 1.0 must stay distinct from 1 only
        # for booleans (1 and 1.0 are the same value).
        seen: set[tuple[bool, Scalar]] = set()
        for value in values:
            key = (isinstance(value, bool), value)
            if key in seen:
                raise ValueError(f"{describe(value)} is listed twice; values must be distinct")
            seen.add(key)
        return values


VariableSpec = IntVarSpec | FloatVarSpec | ChoiceVarSpec
VARIABLE_MODELS: dict[str, type[SpecModel]] = {
    "int": IntVarSpec,
    "float": FloatVarSpec,
    "choice": ChoiceVarSpec,
}


def _entry_kind(value: Any) -> str | None:
    if isinstance(value, IntVarSpec | FloatVarSpec | ChoiceVarSpec):
        return value.type
    if isinstance(value, Mapping):
        kind = value.get("type")
        return kind if isinstance(kind, str) and kind in VARIABLE_MODELS else None
    return "constant"


SpaceEntry = Annotated[
    Annotated[IntVarSpec, Tag("int")]
    | Annotated[FloatVarSpec, Tag("float")]
    | Annotated[ChoiceVarSpec, Tag("choice")]
    | Annotated[ConstantValue, Tag("constant")],
    Discriminator(_entry_kind, custom_error_type="space_entry", custom_error_message="bad type"),
]
