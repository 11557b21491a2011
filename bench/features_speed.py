"""How long featurising candidates takes, per family.

    python bench/features_speed.py [--count 10000] [--repeats 3] [--seed 0]

Draws ``--count`` random configs of each family (every knob varied within its range, per-block
knobs per block, compression included) and times :func:`hwsearch.predictors.featurize` on
them. Prints one JSON line per family: the best of ``--repeats`` runs in seconds of wall time
and of this process's CPU time (they differ where other work shares the cores), the part of
the wall time spent on the family's canonical form of each config (the per-config Python
part), the microseconds per config and the number of feature columns.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hwsearch.models import get_family  # noqa: E402
from hwsearch.models.nb201 import NUM_EDGES, OPERATIONS  # noqa: E402
from hwsearch.predictors import featurize  # noqa: E402

BITS = [2, 4, 8, 16, 32]


def _compression(rng: np.random.Generator, blocks: int, patterns: list[str]) -> dict[str, Any]:
    pattern = str(rng.choice(patterns))
    return {
        "sparsity": float(rng.choice([0.0, 0.25, 0.5, 0.75])),
        "sparsity_pattern": pattern,
        "weight_bits": [int(b) for b in rng.choice(BITS, blocks)],
        "act_bits": [int(b) for b in rng.choice(BITS, blocks)],
    }


def random_configs(family: str, count: int, seed: int) -> list[dict[str, Any]]:
    """``count`` random valid configs of ``family``."""
    rng = np.random.default_rng(seed)
    configs: list[dict[str, Any]] = []
    for _ in range(count):
        if family == "nb201":
            configs.append({"ops": [str(o) for o in rng.choice(OPERATIONS, NUM_EDGES)]})
        elif family == "mlp":
            depth = int(rng.integers(1, 7))
            configs.append(
                {
                    "depth": depth,
                    "width": [int(w) for w in rng.integers(8, 513, depth)],
                    "activation": str(rng.choice(["relu", "gelu", "silu"])),
                    **_compression(rng, depth, ["unstructured", "channel", "2:4"]),
                }
            )
        elif family == "cnn":
            stages = int(rng.integers(1, 4))
            configs.append(
                {
                    "stages": stages,
                    "blocks": int(rng.integers(1, 4)),
                    "width": [int(w) for w in rng.integers(4, 129, stages)],
                    "kernel_size": [int(k) for k in rng.choice([3, 5, 7], stages)],
                    **_compression(rng, stages, ["unstructured", "channel", "2:4"]),
                }
            )
        else:
            heads = int(rng.choice([1, 2, 4, 8]))
            configs.append(
                {
                    "layers": int(rng.integers(1, 13)),
                    "d_model": heads * int(rng.choice([8, 16, 32, 64])),
                    "heads": heads,
                    "kv_heads": int(rng.choice([h for h in (1, 2, 4, 8) if h <= heads])),
                    "mlp_ratio": float(rng.choice([1.0, 2.0, 4.0])),
                    "weight_bits": int(rng.choice([4, 8, 16, 32])),
                    "sparsity": float(rng.choice([0.0, 0.5])),
                    "sparsity_pattern": str(rng.choice(["unstructured", "block", "2:4"])),
                    "early_exit": int(rng.integers(0, 4)),
                }
            )
    return configs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    for family in ("nb201", "mlp", "cnn", "transformer"):
        configs = random_configs(family, args.count, args.seed)
        featurize(family, configs[:10])  # load what the first call loads (e.g. the corpus)
        canonical = get_family(family).canonical
        total, cpu, canon = [], [], []
        for _ in range(args.repeats):
            start, start_cpu = time.perf_counter(), time.process_time()
            features = featurize(family, configs)
            total.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
            start = time.perf_counter()
            for config in configs:
                canonical(config)
            canon.append(time.perf_counter() - start)
        best = min(total)
        line = {
            "family": family,
            "configs": args.count,
            "seconds": round(best, 4),
            "cpu_seconds": round(min(cpu), 4),
            "canonical_seconds": round(min(canon), 4),
            "us_per_config": round(best / args.count * 1e6, 2),
            "columns": features.values.shape[1],
        }
        print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
