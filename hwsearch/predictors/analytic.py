"""Analytic features of ``mlp``, ``cnn`` and ``transformer`` configs, without building models.

Each ``*_columns`` function takes canonical configs of its family (see the family's
``canonical``) and returns named columns, one value per config, in a fixed order: the same
columns whatever the configs, so a stored predictor can check them. Per-layer columns are
padded to the deepest network the family allows, with zeros for absent layers. Every count is
computed for the whole batch with array operations and follows the model code exactly:

- ``log_macs`` (natural log): what :func:`hwsearch.hardware.count_macs` counts on the
  evaluated float model (convolutions and linears, channel-pruned layers at their pruned size;
  masked zeros still count, as dense kernels multiply them).
- ``log_params`` / ``log_nonzero_params``: :func:`hwsearch.hardware.count_params` and
  :func:`~hwsearch.hardware.count_nonzero_params` (biases and normalisation weights count as
  non-zero; weights zeroed by a sparsity mask do not; zeros that quantization rounding makes
  are not predicted).
- ``log_weight_bytes``: the stored weights at their bit-widths, the ``size_bytes`` metric
  (:func:`hwsearch.models.compression.model_size_bytes`, for the transformer
  :func:`hwsearch.models.lm_pipeline.lm_size_bytes`). At batch 1 every weight is read once per
  inference, so it is also the weight traffic of one inference.
- ``log_act_max_bytes`` / ``log_act_sum_bytes``: the largest activation tensor and the sum of
  all of them (module docstrings of the families below say which tensors, at which widths).
- ``sparsity``: the share of the dense weights removed or zeroed (the ``sparsity`` metric).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from hwsearch.models.cnn import CNN, IMAGE_SHAPE
from hwsearch.models.compression import BIT_CHOICES, parse_nm
from hwsearch.models.lm_pipeline import LMSettings
from hwsearch.models.mlp import IN_FEATURES, MLP, NUM_CLASSES
from hwsearch.models.shapes import ACTIVATION_NAMES
from hwsearch.models.transformer import (
    BLOCK_TILE,
    INT4_GROUP,
    KNOBS,
    MAX_CONTEXT,
    MLP_MULTIPLE,
)

FloatArray = NDArray[np.float64]
Columns = dict[str, FloatArray]

#: Sparsity patterns one-hot encoded for ``mlp`` and ``cnn`` (any ``N:M`` is ``n:m``).
PATTERNS = ("none", "unstructured", "channel", "n:m")
#: Sparsity patterns one-hot encoded for ``transformer``.
LM_PATTERNS = ("none", "unstructured", "block", "n:m")
MAX_MLP_DEPTH = int(MLP.knobs["depth"].high or 0)
MAX_CNN_STAGES = int(CNN.knobs["stages"].high or 0)
MAX_CNN_BLOCKS = int(CNN.knobs["blocks"].high or 0)
CNN_KERNELS: tuple[int, ...] = tuple(CNN.knobs["kernel_size"].choices or ())
LM_BITS: tuple[int, ...] = tuple(KNOBS["weight_bits"].choices or ())


# --------------------------------------------------------------------------------------------
# Shared pieces


def _scalars(canon: Sequence[Mapping[str, Any]], key: str) -> FloatArray:
    return np.array([c[key] for c in canon], dtype=float)


def _padded(canon: Sequence[Mapping[str, Any]], key: str, width: int) -> FloatArray:
    """A per-block knob as an ``(n, width)`` matrix, zero beyond each config's blocks."""
    lists = [c[key] for c in canon]
    lengths = np.fromiter(map(len, lists), dtype=np.intp, count=len(lists))
    out = np.zeros((len(lists), width))
    out[np.arange(width)[None, :] < lengths[:, None]] = np.fromiter(
        itertools.chain.from_iterable(lists), dtype=float, count=int(lengths.sum())
    )
    return out


