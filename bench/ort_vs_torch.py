"""ONNX Runtime or PyTorch on this CPU: which runs a candidate faster, in fp32 and in int8?

For one fixed architecture per family, builds each variant through the search's pipeline
(train 2 epochs at rate 0.01, compress, fine-tune, bake), then deploys it twice: on
PyTorch's kernels as the ``cpu`` target does (:mod:`hwsearch.models.deploy`) and on ONNX
Runtime as ``ort:cpu`` does (:mod:`hwsearch.hardware.ort`: ONNX export, ORT's own static
QDQ / dynamic int8), and times
both with the search's measurement protocol, one thread. Rounds interleave every
(variant, runtime) pair so that drift of the machine hits them alike; figures are the
median over rounds of each round's median, and ratios are medians of per-round ratios.

    python bench/ort_vs_torch.py [--family cnn|mlp|all] [--rounds 3] [--batch 1,32]

Prints one JSON line per (family, batch, variant) and a Markdown table at the end.
"""

from __future__ import annotations

import argparse
import json
import statistics
import warnings
from typing import Any

import onnxruntime as ort
import torch

from hwsearch.hardware import MeasureSettings, measure_latency, parse_target
from hwsearch.models import TrainSettings, build_candidate, get_family
from hwsearch.workers.ort_eval import deploy_trained

ARCHITECTURES: dict[str, dict[str, Any]] = {
    "mlp": {"depth": 3, "width": 1024, "activation": "relu"},
    "cnn": {"stages": 3, "blocks": 2, "width": [64, 128, 256], "kernel_size": 3},
}
VARIANTS: dict[str, dict[str, Any]] = {
    "fp32": {},
    "int8 weights, fp32 act": {"weight_bits": 8},
    "int8 weights, int8 act": {"weight_bits": 8, "act_bits": 8},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", default="all", choices=["all", *ARCHITECTURES])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", default="1,32", help="comma-separated batch sizes")
    args = parser.parse_args()
    families = list(ARCHITECTURES) if args.family == "all" else [args.family]
    batches = [int(b) for b in args.batch.split(",")]
    torch.set_num_threads(1)
    cpu, ort_cpu = parse_target("cpu"), parse_target("ort:cpu")
    training = TrainSettings(epochs=2, finetune_epochs=1, learning_rate=0.01)
    rows: list[dict[str, Any]] = []
    warnings.filterwarnings("ignore")
    for name in families:
        family = get_family(name)
        deployed: dict[str, dict[str, Any]] = {}
        for label, variant in VARIANTS.items():
            config = family.canonical({**ARCHITECTURES[name], **variant})
            built = build_candidate(family, config, training, seed=0)
            on_ort = deploy_trained(family, config, built, training, 0, ort_cpu, threads=1)
            deployed[label] = {
                "torch": built.deploy_model,
                "ort": on_ort.deployed.model,
                "torch_path": built.kernel_path,
                "ort_path": on_ort.deployed.kernel_path,
                "torch_accuracy": built.accuracy,
                "ort_accuracy": on_ort.accuracy,
            }
        for batch in batches:
            settings = MeasureSettings(
                batch_size=batch, threads=1, warmup=20, min_repeats=30, max_repeats=300,
                max_seconds=5.0,
            )  # fmt: skip
            example = family.example_input(1)
            ms: dict[tuple[str, str], list[float]] = {}
            ratios: dict[str, dict[str, list[float]]] = {}
            for _ in range(args.rounds):
                now: dict[tuple[str, str], float] = {}
                for label, d in deployed.items():
                    for runtime, target in (("torch", cpu), ("ort", ort_cpu)):
                        now[label, runtime] = measure_latency(
                            d[runtime], example, target, settings
                        ).median_ms
                for key, value in now.items():
                    ms.setdefault(key, []).append(value)
                for label in deployed:
                    r = ratios.setdefault(label, {"ort_vs_torch": [], "torch_vs_fp32": [],
                                                  "ort_vs_fp32": []})  # fmt: skip
                    r["ort_vs_torch"].append(now[label, "torch"] / now[label, "ort"])
                    r["torch_vs_fp32"].append(now["fp32", "torch"] / now[label, "torch"])
                    r["ort_vs_fp32"].append(now["fp32", "ort"] / now[label, "ort"])
            for label, d in deployed.items():
                row = {
                    "family": name,
                    "batch": batch,
                    "variant": label,
                    "torch_kernel_path": d["torch_path"],
                    "ort_kernel_path": d["ort_path"],
                    "torch_ms": round(statistics.median(ms[label, "torch"]), 4),
                    "ort_ms": round(statistics.median(ms[label, "ort"]), 4),
                    **{k: round(statistics.median(v), 3) for k, v in ratios[label].items()},
                    "torch_accuracy": round(d["torch_accuracy"], 4),
                    "ort_accuracy": round(d["ort_accuracy"], 4),
                    "rounds": args.rounds,
                }
                rows.append(row)
                print(json.dumps(row), flush=True)
    print(
        f"\ntorch {torch.__version__} (engine {torch.backends.quantized.engine}), "
        f"onnxruntime {ort.__version__} (CPUExecutionProvider, ORT_ENABLE_ALL), 1 thread\n"
    )
    print(
        "| family | batch | variant | PyTorch path | PyTorch ms | ORT path | ORT ms | "
        "ORT vs PyTorch | PyTorch vs its fp32 | ORT vs its fp32 | accuracy simulated / ORT |"
    )
    print("|---|---:|---|---|---:|---|---:|---:|---:|---:|---|")
    for r in rows:
        print(
            f"| {r['family']} | {r['batch']} | {r['variant']} | `{r['torch_kernel_path']}` | "
            f"{r['torch_ms']:.4g} | `{r['ort_kernel_path']}` | {r['ort_ms']:.4g} | "
            f"{r['ort_vs_torch']:.2f}x | {r['torch_vs_fp32']:.2f}x | {r['ort_vs_fp32']:.2f}x | "
            f"{r['torch_accuracy']:.3f} / {r['ort_accuracy']:.3f} |"
        )


if __name__ == "__main__":
    main()
