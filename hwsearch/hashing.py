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


def _normalise(value: Any, path: str) -> Any:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool) or type(value).__name__ == "bool_":  # numpy.bool_ too
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


def canonical_json(family: str, config: Mapping[str, Any]) -> str:
    """The canonical text that :func:`config_hash` hashes."""
    payload = {"family": family, "config": _normalise(config, "")}
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def config_hash(family: str, config: Mapping[str, Any]) -> str:
    """Hex SHA-256 identifying ``config`` of ``family`` (see the module doc for the rules)."""
    return hashlib.sha256(canonical_json(family, config).encode("ascii")).hexdigest()
