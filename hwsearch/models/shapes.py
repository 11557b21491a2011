"""Sizes and names that the built-in families and their networks share, without torch, so
that a spec can be checked against the families' knobs before torch is imported (the
networks are in ``*_net.py`` modules, imported when a model is built)."""

from __future__ import annotations

import math
from dataclasses import dataclass

# The digits families (mlp, cnn)
IN_FEATURES = 64  # pixels of one digit
NUM_CLASSES = 10
IMAGE_SHAPE = (1, 8, 8)
#: the activations of the mlp, cnn and transformer networks, by name
ACTIVATION_NAMES: tuple[str, ...] = ("relu", "gelu", "silu")

# NAS-Bench-201 (nb201)
OPERATIONS: tuple[str, ...] = (
    "none",
    "skip_connect",
    "nor_conv_1x1",
    "nor_conv_3x3",
    "avg_pool_3x3",
)
NUM_EDGES = 6
#: (to node, from node) of each edge, in the order of the architecture string.
EDGES: tuple[tuple[int, int], ...] = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))

# The small language models (transformer)
MAX_CONTEXT = 512  # positions of the learned position embedding
MLP_MULTIPLE = 16


@dataclass(frozen=True)
class LMShape:
    """The sizes a canonical config implies."""

    vocab: int
    d_model: int
    heads: int
    kv_heads: int
    head_dim: int
    mlp_hidden: int
    layers: int
    layers_used: int


def mlp_hidden(d_model: int, ratio: float) -> int:
    return max(MLP_MULTIPLE, math.ceil(d_model * ratio / MLP_MULTIPLE) * MLP_MULTIPLE)


def kv_cache_bytes(
    *,
    layers_used: int,
    batch: int,
    context: int,
    kv_heads: int,
    head_dim: int,
    bytes_per_value: int = 4,
) -> int:
    """Bytes of the KV cache: keys and values of every position, per layer, per sequence."""
    return 2 * layers_used * batch * context * kv_heads * head_dim * bytes_per_value
