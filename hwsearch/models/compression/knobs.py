"""What every family shares about compression: the knobs (bit-widths, sparsity and its
pattern), the canonical form of a config (:func:`canonical_config`) and the
:class:`CompressionSpec` a config asks for. No torch here."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from hwsearch.errors import SpecError
from hwsearch.models.base import Knob

BIT_CHOICES: tuple[int, ...] = (2, 4, 8, 16, 32)
PATTERNS: tuple[str, ...] = ("none", "unstructured", "channel")  # plus any "N:M"
MAX_SPARSITY = 0.95
FLOAT_DIGITS = 6  # floats in a canonical config are rounded to this many decimals

_NM = re.compile(r"^\s*(\d+)\s*:\s*(\d+)\s*$")


def parse_nm(pattern: str) -> tuple[int, int] | None:
    """``(N, M)`` of an ``"N:M"`` pattern, or None if ``pattern`` is not of that form."""
    match = _NM.match(pattern)
    if match is None:
        return None
    return int(match.group(1)), int(match.group(2))


def pattern_problem(value: Any, names: tuple[str, ...] = PATTERNS) -> str | None:
    """Why ``value`` is not one of the pattern ``names`` or an ``N:M`` pattern, or None."""
    if not isinstance(value, str):
        hint = (
            ' (YAML reads an unquoted 2:4 as 124: quote it, "2:4")'
            if isinstance(value, int)
            else ""
        )
        return f"{value!r} is not a string{hint}"
    if value in names:
        return None
    nm = parse_nm(value)
    if nm is None:
        return f"{value!r} is not one of {list(names)} or an 'N:M' pattern such as '2:4'"
    if not 0 < nm[0] < nm[1]:
        return f"{value!r} needs 0 < N < M"
    return None


def compression_knobs() -> dict[str, Knob]:
    """The compression knobs every family has (per-block values: see the family's docs)."""
    return {
        "sparsity": Knob(
            "sparsity",
            "float",
            0.0,
            "share of weights removed (channel) or zeroed (unstructured); fixed by an N:M pattern",
            low=0.0,
            high=MAX_SPARSITY,
        ),
        "sparsity_pattern": Knob(
            "sparsity_pattern",
            "choice",
            "unstructured",
            "'unstructured' (magnitude), 'channel' (structured pruning) or 'N:M' (e.g. '2:4')",
            choices=PATTERNS,
            check=pattern_problem,
        ),
        "weight_bits": Knob(
            "weight_bits",
            "choice",
            32,
            "weight bit-width (per output channel, symmetric; 16 = fp16, 32 = float)",
            choices=BIT_CHOICES,
            per_block=True,
        ),
        "act_bits": Knob(
            "act_bits",
            "choice",
            32,
            "bit-width of the activations entering each layer (per tensor; 16 = fp16)",
            choices=BIT_CHOICES,
            per_block=True,
        ),
    }


def _normalise(knob: Knob, value: Any) -> Any:
    if knob.kind == "int":
        return int(value)
    if knob.kind == "float":
        return round(float(value), FLOAT_DIGITS) + 0.0  # + 0.0 turns -0.0 into 0.0
    if knob.name == "sparsity_pattern":
        nm = parse_nm(value)
        return f"{nm[0]}:{nm[1]}" if nm is not None else value
    if knob.integer_choices:
        return int(value)
    return value


def _checked(knob: Knob, value: Any, field_name: str) -> Any:
    problem = knob.problem(value)
    if problem is not None:
        raise SpecError(field_name, problem)
    return _normalise(knob, value)


def canonical_config(
    family: str,
    knobs: Mapping[str, Knob],
    config: Mapping[str, Any],
    num_blocks: Callable[[Mapping[str, Any]], int],
) -> dict[str, Any]:
    """The canonical form of ``config`` for a family with ``knobs``.

    Fills defaults; checks every value (a :class:`SpecError` names the knob); turns per-block
    scalars into lists of ``num_blocks`` values and trims longer lists (a search over a larger
    maximum depth yields them) but rejects shorter ones; makes no-op settings identical: at
    sparsity 0 the pattern is ``"none"`` (whatever was given, so sparsity 0 always means a
    dense model), and at sparsity > 0 an ``N:M`` pattern fixes the sparsity at ``1 - N/M``.
    ``num_blocks`` is called with the checked scalar knobs.
    """
    unknown = sorted(set(config) - set(knobs))
    if unknown:
        raise SpecError(
            unknown[0], f"unknown knob of family {family!r}; valid knobs: {', '.join(knobs)}"
        )
    out: dict[str, Any] = {}
    for name, knob in knobs.items():
        if knob.per_block:
            continue
        value = config.get(name, knob.default)
        if isinstance(value, list | tuple):
            raise SpecError(name, f"takes one value, not a list ({list(value)!r})")
        out[name] = _checked(knob, value, name)
    blocks = num_blocks(out)
    for name, knob in knobs.items():
        if not knob.per_block:
            continue
        value = config.get(name, knob.default)
        if isinstance(value, list | tuple):
            if len(value) < blocks:
                raise SpecError(
                    name, f"has {len(value)} value(s) but the architecture has {blocks} blocks"
                )
            out[name] = [_checked(knob, v, f"{name}[{i}]") for i, v in enumerate(value[:blocks])]
        else:
            out[name] = [_checked(knob, value, name)] * blocks
    if "sparsity" in out:
        _normalise_sparsity(out)
    return {name: out[name] for name in knobs}


def _normalise_sparsity(out: dict[str, Any]) -> None:
    pattern = out["sparsity_pattern"]
    nm = parse_nm(pattern)
    if out["sparsity"] == 0.0:
        out["sparsity_pattern"] = "none"
    elif nm is not None:
        out["sparsity"] = round(1.0 - nm[0] / nm[1], FLOAT_DIGITS)
    elif pattern == "none":
        raise SpecError(
            "sparsity_pattern", f"'none' contradicts sparsity {out['sparsity']}; choose a pattern"
        )


@dataclass(frozen=True)
class CompressionSpec:
    """The compression part of a canonical config, one bit-width per block."""

    sparsity: float = 0.0
    pattern: str = "none"
    weight_bits: tuple[int, ...] = (32,)
    act_bits: tuple[int, ...] = (32,)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> CompressionSpec:
        """Read from a canonical config (see :func:`canonical_config`)."""
        return cls(
            sparsity=float(config["sparsity"]),
            pattern=str(config["sparsity_pattern"]),
            weight_bits=tuple(int(b) for b in config["weight_bits"]),
            act_bits=tuple(int(b) for b in config["act_bits"]),
        )

    @property
    def nm(self) -> tuple[int, int] | None:
        return parse_nm(self.pattern)
