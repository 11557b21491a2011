"""The ``nb201`` family: the NAS-Bench-201 cell search space and its network.

A cell is a graph of 4 nodes; node ``j`` is the sum of ``op_ij(node i)`` over ``i < j``, so
it has 6 edges, each one of :data:`OPERATIONS`. The per-block knob ``ops`` holds the 6
operations in the edge order of the benchmark's architecture string::

    |op(0->1)~0|+|op(0->2)~0|op(1->2)~1|+|op(0->3)~0|op(1->3)~1|op(2->3)~2|

The network (as in the benchmark's ``TinyNetwork``): a 3x3 conv + BatchNorm stem with ``C``
channels; 3 stages of ``N`` cells with ``C``, ``2C`` and ``4C`` channels, separated by
residual reduction blocks (ReLU-Conv3x3-BN with stride 2, ReLU-Conv3x3-BN; shortcut
AvgPool2x2 + Conv1x1); BatchNorm + ReLU; global average pooling; a linear classifier.
``nor_conv_kxk`` is ReLU-Conv-BN, ``none`` outputs zeros, ``avg_pool_3x3`` keeps the size
(padding 1, padding not counted). The benchmark's tables describe ``C = 16, N = 5``.

The family is not trained here (its data are 32x32 images, not this project's digits): its
quality comes from a table of published results keyed by :func:`arch_string`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from hwsearch.errors import SpecError
from hwsearch.models.base import Knob, ModelFamily, register_family
from hwsearch.models.shapes import EDGES, NUM_EDGES, OPERATIONS

if TYPE_CHECKING:
    import torch

    from hwsearch.models.nb201_net import NB201Network

__all__ = [
    "EDGES",
    "NB201",
    "NUM_EDGES",
    "OPERATIONS",
    "NB201Family",
    "arch_string",
    "canonical_nb201",
    "cell_structure",
    "config_from_arch",
    "nb201_counts",
]
#: The knob values the benchmark's tables were produced with.
BENCHMARK_SETTINGS: Mapping[str, int] = {"channels": 16, "cells": 5}


def _multiple_of_4(value: Any) -> str | None:
    if int(value) % 4:
        return f"{value!r} is not a multiple of 4 (the two reductions halve it twice)"
    return None


KNOBS: Mapping[str, Knob] = {
    "ops": Knob(
        "ops",
        "choice",
        "nor_conv_3x3",
        "operation of each of the 6 cell edges, in architecture-string order",
        choices=OPERATIONS,
        per_block=True,
    ),
    "channels": Knob("channels", "int", 16, "channels C of the first stage", low=1, high=1024),
    "cells": Knob("cells", "int", 5, "cells per stage N", low=1, high=32),
    "num_classes": Knob("num_classes", "int", 10, "classifier outputs", low=1, high=100_000),
    "input_size": Knob(
        "input_size",
        "int",
        32,
        "height and width of the input image",
        low=4,
        high=1024,
        check=_multiple_of_4,
    ),
}


def canonical_nb201(config: Mapping[str, Any]) -> dict[str, Any]:
    """Defaults filled in, every value checked, ``ops`` a list of exactly 6 operations."""
    unknown = sorted(set(config) - set(KNOBS))
    if unknown:
        raise SpecError(
            unknown[0], f"unknown knob of family 'nb201'; valid knobs: {', '.join(KNOBS)}"
        )
    out: dict[str, Any] = {}
    for name, knob in KNOBS.items():
        value = config.get(name, knob.default)
        if knob.per_block:
            values = list(value) if isinstance(value, list | tuple) else [value] * NUM_EDGES
            if len(values) != NUM_EDGES:
                raise SpecError(
                    name, f"has {len(values)} value(s); a cell has exactly {NUM_EDGES} edges"
                )
            for i, item in enumerate(values):
                problem = knob.problem(item)
                if problem is not None:
                    raise SpecError(f"{name}[{i}]", problem)
            out[name] = values
            continue
        if isinstance(value, list | tuple):
            raise SpecError(name, f"takes one value, not a list ({list(value)!r})")
        problem = knob.problem(value)
        if problem is not None:
            raise SpecError(name, problem)
        out[name] = int(value)
    return out


def arch_string(config: Mapping[str, Any]) -> str:
    """The benchmark's architecture string of ``config``'s cell (its table key)."""
    ops = canonical_nb201(config)["ops"]
    nodes = [
        "|".join(f"{ops[k]}~{source}" for k, (target, source) in enumerate(EDGES) if target == j)
        for j in (1, 2, 3)
    ]
    return "+".join(f"|{node}|" for node in nodes)


_NODE = re.compile(r"\|(.*)\|")


def config_from_arch(arch: str) -> dict[str, Any]:
    """The canonical config (other knobs at their defaults) of an architecture string.

    Raises :class:`SpecError` (field ``arch``) saying what in the string is wrong.
    """
    if not isinstance(arch, str):
        raise SpecError("arch", f"must be a string, got {type(arch).__name__}")
    form = "|op~0|+|op~0|op~1|+|op~0|op~1|op~2|"
    parts = arch.strip().split("+")
    if len(parts) != 3:
        raise SpecError(
            "arch", f"{arch!r} has {len(parts)} node(s) separated by '+'; expected 3 as in {form}"
        )
    ops: list[str] = []
    for j, part in enumerate(parts, start=1):
        match = _NODE.fullmatch(part)
        if match is None:
            raise SpecError("arch", f"node {j} {part!r} is not enclosed in '|'; expected {form}")
        edges = match.group(1).split("|")
        if len(edges) != j:
            raise SpecError("arch", f"node {j} has {len(edges)} edge(s), expected {j}")
        for i, edge in enumerate(edges):
            op, sep, source = edge.partition("~")
            if not sep or source != str(i):
                raise SpecError(
                    "arch", f"edge {edge!r} of node {j} should read 'op~{i}' (input node {i})"
                )
            if op not in OPERATIONS:
                raise SpecError(
                    "arch", f"edge {edge!r}: unknown operation {op!r}; one of {list(OPERATIONS)}"
                )
            ops.append(op)
    return canonical_nb201({"ops": ops})


# --------------------------------------------------------------------------------------------
# Analytic counts


class Counts(NamedTuple):
    """Parameters and multiply-accumulates of one network (conv and linear layers only for
    MACs, as :func:`hwsearch.hardware.count_macs` counts them)."""

    params: int
    macs: int


def nb201_counts(config: Mapping[str, Any]) -> Counts:
    """Parameters and MACs per example of the network of ``config``, without building it."""
    cfg = canonical_nb201(config)
    c, n, size = cfg["channels"], cfg["cells"], cfg["input_size"]
    params = 3 * c * 9 + 2 * c  # stem conv + BN
    macs = size * size * c * 3 * 9
    for stage in range(3):
        width = c * 2**stage
        hw = (size // 2**stage) ** 2
        if stage > 0:  # residual reduction block from width // 2 to width
            half = width // 2
            params += 9 * half * width + 2 * width + 9 * width * width + 2 * width + half * width
            macs += hw * width * (9 * half + 9 * width + half)
        for op in cfg["ops"]:
            kernel = {"nor_conv_3x3": 9, "nor_conv_1x1": 1}.get(op, 0)
            if kernel:
                params += n * (kernel * width * width + 2 * width)
                macs += n * hw * width * width * kernel
    last = 4 * c
    params += 2 * last + last * cfg["num_classes"] + cfg["num_classes"]
    macs += last * cfg["num_classes"]
    return Counts(params=params, macs=macs)


# the cell's paths from its input (node 0) to its output (node 3), as edge indices; edges
# in key order: 1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2
CELL_PATHS = ((3,), (0, 4), (1, 5), (0, 2, 5))


def cell_structure(ops: Sequence[str]) -> np.ndarray:
    """What the cell's graph says, computed from the key alone: which input-output paths are
    alive (no ``none`` on them), the convolutions and pools on live paths (dead edges do
    nothing), the longest chain of 3x3 convolutions, a pure skip path (a residual), and
    whether a live path holds a convolution at all and two or more live edges do (a cell
    without one is a different kind of network, whatever else it holds)."""
    alive = [all(ops[e] != "none" for e in path) for path in CELL_PATHS]
    live_edges = sorted({e for path, ok in zip(CELL_PATHS, alive, strict=True) if ok for e in path})
    on_live = [ops[e] for e in live_edges]
    conv3 = [
        sum(ops[e] == "nor_conv_3x3" for e in p)
        for p, ok in zip(CELL_PATHS, alive, strict=True)
        if ok
    ]
    live_convs = on_live.count("nor_conv_3x3") + on_live.count("nor_conv_1x1")
    return np.array(
        [
            float(any(alive)),
            sum(alive) / len(CELL_PATHS),
            *(float(a) for a in alive),
            on_live.count("nor_conv_3x3") / NUM_EDGES,
            on_live.count("nor_conv_1x1") / NUM_EDGES,
            on_live.count("avg_pool_3x3") / NUM_EDGES,
            on_live.count("skip_connect") / NUM_EDGES,
            max(conv3, default=0) / 3,
            float(any(all(ops[e] == "skip_connect" for e in p) for p in CELL_PATHS)),
            float(live_convs >= 1),
            float(live_convs >= 2),
        ]
    )


class NB201Family(ModelFamily):
    """The NAS-Bench-201 cell space; quality from tables keyed by :func:`arch_string`."""

    name = "nb201"
    knobs: Mapping[str, Knob] = KNOBS
    #: Not trained on this project's data; see the module docstring.
    trainable = False
    #: Knob values the benchmark tables assume (a spec using tables must keep them).
    table_settings: Mapping[str, int] = BENCHMARK_SETTINGS

    def num_blocks(self, config: Mapping[str, Any]) -> int:
        return NUM_EDGES

    def canonical(self, config: Mapping[str, Any]) -> dict[str, Any]:
        return canonical_nb201(config)

    def build(self, config: Mapping[str, Any]) -> NB201Network:
        from hwsearch.models.nb201_net import NB201Network

        cfg = canonical_nb201(config)
        return NB201Network(cfg["ops"], cfg["channels"], cfg["cells"], cfg["num_classes"])

    def example_input(self, batch_size: int) -> torch.Tensor:
        """A batch of 3x32x32 images (the default ``input_size``)."""
        return self.example_input_for({}, batch_size)

    def example_input_for(self, config: Mapping[str, Any], batch_size: int) -> torch.Tensor:
        """A batch of 3 x input_size x input_size images for ``config``."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size!r}")
        import torch

        size = canonical_nb201(config)["input_size"]
        generator = torch.Generator().manual_seed(0)
        return torch.randn(batch_size, 3, size, size, generator=generator)

    def structure(self, configs: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """:func:`cell_structure` of each config's cell."""
        return np.array([cell_structure(canonical_nb201(c)["ops"]) for c in configs])

    def table_key(self, config: Mapping[str, Any]) -> str:
        """The key of ``config`` in a table of benchmark results: its architecture string."""
        return arch_string(config)

    def counts(self, config: Mapping[str, Any]) -> Counts:
        return nb201_counts(config)


NB201 = register_family(NB201Family())
