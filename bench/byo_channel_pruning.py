"""What 50% dependency-aware channel pruning buys on a third-party model on this CPU.

Builds pytorchcv's CIFAR ResNet-20 (random weights: latency does not depend on their values;
``pip install pytorchcv --no-deps``, no torchvision needed), prunes half the channels of
every convolution through :func:`hwsearch.models.custom.compress.compress` (torch-pruning's
dependency graph: the residual stages lose the same channels), and measures dense and pruned
with the search's latency protocol at one thread. Rounds are interleaved; the figure is the
median over rounds of each round's median latency and of each round's ratio.

    python bench/byo_channel_pruning.py [--rounds 3] [--batch 1,32] [--ratio 0.5]
"""

from __future__ import annotations

import argparse
import json
import statistics

import torch

from hwsearch.hardware import MeasureSettings, measure_latency, parse_target
from hwsearch.hardware.counts import count_macs, count_params
from hwsearch.models.custom.compress import bake, compress
from hwsearch.models.custom.rules import resolve_rules


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", default="1,32")
    parser.add_argument("--ratio", type=float, default=0.5)
    args = parser.parse_args()
    from pytorchcv.models.resnet_cifar import resnet20_cifar10

    torch.manual_seed(0)
    torch.set_num_threads(1)
    example = torch.randn(1, 3, 32, 32)
    dense = resnet20_cifar10().eval()
    pruned = resnet20_cifar10().eval()
    pruned.load_state_dict(dense.state_dict())
    rules = resolve_rules(
        pruned, {"features.*": {"sparsity": args.ratio, "sparsity_pattern": "channel"}}
    )
    compress(pruned, rules, example)
    pruned = bake(pruned).eval()
    for name, model in (("dense", dense), ("pruned", pruned)):
        print(
            json.dumps(
                {"model": name, "params": count_params(model), "macs": count_macs(model, example)}
            )
        )
    target = parse_target("cpu")
    for batch in (int(b) for b in args.batch.split(",")):
        settings = MeasureSettings(batch_size=batch, threads=1, max_seconds=5.0)
        rounds: list[tuple[float, float]] = []
        for _ in range(args.rounds):
            d = measure_latency(dense, example, target, settings).median_ms
            p = measure_latency(pruned, example, target, settings).median_ms
            rounds.append((d, p))
        row = {
            "batch": batch,
            "dense_ms": statistics.median(r[0] for r in rounds),
            "pruned_ms": statistics.median(r[1] for r in rounds),
            "speedup": statistics.median(r[0] / r[1] for r in rounds),
        }
        print(json.dumps(row))


if __name__ == "__main__":
    main()