def _onehot(values: Sequence[Any], choices: Sequence[Any], prefix: str) -> Columns:
    return {
        f"{prefix}={choice}": np.array([v == choice for v in values], dtype=float)
        for choice in choices
    }


def _pattern_codes(canon: Sequence[Mapping[str, Any]]) -> tuple[list[str], FloatArray, FloatArray]:
    """Each config's pattern class (``n:m`` for any N:M) and its N and M (0 where not N:M)."""
    parsed: dict[str, tuple[str, int, int]] = {}
    for pattern in {c["sparsity_pattern"] for c in canon}:
        nm = parse_nm(pattern)
        parsed[pattern] = (pattern, 0, 0) if nm is None else ("n:m", *nm)
    codes = [parsed[c["sparsity_pattern"]] for c in canon]
    n = np.array([code[1] for code in codes], dtype=float)
    m = np.array([code[2] for code in codes], dtype=float)
    return [code[0] for code in codes], n, m


def kept_channels(channels: FloatArray, ratio: FloatArray) -> FloatArray:
    """:func:`hwsearch.models.compression.kept_count`, element-wise."""
    return np.maximum(1.0, np.floor(channels * (1.0 - ratio) + 0.5))


def masked_weights(
    numel: FloatArray,
    rows: FloatArray,
    bits: FloatArray,
    *,
    unstructured: NDArray[np.bool_],
    nm: NDArray[np.bool_],
    ratio: FloatArray,
    n: FloatArray,
    m: FloatArray,
) -> tuple[FloatArray, FloatArray]:
    """Kept weights and their storage bits per weight layer under a sparsity mask.

    Arrays are ``(configs, layers)`` (``ratio``, ``n``, ``m`` and the flags broadcast per
    config). Unstructured magnitude masks zero ``min(ratio * numel, numel - 1)`` weights
    (rounded half up) and store a 1-bit bitmap plus the kept values; an N:M mask keeps ``n``
    of every ``m`` consecutive weights of a row (``min(n, rest)`` of a shorter last group) and
    stores the kept values with ``ceil(log2 m)`` index bits each; otherwise all weights are
    stored.
    """
    safe_numel = np.maximum(numel, 1.0)
    drop = np.minimum(np.floor(ratio * safe_numel + 0.5), safe_numel - 1.0)
    row_len = numel / np.maximum(rows, 1.0)
    m_safe = np.maximum(m, 1.0)
    per_row = np.floor(row_len / m_safe) * n + np.minimum(n, np.mod(row_len, m_safe))
    index_bits = np.ceil(np.log2(m_safe))
    kept = np.where(unstructured, numel - drop, np.where(nm, rows * per_row, numel))
    stored = np.where(
        unstructured,
        numel + kept * bits,
        np.where(nm, kept * (bits + index_bits), numel * bits),
    )
    present = numel > 0
    return np.where(present, kept, 0.0), np.where(present, stored, 0.0)


def _bit_shares(weights: FloatArray, bits: FloatArray, prefix: str) -> Columns:
    """The share of ``weights`` (e.g. MACs per layer) at each bit-width."""
    total = np.maximum(weights.sum(axis=1), 1.0)
    return {f"{prefix}{b}": (weights * (bits == b)).sum(axis=1) / total for b in BIT_CHOICES}


