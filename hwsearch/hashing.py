"""Canonical config hashes: the identity of a candidate across jobs.

The hash is the SHA-256 of canonical JSON of ``{"family": ..., "config": ...}``:

* keys sorted, no whitespace; mapping keys must be strings;
* tuples (and any other sequence) are written as lists;
* floats are rounded to 10 significant digits, so values that differ only by float noise
  (``0.5`` and ``0.50000000001``) hash alike;
* a number is a number: an integral float hashes like the int (``8.0`` like ``8``, ``-0.0``
  like ``0``), because YAML, JSON and the optimizers spell the same value either way;
* booleans stay distinct from numbers (``True`` is not ``1``);
* NaN and infinities are rejected: no family knob takes them.

Making equivalent configs identical (defaults, trimming per-block lists) is the family's job:
callers hash ``family.canonical(config)``.
"""

from __future__ import annotations

import hashlib
import json
import math
import numbers
from collections.abc import Mapping, Sequence
from typing import Any

SIGNIFICANT_DIGITS = 10


class _Unusual(Exception):
    """A value :func:`_plain` does not take: :func:`_normalise` decides (or raises)."""


def _plain(value: Any) -> Any:
    """:func:`_normalise` for the plain JSON types (exactly ``dict`` with ``str`` keys,
    ``list``, ``tuple``, ``str``, ``int``, ``float``, ``bool``, ``None``), without the path
    it would name in an error; raises :class:`_Unusual` on anything else (a subclass, a
    numpy scalar, a non-finite float), which the general function then handles. The
    driver hashes every candidate, so this is on its per-candidate path."""
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return value
    if kind is float:
        if not math.isfinite(value):
            raise _Unusual
        number = float(f"{value:.{SIGNIFICANT_DIGITS}g}")
        return int(number) if number.is_integer() else number
    if kind is dict:
        out: dict[str, Any] = {}
        for key, item in value.items():
            if type(key) is not str:
                raise _Unusual
            out[key] = item if type(item) in _AS_IS else _plain(item)
        return out
    if kind is list or kind is tuple:
        return [item if type(item) in _AS_IS else _plain(item) for item in value]
    raise _Unusual


#: the types :func:`_plain` returns unchanged (checked inline for the items of containers)
_AS_IS = frozenset({str, int, bool, type(None)})


def _is_numpy_bool(value: Any) -> bool:
    """Whether ``value`` is numpy's boolean scalar (``bool_``; named ``bool`` since numpy 2),
    which is not an ``int`` and must hash as ``True``/``False``, not fail."""
    kind = type(value)
    return kind.__module__ == "numpy" and kind.__name__ in ("bool_", "bool")


def _normalise(value: Any, path: str) -> Any:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool) or _is_numpy_bool(value):
        return bool(value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        number = float(value)
        if not math.isfinite(number):
            raise ValueError(f"config value at {path or 'top level'} is not finite: {value!r}")
        number = float(f"{number:.{SIGNIFICANT_DIGITS}g}")
        if number.is_integer():
            return int(number)
        return number
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"config keys must be strings, got {key!r} at {path or 'top'}")
            out[key] = _normalise(item, f"{path}.{key}" if path else key)
        return out
    if isinstance(value, Sequence | frozenset | set) and not isinstance(value, bytes):
        if isinstance(value, set | frozenset):
            raise TypeError(f"config value at {path} is a set; use a list")
        return [_normalise(item, f"{path}[{i}]") for i, item in enumerate(value)]
    raise TypeError(
        f"config value at {path or 'top level'} has unsupported type {type(value).__name__}"
    )


def _normalised(config: Mapping[str, Any]) -> Any:
    """``config`` in the form that is hashed (see the module doc): the plain types take
    :func:`_plain`, anything else the general :func:`_normalise`, which gives the same
    values and names the path of a value it refuses."""
    try:
        return _plain(config)
    except _Unusual:
        return _normalise(config, "")


#: the canonical text's encoder, made once (``json.dumps`` with these options makes one
#: per call)
_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def canonical_json(family: str, config: Mapping[str, Any]) -> str:
    """The canonical text that :func:`config_hash` hashes."""
    return _ENCODER.encode({"family": family, "config": _normalised(config)})


def config_hash(family: str, config: Mapping[str, Any]) -> str:
    """Hex SHA-256 identifying ``config`` of ``family`` (see the module doc for the rules)."""
    return hashlib.sha256(canonical_json(family, config).encode("ascii")).hexdigest()
