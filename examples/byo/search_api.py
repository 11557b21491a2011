"""The same search from Python: python examples/byo/search_api.py [DB_URL] [EVALUATIONS]."""

from __future__ import annotations

import sys

import hwsearch
from my_models import build, calibration, evaluate, finetune

if __name__ == "__main__":  # pool and Ray workers import this file again
    front = hwsearch.search(
        model=build,
        evaluate=evaluate,
        finetune=finetune,
        calibrate=calibration,
        input_shape=(64,),
        space={
            "width": {"type": "choice", "values": [32, 64, 128]},
            "layers": {
                "0": {
                    "sparsity": {"type": "choice", "values": [0.0, 0.5]},
                    "sparsity_pattern": {"type": "choice", "values": ["unstructured", "channel"]},
                },
                "[24]": {"weight_bits": {"type": "choice", "values": [8, 32]}},
            },
        },
        objectives=[("accuracy", "maximize"), ("latency_ms", "minimize")],
        constraints=["accuracy >= 0.8"],
        target="cpu",
        budget={"evaluations": int(sys.argv[2]) if len(sys.argv) > 2 else 6},
        db=sys.argv[1] if len(sys.argv) > 1 else "sqlite:///byo.db",
        seed=0,
        optimizer="random",
        measurement={"warmup": 3, "min_repeats": 5, "max_repeats": 20},
    )
    for p in front.points:
        latency = p.metrics["latency_ms"]
        print(
            p.candidate_id, p.config, p.metrics["accuracy"].value, latency.value, latency.provenance
        )
