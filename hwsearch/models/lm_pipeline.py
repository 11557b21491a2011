"""From a ``transformer`` config to a trained, compressed, materialised language model.

Train on the bundled corpus (:mod:`hwsearch.models.lm_data`), apply the sparsity mask and
fine-tune with it held, then materialise: quantized layers become
:class:`~hwsearch.hardware.kernels.QuantizedLinear`, block-sparse ones
:class:`~hwsearch.hardware.kernels.BlockSparseLinear`, and an early exit drops the layers
after it. Quality (validation loss, perplexity, next-character accuracy) is measured on the
materialised model, so it is the quality of what the kernels compute.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

from hwsearch.hardware.kernels import BlockSparseLinear, QuantizedLinear, magnitude_block_mask
from hwsearch.hardware.threads import WorkerThreads, default_threads, torch_threads
from hwsearch.models.compression import WeightMask, magnitude_mask, nm_mask, parse_nm
from hwsearch.models.lm_data import batch, char_data, validation_windows
from hwsearch.models.transformer import BLOCK_TILE, INT4_GROUP, LMShape, TransformerFamily
from hwsearch.models.transformer_net import TinyLM

DATASET = "bundled character-level corpus (hwsearch/models/data/tiny_corpus.txt), 90/10 split"


@dataclass(frozen=True, kw_only=True)
class LMSettings:
    """How each language model is trained, evaluated and served; checked on construction.

    ``steps`` of AdamW at ``learning_rate`` on random windows of ``seq_len`` characters,
    ``batch_size`` windows a step; ``finetune_steps`` more (at a tenth of the rate) with the
    sparsity mask held; validation on ``eval_windows`` windows. Serving: prompts of
    ``prompt_len`` characters, ``new_tokens`` generated per request.
    """

    steps: int = 150
    finetune_steps: int = 30
    batch_size: int = 16
    seq_len: int = 64
    learning_rate: float = 3e-3
    eval_windows: int = 32
    prompt_len: int = 32
    new_tokens: int = 32

    def __post_init__(self) -> None:
        minimum = {"finetune_steps": 0}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "learning_rate":
                if (
                    isinstance(value, bool)
                    or not isinstance(value, int | float)
                    or not math.isfinite(value)
                    or value <= 0
                ):
                    raise ValueError(f"learning_rate must be a positive number, got {value!r}")
                continue
            low = minimum.get(f.name, 1)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{f.name} must be an integer >= {low}, got {value!r}")
        if self.prompt_len + self.new_tokens > 512:
            raise ValueError(
                f"prompt_len + new_tokens must be at most 512 (the model's context), got "
                f"{self.prompt_len + self.new_tokens}"
            )
        if self.seq_len > 512:
            raise ValueError(f"seq_len must be at most 512, got {self.seq_len}")

    @property
    def context(self) -> int:
        return self.prompt_len + self.new_tokens

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LMSettings:
        """From an evaluation section (its ``type`` key left out)."""
        return cls(**{k: v for k, v in data.items() if k != "type"})


@dataclass
class BuiltLM:
    """A trained, compressed, materialised language model and its quality."""

    model: TinyLM  # materialised, eval mode, only the deployed layers
    shape: LMShape
    val_loss: float  # nats per character
    perplexity: float
    accuracy: float  # next-character accuracy
    params: int  # parameters of the deployed float model
    size_bytes: int
    sparsity: float  # share of zero weights in the block linears
    layer_kinds: dict[str, str]  # per block linear: how it was materialised
    settings: LMSettings
    # intra-op threads torch reported in each phase: {"training": n, "evaluation": n}
    threads: dict[str, int] = field(default_factory=dict)


def _loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


def _train(
    model: TinyLM,
    ids: torch.Tensor,
    settings: LMSettings,
    *,
    steps: int,
    learning_rate: float,
    seed: int,
    exit_at: int | None,
) -> None:
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=0.01)
    model.train()
    for _ in range(steps):
        x, y = batch(ids, settings.batch_size, settings.seq_len, generator)
        if exit_at is None:
            loss = _loss(model(x), y)
        else:
            final, early = model.forward_with_exit(x, exit_at)
            loss = 0.5 * (_loss(final, y) + _loss(early, y))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
    model.eval()


def _linear(model: nn.Module, name: str) -> nn.Linear:
    module = model.get_submodule(name)
    assert isinstance(module, nn.Linear)
    return module


def _set(model: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent), child, module)


def _mask(weight: torch.Tensor, sparsity: float, pattern: str) -> torch.Tensor:
    nm = parse_nm(pattern)
    if nm is not None:
        return nm_mask(weight, *nm)
    if pattern == "block":
        return magnitude_block_mask(weight, sparsity, BLOCK_TILE)
    return magnitude_mask(weight, sparsity)


def group_size_for(in_features: int) -> int:
    """The int4 group size of a layer with K = ``in_features``: the largest divisor of K
    up to 32 that is a power of two, or 0 for an odd K (then the layer stays in float)."""
    group = math.gcd(in_features, INT4_GROUP)
    return group if group % 2 == 0 else 0


def evaluate_quality(model: TinyLM, settings: LMSettings) -> tuple[float, float]:
    """Validation loss (nats per character) and next-character accuracy."""
    x, y = validation_windows(char_data().val, settings.seq_len, settings.eval_windows)
    with torch.inference_mode():
        logits = model(x)
        loss = float(_loss(logits, y))
        accuracy = float((logits.argmax(dim=-1) == y).float().mean())
    return loss, accuracy


def lm_size_bytes(model: TinyLM) -> int:
    """Bytes to store the deployed model (see :data:`LM_SIZE_MODEL`)."""
    total = 0
    for module in model.modules():
        if isinstance(module, QuantizedLinear | BlockSparseLinear):
            total += module.weight_format.nbytes()
            total += 0 if module.bias is None else module.bias.numel() * 4
        elif isinstance(module, nn.Linear | nn.Embedding | nn.LayerNorm):
            bits = int(getattr(module, "stored_bits", 32))
            pattern = getattr(module, "sparse_pattern", None)
            for p in module.parameters(recurse=False):
                if p.dim() != 2:  # biases and norms
                    total += p.numel() * 4
                elif isinstance(pattern, str):
                    kept = int(torch.count_nonzero(p))
                    nm = parse_nm(pattern)
                    index_bits = math.ceil(math.log2(nm[1])) * kept if nm else p.numel()
                    total += math.ceil((kept * bits + index_bits) / 8)
                else:
                    total += math.ceil(p.numel() * bits / 8)
    return total


LM_SIZE_MODEL = (
    "block linears: int8 / int4 = packed weights + float32 scales; block-sparse = kept 16x16 "
    "tiles + tile indices; unstructured = 1-bit bitmap + nonzeros at their bit-width; N:M = "
    "kept values + ceil(log2 M) index bits each; fp16 = 2 bytes a weight; embeddings, norms, "
    "head and biases at 32 bits"
)


def build_lm(
    family: TransformerFamily,
    config: Mapping[str, Any],
    settings: LMSettings,
    seed: int,
    *,
    threads: WorkerThreads | None = None,
) -> BuiltLM:
    """Train ``config`` with ``seed``, compress, fine-tune, materialise, measure quality.

    Training and fine-tuning run with ``threads.training`` intra-op threads, the quality
    pass with ``threads.evaluation`` (by default those of
    :func:`~hwsearch.hardware.threads.using_threads`, else one each). Deterministic for a
    seed and thread counts; the global torch RNG is left as it was.
    """
    counts = threads or default_threads()
    seen: dict[str, int] = {}
    with torch_threads(counts.training) as seen["training"]:
        model, names, pattern, exit_at, shape, cfg = _trained(family, config, settings, seed)
    with torch_threads(counts.evaluation) as seen["evaluation"]:
        return _finished(model, names, pattern, exit_at, shape, cfg, settings, seen)


def _trained(
    family: TransformerFamily, config: Mapping[str, Any], settings: LMSettings, seed: int
) -> tuple[TinyLM, list[str], str, int | None, LMShape, dict[str, Any]]:
    cfg = family.canonical(config)
    data = char_data()
    shape = family.shape(cfg, vocab=data.vocab_size)
    exit_at = cfg["early_exit"] or None
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = TinyLM(shape, cfg["activation"], exit_layer=exit_at)
        _train(
            model,
            data.train,
            settings,
            steps=settings.steps,
            learning_rate=settings.learning_rate,
            seed=seed,
            exit_at=exit_at,
        )
        names = model.block_linears()
        sparsity, pattern = cfg["sparsity"], cfg["sparsity_pattern"]
        if pattern != "none":
            for name in names:
                layer = _linear(model, name)
                mask = _mask(layer.weight, sparsity, pattern)
                parametrize.register_parametrization(layer, "weight", WeightMask(mask, pattern))
            if settings.finetune_steps:
                _train(
                    model,
                    data.train,
                    settings,
                    steps=settings.finetune_steps,
                    learning_rate=settings.learning_rate * 0.1,
                    seed=seed + 1,
                    exit_at=exit_at,
                )
            for name in names:
                parametrize.remove_parametrizations(_linear(model, name), "weight")
    return model, names, pattern, exit_at, shape, cfg


def _finished(
    model: TinyLM,
    names: list[str],
    pattern: str,
    exit_at: int | None,
    shape: LMShape,
    cfg: Mapping[str, Any],
    settings: LMSettings,
    threads: dict[str, int],
) -> BuiltLM:
    if exit_at is not None:  # the deployed model stops at the exit
        model.blocks = model.blocks[:exit_at]
        names = model.block_linears()
    params = sum(p.numel() for p in model.parameters())
    zeros = sum(int((_linear(model, n).weight == 0).sum()) for n in names)
    weights = sum(_linear(model, n).weight.numel() for n in names)
    kinds = _materialise(model, names, cfg["weight_bits"], pattern)
    model.eval()
    loss, accuracy = evaluate_quality(model, settings)
    return BuiltLM(
        model=model,
        shape=shape,
        val_loss=loss,
        perplexity=math.exp(loss),
        accuracy=accuracy,
        params=params,
        size_bytes=lm_size_bytes(model),
        sparsity=zeros / weights if weights else 0.0,
        layer_kinds=kinds,
        settings=settings,
        threads=threads,
    )


def _materialise(model: TinyLM, names: list[str], bits: int, pattern: str) -> dict[str, str]:
    kinds: dict[str, str] = {}
    for name in names:
        layer = _linear(model, name)
        if bits in (4, 8):
            group = group_size_for(layer.in_features) if bits == 4 else 0
            if bits == 8 or group:
                _set(model, name, QuantizedLinear(layer, bits, group_size=group or 32))
                kinds[name] = f"int{bits}" + (f" (groups of {group})" if bits == 4 else "")
                continue
        if bits == 32 and pattern == "block":
            _set(model, name, BlockSparseLinear(layer, block=BLOCK_TILE))
            kinds[name] = "block-sparse"
            continue
        if bits == 16:
            with torch.no_grad():
                layer.weight.copy_(layer.weight.half().float())
            layer.stored_bits = 16  # type: ignore[assignment]
        if pattern != "none":
            layer.sparse_pattern = pattern  # type: ignore[assignment]
        kinds[name] = ("fp16 values" if bits == 16 else "float") + (
            f", {pattern} zeros" if pattern != "none" else ""
        )
    return kinds


def settings_dict(settings: LMSettings) -> dict[str, Any]:
    return asdict(settings)


__all__ = [
    "DATASET",
    "LM_SIZE_MODEL",
    "BuiltLM",
    "LMSettings",
    "build_lm",
    "evaluate_quality",
    "group_size_for",
    "lm_size_bytes",
    "settings_dict",
]
