"""The user's own model on Ray workers: a YAML module from the spec's folder and Python
callables from the API, both shipped to the workers (cloudpickle)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ray = pytest.importorskip("ray")

import hwsearch  # noqa: E402
from hwsearch.db import Store  # noqa: E402
from hwsearch.models.custom.callables import resolve  # noqa: E402
from hwsearch.search.jobs import Job  # noqa: E402
from hwsearch.search.spec import load_spec  # noqa: E402
from hwsearch.workers.ray_executor import RayExecutor  # noqa: E402
from tests.models.custom.test_jobs import MEASURE, SPACE, _spec  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def local_ray() -> Iterator[None]:
    """One local Ray instance for the module, on 127.0.0.1, stopped afterwards."""
    if ray.is_initialized():
        ray.shutdown()
    ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=False,
        object_store_memory=96 * 1024**2,
        _node_ip_address="127.0.0.1",
        log_to_driver=False,
    )
    try:
        yield
    finally:
        ray.shutdown()


def test_yaml_module_runs_on_ray(tmp_path: Path) -> None:
    spec = load_spec(_spec(tmp_path, budget={"evaluations": 2}))
    store = Store.open(f"sqlite:///{tmp_path / 'r.db'}")
    try:
        with RayExecutor(workers=2) as executor:
            record = Job(spec, store, executor=executor).run()
        candidates = store.list_candidates(record.id)
    finally:
        store.close()
    assert len(candidates) == 2
    assert all(c.error is None and "accuracy" in c.metrics for c in candidates)


@pytest.mark.filterwarnings("ignore:evaluation.evaluate.*a function defined inside:UserWarning")
def test_python_callables_run_on_ray(tmp_path: Path) -> None:
    _spec(tmp_path)
    build = resolve("x", "tiny_model:build", folder=tmp_path).obj
    scale = 3.0

    def evaluate(model: Any, context: Any) -> dict[str, float]:  # a closure, shipped by value
        import torch

        with torch.no_grad():
            out = model(torch.ones(2, 8))
        return {"accuracy": 0.5, "score": scale + float(out.shape[1])}

    front = hwsearch.search(  # type: ignore[operator]
        model=build,
        evaluate=evaluate,
        input_shape=(8,),
        space=SPACE,
        objectives=[("score", "maximize"), ("latency_ms", "minimize")],
        metrics={"accuracy": "maximize", "score": "maximize"},
        budget={"evaluations": 2},
        db=f"sqlite:///{tmp_path / 'api.db'}",
        executor="ray",
        workers=2,
        measurement=MEASURE,
    )
    assert front.points
    assert all(p.metrics["score"].value == 6.0 for p in front.points)
    assert sys.modules.get("tiny_model") is None  # resolved privately, never on sys.path
