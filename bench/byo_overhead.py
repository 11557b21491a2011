"""hwsearch's own cost per candidate of your own model, and what channel pruning buys.

On the ResNet-20 example (examples/byo_resnet20: pytorchcv's CIFAR ResNet-20 on digits
resized to 32x32x3), runs candidates through :func:`hwsearch.models.custom.pipeline.run_candidate`
with realistic user work (``--finetune-steps`` SGD steps of 64 images, evaluation on the
360 test images) and reports, per configuration, the median over rounds of:

- ``user_s``: the user's build, calibration, fine-tune and evaluate;
- ``own_s``: hwsearch's own work: compress (rules, masks, dependency-aware pruning, fake
  quantization), observe (activation ranges), counts, serialise the weights, materialise
  (bake a float copy, int8 kernels), and storing the weights in the content-addressed
  :class:`~hwsearch.artifacts.ArtifactStore`; the latency measurement is the point of the
  run and is left out;
- ``own_share``: ``own_s / user_s`` (the goal is at most 5%).

Then the latency ratio 50% channel pruning gives (dense fp32 vs pruned fp32, both baked) at
batch 1 and 32 with one torch thread, interleaved rounds, median of each round's ratio.
Prints JSON lines.

    nice -n 10 python bench/byo_overhead.py [--rounds 3] [--finetune-steps 300]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = {
    "dense": {},
    "channel50": {"features.stage*": {"sparsity": 0.5, "sparsity_pattern": "channel"}},
    "channel50-int8": {
        "features.stage*": {
            "sparsity": 0.5,
            "sparsity_pattern": "channel",
            "weight_bits": 8,
            "act_bits": 8,
        },
        "output": {"weight_bits": 8},
    },
    "2:4-int8w": {"features.stage*": {"sparsity_pattern": "2:4", "weight_bits": 8}},
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--finetune-steps", type=int, default=300)
    parser.add_argument("--pretrain-steps", type=int, default=300)
    parser.add_argument("--batch", default="1,32")
    args = parser.parse_args()
    os.environ["HWSEARCH_EXAMPLE_PRETRAIN_STEPS"] = str(args.pretrain_steps)
    sys.path.insert(0, str(ROOT / "examples" / "byo_resnet20"))
    import resnet20_digits as example

    from hwsearch.artifacts import ArtifactStore
    from hwsearch.hardware import MeasureSettings, measure_latency, parse_target
    from hwsearch.models.custom.compress import bake, compress
    from hwsearch.models.custom.pipeline import PipelineSettings, UserModel, run_candidate
    from hwsearch.models.custom.rules import resolve_rules

    torch.set_num_threads(1)
    code = UserModel(
        build=example.build,
        evaluate=example.evaluate,
        finetune=example.finetune,
        calibrate=example.calibration,
        metrics={"accuracy": "maximize"},
        input_shape=(3, 32, 32),
    )
    start = time.perf_counter()
    example.build({})  # the user's weights, trained once (not part of any candidate)
    print(json.dumps({"pretrain_s": round(time.perf_counter() - start, 2)}))
    settings = PipelineSettings(
        measure=None, seed=0, extras={"finetune_steps": args.finetune_steps}
    )
    samples: dict[str, list[dict[str, float]]] = {name: [] for name in CONFIGS}
    with tempfile.TemporaryDirectory() as folder:
        store = ArtifactStore(Path(folder) / "artifacts")
        for _ in range(args.rounds):
            for name, layers in CONFIGS.items():
                result = run_candidate(code, {}, layers, settings)
                if result.failure is not None:
                    raise SystemExit(f"{name} failed: {result.failure.as_dict()}")
                assert result.weights is not None
                t = time.perf_counter()
                store.put(result.weights)
                stored = time.perf_counter() - t
                own = result.own_seconds() + stored
                user = result.user_seconds()
                samples[name].append(
                    {
                        "user_s": user,
                        "own_s": own,
                        "share": own / user,
                        "accuracy": result.metrics["accuracy"],
                        **{f"{k}_s": v for k, v in result.timings.items()},
                        "store_s": stored,
                    }
                )
    for name, rows in samples.items():
        keys = rows[0].keys()
        med = {k: statistics.median(r[k] for r in rows) for k in keys}
        print(
            json.dumps(
                {
                    "config": name,
                    "finetune_steps": args.finetune_steps,
                    "rounds": len(rows),
                    "user_s": round(med["user_s"], 3),
                    "own_s": round(med["own_s"], 3),
                    "own_share": round(med["share"], 4),
                    "accuracy": round(med["accuracy"], 4),
                    "own_stages_s": {
                        k[:-2]: round(med[k], 4)
                        for k in keys
                        if k.endswith("_s")
                        and k[:-2]
                        in ("compress", "observe", "counts", "serialise", "materialize", "store")
                    },
                }
            )
        )

    # latency: 50% channel pruning against dense, both plain float models
    example_input = torch.randn(1, 3, 32, 32)
    dense = bake(example.build({})).eval()
    pruned = example.build({})
    compress(
        pruned,
        resolve_rules(pruned, {"features.*": {"sparsity": 0.5, "sparsity_pattern": "channel"}}),
        example_input,
    )
    pruned = bake(pruned).eval()
    target = parse_target("cpu")
    for batch in (int(b) for b in args.batch.split(",")):
        measure = MeasureSettings(batch_size=batch, threads=1, max_seconds=5.0)
        rounds = []
        for _ in range(args.rounds):
            d = measure_latency(dense, example_input, target, measure).median_ms
            p = measure_latency(pruned, example_input, target, measure).median_ms
            rounds.append((d, p))
        print(
            json.dumps(
                {
                    "batch": batch,
                    "threads": 1,
                    "dense_ms": round(statistics.median(r[0] for r in rounds), 3),
                    "pruned50_ms": round(statistics.median(r[1] for r in rounds), 3),
                    "speedup": round(statistics.median(r[0] / r[1] for r in rounds), 2),
                }
            )
        )


if __name__ == "__main__":
    main()
