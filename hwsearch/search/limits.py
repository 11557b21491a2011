"""Caps on everything a spec (or a request) controls, checked before anything runs.

A spec is data from whoever may submit jobs; left unbounded, one of them can hold the
server's only runner slot for ever (``population_size: 1e9``), make validation quadratic
(40,000 choice values) or fail later in ways that look like bugs (a seed numpy refuses).
:class:`SpecLimits` holds one cap per thing a spec sizes, with defaults generous for real
searches; :func:`check_limits` walks the raw spec data (iteratively, so no depth of
nesting can overflow the stack) and names each field over its cap. It runs first in
:func:`hwsearch.search.spec.parse_spec`, before any model is built or file opened.

The defaults apply in every process; ``hwsearch serve --limit NAME=VALUE`` (or
:func:`configure_limits`) sets this process's caps, which then also apply when the
runner re-reads the specs it accepted.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hwsearch.errors import SpecError

#: C0 controls and DEL: no name, path or constraint has a use for them (PostgreSQL refuses
#: NUL in text).
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

#: The seed range numpy's generators take.
SEED_MAX = 2**32 - 1

#: Integer options of optimizers that size a population or a batch.
_POPULATION_OPTIONS = ("population_size", "n_offsprings", "batch_size", "n_startup_trials")


@dataclass(frozen=True)
class SpecLimits:
    """The caps, each a documented setting (``hwsearch serve --limit NAME=VALUE``)."""

    #: bytes of the spec as compact JSON
    spec_bytes: int = 256 << 10
    #: nesting depth of mappings and lists anywhere in the spec
    depth: int = 32
    #: characters of any one string (names, metrics, paths, constraints)
    string_length: int = 4096
    #: entries of ``space`` (variables and constants)
    variables: int = 256
    #: values of one ``choice`` variable, and items of one list constant
    choice_values: int = 1024
    #: ``per_layer`` of one variable
    per_layer: int = 256
    #: ``constraints``
    constraints: int = 64
    #: ``objectives``
    objectives: int = 16
    #: prior ``tables`` and ``targets``
    prior_sources: int = 32
    #: ``population_size``, ``n_offsprings`` and other batch sizes of the optimizer
    population: int = 4096
    #: ``evaluation.batch_size`` and ``measurement.batch_size``
    batch_size: int = 65536
    #: training ``epochs`` and ``finetune_epochs``
    epochs: int = 1000
    #: ``budget.evaluations``
    evaluations: int = 1_000_000
    #: ``budget.wall_time_s``: 30 days
    wall_time_s: float = 30 * 86400.0
    #: size of any integer in the spec (beyond it, numbers lose their meaning in float64)
    abs_int: int = 2**53
    #: characters of a ``where`` filter (query parameter of the front routes)
    where_length: int = 2000
    #: nesting depth of parentheses and ``not`` in a ``where`` filter
    where_depth: int = 32

    def __post_init__(self) -> None:
        for item in dataclasses.fields(self):
            value = getattr(self, item.name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 1:
                raise ValueError(f"limit {item.name} must be a positive number, got {value!r}")

    def replace(self, **changes: Any) -> SpecLimits:
        """These limits with ``changes`` (by name); ``ValueError`` names an unknown one."""
        names = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - names)
        if unknown:
            raise ValueError(f"unknown limit(s) {', '.join(unknown)}; known: {', '.join(names)}")
        return dataclasses.replace(self, **changes)

    @classmethod
    def parse_settings(cls, items: list[str], base: SpecLimits | None = None) -> SpecLimits:
        """Limits from ``NAME=VALUE`` strings (the CLI's ``--limit``), over ``base``."""
        changes: dict[str, Any] = {}
        types = {f.name: f.type for f in dataclasses.fields(cls)}
        for item in items:
            name, sep, text = item.partition("=")
            name = name.strip().replace("-", "_")
            if not sep or name not in types:
                raise ValueError(f"--limit {item!r}: give NAME=VALUE, NAME one of {sorted(types)}")
            try:
                changes[name] = float(text) if types[name] in (float, "float") else int(text)
            except ValueError:
                raise ValueError(f"--limit {item!r}: {text!r} is not a number") from None
        return (base or cls()).replace(**changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_CURRENT = SpecLimits()


def configure_limits(limits: SpecLimits) -> None:
    """Set this process's limits (``hwsearch serve`` does, from its settings)."""
    global _CURRENT
    _CURRENT = limits


def current_limits() -> SpecLimits:
    """The limits in force in this process: the defaults unless configured."""
    return _CURRENT


def _over(field: str, what: str, count: float, cap: float) -> SpecError:
    """``field`` has ``count`` ``what`` (``what`` empty: is ``count``), over ``cap``."""
    shown = f"{count:g}" if isinstance(count, float) else str(count)
    said = f"has {shown} {what}" if what else f"is {shown}"
    return SpecError(field, f"{said}, more than the limit of {cap:g}")


def _walk(data: Any, limits: SpecLimits) -> list[SpecError]:
    """Depth, string length and integer size anywhere, without recursion."""
    problems: list[SpecError] = []
    stack: list[tuple[Any, str, int]] = [(data, "", 0)]
    while stack and len(problems) < 20:
        value, path, depth = stack.pop()
        if isinstance(value, str):
            control = _CONTROL.search(value)
            if control is not None:
                problems.append(
                    SpecError(
                        path or "spec",
                        f"contains the control character U+{ord(control.group()):04X}",
                    )
                )
            elif len(value) > limits.string_length:
                problems.append(
                    _over(path or "spec", "characters", len(value), limits.string_length)
                )
        elif isinstance(value, bool):
            continue
        elif isinstance(value, int):
            if abs(value) > limits.abs_int:
                problems.append(
                    SpecError(path or "spec", f"{value:.3g} is larger than {limits.abs_int:.3g}")
                )
        elif isinstance(value, float):
            if math.isfinite(value) and abs(value) > limits.abs_int:
                problems.append(
                    SpecError(path or "spec", f"{value:.3g} is larger than {limits.abs_int:.3g}")
                )
        elif isinstance(value, Mapping | list | tuple):
            if depth >= limits.depth:
                problems.append(
                    SpecError(path or "spec", f"nested more than {limits.depth} levels deep")
                )
                continue
            if isinstance(value, Mapping):
                for key, item in value.items():
                    if isinstance(key, str) and _CONTROL.search(key):
                        problems.append(
                            SpecError(path or "spec", "a key contains a control character")
                        )
                        continue
                    if isinstance(key, str) and len(key) > limits.string_length:
                        problems.append(
                            _over(
                                path or "spec",
                                "characters in a key",
                                len(key),
                                limits.string_length,
                            )
                        )
                        continue
                    child = f"{path}.{key}" if path else str(key)
                    stack.append((item, child, depth + 1))
            else:
                for i, item in enumerate(value):
                    stack.append((item, f"{path}[{i}]", depth + 1))
    return problems


def _count(data: Mapping[str, Any], field: str) -> int | None:
    value = data.get(field)
    return len(value) if isinstance(value, list | Mapping) else None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return value


def check_limits(data: Any, limits: SpecLimits | None = None) -> list[SpecError]:
    """Every field of the raw spec ``data`` over a cap of ``limits`` (default: the
    process's), each named by its dotted path; ``[]`` when all are within."""
    limits = limits or current_limits()
    if not isinstance(data, Mapping):
        return []
    try:
        size = len(json.dumps(data, separators=(",", ":"), default=str))
    except (ValueError, TypeError, RecursionError):
        size = 0  # not JSON-shaped or too deep: reported by the walk and the spec's checks
    if size > limits.spec_bytes:
        return [_over("spec", "bytes as compact JSON", size, limits.spec_bytes)]
    problems = _walk(data, limits)
    if problems:
        return problems  # a spec that is too deep or too large is not looked into further

    def cap(field: str, what: str, count: float | None, limit: float) -> None:
        if count is not None and count > limit:
            problems.append(_over(field, what, count, limit))

    cap("space", "entries", _count(data, "space"), limits.variables)
    cap("constraints", "constraints", _count(data, "constraints"), limits.constraints)
    cap("objectives", "objectives", _count(data, "objectives"), limits.objectives)
    space = data.get("space")
    if isinstance(space, Mapping):
        for name, entry in list(space.items())[: limits.variables]:
            if isinstance(entry, list):
                cap(f"space.{name}", "items", len(entry), limits.choice_values)
            if not isinstance(entry, Mapping):
                continue
            cap(f"space.{name}.values", "values", _count(entry, "values"), limits.choice_values)
            cap(f"space.{name}.per_layer", "", _number(entry.get("per_layer")), limits.per_layer)
    budget = data.get("budget")
    if isinstance(budget, Mapping):
        cap("budget.evaluations", "", _number(budget.get("evaluations")), limits.evaluations)
        cap("budget.wall_time_s", "", _number(budget.get("wall_time_s")), limits.wall_time_s)
    optimizer = data.get("optimizer")
    if isinstance(optimizer, Mapping):
        for option in _POPULATION_OPTIONS:
            cap(f"optimizer.{option}", "", _number(optimizer.get(option)), limits.population)
    for section in ("evaluation", "measurement"):
        block = data.get(section)
        if isinstance(block, Mapping):
            cap(f"{section}.batch_size", "", _number(block.get("batch_size")), limits.batch_size)
            for epochs in ("epochs", "finetune_epochs"):
                cap(f"{section}.{epochs}", "", _number(block.get(epochs)), limits.epochs)
    prior = data.get("prior")
    if isinstance(prior, Mapping):
        cap("prior.tables", "sources", _count(prior, "tables"), limits.prior_sources)
        cap("prior.targets", "sources", _count(prior, "targets"), limits.prior_sources)
    active = data.get("active_learning")
    if isinstance(active, Mapping):
        cap(
            "active_learning.min_measured",
            "",
            _number(active.get("min_measured")),
            limits.population,
        )
    return problems


__all__ = ["SEED_MAX", "SpecLimits", "check_limits", "configure_limits", "current_limits"]
