"""The networks of the ``transformer`` family: the small decoder-only LM, its KV cache, and
the prefill and decode-step modules that are timed (see :mod:`hwsearch.models.transformer`)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from hwsearch.models.shapes import ACTIVATION_NAMES, MAX_CONTEXT, LMShape

ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU}
assert tuple(ACTIVATIONS) == ACTIVATION_NAMES


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


__all__ = ["ACTIVATIONS", "Attention", "Block", "DecodeStep", "KVCache", "Prefill", "TinyLM"]
