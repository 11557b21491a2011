"""Which compression choice buys real speed on this CPU? Measure, don't assume.

For one fixed architecture per family, builds every compression variant through the same
pipeline the search uses (train briefly, compress, materialise for the CPU) and measures
its latency with the search's measurement protocol. Rounds are interleaved so that drift of
the machine hits every variant alike; the figure is the median over rounds of each round's
median, and the ratio is against the dense fp32 model of the same round.

    python bench/compression_speedup.py [--family cnn|mlp|all] [--rounds 3] [--batch 1,32]

Prints one JSON line per (family, batch, variant) and a Markdown table at the end.
"""

from __future__ import annotations

import argparse
import json
import statistics
import warnings
from typing import Any

import torch

from hwsearch.hardware import MeasureSettings, measure_latency, parse_target
from hwsearch.models import TrainSettings, build_candidate, get_family

ARCHITECTURES: dict[str, dict[str, Any]] = {
    "mlp": {"depth": 3, "width": 1024, "activation": "relu"},
    "cnn": {"stages": 3, "blocks": 2, "width": [64, 128, 256], "kernel_size": 3},
}
VARIANTS: dict[str, dict[str, Any]] = {
    "dense fp32": {},
    "unstructured 50%": {"sparsity": 0.5, "sparsity_pattern": "unstructured"},
    "2:4 (50%)": {"sparsity": 0.5, "sparsity_pattern": "2:4"},
    "channel 50%": {"sparsity": 0.5, "sparsity_pattern": "channel"},
    "fp16 weights": {"weight_bits": 16},
    "int8 weights, fp32 act": {"weight_bits": 8},
    "int8 weights, int8 act": {"weight_bits": 8, "act_bits": 8},
    "int4 weights, int8 act": {"weight_bits": 4, "act_bits": 8},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", default="all", choices=["all", *ARCHITECTURES])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", default="1,32", help="comma-separated batch sizes")
    args = parser.parse_args()
    families = list(ARCHITECTURES) if args.family == "all" else [args.family]
    batches = [int(b) for b in args.batch.split(",")]
    target = parse_target("cpu")
    training = TrainSettings(epochs=1, finetune_epochs=0)
    rows: list[dict[str, Any]] = []
    warnings.filterwarnings("ignore")
    for name in families:
        family = get_family(name)
        built = {
            label: build_candidate(
                family, family.canonical({**ARCHITECTURES[name], **variant}), training, seed=0
            )
            for label, variant in VARIANTS.items()
        }
        for batch in batches:
            settings = MeasureSettings(
                batch_size=batch,
                threads=1,
                warmup=20,
                min_repeats=30,
                max_repeats=300,
                max_seconds=5.0,
            )
            medians: dict[str, list[float]] = {label: [] for label in built}
            ratios: dict[str, list[float]] = {label: [] for label in built}
            for _ in range(args.rounds):
                this_round = {
                    label: measure_latency(
                        b.deploy_model, family.example_input(1), target, settings
                    ).median_ms
                    for label, b in built.items()
                }
                for label, value in this_round.items():
                    medians[label].append(value)
                    ratios[label].append(this_round["dense fp32"] / value)
            for label, b in built.items():
                row = {
                    "family": name,
                    "batch": batch,
                    "variant": label,
                    "kernel_path": b.kernel_path,
                    "median_ms": round(statistics.median(medians[label]), 4),
                    "speedup_vs_dense": round(statistics.median(ratios[label]), 3),
                    "size_bytes": b.size_bytes,
                    "rounds": args.rounds,
                }
                rows.append(row)
                print(json.dumps(row), flush=True)
    print(f"\ntorch {torch.__version__}, engine {torch.backends.quantized.engine}, 1 thread\n")
    print("| family | batch | variant | kernel path | median ms | speed-up vs dense fp32 |")
    print("|---|---:|---|---|---:|---:|")
    for r in rows:
        print(
            f"| {r['family']} | {r['batch']} | {r['variant']} | `{r['kernel_path']}` | "
            f"{r['median_ms']:.4g} | {r['speedup_vs_dense']:.2f}x |"
        )


if __name__ == "__main__":
    main()
