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

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from hwsearch.errors import SpecError
from hwsearch.models.base import Knob, ModelFamily, register_family
from hwsearch.models.compression import FLOAT_DIGITS, parse_nm, pattern_problem

ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU}
LM_PATTERNS: tuple[str, ...] = ("none", "unstructured", "block")  # plus any "N:M"
LM_BITS: tuple[int, ...] = (4, 8, 16, 32)
MAX_CONTEXT = 512  # positions of the learned position embedding
BLOCK_TILE = 16  # tile of the block-sparse pattern
INT4_GROUP = 32
MLP_MULTIPLE = 16


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
    "activation": Knob(
        "activation", "choice", "gelu", "MLP activation", choices=tuple(ACTIVATIONS)
    ),
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


# --------------------------------------------------------------------------------------------
# The network


class KVCache(nn.Module):
    """Keys and values of every layer for ``batch`` sequences of up to ``max_len`` positions."""

    def __init__(self, layers: int, batch: int, kv_heads: int, max_len: int, head_dim: int) -> None:
        super().__init__()
        shape = (layers, batch, kv_heads, max_len, head_dim)
        self.register_buffer("keys", torch.zeros(shape), persistent=False)
        self.register_buffer("values", torch.zeros(shape), persistent=False)

    keys: torch.Tensor
    values: torch.Tensor

    def nbytes(self) -> int:
        return 2 * self.keys.numel() * self.keys.element_size()


class Attention(nn.Module):
    def __init__(self, d_model: int, heads: int, kv_heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.kv_heads = kv_heads
        self.head_dim = d_model // heads
        self.q_proj = nn.Linear(d_model, d_model)
        self.kv_proj = nn.Linear(d_model, 2 * kv_heads * self.head_dim)
        self.o_proj = nn.Linear(d_model, d_model)

    def forward(
        self,
        x: torch.Tensor,
        cache: KVCache | None = None,
        layer: int = 0,
        start: int = 0,
    ) -> torch.Tensor:
        """Causal attention over ``x`` (B, T, C); with ``cache``, ``x`` holds positions
        ``start .. start + T - 1``, whose keys and values are written to the cache, and the
        queries attend to every cached position up to theirs."""
        b, t, c = x.shape
        q = self.q_proj(x).view(b, t, self.heads, self.head_dim).transpose(1, 2)
        kv = self.kv_proj(x).view(b, t, 2, self.kv_heads, self.head_dim)
        k, v = kv[:, :, 0].transpose(1, 2), kv[:, :, 1].transpose(1, 2)
        if cache is not None:
            cache.keys[layer, :b, :, start : start + t] = k
            cache.values[layer, :b, :, start : start + t] = v
            k = cache.keys[layer, :b, :, : start + t]
            v = cache.values[layer, :b, :, : start + t]
        gqa = self.kv_heads != self.heads
        if t == 1:  # one new position attends to all before it: no mask needed
            out = F.scaled_dot_product_attention(q, k, v, enable_gqa=gqa)
        elif start == 0:
            out = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=gqa)
        else:
            mask = torch.ones(t, start + t, dtype=torch.bool, device=x.device).tril(start)
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=gqa)
        return self.o_proj(out.transpose(1, 2).reshape(b, t, c))


class Block(nn.Module):
    def __init__(self, shape: LMShape, activation: str) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(shape.d_model)
        self.attn = Attention(shape.d_model, shape.heads, shape.kv_heads)
        self.norm2 = nn.LayerNorm(shape.d_model)
        self.fc1 = nn.Linear(shape.d_model, shape.mlp_hidden)
        self.act = ACTIVATIONS[activation]()
        self.fc2 = nn.Linear(shape.mlp_hidden, shape.d_model)

    def forward(
        self, x: torch.Tensor, cache: KVCache | None = None, layer: int = 0, start: int = 0
    ) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), cache, layer, start)
        return x + self.fc2(self.act(self.fc1(self.norm2(x))))


