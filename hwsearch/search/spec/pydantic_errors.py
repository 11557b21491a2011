"""Pydantic's errors as :class:`~hwsearch.errors.SpecError`: a dotted field path without
pydantic's union tags, and a reason in words (what was expected, what was given, which
fields a section allows)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

from hwsearch.errors import SpecError
from hwsearch.search.objectives import format_number
from hwsearch.search.spec.base import describe
from hwsearch.search.spec.schema import JobSpec
from hwsearch.search.spec.sections import (
    DeviceTargetSpec,
    MeasurementSettings,
    OptimizerSpec,
    TableMeasurement,
    TableTargetSpec,
)
from hwsearch.search.spec.variables import VARIABLE_MODELS
from hwsearch.workers.kinds import evaluation_kinds, get_evaluation

#: The tag put before an evaluation kind's type in the location of its settings' errors.
KIND_TAG = "evaluation-kind:"


def field_path(loc: tuple[int | str, ...]) -> str:
    """``("space", "width", "values", 1)`` as ``space.width.values[1]``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


# The models behind the union tags of top-level fields.
_TAGGED_MODELS: dict[tuple[str, str], type[BaseModel]] = {
    ("target", "device-table"): TableTargetSpec,
    ("target", "device-profile"): DeviceTargetSpec,
    ("measurement", "timing"): MeasurementSettings,
    ("measurement", "table-measurement"): TableMeasurement,
}
_TAGS = {"device-name", *(tag for _, tag in _TAGGED_MODELS)}


def _strip_tags(loc: tuple[int | str, ...]) -> tuple[int | str, ...]:
    """Drop the union tag pydantic puts after a space entry's or a top-level field's name."""
    if len(loc) > 2 and loc[0] == "space" and loc[2] in (*VARIABLE_MODELS, "constant"):
        return loc[:2] + loc[3:]
    if len(loc) >= 2 and loc[0] in ("target", "evaluation", "measurement") and loc[1] in _TAGS:
        return loc[:1] + loc[2:]
    return loc


def _model_at(loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The model class that holds the field at ``loc`` (for listing its allowed fields)."""
    if len(loc) >= 3 and loc[0] == "space" and isinstance(loc[2], str):
        return VARIABLE_MODELS.get(loc[2])
    if len(loc) >= 3 and loc[0] == "evaluation" and str(loc[1]).startswith(KIND_TAG):
        return get_evaluation(str(loc[1])[len(KIND_TAG) :]).settings_model
    if len(loc) >= 3 and (str(loc[0]), str(loc[1])) in _TAGGED_MODELS:
        return _TAGGED_MODELS[(str(loc[0]), str(loc[1]))]
    model: type[BaseModel] = JobSpec
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part)
        if field is None:
            return None
        candidates = [field.annotation, *getattr(field.annotation, "__args__", ())]
        nested = [c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)]
        if not nested:
            return None
        model = nested[0]
    return model


_TYPE_WORDS = {
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "string_type": "a string",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "dict_type": "a mapping (key: value)",
    "model_type": "a mapping (key: value)",
    "model_attributes_type": "a mapping (key: value)",
    "list_type": "a list",
}


def reason_for(error: Mapping[str, Any], loc: tuple[int | str, ...]) -> str:
    """One pydantic error in words (``loc`` is where it is, union tags stripped)."""
    kind = error["type"]
    ctx = error.get("ctx") or {}
    got = describe(error.get("input"))
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        model = _model_at(tuple(error["loc"]))
        allowed = f"; allowed: {', '.join(model.model_fields)}" if model is not None else ""
        if model is OptimizerSpec:
            allowed = ""
        return f"unknown field{allowed}"
    if kind in _TYPE_WORDS:
        return f"expected {_TYPE_WORDS[kind]}, got {got}"
    if kind == "literal_error":
        return f"must be {ctx.get('expected')}, got {got}"
    if kind == "finite_number":
        return f"must be a finite number, got {got}"
    bounds = {
        "greater_than": "greater than {gt}",
        "greater_than_equal": "at least {ge}",
        "less_than": "less than {lt}",
        "less_than_equal": "at most {le}",
    }
    if kind in bounds:
        limits = {k: format_number(v) if isinstance(v, float) else v for k, v in ctx.items()}
        return f"must be {bounds[kind].format(**limits)}, got {got}"
    if kind == "too_short":
        if ctx.get("min_length") == 1:
            return "must not be empty"
        return f"needs at least {ctx.get('min_length')} items"
    if kind == "string_too_short":
        return "must not be empty"
    if kind == "value_error":
        return str(ctx.get("error", error["msg"]))
    return _custom_reason(error, got)


def _custom_reason(error: Mapping[str, Any], got: str) -> str:
    """The reason of an error this spec raises itself (a union none of whose forms fit)."""
    kind = error["type"]
    if kind == "target_kind":
        return (
            f"expected a device name such as 'cpu' or a table target "
            f"{{name: ..., table: FILE, column: ...}}, got {got}"
        )
    if kind == "evaluation_type":
        value = error.get("input")
        kind_given = value.get("type") if isinstance(value, Mapping) else None
        kinds = ", ".join(k.doc or repr(k.type) for k in evaluation_kinds())
        return (
            f"unknown evaluation type {describe(kind_given)}; use {kinds}, or leave type "
            "out for the family's default"
        )
    if kind == "space_entry":
        value = error.get("input")
        if isinstance(value, Mapping) and "type" in value:
            return f"unknown variable type {describe(value['type'])}; use int, float or choice"
        return (
            "a variable needs 'type: int', 'type: float' or 'type: choice'; "
            "a constant is a single value or a list"
        )
    return str(error["msg"])


def spec_errors(exc: ValidationError) -> list[SpecError]:
    """Each distinct error of ``exc`` as a :class:`SpecError` naming its field."""
    out: list[SpecError] = []
    seen: set[tuple[str, str]] = set()
    for error in exc.errors():
        loc = _strip_tags(tuple(error["loc"]))
        if error["type"] == "space_entry":
            value = error.get("input")
            if isinstance(value, Mapping) and "type" in value:
                loc = (*loc, "type")
        if error["type"] == "evaluation_type":
            loc = (*loc, "type")
        field, reason = field_path(loc), reason_for(error, loc)
        if (field, reason) not in seen:
            seen.add((field, reason))
            out.append(SpecError(field, reason))
    return out
