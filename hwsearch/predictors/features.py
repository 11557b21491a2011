"""Features of candidates, computed without building the models.

For the ``nb201`` cell space a candidate is its 6 edge operations; the features are

- ``edge{e}={op}``: one-hot of each edge's operation (30 columns),
- ``count={op}``: how many edges carry each operation (5 columns),
- ``connected``: 1 where some path of operations other than ``none`` joins the cell's input
  to its output (else the cell outputs zeros, and a graph compiler may remove it whole),
- ``live_count={op}``: operations on such paths (the others are dead code), per operation,
- ``log_macs``, ``log_params``: natural logs of the network's multiply-accumulates and
  parameters, exact (they equal :func:`hwsearch.models.nb201.nb201_counts`).

MACs and parameters of a cell network are affine in the number of 1x1 and 3x3 convolution
edges (the other operations have neither), so they are computed for a whole batch from three
analytic counts; featurising all 15,625 cells is a few vectorised array operations.

The ``mlp``, ``cnn`` and ``transformer`` families get analytic features (MACs, parameters,
non-zero parameters, bytes of weights, activation memory, per-layer dimensions, bit-widths,
sparsity, operation counts) from :mod:`hwsearch.predictors.analytic`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from hwsearch.errors import SpecError
from hwsearch.models.base import ModelFamily
from hwsearch.models.cnn import CNN
from hwsearch.models.mlp import MLP
from hwsearch.models.nb201 import EDGES, NUM_EDGES, OPERATIONS, canonical_nb201, nb201_counts
from hwsearch.models.transformer import TRANSFORMER
from hwsearch.predictors import analytic

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.intp]

_OP_INDEX = {op: i for i, op in enumerate(OPERATIONS)}
_EDGE = re.compile(r"([a-z0-9_]+)~(\d)")
_ARCH_FORM = "|op~0|+|op~0|op~1|+|op~0|op~1|op~2|"


@dataclass(frozen=True)
class Features:
    """A feature matrix (one row per candidate) and the names of its columns."""

    values: FloatArray
    names: tuple[str, ...]

    def __post_init__(self) -> None:
        if self.values.ndim != 2 or self.values.shape[1] != len(self.names):
            raise ValueError(
                f"values of shape {self.values.shape} do not match {len(self.names)} names"
            )

    def select(self, prefixes: Iterable[str]) -> Features:
        """The columns whose names start with one of ``prefixes``."""
        keep = tuple(prefixes)
        cols = [i for i, name in enumerate(self.names) if name.startswith(keep)]
        return Features(self.values[:, cols], tuple(self.names[i] for i in cols))


def nb201_codes_from_archs(archs: Sequence[str]) -> IntArray:
    """Operation indices (into :data:`~hwsearch.models.nb201.OPERATIONS`), one row of 6 per
    architecture string. Raises :class:`SpecError` (field ``arch[i]``) on a malformed one."""
    codes = np.empty((len(archs), NUM_EDGES), dtype=np.intp)
    for i, arch in enumerate(archs):
        edges = _EDGE.findall(arch) if isinstance(arch, str) else []
        sources = [int(s) for _, s in edges]
        if len(edges) != NUM_EDGES or sources != [0, 0, 1, 0, 1, 2]:
            raise SpecError(f"arch[{i}]", f"{arch!r} is not of the form {_ARCH_FORM}")
        try:
            codes[i] = [_OP_INDEX[op] for op, _ in edges]
        except KeyError as exc:
            raise SpecError(
                f"arch[{i}]", f"unknown operation {exc.args[0]!r}; one of {list(OPERATIONS)}"
            ) from None
    return codes


def nb201_codes_from_configs(configs: Sequence[Mapping[str, Any]]) -> IntArray:
    """Operation indices of ``nb201`` configs (each checked by the family's canonical form)."""
    return np.array(
        [[_OP_INDEX[op] for op in canonical_nb201(c)["ops"]] for c in configs], dtype=np.intp
    ).reshape(len(configs), NUM_EDGES)


def nb201_features(
    codes: IntArray,
    *,
    channels: int = 16,
    cells: int = 5,
    input_size: int = 32,
    num_classes: int = 10,
) -> Features:
    """Features of cells given as operation indices (see the module docstring).

    The other knobs are shared by the whole batch (defaults: the benchmark's settings).
    """
    codes = np.asarray(codes)
    if codes.ndim != 2 or codes.shape[1] != NUM_EDGES:
        raise ValueError(f"codes must have shape (n, {NUM_EDGES}), got {codes.shape}")
    k = len(OPERATIONS)
    if codes.size and (codes.min() < 0 or codes.max() >= k):
        raise ValueError(f"codes must be operation indices in [0, {k})")
    n = len(codes)
    onehot = np.zeros((n, NUM_EDGES * k))
    onehot[np.arange(n)[:, None], np.arange(NUM_EDGES) * k + codes] = 1.0
    counts = onehot.reshape(n, NUM_EDGES, k).sum(axis=1)
    params, macs = _nb201_affine_counts(counts, channels, cells, input_size, num_classes)
    live = nb201_live_edges(codes)
    live_ops = OPERATIONS[1:]
    live_counts = np.stack(
        [(live & (codes == _OP_INDEX[op])).sum(axis=1) for op in live_ops], axis=1
    ).astype(float)
    names = tuple(f"edge{e}={op}" for e in range(NUM_EDGES) for op in OPERATIONS)
    names += tuple(f"count={op}" for op in OPERATIONS)
    names += ("connected", *(f"live_count={op}" for op in live_ops), "log_macs", "log_params")
    values = np.concatenate(
        [
            onehot,
            counts,
            live.any(axis=1, keepdims=True).astype(float),
            live_counts,
            np.log(macs)[:, None],
            np.log(params)[:, None],
        ],
        axis=1,
    )
    return Features(values, names)


def nb201_live_edges(codes: IntArray) -> NDArray[np.bool_]:
    """Which edges lie on a path from the cell's input (node 0) to its output (node 3)
    through operations other than ``none``; ``(n, 6)`` booleans."""
    codes = np.asarray(codes)
    on = codes != _OP_INDEX["none"]
    n = len(codes)
    from_input = [np.ones(n, bool)]  # node j reachable from node 0
    for j in (1, 2, 3):
        reach = np.zeros(n, bool)
        for e, (target, source) in enumerate(EDGES):
            if target == j:
                reach |= on[:, e] & from_input[source]
        from_input.append(reach)
    used = nb201_used_edges(codes)
    live = np.zeros((n, NUM_EDGES), bool)
    for e, (_, source) in enumerate(EDGES):
        live[:, e] = used[:, e] & from_input[source]
    return live


def nb201_used_edges(codes: IntArray) -> NDArray[np.bool_]:
    """Which edges feed the cell's output (node 3) through operations other than ``none``,
    whether or not the input reaches them: the operations that dead-code elimination keeps
    (an edge whose result nothing uses is removed; one computing on zeros is not);
    ``(n, 6)`` booleans."""
    codes = np.asarray(codes)
    on = codes != _OP_INDEX["none"]
    n = len(codes)
    to_output = [np.zeros(n, bool)] * 3 + [np.ones(n, bool)]  # node j reaches node 3
    for j in (2, 1, 0):
        reach = np.zeros(n, bool)
        for e, (target, source) in enumerate(EDGES):
            if source == j:
                reach |= on[:, e] & to_output[target]
        to_output[j] = reach
    used = np.zeros((n, NUM_EDGES), bool)
    for e, (target, _) in enumerate(EDGES):
        used[:, e] = on[:, e] & to_output[target]
    return used


def nb201_op_counts(codes: IntArray, edges: NDArray[np.bool_] | None = None) -> Features:
    """How many edges carry each operation other than ``none`` (columns ``count={op}``),
    counting only the edges where ``edges`` (``(n, 6)`` booleans) is true, or all of them.

    Latency is close to additive in these on a linear scale (a fixed part plus a cost per
    operation), which :class:`~hwsearch.predictors.TransferPredictor` fits from a few
    samples of a device; with :func:`nb201_used_edges` as ``edges``, for devices whose
    compiler removes unused operations."""
    codes = np.asarray(codes)
    mask = np.ones(codes.shape, bool) if edges is None else np.asarray(edges, bool)
    if codes.ndim != 2 or codes.shape[1] != NUM_EDGES or mask.shape != codes.shape:
        raise ValueError(
            f"codes and edges must both have shape (n, {NUM_EDGES}), got {codes.shape} "
            f"and {mask.shape}"
        )
    ops = OPERATIONS[1:]
    values = np.stack([(mask & (codes == _OP_INDEX[op])).sum(axis=1) for op in ops], axis=1)
    names = tuple(f"count={op}" for op in ops)
    return Features(values.astype(float).reshape(len(codes), len(ops)), names)


def _nb201_affine_counts(
    counts: FloatArray, channels: int, cells: int, input_size: int, num_classes: int
) -> tuple[FloatArray, FloatArray]:
    knobs = {
        "channels": channels,
        "cells": cells,
        "input_size": input_size,
        "num_classes": num_classes,
    }
    base = nb201_counts({**knobs, "ops": ["none"] * NUM_EDGES})
    one = nb201_counts({**knobs, "ops": ["nor_conv_1x1"] + ["none"] * (NUM_EDGES - 1)})
    three = nb201_counts({**knobs, "ops": ["nor_conv_3x3"] + ["none"] * (NUM_EDGES - 1)})
    n1 = counts[:, _OP_INDEX["nor_conv_1x1"]]
    n3 = counts[:, _OP_INDEX["nor_conv_3x3"]]
    params = base.params + n1 * (one.params - base.params) + n3 * (three.params - base.params)
    macs = base.macs + n1 * (one.macs - base.macs) + n3 * (three.macs - base.macs)
    return params.astype(float), macs.astype(float)


def canonical_configs(
    family: ModelFamily, configs: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """The family's canonical form of every config; a bad one raises :class:`SpecError`
    naming ``configs[i]`` and the knob."""
    canon = []
    for i, config in enumerate(configs):
        if not isinstance(config, Mapping):
            raise SpecError(f"configs[{i}]", f"must be a mapping of knobs, got {config!r}")
        try:
            canon.append(family.canonical(config))
        except SpecError as exc:
            raise SpecError(f"configs[{i}].{exc.field}", exc.reason) from None
    return canon


def _analytic(
    family: ModelFamily,
    configs: Sequence[Mapping[str, Any]],
    columns: Callable[[Sequence[Mapping[str, Any]]], Mapping[str, FloatArray]],
) -> Features:
    canon = canonical_configs(family, configs)
    if not canon:  # the names of the family's columns, no rows
        names = tuple(columns([family.canonical({})]))
        return Features(np.zeros((0, len(names))), names)
    found = columns(canon)
    return Features(np.column_stack(list(found.values())).astype(float), tuple(found))


def mlp_features(configs: Sequence[Mapping[str, Any]]) -> Features:
    """Analytic features of ``mlp`` configs (see :func:`analytic.mlp_columns`)."""
    return _analytic(MLP, configs, analytic.mlp_columns)


def cnn_features(configs: Sequence[Mapping[str, Any]]) -> Features:
    """Analytic features of ``cnn`` configs (see :func:`analytic.cnn_columns`)."""
    return _analytic(CNN, configs, analytic.cnn_columns)


def transformer_features(
    configs: Sequence[Mapping[str, Any]],
    *,
    prompt_len: int = analytic.DEFAULT_PROMPT_LEN,
    new_tokens: int = analytic.DEFAULT_NEW_TOKENS,
    vocab: int | None = None,
) -> Features:
    """Analytic features of ``transformer`` configs serving ``prompt_len`` + ``new_tokens``
    characters (default: the LM evaluation's); ``vocab`` defaults to the bundled corpus's."""
    if vocab is None:
        from hwsearch.models.lm_data import char_data

        vocab = char_data().vocab_size
    size = vocab

    def columns(canon: Sequence[Mapping[str, Any]]) -> Mapping[str, FloatArray]:
        return analytic.transformer_columns(
            canon, vocab=size, prompt_len=prompt_len, new_tokens=new_tokens
        )

    return _analytic(TRANSFORMER, configs, columns)


def _nb201_from_configs(configs: Sequence[Mapping[str, Any]]) -> Features:
    canon = [canonical_nb201(c) for c in configs]
    shared = {
        key: {c[key] for c in canon} for key in ("channels", "cells", "input_size", "num_classes")
    }
    for key, values in shared.items():
        if len(values) > 1:
            raise SpecError(key, f"must be the same for every config, got {sorted(values)}")
    knobs = {key: next(iter(v)) for key, v in shared.items()} if canon else {}
    return nb201_features(nb201_codes_from_configs(canon), **knobs)


FEATURIZERS: dict[str, Callable[[Sequence[Mapping[str, Any]]], Features]] = {
    "nb201": _nb201_from_configs,
    "mlp": mlp_features,
    "cnn": cnn_features,
    "transformer": transformer_features,
}


def featurize(family: str, configs: Sequence[Mapping[str, Any]]) -> Features:
    """Features of configs of ``family``; the columns depend on the family alone.

    ``nb201``: the cell's knobs must be shared. ``transformer``: at the LM evaluation's
    default prompt and generation lengths.
    """
    featurizer = FEATURIZERS.get(family)
    if featurizer is not None:
        return featurizer(configs)
    from hwsearch.errors import UnknownNameError
    from hwsearch.models.base import get_family

    try:  # a plug-in family may declare its own features
        own = get_family(family).features(configs)
    except UnknownNameError:
        own = None
    if own is None:
        raise SpecError(
            "family", f"no features for family {family!r}; supported: {', '.join(FEATURIZERS)}"
        )
    values, names = own
    return Features(np.asarray(values, dtype=np.float64), tuple(names))


__all__ = [
    "FEATURIZERS",
    "Features",
    "canonical_configs",
    "cnn_features",
    "featurize",
    "mlp_features",
    "nb201_codes_from_archs",
    "nb201_codes_from_configs",
    "nb201_features",
    "nb201_live_edges",
    "nb201_op_counts",
    "nb201_used_edges",
    "transformer_features",
]
