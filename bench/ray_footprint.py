"""The footprint of one small search in process and on a local Ray, split by part.

Before the workers' CPU time was counted, the Ray run's footprint held only the driver's
process. This prints, for each executor, the driver's part, the ``workers`` part (the CPU
seconds the Ray tasks reported) and the total, in Wh and CPU seconds.

    OMP_NUM_THREADS=1 python bench/ray_footprint.py [--evaluations 6]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

import ray

from hwsearch.db import Store
from hwsearch.search.jobs import Job
from hwsearch.search.spec import parse_spec
from hwsearch.workers import InProcessExecutor
from hwsearch.workers.ray_executor import RayExecutor


def spec(evaluations: int) -> dict[str, Any]:
    return {
        "name": "footprint",
        "family": "mlp",
        "target": "cpu",
        "space": {
            "depth": {"type": "int", "low": 1, "high": 2},
            "width": {"type": "choice", "values": [8, 16, 32, 64], "per_layer": 2},
            "weight_bits": {"type": "choice", "values": [8, 32]},
        },
        "objectives": [
            {"metric": "accuracy", "direction": "maximize"},
            {"metric": "latency_ms", "direction": "minimize"},
        ],
        "budget": {"evaluations": evaluations},
        "optimizer": {"name": "optuna-nsga2", "population_size": 2},
        "evaluation": {"epochs": 1, "finetune_epochs": 0},
        "measurement": {"warmup": 2, "min_repeats": 5, "max_repeats": 20, "max_seconds": 2.0},
        "seed": 0,
    }


def show(name: str, footprint: dict[str, Any]) -> None:
    workers = [p for p in footprint["parts"] if p["device"] == "workers"]
    remote_cpu = sum(p["cpu_seconds"] for p in workers)
    for part in footprint["parts"]:
        cpu = part["cpu_seconds"] if part in workers else footprint["cpu_seconds"] - remote_cpu
        print(f"{name:10} {part['device']:10} {part['energy_j'] / 3600:8.4f} Wh {cpu:8.1f} CPU s")
    print(
        f"{name:10} {'total':10} {footprint['energy_kwh'] * 1000:8.4f} Wh "
        f"{footprint['cpu_seconds']:8.1f} CPU s, {footprint['wall_seconds']:.1f} s wall"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--evaluations", type=int, default=6)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        for name in ("in-process", "ray"):
            url = f"sqlite:///{Path(folder) / (name + '.db')}"
            if name == "ray":
                ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
                executor: Any = RayExecutor()
            else:
                executor = InProcessExecutor()
            with Store.open(url) as store, executor:
                job = Job(parse_spec(spec(args.evaluations)), store, executor=executor)
                job.run()
                assert job.footprint is not None
                show(name, job.footprint)
            if name == "ray":
                ray.shutdown()


if __name__ == "__main__":
    main()