class TinyLM(nn.Module):
    """A decoder-only LM; ``exit_layer`` (if set) is where the deployed model stops."""

    def __init__(self, shape: LMShape, activation: str, exit_layer: int | None = None) -> None:
        super().__init__()
        self.shape = shape
        self.exit_layer = exit_layer
        self.tok_emb = nn.Embedding(shape.vocab, shape.d_model)
        self.pos_emb = nn.Embedding(MAX_CONTEXT, shape.d_model)
        self.blocks = nn.ModuleList(Block(shape, activation) for _ in range(shape.layers))
        self.norm = nn.LayerNorm(shape.d_model)
        self.head = nn.Linear(shape.d_model, shape.vocab)

    def block_linears(self) -> list[str]:
        """Names of the linear layers compression acts on."""
        names = []
        for i in range(len(self.blocks)):
            names += [f"blocks.{i}.attn.{p}" for p in ("q_proj", "kv_proj", "o_proj")]
            names += [f"blocks.{i}.fc1", f"blocks.{i}.fc2"]
        return names

    def _embed(self, idx: torch.Tensor, start: int) -> torch.Tensor:
        t = idx.shape[1]
        if start + t > MAX_CONTEXT:
            raise ValueError(f"positions up to {start + t} exceed the context of {MAX_CONTEXT}")
        pos = torch.arange(start, start + t, device=idx.device)
        return self.tok_emb(idx) + self.pos_emb(pos)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """Logits at every position of ``idx`` (B, T), through the deployed layers."""
        x = self._embed(idx, 0)
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x))

    def forward_with_exit(self, idx: torch.Tensor, exit_at: int) -> tuple[torch.Tensor, ...]:
        """Final logits and those at the output of layer ``exit_at`` (training)."""
        x = self._embed(idx, 0)
        early = None
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i + 1 == exit_at:
                early = self.head(self.norm(x))
        assert early is not None
        return self.head(self.norm(x)), early

    def step(self, idx: torch.Tensor, cache: KVCache, start: int) -> torch.Tensor:
        """Run positions ``start ..`` of ``idx`` through the cache; logits of the last."""
        x = self._embed(idx, start)
        for i, block in enumerate(self.blocks):
            x = block(x, cache, i, start)
        return self.head(self.norm(x[:, -1]))

    def new_cache(self, batch: int, max_len: int) -> KVCache:
        s = self.shape
        cache = KVCache(len(self.blocks), batch, s.kv_heads, max_len, s.head_dim)
        return cache.to(self.head.weight.device)


class Prefill(nn.Module):
    """Time to first token: the prompt through the model into a fresh cache, then the first
    token chosen greedily. Takes prompts (B, P)."""

    def __init__(self, model: TinyLM, batch: int, context: int) -> None:
        super().__init__()
        self.model = model
        self.cache = model.new_cache(batch, context)

    def forward(self, prompt: torch.Tensor) -> torch.Tensor:
        return self.model.step(prompt, self.cache, 0).argmax(dim=-1)


class DecodeStep(nn.Module):
    """One decode step at position ``prompt_len`` of a cache filled with a prompt: what every
    generated token costs (each call writes the same position, so calls cost the same).
    Takes the previous tokens (B, 1)."""

    def __init__(self, model: TinyLM, prompt: torch.Tensor, context: int) -> None:
        super().__init__()
        self.model = model
        self.position = prompt.shape[1]
        self.cache = model.new_cache(prompt.shape[0], context)
        with torch.inference_mode():
            model.step(prompt, self.cache, 0)

    def forward(self, token: torch.Tensor) -> torch.Tensor:
        return self.model.step(token, self.cache, self.position).argmax(dim=-1)


# --------------------------------------------------------------------------------------------
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
        cfg = self.canonical(config)
        return TinyLM(self.shape(cfg), cfg["activation"], exit_layer=cfg["early_exit"] or None)

    def example_input(self, batch_size: int) -> torch.Tensor:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size!r}")
        from hwsearch.models.lm_data import char_data

        return char_data().val[:32].repeat(batch_size, 1)


TRANSFORMER = register_family(TransformerFamily())

__all__ = [
    "TRANSFORMER",
    "Attention",
    "DecodeStep",
    "KVCache",
    "LMShape",
    "Prefill",
    "TinyLM",
    "TransformerFamily",
    "kv_cache_bytes",
    "mlp_hidden",
]