def _totals(
    *,
    macs: FloatArray,
    numel: FloatArray,
    kept: FloatArray,
    weight_bytes: FloatArray,
    extra_params: FloatArray,
    weight_bits: FloatArray,
    act_bits: FloatArray,
    acts: FloatArray,
    dense_weights: FloatArray,
) -> Columns:
    """Columns every convolution / linear family shares, from per-layer arrays.

    ``extra_params`` are the biases and normalisation weights of each config, ``acts`` the
    bytes of every activation tensor (zeros where absent)."""
    params = numel.sum(axis=1) + extra_params
    zeroed = (numel - kept).sum(axis=1)
    dense = np.maximum(numel.sum(axis=1), 1.0)
    return {
        "sparsity": 1.0 - kept.sum(axis=1) / dense_weights,
        "mean_weight_bits": (numel * weight_bits).sum(axis=1) / dense,
        "mean_act_bits": (macs * act_bits).sum(axis=1) / np.maximum(macs.sum(axis=1), 1.0),
        **_bit_shares(macs, weight_bits, "macs_share_w"),
        **_bit_shares(macs, act_bits, "macs_share_a"),
        "log_macs": np.log(macs.sum(axis=1)),
        "log_params": np.log(params),
        "log_nonzero_params": np.log(params - zeroed),
        "log_weight_bytes": np.log(weight_bytes),
        "log_act_max_bytes": np.log(acts.max(axis=1)),
        "log_act_sum_bytes": np.log(acts.sum(axis=1)),
    }


def _sparsity_columns(classes: list[str], m: FloatArray, names: Sequence[str]) -> Columns:
    return {**_onehot(classes, names, "pattern"), "nm_m": m}


# --------------------------------------------------------------------------------------------
# mlp


