"""Search your own model from Python: ``python examples/byo_own/search.py``.

The model (``my_net.DigitsNet``) and its functions live in ``my_net.py`` beside this script;
``hwsearch.search`` turns the arguments into an ordinary job (``hwsearch jobs``, ``front``,
``export`` and the dashboard see it) and returns its Pareto front.
"""

from __future__ import annotations

import argparse

import torch
from my_net import build, calibration, evaluate, finetune

import hwsearch

SPACE = {
    "width": {"type": "choice", "values": [16, 32]},  # goes to build(config)
    "blocks": {"type": "int", "low": 1, "high": 2},
    "layers": {  # compression per layer, by glob over module names
        "blocks.*": {
            "sparsity": {"type": "float", "low": 0.0, "high": 0.5, "step": 0.25},
            "sparsity_pattern": {"type": "choice", "values": ["channel", "unstructured"]},
            "weight_bits": {"type": "choice", "values": [8, 32]},
            "act_bits": {"type": "choice", "values": [8, 32]},
        },
        "head": {"weight_bits": 8},
    },
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--evaluations", type=int, default=12)
    parser.add_argument("--db", default="sqlite:///byo_own.db")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    front = hwsearch.search(
        model=build,
        evaluate=evaluate,
        finetune=finetune,
        calibrate=calibration,
        input_shape=(1, 8, 8),
        space=SPACE,
        objectives=[("accuracy", "maximize"), ("latency_ms", "minimize")],
        constraints=["accuracy >= 0.5"],
        target="cpu",
        budget={"evaluations": args.evaluations},
        measurement={"threads": 1, "warmup": 3, "min_repeats": 10, "max_seconds": 1},
        db=args.db,
        seed=args.seed,
    )
    print(f"job {front.job_id}: {len(front.points)} front point(s) of {front.evaluations}")
    for p in front.points:
        latency = p.metrics["latency_ms"]
        print(
            p.candidate_id,
            p.config,
            f"accuracy={p.metrics['accuracy'].value:.3f}",
            f"latency_ms={latency.value:.3f} ({latency.provenance.value})",
        )


if __name__ == "__main__":
    main()
