"""Per-layer compression rules of any model, chosen by glob over module names.

``layers: {"features.*": {sparsity: 0.5, sparsity_pattern: channel, weight_bits: 8},
"classifier": {weight_bits: 8}}`` (``fnmatch`` globs; ``*`` also crosses dots). A glob
applies to:

- every Linear, Conv1d and Conv2d (grouped and depthwise included) whose name it matches or
  that lies inside a module whose name it matches (``"classifier"`` covers
  ``classifier.0`` and ``classifier.3``);
- an Embedding or a normalisation layer only when the glob names it: it matches the layer's
  name and its last dotted part has no wildcard (``"embed"``, ``"blocks.*.norm1"`` name
  layers; ``"blocks.*"`` does not name the norms inside the blocks). They stay untouched
  unless a glob names them.

Layers that no glob covers stay dense fp32. A glob that covers no layer is a
:class:`~hwsearch.errors.SpecError` (``layers.<glob>``). Where several globs cover one layer,
their knobs are merged in the order given, a later glob's value winning.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from torch import nn

from hwsearch.errors import SpecError
from hwsearch.models.compression import (
    BIT_CHOICES,
    FLOAT_DIGITS,
    MAX_SPARSITY,
    parse_nm,
    pattern_problem,
)

WEIGHT_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d)
NORMS = (
    nn.modules.batchnorm._BatchNorm,
    nn.LayerNorm,
    nn.GroupNorm,
    nn.modules.instancenorm._InstanceNorm,
)
NAMED_ONLY = (nn.Embedding, *NORMS)
KNOBS = ("sparsity", "sparsity_pattern", "weight_bits", "act_bits")
PATTERNS = ("none", "unstructured", "channel")  # plus any "N:M"


@dataclass(frozen=True)
class LayerRule:
    """The canonical compression of one layer (sparsity 0 ⇔ pattern ``"none"``)."""

    sparsity: float = 0.0
    pattern: str = "none"
    weight_bits: int = 32
    act_bits: int = 32

    @property
    def nm(self) -> tuple[int, int] | None:
        return parse_nm(self.pattern)

    @property
    def is_dense_fp32(self) -> bool:
        return self.pattern == "none" and self.weight_bits == 32 and self.act_bits == 32

    def as_dict(self) -> dict[str, Any]:
        return {
            "sparsity": self.sparsity,
            "sparsity_pattern": self.pattern,
            "weight_bits": self.weight_bits,
            "act_bits": self.act_bits,
        }


def _bits(field: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value not in BIT_CHOICES:
        raise SpecError(field, f"{value!r} is not one of {list(BIT_CHOICES)}")
    return value


def canonical_rule(field: str, knobs: Mapping[str, Any]) -> LayerRule:
    """A :class:`LayerRule` from one glob's knob values (a :class:`SpecError` names the knob).

    A positive sparsity without a pattern is ``unstructured``; an ``N:M`` pattern fixes the
    sparsity at ``1 - N/M``.
    """
    if not isinstance(knobs, Mapping):
        raise SpecError(field, f"must be a mapping of {list(KNOBS)}, got {type(knobs).__name__}")
    unknown = sorted(set(knobs) - set(KNOBS))
    if unknown:
        raise SpecError(f"{field}.{unknown[0]}", f"unknown knob; valid knobs: {', '.join(KNOBS)}")
    sparsity = knobs.get("sparsity", 0.0)
    if isinstance(sparsity, bool) or not isinstance(sparsity, int | float):
        raise SpecError(f"{field}.sparsity", f"{sparsity!r} is not a number")
    if not 0.0 <= float(sparsity) <= MAX_SPARSITY:
        raise SpecError(f"{field}.sparsity", f"{sparsity!r} is not in [0, {MAX_SPARSITY}]")
    sparsity = round(float(sparsity), FLOAT_DIGITS) + 0.0
    pattern = knobs.get("sparsity_pattern", "unstructured" if sparsity > 0 else "none")
    problem = pattern_problem(pattern, PATTERNS)
    if problem is not None:
        raise SpecError(f"{field}.sparsity_pattern", problem)
    nm = parse_nm(pattern)
    if nm is not None:
        pattern = f"{nm[0]}:{nm[1]}"
        sparsity = round(1.0 - nm[0] / nm[1], FLOAT_DIGITS)
    elif sparsity == 0.0:
        pattern = "none"
    elif pattern == "none":
        raise SpecError(
            f"{field}.sparsity_pattern", f"'none' contradicts sparsity {sparsity}; choose a pattern"
        )
    return LayerRule(
        sparsity=sparsity,
        pattern=pattern,
        weight_bits=_bits(f"{field}.weight_bits", knobs.get("weight_bits", 32)),
        act_bits=_bits(f"{field}.act_bits", knobs.get("act_bits", 32)),
    )


def compressible_layers(model: nn.Module) -> dict[str, nn.Module]:
    """Every module a rule may reach: weight layers, embeddings and norms, by name."""
    return {
        name: module
        for name, module in model.named_modules()
        if name and isinstance(module, WEIGHT_LAYERS + NAMED_ONLY)
    }


def _names_leaf(glob: str) -> bool:
    """Whether the glob's last dotted part is a plain name (``"*.norm1"``, not ``"blocks.*"``)."""
    return not any(c in glob.rsplit(".", 1)[-1] for c in "*?[")


