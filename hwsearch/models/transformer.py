"""The ``transformer`` family: small decoder-only language models, trained on bundled text.

A block is one transformer layer: pre-norm causal self-attention, then a pre-norm MLP.
Attention has ``heads`` query heads sharing ``kv_heads`` key/value heads: ``kv_heads ==
heads`` is multi-head attention, ``1 < kv_heads < heads`` grouped-query attention,
``kv_heads == 1`` multi-query attention; fewer KV heads shrink the projections and the KV
cache. The MLP widens ``d_model`` by ``mlp_ratio`` (rounded up to a multiple of 16).

Compression acts on the linear layers of the blocks (embeddings, final norm and the output
head stay in float32): ``sparsity`` with ``sparsity_pattern`` ``unstructured``
(magnitude per layer), ``N:M`` (e.g. ``2:4``) or ``block`` (16×16 tiles of least L1 norm,
the tiles the block-sparse kernel skips), applied after training and fine-tuned with the
mask held; then ``weight_bits``: 8 = weight-only int8 per output channel, 4 = weight-only
int4 with one scale per group of 32 input values (fewer where ``d_model`` or the MLP width
is not a multiple of 32), 16 = float16 values, 32 = float. Quantized and block-sparse
layers are materialised as :mod:`hwsearch.hardware.kernels` layers, so the quality is that
of the numbers the kernels compute, and the measured latency that of the kernels that ran.

``early_exit = k`` (``0 < k < layers``) trains the model with a second loss at the output
of layer ``k`` (through the shared final norm and head) and deploys only the first ``k``
layers: the exit is static, so the deployed model is a ``k``-layer model trained with deep
supervision. ``0`` (or ``k >= layers``) means no exit.

The KV cache of one sequence batch holds, per layer used, keys and values of every position:
``kv_cache_bytes = 2 × layers_used × batch × context × kv_heads × head_dim × 4`` (float32),
with ``context = prompt_len + new_tokens``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from hwsearch.errors import SpecError
from hwsearch.models.base import Knob, ModelFamily, register_family
from hwsearch.models.compression.knobs import FLOAT_DIGITS, parse_nm, pattern_problem
from hwsearch.models.shapes import (
    ACTIVATION_NAMES,
    MAX_CONTEXT,
    MLP_MULTIPLE,
    LMShape,
    kv_cache_bytes,
    mlp_hidden,
)

if TYPE_CHECKING:
    import torch

    from hwsearch.models.transformer_net import TinyLM

LM_PATTERNS: tuple[str, ...] = ("none", "unstructured", "block")  # plus any "N:M"
LM_BITS: tuple[int, ...] = (4, 8, 16, 32)
BLOCK_TILE = 16  # tile of the block-sparse pattern
INT4_GROUP = 32


def _lm_pattern_problem(value: Any) -> str | None:
    return pattern_problem(value, LM_PATTERNS)


KNOBS: dict[str, Knob] = {
    "layers": Knob("layers", "int", 2, "transformer layers", low=1, high=24),
    "d_model": Knob("d_model", "int", 64, "width of the residual stream", low=8, high=4096),
    "heads": Knob("heads", "int", 4, "query heads (must divide d_model)", low=1, high=64),
    "kv_heads": Knob(
        "kv_heads",
        "int",
        4,
        "key/value heads: = heads MHA, fewer GQA, 1 MQA (must divide heads; capped at heads)",
        low=1,
        high=64,
    ),
    "mlp_ratio": Knob("mlp_ratio", "float", 4.0, "MLP width / d_model", low=0.25, high=16.0),
    "activation": Knob("activation", "choice", "gelu", "MLP activation", choices=ACTIVATION_NAMES),
    "weight_bits": Knob(
        "weight_bits",
        "choice",
        32,
        "weight bit-width of the block linears: 4/8 weight-only int, 16 fp16, 32 float",
        choices=LM_BITS,
    ),
    "sparsity": Knob(
        "sparsity",
        "float",
        0.0,
        "share of block-linear weights zeroed; fixed by an N:M pattern",
        low=0.0,
        high=0.95,
    ),
    "sparsity_pattern": Knob(
        "sparsity_pattern",
        "choice",
        "unstructured",
        "'unstructured', 'block' (16x16 tiles) or 'N:M' (e.g. '2:4')",
        choices=LM_PATTERNS,
        check=_lm_pattern_problem,
    ),
    "early_exit": Knob(
        "early_exit", "int", 0, "deploy only the first k layers (0: no exit)", low=0, high=24
    ),
}


# --------------------------------------------------------------------------------------------
# The network


# The family


class TransformerFamily(ModelFamily):
    """Decoder-only character-level LMs on the bundled corpus (see :mod:`lm_data`)."""

    name = "transformer"
    knobs: Mapping[str, Knob] = KNOBS
    default_evaluation = "lm"  # evaluated by the LM evaluation kind, not build_candidate
    evaluations = ("lm",)
    data_source = None  # the lm evaluation trains on its bundled corpus

    def num_blocks(self, config: Mapping[str, Any]) -> int:
        return int(config.get("layers", KNOBS["layers"].default))

    def canonical(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """Defaults filled and every value checked; no-op settings made identical:
        ``kv_heads`` capped at ``heads``, ``early_exit`` at or beyond ``layers`` is 0, a
        pattern at sparsity 0 is ``none``, an N:M pattern fixes the sparsity."""
        unknown = sorted(set(config) - set(KNOBS))
        if unknown:
            raise SpecError(
                unknown[0], f"unknown knob of family 'transformer'; valid knobs: {', '.join(KNOBS)}"
            )
        out: dict[str, Any] = {}
        for name, knob in KNOBS.items():
            value = config.get(name, knob.default)
            problem = knob.problem(value)
            if problem is not None:
                raise SpecError(name, problem)
            if knob.kind == "int" or name == "weight_bits":
                value = int(value)
            elif knob.kind == "float":
                value = round(float(value), FLOAT_DIGITS) + 0.0
            out[name] = value
        out["kv_heads"] = min(out["kv_heads"], out["heads"])
        if out["d_model"] % out["heads"]:
            raise SpecError(
                "d_model", f"{out['d_model']} is not a multiple of heads = {out['heads']}"
            )
        if out["heads"] % out["kv_heads"]:
            raise SpecError("kv_heads", f"{out['kv_heads']} does not divide heads = {out['heads']}")
        if out["early_exit"] >= out["layers"]:
            out["early_exit"] = 0
        pattern = out["sparsity_pattern"]
        nm = parse_nm(pattern)
        if nm is not None:
            pattern = f"{nm[0]}:{nm[1]}"
        if out["sparsity"] == 0.0:
            pattern = "none"
        elif nm is not None:
            out["sparsity"] = round(1.0 - nm[0] / nm[1], FLOAT_DIGITS)
        elif pattern == "none":
            raise SpecError(
                "sparsity_pattern",
                f"'none' contradicts sparsity {out['sparsity']}; choose a pattern",
            )
        out["sparsity_pattern"] = pattern
        return out

    def shape(self, config: Mapping[str, Any], vocab: int | None = None) -> LMShape:
        from hwsearch.models.lm_data import char_data

        cfg = self.canonical(config)
        layers = cfg["layers"]
        exit_at = cfg["early_exit"] or layers
        return LMShape(
            vocab=vocab if vocab is not None else char_data().vocab_size,
            d_model=cfg["d_model"],
            heads=cfg["heads"],
            kv_heads=cfg["kv_heads"],
            head_dim=cfg["d_model"] // cfg["heads"],
            mlp_hidden=mlp_hidden(cfg["d_model"], cfg["mlp_ratio"]),
            layers=layers,
            layers_used=exit_at,
        )

    def build(self, config: Mapping[str, Any]) -> TinyLM:
        from hwsearch.models.transformer_net import TinyLM

        cfg = self.canonical(config)
        return TinyLM(self.shape(cfg), cfg["activation"], exit_layer=cfg["early_exit"] or None)

    def example_input(self, batch_size: int) -> torch.Tensor:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size!r}")
        from hwsearch.models.lm_data import char_data

        return char_data().val[:32].repeat(batch_size, 1)


TRANSFORMER = register_family(TransformerFamily())

__all__ = [
    "MAX_CONTEXT",
    "MLP_MULTIPLE",
    "TRANSFORMER",
    "LMShape",
    "TransformerFamily",
    "kv_cache_bytes",
    "mlp_hidden",
]