def mlp_columns(canon: Sequence[Mapping[str, Any]]) -> Columns:
    """Columns of canonical ``mlp`` configs.

    Per hidden layer ``layer{i}.width`` (after channel pruning), ``.weight_bits``,
    ``.act_bits``. Activation tensors: the input (64 values), every hidden layer's output,
    each at the ``act_bits`` of the layer that reads it, and the logits at 32 bits.
    """
    size, depth_max = len(canon), MAX_MLP_DEPTH
    rows = np.arange(size)
    depth = _scalars(canon, "depth").astype(int)
    last = depth - 1
    present = np.arange(depth_max)[None, :] < depth[:, None]
    ratio = _scalars(canon, "sparsity")
    classes, nm_n, nm_m = _pattern_codes(canon)
    channel = np.array([c == "channel" for c in classes])[:, None]
    dense_width = _padded(canon, "width", depth_max)
    width = np.where(channel, kept_channels(dense_width, ratio[:, None]), dense_width) * present
    wbits = _padded(canon, "weight_bits", depth_max)
    abits = _padded(canon, "act_bits", depth_max)

    def layers(widths: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Inputs and outputs of hidden layers 0 .. depth_max - 1 (zeros where absent), then
        of the classifier."""
        fan_in = np.hstack([np.full((size, 1), IN_FEATURES), widths[:, :-1]]) * present
        fan_in = np.hstack([fan_in, widths[rows, last][:, None]])
        return fan_in, np.hstack([widths, np.full((size, 1), NUM_CLASSES)])

    fan_in, fan_out = layers(width)
    numel = fan_in * fan_out
    dense_in, dense_out = layers(dense_width * present)
    layer_wbits = np.hstack([wbits, wbits[rows, last][:, None]])
    layer_abits = np.hstack([abits, abits[rows, last][:, None]])
    kept, stored = masked_weights(
        numel,
        fan_out,
        layer_wbits,
        unstructured=np.array([c == "unstructured" for c in classes])[:, None],
        nm=np.array([c == "n:m" for c in classes])[:, None],
        ratio=ratio[:, None],
        n=nm_n[:, None],
        m=nm_m[:, None],
    )
    biases = fan_out.sum(axis=1)

    # activations: the input, hidden outputs (at the reading layer's bits), the logits
    later = np.hstack([abits[:, 1:], np.zeros((size, 1))])
    reader_bits = np.where(
        np.arange(depth_max)[None, :] < last[:, None], later, abits[rows, last][:, None]
    )
    acts = np.hstack(
        [
            (IN_FEATURES * abits[:, 0] / 8)[:, None],
            width * reader_bits / 8,
            np.full((size, 1), NUM_CLASSES * 4.0),
        ]
    )
    columns: Columns = {"depth": depth.astype(float)}
    for i in range(depth_max):
        columns[f"layer{i}.width"] = width[:, i]
        columns[f"layer{i}.weight_bits"] = wbits[:, i]
        columns[f"layer{i}.act_bits"] = abits[:, i]
    columns |= _onehot([c["activation"] for c in canon], ACTIVATION_NAMES, "activation")
    columns |= _sparsity_columns(classes, nm_m, PATTERNS)
    columns["count=linear"] = depth + 1.0
    columns["count=activation"] = depth.astype(float)
    columns |= _totals(
        macs=numel,
        numel=numel,
        kept=kept,
        weight_bytes=np.ceil((stored.sum(axis=1) + 32 * biases) / 8),
        extra_params=biases,
        weight_bits=layer_wbits,
        act_bits=layer_abits,
        acts=acts,
        dense_weights=(dense_in * dense_out).sum(axis=1),
    )
    return columns


# --------------------------------------------------------------------------------------------
# cnn


def cnn_columns(canon: Sequence[Mapping[str, Any]]) -> Columns:
    """Columns of canonical ``cnn`` configs.

    Per stage ``stage{i}.width``, ``.inner`` (the residual blocks' inner width after channel
    pruning), ``.kernel``, ``.weight_bits``, ``.act_bits``; ``count=conv{k}x{k}`` counts the
    stem and block convolutions of each kernel size, ``count=conv1x1`` the projection
    shortcuts. Activation tensors: the image, the stem's output, every block's inner and
    output tensor, each at the ``act_bits`` of the stage that reads it, the pooled vector at
    the last stage's, and the logits at 32 bits.
    """
    size, top, deep = len(canon), MAX_CNN_STAGES, MAX_CNN_BLOCKS
    rows = np.arange(size)
    stages = _scalars(canon, "stages").astype(int)
    blocks = _scalars(canon, "blocks").astype(int)
    last = stages - 1
    stage_on = np.arange(top)[None, :] < stages[:, None]
    block_on = stage_on[:, :, None] & (np.arange(deep)[None, None, :] < blocks[:, None, None])
    shortcut_on = block_on & (np.arange(top) > 0)[None, :, None] & (np.arange(deep) == 0)
    ratio = _scalars(canon, "sparsity")
    classes, nm_n, nm_m = _pattern_codes(canon)
    channel = np.array([c == "channel" for c in classes])[:, None]
    width = _padded(canon, "width", top)
    kernel = _padded(canon, "kernel_size", top)
    inner = np.where(channel, kept_channels(width, ratio[:, None]), width) * stage_on
    wbits = _padded(canon, "weight_bits", top)
    abits = _padded(canon, "act_bits", top)
    height, side = [IMAGE_SHAPE[1]], [IMAGE_SHAPE[2]]
    for _ in range(1, top):  # stride-2 convolutions with "same" padding of odd kernels
        height.append((height[-1] - 1) // 2 + 1)
        side.append((side[-1] - 1) // 2 + 1)
    area = np.array(height, dtype=float) * np.array(side)
    image = float(math.prod(IMAGE_SHAPE))

    in_channels = np.repeat(width[:, :, None], deep, axis=2)
    in_channels[:, 1:, 0] = width[:, :-1]
    k2 = (kernel**2)[:, :, None]

    def flat(*parts: FloatArray) -> FloatArray:
        return np.hstack([p.reshape(size, -1) for p in parts])

    def per_block(values: FloatArray) -> FloatArray:
        return np.broadcast_to(values[:, :, None], (size, top, deep))

    def layers(mid: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Weights and output channels of stem, conv1s, conv2s, shortcuts and classifier."""
        stem = kernel[:, 0] ** 2 * IMAGE_SHAPE[0] * width[:, 0]
        conv1 = k2 * in_channels * mid[:, :, None] * block_on
        conv2 = k2 * mid[:, :, None] * width[:, :, None] * block_on
        shortcut = in_channels * width[:, :, None] * shortcut_on
        head = width[rows, last] * NUM_CLASSES
        numel = flat(stem[:, None], conv1, conv2, shortcut, head[:, None])
        outs = flat(
            width[:, :1],
            per_block(mid) * block_on,
            per_block(width) * block_on,
            per_block(width) * shortcut_on,
            np.full((size, 1), NUM_CLASSES),
        )
        return numel, outs

    numel, outs = layers(inner)
    dense_numel, _ = layers(width)
    spatial = flat(
        np.full((size, 1), area[0]),
        *[np.broadcast_to(area[None, :, None], (size, top, deep))] * 3,
        np.ones((size, 1)),
    )

    def by_layer(bits: FloatArray) -> FloatArray:
        stage = per_block(bits)
        return flat(bits[:, :1], stage, stage, stage, bits[rows, last][:, None])

    layer_wbits, layer_abits = by_layer(wbits), by_layer(abits)
    kept, stored = masked_weights(
        numel,
        outs,
        layer_wbits,
        unstructured=np.array([c == "unstructured" for c in classes])[:, None],
        nm=np.array([c == "n:m" for c in classes])[:, None],
        ratio=ratio[:, None],
        n=nm_n[:, None],
        m=nm_m[:, None],
    )
    norm_channels = (
        width[:, 0]
        + (inner[:, :, None] * block_on).sum(axis=(1, 2))
        + (width[:, :, None] * block_on).sum(axis=(1, 2))
        + (width[:, :, None] * shortcut_on).sum(axis=(1, 2))
    )
    extra_params = 2 * norm_channels + NUM_CLASSES  # norm weights and biases, head bias
    extra_bits = 32 * (4 * norm_channels + NUM_CLASSES)  # norms also store mean and var

    same_stage = np.arange(deep)[None, None, :] + 1 < blocks[:, None, None]
    next_stage = np.arange(top)[None, :, None] + 1 < stages[:, None, None]
    later = np.hstack([abits[:, 1:], np.zeros((size, 1))])
    last_bits = abits[rows, last]
    reader = np.where(
        same_stage,
        abits[:, :, None],
        np.where(next_stage, later[:, :, None], last_bits[:, None, None]),
    )
    acts = flat(
        (image * abits[:, 0] / 8)[:, None],
        (width[:, 0] * area[0] * abits[:, 0] / 8)[:, None],
        inner[:, :, None] * area[None, :, None] * abits[:, :, None] / 8 * block_on,
        width[:, :, None] * area[None, :, None] * reader / 8 * block_on,
        (width[rows, last] * last_bits / 8)[:, None],
        np.full((size, 1), NUM_CLASSES * 4.0),
    )

    columns: Columns = {"stages": stages.astype(float), "blocks": blocks.astype(float)}
    for i in range(top):
        columns[f"stage{i}.width"] = width[:, i]
        columns[f"stage{i}.inner"] = inner[:, i]
        columns[f"stage{i}.kernel"] = kernel[:, i]
        columns[f"stage{i}.weight_bits"] = wbits[:, i]
        columns[f"stage{i}.act_bits"] = abits[:, i]
    columns |= _onehot([c["activation"] for c in canon], ACTIVATION_NAMES, "activation")
    columns |= _sparsity_columns(classes, nm_m, PATTERNS)
    for k in CNN_KERNELS:
        block_convs = 2 * ((kernel == k) * stage_on).sum(axis=1) * blocks
        columns[f"count=conv{k}x{k}"] = (kernel[:, 0] == k) + block_convs.astype(float)
    columns["count=conv1x1"] = (stages - 1).astype(float)
    columns["count=batchnorm"] = (1 + 2 * stages * blocks + stages - 1).astype(float)
    columns["count=residual"] = (stages * blocks).astype(float)
    columns["count=linear"] = np.ones(size)
    columns |= _totals(
        macs=numel * spatial,
        numel=numel,
        kept=kept,
        weight_bytes=np.ceil((stored.sum(axis=1) + extra_bits) / 8),
        extra_params=extra_params,
        weight_bits=layer_wbits,
        act_bits=layer_abits,
        acts=acts,
        dense_weights=dense_numel.sum(axis=1),
    )
    return columns


# --------------------------------------------------------------------------------------------
# transformer

#: Serving lengths the transformer's columns assume (the LM evaluation's defaults).
DEFAULT_PROMPT_LEN = LMSettings().prompt_len
DEFAULT_NEW_TOKENS = LMSettings().new_tokens


def transformer_columns(
    canon: Sequence[Mapping[str, Any]],
    *,
    vocab: int,
    prompt_len: int = DEFAULT_PROMPT_LEN,
    new_tokens: int = DEFAULT_NEW_TOKENS,
) -> Columns:
    """Columns of canonical ``transformer`` configs, for the deployed layers (up to the early
    exit) serving one sequence of ``prompt_len`` prompt characters and ``new_tokens`` new ones.

    Every layer has the same shape, so the per-layer dimensions are ``d_model``,
    ``mlp_hidden`` and ``kv_width`` (``2 x kv_heads x head_dim``) with ``layers_used``.

    - ``log_prefill_macs``: the linears that :class:`~hwsearch.models.transformer.Prefill`
      runs (every block linear at each prompt position, the head at the last), plus the
      attention products ``QK^T`` and ``AV`` over the causal triangle:
      ``layers_used x d_model x P (P + 1)``.
    - ``log_decode_macs``: one :class:`~hwsearch.models.transformer.DecodeStep` at position
      ``P``: every block linear and the head once, plus ``2 x layers_used x d_model x (P + 1)``
      for attention over the cached positions.
    - ``log_kv_cache_bytes``: the ``kv_cache_bytes`` metric for one sequence.
    - activations (float32): those a prefill writes: the embedded prompt, per layer the two
      norms, Q, K and V, the attention and projection outputs, the MLP's hidden layer before
      and after the activation and its output, then the last position's norm and logits
      (attention scores are left out: fused attention does not store them).
    - ``log_nonzero_params`` / ``sparsity``: block-sparse masks zero whole 16x16 tiles; where a
      linear's sides are not multiples of 16 the zeros are estimated from the tile share.
    """
    size = len(canon)
    d = _scalars(canon, "d_model")
    heads = _scalars(canon, "heads")
    kv_heads = _scalars(canon, "kv_heads")
    layers = _scalars(canon, "layers")
    exit_at = _scalars(canon, "early_exit")
    used = np.where(exit_at > 0, exit_at, layers)
    ratio_mlp = _scalars(canon, "mlp_ratio")
    hidden = np.maximum(MLP_MULTIPLE, np.ceil(d * ratio_mlp / MLP_MULTIPLE) * MLP_MULTIPLE)
    head_dim = d / heads
    kv = 2 * kv_heads * head_dim
    bits = _scalars(canon, "weight_bits")
    ratio = _scalars(canon, "sparsity")
    classes, nm_n, nm_m = _pattern_codes(canon)
    cls = np.array(classes)

    # block linears of one layer as (out N, in K): q, kv, o, fc1, fc2
    out_n = np.stack([d, kv, d, hidden, d], axis=1)
    in_k = np.stack([d, d, d, d, hidden], axis=1)
    numel = out_n * in_k
    unstructured = (cls == "unstructured")[:, None]
    nm = (cls == "n:m")[:, None]
    block = (cls == "block")[:, None]
    kept, _ = masked_weights(
        numel,
        out_n,
        np.zeros_like(numel),
        unstructured=unstructured,
        nm=nm,
        ratio=ratio[:, None],
        n=nm_n[:, None],
        m=nm_m[:, None],
    )
    tiles_n = np.ceil(out_n / BLOCK_TILE)
    tiles = tiles_n * np.ceil(in_k / BLOCK_TILE)
    tiles_dropped = np.minimum(np.round(ratio[:, None] * tiles), tiles - 1)
    kept = np.where(block, numel - numel * tiles_dropped / tiles, kept)

    # stored bytes of one layer's block linears (see lm_pipeline.lm_size_bytes)
    b = bits[:, None]
    group = np.gcd(in_k.astype(np.int64), INT4_GROUP).astype(float)
    int4 = (b == 4) & (group % 2 == 0)
    float_bits = np.where(b == 16, 16.0, 32.0)
    index = np.where(
        nm,
        np.ceil(np.log2(np.maximum(nm_m[:, None], 1.0))) * kept,
        np.where(cls[:, None] == "none", 0.0, numel),
    )
    stored = np.where(
        b == 8,
        numel + 4 * out_n,
        np.where(
            int4,
            numel / 2 + numel / np.maximum(group, 1.0) * 4,
            np.where(
                (b == 32) & block,
                (tiles - tiles_dropped) * (BLOCK_TILE**2 * 4 + 4) + (tiles_n + 1) * 4,
                np.ceil((kept * float_bits + index) / 8),
            ),
        ),
    )
    layer_bytes = stored.sum(axis=1) + 4 * out_n.sum(axis=1)  # biases in float32
    layer_weights = numel.sum(axis=1)
    norms = 4 * d  # two LayerNorms per layer
    layer_params = layer_weights + out_n.sum(axis=1) + norms
    outer_params = vocab * d + MAX_CONTEXT * d + 2 * d + d * vocab + vocab
    params = used * layer_params + outer_params
    zeroed = used * (layer_weights - kept.sum(axis=1))

    p, context = float(prompt_len), float(prompt_len + new_tokens)
    head_macs = d * vocab
    prefill = p * used * layer_weights + head_macs + used * d * p * (p + 1)
    decode = used * layer_weights + head_macs + 2 * used * d * (p + 1)
    kv_cache = used * context * kv * 4  # kv holds keys and values
    act_sum = 4 * (p * d + used * p * (6 * d + kv + 2 * hidden) + d + vocab)
    act_max = 4 * np.maximum.reduce([p * d, p * hidden, p * kv, np.full(size, float(vocab))])

    attention = np.where(kv_heads == heads, "mha", np.where(kv_heads == 1, "mqa", "gqa"))
    columns: Columns = {
        "layers": layers,
        "layers_used": used,
        "early_exit": exit_at,
        "has_early_exit": (exit_at > 0).astype(float),
        "d_model": d,
        "heads": heads,
        "kv_heads": kv_heads,
        "head_dim": head_dim,
        "kv_width": kv,
        "mlp_ratio": ratio_mlp,
        "mlp_hidden": hidden,
        **_onehot(list(attention), ("mha", "gqa", "mqa"), "attention"),
        **_onehot([c["activation"] for c in canon], ACTIVATION_NAMES, "activation"),
        "weight_bits": bits,
        **_onehot(list(bits.astype(int)), LM_BITS, "weight_bits"),
        "sparsity": 1.0 - kept.sum(axis=1) / layer_weights,
        **_sparsity_columns(classes, nm_m, LM_PATTERNS),
        "count=linear": 5 * used + 1,
        "count=attention": used,
        "count=layernorm": 2 * used + 1,
        "log_params": np.log(params),
        "log_nonzero_params": np.log(params - zeroed),
        "log_weight_bytes": np.log(used * layer_bytes + 4 * (used * norms + outer_params)),
        "log_prefill_macs": np.log(prefill),
        "log_decode_macs": np.log(decode),
        "log_kv_cache_bytes": np.log(kv_cache),
        "log_act_max_bytes": np.log(act_max),
        "log_act_sum_bytes": np.log(act_sum),
    }
    return columns


__all__ = [
    "DEFAULT_NEW_TOKENS",
    "DEFAULT_PROMPT_LEN",
    "cnn_columns",
    "kept_channels",
    "masked_weights",
    "mlp_columns",
    "transformer_columns",
]
