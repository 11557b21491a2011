"""The family of the user's own model (``family: {model: "mod:build", input_shape: [...]}``).

A spec whose ``family`` is a mapping is a spec of this family, registered as ``python``:
its knobs are the space's own names (:meth:`UserFamily.knobs_for`); the keys that are not
per-layer rules (``layers[<glob>].<knob>``, from the space's ``layers:`` section) go to the
user's ``build(config)``. The user's callables travel with the evaluation settings of kind
``python`` (:mod:`hwsearch.workers.python_kind`), which builds, compresses, evaluates and
measures each candidate; the family itself never builds a model without them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import torch
    from torch import nn

from hwsearch.errors import HwsearchError
from hwsearch.models.base import Knob, ModelFamily, register_family

FAMILY = "python"
#: A flattened per-layer rule key of the space: ``layers[<glob>].<knob>``.
LAYER_KEY = re.compile(r"^layers\[(?P<glob>.+)\]\.(?P<knob>[A-Za-z_]\w*)$")


def layer_key(glob: str, knob: str) -> str:
    return f"layers[{glob}].{knob}"


def split_config(config: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """``(build config, per-layer rules by glob)`` of a canonical config."""
    build: dict[str, Any] = {}
    layers: dict[str, dict[str, Any]] = {}
    for key, value in config.items():
        match = LAYER_KEY.match(key)
        if match is None:
            build[key] = value
        else:
            layers.setdefault(match["glob"], {})[match["knob"]] = value
    return build, layers


class _Bound:
    """The user's code a spec of this process was checked with, by its space's names."""

    def __init__(self) -> None:
        self.by_keys: dict[frozenset[str], Any] = {}


_BOUND = _Bound()


def bind(code: Any, keys: Iterable[str]) -> None:
    """Remember the user's code (a :class:`~.pipeline.UserModel`) for configs with ``keys``,
    so that :meth:`UserFamily.features` can build them (the spec's check calls this)."""
    _BOUND.by_keys[frozenset(keys)] = code


def config_features(code: Any, config: Mapping[str, Any]) -> list[float]:
    """Per-layer analytic counts of the compressed model of ``config`` as one feature row
    (:func:`~.counts.feature_vector`; no training, no evaluation)."""
    import torch

    from hwsearch.models.custom.compress import compress
    from hwsearch.models.custom.counts import feature_vector, features_of, layer_counts
    from hwsearch.models.custom.rules import resolve_rules

    build, layers = split_config(config)
    torch.manual_seed(0)
    model = code.build(dict(build))
    example = code.example(1)
    rules = resolve_rules(model, layers)
    compress(model, rules, example)
    model.eval()
    return features_of(feature_vector(model, layer_counts(model, example)))


def _any_value(value: Any) -> str | None:
    return None  # the user's build (and the per-layer rules) check their own values


class UserFamily(ModelFamily):
    """Any ``nn.Module`` the user's ``build(config)`` returns; knobs from the spec's space."""

    name = FAMILY
    knobs: Mapping[str, Knob] = {}
    default_evaluation = "python"
    evaluations = ("python",)
    data_source = None

    def knobs_for(self, space: Mapping[str, Any]) -> Mapping[str, Knob]:
        out: dict[str, Knob] = {}
        for key, entry in space.items():
            kind = getattr(entry, "type", None)
            out[key] = Knob(
                name=key,
                kind=kind if kind in ("int", "float") else "choice",
                default=None,
                doc="a setting of the user's model"
                if LAYER_KEY.match(key) is None
                else "a per-layer compression knob",
                check=_any_value,
            )
        return out

    def num_blocks(self, config: Mapping[str, Any]) -> int:
        return 1

    def canonical(self, config: Mapping[str, Any]) -> dict[str, Any]:
        return {key: config[key] for key in sorted(config)}

    def features(
        self, configs: Sequence[Mapping[str, Any]]
    ) -> tuple[np.ndarray, Sequence[str]] | None:
        """Per-layer counts of each config's compressed model (MACs, parameters, bytes at
        the bit-widths, counts per layer type) for active learning and the transfer
        predictors; None where no spec of this process bound the user's code."""
        import numpy as np

        from hwsearch.models.custom.counts import feature_names

        if not configs:
            return None
        code = _BOUND.by_keys.get(frozenset(configs[0]))
        if code is None:
            return None
        rows = [config_features(code, c) for c in configs]
        return np.asarray(rows, dtype=np.float64), feature_names()

    def build(self, config: Mapping[str, Any]) -> nn.Module:
        raise HwsearchError(
            "the user's model is built by its evaluation (type python), with the spec's "
            "family.model"
        )

    def example_input(self, batch_size: int) -> torch.Tensor:
        raise HwsearchError("the user's model takes the spec's family.input_shape")


USER = register_family(UserFamily())
