"""The one registry of metric names: what an objective, a constraint or a filter may name.

Each metric has a unit, the direction that is better, a doc line and the scale a predictor
fits it on. Built-in metrics are registered here; plug-ins add theirs with
:func:`register_metric` (an evaluation kind that produces a metric must register it). The
metric sets that other modules need (what an evaluation produces, what a table shows, what
a predictor fits on its own scale) are derived from this registry, never kept by hand.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

Better = Literal["lower", "higher"]


@dataclass(frozen=True)
class Metric:
    """One metric: ``unit`` is ``""`` for a pure number; ``linear`` metrics are predicted
    on their own scale (qualities in 0..1), the others, when positive, on a log scale;
    ``tags`` name the built-in sets a metric belongs to (``trained``, ``lm``, ``table``,
    ``timed``, ``shown``)."""

    name: str
    unit: str
    better: Better
    doc: str
    linear: bool = False
    tags: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        if not self.name.isidentifier():
            raise ValueError(f"metric name {self.name!r} is not an identifier")
        if self.better not in ("lower", "higher"):
            raise ValueError(f"better must be 'lower' or 'higher', got {self.better!r}")


_REGISTRY: dict[str, Metric] = {}
#: name -> doc of every registered metric; the same dict object as long as the process lives,
#: so that ``name in METRICS`` sees metrics that plug-ins register later.
METRICS: dict[str, str] = {}


def register_metric(metric: Metric) -> Metric:
    """Register ``metric``; registering the same definition twice is a no-op, a different
    definition under a registered name is refused."""
    known = _REGISTRY.get(metric.name)
    if known is not None and known != metric:
        raise ValueError(f"metric {metric.name!r} is already registered with another definition")
    _REGISTRY[metric.name] = metric
    METRICS[metric.name] = metric.doc
    return metric


def unregister_metric(name: str) -> None:
    """Forget a metric (for tests of plug-ins that register their own)."""
    _REGISTRY.pop(name, None)
    METRICS.pop(name, None)


def get_metric(name: str) -> Metric:
    from hwsearch.errors import UnknownNameError

    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownNameError("metric", name, _REGISTRY) from None


def metric_names() -> list[str]:
    return sorted(_REGISTRY)


def tagged(tag: str) -> frozenset[str]:
    """The registered metrics carrying ``tag``."""
    return frozenset(tagged_in_order(tag))


def tagged_in_order(tag: str) -> tuple[str, ...]:
    """The registered metrics carrying ``tag``, in the order they were registered."""
    return tuple(m.name for m in _REGISTRY.values() if tag in m.tags)


def linear_metrics() -> frozenset[str]:
    """Metrics a predictor fits on their own scale (see :attr:`Metric.linear`)."""
    return frozenset(m.name for m in _REGISTRY.values() if m.linear)


def _builtin(
    name: str, unit: str, better: Better, doc: str, tags: Iterable[str], *, linear: bool = False
) -> None:
    register_metric(Metric(name, unit, better, doc, linear, frozenset(tags)))


# Tags: "trained" - a trained evaluation on a device; "lm" - a language model's evaluation;
# "table" - an evaluation with a table target; "timed" - added when timing here with tables;
# "shown" - shown in front tables after the objectives.
_TRAINED_TIMED = ("trained", "timed")
_builtin(
    "accuracy",
    "",
    "higher",
    "fraction of test examples classified correctly (0..1)",
    ("trained", "lm", "table", "shown"),
    linear=True,
)
_builtin(
    "latency_ms",
    "ms",
    "lower",
    "median time of one inference batch on the target, in milliseconds",
    ("trained", "table", "shown"),
)
_builtin(
    "latency_p90_ms",
    "ms",
    "lower",
    "90th percentile time of one inference batch, in milliseconds",
    _TRAINED_TIMED,
)
_builtin(
    "latency_cv",
    "",
    "lower",
    "robust coefficient of variation of the latency repeats (1.4826 MAD / median)",
    (*_TRAINED_TIMED, "shown"),
)
_builtin(
    "size_bytes",
    "bytes",
    "lower",
    "bytes needed to store the compressed weights",
    ("trained", "lm", "table", "shown"),
)
_builtin(
    "params",
    "",
    "lower",
    "number of parameters of the materialised model (pruned layers smaller)",
    ("trained", "lm", "table", "shown"),
)
_builtin(
    "nonzero_params",
    "",
    "lower",
    "number of non-zero parameters (masked weights not counted)",
    ("trained",),
)
_builtin(
    "macs",
    "",
    "lower",
    "multiply-accumulate operations per input example",
    ("trained", "table", "shown"),
)
_builtin(
    "peak_memory_bytes",
    "bytes",
    "lower",
    "peak memory used by one inference batch, in bytes",
    (*_TRAINED_TIMED, "lm"),
)
_builtin("sparsity", "", "higher", "fraction of weights that are zero (0..1)", ("trained", "lm"))
# energy and carbon (see docs/energy_carbon.md)
_builtin(
    "carbon_g_per_1k",
    "gCO2e",
    "lower",
    "gCO2e per 1,000 inferences: operational + embodied",
    ("trained", "lm"),
)
_builtin(
    "carbon_operational_g_per_1k",
    "gCO2e",
    "lower",
    "gCO2e per 1,000 inferences from the energy drawn (energy x PUE x grid intensity)",
    ("trained", "lm", "shown"),
)
_builtin(
    "carbon_embodied_g_per_1k",
    "gCO2e",
    "lower",
    "gCO2e per 1,000 inferences from making the device, amortised over its busy lifetime",
    ("trained", "lm", "shown"),
)
_builtin(
    "energy_j_per_inference",
    "J",
    "lower",
    "energy of one inference on the target, in joules (NVML or RAPL counter where readable, "
    "else estimated from the TDP; see the provenance)",
    ("trained", "lm", "shown"),
)
# language models (family transformer); an inference is one request: a prompt, then tokens
_builtin(
    "ttft_ms",
    "ms",
    "lower",
    "time to first token: the prompt batch through the model and one token chosen, in milliseconds",
    ("lm",),
)
_builtin(
    "decode_ms_per_token",
    "ms",
    "lower",
    "time of one decode step of the batch (one new token per sequence), in milliseconds",
    ("lm",),
)
_builtin(
    "tokens_per_s",
    "1/s",
    "higher",
    "tokens generated per second while decoding (batch / decode step time)",
    ("lm",),
)
_builtin(
    "kv_cache_bytes",
    "bytes",
    "lower",
    "bytes of the KV cache of the batch at the full context (formula)",
    ("lm",),
)
_builtin(
    "energy_j_per_token",
    "J",
    "lower",
    "energy of one decode step per sequence, in joules",
    ("lm",),
)
_builtin(
    "val_loss",
    "nats",
    "lower",
    "validation cross-entropy of the language model, in nats per character",
    ("lm",),
)
_builtin(
    "perplexity",
    "",
    "lower",
    "validation perplexity of the language model (exp of val_loss)",
    ("lm",),
)
