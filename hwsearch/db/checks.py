"""Checks of what is given to storage, each naming the field and the reason
(:class:`~hwsearch.errors.StorageError`), and the column widths they enforce."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any, TypeVar

from hwsearch.errors import StorageError
from hwsearch.records import CandidateStatus, JobState, MetricValue, Provenance

_E = TypeVar("_E", JobState, CandidateStatus)
# Column widths of models.py, checked up front for a clear error instead of a backend one.
MAX_NAME = 200
MAX_LABEL = 100
MAX_HASH = 64
#: Values per IN list, well under SQLite's limit on the parameters of one statement.
IN_CHUNK = 500


def check_text(field: str, value: object, max_len: int) -> None:
    if not isinstance(value, str) or not value.strip():
        raise StorageError(field, f"must be a non-empty string, got {value!r}")
    if len(value) > max_len:
        raise StorageError(field, f"must be at most {max_len} characters, got {len(value)}")


#: integers wider than this are left to the JSON round trip (whose reading stops at 4,300
#: digits, about 14,280 bits)
_MAX_PLAIN_INT_BITS = 14_000


class _NotPlain(Exception):
    """A value :func:`_plain_copy` leaves to the JSON round trip."""


def _plain_copy(value: Any) -> Any:
    """A copy of ``value`` made of exactly ``dict`` (``str`` keys), ``list``, ``tuple`` (as a
    list), ``str``, ``int``, finite ``float``, ``bool`` and ``None``: what the JSON round
    trip gives of them, without the text. Raises :class:`_NotPlain` on anything else."""
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return value
    if kind is int:
        if value.bit_length() > _MAX_PLAIN_INT_BITS:  # past what json.loads reads back
            raise _NotPlain
        return value
    if kind is float:
        if not math.isfinite(value):
            raise _NotPlain
        return value
    if kind is dict:
        out: dict[str, Any] = {}
        for key, item in value.items():
            if type(key) is not str:
                raise _NotPlain
            out[key] = item if type(item) in _AS_IS else _plain_copy(item)
        return out
    if kind is list or kind is tuple:
        return [item if type(item) in _AS_IS else _plain_copy(item) for item in value]
    raise _NotPlain


#: the types :func:`_plain_copy` returns unchanged whatever their value (checked inline for
#: the items of containers)
_AS_IS = frozenset({str, bool, type(None)})


def json_object(field: str, value: object) -> dict[str, Any]:
    """``value`` as the database will give it back (tuples become lists, keys strings), so
    a record returned by a write equals the one a later read returns. Plain values are
    copied directly (every candidate's config and metric details pass here); anything else
    goes through ``json.dumps`` and back, which also names what cannot be stored."""
    if not isinstance(value, dict):
        raise StorageError(field, f"must be a dict, got {type(value).__name__}")
    try:
        copied: dict[str, Any] = _plain_copy(value)
        return copied
    except (_NotPlain, RecursionError):
        pass
    try:
        normalised: dict[str, Any] = json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise StorageError(
            field, f"must be JSON-serialisable (finite numbers only): {exc}"
        ) from exc
    return normalised


def check_count(field: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise StorageError(field, f"must be a non-negative integer, got {value!r}")


def check_finite(field: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise StorageError(field, f"must be a number, got {value!r}")
    if not math.isfinite(value):
        raise StorageError(field, f"must be finite, got {value!r}")
    return float(value)


def coerce_enum(field: str, value: str, kind: type[_E]) -> _E:
    try:
        return kind(value)
    except ValueError:
        valid = ", ".join(member.value for member in kind)
        raise StorageError(field, f"unknown value {value!r}; valid values: {valid}") from None


def check_metrics(metrics: Sequence[MetricValue], field: str = "metrics") -> list[MetricValue]:
    """``metrics`` checked, with details as the database gives them back; errors name
    ``field[i]``."""
    checked: list[MetricValue] = []
    names: set[str] = set()
    for i, m in enumerate(metrics):
        if not isinstance(m, MetricValue):
            raise StorageError(f"{field}[{i}]", f"must be a MetricValue, got {type(m).__name__}")
        check_text(f"{field}[{i}].name", m.name, MAX_LABEL)
        if m.name in names:
            raise StorageError(f"{field}[{i}].name", f"{m.name!r} is given twice")
        names.add(m.name)
        value = check_finite(f"{field}[{i}].value", m.value)
        try:
            provenance = Provenance(m.provenance)
        except ValueError:
            valid = ", ".join(p.value for p in Provenance)
            raise StorageError(
                f"{field}[{i}].provenance", f"unknown value {m.provenance!r}; valid: {valid}"
            ) from None
        if m.target:
            check_text(f"{field}[{i}].target", m.target, MAX_LABEL)
        details = json_object(f"{field}[{i}].details", m.details)
        checked.append(
            MetricValue(
                name=m.name,
                value=value,
                provenance=provenance,
                target=m.target,
                details=details,
            )
        )
    return checked


def check_bool(field: str, value: object) -> None:
    if not isinstance(value, bool):
        raise StorageError(field, f"must be true or false, got {value!r}")


def check_id(field: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise StorageError(field, f"must be an integer id, got {value!r}")
