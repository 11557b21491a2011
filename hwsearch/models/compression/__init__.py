"""Compression applied for real: channel pruning, sparsity masks, simulated quantization, size.

The transforms work on a :class:`CompressibleNet`, a network that names its weight layers, the
block each belongs to, its activation-quantization slots and the channel groups that may be
pruned. Each transform returns the model and what it did.

Order inside :func:`apply_compression`: channel pruning (physically smaller layers) or a
sparsity mask (unstructured or N:M), then weight fake-quantization, then activation
fake-quantization. Masks and weight fake-quantization are ``torch.nn.utils.parametrize``
parametrizations, so they stay in force during fine-tuning; :func:`bake` folds them into plain
dense weights.

Bit-widths: 32 leaves a tensor untouched; 16 is an fp16 round trip (the values an fp16
deployment would hold); 2, 4 and 8 are symmetric integer fake-quantization (weights per output
channel, ``2**(bits-1) - 1`` levels each side of zero) or affine per-tensor fake-quantization
(activations, ``2**bits`` levels). All use a straight-through estimator for the gradient.

The package's modules: the knobs and canonical configs that every family shares
(:mod:`.knobs`: :func:`canonical_config`; no torch), the transforms (:mod:`.transforms`),
and all of them applied, baked and weighed (:mod:`.applied`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hwsearch.lazy import lazy_names
from hwsearch.models.compression.knobs import (
    BIT_CHOICES,
    FLOAT_DIGITS,
    MAX_SPARSITY,
    PATTERNS,
    CompressionSpec,
    canonical_config,
    compression_knobs,
    parse_nm,
    pattern_problem,
)

if TYPE_CHECKING:
    from hwsearch.models.compression.applied import (
        CompressionReport,
        apply_compression,
        bake,
        kept_weights,
        layer_weight_bits,
        measured_sparsity,
        model_size_bytes,
        weight_count,
    )
    from hwsearch.models.compression.transforms import (
        ActFakeQuant,
        CompressibleNet,
        PruneGroup,
        WeightFakeQuant,
        WeightMask,
        apply_sparsity,
        calibrate_activations,
        fake_quantize_weight,
        find_parametrization,
        kept_count,
        magnitude_mask,
        nm_mask,
        prune_channels,
        quantize_activations,
        quantize_weights,
    )

#: names of the modules that import torch, loaded on first use (the knobs need no torch)
_LAZY = {
    name: "applied"
    for name in (
        "CompressionReport",
        "apply_compression",
        "bake",
        "kept_weights",
        "layer_weight_bits",
        "measured_sparsity",
        "model_size_bytes",
        "weight_count",
    )
} | {
    name: "transforms"
    for name in (
        "ActFakeQuant",
        "CompressibleNet",
        "PruneGroup",
        "WeightFakeQuant",
        "WeightMask",
        "apply_sparsity",
        "calibrate_activations",
        "fake_quantize_weight",
        "find_parametrization",
        "kept_count",
        "magnitude_mask",
        "nm_mask",
        "prune_channels",
        "quantize_activations",
        "quantize_weights",
    )
}


__getattr__ = lazy_names(globals(), {k: f"{__name__}.{m}" for k, m in _LAZY.items()})


__all__ = [
    "BIT_CHOICES",
    "FLOAT_DIGITS",
    "MAX_SPARSITY",
    "PATTERNS",
    "ActFakeQuant",
    "CompressibleNet",
    "CompressionReport",
    "CompressionSpec",
    "PruneGroup",
    "WeightFakeQuant",
    "WeightMask",
    "apply_compression",
    "apply_sparsity",
    "bake",
    "calibrate_activations",
    "canonical_config",
    "compression_knobs",
    "fake_quantize_weight",
    "find_parametrization",
    "kept_count",
    "kept_weights",
    "layer_weight_bits",
    "magnitude_mask",
    "measured_sparsity",
    "model_size_bytes",
    "nm_mask",
    "parse_nm",
    "pattern_problem",
    "prune_channels",
    "quantize_activations",
    "quantize_weights",
    "weight_count",
]
