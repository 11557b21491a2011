"""A decoder LM from Hugging Face ``transformers``: ``LlamaForCausalLM`` built from a
``LlamaConfig`` (random init, 2 layers, tiny dims), trained briefly on hwsearch's bundled
character corpus, then searched over its MLP width and per-layer compression (spec.yaml).

``build(config)`` stands for "your model with your weights": the configured Llama is trained
once per process (``PRETRAIN_STEPS`` AdamW steps, ``HWSEARCH_EXAMPLE_PRETRAIN_STEPS`` to
change it) and those weights are loaded into every build. ``evaluate`` returns:

- ``perplexity`` on the corpus's validation windows, computed on the model as the search
  compressed it (masks, pruned MLPs, simulated bit-widths);
- ``ttft_ms`` (a prompt through a fresh KV cache, first token chosen greedily) and
  ``decode_ms_per_token`` (one cached step) on that model *materialised* on the CPU's real
  kernels (:func:`hwsearch.models.custom.materialize.materialize`, as the pipeline does for
  its ``latency_ms``), timed with hwsearch's own protocol
  (:func:`hwsearch.hardware.measure_latency`, one thread) with the prompt length and
  training settings of the built-in ``lm`` evaluation (``hwsearch.models.lm_pipeline``).

Channel rules inside Llama attention are refused by hwsearch (torch-pruning is too slow on
rotary, grouped-query attention); MLP pruning and bit-widths everywhere work.
"""

from __future__ import annotations

import functools
import math
import os
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from hwsearch.hardware import MeasureSettings, measure_latency, parse_target
from hwsearch.models.custom.compress import bake
from hwsearch.models.custom.materialize import materialize
from hwsearch.models.custom.rules import canonical_rule
from hwsearch.models.lm_data import batch, char_data, validation_windows
from hwsearch.models.lm_pipeline import LMSettings

PRETRAIN_STEPS = int(os.environ.get("HWSEARCH_EXAMPLE_PRETRAIN_STEPS", "300"))
FINETUNE_STEPS = int(os.environ.get("HWSEARCH_EXAMPLE_FINETUNE_STEPS", "30"))
SERVING = LMSettings()  # prompt_len 32, new_tokens 32, seq_len 64, batch 16, lr 3e-3
TIMING = MeasureSettings(threads=1, warmup=3, min_repeats=10, max_repeats=60, max_seconds=1.0)


def _architecture(config: dict[str, Any]) -> nn.Module:
    from transformers import LlamaConfig, LlamaForCausalLM

    hidden = int(config.get("hidden", 64))
    cfg = LlamaConfig(
        vocab_size=char_data().vocab_size,
        hidden_size=hidden,
        intermediate_size=int(config.get("mlp", 4 * hidden)),
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=SERVING.context + SERVING.seq_len,
        tie_word_embeddings=False,
    )
    cfg._attn_implementation = "eager"
    return LlamaForCausalLM(cfg)


def _logits(model: nn.Module, ids: torch.Tensor) -> torch.Tensor:
    return model(ids, use_cache=False).logits


def _train(model: nn.Module, steps: int, lr: float, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    for _ in range(steps):
        x, y = batch(char_data().train, SERVING.batch_size, SERVING.seq_len, generator)
        logits = _logits(model, x)
        opt.zero_grad()
        F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1)).backward()
        opt.step()


@functools.cache
def _weights(hidden: int, mlp: int) -> dict[str, torch.Tensor]:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = _architecture({"hidden": hidden, "mlp": mlp})
        _train(model, PRETRAIN_STEPS, SERVING.learning_rate, seed=0)
    return {k: v.clone() for k, v in model.state_dict().items()}


def build(config: dict[str, Any]) -> nn.Module:
    """The configured Llama with its trained weights loaded."""
    model = _architecture(config)
    hidden = int(config.get("hidden", 64))
    model.load_state_dict(_weights(hidden, int(config.get("mlp", 4 * hidden))))
    return model


def example(batch_size: int) -> torch.Tensor:
    """A prompt of the validation text: the pipeline's ``latency_ms`` is its prefill."""
    return char_data().val[: SERVING.prompt_len].unsqueeze(0).repeat(batch_size, 1)


class Prefill(nn.Module):
    """Time to first token: the prompt into a fresh cache, the next token chosen greedily."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, prompt: torch.Tensor) -> torch.Tensor:
        return self.model(prompt, use_cache=True).logits[:, -1].argmax(-1)


class DecodeStep(nn.Module):
    """One cached decode step after the prompt; the cache is cut back to the prompt after
    each call, so every call writes the same position and costs the same."""

    def __init__(self, model: nn.Module, prompt: torch.Tensor) -> None:
        super().__init__()
        self.model = model
        with torch.inference_mode():
            self.cache = model(prompt, use_cache=True).cache

    def forward(self, token: torch.Tensor) -> torch.Tensor:
        out = self.model(token, cache=self.cache, use_cache=True)
        self.cache.crop(-1)  # drop the token just written: back to the prompt
        return out.logits[:, -1].argmax(-1)


def evaluate(model: nn.Module, context: Any) -> dict[str, float]:
    """Validation perplexity (nats per character, exponentiated), TTFT and decode latency."""
    x, y = validation_windows(char_data().val, SERVING.seq_len, SERVING.eval_windows)
    model.eval()
    with torch.inference_mode():
        logits = _logits(model, x)
        loss = float(F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1)))
    rules = {
        name: canonical_rule(f"layers[{name}]", knobs)
        for name, knobs in context.compression.items()
    }
    prompt = example(1)
    served = materialize(bake(model), rules, [prompt]).model
    target = parse_target("cpu")
    ttft = measure_latency(Prefill(served), prompt, target, TIMING)
    step = measure_latency(DecodeStep(served, prompt), prompt[:, -1:], target, TIMING)
    return {
        "perplexity": math.exp(loss),
        "ttft_ms": ttft.median_ms,
        "decode_ms_per_token": step.median_ms,
    }


def finetune(model: nn.Module, context: Any) -> None:
    """``FINETUNE_STEPS`` AdamW steps (``context.extras["finetune_steps"]`` if given) at a
    tenth of the rate, with the compression held."""
    steps = int(context.extras.get("finetune_steps", FINETUNE_STEPS))
    _train(model, steps, SERVING.learning_rate * 0.1, seed=context.seed)