def _covers(glob: str, name: str, module: nn.Module) -> bool:
    if isinstance(module, NAMED_ONLY):
        return _names_leaf(glob) and fnmatch.fnmatchcase(name, glob)
    if fnmatch.fnmatchcase(name, glob):
        return True
    parts = name.split(".")
    return any(fnmatch.fnmatchcase(".".join(parts[:i]), glob) for i in range(1, len(parts)))


def resolve_rules(
    model: nn.Module, layers: Mapping[str, Mapping[str, Any]], *, field: str = "layers"
) -> dict[str, LayerRule]:
    """``{layer name: LayerRule}`` for every layer some glob of ``layers`` covers.

    Layers no glob covers are absent (dense fp32). Raises :class:`SpecError` for a bad knob
    (``layers.<glob>.<knob>``), for a glob that covers no layer, and for a rule a layer type
    cannot take (channel pruning or activation bits on an embedding or a norm).
    """
    if not isinstance(layers, Mapping):
        raise SpecError(field, f"must be a mapping of glob → knobs, got {type(layers).__name__}")
    candidates = compressible_layers(model)
    merged: dict[str, dict[str, Any]] = {}
    for glob, knobs in layers.items():
        where = f"{field}.{glob}"
        if not isinstance(glob, str) or not glob:
            raise SpecError(field, f"{glob!r} is not a glob over module names")
        canonical_rule(where, knobs)  # each glob's own values must be valid
        hits = [name for name, module in candidates.items() if _covers(glob, name, module)]
        if not hits:
            sample = ", ".join(list(candidates)[:8]) or "none"
            raise SpecError(
                where,
                f"matches no Linear, Conv1d, Conv2d, Embedding or norm layer (layers: {sample}"
                + (", ..." if len(candidates) > 8 else "")
                + ")",
            )
        for name in hits:
            merged.setdefault(name, {}).update(knobs)
    rules: dict[str, LayerRule] = {}
    for name, knobs in merged.items():
        rule = canonical_rule(f"{field}[{name}]", knobs)
        module = candidates[name]
        if isinstance(module, NAMED_ONLY):
            kind = type(module).__name__
            if rule.pattern == "channel":
                raise SpecError(
                    f"{field}[{name}].sparsity_pattern",
                    f"channel pruning of a {kind} is "
                    "not supported (its channels follow the layers that produce them)",
                )
            if rule.act_bits != 32:
                raise SpecError(
                    f"{field}[{name}].act_bits", f"a {kind} takes no activation quantization"
                )
            if isinstance(module, NORMS) and rule.pattern != "none":
                raise SpecError(f"{field}[{name}].sparsity", f"a {kind} cannot be sparsified")
        rules[name] = rule
    return rules
